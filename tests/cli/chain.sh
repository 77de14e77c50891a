#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# A chained pipeline (steps fused per tensor in memory) gives the same bytes
# as running its steps one by one through disk. The models are f32 so the
# intermediate written to disk loses nothing the in-memory chain keeps.
. "${top_srcdir:-.}/tests/cli/lib.sh"

use_built_plugins

expect_rc 0 "f32 family of a base and three experts" \
    "$AMALGAM" synth --family "$T/fam" --experts 3 --dtype f32 --layers 3

cat >"$T/chain.yaml" <<'EOF2'
steps:
  - name: pair
    merge_method: linear
    models:
      - model: fam/expert-1
        parameters: {weight: 0.7}
      - model: fam/expert-2
        parameters: {weight: [0.3, 0.9]}
  - name: final
    merge_method: linear
    parameters:
      normalize: false
    models:
      - model: pair
        parameters: {weight: 0.6}
      - model: fam/expert-3
        parameters: {weight: 0.4}
EOF2
cat >"$T/pair.yaml" <<'EOF2'
merge_method: linear
models:
  - model: fam/expert-1
    parameters: {weight: 0.7}
  - model: fam/expert-2
    parameters: {weight: [0.3, 0.9]}
EOF2
cat >"$T/final.yaml" <<'EOF2'
merge_method: linear
parameters:
  normalize: false
models:
  - model: pair-out
    parameters: {weight: 0.6}
  - model: fam/expert-3
    parameters: {weight: 0.4}
EOF2

expect_rc 0 "the chained pipeline merges in one run" \
    "$AMALGAM" merge -q "$T/chain.yaml" "$T/chained"
expect_rc 0 "its first step alone, through disk" \
    "$AMALGAM" merge -q "$T/pair.yaml" "$T/pair-out"
expect_rc 0 "its second step alone, on the first's output" \
    "$AMALGAM" merge -q "$T/final.yaml" "$T/stepwise"

if cmp -s "$T/chained/model.safetensors" "$T/stepwise/model.safetensors"; then
    pass "chained and step-by-step outputs are byte-identical"
else
    fail "chained and step-by-step outputs differ"
fi
# the chain really used expert-3 and the gradient: it differs from the pair
if cmp -s "$T/chained/model.safetensors" "$T/pair-out/model.safetensors"; then
    fail "the chain's output equals its first step's"
else
    pass "the second step changed the first step's result"
fi

# a step may only name an earlier step
sed 's/model: pair$/model: final/' "$T/chain.yaml" >"$T/bad.yaml"
expect_rc 1 "a step naming itself is refused" \
    "$AMALGAM" merge -q "$T/bad.yaml" "$T/bad-out"
expect_out "bad.yaml:[0-9]+:[0-9]+: " "the refusal carries file:line:column"
[ -e "$T/bad-out" ] && fail "refused pipeline left an output" ||
    pass "refused pipeline wrote nothing"
finish
