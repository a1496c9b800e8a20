"""Numba kernels of the per-core CPU backend (private; see
:mod:`azero_jax.backends.cpu.cpu_evaluator`).

The only per-op code of the numba backends is the dispatch chain inside
:func:`evaluate_pair`: one scalar loop per op with the reference's edge cases (spec
§2.3-§2.4). LLVM compiles the chain of ``op ==`` tests into a jump table. It is the one
statement of op semantics for both numba backends: the CPU calls it per pair from
:func:`evaluate_chunk`, and :mod:`azero_jax.backends.cuda.cuda_evaluator` compiles the same Python
functions (this module's and :mod:`azero_jax.backends._eigen_order`'s) as CUDA device functions.
Instructions arrive pre-decoded by :mod:`azero_jax.backends.cpu.cpu_evaluator`:
``ins[4 i : 4 i + 4] = (op, x, y, z)`` (uint32) where ``x``, ``y``, ``z`` are offsets into one
flat float64 memory ``mem`` (scalars first, then vectors of F entries, then row-major F x F
matrices), so the interpreter never multiplies an address; for the const-set ops ``z`` already
points at the entry to write. ``dat[2 i : 2 i + 2] = (c0, c1)`` holds the op's constants (the
double ``d``, or the
float32 fields promoted to float64).

Each program is one straight code sequence that also carries the evaluation loop itself
as pseudo-ops (codes >= ``NUM_REAL_OPS``)::

    Setup | TRAIN_BEGIN | Predict | TRAIN_ERROR | Learn | TRAIN_NEXT
          | LOAD_VALID | Predict | VALID_ERROR | EPOCH_END

so that a pair's whole evaluation (Setup, training steps, validation, epochs) is one loop
around one dispatch site, entered once per pair: per example there is no phase state
machine, no loop re-entry and no function call, only two more dispatches for a training
example (TRAIN_ERROR, and TRAIN_NEXT, which loads the next example and jumps back) and one
for a validation example. Jump targets are offsets from the program's first instruction.

``_F_CONST`` is the feature size this module is specialised for (0 = any, read from the
task table). :mod:`azero_jax.backends.cpu._cpu_specialize` writes copies of this file with a fixed
``_F_CONST`` so that LLVM unrolls and vectorises the per-entry loops for that F.

Random ops draw from a counter-based stream per pair: splitmix64 of ``key + n * golden``
for the n-th draw, keyed by the pair's seed (uniforms with 53 bits, normals by
Box-Muller from two uniforms). The stream state is a local uint64, so the CPU and the
CUDA kernels draw the same numbers for a pair whatever thread or batch runs it.

Every kernel is compiled with ``cache=True`` (a second process loads machine code from
disk instead of compiling), ``nogil=True`` (threads run pairs in parallel) and
``error_model="numpy"`` (IEEE division: x/0 = inf, 0/0 = NaN, never an exception).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from azero_jax.backends import _eigen_order as _eo
from azero_jax.backends._eigen_order import PLAIN, PRODUCT, SQUARE

_F_CONST = 0

# No kernel here allocates, so none needs numba's reference counting (which would cost
# an atomic increment and decrement of every array argument at every call of a helper).
_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False, _nrt=False)

# Layout of a row of the task table built by cpu_evaluator.
T_F, T_NTRAIN, T_NVALID, T_EPOCHS, T_K, T_ACC, T_XTR, T_YTR, T_XVA, T_YVA, T_ORD = range(11)
TASK_COLUMNS = 11
# Layout of a row of the pair table.
P_PROG, P_TASK, P_TRAIN, P_SEED, P_RANDOM = range(5)
PAIR_COLUMNS = 5

# Pseudo-ops: the evaluation loop, laid out by cpu_evaluator._decode around each program.
NUM_REAL_OPS = 65
(OP_TRAIN_BEGIN, OP_TRAIN_ERROR, OP_TRAIN_NEXT, OP_LOAD_VALID, OP_VALID_ERROR,
 OP_EPOCH_END) = range(NUM_REAL_OPS, NUM_REAL_OPS + 6)
NUM_CODES = NUM_REAL_OPS + 6

# Masking an index to 32 bits proves to LLVM that it is >= 0 (cpu_evaluator keeps every
# array below 2^31 entries), which drops numba's negative-index wraparound code.
_M32 = 0xFFFFFFFF


# Random ops draw from a counter-based stream per pair (splitmix64 of a counter keyed by
# the pair's seed): the state is one uint64 local to the pair, so the CUDA kernel (which
# runs these same functions, see azero_jax.backends.cuda.cuda_evaluator) draws exactly the same
# numbers.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_M53 = 1.0 / 9007199254740992.0


@numba.njit(inline="always", **_JIT)
def _splitmix(v):
    v = (v ^ (v >> np.uint64(30))) * _MIX1
    v = (v ^ (v >> np.uint64(27))) * _MIX2
    return v ^ (v >> np.uint64(31))


@numba.njit(inline="always", **_JIT)
def _random_unit(rng):
    """The advanced stream state and U[0, 1) with 53 random bits."""
    rng = rng + _GOLDEN
    return rng, float(_splitmix(rng) >> np.uint64(11)) * _TWO_POW_M53


@numba.njit(inline="always", **_JIT)
def _uniform(rng, low, high):
    """U(low, high); ``low`` when ``low >= high`` (Abseil: no randomness consumed)."""
    if low >= high:
        return rng, low
    rng, u = _random_unit(rng)
    return rng, low + (high - low) * u


@numba.njit(inline="always", **_JIT)
def _gaussian(rng, mean, stdev):
    """N(mean, stdev^2) by Box-Muller, one normal per two uniforms."""
    rng, u1 = _random_unit(rng)
    rng, u2 = _random_unit(rng)
    # 1 - u1 lies in (0, 1]: the log stays finite.
    return rng, mean + stdev * (math.sqrt(-2.0 * math.log(1.0 - u1))
                                * math.cos(6.283185307179586 * u2))


@numba.njit(**_JIT)
def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


@numba.njit(inline="always", **_JIT)
def _entry(code, a, b):
    """Entry k of elementwise matrix op ``code``, from entry k of its operands (a, b)."""
    if code == 17:  # heaviside: x > 0
        return 1.0 if a > 0.0 else 0.0
    if code == 41:
        return a * b
    if code == 30:
        return 1.0 / a
    if code == 38:
        return abs(a)
    if code == 39:
        return a + b
    if code == 40:
        return a - b
    if code == 42:
        return a / b
    if code == 46:  # a < b ? a : b  (NaN -> b)
        return a if a < b else b
    return a if a > b else b  # 49: a > b ? a : b  (NaN -> b)


@numba.njit(inline="always", **_JIT)
def _matrix_map(code, mem, tmp, z, x, y, F, Fr):
    """``mem[z + k] = _entry(code, mem[x + k], mem[y + k])`` for k < F^2.

    Small F (a compile-time constant in specialised copies): one loop, fully unrolled.
    Large F: two loops through ``tmp``, with a trip count read at run time so that LLVM
    vectorises them. An output that coincides with an input (``m0 = m0 + m1``, common)
    would send a single loop to the scalar fallback of LLVM's run-time overlap check;
    ``tmp`` never overlaps ``mem``.
    """
    if F < 12:
        for k in range(F * F):
            mem[z + k] = _entry(code, mem[x + k], mem[y + k])
    else:
        for k in range(Fr * Fr):
            tmp[k] = _entry(code, mem[x + k], mem[y + k])
        for k in range(Fr * Fr):
            mem[z + k] = tmp[k]


@numba.njit(inline="always", **_JIT)
def _show_example(mem, xs, row, v0, v1, K, F):
    """Writes an example's features to v0 and hides its label (s0 = 0, or v1 = 0)."""
    for k in range(F):
        mem[v0 + k] = xs[row + k]
    if K == 0:
        mem[0] = 0.0
    else:
        for k in range(F):
            mem[v1 + k] = 0.0


