"""Shared helpers of the analysis tests: random instructions and evolved-looking algorithms."""

from __future__ import annotations

import numpy as np

from azero_jax.core import ops as ops_lib
from azero_jax.core.program import Algorithm, as_component, instruction

MEMORY = dict(num_scalars=5, num_vectors=9, num_matrices=2)
ALL_OPS = tuple(range(ops_lib.NUM_OPS))


def random_instruction(rng: np.random.Generator, codes=ALL_OPS, memory=MEMORY):
    """A random instruction over ``codes`` (outputs never s0 / v0, like the randomizer)."""
    code = int(rng.choice(codes))
    spec = ops_lib.OPS[code]
    limit = {"S": memory["num_scalars"], "V": memory["num_vectors"],
             "M": memory["num_matrices"]}

    def address(type_, first=0):
        return 0 if type_ is None else int(rng.integers(first, limit[type_]))

    f0, f1, f2 = rng.uniform(-1, 1, 3)
    if code in (57, 58):
        f0, f1 = rng.uniform(0, 1, 2)
    if code in (59, 60, 61, 62, 63, 64):
        f1 = abs(f1)
    return instruction(code, address(spec.in1_type), address(spec.in2_type),
                       address(spec.out_type, ops_lib.FIRST_OUT_ADDRESS.get(spec.out_type, 0)
                               if spec.out_type else 0),
                       d=float(rng.uniform(-1, 1)), f0=f0, f1=f1, f2=f2)


def random_algorithm(rng: np.random.Generator, sizes=(4, 6, 8), codes=ALL_OPS) -> Algorithm:
    return Algorithm(*[[random_instruction(rng, codes) for _ in range(n)] for n in sizes])


def insert_random(algorithm: Algorithm, rng: np.random.Generator, count: int,
                  codes=ALL_OPS) -> Algorithm:
    """``algorithm`` with ``count`` random instructions inserted at random places."""
    parts = [list(c) for c in algorithm.components]
    for _ in range(count):
        c = int(rng.integers(3))
        parts[c].insert(int(rng.integers(len(parts[c]) + 1)), random_instruction(rng, codes))
    return Algorithm(*[as_component(p) for p in parts])
