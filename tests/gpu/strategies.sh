# SPDX-License-Identifier: Apache-2.0
# strategies.sh - sourced by tests/cli/device.sh (the loopback backend) and
# tests/gpu/suite.sh (a real GPU): every built-in strategy merged with
# --device cuda must write the same bytes as the CPU, file for file, at -j1
# and -j2 and with chunks small enough to split every tensor. Needs
# lib.sh's helpers, $AMALGAM and the built-in plugins on the search path;
# the caller chooses the backend.

GPU_STRATEGIES="linear slerp nuslerp multislerp task_arithmetic ties
    dare_ties dare_linear breadcrumbs breadcrumbs_ties della della_linear
    sce model_stock karcher passthrough fisher"

# gpu_models DIR: f32 and bf16 families of a base and three experts, and a
# third family whose experts serve as Fisher files (any values will do:
# only the equality of the two devices is checked)
gpu_models() {
    expect_rc 0 "f32 family" "$AMALGAM" synth --family "$1/f" --experts 3 \
        --layers 2 --hidden 64 --dtype f32
    expect_rc 0 "bf16 family" "$AMALGAM" synth --family "$1/b" --experts 3 \
        --layers 2 --hidden 64 --dtype bf16 --seed 5 --delta-scale 0.7
    expect_rc 0 "fisher family" "$AMALGAM" synth --family "$1/g" \
        --experts 2 --layers 2 --hidden 64 --dtype f32 --seed 9
}

# gpu_pipeline FILE STRATEGY DIR: a pipeline of STRATEGY over the models of
# gpu_models DIR; bf16 inputs for some, so conversions run too
gpu_pipeline() {
    f=$1; m=$2; d=$3
    case $m in
    linear)
        printf '%s\n' "merge_method: linear" "models:" \
            "  - model: $d/b/expert-1" "    parameters: {weight: 0.5}" \
            "  - model: $d/b/expert-2" "    parameters: {weight: 0.3}" \
            "  - model: $d/b/expert-3" "    parameters: {weight: 0.2}" ;;
    slerp)
        printf '%s\n' "merge_method: slerp" "base_model: $d/f/base" \
            "models:" "  - model: $d/f/expert-1" \
            "parameters: {t: [0.1, 0.9]}" ;;
    nuslerp)
        printf '%s\n' "merge_method: nuslerp" "base_model: $d/f/base" \
            "models:" "  - model: $d/f/expert-1" \
            "    parameters: {weight: 0.3}" "  - model: $d/f/expert-2" \
            "    parameters: {weight: 0.6}" ;;
    multislerp)
        printf '%s\n' "merge_method: multislerp" "base_model: $d/f/base" \
            "models:" "  - model: $d/f/expert-1" \
            "    parameters: {weight: 0.5}" "  - model: $d/f/expert-2" \
            "    parameters: {weight: 0.3}" "  - model: $d/f/expert-3" \
            "    parameters: {weight: 0.9}" ;;
    task_arithmetic|ties|dare_ties|dare_linear|breadcrumbs|breadcrumbs_ties|\
    della|della_linear)
        printf '%s\n' "merge_method: $m" "base_model: $d/b/base" "seed: 11" \
            "models:" "  - model: $d/b/expert-1" \
            "    parameters: {weight: 0.5, density: 0.3}" \
            "  - model: $d/b/expert-2" \
            "    parameters: {weight: 0.3, density: 0.55}" \
            "  - model: $d/b/expert-3" \
            "    parameters: {weight: -0.2, density: 0.8}" \
            "parameters: {lambda: 0.9}" ;;
    sce)
        printf '%s\n' "merge_method: sce" "base_model: $d/b/base" \
            "models:" "  - model: $d/b/expert-1" "  - model: $d/b/expert-2" \
            "  - model: $d/b/expert-3" "parameters: {select_topk: 0.4}" ;;
    model_stock)
        printf '%s\n' "merge_method: model_stock" "base_model: $d/f/base" \
            "models:" "  - model: $d/f/expert-1" "  - model: $d/f/expert-2" \
            "  - model: $d/f/expert-3" ;;
    karcher)
        printf '%s\n' "merge_method: karcher" "base_model: $d/b/base" \
            "models:" "  - model: $d/b/expert-1" "  - model: $d/b/expert-2" \
            "  - model: $d/b/expert-3" "parameters: {max_iter: 20}" ;;
    passthrough)
        printf '%s\n' "merge_method: passthrough" "models:" \
            "  - model: $d/b/expert-1" "    parameters:" "      scale:" \
            "        - filter: o_proj" "          value: 0" \
            "        - value: 0.5" ;;
    fisher)
        printf '%s\n' "merge_method: fisher" "models:" \
            "  - model: $d/f/expert-1" \
            "    fisher: $d/g/expert-1/model.safetensors" \
            "  - model: $d/f/expert-2" \
            "    fisher: $d/g/expert-2/model.safetensors" ;;
    chain)
        # two steps fused per tensor: merged whole (neither strategy's
        # chunking applies to a graph of two), as the demo's pipeline
        printf '%s\n' "steps:" "  - name: experts" "    merge_method: ties" \
            "    base_model: $d/b/base" "    models:" \
            "      - model: $d/b/expert-1" "      - model: $d/b/expert-2" \
            "      - model: $d/b/expert-3" \
            "    parameters: {weight: 1.0, density: 0.5}" \
            "  - name: smooth" "    merge_method: slerp" \
            "    base_model: $d/b/base" "    models:" \
            "      - model: experts" "    parameters: {t: [0.6, 0.9]}" \
            "    dtype: bfloat16" ;;
    *)
        echo "gpu_pipeline: no pipeline for '$m'" >&2
        return 1 ;;
    esac >"$f"
}