@numba.njit(**_JIT)
def evaluate_pair(p, ins, dat, progs, tasks, xs, ys, orders, pairs, S, V, M, valid_steps,
                  max_abs_error, mem, tmp, out_fitness, out_steps, terr, nterr, verr, nverr,
                  init_mem):
    """Evaluates pair ``p`` of the pair table (spec §4.1), writing its outputs.

    The one statement of the evaluation loop and of every op's semantics for both numba
    backends: the CPU runs it from :func:`evaluate_chunk`; the CUDA kernel compiles this
    same function as a device function (:mod:`azero_jax.backends.cuda.cuda_evaluator`). ``mem`` and
    ``tmp`` may be float32 (CUDA's float32 mode): values round where they are stored.
    """
    record_train = terr.shape[1]
    record_valid = verr.shape[1]
    t = pairs[p, P_TASK]
    # F is a compile-time constant in specialised copies; Fr is always read at run
    # time: inner loops over Fv = Fr stay loops, so LLVM vectorises them (with alias
    # checks) instead of unrolling them into scalar code.
    Fr = tasks[t, T_F]
    if _F_CONST > 0:
        F = _F_CONST
    else:
        F = Fr
    Fv = F if F < 12 else Fr  # small F: fully unrolled scalar code is faster
    n_train = tasks[t, T_NTRAIN]
    n_valid = tasks[t, T_NVALID]
    K = tasks[t, T_K]
    accuracy = tasks[t, T_ACC] != 0
    xtr = tasks[t, T_XTR] & _M32
    ytr = tasks[t, T_YTR] & _M32
    xva = tasks[t, T_XVA] & _M32
    yva = tasks[t, T_YVA] & _M32
    ordr = tasks[t, T_ORD] & _M32
    v0 = S & _M32
    v1 = (S + F) & _M32
    v2 = (S + 2 * F) & _M32
    if init_mem.shape[0] == 0:
        for k in range(S + V * F + M * F * F):
            mem[k] = 0.0
    else:
        for k in range(S + V * F + M * F * F):
            mem[k] = init_mem[k]
    rng = np.uint64(0)  # the pair's random stream (only algorithms with random ops draw)
    if pairs[p, P_RANDOM] != 0:
        rng = _splitmix(np.uint64(pairs[p, P_SEED]) + _GOLDEN)

    total = min(pairs[p, P_TRAIN], tasks[t, T_EPOCHS] * n_train)
    num_valid_steps = min(valid_steps, n_valid)
    best = 0.0
    remaining = total
    steps = 0
    ntr = 0
    nvr = 0
    epoch_base = ordr  # orders of the current epoch start here
    count = 0
    step = 0
    vstep = 0
    example = 0
    loss = 0.0
    vfit = 0.0
    base = progs[pairs[p, P_PROG]] & _M32
    pc = base
    while True:
        i = pc & _M32
        pc += 1
        op = ins[4 * i]
        x = ins[4 * i + 1] & _M32
        y = ins[4 * i + 2] & _M32
        z = ins[4 * i + 3] & _M32
        # One chain of `op ==` tests, pseudo-ops first: LLVM makes it one jump table
        # (with the pseudo-ops last it made two, a second dispatch for each pseudo-op).
        if op < NUM_CODES:
            # -------------------------------------------- the evaluation loop itself
            if op == OP_TRAIN_NEXT or op == OP_TRAIN_BEGIN:
                # x: Predict, y: EPOCH_END. TRAIN_BEGIN follows Setup and each epoch.
                if op == OP_TRAIN_NEXT:
                    step += 1
                    more = step < count
                elif remaining > 0:
                    count = min(n_train, remaining)
                    step = 0
                    more = True
                else:
                    break
                if more:
                    # Next training example: v0 = features, label hidden.
                    steps += 1
                    example = orders[(epoch_base + step) & _M32]
                    _show_example(mem, xs, (xtr + example * F) & _M32, v0, v1, K, F)
                    pc = base + x
                else:
                    remaining -= n_train
                    vstep = 0
                    loss = 0.0
                    if num_valid_steps <= 0:
                        vfit = 1.0  # no example run: the loss stays 0
                        pc = base + y
                    # else on to LOAD_VALID
            elif op == OP_TRAIN_ERROR:
                if K == 0:
                    if accuracy:
                        mem[1] = _sigmoid(mem[1])
                    err = abs(ys[(ytr + example) & _M32] - mem[1])
                else:
                    # truncating softmax over the first K entries of v2, written to memory
                    top = mem[v2]
                    for k in range(1, K):
                        if mem[v2 + k] > top:
                            top = mem[v2 + k]
                    total_exp = 0.0
                    for k in range(K):
                        e = math.exp(mem[v2 + k] - top)
                        mem[v2 + k] = e
                        total_exp += e
                    for k in range(K):
                        mem[v2 + k] = mem[v2 + k] / total_exp
                    for k in range(K, F):
                        mem[v2 + k] = 0.0
                    err = 0.0
                    row = (ytr + example * K) & _M32
                    for k in range(K):
                        d = abs(ys[row + k] - mem[v2 + k])
                        if d != d:
                            err = d
                            break
                        if d > err:
                            err = d
                if err != err or err > max_abs_error:
                    # training aborted: 0 in the first epoch, else the best so far
                    if remaining == total:
                        best = 0.0
                    break
                if ntr < record_train and epoch_base == ordr:
                    terr[p, ntr] = err
                    ntr += 1
                if x != 0:  # Predict may have written v0: show Learn the features again
                    row = (xtr + example * F) & _M32
                    for k in range(F):
                        mem[v0 + k] = xs[row + k]
                if K == 0:
                    mem[0] = ys[(ytr + example) & _M32]
                else:
                    row = (ytr + example * K) & _M32
                    for k in range(K):
                        mem[v1 + k] = ys[row + k]
                    for k in range(K, F):
                        mem[v1 + k] = 0.0
            elif op == OP_VALID_ERROR or op == OP_LOAD_VALID:
                # x: the validation Predict; VALID_ERROR falls through to EPOCH_END.
                more = op == OP_LOAD_VALID
                if not more:
                    if K == 0:
                        label = ys[(yva + vstep) & _M32]
                        if accuracy:
                            prob = _sigmoid(mem[1])
                            if prob > 1.0 or prob < 0.0:
                                err = math.inf
                            else:
                                err = 0.0 if (label > 0.5) == (prob > 0.5) else 1.0
                            loss += err
                        else:
                            err = label - mem[1]
                            loss += err * err
                            err = abs(err)
                    else:
                        # argmax of the first K entries of v2: NaN never wins, first
                        # on ties
                        arg = 0
                        top = mem[v2]
                        if top != top:
                            top = -math.inf
                        for k in range(1, K):
                            if mem[v2 + k] > top:
                                arg = k
                                top = mem[v2 + k]
                        row = (yva + vstep * K) & _M32
                        lab = 0
                        top = ys[row]
                        for k in range(1, K):
                            if ys[row + k] > top:
                                lab = k
                                top = ys[row + k]
                        err = 0.0 if arg == lab else 1.0
                        loss += err
                    if err != err or err > max_abs_error:
                        vfit = 0.0
                    else:
                        if nvr < record_valid and epoch_base == ordr:
                            verr[p, nvr] = err
                            nvr += 1
                        vstep += 1
                        more = vstep < num_valid_steps
                        if not more:
                            loss /= n_valid
                            if accuracy:
                                vfit = 1.0 - loss
                            else:
                                loss = math.sqrt(loss)
                                if math.isinf(loss) or loss != loss:
                                    vfit = 0.0
                                else:
                                    vfit = 1.0 + -0.63661977236758138243 * math.atan(loss)
                if more:
                    _show_example(mem, xs, (xva + vstep * F) & _M32, v0, v1, K, F)
                    pc = base + x
            elif op == OP_EPOCH_END:  # x: TRAIN_BEGIN
                if vfit > best:
                    best = vfit
                epoch_base += n_train
                pc = base + x
            # ---------------------------------------------------------------- scalar
            elif op == 1:  # (0, NO_OP, never reaches the kernel)
                mem[z] = mem[x] + mem[y]
            elif op == 2:
                mem[z] = mem[x] - mem[y]
            elif op == 3:
                mem[z] = mem[x] * mem[y]
            elif op == 4:
                mem[z] = mem[x] / mem[y]
            elif op == 5:
                mem[z] = abs(mem[x])
            elif op == 6:
                mem[z] = 1.0 / mem[x]
            elif op == 7:
                mem[z] = math.sin(mem[x])
            elif op == 8:
                mem[z] = math.cos(mem[x])
            elif op == 9:
                mem[z] = math.tan(mem[x])
            elif op == 10:
                mem[z] = math.asin(mem[x])
            elif op == 11:
                mem[z] = math.acos(mem[x])
            elif op == 12:
                mem[z] = math.atan(mem[x])
            elif op == 13:
                mem[z] = math.exp(mem[x])
            elif op == 14:
                mem[z] = math.log(mem[x])
            elif op == 15:  # scalar heaviside: x >= 0
                mem[z] = 1.0 if mem[x] >= 0.0 else 0.0
            elif op == 16:  # vector heaviside: x > 0
                for k in range(F):
                    mem[z + k] = 1.0 if mem[x + k] > 0.0 else 0.0
            elif op == 17:  # matrix heaviside: x > 0
                _matrix_map(17, mem, tmp, z, x, x, F, Fr)
            # ---------------------------------------------------------------- vector
            elif op == 18:
                s = mem[x]
                for k in range(F):
                    mem[z + k] = mem[y + k] * s
            elif op == 19:
                s = mem[x]
                for k in range(F):
                    mem[z + k] = s
            elif op == 20:
                for k in range(F):
                    mem[z + k] = 1.0 / mem[x + k]
            # Reductions add in the reference's (Eigen's) order, see _eigen_order; the
            # trees keep pending sums in tmp, after any output staged there.
            elif op == 21:
                mem[z] = math.sqrt(_eo.reduce(mem, x, 1, x, 1, F, SQUARE, tmp, 0))
            elif op == 22:
                for k in range(F):
                    mem[z + k] = abs(mem[x + k])
            elif op == 23:
                for k in range(F):
                    mem[z + k] = mem[x + k] + mem[y + k]
            elif op == 24:
                for k in range(F):
                    mem[z + k] = mem[x + k] - mem[y + k]
            elif op == 25:
                for k in range(F):
                    mem[z + k] = mem[x + k] * mem[y + k]
            elif op == 26:
                for k in range(F):
                    mem[z + k] = mem[x + k] / mem[y + k]
            elif op == 27:
                mem[z] = _eo.reduce(mem, x, 1, y, 1, F, PRODUCT, tmp, 0)
            elif op == 28:  # outer: m[r][c] = a_r * b_c
                for r in range(F):
                    a = mem[x + r]
                    for c in range(Fv):
                        mem[z + r * F + c] = a * mem[y + c]
            elif op == 29:
                s = mem[x]
                if F < 12:
                    for k in range(F * F):
                        mem[z + k] = mem[y + k] * s
                else:  # through tmp, as in _matrix_map
                    for k in range(Fr * Fr):
                        tmp[k] = mem[y + k] * s
                    for k in range(Fr * Fr):
                        mem[z + k] = tmp[k]
            elif op == 30:
                _matrix_map(30, mem, tmp, z, x, x, F, Fr)
            elif op == 31:  # M @ v (output may alias the input vector: staged in tmp)
                _eo.matvec(mem, x, y, F, tmp, 0, tmp, F)
                for r in range(F):
                    mem[z + r] = tmp[r]
            elif op == 32:  # m[r][c] = v[r]
                for r in range(F):
                    a = mem[x + r]
                    for c in range(Fv):
                        mem[z + r * F + c] = a
            elif op == 33:  # m[r][c] = v[c]
                for r in range(F):
                    for c in range(Fv):
                        mem[z + r * F + c] = mem[x + c]
            elif op == 34:
                mem[z] = math.sqrt(_eo.reduce(mem, x, 1, x, 1, F * F, SQUARE, tmp, 0))
            elif op == 35:  # column norms (a vector output never aliases a matrix)
                _eo.column_norms(mem, x, F, mem, z, tmp, 0)
            elif op == 36:  # row norms
                for r in range(F):
                    mem[z + r] = math.sqrt(_eo.reduce(mem, x + r * F, 1, x, 1, F, SQUARE,
                                                      tmp, 0))
            elif op == 37:  # transpose (output may alias the input)
                for r in range(F):
                    for c in range(F):
                        tmp[c * F + r] = mem[x + r * F + c]
                for k in range(F * F):
                    mem[z + k] = tmp[k]
            elif op == 38:
                _matrix_map(38, mem, tmp, z, x, x, F, Fr)
            elif op == 39:
                _matrix_map(39, mem, tmp, z, x, y, F, Fr)
            elif op == 40:
                _matrix_map(40, mem, tmp, z, x, y, F, Fr)
            elif op == 41:
                _matrix_map(41, mem, tmp, z, x, y, F, Fr)
            elif op == 42:
                _matrix_map(42, mem, tmp, z, x, y, F, Fr)
            elif op == 43:  # matmul (output may alias either input)
                if F < 8:  # Eigen's coefficient-based product: a tree per entry
                    for r in range(F):
                        for c in range(F):
                            tmp[r * F + c] = _eo.small_matmul_entry(
                                mem, x + r * F, y + c, F, tmp, F * F)
                else:  # GEMM: each entry left to right from zero
                    for k in range(F * F):
                        tmp[k] = 0.0
                    for r in range(F):
                        for j in range(F):
                            a = mem[x + r * F + j]
                            for c in range(Fv):
                                tmp[r * F + c] += a * mem[y + j * F + c]
                for k in range(F * F):
                    mem[z + k] = tmp[k]
            # ------------------------------------------------------------- min / max
            elif op == 44:  # std::min(a, b): b < a ? b : a  (NaN -> a)
                a = mem[x]
                b = mem[y]
                mem[z] = b if b < a else a
            elif op == 45:
                for k in range(F):
                    a = mem[x + k]
                    b = mem[y + k]
                    mem[z + k] = b if b < a else a
            elif op == 46:  # a < b ? a : b  (NaN -> b)
                _matrix_map(46, mem, tmp, z, x, y, F, Fr)
            elif op == 47:  # std::max(a, b): a < b ? b : a  (NaN -> a)
                a = mem[x]
                b = mem[y]
                mem[z] = b if a < b else a
            elif op == 48:
                for k in range(F):
                    a = mem[x + k]
                    b = mem[y + k]
                    mem[z + k] = b if a < b else a
            elif op == 49:  # a > b ? a : b  (NaN -> b)
                _matrix_map(49, mem, tmp, z, x, y, F, Fr)
            # ------------------------------------------------------------ statistics
            elif op == 50:
                mem[z] = _eo.reduce(mem, x, 1, x, 1, F, PLAIN, tmp, 0) / F
            elif op == 51:
                mem[z] = _eo.reduce(mem, x, 1, x, 1, F * F, PLAIN, tmp, 0) / (F * F)
            elif op == 52:
                for r in range(F):
                    mem[z + r] = _eo.reduce(mem, x + r * F, 1, x, 1, F, PLAIN, tmp, 0) / F
            elif op == 53:  # one-pass row std: sqrt(E[x^2] - E[x]^2)
                for r in range(F):
                    a = x + r * F
                    mean = _eo.reduce(mem, a, 1, a, 1, F, PLAIN, tmp, 0) / F
                    sq = _eo.reduce(mem, a, 1, a, 1, F, PRODUCT, tmp, 0) / F
                    mem[z + r] = math.sqrt(sq - mean * mean)
            elif op == 54:
                mean = _eo.reduce(mem, x, 1, x, 1, F, PLAIN, tmp, 0) / F
                sq = _eo.reduce(mem, x, 1, x, 1, F, PRODUCT, tmp, 0) / F
                mem[z] = math.sqrt(sq - mean * mean)
            elif op == 55:
                n = F * F
                mean = _eo.reduce(mem, x, 1, x, 1, n, PLAIN, tmp, 0) / n
                sq = _eo.reduce(mem, x, 1, x, 1, n, PRODUCT, tmp, 0) / n
                mem[z] = math.sqrt(sq - mean * mean)
            # ----------------------------------------------------------------- data
            elif op == 56 or op == 57 or op == 58:  # z already points at the entry
                mem[z] = dat[2 * i]
            elif op == 59:
                rng, mem[z] = _uniform(rng, dat[2 * i], dat[2 * i + 1])
            elif op == 60:
                for k in range(F):
                    rng, mem[z + k] = _uniform(rng, dat[2 * i], dat[2 * i + 1])
            elif op == 61:
                for k in range(F * F):
                    rng, mem[z + k] = _uniform(rng, dat[2 * i], dat[2 * i + 1])
            elif op == 62:
                rng, mem[z] = _gaussian(rng, dat[2 * i], dat[2 * i + 1])
            elif op == 63:
                for k in range(F):
                    rng, mem[z + k] = _gaussian(rng, dat[2 * i], dat[2 * i + 1])
            elif op == 64:
                for k in range(F * F):
                    rng, mem[z + k] = _gaussian(rng, dat[2 * i], dat[2 * i + 1])
    out_fitness[p] = best
    out_steps[p] = steps
    nterr[p] = ntr
    nverr[p] = nvr


