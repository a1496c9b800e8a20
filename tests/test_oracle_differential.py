"""Differential tests: both evaluator backends against the independent oracle (float64).

Compared per (algorithm, task) pair: the fitness (1e-9 relative), the training steps
executed, the recorded FEC errors (count exactly, values to 1e-9) and, for single ops,
the final memory. The tests, and which run by default (CI: <= 120 s on 2 cores):

* ``test_random_algorithms_match_oracle`` (cpu; jax is ``slow``): >= 1000 random
  algorithms without random ops across F in {1, 2, 4, 8, 16, 32}, a different memory
  size per F, random mixes of all 59 non-random ops in every component (NaN/inf
  producers included), random lengths, edge constants (+-0, +-inf, NaN, 1e300, ...),
  mutated hand-coded models; regression, accuracy and multi-epoch tasks; 2 tasks each.
* ``test_core_ops_match_oracle`` (both): the default JAX differential, one compile:
  300 random algorithms over the hand-coded models' ops and edge-prone ones, train
  budgets (0, part of an epoch, ...), and each of those ops alone on crafted memory.
* ``test_every_op_alone`` (cpu; jax ``slow``): every op alone in Predict on memory
  crafted by Setup with edge values (0, -0, +-inf, NaN, negative, huge, subnormal),
  F = 1 (read back exactly) and F = 4 (positions and axes), with and without aliasing
  (out = in); recorded errors ``|0.5 - s1|`` expose the result.
  ``test_deterministic_random_ops``: ``uniform(lo, hi)`` with lo >= hi, ``gaussian(mu, 0)``.
* ``test_pooled_sweep_matches_oracle`` (``slow``): all 58 ops 1..58 split over three
  groups (F 1, 4, 32), 1010 random algorithms, every op alone, final memories compared.
* ``test_fec_probe_runs_match_oracle``, ``test_vector_label_tasks_match_oracle``,
  ``test_programs_writing_reserved_cells``: FEC-style short runs, our multi-class
  convention, hand-written programs that write s0/v0.
* ``test_large_sweep`` (``slow``): about 10 000 pairs with longer programs.

Chaotic programs: a program can amplify a one-ulp difference (the order of a sum, the
last bit of an ``exp``) until an abort threshold is crossed or not, a sign flips after
``tan(exp(x))``, or a one-pass standard deviation of a constant vector comes out as NaN
or as 1e-9. Such a program has no single correct fitness: two correct implementations
may disagree. A mismatch is classified *chaotic* when the oracle itself changes its
answer under another equally valid rounding (``oracle.variant``: reductions reversed,
or strictly left to right, or every transcendental result one ulp up, or every
reduction and transcendental result moved by a random -1/0/+1 ulp, three seeds).
Chaotic mismatches are counted and must stay <= 0.5 % of the pairs (observed: 0 of
2040 in the default sweep on both backends, 8 of 10 200 in the large CPU sweep);
every other mismatch fails. Op-alone cases get no chaos excuse.

Known backend bugs are listed in ``KNOWN_BUGS`` (left out of the sweeps) and
reproduced minimally by ``test_known_backend_bugs``, a strict xfail.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import oracle
from conftest import NON_RANDOM_OPS, ProgramGenerator, backend_kwargs, require_backend

import azero_jax as az
from azero_jax.core import generator as generator_lib
from azero_jax.core import program as program_lib
from azero_jax.core.tasks import Task

RTOL = 1e-9  # the core issue's tolerance
ATOL = 1e-15
RECORD = (8, 8)
CHAOTIC_LIMIT = 0.005

# (F, memory (S, V, M), number of random algorithms).
GROUPS = (
    (1, (6, 6, 3), 150),
    (2, (4, 3, 2), 170),
    (4, (8, 9, 3), 220),
    (8, (5, 9, 2), 190),
    (16, (10, 16, 4), 160),
    (32, (6, 5, 3), 130),
)
N_TRAIN, N_VALID = 20, 10

# Known backend bugs: {(backend, op-alone case id): reason}. These cases are left out of
# the sweeps and reproduced, minimally, by test_known_backend_bugs (a strict xfail).
SUBNORMAL_BUG = ("XLA on CPU flushes float64 subnormals to zero (FTZ/DAZ): 1e-310 reads as "
                 "0, so log(1e-310) = -inf (reference: -713.8) and 1e-310 * inf = NaN "
                 "(reference: inf)")
KNOWN_BUGS: dict[tuple[str, str], str] = {
    ("jax", "op14-s10"): SUBNORMAL_BUG, ("jax", "op14-s10-alias"): SUBNORMAL_BUG,
    ("jax", "op29-s10"): SUBNORMAL_BUG, ("jax", "op29-s10-alias"): SUBNORMAL_BUG,
}

OP_SETS = (frozenset(NON_RANDOM_OPS),) * 3


# ----------------------------------------------------------------------------------
# Tasks and algorithms of the sweep.


def group_tasks(F: int, epochs: int | None = None) -> list[Task]:
    """Four tasks of one F: linear (E=1), accuracy (E=1), teacher NN (E=3), big labels (E=2).

    With ``epochs`` every task gets that many epochs (one evaluation shape for JAX).
    """
    rng = np.random.default_rng(1000 + F)
    x = rng.standard_normal((N_TRAIN + N_VALID, F))
    w = rng.standard_normal(F)
    lin = az.tasks.scalar_linear_regression_task(F, N_TRAIN, N_VALID, data_seed=F,
                                                 param_seed=7 * F)
    labels = (x @ w > 0).astype(np.float64)
    acc = Task(x[:N_TRAIN], labels[:N_TRAIN], x[N_TRAIN:], labels[N_TRAIN:],
               eval_type="accuracy", num_epochs=1, data_seed=3, name="accuracy")
    nn = az.tasks.scalar_2layer_nn_regression_task(F, N_TRAIN, N_VALID, data_seed=10 + F,
                                                   param_seed=20 + F, num_epochs=3)
    big_y = 30.0 * np.tanh(x @ w) + 10.0
    big = Task(x[:N_TRAIN], big_y[:N_TRAIN], x[N_TRAIN:], big_y[N_TRAIN:], num_epochs=2,
               data_seed=5, name="big_labels")
    found = (lin, acc, nn, big)
    if epochs is not None:
        found = tuple(dataclasses.replace(t, num_epochs=epochs, train_orders=None)
                      for t in found)
    return [t.with_index(i) for i, t in enumerate(found)]


def group_algorithms(F: int, memory, count: int, pool=None) -> list:
    """Random algorithms of one group: from all non-random ops (``pool`` None, with some
    mutated hand-coded models) or only from the ops of ``pool``."""
    gen = ProgramGenerator(np.random.default_rng(F * 7919 + 1 + (pool is not None)),
                           edge_probability=0.1)
    ops = NON_RANDOM_OPS if pool is None else tuple(sorted(pool))
    S, V, M = memory
    seeds = []
    if pool is None and S >= 4 and V >= 3:
        seeds.append(generator_lib.linear_model(0.01))
    if pool is None and S >= 5 and V >= 9 and M >= 2:
        seeds.append(generator_lib.neural_net(0.01, 0.1, 0.1).replace(
            0, [program_lib.instruction("SCALAR_CONST_SET_OP", out=3, d=0.01),
                program_lib.instruction("VECTOR_CONST_SET_OP", out=2, f0=0.3, f1=0.2),
                program_lib.instruction("MATRIX_CONST_SET_OP", out=0, f0=0.6, f1=0.1,
                                        f2=-0.3)]))
    scalar_writers = [op for op in ops if oracle.OPERAND_TYPES[op][2] == "S"]
    out = []
    for i in range(count):
        kind = gen.rng.random()
        if kind < 0.15 and seeds:
            base = seeds[int(gen.rng.integers(len(seeds)))]
            out.append(gen.mutate(base, memory, num_changes=int(gen.rng.integers(1, 4))))
        elif kind < 0.35 and scalar_writers:
            # Short Predicts that always end by writing s1: more programs that learn.
            algo = gen.algorithm(memory, sizes=((0, 3), (1, 4), (1, 6)), ops=(ops,) * 3)
            last = gen.instruction(int(gen.rng.choice(scalar_writers)), memory)
            fixed = np.array(program_lib.as_component([last]))
            fixed["out"] = 1
            out.append(algo.replace(1, np.concatenate([algo.predict, fixed])))
        else:
            out.append(gen.algorithm(memory, sizes=((0, 5), (1, 8), (0, 10)), ops=(ops,) * 3))
    return out


@dataclasses.dataclass
class Sweep:
    F: int
    memory: tuple
    algorithms: list
    tasks: list
    algorithm_index: np.ndarray
    task_index: np.ndarray
    expected: list  # oracle.OracleResult per pair


_SWEEPS: dict[int, Sweep] = {}


def sweep(F: int, memory, count: int) -> Sweep:
    if F not in _SWEEPS:
        algorithms = group_algorithms(F, memory, count)
        tasks = group_tasks(F)
        rng = np.random.default_rng(F)
        a_index, t_index = [], []
        for a in range(len(algorithms)):
            for t in rng.choice(len(tasks), size=2, replace=False):
                a_index.append(a)
                t_index.append(int(t))
        expected = [run_oracle(algorithms[a], tasks[t], memory)
                    for a, t in zip(a_index, t_index)]
        _SWEEPS[F] = Sweep(F, memory, algorithms, tasks, np.array(a_index), np.array(t_index),
                           expected)
    return _SWEEPS[F]


def run_oracle(algorithm, task, memory, max_abs_error=100.0, record=RECORD, **kwargs):
    S, V, M = memory
    return oracle.run(algorithm, task, num_scalars=S, num_vectors=V, num_matrices=M,
                      max_abs_error=max_abs_error, record_errors=record, **kwargs)


# ----------------------------------------------------------------------------------
# Comparison.


def close(a, b) -> bool:
    return bool(np.isclose(a, b, rtol=RTOL, atol=ATOL)) or (math.isnan(a) and math.isnan(b))


def mismatches(results, i, expected: oracle.OracleResult) -> list[str]:
    """Human-readable differences between a backend's pair ``i`` and the oracle."""
    problems = []
    fitness = float(results.fitness[i])
    if not close(fitness, expected.fitness):
        problems.append(f"fitness {fitness!r} != oracle {expected.fitness!r}")
    if int(results.train_steps[i]) != expected.train_steps:
        problems.append(f"train_steps {int(results.train_steps[i])} != oracle "
                        f"{expected.train_steps}")
    for name, got, count, want in (
            ("train errors", results.train_errors, results.num_train_errors,
             expected.train_errors),
            ("valid errors", results.valid_errors, results.num_valid_errors,
             expected.valid_errors)):
        n = int(count[i])
        values = np.asarray(got[i, :n], dtype=np.float64)
        if n != len(want) or not np.allclose(values, want, rtol=RTOL, atol=ATOL):
            problems.append(f"{name} {values.tolist()} != oracle {list(want)}")
    return problems


