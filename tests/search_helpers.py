"""Small specs and a fake evaluator shared by the search tests."""

from __future__ import annotations

import hashlib

import numpy as np

from azero_jax.backends.evaluator import MemoryConfig, PairResults
from azero_jax.core.tasks import TaskSpec
from azero_jax.spec.search_spec import SearchSpec

MEMORY = MemoryConfig(4, 3, 1)
LINEAR_OPS = (("SCALAR_CONST_SET_OP",), ("VECTOR_INNER_PRODUCT_OP",),
              ("SCALAR_DIFF_OP", "SCALAR_PRODUCT_OP", "SCALAR_VECTOR_PRODUCT_OP", "VECTOR_SUM_OP"))


def task_spec(task_type="scalar_linear_regression_task", num_train=30, num_valid=20, num_tasks=2,
              **kw):
    return TaskSpec(task_type, 4, num_train, num_valid, "rms_error", num_tasks=num_tasks, **kw)


def small_spec(**changes) -> SearchSpec:
    base = dict(
        search_tasks=(task_spec(),), population_size=12, tournament_size=3,
        mutation_types=("ALTER_PARAM", "RANDOMIZE_INSTRUCTION", "RANDOMIZE_COMPONENT_FUNCTION"),
        setup_ops=LINEAR_OPS[0], predict_ops=LINEAR_OPS[1], learn_ops=LINEAR_OPS[2],
        setup_size_init=3, predict_size_init=1, learn_size_init=4,
        initial_population="RANDOM_ALGORITHM", max_train_steps=5000, progress_every=1000)
    base.update(changes)
    return SearchSpec(**base)


class FakeEvaluator:
    """Deterministic fitness from the algorithm's bytes; counts calls and pairs.

    fitness = u(algorithm) * steps / full_steps, so a shorter (hurdle) run scores lower.
    Probe errors are derived from the algorithm's bytes and the task index.
    """

    def __init__(self):
        self.calls = []

    @staticmethod
    def _u(algorithm, salt=b""):
        digest = hashlib.blake2b(algorithm.key() + salt, digest_size=8).digest()
        return int.from_bytes(digest, "little") / 2**64

    def __call__(self, algorithms, tasks, algorithm_index, task_index, *, train_steps,
                 record_errors=None, valid_steps=None, seed=0, algorithm_ids=None, **kwargs):
        B = len(algorithm_index)
        steps = np.asarray(train_steps, dtype=np.int64)
        self.calls.append(dict(kind="probe" if record_errors else "eval", pairs=B,
                               algorithms=len(algorithms), seed=seed,
                               max_train_steps=int(steps.max()) if B else 0))
        fitness = np.empty(B)
        for p, (a, t) in enumerate(zip(algorithm_index, task_index)):
            full = tasks[t].total_train_steps
            fitness[p] = self._u(algorithms[a]) * min(steps[p], full) / full
        if not record_errors:
            return PairResults(fitness, steps.copy())
        kt, kv = record_errors
        terr = np.full((B, kt), np.nan)
        verr = np.full((B, kv), np.nan)
        for p, (a, t) in enumerate(zip(algorithm_index, task_index)):
            u = self._u(algorithms[a], bytes([tasks[t].index]))
            terr[p] = u
            verr[p] = u / 2
        return PairResults(fitness, steps.copy(), terr, np.full(B, kt), verr, np.full(B, kv))


def kill_when_then_resume(command, env, ready, *, kill_within=60.0, poll=0.05,
                          timeout=180.0):
    """Runs ``command``, SIGKILLs it once ``ready()`` is true (files it reads may be
    missing or half-written: OSError/ValueError/KeyError mean "not yet"), then runs the
    same command again to completion and returns that second run (a CompletedProcess)."""
    import signal
    import subprocess
    import time

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    killed, deadline = False, time.time() + kill_within
    while not killed and time.time() < deadline and process.poll() is None:
        try:
            if ready():
                process.send_signal(signal.SIGKILL)
                killed = True
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(poll)
    process.communicate(timeout=60)
    assert killed, "the run ended before it could be killed; make it longer"
    resumed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return resumed
