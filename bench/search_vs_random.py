#!/usr/bin/env python3
"""bench/search_vs_random.py — does the search beat random sampling? (issue 13)

For every optimizer (default lamcts, evolution, random) and search seed (default 1, 2, 3) a
search with the main job's settings and the same compute budget (the same number of
level-0 candidates, --trials 45, and the same proxy or successive-halving ladder,
--fidelity) is run on fixed tier edges (default the main job's 0.21, 0.32, 0.51 ms, so
that all searches compete for the same tiers); then each tier's winner is trained with the
hub's full recipe (the ground truth's: 12 epochs, batch 64, lr 0.1 cosine, ..., seed 1)
and its test top-1 recorded.  A winner already in the ground truth
(bench/data/ground_truth.jsonl, same network, seed 1) is not trained again: its result is
reused and marked so.

Everything is resumable: a search continues with --resume, a final training with
`gpunas train --resume`, and every finished (optimizer, seed, tier) appends one JSON line
to bench/data/search_vs_random.jsonl (committed) — run the script again to continue.
Instances started at any time (one per core) share the list: each search and its final
trainings are claimed with a lock file in --work (--lane K/N still splits it statically).
The final training of a network that already won another search of the study is reused.  --report prints the markdown table for
bench/RESULTS.md: mean (std) test top-1 per tier and optimizer over the seeds, next to the
seed noise of the full recipe from the ground truth.  --proposals collects, from the stores
in --work, every finished search's level-0 candidates with their search score
(bench/data/search_vs_random_proposals.jsonl, committed), and --report then also prints
what the optimizers optimize: the mean score of the candidates they had trained, before and
after their unguided start (--opt-init: legacy = 20, auto = gpunas search's default sized
to the budget), and the best level-1 score.  It also stores the best level-1 candidate's
two terms (val acc, NASWOT z) and the validation curve of each winner's final training,
and --report prints Kendall's tau against the final test top-1 over the distinct winners
of every study with the same settings: of the score, of each term, of latency (for scale),
and of the winners' own validation top-1 after k epochs of their final training (how far
any ranking could separate them at all).

  python3 bench/search_vs_random.py [--work /var/tmp/gpunas-svr] [--fidelity SPEC]
         [--profile DEVICE.json] [--tiers 0.21,0.32,0.51] [--trials 45] [--lane K/N]
         [--threads N] [--only-search] [--report]
"""
import argparse
import datetime
import json
import math
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from claim import claim  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RUNS = os.path.join(HERE, "data", "search_vs_random.jsonl")
GT = os.path.join(HERE, "data", "ground_truth.jsonl")
PROPOSALS = os.path.join(HERE, "data", "search_vs_random_proposals.jsonl")
RECIPE = ["--epochs", "12", "--batch", "64", "--lr", "0.1", "--crop-pad", "2", "--erase", "0", "--no-drop-path",
          "--val-fraction", "0.1", "--split-seed", "42"]
RECIPE_EPOCHS = int(RECIPE[RECIPE.index("--epochs") + 1])


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def load(path):
    out = []
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


