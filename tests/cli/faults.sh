#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Fault injection for `amalgam merge`: a full disk, failed allocations, an
# input shard truncated mid-merge, a strategy that returns an error and
# one that crashes. Each must exit 1, print one clear error line naming
# the cause, and leave no OUT folder (a crash may leave OUT.amalgam-partial,
# which the next run into OUT removes). A write past `ulimit -f` and
# SIGINT/SIGTERM are covered in merge.sh.
#
# The LD_PRELOAD shim (tests/fault/faultinj.c) cannot be combined with
# AddressSanitizer or valgrind, which replace the same functions; those
# parts are skipped there, with a line saying so.
. "${top_srcdir:-.}/tests/cli/lib.sh"

: "${BUILTIN_PLUGIN_DIR:?BUILTIN_PLUGIN_DIR must point at the built plugins}"
: "${TEST_PLUGIN_DIR:?TEST_PLUGIN_DIR must point at the test plugins}"
AMALGAM_PLUGIN_SYSTEM_PATH=$BUILTIN_PLUGIN_DIR
AMALGAM_PLUGIN_CACHE=$T/plugin-cache.json
export AMALGAM_PLUGIN_SYSTEM_PATH AMALGAM_PLUGIN_CACHE
SHIM=${FAULT_SHIM:-$TEST_PLUGIN_DIR/../../fault/.libs/faultinj.so}
CRASH=$TEST_PLUGIN_DIR/crash.so

use_shim=1
if ldd "$AMALGAM" 2>/dev/null | grep -q 'libasan'; then
    echo "skip: LD_PRELOAD fault shim under AddressSanitizer (both replace" \
         "malloc and write)"
    use_shim=0
elif [ -n "${AMALGAM_VALGRIND:-}" ]; then
    echo "skip: LD_PRELOAD fault shim under valgrind"
    use_shim=0
elif [ ! -f "$SHIM" ]; then
    echo "skip: fault shim '$SHIM' not built"
    use_shim=0
fi

# failed_cleanly OUT DESC PATTERN: exit 1 (not a signal), exactly one
# "error:" line matching PATTERN, and neither OUT nor OUT.amalgam-partial
failed_cleanly() {
    out=$1 desc=$2 pat=$3
    if [ "$rc" -eq 1 ]; then pass "$desc: exits 1"
    else fail "$desc: exit $rc, wanted 1"; sed 's/^/    /' "$T/out"; fi
    n=$(grep -c '^error:' "$T/out")
    if [ "$n" -eq 1 ]; then pass "$desc: one error line"
    else fail "$desc: $n error lines"; sed 's/^/    /' "$T/out"; fi
    expect_out "^error: .*$pat" "$desc: the message names the cause"
    if [ -e "$out" ] || [ -e "$out.amalgam-partial" ]; then
        fail "$desc: '$out' or its staging folder was left"
    else pass "$desc: nothing is left"; fi
}

# run_merge OUT [VAR=VALUE...]: merge p.yaml into OUT under the shim with
# the given settings; sets rc
run_merge() {
    out=$1; shift
    env LD_PRELOAD="$SHIM" "$@" "$AMALGAM" merge "$T/p.yaml" "$out" -q -j1 \
        >"$T/out" 2>&1
    rc=$?
}

expect_rc 0 "a base and two experts are written" \
    "$AMALGAM" synth --family "$T/fam" --experts 2
cat >"$T/p.yaml" <<'EOF2'
merge_method: linear
models:
  - model: fam/expert-1
    parameters: {weight: 0.5}
  - model: fam/expert-2
    parameters: {weight: 0.5}
dtype: bfloat16
EOF2
# fill the scan cache now, so the shim's limits meet only the merge
expect_rc 0 "a clean merge succeeds" "$AMALGAM" merge "$T/p.yaml" "$T/ok" -q
expect_rc 0 "the clean merge reads back" "$AMALGAM" inspect "$T/ok"

if [ $use_shim -eq 1 ]; then
    # --- a full disk: ENOSPC on the first shard write past 4 KiB
    run_merge "$T/full" AMG_FAULT_WRITE_LIMIT=4096
    failed_cleanly "$T/full" "ENOSPC" \
        "full\.amalgam-partial/model\.safetensors.*No space left on device"

    # --- allocation failures: the Nth allocation returns NULL. Either the
    # merge still succeeds (the allocation was optional or came after the
    # last one) and the output is whole, or it fails cleanly.
    for n in 1 2 3 5 8 13 30 60 100 200 400 700 1000 1500 2500 4000; do
        run_merge "$T/oom-$n" AMG_FAULT_ALLOC_FAIL=$n
        if [ $rc -eq 0 ]; then
            if cmp -s "$T/ok/model.safetensors" "$T/oom-$n/model.safetensors"
            then pass "allocation $n failing: the merge still completes whole"
            else fail "allocation $n failing: exit 0 but the output differs"
            fi
            rm -rf "$T/oom-$n"
        else
            failed_cleanly "$T/oom-$n" "allocation $n failing" \
                "out of memory|Cannot allocate memory"
        fi
    done

    # --- an input shard truncated while the merge runs: the shim cuts it
    # to 8 bytes right after the output's first write
    expect_rc 0 "a family to damage" \
        "$AMALGAM" synth --family "$T/dmg" --experts 2
    sed 's#fam/#dmg/#' "$T/p.yaml" >"$T/d.yaml"
    env LD_PRELOAD="$SHIM" AMG_FAULT_TRUNCATE="$T/dmg/expert-2/model.safetensors" \
        "$AMALGAM" merge "$T/d.yaml" "$T/trunc" -q -j1 >"$T/out" 2>&1
    rc=$?
    # SIGBUS may leave the partial folder, and the message must say so
    if [ -e "$T/trunc.amalgam-partial" ] && grep -q 'was not renamed' "$T/out"
    then rm -rf "$T/trunc.amalgam-partial"; fi
    failed_cleanly "$T/trunc" "a shard truncated mid-merge" \
        "expert-2/model\.safetensors.*(shrank|truncated|too short)"
