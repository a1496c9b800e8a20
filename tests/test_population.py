"""Programs tensors: moving algorithms between batches keeps them exactly, whatever the
lengths of the two batches; and the allocator setting searches make."""

from __future__ import annotations

import numpy as np
import pytest

from azero_jax.backends.evaluator import MemoryConfig
from azero_jax.core import allocator
from azero_jax.evolution.batch_mutator import BatchMutator

MEMORY = MemoryConfig(4, 3, 1)
OPS = ((56, 57, 27, 2), (27, 21, 3), (2, 3, 18, 23, 27))


def _random_batch(n, sizes, seed=3):
    mutator = BatchMutator(OPS, MEMORY, ("RANDOMIZE_INSTRUCTION",), 1.0,
                           ((0, 0), (0, 0), (0, 0)))
    return mutator.random_programs(np.arange(n), seed, sizes)


def _texts(programs, index=None):
    return [str(a) for a in programs.algorithms(index)]


def _assert_same_rows(a, a_rows, b, b_rows):
    """Every field of the rows, padding included (``a`` may be the longer)."""
    L = b.length
    np.testing.assert_array_equal(a.size[a_rows], b.size[b_rows])
    for x, y in zip(a.fields(), b.fields()):
        np.testing.assert_array_equal(x[a_rows][:, :, :L], y[b_rows])


@pytest.mark.parametrize("extra", [0, 5])
def test_take_copies_the_rows_asked_for(extra):
    batch = _random_batch(40, (2, 4, 6))  # Learn fills the row's last column
    rows = np.array([39, 0, 7, 7, 12])
    taken = batch.take(rows, length=batch.length + extra)
    assert taken.length == batch.length + extra
    assert _texts(taken) == _texts(batch, rows)
    _assert_same_rows(taken, slice(None), batch, rows)
    if extra:  # columns past the source's are zero, whatever the new array held
        assert not taken.op[:, :, batch.length:].any()
        assert not taken.d[:, :, batch.length:].any()


def test_put_writes_rows_in_place_into_longer_and_equal_batches():
    short = _random_batch(10, (1, 2, 3), seed=5)
    for target in (_random_batch(30, (2, 2, 5)), _random_batch(30, (1, 2, 3), seed=8)):
        before = _texts(target)
        slots = np.array([29, 3, 11, 4, 0, 17, 18, 19, 1, 2])
        target.put(slots, short)
        after = _texts(target)
        assert [after[s] for s in slots] == _texts(short)
        _assert_same_rows(target, slots, short, slice(None))
        untouched = sorted(set(range(30)) - set(slots.tolist()))
        assert [after[s] for s in untouched] == [before[s] for s in untouched]


def test_put_grows_a_shorter_population():
    population = _random_batch(8, (2, 1, 2))
    longer = _random_batch(3, (7, 2, 6), seed=9)
    population.put(np.array([5, 1, 2]), longer)
    assert population.length >= longer.length
    assert _texts(population, [5, 1, 2]) == _texts(longer)


def test_keep_freed_memory_applies_once_and_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setenv("AZERO_JAX_KEEP_FREED_MEMORY", "0")
    assert allocator.keep_freed_memory() is False
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setenv("AZERO_JAX_KEEP_FREED_MEMORY", "1")
    applied = allocator.keep_freed_memory()
    glibc = hasattr(__import__("ctypes").CDLL(None), "gnu_get_libc_version")
    assert applied is glibc
    assert allocator.keep_freed_memory() is applied  # decided once per process
