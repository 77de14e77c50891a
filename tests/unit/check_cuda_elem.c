/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CUDA table's per-element math (kernels/cuda/elem.h), compiled as
 * C11, against the CPU kernel table: the GPU code's only test that runs
 * without a GPU. Each case runs a CPU kernel on a small tensor and
 * recomputes every element with the elem.h functions the CUDA kernels
 * call, in the way those kernels combine them (tie ranks, Philox blocks,
 * sorted rank keys, first failing element).
 *
 * Inputs are the awkward values: +-0, denormals, the narrow formats'
 * rounding and overflow edges, +-inf, NaNs with payloads and signs, and
 * LCG-random bit patterns. Results compare bit for bit, except that the
 * result of float arithmetic on a NaN need only be a NaN (elem.h explains
 * why payloads differ between devices); bit operations and conversions
 * compare bit for bit on NaNs too.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amalgam/rng.h>

#include "ctx.h"
#include "dtype.h"
#include "elem.h"
#include "kernels_cpu.h"
#include "tensor_mem.h"
#include "testutil.h"
#include "kfixture.h"

/* ---- data ---- */

static uint64_t lcg64(void)
{
    uint64_t hi = lcg();

    return hi << 32 | lcg();
}

/* f32 bit patterns every elementwise case covers */
static const uint32_t special_bits[] = {
    0x00000000u, 0x80000000u,                   /* +-0 */
    0x00000001u, 0x80000001u, 0x007FFFFFu,      /* denormals */
    0x00400000u, 0x807FFFFFu,
    0x00800000u, 0x80800000u,                   /* smallest normals */
    0x3F800000u, 0xBF800000u, 0x3F000000u,      /* 1, -1, 0.5 */
    0x3FC00000u, 0x40400000u, 0xC0490FDBu,      /* 1.5, 3, -pi */
    0x3F800001u, 0x3F801000u, 0x33800000u,      /* 1+ulp, 1+2^-12, 2^-24 */
    0x322BCC77u, 0xB22BCC77u,                   /* +-1e-8 */
    0x477FE000u, 0x477FF000u, 0x477FEFFFu,      /* 65504, 65520, below */
    0x43E00000u, 0x43E80000u, 0x43F00000u,      /* 448, 464, 480 */
    0x47600000u, 0x47700000u,                   /* 57344, 61440 */
    0x7F7FFFFFu, 0xFF7FFFFFu, 0x7F7F8000u,      /* +-max, bf16 overflow */
    0x7F800000u, 0xFF800000u,                   /* +-inf */
    0x7FC00000u, 0xFFC00000u,                   /* quiet NaNs */
    0x7F800001u, 0xFF800001u,                   /* signalling NaNs */
    0x7FA12345u, 0xFFD54321u,                   /* payloads */
};
#define N_SPECIAL (sizeof(special_bits) / sizeof(special_bits[0]))

static float bf(uint32_t b)
{
    return amg_bits_f32(b);
}

/* n floats: the specials first, then random ones, a quarter of them
 * arbitrary bit patterns and the rest ordinary numbers around 1 */
static float *values(size_t n)
{
    float *v = malloc(n * sizeof(float));
    size_t i;

    ck_assert_ptr_nonnull(v);
    for (i = 0; i < n; i++) {
        if (i < N_SPECIAL)
            v[i] = bf(special_bits[i]);
        else if (lcg() % 4 == 0)
            v[i] = bf(lcg());
        else
            v[i] = ((float)(lcg() % 2000001) - 1000000.0f) / 65536.0f;
    }
    return v;
}

static int is_nan_f(float f)
{
    return (amg_f32_bits(f) & 0x7FFFFFFFu) > 0x7F800000u;
}

static int is_nan_d(double d)
{
    return d != d;
}

/* bit for bit, or (arith) both NaN */
static void expect_f(float got, float want, int arith, const char *what,
                     size_t i)
{
    ck_assert_msg(amg_f32_bits(got) == amg_f32_bits(want) ||
                      (arith && is_nan_f(got) && is_nan_f(want)),
                  "%s, element %zu: elem.h gives 0x%08x, the CPU 0x%08x",
                  what, i, amg_f32_bits(got), amg_f32_bits(want));
}

static void expect_d(double got, double want, const char *what, size_t i)
{
    ck_assert_msg(amg_kcu_f64_bits(got) == amg_kcu_f64_bits(want) ||
                      (is_nan_d(got) && is_nan_d(want)),
                  "%s, row %zu: elem.h gives %.17g, the CPU %.17g", what, i,
                  got, want);
}

/* ---- tensors ---- */

static amg_tensor *f32s(int32_t ndim, const int64_t *shape, const float *v)
{
    amg_tensor *t = mk(amg_dl_make(AMG_DL_FLOAT, 32), ndim, shape);

    memcpy(amg_tensor_data(t), v, (size_t)amg_tensor_numel(t) * 4);
    return t;
}

/* ---- convert ---- */

/* Source elements of dtype t, as raw bits: every pattern of the 8 and 16
 * bit types, and for the wide ones the edges of every conversion plus
 * random patterns. */
