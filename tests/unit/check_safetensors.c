/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for host/safetensors.c and host/shard_index.c: a corpus of
 * malformed files, each rejected with the rule and the tensor named; valid
 * but unusual layouts accepted with their bytes read back exactly; the shard
 * index parsed, rejected and written byte for byte as transformers does.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "safetensors.h"
#include "shard_index.h"
#include "testutil.h"
#include "util.h"

/* ---- helpers ---- */

#define has(msg, sub) \
    ck_assert_msg(strstr((msg), (sub)) != NULL, \
                  "message lacks \"%s\": %s", (sub), (msg))

/* Write raw bytes as a file, open it both ways (mapped and header-only) and
 * expect the same status and a message holding each of sub1..sub3 (NULL to
 * skip) and the file's name. */
static void expect_bad_raw(const void *bytes, size_t len, int status,
                           const char *sub1, const char *sub2,
                           const char *sub3)
{
    char *dir = tu_mkdtemp();
    char *path = tu_write(dir, "bad.safetensors", bytes, len);
    unsigned modes[2] = { 0, AMG_ST_HEADER_ONLY };
    int m;

    for (m = 0; m < 2; m++) {
        amg_st_file f;
        amg_err e;

        amg_err_clear(&e);
        ck_assert_int_eq(amg_st_open(&f, path, modes[m], &e), status);
        ck_assert_int_eq(e.status, status);
        has(e.msg, "bad.safetensors");
        if (sub1)
            has(e.msg, sub1);
        if (sub2)
            has(e.msg, sub2);
        if (sub3)
            has(e.msg, sub3);
        /* left closed: all fields cleared, closing again is harmless */
        ck_assert_int_eq(f.fd, -1);
        ck_assert_ptr_null(f.tensors);
        ck_assert_ptr_null(f.path);
        amg_st_close(&f);
    }
    free(path);
    tu_rmtree(dir);
}

static void expect_bad(const char *header, size_t data_len, int status,
                       const char *sub1, const char *sub2, const char *sub3)
{
    size_t hl = strlen(header);
    unsigned char *buf = calloc(1, 8 + hl + data_len);
    int i;

    ck_assert_ptr_nonnull(buf);
    for (i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    expect_bad_raw(buf, 8 + hl + data_len, status, sub1, sub2, sub3);
    free(buf);
}

/* Open a valid file both ways; the caller closes. */
static void open_ok(amg_st_file *f, const char *path, unsigned flags)
{
    amg_err e;

    amg_err_clear(&e);
    ck_assert_msg(amg_st_open(f, path, flags, &e) == AMG_OK, "%s", e.msg);
    ck_assert_int_ge(f->fd, 0);
}

/* 0, 1, 2, ...: data whose every byte tells where it came from */
static unsigned char seq[128];

#define T_F32_2(off0, off1) \
    "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" #off0 "," #off1 "]}"

/* ---- malformed files: the reference reader's rules ---- */

START_TEST(bad_too_small)
{
    expect_bad_raw("\x03\0\0", 3, AMG_EFORMAT, "header too small", "3 bytes",
                   NULL);
}
END_TEST

START_TEST(bad_empty_file)
{
    expect_bad_raw("", 0, AMG_EFORMAT, "header too small", NULL, NULL);
}
END_TEST

START_TEST(bad_header_too_large)
{
    /* N = 100,000,001: one past the limit */
    static const unsigned char b[16] = { 0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0,
                                         '{', '}' };
    expect_bad_raw(b, sizeof(b), AMG_EFORMAT, "header too large",
                   "100000001", NULL);
}
END_TEST

START_TEST(bad_header_len_huge)
{
    static const unsigned char b[10] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, '{', '}' };
    expect_bad_raw(b, sizeof(b), AMG_EFORMAT, "header too large", NULL, NULL);
}
END_TEST

START_TEST(bad_header_beyond_file)
{
    static const unsigned char b[12] = { 100, 0, 0, 0, 0, 0, 0, 0,
                                         '{', '}', ' ', ' ' };
    expect_bad_raw(b, sizeof(b), AMG_EFORMAT, "invalid header length",
                   "100 bytes", NULL);
}
END_TEST

START_TEST(bad_not_json)
{
    expect_bad("{\"a\": ", 0, AMG_EFORMAT, "invalid JSON in header", NULL,
               NULL);
}
END_TEST

START_TEST(bad_trailing_garbage_in_header)
{
    expect_bad("{} x", 0, AMG_EFORMAT, "invalid JSON in header", NULL, NULL);
}
END_TEST

START_TEST(bad_not_object)
{
    expect_bad("42", 0, AMG_EFORMAT, "header must be a JSON object",
               "an integer", NULL);
}
END_TEST

START_TEST(bad_array_header)
{
    expect_bad("[{\"a\":1}]", 0, AMG_EFORMAT, "header must be a JSON object",
               "an array", NULL);
}
END_TEST

START_TEST(bad_utf8)
{
    expect_bad("{\"w\xff\":" T_F32_2(0, 8) "}", 8, AMG_EFORMAT,
               "invalid UTF-8 in header", "byte 3", NULL);
}
END_TEST

START_TEST(bad_utf8_overlong)
{
    /* 0xC0 0xAF is an overlong '/': Rust's from_utf8 refuses it */
    expect_bad("{\"w\xc0\xaf\":" T_F32_2(0, 8) "}", 8, AMG_EFORMAT,
               "invalid UTF-8 in header", NULL, NULL);
}
END_TEST

START_TEST(bad_utf8_surrogate)
{
    /* ED A0 80 encodes U+D800 */
    expect_bad("{\"w\xed\xa0\x80\":" T_F32_2(0, 8) "}", 8, AMG_EFORMAT,
               "invalid UTF-8 in header", NULL, NULL);
}
END_TEST

START_TEST(bad_nul_byte)
{
    static const unsigned char b[] = { 4, 0, 0, 0, 0, 0, 0, 0,
                                       '{', '}', 0, ' ' };
    expect_bad_raw(b, sizeof(b), AMG_EFORMAT, "NUL byte", "byte 2", NULL);
}
END_TEST

START_TEST(bad_nul_escape_in_name)
{
    expect_bad("{\"a\\u0000b\":" T_F32_2(0, 8) "}", 8, AMG_EFORMAT,
               "invalid JSON in header", "NUL", NULL);
}
END_TEST

