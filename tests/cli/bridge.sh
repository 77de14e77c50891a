#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The LLM-Merging bridge (contrib/llm_merging/AmalgamMerge.py) copied into
# the stand-in kit, as a competitor copies it into the real one, merging a
# tiny local family. With the interop venv it also runs the kit-style
# evaluation, reloads the saved folder with transformers and runs lm_eval.
. "${top_srcdir:-.}/tests/cli/lib.sh"

: "${BUILTIN_PLUGIN_DIR:?BUILTIN_PLUGIN_DIR must point at the built plugins}"
AMALGAM_PLUGIN_SYSTEM_PATH=$BUILTIN_PLUGIN_DIR
export AMALGAM_PLUGIN_SYSTEM_PATH AMALGAM
C="${top_srcdir:-.}/contrib/llm_merging"

venv=${AMALGAM_INTEROP_VENV:-$HOME/.cache/amalgam/interop-venv}
if [ -x "$venv/bin/python" ]; then
    PY=$venv/bin/python
    echo "using the interop venv $venv"
else
    PY=${PYTHON:-}
    echo "no interop venv at $venv: the bridge's merge and save_model only"
fi
if [ -z "$PY" ]; then echo "skip: no Python"; exit 77; fi

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
