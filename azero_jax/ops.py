"""The 65-op instruction set of AutoML-Zero (paper Table S1, reference `instruction.proto`).

One table, :data:`OPS`, indexed by the op code (the reference's enum value, which is
also the paper's op number). Everything else -- the printer, the parser, the
randomizer, the mutator, the JAX evaluator and the per-core CPU backend -- derives
operand types, operand classes, print forms and costs from this table, so an op is
described exactly once.

Example:
    >>> from azero_jax import ops
    >>> ops.OP_BY_NAME["VECTOR_INNER_PRODUCT_OP"].code
    27
    >>> ops.OPS[27].out_type
    'S'
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

SCALAR = "S"
VECTOR = "V"
MATRIX = "M"

# Operand classes (reference `instruction.cc`): they decide which fields an op
# reads, how it is randomised and how ALTER_PARAM mutates it.
NOOP = "noop"
DATA = "data"
UNARY = "unary"
BINARY = "binary"

# Index of each data field inside the per-instruction data vector.
ACTIVATION_DATA = 0  # float64: SCALAR_CONST_SET_OP's value
FLOAT_DATA_0 = 1  # float32 fields, stored promoted to float64
FLOAT_DATA_1 = 2
FLOAT_DATA_2 = 3


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """One op of the instruction set.

    Attributes:
      code: the reference enum value (= paper's op number).
      name: the reference enum name, e.g. ``"SCALAR_SUM_OP"``.
      kind: ``"noop"``, ``"data"``, ``"unary"`` or ``"binary"``.
      in1_type, in2_type, out_type: ``"S"``, ``"V"``, ``"M"`` or ``None``.
      template: the reference print form; ``{o}``, ``{a}``, ``{b}`` are the
        addresses, ``{d}`` the double constant and ``{f0}``..``{f2}`` the float fields.
      data_fields: which data fields the op uses (indices into the data vector).
      cost: the reference's compute-cost units (train budget, §8).
      partial_write: whether the op writes only part of its output cell (one entry, the
        const-set ops 57/58), so that the rest of the cell's old value passes through.
        Every other op overwrites its whole output cell. (No op reads its output cell
        except through ``in1``/``in2``, and no op has an effect beyond its output cell
        other than the random ops' draws: dead-code elimination relies on both.)
      random: whether the op draws random numbers.
    """

    code: int
    name: str
    kind: str
    in1_type: str | None
    in2_type: str | None
    out_type: str | None
    template: str
    data_fields: tuple[int, ...]
    cost: int
    partial_write: bool = False

    @property
    def random(self) -> bool:
        return "UNIFORM" in self.name or "GAUSSIAN" in self.name

    @property
    def short_name(self) -> str:
        return self.name[:-3] if self.name.endswith("_OP") else self.name


def _op(code, name, kind, in1, in2, out, template, data_fields, cost,
        partial_write=False) -> OpSpec:
    return OpSpec(code, name, kind, in1, in2, out, template, tuple(data_fields), cost,
                  partial_write)


S, V, M = SCALAR, VECTOR, MATRIX
_D, _F0, _F1, _F2 = ACTIVATION_DATA, FLOAT_DATA_0, FLOAT_DATA_1, FLOAT_DATA_2

OPS: tuple[OpSpec, ...] = (
    _op(0, "NO_OP", NOOP, None, None, None, "NoOp()", (), 3013921),
    _op(1, "SCALAR_SUM_OP", BINARY, S, S, S, "s{o} = s{a} + s{b}", (), 4703759),
    _op(2, "SCALAR_DIFF_OP", BINARY, S, S, S, "s{o} = s{a} - s{b}", (), 5102027),
    _op(3, "SCALAR_PRODUCT_OP", BINARY, S, S, S, "s{o} = s{a} * s{b}", (), 4418347),
    _op(4, "SCALAR_DIVISION_OP", BINARY, S, S, S, "s{o} = s{a} / s{b}", (), 3963916),
    _op(5, "SCALAR_ABS_OP", UNARY, S, None, S, "s{o} = abs(s{a})", (), 3684352),
    _op(6, "SCALAR_RECIPROCAL_OP", UNARY, S, None, S, "s{o} = 1 / s{a}", (), 4212086),
    _op(7, "SCALAR_SIN_OP", UNARY, S, None, S, "s{o} = sin(s{a})", (), 7538523),
    _op(8, "SCALAR_COS_OP", UNARY, S, None, S, "s{o} = cos(s{a})", (), 7452807),
    _op(9, "SCALAR_TAN_OP", UNARY, S, None, S, "s{o} = tan(s{a})", (), 7583203),
    _op(10, "SCALAR_ARCSIN_OP", UNARY, S, None, S, "s{o} = arcsin(s{a})", (), 9145616),
    _op(11, "SCALAR_ARCCOS_OP", UNARY, S, None, S, "s{o} = arccos(s{a})", (), 7673039),
    _op(12, "SCALAR_ARCTAN_OP", UNARY, S, None, S, "s{o} = arctan(s{a})", (), 9273978),
    _op(13, "SCALAR_EXP_OP", UNARY, S, None, S, "s{o} = exp(s{a})", (), 11755929),
    _op(14, "SCALAR_LOG_OP", UNARY, S, None, S, "s{o} = log(s{a})", (), 11627725),
    _op(15, "SCALAR_HEAVYSIDE_OP", UNARY, S, None, S, "s{o} = heaviside(s{a}, 1.0)", (), 4057075),
    _op(16, "VECTOR_HEAVYSIDE_OP", UNARY, V, None, V, "v{o} = heaviside(v{a}, 1.0)", (), 3965743),
    _op(17, "MATRIX_HEAVYSIDE_OP", UNARY, M, None, M, "m{o} = heaviside(m{a}, 1.0)", (), 6728311),
    _op(18, "SCALAR_VECTOR_PRODUCT_OP", BINARY, S, V, V, "v{o} = s{a} * v{b}", (), 3705015),
    _op(19, "SCALAR_BROADCAST_OP", UNARY, S, None, V, "v{o} = bcast(s{a})", (), 4165814),
    _op(20, "VECTOR_RECIPROCAL_OP", UNARY, V, None, V, "v{o} = 1 / v{a}", (), 6311851),
    _op(21, "VECTOR_NORM_OP", UNARY, V, None, S, "s{o} = norm(v{a})", (), 4810562),
    _op(22, "VECTOR_ABS_OP", UNARY, V, None, V, "v{o} = abs(v{a})", (), 3713533),
    _op(23, "VECTOR_SUM_OP", BINARY, V, V, V, "v{o} = v{a} + v{b}", (), 4701519),
    _op(24, "VECTOR_DIFF_OP", BINARY, V, V, V, "v{o} = v{a} - v{b}", (), 4165747),
    _op(25, "VECTOR_PRODUCT_OP", BINARY, V, V, V, "v{o} = v{a} * v{b}", (), 4504555),
    _op(26, "VECTOR_DIVISION_OP", BINARY, V, V, V, "v{o} = v{a} / v{b}", (), 4556237),
    _op(27, "VECTOR_INNER_PRODUCT_OP", BINARY, V, V, S, "s{o} = dot(v{a}, v{b})", (), 4294617),
    _op(28, "VECTOR_OUTER_PRODUCT_OP", BINARY, V, V, M, "m{o} = outer(v{a}, v{b})", (), 9833707),
    _op(29, "SCALAR_MATRIX_PRODUCT_OP", BINARY, S, M, M, "m{o} = s{a} * m{b}", (), 5986302),
    _op(30, "MATRIX_RECIPROCAL_OP", UNARY, M, None, M, "m{o} = 1 / m{a}", (), 24336141),
    _op(31, "MATRIX_VECTOR_PRODUCT_OP", BINARY, M, V, V, "v{o} = dot(m{a}, v{b})", (), 9310002),
    _op(32, "VECTOR_COLUMN_BROADCAST_OP", UNARY, V, None, M, "m{o} = bcast(v{a}, axis=0)", (), 10993088),
    _op(33, "VECTOR_ROW_BROADCAST_OP", UNARY, V, None, M, "m{o} = bcast(v{a}, axis=1)", (), 11087322),
    _op(34, "MATRIX_NORM_OP", UNARY, M, None, S, "s{o} = norm(m{a})", (), 6422746),
    _op(35, "MATRIX_COLUMN_NORM_OP", UNARY, M, None, V, "v{o} = norm(m{a}, axis=0)", (), 6682187),
    _op(36, "MATRIX_ROW_NORM_OP", UNARY, M, None, V, "v{o} = norm(m{a}, axis=1)", (), 13351123),
    _op(37, "MATRIX_TRANSPOSE_OP", UNARY, M, None, M, "m{o} = transpose(m{a})", (), 9394756),
    _op(38, "MATRIX_ABS_OP", UNARY, M, None, M, "m{o} = abs(m{a})", (), 4630926),
    _op(39, "MATRIX_SUM_OP", BINARY, M, M, M, "m{o} = m{a} + m{b}", (), 5579381),
    _op(40, "MATRIX_DIFF_OP", BINARY, M, M, M, "m{o} = m{a} - m{b}", (), 5429452),
    _op(41, "MATRIX_PRODUCT_OP", BINARY, M, M, M, "m{o} = m{a} * m{b}", (), 5475227),
    _op(42, "MATRIX_DIVISION_OP", BINARY, M, M, M, "m{o} = m{a} / m{b}", (), 18234378),
    _op(43, "MATRIX_MATRIX_PRODUCT_OP", BINARY, M, M, M, "m{o} = matmul(m{a}, m{b})", (), 14516296),
    _op(44, "SCALAR_MIN_OP", BINARY, S, S, S, "s{o} = minimum(s{a}, s{b})", (), 3677265),
    _op(45, "VECTOR_MIN_OP", BINARY, V, V, V, "v{o} = minimum(v{a}, v{b})", (), 3989956),
    _op(46, "MATRIX_MIN_OP", BINARY, M, M, M, "m{o} = minimum(m{a}, m{b})", (), 5457728),
    _op(47, "SCALAR_MAX_OP", BINARY, S, S, S, "s{o} = maximum(s{a}, s{b})", (), 4573695),
    _op(48, "VECTOR_MAX_OP", BINARY, V, V, V, "v{o} = maximum(v{a}, v{b})", (), 3974229),
    _op(49, "MATRIX_MAX_OP", BINARY, M, M, M, "m{o} = maximum(m{a}, m{b})", (), 5840952),
    _op(50, "VECTOR_MEAN_OP", UNARY, V, None, S, "s{o} = mean(v{a})", (), 4280443),
    _op(51, "MATRIX_MEAN_OP", UNARY, M, None, S, "s{o} = mean(m{a})", (), 4595196),
    _op(52, "MATRIX_ROW_MEAN_OP", UNARY, M, None, V, "v{o} = mean(m{a}, axis=1)", (), 9763956),
    _op(53, "MATRIX_ROW_ST_DEV_OP", UNARY, M, None, V, "v{o} = std(m{a}, axis=1)", (), 16766477),
    _op(54, "VECTOR_ST_DEV_OP", UNARY, V, None, S, "s{o} = std(v{a})", (), 5585730),
    _op(55, "MATRIX_ST_DEV_OP", UNARY, M, None, S, "s{o} = std(m{a})", (), 10640216),
    _op(56, "SCALAR_CONST_SET_OP", DATA, None, None, S, "s{o} = {d}", (_D,), 3691108),
    _op(57, "VECTOR_CONST_SET_OP", DATA, None, None, V, "v{o}[{f0}] = {f1}", (_F0, _F1), 3991421,
        partial_write=True),
    _op(58, "MATRIX_CONST_SET_OP", DATA, None, None, M, "m{o}[{f0}, {f1}] = {f2}", (_F0, _F1, _F2), 3693035,
        partial_write=True),
    _op(59, "SCALAR_UNIFORM_SET_OP", DATA, None, None, S, "s{o} = uniform({f0}, {f1})", (_F0, _F1), 26610704),
    _op(60, "VECTOR_UNIFORM_SET_OP", DATA, None, None, V, "v{o} = uniform({f0}, {f1}, n_features)", (_F0, _F1), 57817372),
    _op(61, "MATRIX_UNIFORM_SET_OP", DATA, None, None, M,
        "m{o} = uniform({f0}, {f1}, (n_features, n_features))", (_F0, _F1), 208339446),
    _op(62, "SCALAR_GAUSSIAN_SET_OP", DATA, None, None, S, "s{o} = gaussian({f0}, {f1})", (_F0, _F1), 20775635),
    _op(63, "VECTOR_GAUSSIAN_SET_OP", DATA, None, None, V, "v{o} = gaussian({f0}, {f1}, n_features)", (_F0, _F1), 77483018),
    _op(64, "MATRIX_GAUSSIAN_SET_OP", DATA, None, None, M,
        "m{o} = gaussian({f0}, {f1}, (n_features, n_features))", (_F0, _F1), 277690384),
)
del S, V, M

NUM_OPS = len(OPS)
assert [op.code for op in OPS] == list(range(NUM_OPS))

OP_BY_NAME: dict[str, OpSpec] = {}
for _spec in OPS:
    OP_BY_NAME[_spec.name] = _spec
    OP_BY_NAME[_spec.short_name] = _spec
del _spec

NO_OP = 0
SCALAR_CONST_SET_OP = 56
RANDOM_OPS = frozenset(op.code for op in OPS if op.random)

# Reserved addresses (reference `definitions.h`, scalar-label branch).
FEATURES_VECTOR_ADDRESS = 0
LABELS_SCALAR_ADDRESS = 0
PREDICTIONS_SCALAR_ADDRESS = 1
FIRST_OUT_ADDRESS = {"S": 1, "V": 1, "M": 0}


def op_code(op: int | str) -> int:
    """Returns the op code of an op given by code or by (short or full) enum name.

    Raises:
      ValueError: for an unknown op.
    """
    if isinstance(op, str):
        try:
            return OP_BY_NAME[op.strip().upper()].code
        except KeyError:
            raise ValueError(f"unknown op {op!r}: expected one of the 65 reference op names, "
                             f"e.g. 'SCALAR_SUM_OP'") from None
    code = int(op)
    if not 0 <= code < NUM_OPS:
        raise ValueError(f"unknown op code {code}: expected 0..{NUM_OPS - 1}")
    return code


def op_codes(ops: Iterable[int | str]) -> tuple[int, ...]:
    """Normalises a list of ops (codes or names) to a tuple of codes (order and duplicates kept)."""
    return tuple(op_code(op) for op in ops)


def ops_writing(type_: str, codes: Sequence[int] | None = None) -> tuple[int, ...]:
    """The ops (among ``codes``, default all) whose output is of ``type_``."""
    pool = range(NUM_OPS) if codes is None else codes
    return tuple(c for c in pool if OPS[c].out_type == type_)
