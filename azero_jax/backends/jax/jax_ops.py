"""The JAX semantics of the ops: the helpers their expression templates call.

Every op's JAX semantics is one expression template, the ``jax`` column of
:data:`azero_jax.core.ops.OPS` (e.g. ``"_matvec({a}, {b})"``). Two consumers instantiate it:

* the JAX evaluator compiles it into the op's ``lax.switch`` branch
  (:func:`op_function`, over traced operands);
* :mod:`azero_jax.analysis.export` writes it, with cell names and literal constants
  filled in, into straight-line exported code, preceded by :func:`helpers_source` (the
  source of the helpers below), so the exported module needs JAX only.

Both therefore run the same ``jax.numpy`` calls, and a test checks that they give
bit-identical results for every op. The helpers below are written to be copied into
exported code: they use only ``jax``, ``jnp``, each other and the constants of
:data:`EXPORTED_CONSTANTS`.

Example:
    >>> import jax.numpy as jnp
    >>> from azero_jax.core import ops
    >>> dot = op_function(ops.Op.VECTOR_INNER_PRODUCT_OP, features_size=2, dtype=jnp.float32)
    >>> float(dot(a=jnp.ones(2), b=jnp.arange(2.0)))
    1.0
"""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp

from azero_jax.backends._eigen_order import PACKET, PLAIN, PRODUCT, SQUARE, UNROLLING_LIMIT
from azero_jax.core import ops as ops_lib

# The module constants the helpers read (copied by value into exported code).
EXPORTED_CONSTANTS = {"PACKET": PACKET, "PLAIN": PLAIN, "PRODUCT": PRODUCT, "SQUARE": SQUARE,
                      "UNROLLING_LIMIT": UNROLLING_LIMIT}


def _one(cond, dtype):
    """1 where ``cond`` holds, else 0, in ``dtype`` (the Heaviside ops)."""
    return jnp.where(cond, jnp.ones((), dtype), jnp.zeros((), dtype))


# Reductions add in the reference's order (Eigen 3.4 with SSE2; the rules are in
# azero_jax/backends/_eigen_order.py, which the CPU kernels use): F is static here, so the trees
# are spelled out with static slices and the long loops are fori_loops. XLA keeps the
# association of floating-point additions as written.


def rounded_product(a, b):
    """``a * b`` rounded to the dtype before any addition uses it.

    XLA's CPU and GPU compilers contract a product feeding an addition into one fused
    multiply-add (rounded once); the reference's SSE2 build rounds the product. copysign
    of the product with itself is the identity, but the compilers do not fuse through it.
    """
    p = a * b
    return jnp.copysign(p, p)


def _halving(items):
    """``tree(first half) + tree(second half)``, the first half being ``len // 2``."""
    if len(items) == 1:
        return items[0]
    half = len(items) // 2
    return _halving(items[:half]) + _halving(items[half:])


def _left_to_right(xs):
    """``((xs[0] + xs[1]) + xs[2]) + ...`` over the leading axis."""
    if xs.shape[0] <= 16:
        total = xs[0]
        for k in range(1, xs.shape[0]):
            total = total + xs[k]
        return total
    return jax.lax.fori_loop(1, xs.shape[0], lambda k, total: total + xs[k], xs[0])


def _in_order(terms, cost, contiguous=True):
    """Sum over the last axis as Eigen adds ``n`` terms each costing ``cost`` to read."""
    n = terms.shape[-1]
    lead = terms.shape[:-1]
    expression_cost = n * cost + (n - 1)
    if not contiguous:  # strided terms: not vectorised
        if expression_cost <= UNROLLING_LIMIT:
            return _halving([terms[..., k] for k in range(n)])
        return _left_to_right(jnp.moveaxis(terms, -1, 0))
    packets = n // PACKET
    if packets == 0:
        return terms[..., 0]
    whole = terms[..., :packets * PACKET].reshape(lead + (packets, PACKET))
    if expression_cost > UNROLLING_LIMIT * PACKET:
        # Two packet accumulators taking alternate packets, then added.
        pairs = packets // 2
        blocks = whole[..., :2 * pairs, :].reshape(lead + (pairs, 2, PACKET))
        acc = _left_to_right(jnp.moveaxis(blocks, -3, 0))
        acc = acc[..., 0, :] + acc[..., 1, :]
        if packets % 2:
            acc = acc + whole[..., 2 * pairs, :]
    else:
        acc = _halving([whole[..., p, :] for p in range(packets)])
    total = acc[..., 0] + acc[..., 1]
    if n % PACKET:
        total = total + terms[..., n - 1]
    return total


def true_divide(x, n: int):
    """``x / n`` as a true division.

    XLA replaces a division by a constant (or by a broadcast scalar) with a multiplication
    by its reciprocal, which rounds differently unless n is a power of two. The divisor
    here is n for every entry but depends on the entry (n + 1 where x is NaN, where the
    quotient is NaN anyway), so it is neither.
    """
    return x / jnp.where(x != x, jnp.asarray(n + 1, x.dtype), jnp.asarray(n, x.dtype))


