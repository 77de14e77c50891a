/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dtype.h - tensor element types as safetensors names them, and bulk
 * conversion to and from f32 (the compute type).
 *
 * Rounding to narrow floats is round-to-nearest-even exactly as PyTorch does
 * it (see fpconv.h for the per-element functions and their NaN rules).
 */
#ifndef AMG_DTYPE_H
#define AMG_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <amalgam/tensor.h>

#include "fpconv.h"

/*
 * Every supported type's facts, written once: enum suffix, safetensors
 * name, torch name (as config.json writes it), bytes per element, float or
 * not, DLPack type code (its bits are 8 x bytes). The enum, host/dtype.c's
 * name table and the inline lookups below expand it, and so does the CUDA
 * backend, which links no host object (kernels/cuda/elem.h).
 */
#define AMG_DTYPE_FACTS(X)                                              \
    X(F64, "F64", "float64", 8, 1, AMG_DL_FLOAT)                        \
    X(F32, "F32", "float32", 4, 1, AMG_DL_FLOAT)                        \
    X(F16, "F16", "float16", 2, 1, AMG_DL_FLOAT)                        \
    X(BF16, "BF16", "bfloat16", 2, 1, AMG_DL_BFLOAT)                    \
    X(I64, "I64", "int64", 8, 0, AMG_DL_INT)                            \
    X(I32, "I32", "int32", 4, 0, AMG_DL_INT)                            \
    X(I16, "I16", "int16", 2, 0, AMG_DL_INT)                            \
    X(I8, "I8", "int8", 1, 0, AMG_DL_INT)                               \
    X(U8, "U8", "uint8", 1, 0, AMG_DL_UINT)                             \
    X(BOOL, "BOOL", "bool", 1, 0, AMG_DL_BOOL)                          \
    /* torch.float8_e4m3fn: no inf, NaN = S.1111.111 */                 \
    X(F8_E4M3, "F8_E4M3", "float8_e4m3fn", 1, 1, AMG_DL_FLOAT8_E4M3FN)  \
    /* torch.float8_e5m2: IEEE-like, has inf */                         \
    X(F8_E5M2, "F8_E5M2", "float8_e5m2", 1, 1, AMG_DL_FLOAT8_E5M2)

typedef enum amg_dtype {
#define AMG_DT_ENUM_(e, st, torch, size, fl, dl) AMG_DT_##e,
    AMG_DTYPE_FACTS(AMG_DT_ENUM_)
#undef AMG_DT_ENUM_
    AMG_DT_COUNT
} amg_dtype;

/* safetensors' name for the type ("BF16"); "?" for an invalid value. */
const char *amg_dtype_name(amg_dtype t);

/* Look up a safetensors dtype string (exact, case-sensitive as safetensors
 * is). Returns 0 and sets *out, or -1 when the name is not a supported type.
 * amg_dtype_known_unsupported() tells a valid safetensors dtype that amalgam
 * does not handle (U16, F4, C64, ...) from garbage, for better messages. */
int amg_dtype_parse(const char *name, amg_dtype *out);
int amg_dtype_known_unsupported(const char *name);

/* Parse a user-facing name: safetensors names, any case, plus torch-style
 * aliases ("bfloat16", "float16", "fp16", "float32", "fp32", "float64",
 * "int8", ...). Used for --dtype options and config.json torch_dtype. */
int amg_dtype_parse_user(const char *name, amg_dtype *out);

/* The torch name written to config.json ("bfloat16", "float16", ...);
 * "?" for an invalid value. */
static inline const char *amg_dtype_torch_name(amg_dtype t)
{
    switch (t) {
#define AMG_DT_CASE_(e, st, torch, size, fl, dl) case AMG_DT_##e: return torch;
    AMG_DTYPE_FACTS(AMG_DT_CASE_)
#undef AMG_DT_CASE_
    default: return "?";
    }
}

/* Bytes per element (BOOL, U8, I8 and F8 types are 1). 0 if invalid. */
static inline AMG_HD size_t amg_dtype_size(amg_dtype t)
{
    switch (t) {
#define AMG_DT_CASE_(e, st, torch, size, fl, dl) case AMG_DT_##e: return size;
    AMG_DTYPE_FACTS(AMG_DT_CASE_)
#undef AMG_DT_CASE_
    default: return 0;
    }
}

