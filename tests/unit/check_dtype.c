/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for host/fpconv.h (per-element f32 <-> bf16/f16/f8 conversions)
 * and host/dtype.c (type table, name parsing, bulk conversions).
 *
 * The narrowing and widening checks compare against a reference written
 * differently from the implementation: values are decoded field by field into
 * doubles with ldexp, and rounding is done by looking up the nearest
 * representable value in a sorted table of every finite value of the format.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "dtype.h"
#include "fpconv.h"
#include "testutil.h"

/* ---- format descriptors and the independent reference ---- */

enum fkind {
    K_IEEE,     /* all-ones exponent: inf (M == 0) or NaN; overflow -> inf */
    K_FN        /* e4m3fn: only S.1111.111 is NaN, no inf, overflow
                 * saturates to the largest finite value (torch 2.13) */
};

struct fmt {
    const char *name;
    int ebits, mbits, bias;
    enum fkind kind;
    float (*dec)(uint32_t);
    uint32_t (*enc)(float);
    uint32_t (*nan_widen)(uint32_t);    /* documented f32 bits of a NaN */
    uint32_t nan_canon;                 /* documented NaN from enc, +sign */
    int nan_keeps_sign;                 /* enc(-NaN) == sign | nan_canon */
};

static float dec_bf16(uint32_t p) { return amg_bf16_to_f32((uint16_t)p); }
static float dec_f16(uint32_t p) { return amg_f16_to_f32((uint16_t)p); }
static float dec_e4m3(uint32_t p) { return amg_f8e4m3_to_f32((uint8_t)p); }
static float dec_e5m2(uint32_t p) { return amg_f8e5m2_to_f32((uint8_t)p); }
static uint32_t enc_bf16(float f) { return amg_f32_to_bf16(f); }
static uint32_t enc_f16(float f) { return amg_f32_to_f16(f); }
static uint32_t enc_e4m3(float f) { return amg_f32_to_f8e4m3(f); }
static uint32_t enc_e5m2(float f) { return amg_f32_to_f8e5m2(f); }

static uint32_t nw_bf16(uint32_t p) { return p << 16; }
static uint32_t nw_f16(uint32_t p)
{
    return ((p & 0x8000u) << 16) | 0x7FC00000u | ((p & 0x3FFu) << 13);
}
static uint32_t nw_e4m3(uint32_t p)
{
    return ((p & 0x80u) << 24) | 0x7FF00000u;
}
static uint32_t nw_e5m2(uint32_t p)
{
    return ((p & 0x80u) << 24) | 0x7FC00000u | ((p & 0x3u) << 21);
}

static const struct fmt FMT_BF16 = { "bf16", 8, 7, 127, K_IEEE, dec_bf16,
                                     enc_bf16, nw_bf16, 0x7FC0, 0 };
static const struct fmt FMT_F16 = { "f16", 5, 10, 15, K_IEEE, dec_f16,
                                    enc_f16, nw_f16, 0x7E00, 1 };
static const struct fmt FMT_E4M3 = { "e4m3fn", 4, 3, 7, K_FN, dec_e4m3,
                                     enc_e4m3, nw_e4m3, 0x7F, 1 };
static const struct fmt FMT_E5M2 = { "e5m2", 5, 2, 15, K_IEEE, dec_e5m2,
                                     enc_e5m2, nw_e5m2, 0x7F, 1 };
static const struct fmt *const FMTS[] = { &FMT_BF16, &FMT_F16, &FMT_E4M3,
                                          &FMT_E5M2 };
#define NFMTS (sizeof(FMTS) / sizeof(FMTS[0]))

static int nbits(const struct fmt *f) { return 1 + f->ebits + f->mbits; }
static uint32_t signbit_of(const struct fmt *f)
{
    return 1u << (nbits(f) - 1);
}
static uint32_t emask(const struct fmt *f) { return (1u << f->ebits) - 1; }
static uint32_t mmask(const struct fmt *f) { return (1u << f->mbits) - 1; }

static int ref_is_nan(const struct fmt *f, uint32_t p)
{
    uint32_t e = (p >> f->mbits) & emask(f), m = p & mmask(f);

    if (f->kind == K_IEEE)
        return e == emask(f) && m != 0;
    return e == emask(f) && m == mmask(f);
}

/* Value of pattern p as if every exponent were finite (no inf, no NaN). */
static double ref_value_finite(const struct fmt *f, uint32_t p)
{
    uint32_t e = (p >> f->mbits) & emask(f), m = p & mmask(f);
    double s = (p & signbit_of(f)) ? -1.0 : 1.0;

    if (e == 0)
        return s * ldexp((double)m, 1 - f->bias - f->mbits);
    return s * ldexp((double)(m + (1u << f->mbits)),
                     (int)e - f->bias - f->mbits);
}

static double ref_decode(const struct fmt *f, uint32_t p)
{
    uint32_t e = (p >> f->mbits) & emask(f);

    if (ref_is_nan(f, p))
        return NAN;
    if (f->kind == K_IEEE && e == emask(f))
        return (p & signbit_of(f)) ? -INFINITY : INFINITY;
    return ref_value_finite(f, p);
}

/* Largest finite positive pattern. */
static uint32_t max_finite(const struct fmt *f)
{
    if (f->kind == K_IEEE)
        return (emask(f) << f->mbits) - 1;
    return ((emask(f) << f->mbits) | mmask(f)) - 1;
}

/* Positive pattern that finite values rounding past max_finite become. */
static uint32_t overflow_pattern(const struct fmt *f)
{
    return f->kind == K_IEEE ? emask(f) << f->mbits : max_finite(f);
}

/* Sorted table of every finite positive value: index == pattern. */
static double *ref_table(const struct fmt *f)
{
    uint32_t n = max_finite(f) + 1, p;
    double *t = malloc(n * sizeof(*t));

    ck_assert_ptr_nonnull(t);
    for (p = 0; p < n; p++)
        t[p] = ref_decode(f, p);
    return t;
}

