/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Masks and selection: mask_apply, where, and exact magnitude top-k.
 *
 * Top-k ranks elements by the bit pattern of |x| (bits & 0x7FFFFFFF): for
 * non-NaN floats, larger magnitude means a larger pattern, and +0 and -0
 * share pattern 0. NaN patterns (above 0x7F800000) are never counted or
 * selected by the histogram and threshold passes: NaN ranks below every
 * number, so topk_mask only takes NaNs, lowest index first, once every
 * number is taken. Two 16-bit histogram passes find the k-th largest
 * pattern thr and how many elements equal to it to keep; a last pass marks
 * those above thr and the first n_ties equal to it in index order. No sort,
 * three reads of x, and the same answer whether done whole or by chunks.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "fpconv.h"
#include "kernels_cpu.h"
#include "simd.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize")
#endif

#define HIST_BINS 65536u
/* Elements per block of threshold's vectorised pass. */
#define THR_BLOCK 1024u
#define ABS_MASK 0x7FFFFFFFu
#define INF_BITS 0x7F800000u

static inline uint32_t mag_bits(float x)
{
    return amg_f32_bits(x) & ABS_MASK;
}

/* All ones where the mask byte is set, else zero. */
static inline uint32_t lanes(uint8_t m)
{
    return 0u - (uint32_t)(m != 0);
}

AMG_SIMD_FN(void, mask_loop,
            (float *o, const float *a, const uint8_t *m, uint64_t n), {
    uint64_t i;

    /* selects on the bit patterns: a float select does not vectorise */
    for (i = 0; i < n; i++)
        o[i] = amg_bits_f32(amg_f32_bits(a[i]) & lanes(m[i]));
})

AMG_SIMD_FN(void, where_loop,
            (float *o, const uint8_t *m, const float *a, const float *b,
             uint64_t n), {
    uint64_t i;

    for (i = 0; i < n; i++) {
        uint32_t k = lanes(m[i]);

        o[i] = amg_bits_f32((amg_f32_bits(a[i]) & k) |
                            (amg_f32_bits(b[i]) & ~k));
    }
})

int32_t amg__kcpu_mask_apply(amg_ctx *ctx, amg_tensor *out,
                             const amg_tensor *x, const amg_tensor *mask)
{
    const float *a;
    const uint8_t *m;
    float *o;
    uint64_t n;
    int rc = amg__kcpu_arg(ctx, "mask_apply", "out", out, AMG__KCPU_F32);

    if (!rc)
        rc = amg__kcpu_arg_like(ctx, "mask_apply", "x", x, AMG__KCPU_F32,
                                "out", out);
    if (!rc)
        rc = amg__kcpu_arg_like(ctx, "mask_apply", "mask", mask,
                                AMG__KCPU_MASK, "out", out);
    if (rc)
        return rc;
    a = amg_tensor_data(x);
    m = amg_tensor_data(mask);
    o = amg_tensor_data(out);
    n = amg_tensor_numel(out);
    AMG_SIMD(mask_loop)(o, a, m, n);
    return AMG_OK;
}

int32_t amg__kcpu_where(amg_ctx *ctx, amg_tensor *out, const amg_tensor *mask,
                        const amg_tensor *x, const amg_tensor *y)
{
    const float *a, *b;
    const uint8_t *m;
    float *o;
    uint64_t n;
    int rc = amg__kcpu_arg(ctx, "where", "out", out, AMG__KCPU_F32);

    if (!rc)
        rc = amg__kcpu_arg_like(ctx, "where", "mask", mask, AMG__KCPU_MASK,
                                "out", out);
    if (!rc)
        rc = amg__kcpu_arg_like(ctx, "where", "x", x, AMG__KCPU_F32, "out",
                                out);
    if (!rc)
        rc = amg__kcpu_arg_like(ctx, "where", "y", y, AMG__KCPU_F32, "out",
                                out);
    if (rc)
        return rc;
    m = amg_tensor_data(mask);
    a = amg_tensor_data(x);
    b = amg_tensor_data(y);
    o = amg_tensor_data(out);
    n = amg_tensor_numel(out);
    AMG_SIMD(where_loop)(o, m, a, b, n);
    return AMG_OK;
}

/* ---- top-k building blocks (no argument checks) ---- */

/* Level 0: every number counted by its high 16 bits. */
static void histogram0(const float *a, uint64_t n, uint64_t *hist)
{
    uint64_t i;

    for (i = 0; i < n; i++) {
        uint32_t b = mag_bits(a[i]);

        if (b <= INF_BITS)
            hist[b >> 16]++;
    }
}

