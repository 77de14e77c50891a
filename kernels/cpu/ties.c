/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TIES building blocks: sign election and the disjoint merge, as mergekit's
 * generalized task arithmetic computes them (consensus "sum"; its unused
 * "count" rule too). Per element, f32, j = 0..n-1 in order, each product
 * w[j] * d[j][i] rounded to f32 before it is added (no FMA, as in
 * elementwise.c), accumulators starting at +0.0f. Elements are independent,
 * so out and sign may alias any input.
 */
#include "config.h"

#include <math.h>

#include "ctx.h"
#include "kernels_cpu.h"

/* Divisors this small would blow the merge up; mergekit's linear path uses
 * the same bound. */
#define DIVISOR_EPS 1e-8f

static inline float sgn(float v)
{
    return v > 0.0f ? 1.0f : v < 0.0f ? -1.0f : 0.0f;
}

int32_t amg__kcpu_sign_elect(amg_ctx *ctx, amg_tensor *sign,
                             const amg_tensor *const *d, const float *w,
                             uint32_t n, int32_t rule)
{
    float *s;
    uint64_t i, total;
    uint32_t j;
    int rc = amg__kcpu_arg(ctx, "sign_elect", "sign", sign, AMG__KCPU_F32);

    if (!rc)
        rc = amg__kcpu_args_like(ctx, "sign_elect", "d", d, n, w, 1, "sign",
                                 sign);
    if (rc)
        return rc;
    if (rule != AMG_SIGN_BY_SUM && rule != AMG_SIGN_BY_COUNT)
        return amg_ctx_fail(ctx, AMG_EINVAL,
                            "sign_elect: rule %d is neither AMG_SIGN_BY_SUM "
                            "nor AMG_SIGN_BY_COUNT", (int)rule);
    s = amg_tensor_data(sign);
    total = amg_tensor_numel(sign);
    for (i = 0; i < total; i++) {
        float acc = 0.0f;

        for (j = 0; j < n; j++) {
            float p = w[j] * ((const float *)amg_tensor_data(d[j]))[i];

            acc = acc + (rule == AMG_SIGN_BY_SUM ? p : sgn(p));
        }
        /* mergekit's test: a zero total elects +1, a NaN one -1 */
        s[i] = acc >= 0.0f ? 1.0f : -1.0f;
    }
    return AMG_OK;
}

int32_t amg__kcpu_disjoint_merge(amg_ctx *ctx, amg_tensor *out,
                                 const amg_tensor *const *d, const float *w,
                                 uint32_t n, const amg_tensor *sign,
                                 int32_t normalize)
{
    const float *s;
    float *o;
    uint64_t i, total;
    uint32_t j;
    int rc = amg__kcpu_arg(ctx, "disjoint_merge", "out", out, AMG__KCPU_F32);

    if (!rc)
        rc = amg__kcpu_args_like(ctx, "disjoint_merge", "d", d, n, w, 1,
                                 "out", out);
    if (!rc)
        rc = amg__kcpu_arg_like(ctx, "disjoint_merge", "sign", sign,
                                AMG__KCPU_F32, "out", out);
    if (rc)
        return rc;
    s = amg_tensor_data(sign);
    o = amg_tensor_data(out);
    total = amg_tensor_numel(out);
    for (i = 0; i < total; i++) {
        float num = 0.0f, den = 0.0f;
        float si = s[i];

        for (j = 0; j < n; j++) {
            float p = w[j] * ((const float *)amg_tensor_data(d[j]))[i];

            /* zeros have no sign and never agree (mergekit: sign(0) = 0
             * never equals the elected +-1) */
            if (p != 0.0f && sgn(p) == sgn(si)) {
                num = num + p;
                den = den + w[j];
            }
        }
        if (normalize) {
            if (fabsf(den) < DIVISOR_EPS)
                den = 1.0f;
            num = num / den;
        }
        o[i] = num;
    }
    return AMG_OK;
}
