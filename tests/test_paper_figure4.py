"""Smoke tests of the Figure 4 harness (experiments/paper/figure4*.py): tiny budgets,
checking the bookkeeping rather than the science."""

import json
import math
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments", "paper"))

import figure4  # noqa: E402
import figure4_lib  # noqa: E402
import paper_common  # noqa: E402

TINY = dict(evals=40, population=20, num_train=20)


def _run(results_dir, task_type="linear_backprop", budget=80, **kwargs):
    lines = []
    summary = figure4.run(task_type, budget, str(results_dir), num_workers=0,
                          log=lines.append, **{**TINY, **kwargs})
    return summary, lines


def test_both_methods_get_identical_settings():
    rs = figure4_lib.make_search("linear_regressor", "rs", 3, 40, 20, 20)
    evo = figure4_lib.make_search("linear_regressor", "evolution", 3, 40, 20, 20)
    assert rs.spec == evo.spec and rs.memory == evo.memory
    assert rs.random_search and not evo.random_search
    for a, b in zip(rs.tasks, evo.tasks):
        np.testing.assert_array_equal(a.x_train, b.x_train)
        np.testing.assert_array_equal(a.y_valid, b.y_valid)
    # S5's settings, ops keyed by enum name.
    assert (rs.memory.num_scalars, rs.memory.num_vectors) == (4, 3)
    assert rs.spec.size_inits == (5, 1, 4) and len(rs.tasks) == 3
    assert rs.spec.hurdles is None and rs.spec.fec is None
    assert rs.spec.population_size == 20 and rs.spec.tournament_size == 10


def test_backprop_pins_setup_and_predict_to_the_reference():
    search = figure4_lib.make_search("affine_backprop", "rs", 0, 40, 20, 20)
    reference = figure4_lib.affine_reference()
    for program in (search.initial_programs(np.arange(4)), search.propose(np.arange(4, 8))):
        for j in range(4):
            algorithm = program.algorithm(j)
            assert algorithm.setup.tobytes() == reference.setup.tobytes()
            assert algorithm.predict.tobytes() == reference.predict.tobytes()
            assert len(algorithm.learn) == 6 and algorithm.learn.tobytes() != reference.learn.tobytes()


def test_the_reference_itself_is_acceptable_and_a_diverged_one_is_not():
    kind = figure4_lib.TASK_TYPES["linear_backprop"]
    search = figure4_lib.make_search("linear_backprop", "rs", 0, 40, 20)  # S5's 1000 examples
    ref = figure4_lib.reference_rms(kind, search.tasks)
    assert np.all(np.isfinite(ref)) and ref.mean() < 0.01  # SGD converges on 1000 examples
    assert figure4_lib.acceptable([ref.mean(), ref.mean() * 1.01, np.inf], ref.mean()).tolist() == \
        [True, False, False]
    assert figure4_lib.rms_from_fitness(0.0) == np.inf
    assert figure4_lib.rms_from_fitness(figure4_lib.evaluator_lib.flip_and_squash(0.25)) == \
        pytest.approx(0.25, rel=1e-12)


def test_counts_resume_and_add_up(tmp_path, monkeypatch):
    # Accept every finite algorithm, so that successes occur at this tiny budget.
    monkeypatch.setattr(figure4_lib, "ACCEPT_RTOL", 1e12)
    first, lines = _run(tmp_path)
    assert any("learning rate 0.01" in line for line in lines)
    second, _ = _run(tmp_path, budget=40)
    data = json.load(open(tmp_path / figure4.RESULTS_NAME))
    entry = data["task_types"]["linear_backprop"]
    rs, evo = entry["experiments"]["rs"], entry["experiments"]["evolution"]
    assert len(rs) == len(evo) == 3
    assert sorted(r["index"] for r in evo) == [0, 1, 2]  # resumed, never repeated
    assert all(r["successes"] <= 1 for r in evo)  # at most one per experiment
    assert any(r["acceptable"] > 1 for r in evo)  # ... though several were acceptable
    assert all(r["successes"] == r["acceptable"] for r in rs)
    assert second["rs_evaluations"] == 120 and second["evolution_evaluations"] == 120
    assert second["rs_acceptable"] == sum(r["acceptable"] for r in rs)
    assert second["evolution_successes"] == sum(r["successes"] for r in evo)
    assert second["rs_acceptable"] >= first["rs_acceptable"]
    assert data["summary"]["linear_backprop"] == second
    for key in ("task_type", "rs_rate", "evolution_rate", "ratio", "ratio_ci_low",
                "ratio_ci_high"):
        assert key in second
    figure4.plot(str(tmp_path), str(tmp_path / "figure4.png"))
    assert (tmp_path / "figure4.png").stat().st_size > 10_000
    table = figure4.markdown_table(str(tmp_path))
    assert f"| linear_backprop | {second['rs_acceptable']} / 120 |" in table


