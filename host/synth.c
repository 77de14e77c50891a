/* SPDX-License-Identifier: Apache-2.0 */
/*
 * synth.c - the deterministic Llama-shaped model generator.
 *
 * The value formula is a contract: tests/py/check_written.py reimplements it
 * in numpy and compares every element amalgam writes, so any change here must
 * be made there too. It uses only uint64 wraparound integer arithmetic and
 * IEEE double operations in a fixed order, rounded once to float, which
 * numpy reproduces bit for bit.
 *
 *   GOLDEN      = 0x9E3779B97F4A7C15
 *   fnv1a64(s)  = FNV-1a 64 over the name's bytes (offset basis
 *                 0xCBF29CE484222325, prime 0x100000001B3)
 *   mix64(z)    = splitmix64's finalizer:
 *                   z ^= z >> 30; z *= 0xBF58476D1CE4E5B9;
 *                   z ^= z >> 27; z *= 0x94D049BB133111EB; z ^= z >> 31
 *   key(stream) = mix64(mix64(seed + GOLDEN * (stream + 1)) ^ fnv1a64(name))
 *   u(stream,i) = (mix64(key(stream) + GOLDEN * (i + 1)) >> 40) * 2^-23 - 1
 *                 (24 random bits: an exact float in [-1, 1))
 *
 * Streams: 0 for the base weights, 1 for the part of the task vector all
 * experts share, k + 1 for expert k's own part. i is the row-major element
 * index within the tensor.
 *
 * With A = 0.1 and B = 1.0 for tensors whose name ends in "norm.weight"
 * (RMSNorm gains hover around 1) and A = 0.02, B = 0.0 for every other
 * tensor, all in double:
 *
 *   base    = B + A * u(0, i)
 *   t       = agree * u(1, i) + (1.0 - agree) * u(k + 1, i)
 *   delta   = (delta_scale * A) * t
 *   value   = (float)(base)            for the base model
 *           = (float)(base + delta)    for expert k
 *
 * where agree and delta_scale are the options' float values widened to
 * double. The float is then rounded to the stored dtype by amg_from_f32.
 */
#include "config.h"
#include "synth.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_writer.h"
#include "util.h"

/* A fused multiply-add would round differently from numpy. GCC keeps
 * separate operations in ISO C mode (-std=c11); clang needs telling. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define GOLDEN 0x9E3779B97F4A7C15ULL

/* Output bytes converted per write: bounds memory whatever the model size. */
#define CHUNK_BYTES (1u << 20)

/* Limits on the options: far above any real Llama, low enough that no
 * tensor size can overflow. */
#define MAX_DIM 16777216
#define MAX_LAYERS 4096

static const char TRANSFORMERS_VERSION[] = "4.46.3";

void amg_synth_opts_init(amg_synth_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->layers = 2;
    o->hidden = 64;
    o->intermediate = 176;
    o->vocab = 256;
    o->heads = 4;
    o->kv_heads = 2;
    o->tie_embeddings = 0;
    o->dtype = AMG_DT_BF16;
    o->shard_size = AMG_DEFAULT_SHARD_SIZE;
    o->seed = 0;
    o->expert = 0;
    o->delta_scale = 0.05f;
    o->agree = 0.5f;
}

/* ---- the value formula (see the top of the file) ---- */

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xCBF29CE484222325ULL;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001B3ULL;
    }
    return h;
}

static uint64_t mix64(uint64_t z)
{
    z ^= z >> 30;
    z *= 0xBF58476D1CE4E5B9ULL;
    z ^= z >> 27;
    z *= 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z;
}

static uint64_t stream_key(uint64_t seed, uint64_t stream, uint64_t name_hash)
{
    return mix64(mix64(seed + GOLDEN * (stream + 1)) ^ name_hash);
}

static double uniform(uint64_t key, uint64_t i)
{
    uint64_t bits = mix64(key + GOLDEN * (i + 1)) >> 40;

    return (double)bits * (1.0 / 8388608.0) - 1.0;
}

/* Everything about one tensor's values that does not depend on the index. */
typedef struct value_gen {
    uint64_t k_base, k_common, k_own;
    double amp, offset;                /* A and B above */
    double agree, scale;               /* agree, delta_scale * A */
    int expert;
} value_gen;

static int is_norm(const char *name)
{
    static const char suffix[] = "norm.weight";
    size_t n = strlen(name), s = sizeof(suffix) - 1;

    return n >= s && !memcmp(name + n - s, suffix, s);
}

