"""The per-core CPU backend: a numba interpreter running one (algorithm, task) pair per core.

This backend implements exactly the reference evaluation loop (spec §4) in float64, one
pair at a time per thread, at the C++ reference's speed per core. It is what
``azero_jax.evaluate(..., backend="cpu")`` runs (and what ``"auto"`` picks when JAX's
default device is a CPU). The op semantics are written once, as scalar loops, in
:mod:`azero_jax.backends.cpu._cpu_kernels`; op codes, operand types and classes come from
:mod:`azero_jax.core.ops`.

How it works:

* Programs are decoded once per call and per feature size F (compiled,
  :mod:`azero_jax.backends.cpu._cpu_decode`; ``_decode`` is its numpy twin, which names an
  instruction that cannot be decoded): every operand becomes an offset into one flat float64 memory
  (scalars, then vectors, then row-major matrices) and const-set indices
  ``int(float32(F) * f)`` are resolved, so the interpreter does no address arithmetic and
  allocates nothing while it runs. NO_OPs are dropped, and each program is laid out with
  the evaluation loop's pseudo-ops around its components (see
  :mod:`azero_jax.backends.cpu._cpu_kernels`), so a pair runs as one instruction loop.
* Dead code is dropped too (:mod:`azero_jax.backends.cpu.liveness`): instructions whose results
  never reach a prediction, which random programs are full of. Results are bit for bit those
  of running every instruction. ``dead_code_elimination=False`` (or the environment
  variable ``AZERO_JAX_CPU_DCE=0``) runs everything, as the reference does.
* Pairs are spread over ``num_threads`` Python threads (default: every core this process
  may use) that call a ``nogil`` kernel on dynamically scheduled chunks of pairs.
  ``num_threads=1`` runs in the calling thread. JAX's own thread pool is idle while this
  runs, so the two never oversubscribe the cores; a caller that runs several islands in
  threads should pass ``num_threads=1`` to each.
* Compiled kernels are cached on disk (numba ``cache=True``): the first process compiles
  (see ``benchmarks/bench_evaluator.py`` for the time); later processes load machine code.

Random ops draw from a counter-based stream per pair (splitmix64, see
:mod:`azero_jax.backends.cpu._cpu_kernels`) keyed by ``(seed, task.index, algorithm_id)``. A pair's
draws therefore do not depend on its batch or thread, and the cuda backend draws the same
ones; they differ from the JAX backend's (``jax.random``) and from the C++ reference's:
algorithms with random ops agree with those in distribution only. Uniform draws are
``low + (high - low) * u`` with ``u`` in [0, 1), ``low`` whenever ``low >= high``.

Example:
    >>> import numpy as np
    >>> import azero_jax as az
    >>> from azero_jax.backends.cpu import cpu_evaluator
    >>> task = az.tasks.scalar_linear_regression_task(4, 1000, 100, data_seed=1, param_seed=2)
    >>> res = cpu_evaluator.evaluate_pairs(
    ...     [az.generator.linear_model(0.01)], [task], np.array([0]), np.array([0]),
    ...     memory=az.MemoryConfig(4, 3, 1), max_abs_error=100.0, seed=0,
    ...     algorithm_ids=np.array([0]), train_steps=np.array([1000]), valid_steps=None,
    ...     record_errors=None, num_threads=1)
    >>> bool(res.fitness[0] > 0.999), int(res.train_steps[0])
    (True, 1000)
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import threading
from typing import Sequence

import numpy as np

from azero_jax.backends import _eigen_order
from azero_jax.backends.cpu import _cpu_kernels as kernels
from azero_jax.backends.cpu import _cpu_specialize
from azero_jax.backends.cpu import liveness
from azero_jax.core import ops as ops_lib
from azero_jax.core.memory import MemoryConfig
from azero_jax.core.population import ProgramRows, Programs
from azero_jax.core.program import INSTRUCTION_DTYPE, Algorithm, format_instruction
from azero_jax.core.results import MAX_ABS_ERROR, PairResults
from azero_jax.core.tasks import ACCURACY, Task

# Per-op operand types as small integers (0 none, 1 scalar, 2 vector, 3 matrix), from ops.OPS.
_OPERAND_TYPES = liveness.OPERAND_TYPES
_IN1_TYPE, _IN2_TYPE, _OUT_TYPE = _OPERAND_TYPES.T
_VECTOR_TYPE = 2
_RANDOM = np.zeros(ops_lib.NUM_OPS, dtype=bool)
_RANDOM[list(ops_lib.RANDOM_OPS)] = True


def dead_code_elimination_default() -> bool:
    """Whether dead code is dropped when a caller does not say: yes, unless the environment
    variable ``AZERO_JAX_CPU_DCE`` is ``0`` (``false``, ``no``, ``off``)."""
    return os.environ.get("AZERO_JAX_CPU_DCE", "1").strip().lower() not in (
        "0", "false", "no", "off")


def default_num_threads() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------------
# Packing: programs and tasks into flat arrays the kernels index.


def _flatten_programs(algorithms: Sequence[Algorithm]):
    """All instructions in one structured array, and per algorithm its 4 boundaries."""
    if isinstance(algorithms, Programs):  # the search's tensors: no Algorithm objects
        return algorithms.flat()
    parts = [component for algorithm in algorithms for component in algorithm.components]
    sizes = np.fromiter((len(part) for part in parts), dtype=np.int64, count=len(parts))
    bounds = np.zeros((len(algorithms), 4), dtype=np.int64)
    ends = np.cumsum(sizes).reshape(len(algorithms), 3)
    bounds[:, 1:] = ends
    bounds[1:, 0] = ends[:-1, 2]
    flat = np.frombuffer(b"".join(part.tobytes() for part in parts), dtype=INSTRUCTION_DTYPE)
    return flat, bounds


def _const_index(fraction: np.ndarray, F: int) -> np.ndarray:
    """The reference's FloatToIndex: ``int(float32(F) * f)`` (float32 product, truncation)."""
    with np.errstate(invalid="ignore", over="ignore"):
        product = np.float32(F) * fraction.astype(np.float32)
        product = np.where(np.isfinite(product), product, -1.0)
    return np.trunc(product).astype(np.int64)


