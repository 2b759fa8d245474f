#!/usr/bin/env python3
"""
bench/space_front.py — issue 20, "where the search or the space falls short": the front of
every member of the fmnist search space that has been fully trained with the hub's recipe,
against the hand-designed baselines, in the hub's latency frame.

A hub is one search run: 10 trained candidates per tier, one winner per tier.  If the
baselines beat the hub, two different things can be short: the search (the space holds
better networks that one run did not find or did not pick) or the space (no member is as
good).  This separates them with what has already been trained:

  - bench/data/ground_truth.jsonl: the ranking study's members (issue 13; Sobol samples and
    tier winners; 12 epochs, seeds 1 and 2; configs in ground_truth_archs.json);
  - bench/data/search_vs_random.jsonl: the tier winners of both search-vs-random studies
    (45 cells, 12 epochs, seed 1); their configs are the studies' final-tN/config.json in
    the studies' work folders (--svr-work, not committed: they are copied into the data
    file below the first time, so the report needs only committed files).

Every distinct network is timed again now with the baselines' protocol (bench/baselines.py
measure(): the hub's, interleaved with the reference network, ratio x the hub's reference
baseline) in the frame of each main-job hub: 2 threads (12-03) and 1 thread (12-04); the
latencies the studies recorded are in their own frames and are not used.

  python3 bench/space_front.py --time [--gpunas BIN] [--svr-work /var/tmp/gpunas-svr,...]
  python3 bench/space_front.py --report [--hub bench/data/mainjob-20261204]

Resumable: each network/frame measured is one line of bench/data/space_front.jsonl.
Accuracies are one seed (ground truth: mean of 2), and a front picked from ~70 noisy
values is optimistic: the seed noise of one training is about 0.19 points (RESULTS,
"Search vs random"), so a front point may sit ~0.2-0.4 points above what a retraining gives.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import baselines as bl  # noqa: E402  (the baselines' timing and data, one place)

DATA = os.path.join(HERE, "data", "space_front.jsonl")
GT = os.path.join(HERE, "data", "ground_truth.jsonl")
GT_ARCHS = os.path.join(HERE, "data", "ground_truth_archs.json")
SVR = os.path.join(HERE, "data", "search_vs_random.jsonl")
HUBS = [os.path.join(HERE, "data", "mainjob-20261203"), os.path.join(HERE, "data", "mainjob-20261204")]


def encoding_of(gpunas, cfg_path):
    r = subprocess.run([gpunas, "info", cfg_path, "--space", "fmnist", "--json"], capture_output=True, text=True,
                       check=True)
    sp = json.loads(r.stdout).get("space") or {}
    return sp.get("encoding") if isinstance(sp, dict) else None


def networks(args):
    """{encoding: {"config": [...], "accs": [test top-1 ...], "sources": [...]}} of every trained member."""
    nets = {}
    archs = {a["encoding"]: a for a in json.load(open(GT_ARCHS))["archs"]}
    for r in bl.read_lines(GT):
        a = archs.get(r["encoding"])
        if not a:
            continue
        n = nets.setdefault(r["encoding"], {"config": a["config"], "accs": [], "sources": []})
        n["accs"].append(r["test_top1"])
        n["sources"].append(f"ground truth {r['name']} seed {r['seed']}")
    # the studies' winners: configs from their work folders, matched by encoding
    cfgs = {}
    for w in [p for p in args.svr_work.split(",") if p]:
        if not os.path.isdir(w):
            continue
        for cell in sorted(os.listdir(w)):
            for t in range(3):
                p = os.path.join(w, cell, f"final-t{t}", "config.json")
                if os.path.exists(p):
                    e = encoding_of(args.gpunas, p)
                    if e:
                        cfgs[e] = json.load(open(p))
    for r in bl.read_lines(SVR):
        if r["encoding"] not in cfgs and r["encoding"] not in nets:
            continue
        n = nets.setdefault(r["encoding"], {"config": cfgs.get(r["encoding"]), "accs": [], "sources": []})
        n["accs"].append(r["test_top1"])
        n["sources"].append(f"{r['optimizer']} s{r['seed']} t{r['tier']}"
                            f"{' (opt-init auto)' if r['study'].get('opt_init') else ''}")
    return nets


def time_all(args):
    nets = networks(args)
    done = {(r["encoding"], r["latency"]["threads"]) for r in bl.read_lines(args.data_file)}
    tmp = os.path.join(args.work, "cfg")
    os.makedirs(tmp, exist_ok=True)
    for hub in HUBS:
        th, base = bl.hub_latency_frame(hub)
        args.lat_threads, args.lat_baseline_ms = th or 1, base
        for i, (enc, n) in enumerate(sorted(nets.items())):
            if (enc, args.lat_threads) in done or not n["config"]:
                continue
            p = os.path.join(tmp, f"net{i}.json")
            with open(p, "w") as f:
                json.dump(n["config"], f)
            lat = bl.measure(args, p)
            bl.append(args.data_file, {"encoding": enc, "config": n["config"], "test_top1": n["accs"],
                                       "sources": n["sources"], "latency": lat, "hub_frame": os.path.basename(hub),
                                       "machine": platform.node(), "gpunas": bl.commit_id(),
                                       "date": datetime.datetime.now(datetime.timezone.utc)
                                       .isoformat(timespec="seconds")})
            print(f"space_front: {enc} {lat['threads']}t {lat['median_ms']:.4f} ms "
                  f"({100 * sum(n['accs']) / len(n['accs']):.2f} %)", flush=True)


def pareto(points):
    """points [(lat, acc, label)] -> the front, sorted by latency (each more accurate than all faster)."""
    front, best = [], -1.0
    for p in sorted(points):
        if p[1] > best:
            front.append(p)
            best = p[1]
    return front


def report(args):
    hub = bl.load_hub(args.hub)
    th, base = bl.hub_latency_frame(args.hub)
    lines = [r for r in bl.read_lines(args.data_file) if r["latency"]["threads"] == th]
    if not lines:
        sys.exit(f"space_front: no measurement at {th} thread(s) in {args.data_file}: run --time first")
    pts = [(r["latency"]["ratio"] * base, sum(r["test_top1"]) / len(r["test_top1"]),
            f"{r['sources'][0]}{' +%d' % (len(r['sources']) - 1) if len(r['sources']) > 1 else ''}")
           for r in lines]
    front = pareto(pts)
    bls = [r for r in bl.read_lines(bl.RUNS) if r.get("kind", "train") == "train"]
    blat = [r for r in bl.read_lines(bl.RUNS) if r.get("kind") == "latency" and r["latency"]["threads"] == th]
    print(f"## The space's front: {len(pts)} trained members against the baselines ({os.path.basename(args.hub)}, "
          f"{th} thread(s))\n")
    print("Front (latency ms, test top-1 %, where it was trained): " +
          "; ".join(f"{l:.3f} ms {100 * a:.2f} % ({s})" for l, a, s in front) + ".\n")
    print("Hub: " + "; ".join(f"{m['name']} {100 * m['acc']:.2f} % at {m['lat']:.3f} ms" for m in hub) + ".\n")
    print("| baseline | test top-1 % (mean) | latency ms | fastest trained member at ≥ its accuracy | "
          "latency ratio | members that beat it |")
    print("|---|---|---|---|---|---|")
    n_beat = n_fast = 0
    names = []
    for name, _ in bl.zoo():
        rs = [r["test_top1"] for r in bls if r["name"] == name]
        ls = [r["latency"]["ratio"] * base for r in blat if r["name"] == name]
        if not rs or not ls:
            continue
        names.append(name)
        acc, lat = sum(rs) / len(rs), sum(ls) / len(ls)
        pick = min((p for p in pts if p[1] >= acc), default=None)
        beat = [p for p in pts if p[1] > acc and p[0] <= lat]
        n_beat += bool(beat)
        n_fast += bool(pick and lat / pick[0] >= 1.5)
        print(f"| {name} | {100 * acc:.2f} | {lat:.3f} | " +
              (f"{100 * pick[1]:.2f} % at {pick[0]:.3f} ms ({pick[2]}) | {lat / pick[0]:.2f}x" if pick
               else "none | -") + f" | {len(beat)} |")
    print(f"\n**The space** (its best trained members, one search run each or Sobol samples): beats {n_beat} of "
          f"{len(names)} baselines and is ≥ 1.5x faster at their accuracy for {n_fast} of {len(names)}.")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpunas", default=os.path.join(ROOT, "build", "gpunas"))
    ap.add_argument("--svr-work", default="/var/tmp/gpunas-svr,/var/tmp/gpunas-svr2",
                    help="the search-vs-random studies' work folders (for the winners' configs)")
    ap.add_argument("--work", default="/var/tmp/gpunas-space-front")
    ap.add_argument("--data-file", default=DATA)
    ap.add_argument("--lat-duration", type=float, default=3.0)
    ap.add_argument("--time", action="store_true")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--hub", default=HUBS[1])
    args = ap.parse_args()
    if args.time:
        time_all(args)
    if args.report:
        report(args)
    if not (args.time or args.report):
        ap.error("give --time or --report")


if __name__ == "__main__":
    main()
