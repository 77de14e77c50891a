# SPDX-License-Identifier: Apache-2.0
"""Diagonal empirical Fisher of a Hugging Face causal LM, for amalgam's
`fisher` strategy.

For each example: one forward and backward pass of the mean next-token
negative log-likelihood over its tokens (or of the last token's alone with
--last-token), the gradient squared element by element and summed in f32;
at the end the sum is divided by the number of examples used. That is

    F = (1/N) * sum_n (grad_theta NLL_n)^2

with the true next tokens as labels ("empirical" Fisher). The file holds
one f32 tensor per trainable parameter, named as in the model's own
checkpoint (a tied lm_head / embedding pair is written once, under the
name the checkpoint uses), so `fisher: FILE` on the model's pipeline entry
matches it tensor by tensor. See contrib/fisher/README.md.

usage: compute_fisher.py MODEL OUTPUT (--data FILE.jsonl | --dataset NAME)
       [--max-examples N] [--max-length T] [--last-token]
       [--device DEV] [--dtype float32|bfloat16|float16]
"""
import argparse
import glob
import json
import os
import sys
import time

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16,
          "float16": torch.float16}


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Diagonal empirical Fisher of a causal LM, written as "
                    "safetensors for amalgam's fisher strategy.")
    ap.add_argument("model", help="model folder or Hub id (org/name)")
    ap.add_argument("output", help="a .safetensors path, or a folder to "
                                   "write fisher.safetensors in")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help='JSONL file, one {"text": ...} per line')
    src.add_argument("--dataset", help="a `datasets` dataset name")
    ap.add_argument("--dataset-config", help="the dataset's configuration")
    ap.add_argument("--split", default="train", help="dataset split (train)")
    ap.add_argument("--text-field", default="text",
                    help="field holding the text (text)")
    ap.add_argument("--max-examples", type=int, default=1000,
                    help="examples to use (1000)")
    ap.add_argument("--max-length", type=int, default=512,
                    help="tokens per example, longer ones truncated (512)")
    ap.add_argument("--last-token", action="store_true",
                    help="only the last token's NLL, as MergeBench does "
                         "(token_positions last)")
    ap.add_argument("--device", default=None,
                    help="cuda if available, else cpu")
    ap.add_argument("--dtype", default="float32", choices=sorted(DTYPES),
                    help="dtype the model is loaded and run in (float32)")
    ap.add_argument("--revision", default=None, help="Hub revision")
    a = ap.parse_args(argv)
    if a.max_examples < 1:
        ap.error("--max-examples must be at least 1")
    if a.data and not os.path.isfile(a.data):
        ap.error("cannot read data file '%s': no such file" % a.data)
    if a.max_length < 2:
        ap.error("--max-length must be at least 2: a next token needs one "
                 "token before it")
    return a


def jsonl_texts(path, field):
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit("error: %s:%d: not JSON: %s" % (path, n, e))
            if not isinstance(rec, dict) or not isinstance(rec.get(field), str):
                sys.exit("error: %s:%d: no string field '%s'" % (path, n, field))
            yield rec[field]


def dataset_texts(a):
    try:
        import datasets
    except ImportError:
        sys.exit("error: --dataset needs the `datasets` package; "
                 "pip install datasets, or give --data FILE.jsonl")
    ds = datasets.load_dataset(a.dataset, a.dataset_config, split=a.split,
                               streaming=True)
    for rec in ds:
        text = rec.get(a.text_field)
        if not isinstance(text, str):
            sys.exit("error: dataset %s has no string field '%s'; choose one "
                     "with --text-field" % (a.dataset, a.text_field))
        yield text


def checkpoint_names(model_ref, revision):
    """Tensor names in the model's safetensors checkpoint (empty if none)."""
    folder = model_ref
    if not os.path.isdir(folder):
        from huggingface_hub import snapshot_download
        # from_pretrained fetched these already: a cache hit, no download
        folder = snapshot_download(model_ref, revision=revision,
                                   allow_patterns=["*.safetensors", "*.json"])
    from safetensors import safe_open
    names = set()
    for f in glob.glob(os.path.join(folder, "*.safetensors")):
        with safe_open(f, framework="pt") as st:
            names.update(st.keys())
    return names