/* Numbers of block [0, n) whose high 16 bits are prefix (NaN patterns
 * share high bits with infinity, hence the second test): *zero counts
 * those with low bits 0, the return value the others. Vectorises. */
AMG_SIMD_FN(uint32_t, count_prefix,
            (const float *a, uint32_t n, uint32_t prefix, uint32_t *zero), {
    uint32_t i, c = 0, z = 0;

    for (i = 0; i < n; i++) {
        uint32_t b = mag_bits(a[i]);
        uint32_t in = ((b >> 16) == prefix) & (b <= INF_BITS);

        z += in & ((b & 0xFFFFu) == 0);
        c += in & ((b & 0xFFFFu) != 0);
    }
    *zero = z;
    return c;
})

/* Level 1: only the elements of one level-0 bin, a small share of most
 * tensors. A vectorised count per block takes those with low bits 0 (all
 * but a few when the weights were bf16: a delta of two bf16 numbers has
 * few significant bits), and only a block holding others is walked. */
static void histogram1(const float *a, uint64_t n, uint32_t prefix,
                       uint64_t *hist)
{
    uint64_t start, i;
    uint32_t len, zero;

    for (start = 0; start < n; start += len) {
        len = n - start < THR_BLOCK ? (uint32_t)(n - start) : THR_BLOCK;
        if (AMG_SIMD(count_prefix)(a + start, len, prefix, &zero) > 0) {
            for (i = start; i < start + len; i++) {
                uint32_t b = mag_bits(a[i]);

                if ((b >> 16) == prefix && (b & 0xFFFFu) != 0 &&
                    b <= INF_BITS)
                    hist[b & 0xFFFFu]++;
            }
        }
        hist[0] += zero;
    }
}

static void histogram(const float *a, uint64_t n, int32_t level,
                      uint32_t prefix, uint64_t *hist)
{
    if (level == 0)
        histogram0(a, n, hist);
    else
        histogram1(a, n, prefix, hist);
}

/* Elements of block [0, n) above thr (numbers only) marked, the rest 0;
 * returns how many equal thr. Integer compares only, and 32-bit counts
 * (a block is at most THR_BLOCK), so it vectorises without widening. */
AMG_SIMD_FN(uint32_t, mark_above,
            (uint8_t *m, const float *a, uint32_t n, uint32_t thr), {
    uint32_t i, eq = 0;

    for (i = 0; i < n; i++) {
        uint32_t b = mag_bits(a[i]);

        m[i] = (uint8_t)((b > thr) & (b <= INF_BITS));
        eq += (b == thr) & (b <= INF_BITS);
    }
    return eq;
})

/* Every element of block [0, n) equal to thr (a number pattern) marked
 * too. Vectorises. */
AMG_SIMD_FN(void, mark_equal,
            (uint8_t *m, const float *a, uint32_t n, uint32_t thr), {
    uint32_t i;

    for (i = 0; i < n; i++)
        m[i] = (uint8_t)(m[i] | (mag_bits(a[i]) == thr));
})

/* Block by block: a vectorised pass marks the elements above thr and
 * counts those equal to it; a block whose ties are all still wanted takes
 * them in another vectorised pass, and only the block where the ties run
 * out is walked in index order to take the first of them (NaNs are never
 * taken, even when thr is a NaN pattern: they are never counted equal). */
static void threshold(uint8_t *m, const float *a, uint64_t n, uint32_t thr,
                      uint64_t n_ties, uint64_t *ties_taken)
{
    uint64_t start, i, taken = *ties_taken;
    uint32_t len, eq;

    for (start = 0; start < n; start += len) {
        len = n - start < THR_BLOCK ? (uint32_t)(n - start) : THR_BLOCK;
        eq = AMG_SIMD(mark_above)(m + start, a + start, len, thr);
        if (eq == 0 || taken >= n_ties)
            continue;
        if (eq <= n_ties - taken) {
            AMG_SIMD(mark_equal)(m + start, a + start, len, thr);
            taken += eq;
            continue;
        }
        for (i = start; i < start + len && taken < n_ties; i++) {
            if (mag_bits(a[i]) == thr && thr <= INF_BITS) {
                m[i] = 1;
                taken++;
            }
        }
    }
    *ties_taken = taken;
}

/* The highest bin b with (*above + sum of hist[b..]) >= k, scanning down;
 * *above becomes the count strictly above b. Needs k <= above + sum(hist). */
