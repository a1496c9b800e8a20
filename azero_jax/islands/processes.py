"""Processes mode: one spawned worker process per core, the server in the supervisor.

Holds the assignment of islands to workers (:func:`split_islands`), the worker entry
point (``_worker_main``, started by reference with ``spawn``: one
:class:`~azero_jax.islands.group.IslandGroup` per worker, talking to the supervisor
through a pipe), the supervisor (:func:`run_processes`: exchanges migrants, collects
progress, restarts killed workers from their island checkpoints) and ``workers.json``
(:func:`write_pids`). The Ray mode uses the same assignment and ``workers.json``.
"""

from __future__ import annotations

import collections
import json
import os
import tempfile
import threading
import time
from typing import Sequence

from azero_jax.backends import evaluator as evaluator_lib
from azero_jax.islands.config import IslandsConfig
from azero_jax.islands.group import IslandGroup
from azero_jax.islands.island import IslandSpec
from azero_jax.islands.migration import open_server, save_server
from azero_jax.islands.progress import Progress
from azero_jax.islands.result import IslandsResult, result_from_candidates


def split_islands(specs: Sequence[IslandSpec], num_workers: int) -> list[list[IslandSpec]]:
    """Round-robin assignment of islands to workers (worker k gets islands k, k+n, ...)."""
    return [list(specs[k::num_workers]) for k in range(num_workers)]


_WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1",
               "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
               "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


class _PipeServer:
    """The worker's end of the migration server (a pipe to the supervisor)."""

    def __init__(self, conn):
        self.conn = conn
        self.stop = False

    def exchange_many(self, uploads):
        self.conn.send(("exchange", [(int(island), packed) for island, packed in uploads]))
        while True:
            message = self.conn.recv()
            if message[0] == "migrants":
                return message[1]
            if message[0] == "stop":
                self.stop = True


def _worker_main(worker: int, payload: dict, conn) -> None:
    """Entry point of a spawned worker process (one group of islands)."""
    import signal
    # Ctrl-C and SIGTERM (also when sent to the whole process group) are the supervisor's:
    # it sends "stop". A worker whose supervisor died fails its next progress send.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        cores = sorted(os.sched_getaffinity(0))
        if os.environ.get("AZERO_ISLANDS_PIN", "1") != "0" and len(cores) > 1:
            os.sched_setaffinity(0, {cores[worker % len(cores)]})
    except (AttributeError, OSError):
        pass
    server = _PipeServer(conn)
    options = dict(payload["evaluator_options"] or {})
    backend = payload["backend"]
    if evaluator_lib.resolve_backend(backend) == "cpu":
        options.setdefault("num_threads", 1)
    group = IslandGroup(payload["spec"], payload["islands"], payload["config"],
                        memory=payload["memory"], backend=backend,
                        child_batch_size=payload["child_batch_size"],
                        random_search=payload["random_search"], evaluator_options=options,
                        eval_seed=payload["eval_seed"], server=server,
                        checkpoint_dir=payload["checkpoint_dir"],
                        rank_tasks=payload["rank_tasks"], rank_seed=payload["rank_seed"])
    for island in group.islands:
        island.restarts = max(island.restarts, int(payload.get("restart_count", 0)))
    conn.send(("started", worker, group.resumed))
    every = float(payload["config"].checkpoint_every_secs)
    last_save = last_report = time.monotonic()

    def should_stop():
        while conn.poll():
            if conn.recv()[0] == "stop":
                server.stop = True
        return server.stop

    def on_step(g):
        nonlocal last_save, last_report
        now = time.monotonic()
        if now - last_save >= every:
            g.save()
            last_save = now
        if now - last_report >= 0.2:
            conn.send(("progress", worker, g.totals()))
            last_report = now

    group.run(should_stop=should_stop, max_individuals=payload["max_individuals"],
              on_step=on_step, stop_search_fitness=payload["config"].stop_search_fitness)
    group.save()
    conn.send(("progress", worker, group.totals()))
    conn.send(("done", worker, group.candidates(), dict(group.calls)))
    while True:  # wait for the supervisor's goodbye so no message is lost
        message = conn.recv()
        if message[0] == "bye":
            break


