"""The ``"cuda"`` backend under numba's CUDA simulator, against the cpu backend and the oracle.

Run with ``NUMBA_ENABLE_CUDASIM=1 python -m pytest -m cuda tests/test_cuda_evaluator.py``
(CI's step 4). The simulator executes the kernel's Python code thread by thread -- the
same device functions, the same per-thread local memory and the same launch as on a GPU
-- so float64 results must equal the cpu backend's bit for bit (both backends run one
statement of the ops, and the simulator's math is glibc's, like the CPU kernel's). On a
GPU, libdevice rounds transcendentals differently; the device script measures there.

The simulator is slow (pure Python per simulated thread): programs and tasks are small
and the whole file stays within a few minutes of one core.
"""

from __future__ import annotations

import numpy as np
import pytest

import azero_jax as az
from azero_jax.backends.cuda import cuda_evaluator
from azero_jax.core import program as program_lib
from azero_jax.core.tasks import Task

import oracle
from conftest import NON_RANDOM_OPS, RANDOM_OPS, ProgramGenerator
from test_oracle_differential import OP_MEMORY, mismatches, op_alone_cases, op_task

pytestmark = pytest.mark.cuda

ALL_OPS = NON_RANDOM_OPS + RANDOM_OPS


@pytest.fixture(scope="module", autouse=True)
def _simulator():
    if not cuda_evaluator.simulating():
        pytest.skip("bit-exact checks run under NUMBA_ENABLE_CUDASIM=1 (CI step 4); on a GPU "
                    "benchmarks/gpu_session.sh runs the kernel")


def _tasks(F: int, num_train: int = 6, num_valid: int = 3) -> list[Task]:
    """Small tasks of one F: regression (2 epochs), accuracy, and vector labels if F >= 2."""
    rng = np.random.default_rng(40 + F)
    n = num_train + num_valid
    x = rng.standard_normal((n, F))
    w = rng.standard_normal(F)
    y = x @ w
    tasks = [Task(x[:num_train], y[:num_train], x[num_train:], y[num_train:], num_epochs=2,
                  data_seed=1, name="regression"),
             Task(x[:num_train], (y[:num_train] > 0) * 1.0, x[num_train:],
                  (y[num_train:] > 0) * 1.0, eval_type="accuracy", data_seed=2,
                  name="accuracy")]
    if F >= 2:
        classes = (y > 0).astype(int)
        onehot = np.eye(2)[classes]
        tasks.append(Task(x[:num_train], onehot[:num_train], x[num_train:], onehot[num_train:],
                          eval_type="accuracy", data_seed=3, name="classes"))
    return [task.with_index(i) for i, task in enumerate(tasks)]


def _both(algorithms, tasks, memory, **options):
    """(cpu, cuda) results of every algorithm on every task (float64)."""
    a, t = np.meshgrid(np.arange(len(algorithms)), np.arange(len(tasks)), indexing="ij")
    common = dict(memory=az.MemoryConfig(*memory), dtype="float64", **options)
    cpu = az.evaluate_pairs(algorithms, tasks, a.ravel(), t.ravel(), backend="cpu",
                            num_threads=1, **common)
    cuda = az.evaluate_pairs(algorithms, tasks, a.ravel(), t.ravel(), backend="cuda", **common)
    return cpu, cuda, a.ravel(), t.ravel()


def _assert_identical(cpu, cuda, label: str) -> None:
    """Fitness, steps and recorded errors equal bit for bit (NaN padding included)."""
    for name in ("fitness", "train_steps", "num_train_errors", "num_valid_errors",
                 "train_errors", "valid_errors"):
        want, got = getattr(cpu, name), getattr(cuda, name)
        if want is None:
            assert got is None, f"{label}: {name}"
            continue
        bad = np.flatnonzero(~np.all((np.asarray(want) == np.asarray(got))
                                     | (np.isnan(want) & np.isnan(got)),
                                     axis=tuple(range(1, np.ndim(want)))))
        assert not len(bad), (f"{label}: {name} differs for {len(bad)} pairs, first "
                              f"{int(bad[0])}: cpu {want[bad[0]]!r} cuda {got[bad[0]]!r}")


@pytest.mark.parametrize("F, memory, count", [(1, (5, 4, 2), 200), (4, (6, 4, 3), 200),
                                              (2, (4, 3, 2), 100)])
def test_random_programs_match_cpu(F, memory, count):
    """Random programs over all 65 ops (random ops included), edge constants, every component
    possibly empty: fitness, steps and recorded FEC errors equal the cpu backend's."""
    gen = ProgramGenerator(np.random.default_rng(900 + F), edge_probability=0.15)
    algorithms = [gen.algorithm(memory, sizes=((0, 4), (0, 5), (0, 5)), ops=(ALL_OPS,) * 3)
                  for _ in range(count)]
    ops_used = {int(op) for algorithm in algorithms for c in algorithm.components
                for op in c["op"]}
    assert len(ops_used) >= 60  # the sample reaches (nearly) every op
    cpu, cuda, _, _ = _both(algorithms, _tasks(F), memory, record_errors=(4, 3), seed=3)
    _assert_identical(cpu, cuda, f"F={F}")
    # The sample is not degenerate: some pairs learn, some abort early.
    assert (cpu.fitness > 0).any() and (cpu.fitness == 0).any()


