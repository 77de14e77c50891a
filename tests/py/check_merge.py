#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""check_merge.py - check a model written by `amalgam merge` with the
`linear` strategy against an independent numpy reference.

usage: check_merge.py OUT --model DIR WEIGHT [--model DIR WEIGHT ...]
       [--no-normalize] [--out-dtype BF16|F16|F32] [--config-from DIR]
       [--same-file NAME DIR ...] [--absent NAME ...]

Every model is read with st_reader.py (an independent safetensors reader);
the merge is recomputed in numpy float32 in the plugin's documented order:

    acc = 0; acc = acc + float32(w_i) * x_i   for i in model order
    acc = acc / float32(sum_i w_i)            when normalizing; the sum in
                                              float64, in model order, and
                                              no division when it is 1

then rounded to the output dtype (bf16 by integer round-to-nearest-even,
the function check_written.py uses; f16 by numpy) and compared bit for bit.
Also checked: the output holds exactly the first model's tensor names and
shapes; config.json equals --config-from's except for torch_dtype (the
output dtype's torch name); the --same-file files are byte copies of the
named folders' files; the --absent files are not there.
Exit status 0 when everything matches, 1 on the first mismatch, 2 on bad
usage.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_reader  # noqa: E402  (sibling modules; path set just above)
from check_written import round_bf16  # noqa: E402

TORCH_NAMES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}


class Mismatch(Exception):
    pass


def expected_linear(xs, weights, normalize):
    """The linear merge of float32 arrays xs, as the plugin computes it."""
    acc = np.zeros_like(xs[0], dtype=np.float32)
    for x, w in zip(xs, weights):
        acc = acc + np.float32(w) * x
    if normalize:
        total = 0.0
        for w in weights:
            total += w
        if total == 0.0:
            raise Mismatch("weights sum to 0: the merge should have failed")
        if np.float32(total) != np.float32(1.0):
            acc = acc / np.float32(total)
    return acc


def rounded(x32, st_dtype):
    """Round float32 values to st_dtype and return them as float32."""
    if st_dtype == "BF16":
        return round_bf16(x32)
    if st_dtype == "F16":
        return x32.astype(np.float16).astype(np.float32)
    if st_dtype == "F32":
        return x32
    raise Mismatch("output dtype %s is not checked here" % st_dtype)


def first_difference(got, want):
    """Index of the first element whose float32 bits differ, or None."""
    g = got.astype(np.float32).reshape(-1).view(np.uint32)
    w = want.astype(np.float32).reshape(-1).view(np.uint32)
    diff = np.nonzero(g != w)[0]
    return None if diff.size == 0 else int(diff[0])


def check_tensors(out, models, weights, normalize, out_dtype):
    _, got, got_dt = st_reader.read_model_full(out)
    inputs = [st_reader.read_model(m)[1] for m in models]
    want_names = set(inputs[0])
    if set(got) != want_names:
        raise Mismatch("output tensors differ from the inputs': extra %s, "
                       "missing %s" % (sorted(set(got) - want_names)[:5],
                                       sorted(want_names - set(got))[:5]))
    for name in sorted(got):
        if got_dt[name] != out_dtype:
            raise Mismatch("%s: stored as %s, expected %s" % (
                name, got_dt[name], out_dtype))
        xs = [t[name].astype(np.float32) for t in inputs]
        if got[name].shape != xs[0].shape:
            raise Mismatch("%s: shape %s, expected %s" % (
                name, got[name].shape, xs[0].shape))
        want = rounded(expected_linear(xs, weights, normalize), out_dtype)
        i = first_difference(got[name], want)
        if i is not None:
            raise Mismatch("%s: element %d is %r, expected %r" % (
                name, i, float(got[name].reshape(-1)[i]),
                float(want.reshape(-1)[i])))
    return len(got)


def check_config(out, src_dir, out_dtype):
    with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
        got = json.load(f)
    with open(os.path.join(src_dir, "config.json"), encoding="utf-8") as f:
        want = json.load(f)
    want["torch_dtype"] = TORCH_NAMES[out_dtype]
    if got != want:
        keys = sorted(k for k in set(got) | set(want)
                      if got.get(k) != want.get(k))
        raise Mismatch("config.json differs from %s in %s" % (src_dir, keys))


def check_files(out, same, absent):
    for name, src_dir in same:
        with open(os.path.join(out, name), "rb") as f:
            got = f.read()
        with open(os.path.join(src_dir, name), "rb") as f:
            want = f.read()
        if got != want:
            raise Mismatch("%s is not a copy of %s's" % (name, src_dir))
    for name in absent:
        if os.path.exists(os.path.join(out, name)):
            raise Mismatch("%s should not be in the output" % name)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--model", nargs=2, action="append", required=True,
                    metavar=("DIR", "WEIGHT"))
    ap.add_argument("--no-normalize", action="store_true")
    ap.add_argument("--out-dtype", default="BF16", choices=sorted(TORCH_NAMES))
    ap.add_argument("--config-from")
    ap.add_argument("--same-file", nargs=2, action="append", default=[],
                    metavar=("NAME", "DIR"))
    ap.add_argument("--absent", action="append", default=[])
    a = ap.parse_args(argv)
    models = [m for m, _ in a.model]
    weights = [float(w) for _, w in a.model]
    try:
        n = check_tensors(a.out, models, weights, not a.no_normalize,
                          a.out_dtype)
        if a.config_from:
            check_config(a.out, a.config_from, a.out_dtype)
        check_files(a.out, a.same_file, a.absent)
    except (Mismatch, AssertionError, OSError) as e:
        print("check_merge: %s: %s" % (a.out, e))
        return 1
    print("check_merge: %s: %d tensors match" % (a.out, n))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
