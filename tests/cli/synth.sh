#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `amalgam synth`: the files it writes, sharding, determinism, the family
# layout, option errors and --force. Values are checked element by element
# by pyreader.sh; this test needs nothing but the program and coreutils.
. "${top_srcdir:-.}/tests/cli/lib.sh"

# hlen FILE: the safetensors header length (the first 8 bytes, LE)
hlen() { od -An -tu8 -N8 "$1" | tr -d ' '; }
# header_of FILE: the safetensors header JSON as text
header_of() { head -c $((8 + $(hlen "$1"))) "$1" | tail -c "$(hlen "$1")"; }
# data_sum FILE LEN: checksum of the first LEN bytes of the data section
data_sum() {
    tail -c +$((9 + $(hlen "$1"))) "$1" | head -c "$2" | od -An -tx1 | cksum
}
# entry_is HEADER NAME DTYPE SHAPE: NAME's entry has that dtype and shape
entry_is() {
    e=$(printf '%s' "$1" | sed -n "s/.*\"$2\":{\([^}]*\)}.*/\1/p")
    case $e in *'"dtype":"'"$3"'"'*) ;; *) return 1 ;; esac
    case $e in *'"shape":['"$4"']'*) return 0 ;; *) return 1 ;; esac
}

# --- the default model, unsharded
expect_rc 0 "default model is written" "$AMALGAM" synth "$T/m"
# 256*64 embeddings + lm_head, 2 layers of q,o 64x64, k,v 32x64, three
# 176x64 MLP matrices and two norms of 64, and the final norm: 125248
expect_out "^wrote '$T/m': 2 layers, 125\.2K parameters, BF16, 1 shard$" \
    "summary line gives layers, parameters, dtype and shards"
for f in config.json generation_config.json model.safetensors; do
    if [ -f "$T/m/$f" ]; then pass "default model has $f"; else
        fail "default model lacks $f"; fi
done
if [ -e "$T/m/model.safetensors.index.json" ]; then
    fail "a single shard comes with an index"; else
    pass "a single shard has no index"; fi
if [ -e "$T/m.amalgam-partial" ]; then fail "staging folder left behind"
else pass "no staging folder left behind"; fi
# 21 tensors of 2 bytes each: header + 250496 bytes of data
h=$(header_of "$T/m/model.safetensors")
size=$(wc -c <"$T/m/model.safetensors")
n=$(hlen "$T/m/model.safetensors")
if [ "$size" -eq $((8 + n + 250496)) ]; then
    pass "file holds 250496 data bytes"
else fail "file is $size bytes, header $n, expected 250496 data bytes"; fi
for t in model.embed_tokens.weight model.layers.0.self_attn.q_proj.weight \
         model.layers.1.self_attn.k_proj.weight \
         model.layers.1.self_attn.v_proj.weight \
         model.layers.0.self_attn.o_proj.weight \
         model.layers.1.mlp.gate_proj.weight \
         model.layers.0.mlp.up_proj.weight \
         model.layers.1.mlp.down_proj.weight \
         model.layers.0.input_layernorm.weight \
         model.layers.1.post_attention_layernorm.weight model.norm.weight \
         lm_head.weight; do
    case $h in *"\"$t\""*) pass "header names $t" ;;
               *) fail "header lacks $t" ;; esac
done
case $h in *'"model.layers.2.'*) fail "a third layer appears" ;;
           *) pass "exactly the layers asked for" ;; esac
if entry_is "$h" model.layers.0.self_attn.k_proj.weight BF16 32,64; then
    pass "k_proj is [kv_heads*head_dim, hidden] in BF16"
else fail "k_proj entry unexpected: $h"; fi
if entry_is "$h" model.layers.0.mlp.down_proj.weight BF16 64,176; then
    pass "down_proj is [hidden, intermediate]"
else fail "down_proj entry unexpected"; fi
if entry_is "$h" model.layers.1.input_layernorm.weight BF16 64; then
    pass "norms are [hidden]"
