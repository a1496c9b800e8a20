"""The evaluation side of a search on its own (azero_jax.evolution.search_evaluator): requests and
counters, driven without a Search."""

import numpy as np

from azero_jax.core import generator
from azero_jax.core.population import Programs
from azero_jax.evolution.fec import FECConfig
from azero_jax.evolution.search_evaluator import PopulationFitness, SearchEvaluator
from search_helpers import FakeEvaluator, small_spec, task_spec

EMPTY = PopulationFitness(np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))


def _drive(evaluation, children, ids, fake):
    """Runs the requests with ``fake``; returns (fitness, request kinds)."""
    kinds = []
    requests = evaluation.evaluate_requests(children, ids, False, EMPTY)
    try:
        request = next(requests)
        while True:
            kinds.append(request.kind)
            results = fake(request.algorithms.algorithms(), evaluation.tasks,
                           request.algorithm_index, request.task_index,
                           train_steps=request.train_steps, record_errors=request.record_errors,
                           valid_steps=request.valid_steps, seed=request.seed)
            request = requests.send(results)
    except StopIteration as stop:
        return stop.value, kinds


def test_equivalent_children_are_probed_then_answered_by_the_cache():
    spec = small_spec(search_tasks=(task_spec(num_tasks=3),),
                      fec=FECConfig(num_train_examples=5, num_valid_examples=4))
    evaluation = SearchEvaluator(spec, seed=3, child_batch_size=4)
    a, b = generator.linear_model(0.01), generator.linear_model(0.02)
    fake = FakeEvaluator()
    first, kinds = _drive(evaluation, Programs.from_algorithms([a, b, a]), np.arange(3), fake)
    assert kinds == ["probe", "full"]
    assert fake.calls[1]["algorithms"] == 2  # the second `a` is a sighting of the first
    assert first[0] == first[2] != first[1]
    T = len(evaluation.tasks)
    assert evaluation.fec.misses == 2 * T and evaluation.fec.hits == T
    again, kinds = _drive(evaluation, Programs.from_algorithms([b, a]), np.arange(3, 5), fake)
    assert kinds == []  # probes memoised per program, fitnesses cached per fingerprint
    assert again.tolist() == [first[1], first[0]]
    assert evaluation.fec.hits == 3 * T
    # The reference counts every fingerprint run, memoised or not.
    assert evaluation.fec_probe_train_steps == 5 * 5 * T
    assert evaluation.fec_hit_rate() == 3 / 5
