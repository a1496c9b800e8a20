"""Probes of user mistakes: each bad input gives exit status 2 and one line naming it.

The binaries are the interface, so most probes run them in subprocesses (in parallel,
once per module: each pays the ~3 s import) and assert the exit status, a single
``error: ...`` line naming the problem, no traceback, and that files which existed
before are byte for byte unchanged. The library-level checks (task data, labels,
memory fit, parser, permissions, deferred signals) are tested in process. The kill
tests (SIGTERM / double SIGINT during a run and a save, islands resumes, two runs on
one folder) are marked ``slow``.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from azero_jax.backends import evaluator
from azero_jax.core import errors
from azero_jax.core.errors import AzeroError, CheckpointError, ConfigError, DataError
from azero_jax.core.program import ParseError, parse_algorithm
from azero_jax.core.tasks import Task
from azero_jax.datasets import errors as dataset_errors
from azero_jax.evolution import checkpoint, run_checks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEARCH_BIN = ("-m", "azero_jax.cli.run_search_experiment")
FINAL_BIN = ("-m", "azero_jax.cli.final_evaluation")
GENERATE = ["-m", "azero_jax.datasets.generate"]

SEARCH = """search_tasks { tasks { scalar_linear_regression_task {} features_size: 4
  num_train_examples: 20 num_valid_examples: 10 num_tasks: 2 eval_type: RMS_ERROR } }
setup_ops: [SCALAR_CONST_SET_OP] predict_ops: [VECTOR_INNER_PRODUCT_OP]
learn_ops: [SCALAR_DIFF_OP, SCALAR_PRODUCT_OP, SCALAR_VECTOR_PRODUCT_OP, VECTOR_SUM_OP]
setup_size_init: 5 predict_size_init: 1 learn_size_init: 4
population_size: 12 tournament_size: 4 initial_population: RANDOM_ALGORITHM
max_train_steps: 6000 progress_every: 100
allowed_mutation_types { mutation_types: [ALTER_PARAM_MUTATION_TYPE,
  RANDOMIZE_INSTRUCTION_MUTATION_TYPE] }
"""
SELECT = """tasks { scalar_linear_regression_task {} features_size: 4 num_train_examples: 20
  num_valid_examples: 10 num_tasks: 2 eval_type: RMS_ERROR }"""
MEMORY_FLAGS = ["--max_scalar_addresses=4", "--max_vector_addresses=3",
                "--max_matrix_addresses=1"]


def env():
    out = dict(os.environ, JAX_PLATFORMS="cpu")
    out["PYTHONPATH"] = ROOT + os.pathsep + out.get("PYTHONPATH", "")
    return out


def run(args, timeout=120, **kwargs):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env(),
                          timeout=timeout, cwd=ROOT, **kwargs)


def assert_user_error(done, *needles):
    """Exit status 2, one ``error:`` line on stderr holding every needle, no traceback."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def snapshot(paths):
    """Bytes of every file under ``paths`` (to show that a refused run changed nothing).

    The lock file is left out: taking the lock is how a run learns the folder is free.
    """
    out = {}
    for path in paths:
        for folder, _, names in os.walk(path) if os.path.isdir(path) else [("", [], [path])]:
            for name in names:
                if name == run_checks.LOCK_NAME:
                    continue
                full = os.path.join(folder, name)
                with open(full, "rb") as handle:
                    out[full] = handle.read()
    return out


def write(path, text):
    with open(path, "w") as handle:
        handle.write(text)
    return str(path)