static uint64_t *conv_source(amg_dtype t, size_t *n_out)
{
    static const double f64s[] = {
        0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, 127.0, 127.5, 128.0,
        -128.0, -128.5, -129.0, 255.0, 255.5, 256.0, 32767.0, 32767.5,
        32768.0, -32768.0, -32769.0, 2147483647.0, 2147483647.5,
        2147483648.0, -2147483648.0, -2147483649.0, 0x1p63, -0x1p63,
        0x1.fffffffffffffp62, -0x1.0000000000001p63, 1e300, -1e300,
        0x1p-1074, -0x1p-1074, 0x1p-149, 0x1.8p-150, 0x1p-150, 65504.0,
        65520.0, 65519.99, 448.0, 464.0, 464.0001, 3.4028235e38,
        3.4028236e38, 1e39, 0x1.000001p0, 0x1.0000008p0, 0x1.0000018p0,
        16777217.0,
    };
    static const uint64_t f64_bits[] = {
        0x7FF0000000000000ull, 0xFFF0000000000000ull, /* +-inf */
        0x7FF8000000000000ull, 0xFFF8000000000000ull, /* quiet NaN */
        0x7FF0000000000001ull, 0xFFF0000000000001ull, /* signalling */
        0x7FF123456789ABCDull, 0xFFFDEADBEEF12345ull, /* payloads */
    };
    static const int64_t ints[] = {
        0, 1, -1, 127, 128, -128, -129, 255, 256, 32767, 32768, -32768,
        -32769, 65535, 2147483647, -2147483647 - 1, 2147483648ll,
        16777217, 16777216, -16777217, 9007199254740993ll,
        INT64_MAX, INT64_MIN, INT64_MAX - 511, INT64_MIN + 1,
    };
    size_t size = amg_dtype_size(t), n, i, k = 0;
    uint64_t *v;

    if (size <= 2) {
        n = (size_t)1 << (8 * size);
        v = malloc(n * sizeof(*v));
        ck_assert_ptr_nonnull(v);
        for (i = 0; i < n; i++)
            v[i] = i;
        *n_out = n;
        return v;
    }
    n = 3000;
    v = malloc(n * sizeof(*v));
    ck_assert_ptr_nonnull(v);
    if (t == AMG_DT_F32) {
        for (i = 0; i < N_SPECIAL; i++)
            v[k++] = special_bits[i];
        for (i = 0; i < sizeof(f64s) / sizeof(f64s[0]); i++)
            v[k++] = amg_f32_bits((float)f64s[i]);
    } else if (t == AMG_DT_F64) {
        for (i = 0; i < sizeof(f64s) / sizeof(f64s[0]); i++) {
            v[k++] = amg_kcu_f64_bits(f64s[i]);
            v[k++] = amg_kcu_f64_bits(-f64s[i]);
        }
        for (i = 0; i < sizeof(f64_bits) / sizeof(f64_bits[0]); i++)
            v[k++] = f64_bits[i];
        for (i = 0; i < N_SPECIAL; i++)       /* every f32 special, wide */
            v[k++] = amg_kcu_f64_bits(amg_kcu_f32_to_f64(bf(special_bits[i])));
    } else {
        for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
            v[k++] = (uint64_t)ints[i];
    }
    for (; k < n; k++) {
        uint64_t r = lcg64();

        /* half arbitrary, half small magnitudes that land in range */
        if (k % 2 && t == AMG_DT_F64)
            r = amg_kcu_f64_bits((double)(int32_t)lcg() / (double)(lcg() |
                                                                   1u));
        else if (k % 2 && t == AMG_DT_F32)
            r = amg_f32_bits((float)(int32_t)lcg() / 4096.0f);
        else if (k % 2)
            r = (uint64_t)(int64_t)(int32_t)lcg() >> (lcg() % 32);
        v[k] = size == 4 ? r & 0xFFFFFFFFu : r;
    }
    *n_out = n;
    return v;
}

START_TEST(test_convert)
{
    int from, to;

    lcg_state = 17;
    for (from = 0; from < AMG_DT_COUNT; from++) {
        size_t n, i;
        uint64_t *src = conv_source((amg_dtype)from, &n);
        unsigned ss = (unsigned)amg_dtype_size((amg_dtype)from);
        amg_tensor *s = mk(amg_dtype_to_dl((amg_dtype)from), 1,
                           (const int64_t[]){ (int64_t)n });

        for (i = 0; i < n; i++)
            amg_kcu_store(amg_tensor_data(s), i, ss, src[i]);
        for (to = 0; to < AMG_DT_COUNT; to++) {
            unsigned so = (unsigned)amg_dtype_size((amg_dtype)to);
            amg_tensor *d;

            if (to == from)
                continue;
            d = mk(amg_dtype_to_dl((amg_dtype)to), 1,
                   (const int64_t[]){ (int64_t)n });
            ck_assert_int_eq(K->convert(&ctx, d, s), AMG_OK);
            for (i = 0; i < n; i++) {
                uint64_t in = amg_kcu_load(amg_tensor_data(s), i, ss);
                uint64_t want = amg_kcu_load(amg_tensor_data(d), i, so);
                unsigned char got[8];

                /* stored through amg_kcu_store, as the kernel does */
                amg_kcu_store(got, 0, so,
                              amg_kcu_convert(in, (amg_dtype)from,
                                              (amg_dtype)to));
                ck_assert_msg(amg_kcu_load(got, 0, so) == want,
                              "convert %s -> %s of 0x%llx: elem.h gives "
                              "0x%llx, the CPU 0x%llx",
                              amg_dtype_name((amg_dtype)from),
                              amg_dtype_name((amg_dtype)to),
                              (unsigned long long)in,
                              (unsigned long long)amg_kcu_load(got, 0, so),
                              (unsigned long long)want);
            }
            amg_tensor_free(d);
        }
        amg_tensor_free(s);
        free(src);
    }
}
END_TEST

