/* SPDX-License-Identifier: Apache-2.0 */
/*
 * elem.h - the per-element math of the CUDA kernel table, written once for
 * the device and the host.
 *
 * Every function here is the CPU kernel's arithmetic for one element
 * (kernels/cpu/), in the same operation order. The CUDA kernels call them
 * per element; tests/unit/check_cuda_elem.c compiles them as C11 and
 * compares them with the CPU table on NaN, inf, +-0 and denormals, which
 * is how the GPU's arithmetic is tested on a machine without a GPU.
 *
 * Why the results match bit for bit: f32 and f64 add, multiply and divide
 * are correctly rounded IEEE operations on both sides. On the device they
 * are spelled with the _rn intrinsics, which nvcc never contracts into an
 * FMA whatever -fmad says and which keep denormals under -ftz=false; in C
 * (-std=c11, so no contraction) they are the plain operators. Conversions
 * (int <-> float, double -> float) round to nearest in C casts on both;
 * float -> int casts truncate and are only applied to values in range.
 * Everything else is integer work on bit patterns.
 *
 * NaN payloads: a GPU's arithmetic returns its canonical NaN where the
 * CPU's returns an input NaN's payload, and which input depends on the
 * operand order the host compiler picked, so results of arithmetic are
 * equal as NaN or not-NaN, and bit for bit otherwise. Every decision
 * taken on a NaN (sign election, top-k, masks) ignores its sign and
 * payload, and every narrow output format has one NaN per sign, reached
 * from any payload. Bit operations (abs, sign, masks, where, convert)
 * give the CPU's bytes for NaNs too.
 *
 * C subset only (the unit test is C11); AMG_KHD marks the functions
 * __host__ __device__ under nvcc.
 */
#ifndef AMG_KCU_ELEM_H
#define AMG_KCU_ELEM_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <amalgam/kernels.h>
#include <amalgam/tensor.h>

#include "dtype.h"
#include "fpconv.h"

#if defined(__CUDACC__)
#define AMG_KHD __host__ __device__
#else
#define AMG_KHD
#endif

#if defined(__CUDA_ARCH__)
#define AMG_KF_MUL(a, b) __fmul_rn((a), (b))
#define AMG_KF_ADD(a, b) __fadd_rn((a), (b))
#define AMG_KF_DIV(a, b) __fdiv_rn((a), (b))
#define AMG_KD_MUL(a, b) __dmul_rn((a), (b))
#define AMG_KD_ADD(a, b) __dadd_rn((a), (b))
#define AMG_KD_DIV(a, b) __ddiv_rn((a), (b))
#else
#define AMG_KF_MUL(a, b) ((a) * (b))
#define AMG_KF_ADD(a, b) ((a) + (b))
#define AMG_KF_DIV(a, b) ((a) / (b))
#define AMG_KD_MUL(a, b) ((a) * (b))
#define AMG_KD_ADD(a, b) ((a) + (b))
#define AMG_KD_DIV(a, b) ((a) / (b))
#endif

#define AMG_KCU_ABS_MASK 0x7FFFFFFFu
#define AMG_KCU_INF_BITS 0x7F800000u

/* ======================================================================
 * convert (kernels/cpu/convert.c, host/dtype.c)
 *
 * An element travels as its raw little-endian bits in a uint64_t (the low
 * amg_dtype_size() bytes), which is what a typed load gives on a
 * little-endian host or GPU and what amg_load_le gives anywhere.
 * ====================================================================== */

static inline AMG_KHD uint64_t amg_kcu_load(const void *base, uint64_t i,
                                            unsigned size)
{
    switch (size) {
    case 8: return ((const uint64_t *)base)[i];
    case 4: return ((const uint32_t *)base)[i];
    case 2: return ((const uint16_t *)base)[i];
    default: return ((const uint8_t *)base)[i];
    }
}