/* Reference narrowing: nearest table value, ties to the even pattern. */
static uint32_t ref_round(const struct fmt *f, const double *t, float x)
{
    uint32_t sb = signbit(x) ? signbit_of(f) : 0;
    uint32_t maxp = max_finite(f), lo = 0, hi = maxp, mid, up;
    double a = fabs((double)x), past = ref_value_finite(f, maxp + 1);
    double dlo, dhi;

    if (a >= past)          /* also inf */
        return sb | overflow_pattern(f);
    while (lo < hi) {       /* largest lo with t[lo] <= a */
        mid = (lo + hi + 1) / 2;
        if (t[mid] <= a)
            lo = mid;
        else
            hi = mid - 1;
    }
    up = lo == maxp ? overflow_pattern(f) : lo + 1;
    dlo = a - t[lo];
    dhi = (lo == maxp ? past : t[lo + 1]) - a;
    if (dlo < dhi)
        return sb | lo;
    if (dlo > dhi)
        return sb | up;
    return sb | ((lo & 1u) ? up : lo);
}

/* ---- widening: every pattern ---- */

static void check_decode_all(const struct fmt *f)
{
    uint32_t p, n = 1u << nbits(f);
    float got;
    double want;

    for (p = 0; p < n; p++) {
        got = f->dec(p);
        want = ref_decode(f, p);
        if (isnan(want)) {
            ck_assert_msg(isnan(got), "%s 0x%X: want NaN, got %a", f->name,
                          p, (double)got);
            ck_assert_msg(amg_f32_bits(got) == f->nan_widen(p),
                          "%s 0x%X: NaN widened to 0x%08X, documented 0x%08X",
                          f->name, p, amg_f32_bits(got), f->nan_widen(p));
            continue;
        }
        ck_assert_msg((double)got == want && !signbit(got) == !signbit(want),
                      "%s 0x%X: got %a want %a", f->name, p, (double)got,
                      want);
    }
}

START_TEST(decode_bf16_all) { check_decode_all(&FMT_BF16); }
END_TEST
START_TEST(decode_f16_all) { check_decode_all(&FMT_F16); }
END_TEST
START_TEST(decode_f8_all)
{
    check_decode_all(&FMT_E4M3);
    check_decode_all(&FMT_E5M2);
}
END_TEST

START_TEST(decode_landmarks)
{
    /* A few values spelled out, in case the reference shares a mistake. */
    ck_assert_float_eq(amg_bf16_to_f32(0x3F80), 1.0f);
    ck_assert_float_eq(amg_bf16_to_f32(0xC2F7), -123.5f);
    ck_assert_float_eq(amg_bf16_to_f32(0x0001), 0x1p-133f);
    ck_assert_float_eq(amg_bf16_to_f32(0x7F7F), 0x1.FEp127f);
    ck_assert_float_eq(amg_f16_to_f32(0x3C00), 1.0f);
    ck_assert_float_eq(amg_f16_to_f32(0x7BFF), 65504.0f);
    ck_assert_float_eq(amg_f16_to_f32(0x0001), 0x1p-24f);
    ck_assert_float_eq(amg_f16_to_f32(0x03FF), 0x1.FF8p-15f);
    ck_assert_float_eq(amg_f16_to_f32(0x0400), 0x1p-14f);
    ck_assert_float_eq(amg_f16_to_f32(0xFC00), -INFINITY);
    ck_assert_float_eq(amg_f8e4m3_to_f32(0x7E), 448.0f);
    ck_assert_float_eq(amg_f8e4m3_to_f32(0x01), 0x1p-9f);
    ck_assert_float_eq(amg_f8e4m3_to_f32(0x08), 0x1p-6f);
    ck_assert_float_eq(amg_f8e4m3_to_f32(0xB8), -1.0f);
    ck_assert(isnan(amg_f8e4m3_to_f32(0x7F)));
    ck_assert(isnan(amg_f8e4m3_to_f32(0xFF)));
    ck_assert_float_eq(amg_f8e4m3_to_f32(0x78), 256.0f); /* not inf */
    ck_assert_float_eq(amg_f8e5m2_to_f32(0x7B), 57344.0f);
    ck_assert_float_eq(amg_f8e5m2_to_f32(0x01), 0x1p-16f);
    ck_assert_float_eq(amg_f8e5m2_to_f32(0x7C), INFINITY);
    ck_assert(isnan(amg_f8e5m2_to_f32(0x7D)));
    ck_assert_uint_eq(amg_f32_bits(amg_f16_to_f32(0x8000)), 0x80000000u);
    ck_assert_uint_eq(amg_f32_bits(amg_f8e4m3_to_f32(0x80)), 0x80000000u);
    ck_assert_uint_eq(amg_f32_bits(amg_bits_f32(0x12345678u)), 0x12345678u);
}
END_TEST

/* ---- narrowing: every adjacent pair of representable values ---- */

static void expect_enc(const struct fmt *f, float x, uint32_t want,
                       const char *what, uint32_t p)
{
    uint32_t got = f->enc(x);

    ck_assert_msg(got == want, "%s pair 0x%X, %s: f32 %a (0x%08X) -> 0x%X, "
                  "want 0x%X", f->name, p, what, (double)x, amg_f32_bits(x),
                  got, want);
}

static void check_pairs(const struct fmt *f)
{
    uint32_t maxp = max_finite(f), p, up, even, sb;
    double lo, hi, mid;
    float flo, fmid;
    int neg;

    for (p = 0; p <= maxp; p++) {
        lo = ref_decode(f, p);
        hi = ref_value_finite(f, p + 1);  /* past max: the first value the
                                            * format cannot hold */
        up = p == maxp ? overflow_pattern(f) : p + 1;
        even = (p & 1u) ? up : p;
        mid = (lo + hi) / 2;
        flo = (float)lo;
        fmid = (float)mid;
        ck_assert_msg((double)flo == lo && (double)fmid == mid,
                      "%s 0x%X: value or midpoint not exact in f32", f->name,
                      p);
        for (neg = 0; neg < 2; neg++) {
            float s = neg ? -1.0f : 1.0f;

            sb = neg ? signbit_of(f) : 0;
            expect_enc(f, s * flo, sb | p, "exact", p);
            expect_enc(f, s * nextafterf(flo, INFINITY), sb | p, "above", p);
            expect_enc(f, s * fmid, sb | even, "midpoint", p);
            expect_enc(f, s * nextafterf(fmid, 0.0f), sb | p, "below mid",
                       p);
            expect_enc(f, s * nextafterf(fmid, INFINITY), sb | up,
                       "above mid", p);
            if (p < maxp)
                expect_enc(f, s * nextafterf((float)hi, 0.0f), sb | up,
                           "below next", p);
        }
    }
}

