"""Shared fixtures of the test suite: the oracle on sys.path, backends, random programs.

* ``tests/`` is put on ``sys.path`` so tests ``import oracle`` (the independent NumPy
  interpreter of ``tests/oracle.py``).
* :func:`require_backend` imports an evaluator backend. Both backends are core
  dependencies, so a backend that does not import fails the tests that use it: it is
  never skipped (only the optional extras -- Ray, scikit-learn, numba-cuda -- are, by
  the tests that need them).
* :class:`ProgramGenerator` makes random algorithms (any op mix, random lengths,
  edge-value constants) reproducibly from a seed; tests draw from it.
* The larger sweeps are marked ``slow`` (pyproject's default ``-m 'not gpu and not
  slow'`` leaves them out; ``pytest -m slow tests/test_oracle_differential.py`` runs them).
"""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import oracle  # noqa: E402  (tests/oracle.py)

from azero_jax.core import program as program_lib  # noqa: E402

BACKENDS = ("jax", "cpu")


BACKEND_MODULES = {"jax": "azero_jax.backends.jax.jax_evaluator",
                   "cpu": "azero_jax.backends.cpu.cpu_evaluator"}


def require_backend(name: str) -> str:
    """Imports backend ``name``'s module and returns ``name``.

    A broken import raises (the test fails with the import error): a regression in a
    backend must not turn the semantics suite into skipped tests.
    """
    importlib.import_module(BACKEND_MODULES[name])
    return name


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each test using it runs once per backend ('jax' float64, 'cpu')."""
    return require_backend(request.param)


def backend_kwargs(backend: str) -> dict:
    """evaluate_pairs keyword arguments for a float64 comparison on ``backend``."""
    return {"backend": backend, "dtype": "float64"}


# ----------------------------------------------------------------------------------
# Random programs.

NON_RANDOM_OPS = tuple(range(0, 59))
RANDOM_OPS = tuple(range(59, 65))

# Constants with edge values: zeros of both signs, +-inf, NaN, huge, tiny, ordinary.
EDGE_DOUBLES = (0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, 100.0, -100.0, 1e-3, 1e10, -1e10,
                1e300, -1e300, 1e-300, np.inf, -np.inf, np.nan)
EDGE_FLOATS = (0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 100.0, -100.0, 1e-3, 3e38, -3e38, 1e-30,
               np.inf, -np.inf, np.nan)


class ProgramGenerator:
    """Random algorithms over given op pools, memory sizes and lengths.

    Inputs range over the whole address space (so ``s0``/``v0`` are read); outputs
    start at the reference's first output addresses (s1, v1, m0), as the reference's
    randomizer does (§1.3). Constants are a mixture of N(0, 1) draws and edge values.

    Example:
        >>> gen = ProgramGenerator(np.random.default_rng(0))
        >>> algo = gen.algorithm((4, 3, 1), sizes=((0, 3), (1, 4), (0, 4)))
        >>> len(algo.predict) >= 1
        True
    """

    def __init__(self, rng: np.random.Generator, edge_probability: float = 0.1):
        self.rng = rng
        self.edge_probability = edge_probability

    def _double(self) -> float:
        if self.rng.random() < self.edge_probability:
            return float(EDGE_DOUBLES[self.rng.integers(len(EDGE_DOUBLES))])
        return float(np.round(self.rng.normal(0.0, 1.0), int(self.rng.integers(1, 8))))

    def _float(self) -> float:
        if self.rng.random() < self.edge_probability:
            return float(EDGE_FLOATS[self.rng.integers(len(EDGE_FLOATS))])
        return float(np.float32(self.rng.normal(0.0, 1.0)))

    def instruction(self, op: int, memory: tuple[int, int, int]) -> np.void:
        sizes = dict(zip("SVM", memory))
        first_out = {"S": 1, "V": 1, "M": 0}
        in1_type, in2_type, out_type = oracle.OPERAND_TYPES[op]
        in1 = int(self.rng.integers(sizes[in1_type])) if in1_type else 0
        in2 = int(self.rng.integers(sizes[in2_type])) if in2_type else 0
        out = (int(self.rng.integers(first_out[out_type], sizes[out_type])) if out_type else 0)
        d = f0 = f1 = f2 = 0.0
        if op == oracle.SCALAR_CONST_SET:
            d = self._double()
        elif op == oracle.VECTOR_CONST_SET:
            f0, f1 = float(np.float32(self.rng.random())), self._float()
            f0 = min(f0, float(np.float32(0.9999)))
        elif op == oracle.MATRIX_CONST_SET:
            f0, f1 = float(np.float32(self.rng.random())), float(np.float32(self.rng.random()))
            f0, f1 = min(f0, 0.9999), min(f1, 0.9999)
            f2 = self._float()
        elif op in RANDOM_OPS:
            f0, f1 = self._float(), self._float()
        return program_lib.instruction(op, in1, in2, out, d, f0, f1, f2)

    def component(self, ops, length: int, memory) -> np.ndarray:
        ops = tuple(ops)
        chosen = [ops[i] for i in self.rng.integers(len(ops), size=length)]
        return program_lib.as_component([self.instruction(op, memory) for op in chosen])

    def algorithm(self, memory: tuple[int, int, int],
                  sizes=((0, 4), (1, 6), (0, 8)), ops=(NON_RANDOM_OPS,) * 3):
        """A random algorithm: component c has a length uniform in ``sizes[c]`` (inclusive)."""
        parts = []
        for (low, high), pool in zip(sizes, ops):
            parts.append(self.component(pool, int(self.rng.integers(low, high + 1)), memory))
        return program_lib.Algorithm(*parts)

    def mutate(self, algorithm, memory, num_changes: int = 2, ops=NON_RANDOM_OPS):
        """Replaces ``num_changes`` random instructions of a (hand-coded) algorithm."""
        parts = [np.array(c) for c in algorithm.components]
        for _ in range(num_changes):
            c = int(self.rng.integers(3))
            if len(parts[c]) == 0:
                continue
            i = int(self.rng.integers(len(parts[c])))
            parts[c][i] = self.instruction(int(ops[self.rng.integers(len(ops))]), memory)
        return program_lib.Algorithm(*parts)


@pytest.fixture(scope="session")
def program_generator():
    """A session-wide, seeded generator of random algorithms."""
    return ProgramGenerator(np.random.default_rng(20240229))
