# SPDX-License-Identifier: Apache-2.0
"""amalgam's LoRA fold against PEFT's own merge_and_unload.

Tiny random models written by transformers, adapters made by peft's
get_peft_model and saved by save_pretrained (lora_B is zero at init, so
every factor is redrawn first: a fold of zeros proves nothing). For each
adapter kind and dtype, PEFT's PeftModel.from_pretrained(base, adapter)
.merge_and_unload() is saved and compared tensor by tensor with
`amalgam merge` of a linear weight-1 pipeline over `base+adapter`.

Kinds: plain; rslora (alpha/sqrt(r)); patterns (rank_pattern and
alpha_pattern, rsLoRA off); embed (embed_tokens LoRA beside q_proj);
fifo: fan_in_fan_out on GPT-2, whose c_attn/c_proj/c_fc are Conv1D with
[in, out] weights - the layout the flag is for. (On nn.Linear PEFT warns
and resets the flag to False, so a Llama "fan_in_fan_out" adapter would
test nothing.) Dtypes: f32 model; bf16 model with PEFT's default f32
adapter (autocast_adapter_dtype upcasts it); bf16 model with a bf16
adapter (autocast_adapter_dtype=False).

How the two compute, per element, d = scale * sum_k B[i,k] A[k,j]:
- PEFT on the cpu (lora/layer.py get_delta_weight): bf16 factors are
  cast to f32; B @ A is an f32 sgemm (blocked, FMA); times scale in f32;
  rounded to the adapter dtype; then `weight.data += delta` - for a bf16
  weight and f32 delta torch adds in f32 and rounds once to bf16.
- amalgam (host/lora.c): the same f32 product as a sequential sum over k
  without FMA, times the same f32 scale, rounded to lora_B's dtype, added
  to the f32 weight, rounded once to the output dtype.
So the order of rounding is the same and only the rank-r f32 sum differs.
Both sums are within r*u*S of the exact one (u = 2^-24, S = sum_k |B A|),
hence within 2*r*u*S of each other; scaling and the final add each add at
most one rounding of u*|value| per side. Tolerances:
- f32: |amalgam - peft| <= 2*(r+2)*u*(|W| + scale*S) for every element
  (float64 bound; reported as the largest ratio to it and in f32 ulps of
  the result);
- bf16: within 1 bf16 ulp of the result (an f32 difference of a few u
  can move one bf16 rounding, never two), and fewer than 1% of the
  elements of any tensor differ at all.
- except embedding LoRA with an f32 adapter on a bf16 model: PEFT's
  Embedding.merge rounds the update to the weight's bf16 *before* adding
  (bf16(W + bf16(d))) where amalgam rounds once (bf16(W + d)), so many
  elements differ; the bound is 1.5 bf16 ulps of the largest of |W|,
  |update| and the results (half an ulp per rounding).
Tensors with no LoRA must be bit-identical. Prints a table (kind x dtype
-> max ulp difference, elements differing) and exits 1 on any failure.

usage: lora_peft.py --amalgam PATH --work DIR
"""
import argparse
import os
import shutil
import subprocess
import sys
import warnings

import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model

import common

U = 2.0 ** -24
LLAMA_MLP = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
             "down_proj"]
KINDS = {
    "plain": ("llama", dict(r=4, lora_alpha=8, target_modules=LLAMA_MLP)),
    "rslora": ("llama", dict(r=8, lora_alpha=6, use_rslora=True,
                             target_modules=LLAMA_MLP)),
    "patterns": ("llama", dict(
        r=4, lora_alpha=8, target_modules=LLAMA_MLP,
        rank_pattern={"v_proj": 2, "layers.1.self_attn.q_proj": 6},
        alpha_pattern={"q_proj": 3, "down_proj": 5})),
    "embed": ("llama", dict(r=4, lora_alpha=4,
                            target_modules=["embed_tokens", "q_proj"])),
    "fifo": ("gpt2", dict(r=4, lora_alpha=8, fan_in_fan_out=True,
                          target_modules=["c_attn", "c_proj", "c_fc"])),
}
DTYPES = {"f32": (torch.float32, True), "bf16": (torch.bfloat16, True),
          "bf16-adapter": (torch.bfloat16, False)}
fails = 0


