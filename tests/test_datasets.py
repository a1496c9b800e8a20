"""Dataset loaders on small files written in each real format (CIFAR-10 binary, IDX, npz)."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest

from azero_jax import datasets
from azero_jax.datasets import DatasetError, DatasetNotFoundError


def _cifar_batch(path, labels, rng):
    images = rng.randint(0, 256, size=(len(labels), 3, 32, 32)).astype(np.uint8)
    records = np.concatenate([np.asarray(labels, np.uint8)[:, None],
                              images.reshape(len(labels), -1)], axis=1)
    records.tofile(path)
    return images


@pytest.fixture()
def cifar_dir(tmp_path):
    rng = np.random.RandomState(0)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    images = []
    for i in range(1, 6):
        images.append(_cifar_batch(folder / f"data_batch_{i}.bin", np.arange(10) % 10, rng))
    _cifar_batch(folder / "test_batch.bin", [3, 5, 7], rng)
    return tmp_path, images


def test_cifar10_binary_layout_and_hwc_flattening(cifar_dir):
    root, images = cifar_dir
    data = datasets.load_cifar10(root)  # finds the cifar-10-batches-bin subfolder
    assert data.x_train.shape == (50, 3072) and data.x_test.shape == (3, 3072)
    assert data.y_train.tolist() == list(range(10)) * 5
    assert data.y_test.tolist() == [3, 5, 7]
    first = images[0][0]  # [3, 32, 32] channel planes
    # Height-width-channel order, as TFDS (and so generate_datasets.py) flattens images.
    np.testing.assert_array_equal(data.x_train[0].reshape(32, 32, 3), first.transpose(1, 2, 0))
    assert data.class_counts().tolist() == [5] * 10


def test_cifar10_truncated_and_missing_files_are_named(cifar_dir):
    root, _ = cifar_dir
    path = root / "cifar-10-batches-bin" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="data_batch_3.bin: truncated"):
        datasets.load_cifar10(root)
    os.remove(path)
    with pytest.raises(DatasetNotFoundError, match="data_batch_3.bin: no such file"):
        datasets.load_cifar10(root)


def test_cifar10_python_version_is_refused(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(DatasetError, match="python version.*binary version"):
        datasets.load_cifar10(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="no such folder"):
        datasets.load_cifar10(tmp_path / "nowhere")


def _idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write_mnist(folder, compress, rng):
    arrays = {
        "train-images-idx3-ubyte": rng.randint(0, 256, size=(20, 28, 28)).astype(np.uint8),
        "train-labels-idx1-ubyte": (np.arange(20) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.randint(0, 256, size=(10, 28, 28)).astype(np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(10)[::-1]).astype(np.uint8),
    }
    for name, array in arrays.items():
        data = _idx_bytes(array)
        if compress:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_idx_raw_and_gz(tmp_path, compress):
    arrays = _write_mnist(tmp_path, compress, np.random.RandomState(1))
    data = datasets.load_dataset("fashion_mnist", tmp_path, cache=False)
    assert data.name == "fashion_mnist" and data.features_size == 784
    np.testing.assert_array_equal(data.x_train, arrays["train-images-idx3-ubyte"].reshape(20, -1))
    assert data.y_test.tolist() == list(range(10))[::-1]


def test_idx_other_types_and_errors(tmp_path):
    floats = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    np.testing.assert_array_equal(datasets.loaders.parse_idx(_idx_bytes(floats, 0x0D)), floats)
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(DatasetError, match="x-idx1-ubyte: truncated: 10 bytes"):
        datasets.read_idx(path)
    path.write_bytes(b"PK\x03\x04junkjunk")
    with pytest.raises(DatasetError, match="bad IDX magic"):
        datasets.read_idx(path)
    gz = tmp_path / "y.gz"
    gz.write_bytes(gzip.compress(_idx_bytes(np.arange(50, dtype=np.uint8)))[:20])
    with pytest.raises(DatasetError, match="y.gz: truncated or malformed gzip"):
        datasets.read_idx(gz)
    _write_mnist(tmp_path, False, np.random.RandomState(2))
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(DatasetNotFoundError, match="t10k-labels-idx1-ubyte"):
        datasets.load_idx_dataset(tmp_path, "mnist")


def test_npz_and_arrays(tmp_path):
    rng = np.random.RandomState(3)
    x, y = rng.rand(50, 2, 3), np.arange(50) % 5
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x, y_train=y)
    data = datasets.load_npz(path)
    assert data.name == "mine" and data.num_classes == 5 and data.features_size == 6
    # No test split given: a stratified 20 % is held out (seed 0), disjoint from train.
    assert len(data.y_test) == 10 and sorted(data.y_test.tolist()) == sorted([0, 1, 2, 3, 4] * 2)
    train_rows = {tuple(r) for r in data.x_train}
    assert not any(tuple(r) in train_rows for r in data.x_test)
    datasets.save_npz(tmp_path / "again.npz", data)
    again = datasets.load_dataset(str(tmp_path / "again.npz"), cache=False)
    np.testing.assert_array_equal(again.x_test, data.x_test)


def test_npz_errors(tmp_path):
    objects = tmp_path / "objects.npz"
    np.savez(objects, x_train=np.array([{"a": 1}], dtype=object), y_train=np.zeros(1))
    with pytest.raises(DatasetError, match="objects.npz: malformed.*pickle"):
        datasets.load_npz(objects)
    missing = tmp_path / "missing_y.npz"
    np.savez(missing, x_train=np.zeros((3, 2)))
    with pytest.raises(DatasetError, match=r"missing arrays \['y_train'\]"):
        datasets.load_npz(missing)
    broken = tmp_path / "broken.npz"
    np.savez(broken, x_train=np.zeros((30, 2)), y_train=np.zeros(30))
    broken.write_bytes(broken.read_bytes()[:100])
    with pytest.raises(DatasetError, match="broken.npz"):
        datasets.load_npz(broken)
    with pytest.raises(DatasetError, match="labels must be integer"):
        datasets.from_arrays(np.zeros((4, 2)), [0.5, 1, 0, 1], np.zeros((2, 2)), [0, 1])
    with pytest.raises(ValueError, match="needs dataset_dir"):
        datasets.load_dataset("cifar10")


def test_digits_builtin_split():
    data = datasets.load_dataset("digits")
    assert data.x_train.shape == (1437, 64) and data.x_test.shape == (360, 64)
    assert data.class_counts("test").min() >= 35
    assert data.x_train.max() == 16.0