def _owner(bounds: np.ndarray, row: int) -> int:
    """The algorithm whose instructions include flat row ``row``."""
    return int(np.searchsorted(bounds[:, 3], row, side="right"))


def _decode(flat: np.ndarray, memory: MemoryConfig, F: int, algorithms, bounds, keep=None):
    """Decodes programs for feature size F into the kernel's code (see ``_cpu_kernels``).

    Every operand becomes a memory offset and const-set indices are resolved; NO_OPs
    (which do nothing) are dropped, and so are the dead instructions of a ``keep`` mask
    (:func:`azero_jax.backends.cpu.liveness.keep_mask_flat`; None: none); each program is laid out
    as one sequence with the evaluation loop's pseudo-ops around its components.

    Returns:
      ``ins [L * 4]`` uint32 (op, x, y, z), ``dat [L * 2]`` float64 (constants) and
      ``starts [A]`` int64, the position of each program's first instruction.
    """
    S, V = memory.num_scalars, memory.num_vectors
    op = flat["op"].astype(np.int64)
    if len(op) and (op.min() < 0 or op.max() >= ops_lib.NUM_OPS):
        row = int(np.flatnonzero((op < 0) | (op >= ops_lib.NUM_OPS))[0])
        raise ValueError(f"algorithm {_owner(bounds, row)}: unknown op code {int(op[row])}")
    # Callers may skip azero_jax.evaluate_pairs' checks: an address outside the memory
    # would make the kernels write out of bounds, so check them here (vectorised).
    limit = np.array([1, S, V, memory.num_matrices], dtype=np.int64)
    for field, types in (("in1", _IN1_TYPE), ("in2", _IN2_TYPE), ("out", _OUT_TYPE)):
        t = types[op]
        address = flat[field]
        bad = (t > 0) & ((address < 0) | (address >= limit[t]))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"algorithm {_owner(bounds, row)}: "
                             f"{format_instruction(flat[row])!r} addresses memory outside "
                             f"S={S}, V={V}, M={memory.num_matrices}")
    # Offset of address a of type code t (0 none, 1 S, 2 V, 3 M) = base[t] + a * size[t].
    base = np.array([0, 0, S, S + V * F], dtype=np.int64)
    size = np.array([0, 1, F, F * F], dtype=np.int64)
    ins = np.empty((len(flat), 4), dtype=np.int64)
    ins[:, 0] = op
    for column, field, types in ((1, "in1", _IN1_TYPE), (2, "in2", _IN2_TYPE),
                                 (3, "out", _OUT_TYPE)):
        t = types[op]
        ins[:, column] = base[t] + flat[field] * size[t]
    dat = np.zeros((len(flat), 2), dtype=np.float64)
    dat[:, 0] = flat["f0"]
    dat[:, 1] = flat["f1"]

    is_scalar_const = op == ops_lib.Op.SCALAR_CONST_SET_OP
    dat[is_scalar_const, 0] = flat["d"][is_scalar_const]
    # The partial writes (const-set ops 57/58): their index fractions become the written
    # entry's offset, their one value field the constant.
    for spec in (spec for spec in ops_lib.OPS if spec.index_fields):
        rows = np.nonzero(op == spec.code)[0]
        if not len(rows):
            continue
        entry = np.zeros(len(rows), dtype=np.int64)
        for field in spec.index_fields:
            index = _const_index(flat[field][rows], F)
            bad = (index < 0) | (index >= F)
            if bad.any():
                row = rows[np.nonzero(bad)[0][0]]
                raise ValueError(f"algorithm {_owner(bounds, row)}: "
                                 f"{format_instruction(flat[row])!r} has the "
                                 f"index fraction {float(flat[field][row])!r}, which is outside "
                                 f"[0, 1) for F={F}")
            entry = entry * F + index
        ins[rows, 3] += entry
        (value_field,) = spec.value_fields
        dat[rows, 0] = flat[value_field][rows]
    # Whether an instruction writes v0 (whole, or one entry: the const-set ops).
    writes_v0 = (_OUT_TYPE[op] == _VECTOR_TYPE) & (flat["out"] == 0)
    if keep is None:
        keep = np.where(op != 0, liveness.KEEP_BOTH, 0).astype(np.uint8)
    return _layout(ins, dat, keep, bounds, writes_v0)


