#!/usr/bin/env bash
# train_threads.sh — training speed at 1 thread, 2 threads and the default (the cores
# other processes leave free), on an idle machine and beside one busy process (issue 11).
#   bash bench/train_threads.sh [BUILD_DIR] [REPS]
# Each case trains configs/fmnist-wide.json for 1 epoch on 12,800 Fashion-MNIST images
# (batch 64, no validation pass beyond the 5% split) and prints the epoch's img/s and
# threads from metrics.jsonl.  Cases are interleaved per repetition so a slow phase of a
# shared host hits them alike.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
REPS=${2:-3}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"; [ -n "${HOG:-}" ] && kill "$HOG" 2>/dev/null || true' EXIT
echo "# $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
run() { # label threads-args
  local label=$1; shift
  rm -rf "$OUT/run"
  "$B/gpunas" train configs/fmnist-wide.json --epochs 1 --batch 64 --subset 12800 --val-fraction 0.05 \
    --no-drop-path --erase 0 --warmup 0 --out "$OUT/run" "$@" >/dev/null 2>&1
  python3 -c "import json,sys; m=[json.loads(l) for l in open('$OUT/run/metrics.jsonl')][-1]; \
print('%-8s %-9s img/s %7.1f  threads %d-%d' % (sys.argv[1], sys.argv[2], m['images_per_s'], m['threads_min'], m['threads_max']))" \
    "$LOAD" "$label"
}
for LOAD in idle loaded; do
  if [ "$LOAD" = loaded ]; then
    sh -c 'while :; do :; done' & HOG=$!
    sleep 0.5
  fi
  for r in $(seq "$REPS"); do
    run "1" --threads 1
    run "2" --threads 2
    run "default"
  done
  if [ -n "${HOG:-}" ]; then kill "$HOG"; HOG=; fi
done
