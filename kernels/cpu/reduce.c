/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reductions over f32 tensors, accumulated in f64 one element at a time in
 * index order (i = 0, 1, ..., row by row for row_dot). Products of two f32
 * values are exact in f64, so the order of the additions is the only
 * rounding that varies between implementations; fixing it makes every
 * result reproducible, and a device port matches bit for bit by summing in
 * the same order (or documents its own order beside its table).
 */
#include "config.h"

#include <math.h>

#include "ctx.h"
#include "kernels_cpu.h"
#include "simd.h"

/* Rows row_dot sums at once: each row is still its own chain in column
 * order, and eight chains side by side hide the add's latency. */
#define DOT_LANES 8u

/* x (F32), y like x when the kernel takes one, and the host result. */
static int check_args(amg_ctx *ctx, const char *kernel, const amg_tensor *x,
                      const amg_tensor *y, int has_y, const double *out)
{
    int rc = amg__kcpu_arg(ctx, kernel, "x", x, AMG__KCPU_F32);

    if (!rc && has_y)
        rc = amg__kcpu_arg_like(ctx, kernel, "y", y, AMG__KCPU_F32, "x", x);
    if (!rc && !out)
        rc = amg_ctx_fail(ctx, AMG_EINVAL, "%s: out is NULL", kernel);
    return rc;
}

int32_t amg__kcpu_sum(amg_ctx *ctx, const amg_tensor *x, double *out)
{
    const float *a;
    double acc = 0.0;
    uint64_t i, n;
    int rc = check_args(ctx, "sum", x, NULL, 0, out);

    if (rc)
        return rc;
    a = amg_tensor_data(x);
    n = amg_tensor_numel(x);
    for (i = 0; i < n; i++)
        acc += (double)a[i];
    *out = acc;
    return AMG_OK;
}

int32_t amg__kcpu_dot(amg_ctx *ctx, const amg_tensor *x, const amg_tensor *y,
                      double *out)
{
    const float *a, *b;
    double acc = 0.0;
    uint64_t i, n;
    int rc = check_args(ctx, "dot", x, y, 1, out);

    if (rc)
        return rc;
    a = amg_tensor_data(x);
    b = amg_tensor_data(y);
    n = amg_tensor_numel(x);
    for (i = 0; i < n; i++)
        acc += (double)a[i] * (double)b[i];
    *out = acc;
    return AMG_OK;
}

int32_t amg__kcpu_norm_l2(amg_ctx *ctx, const amg_tensor *x, double *out)
{
    const float *a;
    double acc = 0.0;
    uint64_t i, n;
    int rc = check_args(ctx, "norm_l2", x, NULL, 0, out);

    if (rc)
        return rc;
    a = amg_tensor_data(x);
    n = amg_tensor_numel(x);
    for (i = 0; i < n; i++)
        acc += (double)a[i] * (double)a[i];
    *out = sqrt(acc);
    return AMG_OK;
}

int32_t amg__kcpu_norm_l1(amg_ctx *ctx, const amg_tensor *x, double *out)
{
    const float *a;
    double acc = 0.0;
    uint64_t i, n;
    int rc = check_args(ctx, "norm_l1", x, NULL, 0, out);

    if (rc)
        return rc;
    a = amg_tensor_data(x);
    n = amg_tensor_numel(x);
    for (i = 0; i < n; i++)
        acc += fabs((double)a[i]);
    *out = acc;
    return AMG_OK;
}

/* Dots of lanes rows. Inlined with lanes constant for full groups, so the
 * sums are registers (a variable count keeps them in memory, each add
 * waiting on the store of the one before). */
static AMG_ALWAYS_INLINE void
dot_rows(const float *a, const float *b, uint64_t cols, uint32_t lanes,
         double *out)
{
    double s[DOT_LANES] = { 0 };
    uint64_t c;
    uint32_t j;

    for (c = 0; c < cols; c++) {
        AMG_UNROLL8
        for (j = 0; j < lanes; j++)
            s[j] += (double)a[j * cols + c] * (double)b[j * cols + c];
    }
    for (j = 0; j < lanes; j++)
        out[j] = s[j];
}

AMG_SIMD_FN(void, dot_block,
            (const float *a, const float *b, uint64_t cols, uint32_t lanes,
             double *out), {
    if (lanes == DOT_LANES)
        dot_rows(a, b, cols, DOT_LANES, out);
    else
        dot_rows(a, b, cols, lanes, out);
})

int32_t amg__kcpu_row_dot(amg_ctx *ctx, const amg_tensor *x,
                          const amg_tensor *y, double *out)
{
    const float *a, *b;
    uint64_t r, rows, cols;
    int rc = check_args(ctx, "row_dot", x, y, 1, out);

    if (rc)
        return rc;
    rows = amg_tensor_rows(x);
    if (amg_tensor_rows(y) != rows)
        return amg_ctx_fail(ctx, AMG_EINVAL,
                            "row_dot: y has %llu rows, x has %llu",
                            (unsigned long long)amg_tensor_rows(y),
                            (unsigned long long)rows);
    cols = amg_tensor_row_numel(x);
    a = amg_tensor_data(x);
    b = amg_tensor_data(y);
    for (r = 0; r < rows; r += DOT_LANES)
        AMG_SIMD(dot_block)(a + r * cols, b + r * cols, cols,
                            rows - r < DOT_LANES ? (uint32_t)(rows - r)
                                                 : DOT_LANES,
                            out + r);
    return AMG_OK;
}
