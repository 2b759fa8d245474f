#!/usr/bin/python3
"""gpunet_ref.py -- PyTorch reference of the released GPUNet builder, for cross-checks.

Run with Debian's /usr/bin/python3 (torch 1.13 CPU + numpy).  Needs no other package:
safetensors files are read and written with json + struct + numpy (see st_read/st_write).

Semantics follow shared/docs/gpunet.md section 2 (NVIDIA DeepLearningExamples
PyTorch/Classification/GPUNet/models/gpunet_{builder,modules}.py):

  standard family ("distill": false), BN eps 1e-3 everywhere
    head      Prologue        net.0 Conv3x3 s2 p1 | net.1 BN | net.2 act (default swish=SiLU)
    conv      ConvBnAct       conv (pad ((s-1)+(k-1))//2) | bn1 | act1          (no residual)
    irb       InvertedResidual conv_pw 1x1 | bn1 | act | conv_dw kxk dw (pad ((s-1)+(k-1))//2)
                              | bn2 | act | [se] | conv_pwl 1x1 | bn3  (+x iff in==out, s==1)
                              mid = make_divisible(in*exp), se rd = round(mid*(0.25/exp))
    fused_irb EdgeResidual    conv_exp kxk s (pad (k-1)//2 if s==1, **0 if s==2**: the
                              released "same" padding quirk; --same-pad-fix gives (k-1)//2)
                              | bn1 | act | [se] | conv_pwl 1x1 | bn2   (+x iff in==out, s==1)
    tail      Epilogue        net.0 Conv1x1 | net.1 BN | net.2 ReLU | net.3 avgpool |
                              net.4 flatten | net.5 Dropout(0.2) | net.6 Linear
    SE        se.conv_reduce (1x1, bias) -> act of the block -> se.conv_expand (1x1, bias)
              -> sigmoid, applied to the spatial mean; multiplies the input.
    drop path (training only) on residual blocks, rate 0.2 * I / (len(config)-1), I = JSON
              index; ConvBnAct never has a residual in the released builder.

  distill family ("distill": true)
    head       PrologueD      net.0 Conv3x3 s2 p1 | net.1 BN(1e-5) | net.2 ReLU
    head_large PrologueLargeD net.0,1,2 as above, then net.3/net.4/net.5 and net.6/net.7/
                              net.8 = Conv3x3 s1 p1 | BN(1e-5) | ReLU
    irb        Inverted_Residual_Block  body.0 Conv1x1 (groups g) | body.1 BN | body.2 ReLU |
                              body.3 dw kxk (pad k//2, stride s) | body.4 BN | body.5 ReLU |
                              body.6 Conv1x1 (groups g) | body.7 BN   (BN eps 1e-5,
                              mid = in*exp exactly, +x iff in==out and s==1, never SE)
    fused_irb  Fused_IRB      body.0 Conv kxk (pad k//2, stride s) | body.1 BN(1e-3) | body.2
                              ReLU | body.3 Conv1x1 | body.4 BN(1e-3)   (+x iff in==out, s==1)
    tail       EpilogueD      net.0 Conv1x1(in->1152) | net.1 BN(1e-5) | net.2 ReLU | net.3
                              avgpool | net.4 Conv1x1(1152->out, no bias) | net.5 ReLU |
                              net.6 flatten | net.7 Dropout(0.2) | net.8 Linear
    drop path: none (the released builder never sets drop_connect_rate for this family).

TENSOR NAMING (shared with the C side)
  The model is built the way NVIDIA's GPUNet_Builder builds it: every JSON layer is
  added with add_module(NAME, block) to `self.network = nn.Sequential()`, NAME made by
  the builder's own rule (nvidia_module_name below; written here from
  models/gpunet_builder.py independently of gpunas's C code), so this model's
  state_dict() keys ARE NVIDIA's keys:
      network.head: 2.net.0.weight            head conv (standard family; JSON entry I
      network.head: 2.net.1.{weight,bias,running_mean,running_var,num_batches_tracked}
      network.stage: 1 layer3.conv.weight     is counted I+1: data 1, head 2, ...)
      network.stage: 4 layer10.conv_pw.weight ... conv_dw, conv_pwl, bn1..3, se.*  (irb)
      network.stage: 2 layer5.conv_exp.weight ... bn1, [se.*], conv_pwl, bn2    (fused_irb)
      network. layer15.net.6.{weight,bias}    tail Linear (note the leading space)
      distill: network.head:.net.*, network.stage: 0 irb3.body.{0,3,6}.weight,
               network.stage: 0 irb3.body.{1,4,7}.*, network.tail:.net.{0,4}.weight,
               network.tail:.net.1.*, network.tail:.net.8.{weight,bias}
  num_batches_tracked (int64 scalar per BN) is written and read like every other entry
  (as I64), so the files are complete state dicts.  Shapes are PyTorch's: conv [out,
  in/groups, k, k], Linear [classes, features], BN/bias vectors [C].
  Masks and activations below are still keyed by the JSON index I ("mask.layers.{I}").

COMMAND LINE
  gpunet_ref.py CONFIG.json --init-only --seed S --out W.safetensors [--res R]
        [--classes N] [--in-ch C] [--same-pad-fix]
      PyTorch default initialisation (torch.manual_seed(S)); writes every parameter and
      BN running statistic.

  gpunet_ref.py CONFIG.json --res R --classes N --weights W.safetensors
        --input IN.safetensors --out OUT.safetensors [--train] [--labels SPEC]
        [--no-dropout] [--no-droppath] [--dropout P] [--drop-path-base R]
        [--bn-momentum M] [--same-pad-fix] [--seed S] [--dump-activations] [--double]
    IN.safetensors holds "input" [N, C, R, R] and, unless --labels is given, "labels" [N]
    (class indices stored as F32).  --labels is either a comma-separated list of ints or
    the path of another safetensors file with a "labels" tensor.
    Optional deterministic masks in IN.safetensors (used only with --train):
      "mask.layers.{I}.drop_path"  [N]      0/1 keep mask of the residual branch of layer I
                                            (the branch is scaled by mask / (1 - rate))
      "mask.layers.{I}.dropout"    [N, F]   0/1 keep mask of the tail dropout
                                            (scaled by mask / (1 - p))
    Without a mask, training-mode drop path / dropout draw from torch's RNG (seeded by
    --seed).  Eval mode never drops.
    Runs forward (train: BN uses batch statistics and updates running stats with
    momentum M, PyTorch convention: running_var uses the UNBIASED batch variance;
    eval: running stats), loss = mean softmax cross-entropy, backward, and writes:
      logits [N, classes], loss [] (scalar), grad.input [N, C, R, R],
      grad.<param name> for every parameter,
      in train mode: the updated <bn>.running_mean / <bn>.running_var (state names),
      with --dump-activations: act.layers.{I} = output of layer I.
    --double computes in float64 (outputs are still written as F32).
"""

