"""The batched JAX evaluator: many (algorithm, task) pairs in one jitted call.

Programs are fixed-length instruction tensors. One compiled function serves every
call with the same static :class:`EvalShape` (memory sizes, per-component op sets and
padded lengths, task shape, batch size, dtype, write mode): a search compiles once per
distinct evaluation shape and never again (see :data:`COUNTERS`).

How a batch runs: ``jax.vmap`` over pairs; per pair a ``lax.while_loop`` over epochs
wraps a ``lax.while_loop`` over training examples and one over validation examples
(a vmapped while loop stops as soon as every pair of the batch has finished or
aborted); each instruction is a ``lax.switch`` over only the ops that can occur in its
component function, split by result type, so that each branch returns just a scalar,
a vector or a matrix and the instruction makes a single write into that memory.
Operands are read once per instruction (only the types the component's ops read).

Example:
    >>> import azero_jax as az
    >>> task = az.tasks.scalar_linear_regression_task(4, 1000, 100, 1, 2)
    >>> grid = az.evaluate([az.generator.linear_model()], [task], num_scalars=4,
    ...                    num_vectors=3, num_matrices=1, backend="jax")
    >>> bool(grid[0, 0] > 0.999)
    True
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import os
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from azero_jax.backends.jax.jax_ops import op_function, rounded_product, true_divide
from azero_jax.core import ops as ops_lib
from azero_jax.core.memory import MemoryConfig
from azero_jax.core.population import Programs, used_op_sets
from azero_jax.core.program import Algorithm, pad_components
from azero_jax.core.results import NEG_TWO_OVER_PI, PairResults
from azero_jax.core.tasks import ACCURACY, Task


@dataclasses.dataclass
class Counters:
    """What the evaluator has done in this process, for tests and benchmarks to read.

    Attributes:
      traces: how many times each static :class:`EvalShape` has been traced (a compiled
        evaluator that retraced would count twice).
      sharded_calls: device calls that sharded a batch over several devices.
      shard_devices: over how many devices the last sharded call ran.
    """

    traces: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    sharded_calls: int = 0
    shard_devices: int = 1

    def total_traces(self) -> int:
        return sum(self.traces.values())


# The process's counters: tracing happens once per shape and process (jit's cache is
# process-wide), so the count that proves it is process-wide too.
COUNTERS = Counters()


_KIND_CODE = {None: 0, "S": 1, "V": 2, "M": 3}
# A component function is unrolled (one fused graph per example) when its length times
# its number of branches is at most this; otherwise it runs as a lax.scan over
# instructions. Unrolling runs 20-30 % faster on a CPU but compiles far slower (59 ops x
# 42 instructions: 80 s unrolled, 3 s as a scan). On accelerators unrolling also saves a
# loop iteration (kernel launches) per instruction, hence the larger default there
# (not yet measured on a GPU). AZERO_UNROLL_BUDGET overrides both.
_UNROLL_BUDGET = {"cpu": 64, "accelerator": 512}
# How an instruction writes its result: "scatter" (one row, in place) or "select" (a masked
# rewrite of the whole typed memory), from AZERO_WRITE_MODE, read at each call into the
# static shape. Scatter measured 2-12x faster on CPU; GPU untested.
WRITE_MODES = ("scatter", "select")


def write_mode() -> str:
    """The write mode AZERO_WRITE_MODE selects (default ``"scatter"``).

    Raises:
      ValueError: for another value.
    """
    mode = os.environ.get("AZERO_WRITE_MODE", "scatter").strip().lower() or "scatter"
    if mode not in WRITE_MODES:
        raise ValueError(f"AZERO_WRITE_MODE must be one of {WRITE_MODES}, got {mode!r}")
    return mode


def bucket_length(n: int) -> int:
    """Padded length for a component function of ``n`` instructions."""
    if n <= 0:
        return 0
    if n <= 8:
        return n
    if n <= 32:
        return -(-n // 4) * 4
    return -(-n // 16) * 16


def bucket_batch(n: int, max_batch: int) -> int:
    """Padded batch size: the next power of two (at least 8), at most ``max_batch``."""
    size = 8
    while size < n and size < max_batch:
        size *= 2
    return min(size, max_batch)


@dataclasses.dataclass(frozen=True)
class EvalShape:
    """Everything static about one compiled evaluator."""

    features_size: int
    num_train: int
    num_valid: int
    num_epochs: int
    label_size: int
    num_tasks: int
    memory: MemoryConfig
    op_sets: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    lengths: tuple[int, int, int]
    batch_size: int
    valid_steps: int
    record: tuple[int, int]
    dtype: str
    return_memory: bool = False
    write_mode: str = "scatter"


def x64_context(dtype: str):
    if dtype != "float64":
        return contextlib.nullcontext()
    enable = getattr(jax, "enable_x64", None)
    if enable is None:  # older JAX
        from jax.experimental import enable_x64 as enable
        return enable()
    return enable(True)


def _unroll_budget() -> int:
    override = os.environ.get("AZERO_UNROLL_BUDGET")
    if override:
        return int(override)
    return _UNROLL_BUDGET["cpu" if jax.default_backend() == "cpu" else "accelerator"]


class _ComponentExec:
    """Executes one component function whose ops come from a fixed (static) op set.

    Each op's branch is its expression template (``OpSpec.jax``) compiled by
    :func:`azero_jax.backends.jax.jax_ops.op_function`: the same expressions exported code runs.
    """

    def __init__(self, op_set: Sequence[int], features_size: int, memory: MemoryConfig, dt,
                 write_mode: str = "scatter"):
        self.codes = tuple(sorted(set(op_set) | {ops_lib.NO_OP}))
        self.F = features_size
        self.dt = dt
        self.memory = memory
        self.write_mode = write_mode
        specs = [ops_lib.OPS[c] for c in self.codes]
        reads = {(t, slot) for s in specs for t, slot in ((s.in1_type, "a"), (s.in2_type, "b")) if t}
        self.reads = reads
        # The partial writes (const-set ops) read the old value of their output cell.
        self.reads_old = {s.out_type for s in specs if s.partial_write}
        self.random = any(s.random for s in specs)
        self.kind_table = np.array([_KIND_CODE[s.out_type] for s in specs], np.int32)
        self.by_type = {}
        for type_ in ("S", "V", "M"):
            typed = [c for c in self.codes if ops_lib.OPS[c].out_type == type_]
            if typed:
                local = np.zeros(len(self.codes), np.int32)
                for i, c in enumerate(self.codes):
                    if c in typed:
                        local[i] = typed.index(c)
                self.by_type[type_] = (typed, local)

    def _branch(self, code: int):
        """Op ``code`` as a function of the instruction's operands (a dict, see ``step``)."""
        spec = ops_lib.OPS[code]
        fn = op_function(code, self.F, self.dt)

        def branch(operands):
            data = operands["data"]
            kwargs = dict(d=data[0], f0=data[1], f1=data[2], f2=data[3], key=operands["key"])
            if spec.in1_type:
                kwargs["a"] = operands[spec.in1_type + "a"]
            if spec.in2_type:
                kwargs["b"] = operands[spec.in2_type + "b"]
            if spec.partial_write:
                kwargs["o"] = operands[spec.out_type + "o"]
            return fn(**kwargs).astype(self.dt)

        return branch

    def branch_table(self) -> np.ndarray:
        """Maps op code -> branch index in this component (-1 for ops outside the set)."""
        table = np.full(ops_lib.NUM_OPS, -1, np.int32)
        for i, c in enumerate(self.codes):
            table[c] = i
        return table

    def step(self, mem, branch, addr, data, key):
        s, v, m = mem
        in1, in2, out = addr[0], addr[1], addr[2]
        memories = {"S": s, "V": v, "M": m}
        # Operands are read once per instruction, only those the component's ops read.
        operands = {"data": data, "key": key}
        for (type_, slot) in self.reads:
            operands[type_ + slot] = memories[type_][in1 if slot == "a" else in2]
        for type_ in self.reads_old:
            operands[type_ + "o"] = memories[type_][out]
        kind = jnp.asarray(self.kind_table)[branch]
        for type_, (typed, local) in self.by_type.items():
            fns = [self._branch(c) for c in typed]
            if len(fns) == 1:
                result = fns[0](operands)
            else:
                result = lax.switch(jnp.asarray(local)[branch], fns, operands)
            target = memories[type_]
            if self.write_mode == "scatter":
                writes = kind == _KIND_CODE[type_]
                memories[type_] = target.at[out].set(jnp.where(writes, result, target[out]))
            else:
                size = target.shape[0]
                hit = (kind == _KIND_CODE[type_]) & (jnp.arange(size) == out)
                hit = hit.reshape((size,) + (1,) * (target.ndim - 1))
                memories[type_] = jnp.where(hit, result[None], target)
        return (memories["S"], memories["V"], memories["M"])

    def run(self, mem, branches, addrs, datas, key):
        length = branches.shape[0]
        if length == 0 or self.codes == (ops_lib.NO_OP,):
            return mem

        def instruction_key(i):
            return jax.random.fold_in(key, i) if self.random else None

        if length * len(self.codes) <= _unroll_budget():
            for i in range(length):
                mem = self.step(mem, branches[i], addrs[i], datas[i], instruction_key(i))
            return mem

        def body(carry, xs):
            i, branch, addr, data = xs
            return self.step(carry, branch, addr, data, instruction_key(i)), None

        mem, _ = lax.scan(body, mem, (jnp.arange(length), branches, addrs, datas))
        return mem


