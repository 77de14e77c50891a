/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
#include "dtype.h"
#include "simd.h"

#include <string.h>
#include <strings.h>

#include "fpconv.h"

/* safetensors' names, by amg_dtype */
static const char *const names[AMG_DT_COUNT] = {
#define AMG_DT_NAME_(e, st, torch, size, fl, dl) [AMG_DT_##e] = st,
    AMG_DTYPE_FACTS(AMG_DT_NAME_)
#undef AMG_DT_NAME_
};

/* Valid safetensors dtypes amalgam does not handle (yet). */
static const char *const unsupported[] = {
    "F4", "F6_E2M3", "F6_E3M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
    "U16", "U32", "U64", "C64", NULL
};

static const struct { const char *alias; amg_dtype t; } aliases[] = {
    { "float64", AMG_DT_F64 },  { "double", AMG_DT_F64 },
    { "fp64", AMG_DT_F64 },     { "float32", AMG_DT_F32 },
    { "float", AMG_DT_F32 },    { "fp32", AMG_DT_F32 },
    { "float16", AMG_DT_F16 },  { "half", AMG_DT_F16 },
    { "fp16", AMG_DT_F16 },     { "bfloat16", AMG_DT_BF16 },
    { "bf16", AMG_DT_BF16 },    { "int64", AMG_DT_I64 },
    { "long", AMG_DT_I64 },     { "int32", AMG_DT_I32 },
    { "int", AMG_DT_I32 },      { "int16", AMG_DT_I16 },
    { "short", AMG_DT_I16 },    { "int8", AMG_DT_I8 },
    { "uint8", AMG_DT_U8 },     { "bool", AMG_DT_BOOL },
    { "float8_e4m3fn", AMG_DT_F8_E4M3 }, { "fp8_e4m3", AMG_DT_F8_E4M3 },
    { "float8_e5m2", AMG_DT_F8_E5M2 },   { "fp8_e5m2", AMG_DT_F8_E5M2 },
};

const char *amg_dtype_name(amg_dtype t)
{
    return (unsigned)t < AMG_DT_COUNT ? names[t] : "?";
}

int amg_dtype_parse(const char *name, amg_dtype *out)
{
    int i;

    for (i = 0; i < AMG_DT_COUNT; i++) {
        if (!strcmp(name, names[i])) {
            *out = (amg_dtype)i;
            return 0;
        }
    }
    return -1;
}

int amg_dtype_known_unsupported(const char *name)
{
    int i;

    for (i = 0; unsupported[i]; i++)
        if (!strcmp(name, unsupported[i]))
            return 1;
    return 0;
}

int amg_dtype_parse_user(const char *name, amg_dtype *out)
{
    size_t i;

    for (i = 0; i < AMG_DT_COUNT; i++) {
        if (!strcasecmp(name, names[i])) {
            *out = (amg_dtype)i;
            return 0;
        }
    }
    if (!strncmp(name, "torch.", 6))
        name += 6;
    for (i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
        if (!strcasecmp(name, aliases[i].alias)) {
            *out = aliases[i].t;
            return 0;
        }
    }
    return -1;
}

/* ---- bulk conversion (per-element rules live in fpconv.h) ---- */
/* AMG-DTYPE-CONVERSIONS: amg_to_f32 / amg_from_f32 go here. */

/*
 * Fast paths for the types every merge reads and writes. On a little-endian
 * host an element is a plain (unaligned) load, so these loops are simple
 * enough for the compiler to vectorise, in each of simd.h's forms; the
 * per-element rules are the same functions as the general loop's, so the
 * results are identical.
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define AMG_LE_HOST 1

/* GCC 12 at plain -O2 leaves these loops scalar; they run on every byte
 * a merge reads and writes */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize")
#endif

AMG_SIMD_FN(void, bf16_to_f32,
            (const unsigned char *p, float *out, size_t n), {
    size_t i;

    for (i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, sizeof(h));
        out[i] = amg_bf16_to_f32(h);
    }
})

AMG_SIMD_FN(void, f32_to_bf16,
            (const float *in, unsigned char *p, size_t n), {
    size_t i;

    for (i = 0; i < n; i++) {
        uint16_t h = amg_f32_to_bf16(in[i]);
        memcpy(p + 2 * i, &h, sizeof(h));
    }
})

AMG_SIMD_FN(void, f16_to_f32,
            (const unsigned char *p, float *out, size_t n), {
    size_t i;

    for (i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, sizeof(h));
        out[i] = amg_f16_to_f32(h);
    }
})

