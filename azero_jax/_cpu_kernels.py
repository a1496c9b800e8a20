"""Numba kernels of the per-core CPU backend (private; see :mod:`azero_jax.cpu_evaluator`).

The only per-op code of this backend is the dispatch chain inside :func:`evaluate_chunk`:
one scalar loop per op with the reference's edge cases (spec §2.3-§2.4). LLVM compiles the
chain of ``op ==`` tests into a jump table. Instructions arrive pre-decoded by
:mod:`azero_jax.cpu_evaluator`: ``ins[i] = (op, x, y, z)`` where ``x``, ``y``, ``z`` are
offsets into one flat float64 memory ``mem`` (scalars first, then vectors of F entries,
then row-major F x F matrices), so the interpreter never multiplies an address; for the
const-set ops ``z`` already points at the entry to write. ``dat[i] = (c0, c1)`` holds the
op's constants (the double ``d``, or the float32 fields promoted to float64).

The whole evaluation of a pair (Setup, training steps, validation, epochs) is one loop
around one dispatch site: no function call, no allocation and no reference counting
happens per instruction or per example.

``_F_CONST`` is the feature size this module is specialised for (0 = any, read from the
task table). :mod:`azero_jax._cpu_specialize` writes copies of this file with a fixed
``_F_CONST`` so that LLVM unrolls and vectorises the per-entry loops for that F.

Every kernel is compiled with ``cache=True`` (a second process loads machine code from
disk instead of compiling), ``nogil=True`` (threads run pairs in parallel) and
``error_model="numpy"`` (IEEE division: x/0 = inf, 0/0 = NaN, never an exception).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from azero_jax import _eigen_order as _eo
from azero_jax._eigen_order import PLAIN, PRODUCT, SQUARE

_F_CONST = 0

_JIT = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)

# Layout of a row of the task table built by cpu_evaluator.
T_F, T_NTRAIN, T_NVALID, T_EPOCHS, T_K, T_ACC, T_XTR, T_YTR, T_XVA, T_YVA, T_ORD = range(11)
TASK_COLUMNS = 11
# Layout of a row of the pair table.
P_PROG, P_TASK, P_TRAIN, P_SEED, P_RANDOM = range(5)
PAIR_COLUMNS = 5

# Phases of the per-pair state machine (what the instructions just run belonged to) and
# transitions (what to set up next).
_SETUP, _TRAIN_PREDICT, _LEARN, _VALID_PREDICT = 0, 1, 2, 3
_GO_TRAIN_STEP, _GO_VALID_START, _GO_VALID_STEP, _GO_VALID_END, _GO_DONE, _GO_NONE = range(6)


@numba.njit(**_JIT)
def _uniform(low, high):
    """U(low, high); ``low`` when ``low >= high`` (Abseil: no randomness consumed)."""
    if low >= high:
        return low
    return low + (high - low) * np.random.random()


@numba.njit(**_JIT)
def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


@numba.njit(**_JIT)
def evaluate_chunk(ins, dat, progs, tasks, xs, ys, orders, pairs, first, last, S, V, M,
                   valid_steps, max_abs_error, mem, tmp, out_fitness, out_steps, terr, nterr,
                   verr, nverr, init_mem):
    """Evaluates pairs ``first..last-1`` of the pair table (spec §4.1), writing the outputs.

    Args:
      ins, dat: decoded instructions ``[n * 4]`` int64 (op, x, y, z per instruction) and
        constants ``[n * 2]`` float64, flat (1-D arrays index without a stride load).
      progs: ``[programs, 4]`` boundaries (setup start, predict start, learn start, end).
      tasks: ``[T, TASK_COLUMNS]`` task table; xs, ys, orders: the packed task data.
      pairs: ``[B, PAIR_COLUMNS]`` pair table.
      S, V, M: memory sizes; valid_steps: validation examples to run at most;
      max_abs_error: the early-stopping threshold.
      mem, tmp: scratch (``S + V F + M F^2`` and ``F^2`` floats); after the call ``mem``
        holds the final memory of the last pair.
      out_fitness, out_steps, terr, nterr, verr, nverr: outputs, indexed by pair.
      init_mem: empty, or the memory every pair starts from instead of zeros (tests).
    """
    record_train = terr.shape[1]
    record_valid = verr.shape[1]
    for p in range(first, last):
        prog = pairs[p, P_PROG]
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
        epochs = tasks[t, T_EPOCHS]
        K = tasks[t, T_K]
        accuracy = tasks[t, T_ACC] != 0
        xtr = tasks[t, T_XTR]
        ytr = tasks[t, T_YTR]
        xva = tasks[t, T_XVA]
        yva = tasks[t, T_YVA]
        ordr = tasks[t, T_ORD]
        v0 = S
        v1 = S + F
        v2 = S + 2 * F
        if init_mem.shape[0] == 0:
            for k in range(S + V * F + M * F * F):
                mem[k] = 0.0
        else:
            for k in range(S + V * F + M * F * F):
                mem[k] = init_mem[k]
        if pairs[p, P_RANDOM] != 0:
            np.random.seed(pairs[p, P_SEED])
        p_start = progs[prog, 1]
        p_end = progs[prog, 2]
        l_end = progs[prog, 3]

        total = min(pairs[p, P_TRAIN], epochs * n_train)
        num_valid_steps = min(valid_steps, n_valid)
        best = 0.0
        remaining = total
        steps = 0
        ntr = 0
        nvr = 0
        epoch = 0
        count = 0
        step = 0
        vstep = 0
        example = 0
        loss = 0.0
        vfit = 0.0
        phase = _SETUP
        start = progs[prog, 0]
        end = p_start
        while True:
            for i in range(start, end):
                op = ins[4 * i]
                # Masking to 32 bits proves to LLVM that every offset is >= 0, which drops
                # numba's negative-index wraparound and lets it vectorise the loops.
                x = ins[4 * i + 1] & 0xFFFFFFFF
                y = ins[4 * i + 2] & 0xFFFFFFFF
                z = ins[4 * i + 3] & 0xFFFFFFFF
                if op == 0:
                    pass
                # ---------------------------------------------------------------- scalar
                elif op == 1:
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
                    for k in range(F * F):
                        mem[z + k] = 1.0 if mem[x + k] > 0.0 else 0.0
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
                    for k in range(F * F):
                        mem[z + k] = mem[y + k] * s
                elif op == 30:
                    for k in range(F * F):
                        mem[z + k] = 1.0 / mem[x + k]
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
                    for k in range(F * F):
                        mem[z + k] = abs(mem[x + k])
                elif op == 39:
                    for k in range(F * F):
                        mem[z + k] = mem[x + k] + mem[y + k]
                elif op == 40:
                    for k in range(F * F):
                        mem[z + k] = mem[x + k] - mem[y + k]
                elif op == 41:
                    for k in range(F * F):
                        mem[z + k] = mem[x + k] * mem[y + k]
                elif op == 42:
                    for k in range(F * F):
                        mem[z + k] = mem[x + k] / mem[y + k]
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
                    for k in range(F * F):
                        a = mem[x + k]
                        b = mem[y + k]
                        mem[z + k] = a if a < b else b
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
                    for k in range(F * F):
                        a = mem[x + k]
                        b = mem[y + k]
                        mem[z + k] = a if a > b else b
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
                    mem[z] = _uniform(dat[2 * i], dat[2 * i + 1])
                elif op == 60:
                    for k in range(F):
                        mem[z + k] = _uniform(dat[2 * i], dat[2 * i + 1])
                elif op == 61:
                    for k in range(F * F):
                        mem[z + k] = _uniform(dat[2 * i], dat[2 * i + 1])
                elif op == 62:
                    mem[z] = dat[2 * i] + dat[2 * i + 1] * np.random.standard_normal()
                elif op == 63:
                    for k in range(F):
                        mem[z + k] = dat[2 * i] + dat[2 * i + 1] * np.random.standard_normal()
                elif op == 64:
                    for k in range(F * F):
                        mem[z + k] = dat[2 * i] + dat[2 * i + 1] * np.random.standard_normal()


            # ---------------------------------------------------- phase transitions
            nxt = _GO_NONE
            if phase == _LEARN:
                step += 1
                if step < count:
                    nxt = _GO_TRAIN_STEP
                else:
                    remaining -= n_train
                    nxt = _GO_VALID_START
            elif phase == _TRAIN_PREDICT:
                if K == 0:
                    if accuracy:
                        mem[1] = _sigmoid(mem[1])
                    err = abs(ys[ytr + example] - mem[1])
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
                    for k in range(K):
                        d = abs(ys[ytr + example * K + k] - mem[v2 + k])
                        if d != d:
                            err = d
                            break
                        if d > err:
                            err = d
                if err != err or err > max_abs_error:
                    # training aborted: 0 in the first epoch, else the best so far
                    if remaining == total:
                        best = 0.0
                    nxt = _GO_DONE
                else:
                    if epoch == 0 and ntr < record_train:
                        terr[p, ntr] = err
                        ntr += 1
                    row = xtr + example * F
                    for k in range(F):
                        mem[v0 + k] = xs[row + k]
                    if K == 0:
                        mem[0] = ys[ytr + example]
                    else:
                        for k in range(K):
                            mem[v1 + k] = ys[ytr + example * K + k]
                        for k in range(K, F):
                            mem[v1 + k] = 0.0
                    phase = _LEARN
                    start = p_end
                    end = l_end
            elif phase == _VALID_PREDICT:
                if K == 0:
                    label = ys[yva + vstep]
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
                    # argmax of the first K entries of v2: NaN never wins, first on ties
                    arg = 0
                    top = mem[v2]
                    if top != top:
                        top = -math.inf
                    for k in range(1, K):
                        if mem[v2 + k] > top:
                            arg = k
                            top = mem[v2 + k]
                    lab = 0
                    top = ys[yva + vstep * K]
                    for k in range(1, K):
                        if ys[yva + vstep * K + k] > top:
                            lab = k
                            top = ys[yva + vstep * K + k]
                    err = 0.0 if arg == lab else 1.0
                    loss += err
                if err != err or err > max_abs_error:
                    vfit = 0.0
                    nxt = _GO_VALID_END
                else:
                    if epoch == 0 and nvr < record_valid:
                        verr[p, nvr] = err
                        nvr += 1
                    vstep += 1
                    nxt = _GO_VALID_STEP if vstep < num_valid_steps else _GO_VALID_END
                    if nxt == _GO_VALID_END:
                        loss /= n_valid
                        if accuracy:
                            vfit = 1.0 - loss
                        else:
                            loss = math.sqrt(loss)
                            if math.isinf(loss) or loss != loss:
                                vfit = 0.0
                            else:
                                vfit = 1.0 + -0.63661977236758138243 * math.atan(loss)

            else:  # _SETUP
                if remaining > 0:
                    count = min(n_train, remaining)
                    step = 0
                    nxt = _GO_TRAIN_STEP
                else:
                    nxt = _GO_DONE
            while nxt != _GO_NONE:
                if nxt == _GO_TRAIN_STEP or nxt == _GO_VALID_STEP:
                    # Load an example: v0 = features, label hidden (s0 = 0, or v1 = 0).
                    if nxt == _GO_TRAIN_STEP:
                        steps += 1
                        example = orders[ordr + epoch * n_train + step]
                        row = xtr + example * F
                        phase = _TRAIN_PREDICT
                    else:
                        row = xva + vstep * F
                        phase = _VALID_PREDICT
                    for k in range(F):
                        mem[v0 + k] = xs[row + k]
                    if K == 0:
                        mem[0] = 0.0
                    else:
                        for k in range(F):
                            mem[v1 + k] = 0.0
                    start = p_start
                    end = p_end
                    nxt = _GO_NONE
                elif nxt == _GO_VALID_START:
                    vstep = 0
                    loss = 0.0
                    if num_valid_steps > 0:
                        nxt = _GO_VALID_STEP
                    else:
                        vfit = 1.0  # no example run: the loss stays 0
                        nxt = _GO_VALID_END
                elif nxt == _GO_VALID_END:
                    if vfit > best:
                        best = vfit
                    epoch += 1
                    if remaining > 0:
                        count = min(n_train, remaining)
                        step = 0
                        nxt = _GO_TRAIN_STEP
                    else:
                        nxt = _GO_DONE
                else:  # _GO_DONE
                    break
            if nxt == _GO_DONE:
                break
        out_fitness[p] = best
        out_steps[p] = steps
        nterr[p] = ntr
        nverr[p] = nvr
