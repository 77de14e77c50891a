/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_simd.c - every SIMD form of the CPU's hot loops (host/simd.h)
 * gives the bits of the base form, which check_kernels.c and check_dtype.c
 * hold to hand-computed values. Each kernel runs on the same inputs under
 * each form this CPU runs, at lengths around the vector widths and at an
 * address one element off alignment, with inputs that mix ordinary values
 * with the cases vector code gets wrong: signed zeros, infinities, NaNs
 * with payloads, subnormals, exact ties. Forms the CPU lacks are skipped
 * and said so.
 *
 * One freedom is allowed: when both operands of an add or multiply are
 * NaN, IEEE 754 leaves open which one the result carries, and the forms'
 * instructions order their operands differently; so a NaN result may be
 * another NaN. Every other bit pattern must be the same.
 */
#include "config.h"

#include <stdio.h>

#include "testutil.h"
#include "kfixture.h"

#include "dtype.h"
#include "fpconv.h"
#include "simd.h"

#define HIST_BINS 65536u
#define N_IN 3

/* lengths below, at and above each vector width and block size */
static const int64_t lens[] = { 1, 3, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65,
                                255, 1023, 1024, 1025, 4099 };

/* An f32 pattern: mostly ordinary numbers of a few magnitudes, the rest
 * the special cases, a few of them repeated so ties happen. */
static float gen(void)
{
    uint32_t r = lcg(), kind = r % 20, b;

    switch (kind) {
    case 0:
        return 0.0f;
    case 1:
        return -0.0f;
    case 2:
        return amg_bits_f32(0x7F800000u | ((r >> 8) & 1u) << 31);
    case 3:
        /* NaN, either sign, a payload */
        b = 0x7F800000u | (lcg() & 0x7FFFFFu) | 1u;
        return amg_bits_f32(b | ((r >> 8) & 1u) << 31);
    case 4:
        /* subnormal */
        return amg_bits_f32((lcg() & 0x7FFFFFu) | ((r >> 8) & 1u) << 31);
    case 5:
        return 0.5f;                   /* ties across inputs */
    case 6:
        return -0.5f;
    default:
        /* a bf16-like value: exponents around 1e-3 .. 1 */
        b = ((117u + (lcg() % 12u)) << 23) | (lcg() & 0x7F0000u) |
            (r & 0x8000u ? lcg() & 0xFFFFu : 0u);
        return amg_bits_f32(b | ((r >> 9) & 1u) << 31);
    }
}

/* A zeroed 1-D tensor of n elements of dt starting one element past an
 * aligned address. */
static amg_tensor *offset_t(amg_dl_dtype dt, int64_t n)
{
    int64_t m = n + 1;
    amg_tensor *t = mk(dt, 1, &m);
    size_t es = (size_t)dt.bits / 8u;

    memset(amg_tensor_data(t), 0, (size_t)m * es);
    t->dl.byte_offset += es;
    t->dl.shape[0] = n;
    return t;
}

/* The inputs of one length, kept across forms. */
typedef struct inputs {
    int64_t n;
    amg_tensor *x[N_IN];
    amg_tensor *mask;
    uint16_t *h16;                     /* raw bf16 / f16 patterns */
} inputs;

static void make_inputs(inputs *in, int64_t n)
{
    int64_t i;
    int j;

    in->n = n;
    for (j = 0; j < N_IN; j++) {
        in->x[j] = offset_t(amg_dl_make(AMG_DL_FLOAT, 32), n);
        for (i = 0; i < n; i++)
            F(in->x[j])[i] = gen();
    }
    in->mask = offset_t(amg_dl_make(AMG_DL_BOOL, 8), n);
    for (i = 0; i < n; i++)
        M(in->mask)[i] = (uint8_t)(lcg() % 3u == 0u ? lcg() % 255u + 1u : 0u);
    in->h16 = malloc((size_t)n * sizeof(uint16_t));
    ck_assert_ptr_nonnull(in->h16);
    for (i = 0; i < n; i++)
        in->h16[i] = (uint16_t)lcg();
}

