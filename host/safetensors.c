/* SPDX-License-Identifier: Apache-2.0 */
/*
 * safetensors.c - read one .safetensors file.
 *
 * The checks follow the reference reader (huggingface/safetensors,
 * SafeTensors::read_metadata and Metadata::validate) and add the ones its
 * README and JSON schema ask for but its code does not enforce: duplicate
 * keys and unknown keys in a tensor entry are rejected. Every message names
 * the file, the tensor when there is one, and the rule broken, because the
 * person reading it usually has a multi-gigabyte file they cannot open in an
 * editor.
 */
#include "config.h"
#include "safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "crash_guard.h"
#include "json_kind.h"
#include "json_mem.h"
#include "util.h"

/* ---- small helpers ---- */

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    int i;

    for (i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/*
 * jansson reports a duplicate key without saying where in the tree it sits.
 * Count the nesting depth at the error position so the message can tell a
 * duplicate tensor name (depth 1) from a key repeated inside an entry.
 */
static int json_depth_at(const uint8_t *s, uint64_t len, uint64_t pos)
{
    int depth = 0, in_str = 0, esc = 0;
    uint64_t i;

    if (pos > len)
        pos = len;
    for (i = 0; i < pos; i++) {
        uint8_t c = s[i];
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return depth;
}

/* "[2, 3]" into buf (truncated with "..." if it does not fit). */
static const char *shape_str(const uint64_t *shape, int ndim, char *buf,
                             size_t cap)
{
    size_t n = 0;
    int i;

    n += (size_t)snprintf(buf, cap, "[");
    for (i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRIu64, i ? ", " : "",
                              shape[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
    if (n >= cap && cap > 4)
        memcpy(buf + cap - 4, "...", 4);
    return buf;
}

/*
 * A non-negative integer, as serde's u64/usize accepts it: JSON integers
 * only (1.0 and 1e3 are floats to serde_json and are refused). Returns 0,
 * or -1 with why[] describing the value.
 */
static int get_uint(const json_t *v, uint64_t *out, char *why, size_t cap)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x >= 0) {
            *out = (uint64_t)x;
            return 0;
        }
        snprintf(why, cap, "%" JSON_INTEGER_FORMAT " is negative", x);
        return -1;
    }
    if (json_is_real(v))
        snprintf(why, cap, "%g is not an integer", json_real_value(v));
    else
        snprintf(why, cap, "got %s", amg_json_kind(v));
    return -1;
}

/* ---- header parsing ---- */

static int cmp_offsets(const void *a, const void *b)
{
    const amg_st_tensor *x = a, *y = b;

    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);  /* deterministic for empty tensors */
}

static int cmp_name_ptr(const void *a, const void *b)
{
    const amg_st_tensor *const *x = a, *const *y = b;

    return strcmp((*x)->name, (*y)->name);
}

static void free_contents(amg_st_file *f)
{
    size_t i;

    for (i = 0; f->tensors && i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    for (i = 0; f->meta && i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->meta);
    free(f->by_name);
    free(f->path);
}

static int parse_metadata(amg_st_file *f, const char *label, json_t *m,
                          amg_err *err)
{
    const char *k;
    json_t *v;
    size_t n;

    if (json_is_null(m))
        return AMG_OK;  /* serde reads null as an absent Option */
    if (!json_is_object(m))
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': __metadata__ must be an object of strings, "
                           "got %s", label, amg_json_kind(m));
    n = json_object_size(m);
    if (n) {
        f->meta = calloc(n, sizeof(*f->meta));
        if (!f->meta)
            return amg_err_set(err, AMG_ENOMEM, "'%s': out of memory", label);
    }
    json_object_foreach(m, k, v) {
        amg_st_meta *e;

        if (!json_is_string(v))
            return amg_err_set(err, AMG_EFORMAT,
                               "'%s': __metadata__ value for key '%s' must be "
                               "a string, got %s", label, k, amg_json_kind(v));
        if (strlen(json_string_value(v)) != json_string_length(v))
            return amg_err_set(err, AMG_EFORMAT,
                               "'%s': __metadata__ value for key '%s' "
                               "contains a NUL character", label, k);
        e = &f->meta[f->n_meta];
        e->key = amg_strdup(k);
        e->value = amg_strdup(json_string_value(v));
        if (!e->key || !e->value) {
            free(e->key);
            free(e->value);
            e->key = e->value = NULL;
            return amg_err_set(err, AMG_ENOMEM, "'%s': out of memory", label);
        }
        f->n_meta++;
    }
    return AMG_OK;
}

