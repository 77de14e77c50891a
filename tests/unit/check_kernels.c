/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the CPU kernel table (kernels/cpu/) and host tensor memory
 * (host/tensor_mem.c).
 *
 * Expected values are written out by hand (small arrays, chosen so that a
 * wrong rounding order, an FMA or a wrong tie rule gives a different
 * number), or come from a reference computed differently from the kernel:
 * top-k against a qsort ranking, reductions against long double sums,
 * Philox against the published known-answer vectors.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <amalgam/rng.h>

#include "ctx.h"
#include "kernels_cpu.h"
#include "tensor_mem.h"
#include "testutil.h"
#include "kfixture.h"

/* ---- tensor helpers ---- */

static amg_tensor *mk_dt(amg_dtype dt, int64_t n)
{
    return mk(amg_dtype_to_dl(dt), 1, &n);
}

static amg_tensor *f32z(int64_t n)
{
    amg_tensor *t = mk_dt(AMG_DT_F32, n);

    memset(amg_tensor_data(t), 0, (size_t)n * sizeof(float));
    return t;
}

static uint32_t bits(float f)
{
    uint32_t u;

    memcpy(&u, &f, sizeof(u));
    return u;
}

/* Bitwise equality, so -0 vs +0 and NaN are told apart from each other. */
static void expect_f32(const amg_tensor *t, const float *want, int64_t n)
{
    int64_t i;

    for (i = 0; i < n; i++)
        ck_assert_msg(bits(F(t)[i]) == bits(want[i]) ||
                          (isnan(F(t)[i]) && isnan(want[i])),
                      "element %lld: got %.9g (0x%08x), want %.9g (0x%08x)",
                      (long long)i, (double)F(t)[i], bits(F(t)[i]),
                      (double)want[i], bits(want[i]));
}

static void expect_mask(const amg_tensor *t, const uint8_t *want, int64_t n)
{
    int64_t i;

    for (i = 0; i < n; i++)
        ck_assert_msg(M(t)[i] == want[i], "element %lld: got %u, want %u",
                      (long long)i, M(t)[i], want[i]);
}

static void expect_fail(int rc, const char *msg)
{
    ck_assert_int_eq(rc, AMG_EINVAL);
    ck_assert_int_eq(ctx.err.status, AMG_EINVAL);
    ck_assert_str_eq(ctx.err.msg, msg);
    amg_err_clear(&ctx.err);
}

/* ---- host tensor memory ---- */

START_TEST(test_tensor_alloc)
{
    int64_t shape[3] = { 2, 3, 5 };
    amg_tensor *t = NULL;
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_tensor_alloc(&t, amg_dl_make(AMG_DL_BFLOAT, 16), 3,
                                      shape, "model.norm.weight", &err),
                     AMG_OK);
    ck_assert_uint_eq(t->struct_size, sizeof(amg_tensor));
    ck_assert_uint_eq(t->flags, AMG_TENSOR_CONTIGUOUS);
    ck_assert_int_eq(t->dl.device.type, AMG_DEVICE_CPU);
    ck_assert_int_eq(t->dl.device.id, 0);
    ck_assert_int_eq(t->dl.ndim, 3);
    ck_assert(t->dl.shape != shape);
    ck_assert_int_eq(t->dl.shape[0], 2);
    ck_assert_int_eq(t->dl.shape[2], 5);
    ck_assert_ptr_null(t->dl.strides);
    ck_assert_uint_eq(t->dl.byte_offset, 0);
    ck_assert_uint_eq((uintptr_t)t->dl.data % 64, 0);
    ck_assert_str_eq(t->name, "model.norm.weight");
    ck_assert_uint_eq(t->elem_offset, 0);
    ck_assert_uint_eq(t->full_numel, 30);
    ck_assert_uint_eq(amg_tensor_numel(t), 30);
    ck_assert_ptr_null(t->host_private);
    /* the whole data block is writable (valgrind/ASan would catch it) */
    memset(t->dl.data, 0xAB, 60);
    amg_tensor_free(t);

    /* a scalar has one element; an empty tensor none */
    ck_assert_int_eq(amg_tensor_alloc(&t, amg_dl_make(AMG_DL_FLOAT, 32), 0,
                                      NULL, NULL, &err), AMG_OK);
    ck_assert_uint_eq(amg_tensor_numel(t), 1);
    ck_assert_ptr_null(t->name);
    amg_tensor_free(t);
    shape[1] = 0;
    ck_assert_int_eq(amg_tensor_alloc(&t, amg_dl_make(AMG_DL_FLOAT, 32), 3,
                                      shape, NULL, &err), AMG_OK);
    ck_assert_uint_eq(t->full_numel, 0);
    amg_tensor_free(t);
    amg_tensor_free(NULL);

    shape[1] = -4;
    ck_assert_int_eq(amg_tensor_alloc(&t, amg_dl_make(AMG_DL_FLOAT, 32), 3,
                                      shape, NULL, &err), AMG_EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_str_eq(err.msg, "cannot create tensor: extent -4 of dimension "
                              "1 is negative");
    shape[0] = INT64_MAX;
    shape[1] = INT64_MAX;
    ck_assert_int_eq(amg_tensor_alloc(&t, amg_dl_make(AMG_DL_FLOAT, 32), 2,
                                      shape, NULL, &err), AMG_ERANGE);
    ck_assert_str_eq(err.msg, "cannot create tensor: element count "
                              "overflows");
}
END_TEST

START_TEST(test_tensor_wrap)
{
    float buf[6] = { 1, 2, 3, 4, 5, 6 };
    int64_t shape[2] = { 2, 3 };
    amg_tensor *t = NULL;
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_tensor_wrap(&t, buf, amg_dl_make(AMG_DL_FLOAT, 32),
                                     2, shape, NULL, AMG_TENSOR_READ_ONLY,
                                     &err), AMG_OK);
    ck_assert_ptr_eq(t->dl.data, buf);
    ck_assert_uint_eq(t->flags, AMG_TENSOR_READ_ONLY | AMG_TENSOR_CONTIGUOUS);
    ck_assert(t->dl.shape != shape);
    ck_assert_uint_eq(amg_tensor_rows(t), 2);
    ck_assert_uint_eq(amg_tensor_row_numel(t), 3);
    ck_assert_uint_eq(t->full_numel, 6);
    amg_tensor_free(t);
    ck_assert_float_eq(buf[5], 6);     /* not owned: still ours */
}
END_TEST

START_TEST(test_dtype_dl_map)
{
    static const struct { amg_dtype t; uint8_t code, bits; } want[] = {
        { AMG_DT_F64, 2, 64 }, { AMG_DT_F32, 2, 32 }, { AMG_DT_F16, 2, 16 },
        { AMG_DT_BF16, 4, 16 }, { AMG_DT_I64, 0, 64 }, { AMG_DT_I32, 0, 32 },
        { AMG_DT_I16, 0, 16 }, { AMG_DT_I8, 0, 8 }, { AMG_DT_U8, 1, 8 },
        { AMG_DT_BOOL, 6, 8 }, { AMG_DT_F8_E4M3, 10, 8 },
        { AMG_DT_F8_E5M2, 12, 8 },
    };
    amg_dtype back;
    size_t i;

    ck_assert_uint_eq(sizeof(want) / sizeof(want[0]), AMG_DT_COUNT);
    for (i = 0; i < AMG_DT_COUNT; i++) {
        amg_dl_dtype d = amg_dtype_to_dl(want[i].t);

        ck_assert_uint_eq(d.code, want[i].code);
        ck_assert_uint_eq(d.bits, want[i].bits);
        ck_assert_uint_eq(d.lanes, 1);
        ck_assert_int_eq(amg_dtype_from_dl(d, &back), 0);
        ck_assert_int_eq(back, want[i].t);
    }
    /* float8 in DLPack's plain float code, uint16, and two lanes have no
     * safetensors twin */
    ck_assert_int_eq(amg_dtype_from_dl(amg_dl_make(AMG_DL_FLOAT, 8), &back),
                     -1);
    ck_assert_int_eq(amg_dtype_from_dl(amg_dl_make(AMG_DL_UINT, 16), &back),
                     -1);
    {
        amg_dl_dtype two = amg_dl_make(AMG_DL_FLOAT, 32);

        two.lanes = 2;
        ck_assert_int_eq(amg_dtype_from_dl(two, &back), -1);
    }
}
END_TEST

/* ---- the table ---- */

START_TEST(test_table)
{
    const void *const *fn;
    size_t i, n;

    ck_assert_uint_eq(K->struct_size, sizeof(amg_kernels));
    ck_assert_int_eq(K->device_type, AMG_DEVICE_CPU);
    ck_assert_ptr_eq(K, amg_kernels_cpu());
    /* every entry between device_type and reserved is set */
    ck_assert(K->convert && K->fill && K->scale && K->axpby && K->mul &&
              K->div && K->abs && K->sign && K->weighted_sum &&
              K->mask_apply && K->where && K->topk_mask &&
              K->abs_histogram && K->threshold_mask && K->sign_elect &&
              K->disjoint_merge && K->sum && K->dot && K->norm_l2 &&
              K->norm_l1 && K->row_dot && K->rng_uniform &&
              K->rng_bernoulli && K->row_abs_rank && K->row_abs_sum &&
              K->row_axpby && K->weighted_quotient);
    fn = (const void *const *)K->reserved;
    n = sizeof(K->reserved) / sizeof(K->reserved[0]);
    for (i = 0; i < n; i++)
        ck_assert_ptr_null(fn[i]);
}
END_TEST

/* ---- argument checks (shared by all kernels) ---- */

