"""Export an algorithm as standalone, jitted JAX functions (straight-line code, no interpreter).

:func:`export_source` writes a small Python module -- readable, copyable, depending on JAX
only -- with one line of ``jax.numpy`` per instruction and three functions:

* ``init(key, features_size, dtype)`` -> ``state``: wipes memory, runs Setup;
* ``predict(state, x, key)`` -> ``(state, prediction)``: the harness writes ``v0 = x``,
  ``s0 = 0`` and runs Predict (which may write memory: the new state carries it);
* ``learn(state, x, y, key)`` -> ``state``: the harness's training step after a Predict on
  the same example: for accuracy tasks ``s1 = sigmoid(s1)`` is first written to memory
  (reference ``Normalize``), then ``v0 = x``, ``s0 = y`` and Learn runs.

``state`` is a dict ``{"s1": ..., "v3": ..., "m0": ...}`` holding the memory cells the
algorithm touches (the label and feature cells ``s0``/``v0`` are re-written by the harness
before every call, so they are not state). :func:`export` compiles the module and returns
an :class:`ExportedAlgorithm` whose ``init(key)``, ``predict`` and ``learn`` are jitted for a
given feature size (any F >= 1). :func:`run_task` runs the reference evaluation loop
(spec §4: epochs, early termination, validation with memory carried) with them.

Each instruction is its op's JAX expression template (``OpSpec.jax`` in
:mod:`azero_jax.core.ops`), the one the JAX evaluator compiles into its branches, and the
exported module starts with the helpers those expressions call (the source of
:mod:`azero_jax.backends.jax.jax_ops`: reductions added in the reference's Eigen order, products
rounded before they are added). So every op computes bit for bit what the JAX evaluator
computes (``tests/test_export_parity.py``). Random ops draw from ``key`` (split once per
random instruction), not from the evaluators' streams: they match in distribution only.

Multi-class tasks (labels ``[n, K]``, our convention): before Predict ``v1`` is zeroed,
before Learn ``v1`` is the one-hot label padded to F (``s0`` is not touched), the
prediction is ``v2[:K]`` (logits); in training ``v2`` is replaced by a truncating softmax
over its first K entries before Learn.

Example:
    >>> import jax
    >>> from azero_jax.core import generator
    >>> from azero_jax.analysis.export import export
    >>> model = export(generator.linear_model(0.01), features_size=4)
    >>> state = model.init(jax.random.key(0))
    >>> state, y_hat = model.predict(state, [1.0, 2.0, 3.0, 4.0], jax.random.key(1))
    >>> float(y_hat)
    0.0
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Callable

import numpy as np

from azero_jax.core import ops as ops_lib
from azero_jax.core.results import MAX_ABS_ERROR
from azero_jax.core.program import Algorithm

_RMS, _ACC = "rms_error", "accuracy"

_SHAPE = {"S": "()", "V": "(F,)", "M": "(F, F)"}


def _num(x: float) -> str:
    x = float(x)
    if math.isnan(x):
        return "jnp.nan"
    if math.isinf(x):
        return "jnp.inf" if x > 0 else "-jnp.inf"
    return repr(x)


def _f32(x) -> float:
    """A float32 field promoted to double (what the reference computes with)."""
    return float(np.float32(x))


def _cell(type_: str, address: int) -> str:
    return f"{type_.lower()}{int(address)}"


def _instruction_line(record, random_index: int | None) -> str | None:
    """One line of Python for an instruction (None for NO_OP): the op's JAX expression
    template (``OpSpec.jax``, which the JAX evaluator compiles too) over the instruction's
    cells and constants."""
    spec = ops_lib.OPS[int(record["op"])]
    if spec.kind == ops_lib.NOOP:
        return None
    out = _cell(spec.out_type, record["out"])
    operands = {"o": out, "d": _num(record["d"]),
                **{name: _num(_f32(record[name])) for name in ("f0", "f1", "f2")}}
    if spec.in1_type:
        operands["a"] = _cell(spec.in1_type, record["in1"])
    if spec.in2_type:
        operands["b"] = _cell(spec.in2_type, record["in2"])
    if spec.random:
        operands["key"] = f"keys[{random_index}]"
    return f"{out} = {spec.jax_expression(**operands)}"


def touched_cells(algorithm: Algorithm) -> set[tuple[str, int]]:
    """Every memory cell ``(type, address)`` an instruction of ``algorithm`` reads or writes."""
    cells = set()
    for component in algorithm.components:
        for record in component:
            spec = ops_lib.OPS[int(record["op"])]
            for field, type_ in (("in1", spec.in1_type), ("in2", spec.in2_type),
                                 ("out", spec.out_type)):
                if type_ is not None:
                    cells.add((type_, int(record[field])))
    return cells


def state_cells(algorithm: Algorithm, num_classes: int = 0) -> list[str]:
    """Names of the memory cells held in the exported state, in a fixed order."""
    cells = touched_cells(algorithm) | {("S", 1)}
    if num_classes:
        cells |= {("V", 1), ("V", 2)}
    cells -= {("V", 0)} if num_classes else {("S", 0), ("V", 0)}
    order = {"S": 0, "V": 1, "M": 2}
    return [_cell(t, a) for t, a in sorted(cells, key=lambda c: (order[c[0]], c[1]))]


def _body(component, indent: str) -> list[str]:
    lines, random_count = [], 0
    for record in component:
        code = int(record["op"])
        random_index = None
        if code in ops_lib.RANDOM_OPS:
            random_index, random_count = random_count, random_count + 1
        line = _instruction_line(record, random_index)
        if line is not None:
            lines.append(indent + line)
    if random_count:
        lines.insert(0, f"{indent}keys = jax.random.split(key, {random_count})")
    return lines


def export_source(algorithm: Algorithm, eval_type: str = _RMS, num_classes: int = 0,
                  name: str = "algorithm") -> str:
    """Python source of a standalone module with ``init``, ``predict`` and ``learn``.

    Args:
      algorithm: the algorithm to export.
      eval_type: ``"rms_error"`` or ``"accuracy"`` (accuracy adds the harness's sigmoid).
      num_classes: K for multi-class tasks (vector labels in v1, prediction v2); 0 for
        scalar labels.
      name: a name for the module docstring.

    Example:
        >>> from azero_jax.core import generator
        >>> source = export_source(generator.linear_model())
        >>> [line.strip() for line in source.splitlines() if "_dot(v" in line]
        ['s1 = _dot(v1, v0)']
    """
    from azero_jax.backends.jax import jax_ops

    eval_type = _check_eval_type(eval_type, num_classes)
    cells = state_cells(algorithm, num_classes)
    unpack = [f"    {c} = state[{c!r}]" for c in cells]
    pack = "    return {" + ", ".join(f"{c!r}: {c}" for c in cells) + "}"
    dtype_line = "    dtype = x.dtype"
    lines = [
        f'"""{name}: exported by azero_jax.analysis.export (straight-line JAX, no interpreter).',
        "",
        "Memory cells: s<i> scalars, v<i> vectors [F], m<i> matrices [F, F]; state holds",
        "the cells the algorithm touches. Regenerate rather than edit by hand.",
        "",
        *["  " + line for line in str(algorithm).splitlines()],
        '"""',
        "import jax",
        "import jax.numpy as jnp",
        "",
        "# The helpers of azero_jax.backends.jax.jax_ops, which the ops' expressions call.",
        jax_ops.helpers_source(),
        "",
        "# The algorithm.",
        "",
        "",
        "def init(key, features_size, dtype=jnp.float32):",
        "    F = features_size",
    ]
    for c in (["v0"] if num_classes else ["s0", "v0"]) + cells:
        lines.append(f"    {c} = jnp.zeros({_SHAPE[c[0].upper()]}, dtype)")
    lines += _body(algorithm.setup, "    ")
    lines += [pack, "", ""]
    # Predict.
    lines += ["def predict(state, x, key):"] + unpack + [
        "    x = jnp.asarray(x, state['s1'].dtype)",
        dtype_line,
        "    F = x.shape[-1]",
        "    v0 = x",
    ]
    if num_classes:
        lines.append("    v1 = jnp.zeros((F,), dtype)")
    else:
        lines.append("    s0 = jnp.zeros((), dtype)")
    lines += _body(algorithm.predict, "    ")
    if num_classes:
        prediction = f"v2[:{int(num_classes)}]"
    elif eval_type == _ACC:
        prediction = "1.0 / (1.0 + jnp.exp(-s1))"
    else:
        prediction = "s1"
    lines += ["    prediction = " + prediction,
              pack.replace("    return {", "    return ({", 1) + ", prediction)", "", ""]
    # Learn.
    lines += ["def learn(state, x, y, key):"] + unpack + [
        "    x = jnp.asarray(x, state['s1'].dtype)",
        dtype_line,
        "    F = x.shape[-1]",
    ]
    if num_classes:
        k = int(num_classes)
        lines += [
            f"    logits = v2[:{k}]",
            "    e = jnp.exp(logits - jnp.max(logits))",
            f"    v2 = jnp.zeros((F,), dtype).at[:{k}].set(e / jnp.sum(e))",
            "    v0 = x",
            f"    v1 = jnp.zeros((F,), dtype).at[:{k}].set(jnp.asarray(y, dtype))",
        ]
    else:
        if eval_type == _ACC:
            lines.append("    s1 = 1.0 / (1.0 + jnp.exp(-s1))")
        lines += ["    v0 = x", "    s0 = jnp.asarray(y, dtype)"]
    lines += _body(algorithm.learn, "    ")
    lines += [pack, ""]
    return "\n".join(lines)


