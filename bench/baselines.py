#!/usr/bin/env python3
"""bench/baselines.py — issue 20: hand-designed networks against the model hub, at equal
latency on this machine (GPUNet's claim: the searched front dominates every baseline and
is >= 1.5x faster at equal accuracy).

The baselines are configs/baselines/*.json (MobileNetV2-, EfficientNet-B0- and plain
ResNet-18-style networks at three widths each; configs/baselines/README.md says where
each comes from and whether it lies in the fmnist space) and the two bundled configs,
configs/fmnist-small.json and configs/fmnist-wide.json.

Run (resumable: run the same command again to continue):
  1. train    every baseline with the hub's recipe (bench/ground_truth.py's RECIPE: 12
              epochs, batch 64, lr 0.1 cosine with 1 warm-up epoch, label smoothing 0.1,
              pad-2 crops and flips, no erasing, no drop-path, 10% validation split with
              seed 42) for seeds 1 and 2, all seed-1 runs first.  A run killed half-way
              continues from its checkpoint (`gpunas train --resume`) in --work.
              Each training is claimed with a lock file (WORK/locks), so instances
              started at any time (one per core) share the list.  Each finished run appends one JSON line ("kind": "train") to
              bench/data/baselines.jsonl (committed): name, seed, config, params, MACs,
              fmnist-space membership, per-epoch metrics, test top-1/5, seconds,
              machine, date, gpunas commit, recipe.
  2. time     once every training is done (as `gpunas hub build`, which times nothing
              until all training has ended; the instance that finishes last does it, or
              --time-only), every baseline --lat-repeats times (2), round-robin, batch 1
              with the hub's protocol: the search's measuring threads (store meta
              nas.lat_threads), pinned, interleaved with the built-in reference network,
              3 s timed phase, 200 ms / 3 runs warm-up, at least 30 runs, up to 3 attempts
              (the first stable one, else the one with the lowest robust CV); latency =
              ratio to the reference x the search's reference baseline (store meta
              nas.lat_reference_ms), so it is in the frame of the search's tier edges and
              of the hub's latencies.  One JSON line ("kind": "latency") per measurement.
              A search folder without search.db (a copied main job keeps only hub.json)
              gives its frame from the hub's models (latency.threads,
              latency.reference_baseline_ms).  Measurements are kept per thread count, so
              one baseline can be timed in the frames of several hubs (--search/--hub A,
              then B); the report uses only those at its hub's threads.
              (The hub times its trained weights; `gpunas latency` times the config with
              seed-1 random weights: the same network and code path, other values.)

  python3 bench/baselines.py [--gpunas build/gpunas] [--work /var/tmp/gpunas-baselines]
         [--search gpunas-search] [--max-runs N] [--threads N] [--only A,B]
         [--lat-repeats 2] [--time-only]
  quick check (never into the committed file):
  python3 bench/baselines.py --epochs 2 --subset 500 --lat-duration 0.3 \\
         --data-file /tmp/bl.jsonl --work /tmp/bl-work --only mbv2-w035

  3. report   python3 bench/baselines.py --report [--hub gpunas-search/hub]
              [--data-file F] [--svg F.svg] [--points F.json] [--png F.png]
              the markdown table of the issue (per baseline: test top-1 mean +- sd over
              seeds, latency, the hub model that beats it, the latency ratio at equal
              accuracy interpolated on the hub's front), a one-line verdict, and the
              plot's points as JSON (hub models and baselines); --svg draws the hub's
              Pareto front with the baselines as an SVG (no plotting library needed);
              --png puts them on the hub's own picture (`gpunas hub plot HUB --compare`,
              cairo), which also names the hub models that beat each one.
"""
import argparse
import datetime
import fcntl
import glob
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RUNS = os.path.join(HERE, "data", "baselines.jsonl")
ZOO_DIR = os.path.join(ROOT, "configs", "baselines")
BUNDLED = ["configs/fmnist-small.json", "configs/fmnist-wide.json"]
SEEDS = (1, 2)
sys.path.insert(0, HERE)
from ground_truth import RECIPE  # noqa: E402  (the hub's recipe, one place)
from claim import claim  # noqa: E402

