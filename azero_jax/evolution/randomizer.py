"""Random instructions, component functions and algorithms (spec §6.3-6.4).

The search controller draws from one Python :class:`random.Random` (a Mersenne
Twister whose state is a list of ints, so it checkpoints to JSON exactly). A draw
costs tens of nanoseconds, so building a random instruction costs about a
microsecond and a whole random algorithm a few tens of microseconds.

Draws follow the reference's distributions (not its streams, §11):

* addresses: inputs uniform in ``[0, n)``, outputs uniform in ``[first_out, n)``
  (scalar and vector outputs start at 1, matrix outputs at 0);
* ``SCALAR_CONST_SET``: ``d ~ U(-1, 1)``;
* ``VECTOR_CONST_SET``: index fraction ``U[0, 1)``, value ``U[-1, 1)``;
* ``MATRIX_CONST_SET``: two index fractions ``U[0, 1)``, value ``U[-1, 1)``;
* ``*_GAUSSIAN_SET``: mean ``U[-1, 1)``, stdev ``U[0, 1)``;
* ``*_UNIFORM_SET``: low and high independently ``U[-1, 1)`` (low may exceed high).

Example:
    >>> import random
    >>> from azero_jax.core.memory import MemoryConfig
    >>> from azero_jax.evolution.randomizer import Randomizer
    >>> r = Randomizer(([56], [27], [2, 3, 18, 23]), MemoryConfig(4, 3, 1))
    >>> algorithm = r.random_algorithm((5, 1, 4), random.Random(0))
    >>> algorithm.sizes
    (5, 1, 4)
"""

from __future__ import annotations

import random as random_lib
from typing import Sequence

import numpy as np

from azero_jax.core import ops as ops_lib
from azero_jax.core.memory import MemoryConfig
from azero_jax.core.program import INSTRUCTION_DTYPE, Algorithm, noop_component

# Largest float32 below 1: index fractions must stay < 1 after the float32 cast.
_MAX_FRACTION = float(np.nextafter(np.float32(1.0), np.float32(0.0)))
_FIRST_OUT = ops_lib.FIRST_OUT_ADDRESS
_BINARY, _UNARY, _DATA = ops_lib.BINARY, ops_lib.UNARY, ops_lib.DATA


def _fraction(rng: random_lib.Random) -> float:
    value = rng.random()
    return value if value < _MAX_FRACTION else _MAX_FRACTION


def _data_fields(code: int, rng: random_lib.Random) -> tuple[float, float, float, float]:
    """Random ``(d, f0, f1, f2)`` for a data op (§6.4)."""
    name = ops_lib.OPS[code].name
    if code == ops_lib.SCALAR_CONST_SET_OP:
        return (rng.uniform(-1.0, 1.0), 0.0, 0.0, 0.0)
    if name == "VECTOR_CONST_SET_OP":
        return (0.0, _fraction(rng), rng.uniform(-1.0, 1.0), 0.0)
    if name == "MATRIX_CONST_SET_OP":
        return (0.0, _fraction(rng), _fraction(rng), rng.uniform(-1.0, 1.0))
    if "GAUSSIAN" in name:
        return (0.0, rng.uniform(-1.0, 1.0), rng.random(), 0.0)
    if "UNIFORM" in name:
        return (0.0, rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0), 0.0)
    raise ValueError(f"{name} is not a data op")


