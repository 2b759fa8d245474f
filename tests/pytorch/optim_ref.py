#!/usr/bin/python3
"""optim_ref.py -- PyTorch references for gpunas's optimizers, LR schedules, EMA and
distillation loss (tests/test_train_optim.c).

Usage:  optim_ref.py IN1.safetensors OUT1.safetensors [IN2 OUT2 ...]
Each input file's metadata "mode" selects the reference (one process for many cases,
because importing torch costs seconds).  Run with Debian's /usr/bin/python3 (torch
1.13 CPU + numpy); safetensors I/O is shared with gpunet_ref.py.

mode "optim": tensors params [n], grads [k, n], lrs [k]; metadata kind (sgd |
  rmsprop-tf | adamw), momentum, nesterov, alpha, eps, beta1, beta2, weight_decay,
  nd_begin, nd_end (the no-decay range).  The flat array is split into three tensors
  A = [0, nd_begin), B = [nd_begin, nd_end), C = [nd_end, n); B goes in a param group
  with weight_decay 0 (what timm's param_groups_weight_decay does for BN/bias).  Runs
  k steps with the group lr set to lrs[i] before step i.
    sgd:        torch.optim.SGD(momentum, nesterov, dampening 0)
    adamw:      torch.optim.AdamW(betas, eps)
    rmsprop-tf: timm's RMSpropTF (timm is not packaged in Debian): the class below
                restates its step() (decoupled_decay=False, lr_in_momentum=True,
                centered=False) line by line.
  Output: params [n] and the state vectors concatenated over A, B, C under the names
  the C optimizer uses (momentum_buffer, square_avg, exp_avg, exp_avg_sq).

mode "sched": metadata kind (cosine | step), lr, min_lr, warmup_epochs, warmup_lr,
  decay_epochs, gamma, epochs, steps_per_epoch, per_step.  Output lrs [epochs*steps].
    cosine: torch SequentialLR(LinearLR(warmup_lr/lr -> 1), CosineAnnealingLR(eta_min))
            stepped per step (per_step) or per epoch (repeated over the epoch's steps);
            warmup_epochs * steps (or epochs) must be an integer.
    step:   timm StepLRScheduler's formula (warm-up from warmup_lr_init over
            warmup_t, then lr * gamma ** (t // decay_t)); with warmup 0 and integer
            decay_epochs also torch StepLR, which must agree.

mode "ema": tensors init [n], values [k, n]; metadata decay.  timm ModelEmaV2.update
  (ema = decay * ema + (1 - decay) * model) on a module holding one parameter and one
  buffer.  Output shadow [n].

mode "kd": tensors z [n, K], t [n, K], labels [n]; metadata smoothing, alpha, temp.
  float64 autograd of
    (1-a) * F.cross_entropy(z, y, label_smoothing=eps)
    + a * T^2 * mean_rows(sum_k -softmax(t/T)_k * log_softmax(z/T)_k)
  Output loss [] and dz [n, K].
"""
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpunet_ref import st_read, st_write  # noqa: E402


class RMSpropTF(torch.optim.Optimizer):
    """timm.optim.RMSpropTF (decoupled_decay=False, lr_in_momentum=True, not centered)."""

    def __init__(self, params, lr=1e-2, alpha=0.9, eps=1e-10, weight_decay=0, momentum=0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["square_avg"] = torch.ones_like(p)  # PyTorch inits to zero
                    if group["momentum"] > 0:
                        state["momentum_buffer"] = torch.zeros_like(p)
                square_avg = state["square_avg"]
                one_minus_alpha = 1.0 - group["alpha"]
                state["step"] += 1
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])
                square_avg.add_(grad.pow(2) - square_avg, alpha=one_minus_alpha)
                avg = square_avg.add(group["eps"]).sqrt_()  # eps inside the sqrt
                if group["momentum"] > 0:
                    buf = state["momentum_buffer"]
                    buf.mul_(group["momentum"]).addcdiv_(grad, avg, value=group["lr"])
                    p.add_(-buf)
                else:
                    p.addcdiv_(grad, avg, value=-group["lr"])


def fmeta(meta, key):
    return float(meta[key])


def run_optim(t, meta):
    params, grads, lrs = t["params"], t["grads"], t["lrs"]
    n = params.shape[0]
    b, e = int(meta["nd_begin"]), int(meta["nd_end"])
    parts = [(0, b), (b, e), (e, n)]
    ps = [torch.nn.Parameter(torch.tensor(params[s:f].copy())) for s, f in parts]
    wd = fmeta(meta, "weight_decay")
    groups = [{"params": [ps[0], ps[2]], "weight_decay": wd}, {"params": [ps[1]], "weight_decay": 0.0}]
    kind = meta["kind"]
    mom = fmeta(meta, "momentum")
    if kind == "sgd":
        opt = torch.optim.SGD(groups, lr=0.1, momentum=mom, nesterov=meta["nesterov"] == "1", dampening=0)
        names = ["momentum_buffer"] if mom > 0 else []
    elif kind == "adamw":
        opt = torch.optim.AdamW(groups, lr=0.1, betas=(fmeta(meta, "beta1"), fmeta(meta, "beta2")),
                                eps=fmeta(meta, "eps"))
        names = ["exp_avg", "exp_avg_sq"]
    elif kind == "rmsprop-tf":
        opt = RMSpropTF(groups, lr=0.1, alpha=fmeta(meta, "alpha"), eps=fmeta(meta, "eps"), momentum=mom)
        names = ["square_avg"] + (["momentum_buffer"] if mom > 0 else [])
    else:
        raise ValueError("unknown optimizer " + kind)
    for i in range(lrs.shape[0]):
        for g in opt.param_groups:
            g["lr"] = float(lrs[i])
        for (s, f), p in zip(parts, ps):
            p.grad = torch.tensor(grads[i, s:f].copy())
        opt.step()
    out = [("params", np.concatenate([p.detach().numpy() for p in ps]))]
    for nm in names:
        out.append((nm, np.concatenate([opt.state[p][nm].numpy() for p in ps])))
    return out


