"""Islands across machines on Ray: worker actors holding many islands, a migration server.

``--parallel=ray`` (or ``IslandsConfig(parallel="ray")``) runs the islands of
:mod:`azero_jax.islands` on a Ray cluster (:func:`run_ray`, which
:func:`~azero_jax.islands.run.run_islands` calls):

* one :class:`IslandWorker` actor per core (CPU: the per-core backend on one thread, as
  ``--parallel=processes``) or per GPU (JAX backend, the batched islands fill the
  device), each holding ``W / num_workers`` islands in an
  :class:`~azero_jax.islands.group.IslandGroup`;
* one :class:`MigrationServerActor` that keeps every island's latest upload, answers
  exchanges, collects progress and carries the stop request.

Workers checkpoint their islands into ``checkpoint_dir`` (it must be on a file system
every node sees, e.g. NFS, for multi-host fault tolerance). Actors are created with
``max_restarts`` and ``max_task_retries``: a worker whose process dies is restarted
by Ray, reloads its island checkpoints, registers again with the server (restarts are
counted there) and rejoins migration; the server keeps serving meanwhile.

Ray is an optional extra (``pip install 'azero_jax[ray]'``); it is imported only here,
lazily (and this module only when a run asks for Ray). Connect to a running cluster
with ``ray_address`` (``--ray_address``, e.g. ``ray://head:10001`` or ``auto``);
without it a local Ray instance is started.

Example:
    >>> from azero_jax import islands  # doctest: +SKIP
    >>> config = islands.IslandsConfig(  # doctest: +SKIP
    ...     num_islands=8, parallel="ray", num_workers=2)
    >>> result = islands.run_islands(spec, config, memory=memory)  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import os
import tempfile
import time

from azero_jax.islands.group import IslandGroup
from azero_jax.islands.migration import open_server, save_server
from azero_jax.islands.processes import split_islands, write_pids
from azero_jax.islands.progress import Progress
from azero_jax.islands.result import result_from_candidates


def require_ray():
    """Imports Ray or fails with the install command."""
    try:
        import ray
    except ImportError:
        raise ImportError("--parallel=ray needs Ray, an optional extra: "
                          "pip install 'azero_jax[ray]' (or pip install 'ray[default]')") from None
    return ray


class MigrationServerActor:
    """The migration server plus progress and stop state (a Ray actor)."""

    def __init__(self, seed: int, checkpoint_dir: str | None = None,
                 checkpoint_every_secs: float = 30.0):
        self.server = open_server(seed, checkpoint_dir)
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every_secs = float(checkpoint_every_secs)
        self.last_save = time.monotonic()
        self.totals: dict[int, dict] = {}
        self.stop = False

    def save(self) -> None:
        save_server(self.server, self.checkpoint_dir)
        self.last_save = time.monotonic()

    def exchange_many(self, uploads):
        return self.server.exchange_many(uploads)

    def register(self, worker: int) -> int:
        return self.server.register(worker)

    def report(self, worker: int, totals: dict) -> bool:
        self.totals[int(worker)] = totals
        if time.monotonic() - self.last_save >= self.checkpoint_every_secs:
            self.save()
        return self.stop

    def request_stop(self) -> None:
        self.stop = True

    def progress(self) -> list[dict]:
        return list(self.totals.values())

    def stats(self) -> dict:
        stats = self.server.stats()
        stats["worker_restarts"] = {str(k): max(0, v - 1)
                                    for k, v in sorted(self.server.registrations.items())}
        return stats


class _ActorServer:
    """The worker's view of the server actor (blocking exchange)."""

    def __init__(self, ray, handle):
        self.ray = ray
        self.handle = handle

    def exchange_many(self, uploads):
        return self.ray.get(self.handle.exchange_many.remote(
            [(int(island), packed) for island, packed in uploads]))


class IslandWorker:
    """Many islands in one actor (an :class:`~azero_jax.islands.group.IslandGroup`)."""

    def __init__(self, worker: int, payload: dict, server):
        import ray
        self.ray = ray
        self.worker = worker
        self.server = server
        self.restart_count = ray.get(server.register.remote(worker))
        self.group = IslandGroup(
            payload["spec"], payload["islands"], payload["config"], memory=payload["memory"],
            backend=payload["backend"], child_batch_size=payload["child_batch_size"],
            random_search=payload["random_search"],
            evaluator_options=payload["evaluator_options"], eval_seed=payload["eval_seed"],
            server=_ActorServer(ray, server), checkpoint_dir=payload["checkpoint_dir"],
            rank_tasks=payload["rank_tasks"], rank_seed=payload["rank_seed"])
        for island in self.group.islands:
            island.restarts = max(island.restarts, self.restart_count)
        self.payload = payload

    def pid(self) -> int:
        return os.getpid()

    def run(self):
        config = self.payload["config"]
        every = float(config.checkpoint_every_secs)
        state = {"save": time.monotonic(), "report": 0.0, "stop": False}

        def on_step(group):
            now = time.monotonic()
            if now - state["save"] >= every:
                group.save()
                state["save"] = now
            if now - state["report"] >= 0.2:
                state["stop"] = self.ray.get(self.server.report.remote(self.worker, group.totals()))
                state["report"] = now

        self.group.run(should_stop=lambda: state["stop"],
                       max_individuals=self.payload["max_individuals"], on_step=on_step,
                       stop_search_fitness=config.stop_search_fitness)
        self.group.save()
        self.ray.get(self.server.report.remote(self.worker, self.group.totals()))
        return self.group.candidates(), dict(self.group.calls)


