"""Tests of the mutator (spec §6.5-6.6; §13 item 14), with hypothesis property tests."""

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azero_jax.backends.evaluator import MemoryConfig
from azero_jax.core import generator
from azero_jax.core import ops as ops_lib
from azero_jax.core.program import noop_algorithm, validate_addresses
from azero_jax.evolution.mutator import MUTATION_TYPES, Mutator, mutate_log_scale, mutation_type

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


# -- mutation_style: PAPER (paper S3) against REFERENCE --------------------------------


def _children_digest(**style):
    """SHA-256 of 1000 children of chained mutations (every type, every op, bounds)."""
    import hashlib
    digest = hashlib.sha256()
    for seed in range(40):
        rng = random.Random(seed)
        m = Mutator((ALL_OPS, (1, 27, 31), (2, 3, 18, 23, 56)), MEMORY,
                    MUTATION_TYPES + ("ALTER_PARAM",) * 3, 0.9, ((1, 9), (0, 0), (2, 12)),
                    **style)
        algorithm = m.randomizer.random_algorithm((4, 3, 6), rng)
        for _ in range(25):
            algorithm = m.mutate(algorithm, rng)
            for component in algorithm.components:
                digest.update(component.tobytes())
    return digest.hexdigest()


def test_reference_style_is_unchanged_bit_for_bit():
    # Recorded with the mutator before mutation styles existed.
    want = "124f56333571458ede2d4995451b83f538d597493ca6466060600fa53126a8e9"
    assert _children_digest() == want
    assert _children_digest(style="REFERENCE") == want
    assert _children_digest(style="PAPER") != want


def _action_frequencies(style, types, n=18000):
    m = Mutator(((56,), (27,), (2, 3, 18, 23)), MemoryConfig(4, 3, 1), types, 1.0, style=style)
    counts = dict.fromkeys(types, 0)

    def counting(name, action):
        def wrapped(algorithm, rng):
            counts[name] += 1
            return action(algorithm, rng)
        return wrapped

    for name in ("ALTER_PARAM", "RANDOMIZE_COMPONENT_FUNCTION"):
        m._actions[name] = counting(name, m._actions[name])
    # Insert and remove are reached through the action table (reference) or the merged
    # "insert or remove" action (paper): count at the methods themselves.
    m._insert = counting("INSERT_INSTRUCTION", m._insert)
    m._remove = counting("REMOVE_INSTRUCTION", m._remove)
    m._actions["INSERT_INSTRUCTION"], m._actions["REMOVE_INSTRUCTION"] = m._insert, m._remove
    rng = random.Random(11)
    parent = generator.linear_model()
    for _ in range(n):
        m.mutate(parent, rng)
    return {name: count / n for name, count in counts.items()}


def _within(observed, p, n=18000, sigmas=4.5):
    return abs(observed - p) <= sigmas * (p * (1 - p) / n) ** 0.5


def test_paper_style_chooses_three_transformations_and_removes_twice_as_often():
    """[ALTER_PARAM, RANDOMIZE_COMPONENT_FUNCTION, INSERT, REMOVE]: the paper's three
    transformations 1/3 each, insert-or-remove split 2:1 (2/9 removal, 1/9 insertion);
    the reference draws the four types 1/4 each."""
    types = ("ALTER_PARAM", "RANDOMIZE_COMPONENT_FUNCTION", "INSERT_INSTRUCTION",
             "REMOVE_INSTRUCTION")
    paper = _action_frequencies("PAPER", types)
    want = {"ALTER_PARAM": 1 / 3, "RANDOMIZE_COMPONENT_FUNCTION": 1 / 3,
            "INSERT_INSTRUCTION": 1 / 9, "REMOVE_INSTRUCTION": 2 / 9}
    assert all(_within(paper[k], p) for k, p in want.items()), paper
    reference = _action_frequencies("REFERENCE", types)
    assert all(_within(reference[k], 0.25) for k in types), reference
    # With only one of insert/remove listed the list is used as it is.
    alone = _action_frequencies("PAPER", ("ALTER_PARAM", "INSERT_INSTRUCTION"))
    assert _within(alone["INSERT_INSTRUCTION"], 0.5)


