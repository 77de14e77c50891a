/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
#include "st_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* A growing string; oom sticks so callers check once at the end. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *np;

        while (cap < b->len + n + 1)
            cap *= 2;
        np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_u64(sbuf *b, uint64_t v)
{
    char num[24];
    int k = snprintf(num, sizeof(num), "%llu", (unsigned long long)v);

    sb_put(b, num, (size_t)k);
}

/* A JSON string as serde_json writes it: only '"', '\\' and control
 * characters are escaped; other bytes (UTF-8, checked by the caller) pass
 * through. */
static void sb_json(sbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s, *plain = u;

    sb_put(b, "\"", 1);
    for (;; u++) {
        unsigned char c = *u;
        const char *esc;
        char ubuf[7];

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        sb_put(b, (const char *)plain, (size_t)(u - plain));
        if (!c)
            break;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            memcpy(ubuf, "\\u00", 4);
            ubuf[4] = hex[c >> 4];
            ubuf[5] = hex[c & 15];
            ubuf[6] = '\0';
            esc = ubuf;
        }
        sb_str(b, esc);
        plain = u + 1;
    }
    sb_put(b, "\"", 1);
}

/* The header must be valid UTF-8 or every reader rejects the file. */
static int utf8_valid(const char *s)
{
    uint64_t n = strlen(s);
    int is_nul;

    return amg_utf8_check((const uint8_t *)s, n, &is_nul) == n;
}

