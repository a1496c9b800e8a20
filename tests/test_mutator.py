"""Tests of the mutator (spec §6.5-6.6; §13 item 14), with hypothesis property tests."""

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azero_jax import generator
from azero_jax import ops as ops_lib
from azero_jax.evaluator import MemoryConfig
from azero_jax.mutator import MUTATION_TYPES, Mutator, mutate_log_scale, mutation_type
from azero_jax.program import noop_algorithm, validate_addresses

TEST_OPS = ("NO_OP", "SCALAR_SUM_OP", "MATRIX_VECTOR_PRODUCT_OP", "VECTOR_MEAN_OP")
ALL_OPS = tuple(range(ops_lib.NUM_OPS))
MEMORY = MemoryConfig(5, 4, 3)


def _mutator(types, bounds=((0, 0),) * 3, ops=(TEST_OPS,) * 3, prob=1.0):
    return Mutator(ops, MEMORY, types, prob, bounds)


def _base():
    return noop_algorithm(6, 3, 9)  # the reference's test generator sizes


def test_insert_bounds():  # §13 item 14
    rng = random.Random(0)
    insert = _mutator(["INSERT_INSTRUCTION"], ((100, 10000),) * 3)
    child = insert.mutate(_base(), rng)
    assert sum(child.sizes) == sum(_base().sizes) + 1
    blocked = _mutator(["INSERT_INSTRUCTION"], ((0, 1),) * 3)
    for _ in range(20):
        assert blocked.mutate(_base(), rng).sizes == _base().sizes


def test_remove_bounds():  # §13 item 14
    rng = random.Random(1)
    blocked = _mutator(["REMOVE_INSTRUCTION"], ((100, 0),) * 3)
    for _ in range(20):
        assert blocked.mutate(_base(), rng).sizes == _base().sizes
    remove = _mutator(["REMOVE_INSTRUCTION"], ((0, 1),) * 3)
    assert sum(remove.mutate(_base(), rng).sizes) == sum(_base().sizes) - 1


def test_insert_reaches_max_minus_one_only():
    m = _mutator(["INSERT_INSTRUCTION"], ((0, 5),) * 3)
    algorithm, rng = noop_algorithm(0, 0, 0), random.Random(2)
    for _ in range(200):
        algorithm = m.mutate(algorithm, rng)
    assert algorithm.sizes == (4, 4, 4)


def test_trade_keeps_sizes_and_ignores_bounds():  # §13 item 14
    m = _mutator(["TRADE_INSTRUCTION"], ((100, 1),) * 3)
    algorithm, rng = _base(), random.Random(3)
    changed = 0
    for _ in range(50):
        child = m.mutate(algorithm, rng)
        assert child.sizes == algorithm.sizes
        changed += child != algorithm
        algorithm = child
    assert changed > 10


def test_identity_and_mutate_prob():
    rng = random.Random(4)
    identity = _mutator(["IDENTITY"])
    parent = generator.neural_net()
    assert identity.mutate(parent, rng) == parent
    never = Mutator((ALL_OPS,) * 3, MEMORY, ["RANDOMIZE_ALGORITHM"], 0.0)
    assert never.mutate(parent, rng) is parent
    half = Mutator((ALL_OPS,) * 3, MEMORY, ["RANDOMIZE_ALGORITHM"], 0.5)
    unchanged = sum(half.mutate(parent, rng) is parent for _ in range(2000))
    assert 900 < unchanged < 1100


def test_alter_param_keeps_op_and_changes_one_field():
    m = Mutator((ALL_OPS,) * 3, MEMORY, ["ALTER_PARAM"], 1.0)
    rng = random.Random(5)
    randomizer = m.randomizer
    for _ in range(300):
        algorithm = randomizer.random_algorithm((3, 3, 3), rng)
        child = m.mutate(algorithm, rng)
        assert child.sizes == algorithm.sizes
        diffs = 0
        for a, b in zip(algorithm.components, child.components):
            assert np.array_equal(a["op"], b["op"])
            for field in ("in1", "in2", "out", "d", "f0", "f1", "f2"):
                diffs += int(np.sum(a[field] != b[field]))
        # One parameter (the uniform-set reorder may also swap low and high).
        assert diffs <= 2