def run_ray(spec, config, specs, *, seed, checkpoint_dir, max_individuals, progress_fn,
            should_stop, memory, backend, child_batch_size, random_search, evaluator_options,
            eval_seed, rank_tasks, rank_seed):
    """Runs the islands on Ray (see the module docstring); returns an IslandsResult."""
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        if config.ray_address:
            ray.init(address=config.ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=int(config.num_workers or os.cpu_count() or 2),
                     include_dashboard=False,
                     log_to_driver=False)
        started = True
    temporary = None
    if checkpoint_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="azero_ray_islands_")
        checkpoint_dir = temporary.name
    os.makedirs(checkpoint_dir, exist_ok=True)
    try:
        use_gpu = backend == "jax" and ray.cluster_resources().get("GPU", 0) >= 1
        if config.num_workers:
            num_workers = int(config.num_workers)
        elif use_gpu:
            num_workers = int(ray.cluster_resources()["GPU"])
        else:
            # One actor per core, as --parallel=processes on one machine: the host-side
            # search (mutations, FEC) is serial Python, so one actor per host would leave
            # all but one core to the evaluator's threads.
            num_workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        num_workers = max(1, min(num_workers, len(specs)))
        groups = split_islands(specs, num_workers)
        cpus = 1  # every CPU actor takes one core and evaluates on one thread
        options = dict(evaluator_options or {})
        if not use_gpu and backend in ("cpu", "auto"):
            options.setdefault("num_threads", cpus)
        env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
        if not use_gpu:
            env.update({"NUMBA_NUM_THREADS": str(cpus), "OMP_NUM_THREADS": "1",
                        "JAX_PLATFORMS": "cpu"})
        server_cls = ray.remote(num_cpus=0)(MigrationServerActor)
        server = server_cls.remote(seed, checkpoint_dir, float(config.checkpoint_every_secs))
        worker_cls = ray.remote(IslandWorker).options(
            num_cpus=0 if use_gpu else cpus, num_gpus=1 if use_gpu else 0,
            max_restarts=int(config.max_restarts),
            max_task_retries=int(config.max_restarts), runtime_env={"env_vars": env})
        payload = dict(spec=spec, config=config, memory=memory, backend=backend,
                       child_batch_size=child_batch_size, random_search=random_search,
                       evaluator_options=options, eval_seed=eval_seed,
                       checkpoint_dir=checkpoint_dir, max_individuals=max_individuals,
                       rank_tasks=rank_tasks, rank_seed=rank_seed)
        workers = [worker_cls.remote(k, dict(payload, islands=groups[k]), server)
                   for k in range(num_workers)]
        pids = ray.get([w.pid.remote() for w in workers])
        write_pids(checkpoint_dir, {k: pid for k, pid in enumerate(pids)})
        futures = {w.run.remote(): k for k, w in enumerate(workers)}
        progress = Progress(spec.progress_every, progress_fn, config.num_islands)
        results = {}
        stopping = False
        while len(results) < num_workers:
            ready, _ = ray.wait(list(futures), timeout=0.5)
            for future in ready:
                results[futures.pop(future)] = ray.get(future)
            totals = ray.get(server.progress.remote())
            if totals:
                record = progress.maybe(totals)
                if not stopping and record["stop_reached"]:
                    stopping = True
                if not stopping and should_stop is not None and should_stop():
                    stopping = True
                if stopping:
                    server.request_stop.remote()
        progress.maybe(ray.get(server.progress.remote()), force=True)
        ray.get(server.save.remote())
        stats = ray.get(server.stats.remote())
        candidates = sorted((c for cands, _ in results.values() for c in cands),
                            key=lambda c: c["island"])
        calls = collections.Counter()
        for _, worker_calls in results.values():
            calls.update(worker_calls)
        for actor in workers + [server]:
            ray.kill(actor)
        return result_from_candidates(candidates, progress.elapsed(), stats, stats["restarts"],
                                      calls)
    finally:
        if started:
            ray.shutdown()
        if temporary is not None:
            temporary.cleanup()
