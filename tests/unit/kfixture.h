/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kfixture.h - what the kernel unit tests (check_kernels.c,
 * check_cuda_elem.c) share: the CPU table and a ctx set up per test, small
 * host tensors built from values, and a deterministic data generator
 * unrelated to the kernels' RNG. Include after testutil.h.
 */
#ifndef AMG_TEST_KFIXTURE_H
#define AMG_TEST_KFIXTURE_H

#include <stdint.h>
#include <string.h>

#include "ctx.h"
#include "kernels_cpu.h"
#include "tensor_mem.h"

static const amg_kernels *K;
static amg_ctx ctx;

static inline void setup(void)
{
    K = amg_kernels_cpu();
    amg_ctx_init(&ctx, NULL, NULL, NULL);
}

static inline void teardown(void)
{
    amg_ctx_release(&ctx);
}

static inline amg_tensor *mk(amg_dl_dtype dt, int32_t ndim,
                             const int64_t *shape)
{
    amg_tensor *t = NULL;
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_tensor_alloc(&t, dt, ndim, shape, NULL, &err),
                     AMG_OK);
    return t;
}

/* A 1-D f32 tensor holding v[0..n). */
static inline amg_tensor *f32v(const float *v, int64_t n)
{
    amg_tensor *t = mk(amg_dl_make(AMG_DL_FLOAT, 32), 1, &n);

    if (n)
        memcpy(amg_tensor_data(t), v, (size_t)n * sizeof(float));
    return t;
}

/* A 1-D mask tensor holding v[0..n). */
static inline amg_tensor *maskv(const uint8_t *v, int64_t n)
{
    amg_tensor *t = mk(amg_dl_make(AMG_DL_BOOL, 8), 1, &n);

    if (n)
        memcpy(amg_tensor_data(t), v, (size_t)n);
    return t;
}

static inline float *F(const amg_tensor *t)
{
    return amg_tensor_data(t);
}

static inline uint8_t *M(const amg_tensor *t)
{
    return amg_tensor_data(t);
}

static uint64_t lcg_state;
static inline uint32_t lcg(void)
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(lcg_state >> 33);
}

#endif