def test_every_op_alone_matches_oracle():
    """Each of the 65 ops alone (edge inputs, aliasing), F = 4: oracle and cpu agree with cuda."""
    cases = op_alone_cases(4) + op_alone_cases(4, ops=tuple(sorted(oracle.RANDOM_OPS)))
    cases = cases[::3]  # a third of the scenarios (the simulator is slow); every op stays
    assert {int(a.predict[0]["op"]) for _, a in cases} == set(range(65))
    task = op_task(4)
    algorithms = [algorithm for _, algorithm in cases]
    index = np.arange(len(cases))
    options = dict(memory=az.MemoryConfig(*OP_MEMORY), max_abs_error=1e300,
                   record_errors=(3, 2), dtype="float64")
    results = az.evaluate_pairs(algorithms, [task], index, np.zeros_like(index),
                                backend="cuda", **options)
    failures = []
    for i, (case_id, algorithm) in enumerate(cases):
        op = int(algorithm.predict[0]["op"])
        scenario = int(case_id.split("-s")[1].split("-")[0])
        # uniform(lo, hi) draws unless lo >= hi (odd scenarios); gaussian(mu, 0) never
        # depends on its draw. The oracle draws from numpy: compared with cpu below.
        if op in (59, 60, 61) and scenario % 2 == 0:
            continue
        expected = oracle.run(algorithm, task, num_scalars=OP_MEMORY[0],
                              num_vectors=OP_MEMORY[1], num_matrices=OP_MEMORY[2],
                              max_abs_error=1e300, record_errors=(3, 2))
        problems = mismatches(results, i, expected)
        if problems:
            failures.append(f"{case_id}: " + "; ".join(problems))
    assert not failures, "\n".join(failures[:8])
    cpu = az.evaluate_pairs(algorithms, [task], index, np.zeros_like(index), backend="cpu",
                            num_threads=1, **options)
    _assert_identical(cpu, results, "ops alone")


def test_budgets_early_stop_and_valid_steps():
    """Train budgets (0, partial, beyond the epochs), valid_steps and the abort threshold."""
    memory = (4, 3, 1)
    algorithms = [az.generator.linear_model(0.05), az.generator.linear_model(30.0)]
    tasks = _tasks(4)[:2]
    a, t = np.meshgrid([0, 1], [0, 1], indexing="ij")
    a, t = np.tile(a.ravel(), 4), np.tile(t.ravel(), 4)
    budgets = np.repeat([0, 5, 9, 1000], 4)
    for valid_steps, max_abs_error in ((None, 100.0), (2, 0.5)):
        common = dict(memory=az.MemoryConfig(*memory), train_steps=budgets,
                      valid_steps=valid_steps, max_abs_error=max_abs_error,
                      record_errors=(5, 3), dtype="float64")
        cpu = az.evaluate_pairs(algorithms, tasks, a, t, backend="cpu", num_threads=1, **common)
        cuda = az.evaluate_pairs(algorithms, tasks, a, t, backend="cuda", **common)
        _assert_identical(cpu, cuda, f"valid_steps={valid_steps}")
        assert (cuda.train_steps[budgets == 0] == 0).all()
        assert (cuda.train_steps[budgets == 5] <= 5).all()
    # The diverging learner aborts during training (a NaN/inf error): fitness 0.
    assert (cuda.fitness[a == 1] == 0.0).any()


def test_nan_and_inf_abort():
    """Predictions of NaN or inf abort (training: fitness 0; validation: fitness 0)."""
    I = program_lib.instruction
    programs = {
        "nan_in_training": az.Algorithm([], [I("SCALAR_LOG_OP", in1=2, out=3),
                                             I("SCALAR_PRODUCT_OP", in1=3, in2=2, out=1)], []),
        "inf_prediction": az.Algorithm([I("SCALAR_CONST_SET_OP", out=2, d=-1.0)],
                                       [I("SCALAR_LOG_OP", in1=2, out=1)], []),
        "fine": az.generator.linear_model(0.01),
    }
    tasks = _tasks(4)[:2]  # scalar predictions: regression and accuracy
    cpu, cuda, a, _ = _both(list(programs.values()), tasks, (4, 3, 1), record_errors=(4, 3))
    _assert_identical(cpu, cuda, "aborts")
    assert (cuda.fitness[a < 2] == 0.0).all() and (cuda.train_steps[a == 0] == 1).all()
    assert (cuda.fitness[a == 2] > 0.0).all()


