#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Every recipe in contrib/recipes validates with `amalgam merge --dry-run`
# against its models' real tensor layout, with no download: header-only
# stand-ins (sparse files) are built from contrib/recipes/fixtures, then
#  1. the recipe's Hub references are rewritten to the stand-in folders;
#  2. the recipe is run unchanged with HF_HUB_OFFLINE=1 and a fake
#     huggingface_hub cache holding the stand-ins.
# Features still being built elsewhere (LoRA inputs, the Hub registry) are
# reported as "pending: ..." lines, not passed; any other refusal fails.
. "${top_srcdir:-.}/tests/cli/lib.sh"

use_built_plugins
R="${top_srcdir:-.}/contrib/recipes"
FX="$R/fixtures"
if [ -z "${PYTHON:-}" ] || ! "$PYTHON" -c 'import json' 2>/dev/null; then
    echo "skip: no Python to build the stand-in models"; exit 77
fi
LORA_PENDING='LoRA adapters are not supported yet'
HUB_PENDING='downloading from the Hugging Face Hub is not supported yet'

# --- stand-ins: one folder per fixture, and the same in a fake Hub cache
pairs=
for f in "$FX"/*.json; do
    n=$(basename "$f" .json)
    expect_rc 0 "stand-in for $n" "$PYTHON" "$FX/standin.py" build "$f" "$T/m/$n"
    expect_rc 0 "cached stand-in for $n" \
        "$PYTHON" "$FX/standin.py" cache "$f" "$T/hf/hub"
    pairs="$pairs $f=$T/m/$n"
done
# the stand-ins really are sparse: 7 models of 13-16 GB in well under 64 MB
used=$(du -sk "$T/m" | cut -f1)
if [ "$used" -lt 65536 ]; then pass "stand-ins take ${used} KiB of disk"
else fail "stand-ins take ${used} KiB: not sparse"; fi
expect_rc 0 "a stand-in reads as the published model" \
    "$AMALGAM" inspect "$T/m/meta-llama--Meta-Llama-3-8B-Instruct"
expect_out "parameters: +8,030,261,248" "Llama-3-8B has 8,030,261,248 parameters"
expect_out "tensors: +291" "and 291 tensors"

# dry RECIPE FILE DESC: dry-run FILE with $DRY_ENV set; pending lines for
# features in flight
dry() {
    # shellcheck disable=SC2086
    env $DRY_ENV "$AMALGAM" merge --dry-run "$2" "$T/out" >"$T/out" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        pass "$3"
        # one 'merge:' line per output tensor: the Llama-3 layout has 291
        case "$1" in llama3-*)
            n=$(grep -c '^  merge: ' "$T/out")
            if [ "$n" -eq 291 ]; then pass "$3: 291 tensors planned"
            else fail "$3: $n tensors planned, wanted 291"; fi ;;
        esac
    elif grep -q "$LORA_PENDING" "$T/out"; then
        echo "pending: $3: LoRA inputs not in amalgam yet ($(head -1 "$T/out"))"
    elif grep -q "$HUB_PENDING" "$T/out"; then
        echo "pending: $3: Hub registry not in amalgam yet ($(head -1 "$T/out"))"
    else
        fail "$3: exit $rc"; sed 's/^/    /' "$T/out" | head -20
    fi
}

for r in "$R"/*.yaml; do
    b=$(basename "$r")
    # every model pinned to a 40-hex commit (the rules date the uploads)
    if grep -E '^ *(- )?(model|base_model|tokenizer_source): ' "$r" |
       grep -vqE '@[0-9a-f]{40}$'; then
        fail "$b: a model without a pinned commit"
    else pass "$b: every model pinned to a commit"; fi
    grep -q '^# Expected merge time' "$r" && pass "$b: states its merge time" ||
        fail "$b: no '# Expected merge time' comment"
    # shellcheck disable=SC2086
    "$PYTHON" "$FX/standin.py" rewrite "$r" "$T/$b" $pairs
    if grep -qE '[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+@[0-9a-f]{40}' "$T/$b"; then
        fail "$b: a Hub reference has no fixture"; grep -nE '@[0-9a-f]{40}' "$T/$b"
    fi
    DRY_ENV=
    dry "$b" "$T/$b" "$b validates against the stand-ins"
    cp "$r" "$T/hub-$b"
    DRY_ENV="HF_HUB_OFFLINE=1 HF_HOME=$T/hf HF_HUB_CACHE=$T/hf/hub"
    dry "$b" "$T/hub-$b" "$b validates from the offline Hub cache"
done

# --- the check can fail: a fine-tune missing its last layer is refused
"$PYTHON" - "$FX/MaziyarPanahi--Llama-3-8B-Instruct-v0.8.json" "$T/short.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
d["tensors"] = [t for t in d["tensors"] if ".layers.31." not in t[0]]
d["config"]["num_hidden_layers"] = 31
json.dump(d, open(sys.argv[2], "w"))
EOF
"$PYTHON" "$FX/standin.py" build "$T/short.json" "$T/m/short"
sed "s#$T/m/MaziyarPanahi--Llama-3-8B-Instruct-v0.8#$T/m/short#" \
    "$T/llama3-8b-dare-ties.yaml" >"$T/short.yaml"
expect_rc 1 "a stand-in with 31 layers is refused" \
    "$AMALGAM" merge --dry-run "$T/short.yaml" "$T/out"
expect_out "tensor 'model\.layers\.31\.[a-z_.]+' is missing from model" \
    "the refusal names the missing tensor"
finish
