"""Tests of regularized evolution: bookkeeping, budget accounting, FEC, hurdles (§6.7)."""

import numpy as np
import pytest

from azero_jax.core import generator
from azero_jax.evolution.fec import FECConfig
from azero_jax.evolution.hurdles import HurdlesConfig
from azero_jax.evolution.regularized_evolution import Search
from azero_jax.evolution.train_budget import TrainBudgetConfig
from search_helpers import MEMORY, FakeEvaluator, small_spec, task_spec


def test_reference_train_step_accounting():  # §13 item 13
    spec = small_spec(search_tasks=(task_spec("unit_test_ones_task", 1000, 10, 2),),
                      population_size=5, initial_population="NO_OP_ALGORITHM",
                      mutation_types=("IDENTITY",), max_train_steps=10000 + 10 * 2000)
    search = Search(spec, memory=MEMORY, seed=1, backend="cpu", child_batch_size=1)
    search.step()
    while not search.initialized:
        search.step()
    assert (search.num_individuals, search.train_steps) == (5, 10000)
    search.run()
    assert (search.num_individuals, search.train_steps) == (15, 30000)
    search.run(max_train_steps=30000 + 20000)
    assert (search.num_individuals, search.train_steps) == (25, 50000)


def test_budget_checked_between_sweeps_only():
    spec = small_spec(population_size=10, max_train_steps=1)
    fake = FakeEvaluator()
    search = Search(spec, memory=MEMORY, seed=2, evaluate_fn=fake, child_batch_size=3)
    sizes = []
    while not search.done:
        sizes.append(search.step())
    # Init (one sweep of 10 in steps of 3, 3, 3, 1), then the budget is already spent.
    assert sizes == [3, 3, 3, 1]
    assert search.num_individuals == 10


def test_cyclic_replacement_removes_the_oldest():
    fake = FakeEvaluator()
    search = Search(small_spec(population_size=7), memory=MEMORY, seed=3, evaluate_fn=fake,
                    child_batch_size=3)
    while not search.initialized:
        search.step()
    assert search.birth.tolist() == list(range(7))
    for _ in range(4):
        oldest = set(np.argsort(search.birth)[:min(3, 7 - search.next_slot)].tolist())
        slot = search.next_slot
        n = search.step()
        assert set(range(slot, slot + n)) == oldest
    assert sorted(search.birth.tolist()) == list(range(search.num_individuals - 7,
                                                       search.num_individuals))


def test_tournament_ties_go_to_the_earliest_draw():
    from azero_jax.evolution import _search_kernels
    search = Search(small_spec(population_size=6, tournament_size=4), memory=MEMORY, seed=4,
                    evaluate_fn=FakeEvaluator())
    search.fitness[:] = [0.5, 0.9, 0.9, 0.1, 0.9, 0.2]
    ids = np.arange(1000, 3000)
    # The kernel make_mutants runs for a step's tournaments.
    winners = search.mutator.tournaments(search.fitness, ids, search.seed, 4)
    tied_draws = 0
    for ident, winner in zip(ids.tolist(), winners.tolist()):
        # The rule, from the child's own stream: draws with replacement, strictly
        # highest fitness wins, the earliest of the tied draws.
        draws = (_search_kernels.draws(4, ident, _search_kernels.SALT_TOURNAMENT, 4, False)
                 * 6).astype(int)
        fits = search.fitness[draws]
        assert winner == draws[int(np.argmax(fits))]
        tied_draws += len(set(draws[fits == fits.max()])) > 1
    assert tied_draws > 100  # the tie rule was exercised


def test_unchanged_child_is_an_fec_hit():
    spec = small_spec(mutate_prob=0.0, fec=FECConfig(10, 10, forget_every=0), population_size=8)
    search = Search(spec, memory=MEMORY, seed=5, backend="cpu", child_batch_size=4)
    while not search.initialized:
        search.step()
    hits, misses = search.fec.hits, search.fec.misses
    for _ in range(4):
        search.step()
    T = len(search.tasks)
    assert search.fec.hits - hits == 16 * T  # every unmutated child hits on every task
    assert search.fec.misses == misses
    # A hit returns exactly the parent's fitness (the population only copies fitnesses).
    assert set(np.round(search.fitness, 12)) <= set(np.round(search.fitness, 12))


