# SPDX-License-Identifier: Apache-2.0
"""Tiny random models for the interop suite, written by transformers itself.

For each architecture: a base and three fine-tune-like variants
ft_i = base + shared + own_i (task vectors with a common part, as real
fine-tunes of one base have), each saved in f32 and bf16, in one file and
sharded. The values are drawn in f32 and rounded once, so the bf16 set is
the f32 set rounded. A byte-level BPE tokenizer trained here (no Hub) is
saved beside every model, so `--copy-tokenizer` and lm_eval find one.

usage: build_models.py WORKDIR
"""
import os
import sys

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

VOCAB = 384
SPECIALS = ["<pad>", "</s>", "<unk>", "<s>"]   # ids 0..3: T5 wants pad 0, eos 1
SHARD = "60KB"   # splits every tiny model into several shards

# architecture -> (config class, auto class name, extra config keys)
ARCHS = {
    "llama": ("LlamaConfig", "AutoModelForCausalLM", {}),
    "mistral": ("MistralConfig", "AutoModelForCausalLM", {"sliding_window": None}),
    "gemma": ("GemmaConfig", "AutoModelForCausalLM", {"head_dim": 16}),
    "qwen2": ("Qwen2Config", "AutoModelForCausalLM", {}),
    "t5": ("T5Config", "AutoModelForSeq2SeqLM", {}),
}

CORPUS = """\
The capital of France is Paris. Water boils at one hundred degrees.
A triangle has three sides and a square has four. Question: Answer:
The sun is a star. Plants take in carbon dioxide and give out oxygen.
Seven times eight is fifty six. The heart pumps blood around the body.
Which of the following is correct? A. B. C. D. true false number
"""


def build_tokenizer(path):
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS.splitlines() * 4, trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
        unk_token="<unk>", bos_token="<s>")
    fast.save_pretrained(path)
    return fast


def make_config(arch):
    cls, _, extra = ARCHS[arch]
    common = dict(vocab_size=VOCAB, pad_token_id=0, eos_token_id=1)
    if arch == "t5":
        kw = dict(d_model=64, d_kv=16, d_ff=128, num_layers=2,
                  num_decoder_layers=2, num_heads=4, decoder_start_token_id=0,
                  relative_attention_num_buckets=8, tie_word_embeddings=False,
                  feed_forward_proj="gated-gelu")   # flan-t5's layout
    else:
        kw = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=128, bos_token_id=3,
                  tie_word_embeddings=(arch == "gemma"))
    kw.update(common)
    kw.update(extra)
    return getattr(transformers, cls)(**kw)


def variants(base_sd, seed):
    """base + shared + own_i for i = 1..3; scales well above bf16's ulp."""
    g = torch.Generator().manual_seed(seed)
    shared, out = {}, []
    for k, v in base_sd.items():
        shared[k] = torch.randn(v.shape, generator=g) * 0.01
    for _ in range(3):
        sd = {}
        for k, v in base_sd.items():
            own = torch.randn(v.shape, generator=g) * 0.01
            sd[k] = v + shared[k] + own
        out.append(sd)
    return out


def save(arch, cfg, sd, tok, path, dtype, sharded):
    auto = getattr(transformers, ARCHS[arch][1])
    model = auto.from_config(cfg)
    model.load_state_dict(sd, strict=False)
    model = model.to(dtype)
    model.config.dtype = dtype
    kw = {"max_shard_size": SHARD} if sharded else {"max_shard_size": "1GB"}
    model.save_pretrained(path, **kw)
    tok.save_pretrained(path)


def main():
    work = sys.argv[1]
    tok = build_tokenizer(os.path.join(work, "tokenizer"))
    for n, arch in enumerate(ARCHS):
        torch.manual_seed(1000 + n)
        cfg = make_config(arch)
        auto = getattr(transformers, ARCHS[arch][1])
        base = auto.from_config(cfg).float()
        base_sd = {k: v.detach().clone() for k, v in base.state_dict().items()}
        sets = [("base", base_sd)] + [
            ("ft%d" % (i + 1), sd) for i, sd in enumerate(variants(base_sd, 77 + n))]
        for dname, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
            for sharded in (False, True):
                storage = dname + ("-sharded" if sharded else "")
                for name, sd in sets:
                    path = os.path.join(work, "models", arch, storage, name)
                    save(arch, cfg, sd, tok, path, dtype, sharded)
        print("built %s: base + 3 variants, f32/bf16, sharded and not" % arch)


if __name__ == "__main__":
    main()