# ----------------------------------------------------------------------------------
# The per-pair evaluation loop (spec §4), vmapped over the batch.


class _TrainCarry(NamedTuple):
    """The training loop's state within one epoch."""

    step: jax.Array  # index of the next example of the epoch
    mem: tuple  # (scalars, vectors, matrices)
    aborted: jax.Array  # the last step's error was NaN or too large
    steps: jax.Array  # training steps run so far (all epochs; an aborting step counts)
    errors: jax.Array  # recorded first-epoch training errors
    num_errors: jax.Array


class _ValidCarry(NamedTuple):
    """The validation loop's state."""

    step: jax.Array
    mem: tuple
    loss: jax.Array  # summed squared error (or 0/1 error)
    failed: jax.Array  # an error was NaN or too large
    errors: jax.Array  # recorded first-epoch validation errors
    num_errors: jax.Array


class _EpochCarry(NamedTuple):
    """The epoch loop's state."""

    epoch: jax.Array
    remaining: jax.Array  # training steps still allowed by the budget
    done: jax.Array  # training aborted
    mem: tuple
    best: jax.Array  # best validation fitness so far
    steps: jax.Array
    train_errors: jax.Array
    num_train_errors: jax.Array
    valid_errors: jax.Array
    num_valid_errors: jax.Array


