"""The op facts the op table holds (``azero_jax.core.ops.OpSpec``) agree with the ops' semantics.

The columns are checked against what the ops compute (their JAX expressions), not
against a second list of op numbers.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from azero_jax.analysis import simplify
from azero_jax.backends.jax.jax_ops import op_function
from azero_jax.core import ops

F = 4
_SHAPES = {"S": (), "V": (F,), "M": (F, F)}


def test_op_enum_names_every_op_by_its_reference_name():
    assert [op.name for op in ops.Op] == [spec.name for spec in ops.OPS]
    assert [int(op) for op in ops.Op] == list(range(ops.NUM_OPS))
    assert ops.Op.VECTOR_CONST_SET_OP == 57 and ops.Op(58).name == "MATRIX_CONST_SET_OP"


@pytest.mark.parametrize("code", [op.code for op in ops.OPS if op.kind in (ops.UNARY, ops.BINARY)])
def test_zero_column_is_exactly_the_ops_that_map_zeros_to_positive_zero(code):
    spec = ops.OPS[code]
    inputs = {"a": jnp.zeros(_SHAPES[spec.in1_type], jnp.float32)}
    if spec.in2_type:
        inputs["b"] = jnp.zeros(_SHAPES[spec.in2_type], jnp.float32)
    result = np.asarray(op_function(code, F, jnp.float32)(**inputs))
    positive_zero = bool(np.all((result == 0) & ~np.signbit(result)))
    assert spec.zero == positive_zero, spec.name


def test_data_ops_are_not_zero_preserving():
    # Their result does not depend on inputs: setup_noops reads their value field instead.
    assert not any(op.zero for op in ops.OPS if op.kind in (ops.NOOP, ops.DATA))


def test_partial_writes_and_their_fields():
    partial = {op.code for op in ops.OPS if op.partial_write}
    assert partial == {ops.Op.VECTOR_CONST_SET_OP, ops.Op.MATRIX_CONST_SET_OP}
    assert simplify.PARTIAL_WRITE_OPS == partial
    # Only partial writes read their output cell's old value ({o}) or have index fields.
    assert {op.code for op in ops.OPS if "{o}" in op.jax} == partial
    assert {op.code for op in ops.OPS if op.index_fields} == partial
    # A const-set op has one value field (the value written); a random op two parameters.
    values = {op.code: op.value_fields for op in ops.OPS if op.value_fields}
    assert values == {56: ("d",), 57: ("f1",), 58: ("f2",),
                      **{code: ("f0", "f1") for code in ops.RANDOM_OPS}}


def test_every_field_an_op_uses_is_an_index_or_a_value():
    for op in ops.OPS:
        named = {ops.DATA_FIELD_NAMES[i] for i in op.data_fields}
        assert named == set(op.index_fields) | set(op.value_fields), op.name
        for field in named:  # and its JAX expression reads it
            assert "{" + field + "}" in op.jax, op.name


def test_every_op_but_no_op_has_a_jax_expression():
    assert not ops.OPS[ops.NO_OP].jax
    assert all(op.jax for op in ops.OPS[1:])
    with pytest.raises(ValueError, match="NO_OP has no JAX expression"):
        ops.OPS[0].jax_expression()
    assert ops.OPS[31].jax_expression(a="m1", b="v2") == "_matvec(m1, v2)"
