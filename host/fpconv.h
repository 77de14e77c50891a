/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fpconv.h - per-element conversions between f32 and the narrow float
 * formats, bit-exact with PyTorch (2.13, CPU) for every non-NaN input.
 *
 * These are static inline and free of libc calls (memcpy for bit casts
 * aside) so the same code can be compiled for the host and (later) for CUDA
 * devices, and the CPU tests cover the GPU's arithmetic. AMG_HD marks them
 * __host__ __device__ under nvcc. Rounding is done in integer arithmetic only:
 * the results do not depend on the FPU's rounding mode, flush-to-zero,
 * denormals-are-zero or excess precision.
 *
 * Formats (S sign, E biased exponent, M mantissa; value of a normal number
 * (-1)^S * 1.M * 2^(E - bias), of a subnormal (E == 0) (-1)^S * 0.M *
 * 2^(1 - bias)):
 *
 *   f32        S EEEEEEEE MMMMMMMMMMMMMMMMMMMMMMM  bias 127
 *   bf16       S EEEEEEEE MMMMMMM                  bias 127 (top half of f32)
 *   f16        S EEEEE MMMMMMMMMM                  bias 15, IEEE binary16
 *   f8_e4m3fn  S EEEE MMM                          bias 7, no inf
 *   f8_e5m2    S EEEEE MM                          bias 15, IEEE-like
 *
 * Narrowing (f32 -> narrow) is round-to-nearest, ties-to-even, with gradual
 * underflow into the narrow format's subnormals, for every format. What
 * happens past the largest finite value and to inf/NaN differs:
 *
 *   bf16:   overflow rounds to +-inf as IEEE does (|x| >= 0x7F7F8000, the
 *           halfway point past the largest bf16 3.3895e38, gives +-inf);
 *           +-inf -> +-inf; any NaN -> 0x7FC0 (sign and payload dropped).
 *           This is c10::BFloat16's round_to_nearest_even, which is also
 *           what torch uses for strided tensors. Torch's vectorized CPU path
 *           (contiguous float32 .to(bfloat16)) writes 0xFFFF for NaN instead.
 *   f16:    IEEE binary16: |x| >= 65520 (halfway past the max 65504) ->
 *           +-inf; +-inf -> +-inf; NaN -> sign | 0x7E00. That NaN pattern is
 *           c10's portable path; torch's x86 build uses F16C (vcvtps2ph),
 *           which keeps the payload: sign | 0x7E00 | (f32 mantissa >> 13).
 *   e4m3fn: max finite 448 (S.1111.110); S.1111.111 is NaN and there is no
 *           inf. Torch 2.13 SATURATES: every finite value that would round
 *           past 448 (|x| > 464, the halfway point between 448 and the
 *           absent 480, which ties to even = 448) and +-inf give +-448
 *           (sign | 0x7E). NaN -> sign | 0x7F. (Older torch releases gave
 *           NaN for |x| >= 480 and for inf; 2.13's c10 and AVX-512 paths
 *           both saturate.)
 *   e5m2:   max finite 57344 (S.11110.11); S.11111.00 is inf, S.11111.xx
 *           (xx != 0) NaN. Overflow rounds to +-inf as IEEE does (|x| >=
 *           61440, halfway past 57344, gives +-inf, sign | 0x7C); +-inf ->
 *           sign | 0x7C; NaN -> sign | 0x7F.
 *
 * Widening (narrow -> f32) is exact for every non-NaN pattern, including
 * subnormals and -0. NaN patterns widen to a quiet f32 NaN with the sign and
 * the payload kept in the top mantissa bits:
 *
 *   bf16:   bits << 16 (signalling NaNs stay signalling, as in torch).
 *   f16:    sign | 0x7FC00000 | (mantissa << 13) (quieted as F16C does).
 *   e4m3fn: S.1111.111 -> sign | 0x7FF00000 (c10's scalar result).
 *   e5m2:   as f16 of (bits << 8): sign | 0x7FC00000 | (mantissa << 21).
 *
 * Torch's own widening paths disagree on NaN patterns (e.g. a short f16
 * tensor widens every NaN to 0x7FFFFFFF), so callers and tests must compare
 * NaN results by class only.
 */
#ifndef AMG_FPCONV_H
#define AMG_FPCONV_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define AMG_HD __host__ __device__
#else
#define AMG_HD
#endif

/* ---- bit casts ---- */

static inline AMG_HD uint32_t amg_f32_bits(float f)
{
    uint32_t u;

    memcpy(&u, &f, sizeof(u));
    return u;
}

static inline AMG_HD float amg_bits_f32(uint32_t u)
{
    float f;

    memcpy(&f, &u, sizeof(f));
    return f;
}

/*
 * Round-to-nearest-even of the f32 magnitude a (sign cleared, finite, below
 * the target's smallest normal) to a multiple of 2^(lsb_exp), returned as
 * that multiple: the target's subnormal mantissa field (a result equal to
 * 1 << mant_bits is the smallest normal, which is also the right encoding).
 * a = m * 2^(e - 150) with m the 24-bit significand; result = m / 2^shift,
 * shift = (lsb_exp + 150) - e.
 */