def _build(shape: EvalShape):
    dt = jnp.float64 if shape.dtype == "float64" else jnp.float32
    F, n_train, n_valid, E = shape.features_size, shape.num_train, shape.num_valid, shape.num_epochs
    S, V, M = shape.memory.num_scalars, shape.memory.num_vectors, shape.memory.num_matrices
    vector_labels = shape.label_size > 0
    K = shape.label_size
    rec_train, rec_valid = shape.record
    valid_steps = shape.valid_steps
    setup_x, predict_x, learn_x = (_ComponentExec(shape.op_sets[c], F, shape.memory, dt,
                                                  shape.write_mode)
                                   for c in range(3))

    def sigmoid(x):
        return 1 / (1 + jnp.exp(-x))

    def truncating_softmax(pred):
        logits = pred[:K]
        z = jnp.exp(logits - jnp.max(logits))
        return jnp.concatenate([z / jnp.sum(z), jnp.zeros((F - K,), dt)])

    def argmax_first(x):
        # First index of the maximum; NaN entries never win.
        safe = jnp.where(jnp.isnan(x), -jnp.inf, x)
        return jnp.argmax(safe)

    def load_example(mem, x, label_value):
        s, v, m = mem
        v = v.at[0].set(x)
        if vector_labels:
            v = v.at[1].set(label_value)
        else:
            s = s.at[0].set(label_value)
        return (s, v, m)

    def pair_fn(progs, tslot, task_index, alg_id, train_req, is_acc, task_data, base_key,
                max_abs_error):
        COUNTERS.traces[shape] += 1
        x_train, y_train, x_valid, y_valid, orders = task_data
        (sb, sa, sd), (pb, pa, pd), (lb, la, ld) = progs
        pair_key = jax.random.fold_in(jax.random.fold_in(base_key, task_index), alg_id)
        setup_key, train_key, learn_key, valid_key = (jax.random.fold_in(pair_key, i)
                                                      for i in range(4))
        zero_label = jnp.zeros((F,), dt) if vector_labels else jnp.zeros((), dt)
        mem = (jnp.zeros((S,), dt), jnp.zeros((V, F), dt), jnp.zeros((M, F, F), dt))
        mem = setup_x.run(mem, sb, sa, sd, setup_key)
        total = jnp.minimum(train_req, E * n_train)

        def predict(mem, x, key):
            mem = load_example(mem, x, zero_label)
            return predict_x.run(mem, pb, pa, pd, key)

        def train_epoch(carry, epoch, steps_this_epoch):
            def cond(c: _TrainCarry):
                return (c.step < steps_this_epoch) & ~c.aborted

            def body(c: _TrainCarry):
                i, mem, errs, n_errs = c.step, c.mem, c.errors, c.num_errors
                example = orders[tslot, epoch, i]
                x = x_train[tslot, example]
                y = y_train[tslot, example]
                t = epoch * n_train + i
                mem = predict(mem, x, jax.random.fold_in(train_key, t))
                s, v, m = mem
                if vector_labels:
                    prob = truncating_softmax(v[2])
                    v = v.at[2].set(jnp.where(is_acc, prob, v[2]))
                    err = jnp.max(jnp.abs(y - v[2]))
                else:
                    s = s.at[1].set(jnp.where(is_acc, sigmoid(s[1]), s[1]))
                    err = jnp.abs(y - s[1])
                mem = (s, v, m)
                bad = jnp.isnan(err) | (err > max_abs_error)
                if rec_train:
                    record = (epoch == 0) & ~bad & (i < rec_train)
                    errs = jnp.where(record & (jnp.arange(rec_train) == i), err, errs)
                    n_errs = n_errs + record.astype(jnp.int32)
                learned = learn_x.run(load_example(mem, x, y), lb, la, ld,
                                      jax.random.fold_in(learn_key, t))
                mem = jax.tree_util.tree_map(lambda new, old: jnp.where(bad, old, new),
                                             learned, mem)
                return _TrainCarry(i + 1, mem, bad, c.steps + 1, errs, n_errs)

            return lax.while_loop(cond, body, carry)

        def validate(mem, epoch, errs, n_errs):
            count = min(valid_steps, n_valid)

            def cond(c: _ValidCarry):
                return (c.step < count) & ~c.failed

            def body(c: _ValidCarry):
                j, mem, loss, errs, n_errs = c.step, c.mem, c.loss, c.errors, c.num_errors
                x, y = x_valid[tslot, j], y_valid[tslot, j]
                mem = predict(mem, x, jax.random.fold_in(valid_key, epoch * n_valid + j))
                s, v, _ = mem
                # The 0/1 error of accuracy tasks goes through the same abort check as
                # regression errors (it can only fire when max_abs_error < 1).
                if vector_labels:
                    wrong = (argmax_first(v[2][:K]) != argmax_first(y[:K])).astype(dt)
                    error, bad = wrong, wrong > max_abs_error
                    increment = wrong
                else:
                    diff = y - s[1]
                    wrong = ((y > 0.5) != (sigmoid(s[1]) > 0.5)).astype(dt)
                    error = jnp.where(is_acc, wrong, jnp.abs(diff))
                    bad = jnp.isnan(error) | (error > max_abs_error)
                    increment = jnp.where(is_acc, wrong, rounded_product(diff, diff))
                if rec_valid:
                    record = (epoch == 0) & ~bad & (j < rec_valid)
                    errs = jnp.where(record & (jnp.arange(rec_valid) == j), error, errs)
                    n_errs = n_errs + record.astype(jnp.int32)
                loss = jnp.where(bad, loss, loss + increment)
                return _ValidCarry(j + 1, mem, loss, c.failed | bad, errs, n_errs)

            init = _ValidCarry(jnp.int32(0), mem, jnp.zeros((), dt), jnp.zeros((), bool), errs,
                               n_errs)
            _, mem, loss, failed, errs, n_errs = lax.while_loop(cond, body, init)
            # As the reference rounds them: a true division, no fused multiply-add.
            mean_loss = true_divide(loss, n_valid)
            if vector_labels:
                fitness = jnp.where(failed, 0.0, 1 - mean_loss)
            else:
                rms = jnp.sqrt(mean_loss)
                squashed = jnp.where(jnp.isfinite(rms),
                                     1 + rounded_product(NEG_TWO_OVER_PI, jnp.arctan(rms)), 0.0)
                fitness = jnp.where(failed, 0.0, jnp.where(is_acc, 1 - mean_loss, squashed))
            return mem, fitness.astype(dt), errs, n_errs

        def epoch_cond(c: _EpochCarry):
            return (c.epoch < E) & (c.remaining > 0) & ~c.done

        def epoch_body(c: _EpochCarry):
            k = jnp.minimum(n_train, c.remaining)
            trained = train_epoch(
                _TrainCarry(jnp.int32(0), c.mem, jnp.zeros((), bool), c.steps, c.train_errors,
                            c.num_train_errors), c.epoch, k)
            mem_v, fitness, verr_v, nverr_v = validate(trained.mem, c.epoch, c.valid_errors,
                                                       c.num_valid_errors)
            keep = ~trained.aborted
            mem = jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), mem_v, trained.mem)
            return _EpochCarry(
                epoch=c.epoch + 1, remaining=c.remaining - n_train, done=trained.aborted,
                mem=mem, best=jnp.where(keep, jnp.maximum(c.best, fitness), c.best),
                steps=trained.steps, train_errors=trained.errors,
                num_train_errors=trained.num_errors,
                valid_errors=jnp.where(keep, verr_v, c.valid_errors),
                num_valid_errors=jnp.where(keep, nverr_v, c.num_valid_errors))

        init = _EpochCarry(
            epoch=jnp.int32(0), remaining=total.astype(jnp.int32), done=jnp.zeros((), bool),
            mem=mem, best=jnp.zeros((), dt), steps=jnp.int32(0),
            train_errors=jnp.full((max(rec_train, 1),), jnp.nan, dt), num_train_errors=jnp.int32(0),
            valid_errors=jnp.full((max(rec_valid, 1),), jnp.nan, dt), num_valid_errors=jnp.int32(0))
        final = lax.while_loop(epoch_cond, epoch_body, init)
        out = {"fitness": final.best, "train_steps": final.steps}
        if rec_train or rec_valid:
            out.update(train_errors=final.train_errors, num_train_errors=final.num_train_errors,
                       valid_errors=final.valid_errors, num_valid_errors=final.num_valid_errors)
        if shape.return_memory:
            out.update(scalars=final.mem[0], vectors=final.mem[1], matrices=final.mem[2])
        return out

    batched = jax.vmap(pair_fn, in_axes=(0, 0, 0, 0, 0, 0, None, None, None))
    return jax.jit(batched)


