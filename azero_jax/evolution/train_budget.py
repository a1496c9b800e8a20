"""The reference's static train budget (spec §8): reject algorithms that cost too much.

The cost of a component function is the sum of its instructions' compute-cost units
(:attr:`azero_jax.core.ops.OpSpec.cost`, the reference's benchmark-derived table; NO_OPs
cost too). An algorithm trained for ``B`` steps is accepted iff
``cost(setup) + B * (cost(predict) + cost(learn)) <= factor * (same for the baseline)``;
a rejected one trains for 0 steps and scores 0.

Example:
    >>> from azero_jax.core import generator
    >>> from azero_jax.evolution.train_budget import TrainBudget
    >>> budget = TrainBudget(generator.neural_net(), 2.0)
    >>> budget.train_steps(generator.linear_model(), 1000)
    1000
    >>> TrainBudget(generator.linear_model(), 2.0).train_steps(generator.neural_net(), 1000)
    0
"""

from __future__ import annotations

import dataclasses

import numpy as np

from azero_jax.core import ops as ops_lib
from azero_jax.core.program import Algorithm
from azero_jax.spec import spec_protos

@dataclasses.dataclass(frozen=True)
class TrainBudgetConfig:
    """The reference's ``TrainBudgetSpec``: baseline kind and threshold factor."""

    baseline: str = spec_protos.default("TrainBudgetSpec", "train_budget_baseline")
    threshold_factor: float = spec_protos.default("TrainBudgetSpec",
                                                  "train_budget_threshold_factor")

    def __post_init__(self):
        if not self.threshold_factor > 0:
            raise ValueError("train_budget.train_budget_threshold_factor must be > 0, got "
                             f"{self.threshold_factor}")


COSTS = np.array([spec.cost for spec in ops_lib.OPS], dtype=np.int64)


def component_cost(component: np.ndarray) -> int:
    """Compute-cost units of one component function."""
    return int(COSTS[component["op"]].sum())


def algorithm_costs(algorithm: Algorithm) -> tuple[int, int]:
    """``(setup cost, per-step train cost = predict + learn)``."""
    return (component_cost(algorithm.setup),
            component_cost(algorithm.predict) + component_cost(algorithm.learn))


class TrainBudget:
    """A budget relative to a baseline algorithm.

    Args:
      baseline: the baseline algorithm, already padded as the search generator pads it.
      threshold_factor: allowed multiple of the baseline's cost (reference default 2.0);
        checked by :class:`TrainBudgetConfig`.
    """

    def __init__(self, baseline: Algorithm,
                 threshold_factor: float = TrainBudgetConfig.threshold_factor):
        self.baseline = baseline
        self.threshold_factor = float(
            TrainBudgetConfig(threshold_factor=threshold_factor).threshold_factor)
        self.baseline_setup, self.baseline_train = algorithm_costs(baseline)

    def train_steps(self, algorithm: Algorithm, steps: int) -> int:
        """``steps`` if the algorithm fits the budget for that many steps, else 0."""
        setup, train = algorithm_costs(algorithm)
        return int(self.budget_steps(np.array([setup]), np.array([train]), np.array([steps]))[0, 0])

    def budget_steps(self, setup_costs: np.ndarray, train_costs: np.ndarray,
                     steps: np.ndarray) -> np.ndarray:
        """``[n, T]`` budgeted steps of n algorithms (their setup and per-step train costs)
        on T tasks of ``steps`` full training steps each: the steps, or 0 where rejected."""
        setup_costs = np.asarray(setup_costs, dtype=np.int64).reshape(-1, 1)
        train_costs = np.asarray(train_costs, dtype=np.int64).reshape(-1, 1)
        steps = np.asarray(steps, dtype=np.int64).reshape(1, -1)
        if (train_costs <= 0).any():
            raise ValueError("an algorithm with empty Predict and Learn has no train cost "
                             "(the reference treats this as fatal)")
        limit = self.threshold_factor * (self.baseline_setup + steps * self.baseline_train)
        fits = setup_costs + steps * train_costs <= limit
        return np.where(fits, steps, 0)
