#!/usr/bin/env python3
"""bench/baseline_proxy.py — issue 20's diagnosis: would the search's own score have chosen
the hand-designed networks?

When a hand-designed network beats the hub, either the search never proposed anything
like it (the space, or too few proposals), or it did and its proxy ranked it low (the
ranking).  This script scores every baseline (configs/fmnist-*.json and
configs/baselines/*.json, the zoo of bench/baselines.py) exactly as `gpunas search` scores
a candidate with its default ladder and score:

  level 0   1 epoch on a 5,000-image seeded subset, level 1  1 epoch on 15,000 images
            (`gpunas train` with the search's proxy recipe: SGD lr 0.05 cosine, a tenth of
            an epoch of warm-up, no smoothing, dropout or drop-path, the fixed 5 %
            validation split of split seed 42, seed 1: bench/proxy_fidelity.py's
            proxy_score, the same command the proxy study used)
  NASWOT    `gpunas zerocost --repeats 3`
  score     val acc + W points per sd of NASWOT, with W and the NASWOT mean and sd of each
            search store given (its meta nas.naswot_norm, nas.settings' naswot_weight)

and places each baseline's level-1 score among the level-1 candidates of every tier of
each store (the searches of bench/search_vs_random.py and the main jobs): rank k of n,
and the score of the tier's winner (the best level-1 score, as the summary picks it).
The ranks are printed for every tier: which one is the baseline's own depends on its
latency (bench/baselines.py's latency lines once timed, configs/baselines/README.md's
under-load column until then), which this script does not measure.

Resumable: each proxy result is one JSON line in bench/data/baseline_proxy.jsonl
(committed), and a stopped training continues from its checkpoint.

  python3 bench/baseline_proxy.py [--gpunas BIN] [--work /var/tmp/gpunas-blproxy] [--threads 1]
  python3 bench/baseline_proxy.py --report --stores A/search.db,B/search.db,...
"""
import argparse
import json
import os
import sqlite3
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "data", "baseline_proxy.jsonl")
sys.path.insert(0, HERE)
import proxy_fidelity as pf  # noqa: E402
from baselines import zoo  # noqa: E402

LEVELS = ((1, 5000), (1, 15000))  # the default ladder sh:1x5000,1x15000/3


def load(path):
    if not os.path.exists(path):
        return {}
    return {r["key"]: r for r in (json.loads(l) for l in open(path) if l.strip())}


def run_all(args):
    pf.PROXY_RUNS = args.data_file  # proxy_score appends its lines here, not to the proxy study's file
    cache = load(args.data_file)
    for name, cfg in zoo():
        config = json.load(open(os.path.join(ROOT, cfg)))
        for e, n in LEVELS:
            r = pf.proxy_score(args, name, config, e, n, cache)
            print(f"baseline_proxy: {name} {e}x{n}: val {100 * r['val_top1']:.2f}% ({r['seconds']:.1f} s)", flush=True)
        key = f"naswot/{name}"
        if key not in cache:
            cmd = [args.gpunas, "zerocost", os.path.join(ROOT, cfg), "--json", "--repeats", "3"]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            j = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            rec = {"key": key, "name": name, "naswot": j["naswot"], "seconds": j["seconds"]}
            with open(args.data_file, "a") as f:
                f.write(json.dumps(rec) + "\n")
            cache[key] = rec
        print(f"baseline_proxy: {name} NASWOT {cache[key]['naswot']:.1f}", flush=True)


def store_view(path):
    """(label, weight, mean, sd, {tier: [level-1 scores]}, tier edges) of a search store."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = dict(con.execute("select key, value from meta").fetchall())
        settings = json.loads(meta.get("nas.settings", "{}"))
        if "nas.naswot_norm" in meta:
            mean, sd, _ = meta["nas.naswot_norm"].split(",")
            w = float(settings.get("naswot_weight", 1.0))
        else:  # a search scored by accuracy alone (--score acc)
            mean, sd, w = 0.0, 1.0, 0.0
        tiers = {}
        for tier, acc, nw in con.execute("select tier, val_acc, naswot from trials where level = 1 and "
                                         "status = 'done' and val_acc is not null"):
            if w and nw is None:
                sys.exit(f"baseline_proxy: {path}: a level-1 trial of tier {tier} has no NASWOT in a search "
                         "scored with it")
            z = (nw - float(mean)) / float(sd) if w else 0.0
            tiers.setdefault(tier, []).append(acc + w / 100 * z)
        edges = [float(x) for x in meta.get("nas.tiers", "").split(",") if x]
    finally:
        con.close()
    label = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return label, w, float(mean), float(sd), tiers, edges


def report(args):
    cache = load(args.data_file)
    stores = [store_view(p) for p in args.stores.split(",") if p]
    print("| baseline | L0 val (1x5000) | L1 val (1x15000) | NASWOT | " +
          " | ".join(f"{s[0]}: L1 score, rank in t0 / t1 / t2 (winner)" for s in stores) + " |")
    print("|---|---:|---:|---:|" + "---|" * len(stores))
    for name, _ in zoo():
        l0, l1, nw = (cache.get(f"{name}/1/5000"), cache.get(f"{name}/1/15000"), cache.get(f"naswot/{name}"))
        if not (l0 and l1 and nw):
            continue
        cells = []
        for label, w, mean, sd, tiers, _ in stores:
            score = l1["val_top1"] + w / 100 * (nw["naswot"] - mean) / sd
            ranks = []
            for t in sorted(tiers):
                v = tiers[t]
                ranks.append(f"{1 + sum(x > score for x in v)}/{len(v) + 1} ({100 * max(v):.2f})")
            cells.append(f"{100 * score:.2f}: " + " / ".join(ranks))
        print(f"| {name} | {100 * l0['val_top1']:.2f} | {100 * l1['val_top1']:.2f} | {nw['naswot']:.1f} | " +
              " | ".join(cells) + " |")
    print("\nL1 score = level-1 val acc + W points per sd of NASWOT with the store's W, mean and sd; rank k/n = the "
          "baseline's place among the tier's level-1 candidates and itself (1 = it would have won the tier); in "
          "parentheses the tier winner's score.")
    for label, w, mean, sd, tiers, edges in stores:
        print(f"- {label}: W {w:g}, NASWOT mean {mean:.1f} sd {sd:.2f}, tier edges {edges} ms, level-1 candidates "
              + ", ".join(f"t{t} {len(v)}" for t, v in sorted(tiers.items())))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpunas", default=os.path.join(ROOT, "build", "gpunas"))
    ap.add_argument("--work", default="/var/tmp/gpunas-blproxy")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--data-file", default=OUT)
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--stores", default="", help="comma-separated search.db paths for --report")
    args = ap.parse_args()
    if args.report:
        report(args)
    else:
        os.makedirs(args.work, exist_ok=True)
        run_all(args)


if __name__ == "__main__":
    main()
