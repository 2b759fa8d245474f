#!/usr/bin/env python3
"""check_onnx.py — check an ONNX model written by gpunas (`gpunas export`,
gn_onnx_export) with ONNX's own checker and ONNX Runtime.

  check_onnx.py MODEL.onnx --io IO.safetensors [--batch N|dynamic] [--tol 1e-4]
                [--threads T]

IO.safetensors (written by tests/test_onnx_export.c) holds "input" [N, C, R, R] and
gpunas's logits for it: "infer" [N, K] (gn_net_infer, BN folded, fused) and "eval"
[N, K] (gn_net_forward_eval, the unfolded reference).

Checks, in order (any failure: a message on stderr and exit 1):
  1. onnx.checker.check_model(model, full_check=True) (includes shape inference);
  2. the interface: one input "input" float32 [batch, C, R, R] and one output
     "logits" float32 [batch, K], batch a fixed value or the symbolic "N" as --batch
     says, C/R/K as in IO; producer "gpunas"; no BatchNormalization node (folded);
  3. ONNX Runtime (CPUExecutionProvider, all graph optimisations) on "input";
     its logits against "infer" and "eval", and "infer" against "eval", with the
     normwise relative difference
         rel(a, b) = max_i |a_i - b_i| / max_i |b_i|     (b: the reference)
     over the whole [N, K] logits; each must be <= --tol.
Prints one line on stdout:
  RESULT ort_vs_infer=<x> ort_vs_eval=<x> infer_vs_eval=<x> max_abs=<x> nodes=<n> ort=<version>
safetensors is read with json + struct + numpy (no safetensors package needed).
"""
import argparse
import collections
import json
import struct
import sys

import numpy as np


def st_read(path):
    with open(path, "rb") as f:
        b = f.read()
    (n,) = struct.unpack("<Q", b[:8])
    hdr = json.loads(b[8:8 + n].decode("utf-8"))
    hdr.pop("__metadata__", None)
    data = memoryview(b)[8 + n:]
    out = {}
    for name, v in hdr.items():
        if v["dtype"] != "F32":
            raise ValueError("%s: tensor '%s': dtype %s, expected F32" % (path, name, v["dtype"]))
        s, e = v["data_offsets"]
        shape = tuple(int(d) for d in v["shape"])
        out[name] = np.frombuffer(data[s:e], dtype="<f4").reshape(shape).astype(np.float32)
    return out


def rel(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def fail(msg):
    print("check_onnx.py: " + msg, file=sys.stderr)
    sys.exit(1)


def dims(vi):
    out = []
    for d in vi.type.tensor_type.shape.dim:
        w = d.WhichOneof("value")
        out.append(d.dim_value if w == "dim_value" else d.dim_param if w == "dim_param" else None)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--io", required=True)
    ap.add_argument("--batch", default=None, help="N, or 'dynamic' for the symbolic dimension \"N\"")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import onnx
    import onnxruntime as ort

    io = st_read(a.io)
    x, ref_infer, ref_eval = io["input"], io["infer"], io["eval"]
    n, c, r = x.shape[0], x.shape[1], x.shape[2]
    k = ref_infer.shape[1]

    model = onnx.load(a.model)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001 — report whatever the checker raised
        fail("%s: onnx.checker: %s" % (a.model, str(e).splitlines()[0] if str(e) else type(e).__name__))

    g = model.graph
    if model.producer_name != "gpunas":
        fail("%s: producer_name %r, expected 'gpunas'" % (a.model, model.producer_name))
    ops = collections.Counter(nd.op_type for nd in g.node)
    if ops.get("BatchNormalization"):
        fail("%s: %d BatchNormalization nodes (BN should be folded)" % (a.model, ops["BatchNormalization"]))
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1 or inputs[0].name != "input" or len(g.output) != 1 or g.output[0].name != "logits":
        fail("%s: graph inputs %s / outputs %s, expected ['input'] / ['logits']"
             % (a.model, [i.name for i in inputs], [o.name for o in g.output]))
    for vi in (inputs[0], g.output[0]):
        if vi.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            fail("%s: %s is not float32" % (a.model, vi.name))
    want_b = "N" if a.batch == "dynamic" else int(a.batch) if a.batch else n
    if dims(inputs[0]) != [want_b, c, r, r]:
        fail("%s: input shape %s, expected %s" % (a.model, dims(inputs[0]), [want_b, c, r, r]))
    if dims(g.output[0]) != [want_b, k]:
        fail("%s: logits shape %s, expected %s" % (a.model, dims(g.output[0]), [want_b, k]))

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    y = sess.run(["logits"], {"input": x})[0]
    if y.shape != (n, k):
        fail("%s: ONNX Runtime returned logits %s, expected %s" % (a.model, y.shape, (n, k)))
    d_oi, d_oe, d_ie = rel(y, ref_infer), rel(y, ref_eval), rel(ref_infer, ref_eval)
    print("RESULT ort_vs_infer=%.3e ort_vs_eval=%.3e infer_vs_eval=%.3e max_abs=%.4g nodes=%d ort=%s"
          % (d_oi, d_oe, d_ie, float(np.max(np.abs(ref_eval))), len(g.node), ort.__version__))
    sys.stdout.flush()
    worst = max(d_oi, d_oe, d_ie)
    if not np.all(np.isfinite(y)) or worst > a.tol:
        fail("%s: max relative difference %.3e > %g (ORT vs infer %.3e, ORT vs eval %.3e, infer vs eval %.3e)"
             % (a.model, worst, a.tol, d_oi, d_oe, d_ie))


if __name__ == "__main__":
    main()
