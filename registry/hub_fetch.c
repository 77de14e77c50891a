/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub_fetch.c - snapshot_download's steps (research/formats.md §2.2,
 * §2.5) in C: revision -> commit, tree listing (paginated by Link
 * rel="next"), filter, refs/<revision>, then each file under its blob lock.
 *
 * Every name the server sends is checked before anything is written: a
 * listing with one bad name is refused as a whole.
 */
#include "config.h"
#include "hub_fetch.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "config_json.h"
#include "hub_cache.h"
#include "hub_http.h"
#include "model_ref.h"
#include "progress.h"
#include "util.h"

#define API_MAX (64u * 1024 * 1024)
#define DEFAULT_JOBS 4

static const char *const merge_files[] = {
    "model.safetensors.index.json", "config.json", NULL
};

int amg_hub_wanted(const char *path, const char *const *include,
                   size_t n_include)
{
    size_t i, n = strlen(path);

    for (i = 0; i < n_include; i++)
        if (fnmatch(include[i], path, 0) == 0)
            return 1;
    if (strchr(path, '/'))
        return 0;
    if (n > 12 && !strcmp(path + n - 12, ".safetensors"))
        return 1;
    for (i = 0; merge_files[i]; i++)
        if (!strcmp(path, merge_files[i]))
            return 1;
    for (i = 0; amg_side_files[i]; i++)
        if (!strcmp(path, amg_side_files[i]))
            return 1;
    return 0;
}

/* ---- the listing */

void amg__hub_listing_free(amg_hub_listing *l)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        free(l->e[i].path);
    free(l->e);
    memset(l, 0, sizeof(*l));
}

