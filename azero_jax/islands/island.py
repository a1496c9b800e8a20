"""One island: a regularized-evolution search plus its migration bookkeeping.

Holds :class:`IslandSpec` (what makes an island: index, population size, task set,
seed), :func:`island_specs` (one per island of a run), :class:`Island` (upload, accepting
migrants, its checkpoint) and the paths of island checkpoints in a folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random as random_lib

import numpy as np

from azero_jax.evolution import checkpoint as checkpoint_lib
from azero_jax.evolution.regularized_evolution import Search
from azero_jax.islands.config import IslandsConfig
from azero_jax.islands.packing import pack, packed_fitness, unpack
from azero_jax.spec.search_spec import SearchSpec


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
    """A :class:`~azero_jax.evolution.regularized_evolution.Search` plus its migration
    bookkeeping."""

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
