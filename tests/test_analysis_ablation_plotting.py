"""Ablations / knock-ins (S8c, S8d), metrics plots and learning curves."""

from __future__ import annotations

import json

import numpy as np
import pytest

import azero_jax as az
from azero_jax import parse_algorithm
from azero_jax.analysis import ablation, plotting
from azero_jax.analysis import export as ex
from azero_jax.core import generator

LINEAR_TASK = az.tasks.scalar_linear_regression_task(4, 200, 50, data_seed=1, param_seed=2)


def test_knock_out_modes_and_errors():
    lin = generator.linear_model()
    noop = ablation.knock_out(lin, "learn", [1, 2])
    assert noop.sizes == lin.sizes and [int(r["op"]) for r in noop.learn] == [2, 0, 0, 23]
    removed = ablation.knock_out(lin, 2, slice(1, 3), mode="remove")
    assert removed.learn.tolist() == [lin.learn[0].tolist(), lin.learn[3].tolist()]
    with pytest.raises(ValueError, match="out of range"):
        ablation.knock_out(lin, "learn", [4])
    with pytest.raises(ValueError, match="component"):
        ablation.knock_out(lin, "train", [0])
    with pytest.raises(ValueError, match="mode"):
        ablation.knock_out(lin, "learn", [0], mode="drop")


def test_knock_in_with_renaming():
    donor = parse_algorithm("""
    def Setup():
    def Predict():
    def Learn():
      m1 = m1 + m0
      m2 = m2 + m1
    """)
    recipient = generator.linear_model()
    result = ablation.knock_in(recipient, donor.learn, "learn", position=1,
                               rename={"m2": "m3", "m1": "m2"})
    assert result.sizes == (1, 1, 6)
    assert "  m2 = m2 + m0\n  m3 = m3 + m2\n" in str(result)
    assert str(result).count("s3 = s0 - s1") == 1 and result.learn[0] == recipient.learn[0]
    with pytest.raises(ValueError, match="different types"):
        ablation.knock_in(recipient, donor.learn, "learn", rename={"m1": "v1"})
    with pytest.raises(ValueError, match="position"):
        ablation.knock_in(recipient, donor.learn, "learn", position=9)


def test_ablation_of_the_update_hurts_and_of_dead_code_does_not():
    algorithm = parse_algorithm(str(generator.linear_model(0.05)) + "  s4 = s1 * s1\n")
    results = ablation.ablate(
        algorithm, [LINEAR_TASK],
        {"update": ("learn", [3]), "dead": ("learn", [4]),
         "error+update": [("learn", [0]), ("learn", [3])]},
        seeds=[0, 1], backend="cpu")
    by_label = {r.label: r for r in results}
    assert by_label["update"].delta_mean < -0.5
    assert by_label["dead"].delta_mean == 0.0
    assert by_label["error+update"].delta_mean < -0.5
    assert np.all(by_label["dead"].base_fitness > 0.99)
    table = ablation.format_comparisons(results)
    assert table.splitlines()[1].startswith(("update", "error+update"))


def test_single_knockouts_pair_random_streams():
    # With NO_OP knock-outs the random draws stay paired: knocking out a dead instruction
    # of a program with random ops changes nothing, on both backends' streams.
    algorithm = parse_algorithm("""
    def Setup():
      v1 = gaussian(0, 0.5, n_features)
      s2 = 0.05
    def Predict():
      s1 = dot(v1, v0)
      s4 = s1 * s1
    def Learn():
      s3 = s0 - s1
      s3 = s2 * s3
      v2 = s3 * v0
      v1 = v1 + v2
    """)
    results = ablation.single_knockouts(algorithm, [LINEAR_TASK], seeds=[3, 4], backend="cpu")
    assert len(results) == 8
    dead = [r for r in results if "s4 = s1 * s1" in r.label][0]
    np.testing.assert_array_equal(dead.fitness, dead.base_fitness)
    init = [r for r in results if "gaussian" in r.label][0]
    assert init.delta_mean != 0.0  # random init matters a little at this step count


def test_compare_accepts_a_task_function():
    results = ablation.compare(generator.linear_model(0.05),
                               {"slow": generator.linear_model(0.001)},
                               lambda seed: [az.tasks.scalar_linear_regression_task(
                                   4, 100, 20, data_seed=seed, param_seed=seed)],
                               seeds=[1, 2, 3], backend="cpu")
    (slow,) = results
    assert slow.delta_mean < 0 and np.isfinite(slow.delta_stderr) and slow.delta_stderr > 0
    assert len(set(np.round(slow.base_fitness, 8))) == 3  # different tasks per seed