# Segments of a program's code, in order: (part or None, pseudo-op). Parts: Setup,
# Predict (training), Learn, Predict (validation): the two Predicts may keep different
# instructions.
_SEGMENTS = ((0, None), (None, kernels.OP_TRAIN_BEGIN), (1, None), (None, kernels.OP_TRAIN_ERROR),
             (2, None), (None, kernels.OP_TRAIN_NEXT), (None, kernels.OP_LOAD_VALID), (3, None),
             (None, kernels.OP_VALID_ERROR), (None, kernels.OP_EPOCH_END))
_SEG = {op: s for s, (_, op) in enumerate(_SEGMENTS) if op is not None}
_TRAIN_PREDICT, _VALID_PREDICT = 2, 7  # the segments the pseudo-ops jump to
_PARTS = 4


def _layout(ins, dat, keep, bounds, writes_v0):
    """Lays the kept decoded instructions out as the kernel's per-program code (vectorised)."""
    A = len(bounds)
    component = np.repeat(np.tile(np.arange(3), A), np.diff(bounds, axis=1).ravel())
    owner = np.repeat(np.arange(A), bounds[:, 3] - bounds[:, 0])
    train = np.flatnonzero(keep & liveness.KEEP)
    valid = np.flatnonzero(((keep & liveness.KEEP_VALID) != 0) & (component == 1))
    # The kept rows of each program's 4 parts, in program order: the flat rows are already
    # sorted by (program, component); the validation Predict goes after each Learn.
    rows = np.concatenate([train, valid])
    key = np.concatenate([owner[train] * _PARTS + component[train],
                          owner[valid] * _PARTS + 3])
    order = np.argsort(key, kind="stable")
    rows = rows[order]
    sizes = np.bincount(key, minlength=_PARTS * A).reshape(A, _PARTS)
    kept = np.concatenate([[0], np.cumsum(sizes.ravel())])[:-1].reshape(A, _PARTS)
    lengths = np.ones((A, len(_SEGMENTS)), dtype=np.int64)
    source = np.full((A, len(_SEGMENTS)), -1, dtype=np.int64)
    for s, (part, _) in enumerate(_SEGMENTS):
        if part is not None:
            lengths[:, s] = sizes[:, part]
            source[:, s] = kept[:, part]
    ends = np.cumsum(lengths.ravel())
    starts = (ends - lengths.ravel()).reshape(A, len(_SEGMENTS))
    segment = np.repeat(np.arange(lengths.size), lengths.ravel())
    row = source.ravel()[segment] + np.arange(ends[-1] if A else 0) - starts.ravel()[segment]
    real = source.ravel()[segment] >= 0
    code = np.zeros((len(row), 4), dtype=np.int64)
    code[real] = ins[rows[row[real]]]
    constants = np.zeros((len(row), 2), dtype=np.float64)
    constants[real] = dat[rows[row[real]]]
    # Jump targets are offsets from the program's first instruction.
    relative = starts - starts[:, :1]
    # Whether the training Predict writes v0 (then the features are copied again before
    # Learn).
    in_predict = train[component[train] == 1]
    predict_writes_v0 = np.bincount(owner[in_predict], weights=writes_v0[in_predict],
                                    minlength=A) > 0
    for pseudo, s in _SEG.items():
        code[starts[:, s], 0] = pseudo
    code[starts[:, _SEG[kernels.OP_TRAIN_ERROR]], 1] = predict_writes_v0
    for pseudo, x_segment in ((kernels.OP_TRAIN_BEGIN, _TRAIN_PREDICT),
                              (kernels.OP_TRAIN_NEXT, _TRAIN_PREDICT),
                              (kernels.OP_LOAD_VALID, _VALID_PREDICT),
                              (kernels.OP_VALID_ERROR, _VALID_PREDICT),
                              (kernels.OP_EPOCH_END, _SEG[kernels.OP_TRAIN_BEGIN])):
        code[starts[:, _SEG[pseudo]], 1] = relative[:, x_segment]
    code[starts[:, _SEG[kernels.OP_TRAIN_NEXT]], 2] = relative[:, _SEG[kernels.OP_EPOCH_END]]
    return code.astype(np.uint32).ravel(), constants.ravel(), starts[:, 0].copy()


