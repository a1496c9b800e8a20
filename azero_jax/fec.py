"""Functional equivalence checking (spec §7): fingerprints and the LRU cache.

A child's fingerprint on a task is the exact per-step errors of a short training
run (the first ``num_train_examples`` steps) and of the first ``num_valid_examples``
validation examples, run with the fixed FEC seed 235732282, together with the task
index and the train-budgeted number of training steps. Two (algorithm, task) pairs
with the same fingerprint are taken to be functionally equivalent: the cached
per-task fitness of the first one is reused.

Fingerprints are hashed on the host, vectorised over a whole batch, to 128-bit
integers (two independent 64-bit lanes of splitmix64 mixing over the exact bits of
every error, ``+0.0`` and ``-0.0`` alike as in the reference), so the cache is
compact and checkpoints as plain arrays.

The cache is the reference's: LRU with ``cache_size`` entries; a hit refreshes
recency and increments the entry's count; once the count reaches ``forget_every``
(0 = never) the entry is erased after being read, so the next sighting is
re-evaluated.

Example:
    >>> from azero_jax.fec import FECCache
    >>> cache = FECCache(cache_size=5, forget_every=0)
    >>> for key in (5, 2, 4, 1, 3, 6, 7):
    ...     cache.insert(key, 0.5)
    >>> sorted(cache.keys())
    [1, 3, 4, 6, 7]
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Iterable

import numpy as np

FEC_SEED = 235732282


@dataclasses.dataclass(frozen=True)
class FECConfig:
    """The reference's ``FECSpec``.

    Attributes:
      num_train_examples: training steps of the fingerprint run (<= 100).
      num_valid_examples: validation examples of the fingerprint run (<= 100).
      cache_size: LRU capacity (> 1).
      forget_every: erase an entry after this many sightings (0 = never, else > 1).
    """

    num_train_examples: int
    num_valid_examples: int
    cache_size: int = 100000
    forget_every: int = 100

    def __post_init__(self):
        for name in ("num_train_examples", "num_valid_examples"):
            value = int(getattr(self, name))
            if not 0 < value <= 100:
                raise ValueError(f"fec.{name} must be in 1..100 (errors are recorded for at "
                                 f"most 100 steps), got {value}")
        if int(self.cache_size) <= 1:
            raise ValueError(f"fec.cache_size must be > 1, got {self.cache_size}")
        if int(self.forget_every) < 0 or int(self.forget_every) == 1:
            raise ValueError(f"fec.forget_every must be 0 or > 1, got {self.forget_every}")

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_LANE_SEEDS = (np.uint64(0x243F6A8885A308D3), np.uint64(0x13198A2E03707344))


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def hash_rows(words: np.ndarray) -> list[int]:
    """128-bit hashes (Python ints) of the rows of a ``[n, k]`` uint64 array."""
    words = np.ascontiguousarray(words, dtype=np.uint64)
    n, k = words.shape
    lanes = []
    with np.errstate(over="ignore"):
        for seed in _LANE_SEEDS:
            h = np.full(n, seed, dtype=np.uint64)
            for j in range(k):
                h = _mix(h ^ (words[:, j] + _GOLDEN * np.uint64(j + 1)) + seed)
            lanes.append(h.tolist())
    return [(a << 64) | b for a, b in zip(*lanes)]


def _error_words(errors: np.ndarray, counts: np.ndarray) -> np.ndarray:
    errors = np.asarray(errors, dtype=np.float64)
    mask = np.arange(errors.shape[1])[None, :] < np.asarray(counts)[:, None]
    clean = np.where(mask, errors + 0.0, 0.0)  # + 0.0 maps -0.0 to +0.0
    return clean.view(np.uint64)


def fingerprint_words(results, task_index: Iterable[int]) -> np.ndarray:
    """``[B, k]`` uint64 words of each pair's fingerprint, without the budget part."""
    n = len(results.fitness)
    return np.concatenate([
        _error_words(results.train_errors, results.num_train_errors),
        _error_words(results.valid_errors, results.num_valid_errors),
        np.stack([np.asarray(results.num_train_errors, np.int64),
                  np.asarray(results.num_valid_errors, np.int64),
                  np.asarray(task_index, np.int64).reshape(n)], axis=1).view(np.uint64),
    ], axis=1)


