"""Numba kernels of the host-side search (private; see :mod:`azero_jax.core.population`,
:mod:`azero_jax.evolution.batch_mutator` and :mod:`azero_jax.evolution.fec`).

Everything a search does per child -- tournaments, mutations, random instructions,
program and fingerprint hashing, the LRU tables of the FEC cache -- runs here, compiled,
over whole batches of children stored as instruction tensors. The Python code around it
calls each kernel once per batch.

Random numbers come from counter-based streams: child ``id`` of a search with seed
``seed`` draws from ``splitmix64(key(seed, id, purpose))``. A child's tournament and
mutation therefore depend only on the search seed, its individual number and the
population it sees -- not on the batch it was made in or on any stored generator state,
so a checkpoint needs no RNG state and batching never changes what a given parent
turns into.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
# Kernels that allocate nothing are compiled without numba's reference counting: otherwise
# every call increments and decrements each array argument's count atomically (about
# 10 ns an array), which made a helper taking the eight field tensors cost ~100 ns a call,
# several times its work. Such a kernel must not create or return arrays.
_LEAF = dict(_JIT, _nrt=False)

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_LANE0 = np.uint64(0x243F6A8885A308D3)
_LANE1 = np.uint64(0x13198A2E03707344)
_TWO_POW_M53 = 1.0 / 9007199254740992.0

# Stream purposes (salts).
SALT_TOURNAMENT = 1
SALT_MUTATION = 2
SALT_RANDOM_PROGRAM = 3

# Op classes in the op-info table (columns: kind, #in1, #in2, first out, #out).
KIND_NOOP, KIND_DATA, KIND_UNARY, KIND_BINARY = 0, 1, 2, 3
I_KIND, I_N1, I_N2, I_FIRST_OUT, I_N_OUT = 0, 1, 2, 3, 4

# Mutation actions (the reference's MutationType values).
ALTER_PARAM, RANDOMIZE_INSTRUCTION, RANDOMIZE_COMPONENT_FUNCTION, IDENTITY = 0, 1, 2, 3
INSERT_INSTRUCTION, REMOVE_INSTRUCTION, TRADE_INSTRUCTION, RANDOMIZE_ALGORITHM = 4, 5, 6, 7

# Mutation styles: the reference's code, or the paper's text (S3).
STYLE_REFERENCE, STYLE_PAPER = 0, 1

_SCALAR_CONST, _VECTOR_CONST, _MATRIX_CONST = 56, 57, 58
_F32_MAX = float(np.finfo(np.float32).max)
# Largest float32 below 1: index fractions must stay < 1 after the float32 cast.
_MAX_FRACTION = float(np.nextafter(np.float32(1.0), np.float32(0.0)))


# ----------------------------------------------------------------------------------
# Random streams.


@numba.njit(inline="always", **_JIT)
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@numba.njit(**_JIT)
def stream_key(seed, ident, salt):
    """The start state of the stream of individual ``ident`` for ``salt``."""
    h = _mix(np.uint64(seed) + GOLDEN)
    h = _mix(h ^ (np.uint64(ident) * _M1 + np.uint64(salt)))
    return _mix(h + np.uint64(salt) * GOLDEN)


@numba.njit(inline="always", **_JIT)
def _next(st):
    st[0] += GOLDEN
    return _mix(st[0])


@numba.njit(inline="always", **_JIT)
def _uniform(st):
    """U[0, 1) with 53 random bits."""
    return float(_next(st) >> np.uint64(11)) * _TWO_POW_M53


@numba.njit(inline="always", **_JIT)
def _below(st, n):
    """Uniform integer in [0, n) (``int(u * n)``, as the per-child mutator draws)."""
    return int(_uniform(st) * n)


@numba.njit(**_LEAF)
def _gauss(st):
    """N(0, 1) by Box-Muller (one normal per two uniforms)."""
    u1 = 1.0 - _uniform(st)  # (0, 1]: log stays finite
    u2 = _uniform(st)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@numba.njit(**_JIT)
def draws(seed, ident, salt, n, normal):
    """``n`` draws of one stream, U[0, 1) or N(0, 1) (for tests of the generator)."""
    st = np.empty(1, np.uint64)
    st[0] = stream_key(seed, ident, salt)
    out = np.empty(n)
    for k in range(n):
        out[k] = _gauss(st) if normal else _uniform(st)
    return out


# ----------------------------------------------------------------------------------
# Moving algorithms between tensors.


@numba.njit(inline="always", **_JIT)
def _row_contiguous(a):
    """Whether each ``a[j]`` ([3, L]) is one contiguous run."""
    return a.strides[1] == a.shape[2] * a.strides[2] and a.strides[2] == a.itemsize


@numba.njit(inline="always", **_JIT)
def _copy_field(src, i, dst, j, n):
    if n == dst.shape[2] and n == src.shape[2] and _row_contiguous(src) \
            and _row_contiguous(dst):
        # Equal lengths: the row's three functions are one contiguous run. Copied as one
        # (indexing past the last axis, within the row) it takes about 60 % of the time
        # of three short runs, which the compiler does not vectorise.
        for k in range(3 * n):
            dst[j, 0, k] = src[i, 0, k]
        return
    for c in range(3):
        for k in range(n):
            dst[j, c, k] = src[i, c, k]
        for k in range(n, dst.shape[2]):
            dst[j, c, k] = 0


@numba.njit(**_LEAF)
def copy_rows(s_op, s_in1, s_in2, s_out, s_d, s_f0, s_f1, s_f2, s_size, src,
              d_op, d_in1, d_in2, d_out, d_d, d_f0, d_f1, d_f2, d_size, dst):
    """Copies algorithm ``src[r]`` of the source tensors to ``dst[r]`` of the destination
    (which must have room for every function; columns past the source's are zeroed)."""
    n = min(s_op.shape[2], d_op.shape[2])
    for r in range(src.shape[0]):
        i = src[r]
        j = dst[r]
        for c in range(3):
            d_size[j, c] = s_size[i, c]
        # Field by field: each is a short contiguous run the compiler copies in blocks.
        _copy_field(s_op, i, d_op, j, n)
        _copy_field(s_in1, i, d_in1, j, n)
        _copy_field(s_in2, i, d_in2, j, n)
        _copy_field(s_out, i, d_out, j, n)
        _copy_field(s_d, i, d_d, j, n)
        _copy_field(s_f0, i, d_f0, j, n)
        _copy_field(s_f1, i, d_f1, j, n)
        _copy_field(s_f2, i, d_f2, j, n)


# ----------------------------------------------------------------------------------
# Tournaments.


@numba.njit(**_JIT)
def tournaments(fitness, ids, seed, size, out):
    """Winner of each child's tournament: ``size`` draws with replacement over the
    population; the strictly highest fitness wins, ties go to the earliest draw."""
    P = fitness.shape[0]
    st = np.empty(1, np.uint64)
    for j in range(ids.shape[0]):
        st[0] = stream_key(seed, ids[j], SALT_TOURNAMENT)
        best = _below(st, P)
        best_fit = fitness[best]
        for _ in range(size - 1):
            i = _below(st, P)
            if fitness[i] > best_fit:
                best = i
                best_fit = fitness[i]
        out[j] = best


# ----------------------------------------------------------------------------------
# Random instructions and parameter alteration (spec §6.4-6.5).


@numba.njit(inline="always", **_JIT)
def _fraction(st):
    value = _uniform(st)
    return value if value < _MAX_FRACTION else _MAX_FRACTION


@numba.njit(inline="always", **_JIT)
def _sym(st):
    """U[-1, 1)."""
    return -1.0 + 2.0 * _uniform(st)


@numba.njit(inline="always", **_JIT)
def _f32(x):
    """Clamps to the float32 range (the field is float32: a log-scale step may overflow)."""
    if x > _F32_MAX:
        return _F32_MAX
    if x < -_F32_MAX:
        return -_F32_MAX
    return x


@numba.njit(**_LEAF)
def _log_scale(x, st):
    """Multiplies ``|x|`` by ``exp(N(0, 1))``, keeping the sign (0 stays 0, as -0)."""
    g = _gauss(st)
    if x > 0:
        return math.exp(math.log(x) + g)
    if x < 0:
        return -math.exp(math.log(-x) + g)
    return -0.0


@numba.njit(**_LEAF)
def _alter_constant(x, st, style, may_flip):
    """The reference's MutateLogScale(OrFlip): flipped w.p. 0.1, else log-scaled; the
    paper's (S3): x U[0.5, 2], then flipped w.p. 0.1 (``mutator.Mutator`` states both)."""
    if style == STYLE_PAPER:
        y = x * (0.5 + 1.5 * _uniform(st))
        if may_flip and _uniform(st) < 0.1:
            return -y
        return y
    if may_flip and _uniform(st) < 0.1:
        return -x
    return _log_scale(x, st)


@numba.njit(inline="always", **_JIT)
def _draw_operands(code, info, st):
    """The operands of a fresh random instruction with op ``code`` (§6.4 draw order:
    data ops out then data; unary in1, out; binary in1, in2, out).

    Returns ``(in1, in2, out, d, f0, f1, f2)``. (Drawing into values and storing them
    apart is several times faster than a helper that takes the eight field tensors and
    writes them as it draws: numba compiles that one poorly.)
    """
    kind = info[code, I_KIND]
    a1 = 0
    a2 = 0
    o = 0
    dd = 0.0
    g0 = 0.0
    g1 = 0.0
    g2 = 0.0
    if kind == KIND_BINARY:
        a1 = _below(st, info[code, I_N1])
        a2 = _below(st, info[code, I_N2])
        o = info[code, I_FIRST_OUT] + _below(st, info[code, I_N_OUT])
    elif kind == KIND_UNARY:
        a1 = _below(st, info[code, I_N1])
        o = info[code, I_FIRST_OUT] + _below(st, info[code, I_N_OUT])
    elif kind == KIND_DATA:
        o = info[code, I_FIRST_OUT] + _below(st, info[code, I_N_OUT])
        if code == _SCALAR_CONST:
            dd = _sym(st)
        elif code == _VECTOR_CONST:
            g0 = _fraction(st)
            g1 = _sym(st)
        elif code == _MATRIX_CONST:
            g0 = _fraction(st)
            g1 = _fraction(st)
            g2 = _sym(st)
        elif code >= 62:  # gaussian: mean U[-1, 1), stdev U[0, 1)
            g0 = _sym(st)
            g1 = _uniform(st)
        else:  # uniform: low and high U[-1, 1) independently
            g0 = _sym(st)
            g1 = _sym(st)
    return a1, a2, o, dd, g0, g1, g2


@numba.njit(**_LEAF)
def _store(op, in1, in2, out, d, f0, f1, f2, j, c, i, code, a1, a2, o, dd, g0, g1, g2):
    op[j, c, i] = code
    in1[j, c, i] = a1
    in2[j, c, i] = a2
    out[j, c, i] = o
    d[j, c, i] = dd
    f0[j, c, i] = g0
    f1[j, c, i] = g1
    f2[j, c, i] = g2


@numba.njit(**_LEAF)
def _write_random(op, in1, in2, out, d, f0, f1, f2, j, c, i, code, info, st):
    """A fresh random instruction with op ``code`` at ``[j, c, i]``."""
    a1, a2, o, dd, g0, g1, g2 = _draw_operands(code, info, st)
    _store(op, in1, in2, out, d, f0, f1, f2, j, c, i, code, a1, a2, o, dd, g0, g1, g2)


@numba.njit(**_LEAF)
def _alter_data(code, d, f0, f1, f2, j, c, i, st, style):
    if code == _SCALAR_CONST:
        d[j, c, i] = _alter_constant(d[j, c, i], st, style, True)
    elif code == _VECTOR_CONST:
        if _uniform(st) < 0.5:
            f0[j, c, i] = _fraction(st)
        else:
            f1[j, c, i] = _f32(_alter_constant(float(f1[j, c, i]), st, style, True))
    elif code == _MATRIX_CONST:
        choice = _below(st, 3)
        if choice == 0:
            f0[j, c, i] = _fraction(st)
        elif choice == 1:
            f1[j, c, i] = _fraction(st)
        else:
            f2[j, c, i] = _f32(_alter_constant(float(f2[j, c, i]), st, style, True))
    elif code >= 62:  # gaussian: the mean may flip, the stdev keeps its sign
        if _uniform(st) < 0.5:
            f0[j, c, i] = _f32(_alter_constant(float(f0[j, c, i]), st, style, True))
        else:
            f1[j, c, i] = _f32(_alter_constant(float(f1[j, c, i]), st, style, False))
    else:  # uniform: alter low or high, then order them
        if _uniform(st) < 0.5:
            f0[j, c, i] = _f32(_alter_constant(float(f0[j, c, i]), st, style, True))
        else:
            f1[j, c, i] = _f32(_alter_constant(float(f1[j, c, i]), st, style, True))
        low = f0[j, c, i]
        high = f1[j, c, i]
        if high < low:
            f0[j, c, i] = high
            f1[j, c, i] = low


@numba.njit(**_LEAF)
def _alter_param(op, in1, in2, out, d, f0, f1, f2, j, c, i, info, st, style):
    code = op[j, c, i]
    kind = info[code, I_KIND]
    if kind == KIND_NOOP:
        return
    if kind == KIND_DATA:
        if _uniform(st) < 0.5:
            out[j, c, i] = info[code, I_FIRST_OUT] + _below(st, info[code, I_N_OUT])
        else:
            _alter_data(code, d, f0, f1, f2, j, c, i, st, style)
    elif kind == KIND_UNARY:
        if _uniform(st) < 0.5:
            in1[j, c, i] = _below(st, info[code, I_N1])
        else:
            out[j, c, i] = info[code, I_FIRST_OUT] + _below(st, info[code, I_N_OUT])
    else:
        choice = _below(st, 3)
        if choice == 0:
            in1[j, c, i] = _below(st, info[code, I_N1])
        elif choice == 1:
            in2[j, c, i] = _below(st, info[code, I_N2])
        else:
            out[j, c, i] = info[code, I_FIRST_OUT] + _below(st, info[code, I_N_OUT])


@numba.njit(**_LEAF)
def _random_op(op_lists, op_counts, c, st):
    return op_lists[c, _below(st, op_counts[c])]


@numba.njit(inline="always", **_JIT)
def _copy_entry(op, in1, in2, out, d, f0, f1, f2, j, c, dst, src):
    op[j, c, dst] = op[j, c, src]
    in1[j, c, dst] = in1[j, c, src]
    in2[j, c, dst] = in2[j, c, src]
    out[j, c, dst] = out[j, c, src]
    d[j, c, dst] = d[j, c, src]
    f0[j, c, dst] = f0[j, c, src]
    f1[j, c, dst] = f1[j, c, src]
    f2[j, c, dst] = f2[j, c, src]


@numba.njit(inline="always", **_JIT)
def _clear_entry(op, in1, in2, out, d, f0, f1, f2, j, c, k):
    op[j, c, k] = 0
    in1[j, c, k] = 0
    in2[j, c, k] = 0
    out[j, c, k] = 0
    d[j, c, k] = 0.0
    f0[j, c, k] = 0.0
    f1[j, c, k] = 0.0
    f2[j, c, k] = 0.0


@numba.njit(**_LEAF)
def _remove_at(op, in1, in2, out, d, f0, f1, f2, j, c, pos, size):
    """Deletes entry ``pos``; the vacated last entry becomes an all-zero NO_OP (padding)."""
    for k in range(pos, size - 1):
        _copy_entry(op, in1, in2, out, d, f0, f1, f2, j, c, k, k + 1)
    _clear_entry(op, in1, in2, out, d, f0, f1, f2, j, c, size - 1)


@numba.njit(**_LEAF)
def _insert_random(op, in1, in2, out, d, f0, f1, f2, size, j, c, info, op_lists, op_counts,
                   st):
    """Draws an op and a random instruction, then inserts it at a uniform position in
    ``[0, size]`` (the per-child mutator's order of draws)."""
    s = size[j, c]
    L = op.shape[2]
    code = _random_op(op_lists, op_counts, c, st)
    # Draw the instruction into the spare last column, then move it into place.
    _write_random(op, in1, in2, out, d, f0, f1, f2, j, c, L - 1, code, info, st)
    pos = _below(st, s + 1)
    # Make room at pos (size + 1 < L: the shift never reaches the scratch column), move
    # the drawn instruction there and clear the scratch column (it is padding).
    for k in range(s, pos, -1):
        _copy_entry(op, in1, in2, out, d, f0, f1, f2, j, c, k, k - 1)
    _copy_entry(op, in1, in2, out, d, f0, f1, f2, j, c, pos, L - 1)
    _clear_entry(op, in1, in2, out, d, f0, f1, f2, j, c, L - 1)
    size[j, c] = s + 1


@numba.njit(**_LEAF)
def _randomize_component(op, in1, in2, out, d, f0, f1, f2, size, j, c, info, op_lists,
                         op_counts, st):
    if op_counts[c] == 0:
        return
    for i in range(size[j, c]):
        code = _random_op(op_lists, op_counts, c, st)
        _write_random(op, in1, in2, out, d, f0, f1, f2, j, c, i, code, info, st)


@numba.njit(**_JIT)
def mutate(op, in1, in2, out, d, f0, f1, f2, size, ids, seed, mutate_prob, actions,
           action_weights, mutable, info, op_lists, op_counts, size_min, size_max, style,
           applied):
    """Mutates children in place (they arrive as copies of their parents).

    With probability ``mutate_prob`` one action is drawn (``actions`` with cumulative
    ``action_weights`` in [0, 1]; the reference's uniform choice over its list is
    equal steps) and applied (§6.6); ``applied[j]`` gets the action, or -1 when the
    child is left unmutated (mutation skipped, or a blocked insert/remove).

    The tensors need two spare columns (``size + 1 < L``) for a child that may grow: one
    for the new entry, one as scratch.
    """
    st = np.empty(1, np.uint64)
    n_mutable = mutable.shape[0]
    for j in range(ids.shape[0]):
        st[0] = stream_key(seed, ids[j], SALT_MUTATION)
        applied[j] = -1
        if mutate_prob < 1.0 and not _uniform(st) < mutate_prob:
            continue
        u = _uniform(st)
        a = 0
        while a < actions.shape[0] - 1 and not u < action_weights[a]:
            a += 1
        action = actions[a]
        if action == IDENTITY:
            applied[j] = action
            continue
        if action == RANDOMIZE_ALGORITHM:
            for c in range(3):
                _randomize_component(op, in1, in2, out, d, f0, f1, f2, size, j, c, info,
                                     op_lists, op_counts, st)
            applied[j] = action
            continue
        c = mutable[_below(st, n_mutable)]
        s = size[j, c]
        if action == ALTER_PARAM:
            if s == 0:
                continue
            i = _below(st, s)
            _alter_param(op, in1, in2, out, d, f0, f1, f2, j, c, i, info, st, style)
        elif action == RANDOMIZE_INSTRUCTION:
            if s == 0:
                continue
            i = _below(st, s)
            code = _random_op(op_lists, op_counts, c, st)
            _write_random(op, in1, in2, out, d, f0, f1, f2, j, c, i, code, info, st)
        elif action == RANDOMIZE_COMPONENT_FUNCTION:
            _randomize_component(op, in1, in2, out, d, f0, f1, f2, size, j, c, info,
                                 op_lists, op_counts, st)
        elif action == INSERT_INSTRUCTION:
            if size_max[c] != 0 and s >= size_max[c] - 1:
                continue
            _insert_random(op, in1, in2, out, d, f0, f1, f2, size, j, c, info, op_lists,
                           op_counts, st)
        elif action == REMOVE_INSTRUCTION:
            if s <= size_min[c] or s == 0:
                continue
            _remove_at(op, in1, in2, out, d, f0, f1, f2, j, c, _below(st, s), s)
            size[j, c] = s - 1
        elif action == TRADE_INSTRUCTION:
            _insert_random(op, in1, in2, out, d, f0, f1, f2, size, j, c, info, op_lists,
                           op_counts, st)
            grown = size[j, c]
            _remove_at(op, in1, in2, out, d, f0, f1, f2, j, c, _below(st, grown), grown)
            size[j, c] = grown - 1
        applied[j] = action


@numba.njit(**_JIT)
def random_programs(op, in1, in2, out, d, f0, f1, f2, size, ids, seed, init_sizes, info,
                    op_lists, op_counts):
    """RANDOM_ALGORITHM programs: per function its initial size of random instructions
    (NO_OPs where the function has no allowed ops), keyed by each individual's id."""
    st = np.empty(1, np.uint64)
    for j in range(ids.shape[0]):
        st[0] = stream_key(seed, ids[j], SALT_RANDOM_PROGRAM)
        for c in range(3):
            size[j, c] = init_sizes[c]
            for i in range(init_sizes[c]):
                if op_counts[c] == 0:
                    _clear_entry(op, in1, in2, out, d, f0, f1, f2, j, c, i)
                else:
                    code = _random_op(op_lists, op_counts, c, st)
                    _write_random(op, in1, in2, out, d, f0, f1, f2, j, c, i, code, info, st)


# ----------------------------------------------------------------------------------
# Hashing: 128-bit keys as two lanes. Each lane is a sum of splitmix64 mixes, one per
# (word, position), finished by one more mix with the word count. The terms do not depend
# on each other, so the processor overlaps them: about twice as fast as a chain in which
# every word waits for the previous one's mix. A sum of k words' terms can be extended by
# more words before it is finished (the search adds the budget word to stored fingerprint
# sums).


@numba.njit(inline="always", **_JIT)
def _term(word, position, lane):
    return _mix((word ^ (GOLDEN * np.uint64(position + 1))) + lane)


@numba.njit(inline="always", **_JIT)
def _finish(total, count, lane):
    return _mix(total + (lane ^ np.uint64(count)))


@numba.njit(**_LEAF)
def hash_rows(words, hi, lo):
    """128-bit hashes of the rows of a ``[n, k]`` uint64 array (the lanes of
    :func:`azero_jax.evolution.fec.hash_rows`)."""
    n, k = words.shape
    for r in range(n):
        a = np.uint64(0)
        b = np.uint64(0)
        for q in range(k):
            a += _term(words[r, q], q, _LANE0)
            b += _term(words[r, q], q, _LANE1)
        hi[r] = _finish(a, k, _LANE0)
        lo[r] = _finish(b, k, _LANE1)


@numba.njit(**_JIT)
def fingerprint_hashes(terr, nterr, verr, nverr, task_ids, finish, hi, lo):
    """:func:`hash_rows` of each pair's fingerprint words, without building them: the
    recorded train errors (0 past the count, -0 as +0), the valid errors likewise, then
    the two counts and the task index (the words of
    :func:`azero_jax.evolution.fec.fingerprint_words`). Without ``finish``, the lanes' unfinished
    sums (to extend with more words)."""
    buf = np.empty(1, np.float64)
    bits = buf.view(np.uint64)
    kt = terr.shape[1]
    kv = verr.shape[1]
    k = kt + kv + 3
    for r in range(terr.shape[0]):
        a = np.uint64(0)
        b = np.uint64(0)
        for q in range(kt):
            buf[0] = terr[r, q] + 0.0 if q < nterr[r] else 0.0
            a += _term(bits[0], q, _LANE0)
            b += _term(bits[0], q, _LANE1)
        for q in range(kv):
            buf[0] = verr[r, q] + 0.0 if q < nverr[r] else 0.0
            a += _term(bits[0], kt + q, _LANE0)
            b += _term(bits[0], kt + q, _LANE1)
        w = np.uint64(nterr[r])
        a += _term(w, kt + kv, _LANE0)
        b += _term(w, kt + kv, _LANE1)
        w = np.uint64(nverr[r])
        a += _term(w, kt + kv + 1, _LANE0)
        b += _term(w, kt + kv + 1, _LANE1)
        w = np.uint64(task_ids[r])
        a += _term(w, kt + kv + 2, _LANE0)
        b += _term(w, kt + kv + 2, _LANE1)
        if finish:
            a = _finish(a, k, _LANE0)
            b = _finish(b, k, _LANE1)
        hi[r] = a
        lo[r] = b


@numba.njit(**_LEAF)
def program_hashes(op, in1, in2, out, d_bits, f0_bits, f1_bits, f2_bits, size, hi, lo):
    """Exact-content keys of programs: sizes and every field, bit for bit."""
    for j in range(op.shape[0]):
        a = np.uint64(0)
        b = np.uint64(0)
        q = 0
        for c in range(3):
            w = np.uint64(size[j, c])
            a += _term(w, q, _LANE0)
            b += _term(w, q, _LANE1)
            q += 1
            for i in range(size[j, c]):
                w = (np.uint64(op[j, c, i]) | (np.uint64(in1[j, c, i] & 0xFFFF) << np.uint64(16))
                     | (np.uint64(in2[j, c, i] & 0xFFFF) << np.uint64(32))
                     | (np.uint64(out[j, c, i] & 0xFFFF) << np.uint64(48)))
                a += _term(w, q, _LANE0)
                b += _term(w, q, _LANE1)
                w = np.uint64(d_bits[j, c, i])
                a += _term(w, q + 1, _LANE0)
                b += _term(w, q + 1, _LANE1)
                w = (np.uint64(f0_bits[j, c, i]) | (np.uint64(f1_bits[j, c, i]) << np.uint64(32)))
                a += _term(w, q + 2, _LANE0)
                b += _term(w, q + 2, _LANE1)
                w = np.uint64(f2_bits[j, c, i])
                a += _term(w, q + 3, _LANE0)
                b += _term(w, q + 3, _LANE1)
                q += 4
        hi[j] = _finish(a, q, _LANE0)
        lo[j] = _finish(b, q, _LANE1)


# ----------------------------------------------------------------------------------
# An LRU table of 128-bit keys: open addressing (linear probing, backward-shift
# deletion) over a pool of entries kept in a doubly linked recency list.
#
# Each entry is one row of ``ent`` [capacity + 1, 4 or 8] uint64: key hi, key lo, previous
# and next entry in recency order, then optional payload words (the FEC cache keeps an
# entry's fitness bits and count there). A row is 32 or 64 bytes on a cache-line boundary,
# so visiting an entry (compare its key, relink it, read its value) touches one cache line
# rather than several arrays' worth: with a cache of 10^5 entries the table outgrows the
# L2 cache, and these random visits are its whole cost.
# ``index`` (uint64) maps hash slots to entries: the entry number in the high half, the key's
# low 32 bits in the low half, so probing past other keys and shifting them on deletion
# read only the index (which fits the L2 cache) and never their entries' rows. The list's sentinel is entry ``capacity``
# (next[sentinel] = least recent, prev[sentinel] = most recent).
# meta = [size, capacity, free_top, hits, misses].

M_SIZE, M_CAPACITY, M_FREE_TOP, M_HITS, M_MISSES = 0, 1, 2, 3, 4
META_LEN = 5
E_HI, E_LO, E_PREV, E_NEXT = 0, 1, 2, 3
_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)  # a free index slot
_LOW32 = np.uint64(0xFFFFFFFF)
ENTRY_WORDS = 4
# The FEC cache's payload: fitness (float64 bits) and sighting count.
E_VALUE, E_COUNT = 4, 5
FEC_ENTRY_WORDS = 8


