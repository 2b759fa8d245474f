#!/usr/bin/env bash
# main.sh — the README's main-job command: install dependencies, build, and run a real
# search on the embedded defaults: the Fashion-MNIST search space (spaces/fmnist.json),
# Fashion-MNIST from Debian's dataset-fashion-mnist, batch-1 latency measured on this
# machine, three latency tiers from the measured latency distribution, LA-MCTS + BO in
# each tier, 30 candidates trained (1 proxy epoch on 5,000 images, scored with their
# NASWOT; the top third of each tier again on 15,000 images), at most 10 minutes.
# Prints progress, then the best model of every tier and the Pareto front, and writes
# the tier winners (GPUNet JSON), summary.json and pareto.png to gpunas-search/.
# Then the model hub: every tier's winner trained in full (12 epochs on Fashion-MNIST,
# two trainings side by side), evaluated on the test set, timed at batch 1 with the
# search's protocol, exported (safetensors, ONNX, model card) into gpunas-search/hub/,
# and listed.  Running it again continues (or just re-reports) the same search
# (--resume) and the same hub (a finished model is never rebuilt).
#
# The body is one function that bash reads whole before running it, so that a
# `git pull` (or an edit) while the main job runs cannot change what it runs.
set -euo pipefail
main() {
  cd "$(dirname "$0")/.."
  bash scripts/deps.sh
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
  cmake --build build -j"$(nproc)"
  OUT=gpunas-search
  RESUME=()
  if [ -f "$OUT/search.db" ]; then RESUME=(--resume); fi
  ./build/gpunas search --out "$OUT" --trials 30 --time-budget 10 "${RESUME[@]}"
  ./build/gpunas hub build "$OUT" --epochs 12
  ./build/gpunas hub list "$OUT/hub"
}
main "$@"
exit