def test_records_are_saved_in_batches_and_a_stop_saves_the_finished_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(figure4, "SAVE_EVERY_SECS", 1e9)  # no save before the end
    real = figure4._results

    def stopped_after_three(jobs, num_workers):
        for count, record in enumerate(real(jobs, num_workers), 1):
            yield record
            if count == 3:
                raise KeyboardInterrupt  # what a stop does to the loop
    monkeypatch.setattr(figure4, "_results", stopped_after_three)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, budget=160)  # 4 experiments a method
    data = json.load(open(tmp_path / figure4.RESULTS_NAME))
    entry = data["task_types"]["linear_backprop"]
    assert len(entry["experiments"]["rs"]) + len(entry["experiments"]["evolution"]) == 3
    assert data["summary"]["linear_backprop"]["rs_evaluations"] == 40 * len(
        entry["experiments"]["rs"])


def test_other_settings_are_refused(tmp_path):
    _run(tmp_path, budget=0)
    with pytest.raises(ValueError, match="other settings"):
        _run(tmp_path, budget=0, num_train=30)


def test_intervals():
    low, high = paper_common.wilson(5, 100)
    assert 0.02 < low < 0.05 < high < 0.12
    assert paper_common.wilson(0, 1000) == (0.0, pytest.approx(1 - 0.025 ** (1 / 1000)))
    both = paper_common.rate_ratio(10, 100, 10, 10_000, scale_a=100)
    assert both["ratio"] == pytest.approx(1.0)
    assert both["ratio_ci_low"] < 1 < both["ratio_ci_high"]
    none_rs = paper_common.rate_ratio(10, 100, 0, 10**7, scale_a=1000)
    assert none_rs["ratio"] is None and none_rs["ratio_ci_high"] == math.inf
    assert none_rs["ratio_ci_low"] > 100  # 1e-4 per evaluation against < 4e-7


@pytest.mark.parametrize("method", figure4_lib.METHODS)
def test_every_evaluated_program_is_pinned(method):
    search = figure4_lib.make_search("linear_backprop_fixed2", method, 0, 40, 20, 20)
    search.run(max_individuals=40)
    reference = figure4_lib.linear_reference()
    for algorithm in search.population:  # after 2 sweeps: the last 20 evaluated
        assert algorithm.setup.tobytes() == reference.setup.tobytes()
        assert algorithm.predict.tobytes() == reference.predict.tobytes()
        assert algorithm.learn[:2].tobytes() == reference.learn[:2].tobytes()
    assert not np.isnan(search.observed).any()
    assert not figure4_lib.TASK_TYPES["linear_backprop_fixed2"].paper


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table in /proc")
def test_sigterm_stops_the_workers_with_the_run(tmp_path):
    """A stopped run leaves no worker computing experiments nobody will collect."""
    import signal
    import subprocess
    import time
    command = [sys.executable, os.path.join(ROOT, "experiments", "paper", "figure4.py"),
               "--task_type=linear_backprop", "--budget=400000", "--num_workers=1",
               "--evals_per_experiment=40", "--population_size=20",
               "--num_train_examples=20", f"--results_dir={tmp_path}"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    for line in run.stdout:  # the first finished experiment: the worker is up
        if line.startswith("linear_backprop: RS"):
            break
    workers = _children(run.pid)
    assert workers
    run.send_signal(signal.SIGTERM)
    run.wait(timeout=60)
    deadline = time.monotonic() + 30
    while any(os.path.exists(f"/proc/{pid}") for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [pid for pid in workers if os.path.exists(f"/proc/{pid}")]
    assert not alive, f"workers outlived the run: {alive}"
    data = json.load(open(tmp_path / figure4.RESULTS_NAME))
    assert data["task_types"]["linear_backprop"]["experiments"]["rs"]  # kept what finished