static int spec_nbytes(const amg_st_spec *s, uint64_t *out, amg_err *err)
{
    uint64_t bytes = amg_dtype_size(s->dtype);
    int d;

    if (!bytes)
        return amg_err_set(err, AMG_EINVAL, "tensor '%s': invalid dtype %d",
                           s->name, (int)s->dtype);
    if (s->ndim < 0 || s->ndim > AMG_ST_MAX_DIMS)
        return amg_err_set(err, AMG_EINVAL,
                           "tensor '%s': %d dimensions (at most %d)", s->name,
                           s->ndim, AMG_ST_MAX_DIMS);
    for (d = 0; d < s->ndim; d++)
        if (amg_mul_u64(bytes, s->shape[d], &bytes))
            return amg_err_set(err, AMG_ERANGE,
                               "tensor '%s': size of shape overflows",
                               s->name);
    *out = bytes;
    return AMG_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Names must be valid UTF-8, unique, and not "__metadata__". */
static int check_names(const amg_st_spec *specs, size_t n, amg_err *err)
{
    const char **sorted;
    size_t i;
    int rc = AMG_OK;

    for (i = 0; i < n; i++) {
        if (!specs[i].name)
            return amg_err_set(err, AMG_EINVAL, "tensor %zu has no name", i);
        if (!utf8_valid(specs[i].name))
            return amg_err_set(err, AMG_EINVAL,
                               "tensor %zu: name is not valid UTF-8", i);
        if (!strcmp(specs[i].name, "__metadata__"))
            return amg_err_set(err, AMG_EINVAL,
                               "tensor name '__metadata__' is reserved");
    }
    if (n < 2)
        return AMG_OK;
    sorted = malloc(n * sizeof(*sorted));
    if (!sorted)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    for (i = 0; i < n; i++)
        sorted[i] = specs[i].name;
    qsort(sorted, n, sizeof(*sorted), cmp_str);
    for (i = 1; i < n; i++) {
        if (!strcmp(sorted[i - 1], sorted[i])) {
            rc = amg_err_set(err, AMG_EINVAL, "duplicate tensor name '%s'",
                             sorted[i]);
            break;
        }
    }
    free(sorted);
    return rc;
}

static int check_meta(const amg_st_meta *meta, size_t n_meta, amg_err *err)
{
    size_t i, j;

    for (i = 0; i < n_meta; i++) {
        if (!meta[i].key || !meta[i].value)
            return amg_err_set(err, AMG_EINVAL,
                               "metadata entry %zu has no key or value", i);
        if (!utf8_valid(meta[i].key) || !utf8_valid(meta[i].value))
            return amg_err_set(err, AMG_EINVAL,
                               "metadata entry %zu is not valid UTF-8", i);
        if (!strcmp(meta[i].key, "format"))
            return amg_err_set(err, AMG_EINVAL,
                               "metadata key 'format' is reserved "
                               "(always \"pt\")");
        /* metadata is a handful of entries: quadratic is fine */
        for (j = 0; j < i; j++)
            if (!strcmp(meta[i].key, meta[j].key))
                return amg_err_set(err, AMG_EINVAL,
                                   "duplicate metadata key '%s'",
                                   meta[i].key);
    }
    return AMG_OK;
}

/*
 * Validate specs and meta, build the padded header into *hdr (length
 * *hdr_len, a multiple of 8), and fill begin/nbytes when given.
 */
static int build_header(const amg_st_spec *specs, size_t n,
                        const amg_st_meta *meta, size_t n_meta,
                        uint64_t *begin, uint64_t *nbytes, char **hdr,
                        uint64_t *hdr_len, uint64_t *data_size, amg_err *err)
{
    sbuf b = { 0 };
    uint64_t off = 0, sz = 0;
    size_t i;
    int d, rc;

    *hdr = NULL;
    rc = check_names(specs, n, err);
    if (!rc)
        rc = check_meta(meta, n_meta, err);
    if (rc)
        return rc;
    sb_str(&b, "{\"__metadata__\":{\"format\":\"pt\"");
    for (i = 0; i < n_meta; i++) {
        sb_put(&b, ",", 1);
        sb_json(&b, meta[i].key);
        sb_put(&b, ":", 1);
        sb_json(&b, meta[i].value);
    }
    sb_put(&b, "}", 1);
    for (i = 0; i < n; i++) {
        const amg_st_spec *s = &specs[i];

        rc = spec_nbytes(s, &sz, err);
        if (rc)
            goto fail;
        if (off + sz < off) {
            rc = amg_err_set(err, AMG_ERANGE,
                             "tensor '%s': total data size overflows",
                             s->name);
            goto fail;
        }
        if (begin)
            begin[i] = off;
        if (nbytes)
            nbytes[i] = sz;
        sb_put(&b, ",", 1);
        sb_json(&b, s->name);
        sb_str(&b, ":{\"dtype\":\"");
        sb_str(&b, amg_dtype_name(s->dtype));
        sb_str(&b, "\",\"shape\":[");
        for (d = 0; d < s->ndim; d++) {
            if (d)
                sb_put(&b, ",", 1);
            sb_u64(&b, s->shape[d]);
        }
        sb_str(&b, "],\"data_offsets\":[");
        sb_u64(&b, off);
        sb_put(&b, ",", 1);
        sb_u64(&b, off + sz);
        sb_str(&b, "]}");
        off += sz;
    }
    sb_put(&b, "}", 1);
    /* spaces up to a multiple of 8 keep 8-byte types aligned in a mapping,
     * as the reference writer does */
    while (!b.oom && b.len % 8)
        sb_put(&b, " ", 1);
    if (b.oom) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory building header");
        goto fail;
    }
    if (b.len > AMG_ST_MAX_HEADER) {
        rc = amg_err_set(err, AMG_ERANGE,
                         "header of %zu bytes exceeds the safetensors limit "
                         "of %llu", b.len,
                         (unsigned long long)AMG_ST_MAX_HEADER);
        goto fail;
    }
    if (off > UINT64_MAX - 8 - b.len) {
        rc = amg_err_set(err, AMG_ERANGE, "total file size overflows");
        goto fail;
    }
    *hdr = b.p;
    *hdr_len = b.len;
    *data_size = off;
    return AMG_OK;
fail:
    free(b.p);
    return rc;
}

uint64_t amg_st_file_size(const amg_st_spec *specs, size_t n)
{
    uint64_t hl, ds;
    char *hdr;

    if (build_header(specs, n, NULL, 0, NULL, NULL, &hdr, &hl, &ds, NULL))
        return 0;
    free(hdr);
    return 8 + hl + ds;
}

static void release(amg_st_writer *w)
{
    size_t i;

    for (i = 0; w->names && i < w->n; i++)
        free(w->names[i]);
    free(w->names);
    free(w->begin);
    free(w->nbytes);
    free(w->path);
    free(w->tmp_path);
    memset(w, 0, sizeof(*w));
    w->fd = -1;
}

/* Distinct per process and per call, so several writers (threads, shards)
 * never collide on a temporary name. */
static char *tmp_name(const char *path)
{
    static atomic_uint counter;
    unsigned k = atomic_fetch_add(&counter, 1u);
    size_t len = strlen(path) + 48;
    char *p = malloc(len);

    if (p)
        snprintf(p, len, "%s.tmp-%ld-%u", path, (long)getpid(), k);
    return p;
}

