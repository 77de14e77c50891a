#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The model_stock and passthrough strategies end to end: model_stock against
# a float64 numpy reference (tests/reference/model_stock.py, tolerance
# stated there) per tensor and per row, identical experts giving exactly
# their mean, the opposed-task-vector pole failing cleanly; passthrough as a
# frankenmerge of two slices (layer renumbering, bit-exact copies,
# num_hidden_layers) and with a filtered scale; byte-identical output for
# any -j and chunk size; schemas, dry runs and errors.
. "${top_srcdir:-.}/tests/cli/lib.sh"

use_built_plugins
REF="${top_srcdir:-.}/tests/reference/model_stock.py"
PYDIR="${top_srcdir:-.}/tests/py"

check_numpy "numpy reference checks"

# stock_yaml FILE FAMILY FILTER_WISE MODEL...: a model_stock pipeline
stock_yaml() {
    f=$1; fam=$2; fw=$3; shift 3
    { echo "merge_method: model_stock"
      echo "base_model: $fam/base"
      echo "models:"
      for m in "$@"; do echo "  - model: $fam/$m"; done
      [ "$fw" = none ] || printf 'parameters:\n  filter_wise: %s\n' "$fw"
    } >"$f"
}

expect_rc 0 "f32 family of a base and three experts" \
    "$AMALGAM" synth --family "$T/f" --experts 3 --layers 2 --hidden 64 \
    --dtype f32
expect_rc 0 "bf16 family of a base and three experts" \
    "$AMALGAM" synth --family "$T/b" --experts 3 --layers 2 --hidden 64 \
    --dtype bf16
F3="--base $T/f/base --model $T/f/expert-1 --model $T/f/expert-2 \
--model $T/f/expert-3"
B3="--base $T/b/base --model $T/b/expert-1 --model $T/b/expert-2 \
--model $T/b/expert-3"

# --- model_stock, one t per tensor
stock_yaml "$T/ms.yaml" f none expert-1 expert-2 expert-3
expect_rc 0 "model_stock -j1 with 4KiB chunks" \
    "$AMALGAM" merge "$T/ms.yaml" "$T/ms1" -q -j1 --chunk-size 4KiB
expect_rc 0 "model_stock -j2 with 64MiB chunks" \
    "$AMALGAM" merge "$T/ms.yaml" "$T/ms2" -q -j2 --chunk-size 64MiB
same_bytes "$T/ms1" "$T/ms2" "model_stock: same bytes for any -j and chunk size"
# shellcheck disable=SC2086  # F3 is a list of options
ref "model_stock matches the float64 reference" "$T/ms1" $F3
# shellcheck disable=SC2086
ref_rejects "the reference tells per-tensor from per-row t" \
    "$T/ms1" $F3 --filter-wise

# --- a chained step: the host calls merge on the whole tensor
cat >"$T/chain.yaml" <<EOF
steps:
  - name: stock
    merge_method: model_stock
    base_model: $T/f/base
    models: [$T/f/expert-1, $T/f/expert-2, $T/f/expert-3]
  - name: copy
    merge_method: passthrough
    models: [stock]
EOF
expect_rc 0 "model_stock in a chained step" \
    "$AMALGAM" merge "$T/chain.yaml" "$T/chain" -q -j2 --chunk-size 4KiB
same_bytes "$T/chain" "$T/ms1" "whole-tensor merge equals the two-pass form"

# --- filter_wise: one t per row
stock_yaml "$T/fw.yaml" f true expert-1 expert-2 expert-3
expect_rc 0 "filter_wise -j1 with 4KiB chunks" \
    "$AMALGAM" merge "$T/fw.yaml" "$T/fw1" -q -j1 --chunk-size 4KiB
expect_rc 0 "filter_wise -j2 with 64MiB chunks" \
    "$AMALGAM" merge "$T/fw.yaml" "$T/fw2" -q -j2 --chunk-size 64MiB
