#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""slerp.py - float64 numpy references for the SLERP family (slerp,
nuslerp, multislerp), written from mergekit's merge_methods/slerp.py,
nuslerp.py and multislerp.py (research/mergekit.md §1.4-§1.6), step by
step on explicit vectors -- not from the plugin's closed forms -- and a
checker for models written by `amalgam merge`.

usage:
  slerp.py check OUT --method M [--base DIR] --model DIR [W] [--model ...]
           [--params JSON] [--out-dtype BF16|F16|F32] [--tau X]
  slerp.py equal OUT DIR      every tensor of OUT equals DIR's, bit for bit

check: recomputes every output tensor in float64 from the models (read
with tests/py/st_reader.py) and requires, element by element,

    |got - ref| <= tau * S + ulp_out / 2

S is the largest magnitude among the inputs of that tensor, tau defaults
to 2^-20 (16 f32 ulps of S): the plugin computes in f32 -- at most four
f32 products and sums of terms with O(1) coefficients, each off by half an
ulp -- and rounds once to the output dtype, which adds half an ulp of it.
A wrong angle, t or coefficient misses by far more (the tests show the
checker rejecting a different t).

--params holds the global parameters as in the pipeline: a number, a
gradient list, or a list of {"filter": S, "value": V} entries (first
matching filter, then an entry without one), e.g. t for slerp,
nuslerp_flatten / nuslerp_row_wise, normalize_weights / eps. A gradient is
evaluated at the tensor's layer position N / (L - 1) (L from the base's, or
first model's, config.json; tensors outside the layer stack at 0), as
amalgam's planner and mergekit do for a plain `models:` merge.
Exit status 0 when everything matches, 1 on the first mismatch, 2 on bad
usage.
"""
import argparse
import json
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "py"))
import st_reader  # noqa: E402  (path set just above)
from refcheck import Mismatch, first_bad  # noqa: E402



# ---- the methods, as mergekit writes them, in float64 ----

def slerp(t, v0, v1, dot_threshold=0.9995, eps=1e-8):
    """mergekit slerp(): one angle for the whole tensor."""
    a = v0.reshape(-1)
    b = v1.reshape(-1)
    na = np.linalg.norm(a)
    nb = np.linalg.norm(b)
    an = a / na if na > eps else a
    bn = b / nb if nb > eps else b
    dot = np.sum(an * bn)
    if abs(dot) > dot_threshold:
        return (1 - t) * v0 + t * v1
    theta0 = np.arccos(dot)
    s0 = np.sin(theta0 - theta0 * t) / np.sin(theta0)
    s1 = np.sin(theta0 * t) / np.sin(theta0)
    return s0 * v0 + s1 * v1


def nuslerp_vec(t, v0, v1, row_wise, flatten, eps=1e-8):
    """mergekit nuslerp(): along the last axis (or flattened)."""
    shape = v0.shape
    if flatten:
        v0 = v0.reshape(-1)
        v1 = v1.reshape(-1)
    elif row_wise:
        v0 = np.swapaxes(v0, 0, -1)
        v1 = np.swapaxes(v1, 0, -1)

    def unit(x):
        n = np.linalg.norm(x, axis=-1, keepdims=True)
        return x / np.maximum(n, 1e-7)

    cos = np.sum(unit(v0) * unit(v1), axis=-1, keepdims=True)
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    s = np.sin(theta)
    colinear = np.abs(s) < eps
    with np.errstate(divide="ignore", invalid="ignore"):
        res = (np.sin((1 - t) * theta) * v0 + np.sin(t * theta) * v1) / s
    res = np.where(colinear, (1 - t) * v0 + t * v1, res)
    if row_wise and not flatten:
        res = np.swapaxes(res, 0, -1)
    return res.reshape(shape)


def nuslerp(xs, ws, base, row_wise, flatten):
    """mergekit NuSlerpTask.execute() for two models and an optional base."""
    if len(xs) != 2:
        raise Mismatch("nuslerp takes two models")
    total = ws[0] + ws[1]
    t = 0.5 if abs(total) < 1e-6 else ws[1] / total
    if base is None:
        return nuslerp_vec(t, xs[0], xs[1], row_wise, flatten)
    return base + nuslerp_vec(t, xs[0] - base, xs[1] - base, row_wise,
                              flatten)


def multislerp(xs, ws, base, normalize_weights=True, eps=1e-8):
    """mergekit multislerp(), step by step."""
    if len(xs) == 1:
        return xs[0]
    x = np.stack(xs)
    if base is not None:
        x = x - base
    flat = x.reshape(x.shape[0], -1)
    w = np.array(ws, dtype=np.float64)
    if normalize_weights:
        w = w / w.sum()
    norms = np.linalg.norm(flat, axis=-1, keepdims=True)
    unit = flat / (norms + eps)
    mean = (unit * w[:, None]).sum(0)
    mean_norm = np.linalg.norm(mean)
    if mean_norm < eps:
        if x.shape[0] != 2:
            raise Mismatch("antipodal models: mergekit raises here")
        res = (x[0] * w[0] + x[1] * w[1])
        return res + base if base is not None else res
    mean = mean / mean_norm
    dots = (unit * mean).sum(-1, keepdims=True)
    tangent = unit - dots * mean
    tres = (tangent * w[:, None]).sum(0)
    tn = np.linalg.norm(tres) + eps
    res = mean * np.cos(tn) + tres * (np.sin(tn) / tn)
    res = res * (norms[:, 0] * w).sum()
    res = res.reshape(x.shape[1:])
    return res + base if base is not None else res


# ---- parameters: numbers, gradients, filter lists ----

LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|block|blocks)\.(\d+)\.")


def layer_pos(name, n_layers):
    m = LAYER_RE.search(name)
    if not m:
        return 0.0
    if n_layers <= 1:
        return 1.0
    return int(m.group(1)) / (n_layers - 1)


def gradient(v, pos):
    if not isinstance(v, list):
        return v
    if len(v) == 1:
        return v[0]
    scaled = pos * (len(v) - 1)
    i0 = min(int(np.floor(scaled)), len(v) - 1)
    i1 = min(i0 + 1, len(v) - 1)
    frac = scaled - i0
    return (1 - frac) * v[i0] + frac * v[i1]


def param(spec, name, pos):
    """A parameter's value for tensor `name` at layer position pos."""
    if isinstance(spec, list) and spec and isinstance(spec[0], dict):
        for e in spec:
            if "filter" not in e or e["filter"] in name:
                return gradient(e["value"], pos)
        return None
    return gradient(spec, pos)


