"""Checks at the door of a search run: paths, memory, the checkpoint folder and resumes.

Everything here runs before the search starts, so a mistake costs seconds instead of
a search: output paths that cannot be written, a configuration whose memory the machine
does not have, a checkpoint folder in use by another run, of the other mode (single
population vs islands), of an older format or written with other settings. Each problem
raises an :class:`~azero_jax.core.errors.AzeroError` whose message names it.

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with FolderLock(folder) as lock:
    ...     try:
    ...         FolderLock(folder).__enter__()
    ...     except CheckpointError as error:
    ...         "in use by another run" in str(error)
    True
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import tempfile

from azero_jax.core.errors import CheckpointError, ConfigError
from azero_jax.core.program import INSTRUCTION_DTYPE

LOCK_NAME = ".lock"
CHECKPOINT = "checkpoint.npz"  # the experiments loop's, single population or islands
OLD_ISLANDS_CHECKPOINT = "islands_run.json"  # the islands loop's before the one runner
KIND_FIELD = "experiment_kind"
# The kinds of run a checkpoint may hold: what it is, and how to resume it.
KINDS = {"single": ("a single-population run", "without island flags"),
         "islands": ("an islands run", "with the same island flags")}
# What the runner's checkpoint state holds that older checkpoints lack.
RUNNER_FIELDS = (KIND_FIELD, "config_fields", "experiment")
_GIB = 1024 ** 3

_JAX_MAX_BATCH = 8192  # pairs per device call of the JAX evaluator on an accelerator
# Bytes of one stored algorithm beyond its instructions (the Algorithm object and its
# three numpy arrays), measured with tracemalloc on CPython 3.11 / numpy 1.26.
_ALGORITHM_OVERHEAD_BYTES = 800


# --------------------------------------------------------------------------------------
# Writable paths.


def _probe_write(folder: str, what: str) -> None:
    """Creates and removes a file in ``folder`` (os.access says yes to root on anything)."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".azero-write-check-"):
            pass
    except OSError as error:
        reason = "permission denied" if isinstance(error, PermissionError) else \
            (error.strerror or str(error)).lower()
        raise ConfigError(f"{what}: cannot write in {folder} ({reason})") from None


def _existing_ancestor(path: str) -> str:
    folder = os.path.abspath(path)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    return folder


def check_writable_folder(path: str | None, flag: str) -> None:
    """Raises :class:`ConfigError` unless ``path`` is (or can be created as) a writable folder."""
    if not path:
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{flag}={path} is a file, expected a folder")
    ancestor = _existing_ancestor(path)
    if not os.path.isdir(ancestor):
        raise ConfigError(f"{flag}={path} cannot be created: {ancestor} is a file")
    _probe_write(ancestor, f"{flag}={path}")


def check_writable_file(path: str | None, flag: str) -> None:
    """Raises :class:`ConfigError` unless ``path`` can be appended to (or created)."""
    if not path:
        return
    if os.path.isdir(path):
        raise ConfigError(f"{flag}={path} is a folder, expected a file")
    if os.path.exists(path):
        try:
            with open(path, "a"):
                pass
        except OSError as error:
            raise ConfigError(f"{flag}={path}: cannot write ({error.strerror or error})") from None
        return
    check_writable_folder(os.path.dirname(os.path.abspath(path)), flag)


# --------------------------------------------------------------------------------------
# Memory.


