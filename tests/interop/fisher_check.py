# SPDX-License-Identifier: Apache-2.0
"""contrib/fisher/compute_fisher.py and the `fisher` strategy end to end.

On a tiny random Llama with tied embeddings (saved by transformers):
1. compute_fisher.py's file, for all positions and for --last-token, is
   compared tensor by tensor with a reference computed here another way:
   per-example gradients from torch.func.grad over functional_call, the
   NLL taken from float64 log_softmax by hand, squares summed in float64.
   Tolerance: |script - reference| <= 1e-5 * max|reference| per tensor
   (both square the same f32 gradients; what differs is the loss's
   rounding, the backward's summation order and the f32 accumulator).
   Names must be exactly the checkpoint's (lm_head.weight, tied, absent),
   f32, same shapes, and the metadata must say what was computed.
2. Two fine-tune-like variants get their own Fishers (different data) and
   are merged by `amalgam merge` with the fisher strategy (weights 0.7 and
   0.3, default epsilon 1e-6 added). Every output element is compared
   with float64 numpy: sum c*(F+eps)*theta / sum c*(F+eps), summed in
   model order and rounded once to f32 -- the strategy's documented rule,
   so the limit is 0 f32 ulps. The output must also differ from the plain
   weighted average, or the Fisher would not have been used, and load in
   transformers with no missing or unexpected keys.

Prints PASS/FAIL lines and exits 1 on any failure.
usage: fisher_check.py --amalgam PATH --work DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import transformers
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

import build_models
import common

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "contrib", "fisher", "compute_fisher.py")
REL_TOL = 1e-5
EPS = 1e-6
WEIGHTS = (0.7, 0.3)

DATA = [
    "The capital of France is Paris.",
    "Water boils at one hundred degrees.",
    "",                  # no token: skipped
    "A",                 # one token: no next token, skipped
    "Seven times eight is fifty six. The heart pumps blood around the body.",
    "Question: Which of the following is correct? Answer: A",
]
DATA2 = [
    "Plants take in carbon dioxide and give out oxygen.",
    "A triangle has three sides and a square has four.",
    "The sun is a star. true false number",
]

failures = []


def check(ok, what):
    print("%s fisher: %s" % ("PASS" if ok else "FAIL", what))
    if not ok:
        failures.append(what)


def build(work, tok):
    cfg = transformers.LlamaConfig(
        vocab_size=build_models.VOCAB, hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=64, pad_token_id=0, eos_token_id=1,
        bos_token_id=3, tie_word_embeddings=True)
    torch.manual_seed(5)
    base = transformers.AutoModelForCausalLM.from_config(cfg).float()
    g = torch.Generator().manual_seed(9)
    sd = {k: v.detach().clone() for k, v in base.state_dict().items()}
    paths = []
    for i in (1, 2):
        m = transformers.AutoModelForCausalLM.from_config(cfg).float()
        m.load_state_dict({k: v + 0.02 * torch.randn(v.shape, generator=g)
                           for k, v in sd.items()})
        m.tie_weights()
        p = os.path.join(work, "ft%d" % i)
        m.save_pretrained(p)
        tok.save_pretrained(p)
        paths.append(p)
    return paths


def write_jsonl(path, texts):
    with open(path, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")


def run_script(model, data, out, *extra):
    r = subprocess.run([sys.executable, SCRIPT, model, out, "--data", data,
                        "--device", "cpu", "--max-length", "16", *extra],
                       capture_output=True, text=True)
    if r.returncode:
        sys.stderr.write(r.stdout + r.stderr)
    return r.returncode


def reference(model_dir, tok, texts, last_token):
    """float64 mean of squared per-example gradients, by torch.func."""
    model = transformers.AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32).eval()
    params = {k: v.detach() for k, v in model.named_parameters()}

    def nll(p, ids):
        logits = torch.func.functional_call(model, p, (ids,)).logits[0]
        logp = torch.log_softmax(logits.double(), dim=-1)
        tgt = ids[0, 1:]
        per_tok = -logp[:-1].gather(1, tgt[:, None])[:, 0]
        return per_tok[-1] if last_token else per_tok.mean()

    grad = torch.func.grad(nll)
    acc = {k: torch.zeros(v.shape, dtype=torch.float64) for k, v in params.items()}
    n = 0
    for t in texts:
        ids = tok(t, return_tensors="pt", truncation=True, max_length=16).input_ids
        if ids.shape[1] < 2:
            continue
        for k, gk in grad(params, ids).items():
            acc[k] += gk.double() ** 2
        n += 1
    return {k: v / n for k, v in acc.items()}, n


def compare_fisher(label, path, ref, n_ref, ckpt_dir, positions):
    got = load_file(path)
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
    want_names = set(load_file(os.path.join(ckpt_dir, "model.safetensors")))
    check(set(got) == want_names, "%s: tensor names are the checkpoint's (%d)"
          % (label, len(want_names)))
    check("lm_head.weight" not in got and "model.embed_tokens.weight" in got,
          "%s: the tied embedding is written once, as model.embed_tokens.weight"
          % label)
    expect = {"estimator": "empirical", "n_examples": str(n_ref),
              "reduction": "mean_over_examples", "token_positions": positions,
              "format": "pt"}
    bad = {k: meta.get(k) for k, v in expect.items() if meta.get(k) != v}
    check(not bad and meta.get("model") == ckpt_dir,
          "%s: metadata %s" % (label, bad or "as expected"))
    worst, where = 0.0, ""
    for k in sorted(want_names & set(got)):
        a, b = got[k], ref[k]
        if a.dtype != torch.float32 or a.shape != b.shape:
            check(False, "%s: %s is %s %s, want float32 %s" % (
                label, k, a.dtype, tuple(a.shape), tuple(b.shape)))
            continue
        scale = float(b.abs().max())
        rel = float((a.double() - b).abs().max()) / scale if scale else float(a.abs().max())
        if rel > worst:
            worst, where = rel, k
    check(worst <= REL_TOL, "%s: max |script - reference| / max|reference| = "
          "%.2g (limit %g, worst %s)" % (label, worst, REL_TOL, where))
    return got


def f32_ulps(a, b):
    """Largest distance in f32 ulps between two f32 arrays."""
    ia = a.view(np.int32).astype(np.int64)
    ib = b.view(np.int32).astype(np.int64)
    ia = np.where(ia < 0, -(ia & 0x7fffffff), ia)
    ib = np.where(ib < 0, -(ib & 0x7fffffff), ib)
    return int(np.abs(ia - ib).max()) if a.size else 0


def check_merge(amalgam, work, models, fishers):
    cfg = {"merge_method": "fisher", "dtype": "float32", "models": [
        {"model": m, "fisher": f, "parameters": {"weight": w}}
        for m, f, w in zip(models, fishers, WEIGHTS)]}
    yml = os.path.join(work, "merge.yml")
    with open(yml, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    out = os.path.join(work, "merged")
    r = subprocess.run([amalgam, "merge", yml, out, "--force", "-q"],
                       capture_output=True, text=True)
    check(r.returncode == 0, "amalgam merge with the fisher strategy exits 0%s"
          % ("" if r.returncode == 0 else ": " + r.stderr.strip()[-300:]))
    if r.returncode:
        return
    got = common.load_tensors(out)
    thetas = [common.load_tensors(m) for m in models]
    fs = [load_file(f) for f in fishers]
    check(set(got) == set(thetas[0]), "merged tensor names are the models'")
    worst = moved = total = 0
    for k in sorted(set(got) & set(thetas[0])):
        num = np.zeros(got[k].shape, dtype=np.float64)
        den = np.zeros(got[k].shape, dtype=np.float64)
        lin = np.zeros(got[k].shape, dtype=np.float64)
        for c, th, f in zip(WEIGHTS, thetas, fs):
            x = th[k].numpy().astype(np.float64)
            w = c * (f[k].numpy().astype(np.float64) + EPS)
            num += w * x
            den += w
            lin += c * x
        want = (num / den).astype(np.float32)
        mine = got[k].numpy()
        worst = max(worst, f32_ulps(mine, want))
        plain = (lin / sum(WEIGHTS)).astype(np.float32)
        moved += int((np.abs(mine.astype(np.float64) - plain) >
                      1e-3 * np.abs(plain) + 1e-7).sum())
        total += mine.size
    check(worst == 0, "merge equals float64 sum c*(F+eps)*theta / sum c*(F+eps) "
          "rounded to f32: max %d ulps (limit 0)" % worst)
    check(moved > total // 10, "the Fisher moves %d of %d elements away from "
          "the plain weighted average" % (moved, total))
    model, info = transformers.AutoModelForCausalLM.from_pretrained(
        out, dtype=torch.float32, output_loading_info=True)
    probs = {k: v for k, v in info.items() if v and k != "error_msgs"}
    check(not probs, "transformers loads the merged model: %s"
          % (probs or "no missing or unexpected keys"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--amalgam", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    work = os.path.abspath(args.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    tok = build_models.build_tokenizer(os.path.join(work, "tokenizer"))
    ft1, ft2 = build(work, tok)
    d1, d2 = os.path.join(work, "d1.jsonl"), os.path.join(work, "d2.jsonl")
    write_jsonl(d1, DATA)
    write_jsonl(d2, DATA2)

    f1, f1last = os.path.join(work, "f1.safetensors"), os.path.join(work, "f1last")
    f2 = os.path.join(work, "f2.safetensors")
    rcs = [run_script(ft1, d1, f1), run_script(ft1, d1, f1last, "--last-token"),
           run_script(ft2, d2, f2)]
    check(rcs == [0, 0, 0], "compute_fisher.py runs (exit codes %s)" % rcs)
    if rcs != [0, 0, 0]:
        return 1
    f1last = os.path.join(f1last, "fisher.safetensors")

    ref_all, n = reference(ft1, tok, DATA, False)
    check(n == 4, "reference uses the 4 examples of 2+ tokens (got %d)" % n)
    got_all = compare_fisher("all positions", f1, ref_all, n, ft1, "all")
    ref_last, n = reference(ft1, tok, DATA, True)
    got_last = compare_fisher("--last-token", f1last, ref_last, n, ft1, "last")
    k = "model.layers.0.mlp.down_proj.weight"
    rel = float((got_all[k] - got_last[k]).abs().max() / got_all[k].abs().max())
    check(rel > 100 * REL_TOL, "the two estimators differ (%s: %.2g relative)"
          % (k, rel))
    ref2, n = reference(ft2, tok, DATA2, False)
    compare_fisher("second model", f2, ref2, n, ft2, "all")

    check_merge(args.amalgam, work, [ft1, ft2], [f1, f2])
    print("%d fisher checks failed" % len(failures) if failures
          else "fisher: all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