def test_random_ops_follow_the_cpu_streams():
    """Random ops draw the cpu backend's numbers: same seed, same draws; seed and id key them."""
    I = program_lib.instruction
    algorithm = az.Algorithm(
        [I("MATRIX_GAUSSIAN_SET_OP", out=0, f0=0.0, f1=1.0),
         I("VECTOR_UNIFORM_SET_OP", out=1, f0=-1.0, f1=1.0)],
        [I("MATRIX_VECTOR_PRODUCT_OP", in1=0, in2=0, out=2),
         I("VECTOR_INNER_PRODUCT_OP", in1=2, in2=1, out=1),
         I("SCALAR_UNIFORM_SET_OP", out=3, f0=0.0, f1=1e-3),
         I("SCALAR_SUM_OP", in1=1, in2=3, out=1)], [])
    tasks = _tasks(4)[:1]
    fits = []
    for seed in (0, 1):
        cpu, cuda, _, _ = _both([algorithm, algorithm], tasks, (4, 3, 1), seed=seed,
                                algorithm_ids=np.array([5, 6]), record_errors=(6, 3))
        _assert_identical(cpu, cuda, f"seed={seed}")
        fits.append(cuda.train_errors.copy())
    assert not np.array_equal(fits[0][0], fits[0][1])  # ids key the streams
    assert not np.array_equal(fits[0], fits[1])  # so does the seed


def test_float32_mode_close_to_float64():
    """float32 memory: the hand-written models learn to within float32 rounding."""
    algorithms = [az.generator.linear_model(0.01), az.generator.neural_net(0.01, 0.1, 0.1)]
    task = az.tasks.scalar_linear_regression_task(4, 40, 10, data_seed=1, param_seed=2)
    memory = az.MemoryConfig(5, 9, 2)
    r64 = az.evaluate_pairs(algorithms, [task], [0, 1], [0, 0], memory=memory, backend="cpu",
                            num_threads=1, record_errors=(10, 10))
    r32 = az.evaluate_pairs(algorithms, [task], [0, 1], [0, 0], memory=memory, backend="cuda",
                            dtype="float32", record_errors=(10, 10))
    np.testing.assert_array_equal(r32.train_steps, r64.train_steps)
    np.testing.assert_allclose(r32.fitness, r64.fitness, rtol=1e-4)
    np.testing.assert_allclose(r32.train_errors, r64.train_errors, rtol=1e-3, atol=1e-5)


def test_golden_subset():
    """Golden values of the reference's executor (one dataset; the simulator takes ~10 s per
    8000-step pair): an abort on the first step, a learner in both eval types, and the std
    of a constant, which is exactly 0 only in Eigen's summation order."""
    import test_golden_reference as golden
    records = golden._golden()[0]
    chosen = [i for i, r in enumerate(records) if r["group"] == "hand" and (
        r["name"] in ("nan_first_step", "linear_lr0.1")
        or (r["name"], r["eval_type"]) == ("stdev_of_constant", "ACCURACY"))]
    assert len(chosen) == 5
    golden._check("cuda", chosen, datasets=sorted(golden._golden()[2])[:1])


def test_user_errors():
    """dtype is checked; a pair table without pairs returns empty results."""
    algorithm = az.generator.linear_model(0.01)
    task = _tasks(4)[0]
    with pytest.raises(ValueError, match="dtype"):
        az.evaluate_pairs([algorithm], [task], [0], [0], memory=az.MemoryConfig(4, 3, 1),
                          backend="cuda", dtype="float16")
    empty = az.evaluate_pairs([algorithm], [task], [], [], memory=az.MemoryConfig(4, 3, 1),
                              backend="cuda", dtype="float64")
    assert empty.fitness.shape == (0,)


def test_a_search_on_the_cuda_backend_follows_the_cpu_search_exactly():
    """`Search(backend="cuda")` evaluates with the cuda kernel (it once fell through to the
    JAX path): float64 gives the cpu search's populations and fitnesses bit for bit."""
    from azero_jax.backends import backend as backend_lib
    from azero_jax.evolution.regularized_evolution import Search
    from search_helpers import MEMORY, small_spec, task_spec
    spec = small_spec(search_tasks=(task_spec(num_train=10, num_valid=4, num_tasks=1),),
                      population_size=6)
    runs = {}
    for name, options in (("cpu", {}), ("cuda", {"dtype": "float64"})):
        search = Search(spec, memory=MEMORY, seed=5, backend=name, child_batch_size=3,
                        evaluator_options=options)
        assert search.evaluator.name == name
        search.run(max_individuals=12)
        runs[name] = search
    assert isinstance(runs["cuda"].evaluator, backend_lib.CudaEvaluator)
    np.testing.assert_array_equal(runs["cuda"].fitness, runs["cpu"].fitness)
    np.testing.assert_array_equal(runs["cuda"].programs.op, runs["cpu"].programs.op)