# same_files A B DESC: the two folders hold the same files, byte for byte
same_files() {
    if (cd "$1" && find . -type f | sort) >"$T/files-a" &&
       (cd "$2" && find . -type f | sort) >"$T/files-b" &&
       cmp -s "$T/files-a" "$T/files-b" &&
       [ -s "$T/files-a" ] &&
       (while read -r p; do cmp -s "$1/$p" "$2/$p" || exit 1; done \
           <"$T/files-a"); then
        pass "$3"
    else
        fail "$3"
        diff "$T/files-a" "$T/files-b" | sed 's/^/    /'
        while read -r p; do
            cmp "$1/$p" "$2/$p" 2>&1 | sed 's/^/    /'
        done <"$T/files-a"
    fi
}

# gpu_compare NAME PIPELINE DIR: the CPU's output, then the device's at -j1
# (whole tensors or 64 MiB chunks: every tensor is on the device, none
# falls back) and at -j2 with 1 KiB chunks, each equal to the CPU's
gpu_compare() {
    n=$1; p=$2; d=$3
    expect_rc 0 "$n on the cpu" "$AMALGAM" merge "$p" "$d/$n-cpu" -q -j2
    expect_rc 0 "$n on the device, -j1" \
        "$AMALGAM" merge "$p" "$d/$n-dev1" -j1 --device cuda
    expect_out "^cuda:0 merged [1-9][0-9]* tensors, the cpu 0$" \
        "$n: every merged tensor ran on the device"
    same_files "$d/$n-cpu" "$d/$n-dev1" "$n: the device writes the cpu's bytes"
    expect_rc 0 "$n on the device, -j2, 1KiB chunks" \
        "$AMALGAM" merge "$p" "$d/$n-dev2" -q -j2 --chunk-size 1KiB \
        --device cuda
    same_files "$d/$n-cpu" "$d/$n-dev2" \
        "$n: the same bytes in small chunks on two streams"
}

# gpu_lora DIR: an adapter folded on the CPU before its rows go to the
# device (the adapter is written by the numpy reference, so only with it)
gpu_lora() {
    if [ -z "${PYTHON:-}" ] || ! "$PYTHON" -c 'import numpy' 2>/dev/null
    then
        echo "skip: the LoRA input (no Python with numpy to write it)"
        return 0
    fi
    expect_rc 0 "a LoRA adapter of the f32 base" \
        "$PYTHON" "${top_srcdir:-.}/tests/reference/lora.py" make \
        "$1/adapter" --base "$1/f/base" --r 4 --alpha 8
    printf '%s\n' "merge_method: linear" "models:" \
        "  - model: $1/f/base+$1/adapter" "    parameters: {weight: 0.7}" \
        "  - model: $1/f/expert-2" "    parameters: {weight: 0.3}" \
        >"$1/lora.yaml"
    gpu_compare lora "$1/lora.yaml" "$1"
}

# gpu_suite DIR: every strategy, the fused chain, and a budget too small
# for whole tensors (they fall back to the cpu; the bytes stay the same)
gpu_suite() {
    gpu_models "$1"
    for m in $GPU_STRATEGIES chain; do
        gpu_pipeline "$1/$m.yaml" "$m" "$1" || { fail "pipeline $m"; continue; }
        gpu_compare "$m" "$1/$m.yaml" "$1"
    done
    gpu_lora "$1"
    # 6 nodes + 8 temporaries of a 16 KiB projection do not fit 64 KiB
    expect_rc 0 "chain with 64KiB of device memory" \
        "$AMALGAM" merge "$1/chain.yaml" "$1/chain-small" -v -j1 \
        --device cuda --gpu-mem 64KiB
    expect_out "^note: 'model\.layers\.0\.self_attn\.q_proj\.weight' is merged on the cpu: whole it needs" \
        "-v says which tensor is too large for the budget"
    expect_out "^cuda:0 merged [1-9][0-9]* tensors, the cpu [1-9][0-9]*$" \
        "small tensors stay on the device, large ones fall back"
    same_files "$1/chain-cpu" "$1/chain-small" \
        "chain: falling back to the cpu writes the same bytes"
    # chunks shrink to the budget's share instead of falling back
    expect_rc 0 "ties with 256KiB of device memory, -j2" \
        "$AMALGAM" merge "$1/ties.yaml" "$1/ties-small" -j2 \
        --device cuda --gpu-mem 256KiB
    expect_out "^cuda:0 merged [1-9][0-9]* tensors, the cpu 0$" \
        "chunks shrink to fit: nothing falls back"
    same_files "$1/ties-cpu" "$1/ties-small" \
        "ties: shrunk chunks write the same bytes"
}
