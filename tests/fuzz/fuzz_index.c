/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_index.c - libFuzzer target for model.safetensors.index.json parsing.
 *
 * Any accepted index must hold only plain shard file names and sorted,
 * distinct tensor names, and must survive a format + parse round trip
 * unchanged (the writer and the reader agree).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shard_index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const amg_shard_index *a, const amg_shard_index *b)
{
    size_t i;

    if (a->n_entries != b->n_entries || a->has_total_size != b->has_total_size
        || a->total_size != b->total_size)
        abort();
    for (i = 0; i < a->n_entries; i++) {
        if (strcmp(a->names[i], b->names[i]) ||
            strcmp(a->shards[a->shard_of[i]], b->shards[b->shard_of[i]]))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    amg_shard_index idx, again;
    amg_err err;
    char *text, *out = NULL;
    size_t i;

    /* a copy of exactly size bytes, so ASan sees any over-read */
    text = malloc(size ? size : 1);
    if (!text)
        return 0;
    if (size)
        memcpy(text, data, size);
    amg_err_clear(&err);
    if (amg_shard_index_parse(&idx, "fuzz", text, size, &err) != AMG_OK) {
        if (err.status == AMG_OK || !strstr(err.msg, "'fuzz'"))
            abort();
        free(text);
        return 0;
    }
    for (i = 0; i < idx.n_entries; i++) {
        const char *s;
        if (idx.shard_of[i] >= idx.n_shards)
            abort();
        if (i && strcmp(idx.names[i - 1], idx.names[i]) >= 0)
            abort();
        s = idx.shards[idx.shard_of[i]];
        if (!*s || strchr(s, '/') || !strcmp(s, "..") || !strcmp(s, "."))
            abort();
    }
    if (amg_shard_index_format(&idx, &out, &err) != AMG_OK)
        abort();
    if (amg_shard_index_parse(&again, "fuzz", out, strlen(out), &err) !=
        AMG_OK)
        abort();
    check_same(&idx, &again);
    amg_shard_index_free(&again);
    amg_shard_index_free(&idx);
    free(out);
    free(text);
    return 0;
}
