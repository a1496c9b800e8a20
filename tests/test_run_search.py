"""Tests of the run_search_experiment binary and the experiments loop, in subprocesses."""

import json
import os
import subprocess
import sys

from search_helpers import kill_when_then_resume

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = (sys.executable, "-m", "azero_jax.cli.run_search_experiment")
SPECS = os.path.join(ROOT, "azero_jax", "specs")

SEARCH = open(os.path.join(SPECS, "linear_search.textproto")).read().replace(
    "population_size: 1000", "population_size: 60").replace(
    "max_train_steps: 100000000", "max_train_steps: 1500000").replace(
    "progress_every: 10000", "progress_every: 600")
SELECT = """tasks { scalar_linear_regression_task {} features_size: 4 num_train_examples: 300
  num_valid_examples: 50 num_tasks: 5 eval_type: RMS_ERROR }"""


def _flags(tmp, name, extra=()):
    out = os.path.join(tmp, name)
    return [*BINARY, f"--search_experiment_spec={SEARCH}",
            f"--select_tasks={SELECT}", f"--final_tasks={SELECT}", "--random_seed=77",
            "--max_experiments=2", "--max_scalar_addresses=4", "--max_vector_addresses=3",
            "--max_matrix_addresses=1", "--backend=cpu", "--child_batch_size=20",
            f"--output_dir={out}", f"--metrics_log={out}/metrics.jsonl", *extra], out


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _summary(out):
    with open(os.path.join(out, "summary.json")) as handle:
        return json.load(handle)


def test_run_then_kill_and_resume(tmp_path):
    tmp = str(tmp_path)
    command, out = _flags(tmp, "straight")
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "Random seed = 77"
    progress = [l for l in lines if l.startswith("indivs=")]
    assert progress and progress[0].startswith("indivs=60, elapsed_secs=")
    assert ", mean=" in progress[0] and ", best fit=" in progress[0] and "fec_hit_rate=" in progress[0]
    assert any(l.startswith("Final evaluation fitness (on unseen data) = ") for l in lines)
    straight = _summary(out)
    assert straight["num_experiments"] == 2
    metrics = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    assert {"individuals", "elapsed_secs", "train_steps", "mean_fitness", "stdev_fitness",
            "best_fitness", "fec_hit_rate", "hurdle", "individuals_per_sec",
            "train_steps_per_sec"} <= set(metrics[0])

    ckpt = os.path.join(tmp, "ckpt")
    command, out = _flags(tmp, "killed", ["--checkpoint_dir=" + ckpt, "--checkpoint_every_secs=0"])
    path = os.path.join(ckpt, "checkpoint.json")

    def checkpointed_200():
        with open(path) as handle:
            state = json.load(handle)
        return bool(state.get("experiment")) and state["experiment"]["num_individuals"] >= 200

    resumed = kill_when_then_resume(command, _env(), checkpointed_200, timeout=120)
    assert "Resumed from" in resumed.stdout
    again = _summary(out)
    for key in ("best_select_fitness", "final_fitness", "best_algorithm", "num_experiments"):
        assert again[key] == straight[key], key
    for a, b in zip(again["experiments"], straight["experiments"]):
        assert (a["individuals"], a["train_steps"], a["search_fitness"]) == \
            (b["individuals"], b["train_steps"], b["search_fitness"])
    # The progress records redone after the checkpoint are not logged twice.
    resumed_metrics = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    assert [(m["experiment"], m["individuals"]) for m in resumed_metrics] == \
        [(m["experiment"], m["individuals"]) for m in metrics]


def test_unknown_spec_field_is_a_usage_error(tmp_path):
    command, _ = _flags(str(tmp_path), "bad")
    command[len(BINARY)] = "--search_experiment_spec=" + SEARCH + " max_individuals: 5"
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=60)
    assert done.returncode != 0
    assert "max_individuals" in done.stderr


def test_default_flags_are_the_demo():
    from absl import flags
    from azero_jax.cli import run_search_experiment as binary
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["run_search_experiment"])
    config = binary.config_from_flags()
    assert (config.memory.num_scalars, config.memory.num_vectors, config.memory.num_matrices) == (4, 3, 1)
    assert config.random_seed == binary.DEMO_SEED and config.max_experiments == 0
    assert config.randomize_task_seeds and config.sufficient_fitness == 0.9999
    assert config.search.population_size == 1000 and config.backend == "auto"
    assert len(config.final_tasks) == 1 and config.final_tasks[0].num_tasks == 100


def test_hurdles_flag_is_the_spec_parser():
    from absl import flags
    from azero_jax.cli import run_search_experiment as binary
    from azero_jax.spec.search_spec import parse_hurdles
    for text in ("num_tasks: 1 percentile: 50", ""):
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["run_search_experiment", f"--hurdles={text}"])
        assert binary.config_from_flags().hurdles == parse_hurdles(text)
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["run_search_experiment"])
    assert binary.config_from_flags().hurdles is None
