/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shard_index.c - model.safetensors.index.json, read and written.
 *
 * Shard names come from a file that may have been downloaded, and are joined
 * to the model folder, so they must be plain file names: anything that could
 * step outside the folder is refused. The writer lays the file out byte for
 * byte as transformers does (json.dumps(index, indent=2, sort_keys=True) +
 * "\n", ensure_ascii on) so a merged model's index diffs cleanly against one
 * saved by Python.
 */
#include "config.h"
#include "shard_index.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "json_kind.h"
#include "json_mem.h"
#include "util.h"

/* Index files are small (a few hundred KB for the largest models); this
 * bound only stops a wrong path from being read into memory. */
#define INDEX_MAX_BYTES (256u << 20)

struct entry {
    const char *name, *shard;
};

static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;

    return strcmp(x->name, y->name);
}

/* Why a shard name is not a plain file name in the model folder, or NULL. */
static const char *bad_shard_name(const char *s, size_t len)
{
    if (len == 0)
        return "it is empty";
    if (strlen(s) != len)
        return "it contains a NUL character";
    if (s[0] == '/')
        return "it is an absolute path";
    if (strchr(s, '/'))
        return "it contains '/' (shards must sit in the model folder)";
    if (!strcmp(s, ".") || !strcmp(s, ".."))
        return "it names a directory";
    return NULL;
}

void amg_shard_index_free(amg_shard_index *idx)
{
    size_t i;

    if (!idx)
        return;
    for (i = 0; idx->names && i < idx->n_entries; i++)
        free(idx->names[i]);
    for (i = 0; idx->shards && i < idx->n_shards; i++)
        free(idx->shards[i]);
    free(idx->names);
    free(idx->shards);
    free(idx->shard_of);
    memset(idx, 0, sizeof(*idx));
}

/* total_size: an integer, or a float with an integral value (some hand-made
 * and converted indexes carry 1234.0; Python reads either). Below 2^63, as
 * jansson cannot read a larger integer back from what we write. */
static int get_total_size(const json_t *v, uint64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= 0 && d < 9223372036854775808.0 &&
            d == (double)(uint64_t)d) {
            *out = (uint64_t)d;
            return 0;
        }
    }
    return -1;
}

