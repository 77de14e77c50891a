#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The gta plugin (task_arithmetic, ties, dare_ties, dare_linear,
# breadcrumbs, breadcrumbs_ties, della, della_linear) on synth models:
# values against the float64 reference tests/reference/gta.py (tolerance
# stated there: 1e-6 of
# the tensor's scale for f32 output, plus 2^-8 relative for bf16), the same
# bytes for any -j and chunk size (1KiB chunks split every tensor, so the
# chunked top-k and L1 sums must equal the whole-tensor ones), and the
# properties: ties with density 1 and one model is task_arithmetic,
# identical inputs give the input, DARE keeps density * n within 4 sigma
# and restores the L1 norm, a density that keeps nothing fails clearly;
# DELLA keeps sum p per half of the ranks within 4 sigma, and a density
# +/- epsilon outside (0, 1) fails naming both.
. "${top_srcdir:-.}/tests/cli/lib.sh"

use_built_plugins
REF="${top_srcdir:-.}/tests/reference/gta.py"

check_numpy "numpy reference comparisons"

# pipe FILE METHOD FAMILY [global parameter lines...]: three experts
pipe() {
    f=$1; m=$2; fam=$3; shift 3
    {
        echo "merge_method: $m"
        echo "base_model: $fam/base"
        echo "seed: 11"
        echo "models:"
        echo "  - model: $fam/expert-1"
        echo "    parameters: {weight: 0.5, density: 0.3}"
        echo "  - model: $fam/expert-2"
        echo "    parameters: {weight: 0.3, density: 0.55}"
        echo "  - model: $fam/expert-3"
        echo "    parameters: {weight: -0.2, density: 0.8}"
        echo "parameters:"
        echo "  lambda: 0.9"
        for l in "$@"; do echo "  $l"; done
    } >"$f"
}
MODELS="--model fam/expert-1 weight=0.5,density=0.3
        --model fam/expert-2 weight=0.3,density=0.55
        --model fam/expert-3 weight=-0.2,density=0.8"

cd "$T" || exit 1
expect_rc 0 "f32 family is written" \
    "$AMALGAM" synth --family fam --experts 3 --layers 2 --hidden 64 \
    --dtype f32
expect_rc 0 "bf16 family is written" \
    "$AMALGAM" synth --family famb --experts 3 --layers 2 --hidden 64 \
    --dtype bf16 --seed 5

# --- schemas
expect_rc 0 "amalgam plugins ties" "$AMALGAM" plugins ties
expect_out "density +number, per-model, default 1, range \[0, 1\]" \
    "ties shows density's default and range"
expect_out "consensus +string, global, default 'sum', choices sum\|count" \
    "ties shows the consensus option"
expect_out "normalize +boolean, global, default true" \
    "ties normalizes by default"
expect_rc 0 "amalgam plugins dare_linear" "$AMALGAM" plugins dare_linear
expect_out "rescale +boolean, global, default true" "dare rescales by default"
expect_out "rescale_mode +string, global, default 'l1', choices l1\|inverse" \
    "dare shows rescale_mode"
expect_rc 0 "amalgam plugins breadcrumbs" "$AMALGAM" plugins breadcrumbs
expect_out "gamma +number, per-model, default 0.01" "breadcrumbs shows gamma"
expect_out "drops nothing from the top" "breadcrumbs documents the n_top fix"

# --- every strategy against the reference, and chunking invariance
for m in task_arithmetic ties dare_ties dare_linear breadcrumbs \
         breadcrumbs_ties; do
    pipe "$m.yaml" "$m" fam
    expect_rc 0 "$m merges with 1KiB chunks, -j2" \
        "$AMALGAM" merge "$m.yaml" "$m-a" -q -j2 --chunk-size 1KiB \
        --out-dtype f32
    expect_rc 0 "$m merges with 64MiB chunks, -j1" \
        "$AMALGAM" merge "$m.yaml" "$m-b" -q -j1 --chunk-size 64MiB \
        --out-dtype f32
    same_bytes "$m-a" "$m-b" "$m: same bytes for any -j and chunk size"
    if [ $has_numpy -eq 1 ]; then
        # shellcheck disable=SC2086  # MODELS is split on purpose
        expect_rc 0 "$m equals the float64 reference" \
            "$PYTHON" "$REF" check "$m-a" --method "$m" --base fam/base \
            $MODELS --lambda 0.9 --seed 11
    fi