def available_memory_bytes() -> int | None:
    """Memory the kernel can give without swapping (``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _task_bytes(specs) -> int:
    total = 0
    for spec in specs:
        labels = 10 if "multiclass" in spec.task_type else 1
        examples = int(spec.num_train_examples) + int(spec.num_valid_examples)
        per_task = examples * (int(spec.features_size) + labels) * 8 \
            + int(spec.num_train_examples) * int(spec.num_train_epochs) * 4
        # x2: the evaluators pack a contiguous copy of every task next to the task.
        total += 2 * per_task * int(spec.num_tasks)
    return total


def estimate_memory(spec, memory, task_collections=(), *, population_total: int | None = None,
                    backend: str = "cpu", child_batch_size: int | None = None) -> dict:
    """A lower estimate of the memory a search needs, in bytes, by part.

    Args:
      spec: the :class:`~azero_jax.spec.search_spec.SearchSpec`.
      memory: the :class:`~azero_jax.backends.evaluator.MemoryConfig`.
      task_collections: further task specs held at once (T_select, T_final, island sets).
      population_total: individuals held at once (default the spec's population; islands
        pass the sum over islands).
      backend: ``"cpu"`` (one evaluation memory per core) or ``"jax"`` (a batch at once).
      child_batch_size: children evaluated at once (JAX).

    Returns:
      ``{"population": ..., "tasks": ..., "evaluator": ..., "total": ...}``; also
      ``"evaluation_floats"``, the memory of one evaluation in floats.
    """
    P = int(population_total if population_total is not None else spec.population_size)
    sizes = [max(int(init), int(high)) for init, (_, high) in zip(spec.size_inits,
                                                                   spec.size_bounds)]
    # The whole population is built before any --max_individuals check applies.
    population = P * (_ALGORITHM_OVERHEAD_BYTES + INSTRUCTION_DTYPE.itemsize * sum(sizes) + 24)
    specs = list(spec.search_tasks) + [s for specs in task_collections for s in specs]
    tasks = _task_bytes(specs)
    F = max(int(s.features_size) for s in specs)
    S, V, M = memory.num_scalars, memory.num_vectors, memory.num_matrices
    floats = S + V * F + M * F * F + F * F  # memory plus a matrix-sized scratch
    if backend == "jax":
        pairs = int(child_batch_size or min(P, 1024)) * sum(int(s.num_tasks)
                                                            for s in spec.search_tasks)
        # float32, at most the JAX evaluator's largest batch per device call.
        evaluator = floats * 4 * min(pairs, _JAX_MAX_BATCH)
    else:
        evaluator = floats * 8 * (os.cpu_count() or 1)
    return {"population": population, "tasks": tasks, "evaluator": evaluator,
            "total": population + tasks + evaluator, "evaluation_floats": floats}


def accelerator_memory_bytes() -> int | None:
    """Memory of JAX's first accelerator (None on a CPU, or when JAX cannot say)."""
    try:
        import jax
        device = jax.devices()[0]
        if device.platform == "cpu":
            return None
        stats = device.memory_stats() or {}
        return int(stats["bytes_limit"]) if "bytes_limit" in stats else None
    except Exception:  # noqa: BLE001 -- an estimate's helper: unknown is a fine answer
        return None


def check_memory(spec, memory, task_collections=(), *, population_total=None,
                 backend: str = "cpu", child_batch_size=None, available=None) -> dict:
    """Raises :class:`ConfigError`, with the estimate, when the machine lacks the memory.

    Also refuses one evaluation memory beyond the CPU kernels' 32-bit offsets.
    """
    estimate = estimate_memory(spec, memory, task_collections, population_total=population_total,
                               backend=backend, child_batch_size=child_batch_size)
    F = max(int(s.features_size) for s in list(spec.search_tasks) +
            [s for specs in task_collections for s in specs])
    if backend != "jax" and estimate["evaluation_floats"] - F * F >= 2**31:
        raise ConfigError(f"features_size {F} with memory S={memory.num_scalars}, "
                          f"V={memory.num_vectors}, M={memory.num_matrices} needs "
                          f"{estimate['evaluation_floats'] - F * F:,} floats per evaluation, "
                          "beyond the cpu backend's limit of 2^31: lower features_size or "
                          "max_matrix_addresses")
    available = available_memory_bytes() if available is None else available
    host = estimate["total"]
    device = accelerator_memory_bytes() if backend == "jax" else None
    if device is not None:  # the evaluations live on the accelerator, not in host memory
        host -= estimate["evaluator"]
        if estimate["evaluator"] > device:
            raise ConfigError(
                f"one batch of evaluations needs about {estimate['evaluator'] / _GIB:.1f} GiB "
                f"of accelerator memory ({estimate['evaluation_floats']:,} floats each), more "
                f"than its {device / _GIB:.1f} GiB: lower features_size, the memory sizes or "
                "--child_batch_size")
    if available is not None and host > available:
        raise ConfigError(
            f"this configuration needs about {host / _GIB:.1f} GiB of memory "
            f"(population {estimate['population'] / _GIB:.1f} GiB, task data "
            f"{estimate['tasks'] / _GIB:.1f} GiB, evaluations "
            f"{(host - estimate['population'] - estimate['tasks']) / _GIB:.1f} GiB), more "
            f"than the {available / _GIB:.1f} GiB available: lower population_size, "
            "features_size or the number or size of the tasks")
    return estimate


# --------------------------------------------------------------------------------------
# The checkpoint folder: one run at a time, one mode, the same settings.


