"""Islands across devices, processes and Ray; a killed worker is restarted from checkpoints.

The Ray test needs ``pip install 'ray[default]'`` and is marked slow (a local Ray start
takes ~20 s): run it with ``python -m pytest -m slow tests/test_islands_parallel.py``.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from azero_jax.evolution import checkpoint as checkpoint_lib
from azero_jax.islands import IslandsConfig, checkpointed_individuals, run_islands

from search_helpers import kill_when_then_resume
from test_islands import NONLINEAR_MEMORY, SPECS, nonlinear_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = (sys.executable, "-m", "azero_jax.cli.run_search_experiment")


def _env(**extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu", **extra)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


SHARDING_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, "tests")
    from search_helpers import MEMORY, small_spec
    from azero_jax import islands
    from azero_jax.backends.jax import jax_evaluator
    assert jax.local_device_count() == 4, jax.local_devices()
    spec = small_spec(population_size=16)
    out = {}
    for shard in (False, True):
        config = islands.IslandsConfig(num_islands=4, migration_interval=0, shard=shard)
        group = islands.IslandGroup(spec, islands.island_specs(config, spec, 5), config,
                                    memory=MEMORY, backend="jax", child_batch_size=16,
                                    evaluator_options={"dtype": "float32"})
        group.step()
        out[str(shard)] = np.concatenate([i.search.fitness for i in group.islands]).tolist()
        out["calls_" + str(shard)] = dict(group.calls)
    out["stats"] = {"calls": jax_evaluator.COUNTERS.sharded_calls,
                    "devices": jax_evaluator.COUNTERS.shard_devices}
    print(json.dumps(out))
""")


def test_batched_jax_islands_shard_over_four_host_devices():
    done = subprocess.run([sys.executable, "-c", SHARDING_SCRIPT], capture_output=True, text=True,
                          cwd=ROOT, timeout=240,
                          env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"))
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["stats"]["calls"] >= 1 and out["stats"]["devices"] == 4
    assert out["calls_True"] == {"full": 1}  # 4 islands x 16 children in one call
    np.testing.assert_allclose(out["True"], out["False"], rtol=0, atol=1e-5)
    assert len(out["True"]) == 64 and max(out["True"]) > 0


def test_processes_islands_find_the_solution():
    config = IslandsConfig(num_islands=4, migration_interval=100, parallel="processes",
                           num_workers=2, stop_search_fitness=0.99)
    result = run_islands(nonlinear_spec(), config, memory=NONLINEAR_MEMORY, seed=1,
                         backend="cpu", max_individuals=20000)
    assert result.fitness >= 0.99
    assert result.num_islands == 4 and result.migrations > 0 and result.restarts == 0
    assert result.server["exchanges"] >= result.migrations


def _nonlinear_flags(tmp, extra=()):
    search = open(os.path.join(SPECS, "nonlinear_search.textproto")).read().replace(
        "population_size: 1000", "population_size: 50")
    select = os.path.join(SPECS, "nonlinear_select.textproto")
    out = os.path.join(tmp, "out")
    return [*BINARY, f"--search_experiment_spec={search}",
            f"--select_tasks={select}", f"--final_tasks={select}", "--random_seed=11",
            "--max_experiments=1", "--max_scalar_addresses=10", "--max_vector_addresses=10",
            "--max_matrix_addresses=4", "--backend=cpu", f"--output_dir={out}", *extra], out


def test_killed_worker_restarts_from_its_island_checkpoints(tmp_path):
    tmp = str(tmp_path)
    ckpt = os.path.join(tmp, "ckpt")
    command, out = _nonlinear_flags(tmp, [
        "--num_islands=4", "--parallel=processes", "--migration_interval=200",
        "--max_individuals=1500", f"--checkpoint_dir={ckpt}", "--checkpoint_every_secs=0.2"])
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=_env())
    run_dir = os.path.join(ckpt, "experiment_0")
    victim = None
    deadline = time.time() + 90
    while time.time() < deadline and process.poll() is None:
        try:
            with open(os.path.join(run_dir, "workers.json")) as handle:
                workers = json.load(handle)
            # Worker 1 holds islands 1 and 3; kill it once island 3's checkpoint holds a
            # migration.
            with open(os.path.join(run_dir, "island_00003.json")) as handle:
                at_kill = json.load(handle)["island"]["migrations"]
            if at_kill >= 1:
                victim = workers["1"]["pid"]
                os.kill(victim, signal.SIGKILL)
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    stdout, stderr = process.communicate(timeout=180)
    assert victim is not None, "the worker never checkpointed"
    assert process.returncode == 0, stderr[-3000:]
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["islands"]["restarts"] == 1
    experiment = summary["experiments"][0]
    assert experiment["server"]["worker_restarts"] == {"0": 0, "1": 1}
    per_island = {i["island"]: i for i in experiment["islands"]}
    assert [per_island[k]["restarts"] for k in range(4)] == [0, 1, 0, 1]
    assert all(per_island[k]["individuals"] >= 1500 for k in range(4))
    assert per_island[3]["migrations"] > at_kill >= 1  # rejoined migration after the restart
    assert experiment["server"]["exchanges"] >= experiment["migrations"] > 0
    assert any("islands=4, migrations=" in line for line in stdout.splitlines())
    # Nothing lost: every island's final checkpoint is full and its counters consistent.
    for k in range(4):
        state, arrays = checkpoint_lib.load(os.path.join(run_dir, f"island_{k:05d}.npz"))
        births = arrays["birth"]
        assert len(set(births.tolist())) == 50 and births.min() >= 0
        assert births.max() < state["search"]["num_individuals"]
        assert state["search"]["num_individuals"] == per_island[k]["individuals"]
        assert len(checkpoint_lib.unpack_algorithms(arrays, "population")) == 50