# --------------------------------------------------------------------------------------
# Subprocess probes, run once in parallel.


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probes")
    spec = write(tmp / "search.textproto", SEARCH)
    select = write(tmp / "select.textproto", SELECT)
    base = [*SEARCH_BIN, f"--select_tasks={select}", f"--final_tasks={select}", "--backend=cpu",
            "--random_seed=3", *MEMORY_FLAGS]

    def spec_with(old, new):
        assert old in SEARCH
        return "--search_experiment_spec=" + write(tmp / f"spec{abs(hash(new))}.textproto",
                                                  SEARCH.replace(old, new))

    a_file = write(tmp / "a_file.txt", "keep me\n")
    corrupt = tmp / "corrupt_ckpt"
    corrupt.mkdir()
    write(corrupt / "checkpoint.npz", "not a zip")
    islands_folder = tmp / "islands_folder"
    islands_folder.mkdir()
    write(islands_folder / "islands_run.json", json.dumps({"random_seed": 3,
                                                           "num_experiments": 0}))
    old_single = tmp / "old_single"  # a checkpoint of the loop before the one runner
    checkpoint.save(str(old_single / "checkpoint.npz"),
                    {"random_seed": 3, "num_experiments": 0, "config_digest": "0" * 16,
                     "search": None, "current": None, "finished": False}, {})
    bad_cifar = tmp / "bad_cifar"
    bad_cifar.mkdir()
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (bad_cifar / name).write_bytes(b"\x00" * 3000)  # not a multiple of 3073
    np.savez(tmp / "empty.npz", x_train=np.zeros((0, 4)), y_train=np.zeros(0, np.int64))
    overflow = write(tmp / "overflow.txt", "def Setup():\n  s99999999999999999999 = s1 + s2\n"
                                           "def Predict():\ndef Learn():\n")
    projected = tmp / "projected.textproto"
    write(projected, SEARCH.replace(
        "scalar_linear_regression_task {} features_size: 4\n  num_train_examples: 20 "
        "num_valid_examples: 10 num_tasks: 2 eval_type: RMS_ERROR",
        f'projected_binary_classification_task {{ dataset_name: "cifar10" '
        f'path: "{tmp}/no_such_folder" }} features_size: 4 num_train_examples: 20 '
        f'num_valid_examples: 10 num_tasks: 1 eval_type: ACCURACY'))
    spec_flag = f"--search_experiment_spec={spec}"
    cases = {
        # run_search_experiment: specs and flags
        "features_size_0": ([*base, spec_with("features_size: 4", "features_size: 0")],
                            ["features_size must be >= 1"]),
        "features_size_huge": ([*base, spec_with("features_size: 4", "features_size: 100000")],
                               ["features_size 100000"]),
        "population_huge": ([*base, spec_with("population_size: 12",
                                              "population_size: 1000000000"),
                             "--max_individuals=100"], ["GiB of memory", "population"]),
        "empty_op_lists": ([*base, spec_with(
            "setup_ops: [SCALAR_CONST_SET_OP] predict_ops: [VECTOR_INNER_PRODUCT_OP]\n"
            "learn_ops: [SCALAR_DIFF_OP, SCALAR_PRODUCT_OP, SCALAR_VECTOR_PRODUCT_OP, "
            "VECTOR_SUM_OP]", "setup_ops: [] predict_ops: [] learn_ops: []")],
                           ["are all empty"]),
        "memory_too_small": ([*base, spec_flag, "--max_vector_addresses=1"],
                             ["1 V addresses", "--max_vector_addresses"]),
        "spec_file_missing": ([*base, f"--search_experiment_spec={tmp}/nope.textproto"],
                              ["nope.textproto", "no such file"]),
        "spec_file_is_folder": ([*base, f"--search_experiment_spec={tmp}"], ["is a folder"]),
        "select_missing": ([*SEARCH_BIN, spec_flag, "--backend=cpu"],
                           ["--select_tasks and --final_tasks are required"]),
        "hurdles_garbage": ([*base, spec_flag, "--hurdles=foo bar"], ["hurdles", "'foo'"]),
        "hurdles_too_many_tasks": ([*base, spec_flag, "--hurdles=num_tasks: 5"],
                                   ["hurdles.num_tasks is 5", "only 2 tasks"]),
        "islands_config_missing": ([*base, spec_flag, f"--islands_config={tmp}/none.json"],
                                   ["--islands_config", "no such file"]),
        "output_dir_is_file": ([*base, spec_flag, f"--output_dir={a_file}"],
                               ["--output_dir", "is a file"]),
        "metrics_log_is_folder": ([*base, spec_flag, f"--metrics_log={tmp}"],
                                  ["--metrics_log", "is a folder"]),
        "checkpoint_dir_under_file": ([*base, spec_flag, f"--checkpoint_dir={a_file}/sub"],
                                      ["--checkpoint_dir", "is a file"]),
        "corrupt_checkpoint": ([*base, spec_flag, f"--checkpoint_dir={corrupt}"],
                               ["checkpoint.npz", "not an azero_jax checkpoint"]),
        "old_islands_folder": ([*base, spec_flag, f"--checkpoint_dir={islands_folder}"],
                               ["islands_run.json", "older azero_jax",
                                "another --checkpoint_dir"]),
        "old_single_checkpoint": ([*base, spec_flag, f"--checkpoint_dir={old_single}"],
                                  ["checkpoint.npz", "older azero_jax",
                                   "another --checkpoint_dir"]),
        "projected_folder_missing": ([*base, f"--search_experiment_spec={projected}"],
                                     ["no_such_folder"]),
        # final_evaluation
        "algorithm_missing": ([*FINAL_BIN, f"--algorithm_file={tmp}/none.txt"],
                              ["--algorithm_file", "no such file"]),
        "algorithm_overflow": ([*FINAL_BIN, f"--algorithm_file={overflow}"],
                               ["line 2", "address out of range"]),
        "num_seeds_0": ([*FINAL_BIN, "--num_seeds=0"], ["--num_seeds must be >= 1"]),
        "corrupt_cifar": ([*FINAL_BIN, "--dataset=cifar10", f"--dataset_dir={bad_cifar}"],
                          ["data_batch_1.bin", "truncated or malformed"]),
        "empty_npz": ([*FINAL_BIN, f"--dataset={tmp}/empty.npz"], ["empty.npz", "empty"]),
        "bad_pairs": ([*FINAL_BIN, "--pairs=3-3"], ["--pairs"]),
        # datasets.generate
        "generate_corrupt_cifar": ([*GENERATE, "--dataset_name=cifar10",
                                    f"--dataset_dir={bad_cifar}", f"--data_dir={tmp}/gen"],
                                   ["data_batch_1.bin", "truncated or malformed"]),
        "generate_missing_mnist": ([*GENERATE, "--dataset_name=mnist",
                                    f"--dataset_dir={tmp}/none", f"--data_dir={tmp}/gen"],
                                   ["none", "no such folder"]),
        "generate_zero_examples": ([*GENERATE, "--num_train_examples=0"],
                                   ["--num_train_examples must be >= 1"]),
        "generate_data_dir_is_file": ([*GENERATE, "--dataset_name=digits",
                                       f"--data_dir={a_file}"], ["--data_dir", "is a file"]),
    }
    kept = [a_file, str(corrupt), str(islands_folder), str(old_single)]
    before = snapshot(kept)
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(run, args) for name, (args, _) in cases.items()}
        results = {name: (future.result(), cases[name][1]) for name, future in futures.items()}
    results["__unchanged__"] = before == snapshot(kept)
    return results


