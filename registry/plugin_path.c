/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_path.c - the plugin search path and what it yields.
 *
 * Decisions the header leaves open:
 *   - A relative --plugin-path is taken relative to the current directory
 *     (the user named it on the command line, as with --plugin FILE);
 *     relative entries of the environment variables are refused, because
 *     an environment set up elsewhere must not make the current directory
 *     a plugin source by accident. Empty entries ("a::b") are skipped.
 *   - A relative $XDG_DATA_HOME is ignored, as the XDG spec asks, and
 *     $HOME/.local/share is used instead.
 *   - Directory entries starting with '.' are skipped, as a shell's "*.so"
 *     would skip them.
 *   - Explicit files may be symlinks (the user chose them); they are
 *     resolved with realpath so a file has one name in messages and in the
 *     scan cache.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin_path.h"
#include "util.h"

#ifndef AMG_PLUGINDIR
#define AMG_PLUGINDIR "/usr/local/lib/amalgam/plugins"
#endif

/*
 * The built-in strategies live in $(pkglibdir)/plugins once installed. A
 * program run from its build tree (the README's quick start does that)
 * must find the build's own plugins instead: when /proc/self/exe is the
 * build tree's amalgam, its plugins/.libs takes the installed folder's
 * place. Any other program, installed or not, never sees that folder.
 */
static const char *builtin_plugin_dir(void)
{
#if defined(AMG_BUILD_PLUGINDIR)
    if (amg_is_build_exe())
        return AMG_BUILD_PLUGINDIR;
#endif
    return AMG_PLUGINDIR;
}

/* A growing array of malloc'd strings, with each file's identity. */
typedef struct strvec {
    char **v;
    size_t n, cap;
    dev_t *dev;
    ino_t *ino;
} strvec;

static void sv_free(strvec *sv)
{
    amg_plugin_files_free(sv->v, sv->n);
    free(sv->dev);
    free(sv->ino);
    memset(sv, 0, sizeof(*sv));
}

/* Appends s (taking ownership, freeing it on failure). */
static int sv_push(strvec *sv, char *s, amg_err *err)
{
    if (!s)
        return amg_err_set(err, AMG_ENOMEM, "out of memory listing plugins");
    if (sv->n == sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 16;
        char **v = realloc(sv->v, cap * sizeof(*v));
        dev_t *dev;
        ino_t *ino;

        if (v)
            sv->v = v;
        dev = v ? realloc(sv->dev, cap * sizeof(*dev)) : NULL;
        if (dev)
            sv->dev = dev;
        ino = dev ? realloc(sv->ino, cap * sizeof(*ino)) : NULL;
        if (!ino) {
            free(s);
            return amg_err_set(err, AMG_ENOMEM,
                               "out of memory listing plugins");
        }
        sv->ino = ino;
        sv->cap = cap;
    }
    sv->v[sv->n++] = s;
    return AMG_OK;
}

/* Appends path unless the same file (device, inode) is already listed. */
static int sv_push_file(strvec *sv, char *path, const struct stat *st,
                        amg_err *err)
{
    size_t i;
    int rc;

    for (i = 0; i < sv->n; i++)
        if (sv->dev[i] == st->st_dev && sv->ino[i] == st->st_ino) {
            free(path);
            return AMG_OK;
        }
    if ((rc = sv_push(sv, path, err)))
        return rc;
    sv->dev[sv->n - 1] = st->st_dev;
    sv->ino[sv->n - 1] = st->st_ino;
    return AMG_OK;
}

void amg_plugin_files_free(char **files, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(files[i]);
    free(files);
}

/* ---- the directory list ---- */

static char *absolute_from_cwd(const char *dir)
{
    char cwd[PATH_MAX];

    if (!getcwd(cwd, sizeof(cwd)))
        return NULL;
    return amg_path_join(cwd, dir);
}

/* Each non-empty entry of a colon-separated list; relative ones refused,
 * naming the variable they came from. */
static int push_env_list(strvec *sv, const char *var, const char *list,
                         amg_err *err)
{
    const char *p = list;

    while (*p) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char *dir;
        int rc;

        if (len > 0) {
            if (p[0] != '/')
                return amg_err_set(err, AMG_EINVAL,
                                   "plugin directory '%.*s' in %s is "
                                   "relative: give an absolute path",
                                   (int)len, p, var);
            dir = malloc(len + 1);
            if (dir) {
                memcpy(dir, p, len);
                dir[len] = '\0';
            }
            if ((rc = sv_push(sv, dir, err)))
                return rc;
        }
        p += len;
        if (*p == ':')
            p++;
    }
    return AMG_OK;
}

static int push_system_dirs(strvec *sv, amg_err *err)
{
    const char *sys = getenv("AMALGAM_PLUGIN_SYSTEM_PATH");
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    int rc;

    if (sys)
        return push_env_list(sv, "AMALGAM_PLUGIN_SYSTEM_PATH", sys, err);
    if (xdg && xdg[0] == '/')
        rc = sv_push(sv, amg_path_join(xdg, "amalgam/plugins"), err);
    else if (home && home[0] == '/')
        rc = sv_push(sv, amg_path_join(home, ".local/share/amalgam/plugins"),
                     err);
    else
        rc = AMG_OK;
    if (rc)
        return rc;
    return sv_push(sv, amg_strdup(builtin_plugin_dir()), err);
}