def _decode_compiled(programs, memory: MemoryConfig, F: int, keep=None, rows=None):
    """``_decode``, compiled (``azero_jax.backends.cpu._cpu_decode``), of a search's tensors
    (:class:`~azero_jax.core.population.Programs`; only ``rows`` if given) or of ``(flat,
    bounds)`` from :func:`_flatten_programs`, dropping the dead instructions of a ``keep``
    mask (:mod:`azero_jax.backends.cpu.liveness`, shaped like the fields; None: none). Returns None
    when a program cannot be decoded (the numpy decoder then raises the error that names it)."""
    from azero_jax.backends.cpu import _cpu_decode
    if isinstance(programs, Programs):
        fields = [field.reshape(-1) for field in programs.fields()]
        first, sizes = programs.offsets(rows)
    else:
        flat, bounds = programs
        fields = [flat[name] for name in ("op", "in1", "in2", "out", "d", "f0", "f1", "f2")]
        first = np.ascontiguousarray(bounds[:, :3])
        sizes = np.diff(bounds, axis=1)
    A = len(first)
    bound = int(sizes[:, 0].sum() + 2 * sizes[:, 1].sum() + sizes[:, 2].sum()) + 6 * A
    code = np.empty(4 * bound, dtype=np.uint32)
    constants = np.empty(2 * bound, dtype=np.float64)
    starts = np.empty(A, dtype=np.int64)
    limits = np.array([1, memory.num_scalars, memory.num_vectors, memory.num_matrices],
                      dtype=np.int64)
    keep = np.zeros(0, dtype=np.uint8) if keep is None else keep.reshape(-1)
    n = _cpu_decode.decode(*fields, first, sizes, _OPERAND_TYPES, limits, memory.num_scalars,
                           memory.num_vectors, F, keep, code, constants, starts)
    if n < 0:
        return None
    return code[:4 * n], constants[:2 * n], starts


def _decode_tensors(programs: Programs, memory: MemoryConfig, F: int, keep=None):
    """:func:`_decode_compiled` of a search's tensors."""
    return _decode_compiled(programs, memory, F, keep)


