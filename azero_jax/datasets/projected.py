"""Projected binary classification tasks (paper S4, spec §5.2 and §5.5) and 10-class tasks.

A task takes the images of two classes (positive = the smaller class id, label 1.0;
negative label 0.0), projects them to F dimensions with a Gaussian matrix and
standardizes them, exactly as the reference's ``generate_datasets.py``: first
``(train+valid+test)/2`` images of each class, stratified ``train_test_split`` with
``random_state=seed`` (train+valid vs test, then train vs valid), ``np.random.seed(seed)``
and ``R = randn(D, F)``, ``X @ R``, ``StandardScaler`` fitted on the train split.

Tasks come from the reference's dataset files (``<path>/binary_<dataset>-pos_<p>-neg_<n>-
dim_<F>-seed_<s>``) when they exist, or are projected in memory from a loaded dataset
(digits built in, or raw CIFAR-10 / MNIST files in the folder) with the same procedure.
In memory, a pair's images are split as a file of generate_datasets.py would be (8000
train / 2000 valid; with ``num_test_examples = 1000``: 8000 / 1000 / 1000, the script's
defaults) and a task takes the first ``num_train`` / ``num_valid`` of them. Where a pair
has fewer images (digits: ~290 per pair in its train part), all of them are split in
those proportions (80/20) and a task takes what there is -- never resampled.

The task type ``projected_binary_classification_task`` (registered with
:func:`azero_jax.core.tasks.register_task_type`) takes the reference's fields as
``TaskSpec.params``: ``positive_class``, ``negative_class`` (both or neither),
``dataset_name``, ``path`` (folder of reference files or of raw dataset files),
``held_out_pairs``, ``min_supported_data_seed`` (0), ``max_supported_data_seed`` (10),
plus ``num_test_examples`` (0; in-memory mode only) and ``dataset`` (an inline
:class:`SplitDataset` or :class:`ImageDataset`).
With both classes given, the file seed is ``min + data_seed mod (max - min)``; with
neither, ``mt19937(HashMix(856572777, data_seed))`` picks a pair uniformly among the
non-held-out pairs and then a seed in ``[min, max)`` (Abseil's uniform integer
algorithm, so the reference's choice of file is reproduced).

Example:
    >>> from azero_jax.core import tasks
    >>> import azero_jax.datasets  # registers the task types
    >>> spec = tasks.TaskSpec("projected_binary_classification_task", 16, 8000, 2000,
    ...                       "accuracy", num_tasks=2,
    ...                       params=(("dataset_name", "digits"),
    ...                               ("held_out_pairs", HELD_OUT_PAIRS)))
    >>> [t.name for t in tasks.make_tasks(spec)]
    ['binary_digits-pos_2-neg_3-dim_16-seed_0', 'binary_digits-pos_2-neg_3-dim_16-seed_7']
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Iterable, Sequence

import numpy as np

from azero_jax.core import tasks as tasks_lib
from azero_jax.core.errors import ConfigError
from azero_jax.datasets.errors import DatasetError, DatasetNotFoundError
from azero_jax.datasets.loaders import ImageDataset, class_pair_examples, load_dataset
from azero_jax.datasets.reference import (SplitDataset, parse_reference_dataset,
                                          read_reference_dataset, reference_file_name,
                                          write_reference_dataset)

# The reference's recommended held-out pairs (task.proto): T_select / final tasks.
HELD_OUT_PAIRS = ((4, 6), (3, 5), (8, 9), (3, 8), (0, 9), (2, 9), (1, 8), (3, 6), (0, 5))
ALL_PAIRS = tuple((i, j) for i in range(10) for j in range(i + 1, 10))
SEARCH_PAIRS = tuple(p for p in ALL_PAIRS if p not in HELD_OUT_PAIRS)
NUM_CLASSES = 10
_PAIR_SEED_SALT = 856572777
TASK_TYPE = "projected_binary_classification_task"
MULTICLASS_TASK_TYPE = "projected_multiclass_classification_task"

# ------------------------------------------------------------------------------------
# The reference's pair and seed choice (bit-exact: HashMix, mt19937, absl::Uniform<int32>).

_MASK64 = (1 << 64) - 1


def hash_mix(*values: int) -> int:
    """The reference's ``HashMix``: Bob Jenkins' mix folded over ``values``, seeded with 42."""
    seed = 42
    for value in values:
        a, b, c = 0x9E3779B9, seed, int(value) & _MASK64
        for k1, k2, k3 in ((43, 9, 8), (38, 23, 5), (35, 49, 11), (12, 18, 22)):
            a = ((a - b - c) & _MASK64) ^ (c >> k1)
            b = ((b - c - a) & _MASK64) ^ ((a << k2) & _MASK64)
            c = ((c - a - b) & _MASK64) ^ (b >> k3)
        seed = c
    return seed & 0xFFFFFFFF


class _Mt19937:
    """``std::mt19937`` raw outputs and ``absl::Uniform<int32_t>(gen, lo, hi)``."""

    def __init__(self, seed: int):
        self._bits = np.random.MT19937(0)
        self._bits._legacy_seeding(int(seed) & 0xFFFFFFFF)

    def raw(self) -> int:
        return int(self._bits.random_raw())

    def uniform_int(self, low: int, high: int) -> int:
        """Uniform on ``[low, high)`` by Abseil's fixed-point multiply with rejection."""
        if high <= low:
            return low
        r = (high - 1 - low) & 0xFFFFFFFF
        lim = (r + 1) & 0xFFFFFFFF
        bits = self.raw()
        if r & lim == 0:  # power-of-two range (including the full 2^32 range)
            return low + (bits & r)
        product = bits * lim
        if product & 0xFFFFFFFF < lim:
            threshold = (-lim % (1 << 32)) % lim
            while product & 0xFFFFFFFF < threshold:
                bits = self.raw()
                product = bits * lim
        return low + (product >> 32)


