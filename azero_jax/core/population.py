"""Algorithms as tensors: the representation the search works on.

:class:`Programs` holds ``N`` algorithms as struct-of-arrays instruction tensors, one
array per instruction field, each ``[N, 3, L]`` (algorithm, component function, position)
plus ``size [N, 3]``: ``op, in1, in2, out`` (int32), ``d`` (float64, the reference's
``activation_data``) and ``f0, f1, f2`` (float32, ``float_data_*``). Entries at and after a
function's size are all zero (NO_OP), so equal programs have equal tensors. ``L`` grows
when an insertion needs room.

A search population, a batch of children, the migrants of an island and a batch sent
to an evaluator are all :class:`Programs`; :class:`~azero_jax.core.program.Algorithm` objects
appear only at the edges (parsing, printing, analysis, the readable part of a
checkpoint): :meth:`Programs.from_algorithms` and :meth:`Programs.algorithm`.

Example:
    >>> import azero_jax as az
    >>> from azero_jax.core.population import Programs
    >>> batch = Programs.from_algorithms([az.generator.linear_model(0.01)] * 3)
    >>> batch.size.tolist()[0], batch.length
    ([1, 1, 4], 4)
    >>> batch.algorithm(2) == az.generator.linear_model(0.01)
    True
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from azero_jax.core import ops as ops_lib
from azero_jax.core.program import _OPERAND_LIMITS, INSTRUCTION_DTYPE, Algorithm


def search_kernels():
    """The compiled search kernels (:mod:`azero_jax.evolution._search_kernels`), imported on
    first use, so that ``import azero_jax`` loads no numba; the one import of them that the
    tensors and the search share."""
    from azero_jax.evolution import _search_kernels
    return _search_kernels


_k = search_kernels

FIELDS = ("op", "in1", "in2", "out", "d", "f0", "f1", "f2")
FIELD_DTYPES = {name: INSTRUCTION_DTYPE[name] for name in FIELDS}
_COSTS = np.array([op.cost for op in ops_lib.OPS], dtype=np.int64)
_RANDOM = np.zeros(ops_lib.NUM_OPS, dtype=bool)
_RANDOM[list(ops_lib.RANDOM_OPS)] = True


class Programs:
    """``N`` algorithms as padded instruction tensors (see the module docstring).

    Attributes:
      op, in1, in2, out, d, f0, f1, f2: ``[N, 3, L]`` field tensors.
      size: ``[N, 3]`` int32 component sizes.
    """

    __slots__ = FIELDS + ("size", "known_keys")

    def __init__(self, fields: dict, size: np.ndarray):
        for name in FIELDS:
            setattr(self, name, fields[name])
        self.size = size
        # (hi, lo) set by whoever computed them with the batch (the search's mutants); a
        # batch is not modified after that, and put() forgets them.
        self.known_keys = None

    # -- construction ---------------------------------------------------------------

    @classmethod
    def zeros(cls, n: int, length: int) -> "Programs":
        """``n`` empty algorithms with room for ``length`` instructions per function."""
        fields = {name: np.zeros((n, 3, length), dtype=dt) for name, dt in FIELD_DTYPES.items()}
        return cls(fields, np.zeros((n, 3), dtype=np.int32))

    @classmethod
    def empty(cls, n: int, length: int) -> "Programs":
        """Like :meth:`zeros`, uninitialised (for kernels that write every entry)."""
        fields = {name: np.empty((n, 3, length), dtype=dt) for name, dt in FIELD_DTYPES.items()}
        return cls(fields, np.empty((n, 3), dtype=np.int32))

    @classmethod
    def from_algorithms(cls, algorithms: Sequence[Algorithm], length: int | None = None) -> "Programs":
        """Packs algorithms (``length`` at least their longest function)."""
        longest = max((max(a.sizes) for a in algorithms), default=0)
        length = max(int(length or 0), longest, 1)
        batch = cls.zeros(len(algorithms), length)
        for j, algorithm in enumerate(algorithms):
            for c, part in enumerate(algorithm.components):
                n = len(part)
                batch.size[j, c] = n
                for name in FIELDS:
                    getattr(batch, name)[j, c, :n] = part[name]
        return batch

    @classmethod
    def concatenate(cls, parts: Sequence["Programs"]) -> "Programs":
        length = max(p.length for p in parts)
        parts = [p.with_length(length) for p in parts]
        return cls({name: np.concatenate([getattr(p, name) for p in parts]) for name in FIELDS},
                   np.concatenate([p.size for p in parts]))

    # -- shape ------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.op.shape[0]

    @property
    def length(self) -> int:
        """Instructions each function has room for (``L``)."""
        return self.op.shape[2]

    def fields(self) -> tuple[np.ndarray, ...]:
        """The field tensors in :data:`FIELDS` order (as the kernels take them)."""
        # Spelled out: a step asks for them dozens of times.
        return (self.op, self.in1, self.in2, self.out, self.d, self.f0, self.f1, self.f2)

    def with_length(self, length: int) -> "Programs":
        """The same algorithms with room for ``length`` instructions (a copy if it grows;
        never shorter than the longest function)."""
        if length == self.length:
            return self
        longest = int(self.size.max()) if len(self) else 0
        if length < longest:
            raise ValueError(f"cannot shrink to {length}: a function has {longest} instructions")
        fields = {}
        for name in FIELDS:
            array = getattr(self, name)
            if length > self.length:
                pad = np.zeros(array.shape[:2] + (length - self.length,), dtype=array.dtype)
                fields[name] = np.concatenate([array, pad], axis=2)
            else:
                fields[name] = np.ascontiguousarray(array[:, :, :length])
        return Programs(fields, self.size)

    def take(self, index, length: int | None = None) -> "Programs":
        """The algorithms at ``index`` (a copy, with room for ``length`` instructions)."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        length = max(int(length or 0), self.length)
        # copy_rows writes every entry of the rows it fills: no need to zero them first.
        batch = Programs.empty(len(index), length)
        _k().copy_rows(*self.fields(), self.size, index, *batch.fields(), batch.size,
                       np.arange(len(index), dtype=np.int64))
        return batch

    def put(self, slots, other: "Programs") -> None:
        """Writes ``other``'s algorithms into ``slots`` in place (growing ``L`` if needed)."""
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        self.known_keys = None
        longest = int(other.size.max(initial=0))
        if longest > self.length:
            grown = self.with_length(max(longest, other.length))
            for name in FIELDS:
                setattr(self, name, getattr(grown, name))
        _k().copy_rows(*other.fields(), other.size, np.arange(len(other), dtype=np.int64),
                       *self.fields(), self.size, slots)

    # -- the edges: Algorithm objects --------------------------------------------------

    def algorithm(self, j: int) -> Algorithm:
        """Algorithm ``j`` as an :class:`~azero_jax.core.program.Algorithm`."""
        parts = []
        for c in range(3):
            n = int(self.size[j, c])
            part = np.empty(n, dtype=INSTRUCTION_DTYPE)
            for name in FIELDS:
                part[name] = getattr(self, name)[j, c, :n]
            parts.append(part)
        return Algorithm(*parts)

    def algorithms(self, index=None) -> list[Algorithm]:
        index = range(len(self)) if index is None else index
        return [self.algorithm(int(j)) for j in index]

    # -- what evaluators and the search need ------------------------------------------------

    def valid_mask(self) -> np.ndarray:
        """``[N, 3, L]`` True for real instructions (not padding)."""
        return np.arange(self.length)[None, None, :] < self.size[:, :, None]

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """``(instructions, bounds)``: every real instruction in one structured array (per
        algorithm Setup, Predict, Learn) and per algorithm its 4 boundaries (setup start,
        predict start, learn start, end)."""
        mask = self.valid_mask()
        flat = np.empty(int(mask.sum()), dtype=INSTRUCTION_DTYPE)
        for name in FIELDS:
            flat[name] = getattr(self, name)[mask]
        ends = np.cumsum(self.size.astype(np.int64).ravel()).reshape(-1, 3)
        bounds = np.zeros((len(self), 4), dtype=np.int64)
        bounds[:, 1:] = ends
        bounds[1:, 0] = ends[:-1, 2]
        return flat, bounds

    def component(self, c: int, length: int) -> np.ndarray:
        """Function ``c`` of every algorithm as a ``[N, length]`` structured array."""
        if length < int(self.size[:, c].max(initial=0)):
            raise ValueError(f"{length} is shorter than the longest function {c}")
        block = np.zeros((len(self), length), dtype=INSTRUCTION_DTYPE)
        n = min(length, self.length)
        for name in FIELDS:
            block[name][:, :n] = getattr(self, name)[:, c, :n]
        return block

    def op_sets(self) -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
        """The ops each component function uses anywhere in the batch."""
        mask = self.valid_mask()
        return tuple(frozenset(np.unique(self.op[:, c][mask[:, c]]).tolist()) for c in range(3))

    def offsets(self, rows=None) -> tuple[np.ndarray, np.ndarray]:
        """Where each function lies in the flattened fields: ``(first, sizes)``, both
        ``[A, 3]`` int64, for every algorithm or those in ``rows`` (which kernels then
        read in place)."""
        L = self.length
        rows = np.arange(len(self), dtype=np.int64) if rows is None else rows
        first = (np.asarray(rows, dtype=np.int64)[:, None] * 3 + np.arange(3)) * L
        return first, self.size[rows].astype(np.int64)

    def uses_random_ops(self, rows=None) -> np.ndarray:
        """``[N]`` (or ``[len(rows)]``) whether each algorithm contains a random op."""
        op = self.op if rows is None else self.op[rows]
        return _RANDOM[op].any(axis=(1, 2))  # padding is NO_OP, not random

    def costs(self) -> np.ndarray:
        """``[N, 3]`` the reference's compute cost of each function (§8; NO_OPs cost too)."""
        return np.where(self.valid_mask(), _COSTS[self.op], 0).sum(axis=2)

    def keys(self) -> tuple[np.ndarray, np.ndarray]:
        """``(hi, lo)`` 128-bit keys of the exact content (sizes and every field's bits)."""
        if self.known_keys is not None:
            return self.known_keys
        n = len(self)
        hi = np.empty(n, dtype=np.uint64)
        lo = np.empty(n, dtype=np.uint64)
        _k().program_hashes(self.op, self.in1, self.in2, self.out, self.d.view(np.uint64),
                               self.f0.view(np.uint32), self.f1.view(np.uint32),
                               self.f2.view(np.uint32), self.size, hi, lo)
        return hi, lo

    def validate_addresses(self, num_scalars: int, num_vectors: int, num_matrices: int) -> None:
        """Raises ValueError naming the first instruction that addresses memory outside."""
        from azero_jax.core.program import validate_addresses

        limits = np.array([num_scalars, num_vectors, num_matrices, np.iinfo(np.int64).max])
        kinds = _OPERAND_LIMITS[self.op]  # [N, 3, L, 3]
        addresses = np.stack([self.in1, self.in2, self.out], axis=-1)
        bad = ((addresses < 0) | (addresses >= limits[kinds])) & (kinds >= 0)
        bad &= self.valid_mask()[..., None]
        if bad.any():
            j = int(np.argwhere(bad.any(axis=(1, 2, 3)))[0, 0])
            validate_addresses(self.algorithm(j), num_scalars, num_vectors, num_matrices)


