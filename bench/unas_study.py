#!/usr/bin/env python3
"""bench/unas_study.py — issue 15: UNAS against the LA-MCTS+BO tier winners of the main job,
and the three estimators side by side.

Run (resumable: run the same command again to continue; every step skips what is done):
  1. profile  a device profile of the fmnist space on this machine, at the search's
              measuring threads (store meta nas.lat_threads): `gpunas profile --space
              fmnist` into --work (or --profile F).
  2. search   `gpunas unas --store SEARCH/search.db` (the derived network becomes a trial
              of the main job's store, proxy-trained like its own proposals):
                - estimator unified at every tier edge of the search (the tier budgets);
                - estimators reinforce and gumbel at the middle edge (side by side with
                  unified there).
              Each run lives in WORK/unas-<estimator>/t<T>ms (checkpoints: a killed run
              continues with --resume).  A finished run appends one JSON line ("kind":
              "search") to bench/data/unas_study.jsonl (committed): estimator, target,
              its result.json (encoding, predicted and measured latency, the stored trial),
              the history (steps, H(q), E[latency], losses), seconds, threads, CPU-hours.
  3. train    every derived network with the hub's recipe (bench/ground_truth.py RECIPE,
              seeds 1 and 2; kind "train"), as bench/baselines.py trains a baseline.
  4. time     every derived network with the hub's protocol (bench/baselines.py measure:
              the search's threads, the reference network, ratio x the search's baseline;
              kind "latency").
  5. report   python3 bench/unas_study.py --report: per tier budget, UNAS's network (latency,
              within the target?, test top-1 mean over seeds, CPU-hours of its search)
              beside the LA-MCTS+BO tier winner (ground truth w0/w1/w2: test top-1 with the
              same recipe; the main job's CPU-hours from its store); then the estimators at
              the middle target (test top-1, latency, H(q) at 0/25/50/75/100% of the run).

  Several instances may run at once (one per core): each run and each training is claimed
  with a lock file under WORK/locks, so they share the work.

  python3 bench/unas_study.py [--gpunas build/gpunas] [--search gpunas-search]
         [--work /var/tmp/gpunas-unas] [--threads N] [--subset 5000] [--epochs 2]
         [--init-epochs 1] [--batch 32] [--arch-lr 0.02] [--seeds 2] [--only-search]
  quick check (never into the committed file): --data-file /tmp/u.jsonl --work /tmp/u-work
         --subset 256 --epochs 1 --init-epochs 0 --train-epochs 1 --train-subset 500 --lat-duration 0.3
"""
import argparse
import datetime
import json
import os
import platform
import sqlite3
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import baselines  # noqa: E402  (train/measure with the hub's recipe and protocol: one place)
from ground_truth import RECIPE  # noqa: E402
from claim import claim  # noqa: E402


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def store_meta(search_dir):
    con = sqlite3.connect(f"file:{os.path.join(search_dir, 'search.db')}?mode=ro", uri=True)
    try:
        return dict(con.execute("select key, value from meta").fetchall())
    finally:
        con.close()


def tier_edges(search_dir):
    t = store_meta(search_dir)["nas.tiers"]
    return [float(x) for x in t.split(",")]