START_TEST(bad_unknown_dtype)
{
    expect_bad("{\"w\":{\"dtype\":\"F33\",\"shape\":[2],"
               "\"data_offsets\":[0,8]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "unknown dtype 'F33'", NULL);
}
END_TEST

START_TEST(bad_dtype_case)
{
    /* safetensors dtype names are case-sensitive */
    expect_bad("{\"w\":{\"dtype\":\"f32\",\"shape\":[2],"
               "\"data_offsets\":[0,8]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "unknown dtype 'f32'", NULL);
}
END_TEST

START_TEST(bad_unsupported_dtype)
{
    expect_bad("{\"w\":{\"dtype\":\"U16\",\"shape\":[4],"
               "\"data_offsets\":[0,8]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "dtype 'U16' is not supported", NULL);
}
END_TEST

START_TEST(bad_unsupported_dtype_f4)
{
    expect_bad("{\"w\":{\"dtype\":\"F4\",\"shape\":[16],"
               "\"data_offsets\":[0,8]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "dtype 'F4' is not supported", NULL);
}
END_TEST

START_TEST(bad_dtype_not_string)
{
    expect_bad("{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}",
               8, AMG_EFORMAT, "tensor 'w'", "dtype must be a string", NULL);
}
END_TEST

START_TEST(bad_shape_not_array)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":2,"
               "\"data_offsets\":[0,8]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "shape must be an array", NULL);
}
END_TEST

START_TEST(bad_negative_dim)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],"
               "\"data_offsets\":[0,8]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "shape[1] must be a non-negative integer",
               "-1 is negative");
}
END_TEST

START_TEST(bad_fractional_dim)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],"
               "\"data_offsets\":[0,8]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "shape[0] must be a non-negative integer",
               "2.5 is not an integer");
}
END_TEST

START_TEST(bad_exponent_dim)
{
    /* serde_json reads 2e0 as a float, which usize refuses */
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2e0],"
               "\"data_offsets\":[0,8]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "not an integer", NULL);
}
END_TEST

START_TEST(bad_string_dim)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],"
               "\"data_offsets\":[0,8]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "shape[0]", "got a string");
}
END_TEST

START_TEST(bad_too_many_dims)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],"
               "\"data_offsets\":[0,8]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "9 dimensions", "8 supported");
}
END_TEST

START_TEST(bad_offsets_short)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
               "\"data_offsets\":[0]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "exactly two integers", "too short");
}
END_TEST

START_TEST(bad_offsets_long)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
               "\"data_offsets\":[0,8,8]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "exactly two integers", "too long");
}
END_TEST

START_TEST(bad_offsets_not_array)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
               "\"data_offsets\":{\"begin\":0}}}", 8, AMG_EFORMAT,
               "tensor 'w'", "data_offsets must be an array", NULL);
}
END_TEST

START_TEST(bad_offset_negative)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],"
               "\"data_offsets\":[-8,0]}}", 0, AMG_EFORMAT,
               "tensor 'w'", "data_offsets begin", "-8 is negative");
}
END_TEST

START_TEST(bad_offset_fractional)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
               "\"data_offsets\":[0,8.0]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "data_offsets end", "not an integer");
}
END_TEST

START_TEST(bad_begin_after_end)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
               "\"data_offsets\":[8,0]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "[8, 0]", "begin is greater than end");
}
END_TEST

START_TEST(bad_first_not_zero)
{
    expect_bad("{\"w\":" T_F32_2(4, 12) "}", 12, AMG_EFORMAT,
               "tensor 'w'", "begins at byte 4, not 0", NULL);
}
END_TEST

START_TEST(bad_hole)
{
    expect_bad("{\"a\":" T_F32_2(0, 8) ",\"b\":" T_F32_2(12, 20) "}", 20,
               AMG_EFORMAT, "hole", "tensor 'a' ends at byte 8",
               "tensor 'b', begins at byte 12");
}
END_TEST

START_TEST(bad_overlap)
{
    expect_bad("{\"a\":" T_F32_2(0, 8) ",\"b\":" T_F32_2(4, 12) "}", 12,
               AMG_EFORMAT, "overlap", "tensor 'b' begins at byte 4",
               "inside tensor 'a' which ends at byte 8");
}
END_TEST

START_TEST(bad_json_attack)
{
    /* the reference's test_json_attack: many tensors claiming one span */
    expect_bad("{\"a\":" T_F32_2(0, 8) ",\"b\":" T_F32_2(0, 8)
               ",\"c\":" T_F32_2(0, 8) "}", 8,
               AMG_EFORMAT, "overlap", "tensor 'b' begins at byte 0",
               "inside tensor 'a'");
}
END_TEST

START_TEST(bad_size_mismatch)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],"
               "\"data_offsets\":[0,12]}}", 12, AMG_EFORMAT,
               "tensor 'w'", "size mismatch",
               "span 12 bytes but shape [2, 2] of F32 needs 16");
}
END_TEST

START_TEST(bad_trailing_bytes)
{
    expect_bad("{\"w\":" T_F32_2(0, 8) "}", 12, AMG_EFORMAT,
               "4 trailing bytes", "the tensors cover 8", NULL);
}
END_TEST

START_TEST(bad_trailing_bytes_empty_header)
{
    expect_bad("{}", 1, AMG_EFORMAT, "1 trailing bytes", NULL, NULL);
}
END_TEST

START_TEST(bad_truncated_data)
{
    expect_bad("{\"a\":" T_F32_2(0, 8) ",\"w\":{\"dtype\":\"F32\","
               "\"shape\":[4],\"data_offsets\":[8,24]}}", 20, AMG_EFORMAT,
               "truncated", "tensor 'w' ends at byte 24",
               "has only 20 bytes");
}
END_TEST

START_TEST(bad_duplicate_name)
{
    expect_bad("{\"w\":" T_F32_2(0, 8) ",\"w\":" T_F32_2(8, 16) "}", 16,
               AMG_EFORMAT, "duplicate tensor name 'w'", NULL, NULL);
}
END_TEST

START_TEST(bad_duplicate_key_in_entry)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[2],"
               "\"data_offsets\":[0,8]}}", 8, AMG_EFORMAT,
               "duplicate key 'dtype'", NULL, NULL);
}
END_TEST