import argparse
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# --------------------------------------------------------------------- safetensors I/O

_DT = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
       "I32": np.int32, "U8": np.uint8}


def st_read(path):
    """Return (dict name -> np.ndarray, metadata dict).  Validates the layout."""
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 8:
        raise ValueError("%s: truncated file" % path)
    (n,) = struct.unpack("<Q", b[:8])
    if n > len(b) - 8:
        raise ValueError("%s: header length %d beyond file size" % (path, n))
    hdr = json.loads(b[8:8 + n].decode("utf-8"))
    data = memoryview(b)[8 + n:]
    meta = hdr.pop("__metadata__", {}) or {}
    out = {}
    for name, v in hdr.items():
        dt = _DT.get(v["dtype"])
        if dt is None:
            raise ValueError("%s: tensor '%s': unsupported dtype %s" % (path, name, v["dtype"]))
        s, e = v["data_offsets"]
        shape = tuple(int(d) for d in v["shape"])
        cnt = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= s <= e <= len(data)) or e - s != cnt * np.dtype(dt).itemsize:
            raise ValueError("%s: tensor '%s': bad data_offsets" % (path, name))
        arr = np.frombuffer(data[s:e], dtype=np.dtype(dt).newbyteorder("<"), count=cnt)
        out[name] = arr.reshape(shape).astype(dt)
    return out, meta


