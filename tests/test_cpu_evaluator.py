"""Tests of the per-core CPU backend (``backend="cpu"``,
:mod:`azero_jax.backends.cpu.cpu_evaluator`).

Every test names the backend it runs on. Covered: spec §13 items 1-12, 15 and 19, every
op alone against a small NumPy reference (edge values, aliasing, generic and specialised
feature sizes), the vector-label convention, FEC error recording, threads, random ops,
the W1 benchmark algorithms, and a property test against the JAX backend in float64.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import azero_jax as az
from azero_jax.backends.cpu import cpu_evaluator
from azero_jax.backends.evaluator import flip_and_squash
from azero_jax.core import ops
from azero_jax.core.program import instruction as I
from azero_jax.core.tasks import Task

BACKEND = "cpu"
BIG = 1e12
MEM = az.MemoryConfig(4, 3, 1)
BENCH_DIR = os.environ.get(
    "AZERO_BENCH_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))


def algo(setup=(), predict=(), learn=()) -> az.Algorithm:
    """An algorithm from instruction lines in the reference text format."""
    text = ("def Setup():\n" + "".join(f"  {line}\n" for line in setup) + "def Predict():\n"
            + "".join(f"  {line}\n" for line in predict) + "def Learn():\n"
            + "".join(f"  {line}\n" for line in learn))
    return az.parse_algorithm(text)


def evaluate(algorithms, tasks, memory=MEM, **kwargs):
    if isinstance(algorithms, az.Algorithm):
        algorithms = [algorithms]
    if isinstance(tasks, Task):
        tasks = [tasks]
    a, t = np.meshgrid(np.arange(len(algorithms)), np.arange(len(tasks)), indexing="ij")
    return az.evaluate_pairs(algorithms, tasks, a.ravel(), t.ravel(), memory=memory,
                             backend=BACKEND, dtype="float64", **kwargs)


def fitness(algorithm, task, **kwargs) -> float:
    return float(evaluate(algorithm, task, **kwargs).fitness[0])


def final_scalars(algorithm, task, memory=MEM, **kwargs):
    return cpu_evaluator.run_debug(algorithm, task, memory, **kwargs)["scalars"]


# ----------------------------------------------------------------------------------
# §13 deterministic checks.


def test_item01_flip_and_squash():
    assert flip_and_squash(0.0) == 1.0
    assert flip_and_squash(np.inf) == 0.0 and flip_and_squash(np.nan) == 0.0
    xs = np.linspace(0, 50, 101)
    assert np.all(np.diff(flip_and_squash(xs)) < 0)
    zeros = az.tasks.unit_test_zeros_task(4, 10, 10)
    assert fitness(algo(), zeros) == 1.0


def test_item02_ones_task_rms():
    task = az.tasks.unit_test_ones_task(4, 10, 10)
    assert fitness(algo(predict=["s1 = 0.9"]), task) == pytest.approx(
        float(flip_and_squash(0.1)), rel=1e-15)


@pytest.mark.parametrize("logit,expected", [(-3.0, 0.0), (3.0, 1.0), (np.inf, 1.0),
                                            (-np.inf, 0.0)])
def test_item03_ones_task_accuracy(logit, expected):
    task = az.tasks.unit_test_ones_task(4, 10, 10, eval_type="accuracy")
    algorithm = az.Algorithm([], [I("SCALAR_CONST_SET_OP", out=1, d=logit)], [])
    assert fitness(algorithm, task) == expected


def test_item04_recorded_errors():
    task = az.tasks.unit_test_increment_task(4, 11, 9)
    results = evaluate(algo(), task, record_errors=(11, 9))
    assert results.num_train_errors[0] == 11 and results.num_valid_errors[0] == 9
    np.testing.assert_array_equal(results.train_errors[0], np.arange(11.0))
    np.testing.assert_array_equal(results.valid_errors[0], np.arange(9.0))


def test_items05_06_07_memory_persistence():
    task = az.tasks.unit_test_increment_task(4, 1000, 100)
    persist = algo(predict=["s2 = mean(v0)", "NoOp()", "s1 = s2 + s1"])
    assert final_scalars(persist, task, max_abs_error=BIG)[1] == 504450.0
    labels_in_learn = algo(learn=["s1 = s0 + s1"])
    assert final_scalars(labels_in_learn, task, max_abs_error=BIG)[1] == 499500.0
    labels_in_predict = algo(predict=["s1 = s0 + s1"])
    assert final_scalars(labels_in_predict, task, max_abs_error=BIG)[1] == 0.0


def test_item08_increment_rmse():
    task = az.tasks.unit_test_increment_task(4, 1000, 100, increment=0.1)
    rmse = math.sqrt(np.mean((np.arange(100) * 0.1) ** 2))
    assert rmse == pytest.approx(5.7301832, abs=1e-7)
    assert fitness(algo(), task) == pytest.approx(float(flip_and_squash(rmse)), rel=1e-14)


def test_item09_ones_task_accumulation():
    task = az.tasks.unit_test_ones_task(4, 1000, 100)
    predict = algo(predict=["s2 = 1", "NoOp()", "s1 = s2 + s1"])
    assert final_scalars(predict, task, max_abs_error=BIG)[1] == 1100.0
    learn = algo(learn=["s2 = 1", "NoOp()", "s1 = s2 + s1"])
    assert final_scalars(learn, task, max_abs_error=BIG)[1] == 1000.0


def test_item10_max_abs_error():
    features = np.ones((5, 4))
    labels = np.zeros(5)
    high_train = labels.copy()
    high_train[2] = 1000.0
    task = az.tasks.unit_test_fixed_task(features, high_train, features, labels)
    assert fitness(algo(), task, max_abs_error=100.0) == 0.0
    assert evaluate(algo(), task, max_abs_error=100.0).train_steps[0] == 3  # abort counted
    task = az.tasks.unit_test_fixed_task(features, labels, features, labels + 0.5)
    assert fitness(algo(), task, max_abs_error=100.0) != 0.0
    high_valid = labels.copy()
    high_valid[3] = 1000.0
    task = az.tasks.unit_test_fixed_task(features, labels, features, high_valid)
    assert fitness(algo(), task, max_abs_error=100.0) == 0.0
    assert fitness(algo(), az.tasks.unit_test_zeros_task(4, 5, 5)) == 1.0


@pytest.mark.parametrize("value", [110.0, np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("component", [0, 1, 2])
def test_item11_bad_prediction_gives_zero(value, component):
    task = az.tasks.unit_test_ones_task(4, 10, 10)
    parts = [[], [], []]
    parts[component] = [I("SCALAR_CONST_SET_OP", out=1, d=value)]
    assert fitness(az.Algorithm(*parts), task, max_abs_error=100.0) == 0.0


def test_item12_combine_fitnesses():
    assert az.combine_fitnesses([0.4, 0.2, 0.6, 0.8], "mean") == pytest.approx(0.5)
    assert az.combine_fitnesses([0.9, 0.12, 0.13, 0.1, 0.11], "median") == 0.12


def test_item15_linear_model_and_neural_net():
    linear = az.tasks.scalar_linear_regression_task(4, 1000, 100, data_seed=1, param_seed=2)
    assert fitness(az.generator.linear_model(0.01), linear) > 0.999
    teacher = az.tasks.scalar_2layer_nn_regression_task(4, 1000, 100, data_seed=10000,
                                                        param_seed=1000)
    nn = evaluate([az.generator.neural_net(0.01, 0.1, 0.1)], [teacher],
                  memory=az.MemoryConfig(5, 9, 2), algorithm_ids=[7]).fitness[0]
    assert 0.6 < nn < 0.98  # the reference scored 0.80 on its own draw of this task


def test_item19_epochs():
    """3 examples x 8 epochs: 24 steps, each example 8 times, features and labels paired."""
    values = np.array([1.0, 10.0, 100.0])
    task = Task(np.repeat(values[:, None], 4, 1), values, np.zeros((1, 4)), np.zeros(1),
                num_epochs=8, data_seed=4)
    assert len({tuple(row) for row in task.train_orders}) > 1
    # s2 ends at 0 iff the label sum is 8 * 111; s3 stays 0 iff every label met its features.
    algorithm = algo(setup=["s2 = -888"], predict=["s1 = s2 + s3"],
                     learn=["s2 = s2 + s0", "s4 = mean(v0)", "s4 = s0 - s4", "s4 = abs(s4)",
                            "s3 = s3 + s4"])
    results = evaluate(algorithm, task, memory=az.MemoryConfig(5, 3, 1), max_abs_error=BIG)
    assert results.train_steps[0] == 24 and results.fitness[0] == 1.0


def test_best_epoch_and_late_abort():
    """Fitness is the best validation over epochs; an abort after epoch 0 keeps it."""
    task = az.tasks.unit_test_ones_task(4, 2, 3, num_epochs=3)
    algorithm = algo(setup=["s3 = 0.5"], predict=["s1 = s2 + s0"], learn=["s2 = s2 + s3"])
    # epoch 0 -> s2 = 1 (perfect), epoch 1 -> s2 = 2 (RMSE 1), epoch 2 aborts at s2 = 2.5.
    results = evaluate(algorithm, task, max_abs_error=1.2)
    assert results.fitness[0] == 1.0 and results.train_steps[0] == 6
    # Without the abort the last epoch is worse, but the best one still counts.
    assert fitness(algorithm, task, max_abs_error=BIG) == 1.0
    # Abort in the first epoch: 0, even though validation would have been fine.
    assert fitness(algorithm, task, max_abs_error=0.9) == 0.0


def test_train_budget_and_valid_steps():
    task = az.tasks.unit_test_increment_task(4, 20, 9, num_epochs=3)
    results = evaluate([algo(), algo()], [task], train_steps=[0, 25])
    assert list(results.train_steps) == [0, 25]
    assert results.fitness[0] == 0.0
    # Only 5 of 9 validation examples run, but the loss is divided by 9.
    short = evaluate(algo(), task, valid_steps=5)
    assert short.fitness[0] == pytest.approx(float(flip_and_squash(math.sqrt(30 / 9))),
                                             rel=1e-15)
    # Setup still runs when the budget rejects the algorithm.
    scalars = final_scalars(algo(setup=["s2 = 3"]), task, train_steps=0)
    assert scalars[2] == 3.0


def test_fec_recording_stops_before_abort():
    features = np.ones((6, 4))
    labels = np.array([1.0, 2.0, 500.0, 3.0, 4.0, 5.0])
    task = az.tasks.unit_test_fixed_task(features, labels, features[:3], labels[:3])
    results = evaluate(algo(), task, record_errors=(5, 3), max_abs_error=100.0)
    assert results.num_train_errors[0] == 2 and results.num_valid_errors[0] == 0
    np.testing.assert_array_equal(results.train_errors[0, :2], [1.0, 2.0])
    assert np.isnan(results.train_errors[0, 2:]).all()
    # Only the first epoch is recorded.
    task = az.tasks.unit_test_increment_task(4, 3, 2, num_epochs=4)
    results = evaluate(algo(), task, record_errors=(10, 10))
    assert results.num_train_errors[0] == 3 and results.num_valid_errors[0] == 2


def test_accuracy_training_squashes_s1_in_memory():
    task = az.tasks.unit_test_ones_task(4, 1, 1, eval_type="accuracy")
    # Learn copies the squashed s1 into s2: sigmoid(2).
    algorithm = algo(predict=["s1 = 2"], learn=["s2 = s1 + s3"])
    assert final_scalars(algorithm, task)[2] == pytest.approx(1 / (1 + math.exp(-2.0)),
                                                            rel=1e-15)
    # Validation is a sign test on the raw logit: 0 predicts the negative class.
    zero = algo(predict=["s1 = 0"])
    assert fitness(zero, task) == 0.0
    neg = az.tasks.unit_test_zeros_task(4, 1, 1, eval_type="accuracy")
    assert fitness(zero, neg) == 1.0


def test_vector_labels():
    """Multi-class convention: v1 hidden in Predict, one-hot in Learn, softmax of v2."""
    rng = np.random.default_rng(0)
    K, F, n = 3, 4, 12
    classes = rng.integers(K, size=n)
    onehot = np.eye(K)[classes]
    x = rng.normal(size=(n, F))
    x[np.arange(n), classes] += 5.0  # the true class has the largest feature
    task = Task(x, onehot, x, onehot, eval_type="accuracy")
    copy = algo(predict=["v2 = v0 + v1"])  # v1 must be zero during Predict
    results = evaluate(copy, task, memory=az.MemoryConfig(4, 4, 1), record_errors=(n, n))
    assert results.fitness[0] == 1.0
    logits = x[:, :K]
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    np.testing.assert_allclose(results.train_errors[0], np.abs(onehot - prob).max(1),
                               rtol=1e-13)
    # Learn sees the padded one-hot label in v1 and the softmax in v2.
    out = cpu_evaluator.run_debug(algo(learn=["v3 = v1 + v2"]), task, az.MemoryConfig(4, 4, 1))
    last = n - 1
    expected = np.zeros(F)
    expected[:K] = onehot[last]  # v2 is zero in Predict, so its softmax is uniform
    expected[:K] += 1.0 / K
    np.testing.assert_allclose(out["vectors"][3], expected, rtol=1e-15)
    # Argmax ignores NaN and takes the first index on ties.
    tie = algo(predict=["v2 = v1 + v1"])  # all zeros: predicts class 0
    acc = evaluate(tie, task, memory=az.MemoryConfig(4, 4, 1)).fitness[0]
    assert acc == pytest.approx(np.mean(classes == 0))


# ----------------------------------------------------------------------------------
# Every op alone, against a small NumPy reference.


def _reference_op(op, scalars, vectors, matrices, in1, in2, out, d, f0, f1, f2, F):
    """Applies one deterministic op to copies of the memory (spec §2.3, §2.4)."""
    s, v, m = scalars.copy(), vectors.copy(), matrices.copy()
    spec = ops.OPS[op]
    get = {"S": lambda a: s[a], "V": lambda a: v[a].copy(), "M": lambda a: m[a].copy()}
    a = get[spec.in1_type](in1) if spec.in1_type else None
    b = get[spec.in2_type](in2) if spec.in2_type else None
    name = spec.name[:-3]
    with np.errstate(all="ignore"):
        if name == "NO":
            return s, v, m
        table = {
            "SCALAR_SUM": lambda: a + b, "SCALAR_DIFF": lambda: a - b,
            "SCALAR_PRODUCT": lambda: a * b, "SCALAR_DIVISION": lambda: np.divide(a, b),
            "SCALAR_ABS": lambda: abs(a), "SCALAR_RECIPROCAL": lambda: np.divide(1.0, a),
            "SCALAR_SIN": lambda: np.sin(a), "SCALAR_COS": lambda: np.cos(a),
            "SCALAR_TAN": lambda: np.tan(a), "SCALAR_ARCSIN": lambda: np.arcsin(a),
            "SCALAR_ARCCOS": lambda: np.arccos(a), "SCALAR_ARCTAN": lambda: np.arctan(a),
            "SCALAR_EXP": lambda: np.exp(a), "SCALAR_LOG": lambda: np.log(a),
            "SCALAR_HEAVYSIDE": lambda: 1.0 if a >= 0 else 0.0,
            "VECTOR_HEAVYSIDE": lambda: (a > 0).astype(float),
            "MATRIX_HEAVYSIDE": lambda: (a > 0).astype(float),
            "SCALAR_VECTOR_PRODUCT": lambda: b * a, "SCALAR_BROADCAST": lambda: np.full(F, a),
            "VECTOR_RECIPROCAL": lambda: 1.0 / a, "VECTOR_NORM": lambda: np.sqrt(np.sum(a * a)),
            "VECTOR_ABS": lambda: np.abs(a), "VECTOR_SUM": lambda: a + b,
            "VECTOR_DIFF": lambda: a - b, "VECTOR_PRODUCT": lambda: a * b,
            "VECTOR_DIVISION": lambda: a / b, "VECTOR_INNER_PRODUCT": lambda: np.sum(a * b),
            "VECTOR_OUTER_PRODUCT": lambda: np.outer(a, b),
            "SCALAR_MATRIX_PRODUCT": lambda: b * a, "MATRIX_RECIPROCAL": lambda: 1.0 / a,
            "MATRIX_VECTOR_PRODUCT": lambda: np.array([np.sum(a[r] * b) for r in range(F)]),
            "VECTOR_COLUMN_BROADCAST": lambda: np.repeat(a[:, None], F, 1),
            "VECTOR_ROW_BROADCAST": lambda: np.repeat(a[None, :], F, 0),
            "MATRIX_NORM": lambda: np.sqrt(np.sum(a * a)),
            "MATRIX_COLUMN_NORM": lambda: np.sqrt(np.sum(a * a, axis=0)),
            "MATRIX_ROW_NORM": lambda: np.sqrt(np.sum(a * a, axis=1)),
            "MATRIX_TRANSPOSE": lambda: a.T.copy(), "MATRIX_ABS": lambda: np.abs(a),
            "MATRIX_SUM": lambda: a + b, "MATRIX_DIFF": lambda: a - b,
            "MATRIX_PRODUCT": lambda: a * b, "MATRIX_DIVISION": lambda: a / b,
            "MATRIX_MATRIX_PRODUCT": lambda: np.array(
                [[np.sum(a[r] * b[:, c]) for c in range(F)] for r in range(F)]),
            "SCALAR_MIN": lambda: b if b < a else a, "SCALAR_MAX": lambda: b if a < b else a,
            "VECTOR_MIN": lambda: np.where(b < a, b, a), "VECTOR_MAX": lambda: np.where(a < b, b, a),
            "MATRIX_MIN": lambda: np.where(a < b, a, b), "MATRIX_MAX": lambda: np.where(a > b, a, b),
            "VECTOR_MEAN": lambda: np.sum(a) / F, "MATRIX_MEAN": lambda: np.sum(a) / (F * F),
            "MATRIX_ROW_MEAN": lambda: np.sum(a, axis=1) / F,
            "MATRIX_ROW_ST_DEV": lambda: np.sqrt(np.sum(a * a, 1) / F - (np.sum(a, 1) / F) ** 2),
            "VECTOR_ST_DEV": lambda: np.sqrt(np.sum(a * a) / F - (np.sum(a) / F) ** 2),
            "MATRIX_ST_DEV": lambda: np.sqrt(np.sum(a * a) / (F * F) - (np.sum(a) / (F * F)) ** 2),
        }
        if name == "SCALAR_CONST_SET":
            s[out] = d
        elif name == "VECTOR_CONST_SET":
            v[out][int(np.float32(F) * np.float32(f0))] = np.float32(f1)
        elif name == "MATRIX_CONST_SET":
            m[out][int(np.float32(F) * np.float32(f0)), int(np.float32(F) * np.float32(f1))] = \
                np.float32(f2)
        else:
            result = table[name]()
            {"S": s, "V": v, "M": m}[spec.out_type][out] = result
    return s, v, m


def _random_memory(rng, shape, special):
    values = rng.normal(size=shape) * rng.choice([1.0, 3.0], size=shape)
    mask = rng.random(shape) < 0.15
    values[mask] = rng.choice(special, size=int(mask.sum()))
    return values


SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 2.0, 0.5])
DETERMINISTIC_OPS = [op.code for op in ops.OPS if not op.random]


# 4, 16: specialised kernels; 7, 13: the generic ones; 13, 16 take the large-F paths
# (vectorised loops through tmp), 4, 7 the unrolled ones.
@pytest.mark.parametrize("F", [4, 7, 13, 16])
def test_every_op_alone_matches_numpy(F):
    rng = np.random.default_rng(F)
    memory = az.MemoryConfig(4, 3, 3)
    task = az.tasks.unit_test_zeros_task(F, 1, 1)
    S, V, M = 4, 3, 3
    for op in DETERMINISTIC_OPS:
        spec = ops.OPS[op]
        for trial in range(6):
            sizes = {"S": S, "V": V, "M": M}
            in1 = int(rng.integers(sizes[spec.in1_type])) if spec.in1_type else 0
            in2 = int(rng.integers(sizes[spec.in2_type])) if spec.in2_type else 0
            out = int(rng.integers(sizes[spec.out_type])) if spec.out_type else 0
            if trial == 0 and spec.out_type == spec.in1_type and spec.in1_type:
                out = in1  # aliasing: inputs read before the output is written
            if trial == 1 and spec.out_type == spec.in2_type and spec.in2_type:
                out = in2
            d = float(rng.choice([0.25, -1.5, np.inf, np.nan]))
            f0, f1, f2 = (float(np.float32(x)) for x in rng.random(3) * 0.9999)
            if op in (57, 58):
                f1 = f1 if op == 58 else float(np.float32(rng.normal()))
                f2 = float(np.float32(rng.normal()))
            if trial == 2 and op in (57, 58):
                f0 = float(np.nextafter(np.float32(1.0), np.float32(0.0)))  # last entry
            scalars = _random_memory(rng, (S,), SPECIAL)
            vectors = _random_memory(rng, (V, F), SPECIAL)
            matrices = _random_memory(rng, (M, F, F), SPECIAL)
            record = I(op, in1, in2, out, d, f0, f1, f2)
            out_mem = cpu_evaluator.run_debug(az.Algorithm([record], [], []), task, memory,
                                              train_steps=0,
                                              initial_memory=(scalars, vectors, matrices))
            expected = _reference_op(op, scalars, vectors, matrices, in1, in2, out, d,
                                     record["f0"], record["f1"], record["f2"], F)
            for got, want in zip((out_mem["scalars"], out_mem["vectors"], out_mem["matrices"]),
                                 expected):
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300,
                                           equal_nan=True,
                                           err_msg=f"{spec.name} trial {trial} F={F}")


def test_signed_zero_and_nan_rules():
    task = az.tasks.unit_test_zeros_task(4, 1, 1)
    S = np.array([0.0, -0.0, np.nan, 1.0])
    V = np.array([[0.0, -0.0, np.nan, -1.0], [np.nan, 1.0, 2.0, 0.0], np.zeros(4)])
    M = np.stack([np.array([[np.nan, 1.0, 0.0, -0.0]] * 4), np.ones((4, 4))])

    def run(line):
        return cpu_evaluator.run_debug(algo(setup=[line]), task, az.MemoryConfig(4, 3, 2),
                                       train_steps=0, initial_memory=(S, V, M))

    assert run("s3 = heaviside(s1, 1.0)")["scalars"][3] == 1.0  # H(-0) = 1 for scalars
    assert run("s3 = heaviside(s2, 1.0)")["scalars"][3] == 0.0  # H(NaN) = 0
    np.testing.assert_array_equal(run("v2 = heaviside(v0, 1.0)")["vectors"][2], [0, 0, 0, 0])
    assert np.isnan(run("s3 = minimum(s2, s3)")["scalars"][3])  # NaN first -> first operand
    assert run("s3 = minimum(s3, s2)")["scalars"][3] == 1.0
    np.testing.assert_array_equal(run("v2 = maximum(v0, v1)")["vectors"][2],
                                  [0.0, 1.0, np.nan, 0.0])  # NaN -> first operand
    np.testing.assert_array_equal(run("m1 = minimum(m0, m1)")["matrices"][1][0],
                                  [1.0, 1.0, 0.0, -0.0])  # NaN -> second operand
    assert math.copysign(1.0, run("v2 = maximum(v0, v1)")["vectors"][2][1]) == 1.0


def test_const_set_index_fraction_and_bad_fraction():
    task = az.tasks.unit_test_zeros_task(4, 1, 1)
    out = cpu_evaluator.run_debug(az.Algorithm([I("VECTOR_CONST_SET_OP", out=1, f0=0.76,
                                                  f1=2.5)], [], []), task, MEM, train_steps=0)
    np.testing.assert_array_equal(out["vectors"][1], [0, 0, 0, 2.5])  # int(4 * 0.76) = 3
    bad = az.Algorithm([I("VECTOR_CONST_SET_OP", out=1, f0=1.0, f1=2.5)], [], [])
    with pytest.raises(ValueError, match="VECTOR_CONST_SET|v1\\[1\\]"):
        evaluate(bad, task)


def test_direct_call_rejects_out_of_range_addresses():
    """Callers may skip evaluate_pairs' checks; the backend still never writes outside."""
    task = az.tasks.unit_test_zeros_task(4, 2, 2)
    bad = az.Algorithm([], [I("SCALAR_SUM_OP", 1, 9, 2)], [])
    with pytest.raises(ValueError, match="algorithm 1: 's2 = s1 \\+ s9'"):
        cpu_evaluator.evaluate_pairs([algo(), bad], [task], [0, 1], [0, 0], memory=MEM,
                                     max_abs_error=100.0, seed=0, algorithm_ids=None,
                                     train_steps=None, valid_steps=None, record_errors=None)