START_TEST(test_arg_errors)
{
    float six[6] = { 0 };
    amg_tensor *out = f32z(4), *x = f32v(six, 6), *y = f32z(4);
    amg_tensor *bf = mk_dt(AMG_DT_BF16, 4), *m = mk_dt(AMG_DT_BOOL, 4);
    const amg_tensor *xs[2];
    float w[2] = { 1, 1 };
    int64_t strides[1] = { 2 };

    expect_fail(K->axpby(&ctx, out, 1, x, 1, y),
                "axpby: x has 6 elements, out has 4");
    expect_fail(K->mul(&ctx, out, y, bf),
                "mul: y has dtype bfloat16, expected float32");
    expect_fail(K->scale(&ctx, out, 2, NULL), "scale: x is NULL");
    expect_fail(K->mask_apply(&ctx, out, y, y),
                "mask_apply: mask has dtype float32, expected bool");
    expect_fail(K->fill(&ctx, m, 1), "fill: out has dtype bool, expected "
                                     "float32");
    xs[0] = y;
    xs[1] = x;
    expect_fail(K->weighted_sum(&ctx, out, xs, w, 2),
                "weighted_sum: x[1] has 6 elements, out has 4");
    expect_fail(K->weighted_sum(&ctx, out, xs, NULL, 2),
                "weighted_sum: w is NULL with n = 2");
    expect_fail(K->sum(&ctx, y, NULL), "sum: out is NULL");

    out->dl.device.type = AMG_DEVICE_CUDA;
    expect_fail(K->fill(&ctx, out, 0),
                "fill: out is on device type 2, not in host memory");
    out->dl.device.type = AMG_DEVICE_CPU;
    out->dl.strides = strides;
    expect_fail(K->abs(&ctx, out, y),
                "abs: out is not contiguous (compact row-major required)");
    /* strides that spell compact row-major are fine */
    strides[0] = 1;
    ck_assert_int_eq(K->abs(&ctx, out, y), AMG_OK);
    out->dl.strides = NULL;

    amg_tensor_free(out);
    amg_tensor_free(x);
    amg_tensor_free(y);
    amg_tensor_free(bf);
    amg_tensor_free(m);
}
END_TEST

/* ---- convert ---- */

/* Convert n elements given as raw little-endian bytes and compare bytes. */
static void conv_case(amg_dtype from, const void *in, amg_dtype to,
                      const void *want, int64_t n)
{
    amg_tensor *s = mk_dt(from, n), *d = mk_dt(to, n);

    memcpy(amg_tensor_data(s), in, (size_t)n * amg_dtype_size(from));
    ck_assert_int_eq(K->convert(&ctx, d, s), AMG_OK);
    ck_assert_msg(!memcmp(amg_tensor_data(d), want,
                          (size_t)n * amg_dtype_size(to)),
                  "convert %s -> %s differs", amg_dtype_name(from),
                  amg_dtype_name(to));
    amg_tensor_free(s);
    amg_tensor_free(d);
}

START_TEST(test_convert_float)
{
    /* 1 + 2^-8 and 1 + 3*2^-8 are halfway in bf16: ties to even */
    const float f[4] = { 1.0f, 1.00390625f, 1.01171875f, -2.5f };
    const uint16_t bf[4] = { 0x3F80, 0x3F80, 0x3F82, 0xC020 };
    const float back[4] = { 1.0f, 1.0f, 1.015625f, -2.5f };
    /* 65504 is f16's largest; 65520 is halfway past it: inf */
    const float h[3] = { 65504.0f, 65520.0f, -0.0f };
    const uint16_t hw[3] = { 0x7BFF, 0x7C00, 0x8000 };
    /* just above the f32 halfway point 1 + 2^-24: rounded once it goes up,
     * rounded twice (to 53 then 24 bits) it would tie to 1.0 */
    const double d[2] = { 1.0 + 0x1p-24 + 0x1p-50, -0x1p-149 * 0.75 };
    const float dw[2] = { 1.0f + 0x1p-23f, -0x1p-149f };

    conv_case(AMG_DT_F32, f, AMG_DT_BF16, bf, 4);
    conv_case(AMG_DT_BF16, bf, AMG_DT_F32, back, 4);
    conv_case(AMG_DT_F32, h, AMG_DT_F16, hw, 3);
    conv_case(AMG_DT_F64, d, AMG_DT_F32, dw, 2);
}
END_TEST

START_TEST(test_convert_int)
{
    /* 2^53 + 2 survives F64 -> I64 (an f32 step would give 2^53) */
    const double d[6] = { 9007199254740994.0, 1e30, -1e30, NAN, -2.9, 2.9 };
    const int64_t di[6] = { 9007199254740994LL, INT64_MAX, INT64_MIN, 0, -2,
                            2 };
    /* 2^53 + 1 -> F64 ties to even, 2^53 */
    const int64_t i64[3] = { 9007199254740993LL, 123456789012LL, -7 };
    const double i64d[3] = { 9007199254740992.0, 123456789012.0, -7.0 };
    const int64_t big[4] = { 300, -300, 5, 0 };
    const int8_t sat8[4] = { 127, -128, 5, 0 };
    const uint8_t asbool[4] = { 1, 1, 1, 0 };
    const int32_t i32[3] = { -1, 256, 77 };
    const uint8_t u8[3] = { 0, 255, 77 };
    const float f[5] = { 3.7f, -3.7f, NAN, 3e9f, -3e9f };
    const int32_t fi[5] = { 3, -3, 0, INT32_MAX, INT32_MIN };
    const float fb[4] = { 0.0f, -0.0f, 2.0f, NAN };
    const uint8_t fbw[4] = { 0, 0, 1, 1 };
    const uint8_t b[2] = { 0, 1 };
    const float bw[2] = { 0.0f, 1.0f };
    /* 257 is halfway between bf16's 256 and 258: even, 256 */
    const int64_t i257[1] = { 257 };
    const uint16_t bf257[1] = { 0x4380 };

    conv_case(AMG_DT_F64, d, AMG_DT_I64, di, 6);
    conv_case(AMG_DT_I64, i64, AMG_DT_F64, i64d, 3);
    conv_case(AMG_DT_I64, big, AMG_DT_I8, sat8, 4);
    conv_case(AMG_DT_I64, big, AMG_DT_BOOL, asbool, 4);
    conv_case(AMG_DT_I32, i32, AMG_DT_U8, u8, 3);
    conv_case(AMG_DT_F32, f, AMG_DT_I32, fi, 5);
    conv_case(AMG_DT_F32, fb, AMG_DT_BOOL, fbw, 4);
    conv_case(AMG_DT_BOOL, b, AMG_DT_F32, bw, 2);
    conv_case(AMG_DT_I64, i257, AMG_DT_BF16, bf257, 1);
}
END_TEST

START_TEST(test_convert_errors)
{
    float v[3] = { 1, 2, 3 };
    amg_tensor *s = f32v(v, 3), *d = mk_dt(AMG_DT_BF16, 2);
    amg_tensor *bad = mk(amg_dl_make(AMG_DL_FLOAT, 8), 1, (int64_t[]){ 3 });
    amg_tensor *alias = NULL;
    amg_err err;

    expect_fail(K->convert(&ctx, d, s), "convert: src has 3 elements, dst "
                                        "has 2");
    expect_fail(K->convert(&ctx, bad, s),
                "convert: dst has dtype (code 2, 8 bits, 1 lanes), expected "
                "a supported dtype");
    /* different widths over the same bytes would read what was written */
    amg_err_clear(&err);
    ck_assert_int_eq(amg_tensor_wrap(&alias, s->dl.data,
                                     amg_dtype_to_dl(AMG_DT_BF16), 1,
                                     (int64_t[]){ 3 }, NULL, 0, &err),
                     AMG_OK);
    expect_fail(K->convert(&ctx, alias, s),
                "convert: dst overlaps src and their dtypes differ "
                "(bfloat16, float32)");
    /* same dtype in place is a no-op copy */
    ck_assert_int_eq(K->convert(&ctx, s, s), AMG_OK);
    ck_assert_float_eq(F(s)[2], 3);
    amg_tensor_free(alias);
    amg_tensor_free(s);
    amg_tensor_free(d);
    amg_tensor_free(bad);
}
END_TEST

/* ---- elementwise ---- */

START_TEST(test_fill_scale)
{
    const float x[3] = { 1, -2, 3 };
    const float half[3] = { 0.5f, -1.0f, 1.5f };
    const float sevens[3] = { 7, 7, 7 };
    amg_tensor *t = f32v(x, 3), *o = f32z(3);

    ck_assert_int_eq(K->scale(&ctx, o, 0.5f, t), AMG_OK);
    expect_f32(o, half, 3);
    ck_assert_int_eq(K->fill(&ctx, o, 7), AMG_OK);
    expect_f32(o, sevens, 3);
    /* in place */
    ck_assert_int_eq(K->scale(&ctx, t, 0.5f, t), AMG_OK);
    expect_f32(t, half, 3);
    amg_tensor_free(t);
    amg_tensor_free(o);
}
END_TEST

START_TEST(test_axpby)
{
    const float xv[3] = { 1, 2, 3 }, yv[3] = { 10, 20, 30 };
    const float want[3] = { -3, -6, -9 };
    /* (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24 rounds (tie, even) to 1 + 2^-11,
     * so alpha*x + beta*y is exactly 0; an FMA, keeping the product
     * unrounded, would leave 2^-24 */
    const float a = 1.0f + 0x1p-12f, p[1] = { 1.0f + 0x1p-12f };
    const float q[1] = { 1.0f + 0x1p-11f }, zero[1] = { 0.0f };
    amg_tensor *x = f32v(xv, 3), *y = f32v(yv, 3);
    amg_tensor *px = f32v(p, 1), *qy = f32v(q, 1), *o = f32z(1);

    /* out aliases x */
    ck_assert_int_eq(K->axpby(&ctx, x, 2.0f, x, -0.5f, y), AMG_OK);
    expect_f32(x, want, 3);
    ck_assert_int_eq(K->axpby(&ctx, o, a, px, -1.0f, qy), AMG_OK);
    expect_f32(o, zero, 1);
    amg_tensor_free(x);
    amg_tensor_free(y);
    amg_tensor_free(px);
    amg_tensor_free(qy);
    amg_tensor_free(o);
}
END_TEST