class _TaskPack:
    """Tasks concatenated into flat float64/int32 arrays plus a table of offsets."""

    def __init__(self, tasks: Sequence[Task]):
        self.tasks = tuple(tasks)  # keeps the tasks alive while cached (ids stay valid)
        table = np.zeros((len(tasks), kernels.TASK_COLUMNS), dtype=np.int64)
        xs, ys, orders = [], [], []
        x_pos = y_pos = o_pos = 0
        for t, task in enumerate(tasks):
            F, K = task.features_size, task.label_size
            row = table[t]
            row[kernels.T_F] = F
            row[kernels.T_NTRAIN] = task.num_train
            row[kernels.T_NVALID] = task.num_valid
            row[kernels.T_EPOCHS] = task.num_epochs
            row[kernels.T_K] = K
            row[kernels.T_ACC] = task.eval_type == ACCURACY
            if K and task.eval_type != ACCURACY:
                raise ValueError(f"task {t}: vector labels need eval_type 'accuracy'")
            if K > F:
                raise ValueError(f"task {t}: {K} classes but only F={F} features")
            for part, pos_field in ((task.x_train, kernels.T_XTR), (task.x_valid, kernels.T_XVA)):
                row[pos_field] = x_pos
                xs.append(np.ascontiguousarray(part, dtype=np.float64).ravel())
                x_pos += part.size
            for part, pos_field in ((task.y_train, kernels.T_YTR), (task.y_valid, kernels.T_YVA)):
                row[pos_field] = y_pos
                ys.append(np.ascontiguousarray(part, dtype=np.float64).ravel())
                y_pos += part.size
            row[kernels.T_ORD] = o_pos
            orders.append(np.ascontiguousarray(task.train_orders, dtype=np.int64).ravel())
            o_pos += task.train_orders.size
        self.table = table
        self.x = np.concatenate(xs) if xs else np.zeros(0)
        self.y = np.concatenate(ys) if ys else np.zeros(0)
        self.orders = np.concatenate(orders) if orders else np.zeros(0, dtype=np.int64)
        self.feature_sizes = sorted({task.features_size for task in tasks})
        # Per task: its feature size's position in feature_sizes, and its index.
        slots = {F: s for s, F in enumerate(self.feature_sizes)}
        self.task_slot = np.array([slots[task.features_size] for task in tasks], dtype=np.int64)
        self.task_ids = np.array([task.index for task in tasks], dtype=np.int64)
        if max(self.x.size, self.y.size, self.orders.size) >= 2**31:
            # the kernels index task data with 32-bit offsets
            raise ValueError("the tasks hold 2^31 or more values; too many for the cpu backend")


_PACK_CACHE: "collections.OrderedDict[tuple, _TaskPack]" = collections.OrderedDict()
_PACK_LOCK = threading.Lock()


def _task_pack(tasks: Sequence[Task]) -> _TaskPack:
    """Packs ``tasks`` once; a search calling again with the same Task objects reuses it."""
    key = tuple(id(task) for task in tasks)
    with _PACK_LOCK:
        pack = _PACK_CACHE.get(key)
        if pack is not None:
            _PACK_CACHE.move_to_end(key)
            return pack
    pack = _TaskPack(tasks)
    with _PACK_LOCK:
        _PACK_CACHE[key] = pack
        while len(_PACK_CACHE) > 8:
            _PACK_CACHE.popitem(last=False)
    return pack


def _mix(*values) -> np.ndarray:
    """splitmix64-style hash of int64 arrays into 32-bit seeds (the pairs' stream keys)."""
    with np.errstate(over="ignore"):
        h = np.uint64(0x9E3779B97F4A7C15)
        for value in values:
            v = np.asarray(value).astype(np.uint64)
            h = (h ^ v) * np.uint64(0xBF58476D1CE4E5B9)
            h = (h ^ (h >> np.uint64(31))) * np.uint64(0x94D049BB133111EB)
            h = h ^ (h >> np.uint64(29))
    return (h & np.uint64(0xFFFFFFFF)).astype(np.int64)


# ----------------------------------------------------------------------------------
# Thread pool.

_POOLS: dict[tuple[int, int], concurrent.futures.ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def _pool(num_threads: int) -> concurrent.futures.ThreadPoolExecutor:
    """A persistent pool per thread count (per process: a forked child makes its own)."""
    key = (os.getpid(), num_threads)
    with _POOL_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=num_threads, thread_name_prefix="azero_cpu")
            _POOLS[key] = pool
        return pool


# ----------------------------------------------------------------------------------
# Entry points.


