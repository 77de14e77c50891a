/* SPDX-License-Identifier: Apache-2.0 */
/*
 * row_axpby and weighted_quotient on the device (kernels/cpu/rows.c has
 * the arithmetic; elem.h has it per element). Both are elementwise: one
 * thread per element reads its inputs before writing, so out may alias
 * them.
 */
#include "kernels_cuda.h"

#include <stdio.h>

/* weighted_quotient's inputs, in the launch's parameters like
 * amg_kcu_inputs (24 bytes an input keeps them under 4 KiB). */
typedef struct quot_inputs {
    const float *x[AMG_KCU_MAX_INPUTS];
    const float *f[AMG_KCU_MAX_INPUTS];     /* NULL: no Fisher */
    double c[AMG_KCU_MAX_INPUTS];
    uint32_t n;
} quot_inputs;

static __global__ void k_row_axpby(float *o, const float *alpha,
                                   const float *x, const float *beta,
                                   const float *y, uint64_t cols, uint64_t n)
{
    AMG_KCU_FOR_EACH(i, n) {
        uint64_t r = i / cols;

        o[i] = amg_kcu_axpby(alpha[r], x[i], beta[r], y[i]);
    }
}

/* first: the lowest element whose weights sum to zero (stays ~0 when
 * none does); atomicMin makes it the first in index order whatever the
 * threads' timing. */
static __global__ void k_quotient(float *o, const __grid_constant__
                                  quot_inputs in, double eps, int32_t floor_,
                                  uint64_t n, unsigned long long *first)
{
    AMG_KCU_FOR_EACH(i, n) {
        float v;

        if (amg_kcu_weighted_quotient(in.x, in.f, in.c, in.n, eps, floor_, i,
                                      &v))
            atomicMin(first, (unsigned long long)i);
        else
            o[i] = v;
    }
}

int32_t amg__kcu_row_axpby(amg_ctx *ctx, amg_tensor *out, const float *alpha,
                           const amg_tensor *x, const float *beta,
                           const amg_tensor *y)
{
    const char *kn = "row_axpby";
    uint64_t rows, cols, n;
    float *dev = NULL;
    cudaStream_t s;
    int rc = amg__kcu_begin(ctx, kn, &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, kn, "out", out, AMG__KCU_F32);
    if (!rc)
        rc = amg__kcu_arg_like(ctx, kn, "x", x, AMG__KCU_F32, "out", out);
    if (!rc)
        rc = amg__kcu_arg_like(ctx, kn, "y", y, AMG__KCU_F32, "out", out);
    if (rc)
        return rc;
    /* rows along dimension 0: each element of a 1-D out is a row */
    rows = amg_tensor_rows(out);
    n = amg_tensor_numel(out);
    cols = amg_tensor_row_numel(out);
    if (n > 0 && (alpha == NULL || beta == NULL))
        return amg__kcu_host->fail(ctx, AMG_EINVAL, "row_axpby: %s is NULL",
                                   alpha == NULL ? "alpha" : "beta");
    if (n == 0)
        return AMG_OK;
    /* the per-row scales go to the device beside each other */
    rc = amg__kcu_scratch(ctx, kn, 2 * (size_t)rows * sizeof(float), s,
                          (void **)&dev);
    if (!rc)
        rc = amg__kcu_to_device(ctx, kn, dev, alpha,
                                (size_t)rows * sizeof(float), s);
    if (!rc)
        rc = amg__kcu_to_device(ctx, kn, dev + rows, beta,
                                (size_t)rows * sizeof(float), s);
    if (!rc) {
        amg__kcu_prelaunch();
        k_row_axpby<<<amg__kcu_blocks(n), AMG_KCU_THREADS, 0, s>>>(
            (float *)amg_tensor_data(out), dev,
            (const float *)amg_tensor_data(x), dev + rows,
            (const float *)amg_tensor_data(y), cols, n);
        rc = amg__kcu_launched(ctx, kn);
    }
    amg__kcu_scratch_free(dev, s);
    return rc;
}

/* rows.c check_quotient_args, in its order */
static int check_quotient(amg_ctx *ctx, const amg_tensor *out,
                          const amg_tensor *const *x,
                          const amg_tensor *const *f, const double *c,
                          uint32_t n)
{
    const char *kn = "weighted_quotient";
    char what[32];
    uint32_t j;
    int rc = amg__kcu_arg(ctx, kn, "out", out, AMG__KCU_F32);

    if (!rc)
        rc = amg__kcu_args_like(ctx, kn, "x", x, n, NULL, 0, "out", out);
    if (rc)
        return rc;
    if (n > 0 && (f == NULL || c == NULL))
        return amg__kcu_host->fail(ctx, AMG_EINVAL,
                                   "weighted_quotient: %s is NULL with n = "
                                   "%u", f == NULL ? "f" : "c", n);
    for (j = 0; j < n; j++) {
        if (f[j] == NULL)
            continue;
        snprintf(what, sizeof(what), "f[%u]", j);
        rc = amg__kcu_arg_like(ctx, kn, what, f[j], AMG__KCU_F32, "out",
                               out);
        if (rc)
            return rc;
    }
    return AMG_OK;
}

int32_t amg__kcu_weighted_quotient(amg_ctx *ctx, amg_tensor *out,
                                   const amg_tensor *const *x,
                                   const amg_tensor *const *f,
                                   const double *c, uint32_t n, double eps,
                                   int32_t floor_)
{
    const char *kn = "weighted_quotient";
    unsigned long long *first = NULL, bad = 0;
    quot_inputs in;
    uint64_t numel;
    cudaStream_t s;
    cudaError_t e;
    uint32_t j;
    int rc = amg__kcu_begin(ctx, kn, &s);

    if (!rc)
        rc = check_quotient(ctx, out, x, f, c, n);
    if (rc)
        return rc;
    if (n > AMG_KCU_MAX_INPUTS)
        return amg__kcu_host->fail(ctx, AMG_EUNSUPPORTED,
                                   "%s: %u inputs; the CUDA kernels take at "
                                   "most %u", kn, n, AMG_KCU_MAX_INPUTS);
    numel = amg_tensor_numel(out);
    if (numel == 0)
        return AMG_OK;
    memset(&in, 0, sizeof(in));
    for (j = 0; j < n; j++) {
        in.x[j] = (const float *)amg_tensor_data(x[j]);
        in.f[j] = f[j] ? (const float *)amg_tensor_data(f[j]) : NULL;
        in.c[j] = c[j];
    }
    in.n = n;
    rc = amg__kcu_scratch(ctx, kn, sizeof(*first), s, (void **)&first);
    if (rc)
        return rc;
    e = cudaMemsetAsync(first, 0xFF, sizeof(*first), s);
    if (e != cudaSuccess) {
        rc = amg__kcu_cuda_fail(ctx, kn, "device memset failed", e);
        goto done;
    }
    amg__kcu_prelaunch();
    k_quotient<<<amg__kcu_blocks(numel), AMG_KCU_THREADS, 0, s>>>(
        (float *)amg_tensor_data(out), in, eps, floor_, numel, first);
    rc = amg__kcu_launched(ctx, kn);
    if (!rc)
        rc = amg__kcu_to_host(ctx, kn, &bad, first, sizeof(bad), s);
    if (!rc && bad != ~0ull)
        rc = amg__kcu_host->fail(ctx, AMG_EINVAL, "weighted_quotient: the "
                                 "weights sum to 0 at element %llu; epsilon "
                                 "> 0 or nonzero weights avoid that",
                                 (unsigned long long)(out->elem_offset + bad));
done:
    amg__kcu_scratch_free(first, s);
    return rc;
}