def test_uniform_alter_keeps_low_below_high():
    m = Mutator(([59, 60, 61],) * 3, MEMORY, ["ALTER_PARAM"], 1.0)
    rng = random.Random(6)
    algorithm = m.randomizer.random_algorithm((4, 4, 4), rng)
    for _ in range(200):
        algorithm = m.mutate(algorithm, rng)
    assert algorithm.sizes == (4, 4, 4)
    row = [59, 0, 0, 1, 0.0, 0.5, -0.5, 0.0]
    for _ in range(100):
        r = list(row)
        m._alter_data(r, rng)
        assert np.float32(r[5]) <= np.float32(r[6])


def test_mutate_log_scale_keeps_sign():
    rng = random.Random(7)
    values = [mutate_log_scale(0.3, rng) for _ in range(2000)]
    assert min(values) > 0
    assert 0.2 < np.median(values) < 0.45  # log-normal factor with median 1
    assert all(mutate_log_scale(-2.0, rng) < 0 for _ in range(100))
    assert mutate_log_scale(0.0, rng) == 0.0


def test_empty_op_list_component_is_never_mutated():
    m = Mutator(([56], [], []), MemoryConfig(4, 3, 1), MUTATION_TYPES, 1.0, ((0, 10),) * 3)
    rng = random.Random(8)
    parent = generator.linear_model()
    for _ in range(300):
        child = m.mutate(parent, rng)
        assert child.predict.tobytes() == parent.predict.tobytes()
        assert child.learn.tobytes() == parent.learn.tobytes()


def test_mutation_type_names():
    assert mutation_type("ALTER_PARAM_MUTATION_TYPE") == "ALTER_PARAM"
    assert mutation_type(7) == "RANDOMIZE_ALGORITHM"
    with pytest.raises(ValueError, match="unknown mutation type"):
        mutation_type("SWAP_MUTATION_TYPE")


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1),
       types=st.lists(st.sampled_from(MUTATION_TYPES), min_size=1, max_size=4),
       sizes=st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 6)),
       bounds=st.tuples(*[st.tuples(st.integers(0, 4), st.integers(0, 9))] * 3),
       steps=st.integers(1, 12))
def test_mutation_invariants(seed, types, sizes, bounds, steps):
    """Any chain of mutations keeps addresses valid, data finite in float32, sizes bounded."""
    op_lists = (ALL_OPS, (1, 27, 31), (2, 3, 18, 23, 56))
    m = Mutator(op_lists, MEMORY, types, 0.9, bounds)
    rng = random.Random(seed)
    algorithm = m.randomizer.random_algorithm(sizes, rng)
    for _ in range(steps):
        parent_sizes = algorithm.sizes
        algorithm = m.mutate(algorithm, rng)
        validate_addresses(algorithm, MEMORY.num_scalars, MEMORY.num_vectors, MEMORY.num_matrices)
        for c, (before, after) in enumerate(zip(parent_sizes, algorithm.sizes)):
            low, high = bounds[c]
            assert abs(after - before) <= 1  # one action: insert/remove/trade move by <= 1
            if after > before:  # grew by insertion: below max - 1 (max 0 = unbounded)
                assert high == 0 or after <= high - 1
            if after < before:  # shrank by removal: stayed >= min
                assert after >= low
        for component in algorithm.components:
            assert np.isfinite(component["f0"]).all() and np.isfinite(component["f1"]).all()
            assert ((component["f0"] < 1) | ~np.isin(component["op"], (57, 58))).all()
            for field in ("out",):
                scalar_or_vector_out = np.isin(
                    component["op"], [op.code for op in ops_lib.OPS if op.out_type in ("S", "V")])
                assert (component[field][scalar_or_vector_out] >= 1).all()
