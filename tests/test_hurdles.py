"""Tests of hurdles (paper S3): the percentile and the search's first stage."""

import numpy as np
import pytest

from azero_jax.evolution.hurdles import (HurdlesConfig, hurdle_value, stage_tasks,
                                         stage_train_examples)
from azero_jax.evolution.regularized_evolution import Search
from azero_jax.spec.search_spec import parse_hurdles
from search_helpers import MEMORY, FakeEvaluator, small_spec, task_spec


def test_percentile_of_unique_fitnesses():
    # Duplicates do not move the hurdle: unique values are 0, 0.5, 1.
    assert hurdle_value([0.0] * 50 + [0.5, 1.0, 1.0], 75) == pytest.approx(0.75)
    assert hurdle_value([0.2, 0.4, 0.6, 0.8, 1.0], 75) == pytest.approx(0.8)
    assert hurdle_value([0.3], 75) == pytest.approx(0.3)
    values = np.random.RandomState(0).rand(101)
    assert hurdle_value(values, 50) == pytest.approx(np.median(values))


def test_config_validation_and_the_default_stage():
    # The default stage: every task, a fifth of its training examples (at least one).
    assert stage_tasks(HurdlesConfig(75.0, 0, 0), 10) == 10
    assert stage_train_examples(HurdlesConfig(75.0, 0, 0), [100, 1000, 3]).tolist() == [20, 200, 1]
    assert stage_tasks(HurdlesConfig(75.0, 10, 0), 10) == 10
    assert stage_train_examples(HurdlesConfig(75.0, 30, 0), [1000, 20]).tolist() == [30, 20]
    # Only num_tasks: a prefix of the tasks with all their examples.
    assert stage_tasks(HurdlesConfig(75.0, 0, 3), 2) == 2
    assert stage_tasks(HurdlesConfig(75.0, 0, 2), 10) == 2
    assert stage_train_examples(HurdlesConfig(75.0, 0, 2), [1000, 50]).tolist() == [1000, 50]
    assert parse_hurdles("") == HurdlesConfig(75.0, 0, 0)
    assert parse_hurdles("num_tasks: 2 percentile: 50") == HurdlesConfig(50.0, 0, 2)
    with pytest.raises(ValueError, match="hurdles"):
        parse_hurdles("num_taskz: 2")
    with pytest.raises(ValueError, match="percentile"):
        HurdlesConfig(120.0, 10, 0)


def test_the_hurdle_is_drawn_from_first_stage_fitnesses():
    """A 10-of-30-examples stage scores a third of the full fitness (the fake evaluator's
    rule). Judged against full fitnesses, almost every child would fail; against stage
    fitnesses, about a quarter pass a 75th-percentile hurdle."""
    spec = small_spec(population_size=40, hurdles=HurdlesConfig(75.0, 10, 0),
                      max_train_steps=10**9)
    search = Search(spec, memory=MEMORY, seed=31, evaluate_fn=FakeEvaluator(),
                    child_batch_size=4)
    search.run(max_individuals=400)
    stats = search.hurdle_stats
    assert stats.evaluated > 300
    assert 0.1 < stats.passed / stats.evaluated < 0.5
    known = ~np.isnan(search.stage_fitness)
    assert known.sum() > 30
    # A passed child's full fitness exceeds its stage fitness (the fake's rule).
    passed = known & search.fully_evaluated
    assert (search.fitness[passed] >= search.stage_fitness[passed] - 1e-12).all()


def test_a_failed_child_never_outranks_a_fully_evaluated_one():
    """A first stage on the first of several tasks is noisy: a failed child keeps its stage
    fitness capped at the population's lowest full fitness, and is never the candidate."""
    spec = small_spec(population_size=20, hurdles=HurdlesConfig(50.0, 0, 1),
                      search_tasks=(task_spec(num_tasks=3),), max_train_steps=10**9)
    search = Search(spec, memory=MEMORY, seed=33, evaluate_fn=FakeEvaluator(),
                    child_batch_size=4)
    search.run(max_individuals=20)
    for _ in range(40):
        floor = search.fitness[search.fully_evaluated].min()
        slot = search.next_slot
        search.step()
        new = np.arange(slot, slot + 4)
        failed = new[~search.fully_evaluated[new]]
        assert (search.fitness[failed] <= floor).all()
        assert (search.fitness[failed] <= search.stage_fitness[failed]).all()
    assert search.hurdle_stats.failed > 20
    best = search.candidate()
    slots = np.flatnonzero(search.fitness == best.fitness)
    assert search.fully_evaluated[slots].any()


def test_a_prefix_stage_is_reused_by_the_full_evaluation():
    """With all examples, the stage is the first task's full evaluation: a child that
    passes is evaluated on the other task only (each pair once)."""
    fake = FakeEvaluator()
    spec = small_spec(population_size=10, hurdles=HurdlesConfig(0.0, 0, 1),
                      search_tasks=(task_spec(num_tasks=2),))
    search = Search(spec, memory=MEMORY, seed=32, evaluate_fn=fake, child_batch_size=5)
    while not search.initialized:
        search.step()
    assert not np.isnan(search.stage_fitness).any()  # free for the initial population
    fake.calls.clear()
    search.step()
    stats = search.hurdle_stats
    assert stats.evaluated == 5 and stats.passed == 5  # percentile 0: everyone passes
    assert sum(c["pairs"] for c in fake.calls) == 5 * 2  # not 5 * (1 + 2)
    assert stats.stage_train_steps == 0  # no separate stage run


def test_the_default_stage_trains_on_a_fifth_of_the_examples():
    fake = FakeEvaluator()
    spec = small_spec(population_size=10, hurdles=parse_hurdles(""),
                      search_tasks=(task_spec(num_tasks=1, num_train=50),))
    search = Search(spec, memory=MEMORY, seed=34, evaluate_fn=fake, child_batch_size=5)
    while not search.initialized:
        search.step()
    fake.calls.clear()
    search.step()
    stages = [c for c in fake.calls if c["max_train_steps"] == 10]
    assert stages and search.hurdle_stats.evaluated == 5
    assert search.hurdle_stats.stage_train_steps > 0
