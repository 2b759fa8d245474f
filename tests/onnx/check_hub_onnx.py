#!/usr/bin/env python3
"""check_hub_onnx.py -- every hub model's ONNX file against gpunas itself.

For each model in HUB/hub.json (front and dropped):
  1. onnx.checker.check_model(full_check=True) on model.onnx;
  2. a batch of inputs -- the first 64 Fashion-MNIST test images (Debian's idx files,
     scaled to [0, 1], normalised with the record's mean/std like evaluation; resized
     bilinearly with torch when the model's resolution is not 28, which is close to but
     not bit-equal to gpunas's own resize) plus 8 seeded
     N(0, 1) inputs -- through `gpunas predict --input X.npy --output Y.npy` (the
     safetensors weights, gpunas's own folded inference) and through ONNX Runtime
     (CPUExecutionProvider) on model.onnx, one image at a time (the file has batch 1);
  3. max relative difference = max |ort - gpunas| / max |gpunas| over all logits, and
     whether the top-1 classes agree.

Run with the venv of scripts/venv.sh:
    .venv/bin/python tests/onnx/check_hub_onnx.py gpunas-search/hub [--gpunas build/gpunas]
Exit 1 when any model is above 1e-4 or fails the checker.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort


def test_images(n, res, mean, std):
    path = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
    with gzip.open(path, "rb") as f:
        data = f.read()
    x = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(-1, 28, 28)[:n].astype(np.float32) / 255.0
    if res != 28:
        import torch  # Debian's python3-torch, only for the bilinear resize
        t = torch.from_numpy(x[:, None])
        x = torch.nn.functional.interpolate(t, size=(res, res), mode="bilinear", align_corners=False)[:, 0].numpy()
    return ((x - mean) / std)[:, None, :, :].astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hub")
    ap.add_argument("--gpunas", default="build/gpunas")
    a = ap.parse_args()
    with open(os.path.join(a.hub, "hub.json")) as f:
        idx = json.load(f)
    models = idx.get("models", []) + idx.get("dropped", [])
    worst = 0.0
    bad = 0
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}")
    for m in models:
        d = os.path.join(a.hub, m["name"])
        model = onnx.load(os.path.join(d, "model.onnx"))
        onnx.checker.check_model(model, full_check=True)
        task = m["task"]
        res, ch = task["resolution"], task["in_channels"]
        if "mean" in task:
            mean, std = task["mean"][0], task["std"][0]
        else:  # records before the numeric fields: "mean M, std S (channel 0)"
            words = task["normalisation"].replace(",", " ").split()
            mean, std = float(words[1]), float(words[3])
        x = test_images(64, res, mean, std) if ch == 1 else np.zeros((0, ch, res, res), np.float32)
        rng = np.random.default_rng(1)
        x = np.concatenate([x, rng.standard_normal((8, ch, res, res)).astype(np.float32)])
        with tempfile.TemporaryDirectory() as tmp:
            xin, yout = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
            np.save(xin, x)
            subprocess.run([a.gpunas, "predict", os.path.join(d, "config.json"), "--weights",
                            os.path.join(d, "model.safetensors"), "--threads", "1", "--input", xin, "--output", yout],
                           check=True, stdout=subprocess.DEVNULL)
            ours = np.load(yout)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(os.path.join(d, "model.onnx"), so, providers=["CPUExecutionProvider"])
        theirs = np.concatenate([sess.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])
        rel = float(np.max(np.abs(theirs - ours)) / np.max(np.abs(ours)))
        agree = int(np.sum(np.argmax(theirs, 1) == np.argmax(ours, 1)))
        worst = max(worst, rel)
        ok = rel <= 1e-4
        bad += not ok
        print(f"{m['name']:40s} inputs {len(x):3d}  max rel diff {rel:.2e}  top-1 agree {agree}/{len(x)}"
              f"  {'ok' if ok else 'ABOVE 1e-4'}")
    print(f"{len(models)} model(s), worst max relative difference {worst:.2e}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