static inline AMG_KHD void amg_kcu_store(void *base, uint64_t i,
                                         unsigned size, uint64_t v)
{
    switch (size) {
    case 8: ((uint64_t *)base)[i] = v; break;
    case 4: ((uint32_t *)base)[i] = (uint32_t)v; break;
    case 2: ((uint16_t *)base)[i] = (uint16_t)v; break;
    default: ((uint8_t *)base)[i] = (uint8_t)v; break;
    }
}

static inline AMG_KHD double amg_kcu_bits_f64(uint64_t v)
{
    double d;

    memcpy(&d, &v, sizeof(d));
    return d;
}

static inline AMG_KHD uint64_t amg_kcu_f64_bits(double d)
{
    uint64_t v;

    memcpy(&v, &d, sizeof(v));
    return v;
}

/* convert.c ld_int: an integer or bool element as int64 */
static inline AMG_KHD int64_t amg_kcu_ld_int(uint64_t v, amg_dtype t)
{
    switch (t) {
    case AMG_DT_I64: return (int64_t)v;
    case AMG_DT_I32: return (int32_t)(uint32_t)v;
    case AMG_DT_I16: return (int16_t)(uint16_t)v;
    case AMG_DT_I8: return (int8_t)(uint8_t)v;
    case AMG_DT_BOOL: return v != 0;
    default: return (int64_t)v;     /* U8 */
    }
}

/* convert.c int_range */
static inline AMG_KHD void amg_kcu_int_range(amg_dtype t, int64_t *lo,
                                             int64_t *hi)
{
    switch (t) {
    case AMG_DT_I64: *lo = INT64_MIN; *hi = INT64_MAX; break;
    case AMG_DT_I32: *lo = INT32_MIN; *hi = INT32_MAX; break;
    case AMG_DT_I16: *lo = INT16_MIN; *hi = INT16_MAX; break;
    case AMG_DT_I8: *lo = INT8_MIN; *hi = INT8_MAX; break;
    default: *lo = 0; *hi = UINT8_MAX; break;     /* U8 */
    }
}

/* convert.c st_int: the bits stored for int64 v (saturated; bool v != 0) */
static inline AMG_KHD uint64_t amg_kcu_st_int(amg_dtype t, int64_t v)
{
    int64_t lo, hi;

    if (t == AMG_DT_BOOL)
        return v != 0;
    amg_kcu_int_range(t, &lo, &hi);
    v = v < lo ? lo : v > hi ? hi : v;
    return (uint64_t)v;
}

/* convert.c f64_to_int: truncate toward zero into t's range, NaN 0 */
static inline AMG_KHD int64_t amg_kcu_f64_to_int(double d, amg_dtype t)
{
    int64_t lo, hi;

    if (d != d)
        return 0;
    amg_kcu_int_range(t, &lo, &hi);
    if (t == AMG_DT_I64) {
        if (d >= 0x1p63)
            return hi;
        if (d < -0x1p63)
            return lo;
        return (int64_t)d;
    }
    if (d >= (double)hi)
        return hi;
    if (d <= (double)lo)
        return lo;
    return (int64_t)d;
}

/*
 * double <-> float casts with the host CPU's NaN results. A GPU cast turns
 * every NaN into its canonical NaN; x86 (cvtsd2ss, cvtss2sd) and AArch64
 * (FCVT) keep the sign and the top payload bits and set the quiet bit.
 * Casts have one operand, so the host's result does not depend on the
 * compiler, and convert can give the same bytes on both for every input.
 */
static inline AMG_KHD float amg_kcu_f64_to_f32(double d)
{
    uint64_t v;

    if (d == d)
        return (float)d;
    v = amg_kcu_f64_bits(d);
    return amg_bits_f32((uint32_t)(v >> 32 & 0x80000000u) | 0x7FC00000u |
                        (uint32_t)(v >> 29 & 0x3FFFFFu));
}

static inline AMG_KHD double amg_kcu_f32_to_f64(float x)
{
    uint32_t b;

    if (x == x)
        return (double)x;
    b = amg_f32_bits(x);
    return amg_kcu_bits_f64((uint64_t)(b & 0x80000000u) << 32 |
                            0x7FF8000000000000ull |
                            (uint64_t)(b & 0x3FFFFFu) << 29);
}