PROBES = ["features_size_0", "features_size_huge", "population_huge", "empty_op_lists",
          "memory_too_small",
          "spec_file_missing", "spec_file_is_folder", "select_missing", "hurdles_garbage",
          "hurdles_too_many_tasks", "islands_config_missing", "output_dir_is_file",
          "metrics_log_is_folder", "checkpoint_dir_under_file", "corrupt_checkpoint",
          "old_islands_folder", "old_single_checkpoint", "projected_folder_missing",
          "algorithm_missing",
          "algorithm_overflow", "num_seeds_0", "corrupt_cifar", "empty_npz", "bad_pairs",
          "generate_corrupt_cifar", "generate_missing_mnist", "generate_zero_examples",
          "generate_data_dir_is_file"]


@pytest.mark.parametrize("name", PROBES)
def test_binary_reports_user_error_in_one_line(probes, name):
    done, needles = probes[name]
    assert_user_error(done, *needles)


def test_refused_runs_leave_existing_files_alone(probes):
    assert probes["__unchanged__"]


def test_a_bug_still_shows_its_traceback(tmp_path):
    script = textwrap.dedent("""
        from azero_jax.core.errors import run_main
        def main(argv):
            raise RuntimeError("a genuine bug")
        run_main(main)
    """)
    done = run(["-c", script])
    assert done.returncode == 1 and "Traceback" in done.stderr and "a genuine bug" in done.stderr