class FolderLock:
    """An exclusive ``flock`` on ``<folder>/.lock``, holding this process's PID.

    The kernel drops the lock when the process dies (even by SIGKILL), so a stale lock
    file never blocks a restart.
    """

    def __init__(self, folder: str, flag: str = "--checkpoint_dir"):
        self.folder = folder
        self.flag = flag
        self.fd: int | None = None

    def __enter__(self) -> "FolderLock":
        os.makedirs(self.folder, exist_ok=True)
        path = os.path.join(self.folder, LOCK_NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise CheckpointError(f"{self.folder} is in use by another run (pid {holder}); "
                                  f"wait for it to finish, stop it, or use another "
                                  f"{self.flag}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def check_old_format(folder: str | None) -> None:
    """Refuses a checkpoint folder of the islands loop before the one runner.

    That loop kept its state in ``islands_run.json``, a format no longer read.
    """
    if not folder:
        return
    path = os.path.join(folder, OLD_ISLANDS_CHECKPOINT)
    if os.path.exists(path):
        raise CheckpointError(f"{path}: an islands run of an older azero_jax (its loop state "
                              "is no longer read); start over with another --checkpoint_dir")


def check_mode(path: str, state: dict, kind: str) -> None:
    """Refuses a checkpoint of an older format, or of the other kind of run.

    Args:
      path: the checkpoint (for the message).
      state: its JSON state.
      kind: the kind of this run, a key of :data:`KINDS`.

    Raises:
      CheckpointError: one line naming the file and what to do.
    """
    missing = [name for name in RUNNER_FIELDS if name not in state]
    if missing:
        raise CheckpointError(f"{path}: written by an older azero_jax (no {missing[0]} field); "
                              "it cannot be resumed: start over with another --checkpoint_dir")
    stored = state[KIND_FIELD]
    if stored != kind:
        what, how = KINDS.get(stored, (f"a run of kind {stored!r}", "with its own flags"))
        raise CheckpointError(f"{os.path.dirname(path) or '.'} holds {what} "
                              f"({os.path.basename(path)}); resume it {how}, or use another "
                              "--checkpoint_dir")


def _digest(value) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:12]


def resume_fields(config, spec, islands=None) -> dict[str, str]:
    """A digest of every setting a resume must keep, by user-facing name.

    ``spec`` is the search spec in force (with ``--hurdles`` applied); ``islands`` the
    :class:`~azero_jax.islands.IslandsConfig` of an islands run. Execution details that
    do not change results (parallel mode, workers, checkpoint interval, backend,
    output paths) are left out, so they may change across a resume.
    """
    values = {f"search_experiment_spec.{f.name}": getattr(spec, f.name)
              for f in dataclasses.fields(spec)}
    values.update({
        "select_tasks": config.select_tasks, "final_tasks": config.final_tasks,
        "max_scalar_addresses": config.memory.num_scalars,
        "max_vector_addresses": config.memory.num_vectors,
        "max_matrix_addresses": config.memory.num_matrices,
        "max_experiments": config.max_experiments,
        "randomize_task_seeds": config.randomize_task_seeds,
        "sufficient_fitness": config.sufficient_fitness,
        "child_batch_size": config.child_batch_size, "random_search": config.random_search,
        "max_individuals": config.max_individuals,
        "stop_search_fitness": config.stop_search_fitness,
    })
    if islands is not None:
        for name in ("num_islands", "population_sizes", "task_sets", "island_task_sets",
                     "migration_interval", "migration_fraction", "stop_search_fitness"):
            values[f"islands.{name}"] = getattr(islands, name)
    return {name: _digest(value) for name, value in values.items()}


def fields_digest(fields: dict[str, str]) -> str:
    return _digest(sorted(fields.items()))


def check_resume(path: str, stored: dict | None, current: dict[str, str]) -> None:
    """Raises :class:`CheckpointError` naming every setting that differs from the checkpoint."""
    if stored is None:
        return
    changed = sorted(name for name in set(stored) | set(current)
                     if stored.get(name) != current.get(name))
    if changed:
        raise CheckpointError(
            f"{path} was written with other settings: {', '.join(changed)} "
            f"differ{'s' if len(changed) == 1 else ''}; resume with the same flags, or start "
            "over with another --checkpoint_dir (or delete this one)")


__all__ = ["FolderLock", "check_mode", "check_old_format", "check_resume", "resume_fields",
           "fields_digest",
           "check_writable_folder", "check_writable_file", "estimate_memory", "check_memory",
           "available_memory_bytes", "accelerator_memory_bytes"]