def memory_mismatches(got, expected: oracle.OracleResult) -> list[str]:
    """Differences between a backend's final memory (s, v, m) and the oracle's."""
    problems = []
    for name, a, b in zip(("s", "v", "m"), got, (expected.memory.s, expected.memory.v,
                                                 expected.memory.m)):
        a = np.asarray(a, dtype=np.float64)
        if a.shape != b.shape or not np.allclose(a, b, rtol=RTOL, atol=1e-12, equal_nan=True):
            bad = np.argwhere(~np.isclose(a, b, rtol=RTOL, atol=1e-12, equal_nan=True))
            where = tuple(int(k) for k in bad[0]) if len(bad) else ()
            problems.append(f"final {name}{list(where)} = {a[where] if len(bad) else a!r} != "
                            f"oracle {b[where] if len(bad) else b!r}")
    return problems


def backend_memories(backend, results, algorithms, tasks, a_index, t_index, memory,
                     max_abs_error, wanted):
    """Final memory of the pairs ``wanted``: JAX's ``return_memory``, the CPU's ``run_debug``."""
    if backend == "jax":
        return {i: (results.scalars[i], results.vectors[i], results.matrices[i]) for i in wanted}
    from azero_jax.backends.cpu import cpu_evaluator
    out = {}
    for i in wanted:
        debug = cpu_evaluator.run_debug(algorithms[a_index[i]], tasks[t_index[i]],
                                        az.MemoryConfig(*memory), max_abs_error=max_abs_error,
                                        record_errors=RECORD)
        out[i] = (debug["scalars"], debug["vectors"], debug["matrices"])
    return out


