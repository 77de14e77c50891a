/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Random fills. Each element is the pure function of amalgam/rng.h at its
 * index in the whole model tensor (elem_offset + i), so chunks, threads and
 * devices draw the same values; there is no state to share or advance.
 *
 * rng.h gives element e word e & 3 of the Philox block e >> 2. The fills
 * run Philox on BATCH consecutive blocks at once, blocks across the SIMD
 * lanes (the 32x32->64 products are the SIMD widening multiply), in the
 * widest form the CPU runs: AVX-512 or AVX2 on x86-64, else portable C the
 * compiler vectorises; a chunk starting inside a block takes the words it
 * needs from the first one.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define PHILOX_X86 1
#endif

#include <amalgam/rng.h>

#include "ctx.h"
#include "kernels_cpu.h"
#include "simd.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize")
#endif

/* Blocks per batch: 4 KiB of words, in L1 with the output. */
#define BATCH 256u

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* w[4 * b + j] = c_j[b] for b < BATCH: the words in element order. */
static inline void interleave(uint32_t *w, const uint32_t *c0,
                              const uint32_t *c1, const uint32_t *c2,
                              const uint32_t *c3)
{
    uint32_t b;

    for (b = 0; b < BATCH; b++) {
        w[4 * b] = c0[b];
        w[4 * b + 1] = c1[b];
        w[4 * b + 2] = c2[b];
        w[4 * b + 3] = c3[b];
    }
}

/* The 24-bit draws (word >> 8) of blocks [blk, blk + BATCH): w[4 * b + j]
 * is that of word j of block blk + b, in element order. Portable form: a
 * round at a time over all the blocks, so that loop vectorises with
 * whatever SIMD the compiler targets (on SSE2 this beats keeping a block's
 * rounds in registers, which costs the compiler more shuffles). */
static void philox_batch_c(uint64_t seed, uint64_t stream, uint64_t blk,
                           uint32_t *w)
{
    uint32_t c0[BATCH], c1[BATCH], c2[BATCH], c3[BATCH];
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    uint32_t b;
    int r;

    for (b = 0; b < BATCH; b++) {
        c0[b] = (uint32_t)(blk + b);
        c1[b] = (uint32_t)((blk + b) >> 32);
        c2[b] = (uint32_t)stream;
        c3[b] = (uint32_t)(stream >> 32);
    }
    for (r = 0; r < 10; r++) {
        for (b = 0; b < BATCH; b++) {
            uint64_t p0 = (uint64_t)PHILOX_M0 * c0[b];
            uint64_t p1 = (uint64_t)PHILOX_M1 * c2[b];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[b] ^ k0;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[b] ^ k1;

            c1[b] = (uint32_t)p1;
            c3[b] = (uint32_t)p0;
            c0[b] = n0;
            c2[b] = n2;
        }
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    for (b = 0; b < BATCH; b++) {
        c0[b] >>= 8;
        c1[b] >>= 8;
        c2[b] >>= 8;
        c3[b] >>= 8;
    }
    interleave(w, c0, c1, c2, c3);
}

/* The build targets baseline x86-64, where the widening multiply takes two
 * 32-bit lanes an instruction (SSE2 pmuludq) and the compiler's form of it
 * spends most of its time moving halves about; AVX2 and AVX-512 forms,
 * written out, are chosen at run time. Integer arithmetic only: every form
 * gives the same words. */
#ifdef PHILOX_X86

/* Counters of blocks [blk, blk + BATCH), one array per word. */
static void philox_counters(uint64_t stream, uint64_t blk, uint32_t *c0,
                            uint32_t *c1, uint32_t *c2, uint32_t *c3)
{
    uint32_t b;

    for (b = 0; b < BATCH; b++) {
        c0[b] = (uint32_t)(blk + b);
        c1[b] = (uint32_t)((blk + b) >> 32);
        c2[b] = (uint32_t)stream;
        c3[b] = (uint32_t)(stream >> 32);
    }
}

/* hi and lo halves of a * m per 32-bit lane: the even lanes' products in
 * one multiply, the odd lanes' (shifted down) in another. */
__attribute__((target("avx512f")))
static inline __m512i mulhilo_512(__m512i a, __m512i m, __m512i *lo)
{
    __m512i pe = _mm512_mul_epu32(a, m);
    __m512i po = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);

    *lo = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
    return _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 32), po);
}

