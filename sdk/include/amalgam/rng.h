/* SPDX-License-Identifier: Apache-2.0 */
/*
 * amalgam/rng.h - the deterministic counter-based random numbers every
 * strategy, kernel and device shares.
 *
 * A draw is a pure function of (seed, stream, element index): no state, so
 * the same mask comes out on any thread count, chunking or device. The
 * generator is Philox4x32-10 (Salmon et al., "Parallel random numbers: as
 * easy as 1, 2, 3", SC'11), the one cuRAND and PyTorch use for this reason.
 *
 *   key     = (seed low 32 bits, seed high 32 bits)
 *   block   = index >> 2
 *   counter = (block low, block high, stream low, stream high)
 *   u32     = word (index & 3) of Philox4x32-10(counter, key)
 *   uniform = (u32 >> 8) * 2^-24, in [0, 1), exactly representable in f32
 *
 * One Philox call thus serves four consecutive elements; a fill computes
 * each block once, whatever index its chunk starts at.
 *
 * Per-tensor seeds come from amg_rng_tensor_seed(pipeline seed, tensor name),
 * so two tensors never share a stream and renaming a pipeline step does not
 * change a mask. All functions are pure and thread-safe; AMG_RNG_HD makes
 * them callable from CUDA device code.
 */
#ifndef AMALGAM_RNG_H
#define AMALGAM_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__CUDACC__)
#define AMG_RNG_HD __host__ __device__
#else
#define AMG_RNG_HD
#endif

static inline AMG_RNG_HD uint32_t amg_rng__mulhilo(uint32_t a, uint32_t b,
                                                   uint32_t *hi)
{
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* Philox4x32-10 on one counter block; writes four 32-bit words to out. */
static inline AMG_RNG_HD void amg_rng_philox(uint64_t seed, uint64_t stream,
                                             uint64_t index, uint32_t out[4])
{
    uint32_t c0 = (uint32_t)index, c1 = (uint32_t)(index >> 32);
    uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    int r;

    for (r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = amg_rng__mulhilo(0xD2511F53u, c0, &hi0);
        uint32_t lo1 = amg_rng__mulhilo(0xCD9E8D57u, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Uniform in [0, 1) for element index of (seed, stream): word index & 3
 * of block index >> 2. */
static inline AMG_RNG_HD float amg_rng_uniform(uint64_t seed, uint64_t stream,
                                               uint64_t index)
{
    uint32_t w[4];

    amg_rng_philox(seed, stream, index >> 2, w);
    return (float)(w[index & 3] >> 8) * (1.0f / 16777216.0f);
}

/* 1 with probability p (p outside [0, 1] clamps), else 0. */
static inline AMG_RNG_HD int amg_rng_bernoulli(uint64_t seed, uint64_t stream,
                                               uint64_t index, double p)
{
    return (double)amg_rng_uniform(seed, stream, index) < p;
}

/* splitmix64's finalizer: a bijective 64-bit mix. */
static inline AMG_RNG_HD uint64_t amg_rng_mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Seed of one tensor: mix(pipeline_seed ^ FNV-1a-64(name)). */
static inline uint64_t amg_rng_tensor_seed(uint64_t pipeline_seed,
                                           const char *name)
{
    uint64_t h = 0xCBF29CE484222325ull;

    while (*name) {
        h ^= (uint8_t)*name++;
        h *= 0x100000001B3ull;
    }
    return amg_rng_mix64(pipeline_seed ^ h);
}

#ifdef __cplusplus
}
#endif
#endif /* AMALGAM_RNG_H */
