#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# run.sh BUILDDIR - the interop suite (`make interop`): tiny random models
# built by transformers, every strategy amalgam shares with mergekit run
# through both and compared, every output loaded by transformers, then
# lm_eval on one merged decoder. Exits 77 (one SKIP line) only when the
# Python packages cannot be installed; 1 on any failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: run.sh BUILDDIR}" && pwd)
amalgam="$build/amalgam"
[ -x "$amalgam" ] || { echo "error: no amalgam in '$build'; run make first" >&2; exit 1; }

python=$(sh "$here/setup.sh")
rc=$?
[ $rc -eq 0 ] || exit $rc

work="$build/tests/interop-work"
rm -rf "$work"
mkdir -p "$work" || exit 1
# nothing may come from the Hub: models, tokenizer and task data are local
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
HF_HOME="$work/hf" TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
PYTHONDONTWRITEBYTECODE=1
AMALGAM_PLUGIN_SYSTEM_PATH="$build/plugins/.libs"
export HF_HUB_OFFLINE HF_DATASETS_OFFLINE TRANSFORMERS_OFFLINE HF_HOME \
    TQDM_DISABLE HF_HUB_DISABLE_PROGRESS_BARS AMALGAM_PLUGIN_SYSTEM_PATH \
    PYTHONDONTWRITEBYTECODE

echo "interop: python $python"
"$python" "$here/build_models.py" "$work" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log"; echo "error: building the test models failed" >&2; exit 1; }
grep '^built' "$work/build.log"

status=0
"$python" "$here/suite.py" --amalgam "$amalgam" --work "$work" 2>"$work/suite.err" ||
    { status=1; tail -20 "$work/suite.err"; }
# contrib/fisher's script against an independent Fisher, then its files
# through the fisher strategy against float64
"$python" "$here/fisher_check.py" --amalgam "$amalgam" --work "$work/fisher" \
    2>"$work/fisher.err" || { status=1; tail -20 "$work/fisher.err"; }

# lm_eval through its own CLI on a merged decoder, the way users run it
merged="$work/runs/llama-f32-sharded-linear/amalgam"
if [ -d "$merged" ]; then
    echo "lm_eval on $merged:"
    if (cd "$here/tasks" && "$python" -m lm_eval --model hf \
            --model_args "pretrained=$merged,dtype=float32" \
            --tasks amalgam_mc --include_path "$here/tasks" \
            --device cpu --limit 8 --batch_size 4) >"$work/lm_eval.log" 2>&1 &&
        grep '|amalgam_mc' "$work/lm_eval.log"; then
        :
    else
        tail -30 "$work/lm_eval.log"
        echo "FAIL lm_eval on the merged model (see $work/lm_eval.log)"
        status=1
    fi
else
    echo "FAIL lm_eval: no merged model at $merged"
    status=1
fi

# amalgam's LoRA fold against PEFT's merge_and_unload (kinds x dtypes)
"$python" "$here/lora_peft.py" --amalgam "$amalgam" --work "$work/lora" \
    2>"$work/lora.err" || { status=1; tail -20 "$work/lora.err"; }
# the LLM-Merging bridge end to end with this python: none of it may skip
echo "bridge (tests/cli/bridge.sh):"
if BRIDGE_PYTHON=$python AMALGAM=$amalgam top_srcdir=$(cd "$here/../.." && pwd) \
        BUILTIN_PLUGIN_DIR="$build/plugins/.libs" \
        sh "$here/../cli/bridge.sh" >"$work/bridge.log" 2>&1; then
    grep -E '^ *(ok|FAIL|skip)|\|amalgam_mc' "$work/bridge.log"
else
    cat "$work/bridge.log"
    echo "FAIL the LLM-Merging bridge (see $work/bridge.log)"
    status=1
fi
exit $status
