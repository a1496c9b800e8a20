"""azero_jax: AutoML-Zero (Real et al., ICML 2020) on JAX.

Evolve whole ML algorithms (Setup / Predict / Learn programs over 65 high-school ops)
from scratch. The main entry points:

* :func:`parse_algorithm` / :func:`format_algorithm`: the reference's text format;
* :func:`evaluate` / :func:`evaluate_pairs`: fitness of algorithms on tasks, batched on a
  device (``backend="jax"``) or compiled per core (``backend="cpu"``);
* :class:`Search` / :func:`search`: regularized evolution (or random search) with FEC,
  hurdles and the reference's budget accounting; :func:`run_experiments` adds T_select
  ranking and the final evaluation; :func:`run_islands` many islands with migration.

Every problem with what a user gives (spec, data, checkpoint, configuration) raises an
:class:`AzeroError` (see :mod:`azero_jax.core.errors`).
"""

from azero_jax import analysis, datasets  # datasets registers the projected task types
from azero_jax.backends.evaluator import (MemoryConfig, PairResults, combine_fitnesses, evaluate,
                                          evaluate_pairs, flip_and_squash)
from azero_jax.core import errors, generator, ops, tasks
from azero_jax.core.errors import AzeroError
from azero_jax.core.program import (Algorithm, ParseError, format_algorithm, instruction,
                                    parse_algorithm)
from azero_jax.core.tasks import Task, TaskSpec, make_tasks
from azero_jax.evolution import checkpoint, fec, hurdles, mutator, randomizer, train_budget
from azero_jax.evolution.experiment import ExperimentConfig, run_experiments
from azero_jax.evolution.regularized_evolution import Search, search
from azero_jax.islands import IslandsConfig, run_islands
from azero_jax.spec.search_spec import (SearchSpec, parse_search_experiment_spec,
                                        parse_task_collection)

__version__ = "0.1.0"

__all__ = [
    "Algorithm", "AzeroError", "ExperimentConfig", "IslandsConfig", "MemoryConfig", "PairResults",
    "ParseError", "Search", "SearchSpec", "Task", "TaskSpec", "analysis", "checkpoint",
    "combine_fitnesses", "datasets", "errors", "evaluate", "evaluate_pairs", "fec", "flip_and_squash",
    "format_algorithm", "generator", "hurdles", "instruction", "make_tasks", "mutator", "ops",
    "parse_algorithm", "parse_search_experiment_spec", "parse_task_collection", "randomizer",
    "run_experiments", "run_islands", "search", "tasks", "train_budget",
]
