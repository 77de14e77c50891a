/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub_cache.c - the shared Hugging Face cache on disk (layout in
 * hub_cache.h; facts from huggingface_hub's file_download.py).
 */
#include "config.h"
#include "hub_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_ref.h"
#include "util.h"

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);

    return v && v[0] ? v : NULL;
}

/* "~/x" as Python's expanduser writes it. */
static char *expand_home(const char *p)
{
    const char *home = env_nonempty("HOME");

    if (p[0] == '~' && (p[1] == '/' || !p[1]) && home)
        return amg_path_join(home, p[1] ? p + 2 : "");
    return amg_strdup(p);
}

char *amg_hub_home(void)
{
    const char *v = env_nonempty("HF_HOME");
    char *xdg, *r;

    if (v)
        return expand_home(v);
    if ((v = env_nonempty("XDG_CACHE_HOME")))
        return amg_path_join(v, "huggingface");
    if (!(xdg = expand_home("~/.cache")) || xdg[0] == '~') {
        free(xdg);
        return NULL;
    }
    r = amg_path_join(xdg, "huggingface");
    free(xdg);
    return r;
}

char *amg_hub_cache_root(void)
{
    const char *v = env_nonempty("HF_HUB_CACHE");
    char *home, *r;

    if (v || (v = env_nonempty("HUGGINGFACE_HUB_CACHE")))
        return expand_home(v);
    if (!(home = amg_hub_home()))
        return NULL;
    r = amg_path_join(home, "hub");
    free(home);
    return r;
}

static int truthy(const char *v)
{
    return v && (!strcasecmp(v, "1") || !strcasecmp(v, "on") ||
                 !strcasecmp(v, "yes") || !strcasecmp(v, "true"));
}

int amg_hub_offline(void)
{
    return truthy(getenv("HF_HUB_OFFLINE")) ||
           truthy(getenv("TRANSFORMERS_OFFLINE"));
}

char *amg_hub_repo_folder(const char *repo_id)
{
    const char *slash = strchr(repo_id, '/');
    size_t n = strlen(repo_id) + 16;
    char *r = malloc(n);

    if (!r)
        return NULL;
    if (slash)
        snprintf(r, n, "models--%.*s--%s", (int)(slash - repo_id), repo_id,
                 slash + 1);
    else
        snprintf(r, n, "models--%s", repo_id);
    return r;
}

char *amg_hub_repo_dir(const char *root, const char *repo_id)
{
    char *folder = amg_hub_repo_folder(repo_id), *r;

    if (!folder)
        return NULL;
    r = amg_path_join(root, folder);
    free(folder);
    return r;
}

char *amg_hub_link_target(const char *path, const char *etag)
{
    size_t depth = 2, i, n;
    char *r;

    for (i = 0; path[i]; i++)
        depth += path[i] == '/';
    n = depth * 3 + strlen("blobs/") + strlen(etag) + 1;
    if (!(r = malloc(n)))
        return NULL;
    for (i = 0; i < depth; i++)
        memcpy(r + i * 3, "../", 3);
    snprintf(r + depth * 3, n - depth * 3, "blobs/%s", etag);
    return r;
}

static char *join3(const char *a, const char *b, const char *c)
{
    char *ab = amg_path_join(a, b), *r;

    if (!ab)
        return NULL;
    r = amg_path_join(ab, c);
    free(ab);
    return r;
}

int amg_hub_ref_read(const char *repo_dir, const char *revision,
                     char commit[41])
{
    char *path = join3(repo_dir, "refs", revision), *data = NULL;
    int found = 0;

    if (path && amg_read_file(path, 4096, &data, NULL, NULL) == AMG_OK &&
        amg_hub_is_commit(data)) {
        memcpy(commit, data, 41);
        found = 1;
    }
    free(data);
    free(path);
    return found;
}

int amg_hub_ref_write(const char *repo_dir, const char *revision,
                      const char *commit, amg_err *err)
{
    char old[41], *path = NULL, *rel = NULL, *slash;
    int rc;

    if (amg_hub_ref_read(repo_dir, revision, old) && !strcmp(old, commit))
        return AMG_OK;
    rel = amg_path_join("refs", revision);
    path = rel ? amg_path_join(repo_dir, rel) : NULL;
    if (!path) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    /* a branch "refs/pr/1" nests: create the folders above the file */
    slash = strrchr(rel, '/');
    *slash = '\0';
    rc = amg_hub_mkdirs(repo_dir, rel, err);
    if (rc == AMG_OK)
        rc = amg_write_file_atomic(path, commit, strlen(commit), err);
out:
    free(rel);
    free(path);
    return rc;
}

int amg_hub_mkdirs(const char *base, const char *rel, amg_err *err)
{
    size_t n = strlen(base) + strlen(rel) + 2, i, start;
    char *p = malloc(n);
    struct stat st;
    int rc = AMG_OK;

    if (!p)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    snprintf(p, n, "%s/%s", base, rel);
    start = strlen(base) + 1;
    if (mkdir(base, 0777) < 0 && errno != EEXIST) {
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot create '%s'", base);
        goto out;
    }
    for (i = start; ; i++) {
        char ch = p[i];

        if (ch != '/' && ch != '\0')
            continue;
        if (i == start) {
            if (!ch)
                break;
            start = i + 1;
            continue;
        }
        p[i] = '\0';
        if (mkdir(p, 0777) < 0 && errno != EEXIST) {
            rc = amg_err_errno(err, AMG_EIO, errno, "cannot create '%s'", p);
            goto out;
        }
        if (lstat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
            rc = amg_err_set(err, AMG_EIO, "refusing to write under '%s': "
                             "it is not a real folder (a symlink or file is "
                             "in the cache's way)", p);
            goto out;
        }
        p[i] = ch;
        if (!ch)
            break;
    }
out:
    free(p);
    return rc;
}