def is_chaotic(algorithm, task, memory, expected, max_abs_error=100.0, **kwargs) -> bool:
    """Whether the oracle's own answer changes under another valid rounding."""
    for name, seed in [(v, 0) for v in oracle.VARIANTS[1:]] + [("jitter", 1), ("jitter", 2)]:
        with oracle.variant(name, seed):
            other = run_oracle(algorithm, task, memory, max_abs_error, **kwargs)
        if (not close(other.fitness, expected.fitness)
                or other.train_steps != expected.train_steps):
            return True
    return False


def describe(algorithm, task, memory) -> str:
    return (f"memory S,V,M={memory} task={task.name!r} (F={task.features_size}, "
            f"E={task.num_epochs}, {task.eval_type}, index {task.index})\n"
            + az.format_algorithm(algorithm))


def evaluate_backend(backend, algorithms, tasks, a_index, t_index, memory, **kwargs):
    S, V, M = memory
    return az.evaluate_pairs(algorithms, tasks, a_index, t_index,
                             memory=az.MemoryConfig(S, V, M), record_errors=RECORD,
                             op_sets=kwargs.pop("op_sets", OP_SETS), **backend_kwargs(backend),
                             **kwargs)


# ----------------------------------------------------------------------------------
# The random-algorithm sweep.


def test_sweep_size():
    """The sweep has >= 1000 random algorithms over F in {1, 2, 4, 8, 16, 32}."""
    assert sum(count for _, _, count in GROUPS) >= 1000
    assert sorted(F for F, _, _ in GROUPS) == [1, 2, 4, 8, 16, 32]


FULL_SWEEP_BACKENDS = ["cpu", "jax"]


@pytest.mark.parametrize("backend_name", FULL_SWEEP_BACKENDS)
def test_random_algorithms_match_oracle(backend_name):
    """All 59 non-random ops in every component, six F (one JAX compile per F: a 59-op
    switch compiles in seconds because long component functions run as a scan)."""
    backend = require_backend(backend_name)
    total = 0
    chaotic = []
    failures = []
    for F, memory, count in GROUPS:
        data = sweep(F, memory, count)
        results = evaluate_backend(backend, data.algorithms, data.tasks, data.algorithm_index,
                                   data.task_index, memory)
        for i, expected in enumerate(data.expected):
            total += 1
            problems = mismatches(results, i, expected)
            if not problems:
                continue
            algorithm = data.algorithms[data.algorithm_index[i]]
            task = data.tasks[data.task_index[i]]
            if is_chaotic(algorithm, task, memory, expected):
                chaotic.append(f"F={F} pair {i}")
                continue
            failures.append(f"F={F} pair {i}: " + "; ".join(problems) + "\n"
                            + describe(algorithm, task, memory))
    print(f"{backend}: {total} pairs, {len(chaotic)} chaotic mismatches "
          f"({100.0 * len(chaotic) / total:.2f} %), {len(failures)} real mismatches")
    assert not failures, (f"{len(failures)} of {total} pairs disagree with the oracle "
                          f"(first 5):\n" + "\n".join(failures[:5]))
    assert len(chaotic) <= CHAOTIC_LIMIT * total, (
        f"{len(chaotic)} chaotic mismatches of {total} pairs exceed {CHAOTIC_LIMIT:.1%}: "
        f"{chaotic[:20]}")


def test_oracle_sweep_is_not_trivial():
    """The sweep exercises aborts, NaN/inf, learning and accuracy (checked on the oracle)."""
    fitnesses, aborted, positive = [], 0, 0
    for F, memory, count in GROUPS[:3]:
        data = sweep(F, memory, count)
        for r in data.expected:
            fitnesses.append(r.fitness)
            aborted += r.train_aborted
            positive += r.fitness > 0
    n = len(fitnesses)
    assert 0.05 * n < aborted < 0.8 * n, (aborted, n)
    assert positive > 0.2 * n
    assert len(set(np.round(fitnesses, 6))) > 50


# ----------------------------------------------------------------------------------
# Every op alone on crafted memory.

