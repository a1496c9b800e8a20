"""The S7 final evaluation: constants as hyperparameters, full-dimension pair tasks, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import azero_jax as az
from azero_jax.datasets import load_dataset
from azero_jax.paper import final_evaluation as fe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURE6 = os.path.join(ROOT, "azero_jax", "algorithms", "figure6.txt")


@pytest.fixture(scope="module")
def figure6():
    with open(FIGURE6) as f:
        text = f.read()
    algorithm = az.parse_algorithm(text)
    assert az.format_algorithm(algorithm) == text  # the file is in the reference's print form
    return algorithm


def test_figure6_constants_and_memory(figure6):
    constants = fe.algorithm_constants(figure6)
    assert [(c.component, c.field) for c in constants] == [(0, "d"), (2, "f0"), (2, "f1")]
    np.testing.assert_allclose([c.value for c in constants], [1.8e-3, 2.4e-3, 0.67], rtol=1e-6)
    assert fe.memory_for(figure6) == az.MemoryConfig(6, 6, 3)
    # Predict writes memory (m0 = s2 * m2): the weight averaging used at inference.
    assert any(int(r["out"]) == 0 and az.ops.OPS[int(r["op"])].out_type == "M"
               for r in figure6.predict)
    scaled = fe.scale_constants(figure6, constants, [10.0, 0.5, 2.0])
    assert fe.algorithm_constants(scaled)[0].value == pytest.approx(0.018)
    assert fe.algorithm_constants(scaled)[2].value == pytest.approx(1.34, rel=1e-6)
    assert scaled.predict.tobytes() == figure6.predict.tobytes()


def test_const_set_indices_are_not_constants():
    algorithm = az.parse_algorithm("def Setup():\n  v1[0.25] = 3\n  m0 = gaussian(0, 0.1, "
                                   "(n_features, n_features))\ndef Predict():\ndef Learn():\n")
    constants = fe.algorithm_constants(algorithm)
    assert [(c.position, c.field, c.value) for c in constants] == [
        (0, "f1", 3.0), (1, "f0", 0.0), (1, "f1", pytest.approx(0.1))]
    factors = fe.sample_factors(3, 200, seed=5)
    assert np.all(factors[0] == 1.0) and factors.min() >= 1e-3 and factors.max() <= 1e3
    assert np.median(factors[1:]) == pytest.approx(1.0, abs=0.6)


def test_pair_tasks_full_dimension_and_test_split():
    digits = load_dataset("digits")
    tune = fe.pair_tasks(digits, [(0, 1), (3, 8)])
    test = fe.pair_tasks(digits, [(0, 1), (3, 8)], seed=1, test=True)
    smallest = min(np.sum((digits.y_train == p) | (digits.y_train == n)) for p, n in [(0, 1), (3, 8)])
    n_train, n_valid = smallest - smallest // 5, smallest // 5  # 80/20, nothing resampled
    assert {(t.features_size, t.num_train, t.num_valid) for t in tune} == {(64, n_train, n_valid)}
    n_test = min(np.sum((digits.y_test == p) | (digits.y_test == n)) for p, n in [(0, 1), (3, 8)])
    assert {(t.num_train, t.num_valid) for t in test} == {(n_train, n_test)}
    for task in tune:
        rows = {tuple(r) for r in task.x_train}
        assert not any(tuple(r) in rows for r in task.x_valid)  # disjoint splits
        np.testing.assert_allclose(task.x_train.mean(0), 0, atol=1e-9)
    assert test[0].y_valid.sum() == np.sum(digits.y_test == 0)  # the pair's test images
    assert not np.array_equal(test[0].x_train, fe.pair_tasks(digits, [(0, 1)], seed=2,
                                                             test=True)[0].x_train)


def test_run_final_evaluation_small(figure6):
    digits = load_dataset("digits")
    rows = fe.run_final_evaluation(figure6, digits, pairs=[(3, 8), (1, 7)], num_seeds=2,
                                   tuning_trials=3, backend="cpu", algorithm_name="figure6",
                                   baselines=("linear",))  # the NN is tested in test_baselines
    assert [r.name.split()[0] for r in rows] == ["figure6", "logistic"]
    for row in rows:
        assert row.tuning_accuracy >= row.untuned_accuracy
        assert len(row.test_accuracies) == 2 and 0.5 < row.test_mean <= 1.0
    table = fe.format_table(rows)
    assert table.count("\n") == 3 and "± " in table


@pytest.mark.slow
def test_cli_runs():
    out = subprocess.run(
        [sys.executable, "-m", "azero_jax.cli.final_evaluation",
         "--dataset=digits", "--pairs=0-1", "--tuning_trials=2", "--num_seeds=1",
         "--backend=cpu"], capture_output=True, text=True, timeout=600, check=True)
    assert "| figure6.txt | 3 |" in out.stdout
