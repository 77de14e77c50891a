/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_catalog.h - what every discovered plugin offers (strategies, their
 * capabilities and parameter schemas), served from a scan cache so listing
 * and pipeline validation do not dlopen every plugin each time.
 *
 * Cache: one JSON file ($AMALGAM_PLUGIN_CACHE, else
 * $XDG_CACHE_HOME/amalgam/plugin-cache.json, else
 * ~/.cache/amalgam/plugin-cache.json) with a format version and one record
 * per plugin file keyed by (path, mtime, size). A changed file invalidates
 * its record; a corrupt or foreign cache is ignored and rebuilt, never
 * trusted. The cache is written atomically.
 */
#ifndef AMG_PLUGIN_CATALOG_H
#define AMG_PLUGIN_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "plugin_path.h"

typedef struct amg_param_info {
    char *name, *help, *def_str;       /* def_str NULL when none */
    int32_t type, scope;               /* AMG_PARAM_*, AMG_SCOPE_* */
    uint32_t flags;                    /* AMG_PARAM_* flags */
    double def, min, max;
    char **choices;                    /* NULL-terminated, or NULL */
} amg_param_info;

typedef struct amg_strategy_info {
    char *id, *summary, *help;         /* help may be NULL */
    uint64_t caps;                     /* AMG_CAP_* */
    uint32_t min_inputs, max_inputs;
    amg_param_info *params;
    size_t n_params;
    char *module, *module_version, *license; /* the module it came from */
    char *path;                        /* the plugin file */
} amg_strategy_info;

typedef struct amg_catalog {
    amg_strategy_info *s;              /* sorted by id */
    size_t n;
    size_t cache_hits, cache_misses;   /* files served from / added to the
                                          cache on this scan */
} amg_catalog;

/*
 * Discover plugins per s, take each file's record from the cache when its
 * (path, mtime, size) match, otherwise load it with the plugin loader and
 * record it; save the cache when anything changed (failures to save are
 * not errors). A strategy id offered by two files is an error naming both.
 * A plugin that fails to load fails the scan with its message.
 */
int amg_catalog_scan(amg_catalog *c, const amg_plugin_search *s,
                     amg_err *err);

/* Strategy by id, or NULL. */
const amg_strategy_info *amg_catalog_find(const amg_catalog *c,
                                          const char *id);

void amg_catalog_free(amg_catalog *c);

/* Path of the cache file (malloc'd), per the rules above. */
char *amg_catalog_cache_path(void);

#endif
