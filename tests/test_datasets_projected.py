"""Reference dataset files, protos, projected binary / 10-class tasks and task variants."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

import azero_jax as az
from azero_jax import datasets
from azero_jax.datasets import DatasetError, DatasetNotFoundError, protocol, projected
from azero_jax.spec import protos


# --- protos ------------------------------------------------------------------------


def _build_spec_proto(extra_messages=None):
    messages = {
        "Pair": [("a", 1, "int32"), ("b", 2, "int32")],
        "Spec": [("kind", 1, "Kind", "optional", None, "SECOND"),
                 ("rate", 2, "double", "optional", None, 0.5),
                 ("pairs", 3, "Pair", "repeated"),
                 ("path", 4, "string", "optional", None, None, "source"),
                 ("data", 5, "automl_zero.ScalarLabelDataset", "optional", None, None, "source")]}
    messages.update(extra_messages or {})
    return protos.build_messages("test_pkg/spec.proto", "test_pkg", messages,
                                 enums={"Kind": [("FIRST", 0), ("SECOND", 4)]})


def test_build_messages_enums_defaults_oneofs_and_dependencies():
    classes = _build_spec_proto()
    spec = text_format.Parse('pairs { a: 1 b: 2 } data { train_labels: 1 }', classes["Spec"]())
    assert spec.kind == 4 and spec.rate == 0.5 and spec.WhichOneof("source") == "data"
    assert classes["Kind"].Name(4) == "SECOND"
    spec.path = "x"  # oneof: setting path clears data
    assert spec.WhichOneof("source") == "path"
    # Same content again: same classes; different content under the same name: an error.
    assert _build_spec_proto()["Spec"] is classes["Spec"]
    with pytest.raises(ValueError, match="already built"):
        _build_spec_proto({"Other": []})
    with pytest.raises(ValueError, match="unknown type"):
        protos.build_messages("test_pkg/bad.proto", "test_pkg", {"M": [("x", 1, "Nope")]})


# --- reference dataset format ------------------------------------------------------


def _arrays(rng, n_train=12, n_valid=6, n_test=4, F=3):
    return (rng.randn(n_train, F), (np.arange(n_train) % 2).astype(float),
            rng.randn(n_valid, F), (np.arange(n_valid) % 2).astype(float),
            rng.randn(n_test, F), (np.arange(n_test) % 2).astype(float))


def test_reference_format_wire_layout_and_round_trip(tmp_path):
    rng = np.random.RandomState(0)
    arrays = _arrays(rng)
    path = tmp_path / datasets.reference_file_name("cifar10", 0, 1, 3, 7)
    assert path.name == "binary_cifar10-pos_0-neg_1-dim_3-seed_7"
    datasets.write_reference_dataset(path, *arrays)
    raw = path.read_bytes()
    # proto2, repeated floats unpacked: a FeatureVector of F=3 is 3 x (tag 0x0d + 4 bytes).
    assert raw[:2] == b"\x0a\x0f" and raw[2] == 0x0d
    assert len(raw) == (12 + 6 + 4) * (2 + 15) + (12 + 6 + 4) * 5
    data = datasets.read_reference_dataset(path)
    for got, want in zip(data, arrays):
        np.testing.assert_array_equal(got, np.asarray(want, np.float32).astype(np.float64))
    assert datasets.reference_dataset_bytes(*data) == raw
    no_test = tmp_path / "no_test"
    datasets.write_reference_dataset(no_test, *arrays[:4])
    assert datasets.read_reference_dataset(no_test).x_test is None


def test_reference_format_errors(tmp_path):
    arrays = _arrays(np.random.RandomState(1))
    path = tmp_path / "f"
    datasets.write_reference_dataset(path, *arrays)
    raw = path.read_bytes()
    path.write_bytes(raw[:-3])
    with pytest.raises(DatasetError, match=r"f: .*(truncated|labels)"):
        datasets.read_reference_dataset(path)
    path.write_bytes(b"\xff\xff\xff\xff")
    with pytest.raises(DatasetError, match="not a ScalarLabelDataset"):
        datasets.read_reference_dataset(path)
    with pytest.raises(DatasetNotFoundError, match="nothing_here: no such file"):
        datasets.read_reference_dataset(tmp_path / "nothing_here")
    message = protos.ScalarLabelDataset()
    message.train_features.add().features.extend([1.0, 2.0])
    message.train_features.add().features.extend([1.0])
    message.train_labels.extend([0.0, 1.0])
    message.valid_features.add().features.extend([1.0, 2.0])
    message.valid_labels.append(1.0)
    with pytest.raises(DatasetError, match="different lengths"):
        datasets.parse_reference_dataset(message.SerializeToString())


# --- pair / seed choice -----------------------------------------------------------


def test_hash_mix_and_uniform_int():
    # HashMix folds Jenkins' 64-bit mix; values are stable uint32s.
    assert projected.hash_mix(856572777, 11001) == projected.hash_mix(856572777, 11001)
    assert projected.hash_mix(1, 2) != projected.hash_mix(2, 1)
    assert 0 <= projected.hash_mix(5, 6) < 2**32
    rng = projected._Mt19937(5489)
    assert rng.raw() == 3499211612  # std::mt19937's first output for its default seed
    draws = [rng.uniform_int(3, 10) for _ in range(2000)]
    assert min(draws) == 3 and max(draws) == 9
    assert abs(np.mean(draws) - 6.0) < 0.2
    assert {rng.uniform_int(0, 4) for _ in range(200)} == {0, 1, 2, 3}  # power-of-two path


def test_pair_choice_follows_reference_rules():
    held = datasets.HELD_OUT_PAIRS
    chosen = [projected.choose_pair_and_seed(s, held, 0, 100) for s in range(400)]
    pairs = {(p, n) for p, n, _ in chosen}
    assert not pairs & set(held) and pairs <= set(datasets.SEARCH_PAIRS)
    assert len(pairs) == 36  # every search pair shows up
    assert all(0 <= s < 100 for _, _, s in chosen)
    assert chosen == [projected.choose_pair_and_seed(s, held, 0, 100) for s in range(400)]
    # Given classes: file seed = min + data_seed mod (max - min).
    assert projected.choose_pair_and_seed(1234, (), 5, 15, 3, 8) == (3, 8, 9)
    with pytest.raises(ValueError, match="both"):
        projected.choose_pair_and_seed(1, (), 0, 10, positive_class=3)
    assert len(datasets.complement_pairs(held)) == 36


# --- projected tasks --------------------------------------------------------------


def test_projection_is_generate_datasets_procedure():
    from sklearn.model_selection import train_test_split
    digits = datasets.load_dataset("digits")
    got = datasets.projected_binary_dataset(digits, 3, 8, 100, 40, 20, projected_dim=5, seed=11)
    # Independent re-statement of generate_datasets.py.
    x = np.concatenate([digits.x_train[digits.y_train == 3][:80],
                        digits.x_train[digits.y_train == 8][:80]])
    y = np.concatenate([np.ones(80), np.zeros(80)])
    x, x_te, y, y_te = train_test_split(x, y, train_size=140, test_size=20, random_state=11,
                                        stratify=y)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, train_size=100, test_size=40,
                                              random_state=11, stratify=y)
    np.random.seed(11)
    matrix = np.random.randn(64, 5)
    projected_train = x_tr @ matrix
    mean, std = projected_train.mean(0), projected_train.std(0)
    np.testing.assert_allclose(got.x_train, (projected_train - mean) / std, atol=1e-10)
    np.testing.assert_allclose(got.x_test, (x_te @ matrix - mean) / std, atol=1e-10)
    np.testing.assert_array_equal(got.y_valid, y_va)
    assert got.y_train.mean() == 0.5


def test_task_type_reads_files_and_projects_in_memory(tmp_path):
    digits = datasets.load_dataset("digits")
    # generate_datasets.py's defaults (8000 / 1000 / 1000): digits has ~290 images a pair,
    # so each file holds all of them split 80/10/10.
    datasets.write_projected_binary_datasets(tmp_path, digits, pairs=[(1, 7)], seeds=[0, 1],
                                             projected_dim=8)
    assert len(datasets.read_reference_dataset(
        tmp_path / "binary_digits-pos_1-neg_7-dim_8-seed_0").y_test) >= 28
    params = (("dataset_name", "digits"), ("path", str(tmp_path)), ("positive_class", 1),
              ("negative_class", 7), ("max_supported_data_seed", 2), ("num_test_examples", 1000))
    spec = az.TaskSpec("projected_binary_classification_task", 8, 150, 20, "accuracy",
                       num_tasks=3, data_seeds=(4,), params=params)
    from_files = az.make_tasks(spec)
    assert [t.name for t in from_files] == [
        "binary_digits-pos_1-neg_7-dim_8-seed_0", "binary_digits-pos_1-neg_7-dim_8-seed_1",
        "binary_digits-pos_1-neg_7-dim_8-seed_0"]
    assert [t.index for t in from_files] == [0, 1, 2] and from_files[0].data_seed == 4
    # Without the folder, the same task is projected in memory (float32 rounding aside).
    in_memory = az.make_tasks(az.TaskSpec(
        "projected_binary_classification_task", 8, 150, 20, "accuracy", num_tasks=1,
        data_seeds=(4,), params=tuple(p for p in params if p[0] != "path")))[0]
    np.testing.assert_allclose(in_memory.x_train, from_files[0].x_train, atol=1e-6)
    np.testing.assert_array_equal(in_memory.y_valid, from_files[0].y_valid)
    # A file that is not there and no raw data: one error naming the file.
    missing = az.TaskSpec("projected_binary_classification_task", 8, 150, 20, "accuracy",
                          data_seeds=(4,), params=(("dataset_name", "cifar10"),
                                                   ("path", str(tmp_path)),
                                                   ("positive_class", 2), ("negative_class", 3)))
    with pytest.raises(DatasetNotFoundError, match="binary_cifar10-pos_2-neg_3-dim_8-seed_4"):
        az.make_tasks(missing)
    too_many = az.TaskSpec("projected_binary_classification_task", 8, 150, 200, "accuracy",
                           data_seeds=(4,), params=params)
    with pytest.raises(DatasetError, match="valid examples, the spec asks for 150 / 200"):
        az.make_tasks(too_many)
    with pytest.raises(ValueError, match="requires eval_type 'accuracy'"):
        az.make_tasks(az.TaskSpec("projected_binary_classification_task", 8, 150, 20,
                                  "rms_error", params=params))


def test_inline_reference_message_dataset():
    rng = np.random.RandomState(2)
    message = protos.ScalarLabelDataset()
    message.ParseFromString(datasets.reference_dataset_bytes(*_arrays(rng, 20, 10, 0, 4)[:4]))
    spec = az.TaskSpec("projected_binary_classification_task", 4, 20, 10, "accuracy",
                       params=(("dataset", message), ("positive_class", 0), ("negative_class", 1)))
    task = az.make_tasks(spec)[0]
    assert task.x_train.shape == (20, 4) and task.y_valid.tolist() == [0.0, 1.0] * 5


def test_paper_protocol_digits_sizes_and_pairs():
    search = az.make_tasks(protocol.search_task_spec("digits", num_tasks=12))
    select = az.make_tasks(protocol.select_task_spec("digits", num_tasks=12))
    pair = lambda t: tuple(int(v.split("_")[1]) for v in t.name.split("-")[1:3])  # noqa: E731
    assert all(pair(t) in datasets.SEARCH_PAIRS for t in search)
    assert all(pair(t) in datasets.HELD_OUT_PAIRS for t in select)
    for task in search + select:
        # ~290 images a pair in digits' train part: 80/20 (the 8000:2000 ratio), no resampling.
        assert 220 <= task.num_train <= 240 and abs(task.num_train / 4 - task.num_valid) <= 1.5
        assert len(np.unique(task.x_train, axis=0)) == task.num_train
        np.testing.assert_allclose(task.x_train.mean(0), 0, atol=1e-9)
    assert datasets.split_counts(290, (8000, 2000, 0)) == (232, 58, 0)
    assert datasets.split_counts(20000, (8000, 2000, 0)) == (8000, 2000, 0)


def test_task_variants_epochs_and_shuffles():
    base = protocol.search_task_spec("digits", num_tasks=2)
    few = az.make_tasks(protocol.task_variant(base, "few_examples"))
    fast = az.make_tasks(protocol.task_variant(base, "fast_training_control"))
    assert (few[0].num_train, few[0].num_epochs) == (80, 100)
    orders = few[0].train_orders
    assert orders.shape == (100, 80)
    np.testing.assert_array_equal(orders[0], np.arange(80))  # epoch 0 in stored order
    assert all(sorted(o) == list(range(80)) for o in orders)  # each epoch a permutation
    assert not np.array_equal(orders[1], orders[0]) and not np.array_equal(orders[2], orders[1])
    # Digits has fewer than 800 images a pair: every available example, 100 epochs.
    assert fast[0].num_epochs == 100 and fast[0].num_train < 800
    with pytest.raises(ValueError, match="unknown task variant"):
        protocol.task_variant(base, "many_examples")


def test_multiclass_tasks_one_hot():
    tasks = az.make_tasks(protocol.multiclass_task_spec("digits", num_tasks=2, num_train=900,
                                                        num_valid=300))
    task = tasks[0]
    assert task.y_train.shape == (900, 10) and task.label_size == 10
    np.testing.assert_array_equal(task.y_train.sum(1), 1.0)
    assert set(np.argmax(task.y_valid, 1)) == set(range(10))
    assert not np.allclose(tasks[0].x_train, tasks[1].x_train)  # a projection per seed
    with pytest.raises(ValueError, match="features_size >= 10"):
        az.make_tasks(protocol.multiclass_task_spec("digits", features_size=8, num_tasks=1))
    with pytest.raises(ValueError, match=r"select seeds must lie in \[800, 1000\)"):
        protocol.multiclass_task_spec("digits", split="select", num_tasks=300)


def test_in_memory_projection_from_raw_idx_files(tmp_path):
    from test_datasets import _idx_bytes  # tests/ is on sys.path (conftest)
    rng = np.random.RandomState(4)
    labels = (np.arange(100) % 10).astype(np.uint8)
    for prefix, n in (("train", 100), ("t10k", 10)):
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(
            _idx_bytes(rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx_bytes(labels[:n]))
    spec = az.TaskSpec("projected_binary_classification_task", 4, 12, 3, "accuracy",
                       data_seeds=(0,), params=(("dataset_name", "mnist"), ("path", str(tmp_path)),
                                                ("positive_class", 2), ("negative_class", 5)))
    task = az.make_tasks(spec)[0]
    assert task.name == "binary_mnist-pos_2-neg_5-dim_4-seed_0"
    # 20 images: split 16 / 4 (the 8000:2000 ratio), the task takes the first 12 / 3.
    assert (task.num_train, task.num_valid, task.features_size) == (12, 3, 4)
