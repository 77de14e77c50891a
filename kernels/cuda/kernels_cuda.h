/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernels_cuda.h - internal to kernels/cuda/: the CUDA kernel table's
 * entries, the argument checks they share (table.cu), and the plumbing
 * every entry uses: the device binding, the caller's stream, scratch
 * memory, launch checks.
 *
 * Every entry enqueues its work on host->cuda_stream(ctx) and returns
 * without waiting, except those whose results are "on the host"
 * (reductions, histograms, threshold_mask's tie count, weighted_quotient's
 * zero check): they copy back and synchronise that stream first.
 */
#ifndef AMG_KERNELS_CUDA_H
#define AMG_KERNELS_CUDA_H

#include <cuda_runtime.h>

#include <stddef.h>
#include <stdint.h>

#include <amalgam/host.h>
#include <amalgam/kernels.h>
#include <amalgam/status.h>

#include "elem.h"

/* Set by the backend's open(): the services table (fail, cuda_stream),
 * the device ordinal and its multiprocessor count. */
extern const amg_host_api *amg__kcu_host;
extern int amg__kcu_ordinal;
extern int amg__kcu_sm_count;

/* The CUDA table (valid after open). */
const amg_kernels *amg__kcu_table(void);

/* Make the opened device current in the calling thread (the CUDA runtime
 * keeps the current device per thread, and the host calls from its
 * workers). Returns the CUDA error. */
cudaError_t amg__kcu_bind(void);

/* ---- entry plumbing ---- */

/* Threads per block of the elementwise kernels. */
#define AMG_KCU_THREADS 256u

/* Blocks for a grid-stride loop over n elements: enough to fill the
 * device, never more than the elements need. n > 0. */
unsigned amg__kcu_blocks(uint64_t n);

/* Bind the device and fetch the caller's stream; fails through ctx. */
int amg__kcu_begin(amg_ctx *ctx, const char *kernel, cudaStream_t *stream);

/* Record "<kernel>: <what>: <CUDA's message>" through ctx; AMG_ENOMEM for
 * an allocation failure, AMG_EDEVICE otherwise. Clears CUDA's last error
 * so a later launch check does not report this one again. */
int amg__kcu_cuda_fail(amg_ctx *ctx, const char *kernel, const char *what,
                       cudaError_t e);

/* Clear a stale error before a launch (a failed call of the host's, say)
 * so that amg__kcu_launched reports only the launch's own. */
void amg__kcu_prelaunch(void);
/* After a launch: the launch's error, through ctx, or AMG_OK. */
int amg__kcu_launched(amg_ctx *ctx, const char *kernel);

/* A grid-stride loop over [0, n) with 64-bit indices. */
#define AMG_KCU_FOR_EACH(i, n)                                                \
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;       \
         i < (n); i += (uint64_t)gridDim.x * blockDim.x)

/* The tail of an elementwise entry: nothing to do for n == 0, else launch
 * fn over n elements on stream s and return the launch's status. */
#define AMG_KCU_LAUNCH(ctx, kernel, n, s, fn, ...)                            \
    do {                                                                      \
        if ((n) == 0)                                                         \
            return AMG_OK;                                                    \
        amg__kcu_prelaunch();                                                 \
        fn<<<amg__kcu_blocks(n), AMG_KCU_THREADS, 0, (s)>>>(__VA_ARGS__);     \
        return amg__kcu_launched((ctx), (kernel));                            \
    } while (0)

/* bytes of device scratch ordered on stream (bytes > 0). */
int amg__kcu_scratch(amg_ctx *ctx, const char *kernel, size_t bytes,
                     cudaStream_t stream, void **out);
/* Release scratch once the work queued on stream is done; NULL is a no-op. */
void amg__kcu_scratch_free(void *p, cudaStream_t stream);

/* Copy bytes of device memory to host memory on stream and wait for the
 * stream (and so for everything queued before). */
int amg__kcu_to_host(amg_ctx *ctx, const char *kernel, void *dst,
                     const void *src, size_t bytes, cudaStream_t stream);
/* Copy bytes of host memory to device memory on stream and wait for the
 * stream, so the host buffer may be freed or reused once this returns. */
int amg__kcu_to_device(amg_ctx *ctx, const char *kernel, void *dst,
                       const void *src, size_t bytes, cudaStream_t stream);

/* ---- argument checks (table.cu), in the CPU table's words ---- */

enum amg__kcu_kind {
    AMG__KCU_F32,       /* float32 */
    AMG__KCU_MASK,      /* bool, one byte per element */
    AMG__KCU_ANY        /* any dtype convert supports */
};

/* Present, on this device, compact row-major, of kind, aligned to its
 * element size. */
int amg__kcu_arg(amg_ctx *ctx, const char *kernel, const char *what,
                 const amg_tensor *t, enum amg__kcu_kind kind);
/* amg__kcu_arg, then as many elements as ref (already checked). */
int amg__kcu_arg_like(amg_ctx *ctx, const char *kernel, const char *what,
                      const amg_tensor *t, enum amg__kcu_kind kind,
                      const char *ref_what, const amg_tensor *ref);
/* n F32 tensors name[j] like ref; w must be set when need_w. */
int amg__kcu_args_like(amg_ctx *ctx, const char *kernel, const char *name,
                       const amg_tensor *const *x, uint32_t n,
                       const float *w, int need_w, const char *ref_what,
                       const amg_tensor *ref);
