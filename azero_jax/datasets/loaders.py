"""Image-classification datasets from files users download themselves (no network).

Every loader returns an :class:`ImageDataset`: flattened images as stored (uint8 pixels
or the user's floats), integer class ids, and the dataset's own train/test split.

* CIFAR-10, binary version (``data_batch_1.bin`` .. ``data_batch_5.bin``,
  ``test_batch.bin``, in ``<dir>`` or ``<dir>/cifar-10-batches-bin``): each record is one
  label byte and 3072 pixel bytes (R, G, B planes of 32x32); images are flattened in
  height-width-channel order, as TFDS (and so the reference's generate_datasets.py)
  flattens them. The "python version" (pickled batches) is refused: no pickle is read.
* MNIST / Fashion-MNIST IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, raw or ``.gz``): 784 features.
* ``.npz`` (``allow_pickle=False``) with ``x_train``, ``y_train`` and optionally ``x_test``,
  ``y_test`` (without a test split, a stratified 20 % is held out as test, seed 0); or
  arrays given directly to :func:`from_arrays`.
* scikit-learn's bundled digits (8x8, 64 features, 1797 images, ~180 a class): the
  built-in default. It has no official test split: a fixed stratified 80/20 split
  (``random_state=0``, 1437 train / 360 test images) is used. Digits is ~30x smaller
  than CIFAR-10 per class; results on it are smoke tests, not paper figures.

Example:
    >>> from azero_jax.datasets import load_dataset
    >>> digits = load_dataset("digits")
    >>> digits.x_train.shape, digits.x_test.shape, digits.num_classes
    ((1437, 64), (360, 64), 10)
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import zipfile
from typing import Sequence

import numpy as np

from azero_jax.core.errors import ConfigError
from azero_jax.datasets.errors import (DatasetError, DatasetNotFoundError, require_file,
                                       require_folder)

DATASET_NAMES = ("digits", "mnist", "fashion_mnist", "cifar10")
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch.bin"
CIFAR10_RECORD = 1 + 32 * 32 * 3
MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte",
}
FULL_DIMENSION = {"digits": 64, "mnist": 784, "fashion_mnist": 784, "cifar10": 3072}
DIGITS_TEST_FRACTION = 0.2


@dataclasses.dataclass(frozen=True, eq=False)
class ImageDataset:
    """A classification dataset: flattened features and integer labels, train and test.

    Attributes:
      name: e.g. ``"cifar10"``.
      x_train, x_test: ``[n, D]`` features (uint8 pixels or floats, as stored).
      y_train, y_test: ``[n]`` int64 class ids in ``[0, num_classes)``.
      num_classes: number of classes.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int = 10

    @property
    def features_size(self) -> int:
        return int(self.x_train.shape[1])

    def class_counts(self, split: str = "train") -> np.ndarray:
        return np.bincount(getattr(self, f"y_{split}"), minlength=self.num_classes)