def _constant_ratios(style, op, field, start, n=6000):
    """Ratios new / old of a constant field over ALTER_PARAM data mutations."""
    m = Mutator(((op,), (27,), (2,)), MemoryConfig(4, 3, 1), ["ALTER_PARAM"], 1.0, style=style)
    rng = random.Random(5)
    ratios = []
    while len(ratios) < n:
        row = [op, 0, 0, 1, 0.0, 0.0, 0.0, 0.0]
        row[field] = start
        m.alter_param_row(row, rng)
        if row[field] != start:
            ratios.append(row[field] / start)
    return np.array(ratios)


def test_paper_style_scales_constants_uniformly_and_flips_one_in_ten():
    code = ops_lib.op_code("SCALAR_CONST_SET_OP")
    ratios = _constant_ratios("PAPER", code, 4, 3.0)
    negative = ratios < 0
    assert _within(negative.mean(), 0.1, n=len(ratios))
    size = np.abs(ratios)
    assert size.min() >= 0.5 and size.max() <= 2.0  # always scaled within [0.5, 2]
    # Uniform on [0.5, 2] (flipped or not): deciles at 0.5 + 0.15 k.
    deciles = np.quantile(size, np.linspace(0.1, 0.9, 9))
    assert np.allclose(deciles, 0.5 + 0.15 * np.arange(1, 10), atol=0.03), deciles
    # The reference: exp(N(0, 1)) scaling or (10 %) a bare flip, ratio exactly -1.
    reference = _constant_ratios("REFERENCE", code, 4, 3.0)
    assert _within((reference == -1.0).mean(), 0.1, n=len(reference))
    assert (reference < 0).mean() == (reference == -1.0).mean()
    assert np.abs(reference).max() > 2.0 and np.abs(reference).min() < 0.5


def test_paper_style_scales_every_real_constant_and_never_flips_a_deviation():
    for name, field, flips in [("VECTOR_CONST_SET_OP", 6, True),
                               ("MATRIX_CONST_SET_OP", 7, True),
                               ("VECTOR_GAUSSIAN_SET_OP", 5, True),  # mean
                               ("VECTOR_GAUSSIAN_SET_OP", 6, False)]:  # deviation
        ratios = _constant_ratios("PAPER", ops_lib.op_code(name), field, 1.5, n=2000)
        assert np.abs(ratios).min() >= 0.5 and np.abs(ratios).max() <= 2.0, name
        assert (ratios < 0).any() == flips, name
    # The uniform bounds (1, 8): one of them scaled (maybe flipped), then kept sorted.
    code = ops_lib.op_code("VECTOR_UNIFORM_SET_OP")
    m = Mutator(((code,), (27,), (2,)), MemoryConfig(4, 3, 1), ["ALTER_PARAM"], 1.0,
                style="PAPER")
    rng, flipped = random.Random(2), 0
    for _ in range(2000):
        row = [code, 0, 0, 1, 0.0, 1.0, 8.0, 0.0]
        m.alter_param_row(row, rng)
        if row[3] != 1 or row[5:7] == [1.0, 8.0]:
            continue  # the output address was altered instead
        kept, = {1.0, 8.0} & set(row[5:7])
        other = (set(row[5:7]) - {kept}).pop()
        ratio = other / (9.0 - kept)
        assert row[5] <= row[6] and 0.5 <= abs(ratio) <= 2.0
        flipped += ratio < 0
    assert 0 < flipped < 400


def test_mutation_style_names():
    from azero_jax.evolution.mutator import mutation_style
    assert mutation_style(" paper ") == "PAPER" and Mutator(
        ((56,), (27,), (2,)), MemoryConfig(4, 3, 1), ["IDENTITY"]).style == "REFERENCE"
    with pytest.raises(ValueError, match="unknown mutation_style 'PAPERS'"):
        Mutator(((56,), (27,), (2,)), MemoryConfig(4, 3, 1), ["IDENTITY"], style="PAPERS")
