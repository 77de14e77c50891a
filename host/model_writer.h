/* SPDX-License-Identifier: Apache-2.0 */
/*
 * model_writer.h - write a Hugging Face model folder: tensors split into
 * shards of at most max_shard_size bytes (transformers' greedy rule, decimal
 * units), the index, config.json and side files.
 *
 * Everything is written into a staging folder next to the destination
 * ("<out>.amalgam-partial") and renamed into place by commit, so a reader
 * never sees a half-written model under the final name.
 */
#ifndef AMG_MODEL_WRITER_H
#define AMG_MODEL_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "st_writer.h"

/* transformers' default max_shard_size ("5GB"). */
#define AMG_DEFAULT_SHARD_SIZE 5000000000ULL

typedef struct amg_model_writer {
    char *out_dir;                     /* final folder */
    char *stage_dir;                   /* staging folder while writing */
    size_t n_tensors;
    size_t n_shards;
    amg_st_writer *shards;
    size_t *shard_of;                  /* per tensor (in spec order) */
    size_t *slot_of;                   /* index within its shard */
    char **shard_names;                /* "model-00001-of-00003.safetensors"
                                          or "model.safetensors" */
    uint64_t total_size;               /* sum of tensor bytes */
    int overwrite;                     /* commit may replace out_dir */
} amg_model_writer;

/*
 * Plan shards for specs (in the order given; a new shard starts when the
 * next tensor would push the current one over max_shard_size; a tensor
 * larger than the limit gets a shard of its own), create the staging folder
 * and open every shard. out_dir must not exist yet unless overwrite is set.
 */
int amg_model_writer_open(amg_model_writer *w, const char *out_dir,
                          const amg_st_spec *specs, size_t n,
                          uint64_t max_shard_size, int overwrite,
                          amg_err *err);

/* Write bytes of tensor i (spec order) at byte offset off. Thread-safe for
 * disjoint ranges. */
int amg_model_writer_write(amg_model_writer *w, size_t i, uint64_t off,
                           const void *data, size_t len, amg_err *err);

/* Write an extra file (config.json, tokenizer files) into the staging
 * folder. name must be a plain file name. */
int amg_model_writer_add_file(amg_model_writer *w, const char *name,
                              const void *data, size_t len, amg_err *err);

/* Copy a file from src into the staging folder under name. */
int amg_model_writer_copy_file(amg_model_writer *w, const char *name,
                               const char *src, amg_err *err);

/*
 * Commit every shard, write model.safetensors.index.json when there is more
 * than one shard, and rename the staging folder to out_dir (replacing an old
 * out_dir when overwrite was set). Releases the writer either way.
 */
int amg_model_writer_commit(amg_model_writer *w, amg_err *err);

/* Remove the staging folder and release the writer. */
void amg_model_writer_abort(amg_model_writer *w);

#endif