def _check_eval_type(eval_type: str, num_classes: int) -> str:
    value = str(eval_type).strip().lower()
    if value not in (_RMS, _ACC):
        raise ValueError(f"eval_type must be 'rms_error' or 'accuracy', got {eval_type!r}")
    if int(num_classes) < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}")
    if num_classes and value != _ACC:
        raise ValueError("num_classes > 0 (vector labels) needs eval_type 'accuracy'")
    return value


def load_source(source: str) -> dict[str, Callable]:
    """Executes exported source and returns its ``init``, ``predict`` and ``learn``."""
    namespace: dict[str, Any] = {"__name__": "azero_jax_exported"}
    exec(compile(source, "<azero_jax exported algorithm>", "exec"), namespace)  # noqa: S102
    return {k: namespace[k] for k in ("init", "predict", "learn")}


def _x64(dtype: str):
    if dtype == "float64":
        import jax
        return jax.enable_x64(True)
    return contextlib.nullcontext()


@dataclasses.dataclass(frozen=True, eq=False)
class ExportedAlgorithm:
    """Jitted ``init(key)``, ``predict(state, x, key)``, ``learn(state, x, y, key)``.

    Attributes:
      source: the generated Python module (print it, or save it and import it).
      features_size: F.
      eval_type: ``"rms_error"`` or ``"accuracy"``.
      num_classes: K for vector labels, else 0.
      dtype: ``"float32"`` or ``"float64"`` (float64 runs under ``jax.enable_x64``).
    """

    source: str
    features_size: int
    eval_type: str
    num_classes: int
    dtype: str
    _init: Callable = dataclasses.field(repr=False)
    _predict: Callable = dataclasses.field(repr=False)
    _learn: Callable = dataclasses.field(repr=False)
    _train_step: Callable = dataclasses.field(repr=False)

    def init(self, key):
        with _x64(self.dtype):
            return self._init(key)

    def predict(self, state, x, key):
        with _x64(self.dtype):
            return self._predict(state, x, key)

    def learn(self, state, x, y, key):
        with _x64(self.dtype):
            return self._learn(state, x, y, key)

    def train_step(self, state, x, y, key):
        """Predict then Learn on one example: ``(state, prediction, error)``.

        ``error`` is the harness's per-step training error (``|y - s1|`` after the
        sigmoid for accuracy; ``max_k |y_k - p_k|`` for vector labels).
        """
        with _x64(self.dtype):
            return self._train_step(state, x, y, key)