def test_fec_probe_steps_count_and_repeats_in_a_batch_are_evaluated_once():
    fake = FakeEvaluator()
    spec = small_spec(mutate_prob=0.0, fec=FECConfig(10, 10), population_size=4,
                      initial_population="LINEAR_ALGORITHM")
    search = Search(spec, memory=MEMORY, seed=6, evaluate_fn=fake, child_batch_size=4)
    search.step()  # four identical linear models
    full_pairs = sum(c["pairs"] for c in fake.calls if c["kind"] == "eval")
    T = len(search.tasks)
    assert full_pairs == T  # the three repeats are hits on the first one's result
    assert (search.fec.misses, search.fec.hits) == (T, 3 * T)
    assert search.train_steps == 4 * T * 10 + T * 30  # probes counted for all four children


def test_same_seed_same_run_and_batch_size_keeps_the_initial_population():
    def run(batch):
        search = Search(small_spec(fec=FECConfig(10, 10)), memory=MEMORY, seed=7, backend="cpu",
                        child_batch_size=batch)
        while not search.initialized:
            search.step()
        init = search.fitness.copy()
        search.run(max_individuals=36)
        return init, search.fitness.copy(), search.train_steps

    a, b = run(4), run(4)
    assert np.array_equal(a[1], b[1]) and a[2] == b[2]
    c = run(12)
    assert np.array_equal(a[0], c[0])


def test_random_search_proposes_fresh_algorithms():
    fake = FakeEvaluator()
    search = Search(small_spec(population_size=5), memory=MEMORY, seed=8, evaluate_fn=fake,
                    random_search=True, child_batch_size=5)
    result = search.run(max_individuals=20)
    assert search.num_individuals == 20
    assert result.fitness == pytest.approx(search.best_ever[1])
    assert result.fitness >= search.fitness.max()


def test_train_budget_rejects_in_search():
    spec = small_spec(initial_population="NEURAL_NET_ALGORITHM", mutation_types=("IDENTITY",),
                      train_budget=TrainBudgetConfig("LINEAR_ALGORITHM", 2.0), population_size=3,
                      setup_size_init=0, predict_size_init=0, learn_size_init=0)
    search = Search(spec, memory=type(MEMORY)(5, 9, 2), seed=9, backend="cpu")
    while not search.initialized:
        search.step()
    assert search.train_steps == 0 and (search.fitness == 0).all()
    assert search.budget_rejections == 3 * len(search.tasks)


def test_hurdle_failures_keep_first_stage_fitness():
    fake = FakeEvaluator()
    spec = small_spec(population_size=10, hurdles=HurdlesConfig(75.0, 10, 1))
    search = Search(spec, memory=MEMORY, seed=10, evaluate_fn=fake, child_batch_size=5)
    while not search.initialized:
        search.step()
    assert search.hurdle_stats.evaluated == 0  # no hurdle during the initial population
    for _ in range(6):
        search.step()
    stats = search.hurdle_stats
    assert stats.evaluated == 30 and stats.passed + stats.failed == 30
    assert stats.failed > 0 and stats.saved_train_steps > 0
    # A failed child's fitness is its first-stage fitness: u * 10 / 30 on the first task.
    u = FakeEvaluator._u
    staged = [search.population[i] for i in range(10)]
    firsts = [u(a) * 10 / 30 for a in staged]
    assert any(np.isclose(search.fitness[i], firsts[i]) for i in range(10))


def test_hand_coded_initial_population_is_not_mutated():
    search = Search(small_spec(initial_population="LINEAR_ALGORITHM", population_size=4),
                    memory=MEMORY, seed=11, evaluate_fn=FakeEvaluator())
    while not search.initialized:
        search.step()
    padded = generator.pad(generator.linear_model(), 3, 1, 4)
    assert all(a == padded for a in search.population)