def _prepare(algorithms, tasks, algorithm_index, task_index, memory, seed, algorithm_ids,
             train_steps, dead_code_elimination):
    pack = _task_pack(tasks)
    S, V, M = memory.num_scalars, memory.num_vectors, memory.num_matrices
    if any(task.label_size for task in tasks) and V < 3:
        raise ValueError(f"num_vectors={V}: vector-label tasks need v1 (labels) and v2 "
                         "(predictions), i.e. num_vectors >= 3")
    A = len(algorithms)
    rows = None  # a search's request: rows of its children's tensors, decoded in place
    if isinstance(algorithms, ProgramRows):
        algorithms, rows = algorithms.programs, algorithms.rows
    slots = {F: s for s, F in enumerate(pack.feature_sizes)}
    codes, constants, progs = [], [], np.empty(len(slots) * A, dtype=np.int64)
    position = 0
    tensors = isinstance(algorithms, Programs)
    # Liveness does not depend on F: one mask serves every feature size.
    label_sizes = {task.label_size for task in tasks}
    keep = None
    if tensors:
        has_random = algorithms.uses_random_ops(rows)
        if dead_code_elimination:
            keep = liveness.keep_mask(algorithms, memory, label_sizes, rows)
    else:
        flat, bounds = _flatten_programs(algorithms)
        random_count = np.concatenate([[0], np.cumsum(_RANDOM[flat["op"]])])
        has_random = random_count[bounds[:, 3]] > random_count[bounds[:, 0]]
        if dead_code_elimination:
            keep = liveness.keep_mask_flat(flat, bounds, memory, label_sizes)
    for F, s in slots.items():
        decoded = _decode_compiled(algorithms if tensors else (flat, bounds), memory, F, keep,
                                   rows)
        if decoded is None:  # not decodable: the numpy decoder names the problem
            if tensors:
                if rows is not None:
                    algorithms = algorithms.take(rows)
                flat, bounds = _flatten_programs(algorithms)
            _decode(flat, memory, F, algorithms, bounds)
            raise AssertionError("the compiled decoder refused programs the numpy one took")
        code, constant, starts = decoded
        codes.append(code)
        constants.append(constant)
        progs[s * A:(s + 1) * A] = starts + position
        position += len(code) // 4
    if position >= 2**31:  # the kernels address code with 32-bit offsets
        raise ValueError(f"{position} instructions are too many for the cpu backend "
                         "(limit 2^31)")
    ins = np.concatenate(codes) if codes else np.zeros(0, dtype=np.uint32)
    dat = np.concatenate(constants) if constants else np.zeros(0)
    task_slot, task_ids = pack.task_slot, pack.task_ids
    B = len(algorithm_index)
    pairs = np.empty((B, kernels.PAIR_COLUMNS), dtype=np.int64)
    pairs[:, kernels.P_PROG] = task_slot[task_index] * A + algorithm_index
    pairs[:, kernels.P_TASK] = task_index
    pairs[:, kernels.P_TRAIN] = np.maximum(train_steps, 0)
    pairs[:, kernels.P_RANDOM] = has_random[algorithm_index]
    pairs[:, kernels.P_SEED] = 0
    random = np.flatnonzero(pairs[:, kernels.P_RANDOM])  # only these pairs draw numbers
    if len(random):
        pairs[random, kernels.P_SEED] = _mix(np.full(len(random), seed),
                                             task_ids[task_index[random]],
                                             algorithm_ids[algorithm_index[random]])
    mem_size = max(S + V * F + M * F * F for F in slots) if slots else S
    if mem_size >= 2**31:  # the kernels address memory with 32-bit offsets
        raise ValueError(f"memory of {mem_size} floats (S={S}, V={V}, M={M}, F={max(slots)}) "
                         "is too large for the cpu backend (limit 2^31)")
    # F x F staged results, then the scratch of the Eigen-order reductions.
    tmp_size = (max(F * F for F in slots) if slots else 1) + _eigen_order.SCRATCH
    return pack, ins, dat, progs, pairs, mem_size, tmp_size


def evaluate_pairs(algorithms: Sequence[Algorithm], tasks: Sequence[Task], algorithm_index,
                   task_index, *, memory: MemoryConfig, max_abs_error: float, seed: int,
                   algorithm_ids, train_steps, valid_steps: int | None,
                   record_errors: tuple[int, int] | None,
                   num_threads: int | None = None,
                   dead_code_elimination: bool | None = None) -> PairResults:
    """Evaluates B (algorithm, task) pairs with the reference loop (spec §4), float64.

    Arguments are those of :func:`azero_jax.backends.evaluator.evaluate_pairs` (already validated
    there), plus:

    Args:
      num_threads: threads to spread the pairs over (default: every core this process may
        use; ``1`` runs in the calling thread, e.g. one island per core).
      dead_code_elimination: drop the instructions that cannot influence the results
        (:mod:`azero_jax.backends.cpu.liveness`; the results are identical). Default:
        :func:`dead_code_elimination_default`.

    Returns:
      :class:`azero_jax.backends.evaluator.PairResults`.
    """
    results, _ = _evaluate(algorithms, tasks, algorithm_index, task_index, memory=memory,
                           max_abs_error=max_abs_error, seed=seed, algorithm_ids=algorithm_ids,
                           train_steps=train_steps, valid_steps=valid_steps,
                           record_errors=record_errors, num_threads=num_threads,
                           dead_code_elimination=dead_code_elimination)
    return results


