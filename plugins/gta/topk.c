/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topk.c - exact per-tensor magnitude selection over row chunks, for ties
 * (keep the k largest |d|) and breadcrumbs (keep ranks [n_top, k) of |d|,
 * largest first).
 *
 * Ranks order |d| by its f32 bit pattern, largest first, equal magnitudes
 * by lower element index (mergekit's argsort leaves that order
 * unspecified). A selection of the k first ranks is found without sorting:
 *   pass 0  a 64 Ki-bin histogram of the high 16 bits of |d| per model
 *           (and sum |d| when rescaling); its end finds the bin b0 holding
 *           the k-th largest and how many lie above that bin;
 *   pass 1  a histogram of the low 16 bits within b0 (and the sum of |d|
 *           above b0); its end gives the exact threshold bits, how many
 *           elements equal to it to take, and the L1 norm of the selection;
 *   apply   threshold_mask per chunk in row order, its tie counter kept in
 *           the statistics, so exactly k elements are kept overall.
 * The answer is the same for the whole tensor and for any chunking.
 */
#include <stdint.h>
#include <string.h>

#include "gta.h"

#define GTA_NONE_THR 0xFFFFFFFFu       /* above every |x| pattern */

static float bits_value(uint32_t b)
{
    float v;

    memcpy(&v, &b, sizeof(v));
    return v;
}

/* The number of elements of model i the method keeps; sets m->trim and the
 * selections. Called at the first chunk of pass 0. */
static int32_t setup_model(amg_ctx *ctx, const amg_merge_call *call,
                           const gta_opts *o, uint32_t i, gta_model *m)
{
    uint64_t k_keep, k_drop = 0;
    int32_t rc;

    memset(m->sel, 0, sizeof(m->sel));
    m->l1_all = m->l1_kept = 0.0;
    m->trim = o->density[i] < 1.0;
    if (!m->trim)
        return AMG_OK;
    if (o->m->sparsify == GTA_SPARSE_OUTLIERS) {
        rc = gta_outliers_counts(ctx, call, o, i, &k_keep, &k_drop);
        if (rc != AMG_OK)
            return rc;
        m->n_sel = 2;
    } else {
        k_keep = (uint64_t)(o->density[i] * (double)o->numel);
        /* mergekit asserts here; the numel makes it a per-tensor error */
        if (k_keep == 0)
            return call->host->fail(ctx, AMG_EINVAL, "density %g of input "
                                    "model %u keeps no element of '%s' (%llu "
                                    "elements)", o->density[i],
                                    (unsigned)i + 1, call->tensor_name,
                                    (unsigned long long)o->numel);
        m->n_sel = 1;
    }
    m->sel[0].k = k_keep;
    m->sel[1].k = k_drop;
    return AMG_OK;
}

uint32_t gta_find_bin(const uint64_t *hist, uint64_t k, uint64_t *above)
{
    uint32_t b = GTA_HIST_BINS - 1;

    while (*above + hist[b] < k) {
        *above += hist[b];
        b--;
    }
    return b;
}

void gta_hist_clear(uint64_t *hist)
{
    uint32_t b;

    for (b = 0; b < GTA_HIST_BINS; b++)
        if (hist[b] != 0)
            hist[b] = 0;
}

/* End of pass 0: the level-0 bin of each selection, or its final answer
 * when it takes nothing or every number. */
static void end_level0(gta_model *m)
{
    uint64_t numbers = 0;
    uint32_t b, s;

    for (b = 0; b < GTA_HIST_BINS; b++)
        numbers += m->hist[0][b];
    for (s = 0; s < m->n_sel; s++) {
        gta_sel *sel = &m->sel[s];

        if (sel->k == 0) {
            sel->thr = GTA_NONE_THR;
            sel->resolved = 1;
        } else if (sel->k >= numbers) {
            /* every number (NaN is never selected) */
            sel->thr = 0;
            sel->n_ties = UINT64_MAX;
            sel->l1 = m->l1_all;
            sel->resolved = 1;
        } else {
            sel->b0 = gta_find_bin(m->hist[0], sel->k, &sel->above);
        }
    }
    /* hist[0] serves selection 0's second level */
    gta_hist_clear(m->hist[0]);
}

