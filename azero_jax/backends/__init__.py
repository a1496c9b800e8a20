"""The backends layer: fitness of (algorithm, task) pairs on a device or on CPU cores.

:mod:`~azero_jax.backends.evaluator` holds the entry points (``evaluate``,
``evaluate_pairs``) and :mod:`~azero_jax.backends.backend` the backend object
(``make_evaluator(...).run(request)``); the backends themselves are the subpackages
:mod:`~azero_jax.backends.cpu` (numba, one pair per core), :mod:`~azero_jax.backends.jax`
(jitted and vmapped) and :mod:`~azero_jax.backends.cuda` (the cpu interpreter compiled
for an NVIDIA GPU), imported when first used so that ``import azero_jax`` loads neither
JAX nor numba. :mod:`~azero_jax.backends._eigen_order` (the reference's summation order)
is shared by all three.
"""
