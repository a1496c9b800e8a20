"""Tests of the FEC cache and fingerprints (spec §7; §13 items 16 and 17)."""

import numpy as np
import pytest

from azero_jax.backends.evaluator import PairResults
from azero_jax.evolution.fec import FECCache, FECConfig, fingerprint_keys


def test_lru_eviction_order():  # §13 item 16
    cache = FECCache(cache_size=5, forget_every=0)
    for key in (5, 2, 4, 1, 3, 6, 7):
        cache.insert(key, 0.1 * key)
    assert sorted(cache.keys()) == [1, 3, 4, 6, 7]


def test_hit_refreshes_recency():  # §13 item 16
    cache = FECCache(cache_size=5, forget_every=0)
    for key in (5, 2, 4, 1, 3):
        cache.insert(key, 0.1 * key)
    assert cache.lookup(5) == pytest.approx(0.5)
    assert cache.lookup(4) == pytest.approx(0.4)
    cache.insert(6, 0.6)
    cache.insert(7, 0.7)
    assert sorted(cache.keys()) == [3, 4, 5, 6, 7]


def test_forget_every_cycle():
    cache = FECCache(cache_size=10, forget_every=3)
    assert cache.lookup(9) is None  # first sighting: miss
    cache.insert(9, 0.9)
    assert cache.lookup(9) == 0.9  # second sighting
    assert cache.lookup(9) == 0.9  # third: still returned, then erased
    assert cache.lookup(9) is None  # fourth: a miss again
    assert (cache.hits, cache.misses) == (2, 2)


def test_checkpoint_arrays_round_trip():
    cache = FECCache(cache_size=4, forget_every=5)
    for key in (2**127 + 3, 7, 2**64):
        cache.insert(key, key % 13 / 13)
    cache.lookup(7)
    restored = FECCache(cache_size=4, forget_every=5)
    restored.load_arrays(cache.to_arrays())
    assert restored.keys() == cache.keys()
    assert (restored.hits, restored.misses) == (cache.hits, cache.misses)
    assert restored.lookup(7) == cache.lookup(7)


def _results(train, valid):
    train = np.asarray(train, dtype=np.float64)
    valid = np.asarray(valid, dtype=np.float64)
    kt, kv = 4, 4
    terr = np.full((1, kt), np.nan)
    verr = np.full((1, kv), np.nan)
    terr[0, :len(train)] = train
    verr[0, :len(valid)] = valid
    return PairResults(np.zeros(1), np.array([len(train)]), terr, np.array([len(train)]),
                       verr, np.array([len(valid)]))


def _key(train, valid, task=0, budget=100):
    return fingerprint_keys(_results(train, valid), [task], [budget])[0]


def test_fingerprint_hash_properties():  # §13 item 17
    base = _key([0.6, 0.2], [0.0, 1.0])
    assert base == _key([0.6, 0.2], [0.0, 1.0])
    assert base != _key([0.601, 0.2], [0.0, 1.0])
    assert base != _key([0.6, 0.2], [0.0001, 1.0])
    assert base != _key([0.6, 0.2, 0.0], [0.0, 1.0])  # number of errors
    assert base != _key([0.6], [0.2, 0.0, 1.0])  # same values, split differently
    assert base != _key([0.6, 0.2], [0.0, 1.0], task=1)
    assert base != _key([0.6, 0.2], [0.0, 1.0], budget=0)
    assert _key([np.inf, np.nan], []) == _key([np.inf, np.nan], [])
    assert _key([0.0], [0.5]) == _key([-0.0], [0.5])  # +0 and -0 hash alike


def test_fec_config_validation():
    with pytest.raises(ValueError, match="num_train_examples"):
        FECConfig(0, 10)
    with pytest.raises(ValueError, match="forget_every"):
        FECConfig(10, 10, forget_every=1)
    with pytest.raises(ValueError, match="cache_size"):
        FECCache(cache_size=1)


def test_compiled_fingerprint_hashes_equal_the_numpy_words_hashed():
    from azero_jax.backends.evaluator import PairResults
    from azero_jax.evolution.fec import (fingerprint_hashes, fingerprint_words, hash_row_arrays,
                                         hash_rows)
    rng = np.random.default_rng(0)
    n = 200
    terr = rng.normal(size=(n, 7))
    terr[::5, 0] = -0.0
    verr = rng.normal(size=(n, 4))
    nterr = rng.integers(0, 8, n)
    nverr = rng.integers(0, 5, n)
    results = PairResults(np.zeros(n), np.zeros(n, np.int64), terr, nterr, verr, nverr)
    tasks = rng.integers(0, 9, n)
    hi, lo = fingerprint_hashes(results, tasks)
    words = fingerprint_words(results, tasks)
    assert np.array_equal(np.stack([hi, lo]), np.stack(hash_row_arrays(words)))
    assert [(int(a) << 64) | int(b) for a, b in zip(hi, lo)] == hash_rows(words)
    # -0.0 and +0.0 are one error; values past the count do not matter.
    terr2 = terr.copy()
    terr2[::5, 0] = 0.0
    terr2[np.arange(7)[None, :] >= nterr[:, None]] = 123.0
    again = fingerprint_hashes(PairResults(np.zeros(n), np.zeros(n, np.int64), terr2, nterr,
                                           verr, nverr), tasks)
    assert np.array_equal(again[0], hi) and np.array_equal(again[1], lo)