int amg_shard_index_parse(amg_shard_index *idx, const char *label,
                          const char *text, size_t len, amg_err *err)
{
    json_error_t je;
    json_t *root, *meta, *wm, *v;
    struct entry *ents = NULL;
    const char *k;
    size_t n = 0, i, j, last = 0;
    int rc;

    memset(idx, 0, sizeof(*idx));
    if (memchr(text, '\0', len))
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': invalid JSON: NUL byte at byte %zu", label,
                           (size_t)((const char *)memchr(text, '\0', len) -
                                    text));
    /* JSON_ALLOW_NUL so that a "\u0000" in a shard name reaches our own
     * check, which names the tensor. */
    amg_json_oom_clear();
    root = json_loadb(text, len,
                      JSON_REJECT_DUPLICATES | JSON_DECODE_ANY |
                      JSON_ALLOW_NUL, &je);
    if (!root && amg_json_oom())
        return amg_err_set(err, AMG_ENOMEM, "'%s': out of memory parsing it",
                           label);
    if (!root) {
        if (json_error_code(&je) == json_error_duplicate_key) {
            /* jansson's text: duplicate object key near '"name"' */
            const char *p = strstr(je.text, "near '\"");
            size_t kn = p ? strlen(p + 7) : 0;

            if (kn >= 2)
                kn -= 2;
            return amg_err_set(err, AMG_EFORMAT,
                               "'%s': duplicate key '%.*s' at byte %d (tensor "
                               "names must be unique)", label, (int)kn,
                               p ? p + 7 : "", je.position);
        }
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': invalid JSON at byte %d: %s", label,
                           je.position, je.text);
    }
    if (!json_is_object(root)) {
        rc = amg_err_set(err, AMG_EFORMAT,
                         "'%s': index must be a JSON object, got %s", label,
                         amg_json_kind(root));
        goto fail;
    }

    meta = json_object_get(root, "metadata");
    if (meta && !json_is_null(meta)) {
        if (!json_is_object(meta)) {
            rc = amg_err_set(err, AMG_EFORMAT,
                             "'%s': metadata must be an object, got %s", label,
                             amg_json_kind(meta));
            goto fail;
        }
        v = json_object_get(meta, "total_size");
        if (v) {
            if (get_total_size(v, &idx->total_size) < 0) {
                rc = amg_err_set(err, AMG_EFORMAT,
                                 "'%s': metadata.total_size must be a "
                                 "non-negative integer, got %s", label,
                                 json_is_integer(v) ? "a negative integer" :
                                 amg_json_kind(v));
                goto fail;
            }
            idx->has_total_size = 1;
        }
    }

    wm = json_object_get(root, "weight_map");
    if (!wm) {
        rc = amg_err_set(err, AMG_EFORMAT, "'%s': no weight_map", label);
        goto fail;
    }
    if (!json_is_object(wm)) {
        rc = amg_err_set(err, AMG_EFORMAT,
                         "'%s': weight_map must be an object, got %s", label,
                         amg_json_kind(wm));
        goto fail;
    }

    n = json_object_size(wm);
    if (n) {
        ents = malloc(n * sizeof(*ents));
        idx->names = calloc(n, sizeof(*idx->names));
        idx->shard_of = calloc(n, sizeof(*idx->shard_of));
        idx->shards = calloc(n, sizeof(*idx->shards));
        if (!ents || !idx->names || !idx->shard_of || !idx->shards) {
            rc = amg_err_set(err, AMG_ENOMEM, "'%s': out of memory", label);
            goto fail;
        }
    }
    i = 0;
    json_object_foreach(wm, k, v) {
        const char *why;

        if (!json_is_string(v)) {
            rc = amg_err_set(err, AMG_EFORMAT,
                             "'%s': weight_map: tensor '%s': shard must be a "
                             "file name string, got %s", label, k,
                             amg_json_kind(v));
            goto fail;
        }
        why = bad_shard_name(json_string_value(v), json_string_length(v));
        if (why) {
            rc = amg_err_set(err, AMG_EFORMAT,
                             "'%s': weight_map: tensor '%s': shard name '%s' "
                             "is not a plain file name: %s", label, k,
                             json_string_value(v), why);
            goto fail;
        }
        ents[i].name = k;
        ents[i].shard = json_string_value(v);
        i++;
    }

    /* distinct shards in order of first appearance in the file */
    for (i = 0; i < n; i++) {
        const char *s = ents[i].shard;

        if (idx->n_shards && !strcmp(idx->shards[last], s))
            continue;  /* the usual run of one shard's tensors */
        for (j = 0; j < idx->n_shards; j++)
            if (!strcmp(idx->shards[j], s))
                break;
        if (j == idx->n_shards) {
            idx->shards[j] = amg_strdup(s);
            if (!idx->shards[j]) {
                rc = amg_err_set(err, AMG_ENOMEM, "'%s': out of memory",
                                 label);
                goto fail;
            }
            idx->n_shards++;
        }
        last = j;
    }

    if (n)
        qsort(ents, n, sizeof(*ents), cmp_entry);
    for (i = 0; i < n; i++) {
        /* jansson refused duplicate keys; names are distinct */
        idx->names[i] = amg_strdup(ents[i].name);
        if (!idx->names[i]) {
            rc = amg_err_set(err, AMG_ENOMEM, "'%s': out of memory", label);
            goto fail;
        }
        idx->n_entries++;
        if (!strcmp(idx->shards[last], ents[i].shard)) {
            idx->shard_of[i] = last;
            continue;
        }
        for (j = 0; j < idx->n_shards; j++)
            if (!strcmp(idx->shards[j], ents[i].shard))
                break;
        idx->shard_of[i] = last = j;
    }
    free(ents);
    json_decref(root);
    return AMG_OK;

fail:
    free(ents);
    json_decref(root);
    amg_shard_index_free(idx);
    return rc;
}

int amg_shard_index_read(amg_shard_index *idx, const char *path, amg_err *err)
{
    char *text;
    size_t len;
    int rc;

    memset(idx, 0, sizeof(*idx));
    rc = amg_read_file(path, INDEX_MAX_BYTES, &text, &len, err);
    if (rc)
        return rc;
    rc = amg_shard_index_parse(idx, path, text, len, err);
    free(text);
    return rc;
}

/* ---- writing ---- */

struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;

        while (b->len + n + 1 > cap)
            cap *= 2;
        p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/*
 * A JSON string as Python's json.dumps writes it with ensure_ascii (the
 * default): \" \\ \n \r \t \b \f, every other character outside ' '..'~' as
 * \uXXXX in lower-case hex, astral ones as a surrogate pair. Returns -1 on
 * invalid UTF-8 (Python strings cannot hold it, so neither can the file).
 */
