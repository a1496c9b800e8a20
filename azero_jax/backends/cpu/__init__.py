"""The ``"cpu"`` backend: a numba interpreter, one pair per core
(:mod:`~azero_jax.backends.cpu.cpu_evaluator`)."""