else fail "input_layernorm entry unexpected"; fi
for kv in '"architectures": \[' '"LlamaForCausalLM"' '"model_type": "llama"' \
          '"hidden_size": 64,' '"intermediate_size": 176,' \
          '"num_hidden_layers": 2,' '"num_attention_heads": 4,' \
          '"num_key_value_heads": 2,' '"vocab_size": 256$' \
          '"tie_word_embeddings": false,' '"torch_dtype": "bfloat16",' \
          '"rms_norm_eps": 1e-05,' '"rope_theta": 10000.0,' \
          '"max_position_embeddings": 2048,' '"hidden_act": "silu",'; do
    if grep -Eq -- "$kv" "$T/m/config.json"; then pass "config.json has $kv"
    else fail "config.json lacks $kv"; fi
done

# --- the shape options and --tie
expect_rc 0 "custom shape with --tie" "$AMALGAM" synth "$T/tie" --tie \
    --layers 3 --hidden 48 --heads 6 --kv-heads 3 --intermediate 100 \
    --vocab 50 --dtype f16
expect_out "^wrote '$T/tie': 3 layers, .* parameters, F16, 1 shard$" \
    "custom summary"
h=$(header_of "$T/tie/model.safetensors")
case $h in *lm_head*) fail "--tie still writes lm_head.weight" ;;
           *) pass "--tie drops lm_head.weight" ;; esac
if entry_is "$h" model.layers.2.self_attn.k_proj.weight F16 24,48; then
    pass "k_proj of 3 kv heads of 8 is [24, 48]"
else fail "k_proj shape wrong for --kv-heads 3"; fi
if grep -q '"tie_word_embeddings": true,' "$T/tie/config.json" &&
   grep -q '"torch_dtype": "float16",' "$T/tie/config.json"; then
    pass "config.json records tie and float16"
else fail "config.json lacks tie/float16"; fi

# --- sharding: F32 defaults at 100KB make 6 shards (greedy rule, by hand:
# [embed q k v] [o gate] [up down norms q] [k v o gate] [up down norms norm]
# [lm_head])
expect_rc 0 "sharded model is written" "$AMALGAM" synth "$T/sh" --dtype f32 \
    --shard-size 100KB
expect_out "F32, 6 shards$" "summary counts 6 shards"
for i in 1 2 3 4 5 6; do
    f="model-0000$i-of-00006.safetensors"
    if [ -f "$T/sh/$f" ]; then pass "shard $f exists"
    else fail "shard $f missing"; fi
done
if [ -e "$T/sh/model.safetensors" ]; then
    fail "sharded model has model.safetensors"
else pass "no model.safetensors when sharded"; fi
idx="$T/sh/model.safetensors.index.json"
if [ -f "$idx" ]; then pass "index written"; else fail "no index"; fi
# total_size = 125248 values * 4 bytes
if grep -q '"total_size": 500992' "$idx"; then pass "index total_size 500992"
else fail "index total_size wrong"; fi
if [ "$(grep -c '"model-0000[1-6]-of-00006.safetensors"' "$idx")" -eq 21 ]
then pass "index maps 21 tensors"
else fail "index does not map 21 tensors"; fi
if grep -q '"lm_head.weight": "model-00006-of-00006' "$idx" &&
   grep -q '"model.embed_tokens.weight": "model-00001-of-00006' "$idx"
then pass "first and last tensors in the first and last shards"
else fail "index puts embeddings or lm_head in the wrong shard"; fi

# --- determinism
"$AMALGAM" synth "$T/d1" --seed 42 >/dev/null 2>&1
"$AMALGAM" synth "$T/d2" --seed 42 >/dev/null 2>&1
"$AMALGAM" synth "$T/d3" --seed 43 >/dev/null 2>&1
for f in model.safetensors config.json generation_config.json; do
    if cmp -s "$T/d1/$f" "$T/d2/$f"; then pass "same seed, same $f"
    else fail "same seed gives a different $f"; fi
