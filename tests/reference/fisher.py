# SPDX-License-Identifier: Apache-2.0
"""Float64 reference for the fisher strategy, and a writer of test Fishers.

  fisher.py make OUT.safetensors MODEL_DIR --seed N [--drop S] [--bad-shape S]
            [--int S] [--scale K]
      writes a synthetic Fisher file for MODEL_DIR: every floating-point
      tensor's name and shape, F32, positive values spread over eight
      decades (1e-10 .. 1e-2, as squared gradients are). --drop leaves out
      the tensors whose name contains S; --bad-shape gives them one extra
      element; --int stores them as I32 (error tests); --scale multiplies
      every value by K (in float64, before the F32 rounding).

  fisher.py check OUT --model DIR[=FISHER] ... [--weight W ...]
            [--epsilon E] [--mode add|floor] [--fallback average|base]
            [--base DIR] [--normalize] [--rtol R]
      checks a merged model against, per element,
          want = sum_i c_i F'_i x_i / sum_i c_i F'_i
      with F' = F + E (add) or max(F, E) (floor), F = 0 for a model
      without a file or without the tensor in it, computed in float64;
      tensors no model has a Fisher for must equal the weighted average
      (fallback average) or the base's value (fallback base).
      --normalize (normalize_fishers): c_i / ||F_i|| in place of c_i in
      the Fisher quotient, ||F_i|| the L2 norm of every float entry of
      model i's file (as F32, squares summed in float64 in name order);
      every model needs a file. The fallback average keeps c_i.

Tolerance: amalgam sums in double and rounds the quotient once to f32, so
the error is at most half an f32 ulp of want plus double rounding noise;
the check allows rtol (default 2**-23, one ulp) of |want|.
With --normalize the norms are summed per tensor, then across tensors,
not in amalgam's one running sum: a relative difference near 1e-15 in
c_i, far inside the same tolerance.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "py"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_reader  # noqa: E402  (paths set just above)
from refcheck import Mismatch, first_bad  # noqa: E402
from lora import write_safetensors  # noqa: E402

FLOAT = ("F32", "F16", "BF16", "F64")



def make(a):
    _, tensors, dtypes = st_reader.read_model_full(a.model_dir)
    rng = np.random.default_rng(a.seed)
    out, ints = [], []
    for name in sorted(tensors):
        if dtypes[name] not in FLOAT:
            continue
        if a.drop and any(s in name for s in a.drop):
            continue
        shape = tensors[name].shape
        if a.bad_shape and any(s in name for s in a.bad_shape):
            shape = (int(np.prod(shape)) + 1,)
        f = 10.0 ** rng.uniform(-10.0, -2.0, size=shape) * a.scale
        if a.int and any(s in name for s in a.int):
            ints.append(name)
            f = np.ones(shape)
        out.append((name, f.astype(np.float32), "F32"))
    write_safetensors(a.out, out)
    if ints:
        retype_i32(a.out, ints)
    return 0


def retype_i32(path, names):
    """Relabel tensors as I32 in place (same byte size as F32)."""
    import json
    import struct
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        for name in names:
            h[name]["dtype"] = "I32"
        b = json.dumps(h, separators=(",", ":")).encode()
        b += b" " * (n - len(b))
        assert len(b) == n
        f.seek(8)
        f.write(b)


def expected(xs, fs, c, eps, mode, fallback, base, cf):
    if all(f is None for f in fs):
        if fallback == "base":
            return base
        return sum(ci * x for ci, x in zip(c, xs)) / sum(c)
    num = np.zeros_like(xs[0])
    den = np.zeros_like(xs[0])
    for ci, x, f in zip(cf, xs, fs):
        f = np.zeros_like(x) if f is None else f
        fp = np.maximum(f, eps) if mode == "floor" else f + eps
        num += ci * fp * x
        den += ci * fp
    return num / den


def file_norm(path):
    _, ts, dts = st_reader.read_model_full(path)
    sq = 0.0
    for name in sorted(ts):
        if dts[name] in FLOAT:
            v = ts[name].astype(np.float32).astype(np.float64)
            sq += float(np.sum(v * v))
    return np.sqrt(sq)


def check(a):
    _, got, got_dt = st_reader.read_model_full(a.out)
    models, fishers = [], []
    for spec in a.model:
        d, _, fpath = spec.partition("=")
        models.append(st_reader.read_model_full(d))
        fishers.append(st_reader.read_model(fpath)[1] if fpath else {})
    base = st_reader.read_model(a.base)[1] if a.base else None
    c = a.weight or [1.0] * len(models)
    assert len(c) == len(models), "one --weight per --model"
    cf = list(c)
    if a.normalize:
        paths = [spec.partition("=")[2] for spec in a.model]
        assert all(paths), "--normalize needs a Fisher file for each --model"
        cf = [ci / file_norm(p) for ci, p in zip(c, paths)]
    worst = 0.0
    for name in sorted(got):
        g = got[name].astype(np.float64)
        _, ts, dts = models[0]
        if dts[name] not in FLOAT:
            if not np.array_equal(g, ts[name]):
                raise Mismatch("%s: integer tensor not copied" % name)
            continue
        xs = [m[1][name].astype(np.float64) for m in models]
        fs = [f[name].astype(np.float64) if name in f else None
              for f in fishers]
        want = expected(xs, fs, c, a.epsilon, a.mode, a.fallback,
                        base[name].astype(np.float64) if base else None,
                        cf)
        err = np.abs(g - want)
        tol = a.rtol * np.abs(want) + 1e-38
        if all(f is None for f in fs) and a.fallback == "average":
            # linear's arithmetic: an f32 weighted sum, then a division
            tol = 2.0 ** -21 * sum(abs(ci) * np.abs(x)
                                   for ci, x in zip(c, xs)) / abs(sum(c))
        first_bad(name, g, want, err, tol, bad=err > tol)
        nz = want != 0
        if np.any(nz):
            worst = max(worst, float(np.max(err[nz] / np.abs(want[nz]))))
    return len(got), worst


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out")
    m.add_argument("model_dir")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--drop", action="append")
    m.add_argument("--bad-shape", action="append")
    m.add_argument("--int", action="append")
    m.add_argument("--scale", type=float, default=1.0)
    k = sub.add_parser("check")
    k.add_argument("out")
    k.add_argument("--model", action="append", required=True)
    k.add_argument("--weight", action="append", type=float)
    k.add_argument("--epsilon", type=float, default=1e-6)
    k.add_argument("--mode", choices=("add", "floor"), default="add")
    k.add_argument("--fallback", choices=("average", "base"),
                   default="average")
    k.add_argument("--base")
    k.add_argument("--normalize", action="store_true")
    k.add_argument("--rtol", type=float, default=2.0 ** -23)
    a = ap.parse_args(argv)
    if a.cmd == "make":
        return make(a)
    try:
        n, worst = check(a)
    except (Mismatch, AssertionError, OSError, KeyError) as e:
        print("fisher: %s: %s" % (a.out, e))
        return 1
    print("fisher: %s: %d tensors match (largest relative error %.3g)"
          % (a.out, n, worst))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
