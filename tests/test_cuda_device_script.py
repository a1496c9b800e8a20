"""``benchmarks/gpu_session.sh --dry-run``: the prepared GPU measurement runs on a CPU.

The dry run takes every step of the device script -- the cuda kernel (under numba's CUDA
simulator) and the JAX evaluator on W1 in float32 and float64, then the demo search with
batched islands on both backends -- at tiny sizes, so the script cannot rot before a GPU
is lent. CI's step 4 runs it (``-m cuda``); a few minutes of one core (JAX compiles).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.cuda

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(_REPO, "..", "shared", "bench")


def test_device_script_dry_run(tmp_path):
    assert os.path.isdir(BENCH_DIR), f"the workloads ({BENCH_DIR}) are missing"
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, BENCH_DIR=BENCH_DIR,
               DRY_RUN="1")
    run = subprocess.run(["bash", "benchmarks/gpu_session.sh", "--dry-run"], cwd=_REPO,
                         env=env, capture_output=True, text=True, timeout=900)
    log = run.stdout[-4000:] + run.stderr[-4000:]
    assert run.returncode == 0, log
    with open(tmp_path / "evaluator.jsonl") as f:
        records = [json.loads(line) for line in f]
    measured = {(r["backend"], r["dtype"]) for r in records}
    assert measured == {("cuda", "float32"), ("cuda", "float64"), ("jax", "float32"),
                        ("jax", "float64")}, log
    for record in records:
        assert record["train_steps"] > 0 and record["steps_per_s"] > 0, record
        assert record["train_steps_limit"] == 20 and record["features_size"] == 4
    assert any(r["device"] == "cuda: simulator" for r in records)
    with open(tmp_path / "islands.jsonl") as f:
        islands = [json.loads(line) for line in f]
    assert {row["backend"] for row in islands} == {"cuda", "jax"}, log
    assert all(row["individuals"] > 0 for row in islands)
