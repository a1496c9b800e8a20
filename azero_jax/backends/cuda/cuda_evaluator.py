"""The CUDA backend: the CPU backend's numba interpreter compiled as a CUDA kernel.

``azero_jax.evaluate(..., backend="cuda")`` runs this module; it takes the arguments of
the ``"cpu"`` backend (train budgets, recorded FEC errors, the abort rules of spec §4.4,
early stopping, epochs, accuracy and RMS fitness) plus ``dtype`` (``"float64"`` or
``"float32"``) and returns the same :class:`~azero_jax.backends.evaluator.PairResults`. It needs
the optional ``numba-cuda`` package (``pip install azero_jax[cuda]``).

Design
------
*One source of op semantics.* The kernel does not restate any op. It compiles the very
Python functions the CPU backend runs -- :func:`azero_jax.backends.cpu._cpu_kernels.evaluate_pair`
(the evaluation loop and the dispatch chain of all 65 ops), its helpers and the
Eigen-order reductions of :mod:`azero_jax.backends._eigen_order` -- as CUDA device functions: each
function's code object is re-bound to a copy of its module's globals in which every
numba-jitted helper is replaced by its device-function twin (:func:`_device_module`).
Programs are decoded by the CPU backend's own decoder (operands become memory offsets,
NO_OPs are dropped, the evaluation loop's pseudo-ops are laid around the components),
and the F-specialised copies of :mod:`azero_jax.backends.cpu._cpu_specialize` give the kernel F as a
compile-time constant exactly as on the CPU. Device functions are force-inlined by
LLVM (``forceinline``), so the kernel is one function without calls; numba's IR-level
inlining (``inline="always"``) gives the same code but compiles several times slower.

*Which threads share a program.* One thread runs one (program, task) pair from Setup to
the last validation example. Pairs are sorted by feature size, then by program, so the
threads of a warp mostly run the same program on different tasks: their instruction
streams coincide until their data make them branch differently (an early abort, a
different number of examples). Opcodes are then uniform across the warp and each
instruction executes only its own op -- unlike a vmapped ``lax.switch``, which computes
every allowed branch for every pair.

*Where memory lives.* A pair's whole memory (``S + V F + M F^2`` floats) and the
reductions' scratch are per-thread arrays (``cuda.local.array``) with sizes fixed when the
kernel is compiled (one kernel per feature size, memory size and dtype, cached in this
process). Local memory is private and interleaved across the threads of a warp by the
hardware, so a warp running the same instruction reads and writes coalesced lines that
stay in L1 (local stores are write-back there, unlike global stores). Programs, task data
(features, labels, epoch orders) and outputs live in global memory; all pairs read the
same task arrays, which stay in L2. The task arrays are uploaded once per task set (a
search evaluates the same tasks call after call); programs and pairs once per call.

*Compile cost.* numba types the whole interpreter and NVVM optimises it once per feature
size, memory size and dtype in a process: about 30 s of one core on this project's CPU
machine (measured for the PTX of F = 16, float32). The device script's budget includes it.

*How examples stream in.* Exactly as on the CPU: the pseudo-op TRAIN_NEXT copies the next
example (in the task's stored epoch order) from global memory into ``v0`` and jumps back
to Predict; no host round trip happens during a pair's evaluation.

*Precision.* ``float64`` keeps memory, task data and scratch in float64 and matches the
CPU backend: under numba's CUDA simulator bit for bit (the tests); on a GPU up to the
rounding of libdevice's transcendental functions and fused multiply-adds. ``float32``
stores memory, task data and scratch in float32 (half the local-memory traffic); the
arithmetic of an op may run wider before its result is rounded into memory, and the
fitness, losses and recorded errors are accumulated in float64.

*Random ops* draw from the CPU backend's counter-based streams (splitmix64 keyed by the
pair's seed, see :mod:`azero_jax.backends.cpu._cpu_kernels`): both backends draw the same numbers.

*What next.* For large F (matrix-heavy programs) a warp per pair with lanes over vector
and matrix entries, the memory in shared memory, would replace a thread's serial loops
over F^2 entries by parallel ones; chosen per F and op mix. For small F, memory in
registers needs compile-time addresses: per-program specialisation (one kernel per
distinct program, as a JIT of the search's best candidates) would be the step there.

Testing without a GPU: ``NUMBA_ENABLE_CUDASIM=1`` runs the kernel in numba's CUDA
simulator (Python, slow: small programs and tasks), and :func:`kernel_ptx` compiles it to
PTX for a chosen compute capability on a machine without a CUDA driver.
"""