# ---- comparison ----

def half_ulp(x, dtype):
    a = np.abs(x)
    if dtype == "F32":
        return np.spacing(a.astype(np.float32)).astype(np.float64) / 2
    if dtype == "F16":
        return np.spacing(a.astype(np.float16)).astype(np.float64) / 2
    if dtype == "BF16":
        f = np.spacing(a.astype(np.float32)).astype(np.float64)
        return np.maximum(f * 65536.0, 2.0 ** -133) / 2
    raise Mismatch("output dtype %s is not checked here" % dtype)


def n_layers_of(d):
    with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
        return int(json.load(f).get("num_hidden_layers", 0))


def expected(method, name, xs, ws, base, params, pos):
    g = {k: param(v, name, pos) for k, v in params.items()}
    if method == "slerp":
        if base is None or len(xs) != 1:
            raise Mismatch("slerp: give --base and one --model")
        return slerp(float(g["t"]), base, xs[0])
    if method == "nuslerp":
        flatten = g.get("nuslerp_flatten")
        return nuslerp(xs, ws, base, bool(g.get("nuslerp_row_wise", False)),
                       True if flatten is None else bool(flatten))
    if method == "multislerp":
        nw = g.get("normalize_weights")
        eps = g.get("eps")
        return multislerp(xs, ws, base, True if nw is None else bool(nw),
                          1e-8 if eps is None else float(eps))
    raise Mismatch("unknown method %s" % method)


def check(a):
    params = json.loads(a.params)
    _, got, got_dt = st_reader.read_model_full(a.out)
    base = st_reader.read_model(a.base)[1] if a.base else None
    models = [st_reader.read_model(m[0])[1] for m in a.model]
    ws = [float(m[1]) if len(m) > 1 else 1.0 for m in a.model]
    names = set(base if base is not None else models[0])
    if set(got) != names:
        raise Mismatch("output tensors differ from the reference model's")
    n_layers = n_layers_of(a.base or a.model[0][0])
    worst = 0.0
    for name in sorted(got):
        if got_dt[name] != a.out_dtype:
            raise Mismatch("%s: stored as %s, expected %s" % (
                name, got_dt[name], a.out_dtype))
        xs = [m[name] for m in models]
        b = base[name] if base is not None else None
        ref = expected(a.method, name, xs, ws, b, params,
                       layer_pos(name, n_layers))
        ins = xs + ([b] if b is not None else [])
        scale = max(float(np.max(np.abs(x))) for x in ins)
        tol = a.tau * scale + np.maximum(half_ulp(ref, a.out_dtype),
                                         half_ulp(got[name], a.out_dtype))
        err = np.abs(got[name] - ref).reshape(-1)
        tol = np.broadcast_to(tol, ref.shape).reshape(-1)
        first_bad(name, got[name], ref, err, tol)
        worst = max(worst, float(np.max(err / tol)) if err.size else 0.0)
    return len(got), worst


def equal(out, d):
    _, got, _ = st_reader.read_model_full(out)
    want = st_reader.read_model(d)[1]
    if set(got) != set(want):
        raise Mismatch("tensor names differ from %s's" % d)
    for name in sorted(got):
        g = got[name].astype(np.float64).reshape(-1).view(np.uint64)
        w = want[name].astype(np.float64).reshape(-1).view(np.uint64)
        diff = np.nonzero(g != w)[0]
        if diff.size:
            raise Mismatch("%s: element %d differs from %s's" % (
                name, int(diff[0]), d))
    return len(got)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("out")
    c.add_argument("--method", required=True,
                   choices=["slerp", "nuslerp", "multislerp"])
    c.add_argument("--base")
    c.add_argument("--model", nargs="+", action="append", required=True,
                   metavar="DIR [WEIGHT]")
    c.add_argument("--params", default="{}")
    c.add_argument("--out-dtype", default="BF16",
                   choices=["BF16", "F16", "F32"])
    c.add_argument("--tau", type=float, default=2.0 ** -20)
    e = sub.add_parser("equal")
    e.add_argument("out")
    e.add_argument("dir")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "equal":
            n = equal(a.out, a.dir)
            print("slerp.py: %s: %d tensors equal %s's" % (a.out, n, a.dir))
            return 0
        n, worst = check(a)
    except (Mismatch, OSError, KeyError, ValueError) as ex:
        print("slerp.py: %s: %s" % (a.out, ex))
        return 1
    print("slerp.py: %s: %d tensors within tolerance (worst error %.3g of "
          "it)" % (a.out, n, worst))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
