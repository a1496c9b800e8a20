"""Reductions in the summation order of the reference's Eigen build (private).

The reference keeps its vectors and matrices in fixed-size Eigen 3.4 objects and was
built with g++ -O2 without -march, so Eigen vectorises with SSE2 packets of two doubles.
How Eigen adds the terms of a reduction then depends on the expression (Redux.h,
PartialReduxEvaluator.h, GeneralMatrixVector.h), and rounding depends on that order: the
one-pass std of a constant vector is exactly 0 in the reference for F = 2, 4, 8, 16, 32
and a small residue (or NaN) when the terms are added left to right.

Eigen's strategy for the sum of n terms, each costing ``cost`` to read (1 for a stored
entry, 2 for its square, 3 for a product of two entries): the expression costs
``n * cost + (n - 1)``;

* contiguous terms (a vector, a whole matrix, a row of the row-major matrix) are read as
  packets of two. Cost <= 2 * 110 (EIGEN_UNROLLING_LIMIT scaled by the packet size):
  complete unrolling as a tree of packets -- first half (``n_packets // 2``), then second
  half, added packet-wise -- then the two lanes are added, then the odd last term.
  Otherwise a loop with two packet accumulators (packets 0, 2, 4, ... into the first,
  1, 3, 5, ... into the second), which are added, then an odd last packet, then the
  lanes, then the odd last term. (Eigen starts that loop at the first 16-byte aligned
  entry; we assume entry 0 is aligned, which holds for every even F -- the reference's
  F -- and is a choice for odd F, whose alignment in the reference depends on the
  address.)
* strided terms (a column of a row-major matrix: column norms) are not vectorised.
  Cost <= 110: the same halving tree on single terms; otherwise left to right.

Matrix-vector products: F < 8 is a coefficient-based product, each row a contiguous
dot product as above; F >= 8 runs Eigen's row-major GEMV kernel: per row one packet
accumulator starting at zero (even columns in one lane, odd in the other), the lanes
added, then the odd last column, and the result added to a zeroed destination.

Matrix products (F < 8, coefficient-based): each entry a halving tree of single products
(the column is strided). F >= 8 (GEMM) accumulates each entry left to right from zero
as the CPU kernel always did; measured true for F = 8, 9, 12, 16, 32 -- F = 10 and 11
use other GEMM paths for some entries, which are not modelled.

The functions are numba-jitted so that the CPU kernels call them per instruction; a
scratch ``scr[s0:s0 + SCRATCH]`` holds a tree's pending partial sums (no allocation).
``.py_func`` gives the plain Python versions.

numba's on-disk cache of the CPU kernels does not notice edits of this module: after one,
the specialised kernels recompile (their source names this module's hash, see
:mod:`azero_jax.backends.cpu._cpu_specialize`), and the generic one needs its cache cleared (or
``_cpu_kernels.py`` touched).
"""

from __future__ import annotations

import math

import numba
import numpy as np

# No kernel here allocates, so none needs numba's reference counting (which would cost
# an atomic increment and decrement of every array argument at every call of a helper).
_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False, _nrt=False)

UNROLLING_LIMIT = 110  # EIGEN_UNROLLING_LIMIT
PACKET = 2  # doubles per SSE2 packet
# Read cost of one term, as Eigen's cost model counts it.
PLAIN, SQUARE, PRODUCT = 1, 2, 3
# More leaves than the cost model ever unrolls (55 packets of plain entries, 37 strided
# squares).
_MAX_LEAVES = 64
# Scratch floats a reduction may need: the pending partial sums of the deepest tree that
# is not a power of two (at most ceil(log2(55)) + 1 = 7 packets of two).
SCRATCH = 16


def _merge_table(max_leaves: int) -> np.ndarray:
    """``table[n, p]``: additions due right after leaf ``p`` of the halving tree of ``n``.

    Evaluating the tree left to right with a stack, leaf ``p`` is pushed and then the top
    two entries are added ``table[n, p]`` times (once per subtree whose last leaf is p).
    """
    table = np.zeros((max_leaves + 1, max_leaves), np.int8)

    def visit(n, start, length):
        if length == 1:
            return
        half = length // 2
        visit(n, start, half)
        visit(n, start + half, length - half)
        table[n, start + length - 1] += 1

    for n in range(1, max_leaves + 1):
        visit(n, 0, n)
    return table


_MERGES = _merge_table(_MAX_LEAVES)
_MASK = 0xFFFFFFFF


@numba.njit(**_JIT)
def _term(mem, a, sa, b, sb, k, cost):
    if cost == PLAIN:
        return mem[a + k * sa]
    if cost == SQUARE:
        t = mem[a + k * sa]
        return t * t
    return mem[a + k * sa] * mem[b + k * sb]


