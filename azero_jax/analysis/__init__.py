"""Tools to read, simplify, ablate, export and plot evolved algorithms (paper supplement S8).

Submodules (imported here as modules, so ``analysis.simplify.simplify(...)``):

* :mod:`~azero_jax.analysis.simplify` -- remove instructions that cannot affect any
  prediction (static liveness over the whole evaluation loop);
* :mod:`~azero_jax.analysis.ablation` -- knock-outs and knock-ins with fitness changes;
* :mod:`~azero_jax.analysis.export` -- standalone jitted JAX ``init/predict/learn``;
* :mod:`~azero_jax.analysis.plotting` -- search progress plots and learning curves
  (matplotlib, an optional extra: ``pip install azero_jax[plot]``).

Example:
    >>> from azero_jax import analysis, generator
    >>> analysis.simplify.simplify(generator.pad(generator.linear_model(), 5, 5, 5)).sizes
    (1, 1, 4)
"""

from azero_jax.analysis import ablation, export, plotting, simplify

__all__ = ["ablation", "export", "plotting", "simplify"]
