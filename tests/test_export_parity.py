"""Exported code and the JAX evaluator compute every op bit for bit alike.

Both instantiate the same expression template per op (``OpSpec.jax``): the evaluator
compiles it into its ``lax.switch`` branches, export writes it into straight-line code.
This test runs one program holding every op once, on random memory, through the
exported ``predict`` and through the evaluator's instruction step, and compares every
cell's bits (float32 and float64; feature sizes on both sides of the F >= 8 kernels).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azero_jax.analysis import export as ex
from azero_jax.backends.evaluator import MemoryConfig
from azero_jax.backends.jax.jax_evaluator import _ComponentExec, x64_context
from azero_jax.core import ops, program

CODES = tuple(range(1, ops.NUM_OPS))  # every op but NO_OP
FIRST_OUT = 3  # inputs live at addresses 1 and 2; op i writes its own cell FIRST_OUT + i
SIZE = FIRST_OUT + len(CODES)
MEMORY = MemoryConfig(SIZE, SIZE, SIZE)


def _program(rng) -> program.Algorithm:
    """Predict = every op once, reading cells 1 and 2, each writing a cell of its own."""
    records = []
    for i, code in enumerate(CODES):
        spec = ops.OPS[code]
        d = float(rng.normal())
        f0, f1, f2 = (float(np.float32(v)) for v in rng.normal(size=3))
        if spec.index_fields:  # const-set indices are fractions in [0, 1)
            f0, f1 = (float(np.float32(v)) for v in rng.uniform(0, 0.999, size=2))
            if code == ops.Op.VECTOR_CONST_SET_OP:
                f1 = float(np.float32(rng.normal()))
        records.append(program.instruction(code, 1, 2, FIRST_OUT + i, d, f0, f1, f2))
    return program.Algorithm(program.noop_component(0), program.as_component(records),
                             program.noop_component(0))


def _bits(x: np.ndarray) -> np.ndarray:
    """The bit patterns of ``x``, every NaN mapped to one pattern (payloads may differ)."""
    x = np.where(np.isnan(x), np.nan, x)
    return x.view(np.uint64 if x.dtype == np.float64 else np.uint32)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("F", [3, 9])
def test_every_op_exports_bit_identical_to_the_jax_evaluator(F, dtype):
    rng = np.random.default_rng(F)
    algorithm = _program(rng)
    np_dtype = np.dtype(dtype)
    memory = (rng.normal(size=SIZE).astype(np_dtype), rng.normal(size=(SIZE, F)).astype(np_dtype),
              rng.normal(size=(SIZE, F, F)).astype(np_dtype))
    key = jax.random.PRNGKey(7)
    num_random = sum(ops.OPS[c].random for c in CODES)

    # Exported: predict over a state holding the same memory (s0 / v0 are the harness's).
    model = ex.export(algorithm, F, dtype=dtype)
    state = {}
    for name in ex.state_cells(algorithm):
        state[name] = memory["svm".index(name[0])][int(name[1:])]
    exported, _ = model.predict(state, memory[1][0], key)

    # Evaluator: its instruction step, one instruction after the other, each random
    # instruction drawing from the key export gives it.
    with x64_context(dtype):
        dt = jnp.float64 if dtype == "float64" else jnp.float32
        component = _ComponentExec(CODES, F, MEMORY, dt)
        table = component.branch_table()
        step = jax.jit(component.step)
        keys = jax.random.split(key, num_random)
        mem = tuple(jnp.asarray(m) for m in memory)
        mem = (mem[0].at[0].set(0), mem[1], mem[2])  # Predict's harness: s0 = 0, v0 = x
        random_index = 0
        for record in algorithm.predict:
            code = int(record["op"])
            data = np.array([record[name] for name in ops.DATA_FIELD_NAMES], np.float64)
            # Every instruction gets a key (the switch traces the random ops' branches too).
            instruction_key = keys[min(random_index, num_random - 1)]
            random_index += ops.OPS[code].random
            addresses = np.array([record["in1"], record["in2"], record["out"]], np.int32)
            mem = step(mem, table[code], addresses, data.astype(np_dtype), instruction_key)
        mem = tuple(np.asarray(m) for m in mem)

    for i, code in enumerate(CODES):
        spec = ops.OPS[code]
        cell = f"{spec.out_type.lower()}{FIRST_OUT + i}"
        theirs = mem["SVM".index(spec.out_type)][FIRST_OUT + i]
        ours = np.asarray(exported[cell])
        assert ours.dtype == np_dtype, spec.name
        np.testing.assert_array_equal(_bits(ours), _bits(theirs), err_msg=spec.name)
