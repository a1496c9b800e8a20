"""The batched mutator against the reference's rules (spec §6.3-6.6).

The per-child :class:`~azero_jax.evolution.mutator.Mutator` is the readable statement of the rules
(itself tested against the spec in test_mutator.py); here the batched kernels must
produce the same distributions: many children of fixed parents from both, compared with
two-sample tests at fixed seeds (deterministic: a wrong probability fails every run).
"""

from __future__ import annotations

import collections
import random

import numpy as np
import pytest
from scipy import stats  # the test extra

from azero_jax.backends.evaluator import MemoryConfig
from azero_jax.core import ops as ops_lib
from azero_jax.core.population import Programs
from azero_jax.core.program import parse_algorithm
from azero_jax.evolution import _search_kernels as kernels
from azero_jax.evolution.batch_mutator import BatchMutator, action_weights
from azero_jax.evolution.mutator import MUTATION_TYPES, Mutator


MEMORY = MemoryConfig(5, 4, 3)
OPS = ((56, 57, 58, 59, 62, 19), (27, 1, 21, 31), (2, 3, 18, 23, 5, 54, 64, 60))
PARENT = parse_algorithm("""def Setup():
  s2 = 0.25
  v1[0.3] = -0.5
  m1[0.1, 0.7] = 0.75
  s3 = uniform(-0.5, 0.5)
  v2 = gaussian(0.1, 0.2, n_features)
def Predict():
  s1 = dot(v1, v0)
  s4 = s1 + s2
def Learn():
  s3 = s0 - s1
  s3 = s2 * s3
  v2 = s3 * v0
  v1 = v1 + v2
  s4 = abs(s3)
""")
N = 6000
P_MIN = 1e-4  # per comparison; the draws are fixed, so this is not a flaky threshold


def _children(types, mutate_prob=1.0, bounds=((0, 0), (0, 0), (0, 0)), style="REFERENCE",
              n=N, parent=PARENT):
    slow = Mutator(OPS, MEMORY, types, mutate_prob, bounds, style=style)
    rng = random.Random(12345)
    reference = [slow.mutate(parent, rng) for _ in range(n)]
    fast = BatchMutator(OPS, MEMORY, types, mutate_prob, bounds, style=style)
    batch, applied = fast.mutate(Programs.from_algorithms([parent]), np.zeros(n, dtype=np.int64),
                                 np.arange(n) + 10**6, seed=99)
    return reference, batch.algorithms(), applied


def _describe(child, parent=PARENT):
    """What a mutation changed: (component, size change, positions, fields changed)."""
    changes = []
    for c, (a, b) in enumerate(zip(parent.components, child.components)):
        if len(a) != len(b):  # where the two first differ: the insert/remove position
            common = min(len(a), len(b))
            at = next((i for i in range(common) if a[i] != b[i]), common)
            changes.append((c, len(b) - len(a), at))
            continue
        for i in range(len(a)):
            fields = tuple(f for f in ("op", "in1", "in2", "out", "d", "f0", "f1", "f2")
                           if not (a[i][f] == b[i][f] or (a[i][f] != a[i][f] and b[i][f] != b[i][f])))
            if fields:
                changes.append((c, i, fields))
    return tuple(changes)


def _same_distribution(xs, ys, what):
    """Two-sample chi-square over the categories of xs and ys."""
    cx, cy = collections.Counter(xs), collections.Counter(ys)
    cats = sorted(set(cx) | set(cy), key=repr)
    table = np.array([[cx[c] for c in cats], [cy[c] for c in cats]])
    if len(cats) < 2:
        assert cx == cy or set(cx) == set(cy), what
        return
    # Pool categories too rare for the chi-square approximation.
    keep = table.sum(axis=0) >= 10
    pooled = np.concatenate([table[:, keep], table[:, ~keep].sum(axis=1, keepdims=True)], axis=1)
    pooled = pooled[:, pooled.sum(axis=0) > 0]
    if pooled.shape[1] < 2:
        return
    p = stats.chi2_contingency(pooled)[1]
    assert p > P_MIN, f"{what}: p = {p:.2e}\n{cats}\n{table}"


