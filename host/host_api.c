/* SPDX-License-Identifier: Apache-2.0 */
/*
 * host_api.c - the services table every plugin receives (amalgam/host.h).
 *
 * CUDA tensors and the CUDA kernel table exist only in calls that run on a
 * device (ctx->dev set by the executor for --device cuda); anywhere else a
 * CUDA device is answered with AMG_EDEVICE (tensors) or NULL (kernel
 * tables), which is what the SDK tells strategies to expect when a device
 * is absent. CUDA temporaries are device memory counted against the run's
 * budget (device.c).
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "device.h"
#include "kernels_cpu.h"
#include "params.h"
#include "plugin_loader.h"
#include "tensor_mem.h"

#define DEFAULT_ALIGN 16u

static void *api_mem_alloc(amg_ctx *ctx, size_t bytes, size_t align)
{
    size_t size;

    (void)ctx;
    if (align == 0)
        align = DEFAULT_ALIGN;
    if (align & (align - 1))
        return NULL;
    /* aligned_alloc wants a multiple of the alignment, and a zero-byte
     * request would be allowed to return NULL, which reads as out of memory */
    if (bytes > SIZE_MAX - (align - 1))
        return NULL;
    size = bytes ? (bytes + align - 1) / align * align : align;
    return aligned_alloc(align, size);
}

static void api_mem_free(amg_ctx *ctx, void *p)
{
    (void)ctx;
    free(p);
}

/* Memory the CPU reads and writes directly (pinned memory included). */
static int is_host(amg_device device)
{
    return device.type == AMG_DEVICE_CPU ||
           device.type == AMG_DEVICE_CUDA_HOST;
}

/* AMG_OK for the CPU, or for CUDA device memory of this call's device; the
 * failure recorded in ctx for anything else. */
static int need_device(amg_ctx *ctx, amg_device device, int host_ok)
{
    if (device.type == AMG_DEVICE_CPU || (host_ok && is_host(device)))
        return AMG_OK;
    if (device.type == AMG_DEVICE_CUDA_HOST && ctx && ctx->dev)
        return amg_ctx_fail(ctx, AMG_EDEVICE,
                            "temporaries are cpu or cuda tensors, not pinned "
                            "host (cuda_host) ones");
    if (device.type == AMG_DEVICE_CUDA && ctx && ctx->dev) {
        if (device.id == amg_device_ordinal(ctx->dev))
            return AMG_OK;
        return amg_ctx_fail(ctx, AMG_EDEVICE,
                            "cuda:%d is not the device of this run (cuda:%d)",
                            (int)device.id,
                            (int)amg_device_ordinal(ctx->dev));
    }
    if (device.type == AMG_DEVICE_CUDA || device.type == AMG_DEVICE_CUDA_HOST)
        return amg_ctx_fail(ctx, AMG_EDEVICE,
                            "cuda tensors need a device run (--device "
                            "cuda); this call runs on the cpu");
    return amg_ctx_fail(ctx, AMG_EDEVICE, "unknown device type %d",
                        (int)device.type);
}

/* Free a CUDA temporary: its device memory, then its handle. The run is
 * kept in the handle, since a ctx may be reset before it is released. */
static void free_device_temp(amg_ctx *ctx, amg_tensor *t)
{
    uint64_t bytes = amg_tensor_numel(t) * amg_dl_size(t->dl.dtype);

    amg_device_free(t->host_private, t->dl.data, (size_t)bytes,
                    ctx ? ctx->cuda_stream : NULL);
    amg_tensor_free(t);
}

/* A compact tensor of dtype and shape in the device memory of ctx's run,
 * untracked; free with free_device_temp. */