/* ---- elementwise ---- */

#define NV 1600

START_TEST(test_elementwise)
{
    static const float alphas[] = { 0.0f, -0.0f, 1.0f, -2.5f, 0x1p-130f,
                                    3e38f, 1.0f + 0x1p-12f, INFINITY, NAN };
    float *xv, *yv;
    amg_tensor *x, *y, *o;
    size_t a, i;

    lcg_state = 23;
    xv = values(NV);
    yv = values(NV);
    /* pair every special with every special in the first N^2 slots */
    for (i = 0; i < N_SPECIAL * N_SPECIAL && i < NV; i++) {
        xv[i] = bf(special_bits[i / N_SPECIAL]);
        yv[i] = bf(special_bits[i % N_SPECIAL]);
    }
    x = f32v(xv, NV);
    y = f32v(yv, NV);
    o = f32v(xv, NV);
    for (a = 0; a < sizeof(alphas) / sizeof(alphas[0]); a++) {
        float al = alphas[a], be = alphas[(a + 3) % 9];

        ck_assert_int_eq(K->scale(&ctx, o, al, x), AMG_OK);
        for (i = 0; i < NV; i++)
            expect_f(amg_kcu_scale(al, xv[i]), F(o)[i], 1, "scale", i);
        ck_assert_int_eq(K->axpby(&ctx, o, al, x, be, y), AMG_OK);
        for (i = 0; i < NV; i++)
            expect_f(amg_kcu_axpby(al, xv[i], be, yv[i]), F(o)[i], 1,
                     "axpby", i);
    }
    ck_assert_int_eq(K->mul(&ctx, o, x, y), AMG_OK);
    for (i = 0; i < NV; i++)
        expect_f(amg_kcu_mul(xv[i], yv[i]), F(o)[i], 1, "mul", i);
    ck_assert_int_eq(K->div(&ctx, o, x, y), AMG_OK);
    for (i = 0; i < NV; i++)
        expect_f(amg_kcu_div(xv[i], yv[i]), F(o)[i], 1, "div", i);
    ck_assert_int_eq(K->abs(&ctx, o, x), AMG_OK);
    for (i = 0; i < NV; i++)
        expect_f(amg_kcu_abs(xv[i]), F(o)[i], 0, "abs", i);
    ck_assert_int_eq(K->sign(&ctx, o, x), AMG_OK);
    for (i = 0; i < NV; i++)
        expect_f(amg_kcu_sign(xv[i]), F(o)[i], 0, "sign", i);
    /* the FMA case of check_kernels: a contracted a*x + b*y leaves 2^-24 */
    ck_assert(amg_f32_bits(amg_kcu_axpby(1.0f + 0x1p-12f, 1.0f + 0x1p-12f,
                                         -1.0f, 1.0f + 0x1p-11f)) == 0);
    amg_tensor_free(x);
    amg_tensor_free(y);
    amg_tensor_free(o);
    free(xv);
    free(yv);
}
END_TEST

START_TEST(test_weighted_sum)
{
    const float w[4] = { 0.5f, -1.25f, 3e-5f, 1.0f + 0x1p-20f };
    float *v[4];
    amg_tensor *x[4], *o;
    const float *p[4];
    uint32_t n, j;
    size_t i;

    lcg_state = 29;
    for (j = 0; j < 4; j++) {
        v[j] = values(NV);
        x[j] = f32v(v[j], NV);
        p[j] = v[j];
    }
    o = f32v(v[0], NV);
    for (n = 0; n <= 4; n++) {
        ck_assert_int_eq(K->weighted_sum(&ctx, o,
                                         (const amg_tensor *const *)x, w, n),
                         AMG_OK);
        for (i = 0; i < NV; i++)
            expect_f(amg_kcu_weighted_sum(p, w, n, i), F(o)[i], 1,
                     "weighted_sum", i);
    }
    for (j = 0; j < 4; j++) {
        amg_tensor_free(x[j]);
        free(v[j]);
    }
    amg_tensor_free(o);
}
END_TEST

