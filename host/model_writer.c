/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
#include "model_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shard_index.h"
#include "util.h"

#define INDEX_NAME "model.safetensors.index.json"
#define STAGE_SUFFIX ".amalgam-partial"
#define OLD_SUFFIX ".amalgam-old"

static int rm_entry(const char *path, const struct stat *st, int type,
                    struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    /* keep going past a failure; the caller checks the top folder is gone */
    (void)remove(path);
    return 0;
}

/* Remove a folder we own and everything in it, never following links out
 * of it. */
static int rmtree(const char *path, amg_err *err)
{
    struct stat st;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? AMG_OK
               : amg_err_errno(err, AMG_EIO, errno, "cannot remove '%s'",
                               path);
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 ||
        lstat(path, &st) == 0)
        return amg_err_set(err, AMG_EIO, "cannot remove '%s'", path);
    return AMG_OK;
}

/* Make a directory's entries durable; best effort (some file systems
 * refuse fsync on directories). */
static void sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static char *parent_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *p;

    if (!slash)
        return amg_strdup(".");
    if (slash == path)
        return amg_strdup("/");
    p = malloc((size_t)(slash - path) + 1);
    if (p) {
        memcpy(p, path, (size_t)(slash - path));
        p[slash - path] = '\0';
    }
    return p;
}

/* out_dir without trailing slashes, with suffix appended ("" for none). */
static char *with_suffix(const char *dir, const char *suffix)
{
    size_t n = strlen(dir), s = strlen(suffix);
    char *p;

    while (n > 1 && dir[n - 1] == '/')
        n--;
    p = malloc(n + s + 1);
    if (p) {
        memcpy(p, dir, n);
        memcpy(p + n, suffix, s + 1);
    }
    return p;
}

/*
 * huggingface_hub's split_state_dict_into_shards_factory (which transformers
 * uses): walk in order; a tensor over the limit becomes a shard on its own,
 * numbered when it is met, while the shard being filled stays open and is
 * numbered when it closes. So [2, 20, 3] with limit 10 gives [20], [2, 3].
 * Fills w->shard_of / slot_of and w->n_shards.
 */
static int plan_shards(amg_model_writer *w, const uint64_t *sz, size_t n,
                       uint64_t max)
{
    size_t *group = malloc((n ? n : 1) * sizeof(*group));
    size_t *number = malloc((n + 1) * sizeof(*number));
    size_t *fill = NULL;
    size_t i, n_groups = 0, next = 0, cur = SIZE_MAX;
    uint64_t cur_size = 0;

    if (!group || !number)
        goto oom;
    for (i = 0; i < n; i++) {
        if (sz[i] > max) {
            group[i] = n_groups;
            number[n_groups++] = next++;
            continue;
        }
        if (cur != SIZE_MAX && cur_size + sz[i] > max) {
            number[cur] = next++;
            cur = SIZE_MAX;
        }
        if (cur == SIZE_MAX) {
            cur = n_groups++;
            cur_size = 0;
        }
        group[i] = cur;
        cur_size += sz[i];
    }
    if (cur != SIZE_MAX)
        number[cur] = next++;
    /* no tensors at all still makes one (empty) model.safetensors */
    w->n_shards = next ? next : 1;
    fill = calloc(w->n_shards, sizeof(*fill));
    if (!fill)
        goto oom;
    for (i = 0; i < n; i++) {
        w->shard_of[i] = number[group[i]];
        w->slot_of[i] = fill[w->shard_of[i]]++;
    }
    free(fill);
    free(group);
    free(number);
    return 0;
oom:
    free(group);
    free(number);
    return -1;
}

static int open_shards(amg_model_writer *w, const amg_st_spec *specs,
                       size_t n, amg_err *err)
{
    amg_st_spec *sub = malloc((n ? n : 1) * sizeof(*sub));
    char *path = NULL;
    size_t s, i, k;
    int rc = AMG_OK;

    w->shards = calloc(w->n_shards, sizeof(*w->shards));
    w->shard_names = calloc(w->n_shards, sizeof(*w->shard_names));
    if (!sub || !w->shards || !w->shard_names) {
        free(sub);
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    }
    for (s = 0; s < w->n_shards; s++)
        w->shards[s].fd = -1;
    for (s = 0; s < w->n_shards && !rc; s++) {
        char name[64];

        if (w->n_shards == 1)
            snprintf(name, sizeof(name), "model.safetensors");
        else
            snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors",
                     s + 1, w->n_shards);
        /* slot order is walk order, so one pass fills each shard's list */
        for (i = 0, k = 0; i < n; i++)
            if (w->shard_of[i] == s)
                sub[k++] = specs[i];
        w->shard_names[s] = amg_strdup(name);
        path = amg_path_join(w->stage_dir, name);
        if (!w->shard_names[s] || !path)
            rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        else
            rc = amg_st_writer_open(&w->shards[s], path, sub, k, NULL, 0,
                                    err);
        free(path);
    }
    free(sub);
    return rc;
}