START_TEST(bad_metadata_value)
{
    expect_bad("{\"__metadata__\":{\"format\":\"pt\",\"step\":5},"
               "\"w\":" T_F32_2(0, 8) "}", 8, AMG_EFORMAT,
               "__metadata__ value for key 'step' must be a string",
               "an integer", NULL);
}
END_TEST

START_TEST(bad_metadata_not_object)
{
    expect_bad("{\"__metadata__\":[\"pt\"],\"w\":" T_F32_2(0, 8) "}", 8,
               AMG_EFORMAT, "__metadata__ must be an object", NULL, NULL);
}
END_TEST

START_TEST(bad_extra_key)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
               "\"data_offsets\":[0,8],\"strides\":[1]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "unknown key 'strides'", NULL);
}
END_TEST

START_TEST(bad_missing_key)
{
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "lacks 'data_offsets'", NULL);
}
END_TEST

START_TEST(bad_missing_dtype)
{
    expect_bad("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
               AMG_EFORMAT, "tensor 'w'", "lacks 'dtype'", NULL);
}
END_TEST

START_TEST(bad_entry_not_object)
{
    expect_bad("{\"w\":[0,8]}", 8, AMG_EFORMAT, "tensor 'w'",
               "entry must be an object", NULL);
}
END_TEST

START_TEST(bad_shape_overflow)
{
    /* 2^32 * 2^32 = 2^64 does not fit */
    expect_bad("{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],"
               "\"data_offsets\":[0,8]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "element count", "overflows");
}
END_TEST

START_TEST(bad_bytes_overflow)
{
    /* 2^62 elements fit, 2^62 * 4 bytes do not */
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
               "\"data_offsets\":[0,8]}}", 8, AMG_EFORMAT,
               "tensor 'w'", "byte size", "overflows");
}
END_TEST

START_TEST(bad_huge_integer)
{
    /* beyond int64: jansson's limit; the span could never match anyway */
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
               "\"data_offsets\":[0,99999999999999999999]}}", 8,
               AMG_EFORMAT, "invalid JSON in header", "too big integer",
               NULL);
}
END_TEST

START_TEST(bad_missing_file)
{
    char *dir = tu_mkdtemp();
    char path[4200];
    amg_st_file f;
    amg_err e;

    snprintf(path, sizeof(path), "%s/none.safetensors", dir);
    ck_assert_int_eq(amg_st_open(&f, path, 0, &e), AMG_ENOTFOUND);
    has(e.msg, "cannot open");
    has(e.msg, "none.safetensors");
    ck_assert_int_eq(amg_st_open(&f, dir, 0, &e), AMG_EINVAL);
    has(e.msg, "not a regular file");
    amg_st_close(&f);
    tu_rmtree(dir);
}
END_TEST

/* ---- valid but unusual layouts ---- */

/* Open path both ways and check tensor `name` holds want[0..len). */
static void check_bytes(const char *path, const char *name,
                        const unsigned char *want, size_t len)
{
    unsigned modes[2] = { 0, AMG_ST_HEADER_ONLY };
    unsigned char got[64];
    int m;

    ck_assert_uint_le(len, sizeof(got));
    for (m = 0; m < 2; m++) {
        amg_st_file f;
        const amg_st_tensor *t;
        amg_err e;

        open_ok(&f, path, modes[m]);
        t = amg_st_find(&f, name);
        ck_assert_msg(t != NULL, "tensor %s not found", name);
        ck_assert_uint_eq(t->end - t->begin, len);
        if (m == 0) {
            ck_assert_ptr_nonnull(amg_st_data(&f, t));
            ck_assert_int_eq(memcmp(amg_st_data(&f, t), want, len), 0);
        } else {
            ck_assert_ptr_null(amg_st_data(&f, t));
        }
        memset(got, 0xAA, sizeof(got));
        ck_assert_int_eq(amg_st_read(&f, t, 0, got, len, &e), AMG_OK);
        ck_assert_int_eq(memcmp(got, want, len), 0);
        if (len > 1) {
            memset(got, 0xAA, sizeof(got));
            ck_assert_int_eq(amg_st_read(&f, t, 1, got, len - 1, &e), AMG_OK);
            ck_assert_int_eq(memcmp(got, want + 1, len - 1), 0);
            ck_assert_uint_eq(got[len - 1], 0xAA);
        }
        amg_st_close(&f);
        amg_st_close(&f);  /* closing twice is harmless */
    }
}

START_TEST(ok_whitespace_around_header)
{
    static const char *hdrs[] = {
        " \t\n\r{\"w\":" T_F32_2(0, 8) "}",
        "{\"w\":" T_F32_2(0, 8) "}\r \t\n",
        "\t\n{\"w\":" T_F32_2(0, 8) "}\r\n   ",
        "{\"w\" : {\n  \"dtype\" : \"F32\",\n  \"shape\" : [ 2 ],\n"
        "  \"data_offsets\" : [ 0 , 8 ]\n} }",
    };
    char *dir = tu_mkdtemp();
    size_t i;

    for (i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        char *p = tu_write_st(dir, "ws.safetensors", hdrs[i], seq + 3, 8);
        check_bytes(p, "w", seq + 3, 8);
        free(p);
    }
    tu_rmtree(dir);
}
END_TEST

START_TEST(ok_space_padded_header)
{
    /* as the reference writer pads: to a multiple of 8 with spaces */
    char hdr[128];
    char *dir = tu_mkdtemp(), *p;
    size_t n;

    snprintf(hdr, sizeof(hdr), "{\"w\":" T_F32_2(0, 8) "}");
    n = strlen(hdr);
    while (n % 8 || n < 64)
        hdr[n++] = ' ';
    hdr[n] = '\0';
    p = tu_write_st(dir, "pad.safetensors", hdr, seq, 8);
    check_bytes(p, "w", seq, 8);
    free(p);
    tu_rmtree(dir);
}
END_TEST

START_TEST(ok_empty_header)
{
    static const char *hdrs[] = { "{}", "{}      ", "  {  }  " };
    char *dir = tu_mkdtemp();
    size_t i;

    for (i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        char *p = tu_write_st(dir, "e.safetensors", hdrs[i], NULL, 0);
        amg_st_file f;

        open_ok(&f, p, 0);
        ck_assert_uint_eq(f.n_tensors, 0);
        ck_assert_uint_eq(f.n_meta, 0);
        ck_assert_uint_eq(f.header_len, strlen(hdrs[i]));
        ck_assert_uint_eq(f.data_start, 8 + strlen(hdrs[i]));
        ck_assert_uint_eq(f.file_size, 8 + strlen(hdrs[i]));
        ck_assert_ptr_null(amg_st_find(&f, "w"));
        amg_st_close(&f);
        open_ok(&f, p, AMG_ST_HEADER_ONLY);
        ck_assert_uint_eq(f.n_tensors, 0);
        amg_st_close(&f);
        free(p);
    }
    tu_rmtree(dir);
}
END_TEST