START_TEST(test_masks)
{
    uint8_t mv[NV];
    float *xv, *yv;
    amg_tensor *x, *y, *m, *o;
    size_t i;

    lcg_state = 31;
    xv = values(NV);
    yv = values(NV);
    /* the CPU treats any non-zero byte as set */
    for (i = 0; i < NV; i++)
        mv[i] = (uint8_t)(i % 5 == 0 ? 0 : i % 5 == 1 ? 1 : lcg());
    x = f32v(xv, NV);
    y = f32v(yv, NV);
    m = maskv(mv, NV);
    o = f32v(xv, NV);
    ck_assert_int_eq(K->mask_apply(&ctx, o, x, m), AMG_OK);
    for (i = 0; i < NV; i++)
        expect_f(amg_kcu_mask_apply(xv[i], mv[i]), F(o)[i], 0, "mask_apply",
                 i);
    ck_assert_int_eq(K->where(&ctx, o, m, x, y), AMG_OK);
    for (i = 0; i < NV; i++)
        expect_f(amg_kcu_where(mv[i], xv[i], yv[i]), F(o)[i], 0, "where", i);
    amg_tensor_free(x);
    amg_tensor_free(y);
    amg_tensor_free(m);
    amg_tensor_free(o);
    free(xv);
    free(yv);
}
END_TEST

/* ---- top-k pieces ---- */

/* Magnitudes drawn from few values, so that bins and ties are crowded;
 * both signs, +-0, NaNs and infinities among them. */
static float *crowded(size_t n)
{
    static const uint32_t pool[] = {
        0x00000000u, 0x3F800000u, 0x3F800001u, 0x3F810000u, 0x40000000u,
        0x00000003u, 0x7F800000u, 0x7FC00000u, 0x7F800001u, 0x3E99999Au,
        0x3F800002u, 0x3F8000FFu,
    };
    float *v = malloc(n * sizeof(float));
    size_t i;

    ck_assert_ptr_nonnull(v);
    for (i = 0; i < n; i++)
        v[i] = bf(pool[lcg() % (sizeof(pool) / sizeof(pool[0]))] |
                  (lcg() % 2 ? 0x80000000u : 0));
    return v;
}

START_TEST(test_histogram)
{
    uint64_t *h = calloc(65536, sizeof(uint64_t));
    uint64_t *e = calloc(65536, sizeof(uint64_t));
    const uint32_t prefixes[] = { 0x3F80, 0x0000, 0x7F80, 0x7FC0, 0x1234 };
    float *v;
    amg_tensor *x;
    size_t i, b, p;

    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_nonnull(e);
    lcg_state = 37;
    v = crowded(5000);
    for (i = 0; i < N_SPECIAL; i++)
        v[i] = bf(special_bits[i]);
    x = f32v(v, 5000);
    for (p = 0; p <= sizeof(prefixes) / sizeof(prefixes[0]); p++) {
        int32_t level = p == 0 ? 0 : 1;
        uint32_t prefix = p == 0 ? 0 : prefixes[p - 1];

        memset(h, 0, 65536 * sizeof(uint64_t));
        memset(e, 0, 65536 * sizeof(uint64_t));
        /* the API adds: both start from the same counts */
        h[7] = e[7] = 3;
        ck_assert_int_eq(K->abs_histogram(&ctx, x, level, prefix, h), AMG_OK);
        for (i = 0; i < 5000; i++) {
            uint32_t bin;

            if (amg_kcu_hist_bin(v[i], level, prefix, &bin))
                e[bin]++;
        }
        for (b = 0; b < 65536; b++)
            ck_assert_msg(h[b] == e[b], "level %d prefix 0x%x bin %zu: "
                          "elem.h counts %llu, the CPU %llu", (int)level,
                          (unsigned)prefix, b, (unsigned long long)e[b],
                          (unsigned long long)h[b]);
    }
    amg_tensor_free(x);
    free(v);
    free(h);
    free(e);
}
END_TEST

/* What select.cu's threshold pass computes, on the host: rule above or
 * tie taken while taken0 + (its rank among this call's ties) < n_ties;
 * then the count the entry reports back. */
static void gpu_threshold(uint8_t *m, const float *x, size_t n, uint32_t thr,
                          int nan_ties, uint64_t n_ties, uint64_t *taken)
{
    uint64_t rank = 0, taken0 = *taken;
    int take = taken0 < n_ties;
    size_t i;

    for (i = 0; i < n; i++) {
        uint32_t b = amg_kcu_mag_bits(x[i]);
        int above = nan_ties ? amg_kcu_is_number(b)
                             : amg_kcu_thr_above(b, thr);
        int tie = nan_ties ? !amg_kcu_is_number(b) : amg_kcu_thr_tie(b, thr);

        m[i] = (uint8_t)(above || (tie && take && taken0 + rank < n_ties));
        rank += (uint64_t)tie;
    }
    if (take)
        *taken = n_ties - taken0 < rank ? n_ties : taken0 + rank;
}