def _write_log(path, runs=1):
    with open(path, "w") as handle:
        for _ in range(runs):
            for i in range(5):
                handle.write(json.dumps({
                    "individuals": 100 * i, "elapsed_secs": 0.5 * i, "train_steps": 1000 * i,
                    "mean_fitness": 0.1 * i, "stdev_fitness": 0.01, "best_fitness": 0.2 * i,
                    "fec_hit_rate": 0.1, "hurdle": None, "individuals_per_sec": 200.0,
                    "train_steps_per_sec": 2000.0}) + "\n")


def test_read_metrics_and_split_runs(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_log(path, runs=2)
    metrics = plotting.read_metrics(path)
    assert metrics["individuals"].dtype == np.int64 and len(metrics["individuals"]) == 10
    assert np.all(np.isnan(metrics["hurdle"]))
    runs = plotting.split_runs(metrics)
    assert [len(r["individuals"]) for r in runs] == [5, 5]
    (tmp_path / "bad.jsonl").write_text('{"individuals": 1}\nnot json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        plotting.read_metrics(tmp_path / "bad.jsonl")


def test_plot_progress_and_learning_curve(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "metrics.jsonl"
    _write_log(path)
    fig = plotting.plot_progress(path, title="demo")
    axes = fig.get_axes()
    assert [ax.get_xlabel() for ax in axes] == ["individuals evaluated", "time (s)"]
    np.testing.assert_allclose(axes[0].get_lines()[0].get_ydata(), [0, 0.2, 0.4, 0.6, 0.8])
    fig.savefig(tmp_path / "progress.png")
    assert (tmp_path / "progress.png").stat().st_size > 1000

    curve = plotting.learning_curve(generator.linear_model(0.01), LINEAR_TASK, every=30)
    assert len(curve["train_error"]) == 200 and not curve["aborted"]
    assert list(curve["eval_step"]) == [0, 30, 60, 90, 120, 150, 180, 200]
    assert curve["valid_fitness"][-1] > curve["valid_fitness"][0] + 0.3
    # Training (measurement on copies) matches the reference loop's training errors.
    run = ex.run_task(generator.linear_model(0.01), LINEAR_TASK)
    np.testing.assert_allclose(curve["train_error"], run.train_errors, rtol=1e-5)
    fig = plotting.plot_learning_curve([("linear", curve)])
    assert fig.get_axes()[1].get_ylabel() == "validation fitness"


def test_learning_curve_stops_at_abort():
    exploding = parse_algorithm("def Setup():\n  s2 = 3\ndef Predict():\n  s1 = s1 * s2\n"
                                "  s1 = s1 + s2\ndef Learn():\n")
    curve = plotting.learning_curve(exploding, LINEAR_TASK, every=7)
    assert curve["aborted"] and len(curve["train_error"]) < 10
    assert curve["train_error"][-1] > 100


def test_missing_matplotlib_gives_a_clear_error(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"azero_jax\[plot\]"):
        plotting.plot_progress([{"individuals": 1, "elapsed_secs": 1, "best_fitness": 1,
                                 "mean_fitness": 1}])


def test_load_algorithm_from_text_checkpoint_and_directory(tmp_path):
    from azero_jax import analysis
    from azero_jax.evolution import checkpoint
    lin, nn = generator.linear_model(0.01), generator.neural_net()
    (tmp_path / "algo.txt").write_text(str(nn))
    assert analysis.load_algorithm(tmp_path / "algo.txt") == nn
    arrays = checkpoint.pack_algorithms([lin, nn, lin], "population")
    arrays["fitness"] = np.array([0.2, 0.9, 0.5])
    checkpoint.save(str(tmp_path / "ckpt" / "state.npz"), {"best_text": None}, arrays)
    assert analysis.load_algorithm(tmp_path / "ckpt" / "state.npz") == nn
    assert analysis.load_algorithm(tmp_path / "ckpt") == nn
    checkpoint.save(str(tmp_path / "best.npz"), {"best_text": str(lin)}, arrays)
    assert analysis.load_algorithm(tmp_path / "best.npz") == lin
    with pytest.raises(ValueError, match="no such file"):
        analysis.load_algorithm(tmp_path / "missing.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no best_algorithm.txt"):
        analysis.load_algorithm(tmp_path / "empty")
