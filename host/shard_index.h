/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shard_index.h - model.safetensors.index.json: which shard holds which
 * tensor, and the total size of the tensor data.
 *
 * Format: {"metadata": {"total_size": <bytes>, ...}, "weight_map":
 * {"<tensor>": "<shard file>", ...}}. Written as transformers writes it
 * (indent 2, keys sorted, trailing newline).
 */
#ifndef AMG_SHARD_INDEX_H
#define AMG_SHARD_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct amg_shard_index {
    uint64_t total_size;               /* metadata.total_size, 0 if absent */
    int has_total_size;
    size_t n_entries;
    char **names;                      /* tensor names, sorted (owned) */
    size_t *shard_of;                  /* index into shards, per name */
    size_t n_shards;
    char **shards;                     /* distinct shard file names, in
                                          order of first appearance (owned) */
} amg_shard_index;

/*
 * Read and validate an index file: JSON object, weight_map an object of
 * strings, shard names plain file names (no '/', no "..", not absolute),
 * no duplicate tensor names. Errors name the file and the entry.
 */
int amg_shard_index_read(amg_shard_index *idx, const char *path, amg_err *err);

/* Same from a buffer (fuzz target); label names the source in messages. */
int amg_shard_index_parse(amg_shard_index *idx, const char *label,
                          const char *text, size_t len, amg_err *err);

void amg_shard_index_free(amg_shard_index *idx);

/* Serialize an index (names[i] lives in shards[shard_of[i]]) to a malloc'd
 * NUL-terminated string in transformers' layout. */
int amg_shard_index_format(const amg_shard_index *idx, char **out,
                           amg_err *err);

#endif