# --------------------------------------------------------------------------------------
# The checkpoint folder: lock, resume checks, finished runs.


def _search_command(tmp, *extra):
    spec = write(tmp / "search.textproto", SEARCH)
    select = write(tmp / "select.textproto", SELECT)
    return [*SEARCH_BIN, f"--search_experiment_spec={spec}", f"--select_tasks={select}",
            f"--final_tasks={select}", "--backend=cpu", "--random_seed=3", *MEMORY_FLAGS,
            *extra]


def test_locked_checkpoint_folder_is_refused_naming_the_holder(tmp_path):
    folder = tmp_path / "ckpt"
    with run_checks.FolderLock(str(folder)):
        done = run(_search_command(tmp_path, f"--checkpoint_dir={folder}"))
    assert_user_error(done, "in use by another run", f"pid {os.getpid()}")
    assert not (folder / "checkpoint.npz").exists()


def test_single_run_resume_checks_and_finished_run_reports_again(tmp_path):
    folder, out = tmp_path / "ckpt", tmp_path / "out"
    command = _search_command(tmp_path, f"--checkpoint_dir={folder}", f"--output_dir={out}")
    first = run(command)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    before = snapshot([str(folder)])
    changed = run([c.replace("--max_vector_addresses=3", "--max_vector_addresses=4")
                   for c in command])
    assert_user_error(changed, "max_vector_addresses differs")
    islands = run(command + ["--num_islands=2"])
    assert_user_error(islands, "holds a single-population run")
    assert snapshot([str(folder)]) == before
    again = run(command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "all 1 experiments were done" in again.stdout
    assert "indivs=" not in again.stdout  # reported, not run again
    repeat = json.loads((out / "summary.json").read_text())
    assert repeat["final_fitness"] == summary["final_fitness"]
    assert repeat["best_algorithm"] == summary["best_algorithm"]


# --------------------------------------------------------------------------------------
# In process: task data, labels, memory fit, parser, permissions, signals.


def _xy(n=6, F=3):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, F)), rng.normal(size=n)


@pytest.mark.parametrize("where", ["x_train", "y_valid", "y_train_inf"])
def test_non_finite_task_data_is_refused_unless_allowed(where):
    x, y = _xy()
    xv, yv = x.copy(), y.copy()
    if where == "x_train":
        x = x.copy()
        x[2, 1] = np.nan
    elif where == "y_valid":
        yv[4] = np.nan
    else:
        y = y.copy()
        y[0] = np.inf
    name = where.replace("_inf", "")
    with pytest.raises(DataError, match=f"{name} has 1 NaN or infinite values.*allow_nonfinite"):
        Task.from_arrays(x, y, xv, yv)
    assert Task.from_arrays(x, y, xv, yv, allow_nonfinite=True).num_train == 6


@pytest.mark.parametrize("labels", [np.arange(6) % 10, np.array([1, -1, 1, -1, 1, -1])])
def test_accuracy_labels_must_be_zero_or_one(labels):
    x, _ = _xy()
    with pytest.raises(DataError, match="accuracy labels must be 0 or 1"):
        Task.from_arrays(x, labels, x, labels % 2, eval_type="accuracy")
    Task.from_arrays(x, labels % 2 != 0, x, labels % 2 != 0, eval_type="accuracy")


