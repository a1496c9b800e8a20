r"""Benchmarks islands: individuals/s and training steps/s vs islands, processes and devices.

Workload: the reference's run_demo.sh spec (FEC on, memory 4/3/1) with ``P`` individuals
per island and a fixed number of individuals per island. Cases (each run appends one
JSON line to benchmarks/results/islands.jsonl):

* ``processes``: the same ``W`` islands on 1 and on 2 worker processes (one island per
  core, per-core backend on one thread) -- the scaling over cores. With
  ``--migration_intervals=0`` both do identical work (islands are independent and
  deterministic); with migration the order of exchanges depends on timing. The speedup
  uses the median of ``--repeats`` runs;
* ``batched``: ``W`` = 1, 4, 16, 64 islands of ``P`` in one process, all children of a
  step in one evaluator call (on a GPU run it with ``--backend=jax --islands=1,10,100``).

The machine may be shared: ``load_average_1m`` is recorded, and ``cpu_secs`` /
``individuals_per_cpu_sec`` (this process plus its worker processes) show whether a
second process does as much work per CPU second as one, independently of what else
competes for the cores; ``steady_individuals_per_worker_cpu_sec`` counts only the CPU
time of the processes that evaluate, between the first and last progress records.

Throughput is measured twice: over the whole run (``*_per_sec``, start-up included)
and in steady state (``steady_*``: between the first and last progress records, i.e.
without process start-up and numba/JAX loading).

  python benchmarks/bench_islands.py --cases=processes --process_islands=2 \
    --population_size=1000 --individuals=100000 --migration_intervals=0,10000 --repeats=2
  python benchmarks/bench_islands.py --cases=batched --migration_intervals=1000
  python benchmarks/bench_islands.py --cases=batched --backend=jax --islands=1,10,100,1000
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from azero_jax import islands
from azero_jax.backends.evaluator import MemoryConfig, resolve_backend
from azero_jax.spec.search_spec import parse_search_experiment_spec

FLAGS = flags.FLAGS
flags.DEFINE_list("cases", ["processes", "batched"], "Which cases to run.")
flags.DEFINE_enum("backend", "cpu", ["auto", "cpu", "jax", "cuda"],
                  "Evaluator backend (batched case).")
flags.DEFINE_list("islands", ["1", "4", "16", "64"], "Island counts of the batched case.")
flags.DEFINE_integer("process_islands", 2, "Islands of the processes case.")
flags.DEFINE_list("workers", ["1", "2"], "Worker processes of the processes case.")
flags.DEFINE_integer("population_size", 100, "P of every island.")
flags.DEFINE_integer("individuals", 20000, "Individuals per island (processes case); the "
                     "batched case runs individuals * 4 / W per island (at least 2 sweeps).")
flags.DEFINE_integer("seed", 1000, "Run seed.")
flags.DEFINE_list("migration_intervals", ["1000"], "Migration intervals of the processes case "
                  "(0 = off: the same islands do identical work on any number of workers); "
                  "the batched case uses the first.")
flags.DEFINE_integer("repeats", 1, "Runs of every processes configuration (the median is "
                     "used for the speedup).")
flags.DEFINE_string("output", os.path.join(ROOT, "benchmarks", "results", "islands.jsonl"),
                    "JSON-lines file to append to.")


def _spec():
    with open(os.path.join(ROOT, "azero_jax", "specs", "demo_search.textproto")) as handle:
        spec = parse_search_experiment_spec(handle.read())
    return spec.replace(population_size=FLAGS.population_size, max_train_steps=10**12,
                        progress_every=FLAGS.population_size)


def _cpu_secs() -> float:
    """CPU seconds of this process and its joined children (the worker processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _run(config, backend, per_island, options=None) -> dict:
    records = []
    cpu_before = _cpu_secs()
    start = time.time()
    result = islands.run_islands(_spec(), config, memory=MemoryConfig(4, 3, 1), seed=FLAGS.seed,
                                 backend=backend, max_individuals=per_island,
                                 evaluator_options=options, progress_fn=records.append)
    wall = time.time() - start
    cpu = _cpu_secs() - cpu_before
    out = {"cpu_secs": cpu, "individuals_per_cpu_sec": result.individuals / cpu if cpu else None,
           "individuals": result.individuals, "train_steps": result.train_steps,
           "wall_secs": wall, "individuals_per_sec": result.individuals / wall,
           "train_steps_per_sec": result.train_steps / wall, "migrations": result.migrations,
           "best_fitness": result.fitness, "evaluator_calls": result.evaluator_calls,
           "restarts": result.restarts}
    steady = [r for r in records if r["individuals"] > 0]
    if len(steady) >= 3:
        first, last = steady[1], steady[-1]
        dt = last["elapsed_secs"] - first["elapsed_secs"]
        if dt > 0:
            out["steady_individuals_per_sec"] = (last["individuals"] - first["individuals"]) / dt
            out["steady_train_steps_per_sec"] = (last["train_steps"] - first["train_steps"]) / dt
        cpu = last["worker_cpu_secs"] - first["worker_cpu_secs"]
        if cpu > 0:  # per CPU second of the processes that evaluate (not the supervisor)
            out["steady_individuals_per_worker_cpu_sec"] = (
                last["individuals"] - first["individuals"]) / cpu
    return out


def _base(case: str, backend: str) -> dict:
    return {"benchmark": "islands", "case": case, "backend": backend,
            "population_size": FLAGS.population_size, "seed": FLAGS.seed,
            "cores": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "load_average_1m": os.getloadavg()[0]}


def main(argv):
    del argv
    rows = []
    if "processes" in FLAGS.cases:
        W = FLAGS.process_islands
        for interval in [int(i) for i in FLAGS.migration_intervals]:
            by_workers = {}
            for workers in [int(w) for w in FLAGS.workers]:
                config = islands.IslandsConfig(num_islands=W, parallel="processes",
                                               num_workers=workers, migration_interval=interval)
                for repeat in range(FLAGS.repeats):
                    row = {**_base("processes", "cpu"), "num_islands": W,
                           "num_workers": workers, "migration_interval": interval,
                           "repeat": repeat, **_run(config, "cpu", FLAGS.individuals)}
                    rows.append(row)
                    by_workers.setdefault(workers, []).append(row)
                    print(json.dumps(row), flush=True)
            if len(by_workers) >= 2:
                first, last = min(by_workers), max(by_workers)
                speedups = {"migration_interval": interval, "workers": [first, last]}
                for key in ("individuals_per_sec", "train_steps_per_sec",
                            "steady_individuals_per_sec", "steady_train_steps_per_sec"):
                    if all(key in r for r in by_workers[first] + by_workers[last]):
                        speedups[f"speedup_{key}"] = (
                            statistics.median(r[key] for r in by_workers[last]) /
                            statistics.median(r[key] for r in by_workers[first]))
                by_workers[last][-1].update(
                    {k: v for k, v in speedups.items() if k.startswith("speedup")})
                print(json.dumps(speedups), flush=True)
    if "batched" in FLAGS.cases:
        backend = resolve_backend(FLAGS.backend)
        interval = int(FLAGS.migration_intervals[0])
        for W in [int(w) for w in FLAGS.islands]:
            per_island = max(2 * FLAGS.population_size, FLAGS.individuals * 4 // W)
            config = islands.IslandsConfig(num_islands=W, migration_interval=interval)
            row = {**_base("batched", backend), "num_islands": W, "migration_interval": interval,
                   "individuals_per_island": per_island, **_run(config, backend, per_island)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    os.makedirs(os.path.dirname(FLAGS.output), exist_ok=True)
    with open(FLAGS.output, "a") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    app.run(main)