def normalize_pair(pair) -> tuple[int, int]:
    a, b = (int(v) for v in pair)
    if a == b or not (0 <= a < NUM_CLASSES and 0 <= b < NUM_CLASSES):
        raise ConfigError(f"a class pair needs two different classes in [0, 10), got {pair}")
    return (min(a, b), max(a, b))


def complement_pairs(pairs: Iterable) -> tuple[tuple[int, int], ...]:
    """All pairs not in ``pairs`` (the reference's final spec holds out the 36 search pairs)."""
    excluded = {normalize_pair(p) for p in pairs}
    return tuple(p for p in ALL_PAIRS if p not in excluded)


def choose_pair_and_seed(data_seed: int, held_out_pairs=(), min_supported_data_seed: int = 0,
                         max_supported_data_seed: int = 10, positive_class=None,
                         negative_class=None) -> tuple[int, int, int]:
    """``(positive_class, negative_class, file_seed)`` exactly as the reference chooses them."""
    if max_supported_data_seed <= min_supported_data_seed:
        raise ConfigError(f"max_supported_data_seed ({max_supported_data_seed}) must exceed "
                         f"min_supported_data_seed ({min_supported_data_seed})")
    if (positive_class is None) != (negative_class is None):
        raise ConfigError("give both positive_class and negative_class or neither")
    if positive_class is not None:
        span = max_supported_data_seed - min_supported_data_seed
        return (int(positive_class), int(negative_class),
                int(min_supported_data_seed + int(data_seed) % span))
    held = {normalize_pair(p) for p in held_out_pairs}
    candidates = [p for p in ALL_PAIRS if p not in held]
    if not candidates:
        raise ConfigError("all 45 class pairs are held out")
    rng = _Mt19937(hash_mix(_PAIR_SEED_SALT, int(data_seed) & 0xFFFFFFFF))
    pair = candidates[rng.uniform_int(0, len(candidates))]
    seed = rng.uniform_int(int(min_supported_data_seed), int(max_supported_data_seed))
    return pair[0], pair[1], seed


# ------------------------------------------------------------------------------------
# generate_datasets.py's procedure.