def run_sched(meta):
    kind = meta["kind"]
    lr, min_lr = fmeta(meta, "lr"), fmeta(meta, "min_lr")
    W, wlr = fmeta(meta, "warmup_epochs"), fmeta(meta, "warmup_lr")
    E, S = int(meta["epochs"]), int(meta["steps_per_epoch"])
    per_step = meta["per_step"] == "1"
    out = []
    if kind == "cosine":
        unit = S if per_step else 1
        total, wsteps = E * unit, int(round(W * unit))
        assert abs(wsteps - W * unit) < 1e-9, "warm-up must be a whole number of scheduler steps"
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=lr)
        if wsteps > 0:
            sch = torch.optim.lr_scheduler.SequentialLR(
                opt, [torch.optim.lr_scheduler.LinearLR(opt, start_factor=wlr / lr, end_factor=1.0,
                                                        total_iters=wsteps),
                      torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - wsteps, eta_min=min_lr)],
                milestones=[wsteps])
        else:
            sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=min_lr)
        vals = []
        for _ in range(total):
            vals.append(opt.param_groups[0]["lr"])
            opt.step()
            sch.step()
        out = vals if per_step else [v for v in vals for _ in range(S)]
    elif kind == "step":
        dec, gamma = fmeta(meta, "decay_epochs"), fmeta(meta, "gamma")
        for e in range(E):
            for s in range(S):
                t = e + s / S if per_step else float(e)
                if W > 0 and t < W:  # timm Scheduler warm-up
                    out.append(wlr + t * (lr - wlr) / W)
                else:  # timm StepLRScheduler._get_lr
                    out.append(lr * (gamma ** (t // dec)))
        if W == 0 and not per_step and dec == int(dec):
            p = torch.nn.Parameter(torch.zeros(1))
            opt = torch.optim.SGD([p], lr=lr)
            sch = torch.optim.lr_scheduler.StepLR(opt, step_size=int(dec), gamma=gamma)
            for e in range(E):
                v = opt.param_groups[0]["lr"]
                assert abs(v - out[e * S]) <= 1e-12 + 1e-9 * abs(v), (e, v, out[e * S])
                opt.step()
                sch.step()
    else:
        raise ValueError("unknown schedule " + kind)
    return [("lrs", np.array(out, dtype=np.float64))]


class _Holder(nn.Module):
    def __init__(self, n):
        super().__init__()
        h = n // 2
        self.w = nn.Parameter(torch.zeros(h))
        self.register_buffer("running", torch.zeros(n - h))


def run_ema(t, meta):
    init, values = t["init"], t["values"]
    n = init.shape[0]
    h = n // 2
    model, ema = _Holder(n), _Holder(n)
    with torch.no_grad():
        ema.w.copy_(torch.tensor(init[:h].copy()))
        ema.running.copy_(torch.tensor(init[h:].copy()))
    decay = fmeta(meta, "decay")
    for i in range(values.shape[0]):
        with torch.no_grad():
            model.w.copy_(torch.tensor(values[i, :h].copy()))
            model.running.copy_(torch.tensor(values[i, h:].copy()))
            # timm ModelEmaV2._update with update_fn = decay * e + (1 - decay) * m
            for ema_v, model_v in zip(ema.state_dict().values(), model.state_dict().values()):
                ema_v.copy_(decay * ema_v + (1.0 - decay) * model_v)
    return [("shadow", torch.cat([ema.w.detach(), ema.running]).numpy())]


def run_kd(t, meta):
    z = torch.tensor(t["z"].astype(np.float64), requires_grad=True)
    tt = torch.tensor(t["t"].astype(np.float64))
    y = torch.tensor(t["labels"].astype(np.int64))
    eps, a, T = fmeta(meta, "smoothing"), fmeta(meta, "alpha"), fmeta(meta, "temp")
    ce = F.cross_entropy(z, y, label_smoothing=eps)
    sce = torch.sum(-F.softmax(tt / T, dim=1) * F.log_softmax(z / T, dim=1), dim=1).mean()
    loss = (1 - a) * ce + a * T * T * sce
    loss.backward()
    return [("loss", np.array(loss.item())), ("dz", z.grad.numpy())]


def main(argv):
    torch.set_num_threads(1)
    # SequentialLR calls step(0) at the milestone (closed form; torch warns about it)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch.optim.lr_scheduler")
    if len(argv) < 2 or len(argv) % 2:
        print("usage: optim_ref.py IN OUT [IN OUT ...]", file=sys.stderr)
        return 2
    for i in range(0, len(argv), 2):
        t, meta = st_read(argv[i])
        mode = meta.get("mode")
        if mode == "optim":
            out = run_optim(t, meta)
        elif mode == "sched":
            out = run_sched(meta)
        elif mode == "ema":
            out = run_ema(t, meta)
        elif mode == "kd":
            out = run_kd(t, meta)
        else:
            print("%s: unknown mode %r" % (argv[i], mode), file=sys.stderr)
            return 1
        st_write(argv[i + 1], out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