static void free_inputs(inputs *in)
{
    int j;

    for (j = 0; j < N_IN; j++)
        amg_tensor_free(in->x[j]);
    amg_tensor_free(in->mask);
    free(in->h16);
}

/* How a result's bytes are compared: bit for bit, or as floats of a
 * width where any NaN equals any NaN. */
enum kind { BITS, F16, BF16, F32, F64 };

/* One kernel's output under one form: a name and the bytes. */
typedef struct result {
    const char *what;
    enum kind kind;
    unsigned char *bytes;
    size_t len;
} result;

#define MAX_RESULTS 48

typedef struct results {
    result r[MAX_RESULTS];
    int n;
} results;

static void keep(results *rs, const char *what, enum kind kind, const void *p,
                 size_t len)
{
    result *r;

    ck_assert_int_lt(rs->n, MAX_RESULTS);
    r = &rs->r[rs->n++];
    r->what = what;
    r->kind = kind;
    r->len = len;
    r->bytes = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(r->bytes);
    memcpy(r->bytes, p, len);
}

static void keep_t(results *rs, const char *what, const amg_tensor *t)
{
    keep(rs, what, amg_tensor_is_f32(t) ? F32 : BITS, amg_tensor_data(t),
         (size_t)amg_tensor_numel(t) * (size_t)(t->dl.dtype.bits / 8u));
}

static void free_results(results *rs)
{
    int i;

    for (i = 0; i < rs->n; i++)
        free(rs->r[i].bytes);
    rs->n = 0;
}

/* The elementwise, TIES and mask kernels on in, outputs into rs. */
static void run_elementwise(const inputs *in, results *rs)
{
    const amg_tensor *d[N_IN] = { in->x[0], in->x[1], in->x[2] };
    const float w[N_IN] = { 0.5f, -0.3f, 0.9f };
    amg_dl_dtype f32 = amg_dl_make(AMG_DL_FLOAT, 32);
    amg_tensor *o = offset_t(f32, in->n), *s = offset_t(f32, in->n);

    ck_assert_int_eq(K->scale(&ctx, o, 0.37f, in->x[0]), AMG_OK);
    keep_t(rs, "scale", o);
    ck_assert_int_eq(K->axpby(&ctx, o, 1.0f, in->x[0], -1.0f, in->x[1]),
                     AMG_OK);
    keep_t(rs, "axpby (a delta)", o);
    ck_assert_int_eq(K->axpby(&ctx, o, 0.3f, in->x[0], -2.5f, in->x[1]),
                     AMG_OK);
    keep_t(rs, "axpby", o);
    /* out aliasing an input, as strategies do */
    memcpy(F(o), F(in->x[1]), (size_t)in->n * sizeof(float));
    ck_assert_int_eq(K->axpby(&ctx, o, 1.0f, in->x[2], 1.0f, o), AMG_OK);
    keep_t(rs, "axpby in place", o);
    ck_assert_int_eq(K->abs(&ctx, o, in->x[0]), AMG_OK);
    keep_t(rs, "abs", o);
    ck_assert_int_eq(K->sign(&ctx, o, in->x[1]), AMG_OK);
    keep_t(rs, "sign", o);
    ck_assert_int_eq(K->fill(&ctx, o, -0.0f), AMG_OK);
    keep_t(rs, "fill", o);
    ck_assert_int_eq(K->mul(&ctx, o, in->x[0], in->x[1]), AMG_OK);
    keep_t(rs, "mul", o);
    ck_assert_int_eq(K->div(&ctx, o, in->x[0], in->x[1]), AMG_OK);
    keep_t(rs, "div", o);
    ck_assert_int_eq(K->weighted_sum(&ctx, o, d, w, N_IN), AMG_OK);
    keep_t(rs, "weighted_sum", o);
    ck_assert_int_eq(K->sign_elect(&ctx, s, d, w, N_IN, AMG_SIGN_BY_COUNT),
                     AMG_OK);
    keep_t(rs, "sign_elect count", s);
    ck_assert_int_eq(K->sign_elect(&ctx, s, d, w, N_IN, AMG_SIGN_BY_SUM),
                     AMG_OK);
    keep_t(rs, "sign_elect sum", s);
    ck_assert_int_eq(K->disjoint_merge(&ctx, o, d, w, N_IN, s, 0), AMG_OK);
    keep_t(rs, "disjoint_merge", o);
    ck_assert_int_eq(K->disjoint_merge(&ctx, o, d, w, N_IN, s, 1), AMG_OK);
    keep_t(rs, "disjoint_merge normalized", o);
    ck_assert_int_eq(K->mask_apply(&ctx, o, in->x[0], in->mask), AMG_OK);
    keep_t(rs, "mask_apply", o);
    ck_assert_int_eq(K->where(&ctx, o, in->mask, in->x[0], in->x[1]),
                     AMG_OK);
    keep_t(rs, "where", o);
    amg_tensor_free(s);
    amg_tensor_free(o);
}

