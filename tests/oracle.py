"""An independent, slow, obviously-correct NumPy interpreter for AutoML-Zero algorithms.

This is the test oracle of the evaluators. It is written only from the behavioural
specification (``REFERENCE_SEMANTICS.md`` §1, §2, §4 and the multi-class convention of
the helpers' brief) -- never from the evaluators it checks -- and it favours plain,
readable code over speed: one Python call per instruction, float64 everywhere, every op
spelled out with its edge cases (§2.4).

It executes ONE algorithm on ONE task with the loop of §4.1/§4.2/§4.5:

* memory wiped once, Setup run once;
* ``N = min(N_req, E * n_train)`` training steps, in chunks of one epoch; after each
  chunk a validation; fitness = the best validation fitness; an abort in the first
  chunk gives 0, a later abort stops and returns the best so far;
* per training step: ``v0 <- x``, ``s0 <- 0``, Predict, (sigmoid of ``s1`` in memory
  for accuracy tasks), error check, ``v0 <- x``, ``s0 <- label``, Learn;
* validation: ``v0 <- x``, ``s0 <- 0``, Predict only; RMS or sign accuracy; an
  aborting example makes that validation 0; the loss is divided by ``n_valid``.

Multi-class tasks (labels ``[n, K]`` one-hot, accuracy only; our own convention):
``v1`` is zeroed before Predict (and ``s0`` too, as always), ``v1`` = one-hot label
padded with zeros to F before Learn (``s0`` stays 0); the prediction is ``v2``; in
training ``v2`` is replaced in memory by a truncating softmax over its first K
entries (rest 0) and the step error is ``max_k |y_k - p_k|``; a validation example
is correct iff the first-index argmax of the first K entries of ``v2`` (NaN never
wins) is the label's class.

Random ops draw from a ``numpy.random.Generator`` (so the oracle's random streams
are its own: results of programs with random ops agree with the backends only in
distribution, or exactly where the op is deterministic, e.g. ``uniform(2, 1)``).

Example:
    >>> import azero_jax as az
    >>> import oracle  # tests/ on sys.path
    >>> task = az.tasks.unit_test_ones_task(4, 10, 5)
    >>> algo = az.parse_algorithm("def Setup():\\ndef Predict():\\n  s1 = 0.9\\ndef Learn():\\n")
    >>> r = oracle.run(algo, task, num_scalars=4, num_vectors=3, num_matrices=1)
    >>> round(r.fitness, 6)
    0.936549
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np

# The op codes, written out here (not imported from the package under test) so that the
# oracle does not inherit a wrong table. tests/test_program.py checks they agree.
NO_OP = 0
SCALAR_SUM, SCALAR_DIFF, SCALAR_PRODUCT, SCALAR_DIVISION = 1, 2, 3, 4
SCALAR_ABS, SCALAR_RECIPROCAL, SCALAR_SIN, SCALAR_COS, SCALAR_TAN = 5, 6, 7, 8, 9
SCALAR_ARCSIN, SCALAR_ARCCOS, SCALAR_ARCTAN, SCALAR_EXP, SCALAR_LOG = 10, 11, 12, 13, 14
SCALAR_HEAVYSIDE, VECTOR_HEAVYSIDE, MATRIX_HEAVYSIDE = 15, 16, 17
SCALAR_VECTOR_PRODUCT, SCALAR_BROADCAST, VECTOR_RECIPROCAL, VECTOR_NORM = 18, 19, 20, 21
VECTOR_ABS, VECTOR_SUM, VECTOR_DIFF, VECTOR_PRODUCT, VECTOR_DIVISION = 22, 23, 24, 25, 26
VECTOR_INNER_PRODUCT, VECTOR_OUTER_PRODUCT, SCALAR_MATRIX_PRODUCT = 27, 28, 29
MATRIX_RECIPROCAL, MATRIX_VECTOR_PRODUCT = 30, 31
VECTOR_COLUMN_BROADCAST, VECTOR_ROW_BROADCAST = 32, 33
MATRIX_NORM, MATRIX_COLUMN_NORM, MATRIX_ROW_NORM, MATRIX_TRANSPOSE, MATRIX_ABS = 34, 35, 36, 37, 38
MATRIX_SUM, MATRIX_DIFF, MATRIX_PRODUCT, MATRIX_DIVISION, MATRIX_MATRIX_PRODUCT = 39, 40, 41, 42, 43
SCALAR_MIN, VECTOR_MIN, MATRIX_MIN, SCALAR_MAX, VECTOR_MAX, MATRIX_MAX = 44, 45, 46, 47, 48, 49
VECTOR_MEAN, MATRIX_MEAN, MATRIX_ROW_MEAN, MATRIX_ROW_ST_DEV = 50, 51, 52, 53
VECTOR_ST_DEV, MATRIX_ST_DEV = 54, 55
SCALAR_CONST_SET, VECTOR_CONST_SET, MATRIX_CONST_SET = 56, 57, 58
SCALAR_UNIFORM_SET, VECTOR_UNIFORM_SET, MATRIX_UNIFORM_SET = 59, 60, 61
SCALAR_GAUSSIAN_SET, VECTOR_GAUSSIAN_SET, MATRIX_GAUSSIAN_SET = 62, 63, 64
NUM_OPS = 65
RANDOM_OPS = frozenset(range(59, 65))

# Operand types per op: (in1, in2, out); None = unused. Straight from the table of §2.3.
_S, _V, _M = "S", "V", "M"
OPERAND_TYPES = {
    0: (None, None, None),
    1: (_S, _S, _S), 2: (_S, _S, _S), 3: (_S, _S, _S), 4: (_S, _S, _S),
    5: (_S, None, _S), 6: (_S, None, _S), 7: (_S, None, _S), 8: (_S, None, _S),
    9: (_S, None, _S), 10: (_S, None, _S), 11: (_S, None, _S), 12: (_S, None, _S),
    13: (_S, None, _S), 14: (_S, None, _S), 15: (_S, None, _S),
    16: (_V, None, _V), 17: (_M, None, _M),
    18: (_S, _V, _V), 19: (_S, None, _V), 20: (_V, None, _V), 21: (_V, None, _S),
    22: (_V, None, _V), 23: (_V, _V, _V), 24: (_V, _V, _V), 25: (_V, _V, _V),
    26: (_V, _V, _V), 27: (_V, _V, _S), 28: (_V, _V, _M), 29: (_S, _M, _M),
    30: (_M, None, _M), 31: (_M, _V, _V), 32: (_V, None, _M), 33: (_V, None, _M),
    34: (_M, None, _S), 35: (_M, None, _V), 36: (_M, None, _V), 37: (_M, None, _M),
    38: (_M, None, _M), 39: (_M, _M, _M), 40: (_M, _M, _M), 41: (_M, _M, _M),
    42: (_M, _M, _M), 43: (_M, _M, _M),
    44: (_S, _S, _S), 45: (_V, _V, _V), 46: (_M, _M, _M),
    47: (_S, _S, _S), 48: (_V, _V, _V), 49: (_M, _M, _M),
    50: (_V, None, _S), 51: (_M, None, _S), 52: (_M, None, _V), 53: (_M, None, _V),
    54: (_V, None, _S), 55: (_M, None, _S),
    56: (None, None, _S), 57: (None, None, _V), 58: (None, None, _M),
    59: (None, None, _S), 60: (None, None, _V), 61: (None, None, _M),
    62: (None, None, _S), 63: (None, None, _V), 64: (None, None, _M),
}

NEG_TWO_OVER_PI = -0.63661977236758138243


@dataclasses.dataclass
class Memory:
    """The three typed memories: ``s[S]``, ``v[V, F]``, ``m[M, F, F]`` (float64, row-major)."""

    s: np.ndarray
    v: np.ndarray
    m: np.ndarray

    @classmethod
    def wiped(cls, num_scalars: int, num_vectors: int, num_matrices: int, F: int) -> "Memory":
        return cls(np.zeros(num_scalars), np.zeros((num_vectors, F)),
                   np.zeros((num_matrices, F, F)))

    def copy(self) -> "Memory":
        return Memory(self.s.copy(), self.v.copy(), self.m.copy())


@dataclasses.dataclass
class OracleResult:
    """What one (algorithm, task) evaluation produced.

    Attributes:
      fitness: the §4.1 fitness in [0, 1].
      train_steps: training steps executed (an aborting step counts).
      train_errors: the recorded per-step errors of the first chunk (epoch), stopping
        before an aborting step, at most ``record_errors[0]`` of them.
      valid_errors: the recorded per-example errors of the first validation, stopping
        before an aborting example, at most ``record_errors[1]``; empty if the first
        epoch's training aborted.
      memory: the memory after the whole evaluation.
      train_aborted: training aborted (in any epoch).
      valid_fitnesses: the fitness of each validation run, in order.
    """

    fitness: float
    train_steps: int
    train_errors: list
    valid_errors: list
    memory: Memory
    train_aborted: bool
    valid_fitnesses: list


# ----------------------------------------------------------------------------------
# Scalar helpers: IEEE semantics as C <cmath> (numpy float64, warnings silenced).


def _f32(x) -> float:
    """A float32 data field, promoted to double."""
    return float(np.float32(x))


def float_to_index(fraction, F: int) -> int:
    """``(int)((float)F * f)``: float32 multiplication, truncation toward zero."""
    product = np.float32(F) * np.float32(fraction)
    return int(product)


def sigmoid(x: float) -> float:
    with np.errstate(all="ignore"):
        return float(np.float64(1.0) / (np.float64(1.0) + _t(np.exp, -np.float64(x))))


def flip_and_squash(x: float) -> float:
    """``1 - (2/pi) atan(x)``; 0 for NaN or inf."""
    if math.isnan(x) or math.isinf(x):
        return 0.0
    assert x >= 0.0, x
    return 1.0 + NEG_TWO_OVER_PI * math.atan(x)


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """Abseil-like uniform on the open interval (low, high); low if low >= high."""
    if not low < high:  # low > high, low == high (and NaN bounds): the low value
        return low
    while True:
        value = rng.uniform(low, high)
        if low < value < high:
            return float(value)


def _gaussian(rng: np.random.Generator, mean: float, stdev: float) -> float:
    return mean + stdev * float(rng.standard_normal())


# Numerical variants. The default is the reference's order: the summation order of Eigen
# 3.4 as the reference's build (SSE2) runs its reductions (see "Eigen's order" below).
# The others change only rounding -- every reduction in reverse order, or strictly left
# to right (this one changes sums of equal values, e.g. the one-pass std of a constant
# vector: NaN or 1e-9), or the last bit of every transcendental result -- and exist to
# tell a chaotic program (one whose fitness depends on rounding, so no two correct
# implementations need agree on it) from a real disagreement.
VARIANTS = ("default", "reversed", "sequential", "ulp", "jitter")
_variant = "default"
# The "jitter" variant moves every reduction and transcendental result by -1, 0 or +1
# ulp at random (as two libms or two summation trees may), from this generator.
_jitter_rng = np.random.default_rng(0)


def _nudge(y):
    """In the "jitter" variant, y moved by a random -1/0/+1 ulp per entry."""
    if _variant != "jitter":
        return y
    y = np.asarray(y, dtype=np.float64)
    step = _jitter_rng.integers(-1, 2, size=y.shape)
    out = np.where(step > 0, np.nextafter(y, np.inf),
                   np.where(step < 0, np.nextafter(y, -np.inf), y))
    return out if out.ndim else float(out)


@contextlib.contextmanager
def variant(name: str, seed: int = 0):
    """Runs the oracle with another (equally correct) rounding behaviour inside the block."""
    global _variant, _jitter_rng
    if name not in VARIANTS:
        raise ValueError(f"unknown oracle variant {name!r}; expected one of {VARIANTS}")
    _jitter_rng = np.random.default_rng(seed)
    previous, _variant = _variant, name
    try:
        yield
    finally:
        _variant = previous


# Eigen's order. The reference reduces fixed-size Eigen objects; with SSE2 Eigen 3.4
# works on packets of two doubles and picks a strategy per expression from a cost model:
# cost = n * (read cost of one term) + (n - 1) additions, compared with
# EIGEN_UNROLLING_LIMIT (110), times the packet size when the terms are contiguous.
#   * contiguous, cost <= 220: the packets form a tree -- first half (n_packets // 2),
#     then second half, added packet-wise -- the two lanes are added, then the odd last
#     term (Redux.h: redux_vec_unroller, predux);
#   * contiguous, cost > 220: a loop with two packet accumulators (packets 0, 2, 4, ...
#     alternate between them), then the lanes, then the odd last term;
#   * strided terms (a column of a row-major matrix), cost <= 110: the same halving tree
#     on single terms (redux_novec_unroller); cost > 110: left to right.
_PACKET = 2
_UNROLLING_LIMIT = 110
# Read cost of one term: a stored entry, its square (abs2) and a product of two entries.
_PLAIN, _SQUARE, _PRODUCT = 1, 2, 3


def _halving_tree(items, add):
    """``add(tree(first half), tree(second half))``, the first half being ``len // 2``."""
    if len(items) == 1:
        return items[0]
    half = len(items) // 2
    return add(_halving_tree(items[:half], add), _halving_tree(items[half:], add))