def run_processes(spec, config: IslandsConfig, specs, *, seed, checkpoint_dir, max_individuals,
                  progress_fn, should_stop, memory, backend, child_batch_size, random_search,
                  evaluator_options, eval_seed, rank_tasks, rank_seed) -> IslandsResult:
    """Runs the islands in spawned worker processes (``parallel="processes"``).

    The arguments are :func:`~azero_jax.islands.run.run_islands`'s, with ``specs`` its
    island specs and ``eval_seed`` the evaluation seed it derived from ``seed``.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")
    num_workers = int(config.num_workers or min(len(specs), os.cpu_count() or 1))
    num_workers = max(1, min(num_workers, len(specs)))
    groups = split_islands(specs, num_workers)
    temporary = None
    if checkpoint_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="azero_islands_")
        checkpoint_dir = temporary.name
    os.makedirs(checkpoint_dir, exist_ok=True)
    server = open_server(seed, checkpoint_dir)
    payload = dict(spec=spec, config=config, memory=memory, backend=backend,
                   child_batch_size=child_batch_size, random_search=random_search,
                   evaluator_options=evaluator_options, eval_seed=eval_seed,
                   checkpoint_dir=checkpoint_dir, max_individuals=max_individuals,
                   rank_tasks=rank_tasks, rank_seed=rank_seed)
    processes, conns = {}, {}
    restarts = collections.Counter()
    totals: dict[int, dict] = {}
    finished: dict[int, tuple] = {}
    progress = Progress(spec.progress_every, progress_fn, config.num_islands)
    env_lock = threading.Lock()

    def start(worker: int) -> None:
        parent, child = context.Pipe()
        process = context.Process(target=_worker_main, name=f"azero-island-worker-{worker}",
                                  args=(worker, dict(payload, islands=groups[worker],
                                                     restart_count=restarts[worker]), child),
                                  daemon=True)
        with env_lock:
            saved = {k: os.environ.get(k) for k in _WORKER_ENV}
            env = dict(_WORKER_ENV)
            env["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + env["XLA_FLAGS"]).strip()
            os.environ.update(env)
            try:
                process.start()
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        child.close()
        processes[worker], conns[worker] = process, parent
        server.register(worker)
        write_pids(checkpoint_dir, {w: p.pid for w, p in processes.items()}, restarts)

    for worker in range(num_workers):
        start(worker)
    stopping = False
    last_server_save = time.monotonic()
    try:
        while len(finished) < num_workers:
            live = [w for w in processes if w not in finished]
            ready = wait([conns[w] for w in live] + [processes[w].sentinel for w in live],
                         timeout=0.5)
            for worker in live:
                conn, process = conns[worker], processes[worker]
                try:
                    while conn.poll():
                        message = conn.recv()
                        kind = message[0]
                        if kind == "exchange":
                            conn.send(("migrants", server.exchange_many(message[1])))
                        elif kind == "progress":
                            totals[worker] = message[2]
                        elif kind == "done":
                            finished[worker] = (message[2], message[3])
                            conn.send(("bye",))
                except (EOFError, OSError, BrokenPipeError):
                    pass
                if worker not in finished and process.sentinel in ready and not process.is_alive():
                    process.join()
                    if restarts[worker] >= config.max_restarts:
                        raise RuntimeError(f"island worker {worker} died {restarts[worker] + 1} "
                                           f"times (exit code {process.exitcode})")
                    restarts[worker] += 1
                    start(worker)
            if time.monotonic() - last_server_save >= float(config.checkpoint_every_secs):
                save_server(server, checkpoint_dir)
                last_server_save = time.monotonic()
            if totals:
                record = progress.maybe(list(totals.values()))
                if not stopping and record["stop_reached"]:
                    stopping = True
                if not stopping and should_stop is not None and should_stop():
                    stopping = True
                if stopping:
                    for worker in processes:
                        if worker not in finished:
                            try:
                                conns[worker].send(("stop",))
                            except (OSError, BrokenPipeError):
                                pass
        save_server(server, checkpoint_dir)
    finally:
        for worker, process in processes.items():
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        if temporary is not None:
            temporary.cleanup()
    progress.maybe(list(totals.values()), force=True)
    candidates = sorted((c for cands, _ in finished.values() for c in cands),
                        key=lambda c: c["island"])
    calls = collections.Counter()
    for _, worker_calls in finished.values():
        calls.update(worker_calls)
    stats = server.stats()
    stats["worker_restarts"] = {str(k): restarts[k] for k in range(num_workers)}
    return result_from_candidates(candidates, progress.elapsed(), stats, sum(restarts.values()),
                                  calls)


def write_pids(directory: str, pids: dict, restarts=None) -> None:
    """``workers.json``: the pid and restart count of each worker (for operators, tests)."""
    restarts = restarts or {}
    data = {str(w): {"pid": int(pid), "restarts": int(restarts.get(w, 0))}
            for w, pid in pids.items()}
    tmp = os.path.join(directory, ".workers.json.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, os.path.join(directory, "workers.json"))