class Randomizer:
    """Draws random instructions for the allowed ops of each component function.

    Args:
      op_lists: per component (setup, predict, learn), the allowed ops (codes or
        names; duplicates weight an op). An empty list means the function is never
        randomised.
      memory: address-space sizes (the ranges of random addresses).
    """

    def __init__(self, op_lists: Sequence[Sequence[int | str]], memory: MemoryConfig):
        if len(op_lists) != 3:
            raise ValueError("op_lists needs one list per component function (setup, predict, learn)")
        self.op_lists = tuple(ops_lib.op_codes(ops) for ops in op_lists)
        self.memory = memory
        sizes = {"S": memory.num_scalars, "V": memory.num_vectors, "M": memory.num_matrices}
        for type_, first in _FIRST_OUT.items():
            if sizes[type_] <= first:
                raise ValueError(f"memory has {sizes[type_]} {type_} addresses; random output "
                                 f"addresses need more than {first}")
        # Per op: (kind, input range, output range) as integers.
        self._in = {}
        self._out = {}
        for spec in ops_lib.OPS:
            if spec.out_type is not None:
                self._out[spec.code] = (_FIRST_OUT[spec.out_type],
                                        sizes[spec.out_type] - _FIRST_OUT[spec.out_type])
            if spec.in1_type is not None:
                self._in[(spec.code, 1)] = sizes[spec.in1_type]
            if spec.in2_type is not None:
                self._in[(spec.code, 2)] = sizes[spec.in2_type]
        self._kind = [spec.kind for spec in ops_lib.OPS]
        # Per op code: (kind, #in1 addresses, #in2 addresses, first out, #out addresses).
        self._info = [(spec.kind, self._in.get((spec.code, 1), 0), self._in.get((spec.code, 2), 0),
                       *self._out.get(spec.code, (0, 0))) for spec in ops_lib.OPS]

    # -- single draws ------------------------------------------------------------------

    def random_out(self, code: int, rng: random_lib.Random) -> int:
        first, count = self._out[code]
        return first + int(rng.random() * count)

    def random_in(self, code: int, which: int, rng: random_lib.Random) -> int:
        return int(rng.random() * self._in[(code, which)])

    def random_op(self, component: int, rng: random_lib.Random) -> int:
        ops = self.op_lists[component]
        if not ops:
            raise ValueError(f"component {component} has no allowed ops")
        return ops[int(rng.random() * len(ops))]

    def random_instruction_tuple(self, code: int, rng: random_lib.Random) -> tuple:
        """A fresh random instruction with op ``code`` as a tuple of the 8 fields.

        Draw order (as the reference): data ops ``out`` then data; unary ``in1, out``;
        binary ``in1, in2, out``.
        """
        kind, n1, n2, first, count = self._info[code]
        r = rng.random
        if kind == _BINARY:
            in1 = int(r() * n1)
            in2 = int(r() * n2)
            return (code, in1, in2, first + int(r() * count), 0.0, 0.0, 0.0, 0.0)
        if kind == _UNARY:
            in1 = int(r() * n1)
            return (code, in1, 0, first + int(r() * count), 0.0, 0.0, 0.0, 0.0)
        if kind == _DATA:
            out = first + int(r() * count)
            return (code, 0, 0, out) + _data_fields(code, rng)
        return (code, 0, 0, 0, 0.0, 0.0, 0.0, 0.0)

    def random_instruction(self, component: int, rng: random_lib.Random) -> tuple:
        """A random instruction for ``component`` (op drawn from its allowed list)."""
        return self.random_instruction_tuple(self.random_op(component, rng), rng)

    # -- whole functions -----------------------------------------------------------------

    def random_component(self, component: int, size: int, rng: random_lib.Random) -> np.ndarray:
        """``size`` random instructions for ``component`` (NO_OPs if it has no allowed ops)."""
        if not self.op_lists[component] or size == 0:
            return noop_component(size)
        ops, make, r = self.op_lists[component], self.random_instruction_tuple, rng.random
        n = len(ops)
        rows = [make(ops[int(r() * n)], rng) for _ in range(size)]
        array = np.array(rows, dtype=INSTRUCTION_DTYPE)
        array.setflags(write=False)
        return array

    def randomize(self, algorithm: Algorithm, rng: random_lib.Random) -> Algorithm:
        """Re-randomises every function with allowed ops, keeping sizes (``Randomize``)."""
        parts = list(algorithm.components)
        for c in range(3):
            if self.op_lists[c]:
                parts[c] = self.random_component(c, len(parts[c]), rng)
        return Algorithm(*parts)

    def random_algorithm(self, sizes: Sequence[int], rng: random_lib.Random) -> Algorithm:
        """The RANDOM_ALGORITHM initial model: NO_OPs of ``sizes``, then randomised."""
        # A function with no allowed ops stays NO_OPs, as in the reference.
        return Algorithm(*(self.random_component(c, int(size), rng)
                           for c, size in enumerate(sizes)))