same_bytes "$T/fw1" "$T/fw2" "filter_wise: same bytes for any -j and chunk size"
# shellcheck disable=SC2086
ref "filter_wise matches the float64 reference" "$T/fw1" $F3 --filter-wise
# shellcheck disable=SC2086
ref_rejects "the reference tells per-row from per-tensor t" "$T/fw1" $F3
expect_rc 0 "--dry-run shows the resolved filter_wise" \
    "$AMALGAM" merge --dry-run "$T/fw.yaml" "$T/dry"
expect_out "model_stock\(filter_wise=true\)" "dry run names filter_wise=true"
expect_out "base: load [^ ]*f/base:lm_head\.weight" "dry run shows the base"

# --- bf16 inputs and output
stock_yaml "$T/bs.yaml" b none expert-1 expert-2 expert-3
expect_rc 0 "model_stock on bf16 models" \
    "$AMALGAM" merge "$T/bs.yaml" "$T/bs1" -q -j1 --chunk-size 4KiB
expect_rc 0 "model_stock on bf16 models, -j2" \
    "$AMALGAM" merge "$T/bs.yaml" "$T/bs2" -q -j2
same_bytes "$T/bs1" "$T/bs2" "bf16: same bytes for any -j and chunk size"
# shellcheck disable=SC2086
ref "bf16 output matches the reference within half a bf16 ulp" "$T/bs1" $B3
stock_yaml "$T/bsf.yaml" b true expert-1 expert-3
expect_rc 0 "filter_wise with two bf16 experts" \
    "$AMALGAM" merge "$T/bsf.yaml" "$T/bsf" -q --chunk-size 4KiB
ref "two bf16 experts, filter_wise, match the reference" "$T/bsf" \
    --base "$T/b/base" --model "$T/b/expert-1" --model "$T/b/expert-3" \
    --filter-wise

# --- identical experts: cos = 1, t = 1, the result is their mean
for fam in b f; do
    cp -R "$T/$fam/expert-1" "$T/$fam/twin-a"
    cp -R "$T/$fam/expert-1" "$T/$fam/twin-b"
    stock_yaml "$T/id-$fam.yaml" "$fam" none expert-1 twin-a twin-b
    expect_rc 0 "identical experts ($fam)" \
        "$AMALGAM" merge "$T/id-$fam.yaml" "$T/id-$fam" -q --chunk-size 4KiB
done
ref "identical bf16 experts give exactly the expert" "$T/id-b" \
    --base "$T/b/base" --model "$T/b/expert-1" --model "$T/b/twin-a" \
    --model "$T/b/twin-b" --copy-of "$T/b/expert-1"
ref "identical f32 experts give the expert within the tolerance" "$T/id-f" \
    --base "$T/f/base" --model "$T/f/expert-1" --model "$T/f/twin-a" \
    --model "$T/f/twin-b"
ref_rejects "the bit-exact check notices another model" "$T/id-b" \
    --base "$T/b/base" --model "$T/b/expert-1" --model "$T/b/twin-a" \
    --model "$T/b/twin-b" --copy-of "$T/b/expert-2"

# --- opposed task vectors: neg = 2 base - expert-1 exactly (bf16 values
# have few enough bits for f32 to hold 2b - e and (2b - e) - b exactly),
# so cos = -1 and t = 2 cos / (1 + cos) has no value
cat >"$T/neg.yaml" <<EOF
merge_method: linear
models:
  - model: $T/b/base
    parameters: {weight: 2}
  - model: $T/b/expert-1
    parameters: {weight: -1}
parameters: {normalize: false}
EOF
expect_rc 0 "a model with the opposite task vector" \
    "$AMALGAM" merge "$T/neg.yaml" "$T/b/neg" -q --out-dtype f32
for fw in false true; do
    stock_yaml "$T/opp.yaml" b "$fw" expert-1 neg
    expect_rc 1 "opposed task vectors fail (filter_wise $fw)" \
        "$AMALGAM" merge "$T/opp.yaml" "$T/opp" -q
    expect_out "merging '[^']+' with 'model_stock': task vectors (of row 0 )?are opposed \(mean cosine -1/\(N-1\) = -1, N = 2\): t is undefined" \
        "the message names the tensor, the cosine and why"
    if [ -e "$T/opp" ] || [ -e "$T/opp.amalgam-partial" ]; then
        fail "a failed model_stock merge left output"
    else pass "a failed model_stock merge leaves nothing"; fi
