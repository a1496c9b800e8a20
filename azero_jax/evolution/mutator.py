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

Two styles (the spec extension ``mutation_style``): ``REFERENCE`` (the default: the C++
reference's rules, above) and ``PAPER`` (the rules the paper's supplement S3 states;
see :class:`Mutator` for both, precisely).

Example:
    >>> import random
    >>> from azero_jax.core import generator
    >>> from azero_jax.core.memory import MemoryConfig
    >>> from azero_jax.evolution.mutator import Mutator
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

from azero_jax.core import ops as ops_lib
from azero_jax.core.memory import MemoryConfig
from azero_jax.core.program import INSTRUCTION_DTYPE, Algorithm
from azero_jax.evolution.randomizer import Randomizer, _fraction

# The reference's default probability that a child is mutated
# (``SearchExperimentSpec.mutate_prob``, whose default this is).
MUTATE_PROB = 0.9

MUTATION_TYPES = (
    "ALTER_PARAM", "RANDOMIZE_INSTRUCTION", "RANDOMIZE_COMPONENT_FUNCTION", "IDENTITY",
    "INSERT_INSTRUCTION", "REMOVE_INSTRUCTION", "TRADE_INSTRUCTION", "RANDOMIZE_ALGORITHM",
)
SIGN_FLIP_PROB = 0.1
MUTATION_STYLES = ("REFERENCE", "PAPER")
# PAPER style: "instruction removal is twice as likely as addition" (paper S3).
PAPER_REMOVE_PROB = 2.0 / 3.0
PAPER_SCALE_LOW, PAPER_SCALE_HIGH = 0.5, 2.0
_INSERT_OR_REMOVE = "INSERT_OR_REMOVE"  # PAPER style's merged action
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


def mutate_paper_scale(x: float, rng: random_lib.Random) -> float:
    """PAPER style: ``x`` times a uniform number in [0.5, 2.0] (one draw; 0 stays 0)."""
    return x * (PAPER_SCALE_LOW + (PAPER_SCALE_HIGH - PAPER_SCALE_LOW) * rng.random())


def mutate_paper_scale_and_flip(x: float, rng: random_lib.Random) -> float:
    """PAPER style: :func:`mutate_paper_scale`, then the sign flipped with probability
    0.1 (a second draw): scaled always, and sometimes flipped too."""
    y = mutate_paper_scale(x, rng)
    return -y if rng.random() < SIGN_FLIP_PROB else y


def mutation_style(name: str) -> str:
    """Normalises a mutation style name (``REFERENCE`` or ``PAPER``)."""
    key = str(name).strip().upper()
    if key not in MUTATION_STYLES:
        raise ValueError(f"unknown mutation_style {name!r}; expected one of "
                         f"{', '.join(MUTATION_STYLES)}")
    return key


def mutation_settings(op_lists, mutation_types, mutate_prob, size_bounds) -> tuple:
    """Validated ``(mutation_types, mutate_prob, size_bounds, mutable_components)``: the
    settings every mutator checks the same way (``op_lists`` already as op codes)."""
    types = tuple(mutation_type(t) for t in mutation_types)
    if not types:
        raise ValueError("allowed_mutation_types must be non-empty")
    if not 0.0 <= float(mutate_prob) <= 1.0:
        raise ValueError(f"mutate_prob must be in [0, 1], got {mutate_prob}")
    bounds = tuple((int(lo), int(hi)) for lo, hi in size_bounds)
    if len(bounds) != 3 or any(lo < 0 or hi < 0 for lo, hi in bounds):
        raise ValueError("size_bounds needs three non-negative (min, max) pairs")
    mutable = tuple(c for c in range(3) if op_lists[c])
    needs_component = set(types) - {"IDENTITY", "RANDOMIZE_ALGORITHM"}
    if needs_component and not mutable:
        raise ValueError("every component function has an empty op list, so "
                         f"{sorted(needs_component)[0]}_MUTATION_TYPE cannot pick one")
    return types, float(mutate_prob), bounds, mutable


def _f32(x: float) -> float:
    """Clamps to the float32 range (the field is float32: a log-scale step may overflow)."""
    if x > _F32_MAX:
        return _F32_MAX
    if x < -_F32_MAX:
        return -_F32_MAX
    return x


