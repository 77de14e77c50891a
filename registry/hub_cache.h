/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub_cache.h - huggingface_hub's cache layout, so that files fetched by
 * amalgam are used by transformers and the other way round:
 *
 *   $HF_HUB_CACHE/models--org--name/refs/<revision>   commit, no newline
 *   $HF_HUB_CACHE/models--org--name/blobs/<etag>      sha256 or git sha1
 *   $HF_HUB_CACHE/models--org--name/snapshots/<commit>/<path>
 *                                       relative symlink to ../../blobs/<etag>
 *   $HF_HUB_CACHE/.locks/models--org--name/<etag>.lock
 */
#ifndef AMG_HUB_CACHE_H
#define AMG_HUB_CACHE_H

#include "error.h"

/* The cache root: HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else
 * $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
 * ~/.cache/huggingface/hub. malloc'd, NULL when out of memory or no home. */
char *amg_hub_cache_root(void);

/* HF_HOME as huggingface_hub computes it (for the token file). */
char *amg_hub_home(void);

/* 1 when HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is 1/ON/YES/TRUE. */
int amg_hub_offline(void);

/* "models--org--name" for "org/name" (malloc'd). */
char *amg_hub_repo_folder(const char *repo_id);

/* root/models--org--name (malloc'd). */
char *amg_hub_repo_dir(const char *root, const char *repo_id);

/* The symlink target for snapshots/<commit>/<path>: "../../blobs/<etag>"
 * with one more "../" per '/' in path (malloc'd). */
char *amg_hub_link_target(const char *path, const char *etag);

/* Read refs/<revision>: 1 and commit filled when it holds a commit, 0 when
 * absent or not a commit. */
int amg_hub_ref_read(const char *repo_dir, const char *revision,
                     char commit[41]);

/* Write refs/<revision> atomically, only when it changes. */
int amg_hub_ref_write(const char *repo_dir, const char *revision,
                      const char *commit, amg_err *err);

/* Create base/rel folder by folder; an existing component that is not a
 * real folder (a symlink planted in the cache) is refused. */
int amg_hub_mkdirs(const char *base, const char *rel, amg_err *err);

/* Make snapshots/<commit>/<path> point at blobs/<etag>. */
int amg_hub_link(const char *repo_dir, const char *commit, const char *path,
                 const char *etag, amg_err *err);

/* 1 when snapshots/<commit>/<path> resolves to a regular file. */
int amg_hub_snapshot_has(const char *repo_dir, const char *commit,
                         const char *path);

/* 1 when blobs/<etag> is a regular file (not a symlink). */
int amg_hub_blob_has(const char *repo_dir, const char *etag);

/* Take the lock file .locks/<folder>/<etag>.lock (flock, waits); *fd
 * receives the descriptor to pass to amg_hub_unlock. */
int amg_hub_lock(const char *root, const char *repo_id, const char *etag,
                 int *fd, amg_err *err);
void amg_hub_unlock(int fd);

/* Open a fresh blobs/<etag>.<8 hex>.incomplete for writing. */
int amg_hub_blob_open_tmp(const char *repo_dir, const char *etag,
                          char **tmp_path, int *fd, amg_err *err);

/* Rename a finished temporary file (created 0666 under the umask) to
 * blobs/<etag>. */
int amg_hub_blob_commit(const char *tmp_path, const char *repo_dir,
                        const char *etag, amg_err *err);

/* Write root/CACHEDIR.TAG if it is missing (best effort). */
void amg_hub_cache_tag(const char *root);

#endif