static inline AMG_HD uint32_t amg__rne_subnormal(uint32_t a, int lsb_exp)
{
    uint32_t e = a >> 23;
    uint32_t m = a & 0x7FFFFFu;
    int shift;
    uint32_t q, rem, half;

    if (e == 0)
        e = 1;              /* f32 subnormal: no implicit bit */
    else
        m |= 0x800000u;
    shift = (lsb_exp + 150) - (int)e;
    if (shift > 24)         /* a < 2^(lsb_exp - 1): rounds to zero */
        return 0;
    q = m >> shift;
    rem = m & ((1u << shift) - 1u);
    half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u)))
        q++;
    return q;
}

/* ---- bfloat16 ---- */

static inline AMG_HD float amg_bf16_to_f32(uint16_t h)
{
    return amg_bits_f32((uint32_t)h << 16);
}

static inline AMG_HD uint16_t amg_f32_to_bf16(float f)
{
    uint32_t u = amg_f32_bits(f);

    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        return 0x7FC0;
    /* Add 0x7FFF, plus 1 when the kept part is odd: ties go to even. A
     * carry out of the mantissa bumps the exponent, up to inf. */
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* ---- IEEE binary16 ---- */

static inline AMG_HD float amg_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu;
    uint32_t m = h & 0x3FFu;

    if (e == 0x1F)          /* inf (m == 0) or NaN, quieted */
        return amg_bits_f32(sign | 0x7F800000u | (m << 13) |
                            (m ? 0x400000u : 0));
    if (e == 0) {
        if (m == 0)
            return amg_bits_f32(sign);
        /* subnormal m * 2^-24: normalise so bit 10 is the implicit 1 */
        e = 1;
        while (!(m & 0x400u)) {
            m <<= 1;
            e--;
        }
        m &= 0x3FFu;       /* e = 1 - shifts (wraps; the sum below is
                            * modular and lands on 113 - shifts) */
    }
    return amg_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

static inline AMG_HD uint16_t amg_f32_to_f16(float f)
{
    uint32_t u = amg_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7FFFFFFFu;

    if (a > 0x7F800000u)                /* NaN */
        return (uint16_t)(sign | 0x7E00u);
    if (a >= 0x477FF000u)               /* >= 65520 or inf */
        return (uint16_t)(sign | 0x7C00u);
    if (a >= 0x38800000u) {             /* >= 2^-14: normal */
        a += 0xFFFu + ((a >> 13) & 1u);
        return (uint16_t)(sign | ((a - 0x38000000u) >> 13));
    }
    /* subnormal: multiples of 2^-24 */
    return (uint16_t)(sign | amg__rne_subnormal(a, -24));
}

/* ---- float8_e4m3fn ---- */

static inline AMG_HD float amg_f8e4m3_to_f32(uint8_t b)
{
    uint32_t sign = (uint32_t)(b & 0x80u) << 24;
    uint32_t e = (b >> 3) & 0xFu;
    uint32_t m = b & 0x7u;

    if (e == 0xF && m == 0x7)
        return amg_bits_f32(sign | 0x7FF00000u);
    if (e == 0) {
        if (m == 0)
            return amg_bits_f32(sign);
        e = 1;
        while (!(m & 0x8u)) {
            m <<= 1;
            e--;
        }
        m &= 0x7u;          /* e = 1 - shifts, modular as in f16 */
    }
    return amg_bits_f32(sign | ((e + 120u) << 23) | (m << 20));
}

static inline AMG_HD uint8_t amg_f32_to_f8e4m3(float f)
{
    uint32_t u = amg_f32_bits(f);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    uint32_t a = u & 0x7FFFFFFFu;
    uint32_t r;

    if (a > 0x7F800000u)                /* NaN */
        return (uint8_t)(sign | 0x7Fu);
    if (a >= 0x43E80000u)               /* >= 464 or inf: 464 ties to */
        return (uint8_t)(sign | 0x7Eu); /* 448, above saturates to 448 */
    if (a >= 0x3C800000u) {             /* >= 2^-6: normal */
        r = a + 0x7FFFFu + ((a >> 20) & 1u);
        return (uint8_t)(sign | ((r - 0x3C000000u) >> 20));
    }
    /* subnormal: multiples of 2^-9 */
    return (uint8_t)(sign | amg__rne_subnormal(a, -9));
}

/* ---- float8_e5m2 ---- */

static inline AMG_HD float amg_f8e5m2_to_f32(uint8_t b)
{
    return amg_f16_to_f32((uint16_t)((uint16_t)b << 8));
}

static inline AMG_HD uint8_t amg_f32_to_f8e5m2(float f)
{
    uint32_t u = amg_f32_bits(f);
    uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
    uint32_t a = u & 0x7FFFFFFFu;

    if (a > 0x7F800000u)                /* NaN */
        return (uint8_t)(sign | 0x7Fu);
    if (a >= 0x47700000u)               /* >= 61440 or inf */
        return (uint8_t)(sign | 0x7Cu);
    if (a >= 0x38800000u) {             /* >= 2^-14: normal */
        a += 0xFFFFFu + ((a >> 21) & 1u);
        return (uint8_t)(sign | ((a - 0x38000000u) >> 21));
    }
    /* subnormal: multiples of 2^-16 */
    return (uint8_t)(sign | amg__rne_subnormal(a, -16));
}

#endif