@pytest.mark.slow
def test_jax_backend_compiles_once_per_kind_and_matches_cpu():
    from azero_jax.backends.jax import jax_evaluator
    spec = small_spec(fec=FECConfig(10, 10), population_size=16)
    before = dict(jax_evaluator.COUNTERS.traces)
    # float64 on both: in float32 a chaotic child may land in another FEC class.
    on_jax = Search(spec, memory=MEMORY, seed=12, backend="jax", child_batch_size=8,
                    evaluator_options={"dtype": "float64"})
    on_cpu = Search(spec, memory=MEMORY, seed=12, backend="cpu", child_batch_size=8)
    for _ in range(5):
        on_jax.step()
        on_cpu.step()
    new = {k: v - before.get(k, 0) for k, v in jax_evaluator.COUNTERS.traces.items()
           if v != before.get(k, 0)}
    assert len(new) <= 2 and set(new.values()) == {1}  # probe and full: one trace each
    assert np.allclose(on_jax.fitness, on_cpu.fitness, atol=1e-9)


def test_equivalent_children_reuse_the_first_stage():
    fake = FakeEvaluator()
    spec = small_spec(population_size=10, mutate_prob=0.0, hurdles=HurdlesConfig(75.0, 10, 1))
    search = Search(spec, memory=MEMORY, seed=13, evaluate_fn=fake, child_batch_size=10)
    search.step()
    search.step()  # copies of the initial algorithms: each staged at most once
    search.step()  # the same programs again: every stage result is remembered
    stats = search.hurdle_stats
    assert stats.evaluated == 20
    assert stats.memo_hits >= 10
    assert stats.stage_train_steps <= 10 * 10  # at most one 10-step stage per program


def test_a_search_runs_the_cpu_backend_in_one_thread_by_default(monkeypatch):
    from azero_jax.backends.cpu import cpu_evaluator
    seen = []
    original = cpu_evaluator.evaluate_pairs

    def spy(*args, **kwargs):
        seen.append(kwargs.get("num_threads"))
        return original(*args, **kwargs)

    monkeypatch.setattr(cpu_evaluator, "evaluate_pairs", spy)
    Search(small_spec(population_size=4), memory=MEMORY, seed=1, backend="cpu").step()
    Search(small_spec(population_size=4), memory=MEMORY, seed=1, backend="cpu",
           evaluator_options={"num_threads": 2}).step()
    assert seen and set(seen[:1]) == {1} and seen[-1] == 2


def test_the_step_keys_pairs_as_fec_fingerprint_keys_does():
    """The search hashes fingerprints in compiled code (`_search_kernels.probe_finish`);
    the keys must be those of the documented function, `fec.fingerprint_keys`."""
    from azero_jax.evolution import fec as fec_lib
    spec = small_spec(search_tasks=(task_spec(num_tasks=3),), population_size=8,
                      fec=FECConfig(num_train_examples=5, num_valid_examples=4))
    probes, lookups = [], []

    class Recording(Search):
        def run_request(self, request):
            results = super().run_request(request)
            if request.kind == "probe":
                probes.append((request, results))
            return results

    search = Recording(spec, memory=MEMORY, seed=3, backend="cpu", child_batch_size=8)
    original = fec_lib._k().fec_lookup_pairs

    def spy(index, ent, free, meta, keys_hi, keys_lo, *rest):
        lookups.append((keys_hi.copy(), keys_lo.copy()))
        return original(index, ent, free, meta, keys_hi, keys_lo, *rest)

    import azero_jax.evolution._search_kernels as kernels
    kernels.fec_lookup_pairs = spy
    try:
        search.step()  # the initial population: every child is probed
    finally:
        kernels.fec_lookup_pairs = original
    (request, results), = probes
    assert len(request.algorithm_ids) == 8  # eight distinct random programs
    tasks = np.asarray(request.task_index)
    budget = np.array([search.tasks[t].total_train_steps for t in tasks])
    expected = fec_lib.fingerprint_keys(results, [search.tasks[t].index for t in tasks], budget)
    (hi, lo), = lookups
    assert [(int(h) << 64) | int(l) for h, l in zip(hi, lo)] == list(expected)