done

# --- model_stock: schema and input errors
expect_rc 0 "amalgam plugins model_stock" "$AMALGAM" plugins model_stock
expect_out "^inputs: +2\.\.16" "model_stock takes 2 to 16 models"
expect_out "^capabilities: .*needs-base" \
    "model_stock needs a base"
expect_out "filter_wise +boolean, global, default false" \
    "filter_wise: boolean, global, default false"
expect_out "2403\.19522" "the help cites the paper"
stock_yaml "$T/one.yaml" f none expert-1
expect_rc 1 "one expert is refused" "$AMALGAM" merge "$T/one.yaml" "$T/o" -q
expect_out "takes 2 to 16 input models; step '[^']+' gives 1 \(the base not counted\)" \
    "the refusal counts the models"
printf 'merge_method: model_stock\nmodels: [%s, %s]\n' "$T/f/expert-1" \
    "$T/f/expert-2" >"$T/nobase.yaml"
expect_rc 1 "no base model is refused" \
    "$AMALGAM" merge "$T/nobase.yaml" "$T/o" -q
expect_out "needs a base model" "the refusal asks for base_model"

# --- passthrough: a frankenmerge as in mergekit's orcamini example
expect_rc 0 "three-layer family for the frankenmerge" \
    "$AMALGAM" synth --family "$T/p" --experts 2 --layers 3 --hidden 64 \
    --dtype bf16
cat >"$T/fr.yaml" <<EOF
slices:
  - sources:
      - model: $T/p/expert-1
        layer_range: [0, 2]
  - sources:
      - model: $T/p/expert-2
        layer_range: [1, 3]
merge_method: passthrough
EOF
expect_rc 0 "frankenmerge -j1 with 4KiB chunks" \
    "$AMALGAM" merge "$T/fr.yaml" "$T/fr1" -q -j1 --chunk-size 4KiB
expect_rc 0 "frankenmerge -j2 with 64MiB chunks" \
    "$AMALGAM" merge "$T/fr.yaml" "$T/fr2" -q -j2 --chunk-size 64MiB
same_bytes "$T/fr1" "$T/fr2" "frankenmerge: same bytes for any -j and chunk size"
if grep -Eq '"num_hidden_layers": *4[,}]' "$T/fr1/config.json"; then
    pass "config.json has num_hidden_layers 4"
else fail "config.json lacks num_hidden_layers 4"; fi
expect_rc 0 "the frankenmerge inspects" "$AMALGAM" inspect "$T/fr1"
expect_out "^layers: +4$" "inspect sees four layers"
expect_out "model\.layers\.3\.mlp\.down_proj\.weight" "inspect lists layer 3"
if [ $has_numpy -eq 1 ]; then
    expect_rc 0 "frankenmerge tensors are renumbered bit-exact copies" \
        "$PYTHON" - "$PYDIR" "$T/fr1" "$T/p/expert-1" "$T/p/expert-2" <<'EOF'
import re
import sys

import numpy as np

sys.path.insert(0, sys.argv[1])
import st_reader  # noqa: E402

out, a, b = (st_reader.read_model_full(d) for d in sys.argv[2:5])
_, got, got_dt = out
_, ta, da = a
_, tb, db = b
# output layer -> (model, its layer): [0, 2) of A, then [1, 3) of B
src = {0: (ta, da, 0), 1: (ta, da, 1), 2: (tb, db, 1), 3: (tb, db, 2)}
want = {}
for name in ta:
    m = re.match(r"model\.layers\.(\d+)\.(.*)", name)
    if m is None:
        want[name] = (ta, da, name) if "embed" in name else (tb, db, name)