def st_write(path, tensors, metadata=None):
    """tensors: list of (name, array) in file order; integer arrays are written as I64,
    everything else as F32; atomically."""
    hdr = {}
    if metadata:
        hdr["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    off = 0
    for name, a in tensors:
        integer = np.issubdtype(np.asarray(a).dtype, np.integer)
        # (np.ascontiguousarray would turn a scalar into [1])
        a = np.asarray(a, dtype="<i8" if integer else "<f4")
        raw = a.tobytes(order="C")
        if name in hdr:
            raise ValueError("duplicate tensor name %s" % name)
        hdr[name] = {"dtype": "I64" if integer else "F32", "shape": list(a.shape),
                     "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    h = json.dumps(hdr, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    import os
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------- helpers

def make_divisible(v, divisor=8, min_value=None, round_limit=0.9):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def get_padding(k, s=1, d=1):
    return ((s - 1) + d * (k - 1)) // 2


def act_module(name):
    if name == "swish":
        return nn.SiLU()
    if name == "relu":
        return nn.ReLU()
    raise ValueError("unknown act '%s'" % name)


class DropState:
    """Per-forward drop settings shared by all blocks of one model."""

    def __init__(self):
        self.masks = {}      # layer index -> tensor [N] (drop path) / [N, F] (dropout)
        self.enabled = True  # drop path on/off


def drop_path(x, rate, training, mask):
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    if mask is None:
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = (keep + torch.rand(shape, dtype=x.dtype, device=x.device)).floor_()
    else:
        mask = mask.to(x.dtype).view((x.shape[0],) + (1,) * (x.ndim - 1))
    return x.div(keep) * mask


class Dropout(nn.Module):
    """nn.Dropout that can take a fixed keep mask (no parameters, so names are unchanged)."""

    def __init__(self, p):
        super().__init__()
        self.p = p
        self.mask = None

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        if self.mask is not None:
            return x * self.mask.to(x.dtype) / (1.0 - self.p)
        return F.dropout(x, self.p, True)


class SqueezeExcite(nn.Module):
    def __init__(self, chs, rd, act):
        super().__init__()
        self.conv_reduce = nn.Conv2d(chs, rd, 1, bias=True)
        self.act1 = act_module(act)
        self.conv_expand = nn.Conv2d(rd, chs, 1, bias=True)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        s = self.conv_expand(self.act1(self.conv_reduce(s)))
        return x * torch.sigmoid(s)


class Block(nn.Module):
    """Base: residual + drop path bookkeeping."""
    index = 0
    residual = False
    drop_rate = 0.0
    drops = None

    def finish(self, x, shortcut):
        if not self.residual:
            return x
        if self.drops is not None and self.drops.enabled:
            x = drop_path(x, self.drop_rate, self.training, self.drops.masks.get(self.index))
        return x + shortcut


# ---- standard family

class Prologue(nn.Module):
    def __init__(self, cin, cout, act):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                                 nn.BatchNorm2d(cout, eps=1e-3), act_module(act))

    def forward(self, x):
        return self.net(x)


class ConvBnAct(Block):
    def __init__(self, cin, cout, k, s, act):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=s, padding=get_padding(k, s), bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=1e-3)
        self.act1 = act_module(act)
        self.residual = False  # released builder: skip=False

    def forward(self, x):
        return self.act1(self.bn1(self.conv(x)))


class InvertedResidual(Block):
    def __init__(self, cin, cout, k, s, exp, act, use_se):
        super().__init__()
        mid = make_divisible(cin * exp)
        self.mid = mid
        self.conv_pw = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid, eps=1e-3)
        self.act1 = act_module(act)
        self.conv_dw = nn.Conv2d(mid, mid, k, stride=s, padding=get_padding(k, s), groups=mid,
                                 bias=False)
        self.bn2 = nn.BatchNorm2d(mid, eps=1e-3)
        self.act2 = act_module(act)
        self.se = SqueezeExcite(mid, round(mid * (0.25 / exp)), act) if use_se else nn.Identity()
        self.conv_pwl = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-3)
        self.residual = cin == cout and s == 1

    def forward(self, x):
        y = self.act1(self.bn1(self.conv_pw(x)))
        y = self.act2(self.bn2(self.conv_dw(y)))
        y = self.se(y)
        y = self.bn3(self.conv_pwl(y))
        return self.finish(y, x)