START_TEST(test_threshold)
{
    const uint32_t thrs[] = { 0x3F800000u, 0x00000000u, 0x7F800000u,
                              0x7FC00000u, 0x3F800001u, 0x00000003u,
                              0x12345678u };
    const uint64_t ties[] = { 0, 1, 7, 100, 1000000 };
    const uint64_t starts[] = { 0, 3, 7, 200 };
    enum { N = 3000 };
    uint8_t want[N];
    amg_tensor *x, *m;
    float *v;
    size_t a, b, c, i;

    lcg_state = 41;
    v = crowded(N);
    x = f32v(v, N);
    m = maskv(want, N);
    for (a = 0; a < sizeof(thrs) / sizeof(thrs[0]); a++) {
        for (b = 0; b < sizeof(ties) / sizeof(ties[0]); b++) {
            for (c = 0; c < sizeof(starts) / sizeof(starts[0]); c++) {
                uint64_t tc = starts[c], tg = starts[c];

                ck_assert_int_eq(K->threshold_mask(&ctx, m, x, thrs[a],
                                                   ties[b], &tc), AMG_OK);
                gpu_threshold(want, v, N, thrs[a], 0, ties[b], &tg);
                ck_assert_msg(tc == tg, "thr 0x%x n_ties %llu from %llu: "
                              "taken %llu, the CPU %llu", thrs[a],
                              (unsigned long long)ties[b],
                              (unsigned long long)starts[c],
                              (unsigned long long)tg,
                              (unsigned long long)tc);
                for (i = 0; i < N; i++)
                    ck_assert_msg(M(m)[i] == want[i], "thr 0x%x element "
                                  "%zu", thrs[a], i);
            }
        }
    }
    amg_tensor_free(x);
    amg_tensor_free(m);
    free(v);
}
END_TEST

/* topk_mask once k covers every number: numbers outright, NaNs as the
 * ties in index order (select.cu's nan_ties rule) */
START_TEST(test_topk_nan_rule)
{
    enum { N = 2000 };
    uint8_t want[N];
    uint64_t numbers = 0, k, taken;
    amg_tensor *x, *m;
    float *v;
    size_t i;

    lcg_state = 43;
    v = crowded(N);
    for (i = 0; i < N; i++)
        numbers += amg_kcu_is_number(amg_kcu_mag_bits(v[i]));
    ck_assert(numbers > 0 && numbers < N - 10);
    x = f32v(v, N);
    m = maskv(want, N);
    for (k = numbers; k < N; k += 1 + (N - numbers) / 7) {
        ck_assert_int_eq(K->topk_mask(&ctx, m, x, k), AMG_OK);
        taken = 0;
        gpu_threshold(want, v, N, 0, 1, k - numbers, &taken);
        for (i = 0; i < N; i++)
            ck_assert_msg(M(m)[i] == want[i], "k %llu element %zu",
                          (unsigned long long)k, i);
    }
    amg_tensor_free(x);
    amg_tensor_free(m);
    free(v);
}
END_TEST

/* ---- TIES ---- */

START_TEST(test_ties)
{
    /* w[2] alone makes a divisor of exactly the 1e-8 bound */
    const float w[3] = { 1.0f, -0.5f, 1e-8f };
    float *v[3], *sv;
    const float *p[3];
    amg_tensor *d[3], *s, *o;
    int32_t rule, norm;
    uint32_t n, j;
    size_t i;

    lcg_state = 47;
    for (j = 0; j < 3; j++) {
        v[j] = values(NV);
        /* zeros and exact cancellations are what the rules are about */
        for (i = 0; i < NV && j > 0; i += 7)
            v[j][i] = j == 1 ? 2.0f * v[0][i] : 0.0f;
        for (i = 3; i < NV && j < 2; i += 17)
            v[j][i] = 0.0f;
        d[j] = f32v(v[j], NV);
        p[j] = v[j];
    }
    s = f32v(v[0], NV);
    o = f32v(v[0], NV);
    for (n = 1; n <= 3; n++) {
        for (rule = AMG_SIGN_BY_SUM; rule <= AMG_SIGN_BY_COUNT; rule++) {
            ck_assert_int_eq(K->sign_elect(&ctx, s,
                                           (const amg_tensor *const *)d, w,
                                           n, rule), AMG_OK);
            for (i = 0; i < NV; i++)
                expect_f(amg_kcu_sign_elect(p, w, n, rule, i), F(s)[i], 0,
                         "sign_elect", i);
        }
        /* every sign: the elected one, and 0, NaN, -1 on their own */
        sv = F(s);
        for (i = 0; i < NV; i += 11)
            sv[i] = bf(special_bits[(i / 11) % N_SPECIAL]);
        for (norm = 0; norm <= 1; norm++) {
            ck_assert_int_eq(K->disjoint_merge(&ctx, o,
                                               (const amg_tensor *const *)d,
                                               w, n, s, norm), AMG_OK);
            for (i = 0; i < NV; i++)
                expect_f(amg_kcu_disjoint_merge(p, w, n, sv[i], norm, i),
                         F(o)[i], 1, "disjoint_merge", i);
        }
    }
    for (j = 0; j < 3; j++) {
        amg_tensor_free(d[j]);
        free(v[j]);
    }
    amg_tensor_free(s);
    amg_tensor_free(o);
}
END_TEST

/* ---- reductions ---- */

