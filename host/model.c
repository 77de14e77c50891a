/* SPDX-License-Identifier: Apache-2.0 */
/*
 * model.c - open a Hugging Face model folder, a .safetensors file or a
 * sharded index, and check that the index and its shards agree.
 *
 * The index is checked both ways. transformers only looks at the tensors
 * the index names, so a shard tensor missing from the index would be
 * silently dropped by a merge; amalgam refuses such a model instead.
 */
#include "config.h"
#include "model.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shard_index.h"
#include "util.h"

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const amg_model_tensor *)a)->name,
                  ((const amg_model_tensor *)b)->name);
}

static int cmp_name_key(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const amg_model_tensor *)elem)->name);
}

const amg_model_tensor *amg_model_find(const amg_model *m, const char *name)
{
    if (!m->n_tensors)
        return NULL;
    return bsearch(name, m->tensors, m->n_tensors, sizeof(*m->tensors),
                   cmp_name_key);
}

void amg_model_close(amg_model *m)
{
    size_t i;

    if (!m)
        return;
    for (i = 0; i < m->n_shards; i++)
        amg_st_close(&m->shards[i]);
    free(m->shards);
    free(m->tensors);
    free(m->path);
    free(m->dir);
    free(m->index_path);
    amg_config_free(&m->config);
    memset(m, 0, sizeof(*m));
}

/* The folder part of a file path ("." when there is none). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *d;

    if (!slash)
        return amg_strdup(".");
    if (slash == path)
        return amg_strdup("/");
    d = malloc((size_t)(slash - path) + 1);
    if (d) {
        memcpy(d, path, (size_t)(slash - path));
        d[slash - path] = '\0';
    }
    return d;
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Collect every shard's tensors, sort them by name and refuse a name that
 * appears in two shards (or twice in one, should a reader ever allow it). */
static int gather_tensors(amg_model *m, amg_err *err)
{
    size_t i, j, n = 0;

    for (i = 0; i < m->n_shards; i++)
        n += m->shards[i].n_tensors;
    m->tensors = calloc(n ? n : 1, sizeof(*m->tensors));
    if (!m->tensors)
        return amg_err_set(err, AMG_ENOMEM, "out of memory opening '%s'",
                           m->path);
    for (i = 0; i < m->n_shards; i++) {
        for (j = 0; j < m->shards[i].n_tensors; j++) {
            amg_model_tensor *t = &m->tensors[m->n_tensors++];
            t->t = &m->shards[i].tensors[j];
            t->name = t->t->name;
            t->shard = i;
        }
    }
    qsort(m->tensors, m->n_tensors, sizeof(*m->tensors), cmp_tensor);
    for (i = 1; i < m->n_tensors; i++) {
        const amg_model_tensor *a = &m->tensors[i - 1], *b = &m->tensors[i];
        if (strcmp(a->name, b->name))
            continue;
        if (a->shard == b->shard)
            return amg_err_set(err, AMG_EFORMAT,
                               "'%s': tensor '%s' appears twice",
                               m->shards[a->shard].path, a->name);
        return amg_err_set(err, AMG_EFORMAT,
                           "tensor '%s' is in two shards: '%s' and '%s'",
                           a->name, base_of(m->shards[a->shard].path),
                           base_of(m->shards[b->shard].path));
    }
    return AMG_OK;
}

static int open_shard(amg_model *m, size_t i, const char *file,
                      unsigned st_flags, amg_err *err)
{
    char *p = amg_path_join(m->dir, file);
    struct stat st;
    int rc;

    if (!p)
        return amg_err_set(err, AMG_ENOMEM, "out of memory opening '%s'",
                           m->path);
    if (m->index_path && stat(p, &st) < 0 && errno == ENOENT) {
        rc = amg_err_set(err, AMG_ENOTFOUND,
                         "shard '%s' named in '%s' does not exist", p,
                         m->index_path);
        goto out;
    }
    rc = amg_st_open(&m->shards[i], p, st_flags, err);
    if (!rc)
        m->n_shards = i + 1;
out:
    free(p);
    return rc;
}

/* Every index entry must be in the shard it names, and every shard tensor
 * must be in the index. Shards are opened in idx->shards order, so an index
 * shard number is also a model shard number. */
static int check_index(const amg_model *m, const amg_shard_index *idx,
                       amg_err *err)
{
    size_t i, listed = 0;

    for (i = 0; i < idx->n_entries; i++) {
        const amg_model_tensor *t = amg_model_find(m, idx->names[i]);
        const char *want = idx->shards[idx->shard_of[i]];

        if (!t)
            return amg_err_set(err, AMG_EFORMAT,
                               "'%s': tensor '%s' is listed in shard '%s' "
                               "but that file does not have it",
                               m->index_path, idx->names[i], want);
        if (t->shard != idx->shard_of[i])
            return amg_err_set(err, AMG_EFORMAT,
                               "'%s': tensor '%s' is listed in shard '%s' "
                               "but is in '%s'", m->index_path,
                               idx->names[i], want,
                               base_of(m->shards[t->shard].path));
        listed++;
    }
    if (listed == m->n_tensors)
        return AMG_OK;
    /* Some shard tensor is not in the index; find the first by name. The
     * index names are not assumed sorted, so sort a copy of them. */
    {
        amg_model_tensor *names = calloc(idx->n_entries ? idx->n_entries : 1,
                                         sizeof(*names));
        int rc = AMG_OK;

        if (!names)
            return amg_err_set(err, AMG_ENOMEM, "out of memory checking '%s'",
                               m->index_path);
        for (i = 0; i < idx->n_entries; i++)
            names[i].name = idx->names[i];
        qsort(names, idx->n_entries, sizeof(*names), cmp_tensor);
        for (i = 0; i < m->n_tensors; i++) {
            const amg_model_tensor *t = &m->tensors[i];
            if (idx->n_entries &&
                bsearch(t->name, names, idx->n_entries, sizeof(*names),
                        cmp_name_key))
                continue;
            rc = amg_err_set(err, AMG_EFORMAT,
                             "'%s': tensor '%s' in shard '%s' is not in the "
                             "index (transformers would ignore it and a merge "
                             "would drop it)", m->index_path, t->name,
                             base_of(m->shards[t->shard].path));
            break;
        }
        free(names);
        return rc;
    }
}

