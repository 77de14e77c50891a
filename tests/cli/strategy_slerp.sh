#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The SLERP family (slerp, nuslerp, multislerp) end to end on generated
# models: values against the float64 numpy reference in
# tests/reference/slerp.py (tolerance there: tau * max|input| + half an ulp
# of the output dtype; tau per strategy below), endpoints and identical
# inputs bit for bit, byte-identical output for any -j and chunk size, the
# gradient-slerp example's shape, schema and errors.
. "${top_srcdir:-.}/tests/cli/lib.sh"

use_built_plugins
REF="${top_srcdir:-.}/tests/reference/slerp.py"

# f32 compute against the f64 reference, in f32 ulps of the largest input:
# slerp one axpby with |s0|, |s1| <= 1 (4 ulps); nuslerp a weighted sum of
# three terms (8); multislerp of four, coefficients up to ~2 (16).
TAU_SLERP=2.384185791015625e-07
TAU_NUSLERP=4.76837158203125e-07
TAU_MULTI=9.5367431640625e-07

has_numpy=0
if [ -n "${PYTHON:-}" ] && "$PYTHON" -c 'import numpy' 2>/dev/null; then
    has_numpy=1
else
    echo "skip: numpy reference checks (no Python with numpy)"
fi

# ref DESC ARGS...: run the reference checker, expecting success
ref() {
    d=$1; shift
    [ $has_numpy -eq 1 ] && expect_rc 0 "$d" "$PYTHON" "$REF" "$@"
}
# ref_fails DESC ARGS...: the reference must reject (it can fail)
ref_fails() {
    d=$1; shift
    [ $has_numpy -eq 1 ] && expect_rc 1 "$d" "$PYTHON" "$REF" "$@"
}
# same A B DESC: the two outputs' tensor files are byte-identical
same() {
    if cmp -s "$1/model.safetensors" "$2/model.safetensors"; then pass "$3"
    else fail "$3"; fi
}
merge() { "$AMALGAM" merge "$@" -q; }

cd "$T" || exit 1
# delta-scale 1: task vectors as large as the weights, so the angles are
# wide (SLERP proper), while the norm gains near 1 take the linear branch
expect_rc 0 "f32 family" "$AMALGAM" synth --family f32 --experts 3 \
    --layers 5 --delta-scale 1.0 --dtype f32
expect_rc 0 "bf16 family" "$AMALGAM" synth --family b16 --experts 2 \
    --layers 2 --delta-scale 0.7 --dtype bf16
cp -r f32/base base-copy

# ---- slerp
cat >s.yaml <<'EOF'
merge_method: slerp
base_model: f32/base
models:
  - model: f32/base
  - model: f32/expert-1
parameters:
  t: 0.3
EOF
expect_rc 0 "slerp with the base listed among the models" \
    merge s.yaml s1 -j2 --out-dtype f32
ref "slerp equals the reference (f32 out)" check s1 --method slerp \
    --base f32/base --model f32/expert-1 --params '{"t": 0.3}' \
    --out-dtype F32 --tau $TAU_SLERP
ref_fails "the reference rejects t = 0.31" check s1 --method slerp \
    --base f32/base --model f32/expert-1 --params '{"t": 0.31}' \
    --out-dtype F32 --tau $TAU_SLERP
expect_rc 0 "slerp -j1 with 100-byte chunks" \
    merge s.yaml s2 -j1 --chunk-size 100 --out-dtype f32
same s1 s2 "slerp: -j2/64MiB and -j1/100B chunks write the same bytes"
expect_rc 0 "slerp -j2 with 4KiB chunks" \
    merge s.yaml s3 -j2 --chunk-size 4KiB --out-dtype f32
same s1 s3 "slerp: 4KiB chunks write the same bytes"
sed '/- model: f32.base$/d' s.yaml >s-only.yaml
expect_rc 0 "slerp with only the other model listed" \
    merge s-only.yaml s4 --out-dtype f32
same s1 s4 "listing the base or not gives the same merge"

sed 's/t: 0.3/t: 0.65/; s#f32/#b16/#g' s.yaml >sb.yaml
expect_rc 0 "slerp of bf16 models to bf16" merge sb.yaml sb
ref "bf16 slerp equals the reference" check sb --method slerp \
    --base b16/base --model b16/expert-1 --params '{"t": 0.65}' \
    --tau $TAU_SLERP

# small task vectors: every tensor nearly colinear, the linear fallback
expect_rc 0 "family with small task vectors" "$AMALGAM" synth --family near \
    --experts 1 --layers 1 --delta-scale 0.02 --dtype f32