START_TEST(test_reductions)
{
    enum { N = 4000 };
    double got, want, acc;
    amg_tensor *x, *y;
    float *xv, *yv;
    int nan_case;
    size_t i;

    lcg_state = 53;
    for (nan_case = 0; nan_case <= 1; nan_case++) {
        xv = values(N);
        yv = values(N);
        /* numbers only, or the specials (NaN, inf) left in */
        for (i = 0; i < N; i++) {
            if (!nan_case && !isfinite(xv[i]))
                xv[i] = 1.0f;
            if (!nan_case && !isfinite(yv[i]))
                yv[i] = -3.0f;
            if (!nan_case && fabsf(xv[i]) > 1e18f)
                xv[i] = 1e-3f;
            if (!nan_case && fabsf(yv[i]) > 1e18f)
                yv[i] = 0.25f;
        }
        x = f32v(xv, N);
        y = f32v(yv, N);
        ck_assert_int_eq(K->sum(&ctx, x, &want), AMG_OK);
        for (acc = 0.0, i = 0; i < N; i++)
            acc = amg_kcu_sum_step(acc, xv[i]);
        expect_d(acc, want, "sum", 0);
        ck_assert_int_eq(K->dot(&ctx, x, y, &want), AMG_OK);
        for (acc = 0.0, i = 0; i < N; i++)
            acc = amg_kcu_dot_step(acc, xv[i], yv[i]);
        expect_d(acc, want, "dot", 0);
        ck_assert_int_eq(K->norm_l2(&ctx, x, &want), AMG_OK);
        for (acc = 0.0, i = 0; i < N; i++)
            acc = amg_kcu_dot_step(acc, xv[i], xv[i]);
        got = sqrt(acc);
        expect_d(got, want, "norm_l2", 0);
        ck_assert_int_eq(K->norm_l1(&ctx, x, &want), AMG_OK);
        for (acc = 0.0, i = 0; i < N; i++)
            acc = amg_kcu_l1_step(acc, xv[i]);
        expect_d(acc, want, "norm_l1", 0);
        amg_tensor_free(x);
        amg_tensor_free(y);
        free(xv);
        free(yv);
    }
}
END_TEST

START_TEST(test_row_reductions)
{
    /* 7 rows of 300; row 3 holds a NaN, row 5 an inf */
    enum { R = 7, C = 300 };
    const int64_t shape[2] = { R, C };
    double dots[R], all[R], kept[R];
    uint8_t mv[R * C];
    amg_tensor *x, *y, *m, *x1;
    float *xv, *yv;
    size_t r, c;

    lcg_state = 59;
    xv = values(R * C);
    yv = values(R * C);
    for (r = 0; r < R * C; r++) {
        if (!isfinite(xv[r]) || fabsf(xv[r]) > 1e18f)
            xv[r] = 0.75f;
        if (!isfinite(yv[r]) || fabsf(yv[r]) > 1e18f)
            yv[r] = -0.125f;
        mv[r] = (uint8_t)(lcg() % 2);
    }
    xv[3 * C + 17] = NAN;
    xv[5 * C + 2] = -INFINITY;
    x = f32s(2, shape, xv);
    y = f32s(2, shape, yv);
    m = maskv(mv, R * C);
    ck_assert_int_eq(K->row_dot(&ctx, x, y, dots), AMG_OK);
    ck_assert_int_eq(K->row_abs_sum(&ctx, x, m, all, kept), AMG_OK);
    for (r = 0; r < R; r++) {
        double d = 0.0, a = 0.0, k = 0.0;

        for (c = 0; c < C; c++) {
            d = amg_kcu_dot_step(d, xv[r * C + c], yv[r * C + c]);
            amg_kcu_abs_sum_step(&a, &k, xv[r * C + c], mv[r * C + c]);
        }
        expect_d(d, dots[r], "row_dot", r);
        expect_d(a, all[r], "row_abs_sum all", r);
        expect_d(k, kept[r], "row_abs_sum kept", r);
    }
    ck_assert(is_nan_d(all[3]));
    /* each element of a 1-D tensor is a row */
    x1 = f32v(xv, R);
    ck_assert_int_eq(K->row_abs_sum(&ctx, x1, NULL, all, NULL), AMG_OK);
    for (r = 0; r < R; r++) {
        double a = 0.0, k = 0.0;

        amg_kcu_abs_sum_step(&a, &k, xv[r], 0);
        expect_d(a, all[r], "row_abs_sum 1-D", r);
    }
    amg_tensor_free(x);
    amg_tensor_free(y);
    amg_tensor_free(m);
    amg_tensor_free(x1);
    free(xv);
    free(yv);
}
END_TEST

/* ---- random fills ---- */

/* rng.cu's loop: one Philox call per block, up to four elements each */
static void gpu_uniform(float *o, uint64_t seed, uint64_t stream,
                        uint64_t e0, uint64_t n)
{
    uint64_t blk, last = (e0 + n - 1) >> 2;
    unsigned j;

    for (blk = e0 >> 2; blk <= last; blk++) {
        uint32_t w[4];

        amg_rng_philox(seed, stream, blk, w);
        for (j = 0; j < 4; j++) {
            uint64_t e = blk * 4 + j;

            if (e >= e0 && e - e0 < n)
                o[e - e0] = amg_kcu_uniform_of_word(w[j]);
        }
    }
}

