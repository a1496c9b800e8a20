"""Algorithms: three component functions (Setup, Predict, Learn) of instructions.

On the host an :class:`Algorithm` holds one numpy structured array per component
function (fields ``op, in1, in2, out, d, f0, f1, f2``; ``d`` is the float64
``activation_data`` and ``f0..f2`` the float32 ``float_data_*`` of the reference).
The arrays are read-only: a mutation builds new arrays, so parents and children
can share them safely, like the reference's copy-on-write instructions.

The text format is exactly the reference's print (§3.3), and
:func:`parse_algorithm` reads it back.

Example:
    >>> from azero_jax import parse_algorithm, format_algorithm
    >>> text = "def Setup():\\n  s2 = 0.01\\ndef Predict():\\n  s1 = dot(v1, v0)\\ndef Learn():\\n"
    >>> format_algorithm(parse_algorithm(text)) == text
    True
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Iterable, Sequence

import numpy as np

from azero_jax.core import ops as ops_lib
from azero_jax.core.errors import AzeroError

INSTRUCTION_DTYPE = np.dtype([
    ("op", np.int32),
    ("in1", np.int32),
    ("in2", np.int32),
    ("out", np.int32),
    ("d", np.float64),
    ("f0", np.float32),
    ("f1", np.float32),
    ("f2", np.float32),
])

COMPONENTS = ("setup", "predict", "learn")
SETUP, PREDICT, LEARN = 0, 1, 2
_HEADERS = ("def Setup():", "def Predict():", "def Learn():")


def instruction(op: int | str, in1: int = 0, in2: int = 0, out: int = 0, d: float = 0.0,
                f0: float = 0.0, f1: float = 0.0, f2: float = 0.0) -> np.void:
    """Builds one instruction record (op by code or enum name)."""
    return np.array((ops_lib.op_code(op), in1, in2, out, d, f0, f1, f2),
                    dtype=INSTRUCTION_DTYPE)[()]


def as_component(instructions: np.ndarray | Iterable) -> np.ndarray:
    """Returns a read-only structured array of instructions (no copy if already one)."""
    if (isinstance(instructions, np.ndarray) and instructions.dtype == INSTRUCTION_DTYPE
            and instructions.ndim == 1 and not instructions.flags.writeable):
        return instructions
    if isinstance(instructions, np.ndarray) and instructions.dtype == INSTRUCTION_DTYPE:
        array = np.array(instructions, dtype=INSTRUCTION_DTYPE).reshape(-1)
    else:
        items = list(instructions)
        array = np.empty(len(items), dtype=INSTRUCTION_DTYPE)
        for i, item in enumerate(items):
            array[i] = item if isinstance(item, np.void) else instruction(*item)
    array.setflags(write=False)
    return array


def noop_component(size: int) -> np.ndarray:
    return as_component(np.zeros(size, dtype=INSTRUCTION_DTYPE))


@dataclasses.dataclass(frozen=True, eq=False)
class Algorithm:
    """An evolved (or hand-written) algorithm: Setup, Predict and Learn instruction lists.

    Equality and hashing are exact (every field bit for bit), which is what
    de-duplication needs; :meth:`approx_equal` is the reference's tolerant equality.
    """

    setup: np.ndarray
    predict: np.ndarray
    learn: np.ndarray

    def __post_init__(self):
        for name in COMPONENTS:
            object.__setattr__(self, name, as_component(getattr(self, name)))

    @property
    def components(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (self.setup, self.predict, self.learn)

    @property
    def sizes(self) -> tuple[int, int, int]:
        return tuple(len(c) for c in self.components)

    def replace(self, component: int, instructions) -> "Algorithm":
        """A copy with component function ``component`` (0, 1, 2) replaced."""
        parts = list(self.components)
        parts[component] = instructions
        return Algorithm(*parts)

    def key(self) -> bytes:
        """Exact byte key of the algorithm (sizes plus every field)."""
        return b"|".join(c.tobytes() for c in self.components)

    def __eq__(self, other):
        return isinstance(other, Algorithm) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    def op_codes(self, component: int | None = None) -> frozenset[int]:
        parts = self.components if component is None else (self.components[component],)
        return frozenset(int(op) for part in parts for op in np.unique(part["op"]))

    def uses_random_ops(self) -> bool:
        return bool(self.op_codes() & ops_lib.RANDOM_OPS)

    def approx_equal(self, other: "Algorithm", tol: float = 1e-5) -> bool:
        """The reference's equality: same ops/addresses, data within ``tol``."""
        if self.sizes != other.sizes:
            return False
        for a, b in zip(self.components, other.components):
            for field in ("op", "in1", "in2", "out"):
                if not np.array_equal(a[field], b[field]):
                    return False
            for field in ("d", "f0", "f1", "f2"):
                diff = np.abs(a[field].astype(np.float64) - b[field].astype(np.float64))
                if not np.all(diff < tol):
                    return False
        return True

    def __str__(self):
        return format_algorithm(self)

    def __repr__(self):
        return f"Algorithm(sizes={self.sizes})"


