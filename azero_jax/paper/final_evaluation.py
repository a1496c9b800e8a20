"""The paper's final evaluation (supplement S7): tune an algorithm's constants, then test.

Protocol, for an algorithm and a dataset at its FULL input dimension (no projection:
64 for digits, 784 for MNIST / Fashion-MNIST, 3072 for CIFAR-10):

1. Tasks: one binary task per class pair (default: the reference's 9 held-out pairs,
   those of T_select), positive = smaller class id. The pair's training images are split
   (stratified, ``random_state=0``) into 8000 train / 2000 valid -- or the same 80/20
   proportions of the smallest pair's images (digits: 227 / 56, nothing resampled).
   Features are standardized with a scaler fitted on the train split.
2. Tuning: every constant of the algorithm -- each const-set value and each random-op
   parameter -- is a hyperparameter. A random-search trial scales each one by its own
   factor drawn log-uniformly from ``[1e-3, 1e3]`` (trial 0 keeps the printed values);
   trials are scored by mean validation accuracy over the pairs. The two baselines
   (:mod:`azero_jax.paper.baselines`: logistic regression and a 2-layer ReLU network) get the
   same number of trials.
3. Test: for each of ``num_seeds`` seeds, each pair is retrained on a train split drawn
   with that seed (same sizes) and scored on the pair's images of the dataset's TEST split
   (at most 2000; digits: 71); the evaluation seed of random ops / initial weights is
   the seed too.
   Reported: mean +- std over seeds of the mean test accuracy over pairs.

Only the algorithm's own ops are compiled on the JAX backend
(``op_sets=used_op_sets([algorithm])``); ``backend="cpu"`` runs the per-core interpreter.

Example:
    >>> import azero_jax as az
    >>> from azero_jax.paper import final_evaluation as fe
    >>> alg = az.generator.linear_model(0.01)
    >>> [(c.component, c.position, c.field, c.value) for c in fe.algorithm_constants(alg)]
    [(0, 0, 'd', 0.01)]
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Sequence

import numpy as np

from azero_jax.backends import evaluator as evaluator_lib
from azero_jax.core import ops as ops_lib
from azero_jax.core.program import Algorithm
from azero_jax.core.tasks import ACCURACY, Task
from azero_jax.datasets.loaders import ImageDataset, class_pair_examples
from azero_jax.datasets.projected import HELD_OUT_PAIRS, normalize_pair, split_counts
from azero_jax.paper import baselines as baselines_lib

TUNING_RANGE = (1e-3, 1e3)
MAX_TEST_EXAMPLES = 2000


# ------------------------------------------------------------------------------------
# Constants as hyperparameters.


@dataclasses.dataclass(frozen=True)
class Constant:
    """One tunable constant: instruction ``position`` of ``component``, data ``field``."""

    component: int
    position: int
    field: str
    value: float


def _value_fields(op: int) -> tuple[str, ...]:
    """The data fields of an op that hold constants (const-set indices are not constants)."""
    return ops_lib.OPS[op].value_fields


def algorithm_constants(algorithm: Algorithm) -> list[Constant]:
    """Every const-set value and random-op parameter, in program order."""
    out = []
    for c, component in enumerate(algorithm.components):
        for i, record in enumerate(component):
            for field in _value_fields(int(record["op"])):
                out.append(Constant(c, i, field, float(record[field])))
    return out


def scale_constants(algorithm: Algorithm, constants: Sequence[Constant],
                    factors: Sequence[float]) -> Algorithm:
    """A copy of ``algorithm`` with each constant multiplied by its factor."""
    if len(constants) != len(factors):
        raise ValueError(f"{len(constants)} constants but {len(factors)} factors")
    parts = [np.array(c) for c in algorithm.components]
    for constant, factor in zip(constants, factors):
        parts[constant.component][constant.position][constant.field] = constant.value * factor
    return Algorithm(*parts)


def sample_factors(num_constants: int, num_trials: int, seed: int = 0,
                   factor_range: tuple[float, float] = TUNING_RANGE) -> np.ndarray:
    """``[num_trials, num_constants]`` log-uniform factors; row 0 is all ones."""
    if num_trials < 1:
        raise ValueError(f"num_trials must be >= 1, got {num_trials}")
    rng = np.random.RandomState(seed)
    factors = np.exp(rng.uniform(math.log(factor_range[0]), math.log(factor_range[1]),
                                 size=(num_trials, num_constants)))
    factors[0] = 1.0
    return factors


def memory_for(algorithm: Algorithm, label_size: int = 0) -> evaluator_lib.MemoryConfig:
    """The smallest memory that holds every address the algorithm uses."""
    highest = {"S": 1, "V": 0 if not label_size else 2, "M": 0}
    for component in algorithm.components:
        for record in component:
            spec = ops_lib.OPS[int(record["op"])]
            for type_, field in ((spec.in1_type, "in1"), (spec.in2_type, "in2"),
                                 (spec.out_type, "out")):
                if type_ is not None:
                    highest[type_] = max(highest[type_], int(record[field]))
    return evaluator_lib.MemoryConfig(highest["S"] + 1, highest["V"] + 1, highest["M"] + 1)


# ------------------------------------------------------------------------------------
# Tasks at full dimension.


def _standardize(x_train, *others):
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [(x - mean) / std for x in (x_train,) + others]


def _split_indices(labels, num_first: int, num_second: int | None, seed: int):
    """Sorted indices of a stratified split into ``num_first`` and ``num_second`` (or the rest)."""
    from sklearn.model_selection import train_test_split
    index = np.arange(len(labels))
    rest = len(labels) - num_first if num_second is None else num_second
    if rest < len(np.unique(labels)):  # too few left to stratify: a plain random subset
        perm = np.random.RandomState(seed).permutation(len(labels))
        return np.sort(perm[:num_first]), np.sort(perm[num_first:num_first + rest])
    first, second = train_test_split(index, train_size=num_first, test_size=num_second,
                                     random_state=seed, stratify=labels)
    return np.sort(first), np.sort(second)


def pair_tasks(dataset: ImageDataset, pairs=HELD_OUT_PAIRS, num_train: int = 8000,
               num_valid: int = 2000, seed: int = 0, test: bool = False) -> list[Task]:
    """One full-dimension binary task per pair, all of the same size.

    Every pair gets the same counts: ``num_train`` / ``num_valid`` of its training images,
    or the requested proportions of the smallest pair's images when there are fewer
    (so one compiled shape serves all pairs). With ``test=False`` the task validates on
    the valid split (tuning); with ``test=True`` it trains on the train split and
    validates on the pair's test images (the same number for every pair, at most
    2000).
    ``seed`` draws the train/valid split.
    """
    pairs = [normalize_pair(p) for p in pairs]
    pools = [class_pair_examples(dataset.x_train, dataset.y_train, pos, neg) for pos, neg in pairs]
    smallest = min(len(y) for _, y in pools)
    n_train, n_valid = split_counts(smallest, (num_train, num_valid))
    if n_train < 2 or n_valid < 2:
        raise ValueError(f"{dataset.name}: a pair has only {smallest} images, too few to split")
    if test:
        test_pools = [class_pair_examples(dataset.x_test, dataset.y_test, pos, neg)
                      for pos, neg in pairs]
        n_test = min(MAX_TEST_EXAMPLES, min(len(y) for _, y in test_pools))
        if n_test < 1:
            raise ValueError(f"{dataset.name}: a pair has no test images")
    tasks = []
    for index, ((pos, neg), (x, y)) in enumerate(zip(pairs, pools)):
        train, valid = _split_indices(y, n_train, n_valid, seed)
        x = x.astype(np.float64)
        if test:
            x_test, y_test = test_pools[index]
            if len(y_test) > n_test:
                keep, _ = _split_indices(y_test, n_test, None, 0)
                x_test, y_test = x_test[keep], y_test[keep]
            x_tr, x_te = _standardize(x[train], x_test.astype(np.float64))
            task = Task(x_tr, y[train], x_te, y_test, ACCURACY, index=index, data_seed=seed,
                        name=f"{dataset.name}-pos_{pos}-neg_{neg}-test-seed_{seed}")
        else:
            x_tr, x_va = _standardize(x[train], x[valid])
            task = Task(x_tr, y[train], x_va, y[valid], ACCURACY, index=index, data_seed=seed,
                        name=f"{dataset.name}-pos_{pos}-neg_{neg}-valid-seed_{seed}")
        tasks.append(task)
    return tasks


# ------------------------------------------------------------------------------------
# The protocol.


@dataclasses.dataclass
class MethodResult:
    """One row of the final table."""

    name: str
    num_constants: int
    tuned: dict
    tuning_accuracy: float
    untuned_accuracy: float
    test_accuracies: list[float]

    @property
    def test_mean(self) -> float:
        return float(np.mean(self.test_accuracies))

    @property
    def test_std(self) -> float:
        return float(np.std(self.test_accuracies))


DEVICE_MEMORY_BUDGET = 16e9  # bytes of evaluator memory per JAX call at large F


def max_batch_for(memory: evaluator_lib.MemoryConfig, features_size: int, dtype: str) -> int:
    """Pairs per JAX call so that memories (x3 for temporaries) fit the budget; a power of 2.

    At F = 3072 one pair's 3 matrices take 113 MB in float32, so the evaluator's default
    accelerator batch (8192 pairs) would not fit.
    """
    cells = (memory.num_scalars + memory.num_vectors * features_size
             + memory.num_matrices * features_size ** 2)
    per_pair = 3 * cells * (8 if dtype == "float64" else 4)
    batch = int(max(1, min(8192, DEVICE_MEMORY_BUDGET // per_pair)))
    return 1 << (batch.bit_length() - 1)


def _evaluate(algorithms, tasks, memory, seed, backend, op_sets, dtype):
    options = {}
    if evaluator_lib.resolve_backend(backend) == "jax":
        options["max_batch"] = max_batch_for(memory, tasks[0].features_size, dtype)
    grid = evaluator_lib.evaluate(algorithms, tasks, num_scalars=memory.num_scalars,
                                  num_vectors=memory.num_vectors,
                                  num_matrices=memory.num_matrices, seed=seed, backend=backend,
                                  op_sets=op_sets, dtype=dtype, **options)
    return grid


def evaluate_algorithm(algorithm: Algorithm, tune_tasks: Sequence[Task],
                       test_tasks: Sequence[Sequence[Task]], num_trials: int = 100,
                       seed: int = 0, backend: str = "auto", dtype: str = "float32",
                       memory: evaluator_lib.MemoryConfig | None = None,
                       name: str = "algorithm", chunk: int = 64) -> MethodResult:
    """Tunes ``algorithm``'s constants on ``tune_tasks``, then tests on each seed's tasks."""
    memory = memory or memory_for(algorithm)
    op_sets = evaluator_lib.used_op_sets([algorithm])
    constants = algorithm_constants(algorithm)
    factors = sample_factors(len(constants), num_trials if constants else 1, seed)
    scores = []
    for start in range(0, len(factors), chunk):
        candidates = [scale_constants(algorithm, constants, f) for f in factors[start:start + chunk]]
        grid = _evaluate(candidates, tune_tasks, memory, seed, backend, op_sets, dtype)
        scores.extend(grid.mean(axis=1).tolist())
    best = int(np.argmax(scores))
    tuned = scale_constants(algorithm, constants, factors[best])
    test = [float(_evaluate([tuned], tasks, memory, s, backend, op_sets, dtype).mean())
            for s, tasks in enumerate(test_tasks)]
    tuned_values = {f"{('setup', 'predict', 'learn')[c.component]}[{c.position}].{c.field}":
                    float(np.float32(c.value * factors[best][i]) if c.field != "d"
                          else c.value * factors[best][i])
                    for i, c in enumerate(constants)}
    return MethodResult(name, len(constants), tuned_values, float(scores[best]),
                        float(scores[0]), test)


def evaluate_baseline(model: str, tune_tasks, test_tasks, num_trials: int = 100, seed: int = 0,
                      hidden_size: int | None = None) -> MethodResult:
    """Tunes a baseline with ``num_trials`` random-search trials, then tests it per seed."""
    result = baselines_lib.tune(model, tune_tasks, num_trials, seed, hidden_size=hidden_size)
    untuned = float(result.accuracies[0].mean())
    test = [float(baselines_lib.train_and_evaluate(model, tasks, [result.best], seed=s,
                                                   hidden_size=hidden_size).mean())
            for s, tasks in enumerate(test_tasks)]
    tuned = dataclasses.asdict(result.best)
    if model == "linear":
        tuned = {"learning_rate": tuned["learning_rate"]}
    name = {"linear": "logistic regression (optax SGD)",
            "nn": "2-layer ReLU net (optax SGD)"}[model]
    return MethodResult(name, len(tuned), tuned, result.best_accuracy, untuned, test)


def run_final_evaluation(algorithm: Algorithm, dataset: ImageDataset, pairs=HELD_OUT_PAIRS,
                         num_seeds: int = 5, tuning_trials: int = 100, num_train: int = 8000,
                         num_valid: int = 2000, backend: str = "auto", dtype: str = "float32",
                         algorithm_name: str = "algorithm", baselines: Sequence[str] = ("linear", "nn"),
                         nn_hidden_size: int | None = None, seed: int = 0) -> list[MethodResult]:
    """The whole S7 protocol; returns one :class:`MethodResult` per method (algorithm first)."""
    if num_seeds < 1:
        raise ValueError(f"num_seeds must be >= 1, got {num_seeds}")
    tune_tasks = pair_tasks(dataset, pairs, num_train, num_valid, seed=seed)
    test_tasks = [pair_tasks(dataset, pairs, num_train, num_valid, seed=s, test=True)
                  for s in range(num_seeds)]
    rows = [evaluate_algorithm(algorithm, tune_tasks, test_tasks, tuning_trials, seed, backend,
                               dtype, name=algorithm_name)]
    for model in baselines:
        rows.append(evaluate_baseline(model, tune_tasks, test_tasks, tuning_trials, seed,
                                      nn_hidden_size))
    return rows


def format_table(rows: Sequence[MethodResult], header: str = "") -> str:
    """A markdown table of the results."""
    lines = [header] if header else []
    lines += ["| method | constants | valid acc (printed constants) | valid acc (tuned) | "
              "test acc, mean ± std over seeds |",
              "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.name} | {row.num_constants} | {row.untuned_accuracy:.4f} | "
                     f"{row.tuning_accuracy:.4f} | {100 * row.test_mean:.2f} ± "
                     f"{100 * row.test_std:.2f} % |")
    return "\n".join(lines)


def results_json(rows: Sequence[MethodResult], **config) -> str:
    return json.dumps({"config": config, "rows": [
        dict(dataclasses.asdict(r), test_mean=r.test_mean, test_std=r.test_std) for r in rows]})