START_TEST(test_rng)
{
    const uint64_t offsets[] = { 0, 1, 2, 3, 5, 1000003, 0xFFFFFFFFull };
    const double ps[] = { 0.0, -1.0, NAN, 1e-9, 0x1p-24, 0x1.8p-24, 0.1,
                          0.5, 0.9, 1.0 - 1e-12, 1.0, 2.0, INFINITY };
    enum { N = 37 };
    float want[N];
    amg_tensor *o, *m;
    size_t a, b, i;

    memset(want, 0, sizeof(want));
    o = f32v(want, N);
    m = maskv((const uint8_t *)want, N);
    for (a = 0; a < sizeof(offsets) / sizeof(offsets[0]); a++) {
        o->elem_offset = m->elem_offset = offsets[a];
        ck_assert_int_eq(K->rng_uniform(&ctx, o, 0x1234ABCDull, 7), AMG_OK);
        gpu_uniform(want, 0x1234ABCDull, 7, offsets[a], N);
        for (i = 0; i < N; i++)
            expect_f(want[i], F(o)[i], 0, "rng_uniform", i);
        for (b = 0; b < sizeof(ps) / sizeof(ps[0]); b++) {
            uint32_t thr = amg_kcu_bernoulli_threshold(ps[b]);

            /* the draws below p are exactly those under thr */
            if (thr > 0)
                ck_assert((double)((float)(thr - 1) * 0x1p-24f) < ps[b]);
            if (thr < 16777216u)
                ck_assert(!((double)((float)thr * 0x1p-24f) < ps[b]));

            ck_assert_int_eq(K->rng_bernoulli(&ctx, m, ps[b], 99, 3),
                             AMG_OK);
            gpu_uniform(want, 99, 3, offsets[a], N);
            for (i = 0; i < N; i++) {
                /* the word back from its uniform: exact, 24 bits */
                uint32_t u = (uint32_t)(want[i] * 16777216.0f);
                uint8_t bit = thr == 0 ? 0 : thr == 16777216u
                                  ? 1 : amg_kcu_bernoulli_of_word(u << 8,
                                                                  thr);

                ck_assert_msg(M(m)[i] == bit, "p %g offset %llu element %zu",
                              ps[b], (unsigned long long)offsets[a], i);
                ck_assert_int_eq(bit, amg_rng_bernoulli(99, 3,
                                                        offsets[a] + i,
                                                        ps[b]));
            }
        }
    }
    amg_tensor_free(o);
    amg_tensor_free(m);
}
END_TEST

/* ---- row_abs_rank ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* rank.cu: sort each row's keys, then position i goes to the key's
 * column */
static void gpu_rank(float *out, const float *x, uint64_t rows,
                     uint64_t cols)
{
    uint64_t *keys = malloc(cols * sizeof(uint64_t));
    uint64_t r, i;

    ck_assert_ptr_nonnull(keys);
    for (r = 0; r < rows; r++) {
        for (i = 0; i < cols; i++)
            keys[i] = amg_kcu_rank_key(x[r * cols + i], (uint32_t)i);
        qsort(keys, cols, sizeof(uint64_t), cmp_u64);
        for (i = 0; i < cols; i++)
            out[r * cols + (uint32_t)keys[i]] =
                amg_kcu_rank_norm((uint32_t)i, (uint32_t)cols);
    }
    free(keys);
}

START_TEST(test_rank)
{
    const int64_t s2[2] = { 9, 211 }, s1[1] = { 300 }, s11[2] = { 5, 1 };
    const int64_t s3[3] = { 2, 3, 7 };
    const struct { int32_t ndim; const int64_t *shape; } cases[] = {
        { 2, s2 }, { 1, s1 }, { 2, s11 }, { 3, s3 }, { 0, NULL },
    };
    float *v, *want;
    size_t c, i;

    lcg_state = 61;
    v = crowded(9 * 211);
    for (i = 0; i < N_SPECIAL; i++)
        v[100 + i] = bf(special_bits[i]);
    want = malloc(9 * 211 * sizeof(float));
    ck_assert_ptr_nonnull(want);
    for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        amg_tensor *x = f32s(cases[c].ndim, cases[c].shape, v);
        amg_tensor *o = f32s(cases[c].ndim, cases[c].shape, v);
        uint64_t n = amg_tensor_numel(x);
        uint64_t rows = cases[c].ndim > 1 ? (uint64_t)cases[c].shape[0] : 1;

        ck_assert_int_eq(K->row_abs_rank(&ctx, o, x), AMG_OK);
        gpu_rank(want, v, rows, n / rows);
        for (i = 0; i < n; i++)
            expect_f(want[i], F(o)[i], 0, "row_abs_rank", i);
        amg_tensor_free(x);
        amg_tensor_free(o);
    }
    free(v);
    free(want);
}
END_TEST

/* ---- rows ---- */

