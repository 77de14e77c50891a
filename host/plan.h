/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plan.h - a pipeline resolved against real models and strategies: for
 * every output tensor, a small graph of nodes saying where each value comes
 * from (a tensor read from a model, or a strategy applied to other nodes)
 * with every parameter already evaluated for that tensor. Built and
 * validated before any tensor data is read; `--dry-run` prints it.
 *
 * Chained steps share nodes: a later step names an earlier step's result
 * for the same tensor, and the executor evaluates each node once per output
 * tensor, in memory.
 */
#ifndef AMG_PLAN_H
#define AMG_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dtype.h"
#include "error.h"
#include "lora.h"
#include "model.h"
#include "params.h"
#include "pipeline.h"
#include "plugin_loader.h"
#include "plugin_path.h"

#define AMG_NO_NODE ((size_t)-1)

typedef enum amg_node_kind {
    AMG_NODE_LOAD = 1,                 /* read a tensor from an input model */
    AMG_NODE_MERGE                     /* apply a strategy to other nodes */
} amg_node_kind;

typedef struct amg_plan_node {
    amg_node_kind kind;
    int ndim;                          /* shape of the node's value */
    uint64_t shape[AMG_ST_MAX_DIMS];

    /* AMG_NODE_LOAD */
    size_t model;                      /* index into amg_plan.models, or
                                          into aux_files when from_aux */
    int from_aux;                      /* read from an auxiliary file */
    const amg_model_tensor *src;       /* the tensor read */
    int cropped;                       /* embedding submatrix rule: the value
                                          is src[:shape[0], :shape[1]] of a
                                          larger source */
    size_t lora;                       /* with lora_mod: index into
                                          amg_plan.loras */
    const amg_lora_module *lora_mod;   /* LoRA update added to the value
                                          as it is read, or NULL */

    /* AMG_NODE_MERGE */
    size_t step;                       /* pipeline step */
    const amg_plugin_entry *strategy;  /* loaded strategy */
    const char *name;                  /* tensor name this step outputs */
    int32_t layer_index;               /* layer of the tensor, or -1 */
    size_t base;                       /* node of the base model's value, or
                                          AMG_NO_NODE */
    size_t *inputs;                    /* nodes of the input models' values */
    size_t n_inputs;
    size_t *aux;                       /* strategies with aux_role: per
                                          input, the LOAD node of the same
                                          tensor in that model's auxiliary
                                          file, or AMG_NO_NODE; else NULL */
    amg_params global;                 /* strategy's global parameters */
    amg_params *per_model;             /* n_inputs per-model views */
    uint64_t seed;                     /* amg_rng_tensor_seed(pipeline seed,
                                          name) */
} amg_plan_node;

typedef struct amg_plan_tensor {
    char *name;                        /* output tensor name (owned) */
    size_t node;                       /* node producing it */
    amg_dtype dtype;                   /* stored dtype in the output */
    int ndim;
    uint64_t shape[AMG_ST_MAX_DIMS];
} amg_plan_tensor;

typedef struct amg_plan_opts {
    amg_plugin_search plugins;         /* where strategies come from */
    int has_out_dtype;                 /* --out-dtype overrides the pipeline */
    amg_dtype out_dtype;
} amg_plan_opts;

typedef struct amg_plan {
    const amg_pipeline *pipe;          /* borrowed */
    amg_model *models;                 /* every input model, opened
                                          (headers read, data mapped) */
    char **model_paths;                /* resolved folder of each (owned) */
    const char **model_refs;           /* each as the pipeline names it:
                                          relative to the pipeline's folder
                                          when inside it (strings borrowed
                                          from the pipeline) */
    size_t n_models;
    amg_lora *loras;                   /* every LoRA adapter, opened */
    const char **lora_refs;            /* each as the pipeline names it
                                          (borrowed, like model_refs) */
    size_t n_loras;
    amg_model *aux_files;              /* every `fisher:` file, opened; kept
                                          apart from models, which are the
                                          merge's inputs */
    const char **aux_refs;             /* each as the pipeline names it
                                          (borrowed, like model_refs) */
    size_t n_aux_files;
    amg_plugins plugins;               /* loaded strategy modules */
    amg_plan_node *nodes;
    size_t n_nodes;
    amg_plan_tensor *outs;             /* in the order they are written */
    size_t n_outs;
    size_t config_model;               /* whose config.json is the template */
    size_t tokenizer_model;            /* whose tokenizer files are copied,
                                          or AMG_NO_NODE for none */
    int out_layers;                    /* num_hidden_layers of the output */
} amg_plan;

/*
 * Resolve p: open every model (Hub references from the shared cache,
 * fetched when missing and online), load the strategies (unknown
 * names list the near ones), evaluate parameters per tensor (gradients,
 * filters, mergekit's precedence: source > slice > top level), apply the
 * schemas (unknown names, types, ranges, required per-model values),
 * check shapes across models (the embedding submatrix rule for
 * embed_tokens / lm_head), layer ranges, and a base model where the
 * strategy needs one. LoRA adapters are opened and every module they
 * update must exist in their base with the update's shape. `fisher:` files
 * are opened for strategies with an aux_role (refused for others); an
 * input's auxiliary value is the same-named tensor of its file, of the
 * input's shape and a float dtype, or none when the file lacks it. A
 * `fisher` strategy with normalize_fishers true gets each input's
 * fisher_norm, the L2 norm of its whole file (computed once per file, a
 * pass over its data). Errors carry "file:line:col:".
 */
/* The model a LOAD node reads from. */
static inline const amg_model *amg_plan_load_model(const amg_plan *plan,
                                                   const amg_plan_node *n)
{
    return n->from_aux ? &plan->aux_files[n->model] : &plan->models[n->model];
}

int amg_plan_build(amg_plan *plan, const amg_pipeline *p,
                   const amg_plan_opts *o, amg_err *err);

/* The dry-run listing: per output tensor its sources, strategy and the
 * resolved parameters. */
void amg_plan_print(const amg_plan *plan, FILE *out);

void amg_plan_free(amg_plan *plan);

#endif