static void release(amg_model_writer *w)
{
    size_t s;

    for (s = 0; s < w->n_shards; s++) {
        if (w->shards)
            amg_st_writer_abort(&w->shards[s]);
        if (w->shard_names)
            free(w->shard_names[s]);
    }
    free(w->shards);
    free(w->shard_names);
    free(w->shard_of);
    free(w->slot_of);
    free(w->out_dir);
    free(w->stage_dir);
    memset(w, 0, sizeof(*w));
}

int amg_model_writer_open(amg_model_writer *w, const char *out_dir,
                          const amg_st_spec *specs, size_t n,
                          uint64_t max_shard_size, int overwrite,
                          amg_err *err)
{
    uint64_t *sz = NULL;
    struct stat st;
    size_t i;
    int d, rc;

    memset(w, 0, sizeof(*w));
    if (!*out_dir)
        return amg_err_set(err, AMG_EINVAL, "output folder name is empty");
    w->out_dir = with_suffix(out_dir, "");
    w->stage_dir = with_suffix(out_dir, STAGE_SUFFIX);
    w->n_tensors = n;
    w->overwrite = overwrite;
    w->shard_of = calloc(n ? n : 1, sizeof(*w->shard_of));
    w->slot_of = calloc(n ? n : 1, sizeof(*w->slot_of));
    sz = malloc((n ? n : 1) * sizeof(*sz));
    if (!w->out_dir || !w->stage_dir || !w->shard_of || !w->slot_of || !sz) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto fail_nostage;
    }
    if (lstat(w->out_dir, &st) == 0) {
        if (!overwrite) {
            rc = amg_err_set(err, AMG_EEXIST,
                             "'%s' already exists (use --force to replace it)",
                             w->out_dir);
            goto fail_nostage;
        }
        /* --force replaces a model folder, never a file someone meant to
         * keep */
        if (!S_ISDIR(st.st_mode)) {
            rc = amg_err_set(err, AMG_EEXIST,
                             "'%s' already exists and is not a folder",
                             w->out_dir);
            goto fail_nostage;
        }
    }
    for (i = 0; i < n; i++) {
        sz[i] = amg_dtype_size(specs[i].dtype);
        if (specs[i].ndim < 0 || specs[i].ndim > AMG_ST_MAX_DIMS)
            continue;               /* the shard writer reports it */
        for (d = 0; d < specs[i].ndim; d++)
            if (amg_mul_u64(sz[i], specs[i].shape[d], &sz[i])) {
                rc = amg_err_set(err, AMG_ERANGE,
                                 "tensor '%s': size of shape overflows",
                                 specs[i].name);
                goto fail_nostage;
            }
        if (w->total_size + sz[i] < w->total_size) {
            rc = amg_err_set(err, AMG_ERANGE, "total model size overflows");
            goto fail_nostage;
        }
        w->total_size += sz[i];
    }
    if (plan_shards(w, sz, n, max_shard_size)) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto fail_nostage;
    }
    free(sz);
    sz = NULL;
    /* the staging name is ours: anything there is a crashed run's leftover */
    rc = rmtree(w->stage_dir, err);
    if (rc)
        goto fail_nostage;
    if (mkdir(w->stage_dir, 0755) < 0) {
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot create '%s'",
                           w->stage_dir);
        goto fail_nostage;
    }
    rc = open_shards(w, specs, n, err);
    if (rc)
        goto fail;
    return AMG_OK;
fail_nostage:
    free(w->stage_dir);
    w->stage_dir = NULL;            /* not created by us: leave it alone */
fail:
    free(sz);
    amg_model_writer_abort(w);
    return rc;
}

