"""Tests of the static train budget (spec §8; §13 item 18)."""

import pytest

from azero_jax.core import generator
from azero_jax.evolution.train_budget import TrainBudget, algorithm_costs, component_cost


def test_reference_budget_decisions():  # §13 item 18
    nn, linear = generator.neural_net(), generator.linear_model()
    for steps in (100, 1000):
        assert TrainBudget(nn, 2.0).train_steps(nn, steps) == steps
        assert TrainBudget(nn, 2.0).train_steps(linear, steps) == steps
        assert TrainBudget(linear, 2.0).train_steps(nn, steps) == 0


def test_reference_costs_of_the_neural_net():
    nn = generator.neural_net()
    assert component_cost(nn.setup) == 358864510
    assert component_cost(nn.predict) == 26984126
    assert component_cost(nn.learn) == 54920587
    assert algorithm_costs(nn) == (358864510, 26984126 + 54920587)


def test_padding_counts_no_ops():
    padded = generator.pad(generator.linear_model(), 10, 10, 10)
    assert component_cost(padded.setup) == 3691108 + 9 * 3013921


def test_empty_predict_and_learn_is_an_error():
    budget = TrainBudget(generator.neural_net(), 2.0)
    with pytest.raises(ValueError, match="train cost"):
        budget.train_steps(generator.pad(generator.linear_model(), 1, 0, 0).replace(1, []).replace(2, []), 10)
