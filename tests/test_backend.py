"""The evaluator backends as objects (azero_jax.backend) and the pieces they share."""

import numpy as np
from azero_jax import backend as backend_lib
from azero_jax import generator
from azero_jax.evaluator import padded_pairs, used_op_sets
from azero_jax.evolution import Search, default_child_batch_size
from azero_jax.population import Programs
from azero_jax.results import PairResults
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
    from azero_jax import tasks as tasks_lib
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
