#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The fisher strategy end to end: synthetic Fisher files (numpy, positive
# values over eight decades) for synth models, the merge against the
# float64 reference (tests/reference/fisher.py, within one f32 ulp) with
# epsilon add and floor and per-model weights, a model missing a tensor in
# its file, fallback average (bit-identical to linear with the same
# weights) and base, byte-identical output for any -j and chunk size, the
# dry run, and the errors: `fisher:` on a strategy without auxiliary
# tensors, a Fisher of the wrong shape, a non-float Fisher; and
# normalize_fishers against the reference, with its refusals (a list, a
# filter, a slice value, a user-set fisher_norm, a zero norm, a model
# without a file).
. "${top_srcdir:-.}/tests/cli/lib.sh"

use_built_plugins
REF="${top_srcdir:-.}/tests/reference/fisher.py"

if [ -z "${PYTHON:-}" ] || ! "$PYTHON" -c 'import numpy' 2>/dev/null; then
    echo "skip: the Fisher files are written with numpy (no Python with numpy)"
    exit 77
fi

expect_rc 0 "f32 family of a base and two experts" \
    "$AMALGAM" synth --family "$T/f" --experts 2 --layers 2 --hidden 64 \
    --dtype f32
expect_rc 0 "Fisher files for both experts" sh -c "
    '$PYTHON' '$REF' make '$T/f1.safetensors' '$T/f/expert-1' --seed 1 &&
    '$PYTHON' '$REF' make '$T/f2.safetensors' '$T/f/expert-2' --seed 2 &&
    '$PYTHON' '$REF' make '$T/f2mlp.safetensors' '$T/f/expert-2' --seed 3 \
        --drop mlp &&
    '$PYTHON' '$REF' make '$T/none.safetensors' '$T/f/expert-1' --drop . &&
    '$PYTHON' '$REF' make '$T/shape.safetensors' '$T/f/expert-1' \
        --bad-shape q_proj &&
    '$PYTHON' '$REF' make '$T/int.safetensors' '$T/f/expert-1' --int k_proj"
E1="$T/f/expert-1"; E2="$T/f/expert-2"

# --- the merge rule, any chunking
cat >"$T/fm.yaml" <<EOF
merge_method: fisher
models:
  - model: f/expert-1
    fisher: f1.safetensors
  - model: f/expert-2
    fisher: f2.safetensors
EOF
expect_rc 0 "fisher -j1 with 4KiB chunks" \
    "$AMALGAM" merge "$T/fm.yaml" "$T/fm1" -q -j1 --chunk-size 4KiB
expect_rc 0 "fisher -j3 with 64MiB chunks" \
    "$AMALGAM" merge "$T/fm.yaml" "$T/fm2" -q -j3 --chunk-size 64MiB
same_bytes "$T/fm1" "$T/fm2" "fisher: same bytes for any -j and chunk size"
expect_rc 0 "fisher matches the float64 reference" "$PYTHON" "$REF" check \
    "$T/fm1" --model "$E1=$T/f1.safetensors" --model "$E2=$T/f2.safetensors"
expect_rc 1 "the reference tells the models' Fishers apart" "$PYTHON" "$REF" \
    check "$T/fm1" --model "$E1=$T/f2.safetensors" \
    --model "$E2=$T/f1.safetensors"

# --- weights, floor mode, a partial file
cat >"$T/fw.yaml" <<EOF
merge_method: fisher
models:
  - model: f/expert-1
    fisher: f1.safetensors
    parameters: {weight: 0.25}
  - model: f/expert-2
    fisher: f2mlp.safetensors
    parameters: {weight: 2}
parameters: {epsilon: 1.0e-4, epsilon_mode: floor}
EOF
expect_rc 0 "fisher with weights, floor and a partial file" \
    "$AMALGAM" merge "$T/fw.yaml" "$T/fw" -q -j2 --chunk-size 4KiB
expect_rc 0 "weights, floor and the partial file match the reference" \
    "$PYTHON" "$REF" check "$T/fw" --model "$E1=$T/f1.safetensors" \
    --model "$E2=$T/f2mlp.safetensors" --weight 0.25 --weight 2 \
    --epsilon 1e-4 --mode floor
expect_rc 1 "the reference tells floor from add" "$PYTHON" "$REF" check \
    "$T/fw" --model "$E1=$T/f1.safetensors" \
    --model "$E2=$T/f2mlp.safetensors" --weight 0.25 --weight 2 \
    --epsilon 1e-4 --mode add

# --- no Fisher anywhere: fallback average is linear, bit for bit
cat >"$T/fa.yaml" <<EOF
merge_method: fisher
models:
  - model: f/expert-1
    fisher: none.safetensors
    parameters: {weight: 0.3}
  - model: f/expert-2
    parameters: {weight: 0.9}