@functools.lru_cache(maxsize=256)
def compiled_evaluator(shape: EvalShape):
    """The jitted batch function for ``shape`` (built once per shape and process)."""
    return _build(shape)


# ----------------------------------------------------------------------------------
# Host side: grouping, padding, calling.


class _Placement:
    """Puts per-pair inputs split along the batch axis and shared inputs replicated."""

    def __init__(self, devices):
        if len(devices) > 1:
            from jax.sharding import Mesh, NamedSharding, PartitionSpec
            mesh = Mesh(np.array(devices), ("batch",))
            self._split = NamedSharding(mesh, PartitionSpec("batch"))
            self._replicated = NamedSharding(mesh, PartitionSpec())
        else:
            self._split = self._replicated = devices[0]

    def split(self, tree):
        return jax.tree_util.tree_map(lambda x: jax.device_put(x, self._split), tree)

    def replicate(self, tree):
        return jax.tree_util.tree_map(lambda x: jax.device_put(x, self._replicated), tree)


@functools.lru_cache(maxsize=8)
def _placement(devices: tuple) -> _Placement:
    return _Placement(devices)


def _task_group_key(task: Task):
    return (task.features_size, task.num_train, task.num_valid, task.num_epochs, task.label_size)


def _stack_tasks(tasks: Sequence[Task], dtype, label_size: int, F: int):
    x_train = np.stack([t.x_train for t in tasks]).astype(dtype)
    x_valid = np.stack([t.x_valid for t in tasks]).astype(dtype)
    if label_size:
        if label_size > F:
            raise ValueError(f"vector labels of size {label_size} exceed the feature size {F}")
        pad = [(0, 0), (0, 0), (0, F - label_size)]
        y_train = np.pad(np.stack([t.y_train for t in tasks]), pad).astype(dtype)
        y_valid = np.pad(np.stack([t.y_valid for t in tasks]), pad).astype(dtype)
    else:
        y_train = np.stack([t.y_train for t in tasks]).astype(dtype)
        y_valid = np.stack([t.y_valid for t in tasks]).astype(dtype)
    orders = np.stack([t.train_orders for t in tasks]).astype(np.int32)
    return x_train, y_train, x_valid, y_valid, orders


