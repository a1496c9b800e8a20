"""Behaviour of the batched JAX evaluator that the oracle tests do not cover:
compile-once, batch independence, grouping, padding, input errors."""

import dataclasses

import numpy as np
import pytest

import azero_jax as az
from azero_jax.backends.jax import jax_evaluator
from azero_jax.core import generator, program, tasks

MEMORY = az.MemoryConfig(4, 3, 1)
DEMO_OPS = ("SCALAR_CONST_SET_OP", "VECTOR_INNER_PRODUCT_OP", "SCALAR_DIFF_OP",
            "SCALAR_PRODUCT_OP", "SCALAR_VECTOR_PRODUCT_OP", "VECTOR_SUM_OP",
            "SCALAR_GAUSSIAN_SET_OP")
OP_SETS = [DEMO_OPS] * 3

RANDOM_PREDICT = az.parse_algorithm(
    "def Setup():\n  s2 = 0.01\ndef Predict():\n  s3 = gaussian(0, 1)\n  s1 = dot(v1, v0)\n"
    "  s1 = s1 + s3\ndef Learn():\n  s3 = s0 - s1\n  s3 = s2 * s3\n  v2 = s3 * v0\n"
    "  v1 = v1 + v2\n")


@pytest.fixture(scope="module")
def linear_tasks():
    return az.make_tasks(az.TaskSpec("scalar_linear_regression_task", 4, 60, 20, "rms_error",
                                     num_tasks=3))


def _pairs(algorithms, task_list, **kwargs):
    a = np.repeat(np.arange(len(algorithms)), len(task_list))
    t = np.tile(np.arange(len(task_list)), len(algorithms))
    return az.evaluate_pairs(algorithms, task_list, a, t, memory=MEMORY, backend="jax",
                             op_sets=OP_SETS, **kwargs)


def test_no_retrace_across_generations(linear_tasks):
    rng = np.random.default_rng(0)
    base = generator.pad(generator.linear_model(0.01), 3, 3, 6)
    _pairs([base] * 5, linear_tasks)
    traces = jax_evaluator.COUNTERS.total_traces()
    for generation in range(4):
        # Different algorithms and learning rates, same lengths and batch bucket.
        algorithms = [generator.pad(generator.linear_model(float(lr)), 3, 3, 6)
                      for lr in rng.uniform(0.001, 0.1, size=5)]
        _pairs(algorithms, linear_tasks)
    assert jax_evaluator.COUNTERS.total_traces() == traces
    # The counter does count: the first call of a new shape (another batch bucket) traces.
    _pairs([base] * 9, linear_tasks)
    assert jax_evaluator.COUNTERS.total_traces() == traces + 1


def test_write_mode_is_part_of_the_compile_key(linear_tasks, monkeypatch):
    algorithms = [generator.pad(generator.linear_model(0.02), 2, 2, 5)] * 3
    monkeypatch.setenv("AZERO_WRITE_MODE", "scatter")
    scatter = _pairs(algorithms, linear_tasks)
    before = set(jax_evaluator.COUNTERS.traces)
    monkeypatch.setenv("AZERO_WRITE_MODE", "select")
    select = _pairs(algorithms, linear_tasks)
    (shape,) = set(jax_evaluator.COUNTERS.traces) - before  # compiled anew, not reused
    assert shape.write_mode == "select"
    assert dataclasses.replace(shape, write_mode="scatter") in before
    np.testing.assert_array_equal(select.fitness, scatter.fitness)
    monkeypatch.setenv("AZERO_WRITE_MODE", "gather")
    with pytest.raises(ValueError, match="AZERO_WRITE_MODE must be one of"):
        _pairs(algorithms, linear_tasks)


def test_program_outgrowing_bucket_moves_to_next(linear_tasks):
    assert jax_evaluator.bucket_length(9) == 12
    assert jax_evaluator.bucket_length(12) == 12
    assert jax_evaluator.bucket_length(13) == 16
    plain = generator.linear_model(0.05)
    grown = generator.pad(plain, 1, 1, 13)
    np.testing.assert_array_equal(_pairs([grown], linear_tasks).fitness,
                                  _pairs([plain], linear_tasks).fitness)


def test_random_ops_do_not_depend_on_batch_position(linear_tasks):
    other = generator.pad(generator.linear_model(0.02), 1, 3, 4)
    # A differently sized batch is another compiled program whose reductions may round
    # differently in the last bit; the random draws themselves are identical.
    alone = _pairs([RANDOM_PREDICT], linear_tasks, algorithm_ids=[7], dtype="float64")
    crowded = _pairs([other, other, RANDOM_PREDICT], linear_tasks, algorithm_ids=[1, 2, 7],
                     dtype="float64")
    np.testing.assert_allclose(alone.fitness, crowded.fitness[-3:], rtol=1e-13)
    reseeded = _pairs([RANDOM_PREDICT], linear_tasks, algorithm_ids=[8], dtype="float64")
    assert not np.allclose(alone.fitness, reseeded.fitness, rtol=1e-6)


def test_tasks_of_different_feature_sizes_are_grouped():
    mixed = [tasks.scalar_linear_regression_task(F, 50, 10, 1, 2, index=i)
             for i, F in enumerate((2, 4, 2))]
    grid = az.evaluate([generator.linear_model(0.05)], mixed, num_scalars=4, num_vectors=3,
                       num_matrices=1, backend="jax")
    assert grid.shape == (1, 3)
    separate = [az.evaluate([generator.linear_model(0.05)], [t], num_scalars=4, num_vectors=3,
                            num_matrices=1, backend="jax")[0, 0] for t in mixed]
    np.testing.assert_allclose(grid[0], separate, rtol=1e-6)


def test_train_budget_rejection_and_step_counts(linear_tasks):
    results = _pairs([generator.linear_model(0.01)], linear_tasks,
                     train_steps=np.array([0, 60, 25]))
    assert results.fitness[0] == 0.0 and results.train_steps[0] == 0
    assert results.train_steps[1] == 60 and results.train_steps[2] == 25
    assert results.fitness[1] > 0


def test_abort_counts_the_aborting_step():
    task = tasks.unit_test_fixed_task([[1.0]] * 5, [0, 0, 1000, 0, 0], [[1.0]] * 2, [0, 0])
    noop = program.noop_algorithm(1, 1, 1)
    results = az.evaluate_pairs([noop], [task], [0], [0], memory=MEMORY, backend="jax",
                                op_sets=OP_SETS, record_errors=(4, 2))
    assert results.fitness[0] == 0.0
    assert results.train_steps[0] == 3
    assert results.num_train_errors[0] == 2 and results.num_valid_errors[0] == 0


def test_input_errors_are_clear(linear_tasks):
    bad = az.parse_algorithm("def Setup():\ndef Predict():\n  s7 = s0 + s1\ndef Learn():\n")
    with pytest.raises(ValueError, match="s7"):
        _pairs([bad], linear_tasks)
    with pytest.raises(ValueError, match="backend"):
        az.evaluate_pairs([generator.linear_model()], linear_tasks, [0], [0], memory=MEMORY,
                          backend="tpu-ish")
    with pytest.raises(ValueError, match="num_scalars"):
        az.MemoryConfig(1, 3, 1)
