#!/bin/bash
# latency_run.sh — every number issue 5 asks for, in one go (run on a QUIET machine).
#
#   bash bench/latency_run.sh            (from the repository root)
#
# 1. the machine: CPU model, cores, load average, oneDNN, torch versions;
# 2. GPUNet-0, -1, -2 (configs/gpunet/, native resolutions) at batch 1 with
#    `gpunas latency` (three times each, back to back: the repeated-measurement check) and
#    with PyTorch eager (bench/latency_pytorch.py, /usr/bin/python3), same threads,
#    same warm-up and run counts;
# 3. the small bundled config measured 5 times back to back (agreement);
# 4. a device profile of the fmnist search space at batch 1 (lookup table,
#    calibration on 30 networks, error on 30 held-out networks), at all threads and
#    at 1 thread;
# 5. the drift of the machine: GPUNet-0 measured for DRIFT_S seconds, medians of
#    consecutive windows (what a repeated measurement can expect);
# 6. a profile of the GPUNet space at a small resolution;
# then bench/latency_report.py writes $OUT/latency_results.md: "Latency: ..." sections
# for bench/RESULTS.md.
#
# Settings (environment): BUILD (build dir, default build-latency), THREADS (default:
# all CPUs), RUNS (100), DURATION (10 s, gpunas latency's default), WARMUP_MS (500), FM_SAMPLES (3000), GN_SAMPLES (400),
# GN_RES (128), CALIB (30), HOLDOUT (30), SEED (1), DRIFT_S (120), DRIFT_WINDOW_S (10),
# OUT ($BUILD/latency_out),
# SKIP_GPUNET_SPACE=1 to skip the GPUNet-space profile.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-latency}
THREADS=${THREADS:-$(nproc)}
RUNS=${RUNS:-100}
DURATION=${DURATION:-10}
DRIFT_S=${DRIFT_S:-120}
DRIFT_WINDOW_S=${DRIFT_WINDOW_S:-10}
WARMUP_MS=${WARMUP_MS:-500}
FM_SAMPLES=${FM_SAMPLES:-3000}
GN_SAMPLES=${GN_SAMPLES:-400}
GN_RES=${GN_RES:-128}
CALIB=${CALIB:-30}
HOLDOUT=${HOLDOUT:-30}
SEED=${SEED:-1}
OUT=${OUT:-$BUILD/latency_out}
PY=/usr/bin/python3
mkdir -p "$OUT"

echo "== build ($BUILD, Release)"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target gpunas >/dev/null
G="$BUILD/gpunas"

echo "== machine"
{
  echo "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "logical_cpus=$(nproc)"
  echo "threads=$THREADS"
  echo "duration=$DURATION"
  echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "torch=$($PY -c 'import torch; print(torch.__version__)')"
  echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
} | tee "$OUT/machine.txt"

COMMON=(--threads "$THREADS" --runs "$RUNS" --duration "$DURATION" --warmup-ms "$WARMUP_MS" --warmup-runs 5)
echo "== GPUNet-0/1/2, batch 1: gpunas (three times each) and PyTorch eager"
for m in 0 1 2; do
  for rep in 1 2 3; do
    "$G" latency configs/gpunet/gpunet-$m.json "${COMMON[@]}" --force --json > "$OUT/gpunet-$m.gpunas.$rep.json"
    $PY - "$OUT/gpunet-$m.gpunas.$rep.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); c = r["compute"]
print("  %s run: median %.3f ms (blocks %.3f .. %.3f, %d runs, robust CV %.1f%%, stable %s)" % (sys.argv[1],
      c["median_ms"], c["block_median_lo_ms"], c["block_median_hi_ms"], c["n"], 100 * c["robust_cv"], r["stable"]))