def _program_arrays(algorithms, lengths, tables, dtype):
    if isinstance(algorithms, Programs):
        blocks = [algorithms.component(c, length) for c, length in enumerate(lengths)]
    else:
        blocks = pad_components(algorithms, lengths)
    out = []
    for c, block in enumerate(blocks):
        branch = tables[c][block["op"]]
        if (branch < 0).any():
            bad = sorted(set(block["op"][branch < 0].tolist()))
            raise ValueError(f"component {c} uses ops {bad} outside the compiled op set")
        addr = np.stack([block["in1"], block["in2"], block["out"]], axis=-1).astype(np.int32)
        data = np.stack([block["d"], block["f0"].astype(np.float64), block["f1"].astype(np.float64),
                         block["f2"].astype(np.float64)], axis=-1).astype(dtype)
        out.append((branch.astype(np.int32), addr, data))
    return out


def evaluate_pairs(algorithms: Sequence[Algorithm], tasks: Sequence[Task], algorithm_index,
                   task_index, *, memory: MemoryConfig, max_abs_error: float, seed: int,
                   algorithm_ids, train_steps, valid_steps, record_errors, dtype: str = "float32",
                   op_sets=None, max_batch: int | None = None, return_memory: bool = False,
                   length_buckets: bool = True, devices=None) -> PairResults:
    """The JAX backend of :func:`azero_jax.backends.evaluator.evaluate_pairs` (arguments validated
    there).

    Extra options:
      max_batch: pairs per device call (default 512 on a CPU, 8192 on an accelerator).
      return_memory: also return the final memory of each pair (a debugging aid), as
        attributes ``scalars``, ``vectors``, ``matrices`` of the result.
      length_buckets: pad component lengths to coarse buckets (fewer compiles).
      devices: the devices to shard each batch over along the pair axis (default: all
        local devices; one device means no sharding). Task data are replicated.
    """
    B = len(algorithm_index)
    np_dtype = np.float64 if dtype == "float64" else np.float32
    sets = used_op_sets(algorithms, op_sets)
    sets = tuple(tuple(sorted(s)) for s in sets)
    if isinstance(algorithms, Programs):
        longest = [int(algorithms.size[:, c].max(initial=0)) for c in range(3)]
    else:
        longest = [max((len(a.components[c]) for a in algorithms), default=0) for c in range(3)]
    lengths = tuple(bucket_length(n) if length_buckets else n for n in longest)
    if max_batch is None:
        max_batch = 512 if jax.default_backend() == "cpu" else 8192
    devices = list(jax.local_devices() if devices is None else devices)
    place = _placement(tuple(devices))
    if len(devices) > 1:
        max_batch = -(-max_batch // len(devices)) * len(devices)
    record = tuple(int(k) for k in record_errors) if record_errors else (0, 0)
    mode = write_mode()

    fitness = np.zeros(B, np.float64)
    steps = np.zeros(B, np.int64)
    rec = None
    if record != (0, 0):
        rec = dict(train_errors=np.full((B, record[0]), np.nan),
                   num_train_errors=np.zeros(B, np.int64),
                   valid_errors=np.full((B, record[1]), np.nan),
                   num_valid_errors=np.zeros(B, np.int64))
    memories = {} if return_memory else None

    groups = collections.defaultdict(list)
    for t in sorted(set(task_index.tolist())):
        groups[_task_group_key(tasks[t])].append(t)

    with x64_context(dtype):
        base_key = place.replicate(jax.random.PRNGKey(np.uint32(seed % 2**32)))
        limit = place.replicate(np.asarray(max_abs_error, np_dtype))
        for (F, n_train, n_valid, E, label_size), group_tasks in groups.items():
            slot_of = {t: i for i, t in enumerate(group_tasks)}
            task_data = place.replicate(_stack_tasks(
                [tasks[t] for t in group_tasks], np_dtype, label_size, F))
            is_acc_task = np.array([tasks[t].eval_type == ACCURACY for t in group_tasks])
            index_of_task = np.array([tasks[t].index for t in group_tasks], np.uint32)
            members = np.nonzero(np.isin(task_index, group_tasks))[0]
            tables = [_ComponentExec(sets[c], F, memory, None).branch_table() for c in range(3)]
            vsteps = n_valid if valid_steps is None else min(int(valid_steps), n_valid)
            for start in range(0, len(members), max_batch):
                chunk = members[start:start + max_batch]
                size = bucket_batch(len(chunk), max_batch)
                size = -(-size // len(devices)) * len(devices)
                shape = EvalShape(F, n_train, n_valid, E, label_size, len(group_tasks), memory,
                                  sets, lengths, size, vsteps, record, dtype, return_memory,
                                  mode)
                fn = compiled_evaluator(shape)
                # Pad the chunk with copies of its first pair that do no training.
                padded = np.concatenate([chunk, np.full(size - len(chunk), chunk[0])])
                req = train_steps[padded].copy()
                req[len(chunk):] = 0
                uniq, inverse = np.unique(algorithm_index[padded], return_inverse=True)
                chosen = (algorithms.take(uniq) if isinstance(algorithms, Programs)
                          else [algorithms[a] for a in uniq])
                progs = _program_arrays(chosen, lengths, tables, np_dtype)
                progs = tuple(tuple(part[inverse] for part in comp) for comp in progs)
                slots = np.array([slot_of[t] for t in task_index[padded]], np.int32)
                per_pair = place.split((
                    progs, slots, index_of_task[slots],
                    (algorithm_ids[algorithm_index[padded]] % 2**32).astype(np.uint32),
                    np.minimum(req, 2**31 - 1).astype(np.int32), is_acc_task[slots]))
                out = fn(*per_pair, task_data, base_key, limit)
                if len(devices) > 1:
                    COUNTERS.sharded_calls += 1
                    COUNTERS.shard_devices = len(out["fitness"].sharding.device_set)
                out = jax.device_get(out)
                n = len(chunk)
                fitness[chunk] = out["fitness"][:n]
                steps[chunk] = out["train_steps"][:n]
                if rec is not None:
                    rec["train_errors"][chunk] = out["train_errors"][:n, :record[0]]
                    rec["num_train_errors"][chunk] = out["num_train_errors"][:n]
                    rec["valid_errors"][chunk] = out["valid_errors"][:n, :record[1]]
                    rec["num_valid_errors"][chunk] = out["num_valid_errors"][:n]
                if memories is not None:
                    for name in ("scalars", "vectors", "matrices"):
                        memories.setdefault(name, {})
                        for i, pair in enumerate(chunk):
                            memories[name][int(pair)] = out[name][i]
    results = PairResults(fitness, steps, **(rec or {}))
    if memories is not None:
        for name, by_pair in memories.items():
            setattr(results, name, [by_pair[i] for i in range(B)])
    return results
