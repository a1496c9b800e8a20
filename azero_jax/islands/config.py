"""The islands configuration: :class:`IslandsConfig` and its JSON file.

Holds the dataclass (how many islands, their populations and task sets, migration and
execution mode), the helpers that spread population sizes and assign task sets over the
islands, and the parser and loader of an islands config JSON file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

from azero_jax.core.tasks import TaskSpec
from azero_jax.spec.search_spec import SearchSpec, parse_task_collection


PARALLEL_MODES = ("batched", "processes", "ray")


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
        (:meth:`~azero_jax.islands.group.IslandGroup.stop_reached`).
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
