#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# bench.sh - `make bench [BENCH_ARGS=...]`: merge speed and memory against
# the I/O floor. Prints figures; asserts nothing.
#
#   sh tests/bench/bench.sh [--small] [--sizes] [--keep] [--help]
#
# Run from the build folder (make bench does): ./amalgam and plugins/.libs
# are used from there. Work folder: ${BENCH_DIR:-/tmp/amalgam-bench}.
#
# What it does, per model size:
#   1. generates a base and 3 experts with `amalgam synth` (bf16; default
#      TinyLlama-shaped, 22 layers, hidden 2048, intermediate 5632, vocab
#      32000, 32 heads, 4 kv-heads: 1.10B parameters, 2.2 GB each);
#   2. warms the page cache by reading every input file once, and flushes
#      dirty pages (sync) so later timings do not pay for the generation;
#   3. measures the I/O floor in the same run:
#        read  = wall time of `cat <every input .safetensors> >/dev/null`
#                (all four models, from the warm page cache);
#        write = wall time of `dd if=/dev/zero bs=1M count=<output MiB>
#                conv=fsync` into the work folder, i.e. writing the
#                output's byte count and flushing it to the disk, as the
#                executor does before its rename (the median of three:
#                a shared disk's speed varies from one write to the next);
#        floor = read + write;
#   4. runs `amalgam merge` for every strategy `amalgam plugins` lists that
#      has a bench pipeline below, at -j1 and -jN (N = nproc), and reports
#      wall time, CPU time (user + system: steadier than wall time on a
#      busy machine), input GB/s (input bytes / wall), the ratio to the
#      floor, the ratio to linear's wall time at the same -j (linear runs
#      first: the cheapest merge over the same bytes, so this ratio is a
#      strategy's compute cost whatever the disk does), and peak private
#      memory: the highest RssAnon of the process,
#      sampled from /proc/PID/status every 50 ms (VmHWM would count the
#      mapped input files, which are page cache, not private memory).
#
# Options:
#   --small   4 layers, hidden 1024, intermediate 2816, 16 heads (0.11B)
#   --sizes   three sizes of the same width, to show memory stays flat:
#             2, 8 and 22 layers (0.22B, 0.48B, 1.10B; with --small 2, 4
#             and 8 layers)
#   --keep    keep the work folder (the models are reused by a later run
#             of the same shape)
set -u

AMALGAM=${AMALGAM:-./amalgam}
W=${BENCH_DIR:-/tmp/amalgam-bench}
EXPERTS=3

small=0; sizes=0; keep=0
for a in "$@"; do
    case $a in
        --small) small=1 ;;
        --sizes) sizes=1 ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '3,43p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench: unknown option '$a' (see --help)" >&2; exit 2 ;;
    esac
done

if [ ! -x "$AMALGAM" ]; then
    echo "bench: no program at '$AMALGAM' (run from the build folder, or" \
         "set AMALGAM)" >&2
    exit 1
fi
# Measure this build's strategies, not installed ones.
if [ -z "${AMALGAM_PLUGIN_SYSTEM_PATH+set}" ] && [ -d plugins/.libs ]; then
    AMALGAM_PLUGIN_SYSTEM_PATH=$(cd plugins/.libs && pwd)
    export AMALGAM_PLUGIN_SYSTEM_PATH
fi

NPROC=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
if [ "$small" -eq 1 ]; then
    HIDDEN=1024; INTER=2816; VOCAB=32000; HEADS=16; KV=4; LAYERS=4
    SIZE_LAYERS="2 4 8"
else
    HIDDEN=2048; INTER=5632; VOCAB=32000; HEADS=32; KV=4; LAYERS=22
    SIZE_LAYERS="2 8 22"
fi
[ "$sizes" -eq 1 ] || SIZE_LAYERS=$LAYERS
JOBS=1
[ "$NPROC" -gt 1 ] && JOBS="1 $NPROC"

now() { date +%s.%N; }
# calc EXPR [FORMAT]: floating-point arithmetic with awk (%.2f unless
# FORMAT says otherwise)
calc() { awk "BEGIN { printf \"${2:-%.2f}\", $1 }"; }

# params L: parameters of one model with L layers (untied lm_head)
params() {
    kvdim=$((HIDDEN / HEADS * KV))
    echo $((2 * VOCAB * HIDDEN + $1 * (2 * HIDDEN * HIDDEN +
            2 * kvdim * HIDDEN + 3 * INTER * HIDDEN + 2 * HIDDEN) + HIDDEN))
}

