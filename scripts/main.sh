#!/usr/bin/env bash
# main.sh — the README's main-job command: install dependencies, build, run the main
# job on the embedded defaults.  Until `gpunas search` exists (issue: search), the main
# job describes the bundled Fashion-MNIST config and NVIDIA's GPUNet-0.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
./build/gpunas info configs/fmnist-small.json
./build/gpunas info configs/gpunet/gpunet-0.json
