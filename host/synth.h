/* SPDX-License-Identifier: Apache-2.0 */
/*
 * synth.h - deterministic Llama-shaped model generator for tests, demos and
 * benchmarks (`amalgam synth`).
 *
 * Writes real Hugging Face folders (LlamaForCausalLM tensor names and
 * config.json). Values come from a counter-based hash of (seed, tensor name,
 * element index), so they never depend on chunking or thread count.
 * Experts are the base plus a task vector: a component shared by all
 * experts (their deltas agree in sign) and a component of each expert's own
 * (deltas conflict in sign between experts).
 */
#ifndef AMG_SYNTH_H
#define AMG_SYNTH_H

#include <stdint.h>

#include "dtype.h"
#include "error.h"

typedef struct amg_synth_opts {
    int layers;                        /* num_hidden_layers (default 2) */
    int hidden;                        /* hidden_size (default 64) */
    int intermediate;                  /* intermediate_size (default 176) */
    int vocab;                         /* vocab_size (default 256) */
    int heads;                         /* num_attention_heads (default 4) */
    int kv_heads;                      /* num_key_value_heads (default 2) */
    int tie_embeddings;                /* 1: no lm_head.weight */
    amg_dtype dtype;                   /* stored dtype (default BF16) */
    uint64_t shard_size;               /* max shard bytes (default 5GB) */
    uint64_t seed;                     /* base weights seed */
    int expert;                        /* 0: the base; k >= 1: expert k */
    float delta_scale;                 /* task-vector size relative to the
                                          base weights (default 0.05) */
    float agree;                       /* share of the task vector common
                                          to all experts, 0..1 (default 0.5) */
} amg_synth_opts;

/* Fill defaults. */
void amg_synth_opts_init(amg_synth_opts *o);

/* Check the options: sizes in range, hidden a multiple of heads, heads a
 * multiple of kv_heads, a float dtype, agree in [0, 1]. AMG_EINVAL with the
 * reason otherwise. */
int amg_synth_check(const amg_synth_opts *o, amg_err *err);

/* Write one model (base or expert o->expert) to out_dir, which must not
 * exist unless overwrite is set. Nothing is left behind on failure. */
int amg_synth_write(const amg_synth_opts *o, const char *out_dir,
                    int overwrite, amg_err *err);

/* DIR/base for k == 0, else DIR/expert-k: the layout of a generated family
 * (`amalgam synth --family`, the demo). malloc'd; NULL when out of
 * memory. */
char *amg_synth_family_path(const char *dir, long k);

/* What a write produced, for summaries. */
typedef struct amg_synth_stats {
    uint64_t n_params;                 /* elements over all tensors */
    uint64_t n_bytes;                  /* tensor bytes (index total_size) */
    uint64_t n_tensors;
    uint64_t n_shards;                 /* safetensors files written */
} amg_synth_stats;

/* amg_synth_write that also fills *stats (when not NULL) on success. */
int amg_synth_write_stats(const amg_synth_opts *o, const char *out_dir,
                          int overwrite, amg_synth_stats *stats,
                          amg_err *err);

/* The f32 value of element i (row-major) of tensor name, before rounding to
 * the stored dtype: base(seed, name, i) + scale * task vector. Exposed so
 * tests can check written files against it. The exact formula, which
 * tests/py/check_written.py reimplements, is documented at the top of
 * synth.c:
 *   u(stream, i) = (mix64(key(seed, stream, name) + GOLDEN*(i+1)) >> 40)
 *                  * 2^-23 - 1          (stream 0 base, 1 common, k+1 own)
 *   base  = B + A*u(0,i)  (A=0.1, B=1 for "*norm.weight"; A=0.02, B=0)
 *   value = (float)(base + (delta_scale*A) *
 *                   (agree*u(1,i) + (1-agree)*u(k+1,i)))   in double */
float amg_synth_value(const amg_synth_opts *o, const char *name, uint64_t i);

#endif