START_TEST(pairs_bf16) { check_pairs(&FMT_BF16); }
END_TEST
START_TEST(pairs_f16) { check_pairs(&FMT_F16); }
END_TEST
START_TEST(pairs_f8)
{
    check_pairs(&FMT_E4M3);
    check_pairs(&FMT_E5M2);
}
END_TEST

/* ---- narrowing: specials ---- */

static void check_specials(const struct fmt *f)
{
    static const uint32_t nans[] = { 0x7FC00000u, 0xFFC00000u, 0x7F800001u,
                                     0xFF800001u, 0x7FA12345u, 0x7FFFFFFFu,
                                     0xFFFFFFFFu };
    uint32_t sb = signbit_of(f), inf_or_sat = overflow_pattern(f), got, want;
    size_t i;

    ck_assert_uint_eq(f->enc(0.0f), 0);
    ck_assert_uint_eq(f->enc(-0.0f), sb);
    ck_assert_uint_eq(f->enc(INFINITY), inf_or_sat);
    ck_assert_uint_eq(f->enc(-INFINITY), sb | inf_or_sat);
    ck_assert_uint_eq(f->enc(FLT_MAX), inf_or_sat);
    ck_assert_uint_eq(f->enc(-FLT_MAX), sb | inf_or_sat);
    ck_assert_uint_eq(f->enc(amg_bits_f32(1)), 0);          /* 2^-149 */
    ck_assert_uint_eq(f->enc(amg_bits_f32(0x80000001u)), sb);
    for (i = 0; i < sizeof(nans) / sizeof(nans[0]); i++) {
        got = f->enc(amg_bits_f32(nans[i]));
        want = f->nan_canon;
        if (f->nan_keeps_sign && (nans[i] & 0x80000000u))
            want |= sb;
        ck_assert_msg(ref_is_nan(f, got), "%s: NaN 0x%08X -> 0x%X, not NaN",
                      f->name, nans[i], got);
        ck_assert_msg(got == want, "%s: NaN 0x%08X -> 0x%X, documented 0x%X",
                      f->name, nans[i], got, want);
    }
}

START_TEST(specials_all)
{
    size_t i;

    for (i = 0; i < NFMTS; i++)
        check_specials(FMTS[i]);
}
END_TEST

START_TEST(overflow_thresholds)
{
    /* bf16: the halfway point past max 0x7F7F is 0x7F7F8000 (ties to even
     * = inf); one ulp below stays at max. */
    ck_assert_uint_eq(amg_f32_to_bf16(amg_bits_f32(0x7F7F8000u)), 0x7F80);
    ck_assert_uint_eq(amg_f32_to_bf16(amg_bits_f32(0x7F7F7FFFu)), 0x7F7F);
    ck_assert_uint_eq(amg_f32_to_bf16(amg_bits_f32(0xFF7F8000u)), 0xFF80);
    /* f16: 65520 -> inf, 65519.996 -> 65504 */
    ck_assert_uint_eq(amg_f32_to_f16(65520.0f), 0x7C00);
    ck_assert_uint_eq(amg_f32_to_f16(nextafterf(65520.0f, 0.0f)), 0x7BFF);
    ck_assert_uint_eq(amg_f32_to_f16(-65520.0f), 0xFC00);
    ck_assert_uint_eq(amg_f32_to_f16(65504.0f), 0x7BFF);
    /* e4m3fn saturates: 464 ties to 448, anything above is 448 too */
    ck_assert_uint_eq(amg_f32_to_f8e4m3(448.0f), 0x7E);
    ck_assert_uint_eq(amg_f32_to_f8e4m3(464.0f), 0x7E);
    ck_assert_uint_eq(amg_f32_to_f8e4m3(nextafterf(464.0f, 1e9f)), 0x7E);
    ck_assert_uint_eq(amg_f32_to_f8e4m3(480.0f), 0x7E);
    ck_assert_uint_eq(amg_f32_to_f8e4m3(1e30f), 0x7E);
    ck_assert_uint_eq(amg_f32_to_f8e4m3(-1e30f), 0xFE);
    ck_assert_uint_eq(amg_f32_to_f8e4m3(nextafterf(432.0f, 0.0f)), 0x7D);
    ck_assert_uint_eq(amg_f32_to_f8e4m3(432.0f), 0x7E);  /* tie, 416|448 */
    /* e5m2: 61440 ties to inf, below stays 57344 */
    ck_assert_uint_eq(amg_f32_to_f8e5m2(61440.0f), 0x7C);
    ck_assert_uint_eq(amg_f32_to_f8e5m2(nextafterf(61440.0f, 0.0f)), 0x7B);
    ck_assert_uint_eq(amg_f32_to_f8e5m2(-61440.0f), 0xFC);
    ck_assert_uint_eq(amg_f32_to_f8e5m2(65536.0f), 0x7C);
}
END_TEST

