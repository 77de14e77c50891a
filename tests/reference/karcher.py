#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""karcher.py - check a model written by `amalgam merge` with the `karcher`
strategy against a float64 numpy reference written from mergekit's
merge_methods/karcher.py (karcher_merge_tensors), iterating on the full
flattened vectors as mergekit does, not on their Gram matrix as the plugin
does, so the plugin's coefficient form is checked independently.

usage: karcher.py OUT --model DIR [--model DIR ...] [--max-iter N]
       [--tol X] [--rtol X] [--copy-of DIR]

List the models in mergekit's order: the base first when the pipeline has
one, then the models, each once. The output must hold the first model's
tensor names and shapes. For every tensor, in float64 from the stored
inputs t_1..t_N (flattened):

    one model: want = t_1
    n_i = |t_i|; any n_i NaN or infinite: want = NaN everywhere
    kept = {i : n_i > tol}; none: want = 0; a = 1/|kept|
    u = sum_kept a t_i/n_i normalised, or t_k/n_k (k the first kept) when
        that sum's norm is below tol
    max_iter times: theta_i = arccos(clip(<u, u_i>, -1, 1)) over kept i,
        skipping theta_i < tol;
        T = sum a (theta_i / sin theta_i) (u_i - cos theta_i u);
        stop when |T| < tol; u = cos|T| u + sin|T| T/|T|, normalised
        when its norm exceeds tol
    want = (sum_i n_i / N) u

A theta_i within tol of pi has no defined mean: the merge should have
failed, and the check does. The plugin writes want as one float32 weighted
sum sum_i beta_i t_i (betas from float64, rounded to float32, summed in
float32), so its error is a few float32 roundings of the terms. With beta
the float64 least-squares coefficients of want over the t_i (computed here,
from want alone), each element must satisfy

    |got - want| <= rtol * sum_i |beta_i t_i| + u * |want| + s

The default rtol of 2e-6 (about 34 float32 ulps) covers N + 1 roundings
for up to 31 models with room; on the test models the error is well below
it, while one tangent step more or less (max_iter 1 against 10 on widely
spread models) or weighting the base differently is orders of magnitude
above it. u bounds the stored dtype's own rounding, half an ulp relative
to the value: 2^-24 for float32, 2^-8 for bfloat16, 2^-11 for float16,
and s its absolute floor among subnormals, half their spacing: 2^-150,
2^-134 and 2^-25 (float16's subnormals reach up to 6e-5, where the
synth models have values).

--copy-of DIR additionally requires every output tensor to equal DIR's bit
for bit. Exit status 0 when everything matches, 1 on the first mismatch, 2
on bad usage.
"""
import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "py"))
import st_reader  # noqa: E402  (path set just above)
from refcheck import Mismatch, first_bad  # noqa: E402

HALF_ULP = {"F32": 2.0 ** -24, "BF16": 2.0 ** -8, "F16": 2.0 ** -11}
# half the spacing of subnormals, where the relative bound stops holding
HALF_SUB = {"F32": 2.0 ** -150, "BF16": 2.0 ** -134, "F16": 2.0 ** -25}



def karcher(ts, max_iter, tol):
    """mergekit's karcher_merge_tensors with alphas 1/N, in float64."""
    if len(ts) == 1:
        return ts[0].astype(np.float64)
    shape = ts[0].shape
    xs = [t.astype(np.float64).reshape(-1) for t in ts]
    with np.errstate(invalid="ignore", over="ignore"):
        norms = [float(np.linalg.norm(x)) for x in xs]
    if not all(math.isfinite(n) for n in norms):
        return np.full(shape, np.nan)
    units = [x / n if n != 0.0 else np.zeros_like(x)
             for x, n in zip(xs, norms)]
    kept = [i for i, n in enumerate(norms) if n > tol]
    if not kept:
        return np.zeros(shape)
    a = 1.0 / len(kept)
    mean = sum(a * units[i] for i in kept)
    mean_norm = np.linalg.norm(mean)
    mean = units[kept[0]].copy() if mean_norm < tol else mean / mean_norm
    for _ in range(max_iter):
        tangent = np.zeros_like(mean)
        for i in kept:
            dot = min(max(float(np.dot(mean, units[i])), -1.0), 1.0)
            theta = math.acos(dot)
            if theta < tol:
                continue
            if math.pi - theta < tol:
                raise Mismatch("model %d is opposed to the running mean "
                               "(angle %r): the merge should have failed"
                               % (i + 1, theta))
            tangent += a * (theta / math.sin(theta)) * (units[i] - dot * mean)
        tn = np.linalg.norm(tangent)
        if tn < tol:
            break
        mean = math.cos(tn) * mean + math.sin(tn) * (tangent / tn)
        un = np.linalg.norm(mean)
        if un > tol:
            mean = mean / un
    scale = sum(n / len(ts) for n in norms)
    return (scale * mean).reshape(shape)


