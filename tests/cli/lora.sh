#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# PEFT LoRA adapters as merge inputs: `base+adapter` and an adapter folder
# alone, folded as PEFT's merge does (plain, rsLoRA, rank_pattern /
# alpha_pattern, fan_in_fan_out, embedding LoRA; f32, bf16 and f16
# adapters) and checked against the float64 reference in
# tests/reference/lora.py (its docstring states the tolerance); a linear
# merge of two folded adapters; the same bytes for any -j and chunk size;
# the validation errors, each naming the module or the setting.
. "${top_srcdir:-.}/tests/cli/lib.sh"

use_built_plugins
REF="${top_srcdir:-.}/tests/reference/lora.py"

# the adapters themselves are written by the numpy script
if [ -z "${PYTHON:-}" ] || ! "$PYTHON" -c 'import numpy' 2>/dev/null; then
    echo "skip: LoRA tests need Python with numpy to write the adapters"
    exit 77
fi
mk() { "$PYTHON" "$REF" make "$@" >"$T/out" 2>&1 || {
    fail "writing adapter $1"; sed 's/^/    /' "$T/out"; }; }
ref() { d=$1; shift; expect_rc 0 "$d" "$PYTHON" "$REF" check "$@"; }
ref_fails() { d=$1; shift; expect_rc 1 "$d" "$PYTHON" "$REF" check "$@"; }
same() {
    if cmp -s "$1/model.safetensors" "$2/model.safetensors"; then pass "$3"
    else fail "$3"; fi
}
# one MODEL NAME: NAME.yaml folds MODEL alone (linear, weight 1)
one() {
    printf 'merge_method: linear\nmodels:\n  - model: %s\n    parameters: {weight: 1.0}\n' \
        "$1" >"$2.yaml"
}

cd "$T" || exit 1
SHAPE="--layers 2 --hidden 16 --intermediate 24 --vocab 32"
expect_rc 0 "f32 base" "$AMALGAM" synth base $SHAPE --dtype f32
expect_rc 0 "bf16 base" "$AMALGAM" synth b16 $SHAPE --dtype bf16

# ---- plain
mk plain --base base --r 4 --alpha 8
one base+plain f1
expect_rc 0 "fold a plain adapter (base+adapter)" \
    "$AMALGAM" merge f1.yaml f1 --out-dtype f32 -q
ref "plain fold equals the reference" f1 --model base+plain 1 \
    --out-dtype F32
ref_fails "the reference rejects an update 1% too large" f1 \
    --model base+plain 1 --out-dtype F32 --perturb 1.01
ref_fails "the output is not the bare base" f1 --model base 1 \
    --out-dtype F32
expect_rc 0 "dry-run lists the adapter" "$AMALGAM" merge f1.yaml x --dry-run
expect_out 'load base:model.layers.0.self_attn.q_proj.weight \+ lora plain \(scale 2\)' \
    "dry-run shows the adapter and its scale"

# an adapter folder alone stands for its base_model_name_or_path
one plain f2
expect_rc 0 "an adapter folder alone" "$AMALGAM" merge f2.yaml f2 \
    --out-dtype f32 -q
same f1 f2 "adapter alone and base+adapter write the same bytes"

# ---- rsLoRA with rank and alpha patterns: v_proj r 2, layer 1's q_proj
# r 6, q_proj alpha 3; scale alpha / sqrt(r)
mk pat --base base --r 4 --alpha 8 --rslora \
    --rank-pattern '{"v_proj": 2, "layers.1.self_attn.q_proj": 6}' \
    --alpha-pattern '{"q_proj": 3}'
one base+pat f3
expect_rc 0 "rsLoRA + rank/alpha_pattern" "$AMALGAM" merge f3.yaml f3 \
    --out-dtype f32 -q
ref "rsLoRA + patterns equal the reference" f3 --model base+pat 1 \
    --out-dtype F32

# ---- fan_in_fan_out on non-square weights: the update is transposed
mk fifo --base base --fan-in-fan-out --r 3 --alpha 5 \
    --modules model.layers.0.mlp.up_proj,model.layers.1.mlp.down_proj
one base+fifo f4
expect_rc 0 "fan_in_fan_out" "$AMALGAM" merge f4.yaml f4 --out-dtype f32 -q
ref "fan_in_fan_out equals the reference" f4 --model base+fifo 1 \
    --out-dtype F32

# ---- embedding LoRA (lora_embedding_A / _B) plus a linear module
mk emb --base base --r 2 --alpha 4 \
    --modules model.embed_tokens,model.layers.0.self_attn.o_proj
