/* SPDX-License-Identifier: Apache-2.0 */
/*
 * amalgam/plugin.h - what a strategy plugin provides.
 *
 * A plugin is a shared object exporting one function, amg_plugin_entry,
 * that returns a module descriptor listing one or more strategies. Plugins
 * compile against these headers alone (pkg-config amalgam-plugin) and never
 * link the host: the host's services arrive as an amg_host_api table.
 *
 * Load sequence (host side, for the record):
 *   dlopen(RTLD_NOW | RTLD_LOCAL) -> dlsym("amg_plugin_entry") ->
 *   entry(AMG_ABI_MAJOR) -> check magic, abi_major (must equal), abi_minor
 *   (must not exceed the host's), struct_size, build block (byte for byte)
 *   -> init(host, ctx) -> validate strategies (unique ids, required members)
 *   -> register. Modules stay loaded until the process exits.
 *
 * Rules for plugins:
 *   - Never print, exit, abort or longjmp. Report failures with
 *     host->fail(ctx, status, "...") and return that status.
 *   - Descriptors, strategies, schemas and their strings are static and
 *     stay valid until fini (make them static const).
 *   - Inputs in an amg_merge_call are read-only and borrowed for the call;
 *     out is the host's; temporaries come from host->tensor_new.
 *   - Threading: init, fini, create and destroy run on the main thread, one
 *     at a time. merge, reduce and apply run on worker threads, each call
 *     with its own ctx; several at once on one instance only when the
 *     strategy sets AMG_CAP_REENTRANT (different tensors; the chunks of one
 *     tensor's reduce and apply passes never overlap). Instances are
 *     immutable after create.
 *
 * Structs are append-only: each begins with struct_size, and readers use a
 * member only when it lies within struct_size. Arrays of structs are walked
 * with the stride of their first element's struct_size.
 */
#ifndef AMALGAM_PLUGIN_H
#define AMALGAM_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "kernels.h"
#include "status.h"
#include "tensor.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "AMG1": first field checked after the size, before anything else. */
#define AMG_MODULE_MAGIC 0x31474D41u

/* ---- parameter schema ---- */

#define AMG_PARAM_F64 1            /* number (double) */
#define AMG_PARAM_I64 2            /* integer */
#define AMG_PARAM_BOOL 3           /* true / false */
#define AMG_PARAM_STR 4            /* string, optionally from choices */

#define AMG_SCOPE_GLOBAL 0         /* one value for the merge (per tensor) */
#define AMG_SCOPE_PER_MODEL 1      /* one value per input model; a global
                                      value is the default for every model,
                                      as mergekit does */

#define AMG_PARAM_REQUIRED 1u      /* no default: the pipeline must set it */
#define AMG_PARAM_GRADIENT 2u      /* may be a list interpolated over layers
                                      or a filter list */
#define AMG_PARAM_HAS_MIN 4u       /* min applies */
#define AMG_PARAM_HAS_MAX 8u       /* max applies */
#define AMG_PARAM_MIN_EXCLUSIVE 16u /* value must be > min (else >=) */
#define AMG_PARAM_MAX_EXCLUSIVE 32u /* value must be < max (else <=) */

typedef struct amg_param_spec {
    uint32_t struct_size;          /* sizeof(amg_param_spec) */
    int32_t type;                  /* AMG_PARAM_F64 .. AMG_PARAM_STR */
    int32_t scope;                 /* AMG_SCOPE_* */
    uint32_t flags;                /* AMG_PARAM_* flags */
    const char *name;              /* as written in YAML: [a-z][a-z0-9_]* */
    const char *help;              /* one line for `amalgam plugins NAME` */
    double def;                    /* default for F64, I64 and BOOL (0/1) */
    const char *def_str;           /* default for STR (NULL: none) */
    double min, max;               /* range, per HAS_MIN / HAS_MAX */
    const char *const *choices;    /* STR: NULL-terminated allowed values,
                                      or NULL for any string */
    void *reserved[2];             /* NULL */
} amg_param_spec;

/* ---- capabilities (amg_strategy.caps) ---- */

#define AMG_CAP_CPU (1ull << 0)        /* merge accepts CPU tensors */
#define AMG_CAP_CUDA (1ull << 1)       /* merge accepts CUDA tensors */
#define AMG_CAP_ELEMENTWISE (1ull << 2) /* out rows depend only on the same
                                          rows of the inputs: the host may
                                          call merge on row chunks (never
                                          for a 0-D or 1-D tensor: that
                                          one always comes whole) */
