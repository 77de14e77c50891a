#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# device-check.sh - the one prepared check for a machine with an NVIDIA GPU,
# from a clean checkout, in under 8 minutes:
#
#   bash tests/gpu/device-check.sh
#
#   1. build dependencies (build-aux/deps.sh, only what is missing),
#      autoreconf, configure --with-cuda --enable-werror, make -j$(nproc),
#      in ${DEVICE_CHECK_DIR:-/tmp/amalgam-device-check}/build;
#   2. tests/gpu/suite.sh: every built-in strategy on the GPU writes the
#      CPU's bytes (generated models);
#   3. tests/gpu/gpubench: per kernel, GB/s and the ratio to the
#      device-to-device copy bandwidth measured in the same run, and pinned
#      host<->device bandwidth;
#   4. end to end: `amalgam merge` of a base and 3 experts of Llama-3-8B
#      width (hidden 4096, intermediate 14336, vocab 128256, 32 heads,
#      8 kv-heads, bf16) with ${DEVICE_CHECK_LAYERS:-4} layers instead of
#      32, for each strategy on the CPU and with --device cuda: wall time,
#      input GB/s, the ratio to the I/O floor (cat of the inputs from the
#      page cache, measured in the same run), and a byte comparison of the
#      two outputs. The layer count is set by time, not disk: 64 GiB holds
#      about 20 layers (4 inputs + output), but two merges per strategy of
#      that size do not fit in 8 minutes. Strategies left when
#      ${DEVICE_CHECK_BUDGET_S:-450} seconds have passed are listed as not
#      run.
#
# Prints figures and asserts nothing about speed. Exits 1 on a build
# failure or any byte difference, 77 with one line when there is no GPU.
# With $OUT set, the output is also written to $OUT/device-check.txt (and
# the build log to $OUT/build.log when the build fails). On a machine
# that reaches no package registry, DEVICE_CHECK_DEBS may name a folder of
# .deb files (the build dependencies) unpacked into / before building, or
# DEVICE_CHECK_PREBUILT a folder made by tests/gpu/pack.sh from a CUDA
# build on another x86-64 machine (no build there at all).
set -uo pipefail

if [ -n "${OUT:-}" ] && [ -z "${DEVICE_CHECK_TEED:-}" ]; then
    mkdir -p "$OUT"
    DEVICE_CHECK_TEED=1 bash "$0" "$@" 2>&1 | tee "$OUT/device-check.txt"
    exit "${PIPESTATUS[0]}"
fi

src=$(cd "$(dirname "$0")/../.." && pwd)
W=${DEVICE_CHECK_DIR:-/tmp/amalgam-device-check}
B=$W/build
LAYERS=${DEVICE_CHECK_LAYERS:-4}
BUDGET=${DEVICE_CHECK_BUDGET_S:-450}
NPROC=$(nproc 2>/dev/null || echo 4)
start=$(date +%s)

say() { printf '%s\n' "$*"; }
step() { printf '\n=== %s (%ss) ===\n' "$*" $(( $(date +%s) - start )); }
die() { say "device-check: FAIL: $*"; exit 1; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"${2:-%.2f}\", $1 }"; }

if ! { command -v nvidia-smi >/dev/null 2>&1 &&
       nvidia-smi -L 2>/dev/null | grep -q '^GPU '; } &&
   [ ! -e /dev/nvidia0 ]; then
    say "SKIP: device-check: no NVIDIA GPU found (nvidia-smi lists none," \
        "no /dev/nvidia0)"
    exit 77
fi

step "machine"
nvidia-smi -L 2>/dev/null || true
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
    2>/dev/null || true