# the hub's timing (src/hub/hub_build.c measure()): 3 s timed phase, 200 ms / 3 runs
# warm-up, at least 30 runs, no drift limit (the reference corrects drifts), 3 attempts
LAT_ATTEMPTS = 3
FAMILY = {"mbv2": "MobileNetV2", "effb0": "EfficientNet-B0", "plain18": "ResNet-18 (plain)",
          "fmnist": "bundled"}


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def zoo():
    """[(name, config path relative to ROOT)] in a fixed order: families, widths."""
    out = []
    for p in sorted(glob.glob(os.path.join(ZOO_DIR, "*.json"))):
        out.append((os.path.basename(p)[:-5], os.path.relpath(p, ROOT)))
    order = {"fmnist": 0, "mbv2": 1, "effb0": 2, "plain18": 3}
    out.sort(key=lambda t: (order.get(t[0].split("-")[0], 9), t[0]))
    return [(os.path.basename(p)[:-5], p) for p in BUNDLED] + out


def family(name):
    return FAMILY.get(name.split("-")[0], "?")


def commit_id():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except Exception:
        return None


def hub_latency_frame(hub_dir):
    """(threads, reference baseline ms) the hub's models were timed in, or (None, None)."""
    try:
        h = json.load(open(os.path.join(hub_dir, "hub.json")))
    except (OSError, ValueError):
        return None, None
    for m in h.get("models", []) + h.get("dropped", []):
        lat = m.get("latency") or {}
        if lat.get("reference_baseline_ms"):
            return lat.get("threads"), float(lat["reference_baseline_ms"])
    return None, None


def search_latency_meta(search_dir, hub_dir=None):
    """(threads, reference baseline ms) of a search store, or else of the hub it published
    (a copied main job may keep only hub.json), or (None, None)."""
    db = os.path.join(search_dir, "search.db")
    if not os.path.exists(db):
        return hub_latency_frame(hub_dir or search_dir)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        meta = dict(con.execute("select key, value from meta where key like 'nas.lat_%'").fetchall())
    finally:
        con.close()
    th = meta.get("nas.lat_threads")
    ref = meta.get("nas.lat_reference_ms")
    return (int(float(th)) if th else None), (float(ref) if ref else None)


def info(gpunas, cfg):
    """params, MACs and fmnist-space membership (None with a gpunas older than `info --space`)."""
    r = subprocess.run([gpunas, "info", cfg, "--space", "fmnist", "--json"], capture_output=True, text=True)
    if r.returncode:
        r = subprocess.run([gpunas, "info", cfg, "--json"], check=True, capture_output=True, text=True)
    j = json.loads(r.stdout)
    return j["params"], j["macs"], j.get("space")


def measure(args, cfg):
    """The hub's batch-1 protocol through `gpunas latency`; returns the latency record."""
    base = [args.gpunas, "latency", cfg, "--threads", str(args.lat_threads), "--duration", str(args.lat_duration),
            "--warmup-ms", "200", "--warmup-runs", "3", "--runs", "30", "--max-drift", "1000000", "--force",
            "--json"]
    keep, attempts = None, 0
    for _ in range(LAT_ATTEMPTS):
        print("+", " ".join(base), flush=True)
        j = json.loads(subprocess.run(base, check=True, capture_output=True, text=True).stdout)
        attempts += 1
        if keep is None or j["stable"] or j["compute"]["robust_cv"] < keep["compute"]["robust_cv"]:
            keep = j
        if j["stable"]:
            break
    ref = keep["reference"]
    if not ref:
        sys.exit("baselines: gpunas latency returned no reference measurement")
    return {"batch": 1, "median_ms": ref["ratio"] * args.lat_baseline_ms,
            "method": "ratio to the reference x the search's baseline (gpunas latency, hub protocol)",
            "ratio": ref["ratio"], "ratio_lo": ref["ratio_lo"], "ratio_hi": ref["ratio_hi"],
            "reference_ms": ref["median_ms"], "reference_baseline_ms": args.lat_baseline_ms,
            "raw_median_ms": keep["compute"]["median_ms"], "p10_raw_ms": keep["compute"]["p10_ms"],
            "p90_raw_ms": keep["compute"]["p90_ms"], "runs": keep["compute"]["n"],
            "robust_cv": keep["compute"]["robust_cv"], "stable": keep["stable"], "attempts": attempts,
            "threads": keep["threads"]["count"], "pinned": keep["threads"]["pinned"],
            "device": keep["device"]["id"], "duration_s": args.lat_duration}


