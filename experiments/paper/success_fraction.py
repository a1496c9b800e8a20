"""The protocol of the paper's Tables S2-S4: the fraction of experiments that succeed.

Runs ``--num_experiments`` searches of one spec per configuration, each with its own seed
(in parallel over ``--num_workers`` processes), evaluates each experiment's final
candidate on the select tasks, and counts those whose fitness reaches ``--threshold``.
Prints each configuration's fraction with a 95 % Wilson interval and, for two
configurations, the difference of the fractions (Newcombe's hybrid-score interval).

A configuration is a comma-separated list of switches applied to the spec:
``fec=on|off`` (the reference's FEC: 10 train / 10 valid examples), ``hurdles=on|off``
(S3's default hurdle), ``migration=on|off`` (two islands of half the population,
exchanging half of it every ``--migration_interval`` evaluations, or not at all);
``base`` leaves the spec as it is. Every configuration gets the same budget
(``--max_individuals`` per experiment, or ``--max_train_steps`` -- the reference's
budget, the one under which FEC and hurdles save compute -- summed over islands).

Results accumulate in ``--results`` (JSON, locked and atomically replaced): run it again
to add experiments; experiments already there (same configuration and seed) are skipped.

Example (the demo spec, FEC on vs. off)::

    python experiments/paper/success_fraction.py \
        --spec=azero_jax/specs/demo_search.textproto \
        --select_tasks=azero_jax/specs/demo_select.textproto --memory=4,3,1 \
        --population_size=100 --max_individuals=20000 --threshold=0.9 \
        --configs="fec=on" --configs="fec=off" --num_experiments=30 --num_workers=2 \
        --results=docs/success_fraction.json
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import os
import re
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import paper_common  # noqa: E402

FORMAT = 1
SWITCHES = ("fec", "hurdles", "migration")

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The flags (defined only when run as a program, so tests can import the module)."""
    flags.DEFINE_string("spec", None, "Text-format SearchExperimentSpec (a file or the text).")
    flags.DEFINE_string("select_tasks", None, "Text-format TaskCollection the final candidate is "
                        "judged on (a file or the text); default: the spec's search tasks.")
    flags.DEFINE_list("memory", ["4", "3", "1"], "Scalar, vector, matrix addresses.")
    flags.DEFINE_multi_string("configs", ["base"], "Configurations (see the module docstring); "
                              "the first two are compared.")
    flags.DEFINE_integer("num_experiments", 30, "Experiments per configuration.")
    flags.DEFINE_integer("max_individuals", 20000, "Evaluations per experiment (all islands); "
                         "0: no limit (use --max_train_steps).")
    flags.DEFINE_integer("max_train_steps", 0, "Training steps per experiment (all islands; "
                         "FEC's saved steps buy more individuals, as in the reference); "
                         "0: the spec's.")
    flags.DEFINE_integer("population_size", None, "Override the spec's population size.")
    flags.DEFINE_float("threshold", 0.9, "Success: final fitness >= this.")
    flags.DEFINE_integer("migration_interval", 1000, "Island evaluations between migrations.")
    flags.DEFINE_integer("num_workers", 1, "Processes (one core each); 0: in this process.")
    flags.DEFINE_integer("seed_base", 1000, "Experiment k of a configuration uses seed_base + k.")
    flags.DEFINE_string("results", None, "Accumulated JSON results.")
    flags.DEFINE_boolean("table", False, "Print everything in --results as a Markdown table.")


@dataclasses.dataclass(frozen=True)
class Setup:
    """Everything an experiment needs (picklable, for the worker processes)."""

    spec_text: str
    select_text: str | None
    memory: tuple[int, int, int]
    max_individuals: int
    population_size: int | None
    migration_interval: int
    max_train_steps: int = 0


