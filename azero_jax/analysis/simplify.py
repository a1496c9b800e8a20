"""Static simplification of algorithms (paper supplement S8a): drop instructions that
cannot affect any prediction.

The analysis is a *strong liveness* (faint-variable) dataflow analysis over the whole
evaluation loop of spec §4, with memory cells (``s3``, ``v1``, ``m0``...) as variables:

* Setup runs once on wiped memory, then the harness loops: ``v0 = x; s0 = 0`` ->
  Predict -> the prediction ``s1`` is read -> either (training) ``v0 = x; s0 = label`` ->
  Learn -> next Predict, or (validation) the next Predict; validation flows back into
  training, and memory persists through all of it. So the cells live after Predict are
  ``s1`` plus whatever the next Predict or Learn needs, and the cells live after Learn
  (and Setup) are what the next Predict needs: a fixed point over Predict + Learn.
* The harness's writes of ``v0`` and ``s0`` before Predict and Learn kill those cells
  (an instruction's write to them never reaches a later block). For accuracy tasks the
  harness's ``s1 = sigmoid(s1)`` before Learn reads and writes ``s1`` and changes no set.
  For vector labels (multi-class) the harness re-writes ``v0`` and ``v1`` (the label,
  zeroed before Predict) but not ``s0``, and the prediction is ``v2`` (which the
  harness's softmax reads and writes).
* An instruction is *needed* iff the cell it writes is live after it; only needed
  instructions make their inputs live (strong liveness, so self-sustaining dead loops
  such as a weight update that never reaches the prediction are removed too).
  The partial writes (``OpSpec.partial_write``: the const-set ops 57/58) write one
  entry: the cell's other entries pass through, so they do not kill the cell.
* Before that, Setup instructions that provably change nothing are dropped: Setup runs
  on wiped memory, so e.g. ``v2 = s3 * v0`` with ``s3`` and ``v0`` still zero writes a
  zero over a zero (:func:`setup_noops`, from the op table's ``zero`` and
  ``value_fields`` columns; signed zeros are tracked).

**Random ops** consume random numbers, so removing a dead one would shift the draws of
every later random op of the stream and change (in distribution only) the fitness. By
default (``random_ops="keep"``) random ops are never removed, and when the algorithm
has any, removed instructions are replaced by NO_OPs in place (``compact=None`` ->
positions kept) so that every backend's random stream -- whether it is sequential or
keyed by instruction position -- sees exactly the same draws: the simplified algorithm
gives the identical fitness. ``random_ops="remove"`` treats them like any other write
(dead ones are dropped); the fitness is then equal in distribution only.

Example:
    >>> from azero_jax import parse_algorithm
    >>> from azero_jax.analysis.simplify import simplify
    >>> algorithm = parse_algorithm('''
    ... def Setup():
    ...   s2 = 0.01
    ...   s3 = 5
    ... def Predict():
    ...   s1 = dot(v1, v0)
    ...   v2 = v1 + v1
    ... def Learn():
    ...   s3 = s0 - s1
    ...   s3 = s2 * s3
    ...   v2 = s3 * v0
    ...   v1 = v1 + v2
    ... ''')
    >>> print(simplify(algorithm), end="")
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

import dataclasses

import numpy as np

from azero_jax.core import ops as ops_lib
from azero_jax.core.program import COMPONENTS, Algorithm, as_component, noop_component

Cell = tuple[str, int]
PARTIAL_WRITE_OPS = frozenset(op.code for op in ops_lib.OPS if op.partial_write)
RANDOM_MODES = ("keep", "remove")


def _reads(record) -> list[Cell]:
    spec = ops_lib.OPS[int(record["op"])]
    cells = []
    if spec.in1_type is not None:
        cells.append((spec.in1_type, int(record["in1"])))
    if spec.in2_type is not None:
        cells.append((spec.in2_type, int(record["in2"])))
    return cells


def _write(record) -> Cell | None:
    spec = ops_lib.OPS[int(record["op"])]
    return None if spec.out_type is None else (spec.out_type, int(record["out"]))


def _backward(component, live_out: frozenset, keep_random: bool):
    """Strong liveness through one component: ``(live_in, needed mask)``."""
    live = set(live_out)
    needed = np.zeros(len(component), dtype=bool)
    for i in range(len(component) - 1, -1, -1):
        record = component[i]
        code = int(record["op"])
        out = _write(record)
        if out is None:
            continue
        is_needed = out in live or (keep_random and code in ops_lib.RANDOM_OPS)
        if not is_needed:
            continue
        needed[i] = True
        if code not in PARTIAL_WRITE_OPS:
            live.discard(out)
        live.update(_reads(record))
    return frozenset(live), needed




def _is_positive_zero(x) -> bool:
    return float(x) == 0.0 and not np.signbit(float(x))


def setup_noops(setup) -> np.ndarray:
    """Setup instructions that provably leave memory unchanged (a bool mask).

    Setup starts on wiped memory (every cell +0, including ``s0`` and ``v0``). An
    instruction whose result is +0 because all its inputs are still +0 (e.g.
    ``v2 = s3 * v0`` before anything wrote ``s3``), or a constant +0, written into a cell
    that is still +0, changes nothing. Signed zeros are tracked (``-0`` is not ``+0``:
    ``1 / -0`` is ``-inf``).
    """
    written: set[Cell] = set()
    mask = np.zeros(len(setup), dtype=bool)

    def is_zero(cell):
        return cell not in written

    for i, record in enumerate(setup):
        spec = ops_lib.OPS[int(record["op"])]
        out = _write(record)
        if out is None:
            continue
        if spec.zero:
            result_zero = all(is_zero(c) for c in _reads(record))
        elif spec.random or not spec.value_fields:
            result_zero = False
        else:  # a const-set op: its one value field is the value written
            (field,) = spec.value_fields
            value = record[field] if field == "d" else np.float32(record[field])
            result_zero = _is_positive_zero(value)
        if result_zero and is_zero(out):
            mask[i] = True
        elif result_zero and not spec.partial_write:
            written.discard(out)
        else:
            written.add(out)
    return mask


@dataclasses.dataclass(frozen=True)
class Liveness:
    """Result of :func:`analyze`.

    Attributes:
      needed: per component (setup, predict, learn) a bool mask of needed instructions.
      live_before_predict: cells live at the start of Predict's body (after the harness).
      live_before_learn: cells live at the start of Learn's body.
      live_after_setup: cells Setup must provide.
      iterations: fixed-point iterations used.
    """

    needed: tuple[np.ndarray, np.ndarray, np.ndarray]
    live_before_predict: frozenset
    live_before_learn: frozenset
    live_after_setup: frozenset
    iterations: int

    @property
    def num_removed(self) -> tuple[int, int, int]:
        return tuple(int((~m).sum()) for m in self.needed)


def _harness_cells(num_classes: int) -> tuple[frozenset, frozenset]:
    """(cells the harness writes before Predict/Learn, cells read as the prediction)."""
    features = ("V", ops_lib.FEATURES_VECTOR_ADDRESS)
    if num_classes:  # the label goes to v1 (zeroed before Predict); s0 is not touched
        return frozenset({features, ("V", 1)}), frozenset({("V", 2)})
    return (frozenset({features, ("S", ops_lib.LABELS_SCALAR_ADDRESS)}),
            frozenset({("S", ops_lib.PREDICTIONS_SCALAR_ADDRESS)}))


def analyze(algorithm: Algorithm, num_classes: int = 0, random_ops: str = "keep") -> Liveness:
    """Strong liveness of every instruction over the evaluation loop (see module doc).

    Args:
      algorithm: the algorithm.
      num_classes: K > 0 for vector-label tasks (prediction v2, label v1), else 0.
      random_ops: ``"keep"`` (random ops are always needed) or ``"remove"``.
    """
    if random_ops not in RANDOM_MODES:
        raise ValueError(f"random_ops must be one of {RANDOM_MODES}, got {random_ops!r}")
    keep_random = random_ops == "keep"
    noops = setup_noops(algorithm.setup)
    if noops.any():
        setup = np.array(algorithm.setup)
        setup[noops] = noop_component(int(noops.sum()))
        algorithm = algorithm.replace(0, as_component(setup))
    harness, outputs = _harness_cells(num_classes)
    in_predict, in_learn = frozenset(), frozenset()
    iterations = 0
    while True:
        iterations += 1
        before_predict = in_predict - harness  # live before the harness writes
        before_learn = in_learn - harness
        out_predict = outputs | before_predict | before_learn
        new_in_predict, _ = _backward(algorithm.predict, out_predict, keep_random)
        new_in_learn, _ = _backward(algorithm.learn, before_predict, keep_random)
        if (new_in_predict, new_in_learn) == (in_predict, in_learn):
            break
        # Monotone on a finite lattice: union keeps the iteration increasing.
        in_predict, in_learn = in_predict | new_in_predict, in_learn | new_in_learn
    before_predict = in_predict - harness
    out_predict = outputs | before_predict | (in_learn - harness)
    _, need_predict = _backward(algorithm.predict, out_predict, keep_random)
    _, need_learn = _backward(algorithm.learn, before_predict, keep_random)
    _, need_setup = _backward(algorithm.setup, before_predict, keep_random)
    return Liveness((need_setup, need_predict, need_learn), in_predict, in_learn,
                    before_predict, iterations)


def simplify(algorithm: Algorithm, num_classes: int = 0, random_ops: str = "keep",
             compact: bool | None = None) -> Algorithm:
    """Removes every instruction that cannot affect any prediction (and all NO_OPs).

    Args:
      algorithm: the algorithm to simplify.
      num_classes: K > 0 for vector-label tasks, else 0 (the eval type does not matter).
      random_ops: ``"keep"`` (default: random ops are never removed, so fitness is
        identical on every backend) or ``"remove"`` (dead random ops are dropped too:
        fitness equal in distribution only).
      compact: delete removed instructions (True) or replace them by NO_OPs in place
        (False, which keeps every instruction's position). Default (None): compact
        unless the simplified algorithm still has random ops.

    Returns:
      The simplified algorithm; with the same tasks and seed it gives the identical
      fitness (see the module doc for random ops).
    """
    # Dropping a dead write can make a later Setup write a no-op (a zero over a zero
    # again), so repeat until nothing changes; positions are kept while iterating.
    masked = algorithm
    while True:
        liveness = analyze(masked, num_classes, random_ops)
        again = apply_mask(masked, liveness.needed, compact=False)
        if again == masked:
            break
        masked = again
    simplified = strip_noops(masked)
    if compact is None:
        compact = not simplified.uses_random_ops()
    return simplified if compact else masked


def apply_mask(algorithm: Algorithm, masks, compact: bool = True) -> Algorithm:
    """Keeps the instructions where ``masks[c]`` is True (others deleted or NO_OP'd)."""
    parts = []
    for c, (component, mask) in enumerate(zip(algorithm.components, masks)):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(component),):
            raise ValueError(f"mask for {COMPONENTS[c]} has shape {mask.shape}, expected "
                             f"({len(component)},)")
        if compact:
            parts.append(as_component(component[mask]))
        else:
            out = np.array(component)
            out[~mask] = noop_component(int((~mask).sum()))
            parts.append(as_component(out))
    return Algorithm(*parts)


def strip_noops(algorithm: Algorithm) -> Algorithm:
    """The algorithm without NO_OPs (for reading; changes positions of later instructions)."""
    return apply_mask(algorithm, [c["op"] != ops_lib.NO_OP for c in algorithm.components])


def size_report(original: Algorithm, simplified: Algorithm) -> str:
    """A one-line summary, e.g. ``setup 21->3, predict 21->5, learn 45->9 (87 -> 17)``."""
    def count(a):
        return [int((c["op"] != ops_lib.NO_OP).sum()) for c in a.components]
    before, after = list(original.sizes), count(simplified)
    parts = [f"{name} {b}->{a}" for name, b, a in zip(COMPONENTS, before, after)]
    return ", ".join(parts) + f" ({sum(before)} -> {sum(after)} instructions)"


__all__ = ["Liveness", "analyze", "apply_mask", "setup_noops", "simplify", "size_report",
           "strip_noops"]
