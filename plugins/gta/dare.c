/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dare.c - DARE's random drop (mergekit's `random` sparsifier): each
 * element of model i's task vector is kept with probability density_i,
 * drawn from the counter-based RNG with stream i, so a mask depends only
 * on (pipeline seed, tensor name, model index, element) and is the same
 * on any -j, chunking or device.
 *
 * Rescale (when `rescale` is on): mergekit's L1 rule by default, one
 * factor per tensor and model, sum|d| / sum|kept d| (skipped when either
 * is below 1e-7); it needs the whole tensor, hence one reduce pass that
 * draws the masks and sums both norms row by row, keeping the masks for
 * apply (maskbits.c). rescale_mode: inverse is the paper's per-element
 * 1/density instead.
 */
#include <stdint.h>

#include "gta.h"

static int32_t draw_mask(amg_ctx *ctx, const amg_merge_call *call,
                         const gta_opts *o, uint32_t i, amg_tensor *mask)
{
    return call->k->rng_bernoulli(ctx, mask, o->density[i], call->seed, i);
}

static int32_t reduce_block(void *inst, amg_ctx *ctx,
                            const amg_merge_call *call, void *stats)
{
    const amg_host_api *host = call->host;
    gta_mask_stats *st = stats;
    amg_tensor *mask = NULL, *d = NULL;
    gta_opts o;
    uint32_t i;
    int cache;
    int32_t rc;

    rc = gta_read_opts(ctx, call, inst, &o);
    if (rc != AMG_OK || !o.rescale || o.inverse)
        return rc;
    cache = gta_mask_cached(call, 1, st);
    /* one delta and one mask for all the models of the call */
    rc = host->tensor_new_like(ctx, call->out, amg_dl_make(AMG_DL_BOOL, 8),
                               &mask);
    if (rc == AMG_OK)
        rc = host->tensor_new_like(ctx, call->out, call->out->dl.dtype, &d);
    for (i = 0; rc == AMG_OK && i < o.n; i++) {
        if (o.density[i] >= 1.0)
            continue;
        rc = gta_delta_to(ctx, call, i, d);
        if (rc == AMG_OK)
            rc = draw_mask(ctx, call, &o, i, mask);
        if (rc == AMG_OK)
            rc = gta_l1_rows(ctx, call, d, mask, &st->l1_all[i],
                             &st->l1_kept[i]);
        if (rc == AMG_OK && cache)
            gta_mask_store(st, call, i, mask);
    }
    host->tensor_release(ctx, d);
    host->tensor_release(ctx, mask);
    return rc;
}

static int32_t rescale_model(amg_ctx *ctx, const amg_merge_call *call,
                             const gta_opts *o, uint32_t i,
                             const gta_mask_stats *st, amg_tensor *d)
{
    float f;

    if (!o->rescale)
        return AMG_OK;
    if (o->inverse) {
        /* density 0 keeps nothing: there is nothing to scale */
        if (o->density[i] <= 0.0)
            return AMG_OK;
        f = (float)(1.0 / o->density[i]);
    } else {
        f = gta_l1_factor(st->l1_all[i], st->l1_kept[i]);
    }
    return f == 1.0f ? AMG_OK : call->k->scale(ctx, d, f, d);
}

static int32_t apply_block(void *inst, amg_ctx *ctx,
                           const amg_merge_call *call, void *stats)
{
    gta_mask_stats *st = stats;
    amg_tensor *d[GTA_MAX_INPUTS] = { NULL }, *mask = NULL;
    gta_opts o;
    uint32_t i;
    int cache;
    int32_t rc;

    rc = gta_read_opts(ctx, call, inst, &o);
    if (rc == AMG_OK)
        rc = gta_deltas(ctx, call, d);
    if (rc == AMG_OK)
        rc = call->host->tensor_new_like(ctx, call->out,
                                         amg_dl_make(AMG_DL_BOOL, 8), &mask);
    cache = rc == AMG_OK && gta_mask_cached(call, o.rescale && !o.inverse,
                                            st);
    for (i = 0; rc == AMG_OK && i < o.n; i++) {
        if (o.density[i] >= 1.0)
            continue;              /* mergekit returns the tensor as is */
        if (cache)
            gta_mask_load(st, call, i, mask);
        else
            rc = draw_mask(ctx, call, &o, i, mask);
        if (rc == AMG_OK)
            rc = call->k->mask_apply(ctx, d[i], d[i], mask);
        if (rc == AMG_OK)
            rc = rescale_model(ctx, call, &o, i, st, d[i]);
    }
    if (rc == AMG_OK)
        rc = gta_combine(ctx, call, &o, d);
    call->host->tensor_release(ctx, mask);
    gta_release_deltas(ctx, call, d);
    return rc;
}

int32_t gta_dare_reduce(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                        void *stats)
{
    return gta_blocked(inst, ctx, call, stats, reduce_block);
}

int32_t gta_dare_apply(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                       void *stats)
{
    return gta_blocked(inst, ctx, call, stats, apply_block);
}

int32_t gta_dare_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call)
{
    return gta_mask_merge(inst, ctx, call, gta_dare_reduce, gta_dare_apply);
}
