"""Fitness computed by the reference's C++ executor, reproduced bit for bit.

``<repo>/../shared/golden/reference_fitness.jsonl`` (its README explains every field)
holds 1,290 fitness values: 215 programs (15 hand-written edge cases, 200 random
programs over ops 0-58) x {ACCURACY, RMS_ERROR} x the 3 datasets of
``../shared/bench/datasets``, computed by the reference's ``Executor<16>`` in double
precision (g++ -O2, SSE2, Eigen 3.4). Every backend evaluating in float64 must give each
value exactly, and the same step count: the reductions follow Eigen's summation order
(tests/test_eigen_order.py), so nothing is left to a tolerance. ``stdev_of_constant``
(id 311) needs that order: std of a broadcast constant is exactly 0 there.

The CPU backend runs all 1,290 evaluations (about 10 M training steps). The JAX backend
(slower on CPUs) runs all of them under ``-m slow`` and, by default, every hand-written
case plus a fixed sample of random ones on all datasets.
"""

from __future__ import annotations

import functools
import json
import os

import numpy as np
import pytest

import azero_jax as az
from azero_jax.datasets import read_reference_dataset
from azero_jax.program import Algorithm, instruction
from azero_jax.tasks import Task

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN_DIR = os.path.join(_REPO, "..", "shared", "golden")
BENCH_DIR = os.path.join(_REPO, "..", "shared", "bench")
GOLDEN = os.path.join(GOLDEN_DIR, "reference_fitness.jsonl")

pytestmark = pytest.mark.skipif(
    not (os.path.isfile(GOLDEN) and os.path.isdir(os.path.join(BENCH_DIR, "datasets"))),
    reason=f"the reference's golden values ({GOLDEN}) or datasets are not present")

# Random programs that the default JAX run samples (every hand-written one runs).
JAX_SAMPLE = 24


def _component(rows) -> list:
    return [instruction(int(op), int(a), int(b), int(o), float(d), np.float32(f0),
                        np.float32(f1), np.float32(f2))
            for op, a, b, o, d, f0, f1, f2 in rows]


@functools.lru_cache(maxsize=None)
def _golden():
    """(records, algorithms, {dataset: {eval_type: Task}})."""
    with open(GOLDEN, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    algorithms = [Algorithm(_component(r["setup"]), _component(r["predict"]),
                            _component(r["learn"])) for r in records]
    tasks = {}
    for index, name in enumerate(sorted(records[0]["fitness"])):
        data = read_reference_dataset(os.path.join(BENCH_DIR, "datasets", name))
        tasks[name] = {
            eval_type: Task(data.x_train, data.y_train, data.x_valid, data.y_valid,
                            eval_type=eval_type.lower(), index=index, name=name)
            for eval_type in ("ACCURACY", "RMS_ERROR")}
    return records, algorithms, tasks


def _check(backend: str, selected) -> None:
    records, algorithms, tasks = _golden()
    first = records[0]
    memory = az.MemoryConfig(first["num_scalars"], first["num_vectors"],
                             first["num_matrices"])
    pair_tasks, a_index, t_index, expected = [], [], [], []
    for name, by_type in tasks.items():
        for eval_type, task in by_type.items():
            t = len(pair_tasks)
            pair_tasks.append(task)
            for i in selected:
                if records[i]["eval_type"] == eval_type:
                    a_index.append(i)
                    t_index.append(t)
                    expected.append((records[i]["id"], eval_type, name,
                                     records[i]["fitness"][name],
                                     records[i]["train_steps"][name]))
    results = az.evaluate_pairs(algorithms, pair_tasks, np.array(a_index), np.array(t_index),
                                memory=memory, max_abs_error=100.0, backend=backend,
                                dtype="float64")
    wrong = [(pid, eval_type, name, want, float(got), steps, int(got_steps))
             for (pid, eval_type, name, want, steps), got, got_steps
             in zip(expected, results.fitness, results.train_steps)
             if float(got) != want or int(got_steps) != steps]
    assert not wrong, (f"{backend}: {len(wrong)} of {len(expected)} differ from the "
                       f"reference (id, type, dataset, want, got, steps, got steps): "
                       f"{wrong[:10]}")
    assert len(expected) == 3 * len(selected)  # every selected record on every dataset


def _all() -> list[int]:
    return list(range(len(_golden()[0])))


def _sample() -> list[int]:
    records = _golden()[0]
    hand = [i for i, r in enumerate(records) if r["group"] == "hand"]
    random_ids = sorted({r["id"] for r in records if r["group"] == "random"})
    chosen = set(random_ids[::max(1, len(random_ids) // JAX_SAMPLE)][:JAX_SAMPLE])
    return hand + [i for i, r in enumerate(records) if r["id"] in chosen]


def test_golden_file_is_complete():
    records, _, tasks = _golden()
    assert len(records) == 430 and len(tasks) == 3
    assert sum(len(r["fitness"]) for r in records) == 1290
    by_name = {(r["name"], r["eval_type"]): r for r in records}
    # The case that needs Eigen's order: the reference learns nothing else from it.
    constant = by_name[("stdev_of_constant", "ACCURACY")]
    assert sorted(constant["fitness"].values()) != [0.0, 0.0, 0.0]


def test_cpu_backend_reproduces_every_reference_fitness():
    _check("cpu", _all())


def test_jax_backend_reproduces_reference_fitness_sample():
    pytest.importorskip("jax")
    _check("jax", _sample())


@pytest.mark.slow
def test_jax_backend_reproduces_every_reference_fitness():
    pytest.importorskip("jax")
    _check("jax", _all())
