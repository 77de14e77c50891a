#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# suite.sh - the GPU suite for tests/gpu/device-check.sh: every built-in
# strategy merged on the real CUDA backend writes the CPU's bytes
# (tests/gpu/strategies.sh, the same checks tests/cli/device.sh runs on the
# loopback backend). Exits 77 with one line when there is no GPU to use.
#
#   tests/gpu/suite.sh BUILD_DIR
#
# or, as `make check` would run it, with AMALGAM and BUILTIN_PLUGIN_DIR set.
if [ $# -ge 1 ]; then
    AMALGAM=$(cd "$1" && pwd)/amalgam
    BUILTIN_PLUGIN_DIR=$(cd "$1" && pwd)/plugins/.libs
    export AMALGAM BUILTIN_PLUGIN_DIR
fi
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top_srcdir/tests/cli/lib.sh"
. "$top_srcdir/tests/gpu/strategies.sh"

use_built_plugins
unset AMALGAM_BACKEND_PATH             # the real backend, never the loopback
PYTHON=${PYTHON:-$(command -v python3 || true)}

cd "$T" || exit 1
# a probe: no GPU (or a build without CUDA) is a skip; a backend that is
# built but cannot be loaded is a failure
"$AMALGAM" synth --family probe --experts 1 --layers 1 >/dev/null 2>&1
printf '%s\n' "merge_method: linear" "models:" "  - model: probe/base" \
    "  - model: probe/expert-1" >probe.yaml
if ! "$AMALGAM" merge probe.yaml probe-out -q --device cuda >probe.log 2>&1
then
    if grep -Eq "^error: (cannot use cuda:|this amalgam was built without CUDA)" \
        probe.log; then
        echo "skip: $(sed -n 's/^error: //p' probe.log | head -n 1)"
        exit 77
    fi
    fail "--device cuda works"
    sed 's/^/    /' probe.log
    finish
fi

gpu_suite "$T"
finish