def noop_algorithm(setup_size: int, predict_size: int, learn_size: int) -> Algorithm:
    return Algorithm(noop_component(setup_size), noop_component(predict_size),
                     noop_component(learn_size))


# ----------------------------------------------------------------------------------
# Text format.


def format_number(x: float) -> str:
    """C++ default stream formatting of a double (6 significant digits, %g style)."""
    x = float(x)
    if math.isnan(x):
        return "-nan" if math.copysign(1.0, x) < 0 else "nan"
    return format(x, "g")


def format_instruction(record) -> str:
    spec = ops_lib.OPS[int(record["op"])]
    return spec.template.format(
        o=int(record["out"]), a=int(record["in1"]), b=int(record["in2"]),
        d=format_number(record["d"]), f0=format_number(record["f0"]),
        f1=format_number(record["f1"]), f2=format_number(record["f2"]))


def format_algorithm(algorithm: Algorithm) -> str:
    """The reference's readable print of an algorithm (``Algorithm::ToReadable``)."""
    lines = []
    for header, component in zip(_HEADERS, algorithm.components):
        lines.append(header + "\n")
        for record in component:
            lines.append("  " + format_instruction(record) + "\n")
    return "".join(lines)


_FLOAT = r"([-+]?(?:nan|inf|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))"
_ADDR = r"(\d+)"
_PLACEHOLDER = re.compile(r"\{(o|a|b|d|f0|f1|f2)\}")


def _compile_template(template: str) -> tuple[re.Pattern, tuple[str, ...]]:
    pattern, names, pos = [], [], 0
    for match in _PLACEHOLDER.finditer(template):
        literal = template[pos:match.start()]
        pattern.append(re.escape(literal).replace(r"\ ", r"\s*"))
        name = match.group(1)
        names.append(name)
        pattern.append(_ADDR if name in ("o", "a", "b") else _FLOAT)
        pos = match.end()
    pattern.append(re.escape(template[pos:]).replace(r"\ ", r"\s*"))
    return re.compile("".join(pattern)), tuple(names)


_PATTERNS = [(spec, *_compile_template(spec.template)) for spec in ops_lib.OPS]
_FIELD = {"o": "out", "a": "in1", "b": "in2", "d": "d", "f0": "f0", "f1": "f1", "f2": "f2"}


class ParseError(AzeroError):
    """A line of algorithm text that is not in the reference format."""


class AddressError(AzeroError):
    """An algorithm addresses memory beyond the configured sizes (``--max_*_addresses``)."""