def fisher_names(model, ckpt):
    """(name, parameter) per distinct trainable parameter, named as the
    checkpoint names it: of the aliases a tied parameter has in the model
    (lm_head.weight and model.embed_tokens.weight), the one saved."""
    groups = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if p.requires_grad:
            groups.setdefault(id(p), (p, []))[1].append(name)
    out, unmatched = [], []
    for p, names in groups.values():
        hit = [n for n in names if n in ckpt]
        if hit:
            out.append((hit[0], p))
        elif ckpt:
            unmatched.append(names[0])
        else:
            out.append((names[0], p))
    if unmatched:
        print("warning: %d parameters have no tensor of that name in the "
              "checkpoint and are left out: %s" % (
                  len(unmatched), ", ".join(unmatched[:5])), file=sys.stderr)
    if not out:
        sys.exit("error: no parameter of the model matches a tensor name of "
                 "its checkpoint")
    return out


def example_loss(model, ids, last_token):
    """Mean next-token NLL of one example (or its last token's)."""
    if last_token:
        logits = model(input_ids=ids).logits[0, -2].float()
        return torch.nn.functional.cross_entropy(logits[None], ids[0, -1:])
    return model(input_ids=ids, labels=ids).loss


def accumulate(model, tok, texts, params, a, device):
    acc = [torch.zeros(p.shape, dtype=torch.float32, device=device)
           for _, p in params]
    n = skipped = 0
    t0 = time.time()
    for text in texts:
        if n >= a.max_examples:
            break
        ids = tok(text, return_tensors="pt", truncation=True,
                  max_length=a.max_length).input_ids.to(device)
        if ids.shape[1] < 2:
            skipped += 1
            continue
        model.zero_grad(set_to_none=True)
        loss = example_loss(model, ids, a.last_token)
        if not torch.isfinite(loss):
            sys.exit("error: example %d gives a non-finite loss; try "
                     "--dtype float32" % (n + skipped + 1))
        loss.backward()
        for f, (_, p) in zip(acc, params):
            if p.grad is not None:
                f.add_(p.grad.float().square())
        n += 1
        if n % 50 == 0:
            print("%d examples, %.1f s" % (n, time.time() - t0), file=sys.stderr)
    if n == 0:
        sys.exit("error: no usable example (each needs at least 2 tokens)")
    if skipped:
        print("skipped %d examples shorter than 2 tokens" % skipped,
              file=sys.stderr)
    for f in acc:
        f.div_(n)
    return acc, n


def main(argv=None):
    a = parse_args(argv)
    import transformers
    from safetensors.torch import save_file
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = transformers.AutoModelForCausalLM.from_pretrained(
        a.model, dtype=DTYPES[a.dtype], revision=a.revision).to(device)
    model.eval()   # no dropout: the Fisher of the model as it predicts
    tok = transformers.AutoTokenizer.from_pretrained(a.model,
                                                     revision=a.revision)
    params = fisher_names(model, checkpoint_names(a.model, a.revision))
    texts = (jsonl_texts(a.data, a.text_field) if a.data
             else dataset_texts(a))
    acc, n = accumulate(model, tok, texts, params, a, device)

    out = a.output
    if not out.endswith(".safetensors"):
        os.makedirs(out, exist_ok=True)
        out = os.path.join(out, "fisher.safetensors")
    tensors = {name: f.cpu().contiguous() for (name, _), f in zip(params, acc)}
    meta = {"format": "pt", "estimator": "empirical", "n_examples": str(n),
            "reduction": "mean_over_examples",
            "token_positions": "last" if a.last_token else "all",
            "model": a.model, "model_dtype": a.dtype,
            "max_length": str(a.max_length),
            "data": a.data or a.dataset}
    save_file(tensors, out, metadata=meta)
    print("wrote %s: %d tensors, %d examples" % (out, len(tensors), n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