static int collect_dirs(const amg_plugin_search *s, strvec *sv, amg_err *err)
{
    const char *env = getenv("AMALGAM_PLUGIN_PATH");
    size_t i;
    int rc;

    for (i = 0; i < s->n_dirs; i++) {
        const char *d = s->dirs[i];

        if (!d[0])
            return amg_err_set(err, AMG_EINVAL,
                               "plugin directory '' is empty: give an "
                               "absolute path");
        rc = sv_push(sv, d[0] == '/' ? amg_strdup(d) : absolute_from_cwd(d),
                     err);
        if (rc)
            return rc;
    }
    if (env && (rc = push_env_list(sv, "AMALGAM_PLUGIN_PATH", env, err)))
        return rc;
    return push_system_dirs(sv, err);
}

int amg_plugin_search_dirs(const amg_plugin_search *s, char ***dirs,
                           size_t *n, amg_err *err)
{
    strvec sv = { 0 };
    int rc = collect_dirs(s, &sv, err);

    if (rc) {
        sv_free(&sv);
        return rc;
    }
    free(sv.dev);
    free(sv.ino);
    *dirs = sv.v;
    *n = sv.n;
    return AMG_OK;
}

/* ---- files ---- */

static int push_explicit(strvec *sv, const char *file, amg_err *err)
{
    struct stat st;
    char *real;

    if (stat(file, &st) < 0)
        return amg_err_errno(err, AMG_ENOTFOUND, errno,
                             "cannot open plugin '%s'", file);
    if (!S_ISREG(st.st_mode))
        return amg_err_set(err, AMG_EPLUGIN,
                           "plugin '%s' is not a regular file", file);
    real = realpath(file, NULL);
    if (!real)
        return amg_err_errno(err, AMG_EIO, errno,
                             "cannot resolve plugin path '%s'", file);
    return sv_push_file(sv, real, &st, err);
}

static int is_plugin_name(const char *name)
{
    size_t len = strlen(name);

    return name[0] != '.' && len > 3 && !strcmp(name + len - 3, ".so");
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The "*.so" names of dir, sorted bytewise (not by locale, so the order is
 * the same for every user). A missing directory yields none. */
static int list_dir(const char *dir, strvec *names, amg_err *err)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = AMG_OK;

    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR)
            return AMG_OK;
        return amg_err_errno(err, AMG_EIO, errno,
                             "cannot read plugin directory '%s'", dir);
    }
    errno = 0;
    while ((e = readdir(d))) {
        if (is_plugin_name(e->d_name) &&
            (rc = sv_push(names, amg_strdup(e->d_name), err)))
            goto out;
        errno = 0;
    }
    if (errno)
        rc = amg_err_errno(err, AMG_EIO, errno,
                           "cannot read plugin directory '%s'", dir);
    else if (names->n > 1)
        qsort(names->v, names->n, sizeof(*names->v), cmp_names);
out:
    closedir(d);
    return rc;
}

static int push_dir(strvec *sv, const char *dir, amg_err *err)
{
    strvec names = { 0 };
    size_t i;
    int rc = list_dir(dir, &names, err);

    for (i = 0; !rc && i < names.n; i++) {
        char *path = amg_path_join(dir, names.v[i]);
        struct stat st;

        if (!path) {
            rc = amg_err_set(err, AMG_ENOMEM, "out of memory listing plugins");
            break;
        }
        /* lstat: a symlink in a plugin directory could point anywhere, so
         * only files that live there count */
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        rc = sv_push_file(sv, path, &st, err);
    }
    sv_free(&names);
    return rc;
}

int amg_plugin_discover(const amg_plugin_search *s, char ***files,
                        size_t *n, amg_err *err)
{
    strvec out = { 0 }, dirs = { 0 };
    size_t i;
    int rc;

    for (i = 0; i < s->n_files; i++)
        if ((rc = push_explicit(&out, s->files[i], err)))
            goto fail;
    if ((rc = collect_dirs(s, &dirs, err)))
        goto fail;
    for (i = 0; i < dirs.n; i++)
        if ((rc = push_dir(&out, dirs.v[i], err)))
            goto fail;
    sv_free(&dirs);
    free(out.dev);
    free(out.ino);
    *files = out.v;
    *n = out.n;
    return AMG_OK;
fail:
    sv_free(&dirs);
    sv_free(&out);
    return rc;
}

/* ---- permissions ---- */

static int check_stat(const char *path, const struct stat *st, amg_err *err)
{
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s' is writable by others: fix with chmod go-w "
                           "'%s', or pass --allow-insecure-plugins",
                           path, path);
    if (st->st_uid != 0 && st->st_uid != geteuid())
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s' is owned by uid %lu, neither you nor root: "
                           "fix its owner, or pass --allow-insecure-plugins",
                           path, (unsigned long)st->st_uid);
    return AMG_OK;
}

int amg_plugin_check_perms(const char *path, amg_err *err)
{
    const char *slash = strrchr(path, '/');
    struct stat st;
    char *dir;
    int rc;

    if (stat(path, &st) < 0)
        return amg_err_errno(err, AMG_ENOTFOUND, errno,
                             "cannot open plugin '%s'", path);
    if ((rc = check_stat(path, &st, err)))
        return rc;
    if (!slash)
        dir = amg_strdup(".");
    else if (slash == path)
        dir = amg_strdup("/");
    else if ((dir = malloc((size_t)(slash - path) + 1))) {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    }
    if (!dir)
        return amg_err_set(err, AMG_ENOMEM, "out of memory checking '%s'",
                           path);
    if (stat(dir, &st) < 0)
        rc = amg_err_errno(err, AMG_EIO, errno, "cannot check '%s'", dir);
    else
        rc = check_stat(dir, &st, err);
    free(dir);
    return rc;
}
