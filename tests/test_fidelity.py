"""Issue #12 ("Fidelity, round two"): evaluator options in T_select / T_final, random
search as the paper's baseline, the spec's mutation style in the experiments loop."""

import pytest

from azero_jax.evolution import experiment
from azero_jax.evolution.fec import FECConfig
from azero_jax.evolution.hurdles import HurdlesConfig
from azero_jax.evolution.regularized_evolution import Search
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
    import jax  # noqa: F401  (a runtime dependency: a broken install must fail here)
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


def _evolution_spec():
    """An evolution spec as the demo's: empty initial programs, FEC and hurdles."""
    return small_spec(population_size=8, max_train_steps=3000,
                      initial_population="NO_OP_ALGORITHM", fec=FECConfig(10, 10),
                      hurdles=HurdlesConfig(75.0, 10, 1))


def test_random_search_starts_from_random_algorithms_without_fec_or_hurdles():
    """The paper's Figure 4 baseline: random programs of the spec's sizes from the first
    individual on, and neither FEC nor hurdles (the evolution spec has both)."""
    runner = experiment.ExperimentRunner(
        _config(search=_evolution_spec(), random_search=True, final_tasks=()),
        log=lambda _: None)
    assert runner.spec.initial_population == "RANDOM_ALGORITHM"
    assert runner.spec.fec is None and runner.spec.hurdles is None
    search = experiment.SingleSearch(runner.config, runner.spec,
                                     runner._draw_experiment()).search
    search.run(max_individuals=8)
    assert search.fec is None and search.hurdle_stats.evaluated == 0
    sizes = {a.sizes for a in search.population}
    assert sizes == {runner.spec.size_inits}  # all random programs, none empty
    assert len({a.key() for a in search.population}) == 8


def test_random_search_keeps_fec_and_hurdles_when_asked():
    hurdles = HurdlesConfig(50.0, 5, 1)
    spec = experiment.search_spec(_config(search=_evolution_spec(), random_search=True,
                                          random_search_fec=True, hurdles=hurdles))
    assert spec.fec == FECConfig(10, 10) and spec.hurdles == hurdles
    assert spec.initial_population == "RANDOM_ALGORITHM"
    # Evolution keeps the spec as it is (the hurdles flag overrides the spec's).
    evolution = experiment.search_spec(_config(search=_evolution_spec(), hurdles=hurdles))
    assert evolution == _evolution_spec().replace(hurdles=hurdles)


def test_random_search_flags():
    import sys
    from absl import flags
    from azero_jax.cli import run_search_experiment as binary
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["run_search_experiment", "--random_search", "--random_search_fec"])
    try:
        config = binary.config_from_flags()
    finally:
        flags.FLAGS.unparse_flags()
        flags.FLAGS([sys.argv[0]])
    assert config.random_search and config.random_search_fec
    spec = experiment.search_spec(config)
    assert spec.initial_population == "RANDOM_ALGORITHM" and spec.fec is not None


def test_the_experiments_loop_and_islands_mutate_in_the_specs_style():
    from azero_jax import islands
    paper = small_spec(population_size=8, max_train_steps=3000, mutation_style="PAPER")
    runner = experiment.ExperimentRunner(_config(search=paper), log=lambda _: None)
    search = experiment.SingleSearch(runner.config, runner.spec,
                                     runner._draw_experiment()).search
    assert search.mutator.style == "PAPER"
    # A Search built directly reads the style from its spec too.
    assert Search(paper, memory=MEMORY, seed=1, backend="cpu").mutator.style == "PAPER"
    config = islands.IslandsConfig(num_islands=2, migration_interval=0)
    group = islands.IslandGroup(paper, islands.island_specs(config, paper, 1), config,
                                memory=MEMORY, backend="cpu")
    assert {island.search.mutator.style for island in group.islands} == {"PAPER"}
    plain = experiment.ExperimentRunner(_config(), log=lambda _: None)
    assert experiment.SingleSearch(plain.config, plain.spec, plain._draw_experiment()
                                   ).search.mutator.style == "REFERENCE"


@pytest.mark.slow  # a second JAX compile for the islands' shapes (~10-30 s)
def test_islands_select_and_final_fitness_of_a_float64_jax_run_equal_the_cpu_backends(tmp_path):
    """The islands loop ranks on T_select and evaluates T_final with the evaluator options
    too (float64 on JAX equals the cpu backend)."""
    import random

    import jax  # noqa: F401  (a runtime dependency: a broken install must fail here)
    from azero_jax.evolution import checkpoint as checkpoint_lib
    from azero_jax import islands
    config = _config(backend="jax", evaluator_options=(("dtype", "float64"),),
                     checkpoint_dir=str(tmp_path))
    summary = islands.run_experiments(
        config, islands.IslandsConfig(num_islands=2, migration_interval=10),
        log=lambda _: None)
    _, arrays = checkpoint_lib.load(str(tmp_path / "checkpoint.npz"))
    algorithm = checkpoint_lib.unpack_algorithms(arrays, "experiments_best")[0]
    rng = random.Random(config.random_seed)  # the loop's draws: 4 per experiment, then T_final
    select_seed = [rng.randrange(1, 2**31 - 1) for _ in range(4)][3]
    final_seed = rng.randrange(1, 2**31 - 1)
    common = dict(memory=MEMORY, max_abs_error=100.0, backend="cpu")
    select_cpu = experiment.evaluate_on_tasks(algorithm, config.select_tasks,
                                              seed=select_seed, **common)
    final_cpu = experiment.evaluate_on_tasks(algorithm, config.final_tasks, seed=final_seed,
                                             **common)
    assert summary["best_select_fitness"] == pytest.approx(select_cpu, rel=1e-13)
    assert summary["final_fitness"] == pytest.approx(final_cpu, rel=1e-13)
    select_f32 = experiment.evaluate_on_tasks(algorithm, config.select_tasks,
                                              seed=select_seed, **dict(common, backend="jax"))
    assert select_f32 != pytest.approx(select_cpu, rel=1e-9)
