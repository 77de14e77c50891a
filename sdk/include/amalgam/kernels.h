/* SPDX-License-Identifier: Apache-2.0 */
/*
 * amalgam/kernels.h - the device-neutral operations strategies are built
 * from.
 *
 * The host hands a strategy the table for the device its tensors live on
 * (amg_merge_call.k); the CPU and CUDA tables implement the same calls with
 * the same results, so a strategy written once runs on both. Results are
 * bit-identical across devices: elementwise math is plain f32 in the order
 * written here, reductions accumulate in f64 in a fixed order, rounding to
 * narrow types is round-to-nearest-even as PyTorch does it.
 *
 * Conventions for every entry:
 *   - Returns AMG_OK or an amg_status, with the reason recorded through
 *     ctx (so the caller can just propagate the status).
 *   - Tensors are contiguous and on the table's device. "F32" arguments must
 *     have dtype float32; "mask" arguments bool (code AMG_DL_BOOL, 8 bits,
 *     one byte per element holding 0 or 1).
 *   - Elementwise operands have the same element count as out (shapes may
 *     differ); out may alias any input.
 *   - Thread-safe: calls on different tensors may run concurrently.
 *   - Work is over the handle's elements; for a row chunk that is the chunk.
 *     RNG fills key on amg_tensor.elem_offset + i, so a chunk draws exactly
 *     what the whole tensor would at those elements.
 */
#ifndef AMALGAM_KERNELS_H
#define AMALGAM_KERNELS_H

#include <stdint.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct amg_ctx amg_ctx;    /* opaque per-call context (host.h) */

/* Sign-election rules for sign_elect (TIES). */
#define AMG_SIGN_BY_SUM 0          /* sign of sum_i w_i * d_i  (mergekit) */
#define AMG_SIGN_BY_COUNT 1        /* sign of sum_i sign(w_i * d_i) */