static uint32_t find_bin(const uint64_t *hist, uint64_t k, uint64_t *above)
{
    uint32_t b = HIST_BINS - 1;

    while (*above + hist[b] < k) {
        *above += hist[b];
        b--;
    }
    return b;
}

int32_t amg__kcpu_abs_histogram(amg_ctx *ctx, const amg_tensor *x,
                                int32_t level, uint32_t prefix,
                                uint64_t *hist)
{
    int rc = amg__kcpu_arg(ctx, "abs_histogram", "x", x, AMG__KCPU_F32);

    if (rc)
        return rc;
    if (level != 0 && level != 1)
        return amg_ctx_fail(ctx, AMG_EINVAL,
                            "abs_histogram: level %d is not 0 or 1",
                            (int)level);
    if (level == 1 && prefix > 0xFFFFu)
        return amg_ctx_fail(ctx, AMG_EINVAL,
                            "abs_histogram: prefix 0x%x does not fit in 16 "
                            "bits", (unsigned)prefix);
    if (!hist)
        return amg_ctx_fail(ctx, AMG_EINVAL, "abs_histogram: hist is NULL");
    histogram(amg_tensor_data(x), amg_tensor_numel(x), level, prefix, hist);
    return AMG_OK;
}

int32_t amg__kcpu_threshold_mask(amg_ctx *ctx, amg_tensor *mask,
                                 const amg_tensor *x, uint32_t thr,
                                 uint64_t n_ties, uint64_t *ties_taken)
{
    int rc = amg__kcpu_arg(ctx, "threshold_mask", "mask", mask,
                           AMG__KCPU_MASK);

    if (!rc)
        rc = amg__kcpu_arg_like(ctx, "threshold_mask", "x", x, AMG__KCPU_F32,
                                "mask", mask);
    if (rc)
        return rc;
    if (!ties_taken)
        return amg_ctx_fail(ctx, AMG_EINVAL,
                            "threshold_mask: ties_taken is NULL");
    threshold(amg_tensor_data(mask), amg_tensor_data(x),
              amg_tensor_numel(x), thr, n_ties, ties_taken);
    return AMG_OK;
}

/* k is at least the number of non-NaN elements: take them all, then NaNs
 * in index order until k are taken. */
static void take_numbers_then_nans(uint8_t *m, const float *a, uint64_t n,
                                   uint64_t nans_wanted)
{
    uint64_t i;

    for (i = 0; i < n; i++) {
        if (mag_bits(a[i]) <= INF_BITS)
            m[i] = 1;
        else if (nans_wanted) {
            m[i] = 1;
            nans_wanted--;
        } else {
            m[i] = 0;
        }
    }
}

int32_t amg__kcpu_topk_mask(amg_ctx *ctx, amg_tensor *mask,
                            const amg_tensor *x, uint64_t k)
{
    const float *a;
    uint8_t *m;
    uint64_t *hist = NULL;
    uint64_t n, numbers, above = 0, taken = 0;
    uint32_t b0, b1, i;
    int rc = amg__kcpu_arg(ctx, "topk_mask", "mask", mask, AMG__KCPU_MASK);

    if (!rc)
        rc = amg__kcpu_arg_like(ctx, "topk_mask", "x", x, AMG__KCPU_F32,
                                "mask", mask);
    if (rc)
        goto done;
    a = amg_tensor_data(x);
    m = amg_tensor_data(mask);
    n = amg_tensor_numel(x);
    if (k == 0 || k >= n) {
        memset(m, k ? 1 : 0, (size_t)n);
        goto done;
    }
    hist = calloc(2 * (size_t)HIST_BINS, sizeof(*hist));
    if (!hist) {
        rc = amg_ctx_fail(ctx, AMG_ENOMEM,
                          "topk_mask: cannot allocate the histograms");
        goto done;
    }
    histogram(a, n, 0, 0, hist);
    numbers = 0;
    for (i = 0; i < HIST_BINS; i++)
        numbers += hist[i];
    if (k >= numbers) {
        take_numbers_then_nans(m, a, n, k - numbers);
        goto done;
    }
    b0 = find_bin(hist, k, &above);
    histogram(a, n, 1, b0, hist + HIST_BINS);
    b1 = find_bin(hist + HIST_BINS, k, &above);
    /* above elements are strictly larger than thr; k - above of the equal
     * ones complete the k */
    threshold(m, a, n, (b0 << 16) | b1, k - above, &taken);
done:
    free(hist);
    return rc;
}