done
if [ $has_numpy -eq 1 ]; then
    # shellcheck disable=SC2086
    expect_rc 1 "the reference notices another seed" \
        "$PYTHON" "$REF" check dare_ties-a --method dare_ties \
        --base fam/base $MODELS --lambda 0.9 --seed 12
    # shellcheck disable=SC2086
    expect_rc 1 "the reference notices another method" \
        "$PYTHON" "$REF" check ties-a --method breadcrumbs_ties \
        --base fam/base $MODELS --lambda 0.9 --seed 11
fi

# --- options: rescale on the magnitude selections, count consensus,
# inverse rescale, normalize off; bf16 inputs and output
run_opt() {  # NAME METHOD FAMILY OUT-DTYPE REFARGS -- PARAMETER LINES...
    n=$1; m=$2; fam=$3; odt=$4; refargs=$5; shift 6
    pipe "$n.yaml" "$m" "$fam" "$@"
    expect_rc 0 "$n merges" "$AMALGAM" merge "$n.yaml" "$n-a" -q -j2 \
        --chunk-size 1KiB --out-dtype "$odt"
    expect_rc 0 "$n merges whole" "$AMALGAM" merge "$n.yaml" "$n-b" -q -j1 \
        --out-dtype "$odt"
    same_bytes "$n-a" "$n-b" "$n: same bytes for any -j and chunk size"
    if [ $has_numpy -eq 1 ]; then
        fm=$(echo "$MODELS" | sed "s#fam/#$fam/#g")
        # shellcheck disable=SC2086
        expect_rc 0 "$n equals the float64 reference" \
            "$PYTHON" "$REF" check "$n-a" --method "$m" --base "$fam/base" \
            $fm --lambda 0.9 --seed 11 $refargs
    fi
}
run_opt ties_rescale ties fam f32 "--rescale 1" -- "rescale: true"
run_opt bc_rescale breadcrumbs fam f32 "--rescale 1 --gamma 0.05" -- "rescale: true" \
    "gamma: 0.05"
run_opt ties_count ties fam f32 "--consensus count --normalize 0" -- \
    "consensus: count" "normalize: false"
run_opt dare_inv dare_ties fam f32 "--rescale-mode inverse --normalize 1" -- \
    "rescale_mode: inverse" "normalize: true"
run_opt ties_bf16 ties famb bf16 "" --
run_opt dare_bf16 dare_linear famb bf16 "" --
run_opt ta_bf16 task_arithmetic famb bf16 "--normalize 1" -- "normalize: true"

# --- ties with density 1 and one model is task_arithmetic
one() {  # FILE METHOD
    printf '%s\n' "merge_method: $2" "base_model: fam/base" "models:" \
        "  - model: fam/expert-2" "    parameters: {weight: 1.0}" \
        "dtype: float32" >"$1"
}
one one_ties.yaml ties
one one_ta.yaml task_arithmetic
expect_rc 0 "ties of one model" "$AMALGAM" merge one_ties.yaml one_ties -q \
    --chunk-size 1KiB
expect_rc 0 "task_arithmetic of one model" \
    "$AMALGAM" merge one_ta.yaml one_ta -q
same_bytes one_ties one_ta "ties (density 1, one model) == task_arithmetic"

# --- identical inputs give the input (weights summing to 1, normalize)
cp -R fam/expert-1 fam/twin
printf '%s\n' "merge_method: task_arithmetic" "base_model: fam/base" \
    "models:" "  - model: fam/expert-1" "    parameters: {weight: 0.25}" \
    "  - model: fam/twin" "    parameters: {weight: 0.75}" \
    "parameters: {normalize: true}" "dtype: float32" >twin.yaml
expect_rc 0 "task_arithmetic of identical models" \
    "$AMALGAM" merge twin.yaml twin -q
if [ $has_numpy -eq 1 ]; then
    expect_rc 0 "identical inputs give the input (within 1e-6 of the scale)" \
        "$PYTHON" -c '
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np, st_reader
_, o = st_reader.read_model(sys.argv[2])
_, x = st_reader.read_model(sys.argv[3])
for k in x:
    e = np.abs(o[k].astype(np.float64) - x[k])
    if (e > 1e-6 * np.abs(x[k]).max()).any():
        sys.exit("%s differs by %g" % (k, e.max()))
' "${top_srcdir:-.}/tests/py" twin fam/expert-1
fi

