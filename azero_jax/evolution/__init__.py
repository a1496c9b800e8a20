"""The search layer, on the host: regularized evolution and what a search needs around it.

Selection and mutation of population tensors (:mod:`~azero_jax.evolution.batch_mutator`,
its numba kernels, and the per-child reference rules :mod:`~azero_jax.evolution.mutator`
and :mod:`~azero_jax.evolution.randomizer`), the evaluation policy
(:mod:`~azero_jax.evolution.search_evaluator`: :mod:`~azero_jax.evolution.fec`,
:mod:`~azero_jax.evolution.hurdles`, :mod:`~azero_jax.evolution.train_budget`), the
search itself (:mod:`~azero_jax.evolution.regularized_evolution`: ``Search``), its
checkpoint and the experiments loop (:mod:`~azero_jax.evolution.experiment`).

(Not named ``search``: ``azero_jax.search`` is the public function.)
"""