@pytest.mark.parametrize("action", ["ALTER_PARAM", "RANDOMIZE_INSTRUCTION",
                                    "RANDOMIZE_COMPONENT_FUNCTION", "INSERT_INSTRUCTION",
                                    "REMOVE_INSTRUCTION", "TRADE_INSTRUCTION",
                                    "RANDOMIZE_ALGORITHM", "IDENTITY"])
def test_each_action_changes_the_same_things(action):
    reference, batch, applied = _children([action])
    assert (applied == MUTATION_TYPES.index(action)).all()
    ref = [_describe(c) for c in reference]
    new = [_describe(c) for c in batch]
    if action in ("RANDOMIZE_COMPONENT_FUNCTION", "RANDOMIZE_ALGORITHM"):
        # Which functions were redrawn (the set of components with any change).
        ref = [tuple(sorted({ch[0] for ch in d})) for d in ref]
        new = [tuple(sorted({ch[0] for ch in d})) for d in new]
    _same_distribution(ref, new, action)


def _new_instructions(children, action):
    """Every instruction of the children that the parent does not have at that place."""
    out = []
    for child in children:
        for c, (a, b) in enumerate(zip(PARENT.components, child.components)):
            if len(a) == len(b):
                out.extend((c, tuple(b[i].item())) for i in range(len(b)) if a[i] != b[i])
            else:
                parent_rows = [tuple(r.item()) for r in a]
                out.extend((c, tuple(r.item())) for r in b if tuple(r.item()) not in parent_rows)
    return out


@pytest.mark.parametrize("action", ["RANDOMIZE_INSTRUCTION", "INSERT_INSTRUCTION",
                                    "RANDOMIZE_COMPONENT_FUNCTION"])
def test_random_instructions_have_the_reference_distribution(action):
    reference, batch, _ = _children([action])
    ref, new = _new_instructions(reference, action), _new_instructions(batch, action)
    assert len(new) > 0.5 * len(ref)
    # Component, op, and each address field given the op.
    _same_distribution([(c, r[0]) for c, r in ref], [(c, r[0]) for c, r in new], "ops")
    for k, name in ((1, "in1"), (2, "in2"), (3, "out")):
        _same_distribution([(r[0], r[k]) for _, r in ref], [(r[0], r[k]) for _, r in new], name)
    for row in (r for _, r in new):
        spec = ops_lib.OPS[row[0]]
        for k, t in ((1, spec.in1_type), (2, spec.in2_type), (3, spec.out_type)):
            size = {"S": 5, "V": 4, "M": 3, None: 1}[t]
            first = ops_lib.FIRST_OUT_ADDRESS.get(t, 0) if k == 3 else 0
            assert first <= row[k] < size if t else row[k] == 0
    # Constants: the same continuous distributions (KS two-sample) per op and field.
    for code, fields in ((56, (4,)), (57, (5, 6)), (58, (5, 6, 7)), (59, (5, 6)), (62, (5, 6))):
        for k in fields:
            xs = [r[k] for _, r in ref if r[0] == code]
            ys = [r[k] for _, r in new if r[0] == code]
            if len(xs) > 50 and len(ys) > 50:
                p = stats.ks_2samp(xs, ys).pvalue
                assert p > P_MIN, (action, code, k, p)