START_TEST(test_mul_div_abs_sign)
{
    const float xv[5] = { 1, -1, 0, -0.0f, 6 };
    const float yv[5] = { 0, 0, 0, 4, -4 };
    const float prod[5] = { 0, -0.0f, 0, -0.0f, -24 };
    const float quot[5] = { INFINITY, -INFINITY, NAN, -0.0f, -1.5f };
    const float sv[6] = { -2, -0.0f, 0, 3, NAN, -INFINITY };
    const float sabs[6] = { 2, 0, 0, 3, NAN, INFINITY };
    const float ssign[6] = { -1, 0, 0, 1, 0, -1 };
    amg_tensor *x = f32v(xv, 5), *y = f32v(yv, 5), *o = f32z(5);
    amg_tensor *s = f32v(sv, 6), *o6 = f32z(6);

    ck_assert_int_eq(K->mul(&ctx, o, x, y), AMG_OK);
    expect_f32(o, prod, 5);
    ck_assert_int_eq(K->div(&ctx, o, x, y), AMG_OK);
    expect_f32(o, quot, 5);
    ck_assert_int_eq(K->abs(&ctx, o6, s), AMG_OK);
    expect_f32(o6, sabs, 6);
    ck_assert_int_eq(K->sign(&ctx, s, s), AMG_OK);
    expect_f32(s, ssign, 6);
    amg_tensor_free(x);
    amg_tensor_free(y);
    amg_tensor_free(o);
    amg_tensor_free(s);
    amg_tensor_free(o6);
}
END_TEST

START_TEST(test_weighted_sum)
{
    const float a[3] = { 1, 2, 3 }, b[3] = { 4, 5, 6 }, c[3] = { -1, 0, 1 };
    const float w[3] = { 0.5f, 0.25f, 2.0f };
    const float want[3] = { -0.5f, 2.25f, 5.0f };
    /* ((0 + 2^24) + 1) + 1: each +1 ties back to 2^24; summing the ones
     * first would give 2^24 + 2 */
    const float big[1] = { 16777216.0f }, one[1] = { 1.0f };
    const float ones[3] = { 1, 1, 1 }, want_big[1] = { 16777216.0f };
    amg_tensor *x0 = f32v(a, 3), *x1 = f32v(b, 3), *x2 = f32v(c, 3);
    amg_tensor *p = f32v(big, 1), *q = f32v(one, 1), *o = f32z(1);
    const amg_tensor *xs[3] = { x0, x1, x2 };
    const amg_tensor *ys[3] = { p, q, q };

    /* out aliases an input read after it */
    ck_assert_int_eq(K->weighted_sum(&ctx, x0, xs, w, 3), AMG_OK);
    expect_f32(x0, want, 3);
    ck_assert_int_eq(K->weighted_sum(&ctx, o, ys, ones, 3), AMG_OK);
    expect_f32(o, want_big, 1);
    /* no inputs: the empty sum */
    ck_assert_int_eq(K->weighted_sum(&ctx, o, NULL, NULL, 0), AMG_OK);
    ck_assert_float_eq(F(o)[0], 0.0f);
    amg_tensor_free(x0);
    amg_tensor_free(x1);
    amg_tensor_free(x2);
    amg_tensor_free(p);
    amg_tensor_free(q);
    amg_tensor_free(o);
}
END_TEST

/* Across its internal block boundaries, weighted_sum is the per-element
 * formula. */
START_TEST(test_weighted_sum_long)
{
    enum { N = 3001 };
    amg_tensor *x0 = f32z(N), *x1 = f32z(N), *o = f32z(N);
    const amg_tensor *xs[2] = { x0, x1 };
    const float w[2] = { 0.3f, -1.7f };
    int i;

    lcg_state = 7;
    for (i = 0; i < N; i++) {
        F(x0)[i] = (float)lcg() / 65536.0f - 32768.0f;
        F(x1)[i] = (float)lcg() / 1048576.0f;
    }
    ck_assert_int_eq(K->weighted_sum(&ctx, o, xs, w, 2), AMG_OK);
    for (i = 0; i < N; i++) {
        volatile float p0 = w[0] * F(x0)[i], p1 = w[1] * F(x1)[i];
        volatile float s = 0.0f + p0;

        s = s + p1;
        ck_assert_uint_eq(bits(F(o)[i]), bits(s));
    }
    amg_tensor_free(x0);
    amg_tensor_free(x1);
    amg_tensor_free(o);
}
END_TEST

/* ---- masks and selection ---- */

START_TEST(test_mask_apply_where)
{
    const float xv[4] = { 1, -2, 3, -4 }, yv[4] = { 10, 20, 30, 40 };
    const uint8_t mv[4] = { 1, 0, 0, 1 };
    const float applied[4] = { 1, 0, 0, -4 }, chosen[4] = { 1, 20, 30, -4 };
    amg_tensor *x = f32v(xv, 4), *y = f32v(yv, 4), *m = maskv(mv, 4);
    amg_tensor *o = f32z(4);

    ck_assert_int_eq(K->mask_apply(&ctx, o, x, m), AMG_OK);
    expect_f32(o, applied, 4);
    ck_assert_int_eq(K->where(&ctx, y, m, x, y), AMG_OK);
    expect_f32(y, chosen, 4);
    amg_tensor_free(x);
    amg_tensor_free(y);
    amg_tensor_free(m);
    amg_tensor_free(o);
}
END_TEST

static void topk_case(const float *v, int64_t n, uint64_t k,
                      const uint8_t *want)
{
    amg_tensor *x = f32v(v, n), *m = mk_dt(AMG_DT_BOOL, n);

    memset(amg_tensor_data(m), 0xEE, (size_t)n);
    ck_assert_int_eq(K->topk_mask(&ctx, m, x, k), AMG_OK);
    expect_mask(m, want, n);
    amg_tensor_free(x);
    amg_tensor_free(m);
}

START_TEST(test_topk_small)
{
    const float t[4] = { 3, -3, 1, 3 };
    const float nz[5] = { NAN, 1, -NAN, -2, 0 };
    const float zeros[5] = { -0.0f, 0.0f, 0.0f, -0.0f, 1.0f };
    const float inf[3] = { INFINITY, -INFINITY, 3e38f };
    /* 1.5 and 1.5000001 differ only in the low 16 bits */
    const float close[4] = { 1.5f, 1.50000012f, -1.5f, 1.49999988f };

    topk_case(t, 4, 2, (const uint8_t[]){ 1, 1, 0, 0 });
    topk_case(t, 4, 3, (const uint8_t[]){ 1, 1, 0, 1 });
    topk_case(t, 4, 0, (const uint8_t[]){ 0, 0, 0, 0 });
    topk_case(t, 4, 4, (const uint8_t[]){ 1, 1, 1, 1 });
    topk_case(t, 4, 100, (const uint8_t[]){ 1, 1, 1, 1 });
    topk_case(nz, 5, 2, (const uint8_t[]){ 0, 1, 0, 1, 0 });
    topk_case(nz, 5, 3, (const uint8_t[]){ 0, 1, 0, 1, 1 });
    topk_case(nz, 5, 4, (const uint8_t[]){ 1, 1, 0, 1, 1 });
    topk_case(zeros, 5, 3, (const uint8_t[]){ 1, 1, 0, 0, 1 });
    topk_case(inf, 3, 2, (const uint8_t[]){ 1, 1, 0 });
    topk_case(close, 4, 1, (const uint8_t[]){ 0, 1, 0, 0 });
    topk_case(close, 4, 2, (const uint8_t[]){ 1, 1, 0, 0 });
    topk_case(close, 4, 3, (const uint8_t[]){ 1, 1, 1, 0 });
}
END_TEST

/* Reference ranking: larger |x| first, NaN after every number, then lower
 * index; a sort of indices, unlike the kernel. */
static const float *rank_x;
static int rank_cmp(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    double xa = fabs((double)rank_x[a]), xb = fabs((double)rank_x[b]);
    int na = isnan(xa), nb = isnan(xb);

    if (na != nb)
        return na - nb;
    if (!na && xa != xb)
        return xa > xb ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* ~10k values with many repeats, some NaNs and signed zeros. */
static void random_values(float *v, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        uint32_t r = lcg();

        switch (r % 16) {
        case 0: v[i] = NAN; break;
        case 1: v[i] = -0.0f; break;
        case 2: v[i] = 0.0f; break;
        case 3: v[i] = (float)(r % 7) * ((r & 64) ? -0.25f : 0.25f); break;
        default:
            v[i] = ((float)(int32_t)(lcg() >> 8) - 8388608.0f) *
                   ((r & 32) ? 1e-6f : 1e3f);
            break;
        }
    }
}