# ----------------------------------------------------------------------------------
# Random ops, threads, batching.


def test_random_ops_are_keyed_and_distributed():
    task = az.tasks.unit_test_zeros_task(4, 1, 1)
    memory = az.MemoryConfig(4, 3, 2)
    setup = [I("MATRIX_GAUSSIAN_SET_OP", out=0, f0=1.0, f1=2.0),
             I("MATRIX_UNIFORM_SET_OP", out=1, f0=-0.5, f1=0.25),
             I("VECTOR_UNIFORM_SET_OP", out=2, f0=0.75, f1=-0.5),  # low > high: low
             I("SCALAR_GAUSSIAN_SET_OP", out=2, f0=3.0, f1=0.0)]
    algorithm = az.Algorithm(setup, [], [])

    def run(**kwargs):
        return cpu_evaluator.run_debug(algorithm, task, memory, train_steps=0, **kwargs)

    a, b, c = run(algorithm_id=1), run(algorithm_id=1), run(algorithm_id=2)
    np.testing.assert_array_equal(a["matrices"], b["matrices"])
    assert not np.array_equal(a["matrices"], c["matrices"])
    assert not np.array_equal(a["matrices"], run(algorithm_id=1, seed=5)["matrices"])
    uniform = a["matrices"][1]
    draws = np.concatenate([run(algorithm_id=i)["matrices"][0].ravel() for i in range(20)])
    assert abs(draws.mean() - 1.0) < 0.3 and 1.8 < draws.std() < 2.2
    assert uniform.min() >= -0.5 and uniform.max() < 0.25 and len(np.unique(uniform)) == 16
    np.testing.assert_array_equal(a["vectors"][2], np.full(4, 0.75))
    assert a["scalars"][2] == 3.0


