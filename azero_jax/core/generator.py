"""Hand-coded algorithms of the reference (`generator.cc`, spec §6.1-6.2).

Example:
    >>> from azero_jax.core import generator
    >>> print(generator.linear_model(0.01), end="")
    def Setup():
      s2 = 0.01
    def Predict():
      s1 = dot(v1, v0)
    def Learn():
      s3 = s0 - s1
      s3 = s2 * s3
      v2 = s3 * v0
      v1 = v1 + v2
"""

from __future__ import annotations

import numpy as np

from azero_jax.core.program import Algorithm, as_component, instruction, noop_component

I = instruction


def linear_model(learning_rate: float = 0.01) -> Algorithm:
    """``LinearModel(lr)``: SGD on a linear model (needs S >= 4, V >= 3)."""
    return Algorithm(
        setup=[I("SCALAR_CONST_SET_OP", out=2, d=learning_rate)],
        predict=[I("VECTOR_INNER_PRODUCT_OP", 1, 0, 1)],
        learn=[
            I("SCALAR_DIFF_OP", 0, 1, 3),
            I("SCALAR_PRODUCT_OP", 2, 3, 3),
            I("SCALAR_VECTOR_PRODUCT_OP", 3, 0, 2),
            I("VECTOR_SUM_OP", 1, 2, 1),
        ])


def neural_net(learning_rate: float = 0.01, first_init_scale: float = 0.1,
               final_init_scale: float = 0.1) -> Algorithm:
    """``NeuralNet(lr, first, final)``: a 2-layer ReLU net trained by backprop (S>=5, V>=9, M>=2)."""
    return Algorithm(
        setup=[
            I("VECTOR_GAUSSIAN_SET_OP", out=2, f0=0.0, f1=final_init_scale),
            I("MATRIX_GAUSSIAN_SET_OP", out=0, f0=0.0, f1=first_init_scale),
            I("SCALAR_CONST_SET_OP", out=3, d=learning_rate),
        ],
        predict=[
            I("MATRIX_VECTOR_PRODUCT_OP", 0, 0, 3),
            I("VECTOR_SUM_OP", 3, 1, 3),
            I("VECTOR_MAX_OP", 3, 5, 4),
            I("VECTOR_INNER_PRODUCT_OP", 4, 2, 1),
            I("SCALAR_SUM_OP", 1, 2, 1),
        ],
        learn=[
            I("SCALAR_DIFF_OP", 0, 1, 4),
            I("SCALAR_PRODUCT_OP", 3, 4, 4),
            I("SCALAR_SUM_OP", 2, 4, 2),
            I("SCALAR_VECTOR_PRODUCT_OP", 4, 4, 6),
            I("VECTOR_SUM_OP", 2, 6, 2),
            I("SCALAR_VECTOR_PRODUCT_OP", 4, 2, 7),
            I("VECTOR_HEAVYSIDE_OP", 3, 0, 8),
            I("VECTOR_PRODUCT_OP", 8, 7, 7),
            I("VECTOR_SUM_OP", 1, 7, 1),
            I("VECTOR_OUTER_PRODUCT_OP", 7, 0, 1),
            I("MATRIX_SUM_OP", 0, 1, 0),
        ])


def unit_test_neural_net_no_bias_no_gradient(learning_rate: float = 0.01) -> Algorithm:
    """The teacher network's Predict (m0 first layer, v1 final layer, v4 = 0 for the ReLU)."""
    return Algorithm(
        setup=[I("SCALAR_CONST_SET_OP", out=2, d=learning_rate)],
        predict=[
            I("MATRIX_VECTOR_PRODUCT_OP", 0, 0, 2),
            I("VECTOR_MAX_OP", 2, 4, 3),
            I("VECTOR_INNER_PRODUCT_OP", 3, 1, 1),
        ],
        learn=[
            I("SCALAR_DIFF_OP", 0, 1, 3),
            I("SCALAR_PRODUCT_OP", 2, 3, 3),
            I("SCALAR_VECTOR_PRODUCT_OP", 3, 3, 5),
            I("VECTOR_SUM_OP", 1, 5, 1),
            I("SCALAR_VECTOR_PRODUCT_OP", 3, 1, 6),
            I("VECTOR_HEAVYSIDE_OP", 2, 0, 7),
            I("VECTOR_PRODUCT_OP", 7, 6, 6),
            I("VECTOR_OUTER_PRODUCT_OP", 6, 0, 1),
            I("MATRIX_SUM_OP", 0, 1, 0),
        ])


def pad(algorithm: Algorithm, setup_size: int, predict_size: int, learn_size: int) -> Algorithm:
    """Pads each component function with NO_OPs up to the given sizes (never truncates)."""
    parts = []
    for part, size in zip(algorithm.components, (setup_size, predict_size, learn_size)):
        if len(part) < size:
            part = as_component(np.concatenate([part, noop_component(size - len(part))]))
        parts.append(part)
    return Algorithm(*parts)


def damaged_neural_net(setup_size: int = 0, predict_size: int = 0,
                       learn_size: int = 0) -> Algorithm:
    """``INTEGRATION_TEST_DAMAGED_NEURAL_NET``: the padded NN with its first two setup ops removed."""
    padded = pad(neural_net(0.01, 0.1, 0.1), setup_size, predict_size, learn_size)
    return padded.replace(0, padded.setup[2:])


# The reference's HardcodedAlgorithmID values for the non-random kinds.
HARDCODED = {
    "NO_OP_ALGORITHM": 0,
    "RANDOM_ALGORITHM": 1,
    "LINEAR_ALGORITHM": 2,
    "NEURAL_NET_ALGORITHM": 3,
    "INTEGRATION_TEST_DAMAGED_NEURAL_NET_ALGORITHM": 4,
}


def hardcoded_algorithm(kind: str | int, setup_size: int, predict_size: int,
                        learn_size: int) -> Algorithm:
    """The initial algorithm of a non-random ``initial_population`` kind, padded to the sizes."""
    if isinstance(kind, int):
        names = {v: k for k, v in HARDCODED.items()}
        if kind not in names:
            raise ValueError(f"unknown HardcodedAlgorithmID {kind}")
        kind = names[kind]
    sizes = (setup_size, predict_size, learn_size)
    if kind == "NO_OP_ALGORITHM":
        return pad(Algorithm([], [], []), *sizes)
    if kind == "LINEAR_ALGORITHM":
        return pad(linear_model(0.01), *sizes)
    if kind == "NEURAL_NET_ALGORITHM":
        return pad(neural_net(0.01, 0.1, 0.1), *sizes)
    if kind == "INTEGRATION_TEST_DAMAGED_NEURAL_NET_ALGORITHM":
        return damaged_neural_net(*sizes)
    if kind == "RANDOM_ALGORITHM":
        raise ValueError("RANDOM_ALGORITHM needs a randomizer; use azero_jax.evolution.randomizer")
    raise ValueError(f"unknown initial_population {kind!r}; expected one of {sorted(HARDCODED)}")