def term_scale(want, ts):
    """sum_i |beta_i t_i| with want = sum_i beta_i t_i by least squares."""
    a = np.stack([t.astype(np.float64).reshape(-1) for t in ts], axis=1)
    w = want.reshape(-1)
    if not np.all(np.isfinite(w)):
        return np.zeros(want.shape)
    beta = np.linalg.lstsq(a, w, rcond=None)[0]
    return (np.abs(a * beta[None, :]).sum(axis=1)).reshape(want.shape)


def same_bits(g, w):
    return np.array_equal(g.astype(np.float32).view(np.uint32),
                          w.astype(np.float32).view(np.uint32))


def check_tensor(name, g, ts, dt, max_iter, tol, rtol):
    want = karcher(ts, max_iter, tol)
    if np.all(np.isnan(want)):
        if not np.all(np.isnan(g)):
            raise Mismatch("%s: expected NaN everywhere" % name)
        return 0.0
    if len(ts) == 1 and not same_bits(g, ts[0]):
        raise Mismatch("%s: one model must be copied bit for bit" % name)
    scale = term_scale(want, ts)
    lim = rtol * scale + HALF_ULP[dt] * np.abs(want) + HALF_SUB[dt]
    err = np.abs(g - want)
    first_bad(name, g, want, err, lim)
    nz = scale > 0
    return float(np.max(err[nz] / scale[nz])) if np.any(nz) else 0.0


def check(out, model_dirs, max_iter, tol, rtol, copy_of):
    _, got, got_dt = st_reader.read_model_full(out)
    models = [st_reader.read_model(d)[1] for d in model_dirs]
    ref = models[0]
    copy = st_reader.read_model(copy_of)[1] if copy_of else None
    if set(got) != set(ref):
        raise Mismatch("output tensors differ from the first model's: extra "
                       "%s, missing %s" % (sorted(set(got) - set(ref))[:5],
                                           sorted(set(ref) - set(got))[:5]))
    worst = 0.0
    for name in sorted(got):
        g = got[name]
        if g.shape != ref[name].shape:
            raise Mismatch("%s: shape %s, expected %s" % (
                name, g.shape, ref[name].shape))
        e = check_tensor(name, g.astype(np.float64),
                         [m[name] for m in models], got_dt[name], max_iter,
                         tol, rtol)
        worst = max(worst, e)
        if copy is not None and not same_bits(g, copy[name]):
            raise Mismatch("%s: not a bit-exact copy of %s" % (name, copy_of))
    return len(got), worst


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--max-iter", type=int, default=10)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--rtol", type=float, default=2e-6)
    ap.add_argument("--copy-of")
    a = ap.parse_args(argv)
    try:
        n, worst = check(a.out, a.model, a.max_iter, a.tol, a.rtol,
                         a.copy_of)
    except (Mismatch, AssertionError, OSError, KeyError) as e:
        print("karcher: %s: %s" % (a.out, e))
        return 1
    print("karcher: %s: %d tensors match (largest error %.3g of the terms' "
          "size)" % (a.out, n, worst))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