def test_threads_and_batches_agree():
    rng = np.random.default_rng(3)
    tasks = [az.tasks.scalar_linear_regression_task(F, 50, 20, data_seed=i, param_seed=i,
                                                    index=i)
             for i, F in enumerate([4, 4, 7])]
    algorithms = [az.generator.linear_model(lr) for lr in (0.001, 0.01, 0.1, 0.5)]
    algorithms.append(az.Algorithm([I("VECTOR_GAUSSIAN_SET_OP", out=1, f0=0.0, f1=0.5)],
                                   [I("VECTOR_INNER_PRODUCT_OP", 1, 0, 1)], []))
    a_idx = rng.integers(len(algorithms), size=300)
    t_idx = rng.integers(len(tasks), size=300)
    kwargs = dict(memory=MEM, backend=BACKEND, record_errors=(5, 5))
    one = az.evaluate_pairs(algorithms, tasks, a_idx, t_idx, num_threads=1, **kwargs)
    two = az.evaluate_pairs(algorithms, tasks, a_idx, t_idx, num_threads=2, **kwargs)
    for field in ("fitness", "train_steps", "train_errors", "valid_errors"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))
    # A pair's result does not depend on its batch.
    single = az.evaluate_pairs(algorithms, tasks, a_idx[7:8], t_idx[7:8], **kwargs)
    assert single.fitness[0] == one.fitness[7]
    np.testing.assert_array_equal(single.train_errors[0], one.train_errors[7])