START_TEST(ok_scalar)
{
    char *dir = tu_mkdtemp();
    char *p = tu_write_st(dir, "s.safetensors",
                          "{\"s\":{\"dtype\":\"F32\",\"shape\":[],"
                          "\"data_offsets\":[0,4]}}", seq + 9, 4);
    amg_st_file f;
    const amg_st_tensor *t;

    open_ok(&f, p, 0);
    t = amg_st_find(&f, "s");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, 0);
    ck_assert_uint_eq(t->numel, 1);
    ck_assert_int_eq(t->dtype, AMG_DT_F32);
    amg_st_close(&f);
    check_bytes(p, "s", seq + 9, 4);
    free(p);
    tu_rmtree(dir);
}
END_TEST

START_TEST(ok_zero_size_tensors)
{
    /* empty tensors at the start, in the middle and at the end, and one
     * whose offsets equal its neighbour's end */
    char *dir = tu_mkdtemp();
    char *p = tu_write_st(dir, "z.safetensors",
                          "{\"z0\":{\"dtype\":\"F32\",\"shape\":[0],"
                          "\"data_offsets\":[0,0]},"
                          "\"a\":" T_F32_2(0, 8) ","
                          "\"z1\":{\"dtype\":\"BF16\",\"shape\":[3,0,2],"
                          "\"data_offsets\":[8,8]},"
                          "\"b\":{\"dtype\":\"U8\",\"shape\":[2],"
                          "\"data_offsets\":[8,10]},"
                          "\"z2\":{\"dtype\":\"I64\",\"shape\":[0,7],"
                          "\"data_offsets\":[10,10]}}", seq, 10);
    amg_st_file f;
    const amg_st_tensor *t;
    amg_err e;
    unsigned char c;

    open_ok(&f, p, 0);
    ck_assert_uint_eq(f.n_tensors, 5);
    t = amg_st_find(&f, "z1");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->numel, 0);
    ck_assert_int_eq(t->ndim, 3);
    ck_assert_uint_eq(t->begin, t->end);
    ck_assert_int_eq(amg_st_read(&f, t, 0, &c, 0, &e), AMG_OK);
    ck_assert_int_eq(amg_st_read(&f, t, 0, &c, 1, &e), AMG_ERANGE);
    has(e.msg, "tensor 'z1'");
    t = amg_st_find(&f, "z2");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->begin, 10);
    /* offset order: z0, a, z1, b, z2 */
    ck_assert_str_eq(f.tensors[0].name, "z0");
    ck_assert_str_eq(f.tensors[1].name, "a");
    ck_assert_str_eq(f.tensors[2].name, "z1");
    ck_assert_str_eq(f.tensors[3].name, "b");
    ck_assert_str_eq(f.tensors[4].name, "z2");
    amg_st_close(&f);
    check_bytes(p, "a", seq, 8);
    check_bytes(p, "b", seq + 8, 2);
    free(p);
    tu_rmtree(dir);
}
END_TEST

START_TEST(ok_key_order_differs)
{
    /* header lists c, a, b; data order is a, b, c */
    char *dir = tu_mkdtemp();
    char *p = tu_write_st(dir, "o.safetensors",
                          "{\"c\":{\"dtype\":\"I16\",\"shape\":[3],"
                          "\"data_offsets\":[12,18]},"
                          "\"a\":" T_F32_2(0, 8) ","
                          "\"b\":{\"dtype\":\"F16\",\"shape\":[2],"
                          "\"data_offsets\":[8,12]}}", seq, 18);
    amg_st_file f;

    open_ok(&f, p, 0);
    ck_assert_uint_eq(f.n_tensors, 3);
    ck_assert_str_eq(f.tensors[0].name, "a");
    ck_assert_str_eq(f.tensors[1].name, "b");
    ck_assert_str_eq(f.tensors[2].name, "c");
    ck_assert_int_eq(amg_st_find(&f, "c")->dtype, AMG_DT_I16);
    ck_assert_int_eq(amg_st_find(&f, "b")->dtype, AMG_DT_F16);
    amg_st_close(&f);
    check_bytes(p, "a", seq, 8);
    check_bytes(p, "b", seq + 8, 4);
    check_bytes(p, "c", seq + 12, 6);
    free(p);
    tu_rmtree(dir);
}
END_TEST

START_TEST(ok_metadata)
{
    char *dir = tu_mkdtemp();
    char *p = tu_write_st(dir, "m.safetensors",
                          "{\"w\":" T_F32_2(0, 8) ",\"__metadata__\":"
                          "{\"format\":\"pt\",\"note\":\"h\\u00e9\"}}",
                          seq, 8);
    char *q = tu_write_st(dir, "n.safetensors",
                          "{\"__metadata__\":null,\"w\":" T_F32_2(0, 8) "}",
                          seq, 8);
    amg_st_file f;

    open_ok(&f, p, AMG_ST_HEADER_ONLY);
    ck_assert_uint_eq(f.n_tensors, 1);
    ck_assert_uint_eq(f.n_meta, 2);
    ck_assert_str_eq(f.meta[0].key, "format");
    ck_assert_str_eq(amg_st_meta_get(&f, "format"), "pt");
    ck_assert_str_eq(amg_st_meta_get(&f, "note"), "h\xc3\xa9");
    ck_assert_ptr_null(amg_st_meta_get(&f, "missing"));
    ck_assert_ptr_null(amg_st_find(&f, "__metadata__"));
    amg_st_close(&f);
    open_ok(&f, q, 0);
    ck_assert_uint_eq(f.n_tensors, 1);
    ck_assert_uint_eq(f.n_meta, 0);
    amg_st_close(&f);
    free(p);
    free(q);
    tu_rmtree(dir);
}
END_TEST

