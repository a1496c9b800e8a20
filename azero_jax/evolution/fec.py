"""Functional equivalence checking (spec §7): fingerprints and the LRU cache.

A child's fingerprint on a task is the exact per-step errors of a short training
run (the first ``num_train_examples`` steps) and of the first ``num_valid_examples``
validation examples, run with the fixed FEC seed 235732282, together with the task
index and the train-budgeted number of training steps. Two (algorithm, task) pairs
with the same fingerprint are taken to be functionally equivalent: the cached
per-task fitness of the first one is reused.

Fingerprints are hashed on the host, compiled over a whole batch, to 128-bit keys (two
64-bit lanes, each a sum of splitmix64 mixes of every word with its position, over the
exact bits of every error, ``+0.0`` and ``-0.0`` alike as in the reference), so the
cache is compact and checkpoints as plain arrays.

The cache is the reference's: LRU with ``cache_size`` entries; a hit refreshes
recency and increments the entry's count; once the count reaches ``forget_every``
(0 = never) the entry is erased after being read, so the next sighting is
re-evaluated. It is an :class:`LRUTable` (open addressing over a fixed pool of entries
in a linked recency list), looked up and filled a batch at a time by compiled loops
that apply the keys in order, exactly as one-at-a-time calls would.

Example:
    >>> from azero_jax.evolution.fec import FECCache
    >>> cache = FECCache(cache_size=5, forget_every=0)
    >>> for key in (5, 2, 4, 1, 3, 6, 7):
    ...     cache.insert(key, 0.5)
    >>> sorted(cache.keys())
    [1, 3, 4, 6, 7]
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np

from azero_jax.core.population import search_kernels as _k


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


def hash_row_arrays(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(hi, lo)`` uint64 lanes of :func:`hash_rows` (compiled; no Python ints)."""
    words = np.ascontiguousarray(words, dtype=np.uint64)
    hi = np.empty(words.shape[0], dtype=np.uint64)
    lo = np.empty(words.shape[0], dtype=np.uint64)
    _k().hash_rows(words, hi, lo)
    return hi, lo


def hash_rows(words: np.ndarray) -> list[int]:
    """128-bit hashes (Python ints) of the rows of a ``[n, k]`` uint64 array."""
    words = np.ascontiguousarray(words, dtype=np.uint64)
    n, k = words.shape
    lanes = []
    with np.errstate(over="ignore"):
        for lane in _LANE_SEEDS:
            total = np.zeros(n, dtype=np.uint64)
            for j in range(k):
                total += _mix((words[:, j] ^ (_GOLDEN * np.uint64(j + 1))) + lane)
            lanes.append(_mix(total + (lane ^ np.uint64(k))).tolist())
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


def fingerprint_hashes(results, task_index) -> tuple[np.ndarray, np.ndarray]:
    """``(hi, lo)`` = :func:`hash_row_arrays` of :func:`fingerprint_words`, compiled in one
    pass (what the search uses); the budget word is mixed in afterwards."""
    n = len(results.fitness)
    hi = np.empty(n, dtype=np.uint64)
    lo = np.empty(n, dtype=np.uint64)
    _k().fingerprint_hashes(
        np.ascontiguousarray(results.train_errors, dtype=np.float64),
        np.ascontiguousarray(results.num_train_errors, dtype=np.int64),
        np.ascontiguousarray(results.valid_errors, dtype=np.float64),
        np.ascontiguousarray(results.num_valid_errors, dtype=np.int64),
        np.ascontiguousarray(task_index, dtype=np.int64).reshape(n), True, hi, lo)
    return hi, lo


def fingerprint_keys(results, task_index: Iterable[int], budget_steps: Iterable[int]) -> list[int]:
    """FEC keys of every pair of a probe evaluation.

    Args:
      results: a :class:`~azero_jax.backends.evaluator.PairResults` with recorded errors.
      task_index: ``[B]`` the task index of each pair (``task.index``).
      budget_steps: ``[B]`` the train-budgeted number of full training steps (0 if
        rejected).
    """
    n = len(results.fitness)
    budget = np.asarray(budget_steps, np.int64).reshape(n, 1).view(np.uint64)
    return hash_rows(np.concatenate([fingerprint_words(results, task_index), budget], axis=1))