# --- DARE statistics: kept count within 4 sigma, L1 restored
for mode in l1 inverse; do
    printf '%s\n' "merge_method: dare_linear" "base_model: fam/base" \
        "seed: 3" "models:" "  - model: fam/expert-1" \
        "    parameters: {weight: 1.0, density: 0.3}" \
        "parameters: {rescale_mode: $mode}" "dtype: float32" >"dp_$mode.yaml"
    expect_rc 0 "dare_linear ($mode) of one model" \
        "$AMALGAM" merge "dp_$mode.yaml" "dp_$mode" -q
    if [ $has_numpy -eq 1 ]; then
        expect_rc 0 "dare ($mode) keeps 0.3 n within 4 sigma, L1 restored" \
            "$PYTHON" "$REF" dare-props "dp_$mode" --base fam/base \
            --model fam/expert-1 --density 0.3 --rescale-mode "$mode"
    fi
done

# --- errors
sed 's/density: 0.3/density: 0.01/' ties.yaml >k0.yaml
expect_rc 1 "a density keeping no element fails" \
    "$AMALGAM" merge k0.yaml k0 -q
expect_out "density 0.01 of input model 1 keeps no element of '[^']+' \(64 elements\)" \
    "the message names the density, model, tensor and size"
sed '/base_model/d' ties.yaml >nobase.yaml
expect_rc 1 "ties without a base fails" "$AMALGAM" merge nobase.yaml nb -q
expect_out "needs a base model" "the message asks for a base"
pipe badc.yaml ties fam "consensus: majority"
expect_rc 1 "an unknown consensus fails" "$AMALGAM" merge badc.yaml bc -q
expect_out "consensus" "the message names consensus"

# --- dry run shows the resolved parameters, defaults included
expect_rc 0 "dry run of dare_ties" \
    "$AMALGAM" merge dare_ties.yaml dry --dry-run
expect_out "dare_ties\(weight=\[0.5, 0.3, -0.2\], density=\[0.3, 0.55, 0.8\], lambda=0.9, normalize=false, rescale=true" \
    "dry run lists weights, densities and the method's defaults"

# --- della, della_linear (MagPrune): schema, the reference, chunking
# (64-byte chunks split even the 1-D norms, whose ranks span the tensor),
# options, density 0 and 1, rank-dependent keep rates, the window check
expect_rc 0 "amalgam plugins della" "$AMALGAM" plugins della
expect_out "epsilon +number, per-model, default 0.15" "della shows epsilon"
expect_out "normalize +boolean, global, default true" \
    "della normalizes by default"
expect_out "rescale_mode +string, global, default 'l1'" \
    "della shows rescale_mode"
expect_rc 0 "amalgam plugins della_linear" "$AMALGAM" plugins della_linear
expect_out "normalize +boolean, global, default false" \
    "della_linear does not normalize by default"
for m in della della_linear; do
    pipe "$m.yaml" "$m" fam
    expect_rc 0 "$m merges with 1KiB chunks, -j2" \
        "$AMALGAM" merge "$m.yaml" "$m-a" -q -j2 --chunk-size 1KiB \
        --out-dtype f32
    expect_rc 0 "$m merges with 64MiB chunks, -j1" \
        "$AMALGAM" merge "$m.yaml" "$m-b" -q -j1 --chunk-size 64MiB \
        --out-dtype f32
    expect_rc 0 "$m merges with 64-byte chunks, -j3" \
        "$AMALGAM" merge "$m.yaml" "$m-c" -q -j3 --chunk-size 64 \
        --out-dtype f32
    same_bytes "$m-a" "$m-b" "$m: same bytes for any -j and chunk size"
    same_bytes "$m-c" "$m-b" "$m: split 1-D tensors rank as whole ones"
    if [ $has_numpy -eq 1 ]; then
        # shellcheck disable=SC2086
        expect_rc 0 "$m equals the float64 reference" \
            "$PYTHON" "$REF" check "$m-a" --method "$m" --base fam/base \
            $MODELS --lambda 0.9 --seed 11
    fi
done
if [ $has_numpy -eq 1 ]; then
    # shellcheck disable=SC2086
    expect_rc 1 "the reference notices another epsilon" \
        "$PYTHON" "$REF" check della-a --method della --base fam/base \
        $MODELS --lambda 0.9 --seed 11 --epsilon 0.1
    # shellcheck disable=SC2086
    expect_rc 1 "the reference notices dare's uniform keep rate" \
        "$PYTHON" "$REF" check della_linear-a --method dare_linear \
        --base fam/base $MODELS --lambda 0.9 --seed 11
