"""The reference's mutator (spec §6.5-6.6): all eight mutation types.

A child is the parent with one mutation action applied with probability
``mutate_prob`` (otherwise the unmodified parent, which is still evaluated). An action
is drawn uniformly from ``mutation_types`` (duplicates weight it); the component
function uniformly among those with a non-empty allowed-op list.

==============================  =========================================================
type                            effect
==============================  =========================================================
ALTER_PARAM                     one parameter of one instruction (op kept), §6.5
RANDOMIZE_INSTRUCTION           one instruction replaced by a fresh random one
RANDOMIZE_COMPONENT_FUNCTION    every instruction of one function re-randomised
IDENTITY                        nothing
INSERT_INSTRUCTION              a random instruction inserted if ``size < max - 1``
REMOVE_INSTRUCTION              one instruction removed if ``size > min``
TRADE_INSTRUCTION               insert one, then remove one of the ``size + 1`` (no bounds)
RANDOMIZE_ALGORITHM             all functions with allowed ops re-randomised
==============================  =========================================================

Size bounds: a ``max`` of 0 means unbounded insertion; the largest reachable size is
``max - 1`` (the reference's off-by-one); a ``min`` of 0 allows shrinking to empty.

Example:
    >>> import random
    >>> from azero_jax import generator
    >>> from azero_jax.evaluator import MemoryConfig
    >>> from azero_jax.mutator import Mutator
    >>> m = Mutator(([56], [27], [2, 3, 18, 23]), MemoryConfig(4, 3, 1), ["ALTER_PARAM"], 1.0)
    >>> child = m.mutate(generator.linear_model(), random.Random(1))
    >>> child.sizes
    (1, 1, 4)
"""

from __future__ import annotations

import math
import random as random_lib
from typing import Sequence

import numpy as np

from azero_jax import ops as ops_lib
from azero_jax.evaluator import MemoryConfig
from azero_jax.program import INSTRUCTION_DTYPE, Algorithm
from azero_jax.randomizer import Randomizer, _fraction

MUTATION_TYPES = (
    "ALTER_PARAM", "RANDOMIZE_INSTRUCTION", "RANDOMIZE_COMPONENT_FUNCTION", "IDENTITY",
    "INSERT_INSTRUCTION", "REMOVE_INSTRUCTION", "TRADE_INSTRUCTION", "RANDOMIZE_ALGORITHM",
)
SIGN_FLIP_PROB = 0.1
_F32_MAX = float(np.finfo(np.float32).max)


def mutation_type(name: str | int) -> str:
    """Normalises a mutation type given by value, short name or reference enum name."""
    if isinstance(name, (int, np.integer)):
        if not 0 <= int(name) < len(MUTATION_TYPES):
            raise ValueError(f"unknown MutationType value {name}")
        return MUTATION_TYPES[int(name)]
    key = str(name).strip().upper()
    if key.endswith("_MUTATION_TYPE"):
        key = key[:-len("_MUTATION_TYPE")]
    if key not in MUTATION_TYPES:
        raise ValueError(f"unknown mutation type {name!r}; expected one of "
                         f"{', '.join(t + '_MUTATION_TYPE' for t in MUTATION_TYPES)}")
    return key


def mutate_log_scale(x: float, rng: random_lib.Random) -> float:
    """Multiplies ``|x|`` by ``exp(N(0, 1))``, keeping the sign (0 stays 0)."""
    g = rng.gauss(0.0, 1.0)
    if x > 0:
        return math.exp(math.log(x) + g)
    if x < 0:
        return -math.exp(math.log(-x) + g)
    return -0.0


def mutate_log_scale_or_flip(x: float, rng: random_lib.Random) -> float:
    """With probability 0.1 returns ``-x``, else :func:`mutate_log_scale`."""
    if rng.random() < SIGN_FLIP_PROB:
        return -x
    return mutate_log_scale(x, rng)


def _f32(x: float) -> float:
    """Clamps to the float32 range (the field is float32: a log-scale step may overflow)."""
    if x > _F32_MAX:
        return _F32_MAX
    if x < -_F32_MAX:
        return -_F32_MAX
    return x


