"""Children in batches: tournaments, mutations and random algorithms over tensors.

The batched counterpart of :class:`~azero_jax.evolution.mutator.Mutator` and
:class:`~azero_jax.evolution.randomizer.Randomizer` (which stay as the readable, per-child
statement of the reference's rules and as the slow reference in tests). One call makes
a whole batch of children: the tournaments (§6.7), the parents' rows copied, and one
mutation action per child (§6.5-6.6) applied by a compiled kernel
(:mod:`azero_jax.evolution._search_kernels`) with the reference's distributions and bounds.

Random draws come from counter-based streams keyed by ``(seed, individual number)``,
so a child is the same whatever batch it was made in, and nothing but the seed needs
saving in a checkpoint. These streams are not the reference's (mt19937 + Abseil) nor
the per-child mutator's (Python's ``random``): the same distributions, other draws.

Example:
    >>> import numpy as np
    >>> import azero_jax as az
    >>> from azero_jax.evolution.batch_mutator import BatchMutator
    >>> from azero_jax.core.population import Programs
    >>> m = BatchMutator(([56], [27], [2, 3, 18, 23]), az.MemoryConfig(4, 3, 1),
    ...                  ["ALTER_PARAM"], mutate_prob=1.0)
    >>> parents = Programs.from_algorithms([az.generator.linear_model(0.01)])
    >>> children, actions = m.mutate(parents, np.array([0, 0]), ids=np.array([10, 11]), seed=1)
    >>> children.size.tolist(), actions.tolist()
    ([[1, 1, 4], [1, 1, 4]], [0, 0])
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from azero_jax.core import ops as ops_lib
from azero_jax.core.memory import MemoryConfig
from azero_jax.core.population import Programs
from azero_jax.core.population import search_kernels as _k
from azero_jax.evolution.mutator import (MUTATE_PROB, MUTATION_STYLES, MUTATION_TYPES,
                                         mutation_settings, mutation_style)


def op_info(memory: MemoryConfig) -> np.ndarray:
    """``[65, 5]`` per op: operand class, #in1 and #in2 addresses, first output address
    and #output addresses (the ranges of §6.4 for these memory sizes)."""
    k = _k()
    kinds = {ops_lib.NOOP: k.KIND_NOOP, ops_lib.DATA: k.KIND_DATA, ops_lib.UNARY: k.KIND_UNARY,
             ops_lib.BINARY: k.KIND_BINARY}
    sizes = {"S": memory.num_scalars, "V": memory.num_vectors, "M": memory.num_matrices}
    info = np.zeros((ops_lib.NUM_OPS, 5), dtype=np.int64)
    for spec in ops_lib.OPS:
        row = info[spec.code]
        row[k.I_KIND] = kinds[spec.kind]
        if spec.in1_type is not None:
            row[k.I_N1] = sizes[spec.in1_type]
        if spec.in2_type is not None:
            row[k.I_N2] = sizes[spec.in2_type]
        if spec.out_type is not None:
            first = ops_lib.FIRST_OUT_ADDRESS[spec.out_type]
            if sizes[spec.out_type] <= first:
                raise ValueError(f"memory has {sizes[spec.out_type]} {spec.out_type} addresses; "
                                 f"random output addresses need more than {first}")
            row[k.I_FIRST_OUT] = first
            row[k.I_N_OUT] = sizes[spec.out_type] - first
    return info


def action_weights(mutation_types: Sequence[str], style: str = "REFERENCE") -> tuple[np.ndarray, np.ndarray]:
    """``(actions, cumulative)``: the distinct actions and their cumulative probabilities.

    REFERENCE: uniform over the list (a duplicate weights its type). PAPER (paper S3,
    as ``mutator.Mutator`` states it): when both INSERT_INSTRUCTION and
    REMOVE_INSTRUCTION are listed, all their entries become one "insert or remove" entry
    that removes with probability 2/3 and inserts with 1/3; the rest as REFERENCE.
    """
    weights: dict[str, float] = {}
    for name in mutation_types:
        weights[name] = weights.get(name, 0.0) + 1.0
    if style == "PAPER" and {"INSERT_INSTRUCTION", "REMOVE_INSTRUCTION"} <= set(weights):
        weights["INSERT_INSTRUCTION"], weights["REMOVE_INSTRUCTION"] = 1.0 / 3.0, 2.0 / 3.0
    names = list(weights)
    total = sum(weights.values())
    cumulative = np.cumsum([weights[n] / total for n in names])
    cumulative[-1] = 1.0
    return (np.array([MUTATION_TYPES.index(n) for n in names], dtype=np.int64),
            cumulative.astype(np.float64))


