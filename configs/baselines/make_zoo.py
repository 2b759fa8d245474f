#!/usr/bin/env python3
"""configs/baselines/make_zoo.py — writes the hand-designed baseline zoo of issue 20
(GPUNet JSON configs for Fashion-MNIST: 1 input channel, 10 classes, resolution 32).

    python3 configs/baselines/make_zoo.py [--out configs/baselines]

Every network is the published channel/depth plan of its paper, adapted to 32x32
inputs the way the CIFAR versions of these networks are (total stride 8: the last
feature maps are 4x4, as in spaces/fmnist.json), then scaled by one width multiplier
w applied to every layer (channels rounded with MobileNet's make_divisible(c*w, 8),
which never goes more than 10% below c*w) and, where the family has one, a depth
multiplier d (EfficientNet's ceil(n*d) repeats per stage).  Nothing else changes
between the widths.  The format's fixed parts (see README.md here) are noted per
family.  `gpunas format` gives the files' layout; run it after editing this script.
"""
import argparse
import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
RES = 32


def make_divisible(v, divisor=8):
    """timm/MobileNet make_divisible(v, 8, min 8, round_limit 0.9)."""
    nv = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if nv < 0.9 * v:
        nv += divisor
    return nv


def data():
    return {"layer_type": "data", "img_resolution": RES, "distill": False}


def head(out, act):
    return {"layer_type": "head", "num_in_channels": 1, "num_out_channels": out, "act": act}


def tail(cin, out):
    return {"layer_type": "tail", "num_in_channels": cin, "num_out_channels": out, "num_classes": 10}


def irb_stages(plan, stem, last, w, d, act, se, stage_kernel=None):
    """plan: (expansion, channels, repeats, stride, kernel) per stage, paper order."""
    c0 = make_divisible(stem * w)
    layers = [data(), head(c0, act)]
    cin = c0
    for si, (e, c, n, s, k) in enumerate(plan, start=1):
        cout = make_divisible(c * w)
        for j in range(int(math.ceil(n * d))):
            layers.append({"layer_type": "irb", "num_in_channels": cin, "num_out_channels": cout,
                           "stride": s if j == 0 else 1, "expansion": e, "kernel_size": k, "act": act,
                           "use_se": se, "stage": si})
            cin = cout
    layers.append(tail(cin, last(w)))
    return layers


# MobileNetV2 (Sandler et al. 2018, Table 2): t, c, n, s; stem 32, last conv 1280, k3,
# ReLU6.  32x32 plan: the first stride-2 step is the head's (fixed 3x3 s2 conv), the
# 24-channel stage runs at stride 1 and so does the 160-channel one (as in the common
# CIFAR MobileNetV2, whose stem is stride 1 and which keeps stride 2 at 32, 64 and 160;
# here the head takes one of those three steps, so 160 goes to stride 1): 32 -> 16
# (head) -> 8 (c32) -> 4 (c64).  The paper keeps the last conv at 1280 for w < 1;
# we scale it too (make_divisible(1280 w)): at w = 0.35 an unscaled 1280 x 4 x 4 tail
# would be a third of the MACs of a 10-class model, which is not what the paper's
# rule (written for 1000 classes) was for — see README.md.
MBV2 = [(1, 16, 1, 1, 3), (6, 24, 2, 1, 3), (6, 32, 3, 2, 3), (6, 64, 4, 2, 3), (6, 96, 3, 1, 3),
        (6, 160, 3, 1, 3), (6, 320, 1, 1, 3)]

# EfficientNet-B0 (Tan & Le 2019, Table 1): MBConv expansion, channels, repeats, stride,
# kernel; stem 32, head conv 1280, SE ratio 0.25 of the block input, swish.  Same
# 32x32 stride plan as above: head s2, then stride 2 at the 40- and 80-channel stages
# only (the 24- and 192-channel stages at stride 1): 32 -> 16 -> 8 -> 4.
EFFB0 = [(1, 16, 1, 1, 3), (6, 24, 2, 1, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3), (6, 112, 3, 1, 5),
         (6, 192, 4, 1, 5), (6, 320, 1, 1, 3)]


def mbv2(w, d=1.0):
    return irb_stages(MBV2, 32, lambda w: make_divisible(1280 * w), w, d, "relu", False)


def effnet(w, d=1.0):
    return irb_stages(EFFB0, 32, lambda w: make_divisible(1280 * w), w, d, "swish", True)


def resnet18(w):
    """ResNet-18 (He et al. 2016): stem 64, stages 64/128/256/512 of 2 basic blocks
    (2 x conv3x3 each), stride 2 at stages 2-4, no final 1x1 conv.  32x32 plan: the
    head (3x3 s2) is the stem, stages at 16x16, 8x8, 4x4 and 4x4 (stage 4 at stride 1,
    total stride 8).  The format's "conv" layer (conv-BN-ReLU) has no shortcut, so a
    basic block is two plain conv layers: this is the paper's "plain-18" (Table 2:
    27.94% vs ResNet-18's 27.88% top-1 error on ImageNet).  The tail's 1x1 conv keeps
    the last width.  Channel plan: ResNet-18's widths / 4 at w = 1 (16, 32, 64, 128)."""
    c0 = make_divisible(16 * w)
    layers = [data(), head(c0, "relu")]
    cin = c0
    for si, (c, s) in enumerate([(16, 1), (32, 2), (64, 2), (128, 1)], start=1):
        cout = make_divisible(c * w)
        for j in range(4):
            layers.append({"layer_type": "conv", "num_in_channels": cin, "num_out_channels": cout,
                           "stride": s if j == 0 else 1, "kernel_size": 3, "act": "relu", "stage": si})
            cin = cout
    layers.append(tail(cin, cin))
    return layers


ZOO = {
    # name: (builder, arguments); widths chosen so each family spans the fmnist tiers
    "mbv2-w035": (mbv2, (0.35,)),
    "mbv2-w050": (mbv2, (0.5,)),
    "mbv2-w060": (mbv2, (0.6,)),
    "effb0-d05-w025": (effnet, (0.25, 0.5)),
    "effb0-d05-w035": (effnet, (0.35, 0.5)),
    "effb0-d05-w050": (effnet, (0.5, 0.5)),
    "plain18-w075": (resnet18, (0.75,)),
    "plain18-w100": (resnet18, (1.0,)),
    "plain18-w125": (resnet18, (1.25,)),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    for name, (fn, a) in ZOO.items():
        if args.only and name not in args.only:
            continue
        p = os.path.join(args.out, name + ".json")
        with open(p, "w") as f:
            json.dump(fn(*a), f, indent=6)
            f.write("\n")
        print(p)


if __name__ == "__main__":
    main()
