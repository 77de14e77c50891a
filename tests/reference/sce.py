#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""sce.py - independent float64 reference for the gta plugin's sce
strategy, written from mergekit's merge_methods/sce.py.

usage: sce.py check OUT --base DIR --model DIR [DIR ...] [--select-topk X]

`check` recomputes every tensor and compares it with OUT:

    TV_i = x_i - base                          (float32, as the plugin)
    select_topk < 1:
        var  = population variance over the models of TV per element
        k    = int(float32(count_nonzero(var)) * float32(select_topk))
        TV_i = TV_i at the k largest var, 0 elsewhere (one mask; k = 0 or
               select_topk <= 0: all 0)
    erase_i = TV_i != 0 and sign(TV_i) == (sum_i TV_i >= 0 ? +1 : -1)
    w_i     = mean(TV_i^2) / sum_j mean(TV_j^2)   (1/N if the sum < 1e-6)
    out     = base + sum_i w_i erase_i TV_i / max(sum_i w_i erase_i, 1e-6)

The selection is made the way the plugin documents it, so that both pick
the same elements: var in float32 with each operation rounded once,
mean = sum_i float32(1/N) * TV_i and var = sum_i float32(1/N) *
(TV_i - mean)^2, i in order; the k largest var, equal values to the lower
index (a stable argsort). Everything after the selection is float64.
Tolerance (per element): 1e-6 x the tensor's largest |out| for f32 output
(the plugin's f32 sums, its f32 weights and the final rounding are a few
2^-24 of the magnitudes in play), plus 2^-8 |out| when the output is bf16
(one rounding to 8 bits). Elements whose vote sum_i TV_i is within 1e-6
of sum_i |TV_i| of zero are not compared: f32 and f64 may elect opposite
signs there.

Exit status 0 when everything matches, 1 on a mismatch, 2 on bad usage.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "py"))
import st_reader  # noqa: E402
from refcheck import Mismatch, first_bad  # noqa: E402



def variance32(tv32):
    """The plugin's float32 variance over axis 0, operation by operation."""
    n = tv32.shape[0]
    inv = np.float32(1.0) / np.float32(n)
    mean = np.zeros(tv32.shape[1:], dtype=np.float32)
    for t in tv32:
        mean = mean + inv * t
    var = None
    for t in tv32:
        dev = t - mean
        dev = dev * dev
        var = inv * dev if var is None else var + inv * dev
    return var


def select_mask(tv32, topk):
    """The elements every task vector keeps (flat bool), or None for all."""
    numel = tv32[0].size
    if topk >= 1.0:
        return None
    if topk <= 0.0:
        return np.zeros(numel, dtype=bool)
    var = variance32(tv32).reshape(-1)
    k = int(np.float32(np.count_nonzero(var)) * np.float32(topk))
    mask = np.zeros(numel, dtype=bool)
    mask[np.argsort(-var, kind="stable")[:k]] = True
    return mask


def reference(base, xs, topk):
    b32 = base.astype(np.float32)
    tv32 = np.stack([x.astype(np.float32) - b32 for x in xs])
    tv = tv32.astype(np.float64).reshape(len(xs), -1)
    mask = select_mask(tv32, topk)
    if mask is not None:
        tv = tv * mask
    e = (tv * tv).mean(axis=1)
    w = e / e.sum() if e.sum() >= 1e-6 else np.full(len(xs), 1.0 / len(xs))
    vote = tv.sum(axis=0)
    skip = (np.abs(vote) <= 1e-6 * np.abs(tv).sum(axis=0)) & (vote != 0)
    elected = np.where(vote >= 0, 1.0, -1.0)
    erase = np.sign(tv) == elected
    num = (tv * w[:, None] * erase).sum(axis=0)
    den = np.maximum((w[:, None] * erase).sum(axis=0), 1e-6)
    out = base.astype(np.float64).reshape(-1) + num / den
    return out.reshape(base.shape), skip.reshape(base.shape)


def check(a):
    _, got, got_dt = st_reader.read_model_full(a.out)
    _, base = st_reader.read_model(a.base)
    inputs = [st_reader.read_model(m)[1] for m in a.model]
    worst, skipped = 0.0, 0
    for name in sorted(base):
        if name not in got:
            raise Mismatch("%s: missing from the output" % name)
        want, skip = reference(base[name], [t[name] for t in inputs],
                               a.select_topk)
        g = got[name].astype(np.float64)
        tol = 1e-6 * max(np.abs(want).max(), 1e-30)
        if got_dt[name] == "BF16":
            tol = tol + 2.0 ** -8 * np.abs(want)
        err = np.abs(g - want)
        bad = (err > tol) & ~skip
        skipped += int(skip.sum())
        first_bad(name, g, want, err, tol, bad=bad)
        rel = err / max(np.abs(want).max(), 1e-30)
        worst = max(worst, float(rel.max()))
    print("sce.py: %s: %d tensors match sce select_topk %g (largest error "
          "%.2g of the tensor's scale, %d near-tie votes skipped)" % (
              a.out, len(base), a.select_topk, worst, skipped))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["check"])
    ap.add_argument("out")
    ap.add_argument("--base", required=True)
    ap.add_argument("--model", nargs="+", required=True)
    ap.add_argument("--select-topk", type=float, default=1.0)
    a = ap.parse_args(argv)
    try:
        check(a)
    except (Mismatch, AssertionError, OSError) as e:
        print("sce.py: %s: %s" % (a.out, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
