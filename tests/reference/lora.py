#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""lora.py - PEFT LoRA adapters for the tests, and a float64 numpy
reference for folding them, written from PEFT's layer.py / model.py /
other.py (research/formats.md §3), not from amalgam's C.

usage:
  lora.py make OUT --base DIR [--modules M,M,...] [--r R] [--alpha A]
          [--rslora] [--fan-in-fan-out] [--dtype F32|BF16|F16]
          [--rank-pattern JSON] [--alpha-pattern JSON] [--seed N]
          [--base-name NAME | --no-base-name] [--bad-shape MODULE]
          [--config-extra JSON]
  lora.py check OUT --model SPEC W [--model SPEC W ...]
          [--out-dtype BF16|F16|F32] [--tau X] [--perturb X]

make: writes a PEFT adapter folder for the model in --base: for every
module M (default: every q_proj and v_proj; "model.embed_tokens" makes an
embedding LoRA) lora_A / lora_B factors of the rank rank_pattern gives it
(PEFT's get_pattern_key: first key P with re.match(r"(.*\\.)?(P)$", M)),
normal values times 0.1 from numpy's RandomState(seed), saved as PEFT
saves them (base_model.model.<M>.lora_A.weight [r, in], .lora_B.weight
[out, r]; lora_embedding_A [r, vocab] / lora_embedding_B [dim, r];
for --fan-in-fan-out the base weight is read as [in, out]). --bad-shape
gives that module's lora_A one column too many; --config-extra merges keys
into adapter_config.json. base_model_name_or_path is --base-name
(default: the base folder relative to OUT's parent, as a sibling).

check: recomputes a `linear` merge (weights W, normalized) of the listed
models in float64, each SPEC a model folder, BASE+ADAPTER, or an adapter
folder alone (its base from base_model_name_or_path, relative to the
adapter), folding each adapter as PEFT's merge does:

    W' = W + round_adapter(scale * (B @ A))      (transposed for
    scale = alpha / r  (alpha / sqrt(r) with use_rslora)   fan_in_fan_out
                                                  and embeddings)

round_adapter rounds to lora_B's dtype (PEFT casts the update back to it
on the cpu). Every output element must satisfy

    |got - ref| <= tau * S + ulp_out(ref) / 2 + ulp_adapter(delta)

S the largest of |W| + scale * (|B| @ |A|) over the inputs (a bound on
the f32 sums' magnitudes), tau 2^-20 by default (16 f32 ulps: r <= 8
products and a weighted sum, each off by half an ulp), ulp_adapter the
unit in the last place of the update in a 16-bit adapter dtype (the f32
and f64 updates can round to neighbours). --perturb X multiplies every
update by X: the test shows the checker rejecting X = 1.01.
Exit status 0 when everything matches, 1 on a mismatch, 2 on bad usage.
"""
import argparse
import json
import math
import os
import re
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "py"))
import st_reader  # noqa: E402  (path set just above)
from refcheck import Mismatch  # noqa: E402

PREFIX = "base_model.model."



def pattern_key(keys, name):
    """PEFT's get_pattern_key: the first key matching, else None."""
    for k in keys:
        if re.match(r"(.*\.)?(%s)$" % k, name):
            return k
    return None


# ---- 16-bit rounding from float64, written independently of amalgam ----

def round_bf16_f64(x):
    """Round float64 to bf16 (8 significant bits, ties to even)."""
    m, e = np.frexp(x)
    return np.ldexp(np.round(np.ldexp(m, 8)), e - 8)


def round_dtype(x, dt):
    if dt == "BF16":
        return round_bf16_f64(x)
    if dt == "F16":
        return x.astype(np.float16).astype(np.float64)
    if dt == "F32":
        return x.astype(np.float32).astype(np.float64)
    return x


def ulp(x, dt):
    """Unit in the last place of |x| in dtype dt (normal range)."""
    bits = {"BF16": 8, "F16": 11, "F32": 24}.get(dt)
    if bits is None:
        return np.zeros_like(x)
    a = np.maximum(np.abs(x), {"BF16": 1e-38, "F16": 6.1e-5,
                               "F32": 1e-38}[dt])
    _, e = np.frexp(a)
    return np.ldexp(np.ones_like(a), e - bits)