/* "<kernel>: out is NULL" for a NULL host result pointer. */
int amg__kcu_check_out(amg_ctx *ctx, const char *kernel, const void *out);

/* Rows as row_abs_rank counts them: dimension 0, a 0-D or 1-D tensor
 * being one row (the other row kernels take amg_tensor_rows: each element
 * of a 1-D tensor a row). */
uint64_t amg__kcu_rows(const amg_tensor *t);

/* ---- n-input kernels: the inputs travel in the launch's parameters ---- */

/* Inputs one launch takes: kernel parameters stay under the 4 KiB every
 * driver accepts (AMG_KCU_MAX_INPUTS * 24 bytes for weighted_quotient). */
#define AMG_KCU_MAX_INPUTS 128u

typedef struct amg_kcu_inputs {
    const float *x[AMG_KCU_MAX_INPUTS];
    float w[AMG_KCU_MAX_INPUTS];
    uint32_t n;
} amg_kcu_inputs;

/* Fill in from n tensors and weights (w NULL: all 0); fails through ctx
 * when n is above AMG_KCU_MAX_INPUTS. */
int amg__kcu_inputs(amg_ctx *ctx, const char *kernel,
                    const amg_tensor *const *x, const float *w, uint32_t n,
                    amg_kcu_inputs *in);

/* ---- the entries, one family per file ---- */

int32_t amg__kcu_convert(amg_ctx *ctx, amg_tensor *dst,
                         const amg_tensor *src);

int32_t amg__kcu_fill(amg_ctx *ctx, amg_tensor *out, float v);
int32_t amg__kcu_scale(amg_ctx *ctx, amg_tensor *out, float alpha,
                       const amg_tensor *x);
int32_t amg__kcu_axpby(amg_ctx *ctx, amg_tensor *out, float alpha,
                       const amg_tensor *x, float beta, const amg_tensor *y);
int32_t amg__kcu_mul(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x,
                     const amg_tensor *y);
int32_t amg__kcu_div(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x,
                     const amg_tensor *y);
int32_t amg__kcu_abs(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x);
int32_t amg__kcu_sign(amg_ctx *ctx, amg_tensor *out, const amg_tensor *x);
int32_t amg__kcu_weighted_sum(amg_ctx *ctx, amg_tensor *out,
                              const amg_tensor *const *x, const float *w,
                              uint32_t n);

int32_t amg__kcu_mask_apply(amg_ctx *ctx, amg_tensor *out,
                            const amg_tensor *x, const amg_tensor *mask);
int32_t amg__kcu_where(amg_ctx *ctx, amg_tensor *out, const amg_tensor *mask,
                       const amg_tensor *x, const amg_tensor *y);
int32_t amg__kcu_topk_mask(amg_ctx *ctx, amg_tensor *mask,
                           const amg_tensor *x, uint64_t k);
int32_t amg__kcu_abs_histogram(amg_ctx *ctx, const amg_tensor *x,
                               int32_t level, uint32_t prefix,
                               uint64_t *hist);
int32_t amg__kcu_threshold_mask(amg_ctx *ctx, amg_tensor *mask,
                                const amg_tensor *x, uint32_t thr,
                                uint64_t n_ties, uint64_t *ties_taken);

int32_t amg__kcu_sign_elect(amg_ctx *ctx, amg_tensor *sign,
                            const amg_tensor *const *d, const float *w,
                            uint32_t n, int32_t rule);
int32_t amg__kcu_disjoint_merge(amg_ctx *ctx, amg_tensor *out,
                                const amg_tensor *const *d, const float *w,
                                uint32_t n, const amg_tensor *sign,
                                int32_t normalize);

int32_t amg__kcu_sum(amg_ctx *ctx, const amg_tensor *x, double *out);
int32_t amg__kcu_dot(amg_ctx *ctx, const amg_tensor *x, const amg_tensor *y,
                     double *out);
int32_t amg__kcu_norm_l2(amg_ctx *ctx, const amg_tensor *x, double *out);
int32_t amg__kcu_norm_l1(amg_ctx *ctx, const amg_tensor *x, double *out);
int32_t amg__kcu_row_dot(amg_ctx *ctx, const amg_tensor *x,
                         const amg_tensor *y, double *out);
int32_t amg__kcu_row_abs_sum(amg_ctx *ctx, const amg_tensor *x,
                             const amg_tensor *mask, double *all,
                             double *kept);

int32_t amg__kcu_rng_uniform(amg_ctx *ctx, amg_tensor *out, uint64_t seed,
                             uint64_t stream);
int32_t amg__kcu_rng_bernoulli(amg_ctx *ctx, amg_tensor *mask, double p,
                               uint64_t seed, uint64_t stream);

int32_t amg__kcu_row_abs_rank(amg_ctx *ctx, amg_tensor *out,
                              const amg_tensor *x);

int32_t amg__kcu_row_axpby(amg_ctx *ctx, amg_tensor *out, const float *alpha,
                           const amg_tensor *x, const float *beta,
                           const amg_tensor *y);
int32_t amg__kcu_weighted_quotient(amg_ctx *ctx, amg_tensor *out,
                                   const amg_tensor *const *x,
                                   const amg_tensor *const *f,
                                   const double *c, uint32_t n, double eps,
                                   int32_t floor_);

#endif