OP_MEMORY = (6, 6, 3)
SCALAR_PAIRS = ((1.5, -2.25), (0.0, -0.0), (-0.0, 0.0), (np.inf, 1.0), (-np.inf, -np.inf),
                (np.nan, 1.0), (1.0, np.nan), (1e300, 1e300), (-3.0, 0.0), (0.5, 2.0),
                (1e-310, 3.0), (-1e-300, -7.0), (0.7, 0.7), (2.0, -0.5))
FLOAT_EDGES = (1.5, -2.0, 0.0, -0.0, np.inf, -np.inf, np.nan, 3e38, -1e-30, 0.25, 7.0, -0.75,
               1e-3, 2.0, -5.5)


def _fill(gen_values, count, start):
    return [gen_values[(start + j) % len(gen_values)] for j in range(count)]


def positions(F: int) -> list[int]:
    """Entries the crafted Setup fills: all of them up to F = 4, else four spread ones."""
    return list(range(F)) if F <= 4 else [0, F // 3, (2 * F) // 3, F - 1]


def crafted_setup(F: int, scenario: int) -> list:
    """Setup instructions writing edge values into s2, s3, v1, v2, m0, m1."""
    I = program_lib.instruction
    x, y = SCALAR_PAIRS[scenario % len(SCALAR_PAIRS)]
    setup = [I("SCALAR_CONST_SET_OP", out=2, d=x), I("SCALAR_CONST_SET_OP", out=3, d=y)]
    where = positions(F)
    for address, offset in ((1, 0), (2, 5)):
        for j, value in zip(where, _fill(FLOAT_EDGES, len(where), scenario + offset)):
            setup.append(I("VECTOR_CONST_SET_OP", out=address, f0=(j + 0.5) / F, f1=value))
    for address, offset in ((0, 3), (1, 9)):
        values = iter(_fill(FLOAT_EDGES, len(where) ** 2, scenario * 2 + offset))
        for r in where:
            for c in where:
                setup.append(I("MATRIX_CONST_SET_OP", out=address, f0=(r + 0.5) / F,
                               f1=(c + 0.5) / F, f2=next(values)))
    return setup


def readout(out_type: str, out: int) -> list:
    """Predict tail bringing an op's output to s1 (scalars are written to s1 directly)."""
    I = program_lib.instruction
    if out_type == "S":
        return [] if out == 1 else [I("SCALAR_SUM_OP", out, out, 1)]
    if out_type == "V":
        return [I("VECTOR_INNER_PRODUCT_OP", out, 0, 1)]
    return [I("MATRIX_VECTOR_PRODUCT_OP", out, 0, 4), I("VECTOR_PRODUCT_OP", 0, 0, 5),
            I("VECTOR_INNER_PRODUCT_OP", 4, 5, 1)]


def op_alone_cases(F: int, ops=NON_RANDOM_OPS) -> list[tuple[str, object]]:
    """(case id, algorithm) for every op, several edge scenarios, with/without aliasing."""
    I = program_lib.instruction
    inputs = {"S": (2, 3), "V": (1, 2), "M": (0, 1)}
    outputs = {"S": 1, "V": 3, "M": 2}
    cases = []
    for op in ops:
        in1_type, in2_type, out_type = oracle.OPERAND_TYPES[op]
        scenarios = range(len(SCALAR_PAIRS)) if op else range(1)
        for scenario in scenarios:
            for alias in (False, True):
                if alias and (out_type is None or out_type not in (in1_type, in2_type)):
                    continue
                in1 = inputs[in1_type][0] if in1_type else 0
                in2 = inputs[in2_type][1] if in2_type else 0
                out = outputs[out_type] if out_type else 0
                if alias:
                    out = in1 if in1_type == out_type else in2
                d, f0, f1, f2 = 0.0, 0.0, 0.0, 0.0
                if op == oracle.SCALAR_CONST_SET:
                    d = SCALAR_PAIRS[scenario][0]
                elif op == oracle.VECTOR_CONST_SET:
                    f0, f1 = (scenario % F + 0.5) / F, FLOAT_EDGES[scenario % len(FLOAT_EDGES)]
                elif op == oracle.MATRIX_CONST_SET:
                    f0, f1 = (scenario % F + 0.5) / F, ((scenario // 2) % F + 0.5) / F
                    f2 = FLOAT_EDGES[scenario % len(FLOAT_EDGES)]
                elif op in oracle.RANDOM_OPS:
                    low = FLOAT_EDGES[scenario % len(FLOAT_EDGES)]
                    f0, f1 = low, (low if scenario % 2 else float(np.float32(low) - 1.0))
                    if op >= oracle.SCALAR_GAUSSIAN_SET:
                        f1 = 0.0
                predict = [I(op, in1, in2, out, d, f0, f1, f2)]
                if out_type:
                    predict += readout(out_type, out)
                algorithm = program_lib.Algorithm(crafted_setup(F, scenario), predict, [])
                cases.append((f"op{op}-s{scenario}{'-alias' if alias else ''}", algorithm))
    return cases


def op_task(F: int, num_train: int = 3, num_valid: int = 2, epochs: int = 1) -> Task:
    rng = np.random.default_rng(77 + F)
    x = rng.standard_normal((num_train + num_valid, F))
    return Task(x[:num_train], np.full(num_train, 0.5), x[num_train:],
                np.full(num_valid, 0.5), num_epochs=epochs, name="op_alone")


def _run_cases(backend, F, cases, op_sets):
    task = op_task(F)
    algorithms = [algorithm for _, algorithm in cases]
    big = 1e300
    results = az.evaluate_pairs(algorithms, [task], np.arange(len(cases)),
                                np.zeros(len(cases), dtype=int),
                                memory=az.MemoryConfig(*OP_MEMORY), max_abs_error=big,
                                record_errors=(3, 2), op_sets=op_sets,
                                **backend_kwargs(backend))
    failures = []
    for i, (case_id, algorithm) in enumerate(cases):
        if (backend, case_id) in KNOWN_BUGS:
            continue
        expected = oracle.run(algorithm, task, num_scalars=OP_MEMORY[0],
                              num_vectors=OP_MEMORY[1], num_matrices=OP_MEMORY[2],
                              max_abs_error=big, record_errors=(3, 2))
        problems = mismatches(results, i, expected)
        if problems:
            failures.append(f"{case_id} (F={F}): " + "; ".join(problems) + "\n"
                            + az.format_algorithm(algorithm.replace(0, [])))
    return failures


@pytest.mark.parametrize("backend_name", FULL_SWEEP_BACKENDS)
@pytest.mark.parametrize("F", [1, 4])
def test_every_op_alone(backend_name, F):
    backend = require_backend(backend_name)
    failures = _run_cases(backend, F, op_alone_cases(F), OP_SETS)
    assert not failures, (f"{len(failures)} single-op cases disagree with the oracle "
                          f"(first 8; Setup = crafted edge values, see crafted_setup):\n"
                          + "\n".join(failures[:8]))


@pytest.mark.parametrize("backend_name", FULL_SWEEP_BACKENDS)
def test_deterministic_random_ops(backend_name):
    """uniform(lo, hi) with lo > hi or lo == hi is lo; gaussian(mu, 0) is mu (both backends)."""
    backend = require_backend(backend_name)
    cases = op_alone_cases(4, ops=tuple(sorted(oracle.RANDOM_OPS)))
    op_sets = (frozenset(range(56, 59)), frozenset(oracle.RANDOM_OPS | {0, 1, 25, 27, 31}),
               frozenset({0}))
    failures = _run_cases(backend, 4, cases, op_sets)
    assert not failures, "\n".join(failures[:8])


def test_op_alone_cases_cover_every_op():
    cases = op_alone_cases(4) + op_alone_cases(4, ops=tuple(sorted(oracle.RANDOM_OPS)))
    ops = {int(algorithm.predict[0]["op"]) for _, algorithm in cases}
    assert ops == set(range(65))
    assert len(cases) > 700


# ----------------------------------------------------------------------------------
# Hand-written programs that write the reserved cells s0 and v0 (the reference's
# randomizer never does, but hand-built instructions may: §1.3).

RESERVED_PROGRAMS = {
    # s0 written in Predict is visible to the rest of Predict; Learn sees the label.
    "s0_in_predict": """def Setup():
def Predict():
  s0 = 5
  s1 = s0 * s0
def Learn():
  s2 = s0 + s2
""",
    # v0 overwritten in Predict; Learn gets the features back.
    "v0_in_predict": """def Setup():
def Predict():
  v0 = v0 + v0
  s1 = mean(v0)
  s1 = s1 + s2
def Learn():
  s2 = mean(v0)
  s2 = s2 * s0
""",
    # v0 overwritten in Learn is replaced by the next example's features before Predict.
    "v0_in_learn": """def Setup():
def Predict():
  s1 = dot(v0, v1)
def Learn():
  v1 = v1 + v0
  v0 = bcast(s0)
  v1 = v1 - v0
""",
}


@pytest.mark.parametrize("backend_name", ["jax", "cpu"])
def test_programs_writing_reserved_cells(backend_name):
    backend = require_backend(backend_name)
    F, memory = 4, (8, 9, 3)
    tasks = group_tasks(F, epochs=2)
    algorithms = [az.parse_algorithm(text) for text in RESERVED_PROGRAMS.values()]
    a_index = np.repeat(np.arange(len(algorithms)), len(tasks))
    t_index = np.tile(np.arange(len(tasks)), len(algorithms))
    results = evaluate_backend(backend, algorithms, tasks, a_index, t_index, memory,
                               max_abs_error=1e6, op_sets=None)
    failures = []
    for i, (a, t) in enumerate(zip(a_index, t_index)):
        expected = run_oracle(algorithms[a], tasks[t], memory, max_abs_error=1e6)
        problems = mismatches(results, i, expected)
        if problems:
            failures.append(f"{list(RESERVED_PROGRAMS)[a]} on {tasks[t].name}: "
                            + "; ".join(problems))
    assert not failures, "\n".join(failures)


# ----------------------------------------------------------------------------------
# The pooled sweep: every op, both backends, one compile per group (the default run).
#
# A JAX compile costs roughly a constant plus a share per op in the switches, so the
# 58 ops 1..58 are split into three pools; each group (its own F, memory and epochs)
# draws random algorithms from its pool only, and runs every op of its pool alone on
# crafted memory in the same call (the op-alone task has the sweep tasks' shape). The
# F = 4 group also runs the deterministic cases of the six random ops. Final memories
# of the op-alone pairs are compared too (JAX: ``return_memory``; CPU: ``run_debug``).

CONST_OPS = frozenset({56, 57, 58})
READOUT_OPS = frozenset({0, 1, 25, 27, 31})
# (F, memory (S, V, M), epochs of every task, number of random algorithms).
POOLED_GROUPS = (
    (1, (6, 6, 3), 1, 340),
    (4, (8, 9, 3), 3, 340),
    (32, (7, 6, 3), 2, 330),
)


def op_pools(n: int) -> list[frozenset]:
    ops = np.random.default_rng(5).permutation(np.arange(1, 59))
    return [frozenset(int(o) for o in ops[i::n]) for i in range(n)]


@dataclasses.dataclass
class Pooled:
    F: int
    memory: tuple
    op_sets: tuple
    algorithms: list
    tasks: list
    algorithm_index: np.ndarray
    task_index: np.ndarray
    case_ids: list  # None for a random-sweep pair, the op-alone case id otherwise
    expected: list


_POOLED: dict[int, Pooled] = {}


def pooled_group(g: int) -> Pooled:
    if g not in _POOLED:
        F, memory, epochs, count = POOLED_GROUPS[g]
        pool = op_pools(len(POOLED_GROUPS))[g]
        extra = set(oracle.RANDOM_OPS) if F == 4 else set()
        op_sets = (frozenset(pool | CONST_OPS | {0}),
                   frozenset(pool | READOUT_OPS | extra), frozenset(pool | {0}))
        algorithms = group_algorithms(F, memory, count, pool=pool)
        tasks = group_tasks(F, epochs) + [op_task(F, N_TRAIN, N_VALID, epochs).with_index(4)]
        rng = np.random.default_rng(100 + F)
        a_index, t_index = [], []
        for a in range(len(algorithms)):
            for t in rng.choice(4, size=2, replace=False):
                a_index.append(a)
                t_index.append(int(t))
        case_ids = [None] * len(a_index)
        cases = op_alone_cases(F, ops=tuple(sorted(pool)))
        if extra:
            cases += op_alone_cases(F, ops=tuple(sorted(extra)))
        for case_id, algorithm in cases:
            a_index.append(len(algorithms))
            t_index.append(4)
            case_ids.append(case_id)
            algorithms.append(algorithm)
        expected = [run_oracle(algorithms[a], tasks[t], memory)
                    for a, t in zip(a_index, t_index)]
        _POOLED[g] = Pooled(F, memory, op_sets, algorithms, tasks, np.array(a_index),
                            np.array(t_index), case_ids, expected)
    return _POOLED[g]


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", ["jax", "cpu"])
def test_pooled_sweep_matches_oracle(backend_name):
    """Three groups covering all 58 ops 1..58 (+ the random ops' deterministic cases),
    with the final memory of every op-alone pair compared.

    On a loaded 2-core CPU each JAX compile here took 2-5 minutes (~25 ops per switch),
    so it is ``slow``; ``test_core_ops_match_oracle`` is the default JAX run, and the CPU
    backend's default run is the full sweep above plus ``test_every_op_alone``."""
    backend = require_backend(backend_name)
    total, chaotic, failures, op_failures, op_pairs = 0, [], [], [], 0
    for g in range(len(POOLED_GROUPS)):
        data = pooled_group(g)
        extra = {"return_memory": True} if backend == "jax" else {}
        results = evaluate_backend(backend, data.algorithms, data.tasks, data.algorithm_index,
                                   data.task_index, data.memory, op_sets=data.op_sets, **extra)
        op_cases = [i for i, c in enumerate(data.case_ids) if c is not None]
        memories = backend_memories(backend, results, data.algorithms, data.tasks,
                                    data.algorithm_index, data.task_index, data.memory, 100.0,
                                    op_cases)
        for i, expected in enumerate(data.expected):
            algorithm = data.algorithms[data.algorithm_index[i]]
            task = data.tasks[data.task_index[i]]
            problems = mismatches(results, i, expected)
            if (backend, data.case_ids[i]) in KNOWN_BUGS:
                continue
            if data.case_ids[i] is not None:
                op_pairs += 1
                problems += memory_mismatches(memories[i], expected)
                if problems:
                    op_failures.append(f"{data.case_ids[i]} (F={data.F}): " + "; ".join(problems)
                                       + "\n" + describe(algorithm, task, data.memory))
                continue
            total += 1
            if not problems:
                continue
            if is_chaotic(algorithm, task, data.memory, expected):
                chaotic.append(f"F={data.F} pair {i}")
                continue
            failures.append(f"F={data.F} pair {i}: " + "; ".join(problems) + "\n"
                            + describe(algorithm, task, data.memory))
    print(f"{backend}: {total} random pairs ({len(chaotic)} chaotic, {len(failures)} real "
          f"mismatches), {op_pairs} op-alone pairs ({len(op_failures)} mismatches)")
    assert not op_failures, (f"{len(op_failures)} op-alone cases disagree with the oracle "
                             "(first 6):\n" + "\n".join(op_failures[:6]))
    assert not failures, (f"{len(failures)} of {total} pairs disagree with the oracle "
                          f"(first 5):\n" + "\n".join(failures[:5]))
    assert len(chaotic) <= CHAOTIC_LIMIT * total, chaotic


def test_pooled_sweep_covers_every_op():
    pools = op_pools(len(POOLED_GROUPS))
    assert frozenset().union(*pools) == frozenset(range(1, 59))
    assert sum(count for *_, count in POOLED_GROUPS) >= 1000
    used = set()
    for g in range(len(POOLED_GROUPS)):
        data = pooled_group(g)
        for algorithm in data.algorithms:
            used |= algorithm.op_codes()
        for c, allowed in enumerate(data.op_sets):
            for algorithm in data.algorithms:
                assert algorithm.op_codes(c) <= allowed
    assert used >= set(range(1, 65))


# ----------------------------------------------------------------------------------
# Larger sweep (not in CI's default run).


@pytest.mark.exhaustive  # the JAX half compiles for tens of minutes on a 2-core CPU
@pytest.mark.parametrize("backend_name", ["jax", "cpu"])
def test_large_sweep(backend_name):
    """5x the default sweep with longer programs (about 10 000 pairs)."""
    backend = require_backend(backend_name)
    total, chaotic, failures = 0, 0, []
    for F, memory, count in GROUPS:
        gen = ProgramGenerator(np.random.default_rng(F + 99), edge_probability=0.15)
        algorithms = [gen.algorithm(memory, sizes=((0, 8), (1, 14), (0, 20)))
                      for _ in range(count * 5)]
        tasks = group_tasks(F)
        a_index = np.repeat(np.arange(len(algorithms)), 2)
        t_index = np.random.default_rng(F).integers(len(tasks), size=len(a_index))
        results = evaluate_backend(backend, algorithms, tasks, a_index, t_index, memory)
        for i, (a, t) in enumerate(zip(a_index, t_index)):
            total += 1
            expected = run_oracle(algorithms[a], tasks[t], memory)
            problems = mismatches(results, i, expected)
            if not problems:
                continue
            if is_chaotic(algorithms[a], tasks[t], memory, expected):
                chaotic += 1
            else:
                failures.append(f"F={F}: " + "; ".join(problems) + "\n"
                                + describe(algorithms[a], tasks[t], memory))
    print(f"{backend}: {total} pairs, {chaotic} chaotic, {len(failures)} real mismatches")
    assert not failures, "\n".join(failures[:5])
    assert chaotic <= CHAOTIC_LIMIT * total


# ----------------------------------------------------------------------------------
# Vector labels (our multi-class convention, see tests/oracle.py).

MULTICLASS_OPS = (frozenset({0, 56, 57, 58}),
                  frozenset({0, 3, 13, 18, 19, 23, 25, 27, 31, 45, 48}),
                  frozenset({0, 1, 3, 16, 18, 23, 24, 28, 39}))


def multiclass_tasks(F: int = 4, K: int = 3) -> list[Task]:
    rng = np.random.default_rng(31)
    out = []
    for index, scale in enumerate((1.0, 30.0)):
        x = rng.standard_normal((N_TRAIN + N_VALID, F)) * scale
        w = rng.standard_normal((F, K))
        labels = np.eye(K)[np.argmax(x @ w, axis=1)]
        out.append(Task(x[:N_TRAIN], labels[:N_TRAIN], x[N_TRAIN:], labels[N_TRAIN:],
                        eval_type="accuracy", num_epochs=2, data_seed=index, index=index,
                        name=f"{K}-class"))
    return out


@pytest.mark.parametrize("backend_name", ["jax", "cpu"])
def test_vector_label_tasks_match_oracle(backend_name):
    """Random programs (and a softmax regression) on 3-class tasks: v1 hidden in Predict,
    one-hot in Learn, truncating softmax of v2 in training, argmax accuracy."""
    backend = require_backend(backend_name)
    memory = (5, 5, 2)
    gen = ProgramGenerator(np.random.default_rng(3), edge_probability=0.05)
    ops = tuple(tuple(sorted(s)) for s in MULTICLASS_OPS)
    algorithms = [gen.algorithm(memory, sizes=((0, 4), (1, 6), (0, 8)), ops=ops)
                  for _ in range(120)]
    algorithms.append(az.parse_algorithm(
        "def Setup():\n  s2 = 0.1\ndef Predict():\n  v2 = dot(m0, v0)\ndef Learn():\n"
        "  v3 = v1 - v2\n  v3 = s2 * v3\n  m1 = outer(v3, v0)\n  m0 = m0 + m1\n"))
    tasks = multiclass_tasks()
    a_index = np.repeat(np.arange(len(algorithms)), 2)
    t_index = np.tile([0, 1], len(algorithms))
    results = evaluate_backend(backend, algorithms, tasks, a_index, t_index, memory,
                               op_sets=MULTICLASS_OPS)
    failures, chaotic = [], 0
    for i, (a, t) in enumerate(zip(a_index, t_index)):
        expected = run_oracle(algorithms[a], tasks[t], memory)
        problems = mismatches(results, i, expected)
        if problems and is_chaotic(algorithms[a], tasks[t], memory, expected):
            chaotic += 1
        elif problems:
            failures.append("; ".join(problems) + "\n" + describe(algorithms[a], tasks[t], memory))
    softmax_regression = run_oracle(algorithms[-1], tasks[0], memory).fitness
    assert softmax_regression > 0.6  # the convention lets a plain model learn
    assert not failures, f"{len(failures)} vector-label pairs disagree:\n" + "\n".join(failures[:4])
    assert chaotic <= CHAOTIC_LIMIT * len(a_index) + 1


# ----------------------------------------------------------------------------------
# The default-run JAX differential: one compile, the ops of the hand-coded models and
# the edge-prone ones, Setup limited to constants (compile time grows with every op in
# every switch; Predict's switch is compiled twice, for training and validation).

CORE_OP_SETS = (frozenset({0, 56, 57, 58}),
                frozenset({0, 1, 2, 3, 4, 14, 18, 23, 25, 27, 31, 44, 46, 48, 53, 54}),
                frozenset({0, 1, 2, 3, 16, 18, 23, 25, 28, 39}))


@pytest.mark.parametrize("backend_name", ["jax", "cpu"])
def test_core_ops_match_oracle(backend_name):
    backend = require_backend(backend_name)
    F, memory, epochs = 4, (8, 9, 3), 2
    gen = ProgramGenerator(np.random.default_rng(44), edge_probability=0.1)
    setup_ops, predict_ops, learn_ops = (tuple(sorted(s)) for s in CORE_OP_SETS)
    algorithms = [generator_lib.linear_model(0.01)]
    for _ in range(300):
        algorithms.append(gen.algorithm(memory, sizes=((0, 5), (1, 8), (0, 10)),
                                        ops=(setup_ops, predict_ops, learn_ops)))
    cases = [(c, a) for c, a in op_alone_cases(F, ops=tuple(sorted(set(predict_ops) - {0})))
             if (backend, c) not in KNOWN_BUGS]
    tasks = group_tasks(F, epochs) + [op_task(F, N_TRAIN, N_VALID, epochs).with_index(4)]
    a_index = list(np.repeat(np.arange(len(algorithms)), 2))
    t_index = list(np.random.default_rng(1).integers(4, size=len(a_index)))
    a_index += list(range(len(algorithms), len(algorithms) + len(cases)))
    t_index += [4] * len(cases)
    algorithms += [a for _, a in cases]
    a_index, t_index = np.array(a_index), np.array(t_index)
    # A third of the random pairs get a train budget: 0 (rejected), part of an epoch, ...
    rng = np.random.default_rng(2)
    full = epochs * N_TRAIN
    steps = np.where((rng.random(len(a_index)) < 0.33) & (t_index != 4),
                     rng.integers(0, full + 1, size=len(a_index)), full)
    results = evaluate_backend(backend, algorithms, tasks, a_index, t_index, memory,
                               op_sets=CORE_OP_SETS, train_steps=steps)
    failures, chaotic = [], 0
    for i, (a, t) in enumerate(zip(a_index, t_index)):
        S, V, M = memory
        expected = oracle.run(algorithms[a], tasks[t], num_scalars=S, num_vectors=V,
                              num_matrices=M, train_steps=int(steps[i]), record_errors=RECORD)
        problems = mismatches(results, i, expected)
        if not problems:
            continue
        if t != 4 and is_chaotic(algorithms[a], tasks[t], memory, expected,
                                 train_steps=int(steps[i])):
            chaotic += 1
            continue
        failures.append("; ".join(problems) + "\n" + describe(algorithms[a], tasks[t], memory))
    print(f"{backend}: {len(a_index)} pairs, {chaotic} chaotic, {len(failures)} mismatches")
    assert not failures, f"{len(failures)} pairs disagree:\n" + "\n".join(failures[:5])
    assert chaotic <= CHAOTIC_LIMIT * len(a_index)


# ----------------------------------------------------------------------------------
# Known backend bugs, minimally reproduced (strict xfail: an unexpected pass fails, so a
# fix is noticed and the entry removed).

BUG_REPRODUCTIONS = {
    # log of a subnormal: -713.8 (fitness ~0.00089 on labels 0.5), not -inf (abort, 0).
    "subnormal_log": "def Setup():\n  s2 = 1e-310\ndef Predict():\n  s1 = log(s2)\n"
                     "def Learn():\n",
    # A subnormal scaled up is 0.01, not 0.
    "subnormal_product": "def Setup():\n  s2 = 1e-310\n  s3 = 1e+308\ndef Predict():\n"
                         "  s1 = s2 * s3\ndef Learn():\n",
    # 1e-310 * inf = inf, so arctan gives pi/2, not NaN (abort).
    "subnormal_times_inf": "def Setup():\n  s2 = 1e-310\n  m0[0, 0] = inf\n"
                           "def Predict():\n  m1 = s2 * m0\n  s3 = mean(m1)\n"
                           "  s1 = arctan(s3)\ndef Learn():\n",
}
KNOWN_BUG_BACKENDS = {"jax": SUBNORMAL_BUG}


@pytest.mark.parametrize("backend_name", [
    pytest.param(name, marks=pytest.mark.xfail(reason=KNOWN_BUG_BACKENDS[name], strict=True))
    if name in KNOWN_BUG_BACKENDS else name for name in ("jax", "cpu")])
def test_known_backend_bugs(backend_name):
    backend = require_backend(backend_name)
    algorithms = [az.parse_algorithm(text) for text in BUG_REPRODUCTIONS.values()]
    task = op_task(1)
    results = az.evaluate_pairs(algorithms, [task], np.arange(len(algorithms)),
                                np.zeros(len(algorithms), int), memory=az.MemoryConfig(4, 3, 2),
                                max_abs_error=1e300, **backend_kwargs(backend))
    expected = [oracle.run(a, task, num_scalars=4, num_vectors=3, num_matrices=2,
                           max_abs_error=1e300).fitness for a in algorithms]
    assert all(f > 0 for f in expected)
    np.testing.assert_allclose(results.fitness, expected, rtol=RTOL)


@pytest.mark.parametrize("backend_name", FULL_SWEEP_BACKENDS)
def test_fec_probe_runs_match_oracle(backend_name):
    """Short fingerprint runs (§7): 10 training steps, 5 of 10 validation examples (the
    loss still divided by 10), errors recorded; random algorithms of all ops."""
    backend = require_backend(backend_name)
    F, memory, count = 8, (5, 9, 2), 150
    data = sweep(F, memory, 190)
    a_index, t_index = data.algorithm_index[:2 * count], data.task_index[:2 * count]
    results = evaluate_backend(backend, data.algorithms, data.tasks, a_index, t_index, memory,
                               train_steps=np.full(len(a_index), 10), valid_steps=5)
    failures, chaotic = [], 0
    for i, (a, t) in enumerate(zip(a_index, t_index)):
        S, V, M = memory
        expected = oracle.run(data.algorithms[a], data.tasks[t], num_scalars=S, num_vectors=V,
                              num_matrices=M, train_steps=10, valid_steps=5,
                              record_errors=RECORD)
        problems = mismatches(results, i, expected)
        if problems and is_chaotic(data.algorithms[a], data.tasks[t], memory, expected,
                                   train_steps=10, valid_steps=5):
            chaotic += 1
        elif problems:
            failures.append("; ".join(problems) + "\n"
                            + describe(data.algorithms[a], data.tasks[t], memory))
    assert not failures, "\n".join(failures[:5])
    assert chaotic <= CHAOTIC_LIMIT * len(a_index) + 1