class EdgeResidual(Block):
    def __init__(self, cin, cout, k, s, exp, act, use_se, same_pad_fix=False):
        super().__init__()
        mid = make_divisible(cin * exp)
        self.mid = mid
        # pad_type="same": static (k-1)//2 only for stride 1; stride 2 -> "dynamic" padding
        # that create_conv2d_pad drops, i.e. padding 0.
        pad = (k - 1) // 2 if (s == 1 or same_pad_fix) else 0
        self.conv_exp = nn.Conv2d(cin, mid, k, stride=s, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm2d(mid, eps=1e-3)
        self.act1 = act_module(act)
        self.se = SqueezeExcite(mid, round(mid * (0.25 / exp)), act) if use_se else nn.Identity()
        self.conv_pwl = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-3)
        self.residual = cin == cout and s == 1

    def forward(self, x):
        y = self.act1(self.bn1(self.conv_exp(x)))
        y = self.se(y)
        y = self.bn2(self.conv_pwl(y))
        return self.finish(y, x)


class Epilogue(nn.Module):
    def __init__(self, cin, cout, classes, dropout):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False),
                                 nn.BatchNorm2d(cout, eps=1e-3), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), Dropout(dropout),
                                 nn.Linear(cout, classes))
        self.dropout = self.net[5]

    def forward(self, x):
        return self.net(x)


# ---- distill family

class PrologueD(nn.Module):
    def __init__(self, cin, cout, large=False):
        super().__init__()
        mods = [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU()]
        if large:
            for _ in range(2):
                mods += [nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU()]
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        return self.net(x)


class InvertedResidualBlockD(Block):  # released name: Inverted_Residual_Block
    def __init__(self, cin, cout, k, s, exp, groups):
        super().__init__()
        mid = cin * exp
        self.mid = mid
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, groups=groups, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, mid, k, padding=k // 2, stride=s, groups=mid, bias=False),
            nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, cout, 1, groups=groups, bias=False), nn.BatchNorm2d(cout))
        self.residual = s == 1 and cin == cout
        self.drop_rate = 0.0  # released: drop_connect_rate is never set

    def forward(self, x):
        return self.finish(self.body(x), x)


class FusedIRBD(Block):  # released name: Fused_IRB
    def __init__(self, cin, cout, k, s, exp):
        super().__init__()
        mid = cin * exp
        self.mid = mid
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, k, stride=s, padding=k // 2, bias=False),
            nn.BatchNorm2d(mid, eps=1e-3), nn.ReLU(),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout, eps=1e-3))
        self.residual = s == 1 and cin == cout
        self.drop_rate = 0.0

    def forward(self, x):
        return self.finish(self.body(x), x)


class EpilogueD(nn.Module):
    def __init__(self, cin, cout, classes, dropout):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(cin, 1152, 1, bias=False), nn.BatchNorm2d(1152),
                                 nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Conv2d(1152, cout, 1, bias=False), nn.ReLU(), nn.Flatten(),
                                 Dropout(dropout), nn.Linear(cout, classes))
        self.dropout = self.net[7]

    def forward(self, x):
        return self.net(x)


# --------------------------------------------------------------------- the network

def nvidia_module_name(config, i):
    """The name NVIDIA's GPUNet_Builder gives JSON entry i (its counter is incremented
    before naming, so entry i is counted i + 1)."""
    L, n = config[i], i + 1
    t = L["layer_type"]
    if config[0]["distill"]:  # _get_distill_model
        if t in ("head", "head_large"):
            return "head:"
        if t == "tail":
            return "tail:"
        return "stage: " + str(L.get("stage")) + " " + t + str(n)  # "irb" / "fused_irb"
    if t == "head":  # _get_model
        return "head: " + str(n)
    if t == "tail":
        return " layer" + str(n)
    return "stage: " + str(L.get("stage")) + " layer" + str(n)


def _int_exp(layer, i):
    e = layer["expansion"]
    if float(e) != int(e):
        raise ValueError("layer %d: distill family needs an integer expansion, got %r" % (i, e))
    return int(e)