def read_lines(path):
    if not os.path.exists(path):
        return []
    return [json.loads(l) for l in open(path) if l.strip()]


def done_runs(path):
    return {(r["name"], r["seed"]) for r in read_lines(path) if r.get("kind", "train") == "train"}


def done_timings(path, threads):
    """(name, repeat) of the measurements already made at this thread count (each hub's frame
    has its own: the 12-03 main job timed at 2 threads, the 12-04 one at 1)."""
    return {(r["name"], r["repeat"]) for r in read_lines(path)
            if r.get("kind") == "latency" and r["latency"].get("threads") == threads}


def append(path, rec):
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())


def recipe(args):
    r = list(RECIPE)
    if args.epochs:
        i = r.index("--epochs")
        r[i + 1] = str(args.epochs)
    if args.subset:
        r += ["--subset", str(args.subset)]
    return r


def train(args, name, cfg_rel, seed):
    d = os.path.join(args.work, f"{name}-seed{seed}")
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(ROOT, cfg_rel)
    rec_args = recipe(args)
    cmd = [args.gpunas, "train", cfg, "--out", os.path.join(d, "run"), "--seed", str(seed)] + rec_args
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if os.path.exists(os.path.join(d, "run", "checkpoint.safetensors")):
        cmd.append("--resume")
    run(cmd, stdout=subprocess.DEVNULL)
    epochs = [json.loads(l) for l in open(os.path.join(d, "run", "metrics.jsonl")) if l.strip()]
    last = epochs[-1]
    params, macs, space = info(args.gpunas, cfg)
    rec = {"kind": "train", "name": name, "seed": seed, "config": cfg_rel, "family": family(name), "params": params,
           "macs": macs, "in_space_fmnist": space["member"] if space else None,
           "epochs": [{k: e.get(k) for k in ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_top1",
                                             "val_top5", "time_s", "threads_min", "threads_max")} for e in epochs],
           "val_top1": last.get("val_top1"), "test_top1": last.get("test_top1"), "test_top5": last.get("test_top5"),
           "seconds": sum(e.get("time_s") or 0 for e in epochs), "machine": platform.node(),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "gpunas": commit_id(), "recipe": rec_args, "quick_check": bool(args.epochs or args.subset)}
    append(args.data_file, rec)
    print(f"baselines: {name} seed {seed}: test {100 * rec['test_top1']:.2f}% in {rec['seconds']:.0f} s",
          flush=True)