int amg_st_writer_open(amg_st_writer *w, const char *path,
                       const amg_st_spec *specs, size_t n,
                       const amg_st_meta *meta, size_t n_meta, amg_err *err)
{
    unsigned char *head = NULL;
    char *hdr = NULL;
    uint64_t hl, ds;
    size_t i;
    int rc, k;

    memset(w, 0, sizeof(*w));
    w->fd = -1;
    w->n = n;
    w->path = amg_strdup(path);
    w->names = calloc(n ? n : 1, sizeof(*w->names));
    w->begin = calloc(n ? n : 1, sizeof(*w->begin));
    w->nbytes = calloc(n ? n : 1, sizeof(*w->nbytes));
    if (!w->path || !w->names || !w->begin || !w->nbytes)
        goto oom;
    rc = build_header(specs, n, meta, n_meta, w->begin, w->nbytes, &hdr, &hl,
                      &ds, err);
    if (rc) {
        amg_err_prefix(err, "cannot write '%s': ", path);
        goto fail;
    }
    for (i = 0; i < n; i++)
        if (!(w->names[i] = amg_strdup(specs[i].name)))
            goto oom;
    w->data_start = 8 + hl;
    w->data_size = ds;
    head = malloc((size_t)w->data_start);
    w->tmp_path = tmp_name(path);
    if (!head || !w->tmp_path)
        goto oom;
    for (k = 0; k < 8; k++)
        head[k] = (unsigned char)(hl >> (8 * k));
    memcpy(head + 8, hdr, (size_t)hl);
    w->fd = open(w->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot create '%s'",
                           w->tmp_path);
        free(w->tmp_path);
        w->tmp_path = NULL;             /* not ours: never unlink it */
        goto fail;
    }
    rc = amg_pwrite_all(w->fd, head, (size_t)w->data_start, 0, w->tmp_path,
                        err);
    if (rc)
        goto fail;
    /* full size now, so tensors can land at their offsets in any order */
    if (ftruncate(w->fd, (off_t)(w->data_start + w->data_size)) < 0) {
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot size '%s'",
                           w->tmp_path);
        goto fail;
    }
    free(head);
    free(hdr);
    return AMG_OK;
oom:
    rc = amg_err_set(err, AMG_ENOMEM, "out of memory writing '%s'", path);
fail:
    free(head);
    free(hdr);
    amg_st_writer_abort(w);
    return rc;
}

int amg_st_writer_write(amg_st_writer *w, size_t idx, uint64_t off,
                        const void *data, size_t len, amg_err *err)
{
    if (!w->tmp_path || w->fd < 0)
        return amg_err_set(err, AMG_EINVAL, "write to a closed writer");
    if (idx >= w->n)
        return amg_err_set(err, AMG_EINVAL,
                           "cannot write '%s': tensor index %zu out of range "
                           "(%zu tensors)", w->path, idx, w->n);
    if (off > w->nbytes[idx] || len > w->nbytes[idx] - off)
        return amg_err_set(err, AMG_ERANGE,
                           "cannot write '%s': tensor '%s': bytes "
                           "[%llu, %llu) outside its %llu bytes", w->path,
                           w->names[idx], (unsigned long long)off,
                           (unsigned long long)off + len,
                           (unsigned long long)w->nbytes[idx]);
    return amg_pwrite_all(w->fd, data, len,
                          w->data_start + w->begin[idx] + off, w->tmp_path,
                          err);
}

int amg_st_writer_commit(amg_st_writer *w, amg_err *err)
{
    int fd = w->fd, rc = AMG_OK;

    if (!w->tmp_path || fd < 0) {
        release(w);
        return amg_err_set(err, AMG_EINVAL, "commit of a closed writer");
    }
    w->fd = -1;
    if (fsync(fd) < 0)
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot sync '%s'",
                           w->tmp_path);
    if (close(fd) < 0 && !rc)
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot close '%s'",
                           w->tmp_path);
    if (!rc && rename(w->tmp_path, w->path) < 0)
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot rename '%s' to '%s'",
                           w->tmp_path, w->path);
    if (rc)
        unlink(w->tmp_path);
    release(w);
    return rc;
}

void amg_st_writer_abort(amg_st_writer *w)
{
    /* tmp_path is set only while we own an open temporary file, so a zeroed
     * writer (fd 0) never closes stdin */
    if (w->tmp_path) {
        if (w->fd >= 0)
            close(w->fd);
        unlink(w->tmp_path);
    }
    release(w);
}
