/* SPDX-License-Identifier: Apache-2.0 */
/*
 * model_ref.h - what a model reference names: a local folder, or a
 * repository on the Hugging Face Hub ("org/name", "org/name@rev",
 * "hf://org/name[@rev]"); and the checks on names that come from a server.
 */
#ifndef AMG_MODEL_REF_H
#define AMG_MODEL_REF_H

#include "error.h"

typedef enum amg_mref_kind {
    AMG_MREF_PATH = 1,
    AMG_MREF_HUB
} amg_mref_kind;

typedef struct amg_model_ref {
    amg_mref_kind kind;
    char *path;                        /* AMG_MREF_PATH: as written */
    char *repo_id;                     /* AMG_MREF_HUB: "org/name" */
    char *revision;                    /* AMG_MREF_HUB: "main" if not given */
} amg_model_ref;

/*
 * Classify text. "hf://..." must be a Hub id. Text that names an existing
 * file or folder, or starts with '/', "./", "../" or "~", is a path.
 * Otherwise "org/name[@rev]" is a Hub id and anything else a path (which
 * then fails where it is opened).
 */
int amg_model_ref_parse(const char *text, amg_model_ref *out, amg_err *err);
void amg_model_ref_free(amg_model_ref *r);

/* 1 if s is a Hub repository id "org/name" (the Hub's character rules:
 * letters, digits, '-', '_', '.'; no "--" or ".."; no leading or trailing
 * '-' or '.'; at most 96 characters per part). */
int amg_hub_repo_id_valid(const char *s);

/* 1 if s is an acceptable revision: a branch, tag, "refs/pr/N" or commit
 * (letters, digits, "-_./", no "..", no leading or trailing '/'). */
int amg_hub_revision_valid(const char *s);

/* 1 if s is a 40-hex commit id. */
int amg_hub_is_commit(const char *s);

/* 1 if a file name from a server may be written under a snapshot folder:
 * relative, no "." / ".." / empty component, no backslash, no control
 * characters, under 1024 bytes. */
int amg_hub_path_safe(const char *s);

/* 1 if s is a 40-hex git sha1 or a 64-hex sha256 (an etag that becomes a
 * blob's file name). */
int amg_hub_etag_valid(const char *s);

#endif
