#!/usr/bin/env bash
# One prepared device run for a session that is lent a GPU (see DEVELOPERS.md, `run` tool):
#   (here)  mkdir -p .bench_data && cp -r ../shared/bench/. .bench_data/
#   (run)   command: bash benchmarks/gpu_session.sh   carry: [".bench_data"]   timeout_s: 540
# It installs the package over the machine's preinstalled JAX / numba-cuda, times the "cuda"
# kernel (float32: W2, W1, W3; float64: W2) at batch sizes from 1 k to 1 M pairs (the
# workloads' pairs tiled past 1 M) and the batched JAX evaluator (float32: W2, W1; float64:
# W2; up to 128 k pairs), runs the demo search with 1, 10 and 100 batched islands on each
# backend, and leaves JSON under $OUT. Every step has its own timeout (8 minutes in all,
# installation included) and writes its JSON line by line, so a step cut short keeps what
# it measured; the most wanted figures (cuda on W2) come first.
#
# DRY_RUN=1 (or --dry-run): the same steps on a CPU machine -- the cuda kernel in numba's
# CUDA simulator, JAX on the CPU, tiny sizes (a few pairs, capped training steps, one small
# island run) -- so the script cannot rot; tests/test_cuda_device_script.py runs it in CI.
set -uo pipefail
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
DRY_RUN="${DRY_RUN:-0}"
[[ "${1:-}" == "--dry-run" ]] && DRY_RUN=1
OUT="${OUT:-/tmp/azero_gpu_out}"; mkdir -p "$OUT"
BENCH_DIR="${BENCH_DIR:-.bench_data}"
[[ -d "$BENCH_DIR" ]] || BENCH_DIR=../shared/bench
PY="${PYTHON:-python3}"

if [[ "$DRY_RUN" == 1 ]]; then
  export NUMBA_ENABLE_CUDASIM=1 JAX_PLATFORMS=cpu
  # Tiny: 4 pairs of one workload, 20 training steps each; one island of P = 10.
  WORKLOADS=w1; JAX_WORKLOADS=w1; SIZES=4; TILE=1; MAX_PAIRS=4; JAX_MAX_PAIRS=4; STEPS_LIMIT=20; JAX_SIZES=4
  ISLANDS=1; ISLAND_ARGS="--population_size=10 --individuals=5"; T=(300 300 300 300 300)
  echo "dry run: simulator, tiny sizes" | tee "$OUT/device.txt"
else
  # Up to 256 k pairs timed per batch size (the 1 M batch: one batch), JAX up to 128 k.
  WORKLOADS=w2,w1,w3; JAX_WORKLOADS=w2,w1
  SIZES=1024,16384,131072,1048576; MAX_PAIRS=262144; STEPS_LIMIT=0
  JAX_MAX_PAIRS=131072
  TILE=1700  # W2's 600 pairs (the smallest workload) tiled past 1 M
  JAX_SIZES=1024,16384,131072; ISLANDS=1,10,100; ISLAND_ARGS=""
  # Timeouts (s): cuda f32 on W2, W1, W3; cuda f64, jax f32, jax f64 on W2 (and W1 for jax
  # f32); islands on each backend. A cuda kernel compiles once per F, memory size and dtype
  # and process (about 30 s of one core here), JAX per shape: compiles are in the budget.
  T=(180 90 75 40 40)
  "$PY" -m pip install -q -e . --no-deps 2>&1 | tail -1
  "$PY" -c "import jax; print(jax.__version__, jax.devices())" | tee "$OUT/device.txt"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee -a "$OUT/device.txt"
fi

bench() {  # backend dtype sizes timeout max_pairs workloads
  timeout "$4" "$PY" benchmarks/bench_evaluator.py --backend="$1" --dtype="$2" \
    --bench_dir="$BENCH_DIR" --workloads="$6" --batch_sizes="$3" --tile="$TILE" \
    --max_pairs="$5" --train_steps_limit="$STEPS_LIMIT" --repeats=1 \
    --out_dir="$OUT" --note="gpu_session.sh dry_run=$DRY_RUN" 2>&1 | tee -a "$OUT/bench.log"
}

bench cuda float32 "$SIZES" "${T[0]}" "$MAX_PAIRS" "$WORKLOADS"
bench cuda float64 "$SIZES" "${T[1]}" "$MAX_PAIRS" "${WORKLOADS%%,*}"
bench jax float32 "$JAX_SIZES" "${T[2]}" "$JAX_MAX_PAIRS" "$JAX_WORKLOADS"
bench jax float64 "$JAX_SIZES" "${T[3]}" "$JAX_MAX_PAIRS" "${WORKLOADS%%,*}"
for backend in cuda jax; do
  # shellcheck disable=SC2086  # ISLAND_ARGS holds several flags
  timeout "${T[4]}" "$PY" benchmarks/bench_islands.py --cases=batched --backend="$backend" \
    --islands="$ISLANDS" $ISLAND_ARGS --output="$OUT/islands.jsonl" 2>&1 | tail -4 \
    | tee -a "$OUT/islands.log"
done
ls -la "$OUT"