/* A server's name, printable: control characters shown as '?'. */
static void printable(const char *s, char *buf, size_t cap)
{
    size_t i;

    for (i = 0; s[i] && i + 1 < cap; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    buf[i] = '\0';
}

static int add_entry(amg_hub_listing *l, json_t *item, const char *repo,
                     const char *endpoint, amg_err *err)
{
    const char *type = json_string_value(json_object_get(item, "type"));
    const char *path = json_string_value(json_object_get(item, "path"));
    json_t *lfs = json_object_get(item, "lfs"), *size;
    const char *etag;
    char shown[256];
    amg_hub_entry *grown;

    if (type && strcmp(type, "file") != 0)
        return AMG_OK;
    if (!path)
        return amg_err_set(err, AMG_EFORMAT, "the file list of '%s' from %s "
                           "has an entry without a path", repo, endpoint);
    printable(path, shown, sizeof(shown));
    if (!amg_hub_path_safe(path))
        return amg_err_set(err, AMG_EFORMAT, "refusing the file name '%s' "
                           "that %s lists for '%s': names must stay inside "
                           "the snapshot (no absolute path, '..', empty part, "
                           "backslash or control character)", shown, endpoint,
                           repo);
    /* the raw API calls the LFS sha256 "oid"; huggingface_hub's objects
     * call it "sha256" */
    etag = json_is_object(lfs)
         ? json_string_value(json_object_get(lfs, "oid"))
         : json_string_value(json_object_get(item, "oid"));
    if (json_is_object(lfs) && !etag)
        etag = json_string_value(json_object_get(lfs, "sha256"));
    size = json_object_get(json_is_object(lfs) ? lfs : item, "size");
    if (!etag || !amg_hub_etag_valid(etag) || !json_is_integer(size) ||
        json_integer_value(size) < 0)
        return amg_err_set(err, AMG_EFORMAT, "the file list of '%s' from %s "
                           "gives '%s' no valid hash or size", repo, endpoint,
                           shown);
    if (!(grown = realloc(l->e, (l->n + 1) * sizeof(*grown))))
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    l->e = grown;
    memset(&l->e[l->n], 0, sizeof(amg_hub_entry));
    if (!(l->e[l->n].path = amg_strdup(path)))
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    snprintf(l->e[l->n].etag, sizeof(l->e[l->n].etag), "%s", etag);
    l->e[l->n].size = (uint64_t)json_integer_value(size);
    l->n++;
    return AMG_OK;
}

int amg__hub_parse_tree(amg_hub_listing *l, const char *body,
                        const char *repo, const char *endpoint, amg_err *err)
{
    json_error_t je;
    json_t *root = json_loads(body, 0, &je), *item;
    size_t i;
    int rc = AMG_OK;

    if (!json_is_array(root)) {
        json_decref(root);
        return amg_err_set(err, AMG_EFORMAT, "the file list of '%s' from %s "
                           "is not a JSON array", repo, endpoint);
    }
    json_array_foreach(root, i, item) {
        if (!json_is_object(item))
            rc = amg_err_set(err, AMG_EFORMAT, "the file list of '%s' from "
                             "%s holds a non-object", repo, endpoint);
        else
            rc = add_entry(l, item, repo, endpoint, err);
        if (rc != AMG_OK)
            break;
    }
    json_decref(root);
    return rc;
}

static int list_tree(const amg_hub_http *h, const char *repo,
                     const char *commit, amg_hub_listing *l, amg_err *err)
{
    size_t n = strlen(h->endpoint) + strlen(repo) + 96;
    char *url = malloc(n), *body = NULL;
    amg_hub_resp r = { 0 };
    int rc = AMG_OK, pages = 0;

    if (!url)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    snprintf(url, n, "%s/api/models/%s/tree/%s?recursive=true", h->endpoint,
             repo, commit);
    while (url && rc == AMG_OK) {
        if (++pages > 100000) {
            rc = amg_err_set(err, AMG_EFORMAT, "the file list of '%s' does "
                             "not end", repo);
            break;
        }
        rc = amg_hub_get(h, url, API_MAX, &body, NULL, &r, err);
        if (rc != AMG_OK) {
            rc = amg_hub_http_fail(h, &r, repo, commit, NULL, err);
            break;
        }
        rc = amg__hub_parse_tree(l, body, repo, h->endpoint, err);
        free(body);
        body = NULL;
        free(url);
        url = r.next;
        r.next = NULL;
    }
    free(url);
    amg_hub_resp_free(&r);
    return rc;
}

int amg__hub_parse_revision(const char *body, const char *repo,
                            const char *rev, const char *endpoint,
                            char commit[41], amg_err *err)
{
    json_t *root = json_loads(body, 0, NULL);
    const char *sha = json_string_value(json_object_get(root, "sha"));
    int rc = AMG_OK;

    if (!sha || !amg_hub_is_commit(sha))
        rc = amg_err_set(err, AMG_EFORMAT, "%s gave no commit for '%s' at "
                         "revision '%s'", endpoint, repo, rev);
    else
        memcpy(commit, sha, 41);
    json_decref(root);
    return rc;
}

/* GET /api/models/{repo}/revision/{rev} -> its "sha". */
static int resolve_commit(const amg_hub_http *h, const char *repo,
                          const char *rev, char commit[41], amg_err *err)
{
    char *q = amg_hub_quote(rev, 0), *url = NULL, *body = NULL;
    amg_hub_resp r = { 0 };
    size_t n;
    int rc;

    n = strlen(h->endpoint) + strlen(repo) + (q ? strlen(q) : 0) + 48;
    if (!q || !(url = malloc(n))) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(url, n, "%s/api/models/%s/revision/%s", h->endpoint, repo, q);
    rc = amg_hub_get(h, url, API_MAX, &body, NULL, &r, err);
    if (rc != AMG_OK) {
        rc = amg_hub_http_fail(h, &r, repo, rev, NULL, err);
        goto out;
    }
    rc = amg__hub_parse_revision(body, repo, rev, h->endpoint, commit, err);
out:
    amg_hub_resp_free(&r);
    free(body);
    free(url);
    free(q);
    return rc;
}

/* ---- progress: one line for the whole repository */

typedef struct meter {
    pthread_mutex_t lock;
    const char *repo;
    int bar;                           /* redraw on a terminal */
    uint64_t total, done;
    size_t files, files_done;
    double last;
} meter;

static void meter_draw(meter *m, int final)
{
    char a[32], b[32];
    double now = amg_progress_now();

    if (!m->bar || (!final && now - m->last < 0.1))
        return;
    m->last = now;
    amg_format_bytes(m->done, a, sizeof(a));
    amg_format_bytes(m->total, b, sizeof(b));
    fprintf(stderr, "\rfetching %s: %zu/%zu files, %s / %s (%d%%)\033[K%s",
            m->repo, m->files_done, m->files, a, b,
            m->total ? (int)(m->done * 100 / m->total) : 100,
            final ? "\n" : "");
    fflush(stderr);
}

static void meter_add(meter *m, uint64_t bytes, size_t files)
{
    pthread_mutex_lock(&m->lock);
    m->done += bytes;
    m->files_done += files;
    meter_draw(m, 0);
    pthread_mutex_unlock(&m->lock);
}

static void meter_sub(meter *m, uint64_t bytes)
{
    pthread_mutex_lock(&m->lock);
    m->done -= bytes;
    pthread_mutex_unlock(&m->lock);
}

/* ---- one file */

typedef struct job {
    const amg_hub_http *h;
    const char *root, *repo_dir, *repo, *commit;
    const amg_hub_listing *l;
    size_t next;                       /* the next entry to take */
    meter *m;
    pthread_mutex_t lock;
    int failed;
    amg_err err;
} job;

typedef struct blob_sink {
    int fd;
    const char *tmp;
    uint64_t size;
    int git;                           /* git sha1 of "blob <n>\0" + data */
    EVP_MD_CTX *md;
    meter *m;
    uint64_t counted;                  /* bytes reported to the meter */
} blob_sink;

static int md_start(blob_sink *s)
{
    char head[48];
    int n;

    if (!EVP_DigestInit_ex(s->md, s->git ? EVP_sha1() : EVP_sha256(), NULL))
        return -1;
    if (!s->git)
        return 0;
    n = snprintf(head, sizeof(head), "blob %" PRIu64, s->size);
    return EVP_DigestUpdate(s->md, head, (size_t)n + 1) ? 0 : -1;
}

static int blob_write(void *ud, const void *buf, size_t n)
{
    blob_sink *s = ud;
    const char *p = buf;
    size_t left = n;

    while (left) {
        ssize_t w = write(s->fd, p, left);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        left -= (size_t)w;
    }
    if (!EVP_DigestUpdate(s->md, buf, n))
        return -1;
    s->counted += n;
    meter_add(s->m, n, 0);
    return 0;
}

static int blob_restart(void *ud)
{
    blob_sink *s = ud;

    if (ftruncate(s->fd, 0) < 0 || lseek(s->fd, 0, SEEK_SET) < 0)
        return -1;
    meter_sub(s->m, s->counted);
    s->counted = 0;
    return md_start(s);
}

static char *resolve_url(const job *j, const char *path)
{
    char *q = amg_hub_quote(path, 1), *url;
    size_t n;

    if (!q)
        return NULL;
    n = strlen(j->h->endpoint) + strlen(j->repo) + strlen(q) + 64;
    if ((url = malloc(n)))
        snprintf(url, n, "%s/%s/resolve/%s/%s", j->h->endpoint, j->repo,
                 j->commit, q);
    free(q);
    return url;
}

static int check_digest(blob_sink *s, const amg_hub_entry *e, const char *repo,
                        amg_err *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    unsigned n, i;

    if (!EVP_DigestFinal_ex(s->md, md, &n))
        return amg_err_set(err, AMG_EIO, "cannot hash '%s'", e->path);
    for (i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (strcmp(hex, e->etag) != 0)
        return amg_err_set(err, AMG_EFORMAT, "'%s' from '%s' is corrupt: its "
                           "%s is %s but the Hub lists %s; nothing was kept "
                           "(fetch again)", e->path, repo,
                           s->git ? "git sha1" : "sha256", hex, e->etag);
    return AMG_OK;
}

static int download_blob(job *j, const amg_hub_entry *e, amg_err *err)
{
    blob_sink s = { -1, NULL, e->size, strlen(e->etag) == 40, NULL, j->m, 0 };
    char *tmp = NULL, *url = resolve_url(j, e->path);
    amg_hub_resp r = { 0 };
    amg_hub_sink sink = { blob_write, blob_restart, &s };
    int rc;

    s.md = EVP_MD_CTX_new();
    if (!url || !s.md) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = amg_hub_blob_open_tmp(j->repo_dir, e->etag, &tmp, &s.fd, err)))
        goto out;
    s.tmp = tmp;
    if (md_start(&s) != 0) {
        rc = amg_err_set(err, AMG_EIO, "cannot start a hash");
        goto out;
    }
    rc = amg_hub_download(j->h, url, e->size, &sink, &r, err);
    if (rc != AMG_OK) {
        if (!err->status)
            amg_hub_http_fail(j->h, &r, j->repo, j->commit, e->path, err);
        amg_err_prefix(err, "cannot fetch '%s': ", e->path);
        rc = err->status;
        goto out;
    }
    if ((rc = check_digest(&s, e, j->repo, err)) != AMG_OK)
        goto out;
    if (fsync(s.fd) < 0) {
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot sync '%s'", tmp);
        goto out;
    }
    close(s.fd);
    s.fd = -1;
    rc = amg_hub_blob_commit(tmp, j->repo_dir, e->etag, err);
out:
    if (s.fd >= 0)
        close(s.fd);
    if (rc != AMG_OK && tmp)
        unlink(tmp);
    if (rc != AMG_OK)
        meter_sub(j->m, s.counted);
    EVP_MD_CTX_free(s.md);
    amg_hub_resp_free(&r);
    free(tmp);
    free(url);
    return rc;
}

