#!/usr/bin/python3
"""latency_report.py -- the "Latency: ..." sections of bench/RESULTS.md from the outputs of
bench/latency_run.sh (run by it; can be rerun on an existing output folder).

  /usr/bin/python3 bench/latency_report.py OUT_DIR GPUNET_SPACE_RES

Reads OUT_DIR/machine.txt, gpunet-{0,1,2}.gpunas.{1,2,3}.json, gpunet-*.pytorch.json,
fmnist-small.{1..5}.json and profile-*.json; writes OUT_DIR/latency_results.md and prints it.
"""
import json, os, sys
out, gres = sys.argv[1], sys.argv[2]
m = dict(l.strip().split("=", 1) for l in open(os.path.join(out, "machine.txt")) if "=" in l)
L = []
def w(s=""): L.append(s)
mach = "%s, %s logical CPUs, %s threads, torch %s; load average before %s, after %s; %s" % (
    m["cpu_model"], m["logical_cpus"], m["threads"], m["torch"], m["load_before"], m.get("load_after", "?"), m["date"])
w("## Latency: GPUNet-0, -1, -2 at batch 1, gpunas vs PyTorch eager (CPU)")
w()
w("Machine: " + mach + ". Produced by `bash bench/latency_run.sh`.")
w()
w("Median compute latency of one batch-1 inference (FP32, native resolution, warm-up then timed runs),")
w("printed by `gpunas latency CONFIG --threads T` (oneDNN, BN folded, fused post-ops) and by")
w("`bench/latency_pytorch.py` (PyTorch eager, eval mode, no_grad, same threads, warm-up and runs).")
w()
w("| model | res | MACs | gpunas median ms (run 1 / 2 / 3) | run 1: block medians ms | p10 / p90 ms | robust CV | runs | PyTorch median ms | PyTorch p90 ms | speed-up (run 1) |")
w("|---|---|---|---|---|---|---|---|---|---|---|")
for k in (0, 1, 2):
    gs = [json.load(open(os.path.join(out, "gpunet-%d.gpunas.%d.json" % (k, i)))) for i in (1, 2, 3)]
    p = json.load(open(os.path.join(out, "gpunet-%d.pytorch.json" % k)))[0]["compute"]
    c1 = gs[0]["compute"]
    w("| GPUNet-%d | %d | %.3f G | %s | %.2f .. %.2f | %.2f / %.2f | %.1f%% | %d | %.2f | %.2f | %.2fx |" % (
        k, gs[0]["resolution"], gs[0]["macs"] / 1e9, " / ".join("%.2f" % g["compute"]["median_ms"] for g in gs),
        c1["block_median_lo_ms"], c1["block_median_hi_ms"], c1["p10_ms"], c1["p90_ms"], 100 * c1["robust_cv"],
        c1["n"], p["median_ms"], p["p90_ms"], p["median_ms"] / c1["median_ms"]))
w()
g = json.load(open(os.path.join(out, "gpunet-0.gpunas.1.json")))
mem = g["memory"]
w("Memory at batch 1 (GPUNet-0): folded weights %.1f MiB, activation buffers %.1f MiB, input %.2f MiB;" % (
    mem["weight_bytes"] / 2**20, mem["activation_bytes"] / 2**20, mem["input_bytes"] / 2**20))
w("input copy median %.4f ms and output read median %.4f ms, reported apart from compute." % (
    g["input_copy"]["median_ms"], g["output_read"]["median_ms"]))
