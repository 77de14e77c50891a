/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_writer.c - the safetensors writer and the sharded model writer:
 * exact header bytes, round trips through the reader, order- and
 * thread-independence, shard planning as huggingface_hub does it, and the
 * staging folder life cycle.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#include "model_writer.h"
#include "safetensors.h"
#include "st_writer.h"
#include "testutil.h"
#include "util.h"

/* --- helpers ----------------------------------------------------------- */

static unsigned char *slurp(const char *path, size_t *len)
{
    unsigned char *buf;
    FILE *f = fopen(path, "rb");
    long n;

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Entries in dir other than . and .. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static int exists(const char *dir, const char *name)
{
    struct stat st;
    char *p = amg_path_join(dir, name);
    int r = lstat(p, &st) == 0;

    free(p);
    return r;
}

static amg_st_spec spec(const char *name, amg_dtype dt, int ndim, uint64_t d0,
                        uint64_t d1, uint64_t d2)
{
    amg_st_spec s;

    memset(&s, 0, sizeof(s));
    s.name = name;
    s.dtype = dt;
    s.ndim = ndim;
    s.shape[0] = d0;
    s.shape[1] = d1;
    s.shape[2] = d2;
    return s;
}

static uint64_t spec_bytes(const amg_st_spec *s)
{
    uint64_t n = amg_dtype_size(s->dtype);
    int d;

    for (d = 0; d < s->ndim; d++)
        n *= s->shape[d];
    return n;
}

/* Deterministic bytes for tensor i, different per tensor and position. */
static void fill(unsigned char *buf, size_t len, size_t i)
{
    uint32_t x = 0x9e3779b9u * (uint32_t)(i + 1);
    size_t k;

    for (k = 0; k < len; k++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[k] = (unsigned char)x;
    }
}

/* Write every tensor of specs (whole, in order) with data from fill(). */
static void write_all(amg_st_writer *w, const amg_st_spec *specs, size_t n)
{
    amg_err err;
    size_t i;

    for (i = 0; i < n; i++) {
        size_t len = (size_t)spec_bytes(&specs[i]);
        unsigned char *buf = malloc(len + 1);

        fill(buf, len, i);
        ck_assert_int_eq(amg_st_writer_write(w, i, 0, buf, len, &err),
                         AMG_OK);
        free(buf);
    }
}

/* Check path holds exactly specs with fill() data, via the C reader. */
static void verify_file(const char *path, const amg_st_spec *specs,
                        const size_t *which, size_t n)
{
    amg_st_file f;
    amg_err err;
    size_t k;
    int d;

    amg_err_clear(&err);
    ck_assert_msg(amg_st_open(&f, path, 0, &err) == AMG_OK, "%s", err.msg);
    ck_assert_uint_eq(f.n_tensors, n);
    ck_assert_uint_eq(f.header_len % 8, 0);
    ck_assert_str_eq(amg_st_meta_get(&f, "format"), "pt");
    for (k = 0; k < n; k++) {
        const amg_st_spec *s = &specs[which ? which[k] : k];
        const amg_st_tensor *t = amg_st_find(&f, s->name);
        size_t len = (size_t)spec_bytes(s);
        unsigned char *want = malloc(len + 1);

        ck_assert_msg(t != NULL, "tensor '%s' missing", s->name);
        ck_assert_int_eq(t->dtype, s->dtype);
        ck_assert_int_eq(t->ndim, s->ndim);
        for (d = 0; d < s->ndim; d++)
            ck_assert_uint_eq(t->shape[d], s->shape[d]);
        ck_assert_uint_eq(t->end - t->begin, len);
        fill(want, len, which ? which[k] : k);
        if (len)
            ck_assert_mem_eq(amg_st_data(&f, t), want, len);
        free(want);
    }
    amg_st_close(&f);
}

/* --- st_writer: exact bytes -------------------------------------------- */

START_TEST(test_exact_bytes)
{
    /* serde_json's compact form, __metadata__ first, tensors in the given
     * order, padded with spaces to 152 (a multiple of 8) */
    static const char hdr[] =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[24,26]}}"
        "       ";
    amg_st_spec specs[2];
    unsigned char expect[8 + 152 + 26], data[26];
    char *dir = tu_mkdtemp(), *path = amg_path_join(dir, "x.safetensors");
    unsigned char *got;
    amg_st_writer w;
    amg_err err;
    size_t len, i;

    specs[0] = spec("a", AMG_DT_F32, 3, 1, 2, 3);
    specs[1] = spec("b", AMG_DT_BF16, 0, 0, 0, 0);
    ck_assert_uint_eq(strlen(hdr), 152);
    for (i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7 + 1);
    memcpy(expect, "\x98\0\0\0\0\0\0\0", 8);        /* 152 little-endian */
    memcpy(expect + 8, hdr, 152);
    memcpy(expect + 160, data, 26);

    ck_assert_uint_eq(amg_st_file_size(specs, 2), sizeof(expect));
    ck_assert_int_eq(amg_st_writer_open(&w, path, specs, 2, NULL, 0, &err),
                     AMG_OK);
    ck_assert_uint_eq(w.data_start, 160);
    ck_assert_uint_eq(w.data_size, 26);
    ck_assert_int_eq(amg_st_writer_write(&w, 1, 0, data + 24, 2, &err),
                     AMG_OK);
    /* tensor a in two pieces, second first */
    ck_assert_int_eq(amg_st_writer_write(&w, 0, 10, data + 10, 14, &err),
                     AMG_OK);
    ck_assert_int_eq(amg_st_writer_write(&w, 0, 0, data, 10, &err), AMG_OK);
    ck_assert_int_eq(count_entries(dir), 1);        /* the temporary */
    ck_assert(!exists(dir, "x.safetensors"));
    ck_assert_int_eq(amg_st_writer_commit(&w, &err), AMG_OK);
    ck_assert_int_eq(count_entries(dir), 1);
    got = slurp(path, &len);
    ck_assert_uint_eq(len, sizeof(expect));
    ck_assert_mem_eq(got, expect, sizeof(expect));
    free(got);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_escaping_and_meta)
{
    /* '"', '\\', control characters escaped as serde_json does; UTF-8
     * (é) passes through; extra metadata after format */
    static const char hdr[] =
        "{\"__metadata__\":{\"format\":\"pt\",\"k\\\"\":\"v\\\\\"},"
        "\"q\\\"\\\\\\n\\u0001\\u001f\xc3\xa9\":{\"dtype\":\"U8\","
        "\"shape\":[0],\"data_offsets\":[0,0]}}    ";
    amg_st_meta meta = { "k\"", "v\\" };
    amg_st_spec s = spec("q\"\\\n\x01\x1f\xc3\xa9", AMG_DT_U8, 1, 0, 0, 0);
    char *dir = tu_mkdtemp(), *path = amg_path_join(dir, "e.safetensors");
    unsigned char *got;
    amg_st_writer w;
    amg_st_file f;
    amg_err err;
    size_t len;

    ck_assert_uint_eq(strlen(hdr), 120);
    ck_assert_int_eq(amg_st_writer_open(&w, path, &s, 1, &meta, 1, &err),
                     AMG_OK);
    ck_assert_int_eq(amg_st_writer_commit(&w, &err), AMG_OK);
    got = slurp(path, &len);
    ck_assert_uint_eq(len, 8 + 120);
    ck_assert_mem_eq(got, "\x78\0\0\0\0\0\0\0", 8);
    ck_assert_mem_eq(got + 8, hdr, 120);
    free(got);
    /* and the reader decodes the escapes back to the same strings */
    ck_assert_msg(amg_st_open(&f, path, 0, &err) == AMG_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(amg_st_find(&f, s.name));
    ck_assert_str_eq(amg_st_meta_get(&f, "k\""), "v\\");
    ck_assert_str_eq(amg_st_meta_get(&f, "format"), "pt");
    amg_st_close(&f);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_empty_file)
{
    static const char hdr[] = "{\"__metadata__\":{\"format\":\"pt\"}}";
    char *dir = tu_mkdtemp(), *path = amg_path_join(dir, "z.safetensors");
    unsigned char *got;
    amg_st_writer w;
    amg_err err;
    size_t len;

    ck_assert_int_eq(amg_st_writer_open(&w, path, NULL, 0, NULL, 0, &err),
                     AMG_OK);
    ck_assert_int_eq(amg_st_writer_commit(&w, &err), AMG_OK);
    got = slurp(path, &len);
    ck_assert_uint_eq(len, 8 + 32);
    ck_assert_mem_eq(got, "\x20\0\0\0\0\0\0\0", 8);
    ck_assert_mem_eq(got + 8, hdr, 32);
    free(got);
    verify_file(path, NULL, NULL, 0);
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* --- st_writer: round trips -------------------------------------------- */

static amg_st_spec many[14];

static size_t many_specs(void)
{
    size_t n = 0;

    many[n++] = spec("w.f32", AMG_DT_F32, 2, 3, 5, 0);
    many[n++] = spec("w.bf16", AMG_DT_BF16, 2, 7, 3, 0);
    many[n++] = spec("w.f16", AMG_DT_F16, 1, 9, 0, 0);
    many[n++] = spec("w.f64", AMG_DT_F64, 3, 2, 1, 2);
    many[n++] = spec("i.i64", AMG_DT_I64, 1, 3, 0, 0);
    many[n++] = spec("i.i32", AMG_DT_I32, 1, 5, 0, 0);
    many[n++] = spec("i.i16", AMG_DT_I16, 1, 3, 0, 0);
    many[n++] = spec("i.i8", AMG_DT_I8, 1, 11, 0, 0);
    many[n++] = spec("i.u8", AMG_DT_U8, 2, 2, 2, 0);
    many[n++] = spec("b.bool", AMG_DT_BOOL, 1, 1, 0, 0);
    many[n++] = spec("f8.e4m3", AMG_DT_F8_E4M3, 2, 4, 3, 0);
    many[n++] = spec("f8.e5m2", AMG_DT_F8_E5M2, 1, 6, 0, 0);
    many[n++] = spec("scalar", AMG_DT_F32, 0, 0, 0, 0);
    many[n++] = spec("empty", AMG_DT_BF16, 2, 0, 4, 0);
    return n;
}

START_TEST(test_round_trip)
{
    size_t n = many_specs();
    char *dir = tu_mkdtemp(), *path = amg_path_join(dir, "m.safetensors");
    amg_st_meta meta[2] = { { "merged_by", "amalgam" }, { "x", "" } };
    amg_st_writer w;
    amg_st_file f;
    amg_err err;
    size_t len, i;
    uint64_t data = 0;
    unsigned char *got;

    for (i = 0; i < n; i++)
        data += spec_bytes(&many[i]);
    ck_assert_uint_eq(data, 60 + 42 + 18 + 32 + 24 + 20 + 6 + 11 + 4 + 1 +
                            12 + 6 + 4 + 0);
    ck_assert_int_eq(amg_st_writer_open(&w, path, many, n, meta, 2, &err),
                     AMG_OK);
    write_all(&w, many, n);
    ck_assert_int_eq(amg_st_writer_commit(&w, &err), AMG_OK);
    verify_file(path, many, NULL, n);
    ck_assert_msg(amg_st_open(&f, path, AMG_ST_HEADER_ONLY, &err) == AMG_OK,
                  "%s", err.msg);
    ck_assert_uint_eq(f.n_meta, 3);
    ck_assert_str_eq(f.meta[0].key, "format");
    ck_assert_str_eq(amg_st_meta_get(&f, "merged_by"), "amalgam");
    ck_assert_str_eq(amg_st_meta_get(&f, "x"), "");
    ck_assert_uint_eq(f.data_start % 8, 0);
    got = slurp(path, &len);
    ck_assert_uint_eq(len, f.data_start + data);
    ck_assert_uint_eq(got[0] | (size_t)got[1] << 8 | (size_t)got[2] << 16,
                      f.header_len);
    amg_st_close(&f);
    free(got);
    free(path);
    tu_rmtree(dir);
}
END_TEST

typedef struct thr_arg {
    amg_st_writer *w;
    const amg_st_spec *specs;
    size_t n;
    size_t parity;
    int rc;
} thr_arg;

/* Writes the tensors of one parity, last first, each in 3-byte pieces from
 * its end backwards. */
static void *thr_write(void *p)
{
    thr_arg *a = p;
    amg_err err;
    size_t i;

    for (i = a->n; i-- > 0;) {
        size_t len = (size_t)spec_bytes(&a->specs[i]), off;
        unsigned char *buf;

        if (i % 2 != a->parity)
            continue;
        buf = malloc(len + 1);
        fill(buf, len, i);
        for (off = len; off > 0;) {
            size_t piece = off >= 3 ? 3 : off;

            off -= piece;
            if (amg_st_writer_write(a->w, i, off, buf + off, piece, &err))
                a->rc = 1;
        }
        free(buf);
    }
    return NULL;
}

START_TEST(test_threads_reverse_identical)
{
    size_t n = many_specs(), la, lb;
    char *dir = tu_mkdtemp(), *pa = amg_path_join(dir, "a.safetensors"),
         *pb = amg_path_join(dir, "b.safetensors");
    unsigned char *fa, *fb;
    amg_st_writer w;
    amg_err err;
    pthread_t t[2];
    thr_arg args[2];
    int k;

    ck_assert_int_eq(amg_st_writer_open(&w, pa, many, n, NULL, 0, &err),
                     AMG_OK);
    write_all(&w, many, n);
    ck_assert_int_eq(amg_st_writer_commit(&w, &err), AMG_OK);

    ck_assert_int_eq(amg_st_writer_open(&w, pb, many, n, NULL, 0, &err),
                     AMG_OK);
    for (k = 0; k < 2; k++) {
        args[k] = (thr_arg){ &w, many, n, (size_t)k, 0 };
        ck_assert_int_eq(pthread_create(&t[k], NULL, thr_write, &args[k]), 0);
    }
    for (k = 0; k < 2; k++) {
        ck_assert_int_eq(pthread_join(t[k], NULL), 0);
        ck_assert_int_eq(args[k].rc, 0);
    }
    ck_assert_int_eq(amg_st_writer_commit(&w, &err), AMG_OK);

    fa = slurp(pa, &la);
    fb = slurp(pb, &lb);
    ck_assert_uint_eq(la, lb);
    ck_assert_mem_eq(fa, fb, la);
    free(fa);
    free(fb);
    verify_file(pb, many, NULL, n);
    free(pa);
    free(pb);
    tu_rmtree(dir);
}
END_TEST

/* --- st_writer: refusals ----------------------------------------------- */

START_TEST(test_duplicate_rejected)
{
    amg_st_spec s[3];
    char *dir = tu_mkdtemp(), *path = amg_path_join(dir, "d.safetensors");
    amg_st_writer w;
    amg_err err;

    s[0] = spec("x", AMG_DT_F32, 1, 2, 0, 0);
    s[1] = spec("y", AMG_DT_F32, 1, 2, 0, 0);
    s[2] = spec("x", AMG_DT_F16, 1, 2, 0, 0);
    amg_err_clear(&err);
    ck_assert_int_eq(amg_st_writer_open(&w, path, s, 3, NULL, 0, &err),
                     AMG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "duplicate tensor name 'x'"));
    ck_assert_int_eq(count_entries(dir), 0);
    amg_st_writer_abort(&w);                /* released: still safe */

    s[2] = spec("__metadata__", AMG_DT_F16, 1, 2, 0, 0);
    ck_assert_int_eq(amg_st_writer_open(&w, path, s, 3, NULL, 0, &err),
                     AMG_EINVAL);
    s[2] = spec("bad\xc3(", AMG_DT_F16, 1, 2, 0, 0);  /* invalid UTF-8 */
    ck_assert_int_eq(amg_st_writer_open(&w, path, s, 3, NULL, 0, &err),
                     AMG_EINVAL);
    s[2] = spec("z", AMG_DT_F32, 3, UINT64_MAX / 2, 3, 1);
    ck_assert_int_eq(amg_st_writer_open(&w, path, s, 3, NULL, 0, &err),
                     AMG_ERANGE);
    ck_assert_uint_eq(amg_st_file_size(s, 3), 0);
    /* each fits, but together they overflow the data section */
    s[0] = spec("x", AMG_DT_U8, 1, UINT64_MAX / 2, 0, 0);
    s[2] = spec("z", AMG_DT_U8, 1, UINT64_MAX / 2, 0, 0);
    ck_assert_int_eq(amg_st_writer_open(&w, path, s, 3, NULL, 0, &err),
                     AMG_ERANGE);
    ck_assert_int_eq(count_entries(dir), 0);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_meta_rules)
{
    amg_st_spec s = spec("x", AMG_DT_F32, 1, 2, 0, 0);
    amg_st_meta dup[2] = { { "a", "1" }, { "a", "2" } };
    amg_st_meta fmt = { "format", "np" };
    char *dir = tu_mkdtemp(), *path = amg_path_join(dir, "m.safetensors");
    amg_st_writer w;
    amg_err err;

    ck_assert_int_eq(amg_st_writer_open(&w, path, &s, 1, dup, 2, &err),
                     AMG_EINVAL);
    ck_assert_int_eq(amg_st_writer_open(&w, path, &s, 1, &fmt, 1, &err),
                     AMG_EINVAL);
    ck_assert_int_eq(count_entries(dir), 0);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_header_limit)
{
    /* a 100,000,000-byte metadata value puts the header past the limit */
    size_t big = 100000000;
    char *v = malloc(big + 1);
    amg_st_meta m;
    char *dir = tu_mkdtemp(), *path = amg_path_join(dir, "h.safetensors");
    amg_st_writer w;
    amg_err err;

    ck_assert_ptr_nonnull(v);
    memset(v, 'v', big);
    v[big] = '\0';
    m.key = "k";
    m.value = v;
    ck_assert_int_eq(amg_st_writer_open(&w, path, NULL, 0, &m, 1, &err),
                     AMG_ERANGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "exceeds"));
    ck_assert_int_eq(count_entries(dir), 0);
    free(v);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_write_range)
{
    amg_st_spec s[2];
    char *dir = tu_mkdtemp(), *path = amg_path_join(dir, "r.safetensors");
    unsigned char buf[16] = { 0 };
    amg_st_writer w;
    amg_err err;

    s[0] = spec("x", AMG_DT_F32, 1, 2, 0, 0);      /* 8 bytes */
    s[1] = spec("y", AMG_DT_U8, 1, 4, 0, 0);
    ck_assert_int_eq(amg_st_writer_open(&w, path, s, 2, NULL, 0, &err),
                     AMG_OK);
    ck_assert_int_eq(amg_st_writer_write(&w, 2, 0, buf, 1, &err), AMG_EINVAL);
    ck_assert_int_eq(amg_st_writer_write(&w, 0, 0, buf, 9, &err), AMG_ERANGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "'x'"));
    ck_assert_int_eq(amg_st_writer_write(&w, 0, 5, buf, 4, &err), AMG_ERANGE);
    ck_assert_int_eq(amg_st_writer_write(&w, 0, 9, buf, 0, &err), AMG_ERANGE);
    ck_assert_int_eq(amg_st_writer_write(&w, 0, UINT64_MAX, buf, 2, &err),
                     AMG_ERANGE);
    ck_assert_int_eq(amg_st_writer_write(&w, 0, 8, buf, 0, &err), AMG_OK);
    ck_assert_int_eq(amg_st_writer_write(&w, 1, 0, buf, 4, &err), AMG_OK);
    amg_st_writer_abort(&w);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_abort_leaves_nothing)
{
    size_t n = many_specs();
    char *dir = tu_mkdtemp(), *path = amg_path_join(dir, "a.safetensors");
    int fd0_open = fcntl(0, F_GETFD) >= 0;
    amg_st_writer w;
    amg_err err;

    memset(&w, 0, sizeof(w));
    amg_st_writer_abort(&w);                /* zeroed: safe, closes nothing */
    ck_assert_int_eq(fcntl(0, F_GETFD) >= 0, fd0_open);
    ck_assert_int_eq(amg_st_writer_open(&w, path, many, n, NULL, 0, &err),
                     AMG_OK);
    write_all(&w, many, 3);
    ck_assert_int_eq(count_entries(dir), 1);
    amg_st_writer_abort(&w);
    ck_assert_int_eq(count_entries(dir), 0);
    amg_st_writer_abort(&w);                /* twice: still safe */
    ck_assert_int_eq(amg_st_writer_commit(&w, &err), AMG_EINVAL);
    ck_assert_int_eq(count_entries(dir), 0);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_commit_replaces)
{
    /* an existing file at path is replaced whole by commit */
    amg_st_spec s = spec("x", AMG_DT_U8, 1, 3, 0, 0);
    char *dir = tu_mkdtemp(), *path;
    amg_st_writer w;
    amg_err err;

    path = tu_write(dir, "p.safetensors", "old contents", 12);
    ck_assert_int_eq(amg_st_writer_open(&w, path, &s, 1, NULL, 0, &err),
                     AMG_OK);
    write_all(&w, &s, 1);
    ck_assert_int_eq(amg_st_writer_commit(&w, &err), AMG_OK);
    verify_file(path, &s, NULL, 1);
    ck_assert_int_eq(count_entries(dir), 1);
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* --- model_writer ------------------------------------------------------ */

static const char *tnames[] = { "t0", "t1", "t2", "t3", "t4", "t5" };

/* U8 tensors t0.. of the given byte sizes */
static size_t u8_specs(amg_st_spec *s, const uint64_t *sizes, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        s[i] = spec(tnames[i], AMG_DT_U8, 1, sizes[i], 0, 0);
    return n;
}

static void model_write_all(amg_model_writer *w, const amg_st_spec *s,
                            size_t n)
{
    amg_err err;
    size_t i;

    for (i = 0; i < n; i++) {
        size_t len = (size_t)spec_bytes(&s[i]);
        unsigned char *buf = malloc(len + 1);

        fill(buf, len, i);
        ck_assert_msg(amg_model_writer_write(w, i, 0, buf, len, &err) ==
                      AMG_OK, "%s", err.msg);
        free(buf);
    }
}

static char *stage_of(const char *out)
{
    size_t n = strlen(out) + 32;
    char *p = malloc(n);

    snprintf(p, n, "%s.amalgam-partial", out);
    return p;
}

START_TEST(test_shard_plan_hub_example)
{
    /* huggingface_hub's docstring: [6,6,2,6,2,2] with limit 10 gives
     * [6], [6+2], [6+2+2] */
    static const uint64_t sizes[] = { 6, 6, 2, 6, 2, 2 };
    static const size_t want_shard[] = { 0, 1, 1, 2, 2, 2 };
    static const char index[] =
        "{\n"
        "  \"metadata\": {\n"
        "    \"total_size\": 24\n"
        "  },\n"
        "  \"weight_map\": {\n"
        "    \"t0\": \"model-00001-of-00003.safetensors\",\n"
        "    \"t1\": \"model-00002-of-00003.safetensors\",\n"
        "    \"t2\": \"model-00002-of-00003.safetensors\",\n"
        "    \"t3\": \"model-00003-of-00003.safetensors\",\n"
        "    \"t4\": \"model-00003-of-00003.safetensors\",\n"
        "    \"t5\": \"model-00003-of-00003.safetensors\"\n"
        "  }\n"
        "}\n";
    static const size_t s1[] = { 0 }, s2[] = { 1, 2 }, s3[] = { 3, 4, 5 };
    amg_st_spec s[6];
    char *root = tu_mkdtemp(), *out = amg_path_join(root, "merged"), *p;
    char *stage = stage_of(out);
    amg_model_writer w;
    amg_err err;
    char *text;
    size_t i, len;

    u8_specs(s, sizes, 6);
    ck_assert_msg(amg_model_writer_open(&w, out, s, 6, 10, 0, &err) == AMG_OK,
                  "%s", err.msg);
    ck_assert_uint_eq(w.n_shards, 3);
    ck_assert_uint_eq(w.total_size, 24);
    for (i = 0; i < 6; i++)
        ck_assert_uint_eq(w.shard_of[i], want_shard[i]);
    ck_assert_str_eq(w.shard_names[0], "model-00001-of-00003.safetensors");
    ck_assert_str_eq(w.shard_names[2], "model-00003-of-00003.safetensors");
    ck_assert(amg_is_dir(stage));
    ck_assert(!amg_is_dir(out));
    model_write_all(&w, s, 6);
    ck_assert_int_eq(amg_model_writer_add_file(&w, "config.json", "{}\n", 3,
                                               &err), AMG_OK);
    ck_assert_msg(amg_model_writer_commit(&w, &err) == AMG_OK, "%s", err.msg);
    ck_assert(!amg_is_dir(stage));
    ck_assert_int_eq(count_entries(out), 5);
    ck_assert(!exists(out, "model.safetensors"));
    ck_assert(exists(out, "config.json"));

    p = amg_path_join(out, "model.safetensors.index.json");
    text = (char *)slurp(p, &len);
    text[len] = '\0';
    ck_assert_str_eq(text, index);
    free(text);
    free(p);

    p = amg_path_join(out, "model-00001-of-00003.safetensors");
    verify_file(p, s, s1, 1);
    free(p);
    p = amg_path_join(out, "model-00002-of-00003.safetensors");
    verify_file(p, s, s2, 2);
    free(p);
    p = amg_path_join(out, "model-00003-of-00003.safetensors");
    verify_file(p, s, s3, 3);
    free(p);
    free(stage);
    free(out);
    tu_rmtree(root);
}
END_TEST

START_TEST(test_shard_plan_oversized)
{
    /* huggingface_hub puts an over-limit tensor in a shard of its own,
     * numbered when met, while the shard being filled stays open:
     * [2, 20, 3, 9] with limit 10 gives [20], [2+3], [9] */
    static const uint64_t sizes[] = { 2, 20, 3, 9 };
    static const size_t want_shard[] = { 1, 0, 1, 2 };
    static const size_t want_slot[] = { 0, 0, 1, 0 };
    amg_st_spec s[4];
    char *root = tu_mkdtemp(), *out = amg_path_join(root, "o");
    amg_model_writer w;
    amg_err err;
    size_t i;

    u8_specs(s, sizes, 4);
    ck_assert_int_eq(amg_model_writer_open(&w, out, s, 4, 10, 0, &err),
                     AMG_OK);
    ck_assert_uint_eq(w.n_shards, 3);
    for (i = 0; i < 4; i++) {
        ck_assert_uint_eq(w.shard_of[i], want_shard[i]);
        ck_assert_uint_eq(w.slot_of[i], want_slot[i]);
    }
    amg_model_writer_abort(&w);
    ck_assert_int_eq(count_entries(root), 0);

    /* a tensor exactly at the limit fits; zero-size tensors never split */
    {
        static const uint64_t sz2[] = { 10, 0, 0, 1 };
        static const size_t ws2[] = { 0, 0, 0, 1 };

        u8_specs(s, sz2, 4);
        ck_assert_int_eq(amg_model_writer_open(&w, out, s, 4, 10, 0, &err),
                         AMG_OK);
        ck_assert_uint_eq(w.n_shards, 2);
        for (i = 0; i < 4; i++)
            ck_assert_uint_eq(w.shard_of[i], ws2[i]);
        amg_model_writer_abort(&w);
    }
    free(out);
    tu_rmtree(root);
}
END_TEST

START_TEST(test_single_shard_no_index)
{
    size_t n = many_specs();
    char *root = tu_mkdtemp(), *out = amg_path_join(root, "m"), *p;
    amg_model_writer w;
    amg_err err;

    ck_assert_int_eq(amg_model_writer_open(&w, out, many, n,
                                           AMG_DEFAULT_SHARD_SIZE, 0, &err),
                     AMG_OK);
    ck_assert_uint_eq(w.n_shards, 1);
    ck_assert_str_eq(w.shard_names[0], "model.safetensors");
    model_write_all(&w, many, n);
    ck_assert_int_eq(amg_model_writer_commit(&w, &err), AMG_OK);
    ck_assert_int_eq(count_entries(out), 1);
    ck_assert(!exists(out, "model.safetensors.index.json"));
    p = amg_path_join(out, "model.safetensors");
    verify_file(p, many, NULL, n);
    free(p);
    ck_assert_int_eq(count_entries(root), 1);       /* no staging left */
    free(out);
    tu_rmtree(root);
}
END_TEST

START_TEST(test_exists_and_overwrite)
{
    static const uint64_t sizes[] = { 4, 4 };
    amg_st_spec s[2];
    char *root = tu_mkdtemp(), *out = amg_path_join(root, "m"), *p, *keep;
    char *stage = stage_of(out);
    unsigned char *got;
    amg_model_writer w;
    amg_err err;
    size_t len;

    u8_specs(s, sizes, 2);
    ck_assert_int_eq(mkdir(out, 0755), 0);
    keep = tu_write(out, "keep.txt", "precious", 8);
    amg_err_clear(&err);
    ck_assert_int_eq(amg_model_writer_open(&w, out, s, 2, 100, 0, &err),
                     AMG_EEXIST);
    ck_assert_ptr_nonnull(strstr(err.msg, "m' already exists (use --force "
                                 "to replace it)"));
    ck_assert_int_eq(count_entries(root), 1);       /* no staging made */
    got = slurp(keep, &len);
    ck_assert_uint_eq(len, 8);
    ck_assert_mem_eq(got, "precious", 8);
    free(got);
    amg_model_writer_abort(&w);                     /* released: safe */

    /* trailing slash: same folder, staging next to it, not inside */
    p = malloc(strlen(out) + 2);
    memcpy(p, out, strlen(out));
    memcpy(p + strlen(out), "/", 2);
    ck_assert_int_eq(amg_model_writer_open(&w, p, s, 2, 100, 1, &err),
                     AMG_OK);
    free(p);
    ck_assert(amg_is_dir(stage));
    ck_assert(exists(out, "keep.txt"));             /* untouched until commit */
    model_write_all(&w, s, 2);
    ck_assert_int_eq(amg_model_writer_commit(&w, &err), AMG_OK);
    ck_assert(!exists(out, "keep.txt"));
    ck_assert_int_eq(count_entries(out), 1);
    ck_assert_int_eq(count_entries(root), 1);       /* no old, no staging */
    p = amg_path_join(out, "model.safetensors");
    verify_file(p, s, NULL, 2);
    free(p);

    /* a file where the folder would go is never replaced */
    free(keep);
    keep = tu_write(root, "file", "x", 1);
    free(out);
    out = amg_path_join(root, "file");
    ck_assert_int_eq(amg_model_writer_open(&w, out, s, 2, 100, 1, &err),
                     AMG_EEXIST);
    ck_assert(amg_is_file(keep));
    free(keep);
    free(stage);
    free(out);
    tu_rmtree(root);
}
END_TEST

START_TEST(test_appeared_before_commit)
{
    /* out_dir created after open without overwrite: commit refuses and
     * leaves it alone */
    static const uint64_t sizes[] = { 1 };
    amg_st_spec s[1];
    char *root = tu_mkdtemp(), *out = amg_path_join(root, "m"), *keep;
    amg_model_writer w;
    amg_err err;

    u8_specs(s, sizes, 1);
    ck_assert_int_eq(amg_model_writer_open(&w, out, s, 1, 100, 0, &err),
                     AMG_OK);
    ck_assert_int_eq(mkdir(out, 0755), 0);
    keep = tu_write(out, "keep.txt", "k", 1);
    ck_assert_int_eq(amg_model_writer_commit(&w, &err), AMG_EEXIST);
    ck_assert(amg_is_file(keep));
    ck_assert_int_eq(count_entries(out), 1);
    ck_assert_int_eq(count_entries(root), 1);       /* staging removed */
    free(keep);
    free(out);
    tu_rmtree(root);
}
END_TEST

START_TEST(test_stale_stage_and_abort)
{
    static const uint64_t sizes[] = { 3, 3, 3 };
    amg_st_spec s[3];
    char *root = tu_mkdtemp(), *out = amg_path_join(root, "m");
    char *stage = stage_of(out), *sub;
    amg_model_writer w;
    amg_err err;

    u8_specs(s, sizes, 3);
    /* a crashed run's leftovers, nested */
    ck_assert_int_eq(mkdir(stage, 0755), 0);
    sub = amg_path_join(stage, "sub");
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    free(tu_write(sub, "junk", "j", 1));
    free(tu_write(stage, "model-00001-of-00009.safetensors", "j", 1));
    ck_assert_int_eq(amg_model_writer_open(&w, out, s, 3, 4, 0, &err),
                     AMG_OK);
    ck_assert_uint_eq(w.n_shards, 3);
    ck_assert(!exists(stage, "sub"));
    ck_assert_int_eq(count_entries(stage), 3);      /* the shard temporaries */
    model_write_all(&w, s, 2);
    ck_assert_int_eq(amg_model_writer_add_file(&w, "config.json", "{}", 2,
                                               &err), AMG_OK);
    amg_model_writer_abort(&w);
    ck_assert_int_eq(count_entries(root), 0);
    amg_model_writer_abort(&w);                     /* released: safe */
    ck_assert_int_eq(amg_model_writer_commit(&w, &err), AMG_EINVAL);
    free(sub);
    free(stage);
    free(out);
    tu_rmtree(root);
}
END_TEST

START_TEST(test_side_files)
{
    static const uint64_t sizes[] = { 2 };
    amg_st_spec s[1];
    char *root = tu_mkdtemp(), *out = amg_path_join(root, "m"), *src, *p;
    unsigned char *got, *big = malloc(3 << 20);
    amg_model_writer w;
    amg_err err;
    size_t len;

    fill(big, 3 << 20, 99);                  /* several copy chunks */
    src = tu_write(root, "tok.json", big, 3 << 20);
    u8_specs(s, sizes, 1);
    ck_assert_int_eq(amg_model_writer_open(&w, out, s, 1, 100, 0, &err),
                     AMG_OK);
    ck_assert_int_eq(amg_model_writer_add_file(&w, "", "x", 1, &err),
                     AMG_EINVAL);
    ck_assert_int_eq(amg_model_writer_add_file(&w, "../x", "x", 1, &err),
                     AMG_EINVAL);
    ck_assert_int_eq(amg_model_writer_add_file(&w, "a/b", "x", 1, &err),
                     AMG_EINVAL);
    ck_assert_int_eq(amg_model_writer_add_file(&w, "..", "x", 1, &err),
                     AMG_EINVAL);
    ck_assert_int_eq(amg_model_writer_add_file(&w, "model.safetensors", "x",
                                               1, &err), AMG_EINVAL);
    ck_assert_int_eq(amg_model_writer_copy_file(&w, "../t", src, &err),
                     AMG_EINVAL);
    ck_assert_int_eq(amg_model_writer_copy_file(&w, "t", "/nonexistent/q",
                                                &err), AMG_ENOTFOUND);
    ck_assert_int_eq(amg_model_writer_add_file(&w, "config.json", "{}\n", 3,
                                               &err), AMG_OK);
    ck_assert_int_eq(amg_model_writer_copy_file(&w, "tokenizer.json", src,
                                                &err), AMG_OK);
    ck_assert_int_eq(amg_model_writer_write(&w, 1, 0, "ab", 2, &err),
                     AMG_EINVAL);
    model_write_all(&w, s, 1);
    ck_assert_int_eq(amg_model_writer_commit(&w, &err), AMG_OK);
    ck_assert_int_eq(count_entries(out), 3);
    p = amg_path_join(out, "tokenizer.json");
    got = slurp(p, &len);
    ck_assert_uint_eq(len, 3 << 20);
    ck_assert_mem_eq(got, big, len);
    free(got);
    free(p);
    p = amg_path_join(out, "config.json");
    got = slurp(p, &len);
    ck_assert_uint_eq(len, 3);
    ck_assert_mem_eq(got, "{}\n", 3);
    free(got);
    free(p);
    free(big);
    free(src);
    free(out);
    tu_rmtree(root);
}
END_TEST

START_TEST(test_empty_model)
{
    char *root = tu_mkdtemp(), *out = amg_path_join(root, "m"), *p;
    amg_model_writer w;
    amg_err err;

    ck_assert_int_eq(amg_model_writer_open(&w, out, NULL, 0, 10, 0, &err),
                     AMG_OK);
    ck_assert_uint_eq(w.n_shards, 1);
    ck_assert_int_eq(amg_model_writer_commit(&w, &err), AMG_OK);
    p = amg_path_join(out, "model.safetensors");
    verify_file(p, NULL, NULL, 0);
    free(p);
    free(out);
    tu_rmtree(root);
}
END_TEST

static Suite *writer_suite(void)
{
    Suite *s = suite_create("writer");
    TCase *st = tcase_create("st_writer");
    TCase *mw = tcase_create("model_writer");

    tcase_add_test(st, test_exact_bytes);
    tcase_add_test(st, test_escaping_and_meta);
    tcase_add_test(st, test_empty_file);
    tcase_add_test(st, test_round_trip);
    tcase_add_test(st, test_threads_reverse_identical);
    tcase_add_test(st, test_duplicate_rejected);
    tcase_add_test(st, test_meta_rules);
    tcase_add_test(st, test_header_limit);
    tcase_add_test(st, test_write_range);
    tcase_add_test(st, test_abort_leaves_nothing);
    tcase_add_test(st, test_commit_replaces);
    suite_add_tcase(s, st);
    tcase_add_test(mw, test_shard_plan_hub_example);
    tcase_add_test(mw, test_shard_plan_oversized);
    tcase_add_test(mw, test_single_shard_no_index);
    tcase_add_test(mw, test_exists_and_overwrite);
    tcase_add_test(mw, test_appeared_before_commit);
    tcase_add_test(mw, test_stale_stage_and_abort);
    tcase_add_test(mw, test_side_files);
    tcase_add_test(mw, test_empty_model);
    suite_add_tcase(s, mw);
    return s;
}

int main(void)
{
    return tu_run(writer_suite());
}
