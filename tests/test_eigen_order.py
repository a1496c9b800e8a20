"""Reductions in the reference's summation order (Eigen 3.4, SSE2), bit for bit.

``tests/data/eigen_order.npz`` holds results of the reference's Eigen expressions computed
by C++ (``tools/eigen_order_check.cpp``, g++ -O2 without -march, like the reference's
build) for F = 1..17, 24, 32, 33 on normal, wide-range, cancelling, constant and
negative-zero inputs. The oracle, the CPU kernels (generic and F-specialised copies,
through a Setup that runs every reduction op on that memory) and the JAX op functions
must reproduce every value bit for bit (NaN matching NaN), except the matrix product
for F = 10 and 11 (GEMM paths not modelled, see azero_jax/backends/_eigen_order.py).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import oracle

import azero_jax as az
from azero_jax.backends import _eigen_order

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
    from azero_jax.backends.cpu import cpu_evaluator
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
    import jax
    from azero_jax.backends.jax import jax_ops

    def run(v, w, m, m2):
        def op(code, **operands):  # the expression the JAX evaluator compiles for the op
            return jax_ops.op_function(code, F, v.dtype)(**operands)
        return {
            "norm": op(21, a=v), "dot": op(27, a=v, b=w), "mean": op(50, a=v),
            "std": op(54, a=v), "mnorm": op(34, a=m), "mmean": op(51, a=m),
            "mstd": op(55, a=m), "rowmean": op(52, a=m), "rownorm": op(36, a=m),
            "colnorm": op(35, a=m), "rowstd": op(53, a=m), "matvec": op(31, a=m, b=v),
            "matmul": op(43, a=m, b=m2),
        }
    return jax.jit(run)


@pytest.mark.parametrize("F", SIZES)
def test_jax_ops_match_eigen(F):
    from azero_jax.backends.jax import jax_evaluator as je
    with je.x64_context("float64"):
        run = _jax_ops(F)
        for i, (v, w, m, m2, want) in enumerate(cases(F)):
            got = run(v, w, m, m if m2 is None else m2)
            for name, value in got.items():
                if name in want and not (name == "matmul" and F in UNMODELLED_MATMUL):
                    assert_bitwise(np.asarray(value), want[name], f"jax {name} F={F} case {i}")


# ------------------------------------------------------------- properties of the order

CONSTANT_STD = """def Setup():
  s1 = std(v1)
  s2 = std(v2)
  s3 = std(v3)
  s4 = std(v4)
  s5 = std(v5)
  s6 = std(v6)
  s7 = std(v7)
def Predict():
def Learn():
"""


def _constants(seed, count):
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], count - 7)
    return np.concatenate([[0.1, 0.3, 1 / 3, 0.7, 1e-3, 123.456, -2.2],
                           signs * 10.0 ** rng.uniform(-8, 8, count - 7)])


def _std_of_constants_cpu(F, constants):
    from azero_jax.backends.cpu import cpu_evaluator
    algorithm = az.parse_algorithm(CONSTANT_STD)
    task = az.tasks.unit_test_ones_task(F, 1, 1)
    out = []
    for start in range(0, len(constants), 7):
        chunk = constants[start:start + 7]
        vectors = np.zeros((8, F))
        vectors[1:1 + len(chunk)] = np.asarray(chunk)[:, None]
        result = cpu_evaluator.run_debug(algorithm, task, az.MemoryConfig(8, 8, 1),
                                         train_steps=0, valid_steps=0,
                                         initial_memory=(np.zeros(8), vectors,
                                                         np.zeros((1, F, F))))
        out.extend(result["scalars"][1:1 + len(chunk)])
    return np.array(out)


def _std_of_constants_jax(F, constants):
    import jax
    from azero_jax.backends.jax import jax_evaluator as je
    from azero_jax.backends.jax import jax_ops
    with je.x64_context("float64"):
        std = jax.jit(jax.vmap(lambda v: jax_ops.op_function(54, F, v.dtype)(a=v)))
        return np.asarray(std(np.repeat(np.asarray(constants)[:, None], F, axis=1)))


@pytest.mark.parametrize("F", POWERS_OF_TWO)
def test_std_of_a_constant_vector_is_exactly_zero(F):
    """Eigen adds equal terms exactly in its packet tree: E[x^2] - E[x]^2 is 0."""
    constants = _constants(F, 49)
    oracle_std = [oracle._one_pass_std(np.full(F, c)) for c in constants]
    assert_bitwise(oracle_std, np.zeros(len(constants)), f"oracle F={F}")
    assert_bitwise(_std_of_constants_cpu(F, constants), np.zeros(len(constants)), f"cpu F={F}")
    assert_bitwise(_std_of_constants_jax(F, constants), np.zeros(len(constants)), f"jax F={F}")
    # Left to right the same constants leave residues or NaN: the order is what matters.
    with oracle.variant("sequential"):
        sequential = np.array([oracle._one_pass_std(np.full(F, c)) for c in constants])
    assert F <= 4 or np.any(sequential != 0.0)


@pytest.mark.parametrize("F", sorted(set(DATA["const_F"].tolist())))
def test_std_of_constant_vectors_matches_cpp(F):
    """Including F = 7 and 10, where Eigen's order leaves residues or NaN too."""
    select = DATA["const_F"] == F
    constants, want = DATA["const_c"][select], DATA["const_std"][select]
    if F not in POWERS_OF_TWO:
        assert np.any(want != 0.0)  # the fixture has residues here
    assert_bitwise([oracle._one_pass_std(np.full(F, c)) for c in constants], want,
                   f"oracle F={F}")
    assert_bitwise(_std_of_constants_cpu(F, constants), want, f"cpu F={F}")
    assert_bitwise(_std_of_constants_jax(F, constants), want, f"jax F={F}")


@pytest.mark.parametrize("F", [F for F in SIZES if F >= 11])
def test_long_matrix_sums_follow_the_two_accumulator_loop(F):
    """Whole-matrix sums too long to unroll run Eigen's loop, not the packet tree."""
    n = F * F
    assert 2 * n - 1 > 2 * _eigen_order.UNROLLING_LIMIT  # the loop's territory
    loop_differs_from_tree = False
    for v, w, m, m2, want in cases(F):
        terms = list(m.ravel())
        loop = oracle._two_accumulator_sum(terms)
        assert_bitwise(loop / n, want["mmean"], f"two-accumulator mean F={F}")
        packets = [(terms[i], terms[i + 1]) for i in range(0, n - 1, 2)]
        lanes = oracle._halving_tree(packets, oracle._add_packets)
        tree = lanes[0] + lanes[1] + (terms[-1] if n % 2 else 0.0)
        loop_differs_from_tree |= bool(bits(tree / n) != bits(want["mmean"]))
    assert loop_differs_from_tree  # the inputs tell the two orders apart


@pytest.mark.parametrize("F", [F for F in SIZES if 2 <= F <= 55])
def test_vector_sums_follow_the_packet_tree(F):
    """Vector sums are trees of packets: left to right differs on these inputs."""
    differs = False
    for v, w, m, m2, want in cases(F):
        assert_bitwise(oracle._eigen_sum(v, oracle._PLAIN) / F, want["mean"], f"tree F={F}")
        differs |= bool(bits(oracle._sequential_sum(v) / F) != bits(want["mean"]))
    assert differs or F <= 3
