# SPDX-License-Identifier: Apache-2.0
"""The LLM-Merging bridge, driven the way the kit's main.py drives a
method: construct it by name, merge(), evaluate, save_model(DIR).

    check_bridge.py KIT_DIR WORK_DIR PIPELINE FAMILY_BASE

KIT_DIR is a copy of the stand-in kit with AmalgamMerge.py copied into
llm_merging/merging/. Without torch it checks the merge and save_model
(standard library only); with torch, transformers and tokenizers it also
loads the merged model the kit's way, runs multiple choice and
generation, reloads save_model's folder with transformers and compares
logits; with lm_eval and tests/interop/tasks it runs the tiny task.
Prints ok/FAIL/skip lines; exits 1 on any failure. With
AMALGAM_BRIDGE_FULL=1 (set by `make interop`) a skipped part is a failure.
"""
import filecmp
import os
import subprocess
import sys

fails = 0


def check(cond, what):
    global fails
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        fails += 1


def skip(what):
    if os.environ.get("AMALGAM_BRIDGE_FULL") == "1":
        check(False, what + " (AMALGAM_BRIDGE_FULL=1: must run)")
    else:
        print("skip: " + what)


def have(*mods):
    try:
        for m in mods:
            __import__(m)
    except ImportError:
        return False
    return True


def tiny_tokenizer(folder, vocab):
    """A word-level tokenizer of exactly `vocab` entries, saved as
    transformers does, so the merged folder carries one."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<s>", "</s>", "<unk>", "A", "B", "C", "D", "Answer:", "yes",
             "no", "the", "is"]
    words += ["w%d" % i for i in range(vocab - len(words))]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)},
                                    unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(folder)


def main(kit, work, pipeline, family_base):
    sys.path.insert(0, kit)
    from llm_merging.merging.AmalgamMerge import AmalgamMerge, AmalgamError

    full = have("torch", "transformers", "tokenizers")
    if full:
        tiny_tokenizer(family_base, 256)
    os.environ["AMALGAM_PIPELINE"] = pipeline
    os.environ["AMALGAM_OUT_DIR"] = os.path.join(work, "merged")
    os.environ["AMALGAM_ARGS"] = "-q"
    m = AmalgamMerge("amalgam")
    check(m.get_name() == "amalgam", "the method is constructed by name")

    if full:
        m.merge()
    else:
        m.run_amalgam()
    merged = os.environ["AMALGAM_OUT_DIR"]
    check(os.path.isfile(os.path.join(merged, "model.safetensors")),
          "amalgam wrote the merged model")

    save = os.path.join(work, "output", "amalgam")
    os.makedirs(save)
    with open(os.path.join(save, "safetensor.pt"), "w") as f:
        f.write("stale")
    m.save_model(save)
    names = sorted(n for n in os.listdir(merged)
                   if os.path.isfile(os.path.join(merged, n)))
    for n in ("config.json", "model.safetensors", "generation_config.json"):
        check(n in names, "save_model writes %s" % n)
    same = all(filecmp.cmp(os.path.join(merged, n), os.path.join(save, n),
                           shallow=False) for n in names)
    check(same, "save_model's %d files equal amalgam's byte for byte"
          % len(names))
    check(not os.path.exists(os.path.join(save, "safetensor.pt")),
          "save_model removes the kit's raw safetensor.pt")

    os.environ["AMALGAM_PIPELINE"] = os.path.join(work, "missing.yaml")
    os.environ["AMALGAM_OUT_DIR"] = os.path.join(work, "never")
    try:
        AmalgamMerge("bad").run_amalgam()
        check(False, "a missing pipeline raises AmalgamError")
    except AmalgamError as e:
        check("missing.yaml" in str(e) and "exit 1" in str(e),
              "a missing pipeline raises AmalgamError naming it: %s" % e)
    check(not os.path.exists(os.path.join(work, "never")),
          "a failed merge leaves no output folder")

    if not full:
        skip("kit-style evaluation, transformers reload and lm_eval "
             "(no torch/transformers/tokenizers; use the interop venv)")
        return
    evaluate(m, save, merged)


def evaluate(m, save, merged):
    import torch
    from transformers import AutoModelForCausalLM

    check(os.path.isfile(os.path.join(save, "tokenizer.json")),
          "save_model carries the tokenizer")
    batch = {"input": ["the A is", "the B is"],
             "answer_choices": [["yes", "no"], ["A", "B", "C"]]}
    preds, scores = m.predict_multiple_choice(batch)
    check(len(preds) == 2 and 0 <= preds[0] < 2 and 0 <= preds[1] < 3,
          "the kit's predict_multiple_choice runs on the merged model")
    check(all(max(s) == s[p] for p, s in zip(preds, scores)),
          "each prediction is its highest-scoring choice")
    m.max_gen_len = 4
    texts = m.generate({"input": ["the A is"]})
    check(len(texts) == 1 and isinstance(texts[0], str),
          "the kit's generate runs on the merged model")

    again = AutoModelForCausalLM.from_pretrained(save)
    ids = torch.tensor([[0, 3, 4, 5, 6]])
    with torch.no_grad():
        a = again(input_ids=ids).logits.float()
        b = m.base_model.to("cpu")(input_ids=ids).logits.float()
    check(torch.equal(a, b), "transformers loads save_model's folder and "
          "gives the bridge's logits exactly")

    tasks = os.path.abspath(os.path.join(os.environ.get("top_srcdir", "."),
                                         "tests", "interop", "tasks"))
    if not (have("lm_eval") and os.path.isdir(tasks)):
        skip("lm_eval on the tiny task (needs lm_eval and "
             "tests/interop/tasks)")
        return
    task = sorted(f[:-5] for f in os.listdir(tasks) if f.endswith(".yaml"))[0]
    r = subprocess.run([sys.executable, "-m", "lm_eval", "--model", "hf",
                        "--model_args", "pretrained=" + save, "--tasks", task,
                        "--include_path", tasks, "--device", "cpu",
                        "--batch_size", "2"], capture_output=True, text=True,
                       cwd=tasks)   # the task's data_files are relative
    check(r.returncode == 0 and "acc" in r.stdout,
          "lm_eval --model hf runs task '%s' on save_model's folder" % task)
    for line in r.stdout.splitlines():
        if line.startswith("|" + task):
            print("    " + line)
    if r.returncode != 0:
        print(r.stdout[-2000:] + r.stderr[-2000:])


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.stderr.write(__doc__)
        sys.exit(2)
    main(*sys.argv[1:])
    sys.exit(1 if fails else 0)
