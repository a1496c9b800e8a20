"""Reductions in the reference's summation order (Eigen 3.4, SSE2), bit for bit.

``tests/data/eigen_order.npz`` holds results of the reference's Eigen expressions computed
by C++ (``tools/eigen_order_check.cpp``, g++ -O2 without -march, like the reference's
build) for F = 1..17, 24, 32, 33 on normal, wide-range, cancelling, constant and
negative-zero inputs. The oracle, the CPU kernels (generic and F-specialised copies,
through a Setup that runs every reduction op on that memory) and the JAX op functions
must reproduce every value bit for bit (NaN matching NaN), except the matrix product
for F = 10 and 11 (GEMM paths not modelled, see azero_jax/_eigen_order.py).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import oracle

import azero_jax as az
from azero_jax import _eigen_order

FIXTURE = os.path.join(os.path.dirname(__file__), "data", "eigen_order.npz")
DATA = np.load(FIXTURE, allow_pickle=False)
SIZES = sorted(int(k[1:-2]) for k in DATA.files if k.endswith("_v"))
SCALARS = ("norm", "dot", "mean", "std", "mnorm", "mmean", "mstd")
VECTORS = ("rowmean", "rownorm", "colnorm", "rowstd", "matvec")
UNMODELLED_MATMUL = (10, 11)
POWERS_OF_TWO = (2, 4, 8, 16, 32)

# Every reduction op on v1, v2, m0, m1, with its output cell.
REDUCTIONS = """def Setup():
  s1 = norm(v1)
  s2 = dot(v1, v2)
  s3 = mean(v1)
  s4 = std(v1)
  s5 = norm(m0)
  s6 = mean(m0)
  s7 = std(m0)
  v3 = mean(m0, axis=1)
  v4 = norm(m0, axis=1)
  v5 = norm(m0, axis=0)
  v6 = std(m0, axis=1)
  v7 = dot(m0, v1)
  m2 = matmul(m0, m1)
def Predict():
def Learn():
"""


def bits(x) -> np.ndarray:
    """int64 views, every NaN mapped to one pattern (its payload is not compared)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.isnan(x), np.float64(np.nan), x).view(np.int64)


def assert_bitwise(got, want, what):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    bad = np.flatnonzero(bits(got).ravel() != bits(want).ravel())
    assert bad.size == 0, (f"{what}: {bad.size} of {want.size} differ, first at {bad[0]}: "
                           f"{got.ravel()[bad[0]]!r} != {want.ravel()[bad[0]]!r}")


def cases(F):
    """(v, w, m, m2 or None, expected dict) per stored case."""
    n = DATA[f"F{F}_v"].shape[0]
    for i in range(n):
        want = dict(zip(SCALARS, DATA[f"F{F}_s"][i]))
        for name in VECTORS:
            want[name] = DATA[f"F{F}_{name}"][i]
        m2 = None
        if f"F{F}_matmul" in DATA:
            want["matmul"] = DATA[f"F{F}_matmul"][i]
            m2 = DATA[f"F{F}_m2"][i]
        yield DATA[f"F{F}_v"][i], DATA[f"F{F}_w"][i], DATA[f"F{F}_m"][i], m2, want


# ---------------------------------------------------------------------------- the oracle


@pytest.mark.parametrize("F", SIZES)
def test_oracle_matches_eigen(F):
    for i, (v, w, m, m2, want) in enumerate(cases(F)):
        got = {
            "norm": math.sqrt(oracle._sum_of_squares(v)), "dot": oracle._dot(v, w),
            "mean": oracle._sum(v) / F, "std": oracle._one_pass_std(v),
            "mnorm": math.sqrt(oracle._sum_of_squares(m)), "mmean": oracle._sum(m) / F ** 2,
            "mstd": oracle._one_pass_std(m),
            "rowmean": oracle._sum(m, axis=1) / F,
            "rownorm": np.sqrt(oracle._sum_of_squares(m, axis=1)),
            "colnorm": np.sqrt(oracle._sum_of_squares(m, axis=0)),
            "rowstd": [oracle._one_pass_std(row.copy()) for row in m],
            "matvec": oracle._matvec(m, v),
        }
        if m2 is not None and F not in UNMODELLED_MATMUL:
            got["matmul"] = oracle._matmul(m, m2)
        for name, value in got.items():
            assert_bitwise(value, want[name], f"oracle {name} F={F} case {i}")


