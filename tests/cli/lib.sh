# SPDX-License-Identifier: Apache-2.0
# lib.sh - sourced by the CLI tests: scratch folder, assertions, TAP-free
# plain output; exit 77 marks a skip for the automake harness.
set -u
: "${AMALGAM:?AMALGAM must point at the built program}"
T=$(mktemp -d "${TMPDIR:-/tmp}/amgcli-XXXXXX")
trap 'rm -rf "$T"' EXIT
# AMALGAM_VALGRIND=1: every "$AMALGAM" runs under memcheck. Its own exit
# status (97) differs from amalgam's failure status (1), so a memory error
# fails the tests that expect a failure too.
if [ "${AMALGAM_VALGRIND:-}" = 1 ]; then
    printf '#!/bin/sh\nexec valgrind -q --error-exitcode=97 --leak-check=full --errors-for-leak-kinds=definite,indirect "%s" "$@"\n' \
        "$AMALGAM" >"$T/amalgam-valgrind"
    chmod +x "$T/amalgam-valgrind"
    AMALGAM=$T/amalgam-valgrind
fi
fails=0
pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect_rc RC DESC CMD...: run CMD, stdout+stderr to $T/out, compare status
expect_rc() {
    want=$1; desc=$2; shift 2
    "$@" >"$T/out" 2>&1; got=$?
    if [ "$got" -eq "$want" ]; then pass "$desc"; else
        fail "$desc: exit $got, wanted $want"; sed 's/^/    /' "$T/out"; fi
}
# expect_out PATTERN DESC: grep -E PATTERN in the last command's output
expect_out() {
    if grep -Eq -- "$1" "$T/out"; then pass "$2"; else
        fail "$2: output lacks /$1/"; sed 's/^/    /' "$T/out"; fi
}
# use_built_plugins: load the plugins this build made, none installed
use_built_plugins() {
    : "${BUILTIN_PLUGIN_DIR:?BUILTIN_PLUGIN_DIR must point at the built plugins}"
    AMALGAM_PLUGIN_SYSTEM_PATH=$BUILTIN_PLUGIN_DIR
    export AMALGAM_PLUGIN_SYSTEM_PATH
}
# check_numpy WHAT: has_numpy=1 when $PYTHON imports numpy, else say that
# WHAT is skipped
check_numpy() {
    has_numpy=0
    if [ -n "${PYTHON:-}" ] && "$PYTHON" -c 'import numpy' 2>/dev/null; then
        has_numpy=1
    else
        echo "skip: $1 (no Python with numpy)"
    fi
}
# same_bytes A B DESC: the two output folders hold the same tensor bytes
same_bytes() {
    if cmp -s "$1/model.safetensors" "$2/model.safetensors"; then pass "$3"
    else fail "$3"; fi
}
# ref DESC ARGS...: the reference $REF accepts (after check_numpy; nothing
# without numpy); ref_rejects likewise rejects
ref() {
    [ $has_numpy -eq 1 ] || return 0
    d=$1; shift
    expect_rc 0 "$d" "$PYTHON" "$REF" "$@"
}
ref_rejects() {
    [ $has_numpy -eq 1 ] || return 0
    d=$1; shift
    expect_rc 1 "$d" "$PYTHON" "$REF" "$@"
}
finish() { [ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }; exit 0; }
