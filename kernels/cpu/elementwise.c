/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Elementwise f32 kernels. Every result is the f32 expression kernels.h
 * writes, evaluated operation by operation with round-to-nearest-even: the
 * build is ISO C11 (-std=c11), where GCC and Clang do not contract a*b+c
 * into an FMA, so the CUDA table matches by using __fmul_rn/__fadd_rn (nvcc
 * contracts by default).
 */
#include "config.h"

#include <math.h>

#include "ctx.h"
#include "fpconv.h"
#include "kernels_cpu.h"
#include "simd.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize")
#endif

/* Elements per block in weighted_sum: the accumulators stay in L1. */
#define WS_BLOCK 1024

/* The loops, in the forms of simd.h. out may be x or y (exact aliasing
 * only), which the vectoriser checks for. */
AMG_SIMD_FN(void, scale_loop,
            (float *o, float alpha, const float *a, uint64_t n), {
    uint64_t i;

    for (i = 0; i < n; i++)
        o[i] = alpha * a[i];
})

AMG_SIMD_FN(void, axpby_loop,
            (float *o, float alpha, const float *a, float beta,
             const float *b, uint64_t n), {
    uint64_t i;

    for (i = 0; i < n; i++) {
        /* both products rounded to f32, then the sum: no FMA */
        float p = alpha * a[i];
        float q = beta * b[i];
        o[i] = p + q;
    }
})

AMG_SIMD_FN(void, mul_loop,
            (float *o, const float *a, const float *b, uint64_t n), {
    uint64_t i;

    for (i = 0; i < n; i++)
        o[i] = a[i] * b[i];
})

AMG_SIMD_FN(void, div_loop,
            (float *o, const float *a, const float *b, uint64_t n), {
    uint64_t i;

    for (i = 0; i < n; i++)
        o[i] = a[i] / b[i];
})

/* acc[i] = acc[i] + w * a[i], the product rounded first */
AMG_SIMD_FN(void, acc_loop,
            (float *acc, float w, const float *a, uint64_t n), {
    uint64_t i;

    for (i = 0; i < n; i++) {
        float p = w * a[i];
        acc[i] = acc[i] + p;
    }
})

AMG_SIMD_FN(void, fill_loop, (float *o, float v, uint64_t n), {
    uint64_t i;

    for (i = 0; i < n; i++)
        o[i] = v;
})

AMG_SIMD_FN(void, abs_loop, (float *o, const float *a, uint64_t n), {
    uint64_t i;

    for (i = 0; i < n; i++)
        o[i] = fabsf(a[i]);
})

/* +-1 by the sign bit for a non-zero number; +0 for +-0 and NaN. On the
 * bit patterns, as float compares keep the loop scalar. */
AMG_SIMD_FN(void, sign_loop, (float *o, const float *a, uint64_t n), {
    uint64_t i;

    for (i = 0; i < n; i++) {
        uint32_t b = amg_f32_bits(a[i]);
        uint32_t nz = ((b & 0x7FFFFFFFu) - 1u) < 0x7F800000u;

        o[i] = amg_bits_f32((0x3F800000u | (b & 0x80000000u)) & (0u - nz));
    }
})

void amg__kcpu_axpby_n(float *o, float alpha, const float *a, float beta,
                       const float *b, uint64_t n)
{
    AMG_SIMD(axpby_loop)(o, alpha, a, beta, b, n);
}

int32_t amg__kcpu_fill(amg_ctx *ctx, amg_tensor *out, float v)
{
    float *o;
    uint64_t n;
    int rc = amg__kcpu_arg(ctx, "fill", "out", out, AMG__KCPU_F32);

    if (rc)
        return rc;
    o = amg_tensor_data(out);
    n = amg_tensor_numel(out);
    AMG_SIMD(fill_loop)(o, v, n);
    return AMG_OK;
}

/* out and x checked as F32 with out's element count. */
static int check_unary(amg_ctx *ctx, const char *kernel, const amg_tensor *out,
                       const amg_tensor *x)
{
    int rc = amg__kcpu_arg(ctx, kernel, "out", out, AMG__KCPU_F32);

    if (!rc)
        rc = amg__kcpu_arg_like(ctx, kernel, "x", x, AMG__KCPU_F32, "out",
                                out);
    return rc;
}

int32_t amg__kcpu_scale(amg_ctx *ctx, amg_tensor *out, float alpha,
                        const amg_tensor *x)
{
    const float *a;
    float *o;
    uint64_t n;
    int rc = check_unary(ctx, "scale", out, x);

    if (rc)
        return rc;
    a = amg_tensor_data(x);
    o = amg_tensor_data(out);
    n = amg_tensor_numel(out);
    AMG_SIMD(scale_loop)(o, alpha, a, n);
    return AMG_OK;
}