static char *snapshot_path(const char *repo_dir, const char *commit,
                           const char *path)
{
    char *snap = join3(repo_dir, "snapshots", commit), *r;

    if (!snap)
        return NULL;
    r = amg_path_join(snap, path);
    free(snap);
    return r;
}

int amg_hub_snapshot_has(const char *repo_dir, const char *commit,
                         const char *path)
{
    char *p = snapshot_path(repo_dir, commit, path);
    int r = p && amg_is_file(p);

    free(p);
    return r;
}

int amg_hub_blob_has(const char *repo_dir, const char *etag)
{
    char *p = join3(repo_dir, "blobs", etag);
    struct stat st;
    int r = p && lstat(p, &st) == 0 && S_ISREG(st.st_mode);

    free(p);
    return r;
}

int amg_hub_link(const char *repo_dir, const char *commit, const char *path,
                 const char *etag, amg_err *err)
{
    char *rel = amg_path_join("snapshots", commit), *dst = NULL;
    char *target = amg_hub_link_target(path, etag), *dir = NULL, *slash;
    int rc;

    dst = rel ? snapshot_path(repo_dir, commit, path) : NULL;
    dir = rel ? amg_path_join(rel, path) : NULL;
    if (!rel || !dst || !target || !dir) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    slash = strrchr(dir, '/');
    *slash = '\0';
    if ((rc = amg_hub_mkdirs(repo_dir, dir, err)) != AMG_OK)
        goto out;
    if (unlink(dst) < 0 && errno != ENOENT) {
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot replace '%s'", dst);
        goto out;
    }
    if (symlink(target, dst) < 0 && errno != EEXIST)
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot link '%s'", dst);
out:
    free(rel);
    free(dst);
    free(target);
    free(dir);
    return rc;
}

int amg_hub_lock(const char *root, const char *repo_id, const char *etag,
                 int *fd, amg_err *err)
{
    char *folder = amg_hub_repo_folder(repo_id), *rel = NULL, *path = NULL;
    char name[80];
    int rc;

    *fd = -1;
    snprintf(name, sizeof(name), "%s.lock", etag);
    rel = folder ? amg_path_join(".locks", folder) : NULL;
    path = rel ? join3(root, rel, name) : NULL;
    if (!path) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = amg_hub_mkdirs(root, rel, err)) != AMG_OK)
        goto out;
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0664);
    if (*fd < 0) {
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot open lock '%s'", path);
        goto out;
    }
    while (flock(*fd, LOCK_EX) < 0) {
        if (errno == EINTR)
            continue;
        /* file systems without flock: the unique temporary file and the
         * atomic rename keep the cache correct without it */
        break;
    }
out:
    free(folder);
    free(rel);
    free(path);
    return rc;
}

void amg_hub_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}

int amg_hub_blob_open_tmp(const char *repo_dir, const char *etag,
                          char **tmp_path, int *fd, amg_err *err)
{
    char name[128];
    unsigned rnd;
    int tries, fdr, rc;

    *tmp_path = NULL;
    *fd = -1;
    if ((rc = amg_hub_mkdirs(repo_dir, "blobs", err)) != AMG_OK)
        return rc;
    fdr = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    for (tries = 0; tries < 16; tries++) {
        if (fdr < 0 || read(fdr, &rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd))
            rnd = (unsigned)getpid() * 2654435761u + (unsigned)tries;
        snprintf(name, sizeof(name), "blobs/%s.%08x.incomplete", etag, rnd);
        free(*tmp_path);
        if (!(*tmp_path = amg_path_join(repo_dir, name)))
            break;
        *fd = open(*tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC |
                   O_NOFOLLOW, 0666);
        if (*fd >= 0 || errno != EEXIST)
            break;
    }
    if (fdr >= 0)
        close(fdr);
    if (!*tmp_path)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    if (*fd < 0)
        return amg_err_errno(err, AMG_EIO, errno, "cannot create '%s'",
                             *tmp_path);
    return AMG_OK;
}

int amg_hub_blob_commit(const char *tmp_path, const char *repo_dir,
                        const char *etag, amg_err *err)
{
    char *dst = join3(repo_dir, "blobs", etag);
    int rc = AMG_OK;

    if (!dst)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    /* the temporary file was created 0666 under the umask, the mode
     * huggingface_hub gives blobs, so a rename is all that is left */
    if (rename(tmp_path, dst) < 0)
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot move '%s' to '%s'",
                           tmp_path, dst);
    free(dst);
    return rc;
}

void amg_hub_cache_tag(const char *root)
{
    static const char tag[] =
        "Signature: 8a477f597d28d172789f06886806bc55\n"
        "# This file is a cache directory tag created by amalgam.\n"
        "# For information about cache directory tags, see "
        "https://bford.info/cachedir/\n";
    char *p = amg_path_join(root, "CACHEDIR.TAG");

    if (p && !amg_is_file(p))
        (void)amg_write_file_atomic(p, tag, sizeof(tag) - 1, NULL);
    free(p);
}
