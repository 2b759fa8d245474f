#!/usr/bin/env python3
"""bench/ground_truth.py — the ground truth of issue 13: architectures of the fmnist
space trained with the hub's full recipe, our own small tabular NAS benchmark.

Steps (each resumable; run the script again to continue):
  1. sample   `gpunas search --trials 0` measures --samples scrambled-Sobol members of
              the space (batch-1 latency, this machine, the search's protocol); 24 of them
              evenly spread over the latency range are chosen, plus the tier winners of a
              main-job run (--winners DIR, e.g. gpunas-search).  The choice is written once
              to bench/data/ground_truth_archs.json (committed): name, source, encoding,
              config, latency, params, MACs.
  2. train    every chosen architecture with the hub's recipe (`gpunas hub build`: 12
              epochs, batch 64, lr 0.1 cosine with 1 warm-up epoch, label smoothing 0.1,
              pad-2 crops and flips, no erasing, no drop-path, 10% validation split with
              seed 42), seed 1; then seeds 2 and 3 for every 4th of them (the seed noise).
              Each finished run appends one JSON line to bench/data/ground_truth.jsonl
              (committed): per-epoch validation accuracy and loss, the final test top-1/5,
              seconds, threads, machine, date, gpunas commit.  A run killed half-way
              continues from its checkpoint (`gpunas train --resume`) in --work.
              Each training is claimed with a lock file (WORK/locks, flock), so any
              number of instances, started at any time, share the list without overlap.

  python3 bench/ground_truth.py [--gpunas build/gpunas] [--work /var/tmp/gpunas-gt]
         [--winners gpunas-search] [--max-runs N] [--threads N] [--lane K/N]
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

from claim import claim

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ARCHS = os.path.join(HERE, "data", "ground_truth_archs.json")
RUNS = os.path.join(HERE, "data", "ground_truth.jsonl")
RECIPE = ["--epochs", "12", "--batch", "64", "--lr", "0.1", "--crop-pad", "2", "--erase", "0", "--no-drop-path",
          "--val-fraction", "0.1", "--split-seed", "42"]
N_SPREAD = 24
EXTRA_SEEDS = (2, 3)


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def sample(args):
    store_dir = os.path.join(args.work, "sample")
    db = os.path.join(store_dir, "search.db")
    cmd = [args.gpunas, "search", "--space", "fmnist", "--out", store_dir, "--trials", "0", "--prune-samples",
           str(args.samples), "--seed", "101", "--lat-threads", "1", "--tiers", "auto:3", "--quiet"]
    if os.path.exists(db):
        cmd.append("--resume")
    run(cmd, stdout=subprocess.DEVNULL)
    rows = json.loads(subprocess.run([args.gpunas, "trials", db, "--json"], check=True, capture_output=True,
                                     text=True).stdout)
    rows = sorted((r for r in rows if r["status"] == "pruned" and r["latency_ms"]), key=lambda r: r["latency_ms"])
    if len(rows) < N_SPREAD:
        sys.exit(f"ground_truth: only {len(rows)} measured samples")
    picks = [rows[round(i * (len(rows) - 1) / (N_SPREAD - 1))] for i in range(N_SPREAD)]
    archs, seen = [], set()
    for i, r in enumerate(picks):
        if r["encoding"] in seen:
            continue
        seen.add(r["encoding"])
        archs.append({"name": f"s{i:02d}", "source": "sobol", "encoding": r["encoding"], "config": r["config"],
                      "latency_ms": r["latency_ms"], "latency_info": r["latency_info"], "params": r["params"],
                      "macs": r["macs"]})
    if args.winners:
        summ = os.path.join(args.winners, "summary.json")
        db2 = os.path.join(args.winners, "search.db")
        if os.path.exists(summ) and os.path.exists(db2):
            wrows = json.loads(subprocess.run([args.gpunas, "trials", db2, "--json", "--status", "done"], check=True,
                                              capture_output=True, text=True).stdout)
            best = {}
            for r in wrows:
                if r["tier"] is None or (r["error"] or "").startswith("same network"):
                    continue
                if r["tier"] not in best or r["val_acc"] > best[r["tier"]]["val_acc"]:
                    best[r["tier"]] = r
            for t, r in sorted(best.items()):
                archs.append({"name": f"w{t}", "source": f"main-job tier {t} winner ({args.winners})",
                              "encoding": r["encoding"], "config": r["config"], "latency_ms": r["latency_ms"],
                              "latency_info": r["latency_info"], "params": r["params"], "macs": r["macs"],
                              "proxy_val_acc": r["val_acc"]})
    meta = {"space": "fmnist", "samples": args.samples, "sample_seed": 101, "recipe": RECIPE,
            "latency": "batch-1, 1 thread pinned, ratio to the reference network x its baseline "
                       "(gpunas search protocol), this machine",
            "machine": platform.node(), "date": datetime.date.today().isoformat(), "archs": archs}
    os.makedirs(os.path.dirname(ARCHS), exist_ok=True)
    tmp = ARCHS + ".tmp"
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    os.replace(tmp, ARCHS)
    print(f"ground_truth: {len(archs)} architectures -> {ARCHS}")


def done_runs():
    out = set()
    if os.path.exists(RUNS):
        for line in open(RUNS):
            line = line.strip()
            if line:
                r = json.loads(line)
                out.add((r["name"], r["seed"]))
    return out


def commit_id():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except Exception:
        return None


def train(args, arch, seed):
    d = os.path.join(args.work, f"{arch['name']}-seed{seed}")
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "arch.json")
    with open(cfg, "w") as f:
        json.dump(arch["config"], f)
    cmd = [args.gpunas, "train", cfg, "--out", os.path.join(d, "run"), "--seed", str(seed)] + RECIPE
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if os.path.exists(os.path.join(d, "run", "checkpoint.safetensors")):
        cmd.append("--resume")
    run(cmd, stdout=subprocess.DEVNULL)
    epochs = [json.loads(l) for l in open(os.path.join(d, "run", "metrics.jsonl")) if l.strip()]
    last = epochs[-1]
    rec = {"name": arch["name"], "seed": seed, "encoding": arch["encoding"], "latency_ms": arch["latency_ms"],
           "params": arch["params"], "macs": arch["macs"],
           "epochs": [{k: e.get(k) for k in ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_top1",
                                             "val_top5", "time_s", "threads_min", "threads_max")} for e in epochs],
           "val_top1": last.get("val_top1"), "test_top1": last.get("test_top1"), "test_top5": last.get("test_top5"),
           "seconds": sum(e.get("time_s") or 0 for e in epochs), "machine": platform.node(),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "gpunas": commit_id(), "recipe": RECIPE}
    with open(RUNS, "a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())
    print(f"ground_truth: {arch['name']} seed {seed}: test {100 * rec['test_top1']:.2f}% "
          f"in {rec['seconds']:.0f} s", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpunas", default=os.path.join(ROOT, "build", "gpunas"))
    ap.add_argument("--work", default="/var/tmp/gpunas-gt")
    ap.add_argument("--winners", default=os.path.join(ROOT, "gpunas-search"))
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--max-runs", type=int, default=0, help="stop after this many trainings (0: all)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--lane", default="0/1", help="K/N: run only the K-th of every N runs still to do, so "
                    "N processes (e.g. one thread each) share the list without overlap")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    if not os.path.exists(ARCHS):
        sample(args)
    archs = json.load(open(ARCHS))["archs"]
    spread = [a for a in archs if a["source"] == "sobol"]
    winners = [a for a in archs if a["source"] != "sobol"]
    # seed 1 in an order that covers the latency range early (ends, middle, quarters,
    # ...), the main job's winners after the first five: a study stopped half-way still
    # ranks networks across the whole range
    order, step = [0, len(spread) - 1], len(spread) - 1
    while step > 1:
        step = (step + 1) // 2
        order += [i for i in range(step // 2, len(spread), step) if i not in order]
    order += [i for i in range(len(spread)) if i not in order]
    first = [spread[i] for i in order]
    todo = [(a, 1) for a in first[:5] + winners + first[5:]]
    todo += [(a, s) for s in EXTRA_SEEDS for a in spread[::4]]
    done = done_runs()
    lane, lanes = (int(x) for x in args.lane.split("/"))
    mine = [t for t in todo if (t[0]["name"], t[1]) not in done][lane::lanes]
    n = 0
    for a, s in mine:
        if args.max_runs and n >= args.max_runs:
            break
        with claim(args.work, f"{a['name']}-seed{s}") as ok:
            # another instance holds it, or finished it since this one read the list
            if not ok or (a["name"], s) in done_runs():
                continue
            train(args, a, s)
        n += 1
    left = sum(1 for a, s in todo if (a["name"], s) not in done_runs())
    print(f"ground_truth: {len(todo) - left} of {len(todo)} runs in {RUNS}; {left} left")


if __name__ == "__main__":
    main()
