"""The reference's dataset file format: a serialized proto2 ``ScalarLabelDataset`` (spec §5.5).

Files written by the reference's ``generate_datasets.py`` (named
``binary_<dataset>-pos_<p>-neg_<n>-dim_<F>-seed_<s>``, no extension) are read unchanged,
and :func:`write_reference_dataset` writes byte-identical files (repeated floats unpacked,
as the reference's proto2 messages serialize them).

Example:
    >>> import numpy as np, tempfile, os
    >>> from azero_jax.datasets import read_reference_dataset, write_reference_dataset
    >>> path = os.path.join(tempfile.mkdtemp(), "binary_digits-pos_0-neg_1-dim_2-seed_0")
    >>> write_reference_dataset(path, np.ones((3, 2)), [1, 0, 1], np.zeros((2, 2)), [0, 1])
    >>> data = read_reference_dataset(path)
    >>> data.x_train.shape, data.y_valid.tolist(), data.x_test is None
    ((3, 2), [0.0, 1.0], True)
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
from google.protobuf import message as message_lib

from azero_jax.core.errors import ConfigError
from azero_jax.datasets.errors import DatasetError, require_file
from azero_jax.spec import protos


@dataclasses.dataclass(frozen=True, eq=False)
class SplitDataset:
    """Train / valid (/ test) arrays: features ``[n, F]`` float64, labels ``[n]`` or ``[n, K]``.

    ``x_test``/``y_test`` are None when the file has no test split.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def features_size(self) -> int:
        return int(self.x_train.shape[1])

    def __iter__(self):  # allows ``x_train, y_train, x_valid, y_valid, x_test, y_test = data``
        return iter((self.x_train, self.y_train, self.x_valid, self.y_valid, self.x_test,
                     self.y_test))


def _split(path, dataset, name):
    features = getattr(dataset, f"{name}_features")
    labels = np.array(getattr(dataset, f"{name}_labels"), dtype=np.float64)
    if len(features) != len(labels):
        raise DatasetError(path, f"{len(features)} {name} feature vectors but {len(labels)} "
                                 f"{name} labels (truncated or malformed file)")
    if len(features) == 0:
        return np.zeros((0, 0)), labels
    sizes = {len(f.features) for f in features}
    if len(sizes) != 1:
        raise DatasetError(path, f"{name} feature vectors have different lengths {sorted(sizes)}")
    x = np.array([f.features for f in features], dtype=np.float32).astype(np.float64)
    return x.reshape(len(features), sizes.pop()), labels


def parse_reference_dataset(data: bytes, path="<memory>") -> SplitDataset:
    """Parses the bytes of a serialized ``ScalarLabelDataset``."""
    dataset = protos.ScalarLabelDataset()
    try:
        dataset.ParseFromString(data)
    except message_lib.DecodeError as error:
        raise DatasetError(path, f"not a ScalarLabelDataset proto (truncated or malformed): "
                                 f"{error}") from None
    x_train, y_train = _split(path, dataset, "train")
    x_valid, y_valid = _split(path, dataset, "valid")
    x_test, y_test = _split(path, dataset, "test")
    if len(x_train) == 0 or len(x_valid) == 0:
        raise DatasetError(path, f"needs train and valid examples, has {len(x_train)} train "
                                 f"and {len(x_valid)} valid")
    sizes = {x.shape[1] for x in (x_train, x_valid, x_test) if len(x)}
    if len(sizes) != 1:
        raise DatasetError(path, f"train/valid/test feature sizes differ: {sorted(sizes)}")
    if len(x_test) == 0:
        x_test = y_test = None
    return SplitDataset(x_train, y_train, x_valid, y_valid, x_test, y_test)


def read_reference_dataset(path) -> SplitDataset:
    """Reads a reference dataset file (``generate_datasets.py`` output).

    Args:
      path: the file.

    Returns:
      a :class:`SplitDataset`; float32 values promoted to float64 (as the reference does),
      labels 1.0 = positive class, 0.0 = negative class.

    Raises:
      DatasetError: missing, truncated or malformed file (the message names it).
    """
    path = require_file(path, "generate it with the reference's generate_datasets.py or "
                              "azero_jax.datasets.write_projected_binary_datasets")
    with open(path, "rb") as f:
        return parse_reference_dataset(f.read(), path)


def _add_split(dataset, name, x, y):
    if x is None:
        return
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.ndim != 2 or len(x) != len(y):
        raise ConfigError(f"{name}: features must be [n, F] and labels [n], got {x.shape} "
                         f"and {y.shape}")
    features = getattr(dataset, f"{name}_features")
    for row in x.tolist():
        features.add().features.extend(row)
    getattr(dataset, f"{name}_labels").extend(y.tolist())


def reference_dataset_bytes(x_train, y_train, x_valid, y_valid, x_test=None,
                            y_test=None) -> bytes:
    """Serializes arrays as a ``ScalarLabelDataset`` (values stored as float32)."""
    dataset = protos.ScalarLabelDataset()
    _add_split(dataset, "train", x_train, y_train)
    _add_split(dataset, "valid", x_valid, y_valid)
    _add_split(dataset, "test", x_test, y_test)
    return dataset.SerializeToString()


def write_reference_dataset(path, x_train, y_train, x_valid, y_valid, x_test=None,
                            y_test=None) -> None:
    """Writes arrays in the reference's dataset file format (readable by the C++ reference)."""
    data = reference_dataset_bytes(x_train, y_train, x_valid, y_valid, x_test, y_test)
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def reference_file_name(dataset_name: str, positive_class: int, negative_class: int,
                        features_size: int, seed: int) -> str:
    """``binary_<dataset>-pos_<p>-neg_<n>-dim_<F>-seed_<s>`` (the reference's naming)."""
    return (f"binary_{dataset_name}-pos_{int(positive_class)}-neg_{int(negative_class)}"
            f"-dim_{int(features_size)}-seed_{int(seed)}")