START_TEST(test_topk_vs_sort)
{
    enum { N = 10007 };
    static const uint64_t ks[] = { 1, 17, 626, 5000, 9000, 9380, 9500,
                                   N - 1, N };
    float *v = malloc(N * sizeof(float));
    uint32_t *idx = malloc(N * sizeof(uint32_t));
    uint8_t *want = malloc(N);
    amg_tensor *x, *m = mk_dt(AMG_DT_BOOL, N);
    size_t c, i;

    ck_assert(v && idx && want);
    lcg_state = 42;
    random_values(v, N);
    x = f32v(v, N);
    for (i = 0; i < N; i++)
        idx[i] = (uint32_t)i;
    rank_x = v;
    qsort(idx, N, sizeof(idx[0]), rank_cmp);
    for (c = 0; c < sizeof(ks) / sizeof(ks[0]); c++) {
        uint64_t k = ks[c], on = 0;

        memset(want, 0, N);
        for (i = 0; i < k; i++)
            want[idx[i]] = 1;
        ck_assert_int_eq(K->topk_mask(&ctx, m, x, k), AMG_OK);
        for (i = 0; i < N; i++)
            on += M(m)[i];
        ck_assert_uint_eq(on, k);
        expect_mask(m, want, N);
    }
    amg_tensor_free(x);
    amg_tensor_free(m);
    free(v);
    free(idx);
    free(want);
}
END_TEST

/* A chunked top-k as a strategy would write it with the building blocks:
 * both histogram passes over chunks, then threshold_mask chunk by chunk. */
static void topk_chunked(const float *v, int64_t n, int64_t chunk,
                         uint64_t k, uint8_t *mask)
{
    uint64_t *h = calloc(65536, sizeof(*h));
    uint64_t above = 0, taken = 0, numbers = 0;
    uint32_t b0 = 65535, b1 = 65535;
    int64_t at;
    int level;

    ck_assert_ptr_nonnull(h);
    for (level = 0; level < 2; level++) {
        uint32_t *b = level ? &b1 : &b0;

        memset(h, 0, 65536 * sizeof(*h));
        for (at = 0; at < n; at += chunk) {
            int64_t len = n - at < chunk ? n - at : chunk;
            amg_tensor *x = f32v(v + at, len);

            ck_assert_int_eq(K->abs_histogram(&ctx, x, level, b0, h), AMG_OK);
            amg_tensor_free(x);
        }
        if (level == 0)
            for (at = 0; at < 65536; at++)
                numbers += h[at];
        ck_assert_uint_lt(k, numbers);   /* the case this helper handles */
        while (above + h[*b] < k)
            above += h[(*b)--];
    }
    for (at = 0; at < n; at += chunk) {
        int64_t len = n - at < chunk ? n - at : chunk;
        amg_tensor *x = f32v(v + at, len), *m = mk_dt(AMG_DT_BOOL, len);

        m->elem_offset = (uint64_t)at;
        ck_assert_int_eq(K->threshold_mask(&ctx, m, x, (b0 << 16) | b1,
                                           k - above, &taken), AMG_OK);
        memcpy(mask + at, amg_tensor_data(m), (size_t)len);
        amg_tensor_free(x);
        amg_tensor_free(m);
    }
    ck_assert_uint_eq(taken, k - above);
    free(h);
}

START_TEST(test_topk_chunked)
{
    enum { N = 10007 };
    static const uint64_t ks[] = { 1, 100, 5000, 9000 };
    float *v = malloc(N * sizeof(float));
    uint8_t *got = malloc(N);
    amg_tensor *x, *m = mk_dt(AMG_DT_BOOL, N);
    size_t c;

    ck_assert(v && got);
    lcg_state = 99;
    random_values(v, N);
    x = f32v(v, N);
    for (c = 0; c < sizeof(ks) / sizeof(ks[0]); c++) {
        ck_assert_int_eq(K->topk_mask(&ctx, m, x, ks[c]), AMG_OK);
        topk_chunked(v, N, 1000, ks[c], got);
        ck_assert(!memcmp(got, amg_tensor_data(m), N));
        topk_chunked(v, N, 333, ks[c], got);
        ck_assert(!memcmp(got, amg_tensor_data(m), N));
    }
    amg_tensor_free(x);
    amg_tensor_free(m);
    free(v);
    free(got);
}
END_TEST

START_TEST(test_histogram_threshold)
{
    /* |x| bit patterns: 1.0 = 0x3F800000, 1.5 = 0x3FC00000, 2.0 =
     * 0x40000000, 1.0000001 = 0x3F800001; NaN not counted */
    const float v[6] = { 1.0f, -1.5f, 2.0f, 1.00000012f, NAN, -1.0f };
    uint64_t *h = calloc(65536, sizeof(*h));
    amg_tensor *x = f32v(v, 6), *m = mk_dt(AMG_DT_BOOL, 6);
    uint64_t taken = 0;

    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(K->abs_histogram(&ctx, x, 0, 0, h), AMG_OK);
    ck_assert_uint_eq(h[0x3F80], 3);
    ck_assert_uint_eq(h[0x3FC0], 1);
    ck_assert_uint_eq(h[0x4000], 1);
    ck_assert_uint_eq(h[0x7FC0], 0);
    /* histograms add up */
    ck_assert_int_eq(K->abs_histogram(&ctx, x, 0, 0, h), AMG_OK);
    ck_assert_uint_eq(h[0x3F80], 6);
    memset(h, 0, 65536 * sizeof(*h));
    ck_assert_int_eq(K->abs_histogram(&ctx, x, 1, 0x3F80, h), AMG_OK);
    ck_assert_uint_eq(h[0x0000], 2);
    ck_assert_uint_eq(h[0x0001], 1);
    ck_assert_uint_eq(h[0x4000], 0);    /* 2.0's low bits, other prefix */

    /* thr = 1.0: above it 1.5, 2, 1.0000001; one of the two 1.0 ties */
    ck_assert_int_eq(K->threshold_mask(&ctx, m, x, 0x3F800000u, 1, &taken),
                     AMG_OK);
    expect_mask(m, (const uint8_t[]){ 1, 1, 1, 1, 0, 0 }, 6);
    ck_assert_uint_eq(taken, 1);
    /* the tie budget is spent: this chunk takes no more ties */
    ck_assert_int_eq(K->threshold_mask(&ctx, m, x, 0x3F800000u, 1, &taken),
                     AMG_OK);
    expect_mask(m, (const uint8_t[]){ 0, 1, 1, 1, 0, 0 }, 6);

    expect_fail(K->abs_histogram(&ctx, x, 2, 0, h),
                "abs_histogram: level 2 is not 0 or 1");
    expect_fail(K->abs_histogram(&ctx, x, 1, 0x10000, h),
                "abs_histogram: prefix 0x10000 does not fit in 16 bits");
    expect_fail(K->topk_mask(&ctx, x, x, 1),
                "topk_mask: mask has dtype float32, expected bool");
    expect_fail(K->threshold_mask(&ctx, m, x, 0, 0, NULL),
                "threshold_mask: ties_taken is NULL");
    free(h);
    amg_tensor_free(x);
    amg_tensor_free(m);
}
END_TEST

/* ---- TIES ---- */

/*
 * Three models, weights w = (1, 2, 1), weighted deltas w*d:
 *   element   0     1     2     3     4
 *   w0*d0     1    -2     0     3     1
 *   w1*d1     4     2     0    -6    -2
 *   w2*d2    -1    -1     4     0     1
 *   sum       4    -1     4    -3     0   -> by sum:   +  -  +  -  + (zero)
 *   signs    +1    -1    +1     0    +1   -> by count: +  -  +  +  +
 * Disjoint merge by the sum signs (zeros never agree):
 *   kept      1,4  -2,-1  4    -6    1,1
 *   numer     5    -3     4    -6    2
 *   denom     3     2     1     2    2   -> 5/3, -1.5, 4, -3, 1
 */
START_TEST(test_ties)
{
    const float d0[5] = { 1, -2, 0, 3, 1 }, d1[5] = { 2, 1, 0, -3, -1 };
    const float d2[5] = { -1, -1, 4, 0, 1 }, w[3] = { 1, 2, 1 };
    const float by_sum[5] = { 1, -1, 1, -1, 1 };
    const float by_count[5] = { 1, -1, 1, 1, 1 };
    const float norm[5] = { 5.0f / 3.0f, -1.5f, 4, -3, 1 };
    const float raw[5] = { 5, -3, 4, -6, 2 };
    amg_tensor *x0 = f32v(d0, 5), *x1 = f32v(d1, 5), *x2 = f32v(d2, 5);
    amg_tensor *s = f32z(5), *o = f32z(5);
    const amg_tensor *d[3] = { x0, x1, x2 };

    ck_assert_int_eq(K->sign_elect(&ctx, s, d, w, 3, AMG_SIGN_BY_COUNT),
                     AMG_OK);
    expect_f32(s, by_count, 5);
    ck_assert_int_eq(K->sign_elect(&ctx, s, d, w, 3, AMG_SIGN_BY_SUM),
                     AMG_OK);
    expect_f32(s, by_sum, 5);
    ck_assert_int_eq(K->disjoint_merge(&ctx, o, d, w, 3, s, 1), AMG_OK);
    expect_f32(o, norm, 5);
    ck_assert_int_eq(K->disjoint_merge(&ctx, o, d, w, 3, s, 0), AMG_OK);
    expect_f32(o, raw, 5);
    /* out may be one of the inputs */
    ck_assert_int_eq(K->disjoint_merge(&ctx, x0, d, w, 3, s, 1), AMG_OK);
    expect_f32(x0, norm, 5);

    expect_fail(K->sign_elect(&ctx, s, d, w, 3, 7),
                "sign_elect: rule 7 is neither AMG_SIGN_BY_SUM nor "
                "AMG_SIGN_BY_COUNT");
    expect_fail(K->disjoint_merge(&ctx, o, d, w, 3, NULL, 1),
                "disjoint_merge: sign is NULL");
    amg_tensor_free(x0);
    amg_tensor_free(x1);
    amg_tensor_free(x2);
    amg_tensor_free(s);
    amg_tensor_free(o);
}
END_TEST