START_TEST(f32_subnormals)
{
    /* bf16 keeps f32's exponent range: f32 subnormals round to bf16
     * subnormals (multiples of 2^-133 = 0x00010000). */
    ck_assert_uint_eq(amg_f32_to_bf16(amg_bits_f32(0x00008000u)), 0x0000);
    ck_assert_uint_eq(amg_f32_to_bf16(amg_bits_f32(0x00008001u)), 0x0001);
    ck_assert_uint_eq(amg_f32_to_bf16(amg_bits_f32(0x00018000u)), 0x0002);
    ck_assert_uint_eq(amg_f32_to_bf16(amg_bits_f32(0x00017FFFu)), 0x0001);
    ck_assert_uint_eq(amg_f32_to_bf16(amg_bits_f32(0x007FFFFFu)), 0x0080);
    ck_assert_uint_eq(amg_f32_to_bf16(amg_bits_f32(0x807F7FFFu)), 0x807F);
    /* the narrower formats flush them to (signed) zero */
    ck_assert_uint_eq(amg_f32_to_f16(amg_bits_f32(0x007FFFFFu)), 0x0000);
    ck_assert_uint_eq(amg_f32_to_f16(amg_bits_f32(0x807FFFFFu)), 0x8000);
    ck_assert_uint_eq(amg_f32_to_f8e4m3(amg_bits_f32(0x807FFFFFu)), 0x80);
    ck_assert_uint_eq(amg_f32_to_f8e5m2(amg_bits_f32(0x007FFFFFu)), 0x00);
}
END_TEST

/* ---- narrowing: a sweep of f32 bit patterns against ref_round ---- */

START_TEST(sweep_vs_reference)
{
    const struct fmt *f = FMTS[_i];
    double *t = ref_table(f);
    uint64_t u;
    uint32_t got, want;
    float x;
    unsigned long bad = 0;
    char first[200] = "";

    /* ~1M patterns per format: a prime stride walks every exponent with
     * varied low mantissa bits, both signs, inf and NaN included. */
    for (u = 0; u <= 0xFFFFFFFFu; u += 4093) {
        x = amg_bits_f32((uint32_t)u);
        got = f->enc(x);
        if (isnan(x)) {
            if (!ref_is_nan(f, got) && !bad++)
                snprintf(first, sizeof(first), "0x%08X -> 0x%X not NaN",
                         (unsigned)u, got);
            continue;
        }
        want = ref_round(f, t, x);
        if (got != want && !bad++)
            snprintf(first, sizeof(first), "0x%08X -> 0x%X, want 0x%X",
                     (unsigned)u, got, want);
    }
    free(t);
    ck_assert_msg(bad == 0, "%s: %lu mismatches, first %s", f->name, bad,
                  first);
}
END_TEST

/* ---- inputs with bits from real PyTorch ---- */

/*
 * Expected bits from torch 2.13.0+cpu (x86-64, AVX-512), as
 * x.to(dtype).view(int16/uint8) for bfloat16, float16, float8_e4m3fn and
 * float8_e5m2, through both the scalar path (a strided float32 tensor) and
 * the vectorized path (a contiguous one). The paths agree on every non-NaN
 * input; for NaN inputs the scalar path is listed and the vectorized one,
 * where it differs, in the comment above the row (its bf16 NaN is 0xFFFF).
 * NaN results are compared by class only.
 */
