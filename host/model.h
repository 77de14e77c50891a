/* SPDX-License-Identifier: Apache-2.0 */
/*
 * model.h - a Hugging Face model as amalgam reads it: a folder with
 * config.json and either model.safetensors or a sharded index, or a bare
 * .safetensors file / index.json given directly.
 *
 * Only headers are read when the model is opened; tensor data stays mapped
 * in the shards until asked for.
 */
#ifndef AMG_MODEL_H
#define AMG_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "config_json.h"
#include "error.h"
#include "safetensors.h"

typedef struct amg_model_tensor {
    const char *name;                  /* points into the shard's tensor */
    size_t shard;                      /* index into amg_model.shards */
    const amg_st_tensor *t;
} amg_model_tensor;

typedef struct amg_model {
    char *path;                        /* as given (owned) */
    char *dir;                         /* folder holding the files (owned) */
    char *index_path;                  /* index.json used, or NULL (owned) */
    amg_st_file *shards;               /* opened shard files */
    size_t n_shards;
    amg_model_tensor *tensors;         /* sorted by name */
    size_t n_tensors;
    amg_config config;                 /* config.json; config.present == 0
                                          when the folder has none */
} amg_model;

/* Flags for amg_model_open. */
#define AMG_MODEL_HEADER_ONLY 1u       /* do not map tensor data (inspect) */

/*
 * Open path: a folder (model.safetensors.index.json preferred over
 * model.safetensors), a .safetensors file, or an index.json. Validates that
 * every tensor named by the index is in the shard it names and that no
 * tensor appears twice. A path that is not a model gets an error saying what
 * was looked for.
 */
int amg_model_open(amg_model *m, const char *path, unsigned flags,
                   amg_err *err);

void amg_model_close(amg_model *m);

/* Tensor by name, or NULL. */
const amg_model_tensor *amg_model_find(const amg_model *m, const char *name);

/* The shard file a tensor lives in. */
static inline const amg_st_file *amg_model_shard(const amg_model *m,
                                                 const amg_model_tensor *t)
{
    return &m->shards[t->shard];
}

#endif