class GPUNetRef(nn.Module):
    def __init__(self, config, classes=None, in_ch=None, same_pad_fix=False, dropout=0.2,
                 drop_path_base=0.2):
        super().__init__()
        if not isinstance(config, list) or not config or config[0].get("layer_type") != "data":
            raise ValueError("config must be a JSON array starting with a 'data' layer")
        self.config = config
        self.resolution = int(config[0]["img_resolution"])
        self.distill = bool(config[0]["distill"])
        self.drops = DropState()
        self.network = nn.Sequential()
        self.index = []  # JSON index of each child of self.network
        n = len(config) - 1
        for i, L in enumerate(config):
            t = L["layer_type"]
            if i == 0:
                continue
            if t == "data":
                raise ValueError("layer %d: a second 'data' layer" % i)
            cin, cout = L["num_in_channels"], L["num_out_channels"]
            if t in ("head", "head_large") and in_ch is not None:
                cin = in_ch
            rate = drop_path_base * i / n
            if not self.distill:
                if t == "head":
                    m = Prologue(cin, cout, L.get("act", "swish"))
                elif t == "conv":
                    m = ConvBnAct(cin, cout, L["kernel_size"], L["stride"], L["act"])
                elif t == "irb":
                    m = InvertedResidual(cin, cout, L["kernel_size"], L["stride"], L["expansion"],
                                         L["act"], L["use_se"])
                elif t == "fused_irb":
                    m = EdgeResidual(cin, cout, L["kernel_size"], L["stride"], L["expansion"],
                                     L["act"], L["use_se"], same_pad_fix)
                elif t == "tail":
                    m = Epilogue(cin, cout, classes or L["num_classes"], dropout)
                else:
                    raise ValueError("layer %d: layer_type '%s' not in the standard family" % (i, t))
                if isinstance(m, Block) and m.residual:
                    m.drop_rate = rate
            else:
                if t == "head":
                    m = PrologueD(cin, cout)
                elif t == "head_large":
                    m = PrologueD(cin, cout, large=True)
                elif t == "irb":
                    m = InvertedResidualBlockD(cin, cout, L["kernel_size"], L["stride"],
                                               _int_exp(L, i), L.get("groups", 1))
                elif t == "fused_irb":
                    m = FusedIRBD(cin, cout, L["kernel_size"], L["stride"], _int_exp(L, i))
                elif t == "tail":
                    m = EpilogueD(cin, cout, classes or L["num_classes"], dropout)
                else:
                    raise ValueError("layer %d: layer_type '%s' not in the distill family" % (i, t))
            if isinstance(m, Block):
                m.index = i
                m.drops = self.drops
            self.network.add_module(nvidia_module_name(config, i), m)
            self.index.append(i)

    def blocks(self):
        """(JSON index, module) of every layer."""
        return list(zip(self.index, self.network.children()))

    def forward(self, x, collect=None):
        for i, m in self.blocks():
            if isinstance(m, (Epilogue, EpilogueD)):
                m.dropout.mask = self.drops.masks.get(("dropout", i))
            x = m(x)
            if collect is not None:
                collect.append((i, x))
        return x


def load_config(path):
    with open(path) as f:
        return json.load(f)


def state_items(model):
    """(name, tensor) of the whole state dict (parameters, BN running stats and
    num_batches_tracked), in module order."""
    return list(model.state_dict().items())


def load_weights(model, path):
    w, _ = st_read(path)
    want = dict(state_items(model))
    missing = [k for k in want if k not in w]
    extra = [k for k in w if k not in want]
    if missing or extra:
        raise ValueError("%s: %d missing tensors (%s), %d unexpected (%s)" % (
            path, len(missing), ", ".join(missing[:5]), len(extra), ", ".join(extra[:5])))
    with torch.no_grad():
        for k, t in want.items():
            a = w[k]
            if tuple(a.shape) != tuple(t.shape):
                raise ValueError("%s: tensor '%s': shape %s in file, expected %s" % (
                    path, k, list(a.shape), list(t.shape)))
            t.copy_(torch.from_numpy(np.array(a)).to(t.dtype))  # (np.array keeps a 0-d shape)


