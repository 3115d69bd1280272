#!/usr/bin/env bash
# The GPU part of issue 12, prepared for one H200 and 15 minutes of device time (not yet run).
#
#   bash scripts/gpu_study.sh prepare      # HERE, on the CPU machine: copy Fashion-MNIST into .data/ (git-ignored)
#   bash scripts/gpu_study.sh bench        # ON THE DEVICE (run tool, carry [".data"], timeout_s 300)
#   bash scripts/gpu_study.sh study        # ON THE DEVICE (run tool, carry [".data"], timeout_s 540)
#
# The device image has jax 0.11 (CUDA), flax, optax and torch; nothing is installed. Each step writes into
# $OUT (or results/ when OUT is unset): bench_resnet_h200.json, resnet_population_gpu.npz and a log.
# Budget (estimated from the H100 numbers in docs/resnet.md, unmeasured on an H200): machine start 1-2 min,
# bench ~3-4 min, study ~6 min (36 training runs × 16 epochs × 8,000 images at the SAM step cost plus
# per-epoch evaluation, 12 fine-tuning runs, 6 × 11 interpolation points, ~1.5 min compiling).
# If the bench shows the vmapped population slower than one run (grouped convolutions), run the study
# with BATCHING=map: the runs then go one after another inside each program.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-results}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
quiet() { grep -v "^W0000\|^I0000\|^E0000" || true; }

case "${1:-}" in
  prepare)
    mkdir -p .data/fashion-mnist
    cp /usr/share/datasets/fashion-mnist/*.gz .data/fashion-mnist/
    grep -qx "/.data/" .git/info/exclude 2>/dev/null || echo "/.data/" >> "$(git rev-parse --git-path info/exclude)"
    du -sh .data
    ;;
  bench)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    # ERM / SAM / m-SAM (m = 32) step times, population throughput (1, 4, 8 runs), PyTorch baseline.
    timeout 280 python3 benchmarks/bench_resnet.py --batch-size 256 --m 32 --population 1 4 8 --with-torch \
      --out "$out/bench_resnet_h200.json" 2>&1 | quiet | tee "$out/bench.log"
    ;;
  study)
    timeout 520 python3 -m samtheory.nn.cli population-study --preset gpu --data-dir .data/fashion-mnist \
      --batching "${BATCHING:-vmap}" --out "$out/resnet_population_gpu.npz" 2>&1 | quiet | tee "$out/study.log"
    ;;
  *)
    echo "usage: bash scripts/gpu_study.sh {prepare|bench|study}" >&2
    exit 2
    ;;
esac
