"""Programs: the op table (§2.2/§2.3), the reference text format and its parser.

Property tests (hypothesis): any algorithm formats, parses and formats back to the same
text; a parsed algorithm is ``approx_equal`` to the original (6 printed digits).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import oracle

import azero_jax as az
from azero_jax.core import ops as ops_lib
from azero_jax.core import program as program_lib

UNARY = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20, 21, 22, 30, 32, 33, 34, 35,
         36, 37, 38, 50, 51, 52, 53, 54, 55}
BINARY = {1, 2, 3, 4, 18, 23, 24, 25, 26, 27, 28, 29, 31, 39, 40, 41, 42, 43, 44, 45, 46,
          47, 48, 49}
DATA = set(range(56, 65))


# ----------------------------------------------------------------------------------
# The op table.


def test_op_table_has_65_ops_numbered_like_the_enum():
    assert ops_lib.NUM_OPS == len(ops_lib.OPS) == 65
    assert [op.code for op in ops_lib.OPS] == list(range(65))
    assert len({op.name for op in ops_lib.OPS}) == 65
    assert all(op.name.endswith("_OP") for op in ops_lib.OPS)
    assert ops_lib.OPS[0].name == "NO_OP" and ops_lib.OPS[64].name == "MATRIX_GAUSSIAN_SET_OP"


def test_operand_classes_match_spec():
    assert len(UNARY) == 31 and len(BINARY) == 24
    by_kind = {kind: {op.code for op in ops_lib.OPS if op.kind == kind}
               for kind in ("noop", "data", "unary", "binary")}
    assert by_kind == {"noop": {0}, "data": DATA, "unary": UNARY, "binary": BINARY}


def test_operand_types_match_the_oracle_table():
    """The package's table and the oracle's independent transcription of §2.3 agree."""
    for op in ops_lib.OPS:
        assert (op.in1_type, op.in2_type, op.out_type) == oracle.OPERAND_TYPES[op.code], op.name
        assert (op.in2_type is not None) == (op.kind == "binary"), op.name
        assert (op.in1_type is not None) == (op.kind in ("unary", "binary")), op.name
    assert ops_lib.RANDOM_OPS == oracle.RANDOM_OPS


def test_reserved_addresses():
    assert ops_lib.FIRST_OUT_ADDRESS == {"S": 1, "V": 1, "M": 0}
    assert ops_lib.PREDICTIONS_SCALAR_ADDRESS == 1 and ops_lib.LABELS_SCALAR_ADDRESS == 0


@pytest.mark.parametrize("code", range(65))
def test_every_template_parses(code):
    spec = ops_lib.OPS[code]
    record = program_lib.instruction(code, in1=3 if spec.in1_type else 0,
                                     in2=4 if spec.in2_type else 0,
                                     out=2 if spec.out_type else 0,
                                     d=-1.25 if code == 56 else 0.0,
                                     f0=0.375 if code >= 57 else 0.0,
                                     f1=-2.5 if code >= 57 else 0.0,
                                     f2=0.125 if code == 58 else 0.0)
    text = program_lib.format_instruction(record)
    parsed = program_lib.parse_instruction(text)
    assert parsed.tobytes() == record.tobytes(), text
    assert program_lib.format_instruction(parsed) == text
    # The print form names the right memory types.
    for type_ in (spec.in1_type, spec.in2_type, spec.out_type):
        if type_:
            assert type_.lower() in text


def test_reference_print_examples():
    linear = az.generator.linear_model(0.01)
    assert az.format_algorithm(linear) == (
        "def Setup():\n  s2 = 0.01\ndef Predict():\n  s1 = dot(v1, v0)\n"
        "def Learn():\n  s3 = s0 - s1\n  s3 = s2 * s3\n  v2 = s3 * v0\n  v1 = v1 + v2\n")
    I = program_lib.instruction
    algorithm = program_lib.Algorithm(
        [I("VECTOR_CONST_SET_OP", out=2, f0=0.731, f1=-0.25),
         I("MATRIX_CONST_SET_OP", out=0, f0=0.1, f1=0.9, f2=0.5),
         I("SCALAR_CONST_SET_OP", out=3, d=1e-5), I("SCALAR_CONST_SET_OP", out=3, d=1234567.0),
         I("SCALAR_UNIFORM_SET_OP", out=4, f0=-1.0, f1=1.0)], [], [])
    assert az.format_algorithm(algorithm) == (
        "def Setup():\n  v2[0.731] = -0.25\n  m0[0.1, 0.9] = 0.5\n  s3 = 1e-05\n"
        "  s3 = 1.23457e+06\n  s4 = uniform(-1, 1)\ndef Predict():\ndef Learn():\n")


# ----------------------------------------------------------------------------------
# Round trip (hypothesis).

_SPECIAL = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e-5, 1.23456789e6,
            -3.5e-38, 3.4e38, 0.1, 1e-45]
_DOUBLES = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from(_SPECIAL + [1e300, -1e-300, 5e-324]))
_FLOAT32 = st.one_of(st.floats(width=32, allow_nan=True, allow_infinity=True),
                     st.sampled_from(_SPECIAL))


@st.composite
def instructions(draw):
    code = draw(st.integers(0, 64))
    spec = ops_lib.OPS[code]
    address = st.integers(0, 40)
    in1 = draw(address) if spec.in1_type else 0
    in2 = draw(address) if spec.in2_type else 0
    out = draw(address) if spec.out_type else 0
    d = draw(_DOUBLES) if code == 56 else 0.0
    f0 = f1 = f2 = 0.0
    if code in (57, 58):
        f0 = draw(st.floats(0.0, 1.0, width=32, exclude_max=True))
    elif code >= 59:
        f0 = draw(_FLOAT32)
    if code == 58:
        f1 = draw(st.floats(0.0, 1.0, width=32, exclude_max=True))
        f2 = draw(_FLOAT32)
    elif code >= 57:
        f1 = draw(_FLOAT32)
    return program_lib.instruction(code, in1, in2, out, d, f0, f1, f2)


@st.composite
def algorithms(draw):
    parts = [draw(st.lists(instructions(), max_size=12)) for _ in range(3)]
    return program_lib.Algorithm(*(program_lib.as_component(p) for p in parts))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(algorithms())
def test_format_parse_format_is_identical(algorithm):
    text = az.format_algorithm(algorithm)
    parsed = az.parse_algorithm(text)
    assert az.format_algorithm(parsed) == text
    assert parsed.sizes == algorithm.sizes
    for a, b in zip(algorithm.components, parsed.components):
        for field in ("op", "in1", "in2", "out"):
            np.testing.assert_array_equal(a[field], b[field])
        # 6 significant digits survive the print.
        for field in ("d", "f0", "f1", "f2"):
            x, y = a[field].astype(np.float64), b[field].astype(np.float64)
            same_class = (np.isnan(x) == np.isnan(y)) & (np.isinf(x) == np.isinf(y))
            assert same_class.all()
            finite = np.isfinite(x)
            np.testing.assert_allclose(y[finite], x[finite], rtol=1e-5, atol=0.0)


@settings(max_examples=40, deadline=None)
@given(algorithms())
def test_parse_of_format_is_a_fixed_point(algorithm):
    once = az.parse_algorithm(az.format_algorithm(algorithm))
    twice = az.parse_algorithm(az.format_algorithm(once))
    assert once == twice  # exact, bit for bit


@settings(max_examples=40, deadline=None)
@given(algorithms(), st.data())
def test_parse_errors_name_the_line(algorithm, data):
    lines = az.format_algorithm(algorithm).splitlines()
    index = data.draw(st.integers(0, len(lines)))
    bad = data.draw(st.sampled_from(["  s1 = frobnicate(s2)", "  v1 = v2 +", "  x3 = 1",
                                     "  s1 = dot(v1)", "  m0 = transpose(s1)"]))
    lines.insert(index, bad)
    text = "\n".join(lines) + "\n"
    if index == 0:
        expected = "line 1"
    else:
        expected = f"line {index + 1}"
    with pytest.raises(az.ParseError, match=expected):
        az.parse_algorithm(text)


def test_parse_errors_for_structure():
    with pytest.raises(az.ParseError, match="line 2"):
        az.parse_algorithm("def Setup():\ndef Learn():\ndef Predict():\n")
    with pytest.raises(az.ParseError, match="Learn"):
        az.parse_algorithm("def Setup():\ndef Predict():\n  s1 = s0 + s0\n")
    with pytest.raises(az.ParseError, match="line 1"):
        az.parse_algorithm("  s1 = s0 + s0\ndef Setup():\ndef Predict():\ndef Learn():\n")


def test_parse_accepts_comments_and_blank_lines():
    text = ("# a comment\ndef Setup():\n\n  s2 = 0.5  # lr\ndef Predict():\n"
            "  s1 = dot(v1, v0)\ndef Learn():\n")
    algorithm = az.parse_algorithm(text)
    assert algorithm.sizes == (1, 1, 0)
    assert algorithm.setup[0]["d"] == 0.5