START_TEST(ok_f64_aligned)
{
    /* the reference writer pads the header so 8 + N is a multiple of 8:
     * F64 data is then aligned in the mapping */
    double vals[3] = { 1.5, -2.25, 1e300 }, back[3];
    char hdr[128];
    char *dir = tu_mkdtemp(), *p;
    const amg_st_tensor *t;
    amg_st_file f;
    amg_err e;
    size_t n;

    snprintf(hdr, sizeof(hdr), "{\"d\":{\"dtype\":\"F64\",\"shape\":[3],"
             "\"data_offsets\":[0,24]}}");
    n = strlen(hdr);
    while (n % 8)
        hdr[n++] = ' ';
    hdr[n] = '\0';
    p = tu_write_st(dir, "d.safetensors", hdr, vals, sizeof(vals));
    open_ok(&f, p, 0);
    t = amg_st_find(&f, "d");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(f.data_start % 8, 0);
    ck_assert_uint_eq((uintptr_t)amg_st_data(&f, t) % 8, 0);
    ck_assert(((const double *)amg_st_data(&f, t))[2] == 1e300);
    ck_assert_int_eq(amg_st_read(&f, t, 8, back, 16, &e), AMG_OK);
    ck_assert(back[0] == -2.25 && back[1] == 1e300);
    ck_assert_int_eq(amg_st_read(&f, t, 8, back, 24, &e), AMG_ERANGE);
    has(e.msg, "tensor 'd'");
    has(e.msg, "d.safetensors");
    amg_st_close(&f);
    free(p);
    tu_rmtree(dir);
}
END_TEST

START_TEST(ok_every_dtype)
{
    static const struct { const char *name; amg_dtype t; size_t sz; } dt[] = {
        { "F64", AMG_DT_F64, 8 },   { "F32", AMG_DT_F32, 4 },
        { "F16", AMG_DT_F16, 2 },   { "BF16", AMG_DT_BF16, 2 },
        { "I64", AMG_DT_I64, 8 },   { "I32", AMG_DT_I32, 4 },
        { "I16", AMG_DT_I16, 2 },   { "I8", AMG_DT_I8, 1 },
        { "U8", AMG_DT_U8, 1 },     { "BOOL", AMG_DT_BOOL, 1 },
        { "F8_E4M3", AMG_DT_F8_E4M3, 1 }, { "F8_E5M2", AMG_DT_F8_E5M2, 1 },
    };
    char hdr[2048];
    size_t i, n = 0, off = 0;
    char *dir = tu_mkdtemp(), *p;
    amg_st_file f;

    n += (size_t)snprintf(hdr + n, sizeof(hdr) - n, "{");
    for (i = 0; i < sizeof(dt) / sizeof(dt[0]); i++) {
        n += (size_t)snprintf(hdr + n, sizeof(hdr) - n,
                              "%s\"t_%s\":{\"dtype\":\"%s\",\"shape\":[1,2],"
                              "\"data_offsets\":[%zu,%zu]}", i ? "," : "",
                              dt[i].name, dt[i].name, off, off + 2 * dt[i].sz);
        off += 2 * dt[i].sz;
    }
    snprintf(hdr + n, sizeof(hdr) - n, "}");
    ck_assert_uint_le(off, sizeof(seq));
    p = tu_write_st(dir, "all.safetensors", hdr, seq, off);
    open_ok(&f, p, 0);
    ck_assert_uint_eq(f.n_tensors, sizeof(dt) / sizeof(dt[0]));
    for (i = 0; i < sizeof(dt) / sizeof(dt[0]); i++) {
        char name[32];
        const amg_st_tensor *t;

        snprintf(name, sizeof(name), "t_%s", dt[i].name);
        t = amg_st_find(&f, name);
        ck_assert_msg(t != NULL, "%s", name);
        ck_assert_int_eq(t->dtype, dt[i].t);
        ck_assert_uint_eq(t->numel, 2);
        ck_assert_uint_eq(t->shape[0], 1);
        ck_assert_uint_eq(t->shape[1], 2);
    }
    amg_st_close(&f);
    free(p);
    tu_rmtree(dir);
}
END_TEST

START_TEST(ok_many_tensors_find)
{
    /* 500 tensors named in an order unrelated to their offsets; every one
     * is found by name, and a few absent names are not */
    enum { N = 500 };
    size_t cap = N * 96 + 16, n = 0, i;
    char *hdr = malloc(cap);
    unsigned char *data = malloc(N);
    char *dir = tu_mkdtemp(), *p;
    amg_st_file f;

    ck_assert_ptr_nonnull(hdr);
    ck_assert_ptr_nonnull(data);
    n += (size_t)snprintf(hdr + n, cap - n, "{");
    for (i = 0; i < N; i++) {
        size_t k = (i * 7919) % N;  /* a permutation of 0..N-1 */
        n += (size_t)snprintf(hdr + n, cap - n,
                              "%s\"layers.%zu.w\":{\"dtype\":\"U8\","
                              "\"shape\":[1],\"data_offsets\":[%zu,%zu]}",
                              i ? "," : "", i, k, k + 1);
        data[k] = (unsigned char)i;
    }
    snprintf(hdr + n, cap - n, "}");
    p = tu_write_st(dir, "many.safetensors", hdr, data, N);
    open_ok(&f, p, AMG_ST_HEADER_ONLY);
    ck_assert_uint_eq(f.n_tensors, N);
    for (i = 0; i < N; i++) {
        char name[32];
        const amg_st_tensor *t;
        unsigned char c;
        amg_err e;

        snprintf(name, sizeof(name), "layers.%zu.w", i);
        t = amg_st_find(&f, name);
        ck_assert_msg(t != NULL, "%s", name);
        ck_assert_uint_eq(t->begin, (i * 7919) % N);
        ck_assert_int_eq(amg_st_read(&f, t, 0, &c, 1, &e), AMG_OK);
        ck_assert_uint_eq(c, (unsigned char)i);
        ck_assert_uint_eq(f.tensors[i].begin, i);  /* offset order */
    }
    ck_assert_ptr_null(amg_st_find(&f, "layers.500.w"));
    ck_assert_ptr_null(amg_st_find(&f, ""));
    ck_assert_ptr_null(amg_st_find(&f, "zzz"));
    ck_assert_ptr_null(amg_st_find(&f, "layers.1"));
    amg_st_close(&f);
    free(p);
    free(hdr);
    free(data);
    tu_rmtree(dir);
}
END_TEST

