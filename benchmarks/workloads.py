"""The fixed benchmark workloads W1, W2, W3 of ``shared/bench`` (the C++ reference's timings).

Each workload is the algorithms the reference was timed on, the tasks, the memory sizes
and the reference's per-core throughput in training steps/s (one step = one Predict +
Learn on one example of one task for one algorithm): the figures of
``shared/bench/README.md`` (the reference's ``Executor``, -O2, pinned to one core, warmed
up, median of 5 processes, measured 2026-12-06).

Example:
    >>> from benchmarks import workloads
    >>> w = workloads.load("w3")
    >>> len(w.algorithms), len(w.tasks), w.memory
    (100, 10, MemoryConfig(num_scalars=5, num_vectors=9, num_matrices=2))
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

import azero_jax as az
from azero_jax import datasets as datasets_lib
from azero_jax.backends.evaluator import MemoryConfig
from azero_jax.core.tasks import Task, TaskSpec, make_tasks

DEFAULT_BENCH_DIR = os.environ.get(
    "AZERO_BENCH_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench"))

# The C++ reference's one-core training steps/s (shared/bench/README.md, 2026-12-06).
REFERENCE_STEPS_PER_S = {"w1": 27.4e6, "w2": 1.72e6, "w3": 17.1e6}

W2_DATASETS = ("binary_cifar10-pos_0-neg_1-dim_16-seed_67",
               "binary_cifar10-pos_3-neg_5-dim_16-seed_14",
               "binary_cifar10-pos_8-neg_9-dim_16-seed_21")


@dataclasses.dataclass(frozen=True)
class Workload:
    """A benchmark workload.

    Attributes:
      name: ``"w1"``, ``"w2"`` or ``"w3"``.
      algorithms: the algorithms (W3: the hand-coded NN repeated ``repeat`` times).
      tasks: the tasks; every algorithm is evaluated on every task.
      memory: address-space sizes.
      reference_steps_per_s: the C++ reference's single-core training steps/s.
    """

    name: str
    algorithms: tuple
    tasks: tuple
    memory: MemoryConfig
    reference_steps_per_s: float


def _bench_dir(bench_dir: str | None) -> str:
    path = os.path.abspath(bench_dir or DEFAULT_BENCH_DIR)
    if not os.path.isdir(path):
        raise ValueError(f"bench_dir {path!r} does not exist; pass --bench_dir or set "
                         "AZERO_BENCH_DIR to the shared/bench folder")
    return path


def read_algorithms(path: str) -> list:
    """Parses a ``.jsonl`` file of ``{"id": ..., "text": ...}`` lines."""
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                out.append(az.parse_algorithm(json.loads(line)["text"]))
    return out


def w2_tasks(bench_dir: str | None = None) -> list[Task]:
    """The 3 projected binary classification tasks (accuracy, 8000 train / 1000 valid, F=16)."""
    folder = os.path.join(_bench_dir(bench_dir), "datasets")
    tasks = []
    for index, name in enumerate(W2_DATASETS):
        data = datasets_lib.read_reference_dataset(os.path.join(folder, name))
        tasks.append(Task(data.x_train, data.y_train, data.x_valid, data.y_valid,
                          eval_type="accuracy", index=index, name=name))
    return tasks


def load(name: str, bench_dir: str | None = None) -> Workload:
    """Loads workload ``"w1"``, ``"w2"`` or ``"w3"``."""
    folder = _bench_dir(bench_dir)
    name = name.lower()
    if name == "w1":
        tasks = make_tasks(TaskSpec("scalar_linear_regression_task", 4, 100, 100, "rms_error",
                                    num_tasks=10))
        return Workload("w1", tuple(read_algorithms(os.path.join(folder, "w1_demo.jsonl"))),
                        tuple(tasks), MemoryConfig(4, 3, 1), REFERENCE_STEPS_PER_S["w1"])
    if name == "w2":
        return Workload("w2", tuple(read_algorithms(os.path.join(folder, "w2_s10.jsonl"))),
                        tuple(w2_tasks(folder)), MemoryConfig(5, 9, 2),
                        REFERENCE_STEPS_PER_S["w2"])
    if name == "w3":
        tasks = make_tasks(TaskSpec("scalar_2layer_nn_regression_task", 4, 1000, 100,
                                    "rms_error", num_tasks=10))
        (nn,) = read_algorithms(os.path.join(folder, "w3_nn.jsonl"))
        return Workload("w3", (nn,) * 100, tuple(tasks), MemoryConfig(5, 9, 2),
                        REFERENCE_STEPS_PER_S["w3"])
    raise ValueError(f"unknown workload {name!r}; expected w1, w2 or w3")


def load_all(names: Sequence[str], bench_dir: str | None = None) -> list[Workload]:
    return [load(n, bench_dir) for n in names]
