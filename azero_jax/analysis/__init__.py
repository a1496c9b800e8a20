"""Tools to read, simplify, ablate, export and plot evolved algorithms (paper supplement S8).

Submodules (imported here as modules, so ``analysis.simplify.simplify(...)``):

* :mod:`~azero_jax.analysis.simplify` -- remove instructions that cannot affect any
  prediction (static liveness over the whole evaluation loop);
* :mod:`~azero_jax.analysis.ablation` -- knock-outs and knock-ins with fitness changes;
* :mod:`~azero_jax.analysis.export` -- standalone jitted JAX ``init/predict/learn``;
* :mod:`~azero_jax.analysis.plotting` -- search progress plots and learning curves
  (matplotlib, an optional extra: ``pip install azero_jax[plot]``).

Example:
    >>> from azero_jax import analysis
    >>> from azero_jax.core import generator
    >>> analysis.simplify.simplify(generator.pad(generator.linear_model(), 5, 5, 5)).sizes
    (1, 1, 4)
"""

import os

from azero_jax.analysis import ablation, export, plotting, simplify
from azero_jax.core.program import Algorithm, parse_algorithm

__all__ = ["ablation", "export", "load_algorithm", "plotting", "simplify"]


def load_algorithm(path: str | os.PathLike) -> Algorithm:
    """Loads an algorithm from a text file (reference format) or a search checkpoint.

    Args:
      path: a ``.txt`` algorithm file; a checkpoint ``.npz`` written by the search binary
        (its best algorithm so far by select fitness, else the fittest of the current
        population); or a directory holding ``best_algorithm.txt`` or a checkpoint.

    Raises:
      ValueError: if nothing loadable is found (the message names the path).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        names = sorted(os.listdir(path))
        for name in ["best_algorithm.txt"] + [n for n in names if n.endswith(".npz")]:
            if name in names:
                return load_algorithm(os.path.join(path, name))
        raise ValueError(f"{path}: no best_algorithm.txt or checkpoint .npz inside")
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such file")
    if not path.endswith(".npz"):
        with open(path) as handle:
            return parse_algorithm(handle.read())
    from azero_jax.evolution import checkpoint as checkpoint_lib
    state, arrays = checkpoint_lib.load(path)
    if state.get("best_text"):
        return parse_algorithm(state["best_text"])
    if "population_sizes" in arrays and len(arrays["population_sizes"]):
        population = checkpoint_lib.unpack_algorithms(arrays, "population")
        fitness = arrays["fitness"][:len(population)]
        return population[int(fitness.argmax())]
    raise ValueError(f"{path}: the checkpoint holds no algorithm yet")
