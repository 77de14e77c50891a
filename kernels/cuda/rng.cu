/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Random fills on the device: element e (= elem_offset + i) gets word
 * e & 3 of Philox block e >> 2 (amalgam/rng.h), as on the CPU. One thread
 * runs Philox once per block and writes the up to four elements of the
 * handle that block covers, so a chunk starting mid-block draws what the
 * whole tensor would there.
 */
#include "kernels_cuda.h"

#include <amalgam/rng.h>

/* Philox blocks the elements [e0, e0 + n) touch (n > 0). */
static uint64_t philox_blocks(uint64_t e0, uint64_t n)
{
    return ((e0 + n - 1) >> 2) - (e0 >> 2) + 1;
}

/* What one Philox word becomes in each fill */
struct uniform_of {
    __device__ float operator()(uint32_t w) const
    {
        return amg_kcu_uniform_of_word(w);
    }
};

struct bernoulli_of {
    uint32_t thr;

    __device__ uint8_t operator()(uint32_t w) const
    {
        return amg_kcu_bernoulli_of_word(w, thr);
    }
};

template <typename T, typename Of>
static __global__ void k_fill(T *o, Of of, uint64_t seed, uint64_t stream,
                              uint64_t e0, uint64_t n, uint64_t blocks)
{
    AMG_KCU_FOR_EACH(b, blocks) {
        uint64_t blk = (e0 >> 2) + b;
        uint32_t w[4];
        unsigned j;

        amg_rng_philox(seed, stream, blk, w);
        for (j = 0; j < 4; j++) {
            uint64_t e = blk * 4 + j;

            if (e >= e0 && e - e0 < n)
                o[e - e0] = of(w[j]);
        }
    }
}

int32_t amg__kcu_rng_uniform(amg_ctx *ctx, amg_tensor *out, uint64_t seed,
                             uint64_t stream)
{
    uint64_t n, blocks;
    cudaStream_t s;
    int rc = amg__kcu_begin(ctx, "rng_uniform", &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, "rng_uniform", "out", out, AMG__KCU_F32);
    if (rc)
        return rc;
    n = amg_tensor_numel(out);
    if (n == 0)
        return AMG_OK;
    blocks = philox_blocks(out->elem_offset, n);
    AMG_KCU_LAUNCH(ctx, "rng_uniform", blocks, s, k_fill,
                   (float *)amg_tensor_data(out), uniform_of(), seed, stream,
                   out->elem_offset, n, blocks);
}

int32_t amg__kcu_rng_bernoulli(amg_ctx *ctx, amg_tensor *mask, double p,
                               uint64_t seed, uint64_t stream)
{
    uint64_t n, blocks;
    uint32_t thr;
    cudaStream_t s;
    cudaError_t e;
    int rc = amg__kcu_begin(ctx, "rng_bernoulli", &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, "rng_bernoulli", "mask", mask, AMG__KCU_MASK);
    if (rc)
        return rc;
    n = amg_tensor_numel(mask);
    if (n == 0)
        return AMG_OK;
    thr = amg_kcu_bernoulli_threshold(p);
    if (thr == 0 || thr == 16777216u) {
        /* every draw is below 1 and none below 0: no need to draw */
        e = cudaMemsetAsync(amg_tensor_data(mask), thr ? 1 : 0, (size_t)n, s);
        return e == cudaSuccess ? AMG_OK
                                : amg__kcu_cuda_fail(ctx, "rng_bernoulli",
                                                     "device memset failed",
                                                     e);
    }
    blocks = philox_blocks(mask->elem_offset, n);
    AMG_KCU_LAUNCH(ctx, "rng_bernoulli", blocks, s, k_fill,
                   (uint8_t *)amg_tensor_data(mask), bernoulli_of{thr}, seed,
                   stream, mask->elem_offset, n, blocks);
}
