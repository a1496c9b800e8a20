"""Packed migrants: algorithms and their fitness as plain arrays.

What travels between processes and machines (and what the migration server keeps):
:func:`pack` / :func:`unpack`, the per-algorithm fitness and source island of a pack, and
concatenating and selecting packed algorithms without building them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from azero_jax.core.program import Algorithm
from azero_jax.evolution import checkpoint as checkpoint_lib


PACK = "a"  # the prefix of packed migrants' arrays
# Per-algorithm arrays of a pack (the others hold one row per instruction).
_PER_ALGORITHM = (f"{PACK}_sizes", f"{PACK}_fitness", f"{PACK}_source")


def pack(algorithms: Sequence[Algorithm], fitness=None) -> dict[str, np.ndarray]:
    """Algorithms (and their fitness; NaN = unknown) as plain arrays: what travels
    between processes and machines."""
    out = checkpoint_lib.pack_algorithms(list(algorithms), PACK)
    out[f"{PACK}_fitness"] = (np.full(len(algorithms), np.nan) if fitness is None
                               else np.asarray(fitness, dtype=np.float64).reshape(-1))
    return out


def unpack(arrays: dict[str, np.ndarray]) -> list[Algorithm]:
    return checkpoint_lib.unpack_algorithms(arrays, PACK)


def packed_fitness(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The fitness of each packed algorithm (NaN where unknown, e.g. an old checkpoint)."""
    n = len(arrays[f"{PACK}_sizes"])
    return np.asarray(arrays.get(f"{PACK}_fitness", np.full(n, np.nan)), dtype=np.float64)


def packed_sources(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The island each packed migrant came from (-1 where unknown)."""
    n = len(arrays[f"{PACK}_sizes"])
    return np.asarray(arrays.get(f"{PACK}_source", np.full(n, -1)), dtype=np.int64)


def with_sources(packed: dict[str, np.ndarray], island) -> dict[str, np.ndarray]:
    """``packed`` with every algorithm marked as coming from ``island``."""
    n = len(packed[f"{PACK}_sizes"])
    fitness = packed_fitness(packed)
    return dict(packed, **{f"{PACK}_fitness": fitness,
                           f"{PACK}_source": np.full(n, island, dtype=np.int64)})


def concat_packed(packs: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Packed algorithms of several :func:`pack` results, in order, as one."""
    return {key: np.concatenate([p[key] for p in packs]) for key in packs[0]}


def take_packed(packed: dict[str, np.ndarray], chosen: Sequence[int]) -> dict[str, np.ndarray]:
    """The packed algorithms at positions ``chosen`` (in that order)."""
    sizes = packed[f"{PACK}_sizes"]
    lengths = sizes.sum(axis=1)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    chosen = np.asarray(chosen, dtype=np.int64)
    take_lengths = lengths[chosen]
    # Instruction rows of the chosen algorithms: each start followed by its length.
    rows = (np.repeat(starts[chosen] - np.concatenate([[0], np.cumsum(take_lengths)[:-1]]),
                      take_lengths) + np.arange(int(take_lengths.sum()), dtype=np.int64))
    return {key: (value[chosen] if key in _PER_ALGORITHM else value[rows])
            for key, value in packed.items()}
