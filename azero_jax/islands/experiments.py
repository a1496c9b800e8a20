"""Islands in the experiments loop: each experiment a run of islands.

:class:`IslandsKind` is the :class:`~azero_jax.evolution.experiment.ExperimentKind` that
:class:`~azero_jax.evolution.experiment.ExperimentRunner` drives when given an
:class:`~azero_jax.islands.config.IslandsConfig`; the loop, its checkpoint
(``checkpoint.npz``), T_select / T_final and the summary are the runner's. Each
experiment is an :class:`IslandsExperiment`: :func:`~azero_jax.islands.run.run_islands`
with the experiment's seeds, its islands ranked on T_select (so the runner does not
evaluate the candidate again). The islands checkpoint themselves (and the migration
server) in ``checkpoint_dir/experiment_<n>/``, which ``run_islands`` resumes from.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

from azero_jax.core.tasks import TaskSpec
from azero_jax.evolution import experiment as experiment_lib
from azero_jax.islands.config import IslandsConfig
from azero_jax.islands.island import checkpointed_individuals
from azero_jax.islands.progress import format_progress
from azero_jax.islands.run import run_islands
from azero_jax.spec.search_spec import SearchSpec

# Fields of IslandsResult.to_json() the loop's own record already holds.
_LOOP_FIELDS = ("algorithm", "fitness", "individuals", "train_steps", "elapsed_secs")


class IslandsExperiment:
    """One experiment as a run of islands (an :class:`~azero_jax.evolution.experiment.Experiment`).

    Its state is the folder its islands checkpoint into: ``state_dict`` records the
    folder's name and ``load_state_dict`` checks it; the islands' own checkpoints there
    carry the search state.
    """

    def __init__(self, config, spec: SearchSpec, islands: IslandsConfig, index: int,
                 draws: dict, select_tasks: tuple[TaskSpec, ...],
                 progress: Callable[[dict, str], None]):
        self.config, self.draws, self.select_tasks = config, draws, select_tasks
        self.name = f"experiment_{index}"
        self.directory = (os.path.join(config.checkpoint_dir, self.name)
                          if config.checkpoint_dir else None)
        self.spec, self.islands = spec, islands
        if config.randomize_task_seeds:
            self.spec = spec.replace(search_tasks=experiment_lib.search_task_specs(
                config, spec, draws))
            self.islands = islands.replace(task_sets=tuple(
                (name, experiment_lib.randomize_task_seeds(
                    specs, draws["search_task_seed"] + k + 1))
                for k, (name, specs) in enumerate(islands.task_sets)))
        self.progress = lambda record: progress(record, format_progress(record))
        migration = (f"every {islands.migration_interval} children" if islands.migration
                     else "off")
        self.description = (f"Running evolution experiment with {islands.num_islands} islands "
                            f"({islands.parallel}, migration {migration})...")

    @property
    def num_individuals(self) -> int:
        return checkpointed_individuals(self.directory) if self.directory else 0

    def run(self, should_stop, on_step) -> experiment_lib.ExperimentCandidate:
        # on_step is not needed: run_islands checkpoints the islands itself.
        config = self.config
        result = run_islands(
            self.spec, self.islands, memory=config.memory, seed=self.draws["search_seed"],
            backend=config.backend, child_batch_size=config.child_batch_size,
            random_search=config.random_search, evaluator_options=dict(config.evaluator_options),
            checkpoint_dir=self.directory, max_individuals=config.max_individuals,
            progress_fn=self.progress, should_stop=should_stop, rank_tasks=self.select_tasks,
            rank_seed=self.draws["select_seed"])
        return experiment_lib.ExperimentCandidate(
            algorithm=result.algorithm, fitness=result.fitness,
            num_individuals=result.individuals, train_steps=result.train_steps,
            elapsed_secs=result.elapsed_secs,
            # Every island's best was evaluated on T_select with the experiment's select
            # seed (as evaluate_on_tasks would) to choose the candidate.
            select_fitness=result.rank_fitness, origin=f" (island {result.island})",
            record={k: v for k, v in result.to_json().items() if k not in _LOOP_FIELDS})

    def state_dict(self):
        return {"directory": self.name}, {}

    def load_state_dict(self, state, arrays) -> None:
        if state["directory"] != self.name:
            raise ValueError(f"its islands are in {state['directory']}, expected {self.name}")


@dataclasses.dataclass
class IslandsKind:
    """The :class:`~azero_jax.evolution.experiment.ExperimentKind` of islands runs.

    Attributes:
      config: the loop's :class:`~azero_jax.evolution.experiment.ExperimentConfig`.
      spec: the search spec in force.
      islands: the islands config; its checkpoint interval defaults to the loop's and
        its ``stop_search_fitness`` to the loop's.
    """

    config: object
    spec: SearchSpec
    islands: IslandsConfig
    name: str = "islands"

    def __post_init__(self):
        if self.islands.checkpoint_every_secs is None:
            self.islands = self.islands.replace(
                checkpoint_every_secs=float(self.config.checkpoint_every_secs))
        if self.islands.stop_search_fitness is None and \
                self.config.stop_search_fitness is not None:
            self.islands = self.islands.replace(
                stop_search_fitness=self.config.stop_search_fitness)

    def make(self, index, draws, select_tasks, progress) -> IslandsExperiment:
        return IslandsExperiment(self.config, self.spec, self.islands, index, draws,
                                 select_tasks, progress)

    def summary_fields(self, experiments, last) -> dict:
        """The ``islands`` section: the config, per-island sizes and task sets, and the
        migrations and worker restarts summed over experiments."""
        islands = self.islands
        done = experiments or ([last] if last else [])
        latest = last or (experiments[-1] if experiments else None)
        return {"islands": {
            "num_islands": islands.num_islands, "parallel": islands.parallel,
            "migration": islands.migration, "migration_interval": islands.migration_interval,
            "migration_fraction": islands.migration_fraction,
            "population_sizes": [c["population_size"] for c in latest["islands"]]
            if latest else [],
            "task_sets": [c["task_set"] for c in latest["islands"]] if latest else [],
            "migrations": sum(e["migrations"] for e in done),
            "restarts": sum(e["restarts"] for e in done),
        }}


def run_experiments(config, islands: IslandsConfig, log: Callable[[str], None] = print) -> dict:
    """:func:`azero_jax.evolution.experiment.run_experiments` with ``islands`` (kept for callers of
    ``azero_jax.islands.run_experiments``)."""
    return experiment_lib.run_experiments(config, log, islands=islands)