# bytes_of DIR: total size of DIR's .safetensors files
bytes_of() { cat "$1"/*.safetensors | wc -c | tr -d ' '; }

# check_space L: refuse when 4 models, the output and the floor file of
# size L would not fit beside what is already there
check_space() {
    need=$(( $(params "$1") * 2 * (EXPERTS + 3) ))
    have=$(( $(df -Pk "$W" | awk 'NR == 2 { print $4 }') * 1024 ))
    [ -d "$W/L$1" ] && have=$((have + $(du -sk "$W/L$1" | cut -f1) * 1024))
    if [ "$have" -lt "$need" ]; then
        echo "bench: not enough disk space in '$W' for $1 layers: needs" \
             "$(calc "$need / 1e9") GB, has $(calc "$have / 1e9") GB" \
             "(set BENCH_DIR, or use --small)" >&2
        return 1
    fi
}

# generate L: base and experts of L layers in $W/L<L>, reused when a
# previous --keep run left them complete
generate() {
    d="$W/L$1"
    [ -f "$d/.complete" ] && return 0
    rm -rf "$d"
    "$AMALGAM" synth --family "$d" --experts "$EXPERTS" --layers "$1" \
        --hidden "$HIDDEN" --intermediate "$INTER" --vocab "$VOCAB" \
        --heads "$HEADS" --kv-heads "$KV" --dtype bf16 >/dev/null || return 1
    : >"$d/.complete"
}

# pipeline ID DIR: a bench pipeline for strategy ID over DIR's models
# (mergekit names and parameters); fails for a strategy without one
pipeline() {
    d=$2
    models() {     # models PARAMS...: the three experts with PARAMS each
        for k in $(seq "$EXPERTS"); do
            echo "  - model: $d/expert-$k"
            [ $# -gt 0 ] && echo "    parameters:"
            for p in "$@"; do echo "      $p"; done
        done
    }
    case $1 in
        linear)
            printf 'merge_method: linear\nbase_model: %s/base\nmodels:\n' "$d"
            models "weight: 0.3333333333333333" ;;
        task_arithmetic)
            printf 'merge_method: %s\nbase_model: %s/base\nmodels:\n' "$1" "$d"
            models "weight: 0.5" ;;
        ties|dare_ties|dare_linear)
            printf 'merge_method: %s\nbase_model: %s/base\nmodels:\n' "$1" "$d"
            models "weight: 0.5" "density: 0.5" ;;
        breadcrumbs|breadcrumbs_ties)
            printf 'merge_method: %s\nbase_model: %s/base\nmodels:\n' "$1" "$d"
            models "weight: 0.5" "density: 0.9" "gamma: 0.01" ;;
        della|della_linear)
            printf 'merge_method: %s\nbase_model: %s/base\nmodels:\n' "$1" "$d"
            models "weight: 0.5" "density: 0.5" "epsilon: 0.1" ;;
        model_stock|karcher)
            printf 'merge_method: %s\nbase_model: %s/base\nmodels:\n' "$1" "$d"
            models ;;
        sce)
            printf 'merge_method: sce\nbase_model: %s/base\nmodels:\n' "$d"
            models
            printf 'parameters:\n  select_topk: 0.5\n' ;;
        slerp)
            printf 'merge_method: slerp\nbase_model: %s/expert-1\n' "$d"
            printf 'models:\n  - model: %s/expert-1\n' "$d"
            printf '  - model: %s/expert-2\nparameters:\n  t: 0.5\n' "$d" ;;
        nuslerp)       # two task vectors over the base
            printf 'merge_method: nuslerp\nbase_model: %s/base\n' "$d"
            printf 'models:\n'
            for k in 1 2; do
                printf '  - model: %s/expert-%s\n' "$d" "$k"
                printf '    parameters:\n      weight: 0.5\n'
            done ;;
        multislerp)
            printf 'merge_method: multislerp\nbase_model: %s/base\n' "$d"
            printf 'models:\n'
            models "weight: 0.3333333333333333" ;;
        passthrough)   # one model, scaled: a full f32 round trip
            printf 'merge_method: passthrough\nmodels:\n'
            printf '  - model: %s/expert-1\n    parameters:\n' "$d"
            printf '      scale: 0.5\n' ;;
        *) return 1 ;;
    esac
    echo "dtype: bfloat16"
}

# peak_sampler PID FILE: write the highest RssAnon (kB) seen to FILE
peak_sampler() {
    peak=0
    while s=$(sed -n 's/^RssAnon:[^0-9]*\([0-9]*\).*/\1/p' \
                "/proc/$1/status" 2>/dev/null) && [ -n "$s" ]; do
        if [ "$s" -gt "$peak" ]; then peak=$s; echo "$peak" >"$2"; fi
        sleep 0.05
    done
}

# child_cpu FILE: user + system seconds of the shell's waited-for
# children, from `times` output saved in FILE (times itself must run in
# this shell: in $(...) it would report the subshell's children)
child_cpu() {
    awk 'NR == 2 { t = 0
        for (i = 1; i <= 2; i++) {
            split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2]
        }
        printf "%.6f", t }' "$1"
}

# merge_run PIPELINE JOBS: run one merge; sets wall, cpu, peak_kb, rc.
# cpu is the merge's own user + system time (the sampler is waited for
# later), a figure a busy machine disturbs less than wall time.
merge_run() {
    out="$W/out"
    rm -rf "$out"
    echo 0 >"$W/peak"
    times >"$W/cpu0"
    t0=$(now)
    "$AMALGAM" merge -q -j "$2" "$1" "$out" >"$W/merge.log" 2>&1 &
    pid=$!
    peak_sampler "$pid" "$W/peak" &
    spid=$!
    wait "$pid"; rc=$?
    t1=$(now)
    times >"$W/cpu1"
    cpu=$(calc "$(child_cpu "$W/cpu1") - $(child_cpu "$W/cpu0")" %.6f)
    kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
    wall=$(calc "$t1 - $t0" %.6f)
    peak_kb=$(cat "$W/peak")
    rm -rf "$out"
}

