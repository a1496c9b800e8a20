"""Ablations (knock-outs) and knock-ins of code sections (paper supplement S8c, S8d).

A *knock-out* removes a block of instructions from an algorithm; a *knock-in* inserts a
block (e.g. one found useful by an ablation) into another algorithm. :func:`compare`
evaluates variants against a base algorithm over several seeds and reports the
fitness change with its standard error; :func:`ablate` and :func:`single_knockouts`
build the knock-out variants for you.

By default knocked-out instructions become NO_OPs (``mode="noop"``): every other
instruction keeps its position, so random ops draw the same numbers as in the base
algorithm (the evaluators key random streams by algorithm id, and the JAX backend also
by instruction position), and variant and base are compared with common random numbers.
All variants are evaluated with the base's algorithm id.

Example:
    >>> import azero_jax as az
    >>> from azero_jax.analysis import ablation
    >>> task = az.tasks.scalar_linear_regression_task(4, 200, 50, data_seed=1, param_seed=2)
    >>> results = ablation.ablate(az.generator.linear_model(0.05), [task],
    ...                           {"lr scaling": ("learn", [1])}, seeds=[0], backend="cpu")
    >>> results[0].delta_mean < 0
    True
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Callable, Mapping, Sequence

import numpy as np

from azero_jax.analysis.export import touched_cells
from azero_jax.backends import evaluator as evaluator_lib
from azero_jax.core import ops as ops_lib
from azero_jax.core.program import (COMPONENTS, Algorithm, as_component, format_instruction,
                                    noop_component)

TasksArg = Sequence | Callable[[int], Sequence]


def component_index(component: int | str) -> int:
    """0, 1, 2 for ``"setup"``, ``"predict"``, ``"learn"`` (or the index itself)."""
    if isinstance(component, str):
        name = component.strip().lower()
        if name not in COMPONENTS:
            raise ValueError(f"unknown component {component!r}; expected one of {COMPONENTS}")
        return COMPONENTS.index(name)
    if int(component) not in (0, 1, 2):
        raise ValueError(f"component index must be 0, 1 or 2, got {component}")
    return int(component)


def _indices(algorithm: Algorithm, component: int, indices) -> list[int]:
    if isinstance(indices, slice):
        indices = range(*indices.indices(len(algorithm.components[component])))
    if isinstance(indices, (int, np.integer)):
        indices = [int(indices)]
    out = sorted({int(i) for i in indices})
    size = len(algorithm.components[component])
    for i in out:
        if not 0 <= i < size:
            raise ValueError(f"{COMPONENTS[component]} has {size} instructions; index {i} "
                             "is out of range")
    return out


def knock_out(algorithm: Algorithm, component: int | str, indices, mode: str = "noop"
              ) -> Algorithm:
    """``algorithm`` without the instructions ``indices`` (ints or a slice) of ``component``.

    Args:
      mode: ``"noop"`` replaces them by NO_OPs (positions kept); ``"remove"`` deletes them.
    """
    c = component_index(component)
    if mode not in ("noop", "remove"):
        raise ValueError(f"mode must be 'noop' or 'remove', got {mode!r}")
    chosen = _indices(algorithm, c, indices)
    part = np.array(algorithm.components[c])
    if mode == "noop":
        part[chosen] = noop_component(len(chosen))
    else:
        part = np.delete(part, chosen)
    return algorithm.replace(c, as_component(part))


_CELL = re.compile(r"^([svm])(\d+)$")


def _parse_cell(name: str) -> tuple[str, int]:
    match = _CELL.match(str(name).strip().lower())
    if match is None:
        raise ValueError(f"bad memory cell name {name!r}; expected e.g. 's3', 'v1', 'm0'")
    return match.group(1).upper(), int(match.group(2))


def rename_cells(instructions, mapping: Mapping[str, str]) -> np.ndarray:
    """Instructions with memory cells renamed, e.g. ``{"v3": "v7", "s2": "s5"}``."""
    renames = {}
    for old, new in mapping.items():
        (t_old, a_old), (t_new, a_new) = _parse_cell(old), _parse_cell(new)
        if t_old != t_new:
            raise ValueError(f"cannot rename {old!r} to {new!r}: different types")
        renames[(t_old, a_old)] = a_new
    out = np.array(as_component(instructions))
    for record in out:
        spec = ops_lib.OPS[int(record["op"])]
        for field, type_ in (("in1", spec.in1_type), ("in2", spec.in2_type),
                             ("out", spec.out_type)):
            if type_ is not None and (type_, int(record[field])) in renames:
                record[field] = renames[(type_, int(record[field]))]
    return as_component(out)


def knock_in(recipient: Algorithm, block, component: int | str, position: int | None = None,
             rename: Mapping[str, str] | None = None) -> Algorithm:
    """Inserts ``block`` into ``recipient``'s ``component`` before index ``position``.

    Args:
      recipient: the algorithm receiving the block.
      block: instructions (a structured array, a list of records, or an Algorithm
        component slice such as ``donor.learn[3:6]``).
      component: where to insert (``"setup"``, ``"predict"``, ``"learn"`` or 0..2).
      position: insertion index (default: the end).
      rename: optional cell renaming applied to the block, e.g. ``{"m2": "m1"}``.

    Example:
        >>> from azero_jax.core import generator
        >>> lin = generator.linear_model()
        >>> knock_in(lin, lin.learn[3:], "learn", rename={"v1": "v3"}).sizes
        (1, 1, 5)
    """
    c = component_index(component)
    block = as_component(block)
    if rename:
        block = rename_cells(block, rename)
    part = recipient.components[c]
    position = len(part) if position is None else int(position)
    if not 0 <= position <= len(part):
        raise ValueError(f"position {position} out of range for {COMPONENTS[c]} of length "
                         f"{len(part)}")
    return recipient.replace(c, as_component(np.concatenate([part[:position], block,
                                                             part[position:]])))


def memory_for(*algorithms: Algorithm, num_classes: int = 0) -> evaluator_lib.MemoryConfig:
    """The smallest memory holding every cell the algorithms use."""
    top = {"S": 1, "V": 0, "M": 0}
    for algorithm in algorithms:
        for type_, address in touched_cells(algorithm):
            top[type_] = max(top[type_], address)
    if num_classes:
        top["V"] = max(top["V"], 2)
    return evaluator_lib.MemoryConfig(top["S"] + 1, top["V"] + 1, top["M"] + 1)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A variant's fitness against the base's, over seeds.

    Attributes:
      label: the variant's name.
      algorithm: the variant.
      seeds: the seeds used.
      fitness: ``[num_seeds]`` the variant's mean fitness over the tasks, per seed.
      base_fitness: ``[num_seeds]`` the base's, per seed.
    """

    label: str
    algorithm: Algorithm
    seeds: tuple[int, ...]
    fitness: np.ndarray
    base_fitness: np.ndarray

    @property
    def delta(self) -> np.ndarray:
        return self.fitness - self.base_fitness

    @property
    def delta_mean(self) -> float:
        return float(np.mean(self.delta))

    @property
    def delta_stderr(self) -> float:
        n = len(self.delta)
        return float(np.std(self.delta, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")

    def __str__(self):
        return (f"{self.label}: fitness {np.mean(self.fitness):.4f} vs "
                f"{np.mean(self.base_fitness):.4f} (change {self.delta_mean:+.4f} "
                f"± {self.delta_stderr:.4f} over {len(self.seeds)} seeds)")


def compare(base: Algorithm, variants: Mapping[str, Algorithm], tasks: TasksArg,
            seeds: Sequence[int] = (0, 1, 2), memory: evaluator_lib.MemoryConfig | None = None,
            backend: str = "auto", **evaluate_options) -> list[Comparison]:
    """Evaluates ``base`` and every variant on the same tasks and seeds.

    Args:
      base: the reference algorithm.
      variants: label -> algorithm.
      tasks: a list of tasks used for every seed, or a function ``seed -> tasks`` (e.g.
        fresh task seeds per repetition).
      seeds: evaluation seeds (random ops; and task seeds when ``tasks`` is a function).
      memory: address-space sizes (default: the smallest that fits all algorithms).
      backend: the evaluator backend.
      **evaluate_options: passed to :func:`azero_jax.evaluate` (e.g. ``dtype``,
        ``max_abs_error``).

    Returns:
      One :class:`Comparison` per variant, in order.
    """
    labels = list(variants)
    algorithms = [base] + [variants[k] for k in labels]
    if memory is None:
        memory = memory_for(*algorithms)
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("seeds must not be empty")
    fitness = np.zeros((len(seeds), len(algorithms)))
    for i, seed in enumerate(seeds):
        seed_tasks = list(tasks(seed) if callable(tasks) else tasks)
        if not seed_tasks:
            raise ValueError("tasks must not be empty")
        evaluate_options.setdefault("op_sets", evaluator_lib.used_op_sets(algorithms))
        grid = evaluator_lib.evaluate(
            algorithms, seed_tasks, num_scalars=memory.num_scalars,
            num_vectors=memory.num_vectors, num_matrices=memory.num_matrices, seed=seed,
            backend=backend, algorithm_ids=np.zeros(len(algorithms), dtype=np.int64),
            **evaluate_options)
        fitness[i] = grid.mean(axis=1)
    return [Comparison(label, variants[label], seeds, fitness[:, j + 1], fitness[:, 0])
            for j, label in enumerate(labels)]


def ablate(algorithm: Algorithm, tasks: TasksArg, blocks: Mapping[str, tuple],
           seeds: Sequence[int] = (0, 1, 2), mode: str = "noop", **options) -> list[Comparison]:
    """Knocks out each named block and reports the fitness change (S8c).

    Args:
      algorithm: the algorithm to study.
      tasks: tasks, or ``seed -> tasks``.
      blocks: label -> ``(component, indices)`` or a list of such pairs (a code section
        may span components), e.g. ``{"noise": [("predict", [0, 1]), ("learn", [9])]}``.
      seeds: evaluation seeds.
      mode: ``"noop"`` (default) or ``"remove"`` (see :func:`knock_out`).
      **options: passed to :func:`compare`.
    """
    variants = {}
    for label, spec in blocks.items():
        parts = [spec] if isinstance(spec, tuple) else list(spec)
        # Knock out from the last component/index first so indices stay valid in "remove".
        variant = algorithm
        for component, indices in sorted(parts, key=lambda p: -component_index(p[0])):
            variant = knock_out(variant, component, indices, mode)
        variants[label] = variant
    return compare(algorithm, variants, tasks, seeds, **options)


def single_knockouts(algorithm: Algorithm, tasks: TasksArg, seeds: Sequence[int] = (0, 1, 2),
                     **options) -> list[Comparison]:
    """One knock-out per (non-NO_OP) instruction, labelled like ``"learn[2]: s3 = s2 * s3"``."""
    blocks = {}
    for c, part in enumerate(algorithm.components):
        for i, record in enumerate(part):
            if int(record["op"]) != ops_lib.NO_OP:
                blocks[f"{COMPONENTS[c]}[{i}]: {format_instruction(record)}"] = (c, [i])
    return ablate(algorithm, tasks, blocks, seeds, **options)


def format_comparisons(results: Sequence[Comparison]) -> str:
    """A plain-text table of comparisons, largest fitness drop first."""
    rows = sorted(results, key=lambda r: r.delta_mean)
    width = max([len(r.label) for r in rows] + [7])
    lines = [f"{'variant':<{width}}  {'fitness':>8}  {'change':>8}  {'stderr':>7}"]
    for r in rows:
        lines.append(f"{r.label:<{width}}  {np.mean(r.fitness):8.4f}  {r.delta_mean:+8.4f}  "
                     f"{r.delta_stderr:7.4f}")
    return "\n".join(lines)


__all__ = ["Comparison", "ablate", "compare", "component_index", "format_comparisons",
           "knock_in", "knock_out", "memory_for", "rename_cells", "single_knockouts"]
