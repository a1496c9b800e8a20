"""Islands with migration (paper S3 "Parallelism"): many populations, one code path.

``W`` islands each run regularized evolution (:class:`~azero_jax.evolution.Search`)
on their own population (their own ``P``, e.g. spread over ``100 <= P <= 1000``) and
their own task set (e.g. half the islands on projected MNIST, half on CIFAR: the
paper's 50 % dataset diversity). Every ``migration_interval`` children (tested after
each step) an island uploads a random ``migration_fraction`` (paper: half) of its
population, with their fitnesses, to a migration server and receives as many
algorithms sampled uniformly across the latest uploads of the OTHER islands (never its
own); they are substituted into random slots. A migrant takes the slot, and so the age
and birth number, of the individual it replaces; it keeps its fitness when its island
searches the same task set, and is re-evaluated on the receiving island's tasks (FEC
applies; counted as individuals and training steps there) only when the task sets
differ. ``migration_interval = 0`` switches migration off (the Table S2 ablation): the
islands are then exactly independent searches. The experiment's candidate is the best
island's best, islands compared on a common task set (T_select in the experiments loop),
never by search fitnesses measured on different tasks.

Three execution modes share this module's :class:`IslandGroup`, which runs any number
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
* ``ray``: :mod:`azero_jax.ray_islands` -- one actor per core (CPU) or per GPU, each
  holding many islands, plus a migration-server actor.

Example:
    >>> from azero_jax import spec as spec_lib, islands
    >>> from azero_jax.memory import MemoryConfig
    >>> spec = spec_lib.parse_search_experiment_spec(
    ...     open("experiments/specs/linear_search.textproto").read()).replace(
    ...     population_size=20, max_train_steps=60000)
    >>> config = islands.IslandsConfig(num_islands=3, migration_interval=40)
    >>> result = islands.run_islands(spec, config, memory=MemoryConfig(4, 3, 1), seed=1,
    ...                              backend="cpu")
    >>> result.num_islands, result.migrations > 0
    (3, True)
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import math
import os
import random as random_lib
import tempfile
import threading
import time
from typing import Callable, Sequence

import numpy as np

from azero_jax import checkpoint as checkpoint_lib
from azero_jax import evaluator as evaluator_lib
from azero_jax import run_checks
from azero_jax.errors import CheckpointError, ConfigError
from azero_jax import experiment as experiment_lib
from azero_jax.memory import MemoryConfig
from azero_jax.results import PairResults
from azero_jax.evolution import Search, default_child_batch_size
from azero_jax.population import Programs
from azero_jax.program import Algorithm, format_algorithm, parse_algorithm
from azero_jax.spec import SearchSpec, parse_task_collection
from azero_jax.tasks import TaskSpec, make_tasks

PARALLEL_MODES = ("batched", "processes", "ray")
_ID_STRIDE = 1 << 20  # algorithm_ids of island i: id * stride + i (keys random streams)


# --------------------------------------------------------------------------------------
# Configuration.


@dataclasses.dataclass(frozen=True)
class IslandsConfig:
    """How many islands, their populations and task sets, migration and execution.

    Attributes:
      num_islands: ``W``.
      population_sizes: one ``P`` per island; empty = the spec's ``population_size``.
      task_sets: named task collections, ``((name, (TaskSpec, ...)), ...)``.
      island_task_sets: one task-set name per island ('' = the spec's search tasks);
        empty = every island on the spec's search tasks.
      migration_interval: children of an island between its migrations (tested after
        each step, so up to ``child_batch_size - 1`` more); received migrants do not
        count; 0 = off.
        The default, 10 000, follows the paper's rate (fewer than one migration a second
        per worker, at least 100 an experiment) on a CPU core running the demo spec.
      migration_fraction: fraction of the population uploaded and replaced (paper 0.5).
      parallel: ``"batched"``, ``"processes"`` or ``"ray"``.
      num_workers: processes / Ray actors (default: min(W, cores) / min(W, the
        cluster's CPUs), or one actor per GPU with the JAX backend).
      ray_address: address of a running Ray cluster (None starts a local one).
      stop_search_fitness: stop every island once one island's best reaches this fitness
        on its own tasks and, when islands are ranked on a common task set, there too
        (:meth:`IslandGroup.stop_reached`).
      checkpoint_every_secs: seconds between island checkpoints (None: the run's
        ``--checkpoint_every_secs``, else 30 s); islands are also checkpointed when they
        stop. (Not after every migration: with frequent migrations the saves cost more
        than the search.)
      max_restarts: restarts of a killed worker before the run fails.
      shard: shard JAX batches over all local devices (batched mode, JAX backend).
    """

    num_islands: int = 4
    population_sizes: tuple[int, ...] = ()
    task_sets: tuple[tuple[str, tuple[TaskSpec, ...]], ...] = ()
    island_task_sets: tuple[str, ...] = ()
    migration_interval: int = 10000
    migration_fraction: float = 0.5
    parallel: str = "batched"
    num_workers: int | None = None
    ray_address: str | None = None
    stop_search_fitness: float | None = None
    checkpoint_every_secs: float | None = None
    max_restarts: int = 3
    shard: bool = True

    def __post_init__(self):
        W = int(self.num_islands)
        if W < 1:
            raise ValueError(f"num_islands must be >= 1, got {self.num_islands}")
        if self.parallel not in PARALLEL_MODES:
            raise ValueError(f"parallel must be one of {PARALLEL_MODES}, got {self.parallel!r}")
        if int(self.migration_interval) < 0:
            raise ValueError(f"migration_interval must be >= 0, got {self.migration_interval}")
        if not 0.0 <= float(self.migration_fraction) <= 1.0:
            raise ValueError(f"migration_fraction must be in [0, 1], got {self.migration_fraction}")
        if self.population_sizes and len(self.population_sizes) != W:
            raise ValueError(f"population_sizes has {len(self.population_sizes)} entries for "
                             f"{W} islands")
        if any(int(p) < 2 for p in self.population_sizes):
            raise ValueError(f"population_sizes must be >= 2, got {self.population_sizes}")
        if self.island_task_sets and len(self.island_task_sets) != W:
            raise ValueError(f"island_task_sets has {len(self.island_task_sets)} entries for "
                             f"{W} islands")
        names = {name for name, _ in self.task_sets}
        for name in self.island_task_sets:
            if name and name not in names:
                raise ValueError(f"island_task_sets names unknown task set {name!r}; "
                                 f"task_sets has {sorted(names)}")
        if self.num_workers is not None and int(self.num_workers) < 1:
            raise ValueError(f"num_workers must be >= 1, got {self.num_workers}")

    @property
    def migration(self) -> bool:
        return int(self.migration_interval) > 0 and float(self.migration_fraction) > 0

    def population_size(self, island: int, spec: SearchSpec) -> int:
        return int(self.population_sizes[island]) if self.population_sizes else \
            int(spec.population_size)

    def task_set(self, island: int) -> str:
        return self.island_task_sets[island] if self.island_task_sets else ""

    def replace(self, **changes) -> "IslandsConfig":
        return dataclasses.replace(self, **changes)


def spread_population_sizes(low: int, high: int, num_islands: int) -> tuple[int, ...]:
    """``num_islands`` sizes spread evenly (geometrically) over ``[low, high]``.

    Example:
        >>> spread_population_sizes(100, 1000, 3)
        (100, 316, 1000)
    """
    low, high, W = int(low), int(high), int(num_islands)
    if not 2 <= low <= high:
        raise ValueError(f"population_size range must satisfy 2 <= min <= max, got {low}..{high}")
    if W == 1:
        return (low,)
    return tuple(int(round(low * (high / low) ** (i / (W - 1)))) for i in range(W))


def assign_task_sets(fractions: dict[str, float], num_islands: int) -> tuple[str, ...]:
    """Task-set names for ``num_islands`` islands in the given fractions, interleaved.

    Counts follow the largest remainder; islands alternate between the sets.

    Example:
        >>> assign_task_sets({"mnist": 0.5, "cifar": 0.5}, 4)
        ('mnist', 'cifar', 'mnist', 'cifar')
    """
    total = sum(float(f) for f in fractions.values())
    if total <= 0 or any(float(f) < 0 for f in fractions.values()):
        raise ValueError(f"task_set_fractions must be >= 0 with a positive sum, got {fractions}")
    names = list(fractions)
    exact = [float(fractions[n]) / total * num_islands for n in names]
    counts = [int(math.floor(x)) for x in exact]
    order = sorted(range(len(names)), key=lambda i: (counts[i] - exact[i], i))
    for i in order[:num_islands - sum(counts)]:
        counts[i] += 1
    keyed = [((k + 0.5) / counts[i], i) for i in range(len(names)) for k in range(counts[i])]
    return tuple(names[i] for _, i in sorted(keyed))


def _read_text(value: str, base: str) -> str:
    path = value if os.path.isabs(value) else os.path.join(base, value)
    if "{" not in value and os.path.isfile(path):
        with open(path) as handle:
            return handle.read()
    return value


def parse_islands_config(data: dict, base_dir: str = ".", **overrides) -> IslandsConfig:
    """An :class:`IslandsConfig` from the JSON object of an islands config file.

    Keys (all optional)::

      {"num_islands": 8,
       "population_size": {"min": 100, "max": 1000},   # or 100, or [P_0, ..., P_{W-1}]
       "task_sets": {"mnist": "mnist_tasks.textproto",  # a TaskCollection, text or file
                     "cifar": "tasks { ... }"},
       "task_set_fractions": {"mnist": 0.5, "cifar": 0.5},  # or "island_task_sets": [...]
       "migration_interval": 10000, "migration_fraction": 0.5, "migration": true,
       "parallel": "batched", "num_workers": 2, "ray_address": null,
       "stop_search_fitness": null, "checkpoint_every_secs": 30, "max_restarts": 3}

    ``overrides`` (e.g. from flags; None values are ignored) win over the file.
    """
    known = {"num_islands", "population_size", "task_sets", "task_set_fractions",
             "island_task_sets", "migration_interval", "migration_fraction", "migration",
             "parallel", "num_workers", "ray_address", "stop_search_fitness",
             "checkpoint_every_secs", "max_restarts", "shard"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"islands config: unknown key {unknown[0]!r} (known: {sorted(known)})")
    values = {k: v for k, v in data.items() if k not in ("population_size", "task_sets",
                                                          "task_set_fractions", "migration")}
    values.update({k: v for k, v in overrides.items() if v is not None})
    W = int(values.get("num_islands", IslandsConfig.num_islands))
    values["num_islands"] = W
    sizes = data.get("population_size")
    if isinstance(sizes, dict):
        values["population_sizes"] = spread_population_sizes(sizes["min"], sizes["max"], W)
    elif isinstance(sizes, (list, tuple)):
        values["population_sizes"] = tuple(int(p) for p in sizes)
    elif sizes is not None:
        values["population_sizes"] = (int(sizes),) * W
    task_sets = data.get("task_sets") or {}
    values["task_sets"] = tuple(
        (str(name), parse_task_collection(_read_text(text, base_dir), f"task_sets.{name}"))
        for name, text in task_sets.items())
    if "task_set_fractions" in data:
        values["island_task_sets"] = assign_task_sets(data["task_set_fractions"], W)
    elif "island_task_sets" in values:
        values["island_task_sets"] = tuple(values["island_task_sets"])
    if data.get("migration") is False and overrides.get("migration_interval") is None:
        values["migration_interval"] = 0
    return IslandsConfig(**values)


def load_islands_config(path: str, **overrides) -> IslandsConfig:
    """Reads an islands config JSON file (see :func:`parse_islands_config`)."""
    with open(path) as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"islands config {path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"islands config {path}: expected a JSON object")
    return parse_islands_config(data, os.path.dirname(os.path.abspath(path)), **overrides)


# --------------------------------------------------------------------------------------
# The migration server.


class MigrationServer:
    """Keeps the latest upload of every island and answers with random samples.

    ``exchange(island, algorithms)`` stores the island's upload (replacing its previous
    one) and returns as many algorithms drawn uniformly without replacement from the
    union of the OTHER islands' latest uploads (with replacement if that union is
    smaller; none while no other island has uploaded). An island never receives its own
    uploads back. :meth:`exchange_many` stores several uploads before drawing for any of
    them, so islands that migrate after the same lockstep step see each other's uploads.

    Uploads carry each algorithm's fitness and the answers say which island each migrant
    came from (the receiver keeps the fitness when both search the same tasks).

    Example:
        >>> from azero_jax import generator
        >>> server = MigrationServer(seed=1)
        >>> len(server.exchange(0, [generator.linear_model()] * 3))  # nobody else yet
        0
        >>> len(server.exchange(1, [generator.linear_model(0.5)] * 2)), server.exchanges
        (2, 2)
    """

    def __init__(self, seed: int = 0):
        self.rng = random_lib.Random(int(seed))
        # Pools are kept packed (plain arrays, see :func:`pack`): workers in other
        # processes send and receive them as they are, without building Algorithms here.
        self.pools: dict[int, dict[str, np.ndarray]] = {}
        self.exchanges = 0
        self.algorithms_in = 0
        self.algorithms_out = 0
        self.registrations: collections.Counter = collections.Counter()
        self.lock = threading.Lock()

    def exchange(self, island: int, algorithms: Sequence[Algorithm],
                 fitness=None) -> list[Algorithm]:
        return unpack(self.exchange_packed(island, pack(algorithms, fitness)))

    def exchange_packed(self, island: int, packed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`exchange` on packed algorithms (what travels between processes)."""
        return self.exchange_many([(island, packed)])[0]

    def exchange_many(self, uploads: Sequence[tuple[int, dict[str, np.ndarray]]]
                      ) -> list[dict[str, np.ndarray]]:
        """Stores every ``(island, packed)`` upload, then answers each in order.

        Each answer holds as many migrants as its upload (fewer only when no other island
        has uploaded yet: then none), with ``a_source``: the island each came from.
        """
        with self.lock:
            for island, packed in uploads:
                self.pools[int(island)] = packed
                self.algorithms_in += len(packed[f"{_PACK}_sizes"])
            return [self._sample(int(island), len(packed[f"{_PACK}_sizes"]))
                    for island, packed in uploads]

    def _sample(self, island: int, k: int) -> dict[str, np.ndarray]:
        keys = [key for key in sorted(self.pools) if key != island]
        pools = [self.pools[key] for key in keys]
        # Positions in the union of the other islands' uploads, gathered pool by pool:
        # the union itself (W * P/2 algorithms) is never built.
        offsets = np.cumsum([0] + [len(p[f"{_PACK}_sizes"]) for p in pools])
        n = int(offsets[-1])
        self.exchanges += 1
        if n == 0 or k == 0:
            return with_sources(pack([]), -1)
        if k <= n:
            chosen = np.array(self.rng.sample(range(n), k), dtype=np.int64)
        else:
            chosen = np.array([self.rng.randrange(n) for _ in range(k)], dtype=np.int64)
        owner = np.searchsorted(offsets, chosen, side="right") - 1
        order = np.argsort(owner, kind="stable")
        parts = [with_sources(take_packed(pools[j], chosen[order][owner[order] == j] - offsets[j]),
                              keys[j])
                 for j in np.unique(owner)]
        self.algorithms_out += k
        return take_packed(concat_packed(parts), np.argsort(order, kind="stable"))

    def save(self, path: str) -> None:
        """Checkpoints the pools, RNG and exchange counters (JSON + npz, no pickle).

        Worker registrations are not saved: a resumed run counts its own restarts.
        """
        with self.lock:
            arrays = {f"pool{island}_{key}": value for island, packed in self.pools.items()
                      for key, value in packed.items()}
            state = {"server": {"islands": sorted(self.pools), "exchanges": self.exchanges,
                                "algorithms_in": self.algorithms_in,
                                "algorithms_out": self.algorithms_out,
                                "rng": checkpoint_lib.rng_state_to_json(self.rng.getstate())}}
        checkpoint_lib.save(path, state, arrays)

    def load(self, path: str) -> None:
        """Restores what :meth:`save` wrote (the pools a resumed run draws from)."""
        state, arrays = checkpoint_lib.load(path)
        try:
            server = state["server"]
            pools = {int(island): {key[len(f"pool{island}_"):]: value
                                   for key, value in arrays.items()
                                   if key.startswith(f"pool{island}_")}
                     for island in server["islands"]}
            rng_state = checkpoint_lib.rng_state_from_json(server["rng"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: not a migration server checkpoint ({error})") from None
        with self.lock:
            self.pools = pools
            self.rng.setstate(rng_state)
            self.exchanges = int(server["exchanges"])
            self.algorithms_in = int(server["algorithms_in"])
            self.algorithms_out = int(server["algorithms_out"])

    def register(self, worker: int) -> int:
        """Counts a worker's (re)start; returns how many times it started before."""
        with self.lock:
            self.registrations[int(worker)] += 1
            return self.registrations[int(worker)] - 1

    @property
    def restarts(self) -> int:
        return sum(max(0, n - 1) for n in self.registrations.values())

    def stats(self) -> dict:
        return {"exchanges": self.exchanges, "algorithms_in": self.algorithms_in,
                "algorithms_out": self.algorithms_out, "restarts": self.restarts,
                "pool_islands": len(self.pools)}


_PACK = "a"  # the prefix of packed migrants' arrays
# Per-algorithm arrays of a pack (the others hold one row per instruction).
_PER_ALGORITHM = (f"{_PACK}_sizes", f"{_PACK}_fitness", f"{_PACK}_source")


def pack(algorithms: Sequence[Algorithm], fitness=None) -> dict[str, np.ndarray]:
    """Algorithms (and their fitness; NaN = unknown) as plain arrays: what travels
    between processes and machines."""
    out = checkpoint_lib.pack_algorithms(list(algorithms), _PACK)
    out[f"{_PACK}_fitness"] = (np.full(len(algorithms), np.nan) if fitness is None
                               else np.asarray(fitness, dtype=np.float64).reshape(-1))
    return out


def unpack(arrays: dict[str, np.ndarray]) -> list[Algorithm]:
    return checkpoint_lib.unpack_algorithms(arrays, _PACK)


def packed_fitness(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The fitness of each packed algorithm (NaN where unknown, e.g. an old checkpoint)."""
    n = len(arrays[f"{_PACK}_sizes"])
    return np.asarray(arrays.get(f"{_PACK}_fitness", np.full(n, np.nan)), dtype=np.float64)


def packed_sources(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The island each packed migrant came from (-1 where unknown)."""
    n = len(arrays[f"{_PACK}_sizes"])
    return np.asarray(arrays.get(f"{_PACK}_source", np.full(n, -1)), dtype=np.int64)


def with_sources(packed: dict[str, np.ndarray], island) -> dict[str, np.ndarray]:
    """``packed`` with every algorithm marked as coming from ``island``."""
    n = len(packed[f"{_PACK}_sizes"])
    fitness = packed_fitness(packed)
    return dict(packed, **{f"{_PACK}_fitness": fitness,
                           f"{_PACK}_source": np.full(n, island, dtype=np.int64)})


def concat_packed(packs: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Packed algorithms of several :func:`pack` results, in order, as one."""
    return {key: np.concatenate([p[key] for p in packs]) for key in packs[0]}


def take_packed(packed: dict[str, np.ndarray], chosen: Sequence[int]) -> dict[str, np.ndarray]:
    """The packed algorithms at positions ``chosen`` (in that order)."""
    sizes = packed[f"{_PACK}_sizes"]
    lengths = sizes.sum(axis=1)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    chosen = np.asarray(chosen, dtype=np.int64)
    take_lengths = lengths[chosen]
    # Instruction rows of the chosen algorithms: each start followed by its length.
    rows = (np.repeat(starts[chosen] - np.concatenate([[0], np.cumsum(take_lengths)[:-1]]),
                      take_lengths) + np.arange(int(take_lengths.sum()), dtype=np.int64))
    return {key: (value[chosen] if key in _PER_ALGORITHM else value[rows])
            for key, value in packed.items()}


# --------------------------------------------------------------------------------------
# One island.


@dataclasses.dataclass(frozen=True)
class IslandSpec:
    """What makes island ``index``: its population size, task set and seed."""

    index: int
    population_size: int
    task_set: str
    seed: int


def island_specs(config: IslandsConfig, spec: SearchSpec, seed: int) -> list[IslandSpec]:
    """One :class:`IslandSpec` per island (seeds derived from the run's seed)."""
    rng = random_lib.Random(int(seed) * 1000003 + 17)
    return [IslandSpec(i, config.population_size(i, spec), config.task_set(i),
                       rng.randrange(1, 2**31 - 1)) for i in range(int(config.num_islands))]


class Island:
    """A :class:`~azero_jax.evolution.Search` plus its migration bookkeeping."""

    def __init__(self, island: IslandSpec, search: Search, fraction: float, interval: int):
        self.index = island.index
        self.island = island
        self.search = search
        self.fraction = float(fraction)
        self.interval = int(interval)
        self.rng = random_lib.Random(island.seed ^ 0x5DEECE66D)
        self.evals_since_migration = 0  # children since the last migration
        self.migrations = 0
        self.migrants_received = 0
        self.migrant_evaluations = 0  # migrants re-evaluated (from islands on other tasks)
        self.restarts = 0

    @property
    def due(self) -> bool:
        return (self.interval > 0 and self.fraction > 0 and self.search.initialized
                and self.evals_since_migration >= self.interval)

    @property
    def num_migrants(self) -> int:
        P = self.search.population_size
        return min(P, max(1, int(round(self.fraction * P))))

    def upload(self) -> dict[str, np.ndarray]:
        """A random ``fraction`` of the population with its fitness, packed (island RNG)."""
        slots = self.rng.sample(range(self.search.population_size), self.num_migrants)
        return pack(self.search.algorithms(slots), self.search.fitness[slots])

    def accept_requests(self, packed: dict[str, np.ndarray], same_tasks: np.ndarray):
        """Puts received migrants into random slots (a request generator).

        A migrant keeps the fitness it had when ``same_tasks`` says its island searches
        the same tasks as this one; the others are re-evaluated here (FEC applies; they
        count as individuals and training steps of this island). Each migrant takes the
        slot, and so the age, of the individual it replaces: it dies when that slot's
        turn comes, as the replaced one would have, and inherits its birth number.
        """
        search = self.search
        migrants = unpack(packed)
        n = len(migrants)
        fitness = packed_fitness(packed).copy()
        redo = np.flatnonzero(~np.asarray(same_tasks, dtype=bool) | np.isnan(fitness))
        if len(redo):
            ids = np.arange(search.num_individuals, search.num_individuals + len(redo),
                            dtype=np.int64)
            fitness[redo] = yield from search.evaluate_requests(
                [migrants[i] for i in redo.tolist()], ids, use_hurdle=False)
            search.num_individuals += len(redo)
        slots = np.array(self.rng.sample(range(search.population_size), n), dtype=np.int64)
        if n:
            search.replace_individuals(slots, migrants, fitness, search.birth[slots].copy())
        self.evals_since_migration = 0
        self.migrations += 1
        self.migrants_received += n
        self.migrant_evaluations += len(redo)
        return len(redo)

    # -- checkpoints ----------------------------------------------------------------

    def extra_state(self) -> dict:
        return {"index": self.index, "rng": checkpoint_lib.rng_state_to_json(self.rng.getstate()),
                "evals_since_migration": self.evals_since_migration,
                "migrations": self.migrations, "migrants_received": self.migrants_received,
                "migrant_evaluations": self.migrant_evaluations, "restarts": self.restarts,
                "population_size": self.island.population_size, "task_set": self.island.task_set,
                "seed": self.island.seed}

    def save(self, path: str) -> None:
        state, arrays = self.search.state_dict()
        checkpoint_lib.save(path, {"search": state, "island": self.extra_state()}, arrays)

    def load(self, path: str) -> None:
        state, arrays = checkpoint_lib.load(path)
        extra = state["island"]
        for name in ("index", "population_size", "task_set", "seed"):
            mine = getattr(self.island, name)
            if extra[name] != mine:
                raise ValueError(f"{path}: island checkpoint has {name}={extra[name]!r}, this "
                                 f"island {mine!r}; resume with the same islands config")
        eval_seed = self.search.eval_seed
        self.search.load_state_dict(state["search"], arrays)
        self.search.eval_seed = eval_seed
        self.rng.setstate(checkpoint_lib.rng_state_from_json(extra["rng"]))
        for name in ("evals_since_migration", "migrations", "migrants_received",
                     "migrant_evaluations", "restarts"):
            setattr(self, name, int(extra[name]))

    def summary(self) -> dict:
        search = self.search
        count = len(search.population) if search.initialized else search.next_slot
        best = float(search.fitness[:count].max()) if count else None
        return {"island": self.index, "population_size": len(search.population),
                "task_set": self.island.task_set, "individuals": int(search.num_individuals),
                "train_steps": int(search.train_steps), "best_fitness": best,
                "migrations": self.migrations, "migrants_received": self.migrants_received,
                "migrant_evaluations": self.migrant_evaluations,
                "fec_hit_rate": search.fec_hit_rate(), "restarts": self.restarts,
                "done": bool(search.done)}


def checkpoint_path(directory: str, island: int) -> str:
    return os.path.join(directory, f"island_{int(island):05d}.npz")


def checkpointed_individuals(directory: str) -> int:
    """Individuals of all island checkpoints in ``directory`` (0 when there are none)."""
    total = 0
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            if name.startswith("island_") and name.endswith(".json"):
                with open(os.path.join(directory, name)) as handle:
                    total += int(json.load(handle)["search"]["num_individuals"])
    return total


SERVER_CHECKPOINT = "server.npz"


def open_server(seed: int, checkpoint_dir: str | None) -> MigrationServer:
    """A migration server, resumed from ``checkpoint_dir`` when it holds one."""
    server = MigrationServer(seed)
    if checkpoint_dir and os.path.exists(os.path.join(checkpoint_dir, SERVER_CHECKPOINT)):
        server.load(os.path.join(checkpoint_dir, SERVER_CHECKPOINT))
    return server


def save_server(server: MigrationServer, checkpoint_dir: str | None) -> None:
    if checkpoint_dir:
        server.save(os.path.join(checkpoint_dir, SERVER_CHECKPOINT))


# --------------------------------------------------------------------------------------
# A group of islands in one process, evaluated together.


@dataclasses.dataclass
class _Merged:
    """One island's share of a merged request."""

    island: int
    start: int
    stop: int


class IslandGroup:
    """Islands of one process, stepped in lockstep with one evaluator call per phase.

    Args:
      spec: the shared search spec (each island overrides ``population_size`` and
        ``search_tasks``).
      islands: the :class:`IslandSpec` of each island of this group.
      config: the islands config (task sets, migration settings).
      memory, backend, child_batch_size, random_search, evaluator_options: as for
        :class:`~azero_jax.evolution.Search`.
      eval_seed: the evaluation seed shared by the group (islands differ by algorithm ids).
      server: an object with ``exchange_many([(island, packed), ...]) -> [packed, ...]``
        (see :meth:`MigrationServer.exchange_many`).
      evaluate_fn: an ``evaluate_pairs``-compatible callable (default the library's).
      checkpoint_dir: per-island checkpoints, loaded on construction when present.
      task_specs: the task collection of each task-set name ('' = the spec's).
      rank_tasks, rank_seed: the common task set (and evaluation seed) that islands'
        candidates are compared on (the experiments loop gives T_select). None: the
        spec's search tasks when the islands search different task sets, else their
        search fitness (then comparable).
    """

    def __init__(self, spec: SearchSpec, islands: Sequence[IslandSpec], config: IslandsConfig,
                 *, memory: MemoryConfig, backend: str = "auto",
                 child_batch_size: int | None = None, random_search: bool = False,
                 evaluator_options: dict | None = None, eval_seed: int = 1,
                 server=None, evaluate_fn: Callable | None = None,
                 checkpoint_dir: str | None = None,
                 task_specs: dict[str, tuple[TaskSpec, ...]] | None = None,
                 rank_tasks: Sequence[TaskSpec] | None = None, rank_seed: int = 0):
        self.spec = spec
        self.config = config
        self.memory = memory
        self.backend = evaluator_lib.resolve_backend(backend) if evaluate_fn is None else backend
        self.evaluate_fn = evaluate_fn
        self.evaluator_options = dict(evaluator_options or {})
        self.server = server
        self.checkpoint_dir = checkpoint_dir
        self.eval_seed = int(eval_seed)
        self.num_islands_total = int(config.num_islands)
        task_specs = dict(task_specs or {})
        task_specs.setdefault("", spec.search_tasks)
        task_specs.update({name: specs for name, specs in config.task_sets
                           if name not in task_specs})
        self.task_specs = {name: tuple(specs) for name, specs in task_specs.items()}
        self.rank_tasks = None if rank_tasks is None else tuple(rank_tasks)
        # Compared with == (an inline dataset makes a task spec unhashable).
        island_tasks = [self.task_specs[config.task_set(i)]
                        for i in range(int(config.num_islands))]
        if self.rank_tasks is None and any(t != island_tasks[0] for t in island_tasks):
            self.rank_tasks = self.task_specs[""]
        self.rank_seed = int(rank_seed)
        self._rank_task_list = None
        self._rank_memo: dict[bytes, float] = {}
        # Tasks are built once per task set and shared by its islands.
        self.task_lists: dict[str, list] = {}
        self.task_offset: dict[str, int] = {}
        self.tasks: list = []
        for island in islands:
            if island.task_set not in self.task_lists:
                self.task_lists[island.task_set] = make_tasks(task_specs[island.task_set])
                self.task_offset[island.task_set] = len(self.tasks)
                self.tasks.extend(self.task_lists[island.task_set])
        # The searches call their backend directly, past evaluate_pairs' checks.
        evaluator_lib.check_tasks_fit_memory(self.tasks, memory)
        self.islands: list[Island] = []
        for island in islands:
            island_spec = spec.replace(population_size=island.population_size,
                                       search_tasks=tuple(task_specs[island.task_set]))
            cbs = child_batch_size or default_child_batch_size(island.population_size,
                                                               self.backend)
            search = Search(island_spec, memory=memory, seed=island.seed, backend=self.backend,
                            child_batch_size=min(int(cbs), island.population_size),
                            random_search=random_search, tasks=self.task_lists[island.task_set],
                            evaluate_fn=evaluate_fn, evaluator_options=self.evaluator_options)
            search.eval_seed = self.eval_seed
            self.islands.append(Island(island, search, config.migration_fraction,
                                       config.migration_interval))
        op_sets = [island.search.op_sets for island in self.islands]
        self.op_sets = tuple(frozenset().union(*(s[c] for s in op_sets)) for c in range(3))
        self.max_abs_error = float(spec.max_abs_error)
        self.calls = collections.Counter()  # evaluator calls per request kind
        self.pairs = collections.Counter()
        self.resumed = 0
        if checkpoint_dir:
            for island in self.islands:
                path = checkpoint_path(checkpoint_dir, island.index)
                if os.path.exists(path):
                    island.load(path)
                    self.resumed += 1

    # -- evaluation ---------------------------------------------------------------------

    def _evaluate(self, requests: list, owners: list[Island]) -> list[PairResults]:
        """Runs requests of the same signature as ONE evaluator call; splits the results."""
        parts, a_idx, t_idx, steps, ids, spans = [], [], [], [], [], []
        start = count = 0
        for request, island in zip(requests, owners):
            offset = self.task_offset[island.island.task_set]
            a_idx.append(np.asarray(request.algorithm_index, np.int64) + count)
            t_idx.append(np.asarray(request.task_index, np.int64) + offset)
            steps.append(np.asarray(request.train_steps, np.int64))
            rid = np.asarray(request.algorithm_ids, np.int64)
            if request.kind != "probe":  # probes keep id 0 (fingerprints are deterministic)
                rid = rid * _ID_STRIDE + island.index % _ID_STRIDE
            ids.append(rid)
            parts.append(request.algorithms)
            count += len(request.algorithms)
            spans.append((start, start + len(request)))
            start += len(request)
        first = requests[0]
        kind = first.kind
        self.calls[kind] += 1
        self.pairs[kind] += start
        algorithms = parts[0] if len(parts) == 1 else Programs.concatenate(parts)
        out = self._call(algorithms, np.concatenate(a_idx), np.concatenate(t_idx),
                         np.concatenate(steps), np.concatenate(ids), int(first.seed),
                         first.valid_steps, first.record_errors)
        results = []
        for lo, hi in spans:
            results.append(out.take(slice(lo, hi)))
        return results

    def _call(self, algorithms, a_idx, t_idx, steps, ids, seed, valid_steps, record):
        kwargs = dict(memory=self.memory, max_abs_error=self.max_abs_error, seed=seed,
                      algorithm_ids=ids, train_steps=steps, valid_steps=valid_steps,
                      record_errors=record)
        if self.evaluate_fn is not None:
            return self.evaluate_fn(algorithms.algorithms(), self.tasks, a_idx, t_idx,
                                    backend=self.backend,
                                    op_sets=self.op_sets, **kwargs, **self.evaluator_options)
        if self.backend == "cpu":
            from azero_jax import cpu_evaluator
            return cpu_evaluator.evaluate_pairs(algorithms, self.tasks, a_idx, t_idx, **kwargs,
                                                **self.evaluator_options)
        return self._call_jax(algorithms, a_idx, t_idx, kwargs)

    def _call_jax(self, algorithms, a_idx, t_idx, kwargs):
        """Pads to a fixed power of two (few compiles); shards over local devices if asked."""
        from azero_jax import jax_evaluator
        options = dict(self.evaluator_options)
        options.setdefault("dtype", "float32")
        n = len(a_idx)
        # One padded size for a whole step of every island (the usual call) so that each
        # request kind compiles once; larger calls take the next power of two.
        step_pairs = sum(i.search.child_batch_size * len(i.search.tasks) for i in self.islands)
        a_idx, t_idx, steps, size = evaluator_lib.padded_pairs(
            a_idx, t_idx, kwargs.pop("train_steps"), at_least=step_pairs)
        options.setdefault("max_batch", size)
        if not self.config.shard:
            import jax
            options.setdefault("devices", jax.local_devices()[:1])
        out = jax_evaluator.evaluate_pairs(algorithms, self.tasks, a_idx, t_idx,
                                           train_steps=steps, op_sets=self.op_sets,
                                           **kwargs, **options)
        return out.take(slice(0, n))

    def drive(self, generators: dict[int, object]) -> dict[int, object]:
        """Drives request generators of many islands together; returns their values.

        Every round gathers the pending request of each island, groups them by
        signature (seed, valid steps, recorded errors: the FEC probe, or the stage and
        full evaluations) and runs each group as one evaluator call.
        """
        by_index = {island.index: island for island in self.islands}
        values: dict[int, object] = {}
        pending: dict[int, object] = {}
        for index, gen in generators.items():
            try:
                pending[index] = next(gen)
            except StopIteration as stop:
                values[index] = stop.value
        while pending:
            groups = collections.defaultdict(list)
            for index, request in pending.items():
                key = (request.seed, request.valid_steps, request.record_errors)
                groups[key].append(index)
            answers = {}
            for members in groups.values():
                results = self._evaluate([pending[i] for i in members],
                                         [by_index[i] for i in members])
                answers.update(zip(members, results))
            pending = {}
            for index, result in answers.items():
                try:
                    pending[index] = generators[index].send(result)
                except StopIteration as stop:
                    values[index] = stop.value
        return values

    # -- steps ---------------------------------------------------------------------------

    def active(self, max_individuals: int | None = None) -> list[Island]:
        out = []
        for island in self.islands:
            s = island.search
            if s.done:
                continue
            if (max_individuals is not None and s.initialized and s.next_slot == 0
                    and s.num_individuals >= max_individuals):
                continue
            out.append(island)
        return out

    def step(self, max_individuals: int | None = None) -> int:
        """One step of every active island (one evaluator call per phase), then migrations.

        Returns the number of individuals evaluated (children and migrants).
        """
        active = self.active(max_individuals)
        if not active:
            return 0
        made = self.drive({island.index: island.search.step_requests() for island in active})
        for island in active:
            island.evals_since_migration += made[island.index]
        total = sum(made.values())
        total += self.migrate([island for island in active if island.due])
        return total

    def same_tasks(self, receiver: Island, sources) -> np.ndarray:
        """Whether each source island searches the same tasks as ``receiver``."""
        mine = self.task_specs[receiver.island.task_set]
        return np.array([int(src) >= 0 and
                         self.task_specs[self.config.task_set(int(src))] == mine
                         for src in sources], dtype=bool)

    def migrate(self, islands: Sequence[Island]) -> int:
        """Uploads the migrants of ``islands`` (all of them first, so islands migrating
        after the same step receive each other's), receives theirs, then re-evaluates
        together those that come from islands on other tasks; returns how many."""
        if not islands or self.server is None:
            return 0
        answers = self.server.exchange_many([(island.index, island.upload())
                                             for island in islands])
        made = self.drive({island.index: island.accept_requests(
            answer, self.same_tasks(island, packed_sources(answer)))
            for island, answer in zip(islands, answers)})
        return sum(made.values())

    def run(self, should_stop: Callable[[], bool] | None = None,
            max_individuals: int | None = None,
            on_step: Callable[["IslandGroup"], None] | None = None,
            stop_search_fitness: float | None = None) -> None:
        """Steps until every island is done (or ``should_stop``/the fitness stop)."""
        while self.active(max_individuals):
            self.step(max_individuals)
            if on_step is not None:
                on_step(self)
            if stop_search_fitness is not None and self.stop_reached(stop_search_fitness):
                break
            if should_stop is not None and should_stop():
                break

    # -- state -----------------------------------------------------------------------------

    def save(self) -> None:
        if not self.checkpoint_dir:
            return
        for island in self.islands:
            island.save(checkpoint_path(self.checkpoint_dir, island.index))

    def best_fitness(self) -> float:
        best = -1.0
        for island in self.islands:
            s = island.search
            count = len(s.population) if s.initialized else s.next_slot
            if count:
                best = max(best, float(s.fitness[:count].max()))
        return best

    # -- comparing islands ------------------------------------------------------------------

    def rank_fitness(self, algorithms: Sequence[Algorithm]) -> np.ndarray:
        """Mean fitness of each algorithm on the common task set (``rank_tasks``).

        Each is evaluated as :func:`azero_jax.experiment.evaluate_on_tasks` would alone
        (algorithm id 0, ``rank_seed``), so the value equals its T_select fitness when
        ``rank_tasks`` is T_select. Results are memoised per exact algorithm.
        """
        if self.rank_tasks is None:
            raise ValueError("this group has no common task set to rank on")
        keys = [a.key() for a in algorithms]
        todo = list({k: i for i, k in enumerate(keys) if k not in self._rank_memo}.values())
        if todo:
            if self._rank_task_list is None:
                self._rank_task_list = make_tasks(self.rank_tasks)
            fitness = experiment_lib.mean_fitness_on_tasks(
                [algorithms[i] for i in todo], self._rank_task_list, memory=self.memory,
                max_abs_error=self.max_abs_error, seed=self.rank_seed,
                backend=self.backend, evaluate_fn=self.evaluate_fn, **self.evaluator_options)
            for i, f in zip(todo, fitness):
                self._rank_memo[keys[i]] = float(f)
        return np.array([self._rank_memo[k] for k in keys], dtype=np.float64)

    def stop_reached(self, threshold: float | None = None) -> bool:
        """Whether an island's candidate reached ``threshold`` (default the config's
        ``stop_search_fitness``).

        Its search fitness must reach it and, when islands are compared on a common
        task set (``rank_tasks``), its fitness there too: an island on easier tasks
        (e.g. MNIST beside CIFAR) must not stop the others by its own numbers alone.
        """
        threshold = self.config.stop_search_fitness if threshold is None else threshold
        if threshold is None:
            return False
        reached = [island.search.candidate().algorithm for island in self.islands
                   if island.search.num_individuals and
                   island.search.candidate().fitness >= threshold]
        if not reached or self.rank_tasks is None:
            return bool(reached)
        return bool((self.rank_fitness(reached) >= threshold).any())

    def candidates(self) -> list[dict]:
        """Each island's best individual (exactly, as JSON lists), fitness and counters."""
        out = []
        for island in self.islands:
            item = island.summary()
            if island.search.num_individuals:
                candidate = island.search.candidate()
                item["algorithm"] = checkpoint_lib.algorithm_to_json(candidate.algorithm)
                item["fitness"] = float(candidate.fitness)
                if self.rank_tasks is not None:
                    item["rank_fitness"] = float(self.rank_fitness([candidate.algorithm])[0])
            out.append(item)
        return out

    def totals(self) -> dict:
        """Counters summed over the group's islands (for progress lines)."""
        fitness = np.concatenate([
            island.search.fitness[:len(island.search.population) if island.search.initialized
                                  else island.search.next_slot] for island in self.islands])
        hits = sum(i.search.fec.hits for i in self.islands if i.search.fec is not None)
        misses = sum(i.search.fec.misses for i in self.islands if i.search.fec is not None)
        return {"individuals": sum(i.search.num_individuals for i in self.islands),
                "train_steps": sum(i.search.train_steps for i in self.islands),
                "fitness_sum": float(fitness.sum()), "fitness_sq_sum": float((fitness ** 2).sum()),
                "fitness_count": int(len(fitness)),
                "best_fitness": float(fitness.max()) if len(fitness) else 0.0,
                "fec_hits": hits, "fec_misses": misses,
                "migrations": sum(i.migrations for i in self.islands),
                "stop_reached": self.stop_reached(),
                "islands": len(self.islands), "cpu_secs": time.process_time()}


# --------------------------------------------------------------------------------------
# Progress.


def progress_record(totals: Sequence[dict], elapsed: float, num_islands: int) -> dict:
    """Combines group totals into a progress record (the search's keys plus islands)."""
    n = sum(t["fitness_count"] for t in totals)
    mean = sum(t["fitness_sum"] for t in totals) / n if n else 0.0
    sq = sum(t["fitness_sq_sum"] for t in totals) / n if n else 0.0
    individuals = sum(t["individuals"] for t in totals)
    steps = sum(t["train_steps"] for t in totals)
    hits = sum(t["fec_hits"] for t in totals)
    misses = sum(t["fec_misses"] for t in totals)
    return {
        "individuals": int(individuals), "elapsed_secs": float(elapsed),
        "train_steps": int(steps), "mean_fitness": mean,
        "stdev_fitness": math.sqrt(max(0.0, sq - mean * mean)),
        "best_fitness": max((t["best_fitness"] for t in totals), default=0.0),
        "fec_hit_rate": hits / (hits + misses) if hits + misses else 0.0, "hurdle": None,
        "individuals_per_sec": individuals / elapsed if elapsed > 0 else 0.0,
        "train_steps_per_sec": steps / elapsed if elapsed > 0 else 0.0,
        "islands": int(num_islands), "migrations": sum(t["migrations"] for t in totals),
        "worker_cpu_secs": sum(t.get("cpu_secs", 0.0) for t in totals),
        "stop_reached": any(t.get("stop_reached", False) for t in totals),
    }


def format_progress(record: dict) -> str:
    """The search's progress line plus ``islands=W, migrations=M``."""
    from azero_jax.experiment import format_progress as search_line
    return f"{search_line(record)}, islands={record['islands']}, migrations={record['migrations']}"


class _Progress:
    """Calls ``progress_fn`` every ``every`` individuals (summed over islands)."""

    def __init__(self, every: int, progress_fn, num_islands: int, elapsed_before: float = 0.0):
        self.every = int(every)
        self.progress_fn = progress_fn
        self.num_islands = num_islands
        self.start = time.monotonic() - elapsed_before
        self.last: int | None = None  # individuals of the last record (none twice)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def maybe(self, totals: Sequence[dict], force: bool = False) -> dict:
        record = progress_record(totals, self.elapsed(), self.num_islands)
        individuals = record["individuals"]
        due = individuals >= (self.last or 0) + self.every
        if self.progress_fn is not None and (force or due) and individuals != self.last:
            self.last = individuals
            self.progress_fn(record)
        return record


# --------------------------------------------------------------------------------------
# Running islands: the three modes.


@dataclasses.dataclass
class IslandsResult:
    """What a run of islands returns."""

    algorithm: Algorithm
    fitness: float  # the chosen island's search fitness (on its own tasks)
    island: int  # which island it came from
    num_islands: int
    individuals: int
    train_steps: int
    elapsed_secs: float
    migrations: int  # migration events (island receptions)
    server: dict
    restarts: int
    islands: list[dict]
    evaluator_calls: dict
    # The chosen candidate's fitness on the common task set the islands were ranked on
    # (None when all islands search the same tasks and no common set was given).
    rank_fitness: float | None = None

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["algorithm"] = format_algorithm(self.algorithm)
        return out


def _result(candidates: list[dict], elapsed: float, server_stats: dict, restarts: int,
            calls: dict) -> IslandsResult:
    scored = [c for c in candidates if "fitness" in c]
    if not scored:
        raise ValueError("no island evaluated any individual")
    # Islands on different task sets are compared on a common one (their search
    # fitnesses are on different tasks and not comparable); ties go to the lowest island.
    best = max(scored, key=lambda c: (c.get("rank_fitness", c["fitness"]), -c["island"]))
    return IslandsResult(
        algorithm=checkpoint_lib.algorithm_from_json(best["algorithm"]),
        fitness=float(best["fitness"]),
        island=int(best["island"]), num_islands=len(candidates),
        individuals=sum(c["individuals"] for c in candidates),
        train_steps=sum(c["train_steps"] for c in candidates), elapsed_secs=float(elapsed),
        migrations=sum(c["migrations"] for c in candidates), server=server_stats,
        restarts=int(restarts),
        islands=[{k: v for k, v in c.items() if k != "algorithm"} for c in candidates],
        evaluator_calls=dict(calls), rank_fitness=best.get("rank_fitness"))


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
        :class:`~azero_jax.evolution.Search`.
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
        from azero_jax import ray_islands
        return ray_islands.run_ray(spec, config, specs, seed=seed, checkpoint_dir=checkpoint_dir,
                                   max_individuals=max_individuals, progress_fn=progress_fn,
                                   should_stop=should_stop, **common)
    if config.parallel == "processes":
        return _run_processes(spec, config, specs, seed=seed, checkpoint_dir=checkpoint_dir,
                              max_individuals=max_individuals, progress_fn=progress_fn,
                              should_stop=should_stop, **common)
    server = open_server(seed, checkpoint_dir)
    server.register(0)
    group = IslandGroup(spec, specs, config, server=server, evaluate_fn=evaluate_fn,
                        checkpoint_dir=checkpoint_dir, **common)
    progress = _Progress(spec.progress_every, progress_fn, config.num_islands)
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
    return _result(group.candidates(), progress.elapsed(), server.stats(), 0, group.calls)


# --------------------------------------------------------------------------------------
# Processes: one worker per core (spawned), the server in the supervisor.


def split_islands(specs: Sequence[IslandSpec], num_workers: int) -> list[list[IslandSpec]]:
    """Round-robin assignment of islands to workers (worker k gets islands k, k+n, ...)."""
    return [list(specs[k::num_workers]) for k in range(num_workers)]


_WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1",
               "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
               "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


class _PipeServer:
    """The worker's end of the migration server (a pipe to the supervisor)."""

    def __init__(self, conn):
        self.conn = conn
        self.stop = False

    def exchange_many(self, uploads):
        self.conn.send(("exchange", [(int(island), packed) for island, packed in uploads]))
        while True:
            message = self.conn.recv()
            if message[0] == "migrants":
                return message[1]
            if message[0] == "stop":
                self.stop = True


def _worker_main(worker: int, payload: dict, conn) -> None:
    """Entry point of a spawned worker process (one group of islands)."""
    import signal
    # Ctrl-C and SIGTERM (also when sent to the whole process group) are the supervisor's:
    # it sends "stop". A worker whose supervisor died fails its next progress send.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        cores = sorted(os.sched_getaffinity(0))
        if os.environ.get("AZERO_ISLANDS_PIN", "1") != "0" and len(cores) > 1:
            os.sched_setaffinity(0, {cores[worker % len(cores)]})
    except (AttributeError, OSError):
        pass
    server = _PipeServer(conn)
    options = dict(payload["evaluator_options"] or {})
    backend = payload["backend"]
    if evaluator_lib.resolve_backend(backend) == "cpu":
        options.setdefault("num_threads", 1)
    group = IslandGroup(payload["spec"], payload["islands"], payload["config"],
                        memory=payload["memory"], backend=backend,
                        child_batch_size=payload["child_batch_size"],
                        random_search=payload["random_search"], evaluator_options=options,
                        eval_seed=payload["eval_seed"], server=server,
                        checkpoint_dir=payload["checkpoint_dir"],
                        rank_tasks=payload["rank_tasks"], rank_seed=payload["rank_seed"])
    for island in group.islands:
        island.restarts = max(island.restarts, int(payload.get("restart_count", 0)))
    conn.send(("started", worker, group.resumed))
    every = float(payload["config"].checkpoint_every_secs)
    last_save = last_report = time.monotonic()

    def should_stop():
        while conn.poll():
            if conn.recv()[0] == "stop":
                server.stop = True
        return server.stop

    def on_step(g):
        nonlocal last_save, last_report
        now = time.monotonic()
        if now - last_save >= every:
            g.save()
            last_save = now
        if now - last_report >= 0.2:
            conn.send(("progress", worker, g.totals()))
            last_report = now

    group.run(should_stop=should_stop, max_individuals=payload["max_individuals"],
              on_step=on_step, stop_search_fitness=payload["config"].stop_search_fitness)
    group.save()
    conn.send(("progress", worker, group.totals()))
    conn.send(("done", worker, group.candidates(), dict(group.calls)))
    while True:  # wait for the supervisor's goodbye so no message is lost
        message = conn.recv()
        if message[0] == "bye":
            break


def _run_processes(spec, config: IslandsConfig, specs, *, seed, checkpoint_dir, max_individuals,
                   progress_fn, should_stop, memory, backend, child_batch_size, random_search,
                   evaluator_options, eval_seed, rank_tasks, rank_seed) -> IslandsResult:
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")
    num_workers = int(config.num_workers or min(len(specs), os.cpu_count() or 1))
    num_workers = max(1, min(num_workers, len(specs)))
    groups = split_islands(specs, num_workers)
    temporary = None
    if checkpoint_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="azero_islands_")
        checkpoint_dir = temporary.name
    os.makedirs(checkpoint_dir, exist_ok=True)
    server = open_server(seed, checkpoint_dir)
    payload = dict(spec=spec, config=config, memory=memory, backend=backend,
                   child_batch_size=child_batch_size, random_search=random_search,
                   evaluator_options=evaluator_options, eval_seed=eval_seed,
                   checkpoint_dir=checkpoint_dir, max_individuals=max_individuals,
                   rank_tasks=rank_tasks, rank_seed=rank_seed)
    processes, conns = {}, {}
    restarts = collections.Counter()
    totals: dict[int, dict] = {}
    finished: dict[int, tuple] = {}
    progress = _Progress(spec.progress_every, progress_fn, config.num_islands)
    env_lock = threading.Lock()

    def start(worker: int) -> None:
        parent, child = context.Pipe()
        process = context.Process(target=_worker_main, name=f"azero-island-worker-{worker}",
                                  args=(worker, dict(payload, islands=groups[worker],
                                                     restart_count=restarts[worker]), child),
                                  daemon=True)
        with env_lock:
            saved = {k: os.environ.get(k) for k in _WORKER_ENV}
            env = dict(_WORKER_ENV)
            env["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + env["XLA_FLAGS"]).strip()
            os.environ.update(env)
            try:
                process.start()
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        child.close()
        processes[worker], conns[worker] = process, parent
        server.register(worker)
        _write_pids(checkpoint_dir, {w: p.pid for w, p in processes.items()}, restarts)

    for worker in range(num_workers):
        start(worker)
    stopping = False
    last_server_save = time.monotonic()
    try:
        while len(finished) < num_workers:
            live = [w for w in processes if w not in finished]
            ready = wait([conns[w] for w in live] + [processes[w].sentinel for w in live],
                         timeout=0.5)
            for worker in live:
                conn, process = conns[worker], processes[worker]
                try:
                    while conn.poll():
                        message = conn.recv()
                        kind = message[0]
                        if kind == "exchange":
                            conn.send(("migrants", server.exchange_many(message[1])))
                        elif kind == "progress":
                            totals[worker] = message[2]
                        elif kind == "done":
                            finished[worker] = (message[2], message[3])
                            conn.send(("bye",))
                except (EOFError, OSError, BrokenPipeError):
                    pass
                if worker not in finished and process.sentinel in ready and not process.is_alive():
                    process.join()
                    if restarts[worker] >= config.max_restarts:
                        raise RuntimeError(f"island worker {worker} died {restarts[worker] + 1} "
                                           f"times (exit code {process.exitcode})")
                    restarts[worker] += 1
                    start(worker)
            if time.monotonic() - last_server_save >= float(config.checkpoint_every_secs):
                save_server(server, checkpoint_dir)
                last_server_save = time.monotonic()
            if totals:
                record = progress.maybe(list(totals.values()))
                if not stopping and record["stop_reached"]:
                    stopping = True
                if not stopping and should_stop is not None and should_stop():
                    stopping = True
                if stopping:
                    for worker in processes:
                        if worker not in finished:
                            try:
                                conns[worker].send(("stop",))
                            except (OSError, BrokenPipeError):
                                pass
        save_server(server, checkpoint_dir)
    finally:
        for worker, process in processes.items():
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        if temporary is not None:
            temporary.cleanup()
    progress.maybe(list(totals.values()), force=True)
    candidates = sorted((c for cands, _ in finished.values() for c in cands),
                        key=lambda c: c["island"])
    calls = collections.Counter()
    for _, worker_calls in finished.values():
        calls.update(worker_calls)
    stats = server.stats()
    stats["worker_restarts"] = {str(k): restarts[k] for k in range(num_workers)}
    return _result(candidates, progress.elapsed(), stats, sum(restarts.values()), calls)


def _write_pids(directory: str, pids: dict, restarts=None) -> None:
    """``workers.json``: the pid and restart count of each worker (for operators, tests)."""
    restarts = restarts or {}
    data = {str(w): {"pid": int(pid), "restarts": int(restarts.get(w, 0))}
            for w, pid in pids.items()}
    tmp = os.path.join(directory, ".workers.json.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, os.path.join(directory, "workers.json"))


# --------------------------------------------------------------------------------------
# The experiments loop with islands (what the binary calls).


def run_experiments(config, islands: IslandsConfig, log: Callable[[str], None] = print) -> dict:
    """The reference's experiments loop where each experiment is a run of islands.

    ``config`` is an :class:`azero_jax.experiment.ExperimentConfig`. Every island's best
    individual is evaluated on T_select and the best of them there is the experiment's
    candidate (islands on different task sets have incomparable search fitnesses); the
    loop keeps the best candidate as the single-population loop does, and the best is
    evaluated on T_final. The JSON
    summary adds an ``islands`` section (per-island counters, migrations, restarts).
    With ``checkpoint_dir``, island checkpoints of the running experiment live in
    ``checkpoint_dir/experiment_<n>/`` and the loop state in ``islands_run.json``; a
    restart resumes both, after checking that the folder is not in use, holds an
    islands run and was written with the same settings; a finished run only reports
    its result again.
    """
    from azero_jax import experiment as experiment_lib

    spec = experiment_lib.search_spec(config)
    experiment_lib.preflight(config, spec, islands)
    folder = config.checkpoint_dir
    with run_checks.FolderLock(folder) if folder else contextlib.nullcontext():
        run_checks.check_mode(folder, islands=True)
        return _run_experiments(config, islands, spec, log)


def _run_experiments(config, islands: IslandsConfig, spec: SearchSpec, log) -> dict:
    from azero_jax import experiment as experiment_lib

    fields = run_checks.resume_fields(config, spec, islands)
    if islands.checkpoint_every_secs is None:
        islands = islands.replace(checkpoint_every_secs=float(config.checkpoint_every_secs))
    seed = int(config.random_seed) or (time.time_ns() % (2**32 - 2)) + 1
    state = {"random_seed": seed, "num_experiments": 0, "experiments": [],
             "best_algorithm": None,  # exact (JSON lists): the text keeps 6 digits
             "best_select_fitness": None, "rng": None, "elapsed_secs": 0.0,
             "config_fields": fields, "finished": False}
    loop_path = None
    if config.checkpoint_dir:
        os.makedirs(config.checkpoint_dir, exist_ok=True)
        loop_path = os.path.join(config.checkpoint_dir, run_checks.ISLANDS_CHECKPOINT)
        if os.path.exists(loop_path):
            state = _read_run_state(loop_path)
            if config.random_seed and int(state["random_seed"]) != seed:
                raise CheckpointError(f"{loop_path} was written with --random_seed="
                                      f"{state['random_seed']}, this run has {seed}; use the "
                                      "same flags or another --checkpoint_dir")
            run_checks.check_resume(loop_path, state.get("config_fields"), fields)
            state["config_fields"] = fields
            seed = int(state["random_seed"])
            if state.get("finished"):
                log(f"Resumed islands run from {loop_path}: all {state['num_experiments']} "
                    "experiments were done.")
            else:
                log(f"Resumed islands run from {loop_path}: experiment "
                    f"{state['num_experiments'] + 1}.")
            experiment_lib.trim_metrics_log(
                config.metrics_log, int(state["num_experiments"]), checkpointed_individuals(
                    os.path.join(config.checkpoint_dir,
                                 f"experiment_{state['num_experiments']}")))
    if state["num_experiments"] == 0 and state["rng"] is None:
        log(f"Random seed = {seed}")
    rng = random_lib.Random(seed)
    if state["rng"] is not None:
        rng.setstate(checkpoint_lib.rng_state_from_json(state["rng"]))
    start = time.monotonic() - float(state["elapsed_secs"])
    interrupted = False
    stop_flag = experiment_lib._StopFlag()

    def save_loop(current=None):
        if loop_path is None:
            return
        state["rng"] = checkpoint_lib.rng_state_to_json(rng.getstate())
        state["elapsed_secs"] = time.monotonic() - start
        state["current"] = current
        checkpoint_lib.write_json_atomic(loop_path, state)

    def progress(record):
        log(format_progress(record))
        if config.metrics_log:
            os.makedirs(os.path.dirname(os.path.abspath(config.metrics_log)), exist_ok=True)
            with open(config.metrics_log, "a") as handle:
                handle.write(json.dumps({"experiment": state["num_experiments"], **record}) + "\n")

    last_result = None
    with stop_flag:
        while not state.get("finished"):
            current = state.get("current")
            if current is None:
                draw = lambda: rng.randrange(1, 2**31 - 1)  # noqa: E731
                current = {"search_seed": draw(), "search_task_seed": draw(),
                           "select_task_seed": draw(), "select_seed": draw()}
                save_loop(current)
            run_spec, run_islands_config = spec, islands
            if config.randomize_task_seeds:
                run_spec = spec.replace(search_tasks=experiment_lib.randomize_task_seeds(
                    spec.search_tasks, current["search_task_seed"]))
                run_islands_config = islands.replace(task_sets=tuple(
                    (name, experiment_lib.randomize_task_seeds(
                        specs, current["search_task_seed"] + k + 1))
                    for k, (name, specs) in enumerate(islands.task_sets)))
            directory = None
            if config.checkpoint_dir:
                directory = os.path.join(config.checkpoint_dir,
                                         f"experiment_{state['num_experiments']}")
            migration = (f"every {islands.migration_interval} children" if islands.migration
                         else "off")
            select_specs = config.select_tasks
            if config.randomize_task_seeds:
                select_specs = experiment_lib.randomize_task_seeds(select_specs,
                                                                   current["select_task_seed"])
            log(f"Running evolution experiment with {islands.num_islands} islands "
                f"({islands.parallel}, migration {migration})...")
            result = run_islands(run_spec, run_islands_config, memory=config.memory,
                                 seed=current["search_seed"], backend=config.backend,
                                 child_batch_size=config.child_batch_size,
                                 random_search=config.random_search,
                                 evaluator_options=dict(config.evaluator_options),
                                 checkpoint_dir=directory, max_individuals=config.max_individuals,
                                 progress_fn=progress, should_stop=lambda: stop_flag.requested,
                                 rank_tasks=select_specs, rank_seed=current["select_seed"])
            last_result = result
            if stop_flag.requested:
                interrupted = True
                save_loop(current)
                log("Interrupted: island checkpoints saved." if directory else "Interrupted.")
                log("Best algorithm so far:")
                log(format_algorithm(result.algorithm).rstrip("\n"))
                break
            log("Experiment done. Retrieving candidate algorithm.")
            log(f"Search fitness for candidate algorithm = {result.fitness:.6f} "
                f"(island {result.island})")
            # Every island's best was evaluated on T_select (with the experiment's select
            # seed, as evaluate_on_tasks would) to choose the candidate: that is its
            # select fitness.
            log("Evaluating candidate algorithm from experiment (on T_select tasks)... ")
            select = float(result.rank_fitness)
            log(f"Select fitness for candidate algorithm = {select:.6f}")
            record = {"experiment": state["num_experiments"], "search_fitness": result.fitness,
                      "select_fitness": select, **{k: v for k, v in result.to_json().items()
                                                   if k not in ("fitness",)}}
            if state["best_select_fitness"] is None or select >= state["best_select_fitness"]:
                state["best_algorithm"] = checkpoint_lib.algorithm_to_json(result.algorithm)
                state["best_select_fitness"] = select
                log("Select fitness is the best so far. ")
            state["experiments"].append(record)
            state["num_experiments"] += 1
            stop_now = (config.sufficient_fitness > 0 and
                        state["best_select_fitness"] > config.sufficient_fitness)
            if config.max_experiments and state["num_experiments"] >= config.max_experiments:
                stop_now = True
            state["finished"] = stop_now
            save_loop(None)
            state["current"] = None
            if stop_now:
                break
    final = None
    selected = _selected_algorithm(state)
    best = selected if selected is not None else (
        last_result.algorithm if last_result is not None else None)
    best_text = format_algorithm(best) if best is not None else None
    if not interrupted and config.final_tasks and selected is not None:
        final = experiment_lib.evaluate_on_tasks(
            selected, config.final_tasks, memory=config.memory,
            max_abs_error=spec.max_abs_error, seed=rng.randrange(1, 2**31 - 1),
            backend=config.backend, **dict(config.evaluator_options))
        log("")
        log("Final evaluation of best algorithm (on unseen tasks)...")
        log(f"Final evaluation fitness (on unseen data) = {final:.6f}")
    if not interrupted and best_text is not None:
        from azero_jax.experiment import log_found_algorithm
        log_found_algorithm(log, best)
    experiments = state["experiments"]
    summary = {
        "random_seed": seed, "num_experiments": state["num_experiments"],
        "interrupted": interrupted, "best_select_fitness": state["best_select_fitness"],
        "final_fitness": final, "elapsed_secs": time.monotonic() - start,
        "experiments": experiments, "best_algorithm": best_text,
        "memory": dataclasses.asdict(config.memory), "backend": config.backend,
        "child_batch_size": config.child_batch_size, "random_search": config.random_search,
        "islands": {
            "num_islands": islands.num_islands, "parallel": islands.parallel,
            "migration": islands.migration, "migration_interval": islands.migration_interval,
            "migration_fraction": islands.migration_fraction,
            "population_sizes": [c["population_size"] for c in last_result.islands]
            if last_result else [],
            "task_sets": [c["task_set"] for c in last_result.islands] if last_result else [],
            "migrations": sum(e["migrations"] for e in experiments) if experiments else
            (last_result.migrations if last_result else 0),
            "restarts": sum(e["restarts"] for e in experiments) if experiments else
            (last_result.restarts if last_result else 0),
        },
    }
    if experiments:
        best = max(experiments, key=lambda e: e["select_fitness"])
        summary["best_search_fitness"] = best["search_fitness"]
    if config.output_dir:
        os.makedirs(config.output_dir, exist_ok=True)
        with open(os.path.join(config.output_dir, "summary.json"), "w") as handle:
            json.dump(summary, handle, indent=1)
        if best_text is not None:
            with open(os.path.join(config.output_dir, "best_algorithm.txt"), "w") as handle:
                handle.write(best_text)
    return summary


def _read_run_state(path: str) -> dict:
    """``islands_run.json``, or :class:`CheckpointError` when it is not one."""
    try:
        with open(path) as handle:
            state = json.load(handle)
        int(state["random_seed"]), int(state["num_experiments"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: not a readable islands run state ({error}); start over "
                              "with another --checkpoint_dir") from None
    return state


def _selected_algorithm(state: dict) -> Algorithm | None:
    """The best candidate on T_select so far, from the islands run state."""
    if state.get("best_algorithm") is not None:
        return checkpoint_lib.algorithm_from_json(state["best_algorithm"])
    if state.get("best_text") is not None:  # a run file written before exact algorithms
        return parse_algorithm(state["best_text"])
    return None


def islands_config_from_flags(path: str | None, **overrides) -> IslandsConfig:
    """The binary's flags (``--islands_config`` plus overrides) as an :class:`IslandsConfig`."""
    if path:
        return load_islands_config(path, **overrides)
    return IslandsConfig(**{k: v for k, v in overrides.items() if v is not None})


FLAG_NAMES = ("num_islands", "migration_interval", "migration_fraction", "parallel",
              "ray_address", "islands_config")


def run_from_flags(flag_values, config, log: Callable[[str], None] = print) -> dict | None:
    """What ``run_search_experiment`` calls: runs islands if any island flag is set.

    Returns the JSON summary, or None when no island flag (``--num_islands``,
    ``--migration_interval``, ``--migration_fraction``, ``--parallel``, ``--ray_address``,
    ``--islands_config``) was given (the caller then runs the single-population loop).
    Raises ValueError (one line, naming the flag or key) for a bad islands config.
    """
    values = {name: getattr(flag_values, name, None) for name in FLAG_NAMES}
    if all(v is None for v in values.values()):
        return None
    path = values.pop("islands_config")
    if path and not os.path.isfile(path):
        raise ConfigError(f"--islands_config={path}: " +
                          ("is a folder, expected a JSON file" if os.path.isdir(path)
                           else "no such file"))
    try:
        islands = islands_config_from_flags(path, **values)
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"--islands_config / island flags: {error}") from None
    return run_experiments(config, islands, log=log)


__all__ = ["IslandsConfig", "IslandSpec", "Island", "IslandGroup", "IslandsResult",
           "MigrationServer", "run_islands", "run_experiments", "load_islands_config",
           "parse_islands_config", "spread_population_sizes", "assign_task_sets",
           "format_progress", "islands_config_from_flags", "run_from_flags"]
