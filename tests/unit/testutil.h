/* SPDX-License-Identifier: Apache-2.0 */
/*
 * testutil.h - helpers shared by the check unit tests: scratch folders and
 * raw file writing. Header-only so each test stays one translation unit.
 */
#ifndef AMG_TESTUTIL_H
#define AMG_TESTUTIL_H

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh scratch folder under $TMPDIR (or /tmp); removed by tu_rmtree. */
static inline char *tu_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char *p = malloc(4096);

    ck_assert_ptr_nonnull(p);
    snprintf(p, 4096, "%s/amgtest-XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(p));
    return p;
}

static inline void tu_rmtree(char *dir)
{
    char cmd[4200];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}

/* Write len bytes to dir/name; returns the malloc'd path. */
static inline char *tu_write(const char *dir, const char *name,
                             const void *data, size_t len)
{
    char *p = malloc(4096);
    FILE *f;

    ck_assert_ptr_nonnull(p);
    snprintf(p, 4096, "%s/%s", dir, name);
    f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
    return p;
}

/* Write a safetensors file from a header string and data bytes: the u64
 * length prefix is computed from strlen(header). */
static inline char *tu_write_st(const char *dir, const char *name,
                                const char *header, const void *data,
                                size_t data_len)
{
    size_t hl = strlen(header);
    size_t total = 8 + hl + data_len;
    unsigned char *buf = malloc(total ? total : 1);
    uint64_t n = hl;
    char *p;
    int i;

    ck_assert_ptr_nonnull(buf);
    for (i = 0; i < 8; i++)
        buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (data_len)
        memcpy(buf + 8 + hl, data, data_len);
    p = tu_write(dir, name, buf, total);
    free(buf);
    return p;
}

/* Run a suite; returns the process exit status for the automake harness. */
static inline int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
