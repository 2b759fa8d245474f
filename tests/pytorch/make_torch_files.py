#!/usr/bin/python3
"""make_torch_files.py -- inputs for tests/test_torch_file.c (run with /usr/bin/python3).

Writes into OUTDIR, with torch (1.13 on Debian 12):

  valid checkpoints, and expect.json describing each one's value tree exactly
  (tagged JSON: floats as IEEE bits, strings as UTF-8 hex, tensors with dtype, shape,
  stride, storage offset and every element -- floating tensors as the float32 bits of
  torch's .float(), integer/bool tensors as int64 -- plus a storage group number so
  that tensors sharing a storage can be checked):
    ckpt_zip.pth        a training checkpoint as timm's CheckpointSaver writes it
    ckpt_legacy.pth     the same, _use_new_zipfile_serialization=False
    ckpt_deflate.pth    the same zip rewritten deflated, folder 'archive' (torch 2 name)
    state_dict.pth      a plain state dict (an OrderedDict at the top)
    dtypes.pt, dtypes_legacy.pt, dtypes_p4.pt, dtypes_legacy_p4.pt (pickle protocol 4)
                        every dtype, float16/bfloat16 special values and all 65536 bit
                        patterns, 0-d, empty, transposed, sliced, expanded tensors, bytes,
                        sets, unusual dict keys, nested containers
    trailing.pth        a small zip whose data.pkl has bytes after STOP
    small_data.pkl      a raw data.pkl (for the in-memory fuzz pass)
    small_legacy.pt     a small legacy file (truncated at every length by the test)
    crc.pth             a zip whose storage bytes no longer match their CRC
  malformed inputs (each must be refused; the C test lists the expected reasons), among
  them pickles that would run os.system if loaded with Python: their payload would
  create OUTDIR/pwned_marker, which must never exist.

Usage: make_torch_files.py OUTDIR            exit status 0 = all files written
"""

import argparse
import collections
import io
import json
import os
import pickle
import struct
import sys
import zipfile

import numpy as np
import torch
import torch.nn as nn

MAGIC = 0x1950A86A20F9469CFC6C

# ------------------------------------------------------------------ describing values


class Describer:
    """Python value -> tagged JSON, mirroring what the C reader should produce."""

    def __init__(self):
        self.groups = {}

    def group(self, t):
        key = t.storage().data_ptr()
        return self.groups.setdefault(key, len(self.groups))

    def __call__(self, v):
        if v is None:
            return {"t": "none"}
        if isinstance(v, bool):
            return {"t": "bool", "v": v}
        if isinstance(v, int):
            return {"t": "int", "v": v}
        if isinstance(v, float):
            return {"t": "float", "bits": struct.unpack("<q", struct.pack("<d", v))[0]}
        if isinstance(v, str):
            return {"t": "str", "hex": v.encode("utf-8", "surrogatepass").hex()}
        if isinstance(v, bytes):
            return {"t": "bytes", "hex": v.hex()}
        if isinstance(v, tuple):
            return {"t": "tuple", "items": [self(x) for x in v]}
        if isinstance(v, (list, set)):
            return {"t": "list", "items": [self(x) for x in v]}
        if isinstance(v, torch.Tensor):
            t = v.detach()
            d = {
                "t": "tensor",
                "dtype": str(t.dtype).replace("torch.", ""),
                "shape": list(t.shape),
                "stride": list(t.stride()),
                "offset": t.storage_offset(),
                "storage_numel": t.storage().size(),
                "requires_grad": v.requires_grad,
                "group": self.group(t),
            }
            if t.is_floating_point():
                d["f32bits"] = t.float().contiguous().view(torch.int32).flatten().tolist()
            else:
                d["i64"] = t.long().flatten().tolist()
            return d
        if isinstance(v, dict):
            od = isinstance(v, collections.OrderedDict)
            d = {
                "t": "dict",
                "class": "collections.OrderedDict" if od else "dict",
                "keys": [self(k) for k in v.keys()],
                "values": [self(x) for x in v.values()],
            }
            if od and vars(v):
                d["state"] = self(dict(vars(v)))
            return d
        if isinstance(v, argparse.Namespace):
            return {"t": "object", "class": "argparse.Namespace", "state": self(dict(vars(v)))}
        raise TypeError(type(v))


