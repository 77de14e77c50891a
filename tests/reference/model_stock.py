#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""model_stock.py - check a model written by `amalgam merge` with the
`model_stock` strategy against a float64 numpy reference written from
mergekit's merge_methods/model_stock.py and the paper (Jang et al., "Model
Stock", arXiv 2403.19522).

usage: model_stock.py OUT --base DIR --model DIR --model DIR [...]
       [--filter-wise] [--rtol X] [--copy-of DIR]

For every tensor, in float64 from the stored inputs:

    off_i = w_i - w0
    cos   = mean over pairs i < j of
            clip(<off_i,off_j> / max(|off_i| |off_j|, 1e-6), -1, 1)
    t     = N cos / (1 + (N - 1) cos)
    want  = t * mean_i(w_i) + (1 - t) * w0

over the flattened tensor, or with --filter-wise per vector along the last
dimension (1-D tensors as one vector). The output must hold the base's
tensor names and shapes and satisfy, element by element,

    |got - want| <= rtol * (|t * mean_i(w_i)| + |(1 - t) * w0|)
                    + u * |want|

The plugin computes offsets and the blend in float32 (about N + 3
roundings of 2^-24 each, relative to the two terms) and cos, t in float64
from those offsets; on the test models its largest error is about 8e-7
of the terms' size, so the default rtol of 2e-6 (about 34 float32 ulps)
bounds it with room to spare, while filter_wise against not, or a wrong t,
differ by orders of magnitude more. u bounds the stored dtype's own
rounding, half an ulp relative to the value: 2^-24 for float32, 2^-8 for
bfloat16, 2^-11 for float16.

--copy-of DIR additionally requires every output tensor to equal DIR's bit
for bit (identical bfloat16 experts: t = 1 and their f32 mean is exact).
Exit status 0 when everything matches, 1 on the first mismatch, 2 on bad
usage.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "py"))
import st_reader  # noqa: E402  (path set just above)
from refcheck import Mismatch, first_bad  # noqa: E402

HALF_ULP = {"F32": 2.0 ** -24, "BF16": 2.0 ** -8, "F16": 2.0 ** -11}



def rows_of(x, filter_wise):
    """The vectors cos is taken over: one row, or one per last-dim vector."""
    if filter_wise and x.ndim >= 2:
        return x.reshape(-1, x.shape[-1])
    return x.reshape(1, -1)


def model_stock(base, xs, filter_wise):
    """(want, scale, t) in float64 with the shape of base; t per row."""
    w0 = rows_of(base, filter_wise)
    ws = [rows_of(x, filter_wise) for x in xs]
    offs = [w - w0 for w in ws]
    n = len(ws)
    cos = np.zeros(w0.shape[0])
    for i in range(n):
        for j in range(i + 1, n):
            den = np.linalg.norm(offs[i], axis=1) * np.linalg.norm(offs[j],
                                                                   axis=1)
            c = (offs[i] * offs[j]).sum(axis=1) / np.maximum(den, 1e-6)
            cos += np.clip(c, -1.0, 1.0)
    cos /= n * (n - 1) / 2
    den = 1.0 + (n - 1) * cos
    if np.any(den == 0.0):
        raise Mismatch("t is undefined (mean cosine -1/(N-1)): the merge "
                       "should have failed")
    t = (n * cos / den)[:, None]
    avg = sum(ws) / n
    want = t * avg + (1.0 - t) * w0
    scale = np.abs(t * avg) + np.abs((1.0 - t) * w0)
    return want.reshape(base.shape), scale.reshape(base.shape), t


def check(out, base_dir, model_dirs, filter_wise, rtol, copy_of):
    _, got, got_dt = st_reader.read_model_full(out)
    _, base = st_reader.read_model(base_dir)
    models = [st_reader.read_model(d)[1] for d in model_dirs]
    copy = st_reader.read_model(copy_of)[1] if copy_of else None
    if set(got) != set(base):
        raise Mismatch("output tensors differ from the base's: extra %s, "
                       "missing %s" % (sorted(set(got) - set(base))[:5],
                                       sorted(set(base) - set(got))[:5]))
    worst = 0.0
    for name in sorted(got):
        g = got[name]
        if g.shape != base[name].shape:
            raise Mismatch("%s: shape %s, expected %s" % (
                name, g.shape, base[name].shape))
        want, scale, _ = model_stock(base[name], [m[name] for m in models],
                                     filter_wise)
        tol = rtol * scale + HALF_ULP[got_dt[name]] * np.abs(want)
        err = np.abs(g - want)
        first_bad(name, g, want, err, tol, bad=err > tol)
        nz = scale > 0
        if np.any(nz):
            worst = max(worst, float(np.max(err[nz] / scale[nz])))
        if copy is not None and not np.array_equal(
                g.astype(np.float32).view(np.uint32),
                copy[name].astype(np.float32).view(np.uint32)):
            raise Mismatch("%s: not a bit-exact copy of %s" % (name, copy_of))
    return len(got), worst


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--base", required=True)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--filter-wise", action="store_true")
    ap.add_argument("--rtol", type=float, default=2e-6)
    ap.add_argument("--copy-of")
    a = ap.parse_args(argv)
    if len(a.model) < 2:
        ap.error("model_stock needs at least two --model")
    try:
        n, worst = check(a.out, a.base, a.model, a.filter_wise, a.rtol,
                         a.copy_of)
    except (Mismatch, AssertionError, OSError, KeyError) as e:
        print("model_stock: %s: %s" % (a.out, e))
        return 1
    print("model_stock: %s: %d tensors match (largest error %.3g of the "
          "terms' size)" % (a.out, n, worst))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
