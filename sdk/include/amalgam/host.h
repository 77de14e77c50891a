/* SPDX-License-Identifier: Apache-2.0 */
/*
 * amalgam/host.h - the services the host gives every plugin.
 *
 * A plugin never links against the host: everything it may call arrives in
 * this table (passed to amg_module.init and in every amg_merge_call). Every
 * function here is thread-safe unless its comment says otherwise, and none
 * of them prints, exits or aborts.
 *
 * Growth: members are only ever appended (taking reserved[] slots first).
 * Before using a member added after ABI 0.1, test it with AMG_HOST_HAS().
 */
#ifndef AMALGAM_HOST_H
#define AMALGAM_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define AMG_SDK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define AMG_SDK_PRINTF(f, a)
#endif

/* Opaque per-call context: errors, temporaries and the abort flag of one
 * call. Never shared between threads. */
typedef struct amg_ctx amg_ctx;

/* Opaque view of resolved parameters: the values of one strategy (global)
 * or of one input model (per-model) for one tensor, gradients and filters
 * already applied and defaults filled in from the schema. */
typedef struct amg_params amg_params;

/* Log levels for amg_host_api.log. */
#define AMG_LOG_ERROR 0
#define AMG_LOG_WARN 1
#define AMG_LOG_INFO 2
#define AMG_LOG_DEBUG 3

typedef struct amg_host_api {
    uint32_t struct_size;          /* sizeof(amg_host_api) as the host built it */
    uint16_t abi_major;            /* the host's AMG_ABI_MAJOR */
    uint16_t abi_minor;            /* the host's AMG_ABI_MINOR */
    const char *host_name;         /* "amalgam" */
    const char *host_version;      /* release, e.g. "0.1.0" */

    /* ---- memory ---- */

    /* Host memory of bytes, aligned to align (a power of two, or 0 for 16).
     * NULL when out of memory. Free only with mem_free. */
    void *(*mem_alloc)(amg_ctx *ctx, size_t bytes, size_t align);
    /* Release mem_alloc memory; NULL is a no-op. */
    void (*mem_free)(amg_ctx *ctx, void *p);

    /* ---- tensors ---- */

    /* A temporary contiguous tensor of dtype and shape on device, owned by
     * ctx: released automatically when the call returns. Contents are
     * undefined. */
    int32_t (*tensor_new)(amg_ctx *ctx, amg_dl_dtype dtype, int32_t ndim,
                          const int64_t *shape, amg_device device,
                          amg_tensor **out);
    /* A temporary with proto's shape, device and elem_offset, of dtype. */
    int32_t (*tensor_new_like)(amg_ctx *ctx, const amg_tensor *proto,
                               amg_dl_dtype dtype, amg_tensor **out);
    /* Release a temporary early (loops); other tensors are ignored. */
    void (*tensor_release)(amg_ctx *ctx, amg_tensor *t);
    /* dst = src across any pair of devices, converting dtype as
     * amg_kernels.convert does. Same numel required. */
    int32_t (*tensor_copy)(amg_ctx *ctx, amg_tensor *dst,
                           const amg_tensor *src);
    /* The kernel table for a device, or NULL when that device is not
     * available in this process. */
    const amg_kernels *(*kernels)(amg_ctx *ctx, amg_device device);

    /* ---- parameters (typed getters over an amg_params view) ---- */

    /* Each returns AMG_OK and the value, AMG_ENOTFOUND when the schema has
     * no such name, AMG_EINVAL when the parameter has another type. Strings
     * stay valid for the lifetime of the params view. */
    int32_t (*param_f64)(const amg_params *p, const char *name, double *out);
    int32_t (*param_i64)(const amg_params *p, const char *name, int64_t *out);
    int32_t (*param_bool)(const amg_params *p, const char *name,
                          int32_t *out);
    int32_t (*param_str)(const amg_params *p, const char *name,
                         const char **out);

    /* ---- diagnostics ---- */

    /* Log a line, attributed to the calling strategy by the host. */
    void (*log)(amg_ctx *ctx, int32_t level, const char *fmt, ...)
        AMG_SDK_PRINTF(3, 4);
    /* Record why a call fails and return status, so a plugin can write
     * `return host->fail(ctx, AMG_EUNSUPPORTED, "rank %d", n)`. The message
     * is lower-case, without a final full stop; the host adds the strategy
     * and tensor names. */
    int32_t (*fail)(amg_ctx *ctx, int32_t status, const char *fmt, ...)
        AMG_SDK_PRINTF(3, 4);

    /* ---- control ---- */

    /* Non-zero once the user asked to stop (SIGINT) or another worker
     * failed: return AMG_EABORTED soon. Cheap; poll in long loops. */
    int32_t (*should_abort)(amg_ctx *ctx);
    /* The cudaStream_t (as void *) to enqueue work on; NULL on the CPU. The
     * host synchronises before reading results. */
    void *(*cuda_stream)(amg_ctx *ctx);
    /* Optional host extension by versioned id ("amalgam.xxx/1"), or NULL. */
    const void *(*get_extension)(amg_ctx *ctx, const char *id);

    void *reserved[16];            /* NULL; appended members go here */
} amg_host_api;

/* Non-zero when api has member (it lies within struct_size and is set). */
#define AMG_HOST_HAS(api, member)                                             \
    (offsetof(amg_host_api, member) + sizeof((api)->member) <=                \
         (api)->struct_size &&                                                \
     (api)->member != NULL)

#ifdef __cplusplus
}
#endif
#endif /* AMALGAM_HOST_H */
