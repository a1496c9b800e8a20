"""The one experiments loop (:class:`azero_jax.evolution.experiment.ExperimentRunner`).

A fake :class:`~azero_jax.evolution.experiment.ExperimentKind` tests the runner alone: the seeds
it draws, the best it keeps, its stop rules, its checkpoint and an exact resume after a
kill. Then the two real kinds, a single population and islands, through the same loop,
and the checkpoints it refuses (the other kind, older formats) in one line.
"""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

from azero_jax.core import generator
from azero_jax.core.errors import CheckpointError
from azero_jax.core.program import format_algorithm
from azero_jax.evolution import checkpoint as checkpoint_lib
from azero_jax.evolution import experiment, run_checks
from search_helpers import MEMORY, small_spec, task_spec


class Killed(Exception):
    """Stands for a SIGKILL: the run ends without saving anything."""


class FakeExperiment:
    """Five steps of ten individuals; the candidate's select fitness comes from a script
    (so the runner must not evaluate it), its algorithm names the experiment."""

    description = "Running a fake experiment..."

    def __init__(self, kind, index, draws, select_tasks, progress):
        self.kind, self.index, self.draws, self.progress = kind, index, draws, progress
        self.steps = 0

    @property
    def num_individuals(self):
        return 10 * self.steps

    def run(self, should_stop, on_step):
        self.kind.runs.append((self.index, self.steps))
        while self.steps < 5:
            self.steps += 1
            self.progress({"individuals": self.num_individuals}, f"step {self.steps}")
            if self.kind.kill_at == (self.index, self.steps):
                raise Killed
            on_step()
            if should_stop():
                break
        fitness = self.kind.script[self.index]
        return experiment.ExperimentCandidate(
            algorithm=generator.linear_model(0.25 + self.index),
            fitness=0.0 if fitness is None else fitness / 2,
            num_individuals=self.num_individuals, train_steps=100 * self.steps,
            elapsed_secs=0.0, select_fitness=fitness, origin=" (fake)",
            record={"draws": dict(self.draws)})

    def state_dict(self):
        return {"steps": self.steps}, {"fake_steps": np.arange(self.steps)}

    def load_state_dict(self, state, arrays):
        assert arrays["fake_steps"].tolist() == list(range(state["steps"]))
        self.steps = state["steps"]


class FakeKind:
    islands = None

    def __init__(self, script, name="single", kill_at=None):
        self.script, self.name, self.kill_at = script, name, kill_at
        self.runs, self.select_tasks_seen = [], {}

    def make(self, index, draws, select_tasks, progress):
        self.select_tasks_seen[index] = select_tasks
        return FakeExperiment(self, index, draws, select_tasks, progress)

    def summary_fields(self, experiments, last):
        return {"fake_experiments": len(experiments)}


def _config(tmp_path=None, **changes):
    base = dict(search=small_spec(population_size=8, max_train_steps=2000),
                select_tasks=(task_spec(num_tasks=1),), final_tasks=(), memory=MEMORY,
                random_seed=11, max_experiments=4, backend="cpu")
    if tmp_path is not None:
        base.update(checkpoint_dir=str(tmp_path / "ckpt"), output_dir=str(tmp_path / "out"),
                    metrics_log=str(tmp_path / "metrics.jsonl"), checkpoint_every_secs=0.0)
    base.update(changes)
    return experiment.ExperimentConfig(**base)


def _run(config, kind, **options):
    lines = []
    runner = experiment.ExperimentRunner(config, lines.append, kind=kind, **options)
    return runner.run(), lines, runner


def test_the_runner_draws_four_seeds_an_experiment_and_keeps_the_best(monkeypatch):
    monkeypatch.setattr(experiment, "evaluate_on_tasks", _no_evaluation)
    kind = FakeKind([0.3, 0.7, 0.7, 0.2])
    summary, lines, runner = _run(_config(), kind)
    rng = random.Random(11)
    expected = [{name: rng.randrange(1, 2**31 - 1) for name in
                 ("search_seed", "search_task_seed", "select_task_seed", "select_seed")}
                for _ in range(4)]
    assert [e["draws"] for e in summary["experiments"]] == expected
    assert summary["num_experiments"] == 4 and not summary["interrupted"]
    # Ties go to the later experiment: experiment 2, not 1.
    assert summary["best_select_fitness"] == 0.7
    assert summary["best_algorithm"] == format_algorithm(generator.linear_model(2.25))
    assert summary["best_search_fitness"] == 0.35
    assert [e["select_fitness"] for e in summary["experiments"]] == [0.3, 0.7, 0.7, 0.2]
    assert summary["kind"] == "single" and summary["fake_experiments"] == 4
    assert "Search fitness for candidate algorithm = 0.150000 (fake)" in lines
    assert lines.count("Select fitness is the best so far. ") == 3


