"""Issue #12 ("Fidelity, round two"): evaluator options in T_select / T_final, random
search as the paper's baseline."""

import numpy as np
import pytest

from azero_jax import experiment
from azero_jax.fec import FECConfig
from azero_jax.hurdles import HurdlesConfig
from search_helpers import MEMORY, small_spec, task_spec


def _config(**changes):
    base = dict(search=small_spec(population_size=8, max_train_steps=3000),
                select_tasks=(task_spec(num_train=40, num_valid=30, num_tasks=3,
                                        data_seeds=(11, 12, 13), param_seeds=(21, 22, 23)),),
                final_tasks=(task_spec(num_train=40, num_valid=30, num_tasks=2,
                                       data_seeds=(31, 32), param_seeds=(41, 42)),),
                memory=MEMORY, random_seed=7)
    base.update(changes)
    return experiment.ExperimentConfig(**base)


def test_select_and_final_fitness_of_a_float64_jax_run_equal_the_cpu_backends():
    """T_select and T_final are evaluated with the search's evaluator options: a float64
    run on the JAX backend reports what the (float64) cpu backend computes for the same
    algorithm and seeds, not a float32 evaluation (issue #12 part 2)."""
    pytest.importorskip("jax")
    runner = experiment.ExperimentRunner(
        _config(backend="jax", evaluator_options=(("dtype", "float64"),)), log=lambda _: None)
    summary = runner.run()
    algorithm = runner.best[0]  # exactly (the summary's text keeps 6 digits)
    rng_runner = experiment.ExperimentRunner(_config(), log=lambda _: None)
    current = rng_runner._draw_experiment()
    config = _config()
    select_cpu = experiment.evaluate_on_tasks(
        algorithm, config.select_tasks, memory=MEMORY, max_abs_error=100.0,
        seed=current["select_seed"], backend="cpu")
    final_seed = rng_runner.rng.randrange(1, 2**31 - 1)
    final_cpu = experiment.evaluate_on_tasks(
        algorithm, config.final_tasks, memory=MEMORY, max_abs_error=100.0, seed=final_seed,
        backend="cpu")
    # Equal up to the backends' summation order (issue #12 part 1 makes it bit-exact).
    assert summary["experiments"][0]["select_fitness"] == pytest.approx(select_cpu, rel=1e-13)
    assert summary["final_fitness"] == pytest.approx(final_cpu, rel=1e-13)
    # The same numbers in float32 differ (the test would not notice a dropped option).
    select_f32 = experiment.evaluate_on_tasks(
        algorithm, config.select_tasks, memory=MEMORY, max_abs_error=100.0,
        seed=current["select_seed"], backend="jax")
    assert select_f32 != pytest.approx(select_cpu, rel=1e-9)
