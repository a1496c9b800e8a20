"""GPU measurements that ``backend="auto"`` chooses by (see :mod:`azero_jax.backends.auto_backend`).

Records of ``benchmarks/bench_evaluator.py`` (as ``benchmarks/gpu_session.sh`` writes them
under ``$OUT/evaluator.jsonl``) for the ``jax`` and ``cuda`` backends, copied here when a
session that was lent a GPU commits its figures. Fields used: ``device``, ``backend``,
``dtype``, ``batch_size``, ``features_size`` and ``steps_per_s``.

None yet: no GPU has been lent to this project so far.
"""

FIGURES: list[dict] = []
