/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_loader.h - load strategy plugins (dlopen) and check their
 * descriptors against the ABI before any of their strategies is used.
 *
 * Modules stay loaded until the process exits (amg_plugins_release calls
 * fini but never dlclose: a strategy's static strings must outlive every
 * pointer the host kept to them).
 */
#ifndef AMG_PLUGIN_LOADER_H
#define AMG_PLUGIN_LOADER_H

#include <stddef.h>
#include <sys/types.h>

#include <amalgam/plugin.h>

#include "error.h"

typedef struct amg_plugin_module {
    char *path;                        /* file it came from (owned) */
    void *dl;                          /* dlopen handle */
    const amg_module *mod;             /* its descriptor */
    dev_t dev;                         /* identity, for duplicate files */
    ino_t ino;
} amg_plugin_module;

typedef struct amg_plugin_entry {
    const amg_strategy *s;
    size_t module;                     /* index into amg_plugins.modules */
} amg_plugin_entry;

typedef struct amg_plugins {
    amg_plugin_module *modules;
    size_t n_modules;
    amg_plugin_entry *strategies;      /* every registered strategy */
    size_t n_strategies;
} amg_plugins;

/* Flags for amg_plugins_load. */
#define AMG_LOAD_ALLOW_INSECURE 1u     /* accept group/world-writable files */

/* The host services table handed to plugins (static). */
const amg_host_api *amg_host_api_get(void);

/*
 * Load one plugin file: security check (regular file, not writable by
 * group or others, nor its directory, unless AMG_LOAD_ALLOW_INSECURE),
 * dlopen(RTLD_NOW|RTLD_LOCAL), entry symbol, descriptor checks, init, and
 * strategy checks. A file already loaded (same device and inode) is
 * skipped with AMG_OK. Each failure names the file and its cause: not a
 * shared object, no entry symbol, bad magic, ABI major mismatch, minor too
 * new, struct too small, build configuration mismatch (which field), init
 * failure (with the plugin's message), duplicate strategy id (both files),
 * missing required members.
 */
int amg_plugins_load(amg_plugins *ps, const char *path, unsigned flags,
                     amg_err *err);

/*
 * Check a descriptor without loading anything (used by the loader and by
 * the descriptor fuzz target): magic, versions, sizes, build block, strings
 * and members present, strategy ids well-formed and unique within the
 * module, parameter schemas sane (names, types, scopes, ranges, defaults in
 * range). label names the file in messages.
 */
int amg_module_validate(const amg_module *m, const char *label, amg_err *err);

/* Registered strategy by id, or NULL. */
const amg_plugin_entry *amg_plugins_find(const amg_plugins *ps,
                                         const char *id);

/* Call every module's fini and free the bookkeeping (modules stay mapped). */
void amg_plugins_release(amg_plugins *ps);

#endif
