#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The karcher strategy end to end, against a float64 numpy reference that
# iterates on the full vectors (tests/reference/karcher.py, tolerance
# stated there) over every tensor of the synth models: 1-D norms, square
# projections and the non-square [256, 64] embeddings; f32, bf16 and f16
# models; byte-identical output for any -j and chunk size and for the
# whole-tensor form; the base as one of the averaged models; max_iter
# taking effect on widely spread models; identical models, one model and
# zero tensors; opposed models failing cleanly; schema and errors.
. "${top_srcdir:-.}/tests/cli/lib.sh"

use_built_plugins
REF="${top_srcdir:-.}/tests/reference/karcher.py"

check_numpy "numpy reference checks"

# ka_yaml FILE BASE PARAMS MODEL...: a karcher pipeline; BASE and PARAMS
# are "none" to leave them out, PARAMS otherwise a flow mapping
ka_yaml() {
    f=$1; b=$2; p=$3; shift 3
    { echo "merge_method: karcher"
      [ "$b" = none ] || echo "base_model: $b"
      echo "models:"
      for m in "$@"; do echo "  - model: $m"; done
      [ "$p" = none ] || echo "parameters: $p"
    } >"$f"
}

# scaled FAMILY NAME W1 [W2]: FAMILY/NAME = W1 * expert-1 (+ W2 *
# expert-2) with linear, normalize off, stored as f32
scaled() {
    { echo "merge_method: linear"
      echo "models:"
      echo "  - model: $T/$1/expert-1"
      echo "    parameters: {weight: $3}"
      if [ $# -gt 3 ]; then
          echo "  - model: $T/$1/expert-2"
          echo "    parameters: {weight: $4}"
      fi
      echo "parameters: {normalize: false}"
    } >"$T/scaled.yaml"
    expect_rc 0 "$1/$2 written by linear" \
        "$AMALGAM" merge "$T/scaled.yaml" "$T/$1/$2" -q --out-dtype f32
}

for dt in f32 bf16 f16; do
    expect_rc 0 "$dt family of a base and three experts" \
        "$AMALGAM" synth --family "$T/$dt" --experts 3 --layers 2 \
        --hidden 64 --dtype "$dt"
done
# task vectors three times the base's size, nothing shared: angles of
# about a radian, where the iteration takes several steps
expect_rc 0 "widely spread f32 family" \
    "$AMALGAM" synth --family "$T/w" --experts 3 --layers 1 --hidden 64 \
    --dtype f32 --delta-scale 3 --agree 0
all() { echo "--model $T/$1/base --model $T/$1/expert-1 --model $T/$1/expert-2 --model $T/$1/expert-3"; }

# --- the base and three experts, f32
ka_yaml "$T/k.yaml" "$T/f32/base" none \
    "$T/f32/expert-1" "$T/f32/expert-2" "$T/f32/expert-3"
expect_rc 0 "karcher -j1 with 4KiB chunks" \
    "$AMALGAM" merge "$T/k.yaml" "$T/k1" -q -j1 --chunk-size 4KiB
expect_rc 0 "karcher -j2 with 64MiB chunks" \
    "$AMALGAM" merge "$T/k.yaml" "$T/k2" -q -j2 --chunk-size 64MiB
same_bytes "$T/k1" "$T/k2" "same bytes for any -j and chunk size"
expect_rc 0 "karcher -j2 with 1KiB chunks" \
    "$AMALGAM" merge "$T/k.yaml" "$T/k3" -q -j2 --chunk-size 1KiB
same_bytes "$T/k1" "$T/k3" "same bytes with chunks of a few rows"
# shellcheck disable=SC2046  # all gives a list of options
ref "karcher matches the float64 reference" "$T/k1" $(all f32)
ref_rejects "the reference notices a model left out" "$T/k1" \
    --model "$T/f32/base" --model "$T/f32/expert-1" --model "$T/f32/expert-2"

# --- the base is one of the averaged models, however it is given
ka_yaml "$T/kl.yaml" "$T/f32/base" none "$T/f32/base" \
    "$T/f32/expert-1" "$T/f32/expert-2" "$T/f32/expert-3"
expect_rc 0 "the base also listed among the models" \
    "$AMALGAM" merge "$T/kl.yaml" "$T/kl" -q
same_bytes "$T/k1" "$T/kl" "listing the base too changes nothing"
ka_yaml "$T/kn.yaml" none none "$T/f32/base" \
    "$T/f32/expert-1" "$T/f32/expert-2" "$T/f32/expert-3"
expect_rc 0 "the base as the first model, no base_model" \
    "$AMALGAM" merge "$T/kn.yaml" "$T/kn" -q
same_bytes "$T/k1" "$T/kn" "base_model is an input like the models"

# --- a chained step: the host calls merge on the whole tensor
cat >"$T/chain.yaml" <<EOF
steps:
  - name: mean
    merge_method: karcher
    base_model: $T/f32/base
    models: [$T/f32/expert-1, $T/f32/expert-2, $T/f32/expert-3]
  - name: copy
    merge_method: passthrough
    models: [mean]
EOF
expect_rc 0 "karcher in a chained step" \
    "$AMALGAM" merge "$T/chain.yaml" "$T/chain" -q -j2 --chunk-size 4KiB
same_bytes "$T/chain" "$T/k1" "whole-tensor merge equals the two-pass form"

# --- bf16 and f16 inputs and outputs
for dt in bf16 f16; do
    ka_yaml "$T/k-$dt.yaml" "$T/$dt/base" none \
        "$T/$dt/expert-1" "$T/$dt/expert-2" "$T/$dt/expert-3"
    expect_rc 0 "karcher on $dt models, -j1, 4KiB chunks" \
        "$AMALGAM" merge "$T/k-$dt.yaml" "$T/k-$dt-1" -q -j1 --chunk-size 4KiB
    expect_rc 0 "karcher on $dt models, -j2" \
        "$AMALGAM" merge "$T/k-$dt.yaml" "$T/k-$dt-2" -q -j2
    same_bytes "$T/k-$dt-1" "$T/k-$dt-2" "$dt: same bytes for any -j and chunk size"
    # shellcheck disable=SC2046
    ref "$dt output matches the reference within half a $dt ulp" \
        "$T/k-$dt-1" $(all "$dt")
done

# --- max_iter and tol take effect where the iteration runs several steps
ka_yaml "$T/w10.yaml" "$T/w/base" none \
    "$T/w/expert-1" "$T/w/expert-2" "$T/w/expert-3"
ka_yaml "$T/w1.yaml" "$T/w/base" "{max_iter: 1}" \
    "$T/w/expert-1" "$T/w/expert-2" "$T/w/expert-3"
ka_yaml "$T/wt.yaml" "$T/w/base" "{max_iter: 50, tol: 1e-9}" \
    "$T/w/expert-1" "$T/w/expert-2" "$T/w/expert-3"
for v in 10 1 t; do
    expect_rc 0 "spread models, pipeline w$v" \
        "$AMALGAM" merge "$T/w$v.yaml" "$T/w$v" -q -j2 --chunk-size 1KiB
done
# shellcheck disable=SC2046
ref "spread models match the reference (max_iter 10)" "$T/w10" $(all w)
# shellcheck disable=SC2046
ref "max_iter 1 matches the reference's single step" "$T/w1" $(all w) \
    --max-iter 1
# shellcheck disable=SC2046
ref_rejects "one step is told apart from ten" "$T/w1" $(all w)
# shellcheck disable=SC2046
ref "max_iter 50, tol 1e-9 match the reference" "$T/wt" $(all w) \
    --max-iter 50 --tol 1e-9
expect_rc 0 "--dry-run shows the resolved parameters" \
    "$AMALGAM" merge --dry-run "$T/wt.yaml" "$T/dry"
expect_out "karcher\(max_iter=50, tol=1e-09\)" "dry run names max_iter and tol"

# --- identical models: the mean is the model itself
for dt in bf16 f32; do
    cp -R "$T/$dt/expert-1" "$T/$dt/twin-a"
    cp -R "$T/$dt/expert-1" "$T/$dt/twin-b"
    ka_yaml "$T/id-$dt.yaml" none none \
        "$T/$dt/expert-1" "$T/$dt/twin-a" "$T/$dt/twin-b"
    expect_rc 0 "identical $dt models" \
        "$AMALGAM" merge "$T/id-$dt.yaml" "$T/id-$dt" -q --chunk-size 4KiB
done
ref "identical bf16 models give exactly the model" "$T/id-bf16" \
    --model "$T/bf16/expert-1" --model "$T/bf16/twin-a" \
    --model "$T/bf16/twin-b" --copy-of "$T/bf16/expert-1"
ref "identical f32 models give the model within the tolerance" \
    "$T/id-f32" --model "$T/f32/expert-1" --model "$T/f32/twin-a" \
    --model "$T/f32/twin-b"
ref_rejects "the bit-exact check notices another model" "$T/id-bf16" \
    --model "$T/bf16/expert-1" --model "$T/bf16/twin-a" \
    --model "$T/bf16/twin-b" --copy-of "$T/bf16/expert-2"

# --- one model, or one model listed twice, is returned as it is
for dt in f32 bf16; do
    ka_yaml "$T/one-$dt.yaml" none none "$T/$dt/expert-2"
    expect_rc 0 "one $dt model" \
        "$AMALGAM" merge "$T/one-$dt.yaml" "$T/one-$dt" -q --chunk-size 4KiB
    ref "one $dt model is copied bit for bit" "$T/one-$dt" \
        --model "$T/$dt/expert-2" --copy-of "$T/$dt/expert-2"
done
ka_yaml "$T/dup.yaml" none none "$T/f32/expert-2" "$T/f32/expert-2"
expect_rc 0 "one model listed twice" "$AMALGAM" merge "$T/dup.yaml" "$T/dup" -q
same_bytes "$T/dup" "$T/one-f32" "a model listed twice counts once"

# --- zero tensors: left out of the direction, counted in the mean norm
scaled f32 zero-a 0
scaled f32 zero-b 0
ka_yaml "$T/z1.yaml" none none \
    "$T/f32/zero-a" "$T/f32/expert-1" "$T/f32/expert-2"
expect_rc 0 "a zero model among two others" \
    "$AMALGAM" merge "$T/z1.yaml" "$T/z1" -q --chunk-size 4KiB
ref "a zero model shrinks the norm as in mergekit" "$T/z1" \
    --model "$T/f32/zero-a" --model "$T/f32/expert-1" \
    --model "$T/f32/expert-2"
ref_rejects "the reference tells the zero model's share" "$T/z1" \
    --model "$T/f32/expert-1" --model "$T/f32/expert-2"
ka_yaml "$T/z2.yaml" none none "$T/f32/zero-a" "$T/f32/zero-b"
expect_rc 0 "two zero models" "$AMALGAM" merge "$T/z2.yaml" "$T/z2" -q
ref "two zero models give zeros" "$T/z2" \
    --model "$T/f32/zero-a" --model "$T/f32/zero-b" \
    --copy-of "$T/f32/zero-a"

# --- exactly opposed models: neg = -expert-1, so the mean direction is
# zero, u falls back to expert-1 and neg lies at pi from it
scaled bf16 neg -1
ka_yaml "$T/opp.yaml" none none "$T/bf16/expert-1" "$T/bf16/neg"
expect_rc 1 "opposed models fail" "$AMALGAM" merge "$T/opp.yaml" "$T/opp" -q
expect_out "merging '[^']+' with 'karcher': model 2 is opposed to the running mean \(angle 3\.14159[0-9]*, within tol of pi\): the Karcher mean is undefined" \
    "the message names the tensor, the model and why"
if [ -e "$T/opp" ] || [ -e "$T/opp.amalgam-partial" ]; then
    fail "a failed karcher merge left output"
else pass "a failed karcher merge leaves nothing"; fi

# --- schema and input errors
expect_rc 0 "amalgam plugins karcher" "$AMALGAM" plugins karcher
expect_out "^inputs: +1\.\.31" "karcher takes 1 to 31 models"
expect_out "^capabilities: +reentrant, two-pass" "karcher is two-pass"
expect_out "^devices: +cpu, cuda" "karcher runs on both devices"
expect_out "max_iter +integer, global, default 10, range >= 1" \
    "max_iter: integer, global, default 10, at least 1"
expect_out "tol +number, global, default 1e-05, range > 0" \
    "tol: number, global, default 1e-5, above 0"
expect_out "mergekit's .karcher." "the help names mergekit's method"
printf 'merge_method: karcher\nmodels:\n  - model: %s\n    parameters: {weight: 0.5}\n  - model: %s\n' \
    "$T/f32/expert-1" "$T/f32/expert-2" >"$T/weight.yaml"
expect_rc 1 "a per-model weight is refused" \
    "$AMALGAM" merge "$T/weight.yaml" "$T/o" -q
expect_out "unknown parameter 'weight' for strategy 'karcher' \(it takes: max_iter, tol\)" \
    "the refusal names the parameters karcher takes"
ka_yaml "$T/bad.yaml" none "{max_iter: 0}" "$T/f32/expert-1" "$T/f32/expert-2"
expect_rc 1 "max_iter 0 is refused" "$AMALGAM" merge "$T/bad.yaml" "$T/o" -q
expect_out "'max_iter' must be >= 1, got 0" "the refusal gives the range"
ka_yaml "$T/bad.yaml" none "{tol: 0}" "$T/f32/expert-1" "$T/f32/expert-2"
expect_rc 1 "tol 0 is refused" "$AMALGAM" merge "$T/bad.yaml" "$T/o" -q
expect_out "'tol' must be > 0, got 0" "the refusal gives tol's range"

finish