from __future__ import annotations

import collections
import math
import threading
import types
from typing import Sequence

import numpy as np

from azero_jax.backends import _eigen_order
from azero_jax.backends.cpu import _cpu_kernels
from azero_jax.backends.cpu import _cpu_specialize
from azero_jax.core.errors import ConfigError
from azero_jax.core.memory import MemoryConfig
from azero_jax.core.results import PairResults

try:  # a module global: the simulator swaps this name for its per-thread context
    from numba import cuda
except ImportError:  # pragma: no cover - numba-cuda not installed
    cuda = None

_DTYPES = ("float32", "float64")
_LOCK = threading.RLock()
_DEVICE_MODULES: dict[tuple, types.ModuleType] = {}
_KERNELS: dict[tuple, object] = {}
_DEVICE_TASKS: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()


def _cuda():
    """``numba.cuda``, or a clear error when numba-cuda is not installed."""
    if cuda is None:
        raise ConfigError("backend 'cuda' needs numba-cuda: pip install 'azero_jax[cuda]'")
    return cuda


def simulating() -> bool:
    """Whether numba runs CUDA kernels in its Python simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    import numba
    return bool(numba.config.ENABLE_CUDASIM)


def available() -> bool:
    """Whether a CUDA device (or the simulator) can run the kernel here."""
    return cuda is not None and (simulating() or bool(cuda.is_available()))


def device_name() -> str:
    """The CUDA device's name ("simulator" under NUMBA_ENABLE_CUDASIM)."""
    if simulating():
        return "simulator"
    name = _cuda().get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def _ieee(fn, fallback):
    """``fn`` with IEEE results where Python's math raises (the simulator only)."""
    def call(v):
        try:
            return fn(v)
        except (ValueError, OverflowError):
            with np.errstate(all="ignore"):
                return float(fallback(np.float64(v)))
    return call


def _simulator_math() -> types.ModuleType:
    """``math`` whose functions return inf/NaN instead of raising, as they do on a GPU."""
    shim = types.ModuleType("math_ieee")
    shim.__dict__.update(math.__dict__)
    for name, fallback in (("exp", np.exp), ("log", np.log), ("sqrt", np.sqrt),
                           ("sin", np.sin), ("cos", np.cos), ("tan", np.tan),
                           ("asin", np.arcsin), ("acos", np.arccos), ("atan", np.arctan)):
        setattr(shim, name, _ieee(getattr(math, name), fallback))
    return shim


def _device_module(module, replacements: dict) -> types.ModuleType:
    """Device-function twins of every numba-jitted function of ``module``.

    Each function's code runs with a copy of the module's globals in which the jitted
    functions are replaced by their twins (so calls between them stay on the device) and
    ``replacements`` are applied (another module's twins, the simulator's math).
    """
    import numba
    _cuda()
    decorate = (cuda.jit(device=True) if simulating()
                else cuda.jit(device=True, forceinline=True))
    namespace = dict(module.__dict__)
    twins = types.ModuleType(module.__name__ + "_cuda")
    for name, value in module.__dict__.items():
        if isinstance(value, numba.core.dispatcher.Dispatcher):
            fn = value.py_func
            twin = decorate(types.FunctionType(fn.__code__, namespace, fn.__name__,
                                               fn.__defaults__, fn.__closure__))
            namespace[name] = twin
            setattr(twins, name, twin)
    namespace.update(replacements)
    return twins


def _pair_function(F: int):
    """The device twin of ``evaluate_pair`` from the CPU kernels specialised for F."""
    kernels = _cpu_specialize.kernels_for(F)
    key = (kernels.__name__, simulating())
    with _LOCK:
        twins = _DEVICE_MODULES.get(key)
        if twins is None:
            extra = {"math": _simulator_math()} if simulating() else {}
            eigen = _device_module(_eigen_order, extra)
            twins = _device_module(kernels, {"_eo": eigen, **extra})
            _DEVICE_MODULES[key] = twins
    return twins.evaluate_pair