int amg_model_writer_write(amg_model_writer *w, size_t i, uint64_t off,
                           const void *data, size_t len, amg_err *err)
{
    if (i >= w->n_tensors)
        return amg_err_set(err, AMG_EINVAL,
                           "cannot write '%s': tensor index %zu out of range "
                           "(%zu tensors)", w->out_dir ? w->out_dir : "?", i,
                           w->n_tensors);
    return amg_st_writer_write(&w->shards[w->shard_of[i]], w->slot_of[i], off,
                               data, len, err);
}

/* A plain file name that cannot escape the folder or clash with the
 * tensor files this writer owns. */
static int check_name(const amg_model_writer *w, const char *name,
                      amg_err *err)
{
    size_t s;

    if (!*name || strchr(name, '/') || !strcmp(name, ".") ||
        !strcmp(name, ".."))
        return amg_err_set(err, AMG_EINVAL,
                           "cannot add '%s' to '%s': not a plain file name",
                           name, w->out_dir);
    for (s = 0; s < w->n_shards; s++)
        if (!strcmp(name, w->shard_names[s]))
            return amg_err_set(err, AMG_EINVAL,
                               "cannot add '%s' to '%s': a tensor file has "
                               "that name", name, w->out_dir);
    if (!strcmp(name, INDEX_NAME))
        return amg_err_set(err, AMG_EINVAL,
                           "cannot add '%s' to '%s': the writer makes the "
                           "index itself", name, w->out_dir);
    return AMG_OK;
}

int amg_model_writer_add_file(amg_model_writer *w, const char *name,
                              const void *data, size_t len, amg_err *err)
{
    char *path;
    int rc;

    if (!w->stage_dir)
        return amg_err_set(err, AMG_EINVAL, "add to a closed model writer");
    rc = check_name(w, name, err);
    if (rc)
        return rc;
    path = amg_path_join(w->stage_dir, name);
    if (!path)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    rc = amg_write_file_atomic(path, data, len, err);
    free(path);
    return rc;
}

static int copy_fd(int in, int out, const char *src, const char *dst,
                   amg_err *err)
{
    enum { CHUNK = 1 << 20 };
    char *buf = malloc(CHUNK);
    uint64_t off = 0;
    int rc = AMG_OK;

    if (!buf)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    for (;;) {
        ssize_t got = read(in, buf, CHUNK);

        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = amg_err_errno(err, AMG_EIO, errno, "cannot read '%s'", src);
            break;
        }
        if (got == 0)
            break;
        rc = amg_pwrite_all(out, buf, (size_t)got, off, dst, err);
        if (rc)
            break;
        off += (uint64_t)got;
    }
    free(buf);
    return rc;
}

int amg_model_writer_copy_file(amg_model_writer *w, const char *name,
                               const char *src, amg_err *err)
{
    char *dst = NULL;
    struct stat st;
    int in = -1, out = -1, rc;

    if (!w->stage_dir)
        return amg_err_set(err, AMG_EINVAL, "copy into a closed model writer");
    rc = check_name(w, name, err);
    if (rc)
        return rc;
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return amg_err_errno(err, errno == ENOENT ? AMG_ENOTFOUND : AMG_EIO,
                             errno, "cannot open '%s'", src);
    if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = amg_err_set(err, AMG_EINVAL, "cannot copy '%s': not a regular "
                         "file", src);
        goto out;
    }
    dst = amg_path_join(w->stage_dir, name);
    if (!dst) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot create '%s'", dst);
        goto out;
    }
    rc = copy_fd(in, out, src, dst, err);
    if (!rc && fsync(out) < 0)
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot sync '%s'", dst);
    if (close(out) < 0 && !rc)
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot close '%s'", dst);
    if (rc)
        unlink(dst);
out:
    if (in >= 0)
        close(in);
    free(dst);
    return rc;
}

typedef struct index_entry {
    char *name;
    size_t shard;
} index_entry;

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const index_entry *)a)->name,
                  ((const index_entry *)b)->name);
}

/* The index text, built while the shard writers still hold the names;
 * entries sorted by name as transformers writes them. */
