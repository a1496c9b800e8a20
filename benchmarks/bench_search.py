r"""Benchmarks whole searches: host-only work, throughput, and time to solve the demo.

Modes (``--mode``), each appending JSON lines to ``--output``
(default ``benchmarks/results/search.jsonl``):

* ``host``: the search's host work alone -- tournaments, mutations, fingerprint hashing,
  the FEC cache and bookkeeping -- with an evaluator stub that returns fitnesses and
  fingerprint errors derived from each program's hash (so unmutated children are FEC
  hits as in a real run). Children/s per ``--child_batch_sizes``::

    taskset -c 1 python benchmarks/bench_search.py --mode=host --child_batch_sizes=100,1024

* ``throughput``: a spec's first experiment for ``--individuals`` individuals with the
  real evaluator (``--spec=demo`` or ``nonlinear``; the reference's run_demo.sh and
  run_integration_test_nonlinear.sh settings), individuals/s::

    taskset -c 1 python benchmarks/bench_search.py --mode=throughput --spec=demo --num_threads=1

* ``share``: ``--experiments`` demo experiments in a row (no early stop), each judged
  solved when its candidate's select fitness exceeds 0.9999: the share that solve (the
  reference: 4 of 20)::

    taskset -c 1 python benchmarks/bench_search.py --mode=share --experiments=20 --seeds=1

* ``solve``: the demo as run_demo.sh runs it (randomized task seeds, experiments until
  select fitness > 0.9999), one run per seed and child batch size; seconds and
  individuals to solve::

    python benchmarks/bench_search.py --mode=solve --seeds=1,2,3 --child_batch_sizes=1,10,100

Each record has the 1-minute load average before and after, the CPU affinity and the
C++ reference's figure for the same work (one core, ``../shared/bench/README.md`` and
issue #8: demo 38 k individuals/s, nonlinear 11 k/s, demo solved in 26 s in 3 of 4 seeds).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time

import numpy as np
from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from azero_jax.backends.evaluator import MemoryConfig, PairResults, resolve_backend
from azero_jax.evolution import experiment
from azero_jax.evolution.regularized_evolution import Search
from azero_jax.spec.search_spec import parse_search_experiment_spec, parse_task_collection

FLAGS = flags.FLAGS
flags.DEFINE_enum("mode", "solve", ["host", "throughput", "share", "solve"], "What to measure.")
flags.DEFINE_integer("experiments", 20, "Experiments per seed (share mode).")
flags.DEFINE_enum("spec", "demo", ["demo", "nonlinear"], "Search spec (throughput and solve modes).")
flags.DEFINE_list("seeds", ["1000", "1001", "1002"], "Main random seeds, one run each.")
flags.DEFINE_integer("max_experiments", 10, "Experiments per run at most (solve mode).")
flags.DEFINE_enum("backend", "cpu", ["auto", "cpu", "jax"], "Evaluator backend.")
flags.DEFINE_list("child_batch_sizes", [], "Children per step (default: the library's).")
flags.DEFINE_integer("num_threads", None, "cpu backend threads (default: the library's).")
flags.DEFINE_integer("individuals", 300000, "Individuals to time (host, throughput).")
flags.DEFINE_integer("repeats", 1, "Repeats (host, throughput); each is one record.")
flags.DEFINE_float("sufficient_fitness", 0.9999, "Select fitness that counts as solved.")
flags.DEFINE_string("hurdles", None, "Text-format HurdlesSpec to add (e.g. 'num_tasks: 2').")
flags.DEFINE_string("output", os.path.join(ROOT, "benchmarks", "results", "search.jsonl"),
                    "JSON-lines file to append to.")

REFERENCE_CPP = {"demo_individuals_per_sec": 38000, "nonlinear_individuals_per_sec": 11000,
                 "demo_seconds_to_solve": 26}
SPECS = {"demo": ("demo_search.textproto", "demo_select.textproto", "demo_final.textproto",
                  MemoryConfig(4, 3, 1), 1002),
         "nonlinear": ("nonlinear_search.textproto", "nonlinear_select.textproto",
                       "nonlinear_select.textproto", MemoryConfig(5, 9, 2), 100001)}


def _read(name):
    with open(os.path.join(ROOT, "azero_jax", "specs", name)) as handle:
        return handle.read()


def _hurdles():
    if FLAGS.hurdles is None:
        return None
    from azero_jax.spec import search_spec as spec_lib
    return spec_lib.parse_hurdles(FLAGS.hurdles)


def _batch_sizes():
    return [int(b) for b in FLAGS.child_batch_sizes] or [None]


def _evaluator_options() -> dict:
    return {} if FLAGS.num_threads is None else {"num_threads": FLAGS.num_threads}


def _base_record(kind: str) -> dict:
    return {"benchmark": kind, "backend": resolve_backend(FLAGS.backend),
            "cores": os.cpu_count(), "affinity": sorted(os.sched_getaffinity(0)),
            "machine": platform.machine(), "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "load_average_1m_before": os.getloadavg()[0],
            "reference_cpp_one_core": REFERENCE_CPP}


class HostOnlySearch(Search):
    """A search whose evaluator is a stub: fitness and fingerprint errors from a hash of
    each program (equal programs, equal fingerprints), so only host work is timed."""

    stub_secs = 0.0  # time inside the stub: evaluator work, not the search's host work

    def run_request(self, request):
        start = time.perf_counter()
        try:
            return self._stub(request)
        finally:
            self.stub_secs += time.perf_counter() - start

    @staticmethod
    def _stub(request):
        hi, lo = request.algorithms.keys()
        u = (lo >> np.uint64(11)).astype(np.float64) * 2.0**-53
        a, t = request.algorithm_index, request.task_index
        fitness = u[a] * (0.9 + 0.01 * t)
        steps = np.asarray(request.train_steps, np.int64)
        if request.record_errors is None:
            return PairResults(fitness, steps)
        kt, kv = request.record_errors
        train = np.repeat((u[a] + t)[:, None], kt, axis=1)
        valid = np.repeat((2 * u[a] + t)[:, None], kv, axis=1)
        return PairResults(fitness, steps, train, np.full(len(a), kt), valid, np.full(len(a), kv))


def _timed_run(search: Search) -> tuple[float, float, int, int]:
    """Runs the initial population, then times ``--individuals`` more: wall and CPU
    seconds (this process, all threads: the steadier figure on a shared machine)."""
    search.run(max_individuals=search.population_size)
    start, cpu_start = time.perf_counter(), time.process_time()
    n0, steps0 = search.num_individuals, search.train_steps
    search.run(max_individuals=n0 + FLAGS.individuals)
    return (time.perf_counter() - start, time.process_time() - cpu_start,
            search.num_individuals - n0, search.train_steps - steps0)


def run_host() -> list[dict]:
    records = []
    spec = parse_search_experiment_spec(_read("demo_search.textproto"))
    for batch in _batch_sizes():
        for _ in range(FLAGS.repeats):
            record = _base_record("search_host_only")
            search = HostOnlySearch(spec, memory=MemoryConfig(4, 3, 1), seed=1002,
                                    backend="cpu", child_batch_size=batch)
            search.run(max_individuals=search.population_size)
            search.stub_secs = 0.0
            secs, cpu, n, _ = _timed_run(search)
            host = secs - search.stub_secs
            record.update(spec="demo", child_batch_size=search.child_batch_size, individuals=n,
                          seconds=secs, children_per_sec=n / secs, us_per_child=1e6 * secs / n,
                          stub_secs=search.stub_secs, host_secs=host,
                          host_children_per_sec=n / host, host_us_per_child=1e6 * host / n,
                          cpu_secs=cpu, children_per_cpu_sec=n / cpu,
                          fec_hit_rate=search.fec_hit_rate(),
                          load_average_1m_after=os.getloadavg()[0])
            records.append(record)
    return records


def run_throughput() -> list[dict]:
    records = []
    search_file, _, _, memory, seed = SPECS[FLAGS.spec]
    spec = parse_search_experiment_spec(_read(search_file))
    for batch in _batch_sizes():
        for _ in range(FLAGS.repeats):
            record = _base_record("search_throughput")
            search = Search(spec, memory=memory, seed=seed, backend=FLAGS.backend,
                            child_batch_size=batch, evaluator_options=_evaluator_options())
            secs, cpu, n, steps = _timed_run(search)
            key = f"{FLAGS.spec}_individuals_per_sec"
            record.update(spec=FLAGS.spec, child_batch_size=search.child_batch_size,
                          num_threads=FLAGS.num_threads, individuals=n, seconds=secs,
                          individuals_per_sec=n / secs, train_steps_per_sec=steps / secs,
                          cpu_secs=cpu, individuals_per_cpu_sec=n / cpu,
                          ratio_to_reference=n / secs / REFERENCE_CPP[key],
                          fec_hit_rate=search.fec_hit_rate(),
                          load_average_1m_after=os.getloadavg()[0])
            records.append(record)
    return records


def _demo_config(seed: int, batch, max_experiments: int, sufficient: float, spec: str = "demo"):
    search_file, select_file, final_file, memory, _ = SPECS[spec]
    return experiment.ExperimentConfig(
        search=parse_search_experiment_spec(_read(search_file)),
        select_tasks=parse_task_collection(_read(select_file)),
        final_tasks=parse_task_collection(_read(final_file)),
        memory=memory, random_seed=int(seed), max_experiments=max_experiments,
        randomize_task_seeds=True, sufficient_fitness=sufficient, backend=FLAGS.backend,
        child_batch_size=batch, hurdles=_hurdles(),
        evaluator_options=tuple(sorted(_evaluator_options().items())))


def run_share() -> list[dict]:
    records = []
    for batch in _batch_sizes():
        for seed in FLAGS.seeds:
            record = _base_record("demo_solve_share")
            start = time.perf_counter()
            summary = experiment.run_experiments(
                _demo_config(int(seed), batch, FLAGS.experiments, sys.float_info.max),
                log=lambda line: None)
            experiments = summary["experiments"]
            solved = [e["select_fitness"] > FLAGS.sufficient_fitness for e in experiments]
            individuals = sum(e["individuals"] for e in experiments)
            search_secs = sum(e["search_elapsed_secs"] for e in experiments)
            record.update(seed=int(seed), child_batch_size=summary["child_batch_size"],
                          num_threads=FLAGS.num_threads, hurdles=FLAGS.hurdles,
                          experiments=len(experiments), solved=int(sum(solved)),
                          share=sum(solved) / len(experiments), wall_secs=time.perf_counter() - start,
                          individuals=individuals, individuals_per_sec=individuals / search_secs,
                          select_fitness=[e["select_fitness"] for e in experiments],
                          reference_cpp_share="4 of 20",
                          load_average_1m_after=os.getloadavg()[0])
            records.append(record)
            print(json.dumps(record), flush=True)
    return records


def run_solve() -> list[dict]:
    records = []
    for batch in _batch_sizes():
        for seed in FLAGS.seeds:
            record = _base_record("demo_solve" if FLAGS.spec == "demo" else f"{FLAGS.spec}_solve")
            config = _demo_config(int(seed), batch, FLAGS.max_experiments,
                                  FLAGS.sufficient_fitness, FLAGS.spec)
            start = time.perf_counter()
            summary = experiment.run_experiments(config, log=lambda line: None)
            wall = time.perf_counter() - start
            experiments = summary["experiments"]
            solved_at = solved_individuals = None
            individuals = 0
            for e in experiments:
                individuals += e["individuals"]
                if e["select_fitness"] > FLAGS.sufficient_fitness:
                    solved_at, solved_individuals = e["elapsed_secs"], individuals
                    break
            search_secs = sum(e["search_elapsed_secs"] for e in experiments)
            total = sum(e["individuals"] for e in experiments)
            record.update(
                spec=FLAGS.spec, sufficient_fitness=FLAGS.sufficient_fitness,
                seed=int(seed), child_batch_size=summary["child_batch_size"],
                num_threads=FLAGS.num_threads, hurdles=FLAGS.hurdles,
                experiments=len(experiments), solved=solved_at is not None,
                train_steps=sum(e.get("train_steps", 0) for e in experiments),
                seconds_to_solution=solved_at, individuals_to_solution=solved_individuals,
                wall_secs=wall, individuals=total,
                individuals_per_sec=total / search_secs if search_secs else None,
                hurdle_stats=[e["hurdles"] for e in experiments],
                select_fitness=[e["select_fitness"] for e in experiments],
                final_fitness=summary["final_fitness"],
                load_average_1m_after=os.getloadavg()[0])
            records.append(record)
            print(json.dumps(record), flush=True)
    return records


def main(argv):
    del argv
    os.makedirs(os.path.dirname(FLAGS.output), exist_ok=True)
    records = {"host": run_host, "throughput": run_throughput, "share": run_share,
               "solve": run_solve}[FLAGS.mode]()
    with open(FLAGS.output, "a") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    for record in records:
        figure = record.get("children_per_sec") or record.get("individuals_per_sec") or 0
        if "host_children_per_sec" in record:
            print(f"  host work without the stub: {record['host_children_per_sec']:,.0f}/s "
                  f"({record['host_us_per_child']:.2f} us a child)")
        per_cpu = record.get("children_per_cpu_sec") or record.get("individuals_per_cpu_sec")
        print(f"{record['benchmark']}: B={record['child_batch_size']} "
              f"{figure:,.0f}/s wall" + (f", {per_cpu:,.0f}/s CPU" if per_cpu else "")
              + f", load {record['load_average_1m_before']:.2f}"
              + (f" solved={record['solved']}" if "solved" in record else "")
              + (f" in {record['seconds_to_solution']}" if "seconds_to_solution" in record else ""),
              flush=True)


if __name__ == "__main__":
    app.run(main)