def _add_packets(p, q):
    return (p[0] + q[0], p[1] + q[1])


def _two_accumulator_sum(terms):
    """Redux.h's loop for long contiguous reductions (assumes an aligned first entry)."""
    n = len(terms)
    whole = n - n % _PACKET  # terms in whole packets
    if whole == 0:
        return terms[0]
    whole2 = n - n % (2 * _PACKET)  # terms in whole pairs of packets
    acc0 = (terms[0], terms[1])
    if whole > _PACKET:
        acc1 = (terms[2], terms[3])
        for i in range(2 * _PACKET, whole2, 2 * _PACKET):
            acc0 = _add_packets(acc0, (terms[i], terms[i + 1]))
            acc1 = _add_packets(acc1, (terms[i + 2], terms[i + 3]))
        acc0 = _add_packets(acc0, acc1)
        if whole > whole2:
            acc0 = _add_packets(acc0, (terms[whole2], terms[whole2 + 1]))
    total = acc0[0] + acc0[1]
    for i in range(whole, n):
        total += terms[i]
    return total


def _eigen_sum(terms, cost: int, contiguous: bool = True) -> float:
    """The sum of ``terms`` in the order the reference's Eigen adds them (see above)."""
    terms = [float(t) for t in np.ravel(terms)]
    n = len(terms)
    expression_cost = n * cost + (n - 1)
    if not contiguous:
        if expression_cost <= _UNROLLING_LIMIT:
            return _halving_tree(terms, lambda a, b: a + b)
        total = terms[0]
        for t in terms[1:]:
            total += t
        return total
    if expression_cost > _UNROLLING_LIMIT * _PACKET:
        return _two_accumulator_sum(terms)
    packets = [(terms[i], terms[i + 1]) for i in range(0, n - 1, _PACKET)]
    if not packets:  # a single term
        return terms[0]
    lane0, lane1 = _halving_tree(packets, _add_packets)
    total = lane0 + lane1
    if n % _PACKET:
        total += terms[-1]
    return total


