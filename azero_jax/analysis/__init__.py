"""Tools to read, simplify, ablate, export and plot evolved algorithms (paper supplement S8).

* :mod:`~azero_jax.analysis.simplify` -- remove instructions that cannot affect any
  prediction (static liveness over the whole evaluation loop);
* :mod:`~azero_jax.analysis.ablation` -- knock-outs and knock-ins with fitness changes;
* :mod:`~azero_jax.analysis.export` -- standalone jitted JAX ``init/predict/learn``;
* :mod:`~azero_jax.analysis.plotting` -- search progress plots and learning curves
  (matplotlib, an optional extra: ``pip install azero_jax[plot]``).
"""

from azero_jax.analysis.export import (ExportedAlgorithm, TaskRun, export, export_for_task,
                                       export_source, run_task)

__all__ = ["ExportedAlgorithm", "TaskRun", "export", "export_for_task", "export_source",
           "run_task"]