def _normalize(algorithms, tasks, algorithm_index, task_index, algorithm_ids, train_steps,
               valid_steps, record_errors):
    """The pair arguments as the kernels take them (shared with the cuda backend).

    Returns:
      ``(algorithm_index, task_index, algorithm_ids, train_steps, kt, kv, valid_limit)``:
      int64 arrays, the recorded error counts and the validation step limit.
    """
    algorithm_index = np.asarray(algorithm_index, dtype=np.int64).reshape(-1)
    task_index = np.asarray(task_index, dtype=np.int64).reshape(-1)
    if algorithm_ids is None:
        algorithm_ids = np.arange(len(algorithms), dtype=np.int64)
    algorithm_ids = np.asarray(algorithm_ids, dtype=np.int64).reshape(-1)
    if train_steps is None:
        train_steps = np.array([tasks[t].total_train_steps for t in task_index], dtype=np.int64)
    train_steps = np.broadcast_to(np.asarray(train_steps, dtype=np.int64),
                                  algorithm_index.shape)
    kt, kv = (0, 0) if record_errors is None else (int(record_errors[0]), int(record_errors[1]))
    if kt < 0 or kv < 0:
        raise ValueError(f"record_errors must be two counts >= 0, got {record_errors}")
    valid_limit = np.iinfo(np.int64).max if valid_steps is None else int(valid_steps)
    if valid_limit < 0:
        raise ValueError(f"valid_steps must be >= 0, got {valid_steps}")
    return algorithm_index, task_index, algorithm_ids, train_steps, kt, kv, valid_limit


def _outputs(B: int, kt: int, kv: int):
    """Fitness, steps, train errors, their counts, valid errors, their counts (NaN-padded)."""
    return (np.zeros(B), np.zeros(B, dtype=np.int64), np.full((B, kt), np.nan),
            np.zeros(B, dtype=np.int64), np.full((B, kv), np.nan), np.zeros(B, dtype=np.int64))