EOF
  done
  $PY bench/latency_pytorch.py configs/gpunet/gpunet-$m.json --threads "$THREADS" --runs "$RUNS" \
      --warmup-ms "$WARMUP_MS" --warmup-runs 5 --json > "$OUT/gpunet-$m.pytorch.json"
  $PY -c "import json,sys; c=json.load(open(sys.argv[1]))[0]['compute']; print('  pytorch: median %.3f ms' % c['median_ms'])" \
      "$OUT/gpunet-$m.pytorch.json"
done

echo "== per-layer breakdown of GPUNet-0"
"$G" latency configs/gpunet/gpunet-0.json "${COMMON[@]}" --force --per-layer > "$OUT/gpunet-0.per-layer.txt"
tail -n 3 "$OUT/gpunet-0.per-layer.txt"

echo "== repeated measurement of configs/fmnist-small.json (5 x, back to back)"
for rep in 1 2 3 4 5; do
  "$G" latency configs/fmnist-small.json --threads "$THREADS" --runs 1000 --duration "$DURATION" \
      --warmup-ms "$WARMUP_MS" --force --json \
      > "$OUT/fmnist-small.$rep.json"
done

echo "== profile: fmnist space, batch 1 ($FM_SAMPLES table samples, $CALIB calibration, $HOLDOUT held out)"
"$G" profile --device cpu --space fmnist -o "$OUT/profile-fmnist.json" --threads "$THREADS" --batch 1 \
    --samples "$FM_SAMPLES" --calib "$CALIB" --holdout "$HOLDOUT" --seed "$SEED" > "$OUT/profile-fmnist.txt"
tail -n 6 "$OUT/profile-fmnist.txt"
"$G" latency configs/fmnist-small.json "${COMMON[@]}" --force --profile "$OUT/profile-fmnist.json" \
    | grep "predicted by" || true

echo "== profile: fmnist space, batch 1, 1 thread (the same, less exposed to the host's noise)"
"$G" profile --device cpu --space fmnist -o "$OUT/profile-fmnist-1t.json" --threads 1 --batch 1 \
    --samples "$FM_SAMPLES" --calib "$CALIB" --holdout "$HOLDOUT" --seed "$SEED" > "$OUT/profile-fmnist-1t.txt"
tail -n 6 "$OUT/profile-fmnist-1t.txt"

echo "== drift: GPUNet-0 for ${DRIFT_S}s, medians of consecutive ${DRIFT_WINDOW_S}s windows"
"$G" latency configs/gpunet/gpunet-0.json --threads "$THREADS" --runs 10 --duration "$DRIFT_S" \
    --warmup-ms "$WARMUP_MS" --force --json > "$OUT/drift-gpunet-0.json"
$PY - "$OUT/drift-gpunet-0.json" "$DRIFT_WINDOW_S" <<'EOF'
import json, statistics, sys
x = json.load(open(sys.argv[1]))["compute_samples_ms"]
win, t, cur, meds = 1000 * float(sys.argv[2]), 0.0, [], []
for v in x:
    cur.append(v); t += v
    if t >= win:
        meds.append(statistics.median(cur)); cur, t = [], 0.0
print("  window medians ms: " + " ".join("%.2f" % m for m in meds))
EOF

if [ "${SKIP_GPUNET_SPACE:-0}" != 1 ]; then
  echo "== profile: GPUNet space at resolution $GN_RES, batch 1"
  "$G" profile --device cpu --space gpunet --res "$GN_RES" -o "$OUT/profile-gpunet-$GN_RES.json" \
      --threads "$THREADS" --batch 1 --samples "$GN_SAMPLES" --calib "$CALIB" --holdout "$HOLDOUT" \
      --seed "$SEED" --runs 30 --warmup-ms 100 > "$OUT/profile-gpunet-$GN_RES.txt"
  tail -n 6 "$OUT/profile-gpunet-$GN_RES.txt"
fi
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt"

echo "== report"
$PY bench/latency_report.py "$OUT" "$GN_RES"
echo "wrote $OUT/latency_results.md"