# ---- a safetensors writer (numpy only) ----

def to_bytes(x, dt):
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    if dt == "F32":
        return x32.tobytes()
    if dt == "F16":
        return x32.astype(np.float16).tobytes()
    bits = x32.view(np.uint32).astype(np.uint64)
    r = (bits + np.uint64(0x7FFF) + ((bits >> np.uint64(16)) &
                                     np.uint64(1))) >> np.uint64(16)
    return r.astype(np.uint16).tobytes()


def write_safetensors(path, tensors):
    """tensors: list of (name, float array, dtype)."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, x, dt in tensors:
        b = to_bytes(x, dt)
        header[name] = {"dtype": dt, "shape": list(x.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---- make ----

def make(o):
    _, base = st_reader.read_model(o.base)
    mods = o.modules.split(",") if o.modules else sorted(
        n[:-len(".weight")] for n in base
        if n.endswith(("q_proj.weight", "v_proj.weight")))
    rank_pattern = json.loads(o.rank_pattern) if o.rank_pattern else {}
    alpha_pattern = json.loads(o.alpha_pattern) if o.alpha_pattern else {}
    rng = np.random.RandomState(o.seed)
    tensors = []
    for m in mods:
        key = pattern_key(rank_pattern, m)
        r = rank_pattern[key] if key is not None else o.r
        w = base.get(m + ".weight")
        shape = w.shape if w is not None else (8, 8)
        emb = m.endswith("embed_tokens")
        if emb or o.fan_in_fan_out:
            n_in, n_out = shape[0], shape[1]
        else:
            n_out, n_in = shape[0], shape[1]
        if m == o.bad_shape:
            n_in += 1
        a = rng.standard_normal((r, n_in)) * 0.1
        b = rng.standard_normal((n_out, r)) * 0.1
        if emb:
            tensors.append((PREFIX + m + ".lora_embedding_A", a, o.dtype))
            tensors.append((PREFIX + m + ".lora_embedding_B", b, o.dtype))
        else:
            tensors.append((PREFIX + m + ".lora_A.weight", a, o.dtype))
            tensors.append((PREFIX + m + ".lora_B.weight", b, o.dtype))
    os.makedirs(o.out, exist_ok=True)
    if o.no_base_name:
        base_name = None
    elif o.base_name is not None:
        base_name = o.base_name
    else:
        base_name = os.path.relpath(os.path.abspath(o.base),
                                    os.path.abspath(o.out))
    cfg = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_name,
        "r": o.r, "lora_alpha": o.alpha, "use_rslora": o.rslora,
        "fan_in_fan_out": o.fan_in_fan_out, "lora_dropout": 0.0,
        "bias": "none", "target_modules": sorted(set(
            m.rsplit(".", 1)[-1] for m in mods)),
        "rank_pattern": rank_pattern, "alpha_pattern": alpha_pattern,
        "modules_to_save": None, "use_dora": False,
    }
    if o.config_extra:
        cfg.update(json.loads(o.config_extra))
    with open(os.path.join(o.out, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(o.out, "adapter_model.safetensors"),
                      tensors)


# ---- the fold, in float64 ----

def fold(base, adapter_dir, perturb):
    """(tensors with the adapter folded in, per-tensor bound S, extra ulp)"""
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        cfg = json.load(f)
    _, fac, dts = st_reader.read_file_full(
        os.path.join(adapter_dir, "adapter_model.safetensors"))
    out = {n: x.astype(np.float64) for n, x in base.items()}
    bound = {n: np.abs(x) for n, x in out.items()}
    extra = {n: np.zeros_like(x) for n, x in out.items()}
    rp = cfg.get("rank_pattern") or {}
    ap = cfg.get("alpha_pattern") or {}
    for name in fac:
        for sa, sb, emb in ((".lora_A.weight", ".lora_B.weight", False),
                            (".lora_embedding_A", ".lora_embedding_B", True)):
            if name.endswith(sa):
                break
        else:
            continue
        m = name[len(PREFIX):-len(sa)]
        a = fac[name].astype(np.float64)
        bname = PREFIX + m + sb
        b = fac[bname].astype(np.float64)
        rk, ak = pattern_key(rp, m), pattern_key(ap, m)
        r = rp[rk] if rk is not None else cfg.get("r", 8)
        alpha = ap[ak] if ak is not None else cfg.get("lora_alpha", 8)
        scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
        scale = float(np.float32(scale))       # PEFT multiplies in f32
        delta = scale * (b @ a) * perturb
        mag = scale * (np.abs(b) @ np.abs(a))
        if emb or cfg.get("fan_in_fan_out"):
            delta, mag = delta.T, mag.T
        delta = round_dtype(delta, dts[bname])
        t = m + ".weight"
        out[t] = out[t] + delta
        bound[t] = bound[t] + mag
        extra[t] = extra[t] + ulp(delta, dts[bname]) * (dts[bname] != "F32")
    return out, bound, extra


def load_spec(spec, perturb):
    adapter = None
    if "+" in spec and not os.path.exists(spec):
        spec, adapter = spec.split("+", 1)
    elif os.path.exists(os.path.join(spec, "adapter_config.json")):
        adapter = spec
        with open(os.path.join(spec, "adapter_config.json")) as f:
            spec = os.path.join(spec, json.load(f)["base_model_name_or_path"])
    _, base = st_reader.read_model(spec)
    if adapter is None:
        x = {n: v.astype(np.float64) for n, v in base.items()}
        return x, {n: np.abs(v) for n, v in x.items()}, \
            {n: np.zeros_like(v) for n, v in x.items()}
    return fold(base, adapter, perturb)


def check(o):
    models = [(load_spec(s, o.perturb), float(w)) for s, w in o.model]
    total = sum(w for _, w in models)
    _, got, dts = st_reader.read_model_full(o.out)
    names = set(models[0][0][0])
    if set(got) != names:
        raise Mismatch("tensor names differ: %s" % sorted(set(got) ^ names))
    for n in sorted(names):
        ref = sum(w * x[0][n] for x, w in models) / total
        s = np.maximum.reduce([x[1][n] for x, _ in models])
        extra = sum(abs(w) * x[2][n] for x, w in models) / abs(total)
        g = got[n].astype(np.float64)
        if g.shape != ref.shape:
            raise Mismatch("%s: shape %s, want %s" % (n, g.shape, ref.shape))
        tol = o.tau * s + ulp(ref, o.out_dtype or dts[n]) / 2 + extra
        bad = np.nonzero(np.abs(g - ref) > tol)
        if bad[0].size:
            i = tuple(int(v[0]) for v in bad)
            raise Mismatch("%s%s: got %r, want %r (tolerance %g)" % (
                n, list(i), g[i], ref[i], tol[i]))


def main(argv):
    p = argparse.ArgumentParser(prog="lora.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("out")
    mk.add_argument("--base", required=True)
    mk.add_argument("--modules")
    mk.add_argument("--r", type=int, default=4)
    mk.add_argument("--alpha", type=float, default=8)
    mk.add_argument("--rslora", action="store_true")
    mk.add_argument("--fan-in-fan-out", action="store_true")
    mk.add_argument("--dtype", default="F32", choices=["F32", "BF16", "F16"])
    mk.add_argument("--rank-pattern")
    mk.add_argument("--alpha-pattern")
    mk.add_argument("--seed", type=int, default=1)
    mk.add_argument("--base-name")
    mk.add_argument("--no-base-name", action="store_true")
    mk.add_argument("--bad-shape")
    mk.add_argument("--config-extra")
    ck = sub.add_parser("check")
    ck.add_argument("out")
    ck.add_argument("--model", nargs=2, action="append", required=True,
                    metavar=("SPEC", "W"))
    ck.add_argument("--out-dtype", choices=["BF16", "F16", "F32"])
    ck.add_argument("--tau", type=float, default=2.0 ** -20)
    ck.add_argument("--perturb", type=float, default=1.0)
    o = p.parse_args(argv)
    if o.cmd == "make":
        make(o)
        return 0
    try:
        check(o)
    except Mismatch as e:
        print("mismatch: %s" % e, file=sys.stderr)
        return 1
    print("ok: %s matches the float64 fold reference" % o.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