#define AMG_CAP_NEEDS_BASE (1ull << 3) /* requires a base model */
#define AMG_CAP_USES_RNG (1ull << 4)   /* draws from the RNG (seed below) */
#define AMG_CAP_REENTRANT (1ull << 5)  /* merge may run concurrently on one
                                          instance */
#define AMG_CAP_TWO_PASS (1ull << 6)   /* has reduce + apply: whole-tensor
                                          statistics over row chunks */

/* ---- one merge call ---- */

typedef struct amg_merge_call {
    uint32_t struct_size;          /* sizeof(amg_merge_call) */
    uint32_t n_inputs;             /* input models (the base not counted) */
    const amg_host_api *host;      /* host services */
    const amg_kernels *k;          /* kernels for the tensors' device */
    const char *tensor_name;       /* output tensor name */
    int32_t layer_index;           /* decoder layer of the tensor, or -1 */
    int32_t n_layers;              /* layers in the model (0 if unknown) */
    const amg_tensor *base;        /* F32 base model rows, or NULL. When
                                      the pipeline also lists the base
                                      among the models (strategies without
                                      NEEDS_BASE), that entry of inputs is
                                      this same handle */
    const amg_tensor *const *inputs; /* n_inputs F32 tensors, out's shape */
    const amg_params *const *input_params; /* n_inputs per-model views */
    const amg_params *params;      /* the strategy's global view */
    amg_tensor *out;               /* F32, allocated by the host */
    uint64_t seed;                 /* amg_rng_tensor_seed(pipeline seed,
                                      tensor_name) */
    uint64_t row_begin, row_end;   /* rows of the whole tensor covered */
    uint64_t rows_total;           /* rows of the whole tensor */
    uint32_t pass;                 /* reduce: pass number, 0 ..
                                      reduce_passes - 1; 0 otherwise */
    uint32_t reserved0;            /* 0 */
    /* Per-input auxiliary tensors, for strategies that declare aux_role:
     * n_inputs entries, entry i the F32 rows (same rows and shape as
     * inputs[i]) of model i's auxiliary tensor of the same name (e.g. its
     * Fisher diagonal), or NULL where that model has none for this tensor.
     * The array itself is NULL for strategies without aux_role. Read-only,
     * borrowed for the call. */
    const amg_tensor *const *aux;
    void *reserved[3];             /* NULL */
} amg_merge_call;

/* ---- a strategy ---- */

typedef struct amg_strategy {
    uint32_t struct_size;          /* sizeof(amg_strategy) */
    uint32_t reduce_passes;        /* TWO_PASS: how many reduce passes run
                                      before apply (0 means 1); an exact
                                      top-k needs two histogram passes */
    const char *id;                /* merge_method name: [a-z][a-z0-9_]* */
    const char *summary;           /* one line */
    const char *help;              /* formula, parameters, references; may
                                      be NULL */
    uint64_t caps;                 /* AMG_CAP_* */
    uint32_t min_inputs;           /* fewest input models accepted */
    uint32_t max_inputs;           /* most (0 = no limit) */
    uint32_t n_params;             /* entries in params */
    uint32_t reserved1;            /* 0 */
    const amg_param_spec *params;  /* the schema */

    /* Create an instance for one pipeline step (main thread). Optional:
     * NULL means the instance is NULL. global holds the step's parameters
     * as evaluated for its first tensor: values that vary by tensor
     * (gradients, filters) must be read from each call's params. */
    int32_t (*create)(amg_ctx *ctx, const amg_host_api *host,
                      const amg_params *global, void **inst);
    /* Destroy an instance (main thread). Optional. */
    void (*destroy)(void *inst);
    /* Merge inputs into out (worker thread). Required. Called on the whole
     * tensor, or on row chunks when AMG_CAP_ELEMENTWISE is set. */
    int32_t (*merge)(void *inst, amg_ctx *ctx, const amg_merge_call *call);

    /* Two-pass form (AMG_CAP_TWO_PASS): for each tensor the host zeroes
     * stats_bytes of stats once, calls reduce on every row chunk in row
     * order, one at a time, reduce_passes times (call->pass tells which),
     * then apply on every chunk in row order, one at a time — so apply may
     * carry state in stats (e.g. how many top-k ties it has taken).
     * Row chunks hold whole rows of dimension 0, and the host never
     * splits a tensor of ndim <= 1: such a tensor is one chunk (row_begin
     * 0, row_end rows_total), so what a strategy computes over a 1-D
     * tensor as one row (ranks, norms) needs no gathering across calls.
     * Optional; when absent merge gets the whole tensor. */
    uint64_t stats_bytes;
    int32_t (*reduce)(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                      void *stats);
    int32_t (*apply)(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                     void *stats);

    /* What per-model auxiliary tensors the strategy reads, or NULL for
     * none. When set (e.g. "fisher"), a pipeline may give each model a
     * file of tensors named like the model's (the key of that name on the
     * model entry) and the host passes them as amg_merge_call.aux. */
    const char *aux_role;
    void *reserved[7];             /* NULL */
} amg_strategy;