static int device_tensor(amg_ctx *ctx, amg_dl_dtype dtype, int32_t ndim,
                         const int64_t *shape, amg_tensor **out)
{
    amg_device device = { AMG_DEVICE_CUDA, amg_device_ordinal(ctx->dev) };
    uint64_t bytes;
    void *p = NULL;
    int rc;

    *out = NULL;
    if ((rc = amg_tensor_bytes(dtype, ndim, shape, &bytes, &ctx->err)) ||
        (rc = amg_device_alloc(ctx->dev, (size_t)bytes, ctx->cuda_stream, &p,
                               &ctx->err)))
        return rc;
    rc = amg_tensor_wrap_device(out, p, device, dtype, ndim, shape, NULL, 0,
                                &ctx->err);
    if (rc) {
        amg_device_free(ctx->dev, p, (size_t)bytes, ctx->cuda_stream);
        return rc;
    }
    (*out)->host_private = ctx->dev;
    return AMG_OK;
}

static int32_t api_tensor_new(amg_ctx *ctx, amg_dl_dtype dtype, int32_t ndim,
                              const int64_t *shape, amg_device device,
                              amg_tensor **out)
{
    amg_tensor *t = NULL;
    int rc;

    if (!ctx || !out)
        return AMG_EINVAL; /* nowhere to record why, nor to put it */
    *out = NULL;
    rc = need_device(ctx, device, 0);
    if (rc)
        return rc;
    if (device.type == AMG_DEVICE_CUDA) {
        rc = device_tensor(ctx, dtype, ndim, shape, &t);
        if (rc)
            return rc;
        rc = amg_ctx_track_fn(ctx, t, free_device_temp);
    } else {
        rc = amg_tensor_alloc(&t, dtype, ndim, shape, NULL, &ctx->err);
        if (rc)
            return rc;
        rc = amg_ctx_track(ctx, t);
    }
    if (rc)
        return rc;
    *out = t;
    return AMG_OK;
}

static int32_t api_tensor_new_like(amg_ctx *ctx, const amg_tensor *proto,
                                   amg_dl_dtype dtype, amg_tensor **out)
{
    int rc;

    if (!ctx || !out)
        return AMG_EINVAL;
    if (!proto) {
        *out = NULL;
        return amg_ctx_fail(ctx, AMG_EINVAL,
                            "tensor_new_like needs a prototype tensor");
    }
    rc = api_tensor_new(ctx, dtype, proto->dl.ndim, proto->dl.shape,
                        proto->dl.device, out);
    if (rc)
        return rc;
    /* RNG fills key on elem_offset, so a temporary for a row chunk must
     * sit where the chunk sits in the whole tensor */
    (*out)->elem_offset = proto->elem_offset;
    (*out)->full_numel = proto->full_numel;
    return AMG_OK;
}

static void api_tensor_release(amg_ctx *ctx, amg_tensor *t)
{
    amg_ctx_untrack_free(ctx, t);
}

/* One raw copy of bytes between host and device memory in the direction
 * the devices give, finished before it returns: the caller may free or
 * read the host side at once. */
static int raw_copy(amg_ctx *ctx, amg_tensor *dst, const amg_tensor *src,
                    size_t bytes)
{
    const amg_backend *be = amg_device_backend(ctx->dev);
    void *stream = ctx->cuda_stream;
    void *d = amg_tensor_data(dst);
    const void *s = amg_tensor_data(src);
    const char *dir;
    int rc;

    if (bytes == 0)
        return AMG_OK;
    if (is_host(src->dl.device)) {
        dir = "host to device";
        rc = be->copy_h2d(d, s, bytes, stream);
    } else if (is_host(dst->dl.device)) {
        dir = "device to host";
        rc = be->copy_d2h(d, s, bytes, stream);
    } else {
        dir = "device to device";
        rc = be->copy_d2d(d, s, bytes, stream);
    }
    if (!rc && (is_host(src->dl.device) || is_host(dst->dl.device)))
        rc = be->stream_sync(stream);
    if (rc)
        return amg_ctx_fail(ctx, rc, "tensor_copy: copying %zu bytes %s "
                            "failed: %s",
                            bytes, dir, be->error_string());
    return AMG_OK;
}

/* dst = src when a device is involved: convert on the source's side into
 * a temporary of dst's dtype (none when the dtypes match), then one raw
 * copy. Device to device converts in place with the device's table. */
