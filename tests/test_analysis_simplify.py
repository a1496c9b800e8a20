"""Simplification (S8a): liveness over the evaluation loop, identical fitness after removal."""

from __future__ import annotations

import numpy as np
import pytest

import azero_jax as az
from azero_jax import parse_algorithm
from azero_jax.analysis import simplify as simp
from azero_jax.core import generator
from analysis_helpers import ALL_OPS, MEMORY, insert_random, random_algorithm


def _text(algorithm):
    return str(algorithm)


def test_linear_model_is_already_minimal():
    linear = generator.linear_model(0.01)
    assert simp.simplify(linear) == linear
    nn = generator.neural_net()
    assert simp.simplify(nn) == nn


def test_noops_and_padding_are_removed():
    padded = generator.pad(generator.linear_model(0.01), 10, 10, 10)
    assert simp.simplify(padded) == generator.linear_model(0.01)


def test_dead_writes_and_unused_initialisations_are_removed():
    algorithm = parse_algorithm("""
    def Setup():
      s3 = 5
      s2 = 0.01
      m0 = gaussian(0, 1, (n_features, n_features))
    def Predict():
      v2 = v1 + v1
      s1 = dot(v1, v0)
      s4 = s1 * s1
    def Learn():
      s3 = s0 - s1
      s3 = s2 * s3
      v2 = s3 * v0
      v1 = v1 + v2
    """)
    simplified = simp.simplify(algorithm, random_ops="remove")
    assert simplified == generator.linear_model(0.01)
    # Kept by default: the random op stays and positions are kept with NO_OPs.
    kept = simp.simplify(algorithm)
    assert kept.sizes == algorithm.sizes
    assert [int(r["op"]) for r in kept.setup] == [0, 56, 64]
    assert simp.strip_noops(kept).sizes == (2, 1, 4)


def test_liveness_crosses_predict_learn_and_the_loop():
    # v3 is written by Learn and read by the next Predict; s4 written in Predict is read
    # by Learn; v4 accumulates in Learn but never reaches s1: a faint loop, removed.
    algorithm = parse_algorithm("""
    def Setup():
      s2 = 0.1
    def Predict():
      s1 = dot(v3, v0)
      s4 = s1 * s2
    def Learn():
      v4 = v4 + v0
      v5 = s4 * v0
      v3 = v3 + v5
    """)
    simplified = simp.simplify(algorithm)
    assert simplified.sizes == (1, 2, 2)
    assert "v4" not in _text(simplified)
    liveness = simp.analyze(algorithm)
    assert ("V", 3) in liveness.live_before_predict
    assert ("S", 4) in liveness.live_before_learn
    assert ("S", 2) in liveness.live_after_setup


def test_value_computed_in_setup_read_only_by_learn_of_a_later_step_is_kept():
    algorithm = parse_algorithm("""
    def Setup():
      s3 = 0.5
    def Predict():
      s1 = dot(v1, v0)
    def Learn():
      s2 = s3 * s0
      v2 = s2 * v0
      v1 = v1 + v2
    """)
    assert simp.simplify(algorithm) == algorithm


def test_const_set_is_a_partial_write():
    algorithm = parse_algorithm("""
    def Setup():
      s2 = 3
      v1 = bcast(s2)
      v1[0.5] = 1
    def Predict():
      s1 = dot(v1, v0)
    def Learn():
    """)
    assert simp.simplify(algorithm) == algorithm
    # A full write after it kills both (1 / v0 is inf in Setup, where v0 is zero).
    overwritten = parse_algorithm(str(algorithm).replace("def Predict():",
                                                         "  v1 = 1 / v0\ndef Predict():"))
    assert simp.simplify(overwritten).sizes == (1, 1, 0)
    # Zero written over a cell that is zero again once the dead writes are gone: nothing.
    zeroed = parse_algorithm(str(algorithm).replace("def Predict():",
                                                    "  v1 = abs(v0)\ndef Predict():"))
    assert simp.simplify(zeroed).sizes == (0, 1, 0)


def test_setup_writes_of_zero_over_zero_are_noops():
    algorithm = parse_algorithm("""
    def Setup():
      v2 = s3 * v0
      s3 = dot(v2, v1)
      s2 = -0
      s4 = 1 / s2
      s1 = heaviside(s3, 1.0)
      v1[0.5] = 0
      m0 = outer(v2, v2)
      s3 = s3 * s4
    def Predict():
      s1 = s1 + s3
      v1 = dot(m0, v1)
      s1 = s1 + s2
    def Learn():
    """)
    assert simp.setup_noops(algorithm.setup).tolist() == [True, True, False, False, False,
                                                           True, True, False]
    simplified = simp.simplify(algorithm)
    assert [int(r["op"]) for r in simplified.setup] == [56, 6, 15, 3]