/* End of pass 1: threshold, ties to take and the L1 norm of the
 * selection, the part within b0 summed from the histogram (every element
 * of a bin has the same value). */
static void end_level1(gta_model *m)
{
    uint32_t s, v;

    for (s = 0; s < m->n_sel; s++) {
        gta_sel *sel = &m->sel[s];
        const uint64_t *h = m->hist[s];
        uint32_t b1;

        if (sel->resolved)
            continue;
        b1 = gta_find_bin(h, sel->k, &sel->above);
        sel->thr = (sel->b0 << 16) | b1;
        sel->n_ties = sel->k - sel->above;
        sel->l1 = sel->l1_above;
        for (v = GTA_HIST_BINS - 1; v > b1; v--)
            sel->l1 += (double)h[v] * bits_value((sel->b0 << 16) | v);
        sel->l1 += (double)sel->n_ties * bits_value(sel->thr);
        sel->resolved = 1;
    }
    m->l1_kept = m->sel[0].l1 - (m->n_sel > 1 ? m->sel[1].l1 : 0.0);
}

/* Pass 1 with rescale: sum |d| over the elements above selection s's
 * level-0 bin (mask: bool scratch like d). */
static int32_t l1_above_bin(amg_ctx *ctx, const amg_merge_call *call,
                            gta_sel *sel, const amg_tensor *d,
                            amg_tensor *mask)
{
    uint64_t none = 0;
    int32_t rc;

    rc = call->k->threshold_mask(ctx, mask, d, (sel->b0 << 16) | 0xFFFFu, 0,
                                 &none);
    if (rc == AMG_OK)
        rc = gta_l1_rows(ctx, call, d, mask, NULL, &sel->l1_above);
    return rc;
}

/* Pass 1 has nothing to count for a model whose selections pass 0
 * already settled (k of 0 or of every element). */
static int pass_needed(const amg_merge_call *call, const gta_model *m)
{
    uint32_t s;

    if (call->pass == 0)
        return 1;
    for (s = 0; s < m->n_sel; s++)
        if (!m->sel[s].resolved)
            return 1;
    return 0;
}

static int32_t reduce_model(amg_ctx *ctx, const amg_merge_call *call,
                            const gta_opts *o, gta_model *m,
                            const amg_tensor *d, amg_tensor *mask)
{
    uint32_t s;
    int32_t rc = AMG_OK;

    if (call->pass == 0) {
        rc = call->k->abs_histogram(ctx, d, 0, 0, m->hist[0]);
        if (rc == AMG_OK && o->rescale)
            rc = gta_l1_rows(ctx, call, d, NULL, &m->l1_all, NULL);
        return rc;
    }
    for (s = 0; rc == AMG_OK && s < m->n_sel; s++) {
        if (m->sel[s].resolved)
            continue;
        rc = call->k->abs_histogram(ctx, d, 1, m->sel[s].b0, m->hist[s]);
        if (rc == AMG_OK && o->rescale)
            rc = l1_above_bin(ctx, call, &m->sel[s], d, mask);
    }
    return rc;
}

static int32_t reduce_block(void *inst, amg_ctx *ctx,
                            const amg_merge_call *call, void *stats)
{
    const amg_host_api *host = call->host;
    gta_stats *st = stats;
    amg_tensor *mask = NULL, *d = NULL;
    gta_opts o;
    uint32_t i;
    int32_t rc;

    rc = gta_read_opts(ctx, call, inst, &o);
    /* one delta and one mask for all the models of the call */
    if (rc == AMG_OK && o.rescale && call->pass == 1)
        rc = host->tensor_new_like(ctx, call->out,
                                   amg_dl_make(AMG_DL_BOOL, 8), &mask);
    if (rc == AMG_OK)
        rc = host->tensor_new_like(ctx, call->out, call->out->dl.dtype, &d);
    for (i = 0; rc == AMG_OK && i < o.n; i++) {
        gta_model *m = &st->model[i];

        if (call->pass == 0 && call->row_begin == 0)
            rc = setup_model(ctx, call, &o, i, m);
        if (rc != AMG_OK || !m->trim)
            continue;
        if (pass_needed(call, m)) {
            rc = gta_delta_to(ctx, call, i, d);
            if (rc == AMG_OK)
                rc = reduce_model(ctx, call, &o, m, d, mask);
        }
        if (rc != AMG_OK || call->row_end != call->rows_total)
            continue;
        if (call->pass == 0)
            end_level0(m);
        else
            end_level1(m);
    }
    host->tensor_release(ctx, d);
    host->tensor_release(ctx, mask);
    return rc;
}