def param_count(model):
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------- command line

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("--res", type=int)
    ap.add_argument("--classes", type=int)
    ap.add_argument("--in-ch", type=int)
    ap.add_argument("--weights")
    ap.add_argument("--input")
    ap.add_argument("--labels")
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--init-only", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--same-pad-fix", action="store_true")
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--no-dropout", action="store_true")
    ap.add_argument("--drop-path-base", type=float, default=0.2)
    ap.add_argument("--no-droppath", action="store_true")
    ap.add_argument("--bn-momentum", type=float, default=0.1)
    ap.add_argument("--dump-activations", action="store_true")
    ap.add_argument("--double", action="store_true")
    return ap.parse_args(argv)


def build_from_args(a):
    cfg = load_config(a.config)
    model = GPUNetRef(cfg, classes=a.classes, in_ch=a.in_ch, same_pad_fix=a.same_pad_fix,
                      dropout=0.0 if a.no_dropout else a.dropout,
                      drop_path_base=0.0 if a.no_droppath else a.drop_path_base)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = a.bn_momentum
    return cfg, model


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    torch.manual_seed(a.seed)
    cfg, model = build_from_args(a)
    res = a.res or model.resolution
    meta = {"tool": "gpunet_ref.py", "config": a.config, "res": res, "seed": a.seed,
            "same_pad_fix": int(a.same_pad_fix)}

    if a.init_only:
        st_write(a.out, [(k, v.detach().numpy()) for k, v in state_items(model)], meta)
        print("wrote %d tensors (%d parameters) to %s" % (len(state_items(model)),
                                                          param_count(model), a.out))
        return 0

    if not a.weights or not a.input:
        raise SystemExit("gpunet_ref.py: --weights and --input are required (or --init-only)")
    load_weights(model, a.weights)
    dtype = torch.float64 if a.double else torch.float32
    model = model.to(dtype)

    inp, _ = st_read(a.input)
    if "input" not in inp:
        raise SystemExit("%s: tensor 'input' missing" % a.input)
    x = torch.from_numpy(np.ascontiguousarray(inp["input"])).to(dtype)
    if x.ndim != 4 or x.shape[2] != res or x.shape[3] != res:
        raise SystemExit("%s: 'input' has shape %s, expected [N, C, %d, %d]" % (
            a.input, list(x.shape), res, res))
    if a.labels:
        if a.labels.endswith(".safetensors"):
            lab = st_read(a.labels)[0]["labels"]
        else:
            lab = np.array([int(v) for v in a.labels.split(",")], dtype=np.float32)
    elif "labels" in inp:
        lab = inp["labels"]
    else:
        raise SystemExit("%s: no 'labels' tensor and no --labels" % a.input)
    y = torch.from_numpy(np.rint(np.asarray(lab, dtype=np.float64)).astype(np.int64)).view(-1)
    if y.numel() != x.shape[0]:
        raise SystemExit("labels: %d values for a batch of %d" % (y.numel(), x.shape[0]))

    for k, v in inp.items():
        if k.startswith("mask.layers.") and k.endswith(".drop_path"):
            model.drops.masks[int(k.split(".")[2])] = torch.from_numpy(np.array(v))
        elif k.startswith("mask.layers.") and k.endswith(".dropout"):
            model.drops.masks[("dropout", int(k.split(".")[2]))] = torch.from_numpy(np.array(v))

    model.train(a.train)
    x.requires_grad_(True)
    acts = [] if a.dump_activations else None
    logits = model(x, acts)
    loss = F.cross_entropy(logits, y)
    loss.backward()

    out = [("logits", logits.detach().float().numpy()),
           ("loss", loss.detach().float().numpy().reshape(())),
           ("grad.input", x.grad.float().numpy())]
    for k, p in model.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        out.append(("grad." + k, g.float().numpy()))
    if a.train:
        for k, v in model.state_dict().items():
            if k.endswith("running_mean") or k.endswith("running_var"):
                out.append((k, v.float().numpy()))
    if acts is not None:
        for i, t in acts:
            out.append(("act.layers.%d" % i, t.detach().float().numpy()))
    meta["mode"] = "train" if a.train else "eval"
    st_write(a.out, out, meta)
    print("loss %.8f, wrote %d tensors to %s" % (loss.item(), len(out), a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
