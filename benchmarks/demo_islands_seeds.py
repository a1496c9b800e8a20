r"""How often 16 batched islands solve the demo spec within a budget, seed by seed.

The workload of ``tests/test_islands.py::test_demo_spec_islands_find_a_linear_regressor``
(the run_demo.sh spec, P = 100 an island, migration every 1 000 children, stop at
search fitness 0.9999). Appends one JSON line per seed to
benchmarks/results/islands_migration.jsonl:

  python benchmarks/demo_islands_seeds.py --seeds=1000-1019 --max_individuals=6000
  python benchmarks/demo_islands_seeds.py --seeds=1000,1004 --migration_interval=0
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import time

from absl import app, flags

from azero_jax.backends.evaluator import MemoryConfig
from azero_jax.islands import IslandsConfig, run_islands
from azero_jax.spec.search_spec import parse_search_experiment_spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_string("seeds", "1000-1007", "Seeds: a range 'a-b' or a list 'a,b,c'.")
flags.DEFINE_integer("max_individuals", 6000, "Individuals per island.")
flags.DEFINE_integer("migration_interval", 1000, "Children between migrations; 0 = off.")
flags.DEFINE_string("output", os.path.join(ROOT, "benchmarks", "results",
                                           "islands_migration.jsonl"), "JSON lines file.")
FLAGS = flags.FLAGS


def _seeds(text: str) -> list[int]:
    if "-" in text:
        low, high = (int(x) for x in text.split("-"))
        return list(range(low, high + 1))
    return [int(x) for x in text.split(",")]


def main(argv):
    del argv
    with open(os.path.join(ROOT, "azero_jax", "specs", "demo_search.textproto")) as handle:
        spec = parse_search_experiment_spec(handle.read()).replace(population_size=100,
                                                                    progress_every=10**7)
    config = IslandsConfig(num_islands=16, migration_interval=FLAGS.migration_interval,
                           stop_search_fitness=0.9999)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    for seed in _seeds(FLAGS.seeds):
        start = time.time()
        result = run_islands(spec, config, memory=MemoryConfig(4, 3, 1), seed=seed,
                             backend="cpu", max_individuals=FLAGS.max_individuals)
        record = {"benchmark": "demo_islands_seeds", "commit": commit, "seed": seed,
                  "num_islands": 16, "population_size": 100,
                  "migration_interval": FLAGS.migration_interval,
                  "max_individuals_per_island": FLAGS.max_individuals,
                  "fitness": result.fitness, "solved": result.fitness >= 0.9999,
                  "individuals": result.individuals, "wall_secs": time.time() - start,
                  "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                      timespec="seconds")}
        print(json.dumps(record), flush=True)
        with open(FLAGS.output, "a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    app.run(main)