def _kernel_function(F: int, mem_size: int, tmp_size: int, dtype: str):
    """The Python kernel (not yet compiled): one thread per pair ``first + grid index``."""
    pair = _pair_function(F)
    from numba import types as nbtypes
    value_type = nbtypes.float32 if dtype == "float32" else nbtypes.float64

    def kernel(ins, dat, progs, tasks, xs, ys, orders, pairs, first, count, S, V, M,
               valid_steps, max_abs_error, out_fitness, out_steps, terr, nterr, verr, nverr,
               init_mem):
        g = cuda.grid(1)
        if g < count:
            mem = cuda.local.array(mem_size, value_type)
            tmp = cuda.local.array(tmp_size, value_type)
            pair(first + g, ins, dat, progs, tasks, xs, ys, orders, pairs, S, V, M,
                 valid_steps, max_abs_error, mem, tmp, out_fitness, out_steps, terr, nterr,
                 verr, nverr, init_mem)

    if simulating():
        def simulated(*args):
            # numpy scalars warn on IEEE overflow and on the streams' uint64 wraparound;
            # each simulated thread has its own error state.
            with np.errstate(all="ignore"):
                kernel(*args)
        return simulated
    return kernel


def _compiled_kernel(F: int, mem_size: int, tmp_size: int, dtype: str):
    key = (int(F), int(mem_size), int(tmp_size), dtype, simulating())
    with _LOCK:
        kernel = _KERNELS.get(key)
        if kernel is None:
            kernel = _cuda().jit(_kernel_function(F, mem_size, tmp_size, dtype))
            _KERNELS[key] = kernel
    return kernel


def _device_tasks(pack, dtype: str) -> tuple:
    """The task table, features, labels and epoch orders on the device, uploaded once per
    packed task set (a search evaluates the same tasks call after call)."""
    key = (id(pack), dtype)
    with _LOCK:
        hit = _DEVICE_TASKS.get(key)
        if hit is not None and hit[0] is pack:
            _DEVICE_TASKS.move_to_end(key)
            return hit[1]
    value = np.float32 if dtype == "float32" else np.float64
    put = _cuda().to_device
    arrays = (put(pack.table), put(pack.x.astype(value)), put(pack.y.astype(value)),
              put(pack.orders))
    with _LOCK:
        _DEVICE_TASKS[key] = (pack, arrays)  # the pack kept alive: its id stays its own
        while len(_DEVICE_TASKS) > 8:
            _DEVICE_TASKS.popitem(last=False)
    return arrays


def _sizes(F: int, memory: MemoryConfig) -> tuple[int, int]:
    """Floats of a pair's memory and of its scratch (staged F x F results, then reductions)."""
    return (memory.num_scalars + memory.num_vectors * F + memory.num_matrices * F * F,
            F * F + _eigen_order.SCRATCH)


def kernel_signature(dtype: str = "float64") -> str:
    """The numba signature the kernel is compiled for (arrays as :func:`evaluate_pairs` passes)."""
    v = "float32" if dtype == "float32" else "float64"
    return (f"void(uint32[::1], float64[::1], int64[::1], int64[:, ::1], {v}[::1], {v}[::1], "
            "int64[::1], int64[:, ::1], int64, int64, int64, int64, int64, int64, float64, "
            "float64[::1], int64[::1], float64[:, ::1], int64[::1], float64[:, ::1], "
            f"int64[::1], {v}[::1])")


def kernel_ptx(F: int, memory: MemoryConfig, dtype: str = "float64",
               cc: tuple[int, int] = (9, 0)) -> str:
    """PTX of the kernel for feature size F, compiled for compute capability ``cc``.

    Works without a GPU: the device functions, which numba compiles for the current
    device's compute capability, are told ``cc`` when no CUDA driver is present.
    """
    if simulating():
        raise ConfigError("kernel_ptx needs the real CUDA target: unset NUMBA_ENABLE_CUDASIM")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    _cuda()
    mem_size, tmp_size = _sizes(F, memory)
    kernel = _kernel_function(F, mem_size, tmp_size, dtype)
    from numba.cuda import dispatcher
    saved = dispatcher.get_current_device
    if not cuda.is_available():
        dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)
    try:
        ptx, _ = cuda.compile_ptx(kernel, kernel_signature(dtype), cc=cc)
    finally:
        dispatcher.get_current_device = saved
    return ptx


