/* SPDX-License-Identifier: Apache-2.0 */
/*
 * argcheck.h - the tensor argument checks the CPU and CUDA kernel tables
 * share, so a strategy gets the same message for the same mistake on
 * either device. Header-only (static inline): the CUDA module must not
 * link host objects, and nvcc compiles this as C++ host code. Each
 * backend passes the function that records its failures (amg_ctx_fail on
 * the host, host->fail in the CUDA module) and checks where the tensor
 * lives itself, as the backends differ there.
 */
#ifndef AMG_KERNELS_ARGCHECK_H
#define AMG_KERNELS_ARGCHECK_H

#include <stdint.h>

#include <amalgam/kernels.h>
#include <amalgam/status.h>
#include <amalgam/tensor.h>

#include "dtype.h"

/* What a tensor argument must hold; the backends' kind enums take these
 * values in this order (each table checks that it does). */
enum amg_argkind {
    AMG_ARGKIND_F32,    /* float32 */
    AMG_ARGKIND_MASK,   /* bool, one byte per element */
    AMG_ARGKIND_ANY     /* any dtype convert supports */
};

/* Records a failure on ctx and returns status (amg_ctx_fail's shape). */
typedef int32_t (*amg_argcheck_fail_fn)(amg_ctx *ctx, int32_t status,
                                        const char *fmt, ...);

static inline int amg_argcheck_kind_ok(const amg_tensor *t,
                                       enum amg_argkind kind)
{
    amg_dtype dt;

    switch (kind) {
    case AMG_ARGKIND_F32:
        return amg_tensor_is_f32(t);
    case AMG_ARGKIND_MASK:
        return amg_dl_eq(t->dl.dtype, amg_dl_make(AMG_DL_BOOL, 8));
    case AMG_ARGKIND_ANY:
        return amg_dtype_from_dl(t->dl.dtype, &dt) == 0;
    }
    return 0;
}

/* The checks after where t lives: a valid shape, compact row-major, of
 * kind, with data when it has elements. */
static inline int amg_argcheck_layout(amg_argcheck_fail_fn fail,
                                      amg_ctx *ctx, const char *kernel,
                                      const char *what, const amg_tensor *t,
                                      enum amg_argkind kind)
{
    char buf[64];

    if (t->dl.ndim < 0 || (t->dl.ndim > 0 && !t->dl.shape))
        return fail(ctx, AMG_EINVAL, "%s: %s has no valid shape", kernel,
                    what);
    if (!amg_tensor_is_compact(t))
        return fail(ctx, AMG_EINVAL,
                    "%s: %s is not contiguous (compact row-major "
                    "required)", kernel, what);
    if (!amg_argcheck_kind_ok(t, kind))
        return fail(ctx, AMG_EINVAL, "%s: %s has dtype %s, expected %s",
                    kernel, what,
                    amg_dl_dtype_name(t->dl.dtype, buf, sizeof(buf)),
                    kind == AMG_ARGKIND_F32    ? "float32"
                    : kind == AMG_ARGKIND_MASK ? "bool"
                                               : "a supported dtype");
    if (!t->dl.data && amg_tensor_numel(t) > 0)
        return fail(ctx, AMG_EINVAL, "%s: %s has no data", kernel, what);
    return AMG_OK;
}

/* t (already checked) has as many elements as ref. */
static inline int amg_argcheck_numel(amg_argcheck_fail_fn fail,
                                     amg_ctx *ctx, const char *kernel,
                                     const char *what, const amg_tensor *t,
                                     const char *ref_what,
                                     const amg_tensor *ref)
{
    uint64_t n = amg_tensor_numel(t), nref = amg_tensor_numel(ref);

    if (n != nref)
        return fail(ctx, AMG_EINVAL, "%s: %s has %llu elements, %s has %llu",
                    kernel, what, (unsigned long long)n, ref_what,
                    (unsigned long long)nref);
    return AMG_OK;
}

/* The array and weight pointers of an n-input kernel (the tensors
 * themselves are the backend's to check). */
static inline int amg_argcheck_array(amg_argcheck_fail_fn fail,
                                     amg_ctx *ctx, const char *kernel,
                                     const char *name, const void *x,
                                     uint32_t n, const float *w, int need_w)
{
    if (n > 0 && !x)
        return fail(ctx, AMG_EINVAL, "%s: %s is NULL with n = %u", kernel,
                    name, n);
    if (n > 0 && need_w && !w)
        return fail(ctx, AMG_EINVAL, "%s: w is NULL with n = %u", kernel, n);
    return AMG_OK;
}

#endif /* AMG_KERNELS_ARGCHECK_H */