/* One tensor entry: {"dtype": .., "shape": [..], "data_offsets": [b, e]}. */
static int parse_entry(amg_st_tensor *t, const char *label, const char *name,
                       json_t *v, amg_err *err)
{
    json_t *jd, *js, *jo, *x;
    const char *k, *ds;
    char why[96], sb[160];
    size_t i, sz;
    uint64_t bytes;

    if (!json_is_object(v))
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': tensor '%s': entry must be an object with "
                           "dtype, shape and data_offsets, got %s",
                           label, name, amg_json_kind(v));
    json_object_foreach(v, k, x) {
        if (strcmp(k, "dtype") && strcmp(k, "shape") &&
            strcmp(k, "data_offsets"))
            return amg_err_set(err, AMG_EFORMAT,
                               "'%s': tensor '%s': unknown key '%s' in entry "
                               "(only dtype, shape and data_offsets are "
                               "allowed)", label, name, k);
    }
    jd = json_object_get(v, "dtype");
    js = json_object_get(v, "shape");
    jo = json_object_get(v, "data_offsets");
    if (!jd || !js || !jo)
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': tensor '%s': entry lacks '%s'", label, name,
                           !jd ? "dtype" : !js ? "shape" : "data_offsets");

    /* dtype */
    if (!json_is_string(jd))
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': tensor '%s': dtype must be a string, got %s",
                           label, name, amg_json_kind(jd));
    ds = json_string_value(jd);
    if (amg_dtype_parse(ds, &t->dtype) < 0) {
        if (amg_dtype_known_unsupported(ds))
            return amg_err_set(err, AMG_EFORMAT,
                               "'%s': tensor '%s': dtype '%s' is not "
                               "supported", label, name, ds);
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': tensor '%s': unknown dtype '%.64s'",
                           label, name, ds);
    }

    /* shape */
    if (!json_is_array(js))
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': tensor '%s': shape must be an array of "
                           "non-negative integers, got %s",
                           label, name, amg_json_kind(js));
    if (json_array_size(js) > AMG_ST_MAX_DIMS)
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': tensor '%s': shape has %zu dimensions, "
                           "more than the %d supported", label, name,
                           json_array_size(js), AMG_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(js);
    t->numel = 1;
    json_array_foreach(js, i, x) {
        if (get_uint(x, &t->shape[i], why, sizeof(why)) < 0)
            return amg_err_set(err, AMG_EFORMAT,
                               "'%s': tensor '%s': shape[%zu] must be a "
                               "non-negative integer: %s",
                               label, name, i, why);
    }
    for (i = 0; i < (size_t)t->ndim; i++) {
        if (amg_mul_u64(t->numel, t->shape[i], &t->numel) < 0)
            return amg_err_set(err, AMG_EFORMAT,
                               "'%s': tensor '%s': element count of shape %s "
                               "overflows 64 bits", label, name,
                               shape_str(t->shape, t->ndim, sb, sizeof(sb)));
    }
    sz = amg_dtype_size(t->dtype);
    if (amg_mul_u64(t->numel, sz, &bytes) < 0)
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': tensor '%s': byte size of shape %s in %s "
                           "overflows 64 bits", label, name,
                           shape_str(t->shape, t->ndim, sb, sizeof(sb)), ds);

    /* data_offsets */
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': tensor '%s': data_offsets must be an array "
                           "of exactly two integers [begin, end], got %s%s",
                           label, name, amg_json_kind(jo),
                           json_is_array(jo) ? (json_array_size(jo) < 2 ?
                           " that is too short" : " that is too long") : "");
    if (get_uint(json_array_get(jo, 0), &t->begin, why, sizeof(why)) < 0)
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': tensor '%s': data_offsets begin must be a "
                           "non-negative integer: %s", label, name, why);
    if (get_uint(json_array_get(jo, 1), &t->end, why, sizeof(why)) < 0)
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': tensor '%s': data_offsets end must be a "
                           "non-negative integer: %s", label, name, why);
    if (t->begin > t->end)
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': tensor '%s': data_offsets [%" PRIu64
                           ", %" PRIu64 "]: begin is greater than end",
                           label, name, t->begin, t->end);
    if (t->end - t->begin != bytes)
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': tensor '%s': data_offsets [%" PRIu64 ", %"
                           PRIu64 "] span %" PRIu64 " bytes but shape %s of "
                           "%s needs %" PRIu64 " (size mismatch)", label, name,
                           t->begin, t->end, t->end - t->begin,
                           shape_str(t->shape, t->ndim, sb, sizeof(sb)), ds,
                           bytes);
    return AMG_OK;
}

