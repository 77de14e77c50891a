#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The LLM-Merging bridge (contrib/llm_merging/AmalgamMerge.py) copied into
# the stand-in kit, as a competitor copies it into the real one, merging a
# tiny local family. With the interop venv it also runs the kit-style
# evaluation, reloads the saved folder with transformers and runs lm_eval.
# make check uses the venv only when tests/interop/setup.sh has completed
# it (never creates it: that is minutes of downloads); `make interop`
# passes its python as BRIDGE_PYTHON and then every part must run.
. "${top_srcdir:-.}/tests/cli/lib.sh"

: "${BUILTIN_PLUGIN_DIR:?BUILTIN_PLUGIN_DIR must point at the built plugins}"
AMALGAM_PLUGIN_SYSTEM_PATH=$BUILTIN_PLUGIN_DIR
export AMALGAM_PLUGIN_SYSTEM_PATH AMALGAM
C="${top_srcdir:-.}/contrib/llm_merging"

setup="${top_srcdir:-.}/tests/interop/setup.sh"
# setup.sh's own place for the venv: root/<hash of requirements.txt>
root=${AMALGAM_INTEROP_VENV:-${HOME:-/tmp}/.cache/amalgam/interop-venv}
key=$(sha256sum "${top_srcdir:-.}/tests/interop/requirements.txt" |
      cut -c1-16)
if [ -n "${BRIDGE_PYTHON:-}" ]; then
    PY=$BRIDGE_PYTHON
    AMALGAM_BRIDGE_FULL=1
    export AMALGAM_BRIDGE_FULL
    echo "using $PY (make interop): every part must run"
elif [ -f "$root/$key/.complete" ] && PY=$(sh "$setup" 2>/dev/null); then
    echo "using the interop venv $root/$key"
else
    PY=${PYTHON:-}
    echo "no complete interop venv at $root/$key: the bridge's merge and" \
        "save_model only"
fi
if [ -z "$PY" ]; then echo "skip: no Python"; exit 77; fi
# the torch part must find nothing on the Hub: all of it is local
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
HF_HOME="$T/hf" TQDM_DISABLE=1
export HF_HUB_OFFLINE HF_DATASETS_OFFLINE TRANSFORMERS_OFFLINE HF_HOME \
    TQDM_DISABLE

cp -R "$C/kit_standin" "$T/kit"
cp "$C/AmalgamMerge.py" "$T/kit/llm_merging/merging/"
expect_rc 0 "a tiny f32 family" \
    "$AMALGAM" synth --family "$T/fam" --experts 2 --dtype f32
cat >"$T/p.yaml" <<'EOF'
merge_method: ties
base_model: fam/base
models:
  - model: fam/expert-1
    parameters: {weight: 0.6, density: 0.5}
  - model: fam/expert-2
    parameters: {weight: 0.4, density: 0.5}
tokenizer_source: base
EOF
mkdir "$T/work"
expect_rc 0 "the bridge merges, evaluates and saves" \
    "$PY" "${top_srcdir:-.}/tests/py/check_bridge.py" "$T/kit" "$T/work" \
    "$T/p.yaml" "$T/fam/base"
sed 's/^/    /' "$T/out"
finish
