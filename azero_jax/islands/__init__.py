"""Islands with migration (paper S3 "Parallelism"): many populations, one code path.

``W`` islands each run regularized evolution
(:class:`~azero_jax.evolution.regularized_evolution.Search`) on their own population (their own
``P``, e.g. spread over ``100 <= P <= 1000``) and their own task set (e.g. half the islands on
projected MNIST, half on CIFAR: the paper's 50 % dataset diversity). Every ``migration_interval``
children (tested after each step) an island uploads a random ``migration_fraction`` (paper: half) of
its population, with their fitnesses, to a migration server and receives as many
algorithms sampled uniformly across the latest uploads of the OTHER islands (never its
own); they are substituted into random slots. A migrant takes the slot, and so the age
and birth number, of the individual it replaces; it keeps its fitness when its island
searches the same task set, and is re-evaluated on the receiving island's tasks (FEC
applies; counted as individuals and training steps there) only when the task sets
differ. ``migration_interval = 0`` switches migration off (the Table S2 ablation): the
islands are then exactly independent searches. The experiment's candidate is the best
island's best, islands compared on a common task set (T_select in the experiments loop),
never by search fitnesses measured on different tasks.

Three execution modes share the :class:`IslandGroup`, which runs any number
of islands in one process, in lockstep: the children of one step of *every* island go
to the evaluator in ONE ``evaluate_pairs`` call per evaluation phase (FEC probe, hurdle
stage, full), the batch carrying an island index (offset task indices and algorithm
ids), so many small populations fill one large batch.

* ``batched``: one group holds all islands (one GPU; on a host with several devices the
  JAX batch is sharded over all of them with ``jax.sharding`` (the evaluator's
  ``devices`` option);
* ``processes``: one worker process per core (spawned, never forked), each holding
  ``W / cores`` islands (one island per core when ``W <= cores``), evaluating on the
  per-core numba backend pinned to one thread and one core; the migration server runs
  in the supervisor, which restarts a killed worker from its island checkpoints;
* ``ray``: :mod:`azero_jax.islands.ray_actors` -- one actor per core (CPU) or per GPU, each
  holding many islands, plus a migration-server actor.

The package holds one concept a module (this file re-exports the public API):

* :mod:`~azero_jax.islands.config`: :class:`IslandsConfig`, its JSON file, spreading
  population sizes and assigning task sets over islands;
* :mod:`~azero_jax.islands.packing`: migrants as plain arrays (:func:`pack`, ...);
* :mod:`~azero_jax.islands.migration`: :class:`MigrationServer` and its checkpoint;
* :mod:`~azero_jax.islands.island`: :class:`IslandSpec`, :class:`Island` and island
  checkpoint paths;
* :mod:`~azero_jax.islands.group`: :class:`IslandGroup`, islands in lockstep in one
  process;
* :mod:`~azero_jax.islands.progress`: progress records and lines;
* :mod:`~azero_jax.islands.result`: :class:`IslandsResult`, the run's candidate;
* :mod:`~azero_jax.islands.run`: :func:`run_islands`, the dispatch to the three modes;
* :mod:`~azero_jax.islands.processes`: the worker processes and their supervisor;
* :mod:`~azero_jax.islands.ray_actors`: the Ray actors (Ray is imported lazily);
* :mod:`~azero_jax.islands.experiments`: islands as the experiments loop's
  :class:`~azero_jax.evolution.experiment.ExperimentKind` (the loop is
  :class:`~azero_jax.evolution.experiment.ExperimentRunner`'s).

Example:
    >>> from azero_jax import islands
    >>> from azero_jax.spec import search_spec as spec_lib
    >>> from azero_jax.core.memory import MemoryConfig
    >>> spec = spec_lib.parse_search_experiment_spec(
    ...     open("azero_jax/specs/linear_search.textproto").read()).replace(
    ...     population_size=20, max_train_steps=60000)
    >>> config = islands.IslandsConfig(num_islands=3, migration_interval=40)
    >>> result = islands.run_islands(spec, config, memory=MemoryConfig(4, 3, 1), seed=1,
    ...                              backend="cpu")
    >>> result.num_islands, result.migrations > 0
    (3, True)
"""

from azero_jax.islands.config import (PARALLEL_MODES, IslandsConfig, assign_task_sets,
                                      load_islands_config, parse_islands_config,
                                      spread_population_sizes)
from azero_jax.islands.experiments import run_experiments
from azero_jax.islands.group import IslandGroup
from azero_jax.islands.island import (Island, IslandSpec, checkpoint_path, checkpointed_individuals,
                                      island_specs)
from azero_jax.islands.migration import SERVER_CHECKPOINT, MigrationServer, open_server, save_server
from azero_jax.islands.packing import (concat_packed, pack, packed_fitness, packed_sources,
                                       take_packed, unpack, with_sources)
from azero_jax.islands.processes import split_islands
from azero_jax.islands.progress import format_progress, progress_record
from azero_jax.islands.result import IslandsResult
from azero_jax.islands.run import run_islands

__all__ = ["IslandsConfig", "IslandSpec", "Island", "IslandGroup", "IslandsResult",
           "MigrationServer", "run_islands", "run_experiments", "load_islands_config",
           "parse_islands_config", "spread_population_sizes", "assign_task_sets",
           "format_progress",
           # The other public names the single module ``azero_jax.islands`` had.
           "PARALLEL_MODES", "SERVER_CHECKPOINT", "island_specs",
           "checkpoint_path", "checkpointed_individuals", "open_server", "save_server",
           "pack", "unpack", "packed_fitness", "packed_sources", "with_sources",
           "concat_packed", "take_packed", "split_islands", "progress_record"]