static void value_gen_init(value_gen *g, const amg_synth_opts *o,
                           const char *name)
{
    uint64_t h = fnv1a64(name);

    g->expert = o->expert;
    g->k_base = stream_key(o->seed, 0, h);
    g->k_common = stream_key(o->seed, 1, h);
    g->k_own = stream_key(o->seed, (uint64_t)o->expert + 1, h);
    g->amp = is_norm(name) ? 0.1 : 0.02;
    g->offset = is_norm(name) ? 1.0 : 0.0;
    g->agree = (double)o->agree;
    g->scale = (double)o->delta_scale * g->amp;
}

static float value_at(const value_gen *g, uint64_t i)
{
    double base = g->offset + g->amp * uniform(g->k_base, i);
    double t, c, s;

    if (g->expert <= 0)
        return (float)base;
    c = uniform(g->k_common, i);
    s = uniform(g->k_own, i);
    t = g->agree * c + (1.0 - g->agree) * s;
    return (float)(base + g->scale * t);
}

char *amg_synth_family_path(const char *dir, long k)
{
    char name[32];

    if (k == 0)
        snprintf(name, sizeof(name), "base");
    else
        snprintf(name, sizeof(name), "expert-%ld", k);
    return amg_path_join(dir, name);
}

float amg_synth_value(const amg_synth_opts *o, const char *name, uint64_t i)
{
    value_gen g;

    value_gen_init(&g, o, name);
    return value_at(&g, i);
}

/* ---- validation ---- */

static int check_range(const char *what, long long v, long long lo,
                       long long hi, amg_err *err)
{
    if (v < lo || v > hi)
        return amg_err_set(err, AMG_EINVAL,
                           "%s must be from %lld to %lld (got %lld)", what,
                           lo, hi, v);
    return AMG_OK;
}

int amg_synth_check(const amg_synth_opts *o, amg_err *err)
{
    int rc;

    if ((rc = check_range("layers", o->layers, 1, MAX_LAYERS, err)) ||
        (rc = check_range("hidden size", o->hidden, 1, MAX_DIM, err)) ||
        (rc = check_range("intermediate size", o->intermediate, 1, MAX_DIM,
                          err)) ||
        (rc = check_range("vocabulary size", o->vocab, 1, MAX_DIM, err)) ||
        (rc = check_range("attention heads", o->heads, 1, MAX_DIM, err)) ||
        (rc = check_range("key/value heads", o->kv_heads, 1, MAX_DIM, err)) ||
        (rc = check_range("expert", o->expert, 0, INT32_MAX - 1, err)))
        return rc;
    if (o->hidden % o->heads)
        return amg_err_set(err, AMG_EINVAL,
                           "hidden size %d is not a multiple of the %d "
                           "attention heads", o->hidden, o->heads);
    if (o->heads % o->kv_heads)
        return amg_err_set(err, AMG_EINVAL,
                           "%d attention heads are not a multiple of the %d "
                           "key/value heads", o->heads, o->kv_heads);
    if (o->dtype != AMG_DT_F32 && o->dtype != AMG_DT_F16 &&
        o->dtype != AMG_DT_BF16 && o->dtype != AMG_DT_F64)
        return amg_err_set(err, AMG_EINVAL,
                           "cannot synthesize %s weights (use BF16, F16, F32 "
                           "or F64)", amg_dtype_name(o->dtype));
    if (o->shard_size == 0)
        return amg_err_set(err, AMG_EINVAL, "shard size must be positive");
    if (!isfinite(o->delta_scale) || o->delta_scale < 0.0f)
        return amg_err_set(err, AMG_EINVAL,
                           "delta scale must be a finite number >= 0");
    if (!(o->agree >= 0.0f && o->agree <= 1.0f))
        return amg_err_set(err, AMG_EINVAL, "agree must be from 0 to 1");
    return AMG_OK;
}

/* ---- the tensor list ---- */

typedef struct tensor_list {
    amg_st_spec *specs;
    char **names;                      /* owned; specs[i].name points here */
    size_t n, cap;
} tensor_list;

static void tensor_list_free(tensor_list *l)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    free(l->specs);
    memset(l, 0, sizeof(*l));
}

static int add_tensor(tensor_list *l, const char *name, amg_dtype dt,
                      uint64_t rows, uint64_t cols, amg_err *err)
{
    amg_st_spec *s;

    if (!(l->names[l->n] = amg_strdup(name)))
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    s = &l->specs[l->n];
    memset(s, 0, sizeof(*s));
    s->name = l->names[l->n];
    s->dtype = dt;
    s->ndim = cols ? 2 : 1;
    s->shape[0] = rows;
    s->shape[1] = cols;
    l->n++;
    return AMG_OK;
}