/* dtype.c amg_to_f32, one element */
static inline AMG_KHD float amg_kcu_to_f32(uint64_t v, amg_dtype t)
{
    switch (t) {
    case AMG_DT_F64: return amg_kcu_f64_to_f32(amg_kcu_bits_f64(v));
    case AMG_DT_F32: return amg_bits_f32((uint32_t)v);
    case AMG_DT_F16: return amg_f16_to_f32((uint16_t)v);
    case AMG_DT_BF16: return amg_bf16_to_f32((uint16_t)v);
    case AMG_DT_I64: return (float)(int64_t)v;
    case AMG_DT_I32: return (float)(int32_t)(uint32_t)v;
    case AMG_DT_I16: return (float)(int16_t)(uint16_t)v;
    case AMG_DT_I8: return (float)(int8_t)(uint8_t)v;
    case AMG_DT_U8: return (float)(uint8_t)v;
    case AMG_DT_BOOL: return v ? 1.0f : 0.0f;
    case AMG_DT_F8_E4M3: return amg_f8e4m3_to_f32((uint8_t)v);
    default: return amg_f8e5m2_to_f32((uint8_t)v);  /* F8_E5M2 */
    }
}

/* dtype.c amg_from_f32, one element: the bits to store */
static inline AMG_KHD uint64_t amg_kcu_from_f32(float x, amg_dtype t)
{
    switch (t) {
    case AMG_DT_F64: return amg_kcu_f64_bits(amg_kcu_f32_to_f64(x));
    case AMG_DT_F32: return amg_f32_bits(x);
    case AMG_DT_F16: return amg_f32_to_f16(x);
    case AMG_DT_BF16: return amg_f32_to_bf16(x);
    case AMG_DT_I64:
        return (uint64_t)amg_sat_int(x, -0x1p63f, 0x1p63f, INT64_MIN,
                                     INT64_MAX, 1);
    case AMG_DT_I32:
        return (uint64_t)amg_sat_int(x, -0x1p31f, 0x1p31f, INT32_MIN,
                                         INT32_MAX, 1);
    case AMG_DT_I16:
        return (uint64_t)amg_sat_int(x, -32768.0f, 32767.0f, INT16_MIN,
                                         INT16_MAX, 0);
    case AMG_DT_I8:
        return (uint64_t)amg_sat_int(x, -128.0f, 127.0f, INT8_MIN,
                                         INT8_MAX, 0);
    case AMG_DT_U8:
        return (uint64_t)amg_sat_int(x, 0.0f, 255.0f, 0, UINT8_MAX, 0);
    case AMG_DT_BOOL: return x != 0.0f;
    case AMG_DT_F8_E4M3: return amg_f32_to_f8e4m3(x);
    default: return amg_f32_to_f8e5m2(x);           /* F8_E5M2 */
    }
}

/* One element of convert from -> to (from != to), choosing the path
 * convert.c chooses: int/bool to int/bool exactly through int64, F64 to
 * int/bool from the double, int/bool to F64 in one rounding, everything
 * else through f32. The result's low bytes are stored. */
static inline AMG_KHD uint64_t amg_kcu_convert(uint64_t v, amg_dtype from,
                                               amg_dtype to)
{
    int fi = !amg_dtype_is_float(from), ti = !amg_dtype_is_float(to);

    if (fi && ti)
        return amg_kcu_st_int(to, amg_kcu_ld_int(v, from));
    if (from == AMG_DT_F64 && ti) {
        double d = amg_kcu_bits_f64(v);

        if (to == AMG_DT_BOOL)
            return d != 0.0;        /* NaN is true, as in PyTorch */
        return amg_kcu_st_int(to, amg_kcu_f64_to_int(d, to));
    }
    if (fi && to == AMG_DT_F64)
        return amg_kcu_f64_bits((double)amg_kcu_ld_int(v, from));
    return amg_kcu_from_f32(amg_kcu_to_f32(v, from), to);
}

/* ======================================================================
 * elementwise (kernels/cpu/elementwise.c)
 * ====================================================================== */