def parse_instruction(line: str) -> np.void:
    """Parses one instruction line (leading/trailing whitespace ignored)."""
    text = line.strip()
    for spec, pattern, names in _PATTERNS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        values = {"op": spec.code}
        for name, value in zip(names, match.groups()):
            values[_FIELD[name]] = int(value) if name in ("o", "a", "b") else float(value)
        try:
            return instruction(**values)
        except OverflowError:  # an address beyond int32: a parse error, not a crash
            raise ParseError(f"address out of range in {text!r}") from None
    raise ParseError(f"not an instruction in the reference text format: {text!r}")


def parse_algorithm(text: str) -> Algorithm:
    """Parses the reference's readable algorithm text (inverse of :func:`format_algorithm`).

    Args:
      text: ``def Setup():`` / ``def Predict():`` / ``def Learn():`` headers, in this
        order, each followed by its instruction lines. Blank lines and ``#`` comments
        are ignored.

    Raises:
      ParseError: naming the offending line.
    """
    parts: list[list[np.void]] = [[], [], []]
    current = -1
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line in _HEADERS:
            index = _HEADERS.index(line)
            if index != current + 1:
                raise ParseError(f"line {number}: {line!r} out of order; expected "
                                 f"{_HEADERS[current + 1]!r}")
            current = index
            continue
        if current < 0:
            raise ParseError(f"line {number}: instruction before 'def Setup():': {line!r}")
        try:
            parts[current].append(parse_instruction(line))
        except ParseError as error:
            raise ParseError(f"line {number}: {error}") from None
    if current != 2:
        raise ParseError(f"missing {_HEADERS[current + 1]!r} (an algorithm has Setup, Predict "
                         "and Learn, in that order)")
    return Algorithm(*(as_component(p) for p in parts))


_TYPE_LIMIT_INDEX = {"S": 0, "V": 1, "M": 2}
# For each op and operand field: which memory size bounds it (-1: the field is unused).
_OPERAND_LIMITS = np.array(
    [[_TYPE_LIMIT_INDEX.get(t, -1) for t in (spec.in1_type, spec.in2_type, spec.out_type)]
     for spec in ops_lib.OPS], dtype=np.int64)


def validate_addresses(algorithm: Algorithm, num_scalars: int, num_vectors: int,
                       num_matrices: int) -> None:
    """Raises :class:`AddressError` (a ``ValueError``) if an instruction addresses memory
    outside the given sizes."""
    limits = np.array([num_scalars, num_vectors, num_matrices, np.iinfo(np.int64).max])
    for name, component in zip(COMPONENTS, algorithm.components):
        if not len(component):
            continue
        kinds = _OPERAND_LIMITS[component["op"]]  # [n, 3]
        addresses = np.stack([component["in1"], component["in2"], component["out"]], axis=1)
        bad = (addresses < 0) | (addresses >= limits[kinds])
        bad &= kinds >= 0
        if not bad.any():
            continue
        index, field = (int(i) for i in np.argwhere(bad)[0])
        record = component[index]
        type_ = "SVM"[kinds[index, field]]
        word = {"S": "scalar", "V": "vector", "M": "matrix"}[type_]
        raise AddressError(
            f"{name} instruction {index} ({format_instruction(record)!r}) uses "
            f"{type_.lower()}{int(addresses[index, field])}, but memory has only "
            f"{limits[kinds[index, field]]} {word} addresses")


def pad_components(algorithms: Sequence[Algorithm], lengths: Sequence[int]) -> list[np.ndarray]:
    """Stacks algorithms into one ``[B, L_c]`` structured array per component, NO_OP padded."""
    out = []
    for c, length in enumerate(lengths):
        block = np.zeros((len(algorithms), length), dtype=INSTRUCTION_DTYPE)
        for i, algorithm in enumerate(algorithms):
            part = algorithm.components[c]
            if len(part) > length:
                raise ValueError(f"{COMPONENTS[c]} has {len(part)} instructions, more than "
                                 f"the padded length {length}")
            block[i, :len(part)] = part
        out.append(block)
    return out