def fail(msg):
    global fails
    fails += 1
    print("FAIL " + msg)


def base_model(arch, folder, dtype):
    torch.manual_seed(11)
    if arch == "llama":
        cfg = transformers.LlamaConfig(
            vocab_size=384, hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=128, tie_word_embeddings=False)
    else:
        cfg = transformers.GPT2Config(vocab_size=384, n_embd=64, n_layer=2,
                                      n_head=4, n_positions=128)
    # drawn in f32 and rounded once, so the bf16 base is the f32 one rounded
    m = transformers.AutoModelForCausalLM.from_config(cfg).float().to(dtype)
    m.config.dtype = dtype
    m.save_pretrained(folder)


def make_adapter(base_dir, out, dtype, autocast, kw):
    base = transformers.AutoModelForCausalLM.from_pretrained(base_dir,
                                                             dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = get_peft_model(base, LoraConfig(**kw),
                            autocast_adapter_dtype=autocast)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                # |B A| entries near |W|'s 0.02: the update matters
                p.copy_(torch.randn(p.shape, generator=g) * 0.12)
    # PEFT's "auto" would also save the whole base embedding as
    # embed_tokens.base_layer.weight (for resized vocabularies), which
    # amalgam refuses as not a LoRA factor; the fold is what is tested here
    pm.save_pretrained(out, save_embedding_layers=False)
    want = torch.float32 if autocast else dtype
    got = {p.dtype for n, p in pm.named_parameters() if "lora_" in n}
    return got == {want}


def peft_merge(base_dir, adapter, out, dtype, autocast):
    base = transformers.AutoModelForCausalLM.from_pretrained(base_dir,
                                                             dtype=dtype)
    pm = PeftModel.from_pretrained(base, adapter,
                                   autocast_adapter_dtype=autocast)
    info = {}
    for name, mod in pm.named_modules():
        if isinstance(getattr(mod, "scaling", None), dict) and \
                "default" in mod.scaling:
            key = name.replace("base_model.model.", "", 1) + ".weight"
            a = (mod.lora_A["default"].weight if "default" in mod.lora_A
                 else mod.lora_embedding_A["default"])
            b = (mod.lora_B["default"].weight if "default" in mod.lora_B
                 else mod.lora_embedding_B["default"])
            info[key] = (a.detach().double(), b.detach().double(),
                         float(mod.scaling["default"]),
                         bool(getattr(mod, "fan_in_fan_out", False))
                         or "default" in mod.lora_embedding_A,
                         "default" in mod.lora_embedding_A,
                         a.dtype == torch.float32)
    merged = pm.merge_and_unload()
    merged.save_pretrained(out)
    return info


def run_amalgam(amalgam, base_dir, adapter, out, dname):
    y = out + ".yaml"
    with open(y, "w") as f:
        f.write("merge_method: linear\nmodels:\n  - model: %s+%s\n"
                "    parameters: {weight: 1.0}\n" % (base_dir, adapter))
    r = subprocess.run([amalgam, "merge", y, out, "--force", "-q",
                        "--out-dtype", "f32" if dname == "f32" else "bf16"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
    return r.returncode == 0


def ulps(a, p, w, d, mant):
    """|a - p| in ulps (format of `mant` bits) of the largest of |a|, |p|,
    |w| and d: where W + update cancels, the result's own ulp is far below
    the rounding both tools did on the way, so f32 is measured against the
    terms; bf16 passes a and p, both values of the format."""
    mag = torch.maximum(torch.maximum(a.abs(), p.abs()),
                        torch.maximum(w.abs(), d)).clamp_min(2.0 ** -126)
    _, e = torch.frexp(mag)
    return (a - p).abs() / torch.ldexp(torch.ones_like(mag), e - mant)


def compare(label, base, am, pe, info, dname, perturb=1.0):
    """Worst (ulps, bound ratio, differing fraction); fails on any breach."""
    worst = [0.0, 0.0, 0.0]
    ok = True
    if set(am) != set(pe) - {"lm_head.weight"} and set(am) != set(pe):
        fail("%s: tensor names differ: amalgam %s, peft %s" % (
            label, sorted(set(am) - set(pe))[:3], sorted(set(pe) - set(am))[:3]))
        return worst, False
    for k in sorted(am):
        a, p, w = am[k].double(), pe[k].double(), base[k].double()
        if perturb != 1.0 and k in info:
            a = w + (a - w) * perturb
        if k not in info:
            if not torch.equal(a, p):
                fail("%s: %s has no LoRA but differs from peft" % (label, k))
                ok = False
            continue
        if torch.equal(a, w):
            fail("%s: %s was not changed by the fold" % (label, k))
            ok = False
        A, B, scale, tr, emb, upd_f32 = info[k]
        S = B.abs() @ A.abs()
        if tr:
            S = S.t()
        d = (a - p).abs()
        frac = float((d > 0).double().mean())
        worst[2] = max(worst[2], frac)
        if dname == "f32":
            r = A.shape[0]
            bound = 2 * (r + 2) * U * (w.abs() + scale * S)
            ratio = float((d / bound).max())
            worst[1] = max(worst[1], ratio)
            if ratio > 1.0:
                if perturb == 1.0:
                    fail("%s: %s: |diff| %.3g is %.2fx the bound" % (
                        label, k, float(d.max()), ratio))
                ok = False
            u = float(ulps(a, p, w, scale * S, 24).max())
        elif emb and upd_f32:
            # PEFT's Embedding.merge rounds the f32 update to the weight's
            # bf16 before adding (two roundings); amalgam adds it in f32
            # and rounds once: |a - p| <= ulp(upd)/2 + ulp(a)/2 + ulp(p)/2
            delta = (p - w).abs()
            u = float(ulps(a, p, w, delta, 8).max())
            if u > 1.5:
                if perturb == 1.0:
                    fail("%s: %s: %.1f bf16 ulps of the terms (> 1.5)"
                         % (label, k, u))
                ok = False
        else:
            u = float(ulps(a, p, a, p, 8).max())
            if u > 1.0 or frac >= 0.01:
                if perturb == 1.0:
                    fail("%s: %s: %.1f bf16 ulps, %.2f%% of elements differ"
                         % (label, k, u, 100 * frac))
                ok = False
        worst[0] = max(worst[0], u)
    return worst, ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--amalgam", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    work = os.path.abspath(args.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    transformers.logging.set_verbosity_error()

    print("lora-peft: %-8s %-12s %9s %9s %9s" % (
        "kind", "dtype", "max ulp", "/bound", "differ"))
    for kind, (arch, kw) in KINDS.items():
        for dname, (dtype, autocast) in DTYPES.items():
            label = "%s %s" % (kind, dname)
            d = os.path.join(work, kind, dname)
            bdir = os.path.join(work, "base-%s-%s" % (
                arch, "f32" if dname == "f32" else "bf16"))
            if not os.path.isdir(bdir):
                base_model(arch, bdir, dtype)
            adapter = os.path.join(d, "adapter")
            if not make_adapter(bdir, adapter, dtype, autocast, kw):
                fail("%s: peft made the adapter in an unexpected dtype"
                     % label)
                continue
            info = peft_merge(bdir, adapter, os.path.join(d, "peft"), dtype,
                              autocast)
            if not run_amalgam(args.amalgam, bdir, adapter,
                               os.path.join(d, "amalgam"), dname):
                fail("%s: amalgam merge failed" % label)
                continue
            base = common.load_tensors(bdir)
            am = common.load_tensors(os.path.join(d, "amalgam"))
            pe = common.load_tensors(os.path.join(d, "peft"))
            if not info:
                fail("%s: peft reports no LoRA modules" % label)
                continue
            worst, ok = compare(label, base, am, pe, info, dname)
            print("lora-peft: %-8s %-12s %9.2f %9s %8.3f%% %s" % (
                kind, dname, worst[0],
                "%.3f" % worst[1] if dname == "f32" else "-",
                100 * worst[2], "ok" if ok else "FAIL"))
            # the comparison must see an update 1% too large
            if kind == "plain":
                _, caught = compare(label, base, am, pe, info, dname,
                                    perturb=1.01)
                if caught:
                    fail("%s: an update 1%% too large passes" % label)
                else:
                    print("lora-peft: ok: an update 1%% too large is caught "
                          "(%s)" % dname)
    print("lora-peft: %s" % ("%d failure(s)" % fails if fails else "all ok"))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