static const struct {
    uint32_t in;
    uint16_t bf16, f16;
    uint8_t e4m3, e5m2;
} torch_table[] = {
    { 0x00000000u, 0x0000, 0x0000, 0x00, 0x00 }, /* +0 */
    { 0x80000000u, 0x8000, 0x8000, 0x80, 0x80 }, /* -0 */
    { 0x3F800000u, 0x3F80, 0x3C00, 0x38, 0x3C }, /* 1 */
    { 0xBF800000u, 0xBF80, 0xBC00, 0xB8, 0xBC }, /* -1 */
    { 0x3F808000u, 0x3F80, 0x3C04, 0x38, 0x3C }, /* bf16 tie -> even, down */
    { 0x3F818000u, 0x3F82, 0x3C0C, 0x38, 0x3C }, /* bf16 tie -> even, up */
    { 0x3F80FFFFu, 0x3F81, 0x3C08, 0x38, 0x3C }, /* just below bf16 tie */
    { 0x3DCCCCCDu, 0x3DCD, 0x2E66, 0x1D, 0x2E }, /* 0.1 */
    { 0x3EAAAAABu, 0x3EAB, 0x3555, 0x2B, 0x35 }, /* 1/3 */
    { 0xC2F70000u, 0xC2F7, 0xD7B8, 0xEF, 0xD8 }, /* -123.5 */
    { 0x7F7FFFFFu, 0x7F80, 0x7C00, 0x7E, 0x7C }, /* f32 max */
    { 0x7F7F7FFFu, 0x7F7F, 0x7C00, 0x7E, 0x7C }, /* below bf16 ovf tie */
    { 0x7F7F8000u, 0x7F80, 0x7C00, 0x7E, 0x7C }, /* bf16 ovf tie -> inf */
    { 0x477FE000u, 0x4780, 0x7BFF, 0x7E, 0x7C }, /* 65504 f16 max */
    { 0x477FEFFFu, 0x4780, 0x7BFF, 0x7E, 0x7C }, /* 65519.996 */
    { 0x477FF000u, 0x4780, 0x7C00, 0x7E, 0x7C }, /* 65520 -> f16 inf */
    { 0x33000000u, 0x3300, 0x0000, 0x00, 0x00 }, /* 2^-25 f16 tie -> 0 */
    { 0x33000001u, 0x3300, 0x0001, 0x00, 0x00 }, /* just above 2^-25 */
    { 0x33800000u, 0x3380, 0x0001, 0x00, 0x00 }, /* 2^-24 f16 min subn */
    { 0x33C00000u, 0x33C0, 0x0002, 0x00, 0x00 }, /* 1.5*2^-24 tie -> 2 */
    { 0x387FC000u, 0x3880, 0x03FF, 0x00, 0x04 }, /* f16 max subnormal */
    { 0x387FF000u, 0x3880, 0x0400, 0x00, 0x04 }, /* -> f16 min normal */
    { 0x00000001u, 0x0000, 0x0000, 0x00, 0x00 }, /* f32 min subnormal */
    { 0x00008000u, 0x0000, 0x0000, 0x00, 0x00 }, /* f32 subn, bf16 tie 0 */
    { 0x00018000u, 0x0002, 0x0000, 0x00, 0x00 }, /* f32 subn, bf16 tie up */
    { 0x807FFFFFu, 0x8080, 0x8000, 0x80, 0x80 }, /* -f32 max subn */
    { 0x3A800000u, 0x3A80, 0x1400, 0x00, 0x14 }, /* 2^-10 e4m3 tie -> 0 */
    { 0x3A800001u, 0x3A80, 0x1400, 0x01, 0x14 }, /* just above 2^-10 */
    { 0x3B400000u, 0x3B40, 0x1A00, 0x02, 0x1A }, /* 1.5*2^-9 e4m3 tie -> 2 */
    { 0x3C7FFFFFu, 0x3C80, 0x2400, 0x08, 0x24 }, /* -> e4m3 min normal */
    { 0x43E00000u, 0x43E0, 0x5F00, 0x7E, 0x5F }, /* 448 e4m3 max */
    { 0x43E80000u, 0x43E8, 0x5F40, 0x7E, 0x5F }, /* 464 e4m3 tie -> 448 */
    { 0x43E80001u, 0x43E8, 0x5F40, 0x7E, 0x5F }, /* e4m3 saturates */
    { 0x43F00000u, 0x43F0, 0x5F80, 0x7E, 0x60 }, /* 480 */
    { 0xC4000000u, 0xC400, 0xE000, 0xFE, 0xE0 }, /* -512 */
    { 0x37000000u, 0x3700, 0x0080, 0x00, 0x00 }, /* 2^-17 e5m2 tie -> 0 */
    { 0x37400000u, 0x3740, 0x00C0, 0x00, 0x01 }, /* 0.75*2^-16 -> e5m2 1 */
    { 0x37C00000u, 0x37C0, 0x0180, 0x00, 0x02 }, /* 1.5*2^-16 e5m2 tie -> 2 */
    { 0x3F7FFFFFu, 0x3F80, 0x3C00, 0x38, 0x3C }, /* just below 1 */
    { 0x47600000u, 0x4760, 0x7B00, 0x7E, 0x7B }, /* 57344 e5m2 max */
    { 0x476FFFFFu, 0x4770, 0x7B80, 0x7E, 0x7B }, /* below 61440 */
    { 0x47700000u, 0x4770, 0x7B80, 0x7E, 0x7C }, /* 61440 e5m2 tie -> inf */
    { 0x47800000u, 0x4780, 0x7C00, 0x7E, 0x7C }, /* 65536 */
    { 0x7F800000u, 0x7F80, 0x7C00, 0x7E, 0x7C }, /* +inf */
    { 0xFF800000u, 0xFF80, 0xFC00, 0xFE, 0xFC }, /* -inf */
    /* torch vector path: 0xFFFF, 0x7E00, 0x7F, 0x7F */
    { 0x7FC00000u, 0x7FC0, 0x7E00, 0x7F, 0x7F }, /* qNaN */
    /* torch vector path: 0xFFFF, 0xFE00, 0xFF, 0xFF */
    { 0xFFC00000u, 0x7FC0, 0xFE00, 0xFF, 0xFF }, /* -qNaN */
    /* torch vector path: 0xFFFF, 0x7E00, 0x7F, 0x7F */
    { 0x7F800001u, 0x7FC0, 0x7E00, 0x7F, 0x7F }, /* sNaN */
    /* torch vector path: 0xFFFF, 0x7F09, 0x7F, 0x7F */
    { 0x7FA12345u, 0x7FC0, 0x7F09, 0x7F, 0x7F }, /* NaN payload */
};

START_TEST(torch_bits)
{
    size_t i, k;
    uint32_t got[4], want[4];
    float x;

    for (i = 0; i < sizeof(torch_table) / sizeof(torch_table[0]); i++) {
        x = amg_bits_f32(torch_table[i].in);
        want[0] = torch_table[i].bf16;
        want[1] = torch_table[i].f16;
        want[2] = torch_table[i].e4m3;
        want[3] = torch_table[i].e5m2;
        for (k = 0; k < NFMTS; k++) {
            got[k] = FMTS[k]->enc(x);
            if (ref_is_nan(FMTS[k], want[k]))
                ck_assert_msg(ref_is_nan(FMTS[k], got[k]),
                              "%s 0x%08X: 0x%X, torch gives NaN 0x%X",
                              FMTS[k]->name, torch_table[i].in, got[k],
                              want[k]);
            else
                ck_assert_msg(got[k] == want[k],
                              "%s 0x%08X: 0x%X, torch gives 0x%X",
                              FMTS[k]->name, torch_table[i].in, got[k],
                              want[k]);
        }
    }
}
END_TEST

/* ---- bulk conversions ---- */

/* A scratch buffer whose data starts at an odd address, with guard bytes. */
#define GUARD 0xA5
static unsigned char *odd_buf(size_t len)
{
    unsigned char *b = malloc(len + 3);

    ck_assert_ptr_nonnull(b);
    memset(b, GUARD, len + 3);
    return b;
}

static void check_guards(const unsigned char *b, size_t len)
{
    ck_assert_uint_eq(b[0], GUARD);
    ck_assert_uint_eq(b[len + 1], GUARD);
    ck_assert_uint_eq(b[len + 2], GUARD);
}