# ------------------------------------------------------------------ hand-built files


class FakeStorage:
    """A persistent id as torch writes it, with any content we like."""

    def __init__(self, stype, key, numel, location="cpu", view=None):
        self.stype, self.key, self.numel, self.location, self.view = stype, key, numel, location, view


class FakeTensor:
    def __init__(self, storage, offset, size, stride, hooks=None, meta=None, nargs=6):
        self.args = (storage, offset, tuple(size), tuple(stride), False,
                     hooks if hooks is not None else collections.OrderedDict())
        if nargs == 7:
            self.args += (meta,)

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


def fake_pickle(obj, proto=2, legacy=False):
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=proto)

    def pid(o):
        if isinstance(o, FakeStorage):
            t = ("storage", o.stype, o.key, o.location, o.numel)
            return t + (o.view,) if legacy else t
        return None

    p.persistent_id = pid
    p.dump(obj)
    return buf.getvalue()


def write_zip(path, prefix, pkl, storages=(), extra=(), compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as z:
        z.writestr(prefix + "/data.pkl", pkl)
        for k, raw in storages:
            z.writestr(prefix + "/data/" + k, raw)
        z.writestr(prefix + "/version", "3\n")
        for name, raw in extra:
            z.writestr(prefix + "/" + name, raw)


def write_legacy(path, obj_pkl, storages, sys_info=None):
    """storages: (key, element count, raw bytes) in table order"""
    with open(path, "wb") as f:
        pickle.dump(MAGIC, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump(sys_info or {"protocol_version": 1001, "little_endian": True,
                                 "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
        f.write(obj_pkl)
        pickle.dump([k for k, _, _ in storages], f, protocol=2)
        for _, count, raw in storages:
            f.write(struct.pack("<Q", count))
            f.write(raw)


def rewrite_zip(src, dst, prefix=None, compression=zipfile.ZIP_STORED, drop=(), replace=None):
    replace = replace or {}
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w", compression) as zo:
        for info in zi.infolist():
            old_prefix, rest = info.filename.split("/", 1)
            if rest in drop:
                continue
            data = replace.get(rest, zi.read(info.filename))
            zo.writestr((prefix or old_prefix) + "/" + rest, data)


def zip_pickle(path):
    with zipfile.ZipFile(path) as z:
        name = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        return z.read(name)


# ------------------------------------------------------------------ the valid files


class Net(nn.Module):
    """Nested module names with spaces and colons, BN buffers, a linear head."""

    def __init__(self):
        super().__init__()
        self.network = nn.Sequential()
        self.network.add_module("stem", nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()))
        self.network.add_module("stage: 1 layer3", nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU()))
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        return self.head(self.network(x).mean((2, 3)))


def training_checkpoint():
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.RMSprop(model.parameters(), lr=0.08, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        loss = model(torch.randn(2, 3, 8, 8)).square().mean()
        loss.backward()
        opt.step()
    ema = Net()
    with torch.no_grad():
        for pe, pm in zip(ema.state_dict().values(), model.state_dict().values()):
            if pe.is_floating_point():
                pe.copy_(pm * 0.999)
            else:
                pe.copy_(pm)
    args = argparse.Namespace(model="gpunet_0", lr=0.08, epochs=450, smoothing=0.1, amp=True,
                              mean=None, input_size=(3, 320, 320))
    # the keys in the order timm's CheckpointSaver._save writes them
    ckpt = {"epoch": 7, "arch": "gpunet_0", "state_dict": model.state_dict(),
            "optimizer": opt.state_dict(), "version": 2, "args": args,
            "amp_scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                           "growth_interval": 2000, "_growth_tracker": 17},
            "state_dict_ema": ema.state_dict(), "metric": 78.9}
    return ckpt, model.state_dict()


def dtype_zoo():
    torch.manual_seed(1)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) * 0.5 - 3
    patterns = torch.arange(65536, dtype=torch.int32).to(torch.int16)
    h16 = torch.randn(4, 4).half()
    d = collections.OrderedDict()
    d["f16_special"] = torch.tensor(
        [0.0, -0.0, 1.0, -2.5, 65504.0, 2.0 ** -24, -(2.0 ** -24), 1e-5, 2.0 ** -14,
         float("inf"), float("-inf"), float("nan")], dtype=torch.float16)
    d["f16_all"] = patterns.clone().view(torch.float16)
    d["bf16_all"] = patterns.clone().view(torch.bfloat16)
    d["bf16"] = torch.randn(3, 5).bfloat16()
    d["f64"] = torch.cat([torch.randn(7, dtype=torch.float64) * 1e10,
                          torch.tensor([1e-300, 1e300, float("nan"), -0.0, 1.0 / 3.0, -1e-40],
                                       dtype=torch.float64)])
    d["f32_special"] = torch.tensor([1e-45, -1e-45, 3.4e38, float("inf"), float("nan"), -0.0])
    d["i64"] = torch.tensor([0, -1, 2 ** 62, -(2 ** 63), 2 ** 63 - 1], dtype=torch.int64)
    d["i32"] = torch.tensor([0, -1, 2 ** 31 - 1, -(2 ** 31), 12345], dtype=torch.int32)
    d["i16"] = torch.tensor([-32768, 32767, -1, 7], dtype=torch.int16)
    d["i8"] = torch.tensor([-128, 127, -1, 0], dtype=torch.int8)
    d["u8"] = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    d["bool"] = torch.tensor([True, False, True, True])
    d["scalar"] = torch.tensor(3.25)
    d["scalar_i"] = torch.tensor(-5)
    d["empty"] = torch.zeros(0, 3)
    d["big"] = torch.randn(2, 3, 4, 5)
    d["base"] = base
    d["t"] = base.t()                  # non-contiguous, shares base's storage
    d["view"] = base[1:3, 2:5]         # offset 8, stride (6, 1)
    d["row"] = base[2]                 # contiguous view at offset 12
    d["expand"] = torch.tensor([1.0, 2.0, 3.0]).expand(2, 3)  # stride (0, 1)
    d["col_f16"] = h16[:, 1]           # float16, stride 4, offset 1
    d["dims8"] = torch.randn(1, 2, 1, 2, 1, 2, 1, 2)
    d["param"] = nn.Parameter(torch.ones(2))
    d["bytes"] = b"\x00\xffxy"
    d["empty_bytes"] = b""
    d["set"] = {3}
    d["odd_keys"] = {(1, "a"): "tuple", 2: "int", 2.5: "float", None: "none", b"k": "bytes",
                     "": "empty str"}
    d["unicode"] = "Gr\u00fc\u00dfe \u2713 \x00 nul \U0001f600"
    d["nested"] = [1, [2, (3.5, None)], {"k": False}, ()]
    d["ints"] = [0, 255, 256, 65535, 65536, -1, 2 ** 31, -(2 ** 31) - 1, 2 ** 62, -(2 ** 63)]
    d["floats"] = [0.1, -0.0, float("inf"), 1e-310]
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    out = ap.parse_args().outdir
    os.makedirs(out, exist_ok=True)
    P = lambda name: os.path.join(out, name)  # noqa: E731
    desc = Describer()
    expect = {"trees": {}, "files": {}}

    ckpt, sd = training_checkpoint()
    torch.save(ckpt, P("ckpt_zip.pth"))
    torch.save(ckpt, P("ckpt_legacy.pth"), _use_new_zipfile_serialization=False)
    rewrite_zip(P("ckpt_zip.pth"), P("ckpt_deflate.pth"), prefix="archive",
                compression=zipfile.ZIP_DEFLATED)
    expect["trees"]["ckpt"] = desc(ckpt)
    for n in ("ckpt_zip.pth", "ckpt_legacy.pth", "ckpt_deflate.pth"):
        expect["files"][n] = "ckpt"

    torch.save(sd, P("state_dict.pth"))
    expect["trees"]["sd"] = desc(sd)
    expect["files"]["state_dict.pth"] = "sd"

    zoo = dtype_zoo()
    torch.save(zoo, P("dtypes.pt"))
    torch.save(zoo, P("dtypes_legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save(zoo, P("dtypes_p4.pt"), pickle_protocol=4)
    torch.save(zoo, P("dtypes_legacy_p4.pt"), _use_new_zipfile_serialization=False, pickle_protocol=4)
    expect["trees"]["dtypes"] = desc(zoo)
    for n in ("dtypes.pt", "dtypes_legacy.pt", "dtypes_p4.pt", "dtypes_legacy_p4.pt"):
        expect["files"][n] = "dtypes"

    small = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "n": torch.tensor(4),
             "s": "small"}
    torch.save(small, P("small.pth"))
    torch.save(small, P("small_legacy.pt"), _use_new_zipfile_serialization=False)
    rewrite_zip(P("small.pth"), P("trailing.pth"),
                replace={"data.pkl": zip_pickle(P("small.pth")) + b"GARBAGE after STOP \x80\x02"})
    expect["trees"]["small"] = desc(small)
    for n in ("small.pth", "small_legacy.pt", "trailing.pth"):
        expect["files"][n] = "small"
    with open(P("small_data.pkl"), "wb") as f:
        f.write(zip_pickle(P("ckpt_zip.pth")))

    # the rewritten zips still load with torch itself
    for n in ("ckpt_deflate.pth", "trailing.pth"):
        torch.load(P(n))

    # a storage whose bytes do not match the CRC: flip one data byte in the stored entry
    raw = bytearray(open(P("small.pth"), "rb").read())
    with zipfile.ZipFile(P("small.pth")) as z:
        info = [i for i in z.infolist() if i.filename.endswith("/data/0")][0]
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    data_at = info.header_offset + 30 + name_len + extra_len
    raw[data_at + 5] ^= 0x40
    open(P("crc.pth"), "wb").write(bytes(raw))

    # ---------------------------------------------------------- malformed files
    marker = P("pwned_marker")

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch '%s'" % marker,))

    torch.save({"x": Evil()}, P("os_system.pth"))
    torch.save({"x": Evil()}, P("os_system_legacy.pth"), _use_new_zipfile_serialization=False)
    assert not os.path.exists(marker)

    z = open(P("ckpt_zip.pth"), "rb").read()
    open(P("trunc_half.pth"), "wb").write(z[: len(z) // 2])
    open(P("trunc_cd.pth"), "wb").write(z[: len(z) - 60])     # inside the central directory
    open(P("trunc_eocd.pth"), "wb").write(z[: len(z) - 10])   # inside the end record
    rewrite_zip(P("ckpt_zip.pth"), P("missing_entry.pth"), drop=("data/0",))
    with zipfile.ZipFile(P("ckpt_zip.pth")) as zz:
        d0 = zz.read([n for n in zz.namelist() if n.endswith("/data/0")][0])
    rewrite_zip(P("ckpt_zip.pth"), P("short_storage.pth"), replace={"data/0": d0[:-4]})
    pk = zip_pickle(P("ckpt_zip.pth"))
    rewrite_zip(P("ckpt_zip.pth"), P("truncated_pickle.pth"), replace={"data.pkl": pk[: len(pk) // 2]})
    rewrite_zip(P("ckpt_zip.pth"), P("byteorder_big.pth"), replace={})
    with zipfile.ZipFile(P("byteorder_big.pth"), "a") as zz:
        zz.writestr("ckpt_zip/byteorder", "big")

    four = struct.pack("<4f", 1, 2, 3, 4)
    fs = lambda key="0", numel=4, stype=torch.FloatStorage: FakeStorage(stype, key, numel)  # noqa: E731
    write_zip(P("shape_overflow.pth"), "m", fake_pickle({"w": FakeTensor(fs(), 0, (10,), (1,))}),
              [("0", four)])
    write_zip(P("offset_overflow.pth"), "m", fake_pickle({"w": FakeTensor(fs(), 2, (2, 2), (2, 1))}),
              [("0", four)])
    write_zip(P("hooks.pth"), "m", fake_pickle(
        {"w": FakeTensor(fs(), 0, (4,), (1,), hooks=collections.OrderedDict([(1, "hook")]))}),
        [("0", four)])
    write_zip(P("twice.pth"), "m", fake_pickle(
        {"a": FakeTensor(fs(), 0, (4,), (1,)), "b": FakeTensor(fs(stype=torch.IntStorage), 0, (4,), (1,))}),
        [("0", four)])
    write_zip(P("bad_key.pth"), "m", fake_pickle({"w": FakeTensor(fs(key="../version"), 0, (4,), (1,))}),
              [("0", four)])
    write_zip(P("meta7.pth"), "m", fake_pickle({"w": FakeTensor(fs(), 0, (4,), (1,), meta={"x": 1}, nargs=7)}),
              [("0", four)])
    write_zip(P("inst.pth"), "m", b"\x80\x02(ios\nsystem\n.")
    write_zip(P("ext1.pth"), "m", b"\x80\x02\x82\x01.")
    write_zip(P("untyped.pth"), "m", b"\x80\x02ctorch\nUntypedStorage\n.")
    write_zip(P("two_values.pth"), "m", b"\x80\x02NN.")
    write_zip(P("no_stop.pth"), "m", b"\x80\x02N")
    write_zip(P("long9.pth"), "m", b"\x80\x02\x8a\x09" + b"\x01" * 9 + b".")
    write_zip(P("memo_far.pth"), "m", b"\x80\x02Nr\xff\xff\xff\x7f.")
    write_zip(P("marks.pth"), "m", b"\x80\x02" + b"(" * 600 + b"N.")
    write_zip(P("proto0.pth"), "m", b"N.")
    with zipfile.ZipFile(P("no_pkl.pth"), "w") as zz:
        zz.writestr("m/version", "3\n")
    torch.save(collections.Counter({"a": 1}), P("counter.pth"))
    torch.save({"x": np.float64(1.5)}, P("numpy_scalar.pth"))
    cyc = []
    cyc.append(cyc)
    torch.save(cyc, P("cyclic.pth"))
    deep = []
    for _ in range(300):
        deep = [deep]
    torch.save(deep, P("deep.pth"))
    torch.jit.script(nn.Linear(2, 2)).save(P("torchscript.pth"))
    with open(P("plain_pickle.pkl"), "wb") as f:
        pickle.dump({"a": 1}, f, protocol=2)

    lg = open(P("ckpt_legacy.pth"), "rb").read()
    open(P("legacy_trunc_pickle.pth"), "wb").write(lg[:100])
    open(P("legacy_trunc_data.pth"), "wb").write(lg[:-5])
    write_legacy(P("legacy_view.pth"),
                 fake_pickle({"w": FakeTensor(FakeStorage(torch.FloatStorage, "7", 4, view=(0, 4)),
                                              0, (4,), (1,))}, legacy=True), [("7", 4, four)])
    write_legacy(P("legacy_count.pth"),
                 fake_pickle({"w": FakeTensor(FakeStorage(torch.FloatStorage, "7", 4), 0, (4,), (1,))},
                             legacy=True), [("7", 3, four[:12])])
    write_legacy(P("legacy_unused.pth"),
                 fake_pickle({"w": FakeTensor(FakeStorage(torch.FloatStorage, "7", 4), 0, (4,), (1,))},
                             legacy=True), [("7", 4, four), ("8", 4, four)])
    write_legacy(P("legacy_unlisted.pth"),
                 fake_pickle({"w": FakeTensor(FakeStorage(torch.FloatStorage, "7", 4), 0, (4,), (1,))},
                             legacy=True), [])
    write_legacy(P("legacy_big_endian.pth"),
                 fake_pickle({"w": 1}, legacy=True), [],
                 sys_info={"protocol_version": 1001, "little_endian": False})

    with open(P("garbage.bin"), "wb") as f:
        f.write(b"\x13" + bytes(np.random.RandomState(3).randint(0, 256, 999, dtype=np.uint8)))
    open(P("empty.pth"), "wb").close()

    with open(P("expect.json"), "w") as f:
        json.dump(expect, f)
    assert not os.path.exists(marker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
