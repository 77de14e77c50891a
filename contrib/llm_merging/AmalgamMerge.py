# SPDX-License-Identifier: Apache-2.0
"""AmalgamMerge: an LLM-Merging starter-kit method whose merge is done by
amalgam.

Copy this file into the kit's llm_merging/merging/ folder and register it
(see README.md beside this file). merge() runs `amalgam merge` on a
pipeline, then loads the merged folder as the kit's model, so the kit's own
predict_multiple_choice / generate run on it. save_model() writes the
complete Hugging Face folder (config, weights, index, tokenizer, generation
config) that `lm_eval --model hf --model_args pretrained=DIR` loads; the
kit's default writes only a raw tensor dict.

Environment:
  AMALGAM_PIPELINE  pipeline YAML (default: the DARE-TIES Llama-3-8B recipe
                    embedded below)
  AMALGAM           the amalgam program (default: `amalgam` on PATH)
  AMALGAM_ARGS      extra `amalgam merge` options, e.g. "-j 16"
  AMALGAM_OUT_DIR   where amalgam writes (default ./amalgam-merged/<name>);
                    save_model hard-links from there when it can
  AMALGAM_DTYPE     torch dtype to load with (default: the folder's
                    torch_dtype; the kit's own loader would use float32)
"""
import os
import shlex
import shutil
import subprocess

from llm_merging.merging.Merges import Merges

# contrib/recipes/llama3-8b-dare-ties.yaml, so that this one file is enough.
DEFAULT_PIPELINE = """\
merge_method: dare_ties
base_model: meta-llama/Meta-Llama-3-8B@62bd457b6fe961a42a631306577e622c83876cb6
models:
  - model: meta-llama/Meta-Llama-3-8B-Instruct@5f0b02c75b57c5855da9ae460ce51323ea669d8a
    parameters: {density: 0.6, weight: 0.5}
  - model: MaziyarPanahi/Llama-3-8B-Instruct-v0.8@bd80951b7ae97f633ed48b80334af8df96b49f36
    parameters: {density: 0.55, weight: 0.5}
parameters: {normalize: true, int8_mask: true}
seed: 0
dtype: bfloat16
tokenizer_source: meta-llama/Meta-Llama-3-8B-Instruct@5f0b02c75b57c5855da9ae460ce51323ea669d8a
"""


class AmalgamError(RuntimeError):
    pass


class AmalgamMerge(Merges):
    def __init__(self, name):
        super().__init__(name)
        self.pipeline = os.environ.get("AMALGAM_PIPELINE")
        self.amalgam = os.environ.get("AMALGAM") or shutil.which("amalgam")
        self.amalgam_args = shlex.split(os.environ.get("AMALGAM_ARGS", ""))
        self.out_dir = os.environ.get("AMALGAM_OUT_DIR") or os.path.join(
            "amalgam-merged", name)
        # the kit's fields; the model is whatever the pipeline makes
        self.list_models = []
        self.max_seq_len = None
        self.max_gen_len = 64
        self.architecture = None
        self.loaded_models = {}
        self.loaded_configs = {}
        self.merged_model = {}
        try:
            import torch
            self.device = torch.device(
                "cuda" if torch.cuda.is_available() else "cpu")
        except ImportError:
            self.device = "cpu"

    # --- step 1: amalgam writes the merged folder
    def run_amalgam(self):
        if not self.amalgam:
            raise AmalgamError("amalgam not found: install it or set AMALGAM "
                               "to the program's path")
        pipeline = self.pipeline
        parent = os.path.dirname(os.path.abspath(self.out_dir))
        os.makedirs(parent, exist_ok=True)
        if not pipeline:
            # kept beside the output (not in a temporary file): amalgam's
            # error messages name the pipeline by file:line:column
            pipeline = os.path.join(parent, "amalgam-default-pipeline.yaml")
            with open(pipeline, "w") as f:
                f.write(DEFAULT_PIPELINE)
        cmd = [self.amalgam, "merge", pipeline, self.out_dir, "--force"]
        cmd += self.amalgam_args
        rc = subprocess.call(cmd)
        if rc != 0:
            raise AmalgamError("amalgam merge failed (exit %d) on pipeline "
                               "'%s'" % (rc, self.pipeline or "<default>"))
        return self.out_dir

    # --- step 2: the merged folder becomes the kit's model
    def load_merged(self):
        import torch
        from transformers import (AutoConfig, AutoModelForCausalLM,
                                  AutoModelForSeq2SeqLM)

        config = AutoConfig.from_pretrained(self.out_dir)
        self.architecture = ("encoder_decoder"
                             if getattr(config, "is_encoder_decoder", False)
                             else "decoder")
        # transformers 5 names it dtype, 4.x torch_dtype; amalgam keeps
        # whichever key its template config.json had
        name = (os.environ.get("AMALGAM_DTYPE")
                or getattr(config, "dtype", None)
                or getattr(config, "torch_dtype", None) or "float32")
        dtype = name if isinstance(name, torch.dtype) else getattr(
            torch, str(name).replace("torch.", ""))
        cls = (AutoModelForSeq2SeqLM if self.architecture == "encoder_decoder"
               else AutoModelForCausalLM)
        import transformers
        # 4.x would take an unknown dtype= as a config override and load
        # float32 silently, so pick the keyword by version
        key = ("dtype" if int(transformers.__version__.split(".")[0]) >= 5
               else "torch_dtype")
        model = cls.from_pretrained(self.out_dir, **{key: dtype})
        self.base_model = model.to(self.device)
        self.base_model.eval()
        # the kit's tokenizer loader reads base_model_name and the token
        self.base_model_name = self.out_dir
        self.base_model_revision_id = None
        os.environ.setdefault("HF_AUTH_TOKEN", "")
        self._load_tokenizer()
        return self.base_model

    def merge(self):
        self.run_amalgam()
        return self.load_merged()

    # --- the folder lm_eval loads: amalgam's output as it is
    def save_model(self, output_dir):
        if not os.path.isfile(os.path.join(self.out_dir, "config.json")):
            raise AmalgamError("nothing to save: '%s' holds no merged model; "
                               "run merge() first" % self.out_dir)
        os.makedirs(output_dir, exist_ok=True)
        for name in sorted(os.listdir(self.out_dir)):
            src = os.path.join(self.out_dir, name)
            dst = os.path.join(output_dir, name)
            if not os.path.isfile(src):
                continue
            if os.path.lexists(dst):
                os.unlink(dst)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
        # the kit's default file would make lm_eval see two weight sets
        stale = os.path.join(output_dir, "safetensor.pt")
        if os.path.exists(stale):
            os.unlink(stale)