def test_alter_param_constants_follow_the_log_scale_rule():
    """SCALAR_CONST d' = -d w.p. 0.1, else d * exp(N(0, 1)) (sign kept); float fields the
    same, clamped to float32; gaussian stdev never flips; uniform low <= high after."""
    parent = parse_algorithm("def Setup():\n  s2 = 0.25\ndef Predict():\ndef Learn():\n")
    fast = BatchMutator(((56,), (), ()), MEMORY, ["ALTER_PARAM"], 1.0)
    batch, _ = fast.mutate(Programs.from_algorithms([parent]), np.zeros(40000, np.int64),
                           np.arange(40000), seed=7)
    d = batch.d[:, 0, 0]
    out_changed = batch.out[:, 0, 0] != 2
    data_changed = d != 0.25
    assert abs(data_changed.mean() - 0.5) < 0.01  # half re-draw out, half alter data
    ratio = d[data_changed] / 0.25
    flips = ratio == -1.0
    assert abs(flips.mean() - 0.1) < 0.01
    logs = np.log(ratio[~flips])
    assert stats.kstest(logs, "norm").pvalue > P_MIN
    assert (np.unique(batch.out[out_changed, 0, 0]) == [1, 3, 4]).all()  # [1, S) minus 2

    uniform = parse_algorithm("def Setup():\n  s2 = uniform(-0.5, 0.5)\ndef Predict():\ndef Learn():\n")
    fast = BatchMutator(((59,), (), ()), MEMORY, ["ALTER_PARAM"], 1.0)
    batch, _ = fast.mutate(Programs.from_algorithms([uniform]), np.zeros(20000, np.int64),
                           np.arange(20000), seed=8)
    assert (batch.f0[:, 0, 0] <= batch.f1[:, 0, 0]).all()


def test_action_choice_and_mutate_prob():
    types = ["ALTER_PARAM", "INSERT_INSTRUCTION", "INSERT_INSTRUCTION", "IDENTITY"]
    fast = BatchMutator(OPS, MEMORY, types, 0.7)
    n = 40000
    _, applied = fast.mutate(Programs.from_algorithms([PARENT]), np.zeros(n, np.int64),
                             np.arange(n), seed=3)
    counts = np.array([(applied == -1).sum(), (applied == 0).sum(), (applied == 4).sum(),
                       (applied == 3).sum()])
    expected = n * np.array([0.3, 0.7 / 4, 0.7 / 2, 0.7 / 4])
    assert stats.chisquare(counts, expected).pvalue > P_MIN


def test_size_bounds_hold_and_insertion_stops_at_max_minus_one():
    bounds = ((2, 7), (1, 4), (3, 9))
    fast = BatchMutator(OPS, MEMORY, ["INSERT_INSTRUCTION", "REMOVE_INSTRUCTION"], 1.0, bounds)
    population = Programs.from_algorithms([PARENT])
    sizes = set()
    for generation in range(60):  # a random walk of sizes under the bounds
        population, _ = fast.mutate(population, np.zeros(200, np.int64) if generation == 0
                                    else np.arange(200), np.arange(200) + 1000 * generation, seed=5)
        sizes.update(map(tuple, population.size.tolist()))
    sizes = np.array(sorted(sizes))
    for c, (lo, hi) in enumerate(bounds):
        assert sizes[:, c].max() == hi - 1
        assert sizes[:, c].min() == min(lo, PARENT.sizes[c])
    # Padding past each function's size stays all-zero (equal programs, equal tensors).
    pad = ~population.valid_mask()
    for field in population.fields():
        assert not field[pad].any()


def test_unbounded_insertion_grows_the_tensors():
    fast = BatchMutator(OPS, MEMORY, ["INSERT_INSTRUCTION"], 1.0)
    population = Programs.from_algorithms([PARENT])
    for generation in range(30):
        population, _ = fast.mutate(population, np.zeros(1, np.int64), np.array([generation]),
                                    seed=1)
    assert population.size.sum() == sum(PARENT.sizes) + 30
    assert population.algorithm(0).sizes == tuple(population.size[0])


