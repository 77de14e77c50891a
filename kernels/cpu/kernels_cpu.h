/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernels_cpu.h - the CPU implementation of the kernel table
 * (amalgam/kernels.h). One file per kernel family beside this one.
 */
#ifndef AMG_KERNELS_CPU_H
#define AMG_KERNELS_CPU_H

#include <stddef.h>

#include <amalgam/kernels.h>

/* The CPU kernel table (static, valid for the life of the process). */
const amg_kernels *amg_kernels_cpu(void);

/* ---- internal to kernels/cpu/ ---- */

/* What a tensor argument must hold (table.c checks it). */
enum amg__kcpu_kind {
    AMG__KCPU_F32,      /* float32 */
    AMG__KCPU_MASK,     /* bool, one byte per element */
    AMG__KCPU_ANY       /* any dtype convert supports */
};

/* Check one tensor argument of kernel: present, in host memory, compact
 * row-major, of kind. On failure records "<kernel>: <what> ..." through ctx
 * and returns AMG_EINVAL. */
int amg__kcpu_arg(amg_ctx *ctx, const char *kernel, const char *what,
                  const amg_tensor *t, enum amg__kcpu_kind kind);

/* amg__kcpu_arg, then require t to have as many elements as ref (already
 * checked): "<kernel>: x has 6 elements, out has 4". */
int amg__kcpu_arg_like(amg_ctx *ctx, const char *kernel, const char *what,
                       const amg_tensor *t, enum amg__kcpu_kind kind,
                       const char *ref_what, const amg_tensor *ref);

/* Check an array of n tensors named name[j] like ref, and the weights (w
 * may be NULL when the kernel takes none; need_w says it must not be). */
int amg__kcpu_args_like(amg_ctx *ctx, const char *kernel, const char *name,
                        const amg_tensor *const *x, uint32_t n,
                        const float *w, int need_w, const char *ref_what,
                        const amg_tensor *ref);

/* o[i] = alpha * a[i] + beta * b[i], each product rounded to f32 before
 * the sum, for i < n (elementwise.c; row_axpby runs it per row). o may
 * be a or b. */
void amg__kcpu_axpby_n(float *o, float alpha, const float *a, float beta,
                       const float *b, uint64_t n);

/* The entries, one family per file. */
int32_t amg__kcpu_convert(amg_ctx *ctx, amg_tensor *dst,
                          const amg_tensor *src);

int32_t amg__kcpu_fill(amg_ctx *ctx, amg_tensor *out, float v);
int32_t amg__kcpu_scale(amg_ctx *ctx, amg_tensor *out, float alpha,
                        const amg_tensor *x);
int32_t amg__kcpu_axpby(amg_ctx *ctx, amg_tensor *out, float alpha,
                        const amg_tensor *x, float beta, const amg_tensor *y);
int32_t amg__kcpu_mul(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x,
                      const amg_tensor *y);
int32_t amg__kcpu_div(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x,
                      const amg_tensor *y);
int32_t amg__kcpu_abs(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x);
int32_t amg__kcpu_sign(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x);
int32_t amg__kcpu_weighted_sum(amg_ctx *ctx, amg_tensor *out,
                               const amg_tensor *const *x, const float *w,
                               uint32_t n);

int32_t amg__kcpu_mask_apply(amg_ctx *ctx, amg_tensor *out,
                             const amg_tensor *x, const amg_tensor *mask);
int32_t amg__kcpu_where(amg_ctx *ctx, amg_tensor *out, const amg_tensor *mask,
                        const amg_tensor *x, const amg_tensor *y);
int32_t amg__kcpu_topk_mask(amg_ctx *ctx, amg_tensor *mask,
                            const amg_tensor *x, uint64_t k);
int32_t amg__kcpu_abs_histogram(amg_ctx *ctx, const amg_tensor *x,
                                int32_t level, uint32_t prefix,
                                uint64_t *hist);
int32_t amg__kcpu_threshold_mask(amg_ctx *ctx, amg_tensor *mask,
                                 const amg_tensor *x, uint32_t thr,
                                 uint64_t n_ties, uint64_t *ties_taken);

int32_t amg__kcpu_sign_elect(amg_ctx *ctx, amg_tensor *sign,
                             const amg_tensor *const *d, const float *w,
                             uint32_t n, int32_t rule);
int32_t amg__kcpu_disjoint_merge(amg_ctx *ctx, amg_tensor *out,
                                 const amg_tensor *const *d, const float *w,
                                 uint32_t n, const amg_tensor *sign,
                                 int32_t normalize);

int32_t amg__kcpu_sum(amg_ctx *ctx, const amg_tensor *x, double *out);
int32_t amg__kcpu_dot(amg_ctx *ctx, const amg_tensor *x, const amg_tensor *y,
                      double *out);
int32_t amg__kcpu_norm_l2(amg_ctx *ctx, const amg_tensor *x, double *out);
int32_t amg__kcpu_norm_l1(amg_ctx *ctx, const amg_tensor *x, double *out);
int32_t amg__kcpu_row_dot(amg_ctx *ctx, const amg_tensor *x,
                          const amg_tensor *y, double *out);

int32_t amg__kcpu_rng_uniform(amg_ctx *ctx, amg_tensor *out, uint64_t seed,
                              uint64_t stream);
int32_t amg__kcpu_rng_bernoulli(amg_ctx *ctx, amg_tensor *mask, double p,
                                uint64_t seed, uint64_t stream);

int32_t amg__kcpu_row_abs_rank(amg_ctx *ctx, amg_tensor *out,
                               const amg_tensor *x);

int32_t amg__kcpu_row_abs_sum(amg_ctx *ctx, const amg_tensor *x,
                              const amg_tensor *mask, double *all,
                              double *kept);
int32_t amg__kcpu_row_axpby(amg_ctx *ctx, amg_tensor *out, const float *alpha,
                            const amg_tensor *x, const float *beta,
                            const amg_tensor *y);
int32_t amg__kcpu_weighted_quotient(amg_ctx *ctx, amg_tensor *out,
                                    const amg_tensor *const *x,
                                    const amg_tensor *const *f,
                                    const double *c, uint32_t n, double eps,
                                    int32_t use_floor);

#endif