done
if cmp -s "$T/d1/model.safetensors" "$T/d3/model.safetensors"; then
    fail "another seed gives the same weights"
else pass "another seed gives other weights"; fi
if cmp -s "$T/d1/config.json" "$T/d3/config.json"; then
    pass "the seed does not change config.json"
else fail "the seed changes config.json"; fi
# sharding changes the files, not the values: the unsharded default and a
# sharded copy hold the same bytes per tensor (checked via the F32 data)
"$AMALGAM" synth "$T/f32one" --dtype f32 >/dev/null 2>&1
# the embeddings are the first 65536 data bytes of both files
if [ "$(data_sum "$T/f32one/model.safetensors" 65536)" = \
     "$(data_sum "$T/sh/model-00001-of-00006.safetensors" 65536)" ]
then pass "sharded and unsharded embeddings are the same bytes"
else fail "sharding changed the embeddings"; fi

# --- experts and the family layout
expect_rc 0 "family is written" "$AMALGAM" synth --family "$T/fam" \
    --experts 2 --seed 5
expect_out "^wrote '$T/fam/base': 2 layers" "family summary names base"
expect_out "^wrote '$T/fam/expert-2' \(expert 2\): 2 layers" \
    "family summary names expert 2"
for m in base expert-1 expert-2; do
    if [ -f "$T/fam/$m/model.safetensors" ] && [ -f "$T/fam/$m/config.json" ]
    then pass "family has $m"; else fail "family lacks $m"; fi
done
if [ "$(ls "$T/fam" | wc -l)" -eq 3 ]; then pass "family has 3 folders"
else fail "family has other entries: $(ls "$T/fam")"; fi
fb="$T/fam/base/model.safetensors"
f1="$T/fam/expert-1/model.safetensors"
f2="$T/fam/expert-2/model.safetensors"
if cmp -s "$fb" "$f1"; then fail "expert 1 equals the base"
else pass "expert 1 differs from the base"; fi
if cmp -s "$f1" "$f2"; then fail "expert 1 equals expert 2"
else pass "expert 1 differs from expert 2"; fi
if [ "$(header_of "$fb")" = "$(header_of "$f1")" ]; then
    pass "expert and base have the same names, shapes and offsets"
else fail "expert header differs from the base's"; fi
if cmp -s "$T/fam/base/config.json" "$T/fam/expert-1/config.json"; then
    pass "experts write the base's config.json"
else fail "expert config.json differs"; fi
"$AMALGAM" synth "$T/e1" --expert 1 --seed 5 >/dev/null 2>&1
"$AMALGAM" synth "$T/b5" --seed 5 >/dev/null 2>&1
if cmp -s "$T/e1/model.safetensors" "$f1" &&
   cmp -s "$T/b5/model.safetensors" "$fb"; then
    pass "--family writes what --expert K writes"
else fail "--family and --expert disagree"; fi
expect_rc 1 "existing family folder without --force" \
    "$AMALGAM" synth --family "$T/fam" --experts 1
expect_out "^error: '$T/fam' already exists" "existing family is named"
if [ -d "$T/fam/expert-2" ]; then pass "refused family left untouched"
else fail "refused family was changed"; fi

# --- existing OUT and --force
mkdir "$T/keep"
echo marker >"$T/keep/marker"
expect_rc 1 "existing OUT without --force fails" "$AMALGAM" synth "$T/keep"
expect_out "^error: '$T/keep' already exists \(use --force to replace it\)$" \
    "existing OUT error names the folder and --force"
if [ -f "$T/keep/marker" ] && [ ! -e "$T/keep/model.safetensors" ] &&
   [ ! -e "$T/keep.amalgam-partial" ]; then pass "existing OUT untouched"
