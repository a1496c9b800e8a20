"""Datasets: the reference's dataset files, image datasets, projected tasks, baselines' data.

Example:
    >>> from azero_jax.datasets import read_reference_dataset
"""

from azero_jax.datasets.errors import DatasetError, DatasetNotFoundError
from azero_jax.datasets.reference import (SplitDataset, parse_reference_dataset,
                                          read_reference_dataset, reference_dataset_bytes,
                                          reference_file_name, write_reference_dataset)

__all__ = [
    "DatasetError", "DatasetNotFoundError", "SplitDataset", "parse_reference_dataset",
    "read_reference_dataset", "reference_dataset_bytes", "reference_file_name",
    "write_reference_dataset",
]