static int index_text(const amg_model_writer *w, char **text, amg_err *err)
{
    amg_shard_index idx = { 0 };
    index_entry *e = malloc((w->n_tensors + 1) * sizeof(*e));
    size_t i, s, k = 0;
    int rc;

    *text = NULL;
    idx.names = malloc((w->n_tensors + 1) * sizeof(*idx.names));
    idx.shard_of = malloc((w->n_tensors + 1) * sizeof(*idx.shard_of));
    if (!e || !idx.names || !idx.shard_of) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    for (s = 0; s < w->n_shards; s++) {
        for (i = 0; i < w->shards[s].n; i++) {
            e[k].name = w->shards[s].names[i];
            e[k++].shard = s;
        }
    }
    qsort(e, k, sizeof(*e), cmp_entry);
    for (i = 0; i < k; i++) {
        idx.names[i] = e[i].name;
        idx.shard_of[i] = e[i].shard;
    }
    idx.n_entries = k;
    idx.total_size = w->total_size;
    idx.has_total_size = 1;
    idx.n_shards = w->n_shards;
    idx.shards = w->shard_names;
    rc = amg_shard_index_format(&idx, text, err);
out:
    /* the strings are borrowed: free only the arrays */
    free(idx.names);
    free(idx.shard_of);
    free(e);
    return rc;
}

/* rename that fails rather than replace an (empty) folder that appeared
 * meanwhile; plain rename where the kernel or file system lacks it */
static int rename_noreplace(const char *from, const char *to)
{
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
#endif
    return rename(from, to);
}

/* Atomically swap the staging folder in for out_dir. */
static int install(amg_model_writer *w, amg_err *err)
{
    struct stat st;
    char *old = NULL, *parent = NULL;
    int rc = AMG_OK, had_old = 0;

    if (lstat(w->out_dir, &st) == 0) {
        /* out_dir may have appeared since open checked */
        if (!w->overwrite || !S_ISDIR(st.st_mode))
            return amg_err_set(err, AMG_EEXIST,
                               "'%s' already exists (use --force to replace "
                               "it)", w->out_dir);
        old = with_suffix(w->out_dir, OLD_SUFFIX);
        if (!old)
            return amg_err_set(err, AMG_ENOMEM, "out of memory");
        rc = rmtree(old, err);
        if (rc)
            goto out;
        if (rename(w->out_dir, old) < 0) {
            rc = amg_err_errno(err, AMG_EIO, errno, "cannot move '%s' aside",
                               w->out_dir);
            goto out;
        }
        had_old = 1;
    }
    /* from here on a crash leaves the old model under OLD_SUFFIX and the
     * new one complete under STAGE_SUFFIX: never no model at all */
    if (rename_noreplace(w->stage_dir, w->out_dir) < 0) {
        rc = amg_err_errno(err, errno == EEXIST || errno == ENOTEMPTY
                           ? AMG_EEXIST : AMG_EIO, errno,
                           "cannot rename '%s' to '%s'", w->stage_dir,
                           w->out_dir);
        if (had_old)
            (void)rename(old, w->out_dir);
        goto out;
    }
    parent = parent_of(w->out_dir);
    if (parent)
        sync_dir(parent);
    if (had_old) {
        amg_err dummy;

        /* the new model is in place; a leftover old copy is only clutter */
        (void)rmtree(old, &dummy);
    }
out:
    free(old);
    free(parent);
    return rc;
}

int amg_model_writer_commit(amg_model_writer *w, amg_err *err)
{
    char *text = NULL, *path = NULL;
    size_t s;
    int rc = AMG_OK;

    if (!w->stage_dir) {
        release(w);
        return amg_err_set(err, AMG_EINVAL, "commit of a closed model writer");
    }
    if (w->n_shards > 1) {
        rc = index_text(w, &text, err);
        if (rc)
            goto out;
    }
    for (s = 0; s < w->n_shards && !rc; s++)
        rc = amg_st_writer_commit(&w->shards[s], err);
    if (rc)
        goto out;
    if (text) {
        path = amg_path_join(w->stage_dir, INDEX_NAME);
        rc = path ? amg_write_file_atomic(path, text, strlen(text), err)
                  : amg_err_set(err, AMG_ENOMEM, "out of memory");
        if (rc)
            goto out;
    }
    sync_dir(w->stage_dir);
    rc = install(w, err);
out:
    free(text);
    free(path);
    amg_model_writer_abort(w);      /* after install the stage is gone */
    return rc;
}

void amg_model_writer_abort(amg_model_writer *w)
{
    size_t s;

    for (s = 0; w->shards && s < w->n_shards; s++)
        amg_st_writer_abort(&w->shards[s]);
    if (w->stage_dir) {
        amg_err dummy;

        (void)rmtree(w->stage_dir, &dummy);
    }
    release(w);
}
