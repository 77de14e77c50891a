#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""check_written.py - check a model written by `amalgam synth` element by
element against an independent numpy implementation of the synth formula.

usage: check_written.py DIR [synth options as given to amalgam synth]
       [--shards N]

The tensors are read with st_reader.py (an independent safetensors reader),
the expected values are recomputed here from the formula documented at the
top of host/synth.c, rounded to the stored dtype here (bf16 by integer
round-to-nearest-even, f16 by numpy's own conversion), and compared for
exact equality. Also checked: the tensor names, shapes and stored dtypes,
config.json and generation_config.json fields, and the shard files and
index against the greedy sharding rule (and, when given, --shards N).
Exit status 0 when everything matches, 1 on the first mismatch (named with
its tensor and element index), 2 on bad usage.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_reader  # noqa: E402  (the sibling module; path set just above)

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15

DTYPES = {  # user spelling -> (safetensors name, torch name)
    "bf16": ("BF16", "bfloat16"), "bfloat16": ("BF16", "bfloat16"),
    "f16": ("F16", "float16"), "fp16": ("F16", "float16"),
    "float16": ("F16", "float16"), "half": ("F16", "float16"),
    "f32": ("F32", "float32"), "fp32": ("F32", "float32"),
    "float32": ("F32", "float32"), "float": ("F32", "float32"),
    "f64": ("F64", "float64"), "fp64": ("F64", "float64"),
    "float64": ("F64", "float64"), "double": ("F64", "float64"),
}


class Mismatch(Exception):
    pass


# ---- the value formula, written from its description in host/synth.c ----

def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def mix64_int(z):
    z &= MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def mix64_array(z):
    """The same finalizer on a uint64 array (numpy wraps modulo 2**64)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def stream_key(seed, stream, name):
    return mix64_int(mix64_int(seed + GOLDEN * (stream + 1)) ^ fnv1a64(name))


def uniform(key, n):
    """u(stream, i) for i in 0..n-1 as float64 (each an exact float32)."""
    i = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(key) + np.uint64(GOLDEN) * i
        bits = mix64_array(z) >> np.uint64(40)
    return bits.astype(np.float64) * (1.0 / 8388608.0) - 1.0


def expected_f32(opts, name, n):
    """The f32 values before rounding to the stored dtype."""
    if name.endswith("norm.weight"):
        amp, offset = 0.1, 1.0
    else:
        amp, offset = 0.02, 0.0
    base = offset + amp * uniform(stream_key(opts.seed, 0, name), n)
    if opts.expert <= 0:
        return base.astype(np.float32)
    agree = float(np.float32(opts.agree))
    scale = float(np.float32(opts.delta_scale)) * amp
    c = uniform(stream_key(opts.seed, 1, name), n)
    s = uniform(stream_key(opts.seed, opts.expert + 1, name), n)
    t = agree * c + (1.0 - agree) * s
    return (base + scale * t).astype(np.float32)


# ---- rounding to the stored dtype, independent of amalgam's code ----

def round_bf16(x32):
    """Round-to-nearest-even on the float32 bit pattern (no NaN here)."""
    bits = x32.view(np.uint32).astype(np.uint64)
    rounded = (bits + np.uint64(0x7FFF) + ((bits >> np.uint64(16)) &
                                           np.uint64(1))) >> np.uint64(16)
    out = (rounded << np.uint64(16)).astype(np.uint32)
    return out.view(np.float32)


def round_to(x32, st_dtype):
    if st_dtype == "BF16":
        return round_bf16(x32).astype(np.float64)
    if st_dtype == "F16":
        return x32.astype(np.float16).astype(np.float64)
    return x32.astype(np.float64)


# ---- what the model should hold ----

def expected_tensors(o):
    """(name, shape) in the order transformers' state_dict lists them."""
    hd = o.hidden // o.heads
    q, kv = hd * o.heads, hd * o.kv_heads
    out = [("model.embed_tokens.weight", (o.vocab, o.hidden))]
    for i in range(o.layers):
        p = "model.layers.%d." % i
        out += [(p + "self_attn.q_proj.weight", (q, o.hidden)),
                (p + "self_attn.k_proj.weight", (kv, o.hidden)),
                (p + "self_attn.v_proj.weight", (kv, o.hidden)),
                (p + "self_attn.o_proj.weight", (o.hidden, q)),
                (p + "mlp.gate_proj.weight", (o.intermediate, o.hidden)),
                (p + "mlp.up_proj.weight", (o.intermediate, o.hidden)),
                (p + "mlp.down_proj.weight", (o.hidden, o.intermediate)),
                (p + "input_layernorm.weight", (o.hidden,)),
                (p + "post_attention_layernorm.weight", (o.hidden,))]
    out.append(("model.norm.weight", (o.hidden,)))
    if not o.tie:
        out.append(("lm_head.weight", (o.vocab, o.hidden)))
    return out


def tensor_files(d):
    """{tensor: (dtype, file)} from every .safetensors header in d, read
    here so that the shard each tensor sits in is known."""
    found = {}
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".safetensors"):
            continue
        with open(os.path.join(d, fn), "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            hdr = json.loads(f.read(n))
        for name, info in hdr.items():
            if name != "__metadata__":
                found[name] = (info["dtype"], fn)
    return found


def check_config(d, o, st_dtype, torch_dtype):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    want = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": o.hidden, "intermediate_size": o.intermediate,
        "num_hidden_layers": o.layers, "num_attention_heads": o.heads,
        "num_key_value_heads": o.kv_heads, "vocab_size": o.vocab,
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0, "hidden_act": "silu",
        "tie_word_embeddings": bool(o.tie), "torch_dtype": torch_dtype,
        "bos_token_id": 1, "eos_token_id": 2,
    }
    for k, v in want.items():
        if k not in cfg:
            raise Mismatch("config.json: no key '%s'" % k)
        if cfg[k] != v or type(cfg[k]) is not type(v):
            raise Mismatch("config.json: %s is %r, expected %r"
                           % (k, cfg[k], v))
    if not isinstance(cfg.get("transformers_version"), str):
        raise Mismatch("config.json: transformers_version is not a string")
    with open(os.path.join(d, "generation_config.json")) as f:
        gen = json.load(f)
    for k, v in (("bos_token_id", 1), ("eos_token_id", 2)):
        if gen.get(k) != v:
            raise Mismatch("generation_config.json: %s is %r, expected %r"
                           % (k, gen.get(k), v))