/* Offsets: sorted by (begin, end), the tensors must tile [0, data_len)
 * exactly: no hole, no overlap, nothing after the last one. */
static int check_layout(const amg_st_file *f, const char *label,
                        uint64_t data_len, amg_err *err)
{
    uint64_t pos = 0;
    size_t i;

    for (i = 0; i < f->n_tensors; i++) {
        const amg_st_tensor *t = &f->tensors[i];

        if (t->begin == pos) {
            pos = t->end;
            continue;
        }
        if (i == 0)
            return amg_err_set(err, AMG_EFORMAT,
                               "'%s': tensor '%s': first tensor's data begins "
                               "at byte %" PRIu64 ", not 0 (data_offsets must "
                               "start at 0)", label, t->name, t->begin);
        if (t->begin > pos)
            return amg_err_set(err, AMG_EFORMAT,
                               "'%s': hole in the data section: tensor '%s' "
                               "ends at byte %" PRIu64 " but the next, tensor "
                               "'%s', begins at byte %" PRIu64, label,
                               f->tensors[i - 1].name, pos, t->name,
                               t->begin);
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': tensors overlap: tensor '%s' begins at byte "
                           "%" PRIu64 ", inside tensor '%s' which ends at "
                           "byte %" PRIu64, label, t->name, t->begin,
                           f->tensors[i - 1].name, pos);
    }
    if (pos < data_len)
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': %" PRIu64 " trailing bytes after the last "
                           "tensor's data (the data section is %" PRIu64
                           " bytes, the tensors cover %" PRIu64 "; the file "
                           "must end where the last tensor ends)", label,
                           data_len - pos, data_len, pos);
    if (pos > data_len)
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': file is truncated: tensor '%s' ends at byte "
                           "%" PRIu64 " of the data section, which has only %"
                           PRIu64 " bytes", label,
                           f->tensors[f->n_tensors - 1].name, pos, data_len);
    return AMG_OK;
}

/* The key a jansson "duplicate object key near '\"k\"'" error names, as
 * written in the JSON (escapes kept), into buf. */
static const char *dup_key(const json_error_t *je, char *buf, size_t cap)
{
    const char *p = strstr(je->text, "near '\"");
    size_t n;

    if (!p)
        return "?";
    p += 7;
    n = strlen(p);
    if (n >= 2 && p[n - 2] == '"' && p[n - 1] == '\'')
        n -= 2;
    snprintf(buf, cap, "%.*s", (int)n, p);
    return buf;
}

static int json_error(const char *label, const uint8_t *hdr, uint64_t hdr_len,
                      const json_error_t *je, amg_err *err)
{
    char key[JSON_ERROR_TEXT_LENGTH];

    if (json_error_code(je) == json_error_duplicate_key) {
        int depth = json_depth_at(hdr, hdr_len, (uint64_t)je->position);

        dup_key(je, key, sizeof(key));
        if (depth <= 1)
            return amg_err_set(err, AMG_EFORMAT,
                               "'%s': duplicate tensor name '%s' in header at "
                               "byte %d (names must be unique)", label, key,
                               je->position);
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': duplicate key '%s' in header at byte %d "
                           "(keys in an entry must be unique)", label, key,
                           je->position);
    }
    return amg_err_set(err, AMG_EFORMAT,
                       "'%s': invalid JSON in header at byte %d: %s", label,
                       je->position, je->text);
}

