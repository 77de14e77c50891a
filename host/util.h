/* SPDX-License-Identifier: Apache-2.0 */
/*
 * util.h - small helpers every host module shares: paths, whole-file I/O,
 * atomic replacement, size strings.
 */
#ifndef AMG_UTIL_H
#define AMG_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Join a directory and a name with one '/'. Returns a malloc'd string, or
 * NULL when out of memory. */
char *amg_path_join(const char *dir, const char *name);

/* 1 if path exists and is a directory / a regular file (after symlinks). */
int amg_is_dir(const char *path);
int amg_is_file(const char *path);

/* Open a regular file for reading: *fd and its *size, or an error naming
 * path (ENOTFOUND when it does not exist, EINVAL when it is a folder or a
 * device). Nothing stays open on failure. */
int amg_open_file(const char *path, int *fd, uint64_t *size, amg_err *err);

/* Read a whole file into a NUL-terminated malloc'd buffer; *len (optional)
 * receives the size without the NUL. Refuses files larger than max_len. */
int amg_read_file(const char *path, size_t max_len, char **data, size_t *len,
                  amg_err *err);

/* Write data to path atomically: a temporary sibling is written, fsync'd and
 * renamed over path, so readers see the old file or the whole new one. */
int amg_write_file_atomic(const char *path, const void *data, size_t len,
                          amg_err *err);

/* Write all of buf at offset with pwrite, retrying short writes and EINTR. */
int amg_pwrite_all(int fd, const void *buf, size_t len, uint64_t off,
                   const char *path, amg_err *err);

/* Read exactly len bytes at offset with pread; a short read is an error
 * naming path (the file is truncated). */
int amg_pread_all(int fd, void *buf, size_t len, uint64_t off,
                  const char *path, amg_err *err);

/* Parse a size such as "5GB", "500MB", "1.5GB", "4096" (bytes) or "2GiB".
 * Decimal units (KB, MB, GB, TB = powers of 1000) as transformers uses them;
 * binary units (KiB, MiB, GiB, TiB) are accepted too. Case-insensitive. */
int amg_parse_size(const char *s, uint64_t *out, amg_err *err);

/* Format a byte count for people ("1.50 GB", "512 B") into buf. */
void amg_format_bytes(uint64_t n, char *buf, size_t cap);

/* Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF)
 * as Rust's str::from_utf8, and no NUL byte. Returns the offset of the
 * first bad byte, or len when all of s is good; *is_nul says which rule
 * failed. */
uint64_t amg_utf8_check(const uint8_t *s, uint64_t len, int *is_nul);

/* Levenshtein distance between two names, for "did you mean" hints;
 * SIZE_MAX when either is longer than 64 bytes (no name worth suggesting
 * is). */
size_t amg_edit_distance(const char *a, const char *b);

/* Non-zero when this process is the build tree's own amalgam
 * (AMG_BUILD_EXE), so a run from the build folder uses the plugins and
 * backends built beside it rather than installed ones. Any other program,
 * installed or not, gets 0. */
int amg_is_build_exe(void);

/* Allocation helpers that return NULL on failure (never abort). */
char *amg_strdup(const char *s);

/* Overflow-checked multiply: returns 0 and sets *out, or -1 on overflow. */
static inline int amg_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a && b > UINT64_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}

#endif
