"""The core layer: what every other layer builds on, none of it tied to a backend.

The op table (:mod:`~azero_jax.core.ops`), programs and their text format
(:mod:`~azero_jax.core.program`), memory sizes (:mod:`~azero_jax.core.memory`), the
evaluation results (:mod:`~azero_jax.core.results`), tasks (:mod:`~azero_jax.core.tasks`),
hand-coded algorithms (:mod:`~azero_jax.core.generator`), the user-error types
(:mod:`~azero_jax.core.errors`), the memory allocator setting
(:mod:`~azero_jax.core.allocator`) and the population as instruction tensors
(:mod:`~azero_jax.core.population`). Modules here import only from this layer at module
level (README, "How the code is laid out").
"""
