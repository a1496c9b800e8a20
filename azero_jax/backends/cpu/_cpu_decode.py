"""The cpu backend's compiled decoder (private; see :mod:`azero_jax.backends.cpu.cpu_evaluator`).

This kernel turns programs -- a search's :class:`~azero_jax.core.population.Programs` tensors,
or the flat instruction array of a list of Algorithms -- into the interpreter's code in
one compiled pass: the same code that ``cpu_evaluator._decode`` and ``_layout`` build
with numpy (operand offsets, resolved const-set entries, NO_OPs and the dead instructions
of a :mod:`azero_jax.backends.cpu.liveness` mask dropped, the evaluation loop's pseudo-ops around
the functions), because for a search's batches of a hundred children, or for short
evaluations like the W1 benchmark's, the numpy version cost a good part of running them.
The numpy decoder remains the one that names an undecodable instruction.
``tests/test_cpu_evaluator.py`` and ``tests/test_liveness.py`` check that both decoders
emit identical code.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from azero_jax.backends.cpu import _cpu_kernels as kernels
from azero_jax.backends.cpu.liveness import KEEP, KEEP_VALID

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
_OP_TRAIN_BEGIN = kernels.OP_TRAIN_BEGIN
_OP_TRAIN_ERROR = kernels.OP_TRAIN_ERROR
_OP_TRAIN_NEXT = kernels.OP_TRAIN_NEXT
_OP_LOAD_VALID = kernels.OP_LOAD_VALID
_OP_VALID_ERROR = kernels.OP_VALID_ERROR
_OP_EPOCH_END = kernels.OP_EPOCH_END
_SCALAR_CONST, _VECTOR_CONST, _MATRIX_CONST = 56, 57, 58
_VECTOR = 2  # operand type code (0 none, 1 S, 2 V, 3 M)


@numba.njit(inline="always", **_JIT)
def _entry(fraction, F):
    """The reference's FloatToIndex, ``int(float32(F) * f)``; -1 if not finite."""
    product = np.float32(F) * np.float32(fraction)
    if not math.isfinite(product):
        return -1
    return int(math.trunc(product))


@numba.njit(**_JIT)
def _emit(code, constants, pos, op, x, y, z, c0, c1):
    code[4 * pos] = op
    code[4 * pos + 1] = x
    code[4 * pos + 2] = y
    code[4 * pos + 3] = z
    constants[2 * pos] = c0
    constants[2 * pos + 1] = c1


@numba.njit(**_JIT)
def _emit_function(op, in1, in2, out, d, f0, f1, f2, first, n, code, constants, pos, types,
                   base, width, F, keep, bit):
    """Emits the function of ``n`` instructions at ``first`` of the operand arrays at code
    position ``pos``; returns the next position, or -1 for an instruction that cannot be
    decoded. With a non-empty ``keep`` mask only the instructions whose mask has ``bit``
    are emitted (every instruction is still checked, so a program decodes or fails alike
    with and without the mask)."""
    for j in range(first, first + n):
        o = op[j]
        if o == 0:
            continue
        if o < 0 or o >= types.shape[0]:
            return -1
        t1 = types[o, 0]
        t2 = types[o, 1]
        t3 = types[o, 2]
        x = base[t1] + in1[j] * width[t1]
        y = base[t2] + in2[j] * width[t2]
        z = base[t3] + out[j] * width[t3]
        c0 = np.float64(f0[j])
        c1 = np.float64(f1[j])
        if o == _SCALAR_CONST:
            c0 = d[j]
        elif o == _VECTOR_CONST:
            k = _entry(f0[j], F)
            if k < 0 or k >= F:
                return -1
            z += k
            c0 = np.float64(f1[j])
        elif o == _MATRIX_CONST:
            r = _entry(f0[j], F)
            k = _entry(f1[j], F)
            if r < 0 or r >= F or k < 0 or k >= F:
                return -1
            z += r * F + k
            c0 = np.float64(f2[j])
        if keep.shape[0] and (keep[j] & bit) == 0:
            continue
        _emit(code, constants, pos, o, x, y, z, c0, c1)
        pos += 1
    return pos