def parse_config(text: str) -> dict:
    """``"fec=on,hurdles=off"`` -> ``{"fec": True, "hurdles": False}`` (``base`` -> {})."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part == "base":
            continue
        name, _, value = part.partition("=")
        if name not in SWITCHES or value not in ("on", "off"):
            raise ValueError(f"bad configuration item {part!r}: expected base or "
                             f"{'|'.join(SWITCHES)}=on|off")
        out[name] = value == "on"
    return out


def config_name(text: str) -> str:
    """A canonical name (the key in the results file)."""
    items = parse_config(text)
    return ",".join(f"{k}={'on' if items[k] else 'off'}" for k in SWITCHES if k in items) or "base"


def configured_spec(setup: Setup, items: dict):
    from azero_jax.evolution.fec import FECConfig
    from azero_jax.evolution.hurdles import HurdlesConfig
    from azero_jax.spec.search_spec import parse_search_experiment_spec

    spec = parse_search_experiment_spec(setup.spec_text)
    changes = {}
    if setup.population_size:
        changes["population_size"] = int(setup.population_size)
    if setup.max_train_steps:
        changes["max_train_steps"] = int(setup.max_train_steps)
    if "fec" in items:
        changes["fec"] = FECConfig(10, 10) if items["fec"] else None
    if "hurdles" in items:
        changes["hurdles"] = HurdlesConfig() if items["hurdles"] else None
    return dataclasses.replace(spec, **changes)


def run_one(setup: Setup, config: str, seed: int) -> dict:
    """One experiment: search, then the final candidate's fitness on the select tasks."""
    import numpy as np

    from azero_jax import islands
    from azero_jax.backends import evaluator
    from azero_jax.backends.evaluator import MemoryConfig
    from azero_jax.evolution.regularized_evolution import Search
    from azero_jax.spec.search_spec import parse_task_collection
    from azero_jax.core.tasks import make_tasks

    items = parse_config(config)
    spec = configured_spec(setup, items)
    memory = MemoryConfig(*setup.memory)
    options = {"num_threads": 1}
    start = time.monotonic()
    if "migration" in items:
        # Two islands of half the population each: the same individuals in all.
        half = max(1, spec.population_size // 2)
        spec = dataclasses.replace(spec, population_size=half,
                                   max_train_steps=spec.max_train_steps // 2)
        island_config = islands.IslandsConfig(
            num_islands=2, migration_interval=setup.migration_interval if items["migration"]
            else 0, parallel="batched")
        result = islands.run_islands(spec, island_config, memory=memory, seed=seed,
                                     backend="cpu", evaluator_options=options,
                                     max_individuals=setup.max_individuals // 2 or None)
        algorithm, search_fitness, individuals, train_steps = (
            result.algorithm, result.fitness, result.individuals, result.train_steps)
    else:
        search = Search(spec, memory=memory, seed=seed, backend="cpu",
                        evaluator_options=options)
        candidate = search.run(max_individuals=setup.max_individuals or None)
        algorithm, search_fitness, individuals, train_steps = (
            candidate.algorithm, candidate.fitness, candidate.num_individuals,
            candidate.train_steps)
    tasks = make_tasks(parse_task_collection(setup.select_text) if setup.select_text
                       else spec.search_tasks)
    grid = evaluator.evaluate([algorithm], tasks, num_scalars=memory.num_scalars,
                              num_vectors=memory.num_vectors, num_matrices=memory.num_matrices,
                              backend="cpu", **options)
    final = float(evaluator.combine_fitnesses(np.asarray(grid)[0], spec.fitness_combination_mode))
    return {"seed": int(seed), "final_fitness": final, "search_fitness": float(search_fitness),
            "individuals": int(individuals), "train_steps": int(train_steps),
            "elapsed_secs": round(time.monotonic() - start, 2)}


def summarize(records: list[dict], threshold: float) -> dict:
    n = len(records)
    k = sum(r["final_fitness"] >= threshold for r in records)
    low, high = paper_common.wilson(k, n) if n else (0.0, 1.0)
    return {"experiments": n, "successes": int(k), "fraction": k / n if n else None,
            "ci_low": low, "ci_high": high}


def compare(a: dict, b: dict) -> dict:
    """Difference of two fractions with Newcombe's hybrid-score (Wilson) 95 % interval."""
    if not a["experiments"] or not b["experiments"]:
        return {"difference": None, "ci_low": -1.0, "ci_high": 1.0}
    pa, pb = a["fraction"], b["fraction"]
    la, ua = a["ci_low"], a["ci_high"]
    lb, ub = b["ci_low"], b["ci_high"]
    d = pa - pb
    return {"difference": d,
            "ci_low": d - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2),
            "ci_high": d + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)}


def key(setup: Setup, threshold: float) -> str:
    """Which results can be added up: the spec, the budget and the judge."""
    import hashlib
    digest = hashlib.sha256(repr((setup, threshold)).encode()).hexdigest()[:12]
    return digest


def run(setup: Setup, configs: list[str], num_experiments: int, threshold: float,
        results: str | None, num_workers: int = 1, seed_base: int = 1000, log=print) -> dict:
    """Runs the missing experiments of each configuration; returns the summaries."""
    names = [config_name(c) for c in configs]
    store = {"format": FORMAT, "runs": {}}
    group = key(setup, threshold)

    def records_of(data):
        entry = data["runs"].setdefault(group, {"setup": dataclasses.asdict(setup),
                                                "threshold": threshold, "configs": {}})
        return {name: entry["configs"].setdefault(name, []) for name in names}

    data = store
    if results:
        with paper_common.locked_json(results, store) as data:
            records_of(data)
    done = records_of(data)
    jobs = [(name, seed_base + k) for k in range(num_experiments) for name in names
            if seed_base + k not in {r["seed"] for r in done[name]}]
    for name, record in _results(setup, jobs, num_workers):
        if results:
            with paper_common.locked_json(results, store) as data:
                records_of(data)[name].append(record)
                done = records_of(data)
        else:
            done[name].append(record)
        s = summarize(done[name], threshold)
        log(f"{name}: {s['successes']}/{s['experiments']} = {s['fraction']:.3f} "
            f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}] (seed {record['seed']}: final "
            f"{record['final_fitness']:.4f}, {record['elapsed_secs']} s)")
    summaries = {name: summarize(done[name], threshold) for name in names}
    for name, s in summaries.items():
        log(f"{name}: fraction {s['successes']}/{s['experiments']} = "
            f"{(s['fraction'] or 0):.3f}, 95% Wilson [{s['ci_low']:.3f}, {s['ci_high']:.3f}]")
    if len(names) >= 2:
        c = compare(summaries[names[0]], summaries[names[1]])
        summaries["comparison"] = {"a": names[0], "b": names[1], **c}
        if c["difference"] is not None:
            log(f"{names[0]} - {names[1]}: {c['difference']:+.3f}, 95% Newcombe "
                f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]")
    return summaries