w()
w("## Latency: repeated measurement agrees within its spread")
w()
w("Back-to-back runs of the same command (each at least %s s of timed runs). The spread `gpunas latency`" % m.get("duration", "10"))
w("reports for the median is the range of the medians of 10 consecutive blocks of its runs ('blocks').")
w("'agree' counts the ordered pairs of runs (i, j), i != j, where run j's median lies in run i's block range;")
w("'p10-p90' the pairs where it lies in run i's p10 .. p90 band of single inferences. The order-statistics")
w("CI of the median is printed too but assumes independent runs; it is far narrower than the drift seen here.")
w()
w("| network | runs x timed (run 1) | medians ms | block ranges ms | agree (blocks) | agree (p10-p90) | max diff |")
w("|---|---|---|---|---|---|---|")
def agree(name, files):
    rs = [json.load(open(f))["compute"] for f in files]
    meds = [r["median_ms"] for r in rs]
    pairs = [(i, j) for i in range(len(rs)) for j in range(len(rs)) if i != j]
    inb = sum(rs[i]["block_median_lo_ms"] <= meds[j] <= rs[i]["block_median_hi_ms"] for i, j in pairs)
    inp = sum(rs[i]["p10_ms"] <= meds[j] <= rs[i]["p90_ms"] for i, j in pairs)
    d = (max(meds) - min(meds)) / min(meds)
    w("| %s | %d x %d | %s | %s | %d of %d | %d of %d | %.1f%% |" % (
        name, len(rs), rs[0]["n"], " / ".join("%.4f" % x for x in meds),
        "; ".join("%.4f .. %.4f" % (r["block_median_lo_ms"], r["block_median_hi_ms"]) for r in rs),
        inb, len(pairs), inp, len(pairs), 100 * d))
agree("fmnist-small (32x32)", [os.path.join(out, "fmnist-small.%d.json" % i) for i in range(1, 6)])
for k in (0, 1, 2):
    agree("GPUNet-%d" % k, [os.path.join(out, "gpunet-%d.gpunas.%d.json" % (k, i)) for i in (1, 2, 3)])
w()
f = os.path.join(out, "drift-gpunet-0.json")
if os.path.exists(f):
    import statistics
    d = json.load(open(f))
    x, win, t, cur, meds = d["compute_samples_ms"], 10000.0, 0.0, [], []
    for v in x:
        cur.append(v); t += v
        if t >= win:
            meds.append(statistics.median(cur)); cur, t = [], 0.0
    c = d["compute"]
    w("Drift of the machine: GPUNet-0 measured for %.0f s in one command (%d runs, median %.2f ms, block range %.2f .. %.2f);" % (
        sum(x) / 1000, c["n"], c["median_ms"], c["block_median_lo_ms"], c["block_median_hi_ms"]))
    w("medians of consecutive 10 s windows, i.e. what ten back-to-back default measurements would print: " +
      ", ".join("%.2f" % v for v in meds) + " ms (range %.1f%% of the lowest)." % (100 * (max(meds) - min(meds)) / min(meds)))
    w()
w("## Latency: lookup-table predictor on held-out random architectures")
w()
w("`gpunas profile` measures every layer key of sampled architectures in isolation, calibrates")
w("`latency = b + sum_t a_t x (table sum of type t)` on whole-network medians, and predicts held-out")
w("random members of the space from the table alone (missing keys: the per-type fallback model).")
w("Every time is divided by the speed factor of a reference network timed through the profile")
w("(gpunas/latprofile.h, 'Speed probe'); 'raw' is the error against the undivided measurements.")
w()
w("| space | batch | table keys | calibration (model, networks, LOO mean error) | held-out networks | mean abs error | max abs error | raw mean / max | speed factor range | layers from fallback |")
w("|---|---|---|---|---|---|---|---|---|---|")
for name, f in (("fmnist, %s threads" % m["threads"], "profile-fmnist.json"), ("fmnist, 1 thread", "profile-fmnist-1t.json"),
                ("gpunet @%s, %s threads" % (gres, m["threads"]), "profile-gpunet-%s.json" % gres)):
    f = os.path.join(out, f)
    if not os.path.exists(f):
        continue
    p = json.load(open(f))
    c, e = p["calibration"], p["evaluation"]
    fr = "?"
    for line in open(f[:-5] + ".txt"):
        if "speed factor" in line:
            fr = line.split("speed factor")[1].split("(")[0].strip()
    w("| %s | %d | %d | %s, %d, %.2f%% | %d | %.2f%% | %.2f%% | %.2f%% / %.2f%% | %s | %d of %d |" % (
        name, p["batch"], len(p["entries"]), c["model"], c["networks"], c["loo_mean_abs_pct"] or float("nan"),
        e["networks"], e["mean_abs_pct"], e["max_pct"], e["raw_mean_abs_pct"], e["raw_max_pct"], fr,
        e["missing"], e["layers"]))
w()
w("Target: <= 5%% mean absolute error. Per-network predicted vs measured: %s/profile-*.txt." % out)
open(os.path.join(out, "latency_results.md"), "w").write("\n".join(L) + "\n")
print("\n".join(L))
