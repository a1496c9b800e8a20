"""Shared by the paper-reproduction harnesses: confidence intervals (no SciPy needed)
and an additive JSON results file.

* A rate ``k / n``: the Wilson score interval; with ``k = 0`` the exact (Clopper-Pearson)
  upper bound ``1 - (alpha/2)^(1/n)`` replaces Wilson's, which is too narrow there.
* A ratio of two rates ``(a / n_a) / (b / n_b)``: Katz's log interval,
  ``exp(log R +- z sqrt(1/a - 1/n_a + 1/b - 1/n_b))``. When a count is 0 the log ratio is
  undefined, so a one-sided bound is given instead: each rate's bound at level
  ``1 - alpha/2`` (Bonferroni, so jointly >= 1 - alpha), the other end 0 or infinity.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import json
import math
import multiprocessing
import os
import signal
import tempfile

Z95 = 1.959963984540054
Z975 = 2.241402727604947  # two-sided 97.5 %: each of two intervals in a Bonferroni pair


def _z(level: float) -> float:
    return {0.95: Z95, 0.975: Z975}[round(level, 6)]


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The interval of a binomial rate ``k / n`` (see the module docstring)."""
    if n <= 0:
        return 0.0, 1.0
    if k == 0:
        return 0.0, 1.0 - ((1.0 - level) / 2.0) ** (1.0 / n)
    z = _z(level)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_ratio(a: int, n_a: int, b: int, n_b: int, scale_a: float = 1.0,
               scale_b: float = 1.0) -> dict:
    """``R = (a / n_a / scale_a) / (b / n_b / scale_b)`` with a 95 % interval.

    ``a`` successes in ``n_a`` binomial trials (each trial ``scale_a`` evaluations: an
    evolution experiment), likewise ``b``; the rates compared are per evaluation.

    Returns:
      ``{"ratio", "ratio_ci_low", "ratio_ci_high", "ratio_ci_method"}``; ``ratio`` is None
      when a count is 0 (then one end of the interval is 0 or inf).
    """
    def per_eval(k, n, scale):
        return k / n / scale if n else float("nan")

    if n_a <= 0 or n_b <= 0:
        return {"ratio": None, "ratio_ci_low": 0.0, "ratio_ci_high": math.inf,
                "ratio_ci_method": "no data"}
    if a > 0 and b > 0:
        ratio = per_eval(a, n_a, scale_a) / per_eval(b, n_b, scale_b)
        se = math.sqrt(max(0.0, 1 / a - 1 / n_a + 1 / b - 1 / n_b))
        return {"ratio": ratio, "ratio_ci_low": ratio * math.exp(-Z95 * se),
                "ratio_ci_high": ratio * math.exp(Z95 * se), "ratio_ci_method": "Katz log"}
    a_lo, a_hi = wilson(a, n_a, 0.975)
    b_lo, b_hi = wilson(b, n_b, 0.975)
    low = (a_lo / scale_a) / (b_hi / scale_b) if a > 0 else 0.0
    high = (a_hi / scale_a) / (b_lo / scale_b) if b > 0 else math.inf
    return {"ratio": None, "ratio_ci_low": low, "ratio_ci_high": high,
            "ratio_ci_method": "bound: a count is 0 (97.5 % Wilson / exact per rate)"}


@contextlib.contextmanager
def locked_json(path: str, empty: dict):
    """The JSON at ``path`` (``empty`` if missing), held under an exclusive lock (a
    ``.lock`` file beside it, so concurrent runs add up) and atomically replaced on a
    normal exit: a crash mid-write leaves the previous file intact."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "." + os.path.basename(path) + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = empty
        if os.path.exists(path):
            with open(path) as handle:
                data = json.load(handle)
            if data.get("format") != empty.get("format"):
                raise ValueError(f"{path}: unknown format {data.get('format')!r}")
        yield data
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp.", suffix=".json")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the results from others
        os.replace(tmp, path)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def worker_pool(num_workers: int):
    """A pool of ``num_workers`` spawned processes that a stop shuts down with the run.

    SIGTERM (like Ctrl-C) ends the run: queued jobs are cancelled and the running ones
    finish, so no worker outlives it computing experiments nobody collects (their
    results are lost; a stopped run loses only its unfinished experiments).
    """
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    pool = concurrent.futures.ProcessPoolExecutor(
        num_workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        signal.signal(signal.SIGTERM, previous)