def _check_xy(name, x, y, path):
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim < 2:
        raise DatasetError(path, f"{name} features must have >= 2 dimensions, got shape {x.shape}")
    if x.size == 0 or y.size == 0:
        raise DatasetError(path, f"{name}: empty (features of shape {x.shape}, labels of shape "
                                 f"{y.shape})")
    x = x.reshape(len(x), -1)
    if y.ndim != 1 or len(y) != len(x):
        raise DatasetError(path, f"{name}: {len(x)} examples but labels of shape {y.shape}")
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise DatasetError(path, f"{name}: features and labels must be numeric, got "
                                 f"{x.dtype} and {y.dtype}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise DatasetError(path, f"{name}: labels must be integer class ids")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise DatasetError(path, f"{name}: negative class id {y.min()}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise DatasetError(path, f"{name}: features contain NaN or inf")
    return x, y


def from_arrays(x_train, y_train, x_test=None, y_test=None, name: str = "arrays",
                num_classes: int | None = None, path=None) -> ImageDataset:
    """An :class:`ImageDataset` from arrays (images are flattened).

    Without ``x_test``, a stratified 20 % of the examples (``random_state=0``) becomes the
    test split.
    """
    where = path if path is not None else f"<arrays {name}>"
    x_train, y_train = _check_xy("train", x_train, y_train, where)
    if (x_test is None) != (y_test is None):
        raise DatasetError(where, "give both x_test and y_test or neither")
    if x_test is None:
        train, test = stratified_split(y_train, DIGITS_TEST_FRACTION, seed=0)
        x_train, y_train, x_test, y_test = x_train[train], y_train[train], x_train[test], y_train[test]
    else:
        x_test, y_test = _check_xy("test", x_test, y_test, where)
        if x_test.shape[1] != x_train.shape[1]:
            raise DatasetError(where, f"train has {x_train.shape[1]} features, test "
                                      f"{x_test.shape[1]}")
    k = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    if num_classes is not None:
        if k > num_classes:
            raise DatasetError(where, f"class id {k - 1} >= num_classes {num_classes}")
        k = int(num_classes)
    return ImageDataset(name, x_train, y_train, x_test, y_test, k)


def stratified_split(labels, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` of a stratified split (scikit-learn's ``train_test_split``)."""
    from sklearn.model_selection import train_test_split
    index = np.arange(len(labels))
    train, test = train_test_split(index, test_size=test_fraction, random_state=seed,
                                   stratify=labels)
    return np.sort(train), np.sort(test)


# ------------------------------------------------------------------------------------
# scikit-learn digits.


def load_digits() -> ImageDataset:
    """scikit-learn's bundled 8x8 digits with a fixed stratified 80/20 train/test split."""
    try:
        from sklearn import datasets as sk_datasets
    except ImportError:
        raise ImportError("the built-in digits data needs scikit-learn: "
                          "pip install 'azero_jax[data]'") from None
    digits = sk_datasets.load_digits()
    x = digits.data.astype(np.float64)
    y = digits.target.astype(np.int64)
    train, test = stratified_split(y, DIGITS_TEST_FRACTION, seed=0)
    return ImageDataset("digits", x[train], y[train], x[test], y[test], 10)


# ------------------------------------------------------------------------------------
# CIFAR-10 binary version.


def _cifar_folder(dataset_dir) -> str:
    dataset_dir = require_folder(dataset_dir, "expected the CIFAR-10 binary version, "
                                              "cifar-10-binary.tar.gz unpacked")
    for folder in (dataset_dir, os.path.join(dataset_dir, "cifar-10-batches-bin")):
        if os.path.exists(os.path.join(folder, CIFAR10_TEST_FILE)):
            return folder
    python_version = os.path.join(dataset_dir, "cifar-10-batches-py")
    if os.path.exists(python_version) or os.path.exists(os.path.join(dataset_dir, "data_batch_1")):
        raise DatasetError(dataset_dir, "holds the CIFAR-10 'python version' (pickled batches), "
                                        "which is not read (no pickle): download the binary "
                                        "version cifar-10-binary.tar.gz instead")
    raise DatasetNotFoundError(os.path.join(dataset_dir, CIFAR10_TEST_FILE),
                               "no such file (expected the CIFAR-10 binary version: "
                               "data_batch_1.bin .. data_batch_5.bin, test_batch.bin)")


def read_cifar10_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary batch: images ``[n, 3072]`` uint8 (HWC order) and labels ``[n]``."""
    path = require_file(path, "part of the CIFAR-10 binary version")
    raw = np.fromfile(path, dtype=np.uint8)
    if len(raw) == 0 or len(raw) % CIFAR10_RECORD:
        raise DatasetError(path, f"truncated or malformed: {len(raw)} bytes is not a multiple "
                                 f"of the {CIFAR10_RECORD}-byte record")
    records = raw.reshape(-1, CIFAR10_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DatasetError(path, f"malformed: label byte {labels.max()} > 9 (not a CIFAR-10 "
                                 f"binary batch; CIFAR-100 is not supported)")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(-1, 3072)
    return np.ascontiguousarray(images), labels


def load_cifar10(dataset_dir) -> ImageDataset:
    """CIFAR-10 (binary version) from ``dataset_dir`` (or its ``cifar-10-batches-bin``)."""
    folder = _cifar_folder(dataset_dir)
    parts = [read_cifar10_batch(os.path.join(folder, name)) for name in CIFAR10_TRAIN_FILES]
    x_test, y_test = read_cifar10_batch(os.path.join(folder, CIFAR10_TEST_FILE))
    return ImageDataset("cifar10", np.concatenate([p[0] for p in parts]),
                        np.concatenate([p[1] for p in parts]), x_test, y_test, 10)


# ------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST).

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes, path="<memory>") -> np.ndarray:
    """Decodes the bytes of an IDX file (big-endian header: 0, 0, type, ndim, dims)."""
    if len(data) < 4:
        raise DatasetError(path, f"truncated: {len(data)} bytes, not even an IDX header")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES or not 1 <= data[3] <= 4:
        raise DatasetError(path, f"malformed: bad IDX magic number {data[:4].hex()}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(path, f"truncated: {len(data)} bytes, IDX header needs {header}")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "malformed (trailing bytes)"
        raise DatasetError(path, f"{problem}: {len(data)} bytes, the IDX header {shape} needs "
                                 f"{expected}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path) -> np.ndarray:
    """An IDX file, raw or gzip-compressed (``.gz``)."""
    path = require_file(path, "MNIST/Fashion-MNIST IDX file")
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zipfile.BadZipFile) as error:
            raise DatasetError(path, f"truncated or malformed gzip data: {error}") from None
    return parse_idx(data, path)


def _find_idx(folder: str, stem: str) -> str:
    candidates = [stem, stem + ".gz", stem.replace("-idx", ".idx"),
                  stem.replace("-idx", ".idx") + ".gz"]
    for name in candidates:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    raise DatasetNotFoundError(os.path.join(folder, stem + "[.gz]"),
                               "no such file (expected the four MNIST-format IDX files)")


def load_idx_dataset(dataset_dir, name: str = "mnist") -> ImageDataset:
    """MNIST or Fashion-MNIST from the four IDX files (raw or ``.gz``) in ``dataset_dir``."""
    dataset_dir = require_folder(dataset_dir, f"expected the {name} IDX files")
    arrays = {key: read_idx(_find_idx(dataset_dir, stem)) for key, stem in MNIST_FILES.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DatasetError(dataset_dir, f"{split} images {x.shape} and labels {y.shape} "
                                            f"do not match")
    return from_arrays(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                       name=name, num_classes=10, path=dataset_dir)


# ------------------------------------------------------------------------------------
# npz.


def load_npz(path, name: str | None = None) -> ImageDataset:
    """Arrays from an ``.npz`` (``x_train``, ``y_train``, optional ``x_test``, ``y_test``)."""
    path = require_file(path, "an .npz with x_train, y_train[, x_test, y_test]")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as error:
        raise DatasetError(path, f"malformed: {error} (object arrays / pickles are refused)") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise DatasetError(path, f"truncated or malformed .npz: {error}") from None
    missing = [key for key in ("x_train", "y_train") if key not in arrays]
    if missing:
        raise DatasetError(path, f"missing arrays {missing}; found {sorted(arrays)}")
    stem = os.path.splitext(os.path.basename(path))[0]
    return from_arrays(arrays["x_train"], arrays["y_train"], arrays.get("x_test"),
                       arrays.get("y_test"), name=name or stem, path=path)


def save_npz(path, dataset: ImageDataset) -> None:
    """Writes an :class:`ImageDataset` as an ``.npz`` that :func:`load_npz` reads."""
    np.savez(path, x_train=dataset.x_train, y_train=dataset.y_train, x_test=dataset.x_test,
             y_test=dataset.y_test)


# ------------------------------------------------------------------------------------

_CACHE: dict[tuple[str, str], ImageDataset] = {}


def load_dataset(name: str = "digits", dataset_dir=None, cache: bool = True) -> ImageDataset:
    """Loads a dataset by name.

    Args:
      name: ``"digits"`` (built in), ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, or a
        path to an ``.npz``.
      dataset_dir: folder with the downloaded files (for mnist, fashion_mnist, cifar10).
      cache: keep loaded datasets in memory for later calls.

    Raises:
      DatasetError: a missing, truncated or malformed file, named in the message.
    """
    key = (str(name), os.fspath(dataset_dir) if dataset_dir is not None else "")
    if cache and key in _CACHE:
        return _CACHE[key]
    if str(name).endswith(".npz"):
        dataset = load_npz(name)
    elif name == "digits":
        dataset = load_digits()
    elif name in ("mnist", "fashion_mnist", "cifar10"):
        if dataset_dir is None:
            raise ConfigError(f"dataset {name!r} needs dataset_dir (a folder with the downloaded "
                             f"files); only 'digits' is built in")
        dataset = (load_cifar10(dataset_dir) if name == "cifar10"
                   else load_idx_dataset(dataset_dir, name))
    else:
        raise ConfigError(f"unknown dataset {name!r}; expected one of {DATASET_NAMES} or a "
                         f"path to an .npz")
    if cache:
        _CACHE[key] = dataset
    return dataset


def class_pair_examples(x: np.ndarray, y: np.ndarray, positive_class: int, negative_class: int,
                        per_class: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``per_class`` examples of each class, positive block first; labels 1 / 0.

    This is generate_datasets.py's class selection (``data[labels == c][:n]``).
    """
    blocks_x, blocks_y = [], []
    for cls, label in ((positive_class, 1.0), (negative_class, 0.0)):
        chosen = x[y == cls][:per_class]
        blocks_x.append(chosen)
        blocks_y.append(np.full(len(chosen), label))
    return np.concatenate(blocks_x), np.concatenate(blocks_y)


__all__: Sequence[str] = (
    "DATASET_NAMES", "FULL_DIMENSION", "ImageDataset", "class_pair_examples", "from_arrays",
    "load_cifar10", "load_dataset", "load_digits", "load_idx_dataset", "load_npz", "parse_idx",
    "read_cifar10_batch", "read_idx", "save_npz", "stratified_split",
)
