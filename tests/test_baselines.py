"""optax baselines against the reference's hand-coded algorithms run through the evaluator.

Documented tolerance: on the same tasks, the logistic-regression baseline (no bias, zero
init, float64) and the hand-coded ``LinearModel`` compute the same SGD steps, so their
validation accuracies agree to within one validation example per task; the 2-layer
network and ``NeuralNet`` draw different initial weights (and the hand-coded one
back-propagates through the already updated output layer), so they agree in mean
accuracy over tasks to within 0.03.
"""

from __future__ import annotations

import numpy as np
import pytest

import azero_jax as az
from azero_jax.datasets import protocol
from azero_jax.paper import baselines

SOFTMAX_REGRESSION = """def Setup():
  s2 = 0.01
def Predict():
  v2 = dot(m0, v0)
def Learn():
  v3 = v1 - v2
  m1 = outer(v3, v0)
  m1 = s2 * m1
  m0 = m0 + m1
"""


@pytest.fixture(scope="module")
def binary_tasks():
    return az.make_tasks(protocol.select_task_spec("digits", num_tasks=8))


def test_linear_baseline_matches_hand_coded_linear_model(binary_tasks):
    grid = az.evaluate([az.generator.linear_model(0.01)], binary_tasks, num_scalars=4,
                       num_vectors=3, num_matrices=1, backend="cpu")[0]
    ours = baselines.train_and_evaluate("linear", binary_tasks, [baselines.Hyperparameters(0.01)],
                                        bias=False, dtype="float64")[0]
    n_valid = np.array([t.num_valid for t in binary_tasks])
    assert np.all(np.abs(grid - ours) <= 1.0 / n_valid + 1e-9)
    assert abs(grid.mean() - ours.mean()) <= 0.005
    assert ours.mean() > 0.9  # held-out digit pairs are easy at F = 16


def test_nn_baseline_agrees_with_hand_coded_neural_net(binary_tasks):
    grid = az.evaluate([az.generator.neural_net(0.01, 0.1, 0.1)], binary_tasks, num_scalars=5,
                       num_vectors=9, num_matrices=2, backend="cpu")[0]
    ours = baselines.train_and_evaluate("nn", binary_tasks, [baselines.Hyperparameters()],
                                        dtype="float64")[0]
    assert abs(grid.mean() - ours.mean()) <= 0.03
    assert ours.mean() > 0.85


def test_multiclass_algorithm_matches_softmax_regression():
    """The multi-class memory convention: v1 = one-hot label in Learn, v2 = softmax in training."""
    tasks = az.make_tasks(protocol.multiclass_task_spec("digits", num_tasks=2, num_train=900,
                                                        num_valid=300))
    grid = az.evaluate([az.parse_algorithm(SOFTMAX_REGRESSION)], tasks, num_scalars=3,
                       num_vectors=4, num_matrices=2, backend="cpu")[0]
    ours = baselines.train_and_evaluate("linear", tasks, [baselines.Hyperparameters(0.01)],
                                        bias=False, dtype="float64")[0]
    assert np.all(np.abs(grid - ours) <= 1.0 / 300 + 1e-9)
    assert ours.min() > 0.6  # chance is 0.1


def test_hyperparameter_sampling():
    trials = baselines.sample_hyperparameters("nn", 50, seed=3)
    assert trials[0] == baselines.Hyperparameters()
    lrs = np.array([t.learning_rate for t in trials[1:]]) / 0.01
    assert lrs.min() >= 1e-3 and lrs.max() <= 1e3 and lrs.min() < 0.1 and lrs.max() > 10
    assert len({t.init_scale for t in trials}) == 50
    linear = baselines.sample_hyperparameters("linear", 5, seed=3)
    assert {t.init_scale for t in linear} == {0.1}
    with pytest.raises(ValueError, match="model must be one of"):
        baselines.sample_hyperparameters("svm", 5)
    with pytest.raises(ValueError, match="learning_rate"):
        baselines.Hyperparameters(learning_rate=-1.0)


def test_tuning_and_success_thresholds(binary_tasks):
    tune_tasks, eval_tasks = binary_tasks[:4], binary_tasks[4:]
    result = baselines.tune("linear", tune_tasks, num_trials=6, seed=1)
    assert result.accuracies.shape == (6, 4)
    assert result.best_accuracy == pytest.approx(result.accuracies.mean(1).max())
    assert result.best == result.trials[int(np.argmax(result.accuracies.mean(1)))]
    thresholds = baselines.success_thresholds(tune_tasks, eval_tasks, num_trials=4, seed=1)
    assert set(thresholds) == {"linear", "nn"}
    assert all(0.8 < v <= 1.0 for v in thresholds.values())
    with pytest.raises(ValueError, match="accuracy tasks"):
        baselines.train_and_evaluate(
            "linear", [az.tasks.scalar_linear_regression_task(4, 20, 5, 1, 2)],
            [baselines.Hyperparameters()])