def test_no_ops_are_dropped_and_change_nothing():
    tasks = [az.tasks.scalar_linear_regression_task(4, 30, 10, data_seed=i, param_seed=i,
                                                    index=i, num_epochs=2) for i in range(3)]
    plain = az.generator.neural_net(0.05, 0.1, 4)
    padded = az.Algorithm(*([I("NO_OP")] + list(component) + [I("NO_OP")] * 2
                            for component in plain.components))
    only_no_ops = az.Algorithm([I("NO_OP")], [I("NO_OP")], [I("NO_OP")])
    empty = az.Algorithm([], [], [])
    a_idx, t_idx = np.repeat(np.arange(4), 3), np.tile(np.arange(3), 4)
    kwargs = dict(memory=az.MemoryConfig(5, 9, 2), backend=BACKEND, record_errors=(40, 10),
                  seed=5, algorithm_ids=np.array([7, 7, 9, 9]))
    out = az.evaluate_pairs([plain, padded, only_no_ops, empty], tasks, a_idx, t_idx, **kwargs)
    for field in ("fitness", "train_steps", "train_errors", "valid_errors"):
        values = getattr(out, field)
        np.testing.assert_array_equal(values[:3], values[3:6], err_msg=field)
        np.testing.assert_array_equal(values[6:9], values[9:], err_msg=field)
    assert np.all(out.train_steps[6:] == 60)  # (the net aborts on some tasks: also compared)
    # The decoded code holds no NO_OP: a program's own instructions plus the 6 pseudo-ops
    # of the evaluation loop, Predict twice (training and validation).
    flat, bounds = cpu_evaluator._flatten_programs([padded, only_no_ops])
    code, _, starts = cpu_evaluator._decode(flat, az.MemoryConfig(5, 9, 2), 4, None, bounds)
    ops_decoded = code[0::4]
    assert not np.any(ops_decoded == 0)
    sizes = [len(component) for component in plain.components]
    assert starts.tolist() == [0, sizes[0] + 2 * sizes[1] + sizes[2] + 6]
    assert len(ops_decoded) == starts[1] + 6