@numba.njit(**_JIT)
def reduce(mem, a, sa, b, sb, n, cost, scr, s0):
    """Sum of ``n`` terms in the reference's order (see the module docstring).

    Term ``k`` is ``mem[a + k*sa]`` (cost PLAIN), its square (SQUARE) or
    ``mem[a + k*sa] * mem[b + k*sb]`` (PRODUCT); the terms are contiguous when both
    steps are 1. ``scr[s0:s0 + SCRATCH]`` is overwritten.
    """
    # Masking proves to LLVM that the offsets are >= 0 (no negative-index wraparound).
    a &= _MASK
    b &= _MASK
    sa &= _MASK
    sb &= _MASK
    n &= _MASK
    s0 &= _MASK
    expression_cost = n * cost + (n - 1)
    if sa != 1 or sb != 1:
        if expression_cost > UNROLLING_LIMIT:
            total = _term(mem, a, sa, b, sb, 0, cost)
            for k in range(1, n):
                total += _term(mem, a, sa, b, sb, k, cost)
            return total
        if n & (n - 1) == 0:
            # A power of two (n <= 32 here): the halving tree adds neighbours level by
            # level; a binary counter over the level-1 sums keeps the pending ones in
            # registers (with F known at compile time LLVM unrolls this completely).
            if n == 1:
                return _term(mem, a, sa, b, sb, 0, cost)
            v = 0.0
            w1 = 0.0
            w2 = 0.0
            w3 = 0.0
            w4 = 0.0
            for j in range(n // 2):
                v = (_term(mem, a, sa, b, sb, 2 * j, cost)
                     + _term(mem, a, sa, b, sb, 2 * j + 1, cost))
                if j & 1 == 0:
                    w1 = v
                    continue
                v = w1 + v
                if j & 2 == 0:
                    w2 = v
                    continue
                v = w2 + v
                if j & 4 == 0:
                    w3 = v
                    continue
                v = w3 + v
                if j & 8 == 0:
                    w4 = v
                    continue
                v = w4 + v
            return v
        # Halving tree on single terms, evaluated with a stack of pending sums.
        top = 0
        total = 0.0
        for k in range(n):
            total = _term(mem, a, sa, b, sb, k, cost)
            for _ in range(_MERGES[n, k]):
                top -= 1
                total = scr[s0 + top] + total
            scr[s0 + top] = total
            top += 1
        return total
    packets = n // PACKET
    if packets == 0:
        return _term(mem, a, 1, b, 1, 0, cost)
    if expression_cost > UNROLLING_LIMIT * PACKET:
        # Two packet accumulators: lanes p0/p1 and q0/q1.
        p0 = _term(mem, a, 1, b, 1, 0, cost)
        p1 = _term(mem, a, 1, b, 1, 1, cost)
        if packets > 1:
            q0 = _term(mem, a, 1, b, 1, 2, cost)
            q1 = _term(mem, a, 1, b, 1, 3, cost)
            pairs_end = (n // (2 * PACKET)) * (2 * PACKET)
            for i in range(2 * PACKET, pairs_end, 2 * PACKET):
                p0 += _term(mem, a, 1, b, 1, i, cost)
                p1 += _term(mem, a, 1, b, 1, i + 1, cost)
                q0 += _term(mem, a, 1, b, 1, i + 2, cost)
                q1 += _term(mem, a, 1, b, 1, i + 3, cost)
            p0 += q0
            p1 += q1
            if packets * PACKET > pairs_end:
                p0 += _term(mem, a, 1, b, 1, pairs_end, cost)
                p1 += _term(mem, a, 1, b, 1, pairs_end + 1, cost)
        total = p0 + p1
    elif packets & (packets - 1) == 0:
        # A power of two (at most 32 packets): neighbouring packets are added level by
        # level; a binary counter over the level-1 sums keeps the pending ones in
        # registers (lanes 0 and 1: u*, v*), as for strided terms above.
        l0 = _term(mem, a, 1, b, 1, 0, cost)
        l1 = _term(mem, a, 1, b, 1, 1, cost)
        u1 = v1 = u2 = v2 = u3 = v3 = u4 = v4 = 0.0
        for j in range(packets // 2):
            l0 = _term(mem, a, 1, b, 1, 4 * j, cost) + _term(mem, a, 1, b, 1, 4 * j + 2, cost)
            l1 = (_term(mem, a, 1, b, 1, 4 * j + 1, cost)
                  + _term(mem, a, 1, b, 1, 4 * j + 3, cost))
            if j & 1 == 0:
                u1, v1 = l0, l1
                continue
            l0, l1 = u1 + l0, v1 + l1
            if j & 2 == 0:
                u2, v2 = l0, l1
                continue
            l0, l1 = u2 + l0, v2 + l1
            if j & 4 == 0:
                u3, v3 = l0, l1
                continue
            l0, l1 = u3 + l0, v3 + l1
            if j & 8 == 0:
                u4, v4 = l0, l1
                continue
            l0, l1 = u4 + l0, v4 + l1
        total = l0 + l1
    else:
        # Tree of packets, evaluated with a stack of pending packet sums.
        top = 0
        l0 = 0.0
        l1 = 0.0
        for p in range(packets):
            l0 = _term(mem, a, 1, b, 1, 2 * p, cost)
            l1 = _term(mem, a, 1, b, 1, 2 * p + 1, cost)
            for _ in range(_MERGES[packets, p]):
                top -= 2
                l0 = scr[s0 + top] + l0
                l1 = scr[s0 + top + 1] + l1
            scr[s0 + top] = l0
            scr[s0 + top + 1] = l1
            top += 2
        total = l0 + l1
    if n % PACKET:
        total += _term(mem, a, 1, b, 1, n - 1, cost)
    return total


@numba.njit(**_JIT)
def matvec(mem, m, x, F, out, o0, scr, s0):
    """``out[o0:o0 + F] = M @ x`` for the row-major ``M`` at ``mem[m:]``, ``x`` at ``mem[x:]``.

    F < 8: each row a contiguous dot product. F >= 8: Eigen's row-major GEMV kernel, two
    rows at a time (each row on its own, so the pairing does not change the result).
    """
    # Masking proves to LLVM that the offsets are >= 0 (no negative-index wraparound).
    m &= _MASK
    x &= _MASK
    F &= _MASK
    o0 &= _MASK
    if F < 8:
        for r in range(F):
            out[o0 + r] = reduce(mem, m + r * F, 1, x, 1, F, PRODUCT, scr, s0)
        return
    r = 0
    while r < F:
        # Per row one packet accumulator from zero: lanes l0 (even columns), l1 (odd).
        rb = r + 1 if r + 1 < F else r
        a0 = 0.0
        a1 = 0.0
        b0 = 0.0
        b1 = 0.0
        for c in range(0, F - 1, PACKET):
            u = mem[x + c]
            w = mem[x + c + 1]
            a0 += mem[m + r * F + c] * u
            a1 += mem[m + r * F + c + 1] * w
            b0 += mem[m + rb * F + c] * u
            b1 += mem[m + rb * F + c + 1] * w
        acc_a = a0 + a1
        acc_b = b0 + b1
        if F % PACKET:
            u = mem[x + F - 1]
            acc_a += mem[m + r * F + F - 1] * u
            acc_b += mem[m + rb * F + F - 1] * u
        # Added to a zeroed destination: -0.0 becomes +0.0.
        out[o0 + r] = 0.0 + acc_a
        out[o0 + rb] = 0.0 + acc_b
        r += 2


@numba.njit(**_JIT)
def small_matmul_entry(mem, a, b, F, scr, s0):
    """Entry of ``X @ Y`` for F < 8: row ``mem[a:a+F]`` times the strided column at ``b``."""
    return reduce(mem, a, 1, b, F, F, PRODUCT, scr, s0)


@numba.njit(**_JIT)
def _column_norms_by_levels(mem, m, F, out, o0, scr, s0):
    half = F // 2
    for i in range(half):
        for c in range(F):
            u = mem[m + 2 * i * F + c]
            w = mem[m + (2 * i + 1) * F + c]
            scr[s0 + i * F + c] = u * u + w * w
    while half > 1:
        half //= 2
        for i in range(half):
            for c in range(F):
                scr[s0 + i * F + c] = scr[s0 + 2 * i * F + c] + scr[s0 + (2 * i + 1) * F + c]
    for c in range(F):
        out[o0 + c] = math.sqrt(scr[s0 + c])


@numba.njit(**_JIT)
def _column_norms_one_by_one(mem, m, F, out, o0, scr, s0):
    for c in range(F):
        out[o0 + c] = math.sqrt(reduce(mem, m + c, F, m + c, F, F, SQUARE, scr, s0))


@numba.njit(**_JIT)
def column_norms(mem, m, F, out, o0, scr, s0):
    """``out[o0 + c]`` = the norm of column ``c`` of the row-major ``M`` at ``mem[m:]``.

    Each column is a strided reduction (see ``reduce``); when F is a power of two whose
    tree Eigen unrolls, all columns advance together, level by level, in
    ``scr[s0:s0 + F * F / 2]`` (the same additions, vectorisable across columns).
    """
    if F & (F - 1) != 0 or F == 1 or F * SQUARE + (F - 1) > UNROLLING_LIMIT:
        _column_norms_one_by_one(mem, m, F, out, o0, scr, s0)
    else:
        _column_norms_by_levels(mem, m, F, out, o0, scr, s0)