@numba.njit(**_JIT)
def evaluate_chunk(ins, dat, progs, tasks, xs, ys, orders, pairs, first, last, S, V, M,
                   valid_steps, max_abs_error, mem, tmp, out_fitness, out_steps, terr, nterr,
                   verr, nverr, init_mem):
    """Evaluates pairs ``first..last-1`` of the pair table (spec §4.1), writing the outputs.

    Args:
      ins, dat: decoded code ``[n * 4]`` uint32 (op, x, y, z per instruction) and
        constants ``[n * 2]`` float64, flat (1-D arrays index without a stride load).
      progs: ``[programs]`` position of each program's first instruction in ``ins``.
      tasks: ``[T, TASK_COLUMNS]`` task table; xs, ys, orders: the packed task data.
      pairs: ``[B, PAIR_COLUMNS]`` pair table.
      S, V, M: memory sizes; valid_steps: validation examples to run at most;
      max_abs_error: the early-stopping threshold.
      mem, tmp: scratch (``S + V F + M F^2`` and ``F^2`` floats); after the call ``mem``
        holds the final memory of the last pair.
      out_fitness, out_steps, terr, nterr, verr, nverr: outputs, indexed by pair.
      init_mem: empty, or the memory every pair starts from instead of zeros (tests).
    """
    for p in range(first, last):
        evaluate_pair(p, ins, dat, progs, tasks, xs, ys, orders, pairs, S, V, M, valid_steps,
                      max_abs_error, mem, tmp, out_fitness, out_steps, terr, nterr, verr,
                      nverr, init_mem)
