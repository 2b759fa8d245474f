#!/usr/bin/env python3
"""threads_study.py — does a latency reproduce, and under which OpenMP settings (issues 11, 18).

For each (variant, load, network, threads) it runs `gpunas latency NET --threads T
--duration D --force --json` REPS times back to back, each in a fresh process, and records
the compute median of every run together with what the machine did meanwhile: CPU steal
time and context switches from /proc/stat, and the load average.  A variant is a set of
environment variables (OMP_WAIT_POLICY, GOMP_SPINCOUNT, OMP_PROC_BIND, ...) or extra
gpunas flags; "loaded" runs start one busy process (a shell spin loop, as a user's other
program would be) for the duration of the cell.

Every run is appended as one JSON line to OUT (default bench/data/threads_study.jsonl),
so an interrupted study keeps what it measured; cells already in OUT are skipped when the
study is run again (resumable).  The summary printed per cell: median of medians,
max/min ratio of the REPS medians, the steal share.

    python3 bench/threads_study.py --variants default,passive --nets tiny,small \
        --threads 1,2 --reps 10 --duration 2 [--loaded both] [--out FILE] [--tag TAG]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NETS = {
    "tiny": ("bench/nets/fmnist-tiny.json", None),       # 2.9 MMACs, 61k params
    "small": ("configs/fmnist-small.json", None),        # 6.6 MMACs
    "wide": ("configs/fmnist-wide.json", None),          # 9.4 MMACs
    "g0-96": ("configs/gpunet/gpunet-0.json", 96),       # GPUNet-0 at 96x96
    "g0-224": ("configs/gpunet/gpunet-0.json", 224),     # GPUNet-0 at 224x224
}

# name -> (environment additions, extra gpunas flags)
VARIANTS = {
    "default": ({}, []),
    "passive": ({"OMP_WAIT_POLICY": "passive"}, []),
    "active": ({"OMP_WAIT_POLICY": "active"}, []),
    "spin0": ({"GOMP_SPINCOUNT": "0"}, []),
    "spin10k": ({"GOMP_SPINCOUNT": "10000"}, []),
    "spininf": ({"GOMP_SPINCOUNT": "infinite"}, []),
    "bind": ({"OMP_PROC_BIND": "true", "OMP_PLACES": "cores"}, []),
    "bind-passive": ({"OMP_PROC_BIND": "true", "OMP_PLACES": "cores", "OMP_WAIT_POLICY": "passive"}, []),
    # gpunas's own settings (whatever the build's defaults are), for before/after tables
    "gpunas": ({}, []),
    # the settings before issue 18: no pinning, no reference network
    "unpinned": ({}, ["--no-pin", "--no-reference"]),
    "pinned": ({}, ["--no-reference"]),
}


def proc_stat():
    """(steal jiffies, total jiffies, context switches) from /proc/stat."""
    steal = total = ctxt = 0
    with open("/proc/stat") as f:
        for line in f:
            p = line.split()
            if p[0] == "cpu":
                vals = [int(v) for v in p[1:]]
                total = sum(vals[:8])
                steal = vals[7] if len(vals) > 7 else 0
            elif p[0] == "ctxt":
                ctxt = int(p[1])
    return steal, total, ctxt


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def done_cells(path):
    cells = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill: ignored, the run is redone
                k = (r["tag"], r["variant"], r["loaded"], r["net"], r["threads"])
                cells[k] = cells.get(k, 0) + 1
    return cells


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpunas", default=os.path.join(ROOT, "build", "gpunas"))
    ap.add_argument("--variants", default="default")
    ap.add_argument("--nets", default="tiny,small")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--loaded", choices=["no", "yes", "both"], default="no")
    ap.add_argument("--extra", default="", help="more gpunas latency flags, space separated")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "data", "threads_study.jsonl"))
    ap.add_argument("--tag", default="study")
    a = ap.parse_args()
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    have = done_cells(a.out)
    loads = {"no": [False], "yes": [True], "both": [False, True]}[a.loaded]
    meds = {}
    for loaded in loads:
        hog = None
        if loaded:
            hog = subprocess.Popen(["sh", "-c", "while :; do :; done"])
            time.sleep(0.5)
        # repetitions outermost: every variant, network and thread count gets one run per
        # round, so a slow phase of the machine hits all cells alike
        for rep in range(a.reps):
            for vname in a.variants.split(","):
                env_add, flags = VARIANTS[vname]
                for net in a.nets.split(","):
                    path, res = NETS[net]
                    for t in [int(x) for x in a.threads.split(",")]:
                        key = (a.tag, vname, loaded, net, t)
                        if have.get(key, 0) > rep:
                            continue
                        cmd = [a.gpunas, "latency", os.path.join(ROOT, path), "--threads", str(t),
                               "--duration", str(a.duration), "--force", "--json"] + flags + a.extra.split()
                        if res:
                            cmd += ["--res", str(res)]
                        env = dict(os.environ)
                        env.update(env_add)
                        s0, j0, c0 = proc_stat()
                        t0 = time.time()
                        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
                        t1 = time.time()
                        s1, j1, c1 = proc_stat()
                        if p.returncode != 0:
                            print("FAILED:", " ".join(cmd), p.stderr.strip(), file=sys.stderr)
                            sys.exit(1)
                        r = json.loads(p.stdout)
                        c = r["compute"]
                        row = {
                            "tag": a.tag, "variant": vname, "env": env_add, "flags": flags + a.extra.split(),
                            "loaded": loaded, "net": net, "threads": t, "rep": rep,
                            "median_ms": c["median_ms"], "p10_ms": c["p10_ms"], "p90_ms": c["p90_ms"],
                            "robust_cv": c["robust_cv"], "n": c["n"],
                            "block_lo_ms": c["block_median_lo_ms"], "block_hi_ms": c["block_median_hi_ms"],
                            "steal_share": (s1 - s0) / max(1, j1 - j0), "ctxt_per_s": (c1 - c0) / (t1 - t0),
                            "load1": loadavg(), "wall_s": t1 - t0,
                            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
                        }
                        if isinstance(r.get("threads"), dict):
                            row["threads_info"] = r["threads"]
                        if r.get("reference"):
                            row["reference"] = r["reference"]
                        with open(a.out, "a") as f:
                            f.write(json.dumps(row) + "\n")
                        meds.setdefault(key, []).append(c["median_ms"])
        if hog:
            hog.kill()
            hog.wait()
    for key, m in meds.items():
        ms = sorted(m)
        tag, vname, loaded, net, t = key
        print("%-8s %-13s %-6s %-7s t=%d  median %.4f ms  max/min %.2f  [%s]" % (
            tag, vname, "loaded" if loaded else "idle", net, t, ms[len(ms) // 2],
            ms[-1] / ms[0], " ".join("%.4f" % x for x in m)), flush=True)


if __name__ == "__main__":
    main()