static inline AMG_KHD float amg_kcu_scale(float alpha, float x)
{
    return AMG_KF_MUL(alpha, x);
}

/* both products rounded to f32, then the sum */
static inline AMG_KHD float amg_kcu_axpby(float alpha, float x, float beta,
                                          float y)
{
    float p = AMG_KF_MUL(alpha, x);
    float q = AMG_KF_MUL(beta, y);

    return AMG_KF_ADD(p, q);
}

static inline AMG_KHD float amg_kcu_mul(float x, float y)
{
    return AMG_KF_MUL(x, y);
}

static inline AMG_KHD float amg_kcu_div(float x, float y)
{
    return AMG_KF_DIV(x, y);
}

/* fabsf: the sign bit cleared, NaN payloads kept */
static inline AMG_KHD float amg_kcu_abs(float x)
{
    return amg_bits_f32(amg_f32_bits(x) & AMG_KCU_ABS_MASK);
}

/* +-1 by the sign bit for a non-zero number; +0 for +-0 and NaN */
static inline AMG_KHD float amg_kcu_sign(float x)
{
    uint32_t b = amg_f32_bits(x);
    uint32_t nz = ((b & AMG_KCU_ABS_MASK) - 1u) < AMG_KCU_INF_BITS;

    return amg_bits_f32((0x3F800000u | (b & 0x80000000u)) & (0u - nz));
}

/* acc = +0, then acc + w[j] * x[j][i] for j = 0..n-1 */
static inline AMG_KHD float amg_kcu_weighted_sum(const float *const *x,
                                                 const float *w, uint32_t n,
                                                 uint64_t i)
{
    float acc = 0.0f;
    uint32_t j;

    for (j = 0; j < n; j++) {
        float p = AMG_KF_MUL(w[j], x[j][i]);

        acc = AMG_KF_ADD(acc, p);
    }
    return acc;
}

/* ======================================================================
 * masks and selection (kernels/cpu/select.c)
 * ====================================================================== */

static inline AMG_KHD float amg_kcu_mask_apply(float x, uint8_t m)
{
    return amg_bits_f32(amg_f32_bits(x) & (0u - (uint32_t)(m != 0)));
}

static inline AMG_KHD float amg_kcu_where(uint8_t m, float x, float y)
{
    uint32_t k = 0u - (uint32_t)(m != 0);

    return amg_bits_f32((amg_f32_bits(x) & k) | (amg_f32_bits(y) & ~k));
}

/* The magnitude key of top-k: |x|'s bits; above AMG_KCU_INF_BITS is NaN */
static inline AMG_KHD uint32_t amg_kcu_mag_bits(float x)
{
    return amg_f32_bits(x) & AMG_KCU_ABS_MASK;
}

/* The abs_histogram bin of x at level (0: high 16 bits of |x|; 1: low 16
 * bits among those whose high 16 bits are prefix). Returns 0 when x is
 * not counted (NaN, or another prefix at level 1). */
static inline AMG_KHD int amg_kcu_hist_bin(float x, int32_t level,
                                           uint32_t prefix, uint32_t *bin)
{
    uint32_t b = amg_kcu_mag_bits(x);

    if (b > AMG_KCU_INF_BITS)
        return 0;
    if (level == 0) {
        *bin = b >> 16;
        return 1;
    }
    if ((b >> 16) != prefix)
        return 0;
    *bin = b & 0xFFFFu;
    return 1;
}

/* threshold_mask's two classes of a magnitude key b: selected outright
 * (a number above thr), or a tie (equal to thr, and thr not a NaN
 * pattern), taken in index order while fewer than n_ties are taken. */
static inline AMG_KHD int amg_kcu_thr_above(uint32_t b, uint32_t thr)
{
    return b > thr && b <= AMG_KCU_INF_BITS;
}

static inline AMG_KHD int amg_kcu_thr_tie(uint32_t b, uint32_t thr)
{
    return b == thr && thr <= AMG_KCU_INF_BITS;
}

/* topk_mask when k is at least the count of numbers (select.c
 * take_numbers_then_nans): every number is selected outright, NaNs are
 * the "ties" taken in index order. */