def export(algorithm: Algorithm, features_size: int, eval_type: str = _RMS,
           num_classes: int = 0, dtype: str = "float32") -> ExportedAlgorithm:
    """Compiles ``algorithm`` into jitted JAX functions for feature size ``features_size``.

    Args:
      algorithm: the algorithm (all 65 ops supported).
      features_size: F >= 1 (vectors have F entries, matrices F x F).
      eval_type: ``"rms_error"`` or ``"accuracy"``.
      num_classes: K for tasks with one-hot labels ``[n, K]`` (K <= F), else 0.
      dtype: ``"float32"`` or ``"float64"``.

    Raises:
      ValueError: for a bad feature size, eval type, class count or dtype.
    """
    import jax
    import jax.numpy as jnp

    if int(features_size) != features_size or features_size < 1:
        raise ValueError(f"features_size must be an integer >= 1, got {features_size}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    eval_type = _check_eval_type(eval_type, num_classes)
    if num_classes > features_size:
        raise ValueError(f"num_classes ({num_classes}) must be <= features_size "
                         f"({features_size})")
    source = export_source(algorithm, eval_type, num_classes)
    fns = load_source(source)
    features_size, num_classes = int(features_size), int(num_classes)
    jdtype = jnp.float64 if dtype == "float64" else jnp.float32
    predict, learn = fns["predict"], fns["learn"]

    def train_step(state, x, y, key):
        predict_key, learn_key = jax.random.split(key)
        state, prediction = predict(state, x, predict_key)
        y = jnp.asarray(y, prediction.dtype)
        if num_classes:
            logits = prediction
            e = jnp.exp(logits - jnp.max(logits))
            error = jnp.max(jnp.abs(y - e / jnp.sum(e)))
        else:
            error = jnp.abs(y - prediction)
        state = learn(state, x, y, learn_key)
        return state, prediction, error

    return ExportedAlgorithm(
        source=source, features_size=features_size, eval_type=eval_type,
        num_classes=num_classes, dtype=dtype,
        _init=jax.jit(lambda key: fns["init"](key, features_size, jdtype)),
        _predict=jax.jit(predict), _learn=jax.jit(learn), _train_step=jax.jit(train_step))


def export_for_task(algorithm: Algorithm, task, dtype: str = "float32") -> ExportedAlgorithm:
    """:func:`export` with the feature size, eval type and class count of ``task``."""
    return export(algorithm, task.features_size, task.eval_type, task.label_size, dtype)


# ----------------------------------------------------------------------------------
# The reference evaluation loop on exported functions.


@dataclasses.dataclass
class TaskRun:
    """What :func:`run_task` returns.

    Attributes:
      fitness: the reference fitness (best validation fitness over completed epochs).
      train_steps: training steps executed (an aborting step counts).
      train_errors: per-step training errors of every executed step (all epochs).
      predictions: training predictions (s1, after the sigmoid for accuracy) per step.
      valid_fitness: validation fitness after each completed epoch.
      valid_predictions: the validation predictions of the last validation pass.
      aborted: whether training stopped on a NaN / too large error.
      state: memory at the end.
    """

    fitness: float
    train_steps: int
    train_errors: np.ndarray
    predictions: np.ndarray
    valid_fitness: list
    valid_predictions: np.ndarray | None
    aborted: bool
    state: Any = None


def _scan_fns(model: ExportedAlgorithm):
    """Jitted scans over a block of training / validation examples (cached per model)."""
    cached = getattr(model, "_scans", None)
    if cached is not None:
        return cached
    import jax

    train_step, predict = model._train_step, model._predict

    def train_block(state, xs, ys, key, offset):
        def body(state, item):
            x, y, i = item
            state, prediction, error = train_step(state, x, y, jax.random.fold_in(key, i))
            return state, (prediction, error)
        steps = offset + jax.numpy.arange(xs.shape[0])
        return jax.lax.scan(body, state, (xs, ys, steps))

    def valid_block(state, xs, key):
        def body(state, item):
            x, i = item
            state, prediction = predict(state, x, jax.random.fold_in(key, i))
            return state, prediction
        return jax.lax.scan(body, state, (xs, jax.numpy.arange(xs.shape[0])))

    cached = (jax.jit(train_block), jax.jit(valid_block))
    object.__setattr__(model, "_scans", cached)
    return cached


def _valid_fitness(model: ExportedAlgorithm, predictions, y_valid, max_abs_error) -> float:
    from azero_jax.backends.evaluator import flip_and_squash
    predictions = np.asarray(predictions, dtype=np.float64)
    if model.num_classes:
        logits = np.where(np.isnan(predictions), -np.inf, predictions)
        classes = np.argmax(logits, axis=1)
        correct = classes == np.argmax(y_valid, axis=1)
        return float(np.mean(correct))
    if model.eval_type == _ACC:
        with np.errstate(invalid="ignore"):
            correct = (y_valid > 0.5) == (predictions > 0.5)
        return float(1.0 - np.sum(~correct) / len(y_valid))
    errors = y_valid - predictions
    with np.errstate(invalid="ignore"):
        if np.any(np.isnan(errors) | (np.abs(errors) > max_abs_error)):
            return 0.0
    return float(flip_and_squash(np.sqrt(np.sum(errors * errors) / len(y_valid))))


def validate(model: ExportedAlgorithm, state, task, key, max_abs_error: float = MAX_ABS_ERROR):
    """One validation pass (memory carried, as the harness does): ``(state, fitness, predictions)``."""
    _, valid_block = _scan_fns(model)
    with _x64(model.dtype):
        state, predictions = valid_block(state, np.asarray(task.x_valid, model.dtype), key)
    predictions = np.asarray(predictions)
    return state, _valid_fitness(model, predictions, task.y_valid, max_abs_error), predictions


def run_task(model: ExportedAlgorithm | Algorithm, task, key=None,
             max_abs_error: float = MAX_ABS_ERROR, dtype: str = "float32") -> TaskRun:
    """Runs the reference evaluation loop (spec §4) with exported functions.

    Setup once; per epoch: train on the epoch's order (stop at the first NaN error or
    error > ``max_abs_error``: fitness 0 in the first epoch, else the best so far), then
    validate with memory carried into the next epoch; fitness = best validation fitness.

    Args:
      model: an :class:`ExportedAlgorithm` (or an Algorithm, exported for ``task``).
      task: a :class:`azero_jax.core.tasks.Task`.
      key: a JAX key for random ops (default ``jax.random.key(0)``).
      max_abs_error: the early-termination threshold.
      dtype: used only when ``model`` is an Algorithm.

    Example:
        >>> from azero_jax.core import generator, tasks
        >>> task = tasks.scalar_linear_regression_task(4, 1000, 50, data_seed=1, param_seed=2)
        >>> run_task(generator.linear_model(0.01), task).fitness > 0.99
        True
    """
    import jax

    if isinstance(model, Algorithm):
        model = export_for_task(model, task, dtype)
    if (model.features_size, model.num_classes) != (task.features_size, task.label_size):
        raise ValueError(f"model exported for F={model.features_size}, K={model.num_classes} "
                         f"but task has F={task.features_size}, K={task.label_size}")
    if model.eval_type != task.eval_type:
        raise ValueError(f"model exported for {model.eval_type!r} but task is {task.eval_type!r}")
    if key is None:
        key = jax.random.key(0)
    train_block, _ = _scan_fns(model)
    init_key, train_key, valid_key = jax.random.split(key, 3)
    state = model.init(init_key)
    best, steps, aborted = 0.0, 0, False
    errors_all, predictions_all, valid_fitness, valid_predictions = [], [], [], None
    for epoch in range(task.num_epochs):
        order = task.train_orders[epoch]
        xs = np.asarray(task.x_train[order], model.dtype)
        ys = np.asarray(task.y_train[order], model.dtype)
        with _x64(model.dtype):
            new_state, (predictions, errors) = train_block(
                state, xs, ys, train_key, epoch * task.num_train)
        errors = np.asarray(errors, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(np.isnan(errors) | (errors > max_abs_error))
        n = task.num_train if len(bad) == 0 else int(bad[0]) + 1
        steps += n
        errors_all.append(errors[:n])
        predictions_all.append(np.asarray(predictions)[:n])
        if len(bad):
            aborted = True
            if epoch == 0:
                best = 0.0
            break
        state = new_state
        state, fitness, valid_predictions = validate(
            model, state, task, jax.random.fold_in(valid_key, epoch), max_abs_error)
        valid_fitness.append(fitness)
        best = max(best, fitness)
    return TaskRun(fitness=float(best), train_steps=steps,
                   train_errors=np.concatenate(errors_all),
                   predictions=np.concatenate(predictions_all), valid_fitness=valid_fitness,
                   valid_predictions=valid_predictions, aborted=aborted, state=state)


__all__ = ["ExportedAlgorithm", "TaskRun", "export", "export_for_task", "export_source",
           "load_source", "run_task", "state_cells", "touched_cells", "validate"]
