/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lora.h - a PEFT LoRA adapter folder (adapter_config.json +
 * adapter_model.safetensors) read as a set of low-rank updates to a base
 * model's weights, and the fold of one update into rows of a weight.
 *
 * PEFT's layout and merge rule (research/formats.md §3): the file holds
 * base_model.model.<module>.lora_A.weight [r, in] and .lora_B.weight
 * [out, r] (embeddings: .lora_embedding_A [r, num_embeddings] and
 * .lora_embedding_B [dim, r]); <module>.weight of the base becomes
 *
 *     W + scale * (B @ A)        (transposed for fan_in_fan_out and for
 *                                 embeddings)
 *
 * with scale = alpha / r, or alpha / sqrt(r) under use_rslora, r and alpha
 * per module from rank_pattern / alpha_pattern: the first key P (in file
 * order) for which the module name fully matches (.*\.)?(P)$ (POSIX
 * extended regular expressions stand in for Python's). Like PEFT's merge
 * on the cpu, the product and the scaling are f32 and the update is
 * rounded to the adapter's dtype (lora_B's) before it is added.
 */
#ifndef AMG_LORA_H
#define AMG_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "safetensors.h"

typedef struct amg_lora_module {
    char *module;                      /* "model.layers.0.self_attn.q_proj"
                                          (owned) */
    char *target;                      /* module + ".weight" (owned) */
    int embedding;                     /* lora_embedding_A/B */
    int transposed;                    /* update is (B @ A)^T */
    const amg_st_tensor *a, *b;        /* factors in the adapter file */
    uint64_t rank;
    double r, alpha;                   /* after rank/alpha_pattern */
    float scale;                       /* as PEFT multiplies: f32 */
    uint64_t rows, cols;               /* shape of the update, as the base
                                          weight stores it */
} amg_lora_module;

typedef struct amg_lora {
    char *dir;                         /* the adapter folder (owned) */
    char *base;                        /* base_model_name_or_path, or NULL */
    int use_rslora, fan_in_fan_out;
    amg_st_file file;                  /* adapter_model.safetensors, mapped */
    amg_lora_module *mods;             /* sorted by target */
    size_t n_mods;
} amg_lora;

/* 1 when dir looks like a PEFT adapter: it holds adapter_config.json and
 * no model weights (model.safetensors or its index). */
int amg_lora_is_adapter(const char *dir);

/* base_model_name_or_path of the adapter in dir (malloc'd), or NULL in
 * *base when the config does not name one. */
int amg_lora_read_base(const char *dir, char **base, amg_err *err);

/* Open the adapter in dir: its config and its factors, checked (every
 * tensor a LoRA factor, factor shapes consistent, ranks equal to r after
 * rank_pattern; DoRA, LoRA biases and modules_to_save refused). */
int amg_lora_open(amg_lora *l, const char *dir, amg_err *err);

void amg_lora_close(amg_lora *l);

/* The module updating base tensor target ("....q_proj.weight"), or NULL. */
const amg_lora_module *amg_lora_find(const amg_lora *l, const char *target);

/* Which pattern key applies to module, PEFT's get_pattern_key: *index
 * receives its position in keys, or -1 for none. A key that is not a
 * valid regular expression is an error. */
int amg_lora_pattern_key(const char *const *keys, size_t n_keys,
                         const char *module, long *index, amg_err *err);

/*
 * Add rows [r0, r0 + rows) of m's update, the first cols columns of each,
 * to dst (rows x cols, row-major, f32). Each element is a sum over the
 * rank in index order, so the result does not depend on how a tensor is
 * split into chunks. Allocates O(rank x (row length + rows)) scratch.
 */
int amg_lora_fold_rows(const amg_lora *l, const amg_lora_module *m,
                       uint64_t r0, uint64_t rows, uint64_t cols, float *dst,
                       amg_err *err);

#endif
