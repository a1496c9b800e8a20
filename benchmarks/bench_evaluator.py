"""Times the evaluators on the fixed workloads W1, W2, W3 (the C++ reference's timings).

For each backend, workload, batch size and thread count it prints the compile (first
call) seconds, algorithms/s, training steps/s (the ``train_steps`` the evaluator returns:
one step = one Predict + Learn on one example; aborted evaluations run fewer), the device,
the cores and the ratio to the reference's single-core figure (``shared/bench/README.md``:
W1 27.4 M, W2 1.72 M, W3 17.1 M steps/s), and appends one JSON line per measurement to
``<out_dir>/evaluator.jsonl``. Compare with the reference one thread, pinned, as it was
measured: ``taskset -c 1 python benchmarks/bench_evaluator.py --num_threads=1``.

Wall-clock rates are the headline. Because a shared machine may be busy, the CPU-time
rate (steps per second of this process's CPU time, i.e. per busy core) and the load
average are recorded too. For the CPU backend ``steps_per_s`` times the backend's own
``evaluate_pairs`` (the evaluation loop, as the reference was timed), with dead-code
elimination (the default, :mod:`azero_jax.backends.cpu.liveness`); ``steps_per_s_no_dce`` (and
``ratio_no_dce``) the same with every instruction executed, as the reference does;
``steps_per_s_api`` goes through ``azero_jax.evaluate_pairs`` (argument checks included).

Usage (from the repository root):
    python benchmarks/bench_evaluator.py --backend=cpu --num_threads=1,2
    python benchmarks/bench_evaluator.py --backend=jax --batch_sizes=1000,10000
    python benchmarks/bench_evaluator.py --backend=cpu --cold_cache   # compile from scratch
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from absl import app, flags

_HERE = os.path.dirname(os.path.abspath(__file__))

FLAGS = flags.FLAGS
flags.DEFINE_enum("backend", "cpu", ["cpu", "jax", "cuda", "both"],
                  "Evaluator backend(s) to time.")
flags.DEFINE_list("workloads", ["w1", "w2", "w3"], "Workloads to run (w1, w2, w3).")
flags.DEFINE_list("batch_sizes", ["0"], "Pairs per evaluate_pairs call; 0 = the whole workload.")
flags.DEFINE_list("num_threads", ["1"], "CPU backend thread counts to time (ignored by jax).")
flags.DEFINE_integer("repeats", 3, "Timed passes per configuration; the fastest is reported.")
flags.DEFINE_string("out_dir", os.path.join(_HERE, "results"), "Where evaluator.jsonl goes.")
flags.DEFINE_string("bench_dir", None, "The shared/bench folder (default ../shared/bench).")
flags.DEFINE_enum("dtype", "float32", ["float32", "float64"], "JAX and CUDA backend dtype.")
flags.DEFINE_integer("tile", 1, "Repeat the workload's pairs this many times (GPU batch sizes "
                     "beyond the workload's own pair count).")
flags.DEFINE_integer("max_pairs", 0, "Pairs timed per configuration (whole batches, at least "
                     "one); 0 = all.")
flags.DEFINE_integer("train_steps_limit", 0, "Cap on each pair's training steps (device "
                     "script's dry run); 0 = the workload's own.")
flags.DEFINE_bool("cold_cache", False, "Compile the CPU kernels from scratch (fresh caches).")
flags.DEFINE_bool("write", True, "Append the results to <out_dir>/evaluator.jsonl.")
flags.DEFINE_string("note", "", "Free text stored with each JSON line.")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=_HERE, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _kernels_digest() -> str:
    """Short hash of the CPU kernels' source (HEAD moves with everyone's commits)."""
    import hashlib
    from azero_jax.backends.cpu import _cpu_kernels
    with open(_cpu_kernels.__file__, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()[:12]


def _batches(num_pairs: int, batch_size: int):
    size = num_pairs if batch_size <= 0 else batch_size
    return [(start, min(num_pairs, start + size)) for start in range(0, num_pairs, size)]


def run_one(az, np, workload, backend: str, batch_size: int, num_threads: int | None,
            repeats: int) -> dict:
    """Times one configuration; returns the JSON record."""
    A, T = len(workload.algorithms), len(workload.tasks)
    a_idx, t_idx = np.meshgrid(np.arange(A), np.arange(T), indexing="ij")
    a_idx, t_idx = np.tile(a_idx.ravel(), FLAGS.tile), np.tile(t_idx.ravel(), FLAGS.tile)
    batches = _batches(len(a_idx), batch_size)
    if FLAGS.max_pairs > 0:
        batches = batches[:max(1, FLAGS.max_pairs // (batches[0][1] - batches[0][0]))]
    timed_pairs = batches[-1][1]
    steps_req = np.array([task.total_train_steps for task in workload.tasks],
                         dtype=np.int64)[t_idx]
    if FLAGS.train_steps_limit > 0:
        steps_req = np.minimum(steps_req, FLAGS.train_steps_limit)
    options = dict(memory=workload.memory, max_abs_error=100.0, seed=0,
                   algorithm_ids=np.arange(A), backend=backend)
    if backend == "cpu":
        options["num_threads"] = num_threads
    else:
        options["dtype"] = FLAGS.dtype

    algorithms, tasks = list(workload.algorithms), list(workload.tasks)

    def evaluate_api(start, end):
        return az.evaluate_pairs(algorithms, tasks, a_idx[start:end], t_idx[start:end],
                                 train_steps=steps_req[start:end], **options)

    def evaluate_direct(start, end, dead_code_elimination=True):
        # The backend's own entry point, past azero_jax.evaluate_pairs' argument checks
        # (which validate every address in Python): the evaluation loop alone, as the
        # reference was timed.
        from azero_jax.backends.cpu import cpu_evaluator
        return cpu_evaluator.evaluate_pairs(
            algorithms, tasks, a_idx[start:end], t_idx[start:end], memory=workload.memory,
            max_abs_error=100.0, seed=0, algorithm_ids=np.arange(A),
            train_steps=steps_req[start:end], valid_steps=None, record_errors=None,
            num_threads=num_threads, dead_code_elimination=dead_code_elimination)

    def evaluate_direct_no_dce(start, end):
        return evaluate_direct(start, end, dead_code_elimination=False)

    def timed(evaluate):
        best_wall, best_cpu, steps = float("inf"), float("inf"), 0
        for _ in range(repeats):
            wall0, cpu0 = time.perf_counter(), time.process_time()
            steps = 0
            for start, end in batches:
                steps += int(evaluate(start, end).train_steps.sum())
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
        return best_wall, best_cpu, steps

    # First call: compile (or load the compiled code), on the first batch.
    t0 = time.perf_counter()
    evaluate_api(*batches[0])
    first_call = time.perf_counter() - t0
    api_wall, _, _ = timed(evaluate_api)
    no_dce = {}
    if backend == "cpu":
        best_wall, best_cpu, steps = timed(evaluate_direct)
        wall, cpu, steps_no_dce = timed(evaluate_direct_no_dce)
        if steps_no_dce != steps:  # elimination changes no result, the step counts included
            raise RuntimeError(f"{workload.name}: {steps} steps with dead-code elimination, "
                               f"{steps_no_dce} without")
        no_dce = {
            "steps_per_s_no_dce": round(steps / wall, 1),
            "steps_per_cpu_s_no_dce": round(steps / cpu, 1) if cpu > 0 else float("nan"),
            "ratio_no_dce": round(steps / wall / workload.reference_steps_per_s, 3),
            "dce_speedup": round(wall / best_wall, 3),
        }
    else:
        best_wall, best_cpu, steps = timed(evaluate_api)
    batch_steady = api_wall * (batches[0][1] - batches[0][0]) / timed_pairs
    if backend == "cpu":
        device = f"cpu: {_cpu_model()}"
    elif backend == "cuda":
        from azero_jax.backends.cuda import cuda_evaluator
        device = f"cuda: {cuda_evaluator.device_name()}"
    else:
        import jax
        dev = jax.devices()[0]
        device = f"{dev.platform}: {getattr(dev, 'device_kind', dev.platform)}"
    reference = workload.reference_steps_per_s
    rate = steps / best_wall
    rate_cpu = steps / best_cpu if best_cpu > 0 else float("nan")
    return {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "cpu_kernels_sha1": _kernels_digest(),
        "workload": workload.name,
        "backend": backend,
        "dtype": "float64" if backend == "cpu" else FLAGS.dtype,
        "batch_size": batch_size if batch_size > 0 else len(a_idx),
        "timed_pairs": timed_pairs,
        "features_size": int(workload.tasks[0].features_size),
        "tile": FLAGS.tile,
        "train_steps_limit": FLAGS.train_steps_limit,
        "num_threads": num_threads if backend == "cpu" else None,
        "device": device,
        "cores": _cores(),
        "load_avg_1m": os.getloadavg()[0],
        "pairs": len(a_idx),
        "algorithms": A,
        "tasks": T,
        "first_call_s": round(first_call, 4),
        "compile_s": round(max(0.0, first_call - batch_steady), 4),
        "cold_cache": bool(FLAGS.cold_cache),
        "wall_s": round(best_wall, 5),
        "cpu_s": round(best_cpu, 5),
        "train_steps": steps,
        "algorithms_per_s": round(timed_pairs / T / best_wall, 2),
        "steps_per_s": round(rate, 1),
        "steps_per_s_api": round(steps / api_wall, 1),
        "steps_per_cpu_s": round(rate_cpu, 1),
        "reference_steps_per_s": reference,
        "ratio": round(rate / reference, 3),
        "ratio_cpu_time": round(rate_cpu / reference, 3),
        "dead_code_elimination": backend == "cpu",
        **no_dce,
        "repeats": repeats,
        "note": FLAGS.note,
        "command": " ".join(["python", "benchmarks/bench_evaluator.py"] + sys.argv[1:]),
    }


def _print(record: dict) -> None:
    threads = record["num_threads"]
    print(f"{record['workload']:>3} {record['backend']:>3} batch={record['batch_size']:<6} "
          f"threads={threads if threads else '-':<2} first_call={record['first_call_s']:.2f}s "
          f"compile~{record['compile_s']:.2f}s  {record['algorithms_per_s']:9.1f} alg/s  "
          f"{record['steps_per_s'] / 1e6:8.3f} M steps/s (cpu-time {record['steps_per_cpu_s'] / 1e6:.3f})"
          f"  ratio {record['ratio']:.2f}x (cpu-time {record['ratio_cpu_time']:.2f}x) vs "
          f"reference {record['reference_steps_per_s'] / 1e6:g} M"
          f"  [{record['device']}, {record['cores']} cores, load {record['load_avg_1m']:.1f}]")
    if "steps_per_s_no_dce" in record:
        print(f"{'':>3} without dead-code elimination: "
              f"{record['steps_per_s_no_dce'] / 1e6:8.3f} M steps/s (cpu-time "
              f"{record['steps_per_cpu_s_no_dce'] / 1e6:.3f})  ratio {record['ratio_no_dce']:.2f}x"
              f"  (elimination: {record['dce_speedup']:.2f}x)")


def main(argv):
    del argv
    if FLAGS.cold_cache:
        fresh = tempfile.mkdtemp(prefix="azero_bench_cache_")
        os.environ["NUMBA_CACHE_DIR"] = os.path.join(fresh, "numba")
        os.environ["AZERO_JAX_CACHE_DIR"] = fresh
    t0 = time.perf_counter()
    import numpy as np
    import azero_jax as az
    import workloads as workloads_lib
    import_s = time.perf_counter() - t0
    backends = ["cpu", "jax"] if FLAGS.backend == "both" else [FLAGS.backend]
    path = os.path.join(FLAGS.out_dir, "evaluator.jsonl")
    records = []
    print(f"import azero_jax: {import_s:.2f}s")
    for name in FLAGS.workloads:
        workload = workloads_lib.load(name, FLAGS.bench_dir)
        for backend in backends:
            threads = [int(n) for n in FLAGS.num_threads] if backend == "cpu" else [None]
            for batch_size in (int(b) for b in FLAGS.batch_sizes):
                for num_threads in threads:
                    record = run_one(az, np, workload, backend, batch_size, num_threads,
                                     FLAGS.repeats)
                    record["import_s"] = round(import_s, 3)
                    _print(record)
                    records.append(record)
                    if FLAGS.write:  # line by line: a run cut short keeps what it measured
                        os.makedirs(FLAGS.out_dir, exist_ok=True)
                        with open(path, "a") as f:
                            f.write(json.dumps(record) + "\n")
    if FLAGS.write and records:
        print(f"appended {len(records)} lines to {path}")


if __name__ == "__main__":
    app.run(main)