/* Histograms at both levels and threshold masks with ties to take. */
static void run_select(const inputs *in, results *rs)
{
    uint64_t *hist = calloc(HIST_BINS, sizeof(*hist));
    amg_tensor *m = offset_t(amg_dl_make(AMG_DL_BOOL, 8), in->n);
    uint32_t thr = amg_f32_bits(F(in->x[0])[in->n / 2]) & 0x7FFFFFFFu;
    uint64_t taken = 0;

    ck_assert_ptr_nonnull(hist);
    ck_assert_int_eq(K->abs_histogram(&ctx, in->x[0], 0, 0, hist), AMG_OK);
    keep(rs, "abs_histogram level 0", BITS, hist, HIST_BINS * sizeof(*hist));
    memset(hist, 0, HIST_BINS * sizeof(*hist));
    ck_assert_int_eq(K->abs_histogram(&ctx, in->x[0], 1, thr >> 16, hist),
                     AMG_OK);
    keep(rs, "abs_histogram level 1", BITS, hist, HIST_BINS * sizeof(*hist));
    ck_assert_int_eq(K->threshold_mask(&ctx, m, in->x[0], thr, 1, &taken),
                     AMG_OK);
    keep_t(rs, "threshold_mask", m);
    keep(rs, "threshold_mask ties taken", BITS, &taken, sizeof(taken));
    taken = 0;
    ck_assert_int_eq(K->threshold_mask(&ctx, m, in->x[1], 0x3F000000u,
                                       UINT64_MAX, &taken), AMG_OK);
    keep_t(rs, "threshold_mask every tie", m);
    free(hist);
    amg_tensor_free(m);
}

/* The per-row kernels on the inputs seen as rows of 8 (or 1) elements,
 * and the RNG fills. */