def append(rec):
    os.makedirs(os.path.dirname(RUNS), exist_ok=True)
    with open(RUNS, "a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())


def study_key(args):
    k = {"fidelity": args.fidelity, "tiers": args.tiers, "trials": args.trials, "latency": args.profile or "measured"}
    if args.score != "acc":  # the studies made before the score existed scored by accuracy
        k["score"] = args.score
    if args.lat_threads != "best":
        k["lat_threads"] = args.lat_threads
    if args.opt_init != "legacy":  # the studies made before the unguided start was sized to the budget
        k["opt_init"] = args.opt_init
    if args.search_args or args.final_args:  # smoke runs: never mixed with the study
        k.update({"search_args": args.search_args, "final_args": args.final_args})
    return k


def search_done(d):
    db = os.path.join(d, "search.db")
    if not os.path.exists(db):
        return False
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'nas.done'").fetchone()
    finally:
        con.close()
    return bool(row and row[0] == "1")


def search(args, opt, seed):
    """Run (or continue) one search; returns its folder, wall and CPU seconds of this call."""
    d = os.path.join(args.work, f"{opt}-s{seed}")
    cmd = [args.gpunas, "search", "--out", d, "--optimizer", opt, "--seed", str(seed), "--trials", str(args.trials),
           "--tiers", args.tiers, "--quiet"]
    cmd += ["--fidelity", args.fidelity, "--score", args.score, "--lat-threads", args.lat_threads]
    if args.profile:
        cmd += ["--profile", args.profile]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.opt_init not in ("legacy", "auto"):
        cmd += ["--opt-init", args.opt_init]
    cmd += args.search_args.split()
    if os.path.exists(os.path.join(d, "search.db")):
        cmd.append("--resume")
    finished_before = search_done(d)
    t0, c0 = time.time(), child_cpu()
    run(cmd, stdout=subprocess.DEVNULL)
    # the search's seconds over every call that searched (one stopped and continued adds
    # up; re-reporting a finished one does not count)
    acct = os.path.join(d, "seconds.json")
    tot = json.load(open(acct)) if os.path.exists(acct) else {"wall_s": 0.0, "cpu_s": 0.0}
    if not finished_before:
        tot = {"wall_s": tot["wall_s"] + time.time() - t0, "cpu_s": tot["cpu_s"] + child_cpu() - c0}
        with open(acct + ".tmp", "w") as f:
            json.dump(tot, f)
        os.replace(acct + ".tmp", acct)
    return d, tot["wall_s"], tot["cpu_s"]


def final_train(args, d, tier, config_file, seed=1):
    out = os.path.join(d, f"final-t{tier}")
    cmd = [args.gpunas, "train", config_file, "--out", out, "--seed", str(seed)] + RECIPE + args.final_args.split()
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if os.path.exists(os.path.join(out, "checkpoint.safetensors")):
        cmd.append("--resume")
    t0, c0 = time.time(), child_cpu()
    run(cmd, stdout=subprocess.DEVNULL)
    epochs = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl")) if l.strip()]
    return epochs[-1], time.time() - t0, child_cpu() - c0


def do_one(args, opt, seed, gt):
    d, search_wall, search_cpu = search(args, opt, seed)
    summ = json.load(open(os.path.join(d, "summary.json")))
    done = {(r["optimizer"], r["seed"], r["tier"]) for r in load(RUNS) if r.get("study") == study_key(args)}
    for t in summ["tiers"]:
        tier = t["tier"]
        if (opt, seed, tier) in done or args.only_search:
            continue
        rec = {"study": study_key(args), "optimizer": opt, "seed": seed, "tier": tier,
               "max_latency_ms": t["max_latency_ms"], "trained": t.get("trained"),
               "search_wall_s": search_wall, "search_cpu_s": search_cpu,
               "machine": platform.node(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                   timespec="seconds")}
        if "file" not in t:
            rec.update({"trial": None, "test_top1": None, "note": "no trained model in this tier"})
            append(rec)
            continue
        rec.update({"trial": t["trial"], "encoding": t["encoding"], "latency_ms": t["latency_ms"],
                    "proxy_val_acc": t["val_acc"], "proxy_level": t.get("level", 0), "params": t["params"],
                    "macs": t["macs"]})
        known = None if args.final_args else gt.get(t["encoding"])
        # the same network won another search of this study: its final training is reused
        twin = next((r for r in load(RUNS) if r.get("study") == study_key(args) and r.get("encoding") == t["encoding"]
                     and r.get("test_top1") is not None and "train_wall_s" in r), None)
        if known:
            rec.update({"test_top1": known["test_top1"], "val_top1": known["val_top1"], "train_s": known["seconds"],
                        "note": f"final training reused from the ground truth ({known['name']})"})
        elif twin:
            rec.update({"test_top1": twin["test_top1"], "val_top1": twin["val_top1"],
                        "note": f"final training reused from {twin['optimizer']} seed {twin['seed']} t{twin['tier']}"})
        else:
            last, wall, cpu = final_train(args, d, tier, os.path.join(d, t["file"]))
            rec.update({"test_top1": last.get("test_top1"), "val_top1": last.get("val_top1"), "train_wall_s": wall,
                        "train_cpu_s": cpu})
        append(rec)
        print(f"search_vs_random: {opt} seed {seed} t{tier}: test "
              f"{'-' if rec['test_top1'] is None else '%.2f%%' % (100 * rec['test_top1'])}", flush=True)


def report(args):
    rows = [r for r in load(RUNS) if r.get("study") == study_key(args)]
    note = ""
    if args.opt_init != "legacy" and not any(r["optimizer"] == "random" for r in rows):
        # random search reads no opt_init: its cells of the study made before it stand
        legacy = dict(study_key(args))
        del legacy["opt_init"]
        rows += [r for r in load(RUNS) if r.get("study") == legacy and r["optimizer"] == "random"]
        note = " (random: the cells of the same study without opt_init, which random search does not read)"
    gt = load(GT)
    by = {}
    for r in gt:
        by.setdefault(r["name"], []).append(r["test_top1"])
    sds = [statistics_sd(v) for v in by.values() if len(v) >= 2]
    noise = math.sqrt(sum(s * s for s in sds) / len(sds)) if sds else float("nan")
    tiers = sorted({r["tier"] for r in rows})
    opts = [o for o in args.optimizers.split(",") if any(r["optimizer"] == o for r in rows)]
    print(f"study: {json.dumps(study_key(args))}; seed noise of the full recipe (pooled sd over "
          f"{len(sds)} architectures with >= 2 seeds): {100 * noise:.2f} points{note}\n")
    print("| optimizer | " + " | ".join(f"t{t} test top-1 (mean, sd, n)" for t in tiers) + " | search CPU-h per seed |")
    print("|---|" + "---:|" * (len(tiers) + 1))
    for o in opts:
        cells = []
        for t in tiers:
            v = [r["test_top1"] for r in rows if r["optimizer"] == o and r["tier"] == t and r["test_top1"] is not None]
            cells.append(f"{100 * sum(v) / len(v):.2f} % ({100 * statistics_sd(v):.2f}, {len(v)})" if v else "-")
        cpu = {(r["seed"]): r["search_cpu_s"] for r in rows if r["optimizer"] == o}
        print(f"| {o} | " + " | ".join(cells) + f" | {sum(cpu.values()) / len(cpu) / 3600:.2f} |")
    verdict(rows, tiers, opts, noise)


def verdict(rows, tiers, opts, noise):
    """Each search optimizer against random, per tier: the difference of the mean test
    top-1 over the search seeds, beside two yardsticks: the seed noise of the full recipe
    (one network trained again) and the standard error of the difference from the
    spread over search seeds (different winners)."""
    if "random" not in opts:
        return
    def tops(o, t):
        return [r["test_top1"] for r in rows if r["optimizer"] == o and r["tier"] == t and r["test_top1"] is not None]
    print("\n| optimizer − random | " + " | ".join(f"t{t}: diff (se)" for t in tiers) + " | tiers won by > seed noise |")
    print("|---|" + "---:|" * (len(tiers) + 1))
    for o in opts:
        if o == "random":
            continue
        cells, won, complete = [], 0, True
        for t in tiers:
            a, b = tops(o, t), tops("random", t)
            if not a or not b:
                cells.append("-")
                complete = False
                continue
            d = sum(a) / len(a) - sum(b) / len(b)
            se = math.sqrt(statistics_sd(a) ** 2 / len(a) + statistics_sd(b) ** 2 / len(b))
            cells.append(f"{100 * d:+.2f} ({100 * se:.2f})")
            won += d > noise
        print(f"| {o} | " + " | ".join(cells) + f" | {won} of {len(tiers)}{'' if complete else ' (incomplete)'} |")


def store_proposals(db, opt):
    """Per tier of one search store: its level-0 candidates in proposal order (score,
    or None when not trained), the unguided start (nas.settings opt_init, else the old
    default 20), and the best level-1 score with its terms.  Score = the search's: 100 *
    val acc + z of NASWOT under the store's frozen normalisation (acc+naswot, weight 1)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        settings = json.loads(con.execute("SELECT value FROM meta WHERE key = 'nas.settings'").fetchone()[0])
        mean, sd, _ = (float(x) for x in con.execute(
            "SELECT value FROM meta WHERE key = 'nas.naswot_norm'").fetchone()[0].split(","))
        start = settings.get("opt_init", 20)
        w = settings.get("naswot_weight", 1.0)
        out = []
        for t in range(len(settings["tiers"].split(","))):
            rows = con.execute("SELECT status, val_acc, naswot FROM trials WHERE optimizer = ? AND level = 0 "
                               "ORDER BY id", (f"{opt}/t{t}",)).fetchall()
            scores = [100 * a + w * (n - mean) / sd if st == "done" else None for st, a, n in rows]
            # the best level-1 candidate's score and its two terms (val acc, NASWOT z)
            best = con.execute("SELECT 100 * val_acc + ? * (naswot - ?) / ?, 100 * val_acc, (naswot - ?) / ? "
                               "FROM trials WHERE level = 1 AND tier = ? AND status = 'done' "
                               "ORDER BY 1 DESC LIMIT 1", (w, mean, sd, mean, sd, t)).fetchone() or (None,) * 3
            out.append({"tier": t, "opt_init": start, "scores": scores, "best_level1": best[0],
                        "best_level1_acc": best[1], "best_level1_z": best[2]})
        return out
    finally:
        con.close()


def after_start(opt, scores, start):
    """Flags: was proposal k made after the optimizer's unguided start?  LA-MCTS fits its
    model once `start` proposals are observed (and 2 are feasible: not checked here, so
    this counts an upper bound); evolution mutates once `start` trained members are in
    its population; random search never leaves it."""
    flags, trained = [], 0
    for k, sc in enumerate(scores):
        flags.append(opt == "lamcts" and k >= start or opt == "evolution" and trained >= start)
        trained += sc is not None
    return flags


def collect_proposals(args):
    """Write (replace) this study's lines of PROPOSALS from the stores in --work."""
    key = study_key(args)
    keep = [r for r in load(PROPOSALS) if r.get("study") != key]
    new = []
    for o in args.optimizers.split(","):
        for seed in (int(x) for x in args.seeds.split(",")):
            db = os.path.join(args.work, f"{o}-s{seed}", "search.db")
            if not os.path.exists(db) or not search_done(os.path.dirname(db)):
                continue
            for t in store_proposals(db, o):
                # the winner's final training, epoch by epoch (absent when reused)
                m = os.path.join(os.path.dirname(db), f"final-t{t['tier']}", "metrics.jsonl")
                curve = [e["val_top1"] for e in load(m) if "val_top1" in e] if os.path.exists(m) else []
                if len(curve) == RECIPE_EPOCHS:
                    t["final_val_curve"] = curve
                new.append({"study": key, "optimizer": o, "seed": seed, **t})
    with open(PROPOSALS + ".tmp", "w") as f:
        for r in keep + new:
            f.write(json.dumps(r) + "\n")
    os.replace(PROPOSALS + ".tmp", PROPOSALS)
    print(f"search_vs_random: {len(new)} (optimizer, seed, tier) lines of {args.work} in {PROPOSALS}")


def report_proposals(args):
    """What the optimizer optimizes: the mean search score of the level-0 candidates it
    had trained, before and after its unguided start, and the best level-1 score."""
    key = study_key(args)
    rows = [r for r in load(PROPOSALS) if r.get("study") == key]
    if args.opt_init != "legacy" and not any(r["optimizer"] == "random" for r in rows):
        legacy = dict(key)
        del legacy["opt_init"]
        rows += [r for r in load(PROPOSALS) if r.get("study") == legacy and r["optimizer"] == "random"]
    if not rows:
        return
    tiers = sorted({r["tier"] for r in rows})
    print("\nSearch score of the trained level-0 candidates (mean, n) — unguided start / after it — "
          "and the mean over seeds of the best level-1 score:\n")
    print("| optimizer | " + " | ".join(f"t{t}: start / after / best L1" for t in tiers) + " |")
    print("|---|" + "---:|" * len(tiers))
    for o in args.optimizers.split(","):
        cells = []
        for t in tiers:
            rs = [r for r in rows if r["optimizer"] == o and r["tier"] == t]
            if not rs:
                cells.append("-")
                continue
            a, b = [], []
            for r in rs:
                for sc, late in zip(r["scores"], after_start(o, r["scores"], r["opt_init"])):
                    if sc is not None:
                        (b if late else a).append(sc)
            l1 = [r["best_level1"] for r in rs if r["best_level1"] is not None]
            f = lambda v: f"{sum(v) / len(v):.2f} ({len(v)})" if v else "-"
            cells.append(f"{f(a)} / {f(b)} / {sum(l1) / len(l1):.2f}")
        print(f"| {o} | " + " | ".join(cells) + " |")
    # does a higher winning score buy a better network?  Kendall tau, per tier, between
    # each search's best level-1 score and its winner's final test top-1
    best = {(r["optimizer"], r["seed"], r["tier"]): r["best_level1"] for r in rows}
    finals = [r for r in load(RUNS) if r.get("study") == key or r["optimizer"] == "random" and "opt_init" in key
              and r.get("study") == {x: y for x, y in key.items() if x != "opt_init"}]
    cells = []
    for t in tiers:
        v = [(best[(r["optimizer"], r["seed"], t)], r["test_top1"]) for r in finals
             if r["tier"] == t and r.get("test_top1") is not None and best.get((r["optimizer"], r["seed"], t))]
        tau = kendall([a for a, _ in v], [b for _, b in v])
        cells.append(f"t{t} {tau:+.2f} ({len(v)} winners)" if tau is not None else f"t{t} -")
    print("\nKendall tau between a search's best level-1 score and its winner's test top-1: " + "; ".join(cells))
    # the same over every distinct winner of both studies (the settings but opt_init
    # equal; a network two searches found counts once), and latency's tau for scale:
    # how well the score orders the networks a search ends up choosing between
    base = {x: y for x, y in key.items() if x != "opt_init"}
    same = lambda st: st is not None and {x: y for x, y in st.items() if x != "opt_init"} == base
    l1 = {(r["study"].get("opt_init"), r["optimizer"], r["seed"], r["tier"]): r
          for r in load(PROPOSALS) if same(r.get("study")) and r.get("best_level1") is not None}
    cells, terms = [], []
    for t in tiers:
        nets = {}
        for r in load(RUNS):
            p = l1.get((r["study"].get("opt_init"), r["optimizer"], r["seed"], t)) if same(r.get("study")) else None
            if r["tier"] == t and r.get("test_top1") is not None and p is not None:
                nets[r["encoding"]] = (p, r["latency_ms"], r["test_top1"])
        v = list(nets.values())
        acc = [c for _, _, c in v]
        ts, tl = kendall([p["best_level1"] for p, _, _ in v], acc), kendall([b for _, b, _ in v], acc)
        if ts is None:
            continue
        cells.append(f"t{t} {ts:+.2f} (latency {tl:+.2f}; {len(v)} networks, "
                     f"{100 * min(acc):.2f}-{100 * max(acc):.2f} %)")
        if all(p.get("best_level1_acc") is not None for p, _, _ in v):  # lines written before the terms were
            ta = kendall([p["best_level1_acc"] for p, _, _ in v], acc)
            tz = kendall([p["best_level1_z"] for p, _, _ in v], acc)
            terms.append(f"t{t} {ta:+.2f} / {tz:+.2f}")
    if cells:
        print("Kendall tau over the distinct winners of every study with these settings, score (latency) against "
              "test top-1: " + "; ".join(cells))
    if terms:
        print("... and each term of the score alone, level-1 val acc / NASWOT z: " + "; ".join(terms))
    # how separable are these winners at all?  The same tau for the validation top-1 of
    # their own final training after k of its epochs (the 12th: the trained model's own
    # val split against its test set); curves from the finals, or from the ground truth
    # where a final was reused from it
    gt = {r["encoding"]: [e["val_top1"] for e in r["epochs"]] for r in load(GT) if r.get("seed") == 1}
    ks = (1, 2, 3, 4, 6, 9, RECIPE_EPOCHS)
    cells = []
    for t in tiers:
        nets = {}
        for r in load(RUNS):
            if r["tier"] != t or r.get("test_top1") is None or not same(r.get("study")):
                continue
            p = l1.get((r["study"].get("opt_init"), r["optimizer"], r["seed"], t)) or {}
            curve = p.get("final_val_curve") or gt.get(r["encoding"])
            if curve and len(curve) == RECIPE_EPOCHS:
                nets[r["encoding"]] = (curve, r["test_top1"])
        v = list(nets.values())
        if len(v) >= 3:
            cells.append(f"t{t} ({len(v)}) " + " ".join(
                f"e{k} {kendall([c[k - 1] for c, _ in v], [a for _, a in v]):+.2f}" for k in ks))
    if cells:
        print("... and the val top-1 of the winners' own final training after k epochs: " + "; ".join(cells))


def kendall(x, y):
    """Kendall's tau over the pairs tied in neither (concordant - discordant over their
    number: tau itself when nothing ties; here ties are the same network found twice);
    None without such a pair"""
    pairs = [(i, j) for i in range(len(x)) for j in range(i + 1, len(x))]
    c = sum((x[i] - x[j]) * (y[i] - y[j]) > 0 for i, j in pairs)
    d = sum((x[i] - x[j]) * (y[i] - y[j]) < 0 for i, j in pairs)
    return (c - d) / (c + d) if c + d else None


def statistics_sd(v):
    if len(v) < 2:
        return 0.0
    m = sum(v) / len(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def main():
    global RUNS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpunas", default=os.path.join(ROOT, "build", "gpunas"))
    ap.add_argument("--work", default="/var/tmp/gpunas-svr")
    ap.add_argument("--optimizers", default="lamcts,evolution,random")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--fidelity", default="sh:1x5000,1x15000/3", help="the searches' ladder (default: the main "
                    "job's, gpunas search's default)")
    ap.add_argument("--score", default="acc+naswot", help="the searches' score (default: gpunas search's)")
    ap.add_argument("--lat-threads", default="best", help="the searches' measuring threads: the main job's choice "
                    "(its store's meta nas.lat_threads), so that the fixed --tiers mean the same everywhere")
    ap.add_argument("--profile", default=None, help="predict latency from this device profile (default: measure)")
    ap.add_argument("--tiers", default="0.21,0.32,0.51")
    ap.add_argument("--trials", type=int, default=45)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--lane", default="0/1")
    ap.add_argument("--only-search", action="store_true", help="searches only, no final trainings")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--proposals", action="store_true", help="collect the finished searches' level-0 scores from "
                    "the stores in --work into bench/data/search_vs_random_proposals.jsonl (for --report)")
    ap.add_argument("--search-args", default="", help="extra `gpunas search` options (smoke runs)")
    ap.add_argument("--final-args", default="", help="extra `gpunas train` options after the recipe (smoke runs)")
    ap.add_argument("--opt-init", default="legacy", help="the optimizers' unguided start per tier: legacy (a "
                    "gpunas before --opt-init: 20), auto (gpunas search's default, sized to the budget) or a number")
    ap.add_argument("--data-file", default=RUNS)
    args = ap.parse_args()
    RUNS = args.data_file
    if args.proposals:
        collect_proposals(args)
        return
    if args.report:
        report(args)
        report_proposals(args)
        return
    os.makedirs(args.work, exist_ok=True)
    gt = {}
    for r in load(GT):
        if r["seed"] == 1:
            gt[r["encoding"]] = r
    todo = [(o, int(s)) for s in args.seeds.split(",") for o in args.optimizers.split(",")]
    if args.lane != "0/1":
        lane, lanes = (int(x) for x in args.lane.split("/"))
        todo = todo[lane::lanes]
    for o, s in todo:
        # each search (and its final trainings) is claimed with a lock file, so instances
        # started at any time (one per core) share the list
        with claim(args.work, f"{o}-s{s}") as mine:
            if mine:
                do_one(args, o, s, gt)
    print(f"search_vs_random: {len(load(RUNS))} results in {RUNS}")


if __name__ == "__main__":
    main()
