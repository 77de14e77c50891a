#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `amalgam inspect`: text and --json output on models written here from
# literal safetensors headers (so the expected numbers can be checked by
# hand), a 100-shard index, broken folders, usage errors and a reader that
# goes away. JSON is parsed with $PYTHON when there is one.
. "${top_srcdir:-.}/tests/cli/lib.sh"

# st FILE HEADER DATA_LEN: a safetensors file: u64 little-endian header
# length, the header, DATA_LEN zero bytes of tensor data
st() {
    n=${#2}; i=0
    {
        while [ "$i" -lt 8 ]; do
            printf "\\$(printf %03o $(( (n >> (8 * i)) & 255 )))"
            i=$((i + 1))
        done
        printf '%s' "$2"
        [ "$3" -gt 0 ] && head -c "$3" /dev/zero
    } >"$1"
}

# json_check FILE PYEXPR DESC: assert a Python expression over j = the
# parsed JSON in FILE
json_check() {
    if [ -z "${PYTHON:-}" ]; then return 0; fi
    if "$PYTHON" -c 'import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" 2>"$T/pyerr"; then
        pass "$3"
    else
        fail "$3: $2"; sed 's/^/    /' "$T/pyerr"
    fi
}

# --- usage
expect_rc 0 "--help exits 0" "$AMALGAM" inspect --help
expect_out '^usage: amalgam inspect \[--json\] \[--no-tensors\] <path>$' \
    "--help prints the usage line"
expect_rc 2 "no path is a usage error" "$AMALGAM" inspect
expect_out '^error: no model path given$' "missing path is reported"
expect_rc 2 "unknown option is a usage error" "$AMALGAM" inspect --frob "$T"
expect_out "^error: unknown option '--frob'$" "unknown option is named"
expect_rc 2 "two paths are a usage error" "$AMALGAM" inspect "$T" "$T"
expect_out "^error: unexpected argument '$T'" "extra argument is named"

# --- not a model
expect_rc 1 "missing path fails" "$AMALGAM" inspect "$T/nowhere"
expect_out "^error: cannot open '$T/nowhere': No such file or directory$" \
    "missing path is named"
mkdir "$T/empty"
expect_rc 1 "empty folder fails" "$AMALGAM" inspect "$T/empty"
expect_out "^error: '$T/empty' is not a model folder: no model.safetensors or model.safetensors.index.json$" \
    "empty folder says what was looked for"
mkdir "$T/pt"; printf 'PK' >"$T/pt/pytorch_model.bin"
expect_rc 1 "pytorch-only folder fails" "$AMALGAM" inspect "$T/pt"
expect_out "pytorch_model.bin is not supported; convert it to safetensors" \
    "pytorch-only folder gets a hint"

# --- one file: a tiny Llama, BF16 matrices and an F32 norm
m=$T/one; mkdir "$m"
st "$m/model.safetensors" '{"__metadata__":{"format":"pt"},"model.embed_tokens.weight":{"dtype":"BF16","shape":[8,4],"data_offsets":[0,64]},"model.layers.0.mlp.up_proj.weight":{"dtype":"BF16","shape":[6,4],"data_offsets":[64,112]},"model.norm.weight":{"dtype":"F32","shape":[4],"data_offsets":[112,128]}}' 128
cat >"$m/config.json" <<'EOF'
{
  "architectures": [
    "LlamaForCausalLM"
  ],
  "hidden_size": 4,
  "model_type": "llama",
  "num_hidden_layers": 1,
  "torch_dtype": "bfloat16",
  "vocab_size": 8
}
EOF
expect_rc 0 "single-file model" "$AMALGAM" inspect "$m"
expect_out "^path: +$m$" "path line"
expect_out '^architecture: +llama \(class LlamaForCausalLM, model_type llama\)$' \
    "architecture line"
expect_out '^layers: +1$' "layers"
expect_out '^hidden size: +4$' "hidden size"
expect_out '^vocab size: +8$' "vocab size"
expect_out '^tied embeddings: +no$' "Llama default: not tied"
expect_out '^config dtype: +bfloat16 \(torch_dtype\)$' "config dtype and key"
# 8*4 + 6*4 + 4 = 60 parameters; 64 + 48 + 16 = 128 bytes
expect_out '^parameters: +60 \(60\)$' "parameter count"
expect_out '^tensor bytes: +128 \(128 B\)$' "tensor bytes"
expect_out '^  F32 +1 +4 +16$' "F32 row: 1 tensor, 4 parameters, 16 bytes"
expect_out '^  BF16 +2 +56 +112$' "BF16 row: 2 tensors, 56 parameters, 112 bytes"
expect_out '^  model\.safetensors +3 +128$' "shard row"
expect_out '^  model\.embed_tokens\.weight +BF16 +\[8, 4\] +model\.safetensors$' \
    "tensor row with shape"
expect_out '^  model\.norm\.weight +F32 +\[4\] +model\.safetensors$' \
    "1-D tensor row"
# tensors come in name order
awk '/^tensor list:/ { f = 1; getline; next } f { print $1 }' "$T/out" \
    >"$T/names"
if LC_ALL=C sort -c "$T/names" 2>/dev/null && [ "$(wc -l <"$T/names")" -eq 3 ]
then pass "three tensors in name order"
else fail "tensor order"; sed 's/^/    /' "$T/names"; fi

expect_rc 0 "--no-tensors" "$AMALGAM" inspect --no-tensors "$m"
if grep -q '^tensor list:' "$T/out"; then fail "--no-tensors lists tensors"
else pass "--no-tensors leaves out the tensor list"; fi

expect_rc 0 "the .safetensors file by path" "$AMALGAM" inspect "$m/model.safetensors"
expect_out '^parameters: +60 ' "same totals from the file path"

if "$AMALGAM" inspect --json "$m" >"$T/one.json" 2>"$T/err"; then
    pass "--json exits 0"; else fail "--json failed"; cat "$T/err"; fi
json_check "$T/one.json" 'list(j) == ["path", "architecture", "parameters", "bytes", "dtypes", "shards", "tensors"]' \
    "JSON has the documented keys in order"
json_check "$T/one.json" 'j["architecture"] == {"family": "llama", "class": "LlamaForCausalLM", "model_type": "llama", "layers": 1, "hidden_size": 4, "vocab_size": 8, "tie_word_embeddings": False, "dtype": "bfloat16"}' \
    "JSON architecture"
json_check "$T/one.json" 'j["parameters"] == 60 and j["bytes"] == 128' \
    "JSON totals"
json_check "$T/one.json" 'j["dtypes"] == {"F32": {"tensors": 1, "parameters": 4, "bytes": 16}, "BF16": {"tensors": 2, "parameters": 56, "bytes": 112}}' \
    "JSON dtypes"
json_check "$T/one.json" 'j["shards"] == [{"file": "model.safetensors", "tensors": 3, "bytes": 128}]' \
    "JSON shards"
json_check "$T/one.json" 'j["tensors"][1] == {"name": "model.layers.0.mlp.up_proj.weight", "dtype": "BF16", "shape": [6, 4], "shard": "model.safetensors"} and [t["name"] for t in j["tensors"]] == sorted(t["name"] for t in j["tensors"])' \
    "JSON tensors"

# --- a bare file, no config: the architecture is unknown, not guessed
mkdir "$T/bare"
st "$T/bare/x.safetensors" '{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}' 8
expect_rc 0 "bare file without config.json" "$AMALGAM" inspect "$T/bare/x.safetensors"
expect_out '^architecture: +unknown \(no config.json\)$' "no config is said"
expect_out '^  s +F64 +\[\] +x\.safetensors$' "scalar tensor has shape []"
if "$AMALGAM" inspect --json "$T/bare/x.safetensors" >"$T/bare.json"; then
    json_check "$T/bare.json" 'j["architecture"]["family"] is None and j["architecture"]["layers"] is None and j["tensors"][0]["shape"] == []' \
        "JSON without config has nulls"
else fail "--json on a bare file"; fi

# --- 100 shards: shard k holds layer k-1's BF16 [4, 4] weight (32 bytes)
# and F32 [4] norm (16 bytes), so 200 tensors, 2000 parameters, 4800 bytes
m=$T/hundred; mkdir "$m"
{
    printf '{\n  "metadata": {\n    "total_size": 4800\n  },\n  "weight_map": {\n'
    k=1
    while [ "$k" -le 100 ]; do
        f=$(printf 'model-%05d-of-00100.safetensors' "$k")
        l=$((k - 1))
        st "$m/$f" "{\"model.layers.$l.mlp.weight\":{\"dtype\":\"BF16\",\"shape\":[4,4],\"data_offsets\":[0,32]},\"model.layers.$l.norm.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[32,48]}}" 48
        sep=,; [ "$k" -eq 100 ] && sep=
        printf '    "model.layers.%d.mlp.weight": "%s",\n' "$l" "$f"
        printf '    "model.layers.%d.norm.weight": "%s"%s\n' "$l" "$f" "$sep"
        k=$((k + 1))
    done
    printf '  }\n}\n'
} >"$m/model.safetensors.index.json"
printf '{"model_type": "mistral", "num_hidden_layers": 100}' >"$m/config.json"
expect_rc 0 "100-shard index" "$AMALGAM" inspect "$m"
expect_out '^architecture: +mistral \(class -, model_type mistral\)$' \
    "family from model_type alone"
expect_out '^parameters: +2,000 \(2K\)$' "100 shards: parameters"
expect_out '^tensor bytes: +4,800 \(4.80 kB\)$' "100 shards: bytes"
expect_out '^tensors: +200$' "100 shards: tensor count"
expect_out '^  model-00100-of-00100\.safetensors +2 +48$' "last shard row"
if [ "$(grep -c '^  model-[0-9]*-of-00100\.safetensors ' "$T/out")" -eq 100 ]
then pass "100 shard rows"; else fail "shard rows"; fi
if "$AMALGAM" inspect --json "$m" >"$T/h.json"; then
    json_check "$T/h.json" 'j["parameters"] == 2000 and j["bytes"] == 4800 and len(j["shards"]) == 100 and len(j["tensors"]) == 200 and j["dtypes"]["BF16"] == {"tensors": 100, "parameters": 1600, "bytes": 3200} and j["tensors"][0]["name"] == "model.layers.0.mlp.weight" and j["tensors"][2]["name"] == "model.layers.1.mlp.weight"' \
        "100 shards: JSON totals and name order"
else fail "--json on 100 shards"; fi

# --- an index that lies
cp -r "$m" "$T/lie"
sed 's/"model.layers.7.norm.weight": "model-00008/"model.layers.7.norm.weight": "model-00009/' \
    "$m/model.safetensors.index.json" >"$T/lie/model.safetensors.index.json"
expect_rc 1 "index naming the wrong shard fails" "$AMALGAM" inspect "$T/lie"
expect_out "^error: '$T/lie/model.safetensors.index.json': tensor 'model.layers.7.norm.weight' is listed in shard 'model-00009-of-00100.safetensors' but is in 'model-00008-of-00100.safetensors'$" \
    "wrong shard: tensor and both shards named"
rm "$T/lie/model-00042-of-00100.safetensors"
cp "$m/model.safetensors.index.json" "$T/lie/"
expect_rc 1 "missing shard fails" "$AMALGAM" inspect "$T/lie"
expect_out "shard '$T/lie/model-00042-of-00100.safetensors' named in .* does not exist" \
    "missing shard is named"

# --- the reader goes away: with SIGPIPE ignored, writes fail with EPIPE;
# the program stops quietly with status 1. 20000 tensor rows (about 1 MB)
# are more than a pipe holds, so the writer is still writing when head
# exits.
mkdir "$T/many"
hdr=$(awk 'BEGIN { printf "{"; for (i = 0; i < 20000; i++)
    printf "%s\"t.%05d\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[%d,%d]}",
        (i ? "," : ""), i, 4 * i, 4 * i + 4; printf "}" }')
st "$T/many/model.safetensors" "$hdr" 80000
(trap '' PIPE; "$AMALGAM" inspect "$T/many" 2>"$T/err"; echo $? >"$T/rc") |
    head -c 100 >/dev/null
if [ "$(cat "$T/rc")" = 1 ] && [ ! -s "$T/err" ]; then
    pass "closed pipe: status 1, nothing on stderr"
else
    fail "closed pipe: status $(cat "$T/rc")"; sed 's/^/    /' "$T/err"
fi
if [ -w /dev/full ]; then
    expect_rc 1 "a full disk fails" sh -c '"$1" inspect "$2" >/dev/full' sh \
        "$AMALGAM" "$T/one"
    expect_out '^error: cannot write to standard output: No space left on device$' \
        "write error is reported"
fi

# --- a model written by `amalgam synth`, when it is there
if "$AMALGAM" synth --help >/dev/null 2>&1; then
    expect_rc 0 "synth a sharded model" "$AMALGAM" synth "$T/syn" \
        --layers 2 --shard-size 64KiB
    expect_rc 0 "inspect the synth model" "$AMALGAM" inspect "$T/syn"
    # embeddings and lm_head 256x64, per layer q,o 64x64, k,v 32x64, three
    # 176x64 MLP matrices and two 64 norms, final norm 64: 125248
    expect_out '^parameters: +125,248 \(125K\)$' "synth model: parameters"
    expect_out '^tensor bytes: +250,496 ' "synth model: BF16 bytes"
    expect_out '^layers: +2$' "synth model: layers"
    expect_out '^  model\.layers\.1\.self_attn\.k_proj\.weight +BF16 +\[32, 64\] +model-0000[0-9]-of-0000[0-9]\.safetensors$' \
        "synth model: k_proj row"
else
    echo "skip: amalgam synth is not available"
fi

if [ -z "${PYTHON:-}" ]; then echo "skip: JSON checks need PYTHON"; fi
finish