START_TEST(ok_unicode_and_odd_names)
{
    char *dir = tu_mkdtemp();
    char *p = tu_write_st(dir, "u.safetensors",
                          "{\"\":" T_F32_2(0, 8) ",\"caf\xc3\xa9\":"
                          T_F32_2(8, 16) ",\"q\\\"\\\\\\/\\n\":"
                          T_F32_2(16, 24) "}", seq, 24);
    amg_st_file f;

    open_ok(&f, p, 0);
    ck_assert_uint_eq(f.n_tensors, 3);
    ck_assert_ptr_nonnull(amg_st_find(&f, ""));
    ck_assert_ptr_nonnull(amg_st_find(&f, "caf\xc3\xa9"));
    ck_assert_ptr_nonnull(amg_st_find(&f, "q\"\\/\n"));
    ck_assert_uint_eq(amg_st_find(&f, "caf\xc3\xa9")->begin, 8);
    amg_st_close(&f);
    free(p);
    tu_rmtree(dir);
}
END_TEST

START_TEST(parse_header_from_memory)
{
    static const char hdr[] = "{\"w\":" T_F32_2(0, 8) "}";
    amg_st_file f;
    const amg_st_tensor *t;
    unsigned char c;
    amg_err e;

    ck_assert_int_eq(amg_st_parse_header(&f, "mem", (const uint8_t *)hdr,
                                         strlen(hdr), 8, &e), AMG_OK);
    ck_assert_int_eq(f.fd, -1);
    ck_assert_ptr_null(f.map);
    ck_assert_uint_eq(f.file_size, 8 + strlen(hdr) + 8);
    t = amg_st_find(&f, "w");
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_null(amg_st_data(&f, t));
    ck_assert_int_eq(amg_st_read(&f, t, 0, &c, 1, &e), AMG_EINVAL);
    has(e.msg, "'mem'");
    amg_st_close(&f);

    ck_assert_int_eq(amg_st_parse_header(&f, "mem", (const uint8_t *)hdr,
                                         strlen(hdr), 9, &e), AMG_EFORMAT);
    has(e.msg, "'mem'");
    has(e.msg, "trailing bytes");
    ck_assert_int_eq(amg_st_parse_header(&f, "mem", (const uint8_t *)hdr,
                                         AMG_ST_MAX_HEADER + 1, 0, &e),
                     AMG_EFORMAT);
    has(e.msg, "header too large");
    amg_st_close(&f);
}
END_TEST

START_TEST(close_zeroed)
{
    amg_st_file f;

    memset(&f, 0, sizeof(f));
    amg_st_close(&f);  /* fd 0 without a path is not ours: left alone */
    ck_assert_int_eq(f.fd, -1);
    amg_st_close(NULL);
}
END_TEST

/* ---- shard index ---- */

static const char index_ok[] =
    "{\n"
    "  \"metadata\": {\n"
    "    \"total_size\": 1234\n"
    "  },\n"
    "  \"weight_map\": {\n"
    "    \"lm_head.weight\": \"model-00002-of-00002.safetensors\",\n"
    "    \"model.embed_tokens.weight\": "
    "\"model-00001-of-00002.safetensors\",\n"
    "    \"model.layers.0.mlp.up_proj.weight\": "
    "\"model-00001-of-00002.safetensors\",\n"
    "    \"model.norm.weight\": \"model-00002-of-00002.safetensors\"\n"
    "  }\n"
    "}\n";

START_TEST(index_parse_valid)
{
    /* keys out of order and a different layout: parsed, names sorted */
    static const char text[] =
        "{\"weight_map\":{\"model.norm.weight\":"
        "\"model-00002-of-00002.safetensors\",\"model.embed_tokens.weight\":"
        "\"model-00001-of-00002.safetensors\",\"lm_head.weight\":"
        "\"model-00002-of-00002.safetensors\","
        "\"model.layers.0.mlp.up_proj.weight\":"
        "\"model-00001-of-00002.safetensors\"},"
        "\"metadata\":{\"total_parameters\":300,\"total_size\":1234}}";
    amg_shard_index idx;
    char *out;
    amg_err e;

    ck_assert_int_eq(amg_shard_index_parse(&idx, "x.json", text,
                                           strlen(text), &e), AMG_OK);
    ck_assert_int_eq(idx.has_total_size, 1);
    ck_assert_uint_eq(idx.total_size, 1234);
    ck_assert_uint_eq(idx.n_entries, 4);
    ck_assert_uint_eq(idx.n_shards, 2);
    /* shards in order of first appearance in the file */
    ck_assert_str_eq(idx.shards[0], "model-00002-of-00002.safetensors");
    ck_assert_str_eq(idx.shards[1], "model-00001-of-00002.safetensors");
    ck_assert_str_eq(idx.names[0], "lm_head.weight");
    ck_assert_str_eq(idx.names[1], "model.embed_tokens.weight");
    ck_assert_str_eq(idx.names[2], "model.layers.0.mlp.up_proj.weight");
    ck_assert_str_eq(idx.names[3], "model.norm.weight");
    ck_assert_uint_eq(idx.shard_of[0], 0);
    ck_assert_uint_eq(idx.shard_of[1], 1);
    ck_assert_uint_eq(idx.shard_of[2], 1);
    ck_assert_uint_eq(idx.shard_of[3], 0);
    ck_assert_int_eq(amg_shard_index_format(&idx, &out, &e), AMG_OK);
    ck_assert_str_eq(out, index_ok);
    free(out);
    amg_shard_index_free(&idx);
    amg_shard_index_free(&idx);
}
END_TEST

START_TEST(index_read_file_roundtrip)
{
    char *dir = tu_mkdtemp();
    char *p = tu_write(dir, "model.safetensors.index.json", index_ok,
                       strlen(index_ok));
    amg_shard_index idx;
    char *out;
    amg_err e;

    ck_assert_int_eq(amg_shard_index_read(&idx, p, &e), AMG_OK);
    ck_assert_uint_eq(idx.n_entries, 4);
    ck_assert_int_eq(amg_shard_index_format(&idx, &out, &e), AMG_OK);
    ck_assert_str_eq(out, index_ok);
    free(out);
    amg_shard_index_free(&idx);
    free(p);
    p = amg_path_join(dir, "missing.json");
    ck_assert_int_eq(amg_shard_index_read(&idx, p, &e), AMG_ENOTFOUND);
    has(e.msg, "missing.json");
    free(p);
    tu_rmtree(dir);
}
END_TEST

