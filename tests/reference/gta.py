#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""gta.py - independent float64 reference for the gta plugin's strategies
(task_arithmetic, ties, dare_ties, dare_linear, breadcrumbs,
breadcrumbs_ties, della, della_linear), written from mergekit's GTATask
and sparsify.py.

usage: gta.py check OUT --method M --base DIR --model DIR SPEC [...]
              [--lambda X] [--normalize 0|1] [--rescale 0|1]
              [--consensus sum|count] [--rescale-mode l1|inverse]
              [--seed N] [--gamma G] [--epsilon E]
       gta.py dare-props OUT --base DIR --model DIR --density P
              [--seed N] [--rescale-mode l1|inverse]
       gta.py della-props OUT --base DIR --model DIR --density P
              [--epsilon E] [--seed N] [--rescale-mode l1|inverse]

SPEC is "weight=W[,density=D][,gamma=G][,epsilon=E]". `check` recomputes
every tensor in float64 and compares it with OUT:

    d_i   = x_i - base                       (ranked by its float32 bits)
    d_i   = sparsify(d_i)                    (the method's rule)
    mixed = consensus ? sum_i w_i d_i [sign(w_i d_i) == elected]
                      : sum_i w_i d_i
    mixed = mixed / divisor                  (normalize)
    out   = base + lambda * mixed

Selections rank |d| (the float32 delta, as mergekit forms it in the
model's dtype) largest first, equal magnitudes by lower index (a stable
argsort), the order the plugin documents. DARE's masks come from a numpy
Philox4x32-10 written from amalgam/rng.h, so matching values also check
the RNG. Tolerance (per element): 1e-6 x the tensor's largest |out| for
f32 output (the plugin computes in f32: about ten roundings of 2^-24 of
the largest magnitude in play, base plus mixed), plus 2^-8 |out| when the
output is bf16 (one rounding to 8 bits). Elements whose sum-rule vote
sum_i w_i d_i is within 1e-6 of sum_i |w_i d_i| of zero are not compared:
f32 and f64 may elect opposite signs there.

`dare-props` checks a dare_linear merge of one model with weight 1: the
kept count within 4 sigma of density * N per tensor, and with rescale_mode
l1 the task vector's L1 norm restored per tensor (relative 1e-5; the
inverse rule restores it only in expectation, so then within 4 sigma of
the kept-count spread).

della's keep probabilities p = float32(density - eps) + (rank_norm * 2) *
float32(eps) are formed in float32 as the plugin and mergekit form them
(rank_norm = (rank - 1) / (n - 1) within each row, a 1-D tensor one row,
equal magnitudes by lower index), so the masks (u < p, u from the same
Philox) match exactly; the rest is float64 with the tolerance above.
`della-props` checks a della_linear merge of one model with weight 1: the
kept count within 4 sigma of sum p over each half of the ranks, and the
L1 norm restored (l1: relative 1e-5; inverse: 4 sigma of its spread).

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

M32 = np.uint64(0xFFFFFFFF)
MASK64 = (1 << 64) - 1

METHODS = {  # name: (sparsifier, consensus, normalize default, rescale default)
    "task_arithmetic": (None, False, False, False),
    "ties": ("magnitude", True, True, False),
    "dare_ties": ("random", True, False, True),
    "dare_linear": ("random", False, False, True),
    "breadcrumbs": ("outliers", False, False, False),
    "breadcrumbs_ties": ("outliers", True, False, False),
    "della": ("della", True, True, True),
    "della_linear": ("della", False, False, True),
}



# ---- amalgam/rng.h, in numpy ----

def mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def tensor_seed(seed, name):
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & MASK64
    return mix64(seed ^ h)


