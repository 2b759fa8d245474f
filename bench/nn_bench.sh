#!/usr/bin/env bash
# nn_bench.sh — the issue-3 benchmark: gpunas (dnnl) against PyTorch eager on the same
# networks, machine and threads, run back to back for each case.
#   bash bench/nn_bench.sh [BUILD_DIR] [THREADS]
# Cases: GPUNet-0 at 224 (training batch 16) and configs/fmnist-small.json at 32x32
# (training batch 64); each prints a training and a batch-1 inference line per engine.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
T=${2:-$(nproc)}
PY=/usr/bin/python3
echo "# $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p') $(nproc) cores, threads=$T, load: $(cut -d' ' -f1-3 /proc/loadavg)"
run() {
  "$B/bench/nn_bench" "$@" --threads "$T"
  $PY bench/nn_bench_pytorch.py "$@" --threads "$T"
}
run configs/fmnist-small.json --batch 64 --iters 30
run configs/gpunet/gpunet-0.json --res 224 --batch 16 --iters 5
