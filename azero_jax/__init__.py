"""azero_jax: AutoML-Zero on JAX (Real et al., ICML 2020)."""

from azero_jax import generator, ops, tasks
from azero_jax import analysis, datasets  # datasets registers the projected task types
from azero_jax.evaluator import (MemoryConfig, PairResults, combine_fitnesses, evaluate,
                                 evaluate_pairs, flip_and_squash)
from azero_jax.program import (Algorithm, ParseError, format_algorithm, instruction,
                               parse_algorithm)
from azero_jax.tasks import Task, TaskSpec, make_tasks

__version__ = "0.1.0"

__all__ = [
    "Algorithm", "MemoryConfig", "PairResults", "ParseError", "Task", "TaskSpec", "analysis",
    "combine_fitnesses", "evaluate", "evaluate_pairs", "flip_and_squash", "format_algorithm",
    "datasets", "generator", "instruction", "make_tasks", "ops", "parse_algorithm", "tasks",
]
