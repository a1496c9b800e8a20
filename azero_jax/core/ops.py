"""The 65-op instruction set of AutoML-Zero (paper Table S1, reference `instruction.proto`).

One table, :data:`OPS`, indexed by the op code (the reference's enum value, which is
also the paper's op number). Everything else -- the printer, the parser, the
randomizer, the mutator, the JAX evaluator and the per-core CPU backend -- derives
operand types, operand classes, print forms and costs from this table, so an op is
described exactly once.

Example:
    >>> from azero_jax.core import ops
    >>> ops.OP_BY_NAME["VECTOR_INNER_PRODUCT_OP"].code
    27
    >>> ops.OPS[27].out_type
    'S'
"""

from __future__ import annotations

import dataclasses
import enum
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
# The instruction record's field holding each entry of the data vector.
DATA_FIELD_NAMES = ("d", "f0", "f1", "f2")
# The operands an op's JAX expression template (OpSpec.jax) may name.
JAX_OPERANDS = ("a", "b", "o", "d", "f0", "f1", "f2", "key")


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
      jax: the op's ``jax.numpy`` expression template, the one definition of its JAX
        semantics: the JAX evaluator compiles it into the op's branch and
        :mod:`azero_jax.analysis.export` writes it into exported code, so the two cannot
        drift. Named operands: ``{a}``, ``{b}`` (the input cells), ``{o}`` (the output
        cell's old value, partial writes only), ``{d}``, ``{f0}``..``{f2}`` (the data
        fields), ``{key}`` (the instruction's random key); free names: ``F`` (the feature
        size), ``dtype`` and the helpers of :mod:`azero_jax.backends.jax.jax_ops`. Empty for NO_OP.
      zero: whether the result is exactly +0 (every entry) when all inputs are +0 (dead
        Setup code: :func:`azero_jax.analysis.simplify.setup_noops`).
      index_fields: the data fields (record field names) holding const-set index
        fractions (the const-set ops 57/58).
      random: whether the op draws random numbers.
      value_fields: the data fields (record field names) holding the op's constants:
        const-set values and random-op parameters, not const-set indices.
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
    jax: str = ""
    zero: bool = False
    index_fields: tuple[str, ...] = ()

    @property
    def random(self) -> bool:
        return "UNIFORM" in self.name or "GAUSSIAN" in self.name

    @property
    def value_fields(self) -> tuple[str, ...]:
        names = tuple(DATA_FIELD_NAMES[i] for i in self.data_fields)
        return tuple(name for name in names if name not in self.index_fields)

    def jax_expression(self, **operands: str) -> str:
        """The op's :attr:`jax` template with its operands replaced by the given source text.

        Operands not given keep their own name (``{a}`` becomes ``a``).

        Raises:
          ValueError: for NO_OP, which has no expression.
        """
        if not self.jax:
            raise ValueError(f"{self.name} has no JAX expression")
        return self.jax.format(**{name: operands.get(name, name) for name in JAX_OPERANDS})

    @property
    def short_name(self) -> str:
        return self.name[:-3] if self.name.endswith("_OP") else self.name


def _op(code, name, kind, in1, in2, out, template, data_fields, cost, partial_write=False,
        index_fields=(), jax="", zero=False) -> OpSpec:
    return OpSpec(code, name, kind, in1, in2, out, template, tuple(data_fields), cost,
                  partial_write, jax, zero, tuple(index_fields))


S, V, M = SCALAR, VECTOR, MATRIX
_D, _F0, _F1, _F2 = ACTIVATION_DATA, FLOAT_DATA_0, FLOAT_DATA_1, FLOAT_DATA_2

