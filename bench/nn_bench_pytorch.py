#!/usr/bin/python3
"""nn_bench_pytorch.py -- PyTorch eager counterpart of bench/nn_bench.c (issue 3 benchmark).

  /usr/bin/python3 bench/nn_bench_pytorch.py CONFIG [--res R] [--in-ch C] [--classes K]
      [--batch B] [--threads T] [--iters N]

Builds the same network with tests/pytorch/gpunet_ref.py (the reference the engine is
cross-checked against), no dropout / drop-path, and measures exactly what nn_bench does:
  train  forward + cross-entropy + backward at batch B (train mode, grads set to None
         between steps, no optimizer update): images/s from the median step time;
  infer  batch-1 eval-mode forward under torch.no_grad(): median, p10, p90 latency.
torch.set_num_threads(T) (and set_num_interop_threads(1)).
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "pytorch"))
import gpunet_ref  # noqa: E402


def pct(v, p):
    v = sorted(v)
    return v[int(p * (len(v) - 1) + 0.5)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--res", type=int)
    ap.add_argument("--in-ch", type=int)
    ap.add_argument("--classes", type=int)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(1)
    cfg = gpunet_ref.load_config(a.config)
    model = gpunet_ref.GPUNetRef(cfg, classes=a.classes, in_ch=a.in_ch, dropout=0.0, drop_path_base=0.0)
    res = a.res or model.resolution
    in_ch = a.in_ch or cfg[1]["num_in_channels"]
    classes = a.classes or cfg[-1]["num_classes"]
    x = torch.randn(a.batch, in_ch, res, res)
    y = torch.randint(0, classes, (a.batch,))
    loss_fn = torch.nn.CrossEntropyLoss()

    model.train()
    def step():
        for p in model.parameters():
            p.grad = None
        loss = loss_fn(model(x), y)
        loss.backward()
    for _ in range(3):
        step()
    t = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        step()
        t.append(time.perf_counter() - t0)
    med = pct(t, 0.5)
    print("engine=pytorch-%s config=%s res=%d batch=%d threads=%d train_step_ms=%.2f train_img_s=%.1f "
          "(p10 %.2f ms, p90 %.2f ms)" % (torch.__version__, a.config, res, a.batch, a.threads, med * 1e3,
                                          a.batch / med, pct(t, 0.1) * 1e3, pct(t, 0.9) * 1e3))

    model.eval()
    x1 = x[:1].contiguous()
    runs = max(a.iters * 5, 50)
    with torch.no_grad():
        for _ in range(10):
            model(x1)
        t = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x1)
            t.append(time.perf_counter() - t0)
    print("engine=pytorch-%s config=%s res=%d batch=1 threads=%d infer_ms_median=%.3f p10=%.3f p90=%.3f runs=%d"
          % (torch.__version__, a.config, res, a.threads, pct(t, 0.5) * 1e3, pct(t, 0.1) * 1e3,
             pct(t, 0.9) * 1e3, runs))


if __name__ == "__main__":
    main()