class LRUTable:
    """A table of 128-bit keys in least-recently-used order, with a fixed number of entries.

    Keys live in a pool of ``capacity`` entries (open addressing with linear probing and
    backward-shift deletion, plus a doubly linked recency list), so every operation is a
    compiled loop over a batch (:mod:`azero_jax.evolution._search_kernels`). Callers keep per-entry
    payloads in their own arrays indexed by the entry numbers the table returns.
    """

    def __init__(self, capacity: int, entry_words: int | None = None):
        capacity = int(capacity)
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        slots = 16
        while slots < 2 * (capacity + 1):
            slots *= 2
        if slots > 2**31:
            raise ValueError(f"capacity {capacity} is too large for a table")
        self.capacity = capacity
        self.index = np.empty(slots, dtype=np.uint64)
        self.entries = _aligned_rows(capacity + 1, entry_words or _k().ENTRY_WORDS)
        self.free = np.empty(capacity + 1, dtype=np.int64)
        self.meta = np.zeros(_k().META_LEN, dtype=np.int64)
        _k().table_init(self.index, self.entries, self.free, self.meta, capacity)

    @property
    def key_hi(self) -> np.ndarray:
        """Each entry's key, high word (a view)."""
        return self.entries[:, _k().E_HI]

    @property
    def key_lo(self) -> np.ndarray:
        return self.entries[:, _k().E_LO]

    def __len__(self) -> int:
        return int(self.meta[_k().M_SIZE])

    def arrays(self) -> tuple[np.ndarray, ...]:
        """``(index, entries, free, meta)``: the table as the compiled kernels take it."""
        return self.index, self.entries, self.free, self.meta

    def find(self, hi: np.ndarray, lo: np.ndarray, refresh: bool = False) -> np.ndarray:
        """Entry of each key, -1 where absent (``refresh`` makes found keys most recent)."""
        entries = np.empty(len(hi), dtype=np.int64)
        _k().table_find(self.index, self.entries, self.meta, _u64(hi), _u64(lo),
                        bool(refresh), entries)
        return entries

    def insert(self, hi: np.ndarray, lo: np.ndarray, limit: int | None = None) -> np.ndarray:
        """Inserts keys as most recent, evicting the least recent beyond ``limit``
        (default the capacity) entries; returns each key's entry (-1 if evicted again)."""
        entries = np.empty(len(hi), dtype=np.int64)
        limit = self.capacity if limit is None else min(int(limit), self.capacity)
        _k().table_insert(self.index, self.entries, self.free, self.meta, _u64(hi), _u64(lo),
                          limit, entries)
        return entries

    def order(self) -> np.ndarray:
        """Entries from least to most recently used."""
        out = np.empty(self.capacity, dtype=np.int64)
        n = _k().table_order(self.entries, self.meta, out)
        return out[:n]


def _aligned_rows(n: int, words: int) -> np.ndarray:
    """A zeroed ``[n, words]`` uint64 array whose rows start on 64-byte boundaries (so a
    32-byte row never straddles two cache lines)."""
    raw = np.zeros(n * words + 8, dtype=np.uint64)
    skip = (-raw.ctypes.data % 64) // 8
    return raw[skip:skip + n * words].reshape(n, words)


def _u64(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.uint64)


def split_keys(keys) -> tuple[np.ndarray, np.ndarray]:
    """``(hi, lo)`` uint64 arrays of 128-bit keys given as Python ints."""
    keys = [int(k) for k in keys]
    return (np.array([k >> 64 for k in keys], dtype=np.uint64),
            np.array([k & 0xFFFFFFFFFFFFFFFF for k in keys], dtype=np.uint64))


def join_keys(hi, lo) -> list[int]:
    return [(int(a) << 64) | int(b) for a, b in zip(np.asarray(hi).tolist(), np.asarray(lo).tolist())]


