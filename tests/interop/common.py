# SPDX-License-Identifier: Apache-2.0
"""Reading model folders and measuring how far two of them are apart."""
import glob
import logging
import os
import warnings

import torch
from safetensors.torch import load_file


def load_tensors(folder):
    """Every tensor of a model folder, whatever its sharding."""
    out = {}
    for f in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        out.update(load_file(f))
    return out


def bf16_ulps(a, b):
    """Largest |a - b| in units of one bf16 ulp of max(|a|, |b|).

    A difference below 2^-20 of the tensor's largest value counts as 0:
    where a weighted sum cancels to (almost) nothing, each tool's f32
    rounding leaves a residue of about 2^-24 of the terms, which is noise
    relative to the tensor, not a disagreement about its values."""
    if a.numel() == 0:
        return 0.0
    a, b = a.double(), b.double()
    mag = torch.maximum(a.abs(), b.abs())
    floor = 2.0 ** -20 * float(mag.max())
    _, e = torch.frexp(mag.clamp_min(2.0 ** -126))
    ulp = torch.ldexp(torch.ones_like(mag), e - 8)
    d = (a - b).abs()
    d = torch.where(d <= floor, torch.zeros_like(d), d)
    return float((d / ulp).max())


class LogCapture(logging.Handler):
    """Collects what transformers logs at WARNING and above while loading."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())


def load_model(folder, auto_name):
    """Load as users do; return (model, tokenizer, key problems, messages).

    Key problems are transformers' own missing/unexpected/mismatched lists;
    messages are every warning logged or raised while loading, so a
    complaint about weights cannot slip past in a form we did not expect."""
    import transformers
    auto = getattr(transformers, auto_name)
    cap = LogCapture()
    tlog = logging.getLogger("transformers")
    tlog.addHandler(cap)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model, info = auto.from_pretrained(
                folder, dtype=torch.float32, output_loading_info=True)
            tok = transformers.AutoTokenizer.from_pretrained(folder)
    finally:
        tlog.removeHandler(cap)
    problems = []
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        if info.get(k):
            problems.append("%s: %s" % (k, sorted(map(str, info[k]))[:5]))
    msgs = cap.records + [str(w.message) for w in caught]
    return model.eval(), tok, problems, msgs


KEY_WORDS = ("missing", "unexpected", "not used", "newly initialized",
             "not initialized", "mismatch", "were not", "tied")


def key_warnings(msgs):
    return [m for m in msgs if any(w in m.lower() for w in KEY_WORDS)]


@torch.no_grad()
def logits(model, tok, seq2seq):
    ids = tok("Question: The capital of France is Paris. Answer: A",
              return_tensors="pt").input_ids
    if seq2seq:
        dec = torch.tensor([[model.config.decoder_start_token_id, 5, 9, 11]])
        return model(input_ids=ids, decoder_input_ids=dec).logits
    return model(input_ids=ids).logits