AMG_SIMD_FN(void, f32_to_f16,
            (const float *in, unsigned char *p, size_t n), {
    size_t i;

    for (i = 0; i < n; i++) {
        uint16_t h = amg_f32_to_f16(in[i]);
        memcpy(p + 2 * i, &h, sizeof(h));
    }
})
#endif

void amg_to_f32(amg_dtype src, const void *in, float *out, size_t n)
{
    const unsigned char *p = in;
    size_t sz = amg_dtype_size(src);
    size_t i;
    uint64_t v;
    double d;

#ifdef AMG_LE_HOST
    switch (src) {
    case AMG_DT_BF16:
        AMG_SIMD(bf16_to_f32)(p, out, n);
        return;
    case AMG_DT_F16:
        AMG_SIMD(f16_to_f32)(p, out, n);
        return;
    case AMG_DT_F32:
        memmove(out, p, n * sizeof(float));
        return;
    default:
        break;
    }
#endif

    for (i = 0; i < n; i++, p += sz) {
        v = amg_load_le(p, sz);
        switch (src) {
        case AMG_DT_F64:
            memcpy(&d, &v, sizeof(d));
            out[i] = (float)d;
            break;
        case AMG_DT_F32:
            out[i] = amg_bits_f32((uint32_t)v);
            break;
        case AMG_DT_F16:
            out[i] = amg_f16_to_f32((uint16_t)v);
            break;
        case AMG_DT_BF16:
            out[i] = amg_bf16_to_f32((uint16_t)v);
            break;
        case AMG_DT_I64:
            out[i] = (float)(int64_t)v;
            break;
        case AMG_DT_I32:
            out[i] = (float)(int32_t)(uint32_t)v;
            break;
        case AMG_DT_I16:
            out[i] = (float)(int16_t)(uint16_t)v;
            break;
        case AMG_DT_I8:
            out[i] = (float)(int8_t)(uint8_t)v;
            break;
        case AMG_DT_U8:
            out[i] = (float)(uint8_t)v;
            break;
        case AMG_DT_BOOL:
            out[i] = v ? 1.0f : 0.0f;
            break;
        case AMG_DT_F8_E4M3:
            out[i] = amg_f8e4m3_to_f32((uint8_t)v);
            break;
        case AMG_DT_F8_E5M2:
            out[i] = amg_f8e5m2_to_f32((uint8_t)v);
            break;
        default:
            return;
        }
    }
}

void amg_from_f32(amg_dtype dst, const float *in, void *out, size_t n)
{
    unsigned char *p = out;
    size_t sz = amg_dtype_size(dst);
    size_t i;
    uint64_t v;
    double d;
    float x;

#ifdef AMG_LE_HOST
    switch (dst) {
    case AMG_DT_BF16:
        AMG_SIMD(f32_to_bf16)(in, p, n);
        return;
    case AMG_DT_F16:
        AMG_SIMD(f32_to_f16)(in, p, n);
        return;
    case AMG_DT_F32:
        memmove(p, in, n * sizeof(float));
        return;
    default:
        break;
    }
#endif

    for (i = 0; i < n; i++, p += sz) {
        x = in[i];
        switch (dst) {
        case AMG_DT_F64:
            d = x;
            memcpy(&v, &d, sizeof(v));
            break;
        case AMG_DT_F32:
            v = amg_f32_bits(x);
            break;
        case AMG_DT_F16:
            v = amg_f32_to_f16(x);
            break;
        case AMG_DT_BF16:
            v = amg_f32_to_bf16(x);
            break;
        case AMG_DT_I64:
            v = (uint64_t)amg_sat_int(x, -0x1p63f, 0x1p63f, INT64_MIN,
                                      INT64_MAX, 1);
            break;
        case AMG_DT_I32:
            v = (uint64_t)amg_sat_int(x, -0x1p31f, 0x1p31f, INT32_MIN,
                                      INT32_MAX, 1);
            break;
        case AMG_DT_I16:
            v = (uint64_t)amg_sat_int(x, -32768.0f, 32767.0f, INT16_MIN,
                                      INT16_MAX, 0);
            break;
        case AMG_DT_I8:
            v = (uint64_t)amg_sat_int(x, -128.0f, 127.0f, INT8_MIN,
                                      INT8_MAX, 0);
            break;
        case AMG_DT_U8:
            v = (uint64_t)amg_sat_int(x, 0.0f, 255.0f, 0, UINT8_MAX, 0);
            break;
        case AMG_DT_BOOL:
            v = x != 0.0f;
            break;
        case AMG_DT_F8_E4M3:
            v = amg_f32_to_f8e4m3(x);
            break;
        case AMG_DT_F8_E5M2:
            v = amg_f32_to_f8e5m2(x);
            break;
        default:
            return;
        }
        amg_store_le(p, v, sz);
    }
}
