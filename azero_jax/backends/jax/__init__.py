"""The ``"jax"`` backend: a jitted, vmapped interpreter
(:mod:`~azero_jax.backends.jax.jax_evaluator`)."""
