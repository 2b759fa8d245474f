#!/usr/bin/python3
"""load_gpunas_weights.py -- the other direction of NVIDIA interop: a gpunas weights file
loaded by PyTorch exactly as NVIDIA's code loads a state dict.

  load_gpunas_weights.py CONFIG.json W.safetensors INPUT.npy LOGITS.npy [--tol 1e-4]

Builds the network with NVIDIA's module names (gpunet_ref.GPUNetRef: GPUNet.network =
nn.Sequential with the builder's add_module names), calls
model.load_state_dict(state, strict=True) on every tensor of W.safetensors as it is (no
renaming: the keys must already be NVIDIA's, num_batches_tracked included), runs eval mode
on INPUT.npy and compares with LOGITS.npy (gpunas's logits) by max|a-b|/max|b|.
Prints "RESULT rel=<x> tensors=<n>"; exit 1 if strict loading fails or rel > tol.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpunet_ref as G  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("weights")
    ap.add_argument("input")
    ap.add_argument("logits")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    w, _ = G.st_read(a.weights)
    model = G.GPUNetRef(G.load_config(a.config))
    state = {k: torch.from_numpy(np.array(v)) for k, v in w.items()}
    model.load_state_dict(state, strict=True)  # raises on any missing or unexpected key
    with torch.no_grad():
        y = model.eval()(torch.from_numpy(np.load(a.input))).numpy()
    ref = np.load(a.logits)
    rel = float(np.max(np.abs(y - ref)) / max(np.max(np.abs(ref)), 1e-30))
    print("RESULT rel=%.3e tensors=%d" % (rel, len(state)))
    return 0 if rel <= a.tol else 1


if __name__ == "__main__":
    sys.exit(main())