static int cross_copy(amg_ctx *ctx, amg_tensor *dst, const amg_tensor *src)
{
    const amg_kernels *kd = amg_device_backend(ctx->dev)->kernels();
    uint64_t n = amg_tensor_numel(dst), ns = amg_tensor_numel(src);
    int src_host = is_host(src->dl.device);
    amg_tensor *tmp = NULL;
    int rc;

    if (n != ns)
        return amg_ctx_fail(ctx, AMG_EINVAL,
                            "tensor_copy: dst has %llu elements, src has "
                            "%llu",
                            (unsigned long long)n, (unsigned long long)ns);
    if (!amg_tensor_is_compact(dst) || !amg_tensor_is_compact(src))
        return amg_ctx_fail(ctx, AMG_EINVAL,
                            "tensor_copy: %s is not contiguous (compact "
                            "row-major required)",
                            amg_tensor_is_compact(dst) ? "src" : "dst");
    if (n > 0 && (!dst->dl.data || !src->dl.data))
        return amg_ctx_fail(ctx, AMG_EINVAL, "tensor_copy: %s has no data",
                            dst->dl.data ? "src" : "dst");
    if (!src_host && !is_host(dst->dl.device) &&
        !amg_dl_eq(dst->dl.dtype, src->dl.dtype))
        return kd->convert(ctx, dst, src);
    if (amg_dl_eq(dst->dl.dtype, src->dl.dtype))
        return raw_copy(ctx, dst, src, (size_t)(n * amg_dl_size(src->dl.dtype)));
    if (src_host) {
        rc = amg_tensor_alloc(&tmp, dst->dl.dtype, dst->dl.ndim,
                              dst->dl.shape, NULL, &ctx->err);
        if (!rc)
            rc = amg_kernels_cpu()->convert(ctx, tmp, src);
    } else {
        rc = device_tensor(ctx, dst->dl.dtype, dst->dl.ndim, dst->dl.shape,
                           &tmp);
        if (!rc)
            rc = kd->convert(ctx, tmp, src);
    }
    if (!rc)
        rc = raw_copy(ctx, dst, tmp, (size_t)(n * amg_dl_size(dst->dl.dtype)));
    if (tmp && src_host)
        amg_tensor_free(tmp);
    else if (tmp)
        free_device_temp(ctx, tmp);
    return rc;
}

static int32_t api_tensor_copy(amg_ctx *ctx, amg_tensor *dst,
                               const amg_tensor *src)
{
    int rc;

    if (!dst || !src)
        return amg_ctx_fail(ctx, AMG_EINVAL, "tensor_copy needs two tensors");
    rc = need_device(ctx, dst->dl.device, 1);
    if (!rc)
        rc = need_device(ctx, src->dl.device, 1);
    if (rc)
        return rc;
    if (is_host(dst->dl.device) && is_host(src->dl.device))
        return amg_kernels_cpu()->convert(ctx, dst, src);
    return cross_copy(ctx, dst, src);
}

static const amg_kernels *api_kernels(amg_ctx *ctx, amg_device device)
{
    if (device.type == AMG_DEVICE_CPU)
        return amg_kernels_cpu();
    if (device.type == AMG_DEVICE_CUDA && ctx && ctx->dev &&
        device.id == amg_device_ordinal(ctx->dev))
        return amg_device_backend(ctx->dev)->kernels();
    return NULL;
}

/* The value of name in p when it has type; getters record nothing, since
 * they have no ctx: the status alone says what went wrong. */
static int param_value(const amg_params *p, const char *name, int32_t type,
                       const amg_param_value **out)
{
    int i;

    if (!p || !name || !out)
        return AMG_EINVAL;
    i = amg_params_index(p, name);
    if (i < 0)
        return AMG_ENOTFOUND;
    if (p->values[i].type != type)
        return AMG_EINVAL;
    /* another scope's entry, or a string without a default: no value in
     * this view, which is "not found" to the plugin */
    if (!p->values[i].is_set)
        return AMG_ENOTFOUND;
    *out = &p->values[i];
    return AMG_OK;
}