def evaluate_pairs(algorithms, tasks: Sequence, algorithm_index, task_index, *,
                   memory: MemoryConfig, max_abs_error: float, seed: int, algorithm_ids,
                   train_steps, valid_steps: int | None,
                   record_errors: tuple[int, int] | None, dtype: str = "float64",
                   threads_per_block: int | None = None,
                   dead_code_elimination: bool | None = None) -> PairResults:
    """Evaluates B (algorithm, task) pairs on the GPU, one thread per pair (spec §4).

    Arguments are those of :func:`azero_jax.backends.evaluator.evaluate_pairs` (validated there),
    plus:

    Args:
      dtype: ``"float64"`` (agrees with the cpu backend) or ``"float32"``.
      threads_per_block: CUDA block size (default 128; 32 under the simulator).
      dead_code_elimination: drop instructions that cannot reach a prediction, as the cpu
        backend does (:mod:`azero_jax.backends.cpu.liveness`; default on, ``AZERO_JAX_CPU_DCE=0``
        off).
    """
    from azero_jax.backends.cpu import cpu_evaluator

    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    if not available():
        raise ConfigError("backend 'cuda' found no CUDA device (numba.cuda.is_available() is "
                          "False); use backend 'cpu' or 'jax', or NUMBA_ENABLE_CUDASIM=1 to "
                          "simulate")
    algorithm_index, task_index, algorithm_ids, train_steps, kt, kv, valid_limit = (
        cpu_evaluator._normalize(algorithms, tasks, algorithm_index, task_index, algorithm_ids,
                                 train_steps, valid_steps, record_errors))
    B = len(algorithm_index)
    if threads_per_block is None:
        threads_per_block = 32 if simulating() else 128
    threads_per_block = int(threads_per_block)
    if threads_per_block < 1:
        raise ValueError(f"threads_per_block must be >= 1, got {threads_per_block}")

    outputs = cpu_evaluator._outputs(B, kt, kv)
    if B:
        if dead_code_elimination is None:
            dead_code_elimination = cpu_evaluator.dead_code_elimination_default()
        pack, ins, dat, progs, pairs, _, _ = cpu_evaluator._prepare(
            algorithms, tasks, algorithm_index, task_index, memory, seed, algorithm_ids,
            train_steps, bool(dead_code_elimination))
        K = _cpu_kernels
        pair_f = pack.table[pairs[:, K.P_TASK], K.T_F]
        # Pairs of one program side by side (within one feature size): a warp then runs
        # mostly one instruction stream.
        order = np.lexsort((pairs[:, K.P_PROG], pair_f))
        pairs = np.ascontiguousarray(pairs[order])
        pair_f = pair_f[order]
        put = cuda.to_device
        d_args = (put(ins), put(dat), put(progs), *_device_tasks(pack, dtype), put(pairs))
        d_out = [put(array) for array in cpu_evaluator._outputs(B, kt, kv)]
        init_mem = put(np.zeros(0, dtype=np.float32 if dtype == "float32" else np.float64))
        S, V, M = memory.num_scalars, memory.num_vectors, memory.num_matrices
        boundaries = np.flatnonzero(np.diff(pair_f)) + 1
        for first, end in zip(np.r_[0, boundaries], np.r_[boundaries, B]):
            F = int(pair_f[first])
            mem_size, tmp_size = _sizes(F, memory)
            kernel = _compiled_kernel(F, mem_size, tmp_size, dtype)
            count = int(end - first)
            blocks = (count + threads_per_block - 1) // threads_per_block
            kernel[blocks, threads_per_block](*d_args, int(first), count, S, V, M, valid_limit,
                                             float(max_abs_error), *d_out, init_mem)
        for target, source in zip(outputs, d_out):
            target[order] = source.copy_to_host()
    if record_errors is None:
        return PairResults(*outputs[:2])
    return PairResults(*outputs)