else fail "existing OUT was modified"; fi
expect_rc 0 "--force replaces OUT" "$AMALGAM" synth "$T/keep" --force
if [ ! -e "$T/keep/marker" ] && [ -f "$T/keep/model.safetensors" ]; then
    pass "--force leaves only the new model"
else fail "--force did not replace OUT"; fi
expect_rc 1 "OUT under a missing folder fails" \
    "$AMALGAM" synth "$T/no/such/dir/m"
expect_out "^error: " "missing parent gives an error line"
if [ -e "$T/no" ]; then fail "failed write left files"
else pass "failed write leaves nothing"; fi

# --- usage errors: exit 2, "error: ..." on stderr, OUT not created
usage_err() {
    desc=$1; pat=$2; shift 2
    expect_rc 2 "$desc" "$AMALGAM" synth "$T/bad" "$@"
    expect_out "$pat" "$desc: message"
    if [ -e "$T/bad" ]; then fail "$desc: OUT created"; rm -rf "$T/bad"; fi
}
usage_err "non-numeric --hidden" \
    "^error: invalid value 'abc' for --hidden: expected a whole number" \
    --hidden abc
usage_err "--hidden 0" "invalid value '0' for --hidden" --hidden 0
usage_err "trailing garbage" "invalid value '64x' for --hidden" --hidden 64x
usage_err "negative --layers" "invalid value '-1' for --layers" --layers -1
usage_err "too many layers" "invalid value '5000' for --layers" --layers 5000
usage_err "negative --seed" "invalid value '-1' for --seed" --seed -1
usage_err "--seed overflow" "invalid value '18446744073709551616' for --seed" \
    --seed 18446744073709551616
usage_err "hidden not divisible by heads" \
    "^error: hidden size 66 is not a multiple of the 4 attention heads$" \
    --hidden 66
usage_err "heads not divisible by kv heads" \
    "^error: 4 attention heads are not a multiple of the 3 key/value heads$" \
    --kv-heads 3
usage_err "--agree above 1" "invalid value '1.5' for --agree" --agree 1.5
usage_err "non-numeric --delta-scale" "invalid value 'x' for --delta-scale" \
    --delta-scale x
usage_err "unknown dtype" "^error: unknown dtype 'f13'" --dtype f13
usage_err "integer dtype" "cannot synthesize I8 weights" --dtype int8
usage_err "bad shard size" "invalid size 'lots'" --shard-size lots
usage_err "zero shard size" "invalid size '0'" --shard-size 0
usage_err "unknown option" "^error: unknown option '--frobnicate'$" \
    --frobnicate
usage_err "missing value" "^error: option '--layers' needs a value$" --layers
usage_err "--experts without --family" "--experts needs --family" --experts 2
usage_err "second OUT" "unexpected argument 'other'" other
expect_rc 2 "no OUT" "$AMALGAM" synth --layers 1
expect_out "^error: missing OUT" "no OUT is named"
expect_out "^see 'amalgam synth --help'$" "usage errors point at --help"
expect_rc 2 "--family without --experts" "$AMALGAM" synth --family "$T/f2"
expect_rc 2 "--family with --expert" \
    "$AMALGAM" synth --family "$T/f2" --experts 1 --expert 1
expect_rc 2 "--experts 0" "$AMALGAM" synth --family "$T/f2" --experts 0
if [ -e "$T/f2" ]; then fail "family usage errors created DIR"
else pass "family usage errors create nothing"; fi

# --- --help and the --opt=value form
expect_rc 0 "--help exits 0" "$AMALGAM" synth --help
expect_out "^usage: amalgam synth OUT \[options\]$" "--help first line"
expect_out "^   --family DIR " "--help lists --family"
expect_rc 0 "--opt=value form" "$AMALGAM" synth "$T/eq" --layers=1 \
    --dtype=f32 --seed=42
expect_out "^wrote '$T/eq': 1 layer, " "one layer is singular"
finish