@pytest.mark.parametrize("predict", [
    [I("VECTOR_CONST_SET_OP", out=0, f0=0.76, f1=100.0)],  # one entry of v0 (the last)
    [I("SCALAR_VECTOR_PRODUCT_OP", 1, 0, 0)],  # the whole of v0
    [I("VECTOR_CONST_SET_OP", out=1, f0=0.76, f1=100.0)]])  # not v0
def test_learn_sees_the_features_even_after_predict_wrote_v0(predict):
    task = az.tasks.unit_test_ones_task(4, 10, 3)
    learn = [I("VECTOR_INNER_PRODUCT_OP", 0, 0, 2)]  # s2 = dot(v0, v0)
    out = cpu_evaluator.run_debug(az.Algorithm([I("SCALAR_CONST_SET_OP", out=1, d=7.0)],
                                               predict, learn), task, MEM)
    assert out["scalars"][2] == 4.0  # the features (all ones), whatever Predict did to v0


def test_empty_batch_and_bad_threads():
    task = az.tasks.unit_test_zeros_task(4, 2, 2)
    results = az.evaluate_pairs([algo()], [task], [], [], memory=MEM, backend=BACKEND)
    assert results.fitness.shape == (0,)
    with pytest.raises(ValueError, match="num_threads"):
        az.evaluate_pairs([algo()], [task], [0], [0], memory=MEM, backend=BACKEND,
                          num_threads=0)