__attribute__((target("avx512f")))
static void philox_batch_avx512(uint64_t seed, uint64_t stream,
                                uint64_t blk, uint32_t *w)
{
    uint32_t c0[BATCH], c1[BATCH], c2[BATCH], c3[BATCH];
    const __m512i m0 = _mm512_set1_epi32((int)PHILOX_M0);
    const __m512i m1 = _mm512_set1_epi32((int)PHILOX_M1);
    uint32_t b;
    int r;

    philox_counters(stream, blk, c0, c1, c2, c3);
    for (b = 0; b < BATCH; b += 16) {
        __m512i x0 = _mm512_loadu_si512(c0 + b);
        __m512i x1 = _mm512_loadu_si512(c1 + b);
        __m512i x2 = _mm512_loadu_si512(c2 + b);
        __m512i x3 = _mm512_loadu_si512(c3 + b);
        uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);

        for (r = 0; r < 10; r++) {
            __m512i lo0, lo1;
            __m512i hi0 = mulhilo_512(x0, m0, &lo0);
            __m512i hi1 = mulhilo_512(x2, m1, &lo1);

            x0 = _mm512_ternarylogic_epi32(hi1, x1,
                                           _mm512_set1_epi32((int)k0), 0x96);
            x2 = _mm512_ternarylogic_epi32(hi0, x3,
                                           _mm512_set1_epi32((int)k1), 0x96);
            x1 = lo1;
            x3 = lo0;
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        _mm512_storeu_si512(c0 + b, _mm512_srli_epi32(x0, 8));
        _mm512_storeu_si512(c1 + b, _mm512_srli_epi32(x1, 8));
        _mm512_storeu_si512(c2 + b, _mm512_srli_epi32(x2, 8));
        _mm512_storeu_si512(c3 + b, _mm512_srli_epi32(x3, 8));
    }
    interleave(w, c0, c1, c2, c3);
}

__attribute__((target("avx2")))
static inline __m256i mulhilo_256(__m256i a, __m256i m, __m256i *lo)
{
    __m256i pe = _mm256_mul_epu32(a, m);
    __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);

    *lo = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
    return _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
}

__attribute__((target("avx2")))
static void philox_batch_avx2(uint64_t seed, uint64_t stream, uint64_t blk,
                              uint32_t *w)
{
    uint32_t c0[BATCH], c1[BATCH], c2[BATCH], c3[BATCH];
    const __m256i m0 = _mm256_set1_epi32((int)PHILOX_M0);
    const __m256i m1 = _mm256_set1_epi32((int)PHILOX_M1);
    uint32_t b;
    int r;

    philox_counters(stream, blk, c0, c1, c2, c3);
    for (b = 0; b < BATCH; b += 8) {
        __m256i x0 = _mm256_loadu_si256((const __m256i *)(c0 + b));
        __m256i x1 = _mm256_loadu_si256((const __m256i *)(c1 + b));
        __m256i x2 = _mm256_loadu_si256((const __m256i *)(c2 + b));
        __m256i x3 = _mm256_loadu_si256((const __m256i *)(c3 + b));
        uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);

        for (r = 0; r < 10; r++) {
            __m256i lo0, lo1;
            __m256i hi0 = mulhilo_256(x0, m0, &lo0);
            __m256i hi1 = mulhilo_256(x2, m1, &lo1);

            x0 = _mm256_xor_si256(_mm256_xor_si256(hi1, x1),
                                  _mm256_set1_epi32((int)k0));
            x2 = _mm256_xor_si256(_mm256_xor_si256(hi0, x3),
                                  _mm256_set1_epi32((int)k1));
            x1 = lo1;
            x3 = lo0;
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        _mm256_storeu_si256((__m256i *)(c0 + b), _mm256_srli_epi32(x0, 8));
        _mm256_storeu_si256((__m256i *)(c1 + b), _mm256_srli_epi32(x1, 8));
        _mm256_storeu_si256((__m256i *)(c2 + b), _mm256_srli_epi32(x2, 8));
        _mm256_storeu_si256((__m256i *)(c3 + b), _mm256_srli_epi32(x3, 8));
    }
    interleave(w, c0, c1, c2, c3);
}
#endif