def _no_evaluation(*args, **kwargs):
    raise AssertionError("the candidate brought its select fitness: no evaluation")


def test_sufficient_fitness_stops_the_loop_and_an_unmeasured_candidate_is_evaluated(
        monkeypatch):
    calls = []

    def evaluate(algorithm, specs, *, seed, **kwargs):
        calls.append(seed)
        return 0.9

    monkeypatch.setattr(experiment, "evaluate_on_tasks", evaluate)
    kind = FakeKind([None, None, None, None])
    summary, _, _ = _run(_config(max_experiments=0, sufficient_fitness=0.8), kind)
    # 0.9 > 0.8 after the first experiment; max_experiments=0 would run forever.
    assert summary["num_experiments"] == 1 and summary["best_select_fitness"] == 0.9
    assert calls == [summary["experiments"][0]["draws"]["select_seed"]]


def test_randomized_task_seeds_give_each_experiment_its_own_select_tasks(monkeypatch):
    monkeypatch.setattr(experiment, "evaluate_on_tasks", _no_evaluation)
    kind = FakeKind([0.1, 0.2])
    summary, _, _ = _run(_config(max_experiments=2, randomize_task_seeds=True), kind)
    seen = [kind.select_tasks_seen[i][0] for i in range(2)]
    assert seen[0].data_seeds != seen[1].data_seeds
    draws = summary["experiments"][1]["draws"]
    assert seen[1] == experiment.randomize_task_seeds(_config().select_tasks,
                                                      draws["select_task_seed"])[0]


def test_a_killed_run_resumes_exactly_and_logs_no_record_twice(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "evaluate_on_tasks", _no_evaluation)
    script = [0.3, 0.6, 0.5]
    straight, _, _ = _run(_config(tmp_path / "a", max_experiments=3), FakeKind(script))
    straight_metrics = (tmp_path / "a" / "metrics.jsonl").read_text()

    config = _config(tmp_path / "b", max_experiments=3)
    with pytest.raises(Killed):  # killed after logging step 4 of experiment 1
        _run(config, FakeKind(script, kill_at=(1, 4)))
    state, arrays = checkpoint_lib.load(os.path.join(config.checkpoint_dir, "checkpoint.npz"))
    assert state[run_checks.KIND_FIELD] == "single"
    assert (state["num_experiments"], state["experiment"]) == (1, {"steps": 3})
    assert arrays["fake_steps"].tolist() == [0, 1, 2]

    kind = FakeKind(script)
    resumed, lines, _ = _run(config, kind)
    assert kind.runs[0] == (1, 3)  # experiment 1 went on from its checkpointed step
    assert any(line.startswith("Resumed from ") and "experiment 2, 30 individuals" in line
               for line in lines)
    for key in ("num_experiments", "best_select_fitness", "best_algorithm"):
        assert resumed[key] == straight[key], key
    for a, b in zip(resumed["experiments"], straight["experiments"], strict=True):
        a.pop("elapsed_secs"), b.pop("elapsed_secs")  # the loop's wall clock
        assert a == b
    assert (tmp_path / "b" / "metrics.jsonl").read_text() == straight_metrics

    # A finished run started again only reports its result.
    kind = FakeKind(script)
    again, lines, _ = _run(config, kind)
    assert kind.runs == [] and "all 3 experiments were done" in lines[0]
    assert again["best_algorithm"] == straight["best_algorithm"]


def test_a_stop_request_saves_the_checkpoint_and_reports_the_best_so_far(tmp_path,
                                                                         monkeypatch):
    monkeypatch.setattr(experiment, "evaluate_on_tasks", _no_evaluation)
    kind = FakeKind([0.4, 0.9])
    config = _config(tmp_path, max_experiments=2)
    summary, lines, _ = _run(config, kind,
                             should_stop=lambda: bool(kind.runs) and kind.runs[-1][0] == 1)
    assert summary["interrupted"] and summary["num_experiments"] == 1
    assert summary["best_algorithm"] == format_algorithm(generator.linear_model(0.25))
    assert "Interrupted: checkpoint saved." in lines and summary["final_fitness"] is None
    state, _ = checkpoint_lib.load(os.path.join(config.checkpoint_dir, "checkpoint.npz"))
    assert state["experiment"] == {"steps": 1} and state["current"] is not None
    summary, _, _ = _run(config, FakeKind([0.4, 0.9]))
    assert summary["num_experiments"] == 2 and summary["best_select_fitness"] == 0.9


