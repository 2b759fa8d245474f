#!/usr/bin/env python3
"""tier_stability.py — the search's acceptance test (issue 18): do tier members stay in their tier?

Re-measures every trained member (status 'done') of every tier of a finished search with
`gpunas latency` under the search's own conditions — the measuring threads the search
resolved (meta nas.lat_threads), pinning and reference pairing as its settings say, its
lat_runs, lat_min_ms and lat_warmup_ms — and forms the latency the way the search does: with the
reference on, the candidate/reference ratio times the search's reference baseline (meta
nas.lat_reference_ms); without it, the median.  Reports how many land back in their own
tier, and how far the re-measurement is from the stored latency.

    python3 bench/tier_stability.py gpunas-search/search.db [--reps 1] [--duration 0]
        [--out bench/data/tier_stability.jsonl] [--tag TAG]

One JSON line per re-measurement is appended to OUT (resumable: trials already measured
under TAG are skipped).  --duration S > 0 measures for S seconds instead of the search's
own duration.
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tier_of(edges, ms):
    for i, e in enumerate(edges):
        if ms <= e:
            return i
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--gpunas", default=os.path.join(ROOT, "build", "gpunas"))
    ap.add_argument("--duration", type=float, default=0.0)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "data", "tier_stability.jsonl"))
    ap.add_argument("--tag", default="stability")
    a = ap.parse_args()
    db = sqlite3.connect("file:%s?mode=ro" % a.store, uri=True)
    meta = dict(db.execute("SELECT key, value FROM meta"))
    settings = json.loads(meta["nas.settings"])
    edges = [float(x) for x in meta["nas.tiers"].split(",")]
    threads = int(float(meta.get("nas.lat_threads", "0"))) or None
    base = float(meta["nas.lat_reference_ms"]) if "nas.lat_reference_ms" in meta else None
    pin = settings.get("lat_pin", False)
    ref = settings.get("lat_reference", False)
    rows = db.execute("SELECT id, tier, latency_ms, config FROM trials WHERE status = 'done' AND tier IS NOT NULL "
                      "ORDER BY id").fetchall()
    done = set()
    if os.path.exists(a.out):
        for line in open(a.out):
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if r["tag"] == a.tag:
                done.add((r["trial"], r["rep"]))
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    dur = a.duration if a.duration > 0 else settings.get("lat_min_ms", 0) / 1000.0
    flags = ["--duration", str(dur), "--force", "--json"]
    if a.duration <= 0:
        flags += ["--runs", str(settings.get("lat_runs", 30)), "--warmup-ms", str(settings.get("lat_warmup_ms", 50)),
                  "--warmup-runs", "3"]
    if threads:
        flags += ["--threads", str(threads)]
    if not pin:
        flags.append("--no-pin")
    if not ref:
        flags.append("--no-reference")
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.reps):
            for tid, tier, stored_ms, config in rows:
                if (tid, rep) in done:
                    continue
                path = os.path.join(tmp, "t%d.json" % tid)
                with open(path, "w") as f:
                    f.write(config)
                p = subprocess.run([a.gpunas, "latency", path] + flags, capture_output=True, text=True)
                if p.returncode != 0:
                    print("FAILED: trial %d: %s" % (tid, p.stderr.strip()), file=sys.stderr)
                    sys.exit(1)
                r = json.loads(p.stdout)
                raw = r["compute"]["median_ms"]
                rr = r.get("reference")
                ms = rr["ratio"] * base if (rr and base) else raw
                row = {"tag": a.tag, "store": a.store, "trial": tid, "rep": rep, "tier": tier, "edges": edges,
                       "stored_ms": stored_ms, "ms": ms, "raw_ms": raw, "new_tier": tier_of(edges, ms),
                       "raw_tier": tier_of(edges, raw), "threads": threads, "pinned": pin,
                       "reference_ms": rr["median_ms"] if rr else None, "reference_baseline_ms": base,
                       "ratio": rr["ratio"] if rr else None, "flags": flags}
                with open(a.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
    rows = [json.loads(l) for l in open(a.out) if l.strip()]
    rows = [r for r in rows if r["tag"] == a.tag and r["store"] == a.store]
    print("tier  edge ms  members  back in tier  median |re/stored - 1|  (raw median: back, |re/stored - 1|)")
    tot = back = rback = 0
    for i, e in enumerate(edges):
        rs = [r for r in rows if r["tier"] == i]
        if not rs:
            continue
        b = sum(r["new_tier"] == i for r in rs)
        rb = sum(r["raw_tier"] == i for r in rs)
        dev = sorted(abs(r["ms"] / r["stored_ms"] - 1) for r in rs)
        rdev = sorted(abs(r["raw_ms"] / r["stored_ms"] - 1) for r in rs)
        print("%4d  %7.4f  %7d  %12d  %6.1f%%   (%d, %.1f%%)" % (i, e, len(rs), b, 100 * dev[len(dev) // 2], rb,
                                                                100 * rdev[len(rdev) // 2]))
        tot += len(rs)
        back += b
        rback += rb
    if tot:
        print("all   %16d  %12d  (%.1f%%; raw medians: %d, %.1f%%)" % (tot, back, 100.0 * back / tot, rback,
                                                                       100.0 * rback / tot))

if __name__ == "__main__":
    main()