static inline AMG_KHD int amg_kcu_is_number(uint32_t b)
{
    return b <= AMG_KCU_INF_BITS;
}

/* ======================================================================
 * TIES (kernels/cpu/ties.c)
 * ====================================================================== */

/* 1, -1 or +0 (zero and NaN) */
static inline AMG_KHD float amg_kcu_sgn(float v)
{
    return (float)((v > 0.0f) - (v < 0.0f));
}

/* acc >= 0 ? 1 : -1 on the bits, -1 for NaN (ties.c elected) */
static inline AMG_KHD float amg_kcu_elected(float acc)
{
    uint32_t b = amg_f32_bits(acc), mag = b & AMG_KCU_ABS_MASK;
    uint32_t neg = (mag > AMG_KCU_INF_BITS) | ((b >> 31) & (mag != 0));

    return amg_bits_f32(0x3F800000u | (neg << 31));
}

/* The elected sign at element i of the n deltas d[j] (rule: sum of the
 * weighted deltas, or of their signs). */
static inline AMG_KHD float amg_kcu_sign_elect(const float *const *d,
                                               const float *w, uint32_t n,
                                               int32_t rule, uint64_t i)
{
    float acc = 0.0f;
    uint32_t j;

    for (j = 0; j < n; j++) {
        float p = AMG_KF_MUL(w[j], d[j][i]);

        if (rule == AMG_SIGN_BY_SUM)
            acc = AMG_KF_ADD(acc, p);
        else
            acc = AMG_KF_ADD(acc, amg_kcu_sgn(p));
    }
    return amg_kcu_elected(acc);
}

/* The disjoint merge at element i (ties.c merge_add and the final
 * division): a product agrees when it is a non-zero number with the sign
 * of s, or a NaN where s is zero or NaN; disagreeing terms add +0. */
static inline AMG_KHD float amg_kcu_disjoint_merge(const float *const *d,
                                                   const float *w,
                                                   uint32_t n, float s,
                                                   int32_t normalize,
                                                   uint64_t i)
{
    float num = 0.0f, den = 0.0f;
    uint32_t bs = amg_f32_bits(s), ms = bs & AMG_KCU_ABS_MASK;
    uint32_t s_num = (ms - 1u) < AMG_KCU_INF_BITS;
    uint32_t j;

    for (j = 0; j < n; j++) {
        uint32_t bp = amg_f32_bits(AMG_KF_MUL(w[j], d[j][i]));
        uint32_t mp = bp & AMG_KCU_ABS_MASK;
        uint32_t p_num = (mp - 1u) < AMG_KCU_INF_BITS;
        uint32_t p_nan = mp > AMG_KCU_INF_BITS;
        uint32_t same = ((bp ^ bs) >> 31) ^ 1u;
        uint32_t agree = (p_num & s_num & same) | (p_nan & (s_num ^ 1u));
        uint32_t m = 0u - agree;

        num = AMG_KF_ADD(num, amg_bits_f32(bp & m));
        den = AMG_KF_ADD(den, amg_bits_f32(amg_f32_bits(w[j]) & m));
    }
    if (normalize) {
        /* ties.c DIVISOR_EPS: |D| < 1e-8 counts as 1 */
        float dv = amg_kcu_abs(den) < 1e-8f ? 1.0f : den;

        num = AMG_KF_DIV(num, dv);
    }
    return num;
}

/* ======================================================================
 * reductions (kernels/cpu/reduce.c): one step of the f64 chain. A product
 * of two floats is exact in f64, so only the additions round.
 * ====================================================================== */

static inline AMG_KHD double amg_kcu_sum_step(double acc, float x)
{
    return AMG_KD_ADD(acc, (double)x);
}

static inline AMG_KHD double amg_kcu_dot_step(double acc, float x, float y)
{
    return AMG_KD_ADD(acc, AMG_KD_MUL((double)x, (double)y));
}