typedef void (*philox_batch_fn)(uint64_t seed, uint64_t stream,
                                uint64_t blk, uint32_t *w);

/* The form simd.h chose (AVX-512 here needs only F, which that form
 * implies). */
static philox_batch_fn philox_batch(void)
{
#ifdef PHILOX_X86
    if (amg_simd_active == AMG_SIMD_AVX512)
        return philox_batch_avx512;
    if (amg_simd_active == AMG_SIMD_AVX2)
        return philox_batch_avx2;
#endif
    return philox_batch_c;
}

/* The 24-bit draws (u32 >> 8) of elements [e0, e0 + n); calls
 * emit(arg, u, first element, count) per batch. */
static void draws(uint64_t seed, uint64_t stream, uint64_t e0, uint64_t n,
                  void (*emit)(void *, const uint32_t *, uint64_t, uint64_t),
                  void *arg)
{
    philox_batch_fn batch = philox_batch();
    uint32_t w[4 * BATCH];
    uint64_t done = 0;

    while (done < n) {
        uint64_t e = e0 + done;
        uint64_t skip = e & 3u;        /* words before e in its block */
        uint64_t len = 4 * BATCH - skip;

        if (len > n - done)
            len = n - done;
        batch(seed, stream, e >> 2, w);
        emit(arg, w + skip, done, len);
        done += len;
    }
}

static void emit_uniform(void *arg, const uint32_t *u, uint64_t at,
                         uint64_t len)
{
    float *o = (float *)arg + at;
    uint64_t i;

    for (i = 0; i < len; i++)
        o[i] = (float)u[i] * (1.0f / 16777216.0f);
}

int32_t amg__kcpu_rng_uniform(amg_ctx *ctx, amg_tensor *out, uint64_t seed,
                              uint64_t stream)
{
    int rc = amg__kcpu_arg(ctx, "rng_uniform", "out", out, AMG__KCPU_F32);

    if (rc)
        return rc;
    draws(seed, stream, out->elem_offset, amg_tensor_numel(out),
          emit_uniform, amg_tensor_data(out));
    return AMG_OK;
}

typedef struct bern_arg {
    uint8_t *m;
    uint32_t thr;
} bern_arg;

static void emit_bernoulli(void *arg, const uint32_t *u, uint64_t at,
                           uint64_t len)
{
    const bern_arg *a = arg;
    uint8_t *m = a->m + at;
    uint32_t thr = a->thr;
    uint64_t i;

    for (i = 0; i < len; i++)
        m[i] = (uint8_t)(u[i] < thr);
}

/* (double)(u * 2^-24) < p for a 24-bit integer u is u < ceil(p * 2^24):
 * the scaling is exact, so comparing integers gives the same bit. */
static uint32_t bernoulli_threshold(double p)
{
    double t;

    if (!(p > 0.0))                    /* also NaN: never below */
        return 0;
    if (p >= 1.0)
        return 16777216u;
    t = ceil(p * 16777216.0);
    return (uint32_t)t;
}

int32_t amg__kcpu_rng_bernoulli(amg_ctx *ctx, amg_tensor *mask, double p,
                                uint64_t seed, uint64_t stream)
{
    bern_arg a;
    int rc = amg__kcpu_arg(ctx, "rng_bernoulli", "mask", mask,
                           AMG__KCPU_MASK);

    if (rc)
        return rc;
    a.m = amg_tensor_data(mask);
    a.thr = bernoulli_threshold(p);
    if (a.thr == 0 || a.thr == 16777216u) {
        /* every draw is below 1 and none below 0: no need to draw */
        memset(a.m, a.thr ? 1 : 0, (size_t)amg_tensor_numel(mask));
        return AMG_OK;
    }
    draws(seed, stream, mask->elem_offset, amg_tensor_numel(mask),
          emit_bernoulli, &a);
    return AMG_OK;
}