sed 's#f32/#near/#g' s.yaml >sn.yaml
expect_rc 0 "slerp of nearly colinear models" merge sn.yaml sn --out-dtype f32
ref "the linear fallback equals the reference" check sn --method slerp \
    --base near/base --model near/expert-1 --params '{"t": 0.3}' \
    --out-dtype F32 --tau $TAU_SLERP

for t in 0 1; do
    sed "s/t: 0.3/t: $t/" s.yaml >s-t$t.yaml
    expect_rc 0 "slerp t=$t" merge s-t$t.yaml st$t --chunk-size 100
done
ref "t=0 returns the base bit for bit" equal st0 f32/base
ref "t=1 returns the other model bit for bit" equal st1 f32/expert-1
sed 's/t: 0.3/t: 0/; s#f32/#b16/#g' s.yaml >sb0.yaml
expect_rc 0 "bf16 slerp t=0" merge sb0.yaml sb0
ref "bf16 t=0 returns the base bit for bit" equal sb0 b16/base

sed 's#- model: f32/expert-1#- model: base-copy#' s.yaml >s-same.yaml
expect_rc 0 "slerp of a model with its copy" merge s-same.yaml ssame
ref "identical inputs return the input bit for bit" equal ssame f32/base

# mergekit's examples/gradient-slerp.yml, on local models
cat >g.yaml <<'EOF'
slices:
  - sources:
      - model: f32/base
        layer_range: [0, 5]
      - model: f32/expert-2
        layer_range: [0, 5]
merge_method: slerp
base_model: f32/base
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5 # fallback for rest of tensors
dtype: float16
EOF
expect_rc 0 "the gradient-slerp example's shape merges" merge g.yaml gs -j2
ref "gradient t over the layers equals the reference (f16 out)" check gs \
    --method slerp --base f32/base --model f32/expert-2 --out-dtype F16 \
    --tau $TAU_SLERP --params '{"t": [{"filter": "self_attn", "value": [0,
    0.5, 0.3, 0.7, 1]}, {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]},
    {"value": 0.5}]}'
ref_fails "the reference notices swapped gradients" check gs \
    --method slerp --base f32/base --model f32/expert-2 --out-dtype F16 \
    --tau $TAU_SLERP --params '{"t": [{"filter": "mlp", "value": [0, 0.5,
    0.3, 0.7, 1]}, {"filter": "self_attn", "value": [1, 0.5, 0.7, 0.3, 0]},
    {"value": 0.5}]}'
expect_rc 0 "dry run of the gradient example" "$AMALGAM" merge g.yaml gd \
    --dry-run
expect_out "slerp\(t=0\.7\)" "dry run shows a layer's resolved t"

sed '/base_model/d' s-only.yaml >s-nobase.yaml
expect_rc 1 "slerp without a base model fails" merge s-nobase.yaml snb
expect_out "merge_method 'slerp' needs a base model" "and says why"
cat >s-three.yaml <<'EOF'
merge_method: slerp
base_model: f32/base
models:
  - model: f32/expert-1
  - model: f32/expert-2
parameters: {t: 0.5}
EOF
expect_rc 1 "slerp of three models fails" merge s-three.yaml s3m
expect_out "takes 1 input models?; step '[^']*' gives 2 \(the base not" \
    "and counts the models"

# ---- nuslerp
for fl in true false; do
    cat >n-$fl.yaml <<EOF
merge_method: nuslerp
base_model: f32/base
models:
  - model: f32/expert-1
    parameters: {weight: 0.3}
  - model: f32/expert-2
    parameters: {weight: 0.6}
parameters: {nuslerp_flatten: $fl}
EOF
    expect_rc 0 "nuslerp flatten=$fl with a base" \
        merge n-$fl.yaml n-$fl --out-dtype f32 -j2
    ref "nuslerp flatten=$fl equals the reference" check n-$fl \
        --method nuslerp --base f32/base --model f32/expert-1 0.3 \
        --model f32/expert-2 0.6 --params "{\"nuslerp_flatten\": $fl}" \
        --out-dtype F32 --tau $TAU_NUSLERP
    expect_rc 0 "nuslerp flatten=$fl -j1 100-byte chunks" \
        merge n-$fl.yaml n2-$fl --out-dtype f32 -j1 --chunk-size 100
    same n-$fl n2-$fl "nuslerp flatten=$fl: same bytes for any -j and chunk"
done
ref_fails "the reference tells flattened from per-row" check n-true \
    --method nuslerp --base f32/base --model f32/expert-1 0.3 \
    --model f32/expert-2 0.6 --params '{"nuslerp_flatten": false}' \
    --out-dtype F32 --tau $TAU_NUSLERP
# the base listed among the models is not a third model (mergekit drops
# it); the host asks for its weight, which nuslerp ignores
sed 's#^models:#models:\n  - model: f32/base\n    parameters: {weight: 5}#' \
    n-true.yaml >n-listed.yaml