START_TEST(test_row_axpby)
{
    const int64_t s2[2] = { 6, 50 };
    float alpha[6], beta[6];
    amg_tensor *x, *y, *o, *x1, *y1, *o1;
    float *xv, *yv;
    size_t r, c;

    lcg_state = 67;
    xv = values(300);
    yv = values(300);
    for (r = 0; r < 6; r++) {
        alpha[r] = bf(special_bits[(7 * r) % N_SPECIAL]);
        beta[r] = ((float)(lcg() % 1000) - 500.0f) / 64.0f;
    }
    x = f32s(2, s2, xv);
    y = f32s(2, s2, yv);
    o = f32s(2, s2, xv);
    ck_assert_int_eq(K->row_axpby(&ctx, o, alpha, x, beta, y), AMG_OK);
    for (r = 0; r < 6; r++)
        for (c = 0; c < 50; c++)
            expect_f(amg_kcu_axpby(alpha[r], xv[r * 50 + c], beta[r],
                                   yv[r * 50 + c]),
                     F(o)[r * 50 + c], 1, "row_axpby", r * 50 + c);
    /* each element of a 1-D tensor is a row */
    x1 = f32v(xv, 6);
    y1 = f32v(yv, 6);
    o1 = f32v(xv, 6);
    ck_assert_int_eq(K->row_axpby(&ctx, o1, alpha, x1, beta, y1), AMG_OK);
    for (c = 0; c < 6; c++)
        expect_f(amg_kcu_axpby(alpha[c], xv[c], beta[c], yv[c]), F(o1)[c], 1,
                 "row_axpby 1-D", c);
    amg_tensor_free(x);
    amg_tensor_free(y);
    amg_tensor_free(o);
    amg_tensor_free(x1);
    amg_tensor_free(y1);
    amg_tensor_free(o1);
    free(xv);
    free(yv);
}
END_TEST

START_TEST(test_weighted_quotient)
{
    const double c[3] = { 1.0, 0.25, 3.0 };
    const double epss[] = { 0.0, 1e-8, 0.5 };
    float *xv[3], *fv[3];
    amg_tensor *x[3], *f[3], *o;
    const float *px[3], *pf[3];
    const amg_tensor *fx[3];
    uint32_t j;
    size_t e, i;
    int fl, variant;

    lcg_state = 71;
    for (j = 0; j < 3; j++) {
        xv[j] = values(NV);
        fv[j] = values(NV);
        /* Fisher values are non-negative; keep some zeros, NaNs, inf */
        for (i = 0; i < NV; i++)
            fv[j][i] = (i + 5 * j) % 13 == 0 ? 0.0f : amg_kcu_abs(fv[j][i]);
        /* every weight 0 there when eps is: the first zero denominator */
        fv[j][500] = 0.0f;
        x[j] = f32v(xv[j], NV);
        f[j] = f32v(fv[j], NV);
        px[j] = xv[j];
    }
    o = f32v(xv[0], NV);
    for (variant = 0; variant < 2; variant++) {
        /* all Fisher tensors, or the middle one missing */
        for (j = 0; j < 3; j++) {
            fx[j] = variant && j == 1 ? NULL : f[j];
            pf[j] = variant && j == 1 ? NULL : fv[j];
        }
        for (e = 0; e < sizeof(epss) / sizeof(epss[0]); e++) {
            for (fl = 0; fl <= 1; fl++) {
                int rc = K->weighted_quotient(&ctx, o,
                                              (const amg_tensor *const *)x,
                                              fx, c, 3, epss[e], fl);
                size_t first = NV;

                for (i = 0; i < NV; i++) {
                    float v;

                    if (amg_kcu_weighted_quotient(px, pf, c, 3, epss[e], fl,
                                                  i, &v)) {
                        if (first == NV)
                            first = i;
                        continue;
                    }
                    /* the CPU stops at its first failure */
                    if (first == NV)
                        expect_f(v, F(o)[i], 1, "weighted_quotient", i);
                }
                if (first == NV) {
                    ck_assert_int_eq(rc, AMG_OK);
                } else {
                    char msg[200];

                    snprintf(msg, sizeof(msg), "weighted_quotient: the "
                             "weights sum to 0 at element %zu; epsilon > 0 "
                             "or nonzero weights avoid that", first);
                    ck_assert_int_eq(rc, AMG_EINVAL);
                    ck_assert_str_eq(ctx.err.msg, msg);
                    amg_err_clear(&ctx.err);
                }
            }
        }
    }
    for (j = 0; j < 3; j++) {
        amg_tensor_free(x[j]);
        amg_tensor_free(f[j]);
        free(xv[j]);
        free(fv[j]);
    }
    amg_tensor_free(o);
}
END_TEST

/* The double <-> float casts keep the host's NaN payloads. */
START_TEST(test_nan_casts)
{
    size_t i;

    for (i = 0; i < N_SPECIAL; i++) {
        volatile float f = bf(special_bits[i]);
        volatile double d = f;

        ck_assert_uint_eq(amg_kcu_f64_bits(amg_kcu_f32_to_f64(f)),
                          amg_kcu_f64_bits(d));
        ck_assert_uint_eq(amg_f32_bits(amg_kcu_f64_to_f32(d)),
                          amg_f32_bits((float)d));
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cuda_elem");
    TCase *tc = tcase_create("elem");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_nan_casts);
    tcase_add_test(tc, test_convert);
    tcase_add_test(tc, test_elementwise);
    tcase_add_test(tc, test_weighted_sum);
    tcase_add_test(tc, test_masks);
    tcase_add_test(tc, test_histogram);
    tcase_add_test(tc, test_threshold);
    tcase_add_test(tc, test_topk_nan_rule);
    tcase_add_test(tc, test_ties);
    tcase_add_test(tc, test_reductions);
    tcase_add_test(tc, test_row_reductions);
    tcase_add_test(tc, test_rng);
    tcase_add_test(tc, test_rank);
    tcase_add_test(tc, test_row_axpby);
    tcase_add_test(tc, test_weighted_quotient);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