def test_w1_algorithms_parse_and_run():
    path = os.path.join(BENCH_DIR, "w1_demo.jsonl")
    if not os.path.exists(path):
        pytest.skip(f"benchmark workloads not found at {path} (set AZERO_BENCH_DIR)")
    import json
    with open(path) as f:
        algorithms = [az.parse_algorithm(json.loads(line)["text"]) for line in f][:200]
    tasks = az.make_tasks(az.TaskSpec("scalar_linear_regression_task", 4, 100, 100,
                                      "rms_error", num_tasks=3))
    grid = az.evaluate(algorithms, tasks, num_scalars=4, num_vectors=3, num_matrices=1,
                       backend=BACKEND)
    assert grid.shape == (200, 3) and np.all((grid >= 0) & (grid <= 1))
    assert (grid > 0).mean() > 0.2 and (grid == 0).any()


# ----------------------------------------------------------------------------------
# Property test against the JAX backend (float64, no random ops).


def _compare_with_jax(num_programs, ops_pool, seed):
    from conftest import ProgramGenerator
    generator = ProgramGenerator(np.random.default_rng(seed))
    memory = (5, 4, 2)
    algorithms = [generator.algorithm(memory, sizes=((0, 4), (1, 6), (0, 6)),
                                      ops=(ops_pool,) * 3) for _ in range(num_programs)]
    rng = np.random.default_rng(2)
    x_train, x_valid = rng.normal(size=(30, 4)), rng.normal(size=(10, 4))
    tasks = [az.tasks.scalar_linear_regression_task(4, 30, 10, data_seed=1, param_seed=1),
             Task(x_train, (x_train[:, 0] > 0) * 1.0, x_valid, (x_valid[:, 0] > 0) * 1.0,
                  eval_type="accuracy", index=1)]
    a_idx, t_idx = np.meshgrid(np.arange(len(algorithms)), np.arange(2), indexing="ij")
    kwargs = dict(memory=az.MemoryConfig(*memory), record_errors=(5, 5))
    cpu = az.evaluate_pairs(algorithms, tasks, a_idx.ravel(), t_idx.ravel(), backend="cpu",
                            **kwargs)
    jx = az.evaluate_pairs(algorithms, tasks, a_idx.ravel(), t_idx.ravel(), backend="jax",
                           dtype="float64", **kwargs)
    close = np.isclose(cpu.fitness, jx.fitness, rtol=1e-9, atol=1e-12)
    # Summation order may differ, so a rare chaotic program can cross a threshold.
    assert close.mean() >= 0.99, np.flatnonzero(~close)
    assert (cpu.train_steps == jx.train_steps).mean() >= 0.99
    assert (cpu.fitness > 0).mean() > 0.2  # the sweep is not trivially all-zero
    return close.mean()