int amg_st_parse_header(amg_st_file *f, const char *label, const uint8_t *hdr,
                        uint64_t hdr_len, uint64_t data_len, amg_err *err)
{
    json_error_t je;
    json_t *root = NULL, *v;
    const char *k;
    amg_st_tensor **ptrs = NULL;
    uint64_t bad;
    size_t n, i;
    int is_nul, rc;

    memset(f, 0, sizeof(*f));
    f->fd = -1;
    f->header_len = hdr_len;
    f->data_start = 8 + hdr_len;
    f->file_size = 8 + hdr_len + data_len;
    f->path = amg_strdup(label);
    if (!f->path) {
        rc = amg_err_set(err, AMG_ENOMEM, "'%s': out of memory", label);
        goto fail;
    }
    if (hdr_len > AMG_ST_MAX_HEADER) {
        rc = amg_err_set(err, AMG_EFORMAT,
                         "'%s': header too large: %" PRIu64 " bytes, the "
                         "limit is %llu", label, hdr_len, AMG_ST_MAX_HEADER);
        goto fail;
    }
    bad = amg_utf8_check(hdr, hdr_len, &is_nul);
    if (bad < hdr_len) {
        rc = amg_err_set(err, AMG_EFORMAT,
                         is_nul ? "'%s': invalid JSON in header: NUL byte at "
                                  "byte %" PRIu64
                                : "'%s': invalid UTF-8 in header at byte %"
                                  PRIu64, label, bad);
        goto fail;
    }
    /* JSON_DECODE_ANY so that a scalar gets our "not an object" message;
     * jansson skips leading and trailing JSON whitespace as serde does. */
    amg_json_oom_clear();
    root = json_loadb((const char *)hdr, (size_t)hdr_len,
                      JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root) {
        rc = amg_json_oom()
                 ? amg_err_set(err, AMG_ENOMEM,
                               "'%s': out of memory parsing the header", label)
                 : json_error(label, hdr, hdr_len, &je, err);
        goto fail;
    }
    if (!json_is_object(root)) {
        rc = amg_err_set(err, AMG_EFORMAT,
                         "'%s': header must be a JSON object (beginning with "
                         "'{'), got %s", label, amg_json_kind(root));
        goto fail;
    }

    n = json_object_size(root);
    if (json_object_get(root, "__metadata__"))
        n--;
    if (n) {
        f->tensors = calloc(n, sizeof(*f->tensors));
        if (!f->tensors) {
            rc = amg_err_set(err, AMG_ENOMEM, "'%s': out of memory", label);
            goto fail;
        }
    }
    json_object_foreach(root, k, v) {
        amg_st_tensor *t;

        if (!strcmp(k, "__metadata__")) {
            rc = parse_metadata(f, label, v, err);
            if (rc)
                goto fail;
            continue;
        }
        t = &f->tensors[f->n_tensors];
        t->name = amg_strdup(k);
        if (!t->name) {
            rc = amg_err_set(err, AMG_ENOMEM, "'%s': out of memory", label);
            goto fail;
        }
        f->n_tensors++;
        rc = parse_entry(t, label, k, v, err);
        if (rc)
            goto fail;
    }
    json_decref(root);
    root = NULL;

    if (f->n_tensors)
        qsort(f->tensors, f->n_tensors, sizeof(*f->tensors), cmp_offsets);
    rc = check_layout(f, label, data_len, err);
    if (rc)
        goto fail;

    if (f->n_tensors) {
        ptrs = malloc(f->n_tensors * sizeof(*ptrs));
        f->by_name = malloc(f->n_tensors * sizeof(*f->by_name));
        if (!ptrs || !f->by_name) {
            rc = amg_err_set(err, AMG_ENOMEM, "'%s': out of memory", label);
            goto fail;
        }
        for (i = 0; i < f->n_tensors; i++)
            ptrs[i] = &f->tensors[i];
        qsort(ptrs, f->n_tensors, sizeof(*ptrs), cmp_name_ptr);
        for (i = 0; i < f->n_tensors; i++)
            f->by_name[i] = (size_t)(ptrs[i] - f->tensors);
        free(ptrs);
    }
    return AMG_OK;

fail:
    free(ptrs);
    json_decref(root);
    free_contents(f);
    memset(f, 0, sizeof(*f));
    f->fd = -1;
    return rc;
}

/* ---- files ---- */