/* Weights of opposite sign can cancel in the divisor: |D| < 1e-8 counts as
 * 1. w*d = (1, 1): both agree with +1, D = 1 + (-1) = 0 -> 2 / 1. */
START_TEST(test_ties_small_divisor)
{
    const float d0[1] = { 1 }, d1[1] = { -1 }, w[2] = { 1, -1 };
    const float two[1] = { 2 }, plus[1] = { 1 };
    amg_tensor *x0 = f32v(d0, 1), *x1 = f32v(d1, 1);
    amg_tensor *s = f32z(1), *o = f32z(1);
    const amg_tensor *d[2] = { x0, x1 };

    ck_assert_int_eq(K->sign_elect(&ctx, s, d, w, 2, AMG_SIGN_BY_SUM),
                     AMG_OK);
    expect_f32(s, plus, 1);
    ck_assert_int_eq(K->disjoint_merge(&ctx, o, d, w, 2, s, 1), AMG_OK);
    expect_f32(o, two, 1);
    amg_tensor_free(x0);
    amg_tensor_free(x1);
    amg_tensor_free(s);
    amg_tensor_free(o);
}
END_TEST

/* ---- reductions ---- */

/* Many rows (full groups of the kernel's interleaved rows and a ragged
 * last one), each summed in f64 in column order: values of very
 * different sizes make any other order give other bits. */
START_TEST(test_row_dot_order)
{
    enum { R = 19, C = 37 };
    const int64_t shape[2] = { R, C };
    amg_tensor *x = mk(amg_dl_make(AMG_DL_FLOAT, 32), 2, shape);
    amg_tensor *y = mk(amg_dl_make(AMG_DL_FLOAT, 32), 2, shape);
    double out[R];
    int r, c;

    lcg_state = 5;
    for (r = 0; r < R * C; r++) {
        F(x)[r] = (float)((int32_t)(lcg() % 2001u) - 1000) *
                  (lcg() % 5u == 0 ? 1e7f : 1e-3f);
        F(y)[r] = (float)((int32_t)(lcg() % 2001u) - 1000) * 1e-2f;
    }
    ck_assert_int_eq(K->row_dot(&ctx, x, y, out), AMG_OK);
    for (r = 0; r < R; r++) {
        double want = 0.0;

        for (c = 0; c < C; c++)
            want += (double)F(x)[r * C + c] * (double)F(y)[r * C + c];
        ck_assert_msg(memcmp(&want, &out[r], sizeof(want)) == 0,
                      "row %d: got %.17g, want %.17g", r, out[r], want);
    }
    amg_tensor_free(x);
    amg_tensor_free(y);
}
END_TEST

START_TEST(test_reduce_small)
{
    const float a[4] = { 1, 2, 3, 4 }, b[4] = { 4, 5, 6, -1 };
    const float l[3] = { -1, 2, -3 }, pyth[2] = { 3, -4 };
    /* in f32, 2^24 + 1 + 1 would stay 2^24 */
    const float big[3] = { 16777216.0f, 1, 1 };
    const float rx[6] = { 1, 2, 3, 4, 5, 6 }, ry[6] = { 1, 0, 1, 2, 2, 2 };
    amg_tensor *x = f32v(a, 4), *y = f32v(b, 4), *t1 = f32v(l, 3);
    amg_tensor *t2 = f32v(pyth, 2), *t3 = f32v(big, 3);
    amg_tensor *r1 = mk(amg_dtype_to_dl(AMG_DT_F32), 2, (int64_t[]){ 2, 3 });
    amg_tensor *r2 = mk(amg_dtype_to_dl(AMG_DT_F32), 2, (int64_t[]){ 2, 3 });
    amg_tensor *r3 = mk(amg_dtype_to_dl(AMG_DT_F32), 2, (int64_t[]){ 3, 2 });
    double out, rows[2];

    memcpy(amg_tensor_data(r1), rx, sizeof(rx));
    memcpy(amg_tensor_data(r2), ry, sizeof(ry));
    ck_assert_int_eq(K->sum(&ctx, x, &out), AMG_OK);
    ck_assert_double_eq(out, 10.0);
    ck_assert_int_eq(K->dot(&ctx, x, y, &out), AMG_OK);
    ck_assert_double_eq(out, 28.0);
    ck_assert_int_eq(K->norm_l1(&ctx, t1, &out), AMG_OK);
    ck_assert_double_eq(out, 6.0);
    ck_assert_int_eq(K->norm_l2(&ctx, t2, &out), AMG_OK);
    ck_assert_double_eq(out, 5.0);
    ck_assert_int_eq(K->sum(&ctx, t3, &out), AMG_OK);
    ck_assert_double_eq(out, 16777218.0);
    ck_assert_int_eq(K->row_dot(&ctx, r1, r2, rows), AMG_OK);
    ck_assert_double_eq(rows[0], 4.0);     /* 1 + 0 + 3 */
    ck_assert_double_eq(rows[1], 30.0);    /* 8 + 10 + 12 */

    expect_fail(K->dot(&ctx, x, t1, &out), "dot: y has 3 elements, x has 4");
    expect_fail(K->row_dot(&ctx, r1, r3, rows),
                "row_dot: y has 3 rows, x has 2");
    amg_tensor_free(x);
    amg_tensor_free(y);
    amg_tensor_free(t1);
    amg_tensor_free(t2);
    amg_tensor_free(t3);
    amg_tensor_free(r1);
    amg_tensor_free(r2);
    amg_tensor_free(r3);
}
END_TEST

/* On 100k values, compare with a long double Kahan sum (a different
 * accumulation): the f64 result must be within the sequential-sum bound
 * n * 2^-53 * sum|terms|, and equal to the documented index-order sum. */
START_TEST(test_reduce_large)
{
    enum { N = 100000 };
    amg_tensor *x = f32z(N), *y = f32z(N);
    double got, seq;
    long double ref, c, t, absum;
    int i;

    lcg_state = 2024;
    for (i = 0; i < N; i++) {
        F(x)[i] = ((float)lcg() - 1073741824.0f) * 0x1p-20f;
        F(y)[i] = ((float)lcg() - 1073741824.0f) * 0x1p-27f;
    }
#define KAHAN(term)                                                          \
    do {                                                                     \
        ref = 0;                                                             \
        c = 0;                                                               \
        absum = 0;                                                           \
        for (i = 0; i < N; i++) {                                            \
            long double v_ = (term) - c;                                     \
            t = ref + v_;                                                    \
            c = (t - ref) - v_;                                              \
            ref = t;                                                         \
            absum += fabsl(term);                                            \
        }                                                                    \
    } while (0)
#define BOUND ((double)absum * N * 0x1p-53)

    KAHAN((long double)F(x)[i]);
    ck_assert_int_eq(K->sum(&ctx, x, &got), AMG_OK);
    ck_assert_double_le(fabs(got - (double)ref), BOUND);
    for (seq = 0, i = 0; i < N; i++)
        seq += F(x)[i];
    ck_assert_double_eq(got, seq);

    KAHAN((long double)F(x)[i] * F(y)[i]);
    ck_assert_int_eq(K->dot(&ctx, x, y, &got), AMG_OK);
    ck_assert_double_le(fabs(got - (double)ref), BOUND);

    KAHAN(fabsl((long double)F(y)[i]));
    ck_assert_int_eq(K->norm_l1(&ctx, y, &got), AMG_OK);
    ck_assert_double_le(fabs(got - (double)ref), BOUND);

    KAHAN((long double)F(y)[i] * F(y)[i]);
    ck_assert_int_eq(K->norm_l2(&ctx, y, &got), AMG_OK);
    /* sqrt halves the relative error, and adds half an ulp */
    ck_assert_double_le(fabs(got - (double)sqrtl(ref)),
                        (double)sqrtl(ref) * (N * 0x1p-53 + 0x1p-52));
#undef KAHAN
#undef BOUND
    amg_tensor_free(x);
    amg_tensor_free(y);
}
END_TEST

/* ---- random numbers ---- */

START_TEST(test_philox_kat)
{
    /* Random123's kat_vectors for philox4x32_10 */
    uint32_t o[4];

    amg_rng_philox(0, 0, 0, o);
    ck_assert_uint_eq(o[0], 0x6627e8d5u);
    ck_assert_uint_eq(o[1], 0xe169c58du);
    ck_assert_uint_eq(o[2], 0xbc57ac4cu);
    ck_assert_uint_eq(o[3], 0x9b00dbd8u);
    amg_rng_philox(UINT64_MAX, UINT64_MAX, UINT64_MAX, o);
    ck_assert_uint_eq(o[0], 0x408f276du);
    ck_assert_uint_eq(o[1], 0x41c83b0eu);
    ck_assert_uint_eq(o[2], 0xa20bc7c6u);
    ck_assert_uint_eq(o[3], 0x6d5451fdu);
    amg_rng_philox(0x299f31d0a4093822ull, 0x0370734413198a2eull,
                   0x85a308d3243f6a88ull, o);
    ck_assert_uint_eq(o[0], 0xd16cfe09u);
    ck_assert_uint_eq(o[1], 0x94fdccebu);
    ck_assert_uint_eq(o[2], 0x5001e420u);
    ck_assert_uint_eq(o[3], 0x24126ea1u);
}
END_TEST