static int put_str(struct buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    char tmp[16];

    put(b, "\"", 1);
    while (*p) {
        uint32_t cp;
        int n, k;

        if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\') {
            const unsigned char *q = p;
            while (*q >= 0x20 && *q < 0x7f && *q != '"' && *q != '\\')
                q++;
            put(b, (const char *)p, (size_t)(q - p));
            p = q;
            continue;
        }
        switch (*p) {
        case '"':  puts_(b, "\\\""); p++; continue;
        case '\\': puts_(b, "\\\\"); p++; continue;
        case '\n': puts_(b, "\\n"); p++; continue;
        case '\r': puts_(b, "\\r"); p++; continue;
        case '\t': puts_(b, "\\t"); p++; continue;
        case '\b': puts_(b, "\\b"); p++; continue;
        case '\f': puts_(b, "\\f"); p++; continue;
        default: break;
        }
        if (*p < 0x80) {
            cp = *p;
            n = 0;
        } else if (*p >= 0xC2 && *p <= 0xDF) {
            cp = *p & 0x1F;
            n = 1;
        } else if (*p >= 0xE0 && *p <= 0xEF) {
            cp = *p & 0x0F;
            n = 2;
        } else if (*p >= 0xF0 && *p <= 0xF4) {
            cp = *p & 0x07;
            n = 3;
        } else {
            return -1;
        }
        for (k = 1; k <= n; k++) {
            if ((p[k] & 0xC0) != 0x80)
                return -1;
            cp = (cp << 6) | (p[k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return -1;
        p += n + 1;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            snprintf(tmp, sizeof(tmp), "\\u%04x\\u%04x",
                     0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
        } else {
            snprintf(tmp, sizeof(tmp), "\\u%04x", cp);
        }
        puts_(b, tmp);
    }
    put(b, "\"", 1);
    return 0;
}

int amg_shard_index_format(const amg_shard_index *idx, char **out,
                           amg_err *err)
{
    struct buf b = { 0 };
    struct entry *ents = NULL;
    char num[32];
    size_t i;
    int rc;

    *out = NULL;
    if (idx->n_entries) {
        ents = malloc(idx->n_entries * sizeof(*ents));
        if (!ents)
            return amg_err_set(err, AMG_ENOMEM,
                               "formatting shard index: out of memory");
    }
    for (i = 0; i < idx->n_entries; i++) {
        if (idx->shard_of[i] >= idx->n_shards) {
            rc = amg_err_set(err, AMG_EINVAL,
                             "formatting shard index: tensor '%s' refers to "
                             "shard %zu of %zu", idx->names[i],
                             idx->shard_of[i], idx->n_shards);
            goto fail;
        }
        ents[i].name = idx->names[i];
        ents[i].shard = idx->shards[idx->shard_of[i]];
    }
    /* sort_keys=True; the names are normally sorted already */
    if (idx->n_entries)
        qsort(ents, idx->n_entries, sizeof(*ents), cmp_entry);
    for (i = 1; i < idx->n_entries; i++) {
        if (!strcmp(ents[i - 1].name, ents[i].name)) {
            rc = amg_err_set(err, AMG_EINVAL,
                             "formatting shard index: tensor '%s' is listed "
                             "twice", ents[i].name);
            goto fail;
        }
    }

    puts_(&b, "{\n  \"metadata\": ");
    if (idx->has_total_size) {
        snprintf(num, sizeof(num), "%" PRIu64, idx->total_size);
        puts_(&b, "{\n    \"total_size\": ");
        puts_(&b, num);
        puts_(&b, "\n  }");
    } else {
        puts_(&b, "{}");
    }
    puts_(&b, ",\n  \"weight_map\": ");
    if (!idx->n_entries)
        puts_(&b, "{}");
    else
        puts_(&b, "{\n");
    for (i = 0; i < idx->n_entries; i++) {
        puts_(&b, "    ");
        if (put_str(&b, ents[i].name) < 0) {
            rc = amg_err_set(err, AMG_EINVAL,
                             "formatting shard index: tensor name '%s' is "
                             "not valid UTF-8", ents[i].name);
            goto fail;
        }
        puts_(&b, ": ");
        if (put_str(&b, ents[i].shard) < 0) {
            rc = amg_err_set(err, AMG_EINVAL,
                             "formatting shard index: shard name '%s' is not "
                             "valid UTF-8", ents[i].shard);
            goto fail;
        }
        puts_(&b, i + 1 < idx->n_entries ? ",\n" : "\n  }");
    }
    puts_(&b, "\n}\n");
    if (b.oom) {
        rc = amg_err_set(err, AMG_ENOMEM,
                         "formatting shard index: out of memory");
        goto fail;
    }
    free(ents);
    *out = b.p;
    return AMG_OK;

fail:
    free(ents);
    free(b.p);
    return rc;
}
