#!/usr/bin/env python3
"""onednn_trace.py — where a gpunas training step or inference spends its time, by oneDNN
primitive (issue 21's profile of "the rest").

    ONEDNN_VERBOSE=1 build/bench/nn_bench CONFIG ... | python3 bench/onednn_trace.py \
        --steps N [--peak GFLOPS] [--wall-ms MS]

oneDNN 2.x prints one "onednn_verbose,exec,cpu,KIND,IMPL,PROP,MEMORY,ATTR,ALG,DESC,MS" line
per primitive execution. This script groups them by kind, implementation and propagation
kind, splits convolutions into depthwise (g == ic == oc), 1x1 and spatial ones, and prints
per step (the lines' total over --steps): calls, ms, share of the primitives' time, and for
convolutions their throughput from the problem descriptor (2 x MB x OC x OH x OW x IC/G x KH x
KW FLOPs; backward data and weights count the same FLOPs as the forward) and, with --peak,
as % of the machine's FMA peak. With --wall-ms (the step's or the inference's wall time),
the difference between it and the primitives' own time is printed as the dispatch and
glue outside oneDNN's kernels.

nn_bench prints its "engine=... train_step_ms" line between its training and its inference
phase; --phase train takes the exec lines before the first "engine=" line, --phase infer
the ones after it (default: all lines).  The verbose mode itself slows every call, so use
the ms of each group as shares of the kernels' time, not as the step's wall time.
"""
import argparse
import re
import sys
from collections import defaultdict

# "g256mb64_ic256oc256_ih4oh4kh5sh1dh0ph2_iw4ow4kw5sw1dw0pw2" or "mb64_ic1oc24_ih32...": each
# field is read on its own, so their order does not matter
FIELD = {k: re.compile(r"(?:^|_|\d)%s(\d+)" % k) for k in ("g", "mb", "ic", "oc", "oh", "kh", "ow", "kw")}


def conv_flops(desc):
    v = {}
    for k, rx in FIELD.items():
        m = rx.search(desc)
        v[k] = int(m.group(1)) if m else None
    if None in (v["ic"], v["oc"], v["oh"], v["kh"], v["ow"], v["kw"]):
        return None, None
    mb, g = v["mb"] or 1, v["g"] or 1
    ic, oc, oh, kh, ow, kw = v["ic"], v["oc"], v["oh"], v["kh"], v["ow"], v["kw"]
    if g > 1 and g == ic == oc:
        shape = "depthwise %dx%d" % (kh, kw)
    elif kh == 1 and kw == 1:
        shape = "1x1"
    else:
        shape = "spatial %dx%d" % (kh, kw)
    return 2.0 * mb * oc * oh * ow * (ic // g) * kh * kw, shape


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, required=True, help="steps (or inferences) in the trace")
    ap.add_argument("--peak", type=float, help="the FMA peak in GFLOP/s (fma_peak), for %% of peak")
    ap.add_argument("--wall-ms", type=float, help="wall ms per step, for the time outside the kernels")
    ap.add_argument("--phase", choices=["all", "train", "infer"], default="all")
    a = ap.parse_args()
    groups = defaultdict(lambda: [0, 0.0, 0.0])  # calls, ms, flops
    seen_engine = False
    for line in sys.stdin:
        if line.startswith("engine="):
            seen_engine = True
            continue
        if not line.startswith("onednn_verbose,exec,"):
            continue
        if (a.phase == "train" and seen_engine) or (a.phase == "infer" and not seen_engine):
            continue
        f = line.rstrip("\n").split(",")
        kind, impl, prop, desc, ms = f[3], f[4], f[5], f[-2], float(f[-1])
        flops = None
        key = (kind, impl, prop)
        if kind == "convolution":
            flops, shape = conv_flops(desc)
            key = (kind + " " + (shape or "?"), impl, prop)
        g = groups[key]
        g[0] += 1
        g[1] += ms
        g[2] += flops or 0.0
    total = sum(g[1] for g in groups.values())
    if not total:
        sys.exit("onednn_trace: no exec lines (ONEDNN_VERBOSE=1 set? oneDNN 2.x format?)")
    n = a.steps
    print("| primitive | implementation | pass | calls/step | ms/step | share | GFLOP/s | % of peak |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for key, (c, ms, fl) in sorted(groups.items(), key=lambda kv: -kv[1][1]):
        gf = fl / (ms * 1e-3) * 1e-9 if fl else None
        print("| %s | %s | %s | %.1f | %.3f | %.1f %% | %s | %s |" % (
            key[0], key[1], key[2], c / n, ms / n, 100 * ms / total,
            "%.1f" % gf if gf else "", "%.1f %%" % (100 * gf / a.peak) if gf and a.peak else ""))
    conv_ms = sum(g[1] for k, g in groups.items() if k[0].startswith("convolution"))
    conv_fl = sum(g[2] for k, g in groups.items() if k[0].startswith("convolution"))
    print("primitives: %.3f ms/step (convolutions %.3f ms, %.1f GFLOP/s%s)" % (
        total / n, conv_ms / n, conv_fl / (conv_ms * 1e-3) * 1e-9 if conv_ms else 0,
        ", %.1f %% of peak" % (100 * conv_fl / (conv_ms * 1e-3) * 1e-9 / a.peak) if a.peak and conv_ms else ""))
    if a.wall_ms:
        print("wall %.3f ms/step: %.3f ms (%.1f %%) outside oneDNN's primitives" % (
            a.wall_ms, a.wall_ms - total / n, 100 * (a.wall_ms - total / n) / a.wall_ms))


if __name__ == "__main__":
    main()
