#!/usr/bin/python3
"""check_ref.py -- self-test of gpunet_ref.py (run with /usr/bin/python3).

 1. Builds each released config at its native resolution, counts parameters
    (sum of p.numel()) against the published counts, and infers every layer's output
    shape with a forward pass on the 'meta' device (no real compute).
 2. Runs the command-line tool end to end at low resolution (init-only, eval and train
    forward/backward), checks the output file, re-computes in-process, checks parameter
    gradients against central finite differences (float64), and checks the
    deterministic drop-path / dropout masks and the stride-2 fused_irb padding quirk.

Usage: check_ref.py [--configs DIR] [--tmp DIR]      exit status 0 = all checks passed
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gpunet_ref as G  # noqa: E402

EXPECTED = {
    "0.65ms.json": 11885432,
    "0.85ms.json": 12704192,
    "1.75ms.json": 25798704,
    "0.5ms-D.json": 22815080,
    "0.8ms-D.json": 39905672,
    "1.25ms-D.json": 10589859,
    "2.25ms-D.json": 19036728,
}

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("  FAIL:", what)
    return cond


def meta_shapes(model, res, in_ch=3):
    m = model.to("meta").eval()
    acts = []
    with torch.no_grad():
        out = m(torch.empty(1, in_ch, res, res, device="meta"), acts)
    return [(i, tuple(t.shape)) for i, t in acts], tuple(out.shape)


def part1(cfgdir):
    print("== 1. released configs: parameter counts and meta-device shape inference")
    for name, want in EXPECTED.items():
        cfg = G.load_config(os.path.join(cfgdir, name))
        model = G.GPUNetRef(cfg)
        n = G.param_count(model)
        res = model.resolution
        shapes, out = meta_shapes(model, res)
        feat = shapes[-2][1]  # input of the tail
        ok = check(n == want, "%s: %d parameters, expected %d" % (name, n, want))
        check(out == (1, cfg[-1]["num_classes"]), "%s: output shape %s" % (name, out))
        print("  %-14s distill=%-5s res=%3d params=%9d expected=%9d %s  pre-tail %s  out %s" % (
            name, model.distill, res, n, want, "ok" if ok else "MISMATCH", list(feat), list(out)))

    # The released stride-2 fused_irb padding quirk, GPUNet-0 at 320 (gpunet.md 2.3).
    cfg = G.load_config(os.path.join(cfgdir, "0.65ms.json"))
    s_q = dict(meta_shapes(G.GPUNetRef(cfg), 320)[0])
    s_f = dict(meta_shapes(G.GPUNetRef(cfg, same_pad_fix=True), 320)[0])
    q = [s_q[1][2], s_q[4][2], s_q[6][2], s_q[13][2]]
    f = [s_f[1][2], s_f[4][2], s_f[6][2], s_f[13][2]]
    print("  0.65ms @320 spatial after head/L4/L6/L13: released %s, --same-pad-fix %s" % (q, f))
    check(q == [160, 79, 39, 10], "quirk spatial sizes %s" % q)
    check(f == [160, 80, 40, 10], "same-pad-fix spatial sizes %s" % f)


# A tiny config per family covering every module type (and SE, residuals, stride 2).
TINY_STD = [
    {"layer_type": "data", "img_resolution": 16, "distill": False},
    {"layer_type": "head", "num_in_channels": 3, "num_out_channels": 8},
    {"layer_type": "conv", "num_in_channels": 8, "num_out_channels": 8, "stride": 1,
     "kernel_size": 3, "act": "relu", "stage": 1},
    {"layer_type": "fused_irb", "num_in_channels": 8, "num_out_channels": 8, "stride": 2,
     "expansion": 2, "kernel_size": 3, "act": "swish", "use_se": True, "stage": 2},
    {"layer_type": "fused_irb", "num_in_channels": 8, "num_out_channels": 8, "stride": 1,
     "expansion": 2, "kernel_size": 3, "act": "relu", "use_se": False, "stage": 2},
    {"layer_type": "irb", "num_in_channels": 8, "num_out_channels": 16, "stride": 2,
     "expansion": 2.5, "kernel_size": 5, "act": "swish", "use_se": False, "stage": 3},
    {"layer_type": "irb", "num_in_channels": 16, "num_out_channels": 16, "stride": 1,
     "expansion": 2, "kernel_size": 3, "act": "relu", "use_se": True, "stage": 3},
    {"layer_type": "tail", "num_in_channels": 16, "num_out_channels": 24, "num_classes": 5},
]
TINY_D = [
    {"layer_type": "data", "img_resolution": 16, "distill": True},
    {"layer_type": "head_large", "num_in_channels": 3, "num_out_channels": 8, "stage": 0},
    {"layer_type": "irb", "num_in_channels": 8, "num_out_channels": 8, "stride": 1,
     "expansion": 2, "kernel_size": 3, "groups": 1, "stage": 0},
    {"layer_type": "fused_irb", "num_in_channels": 8, "num_out_channels": 8, "stride": 1,
     "expansion": 2, "kernel_size": 3, "groups": 1, "stage": 1},
    {"layer_type": "irb", "num_in_channels": 8, "num_out_channels": 12, "stride": 2,
     "expansion": 3, "kernel_size": 5, "groups": 1, "stage": 1},
    {"layer_type": "tail", "num_in_channels": 12, "num_out_channels": 16, "num_classes": 5},
]


def run_cli(args):
    cmd = [sys.executable, os.path.join(HERE, "gpunet_ref.py")] + args
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        print(r.stdout)
    check(r.returncode == 0, "command failed: %s" % " ".join(args))
    return r.stdout.strip()


def cli_round(tmp, cfgpath, res, classes, batch=4, seed=1, train=False, extra=()):
    """init-only + forward/backward via the CLI; returns (weights, inputs, outputs)."""
    tag = os.path.basename(cfgpath).replace(".json", "") + ("-train" if train else "-eval")
    w = os.path.join(tmp, tag + ".w.safetensors")
    i = os.path.join(tmp, tag + ".in.safetensors")
    o = os.path.join(tmp, tag + ".out.safetensors")
    run_cli([cfgpath, "--init-only", "--seed", str(seed), "--res", str(res), "--classes",
             str(classes), "--out", w])
    rng = np.random.RandomState(seed)
    x = rng.standard_normal((batch, 3, res, res)).astype(np.float32)
    y = rng.randint(0, classes, size=batch).astype(np.float32)
    G.st_write(i, [("input", x), ("labels", y)])
    args = [cfgpath, "--res", str(res), "--classes", str(classes), "--weights", w, "--input", i,
            "--out", o] + list(extra)
    if train:
        args.append("--train")
    msg = run_cli(args)
    return G.st_read(w)[0], (x, y), G.st_read(o)[0], msg


def part2(tmp, cfgdir):
    print("== 2. command line at low resolution (forward + backward)")
    for name, res in (("0.65ms.json", 64), ("1.75ms.json", 64), ("1.25ms-D.json", 64),
                      ("2.25ms-D.json", 64)):
        cfgpath = os.path.join(cfgdir, name)
        for train in (False, True):
            extra = ("--no-dropout", "--no-droppath")
            w, (x, y), out, msg = cli_round(tmp, cfgpath, res, 10, train=train, extra=extra)
            cfg = G.load_config(cfgpath)
            model = G.GPUNetRef(cfg, classes=10, dropout=0.0, drop_path_base=0.0)
            names = [k for k, _ in model.named_parameters()]
            state = [k for k, _ in G.state_items(model)]
            check(sorted(w) == sorted(state), "%s: init-only names" % name)
            check(out["logits"].shape == (4, 10), "%s: logits shape" % name)
            check(out["loss"].shape == (), "%s: loss is a scalar" % name)
            check(out["grad.input"].shape == x.shape, "%s: grad.input shape" % name)
            gnames = sorted(k[5:] for k in out if k.startswith("grad.") and k != "grad.input")
            check(gnames == sorted(names), "%s: one gradient per parameter" % name)
            loss = float(out["loss"])
            check(math.isfinite(loss), "%s: finite loss" % name)
            # in-process recomputation with the same weights gives the same numbers
            G.load_weights(model, os.path.join(tmp, name.replace(".json", "") +
                                               ("-train" if train else "-eval") + ".w.safetensors"))
            model.train(train)
            xt = torch.from_numpy(x).requires_grad_(True)
            lo = F.cross_entropy(model(xt), torch.from_numpy(y).long())
            lo.backward()
            gmax = max(float(np.max(np.abs(out["grad." + k] - p.grad.numpy())))
                       for k, p in model.named_parameters())
            check(abs(lo.item() - loss) < 1e-5 and gmax < 1e-5,
                  "%s: in-process recomputation differs (loss %g vs %g, grad %g)" % (
                      name, lo.item(), loss, gmax))
            rs = [k for k in out if k.endswith("running_mean") or k.endswith("running_var")]
            nbn = sum(1 for k in state if k.endswith("running_mean")) * 2
            if train:
                check(len(rs) == nbn, "%s: running stats written (%d of %d)" % (name, len(rs), nbn))
                moved = max(float(np.max(np.abs(out[k] - w[k]))) for k in rs)
                check(moved > 0, "%s: running stats updated" % name)
                sd = model.state_dict()
                rmax = max(float(np.max(np.abs(out[k] - sd[k].numpy()))) for k in rs)
                check(rmax < 1e-5, "%s: running stats reproducible (%g)" % (name, rmax))
            else:
                check(len(rs) == 0, "%s: no running stats in eval mode" % name)
            gn = math.sqrt(sum(float(np.sum(out[k].astype(np.float64) ** 2)) for k in out
                               if k.startswith("grad.")))
            print("  %-14s res=%d %-5s %s | |grad|=%.4g, recompute diff %.2g" % (
                name, res, "train" if train else "eval", msg, gn, gmax))

    # Finite-difference check of parameter and input gradients, float64, tiny configs.
    print("== 3. finite-difference gradient check (float64, tiny configs, all module types)")
    for tname, cfg in (("tiny-standard", TINY_STD), ("tiny-distill", TINY_D)):
        cpath = os.path.join(tmp, tname + ".json")
        with open(cpath, "w") as f:
            json.dump(cfg, f)
        for train in (False, True):
            w, (x, y), out, _ = cli_round(tmp, cpath, 16, 5, batch=3, seed=7, train=train,
                                          extra=("--double", "--no-dropout", "--no-droppath"))
            model = G.GPUNetRef(cfg, dropout=0.0, drop_path_base=0.0).double()
            wfile = os.path.join(tmp, tname + ("-train" if train else "-eval") + ".w.safetensors")
            G.load_weights(model, wfile)
            # randomise BN affine/running stats a little so eval-mode BN is non-trivial
            rng = np.random.RandomState(3)
            with torch.no_grad():
                for k, t in model.state_dict().items():
                    if "running_var" in k:
                        t.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, t.shape)))
                    elif "running_mean" in k or (k.endswith(".bias") and t.ndim == 1):
                        t.copy_(torch.from_numpy(rng.uniform(-0.3, 0.3, t.shape)))
            wpath = os.path.join(tmp, tname + ".w2.safetensors")
            G.st_write(wpath, [(k, v.numpy()) for k, v in G.state_items(model)])
            ipath = os.path.join(tmp, tname + ".in.safetensors")
            G.st_write(ipath, [("input", x), ("labels", y)])
            opath = os.path.join(tmp, tname + ".out.safetensors")
            args = [cpath, "--weights", wpath, "--input", ipath, "--out", opath, "--double",
                    "--no-dropout", "--no-droppath"]
            run_cli(args + (["--train"] if train else []))
            out = G.st_read(opath)[0]
            model.train(train)
            xt = torch.from_numpy(x.astype(np.float64))
            yt = torch.from_numpy(y).long()
            params = dict(model.named_parameters())

            def loss_fn():
                with torch.no_grad():
                    return F.cross_entropy(model(xt), yt).item()

            def fd_err(flat, j, g):
                """Relative error of g against central differences.  Two step sizes, best
                taken: a ReLU input within ~eps of 0 (seen at 2.6e-6 here) bends a single
                difference; a wrong gradient disagrees at both."""
                best = math.inf
                old = flat[j].item()
                for eps in (1e-6, 1e-7):  # float64
                    flat[j] = old + eps
                    lp = loss_fn()
                    flat[j] = old - eps
                    lm = loss_fn()
                    flat[j] = old
                    fd = (lp - lm) / (2 * eps)
                    best = min(best, abs(fd - g) / max(1e-3, abs(fd) + abs(g)))
                return best

            worst = 0.0
            n_checked = 0
            for k, p in params.items():
                g = out["grad." + k].reshape(-1)
                flat = p.data.view(-1)
                for j in rng.choice(flat.numel(), size=min(3, flat.numel()), replace=False):
                    err = fd_err(flat, j, float(g[j]))
                    worst = max(worst, err)
                    n_checked += 1
                    if err > 1e-4 and os.environ.get("CHECK_REF_VERBOSE"):
                        print("    %s[%d]: grad %.9g rel err %.3g" % (k, j, float(g[j]), err))
            # input gradient
            gi = out["grad.input"].reshape(-1)
            xf = xt.view(-1)
            for j in rng.choice(xf.numel(), size=10, replace=False):
                worst = max(worst, fd_err(xf, j, float(gi[j])))
                n_checked += 1
            # (F32 output of a float64 run: ~1e-7 relative rounding on top)
            check(worst < 1e-4, "%s %s: finite differences disagree (rel %g)" % (
                tname, "train" if train else "eval", worst))
            print("  %-14s %-5s %d gradient entries vs central differences: worst rel err %.2e" % (
                tname, "train" if train else "eval", n_checked, worst))

    # Deterministic drop-path / dropout masks.
    print("== 4. deterministic drop-path / dropout masks and padding quirk")
    cpath = os.path.join(tmp, "tiny-standard.json")
    wpath = os.path.join(tmp, "tiny-standard.w2.safetensors")
    rng = np.random.RandomState(5)
    x = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    y = np.array([0, 1, 4], np.float32)
    model = G.GPUNetRef(TINY_STD)
    res_layers = [i for i, m in model.blocks() if isinstance(m, G.Block) and m.residual]
    masks = [("mask.layers.%d.drop_path" % i, np.array([1, 0, 1], np.float32)) for i in res_layers]
    masks.append(("mask.layers.7.dropout", (rng.uniform(size=(3, 24)) > 0.2).astype(np.float32)))
    ipath = os.path.join(tmp, "mask.in.safetensors")
    G.st_write(ipath, [("input", x), ("labels", y)] + masks)
    outs = []
    for k in range(2):
        opath = os.path.join(tmp, "mask%d.out.safetensors" % k)
        run_cli([cpath, "--weights", wpath, "--input", ipath, "--out", opath, "--train",
                 "--dump-activations", "--seed", str(k)])
        outs.append(G.st_read(opath)[0])
    same = all(np.array_equal(outs[0][k], outs[1][k]) for k in outs[0])
    check(same, "masked training runs with different seeds differ")
    a = outs[0]
    # sample 1 has its residual branch dropped: the block output equals its input
    i = res_layers[0]
    passthru = np.array_equal(a["act.layers.%d" % i][1], a["act.layers.%d" % (i - 1)][1])
    check(passthru, "drop-path mask 0 should pass the input through")
    # sample 0 keeps the branch, scaled by 1/(1-rate): differs from its input
    check(not np.array_equal(a["act.layers.%d" % i][0], a["act.layers.%d" % (i - 1)][0]),
          "drop-path mask 1 should keep the branch")
    print("  residual layers %s: masked runs identical across seeds: %s; dropped sample "
          "passes input through: %s" % (res_layers, same, passthru))

    # padding quirk visible in the dumped activations at low resolution (0.65ms @64)
    cfgpath = os.path.join(cfgdir, "0.65ms.json")
    _, _, out, _ = cli_round(tmp, cfgpath, 64, 10, batch=2, extra=("--dump-activations",))
    sp = [out["act.layers.%d" % i].shape[2] for i in (1, 4, 6, 9, 12)]
    _, _, out2, _ = cli_round(tmp, cfgpath, 64, 10, batch=2,
                              extra=("--dump-activations", "--same-pad-fix"))
    sp2 = [out2["act.layers.%d" % i].shape[2] for i in (1, 4, 6, 9, 12)]
    check(sp == [32, 15, 7, 4, 2], "0.65ms @64 spatial sizes %s" % sp)
    check(sp2 == [32, 16, 8, 4, 2], "0.65ms @64 --same-pad-fix spatial sizes %s" % sp2)
    print("  0.65ms @64 spatial after layers 1/4/6/9/12: released %s, --same-pad-fix %s" % (sp, sp2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default=os.path.normpath(
        os.path.join(HERE, "..", "..", "..", "shared", "gpunet-configs")))
    ap.add_argument("--tmp")
    a = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        part1(a.configs)
        part2(tmp, a.configs)
    print("== %s (%d failures)" % ("ALL CHECKS PASSED" if not FAILS else "FAILED", len(FAILS)))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
