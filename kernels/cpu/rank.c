/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Magnitude ranks within rows (row_abs_rank), the ranking DELLA's MagPrune
 * turns into keep probabilities.
 *
 * The bits of |x| (sign cleared) order non-negative floats as their values
 * do, put NaN above infinity, and make +0 and -0 equal, so a row is ranked
 * by a stable radix sort on those 32-bit keys: stability is what breaks
 * ties by lower column, and the sort costs four linear passes at most
 * whatever the values (rows are at most tens of thousands of elements).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "kernels_cpu.h"

#define RADIX_BINS 256u
#define RADIX_PASSES 4

static uint32_t abs_key(float f)
{
    uint32_t u;

    memcpy(&u, &f, sizeof(u));
    return u & 0x7FFFFFFFu;
}

/* Stable LSD sort of entries key << 32 | column by key, one byte a pass.
 * The four byte histograms come from one read of the row, and a byte all
 * keys share (the high byte of a row's magnitudes usually) needs no pass.
 * Returns the buffer that holds the sorted order. */
static uint64_t *radix_sort(uint64_t *a, uint64_t *b, uint32_t n)
{
    uint32_t cnt[RADIX_PASSES][RADIX_BINS], i, d, sum, c;
    int p;

    memset(cnt, 0, sizeof(cnt));
    for (i = 0; i < n; i++)
        for (p = 0; p < RADIX_PASSES; p++)
            cnt[p][(a[i] >> (32 + 8 * p)) & 0xFFu]++;
    for (p = 0; p < RADIX_PASSES; p++) {
        uint32_t *h = cnt[p];
        uint64_t *t;

        if (h[(a[0] >> (32 + 8 * p)) & 0xFFu] == n)
            continue;
        for (d = 0, sum = 0; d < RADIX_BINS; d++) {
            c = h[d];
            h[d] = sum;
            sum += c;
        }
        for (i = 0; i < n; i++)
            b[h[(a[i] >> (32 + 8 * p)) & 0xFFu]++] = a[i];
        t = a;
        a = b;
        b = t;
    }
    return a;
}

/* norm[i] = rank i scaled to [0, 1], the same for every row of n: one
 * division per column for the call instead of one per element. */
static void rank_norms(float *norm, uint32_t n)
{
    uint32_t i;

    for (i = 0; i < n; i++)
        norm[i] = n > 1 ? (float)((double)i / (double)(n - 1)) : 0.0f;
}

static void rank_row(uint64_t *buf, const float *norm, const float *x,
                     float *out, uint32_t n)
{
    const uint64_t *e;
    uint32_t i;

    for (i = 0; i < n; i++)
        buf[i] = (uint64_t)abs_key(x[i]) << 32 | i;
    e = radix_sort(buf, buf + n, n);
    /* x is read in full above, so out may alias it */
    for (i = 0; i < n; i++)
        out[(uint32_t)e[i]] = norm[i];
}

int32_t amg__kcpu_row_abs_rank(amg_ctx *ctx, amg_tensor *out,
                               const amg_tensor *x)
{
    const float *a;
    float *o, *norm;
    uint64_t *buf;
    uint64_t r, rows, cols;
    int rc = amg__kcpu_arg(ctx, "row_abs_rank", "x", x, AMG__KCPU_F32);

    if (!rc)
        rc = amg__kcpu_arg_like(ctx, "row_abs_rank", "out", out,
                                AMG__KCPU_F32, "x", x);
    if (rc)
        return rc;
    rows = x->dl.ndim > 1 ? amg_tensor_rows(x) : 1;
    cols = rows ? amg_tensor_numel(x) / rows : 0;
    if (cols == 0)
        return AMG_OK;
    /* columns are 32-bit; a row of 2^32 elements exists in no model */
    if (cols > UINT32_MAX ||
        cols > SIZE_MAX / (2 * sizeof(uint64_t) + sizeof(float)))
        return amg_ctx_fail(ctx, AMG_EINVAL, "row_abs_rank: rows of %llu "
                            "elements are too long to rank",
                            (unsigned long long)cols);
    buf = malloc((size_t)cols * (2 * sizeof(uint64_t) + sizeof(float)));
    if (!buf)
        return amg_ctx_fail(ctx, AMG_ENOMEM, "row_abs_rank: cannot allocate "
                            "scratch for rows of %llu elements",
                            (unsigned long long)cols);
    a = amg_tensor_data(x);
    o = amg_tensor_data(out);
    norm = (float *)(buf + 2 * cols);
    rank_norms(norm, (uint32_t)cols);
    for (r = 0; r < rows; r++)
        rank_row(buf, norm, a + r * cols, o + r * cols, (uint32_t)cols);
    free(buf);
    return AMG_OK;
}
