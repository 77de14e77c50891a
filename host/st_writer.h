/* SPDX-License-Identifier: Apache-2.0 */
/*
 * st_writer.h - write one .safetensors file whose header is fixed up front.
 *
 * The header (names, dtypes, shapes, offsets) is computed from the tensor
 * list before any data exists, so each tensor's bytes can be written straight
 * to its offset, in any order, from several threads. The file is written
 * under a temporary sibling name and renamed into place only on commit; an
 * aborted writer leaves nothing behind.
 */
#ifndef AMG_ST_WRITER_H
#define AMG_ST_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "error.h"
#include "safetensors.h"

typedef struct amg_st_spec {
    const char *name;                  /* tensor name (copied) */
    amg_dtype dtype;
    int ndim;
    uint64_t shape[AMG_ST_MAX_DIMS];
} amg_st_spec;

typedef struct amg_st_writer {
    char *path;                        /* final name */
    char *tmp_path;                    /* name while incomplete */
    int fd;
    uint64_t data_start;               /* 8 + padded header length */
    uint64_t data_size;                /* bytes in the data section */
    size_t n;                          /* tensors, in the order given */
    char **names;
    uint64_t *begin, *nbytes;          /* per tensor, data-section offsets */
} amg_st_writer;

/*
 * Lay out the header for specs (data in the order given), write it to a
 * temporary sibling of path, and size the file. __metadata__ is
 * {"format":"pt"} followed by the n_meta extra pairs (keys/values copied).
 * Duplicate names are rejected.
 */
int amg_st_writer_open(amg_st_writer *w, const char *path,
                       const amg_st_spec *specs, size_t n,
                       const amg_st_meta *meta, size_t n_meta, amg_err *err);

/* Bytes a file for specs would take (header + data), without writing it. */
uint64_t amg_st_file_size(const amg_st_spec *specs, size_t n);

/* Write len bytes at byte offset off within tensor idx. Thread-safe for
 * disjoint ranges. */
int amg_st_writer_write(amg_st_writer *w, size_t idx, uint64_t off,
                        const void *data, size_t len, amg_err *err);

/* fsync, close and rename into place. The writer is released either way. */
int amg_st_writer_commit(amg_st_writer *w, amg_err *err);

/* Close and delete the temporary file; release the writer. Safe to call on
 * a zeroed or already released writer. */
void amg_st_writer_abort(amg_st_writer *w);

#endif
