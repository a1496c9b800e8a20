r"""Benchmarks the demo search end to end: individuals/s, training steps/s, time to solution.

Runs the reference's run_demo.sh spec (memory 4/3/1, randomized task seeds, sufficient
select fitness 0.9999) once per seed, up to --max_experiments experiments each, and
appends one JSON line per seed to benchmarks/results/search.jsonl:

  python benchmarks/bench_search.py --seeds=1000,1001,1002 --max_experiments=3

On a shared machine, ``individuals_per_cpu_sec`` (process CPU time, all threads) is the
steadier figure. Time to solution is the wall time from the start until the experiment whose candidate
first reached select fitness > 0.9999 ended (null if none did).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from azero_jax import experiment  # noqa: E402
from azero_jax.evaluator import MemoryConfig, resolve_backend  # noqa: E402
from azero_jax.spec import parse_search_experiment_spec, parse_task_collection  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("seeds", ["1000", "1001", "1002"], "Main random seeds, one run each.")
flags.DEFINE_integer("max_experiments", 3, "Experiments per seed at most.")
flags.DEFINE_enum("backend", "auto", ["auto", "cpu", "jax"], "Evaluator backend.")
flags.DEFINE_integer("child_batch_size", None, "Children per step (default: the library's).")
flags.DEFINE_float("sufficient_fitness", 0.9999, "Select fitness that counts as solved.")
flags.DEFINE_string("hurdles", None, "Text-format HurdlesSpec to add (e.g. 'num_tasks: 2').")
flags.DEFINE_string("output", os.path.join(ROOT, "benchmarks", "results", "search.jsonl"),
                    "JSON-lines file to append to.")


def _read(name):
    with open(os.path.join(ROOT, "experiments", "specs", name)) as handle:
        return handle.read()


def _hurdles():
    if FLAGS.hurdles is None:
        return None
    from google.protobuf import text_format
    from azero_jax import spec_protos
    from azero_jax.hurdles import HurdlesConfig
    proto = text_format.Parse(FLAGS.hurdles, spec_protos.HurdlesSpec())
    return HurdlesConfig(proto.percentile, proto.num_train_examples, proto.num_tasks)


def run_seed(seed: int) -> dict:
    config = experiment.ExperimentConfig(
        search=parse_search_experiment_spec(_read("demo_search.textproto")),
        select_tasks=parse_task_collection(_read("demo_select.textproto")),
        final_tasks=parse_task_collection(_read("demo_final.textproto")),
        memory=MemoryConfig(4, 3, 1), random_seed=seed, max_experiments=FLAGS.max_experiments,
        randomize_task_seeds=True, sufficient_fitness=FLAGS.sufficient_fitness,
        backend=FLAGS.backend, child_batch_size=FLAGS.child_batch_size, hurdles=_hurdles())
    start, cpu_start = time.time(), time.process_time()
    summary = experiment.run_experiments(config, log=lambda line: print(line, flush=True)
                                         if not line.startswith("indivs=") else None)
    wall = time.time() - start
    cpu_secs = time.process_time() - cpu_start  # all threads of this process
    experiments = summary["experiments"]
    search_secs = sum(e["search_elapsed_secs"] for e in experiments)
    individuals = sum(e["individuals"] for e in experiments)
    steps = sum(e["train_steps"] for e in experiments)
    solved_at = None
    for e in experiments:
        if e["select_fitness"] > FLAGS.sufficient_fitness:
            solved_at = e["elapsed_secs"]
            break
    return {
        "benchmark": "demo_search", "seed": seed, "backend": resolve_backend(FLAGS.backend),
        "child_batch_size": summary["child_batch_size"], "cores": os.cpu_count(),
        "machine": platform.machine(), "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "experiments": len(experiments), "solved": solved_at is not None,
        "seconds_to_solution": solved_at, "wall_secs": wall,
        "individuals": individuals, "train_steps": steps, "cpu_secs": cpu_secs,
        "individuals_per_cpu_sec": individuals / cpu_secs if cpu_secs else None,
        "individuals_per_sec": individuals / search_secs if search_secs else None,
        "train_steps_per_sec": steps / search_secs if search_secs else None,
        "fec_hit_rate": [e["fec_hit_rate"] for e in experiments],
        "hurdles": FLAGS.hurdles, "hurdle_stats": [e["hurdles"] for e in experiments],
        "search_fitness": [e["search_fitness"] for e in experiments],
        "select_fitness": [e["select_fitness"] for e in experiments],
        "final_fitness": summary["final_fitness"],
        "load_average_1m": os.getloadavg()[0],
        "reference_cpp_one_core": {"individuals_per_sec": 23700, "experiment_secs": 44,
                                   "seconds_to_solution": 390},
    }


def main(argv):
    del argv
    os.makedirs(os.path.dirname(FLAGS.output), exist_ok=True)
    for seed in FLAGS.seeds:
        record = run_seed(int(seed))
        print(json.dumps(record), flush=True)
        with open(FLAGS.output, "a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    app.run(main)