def test_vector_labels_must_be_one_hot_and_fit_memory_on_every_backend():
    x, _ = _xy(6, 4)
    onehot = np.eye(3)[np.arange(6) % 3]
    with pytest.raises(DataError, match="one-hot"):
        Task(x, onehot * 2, x, onehot, eval_type="accuracy")
    with pytest.raises(DataError, match="vector labels need eval_type 'accuracy'"):
        Task(x, onehot, x, onehot)
    task = Task(x, onehot, x, onehot, eval_type="accuracy")
    from azero_jax.core.generator import linear_model
    for backend in ("jax", "cpu"):  # refused before any backend is imported or run
        with pytest.raises(ConfigError, match="num_vectors must be >= 3, got 1"):
            evaluator.evaluate([linear_model(0.1)], [task], num_scalars=4, num_vectors=1,
                               num_matrices=1, backend=backend)


def test_overflowing_address_is_a_parse_error():
    with pytest.raises(ParseError, match="line 2: address out of range"):
        parse_algorithm("def Setup():\n s99999999999999999999 = s1 + s2\ndef Predict():\n"
                        "def Learn():\n")


def test_unreadable_folder_reads_as_permission_denied(tmp_path, monkeypatch):
    # Tests run as root in CI, where chmod hides nothing: deny access the way the OS would.
    folder = tmp_path / "data"
    folder.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if os.fspath(p) == str(folder)
                        else real(p, mode))
    with pytest.raises(dataset_errors.DatasetError, match="permission denied"):
        dataset_errors.require_folder(folder, "the MNIST files")
    with pytest.raises(dataset_errors.DatasetError, match="permission denied"):
        dataset_errors.require_file(folder / "train.bin")


