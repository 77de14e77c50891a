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

typedef enum amg_dtype {
    AMG_DT_F64 = 0,
    AMG_DT_F32,
    AMG_DT_F16,
    AMG_DT_BF16,
    AMG_DT_I64,
    AMG_DT_I32,
    AMG_DT_I16,
    AMG_DT_I8,
    AMG_DT_U8,
    AMG_DT_BOOL,
    AMG_DT_F8_E4M3,     /* torch.float8_e4m3fn: no inf, NaN = S.1111.111 */
    AMG_DT_F8_E5M2,     /* torch.float8_e5m2: IEEE-like, has inf */
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

/* The torch name written to config.json ("bfloat16", "float16", ...). */
const char *amg_dtype_torch_name(amg_dtype t);

/* Bytes per element (BOOL, U8, I8 and F8 types are 1). 0 if invalid. */
size_t amg_dtype_size(amg_dtype t);

/* 1 for F64, F32, F16, BF16 and the F8 types. */
int amg_dtype_is_float(amg_dtype t);

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
