/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Masks and selection on the device: mask_apply, where, and exact
 * magnitude top-k by histograms (kernels/cpu/select.c explains the
 * method; the per-element tests are elem.h's).
 *
 * Histograms count integers, so atomics give the CPU's counts in any
 * order. The threshold pass must take ties in index order, across the
 * whole tensor and across calls (ties_taken): each tile of TIE_TILE
 * elements counts its ties, an exclusive scan over the tiles gives each
 * tile the number of ties before it, and within a tile a block-wide scan
 * per round of TIE_THREADS consecutive elements ranks each tie. A tie is
 * taken when ties_taken + its rank in this call < n_ties, which is the
 * CPU's "taken < n_ties" tested tie by tie in index order.
 */
#include "kernels_cuda.h"

#include <stdlib.h>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_scan.cuh>

#define HIST_BINS 65536u
#define TIE_THREADS 256u
#define TIE_ROUNDS 8u
#define TIE_TILE (TIE_THREADS * TIE_ROUNDS)

/* What a threshold pass selects: numbers above thr outright and ties equal
 * to thr in index order; or (topk_mask once k covers every number) every
 * number outright and NaNs as the ties. */
struct sel_rule {
    uint32_t thr;
    int nan_ties;
};

static __device__ __forceinline__ int rule_above(sel_rule r, uint32_t b)
{
    return r.nan_ties ? amg_kcu_is_number(b) : amg_kcu_thr_above(b, r.thr);
}

static __device__ __forceinline__ int rule_tie(sel_rule r, uint32_t b)
{
    return r.nan_ties ? !amg_kcu_is_number(b) : amg_kcu_thr_tie(b, r.thr);
}

static __global__ void k_mask_apply(float *o, const float *x,
                                    const uint8_t *m, uint64_t n)
{
    AMG_KCU_FOR_EACH(i, n)
        o[i] = amg_kcu_mask_apply(x[i], m[i]);
}

static __global__ void k_where(float *o, const uint8_t *m, const float *x,
                               const float *y, uint64_t n)
{
    AMG_KCU_FOR_EACH(i, n)
        o[i] = amg_kcu_where(m[i], x[i], y[i]);
}

/* Lanes of a warp holding the same bin add once, by their lowest lane:
 * elements of a tensor crowd into few bins, and one atomic per bin per
 * warp cuts the contention on them. The loop runs warp by warp (every
 * lane sees the same base), so the full-warp match is valid. */
static __global__ void k_hist(const float *x, uint64_t n, int32_t level,
                              uint32_t prefix, unsigned long long *bins)
{
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    const unsigned lane = threadIdx.x & 31u;
    uint64_t base = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x - lane;

    for (; base < n; base += stride) {
        uint64_t i = base + lane;
        uint32_t bin = 0;
        int counted = i < n && amg_kcu_hist_bin(x[i], level, prefix, &bin);
        unsigned peers = __match_any_sync(0xFFFFFFFFu,
                                          counted ? bin : 0xFFFFFFFFu);

        if (counted && lane == (unsigned)(__ffs(peers) - 1))
            atomicAdd(&bins[bin], (unsigned long long)__popc(peers));
    }
}

static __global__ void k_tie_count(const float *x, uint64_t n, sel_rule r,
                                   unsigned long long *counts)
{
    typedef cub::BlockReduce<unsigned, TIE_THREADS> reduce_t;
    __shared__ typename reduce_t::TempStorage ts;
    uint64_t base = (uint64_t)blockIdx.x * TIE_TILE;
    unsigned c = 0, total, k;

    for (k = 0; k < TIE_ROUNDS; k++) {
        uint64_t i = base + k * TIE_THREADS + threadIdx.x;

        if (i < n)
            c += (unsigned)rule_tie(r, amg_kcu_mag_bits(x[i]));
    }
    total = reduce_t(ts).Sum(c);
    if (threadIdx.x == 0)
        counts[blockIdx.x] = total;
}

/* before[t]: ties in this call before tile t; NULL when no tie is to be
 * taken (the caller's count already reached n_ties). */
static __global__ void k_tie_take(uint8_t *m, const float *x, uint64_t n,
                                  sel_rule r,
                                  const unsigned long long *before,
                                  uint64_t taken0, uint64_t n_ties)
{
    typedef cub::BlockScan<unsigned, TIE_THREADS> scan_t;
    __shared__ typename scan_t::TempStorage ts;
    uint64_t base = (uint64_t)blockIdx.x * TIE_TILE;
    uint64_t done = before ? taken0 + before[blockIdx.x] : 0;
    unsigned k;

    for (k = 0; k < TIE_ROUNDS; k++) {
        uint64_t i = base + k * TIE_THREADS + threadIdx.x;
        uint32_t b = i < n ? amg_kcu_mag_bits(x[i]) : 0;
        unsigned tie = i < n && rule_tie(r, b);
        unsigned rank, round_ties;

        /* rank: ties of this round at lower indices */
        scan_t(ts).ExclusiveSum(tie, rank, round_ties);
        __syncthreads();            /* ts is reused next round */
        if (i < n)
            m[i] = (uint8_t)(rule_above(r, b) ||
                             (tie && before && done + rank < n_ties));
        done += round_ties;
    }
}

static size_t round_up(size_t v)
{
    return (v + 255u) & ~(size_t)255u;
}

/* Mark m over x[0, n) by rule, taking ties while *taken < n_ties, and
 * advance *taken as the CPU does (only synchronises when ties are to be
 * taken: their count comes back to the host). */
static int threshold_run(amg_ctx *ctx, const char *kernel, cudaStream_t s,
                         uint8_t *m, const float *x, uint64_t n, sel_rule r,
                         uint64_t n_ties, uint64_t *taken)
{
    uint64_t tiles = (n + TIE_TILE - 1) / TIE_TILE, total = 0;
    unsigned long long *counts, *before;
    size_t temp_bytes = 0, arr;
    void *scratch = NULL;
    cudaError_t e;
    int rc;

    if (n == 0)
        return AMG_OK;
    if (*taken >= n_ties) {
        amg__kcu_prelaunch();
        k_tie_take<<<(unsigned)tiles, TIE_THREADS, 0, s>>>(m, x, n, r, NULL,
                                                           0, 0);
        return amg__kcu_launched(ctx, kernel);
    }
    /* counts[tiles] stays 0, so before[tiles] is this call's tie total */
    e = cub::DeviceScan::ExclusiveSum(NULL, temp_bytes,
                                      (unsigned long long *)NULL,
                                      (unsigned long long *)NULL,
                                      tiles + 1, s);
    if (e != cudaSuccess)
        return amg__kcu_cuda_fail(ctx, kernel, "scan setup failed", e);
    arr = round_up((size_t)(tiles + 1) * sizeof(unsigned long long));
    rc = amg__kcu_scratch(ctx, kernel, 2 * arr + temp_bytes, s, &scratch);
    if (rc)
        return rc;
    counts = (unsigned long long *)scratch;
    before = (unsigned long long *)((char *)scratch + arr);
    e = cudaMemsetAsync(counts, 0, arr, s);
    if (e != cudaSuccess) {
        rc = amg__kcu_cuda_fail(ctx, kernel, "device memset failed", e);
        goto done;
    }
    amg__kcu_prelaunch();
    k_tie_count<<<(unsigned)tiles, TIE_THREADS, 0, s>>>(x, n, r, counts);
    rc = amg__kcu_launched(ctx, kernel);
    if (rc)
        goto done;
    e = cub::DeviceScan::ExclusiveSum((char *)scratch + 2 * arr, temp_bytes,
                                      counts, before, tiles + 1, s);
    if (e != cudaSuccess) {
        rc = amg__kcu_cuda_fail(ctx, kernel, "scan failed", e);
        goto done;
    }
    amg__kcu_prelaunch();
    k_tie_take<<<(unsigned)tiles, TIE_THREADS, 0, s>>>(m, x, n, r, before,
                                                       *taken, n_ties);
    rc = amg__kcu_launched(ctx, kernel);
    if (!rc)
        rc = amg__kcu_to_host(ctx, kernel, &total, before + tiles,
                              sizeof(total), s);
    if (!rc)
        *taken = n_ties - *taken < total ? n_ties : *taken + total;
done:
    amg__kcu_scratch_free(scratch, s);
    return rc;
}

/* Add the abs_histogram of x[0, n) at level/prefix into the host array
 * hist[HIST_BINS]. */
static int hist_run(amg_ctx *ctx, const char *kernel, cudaStream_t s,
                    const float *x, uint64_t n, int32_t level,
                    uint32_t prefix, uint64_t *hist)
{
    const size_t bytes = HIST_BINS * sizeof(unsigned long long);
    unsigned long long *bins = NULL;
    uint64_t *host = NULL;
    cudaError_t e;
    uint32_t b;
    int rc;

    if (n == 0)
        return AMG_OK;
    host = (uint64_t *)malloc(bytes);
    if (!host)
        return amg__kcu_host->fail(ctx, AMG_ENOMEM,
                                   "%s: cannot allocate the histogram",
                                   kernel);
    rc = amg__kcu_scratch(ctx, kernel, bytes, s, (void **)&bins);
    if (rc)
        goto done;
    e = cudaMemsetAsync(bins, 0, bytes, s);
    if (e != cudaSuccess) {
        rc = amg__kcu_cuda_fail(ctx, kernel, "device memset failed", e);
        goto done;
    }
    amg__kcu_prelaunch();
    k_hist<<<amg__kcu_blocks(n), AMG_KCU_THREADS, 0, s>>>(x, n, level, prefix,
                                                         bins);
    rc = amg__kcu_launched(ctx, kernel);
    if (!rc)
        rc = amg__kcu_to_host(ctx, kernel, host, bins, bytes, s);
    if (!rc)
        for (b = 0; b < HIST_BINS; b++)
            hist[b] += host[b];
done:
    amg__kcu_scratch_free(bins, s);
    free(host);
    return rc;
}

/* select.c find_bin: the highest bin b with (*above + sum of hist[b..])
 * >= k, scanning down; *above becomes the count strictly above b. */
static uint32_t find_bin(const uint64_t *hist, uint64_t k, uint64_t *above)
{
    uint32_t b = HIST_BINS - 1;

    while (*above + hist[b] < k) {
        *above += hist[b];
        b--;
    }
    return b;
}

static const float *Fc(const amg_tensor *t)
{
    return (const float *)amg_tensor_data(t);
}

static uint8_t *M(const amg_tensor *t)
{
    return (uint8_t *)amg_tensor_data(t);
}

int32_t amg__kcu_mask_apply(amg_ctx *ctx, amg_tensor *out,
                            const amg_tensor *x, const amg_tensor *mask)
{
    cudaStream_t s;
    uint64_t n;
    int rc = amg__kcu_begin(ctx, "mask_apply", &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, "mask_apply", "out", out, AMG__KCU_F32);
    if (!rc)
        rc = amg__kcu_arg_like(ctx, "mask_apply", "x", x, AMG__KCU_F32,
                               "out", out);
    if (!rc)
        rc = amg__kcu_arg_like(ctx, "mask_apply", "mask", mask,
                               AMG__KCU_MASK, "out", out);
    if (rc)
        return rc;
    n = amg_tensor_numel(out);
    AMG_KCU_LAUNCH(ctx, "mask_apply", n, s, k_mask_apply,
                   (float *)amg_tensor_data(out), Fc(x), M(mask), n);
}

int32_t amg__kcu_where(amg_ctx *ctx, amg_tensor *out, const amg_tensor *mask,
                       const amg_tensor *x, const amg_tensor *y)
{
    cudaStream_t s;
    uint64_t n;
    int rc = amg__kcu_begin(ctx, "where", &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, "where", "out", out, AMG__KCU_F32);
    if (!rc)
        rc = amg__kcu_arg_like(ctx, "where", "mask", mask, AMG__KCU_MASK,
                               "out", out);
    if (!rc)
        rc = amg__kcu_arg_like(ctx, "where", "x", x, AMG__KCU_F32, "out",
                               out);
    if (!rc)
        rc = amg__kcu_arg_like(ctx, "where", "y", y, AMG__KCU_F32, "out",
                               out);
    if (rc)
        return rc;
    n = amg_tensor_numel(out);
    AMG_KCU_LAUNCH(ctx, "where", n, s, k_where, (float *)amg_tensor_data(out),
                   M(mask), Fc(x), Fc(y), n);
}

int32_t amg__kcu_abs_histogram(amg_ctx *ctx, const amg_tensor *x,
                               int32_t level, uint32_t prefix,
                               uint64_t *hist)
{
    cudaStream_t s;
    int rc = amg__kcu_begin(ctx, "abs_histogram", &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, "abs_histogram", "x", x, AMG__KCU_F32);
    if (rc)
        return rc;
    if (level != 0 && level != 1)
        return amg__kcu_host->fail(ctx, AMG_EINVAL,
                                   "abs_histogram: level %d is not 0 or 1",
                                   (int)level);
    if (level == 1 && prefix > 0xFFFFu)
        return amg__kcu_host->fail(ctx, AMG_EINVAL,
                                   "abs_histogram: prefix 0x%x does not fit "
                                   "in 16 bits", (unsigned)prefix);
    if (!hist)
        return amg__kcu_host->fail(ctx, AMG_EINVAL,
                                   "abs_histogram: hist is NULL");
    return hist_run(ctx, "abs_histogram", s, Fc(x), amg_tensor_numel(x),
                    level, prefix, hist);
}

int32_t amg__kcu_threshold_mask(amg_ctx *ctx, amg_tensor *mask,
                                const amg_tensor *x, uint32_t thr,
                                uint64_t n_ties, uint64_t *ties_taken)
{
    sel_rule r = { thr, 0 };
    cudaStream_t s;
    int rc = amg__kcu_begin(ctx, "threshold_mask", &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, "threshold_mask", "mask", mask,
                          AMG__KCU_MASK);
    if (!rc)
        rc = amg__kcu_arg_like(ctx, "threshold_mask", "x", x, AMG__KCU_F32,
                               "mask", mask);
    if (rc)
        return rc;
    if (!ties_taken)
        return amg__kcu_host->fail(ctx, AMG_EINVAL,
                                   "threshold_mask: ties_taken is NULL");
    return threshold_run(ctx, "threshold_mask", s, M(mask), Fc(x),
                         amg_tensor_numel(x), r, n_ties, ties_taken);
}

int32_t amg__kcu_topk_mask(amg_ctx *ctx, amg_tensor *mask,
                           const amg_tensor *x, uint64_t k)
{
    const char *kn = "topk_mask";
    uint64_t *hist = NULL;
    uint64_t n, numbers = 0, above = 0, taken = 0;
    uint32_t b0, b1, i;
    sel_rule r;
    cudaStream_t s;
    cudaError_t e;
    int rc = amg__kcu_begin(ctx, kn, &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, kn, "mask", mask, AMG__KCU_MASK);
    if (!rc)
        rc = amg__kcu_arg_like(ctx, kn, "x", x, AMG__KCU_F32, "mask", mask);
    if (rc)
        return rc;
    n = amg_tensor_numel(x);
    if (k == 0 || k >= n) {
        if (n == 0)
            return AMG_OK;
        e = cudaMemsetAsync(M(mask), k ? 1 : 0, (size_t)n, s);
        return e == cudaSuccess ? AMG_OK
                                : amg__kcu_cuda_fail(ctx, kn,
                                                     "device memset failed",
                                                     e);
    }
    hist = (uint64_t *)calloc(2 * (size_t)HIST_BINS, sizeof(*hist));
    if (!hist)
        return amg__kcu_host->fail(ctx, AMG_ENOMEM,
                                   "topk_mask: cannot allocate the "
                                   "histograms");
    rc = hist_run(ctx, kn, s, Fc(x), n, 0, 0, hist);
    if (rc)
        goto done;
    for (i = 0; i < HIST_BINS; i++)
        numbers += hist[i];
    if (k >= numbers) {
        r.thr = 0;
        r.nan_ties = 1;
        rc = threshold_run(ctx, kn, s, M(mask), Fc(x), n, r, k - numbers,
                           &taken);
        goto done;
    }
    b0 = find_bin(hist, k, &above);
    rc = hist_run(ctx, kn, s, Fc(x), n, 1, b0, hist + HIST_BINS);
    if (rc)
        goto done;
    b1 = find_bin(hist + HIST_BINS, k, &above);
    /* above elements are strictly larger than thr; k - above of the equal
     * ones complete the k */
    r.thr = (b0 << 16) | b1;
    r.nan_ties = 0;
    rc = threshold_run(ctx, kn, s, M(mask), Fc(x), n, r, k - above, &taken);
done:
    free(hist);
    return rc;
}
