#!/usr/bin/python3
"""make_nvidia_ckpt.py -- checkpoints in the exact format of NVIDIA's released GPUNet files,
made with Debian's python3-torch, for tests/test_import.c.

  make_nvidia_ckpt.py OUTDIR

The networks are built by gpunet_ref.GPUNetRef, which adds every JSON layer to
`self.network = nn.Sequential()` under the name NVIDIA's GPUNet_Builder gives it
("head: 2", "stage: 1 layer3", " layer15"; "head:", "stage: 0 irb3", "tail:" in the distill
family), so model.state_dict() has NVIDIA's keys, num_batches_tracked included.  Weights are
PyTorch's default init with every BN given random affine parameters and running statistics
(so BN folding is exercised), num_batches_tracked set as after training.

Files (OUTDIR/...):
  gpunet-0.pth.tar   timm CheckpointSaver layout, as NVIDIA's non-P releases:
                     {epoch, arch, state_dict, optimizer, version, args (argparse.Namespace),
                      amp_scaler, state_dict_ema, metric}; zip format (torch >= 1.6 default)
  gpunet-d1.pth.tar  the same for the distill family (GPUNet-D1)
  fmnist-small.pth   a plain state dict (the P models' layout), legacy torch.save format,
                     keys with the "module." prefix DataParallel adds
  NAME.input.npy, NAME.logits.npy, NAME.logits-ema.npy   a fixed input [2, C, R, R] and
                     PyTorch's eval-mode logits with state_dict / state_dict_ema
  fp16.pth           gpunet-0's state_dict in float16 (plain dict); fp16.logits.npy are the
                     logits of the float16-rounded weights computed in float32
  bad-dtype.pth      fmnist-small with one conv weight stored as int32
  bad-shape.pth      fmnist-small with one BN vector one element short
  bad-extra.pth      fmnist-small plus a tensor the config does not have
  evil.pth           a pickle whose unpickling would run os.system (creates OUTDIR/PWNED)
  opcode.pth         a zip whose data.pkl calls os.system through the INST opcode
  truncated.pth.tar  the first 60% of gpunet-d1.pth.tar
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpunet_ref as G  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def build(config, seed):
    torch.manual_seed(seed)
    model = G.GPUNetRef(G.load_config(config))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
                m.num_batches_tracked.fill_(560430)
    return model.eval()


def ema_of(model, seed):
    """A state dict like timm's ModelEma's: the same keys, different values."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in model.state_dict().items():
        if v.is_floating_point() and not k.endswith("running_var"):
            v = v * 0.97 + 0.01 * torch.randn(v.shape, generator=g)
        sd[k] = v.clone()
    return type(model.state_dict())(sd)


def logits(model, sd, x):
    m = build_like(model)
    m.load_state_dict(sd, strict=True)
    with torch.no_grad():
        return m.eval()(x).numpy()


def build_like(model):
    return G.GPUNetRef(model.config)


def timm_checkpoint(model, ema, arch):
    opt = torch.optim.RMSprop(model.parameters(), lr=0.08, alpha=0.9, eps=0.001, momentum=0.9,
                              weight_decay=1e-5)
    args = argparse.Namespace(model=arch, lr=0.08, epochs=450, smoothing=0.1, amp=True, mean=None,
                              input_size=(3, model.resolution, model.resolution), opt="rmsproptf",
                              model_ema=True, model_ema_decay=0.9999, data_dir="/imagenet")
    return {"epoch": 449, "arch": arch, "state_dict": model.state_dict(),
            "optimizer": opt.state_dict(), "version": 2, "args": args,
            "amp_scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                           "growth_interval": 2000, "_growth_tracker": 17},
            "state_dict_ema": ema, "metric": 78.9}


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch '%s'" % self.marker,))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    p = lambda n: os.path.join(out, n)  # noqa: E731

    for name, cfg, arch, seed in (("gpunet-0", "configs/gpunet/gpunet-0.json", "gpunet_0", 10),
                                  ("gpunet-d1", "configs/gpunet/gpunet-d1.json", "gpunet_d1", 20)):
        model = build(os.path.join(SRC, cfg), seed)
        ema = ema_of(model, seed + 2)
        torch.manual_seed(seed + 3)
        x = torch.randn(2, 3, model.resolution, model.resolution)
        np.save(p(name + ".input.npy"), x.numpy())
        np.save(p(name + ".logits.npy"), logits(model, model.state_dict(), x))
        np.save(p(name + ".logits-ema.npy"), logits(model, ema, x))
        torch.save(timm_checkpoint(model, ema, arch), p(name + ".pth.tar"))
        if name == "gpunet-0":
            half = type(model.state_dict())(
                (k, v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items())
            torch.save(half, p("fp16.pth"))
            back = {k: v.float() if v.is_floating_point() else v for k, v in half.items()}
            np.save(p("fp16.logits.npy"), logits(model, back, x))

    model = build(os.path.join(SRC, "configs/fmnist-small.json"), 30)
    sd = model.state_dict()
    torch.manual_seed(33)
    x = torch.randn(2, 1, model.resolution, model.resolution)
    np.save(p("fmnist-small.input.npy"), x.numpy())
    np.save(p("fmnist-small.logits.npy"), logits(model, sd, x))
    wrapped = type(sd)(("module." + k, v) for k, v in sd.items())
    torch.save(wrapped, p("fmnist-small.pth"), _use_new_zipfile_serialization=False)

    first_conv = next(k for k in sd if k.endswith("net.0.weight"))
    first_bn = next(k for k in sd if k.endswith("running_mean"))
    bad = type(sd)(sd)
    bad[first_conv] = (sd[first_conv] * 100).to(torch.int32)
    torch.save(bad, p("bad-dtype.pth"))
    bad = type(sd)(sd)
    bad[first_bn] = sd[first_bn][:-1].clone()
    torch.save(bad, p("bad-shape.pth"))
    bad = type(sd)(sd)
    bad["network.extra.weight"] = torch.zeros(3)
    torch.save(bad, p("bad-extra.pth"))
    torch.save({"state_dict": sd, "hook": Evil(p("PWNED"))}, p("evil.pth"))

    # a zip in torch's layout whose pickle uses INST (the opcode that calls a class)
    import zipfile
    with zipfile.ZipFile(p("opcode.pth"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("opcode/data.pkl", b"\x80\x02(ios\nsystem\nX\x04\x00\x00\x00true.")
        z.writestr("opcode/version", b"3\n")

    with open(p("gpunet-d1.pth.tar"), "rb") as f:
        data = f.read()
    with open(p("truncated.pth.tar"), "wb") as f:
        f.write(data[:len(data) * 6 // 10])
    print("wrote NVIDIA-format checkpoints to %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
