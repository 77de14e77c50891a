/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_path.h - where plugins are looked for, in order:
 *   1. explicit files (--plugin FILE, a pipeline's `plugin:` path)
 *   2. --plugin-path DIR (repeatable)
 *   3. $AMALGAM_PLUGIN_PATH (colon-separated)
 *   4. $XDG_DATA_HOME/amalgam/plugins (default ~/.local/share/...)
 *   5. the compiled-in $(pkglibdir)/plugins (the build tree's plugins/.libs
 *      when the program runs uninstalled from its build tree)
 * $AMALGAM_PLUGIN_SYSTEM_PATH, when set (even empty), replaces 4 and 5 —
 * tests use it to stay isolated from installed plugins. Nothing is ever
 * loaded from the current directory implicitly; relative directories are
 * refused.
 */
#ifndef AMG_PLUGIN_PATH_H
#define AMG_PLUGIN_PATH_H

#include <stddef.h>

#include "error.h"

typedef struct amg_plugin_search {
    const char *const *files;          /* explicit plugin files */
    size_t n_files;
    const char *const *dirs;           /* --plugin-path directories */
    size_t n_dirs;
    unsigned flags;                    /* AMG_LOAD_* (plugin_loader.h) */
} amg_plugin_search;

/*
 * The plugin files to consider, in search order: explicit files as given
 * (each must exist), then "*.so" regular files of each directory in name
 * order (missing directories are skipped; symlinks and other non-regular
 * entries are ignored). Returns a malloc'd array of malloc'd paths.
 */
int amg_plugin_discover(const amg_plugin_search *s, char ***files,
                        size_t *n, amg_err *err);

void amg_plugin_files_free(char **files, size_t n);

/*
 * The directories amg_plugin_discover looks in, in order, whether or not
 * they exist (for "searched: ..." messages). Same array convention.
 */
int amg_plugin_search_dirs(const amg_plugin_search *s, char ***dirs,
                           size_t *n, amg_err *err);

/* Refuse a file or its directory writable by group or others, as ssh does
 * for keys (AMG_EPLUGIN, naming the path and what to run). */
int amg_plugin_check_perms(const char *path, amg_err *err);

#endif
