"""Datasets: the reference's dataset files, image datasets, projected tasks.

Importing this package registers the task types ``projected_binary_classification_task``
and ``projected_multiclass_classification_task`` with :mod:`azero_jax.core.tasks`.

Example:
    >>> from azero_jax.datasets import load_dataset, projected_binary_dataset
    >>> data = projected_binary_dataset(load_dataset("digits"), 0, 1, 8000, 2000, 0,
    ...                                 projected_dim=16, seed=3)
    >>> data.x_train.shape, data.x_valid.shape, data.x_test is None
    ((231, 16), (57, 16), True)
"""

from azero_jax.datasets.errors import DatasetError, DatasetNotFoundError
from azero_jax.datasets.loaders import (DATASET_NAMES, FULL_DIMENSION, ImageDataset,
                                        class_pair_examples, from_arrays, load_cifar10,
                                        load_dataset, load_digits, load_idx_dataset, load_npz,
                                        read_cifar10_batch, read_idx, save_npz)
from azero_jax.datasets.projected import (ALL_PAIRS, HELD_OUT_PAIRS, MULTICLASS_TASK_TYPE,
                                          SEARCH_PAIRS, TASK_TYPE, choose_pair_and_seed,
                                          complement_pairs, hash_mix, one_hot,
                                          projected_binary_dataset, projected_binary_task,
                                          projected_multiclass_dataset, projected_multiclass_task,
                                          split_counts, write_projected_binary_datasets)
from azero_jax.datasets.protocol import (VARIANTS, multiclass_task_spec, reference_baseline_specs,
                                         search_task_spec, select_task_spec, task_variant)
from azero_jax.datasets.reference import (SplitDataset, parse_reference_dataset,
                                          read_reference_dataset, reference_dataset_bytes,
                                          reference_file_name, write_reference_dataset)

__all__ = [
    "ALL_PAIRS", "DATASET_NAMES", "DatasetError", "DatasetNotFoundError", "FULL_DIMENSION",
    "HELD_OUT_PAIRS", "ImageDataset", "MULTICLASS_TASK_TYPE", "SEARCH_PAIRS", "SplitDataset",
    "TASK_TYPE", "choose_pair_and_seed", "class_pair_examples", "complement_pairs",
    "from_arrays", "hash_mix", "load_cifar10", "load_dataset", "load_digits",
    "load_idx_dataset", "load_npz", "one_hot", "parse_reference_dataset",
    "projected_binary_dataset", "projected_binary_task", "projected_multiclass_dataset",
    "projected_multiclass_task", "read_cifar10_batch", "read_idx", "read_reference_dataset",
    "reference_dataset_bytes", "reference_file_name", "save_npz", "split_counts",
    "write_projected_binary_datasets", "write_reference_dataset", "VARIANTS",
    "multiclass_task_spec", "reference_baseline_specs", "search_task_spec", "select_task_spec",
    "task_variant",
]