START_TEST(test_rng_uniform)
{
    enum { N = 1000 };
    amg_tensor *whole = f32z(N), *chunk = f32z(200);
    int i;

    ck_assert_int_eq(K->rng_uniform(&ctx, whole, 0, 0), AMG_OK);
    /* element 0 of (seed 0, stream 0): 0x6627e8d5 >> 8 = 6694888 */
    ck_assert_float_eq(F(whole)[0], 6694888.0f / 16777216.0f);
    for (i = 0; i < N; i++)
        ck_assert(F(whole)[i] >= 0.0f && F(whole)[i] < 1.0f);
    /* a chunk at elements 300..499 draws what the whole did there */
    chunk->elem_offset = 300;
    chunk->full_numel = N;
    ck_assert_int_eq(K->rng_uniform(&ctx, chunk, 0, 0), AMG_OK);
    ck_assert(!memcmp(F(chunk), F(whole) + 300, 200 * sizeof(float)));
    /* another stream differs */
    ck_assert_int_eq(K->rng_uniform(&ctx, chunk, 0, 1), AMG_OK);
    ck_assert(memcmp(F(chunk), F(whole) + 300, 200 * sizeof(float)));
    amg_tensor_free(whole);
    amg_tensor_free(chunk);
}
END_TEST

START_TEST(test_rng_bernoulli)
{
    enum { N = 1000000 };
    amg_tensor *m = mk_dt(AMG_DT_BOOL, N), *c = mk_dt(AMG_DT_BOOL, 5000);
    uint64_t on = 0, s = 0x5eed, st = 3;
    int i;

    ck_assert_int_eq(K->rng_bernoulli(&ctx, m, 0.3, s, st), AMG_OK);
    for (i = 0; i < N; i++) {
        ck_assert_uint_le(M(m)[i], 1);
        on += M(m)[i];
    }
    /* Binomial(1e6, 0.3): mean 300000, sd sqrt(1e6 * 0.21) = 458.3; allow
     * 6 sd (2750). The draw is seeded, so this is a check of the
     * generator's rate, not a flaky test. */
    ck_assert_uint_ge(on, 300000 - 2750);
    ck_assert_uint_le(on, 300000 + 2750);
    /* mask[i] is exactly uniform(i) < p */
    for (i = 0; i < 1000; i++)
        ck_assert_uint_eq(M(m)[i],
                          (double)amg_rng_uniform(s, st, (uint64_t)i) < 0.3);
    c->elem_offset = 123456;
    ck_assert_int_eq(K->rng_bernoulli(&ctx, c, 0.3, s, st), AMG_OK);
    ck_assert(!memcmp(M(c), M(m) + 123456, 5000));
    ck_assert_int_eq(K->rng_bernoulli(&ctx, c, 0.0, s, st), AMG_OK);
    for (i = 0; i < 5000; i++)
        ck_assert_uint_eq(M(c)[i], 0);
    ck_assert_int_eq(K->rng_bernoulli(&ctx, c, 1.0, s, st), AMG_OK);
    for (i = 0; i < 5000; i++)
        ck_assert_uint_eq(M(c)[i], 1);
    {
        amg_tensor *f = f32z(3);

        expect_fail(K->rng_bernoulli(&ctx, f, 0.5, 0, 0),
                    "rng_bernoulli: mask has dtype float32, expected bool");
        expect_fail(K->rng_uniform(&ctx, c, 0, 0),
                    "rng_uniform: out has dtype bool, expected float32");
        amg_tensor_free(f);
    }
    amg_tensor_free(m);
    amg_tensor_free(c);
}
END_TEST

/* ---- row_abs_rank ---- */

static void rank_case(int32_t ndim, const int64_t *shape, const float *v,
                      const float *want)
{
    amg_tensor *x = mk(amg_dl_make(AMG_DL_FLOAT, 32), ndim, shape);
    amg_tensor *o = mk(amg_dl_make(AMG_DL_FLOAT, 32), ndim, shape);
    int64_t n = (int64_t)amg_tensor_numel(x);

    memcpy(F(x), v, (size_t)n * sizeof(float));
    memset(F(o), 0xEE, (size_t)n * sizeof(float));
    ck_assert_int_eq(K->row_abs_rank(&ctx, o, x), AMG_OK);
    expect_f32(o, want, n);
    /* in place gives the same */
    ck_assert_int_eq(K->row_abs_rank(&ctx, x, x), AMG_OK);
    expect_f32(x, want, n);
    amg_tensor_free(x);
    amg_tensor_free(o);
}

START_TEST(test_row_abs_rank_small)
{
    /* |x| ascending, ties by lower index: 0 (2), -0 (4), 0.5 (0), 1 (5),
     * 2 (1), 2 (3); rank_norm = position / 5 */
    const int64_t s6 = 6, s23[2] = { 2, 3 }, s31[2] = { 3, 1 };
    const int64_t s223[3] = { 2, 2, 3 }, s0 = 0;

    rank_case(1, &s6, (const float[]){ 0.5f, -2, 0, 2, -0.0f, 1 },
              (const float[]){ 0.4f, 0.8f, 0, 1, 0.2f, 0.6f });
    /* rows are independent; NaN ranks above infinity */
    rank_case(2, s23, (const float[]){ 3, 1, -2, NAN, INFINITY, -1 },
              (const float[]){ 1, 0, 0.5f, 1, 0.5f, 0 });
    /* a row of one element is 0 (mergekit: 0/0) */
    rank_case(2, s31, (const float[]){ 5, -7, 0 },
              (const float[]){ 0, 0, 0 });
    rank_case(0, NULL, (const float[]){ -3 }, (const float[]){ 0 });
    /* 3-D: each dim-0 slice of 6 is one row; 1.5 and 1.50000012 differ
     * only in the low bits */
    rank_case(3, s223,
              (const float[]){ 1.5f, 1.50000012f, -1.5f, 0, 9, -1,
                               6, 5, 4, 3, 2, 1 },
              (const float[]){ 0.4f, 0.8f, 0.6f, 0, 1, 0.2f,
                               1, 0.8f, 0.6f, 0.4f, 0.2f, 0 });
    {
        amg_tensor *e = mk(amg_dl_make(AMG_DL_FLOAT, 32), 1, &s0);

        ck_assert_int_eq(K->row_abs_rank(&ctx, e, e), AMG_OK);
        amg_tensor_free(e);
    }
}
END_TEST