START_TEST(bulk_to_f32)
{
    static const struct {
        amg_dtype t;
        size_t n;
        unsigned char bytes[24];
        float want[3];
    } cases[] = {
        { AMG_DT_F64, 3,
          { 0, 0, 0, 0, 0, 0, 0xF8, 0x3F,           /* 1.5 */
            0, 0, 0, 0, 0, 0, 0x00, 0xC0,           /* -2 */
            0x9C, 0x75, 0x88, 0x3C, 0xE4, 0x37, 0x7E, 0x7E }, /* 1e300 */
          { 1.5f, -2.0f, INFINITY } },
        { AMG_DT_F32, 3,
          { 0, 0, 0x80, 0x3F, 0, 0, 0xC0, 0xBF, 1, 0, 0, 0 },
          { 1.0f, -1.5f, 0x1p-149f } },
        { AMG_DT_F16, 3, { 0x00, 0x3C, 0x00, 0xC0, 0x00, 0x7C },
          { 1.0f, -2.0f, INFINITY } },
        { AMG_DT_BF16, 3, { 0x80, 0x3F, 0x40, 0xC0, 0x01, 0x00 },
          { 1.0f, -3.0f, 0x1p-133f } },
        { AMG_DT_I64, 3,
          { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F,
            0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0 },   /* 2^24 + 1 */
          { -1.0f, 0x1p63f, 16777216.0f } },
        { AMG_DT_I32, 3,
          { 0xFB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F,
            0x03, 0x00, 0x00, 0x01 },               /* 2^24 + 3 */
          { -5.0f, 0x1p31f, 16777220.0f } },
        { AMG_DT_I16, 3, { 0x00, 0x80, 0xD2, 0x04, 0xFF, 0xFF },
          { -32768.0f, 1234.0f, -1.0f } },
        { AMG_DT_I8, 3, { 0x80, 0x7F, 0xFF }, { -128.0f, 127.0f, -1.0f } },
        { AMG_DT_U8, 3, { 0x00, 0x7F, 0xFF }, { 0.0f, 127.0f, 255.0f } },
        { AMG_DT_BOOL, 3, { 0x00, 0x01, 0xFF }, { 0.0f, 1.0f, 1.0f } },
        { AMG_DT_F8_E4M3, 3, { 0x38, 0xFE, 0x01 },
          { 1.0f, -448.0f, 0x1p-9f } },
        { AMG_DT_F8_E5M2, 3, { 0x3C, 0x7B, 0xFC },
          { 1.0f, 57344.0f, -INFINITY } },
    };
    size_t i, j, len;
    unsigned char *b;
    float out[4];

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        len = cases[i].n * amg_dtype_size(cases[i].t);
        b = odd_buf(len);
        memcpy(b + 1, cases[i].bytes, len);
        out[3] = 42.0f;
        amg_to_f32(cases[i].t, b + 1, out, cases[i].n);
        for (j = 0; j < cases[i].n; j++)
            ck_assert_msg(amg_f32_bits(out[j]) ==
                              amg_f32_bits(cases[i].want[j]),
                          "%s[%zu]: got %a want %a",
                          amg_dtype_name(cases[i].t), j, (double)out[j],
                          (double)cases[i].want[j]);
        ck_assert_float_eq(out[3], 42.0f);
        free(b);
    }
}
END_TEST

START_TEST(bulk_from_f32_ints)
{
    static const float in[] = {
        1.5f, -2.7f, 1e10f, -1e10f, NAN, 0.0f, -0.0f, 0.99f, 300.0f,
        -129.0f, INFINITY, -INFINITY, -0.9f, 2147483520.0f, 0x1p31f,
        -0x1p31f, 32767.9f, -128.9f, 255.9f, 9223371487098961920.0f,
        -0x1p63f, -NAN,
    };
#define N (sizeof(in) / sizeof(in[0]))
    static const int64_t w64[N] = {
        1, -2, 10000000000LL, -10000000000LL, 0, 0, 0, 0, 300, -129,
        INT64_MAX, INT64_MIN, 0, 2147483520LL, 2147483648LL, -2147483648LL,
        32767, -128, 255, 9223371487098961920LL, INT64_MIN, 0,
    };
    static const int32_t w32[N] = {
        1, -2, INT32_MAX, INT32_MIN, 0, 0, 0, 0, 300, -129, INT32_MAX,
        INT32_MIN, 0, 2147483520, INT32_MAX, INT32_MIN, 32767, -128, 255,
        INT32_MAX, INT32_MIN, 0,
    };
    static const int16_t w16[N] = {
        1, -2, 32767, -32768, 0, 0, 0, 0, 300, -129, 32767, -32768, 0,
        32767, 32767, -32768, 32767, -128, 255, 32767, -32768, 0,
    };
    static const int8_t w8[N] = {
        1, -2, 127, -128, 0, 0, 0, 0, 127, -128, 127, -128, 0, 127, 127,
        -128, 127, -128, 127, 127, -128, 0,
    };
    static const uint8_t wu8[N] = {
        1, 0, 255, 0, 0, 0, 0, 0, 255, 0, 255, 0, 0, 255, 255, 0, 255, 0,
        255, 255, 0, 0,
    };
    static const uint8_t wb[N] = {
        1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    };
    static const amg_dtype types[] = { AMG_DT_I64, AMG_DT_I32, AMG_DT_I16,
                                       AMG_DT_I8, AMG_DT_U8, AMG_DT_BOOL };
    size_t k, i, j, sz;
    unsigned char *b;
    uint64_t v;
    int64_t got, want = 0;

    for (k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
        sz = amg_dtype_size(types[k]);
        b = odd_buf(N * sz);
        amg_from_f32(types[k], in, b + 1, N);
        check_guards(b, N * sz);
        for (i = 0; i < N; i++) {
            v = 0;
            for (j = sz; j-- > 0;)          /* little-endian */
                v = (v << 8) | b[1 + i * sz + j];
            switch (types[k]) {
            case AMG_DT_I64: got = (int64_t)v; want = w64[i]; break;
            case AMG_DT_I32: got = (int32_t)(uint32_t)v; want = w32[i]; break;
            case AMG_DT_I16: got = (int16_t)(uint16_t)v; want = w16[i]; break;
            case AMG_DT_I8: got = (int8_t)(uint8_t)v; want = w8[i]; break;
            case AMG_DT_U8: got = (int64_t)v; want = wu8[i]; break;
            default: got = (int64_t)v; want = wb[i]; break;
            }
            ck_assert_msg(got == want, "%s[%zu] (%a): got %lld want %lld",
                          amg_dtype_name(types[k]), i, (double)in[i],
                          (long long)got, (long long)want);
        }
        free(b);
    }
#undef N
}
END_TEST