def _evaluate(algorithms, tasks, algorithm_index, task_index, *, memory, max_abs_error, seed,
              algorithm_ids, train_steps, valid_steps, record_errors, num_threads,
              dead_code_elimination=None, initial_memory=None):
    algorithm_index, task_index, algorithm_ids, train_steps, kt, kv, valid_limit = _normalize(
        algorithms, tasks, algorithm_index, task_index, algorithm_ids, train_steps,
        valid_steps, record_errors)
    B = len(algorithm_index)
    if num_threads is None:
        num_threads = default_num_threads()
    num_threads = int(num_threads)
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    if dead_code_elimination is None:
        dead_code_elimination = dead_code_elimination_default()

    fitness, steps, terr, nterr, verr, nverr = _outputs(B, kt, kv)
    final_memory = None
    if B:
        pack, ins, dat, progs, pairs, mem_size, tmp_size = _prepare(
            algorithms, tasks, algorithm_index, task_index, memory, seed, algorithm_ids,
            train_steps, bool(dead_code_elimination))
        S, V, M = memory.num_scalars, memory.num_vectors, memory.num_matrices
        # Group the pairs by feature size: each group runs the kernels specialised for it.
        pair_f = pack.table[pairs[:, kernels.P_TASK], kernels.T_F]
        order = None
        if len(pack.feature_sizes) > 1:
            order = np.argsort(pair_f, kind="stable")
            pairs, pair_f = pairs[order], pair_f[order]
            outputs = _outputs(B, kt, kv)
        else:
            outputs = (fitness, steps, terr, nterr, verr, nverr)
        args = (ins, dat, progs, pack.table, pack.x, pack.y, pack.orders, pairs)
        init_mem = np.zeros(0)
        if initial_memory is not None:
            init_mem = np.ascontiguousarray(initial_memory, dtype=np.float64).ravel()
            if len(pack.feature_sizes) != 1 or init_mem.size != (
                    S + V * pack.feature_sizes[0] + M * pack.feature_sizes[0] ** 2):
                raise ValueError("initial_memory must hold S + V F + M F^2 values for one F")
        threads = min(num_threads, B)
        # Small dynamic chunks: the last one bounds the imbalance between threads.
        chunk = B if threads == 1 else int(max(1, min(64, B // (threads * 32))))
        work = []
        if len(pack.feature_sizes) == 1:
            groups = [(0, B)]
        else:
            boundaries = np.flatnonzero(np.diff(pair_f)) + 1
            groups = zip(np.r_[0, boundaries], np.r_[boundaries, B])
        for first_of_group, end_of_group in groups:
            module = _cpu_specialize.kernels_for(int(pair_f[first_of_group]))
            for first in range(int(first_of_group), int(end_of_group), chunk):
                work.append((module, first, min(int(end_of_group), first + chunk)))

        def run(item, mem, tmp):
            module, first, last = item
            module.evaluate_chunk(*args, first, last, S, V, M, valid_limit,
                                  float(max_abs_error), mem, tmp, outputs[0], outputs[1],
                                  outputs[2], outputs[3], outputs[4], outputs[5], init_mem)

        if threads == 1:
            mem, tmp = np.zeros(mem_size), np.zeros(tmp_size)
            for item in work:
                run(item, mem, tmp)
            final_memory = mem
        else:
            items = iter(work)
            lock = threading.Lock()

            def worker():
                mem, tmp = np.zeros(mem_size), np.zeros(tmp_size)
                while True:
                    with lock:
                        item = next(items, None)
                    if item is None:
                        return
                    run(item, mem, tmp)

            futures = [_pool(threads).submit(worker) for _ in range(threads)]
            for future in futures:
                future.result()
        if order is not None:
            for target, source in zip((fitness, steps, terr, nterr, verr, nverr), outputs):
                target[order] = source
    if kt == 0 and kv == 0 and record_errors is None:
        results = PairResults(fitness, steps)
    else:
        results = PairResults(fitness, steps, terr, nterr, verr, nverr)
    return results, final_memory


def run_debug(algorithm: Algorithm, task: Task, memory: MemoryConfig, *,
              max_abs_error: float = MAX_ABS_ERROR, seed: int = 0, algorithm_id: int = 0,
              train_steps: int | None = None, valid_steps: int | None = None,
              record_errors: tuple[int, int] | None = None,
              initial_memory: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> dict:
    """Evaluates one pair in the calling thread and returns its final memory (for tests).

    ``initial_memory = (scalars [S], vectors [V, F], matrices [M, F, F])`` replaces the
    all-zero memory the evaluation starts from (to test single ops: put the op in Setup
    and pass ``train_steps=0``).

    Returns:
      dict with ``fitness``, ``train_steps``, ``results`` (the PairResults) and the final
      memory as ``scalars [S]``, ``vectors [V, F]``, ``matrices [M, F, F]`` (the state when
      the evaluation ended, including after an early abort; every instruction runs, dead
      or not, so the memory is the reference's).

    Example:
        >>> import azero_jax as az
        >>> from azero_jax.backends.cpu import cpu_evaluator
        >>> task = az.tasks.unit_test_ones_task(4, 10, 5)
        >>> out = cpu_evaluator.run_debug(az.parse_algorithm(
        ...     "def Setup():\\ndef Predict():\\ndef Learn():\\n  s1 = s0 + s1\\n"),
        ...     task, az.MemoryConfig(4, 3, 1))
        >>> float(out["scalars"][1])
        10.0
    """
    S, V, M = memory.num_scalars, memory.num_vectors, memory.num_matrices
    F = task.features_size
    flat = None
    if initial_memory is not None:
        scalars, vectors, matrices = (np.asarray(a, dtype=np.float64) for a in initial_memory)
        if scalars.shape != (S,) or vectors.shape != (V, F) or matrices.shape != (M, F, F):
            raise ValueError(f"initial_memory must have shapes ({S},), ({V}, {F}), "
                             f"({M}, {F}, {F})")
        flat = np.concatenate([scalars, vectors.ravel(), matrices.ravel()])
    results, mem = _evaluate([algorithm], [task], np.array([0]), np.array([0]), memory=memory,
                             max_abs_error=max_abs_error, seed=seed,
                             algorithm_ids=np.array([algorithm_id]),
                             train_steps=None if train_steps is None else np.array([train_steps]),
                             valid_steps=valid_steps, record_errors=record_errors,
                             num_threads=1, dead_code_elimination=False,
                             initial_memory=flat)
    return dict(fitness=float(results.fitness[0]), train_steps=int(results.train_steps[0]),
                results=results, scalars=mem[:S].copy(),
                vectors=mem[S:S + V * F].reshape(V, F).copy(),
                matrices=mem[S + V * F:S + V * F + M * F * F].reshape(M, F, F).copy())