static int fetch_one(job *j, const amg_hub_entry *e, amg_err *err)
{
    int fd, rc = AMG_OK;

    if (amg_hub_snapshot_has(j->repo_dir, j->commit, e->path)) {
        meter_add(j->m, e->size, 1);
        return AMG_OK;
    }
    /* another process may be fetching this blob: wait for it, then use
     * what it left */
    if ((rc = amg_hub_lock(j->root, j->repo, e->etag, &fd, err)) != AMG_OK)
        return rc;
    if (!amg_hub_blob_has(j->repo_dir, e->etag))
        rc = download_blob(j, e, err);
    else
        meter_add(j->m, e->size, 0);
    if (rc == AMG_OK)
        rc = amg_hub_link(j->repo_dir, j->commit, e->path, e->etag, err);
    amg_hub_unlock(fd);
    if (rc == AMG_OK)
        meter_add(j->m, 0, 1);
    return rc;
}

static void *worker(void *arg)
{
    job *j = arg;
    amg_err err;

    for (;;) {
        size_t i;

        pthread_mutex_lock(&j->lock);
        i = j->failed ? j->l->n : j->next++;
        pthread_mutex_unlock(&j->lock);
        if (i >= j->l->n)
            return NULL;
        amg_err_clear(&err);
        if (fetch_one(j, &j->l->e[i], &err) != AMG_OK) {
            pthread_mutex_lock(&j->lock);
            if (!j->failed)
                j->err = err;
            j->failed = 1;
            pthread_mutex_unlock(&j->lock);
        }
    }
}