# bench_size L: everything for one model size
bench_size() {
    L=$1
    d="$W/L$L"
    check_space "$L" || return 1
    echo "generating a base and $EXPERTS experts of $L layers in '$d'..."
    generate "$L" || { echo "bench: generating the models failed" >&2
                       return 1; }
    inputs=$(ls "$d"/base/*.safetensors "$d"/expert-*/*.safetensors)
    in_bytes=$(cat $inputs | wc -c | tr -d ' ')      # also warms the cache
    out_bytes=$(bytes_of "$d/base")
    if awk -v n="$in_bytes" '/^MemAvailable:/ { exit !(n > $2 * 1024) }
                             END { if (NR == 0) exit 1 }' /proc/meminfo
    then
        echo "note: inputs ($(calc "$in_bytes / 1e9") GB) exceed available" \
             "memory; the page cache cannot hold them, so reads hit the disk"
    fi
    cat $inputs >/dev/null
    # Flush freshly generated models now, so neither the floor's fsync nor
    # a merge's pays for writing them back.
    sync

    t0=$(now); cat $inputs >/dev/null; t1=$(now)
    rd=$(calc "$t1 - $t0" %.6f)
    mib=$(( (out_bytes + 1048575) / 1048576 ))
    for k in 1 2 3; do
        t0=$(now)
        dd if=/dev/zero of="$W/floor.bin" bs=1M count="$mib" conv=fsync \
            2>/dev/null
        t1=$(now)
        rm -f "$W/floor.bin"
        calc "$t1 - $t0" '%.6f\n'
    done | sort -n >"$W/writes"
    wr=$(sed -n 2p "$W/writes")
    rm -f "$W/writes"
    floor=$(calc "$rd + $wr" %.6f)

    echo
    echo "model: $L layers, hidden $HIDDEN, intermediate $INTER, vocab" \
         "$VOCAB, bf16: $(calc "$(params "$L") / 1e9" %.3f)B parameters"
    echo "inputs: base + $EXPERTS experts = $(calc "$in_bytes / 1e9") GB;" \
         "output $(calc "$out_bytes / 1e9") GB; $NPROC CPUs"
    printf 'I/O floor: read %.3f s (%.2f GB/s from the page cache) + write' \
        "$rd" "$(calc "$in_bytes / 1e9 / $rd")"
    printf ' %.3f s (%.2f GB/s, fsync) = %.3f s\n' "$wr" \
        "$(calc "$out_bytes / 1e9 / $wr")" "$floor"
    printf '%-18s %4s %9s %8s %10s %8s %9s %14s\n' strategy jobs "wall s" \
        "cpu s" "input GB/s" "x floor" "x linear" "peak anon MB"

    # linear first: the other rows are also given as multiples of it
    ids=$("$AMALGAM" plugins 2>/dev/null |
          awk 'NR > 1 && NF { print ($1 == "linear" ? 0 : 1), $1 }' |
          sort -k1,1n -k2 | cut -d' ' -f2)
    [ -n "$ids" ] || echo "(no strategies found: is plugins/.libs built?)"
    for id in $ids; do
        if ! pipeline "$id" "$d" >"$W/$id.yaml"; then
            printf '%-18s (no bench pipeline; skipped)\n' "$id"
            continue
        fi
        for j in $JOBS; do
            merge_run "$W/$id.yaml" "$j"
            if [ "$rc" -ne 0 ]; then
                printf '%-18s %4s failed (exit %s):\n' "$id" "$j" "$rc"
                sed 's/^/    /' "$W/merge.log"
                continue
            fi
            [ "$id" = linear ] && eval "lin_$j=\$wall"
            eval "lin=\${lin_$j:-}"
            xlin=-
            [ -n "$lin" ] && xlin=$(calc "$wall / $lin")
            printf '%-18s %4s %9.3f %8.3f %10.2f %8.2f %9s %14.1f\n' "$id" \
                "$j" "$wall" "$cpu" "$(calc "$in_bytes / 1e9 / $wall")" \
                "$(calc "$wall / $floor")" "$xlin" "$(calc "$peak_kb / 1024")"
        done
    done
    [ "$keep" -eq 1 ] || rm -rf "$d"
}

mkdir -p "$W" || exit 1
status=0
for L in $SIZE_LAYERS; do
    bench_size "$L" || status=1
done
rm -f "$W/peak" "$W/merge.log" "$W/cpu0" "$W/cpu1" "$W"/*.yaml
if [ "$keep" -eq 1 ]; then
    echo
    echo "models kept in '$W' ($(du -sh "$W" | cut -f1)); remove with rm -r $W"
else
    rmdir "$W" 2>/dev/null
fi
exit $status