static void run_rows(const inputs *in, results *rs)
{
    int64_t cols = in->n % 8 == 0 ? 8 : 1, shape[2];
    amg_tensor *x, *y, *mk8, *o, *u;
    double all[4100], kept[4100];
    float alpha[4100], beta[4100];
    int64_t r, rows = in->n / cols;

    ck_assert_int_le(rows, 4100);
    shape[0] = rows;
    shape[1] = cols;
    x = mk(amg_dl_make(AMG_DL_FLOAT, 32), 2, shape);
    y = mk(amg_dl_make(AMG_DL_FLOAT, 32), 2, shape);
    o = mk(amg_dl_make(AMG_DL_FLOAT, 32), 2, shape);
    mk8 = mk(amg_dl_make(AMG_DL_BOOL, 8), 2, shape);
    memcpy(F(x), F(in->x[0]), (size_t)in->n * sizeof(float));
    memcpy(F(y), F(in->x[1]), (size_t)in->n * sizeof(float));
    memcpy(M(mk8), M(in->mask), (size_t)in->n);
    for (r = 0; r < rows; r++) {
        alpha[r] = F(in->x[2])[r];
        beta[r] = 1.0f - (float)r / 64.0f;
    }
    ck_assert_int_eq(K->row_abs_sum(&ctx, x, mk8, all, kept), AMG_OK);
    keep(rs, "row_abs_sum all", F64, all, (size_t)rows * sizeof(double));
    keep(rs, "row_abs_sum kept", F64, kept, (size_t)rows * sizeof(double));
    ck_assert_int_eq(K->row_abs_sum(&ctx, x, NULL, all, NULL), AMG_OK);
    keep(rs, "row_abs_sum, no mask", F64, all, (size_t)rows * sizeof(double));
    if (in->n >= 41) {
        /* rows of 41: gathers across rows far apart, a ragged last group */
        int64_t s41[2] = { in->n / 41, 41 };
        amg_tensor *w = mk(amg_dl_make(AMG_DL_FLOAT, 32), 2, s41);
        amg_tensor *wm = mk(amg_dl_make(AMG_DL_BOOL, 8), 2, s41);

        memcpy(F(w), F(in->x[1]), (size_t)(s41[0] * 41) * sizeof(float));
        memcpy(M(wm), M(in->mask), (size_t)(s41[0] * 41));
        ck_assert_int_eq(K->row_abs_sum(&ctx, w, wm, all, kept), AMG_OK);
        keep(rs, "row_abs_sum 41 all", F64, all,
             (size_t)s41[0] * sizeof(double));
        keep(rs, "row_abs_sum 41 kept", F64, kept,
             (size_t)s41[0] * sizeof(double));
        amg_tensor_free(wm);
        amg_tensor_free(w);
    }
    ck_assert_int_eq(K->row_axpby(&ctx, o, alpha, x, beta, y), AMG_OK);
    keep_t(rs, "row_axpby", o);
    ck_assert_int_eq(K->row_abs_rank(&ctx, o, x), AMG_OK);
    keep_t(rs, "row_abs_rank", o);
    ck_assert_int_eq(K->row_dot(&ctx, x, y, all), AMG_OK);
    keep(rs, "row_dot", F64, all, (size_t)rows * sizeof(double));
    u = offset_t(amg_dl_make(AMG_DL_FLOAT, 32), in->n);
    u->elem_offset = 5;                /* a chunk inside a Philox block */
    ck_assert_int_eq(K->rng_uniform(&ctx, u, 42, 7), AMG_OK);
    keep_t(rs, "rng_uniform", u);
    ck_assert_int_eq(K->rng_bernoulli(&ctx, mk8, 0.3, 42, 7), AMG_OK);
    keep_t(rs, "rng_bernoulli", mk8);
    amg_tensor_free(u);
    amg_tensor_free(mk8);
    amg_tensor_free(o);
    amg_tensor_free(y);
    amg_tensor_free(x);
}

/* Bulk dtype conversions both ways. */
static void run_convert(const inputs *in, results *rs)
{
    size_t n = (size_t)in->n;
    float *f = malloc(n * sizeof(float));
    uint16_t *h = malloc(n * sizeof(uint16_t));

    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(h);
    amg_to_f32(AMG_DT_BF16, in->h16, f, n);
    keep(rs, "bf16 to f32", F32, f, n * sizeof(float));
    amg_to_f32(AMG_DT_F16, in->h16, f, n);
    keep(rs, "f16 to f32", F32, f, n * sizeof(float));
    amg_from_f32(AMG_DT_BF16, F(in->x[0]), h, n);
    keep(rs, "f32 to bf16", BF16, h, n * sizeof(uint16_t));
    amg_from_f32(AMG_DT_F16, F(in->x[0]), h, n);
    keep(rs, "f32 to f16", F16, h, n * sizeof(uint16_t));
    free(h);
    free(f);
}