say "$NPROC CPUs, $(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' \
    /proc/meminfo) memory, $(df -Ph "${W%/*}" | awk 'NR == 2 { print $4 }')" \
    "free in ${W%/*}"

mkdir -p "$W" || die "cannot create '$W'"
if [ -n "${DEVICE_CHECK_PREBUILT:-}" ]; then
    # a build made elsewhere by tests/gpu/pack.sh: linked in at the path it
    # was built at, so it finds its plugins and backend as a build tree does
    step "prebuilt: $DEVICE_CHECK_PREBUILT"
    P=$(cd "$DEVICE_CHECK_PREBUILT" && pwd -P) ||
        die "no folder '$DEVICE_CHECK_PREBUILT'"
    [ -f "$P/BUILD_PATH" ] || die "'$P' was not made by tests/gpu/pack.sh"
    B=$(cat "$P/BUILD_PATH")
    if [ -e "$B" ] && [ "$(cd "$B" && pwd -P)" != "$P" ]; then
        die "'$B' exists and is not '$P': remove it or pack from another path"
    fi
    mkdir -p "${B%/*}" && ln -sfn "$P" "$B" || die "cannot link '$B'"
    LD_LIBRARY_PATH=$P/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export LD_LIBRARY_PATH
    "$B/amalgam" --version || die "the prebuilt amalgam does not run here"
else
step "build (log: $B.log)"
build() {
    # a machine that reaches no package registry may still have all it
    # needs: a failed install is reported, and configure names anything
    # really missing
    if [ -n "${DEVICE_CHECK_DEBS:-}" ]; then
        for f in "$DEVICE_CHECK_DEBS"/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    sh "$src/build-aux/deps.sh" ||
        say "device-check: installing build dependencies failed; trying" \
            "with what is there"
    if command -v autoreconf >/dev/null 2>&1; then
        (cd "$src" && autoreconf -fi) || return 1
    elif [ ! -x "$src/configure" ]; then
        say "no autoreconf and no configure script: install autoconf," \
            "automake and libtool, or run from a dist tarball"
        return 1
    fi
    rm -rf "$B" && mkdir -p "$B" && cd "$B" &&
        "$src/configure" --with-cuda --enable-werror && make -j"$NPROC"
}
if ! (build) >"$B.log" 2>&1; then
    tail -n 40 "$B.log"
    [ -n "${OUT:-}" ] && cp "$B.log" "$OUT/build.log"
    die "the build failed (last lines above)"
fi
grep -A3 '^configure: summary' "$B.log" || true
[ -f "$B/backends/.libs/cuda.so" ] ||
    die "configure did not enable CUDA: no backends/.libs/cuda.so"
say "built in $(( $(date +%s) - start )) s"
fi

step "GPU suite: CPU and GPU bytes equal for every strategy"
sh "$src/tests/gpu/suite.sh" "$B"
rc=$?
[ "$rc" -eq 0 ] || die "tests/gpu/suite.sh exited $rc"

step "kernels: tests/gpu/gpubench"
AMALGAM_BACKEND_PATH=$B/backends/.libs/cuda.so "$B/tests/gpu/gpubench" ||
    die "gpubench failed"

step "end to end: base + 3 experts, Llama-3-8B width, $LAYERS layers"
AM=$B/amalgam
AMALGAM_PLUGIN_SYSTEM_PATH=$B/plugins/.libs
export AMALGAM_PLUGIN_SYSTEM_PATH
unset AMALGAM_BACKEND_PATH
M=$W/models
rm -rf "$M" "$W/out-cpu" "$W/out-gpu"
t0=$(now)
"$AM" synth --family "$M" --experts 3 --layers "$LAYERS" --hidden 4096 \
    --intermediate 14336 --vocab 128256 --heads 32 --kv-heads 8 \
    --dtype bf16 >/dev/null || die "generating the models failed"
say "generated in $(calc "$(now) - $t0") s"
inputs=$(ls "$M"/base/*.safetensors "$M"/expert-*/*.safetensors)
# shellcheck disable=SC2086
in_bytes=$(cat $inputs | wc -c)
out_bytes=$(cat "$M"/base/*.safetensors | wc -c)
sync
# shellcheck disable=SC2086
cat $inputs >/dev/null
t0=$(now)
# shellcheck disable=SC2086
cat $inputs >/dev/null
floor=$(calc "$(now) - $t0" %.6f)
say "inputs $(calc "$in_bytes / 1e9") GB, output $(calc "$out_bytes / 1e9")" \
    "GB; I/O floor: cat of the inputs from the page cache $(calc "$floor" \
    %.3f) s ($(calc "$in_bytes / 1e9 / $floor") GB/s)"

# pipeline ID: a bench pipeline for strategy ID (tests/bench/bench.sh's
# parameters), bf16 output
pipeline() {
    models() {
        for k in 1 2 3; do
            echo "  - model: $M/expert-$k"
            [ $# -gt 0 ] && echo "    parameters:"
            for p in "$@"; do echo "      $p"; done
        done
    }
    case $1 in
    linear)
        printf 'merge_method: linear\nmodels:\n'
        echo "  - model: $M/base"
        echo "    parameters: {weight: 0.25}"
        models "weight: 0.25" ;;
    task_arithmetic)
        printf 'merge_method: %s\nbase_model: %s/base\nmodels:\n' "$1" "$M"
        models "weight: 0.5" ;;
    ties|dare_ties|dare_linear)
        printf 'merge_method: %s\nbase_model: %s/base\nmodels:\n' "$1" "$M"
        models "weight: 0.5" "density: 0.5" ;;
    breadcrumbs|breadcrumbs_ties)
        printf 'merge_method: %s\nbase_model: %s/base\nmodels:\n' "$1" "$M"
        models "weight: 0.5" "density: 0.9" "gamma: 0.01" ;;
    della|della_linear)
        printf 'merge_method: %s\nbase_model: %s/base\nmodels:\n' "$1" "$M"
        models "weight: 0.5" "density: 0.5" "epsilon: 0.1" ;;
    model_stock)
        printf 'merge_method: %s\nbase_model: %s/base\nmodels:\n' "$1" "$M"
        models ;;
    karcher)
        printf 'merge_method: karcher\nmodels:\n'
        models ;;
    sce)
        printf 'merge_method: sce\nbase_model: %s/base\nmodels:\n' "$M"
        models
        printf 'parameters:\n  select_topk: 0.5\n' ;;
    slerp)
        printf 'merge_method: slerp\nbase_model: %s/expert-1\n' "$M"
        printf 'models:\n  - model: %s/expert-1\n' "$M"
        printf '  - model: %s/expert-2\nparameters:\n  t: 0.5\n' "$M" ;;
    nuslerp)
        printf 'merge_method: nuslerp\nbase_model: %s/base\nmodels:\n' "$M"
        for k in 1 2; do
            printf '  - model: %s/expert-%s\n' "$M" "$k"
            printf '    parameters:\n      weight: 0.5\n'
        done ;;
    multislerp)
        printf 'merge_method: multislerp\nbase_model: %s/base\n' "$M"
        printf 'models:\n'
        models "weight: 0.3333333333333333" ;;
    passthrough)
        printf 'merge_method: passthrough\nmodels:\n'
        printf '  - model: %s/expert-1\n    parameters:\n' "$M"
        printf '      scale: 0.5\n' ;;
    *) return 1 ;;
    esac
    echo "dtype: bfloat16"
}

# run DEVICE OUT PIPELINE: one merge; sets wall and rc
run() {
    rm -rf "$2"
    t0=$(now)
    if [ "$1" = cpu ]; then
        "$AM" merge -q -j "$NPROC" "$3" "$2" >"$W/merge.log" 2>&1
    else
        "$AM" merge -q -j "$NPROC" --device cuda "$3" "$2" \
            >"$W/merge.log" 2>&1
    fi
    rc=$?
    wall=$(calc "$(now) - $t0" %.6f)
}

# same_bytes A B: every file of A equals its namesake in B, and B has no
# other file
same_bytes() {
    [ "$(cd "$1" && find . -type f | sort)" = \
      "$(cd "$2" && find . -type f | sort)" ] || return 1
    (cd "$1" && find . -type f) | while read -r f; do
        cmp -s "$1/$f" "$2/$f" || { say "    differs: $f"; exit 1; }
    done
}

printf '%-18s %8s %8s %9s %9s %8s %8s %7s %s\n' strategy "cpu s" "gpu s" \
    "cpu GB/s" "gpu GB/s" "cpu/flr" "gpu/flr" speedup bytes
status=0
left=
ids="linear task_arithmetic ties dare_ties dare_linear breadcrumbs
     breadcrumbs_ties della della_linear sce model_stock karcher slerp
     nuslerp multislerp passthrough"
for id in $ids; do
    if [ -n "$left" ] || [ $(( $(date +%s) - start )) -ge "$BUDGET" ]; then
        left="$left $id"
        continue
    fi
    pipeline "$id" >"$W/$id.yaml"
    run cpu "$W/out-cpu" "$W/$id.yaml"
    if [ "$rc" -ne 0 ]; then
        say "$id: the cpu merge failed (exit $rc):"
        sed 's/^/    /' "$W/merge.log"
        status=1
        continue
    fi
    cpu=$wall
    run gpu "$W/out-gpu" "$W/$id.yaml"
    if [ "$rc" -ne 0 ]; then
        say "$id: the gpu merge failed (exit $rc):"
        sed 's/^/    /' "$W/merge.log"
        status=1
        continue
    fi
    gpu=$wall
    if same_bytes "$W/out-cpu" "$W/out-gpu"; then
        same=equal
    else
        same=DIFFER
        status=1
    fi
    printf '%-18s %8.2f %8.2f %9.2f %9.2f %8.2f %8.2f %7.2f %s\n' "$id" \
        "$cpu" "$gpu" "$(calc "$in_bytes / 1e9 / $cpu")" \
        "$(calc "$in_bytes / 1e9 / $gpu")" "$(calc "$cpu / $floor")" \
        "$(calc "$gpu / $floor")" "$(calc "$cpu / $gpu")" "$same"
done
rm -rf "$W/out-cpu" "$W/out-gpu" "$M"
say "fisher: not in the end-to-end run (it needs per-model Fisher files);" \
    "tests/gpu/suite.sh covers its bytes"
[ -n "$left" ] && say "not run (the ${BUDGET} s budget was spent):$left"
say "columns: wall seconds; input GB/s = inputs / wall; x/flr = wall /" \
    "I/O floor; speedup = cpu / gpu; bytes: the two outputs compared"

step "done"
if [ "$status" -ne 0 ]; then
    die "an end-to-end merge failed or differs between the CPU and the GPU"
fi
say "device-check: PASS in $(( $(date +%s) - start )) s"
