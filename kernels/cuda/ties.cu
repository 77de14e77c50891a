/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TIES building blocks on the device: sign election and the disjoint
 * merge, one thread per element running elem.h's loop over the inputs in
 * order (kernels/cpu/ties.c gives the rules). Each thread reads all its
 * element's inputs before writing, so sign and out may alias any input.
 */
#include "kernels_cuda.h"

static __global__ void k_sign_elect(float *sign, const __grid_constant__
                                    amg_kcu_inputs in, int32_t rule,
                                    uint64_t n)
{
    AMG_KCU_FOR_EACH(i, n)
        sign[i] = amg_kcu_sign_elect(in.x, in.w, in.n, rule, i);
}

static __global__ void k_disjoint_merge(float *out, const __grid_constant__
                                        amg_kcu_inputs in, const float *sign,
                                        int32_t normalize, uint64_t n)
{
    AMG_KCU_FOR_EACH(i, n)
        out[i] = amg_kcu_disjoint_merge(in.x, in.w, in.n, sign[i], normalize,
                                        i);
}

int32_t amg__kcu_sign_elect(amg_ctx *ctx, amg_tensor *sign,
                            const amg_tensor *const *d, const float *w,
                            uint32_t n, int32_t rule)
{
    amg_kcu_inputs in;
    cudaStream_t s;
    uint64_t numel;
    int rc = amg__kcu_begin(ctx, "sign_elect", &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, "sign_elect", "sign", sign, AMG__KCU_F32);
    if (!rc)
        rc = amg__kcu_args_like(ctx, "sign_elect", "d", d, n, w, 1, "sign",
                                sign);
    if (rc)
        return rc;
    if (rule != AMG_SIGN_BY_SUM && rule != AMG_SIGN_BY_COUNT)
        return amg__kcu_host->fail(ctx, AMG_EINVAL,
                                   "sign_elect: rule %d is neither "
                                   "AMG_SIGN_BY_SUM nor AMG_SIGN_BY_COUNT",
                                   (int)rule);
    rc = amg__kcu_inputs(ctx, "sign_elect", d, w, n, &in);
    if (rc)
        return rc;
    numel = amg_tensor_numel(sign);
    AMG_KCU_LAUNCH(ctx, "sign_elect", numel, s, k_sign_elect,
                   (float *)amg_tensor_data(sign), in, rule, numel);
}

int32_t amg__kcu_disjoint_merge(amg_ctx *ctx, amg_tensor *out,
                                const amg_tensor *const *d, const float *w,
                                uint32_t n, const amg_tensor *sign,
                                int32_t normalize)
{
    amg_kcu_inputs in;
    cudaStream_t s;
    uint64_t numel;
    int rc = amg__kcu_begin(ctx, "disjoint_merge", &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, "disjoint_merge", "out", out, AMG__KCU_F32);
    if (!rc)
        rc = amg__kcu_args_like(ctx, "disjoint_merge", "d", d, n, w, 1, "out",
                                out);
    if (!rc)
        rc = amg__kcu_arg_like(ctx, "disjoint_merge", "sign", sign,
                               AMG__KCU_F32, "out", out);
    if (!rc)
        rc = amg__kcu_inputs(ctx, "disjoint_merge", d, w, n, &in);
    if (rc)
        return rc;
    numel = amg_tensor_numel(out);
    AMG_KCU_LAUNCH(ctx, "disjoint_merge", numel, s, k_disjoint_merge,
                   (float *)amg_tensor_data(out), in,
                   (const float *)amg_tensor_data(sign), normalize, numel);
}
