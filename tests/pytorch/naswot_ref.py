#!/usr/bin/python3
"""naswot_ref.py -- the NASWOT score (Mellor et al. 2021) computed with PyTorch, the
independent reference for gpunas's gn_net_naswot (`gpunas zerocost`).

  naswot_ref.py CONFIG.json INIT.safetensors BATCH.npy [--expect SCORE --tol 1e-3]

Builds the network (gpunet_ref.GPUNetRef, NVIDIA's module names), loads gpunas's initial
weights, runs one training-mode forward of the batch (BN with batch statistics, no dropout
or drop-path) with a forward pre-hook on every nn.ReLU and nn.SiLU module (SE's inner
activation included, its sigmoid gate not), codes each unit of each image as input > 0,
and computes K[i][j] = units where images i and j agree and log|det K| (slogdet, float64).
Prints "RESULT naswot=<x> units=<n>"; with --expect, exit 1 unless |x - SCORE| <= tol *
max(1, |SCORE|).
"""
import argparse
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpunet_ref as G  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("weights")
    ap.add_argument("batch")
    ap.add_argument("--expect", type=float)
    ap.add_argument("--tol", type=float, default=1e-3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    cfg = G.load_config(a.config)
    model = G.GPUNetRef(cfg, dropout=0.0, drop_path_base=0.0)
    G.load_weights(model, a.weights)
    model.train()
    x = torch.from_numpy(np.load(a.batch)).float()
    B = x.shape[0]
    K = np.zeros((B, B))
    units = [0]

    def hook(_module, inputs):
        c = (inputs[0].detach().reshape(B, -1) > 0).double().numpy()
        K[:] += c @ c.T + (1 - c) @ (1 - c).T
        units[0] += c.shape[1]

    for m in model.modules():
        if isinstance(m, (nn.ReLU, nn.SiLU)):
            m.register_forward_pre_hook(hook)
    with torch.no_grad():
        model(x)
    sign, ld = np.linalg.slogdet(K)
    score = ld if sign > 0 else float("-inf")
    print("RESULT naswot=%.10g units=%d" % (score, units[0]))
    if a.expect is not None and not abs(score - a.expect) <= a.tol * max(1.0, abs(a.expect)):
        print("naswot_ref: %.10g differs from gpunas's %.10g" % (score, a.expect), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
