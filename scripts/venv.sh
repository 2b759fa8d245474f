#!/usr/bin/env bash
# venv.sh — the Python environment the tests and benchmarks use as independent
# references: Debian's /usr/bin/python3 (numpy, torch, onnx from Debian packages, see
# deps.sh) plus ONNX Runtime from PyPI, in .venv/ (git-ignored; --system-site-packages
# so the Debian packages stay visible).  Idempotent: does nothing when .venv already
# imports onnxruntime.  Tests find it as $GPUNAS_SOURCE/.venv/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_VERSION=1.32.0
if [ -x .venv/bin/python ] && .venv/bin/python -c "import onnxruntime, onnx" 2>/dev/null; then
  exit 0
fi
/usr/bin/python3 -m venv --system-site-packages .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "onnxruntime==$ORT_VERSION"
.venv/bin/python -c "import onnxruntime, onnx, numpy; print('venv: onnxruntime', onnxruntime.__version__, '/ onnx', onnx.__version__, '/ numpy', numpy.__version__)"
