"""Running islands: :func:`run_islands` dispatches to the three execution modes.

``batched`` runs here (one :class:`~azero_jax.islands.group.IslandGroup` holding every
island); ``processes`` is :mod:`azero_jax.islands.processes` and ``ray``
:mod:`azero_jax.islands.ray_actors` (imported only when asked for).
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

from azero_jax.core.memory import MemoryConfig
from azero_jax.core.tasks import TaskSpec
from azero_jax.islands.config import IslandsConfig
from azero_jax.islands.group import IslandGroup
from azero_jax.islands.island import island_specs
from azero_jax.islands.migration import open_server, save_server
from azero_jax.islands.processes import run_processes
from azero_jax.islands.progress import Progress
from azero_jax.islands.result import IslandsResult, result_from_candidates
from azero_jax.spec.search_spec import SearchSpec


def run_islands(spec: SearchSpec, config: IslandsConfig, *, memory: MemoryConfig, seed: int = 1,
                backend: str = "auto", child_batch_size: int | None = None,
                random_search: bool = False, evaluator_options: dict | None = None,
                evaluate_fn: Callable | None = None, checkpoint_dir: str | None = None,
                max_individuals: int | None = None,
                progress_fn: Callable[[dict], None] | None = None,
                should_stop: Callable[[], bool] | None = None,
                rank_tasks: Sequence[TaskSpec] | None = None,
                rank_seed: int = 0) -> IslandsResult:
    """Runs ``config.num_islands`` islands in ``config.parallel`` mode until done.

    Each island runs until the spec's ``max_train_steps`` (its own budget, as each
    worker of the paper) or ``max_individuals`` (per island), or until any island
    reaches ``config.stop_search_fitness`` (see :meth:`IslandGroup.stop_reached`), or
    ``should_stop()``. The candidate is the best island's best individual, islands
    compared on ``rank_tasks`` (see :class:`IslandGroup`).

    Args:
      spec: the search spec shared by the islands.
      config: the islands config.
      memory, backend, child_batch_size, random_search, evaluator_options: see
        :class:`~azero_jax.evolution.regularized_evolution.Search`.
      seed: the run's seed (island seeds, the migration server and evaluation seeds).
      evaluate_fn: an ``evaluate_pairs``-compatible callable (batched mode only).
      checkpoint_dir: island checkpoints (resumed when present); processes and Ray
        modes use a temporary directory when None.
      progress_fn: called with a progress record every ``spec.progress_every``
        individuals summed over islands.
      rank_tasks, rank_seed: the common task set islands are compared on, and its
        evaluation seed (the experiments loop gives T_select and its seed).
    """
    eval_seed = (int(seed) * 2654435761 + 12345) % (2**31 - 1)
    if config.checkpoint_every_secs is None:
        config = config.replace(checkpoint_every_secs=30.0)
    specs = island_specs(config, spec, seed)
    common = dict(memory=memory, backend=backend, child_batch_size=child_batch_size,
                  random_search=random_search, evaluator_options=evaluator_options,
                  eval_seed=eval_seed, rank_tasks=rank_tasks, rank_seed=int(rank_seed))
    if config.parallel == "ray":
        from azero_jax.islands import ray_actors
        return ray_actors.run_ray(spec, config, specs, seed=seed, checkpoint_dir=checkpoint_dir,
                                  max_individuals=max_individuals, progress_fn=progress_fn,
                                  should_stop=should_stop, **common)
    if config.parallel == "processes":
        return run_processes(spec, config, specs, seed=seed, checkpoint_dir=checkpoint_dir,
                             max_individuals=max_individuals, progress_fn=progress_fn,
                             should_stop=should_stop, **common)
    server = open_server(seed, checkpoint_dir)
    server.register(0)
    group = IslandGroup(spec, specs, config, server=server, evaluate_fn=evaluate_fn,
                        checkpoint_dir=checkpoint_dir, **common)
    progress = Progress(spec.progress_every, progress_fn, config.num_islands)
    last_save = [time.monotonic()]

    def on_step(g):
        progress.maybe([g.totals()])
        if checkpoint_dir and time.monotonic() - last_save[0] >= config.checkpoint_every_secs:
            # The server first: a kill between the two saves then leaves the server ahead
            # of the islands (exchanges >= migrations, as when a worker redoes its work).
            save_server(server, checkpoint_dir)
            g.save()
            last_save[0] = time.monotonic()

    group.run(should_stop=should_stop, max_individuals=max_individuals, on_step=on_step,
              stop_search_fitness=config.stop_search_fitness)
    save_server(server, checkpoint_dir)
    group.save()
    progress.maybe([group.totals()], force=True)
    return result_from_candidates(group.candidates(), progress.elapsed(), server.stats(), 0,
                                  group.calls)
