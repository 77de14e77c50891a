/* SPDX-License-Identifier: Apache-2.0 */
/*
 * breadcrumbs.c - Model Breadcrumbs' selection counts (mergekit's
 * magnitude_outliers): drop the gamma share of largest |d| and enough of
 * the smallest that density of the tensor is kept. The selection itself is
 * topk.c's: keep the first k_keep ranks of |d|, largest first, minus the
 * first k_drop.
 *
 *   target = int(density * N), n_top = int(gamma * N),
 *   n_bot  = N - target - n_top; if n_bot < 0: n_top += n_bot, n_bot = 0
 *   kept   = ranks [n_top, N - n_bot)
 *
 * Older mergekit releases kept sorted[n_bot : -n_top], which is empty when
 * n_top is 0 (gamma * N < 1, e.g. a norm vector of fewer than 100 elements
 * with the default gamma) and zeroed the whole task vector; mergekit 0.1.5
 * keeps sorted[n_bot : n_bot + target], and so does this: n_top = 0 drops
 * nothing from the top (the interop suite compares the two).
 */
#include <stdint.h>

#include "gta.h"

int32_t gta_outliers_counts(amg_ctx *ctx, const amg_merge_call *call,
                            const gta_opts *o, uint32_t i, uint64_t *k_keep,
                            uint64_t *k_drop)
{
    uint64_t n = o->numel;
    uint64_t target = (uint64_t)(o->density[i] * (double)n);
    uint64_t n_top = (uint64_t)(o->gamma[i] * (double)n);
    uint64_t n_bot;

    (void)ctx;
    (void)call;
    if (target > n)
        target = n;
    if (n_top > n - target)
        n_top = n - target;        /* n_bot would be negative */
    n_bot = n - target - n_top;
    *k_keep = n - n_bot;
    *k_drop = n_top;
    return AMG_OK;
}
