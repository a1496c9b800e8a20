"""Evaluation of algorithms on tasks: the backend-independent entry points.

Two backends implement the reference evaluation loop (spec §4):

* ``"jax"`` -- :mod:`azero_jax.backends.jax.jax_evaluator`, a jitted, vmapped interpreter that runs
  a whole batch of (algorithm, task) pairs at once (the engine on accelerators);
* ``"cpu"`` -- :mod:`azero_jax.backends.cpu.cpu_evaluator`, a numba interpreter that runs one pair
  at a time per core at the C++ reference's speed (float64 always).

* ``"cuda"`` -- :mod:`azero_jax.backends.cuda.cuda_evaluator`, the cpu backend's interpreter
  compiled as a CUDA kernel with numba-cuda (one thread per pair; float32 or float64).

``"auto"`` takes ``"cpu"`` when JAX's default device is a CPU; on a GPU, the faster of
``"jax"`` and ``"cuda"`` in the committed figures (:mod:`azero_jax.backends.auto_backend`).

Random ops draw from streams keyed by ``(seed, task.index, algorithm_id)``, so a pair's
result does not depend on the batch it landed in. The cpu and cuda backends draw the same
counter-based streams; JAX uses ``jax.random`` (results of algorithms with random ops agree
with it in distribution only).

Example:
    >>> import azero_jax as az
    >>> task = az.tasks.scalar_linear_regression_task(4, 1000, 100, data_seed=1, param_seed=2)
    >>> grid = az.evaluate([az.generator.linear_model(0.01)], [task], num_scalars=4,
    ...                    num_vectors=3, num_matrices=1, backend="cpu")
    >>> bool(grid[0, 0] > 0.999)
    True
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from azero_jax.core.errors import ConfigError
# The configuration and result types live in leaf modules (the search imports them
# without the evaluation layer); re-exported here, where they were first defined.
from azero_jax.core.memory import MemoryConfig
from azero_jax.core.population import used_op_sets
from azero_jax.core.program import Algorithm, validate_addresses
from azero_jax.core.results import (MAX_ABS_ERROR, NEG_TWO_OVER_PI, PairResults,
                                    flip_and_squash)
from azero_jax.core.tasks import Task

BACKENDS = ("auto", "jax", "cpu", "cuda")
def padded_pairs(algorithm_index, task_index, train_steps, at_least: int = 0):
    """A pair batch padded for a compiled evaluator, so that each request shape compiles once.

    The size is the next power of two (at least 8) of ``max(n, at_least)``; the padding
    pairs repeat the first pair with 0 training steps (their results are dropped).

    Returns:
      ``(algorithm_index, task_index, train_steps, size)``.

    Example:
        >>> a, t, steps, size = padded_pairs([0, 1, 1], [0, 0, 1], [5, 5, 5], at_least=4)
        >>> size, a.tolist(), steps.tolist()
        (8, [0, 1, 1, 0, 0, 0, 0, 0], [5, 5, 5, 0, 0, 0, 0, 0])
    """
    algorithm_index = np.asarray(algorithm_index, dtype=np.int64)
    task_index = np.asarray(task_index, dtype=np.int64)
    n = len(algorithm_index)
    size = 8
    while size < max(n, at_least):
        size *= 2
    pad = size - n
    return (np.concatenate([algorithm_index, np.full(pad, algorithm_index[0])]),
            np.concatenate([task_index, np.full(pad, task_index[0])]),
            np.concatenate([np.asarray(train_steps, np.int64), np.zeros(pad, np.int64)]),
            size)


def combine_fitnesses(fitnesses, mode: str = "mean", axis: int = -1):
    """Combines per-task fitnesses: ``"mean"`` or ``"median"`` (the upper median, as the reference).

    Example:
        >>> float(combine_fitnesses([0.9, 0.12, 0.13, 0.1, 0.11], "median"))
        0.12
    """
    values = np.asarray(fitnesses, dtype=np.float64)
    mode = str(mode).lower().replace("_fitness_combination", "")
    if mode == "mean":
        # Summed in task order (a running sum: cumsum), then divided, as the reference's
        # loop: NumPy's sum and mean are pairwise and round differently from 8 tasks on (a
        # quarter of 10-task means differed in the last bit).
        n = values.shape[axis]
        if n == 0:
            return values.mean(axis=axis)
        return np.take(np.cumsum(values, axis=axis), n - 1, axis=axis) / n
    if mode == "median":
        n = values.shape[axis]
        return np.take(np.sort(values, axis=axis), n // 2, axis=axis)
    raise ValueError(f"unknown fitness combination {mode!r}; expected 'mean' or 'median'")


def default_backend(features_size: int | None = None, num_pairs: int | None = None,
                    dtype: str = "float32") -> str:
    """The backend ``"auto"`` resolves to.

    ``"cpu"`` when JAX's default device is a CPU. On a GPU, the faster of ``"jax"`` and
    ``"cuda"`` for this workload shape according to the committed figures
    (:mod:`azero_jax.backends.auto_backend`; ``"jax"`` without figures), logged once at INFO.
    """
    import logging

    import jax
    # Probing platforms logs "Unable to initialize backend 'tpu'" at INFO, which absl
    # binaries print: noise on every machine without a TPU.
    bridge_logger = logging.getLogger("jax._src.xla_bridge")
    level = bridge_logger.level
    bridge_logger.setLevel(max(level, logging.WARNING))
    try:
        if jax.default_backend() == "cpu":
            return "cpu"
        device_kind = getattr(jax.devices()[0], "device_kind", "")
    finally:
        bridge_logger.setLevel(level)
    from azero_jax.backends import auto_backend
    backend, reason = auto_backend.choose(device_kind, features_size=features_size,
                                          num_pairs=num_pairs, dtype=dtype,
                                          cuda_available=_cuda_available())
    auto_backend.say(reason)
    return backend


def _cuda_available() -> bool:
    import importlib.util
    if importlib.util.find_spec("numba_cuda") is None:
        return False
    from azero_jax.backends.cuda import cuda_evaluator
    return cuda_evaluator.available()


def resolve_backend(backend: str, features_size: int | None = None,
                    num_pairs: int | None = None, dtype: str = "float32") -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    return default_backend(features_size, num_pairs, dtype)


def check_tasks_fit_memory(tasks: Sequence[Task], memory: MemoryConfig) -> None:
    """Refuses tasks the memory cannot hold, whichever backend evaluates them.

    Vector labels live in ``v1`` and predictions in ``v2`` (so ``num_vectors >= 3``), and
    ``K`` classes need ``K <= F`` (a label vector has the features' size).

    Raises:
      ConfigError: naming the task and the memory size that is too small.
    """
    for t, task in enumerate(tasks):
        K, F = task.label_size, task.features_size
        if K and memory.num_vectors < 3:
            raise ConfigError(f"task {t} ({task.name or 'unnamed'}) has vector labels, which need "
                              f"v1 (labels) and v2 (predictions): num_vectors must be >= 3, "
                              f"got {memory.num_vectors}")
        if K > F:
            raise ConfigError(f"task {t} ({task.name or 'unnamed'}): {K} classes but only F={F} "
                              "features (labels live in a vector of size F)")


def evaluate_pairs(algorithms: Sequence[Algorithm], tasks: Sequence[Task],
                   algorithm_index, task_index, *, memory: MemoryConfig,
                   max_abs_error: float = MAX_ABS_ERROR, seed: int = 0, algorithm_ids=None,
                   train_steps=None, valid_steps: int | None = None,
                   record_errors: tuple[int, int] | None = None, backend: str = "auto",
                   dtype: str = "float32", op_sets=None, **backend_options) -> PairResults:
    """Evaluates B (algorithm, task) pairs with the reference loop of spec §4.

    Args:
      algorithms: the distinct algorithms referenced by ``algorithm_index``: a sequence
        of :class:`~azero_jax.core.program.Algorithm` or a
        :class:`~azero_jax.core.population.Programs` batch (what the search passes).
      tasks: the distinct tasks referenced by ``task_index``; ``task.index`` keys the
        random streams and the FEC fingerprint.
      algorithm_index, task_index: ``[B]`` integer arrays naming each pair.
      memory: address-space sizes.
      max_abs_error: the early-termination threshold of §4.4.
      seed: the evaluation seed for random ops.
      algorithm_ids: ``[len(algorithms)]`` caller ids keying random streams (default
        0..A-1); the same id on the same task gives the same random draws.
      train_steps: ``[B]`` requested training steps (all epochs); default each task's
        ``num_epochs * num_train``; 0 means rejected by the train budget.
      valid_steps: validation examples to run (default all); the loss is still divided
        by the task's total (as the reference's FEC run does).
      record_errors: ``(K_train, K_valid)`` to record the first per-step errors (FEC).
      backend: ``"auto"``, ``"jax"``, ``"cpu"`` or ``"cuda"``.
      dtype: ``"float32"`` or ``"float64"`` (JAX and CUDA backends; the CPU backend is
        float64).
      op_sets: optional per-component collections of op codes that the JAX backend
        compiles its switches for (default: the ops the algorithms use). Give the
        search's allowed ops plus the initial algorithms' ops so one compile serves a run.
      **backend_options: passed to the backend (e.g. ``num_threads`` for ``"cpu"``).
    """
    algorithm_index = np.asarray(algorithm_index, dtype=np.int64).reshape(-1)
    task_index = np.asarray(task_index, dtype=np.int64).reshape(-1)
    if algorithm_index.shape != task_index.shape:
        raise ValueError("algorithm_index and task_index must have the same length")
    if len(algorithm_index) and (algorithm_index.min() < 0 or algorithm_index.max() >= len(algorithms)):
        raise ValueError("algorithm_index out of range")
    if len(task_index) and (task_index.min() < 0 or task_index.max() >= len(tasks)):
        raise ValueError("task_index out of range")
    if not math.isfinite(max_abs_error) or max_abs_error <= 0:
        raise ValueError(f"max_abs_error must be a positive number, got {max_abs_error}")
    check_tasks_fit_memory(tasks, memory)
    from azero_jax.core.population import Programs
    if isinstance(algorithms, Programs):
        algorithms.validate_addresses(memory.num_scalars, memory.num_vectors, memory.num_matrices)
    else:
        for algorithm in algorithms:
            validate_addresses(algorithm, memory.num_scalars, memory.num_vectors,
                               memory.num_matrices)
    if algorithm_ids is None:
        algorithm_ids = np.arange(len(algorithms), dtype=np.int64)
    algorithm_ids = np.asarray(algorithm_ids, dtype=np.int64).reshape(-1)
    if len(algorithm_ids) != len(algorithms):
        raise ValueError("algorithm_ids must have one id per algorithm")
    if train_steps is None:
        train_steps = np.array([tasks[t].total_train_steps for t in task_index], dtype=np.int64)
    train_steps = np.broadcast_to(np.asarray(train_steps, dtype=np.int64),
                                  algorithm_index.shape).copy()
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    backend = resolve_backend(backend, max((t.features_size for t in tasks), default=None),
                              len(algorithm_index), dtype)
    kwargs = dict(memory=memory, max_abs_error=float(max_abs_error), seed=int(seed),
                  algorithm_ids=algorithm_ids, train_steps=train_steps, valid_steps=valid_steps,
                  record_errors=record_errors, **backend_options)
    if backend == "jax":
        from azero_jax.backends.jax import jax_evaluator
        return jax_evaluator.evaluate_pairs(algorithms, tasks, algorithm_index, task_index,
                                            dtype=dtype, op_sets=op_sets, **kwargs)
    if backend == "cuda":
        from azero_jax.backends.cuda import cuda_evaluator
        return cuda_evaluator.evaluate_pairs(algorithms, tasks, algorithm_index, task_index,
                                             dtype=dtype, **kwargs)
    from azero_jax.backends.cpu import cpu_evaluator
    return cpu_evaluator.evaluate_pairs(algorithms, tasks, algorithm_index, task_index, **kwargs)


def evaluate(algorithms: Sequence[Algorithm] | Algorithm, tasks: Sequence[Task] | Task, *,
             num_scalars: int, num_vectors: int, num_matrices: int,
             max_abs_error: float = MAX_ABS_ERROR, seed: int = 0, backend: str = "auto",
             dtype: str = "float32", algorithm_ids=None, op_sets=None,
             **backend_options) -> np.ndarray:
    """Fitness of every algorithm on every task: an ``[A, T]`` float64 array.

    Combine the task axis with :func:`combine_fitnesses`. See :func:`evaluate_pairs`
    for the arguments.
    """
    if isinstance(algorithms, Algorithm):
        algorithms = [algorithms]
    if isinstance(tasks, Task):
        tasks = [tasks]
    algorithms, tasks = list(algorithms), list(tasks)
    memory = MemoryConfig(num_scalars, num_vectors, num_matrices)
    a_index, t_index = np.meshgrid(np.arange(len(algorithms)), np.arange(len(tasks)),
                                   indexing="ij")
    results = evaluate_pairs(algorithms, tasks, a_index.ravel(), t_index.ravel(), memory=memory,
                             max_abs_error=max_abs_error, seed=seed, algorithm_ids=algorithm_ids,
                             backend=backend, dtype=dtype, op_sets=op_sets, **backend_options)
    return results.fitness.reshape(len(algorithms), len(tasks))


__all__ = [
    # Defined here: the backend-independent entry points.
    "BACKENDS", "check_tasks_fit_memory", "combine_fitnesses", "default_backend", "evaluate",
    "evaluate_pairs", "padded_pairs", "resolve_backend",
    # Re-exported from the leaf modules that define them.
    "MemoryConfig", "NEG_TWO_OVER_PI", "PairResults", "flip_and_squash", "used_op_sets",
]
