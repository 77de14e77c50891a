#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Models written by `amalgam synth`, read back by an independent Python
# reader (tests/py/st_reader.py) and compared, every element, with a numpy
# reimplementation of the synth formula rounded to the stored dtype
# independently (tests/py/check_written.py).
. "${top_srcdir:-.}/tests/cli/lib.sh"

if [ -z "${PYTHON:-}" ]; then
    echo "SKIP: no Python interpreter (configure found none; set PYTHON)"
    exit 77
fi
if ! "$PYTHON" -c 'import numpy' >/dev/null 2>&1; then
    echo "SKIP: $PYTHON cannot import numpy"
    exit 77
fi
CHECK="$top_srcdir/tests/py/check_written.py"

# synth_check DESC SHARDS [options]: write a model, then check it with the
# same options
n_models=0
synth_check() {
    desc=$1; shards=$2; shift 2
    n_models=$((n_models + 1))
    dir="$T/m$n_models"
    expect_rc 0 "$desc: synth" "$AMALGAM" synth "$dir" "$@"
    expect_rc 0 "$desc: every element matches" \
        "$PYTHON" "$CHECK" "$dir" --shards "$shards" "$@"
    expect_out "values identical" "$desc: checker summary"
}

synth_check "bf16 unsharded" 1
synth_check "f32, 6 shards" 6 --dtype f32 --shard-size 100KB
synth_check "f16, other shape, tied, 4 shards" 4 --dtype f16 --layers 3 \
    --hidden 48 --heads 6 --kv-heads 3 --intermediate 100 --vocab 50 --tie \
    --seed 12345 --shard-size 40KB
synth_check "bf16 expert" 1 --expert 2 --seed 7 --delta-scale 0.5 \
    --agree 0.25
synth_check "f64 expert, large seed" 1 --dtype f64 --expert 1 \
    --seed 18446744073709551615 --delta-scale 2 --agree 1
synth_check "f16 expert, sharded" 2 --dtype float16 --expert 3 \
    --shard-size 200KB --agree 0

# the checker must be able to fail: the bf16 expert checked as expert 1
expect_rc 1 "checker rejects values of another expert" \
    "$PYTHON" "$CHECK" "$T/m4" --expert 1 --seed 7 --delta-scale 0.5 \
    --agree 0.25
expect_out "MISMATCH: model\.embed_tokens\.weight: element [0-9]+ is" \
    "mismatch names the tensor and element"
expect_rc 1 "checker rejects another dtype" "$PYTHON" "$CHECK" "$T/m1" \
    --dtype f16
finish