def markdown_table(results: str) -> str:
    """Every configuration in ``results`` (per setup and threshold) as a Markdown table."""
    with open(results) as handle:
        data = json.load(handle)
    rows = ["| spec (budget) | threshold | configuration | successes / N | fraction [95 % Wilson] "
            "| mean individuals | mean final fitness |", "|---|---|---|---|---|---|---|"]
    for entry in data["runs"].values():
        setup = entry["setup"]
        task = re.search(r"(\w+_task)\s*\{", setup["spec_text"])
        budget = (f"{setup['max_train_steps']:.0e} train steps" if setup["max_train_steps"]
                  else f"{setup['max_individuals']} individuals")
        name = f"{task.group(1) if task else '?'}, P={setup['population_size']}, {budget}"
        for config, records in entry["configs"].items():
            if not records:
                continue
            s = summarize(records, entry["threshold"])
            mean_ind = sum(r["individuals"] for r in records) / len(records)
            mean_fit = sum(r["final_fitness"] for r in records) / len(records)
            rows.append(f"| {name} | {entry['threshold']} | {config} | {s['successes']} / "
                        f"{s['experiments']} | {s['fraction']:.2f} [{s['ci_low']:.2f}, "
                        f"{s['ci_high']:.2f}] | {mean_ind:.0f} | {mean_fit:.4f} |")
    return "\n".join(rows)


def _results(setup, jobs, num_workers):
    if num_workers <= 0:
        for name, seed in jobs:
            yield name, run_one(setup, name, seed)
        return
    if not jobs:
        return
    with paper_common.worker_pool(num_workers) as pool:
        futures = {pool.submit(run_one, setup, name, seed): name for name, seed in jobs}
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future.result()


def _text(value: str | None) -> str | None:
    if value is None or not os.path.exists(value):
        return value
    with open(value) as handle:
        return handle.read()


def main(argv):
    del argv
    try:
        if not FLAGS.spec:
            raise ValueError("--spec is required")
        memory = tuple(int(x) for x in FLAGS.memory)
        if len(memory) != 3:
            raise ValueError("--memory needs three numbers: scalars,vectors,matrices")
        setup = Setup(_text(FLAGS.spec), _text(FLAGS.select_tasks), memory,
                      FLAGS.max_individuals, FLAGS.population_size, FLAGS.migration_interval,
                      FLAGS.max_train_steps)
        configs = list(FLAGS.configs)
        for c in configs:
            parse_config(c)
        run(setup, configs, FLAGS.num_experiments, FLAGS.threshold, FLAGS.results,
            FLAGS.num_workers, FLAGS.seed_base)
        if FLAGS.table and FLAGS.results:
            print(markdown_table(FLAGS.results))
    except ValueError as error:
        sys.exit(f"success_fraction: {error}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
