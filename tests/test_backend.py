"""The evaluator backends as objects (azero_jax.backends.backend) and the pieces they share."""

import numpy as np
import pytest
from azero_jax.backends import backend as backend_lib
from azero_jax.backends.evaluator import padded_pairs, used_op_sets
from azero_jax.core import generator
from azero_jax.core.population import ProgramRows, Programs
from azero_jax.core.results import PairResults
from azero_jax.evolution.regularized_evolution import Search, default_child_batch_size
from search_helpers import MEMORY, FakeEvaluator, small_spec


def test_padded_pairs_repeat_the_first_pair_with_no_training():
    a, t, steps, size = padded_pairs([3, 1, 2], [1, 0, 1], [7, 8, 9], at_least=5)
    assert size == 8
    assert a.tolist() == [3, 1, 2, 3, 3, 3, 3, 3]
    assert t.tolist() == [1, 0, 1, 1, 1, 1, 1, 1]
    assert steps.tolist() == [7, 8, 9, 0, 0, 0, 0, 0]
    # A request larger than a step's pairs takes the next power of two.
    assert padded_pairs(np.zeros(9), np.zeros(9), np.ones(9), at_least=4)[3] == 16


def test_pair_results_take_slices_every_recorded_field():
    results = PairResults(np.arange(4.0), np.arange(4), np.ones((4, 2)), np.full(4, 2))
    part = results.take(slice(1, 3))
    assert part.fitness.tolist() == [1.0, 2.0] and part.train_steps.tolist() == [1, 2]
    assert part.train_errors.shape == (2, 2) and part.valid_errors is None
    assert results.take(np.array([3, 0])).fitness.tolist() == [3.0, 0.0]


def test_make_evaluator_picks_the_named_backend():
    kwargs = dict(memory=MEMORY, max_abs_error=100.0)
    assert isinstance(backend_lib.make_evaluator("cpu", [], **kwargs), backend_lib.CpuEvaluator)
    assert isinstance(backend_lib.make_evaluator("cuda", [], **kwargs), backend_lib.CudaEvaluator)
    jax = backend_lib.make_evaluator("jax", [], pad_to=64, **kwargs)
    assert isinstance(jax, backend_lib.JaxEvaluator) and jax.pad_to == 64
    fn = backend_lib.make_evaluator("jax", [], evaluate_fn=FakeEvaluator(), **kwargs)
    assert isinstance(fn, backend_lib.FunctionEvaluator) and fn.name == "jax"


def test_a_cuda_search_evaluates_on_the_cuda_backend_and_takes_device_steps():
    # It used to fall through to the JAX path; building it needs no GPU.
    search = Search(small_spec(population_size=5000), memory=MEMORY, seed=1, backend="cuda")
    assert isinstance(search.evaluator, backend_lib.CudaEvaluator)
    assert search.child_batch_size == default_child_batch_size(5000, "jax") == 500
    assert default_child_batch_size(5000, "cpu") == 256


def test_the_jax_evaluator_pads_and_returns_the_requested_pairs_only():
    from azero_jax.core import tasks as tasks_lib
    task = tasks_lib.scalar_linear_regression_task(4, 50, 10, data_seed=1, param_seed=2)
    programs = Programs.from_algorithms([generator.linear_model(0.01),
                                         generator.linear_model(0.05)])
    kwargs = dict(train_steps=[50, 50, 20], seed=1, algorithm_ids=[0, 1])
    cpu = backend_lib.make_evaluator("cpu", [task], memory=MEMORY, max_abs_error=100.0)
    jax = backend_lib.make_evaluator("jax", [task], memory=MEMORY, max_abs_error=100.0,
                                     options={"dtype": "float64"}, pad_to=6,
                                     op_sets=used_op_sets(programs.algorithms()))
    want = cpu.run(programs, [0, 1, 0], [0, 0, 0], **kwargs)
    got = jax.run(programs, [0, 1, 0], [0, 0, 0], **kwargs)
    assert len(got.fitness) == 3
    np.testing.assert_allclose(got.fitness, want.fitness, rtol=1e-9)
    np.testing.assert_array_equal(got.train_steps, want.train_steps)


@pytest.mark.parametrize("dce", [True, False])
def test_the_cpu_backend_reads_program_rows_in_place_with_the_results_of_a_copy(dce):
    """A search's requests reference the rows of its children (ProgramRows): the cpu
    backend decodes them where they are; every other consumer gets a copy."""
    from azero_jax.core.program import parse_algorithm
    from azero_jax.core.tasks import make_tasks
    tasks = make_tasks(small_spec().search_tasks)
    noisy = parse_algorithm("def Setup():\n  s2 = 0.1\ndef Predict():\n"
                            "  s3 = gaussian(0.5, 0.3)\n  s1 = dot(v0, v1)\n  s1 = s1 + s3\n"
                            "def Learn():\n  s3 = s0 - s1\n  s3 = s2 * s3\n"
                            "  v2 = s3 * v0\n  v1 = v1 + v2\n")
    linear = generator.linear_model(0.01)
    children = Programs.from_algorithms([linear, noisy] * 10)  # alternating
    rows = np.array([19, 0, 3, 3, 12, 7])
    a_index = np.repeat(np.arange(len(rows)), len(tasks))
    t_index = np.tile(np.arange(len(tasks)), len(rows))
    kwargs = dict(train_steps=np.full(len(a_index), 7), seed=5,
                  algorithm_ids=np.arange(100, 100 + len(rows)))
    evaluator = backend_lib.make_evaluator("cpu", tasks, memory=MEMORY, max_abs_error=100.0,
                                           options=dict(dead_code_elimination=dce))
    in_place = evaluator.run(ProgramRows(children, rows), a_index, t_index, **kwargs)
    copied = evaluator.run(children.take(rows), a_index, t_index, **kwargs)
    np.testing.assert_array_equal(in_place.fitness, copied.fitness)
    np.testing.assert_array_equal(in_place.train_steps, copied.train_steps)
    # The random rows draw from their own seeds, and they are not the first rows' flags.
    random = children.uses_random_ops(rows)
    assert random.any() and (random != children.uses_random_ops()[:len(rows)]).any()
    assert len(set(copied.fitness[np.repeat(random, len(tasks))].tolist())) > 1
    fn = backend_lib.make_evaluator("jax", tasks, evaluate_fn=FakeEvaluator(), memory=MEMORY,
                                    max_abs_error=100.0)
    seen = fn.run(ProgramRows(children, rows), a_index, t_index, **kwargs)
    assert len(seen.fitness) == len(a_index)