@pytest.mark.slow
def test_ray_islands_find_the_solution_on_a_local_cluster():
    pytest.importorskip("ray")
    script = textwrap.dedent("""
        import json, sys
        sys.path.insert(0, "tests")
        from test_islands import NONLINEAR_MEMORY, nonlinear_spec
        from azero_jax.islands import IslandsConfig, run_islands
        if __name__ == "__main__":
            config = IslandsConfig(num_islands=4, migration_interval=100, parallel="ray",
                                   num_workers=2, stop_search_fitness=0.99)
            r = run_islands(nonlinear_spec(), config, memory=NONLINEAR_MEMORY, seed=1,
                            backend="cpu", max_individuals=20000)
            print(json.dumps({"fitness": r.fitness, "migrations": r.migrations,
                              "server": r.server, "islands": len(r.islands)}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["fitness"] >= 0.99 and out["islands"] == 4
    assert out["migrations"] > 0 and out["server"]["worker_restarts"] == {"0": 0, "1": 0}


@pytest.mark.slow
def test_ray_worker_killed_mid_run_is_restarted_and_rejoins(tmp_path):
    pytest.importorskip("ray")
    ckpt = str(tmp_path / "ckpt")
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, "tests")
        from test_islands import NONLINEAR_MEMORY, nonlinear_spec
        from azero_jax.islands import IslandsConfig, run_islands
        if __name__ == "__main__":
            config = IslandsConfig(num_islands=4, migration_interval=200, parallel="ray",
                                   num_workers=2, checkpoint_every_secs=0.2)
            r = run_islands(nonlinear_spec(), config, memory=NONLINEAR_MEMORY, seed=2,
                            backend="cpu", max_individuals=3000, checkpoint_dir={ckpt!r})
            print(json.dumps({{"restarts": r.restarts, "server": r.server,
                              "islands": r.islands, "migrations": r.migrations}}))
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env())
    victim = None
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        try:
            with open(os.path.join(ckpt, "workers.json")) as handle:
                workers = json.load(handle)
            # Kill worker 1 (islands 1 and 3) once island 3's checkpoint holds a migration.
            with open(os.path.join(ckpt, "island_00003.json")) as handle:
                at_kill = json.load(handle)["island"]["migrations"]
            if at_kill >= 1:
                victim = workers["1"]["pid"]
                os.kill(victim, signal.SIGKILL)
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    stdout, stderr = process.communicate(timeout=240)
    assert victim is not None, "the Ray worker never checkpointed"
    assert process.returncode == 0, stderr[-3000:]
    out = json.loads(stdout.strip().splitlines()[-1])
    assert out["restarts"] == 1 and out["server"]["worker_restarts"] == {"0": 0, "1": 1}
    per_island = {i["island"]: i for i in out["islands"]}
    assert [per_island[k]["restarts"] for k in range(4)] == [0, 1, 0, 1]
    assert all(per_island[k]["individuals"] >= 3000 for k in range(4))
    assert per_island[3]["migrations"] > at_kill >= 1  # rejoined migration after the restart
    assert out["migrations"] > 0


def test_killed_islands_run_resumes_loop_islands_and_server(tmp_path):
    """A whole batched islands run killed mid-experiment and started again with the same
    flags resumes its islands and migration server, and logs no progress record twice."""
    tmp = str(tmp_path)
    ckpt = os.path.join(tmp, "ckpt")
    metrics = os.path.join(tmp, "metrics.jsonl")
    command, out = _nonlinear_flags(tmp, [
        "--num_islands=2", "--migration_interval=100", "--max_individuals=8000",
        f"--checkpoint_dir={ckpt}", "--checkpoint_every_secs=0.5", f"--metrics_log={metrics}"])
    command = [c.replace("progress_every: 10000", "progress_every: 100") for c in command]
    run_dir = os.path.join(ckpt, "experiment_0")

    def past_a_checkpoint():
        # Progress records past the last checkpoint have been logged: the resumed run
        # redoes that work and must not log those records again.
        saved = checkpointed_individuals(run_dir)
        logged = [json.loads(line)["individuals"] for line in open(metrics)]
        return (saved >= 1000 and os.path.exists(os.path.join(run_dir, "server.npz"))
                and max(logged) >= saved + 300)

    resumed = kill_when_then_resume(command, _env(), past_a_checkpoint, kill_within=90,
                                    poll=0.02)
    assert "Resumed from" in resumed.stdout
    summary = json.load(open(os.path.join(out, "summary.json")))
    islands = summary["experiments"][0]["islands"]
    assert [i["individuals"] for i in islands] == [8000, 8000]
    assert summary["experiments"][0]["server"]["exchanges"] >= summary["islands"]["migrations"]
    records = [json.loads(line) for line in open(metrics)]
    counts = [r["individuals"] for r in records if r["experiment"] == 0]
    assert len(counts) >= 3 and counts == sorted(set(counts))  # none logged twice
