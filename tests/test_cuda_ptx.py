"""The ``"cuda"`` backend's kernel compiles to PTX for sm_90 on a machine without a GPU.

Run without the simulator (CI's step 4 runs it as its own command):
``python -m pytest -q -m cuda tests/test_cuda_ptx.py``. Each compile takes about a
minute of one core (numba types and lowers the whole interpreter, NVVM optimises it).
"""

from __future__ import annotations

import re

import pytest

import azero_jax as az
from azero_jax.backends import _eigen_order
from azero_jax.backends.cuda import cuda_evaluator

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module", autouse=True)
def _real_target():
    if cuda_evaluator.simulating():
        pytest.skip("PTX needs the real CUDA target: run this file without "
                    "NUMBA_ENABLE_CUDASIM (CI step 4 does)")


@pytest.mark.parametrize("F, memory, dtype", [(16, (10, 10, 4), "float32"),
                                              (4, (8, 8, 4), "float64")])
def test_kernel_compiles_to_ptx_for_sm90(F, memory, dtype):
    ptx = cuda_evaluator.kernel_ptx(F, az.MemoryConfig(*memory), dtype=dtype, cc=(9, 0))
    assert re.search(r"^\.target sm_90\b", ptx, re.M)
    assert len(re.findall(r"^\.(?:visible )?\.entry ", ptx, re.M)) == 1
    # The pair's memory is per-thread local memory of the compiled size, in the kernel's
    # one depot with the scratch (which NVVM may keep in registers when F is small and
    # every scratch index is a constant; libdevice's trig slow path has its own depot).
    S, V, M = memory
    floats = S + V * F + M * F * F
    scratch = F * F + _eigen_order.SCRATCH
    width = 4 if dtype == "float32" else 8
    depots = [int(n) for n in re.findall(r"\.local \.align \d+ \.b8\s+\S+\[(\d+)\]", ptx)]
    assert any(floats * width <= d <= (floats + scratch) * width + 64 for d in depots), depots
    # One function: the interpreter and the Eigen-order reductions are inlined (no calls
    # but to libdevice/runtime helpers), and float64 mode computes in float64.
    assert "evaluate_pair" not in ptx.split(".entry", 1)[1].split("{", 1)[0]
    assert not re.search(r"call\.uni[^;]*evaluate_pair", ptx)
    if dtype == "float64":
        assert "ld.local.f64" in ptx or "ld.local.v2.f64" in ptx
    else:
        assert "ld.local.f32" in ptx or "ld.local.v2.f32" in ptx or "ld.local.v4.f32" in ptx


def test_ptx_refuses_bad_dtype():
    with pytest.raises(ValueError, match="dtype"):
        cuda_evaluator.kernel_ptx(4, az.MemoryConfig(4, 3, 1), dtype="float16")
