#!/usr/bin/env bash
# One prepared device run for a session that is lent a GPU (see DEVELOPERS.md, `run` tool):
#   (here)  mkdir -p .bench_data && cp -r ../shared/bench/. .bench_data/
#   (run)   command: bash benchmarks/gpu_session.sh   carry: [".bench_data"]   timeout_s: 540
# It installs the package over the machine's preinstalled JAX, times the batched JAX evaluator
# on W1-W3 at several batch sizes, batched islands (W = 1, 10, 100 of P = 100), runs the
# GPU-marked tests, and leaves JSON under $OUT.
set -uo pipefail
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
OUT="${OUT:-/tmp/azero_gpu_out}"; mkdir -p "$OUT"
python3 -m pip install -q -e . --no-deps 2>&1 | tail -1
python3 -c "import jax; print(jax.__version__, jax.devices())" | tee "$OUT/device.txt"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee -a "$OUT/device.txt"
timeout 330 python3 benchmarks/bench_evaluator.py --backend=jax --bench_dir=.bench_data \
  --workloads=w1,w3,w2 --batch_sizes=2048,16384,65536 --repeats=2 --out_dir="$OUT" \
  --note="gpu_session.sh" 2>&1 | tee "$OUT/bench.log"
timeout 100 python3 benchmarks/bench_islands.py --cases=batched --backend=jax --islands=1,10,100 \
  --output="$OUT/islands.jsonl" 2>&1 | tail -4 | tee "$OUT/islands.log"
timeout 90 python3 -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tail -5 | tee "$OUT/gpu_tests.log"
ls -la "$OUT"
