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
#include "fpconv.h"
#include "kernels_cpu.h"
#include "simd.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize")
#endif

/* Divisors this small would blow the merge up; mergekit's linear path uses
 * the same bound. */
#define DIVISOR_EPS 1e-8f

/* Elements per block: the accumulators stay in L1 while each input's
 * stretch is added in one vectorised loop (selects, no branches). */
#define BLOCK 1024

/* 1, -1 or +0 (zero and NaN), as comparisons so loops stay branch-free */
static inline int isgn(float v)
{
    return (v > 0.0f) - (v < 0.0f);
}

static inline float sgn(float v)
{
    return (float)isgn(v);
}

/* acc >= 0 ? 1 : -1 on the bits (-1 for NaN), for the reason merge_add
 * gives */
static inline float elected(float acc)
{
    uint32_t b = amg_f32_bits(acc), mag = b & 0x7FFFFFFFu;
    uint32_t neg = (mag > 0x7F800000u) | ((b >> 31) & (mag != 0));

    return amg_bits_f32(0x3F800000u | (neg << 31));
}

/* acc[i] += w * a[i] (rule: sum) or sgn(w * a[i]) (count), i < len. */
AMG_SIMD_FN(void, elect_add,
            (float *acc, const float *a, float w, int32_t rule,
             uint64_t len), {
    uint64_t i;

    if (rule == AMG_SIGN_BY_SUM) {
        for (i = 0; i < len; i++) {
            float p = w * a[i];

            acc[i] = acc[i] + p;
        }
    } else {
        for (i = 0; i < len; i++)
            acc[i] = acc[i] + sgn(w * a[i]);
    }
})

AMG_SIMD_FN(void, elect_store, (float *s, const float *acc, uint64_t len), {
    uint64_t i;

    for (i = 0; i < len; i++)
        s[i] = elected(acc[i]);
})

int32_t amg__kcpu_sign_elect(amg_ctx *ctx, amg_tensor *sign,
                             const amg_tensor *const *d, const float *w,
                             uint32_t n, int32_t rule)
{
    float acc[BLOCK];
    float *s;
    uint64_t i, len, start, total;
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
    /* every input's block is read before sign's is written: sign may
     * alias an input */
    for (start = 0; start < total; start += len) {
        len = total - start < BLOCK ? total - start : BLOCK;
        for (i = 0; i < len; i++)
            acc[i] = 0.0f;
        for (j = 0; j < n; j++)
            AMG_SIMD(elect_add)(acc, (const float *)amg_tensor_data(d[j]) + start, w[j],
                      rule, len);
        /* mergekit's test: a zero total elects +1, a NaN one -1 */
        AMG_SIMD(elect_store)(s + start, acc, len);
    }
    return AMG_OK;
}

#define ABS_MASK 0x7FFFFFFFu
#define INF_BITS 0x7F800000u

/* The agreeing products of one input: where w * a[i] is non-zero with
 * the sign of s[i], num[i] += w * a[i] and den[i] += w. Zeros have no sign
 * and never agree (mergekit: sign(0) = 0 never equals the elected +-1); a
 * NaN product has sign 0 and agrees with a zero or NaN s[i].
 *
 * The test is done on bit patterns and the skipped terms are added as +0:
 * float compares would keep GCC from if-converting the loop, and num and
 * den are never -0 (they start at +0 and an exact zero sum is +0), so
 * adding +0 leaves them as they are. */
AMG_SIMD_FN(void, merge_add,
            (float *num, float *den, const float *a, float w,
             const float *s, uint64_t len), {
    uint32_t wb = amg_f32_bits(w);
    uint64_t i;

    for (i = 0; i < len; i++) {
        uint32_t bp = amg_f32_bits(w * a[i]), bs = amg_f32_bits(s[i]);
        uint32_t mp = bp & ABS_MASK, ms = bs & ABS_MASK;
        uint32_t p_num = (mp - 1u) < INF_BITS;      /* non-zero, not NaN */
        uint32_t s_num = (ms - 1u) < INF_BITS;
        uint32_t p_nan = mp > INF_BITS;
        uint32_t same = ((bp ^ bs) >> 31) ^ 1u;
        uint32_t agree = (p_num & s_num & same) | (p_nan & (s_num ^ 1u));
        uint32_t m = 0u - agree;

        num[i] = num[i] + amg_bits_f32(bp & m);
        den[i] = den[i] + amg_bits_f32(wb & m);
    }
})

/* num[i] / den[i], a divisor this small counting as 1 */
AMG_SIMD_FN(void, merge_divide, (float *num, const float *den, uint64_t len), {
    uint64_t i;

    for (i = 0; i < len; i++) {
        float dv = fabsf(den[i]) < DIVISOR_EPS ? 1.0f : den[i];

        num[i] = num[i] / dv;
    }
})

int32_t amg__kcpu_disjoint_merge(amg_ctx *ctx, amg_tensor *out,
                                 const amg_tensor *const *d, const float *w,
                                 uint32_t n, const amg_tensor *sign,
                                 int32_t normalize)
{
    float num[BLOCK], den[BLOCK];
    const float *s;
    float *o;
    uint64_t i, len, start, total;
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
    for (start = 0; start < total; start += len) {
        len = total - start < BLOCK ? total - start : BLOCK;
        for (i = 0; i < len; i++)
            num[i] = den[i] = 0.0f;
        for (j = 0; j < n; j++)
            AMG_SIMD(merge_add)(num, den, (const float *)amg_tensor_data(d[j]) + start,
                      w[j], s + start, len);
        if (normalize)
            AMG_SIMD(merge_divide)(num, den, len);
        for (i = 0; i < len; i++)
            o[start + i] = num[i];
    }
    return AMG_OK;
}
