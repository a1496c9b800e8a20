"""Writes ``tests/data/eigen_order.npz``: Eigen 3.4 reduction results computed by C++.

The tests check the project's reductions against these values bit for bit, without a
compiler. This script builds ``tools/eigen_order_check.cpp`` the way the reference was
built (g++ -O2, no -march: SSE2; needs ``g++`` and ``libeigen3-dev``), feeds it inputs
and stores inputs and outputs.

Contents, for every F in SIZES (``F{F}_`` prefix):
  * ``v``, ``w`` [cases, F], ``m``, ``m2`` [cases, F, F]: inputs (cases: standard normal,
    signed magnitudes over 12 decades, large values with small noise (cancellation),
    constants, negative zeros);
  * ``s`` [cases, 7]: norm(v), dot(v, w), mean(v), std(v), norm(m), mean(m), std(m);
  * ``rowmean``, ``rownorm``, ``colnorm``, ``rowstd``, ``matvec`` [cases, F];
  * ``matmul`` [cases, F, F]: m @ m2, for F in MATMUL_SIZES (``m2`` is stored only there).
And ``const_F`` [K] with ``const_c`` [K], ``const_std`` [K]: std(c * ones(F)) for many
constants c at F in {2, 4, 7, 8, 10, 16, 32}.

Usage: python tools/eigen_order_fixture.py [--out tests/data/eigen_order.npz] [--binary B]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile

import numpy as np

# Every F up to 17 (the unrolled trees of all shapes, the loops of matrices from F = 8),
# and longer loops.
SIZES = tuple(range(1, 18)) + (24, 32, 33)
CONST_SIZES = (2, 4, 7, 8, 10, 16, 32)
MATMUL_SIZES = tuple(range(1, 13)) + (16, 32)
HERE = os.path.dirname(os.path.abspath(__file__))


def build(workdir: str) -> str:
    binary = os.path.join(workdir, "eigen_order_check")
    subprocess.run(["g++", "-O2", "-std=c++17", "-I/usr/include/eigen3",
                    os.path.join(HERE, "eigen_order_check.cpp"), "-o", binary], check=True)
    return binary


def cases(F: int, rng: np.random.Generator):
    """Lists of (v, w, m, m2) inputs for one F."""
    def normal(*shape):
        return rng.standard_normal(shape)

    def wide(*shape):
        return rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(-6, 6, shape)

    def cancel(*shape):
        return 1e8 * rng.choice([-1.0, 1.0], shape) + normal(*shape)

    out = []
    for make in (normal, wide, cancel):
        out.append((make(F), make(F), make(F, F), make(F, F)))
    for c in (0.3, 0.1, 1 / 3, -0.7):
        out.append((np.full(F, c), np.full(F, c), np.full((F, F), c), np.full((F, F), c)))
    zeros = -np.zeros(F)
    out.append((zeros, np.ones(F), -np.ones((F, F)), np.ones((F, F))))
    return out


def run(binary: str, items) -> list[np.ndarray]:
    lines = []
    for v, w, m, m2 in items:
        values = [len(v)] + [x.hex() for x in np.concatenate([v, w, m.ravel(), m2.ravel()])]
        lines.append(" ".join(str(x) for x in values))
    result = subprocess.run([binary], input="\n".join(lines) + "\n", capture_output=True,
                            text=True, check=True)
    return [np.array([float.fromhex(t) for t in line.split()])
            for line in result.stdout.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "..", "tests", "data",
                                                      "eigen_order.npz"))
    parser.add_argument("--binary", help="an already built eigen_order_check (skips the build)")
    args = parser.parse_args()
    rng = np.random.default_rng(20261206)
    arrays = {}
    with tempfile.TemporaryDirectory() as workdir:
        binary = args.binary or build(workdir)
        for F in SIZES:
            items = cases(F, rng)
            rows = run(binary, items)
            arrays[f"F{F}_v"] = np.stack([c[0] for c in items])
            arrays[f"F{F}_w"] = np.stack([c[1] for c in items])
            arrays[f"F{F}_m"] = np.stack([c[2] for c in items])
            if F in MATMUL_SIZES:
                arrays[f"F{F}_m2"] = np.stack([c[3] for c in items])
            out = np.stack(rows)
            arrays[f"F{F}_s"] = out[:, :7]
            for k, name in enumerate(("rowmean", "rownorm", "colnorm", "rowstd", "matvec")):
                arrays[f"F{F}_{name}"] = out[:, 7 + k * F: 7 + (k + 1) * F]
            if F in MATMUL_SIZES:
                arrays[f"F{F}_matmul"] = out[:, 7 + 5 * F:].reshape(-1, F, F)
        const_f, const_c, const_std = [], [], []
        for F in CONST_SIZES:
            constants = np.concatenate([[0.3, 0.1, 1 / 3, 0.7, 1e-3, 123.456],
                                        rng.uniform(-10, 10, 34)])
            items = [(np.full(F, c), np.full(F, c), np.zeros((F, F)), np.zeros((F, F)))
                     for c in constants]
            rows = run(binary, items)
            const_f += [F] * len(constants)
            const_c += list(constants)
            const_std += [r[3] for r in rows]
        arrays["const_F"] = np.array(const_f)
        arrays["const_c"] = np.array(const_c)
        arrays["const_std"] = np.array(const_std)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: {len(arrays)} arrays")


if __name__ == "__main__":
    main()
