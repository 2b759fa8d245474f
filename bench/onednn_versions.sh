#!/usr/bin/env bash
# onednn_versions.sh — the same gpunas source built against different oneDNN installs
# (cmake -DDNNL_ROOT=PREFIX, see CMakeLists.txt), run side by side (issue 21): batch-1
# inference (`gpunas latency`, compute median) and training (bench/nn_bench, median step),
# each case run on every build in turn, the whole set ROUNDS times.
#   bash bench/onednn_versions.sh ROUNDS NAME=BUILD_DIR [NAME=BUILD_DIR ...]
# A build whose folder holds run.env (lines VAR=value) runs with those variables exported:
# LD_LIBRARY_PATH / OCL_ICD_FILENAMES for PyPI's SYCL oneDNN, and LAT_FLAGS, extra
# `gpunas latency` options (--no-pin where the runtime is not OpenMP).
# Output: one line per measurement, "round case engine value unit", then the load.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=$1
shift
echo "# $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus, load: $(cut -d' ' -f1-3 /proc/loadavg)"
lat() { # BUILD CONFIG RES THREADS
  local b=$1
  ( set -a; [ -f "$b/run.env" ] && . "$b/run.env"; set +a
    # shellcheck disable=SC2086
    "$b/gpunas" latency "$2" --res "$3" --batch 1 --threads "$4" --duration 5 --json --no-reference --force ${LAT_FLAGS:-} 2>/dev/null ) |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.4f ms (%s)" % (d["compute"]["median_ms"], d["device"]["onednn"]))'
}
train() { # BUILD ARGS...
  local b=$1
  shift
  ( set -a; [ -f "$b/run.env" ] && . "$b/run.env"; set +a
    "$b/bench/nn_bench" "$@" 2>/dev/null ) | sed -n 's/.*train_step_ms=\([0-9.]*\).*/\1 ms per step/p'
}
for r in $(seq 1 "$ROUNDS"); do
  for c in fmnist-lat-1t gpunet0-lat-1t gpunet0-lat-2t fmnist-train-1t gpunet0-train-2t; do
    for nb in "$@"; do
      n=${nb%%=*} b=${nb#*=}
      case $c in
      fmnist-lat-1t) v=$(lat "$b" configs/fmnist-small.json 32 1) ;;
      gpunet0-lat-1t) v=$(lat "$b" configs/gpunet/gpunet-0.json 224 1) ;;
      gpunet0-lat-2t) v=$(lat "$b" configs/gpunet/gpunet-0.json 224 2) ;;
      fmnist-train-1t) v=$(train "$b" configs/fmnist-small.json --batch 64 --iters 30 --threads 1) ;;
      gpunet0-train-2t) v=$(train "$b" configs/gpunet/gpunet-0.json --res 224 --batch 16 --iters 3 --threads 2) ;;
      esac
      echo "$r $c $n $v"
    done
  done
  echo "# round $r done $(date -u +%T), load: $(cut -d' ' -f1-3 /proc/loadavg)"
done
