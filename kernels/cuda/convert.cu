/* SPDX-License-Identifier: Apache-2.0 */
/*
 * convert on the device: every dtype pair the CPU table converts, each
 * element through amg_kcu_convert (elem.h), which takes the path and the
 * roundings kernels/cpu/convert.c takes. The same dtype is a byte copy,
 * as on the CPU (memmove there; a bounce through scratch here when the
 * two overlap, since device copies must not).
 */
#include "kernels_cuda.h"

static __global__ void k_convert(void *dst, amg_dtype to, unsigned to_size,
                                 const void *src, amg_dtype from,
                                 unsigned from_size, uint64_t n)
{
    AMG_KCU_FOR_EACH(i, n) {
        uint64_t v = amg_kcu_load(src, i, from_size);

        amg_kcu_store(dst, i, to_size, amg_kcu_convert(v, from, to));
    }
}

static int overlap(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen && blen && a < b + blen && b < a + alen;
}

static int32_t copy_same(amg_ctx *ctx, char *o, const char *src,
                         size_t bytes, cudaStream_t s)
{
    void *tmp = NULL;
    cudaError_t e;
    int rc;

    if (bytes == 0 || o == src)
        return AMG_OK;
    if (!overlap(o, bytes, src, bytes)) {
        e = cudaMemcpyAsync(o, src, bytes, cudaMemcpyDeviceToDevice, s);
        return e == cudaSuccess ? AMG_OK
                                : amg__kcu_cuda_fail(ctx, "convert",
                                                     "device copy failed", e);
    }
    rc = amg__kcu_scratch(ctx, "convert", bytes, s, &tmp);
    if (rc)
        return rc;
    e = cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, s);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(o, tmp, bytes, cudaMemcpyDeviceToDevice, s);
    amg__kcu_scratch_free(tmp, s);
    return e == cudaSuccess ? AMG_OK
                            : amg__kcu_cuda_fail(ctx, "convert",
                                                 "device copy failed", e);
}

int32_t amg__kcu_convert(amg_ctx *ctx, amg_tensor *dst,
                         const amg_tensor *src)
{
    amg_dtype to = AMG_DT_F32, from = AMG_DT_F32;
    unsigned so, ss;
    cudaStream_t s;
    uint64_t n;
    char *o;
    const char *in;
    int rc = amg__kcu_begin(ctx, "convert", &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, "convert", "dst", dst, AMG__KCU_ANY);
    if (!rc)
        rc = amg__kcu_arg_like(ctx, "convert", "src", src, AMG__KCU_ANY,
                               "dst", dst);
    if (rc)
        return rc;
    amg_dtype_from_dl(dst->dl.dtype, &to);
    amg_dtype_from_dl(src->dl.dtype, &from);
    so = (unsigned)amg_dtype_size(to);
    ss = (unsigned)amg_dtype_size(from);
    o = (char *)amg_tensor_data(dst);
    in = (const char *)amg_tensor_data(src);
    n = amg_tensor_numel(dst);
    if (to == from)
        return copy_same(ctx, o, in, (size_t)n * so, s);
    if (overlap(o, (size_t)n * so, in, (size_t)n * ss))
        return amg__kcu_host->fail(ctx, AMG_EINVAL,
                                   "convert: dst overlaps src and their "
                                   "dtypes differ (%s, %s)",
                                   amg_dtype_torch_name(to),
                                   amg_dtype_torch_name(from));
    AMG_KCU_LAUNCH(ctx, "convert", n, s, k_convert, o, to, so, in, from, ss,
                   n);
}
