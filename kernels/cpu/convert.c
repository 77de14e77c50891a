/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dtype conversion between any two supported types.
 *
 * Each element is rounded once wherever an exact path exists:
 *   - same dtype: a byte copy;
 *   - integer or bool to integer or bool: exact through int64, saturating
 *     at the destination's range (bool: v != 0);
 *   - F64 to integer or bool: from the double itself (truncate, saturate,
 *     NaN gives 0), since an f32 step would lose low digits of big values;
 *   - integer to F64: one rounding (only I64 beyond 2^53 rounds);
 *   - everything else goes through f32 with host/dtype.h, which is exact
 *     into f32 for every narrow type and rounds F64, I64 and I32 once. F64
 *     or I64/I32 to a narrow float thus rounds twice, as PyTorch does: its
 *     c10 Half/BFloat16/Float8 types convert from double and integers
 *     through float too.
 * Memory is read and written as little-endian bytes, as host/dtype.c does.
 */
#include "config.h"

#include <string.h>

#include "ctx.h"
#include "dtype.h"
#include "kernels_cpu.h"
#include "tensor_mem.h"

/* Elements per step on the f32 path (a 4 KiB stack buffer). */
#define CONV_BLOCK 1024

static int is_intlike(amg_dtype t)
{
    return !amg_dtype_is_float(t);
}

static int64_t ld_int(const unsigned char *p, amg_dtype t)
{
    uint64_t v = amg_load_le(p, amg_dtype_size(t));

    switch (t) {
    case AMG_DT_I64: return (int64_t)v;
    case AMG_DT_I32: return (int32_t)(uint32_t)v;
    case AMG_DT_I16: return (int16_t)(uint16_t)v;
    case AMG_DT_I8: return (int8_t)(uint8_t)v;
    case AMG_DT_BOOL: return v != 0;
    default: return (int64_t)v;     /* U8 */
    }
}

static void int_range(amg_dtype t, int64_t *lo, int64_t *hi)
{
    switch (t) {
    case AMG_DT_I64: *lo = INT64_MIN; *hi = INT64_MAX; break;
    case AMG_DT_I32: *lo = INT32_MIN; *hi = INT32_MAX; break;
    case AMG_DT_I16: *lo = INT16_MIN; *hi = INT16_MAX; break;
    case AMG_DT_I8: *lo = INT8_MIN; *hi = INT8_MAX; break;
    default: *lo = 0; *hi = UINT8_MAX; break;     /* U8 */
    }
}

static void st_int(unsigned char *p, amg_dtype t, int64_t v)
{
    int64_t lo, hi;

    if (t == AMG_DT_BOOL) {
        *p = v != 0;
        return;
    }
    int_range(t, &lo, &hi);
    v = v < lo ? lo : v > hi ? hi : v;
    amg_store_le(p, (uint64_t)v, amg_dtype_size(t));
}

/* Truncate a double toward zero into t's range; NaN gives 0. The bounds
 * compare as doubles: 2^63 and 2^31 are exact there, and the 8 and 16 bit
 * limits are small integers. */
static int64_t f64_to_int(double d, amg_dtype t)
{
    int64_t lo, hi;

    if (d != d)
        return 0;
    int_range(t, &lo, &hi);
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

static void conv_int_int(unsigned char *o, amg_dtype to,
                         const unsigned char *s, amg_dtype from, uint64_t n)
{
    size_t so = amg_dtype_size(to), ss = amg_dtype_size(from);
    uint64_t i;

    for (i = 0; i < n; i++)
        st_int(o + i * so, to, ld_int(s + i * ss, from));
}

static void conv_f64_int(unsigned char *o, amg_dtype to,
                         const unsigned char *s, uint64_t n)
{
    size_t so = amg_dtype_size(to);
    uint64_t i, bits;
    double d;

    for (i = 0; i < n; i++) {
        bits = amg_load_le(s + i * 8, 8);
        memcpy(&d, &bits, sizeof(d));
        if (to == AMG_DT_BOOL)
            *(o + i) = d != 0.0;    /* NaN is true, as in PyTorch */
        else
            st_int(o + i * so, to, f64_to_int(d, to));
    }
}

static void conv_int_f64(unsigned char *o, const unsigned char *s,
                         amg_dtype from, uint64_t n)
{
    size_t ss = amg_dtype_size(from);
    uint64_t i, bits;
    double d;

    for (i = 0; i < n; i++) {
        d = (double)ld_int(s + i * ss, from);
        memcpy(&bits, &d, sizeof(bits));
        amg_store_le(o + i * 8, bits, 8);
    }
}

static void conv_via_f32(unsigned char *o, amg_dtype to,
                         const unsigned char *s, amg_dtype from, uint64_t n)
{
    float buf[CONV_BLOCK];
    size_t so = amg_dtype_size(to), ss = amg_dtype_size(from);
    uint64_t i, len;

    for (i = 0; i < n; i += len) {
        len = n - i < CONV_BLOCK ? n - i : CONV_BLOCK;
        amg_to_f32(from, s + i * ss, buf, (size_t)len);
        amg_from_f32(to, buf, o + i * so, (size_t)len);
    }
}

static int overlap(const unsigned char *a, size_t alen,
                   const unsigned char *b, size_t blen)
{
    return alen && blen && a < b + blen && b < a + alen;
}

int32_t amg__kcpu_convert(amg_ctx *ctx, amg_tensor *dst,
                          const amg_tensor *src)
{
    /* set: the argument checks admit only dtypes amg_dtype_from_dl knows */
    amg_dtype to = AMG_DT_F32, from = AMG_DT_F32;
    unsigned char *o;
    const unsigned char *s;
    uint64_t n;
    int rc = amg__kcpu_arg(ctx, "convert", "dst", dst, AMG__KCPU_ANY);

    if (!rc)
        rc = amg__kcpu_arg_like(ctx, "convert", "src", src, AMG__KCPU_ANY,
                                "dst", dst);
    if (rc)
        return rc;
    amg_dtype_from_dl(dst->dl.dtype, &to);
    amg_dtype_from_dl(src->dl.dtype, &from);
    o = amg_tensor_data(dst);
    s = amg_tensor_data(src);
    n = amg_tensor_numel(dst);
    if (to == from) {
        memmove(o, s, (size_t)n * amg_dtype_size(to));
        return AMG_OK;
    }
    if (overlap(o, (size_t)n * amg_dtype_size(to), s,
                (size_t)n * amg_dtype_size(from)))
        return amg_ctx_fail(ctx, AMG_EINVAL,
                            "convert: dst overlaps src and their dtypes "
                            "differ (%s, %s)", amg_dtype_torch_name(to),
                            amg_dtype_torch_name(from));
    if (is_intlike(from) && is_intlike(to))
        conv_int_int(o, to, s, from, n);
    else if (from == AMG_DT_F64 && is_intlike(to))
        conv_f64_int(o, to, s, n);
    else if (is_intlike(from) && to == AMG_DT_F64)
        conv_int_f64(o, s, from, n);
    else
        conv_via_f32(o, to, s, from, n);
    return AMG_OK;
}