int amg_st_open(amg_st_file *f, const char *path, unsigned flags, amg_err *err)
{
    uint8_t lenbuf[8];
    uint8_t *hdr = NULL;
    void *map = NULL;
    uint64_t size, n;
    int fd, rc;

    memset(f, 0, sizeof(*f));
    f->fd = -1;
    if ((rc = amg_open_file(path, &fd, &size, err)))
        return rc;
    if (size < 8) {
        rc = amg_err_set(err, AMG_EFORMAT,
                         "'%s': header too small: the file has %" PRIu64
                         " bytes, fewer than the 8 of the header length",
                         path, size);
        goto fail;
    }
    rc = amg_pread_all(fd, lenbuf, 8, 0, path, err);
    if (rc)
        goto fail;
    n = le64(lenbuf);
    if (n > AMG_ST_MAX_HEADER) {
        rc = amg_err_set(err, AMG_EFORMAT,
                         "'%s': header too large: its length field says %"
                         PRIu64 " bytes, the limit is %llu", path, n,
                         AMG_ST_MAX_HEADER);
        goto fail;
    }
    if (8 + n > size) {
        rc = amg_err_set(err, AMG_EFORMAT,
                         "'%s': invalid header length: %" PRIu64 " bytes of "
                         "header do not fit in the %" PRIu64 "-byte file",
                         path, n, size);
        goto fail;
    }
    if (flags & AMG_ST_HEADER_ONLY) {
        hdr = malloc(n ? (size_t)n : 1);
        if (!hdr) {
            rc = amg_err_set(err, AMG_ENOMEM, "'%s': out of memory", path);
            goto fail;
        }
        rc = amg_pread_all(fd, hdr, (size_t)n, 8, path, err);
        if (rc)
            goto fail;
        rc = amg_st_parse_header(f, path, hdr, n, size - 8 - n, err);
        free(hdr);
        hdr = NULL;
    } else {
        if (size > SIZE_MAX) {
            rc = amg_err_set(err, AMG_EIO, "'%s': too large to map", path);
            goto fail;
        }
        map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            map = NULL;
            rc = amg_err_errno(err, AMG_EIO, errno, "cannot map '%s'", path);
            goto fail;
        }
        rc = amg_st_parse_header(f, path, (const uint8_t *)map + 8, n,
                                 size - 8 - n, err);
    }
    if (rc)
        goto fail;
    f->fd = fd;
    f->map = map;
    if (map) /* a SIGBUS here later means the file shrank: name it */
        amg_crash_guard_map(map, (size_t)size, f->path);
    return AMG_OK;

fail:
    free(hdr);
    if (map)
        munmap(map, (size_t)size);
    close(fd);
    memset(f, 0, sizeof(*f));
    f->fd = -1;
    return rc;
}

void amg_st_close(amg_st_file *f)
{
    if (!f)
        return;
    if (f->map) {
        amg_crash_guard_unmap(f->map);
        munmap((void *)f->map, (size_t)f->file_size);
    }
    /* A zeroed struct has fd 0 but no path: only close what open set. */
    if (f->path && f->fd >= 0)
        close(f->fd);
    free_contents(f);
    memset(f, 0, sizeof(*f));
    f->fd = -1;
}

const amg_st_tensor *amg_st_find(const amg_st_file *f, const char *name)
{
    size_t lo = 0, hi = f->n_tensors;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const amg_st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);

        if (c == 0)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *amg_st_meta_get(const amg_st_file *f, const char *key)
{
    size_t i;

    for (i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta[i].key, key))
            return f->meta[i].value;
    return NULL;
}

const void *amg_st_data(const amg_st_file *f, const amg_st_tensor *t)
{
    if (!f->map)
        return NULL;
    return f->map + f->data_start + t->begin;
}

int amg_st_read(const amg_st_file *f, const amg_st_tensor *t, uint64_t off,
                void *buf, size_t len, amg_err *err)
{
    uint64_t nbytes = t->end - t->begin;
    const char *label = f->path ? f->path : "?";

    if (off > nbytes || len > nbytes - off)
        return amg_err_set(err, AMG_ERANGE,
                           "'%s': tensor '%s': cannot read %zu bytes at "
                           "offset %" PRIu64 ", it has only %" PRIu64,
                           label, t->name, len, off, nbytes);
    if (len == 0)
        return AMG_OK;
    if (f->map) {
        memcpy(buf, f->map + f->data_start + t->begin + off, len);
        return AMG_OK;
    }
    if (f->fd < 0)
        return amg_err_set(err, AMG_EINVAL,
                           "'%s': tensor '%s': no data (header parsed from "
                           "memory)", label, t->name);
    return amg_pread_all(f->fd, buf, len, f->data_start + t->begin + off,
                         label, err);
}