fi

# --- a strategy that returns an error on one tensor
cat >"$T/f.yaml" <<'EOF2'
merge_method: crash_fail
models:
  - model: fam/expert-1
parameters: {at: layers.1.}
EOF2
"$AMALGAM" merge "$T/f.yaml" "$T/sfail" -q -j1 --plugin "$CRASH" \
    >"$T/out" 2>&1
rc=$?
failed_cleanly "$T/sfail" "a strategy error" \
    "layers\.1\..*crash_fail.*refusing .* on purpose"

# --- a strategy that crashes: one line naming it and the signal; the
# partial output may stay, and the next run into the same folder removes
# it and succeeds
sed 's/crash_fail/crash_null/' "$T/f.yaml" >"$T/c.yaml"
"$AMALGAM" merge "$T/c.yaml" "$T/crash" -q -j1 --plugin "$CRASH" \
    >"$T/out" 2>&1
rc=$?
# under valgrind the NULL write is a memcheck error by design: its status
want=1
[ "${AMALGAM_VALGRIND:-}" = 1 ] && want=97
if [ $rc -eq $want ]; then pass "a crashing strategy: exits $want"
else fail "a crashing strategy: exit $rc, wanted $want"; sed 's/^/    /' "$T/out"; fi
expect_out "^error: strategy plugin 'crash_null' crashed \(SIGSEGV\) while merging; the partial output '.*crash\.amalgam-partial' was not renamed" \
    "a crashing strategy: the message names the strategy and the signal"
if [ "$(grep -c '^error:' "$T/out")" -eq 1 ]; then pass "a crash: one line"
else fail "a crash: not one error line"; fi
if [ -e "$T/crash" ]; then fail "a crash left '$T/crash'"
else pass "a crash leaves no output folder"; fi
sed 's/crash_null/linear/; s/parameters: {at: layers.1.}/parameters: {weight: 1.0}/' \
    "$T/c.yaml" >"$T/l.yaml"
expect_rc 0 "the next run into the same folder succeeds" \
    "$AMALGAM" merge "$T/l.yaml" "$T/crash" -q
if [ -e "$T/crash.amalgam-partial" ]; then
    fail "the next run left the stale partial folder"
else pass "the next run removed the stale partial folder"; fi

# --- limits on hostile input (the rest are in the reader's unit tests)
# an alias bomb: a 1 MiB scalar named 40 times is 40 MiB, past the 16 MiB
# aliases may add
"$PYTHON" -c '
import sys
w = sys.stdout.write
w("merge_method: linear\nchat_template: &a \"" + "x" * (1 << 20) + "\"\n")
w("models:\n")
for i in range(40):
    w("  - model: *a\n")
' >"$T/bomb.yaml" 2>/dev/null || printf 'skip\n' >"$T/bomb.yaml"
if grep -q '^skip' "$T/bomb.yaml"; then echo "skip: no python for the alias bomb"
else
    expect_rc 1 "an alias bomb is refused" \
        "$AMALGAM" merge "$T/bomb.yaml" "$T/bomb" --dry-run
    expect_out "bomb\.yaml:[0-9]+:[0-9]+: aliases expand to more than 16777216 bytes" \
        "the alias bomb's message gives the place and the limit"
fi
# nesting deeper than 64 levels
{ printf 'merge_method: linear\nparameters: '; i=0
  while [ $i -lt 70 ]; do printf '['; i=$((i + 1)); done
  printf '1'; i=0
  while [ $i -lt 70 ]; do printf ']'; i=$((i + 1)); done; echo; } >"$T/deep.yaml"
expect_rc 1 "YAML nested 70 deep is refused" \
    "$AMALGAM" merge "$T/deep.yaml" "$T/deep" --dry-run
expect_out "deep\.yaml:.*nesting deeper than 64 levels" \
    "the depth message gives the limit"
# a config.json nested past jansson's 2048 levels: an error, not a crash
mkdir -p "$T/deepcfg"
cp "$T/fam/expert-1/model.safetensors" "$T/deepcfg/"
{ printf '{"a":'; i=0
  while [ $i -lt 3000 ]; do printf '['; i=$((i + 1)); done; i=0
  while [ $i -lt 3000 ]; do printf ']'; i=$((i + 1)); done
  printf '}'; } >"$T/deepcfg/config.json"
expect_rc 1 "a config.json nested 3000 deep is refused" \
    "$AMALGAM" inspect "$T/deepcfg"
expect_out "deepcfg/config\.json': invalid JSON .*maximum parsing depth" \
    "the message names config.json and the nesting"

finish
