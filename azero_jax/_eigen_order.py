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

The functions are numba-jitted so that the CPU kernels call them per instruction
(``tmp``-style scratch ``scr[s0:]`` holds the tree's pending partial sums: at most
``2 * (ceil(log2(n_packets)) + 1)`` floats); ``.py_func`` gives the plain Python versions.
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)

UNROLLING_LIMIT = 110  # EIGEN_UNROLLING_LIMIT
PACKET = 2  # doubles per SSE2 packet
# Read cost of one term, as Eigen's cost model counts it.
PLAIN, SQUARE, PRODUCT = 1, 2, 3
# Largest tree the cost model can unroll: 2 * 110 / 2 packets of plain entries.
_MAX_LEAVES = 128
# Scratch floats a reduction may need (the pending partial sums of the deepest tree).
SCRATCH = 2 * 9


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


@numba.njit(**_JIT)
def _term(mem, a, b, index, cost):
    if cost == PLAIN:
        return mem[a + index]
    if cost == SQUARE:
        t = mem[a + index]
        return t * t
    return mem[a + index] * mem[b + index]


@numba.njit(**_JIT)
def reduce(mem, a, b, n, step, cost, scr, s0):
    """Sum of ``n`` terms in the reference's order.

    Term ``k`` is ``mem[a + k*step]`` (cost PLAIN), its square (SQUARE) or
    ``mem[a + k*step] * mem[b + k*step]`` (PRODUCT). ``step == 1`` means contiguous.
    """
    expression_cost = n * cost + (n - 1)
    if step != 1:
        if expression_cost > UNROLLING_LIMIT or n > _MAX_LEAVES:
            total = _term(mem, a, b, 0, cost)
            for k in range(1, n):
                total += _term(mem, a, b, k * step, cost)
            return total
        # Halving tree on single terms, evaluated with a stack of pending sums.
        top = 0
        total = 0.0
        for k in range(n):
            total = _term(mem, a, b, k * step, cost)
            for _ in range(_MERGES[n, k]):
                top -= 1
                total = scr[s0 + top] + total
            scr[s0 + top] = total
            top += 1
        return total
    packets = n // PACKET
    if packets == 0:
        return _term(mem, a, b, 0, cost)
    if expression_cost > UNROLLING_LIMIT * PACKET or packets > _MAX_LEAVES:
        # Two packet accumulators (lanes 0/1 of each).
        p0 = _term(mem, a, b, 0, cost)
        p1 = _term(mem, a, b, 1, cost)
        if packets > 1:
            q0 = _term(mem, a, b, 2, cost)
            q1 = _term(mem, a, b, 3, cost)
            pairs_end = (n // (2 * PACKET)) * (2 * PACKET)
            for i in range(2 * PACKET, pairs_end, 2 * PACKET):
                p0 += _term(mem, a, b, i, cost)
                p1 += _term(mem, a, b, i + 1, cost)
                q0 += _term(mem, a, b, i + 2, cost)
                q1 += _term(mem, a, b, i + 3, cost)
            p0 += q0
            p1 += q1
            if packets * PACKET > pairs_end:
                p0 += _term(mem, a, b, pairs_end, cost)
                p1 += _term(mem, a, b, pairs_end + 1, cost)
        total = p0 + p1
    else:
        # Tree of packets, evaluated with a stack of pending packet sums.
        top = 0
        l0 = 0.0
        l1 = 0.0
        for p in range(packets):
            l0 = _term(mem, a, b, 2 * p, cost)
            l1 = _term(mem, a, b, 2 * p + 1, cost)
            for _ in range(_MERGES[packets, p]):
                top -= 2
                l0 = scr[s0 + top] + l0
                l1 = scr[s0 + top + 1] + l1
            scr[s0 + top] = l0
            scr[s0 + top + 1] = l1
            top += 2
        total = l0 + l1
    if n % PACKET:
        total += _term(mem, a, b, n - 1, cost)
    return total


@numba.njit(**_JIT)
def gemv_row(mem, row, x, F):
    """One entry of ``M @ x`` for F >= 8 (Eigen's row-major GEMV kernel)."""
    l0 = 0.0
    l1 = 0.0
    for c in range(0, F - 1, PACKET):
        l0 += mem[row + c] * mem[x + c]
        l1 += mem[row + c + 1] * mem[x + c + 1]
    acc = l0 + l1
    if F % PACKET:
        acc += mem[row + F - 1] * mem[x + F - 1]
    return 0.0 + acc
