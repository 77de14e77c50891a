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
finish() { [ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }; exit 0; }