def test_paper_style_removes_twice_as_often_as_it_inserts():
    types = ["ALTER_PARAM", "RANDOMIZE_COMPONENT_FUNCTION", "INSERT_INSTRUCTION",
             "REMOVE_INSTRUCTION", "REMOVE_INSTRUCTION"]
    actions, cumulative = action_weights(types, "PAPER")
    probabilities = np.diff(np.concatenate([[0.0], cumulative]))
    # The paper's three transformations a third each; removal 2/9, insertion 1/9.
    assert dict(zip(actions.tolist(), probabilities.round(6).tolist())) == {
        0: 0.333333, 2: 0.333333, 4: 0.111111, 5: 0.222222}
    actions, cumulative = action_weights(types, "REFERENCE")
    probabilities = np.diff(np.concatenate([[0.0], cumulative]))
    assert dict(zip(actions.tolist(), probabilities.round(6).tolist())) == {
        0: 0.2, 2: 0.2, 4: 0.2, 5: 0.4}


def test_paper_style_matches_the_per_child_mutators_paper_style():
    types = ["ALTER_PARAM", "INSERT_INSTRUCTION", "REMOVE_INSTRUCTION"]
    reference, batch, _ = _children(types, style="PAPER")
    _same_distribution([_describe(c) for c in reference], [_describe(c) for c in batch],
                       "PAPER style")
    ref = [c.setup["d"][0] for c in reference if c.sizes[0] == 5 and c.setup["d"][0] != 0.25]
    new = [c.setup["d"][0] for c in batch if c.sizes[0] == 5 and c.setup["d"][0] != 0.25]
    assert stats.ks_2samp(ref, new).pvalue > P_MIN


def test_paper_style_constants_scale_then_sometimes_flip():
    parent = parse_algorithm("def Setup():\n  s2 = 0.25\ndef Predict():\ndef Learn():\n")
    fast = BatchMutator(((56,), (), ()), MEMORY, ["ALTER_PARAM"], 1.0, style="PAPER")
    batch, _ = fast.mutate(Programs.from_algorithms([parent]), np.zeros(40000, np.int64),
                           np.arange(40000), seed=9)
    d = batch.d[:, 0, 0]
    ratio = d[d != 0.25] / 0.25
    assert abs((ratio < 0).mean() - 0.1) < 0.01
    assert stats.kstest(np.abs(ratio), "uniform", args=(0.5, 1.5)).pvalue > P_MIN


def test_a_child_does_not_depend_on_its_batch():
    fast = BatchMutator(OPS, MEMORY, list(MUTATION_TYPES), 0.9)
    parents = Programs.from_algorithms([PARENT] * 3)
    together, _ = fast.mutate(parents, np.array([0, 1, 2]), np.array([5, 6, 7]), seed=2)
    alone, _ = fast.mutate(parents, np.array([1]), np.array([6]), seed=2)
    assert together.algorithm(1) == alone.algorithm(0)


def test_random_programs_match_the_randomizer():
    from azero_jax.evolution.randomizer import Randomizer
    slow = Randomizer(OPS, MEMORY)
    rng = random.Random(4)
    reference = [slow.random_algorithm((5, 2, 8), rng) for _ in range(3000)]
    batch = BatchMutator(OPS, MEMORY, ["IDENTITY"]).random_programs(np.arange(3000), 11, (5, 2, 8))
    assert batch.size.tolist() == [[5, 2, 8]] * 3000
    rows = lambda algos: [(c, tuple(r.item())[:4]) for a in algos  # noqa: E731
                          for c, part in enumerate(a.components) for r in part]
    _same_distribution(rows(reference), rows(batch.algorithms()), "random instructions")


def test_streams_are_uniform_and_gaussian():
    u = kernels.draws(1, 2, 3, 100000, False)
    assert u.min() >= 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > P_MIN
    assert stats.kstest(kernels.draws(1, 2, 3, 100000, True), "norm").pvalue > P_MIN
    # Different ids and salts give independent-looking streams.
    assert abs(np.corrcoef(kernels.draws(1, 2, 3, 10000, False),
                           kernels.draws(1, 3, 3, 10000, False))[0, 1]) < 0.05
