"""Tasks: train/valid examples plus how an algorithm is scored on them (spec §5).

A :class:`Task` is plain numpy data. Generators follow the reference's
definitions (features iid N(0,1), teachers, seeds with the reference's offsets)
but draw from numpy's Mersenne Twister with its own normal sampler, so the
numbers differ from the C++ reference's Abseil streams (spec §11); figures that
depend on the task data are comparable in distribution only.

Example:
    >>> from azero_jax.core import tasks
    >>> task = tasks.scalar_linear_regression_task(4, 100, 10, data_seed=1, param_seed=2)
    >>> task.x_train.shape, task.features_size
    ((100, 4), 4)
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from azero_jax.core.errors import DataError, SpecError

RMS_ERROR = "rms_error"
ACCURACY = "accuracy"
EVAL_TYPES = (RMS_ERROR, ACCURACY)

# Offsets the reference adds to seeds before seeding each generator (task_util.h).
_LINEAR_DATA_OFFSET = 939723201
_LINEAR_PARAM_OFFSET = 997958712
_NN_DATA_OFFSET = 865546086
_NN_PARAM_OFFSET = 174299604
_AFFINE_DATA_OFFSET = 382948197  # our own: the reference has no affine task
_AFFINE_PARAM_OFFSET = 728148183
_SHUFFLE_OFFSET = 3274582109

DEFAULT_PARAM_SEEDS = (1001, 1012, 1010, 1000, 1006, 1008, 1007, 1003)
DEFAULT_DATA_SEEDS = (11001, 11012, 11010, 11000, 11006, 11008, 11007, 11003)


def _rng(seed: int, offset: int) -> np.random.RandomState:
    return np.random.RandomState((int(seed) + offset) % 2**32)


def normalize_eval_type(eval_type: str) -> str:
    value = str(eval_type).strip().lower()
    if value not in EVAL_TYPES:
        raise DataError(f"eval_type must be 'rms_error' or 'accuracy', got {eval_type!r}")
    return value


def epoch_orders(num_train: int, num_epochs: int, shuffle_seed: int) -> np.ndarray:
    """Training orders ``[E, n]``: epoch 0 is the identity, epoch e shuffles epoch e-1 again."""
    rng = _rng(shuffle_seed, _SHUFFLE_OFFSET)
    order = np.arange(num_train, dtype=np.int32)
    orders = np.empty((num_epochs, num_train), dtype=np.int32)
    for epoch in range(num_epochs):
        orders[epoch] = order
        rng.shuffle(order)
    return orders


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """One task: examples, evaluation type and epoch orders.

    Attributes:
      x_train, x_valid: float64 features ``[n, F]``.
      y_train, y_valid: labels ``[n]`` (scalar labels) or ``[n, K]`` (vector labels).
      eval_type: ``"rms_error"`` or ``"accuracy"``.
      num_epochs: training epochs (fitness = best validation over epochs).
      train_orders: ``[num_epochs, n_train]`` example order of each epoch.
      index: position in its task collection (part of the FEC fingerprint).
      data_seed, param_seed: the seeds it was generated from, if any.
      name: a short description for logs.
      allow_nonfinite: accept NaN / inf features and labels (refused by default: one
        NaN makes every algorithm score 0, silently).

    Raises:
      DataError: for arrays of the wrong shape, non-finite values (unless allowed), or
        labels that do not fit ``eval_type`` (accuracy: scalar labels 0 or 1, vector
        labels one-hot).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    eval_type: str = RMS_ERROR
    num_epochs: int = 1
    train_orders: np.ndarray | None = None
    index: int = 0
    data_seed: int = 0
    param_seed: int = 0
    name: str = ""
    allow_nonfinite: bool = False

    def __post_init__(self):
        def arr(name, ndim):
            value = np.array(getattr(self, name), dtype=np.float64)
            if value.ndim not in ndim:
                raise DataError(f"Task.{name} must have {' or '.join(map(str, ndim))} "
                                 f"dimensions, got shape {value.shape}")
            value.setflags(write=False)
            object.__setattr__(self, name, value)
            return value

        x_train, x_valid = arr("x_train", (2,)), arr("x_valid", (2,))
        y_train, y_valid = arr("y_train", (1, 2)), arr("y_valid", (1, 2))
        if x_train.shape[1] != x_valid.shape[1]:
            raise DataError(f"train features have F={x_train.shape[1]} but valid features "
                             f"F={x_valid.shape[1]}")
        if x_train.shape[1] < 1:
            raise DataError("feature size F must be >= 1")
        if len(y_train) != len(x_train) or len(y_valid) != len(x_valid):
            raise DataError(f"labels and features differ in length: train {len(x_train)} vs "
                             f"{len(y_train)}, valid {len(x_valid)} vs {len(y_valid)}")
        if y_train.shape[1:] != y_valid.shape[1:]:
            raise DataError("train and valid labels have different shapes")
        if len(x_train) < 1 or len(x_valid) < 1:
            raise DataError("a task needs at least one train and one valid example")
        object.__setattr__(self, "eval_type", normalize_eval_type(self.eval_type))
        if not self.allow_nonfinite:
            for name in ("x_train", "y_train", "x_valid", "y_valid"):
                _require_finite(self.name or "task", name, getattr(self, name))
        _check_labels(self.name or "task", self.eval_type, y_train, y_valid)
        if int(self.num_epochs) < 1:
            raise DataError(f"num_epochs must be >= 1, got {self.num_epochs}")
        object.__setattr__(self, "num_epochs", int(self.num_epochs))
        if self.train_orders is None:
            orders = epoch_orders(len(x_train), self.num_epochs, self.data_seed)
        else:
            orders = np.asarray(self.train_orders, dtype=np.int32)
            if orders.shape != (self.num_epochs, len(x_train)):
                raise DataError(f"train_orders must have shape {(self.num_epochs, len(x_train))}")
        orders.setflags(write=False)
        object.__setattr__(self, "train_orders", orders)

    @property
    def features_size(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def num_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def num_valid(self) -> int:
        return int(self.x_valid.shape[0])

    @property
    def label_size(self) -> int:
        """0 for scalar labels, K for vector labels."""
        return 0 if self.y_train.ndim == 1 else int(self.y_train.shape[1])

    @property
    def total_train_steps(self) -> int:
        return self.num_epochs * self.num_train

    def with_index(self, index: int) -> "Task":
        return dataclasses.replace(self, index=int(index))

    @classmethod
    def from_arrays(cls, x_train, y_train, x_valid, y_valid, eval_type: str = RMS_ERROR,
                    num_epochs: int = 1, shuffle_seed: int = 0, name: str = "arrays",
                    allow_nonfinite: bool = False) -> "Task":
        """A task from user arrays.

        Args:
          x_train, x_valid: features ``[n, F]`` (a 1-D array is taken as F = 1).
          y_train, y_valid: labels ``[n]``; for accuracy tasks 1.0 = positive class.
          eval_type: ``"rms_error"`` or ``"accuracy"``.
          num_epochs: epochs of training; epochs after the first are shuffled.
          shuffle_seed: seeds the epoch shuffles.
          allow_nonfinite: keep NaN / inf values instead of refusing them.

        Raises:
          DataError: see :class:`Task`.

        Example:
            >>> import numpy as np
            >>> t = Task.from_arrays(np.ones((5, 2)), np.ones(5), np.ones((3, 2)), np.ones(3))
            >>> t.num_train, t.num_valid
            (5, 3)
        """
        x_train = np.asarray(x_train, dtype=np.float64)
        x_valid = np.asarray(x_valid, dtype=np.float64)
        if x_train.ndim == 1:
            x_train = x_train[:, None]
        if x_valid.ndim == 1:
            x_valid = x_valid[:, None]
        return cls(x_train, y_train, x_valid, y_valid, eval_type=eval_type,
                   num_epochs=num_epochs, data_seed=shuffle_seed, name=name,
                   allow_nonfinite=allow_nonfinite)


def _require_finite(task: str, name: str, values: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataError(f"{task}: {name} has {int(bad.sum())} NaN or infinite values (first in "
                        f"row {row}); clean the data, or pass allow_nonfinite=True to keep them")


def _check_labels(task: str, eval_type: str, y_train: np.ndarray, y_valid: np.ndarray) -> None:
    """Accuracy labels must be 0/1 (scalar) or one-hot (vector); vectors need accuracy."""
    if y_train.ndim == 2 and eval_type != ACCURACY:
        raise DataError(f"{task}: vector labels need eval_type 'accuracy', got {eval_type!r}")
    if eval_type != ACCURACY:
        return
    for name, labels in (("y_train", y_train), ("y_valid", y_valid)):
        finite = labels[np.isfinite(labels).all(axis=-1)] if labels.ndim == 2 else \
            labels[np.isfinite(labels)]
        if labels.ndim == 1:
            wrong = np.setdiff1d(np.unique(finite), (0.0, 1.0))
            if wrong.size:
                raise DataError(f"{task}: accuracy labels must be 0 or 1 (1 = positive class), "
                                f"{name} has {wrong[:4].tolist()}"
                                f"{' ...' if wrong.size > 4 else ''}")
        elif finite.size and (np.setdiff1d(np.unique(finite), (0.0, 1.0)).size
                              or (finite.sum(axis=1) != 1.0).any()):
            raise DataError(f"{task}: vector accuracy labels must be one-hot rows (one 1, "
                            f"the rest 0); {name} is not")


# ----------------------------------------------------------------------------------
# Generators.


def _gaussian_features(rng, num_train, num_valid, features_size):
    x_train = rng.standard_normal((num_train, features_size))
    x_valid = rng.standard_normal((num_valid, features_size))
    return x_train, x_valid


def scalar_linear_regression_task(features_size: int, num_train: int, num_valid: int,
                                  data_seed: int, param_seed: int, num_epochs: int = 1,
                                  index: int = 0) -> Task:
    """Labels ``w . x`` with ``w ~ N(0, I)`` (param seed) and ``x ~ N(0, I)`` (data seed)."""
    x_train, x_valid = _gaussian_features(_rng(data_seed, _LINEAR_DATA_OFFSET), num_train,
                                          num_valid, features_size)
    weights = _rng(param_seed, _LINEAR_PARAM_OFFSET).standard_normal(features_size)
    return Task(x_train, x_train @ weights, x_valid, x_valid @ weights, RMS_ERROR, num_epochs,
                index=index, data_seed=data_seed, param_seed=param_seed,
                name=f"linear(F={features_size})")


def scalar_affine_regression_task(features_size: int, num_train: int, num_valid: int,
                                  data_seed: int, param_seed: int, num_epochs: int = 1,
                                  index: int = 0) -> Task:
    """Labels ``w . x + b`` with ``w, b ~ N(0, 1)`` (paper S5; no reference counterpart)."""
    x_train, x_valid = _gaussian_features(_rng(data_seed, _AFFINE_DATA_OFFSET), num_train,
                                          num_valid, features_size)
    params = _rng(param_seed, _AFFINE_PARAM_OFFSET).standard_normal(features_size + 1)
    weights, bias = params[:-1], params[-1]
    return Task(x_train, x_train @ weights + bias, x_valid, x_valid @ weights + bias, RMS_ERROR,
                num_epochs, index=index, data_seed=data_seed, param_seed=param_seed,
                name=f"affine(F={features_size})")


def teacher_network(features_size: int, param_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The 2-layer teacher: ``W`` (rows 0 and 2 zeroed) and ``u`` (entries 0 and 2 zeroed).

    The reference needs F >= 3; for smaller F only the rows that exist are zeroed.
    """
    rng = _rng(param_seed, _NN_PARAM_OFFSET)
    first = rng.standard_normal((features_size, features_size))
    final = rng.standard_normal(features_size)
    for row in (0, 2):
        if row < features_size:
            first[row] = 0.0
            final[row] = 0.0
    return first, final


def scalar_2layer_nn_regression_task(features_size: int, num_train: int, num_valid: int,
                                     data_seed: int, param_seed: int, num_epochs: int = 1,
                                     index: int = 0) -> Task:
    """Labels ``u . relu(W x)`` from a random teacher network (spec §5.2)."""
    x_train, x_valid = _gaussian_features(_rng(data_seed, _NN_DATA_OFFSET), num_train,
                                          num_valid, features_size)
    first, final = teacher_network(features_size, param_seed)

    def label(x):
        return np.maximum(x @ first.T, 0.0) @ final

    return Task(x_train, label(x_train), x_valid, label(x_valid), RMS_ERROR, num_epochs,
                index=index, data_seed=data_seed, param_seed=param_seed,
                name=f"teacher_nn(F={features_size})")


def unit_test_fixed_task(train_features, train_labels, valid_features, valid_labels,
                         eval_type: str = RMS_ERROR, num_epochs: int = 1, index: int = 0) -> Task:
    return Task(np.asarray(train_features, np.float64), np.asarray(train_labels, np.float64),
                np.asarray(valid_features, np.float64), np.asarray(valid_labels, np.float64),
                eval_type, num_epochs, index=index, name="unit_test_fixed")


def unit_test_zeros_task(features_size: int, num_train: int, num_valid: int,
                         eval_type: str = RMS_ERROR, num_epochs: int = 1, index: int = 0) -> Task:
    return Task(np.zeros((num_train, features_size)), np.zeros(num_train),
                np.zeros((num_valid, features_size)), np.zeros(num_valid), eval_type,
                num_epochs, index=index, name="unit_test_zeros")


def unit_test_ones_task(features_size: int, num_train: int, num_valid: int,
                        eval_type: str = RMS_ERROR, num_epochs: int = 1, index: int = 0) -> Task:
    return Task(np.ones((num_train, features_size)), np.ones(num_train),
                np.ones((num_valid, features_size)), np.ones(num_valid), eval_type,
                num_epochs, index=index, name="unit_test_ones")


def unit_test_increment_task(features_size: int, num_train: int, num_valid: int,
                             increment: float = 1.0, eval_type: str = RMS_ERROR,
                             num_epochs: int = 1, index: int = 0) -> Task:
    """Example k has every feature and its label equal to ``k * increment`` (valid restarts at 0)."""
    train = np.arange(num_train, dtype=np.float64) * increment
    valid = np.arange(num_valid, dtype=np.float64) * increment
    return Task(np.repeat(train[:, None], features_size, 1), train,
                np.repeat(valid[:, None], features_size, 1), valid, eval_type, num_epochs,
                index=index, name="unit_test_increment")


# ----------------------------------------------------------------------------------
# Task specs (the reference's TaskSpec / TaskCollection, as plain Python).


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A reference ``TaskSpec``: a task type, its sizes and seeds, expanded into ``num_tasks`` tasks.

    ``task_type`` names a registered generator (see :func:`register_task_type`);
    ``params`` holds its type-specific fields as sorted ``(name, value)`` pairs.
    """

    task_type: str
    features_size: int
    num_train_examples: int
    num_valid_examples: int
    eval_type: str
    num_tasks: int = 1
    num_train_epochs: int = 1
    data_seeds: tuple[int, ...] = ()
    param_seeds: tuple[int, ...] = ()
    params: tuple[tuple[str, object], ...] = ()

    def param(self, name: str, default=None):
        return dict(self.params).get(name, default)


TaskFactory = Callable[[TaskSpec, int, int], Task]  # (spec, data_seed, param_seed) -> Task
_TASK_TYPES: dict[str, TaskFactory] = {}


def register_task_type(name: str, factory: TaskFactory) -> None:
    """Registers a generator for ``TaskSpec.task_type == name``."""
    _TASK_TYPES[name] = factory


def registered_task_types() -> tuple[str, ...]:
    return tuple(sorted(_TASK_TYPES))


def expand_seeds(seeds: Sequence[int], defaults: Sequence[int], num_tasks: int) -> list[int]:
    """Seed of each task: the listed seeds, then previous + 1 (defaults if none listed)."""
    listed = list(seeds) if seeds else list(defaults)
    out = []
    for i in range(num_tasks):
        out.append(int(listed[i]) if i < len(listed) else out[-1] + 1)
    return [s % 2**32 for s in out]


def check_task_spec(spec: TaskSpec, what: str = "") -> None:
    """Raises :class:`SpecError` for an unknown task type or a size below 1 (no data made)."""
    where = f"{what}: " if what else ""
    if spec.task_type not in _TASK_TYPES:
        raise SpecError(f"{where}unknown task type {spec.task_type!r}; known: "
                        f"{', '.join(registered_task_types())}")
    for name in ("features_size", "num_train_examples", "num_valid_examples", "num_tasks",
                 "num_train_epochs"):
        if int(getattr(spec, name)) < 1:
            raise SpecError(f"{where}{spec.task_type}: {name} must be >= 1, got "
                            f"{getattr(spec, name)}")


def make_tasks(specs: Sequence[TaskSpec] | TaskSpec) -> list[Task]:
    """Expands task specs into concrete tasks with consecutive indices (reference order)."""
    if isinstance(specs, TaskSpec):
        specs = [specs]
    out: list[Task] = []
    for spec in specs:
        check_task_spec(spec)
        data_seeds = expand_seeds(spec.data_seeds, DEFAULT_DATA_SEEDS, spec.num_tasks)
        param_seeds = expand_seeds(spec.param_seeds, DEFAULT_PARAM_SEEDS, spec.num_tasks)
        for data_seed, param_seed in zip(data_seeds, param_seeds):
            task = _TASK_TYPES[spec.task_type](spec, data_seed, param_seed)
            if task.total_train_steps < 10:
                raise SpecError(f"{spec.task_type}: a task needs epochs * train examples >= 10 "
                                 f"(reference check), got {task.total_train_steps}")
            out.append(task.with_index(len(out)))
    return out


def _generated(generator, required_eval_type=None):
    def factory(spec: TaskSpec, data_seed: int, param_seed: int) -> Task:
        eval_type = normalize_eval_type(spec.eval_type)
        if required_eval_type and eval_type != required_eval_type:
            raise SpecError(f"{spec.task_type} requires eval_type {required_eval_type!r}")
        return generator(spec.features_size, spec.num_train_examples, spec.num_valid_examples,
                         data_seed, param_seed, num_epochs=spec.num_train_epochs)
    return factory


def _unit(generator, **extra):
    def factory(spec: TaskSpec, data_seed: int, param_seed: int) -> Task:
        kwargs = {k: spec.param(k, v) for k, v in extra.items()}
        return dataclasses.replace(
            generator(spec.features_size, spec.num_train_examples, spec.num_valid_examples,
                      eval_type=spec.eval_type, num_epochs=spec.num_train_epochs, **kwargs),
            data_seed=data_seed, param_seed=param_seed)
    return factory


def _fixed(spec: TaskSpec, data_seed: int, param_seed: int) -> Task:
    task = unit_test_fixed_task(spec.param("train_features"), spec.param("train_labels"),
                                spec.param("valid_features"), spec.param("valid_labels"),
                                spec.eval_type, spec.num_train_epochs)
    if (task.num_train, task.num_valid) != (spec.num_train_examples, spec.num_valid_examples):
        raise SpecError("unit_test_fixed_task: num_train/valid_examples differ from the data")
    if task.features_size != spec.features_size:
        raise SpecError("unit_test_fixed_task: features differ from features_size")
    return dataclasses.replace(task, data_seed=data_seed, param_seed=param_seed)


register_task_type("scalar_linear_regression_task",
                   _generated(scalar_linear_regression_task, RMS_ERROR))
register_task_type("scalar_affine_regression_task",
                   _generated(scalar_affine_regression_task, RMS_ERROR))
register_task_type("scalar_2layer_nn_regression_task",
                   _generated(scalar_2layer_nn_regression_task, RMS_ERROR))
register_task_type("unit_test_zeros_task", _unit(unit_test_zeros_task))
register_task_type("unit_test_ones_task", _unit(unit_test_ones_task))
register_task_type("unit_test_increment_task", _unit(unit_test_increment_task, increment=1.0))
register_task_type("unit_test_fixed_task", _fixed)
