#!/usr/bin/python3
"""latency_report.py -- the "Latency: ..." sections of bench/RESULTS.md from the outputs of
bench/latency_run.sh (run by it; can be rerun on an existing output folder).

  /usr/bin/python3 bench/latency_report.py OUT_DIR GPUNET_SPACE_RES

Reads OUT_DIR/machine.txt, gpunet-{0,1,2}.gpunas.{1,2}.json, gpunet-*.pytorch.json,
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
w("| model | res | MACs | gpunas median ms (run 1 / run 2) | gpunas p90 / p99 ms | CV | PyTorch median ms | PyTorch p90 ms | speed-up |")
w("|---|---|---|---|---|---|---|---|---|")
for k in (0, 1, 2):
    g1 = json.load(open(os.path.join(out, "gpunet-%d.gpunas.1.json" % k)))
    g2 = json.load(open(os.path.join(out, "gpunet-%d.gpunas.2.json" % k)))
    p = json.load(open(os.path.join(out, "gpunet-%d.pytorch.json" % k)))[0]["compute"]
    c1, c2 = g1["compute"], g2["compute"]
    w("| GPUNet-%d | %d | %.3f G | %.2f / %.2f | %.2f / %.2f | %.1f%% | %.2f | %.2f | %.2fx |" % (
        k, g1["resolution"], g1["macs"] / 1e9, c1["median_ms"], c2["median_ms"], c1["p90_ms"], c1["p99_ms"],
        100 * c1["cv"], p["median_ms"], p["p90_ms"], p["median_ms"] / c1["median_ms"]))
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
w("Back-to-back runs of the same command. 'CI' is the distribution-free 95% confidence interval of")
w("the median that `gpunas latency` prints; 'within' says whether the other runs' medians fall in the")
w("first run's interval and within one standard deviation of it.")
w()
w("| network | runs x timed | medians ms | first run CI ms | stddev ms | max diff ms | within CI | within 1 sd |")
w("|---|---|---|---|---|---|---|---|")
def agree(name, files):
    rs = [json.load(open(f))["compute"] for f in files]
    meds = [r["median_ms"] for r in rs]
    d = max(abs(x - meds[0]) for x in meds[1:])
    inci = all(rs[0]["median_ci95_lo_ms"] <= x <= rs[0]["median_ci95_hi_ms"] for x in meds[1:])
    w("| %s | %d x %d | %s | %.4f .. %.4f | %.4f | %.4f | %s | %s |" % (
        name, len(rs), rs[0]["n"], " / ".join("%.4f" % x for x in meds), rs[0]["median_ci95_lo_ms"],
        rs[0]["median_ci95_hi_ms"], rs[0]["stddev_ms"], d, "yes" if inci else "no",
        "yes" if d <= rs[0]["stddev_ms"] else "no"))
agree("fmnist-small (32x32)", [os.path.join(out, "fmnist-small.%d.json" % i) for i in range(1, 6)])
for k in (0, 1, 2):
    agree("GPUNet-%d" % k, [os.path.join(out, "gpunet-%d.gpunas.%d.json" % (k, i)) for i in (1, 2)])
w()
w("## Latency: lookup-table predictor on held-out random architectures")
w()
w("`gpunas profile` measures every layer key of sampled architectures in isolation, calibrates")
w("`latency = b + sum_t a_t x (table sum of type t)` on whole-network medians, and predicts held-out")
w("random members of the space from the table alone (missing keys: the per-type fallback model).")
w()
w("| space | batch | table keys | calibration (model, networks, LOO mean error) | held-out networks | mean abs error | max abs error | layers from fallback |")
w("|---|---|---|---|---|---|---|---|")
for name, f in (("fmnist", "profile-fmnist.json"), ("gpunet @%s" % gres, "profile-gpunet-%s.json" % gres)):
    f = os.path.join(out, f)
    if not os.path.exists(f):
        continue
    p = json.load(open(f))
    c, e = p["calibration"], p["evaluation"]
    w("| %s | %d | %d | %s, %d, %.2f%% | %d | %.2f%% | %.2f%% | %d of %d |" % (
        name, p["batch"], len(p["entries"]), c["model"], c["networks"], c["loo_mean_abs_pct"] or float("nan"),
        e["networks"], e["mean_abs_pct"], e["max_pct"], e["missing"], e["layers"]))
w()
w("Target: <= 5%% mean absolute error. Per-network predicted vs measured: %s/profile-*.txt." % out)
open(os.path.join(out, "latency_results.md"), "w").write("\n".join(L) + "\n")
print("\n".join(L))