/* d = the selected elements of d (kept: sel[0] and, for breadcrumbs, not
 * sel[1]), times the L1 factor when rescaling. */
static int32_t sparsify_model(amg_ctx *ctx, const amg_merge_call *call,
                              const gta_opts *o, gta_model *m, amg_tensor *d,
                              amg_tensor *const *scratch)
{
    const amg_kernels *k = call->k;
    gta_sel *keep = &m->sel[0], *drop = &m->sel[1];
    int32_t rc = AMG_OK;

    /* the drop mask is taken from the unmasked d, before keep zeroes it */
    if (m->n_sel > 1)
        rc = k->threshold_mask(ctx, scratch[1], d, drop->thr, drop->n_ties,
                               &drop->taken);
    if (rc == AMG_OK)
        rc = k->threshold_mask(ctx, scratch[0], d, keep->thr, keep->n_ties,
                               &keep->taken);
    if (rc == AMG_OK)
        rc = k->mask_apply(ctx, d, d, scratch[0]);
    if (rc == AMG_OK && m->n_sel > 1) {
        rc = k->fill(ctx, scratch[2], 0.0f);
        if (rc == AMG_OK)
            rc = k->where(ctx, d, scratch[1], scratch[2], d);
    }
    if (rc == AMG_OK && o->rescale) {
        float f = gta_l1_factor(m->l1_all, m->l1_kept);

        if (f != 1.0f)
            rc = k->scale(ctx, d, f, d);
    }
    return rc;
}

static int32_t apply_block(void *inst, amg_ctx *ctx,
                           const amg_merge_call *call, void *stats)
{
    const amg_host_api *host = call->host;
    gta_stats *st = stats;
    amg_tensor *d[GTA_MAX_INPUTS] = { NULL };
    amg_tensor *scratch[3] = { NULL, NULL, NULL };
    gta_opts o;
    uint32_t i;
    int32_t rc;

    rc = gta_read_opts(ctx, call, inst, &o);
    if (rc == AMG_OK)
        rc = gta_deltas(ctx, call, d);
    if (rc == AMG_OK)
        rc = host->tensor_new_like(ctx, call->out,
                                   amg_dl_make(AMG_DL_BOOL, 8), &scratch[0]);
    if (rc == AMG_OK)
        rc = host->tensor_new_like(ctx, call->out,
                                   amg_dl_make(AMG_DL_BOOL, 8), &scratch[1]);
    if (rc == AMG_OK)
        rc = host->tensor_new_like(ctx, call->out, call->out->dl.dtype,
                                   &scratch[2]);
    for (i = 0; rc == AMG_OK && i < o.n; i++)
        if (st->model[i].trim)
            rc = sparsify_model(ctx, call, &o, &st->model[i], d[i], scratch);
    if (rc == AMG_OK)
        rc = gta_combine(ctx, call, &o, d);
    /* newest first: the host finds those soonest */
    for (i = 3; i > 0; i--)
        host->tensor_release(ctx, scratch[i - 1]);
    gta_release_deltas(ctx, call, d);
    return rc;
}

int32_t gta_topk_reduce(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                        void *stats)
{
    return gta_blocked(inst, ctx, call, stats, reduce_block);
}

int32_t gta_topk_apply(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                       void *stats)
{
    return gta_blocked(inst, ctx, call, stats, apply_block);
}

int32_t gta_topk_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call)
{
    return gta_merge_two_pass(inst, ctx, call, 2, gta_topk_reduce,
                              gta_topk_apply);
}
