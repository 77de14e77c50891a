/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Magnitude ranks within rows (row_abs_rank), the ranking DELLA's MagPrune
 * turns into keep probabilities.
 *
 * The bits of |x| (sign cleared) order non-negative floats as their values
 * do, put NaN above infinity, and make +0 and -0 equal, so a row is ranked
 * by a stable radix sort on those 32-bit keys: stability is what breaks
 * ties by lower column, and the sort costs a few linear passes whatever
 * the values (rows are at most tens of thousands of elements).
 *
 * A row of few distinct magnitudes, as the task vectors of bf16 weights
 * are (a few hundred in a row of thousands: a difference of two bf16
 * numbers has few significant bits), is ranked by counting instead: a
 * hash table counts each magnitude, only the distinct ones are sorted,
 * and a walk in column order hands out each magnitude's ranks from its
 * first, so equal magnitudes rank by lower column as the sort has them.
 * The same ranks, for a fraction of the work; a row with too many
 * distinct magnitudes is sorted, and so is the rest of its call.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "kernels_cpu.h"
#include "simd.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize")
#endif

/* Digits of at most 11 bits: the counters of all segments stay in L1. */
#define RADIX_MAX_BITS 11u
/* Segments of a pass (radix_pass spells out four), each with its own
 * counters: a counter increment waits on the previous one of the same
 * digit (store to load), and skewed digits (a row's few exponents) make
 * that a chain; four segments run four chains side by side. */
#define RADIX_SEGS 4u

static uint32_t abs_key(float f)
{
    uint32_t u;

    memcpy(&u, &f, sizeof(u));
    return u & 0x7FFFFFFFu;
}

/* One stable counting pass of entries key << 32 | column on the digit of
 * bits bits at bit shift of the entry, a into b. Returns 0 when every entry
 * has the same digit (b untouched: nothing to reorder). cnt[d][s] counts
 * digit d in segment s, then holds where its next entry goes. */
static int radix_pass(const uint64_t *a, uint64_t *b, uint32_t n,
                      uint32_t shift, uint32_t bits)
{
    uint32_t cnt[1u << RADIX_MAX_BITS][RADIX_SEGS];
    uint32_t bins = 1u << bits, mask = bins - 1u, seg = n / RADIX_SEGS;
    const uint64_t *a0 = a, *a1 = a + seg, *a2 = a + 2 * seg;
    const uint64_t *a3 = a + 3 * seg;
    uint32_t i, d, sum;

    memset(cnt, 0, bins * sizeof(cnt[0]));
    for (i = 0; i < seg; i++) {
        cnt[(a0[i] >> shift) & mask][0]++;
        cnt[(a1[i] >> shift) & mask][1]++;
        cnt[(a2[i] >> shift) & mask][2]++;
        cnt[(a3[i] >> shift) & mask][3]++;
    }
    /* the last segment runs to the end of the row */
    for (i = RADIX_SEGS * seg; i < n; i++)
        cnt[(a[i] >> shift) & mask][3]++;
    d = (uint32_t)(a[0] >> shift) & mask;
    if (cnt[d][0] + cnt[d][1] + cnt[d][2] + cnt[d][3] == n)
        return 0;
    /* a digit's entries of segment s go after those of segments before s,
     * which keeps the pass stable */
    for (d = 0, sum = 0; d < bins; d++) {
        uint32_t c0 = cnt[d][0], c1 = cnt[d][1], c2 = cnt[d][2];
        uint32_t c3 = cnt[d][3];

        cnt[d][0] = sum;
        cnt[d][1] = sum + c0;
        cnt[d][2] = sum + c0 + c1;
        cnt[d][3] = sum + c0 + c1 + c2;
        sum += c0 + c1 + c2 + c3;
    }
    for (i = 0; i < seg; i++) {
        uint64_t e0 = a0[i], e1 = a1[i], e2 = a2[i], e3 = a3[i];

        b[cnt[(e0 >> shift) & mask][0]++] = e0;
        b[cnt[(e1 >> shift) & mask][1]++] = e1;
        b[cnt[(e2 >> shift) & mask][2]++] = e2;
        b[cnt[(e3 >> shift) & mask][3]++] = e3;
    }
    for (i = RADIX_SEGS * seg; i < n; i++)
        b[cnt[(a[i] >> shift) & mask][3]++] = a[i];
    return 1;
}

/* Passes for keys of width varying bits in rows of n: the fewest passes'
 * scatters against the counters each pass clears and sums. */
static uint32_t radix_passes(uint32_t width, uint32_t n)
{
    uint32_t p, best = 0;
    uint64_t cost, best_cost = UINT64_MAX;

    for (p = (width + RADIX_MAX_BITS - 1) / RADIX_MAX_BITS; p <= width;
         p++) {
        uint32_t bits = (width + p - 1) / p;

        cost = (uint64_t)p * (3u * (uint64_t)n +
                              ((uint64_t)RADIX_SEGS << bits));
        if (cost < best_cost) {
            best_cost = cost;
            best = p;
        }
    }
    return best;
}

/* Stable LSD sort of entries key << 32 | column by key. Bits every key
 * shares (the top of a row's magnitudes, often the low mantissa of deltas
 * of bf16 weights) need no pass: only the span from the lowest to the
 * highest bit that differs is sorted, in digits sized for the row. Returns
 * the buffer that holds the sorted order. */