static int open_index(amg_model *m, unsigned st_flags, amg_err *err)
{
    amg_shard_index idx;
    size_t i;
    int rc;

    memset(&idx, 0, sizeof(idx));
    rc = amg_shard_index_read(&idx, m->index_path, err);
    if (rc)
        return rc;
    m->shards = calloc(idx.n_shards ? idx.n_shards : 1, sizeof(*m->shards));
    if (!m->shards) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory opening '%s'",
                         m->index_path);
        goto out;
    }
    for (i = 0; i < idx.n_shards; i++) {
        rc = open_shard(m, i, idx.shards[i], st_flags, err);
        if (rc)
            goto out;
    }
    rc = gather_tensors(m, err);
    if (!rc)
        rc = check_index(m, &idx, err);
out:
    amg_shard_index_free(&idx);
    return rc;
}

static int open_single(amg_model *m, const char *file, unsigned st_flags,
                       amg_err *err)
{
    int rc;

    m->shards = calloc(1, sizeof(*m->shards));
    if (!m->shards)
        return amg_err_set(err, AMG_ENOMEM, "out of memory opening '%s'",
                           file);
    rc = amg_st_open(&m->shards[0], file, st_flags, err);
    if (rc)
        return rc;
    m->n_shards = 1;
    return gather_tensors(m, err);
}

static int not_a_model(const char *path, amg_err *err)
{
    static const char *const pt[] = {
        "pytorch_model.bin", "pytorch_model.bin.index.json", NULL
    };
    size_t i;

    for (i = 0; pt[i]; i++) {
        char *p = amg_path_join(path, pt[i]);
        int has = p && amg_is_file(p);

        free(p);
        if (has)
            return amg_err_set(err, AMG_EUNSUPPORTED,
                               "'%s' is not a model folder amalgam can read: "
                               "no " SINGLE_NAME " or " INDEX_NAME " (%s is "
                               "not supported; convert it to safetensors)",
                               path, pt[i]);
    }
    return amg_err_set(err, AMG_ENOTFOUND,
                       "'%s' is not a model folder: no " SINGLE_NAME " or "
                       INDEX_NAME, path);
}

/* Decide what path is: sets m->dir, and m->index_path or *single. */
static int locate(amg_model *m, const char *path, char **single,
                  amg_err *err)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return amg_err_errno(err, errno == ENOENT ? AMG_ENOTFOUND : AMG_EIO,
                             errno, "cannot open '%s'", path);
    if (S_ISDIR(st.st_mode)) {
        m->dir = amg_strdup(path);
        if (!m->dir)
            goto oom;
        m->index_path = amg_path_join(path, INDEX_NAME);
        if (!m->index_path)
            goto oom;
        if (amg_is_file(m->index_path))
            return AMG_OK;
        free(m->index_path);
        m->index_path = NULL;
        *single = amg_path_join(path, SINGLE_NAME);
        if (!*single)
            goto oom;
        if (amg_is_file(*single))
            return AMG_OK;
        return not_a_model(path, err);
    }
    if (!S_ISREG(st.st_mode))
        return amg_err_set(err, AMG_EINVAL,
                           "'%s' is not a model folder or file", path);
    m->dir = dir_of(path);
    if (!m->dir)
        goto oom;
    if (ends_with(path, ".json")) {
        m->index_path = amg_strdup(path);
        if (!m->index_path)
            goto oom;
    } else {
        *single = amg_strdup(path);
        if (!*single)
            goto oom;
    }
    return AMG_OK;
oom:
    return amg_err_set(err, AMG_ENOMEM, "out of memory opening '%s'", path);
}

int amg_model_open(amg_model *m, const char *path, unsigned flags,
                   amg_err *err)
{
    unsigned st_flags = (flags & AMG_MODEL_HEADER_ONLY) ? AMG_ST_HEADER_ONLY
                                                        : 0;
    char *single = NULL;
    int rc;

    memset(m, 0, sizeof(*m));
    amg_config_free(&m->config);        /* fields to "unknown", not 0 */
    m->path = amg_strdup(path);
    if (!m->path) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory opening '%s'", path);
        goto out;
    }
    rc = locate(m, path, &single, err);
    if (rc)
        goto out;
    rc = m->index_path ? open_index(m, st_flags, err)
                       : open_single(m, single, st_flags, err);
    if (rc)
        goto out;
    rc = amg_config_load(&m->config, m->dir, err);
out:
    free(single);
    if (rc)
        amg_model_close(m);
    return rc;
}
