#!/usr/bin/env python3
"""onnx_vs_gpunas.py -- batch-1 inference latency of ONNX Runtime on gpunas's exported
model vs gpunas itself, side by side at the same thread counts (issue 12).

  .venv/bin/python bench/onnx_vs_gpunas.py [CONFIG] [--weights W.safetensors] [--res R]
      [--threads 1,2] [--reps 3] [--duration S] [--gpunas build/gpunas] [--pin] [--json]

CONFIG defaults to configs/gpunet/gpunet-0.json, --res to 224.  Without --weights the
script writes random weights with `gpunas init CONFIG --res R` (random BN statistics)
into a temporary folder.  The model: `gpunas export CONFIG --weights W -o M.onnx
--res R` (batch 1, BN folded).

For each repetition (--reps) and each thread count T, both sides are measured back to
back, the order alternating between repetitions (ORT first on even ones), so a slow
phase of the shared machine hits both:
  ORT     a fresh InferenceSession (CPUExecutionProvider, intra_op_num_threads=T,
          inter_op_num_threads=1, ORT_ENABLE_ALL graph optimisations, sequential
          execution), input and output bound once with IOBinding (so, like gpunas's
          "compute" figure, no input copy or output allocation is timed); warm-up of
          >= 0.5 s and >= 5 runs, then timed runs (time.perf_counter) for >= --duration
          seconds and >= 30 runs; the session is released before gpunas runs (its
          spinning threads must not compete).
  gpunas  `gpunas latency CONFIG --res R --batch 1 --threads T --duration S --json
          --no-reference --force [--no-pin]`: its "compute" median (BN folded, fused
          oneDNN convs).  gpunas latency takes no weights file (it uses seeded random
          weights; the values do not change the work).  Threads are unpinned on both
          sides unless --pin (gpunas's default is pinned; ORT does not pin).
Reported per T: the median over repetitions of each side's per-repetition median, the
per-repetition medians, and the ratio gpunas / ORT (< 1: gpunas faster).

--peak (issue 21): the machine's FP32 FMA ceiling (build/bench/fma_peak, AVX-512 or AVX2,
12 independent chains per thread, pinned) is measured at each T at the start and again at
the end, and each side's achieved rate 2 x MACs / median is printed as % of the higher of
the two peak figures.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit("onnx_vs_gpunas.py: %s: exit %d: %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    return p.stdout


def ort_measure(ort, model, threads, duration_s):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    shp = sess.get_inputs()[0].shape
    oshp = sess.get_outputs()[0].shape
    x = np.random.default_rng(1).standard_normal(shp).astype(np.float32)
    y = np.empty(oshp, dtype=np.float32)
    b = sess.io_binding()
    b.bind_ortvalue_input("input", ort.OrtValue.ortvalue_from_numpy(x))
    b.bind_ortvalue_output("logits", ort.OrtValue.ortvalue_from_numpy(y))
    t0 = time.perf_counter()
    k = 0
    while k < 5 or time.perf_counter() - t0 < 0.5:
        sess.run_with_iobinding(b)
        k += 1
    t = []
    t0 = time.perf_counter()
    while len(t) < 30 or time.perf_counter() - t0 < duration_s:
        s = time.perf_counter()
        sess.run_with_iobinding(b)
        t.append((time.perf_counter() - s) * 1e3)
    del b, sess
    return float(np.median(t)), len(t)


def gpunas_measure(exe, config, res, threads, duration_s, pin):
    cmd = [exe, "latency", config, "--res", str(res), "--batch", "1", "--threads", str(threads), "--duration",
           str(duration_s), "--json", "--no-reference", "--force"]
    if not pin:
        cmd.append("--no-pin")
    j = json.loads(run(cmd))
    gpunas_measure.macs = int(j["macs"])
    return float(j["compute"]["median_ms"]), int(j["compute"]["n"]), bool(j.get("stable", True))


def fma_peak(threads):
    exe = os.path.join(ROOT, "build", "bench", "fma_peak")
    j = json.loads(run([exe, "--threads", ",".join(str(t) for t in threads), "--seconds", "1", "--reps", "3"]))
    return j["isa"], {p["threads"]: p["gflops"] for p in j["peaks"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", nargs="?", default=os.path.join(ROOT, "configs/gpunet/gpunet-0.json"))
    ap.add_argument("--weights", default=None)
    ap.add_argument("--res", type=int, default=224)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds of timed runs per side and measurement")
    ap.add_argument("--gpunas", default=os.path.join(ROOT, "build/gpunas"))
    ap.add_argument("--pin", action="store_true", help="let gpunas pin its threads (its default)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--peak", action="store_true", help="also print %% of the FMA peak (build/bench/fma_peak)")
    a = ap.parse_args()
    import onnxruntime as ort

    threads = [int(t) for t in a.threads.split(",")]
    tmp = tempfile.mkdtemp(prefix="onnx_vs_gpunas-")
    try:
        bench(a, ort, threads, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench(a, ort, threads, tmp):
    w = a.weights
    if not w:
        w = os.path.join(tmp, "init.safetensors")
        run([a.gpunas, "init", a.config, "-o", w, "--res", str(a.res)])
    model = os.path.join(tmp, "model.onnx")
    exported = run([a.gpunas, "export", a.config, "--weights", w, "-o", model, "--res", str(a.res)]).strip()

    peak = None
    if a.peak:
        isa, p0 = fma_peak(threads)
    rows = {t: {"ort": [], "gpunas": [], "ratio": [], "gpunas_stable": []} for t in threads}
    for rep in range(a.reps):
        for t in threads:
            order = ("ort", "gpunas") if rep % 2 == 0 else ("gpunas", "ort")
            got = {}
            for side in order:
                if side == "ort":
                    got["ort"] = ort_measure(ort, model, t, a.duration)[0]
                else:
                    ms, _, stable = gpunas_measure(a.gpunas, a.config, a.res, t, a.duration, a.pin)
                    got["gpunas"] = ms
                    rows[t]["gpunas_stable"].append(stable)
            rows[t]["ort"].append(got["ort"])
            rows[t]["gpunas"].append(got["gpunas"])
            rows[t]["ratio"].append(got["gpunas"] / got["ort"])
            print("rep %d threads %d: ORT %.3f ms, gpunas %.3f ms (%s first)" % (rep + 1, t, got["ort"], got["gpunas"],
                                                                                  order[0]), file=sys.stderr)
    if a.peak:
        _, p1 = fma_peak(threads)
        peak = {t: max(p0[t], p1[t]) for t in threads}
    summary = []
    for t in threads:
        r = rows[t]
        summary.append({"threads": t, "ort_median_ms": float(np.median(r["ort"])),
                        "gpunas_median_ms": float(np.median(r["gpunas"])),
                        "ratio_gpunas_over_ort": float(np.median(r["gpunas"]) / np.median(r["ort"])),
                        "ort_reps_ms": r["ort"], "gpunas_reps_ms": r["gpunas"], "ratio_reps": r["ratio"],
                        "gpunas_stable": r["gpunas_stable"]})
        if peak:
            flops = 2.0 * gpunas_measure.macs
            summary[-1].update({"peak_isa": isa, "peak_gflops": peak[t],
                                "ort_pct_of_peak": 100 * flops / (summary[-1]["ort_median_ms"] / 1e3) / (peak[t] * 1e9),
                                "gpunas_pct_of_peak": 100 * flops / (summary[-1]["gpunas_median_ms"] / 1e3) /
                                                      (peak[t] * 1e9)})
    if a.json:
        print(json.dumps({"config": a.config, "resolution": a.res, "batch": 1, "weights": a.weights or "gpunas init",
                          "onnxruntime": ort.__version__, "reps": a.reps, "duration_s": a.duration,
                          "pinned_gpunas": a.pin, "export": exported, "results": summary}, indent=2))
        return
    print("%s @%dx%d, batch 1; weights %s; ONNX Runtime %s (CPUExecutionProvider, ORT_ENABLE_ALL) vs gpunas (dnnl, "
          "BN folded); %d interleaved reps x %.0f s per side; gpunas threads %s"
          % (os.path.relpath(a.config, ROOT), a.res, a.res, a.weights or "from `gpunas init` (random, random BN stats)",
             ort.__version__, a.reps, a.duration, "pinned" if a.pin else "unpinned"))
    print("exported: %s" % exported)
    print("%-7s %-30s %-30s %s" % ("threads", "ORT median ms [per rep]", "gpunas median ms [per rep]",
                                   "gpunas/ORT [per rep]"))
    for s in summary:
        fmt = lambda v: " ".join("%.2f" % x for x in v)  # noqa: E731
        print("%-7d %-30s %-30s %s" % (s["threads"], "%.2f [%s]" % (s["ort_median_ms"], fmt(s["ort_reps_ms"])),
                                       "%.2f [%s]" % (s["gpunas_median_ms"], fmt(s["gpunas_reps_ms"])),
                                       "%.2f [%s]%s" % (s["ratio_gpunas_over_ort"], fmt(s["ratio_reps"]),
                                                        "" if all(s["gpunas_stable"]) else " (gpunas: unstable)")))
    if peak:
        print("FMA peak (%s, fma_peak before and after, the higher): %s; MACs %d"
              % (summary[0]["peak_isa"], ", ".join("%d thread%s %.1f GFLOP/s" % (t, "" if t == 1 else "s", peak[t])
                                                   for t in threads), gpunas_measure.macs))
        for s in summary:
            print("%-7d ORT %.1f%% of peak, gpunas %.1f%% of peak" % (s["threads"], s["ort_pct_of_peak"],
                                                                      s["gpunas_pct_of_peak"]))


if __name__ == "__main__":
    main()