static int32_t api_param_f64(const amg_params *p, const char *name,
                             double *out)
{
    const amg_param_value *v;
    int rc = param_value(p, name, AMG_PARAM_F64, &v);

    if (!rc)
        *out = v->f;
    return rc;
}

static int32_t api_param_i64(const amg_params *p, const char *name,
                             int64_t *out)
{
    const amg_param_value *v;
    int rc = param_value(p, name, AMG_PARAM_I64, &v);

    if (!rc)
        *out = v->i;
    return rc;
}

static int32_t api_param_bool(const amg_params *p, const char *name,
                              int32_t *out)
{
    const amg_param_value *v;
    int rc = param_value(p, name, AMG_PARAM_BOOL, &v);

    if (!rc)
        *out = (int32_t)v->i;
    return rc;
}

static int32_t api_param_str(const amg_params *p, const char *name,
                             const char **out)
{
    const amg_param_value *v;
    int rc = param_value(p, name, AMG_PARAM_STR, &v);

    if (!rc)
        *out = v->s;
    return rc;
}

/* INFO and DEBUG lines only on request, so plugins may log freely. */
static int log_enabled(int32_t level)
{
    const char *env;

    if (level <= AMG_LOG_WARN)
        return 1;
    env = getenv("AMALGAM_LOG");
    if (!env)
        return 0;
    if (strcmp(env, "debug") == 0)
        return 1;
    return strcmp(env, "info") == 0 && level == AMG_LOG_INFO;
}

static void api_log(amg_ctx *ctx, int32_t level, const char *fmt, ...)
    AMG_SDK_PRINTF(3, 4);
static void api_log(amg_ctx *ctx, int32_t level, const char *fmt, ...)
{
    char msg[AMG_ERR_MSG_MAX];
    va_list ap;

    if (!log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* one fprintf per line keeps lines from concurrent workers whole */
    fprintf(stderr, "amalgam: %s: %s\n", ctx && ctx->who ? ctx->who : "plugin",
            msg);
}

static int32_t api_fail(amg_ctx *ctx, int32_t status, const char *fmt, ...)
    AMG_SDK_PRINTF(3, 4);
static int32_t api_fail(amg_ctx *ctx, int32_t status, const char *fmt, ...)
{
    char msg[AMG_ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return amg_ctx_fail(ctx, status, "%s", msg);
}

static int32_t api_should_abort(amg_ctx *ctx)
{
    if (!ctx)
        return 0;
    return (ctx->abort_flag && *ctx->abort_flag) ||
           (ctx->stop && atomic_load(ctx->stop));
}

static void *api_cuda_stream(amg_ctx *ctx)
{
    return ctx ? ctx->cuda_stream : NULL;
}

static const void *api_get_extension(amg_ctx *ctx, const char *id)
{
    (void)ctx;
    (void)id;
    return NULL;
}

static const amg_host_api host_api = {
    .struct_size = (uint32_t)sizeof(amg_host_api),
    .abi_major = AMG_ABI_MAJOR,
    .abi_minor = AMG_ABI_MINOR,
    .host_name = "amalgam",
    .host_version = AMG_VERSION_STRING,
    .mem_alloc = api_mem_alloc,
    .mem_free = api_mem_free,
    .tensor_new = api_tensor_new,
    .tensor_new_like = api_tensor_new_like,
    .tensor_release = api_tensor_release,
    .tensor_copy = api_tensor_copy,
    .kernels = api_kernels,
    .param_f64 = api_param_f64,
    .param_i64 = api_param_i64,
    .param_bool = api_param_bool,
    .param_str = api_param_str,
    .log = api_log,
    .fail = api_fail,
    .should_abort = api_should_abort,
    .cuda_stream = api_cuda_stream,
    .get_extension = api_get_extension,
};

const amg_host_api *amg_host_api_get(void)
{
    return &host_api;
}
