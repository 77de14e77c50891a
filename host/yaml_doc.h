/* SPDX-License-Identifier: Apache-2.0 */
/*
 * yaml_doc.h - a YAML file as a small tree of mappings, sequences and
 * scalars, each node remembering its line and column, so every later
 * validation error can say "pipeline.yaml:12:5: ...".
 *
 * Built with libyaml's event parser. Anchors and aliases are resolved by
 * copying (aliases to mappings/sequences are refused to keep the tree a
 * tree); tags are ignored; multiple documents are refused.
 */
#ifndef AMG_YAML_DOC_H
#define AMG_YAML_DOC_H

#include <stddef.h>

#include "error.h"

typedef enum amg_ynode_kind {
    AMG_Y_SCALAR = 1,
    AMG_Y_MAP,
    AMG_Y_SEQ
} amg_ynode_kind;

typedef struct amg_ynode amg_ynode;

typedef struct amg_ypair {
    amg_ynode *key;                    /* always a scalar */
    amg_ynode *value;
} amg_ypair;

struct amg_ynode {
    amg_ynode_kind kind;
    int line, col;                     /* 1-based position of the node */
    /* AMG_Y_SCALAR */
    char *str;                         /* the scalar's text (owned) */
    int quoted;                        /* 1 when written in quotes: never a
                                          number, bool or null */
    /* AMG_Y_MAP */
    amg_ypair *pairs;
    size_t n_pairs;
    /* AMG_Y_SEQ */
    amg_ynode **items;
    size_t n_items;
};

typedef struct amg_ydoc {
    char *path;                        /* file name used in messages (owned) */
    amg_ynode *root;                   /* NULL for an empty document */
} amg_ydoc;

/* Parse a file. Syntax errors and duplicate mapping keys are reported as
 * "path:line:col: message". */
int amg_ydoc_load(amg_ydoc *d, const char *path, amg_err *err);

/* Parse from memory; label names the source in messages. */
int amg_ydoc_parse(amg_ydoc *d, const char *label, const char *text,
                   size_t len, amg_err *err);

void amg_ydoc_free(amg_ydoc *d);

/* Value of key in a mapping, or NULL. */
const amg_ynode *amg_ynode_get(const amg_ynode *map, const char *key);

/* Scalar interpretations (YAML 1.2 core schema): return 0 on success.
 * Quoted scalars are strings only. */
int amg_ynode_is_null(const amg_ynode *n);
int amg_ynode_as_bool(const amg_ynode *n, int *out);
int amg_ynode_as_double(const amg_ynode *n, double *out);
int amg_ynode_as_int(const amg_ynode *n, long long *out);

/* "a mapping", "a sequence", "a string", "a number", "true/false", "null"
 * for messages. */
const char *amg_ynode_kind_name(const amg_ynode *n);

#endif
