#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# setup.sh - create (or reuse) the interop suite's virtualenv and print its
# python. The venv lives in ${AMALGAM_INTEROP_VENV:-~/.cache/amalgam/
# interop-venv}/<hash of requirements.txt>, so CI on the same machine
# reuses it and a changed pin makes a new one. Exits 77 with one SKIP line
# only when the packages cannot be installed; any other failure is 1.
set -u
here=$(cd "$(dirname "$0")" && pwd)
req="$here/requirements.txt"
root=${AMALGAM_INTEROP_VENV:-${HOME:-/tmp}/.cache/amalgam/interop-venv}
key=$(sha256sum "$req" | cut -c1-16)
venv="$root/$key"
py=${PYTHON3:-python3}

if [ -f "$venv/.complete" ]; then
    echo "$venv/bin/python"
    exit 0
fi
skip() {
    echo "SKIP: interop suite: $* (log: $log)" >&2
    exit 77
}
command -v "$py" >/dev/null 2>&1 || { log=none; skip "no $py"; }
mkdir -p "$root" || exit 1
rm -rf "$venv"
log="$root/$key.log"
: >"$log"
"$py" -m venv "$venv" >>"$log" 2>&1 || skip "cannot create a virtualenv"
pip="$venv/bin/python -m pip --disable-pip-version-check"
# torch alone first: pip then takes the CPU wheel on disk instead of a
# CUDA build that another package's open range would pull in
torch_pin=$(grep '^torch==' "$req")
cons="$venv/torch-constraint.txt"
echo "$torch_pin" >"$cons"
$pip install "$torch_pin" >>"$log" 2>&1 || skip "cannot install $torch_pin"
grep -v '^torch==' "$req" >"$venv/rest.txt"
$pip install -r "$venv/rest.txt" -c "$cons" >>"$log" 2>&1 ||
    skip "cannot install the pinned packages of $req"
"$venv/bin/python" -c 'import torch, transformers, mergekit, lm_eval, peft' \
    >>"$log" 2>&1 || { echo "error: interop venv $venv does not import; see $log" >&2; exit 1; }
touch "$venv/.complete"
echo "$venv/bin/python"
