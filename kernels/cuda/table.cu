/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CUDA kernel table, the argument checks its entries share (in the
 * CPU table's words, kernels/cpu/table.c, so a strategy gets the same
 * message for the same mistake on either device), and the plumbing every
 * entry uses: device binding, stream, scratch, launch and copy checks.
 */
#include "kernels_cuda.h"
#include "../argcheck.h"

#include <stdio.h>
#include <string.h>

const amg_host_api *amg__kcu_host;
int amg__kcu_ordinal = -1;
int amg__kcu_sm_count = 1;

static amg_kernels make_table(void)
{
    amg_kernels t;

    memset(&t, 0, sizeof(t));
    t.struct_size = (uint32_t)sizeof(amg_kernels);
    t.device_type = AMG_DEVICE_CUDA;
    t.convert = amg__kcu_convert;
    t.fill = amg__kcu_fill;
    t.scale = amg__kcu_scale;
    t.axpby = amg__kcu_axpby;
    t.mul = amg__kcu_mul;
    t.div = amg__kcu_div;
    t.abs = amg__kcu_abs;
    t.sign = amg__kcu_sign;
    t.weighted_sum = amg__kcu_weighted_sum;
    t.mask_apply = amg__kcu_mask_apply;
    t.where = amg__kcu_where;
    t.topk_mask = amg__kcu_topk_mask;
    t.abs_histogram = amg__kcu_abs_histogram;
    t.threshold_mask = amg__kcu_threshold_mask;
    t.sign_elect = amg__kcu_sign_elect;
    t.disjoint_merge = amg__kcu_disjoint_merge;
    t.sum = amg__kcu_sum;
    t.dot = amg__kcu_dot;
    t.norm_l2 = amg__kcu_norm_l2;
    t.norm_l1 = amg__kcu_norm_l1;
    t.row_dot = amg__kcu_row_dot;
    t.rng_uniform = amg__kcu_rng_uniform;
    t.rng_bernoulli = amg__kcu_rng_bernoulli;
    t.row_abs_rank = amg__kcu_row_abs_rank;
    t.row_abs_sum = amg__kcu_row_abs_sum;
    t.row_axpby = amg__kcu_row_axpby;
    t.weighted_quotient = amg__kcu_weighted_quotient;
    return t;
}

static const amg_kernels cuda_table = make_table();

const amg_kernels *amg__kcu_table(void)
{
    return &cuda_table;
}

/* ---- plumbing ---- */

cudaError_t amg__kcu_bind(void)
{
    /* the ordinal this thread last made current; cudaSetDevice only on a
     * thread's first call */
    static thread_local int bound = -1;
    cudaError_t e;

    /* no device open (never, or closed): a fresh thread would otherwise
     * pass with whatever device is current in it */
    if (amg__kcu_ordinal < 0)
        return cudaErrorInvalidDevice;
    if (bound == amg__kcu_ordinal)
        return cudaSuccess;
    e = cudaSetDevice(amg__kcu_ordinal);
    if (e == cudaSuccess)
        bound = amg__kcu_ordinal;
    return e;
}

unsigned amg__kcu_blocks(uint64_t n)
{
    /* 16 blocks of 256 threads per multiprocessor keep every one busy
     * (a grid-stride loop does the rest); small tensors take fewer */
    uint64_t need = (n + AMG_KCU_THREADS - 1) / AMG_KCU_THREADS;
    uint64_t fill = (uint64_t)amg__kcu_sm_count * 16u;

    return (unsigned)(need < fill ? need : fill);
}

int amg__kcu_cuda_fail(amg_ctx *ctx, const char *kernel, const char *what,
                       cudaError_t e)
{
    (void)cudaGetLastError();
    return amg__kcu_host->fail(ctx, e == cudaErrorMemoryAllocation
                                        ? AMG_ENOMEM : AMG_EDEVICE,
                               "%s: %s: %s", kernel, what,
                               cudaGetErrorString(e));
}

int amg__kcu_begin(amg_ctx *ctx, const char *kernel, cudaStream_t *stream)
{
    cudaError_t e = amg__kcu_bind();

    if (e != cudaSuccess)
        return amg__kcu_cuda_fail(ctx, kernel, "cannot select the device", e);
    *stream = (cudaStream_t)amg__kcu_host->cuda_stream(ctx);
    return AMG_OK;
}

void amg__kcu_prelaunch(void)
{
    (void)cudaGetLastError();
}

int amg__kcu_launched(amg_ctx *ctx, const char *kernel)
{
    cudaError_t e = cudaGetLastError();

    if (e != cudaSuccess)
        return amg__kcu_cuda_fail(ctx, kernel, "kernel launch failed", e);
    return AMG_OK;
}

int amg__kcu_scratch(amg_ctx *ctx, const char *kernel, size_t bytes,
                     cudaStream_t stream, void **out)
{
    cudaError_t e = cudaMallocAsync(out, bytes, stream);
    char what[96];

    if (e == cudaSuccess)
        return AMG_OK;
    *out = NULL;
    snprintf(what, sizeof(what), "cannot allocate %llu bytes of device "
             "scratch", (unsigned long long)bytes);
    return amg__kcu_cuda_fail(ctx, kernel, what, e);
}

void amg__kcu_scratch_free(void *p, cudaStream_t stream)
{
    if (p)
        (void)cudaFreeAsync(p, stream);
}

