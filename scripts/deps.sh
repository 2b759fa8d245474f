#!/usr/bin/env bash
# deps.sh — install the Debian packages gpunas builds, tests and runs with.
# Idempotent; run as root (or with sudo available).
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config git
  libjansson-dev libcmocka-dev libdnnl-dev ocl-icd-opencl-dev libopenblas-dev liblapacke-dev
  zlib1g-dev libpng-dev libjpeg62-turbo-dev libsqlite3-dev libsvm-dev
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev libcairo2-dev libzip-dev
  dataset-fashion-mnist sqlite3
  libpq-dev postgresql-15
  python3 python3-numpy python3-torch python3-onnx python3-venv python3-pip
)
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