def test_harness_overwrites_features_and_label():
    # Writes of v0 / s0 (possible only in hand-written code) never reach another block.
    algorithm = parse_algorithm("""
    def Setup():
      s3 = 2
      v0 = bcast(s3)
    def Predict():
      s1 = mean(v0)
    def Learn():
      s0 = s1 + s1
    """)
    assert simp.simplify(algorithm).sizes == (0, 1, 0)


def test_prediction_written_by_learn_only_is_kept():
    # s1 written in Learn reaches the next Predict's output read (Predict does not write it).
    algorithm = parse_algorithm("""
    def Setup():
    def Predict():
    def Learn():
      s1 = mean(v0)
    """)
    assert simp.simplify(algorithm) == algorithm


def test_vector_labels_predict_v2_and_keep_s0():
    algorithm = parse_algorithm("""
    def Setup():
    def Predict():
      v2 = dot(m0, v0)
      s1 = norm(v0)
    def Learn():
      v3 = v1 - v2
      m1 = outer(v3, v0)
      m0 = m0 + m1
      v1 = v0 + v0
    """)
    simplified = simp.simplify(algorithm, num_classes=3)
    assert simplified.sizes == (0, 1, 3)
    assert simp.simplify(algorithm).sizes == (0, 1, 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="random_ops"):
        simp.simplify(generator.linear_model(), random_ops="maybe")
    with pytest.raises(ValueError, match="mask for predict"):
        simp.apply_mask(generator.linear_model(), [[True], [True, True], [True] * 4])


def test_simplification_is_idempotent_and_removes_a_lot():
    rng = np.random.default_rng(3)
    removed = 0
    for _ in range(30):
        algorithm = random_algorithm(rng, (6, 8, 12))
        once = simp.simplify(algorithm)
        assert simp.simplify(once) == once
        removed += sum(algorithm.sizes) - sum(
            int((c["op"] != 0).sum()) for c in once.components)
    assert removed > 30 * 26 * 0.3


# The JAX backend compiles one switch branch per op: a subset keeps the compile short
# (data, partial-write, random, reduction and matrix ops all included).
JAX_OPS = (1, 2, 3, 4, 14, 16, 18, 21, 23, 24, 27, 28, 31, 39, 43, 45, 53, 56, 57, 58, 60,
           63, 64)


def _cases(codes):
    """Random and evolved-looking algorithms over ``codes``."""
    rng = np.random.default_rng(7)
    cases = []
    for _ in range(10):
        cases.append(random_algorithm(rng, (4, 6, 8), codes))
    for _ in range(8):
        cases.append(insert_random(generator.linear_model(0.05), rng, 8, codes))
    for _ in range(6):
        cases.append(insert_random(generator.neural_net(0.05), rng, 8, codes))
    return cases


def _tasks():
    return [
        az.tasks.scalar_linear_regression_task(4, 40, 15, data_seed=1, param_seed=2, index=0),
        az.tasks.scalar_2layer_nn_regression_task(4, 40, 15, data_seed=3, param_seed=4,
                                                  index=1),
        az.Task(*_binary_data(), eval_type="accuracy", index=2),
        # Another shape: the JAX backend would compile again, so only the cpu one runs it.
        az.tasks.scalar_2layer_nn_regression_task(4, 20, 15, data_seed=3, param_seed=4,
                                                  num_epochs=3, index=3),
    ]


def _binary_data():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((55, 4))
    y = (x @ np.array([1.0, -1.0, 0.5, 0.0]) > 0).astype(float)
    return x[:40], y[:40], x[40:], y[40:]


def _fitness(algorithms, tasks, backend, seed):
    ids = np.arange(len(algorithms))
    options = {}
    if backend == "jax":  # padded past the unroll limit: one scanned switch per component
        algorithms = [generator.pad(a, 65, 65, 65) for a in algorithms]
        options = dict(op_sets=(frozenset(JAX_OPS + (0,)),) * 3, dtype="float64")
    return az.evaluate(algorithms, tasks, **MEMORY, seed=seed, backend=backend,
                       algorithm_ids=ids, **options)


@pytest.mark.parametrize("backend", ["jax", "cpu"])
def test_simplified_algorithm_has_identical_fitness(backend):
    tasks = _tasks()[:3] if backend == "jax" else _tasks()  # jax: one compiled shape
    originals = _cases(JAX_OPS if backend == "jax" else ALL_OPS)
    simplified = [simp.simplify(a) for a in originals]
    before = _fitness(originals, tasks, backend, seed=5)
    after = _fitness(simplified, tasks, backend, seed=5)
    np.testing.assert_array_equal(after, before)
    # The check is not vacuous: some fitnesses are far from the trivial values and
    # simplification shrank the programs.
    assert np.sum(before > 0.3) >= 5
    assert (sum(sum(simp.strip_noops(s).sizes) for s in simplified)
            < 0.8 * sum(sum(o.sizes) for o in originals))
    assert sum(a.uses_random_ops() for a in originals) >= 5