START_TEST(index_format_exact)
{
    /* hand-built (unsorted) index with names Python would escape; the
     * expected text is what json.dumps(index, indent=2, sort_keys=True)
     * + "\n" prints */
    char *names[] = { "b.weight", "a\xc3\xa9\x7f\x01\"\\/\n\t\xf0\x9f\x98\x80",
                      "a.bias" };
    char *shards[] = { "model-00001-of-00002.safetensors",
                       "model-00002-of-00002.safetensors" };
    size_t shard_of[] = { 1, 0, 0 };
    amg_shard_index idx = { 0 };
    static const char want[] =
        "{\n"
        "  \"metadata\": {\n"
        "    \"total_size\": 18446744073709551615\n"
        "  },\n"
        "  \"weight_map\": {\n"
        "    \"a.bias\": \"model-00001-of-00002.safetensors\",\n"
        "    \"a\\u00e9\\u007f\\u0001\\\"\\\\/\\n\\t\\ud83d\\ude00\": "
        "\"model-00001-of-00002.safetensors\",\n"
        "    \"b.weight\": \"model-00002-of-00002.safetensors\"\n"
        "  }\n"
        "}\n";
    char *out;
    amg_err e;

    idx.total_size = UINT64_MAX;
    idx.has_total_size = 1;
    idx.n_entries = 3;
    idx.names = names;
    idx.shard_of = shard_of;
    idx.n_shards = 2;
    idx.shards = shards;
    ck_assert_int_eq(amg_shard_index_format(&idx, &out, &e), AMG_OK);
    ck_assert_str_eq(out, want);
    free(out);
}
END_TEST

START_TEST(index_format_empty)
{
    amg_shard_index idx = { 0 };
    char *out;
    amg_err e;

    ck_assert_int_eq(amg_shard_index_format(&idx, &out, &e), AMG_OK);
    ck_assert_str_eq(out, "{\n  \"metadata\": {},\n  \"weight_map\": {}\n}\n");
    free(out);
}
END_TEST

START_TEST(index_format_rejects)
{
    char *names[] = { "a", "a" }, *bad[] = { "x\xff" };
    char *shards[] = { "s.safetensors" };
    size_t shard_of[] = { 0, 0 }, wrong[] = { 3 };
    amg_shard_index idx = { 0 };
    char *out;
    amg_err e;

    idx.n_entries = 2;
    idx.names = names;
    idx.shard_of = shard_of;
    idx.n_shards = 1;
    idx.shards = shards;
    ck_assert_int_eq(amg_shard_index_format(&idx, &out, &e), AMG_EINVAL);
    has(e.msg, "tensor 'a' is listed twice");
    idx.n_entries = 1;
    idx.shard_of = wrong;
    ck_assert_int_eq(amg_shard_index_format(&idx, &out, &e), AMG_EINVAL);
    has(e.msg, "tensor 'a' refers to shard 3");
    idx.shard_of = shard_of;
    idx.names = bad;
    ck_assert_int_eq(amg_shard_index_format(&idx, &out, &e), AMG_EINVAL);
    has(e.msg, "not valid UTF-8");
}
END_TEST

START_TEST(index_total_size_forms)
{
    static const char *ok[] = {
        "{\"weight_map\":{}}",
        "{\"metadata\":{},\"weight_map\":{\"a\":\"s\"}}",
        "{\"metadata\":{\"total_size\":16060522496.0},\"weight_map\":{}}",
        "{\"metadata\":null,\"weight_map\":{}}",
    };
    amg_shard_index idx;
    amg_err e;
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ck_assert_msg(amg_shard_index_parse(&idx, "x", ok[i], strlen(ok[i]),
                                            &e) == AMG_OK, "%s", e.msg);
        if (i == 2)
            ck_assert_uint_eq(idx.total_size, 16060522496ULL);
        else
            ck_assert_int_eq(idx.has_total_size, 0);
        amg_shard_index_free(&idx);
    }
}
END_TEST

static void index_bad(const char *text, size_t len, const char *sub1,
                      const char *sub2)
{
    amg_shard_index idx;
    amg_err e;

    amg_err_clear(&e);
    ck_assert_int_eq(amg_shard_index_parse(&idx, "idx.json", text, len, &e),
                     AMG_EFORMAT);
    has(e.msg, "'idx.json'");
    has(e.msg, sub1);
    if (sub2)
        has(e.msg, sub2);
    ck_assert_ptr_null(idx.names);
    ck_assert_uint_eq(idx.n_entries, 0);
    amg_shard_index_free(&idx);
}

#define INDEX_BAD(name, text, s1, s2) \
    START_TEST(name) { index_bad(text, sizeof(text) - 1, s1, s2); } END_TEST

INDEX_BAD(index_bad_json, "{\"weight_map\":", "invalid JSON", NULL)
INDEX_BAD(index_bad_not_object, "[]", "index must be a JSON object",
          "an array")
INDEX_BAD(index_bad_no_weight_map, "{\"metadata\":{}}", "no weight_map", NULL)
INDEX_BAD(index_bad_weight_map_type, "{\"weight_map\":[]}",
          "weight_map must be an object", NULL)
INDEX_BAD(index_bad_value_type, "{\"weight_map\":{\"w\":1}}",
          "tensor 'w'", "shard must be a file name string")
INDEX_BAD(index_bad_slash, "{\"weight_map\":{\"w\":\"sub/m.safetensors\"}}",
          "tensor 'w'", "contains '/'")
INDEX_BAD(index_bad_absolute, "{\"weight_map\":{\"w\":\"/etc/passwd\"}}",
          "tensor 'w'", "absolute path")
INDEX_BAD(index_bad_dotdot, "{\"weight_map\":{\"w\":\"..\"}}",
          "tensor 'w'", "names a directory")
INDEX_BAD(index_bad_dotdot_path,
          "{\"weight_map\":{\"w\":\"../m.safetensors\"}}",
          "tensor 'w'", "not a plain file name")
INDEX_BAD(index_bad_empty_shard, "{\"weight_map\":{\"w\":\"\"}}",
          "tensor 'w'", "it is empty")
INDEX_BAD(index_bad_nul_shard,
          "{\"weight_map\":{\"w\":\"m.safetensors\\u0000x\"}}",
          "tensor 'w'", "NUL character")
