"""The evaluator backends as objects: each runs batched pair requests, ``run(...) -> PairResults``.

A search (or a group of islands) makes one with :func:`make_evaluator` and hands it every
batched request of its steps. Each backend owns what is particular to it:

* ``"cpu"`` -- the numba interpreter on the search's tensors, in the calling thread unless
  told otherwise (``num_threads``);
* ``"jax"`` -- pads every request to one compiled size (:func:`evaluator.padded_pairs`:
  a power of two at least the pairs of a whole step), float32 unless told otherwise;
* ``"cuda"`` -- the cpu interpreter compiled for the GPU
  (:mod:`azero_jax.backends.cuda.cuda_evaluator`);
* an ``evaluate_fn`` -- any ``evaluate_pairs``-compatible callable, given
  :class:`~azero_jax.core.program.Algorithm` lists (tests, custom evaluators).

The search validated its algorithms and draws addresses inside the memory, so the public
entry point's per-algorithm checks (:func:`azero_jax.backends.evaluator.evaluate_pairs`) are not
repeated here.

Example:
    >>> import numpy as np
    >>> from azero_jax.core import generator, tasks as tasks_lib
    >>> from azero_jax.core.memory import MemoryConfig
    >>> from azero_jax.core.population import Programs
    >>> task = tasks_lib.scalar_linear_regression_task(4, 1000, 100, data_seed=1, param_seed=2)
    >>> evaluator = make_evaluator("cpu", [task], memory=MemoryConfig(4, 3, 1),
    ...                            max_abs_error=100.0)
    >>> programs = Programs.from_algorithms([generator.linear_model(0.01)])
    >>> results = evaluator.run(programs, [0], [0], train_steps=[1000], seed=1,
    ...                         algorithm_ids=[0])
    >>> bool(results.fitness[0] > 0.999)
    True
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from azero_jax.backends.evaluator import padded_pairs, resolve_backend
from azero_jax.core.memory import MemoryConfig
from azero_jax.core.population import ProgramRows, Programs
from azero_jax.core.results import PairResults


class Evaluator:
    """A backend bound to the tasks, memory and options of one search.

    Args:
      tasks: the tasks the requests' task indices refer to.
      memory: address-space sizes.
      max_abs_error: the reference's abort threshold.
      op_sets: the ops each component may hold (the JAX backend compiles only those).
      options: backend keyword arguments (``num_threads``, ``dtype``, ``max_batch``, ...).
    """

    name = ""
    # Whether the backend decodes :class:`ProgramRows` in place (the others get a copy).
    reads_rows = False

    def __init__(self, tasks: Sequence, *, memory: MemoryConfig, max_abs_error: float,
                 op_sets=None, options: dict | None = None):
        self.tasks = list(tasks)
        self.memory = memory
        self.max_abs_error = float(max_abs_error)
        self.op_sets = op_sets
        self.options = dict(options or {})

    def run(self, algorithms: Programs, algorithm_index, task_index, *, train_steps,
            seed: int, algorithm_ids, valid_steps: int | None = None,
            record_errors: tuple[int, int] | None = None) -> PairResults:
        """Evaluates pair ``k`` = (``algorithms[algorithm_index[k]]``,
        ``tasks[task_index[k]]``) for ``train_steps[k]`` steps (see
        :func:`azero_jax.backends.evaluator.evaluate_pairs` for the arguments; ``algorithms`` may
        be :class:`~azero_jax.core.population.ProgramRows`)."""
        if isinstance(algorithms, ProgramRows) and not self.reads_rows:
            algorithms = algorithms.materialize()
        return self._run(
            algorithms, np.asarray(algorithm_index, np.int64), np.asarray(task_index, np.int64),
            dict(memory=self.memory, max_abs_error=self.max_abs_error, seed=int(seed),
                 algorithm_ids=np.asarray(algorithm_ids, np.int64),
                 train_steps=np.asarray(train_steps, np.int64), valid_steps=valid_steps,
                 record_errors=record_errors))

    def _run(self, algorithms, algorithm_index, task_index, kwargs) -> PairResults:
        raise NotImplementedError


class CpuEvaluator(Evaluator):
    name = "cpu"
    reads_rows = True

    def _run(self, algorithms, algorithm_index, task_index, kwargs):
        from azero_jax.backends.cpu import cpu_evaluator
        return cpu_evaluator.evaluate_pairs(algorithms, self.tasks, algorithm_index,
                                            task_index, **kwargs, **self.options)


class CudaEvaluator(Evaluator):
    name = "cuda"

    def _run(self, algorithms, algorithm_index, task_index, kwargs):
        from azero_jax.backends.cuda import cuda_evaluator
        return cuda_evaluator.evaluate_pairs(algorithms, self.tasks, algorithm_index,
                                             task_index, **kwargs, **self.options)


class JaxEvaluator(Evaluator):
    """Pads each request to a power of two of at least ``pad_to`` pairs, so that each
    request kind compiles once (padding pairs run 0 steps; their results are dropped)."""

    name = "jax"

    def __init__(self, tasks, *, pad_to: int = 0, **kwargs):
        super().__init__(tasks, **kwargs)
        self.pad_to = int(pad_to)

    def _run(self, algorithms, algorithm_index, task_index, kwargs):
        from azero_jax.backends.jax import jax_evaluator
        n = len(algorithm_index)
        algorithm_index, task_index, kwargs["train_steps"], size = padded_pairs(
            algorithm_index, task_index, kwargs["train_steps"], at_least=self.pad_to)
        options = dict(self.options)
        options.setdefault("dtype", "float32")
        options.setdefault("max_batch", size)
        out = jax_evaluator.evaluate_pairs(algorithms, self.tasks, algorithm_index, task_index,
                                           op_sets=self.op_sets, **kwargs, **options)
        return out.take(slice(0, n))


class FunctionEvaluator(Evaluator):
    """A user's ``evaluate_pairs``-compatible callable, given Algorithm lists."""

    def __init__(self, tasks, *, evaluate_fn: Callable, backend: str, **kwargs):
        super().__init__(tasks, **kwargs)
        self.evaluate_fn = evaluate_fn
        self.name = backend

    def _run(self, algorithms, algorithm_index, task_index, kwargs):
        return self.evaluate_fn(algorithms.algorithms(), self.tasks, algorithm_index,
                                task_index, backend=self.name, op_sets=self.op_sets,
                                **kwargs, **self.options)


_BACKENDS = {"cpu": CpuEvaluator, "cuda": CudaEvaluator, "jax": JaxEvaluator}


def make_evaluator(backend: str, tasks: Sequence, *, memory: MemoryConfig,
                   max_abs_error: float, op_sets=None, options: dict | None = None,
                   evaluate_fn: Callable | None = None, pad_to: int = 0) -> Evaluator:
    """The evaluator of ``backend`` (``"auto"`` resolved as the library resolves it), or
    of ``evaluate_fn`` when one is given (``backend`` is then passed to it as is).

    Args:
      pad_to: JAX only: the fewest pairs a request is padded to (a step's pairs).
    """
    common = dict(memory=memory, max_abs_error=max_abs_error, op_sets=op_sets, options=options)
    if evaluate_fn is not None:
        return FunctionEvaluator(tasks, evaluate_fn=evaluate_fn, backend=backend, **common)
    backend = resolve_backend(backend)
    if backend == "jax":
        return JaxEvaluator(tasks, pad_to=pad_to, **common)
    return _BACKENDS[backend](tasks, **common)


__all__ = ["Evaluator", "CpuEvaluator", "CudaEvaluator", "JaxEvaluator", "FunctionEvaluator",
           "make_evaluator"]
