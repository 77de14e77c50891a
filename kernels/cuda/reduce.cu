/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reductions on the device, in the CPU's order (kernels/cpu/reduce.c,
 * rows.c): each row is ONE f64 chain over its columns in index order, and
 * a whole-tensor reduction is one chain over the whole tensor. That order
 * is what makes results reproducible and equal to the CPU's bit for bit,
 * and it cannot be split: no tree, no atomics.
 *
 * So one warp walks one row: its 32 lanes load 32 consecutive columns
 * (coalesced), then every lane runs the same chain over those 32 values in
 * column order, taking each from its lane by a shuffle. The lanes hold
 * identical sums and lane 0 writes it. Rows run in parallel, one warp
 * each; a whole-tensor sum, dot or norm is a single warp over a single
 * row: exact and slow (latency-bound, around a second per 500M elements),
 * which is why the built-in strategies use the per-row forms.
 *
 * Results are "on the host": each entry copies them back and waits for
 * its stream before returning.
 */
#include "kernels_cuda.h"

#include <math.h>
#include <stdlib.h>

enum { OP_SUM, OP_DOT, OP_L2, OP_L1, OP_ABS_SUM };

#define FULL_WARP 0xFFFFFFFFu

/* out_a[r] = the chain of row r (OP_ABS_SUM: all), out_b[r] the kept
 * chain (OP_ABS_SUM with a mask only). y is read by OP_DOT, m by
 * OP_ABS_SUM when out_b is set. */
