/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Random fills. Each element is the pure function of amalgam/rng.h at its
 * index in the whole model tensor (elem_offset + i), so chunks, threads and
 * devices draw the same values; there is no state to share or advance.
 */
#include "config.h"

#include <amalgam/rng.h>

#include "ctx.h"
#include "kernels_cpu.h"

int32_t amg__kcpu_rng_uniform(amg_ctx *ctx, amg_tensor *out, uint64_t seed,
                              uint64_t stream)
{
    float *o;
    uint64_t i, n, base;
    int rc = amg__kcpu_arg(ctx, "rng_uniform", "out", out, AMG__KCPU_F32);

    if (rc)
        return rc;
    o = amg_tensor_data(out);
    n = amg_tensor_numel(out);
    base = out->elem_offset;
    for (i = 0; i < n; i++)
        o[i] = amg_rng_uniform(seed, stream, base + i);
    return AMG_OK;
}

int32_t amg__kcpu_rng_bernoulli(amg_ctx *ctx, amg_tensor *mask, double p,
                                uint64_t seed, uint64_t stream)
{
    uint8_t *m;
    uint64_t i, n, base;
    int rc = amg__kcpu_arg(ctx, "rng_bernoulli", "mask", mask,
                           AMG__KCPU_MASK);

    if (rc)
        return rc;
    m = amg_tensor_data(mask);
    n = amg_tensor_numel(mask);
    base = mask->elem_offset;
    for (i = 0; i < n; i++)
        m[i] = (uint8_t)amg_rng_bernoulli(seed, stream, base + i, p);
    return AMG_OK;
}