class ProgramRows:
    """Rows of a :class:`Programs` batch, referenced rather than copied (what a search's
    evaluation requests carry: the children that still need a run).

    The cpu backend decodes the rows where they are; other consumers call
    :meth:`materialize` (or :func:`as_programs`) for a batch of their own.
    """

    __slots__ = ("programs", "rows")

    def __init__(self, programs: Programs, rows: np.ndarray):
        self.programs = programs
        self.rows = np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def materialize(self) -> Programs:
        """The rows as a batch of their own (a copy)."""
        return self.programs.take(self.rows)

    def keys(self) -> tuple[np.ndarray, np.ndarray]:
        hi, lo = self.programs.keys()
        return hi[self.rows], lo[self.rows]

    def algorithms(self, index=None) -> list[Algorithm]:
        return self.programs.algorithms(self.rows if index is None else self.rows[index])


def as_programs(algorithms) -> Programs:
    """``algorithms`` as :class:`Programs` (no copy if it already is)."""
    if isinstance(algorithms, Programs):
        return algorithms
    if isinstance(algorithms, ProgramRows):
        return algorithms.materialize()
    return Programs.from_algorithms(list(algorithms))


def used_op_sets(algorithms: Sequence[Algorithm], extra=None) -> tuple[frozenset[int], ...]:
    """Per-component op codes used by ``algorithms`` (plus ``extra`` per component)."""
    sets = [set(), set(), set()]
    if isinstance(algorithms, Programs):
        for c, used in enumerate(algorithms.op_sets()):
            sets[c].update(used)
        algorithms = ()
    for algorithm in algorithms:
        for c, component in enumerate(algorithm.components):
            sets[c].update(int(op) for op in np.unique(component["op"]))
    if extra is not None:
        for c in range(3):
            sets[c].update(ops_lib.op_codes(extra[c]))
    return tuple(frozenset(s | {ops_lib.NO_OP}) for s in sets)