def test_read_only_output_folder_is_refused_before_the_run(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(run_checks.tempfile, "TemporaryFile", denied)
    with pytest.raises(ConfigError, match=r"--checkpoint_dir=.*cannot write in .*permission"):
        run_checks.check_writable_folder(str(tmp_path / "ckpt"), "--checkpoint_dir")


def test_memory_estimate_counts_population_tasks_and_evaluations():
    from azero_jax.spec.search_spec import parse_search_experiment_spec
    spec = parse_search_experiment_spec(SEARCH)
    memory = evaluator.MemoryConfig(4, 3, 1)
    estimate = run_checks.estimate_memory(spec, memory)
    assert estimate["total"] == estimate["population"] + estimate["tasks"] + estimate["evaluator"]
    bigger = run_checks.estimate_memory(spec.replace(population_size=1200), memory)
    assert bigger["population"] == 100 * estimate["population"]
    with pytest.raises(ConfigError, match=r"needs about .* GiB .* more than the 0\.0 GiB"):
        run_checks.check_memory(spec, memory, available=1000)


def test_jax_evaluations_are_checked_against_the_accelerator(monkeypatch):
    from azero_jax.spec.search_spec import parse_search_experiment_spec
    spec = parse_search_experiment_spec(SEARCH.replace("features_size: 4", "features_size: 2000"))
    memory = evaluator.MemoryConfig(4, 3, 1)
    host = 512 * 1024**2  # less than the evaluations need, more than the rest
    monkeypatch.setattr(run_checks, "accelerator_memory_bytes", lambda: 80 * 1024**3)
    estimate = run_checks.check_memory(spec, memory, backend="jax", available=host)
    assert estimate["evaluator"] > host > estimate["total"] - estimate["evaluator"]
    monkeypatch.setattr(run_checks, "accelerator_memory_bytes", lambda: host)
    with pytest.raises(ConfigError, match=r"accelerator memory .* more than its 0\.5 GiB"):
        run_checks.check_memory(spec, memory, backend="jax", available=host)
    monkeypatch.setattr(run_checks, "accelerator_memory_bytes", lambda: None)  # JAX on a CPU
    with pytest.raises(ConfigError, match=r"more than the 0\.5 GiB available"):
        run_checks.check_memory(spec, memory, backend="jax", available=host)


def test_full_disk_is_a_user_error_in_one_line_and_a_bug_is_not():
    import errno
    full = OSError(errno.ENOSPC, "No space left on device", "/data/ckpt/.ckpt-1.npz")
    assert errors.is_user_error(full)
    assert errors.one_line(full) == "No space left on device: /data/ckpt/.ckpt-1.npz"
    assert errors.one_line(ConfigError("first\nsecond")) == "first; second"
    assert not errors.is_user_error(KeyError("x")) and not errors.is_user_error(
        OSError(errno.EBADF, "Bad file descriptor"))


def test_errors_share_one_base_class_and_stay_value_errors():
    for cls in (ConfigError, DataError, CheckpointError, ParseError,
                dataset_errors.DatasetError):
        assert issubclass(cls, AzeroError) and issubclass(cls, ValueError)
    assert issubclass(dataset_errors.DatasetNotFoundError, FileNotFoundError)


def test_signals_are_deferred_until_the_save_is_done(tmp_path):
    received = []
    previous = signal.signal(signal.SIGTERM, lambda *a: received.append("term"))
    path = str(tmp_path / "c.npz")
    try:
        with checkpoint.signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert received == []  # held back
            checkpoint.save(path, {"step": 1}, {"x": np.arange(3)})
        assert received == ["term"]  # delivered once the block is done
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert checkpoint.load(path)[0]["step"] == 1


# --------------------------------------------------------------------------------------
# Kill tests (slow): real signals, islands resumes, two runs on one folder.

LONG = SEARCH.replace("max_train_steps: 6000", "max_train_steps: 100000000")


def _long_command(tmp, *extra):
    spec = write(tmp / "long.textproto", LONG)
    select = write(tmp / "select.textproto", SELECT)
    return [*SEARCH_BIN, f"--search_experiment_spec={spec}", f"--select_tasks={select}",
            f"--final_tasks={select}", "--backend=cpu", "--random_seed=3", *MEMORY_FLAGS,
            *extra]


def _start_and_wait_for_progress(command, prefix="indivs="):
    """Starts the binary; returns it once it printed a line starting with ``prefix``."""
    process = subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env(), cwd=ROOT)
    deadline = time.time() + 60
    for line in process.stdout:
        if line.startswith(prefix) or time.time() > deadline:
            break
    return process


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_stops_cleanly_with_checkpoint_and_best_algorithm(tmp_path, sig):
    folder, out = tmp_path / "ckpt", tmp_path / "out"
    command = _long_command(tmp_path, f"--checkpoint_dir={folder}", f"--output_dir={out}",
                            "--checkpoint_every_secs=1000")
    process = _start_and_wait_for_progress(command)
    time.sleep(0.5)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-3000:]
    assert "Interrupted: checkpoint saved." in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["best_algorithm"].startswith("def Setup():")
    state, _ = checkpoint.load(str(folder / "checkpoint.npz"))
    assert state["experiment"]["num_individuals"] > 0


_SLOW_SAVE = textwrap.dedent("""
    import os, runpy, signal, sys
    from azero_jax.evolution import checkpoint
    save, calls = checkpoint._save, []
    def slow_save(path, state, arrays):
        calls.append(path)
        if len(calls) == 1:  # the signals arrive in the middle of the first save
            for _ in range({count}):
                os.kill(os.getpid(), signal.{sig})
        save(path, state, arrays)
    checkpoint._save = slow_save
    _, _, module, *rest = sys.argv  # -c, then the binary's command: -m <module> <flags>
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
""")


@pytest.mark.slow
def test_double_ctrl_c_during_a_save_keeps_the_checkpoint(tmp_path):
    folder = tmp_path / "ckpt"
    command = _long_command(tmp_path, f"--checkpoint_dir={folder}", "--checkpoint_every_secs=0")
    done = run(["-c", _SLOW_SAVE.format(count=2, sig="SIGINT"), *command])
    assert done.returncode == 130 and "error: interrupted" in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    # The first save completed although both Ctrl-Cs came in its middle.
    state, _ = checkpoint.load(str(folder / "checkpoint.npz"))
    resumed = _start_and_wait_for_progress(command, prefix="Resumed from")
    resumed.send_signal(signal.SIGTERM)
    _, stderr = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, stderr[-3000:]