static uint64_t *radix_sort(uint64_t *a, uint64_t *b, uint32_t n,
                            uint32_t varying)
{
    uint32_t lo, width, passes, bits, p;

    if (varying == 0)
        return a;                      /* all equal: index order */
    for (lo = 0; !(varying >> lo & 1u); lo++)
        ;
    for (width = 32u - lo; !(varying >> (lo + width - 1) & 1u); width--)
        ;
    passes = radix_passes(width, n);
    bits = (width + passes - 1) / passes;
    for (p = 0; p < passes; p++) {
        uint32_t at = lo + p * bits;
        uint32_t w = width - p * bits < bits ? width - p * bits : bits;

        if (radix_pass(a, b, n, 32u + at, w)) {
            uint64_t *t = a;

            a = b;
            b = t;
        }
    }
    return a;
}

/* norm[i] = rank i scaled to [0, 1], the same for every row of n: one
 * division per column for the call instead of one per element (a call is
 * often a few rows, so the divisions are worth the wider forms). */
AMG_SIMD_FN(void, rank_norms, (float *norm, uint32_t n), {
    uint32_t i;
    double last = n > 1 ? (double)(n - 1) : 1.0;

    for (i = 0; i < n; i++)
        norm[i] = (float)((double)i / last);
})

/* Distinct magnitudes a row may have to be ranked by counting: a quarter
 * of its length (more, and the sort of them costs most of a row's sort). */
#define COUNT_SHARE 4u
#define EMPTY_KEY 0xFFFFFFFFu          /* no magnitude has bit 31 set */
/* Extra probes a row may take, per element, before it is sorted instead:
 * a table at most half full needs about one. */
#define COUNT_PROBES 4u

/* Ranks of a row by counting its magnitudes (see above) into out, using
 * scratch of 2 n entries; 0 when the row has more than n / COUNT_SHARE
 * distinct magnitudes, or when they collide in the table so much that
 * probing would cost more than sorting (values made to collide must not
 * make a row quadratic), with nothing written. */
static int rank_row_counted(uint64_t *scratch, const float *norm,
                            const float *x, float *out, uint32_t n)
{
    uint32_t limit = n / COUNT_SHARE, size = 1, bits = 0, d = 0, i, r;
    uint64_t probes = 0;
    uint32_t *tkey, *tcnt, *slot;
    uint64_t *u, *e;

    /* a power of two at least twice the limit: probes stay short */
    while (size < 2 * limit) {
        size <<= 1;
        bits++;
    }
    if (bits == 0 || n < 64)
        return 0;
    /* size <= n: the table fits the first n entries, the slots and the
     * distinct magnitudes (2 x limit entries) the second */
    tkey = (uint32_t *)scratch;
    tcnt = tkey + size;
    slot = (uint32_t *)(scratch + n);
    u = scratch + n + (n + 1) / 2;
    memset(tkey, 0xFF, size * sizeof(*tkey));
    memset(tcnt, 0, size * sizeof(*tcnt));
    for (i = 0; i < n; i++) {
        uint32_t k = abs_key(x[i]);
        uint32_t h = (k * 0x9E3779B1u) >> (32 - bits);

        while (tkey[h] != k && tkey[h] != EMPTY_KEY) {
            h = (h + 1) & (size - 1);
            if (++probes > (uint64_t)COUNT_PROBES * n)
                return 0;
        }
        if (tkey[h] == EMPTY_KEY) {
            if (d == limit)
                return 0;
            tkey[h] = k;
            /* each distinct magnitude once, with its slot */
            u[d++] = (uint64_t)k << 32 | h;
        }
        tcnt[h]++;
        slot[i] = h;
    }
    /* the distinct magnitudes in order */
    {
        uint32_t any = 0, all = 0x7FFFFFFFu;

        for (i = 0; i < d; i++) {
            any |= (uint32_t)(u[i] >> 32);
            all &= (uint32_t)(u[i] >> 32);
        }
        e = radix_sort(u, u + d, d, any ^ all);
    }
    /* each magnitude's first rank */
    for (i = 0, r = 0; i < d; i++) {
        uint32_t h = (uint32_t)e[i], c = tcnt[h];

        tcnt[h] = r;
        r += c;
    }
    /* x is read in full above, so out may alias it */
    for (i = 0; i < n; i++)
        out[i] = norm[tcnt[slot[i]]++];
    return 1;
}

static void rank_row(uint64_t *buf, const float *norm, const float *x,
                     float *out, uint32_t n, int *count)
{
    const uint64_t *e;
    uint32_t i, any = 0, all = 0x7FFFFFFFu;

    if (*count) {
        if (rank_row_counted(buf, norm, x, out, n))
            return;
        /* the call's rows are alike: sort the rest of them */
        *count = 0;
    }
    /* two loops: each vectorises on its own */
    for (i = 0; i < n; i++) {
        uint32_t k = abs_key(x[i]);

        any |= k;
        all &= k;
    }
    for (i = 0; i < n; i++)
        buf[i] = (uint64_t)abs_key(x[i]) << 32 | i;
    e = radix_sort(buf, buf + n, n, any ^ all);
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
    int count = 1;
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
    AMG_SIMD(rank_norms)(norm, (uint32_t)cols);
    for (r = 0; r < rows; r++)
        rank_row(buf, norm, a + r * cols, o + r * cols, (uint32_t)cols,
                 &count);
    free(buf);
    return AMG_OK;
}
