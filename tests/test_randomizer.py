"""Tests of the randomizer (spec §6.3-6.4)."""

import random

import numpy as np
import pytest

from azero_jax.backends.evaluator import MemoryConfig
from azero_jax.core import ops as ops_lib
from azero_jax.core.program import noop_algorithm, validate_addresses
from azero_jax.evolution.randomizer import Randomizer

ALL_OPS = list(range(ops_lib.NUM_OPS))
MEMORY = MemoryConfig(5, 4, 3)


def test_addresses_in_reference_ranges():
    r = Randomizer((ALL_OPS, ALL_OPS, ALL_OPS), MEMORY)
    rng = random.Random(0)
    sizes = {"S": 5, "V": 4, "M": 3}
    seen_out = {"S": set(), "V": set(), "M": set()}
    for _ in range(5000):
        op, in1, in2, out, d, f0, f1, f2 = r.random_instruction(1, rng)
        spec = ops_lib.OPS[op]
        if spec.in1_type:
            assert 0 <= in1 < sizes[spec.in1_type]
        if spec.in2_type:
            assert 0 <= in2 < sizes[spec.in2_type]
        else:
            assert in2 == 0
        if spec.out_type:
            assert ops_lib.FIRST_OUT_ADDRESS[spec.out_type] <= out < sizes[spec.out_type]
            seen_out[spec.out_type].add(out)
    # s0 and v0 are never written, m0 is; every other output address occurs.
    assert seen_out == {"S": {1, 2, 3, 4}, "V": {1, 2, 3}, "M": {0, 1, 2}}


def test_data_distributions():
    r = Randomizer(([56, 57, 58, 59, 62], [0], [0]), MEMORY)
    rng = random.Random(1)
    rows = [r.random_instruction(0, rng) for _ in range(20000)]
    by_op = {}
    for row in rows:
        by_op.setdefault(row[0], []).append(row)
    d = np.array([row[4] for row in by_op[56]])
    assert d.min() > -1 and d.max() < 1 and abs(d.mean()) < 0.05
    vec = np.array([row[5:7] for row in by_op[57]])
    assert vec[:, 0].min() >= 0 and vec[:, 0].max() < 1 and vec[:, 1].min() >= -1
    mat = np.array([row[5:8] for row in by_op[58]])
    assert (mat[:, :2] >= 0).all() and (mat[:, :2] < 1).all()
    gauss = np.array([row[5:7] for row in by_op[62]])
    assert gauss[:, 1].min() >= 0 and gauss[:, 0].min() < -0.9
    uni = np.array([row[5:7] for row in by_op[59]])
    # low and high are independent: about half the draws have low > high.
    assert 0.4 < np.mean(uni[:, 0] > uni[:, 1]) < 0.6


def test_index_fraction_stays_below_one_in_float32():
    r = Randomizer(([57], [0], [0]), MEMORY)

    class Edge(random.Random):
        def random(self):
            return 1.0 - 2**-53

    row = r.random_instruction(0, Edge(0))
    component = r.random_component(0, 3, Edge(0))
    assert float(np.float32(row[5])) < 1.0
    assert (component["f0"] < 1.0).all()


def test_random_algorithm_sizes_and_empty_lists():
    r = Randomizer(([56, 63], [], [2, 3]), MemoryConfig(4, 3, 1))
    algorithm = r.random_algorithm((10, 2, 8), random.Random(3))
    assert algorithm.sizes == (10, 2, 8)
    assert set(algorithm.predict["op"]) == {0}  # empty op list: stays NO_OPs
    assert set(algorithm.setup["op"]) <= {56, 63}
    assert set(algorithm.learn["op"]) <= {2, 3}
    validate_addresses(algorithm, 4, 3, 1)
    again = r.random_algorithm((10, 2, 8), random.Random(3))
    assert again == algorithm  # deterministic given the RNG state
    randomized = r.randomize(noop_algorithm(4, 2, 3), random.Random(4))
    assert randomized.sizes == (4, 2, 3)


def test_op_weights_follow_duplicates():
    r = Randomizer(([1, 1, 1, 2], [0], [0]), MEMORY)
    rng = random.Random(5)
    ops = [r.random_op(0, rng) for _ in range(8000)]
    assert 0.7 < ops.count(1) / len(ops) < 0.8


def test_memory_too_small_for_outputs():
    with pytest.raises(ValueError, match="addresses"):
        Randomizer(([1], [1], [1]), MemoryConfig(2, 1, 1))
