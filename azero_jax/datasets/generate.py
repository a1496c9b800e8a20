r"""Writes projected binary dataset files like the reference's ``generate_datasets.py``.

Same flags and defaults, except that the source images come from a local dataset
(``--dataset_name`` digits | mnist | fashion_mnist | cifar10 with ``--dataset_dir``, no
download) instead of TFDS:

  python -m azero_jax.datasets.generate --dataset_name=cifar10 \
    --dataset_dir=/data/cifar-10-batches-bin --data_dir=/tmp/binary_cifar10_data

Files are named ``binary_<dataset>-pos_<p>-neg_<n>-dim_<F>-seed_<s>`` and are read by the
C++ reference and by ``projected_binary_classification_task`` (spec field ``path``).
Note: TFDS stores the images in its own order, so files made from the raw CIFAR-10 /
MNIST files differ from TFDS-made ones in which images land in which split.
A missing or malformed dataset file or a bad flag prints one line ``error: <message>``
and exits with status 2.
"""

from __future__ import annotations

from absl import flags

from azero_jax.core.errors import ConfigError, run_main
from azero_jax.datasets.loaders import load_dataset
from azero_jax.datasets.projected import write_projected_binary_datasets
from azero_jax.evolution import run_checks

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", "/tmp/binary_cifar10_data/", "Folder to write the files to.")
flags.DEFINE_string("dataset_name", "cifar10", "digits | mnist | fashion_mnist | cifar10.")
flags.DEFINE_string("dataset_dir", None, "Folder with the downloaded dataset files.")
flags.DEFINE_integer("num_train_examples", 8000, "Train examples per file.")
flags.DEFINE_integer("num_valid_examples", 1000, "Valid examples per file.")
flags.DEFINE_integer("num_test_examples", 1000, "Test examples per file.")
flags.DEFINE_integer("projected_dim", 16, "F.")
flags.DEFINE_integer("min_data_seed", 0, "First seed (inclusive).")
flags.DEFINE_integer("max_data_seed", 100, "Last seed (exclusive).")
flags.DEFINE_list("class_ids", "0,1,2,3,4,5,6,7,8,9", "Classes to pair up.")


def _class_ids() -> list[int]:
    try:
        ids = sorted({int(c) for c in FLAGS.class_ids})
    except ValueError:
        raise ConfigError(f"--class_ids must be integers like '0,1,2', got "
                          f"{','.join(FLAGS.class_ids)!r}") from None
    if len(ids) < 2 or ids[0] < 0:
        raise ConfigError(f"--class_ids needs at least two different class ids >= 0, got {ids}")
    return ids


def _check_flags() -> None:
    """Refuses, before loading any data, flags that would fail later."""
    for name in ("num_train_examples", "num_valid_examples", "num_test_examples",
                 "projected_dim"):
        if getattr(FLAGS, name) < 1:
            raise ConfigError(f"--{name} must be >= 1, got {getattr(FLAGS, name)}")
    if not 0 <= FLAGS.min_data_seed < FLAGS.max_data_seed:
        raise ConfigError(f"--min_data_seed ({FLAGS.min_data_seed}) must be >= 0 and below "
                          f"--max_data_seed ({FLAGS.max_data_seed})")
    run_checks.check_writable_folder(FLAGS.data_dir, "--data_dir")


def main(argv):
    del argv
    _check_flags()
    ids = _class_ids()
    dataset = load_dataset(FLAGS.dataset_name, FLAGS.dataset_dir)
    pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
    paths = write_projected_binary_datasets(
        FLAGS.data_dir, dataset, pairs, range(FLAGS.min_data_seed, FLAGS.max_data_seed),
        FLAGS.num_train_examples, FLAGS.num_valid_examples, FLAGS.num_test_examples,
        FLAGS.projected_dim)
    print(f"wrote {len(paths)} files to {FLAGS.data_dir}")


if __name__ == "__main__":
    run_main(main)
