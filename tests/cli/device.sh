#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `--device cuda` without a GPU: the loopback backend (tests/gpu/loopback.c)
# is a device backend whose "device" memory is host memory and whose
# kernels are the CPU's, so every device code path of the executor runs:
# staging, copies both ways, streams per worker, chunks sized to the
# budget, the fallback to the CPU. Every built-in strategy must write the
# CPU's bytes (tests/gpu/strategies.sh, shared with the real GPU's
# tests/gpu/suite.sh). Then the failures: no backend (one line, exit 1,
# nothing written) and a bad --device (a usage error).
LOOPBACK=${LOOPBACK_BACKEND:-$(dirname "${AMALGAM:?}")/tests/gpu/.libs/loopback.so}
. "${top_srcdir:-.}/tests/cli/lib.sh"
. "${top_srcdir:-.}/tests/gpu/strategies.sh"

: "${BUILTIN_PLUGIN_DIR:?BUILTIN_PLUGIN_DIR must point at the built plugins}"
if [ ! -f "$LOOPBACK" ]; then
    echo "skip: the loopback backend was not built ($LOOPBACK)"
    exit 77
fi
AMALGAM_PLUGIN_SYSTEM_PATH=$BUILTIN_PLUGIN_DIR
AMALGAM_BACKEND_PATH=$LOOPBACK
export AMALGAM_PLUGIN_SYSTEM_PATH AMALGAM_BACKEND_PATH

cd "$T" || exit 1
gpu_suite "$T"

# --- a strategy without AMG_CAP_CUDA (the SDK example): named once at the
# start, its tensors merged on the cpu, the same bytes
MEDIAN=${EXAMPLE_PLUGIN_DIR:-}/median.so
if [ -f "$MEDIAN" ]; then
    printf '%s\n' "merge_method: median" "models:" "  - model: f/expert-1" \
        "  - model: f/expert-2" "  - model: f/expert-3" >median.yaml
    expect_rc 0 "median on the cpu" \
        "$AMALGAM" merge median.yaml median-cpu -q --plugin "$MEDIAN"
    expect_rc 0 "median with --device cuda" \
        "$AMALGAM" merge median.yaml median-dev --plugin "$MEDIAN" \
        --device cuda
    expect_out "^note: no gpu support in 'median'; their tensors are merged on the cpu$" \
        "the strategy without gpu support is named"
    expect_out "^cuda:0 merged 0 tensors, the cpu [1-9][0-9]*$" \
        "its tensors are counted as merged on the cpu"
    same_files median-cpu median-dev "median: the same bytes on the cpu path"
else
    echo "skip: a strategy without gpu support (no SDK example at $MEDIAN)"
fi

# --- the demo on the device: the same model, the same report
expect_rc 0 "demo on the cpu" "$AMALGAM" demo --keep "$T/demo-cpu" -q -j2
grep 'expert-' "$T/out" >"$T/report-cpu"
expect_rc 0 "demo on the device" \
    "$AMALGAM" demo --keep "$T/demo-dev" -q -j2 --device cuda
grep 'expert-' "$T/out" >"$T/report-dev"
# (the model cards differ: they name the demo folders)
if cmp -s "$T/demo-cpu/merged/model.safetensors" \
          "$T/demo-dev/merged/model.safetensors" &&
   cmp -s "$T/demo-cpu/merged/config.json" "$T/demo-dev/merged/config.json"
then pass "demo: the device merges the cpu's bytes"
else fail "demo: the device merges other bytes"; fi
if [ -s "$T/report-cpu" ] && cmp -s "$T/report-cpu" "$T/report-dev"; then
    pass "demo: the same survival figures"
else fail "demo: the survival figures differ"; fi

# --- a strategy failing on the device: its message, nothing written, and
# (under valgrind) the device memory, staging and streams all released
sed 's/density: 0.3/density: 0.01/' ties.yaml >k0.yaml
expect_rc 1 "a failing strategy fails the device run" \
    "$AMALGAM" merge k0.yaml k0 -q -j2 --device cuda
expect_out "density 0.01 of input model 1 keeps no element of '[^']+'" \
    "the strategy's message comes through"
if [ -e k0 ] || [ -e k0.amalgam-partial ]; then
    fail "a failed device run left an output folder"
else pass "a failed device run writes nothing"; fi

# --- no backend: one line, exit 1, no output folder (not even a partial)
expect_rc 1 "a missing backend fails" \
    env AMALGAM_BACKEND_PATH="$T/none.so" \
    "$AMALGAM" merge linear.yaml nobackend --device cuda
expect_out "^error: cannot load the cuda backend '$T/none\.so'" \
    "the message names the backend file"
if [ "$(wc -l <"$T/out")" -eq 1 ]; then pass "the failure is one line"
else fail "the failure is not one line"; sed 's/^/    /' "$T/out"; fi
if [ -e nobackend ] || [ -e nobackend.amalgam-partial ]; then
    fail "a failed device open left an output folder"
else pass "a failed device open writes nothing"; fi
expect_rc 1 "the demo fails the same way" \
    env AMALGAM_BACKEND_PATH="$T/none.so" \
    "$AMALGAM" demo --keep "$T/demo-none" -q --device cuda:1
if [ -e "$T/demo-none" ]; then fail "the demo left its folder"
else pass "the demo created no folder"; fi

# --- usage errors
expect_rc 2 "--device bogus is a usage error" \
    "$AMALGAM" merge linear.yaml bogus --device bogus
expect_out "^error: invalid device 'bogus': expected cpu, cuda or cuda:N" \
    "the message says what --device takes"
expect_rc 2 "--device cuda:x is a usage error" \
    "$AMALGAM" demo --device cuda:x
expect_rc 2 "--gpu-mem without --device cuda is a usage error" \
    "$AMALGAM" merge linear.yaml mem --gpu-mem 1GiB
expect_out "^error: --gpu-mem needs --device cuda" "the message says why"
expect_rc 2 "--gpu-mem takes a size" \
    "$AMALGAM" merge linear.yaml mem --device cuda --gpu-mem lots
finish
