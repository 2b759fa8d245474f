#!/usr/bin/env python3
"""onednn_verbose_split.py — per-primitive times of slow and fast runs (issue 18).

Reads `gpunas latency ... --json` outputs that ran with ONEDNN_VERBOSE=1 (the verbose lines
and the JSON in one file, as `> FILE 2>&1` writes them), takes per process the median
execution time of every primitive (kind + implementation + shape), and compares the slowest
with the fastest process: if every primitive slows by the same factor the cause is the
machine (a common slow-down); if some slow far more than others, the threads (barriers,
placement) of those primitives.

    python3 bench/onednn_verbose_split.py FILE...
"""
import collections
import json
import statistics
import sys


def load(path):
    prims = collections.defaultdict(list)
    text = open(path).read()
    for line in text.splitlines():
        if not line.startswith("onednn_verbose,exec,cpu,"):
            continue
        f = line.split(",")
        key = "%s %s %s" % (f[3], f[4], f[-2])
        prims[key].append(float(f[-1]))
    j = json.loads(text[text.index("{"):])
    return j["compute"]["median_ms"], {k: statistics.median(v) for k, v in prims.items() if len(v) >= 20}


def main():
    runs = [(p,) + load(p) for p in sys.argv[1:]]
    runs.sort(key=lambda r: r[1])
    fast, slow = runs[0], runs[-1]
    print("processes: %d; network medians %s ms" % (len(runs), " ".join("%.4f" % r[1] for r in runs)))
    print("fastest %s (%.4f ms), slowest %s (%.4f ms): ratio %.2f" % (fast[0], fast[1], slow[0], slow[1],
                                                                   slow[1] / fast[1]))
    keys = [k for k in fast[2] if k in slow[2] and fast[2][k] > 0]
    ratios = []
    for k in sorted(keys, key=lambda k: -fast[2][k]):
        r = slow[2][k] / fast[2][k]
        ratios.append(r)
        print("  %6.2f  %8.4f -> %8.4f ms  %s" % (r, fast[2][k], slow[2][k], k[:110]))
    print("per-primitive slow/fast ratio: median %.2f, min %.2f, max %.2f over %d primitives; sum of medians "
          "%.4f -> %.4f ms" % (statistics.median(ratios), min(ratios), max(ratios), len(ratios),
                              sum(fast[2][k] for k in keys), sum(slow[2][k] for k in keys)))


if __name__ == "__main__":
    main()
