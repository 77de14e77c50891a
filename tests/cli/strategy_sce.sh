#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The gta plugin's sce strategy on synth models (f32, bf16 and f16 inputs;
# every model has 1-D norms and a 200 x 64 embedding and lm_head): values
# against the float64 reference tests/reference/sce.py (tolerance stated
# there: 1e-6 of the tensor's scale for f32 output, plus 2^-8 relative for
# bf16) for select_topk 1, 0.5, 0.3 and 0; the same bytes for -j1/-j2 and
# chunks of 64 MiB, 4 KiB and 1 KiB (1 KiB splits every matrix, so the
# variance histograms, tie counts and weight sums must add up across
# chunks); identical inputs give the input, or the base once the selection
# finds no variance; select_topk outside [0, 1] and a missing base fail.
. "${top_srcdir:-.}/tests/cli/lib.sh"

use_built_plugins
REF="${top_srcdir:-.}/tests/reference/sce.py"

check_numpy "numpy reference comparisons"

pipe() {  # FILE FAMILY SELECT_TOPK MODEL...: an sce step over the models
    f=$1; fam=$2; t=$3; shift 3
    {
        echo "merge_method: sce"
        echo "base_model: $fam/base"
        echo "models:"
        for m in "$@"; do echo "  - model: $fam/$m"; done
        echo "parameters:"
        echo "  select_topk: $t"
    } >"$f"
}

cd "$T" || exit 1
expect_rc 0 "f32 family is written" \
    "$AMALGAM" synth --family fam --experts 3 --layers 2 --hidden 64 \
    --vocab 200 --dtype f32
expect_rc 0 "bf16 family is written" \
    "$AMALGAM" synth --family famb --experts 3 --layers 2 --hidden 64 \
    --vocab 200 --dtype bf16 --seed 5
expect_rc 0 "f16 family is written" \
    "$AMALGAM" synth --family famh --experts 2 --layers 2 --hidden 64 \
    --vocab 200 --dtype f16 --seed 7 --agree 0.2

# --- schema
expect_rc 0 "amalgam plugins sce" "$AMALGAM" plugins sce
expect_out "select_topk +number, global, default 1, range \[0, 1\]" \
    "sce shows select_topk's default and range"
expect_out "max\(sum_i w_i erase_i, 1e-6\)" "sce's help gives the formula"

# --- against the reference; the same bytes for any -j and chunk size
three="expert-1 expert-2 expert-3"
for t in 1.0 0.5 0.3 0.0; do
    # shellcheck disable=SC2086  # three is split on purpose
    pipe "s$t.yaml" fam "$t" $three
    expect_rc 0 "select_topk $t merges with 1KiB chunks, -j2" \
        "$AMALGAM" merge "s$t.yaml" "s$t-a" -q -j2 --chunk-size 1KiB \
        --out-dtype f32
    expect_rc 0 "select_topk $t merges with 4KiB chunks, -j1" \
        "$AMALGAM" merge "s$t.yaml" "s$t-b" -q -j1 --chunk-size 4KiB \
        --out-dtype f32
    expect_rc 0 "select_topk $t merges with 64MiB chunks, -j2" \
        "$AMALGAM" merge "s$t.yaml" "s$t-c" -q -j2 --chunk-size 64MiB \
        --out-dtype f32
    same_bytes "s$t-a" "s$t-b" "select_topk $t: 1KiB -j2 = 4KiB -j1"
    same_bytes "s$t-a" "s$t-c" "select_topk $t: 1KiB -j2 = 64MiB -j2"
    if [ $has_numpy -eq 1 ]; then
        expect_rc 0 "select_topk $t equals the float64 reference" \
            "$PYTHON" "$REF" check "s$t-a" --base fam/base \
            --model fam/expert-1 fam/expert-2 fam/expert-3 \
            --select-topk "$t"
    fi
done
if [ $has_numpy -eq 1 ]; then
    expect_rc 1 "the reference notices another select_topk" \
        "$PYTHON" "$REF" check s0.5-a --base fam/base \
        --model fam/expert-1 fam/expert-2 fam/expert-3 --select-topk 0.4
    expect_rc 1 "the reference notices a missing selection" \
        "$PYTHON" "$REF" check s0.5-a --base fam/base \
        --model fam/expert-1 fam/expert-2 fam/expert-3