START_TEST(bulk_from_f32_floats)
{
    static const float in[] = { 1.0f, -0.0f, 0.1f, 1e30f, -INFINITY,
                                0x1p-20f, 1.00390625f, NAN };
    static const unsigned char w64[] = {
        0, 0, 0, 0, 0, 0, 0xF0, 0x3F,
        0, 0, 0, 0, 0, 0, 0, 0x80,
        0, 0, 0, 0xA0, 0x99, 0x99, 0xB9, 0x3F,
    };
    static const unsigned char wf16[] = {
        0x00, 0x3C, 0x00, 0x80, 0x66, 0x2E, 0x00, 0x7C, 0x00, 0xFC,
        0x10, 0x00, 0x04, 0x3C, 0x00, 0x7E,
    };
    static const unsigned char wbf16[] = {
        0x80, 0x3F, 0x00, 0x80, 0xCD, 0x3D, 0x4A, 0x71, 0x80, 0xFF,
        0x80, 0x35, 0x80, 0x3F, 0xC0, 0x7F,
    };
    static const unsigned char we4m3[] = { 0x38, 0x80, 0x1D, 0x7E, 0xFE,
                                           0x00, 0x38, 0x7F };
    static const unsigned char we5m2[] = { 0x3C, 0x80, 0x2E, 0x7C, 0xFC,
                                           0x00, 0x3C, 0x7F };
#define N (sizeof(in) / sizeof(in[0]))
    unsigned char *b;
    float back[N];
    size_t i;

    b = odd_buf(N * 8);
    amg_from_f32(AMG_DT_F64, in, b + 1, 3);
    ck_assert_mem_eq(b + 1, w64, sizeof(w64));
    ck_assert_uint_eq(b[1 + sizeof(w64)], GUARD);
    amg_to_f32(AMG_DT_F64, b + 1, back, 3);
    ck_assert_mem_eq(back, in, 3 * sizeof(float));

    memset(b, GUARD, N * 8 + 3);
    amg_from_f32(AMG_DT_F32, in, b + 1, N);
    ck_assert_mem_eq(b + 1, in, N * 4);     /* bit copy, NaN included */
    ck_assert_uint_eq(b[1 + N * 4], GUARD);

    memset(b, GUARD, N * 8 + 3);
    amg_from_f32(AMG_DT_F16, in, b + 1, N);
    ck_assert_mem_eq(b + 1, wf16, sizeof(wf16));
    ck_assert_uint_eq(b[1 + N * 2], GUARD);

    memset(b, GUARD, N * 8 + 3);
    amg_from_f32(AMG_DT_BF16, in, b + 1, N);
    ck_assert_mem_eq(b + 1, wbf16, sizeof(wbf16));
    ck_assert_uint_eq(b[1 + N * 2], GUARD);

    memset(b, GUARD, N * 8 + 3);
    amg_from_f32(AMG_DT_F8_E4M3, in, b + 1, N);
    ck_assert_mem_eq(b + 1, we4m3, sizeof(we4m3));
    ck_assert_uint_eq(b[1 + N], GUARD);

    memset(b, GUARD, N * 8 + 3);
    amg_from_f32(AMG_DT_F8_E5M2, in, b + 1, N);
    ck_assert_mem_eq(b + 1, we5m2, sizeof(we5m2));
    ck_assert_uint_eq(b[1 + N], GUARD);

    /* n == 0 touches nothing */
    memset(b, GUARD, N * 8 + 3);
    amg_from_f32(AMG_DT_F64, in, b + 1, 0);
    for (i = 0; i < N * 8 + 3; i++)
        ck_assert_uint_eq(b[i], GUARD);
    free(b);
#undef N
}
END_TEST

/* Bulk conversion agrees with the per-element functions for every pattern
 * of the narrow types, through unaligned buffers. */
START_TEST(bulk_matches_elementwise)
{
    static const amg_dtype types[] = { AMG_DT_F16, AMG_DT_BF16,
                                       AMG_DT_F8_E4M3, AMG_DT_F8_E5M2 };
    const struct fmt *const fmts[] = { &FMT_F16, &FMT_BF16, &FMT_E4M3,
                                       &FMT_E5M2 };
    size_t k, i, n, sz;
    unsigned char *b, *b2;
    float *f;
    uint32_t e;

    for (k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
        sz = amg_dtype_size(types[k]);
        n = (size_t)1 << (8 * sz);
        b = odd_buf(n * sz);
        b2 = odd_buf(n * sz);
        f = malloc(n * sizeof(*f));
        ck_assert_ptr_nonnull(f);
        for (i = 0; i < n; i++) {
            b[1 + i * sz] = (unsigned char)i;
            if (sz == 2)
                b[2 + i * sz] = (unsigned char)(i >> 8);
        }
        amg_to_f32(types[k], b + 1, f, n);
        amg_from_f32(types[k], f, b2 + 1, n);
        check_guards(b2, n * sz);
        for (i = 0; i < n; i++) {
            e = amg_f32_bits(fmts[k]->dec((uint32_t)i));
            ck_assert_uint_eq(amg_f32_bits(f[i]), e);
            /* widening then narrowing gives back every non-NaN pattern */
            if (!isnan(f[i]))
                ck_assert_msg(!memcmp(b + 1 + i * sz, b2 + 1 + i * sz, sz),
                              "%s 0x%zX does not round-trip",
                              amg_dtype_name(types[k]), i);
        }
        free(f);
        free(b2);
        free(b);
    }
}
END_TEST

/* ---- type table and names ---- */

