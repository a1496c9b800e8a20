"""Which instructions of a program can influence its evaluation (dead-code elimination).

Random programs (the search's initial population, and much of what mutation makes of it)
compute many values that never reach the prediction. The reference executes every
instruction; the cpu backend need not: :func:`keep_mask` marks the instructions whose
results can reach an observable of the evaluation loop, and the decoder drops the rest.
The results are bit for bit those of running everything, because a dropped instruction
only writes a cell that is overwritten before anything reads it.

The model is the reference loop (spec §1.3, §4.1-§4.5), with memory cells (``s3``,
``v1``, ``m0``...) as variables, over the control flow

    Setup -> hub;  hub -> [v0 = x, s0 = 0] Predict -> read s1 -> [v0 = x, s0 = y] Learn -> hub
    hub -> [v0 = x, s0 = 0] Predict -> read s1 -> hub;  hub -> end

where *hub* is every point after Setup, after Learn and after a validation example:
training may be zero steps, validation may follow any training step (budgets, aborts,
epochs) and training may follow validation (the next epoch). Memory persists through all
of it. The observables are the prediction read after every Predict (it decides the
errors, the aborts and the fitness; for ACCURACY the harness's ``s1 = sigmoid(s1)``
reads and rewrites it) and the random ops' draws (see below). The harness's writes of
``v0`` and the label before Predict and Learn overwrite those cells whole, so they kill
them. With vector labels (multi-class) the label is ``v1`` (zeroed before Predict), the
prediction ``v2`` (the harness's softmax reads and rewrites it) and ``s0`` is untouched.

Per instruction, backwards (strong liveness): an instruction is kept iff the cell it
writes is live after it, or it is a random op; a kept instruction's write kills its
cell unless the op writes only part of it (:attr:`azero_jax.core.ops.OpSpec.partial_write`),
then its inputs become live (an output that is also an input is therefore read first).
Random ops are always kept: they consume the pair's random stream in order, so dropping
a dead one would change the later live draws; their inputs are constants, so they keep
nothing else alive. No op has any other effect (no op aborts: the floating-point errors
of the kernels are IEEE values, and only the prediction's error aborts).

Predict runs in two contexts with different live-out sets, so it gets two masks: in
training (``KEEP``, with Setup and Learn) and in validation (``KEEP_VALID``). A value
that only Learn consumes is dead in validation Predict -- unless the next Predict (the
next epoch's training) still reads it, which the fixed point over the hub accounts for.

Example:
    >>> import azero_jax as az
    >>> from azero_jax.backends.cpu import liveness
    >>> from azero_jax.core.population import Programs
    >>> programs = Programs.from_algorithms([az.parse_algorithm('''
    ... def Setup():
    ...   s2 = 0.5
    ...   s3 = 7
    ... def Predict():
    ...   s1 = dot(v1, v0)
    ...   s4 = s1 * s2
    ... def Learn():
    ...   s4 = s0 - s1
    ...   v2 = s4 * v0
    ...   v1 = v1 + v2
    ... ''')])
    >>> keep = liveness.keep_mask(programs, az.MemoryConfig(5, 3, 1))
    >>> (keep[0, 0, :2] & liveness.KEEP).tolist()  # s3 is never read
    [0, 0]
    >>> (keep[0, 1, :2] & liveness.KEEP).tolist(), (keep[0, 1, :2] & liveness.KEEP_VALID).tolist()
    ([1, 0], [2, 0])
    >>> (keep[0, 2, :3] & liveness.KEEP).tolist()
    [1, 1, 1]
"""

from __future__ import annotations

import numba
import numpy as np

from azero_jax.core import ops as ops_lib

# Bits of a keep mask: kept in Setup, training Predict and Learn; kept in validation Predict.
KEEP = 1
KEEP_VALID = 2
KEEP_BOTH = KEEP | KEEP_VALID

_TYPE_CODE = {None: 0, "S": 1, "V": 2, "M": 3}
# [op, operand] -> type code (0 none, 1 S, 2 V, 3 M) of in1, in2, out.
OPERAND_TYPES = np.array([[_TYPE_CODE[op.in1_type], _TYPE_CODE[op.in2_type],
                           _TYPE_CODE[op.out_type]] for op in ops_lib.OPS], dtype=np.int64)