@numba.njit(**_JIT)
def decode(op, in1, in2, out, d, f0, f1, f2, first, size, types, limits, S, V, F, keep, code,
           constants, starts):
    """Decodes every program for feature size F into ``code`` / ``constants``.

    The operand fields are 1-D arrays (a search's ``[N, 3, L]`` tensors raveled, or the
    columns of a flat instruction array); function ``c`` of program ``a`` is the
    ``size[a, c]`` instructions from ``first[a, c]``. ``keep`` is empty (every instruction
    but NO_OPs runs) or a mask of :mod:`azero_jax.backends.cpu.liveness` indexed like the fields
    (the dead instructions are dropped).

    Returns the number of instructions written, or ``-1 - a`` for the first program
    ``a`` with an operand outside memory or a const-set index outside [0, F) (the caller
    reports it through the numpy decoder's messages).
    """
    base = np.array([0, 0, S, S + V * F], dtype=np.int64)
    width = np.array([0, 1, F, F * F], dtype=np.int64)
    pos = 0
    for a in range(first.shape[0]):
        # Addresses in range (the kernels would write outside memory otherwise).
        for c in range(3):
            for j in range(first[a, c], first[a, c] + size[a, c]):
                o = op[j]
                if o < 0 or o >= types.shape[0]:
                    return -1 - a
                for f in range(3):
                    t = types[o, f]
                    v = in1[j] if f == 0 else (in2[j] if f == 1 else out[j])
                    if t > 0 and (v < 0 or v >= limits[t]):
                        return -1 - a
        start = pos
        starts[a] = start
        pos = _emit_function(op, in1, in2, out, d, f0, f1, f2, first[a, 0], size[a, 0], code,
                             constants, pos, types, base, width, F, keep, KEEP)
        if pos < 0:
            return -1 - a
        begin = pos
        pos += 1
        predict = pos
        pos = _emit_function(op, in1, in2, out, d, f0, f1, f2, first[a, 1], size[a, 1], code,
                             constants, pos, types, base, width, F, keep, KEEP)
        if pos < 0:
            return -1 - a
        writes_v0 = 0
        for j in range(first[a, 1], first[a, 1] + size[a, 1]):
            o = op[j]
            if (types[o, 2] == _VECTOR and out[j] == 0
                    and (keep.shape[0] == 0 or (keep[j] & KEEP) != 0)):
                writes_v0 = 1
        train_error = pos
        pos += 1
        pos = _emit_function(op, in1, in2, out, d, f0, f1, f2, first[a, 2], size[a, 2], code,
                             constants, pos, types, base, width, F, keep, KEEP)
        if pos < 0:
            return -1 - a
        train_next = pos
        load_valid = pos + 1
        valid_predict = pos + 2
        pos = _emit_function(op, in1, in2, out, d, f0, f1, f2, first[a, 1], size[a, 1], code,
                             constants, valid_predict, types, base, width, F, keep, KEEP_VALID)
        valid_error = pos
        epoch_end = pos + 1
        _emit(code, constants, begin, _OP_TRAIN_BEGIN, predict - start, 0, 0, 0.0, 0.0)
        _emit(code, constants, train_error, _OP_TRAIN_ERROR, writes_v0, 0, 0, 0.0, 0.0)
        _emit(code, constants, train_next, _OP_TRAIN_NEXT, predict - start, epoch_end - start, 0,
              0.0, 0.0)
        _emit(code, constants, load_valid, _OP_LOAD_VALID, valid_predict - start, 0, 0, 0.0,
              0.0)
        _emit(code, constants, valid_error, _OP_VALID_ERROR, valid_predict - start, 0, 0, 0.0,
              0.0)
        _emit(code, constants, epoch_end, _OP_EPOCH_END, begin - start, 0, 0, 0.0, 0.0)
        pos = epoch_end + 1
    return pos