static void run_all(const inputs *in, results *rs)
{
    run_elementwise(in, rs);
    run_select(in, rs);
    run_rows(in, rs);
    run_convert(in, rs);
}

static int is_nan(enum kind kind, const unsigned char *p)
{
    uint64_t v = 0;

    switch (kind) {
    case F16:
        memcpy(&v, p, 2);
        return (v & 0x7FFFu) > 0x7C00u;
    case BF16:
        memcpy(&v, p, 2);
        return (v & 0x7FFFu) > 0x7F80u;
    case F32:
        memcpy(&v, p, 4);
        return (v & 0x7FFFFFFFu) > 0x7F800000u;
    case F64:
        memcpy(&v, p, 8);
        return (v & 0x7FFFFFFFFFFFFFFFull) > 0x7FF0000000000000ull;
    default:
        return 0;
    }
}

/* The same result: equal bytes, or NaN where the other is NaN. Returns
 * the first element that differs, or -1. */
static long long differs(const result *a, const result *b)
{
    static const size_t width[] = { 1, 2, 2, 4, 8 };
    size_t w = width[a->kind], i;

    ck_assert_uint_eq(a->len, b->len);
    for (i = 0; i + w <= a->len; i += w) {
        if (memcmp(a->bytes + i, b->bytes + i, w) == 0)
            continue;
        if (is_nan(a->kind, a->bytes + i) && is_nan(a->kind, b->bytes + i))
            continue;
        return (long long)(i / w);
    }
    return -1;
}

/* Every form above base against base, at every length. */
static void compare_form(int level)
{
    size_t li;
    int i, before = amg_simd_active;

    if (amg_simd_use(level) != level) {
        printf("skip: this CPU does not run the %s form\n",
               amg_simd_name(level));
        amg_simd_active = before;
        return;
    }
    lcg_state = 2024;
    for (li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
        results base = { .n = 0 }, wide = { .n = 0 };
        inputs in;

        make_inputs(&in, lens[li]);
        ck_assert_int_eq(amg_simd_use(AMG_SIMD_BASE), AMG_SIMD_BASE);
        run_all(&in, &base);
        ck_assert_int_eq(amg_simd_use(level), level);
        run_all(&in, &wide);
        ck_assert_int_eq(base.n, wide.n);
        for (i = 0; i < base.n; i++) {
            long long e = differs(&base.r[i], &wide.r[i]);

            ck_assert_msg(e < 0, "%s: the %s form differs from base at "
                          "length %lld, element %lld", base.r[i].what,
                          amg_simd_name(level), (long long)lens[li], e);
        }
        free_results(&base);
        free_results(&wide);
        free_inputs(&in);
    }
    amg_simd_active = before;
}

START_TEST(test_avx2_is_base)
{
    compare_form(AMG_SIMD_AVX2);
}
END_TEST

START_TEST(test_avx512_is_base)
{
    compare_form(AMG_SIMD_AVX512);
}
END_TEST

/* The choice: never above what the CPU runs, never below base. */
START_TEST(test_use_clamps)
{
    int max = amg_simd_supported(), before = amg_simd_active;

    ck_assert_int_eq(amg_simd_use(AMG_SIMD_AVX512 + 5), max);
    ck_assert_int_eq(amg_simd_use(-3), AMG_SIMD_BASE);
    ck_assert_str_eq(amg_simd_name(AMG_SIMD_BASE), "base");
    ck_assert_str_eq(amg_simd_name(AMG_SIMD_AVX2), "avx2");
    ck_assert_str_eq(amg_simd_name(AMG_SIMD_AVX512), "avx512");
    amg_simd_active = before;
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("simd");
    TCase *tc = tcase_create("forms");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_avx2_is_base);
    tcase_add_test(tc, test_avx512_is_base);
    tcase_add_test(tc, test_use_clamps);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