def time_all(args, names):
    th, base = search_latency_meta(args.search, args.hub)
    if base is None:
        sys.exit(f"baselines: {args.search}/search.db has no nas.lat_reference_ms and {args.hub}/hub.json no "
                 f"latency.reference_baseline_ms: give --search a finished search")
    args.lat_threads, args.lat_baseline_ms = th or 1, base
    # one timing process at a time (two instances may finish together): the other one leaves
    lock = open(os.path.join(args.work, "timing.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("baselines: another process is timing; leaving it to that one", flush=True)
        return
    done = done_timings(args.data_file, args.lat_threads)
    for rep_i in range(1, args.lat_repeats + 1):
        for name, cfg_rel in names:
            if (name, rep_i) in done:
                continue
            lat = measure(args, os.path.join(ROOT, cfg_rel))
            append(args.data_file, {"kind": "latency", "name": name, "repeat": rep_i, "config": cfg_rel,
                                    "latency": lat, "machine": platform.node(),
                                    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                                    "gpunas": commit_id(), "quick_check": args.lat_duration != 3.0})
            print(f"baselines: {name} latency #{rep_i}: {lat['median_ms']:.4f} ms (ratio {lat['ratio']:.3f}, "
                  f"{'stable' if lat['stable'] else 'not stable'})", flush=True)


# ------------------------------------------------------------------ report
def mean_sd(xs):
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan")
    return m, sd


def load_hub(hub_dir):
    h = json.load(open(os.path.join(hub_dir, "hub.json")))
    models = []
    for key in ("models", "dropped"):
        for m in h.get(key, []):
            models.append({"name": m["name"], "acc": m["accuracy"]["test_top1"], "lat": m["latency"]["median_ms"],
                           "ref_base": m["latency"].get("reference_baseline_ms"), "front": key == "models",
                           "tier": (m.get("search") or {}).get("tier"), "epochs": m["training"]["epochs"],
                           "threads": m["latency"].get("threads")})
    models.sort(key=lambda m: m["lat"])
    return models


def front_latency_at(front, acc):
    """Latency at which the hub's front (sorted by latency, rising accuracy) reaches acc,
    linearly interpolated between neighbouring front models.  Returns (ms, how):
    how = "interp" | "below" (the fastest hub model is already more accurate: the value
    is that model's latency, an upper bound) | "above" (no hub model is that accurate)."""
    if not front:
        return None, "above"
    if acc <= front[0]["acc"]:
        return front[0]["lat"], "below"
    for a, b in zip(front, front[1:]):
        if a["acc"] < acc <= b["acc"]:
            return a["lat"] + (acc - a["acc"]) / (b["acc"] - a["acc"]) * (b["lat"] - a["lat"]), "interp"
    return None, "above"


def svg_plot(path, hub, rows, tiers):
    W, H, L, R, T, B = 900, 560, 70, 230, 40, 60
    pts = [(m["lat"], 100 * m["acc"]) for m in hub] + [(r["lat"], 100 * r["acc"]) for r in rows]
    xs = [p[0] for p in pts] + list(tiers)
    ys = [p[1] for p in pts] + [100 * (r["acc"] + (r["sd"] if r["sd"] == r["sd"] else 0)) for r in rows] + \
         [100 * (r["acc"] - (r["sd"] if r["sd"] == r["sd"] else 0)) for r in rows]
    x0, x1 = 0.0, max(xs) * 1.08
    y0, y1 = min(ys), max(ys)
    pad = max(0.1, 0.08 * (y1 - y0))
    y0, y1 = y0 - pad, y1 + pad

    def X(v):
        return L + (v - x0) / (x1 - x0) * (W - L - R)

    def Y(v):
        return T + (y1 - v) / (y1 - y0) * (H - T - B)

    def ticks(a, b, n=6):
        raw = (b - a) / n
        mag = 10 ** math.floor(math.log10(raw))
        step = next(s * mag for s in (1, 2, 5, 10) if s * mag >= raw)
        v = math.ceil(a / step) * step
        while v <= b + 1e-12:
            yield round(v, 10)
            v += step

    colours = {"MobileNetV2": "#1f77b4", "EfficientNet-B0": "#2ca02c", "ResNet-18 (plain)": "#9467bd",
               "bundled": "#ff7f0e"}
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
         f'font-size="11"><rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="13">hub models (test top-1, one seed) and '
         f'hand-designed baselines (mean &#177; sd over seeds), batch-1 latency</text>']
    for v in ticks(x0, x1):
        o.append(f'<line x1="{X(v):.1f}" y1="{T}" x2="{X(v):.1f}" y2="{H - B}" stroke="#eee"/>'
                 f'<text x="{X(v):.1f}" y="{H - B + 15}" text-anchor="middle">{v:g}</text>')
    for v in ticks(y0, y1):
        o.append(f'<line x1="{L}" y1="{Y(v):.1f}" x2="{W - R}" y2="{Y(v):.1f}" stroke="#eee"/>'
                 f'<text x="{L - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    o.append(f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="none" stroke="black"/>')
    o.append(f'<text x="{(L + W - R) / 2}" y="{H - 20}" text-anchor="middle">latency (ms), search frame</text>')
    o.append(f'<text x="18" y="{(T + H - B) / 2}" text-anchor="middle" '
             f'transform="rotate(-90 18 {(T + H - B) / 2})">test top-1 (%)</text>')
    for e in tiers:
        o.append(f'<line x1="{X(e):.1f}" y1="{T}" x2="{X(e):.1f}" y2="{H - B}" stroke="#888" '
                 f'stroke-dasharray="5,4"/><text x="{X(e) + 3:.1f}" y="{T + 12}" fill="#666">{e:g} ms</text>')
    front = [m for m in hub if m["front"]]
    if front:
        d = f'M{X(front[0]["lat"]):.1f},{Y(100 * front[0]["acc"]):.1f}'
        for a, b in zip(front, front[1:]):
            d += f' H{X(b["lat"]):.1f} V{Y(100 * b["acc"]):.1f}'
        d += f' H{X(x1):.1f}'
        o.append(f'<path d="{d}" fill="none" stroke="black" stroke-width="1.5"/>')
    for m in hub:
        x, y = X(m["lat"]), Y(100 * m["acc"])
        o.append(f'<path d="M{x:.1f},{y - 7:.1f} L{x + 7:.1f},{y:.1f} L{x:.1f},{y + 7:.1f} L{x - 7:.1f},{y:.1f} Z" '
                 f'fill="{"#d62728" if m["front"] else "#ccc"}" stroke="black"/>')
        right = x < W - R - 220  # the label to the right of the symbol, or to its left near the edge
        o.append(f'<text x="{x + 9 if right else x - 9:.1f}" y="{y - 6:.1f}" '
                 f'text-anchor="{"start" if right else "end"}">{m["name"]}</text>')
    for r in rows:
        x, y, c = X(r["lat"]), Y(100 * r["acc"]), colours.get(r["family"], "#333")
        if r["sd"] == r["sd"]:
            o.append(f'<line x1="{x:.1f}" y1="{Y(100 * (r["acc"] - r["sd"])):.1f}" x2="{x:.1f}" '
                     f'y2="{Y(100 * (r["acc"] + r["sd"])):.1f}" stroke="{c}"/>')
        o.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{c}" stroke="black" stroke-width="0.5"/>'
                 f'<text x="{x + 7:.1f}" y="{y + 12:.1f}" fill="{c}" font-size="10">{r["name"]}</text>')
    ly = T + 10
    for lab, c in [("hub model on the front", "#d62728"), ("hub model, dropped", "#ccc")]:
        o.append(f'<rect x="{W - R + 15}" y="{ly - 8}" width="10" height="10" fill="{c}" stroke="black"/>'
                 f'<text x="{W - R + 30}" y="{ly + 1}">{lab}</text>')
        ly += 18
    for lab, c in colours.items():
        o.append(f'<circle cx="{W - R + 20}" cy="{ly - 3}" r="4.5" fill="{c}"/>'
                 f'<text x="{W - R + 30}" y="{ly + 1}">{lab}</text>')
        ly += 18
    o.append("</svg>")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(o) + "\n")
    os.replace(tmp, path)