/* The tensors of a LlamaForCausalLM in state_dict order (the order
 * save_pretrained shards in): embeddings, then per layer the attention and
 * MLP projections before the two norms, then the final norm and lm_head. */
static int build_tensors(const amg_synth_opts *o, tensor_list *l,
                         amg_err *err)
{
    static const char *const attn[] = { "q_proj", "k_proj", "v_proj",
                                        "o_proj" };
    static const char *const mlp[] = { "gate_proj", "up_proj", "down_proj" };
    uint64_t hid = (uint64_t)o->hidden, inter = (uint64_t)o->intermediate;
    uint64_t hd = hid / (uint64_t)o->heads;
    uint64_t q_out = hd * (uint64_t)o->heads;
    uint64_t kv_out = hd * (uint64_t)o->kv_heads;
    char name[128];
    int i, j, rc = AMG_OK;

    l->cap = 3 + 9 * (size_t)o->layers;
    l->specs = calloc(l->cap, sizeof(*l->specs));
    l->names = calloc(l->cap, sizeof(*l->names));
    if (!l->specs || !l->names)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    rc = add_tensor(l, "model.embed_tokens.weight", o->dtype,
                    (uint64_t)o->vocab, hid, err);
    for (i = 0; !rc && i < o->layers; i++) {
        for (j = 0; !rc && j < 4; j++) {
            snprintf(name, sizeof(name), "model.layers.%d.self_attn.%s.weight",
                     i, attn[j]);
            rc = add_tensor(l, name, o->dtype,
                            j == 3 ? hid : j == 0 ? q_out : kv_out,
                            j == 3 ? q_out : hid, err);
        }
        for (j = 0; !rc && j < 3; j++) {
            snprintf(name, sizeof(name), "model.layers.%d.mlp.%s.weight", i,
                     mlp[j]);
            rc = add_tensor(l, name, o->dtype, j == 2 ? hid : inter,
                            j == 2 ? inter : hid, err);
        }
        if (!rc) {
            snprintf(name, sizeof(name),
                     "model.layers.%d.input_layernorm.weight", i);
            rc = add_tensor(l, name, o->dtype, hid, 0, err);
        }
        if (!rc) {
            snprintf(name, sizeof(name),
                     "model.layers.%d.post_attention_layernorm.weight", i);
            rc = add_tensor(l, name, o->dtype, hid, 0, err);
        }
    }
    if (!rc)
        rc = add_tensor(l, "model.norm.weight", o->dtype, hid, 0, err);
    if (!rc && !o->tie_embeddings)
        rc = add_tensor(l, "lm_head.weight", o->dtype, (uint64_t)o->vocab,
                        hid, err);
    return rc;
}

static uint64_t spec_numel(const amg_st_spec *s)
{
    uint64_t n = 1;
    int d;

    for (d = 0; d < s->ndim; d++)
        n *= s->shape[d];
    return n;
}

/* ---- config files ---- */

/* config.json as transformers' save_pretrained writes it: sorted keys,
 * two-space indent, final newline. */
static int make_config(const amg_synth_opts *o, char **out, amg_err *err)
{
    size_t cap = 2048;
    char *buf = malloc(cap);
    int n;

    if (!buf)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    n = snprintf(buf, cap,
                 "{\n"
                 "  \"architectures\": [\n"
                 "    \"LlamaForCausalLM\"\n"
                 "  ],\n"
                 "  \"attention_bias\": false,\n"
                 "  \"attention_dropout\": 0.0,\n"
                 "  \"bos_token_id\": 1,\n"
                 "  \"eos_token_id\": 2,\n"
                 "  \"head_dim\": %d,\n"
                 "  \"hidden_act\": \"silu\",\n"
                 "  \"hidden_size\": %d,\n"
                 "  \"initializer_range\": 0.02,\n"
                 "  \"intermediate_size\": %d,\n"
                 "  \"max_position_embeddings\": 2048,\n"
                 "  \"mlp_bias\": false,\n"
                 "  \"model_type\": \"llama\",\n"
                 "  \"num_attention_heads\": %d,\n"
                 "  \"num_hidden_layers\": %d,\n"
                 "  \"num_key_value_heads\": %d,\n"
                 "  \"pretraining_tp\": 1,\n"
                 "  \"rms_norm_eps\": 1e-05,\n"
                 "  \"rope_scaling\": null,\n"
                 "  \"rope_theta\": 10000.0,\n"
                 "  \"tie_word_embeddings\": %s,\n"
                 "  \"torch_dtype\": \"%s\",\n"
                 "  \"transformers_version\": \"%s\",\n"
                 "  \"use_cache\": true,\n"
                 "  \"vocab_size\": %d\n"
                 "}\n",
                 o->hidden / o->heads, o->hidden, o->intermediate, o->heads,
                 o->layers, o->kv_heads, o->tie_embeddings ? "true" : "false",
                 amg_dtype_torch_name(o->dtype), TRANSFORMERS_VERSION,
                 o->vocab);
    if (n < 0 || (size_t)n >= cap) {
        free(buf);
        return amg_err_set(err, AMG_EINVAL, "config.json does not fit");
    }
    *out = buf;
    return AMG_OK;
}