int amg__kcu_to_host(amg_ctx *ctx, const char *kernel, void *dst,
                     const void *src, size_t bytes, cudaStream_t stream)
{
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost,
                                    stream);

    if (e != cudaSuccess)
        return amg__kcu_cuda_fail(ctx, kernel, "copy to the host failed", e);
    e = cudaStreamSynchronize(stream);
    if (e != cudaSuccess)
        return amg__kcu_cuda_fail(ctx, kernel, "device work failed", e);
    return AMG_OK;
}

int amg__kcu_to_device(amg_ctx *ctx, const char *kernel, void *dst,
                       const void *src, size_t bytes, cudaStream_t stream)
{
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice,
                                    stream);

    if (e != cudaSuccess)
        return amg__kcu_cuda_fail(ctx, kernel, "copy to the device failed",
                                  e);
    /* the caller frees src when the entry returns; a copy from page-locked
     * memory (or pageable memory under HMM) is still reading it then, and
     * CUDA promises nothing more for pageable memory either */
    e = cudaStreamSynchronize(stream);
    if (e != cudaSuccess)
        return amg__kcu_cuda_fail(ctx, kernel, "device work failed", e);
    return AMG_OK;
}

/* ---- argument checks ---- */

/* the kinds are amg_argkind's, so one cast serves */
static_assert(AMG__KCU_F32 == (int)AMG_ARGKIND_F32 &&
                  AMG__KCU_MASK == (int)AMG_ARGKIND_MASK &&
                  AMG__KCU_ANY == (int)AMG_ARGKIND_ANY,
              "amg__kcu_kind differs from amg_argkind");

int amg__kcu_arg(amg_ctx *ctx, const char *kernel, const char *what,
                 const amg_tensor *t, enum amg__kcu_kind kind)
{
    const amg_host_api *h = amg__kcu_host;
    size_t esize;
    int rc;

    if (!t)
        return h->fail(ctx, AMG_EINVAL, "%s: %s is NULL", kernel, what);
    if (t->dl.device.type != AMG_DEVICE_CUDA)
        return h->fail(ctx, AMG_EINVAL,
                       "%s: %s is on device type %d, not in device memory",
                       kernel, what, (int)t->dl.device.type);
    if (t->dl.device.id != amg__kcu_ordinal)
        return h->fail(ctx, AMG_EINVAL,
                       "%s: %s is on cuda:%d, the kernels run on cuda:%d",
                       kernel, what, (int)t->dl.device.id, amg__kcu_ordinal);
    rc = amg_argcheck_layout(h->fail, ctx, kernel, what, t,
                             (enum amg_argkind)kind);
    if (rc)
        return rc;
    /* the kernels load whole elements: a misaligned one would fault */
    esize = amg_dl_size(t->dl.dtype);
    if ((uintptr_t)amg_tensor_data(t) % esize != 0)
        return h->fail(ctx, AMG_EINVAL,
                       "%s: %s is not aligned to its %u-byte elements",
                       kernel, what, (unsigned)esize);
    return AMG_OK;
}

int amg__kcu_arg_like(amg_ctx *ctx, const char *kernel, const char *what,
                      const amg_tensor *t, enum amg__kcu_kind kind,
                      const char *ref_what, const amg_tensor *ref)
{
    int rc = amg__kcu_arg(ctx, kernel, what, t, kind);

    if (rc)
        return rc;
    return amg_argcheck_numel(amg__kcu_host->fail, ctx, kernel, what, t,
                              ref_what, ref);
}

int amg__kcu_args_like(amg_ctx *ctx, const char *kernel, const char *name,
                       const amg_tensor *const *x, uint32_t n,
                       const float *w, int need_w, const char *ref_what,
                       const amg_tensor *ref)
{
    char what[64];
    uint32_t j;
    int rc = amg_argcheck_array(amg__kcu_host->fail, ctx, kernel, name, x, n,
                                w, need_w);

    for (j = 0; rc == AMG_OK && j < n; j++) {
        snprintf(what, sizeof(what), "%s[%u]", name, j);
        rc = amg__kcu_arg_like(ctx, kernel, what, x[j], AMG__KCU_F32,
                               ref_what, ref);
    }
    return rc;
}

int amg__kcu_check_out(amg_ctx *ctx, const char *kernel, const void *out)
{
    if (!out)
        return amg__kcu_host->fail(ctx, AMG_EINVAL, "%s: out is NULL",
                                   kernel);
    return AMG_OK;
}

uint64_t amg__kcu_rows(const amg_tensor *t)
{
    return t->dl.ndim > 1 ? (uint64_t)t->dl.shape[0] : 1;
}

int amg__kcu_inputs(amg_ctx *ctx, const char *kernel,
                    const amg_tensor *const *x, const float *w, uint32_t n,
                    amg_kcu_inputs *in)
{
    uint32_t j;

    if (n > AMG_KCU_MAX_INPUTS)
        return amg__kcu_host->fail(ctx, AMG_EUNSUPPORTED,
                                   "%s: %u inputs; the CUDA kernels take at "
                                   "most %u", kernel, n, AMG_KCU_MAX_INPUTS);
    memset(in, 0, sizeof(*in));
    for (j = 0; j < n; j++) {
        in->x[j] = (const float *)amg_tensor_data(x[j]);
        in->w[j] = w ? w[j] : 0.0f;
    }
    in->n = n;
    return AMG_OK;
}
