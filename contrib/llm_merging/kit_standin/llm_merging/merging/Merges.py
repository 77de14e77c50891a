# SPDX-License-Identifier: Apache-2.0
"""STAND-IN for the LLM-Merging starter kit's Merges base class, written
from its documented interface for amalgam's tests (see ../../README.md).
It is not the kit; install the real kit for real use."""
import copy
import os


class Merges(object):
    def __init__(self, name):
        self.name = name
        self.list_models = None
        self.loaded_models = None
        self.loaded_configs = None
        self.base_model = None
        self.tokenizer = None
        self.input_tokenizer = None
        self.target_tokenizer = None
        self.base_model_name = None
        self.base_model_revision_id = None
        self.is_peft = False
        self.max_seq_len = None
        self.max_gen_len = None
        self.device = None
        self.architecture = None
        self.merged_model = None

    def get_name(self):
        return self.name

    def get_model_config(self):
        raise NotImplementedError

    def merge(self):
        raise NotImplementedError

    def _load_tokenizer(self):
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(
            self.base_model_name, revision=self.base_model_revision_id,
            model_max_length=self.max_seq_len, legacy=False,
            token=os.environ["HF_AUTH_TOKEN"] or None)
        if self.architecture == "encoder_decoder":
            self.tokenizer = tok
            return
        if self.architecture != "decoder":
            raise NotImplementedError(self.architecture)
        if tok.pad_token_id is None:
            tok.pad_token_id = tok.eos_token_id
        self.input_tokenizer = tok
        self.target_tokenizer = copy.deepcopy(tok)
        self.input_tokenizer.padding_side = "left"
        self.target_tokenizer.padding_side = "right"
        self.target_tokenizer.add_bos_token = False
        self.target_tokenizer.add_eos_token = True

    def _choice_score(self, prompt, choice):
        import torch

        tok = self.input_tokenizer
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        c = tok(choice, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p + c], device=self.base_model.device)
        logp = torch.log_softmax(self.base_model(input_ids=ids).logits[0]
                                 .float(), dim=-1)
        return sum(logp[len(p) + i - 1, t].item() for i, t in enumerate(c))

    def predict_multiple_choice(self, batch):
        assert self.base_model is not None
        preds, scores = [], []
        for prompt, choices in zip(batch["input"], batch["answer_choices"]):
            s = [self._choice_score(prompt, c) for c in choices]
            preds.append(max(range(len(s)), key=s.__getitem__))
            scores.append(s)
        return preds, scores

    def generate(self, batch):
        import torch

        assert self.base_model is not None
        tok = self.input_tokenizer
        enc = tok(batch["input"], return_tensors="pt", padding=True)
        enc = {k: v.to(self.base_model.device) for k, v in enc.items()}
        with torch.no_grad():
            out = self.base_model.generate(
                **enc, max_new_tokens=self.max_gen_len, do_sample=False,
                pad_token_id=tok.pad_token_id)
        return tok.batch_decode(out[:, enc["input_ids"].shape[1]:],
                                skip_special_tokens=True)

    def save_model(self, output_dir):
        from safetensors.torch import save_file

        assert self.merged_model, "Merged model is empty"
        save_file(self.merged_model, os.path.join(output_dir, "safetensor.pt"))