def _sequential_sum(values) -> float:
    total = 0.0
    for x in np.ravel(values):
        total += x
    return total


def _reduce(terms, cost: int, contiguous: bool = True) -> float:
    """One reduction of the reference, under the current variant."""
    if _variant == "sequential":
        return _sequential_sum(terms)
    if _variant == "reversed":
        return _sequential_sum(np.ravel(terms)[::-1])
    return _nudge(_eigen_sum(terms, cost, contiguous))


def _sum(values, axis=None):
    """Sum of all entries (axis None) or of each row (axis 1) of a row-major matrix."""
    values = np.asarray(values, dtype=np.float64)
    if axis is None:
        return _reduce(values, _PLAIN)
    assert axis == 1, "the reference sums only whole objects and rows"
    return np.array([_reduce(row, _PLAIN) for row in values])


def _sum_of_squares(values, axis=None):
    """Eigen's squaredNorm() of the whole object, of each column (0) or each row (1)."""
    values = np.asarray(values, dtype=np.float64)
    if axis is None:
        return _reduce(values * values, _SQUARE)
    # A row is contiguous; a column of a row-major matrix is strided (not vectorised).
    lines = values if axis == 1 else values.T
    return np.array([_reduce(line * line, _SQUARE, contiguous=axis == 1) for line in lines])


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return _reduce(np.asarray(a) * np.asarray(b), _PRODUCT)


