/* SPDX-License-Identifier: Apache-2.0 */
/*
 * della.c - DELLA's MagPrune (mergekit's della_magprune sparsifier; Deep
 * et al., arXiv 2406.11617): element c of a row of model i's task vector
 * is kept with a probability that grows with its magnitude rank in the row,
 *
 *   p = (density_i - epsilon_i) + rank_norm * 2 * epsilon_i
 *
 * rank_norm in [0, 1] from the row_abs_rank kernel, the arithmetic in f32
 * in mergekit's order (its scalars rounded to f32 as torch rounds them), so
 * p is the same number mergekit forms. An element is kept when the uniform
 * of (tensor seed, stream i, element) is below p: DARE's draws, with a p
 * per element, so masks do not depend on -j, chunking or device.
 *
 * Rescale: mergekit's L1 factor per tensor and model by default (one
 * reduce pass sums both norms), or the paper's 1/p per kept element with
 * rescale_mode: inverse.
 *
 * A 1-D tensor is one row, ranked whole: the host never splits one into
 * row chunks (plugin.h), so every call holds whole rows.
 *
 * The L1 sums need every keep mask before apply can scale, and a mask
 * costs a rank of its row, most of della's time. So reduce keeps the
 * masks it draws in the statistics block, a bit per element, when they
 * fit and live in host memory, and apply reads them back instead of
 * drawing them again: the same bits, half the ranks.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gta.h"

typedef struct della_opts {
    gta_opts g;
    double eps[GTA_MAX_INPUTS];
} della_opts;

/* Temporaries of one call, reused model after model. */
typedef struct della_tmp {
    amg_tensor *p;                     /* F32: rank_norm, then p */
    amg_tensor *t;                     /* F32 scratch */
    amg_tensor *mask;                  /* bool */
} della_tmp;

static int sparsified(const della_opts *o, uint32_t i)
{
    /* mergekit returns the tensor at density 1 and zeros at density 0 */
    return o->g.density[i] > 0.0 && o->g.density[i] < 1.0;
}

static int32_t read_epsilon(amg_ctx *ctx, const amg_merge_call *call,
                            della_opts *o, uint32_t i)
{
    const amg_host_api *host = call->host;
    double eps;
    int32_t rc;

    rc = host->param_f64(call->input_params[i], "epsilon", &eps);
    if (rc != AMG_OK)
        return host->fail(ctx, rc, "cannot read 'epsilon' of input model %u",
                          (unsigned)i + 1);
    o->eps[i] = eps;
    /* mergekit checks the window only where it sparsifies */
    if (sparsified(o, i) &&
        (o->g.density[i] - eps <= 0.0 || o->g.density[i] + eps >= 1.0))
        return host->fail(ctx, AMG_ERANGE, "density %g ± epsilon %g of "
                          "input model %u leaves (0, 1)", o->g.density[i],
                          eps, (unsigned)i + 1);
    return AMG_OK;
}

static int32_t read_opts(amg_ctx *ctx, const amg_merge_call *call,
                         void *inst, della_opts *o)
{
    const amg_host_api *host = call->host;
    const char *s;
    uint32_t i;
    int32_t rc;

    rc = gta_read_opts(ctx, call, inst, &o->g);
    if (rc != AMG_OK)
        return rc;
    if (call->k->row_abs_rank == NULL)
        return host->fail(ctx, AMG_EUNSUPPORTED, "the host's kernel table "
                          "has no row_abs_rank (the host is older than "
                          "this plugin)");
    rc = host->param_str(call->params, "rescale_mode", &s);
    if (rc != AMG_OK)
        return host->fail(ctx, rc, "cannot read 'rescale_mode'");
    o->g.inverse = strcmp(s, "inverse") == 0;
    for (i = 0; rc == AMG_OK && i < o->g.n; i++)
        rc = read_epsilon(ctx, call, o, i);
    return rc;
}

static int32_t new_tmp(amg_ctx *ctx, const amg_merge_call *call,
                       della_tmp *tm)
{
    const amg_host_api *host = call->host;
    int32_t rc;

    rc = host->tensor_new_like(ctx, call->out, call->out->dl.dtype, &tm->p);
    if (rc == AMG_OK)
        rc = host->tensor_new_like(ctx, call->out, call->out->dl.dtype,
                                   &tm->t);
    if (rc == AMG_OK)
        rc = host->tensor_new_like(ctx, call->out,
                                   amg_dl_make(AMG_DL_BOOL, 8), &tm->mask);
    return rc;
}

static void free_tmp(amg_ctx *ctx, const amg_merge_call *call,
                     della_tmp *tm)
{
    /* newest first: the host finds those soonest */
    call->host->tensor_release(ctx, tm->mask);
    call->host->tensor_release(ctx, tm->t);
    call->host->tensor_release(ctx, tm->p);
}

/* ---- the sparsifier ---- */

/* tm->p = (density - eps) + rank_norm * 2 * eps. torch multiplies an f32
 * tensor by a Python float as f32, so 2 * (float)eps (exact) times
 * rank_norm rounds as (rank_norm * 2) * eps does; density - eps is a
 * double rounded once to f32 before the add. axpby rounds each product to
 * f32 before the sum (no FMA), so one call forms both steps, and 1 * c is
 * c exactly. */
static int32_t keep_prob(amg_ctx *ctx, const amg_merge_call *call,
                         const della_opts *o, uint32_t i,
                         const amg_tensor *d, della_tmp *tm)
{
    const amg_kernels *k = call->k;
    double dens = o->g.density[i], eps = o->eps[i];
    int32_t rc;

    rc = k->row_abs_rank(ctx, tm->p, d);
    if (rc == AMG_OK)
        rc = k->fill(ctx, tm->t, (float)(dens - eps));
    if (rc == AMG_OK)
        rc = k->axpby(ctx, tm->p, 2.0f * (float)eps, tm->p, 1.0f, tm->t);
    return rc;
}