class Mutator:
    """Applies reference mutations to algorithms.

    Args:
      op_lists: allowed ops per component (setup, predict, learn).
      memory: address-space sizes.
      mutation_types: the allowed mutation types (names or values; duplicates weight).
      mutate_prob: probability that a child is mutated at all.
      size_bounds: ``((min, max),) * 3`` per component; 0 = unset.
    """

    def __init__(self, op_lists: Sequence[Sequence[int | str]], memory: MemoryConfig,
                 mutation_types: Sequence[str | int], mutate_prob: float = 0.9,
                 size_bounds: Sequence[tuple[int, int]] = ((0, 0), (0, 0), (0, 0))):
        self.randomizer = Randomizer(op_lists, memory)
        self.op_lists = self.randomizer.op_lists
        self.mutation_types = tuple(mutation_type(t) for t in mutation_types)
        if not self.mutation_types:
            raise ValueError("allowed_mutation_types must be non-empty")
        if not 0.0 <= float(mutate_prob) <= 1.0:
            raise ValueError(f"mutate_prob must be in [0, 1], got {mutate_prob}")
        self.mutate_prob = float(mutate_prob)
        self.size_bounds = tuple((int(lo), int(hi)) for lo, hi in size_bounds)
        if len(self.size_bounds) != 3 or any(lo < 0 or hi < 0 for lo, hi in self.size_bounds):
            raise ValueError("size_bounds needs three non-negative (min, max) pairs")
        self.mutable_components = tuple(c for c in range(3) if self.op_lists[c])
        needs_component = set(self.mutation_types) - {"IDENTITY", "RANDOMIZE_ALGORITHM"}
        if needs_component and not self.mutable_components:
            raise ValueError("every component function has an empty op list, so "
                             f"{sorted(needs_component)[0]}_MUTATION_TYPE cannot pick one")
        self._actions = {
            "ALTER_PARAM": self._alter_param,
            "RANDOMIZE_INSTRUCTION": self._randomize_instruction,
            "RANDOMIZE_COMPONENT_FUNCTION": self._randomize_component,
            "IDENTITY": lambda a, rng: a,
            "INSERT_INSTRUCTION": self._insert,
            "REMOVE_INSTRUCTION": self._remove,
            "TRADE_INSTRUCTION": self._trade,
            "RANDOMIZE_ALGORITHM": self.randomizer.randomize,
        }

    def mutate(self, parent: Algorithm, rng: random_lib.Random, num_mutations: int = 1) -> Algorithm:
        """The child of ``parent``: ``num_mutations`` actions with probability ``mutate_prob``."""
        if self.mutate_prob < 1.0 and not rng.random() < self.mutate_prob:
            return parent
        child = parent
        for _ in range(num_mutations):
            action = self.mutation_types[int(rng.random() * len(self.mutation_types))]
            child = self._actions[action](child, rng)
        return child

    def apply(self, action: str, algorithm: Algorithm, rng: random_lib.Random) -> Algorithm:
        """Applies one action of the given type (for tests and tools)."""
        return self._actions[mutation_type(action)](algorithm, rng)

    # -- helpers ------------------------------------------------------------------------

    def _component(self, rng) -> int:
        comps = self.mutable_components
        return comps[int(rng.random() * len(comps))]

    # -- actions ------------------------------------------------------------------------

    def _alter_param(self, algorithm: Algorithm, rng) -> Algorithm:
        c = self._component(rng)
        part = algorithm.components[c]
        if len(part) == 0:
            return algorithm
        i = int(rng.random() * len(part))
        row = list(part[i].item())
        self.alter_param_row(row, rng)
        new = part.copy()
        new[i] = tuple(row)
        new.setflags(write=False)
        return algorithm.replace(c, new)

    def alter_param_row(self, row: list, rng) -> None:
        """``AlterParam`` on a mutable 8-field row ``[op, in1, in2, out, d, f0, f1, f2]``."""
        code = int(row[0])
        kind = ops_lib.OPS[code].kind
        r = self.randomizer
        if kind == ops_lib.NOOP:
            return
        if kind == ops_lib.DATA:
            if rng.random() < 0.5:
                row[3] = r.random_out(code, rng)
            else:
                self._alter_data(row, rng)
        elif kind == ops_lib.UNARY:
            if rng.random() < 0.5:
                row[1] = r.random_in(code, 1, rng)
            else:
                row[3] = r.random_out(code, rng)
        else:
            choice = int(rng.random() * 3)
            if choice == 0:
                row[1] = r.random_in(code, 1, rng)
            elif choice == 1:
                row[2] = r.random_in(code, 2, rng)
            else:
                row[3] = r.random_out(code, rng)

    def _alter_data(self, row: list, rng) -> None:
        name = ops_lib.OPS[int(row[0])].name
        if name == "SCALAR_CONST_SET_OP":
            row[4] = mutate_log_scale_or_flip(float(row[4]), rng)
        elif name == "VECTOR_CONST_SET_OP":
            if rng.random() < 0.5:
                row[5] = _fraction(rng)
            else:
                row[6] = _f32(mutate_log_scale_or_flip(float(row[6]), rng))
        elif name == "MATRIX_CONST_SET_OP":
            choice = int(rng.random() * 3)
            if choice == 0:
                row[5] = _fraction(rng)
            elif choice == 1:
                row[6] = _fraction(rng)
            else:
                row[7] = _f32(mutate_log_scale_or_flip(float(row[7]), rng))
        elif "GAUSSIAN" in name:
            if rng.random() < 0.5:
                row[5] = _f32(mutate_log_scale_or_flip(float(row[5]), rng))
            else:
                row[6] = _f32(mutate_log_scale(float(row[6]), rng))
        elif "UNIFORM" in name:
            if rng.random() < 0.5:
                row[5] = _f32(mutate_log_scale_or_flip(float(row[5]), rng))
            else:
                row[6] = _f32(mutate_log_scale_or_flip(float(row[6]), rng))
            low, high = float(np.float32(row[5])), float(np.float32(row[6]))
            row[5], row[6] = min(low, high), max(low, high)
        else:
            raise ValueError(f"{name} has no data to alter")

    def _randomize_instruction(self, algorithm: Algorithm, rng) -> Algorithm:
        c = self._component(rng)
        part = algorithm.components[c]
        if len(part) == 0:
            return algorithm
        i = int(rng.random() * len(part))
        new = part.copy()
        new[i] = self.randomizer.random_instruction(c, rng)
        new.setflags(write=False)
        return algorithm.replace(c, new)

    def _randomize_component(self, algorithm: Algorithm, rng) -> Algorithm:
        c = self._component(rng)
        part = algorithm.components[c]
        return algorithm.replace(c, self.randomizer.random_component(c, len(part), rng))

    def _inserted(self, part: np.ndarray, c: int, rng) -> np.ndarray:
        row = np.array([self.randomizer.random_instruction(c, rng)], dtype=INSTRUCTION_DTYPE)
        position = int(rng.random() * (len(part) + 1))
        return np.concatenate([part[:position], row, part[position:]])

    def _insert(self, algorithm: Algorithm, rng) -> Algorithm:
        c = self._component(rng)
        part = algorithm.components[c]
        size_max = self.size_bounds[c][1]
        if size_max != 0 and len(part) >= size_max - 1:
            return algorithm
        new = self._inserted(part, c, rng)
        new.setflags(write=False)
        return algorithm.replace(c, new)

    def _remove(self, algorithm: Algorithm, rng) -> Algorithm:
        c = self._component(rng)
        part = algorithm.components[c]
        if len(part) <= self.size_bounds[c][0] or len(part) == 0:
            return algorithm
        position = int(rng.random() * len(part))
        new = np.concatenate([part[:position], part[position + 1:]])
        new.setflags(write=False)
        return algorithm.replace(c, new)

    def _trade(self, algorithm: Algorithm, rng) -> Algorithm:
        c = self._component(rng)
        grown = self._inserted(algorithm.components[c], c, rng)
        position = int(rng.random() * len(grown))
        new = np.concatenate([grown[:position], grown[position + 1:]])
        new.setflags(write=False)
        return algorithm.replace(c, new)
