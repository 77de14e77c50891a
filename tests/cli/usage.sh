#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The program's top level: help, version, unknown commands, exit codes.
. "${top_srcdir:-.}/tests/cli/lib.sh"

expect_rc 0 "--help exits 0" "$AMALGAM" --help
expect_out '^usage: amalgam' "--help prints usage"
expect_out 'inspect' "--help lists inspect"
expect_out 'synth' "--help lists synth"

expect_rc 0 "--version exits 0" "$AMALGAM" --version
expect_out '^amalgam [0-9]+\.[0-9]+\.[0-9]+ \(plugin ABI [0-9]+\.[0-9]+; cpu kernels: (base|avx2|avx512)\)$' \
    "--version prints release and ABI"

expect_rc 2 "no command is a usage error" "$AMALGAM"
expect_out '^usage: amalgam' "no command prints usage"

expect_rc 2 "unknown command is a usage error" "$AMALGAM" frobnicate
expect_out "^error: 'frobnicate' is not an amalgam command" \
    "unknown command is named"

for cmd in inspect synth; do
    expect_rc 0 "$cmd --help exits 0" "$AMALGAM" "$cmd" --help
    expect_out "^usage: amalgam $cmd" "$cmd --help prints its usage"
    expect_rc 2 "$cmd with an unknown option is a usage error" \
        "$AMALGAM" "$cmd" --no-such-option
done
finish
