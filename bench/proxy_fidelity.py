#!/usr/bin/env python3
"""bench/proxy_fidelity.py — how well does a cheap proxy rank architectures? (issue 13)

Reads the ground truth (bench/data/ground_truth.jsonl: architectures of the fmnist space
trained with the hub's full recipe, bench/ground_truth.py) and scores proxies by Kendall's
tau and Spearman's rho between the proxy's score and the final test top-1, with the cost of
the proxy in CPU seconds per candidate:

  lc-K        the full recipe's validation top-1 after epoch K (K = 1, 2, 3): early
              stopping, read from the ground truth itself (cost: K epochs of it)
  lc-K-extrap a saturating curve a - b * exp(-c t) fitted to the first K epochs'
              validation top-1 and evaluated at the last epoch (K = 3, 4)
  naswot      the NASWOT score of the untrained network (`gpunas zerocost`, mean of 3
              initialisations and batches of 64; Mellor et al. 2021), a zero-cost proxy
  proxy-E-N   the search's proxy recipe (`gpunas search`: SGD lr 0.05, 1 warm-up tenth,
              no smoothing, dropout or drop-path, batch 64, validation split 5% seed 42)
              for E epochs on N images — E=1, N=5000 is today's proxy; measured here with
              `gpunas train` (resumable: results cached in bench/data/proxy_runs.jsonl)

Seed noise: for the architectures trained with several seeds, the spread of the final
test top-1 (the floor under any ranking).  Prints a markdown table for bench/RESULTS.md,
then the search score's weight sweep (proxy accuracy + W points per NASWOT sd).

  python3 bench/proxy_fidelity.py [--gpunas build/gpunas] [--run-proxies [--budgets 1x5000,...]] [--work DIR]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GT = os.path.join(HERE, "data", "ground_truth.jsonl")
ARCHS = os.path.join(HERE, "data", "ground_truth_archs.json")
PROXY_RUNS = os.path.join(HERE, "data", "proxy_runs.jsonl")
PROXIES = [(1, 5000), (2, 5000), (3, 5000), (1, 15000), (1, 20000), (3, 20000)]


def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = math.sqrt(sum((x - ma) ** 2 for x in ra))
    vb = math.sqrt(sum((y - mb) ** 2 for y in rb))
    return cov / (va * vb) if va and vb else float("nan")


def kendall(a, b):  # tau-b
    n = len(a)
    c = d = ta = tb = 0
    for i in range(n):
        for j in range(i + 1, n):
            x, y = a[i] - a[j], b[i] - b[j]
            if x == 0 and y == 0:
                continue
            if x == 0:
                ta += 1
            elif y == 0:
                tb += 1
            elif (x > 0) == (y > 0):
                c += 1
            else:
                d += 1
    den = math.sqrt((c + d + ta) * (c + d + tb))
    return (c - d) / den if den else float("nan")


def fit_extrap(vals, t_end):
    """a - b exp(-c t) through the points (t = 1..K): grid over c, least squares for a, b."""
    ts = list(range(1, len(vals) + 1))
    best = None
    for k in range(1, 200):
        c = k / 50.0
        xs = [math.exp(-c * t) for t in ts]
        n = len(ts)
        mx, my = sum(xs) / n, sum(vals) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx == 0:
            continue
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, vals)) / sxx
        a = my - slope * mx
        err = sum((a + slope * x - y) ** 2 for x, y in zip(xs, vals))
        if best is None or err < best[0]:
            best = (err, a, slope, c)
    _, a, slope, c = best
    return a + slope * math.exp(-c * t_end)


def load_gt():
    runs = [json.loads(l) for l in open(GT) if l.strip()]
    by = {}
    for r in runs:
        by.setdefault(r["name"], []).append(r)
    return by


def proxy_score(args, name, config, epochs, subset, cache):
    key = f"{name}/{epochs}/{subset}"
    if key in cache:
        return cache[key]
    d = os.path.join(args.work, f"proxy-{name}-{epochs}-{subset}")
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "arch.json")
    json.dump(config, open(cfg, "w"))
    cmd = [args.gpunas, "train", cfg, "--out", os.path.join(d, "run"), "--subset", str(subset), "--epochs",
           str(epochs), "--batch", "64", "--lr", "0.05", "--warmup", "0.1", "--smoothing", "0", "--no-dropout",
           "--no-drop-path", "--val-fraction", "0.05", "--split-seed", "42", "--seed", "1"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if os.path.exists(os.path.join(d, "run", "checkpoint.safetensors")):
        cmd.append("--resume")  # a run stopped half-way
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - t0
    ep = [json.loads(l) for l in open(os.path.join(d, "run", "metrics.jsonl")) if l.strip()]
    # cost: the epochs' own time (training + the validation split), as the search spends
    # it; the command's wall time also loads the data set and evaluates the test set
    rec = {"key": key, "name": name, "epochs": epochs, "subset": subset, "val_top1": ep[-1]["val_top1"],
           "seconds": sum(e["time_s"] for e in ep), "wall_s": wall}
    with open(PROXY_RUNS, "a") as f:
        f.write(json.dumps(rec) + "\n")
    cache[key] = rec
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpunas", default=os.path.join(ROOT, "build", "gpunas"))
    ap.add_argument("--work", default="/var/tmp/gpunas-proxy")
    ap.add_argument("--run-proxies", action="store_true", help="train the proxy-E-N scores that are missing")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--budgets", default="", help="with --run-proxies: only these EPOCHSxIMAGES budgets, e.g. 1x5000")
    args = ap.parse_args()
    if not os.path.exists(GT):
        sys.exit(f"proxy_fidelity: no ground truth yet ({GT}); run bench/ground_truth.py")
    by = load_gt()
    archs = {a["name"]: a for a in json.load(open(ARCHS))["archs"]}
    names = sorted(n for n in by if any(r["seed"] == 1 for r in by[n]))
    truth = {n: sum(r["test_top1"] for r in by[n]) / len(by[n]) for n in names}
    print(f"ground truth: {len(names)} architectures, {sum(len(v) for v in by.values())} trainings")
    noisy = {n: [r["test_top1"] for r in v] for n, v in by.items() if len(v) > 1}
    if noisy:
        sds = []
        for n, v in sorted(noisy.items()):
            m = sum(v) / len(v)
            sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
            sds.append(sd)
            print(f"  seed noise {n}: " + ", ".join(f"{100 * x:.2f}" for x in v) + f"  (sd {100 * sd:.2f} points)")
        print(f"  mean seed sd: {100 * sum(sds) / len(sds):.2f} points over {len(sds)} architectures")
    y = [truth[n] for n in names]
    if len(names) < 3 and not args.run_proxies:
        sys.exit("proxy_fidelity: fewer than 3 architectures trained yet")
    rows = []
    epoch_s = {n: [e["time_s"] for e in by[n][0]["epochs"]] for n in names}
    for k in (1, 2, 3):
        x = [by[n][0]["epochs"][k - 1]["val_top1"] for n in names]
        cost = sum(sum(epoch_s[n][:k]) for n in names) / len(names)
        rows.append((f"lc-{k} (full recipe, epoch {k})", kendall(x, y), spearman(x, y), cost))
    for k in (3, 4):
        x = [fit_extrap([e["val_top1"] for e in by[n][0]["epochs"][:k]], len(by[n][0]["epochs"])) for n in names]
        cost = sum(sum(epoch_s[n][:k]) for n in names) / len(names)
        rows.append((f"lc-{k}-extrap (curve fit to {k} epochs)", kendall(x, y), spearman(x, y), cost))
    cache = {}
    if os.path.exists(PROXY_RUNS):
        for l in open(PROXY_RUNS):
            if l.strip():
                r = json.loads(l)
                cache[r["key"]] = r
    zc = {k: v for k, v in cache.items() if k.startswith("naswot/")}
    if args.run_proxies:  # every chosen architecture, trained already or not
        for n in archs:
            if f"naswot/{n}" in zc:
                continue
            d = os.path.join(args.work, f"naswot-{n}")
            os.makedirs(d, exist_ok=True)
            cfg = os.path.join(d, "arch.json")
            json.dump(archs[n]["config"], open(cfg, "w"))
            out = subprocess.run([args.gpunas, "zerocost", cfg, "--json", "--repeats", "3"] +
                                 (["--threads", str(args.threads)] if args.threads else []),
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out)
            rec = {"key": f"naswot/{n}", "name": n, "val_top1": r["naswot"], "seconds": r["seconds"]}
            with open(PROXY_RUNS, "a") as f:
                f.write(json.dumps(rec) + "\n")
            zc[rec["key"]] = rec
    have = [n for n in names if f"naswot/{n}" in zc]
    if len(have) >= 3:
        x = [zc[f"naswot/{n}"]["val_top1"] for n in have]
        yy = [truth[n] for n in have]
        rows.append(("naswot (zero-cost)" + ("" if len(have) == len(names) else f" [{len(have)} archs]"),
                     kendall(x, yy), spearman(x, yy), sum(zc[f"naswot/{n}"]["seconds"] for n in have) / len(have)))
    for e, n_img in PROXIES:
        have = [n for n in names if f"{n}/{e}/{n_img}" in cache]
        if args.run_proxies and (not args.budgets or f"{e}x{n_img}" in args.budgets.split(",")):
            for n in archs:
                proxy_score(args, n, archs[n]["config"], e, n_img, cache)
            have = [n for n in names if f"{n}/{e}/{n_img}" in cache]
        if len(have) < 3:
            continue
        x = [cache[f"{n}/{e}/{n_img}"]["val_top1"] for n in have]
        yy = [truth[n] for n in have]
        cost = sum(cache[f"{n}/{e}/{n_img}"]["seconds"] for n in have) / len(have)
        tag = " (today's)" if (e, n_img) == (1, 5000) else ""
        rows.append((f"proxy-{e}-{n_img}{tag}" + ("" if len(have) == len(names) else f" [{len(have)} archs]"),
                     kendall(x, yy), spearman(x, yy), cost))
        # the proxy and NASWOT together: the mean of the two ranks (a zero-cost score
        # added to a low-fidelity one costs almost nothing)
        both = [n for n in have if f"naswot/{n}" in zc]
        if len(both) >= 3:
            rp = ranks([cache[f"{n}/{e}/{n_img}"]["val_top1"] for n in both])
            rz = ranks([zc[f"naswot/{n}"]["val_top1"] for n in both])
            x = [a + b for a, b in zip(rp, rz)]
            yy = [truth[n] for n in both]
            cost = sum(cache[f"{n}/{e}/{n_img}"]["seconds"] + zc[f"naswot/{n}"]["seconds"] for n in both) / len(both)
            rows.append((f"proxy-{e}-{n_img} + naswot (mean rank)" +
                         ("" if len(both) == len(names) else f" [{len(both)} archs]"), kendall(x, yy),
                         spearman(x, yy), cost))
    print("\n| proxy | Kendall tau | Spearman rho | CPU s / candidate |\n|---|---:|---:|---:|")
    for name, t, r, c in rows:
        print(f"| {name} | {t:.3f} | {r:.3f} | {c:.1f} |")
    weight_sweep(names, truth, cache)


WEIGHTS = (0, 0.25, 0.5, 1, 1.5, 2, 3, 5)


def weight_sweep(names, truth, cache):
    """The search's score (`gpunas search --score acc+naswot`, src/nas/nas_score.c): proxy
    accuracy in points + W per standard deviation of NASWOT, normalised here over the
    architectures themselves (a Sobol sample of the space, as the search's tiering
    samples are); Kendall tau against the final test top-1 for each W."""
    print("\n| W (points per NASWOT sd) | " + " | ".join(str(w) for w in WEIGHTS) + " | NASWOT alone |")
    print("|---|" + "---:|" * (len(WEIGHTS) + 1))
    for e, n_img in ((1, 5000), (1, 15000), (3, 5000)):
        have = [n for n in names if f"{n}/{e}/{n_img}" in cache and f"naswot/{n}" in cache]
        if len(have) < 3:
            continue
        acc = {n: 100 * cache[f"{n}/{e}/{n_img}"]["val_top1"] for n in have}
        nw = {n: cache[f"naswot/{n}"]["val_top1"] for n in have}
        m = sum(nw.values()) / len(have)
        sd = math.sqrt(sum((v - m) ** 2 for v in nw.values()) / (len(have) - 1))
        y = [truth[n] for n in have]
        cells = [kendall([acc[n] + w * (nw[n] - m) / sd for n in have], y) for w in WEIGHTS]
        cells.append(kendall([nw[n] for n in have], y))
        print(f"| proxy-{e}-{n_img} + W z(NASWOT) [{len(have)} archs] | " + " | ".join(f"{c:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
