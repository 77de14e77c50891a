#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The SIMD forms of the CPU's hot loops (host/simd.h) end to end: every
# built-in strategy, and the fused chain, merged with AMALGAM_SIMD=base
# and with each wider form this CPU runs must write the same files, byte
# for byte (bf16 inputs, so the conversions run too; 1 KiB chunks at -j2
# for the widest form, so the loops also see short and ragged lengths).
# tests/unit/check_simd.c holds the kernels to the same bits one by one.
. "${top_srcdir:-.}/tests/cli/lib.sh"
. "${top_srcdir:-.}/tests/gpu/strategies.sh"

use_built_plugins
cd "$T" || exit 1

# the form the CPU picks is on the version line; base is always there
AMALGAM_SIMD=base "$AMALGAM" --version >"$T/out" 2>&1
expect_out '; cpu kernels: base\)$' "AMALGAM_SIMD=base narrows to the base form"
"$AMALGAM" --version >"$T/out" 2>&1
widest=$(sed -n 's/.*; cpu kernels: \([a-z0-9]*\))$/\1/p' "$T/out")
case $widest in
base) forms= ;;
avx2) forms=avx2 ;;
avx512) forms="avx2 avx512" ;;
*) fail "the version line names no cpu kernels"; forms= ;;
esac
AMALGAM_SIMD=bogus "$AMALGAM" --version >"$T/out" 2>&1
expect_out "; cpu kernels: $widest\)\$" \
    "an unknown AMALGAM_SIMD leaves the CPU's choice"
if [ -z "$forms" ]; then
    echo "skip: this CPU runs no SIMD form beyond base"
    finish
fi

gpu_models "$T"
for m in $GPU_STRATEGIES chain; do
    gpu_pipeline "$T/$m.yaml" "$m" "$T" || { fail "pipeline $m"; continue; }
    expect_rc 0 "$m, base form" env AMALGAM_SIMD=base \
        "$AMALGAM" merge "$T/$m.yaml" "$T/$m-base" -q -j2
    for f in $forms; do
        expect_rc 0 "$m, $f form" env AMALGAM_SIMD=$f \
            "$AMALGAM" merge "$T/$m.yaml" "$T/$m-$f" -q -j2
        same_files "$T/$m-base" "$T/$m-$f" "$m: the $f form writes base's bytes"
    done
    expect_rc 0 "$m, $widest form, 1KiB chunks" \
        "$AMALGAM" merge "$T/$m.yaml" "$T/$m-small" -q -j2 --chunk-size 1KiB
    same_files "$T/$m-base" "$T/$m-small" \
        "$m: the $widest form in 1 KiB chunks writes base's bytes"
done
finish
