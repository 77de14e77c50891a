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
#include <stdint.h>

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

/* ---- the parsers of the Hub's JSON answers, pure (no network, no cache),
 * so that tests and fuzz targets reach them directly */

typedef struct amg_hub_entry {
    char *path;
    char etag[72];                     /* sha256 (LFS) or git sha1 */
    uint64_t size;
} amg_hub_entry;

typedef struct amg_hub_listing {
    amg_hub_entry *e;
    size_t n;
} amg_hub_listing;

void amg__hub_listing_free(amg_hub_listing *l);

/* Append the files of one page of /api/models/{repo}/tree/{commit}
 * (NUL-terminated body) to *l; folders are skipped. One unsafe name, or a
 * file without a valid hash or size, fails the page (*l may then hold part
 * of it: the caller frees it and uses none). repo and endpoint only go into
 * messages. */
int amg__hub_parse_tree(amg_hub_listing *l, const char *body,
                        const char *repo, const char *endpoint, amg_err *err);

/* The "sha" of /api/models/{repo}/revision/{rev} (NUL-terminated body):
 * a 40-hex commit into commit, else AMG_EFORMAT. */
int amg__hub_parse_revision(const char *body, const char *repo,
                            const char *rev, const char *endpoint,
                            char commit[41], amg_err *err);

#endif