typedef struct amg_kernels {
    uint32_t struct_size;          /* sizeof(amg_kernels) as the host built it */
    int32_t device_type;           /* AMG_DEVICE_* these kernels run on */

    /* ---- conversion ---- */

    /* dst = src converted elementwise between any two supported dtypes
     * (F64, F32, F16, BF16, F8 E4M3FN/E5M2, I64..I8, U8, BOOL); same numel.
     * Narrow floats round to nearest even; integers truncate and saturate;
     * NaN to integer gives 0. */
    int32_t (*convert)(amg_ctx *ctx, amg_tensor *dst, const amg_tensor *src);

    /* ---- elementwise, F32 ---- */

    /* out[i] = v */
    int32_t (*fill)(amg_ctx *ctx, amg_tensor *out, float v);
    /* out[i] = alpha * x[i] */
    int32_t (*scale)(amg_ctx *ctx, amg_tensor *out, float alpha,
                     const amg_tensor *x);
    /* out[i] = alpha * x[i] + beta * y[i]   (add, sub, lerp, task vectors) */
    int32_t (*axpby)(amg_ctx *ctx, amg_tensor *out, float alpha,
                     const amg_tensor *x, float beta, const amg_tensor *y);
    /* out[i] = x[i] * y[i] */
    int32_t (*mul)(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x,
                   const amg_tensor *y);
    /* out[i] = x[i] / y[i]   (IEEE: x/0 is inf or NaN) */
    int32_t (*div)(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x,
                   const amg_tensor *y);
    /* out[i] = |x[i]| */
    int32_t (*abs)(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x);
    /* out[i] = -1, 0 or +1 as x[i] < 0, == 0, > 0 (NaN gives 0) */
    int32_t (*sign)(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x);
    /* out[i] = sum_j w[j] * x[j][i], j = 0..n-1, accumulated in f32 in
     * order j = 0, 1, ... (a weighted sum of n inputs in one pass) */
    int32_t (*weighted_sum)(amg_ctx *ctx, amg_tensor *out,
                            const amg_tensor *const *x, const float *w,
                            uint32_t n);

    /* ---- masks and selection ---- */

    /* out[i] = mask[i] ? x[i] : 0 */
    int32_t (*mask_apply)(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x,
                          const amg_tensor *mask);
    /* out[i] = mask[i] ? x[i] : y[i] */
    int32_t (*where)(amg_ctx *ctx, amg_tensor *out, const amg_tensor *mask,
                     const amg_tensor *x, const amg_tensor *y);
    /* mask[i] = 1 for exactly k elements of x: those with the largest |x|;
     * among equal magnitudes the lower index wins; NaN ranks below every
     * number. k >= numel selects all. Never sorts: histograms over the
     * float bits in two passes. */
    int32_t (*topk_mask)(amg_ctx *ctx, amg_tensor *mask, const amg_tensor *x,
                         uint64_t k);
    /* Pass building block for top-k across row chunks: adds to hist[65536]
     * the count of elements by magnitude bits. level 0 bins by the high 16
     * bits of the |x| bit pattern; level 1 bins, among elements whose high
     * 16 bits equal prefix, by the low 16 bits. NaN is not counted. */
    int32_t (*abs_histogram)(amg_ctx *ctx, const amg_tensor *x, int32_t level,
                             uint32_t prefix, uint64_t *hist);
    /* mask[i] = 1 when bits(|x[i]|) > thr, or == thr and fewer than n_ties
     * equal elements were taken before it; *ties_taken (in, out) counts
     * those taken so far, so chunks processed in index order pick exactly
     * n_ties ties overall. NaN is never selected. */
    int32_t (*threshold_mask)(amg_ctx *ctx, amg_tensor *mask,
                              const amg_tensor *x, uint32_t thr,
                              uint64_t n_ties, uint64_t *ties_taken);

    /* ---- TIES building blocks ---- */

    /* sign[i] = +1 or -1: the elected sign of the weighted deltas d[j] at
     * element i by rule (AMG_SIGN_BY_SUM: sign of sum_j w[j]*d[j][i];
     * AMG_SIGN_BY_COUNT: sign of sum_j sign(w[j]*d[j][i])). A zero total
     * elects +1. */
    int32_t (*sign_elect)(amg_ctx *ctx, amg_tensor *sign,
                          const amg_tensor *const *d, const float *w,
                          uint32_t n, int32_t rule);
    /* Disjoint merge: with m[j][i] = 1 when w[j]*d[j][i] != 0 and has sign
     * sign[i], out[i] = sum_j w[j]*d[j][i]*m[j][i] / D[i], where D[i] =
     * sum_j w[j]*m[j][i] when normalize is set (|D| < 1e-8 counts as 1) and
     * 1 otherwise. Sums in f32, j in order. */
    int32_t (*disjoint_merge)(amg_ctx *ctx, amg_tensor *out,
                              const amg_tensor *const *d, const float *w,
                              uint32_t n, const amg_tensor *sign,
                              int32_t normalize);

    /* ---- reductions (f64 accumulation, fixed order, result on the host) */

    /* *out = sum_i x[i] */
    int32_t (*sum)(amg_ctx *ctx, const amg_tensor *x, double *out);
    /* *out = sum_i x[i] * y[i] */
    int32_t (*dot)(amg_ctx *ctx, const amg_tensor *x, const amg_tensor *y,
                   double *out);
    /* *out = sqrt(sum_i x[i]^2) */
    int32_t (*norm_l2)(amg_ctx *ctx, const amg_tensor *x, double *out);
    /* *out = sum_i |x[i]| */
    int32_t (*norm_l1)(amg_ctx *ctx, const amg_tensor *x, double *out);
    /* Per row (dimension 0): out[r] = sum_c x[r][c] * y[r][c]; out holds
     * rows(x) doubles in host memory. */
    int32_t (*row_dot)(amg_ctx *ctx, const amg_tensor *x, const amg_tensor *y,
                       double *out);

    /* ---- random fills (rng.h: Philox4x32-10) ---- */

    /* out[i] = amg_rng_uniform(seed, stream, out->elem_offset + i) */
    int32_t (*rng_uniform)(amg_ctx *ctx, amg_tensor *out, uint64_t seed,
                           uint64_t stream);
    /* mask[i] = amg_rng_bernoulli(seed, stream, mask->elem_offset + i, p) */
    int32_t (*rng_bernoulli)(amg_ctx *ctx, amg_tensor *mask, double p,
                             uint64_t seed, uint64_t stream);

    /* ---- entries appended after ABI 0.1 (test for NULL before use) ---- */

    /* Magnitude rank within each row, scaled to [0, 1] (DELLA's MagPrune).
     * Rows are dimension 0; a 0-D or 1-D x is one row. With ranks 1..n by
     * ascending |x| in a row of n elements, out[r][c] = (float)((double)
     * (rank - 1) / (double)(n - 1)): 0 for the smallest, 1 for the largest.
     * Equal magnitudes (+0 and -0 included) rank by lower column first;
     * mergekit's argsort(argsort(|x|)) leaves that order unspecified. NaN
     * ranks above every number (as torch.sort places it), NaNs among
     * themselves by their bits then column. A row of one element gives 0
     * (mergekit divides 0 by 0 there). Ranks depend on the whole row, so a
     * row chunk must hold whole rows: a 1-D tensor split into chunks would
     * rank each chunk on its own, which is why the host never splits one
     * (plugin.h). out is F32 like x and may alias it. */
    int32_t (*row_abs_rank)(amg_ctx *ctx, amg_tensor *out,
                            const amg_tensor *x);

    /* Per row (dimension 0, as row_dot: each element of a 1-D x is a row,
     * a 0-D x is one row), in f64, columns
     * in index order: all[r] = sum_c |x[r][c]| and kept[r] = the same sum
     * over the columns whose mask byte is set. |NaN| is NaN, so a NaN
     * reaches the sums. all, kept: rows(x) doubles in host memory, either
     * may be NULL; mask (BOOL, like x) may be NULL only when kept is.
     * Callers add the rows in row order, which makes a tensor's total the
     * same however its rows were chunked. */
    int32_t (*row_abs_sum)(amg_ctx *ctx, const amg_tensor *x,
                           const amg_tensor *mask, double *all,
                           double *kept);
    /* out[r][c] = alpha[r] * x[r][c] + beta[r] * y[r][c] in f32 (two
     * products, one add): a scale per row. alpha, beta: rows(out) floats in
     * host memory. out may alias x or y. */
    int32_t (*row_axpby)(amg_ctx *ctx, amg_tensor *out, const float *alpha,
                         const amg_tensor *x, const float *beta,
                         const amg_tensor *y);
    /* Weighted quotient (Fisher merging), per element i, in f64 with j in
     * order 0..n-1: g_j = f[j] ? f[j][i] : 0, g_j = floor ? max(g_j, eps)
     * : g_j + eps (max keeps eps when g_j is NaN), w_j = c[j] * g_j,
     * out[i] = (float)(sum_j w_j * x[j][i] / sum_j w_j). f[j] may be NULL
     * (no Fisher: 0). A zero denominator fails with AMG_EINVAL naming the
     * element (out->elem_offset + i, the first such in index order). */
    int32_t (*weighted_quotient)(amg_ctx *ctx, amg_tensor *out,
                                 const amg_tensor *const *x,
                                 const amg_tensor *const *f, const double *c,
                                 uint32_t n, double eps, int32_t floor);

    void *reserved[12];            /* NULL; appended entries go here */
} amg_kernels;

#ifdef __cplusplus
}
#endif
#endif /* AMALGAM_KERNELS_H */