_PARTIAL = np.array([op.partial_write for op in ops_lib.OPS], dtype=np.bool_)
_RANDOM = np.array([op.random for op in ops_lib.OPS], dtype=np.bool_)

_JIT = dict(cache=True, nogil=True)


def cell_bases(memory) -> np.ndarray:
    """Index of cell 0 of each type code in one array of ``S + V + M`` cells."""
    return np.array([0, 0, memory.num_scalars, memory.num_scalars + memory.num_vectors],
                    dtype=np.int64)


def harness_cells(memory, label_sizes) -> tuple[np.ndarray, np.ndarray]:
    """The cells the evaluation loop writes before Predict and Learn, and those it reads.

    Args:
      memory: the :class:`~azero_jax.backends.evaluator.MemoryConfig`.
      label_sizes: the label size K of every task the programs run on (0: scalar label).
        Tasks of both kinds give the cells of either: only ``v0`` is killed, both
        predictions are read.

    Returns:
      ``(killed, read)``: int64 arrays of cell indices (see :func:`cell_bases`).
    """
    base = cell_bases(memory)
    limits = _limits(memory)

    def cells(*typed):  # (type code, address) pairs, those the memory holds
        return np.array(sorted(int(base[t] + a) for t, a in typed if a < limits[t]),
                        dtype=np.int64)

    kinds = {bool(k) for k in label_sizes}
    features = (2, ops_lib.FEATURES_VECTOR_ADDRESS)
    scalar_label = (1, ops_lib.LABELS_SCALAR_ADDRESS)
    vector_label, vector_prediction = (2, 1), (2, 2)  # the multi-class convention
    read = []
    if False in kinds:
        read.append((1, ops_lib.PREDICTIONS_SCALAR_ADDRESS))
    if True in kinds:
        read.append(vector_prediction)
    if kinds == {False}:
        killed = (features, scalar_label)
    elif kinds == {True}:
        killed = (features, vector_label)
    else:
        killed = (features,)
    return cells(*killed), cells(*read)


@numba.njit(**_JIT)
def _backward(op, in1, in2, out, first, n, types, partial, random, base, live, keep, bit):
    """Strong liveness through one function (``n`` instructions from ``first``): updates
    ``live`` from the cells live after the function to those live before it, and sets
    ``bit`` in ``keep`` for the instructions that must run."""
    for j in range(n - 1, -1, -1):
        i = first + j
        o = op[i]
        t = types[o, 2]
        if t == 0:  # NO_OP
            continue
        z = base[t] + out[i]
        if not (live[z] or random[o]):
            continue
        keep[i] |= bit
        if not partial[o]:
            live[z] = False
        t = types[o, 0]
        if t != 0:
            live[base[t] + in1[i]] = True
        t = types[o, 1]
        if t != 0:
            live[base[t] + in2[i]] = True


@numba.njit(**_JIT)
def _in_range(op, in1, in2, out, first, n, types, limits):
    """Whether every op code and operand address of a function is valid."""
    for i in range(first, first + n):
        o = op[i]
        if o < 0 or o >= types.shape[0]:
            return False
        for f in range(3):
            t = types[o, f]
            v = in1[i] if f == 0 else (in2[i] if f == 1 else out[i])
            if t != 0 and (v < 0 or v >= limits[t]):
                return False
    return True