def fingerprint_keys(results, task_index: Iterable[int], budget_steps: Iterable[int]) -> list[int]:
    """FEC keys of every pair of a probe evaluation.

    Args:
      results: a :class:`~azero_jax.evaluator.PairResults` with recorded errors.
      task_index: ``[B]`` the task index of each pair (``task.index``).
      budget_steps: ``[B]`` the train-budgeted number of full training steps (0 if
        rejected).
    """
    n = len(results.fitness)
    budget = np.asarray(budget_steps, np.int64).reshape(n, 1).view(np.uint64)
    return hash_rows(np.concatenate([fingerprint_words(results, task_index), budget], axis=1))


class FECCache:
    """The reference's LRU fitness cache keyed by fingerprint.

    Args:
      cache_size: the most entries kept (reference default 100000; must be > 1).
      forget_every: erase an entry once it has been seen this many times (0 = never).
    """

    def __init__(self, cache_size: int = 100000, forget_every: int = 100):
        if int(cache_size) <= 1:
            raise ValueError(f"fec cache_size must be > 1, got {cache_size}")
        if int(forget_every) < 0 or int(forget_every) == 1:
            raise ValueError(f"fec forget_every must be 0 or > 1, got {forget_every}")
        self.cache_size = int(cache_size)
        self.forget_every = int(forget_every)
        self._entries: collections.OrderedDict[int, list] = collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self):
        return len(self._entries)

    def keys(self) -> list[int]:
        return list(self._entries)

    def lookup(self, key: int) -> float | None:
        """The cached fitness (a hit, counted, maybe forgotten) or None (a miss, counted)."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        entry[1] += 1
        if self.forget_every and entry[1] >= self.forget_every:
            del self._entries[key]
        else:
            self._entries.move_to_end(key)
        return entry[0]

    def lookup_present(self, keys: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Looks up many keys in order; only present keys count (as hits).

        Returns:
          ``(values, found)``: cached fitnesses (0 where absent) and a boolean mask.
        """
        entries, forget = self._entries, self.forget_every
        values = np.zeros(len(keys), dtype=np.float64)
        found = np.zeros(len(keys), dtype=bool)
        move = entries.move_to_end
        for p, key in enumerate(keys):
            entry = entries.get(key)
            if entry is None:
                continue
            found[p] = True
            values[p] = entry[0]
            entry[1] += 1
            if forget and entry[1] >= forget:
                del entries[key]
            else:
                move(key)
        self.hits += int(found.sum())
        return values, found

    def contains(self, key: int) -> bool:
        return key in self._entries

    def insert(self, key: int, fitness: float) -> None:
        """Inserts a freshly evaluated fitness (count 1) as the most recent entry."""
        self._entries[key] = [float(fitness), 1]
        self._entries.move_to_end(key)
        while len(self._entries) > self.cache_size:
            self._entries.popitem(last=False)

    # -- checkpointing ---------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The cache (in LRU order) and counters as plain arrays (for an npz checkpoint)."""
        keys = list(self._entries)
        hi = np.array([k >> 64 for k in keys], dtype=np.uint64)
        lo = np.array([k & 0xFFFFFFFFFFFFFFFF for k in keys], dtype=np.uint64)
        values = list(self._entries.values())
        return {
            "fec_key_hi": hi, "fec_key_lo": lo,
            "fec_fitness": np.array([v[0] for v in values], dtype=np.float64),
            "fec_count": np.array([v[1] for v in values], dtype=np.int64),
            "fec_stats": np.array([self.hits, self.misses], dtype=np.int64),
        }

    def load_arrays(self, arrays) -> None:
        """Restores what :meth:`to_arrays` saved."""
        self._entries.clear()
        for hi, lo, fit, count in zip(arrays["fec_key_hi"].tolist(), arrays["fec_key_lo"].tolist(),
                                      arrays["fec_fitness"].tolist(), arrays["fec_count"].tolist()):
            self._entries[(int(hi) << 64) | int(lo)] = [fit, int(count)]
        self.hits, self.misses = (int(x) for x in arrays["fec_stats"])
