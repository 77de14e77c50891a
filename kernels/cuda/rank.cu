/* SPDX-License-Identifier: Apache-2.0 */
/*
 * row_abs_rank on the device. kernels/cpu/rank.c ranks a row by a stable
 * sort on the bits of |x|; here every element's key carries its column
 * below those bits (amg_kcu_rank_key), so keys are unique within a row and
 * their ascending order is exactly that stable order: by magnitude bits
 * (NaN above inf, +0 == -0), equal magnitudes by lower column. A CUB
 * segmented radix sort orders each row's keys (a plain radix sort when a
 * batch is one row), and sorted position i of a row of n gets
 * amg_kcu_rank_norm(i, n) at the column its key names.
 *
 * Rows go in batches of about RANK_BATCH elements to bound the scratch
 * (two key buffers of 8 bytes per element and CUB's temporary). A batch
 * reads its rows of x in full before writing the same rows of out, and
 * later batches read only later rows, so out may alias x.
 */
#include "kernels_cuda.h"

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#define RANK_BATCH (1u << 22)

static __global__ void k_rank_keys(const float *x, uint64_t n, uint64_t cols,
                                   uint64_t *keys)
{
    AMG_KCU_FOR_EACH(i, n)
        keys[i] = amg_kcu_rank_key(x[i], (uint32_t)(i % cols));
}

static __global__ void k_rank_offsets(int *offsets, uint64_t rows,
                                      uint64_t cols)
{
    AMG_KCU_FOR_EACH(r, rows + 1)
        offsets[r] = (int)(r * cols);
}

/* sorted[p] is row p / cols's key at position p % cols */
static __global__ void k_rank_scatter(const uint64_t *sorted, uint64_t n,
                                      uint64_t cols, float *out)
{
    AMG_KCU_FOR_EACH(p, n) {
        uint64_t r = p / cols;
        uint32_t col = (uint32_t)sorted[p];

        out[r * cols + col] = amg_kcu_rank_norm((uint32_t)(p - r * cols),
                                                (uint32_t)cols);
    }
}

/* Sort nr rows of cols keys (temp NULL: just set temp_bytes). */
static cudaError_t sort_keys(void *temp, size_t &temp_bytes,
                             const uint64_t *in, uint64_t *out,
                             const int *offsets, uint64_t nr, uint64_t cols,
                             cudaStream_t s)
{
    if (nr == 1)
        return cub::DeviceRadixSort::SortKeys(temp, temp_bytes, in, out,
                                              cols, 0, 64, s);
    /* nr * cols <= RANK_BATCH here: int counts are safe */
    return cub::DeviceSegmentedRadixSort::SortKeys(
        temp, temp_bytes, in, out, (int)(nr * cols), (int)nr, offsets,
        offsets + 1, 0, 64, s);
}

/* Rank rows [0, nr) of x into out (batch-sized scratch given). */
static int rank_batch(amg_ctx *ctx, cudaStream_t s, const float *x,
                      float *out, uint64_t nr, uint64_t cols, uint64_t *keys,
                      int *offsets, void **temp, size_t *temp_have)
{
    const char *kn = "row_abs_rank";
    const uint64_t n = nr * cols;
    size_t need = 0;
    cudaError_t e;
    int rc;

    amg__kcu_prelaunch();
    k_rank_keys<<<amg__kcu_blocks(n), AMG_KCU_THREADS, 0, s>>>(x, n, cols,
                                                               keys);
    if (nr > 1)
        k_rank_offsets<<<amg__kcu_blocks(nr + 1), AMG_KCU_THREADS, 0, s>>>(
            offsets, nr, cols);
    rc = amg__kcu_launched(ctx, kn);
    if (rc)
        return rc;
    e = sort_keys(NULL, need, keys, keys + n, offsets, nr, cols, s);
    if (e != cudaSuccess)
        return amg__kcu_cuda_fail(ctx, kn, "sort setup failed", e);
    if (need > *temp_have) {
        amg__kcu_scratch_free(*temp, s);
        *temp = NULL;
        *temp_have = 0;
        rc = amg__kcu_scratch(ctx, kn, need, s, temp);
        if (rc)
            return rc;
        *temp_have = need;
    }
    e = sort_keys(*temp, need, keys, keys + n, offsets, nr, cols, s);
    if (e != cudaSuccess)
        return amg__kcu_cuda_fail(ctx, kn, "sort failed", e);
    amg__kcu_prelaunch();
    k_rank_scatter<<<amg__kcu_blocks(n), AMG_KCU_THREADS, 0, s>>>(
        keys + n, n, cols, out);
    return amg__kcu_launched(ctx, kn);
}

int32_t amg__kcu_row_abs_rank(amg_ctx *ctx, amg_tensor *out,
                              const amg_tensor *x)
{
    const char *kn = "row_abs_rank";
    uint64_t rows, cols, per, r0, nr;
    void *keys = NULL, *temp = NULL;
    size_t temp_have = 0;
    int *offsets;
    cudaStream_t s;
    int rc = amg__kcu_begin(ctx, kn, &s);

    if (!rc)
        rc = amg__kcu_arg(ctx, kn, "x", x, AMG__KCU_F32);
    if (!rc)
        rc = amg__kcu_arg_like(ctx, kn, "out", out, AMG__KCU_F32, "x", x);
    if (rc)
        return rc;
    rows = amg__kcu_rows(x);
    cols = rows ? amg_tensor_numel(x) / rows : 0;
    if (cols == 0)
        return AMG_OK;
    /* columns are 32-bit in the keys; a row of 2^32 elements exists in no
     * model */
    if (cols > UINT32_MAX)
        return amg__kcu_host->fail(ctx, AMG_EINVAL, "row_abs_rank: rows of "
                                   "%llu elements are too long to rank",
                                   (unsigned long long)cols);
    per = RANK_BATCH / cols;
    if (per == 0)
        per = 1;
    if (per > rows)
        per = rows;
    /* keys in, keys out, then the row offsets */
    rc = amg__kcu_scratch(ctx, kn,
                          (size_t)per * cols * 2 * sizeof(uint64_t) +
                              (size_t)(per + 1) * sizeof(int),
                          s, &keys);
    if (rc)
        return rc;
    offsets = (int *)((uint64_t *)keys + 2 * per * cols);
    for (r0 = 0; r0 < rows && !rc; r0 += nr) {
        nr = rows - r0 < per ? rows - r0 : per;
        rc = rank_batch(ctx, s, (const float *)amg_tensor_data(x) + r0 * cols,
                        (float *)amg_tensor_data(out) + r0 * cols, nr, cols,
                        (uint64_t *)keys, offsets, &temp, &temp_have);
    }
    amg__kcu_scratch_free(temp, s);
    amg__kcu_scratch_free(keys, s);
    return rc;
}