static int run_jobs(job *j, int jobs, amg_err *err)
{
    pthread_t tid[16];
    int n = jobs, started = 0, i;

    if (n > 16)
        n = 16;
    if ((size_t)n > j->l->n)
        n = (int)j->l->n;
    for (i = 0; i < n; i++)
        if (pthread_create(&tid[i], NULL, worker, j) == 0)
            started++;
    if (!started && j->l->n)
        worker(j);
    for (i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    if (j->failed) {
        *err = j->err;
        return err->status ? err->status : AMG_EIO;
    }
    return AMG_OK;
}

/* Keep only what is wanted. */
static void filter(amg_hub_listing *l, const amg_fetch_opts *o)
{
    size_t i, k = 0;

    for (i = 0; i < l->n; i++) {
        if (amg_hub_wanted(l->e[i].path, o->include, o->n_include))
            l->e[k++] = l->e[i];
        else
            free(l->e[i].path);
    }
    l->n = k;
}

static int mkdir_p(const char *path, amg_err *err)
{
    char *p = amg_strdup(path), *s;
    int rc = AMG_OK;

    if (!p)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    for (s = p + 1; ; s++) {
        if (*s != '/' && *s)
            continue;
        char ch = *s;
        *s = '\0';
        if (mkdir(p, 0777) < 0 && errno != EEXIST) {
            rc = amg_err_errno(err, AMG_EIO, errno, "cannot create the cache "
                               "folder '%s'", p);
            break;
        }
        *s = ch;
        if (!ch)
            break;
    }
    free(p);
    return rc;
}

static char *snapshot_dir(const char *repo_dir, const char *commit)
{
    char *rel = amg_path_join("snapshots", commit), *r;

    if (!rel)
        return NULL;
    r = amg_path_join(repo_dir, rel);
    free(rel);
    return r;
}

static int download_all(const amg_hub_http *h, const char *root,
                        const char *repo_dir, const char *repo,
                        const char *commit, const amg_hub_listing *l,
                        const amg_fetch_opts *o, amg_err *err)
{
    meter m;
    job j;
    size_t i;
    int rc;

    memset(&m, 0, sizeof(m));
    pthread_mutex_init(&m.lock, NULL);
    m.repo = repo;
    m.files = l->n;
    m.bar = !o->quiet && !o->verbose && isatty(STDERR_FILENO);
    for (i = 0; i < l->n; i++)
        m.total += l->e[i].size;
    memset(&j, 0, sizeof(j));
    pthread_mutex_init(&j.lock, NULL);
    j.h = h;
    j.root = root;
    j.repo_dir = repo_dir;
    j.repo = repo;
    j.commit = commit;
    j.l = l;
    j.m = &m;
    rc = run_jobs(&j, o->jobs > 0 ? o->jobs : DEFAULT_JOBS, err);
    if (rc == AMG_OK)
        meter_draw(&m, 1);
    else if (m.bar)
        fputs("\r\033[K", stderr);
    pthread_mutex_destroy(&j.lock);
    pthread_mutex_destroy(&m.lock);
    return rc;
}

static int snapshot_usable(const char *dir, const amg_fetch_opts *o);

static int offline_lookup(const char *repo_dir, const char *repo,
                          const char *rev, const amg_fetch_opts *o,
                          char **snapshot, amg_err *err)
{
    char commit[41];
    char *dir;

    if (amg_hub_is_commit(rev))
        memcpy(commit, rev, 41);
    else if (!amg_hub_ref_read(repo_dir, rev, commit))
        return amg_err_set(err, AMG_ENOTFOUND, "'%s@%s' is not in the local "
                           "cache and HF_HUB_OFFLINE is set: fetch it while "
                           "online ('amalgam fetch %s@%s')", repo, rev, repo,
                           rev);
    if (!(dir = snapshot_dir(repo_dir, commit)))
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    if (!snapshot_usable(dir, o)) {
        free(dir);
        return amg_err_set(err, AMG_ENOTFOUND, "'%s@%s' is not complete in "
                           "the local cache and HF_HUB_OFFLINE is set: fetch "
                           "it while online ('amalgam fetch %s@%s')", repo, rev,
                           repo, rev);
    }
    *snapshot = dir;
    return AMG_OK;
}

int amg_hub_fetch(const char *repo, const char *rev, const amg_fetch_opts *o,
                  char **snapshot, amg_err *err)
{
    char *root = amg_hub_cache_root(), *repo_dir = NULL, *snap_rel = NULL;
    char commit[41];
    amg_hub_listing l = { 0 };
    amg_hub_http h;
    int rc, have_h = 0;

    *snapshot = NULL;
    if (!root || !(repo_dir = amg_hub_repo_dir(root, repo))) {
        rc = amg_err_set(err, AMG_ENOTFOUND, "cannot locate the Hugging Face "
                         "cache: set HF_HUB_CACHE or HF_HOME");
        goto out;
    }
    if (amg_hub_offline()) {
        rc = offline_lookup(repo_dir, repo, rev, o, snapshot, err);
        goto out;
    }
    if ((rc = amg_hub_http_init(&h, o->ca_bundle, o->verbose, err)))
        goto out;
    have_h = 1;
    if (amg_hub_is_commit(rev))
        memcpy(commit, rev, 41);
    else if ((rc = resolve_commit(&h, repo, rev, commit, err)))
        goto out;
    /* the whole listing is checked before the first byte is written */
    if ((rc = list_tree(&h, repo, commit, &l, err)))
        goto out;
    filter(&l, o);
    if ((rc = mkdir_p(root, err)))
        goto out;
    amg_hub_cache_tag(root);
    if ((rc = amg_hub_mkdirs(root, strrchr(repo_dir, '/') + 1, err)))
        goto out;
    if (strcmp(rev, commit) &&
        (rc = amg_hub_ref_write(repo_dir, rev, commit, err)))
        goto out;
    if ((rc = amg_hub_mkdirs(repo_dir, "snapshots", err)))
        goto out;
    if ((rc = download_all(&h, root, repo_dir, repo, commit, &l, o, err)))
        goto out;
    if (!(*snapshot = snapshot_dir(repo_dir, commit)) ||
        !(snap_rel = amg_path_join("snapshots", commit))) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    /* a repository with no wanted file still gets its snapshot folder */
    rc = amg_hub_mkdirs(repo_dir, snap_rel, err);
out:
    if (have_h)
        amg_hub_http_free(&h);
    amg__hub_listing_free(&l);
    free(snap_rel);
    free(root);
    free(repo_dir);
    if (rc != AMG_OK) {
        free(*snapshot);
        *snapshot = NULL;
    }
    return rc;
}

/* ---- pipelines */

/* 1 when dir holds a PEFT adapter's config and weights. */
static int adapter_usable(const char *dir)
{
    char *cfg = amg_path_join(dir, "adapter_config.json");
    char *w = amg_path_join(dir, "adapter_model.safetensors");
    int ok = cfg && w && amg_is_file(cfg) && amg_is_file(w);

    free(cfg);
    free(w);
    return ok;
}

/* 1 when dir holds config.json and the weights the index (or a single
 * .safetensors file) names; for an adapter, its two files. */
static int snapshot_usable(const char *dir, const amg_fetch_opts *o)
{
    char *cfg = amg_path_join(dir, "config.json");
    char *idx = amg_path_join(dir, "model.safetensors.index.json");
    char *single = amg_path_join(dir, "model.safetensors");
    json_t *root = NULL, *map, *v;
    const char *k;
    int ok = 0;

    if (o && o->adapter) {
        ok = adapter_usable(dir);
        goto out;
    }
    if (!cfg || !idx || !single || !amg_is_file(cfg))
        goto out;
    if (amg_is_file(single)) {
        ok = 1;
        goto out;
    }
    if (!amg_is_file(idx) || !(root = json_load_file(idx, 0, NULL)))
        goto out;
    map = json_object_get(root, "weight_map");
    ok = json_is_object(map) && json_object_size(map) > 0;
    json_object_foreach(map, k, v) {
        const char *f = json_string_value(v);
        char *p = f && amg_hub_path_safe(f) ? amg_path_join(dir, f) : NULL;

        ok = ok && p && amg_is_file(p);
        free(p);
        if (!ok)
            break;
    }
out:
    json_decref(root);
    free(cfg);
    free(idx);
    free(single);
    return ok;
}

static int cached_usable(const char *repo, const char *rev,
                         const amg_fetch_opts *o, char **snapshot)
{
    char *root = amg_hub_cache_root(), *repo_dir = NULL, *dir = NULL;
    char commit[41];
    int ok = 0;

    if (!root || !(repo_dir = amg_hub_repo_dir(root, repo)))
        goto out;
    if (amg_hub_is_commit(rev))
        memcpy(commit, rev, 41);
    else if (!amg_hub_ref_read(repo_dir, rev, commit))
        goto out;
    dir = snapshot_dir(repo_dir, commit);
    ok = dir && snapshot_usable(dir, o);
out:
    if (ok)
        *snapshot = dir;
    else
        free(dir);
    free(root);
    free(repo_dir);
    return ok;
}

int amg_hub_resolve(const char *repo, const char *rev, const amg_fetch_opts *o,
                    char **snapshot, amg_err *err)
{
    int rc;

    static const char *const adapter_files[] = { "adapter_config.json" };
    amg_fetch_opts ao;

    if (cached_usable(repo, rev, o, snapshot))
        return AMG_OK;
    if (o->adapter && !o->n_include) {
        /* adapter_model.safetensors is wanted anyway; the config is not */
        ao = *o;
        ao.include = adapter_files;
        ao.n_include = 1;
        o = &ao;
    }
    if ((rc = amg_hub_fetch(repo, rev, o, snapshot, err)) != AMG_OK)
        return rc;
    if (snapshot_usable(*snapshot, o))
        return AMG_OK;
    if (o->adapter)
        rc = amg_err_set(err, AMG_ENOTFOUND, "'%s@%s' holds no usable LoRA "
                         "adapter%s: amalgam needs adapter_config.json and "
                         "adapter_model.safetensors", repo, rev,
                         amg_hub_offline() ? " in the local cache" : "");
    else
        rc = amg_err_set(err, AMG_ENOTFOUND, "'%s@%s' holds no usable "
                         "model%s: amalgam needs config.json and .safetensors "
                         "weights (a model.safetensors or an index and all "
                         "its shards)", repo, rev,
                         amg_hub_offline() ? " in the local cache" : "");
    free(*snapshot);
    *snapshot = NULL;
    return rc;
}