def report(args):
    hub = load_hub(args.hub)
    front = [m for m in hub if m["front"]]
    lines = read_lines(args.data_file)
    runs = [r for r in lines if r.get("kind", "train") == "train"]
    if not runs:
        sys.exit(f"baselines: no runs in {args.data_file}")
    hub_base = next((m["ref_base"] for m in hub if m["ref_base"]), None)
    hub_threads = {m["threads"] for m in hub if m["threads"]}
    notes = []
    # only measurements at the hub's thread count are in its frame: a ratio to the
    # reference moves with the threads (2 threads speed the baselines and the reference
    # network by different factors)
    lat_all = [r for r in lines if r.get("kind") == "latency"]
    lat_lines = [r for r in lat_all if not hub_threads or r["latency"].get("threads") in hub_threads]
    if len(lat_lines) < len(lat_all):
        notes.append(f"{len(lat_all) - len(lat_lines)} latency measurement(s) at other thread counts than the hub's "
                     f"({sorted(hub_threads)}) left out")
    by = {}
    for r in runs:
        by.setdefault(r["name"], []).append(r)
    rows = []
    for name, cfg in zoo():
        rs = sorted(by.get(name, []), key=lambda r: r["seed"])
        ls = [r["latency"] for r in lat_lines if r["name"] == name]
        if not rs or not ls:
            if rs or ls:
                notes.append(f"{name}: {len(rs)} training run(s), {len(ls)} latency measurement(s): left out")
            continue
        acc, sd = mean_sd([r["test_top1"] for r in rs])
        # latency in the hub's frame: the measured ratio x the hub's reference baseline
        lat, lat_sd = mean_sd([l["ratio"] * (hub_base or l["reference_baseline_ms"]) for l in ls])
        rows.append({"name": name, "family": rs[0]["family"], "config": cfg, "seeds": [r["seed"] for r in rs],
                     "accs": [r["test_top1"] for r in rs], "acc": acc, "sd": sd, "lat": lat, "lat_sd": lat_sd,
                     "params": rs[0]["params"], "macs": rs[0]["macs"], "in_space": rs[0].get("in_space_fmnist"),
                     "quick": any(r.get("quick_check") for r in rs + [l for l in lat_lines if l["name"] == name]),
                     "recipe": rs[0]["recipe"], "n_lat": len(ls)})
    if any(r["quick"] for r in rows):
        notes.append("QUICK-CHECK DATA (--epochs/--subset/--lat-duration): not the hub's recipe or timing, "
                     "the numbers mean nothing")
    ep = {m["epochs"] for m in hub}
    rec_ep = {int(r["recipe"][r["recipe"].index("--epochs") + 1]) for r in rows}
    if rec_ep and ep != rec_ep:
        notes.append(f"the hub was trained for {sorted(ep)} epochs, the baselines for {sorted(rec_ep)}")
    if not hub_base:
        notes.append("the hub records no reference baseline: baseline latencies use their own")

    print(f"## Hand-designed baselines against the hub ({args.hub}, {len(front)} models on the front)\n")
    print("| baseline | family | in space | params | MACs | test top-1 % (mean ± sd; seeds) | latency ms | "
          "hub model that beats it | latency ratio at equal accuracy | hub's pick: fastest at ≥ its accuracy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    n_dom = n_fast = n_unreached = n_bound = n_slow = 0
    for r in rows:
        beats = [m for m in front if m["acc"] > r["acc"] and m["lat"] <= r["lat"]]
        if beats:
            b = min(beats, key=lambda m: m["lat"])
            margin = 100 * (b["acc"] - r["acc"])
            noisy = r["sd"] == r["sd"] and b["acc"] - r["acc"] <= 2 * r["sd"]
            beat = f"{b['name']} ({100 * b['acc']:.2f}%, +{margin:.2f} pp{', within 2 sd' if noisy else ''})"
            n_dom += 1
        else:
            beat = "none"
        ms, how = front_latency_at(front, r["acc"])
        if how == "above":
            ratio = "front does not reach it"
            n_unreached += 1
        elif how == "below":
            ratio = f"≥ {r['lat'] / ms:.2f}x"
            n_fast += r["lat"] / ms >= 1.5
            n_bound += r["lat"] / ms < 1.5
        else:
            ratio = f"{r['lat'] / ms:.2f}x (front at {ms:.3f} ms)"
            n_fast += r["lat"] / ms >= 1.5
            n_slow += r["lat"] / ms < 1.5
        # what a user can actually take from the hub: its fastest model at least as accurate
        # (the interpolated front above is a line between models that may not exist)
        pick = min((m for m in hub if m["acc"] >= r["acc"]), key=lambda m: m["lat"], default=None)
        pick = (f"{pick['name']}: {r['lat'] / pick['lat']:.2f}x" if pick else "none as accurate")
        sd = f"{100 * r['sd']:.2f}" if r["sd"] == r["sd"] else "n/a"
        seeds = ", ".join(f"{100 * a:.2f}" for a in r["accs"])
        lsd = f" ± {r['lat_sd']:.3f}" if r["lat_sd"] == r["lat_sd"] else ""
        print(f"| {r['name']} | {r['family']} | {'yes' if r['in_space'] else 'no'} | {r['params']:,} | "
              f"{r['macs'] / 1e6:.2f}M | {100 * r['acc']:.2f} ± {sd} ({seeds}) | {r['lat']:.3f}{lsd} | {beat} | "
              f"{ratio} | {pick} |")
    print()
    print("Hub: " + "; ".join(f"{m['name']} {100 * m['acc']:.2f}% at {m['lat']:.3f} ms"
                              f"{'' if m['front'] else ' (dropped)'}" for m in hub) + ".")
    print("Latency ratio = baseline latency / the front's latency at the baseline's mean accuracy (linear between "
          "neighbouring front models; ≥: the fastest hub model is already more accurate). A hub model beats a "
          "baseline when it is more accurate (one seed) than the baseline's mean at no more latency. Hub's pick: "
          "baseline latency / latency of the fastest hub model at least as accurate (below 1: the hub's model is "
          f"slower). Latency: mean ± sd of {'/'.join(str(n) for n in sorted({r['n_lat'] for r in rows}))} "
          f"measurement(s) at {sorted(hub_threads) or '?'} thread(s).")
    for n in notes:
        print(f"\nNOTE: {n}")
    n_zoo = len(list(zoo()))
    if not rows:
        claim = "is not decided: no baseline is both trained and timed yet"
    elif n_dom < len(rows) or n_unreached or n_slow:
        claim = "does not hold"
    elif n_bound:
        claim = "is not decided (see the bounded ratios)"
    elif len(rows) < n_zoo:
        claim = f"holds so far, but only {len(rows)} of the {n_zoo} baselines are trained and timed"
    else:
        claim = "holds"
    more = []
    if n_unreached:
        more.append(f"{n_unreached} more accurate than every hub model")
    if n_bound:
        more.append(f"{n_bound} less accurate than the fastest hub model, which is less than 1.5x faster than "
                    f"them: there the ratio is only bounded")
    print(f"\n**Verdict:** the hub's front beats {n_dom} of {len(rows)} baselines and is ≥ 1.5x faster at equal "
          f"accuracy for {n_fast} of {len(rows)}{' (' + '; '.join(more) + ')' if more else ''}; "
          f"GPUNet's claim {claim} on this device.")

    tiers = []
    # summary.json beside the hub folder (gpunas-search/hub) or in it (a copied main job)
    summ = next((p for p in (os.path.join(os.path.dirname(os.path.abspath(args.hub)), "summary.json"),
                             os.path.join(args.hub, "summary.json")) if os.path.exists(p)), None)
    if summ:
        tiers = [t["max_latency_ms"] for t in json.load(open(summ)).get("tiers", []) if t.get("max_latency_ms")]
    points = {"hub": [{"name": m["name"], "test_top1": m["acc"], "latency_ms": m["lat"], "front": m["front"]}
                      for m in hub],
              # test_top1: the mean over seeds, under the name `gpunas hub plot --compare` reads
              "baselines": [{"name": r["name"], "family": r["family"], "test_top1": r["acc"], "test_top1_mean": r["acc"],
                             "test_top1_sd": r["sd"] if r["sd"] == r["sd"] else None, "seeds": r["seeds"],
                             "latency_ms": r["lat"], "latency_sd_ms": r["lat_sd"] if r["lat_sd"] == r["lat_sd"]
                             else None} for r in rows],
              "tier_edges_ms": tiers}
    text = "{\n" + ",\n".join(
        f' "{k}": ' + ("[\n" + ",\n".join("  " + json.dumps(x) for x in v) + "\n ]" if k != "tier_edges_ms"
                       else json.dumps(v)) for k, v in points.items()) + "\n}"
    print("\nPlot points (hub models and baselines, latency in the hub's frame):\n\n```json\n" + text + "\n```")
    if args.points:
        with open(args.points, "w") as f:
            f.write(text + "\n")
    if args.png and points["baselines"]:
        # the hub's own picture (cairo, `gpunas hub plot`), with the baselines on it; it also
        # prints, per baseline, the hub models that beat it (mean accuracy, as above)
        pf = args.points or args.png + ".points.json"
        if not args.points:
            with open(pf, "w") as f:
                f.write(text + "\n")
        r = subprocess.run([args.gpunas, "hub", "plot", args.hub, "--compare", pf, "--out", args.png],
                           capture_output=True, text=True)
        print("\n`gpunas hub plot` " + ("prints:\n\n" + "\n".join("    " + l for l in r.stdout.splitlines())
                                       if r.returncode == 0 else "failed: " + r.stderr.strip()))
    if args.svg:
        svg_plot(args.svg, hub, rows, tiers)
        print(f"\nplot: {args.svg}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpunas", default=os.path.join(ROOT, "build", "gpunas"))
    ap.add_argument("--work", default="/var/tmp/gpunas-baselines")
    ap.add_argument("--search", default=os.path.join(ROOT, "gpunas-search"),
                    help="the main-job search whose latency frame (threads, reference baseline) is used")
    ap.add_argument("--data-file", default=RUNS)
    ap.add_argument("--max-runs", type=int, default=0, help="stop after this many trainings (0: all)")
    ap.add_argument("--threads", type=int, default=0, help="training threads (0: gpunas's default)")
    ap.add_argument("--only", default="", help="comma-separated baseline names")
    ap.add_argument("--epochs", type=int, default=0, help="quick checks only: override the recipe's epochs")
    ap.add_argument("--subset", type=int, default=0, help="quick checks only: train on N images")
    ap.add_argument("--lat-duration", type=float, default=3.0, help="seconds of the timed phase (hub: 3)")
    ap.add_argument("--lat-repeats", type=int, default=2, help="latency measurements per baseline")
    ap.add_argument("--time-only", action="store_true", help="only the timing step (trainings need not be done)")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--hub", default=os.path.join(ROOT, "gpunas-search", "hub"))
    ap.add_argument("--svg", default="")
    ap.add_argument("--png", default="", help="the hub's own plot with the baselines (gpunas hub plot)")
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if args.report:
        report(args)
        return
    if (args.epochs or args.subset or args.lat_duration != 3.0) and \
            os.path.abspath(args.data_file) == os.path.abspath(RUNS):
        sys.exit("baselines: --epochs/--subset/--lat-duration are for quick checks: give --data-file elsewhere")
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.data_file)), exist_ok=True)
    only = {s for s in args.only.split(",") if s}
    names = [z for z in zoo() if not only or z[0] in only]
    if only - {z[0] for z in names}:
        sys.exit(f"baselines: unknown --only names: {sorted(only - {z[0] for z in names})}")
    if args.time_only:
        time_all(args, names)
        return
    todo = [(n, c, s) for s in SEEDS for n, c in names]
    done = done_runs(args.data_file)
    # every training is claimed with a lock file (WORK/locks), so instances started at
    # any time share the list; a killed instance's run is taken up from its checkpoint
    n = 0
    for name, cfg, seed in todo:
        if args.max_runs and n >= args.max_runs:
            break
        if (name, seed) in done_runs(args.data_file):
            continue
        with claim(args.work, f"{name}-seed{seed}") as mine:
            if not mine:
                continue
            if (name, seed) in done_runs(args.data_file):
                continue  # finished by another instance since the check above
            train(args, name, cfg, seed)
        n += 1
    left = sum(1 for t in todo if (t[0], t[2]) not in done_runs(args.data_file))
    print(f"baselines: {len(todo) - left} of {len(todo)} runs in {args.data_file}; {left} left")
    if left == 0:
        time_all(args, names)  # every training has ended: time (resumable), as the hub does
    elif left:
        print("baselines: timing waits until every training is done (or --time-only)")


if __name__ == "__main__":
    main()