class BatchMutator:
    """Makes batches of children with the reference's mutation rules.

    Args:
      op_lists: allowed ops per component (setup, predict, learn); duplicates weight.
      memory: address-space sizes.
      mutation_types: allowed mutation types (names or values; duplicates weight).
      mutate_prob: probability that a child is mutated at all.
      size_bounds: ``((min, max),) * 3``; 0 = unset (an unset max allows unlimited
        insertion; the largest reachable size is ``max - 1``, as in the reference).
      style: ``"REFERENCE"`` (the code's rules, default) or ``"PAPER"`` (see
        :func:`action_weights` and ``mutator.Mutator``).
    """

    def __init__(self, op_lists: Sequence[Sequence[int | str]], memory: MemoryConfig,
                 mutation_types: Sequence[str | int], mutate_prob: float = MUTATE_PROB,
                 size_bounds: Sequence[tuple[int, int]] = ((0, 0), (0, 0), (0, 0)),
                 style: str = "REFERENCE"):
        if len(op_lists) != 3:
            raise ValueError("op_lists needs one list per component function (setup, predict, learn)")
        self.op_lists = tuple(ops_lib.op_codes(ops) for ops in op_lists)
        self.memory = memory
        self.mutation_types, self.mutate_prob, self.size_bounds, mutable = mutation_settings(
            self.op_lists, mutation_types, mutate_prob, size_bounds)
        self.style = mutation_style(style)
        self.mutable = np.array(mutable, dtype=np.int64)
        self.grows = bool({"INSERT_INSTRUCTION", "TRADE_INSTRUCTION"} & set(self.mutation_types))
        self._info = op_info(memory)
        width = max(1, max(len(ops) for ops in self.op_lists))
        self._op_lists = np.zeros((3, width), dtype=np.int64)
        for c, ops in enumerate(self.op_lists):
            self._op_lists[c, :len(ops)] = ops
        self._op_counts = np.array([len(ops) for ops in self.op_lists], dtype=np.int64)
        self._actions, self._weights = action_weights(self.mutation_types, self.style)
        self._size_min = np.array([lo for lo, _ in self.size_bounds], dtype=np.int64)
        self._size_max = np.array([hi for _, hi in self.size_bounds], dtype=np.int64)
        self._style = MUTATION_STYLES.index(self.style)

    def tournaments(self, fitness: np.ndarray, ids: np.ndarray, seed: int,
                    tournament_size: int) -> np.ndarray:
        """The parent slot of each child (``tournament_size`` draws with replacement;
        strictly highest fitness wins, ties to the earliest draw)."""
        out = np.empty(len(ids), dtype=np.int64)
        _k().tournaments(np.ascontiguousarray(fitness, dtype=np.float64),
                            np.asarray(ids, dtype=np.int64), int(seed), int(tournament_size), out)
        return out

    def mutate(self, population: Programs, parents: np.ndarray, ids: np.ndarray,
               seed: int) -> tuple[Programs, np.ndarray]:
        """Children of ``population[parents]``, one per id.

        Returns:
          ``(children, actions)``: the children and, per child, the action applied
          (-1 for an unmutated child: mutation skipped or a blocked insert/remove).
        """
        ids = np.asarray(ids, dtype=np.int64)
        longest = int(population.size.max(initial=0))
        # Growth needs two spare columns (the new entry and a scratch column).
        length = longest + 2 if self.grows else population.length
        children = population.take(parents, length=length)
        applied = np.empty(len(ids), dtype=np.int64)
        _k().mutate(*children.fields(), children.size, ids, int(seed), self.mutate_prob,
                       self._actions, self._weights, self.mutable, self._info, self._op_lists,
                       self._op_counts, self._size_min, self._size_max, self._style, applied)
        return children, applied

    def mutants(self, population: Programs, fitness: np.ndarray, ids: np.ndarray, seed: int,
                tournament_size: int) -> Programs:
        """:meth:`tournaments` then :meth:`mutate` in one compiled call (what a search step
        does); the children come with their :meth:`Programs.keys` computed."""
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        longest = int(population.size.max(initial=0))
        length = longest + 2 if self.grows else population.length
        children = Programs.empty(n, length)
        keys = (np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.uint64))
        _k().make_mutants(*population.fields(), population.size,
                          np.ascontiguousarray(fitness, dtype=np.float64), int(tournament_size),
                          *children.fields(), children.size, ids, int(seed), self.mutate_prob,
                          self._actions, self._weights, self.mutable, self._info,
                          self._op_lists, self._op_counts, self._size_min, self._size_max,
                          self._style, np.empty(n, dtype=np.int64),
                          np.empty(n, dtype=np.int64), *keys)
        children.known_keys = keys
        return children

    def random_programs(self, ids: np.ndarray, seed: int, sizes: Sequence[int],
                        length: int | None = None) -> Programs:
        """RANDOM_ALGORITHM programs of the given function sizes, one per id."""
        ids = np.asarray(ids, dtype=np.int64)
        sizes = np.array([int(s) for s in sizes], dtype=np.int64)
        batch = Programs.zeros(len(ids), max(int(length or 0), int(sizes.max()) + 1, 1))
        _k().random_programs(*batch.fields(), batch.size, ids, int(seed), sizes, self._info,
                                self._op_lists, self._op_counts)
        return batch
