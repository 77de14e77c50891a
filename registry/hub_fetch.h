/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub_fetch.h - a repository from the Hub into the shared cache: the
 * revision resolved to a commit, the file tree listed, what a merge needs
 * picked out, missing blobs downloaded in parallel (locked, checked
 * against their sha256 or git sha1, renamed into place) and linked into
 * snapshots/<commit>/.
 */
#ifndef AMG_HUB_FETCH_H
#define AMG_HUB_FETCH_H

#include <stddef.h>

#include "error.h"

typedef struct amg_fetch_opts {
    const char *const *include;        /* extra fnmatch globs on repo paths */
    size_t n_include;
    int quiet;                         /* no progress or summary */
    int verbose;                       /* one line per HTTP request */
    const char *ca_bundle;             /* or NULL: AMALGAM_CA_BUNDLE */
    int jobs;                          /* parallel downloads; 0: 4 */
    int adapter;                       /* the repository is a PEFT LoRA
                                          adapter: fetch adapter_config.json
                                          too, and call a snapshot usable
                                          when it has that and
                                          adapter_model.safetensors */
} amg_fetch_opts;

/* 1 when a merge needs path: *.safetensors and the shard index, config and
 * generation config, tokenizer files (amg_side_files) at the top of the
 * repository, or anything an include glob matches. */
int amg_hub_wanted(const char *path, const char *const *include,
                   size_t n_include);

/* Fetch repo_id at revision (online; HF_HUB_OFFLINE answers from the
 * cache only). *snapshot receives the snapshots/<commit> folder. */
int amg_hub_fetch(const char *repo_id, const char *revision,
                  const amg_fetch_opts *o, char **snapshot, amg_err *err);

/* For pipelines: the cached snapshot when it holds a usable model
 * (config.json and every safetensors shard; for o->adapter, an adapter's
 * two files), else a fetch when online; with HF_HUB_OFFLINE only the
 * cache. */
int amg_hub_resolve(const char *repo_id, const char *revision,
                    const amg_fetch_opts *o, char **snapshot, amg_err *err);

#endif
