"""The paper's task protocol as task specs: T_search / T_select, §4.3 variants, 10 classes.

* T_search: projected binary tasks whose pair is drawn (per data seed) among the 36 pairs
  that are not held out; T_select and final tasks: only the 9 held-out pairs (the
  reference's recommended list, ``HELD_OUT_PAIRS``). Paper sizes: 8000 train / 2000 valid
  (where the data has that many), F = 16, file seeds ``[0, 100)``.
* :func:`reference_baseline_specs` reproduces ``run_baseline.sh``'s own choice instead
  (8000 / 1000, select = the search tasks, final = 100 tasks of the held-out pairs).
* §4.3 variants (:data:`VARIANTS`): few training examples (80 examples x 100 epochs) and
  fast training (800 x 10), with their controls (800 x 100). Epochs after the first are
  shuffled as the reference shuffles them (``Task.train_orders``).
* 10-class tasks: 45000 / 5000 examples (or 90/10 of what there is), projection seed =
  data seed; seeds 0..799 form T_search and 800..999 T_select (80 % / 20 % of 1000).

Example:
    >>> from azero_jax.datasets import protocol
    >>> spec = protocol.task_variant(protocol.search_task_spec("digits"), "few_examples")
    >>> spec.num_train_examples, spec.num_train_epochs
    (80, 100)
"""

from __future__ import annotations

import dataclasses

from azero_jax.core.errors import ConfigError
from azero_jax.core.tasks import ACCURACY, TaskSpec
from azero_jax.datasets.projected import (HELD_OUT_PAIRS, MULTICLASS_TASK_TYPE, TASK_TYPE,
                                          complement_pairs)

# name -> (num_train_examples, num_train_epochs)
VARIANTS = {
    "few_examples": (80, 100),
    "few_examples_control": (800, 100),
    "fast_training": (800, 10),
    "fast_training_control": (800, 100),
}
MULTICLASS_SEARCH_SEEDS = (0, 800)
MULTICLASS_SELECT_SEEDS = (800, 1000)


def _binary_spec(dataset_name, path, features_size, num_tasks, num_train, num_valid, num_epochs,
                 data_seeds, held_out_pairs, max_supported_data_seed) -> TaskSpec:
    params = {"dataset_name": dataset_name, "held_out_pairs": tuple(held_out_pairs),
              "min_supported_data_seed": 0, "max_supported_data_seed": max_supported_data_seed}
    if path:
        params["path"] = str(path)
    return TaskSpec(TASK_TYPE, features_size, num_train, num_valid, ACCURACY, num_tasks,
                    num_epochs, tuple(data_seeds), (), tuple(sorted(params.items())))


def search_task_spec(dataset_name: str = "cifar10", path=None, features_size: int = 16,
                     num_tasks: int = 10, num_train: int = 8000, num_valid: int = 2000,
                     num_epochs: int = 1, data_seeds=(), max_supported_data_seed: int = 100,
                     held_out_pairs=HELD_OUT_PAIRS) -> TaskSpec:
    """T_search: a random non-held-out pair and file seed per task (paper S4)."""
    return _binary_spec(dataset_name, path, features_size, num_tasks, num_train, num_valid,
                        num_epochs, data_seeds, held_out_pairs, max_supported_data_seed)


def select_task_spec(dataset_name: str = "cifar10", path=None, features_size: int = 16,
                     num_tasks: int = 100, num_train: int = 8000, num_valid: int = 2000,
                     num_epochs: int = 1, data_seeds=(1000000,),
                     max_supported_data_seed: int = 100,
                     held_out_pairs=HELD_OUT_PAIRS) -> TaskSpec:
    """T_select / final tasks: pairs drawn only among ``held_out_pairs``."""
    return _binary_spec(dataset_name, path, features_size, num_tasks, num_train, num_valid,
                        num_epochs, data_seeds, complement_pairs(held_out_pairs),
                        max_supported_data_seed)


def reference_baseline_specs(path="./binary_cifar10_data/", dataset_name: str = "cifar10"
                             ) -> tuple[TaskSpec, TaskSpec, TaskSpec]:
    """``run_baseline.sh``'s (search, select, final) specs: 8000/1000, F 16, 10/10/100 tasks."""
    search = _binary_spec(dataset_name, path, 16, 10, 8000, 1000, 1, (), HELD_OUT_PAIRS, 100)
    final = _binary_spec(dataset_name, path, 16, 100, 8000, 1000, 1, (),
                         complement_pairs(HELD_OUT_PAIRS), 100)
    return search, search, final


def task_variant(spec: TaskSpec, variant: str) -> TaskSpec:
    """``spec`` with the train size and epochs of a §4.3 variant (see :data:`VARIANTS`)."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown task variant {variant!r}; expected one of {sorted(VARIANTS)}")
    num_train, epochs = VARIANTS[variant]
    return dataclasses.replace(spec, num_train_examples=num_train, num_train_epochs=epochs)


def multiclass_task_spec(dataset_name: str = "cifar10", path=None, features_size: int = 16,
                         num_tasks: int = 10, split: str = "search", num_train: int = 45000,
                         num_valid: int = 5000, num_epochs: int = 1, first_seed=None) -> TaskSpec:
    """10-class projected tasks; ``split`` ``"search"`` uses seeds 0.., ``"select"`` 800.."""
    if split not in ("search", "select"):
        raise ConfigError(f"split must be 'search' or 'select', got {split!r}")
    low, high = MULTICLASS_SEARCH_SEEDS if split == "search" else MULTICLASS_SELECT_SEEDS
    first = low if first_seed is None else int(first_seed)
    if not (low <= first and first + num_tasks <= high):
        raise ConfigError(f"{split} seeds must lie in [{low}, {high}); got {first}.."
                         f"{first + num_tasks - 1}")
    params = {"dataset_name": dataset_name}
    if path:
        params["path"] = str(path)
    return TaskSpec(MULTICLASS_TASK_TYPE, features_size, num_train, num_valid, ACCURACY,
                    num_tasks, num_epochs, (first,), (), tuple(sorted(params.items())))