@numba.njit(**_JIT)
def _keep(op, in1, in2, out, starts, sizes, types, partial, random, base, limits, killed,
          read, keep):
    """Fills ``keep`` (zeros in, one entry per instruction) for every program: see
    :func:`keep_mask`. ``starts``/``sizes`` ``[A, 3]`` locate each function in the flat
    operand arrays."""
    cells = base[3] + limits[3]
    hub = np.zeros(cells, dtype=np.bool_)
    live = np.zeros(cells, dtype=np.bool_)
    from_valid = np.zeros(cells, dtype=np.bool_)
    for a in range(starts.shape[0]):
        valid = True
        for c in range(3):
            valid = valid and _in_range(op, in1, in2, out, starts[a, c], sizes[a, c], types,
                                        limits)
        if not valid:  # left whole for the decoder, which reports the bad instruction
            for c in range(3):
                for i in range(starts[a, c], starts[a, c] + sizes[a, c]):
                    if op[i] != 0:
                        keep[i] = KEEP_BOTH
            continue
        hub[:] = False
        while True:
            # A pass's masks grow with the hub: those of the last pass (the fixed point)
            # include every earlier pass's, so the masks need no reset between passes.
            # Validation: [v0, label] Predict -> the prediction is read -> hub.
            live[:] = hub
            live[read] = True
            _backward(op, in1, in2, out, starts[a, 1], sizes[a, 1], types, partial, random,
                      base, live, keep, KEEP_VALID)
            live[killed] = False
            from_valid[:] = live
            # Training: [v0, label] Predict -> prediction read -> [v0, label] Learn -> hub.
            live[:] = hub
            _backward(op, in1, in2, out, starts[a, 2], sizes[a, 2], types, partial, random,
                      base, live, keep, KEEP)
            live[killed] = False
            live[read] = True
            _backward(op, in1, in2, out, starts[a, 1], sizes[a, 1], types, partial, random,
                      base, live, keep, KEEP)
            live[killed] = False
            grown = False
            for k in range(cells):
                if (live[k] or from_valid[k]) and not hub[k]:
                    grown = True
                    hub[k] = True
            if not grown:
                break
        live[:] = hub
        _backward(op, in1, in2, out, starts[a, 0], sizes[a, 0], types, partial, random, base,
                  live, keep, KEEP)


def _limits(memory) -> np.ndarray:
    return np.array([1, memory.num_scalars, memory.num_vectors, memory.num_matrices],
                    dtype=np.int64)


def keep_mask(programs, memory, label_sizes=(0,), rows=None) -> np.ndarray:
    """Which instructions of a search's tensors can influence the evaluation.

    Args:
      programs: :class:`~azero_jax.core.population.Programs` ``[N, 3, L]``.
      memory: the :class:`~azero_jax.backends.evaluator.MemoryConfig`.
      label_sizes: the label sizes K of the tasks they run on (see :func:`harness_cells`).
      rows: only these algorithms (the others' entries stay 0); default all.

    Returns:
      ``[N, 3, L]`` uint8: bit :data:`KEEP` for an instruction that must run in Setup,
      in training Predict or in Learn, bit :data:`KEEP_VALID` for one that must run in
      validation Predict; 0 for NO_OPs, padding and dead instructions. A program with an
      op code or address outside the memory keeps every instruction.
    """
    N, _, L = programs.op.shape
    starts, sizes = programs.offsets(rows)
    keep = np.zeros(N * 3 * L, dtype=np.uint8)
    _run(programs.op.reshape(-1), programs.in1.reshape(-1), programs.in2.reshape(-1),
         programs.out.reshape(-1), starts, sizes, memory, label_sizes, keep)
    return keep.reshape(N, 3, L)


def keep_mask_flat(flat: np.ndarray, bounds: np.ndarray, memory, label_sizes=(0,)) -> np.ndarray:
    """:func:`keep_mask` for instructions in one structured array (``INSTRUCTION_DTYPE``)
    with per algorithm its 4 boundaries (setup start, predict start, learn start, end).

    Returns:
      ``[len(flat)]`` uint8, the bits of :func:`keep_mask`.
    """
    keep = np.zeros(len(flat), dtype=np.uint8)
    bounds = np.asarray(bounds, dtype=np.int64)
    _run(flat["op"], flat["in1"], flat["in2"], flat["out"], np.ascontiguousarray(bounds[:, :3]),
         np.diff(bounds, axis=1), memory, label_sizes, keep)
    return keep


def _run(op, in1, in2, out, starts, sizes, memory, label_sizes, keep) -> None:
    killed, read = harness_cells(memory, label_sizes)
    _keep(op, in1, in2, out, starts, sizes, OPERAND_TYPES, _PARTIAL, _RANDOM,
          cell_bases(memory), _limits(memory), killed, read, keep)