def philox_uniform(seed, stream, n):
    """amg_rng_uniform(seed, stream, i) for i in 0..n-1, as float64:
    word i & 3 of the Philox block i >> 2."""
    idx = np.arange((n + 3) // 4, dtype=np.uint64)
    blocks = idx.size
    c0 = idx & M32
    c1 = idx >> np.uint64(32)
    c2 = np.full(blocks, stream & 0xFFFFFFFF, dtype=np.uint64)
    c3 = np.full(blocks, stream >> 32, dtype=np.uint64)
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & M32
        hi1, lo1 = p1 >> np.uint64(32), p1 & M32
        c0, c1, c2, c3 = (hi1 ^ c1 ^ np.uint64(k0), lo1,
                          hi0 ^ c3 ^ np.uint64(k1), lo0)
        k0 = (k0 + 0x9E3779B9) & 0xFFFFFFFF
        k1 = (k1 + 0xBB67AE85) & 0xFFFFFFFF
    words = np.stack([c0, c1, c2, c3], axis=1).reshape(-1)[:n]
    return (words >> np.uint64(8)).astype(np.float64) * 2.0 ** -24


# ---- sparsifiers (mergekit's sparsify.py) ----

def rank_order(d32):
    """Indices by |d| largest first, equal magnitudes by lower index."""
    return np.argsort(-np.abs(d32.reshape(-1)), kind="stable")


def keep_ranks(d32, lo, hi):
    mask = np.zeros(d32.size, dtype=bool)
    mask[rank_order(d32)[lo:hi]] = True
    return mask


def l1_rescale(d, mask):
    kept = d * mask
    before, after = np.abs(d).sum(), np.abs(kept).sum()
    if before < 1e-7 or after < 1e-7:
        return kept
    return kept * (before / after)


def sparsify(method, d32, p, i, seed, name, rescale, mode):
    d = d32.astype(np.float64).reshape(-1)
    n = d.size
    dens = p.get("density", 1.0)
    if method is None or dens >= 1.0:
        return d
    if method == "della":
        return della_sparsify(d32, p, i, seed, name, rescale, mode)
    if method == "magnitude":
        k = int(dens * n)
        if k == 0:
            raise Mismatch("%s: density %g keeps nothing; the merge should "
                           "have failed" % (name, dens))
        mask = keep_ranks(d32, 0, k)
    elif method == "outliers":
        target = int(dens * n)
        n_top = int(p["gamma"] * n)
        n_bot = n - target - n_top
        if n_bot < 0:
            n_top += n_bot
            n_bot = 0
        # mergekit's sorted[n_bot:-n_top] keeps nothing when n_top is 0;
        # the plugin keeps the top then
        mask = keep_ranks(d32, n_top, n - n_bot)
    else:
        mask = philox_uniform(tensor_seed(seed, name), i, n) < dens
        if rescale and mode == "inverse":
            return d * mask / dens if dens > 0 else d * mask
    return l1_rescale(d, mask) if rescale else d * mask


def reference(name, base, xs, params, a):
    sp, consensus, _, _ = METHODS[a.method]
    b32 = base.astype(np.float32)
    ds = [sparsify(sp, (x.astype(np.float32) - b32), p, i, a.seed, name,
                   a.rescale, a.rescale_mode)
          for i, (x, p) in enumerate(zip(xs, params))]
    w = np.array([float(np.float32(p["weight"])) for p in params])
    wd = np.stack([wi * d for wi, d in zip(w, ds)])
    skip = np.zeros(wd.shape[1], dtype=bool)
    if consensus:
        s = np.sign(wd)
        vote = wd.sum(axis=0) if a.consensus == "sum" else s.sum(axis=0)
        if a.consensus == "sum":
            skip = np.abs(vote) <= 1e-6 * np.abs(wd).sum(axis=0)
            skip &= np.abs(vote) > 0
        elected = np.where(vote >= 0, 1.0, -1.0)
        agree = s == elected
        mixed = (wd * agree).sum(axis=0)
        div = (w[:, None] * agree).sum(axis=0)
        div[np.abs(div) < 1e-8] = 1.0
    else:
        mixed = wd.sum(axis=0)
        div = w.sum()
        if abs(div) < 1e-8:
            div = 1.0
    if a.normalize:
        mixed = mixed / div
    out = base.astype(np.float64).reshape(-1) + a.lam * mixed
    return out.reshape(base.shape), skip.reshape(base.shape)


def parse_spec(spec):
    p = {}
    for part in spec.split(","):
        k, _, v = part.partition("=")
        if k not in ("weight", "density", "gamma", "epsilon") or not v:
            raise SystemExit("gta.py: bad model spec %r" % spec)
        p[k] = float(v)
    if "weight" not in p:
        raise SystemExit("gta.py: model spec %r has no weight" % spec)
    return p


def check(a):
    _, got, got_dt = st_reader.read_model_full(a.out)
    _, base = st_reader.read_model(a.base)
    inputs = [st_reader.read_model(m)[1] for m, _ in a.model]
    params = [parse_spec(s) for _, s in a.model]
    for p in params:
        p.setdefault("gamma", a.gamma)
        p.setdefault("epsilon", a.epsilon)
    worst, skipped = 0.0, 0
    for name in sorted(base):
        if name not in got:
            raise Mismatch("%s: missing from the output" % name)
        want, skip = reference(name, base[name],
                               [t[name] for t in inputs], params, a)
        g = got[name].astype(np.float64)
        tol = 1e-6 * max(np.abs(want).max(), 1e-30)
        if got_dt[name] == "BF16":
            tol = tol + 2.0 ** -8 * np.abs(want)
        err = np.abs(g - want)
        bad = (err > tol) & ~skip
        skipped += int(skip.sum())
        first_bad(name, g, want, err, tol, bad=bad)
        rel = err / np.maximum(np.abs(want).max(), 1e-30)
        worst = max(worst, float(rel.max()))
    print("gta.py: %s: %d tensors match %s (largest error %.2g of the "
          "tensor's scale, %d near-tie votes skipped)" % (
              a.out, len(base), a.method, worst, skipped))


def dare_props(a):
    _, got = st_reader.read_model(a.out)
    _, base = st_reader.read_model(a.base)
    _, x = st_reader.read_model(a.model[0][0])
    p = a.density
    for name in sorted(base):
        b = base[name].astype(np.float64).reshape(-1)
        d = x[name].astype(np.float64).reshape(-1) - b
        o = got[name].astype(np.float64).reshape(-1) - b
        n = int((d != 0).sum())
        kept = int(((o != 0) & (d != 0)).sum())
        sigma = np.sqrt(n * p * (1 - p))
        if abs(kept - p * n) > 4 * sigma + 1:
            raise Mismatch("%s: kept %d of %d, expected %g +- 4 x %.1f" % (
                name, kept, n, p * n, sigma))
        l1, l1o = np.abs(d).sum(), np.abs(o).sum()
        if a.rescale_mode == "l1":
            if kept and abs(l1o - l1) > 1e-5 * l1:
                raise Mismatch("%s: L1 %r, the task vector's %r" % (
                    name, l1o, l1))
        elif kept and abs(l1o - l1) > 4 * np.sqrt((1 - p) / max(p * n, 1)) \
                * l1 * 4:
            raise Mismatch("%s: L1 %r far from the task vector's %r" % (
                name, l1o, l1))
    print("gta.py: %s: kept counts and L1 norms as expected (%d tensors)" % (
        a.out, len(base)))


# ---- della, della_linear (mergekit's della_magprune) ----

def della_rank_norm(d32):
    """(rank - 1) / (n - 1) of |d| in each row (dimension 0; a 1-D tensor
    is one row), ranks 1..n smallest first, equal magnitudes by lower
    index (a stable argsort), rounded once to float32; 0 in a row of one
    element."""
    rows = d32.reshape(d32.shape[0], -1) if d32.ndim > 1 \
        else d32.reshape(1, -1)
    r, n = rows.shape
    if n < 2:
        return np.zeros(rows.size, dtype=np.float32)
    order = np.argsort(np.abs(rows), axis=1, kind="stable")
    rank = np.empty(rows.shape, dtype=np.float64)
    np.put_along_axis(rank, order,
                      np.tile(np.arange(n, dtype=np.float64), (r, 1)), axis=1)
    return (rank / (n - 1)).astype(np.float32).reshape(-1)


def della_probs(d32, dens, eps):
    """Keep probabilities in float32, in mergekit's order and roundings:
    float32(density - eps) + (rank_norm * 2) * float32(eps)."""
    rn = della_rank_norm(d32)
    return np.float32(dens - eps) + (rn * np.float32(2.0)) * np.float32(eps)


def della_sparsify(d32, p, i, seed, name, rescale, mode):
    d = d32.astype(np.float64).reshape(-1)
    dens, eps = p.get("density", 1.0), p["epsilon"]
    if dens <= 0.0:
        return np.zeros_like(d)
    if dens - eps <= 0.0 or dens + eps >= 1.0:
        raise Mismatch("%s: density %g +/- epsilon %g leaves (0, 1); the "
                       "merge should have failed" % (name, dens, eps))
    prob = della_probs(d32, dens, eps).astype(np.float64)
    mask = philox_uniform(tensor_seed(seed, name), i, d.size) < prob
    if rescale and mode == "inverse":
        return d * mask / prob
    return l1_rescale(d, mask) if rescale else d * mask


def della_props(a):
    """A della_linear merge of one model with weight 1: per tensor, the
    kept count within 4 sigma of sum p, separately over the lower and the
    upper half of the ranks (so p must grow with |d|), and the L1 norm
    restored (l1: relative 1e-5; inverse: within 4 sigma of its spread,
    sqrt(sum d^2 (1 - p) / p))."""
    _, got = st_reader.read_model(a.out)
    _, base = st_reader.read_model(a.base)
    _, x = st_reader.read_model(a.model[0][0])
    for name in sorted(base):
        b32 = base[name].astype(np.float32)
        d32 = x[name].astype(np.float32) - b32
        d = d32.astype(np.float64).reshape(-1)
        o = got[name].astype(np.float64).reshape(-1) - \
            b32.astype(np.float64).reshape(-1)
        prob = della_probs(d32, a.density, a.epsilon).astype(np.float64)
        rn = della_rank_norm(d32)
        live = d != 0
        kept = (o != 0) & live
        for half, sel in (("lower", (rn < 0.5) & live),
                          ("upper", (rn >= 0.5) & live)):
            mean = prob[sel].sum()
            sigma = np.sqrt((prob[sel] * (1 - prob[sel])).sum())
            k = int(kept[sel].sum())
            if abs(k - mean) > 4 * sigma + 1:
                raise Mismatch("%s: kept %d in the %s half of the ranks, "
                               "expected %.1f +- 4 x %.1f" % (
                                   name, k, half, mean, sigma))
        l1, l1o = np.abs(d).sum(), np.abs(o).sum()
        if a.rescale_mode == "l1":
            spread = 1e-5 * l1
        else:
            spread = 4 * np.sqrt((d * d * (1 - prob) / prob).sum()) + \
                1e-5 * l1
        if kept.any() and abs(l1o - l1) > spread:
            raise Mismatch("%s: L1 %r, the task vector's %r (allowed %.3g)"
                           % (name, l1o, l1, spread))
    print("gta.py: %s: della kept counts by rank half and L1 norms as "
          "expected (%d tensors)" % (a.out, len(base)))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["check", "dare-props", "della-props"])
    ap.add_argument("out")
    ap.add_argument("--method", default="dare_linear", choices=sorted(METHODS))
    ap.add_argument("--base", required=True)
    ap.add_argument("--model", nargs="+", action="append", required=True)
    ap.add_argument("--lambda", dest="lam", type=float, default=1.0)
    ap.add_argument("--normalize", type=int, choices=[0, 1])
    ap.add_argument("--rescale", type=int, choices=[0, 1])
    ap.add_argument("--consensus", default="sum", choices=["sum", "count"])
    ap.add_argument("--rescale-mode", default="l1", choices=["l1", "inverse"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--density", type=float, default=1.0)
    ap.add_argument("--gamma", type=float, default=0.01,
                    help="gamma of models whose SPEC sets none")
    ap.add_argument("--epsilon", type=float, default=0.15,
                    help="della epsilon of models whose SPEC sets none")
    a = ap.parse_args(argv)
    _, _, norm, resc = METHODS[a.method]
    a.normalize = norm if a.normalize is None else bool(a.normalize)
    a.rescale = resc if a.rescale is None else bool(a.rescale)
    for m in a.model:
        if len(m) != (2 if a.what == "check" else 1):
            ap.error("--model takes DIR SPEC for check, DIR for the "
                     "*-props checks")
    try:
        {"check": check, "dare-props": dare_props,
         "della-props": della_props}[a.what](a)
    except (Mismatch, AssertionError, OSError) as e:
        print("gta.py: %s: %s" % (a.out, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