# The demo's ops plus vector/matrix ops with aliasing-sensitive ones (matvec, transpose).
SMALL_POOL = (0, 1, 2, 3, 4, 15, 16, 18, 21, 23, 25, 27, 28, 31, 37, 39, 44, 45, 48, 50, 54,
              56, 57, 58)


def test_random_programs_match_jax_backend():
    """cpu vs jax (float64) on 150 random programs over a small op pool, 2 tasks."""
    _compare_with_jax(150, SMALL_POOL, seed=11)


@pytest.mark.slow
def test_random_programs_match_jax_backend_all_ops():
    """cpu vs jax (float64) on 400 random programs over every deterministic op."""
    from conftest import NON_RANDOM_OPS
    _compare_with_jax(400, NON_RANDOM_OPS, seed=12)


@pytest.mark.slow
def test_w1_matches_jax_backend():
    """The whole W1 workload (1000 algorithms x 10 tasks): cpu == jax (float64)."""
    path = os.path.join(BENCH_DIR, "w1_demo.jsonl")
    if not os.path.exists(path):
        pytest.skip(f"benchmark workloads not found at {path} (set AZERO_BENCH_DIR)")
    import json
    with open(path) as f:
        algorithms = [az.parse_algorithm(json.loads(line)["text"]) for line in f]
    tasks = az.make_tasks(az.TaskSpec("scalar_linear_regression_task", 4, 100, 100,
                                      "rms_error", num_tasks=10))
    a, t = np.meshgrid(np.arange(len(algorithms)), np.arange(len(tasks)), indexing="ij")
    kwargs = dict(memory=MEM, record_errors=(10, 10))
    cpu = az.evaluate_pairs(algorithms, tasks, a.ravel(), t.ravel(), backend="cpu", **kwargs)
    jx = az.evaluate_pairs(algorithms, tasks, a.ravel(), t.ravel(), backend="jax",
                           dtype="float64", **kwargs)
    assert np.isclose(cpu.fitness, jx.fitness, rtol=1e-9, atol=1e-12).mean() >= 0.995
    assert (cpu.train_steps == jx.train_steps).mean() >= 0.995
    np.testing.assert_array_equal(cpu.num_train_errors, jx.num_train_errors)
    np.testing.assert_allclose(cpu.train_errors, jx.train_errors, rtol=1e-9, equal_nan=True)