@pytest.mark.slow
def test_sigterm_during_a_save_finishes_it_then_stops(tmp_path):
    folder, out = tmp_path / "ckpt", tmp_path / "out"
    command = _long_command(tmp_path, f"--checkpoint_dir={folder}", f"--output_dir={out}",
                            "--checkpoint_every_secs=0")
    done = run(["-c", _SLOW_SAVE.format(count=1, sig="SIGTERM"), *command])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Interrupted: checkpoint saved." in done.stdout
    assert json.loads((out / "summary.json").read_text())["best_algorithm"]
    checkpoint.load(str(folder / "checkpoint.npz"))


@pytest.mark.slow
def test_double_ctrl_c_during_a_run_leaves_the_last_checkpoint_intact(tmp_path):
    folder = tmp_path / "ckpt"
    command = _long_command(tmp_path, f"--checkpoint_dir={folder}", "--checkpoint_every_secs=0")
    process = _start_and_wait_for_progress(command)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode in (0, 130), stderr[-3000:]
    assert "Traceback" not in stderr
    checkpoint.load(str(folder / "checkpoint.npz"))


@pytest.mark.slow
def test_two_runs_on_one_folder(tmp_path):
    folder = tmp_path / "ckpt"
    command = _long_command(tmp_path, f"--checkpoint_dir={folder}")
    first = _start_and_wait_for_progress(command)
    try:
        second = run(command)
        assert_user_error(second, "in use by another run", f"pid {first.pid}")
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 0


ISLANDS = ["--num_islands=2", "--migration_interval=40"]


@pytest.mark.slow
@pytest.mark.parametrize("change, named", [
    (["--random_seed=4"], "--random_seed=3"),
    (["--num_islands=3"], "islands.num_islands"),
    (["--migration_fraction=0.25"], "islands.migration_fraction"),
    (["--migration_interval=0"], "islands.migration_interval"),
    (["--max_vector_addresses=4"], "max_vector_addresses"),
    (["--hurdles=num_tasks: 1"], "search_experiment_spec.hurdles"),
    (["--sufficient_fitness=0.5"], "sufficient_fitness"),
    (["--search_experiment_spec=MUTATE_PROB"], "search_experiment_spec.mutate_prob"),
])
def test_islands_resume_refuses_each_changed_setting(tmp_path, change, named):
    folder, out = tmp_path / "ckpt", tmp_path / "out"
    command = _search_command(tmp_path, *ISLANDS, f"--checkpoint_dir={folder}",
                              f"--output_dir={out}")
    other_spec = write(tmp_path / "other.textproto", SEARCH + "mutate_prob: 0.5\n")
    change = [c.replace("MUTATE_PROB", other_spec) for c in change]
    first = run(command)
    assert first.returncode == 0, first.stderr[-3000:]
    before = snapshot([str(folder)])
    flags = [c for c in command if not any(c.startswith(x.split("=")[0] + "=") for x in change)]
    assert_user_error(run(flags + change), named)
    assert snapshot([str(folder)]) == before


@pytest.mark.slow
def test_finished_islands_run_reports_again_and_other_mode_is_refused(tmp_path):
    folder, out = tmp_path / "ckpt", tmp_path / "out"
    command = _search_command(tmp_path, *ISLANDS, f"--checkpoint_dir={folder}",
                              f"--output_dir={out}")
    first = run(command)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    again = run(command)
    assert again.returncode == 0 and "all 1 experiments were done" in again.stdout
    assert json.loads((out / "summary.json").read_text())["final_fitness"] == \
        summary["final_fitness"]
    assert_user_error(run([c for c in command if c not in ISLANDS]), "holds an islands run")