static int make_generation_config(char **out, amg_err *err)
{
    size_t cap = 256;
    char *buf = malloc(cap);

    if (!buf)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    snprintf(buf, cap,
             "{\n"
             "  \"_from_model_config\": true,\n"
             "  \"bos_token_id\": 1,\n"
             "  \"eos_token_id\": 2,\n"
             "  \"transformers_version\": \"%s\"\n"
             "}\n", TRANSFORMERS_VERSION);
    *out = buf;
    return AMG_OK;
}

/* ---- writing ---- */

static int write_tensor(amg_model_writer *w, size_t idx,
                        const amg_synth_opts *o, const amg_st_spec *s,
                        float *vals, void *bytes, size_t chunk, amg_err *err)
{
    size_t esize = amg_dtype_size(s->dtype), j, len;
    uint64_t numel = spec_numel(s), off;
    value_gen g;
    int rc;

    value_gen_init(&g, o, s->name);
    for (off = 0; off < numel; off += len) {
        len = numel - off < chunk ? (size_t)(numel - off) : chunk;
        for (j = 0; j < len; j++)
            vals[j] = value_at(&g, off + j);
        amg_from_f32(s->dtype, vals, bytes, len);
        rc = amg_model_writer_write(w, idx, off * esize, bytes, len * esize,
                                    err);
        if (rc)
            return rc;
    }
    return AMG_OK;
}

int amg_synth_write_stats(const amg_synth_opts *o, const char *out_dir,
                          int overwrite, amg_synth_stats *stats, amg_err *err)
{
    amg_model_writer w;
    tensor_list l = { 0 };
    size_t chunk, i;
    char *config = NULL, *gen = NULL;
    float *vals = NULL;
    void *bytes = NULL;
    amg_synth_stats st = { 0 };
    int rc, opened = 0;

    memset(&w, 0, sizeof(w));
    if ((rc = amg_synth_check(o, err)))
        return rc;
    if (!overwrite && access(out_dir, F_OK) == 0)
        return amg_err_set(err, AMG_EEXIST, "'%s' already exists", out_dir);
    if ((rc = build_tensors(o, &l, err)) ||
        (rc = make_config(o, &config, err)) ||
        (rc = make_generation_config(&gen, err)))
        goto out;
    chunk = CHUNK_BYTES / amg_dtype_size(o->dtype);
    vals = malloc(chunk * sizeof(*vals));
    bytes = malloc(CHUNK_BYTES);
    if (!vals || !bytes) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    rc = amg_model_writer_open(&w, out_dir, l.specs, l.n, o->shard_size,
                               overwrite, err);
    if (rc)
        goto out;
    opened = 1;
    for (i = 0; !rc && i < l.n; i++) {
        rc = write_tensor(&w, i, o, &l.specs[i], vals, bytes, chunk, err);
        st.n_params += spec_numel(&l.specs[i]);
    }
    st.n_tensors = l.n;
    st.n_shards = w.n_shards;
    st.n_bytes = w.total_size;
    if (!rc)
        rc = amg_model_writer_add_file(&w, "config.json", config,
                                       strlen(config), err);
    if (!rc)
        rc = amg_model_writer_add_file(&w, "generation_config.json", gen,
                                       strlen(gen), err);
    if (rc)
        goto out;
    opened = 0;                        /* commit releases the writer */
    rc = amg_model_writer_commit(&w, err);
    if (!rc && stats)
        *stats = st;
out:
    if (opened)
        amg_model_writer_abort(&w);
    free(vals);
    free(bytes);
    free(config);
    free(gen);
    tensor_list_free(&l);
    return rc;
}

int amg_synth_write(const amg_synth_opts *o, const char *out_dir,
                    int overwrite, amg_err *err)
{
    return amg_synth_write_stats(o, out_dir, overwrite, NULL, err);
}