EOF
cat >"$T/lin.yaml" <<EOF
merge_method: linear
models:
  - model: f/expert-1
    parameters: {weight: 0.3}
  - model: f/expert-2
    parameters: {weight: 0.9}
EOF
expect_rc 0 "fisher with no Fisher for any tensor" \
    "$AMALGAM" merge "$T/fa.yaml" "$T/fa" -q
expect_rc 0 "linear with the same weights" \
    "$AMALGAM" merge "$T/lin.yaml" "$T/lin" -q
same_bytes "$T/fa" "$T/lin" "fallback average equals linear bit for bit"
printf 'parameters: {fallback: base}\nbase_model: f/base\n' >>"$T/fa.yaml"
expect_rc 0 "fisher with fallback base" \
    "$AMALGAM" merge "$T/fa.yaml" "$T/fb" -q
expect_rc 0 "fallback base gives the base's values" "$PYTHON" "$REF" check \
    "$T/fb" --model "$E1=$T/none.safetensors" --model "$E2" \
    --fallback base --base "$T/f/base"

# --- the dry run shows the Fisher reads
expect_rc 0 "dry run" "$AMALGAM" merge "$T/fw.yaml" "$T/dry" --dry-run
expect_out "fisher: load f2mlp.safetensors:model.layers.0.self_attn" \
    "dry run: the Fisher read under its input"
expect_out "fisher: none" "dry run: a tensor missing from the file"

# --- errors
sed 's/merge_method: fisher/merge_method: linear/' "$T/fm.yaml" \
    | sed 's/^  - model: \(.*\)$/  - model: \1\n    parameters: {weight: 1}/' \
    >"$T/e1.yaml"
expect_rc 1 "fisher on linear is refused" \
    "$AMALGAM" merge "$T/e1.yaml" "$T/e1" --dry-run
expect_out "e1.yaml:[0-9]+:[0-9]+: 'fisher' is given for model 'f/expert-1' but strategy 'linear' takes no auxiliary tensors" \
    "the message names the model, the strategy and the rule"
sed 's/f2.safetensors/shape.safetensors/' "$T/fm.yaml" >"$T/e2.yaml"
expect_rc 1 "a Fisher of the wrong shape is refused" \
    "$AMALGAM" merge "$T/e2.yaml" "$T/e2" --dry-run
expect_out "tensor '[^']*q_proj[^']*' has shape \[[0-9]+\] in Fisher file 'shape.safetensors' but \[64, 64\] in model 'f/expert-2'" \
    "the shape message names both shapes and the file"
sed 's/f2.safetensors/int.safetensors/' "$T/fm.yaml" >"$T/e3.yaml"
expect_rc 1 "a non-float Fisher is refused" \
    "$AMALGAM" merge "$T/e3.yaml" "$T/e3" --dry-run
expect_out "of Fisher file 'int.safetensors' is I32: auxiliary tensors must be floating-point" \
    "the dtype message names the file and the rule"
sed 's/f2.safetensors/missing.safetensors/' "$T/fm.yaml" >"$T/e4.yaml"
expect_rc 1 "a missing Fisher file is refused" \
    "$AMALGAM" merge "$T/e4.yaml" "$T/e4" --dry-run
expect_out "missing.safetensors" "the message names the missing file"
printf 'merge_method: fisher\nmodels:\n  - model: f/expert-1\n    fisher: [a]\n' \
    >"$T/e5.yaml"
expect_rc 1 "a fisher that is not a path is refused" \
    "$AMALGAM" merge "$T/e5.yaml" "$T/e5" --dry-run
expect_out "'fisher' must be the path of a safetensors file" \
    "the type message says what is expected"

# --- normalize_fishers: each weight divided by the L2 norm of its file.
# f2k is f2's values times 1000: without the normalisation it outweighs
# f1 everywhere; with it, it weighs like f2 (epsilon 1e-4 in floor mode
# applies to the stored values, as the original code's fisher_floor does).
expect_rc 0 "a Fisher file 1000 times larger, and one of zeros" sh -c "
    '$PYTHON' '$REF' make '$T/f2k.safetensors' '$T/f/expert-2' --seed 2 \
        --scale 1000 &&
    '$PYTHON' '$REF' make '$T/zero.safetensors' '$T/f/expert-2' --scale 0"
cat >"$T/fn.yaml" <<EOF
merge_method: fisher
models:
  - model: f/expert-1
    fisher: f1.safetensors
    parameters: {weight: 0.25}
  - model: f/expert-2
    fisher: f2k.safetensors
    parameters: {weight: 2}
parameters: {normalize_fishers: true, epsilon: 1.0e-4, epsilon_mode: floor}
EOF
expect_rc 0 "fisher with normalize_fishers" \
    "$AMALGAM" merge "$T/fn.yaml" "$T/fn" -q -j2 --chunk-size 4KiB