/* mask = u < p for the uniforms u of stream i. The f32 difference p - u
 * of two distinct values is never 0 and has the sign of p - u, so
 * (p - u) + |p - u| is positive exactly where u < p and +0 elsewhere (NaN
 * where p is, never selected): the mask is its nonzero elements.
 * Overwrites tm->p. */
static int32_t draw_mask(amg_ctx *ctx, const amg_merge_call *call,
                         uint32_t i, della_tmp *tm)
{
    const amg_kernels *k = call->k;
    uint64_t none = 0;
    int32_t rc;

    rc = k->rng_uniform(ctx, tm->t, call->seed, i);
    if (rc == AMG_OK)
        rc = k->axpby(ctx, tm->t, 1.0f, tm->p, -1.0f, tm->t);
    if (rc == AMG_OK)
        rc = k->abs(ctx, tm->p, tm->t);
    if (rc == AMG_OK)
        rc = k->axpby(ctx, tm->t, 1.0f, tm->t, 1.0f, tm->p);
    /* |x| above the pattern of +0, no ties: x != 0 and not NaN */
    if (rc == AMG_OK)
        rc = k->threshold_mask(ctx, tm->mask, tm->t, 0, 0, &none);
    return rc;
}

static int32_t reduce_block(void *inst, amg_ctx *ctx,
                            const amg_merge_call *call, void *stats)
{
    gta_mask_stats *st = stats;
    amg_tensor *d = NULL;
    della_opts o;
    della_tmp tm = { NULL, NULL, NULL };
    uint32_t i;
    int cache;
    int32_t rc;

    rc = read_opts(ctx, call, inst, &o);
    /* only mergekit's L1 rescale needs the sums */
    if (rc != AMG_OK || !o.g.rescale || o.g.inverse)
        return rc;
    cache = gta_mask_cached(call, 1, st);
    rc = new_tmp(ctx, call, &tm);
    /* one delta for all the models of the call */
    if (rc == AMG_OK)
        rc = call->host->tensor_new_like(ctx, call->out, call->out->dl.dtype,
                                         &d);
    for (i = 0; rc == AMG_OK && i < o.g.n; i++) {
        if (!sparsified(&o, i))
            continue;
        rc = gta_delta_to(ctx, call, i, d);
        if (rc == AMG_OK)
            rc = keep_prob(ctx, call, &o, i, d, &tm);
        if (rc == AMG_OK)
            rc = draw_mask(ctx, call, i, &tm);
        if (rc == AMG_OK)
            rc = gta_l1_rows(ctx, call, d, tm.mask, &st->l1_all[i],
                             &st->l1_kept[i]);
        if (rc == AMG_OK && cache)
            gta_mask_store(st, call, i, tm.mask);
    }
    call->host->tensor_release(ctx, d);
    free_tmp(ctx, call, &tm);
    return rc;
}

static int32_t sparsify_model(amg_ctx *ctx, const amg_merge_call *call,
                              const della_opts *o, gta_mask_stats *st,
                              uint32_t i, amg_tensor *d, della_tmp *tm)
{
    const amg_kernels *k = call->k;
    float f;
    int32_t rc;

    if (o->g.density[i] >= 1.0)
        return AMG_OK;
    if (o->g.density[i] <= 0.0)
        return k->fill(ctx, d, 0.0f);
    if (gta_mask_cached(call, o->g.rescale && !o->g.inverse, st)) {
        gta_mask_load(st, call, i, tm->mask);
        rc = AMG_OK;
    } else {
        rc = keep_prob(ctx, call, o, i, d, tm);
        /* before the mask, which zeroes whatever a dropped element
         * became */
        if (rc == AMG_OK && o->g.rescale && o->g.inverse)
            rc = k->div(ctx, d, d, tm->p);
        if (rc == AMG_OK)
            rc = draw_mask(ctx, call, i, tm);
    }
    if (rc == AMG_OK)
        rc = k->mask_apply(ctx, d, d, tm->mask);
    if (rc != AMG_OK || !o->g.rescale || o->g.inverse)
        return rc;
    f = gta_l1_factor(st->l1_all[i], st->l1_kept[i]);
    return f == 1.0f ? AMG_OK : k->scale(ctx, d, f, d);
}

static int32_t apply_block(void *inst, amg_ctx *ctx,
                           const amg_merge_call *call, void *stats)
{
    gta_mask_stats *st = stats;
    amg_tensor *d[GTA_MAX_INPUTS] = { NULL };
    della_opts o;
    della_tmp tm = { NULL, NULL, NULL };
    uint32_t i;
    int32_t rc;

    rc = read_opts(ctx, call, inst, &o);
    if (rc == AMG_OK)
        rc = gta_deltas(ctx, call, d);
    if (rc == AMG_OK)
        rc = new_tmp(ctx, call, &tm);
    for (i = 0; rc == AMG_OK && i < o.g.n; i++)
        rc = sparsify_model(ctx, call, &o, st, i, d[i], &tm);
    if (rc == AMG_OK)
        rc = gta_combine(ctx, call, &o.g, d);
    free_tmp(ctx, call, &tm);
    gta_release_deltas(ctx, call, d);
    return rc;
}

int32_t gta_della_reduce(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                         void *stats)
{
    return gta_blocked(inst, ctx, call, stats, reduce_block);
}

int32_t gta_della_apply(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                        void *stats)
{
    return gta_blocked(inst, ctx, call, stats, apply_block);
}

int32_t gta_della_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call)
{
    return gta_mask_merge(inst, ctx, call, gta_della_reduce, gta_della_apply);
}