expect_rc 0 "nuslerp with the base listed" merge n-listed.yaml nl \
    --out-dtype f32
same n-true nl "a listed base is the base, not a third model"
cat >n-nobase.yaml <<'EOF'
merge_method: nuslerp
models:
  - model: b16/expert-1
    parameters: {weight: 2}
  - model: b16/expert-2
    parameters: {weight: 1}
EOF
expect_rc 0 "nuslerp of two bf16 models, no base" merge n-nobase.yaml nnb
ref "nuslerp without a base equals the reference (bf16)" check nnb \
    --method nuslerp --model b16/expert-1 2 --model b16/expert-2 1 \
    --tau $TAU_NUSLERP
sed 's/{nuslerp_flatten: false}/{nuslerp_flatten: false, nuslerp_row_wise: true}/' \
    n-false.yaml >n-rw.yaml
expect_rc 1 "nuslerp_row_wise per row is refused" merge n-rw.yaml nrw
expect_out "nuslerp_row_wise: true with nuslerp_flatten: false is not supp" \
    "with a message naming the options"
sed 's#^models:#models:\n  - model: f32/expert-3\n    parameters: {weight: 1}#' \
    n-true.yaml >n-three.yaml
expect_rc 1 "nuslerp of three models fails" merge n-three.yaml n3
expect_out "nuslerp merges exactly 2 models \(plus an optional base_model\); got 3" \
    "and says how many it takes"

# ---- multislerp
cat >m.yaml <<'EOF'
merge_method: multislerp
base_model: f32/base
models:
  - model: f32/expert-1
    parameters: {weight: 0.5}
  - model: f32/expert-2
    parameters: {weight: 0.3}
  - model: f32/expert-3
    parameters: {weight: 0.9}
EOF
expect_rc 0 "multislerp of three task vectors" merge m.yaml m1 \
    --out-dtype f32 -j2
ref "multislerp with a base equals the reference" check m1 \
    --method multislerp --base f32/base --model f32/expert-1 0.5 \
    --model f32/expert-2 0.3 --model f32/expert-3 0.9 --out-dtype F32 \
    --tau $TAU_MULTI
ref_fails "the reference notices another weight" check m1 \
    --method multislerp --base f32/base --model f32/expert-1 0.5 \
    --model f32/expert-2 0.3 --model f32/expert-3 0.8 --out-dtype F32 \
    --tau $TAU_MULTI
expect_rc 0 "multislerp -j1 100-byte chunks" merge m.yaml m2 \
    --out-dtype f32 -j1 --chunk-size 100
same m1 m2 "multislerp: same bytes for any -j and chunk"
{ sed '/base_model/d' m.yaml; echo "parameters: {normalize_weights: false}"; } \
    >m-nb.yaml
expect_rc 0 "multislerp without a base, weights as given" merge m-nb.yaml mnb \
    --out-dtype bf16
ref "multislerp without a base equals the reference (bf16 out)" check mnb \
    --method multislerp --model f32/expert-1 0.5 --model f32/expert-2 0.3 \
    --model f32/expert-3 0.9 --params '{"normalize_weights": false}' \
    --tau $TAU_MULTI
cat >m-one.yaml <<'EOF'
merge_method: multislerp
base_model: f32/base
models:
  - model: f32/base
    parameters: {weight: 1}
  - model: f32/expert-2
    parameters: {weight: 1}
EOF
expect_rc 0 "multislerp of one model besides a listed base" \
    merge m-one.yaml mone
ref "one model is returned unchanged" equal mone f32/expert-2
sed 's/weight: 0.3/weight: -1.5/; s/weight: 0.9/weight: 1/' m.yaml >m-zero.yaml
expect_rc 1 "multislerp weights summing to 0 fail" merge m-zero.yaml mz
expect_out "weights sum to 0; set normalize_weights: false" "and say so"

# ---- schema
expect_rc 0 "amalgam plugins slerp" "$AMALGAM" plugins slerp
expect_out "^  t +number, global, required, gradient allowed" "t is required"
expect_out "needs-base" "slerp needs a base"
expect_rc 0 "amalgam plugins multislerp" "$AMALGAM" plugins multislerp
expect_out "^  eps +number, global, default 1e-0?8" "eps defaults to 1e-8"
expect_out "^  normalize_weights +boolean, global, default true" \
    "normalize_weights defaults to true"
expect_rc 0 "amalgam plugins nuslerp" "$AMALGAM" plugins nuslerp
expect_out "^  nuslerp_flatten +boolean, global, default true" \
    "nuslerp_flatten defaults to true"

finish