one base+emb f5
expect_rc 0 "embedding LoRA" "$AMALGAM" merge f5.yaml f5 --out-dtype f32 -q
ref "embedding LoRA equals the reference" f5 --model base+emb 1 \
    --out-dtype F32

# ---- 16-bit: bf16 base, bf16 and f16 adapters, bf16 out
mk lb16 --base b16 --dtype BF16 --r 4 --alpha 16
one b16+lb16 g1
expect_rc 0 "bf16 adapter on a bf16 base" "$AMALGAM" merge g1.yaml g1 -q
ref "bf16 fold equals the reference" g1 --model b16+lb16 1 --out-dtype BF16
mk lf16 --base b16 --dtype F16 --r 4 --alpha 4 --seed 7
one b16+lf16 g2
expect_rc 0 "f16 adapter on a bf16 base" "$AMALGAM" merge g2.yaml g2 -q
ref "f16 fold equals the reference" g2 --model b16+lf16 1 --out-dtype BF16

# ---- a linear merge of two folded adapters
mk second --base base --r 4 --alpha 2 --seed 3
cat >lin.yaml <<'EOF'
merge_method: linear
models:
  - model: base+plain
    parameters: {weight: 0.6}
  - model: second
    parameters: {weight: 0.4}
EOF
expect_rc 0 "linear of two folded adapters" "$AMALGAM" merge lin.yaml m1 \
    --out-dtype f32 -q
ref "linear of two adapters equals the reference" m1 \
    --model base+plain 0.6 --model base+second 0.4 --out-dtype F32
ref_fails "... and not with the weights swapped" m1 \
    --model base+plain 0.4 --model base+second 0.6 --out-dtype F32
expect_rc 0 "-j1 with 100-byte chunks" "$AMALGAM" merge lin.yaml m2 \
    --out-dtype f32 -j1 --chunk-size 100 -q
same m1 m2 "-j default/64MiB and -j1/100B write the same bytes"
expect_rc 0 "-j3 with 4KiB chunks, embedding adapter" \
    "$AMALGAM" merge f5.yaml f6 --out-dtype f32 -j3 --chunk-size 200 -q
same f5 f6 "embedding fold: chunking does not change the bytes"

# ---- validation: before any tensor is read, naming the module
mk ghost --base base --modules model.layers.7.self_attn.q_proj
one base+ghost e1
expect_rc 1 "a module the base lacks" "$AMALGAM" merge e1.yaml e1
expect_out "e1.yaml:3:12: LoRA adapter 'ghost' updates module 'model.layers.7.self_attn.q_proj', which model 'base' does not have \(no tensor 'model.layers.7.self_attn.q_proj.weight'\)" \
    "missing module named"
mk wide --base base --bad-shape model.layers.1.self_attn.v_proj
one base+wide e2
expect_rc 1 "a shape mismatch" "$AMALGAM" merge e2.yaml e2
expect_out "LoRA adapter 'wide' gives module 'model.layers.1.self_attn.v_proj' a \[8, 17\] update, but model 'base' stores 'model.layers.1.self_attn.v_proj.weight' as F32 \[8, 16\]" \
    "shape mismatch named"
mk badr --base base --config-extra '{"r": "four"}'
one base+badr e3
expect_rc 1 "r that is not a number" "$AMALGAM" merge e3.yaml e3
expect_out "e3.yaml:3:12: '(\./)?badr/adapter_config.json': 'r' must be a positive integer" \
    "bad r named"
mk rank --base base --r 4 --config-extra '{"r": 8}'
one base+rank e4
expect_rc 1 "factors of another rank than r" "$AMALGAM" merge e4.yaml e4
expect_out "module 'model.layers.0.self_attn.q_proj' has rank 4 but adapter_config.json gives it r = 8" \
    "rank disagreement named"
mk dora --base base --config-extra '{"use_dora": true}'
one base+dora e5
expect_rc 1 "DoRA refused" "$AMALGAM" merge e5.yaml e5
expect_out "DoRA adapters \(use_dora\) are not supported" "DoRA named"
mk nobase --base base --no-base-name
one nobase e6
expect_rc 1 "an adapter alone without a base name" "$AMALGAM" merge e6.yaml e6
expect_out "e6.yaml:3:12: 'nobase' is a LoRA adapter whose adapter_config.json names no base model \(base_model_name_or_path\); write it as base\+adapter" \
    "missing base named"
[ ! -e e1 ] && [ ! -e e2 ] && [ ! -e e6 ] && pass "no output after a refusal" \
    || fail "an output folder was left after a refusal"
finish