class Mutator:
    """Applies mutations to algorithms, in the reference's or the paper's style.

    ``style="REFERENCE"`` (default) is the C++ reference, draw for draw:

    * the action: ``mutation_types[int(u * len(mutation_types))]``, ``u = rng.random()``
      (uniform over the list; duplicates weight);
    * ALTER_PARAM on a real-valued constant: ``|x|`` times ``exp(N(0, 1))``, sign kept,
      except that with probability 0.1 the sign is flipped instead (no scaling): the
      flip draw comes first (:func:`mutate_log_scale_or_flip`). The standard deviation
      of the Gaussian-set ops is only scaled, never flipped (:func:`mutate_log_scale`).

    ``style="PAPER"`` follows the paper's supplement S3 ("a uniformly random choice among
    ... (i) add or remove an instruction ...; instruction removal is twice as likely as
    addition; (ii) ... randomize ... a component function; (iii) modify a randomly chosen
    argument ... When modifying a real-valued constant, we multiply it by a uniform
    random number in [0.5, 2.0] and flip its sign with 10% probability"):

    * the action: when ``mutation_types`` holds both INSERT_INSTRUCTION and
      REMOVE_INSTRUCTION, all their entries are replaced by ONE "insert or remove" entry
      at the position of the first of them (the other entries keep their order and
      duplicates); the action is drawn uniformly from that list as above, and "insert or
      remove" then draws ``v = rng.random()``: REMOVE_INSTRUCTION if ``v < 2/3``, else
      INSERT_INSTRUCTION. So ``[ALTER_PARAM, RANDOMIZE_COMPONENT_FUNCTION,
      INSERT_INSTRUCTION, REMOVE_INSTRUCTION]`` gives the paper's three transformations
      1/3 each, removal 2/9 and insertion 1/9. With only one of the two listed, the list
      is used as it is. Size bounds apply as in the reference (a removal at the minimum
      size, or an insertion at ``max - 1``, leaves the algorithm unchanged).
    * ALTER_PARAM on a real-valued constant (the scalar constant ``d``, the vector and
      matrix constant values, the Gaussian mean, the uniform bounds): ``x`` times
      ``0.5 + 1.5 * rng.random()`` (uniform in [0.5, 2.0]), then with probability 0.1
      (a second draw, ``rng.random() < 0.1``) the sign flipped: always scaled, sometimes
      also flipped (:func:`mutate_paper_scale_and_flip`). The Gaussian standard deviation
      is scaled but never flipped, as in the reference (a negative deviation has no
      meaning). 0 stays 0. Results are clamped to the float32 range where the reference
      clamps. Everything else (which parameter is altered, index fractions, addresses,
      mutate_prob, the other actions) is the reference's.

    Args:
      op_lists: allowed ops per component (setup, predict, learn).
      memory: address-space sizes.
      mutation_types: the allowed mutation types (names or values; duplicates weight).
      mutate_prob: probability that a child is mutated at all.
      size_bounds: ``((min, max),) * 3`` per component; 0 = unset.
      style: ``"REFERENCE"`` or ``"PAPER"`` (the spec's ``mutation_style``).
    """

    def __init__(self, op_lists: Sequence[Sequence[int | str]], memory: MemoryConfig,
                 mutation_types: Sequence[str | int], mutate_prob: float = MUTATE_PROB,
                 size_bounds: Sequence[tuple[int, int]] = ((0, 0), (0, 0), (0, 0)),
                 style: str = "REFERENCE"):
        self.randomizer = Randomizer(op_lists, memory)
        self.op_lists = self.randomizer.op_lists
        (self.mutation_types, self.mutate_prob, self.size_bounds,
         self.mutable_components) = mutation_settings(self.op_lists, mutation_types, mutate_prob,
                                                      size_bounds)
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
        self.style = mutation_style(style)
        self._choices = self.mutation_types
        self._scale_or_flip, self._scale = mutate_log_scale_or_flip, mutate_log_scale
        if self.style == "PAPER":
            self._scale_or_flip, self._scale = mutate_paper_scale_and_flip, mutate_paper_scale
            merged = {"INSERT_INSTRUCTION", "REMOVE_INSTRUCTION"}
            if merged <= set(self.mutation_types):
                first = min(self.mutation_types.index(t) for t in merged)
                self._choices = tuple(
                    _INSERT_OR_REMOVE if k == first else t
                    for k, t in enumerate(self.mutation_types) if k == first or t not in merged)
                self._actions[_INSERT_OR_REMOVE] = self._insert_or_remove

    def mutate(self, parent: Algorithm, rng: random_lib.Random, num_mutations: int = 1) -> Algorithm:
        """The child of ``parent``: ``num_mutations`` actions with probability ``mutate_prob``."""
        if self.mutate_prob < 1.0 and not rng.random() < self.mutate_prob:
            return parent
        child = parent
        choices = self._choices
        for _ in range(num_mutations):
            action = choices[int(rng.random() * len(choices))]
            child = self._actions[action](child, rng)
        return child

    def apply(self, action: str, algorithm: Algorithm, rng: random_lib.Random) -> Algorithm:
        """Applies one action of the given type (for tests and tools)."""
        return self._actions[mutation_type(action)](algorithm, rng)

    # -- helpers ------------------------------------------------------------------------

    def _insert_or_remove(self, algorithm: Algorithm, rng) -> Algorithm:
        if rng.random() < PAPER_REMOVE_PROB:
            return self._remove(algorithm, rng)
        return self._insert(algorithm, rng)

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
            row[4] = self._scale_or_flip(float(row[4]), rng)
        elif name == "VECTOR_CONST_SET_OP":
            if rng.random() < 0.5:
                row[5] = _fraction(rng)
            else:
                row[6] = _f32(self._scale_or_flip(float(row[6]), rng))
        elif name == "MATRIX_CONST_SET_OP":
            choice = int(rng.random() * 3)
            if choice == 0:
                row[5] = _fraction(rng)
            elif choice == 1:
                row[6] = _fraction(rng)
            else:
                row[7] = _f32(self._scale_or_flip(float(row[7]), rng))
        elif "GAUSSIAN" in name:
            if rng.random() < 0.5:
                row[5] = _f32(self._scale_or_flip(float(row[5]), rng))
            else:
                row[6] = _f32(self._scale(float(row[6]), rng))
        elif "UNIFORM" in name:
            if rng.random() < 0.5:
                row[5] = _f32(self._scale_or_flip(float(row[5]), rng))
            else:
                row[6] = _f32(self._scale_or_flip(float(row[6]), rng))
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