fi
# inside a chain the host calls merge on whole tensors: same bytes
{
    echo "seed: 11"
    echo "steps:"
    echo "  - name: d"
    sed -e '/^seed:/d' -e 's/^/    /' della.yaml
    printf '%s\n' "  - name: final" "    merge_method: linear" \
        "    models:" "      - model: d" "        parameters: {weight: 1.0}"
} >della_chain.yaml
expect_rc 0 "della as the first step of a chain" \
    "$AMALGAM" merge della_chain.yaml della-chain -q --out-dtype f32
same_bytes della-chain della-b "della: whole-tensor merge == two passes"
run_opt della_inv della fam f32 \
    "--rescale-mode inverse --consensus count --epsilon 0.05" -- \
    "rescale_mode: inverse" "consensus: count" "epsilon: 0.05"
run_opt della_norescale della_linear fam f32 "--rescale 0 --normalize 1" \
    -- "rescale: false" "normalize: true"
run_opt della_bf16 della_linear famb bf16 "" --

# density 0 zeroes a task vector, density 1 keeps it whatever epsilon
printf '%s\n' "merge_method: della_linear" "base_model: fam/base" \
    "seed: 5" "models:" "  - model: fam/expert-1" \
    "    parameters: {weight: 0.5, density: 0.0}" \
    "  - model: fam/expert-2" \
    "    parameters: {weight: 0.3, density: 1.0, epsilon: 0.6}" \
    "  - model: fam/expert-3" \
    "    parameters: {weight: 0.2, density: 0.5, epsilon: 0.45}" \
    "dtype: float32" >della_ends.yaml
expect_rc 0 "della_linear with densities 0, 1 and 0.5 +/- 0.45" \
    "$AMALGAM" merge della_ends.yaml della_ends -q --chunk-size 1KiB
if [ $has_numpy -eq 1 ]; then
    expect_rc 0 "density 0 and 1 as mergekit (float64 reference)" \
        "$PYTHON" "$REF" check della_ends --method della_linear \
        --base fam/base --model fam/expert-1 weight=0.5,density=0 \
        --model fam/expert-2 weight=0.3,density=1,epsilon=0.6 \
        --model fam/expert-3 weight=0.2,density=0.5,epsilon=0.45 --seed 5
fi

# keep rates follow the rank: counts per half of the ranks within 4 sigma
for mode in l1 inverse; do
    printf '%s\n' "merge_method: della_linear" "base_model: fam/base" \
        "seed: 3" "models:" "  - model: fam/expert-1" \
        "    parameters: {weight: 1.0, density: 0.4, epsilon: 0.3}" \
        "parameters: {rescale_mode: $mode}" "dtype: float32" \
        >"dl_$mode.yaml"
    expect_rc 0 "della_linear ($mode) of one model" \
        "$AMALGAM" merge "dl_$mode.yaml" "dl_$mode" -q --chunk-size 64
    if [ $has_numpy -eq 1 ]; then
        expect_rc 0 "della ($mode) keeps sum p per rank half, L1 restored" \
            "$PYTHON" "$REF" della-props "dl_$mode" --base fam/base \
            --model fam/expert-1 --density 0.4 --epsilon 0.3 \
            --rescale-mode "$mode"
        expect_rc 1 "the property check notices a rank-blind keep rate" \
            "$PYTHON" "$REF" della-props "dl_$mode" --base fam/base \
            --model fam/expert-1 --density 0.4 --epsilon 0 \
            --rescale-mode "$mode"
    fi
done

# density +/- epsilon must stay inside (0, 1), checked per model
pipe della_win.yaml della fam
sed 's/density: 0.55}/density: 0.9}/' della_win.yaml >della_hi.yaml
expect_rc 1 "della with density 0.9 +/- 0.15 fails" \
    "$AMALGAM" merge della_hi.yaml della_hi -q
expect_out "density 0.9 ± epsilon 0.15 of input model 2 leaves \(0, 1\)" \
    "the message names density, epsilon and the model"
sed 's/density: 0.3}/density: 0.3, epsilon: 0.3}/' della_win.yaml \
    >della_lo.yaml
expect_rc 1 "della with density 0.3 - epsilon 0.3 = 0 fails" \
    "$AMALGAM" merge della_lo.yaml della_lo -q
expect_out "density 0.3 ± epsilon 0.3 of input model 1 leaves \(0, 1\)" \
    "the message names the lower end too"
sed 's/density: 0.3}/density: 0.3, epsilon: -0.1}/' della_win.yaml \
    >della_neg.yaml
expect_rc 1 "a negative epsilon fails" \
    "$AMALGAM" merge della_neg.yaml della_neg -q
expect_out "'epsilon' must be >= 0" "the message names epsilon's minimum"
finish