OPS: tuple[OpSpec, ...] = (
    _op(0, "NO_OP", NOOP, None, None, None, "NoOp()", (), 3013921),
    _op(1, "SCALAR_SUM_OP", BINARY, S, S, S, "s{o} = s{a} + s{b}", (), 4703759,
        jax="{a} + {b}", zero=True),
    _op(2, "SCALAR_DIFF_OP", BINARY, S, S, S, "s{o} = s{a} - s{b}", (), 5102027,
        jax="{a} - {b}", zero=True),
    _op(3, "SCALAR_PRODUCT_OP", BINARY, S, S, S, "s{o} = s{a} * s{b}", (), 4418347,
        jax="{a} * {b}", zero=True),
    _op(4, "SCALAR_DIVISION_OP", BINARY, S, S, S, "s{o} = s{a} / s{b}", (), 3963916,
        jax="{a} / {b}"),
    _op(5, "SCALAR_ABS_OP", UNARY, S, None, S, "s{o} = abs(s{a})", (), 3684352,
        jax="jnp.abs({a})", zero=True),
    _op(6, "SCALAR_RECIPROCAL_OP", UNARY, S, None, S, "s{o} = 1 / s{a}", (), 4212086,
        jax="1 / {a}"),
    _op(7, "SCALAR_SIN_OP", UNARY, S, None, S, "s{o} = sin(s{a})", (), 7538523,
        jax="jnp.sin({a})", zero=True),
    _op(8, "SCALAR_COS_OP", UNARY, S, None, S, "s{o} = cos(s{a})", (), 7452807,
        jax="jnp.cos({a})"),
    _op(9, "SCALAR_TAN_OP", UNARY, S, None, S, "s{o} = tan(s{a})", (), 7583203,
        jax="jnp.tan({a})", zero=True),
    _op(10, "SCALAR_ARCSIN_OP", UNARY, S, None, S, "s{o} = arcsin(s{a})", (), 9145616,
        jax="jnp.arcsin({a})", zero=True),
    _op(11, "SCALAR_ARCCOS_OP", UNARY, S, None, S, "s{o} = arccos(s{a})", (), 7673039,
        jax="jnp.arccos({a})"),
    _op(12, "SCALAR_ARCTAN_OP", UNARY, S, None, S, "s{o} = arctan(s{a})", (), 9273978,
        jax="jnp.arctan({a})", zero=True),
    _op(13, "SCALAR_EXP_OP", UNARY, S, None, S, "s{o} = exp(s{a})", (), 11755929,
        jax="jnp.exp({a})"),
    _op(14, "SCALAR_LOG_OP", UNARY, S, None, S, "s{o} = log(s{a})", (), 11627725,
        jax="jnp.log({a})"),
    _op(15, "SCALAR_HEAVYSIDE_OP", UNARY, S, None, S, "s{o} = heaviside(s{a}, 1.0)", (), 4057075,
        jax="_one({a} >= 0, dtype)"),
    _op(16, "VECTOR_HEAVYSIDE_OP", UNARY, V, None, V, "v{o} = heaviside(v{a}, 1.0)", (), 3965743,
        jax="_one({a} > 0, dtype)", zero=True),
    _op(17, "MATRIX_HEAVYSIDE_OP", UNARY, M, None, M, "m{o} = heaviside(m{a}, 1.0)", (), 6728311,
        jax="_one({a} > 0, dtype)", zero=True),
    _op(18, "SCALAR_VECTOR_PRODUCT_OP", BINARY, S, V, V, "v{o} = s{a} * v{b}", (), 3705015,
        jax="{a} * {b}", zero=True),
    _op(19, "SCALAR_BROADCAST_OP", UNARY, S, None, V, "v{o} = bcast(s{a})", (), 4165814,
        jax="jnp.broadcast_to({a}, (F,))", zero=True),
    _op(20, "VECTOR_RECIPROCAL_OP", UNARY, V, None, V, "v{o} = 1 / v{a}", (), 6311851,
        jax="1 / {a}"),
    _op(21, "VECTOR_NORM_OP", UNARY, V, None, S, "s{o} = norm(v{a})", (), 4810562,
        jax="_norm({a})", zero=True),
    _op(22, "VECTOR_ABS_OP", UNARY, V, None, V, "v{o} = abs(v{a})", (), 3713533,
        jax="jnp.abs({a})", zero=True),
    _op(23, "VECTOR_SUM_OP", BINARY, V, V, V, "v{o} = v{a} + v{b}", (), 4701519,
        jax="{a} + {b}", zero=True),
    _op(24, "VECTOR_DIFF_OP", BINARY, V, V, V, "v{o} = v{a} - v{b}", (), 4165747,
        jax="{a} - {b}", zero=True),
    _op(25, "VECTOR_PRODUCT_OP", BINARY, V, V, V, "v{o} = v{a} * v{b}", (), 4504555,
        jax="{a} * {b}", zero=True),
    _op(26, "VECTOR_DIVISION_OP", BINARY, V, V, V, "v{o} = v{a} / v{b}", (), 4556237,
        jax="{a} / {b}"),
    _op(27, "VECTOR_INNER_PRODUCT_OP", BINARY, V, V, S, "s{o} = dot(v{a}, v{b})", (), 4294617,
        jax="_dot({a}, {b})", zero=True),
    _op(28, "VECTOR_OUTER_PRODUCT_OP", BINARY, V, V, M, "m{o} = outer(v{a}, v{b})", (), 9833707,
        jax="{a}[:, None] * {b}[None, :]", zero=True),
    _op(29, "SCALAR_MATRIX_PRODUCT_OP", BINARY, S, M, M, "m{o} = s{a} * m{b}", (), 5986302,
        jax="{a} * {b}", zero=True),
    _op(30, "MATRIX_RECIPROCAL_OP", UNARY, M, None, M, "m{o} = 1 / m{a}", (), 24336141,
        jax="1 / {a}"),
    _op(31, "MATRIX_VECTOR_PRODUCT_OP", BINARY, M, V, V, "v{o} = dot(m{a}, v{b})", (), 9310002,
        jax="_matvec({a}, {b})", zero=True),
    _op(32, "VECTOR_COLUMN_BROADCAST_OP", UNARY, V, None, M, "m{o} = bcast(v{a}, axis=0)", (), 10993088,
        jax="jnp.broadcast_to({a}[:, None], (F, F))", zero=True),
    _op(33, "VECTOR_ROW_BROADCAST_OP", UNARY, V, None, M, "m{o} = bcast(v{a}, axis=1)", (), 11087322,
        jax="jnp.broadcast_to({a}[None, :], (F, F))", zero=True),
    _op(34, "MATRIX_NORM_OP", UNARY, M, None, S, "s{o} = norm(m{a})", (), 6422746,
        jax="_norm({a}.reshape(-1))", zero=True),
    _op(35, "MATRIX_COLUMN_NORM_OP", UNARY, M, None, V, "v{o} = norm(m{a}, axis=0)", (), 6682187,
        jax="_norm({a}.T, contiguous=False)", zero=True),
    _op(36, "MATRIX_ROW_NORM_OP", UNARY, M, None, V, "v{o} = norm(m{a}, axis=1)", (), 13351123,
        jax="_norm({a})", zero=True),
    _op(37, "MATRIX_TRANSPOSE_OP", UNARY, M, None, M, "m{o} = transpose(m{a})", (), 9394756,
        jax="{a}.T", zero=True),
    _op(38, "MATRIX_ABS_OP", UNARY, M, None, M, "m{o} = abs(m{a})", (), 4630926,
        jax="jnp.abs({a})", zero=True),
    _op(39, "MATRIX_SUM_OP", BINARY, M, M, M, "m{o} = m{a} + m{b}", (), 5579381,
        jax="{a} + {b}", zero=True),
    _op(40, "MATRIX_DIFF_OP", BINARY, M, M, M, "m{o} = m{a} - m{b}", (), 5429452,
        jax="{a} - {b}", zero=True),
    _op(41, "MATRIX_PRODUCT_OP", BINARY, M, M, M, "m{o} = m{a} * m{b}", (), 5475227,
        jax="{a} * {b}", zero=True),
    _op(42, "MATRIX_DIVISION_OP", BINARY, M, M, M, "m{o} = m{a} / m{b}", (), 18234378,
        jax="{a} / {b}"),
    _op(43, "MATRIX_MATRIX_PRODUCT_OP", BINARY, M, M, M, "m{o} = matmul(m{a}, m{b})", (), 14516296,
        jax="_matmul({a}, {b})", zero=True),
    _op(44, "SCALAR_MIN_OP", BINARY, S, S, S, "s{o} = minimum(s{a}, s{b})", (), 3677265,
        jax="jnp.where({b} < {a}, {b}, {a})", zero=True),
    _op(45, "VECTOR_MIN_OP", BINARY, V, V, V, "v{o} = minimum(v{a}, v{b})", (), 3989956,
        jax="jnp.where({b} < {a}, {b}, {a})", zero=True),
    _op(46, "MATRIX_MIN_OP", BINARY, M, M, M, "m{o} = minimum(m{a}, m{b})", (), 5457728,
        jax="jnp.where({a} < {b}, {a}, {b})", zero=True),
    _op(47, "SCALAR_MAX_OP", BINARY, S, S, S, "s{o} = maximum(s{a}, s{b})", (), 4573695,
        jax="jnp.where({a} < {b}, {b}, {a})", zero=True),
    _op(48, "VECTOR_MAX_OP", BINARY, V, V, V, "v{o} = maximum(v{a}, v{b})", (), 3974229,
        jax="jnp.where({a} < {b}, {b}, {a})", zero=True),
    _op(49, "MATRIX_MAX_OP", BINARY, M, M, M, "m{o} = maximum(m{a}, m{b})", (), 5840952,
        jax="jnp.where({a} > {b}, {a}, {b})", zero=True),
    _op(50, "VECTOR_MEAN_OP", UNARY, V, None, S, "s{o} = mean(v{a})", (), 4280443,
        jax="_mean({a})", zero=True),
    _op(51, "MATRIX_MEAN_OP", UNARY, M, None, S, "s{o} = mean(m{a})", (), 4595196,
        jax="_mean({a}.reshape(-1))", zero=True),
    _op(52, "MATRIX_ROW_MEAN_OP", UNARY, M, None, V, "v{o} = mean(m{a}, axis=1)", (), 9763956,
        jax="_mean({a})", zero=True),
    _op(53, "MATRIX_ROW_ST_DEV_OP", UNARY, M, None, V, "v{o} = std(m{a}, axis=1)", (), 16766477,
        jax="_std({a})", zero=True),
    _op(54, "VECTOR_ST_DEV_OP", UNARY, V, None, S, "s{o} = std(v{a})", (), 5585730,
        jax="_std({a})", zero=True),
    _op(55, "MATRIX_ST_DEV_OP", UNARY, M, None, S, "s{o} = std(m{a})", (), 10640216,
        jax="_std({a}.reshape(-1))", zero=True),
    _op(56, "SCALAR_CONST_SET_OP", DATA, None, None, S, "s{o} = {d}", (_D,), 3691108,
        jax="jnp.asarray({d}, dtype)"),
    _op(57, "VECTOR_CONST_SET_OP", DATA, None, None, V, "v{o}[{f0}] = {f1}", (_F0, _F1), 3991421,
        partial_write=True, index_fields=("f0",),
        jax="{o}.at[_const_index({f0}, F)].set({f1})"),
    _op(58, "MATRIX_CONST_SET_OP", DATA, None, None, M, "m{o}[{f0}, {f1}] = {f2}", (_F0, _F1, _F2), 3693035,
        partial_write=True, index_fields=("f0", "f1"),
        jax="{o}.at[_const_index({f0}, F), _const_index({f1}, F)].set({f2})"),
    _op(59, "SCALAR_UNIFORM_SET_OP", DATA, None, None, S, "s{o} = uniform({f0}, {f1})", (_F0, _F1), 26610704,
        jax="_uniform({key}, {f0}, {f1}, (), dtype)"),
    _op(60, "VECTOR_UNIFORM_SET_OP", DATA, None, None, V, "v{o} = uniform({f0}, {f1}, n_features)", (_F0, _F1), 57817372,
        jax="_uniform({key}, {f0}, {f1}, (F,), dtype)"),
    _op(61, "MATRIX_UNIFORM_SET_OP", DATA, None, None, M,
        "m{o} = uniform({f0}, {f1}, (n_features, n_features))", (_F0, _F1), 208339446,
        jax="_uniform({key}, {f0}, {f1}, (F, F), dtype)"),
    _op(62, "SCALAR_GAUSSIAN_SET_OP", DATA, None, None, S, "s{o} = gaussian({f0}, {f1})", (_F0, _F1), 20775635,
        jax="_gaussian({key}, {f0}, {f1}, (), dtype)"),
    _op(63, "VECTOR_GAUSSIAN_SET_OP", DATA, None, None, V, "v{o} = gaussian({f0}, {f1}, n_features)", (_F0, _F1), 77483018,
        jax="_gaussian({key}, {f0}, {f1}, (F,), dtype)"),
    _op(64, "MATRIX_GAUSSIAN_SET_OP", DATA, None, None, M,
        "m{o} = gaussian({f0}, {f1}, (n_features, n_features))", (_F0, _F1), 277690384,
        jax="_gaussian({key}, {f0}, {f1}, (F, F), dtype)"),
)
del S, V, M

NUM_OPS = len(OPS)
assert [op.code for op in OPS] == list(range(NUM_OPS))

OP_BY_NAME: dict[str, OpSpec] = {}
for _spec in OPS:
    OP_BY_NAME[_spec.name] = _spec
    OP_BY_NAME[_spec.short_name] = _spec
del _spec

# The op codes by reference name, e.g. ``Op.VECTOR_CONST_SET_OP == 57``, for code that
# names an op rather than writing its number (plain ints: numba and numpy take them).
Op = enum.IntEnum("Op", [(op.name, op.code) for op in OPS])

NO_OP = int(Op.NO_OP)
SCALAR_CONST_SET_OP = int(Op.SCALAR_CONST_SET_OP)
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
