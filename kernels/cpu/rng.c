/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Random fills. Each element is the pure function of amalgam/rng.h at its
 * index in the whole model tensor (elem_offset + i), so chunks, threads and
 * devices draw the same values; there is no state to share or advance.
 *
 * rng.h gives element e word e & 3 of the Philox block e >> 2. The fills
 * run Philox on BATCH consecutive blocks at once, one array per counter
 * word, so the rounds vectorise (the 32x32->64 products are the SIMD
 * widening multiply); a chunk starting inside a block takes the words it
 * needs from the first one.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include <amalgam/rng.h>

#include "ctx.h"
#include "kernels_cpu.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize")
#endif

/* Blocks per batch: 4 KiB of words, in L1 with the output. */
#define BATCH 256u

/* Words of blocks [blk, blk + BATCH): w[4 * b + j] is word j of block
 * blk + b, in element order. */
static void philox_batch(uint64_t seed, uint64_t stream, uint64_t blk,
                         uint32_t *w)
{
    uint32_t c0[BATCH], c1[BATCH], c2[BATCH], c3[BATCH];
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    uint32_t b;
    int r;

    for (b = 0; b < BATCH; b++) {
        uint64_t idx = blk + b;

        c0[b] = (uint32_t)idx;
        c1[b] = (uint32_t)(idx >> 32);
        c2[b] = (uint32_t)stream;
        c3[b] = (uint32_t)(stream >> 32);
    }
    for (r = 0; r < 10; r++) {
        for (b = 0; b < BATCH; b++) {
            uint64_t p0 = (uint64_t)0xD2511F53u * c0[b];
            uint64_t p1 = (uint64_t)0xCD9E8D57u * c2[b];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[b] ^ k0;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[b] ^ k1;

            c1[b] = (uint32_t)p1;
            c3[b] = (uint32_t)p0;
            c0[b] = n0;
            c2[b] = n2;
        }
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    for (b = 0; b < BATCH; b++) {
        w[4 * b] = c0[b];
        w[4 * b + 1] = c1[b];
        w[4 * b + 2] = c2[b];
        w[4 * b + 3] = c3[b];
    }
}

/* The 24-bit draws (u32 >> 8) of elements [e0, e0 + n) into u; calls
 * emit(arg, u, first element, count) per batch. */
static void draws(uint64_t seed, uint64_t stream, uint64_t e0, uint64_t n,
                  void (*emit)(void *, const uint32_t *, uint64_t, uint64_t),
                  void *arg)
{
    uint32_t w[4 * BATCH];
    uint64_t done = 0;

    while (done < n) {
        uint64_t e = e0 + done;
        uint64_t skip = e & 3u;        /* words before e in its block */
        uint64_t len = 4 * BATCH - skip;
        uint64_t i;

        if (len > n - done)
            len = n - done;
        philox_batch(seed, stream, e >> 2, w);
        for (i = 0; i < 4 * BATCH; i++)
            w[i] >>= 8;
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