def test_tensor_decoder_emits_the_numpy_decoders_code():
    """The compiled decoder of a search's tensors and the numpy decoder of Algorithm
    lists produce identical interpreter code, for every op and several F (NO_OPs too)."""
    from azero_jax.core.population import Programs
    from conftest import ProgramGenerator
    memory = az.MemoryConfig(5, 4, 3)
    gen = ProgramGenerator(np.random.default_rng(77))
    all_ops = (tuple(range(65)),) * 3
    algorithms = [gen.algorithm((5, 4, 3), ops=all_ops) for _ in range(80)]
    programs = Programs.from_algorithms(algorithms)
    for F in (1, 4, 7, 16):
        flat, bounds = cpu_evaluator._flatten_programs(algorithms)
        expected = cpu_evaluator._decode(flat, memory, F, algorithms, bounds)
        got = cpu_evaluator._decode_tensors(programs, memory, F)
        for a, b in zip(expected, got):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    # An address outside memory is left to the numpy decoder, which names it.
    bad = Programs.from_algorithms([az.parse_algorithm(
        "def Setup():\n  s7 = 0.5\ndef Predict():\ndef Learn():\n")])
    assert cpu_evaluator._decode_tensors(bad, memory, 4) is None


def test_specialised_kernels_run_the_pair_body_in_their_loop():
    """The F-specialised copies write ``evaluate_pair``'s body into ``evaluate_chunk``
    (a call per pair cost 0.2 us); the rewrite falls back silently to the call, so check
    that it still applies to today's kernel source."""
    from azero_jax.backends.cpu import _cpu_specialize

    text = _cpu_specialize._source(4)
    chunk = text[text.index("def evaluate_chunk("):]
    assert "evaluate_pair(" not in chunk
    assert "for p in range(first, last):" in chunk and "nverr[p] = nvr" in chunk