/* 1 for F64, F32, F16, BF16 and the F8 types. */
static inline AMG_HD int amg_dtype_is_float(amg_dtype t)
{
    switch (t) {
#define AMG_DT_CASE_(e, st, torch, size, fl, dl) case AMG_DT_##e: return fl;
    AMG_DTYPE_FACTS(AMG_DT_CASE_)
#undef AMG_DT_CASE_
    default: return 0;
    }
}

/* DLPack dtype of a safetensors dtype (BOOL -> code 6, 8 bits; F8_E4M3 ->
 * float8_e4m3fn code 10; F8_E5M2 -> code 12). No DLPack type has bits 0,
 * so an invalid amg_dtype cannot alias one. */
static inline amg_dl_dtype amg_dtype_to_dl(amg_dtype t)
{
    switch (t) {
#define AMG_DT_CASE_(e, st, torch, size, fl, dl)                             \
    case AMG_DT_##e: return amg_dl_make(dl, 8 * size);
    AMG_DTYPE_FACTS(AMG_DT_CASE_)
#undef AMG_DT_CASE_
    default: return amg_dl_make(0, 0);
    }
}

/* The reverse: 0 and *out set, or -1 when the DLPack type has no
 * safetensors equivalent. */
static inline int amg_dtype_from_dl(amg_dl_dtype d, amg_dtype *out)
{
    if (d.lanes != 1)
        return -1;
#define AMG_DT_CASE_(e, st, torch, size, fl, dl)                             \
    if (d.code == dl && d.bits == 8 * size) {                                \
        *out = AMG_DT_##e;                                                   \
        return 0;                                                            \
    }
    AMG_DTYPE_FACTS(AMG_DT_CASE_)
#undef AMG_DT_CASE_
    return -1;
}

/* f32 to an integer type: truncate toward zero and saturate to [lo, hi];
 * NaN gives 0. lo and hi are the type's range when exactly representable
 * in f32 (8 and 16 bit types), the powers of two just outside it otherwise
 * (hi_excl is then true). One element of amg_from_f32, here so the CUDA
 * convert shares it. */
static inline AMG_HD int64_t amg_sat_int(float x, float lo, float hi,
                                         int64_t ilo, int64_t ihi,
                                         int hi_excl)
{
    if (x != x)
        return 0;
    if (hi_excl ? x >= hi : x > hi)
        return ihi;
    if (x < lo)
        return ilo;
    return (int64_t)x;
}

/* A DLPack dtype's torch name, or its codes when amalgam has no such type:
 * the kernel tables' argument messages (CPU and CUDA) name dtypes so. */
static inline const char *amg_dl_dtype_name(amg_dl_dtype d, char *buf,
                                            size_t cap)
{
    amg_dtype t;

    if (amg_dtype_from_dl(d, &t) == 0)
        return amg_dtype_torch_name(t);
    snprintf(buf, cap, "(code %u, %u bits, %u lanes)", d.code, d.bits,
             d.lanes);
    return buf;
}

/*
 * Convert n elements of type src at in (little-endian bytes, any alignment)
 * to f32. Integers convert as C casts do; BOOL gives 0.0 or 1.0. Exact for
 * every type except F64, I64 and I32 (rounded to nearest f32).
 */
void amg_to_f32(amg_dtype src, const void *in, float *out, size_t n);

/*
 * Convert n f32 values to type dst at out (little-endian bytes, any
 * alignment). Floats round to nearest even as PyTorch does; integers
 * truncate toward zero and saturate at the type's range, NaN gives 0; BOOL is
 * x != 0.
 */
void amg_from_f32(amg_dtype dst, const float *in, void *out, size_t n);

/* An unsigned little-endian integer of size bytes (1 to 8) loaded from or
 * stored at p, any alignment, independent of the host's byte order. Inline:
 * the conversion loops call them once per element. */
static inline uint64_t amg_load_le(const unsigned char *p, size_t size)
{
    uint64_t v = 0;
    size_t i;

    for (i = size; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

static inline void amg_store_le(unsigned char *p, uint64_t v, size_t size)
{
    size_t i;

    for (i = 0; i < size; i++) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

#endif
