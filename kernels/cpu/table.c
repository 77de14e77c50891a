/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CPU kernel table, and the argument checks every CPU kernel shares so
 * that a strategy gets the same message for the same mistake from each.
 */
#include "config.h"
#include "kernels_cpu.h"
#include "../argcheck.h"

#include <stdio.h>

#include "ctx.h"
#include "dtype.h"
#include "tensor_mem.h"

/* The device these kernels accept tensors on. The loopback test backend
 * (tests/gpu/loopback.c) compiles kernels/cpu/ a second time as a CUDA
 * table over host memory, so CI runs every device path without a GPU. */
#ifndef AMG_KCPU_DEVICE
#define AMG_KCPU_DEVICE AMG_DEVICE_CPU
#endif
#if AMG_KCPU_DEVICE == AMG_DEVICE_CPU
#define AMG_KCPU_WHERE "in host memory"
#else
#define AMG_KCPU_WHERE "in device memory"
#endif

static const amg_kernels cpu_table = {
    .struct_size = (uint32_t)sizeof(amg_kernels),
    .device_type = AMG_KCPU_DEVICE,
    .convert = amg__kcpu_convert,
    .fill = amg__kcpu_fill,
    .scale = amg__kcpu_scale,
    .axpby = amg__kcpu_axpby,
    .mul = amg__kcpu_mul,
    .div = amg__kcpu_div,
    .abs = amg__kcpu_abs,
    .sign = amg__kcpu_sign,
    .weighted_sum = amg__kcpu_weighted_sum,
    .mask_apply = amg__kcpu_mask_apply,
    .where = amg__kcpu_where,
    .topk_mask = amg__kcpu_topk_mask,
    .abs_histogram = amg__kcpu_abs_histogram,
    .threshold_mask = amg__kcpu_threshold_mask,
    .sign_elect = amg__kcpu_sign_elect,
    .disjoint_merge = amg__kcpu_disjoint_merge,
    .sum = amg__kcpu_sum,
    .dot = amg__kcpu_dot,
    .norm_l2 = amg__kcpu_norm_l2,
    .norm_l1 = amg__kcpu_norm_l1,
    .row_dot = amg__kcpu_row_dot,
    .rng_uniform = amg__kcpu_rng_uniform,
    .rng_bernoulli = amg__kcpu_rng_bernoulli,
    .row_abs_rank = amg__kcpu_row_abs_rank,
    .row_abs_sum = amg__kcpu_row_abs_sum,
    .row_axpby = amg__kcpu_row_axpby,
    .weighted_quotient = amg__kcpu_weighted_quotient,
    .reserved = { NULL },
};

const amg_kernels *amg_kernels_cpu(void)
{
    return &cpu_table;
}

/* the kinds are amg_argkind's, so one cast serves */
_Static_assert(AMG__KCPU_F32 == (int)AMG_ARGKIND_F32 &&
               AMG__KCPU_MASK == (int)AMG_ARGKIND_MASK &&
               AMG__KCPU_ANY == (int)AMG_ARGKIND_ANY,
               "amg__kcpu_kind differs from amg_argkind");

int amg__kcpu_arg(amg_ctx *ctx, const char *kernel, const char *what,
                  const amg_tensor *t, enum amg__kcpu_kind kind)
{
    if (!t)
        return amg_ctx_fail(ctx, AMG_EINVAL, "%s: %s is NULL", kernel, what);
    /* pinned host memory is ordinary memory to the CPU */
    if (t->dl.device.type != AMG_KCPU_DEVICE &&
        !(AMG_KCPU_DEVICE == AMG_DEVICE_CPU &&
          t->dl.device.type == AMG_DEVICE_CUDA_HOST))
        return amg_ctx_fail(ctx, AMG_EINVAL,
                            "%s: %s is on device type %d, not " AMG_KCPU_WHERE,
                            kernel, what, (int)t->dl.device.type);
    return amg_argcheck_layout(amg_ctx_fail, ctx, kernel, what, t,
                               (enum amg_argkind)kind);
}

int amg__kcpu_arg_like(amg_ctx *ctx, const char *kernel, const char *what,
                       const amg_tensor *t, enum amg__kcpu_kind kind,
                       const char *ref_what, const amg_tensor *ref)
{
    int rc = amg__kcpu_arg(ctx, kernel, what, t, kind);

    if (rc)
        return rc;
    return amg_argcheck_numel(amg_ctx_fail, ctx, kernel, what, t, ref_what,
                              ref);
}

int amg__kcpu_args_like(amg_ctx *ctx, const char *kernel, const char *name,
                        const amg_tensor *const *x, uint32_t n,
                        const float *w, int need_w, const char *ref_what,
                        const amg_tensor *ref)
{
    char what[64];
    uint32_t j;
    int rc = amg_argcheck_array(amg_ctx_fail, ctx, kernel, name, x, n, w,
                                need_w);

    for (j = 0; rc == AMG_OK && j < n; j++) {
        snprintf(what, sizeof(what), "%s[%u]", name, j);
        rc = amg__kcpu_arg_like(ctx, kernel, what, x[j], AMG__KCPU_F32,
                                ref_what, ref);
    }
    return rc;
}