fi

# --- other dtypes: bf16 in and out, f16 in (two models) and f32 out
run_dt() {  # NAME FAMILY OUT-DTYPE SELECT_TOPK MODEL...
    n=$1; fam=$2; odt=$3; t=$4; shift 4
    pipe "$n.yaml" "$fam" "$t" "$@"
    expect_rc 0 "$n merges" "$AMALGAM" merge "$n.yaml" "$n-a" -q -j2 \
        --chunk-size 1KiB --out-dtype "$odt"
    expect_rc 0 "$n merges whole" "$AMALGAM" merge "$n.yaml" "$n-b" -q -j1 \
        --out-dtype "$odt"
    same_bytes "$n-a" "$n-b" "$n: same bytes for any -j and chunk size"
    if [ $has_numpy -eq 1 ]; then
        models=""
        for m in "$@"; do models="$models $fam/$m"; done
        # shellcheck disable=SC2086
        expect_rc 0 "$n equals the float64 reference" \
            "$PYTHON" "$REF" check "$n-a" --base "$fam/base" \
            --model $models --select-topk "$t"
    fi
}
# shellcheck disable=SC2086
run_dt bf16 famb bf16 0.3 $three
run_dt f16 famh f32 0.7 expert-1 expert-2

# --- identical inputs: the input back with no selection (within 1e-6 of
# the scale: base + (x - base) rounds twice), the base itself once the
# selection sees no variance anywhere (k = 0 masks every element)
cp -R fam/expert-1 fam/twin
pipe twin1.yaml fam 1.0 expert-1 twin
pipe twin5.yaml fam 0.5 expert-1 twin
expect_rc 0 "sce of identical models" \
    "$AMALGAM" merge twin1.yaml twin1 -q --out-dtype f32 --chunk-size 1KiB
expect_rc 0 "sce of identical models, select_topk 0.5" \
    "$AMALGAM" merge twin5.yaml twin5 -q --out-dtype f32 --chunk-size 1KiB
if [ $has_numpy -eq 1 ]; then
    same() {  # DESC OUT WANT TOLERANCE: every tensor within TOL of scale
        expect_rc 0 "$1" "$PYTHON" -c '
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np, st_reader
_, o = st_reader.read_model(sys.argv[2])
_, x = st_reader.read_model(sys.argv[3])
tol = float(sys.argv[4])
for k in x:
    e = np.abs(o[k].astype(np.float64) - x[k])
    if (e > tol * np.abs(x[k]).max()).any():
        sys.exit("%s differs by %g" % (k, e.max()))
' "${top_srcdir:-.}/tests/py" "$2" "$3" "$4"
    }
    same "identical inputs give the input (within 1e-6 of the scale)" \
        twin1 fam/expert-1 1e-6
    same "identical inputs with select_topk 0.5 give the base exactly" \
        twin5 fam/base 0
    expect_rc 1 "the comparison notices the input is not the base" \
        "$PYTHON" -c '
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np, st_reader
_, o = st_reader.read_model(sys.argv[2])
_, x = st_reader.read_model(sys.argv[3])
sys.exit(1 if any((o[k] != x[k]).any() for k in x) else 0)
' "${top_srcdir:-.}/tests/py" twin1 fam/base
fi

# --- errors
sed 's/select_topk: 0.5/select_topk: 1.5/' s0.5.yaml >big.yaml
expect_rc 1 "select_topk 1.5 fails" "$AMALGAM" merge big.yaml big -q
expect_out "'select_topk' must be in \[0, 1\], got 1.5" \
    "the message names select_topk and its range"
printf '%s\n' "merge_method: sce" "models:" "  - model: fam/expert-1" \
    "  - model: fam/expert-2" >nobase.yaml
expect_rc 1 "sce without a base fails" "$AMALGAM" merge nobase.yaml nb -q
expect_out "merge_method 'sce' needs a base model" \
    "the message says a base is needed"
finish