@intrinsic
def _prefetch(typingctx, array, position):
    """Asks the CPU to start loading ``array[position]`` (its first element, for a row of a
    matrix) into its caches (a hint: no effect on results). The table loops issue it a few keys ahead: each key's visit is a
    chain of dependent loads too long for the CPU to overlap with the next key's on its own.
    """
    if not isinstance(array, types.Array) or not isinstance(position, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        i = context.cast(builder, args[1], signature.args[1], types.intp)
        zero = context.get_constant(types.intp, 0)
        pointer = cgutils.get_item_pointer(context, builder, array_type, view,
                                           [i] + [zero] * (array_type.ndim - 1),
                                           wraparound=False)
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
            "llvm.prefetch.p0")
        # read access, high temporal locality, data cache
        builder.call(function, [builder.bitcast(pointer, byte_pointer), ir.Constant(i32, 0),
                                ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(array, position), codegen


# How many keys ahead the table loops prefetch (a few cache misses' worth of work).
_AHEAD = 6


@numba.njit(inline="always", **_JIT)
def _as_float(bits, buf, buf_bits):
    buf_bits[0] = bits
    return buf[0]


@numba.njit(inline="always", **_JIT)
def _as_bits(value, buf, buf_bits):
    buf[0] = value
    return buf_bits[0]


@numba.njit(**_LEAF)
def table_init(index, ent, free, meta, capacity):
    index[:] = _EMPTY
    sentinel = capacity
    ent[sentinel, E_PREV] = sentinel
    ent[sentinel, E_NEXT] = sentinel
    for e in range(capacity):
        free[e] = capacity - 1 - e
    meta[M_SIZE] = 0
    meta[M_CAPACITY] = capacity
    meta[M_FREE_TOP] = capacity
    meta[M_HITS] = 0
    meta[M_MISSES] = 0


@numba.njit(inline="always", **_JIT)
def _home(lo, mask):
    return np.int64(lo & np.uint64(mask))


@numba.njit(inline="always", **_JIT)
def _slot_value(e, key_lo):
    return (np.uint64(e) << np.uint64(32)) | (key_lo & _LOW32)


@numba.njit(inline="always", **_JIT)
def _slot_entry(value):
    return np.int64(value >> np.uint64(32))


@numba.njit(inline="always", **_LEAF)
def _find_slot(index, ent, key_hi, key_lo):
    """Index slot holding the key, or -1."""
    mask = index.shape[0] - 1
    s = _home(key_lo, mask)
    tag = key_lo & _LOW32
    while True:
        v = index[s]
        if v == _EMPTY:
            return -1
        if (v & _LOW32) == tag:
            e = _slot_entry(v)
            if ent[e, E_LO] == key_lo and ent[e, E_HI] == key_hi:
                return s
        s = (s + 1) & mask


@numba.njit(inline="always", **_JIT)
def _unlink(ent, e):
    p = np.int64(ent[e, E_PREV])
    n = np.int64(ent[e, E_NEXT])
    ent[p, E_NEXT] = n
    ent[n, E_PREV] = p


@numba.njit(inline="always", **_JIT)
def _link_newest(ent, e, sentinel):
    last = np.int64(ent[sentinel, E_PREV])
    ent[last, E_NEXT] = e
    ent[e, E_PREV] = last
    ent[e, E_NEXT] = sentinel
    ent[sentinel, E_PREV] = e


@numba.njit(inline="always", **_LEAF)
def _delete_slot(index, s):
    """Backward-shift deletion keeps every probe chain unbroken without tombstones."""
    mask = index.shape[0] - 1
    i = s
    j = s
    while True:
        j = (j + 1) & mask
        v = index[j]
        if v == _EMPTY:
            break
        k = _home(v, mask)  # the low half is the key's low bits: its home
        # Move the key back to i unless its home lies cyclically in (i, j].
        if i <= j:
            stays = i < k <= j
        else:
            stays = k > i or k <= j
        if not stays:
            index[i] = v
            i = j
    index[i] = _EMPTY


@numba.njit(inline="always", **_LEAF)
def _remove_entry(index, ent, free, meta, s):
    e = _slot_entry(index[s])
    _delete_slot(index, s)
    _unlink(ent, e)
    free[meta[M_FREE_TOP]] = e
    meta[M_FREE_TOP] += 1
    meta[M_SIZE] -= 1


@numba.njit(inline="always", **_LEAF)
def _evict_over(index, ent, free, meta, limit):
    sentinel = meta[M_CAPACITY]
    while meta[M_SIZE] > limit:
        e = np.int64(ent[sentinel, E_NEXT])
        s = _find_slot(index, ent, ent[e, E_HI], ent[e, E_LO])
        _remove_entry(index, ent, free, meta, s)


@numba.njit(**_LEAF)
def table_insert(index, ent, free, meta, keys_hi, keys_lo, limit, entries):
    """Inserts keys as the most recent (an existing key is refreshed), evicting the least
    recent beyond ``limit`` entries after each insert; ``entries`` gets each key's entry
    (-1 if it was evicted again within this call)."""
    sentinel = meta[M_CAPACITY]
    mask = index.shape[0] - 1
    n = keys_hi.shape[0]
    # An entry some evictions ahead of the least recent, whose slot and row are prefetched
    # (``sentinel``: none yet). Any entry is correct here; a stale one only prefetches
    # the wrong lines until it runs into the sentinel and is reset.
    ahead = sentinel
    for r in range(n):
        if r + _AHEAD < n:
            _prefetch(index, _home(keys_lo[r + _AHEAD], mask))
        s = _find_slot(index, ent, keys_hi[r], keys_lo[r])
        if s >= 0:
            e = _slot_entry(index[s])
            _unlink(ent, e)
            _link_newest(ent, e, sentinel)
        else:
            if meta[M_FREE_TOP] == 0:
                if ahead == sentinel:
                    ahead = np.int64(ent[sentinel, E_NEXT])
                    for _ in range(_AHEAD):
                        if ahead != sentinel:
                            ahead = np.int64(ent[ahead, E_NEXT])
                else:
                    ahead = np.int64(ent[ahead, E_NEXT])
                if ahead != sentinel:
                    _prefetch(index, _home(ent[ahead, E_LO], mask))
                    _prefetch(ent, np.int64(ent[ahead, E_NEXT]))
                _evict_over(index, ent, free, meta, meta[M_SIZE] - 1)
            meta[M_FREE_TOP] -= 1
            e = free[meta[M_FREE_TOP]]
            ent[e, E_HI] = keys_hi[r]
            ent[e, E_LO] = keys_lo[r]
            s = _home(keys_lo[r], mask)
            while index[s] != _EMPTY:
                s = (s + 1) & mask
            index[s] = _slot_value(e, keys_lo[r])
            _link_newest(ent, e, sentinel)
            meta[M_SIZE] += 1
        entries[r] = e
        _evict_over(index, ent, free, meta, limit)
    # With more keys than room, early ones may have been evicted again within the call.
    if keys_hi.shape[0] > limit:
        for r in range(keys_hi.shape[0]):
            if _find_slot(index, ent, keys_hi[r], keys_lo[r]) < 0:
                entries[r] = -1


@numba.njit(**_LEAF)
def table_find(index, ent, meta, keys_hi, keys_lo, refresh, entries):
    """Entry of each key or -1; ``refresh`` moves found keys to the most recent end."""
    sentinel = meta[M_CAPACITY]
    n = keys_hi.shape[0]
    for r in range(n):
        s = _find_slot(index, ent, keys_hi[r], keys_lo[r])
        if s < 0:
            entries[r] = -1
            continue
        e = _slot_entry(index[s])
        entries[r] = e
        if refresh:
            _unlink(ent, e)
            _link_newest(ent, e, sentinel)


@numba.njit(**_JIT)
def fec_lookup(index, ent, free, meta, keys_hi, keys_lo, forget_every, out_values, found):
    """The FEC cache's lookups, in order (§7): a present key is a hit -- its count is
    incremented and it becomes the most recent, or it is erased once the count reaches
    ``forget_every``. Absent keys are left to the caller (not counted here)."""
    sentinel = meta[M_CAPACITY]
    buf = np.empty(1, np.float64)
    buf_bits = buf.view(np.uint64)
    n = keys_hi.shape[0]
    for r in range(n):
        s = _find_slot(index, ent, keys_hi[r], keys_lo[r])
        if s < 0:
            found[r] = False
            out_values[r] = 0.0
            continue
        e = _slot_entry(index[s])
        found[r] = True
        out_values[r] = _as_float(ent[e, E_VALUE], buf, buf_bits)
        ent[e, E_COUNT] += np.uint64(1)
        meta[M_HITS] += 1
        if forget_every != 0 and np.int64(ent[e, E_COUNT]) >= forget_every:
            _remove_entry(index, ent, free, meta, s)
        else:
            _unlink(ent, e)
            _link_newest(ent, e, sentinel)


@numba.njit(**_JIT)
def fec_insert(index, ent, free, meta, keys_hi, keys_lo, values):
    """Inserts fresh fitnesses (count 1) as the most recent entries, in order."""
    entries = np.empty(keys_hi.shape[0], np.int64)
    table_insert(index, ent, free, meta, keys_hi, keys_lo, meta[M_CAPACITY], entries)
    buf = np.empty(1, np.float64)
    buf_bits = buf.view(np.uint64)
    for r in range(keys_hi.shape[0]):
        e = entries[r]
        if e >= 0:
            ent[e, E_VALUE] = _as_bits(values[r], buf, buf_bits)
            ent[e, E_COUNT] = 1
    return entries


@numba.njit(**_JIT)
def table_order(ent, meta, out):
    """Entries from least to most recent."""
    sentinel = meta[M_CAPACITY]
    e = np.int64(ent[sentinel, E_NEXT])
    k = 0
    while e != sentinel:
        out[k] = e
        k += 1
        e = np.int64(ent[e, E_NEXT])
    return k


@numba.njit(**_JIT)
def first_sightings(keys_hi, keys_lo, active, owner):
    """For each active row: the first active row with the same key (itself if first).

    A small open-addressing table over the batch; inactive rows get -1.
    """
    n = keys_hi.shape[0]
    size = 16
    while size < 2 * n:
        size *= 2
    mask = size - 1
    slots = np.full(size, -1, np.int64)
    for r in range(n):
        if not active[r]:
            owner[r] = -1
            continue
        s = np.int64(keys_lo[r] & np.uint64(mask))
        while True:
            q = slots[s]
            if q < 0:
                slots[s] = r
                owner[r] = r
                break
            if keys_hi[q] == keys_hi[r] and keys_lo[q] == keys_lo[r]:
                owner[r] = q
                break
            s = (s + 1) & mask


# ----------------------------------------------------------------------------------
# A search step's FEC bookkeeping, one compiled call per phase (evolution.Search): the
# same operations, in the same order, as the batched table calls they replace, without
# the dozens of small array operations a step otherwise costs in Python.


@numba.njit(**_JIT)
def probe_plan(prog_hi, prog_lo, index, ent, meta, memo_hi, memo_lo, memo_steps,
               part_hi, part_lo, probe_steps, owner, unique):
    """Which children need a fingerprint run.

    Children whose program is in the probe memo (refreshed) get their fingerprint words'
    hashes and probe steps from it (``owner`` -1); the others get the first child with the
    same program (``owner``), and ``unique`` lists those first children. Returns how many.
    """
    n = prog_hi.shape[0]
    T = part_hi.shape[1]
    entries = np.empty(n, np.int64)
    table_find(index, ent, meta, prog_hi, prog_lo, True, entries)
    todo = entries < 0
    for r in range(n):
        e = entries[r]
        if e < 0:
            continue
        for t in range(T):
            part_hi[r, t] = memo_hi[e, t]
            part_lo[r, t] = memo_lo[e, t]
        probe_steps[r] = memo_steps[e]
    first_sightings(prog_hi, prog_lo, todo, owner)
    m = 0
    for r in range(n):
        if todo[r] and owner[r] == r:
            unique[m] = r
            m += 1
    return m


@numba.njit(**_JIT)
def probe_finish(terr, nterr, verr, nverr, task_ids, pair_steps, unique, m, owner,
                 index, ent, free, meta, memo_hi, memo_lo, memo_steps, prog_hi, prog_lo,
                 part_hi, part_lo, probe_steps, budget, position, keys_hi, keys_lo):
    """Hashes the probe's fingerprints (pairs ``[m, T]`` of the ``unique`` children),
    hands them to every child with the same program, remembers them in the probe memo,
    and completes each pair's key with its budget word (word ``position``). Returns the probe steps of all
    children (memo hits included: the reference counts every fingerprint run)."""
    n, T = part_hi.shape
    hi = np.empty(m * T, np.uint64)
    lo = np.empty(m * T, np.uint64)
    fingerprint_hashes(terr, nterr, verr, nverr, task_ids, False, hi, lo)
    slot = np.full(n, -1, np.int64)
    steps = np.zeros(m, np.int64)
    for j in range(m):
        slot[unique[j]] = j
        for t in range(T):
            steps[j] += pair_steps[j * T + t]
    for r in range(n):
        if owner[r] < 0:
            continue
        j = slot[owner[r]]
        for t in range(T):
            part_hi[r, t] = hi[j * T + t]
            part_lo[r, t] = lo[j * T + t]
        probe_steps[r] = steps[j]
    entries = np.empty(m, np.int64)
    table_insert(index, ent, free, meta, prog_hi[unique[:m]], prog_lo[unique[:m]],
                 meta[M_CAPACITY], entries)
    for j in range(m):
        e = entries[j]
        if e >= 0:
            for t in range(T):
                memo_hi[e, t] = hi[j * T + t]
                memo_lo[e, t] = lo[j * T + t]
            memo_steps[e] = steps[j]
    total = 0
    for r in range(n):
        total += probe_steps[r]
        for t in range(T):
            q = r * T + t
            w = np.uint64(budget[q])
            keys_hi[q] = _finish(part_hi[r, t] + _term(w, position, _LANE0), position + 1,
                                 _LANE0)
            keys_lo[q] = _finish(part_lo[r, t] + _term(w, position, _LANE1), position + 1,
                                 _LANE1)
    return total


@numba.njit(**_JIT)
def fec_lookup_pairs(index, ent, free, meta, keys_hi, keys_lo, forget_every, per_task,
                     pending, budget):
    """:func:`fec_lookup` of every pair: hits fill ``per_task`` and leave ``pending``.
    Returns ``(misses, saved training steps)``."""
    n = keys_hi.shape[0]
    found = np.empty(n, np.bool_)
    values = np.empty(n, np.float64)
    fec_lookup(index, ent, free, meta, keys_hi, keys_lo, forget_every, values, found)
    misses = 0
    saved = 0
    for q in range(n):
        if found[q]:
            per_task[q] = values[q]
            pending[q] = False
            saved += budget[q]
        else:
            misses += 1
    return misses, saved


@numba.njit(**_JIT)
def full_plan(keys_hi, keys_lo, pairs, budget, T, with_fec, owner, run, deferred, used,
              remap):
    """The pairs to evaluate in full: with FEC, only the first of equal keys (later ones
    are ``deferred`` to the cache); pairs without budget are not run. ``used`` lists the
    children with a run pair, ``remap`` each run pair's position in ``used``.
    Returns ``(runs, deferred, used)`` counts."""
    if with_fec:
        first_sightings(keys_hi, keys_lo, pairs, owner)
    n_run = 0
    n_def = 0
    n_used = 0
    last = -1
    for q in range(pairs.shape[0]):
        if not pairs[q]:
            continue
        if with_fec and owner[q] != q:
            deferred[n_def] = q
            n_def += 1
            continue
        if budget[q] > 0:
            run[n_run] = q
            c = q // T
            if c != last:
                used[n_used] = c
                n_used += 1
                last = c
            remap[n_run] = n_used - 1
            n_run += 1
    return n_run, n_def, n_used


@numba.njit(**_JIT)
def full_finish(index, ent, free, meta, forget_every, keys_hi, keys_lo, pairs, owner,
                deferred, n_def, per_task):
    """Caches the evaluated pairs' fitnesses (in order, count 1), then answers the
    deferred pairs from the cache -- or from their first sighting when an entry was
    already forgotten again. Returns how many deferred pairs the cache did not answer."""
    n_done = 0
    for q in range(pairs.shape[0]):
        if pairs[q] and owner[q] == q:
            n_done += 1
    hi = np.empty(n_done, np.uint64)
    lo = np.empty(n_done, np.uint64)
    fit = np.empty(n_done, np.float64)
    k = 0
    for q in range(pairs.shape[0]):
        if pairs[q] and owner[q] == q:
            hi[k] = keys_hi[q]
            lo[k] = keys_lo[q]
            fit[k] = per_task[q]
            k += 1
    fec_insert(index, ent, free, meta, hi, lo, fit)
    if n_def == 0:
        return 0
    values = np.empty(n_def, np.float64)
    found = np.empty(n_def, np.bool_)
    fec_lookup(index, ent, free, meta, keys_hi[deferred[:n_def]], keys_lo[deferred[:n_def]],
               forget_every, values, found)
    unanswered = 0
    for k in range(n_def):
        q = deferred[k]
        if found[k]:
            per_task[q] = values[k]
        else:
            per_task[q] = per_task[owner[q]]
            unanswered += 1
    return unanswered


@numba.njit(**_JIT)
def make_mutants(p_op, p_in1, p_in2, p_out, p_d, p_f0, p_f1, p_f2, p_size, fitness,
                 tournament_size, op, in1, in2, out, d, f0, f1, f2, size, ids, seed,
                 mutate_prob, actions, action_weights, mutable, info, op_lists, op_counts,
                 size_min, size_max, style, parents, applied, keys_hi, keys_lo):
    """A step's children in one call: :func:`tournaments`, the parents' rows copied,
    :func:`mutate`, and the children's :func:`program_hashes`."""
    n = ids.shape[0]
    tournaments(fitness, ids, seed, tournament_size, parents)
    copy_rows(p_op, p_in1, p_in2, p_out, p_d, p_f0, p_f1, p_f2, p_size, parents,
              op, in1, in2, out, d, f0, f1, f2, size, np.arange(n))
    mutate(op, in1, in2, out, d, f0, f1, f2, size, ids, seed, mutate_prob, actions,
           action_weights, mutable, info, op_lists, op_counts, size_min, size_max, style,
           applied)
    program_hashes(op, in1, in2, out, d.view(np.uint64), f0.view(np.uint32),
                   f1.view(np.uint32), f2.view(np.uint32), size, keys_hi, keys_lo)