def _matvec(mat: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``M @ x``: per row a dot for F < 8; Eigen's row-major GEMV kernel for F >= 8."""
    F = x.shape[0]
    if F < 8 or _variant != "default":
        return np.array([_dot(row, x) for row in mat])
    out = np.empty(F)
    for r in range(F):
        # GEMV: one packet accumulator starting at zero (even / odd columns in its two
        # lanes), then the lanes, then the odd last column; the result is added to a
        # zeroed destination (so -0.0 becomes +0.0).
        lane0 = lane1 = 0.0
        for c in range(0, F - 1, _PACKET):
            lane0 += mat[r, c] * x[c]
            lane1 += mat[r, c + 1] * x[c + 1]
        acc = lane0 + lane1
        if F % _PACKET:
            acc += mat[r, F - 1] * x[F - 1]
        out[r] = 0.0 + acc
    return out


def _matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``X @ Y``: F < 8 a coefficient-based product, F >= 8 Eigen's GEMM.

    F < 8: each entry a dot of a row with a strided column (a halving tree on single
    products). F >= 8: each entry accumulated left to right from zero (true of GEMM for
    F = 8, 9, 12, 16, 32 as measured; F = 10 and 11 use other kernel paths for some
    entries, which this oracle does not model).
    """
    if _variant == "sequential":
        return np.array([[_sequential_sum(row * col) for col in y.T] for row in x])
    if _variant == "reversed":
        return x[:, ::-1] @ y[::-1, :]
    F = x.shape[0]
    if F < 8:
        return np.array([[_reduce(row * col, _PRODUCT, contiguous=False) for col in y.T]
                         for row in x])
    return _nudge(np.array([[_sequential_sum(row * col) for col in y.T] for row in x]))


def _t(fn, x):
    """A transcendental function; in the "ulp" variant its result is nudged up one ulp."""
    y = fn(x)
    if _variant == "ulp":
        y = np.nextafter(y, np.inf)
    return _nudge(y)


def _one_pass_std(values: np.ndarray) -> float:
    """``sqrt(E[x^2] - E[x]^2)`` (population, one pass; NaN when rounding makes it < 0)."""
    n = values.size
    mean = _sum(values) / n
    flat = values.ravel()
    with np.errstate(invalid="ignore"):  # a negative difference gives NaN, as in C++
        return float(np.sqrt(np.float64(_dot(flat, flat) / n - mean * mean)))


# ----------------------------------------------------------------------------------
# One instruction.


def execute_instruction(record, mem: Memory, F: int, rng: np.random.Generator) -> None:
    """Executes one instruction record (fields op, in1, in2, out, d, f0, f1, f2) in place.

    Every input is read (and copied) before the output is written (§2.4 note 7).
    """
    op = int(record["op"])
    a, b, o = int(record["in1"]), int(record["in2"]), int(record["out"])
    s, v, m = mem.s, mem.v, mem.m
    with np.errstate(all="ignore"):
        # ---------------- scalar arithmetic
        if op == NO_OP:
            return
        if op == SCALAR_SUM:
            s[o] = s[a] + s[b]
        elif op == SCALAR_DIFF:
            s[o] = s[a] - s[b]
        elif op == SCALAR_PRODUCT:
            s[o] = s[a] * s[b]
        elif op == SCALAR_DIVISION:
            s[o] = np.float64(s[a]) / np.float64(s[b])
        elif op == SCALAR_ABS:
            s[o] = abs(s[a])
        elif op == SCALAR_RECIPROCAL:
            s[o] = np.float64(1.0) / np.float64(s[a])
        elif op == SCALAR_SIN:
            s[o] = _t(np.sin, s[a])
        elif op == SCALAR_COS:
            s[o] = _t(np.cos, s[a])
        elif op == SCALAR_TAN:
            s[o] = _t(np.tan, s[a])
        elif op == SCALAR_ARCSIN:
            s[o] = _t(np.arcsin, s[a])
        elif op == SCALAR_ARCCOS:
            s[o] = _t(np.arccos, s[a])
        elif op == SCALAR_ARCTAN:
            s[o] = _t(np.arctan, s[a])
        elif op == SCALAR_EXP:
            s[o] = _t(np.exp, s[a])
        elif op == SCALAR_LOG:
            s[o] = _t(np.log, s[a])
        elif op == SCALAR_HEAVYSIDE:
            s[o] = 1.0 if s[a] >= 0.0 else 0.0  # H(0) = H(-0) = 1, H(NaN) = 0
        elif op == VECTOR_HEAVYSIDE:
            v[o] = np.where(v[a] > 0.0, 1.0, 0.0)  # H(0) = 0, H(NaN) = 0
        elif op == MATRIX_HEAVYSIDE:
            m[o] = np.where(m[a] > 0.0, 1.0, 0.0)
        # ---------------- vector arithmetic
        elif op == SCALAR_VECTOR_PRODUCT:
            v[o] = v[b] * s[a]
        elif op == SCALAR_BROADCAST:
            v[o] = s[a] * np.ones(F)
        elif op == VECTOR_RECIPROCAL:
            v[o] = 1.0 / v[a]
        elif op == VECTOR_NORM:
            s[o] = np.sqrt(np.float64(_sum_of_squares(v[a])))
        elif op == VECTOR_ABS:
            v[o] = np.abs(v[a])
        elif op == VECTOR_SUM:
            v[o] = v[a] + v[b]
        elif op == VECTOR_DIFF:
            v[o] = v[a] - v[b]
        elif op == VECTOR_PRODUCT:
            v[o] = v[a] * v[b]
        elif op == VECTOR_DIVISION:
            v[o] = v[a] / v[b]
        elif op == VECTOR_INNER_PRODUCT:
            s[o] = _dot(v[a], v[b])
        elif op == VECTOR_OUTER_PRODUCT:
            m[o] = np.outer(v[a], v[b])  # m[r][c] = a_r * b_c
        # ---------------- matrix arithmetic
        elif op == SCALAR_MATRIX_PRODUCT:
            m[o] = m[b] * s[a]
        elif op == MATRIX_RECIPROCAL:
            m[o] = 1.0 / m[a]
        elif op == MATRIX_VECTOR_PRODUCT:
            v[o] = _matvec(m[a], v[b])  # v[r] = sum_c m[r][c] x[c]
        elif op == VECTOR_COLUMN_BROADCAST:
            m[o] = np.repeat(v[a][:, None], F, axis=1)  # m[r][c] = v[r]
        elif op == VECTOR_ROW_BROADCAST:
            m[o] = np.repeat(v[a][None, :], F, axis=0)  # m[r][c] = v[c]
        elif op == MATRIX_NORM:
            s[o] = np.sqrt(np.float64(_sum_of_squares(m[a])))
        elif op == MATRIX_COLUMN_NORM:
            v[o] = np.sqrt(_sum_of_squares(m[a], axis=0))  # v[c] = norm of column c
        elif op == MATRIX_ROW_NORM:
            v[o] = np.sqrt(_sum_of_squares(m[a], axis=1))  # v[r] = norm of row r
        elif op == MATRIX_TRANSPOSE:
            m[o] = m[a].T.copy()
        elif op == MATRIX_ABS:
            m[o] = np.abs(m[a])
        elif op == MATRIX_SUM:
            m[o] = m[a] + m[b]
        elif op == MATRIX_DIFF:
            m[o] = m[a] - m[b]
        elif op == MATRIX_PRODUCT:
            m[o] = m[a] * m[b]
        elif op == MATRIX_DIVISION:
            m[o] = m[a] / m[b]
        elif op == MATRIX_MATRIX_PRODUCT:
            m[o] = _matmul(m[a], m[b])  # true matrix product (into a temporary)
        # ---------------- min / max with the reference's NaN rules (§2.4 note 8)
        elif op == SCALAR_MIN:
            x, y = s[a], s[b]
            s[o] = y if y < x else x
        elif op == SCALAR_MAX:
            x, y = s[a], s[b]
            s[o] = y if x < y else x
        elif op == VECTOR_MIN:
            x, y = v[a], v[b]
            v[o] = np.where(y < x, y, x)  # NaN in either -> first operand
        elif op == VECTOR_MAX:
            x, y = v[a], v[b]
            v[o] = np.where(x < y, y, x)  # NaN in either -> first operand
        elif op == MATRIX_MIN:
            x, y = m[a], m[b]
            m[o] = np.where(x < y, x, y)  # NaN in either -> second operand
        elif op == MATRIX_MAX:
            x, y = m[a], m[b]
            m[o] = np.where(x > y, x, y)  # NaN in either -> second operand
        # ---------------- statistics
        elif op == VECTOR_MEAN:
            s[o] = _sum(v[a]) / F
        elif op == MATRIX_MEAN:
            s[o] = _sum(m[a]) / (F * F)
        elif op == MATRIX_ROW_MEAN:
            v[o] = _sum(m[a], axis=1) / F
        elif op == MATRIX_ROW_ST_DEV:
            mat = m[a]
            v[o] = np.array([_one_pass_std(mat[r]) for r in range(F)])
        elif op == VECTOR_ST_DEV:
            s[o] = _one_pass_std(v[a].copy())
        elif op == MATRIX_ST_DEV:
            s[o] = _one_pass_std(m[a].copy())
        # ---------------- constants
        elif op == SCALAR_CONST_SET:
            s[o] = float(record["d"])
        elif op == VECTOR_CONST_SET:
            v[o, float_to_index(record["f0"], F)] = _f32(record["f1"])
        elif op == MATRIX_CONST_SET:
            m[o, float_to_index(record["f0"], F), float_to_index(record["f1"], F)] = \
                _f32(record["f2"])
        # ---------------- random
        elif op == SCALAR_UNIFORM_SET:
            s[o] = _uniform(rng, _f32(record["f0"]), _f32(record["f1"]))
        elif op == VECTOR_UNIFORM_SET:
            low, high = _f32(record["f0"]), _f32(record["f1"])
            v[o] = np.array([_uniform(rng, low, high) for _ in range(F)])
        elif op == MATRIX_UNIFORM_SET:
            low, high = _f32(record["f0"]), _f32(record["f1"])
            m[o] = np.array([_uniform(rng, low, high) for _ in range(F * F)]).reshape(F, F)
        elif op == SCALAR_GAUSSIAN_SET:
            s[o] = _gaussian(rng, _f32(record["f0"]), _f32(record["f1"]))
        elif op == VECTOR_GAUSSIAN_SET:
            mean, stdev = _f32(record["f0"]), _f32(record["f1"])
            v[o] = np.array([_gaussian(rng, mean, stdev) for _ in range(F)])
        elif op == MATRIX_GAUSSIAN_SET:
            mean, stdev = _f32(record["f0"]), _f32(record["f1"])
            m[o] = np.array([_gaussian(rng, mean, stdev) for _ in range(F * F)]).reshape(F, F)
        else:
            raise ValueError(f"unsupported op {op}")


def run_component(component, mem: Memory, F: int, rng: np.random.Generator) -> None:
    for record in component:
        execute_instruction(record, mem, F, rng)


# ----------------------------------------------------------------------------------
# Multi-class helpers (our convention).


def truncating_softmax(x: np.ndarray, K: int) -> np.ndarray:
    """Softmax of the first K entries (max subtracted), zeros beyond."""
    with np.errstate(all="ignore"):
        head = x[:K].copy()
        top = np.max(head)  # NaN if any entry is NaN
        e = _t(np.exp, head - top)
        p = e / _sum(e)
    out = np.zeros_like(x)
    out[:K] = p
    return out


def first_argmax(x: np.ndarray) -> int:
    """Index of the largest non-NaN entry (first on ties); 0 if all are NaN."""
    best_index, best = 0, None
    for i, xi in enumerate(x):
        if math.isnan(xi):
            continue
        if best is None or xi > best:
            best_index, best = i, xi
    return best_index


# ----------------------------------------------------------------------------------
# The evaluation loop of §4.


def run(algorithm, task, *, num_scalars: int, num_vectors: int, num_matrices: int,
        max_abs_error: float = 100.0, train_steps: int | None = None,
        valid_steps: int | None = None, record_errors: tuple[int, int] | None = None,
        rng: np.random.Generator | int | None = 0) -> OracleResult:
    """Evaluates one algorithm on one task, exactly as §4 describes.

    Args:
      algorithm: an ``Algorithm`` (``.setup``, ``.predict``, ``.learn`` record arrays).
      task: a ``Task`` (x/y train/valid, eval_type, num_epochs, train_orders).
      num_scalars, num_vectors, num_matrices: memory sizes.
      max_abs_error: the abort threshold.
      train_steps: requested training steps (all epochs); default ``E * n_train``.
      valid_steps: validation examples to run (default all; the loss is still
        divided by ``n_valid``).
      record_errors: ``(K_train, K_valid)``: how many errors to record (default none).
      rng: seed or ``numpy.random.Generator`` for the random ops.
    """
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    x_train = np.asarray(task.x_train, dtype=np.float64)
    y_train = np.asarray(task.y_train, dtype=np.float64)
    x_valid = np.asarray(task.x_valid, dtype=np.float64)
    y_valid = np.asarray(task.y_valid, dtype=np.float64)
    F = x_train.shape[1]
    n_train, n_valid = len(x_train), len(x_valid)
    epochs = int(task.num_epochs)
    orders = np.asarray(task.train_orders)
    accuracy = task.eval_type == "accuracy"
    vector_labels = y_train.ndim == 2
    K = y_train.shape[1] if vector_labels else 0
    if vector_labels:
        assert accuracy and K <= F and num_vectors >= 3
    keep_train, keep_valid = record_errors if record_errors is not None else (0, 0)

    mem = Memory.wiped(num_scalars, num_vectors, num_matrices, F)
    run_component(algorithm.setup, mem, F, rng)

    requested = epochs * n_train if train_steps is None else int(train_steps)
    total = min(requested, epochs * n_train)
    n_valid_run = n_valid if valid_steps is None else min(int(valid_steps), n_valid)
    # The training iterator walks epoch 0, then epoch 1, ...: a flat list of example ids.
    schedule = [int(i) for e in range(epochs) for i in orders[e]]
    position = 0
    steps_done = 0
    train_errors: list = []
    valid_errors: list = []
    valid_fitnesses: list = []
    best = 0.0
    remaining = total
    first_chunk = True
    aborted = False

    def load_example(x):
        mem.v[0] = x

    while remaining > 0:
        # ---- Train(k)
        k = min(n_train, remaining)
        failed = False
        for _ in range(k):
            steps_done += 1
            example = schedule[position]
            x = x_train[example]
            # Predict
            load_example(x)
            mem.s[0] = 0.0
            if vector_labels:
                mem.v[1] = 0.0
            run_component(algorithm.predict, mem, F, rng)
            # Normalize + error
            with np.errstate(all="ignore"):
                if vector_labels:
                    mem.v[2] = truncating_softmax(mem.v[2], K)
                    label_vector = y_train[example]
                    diffs = np.abs(label_vector - mem.v[2][:K])
                    error = float(np.max(diffs))  # NaN if any entry is NaN
                else:
                    if accuracy:
                        mem.s[1] = sigmoid(mem.s[1])
                    error = abs(float(y_train[example]) - float(mem.s[1]))
            if math.isnan(error) or error > max_abs_error:
                failed = True
                break
            if first_chunk and len(train_errors) < keep_train:
                train_errors.append(error)
            # Learn
            load_example(x)
            if vector_labels:
                padded = np.zeros(F)
                padded[:K] = y_train[example]
                mem.v[1] = padded
            else:
                mem.s[0] = float(y_train[example])
            run_component(algorithm.learn, mem, F, rng)
            position += 1
            if position == len(schedule):
                break
        if failed:
            aborted = True
            if first_chunk:
                return OracleResult(0.0, steps_done, train_errors, [], mem, True, valid_fitnesses)
            break
        remaining -= n_train
        # ---- Validate()
        fitness = _validate(algorithm, mem, F, rng, x_valid, y_valid, n_valid_run, accuracy,
                            vector_labels, K, max_abs_error,
                            valid_errors if first_chunk else None, keep_valid)
        valid_fitnesses.append(fitness)
        best = max(best, fitness)
        first_chunk = False
    return OracleResult(best, steps_done, train_errors, valid_errors, mem, aborted,
                        valid_fitnesses)


def _validate(algorithm, mem, F, rng, x_valid, y_valid, num_steps, accuracy, vector_labels,
              K, max_abs_error, errors, keep) -> float:
    n_valid = len(x_valid)
    loss = 0.0
    for i in range(num_steps):
        mem.v[0] = x_valid[i]
        mem.s[0] = 0.0
        if vector_labels:
            mem.v[1] = 0.0
        run_component(algorithm.predict, mem, F, rng)
        with np.errstate(all="ignore"):
            if vector_labels:
                predicted = first_argmax(mem.v[2][:K])
                error = 0.0 if predicted == first_argmax(y_valid[i]) else 1.0
                loss += error
            elif accuracy:
                p = sigmoid(mem.s[1])
                label = float(y_valid[i])
                if p > 1.0 or p < 0.0:
                    error = math.inf
                else:
                    error = 0.0 if (label > 0.5) == (p > 0.5) else 1.0
                loss += error
            else:
                error = float(y_valid[i]) - float(mem.s[1])
                loss += error * error
        if math.isnan(abs(error)) or abs(error) > max_abs_error:
            return 0.0
        if errors is not None and len(errors) < keep:
            errors.append(abs(error))
    loss /= n_valid
    if accuracy:
        return 1.0 - loss
    return flip_and_squash(math.sqrt(loss))


def run_predict_once(algorithm, memory: Memory, features, rng=0, setup: bool = False,
                     component: str = "predict") -> Memory:
    """Runs one component function on a copy of ``memory`` with ``v0 = features``.

    A small debugging aid for the per-op tests: no loop, no label handling.
    """
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    mem = memory.copy()
    F = mem.v.shape[1]
    mem.v[0] = np.asarray(features, dtype=np.float64)
    if setup:
        run_component(algorithm.setup, mem, F, rng)
    run_component(getattr(algorithm, component), mem, F, rng)
    return mem
