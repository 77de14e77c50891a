/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pipeline.h - a merge pipeline as written: a mergekit config (one step) or
 * amalgam's `steps:` list of named merges. Parsed from YAML and checked for
 * shape (known keys, value types, references between steps) before any
 * model is opened; every error carries file:line:column and a hint.
 *
 * Accepted top level, mergekit's schema:
 *   merge_method, base_model, models: [{model, parameters, fisher}],
 *   slices: [{sources: [{model, layer_range: [a, b], parameters, fisher}],
 *             base_model, parameters}],
 *   parameters, dtype, out_dtype, tokenizer_source, chat_template
 * plus amalgam's: seed, plugin (a plugin file), fisher (per model: a file
 * of auxiliary tensors, checked against the strategy by the plan), and
 *   steps: [{name, <the keys above>}], output: <step name>
 */
#ifndef AMG_PIPELINE_H
#define AMG_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "error.h"
#include "yaml_doc.h"

typedef struct amg_pos {
    int line, col;                     /* 1-based; 0 when synthesized */
} amg_pos;

/* A parameter value as written (mergekit's ParameterSetting). */
typedef enum amg_pval_kind {
    AMG_PV_NUMBER = 1,                 /* 0.5 */
    AMG_PV_BOOL,                       /* true */
    AMG_PV_STRING,                     /* "sum" */
    AMG_PV_GRADIENT,                   /* [0, 0.5, 1]: interpolated over
                                          layers (numbers) or picked (bools,
                                          strings: elems holds them) */
    AMG_PV_FILTERS                     /* [{filter: mlp, value: ...}, ...] */
} amg_pval_kind;

typedef struct amg_pval amg_pval;
typedef struct amg_pfilter amg_pfilter;

struct amg_pval {
    amg_pval_kind kind;
    amg_pos pos;
    double num;                        /* NUMBER; BOOL as 0/1 */
    char *str;                         /* STRING (owned) */
    amg_pval *elems;                   /* GRADIENT elements (scalars) */
    size_t n_elems;
    amg_pfilter *filters;              /* FILTERS, in order */
    size_t n_filters;
};

struct amg_pfilter {
    char *filter;                      /* substring; NULL or "*" matches all */
    amg_pval value;                    /* a scalar or a gradient */
    amg_pos pos;
};

typedef struct amg_pentry {
    char *name;                        /* parameter name (owned) */
    amg_pval value;
    amg_pos pos;                       /* of the name */
} amg_pentry;

typedef struct amg_pset {
    amg_pentry *entries;               /* in file order; names unique */
    size_t n;
} amg_pset;

/* A model reference as written, classified. */
typedef enum amg_ref_kind {
    AMG_REF_PATH = 1,                  /* a local folder or file */
    AMG_REF_HUB,                       /* org/name[@rev] or hf://org/name */
    AMG_REF_STEP                       /* the name of an earlier step */
} amg_ref_kind;

/* model holds the reference ready to use: for AMG_REF_PATH the path
 * resolved against the pipeline's folder (absolute paths kept), for
 * AMG_REF_HUB "org/name[@rev]" (an hf:// prefix removed), for AMG_REF_STEP
 * the step's name. */
typedef struct amg_source {
    char *model;                       /* the reference (owned), see above */
    amg_ref_kind ref;
    char *lora;                        /* a LoRA adapter folded into the
                                          model (`model+lora`, or an
                                          adapter folder given alone, whose
                                          base is then model), or NULL;
                                          classified as model is (owned) */
    amg_ref_kind lora_ref;             /* AMG_REF_PATH or AMG_REF_HUB */
    size_t step;                       /* AMG_REF_STEP: index of the step */
    amg_pos pos;
    int has_range;                     /* layer_range given */
    int range[2];                      /* [begin, end) */
    amg_pset params;                   /* per-source parameters */
    char *fisher;                      /* `fisher:` (amalgam's): a
                                          safetensors file or a folder
                                          holding one, resolved as model
                                          paths are; the auxiliary tensors
                                          of strategies whose aux_role is
                                          "fisher"; or NULL (owned) */
    amg_pos fisher_pos;
} amg_source;

typedef struct amg_slice {
    amg_source *sources;
    size_t n_sources;
    char *base_model;                  /* slice-level base, or NULL */
    amg_source *base;                  /* the same, classified, or NULL */
    amg_pset params;
    amg_pos pos;
} amg_slice;

typedef struct amg_step {
    char *name;                        /* steps[].name; "merge" for a plain
                                          mergekit config */
    amg_pos pos;
    char *method;                      /* merge_method */
    amg_pos method_pos;
    amg_source *base;                  /* base_model, or NULL */
    int uses_slices;                   /* slices: rather than models: */
    amg_source *models;                /* models: entries */
    size_t n_models;
    amg_slice *slices;                 /* slices: entries */
    size_t n_slices;
    amg_pset params;                   /* top-level parameters */
    int has_dtype, has_out_dtype;
    amg_dtype dtype, out_dtype;        /* dtype: is accepted for mergekit
                                          compatibility; amalgam computes in
                                          f32 and uses it as the output type
                                          unless out_dtype is given */
    char *tokenizer_source;            /* "base", a model reference, or NULL */
    amg_source *tokenizer;             /* tokenizer_source when it names a
                                          model, classified; else NULL */
    char *chat_template;               /* or NULL */
    amg_pos tokenizer_pos, chat_template_pos;
} amg_step;

typedef struct amg_pipeline {
    char *path;                        /* file name for messages (owned) */
    char *dir;                         /* its folder: relative model paths
                                          resolve against it (owned) */
    amg_step *steps;
    size_t n_steps;
    size_t output;                     /* index of the step written */
    uint64_t seed;                     /* `seed:` (default 0) */
    char *plugin;                      /* `plugin:` file, or NULL */
    amg_pos plugin_pos;
} amg_pipeline;

/*
 * Load and check a pipeline: unknown keys (with the nearest known key as a
 * hint), wrong types, exactly one of models/slices per step, layer_range
 * shape, step names unique and referenced only after their definition,
 * LoRA adapters (`model+lora`, or an adapter folder alone: its
 * adapter_config.json names the base), dtype names.
 */
int amg_pipeline_load(amg_pipeline *p, const char *path, amg_err *err);

/* Same from memory (tests, fuzzing); dir resolves relative model paths. */
int amg_pipeline_parse(amg_pipeline *p, const char *label, const char *dir,
                       const char *text, size_t len, amg_err *err);

void amg_pipeline_free(amg_pipeline *p);

/* Find a parameter by name in a set, or NULL. */
const amg_pentry *amg_pset_get(const amg_pset *s, const char *name);

#endif