/* ---- the module ---- */

/* Build configuration, compared byte for byte with the host's: a plugin
 * built for another pointer size, endianness or struct packing is refused
 * before any of its code runs. No padding (all members uint32_t). */
typedef struct amg_build_config {
    uint32_t ptr_bytes;            /* sizeof(void *) */
    uint32_t size_t_bytes;         /* sizeof(size_t) */
    uint32_t little_endian;        /* 1 on little-endian machines */
    uint32_t dltensor_bytes;       /* sizeof(amg_dltensor) */
    uint32_t tensor_bytes;         /* sizeof(amg_tensor) */
    uint32_t cuda_stream_bytes;    /* size of the CUDA stream handle type
                                      the SDK passes (void *) */
} amg_build_config;

#define AMG_BUILD_CONFIG_INIT                                                 \
    { (uint32_t)sizeof(void *), (uint32_t)sizeof(size_t),                     \
      (uint32_t)(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__),                  \
      (uint32_t)sizeof(amg_dltensor), (uint32_t)sizeof(amg_tensor),           \
      (uint32_t)sizeof(void *) }

typedef struct amg_module {
    uint32_t struct_size;          /* sizeof(amg_module) */
    uint32_t magic;                /* AMG_MODULE_MAGIC */
    uint16_t abi_major;            /* AMG_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor;            /* AMG_ABI_MINOR likewise */
    uint32_t reserved0;            /* 0 */
    amg_build_config build;        /* AMG_BUILD_CONFIG_INIT */
    const char *name;              /* module name, e.g. "ties" */
    const char *version;           /* module version, e.g. "1.0.0" */
    const char *license;           /* SPDX identifier, e.g. "Apache-2.0" */
    const char *description;       /* one line */
    /* Called once after the checks (main thread); optional. A failure
     * (with host->fail) refuses the module. */
    int32_t (*init)(const amg_host_api *host, amg_ctx *ctx);
    /* Called once at exit (main thread); optional. */
    void (*fini)(void);
    uint32_t n_strategies;         /* entries in strategies */
    uint32_t reserved1;            /* 0 */
    const amg_strategy *const *strategies;
    void *reserved[8];             /* NULL */
} amg_module;

/* Designated initializer for the fixed head of a module. */
#define AMG_MODULE_HEAD                                                       \
    .struct_size = (uint32_t)sizeof(amg_module), .magic = AMG_MODULE_MAGIC,   \
    .abi_major = AMG_ABI_MAJOR, .abi_minor = AMG_ABI_MINOR,                   \
    .build = AMG_BUILD_CONFIG_INIT

/* The one exported symbol. host_abi_major lets a plugin that supports
 * several majors hand back the matching layout (or NULL). */
#define AMG_PLUGIN_ENTRY_NAME "amg_plugin_entry"
typedef const amg_module *(*amg_plugin_entry_fn)(uint32_t host_abi_major);

#if defined(__GNUC__)
#define AMG_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define AMG_PLUGIN_EXPORT
#endif

/* Define the entry function returning &module_var. */
#define AMG_PLUGIN_DEFINE(module_var)                                         \
    AMG_PLUGIN_EXPORT const amg_module *amg_plugin_entry(                     \
        uint32_t host_abi_major);                                             \
    AMG_PLUGIN_EXPORT const amg_module *amg_plugin_entry(                     \
        uint32_t host_abi_major)                                              \
    {                                                                         \
        (void)host_abi_major;                                                 \
        return &(module_var);                                                 \
    }

#ifdef __cplusplus
}
#endif
#endif /* AMALGAM_PLUGIN_H */
