/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_cache.c - `amalgam cache ls` and `amalgam cache rm`: the models in the
 * shared Hugging Face cache.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "hub_cache.h"
#include "model_ref.h"
#include "util.h"

static const char usage_text[] =
    "usage: amalgam cache ls\n"
    "       amalgam cache rm REF\n"
    "\n"
    "List the models in the shared Hugging Face cache (HF_HUB_CACHE, else\n"
    "$HF_HOME/hub, else ~/.cache/huggingface/hub) with their size and\n"
    "revisions, or remove one model (org/name) with every revision of it.\n"
    "\n"
    "   -q, --quiet           rm: print nothing but errors\n"
    "   -h, --help            show this help\n";

#define usage_error(...) amg_cli_usage_error("cache", __VA_ARGS__)

/* Bytes in blobs/: what the repository takes on disk. */
static uint64_t blobs_size(const char *repo_dir)
{
    char *dir = amg_path_join(repo_dir, "blobs"), *p;
    struct dirent *d;
    struct stat st;
    uint64_t total = 0;
    DIR *dh = dir ? opendir(dir) : NULL;

    while (dh && (d = readdir(dh))) {
        if (d->d_name[0] == '.' || !(p = amg_path_join(dir, d->d_name)))
            continue;
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
        free(p);
    }
    if (dh)
        closedir(dh);
    free(dir);
    return total;
}

/* "main=1a2b3c4 v1=..." into buf, from refs/ (one level; refs/pr/N are
 * folders and shown as pr/N). */
static void list_refs(const char *repo_dir, const char *sub, char *buf,
                      size_t cap)
{
    char *dir = amg_path_join(repo_dir, sub), *name;
    char commit[41];
    struct dirent *d;
    DIR *dh = dir ? opendir(dir) : NULL;

    while (dh && (d = readdir(dh))) {
        size_t used = strlen(buf);

        if (d->d_name[0] == '.' || !(name = amg_path_join(sub, d->d_name)))
            continue;
        if (amg_hub_ref_read(repo_dir, name + 5, commit))
            snprintf(buf + used, cap - used, "%s%s=%.7s", used ? " " : "",
                     name + 5, commit);
        else if (strlen(name) < 200)
            list_refs(repo_dir, name, buf, cap);
        free(name);
    }
    if (dh)
        closedir(dh);
    free(dir);
}

static int cache_ls(void)
{
    char *root = amg_hub_cache_root(), *repo_dir, size[32], refs[1024];
    struct dirent *d;
    DIR *dh;
    int header = 0;

    if (!root) {
        amg_die_msg("cannot locate the Hugging Face cache: set HF_HUB_CACHE "
                    "or HF_HOME");
        return AMG_EXIT_FAIL;
    }
    if (!(dh = opendir(root))) {
        free(root);
        return AMG_EXIT_OK;            /* no cache yet: nothing in it */
    }
    while ((d = readdir(dh))) {
        char *sep;

        if (strncmp(d->d_name, "models--", 8) ||
            !(sep = strstr(d->d_name + 8, "--")) ||
            !(repo_dir = amg_path_join(root, d->d_name)))
            continue;
        refs[0] = '\0';
        list_refs(repo_dir, "refs", refs, sizeof(refs));
        amg_format_bytes(blobs_size(repo_dir), size, sizeof(size));
        if (!header++)
            printf("%-40s %10s  %s\n", "MODEL", "SIZE", "REVISIONS");
        printf("%.*s/%-*s %10s  %s\n", (int)(sep - d->d_name - 8),
               d->d_name + 8, (int)(39 - (sep - d->d_name - 8) > 0
                                    ? 39 - (sep - d->d_name - 8) : 0),
               sep + 2, size, refs[0] ? refs : "-");
        free(repo_dir);
    }
    closedir(dh);
    free(root);
    return fflush(stdout) == 0 ? AMG_EXIT_OK : AMG_EXIT_FAIL;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path) < 0 ? -1 : 0;
    return unlink(path) < 0 ? -1 : 0;
}

static int rm_tree(const char *path)
{
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int cache_rm(const char *text, int quiet)
{
    char *root = NULL, *repo_dir = NULL, *locks = NULL, *folder = NULL;
    char size[32], msg[AMG_ERR_MSG_MAX + 64];
    amg_model_ref ref;
    struct stat st;
    amg_err err;
    int rc = AMG_EXIT_FAIL;

    amg_err_clear(&err);
    if (amg_model_ref_parse(text, &ref, &err) != AMG_OK)
        return usage_error("%s", err.msg);
    if (ref.kind != AMG_MREF_HUB || strchr(text, '@')) {
        amg_model_ref_free(&ref);
        return usage_error("'%s' is not a Hub model id: cache rm takes "
                           "org/name and removes every revision", text);
    }
    root = amg_hub_cache_root();
    folder = amg_hub_repo_folder(ref.repo_id);
    repo_dir = root && folder ? amg_path_join(root, folder) : NULL;
    locks = root && folder ? amg_path_join(root, ".locks") : NULL;
    if (!repo_dir || !locks) {
        amg_die_msg("cannot locate the Hugging Face cache: set HF_HUB_CACHE "
                    "or HF_HOME");
        goto out;
    }
    if (lstat(repo_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(msg, sizeof(msg), "'%s' is not in the cache '%s'",
                 ref.repo_id, root);
        amg_die_msg(msg);
        goto out;
    }
    amg_format_bytes(blobs_size(repo_dir), size, sizeof(size));
    if (rm_tree(repo_dir) != 0) {
        snprintf(msg, sizeof(msg), "cannot remove '%s': %s", repo_dir,
                 strerror(errno));
        amg_die_msg(msg);
        goto out;
    }
    free(repo_dir);
    repo_dir = amg_path_join(locks, folder);
    if (repo_dir)
        (void)rm_tree(repo_dir);
    if (!quiet)
        printf("removed %s (%s)\n", ref.repo_id, size);
    rc = AMG_EXIT_OK;
out:
    amg_model_ref_free(&ref);
    free(root);
    free(repo_dir);
    free(locks);
    free(folder);
    return rc;
}

int amg_cmd_cache(int argc, char **argv)
{
    int i, quiet = 0;
    const char *verb = NULL, *arg = NULL;

    for (i = 1; i < argc; i++) {
        const char *s = argv[i];

        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(usage_text, stdout);
            return AMG_EXIT_OK;
        } else if (!strcmp(s, "-q") || !strcmp(s, "--quiet")) {
            quiet = 1;
        } else if (s[0] == '-' && s[1]) {
            return usage_error("unknown option '%s'", s);
        } else if (!verb) {
            verb = s;
        } else if (!arg) {
            arg = s;
        } else {
            return usage_error("unexpected argument '%s'", s);
        }
    }
    if (verb && !strcmp(verb, "ls") && !arg)
        return cache_ls();
    if (verb && !strcmp(verb, "rm") && arg)
        return cache_rm(arg, quiet);
    if (verb && strcmp(verb, "ls") && strcmp(verb, "rm"))
        return usage_error("'%s' is not a cache command: expected ls or rm",
                           verb);
    return usage_error("%s", verb && !strcmp(verb, "rm")
                       ? "cache rm needs a model (org/name)"
                       : "expected 'cache ls' or 'cache rm REF'");
}