expect_rc 0 "normalize_fishers matches the float64 reference" \
    "$PYTHON" "$REF" check "$T/fn" --model "$E1=$T/f1.safetensors" \
    --model "$E2=$T/f2k.safetensors" --weight 0.25 --weight 2 \
    --epsilon 1e-4 --mode floor --normalize
expect_rc 1 "the reference tells normalised from raw Fishers" \
    "$PYTHON" "$REF" check "$T/fn" --model "$E1=$T/f1.safetensors" \
    --model "$E2=$T/f2k.safetensors" --weight 0.25 --weight 2 \
    --epsilon 1e-4 --mode floor
sed 's/f2k.safetensors/f2mlp.safetensors/; s/floor}/add}/' "$T/fn.yaml" \
    >"$T/fn2.yaml"
expect_rc 0 "normalize_fishers, add mode, a partial file" \
    "$AMALGAM" merge "$T/fn2.yaml" "$T/fn2" -q -j3
expect_rc 0 "add mode and the partial file's own norm match the reference" \
    "$PYTHON" "$REF" check "$T/fn2" --model "$E1=$T/f1.safetensors" \
    --model "$E2=$T/f2mlp.safetensors" --weight 0.25 --weight 2 \
    --epsilon 1e-4 --mode add --normalize
expect_rc 0 "dry run with normalize_fishers" \
    "$AMALGAM" merge "$T/fn.yaml" "$T/fndry" --dry-run
expect_out "normalize_fishers=true, fisher_norm=\[[0-9.e+-]+, [0-9.e+-]+\]\)" \
    "dry run: the norms the plan computed"

# --- normalize_fishers refusals
sed 's/normalize_fishers: true/normalize_fishers: [true, false]/' \
    "$T/fn.yaml" >"$T/n1.yaml"
expect_rc 1 "normalize_fishers as a gradient is refused" \
    "$AMALGAM" merge "$T/n1.yaml" "$T/n1" --dry-run
expect_out "n1.yaml:9:[0-9]+: 'normalize_fishers' of 'fisher' takes one value, not a list or filters" \
    "the message points at the parameter"
sed 's/normalize_fishers: true/normalize_fishers: [{filter: mlp, value: true}, {value: false}]/' \
    "$T/fn.yaml" >"$T/n2.yaml"
expect_rc 1 "normalize_fishers as filters is refused" \
    "$AMALGAM" merge "$T/n2.yaml" "$T/n2" --dry-run
expect_out "n2.yaml:9:[0-9]+: 'normalize_fishers' of 'fisher' takes one value" \
    "the filter message points at the parameter"
cat >"$T/n3.yaml" <<EOF
merge_method: fisher
slices:
  - sources:
      - model: f/expert-1
        layer_range: [0, 2]
        fisher: f1.safetensors
      - model: f/expert-2
        layer_range: [0, 2]
        fisher: f2.safetensors
    parameters: {normalize_fishers: true}
EOF
expect_rc 1 "normalize_fishers on a slice is refused" \
    "$AMALGAM" merge "$T/n3.yaml" "$T/n3" --dry-run
expect_out "n3.yaml:10:[0-9]+: 'normalize_fishers' of 'fisher' applies to the whole step" \
    "the slice message says where to set it"
sed 's/{weight: 2}/{weight: 2, fisher_norm: 3}/' "$T/fn.yaml" >"$T/n4.yaml"
expect_rc 1 "a user-set fisher_norm is refused" \
    "$AMALGAM" merge "$T/n4.yaml" "$T/n4" --dry-run
expect_out "n4.yaml:8:[0-9]+: 'fisher_norm' of 'fisher' is set by amalgam" \
    "the fisher_norm message says who sets it"
sed 's/fisher: f2k.safetensors/fisher: zero.safetensors/' "$T/fn.yaml" \
    >"$T/n5.yaml"
expect_rc 1 "a Fisher file of zeros is refused under normalize_fishers" \
    "$AMALGAM" merge "$T/n5.yaml" "$T/n5" --dry-run
expect_out "n5.yaml:7:[0-9]+: Fisher file 'zero.safetensors' has L2 norm 0" \
    "the zero-norm message names the file"
sed 's/fisher: f2k.safetensors/fisher: none.safetensors/' "$T/fn.yaml" \
    >"$T/n6.yaml"
expect_rc 1 "a Fisher file without tensors is refused under normalize_fishers" \
    "$AMALGAM" merge "$T/n6.yaml" "$T/n6" --dry-run
expect_out "Fisher file 'none.safetensors' has L2 norm 0" \
    "the empty file's message names it"
grep -v 'fisher: f2k' "$T/fn.yaml" >"$T/n7.yaml"
expect_rc 1 "a model without a Fisher file is refused under normalize_fishers" \
    "$AMALGAM" merge "$T/n7.yaml" "$T/n7" --dry-run
expect_out "n7.yaml:6:[0-9]+: model 'f/expert-2' has no 'fisher' file, but normalize_fishers is true" \
    "the message names the model"
finish
