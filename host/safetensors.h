/* SPDX-License-Identifier: Apache-2.0 */
/*
 * safetensors.h - read one .safetensors file: header parsed and validated as
 * the reference implementation does, tensor data mapped (no copy).
 *
 * File layout: u64 little-endian header length N, N bytes of JSON, then the
 * data section. Offsets in the header are relative to the data section.
 */
#ifndef AMG_SAFETENSORS_H
#define AMG_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "error.h"

/* Largest header the reference reader accepts (bytes). */
#define AMG_ST_MAX_HEADER 100000000ULL
/* Most dimensions a tensor may have; more is rejected with a clear error. */
#define AMG_ST_MAX_DIMS 8

typedef struct amg_st_tensor {
    char *name;                        /* tensor name (owned) */
    amg_dtype dtype;
    int ndim;                          /* 0 for a scalar */
    uint64_t shape[AMG_ST_MAX_DIMS];
    uint64_t numel;                    /* product of shape (1 for a scalar) */
    uint64_t begin, end;               /* byte span within the data section */
} amg_st_tensor;

typedef struct amg_st_meta {
    char *key, *value;                 /* one __metadata__ entry (owned) */
} amg_st_meta;

typedef struct amg_st_file {
    char *path;                        /* as given to open (owned) */
    int fd;                            /* -1 when parsed from memory */
    const uint8_t *map;                /* whole file mapped, or NULL */
    uint64_t file_size;
    uint64_t header_len;               /* N */
    uint64_t data_start;               /* 8 + N: file offset of data section */
    amg_st_tensor *tensors;            /* in data-offset order */
    size_t n_tensors;
    size_t *by_name;                   /* indices into tensors, sorted by name */
    amg_st_meta *meta;                 /* __metadata__, in header order */
    size_t n_meta;
} amg_st_file;

/* Flags for amg_st_open. */
#define AMG_ST_HEADER_ONLY 1u          /* read the header with pread; no mmap */

/*
 * Open and validate path. Every rejection names the file, the tensor (when
 * there is one) and the rule broken, with status AMG_EFORMAT (AMG_EIO /
 * AMG_ENOTFOUND for system errors). On failure *f is left closed.
 */
int amg_st_open(amg_st_file *f, const char *path, unsigned flags, amg_err *err);

/*
 * Validate a header held in memory: hdr is the N header bytes, data_len the
 * size of the data section that follows it in the file. label names the
 * source in messages. Fills f's tensors/meta/header fields (fd = -1, no map).
 * Used by amg_st_open and by the fuzz target.
 */
int amg_st_parse_header(amg_st_file *f, const char *label, const uint8_t *hdr,
                        uint64_t hdr_len, uint64_t data_len, amg_err *err);

/* Release everything; f may be zeroed or already closed. */
void amg_st_close(amg_st_file *f);

/* Tensor by name (binary search), or NULL. */
const amg_st_tensor *amg_st_find(const amg_st_file *f, const char *name);

/* Value of a __metadata__ key, or NULL. */
const char *amg_st_meta_get(const amg_st_file *f, const char *key);

/* Pointer to the tensor's bytes in the mapping; NULL when opened
 * header-only. Valid until amg_st_close. */
const void *amg_st_data(const amg_st_file *f, const amg_st_tensor *t);

/* Copy len bytes starting off bytes into the tensor's data into buf
 * (mapping when present, pread otherwise). Thread-safe. */
int amg_st_read(const amg_st_file *f, const amg_st_tensor *t, uint64_t off,
                void *buf, size_t len, amg_err *err);

#endif