for o, (t, d, k) in src.items():
    for name in t:
        m = re.match(r"model\.layers\.(\d+)\.(.*)", name)
        if m and int(m.group(1)) == k:
            want["model.layers.%d.%s" % (o, m.group(2))] = (t, d, name)
assert set(got) == set(want), "names: extra %s, missing %s" % (
    sorted(set(got) - set(want)), sorted(set(want) - set(got)))
assert len(got) == 3 + 9 * 4, "expected 39 tensors, got %d" % len(got)
for name, (t, d, s) in sorted(want.items()):
    assert got_dt[name] == d[s], "%s stored as %s, not %s" % (
        name, got_dt[name], d[s])
    g, w = got[name], t[s]
    assert g.shape == w.shape, "%s: shape %s, want %s" % (name, g.shape,
                                                          w.shape)
    assert np.array_equal(g.view(np.uint64), w.view(np.uint64)), (
        "%s is not a bit-exact copy of %s" % (name, s))
    # the other model's tensor differs, so the source really is checked
    other = tb if t is ta else ta
    if s in other and other[s].size > 1:
        assert not np.array_equal(other[s], w), "%s: A and B agree" % s
print("frankenmerge: %d tensors copied as planned" % len(got))
EOF
fi

# --- passthrough with a filtered scale, as mergekit's test_passthrough_scale
cat >"$T/sc.yaml" <<EOF
merge_method: passthrough
models:
  - model: $T/p/expert-1
    parameters:
      scale:
        - filter: o_proj
          value: 0
        - value: 0.5
EOF
expect_rc 0 "passthrough with scale" \
    "$AMALGAM" merge "$T/sc.yaml" "$T/sc1" -q -j1 --chunk-size 4KiB
expect_rc 0 "passthrough with scale, -j2" \
    "$AMALGAM" merge "$T/sc.yaml" "$T/sc2" -q -j2
same_bytes "$T/sc1" "$T/sc2" "scaled passthrough: same bytes for any -j"
if [ $has_numpy -eq 1 ]; then
    # halving a bf16 value is exact (synth values are far from subnormal)
    expect_rc 0 "o_proj is zero, the rest exactly halved" \
        "$PYTHON" - "$PYDIR" "$T/sc1" "$T/p/expert-1" <<'EOF'
import sys

import numpy as np

sys.path.insert(0, sys.argv[1])
import st_reader  # noqa: E402

_, got = st_reader.read_model(sys.argv[2])
_, src = st_reader.read_model(sys.argv[3])
assert set(got) == set(src), "names differ"
for name in sorted(src):
    want = src[name] * (0.0 if "o_proj" in name else 0.5)
    assert np.array_equal(got[name], want), "%s: not %s" % (
        name, "zero" if "o_proj" in name else "halved")
    assert np.any(src[name] != 0), "%s is all zero in the source" % name
print("scale: %d tensors as expected" % len(got))
EOF
fi
expect_rc 0 "--dry-run shows the filtered scale" \
    "$AMALGAM" merge --dry-run "$T/sc.yaml" "$T/dry"
expect_out "self_attn\.o_proj\.weight" "dry run lists o_proj"
expect_out "passthrough\(scale=\[0\]\)" "dry run shows scale 0 for o_proj"
expect_out "passthrough\(scale=\[0\.5\]\)" "dry run shows scale 0.5 elsewhere"

# --- passthrough: schema and input errors
expect_rc 0 "amalgam plugins passthrough" "$AMALGAM" plugins passthrough
expect_out "^inputs: +1\.\.1" "passthrough takes exactly one model"
expect_out "scale +number, per-model, default 1, gradient allowed" \
    "scale: number, per-model, default 1, gradient allowed"
printf 'merge_method: passthrough\nmodels: [%s, %s]\n' "$T/p/expert-1" \
    "$T/p/expert-2" >"$T/two.yaml"
expect_rc 1 "two models are refused" "$AMALGAM" merge "$T/two.yaml" "$T/o" -q
expect_out "merge_method 'passthrough' takes 1 input model" \
    "the refusal says one model"

finish