class FECCache:
    """The reference's LRU fitness cache keyed by fingerprint (§7).

    Keys are 128-bit fingerprints, given as ``(hi, lo)`` uint64 arrays to the batched
    methods or as Python ints to the one-key ones.

    Args:
      cache_size: the most entries kept (reference default 100000; must be > 1).
      forget_every: erase an entry once it has been seen this many times (0 = never).
    """

    def __init__(self, cache_size: int = FECConfig.cache_size,
                 forget_every: int = FECConfig.forget_every):
        if int(cache_size) <= 1:
            raise ValueError(f"fec cache_size must be > 1, got {cache_size}")
        if int(forget_every) < 0 or int(forget_every) == 1:
            raise ValueError(f"fec forget_every must be 0 or > 1, got {forget_every}")
        self.cache_size = int(cache_size)
        self.forget_every = int(forget_every)
        self._table = LRUTable(self.cache_size, _k().FEC_ENTRY_WORDS)
        self.misses = 0

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The table's arrays, as kernels take them (entries hold fitness and count)."""
        return self._table.arrays()

    @property
    def _fitness(self) -> np.ndarray:
        """Each entry's fitness (a view)."""
        return self._table.entries[:, _k().E_VALUE].view(np.float64)

    @property
    def _count(self) -> np.ndarray:
        return self._table.entries[:, _k().E_COUNT].view(np.int64)

    @property
    def hits(self) -> int:
        return int(self._table.meta[_k().M_HITS])

    @hits.setter
    def hits(self, value: int) -> None:
        self._table.meta[_k().M_HITS] = int(value)

    def __len__(self):
        return len(self._table)

    def keys(self) -> list[int]:
        """The keys from least to most recently used."""
        order = self._table.order()
        return join_keys(self._table.key_hi[order], self._table.key_lo[order])

    # -- batched ----------------------------------------------------------------------

    def lookup_arrays(self, hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Looks up many keys in order; only present keys count (as hits).

        Returns:
          ``(values, found)``: cached fitnesses (0 where absent) and a boolean mask.
        """
        values = np.zeros(len(hi), dtype=np.float64)
        found = np.zeros(len(hi), dtype=bool)
        t = self._table
        _k().fec_lookup(t.index, t.entries, t.free, t.meta, _u64(hi), _u64(lo),
                        self.forget_every, values, found)
        return values, found

    def insert_arrays(self, hi: np.ndarray, lo: np.ndarray, fitness: np.ndarray) -> None:
        """Inserts freshly evaluated fitnesses (count 1) as the most recent entries."""
        t = self._table
        _k().fec_insert(t.index, t.entries, t.free, t.meta, _u64(hi), _u64(lo),
                        np.ascontiguousarray(fitness, dtype=np.float64))

    def contains_arrays(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        return self._table.find(hi, lo) >= 0

    # -- one key (tools and tests) ------------------------------------------------------

    def lookup_present(self, keys: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return self.lookup_arrays(*split_keys(keys))

    def lookup(self, key: int) -> float | None:
        """The cached fitness (a hit, counted, maybe forgotten) or None (a miss, counted)."""
        values, found = self.lookup_present([key])
        if not found[0]:
            self.misses += 1
            return None
        return float(values[0])

    def contains(self, key: int) -> bool:
        return bool(self.contains_arrays(*split_keys([key]))[0])

    def insert(self, key: int, fitness: float) -> None:
        self.insert_arrays(*split_keys([key]), np.array([fitness]))

    # -- checkpointing ---------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The cache (in LRU order) and counters as plain arrays (for an npz checkpoint)."""
        order = self._table.order()
        return {
            "fec_key_hi": self._table.key_hi[order].copy(),
            "fec_key_lo": self._table.key_lo[order].copy(),
            "fec_fitness": self._fitness[order].copy(),
            "fec_count": self._count[order].copy(),
            "fec_stats": np.array([self.hits, self.misses], dtype=np.int64),
        }

    def load_arrays(self, arrays) -> None:
        """Restores what :meth:`to_arrays` saved."""
        self._table = LRUTable(self.cache_size, _k().FEC_ENTRY_WORDS)
        hi = np.asarray(arrays["fec_key_hi"], dtype=np.uint64)
        lo = np.asarray(arrays["fec_key_lo"], dtype=np.uint64)
        if len(hi) > self.cache_size:
            raise ValueError(f"the checkpoint's FEC cache holds {len(hi)} entries, more than "
                             f"cache_size {self.cache_size}")
        entries = self._table.insert(hi, lo)
        self._fitness[entries] = np.asarray(arrays["fec_fitness"], dtype=np.float64)
        self._count[entries] = np.asarray(arrays["fec_count"], dtype=np.int64)
        hits, self.misses = (int(x) for x in arrays["fec_stats"])
        self.hits = hits
