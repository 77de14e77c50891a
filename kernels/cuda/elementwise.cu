/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Elementwise f32 kernels: one thread per element in a grid-stride loop
 * with 64-bit indices, each element the elem.h function the CPU test
 * covers. A thread reads every input of its element before it writes
 * out's, so out may alias any input.
 */
#include "kernels_cuda.h"

static __global__ void k_fill(float *o, float v, uint64_t n)
{
    AMG_KCU_FOR_EACH(i, n)
        o[i] = v;
}

static __global__ void k_scale(float *o, float alpha, const float *x,
                               uint64_t n)
{
    AMG_KCU_FOR_EACH(i, n)
        o[i] = amg_kcu_scale(alpha, x[i]);
}

static __global__ void k_axpby(float *o, float alpha, const float *x,
                               float beta, const float *y, uint64_t n)
{
    AMG_KCU_FOR_EACH(i, n)
        o[i] = amg_kcu_axpby(alpha, x[i], beta, y[i]);
}

static __global__ void k_mul(float *o, const float *x, const float *y,
                             uint64_t n)
{
    AMG_KCU_FOR_EACH(i, n)
        o[i] = amg_kcu_mul(x[i], y[i]);
}

static __global__ void k_div(float *o, const float *x, const float *y,
                             uint64_t n)
{
    AMG_KCU_FOR_EACH(i, n)
        o[i] = amg_kcu_div(x[i], y[i]);
}

static __global__ void k_abs(float *o, const float *x, uint64_t n)
{
    AMG_KCU_FOR_EACH(i, n)
        o[i] = amg_kcu_abs(x[i]);
}

static __global__ void k_sign(float *o, const float *x, uint64_t n)
{
    AMG_KCU_FOR_EACH(i, n)
        o[i] = amg_kcu_sign(x[i]);
}

/* The inputs live in the parameter space (__grid_constant__: their
 * address is taken without a per-thread copy). */
static __global__ void k_weighted_sum(float *o, const __grid_constant__
                                      amg_kcu_inputs in, uint64_t n)
{
    AMG_KCU_FOR_EACH(i, n)
        o[i] = amg_kcu_weighted_sum(in.x, in.w, in.n, i);
}

static float *F(const amg_tensor *t)
{
    return (float *)amg_tensor_data(t);
}

/* begin, then out and x as F32 with out's element count */
static int begin_unary(amg_ctx *ctx, const char *kernel,
                       const amg_tensor *out, const amg_tensor *x,
                       cudaStream_t *s)
{
    int rc = amg__kcu_begin(ctx, kernel, s);

    if (!rc)
        rc = amg__kcu_arg(ctx, kernel, "out", out, AMG__KCU_F32);
    if (!rc)
        rc = amg__kcu_arg_like(ctx, kernel, "x", x, AMG__KCU_F32, "out",
                               out);
    return rc;
}

int32_t amg__kcu_fill(amg_ctx *ctx, amg_tensor *out, float v)
{
    cudaStream_t s;
    uint64_t n;
    int rc = amg__kcu_begin(ctx, "fill", &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, "fill", "out", out, AMG__KCU_F32);
    if (rc)
        return rc;
    n = amg_tensor_numel(out);
    AMG_KCU_LAUNCH(ctx, "fill", n, s, k_fill, F(out), v, n);
}

int32_t amg__kcu_scale(amg_ctx *ctx, amg_tensor *out, float alpha,
                       const amg_tensor *x)
{
    cudaStream_t s;
    uint64_t n;
    int rc = begin_unary(ctx, "scale", out, x, &s);

    if (rc)
        return rc;
    n = amg_tensor_numel(out);
    AMG_KCU_LAUNCH(ctx, "scale", n, s, k_scale, F(out), alpha, F(x), n);
}

/* begin, then out, x and y as F32 with out's element count */
static int begin_binary(amg_ctx *ctx, const char *kernel,
                        const amg_tensor *out, const amg_tensor *x,
                        const amg_tensor *y, cudaStream_t *s)
{
    int rc = begin_unary(ctx, kernel, out, x, s);

    if (!rc)
        rc = amg__kcu_arg_like(ctx, kernel, "y", y, AMG__KCU_F32, "out",
                               out);
    return rc;
}

int32_t amg__kcu_axpby(amg_ctx *ctx, amg_tensor *out, float alpha,
                       const amg_tensor *x, float beta, const amg_tensor *y)
{
    cudaStream_t s;
    uint64_t n;
    int rc = begin_binary(ctx, "axpby", out, x, y, &s);

    if (rc)
        return rc;
    n = amg_tensor_numel(out);
    AMG_KCU_LAUNCH(ctx, "axpby", n, s, k_axpby, F(out), alpha, F(x), beta,
                   F(y), n);
}

/* out = fn(x, y) elementwise, after begin_binary */
static int32_t binary(amg_ctx *ctx, const char *kernel, amg_tensor *out,
                      const amg_tensor *x, const amg_tensor *y,
                      void (*fn)(float *, const float *, const float *,
                                 uint64_t))
{
    cudaStream_t s;
    uint64_t n;
    int rc = begin_binary(ctx, kernel, out, x, y, &s);

    if (rc)
        return rc;
    n = amg_tensor_numel(out);
    AMG_KCU_LAUNCH(ctx, kernel, n, s, fn, F(out), F(x), F(y), n);
}

int32_t amg__kcu_mul(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x,
                     const amg_tensor *y)
{
    return binary(ctx, "mul", out, x, y, k_mul);
}

int32_t amg__kcu_div(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x,
                     const amg_tensor *y)
{
    return binary(ctx, "div", out, x, y, k_div);
}

/* out = fn(x) elementwise, after begin_unary */
static int32_t unary(amg_ctx *ctx, const char *kernel, amg_tensor *out,
                     const amg_tensor *x,
                     void (*fn)(float *, const float *, uint64_t))
{
    cudaStream_t s;
    uint64_t n;
    int rc = begin_unary(ctx, kernel, out, x, &s);

    if (rc)
        return rc;
    n = amg_tensor_numel(out);
    AMG_KCU_LAUNCH(ctx, kernel, n, s, fn, F(out), F(x), n);
}

int32_t amg__kcu_abs(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x)
{
    return unary(ctx, "abs", out, x, k_abs);
}

int32_t amg__kcu_sign(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x)
{
    return unary(ctx, "sign", out, x, k_sign);
}

int32_t amg__kcu_weighted_sum(amg_ctx *ctx, amg_tensor *out,
                              const amg_tensor *const *x, const float *w,
                              uint32_t n)
{
    amg_kcu_inputs in;
    cudaStream_t s;
    uint64_t numel;
    int rc = amg__kcu_begin(ctx, "weighted_sum", &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, "weighted_sum", "out", out, AMG__KCU_F32);
    if (!rc)
        rc = amg__kcu_args_like(ctx, "weighted_sum", "x", x, n, w, 1, "out",
                                out);
    if (!rc)
        rc = amg__kcu_inputs(ctx, "weighted_sum", x, w, n, &in);
    if (rc)
        return rc;
    numel = amg_tensor_numel(out);
    AMG_KCU_LAUNCH(ctx, "weighted_sum", numel, s, k_weighted_sum, F(out), in,
                   numel);
}
