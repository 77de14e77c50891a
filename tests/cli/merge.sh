#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `amalgam merge` end to end with the built-in linear plugin: values checked
# bit for bit against a numpy reference, byte-identical output for any -j
# and chunk size, sharding, --dry-run, output-folder safety, a write
# failure, interruption by SIGINT and SIGTERM, pipeline and usage errors.
. "${top_srcdir:-.}/tests/cli/lib.sh"

use_built_plugins
CHECK="${top_srcdir:-.}/tests/py/check_merge.py"

# no_trace DIR: neither DIR nor its staging folder exists
no_trace() {
    if [ -e "$1" ] || [ -e "$1.amalgam-partial" ]; then
        fail "$2: '$1' or its staging folder was left"; ls -la "$(dirname "$1")"
    else pass "$2"; fi
}

# same_files A B DESC: both folders hold the same files, byte for byte
same_files() {
    ok=1
    for f in "$1"/* "$2"/*; do
        n=$(basename "$f")
        cmp -s "$1/$n" "$2/$n" || { ok=0; echo "    differs: $n"; }
    done
    if [ $ok -eq 1 ]; then pass "$3"; else fail "$3"; fi
}

has_numpy=0
if [ -n "${PYTHON:-}" ] && "$PYTHON" -c 'import numpy' 2>/dev/null; then
    has_numpy=1
fi

expect_rc 0 "family of a base and two experts is written" \
    "$AMALGAM" synth --family "$T/fam" --experts 2
# a base that linear ignores: it is not among the models
cat >"$T/p.yaml" <<'EOF'
merge_method: linear
base_model: fam/base
models:
  - model: fam/expert-1
    parameters:
      weight: 0.3
  - model: fam/expert-2
    parameters:
      weight: 0.9
dtype: bfloat16
EOF

# --- a linear merge, checked against numpy
expect_rc 0 "linear merge succeeds" "$AMALGAM" merge "$T/p.yaml" "$T/lin" -q
if [ -s "$T/out" ]; then fail "-q printed something"; sed 's/^/    /' "$T/out"
else pass "-q prints nothing on success"; fi
for f in config.json generation_config.json model.safetensors README.md \
         amalgam-pipeline.yaml; do
    if [ -f "$T/lin/$f" ]; then pass "output has $f"
    else fail "output lacks $f"; fi
done
if [ -e "$T/lin.amalgam-partial" ]; then fail "staging folder left after success"
else pass "no staging folder after success"; fi
if cmp -s "$T/p.yaml" "$T/lin/amalgam-pipeline.yaml"; then
    pass "the pipeline is copied verbatim"
else fail "amalgam-pipeline.yaml differs from the pipeline"; fi
if grep -q '^- merge$' "$T/lin/README.md" &&
   grep -q 'fam/expert-2' "$T/lin/README.md"; then
    pass "model card has the merge tag and the input models"
else fail "model card lacks tags or models"; sed 's/^/    /' "$T/lin/README.md"; fi
if grep -q '"torch_dtype": "bfloat16"' "$T/lin/config.json"; then
    pass "config.json names the output dtype"
else fail "config.json lacks torch_dtype bfloat16"; fi

if [ $has_numpy -eq 1 ]; then
    expect_rc 0 "values equal the numpy reference bit for bit" \
        "$PYTHON" "$CHECK" "$T/lin" --model "$T/fam/expert-1" 0.3 \
        --model "$T/fam/expert-2" 0.9 --config-from "$T/fam/base" \
        --same-file generation_config.json "$T/fam/base"
    # the reference must notice a different merge
    expect_rc 1 "the reference rejects other weights" \
        "$PYTHON" "$CHECK" "$T/lin" --model "$T/fam/expert-1" 0.3 \
        --model "$T/fam/expert-2" 0.8
else
    echo "skip: numpy reference (no Python with numpy)"
fi

# --- f32 output, no normalization, three models in another order
cat >"$T/q.yaml" <<'EOF'
merge_method: linear
models:
  - model: fam/expert-2
    parameters: {weight: -0.5}
  - model: fam/base
    parameters: {weight: 1.25}
  - model: fam/expert-1
    parameters: {weight: 0.75}
parameters:
  normalize: false
EOF
expect_rc 0 "unnormalized merge to f32 succeeds" \
    "$AMALGAM" merge "$T/q.yaml" "$T/outq" -q --out-dtype f32
if [ $has_numpy -eq 1 ]; then
    expect_rc 0 "unnormalized f32 values equal the reference" \
        "$PYTHON" "$CHECK" "$T/outq" --model "$T/fam/expert-2" -0.5 \
        --model "$T/fam/base" 1.25 --model "$T/fam/expert-1" 0.75 \
        --no-normalize --out-dtype F32 --config-from "$T/fam/expert-2"
fi
sed 's/normalize: false/normalize: true/; s/-0.5/-2.0/' "$T/q.yaml" \
    >"$T/zero.yaml"
expect_rc 1 "weights summing to 0 with normalize fail" \
    "$AMALGAM" merge "$T/zero.yaml" "$T/outz" -q
expect_out "weights sum to 0 for tensor '[^']+'; set normalize: false" \
    "the zero-sum message names the tensor and the fix"
no_trace "$T/outz" "a failed merge leaves nothing"

# --- determinism: any -j, any chunk size, same bytes
expect_rc 0 "-j1 with 4KiB chunks" \
    "$AMALGAM" merge "$T/p.yaml" "$T/j1" -q -j1 --chunk-size 4KiB
expect_rc 0 "-j2 with 64MiB chunks" \
    "$AMALGAM" merge "$T/p.yaml" "$T/j2" -q -j 2 --chunk-size 64MiB
expect_rc 0 "-j3 with chunks smaller than a row" \
    "$AMALGAM" merge "$T/p.yaml" "$T/j3" -q --jobs=3 --chunk-size 100
same_files "$T/j1" "$T/j2" "-j1/4KiB and -j2/64MiB write the same bytes"
same_files "$T/j1" "$T/j3" "sub-row chunks write the same bytes"
same_files "$T/j1" "$T/lin" "the default run writes the same bytes"

# --- sharded output
expect_rc 0 "sharded output" \
    "$AMALGAM" merge "$T/p.yaml" "$T/sh" -q --shard-size 100KB
if [ -f "$T/sh/model.safetensors.index.json" ] &&
   [ -f "$T/sh/model-00001-of-00003.safetensors" ] &&
   [ ! -e "$T/sh/model.safetensors" ]; then
    pass "100KB shards give three files and an index"
else fail "unexpected shard layout"; ls "$T/sh"; fi
if [ $has_numpy -eq 1 ]; then
    expect_rc 0 "sharded values equal the reference" \
        "$PYTHON" "$CHECK" "$T/sh" --model "$T/fam/expert-1" 0.3 \
        --model "$T/fam/expert-2" 0.9
fi

# --- --dry-run: the plan, and nothing written
expect_rc 0 "--dry-run succeeds" "$AMALGAM" merge --dry-run "$T/p.yaml" "$T/dry"
expect_out "model\.layers\.1\.mlp\.down_proj\.weight" "dry run lists layer tensors"
expect_out "linear" "dry run names the strategy"
expect_out "0\.3" "dry run shows the resolved weights"
no_trace "$T/dry" "--dry-run creates no output folder"

# --- output folder safety
mkdir "$T/exists" && echo keep >"$T/exists/file"
expect_rc 1 "an existing OUT_DIR is refused without --force" \
    "$AMALGAM" merge "$T/p.yaml" "$T/exists" -q
expect_out "already exists" "the refusal says it exists"
if [ "$(cat "$T/exists/file")" = keep ] && [ "$(ls "$T/exists")" = file ]; then
    pass "the existing folder is untouched"
else fail "the existing folder was changed"; fi
expect_rc 0 "--force replaces an existing OUT_DIR" \
    "$AMALGAM" merge "$T/p.yaml" "$T/exists" -q --force
if [ -e "$T/exists/file" ]; then fail "--force kept the old folder's file"
else pass "--force replaced the old folder"; fi
sum_before=$(cat "$T/fam/expert-1"/* | cksum)
expect_rc 1 "OUT_DIR inside an input model folder is refused" \
    "$AMALGAM" merge "$T/p.yaml" "$T/fam/expert-1/merged" -q
expect_out "inside input model folder" "the refusal names the rule"
expect_rc 1 "OUT_DIR equal to an input model folder is refused, even with --force" \
    "$AMALGAM" merge "$T/p.yaml" "$T/fam/expert-1" -q --force
if [ "$(cat "$T/fam/expert-1"/* | cksum)" = "$sum_before" ] &&
   [ ! -e "$T/fam/expert-1/merged" ]; then
    pass "the input model is untouched"
else fail "the input model folder changed"; fi

# --- a write failure: past the file size limit
( ulimit -f 100 && exec "$AMALGAM" merge "$T/p.yaml" "$T/big" -q ) \
    >"$T/out" 2>&1
rc=$?
if [ $rc -eq 1 ]; then pass "a write past ulimit -f exits 1"
else fail "a write past ulimit -f exits $rc"; sed 's/^/    /' "$T/out"; fi
expect_out "big\.amalgam-partial/model\.safetensors" \
    "the write failure names the file"
no_trace "$T/big" "a write failure leaves nothing"

# --- interruption: SIGINT and SIGTERM during a merge
expect_rc 0 "a larger family for the interruption tests" \
    "$AMALGAM" synth --family "$T/bigfam" --experts 2 --layers 8 \
    --hidden 512 --intermediate 1408 --vocab 8192 --dtype bf16
cat >"$T/b.yaml" <<'EOF'
merge_method: linear
models:
  - model: bigfam/expert-1
    parameters: {weight: 1}
  - model: bigfam/expert-2
    parameters: {weight: 1}
EOF
for sig in INT TERM; do
    out=$T/kill-$sig
    "$AMALGAM" merge "$T/b.yaml" "$out" -q -j1 --chunk-size 1KiB \
        >"$T/out" 2>&1 &
    pid=$!
    i=0
    while [ ! -e "$out.amalgam-partial" ] && [ $i -lt 300 ] &&
          kill -0 $pid 2>/dev/null; do
        sleep 0.05; i=$((i + 1))
    done
    kill -$sig $pid 2>/dev/null
    wait $pid
    rc=$?
    if [ -d "$out" ] && [ $rc -eq 0 ]; then
        echo "skip: the merge finished before SIG$sig arrived"
        continue
    fi
    if [ $rc -eq 1 ]; then pass "SIG$sig exits 1"
    else fail "SIG$sig exits $rc"; sed 's/^/    /' "$T/out"; fi
    expect_out "^error: interrupted; nothing was written$" \
        "SIG$sig gives one clear message"
    no_trace "$out" "SIG$sig leaves no output and no staging folder"
done

# --- pipeline errors carry their location
printf 'merge_method: linear\nmodels:\n  - model: fam/base\n    paramters: {weight: 1}\n' \
    >"$T/bad.yaml"
expect_rc 1 "a bad pipeline exits 1" "$AMALGAM" merge "$T/bad.yaml" "$T/o"
expect_out "bad\.yaml:[0-9]+:[0-9]+:" "the error has file:line:col"
no_trace "$T/o" "a bad pipeline writes nothing"
expect_rc 1 "a missing pipeline exits 1" \
    "$AMALGAM" merge "$T/nope.yaml" "$T/o"

# --- usage errors
expect_rc 2 "no arguments" "$AMALGAM" merge
expect_rc 2 "no OUT_DIR" "$AMALGAM" merge "$T/p.yaml"
expect_rc 2 "unknown option" "$AMALGAM" merge "$T/p.yaml" "$T/o" --frobnicate
expect_out "unknown option '--frobnicate'" "unknown option is named"
expect_rc 2 "-j 0" "$AMALGAM" merge "$T/p.yaml" "$T/o" -j 0
expect_rc 2 "bad --chunk-size" "$AMALGAM" merge "$T/p.yaml" "$T/o" \
    --chunk-size lots
expect_rc 2 "bad --out-dtype" "$AMALGAM" merge "$T/p.yaml" "$T/o" \
    --out-dtype f7
expect_rc 2 "missing option value" "$AMALGAM" merge "$T/p.yaml" "$T/o" \
    --shard-size
expect_rc 2 "three positional arguments" "$AMALGAM" merge a b c
expect_rc 0 "--help" "$AMALGAM" merge --help
expect_out "^usage: amalgam merge PIPELINE OUT_DIR" "--help shows the usage"
no_trace "$T/o" "usage errors write nothing"

finish
