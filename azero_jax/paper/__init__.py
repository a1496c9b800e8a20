"""The paper's harnesses: the baselines (:mod:`~azero_jax.paper.baselines`) and the final
evaluation on projected image tasks (:mod:`~azero_jax.paper.final_evaluation`)."""
