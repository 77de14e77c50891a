/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-row kernels and the Fisher quotient: the loops strategies used to run
 * over host memory themselves (GTA's L1 sums, nuslerp's per-row mix,
 * Fisher's weighted average), moved behind the table so the strategies run
 * on any device. Each keeps the exact arithmetic the strategy had: f64
 * row sums in column order, f32 products rounded before their add (no FMA,
 * see elementwise.c), f64 numerator and denominator with j in order.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ctx.h"
#include "kernels_cpu.h"
#include "simd.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize")
#endif

/* Rows summed at once by row_abs_sum: each row is its own chain in column
 * order, so interleaving rows only overlaps their add latencies. */
#define ABS_SUM_LANES 8u

/* Elements per block in weighted_quotient: the f64 accumulators stay in L1
 * while each input's stretch is added in one loop. */
#define WQ_BLOCK 512

/* |v| in f64; NaN times 0 keeps NaN's payload and sign, as the sign kernel
 * followed by row_dot did before this kernel existed. Branch-free: data
 * signs are random and a mispredicted branch per element costs more than
 * the sum. */
static inline double abs_term(float f)
{
    double v = f;

    return v == v ? fabs(v) : v * 0.0;
}

/* t where the mask byte is set, else +0 (adding +0 leaves a sum of |x| as
 * it is), without a branch on the random mask. */
static inline double kept_term(double t, uint8_t m)
{
    uint64_t b;

    memcpy(&b, &t, sizeof(b));
    b &= (uint64_t)0 - (uint64_t)(m != 0);
    memcpy(&t, &b, sizeof(t));
    return t;
}

/* Sums of lanes rows at once. Inlined with lanes and masked constant, so
 * the sums live in registers and the rows' add chains overlap (with a
 * variable count they were stack slots, each add waiting on the store of
 * the one before). */
static AMG_ALWAYS_INLINE void
abs_sum_rows(const float *a, const uint8_t *m, uint64_t cols, uint32_t lanes,
             int masked, double *all, double *kept)
{
    double s[ABS_SUM_LANES] = { 0 }, k[ABS_SUM_LANES] = { 0 };
    uint64_t c;
    uint32_t j;

    for (c = 0; c < cols; c++) {
        AMG_UNROLL8
        for (j = 0; j < lanes; j++) {
            double t = abs_term(a[j * cols + c]);

            s[j] += t;
            if (masked)
                k[j] += kept_term(t, m[j * cols + c]);
        }
    }
    for (j = 0; j < lanes; j++) {
        if (all != NULL)
            all[j] = s[j];
        if (kept != NULL)
            kept[j] = k[j];
    }
}

AMG_SIMD_FN(void, abs_sum_block,
            (const float *a, const uint8_t *m, uint64_t cols, uint32_t lanes,
             double *all, double *kept), {
    if (lanes == ABS_SUM_LANES && m != NULL)
        abs_sum_rows(a, m, cols, ABS_SUM_LANES, 1, all, kept);
    else if (lanes == ABS_SUM_LANES)
        abs_sum_rows(a, m, cols, ABS_SUM_LANES, 0, all, kept);
    else
        abs_sum_rows(a, m, cols, lanes, m != NULL, all, kept);
})

int32_t amg__kcpu_row_abs_sum(amg_ctx *ctx, const amg_tensor *x,
                              const amg_tensor *mask, double *all,
                              double *kept)
{
    const uint8_t *m = NULL;
    const float *a;
    uint64_t r, rows, cols;
    int rc = amg__kcpu_arg(ctx, "row_abs_sum", "x", x, AMG__KCPU_F32);

    if (rc)
        return rc;
    if (kept != NULL && mask == NULL)
        return amg_ctx_fail(ctx, AMG_EINVAL,
                            "row_abs_sum: kept is given but mask is NULL");
    if (mask != NULL) {
        rc = amg__kcpu_arg_like(ctx, "row_abs_sum", "mask", mask,
                                AMG__KCPU_MASK, "x", x);
        if (rc)
            return rc;
        /* with no kept sums to form, the mask need not be read */
        if (kept != NULL)
            m = amg_tensor_data(mask);
    }
    rows = amg_tensor_rows(x);
    cols = amg_tensor_row_numel(x);
    a = amg_tensor_data(x);
    for (r = 0; r < rows; r += ABS_SUM_LANES) {
        uint32_t lanes = rows - r < ABS_SUM_LANES ? (uint32_t)(rows - r)
                                                  : ABS_SUM_LANES;

        AMG_SIMD(abs_sum_block)(a + r * cols, m != NULL ? m + r * cols : NULL, cols,
                      lanes, all != NULL ? all + r : NULL,
                      kept != NULL ? kept + r : NULL);
    }
    return AMG_OK;
}

int32_t amg__kcpu_row_axpby(amg_ctx *ctx, amg_tensor *out, const float *alpha,
                            const amg_tensor *x, const float *beta,
                            const amg_tensor *y)
{
    const float *a, *b;
    float *o;
    uint64_t r, rows, cols;
    int rc = amg__kcpu_arg(ctx, "row_axpby", "out", out, AMG__KCPU_F32);

    if (!rc)
        rc = amg__kcpu_arg_like(ctx, "row_axpby", "x", x, AMG__KCPU_F32,
                                "out", out);
    if (!rc)
        rc = amg__kcpu_arg_like(ctx, "row_axpby", "y", y, AMG__KCPU_F32,
                                "out", out);
    if (rc)
        return rc;
    rows = amg_tensor_rows(out);
    cols = amg_tensor_row_numel(out);
    if (rows * cols > 0 && (alpha == NULL || beta == NULL))
        return amg_ctx_fail(ctx, AMG_EINVAL, "row_axpby: %s is NULL",
                            alpha == NULL ? "alpha" : "beta");
    a = amg_tensor_data(x);
    b = amg_tensor_data(y);
    o = amg_tensor_data(out);
    for (r = 0; r < rows; r++)
        amg__kcpu_axpby_n(o + r * cols, alpha[r], a + r * cols, beta[r],
                          b + r * cols, cols);
    return AMG_OK;
}

/* g = f + eps, or max(f, eps) with floor (NaN fails the compare and gives
 * eps), in f64. */
static inline double adjusted(float f, double eps, int32_t use_floor)
{
    double v = f;

    if (use_floor)
        return v > eps ? v : eps;
    return v + eps;
}

/* num, den += w_j * x_j, w_j over elements [e0, e0 + len) of input j. */
static void quotient_term(const float *x, const float *f, double c,
                          double eps, int32_t use_floor, double *num,
                          double *den, uint64_t len)
{
    uint64_t e;

    if (f == NULL) {
        /* no Fisher: every element weighs c * adjusted(0) */
        const double w = c * adjusted(0.0f, eps, use_floor);

        for (e = 0; e < len; e++) {
            num[e] += w * x[e];
            den[e] += w;
        }
        return;
    }
    for (e = 0; e < len; e++) {
        const double w = c * adjusted(f[e], eps, use_floor);

        num[e] += w * x[e];
        den[e] += w;
    }
}

static int check_quotient_args(amg_ctx *ctx, amg_tensor *out,
                               const amg_tensor *const *x,
                               const amg_tensor *const *f, const double *c,
                               uint32_t n)
{
    char what[32];
    uint32_t j;
    int rc = amg__kcpu_arg(ctx, "weighted_quotient", "out", out,
                           AMG__KCPU_F32);

    if (!rc)
        rc = amg__kcpu_args_like(ctx, "weighted_quotient", "x", x, n, NULL, 0,
                                 "out", out);
    if (rc)
        return rc;
    if (n > 0 && (f == NULL || c == NULL))
        return amg_ctx_fail(ctx, AMG_EINVAL, "weighted_quotient: %s is NULL "
                            "with n = %u", f == NULL ? "f" : "c", n);
    for (j = 0; j < n; j++) {
        if (f[j] == NULL)
            continue;
        snprintf(what, sizeof(what), "f[%u]", j);
        rc = amg__kcpu_arg_like(ctx, "weighted_quotient", what, f[j],
                                AMG__KCPU_F32, "out", out);
        if (rc)
            return rc;
    }
    return AMG_OK;
}

int32_t amg__kcpu_weighted_quotient(amg_ctx *ctx, amg_tensor *out,
                                    const amg_tensor *const *x,
                                    const amg_tensor *const *f,
                                    const double *c, uint32_t n, double eps,
                                    int32_t use_floor)
{
    double num[WQ_BLOCK], den[WQ_BLOCK];
    uint64_t e0, e, len, numel;
    float *o;
    uint32_t j;
    int rc = check_quotient_args(ctx, out, x, f, c, n);

    if (rc)
        return rc;
    o = amg_tensor_data(out);
    numel = amg_tensor_numel(out);
    for (e0 = 0; e0 < numel; e0 += len) {
        len = numel - e0 < WQ_BLOCK ? numel - e0 : WQ_BLOCK;
        for (e = 0; e < len; e++)
            num[e] = den[e] = 0.0;
        for (j = 0; j < n; j++)
            quotient_term((const float *)amg_tensor_data(x[j]) + e0,
                          f[j] ? (const float *)amg_tensor_data(f[j]) + e0
                               : NULL,
                          c[j], eps, use_floor, num, den, len);
        for (e = 0; e < len; e++) {
            if (den[e] == 0.0)
                return amg_ctx_fail(ctx, AMG_EINVAL, "weighted_quotient: "
                                    "the weights sum to 0 at element %llu; "
                                    "epsilon > 0 or nonzero weights avoid "
                                    "that", (unsigned long long)
                                    (out->elem_offset + e0 + e));
            o[e0 + e] = (float)(num[e] / den[e]);
        }
    }
    return AMG_OK;
}