def split_counts(available: int, requested: Sequence[int]) -> tuple[int, ...]:
    """Requested split sizes, or -- when fewer examples exist -- the same proportions of them.

    Example:
        >>> split_counts(290, (8000, 2000, 0))
        (232, 58, 0)
    """
    requested = tuple(int(r) for r in requested)
    total = sum(requested)
    if available >= total:
        return requested
    counts = [r * available // total for r in requested]
    counts[0] += available - sum(counts)
    return tuple(counts)


def project_and_standardize(x_train, x_valid, x_test, projected_dim: int | None, seed: int):
    """``R = RandomState(seed).randn(D, F)`` projection (skipped if F is None) + StandardScaler."""
    from sklearn.preprocessing import StandardScaler
    parts = [np.asarray(x, dtype=np.float64) if x is not None else None
             for x in (x_train, x_valid, x_test)]
    if projected_dim is not None:
        matrix = np.random.RandomState(int(seed) % 2**32).randn(parts[0].shape[1], projected_dim)
        parts = [np.dot(x, matrix) if x is not None else None for x in parts]
    scaler = StandardScaler().fit(parts[0])
    return [scaler.transform(x) if x is not None else None for x in parts]


def _train_valid_test_split(x, y, num_train, num_valid, num_test, seed, stratify=True):
    from sklearn.model_selection import train_test_split
    if num_test > 0:
        x, x_test, y, y_test = train_test_split(x, y, train_size=num_train + num_valid,
                                                test_size=num_test, random_state=seed,
                                                stratify=y if stratify else None)
    else:
        x_test = y_test = None
    x_train, x_valid, y_train, y_valid = train_test_split(
        x, y, train_size=num_train, test_size=num_valid, random_state=seed,
        stratify=y if stratify else None)
    return x_train, y_train, x_valid, y_valid, x_test, y_test


def projected_binary_dataset(dataset: ImageDataset, positive_class: int, negative_class: int,
                             num_train: int = 8000, num_valid: int = 1000, num_test: int = 1000,
                             projected_dim: int | None = 16, seed: int = 0,
                             split: str = "train") -> SplitDataset:
    """One projected binary dataset, as ``generate_datasets.py`` makes it.

    Args:
      dataset: the source images; only its ``split`` part is used (the reference uses the
        training images only).
      positive_class, negative_class: class ids (positive gets label 1.0).
      num_train, num_valid, num_test: split sizes (``num_test = 0``: no test split); when
        the pair has fewer images, see :func:`split_counts`.
      projected_dim: F, or None for no projection (standardization only).
      seed: the file seed (split ``random_state`` and projection seed).
    """
    x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
    total = num_train + num_valid + num_test
    x_pair, y_pair = class_pair_examples(x, y, positive_class, negative_class, int(total / 2))
    counts = split_counts(len(y_pair), (num_train, num_valid, num_test))
    if min(counts[0], counts[1]) < 2:
        raise ConfigError(f"{dataset.name}: classes {positive_class}/{negative_class} have only "
                         f"{len(y_pair)} images, too few for a train/valid split")
    x_tr, y_tr, x_va, y_va, x_te, y_te = _train_valid_test_split(
        x_pair.astype(np.float64), y_pair, *counts, seed=int(seed))
    x_tr, x_va, x_te = project_and_standardize(x_tr, x_va, x_te, projected_dim, seed)
    return SplitDataset(x_tr, y_tr, x_va, y_va, x_te, y_te)


def write_projected_binary_datasets(data_dir, dataset: ImageDataset, pairs=None,
                                    seeds: Iterable[int] = range(100), num_train: int = 8000,
                                    num_valid: int = 1000, num_test: int = 1000,
                                    projected_dim: int = 16) -> list[str]:
    """Writes reference dataset files for every pair and seed (``generate_datasets.py``)."""
    paths = []
    for pair in (ALL_PAIRS if pairs is None else [normalize_pair(p) for p in pairs]):
        for seed in seeds:
            data = projected_binary_dataset(dataset, pair[0], pair[1], num_train, num_valid,
                                            num_test, projected_dim, seed)
            path = os.path.join(os.fspath(data_dir), reference_file_name(
                dataset.name, pair[0], pair[1], projected_dim, seed))
            write_reference_dataset(path, *data)
            paths.append(path)
    return paths


# ------------------------------------------------------------------------------------
# Task type.


@functools.lru_cache(maxsize=512)
def _read_cached(path: str) -> SplitDataset:
    return read_reference_dataset(path)


@functools.lru_cache(maxsize=1024)
def _project_cached(name, folder, pos, neg, counts, projected_dim, seed) -> SplitDataset:
    dataset = load_dataset(name, folder or None)
    return projected_binary_dataset(dataset, pos, neg, *counts, projected_dim=projected_dim,
                                    seed=seed)


def _source_dataset(spec_params: dict) -> ImageDataset | SplitDataset | None:
    inline = spec_params.get("dataset")
    if inline is None or isinstance(inline, (ImageDataset, SplitDataset)):
        return inline
    if getattr(getattr(inline, "DESCRIPTOR", None), "name", None) == "ScalarLabelDataset":
        # The reference's inline `dataset` option (a ScalarLabelDataset message).
        return parse_reference_dataset(inline.SerializeToString(), "<inline dataset>")
    raise ConfigError(f"{TASK_TYPE}: params 'dataset' must be a ScalarLabelDataset message, a "
                     f"SplitDataset or an ImageDataset, got {type(inline).__name__}")


def projected_binary_task(features_size: int, num_train: int, num_valid: int, data_seed: int,
                          dataset_name: str = "cifar10", path=None, positive_class=None,
                          negative_class=None, held_out_pairs=(), min_supported_data_seed: int = 0,
                          max_supported_data_seed: int = 10, num_epochs: int = 1,
                          num_test_examples: int = 0, dataset=None) -> tasks_lib.Task:
    """One projected binary task (see the module docstring for the rules).

    Data comes from, in order: an inline ``dataset``; the reference file
    ``<path>/binary_<dataset_name>-pos_<p>-neg_<n>-dim_<F>-seed_<s>`` if it exists;
    an in-memory projection of ``dataset_name`` (``"digits"`` built in, or raw files in
    ``path``).
    """
    pos, neg, file_seed = choose_pair_and_seed(data_seed, held_out_pairs,
                                               min_supported_data_seed, max_supported_data_seed,
                                               positive_class, negative_class)
    name = reference_file_name(dataset_name, pos, neg, features_size, file_seed)
    file_path = os.path.join(os.fspath(path), name) if path else None
    if isinstance(dataset, SplitDataset):
        data, source = dataset, "<inline dataset>"
    elif file_path and os.path.isfile(file_path):
        data, source = _read_cached(file_path), file_path
    else:
        # Generate what generate_datasets.py would put in a file (8000 train, and 2000
        # valid -- or 1000 valid + 1000 test with num_test_examples=1000, its defaults),
        # then take the first examples, as from a file.
        num_test = int(num_test_examples)
        counts = (max(int(num_train), 8000), max(int(num_valid), 2000 - num_test), num_test)
        if isinstance(dataset, ImageDataset):
            data = projected_binary_dataset(dataset, pos, neg, *counts, projected_dim=features_size,
                                            seed=file_seed)
        else:
            folder = os.fspath(path) if path else ""
            if dataset_name != "digits" and not dataset_name.endswith(".npz"):
                if not folder:
                    raise ConfigError(f"{TASK_TYPE}: dataset {dataset_name!r} needs 'path' (a "
                                     f"folder of reference dataset files or raw {dataset_name} "
                                     f"files)")
                try:
                    load_dataset(dataset_name, folder)
                except DatasetNotFoundError as error:
                    raise DatasetNotFoundError(
                        file_path, f"no such reference dataset file, and no raw {dataset_name} "
                                   f"files to project in memory ({error.problem})") from None
            data = _project_cached(dataset_name, folder if dataset_name != "digits" else "",
                                   pos, neg, counts, features_size, file_seed)
        source = "<in memory>"
        num_train = min(int(num_train), len(data.y_train))  # all there is (digits)
        num_valid = min(int(num_valid), len(data.y_valid))
    if data.features_size != features_size:
        raise DatasetError(source, f"features have size {data.features_size}, the spec asks "
                                   f"for features_size {features_size}")
    if len(data.y_train) < num_train or len(data.y_valid) < num_valid:
        raise DatasetError(source, f"has {len(data.y_train)} train / {len(data.y_valid)} valid "
                                   f"examples, the spec asks for {num_train} / {num_valid}")
    return tasks_lib.Task(data.x_train[:num_train], data.y_train[:num_train],
                          data.x_valid[:num_valid], data.y_valid[:num_valid],
                          tasks_lib.ACCURACY, num_epochs, data_seed=data_seed, name=name)


def _projected_factory(spec: tasks_lib.TaskSpec, data_seed: int, param_seed: int):
    if tasks_lib.normalize_eval_type(spec.eval_type) != tasks_lib.ACCURACY:
        raise ConfigError(f"{TASK_TYPE} requires eval_type 'accuracy'")
    params = dict(spec.params)
    unknown = set(params) - {"positive_class", "negative_class", "dataset_name", "path",
                             "dataset_dir", "held_out_pairs", "min_supported_data_seed",
                             "max_supported_data_seed", "num_test_examples", "dataset"}
    if unknown:
        raise ConfigError(f"{TASK_TYPE}: unknown params {sorted(unknown)}")
    task = projected_binary_task(
        spec.features_size, spec.num_train_examples, spec.num_valid_examples, data_seed,
        dataset_name=params.get("dataset_name", "cifar10"),
        path=params.get("path") or params.get("dataset_dir"),
        positive_class=params.get("positive_class"), negative_class=params.get("negative_class"),
        held_out_pairs=tuple(params.get("held_out_pairs", ())),
        min_supported_data_seed=int(params.get("min_supported_data_seed", 0)),
        max_supported_data_seed=int(params.get("max_supported_data_seed", 10)),
        num_epochs=spec.num_train_epochs,
        num_test_examples=int(params.get("num_test_examples", 0)),
        dataset=_source_dataset(params))
    return dataclasses.replace(task, param_seed=param_seed)


# ------------------------------------------------------------------------------------
# 10-class tasks (paper §4.3 "multiple classes"; no reference behaviour).


def one_hot(labels, num_classes: int = NUM_CLASSES) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    out = np.zeros((len(labels), num_classes))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def projected_multiclass_dataset(dataset: ImageDataset, num_train: int = 45000,
                                 num_valid: int = 5000, projected_dim: int | None = 16,
                                 seed: int = 0, split: str = "train") -> SplitDataset:
    """All classes, projected and standardized like the binary tasks; labels one-hot ``[n, K]``.

    Uses the ``split`` images (proportionally fewer when there are not that many),
    stratified train/valid split with ``random_state = seed % 2**32``.
    """
    x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
    num_train, num_valid = split_counts(len(y), (num_train, num_valid))
    from sklearn.model_selection import train_test_split
    seed = int(seed) % 2**32
    x_tr, x_va, y_tr, y_va = train_test_split(x.astype(np.float64), y, train_size=num_train,
                                              test_size=num_valid, random_state=seed, stratify=y)
    x_tr, x_va, _ = project_and_standardize(x_tr, x_va, None, projected_dim, seed)
    return SplitDataset(x_tr, one_hot(y_tr, dataset.num_classes), x_va,
                        one_hot(y_va, dataset.num_classes))


@functools.lru_cache(maxsize=256)
def _multiclass_cached(name, folder, num_train, num_valid, projected_dim, seed):
    return projected_multiclass_dataset(load_dataset(name, folder or None), num_train, num_valid,
                                        projected_dim, seed)


def projected_multiclass_task(features_size: int, num_train: int, num_valid: int, data_seed: int,
                              dataset_name: str = "cifar10", path=None, num_epochs: int = 1,
                              dataset: ImageDataset | None = None) -> tasks_lib.Task:
    """A 10-class task: projection seed = ``data_seed``; needs ``features_size >= classes``."""
    if isinstance(dataset, ImageDataset):
        data = projected_multiclass_dataset(dataset, num_train, num_valid, features_size, data_seed)
    else:
        data = _multiclass_cached(dataset_name, os.fspath(path) if path else "", int(num_train),
                                  int(num_valid), int(features_size), int(data_seed))
    classes = data.y_train.shape[1]
    if classes > features_size:
        raise ConfigError(f"{MULTICLASS_TASK_TYPE}: {classes} classes need features_size >= "
                         f"{classes} (labels live in a vector of size F), got {features_size}")
    return tasks_lib.Task(data.x_train, data.y_train, data.x_valid, data.y_valid,
                          tasks_lib.ACCURACY, num_epochs, data_seed=data_seed,
                          name=f"multiclass_{dataset_name}-dim_{features_size}-seed_{data_seed}")


def _multiclass_factory(spec: tasks_lib.TaskSpec, data_seed: int, param_seed: int):
    if tasks_lib.normalize_eval_type(spec.eval_type) != tasks_lib.ACCURACY:
        raise ConfigError(f"{MULTICLASS_TASK_TYPE} requires eval_type 'accuracy'")
    params = dict(spec.params)
    unknown = set(params) - {"dataset_name", "path", "dataset_dir", "dataset"}
    if unknown:
        raise ConfigError(f"{MULTICLASS_TASK_TYPE}: unknown params {sorted(unknown)}")
    task = projected_multiclass_task(
        spec.features_size, spec.num_train_examples, spec.num_valid_examples, data_seed,
        dataset_name=params.get("dataset_name", "cifar10"),
        path=params.get("path") or params.get("dataset_dir"), num_epochs=spec.num_train_epochs,
        dataset=_source_dataset(params))
    return dataclasses.replace(task, param_seed=param_seed)


tasks_lib.register_task_type(TASK_TYPE, _projected_factory)
tasks_lib.register_task_type(MULTICLASS_TASK_TYPE, _multiclass_factory)
