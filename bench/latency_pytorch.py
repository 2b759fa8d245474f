#!/usr/bin/python3
"""latency_pytorch.py -- PyTorch eager inference latency of GPUNet configs, measured the way
`gpunas latency` measures (issue 5 benchmark).

  /usr/bin/python3 bench/latency_pytorch.py CONFIG [CONFIG...] [--threads N] [--runs N]
      [--warmup-ms M] [--warmup-runs N] [--batch B] [--res R] [--json]

Builds each network with tests/pytorch/gpunet_ref.py (the reference the C engine is
cross-checked against), eval mode, under torch.no_grad(), torch.set_num_threads(N)
(and one inter-op thread).  Same protocol as `gpunas latency`: warm-up until both
--warmup-ms and --warmup-runs are reached, then --runs timed forward passes
(time.perf_counter, i.e. CLOCK_MONOTONIC), the input tensor made once before timing
(so, like gpunas's "compute" figure, no input copy is inside the timed region).
Statistics as in src/latency/lat_stats.c: median, mean, p90, p99 (linear interpolation,
numpy's default), min, max, CV (sample stddev / mean), first/second-half medians.
Weights: PyTorch's default initialisation under torch.manual_seed(1) (values do not
change the work done).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "pytorch"))
import gpunet_ref  # noqa: E402


def stats(v):
    a = np.asarray(v, dtype=np.float64)
    h = len(a) // 2
    return {
        "n": int(len(a)),
        "median_ms": float(np.median(a)),
        "mean_ms": float(a.mean()),
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
        "cv": float(a.std(ddof=1) / a.mean()) if len(a) > 1 else 0.0,
        "median_first_half_ms": float(np.median(a[:h])) if h else float(a[0]),
        "median_second_half_ms": float(np.median(a[h:])),
    }


def measure(path, a):
    torch.manual_seed(1)
    cfg = gpunet_ref.load_config(path)
    model = gpunet_ref.GPUNetRef(cfg, dropout=0.0, drop_path_base=0.0)
    model.eval()
    res = a.res or model.resolution
    x = torch.randn(a.batch, cfg[1]["num_in_channels"], res, res)
    with torch.no_grad():
        t0 = time.perf_counter()
        k = 0
        while k < a.warmup_runs or (time.perf_counter() - t0) * 1e3 < a.warmup_ms:
            model(x)
            k += 1
        warm = (k, (time.perf_counter() - t0) * 1e3)
        t = []
        for _ in range(a.runs):
            s = time.perf_counter()
            model(x)
            t.append((time.perf_counter() - s) * 1e3)
    out = {"config": path, "batch": a.batch, "resolution": res, "threads": a.threads,
           "torch": torch.__version__, "warmup_runs": warm[0], "warmup_ms": warm[1],
           "compute": stats(t)}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("configs", nargs="+")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup-ms", type=float, default=500.0)
    ap.add_argument("--warmup-runs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--res", type=int)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    results = [measure(p, a) for p in a.configs]
    if a.json:
        print(json.dumps(results, indent=1))
        return 0
    for r in results:
        c = r["compute"]
        print("%s: batch %d, %dx%d, torch %s, %d threads: median %.4f ms  mean %.4f  p90 %.4f  p99 %.4f  "
              "min %.4f  max %.4f  CV %.1f%%  (%d runs after %d warm-up runs)" % (
                  r["config"], r["batch"], r["resolution"], r["resolution"], r["torch"], r["threads"],
                  c["median_ms"], c["mean_ms"], c["p90_ms"], c["p99_ms"], c["min_ms"], c["max_ms"],
                  100 * c["cv"], c["n"], r["warmup_runs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
