#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# run.sh - build the fuzz targets in a build folder and run one for a while.
#
#   tests/fuzz/run.sh BUILD_DIR TARGET SECONDS [libFuzzer options...]
#
# TARGET is safetensors, index, pipeline, config, descriptor or hub (or the
# binary's name, fuzz_TARGET). The
# corpus lives in BUILD_DIR/tests/fuzz/corpus/TARGET: seeded from
# tests/fuzz/seeds/TARGET plus a few boundary cases generated here, and kept
# between runs so later runs start where earlier ones stopped. Crash, leak
# and timeout inputs go to BUILD_DIR/tests/fuzz/artifacts/TARGET/ (the
# summary counts this run's). Ends with
# one summary line: executions, coverage (cov: edges, ft: features),
# corpus size and the number of crashing inputs. Exits non-zero when the
# target crashed.
set -u

usage() {
    echo "usage: $0 BUILD_DIR safetensors|index|pipeline|config|descriptor|hub SECONDS [libFuzzer options...]" >&2
    exit 2
}
[ $# -ge 3 ] || usage
build=$1 target=$2 secs=$3
shift 3
case $target in
    safetensors|fuzz_safetensors) kind=safetensors ;;
    index|fuzz_index) kind=index ;;
    pipeline|fuzz_pipeline) kind=pipeline ;;
    config|fuzz_config) kind=config ;;
    descriptor|fuzz_descriptor) kind=descriptor ;;
    hub|fuzz_hub) kind=hub ;;
    *) usage ;;
esac
case $secs in ''|*[!0-9]*) usage ;; esac
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" && pwd) || exit 2

make -C "$build" fuzz >/dev/null || { echo "run.sh: make fuzz failed" >&2; exit 1; }
bin=$build/tests/fuzz/fuzz_$kind
corpus=$build/tests/fuzz/corpus/$kind
art=$build/tests/fuzz/artifacts/$kind
mkdir -p "$corpus" "$art"

# committed seeds
for f in "$here/seeds/$kind"/*; do
    [ -f "$f" ] && cp "$f" "$corpus/seed-$(basename "$f")"
done

# generated boundary cases. st NAME HEADER [DATA_BYTES]: a file whose u64
# length prefix is the header's length (headers here are under 256 bytes)
st() {
    n=$(printf '%s' "$2" | wc -c)
    {
        printf "\\$(printf '%03o' "$n")\\000\\000\\000\\000\\000\\000\\000"
        printf '%s' "$2"
        head -c "${3:-0}" /dev/zero
    } >"$corpus/gen-$1"
}
if [ "$kind" = safetensors ]; then
    printf '\003\000\000' >"$corpus/gen-too-small"
    printf '\001\341\365\005\000\000\000\000{}' >"$corpus/gen-too-large"
    printf '\144\000\000\000\000\000\000\000{}  ' >"$corpus/gen-beyond-file"
    st empty '{}'
    st scalar '{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}' 4
    st zero '{"z":{"dtype":"BF16","shape":[0,2],"data_offsets":[0,0]}}'
    st hole '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}' 3
    st trailing '{"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}}' 5
    st overflow '{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}'
    st meta '{"__metadata__":{"format":"pt","x":"y"}}'
elif [ "$kind" = index ]; then
    printf '{"weight_map":{}}' >"$corpus/gen-empty"
    printf '{"metadata":{"total_size":0},"weight_map":{"a":"s","b":"s","c":"t"}}' >"$corpus/gen-small"
    printf '[]' >"$corpus/gen-array"
fi

count_art() {
    find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' \
         -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l
}
before=$(count_art)
log=$art/last-run.log
# descriptor input is XORed over a template, not text: no dictionary
case $kind in
    pipeline) dict=-dict=$here/seeds/yaml.dict ;;
    descriptor) dict=-max_len=4096 ;;
    *) dict=-dict=$here/seeds/json.dict ;;
esac
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export UBSAN_OPTIONS
echo "run.sh: fuzz_$kind for $secs s, corpus $corpus"
"$bin" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=16384 \
    -timeout=10 "$dict" -print_final_stats=1 \
    -artifact_prefix="$art/" "$@" "$corpus" >"$log" 2>&1
rc=$?

grep -E 'ERROR|runtime error|SUMMARY|^artifact_prefix|Test unit written' "$log" | head -20
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
last=$(grep -E '^#[0-9]+' "$log" | tail -1)
cov=$(printf '%s\n' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
ft=$(printf '%s\n' "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
corp=$(printf '%s\n' "$last" | sed -n 's/.*corp: \([^ ]*\).*/\1/p')
crashes=$(( $(count_art) - before ))
echo "fuzz_$kind: ${secs} s, execs: ${execs:-?} (${rate:-?}/s), cov: ${cov:-?} ft: ${ft:-?}, corpus: ${corp:-?}, crash inputs: $crashes, exit $rc (log: $log)"
[ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ]