template <int OP>
static __global__ void k_rows(const float *x, const float *y,
                              const uint8_t *m, uint64_t rows, uint64_t cols,
                              double *out_a, double *out_b)
{
    const unsigned lane = threadIdx.x & 31u;
    const uint64_t warps = ((uint64_t)gridDim.x * blockDim.x) >> 5;
    uint64_t r = ((uint64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;

    /* r, c0 and len are the same in every lane: the shuffles below see
     * the whole warp */
    for (; r < rows; r += warps) {
        const uint64_t row = r * cols;
        double acc = 0.0, kept = 0.0;
        uint64_t c0;

        for (c0 = 0; c0 < cols; c0 += 32) {
            const uint64_t c = c0 + lane;
            const unsigned len = cols - c0 < 32 ? (unsigned)(cols - c0) : 32;
            float vx = c < cols ? x[row + c] : 0.0f;
            float vy = OP == OP_DOT && c < cols ? y[row + c] : 0.0f;
            unsigned vm = OP == OP_ABS_SUM && out_b && c < cols
                              ? m[row + c] : 0u;
            unsigned k;

            for (k = 0; k < len; k++) {
                float a = __shfl_sync(FULL_WARP, vx, k);

                if (OP == OP_SUM) {
                    acc = amg_kcu_sum_step(acc, a);
                } else if (OP == OP_DOT) {
                    acc = amg_kcu_dot_step(acc, a,
                                           __shfl_sync(FULL_WARP, vy, k));
                } else if (OP == OP_L2) {
                    acc = amg_kcu_dot_step(acc, a, a);
                } else if (OP == OP_L1) {
                    acc = amg_kcu_l1_step(acc, a);
                } else {
                    unsigned mk = __shfl_sync(FULL_WARP, vm, k);

                    amg_kcu_abs_sum_step(&acc, &kept, a, (uint8_t)mk);
                }
            }
        }
        if (lane == 0) {
            out_a[r] = acc;
            if (OP == OP_ABS_SUM && out_b)
                out_b[r] = kept;
        }
    }
}

/* Run OP over rows x cols on the device and copy the chains to the host
 * arrays res_a[rows] and (OP_ABS_SUM with a mask) res_b[rows]. */
template <int OP>
static int run_rows(amg_ctx *ctx, const char *kernel, cudaStream_t s,
                    const float *x, const float *y, const uint8_t *m,
                    uint64_t rows, uint64_t cols, double *res_a,
                    double *res_b)
{
    const size_t bytes = (size_t)rows * sizeof(double);
    const uint64_t threads = rows * 32u;
    double *dev = NULL;
    unsigned blocks;
    int rc;

    if (rows == 0)
        return AMG_OK;
    rc = amg__kcu_scratch(ctx, kernel, res_b ? 2 * bytes : bytes, s,
                          (void **)&dev);
    if (rc)
        return rc;
    blocks = amg__kcu_blocks(threads);
    amg__kcu_prelaunch();
    k_rows<OP><<<blocks, AMG_KCU_THREADS, 0, s>>>(x, y, m, rows, cols, dev,
                                                  res_b ? dev + rows : NULL);
    rc = amg__kcu_launched(ctx, kernel);
    if (!rc)
        rc = amg__kcu_to_host(ctx, kernel, res_a, dev, bytes, s);
    if (!rc && res_b)
        rc = amg__kcu_to_host(ctx, kernel, res_b, dev + rows, bytes, s);
    amg__kcu_scratch_free(dev, s);
    return rc;
}

static const float *Fc(const amg_tensor *t)
{
    return (const float *)amg_tensor_data(t);
}

/* One chain over all of x into *res, once x and out (the caller's result
 * pointer, which res may be) are checked. */
template <int OP>
static int whole(amg_ctx *ctx, const char *kernel, const amg_tensor *x,
                 const double *out, double *res)
{
    cudaStream_t s;
    int rc = amg__kcu_begin(ctx, kernel, &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, kernel, "x", x, AMG__KCU_F32);
    if (!rc)
        rc = amg__kcu_check_out(ctx, kernel, out);
    if (rc)
        return rc;
    return run_rows<OP>(ctx, kernel, s, Fc(x), NULL, NULL, 1,
                        amg_tensor_numel(x), res, NULL);
}

int32_t amg__kcu_sum(amg_ctx *ctx, const amg_tensor *x, double *out)
{
    return whole<OP_SUM>(ctx, "sum", x, out, out);
}

int32_t amg__kcu_dot(amg_ctx *ctx, const amg_tensor *x, const amg_tensor *y,
                     double *out)
{
    cudaStream_t s;
    int rc = amg__kcu_begin(ctx, "dot", &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, "dot", "x", x, AMG__KCU_F32);
    if (!rc)
        rc = amg__kcu_arg_like(ctx, "dot", "y", y, AMG__KCU_F32, "x", x);
    if (!rc)
        rc = amg__kcu_check_out(ctx, "dot", out);
    if (rc)
        return rc;
    return run_rows<OP_DOT>(ctx, "dot", s, Fc(x), Fc(y), NULL, 1,
                            amg_tensor_numel(x), out, NULL);
}

int32_t amg__kcu_norm_l2(amg_ctx *ctx, const amg_tensor *x, double *out)
{
    double acc = 0.0;
    int rc = whole<OP_L2>(ctx, "norm_l2", x, out, &acc);

    if (rc)
        return rc;
    /* the host's sqrt, as the CPU table takes it */
    *out = sqrt(acc);
    return AMG_OK;
}

int32_t amg__kcu_norm_l1(amg_ctx *ctx, const amg_tensor *x, double *out)
{
    return whole<OP_L1>(ctx, "norm_l1", x, out, out);
}

int32_t amg__kcu_row_dot(amg_ctx *ctx, const amg_tensor *x,
                         const amg_tensor *y, double *out)
{
    uint64_t rows;
    cudaStream_t s;
    int rc = amg__kcu_begin(ctx, "row_dot", &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, "row_dot", "x", x, AMG__KCU_F32);
    if (!rc)
        rc = amg__kcu_arg_like(ctx, "row_dot", "y", y, AMG__KCU_F32, "x", x);
    if (!rc)
        rc = amg__kcu_check_out(ctx, "row_dot", out);
    if (rc)
        return rc;
    /* rows as reduce.c counts them: dimension 0, so a 1-D x is rows of
     * one element */
    rows = amg_tensor_rows(x);
    if (amg_tensor_rows(y) != rows)
        return amg__kcu_host->fail(ctx, AMG_EINVAL,
                                   "row_dot: y has %llu rows, x has %llu",
                                   (unsigned long long)amg_tensor_rows(y),
                                   (unsigned long long)rows);
    return run_rows<OP_DOT>(ctx, "row_dot", s, Fc(x), Fc(y), NULL, rows,
                            amg_tensor_row_numel(x), out, NULL);
}

int32_t amg__kcu_row_abs_sum(amg_ctx *ctx, const amg_tensor *x,
                             const amg_tensor *mask, double *all,
                             double *kept)
{
    const uint8_t *m = NULL;
    double *tmp = NULL;
    uint64_t rows, cols;
    cudaStream_t s;
    int rc = amg__kcu_begin(ctx, "row_abs_sum", &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, "row_abs_sum", "x", x, AMG__KCU_F32);
    if (rc)
        return rc;
    if (kept != NULL && mask == NULL)
        return amg__kcu_host->fail(ctx, AMG_EINVAL,
                                   "row_abs_sum: kept is given but mask is "
                                   "NULL");
    if (mask != NULL) {
        rc = amg__kcu_arg_like(ctx, "row_abs_sum", "mask", mask,
                               AMG__KCU_MASK, "x", x);
        if (rc)
            return rc;
        if (kept != NULL)
            m = (const uint8_t *)amg_tensor_data(mask);
    }
    if (all == NULL && kept == NULL)
        return AMG_OK;
    /* rows along dimension 0, as row_dot counts them */
    rows = amg_tensor_rows(x);
    cols = amg_tensor_row_numel(x);
    if (all == NULL) {
        /* the kernel always forms all; it lands in a host temporary */
        tmp = (double *)malloc((size_t)(rows ? rows : 1) * sizeof(double));
        if (!tmp)
            return amg__kcu_host->fail(ctx, AMG_ENOMEM,
                                       "row_abs_sum: cannot allocate %llu "
                                       "row sums", (unsigned long long)rows);
    }
    rc = run_rows<OP_ABS_SUM>(ctx, "row_abs_sum", s, Fc(x), NULL, m, rows,
                              cols, all ? all : tmp, kept ? kept : NULL);
    free(tmp);
    return rc;
}