def runs_planned(edges):
    mid = edges[len(edges) // 2]
    plan = [("unified", t) for t in edges]
    plan += [("reinforce", mid), ("gumbel", mid)]
    return plan


def profile(args, lat_threads):
    p = args.profile or os.path.join(args.work, f"profile-fmnist-{lat_threads}t.json")
    if not os.path.exists(p):
        baselines.run([args.gpunas, "profile", "--device", "cpu", "--space", "fmnist", "-o", p, "--threads",
                       str(lat_threads), "--samples", str(args.profile_samples), "--quiet"])
    return p


def name_of(est, t):
    return f"unas-{est}-{t:g}ms"


def search_done(args, est, t):
    return any(r.get("kind") == "search" and r["estimator"] == est and r["target_ms"] == t
               for r in baselines.read_lines(args.data_file))


def search(args, prof, est, t, data):
    with claim(args.work, name_of(est, t)) as mine:
        if not mine:
            print(f"unas_study: {name_of(est, t)} is being run by another process", flush=True)
        elif not search_done(args, est, t):
            search_one(args, prof, est, t, data)


def search_one(args, prof, est, t, data):
    out = os.path.join(args.work, f"unas-{est}")
    cmd = [args.gpunas, "unas", "--target-ms", f"{t:g}", "--profile", prof, "--estimator", est, "--store",
           os.path.join(args.search, "search.db"), "--out", out, "--subset", str(args.subset), "--epochs",
           str(args.epochs), "--init-epochs", str(args.init_epochs), "--batch", str(args.batch), "--arch-lr",
           str(args.arch_lr), "--lat-duration", str(args.lat_duration), "--quiet"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if os.path.exists(os.path.join(out, f"t{t:g}ms", "checkpoint.safetensors")):
        cmd.append("--resume")
    baselines.run(cmd)
    d = os.path.join(out, f"t{t:g}ms")
    res = json.load(open(os.path.join(d, "result.json")))
    hist = [json.loads(l) for l in open(os.path.join(d, "history.jsonl")) if l.strip()]
    threads = args.threads or os.cpu_count()
    rec = {"kind": "search", "estimator": est, "target_ms": t, "result": res, "history": hist,
           "seconds": res["seconds"], "threads": threads, "cpu_hours": res["seconds"] * threads / 3600,
           "settings": {"subset": args.subset, "epochs": args.epochs, "init_epochs": args.init_epochs,
                        "batch": args.batch, "arch_lr": args.arch_lr},
           "config": os.path.relpath(os.path.join(d, "arch.json"), ROOT) if d.startswith(ROOT) else None,
           "arch": json.load(open(os.path.join(d, "arch.json"))), "machine": platform.node(), "date": now(),
           "gpunas": baselines.commit_id(), "quick_check": args.subset < 1000}
    baselines.append(args.data_file, rec)
    data.append(rec)
    print(f"unas_study: {est} @ {t:g} ms: {res['encoding']} measured {res['measured_ms']:.4f} ms in "
          f"{res['seconds']:.0f} s", flush=True)


def arch_file(args, rec):
    """The derived network as a file (from the committed record: the work folder may be gone)."""
    p = os.path.join(args.work, "archs", name_of(rec["estimator"], rec["target_ms"]) + ".json")
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        json.dump(rec["arch"], f, indent=1)
    return p


def report(args):
    data = baselines.read_lines(args.data_file)
    gt = {}
    for r in baselines.read_lines(os.path.join(HERE, "data", "ground_truth.jsonl")):
        gt.setdefault(r["name"], []).append(r)
    searches = [r for r in data if r["kind"] == "search"]
    trains, lats = {}, {}
    for r in data:
        if r["kind"] == "train":
            trains.setdefault(r["name"], []).append(r["test_top1"])
        elif r["kind"] == "latency":
            lats.setdefault(r["name"], []).append(r["latency"]["median_ms"])
    if not searches:
        sys.exit("unas_study: no search in " + args.data_file)
    edges = sorted({r["target_ms"] for r in searches if r["estimator"] == "unified"})
    meta = store_meta(args.search) if os.path.exists(os.path.join(args.search, "search.db")) else {}
    con = None
    lamcts_h = None
    if meta:
        con = sqlite3.connect(f"file:{os.path.join(args.search, 'search.db')}?mode=ro", uri=True)
        row = con.execute("select min(created_at), max(finished_at) from trials where optimizer not like 'unas:%'"
                          ).fetchone()
        th = json.loads(meta.get("nas.settings", "{}")).get("threads") or 0
        if row[0] and row[1]:
            lamcts_h = (row[1] - row[0]) * (th if th and th > 0 else os.cpu_count()) / 3600
        con.close()

    def fmt_acc(xs):
        if not xs:
            return "—"
        m = sum(xs) / len(xs)
        return f"{100 * m:.2f}%" + (" (" + ", ".join(f"{100 * x:.2f}" for x in xs) + ")" if len(xs) > 1 else "")

    print("| tier budget | method | network | latency ms (hub protocol) | within | test top-1 | CPU-hours |")
    print("|---|---|---|---|---|---|---|")
    for i, t in enumerate(edges):
        s = next(r for r in searches if r["estimator"] == "unified" and r["target_ms"] == t)
        n = name_of("unified", t)
        lat = sum(lats[n]) / len(lats[n]) if n in lats else s["result"]["measured_ms"]
        print(f"| {t:g} | UNAS (unified) | {s['result']['encoding']} | {lat:.4f} | {'yes' if lat <= t else 'NO'} | "
              f"{fmt_acc(trains.get(n, []))} | {s['cpu_hours']:.2f} |")
        w = gt.get(f"w{i}", [])
        if w:
            print(f"| {t:g} | LA-MCTS+BO (main job) | w{i} {w[0]['encoding']} | {w[0]['latency_ms']:.4f} | "
                  f"{'yes' if w[0]['latency_ms'] <= t else 'NO'} | {fmt_acc([x['test_top1'] for x in w])} | "
                  f"{'%.2f (whole search, 3 tiers)' % lamcts_h if lamcts_h else '—'} |")
    mid = edges[len(edges) // 2] if edges else None
    print(f"\nEstimators at {mid:g} ms:\n")
    print("| estimator | network | latency ms | test top-1 | H(q) at 0/25/50/75/100% | CPU-hours |")
    print("|---|---|---|---|---|---|")
    for est in ("reinforce", "gumbel", "unified"):
        s = next((r for r in searches if r["estimator"] == est and r["target_ms"] == mid), None)
        if not s:
            continue
        n = name_of(est, mid)
        lat = sum(lats[n]) / len(lats[n]) if n in lats else s["result"]["measured_ms"]
        h = [x for x in s["history"] if x.get("entropy") is not None]
        hs = "/".join(f"{h[min(len(h) - 1, int(q * (len(h) - 1)))]['entropy']:.2f}" for q in (0, .25, .5, .75, 1)) \
            if h else "—"
        print(f"| {est} | {s['result']['encoding']} | {lat:.4f} | {fmt_acc(trains.get(n, []))} | {hs} | "
              f"{s['cpu_hours']:.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpunas", default=os.path.join(ROOT, "build", "gpunas"))
    ap.add_argument("--search", default=os.path.join(ROOT, "gpunas-search"))
    ap.add_argument("--work", default="/var/tmp/gpunas-unas")
    ap.add_argument("--data-file", default=os.path.join(HERE, "data", "unas_study.jsonl"))
    ap.add_argument("--profile")
    ap.add_argument("--profile-samples", type=int, default=500)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--subset", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--init-epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--arch-lr", type=float, default=0.02)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--train-epochs", type=int, default=0, help="quick check only")
    ap.add_argument("--train-subset", type=int, default=0, help="quick check only")
    ap.add_argument("--lat-duration", type=float, default=3.0)
    ap.add_argument("--lat-repeats", type=int, default=2)
    ap.add_argument("--only-search", action="store_true")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.report:
        return report(args)
    os.makedirs(args.work, exist_ok=True)
    lat_threads, lat_base = baselines.search_latency_meta(args.search)
    if not lat_threads or not lat_base:
        sys.exit(f"unas_study: {args.search}/search.db has no latency conditions (run the main job first)")
    prof = profile(args, lat_threads)
    data = baselines.read_lines(args.data_file)
    plan = runs_planned(tier_edges(args.search))
    for est, t in plan:
        search(args, prof, est, t, data)
    if args.only_search:
        return
    # train and time with bench/baselines.py's functions (its args shape)
    bargs = argparse.Namespace(gpunas=args.gpunas, work=args.work, threads=args.threads, epochs=args.train_epochs,
                               subset=args.train_subset, data_file=args.data_file, lat_threads=lat_threads,
                               lat_baseline_ms=lat_base, lat_duration=args.lat_duration,
                               lat_repeats=args.lat_repeats)
    # re-read: another instance may have finished searches meanwhile
    searches = [r for r in baselines.read_lines(args.data_file) if r["kind"] == "search"]
    for seed in range(1, args.seeds + 1):
        for r in searches:
            n = name_of(r["estimator"], r["target_ms"])
            with claim(args.work, f"train-{n}-seed{seed}") as mine:
                if mine and (n, seed) not in baselines.done_runs(args.data_file):
                    baselines.train(bargs, n, os.path.relpath(arch_file(args, r), ROOT), seed)
    baselines.time_all(bargs, [(name_of(r["estimator"], r["target_ms"]),
                                os.path.relpath(arch_file(args, r), ROOT)) for r in searches])


if __name__ == "__main__":
    main()