# ------------------------------------------------------------------- the CPU kernels


def _cpu_memories(F, specialize):
    """Final memories of the REDUCTIONS Setup run by the CPU kernels on every case."""
    from azero_jax import cpu_evaluator
    algorithm = az.parse_algorithm(REDUCTIONS)
    task = az.tasks.unit_test_ones_task(F, 1, 1)
    previous = os.environ.get("AZERO_JAX_CPU_SPECIALIZE")
    os.environ["AZERO_JAX_CPU_SPECIALIZE"] = "1" if specialize else "0"
    try:
        for v, w, m, m2, want in cases(F):
            vectors = np.zeros((8, F))
            vectors[1], vectors[2] = v, w
            matrices = np.zeros((3, F, F))
            matrices[0] = m
            matrices[1] = m if m2 is None else m2
            out = cpu_evaluator.run_debug(algorithm, task, az.MemoryConfig(8, 8, 3),
                                          train_steps=0, valid_steps=0,
                                          initial_memory=(np.zeros(8), vectors, matrices))
            yield out, want
    finally:
        if previous is None:
            del os.environ["AZERO_JAX_CPU_SPECIALIZE"]
        else:
            os.environ["AZERO_JAX_CPU_SPECIALIZE"] = previous


def _check_backend_memory(scalars, vectors, matrices, want, what, F):
    for k, name in enumerate(SCALARS):
        assert_bitwise(scalars[1 + k], want[name], f"{what} {name}")
    for k, name in enumerate(VECTORS):
        assert_bitwise(vectors[3 + k], want[name], f"{what} {name}")
    if "matmul" in want and F not in UNMODELLED_MATMUL:
        assert_bitwise(matrices[2], want["matmul"], f"{what} matmul")


@pytest.mark.parametrize("F", SIZES)
def test_cpu_kernels_match_eigen(F):
    for i, (out, want) in enumerate(_cpu_memories(F, specialize=False)):
        _check_backend_memory(out["scalars"], out["vectors"], out["matrices"], want,
                              f"cpu F={F} case {i}", F)


@pytest.mark.parametrize("F", POWERS_OF_TWO)
def test_cpu_specialised_kernels_match_eigen(F):
    for i, (out, want) in enumerate(_cpu_memories(F, specialize=True)):
        _check_backend_memory(out["scalars"], out["vectors"], out["matrices"], want,
                              f"cpu (F={F} copy) case {i}", F)


# ------------------------------------------------------------------------- the JAX ops


def _jax_ops(F):
    """A jitted function computing every reduction op's JAX implementation."""
    jax = pytest.importorskip("jax")
    from azero_jax import jax_evaluator as je

    def run(v, w, m, m2):
        def op(code, **operands):
            return je._OP_IMPLS[code](je._Args(F=F, dt=v.dtype, **operands))
        return {
            "norm": op(21, va=v), "dot": op(27, va=v, vb=w), "mean": op(50, va=v),
            "std": op(54, va=v), "mnorm": op(34, ma=m), "mmean": op(51, ma=m),
            "mstd": op(55, ma=m), "rowmean": op(52, ma=m), "rownorm": op(36, ma=m),
            "colnorm": op(35, ma=m), "rowstd": op(53, ma=m), "matvec": op(31, ma=m, vb=v),
            "matmul": op(43, ma=m, mb=m2),
        }
    return jax.jit(run)


@pytest.mark.parametrize("F", SIZES)
def test_jax_ops_match_eigen(F):
    from azero_jax import jax_evaluator as je
    with je.x64_context("float64"):
        run = _jax_ops(F)
        for i, (v, w, m, m2, want) in enumerate(cases(F)):
            got = run(v, w, m, m if m2 is None else m2)
            for name, value in got.items():
                if name in want and not (name == "matmul" and F in UNMODELLED_MATMUL):
                    assert_bitwise(np.asarray(value), want[name], f"jax {name} F={F} case {i}")