def test_a_checkpoint_of_the_other_kind_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(experiment, "evaluate_on_tasks", _no_evaluation)
    config = _config(tmp_path, max_experiments=1)
    _run(config, FakeKind([0.5]))
    with pytest.raises(CheckpointError, match=r"holds a single-population run "
                                              r"\(checkpoint\.npz\); resume it without island "
                                              r"flags, or use another --checkpoint_dir") as error:
        _run(config, FakeKind([0.5], name="islands"))
    assert "\n" not in str(error.value)


def test_checkpoints_of_the_loops_before_the_one_runner_are_refused_in_one_line(tmp_path):
    config = _config(tmp_path)
    old_islands = os.path.join(config.checkpoint_dir, "islands_run.json")
    os.makedirs(config.checkpoint_dir)
    with open(old_islands, "w") as handle:
        json.dump({"random_seed": 11, "num_experiments": 0}, handle)
    with pytest.raises(CheckpointError) as error:
        experiment.run_experiments(config, log=lambda line: None)
    assert str(error.value) == (f"{old_islands}: an islands run of an older azero_jax (its "
                                "loop state is no longer read); start over with another "
                                "--checkpoint_dir")
    os.remove(old_islands)
    path = os.path.join(config.checkpoint_dir, "checkpoint.npz")
    # What the single-population loop wrote before: no kind, a config digest, "search".
    checkpoint_lib.save(path, {"random_seed": 11, "num_experiments": 0, "config_digest": "x",
                               "search": None, "current": None, "finished": False}, {})
    with pytest.raises(CheckpointError) as error:
        experiment.run_experiments(config, log=lambda line: None)
    assert str(error.value) == (f"{path}: written by an older azero_jax (no experiment_kind "
                                "field); it cannot be resumed: start over with another "
                                "--checkpoint_dir")


@pytest.mark.parametrize("with_islands", [False, True])
def test_both_kinds_run_through_the_one_loop_and_checkpoint(tmp_path, with_islands):
    from azero_jax import islands as islands_lib
    islands = islands_lib.IslandsConfig(num_islands=2, migration_interval=20) \
        if with_islands else None
    config = _config(tmp_path, max_experiments=2, max_individuals=40,
                     final_tasks=(task_spec(num_tasks=1),), checkpoint_every_secs=30.0)
    lines = []
    summary = experiment.run_experiments(config, lines.append, islands=islands)
    kind = "islands" if with_islands else "single"
    assert summary["kind"] == kind and summary["num_experiments"] == 2
    assert summary["final_fitness"] is not None
    state, _ = checkpoint_lib.load(os.path.join(config.checkpoint_dir, "checkpoint.npz"))
    assert state[run_checks.KIND_FIELD] == kind and state["finished"]
    records = summary["experiments"]
    assert [r["experiment"] for r in records] == [0, 1]
    common = {"search_fitness", "select_fitness", "individuals", "train_steps",
              "search_elapsed_secs", "elapsed_secs", "algorithm"}
    assert all(common <= set(r) for r in records)
    if with_islands:
        # Each experiment's islands checkpointed in their own folder; ranked on T_select.
        assert {"experiment_0", "experiment_1"} <= set(os.listdir(config.checkpoint_dir))
        assert all({"islands", "migrations", "restarts", "server"} <= set(r) for r in records)
        assert all(r["select_fitness"] == r["rank_fitness"] for r in records)
        assert summary["islands"]["num_islands"] == 2
        assert any("(island " in line for line in lines)
    else:
        assert all({"fec_hit_rate", "budget_rejections", "hurdles"} <= set(r) for r in records)
    again_lines = []
    again = experiment.run_experiments(config, again_lines.append, islands=islands)
    assert "all 2 experiments were done" in again_lines[0]
    assert again["final_fitness"] == summary["final_fitness"]
    # The other kind is refused in one line.
    other = None if with_islands else islands_lib.IslandsConfig(num_islands=2)
    with pytest.raises(CheckpointError, match="holds an islands run" if with_islands
                       else "holds a single-population run"):
        experiment.run_experiments(config, lambda line: None, islands=other)


def test_stop_search_fitness_ends_an_experiment_early_but_normally():
    """Not an interruption: the candidate is evaluated on T_select and the loop goes on."""
    budget = small_spec(population_size=8, max_train_steps=20000)  # ~330 individuals
    lines = []
    summary = experiment.run_experiments(
        _config(search=budget, max_experiments=2, stop_search_fitness=0.0), lines.append)
    assert not summary["interrupted"] and summary["num_experiments"] == 2
    for record in summary["experiments"]:
        assert record["search_fitness"] > 0.0 and record["individuals"] < 100
        assert record["select_fitness"] is not None
    assert lines.count("Experiment done. Retrieving candidate algorithm.") == 2
    assert not any(line.startswith("Interrupted") for line in lines)
