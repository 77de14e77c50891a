/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for host/util.c and host/error.c. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "testutil.h"
#include "util.h"

START_TEST(parse_size_units)
{
    static const struct { const char *s; uint64_t v; } ok[] = {
        { "5GB", 5000000000ULL },   { "500MB", 500000000ULL },
        { "1.5GB", 1500000000ULL }, { "4096", 4096ULL },
        { "10kb", 10000ULL },       { "2GiB", 2147483648ULL },
        { "1 MiB", 1048576ULL },    { "7B", 7ULL },
        { "1TB", 1000000000000ULL }, { "0", 0ULL },
    };
    size_t i;
    uint64_t v;
    amg_err e;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        amg_err_clear(&e);
        ck_assert_msg(amg_parse_size(ok[i].s, &v, &e) == AMG_OK, "%s: %s",
                      ok[i].s, e.msg);
        ck_assert_uint_eq(v, ok[i].v);
    }
}
END_TEST

START_TEST(parse_size_rejects)
{
    static const char *bad[] = { "", "GB", "5XB", "-1GB", "nan", "1e30TB",
                                 "5 G B" };
    size_t i;
    uint64_t v;
    amg_err e;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        amg_err_clear(&e);
        ck_assert_int_eq(amg_parse_size(bad[i], &v, &e), AMG_EINVAL);
        ck_assert_ptr_nonnull(strstr(e.msg, "invalid size"));
    }
}
END_TEST

START_TEST(format_bytes)
{
    char b[32];

    amg_format_bytes(512, b, sizeof(b));
    ck_assert_str_eq(b, "512 B");
    amg_format_bytes(1500000000ULL, b, sizeof(b));
    ck_assert_str_eq(b, "1.50 GB");
    amg_format_bytes(999999, b, sizeof(b));
    ck_assert_str_eq(b, "1000.00 kB");
}
END_TEST

START_TEST(path_join)
{
    char *p = amg_path_join("a/b", "c.json");

    ck_assert_str_eq(p, "a/b/c.json");
    free(p);
    p = amg_path_join("a/b/", "c");
    ck_assert_str_eq(p, "a/b/c");
    free(p);
}
END_TEST

START_TEST(errors_compose)
{
    amg_err e;

    amg_err_clear(&e);
    ck_assert_int_eq(e.status, AMG_OK);
    ck_assert_int_eq(amg_err_set(&e, AMG_EFORMAT, "bad %s", "header"),
                     AMG_EFORMAT);
    ck_assert_int_eq(amg_err_prefix(&e, "'%s': ", "m.safetensors"),
                     AMG_EFORMAT);
    ck_assert_str_eq(e.msg, "'m.safetensors': bad header");
    amg_err_errno(&e, AMG_EIO, ENOENT, "cannot open '%s'", "x");
    ck_assert_str_eq(e.msg, "cannot open 'x': No such file or directory");
    ck_assert_str_eq(amg_status_str(AMG_EFORMAT), "malformed file");
    ck_assert_str_eq(amg_status_str(999), "unknown status");
    ck_assert_int_eq(amg_err_set(NULL, AMG_EIO, "x"), AMG_EIO);
}
END_TEST

START_TEST(prefix_keeps_context_when_long)
{
    amg_err e;
    char big[2000];

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    amg_err_set(&e, AMG_EIO, "%s", big);
    amg_err_prefix(&e, "ctx: ");
    ck_assert_int_eq(strncmp(e.msg, "ctx: xxx", 8), 0);
    ck_assert_uint_eq(strlen(e.msg), AMG_ERR_MSG_MAX - 1);
}
END_TEST

START_TEST(atomic_write_and_read)
{
    char *dir = tu_mkdtemp();
    char *p = amg_path_join(dir, "f.json");
    char *data = NULL;
    size_t len = 0;
    amg_err e;

    ck_assert_int_eq(amg_write_file_atomic(p, "{\"a\":1}", 7, &e), AMG_OK);
    ck_assert_int_eq(amg_read_file(p, 1 << 20, &data, &len, &e), AMG_OK);
    ck_assert_uint_eq(len, 7);
    ck_assert_str_eq(data, "{\"a\":1}");
    free(data);
    /* replacing keeps exactly one file: the temporary is gone */
    ck_assert_int_eq(amg_write_file_atomic(p, "x", 1, &e), AMG_OK);
    ck_assert_int_eq(amg_read_file(p, 1 << 20, &data, &len, &e), AMG_OK);
    ck_assert_str_eq(data, "x");
    free(data);
    ck_assert_int_eq(amg_read_file(p, 0, &data, &len, &e), AMG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "too large"));
    free(p);
    p = amg_path_join(dir, "missing");
    ck_assert_int_eq(amg_read_file(p, 10, &data, &len, &e), AMG_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "No such file"));
    free(p);
    ck_assert_int_eq(amg_read_file(dir, 10, &data, &len, &e), AMG_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "not a regular file"));
    tu_rmtree(dir);
}
END_TEST

START_TEST(mul_overflow)
{
    uint64_t v;

    ck_assert_int_eq(amg_mul_u64(1ULL << 32, 1ULL << 31, &v), 0);
    ck_assert_uint_eq(v, 1ULL << 63);
    ck_assert_int_eq(amg_mul_u64(1ULL << 32, 1ULL << 32, &v), -1);
    ck_assert_int_eq(amg_mul_u64(0, UINT64_MAX, &v), 0);
    ck_assert_uint_eq(v, 0);
}
END_TEST

START_TEST(edit_distance)
{
    char long_name[80];

    ck_assert_uint_eq(amg_edit_distance("ties", "ties"), 0);
    ck_assert_uint_eq(amg_edit_distance("tiess", "ties"), 1);
    ck_assert_uint_eq(amg_edit_distance("kitten", "sitting"), 3);
    ck_assert_uint_eq(amg_edit_distance("", "abc"), 3);
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    ck_assert_uint_eq(amg_edit_distance(long_name, "a"), SIZE_MAX);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, parse_size_units);
    tcase_add_test(tc, parse_size_rejects);
    tcase_add_test(tc, format_bytes);
    tcase_add_test(tc, path_join);
    tcase_add_test(tc, errors_compose);
    tcase_add_test(tc, prefix_keeps_context_when_long);
    tcase_add_test(tc, atomic_write_and_read);
    tcase_add_test(tc, mul_overflow);
    tcase_add_test(tc, edit_distance);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