/* Reference: ascending |x|, NaN above every number, then lower index. */
static int rank_up_cmp(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    double xa = fabs((double)rank_x[a]), xb = fabs((double)rank_x[b]);
    int na = isnan(xa), nb = isnan(xb);

    if (na != nb)
        return na - nb;
    if (!na && xa != xb)
        return xa < xb ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* Rows of R x C values ranked by the kernel and by qsort. */
enum { RANK_R = 3, RANK_C = 5000 };

static void rank_vs_sort(const float *v)
{
    const int64_t shape[2] = { RANK_R, RANK_C };
    amg_tensor *x = mk(amg_dl_make(AMG_DL_FLOAT, 32), 2, shape);
    amg_tensor *o = mk(amg_dl_make(AMG_DL_FLOAT, 32), 2, shape);
    static uint32_t idx[RANK_C];
    int r, c;

    memcpy(F(x), v, sizeof(float) * RANK_R * RANK_C);
    ck_assert_int_eq(K->row_abs_rank(&ctx, o, x), AMG_OK);
    for (r = 0; r < RANK_R; r++) {
        rank_x = F(x) + r * RANK_C;
        for (c = 0; c < RANK_C; c++)
            idx[c] = (uint32_t)c;
        qsort(idx, RANK_C, sizeof(idx[0]), rank_up_cmp);
        for (c = 0; c < RANK_C; c++) {
            float want = (float)((double)c / (double)(RANK_C - 1));

            ck_assert_msg(F(o)[r * RANK_C + (int)idx[c]] == want,
                          "row %d, element %u (position %d): got %.9g",
                          r, idx[c], c,
                          (double)F(o)[r * RANK_C + (int)idx[c]]);
        }
    }
    amg_tensor_free(x);
    amg_tensor_free(o);
}

START_TEST(test_row_abs_rank_vs_sort)
{
    static float v[RANK_R * RANK_C];

    lcg_state = 99;
    random_values(v, RANK_R * RANK_C);
    rank_vs_sort(v);
}
END_TEST

/* Rows the first digit spreads badly: three magnitudes repeated (buckets
 * of equal keys, left in column order); deltas of a narrow range with one
 * outlier each (the digit spans the outlier, so most of the row shares a
 * few buckets, sorted by their low bits); zeros and NaNs among them. */
START_TEST(test_row_abs_rank_skewed)
{
    static float v[RANK_R * RANK_C];
    int c;

    lcg_state = 7;
    for (c = 0; c < RANK_C; c++) {
        static const float three[3] = { 0.25f, -0.5f, 0.125f };

        v[c] = three[lcg() % 3u];
        v[RANK_C + c] = (float)(lcg() % 100000u) * 1e-9f *
                        (lcg() & 1u ? 1.0f : -1.0f);
        v[2 * RANK_C + c] = lcg() % 7u == 0 ? 0.0f
                          : lcg() % 11u == 0 ? NAN
                          : (float)(lcg() % 4096u) / 4096.0f;
    }
    v[RANK_C + 17] = 3.0e4f;
    v[2 * RANK_C + 4999] = -INFINITY;
    rank_vs_sort(v);
}
END_TEST

/* Rows of few distinct magnitudes, ranked by counting: each row draws
 * from a few hundred values (both signs of each, zeros of both signs,
 * infinities, NaNs: the reference ties NaNs, so one payload), the last
 * row from more than a quarter of its length (sorted instead). */
/* Magnitudes made to collide in the counting path's hash table: keys
 * j * 0x9E3779B1^-1 (mod 2^32) all hash to bucket 0 for small j, so the
 * table degenerates into one probe chain; the row must still be ranked
 * right (by the sort the kernel falls back to) and not in quadratic time. */
START_TEST(test_row_abs_rank_collisions)
{
    static float v[RANK_R * RANK_C];
    uint32_t keys[600], j, n = 0;
    int c;

    for (j = 1; n < 600; j++) {
        uint32_t k = j * 0x0E8B2F51u;  /* the hash constant's inverse */

        if (k <= 0x7F800000u)
            keys[n++] = k;
    }
    lcg_state = 77;
    for (c = 0; c < RANK_R * RANK_C; c++)
        v[c] = amg_bits_f32(keys[lcg() % 600u] | (lcg() & 1u) << 31);
    rank_vs_sort(v);
}
END_TEST

START_TEST(test_row_abs_rank_counted)
{
    static float v[RANK_R * RANK_C];
    float pool[400];
    int c, p, r;

    lcg_state = 31;
    for (p = 0; p < 400; p++)
        pool[p] = p < 2 ? (p ? -0.0f : 0.0f)
                : p < 4 ? (p == 2 ? INFINITY : -INFINITY)
                : p < 7 ? NAN
                : (float)(lcg() % 65536u) * 0x1p-20f;
    for (r = 0; r < RANK_R; r++)
        for (c = 0; c < RANK_C; c++) {
            float x = r < RANK_R - 1 ? pool[lcg() % (r ? 400u : 40u)]
                                     : (float)(lcg() % 1000000u) * 1e-6f;

            v[r * RANK_C + c] = lcg() & 1u ? -x : x;
        }
    rank_vs_sort(v);
}
END_TEST

START_TEST(test_row_abs_rank_errors)
{
    amg_tensor *x = f32z(4), *y = f32z(3), *m = mk_dt(AMG_DT_BOOL, 4);

    ck_assert_ptr_nonnull(K->row_abs_rank);
    expect_fail(K->row_abs_rank(&ctx, m, x),
                "row_abs_rank: out has dtype bool, expected float32");
    expect_fail(K->row_abs_rank(&ctx, x, m),
                "row_abs_rank: x has dtype bool, expected float32");
    expect_fail(K->row_abs_rank(&ctx, y, x),
                "row_abs_rank: out has 3 elements, x has 4");
    amg_tensor_free(x);
    amg_tensor_free(y);
    amg_tensor_free(m);
}
END_TEST

/* ---- per-row kernels and the weighted quotient (rows.c) ---- */

static amg_tensor *f32s(int32_t ndim, const int64_t *shape, const float *v)
{
    amg_tensor *t = mk(amg_dl_make(AMG_DL_FLOAT, 32), ndim, shape);

    memcpy(F(t), v, (size_t)amg_tensor_numel(t) * sizeof(float));
    return t;
}

START_TEST(test_row_abs_sum)
{
    /* row 0: |x| sums to 3.75, the masked 1 and 0.5 to 1.5; row 1: the
     * NaN reaches all but not kept, where its mask byte is 0; row 2: f64
     * sums, so 2^24 + 1 + 1 is exact (f32 would drop both ones) */
    const int64_t s34[2] = { 3, 4 };
    amg_tensor *x = f32s(2, s34, (const float[]){
                             1, -2, 0.5f, -0.25f,
                             NAN, 1, -2, 3,
                             16777216.0f, 1, -1, -0.0f });
    amg_tensor *m = maskv((const uint8_t[]){ 1, 0, 1, 0,
                                             0, 1, 1, 0,
                                             0, 1, 1, 1 }, 12);
    double all[3] = { -1, -1, -1 }, kept[3] = { -1, -1, -1 };

    ck_assert_ptr_nonnull(K->row_abs_sum);
    ck_assert_int_eq(K->row_abs_sum(&ctx, x, m, all, kept), AMG_OK);
    ck_assert(all[0] == 3.75 && kept[0] == 1.5);
    ck_assert(isnan(all[1]) && kept[1] == 3.0);
    ck_assert(all[2] == 16777218.0 && kept[2] == 2.0);
    /* either output alone; the other is left untouched */
    all[0] = kept[0] = -1;
    ck_assert_int_eq(K->row_abs_sum(&ctx, x, m, NULL, kept), AMG_OK);
    ck_assert(kept[0] == 1.5 && kept[2] == 2.0 && all[0] == -1);
    ck_assert_int_eq(K->row_abs_sum(&ctx, x, NULL, all, NULL), AMG_OK);
    ck_assert(all[0] == 3.75 && all[2] == 16777218.0);
    amg_tensor_free(x);
    amg_tensor_free(m);
}
END_TEST

START_TEST(test_row_abs_sum_rows)
{
    /* 6 rows (more than the kernel interleaves at once), row r holding
     * r and -(r + 0.5): all[r] = 2r + 0.5 in row order. Rows are along
     * dimension 0, as for row_dot: each element of a 1-D tensor is a row
     * (so its total, added up by the caller, does not depend on how the
     * tensor was chunked); a scalar is one row */
    const int64_t s62[2] = { 6, 2 }, s3 = 3;
    float v[12];
    double all[6], kept[6];
    amg_tensor *x, *m, *x1, *x0;
    int r;

    for (r = 0; r < 6; r++) {
        v[2 * r] = (float)r;
        v[2 * r + 1] = -((float)r + 0.5f);
    }
    x = f32s(2, s62, v);
    m = maskv((const uint8_t[]){ 0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0 }, 12);
    ck_assert_int_eq(K->row_abs_sum(&ctx, x, m, all, kept), AMG_OK);
    for (r = 0; r < 6; r++) {
        ck_assert_msg(all[r] == 2.0 * r + 0.5, "row %d: all %g", r, all[r]);
        ck_assert_msg(kept[r] == (r < 3 ? r + 0.5 : (double)r),
                      "row %d: kept %g", r, kept[r]);
    }
    x1 = f32s(1, &s3, (const float[]){ -1, 2, -4 });
    ck_assert_int_eq(K->row_abs_sum(&ctx, x1, NULL, all, NULL), AMG_OK);
    ck_assert(all[0] == 1.0 && all[1] == 2.0 && all[2] == 4.0);
    x0 = f32s(0, NULL, (const float[]){ -2.5f });
    ck_assert_int_eq(K->row_abs_sum(&ctx, x0, NULL, all, NULL), AMG_OK);
    ck_assert(all[0] == 2.5);
    amg_tensor_free(x);
    amg_tensor_free(m);
    amg_tensor_free(x1);
    amg_tensor_free(x0);
}
END_TEST

START_TEST(test_row_abs_sum_errors)
{
    amg_tensor *x = f32z(4), *m3 = mk_dt(AMG_DT_BOOL, 3), *f = f32z(4);
    double all[1], kept[1];

    expect_fail(K->row_abs_sum(&ctx, x, NULL, all, kept),
                "row_abs_sum: kept is given but mask is NULL");
    expect_fail(K->row_abs_sum(&ctx, x, m3, all, kept),
                "row_abs_sum: mask has 3 elements, x has 4");
    expect_fail(K->row_abs_sum(&ctx, x, f, all, kept),
                "row_abs_sum: mask has dtype float32, expected bool");
    expect_fail(K->row_abs_sum(&ctx, m3, NULL, all, NULL),
                "row_abs_sum: x has dtype bool, expected float32");
    amg_tensor_free(x);
    amg_tensor_free(m3);
    amg_tensor_free(f);
}
END_TEST

START_TEST(test_row_axpby)
{
    /* row 0: 2x - y; row 1: 0.5x + 3y */
    const int64_t s23[2] = { 2, 3 }, s212[3] = { 2, 1, 2 };
    const float xv[6] = { 1, 2, 3, 4, -2, 1 }, yv[6] = { 1, 1, 1, 1, 0, -1 };
    const float want[6] = { 1, 3, 5, 5, -1, -2.5f };
    const float alpha[2] = { 2, 0.5f }, beta[2] = { -1, 3 };
    /* as in test_axpby: an FMA would leave 2^-24 instead of 0 */
    const float fa[1] = { 1.0f + 0x1p-12f }, fb[1] = { -1.0f };
    amg_tensor *x = f32s(2, s23, xv), *y = f32s(2, s23, yv);
    amg_tensor *o = f32z(6), *px, *qy, *z;
    amg_tensor *x3 = f32s(3, s212, (const float[]){ 1, 2, 3, 4 });
    amg_tensor *o2 = f32s(2, s23, xv), *xf = f32v(xv, 6), *yf = f32v(yv, 6);
    amg_tensor *x1 = f32v((const float[]){ 1, 4 }, 2);
    amg_tensor *y1 = f32v((const float[]){ 1, 1 }, 2);

    ck_assert_ptr_nonnull(K->row_axpby);
    /* rows are out's (dimension 0): a 1-D out of 6 would take 6 scales,
     * so out is [2, 3] here and x, y match it in count only */
    ck_assert_int_eq(K->row_axpby(&ctx, o2, alpha, xf, beta, yf), AMG_OK);
    expect_f32(o2, want, 6);
    /* out aliases x, then y */
    ck_assert_int_eq(K->row_axpby(&ctx, x, alpha, x, beta, y), AMG_OK);
    expect_f32(x, want, 6);
    memcpy(F(x), xv, sizeof(xv));
    ck_assert_int_eq(K->row_axpby(&ctx, y, alpha, x, beta, y), AMG_OK);
    expect_f32(y, want, 6);
    /* 1-D: each element is a row (dimension 0), as for row_dot */
    ck_assert_int_eq(K->row_axpby(&ctx, x1, alpha, x1, beta, y1), AMG_OK);
    expect_f32(x1, (const float[]){ 1, 5 }, 2);
    /* 3-D: rows along dimension 0 */
    ck_assert_int_eq(K->row_axpby(&ctx, x3, alpha, x3, beta, x3), AMG_OK);
    expect_f32(x3, (const float[]){ 1, 2, 10.5f, 14 }, 4);
    px = f32v(fa, 1);
    qy = f32v((const float[]){ 1.0f + 0x1p-11f }, 1);
    z = f32z(1);
    ck_assert_int_eq(K->row_axpby(&ctx, z, fa, px, fb, qy), AMG_OK);
    expect_f32(z, (const float[]){ 0.0f }, 1);
    expect_fail(K->row_axpby(&ctx, o, NULL, x, beta, y),
                "row_axpby: alpha is NULL");
    expect_fail(K->row_axpby(&ctx, o, alpha, x, beta, z),
                "row_axpby: y has 1 elements, out has 6");
    amg_tensor_free(x);
    amg_tensor_free(y);
    amg_tensor_free(o);
    amg_tensor_free(px);
    amg_tensor_free(qy);
    amg_tensor_free(z);
    amg_tensor_free(x3);
    amg_tensor_free(o2);
    amg_tensor_free(xf);
    amg_tensor_free(yf);
    amg_tensor_free(x1);
    amg_tensor_free(y1);
}
END_TEST

START_TEST(test_weighted_quotient)
{
    /* f[1] NULL counts as 0; c = {1, 2}, eps = 0.5.
     * add:   w0 = {1.5, 0.5, NaN}, w1 = 1:
     *        (1.5*1 + 3) / 2.5 = 1.8, (0.5*2 + 6) / 1.5, NaN
     * floor: w0 = {1, 0.5, 0.5} (max(NaN, eps) = eps), w1 = 1:
     *        (1 + 3) / 2 = 2, (0.5*2 + 6) / 1.5, (0.5*4 + 8) / 1.5 */
    const float xv0[3] = { 1, 2, 4 }, xv1[3] = { 3, 6, 8 };
    amg_tensor *x0 = f32v(xv0, 3), *x1 = f32v(xv1, 3), *o = f32z(3);
    amg_tensor *f0 = f32v((const float[]){ 1, 0, NAN }, 3);
    const amg_tensor *x[2] = { x0, x1 }, *f[2] = { f0, NULL };
    const double c[2] = { 1, 2 };

    ck_assert_ptr_nonnull(K->weighted_quotient);
    ck_assert_int_eq(K->weighted_quotient(&ctx, o, x, f, c, 2, 0.5, 0),
                     AMG_OK);
    expect_f32(o, (const float[]){ (float)(4.5 / 2.5), (float)(7.0 / 1.5),
                                   NAN }, 3);
    ck_assert_int_eq(K->weighted_quotient(&ctx, o, x, f, c, 2, 0.5, 1),
                     AMG_OK);
    expect_f32(o, (const float[]){ 2, (float)(7.0 / 1.5),
                                   (float)(10.0 / 1.5) }, 3);
    /* out may alias an input */
    ck_assert_int_eq(K->weighted_quotient(&ctx, x0, x, f, c, 2, 0.5, 1),
                     AMG_OK);
    expect_f32(x0, (const float[]){ 2, (float)(7.0 / 1.5),
                                    (float)(10.0 / 1.5) }, 3);
    amg_tensor_free(x0);
    amg_tensor_free(x1);
    amg_tensor_free(o);
    amg_tensor_free(f0);
}
END_TEST

START_TEST(test_weighted_quotient_f64)
{
    /* weights 1 (no Fisher, eps 1): (2^24 + 0.5 - 2^24) / 3. The f64
     * numerator keeps the 0.5; an f32 one would round 2^24 + 0.5 to 2^24
     * and give 0 */
    amg_tensor *x0 = f32v((const float[]){ 16777216.0f }, 1);
    amg_tensor *x1 = f32v((const float[]){ 0.5f }, 1);
    amg_tensor *x2 = f32v((const float[]){ -16777216.0f }, 1);
    amg_tensor *o = f32z(1);
    const amg_tensor *x[3] = { x0, x1, x2 }, *f[3] = { NULL, NULL, NULL };
    const double c[3] = { 1, 1, 1 };
    const float want = (float)(0.5 / 3.0);

    ck_assert_int_eq(K->weighted_quotient(&ctx, o, x, f, c, 3, 1, 0),
                     AMG_OK);
    expect_f32(o, &want, 1);
    amg_tensor_free(x0);
    amg_tensor_free(x1);
    amg_tensor_free(x2);
    amg_tensor_free(o);
}
END_TEST

START_TEST(test_weighted_quotient_zero)
{
    /* 1500 elements (past one block); F is 0 at 1200 and 1300 only, so
     * with eps 0 the first zero denominator is element 1200, reported at
     * the chunk's place in the whole tensor */
    enum { N = 1500 };
    amg_tensor *x0 = f32z(N), *f0 = f32z(N), *o = f32z(N);
    const amg_tensor *x[1] = { x0 }, *f[1] = { f0 }, *none[1] = { NULL };
    const amg_tensor *x2[2] = { x0, x0 }, *none2[2] = { NULL, NULL };
    const double c[1] = { 2 }, c2[2] = { 1, -1 };
    int i;

    for (i = 0; i < N; i++) {
        F(x0)[i] = (float)i;
        F(f0)[i] = i == 1200 || i == 1300 ? 0.0f : 0.25f;
    }
    o->elem_offset = 1000;
    expect_fail(K->weighted_quotient(&ctx, o, x, f, c, 1, 0, 0),
                "weighted_quotient: the weights sum to 0 at element 2200; "
                "epsilon > 0 or nonzero weights avoid that");
    /* floor with eps 0 keeps F = 0 a zero weight too */
    expect_fail(K->weighted_quotient(&ctx, o, x, f, c, 1, 0, 1),
                "weighted_quotient: the weights sum to 0 at element 2200; "
                "epsilon > 0 or nonzero weights avoid that");
    /* weights cancelling: the very first element */
    expect_fail(K->weighted_quotient(&ctx, o, x2, none2, c2, 2, 1e-6, 0),
                "weighted_quotient: the weights sum to 0 at element 1000; "
                "epsilon > 0 or nonzero weights avoid that");
    /* no Fisher, eps 1: every weight 2, out = x across both blocks */
    ck_assert_int_eq(K->weighted_quotient(&ctx, o, x, none, c, 1, 1, 0),
                     AMG_OK);
    for (i = 0; i < N; i++)
        ck_assert_msg(F(o)[i] == (float)i, "element %d: %g", i,
                      (double)F(o)[i]);
    amg_tensor_free(x0);
    amg_tensor_free(f0);
    amg_tensor_free(o);
}
END_TEST

START_TEST(test_weighted_quotient_errors)
{
    amg_tensor *o = f32z(3), *x0 = f32z(3), *f2 = f32z(2);
    const amg_tensor *x[1] = { x0 }, *f[1] = { f2 }, *none[1] = { NULL };
    const double c[1] = { 1 };

    expect_fail(K->weighted_quotient(&ctx, o, x, f, c, 1, 0, 0),
                "weighted_quotient: f[0] has 2 elements, out has 3");
    expect_fail(K->weighted_quotient(&ctx, o, x, none, NULL, 1, 0, 0),
                "weighted_quotient: c is NULL with n = 1");
    expect_fail(K->weighted_quotient(&ctx, o, x, NULL, c, 1, 0, 0),
                "weighted_quotient: f is NULL with n = 1");
    expect_fail(K->weighted_quotient(&ctx, o, (const amg_tensor *[]){ f2 },
                                     none, c, 1, 0, 0),
                "weighted_quotient: x[0] has 2 elements, out has 3");
    amg_tensor_free(o);
    amg_tensor_free(x0);
    amg_tensor_free(f2);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_tensor_alloc);
    tcase_add_test(tc, test_tensor_wrap);
    tcase_add_test(tc, test_dtype_dl_map);
    tcase_add_test(tc, test_table);
    tcase_add_test(tc, test_arg_errors);
    tcase_add_test(tc, test_convert_float);
    tcase_add_test(tc, test_convert_int);
    tcase_add_test(tc, test_convert_errors);
    tcase_add_test(tc, test_fill_scale);
    tcase_add_test(tc, test_axpby);
    tcase_add_test(tc, test_mul_div_abs_sign);
    tcase_add_test(tc, test_weighted_sum);
    tcase_add_test(tc, test_weighted_sum_long);
    tcase_add_test(tc, test_mask_apply_where);
    tcase_add_test(tc, test_topk_small);
    tcase_add_test(tc, test_topk_vs_sort);
    tcase_add_test(tc, test_topk_chunked);
    tcase_add_test(tc, test_histogram_threshold);
    tcase_add_test(tc, test_ties);
    tcase_add_test(tc, test_ties_small_divisor);
    tcase_add_test(tc, test_reduce_small);
    tcase_add_test(tc, test_row_dot_order);
    tcase_add_test(tc, test_reduce_large);
    tcase_add_test(tc, test_philox_kat);
    tcase_add_test(tc, test_rng_uniform);
    tcase_add_test(tc, test_rng_bernoulli);
    suite_add_tcase(s, tc);
    tc = tcase_create("row_abs_rank");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_row_abs_rank_small);
    tcase_add_test(tc, test_row_abs_rank_vs_sort);
    tcase_add_test(tc, test_row_abs_rank_skewed);
    tcase_add_test(tc, test_row_abs_rank_counted);
    tcase_add_test(tc, test_row_abs_rank_collisions);
    tcase_add_test(tc, test_row_abs_rank_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("rows");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_row_abs_sum);
    tcase_add_test(tc, test_row_abs_sum_rows);
    tcase_add_test(tc, test_row_abs_sum_errors);
    tcase_add_test(tc, test_row_axpby);
    tcase_add_test(tc, test_weighted_quotient);
    tcase_add_test(tc, test_weighted_quotient_f64);
    tcase_add_test(tc, test_weighted_quotient_zero);
    tcase_add_test(tc, test_weighted_quotient_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