/* out, x and y checked as F32 with out's element count. */
static int check_binary(amg_ctx *ctx, const char *kernel, const amg_tensor *out,
                        const amg_tensor *x, const amg_tensor *y)
{
    int rc = check_unary(ctx, kernel, out, x);

    if (!rc)
        rc = amg__kcpu_arg_like(ctx, kernel, "y", y, AMG__KCPU_F32, "out",
                                out);
    return rc;
}

int32_t amg__kcpu_axpby(amg_ctx *ctx, amg_tensor *out, float alpha,
                        const amg_tensor *x, float beta, const amg_tensor *y)
{
    const float *a, *b;
    float *o;
    uint64_t n;
    int rc = check_binary(ctx, "axpby", out, x, y);

    if (rc)
        return rc;
    a = amg_tensor_data(x);
    b = amg_tensor_data(y);
    o = amg_tensor_data(out);
    n = amg_tensor_numel(out);
    amg__kcpu_axpby_n(o, alpha, a, beta, b, n);
    return AMG_OK;
}

int32_t amg__kcpu_mul(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x,
                      const amg_tensor *y)
{
    const float *a, *b;
    float *o;
    uint64_t n;
    int rc = check_binary(ctx, "mul", out, x, y);

    if (rc)
        return rc;
    a = amg_tensor_data(x);
    b = amg_tensor_data(y);
    o = amg_tensor_data(out);
    n = amg_tensor_numel(out);
    AMG_SIMD(mul_loop)(o, a, b, n);
    return AMG_OK;
}

int32_t amg__kcpu_div(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x,
                      const amg_tensor *y)
{
    const float *a, *b;
    float *o;
    uint64_t n;
    int rc = check_binary(ctx, "div", out, x, y);

    if (rc)
        return rc;
    a = amg_tensor_data(x);
    b = amg_tensor_data(y);
    o = amg_tensor_data(out);
    n = amg_tensor_numel(out);
    AMG_SIMD(div_loop)(o, a, b, n);
    return AMG_OK;
}

int32_t amg__kcpu_abs(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x)
{
    const float *a;
    float *o;
    uint64_t n;
    int rc = check_unary(ctx, "abs", out, x);

    if (rc)
        return rc;
    a = amg_tensor_data(x);
    o = amg_tensor_data(out);
    n = amg_tensor_numel(out);
    AMG_SIMD(abs_loop)(o, a, n);
    return AMG_OK;
}

int32_t amg__kcpu_sign(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x)
{
    const float *a;
    float *o;
    uint64_t n;
    int rc = check_unary(ctx, "sign", out, x);

    if (rc)
        return rc;
    a = amg_tensor_data(x);
    o = amg_tensor_data(out);
    n = amg_tensor_numel(out);
    AMG_SIMD(sign_loop)(o, a, n);
    return AMG_OK;
}

/*
 * Per element: acc = +0.0f, then acc = acc + w[j] * x[j][i] for j = 0..n-1
 * (product rounded, then the sum). Blocks of elements keep the inner loop
 * over one input contiguous; every x[j] block is read before out's block is
 * written, so out may alias any x[j].
 */
int32_t amg__kcpu_weighted_sum(amg_ctx *ctx, amg_tensor *out,
                               const amg_tensor *const *x, const float *w,
                               uint32_t n)
{
    float acc[WS_BLOCK];
    float *o;
    uint64_t i, len, start, total;
    uint32_t j;
    int rc = amg__kcpu_arg(ctx, "weighted_sum", "out", out, AMG__KCPU_F32);

    if (!rc)
        rc = amg__kcpu_args_like(ctx, "weighted_sum", "x", x, n, w, 1, "out",
                                 out);
    if (rc)
        return rc;
    o = amg_tensor_data(out);
    total = amg_tensor_numel(out);
    for (start = 0; start < total; start += len) {
        len = total - start < WS_BLOCK ? total - start : WS_BLOCK;
        for (i = 0; i < len; i++)
            acc[i] = 0.0f;
        for (j = 0; j < n; j++) {
            const float *a = (const float *)amg_tensor_data(x[j]) + start;

            AMG_SIMD(acc_loop)(acc, w[j], a, len);
        }
        for (i = 0; i < len; i++)
            o[start + i] = acc[i];
    }
    return AMG_OK;
}