/* |x| in f64: the sign bit of (double)x cleared (fabs) */
static inline AMG_KHD double amg_kcu_abs_f64(float x)
{
    return amg_kcu_bits_f64(amg_kcu_f64_bits((double)x) &
                            0x7FFFFFFFFFFFFFFFull);
}

static inline AMG_KHD double amg_kcu_l1_step(double acc, float x)
{
    return AMG_KD_ADD(acc, amg_kcu_abs_f64(x));
}

/* ======================================================================
 * random fills (kernels/cpu/rng.c, amalgam/rng.h)
 * ====================================================================== */

/* The uniform of one Philox word: (w >> 8) * 2^-24, exact in f32. */
static inline AMG_KHD float amg_kcu_uniform_of_word(uint32_t w)
{
    return AMG_KF_MUL((float)(w >> 8), 1.0f / 16777216.0f);
}

/* rng.c bernoulli_threshold: (double)(u * 2^-24) < p for a 24-bit u is
 * u < ceil(p * 2^24) (the scaling is exact), so the mask compares
 * integers; 0 selects nothing, 2^24 everything. */
static inline AMG_KHD uint32_t amg_kcu_bernoulli_threshold(double p)
{
    if (!(p > 0.0))
        return 0;
    if (p >= 1.0)
        return 16777216u;
    return (uint32_t)ceil(p * 16777216.0);
}

static inline AMG_KHD uint8_t amg_kcu_bernoulli_of_word(uint32_t w,
                                                        uint32_t thr)
{
    return (uint8_t)((w >> 8) < thr);
}

/* ======================================================================
 * row_abs_rank (kernels/cpu/rank.c)
 * ====================================================================== */

/* The sort key: |x|'s bits above the column, so ascending keys order a
 * row by magnitude (NaN above inf, +0 == -0) and then by lower column,
 * which is the order rank.c's stable radix sort produces. */
static inline AMG_KHD uint64_t amg_kcu_rank_key(float x, uint32_t col)
{
    return (uint64_t)amg_kcu_mag_bits(x) << 32 | col;
}

/* The value of sorted position i (rank i + 1) in a row of n */
static inline AMG_KHD float amg_kcu_rank_norm(uint32_t i, uint32_t n)
{
    return n > 1 ? (float)AMG_KD_DIV((double)i, (double)(n - 1)) : 0.0f;
}

/* ======================================================================
 * rows (kernels/cpu/rows.c)
 * ====================================================================== */

/* One column of row_abs_sum: all += |x|; kept += |x| where the mask byte
 * is set, else +0 (rows.c kept_term; +0 leaves a sum of magnitudes, which
 * starts at +0 and is never -0, as it is, and keeps a NaN out). */
static inline AMG_KHD void amg_kcu_abs_sum_step(double *all, double *kept,
                                                float x, uint8_t m)
{
    double t = amg_kcu_abs_f64(x);

    *all = AMG_KD_ADD(*all, t);
    *kept = AMG_KD_ADD(*kept, m ? t : 0.0);
}

/* Fisher's weighted quotient at element i: f64 sums over j in order.
 * f[j] may be NULL (weight from eps alone). Returns 0 and sets *out, or 1
 * when the weights sum to zero there (*out untouched). */
static inline AMG_KHD int amg_kcu_weighted_quotient(const float *const *x,
                                                    const float *const *f,
                                                    const double *c,
                                                    uint32_t n, double eps,
                                                    int32_t floor_,
                                                    uint64_t i, float *out)
{
    double num = 0.0, den = 0.0;
    uint32_t j;

    for (j = 0; j < n; j++) {
        double g = f[j] ? (double)f[j][i] : 0.0;
        double wj;

        /* max(g, eps) that keeps eps when g is NaN */
        g = floor_ ? (g > eps ? g : eps) : AMG_KD_ADD(g, eps);
        wj = AMG_KD_MUL(c[j], g);
        num = AMG_KD_ADD(num, AMG_KD_MUL(wj, (double)x[j][i]));
        den = AMG_KD_ADD(den, wj);
    }
    if (den == 0.0)
        return 1;
    *out = (float)AMG_KD_DIV(num, den);
    return 0;
}

#endif