def _mean(x):
    return true_divide(_in_order(x, PLAIN), x.shape[-1])


def _norm(x, contiguous=True):
    return jnp.sqrt(_in_order(rounded_product(x, x), SQUARE, contiguous))


def _std(x):
    """One-pass population std over the last axis: ``sqrt(E[x^2] - E[x]^2)``."""
    n = x.shape[-1]
    mean = true_divide(_in_order(x, PLAIN), n)
    mean_square = true_divide(_in_order(rounded_product(x, x), PRODUCT), n)
    return jnp.sqrt(mean_square - rounded_product(mean, mean))


def _matvec(m, x):
    """``M @ x``: row dot products for F < 8, Eigen's row-major GEMV kernel for F >= 8."""
    F = x.shape[0]
    if F < 8:
        return _in_order(rounded_product(m, x[None, :]), PRODUCT)
    packets = F // PACKET
    products = rounded_product(m[:, :packets * PACKET], x[:packets * PACKET])
    products = products.reshape(F, packets, PACKET)
    acc = _left_to_right(jnp.moveaxis(products, 1, 0))  # one packet accumulator per row
    total = acc[:, 0] + acc[:, 1]
    if F % PACKET:
        total = total + rounded_product(m[:, F - 1], x[F - 1])
    # Eigen adds the row's sum to a zeroed destination: -0.0 becomes +0.0. (A literal
    # "0 + total" would be simplified away by XLA.)
    return jnp.where(total == 0, jnp.zeros((), total.dtype), total)


def _matmul(a, b):
    """``A @ B``: a tree per entry for F < 8, left to right (GEMM) for F >= 8."""
    F = a.shape[0]
    products = rounded_product(a[:, None, :], b.T[None, :, :])  # [row, column, k]
    if F < 8:
        return _in_order(products, PRODUCT, contiguous=False)
    total = _left_to_right(jnp.moveaxis(products, -1, 0))
    return jnp.where(total == 0, jnp.zeros((), total.dtype), total)


def _dot(a, b):
    """Inner product of two vectors, added in Eigen's order."""
    return _in_order(rounded_product(a, b), PRODUCT)


def _const_index(fraction, F):
    """The entry a const-set op writes: ``(int)((float)F * fraction)``, clipped to the cell."""
    index = (jnp.float32(F) * jnp.asarray(fraction).astype(jnp.float32)).astype(jnp.int32)
    return jnp.clip(index, 0, F - 1)


def _uniform(key, low, high, shape, dtype):
    """Uniform draws in ``[low, high)``; ``low`` when ``low >= high`` (as Abseil does)."""
    draw = jax.random.uniform(key, shape, dtype, minval=low, maxval=high)
    return jnp.where(low < high, draw, jnp.broadcast_to(jnp.asarray(low, dtype), shape))


def _gaussian(key, mean, stddev, shape, dtype):
    """Normal draws with the given mean and standard deviation."""
    return mean + stddev * jax.random.normal(key, shape, dtype)


# The helpers exported code needs, callees before callers.
_HELPERS = (_one, rounded_product, _halving, _left_to_right, _in_order, true_divide, _mean,
            _norm, _std, _matvec, _matmul, _dot, _const_index, _uniform, _gaussian)

# The names an expression template may use besides its operands, F and dtype.
_NAMESPACE = {"jax": jax, "jnp": jnp, **{fn.__name__: fn for fn in _HELPERS}}

@functools.lru_cache(maxsize=None)
def op_function(code: int, features_size: int, dtype):
    """Op ``code``'s template compiled into ``fn(a=, b=, o=, d=, f0=, f1=, f2=, key=)``.

    ``features_size`` and ``dtype`` are static (the template's ``F`` and ``dtype``); the
    operands an op does not use may be left out.
    """
    namespace = dict(_NAMESPACE, F=int(features_size), dtype=dtype)
    parameters = ", ".join(f"{name}=None" for name in ops_lib.JAX_OPERANDS)
    source = f"lambda {parameters}: {ops_lib.OPS[code].jax_expression()}"
    return eval(compile(source, f"<op {ops_lib.OPS[code].name}>", "eval"), namespace)  # noqa: S307


def helpers_source() -> str:
    """Python source defining the helpers and constants the templates use (needs ``jax``,
    ``jnp`` in scope): exported code starts with it."""
    lines = [f"{name} = {value!r}" for name, value in EXPORTED_CONSTANTS.items()]
    return "\n".join(lines) + "\n\n\n" + "\n\n".join(inspect.getsource(fn) for fn in _HELPERS)


__all__ = ["EXPORTED_CONSTANTS", "helpers_source", "op_function", "rounded_product",
           "true_divide"]