INDEX_BAD(index_bad_raw_nul, "{\"weight_map\":{}}\0", "NUL byte", NULL)
INDEX_BAD(index_bad_metadata, "{\"metadata\":[],\"weight_map\":{}}",
          "metadata must be an object", NULL)
INDEX_BAD(index_bad_total_negative,
          "{\"metadata\":{\"total_size\":-1},\"weight_map\":{}}",
          "total_size must be a non-negative integer", "negative")
INDEX_BAD(index_bad_total_string,
          "{\"metadata\":{\"total_size\":\"12\"},\"weight_map\":{}}",
          "total_size must be a non-negative integer", "a string")
INDEX_BAD(index_bad_total_fraction,
          "{\"metadata\":{\"total_size\":1.5},\"weight_map\":{}}",
          "total_size must be a non-negative integer", NULL)
INDEX_BAD(index_bad_duplicate,
          "{\"weight_map\":{\"w\":\"a.safetensors\",\"w\":\"b.safetensors\"}}",
          "duplicate key 'w'", "unique")

int main(void)
{
    Suite *s = suite_create("safetensors");
    size_t i;
    TCase *bad = tcase_create("malformed");
    TCase *ok = tcase_create("valid");
    TCase *ix = tcase_create("index");

    for (i = 0; i < sizeof(seq); i++)
        seq[i] = (unsigned char)i;

    tcase_add_test(bad, bad_too_small);
    tcase_add_test(bad, bad_empty_file);
    tcase_add_test(bad, bad_header_too_large);
    tcase_add_test(bad, bad_header_len_huge);
    tcase_add_test(bad, bad_header_beyond_file);
    tcase_add_test(bad, bad_not_json);
    tcase_add_test(bad, bad_trailing_garbage_in_header);
    tcase_add_test(bad, bad_not_object);
    tcase_add_test(bad, bad_array_header);
    tcase_add_test(bad, bad_utf8);
    tcase_add_test(bad, bad_utf8_overlong);
    tcase_add_test(bad, bad_utf8_surrogate);
    tcase_add_test(bad, bad_nul_byte);
    tcase_add_test(bad, bad_nul_escape_in_name);
    tcase_add_test(bad, bad_unknown_dtype);
    tcase_add_test(bad, bad_dtype_case);
    tcase_add_test(bad, bad_unsupported_dtype);
    tcase_add_test(bad, bad_unsupported_dtype_f4);
    tcase_add_test(bad, bad_dtype_not_string);
    tcase_add_test(bad, bad_shape_not_array);
    tcase_add_test(bad, bad_negative_dim);
    tcase_add_test(bad, bad_fractional_dim);
    tcase_add_test(bad, bad_exponent_dim);
    tcase_add_test(bad, bad_string_dim);
    tcase_add_test(bad, bad_too_many_dims);
    tcase_add_test(bad, bad_offsets_short);
    tcase_add_test(bad, bad_offsets_long);
    tcase_add_test(bad, bad_offsets_not_array);
    tcase_add_test(bad, bad_offset_negative);
    tcase_add_test(bad, bad_offset_fractional);
    tcase_add_test(bad, bad_begin_after_end);
    tcase_add_test(bad, bad_first_not_zero);
    tcase_add_test(bad, bad_hole);
    tcase_add_test(bad, bad_overlap);
    tcase_add_test(bad, bad_json_attack);
    tcase_add_test(bad, bad_size_mismatch);
    tcase_add_test(bad, bad_trailing_bytes);
    tcase_add_test(bad, bad_trailing_bytes_empty_header);
    tcase_add_test(bad, bad_truncated_data);
    tcase_add_test(bad, bad_duplicate_name);
    tcase_add_test(bad, bad_duplicate_key_in_entry);
    tcase_add_test(bad, bad_metadata_value);
    tcase_add_test(bad, bad_metadata_not_object);
    tcase_add_test(bad, bad_extra_key);
    tcase_add_test(bad, bad_missing_key);
    tcase_add_test(bad, bad_missing_dtype);
    tcase_add_test(bad, bad_entry_not_object);
    tcase_add_test(bad, bad_shape_overflow);
    tcase_add_test(bad, bad_bytes_overflow);
    tcase_add_test(bad, bad_huge_integer);
    tcase_add_test(bad, bad_missing_file);
    suite_add_tcase(s, bad);

    tcase_add_test(ok, ok_whitespace_around_header);
    tcase_add_test(ok, ok_space_padded_header);
    tcase_add_test(ok, ok_empty_header);
    tcase_add_test(ok, ok_scalar);
    tcase_add_test(ok, ok_zero_size_tensors);
    tcase_add_test(ok, ok_key_order_differs);
    tcase_add_test(ok, ok_metadata);
    tcase_add_test(ok, ok_f64_aligned);
    tcase_add_test(ok, ok_every_dtype);
    tcase_add_test(ok, ok_many_tensors_find);
    tcase_add_test(ok, ok_unicode_and_odd_names);
    tcase_add_test(ok, parse_header_from_memory);
    tcase_add_test(ok, close_zeroed);
    suite_add_tcase(s, ok);

    tcase_add_test(ix, index_parse_valid);
    tcase_add_test(ix, index_read_file_roundtrip);
    tcase_add_test(ix, index_format_exact);
    tcase_add_test(ix, index_format_empty);
    tcase_add_test(ix, index_format_rejects);
    tcase_add_test(ix, index_total_size_forms);
    tcase_add_test(ix, index_bad_json);
    tcase_add_test(ix, index_bad_not_object);
    tcase_add_test(ix, index_bad_no_weight_map);
    tcase_add_test(ix, index_bad_weight_map_type);
    tcase_add_test(ix, index_bad_value_type);
    tcase_add_test(ix, index_bad_slash);
    tcase_add_test(ix, index_bad_absolute);
    tcase_add_test(ix, index_bad_dotdot);
    tcase_add_test(ix, index_bad_dotdot_path);
    tcase_add_test(ix, index_bad_empty_shard);
    tcase_add_test(ix, index_bad_nul_shard);
    tcase_add_test(ix, index_bad_raw_nul);
    tcase_add_test(ix, index_bad_metadata);
    tcase_add_test(ix, index_bad_total_negative);
    tcase_add_test(ix, index_bad_total_string);
    tcase_add_test(ix, index_bad_total_fraction);
    tcase_add_test(ix, index_bad_duplicate);
    suite_add_tcase(s, ix);
    return tu_run(s);
}