def parse_size(s):
    """transformers' units (KB = 1000) and binary ones (KiB = 1024)."""
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9,
             "tb": 10**12, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
             "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
    s = s.strip()
    i = len(s)
    while i and not (s[i - 1].isdigit() or s[i - 1] == "."):
        i -= 1
    return int(float(s[:i]) * units[s[i:].strip().lower()])


def plan_shards(want, esize, limit):
    """Shard number of each tensor by the greedy rule of huggingface_hub:
    in order, start a new shard when the next tensor would push the current
    one past the limit; a tensor larger than the limit sits alone."""
    plan, shard, used = {}, 0, 0
    for name, shape in want:
        size = int(np.prod(shape)) * esize
        if used and used + size > limit:
            shard, used = shard + 1, 0
        plan[name] = shard
        used += size
    return plan, shard + 1


def check_shards(d, o, want, esize):
    names = [n for n, _ in want]
    plan, n_plan = plan_shards(want, esize, parse_size(o.shard_size))
    files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    if o.shards is not None and len(files) != o.shards:
        raise Mismatch("%d shard files (%s), expected %d"
                       % (len(files), ", ".join(files), o.shards))
    if len(files) != n_plan:
        raise Mismatch("%d shard files, the greedy rule at %s makes %d"
                       % (len(files), o.shard_size, n_plan))
    if len(files) == 1:
        if files != ["model.safetensors"]:
            raise Mismatch("single shard named %s" % files[0])
        if os.path.exists(os.path.join(d, "model.safetensors.index.json")):
            raise Mismatch("index file next to a single shard")
        return len(files)
    n = len(files)
    want_files = ["model-%05d-of-%05d.safetensors" % (i + 1, n)
                  for i in range(n)]
    if files != want_files:
        raise Mismatch("shard files %s, expected %s" % (files, want_files))
    with open(os.path.join(d, "model.safetensors.index.json")) as f:
        index = json.load(f)
    where = tensor_files(d)
    wm = index["weight_map"]
    if sorted(wm) != sorted(names):
        raise Mismatch("index weight_map names differ from the tensors")
    for name, fn in wm.items():
        if where[name][1] != fn:
            raise Mismatch("index puts '%s' in %s, it is in %s"
                           % (name, fn, where[name][1]))
        if fn != want_files[plan[name]]:
            raise Mismatch("'%s' is in %s, the greedy rule puts it in %s"
                           % (name, fn, want_files[plan[name]]))
    if index["metadata"]["total_size"] != sum(
            int(np.prod(shape)) * esize for _, shape in want):
        raise Mismatch("index total_size %r is not the sum of tensor bytes"
                       % index["metadata"]["total_size"])
    return n


def check(o):
    st_dtype, torch_dtype = DTYPES[o.dtype.lower()]
    want = expected_tensors(o)
    names = [n for n, _ in want]
    try:
        _, model, stored = st_reader.read_model_full(o.dir)
    except AssertionError as e:
        raise Mismatch("the reader rejects the model: %s" % e)
    if sorted(model) != sorted(names):
        extra = sorted(set(model) - set(names))
        missing = sorted(set(names) - set(model))
        raise Mismatch("tensor names differ: extra %s, missing %s"
                       % (extra, missing))
    total = 0
    for name, shape in want:
        if stored[name] != st_dtype:
            raise Mismatch("%s: stored as %s, expected %s"
                           % (name, stored[name], st_dtype))
        got = np.asarray(model[name])
        if tuple(got.shape) != shape:
            raise Mismatch("%s: shape %s, expected %s"
                           % (name, list(got.shape), list(shape)))
        n = int(np.prod(shape))
        exp = round_to(expected_f32(o, name, n), st_dtype)
        got = got.reshape(-1).astype(np.float64)
        if not np.array_equal(got, exp):
            i = int(np.flatnonzero(got != exp)[0])
            raise Mismatch("%s: element %d is %r, expected %r"
                           % (name, i, float(got[i]), float(exp[i])))
        total += n
    check_config(o.dir, o, st_dtype, torch_dtype)
    esize = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8}[st_dtype]
    shards = check_shards(o.dir, o, want, esize)
    return len(want), total, st_dtype, shards


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--intermediate", type=int, default=176)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--tie", action="store_true")
    p.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--expert", type=int, default=0)
    p.add_argument("--delta-scale", type=float, default=0.05)
    p.add_argument("--agree", type=float, default=0.5)
    p.add_argument("--shard-size", default="5GB")
    p.add_argument("--shards", type=int, default=None,
                   help="expected number of .safetensors files")
    o = p.parse_args(argv)
    try:
        n_tensors, n_values, st_dtype, shards = check(o)
    except Mismatch as e:
        print("check_written: '%s': MISMATCH: %s" % (o.dir, e))
        return 1
    print("check_written: '%s': %d tensors, %d values identical (%s, "
          "%d shard%s)" % (o.dir, n_tensors, n_values, st_dtype, shards,
                           "" if shards == 1 else "s"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
