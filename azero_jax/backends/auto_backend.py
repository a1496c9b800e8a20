"""What ``backend="auto"`` picks on an accelerator, from committed measurements.

On a CPU ``"auto"`` is ``"cpu"``. On a GPU two backends can run: ``"jax"`` (vmapped
interpreter) and ``"cuda"`` (the numba-cuda kernel, when numba-cuda is installed). The
choice follows the figures committed in :mod:`azero_jax.backends._gpu_figures`: records of
``benchmarks/bench_evaluator.py`` (``device``, ``backend``, ``dtype``, ``steps_per_s``,
``batch_size`` and the workload's feature size ``features_size``) measured by
``benchmarks/gpu_session.sh``. For the running device (matched by its name) and the
workload's shape (feature size, number of pairs, dtype), the backend with the higher
training-step rate on the closest measured shape wins. Without figures for the device the
choice is ``"jax"``, and the reason says so.

Example:
    >>> choose("NVIDIA H100 80GB HBM3", features_size=16, num_pairs=10_000,
    ...        dtype="float32", figures=[], cuda_available=True)[0]
    'jax'
"""

from __future__ import annotations

import logging
import math

_LOG = logging.getLogger("azero_jax")
_SAID: set = set()


def load_figures() -> list[dict]:
    """The committed GPU measurements of the jax and cuda backends."""
    from azero_jax.backends._gpu_figures import FIGURES
    return [r for r in FIGURES if r.get("backend") in ("jax", "cuda")]


def _same_device(measured: str, running: str) -> bool:
    """Whether a record's ``device`` ("cuda: NVIDIA H100 ..." / "gpu: NVIDIA H100 ...")
    names the running device (compared without the platform prefix and case)."""
    strip = lambda name: name.split(":", 1)[-1].strip().lower()  # noqa: E731
    return bool(running) and strip(measured) == strip(running)


def choose(device_kind: str, *, features_size: int | None, num_pairs: int | None,
           dtype: str = "float32", figures: list[dict] | None = None,
           cuda_available: bool = True) -> tuple[str, str]:
    """``(backend, reason)`` for a GPU named ``device_kind`` and a workload's shape.

    Args:
      device_kind: the device's name (JAX's ``device_kind``, e.g. "NVIDIA H100 80GB HBM3").
      features_size, num_pairs: the workload's shape (None: any).
      dtype: ``"float32"`` or ``"float64"``.
      figures: benchmark records (default: the committed ones).
      cuda_available: whether numba-cuda can run here (else "jax" whatever the figures).
    """
    if not cuda_available:
        return "jax", "auto: numba-cuda is not installed here, so 'jax'"
    if figures is None:
        figures = load_figures()
    mine = [r for r in figures if _same_device(str(r.get("device", "")), device_kind)
            and r.get("dtype", dtype) == dtype and r.get("steps_per_s")]
    by_backend = {b: [r for r in mine if r["backend"] == b] for b in ("jax", "cuda")}
    if not by_backend["jax"] or not by_backend["cuda"]:
        return "jax", (f"auto: no committed figures compare 'jax' and 'cuda' on "
                       f"{device_kind!r} ({dtype}), so 'jax'")

    def distance(record) -> float:
        """How far a record's shape is from the workload's (log-scale batch, feature size)."""
        d = 0.0
        if features_size is not None and record.get("features_size") is not None:
            d += abs(math.log2(max(1, record["features_size"])) - math.log2(max(1, features_size)))
        if num_pairs is not None and record.get("batch_size"):
            d += abs(math.log2(record["batch_size"]) - math.log2(max(1, num_pairs))) / 4
        return d

    best = {}
    for backend, records in by_backend.items():
        nearest = min(distance(r) for r in records)
        best[backend] = max(r["steps_per_s"] for r in records if distance(r) == nearest)
    winner = max(best, key=best.get)
    return winner, (f"auto: '{winner}' ({best[winner] / 1e6:.1f} M steps/s vs "
                    f"{best['jax' if winner == 'cuda' else 'cuda'] / 1e6:.1f} M in the committed "
                    f"figures for {device_kind!r}, {dtype}, the nearest shape to F="
                    f"{features_size}, {num_pairs} pairs)")


def say(reason: str) -> None:
    """Logs a choice once per process (INFO on the ``azero_jax`` logger)."""
    if reason not in _SAID:
        _SAID.add(reason)
        _LOG.info(reason)