START_TEST(names_sizes_parse)
{
    static const struct {
        amg_dtype t;
        const char *name, *torch;
        size_t size;
        int is_float;
    } want[AMG_DT_COUNT] = {
        { AMG_DT_F64, "F64", "float64", 8, 1 },
        { AMG_DT_F32, "F32", "float32", 4, 1 },
        { AMG_DT_F16, "F16", "float16", 2, 1 },
        { AMG_DT_BF16, "BF16", "bfloat16", 2, 1 },
        { AMG_DT_I64, "I64", "int64", 8, 0 },
        { AMG_DT_I32, "I32", "int32", 4, 0 },
        { AMG_DT_I16, "I16", "int16", 2, 0 },
        { AMG_DT_I8, "I8", "int8", 1, 0 },
        { AMG_DT_U8, "U8", "uint8", 1, 0 },
        { AMG_DT_BOOL, "BOOL", "bool", 1, 0 },
        { AMG_DT_F8_E4M3, "F8_E4M3", "float8_e4m3fn", 1, 1 },
        { AMG_DT_F8_E5M2, "F8_E5M2", "float8_e5m2", 1, 1 },
    };
    amg_dtype t;
    int i;

    for (i = 0; i < AMG_DT_COUNT; i++) {
        ck_assert_int_eq(want[i].t, i);
        ck_assert_str_eq(amg_dtype_name(want[i].t), want[i].name);
        ck_assert_str_eq(amg_dtype_torch_name(want[i].t), want[i].torch);
        ck_assert_uint_eq(amg_dtype_size(want[i].t), want[i].size);
        ck_assert_int_eq(!!amg_dtype_is_float(want[i].t), want[i].is_float);
        t = AMG_DT_COUNT;
        ck_assert_int_eq(amg_dtype_parse(want[i].name, &t), 0);
        ck_assert_int_eq(t, want[i].t);
        t = AMG_DT_COUNT;
        ck_assert_int_eq(amg_dtype_parse_user(want[i].torch, &t), 0);
        ck_assert_int_eq(t, want[i].t);
        ck_assert(!amg_dtype_known_unsupported(want[i].name));
    }
    ck_assert_str_eq(amg_dtype_name(AMG_DT_COUNT), "?");
    ck_assert_str_eq(amg_dtype_name((amg_dtype)-1), "?");
    ck_assert_str_eq(amg_dtype_torch_name(AMG_DT_COUNT), "?");
    ck_assert_uint_eq(amg_dtype_size(AMG_DT_COUNT), 0);
    ck_assert(!amg_dtype_is_float(AMG_DT_COUNT));

    /* safetensors names are exact and case-sensitive */
    ck_assert_int_eq(amg_dtype_parse("bf16", &t), -1);
    ck_assert_int_eq(amg_dtype_parse("BF16 ", &t), -1);
    ck_assert_int_eq(amg_dtype_parse("", &t), -1);
    ck_assert_int_eq(amg_dtype_parse("bfloat16", &t), -1);
    ck_assert_int_eq(amg_dtype_parse("F4", &t), -1);
    ck_assert(amg_dtype_known_unsupported("F4"));
    ck_assert(amg_dtype_known_unsupported("U16"));
    ck_assert(amg_dtype_known_unsupported("F8_E4M3FNUZ"));
    ck_assert(amg_dtype_known_unsupported("C64"));
    ck_assert(!amg_dtype_known_unsupported("F128"));
    ck_assert(!amg_dtype_known_unsupported("u16"));
    ck_assert(!amg_dtype_known_unsupported(""));
}
END_TEST

START_TEST(parse_user_aliases)
{
    static const struct { const char *s; amg_dtype t; } ok[] = {
        { "bf16", AMG_DT_BF16 },          { "BF16", AMG_DT_BF16 },
        { "bfloat16", AMG_DT_BF16 },      { "torch.bfloat16", AMG_DT_BF16 },
        { "BFloat16", AMG_DT_BF16 },      { "fp16", AMG_DT_F16 },
        { "half", AMG_DT_F16 },           { "torch.float16", AMG_DT_F16 },
        { "f16", AMG_DT_F16 },            { "FP32", AMG_DT_F32 },
        { "float", AMG_DT_F32 },          { "double", AMG_DT_F64 },
        { "int8", AMG_DT_I8 },            { "i8", AMG_DT_I8 },
        { "uint8", AMG_DT_U8 },           { "bool", AMG_DT_BOOL },
        { "long", AMG_DT_I64 },           { "int", AMG_DT_I32 },
        { "short", AMG_DT_I16 },          { "f8_e4m3", AMG_DT_F8_E4M3 },
        { "float8_e4m3fn", AMG_DT_F8_E4M3 }, { "fp8_e5m2", AMG_DT_F8_E5M2 },
        { "torch.float8_e5m2", AMG_DT_F8_E5M2 },
    };
    static const char *const bad[] = {
        "", "nope", "float8", "torch.", "bf 16", "uint16", "F4", "int4",
        "torch.torch.float16", "float16 ",
    };
    amg_dtype t;
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        t = AMG_DT_COUNT;
        ck_assert_msg(amg_dtype_parse_user(ok[i].s, &t) == 0, "%s", ok[i].s);
        ck_assert_msg(t == ok[i].t, "%s -> %s", ok[i].s, amg_dtype_name(t));
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(amg_dtype_parse_user(bad[i], &t) == -1, "'%s'",
                      bad[i]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dtype");
    TCase *tc;

    tc = tcase_create("decode");
    tcase_add_test(tc, decode_bf16_all);
    tcase_add_test(tc, decode_f16_all);
    tcase_add_test(tc, decode_f8_all);
    tcase_add_test(tc, decode_landmarks);
    suite_add_tcase(s, tc);

    tc = tcase_create("round");
    tcase_add_test(tc, pairs_bf16);
    tcase_add_test(tc, pairs_f16);
    tcase_add_test(tc, pairs_f8);
    tcase_add_test(tc, specials_all);
    tcase_add_test(tc, overflow_thresholds);
    tcase_add_test(tc, f32_subnormals);
    tcase_add_loop_test(tc, sweep_vs_reference, 0, (int)NFMTS);
    suite_add_tcase(s, tc);

    tc = tcase_create("torch");
    tcase_add_test(tc, torch_bits);
    suite_add_tcase(s, tc);

    tc = tcase_create("bulk");
    tcase_add_test(tc, bulk_to_f32);
    tcase_add_test(tc, bulk_from_f32_ints);
    tcase_add_test(tc, bulk_from_f32_floats);
    tcase_add_test(tc, bulk_matches_elementwise);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_add_test(tc, names_sizes_parse);
    tcase_add_test(tc, parse_user_aliases);
    suite_add_tcase(s, tc);

    return tu_run(s);
}
