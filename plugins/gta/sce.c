/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sce.c - mergekit's sce (select, calculate, erase; merge_methods/sce.py):
 *
 *   TV_i = x_i - base
 *   select_topk < 1: var = population variance over the models of TV at
 *       each element, k = int(count_nonzero(var) * select_topk); TV_i keeps
 *       the k elements of largest var (one mask for every model), none
 *       when k is 0
 *   erase_i = TV_i != 0 and of the sign of sum_i TV_i (zero elects +)
 *   w_i = mean(TV_i^2) / sum_j mean(TV_j^2)    (1/N when the sum < 1e-6)
 *   out = base + sum_i w_i erase_i TV_i / max(sum_i w_i erase_i, 1e-6)
 *
 * The selection and the weights are per tensor, so over row chunks this is
 * three reduce passes and an apply:
 *   pass 0  a level-0 histogram of the var bits, and of the exact zeros
 *           (count_nonzero); its end gives k and the level-0 bin;
 *   pass 1  the level-1 histogram within that bin: the exact threshold and
 *           how many equal values to take (ties to the lower index, as
 *           topk.c; torch.topk leaves their order unspecified);
 *   pass 2  sum (masked TV_i)^2 per model, rows added in row order, so
 *           the weights do not depend on the chunking;
 *   apply   the mask (its tie counter in the statistics), the sign vote,
 *           numerator and denominator from the disjoint merge kernel, the
 *           1e-6 clamp, the division.
 * var is f32 from elementwise kernels in a fixed order, so it is the same
 * on any device: mean = sum_j (1/N) TV_j, var = sum_j (1/N) (TV_j - mean)^2,
 * j in order, each product and sum rounded once.
 */
#include <stdint.h>
#include <string.h>

#include "gta.h"

#define SCE_CLAMP 1e-6f                /* mergekit's divisor floor */
#define SCE_UNIFORM_EPS 1e-6           /* weights below this sum: 1/N */
#define SCE_STACK_ROWS 64u

/* How a tensor's task vectors are masked before the vote. */
enum sce_mode {
    SCE_KEEP_ALL,                      /* select_topk >= 1 */
    SCE_SELECT,                        /* keep the k largest var */
    SCE_KEEP_NONE                      /* select_topk <= 0 or k == 0 */
};

static uint32_t value_bits(float v)
{
    uint32_t b;

    memcpy(&b, &v, sizeof(b));
    return b;
}

static int32_t read_topk(amg_ctx *ctx, const amg_merge_call *call,
                         double *topk)
{
    int32_t rc;

    if (call->n_inputs == 0 || call->n_inputs > GTA_MAX_INPUTS)
        return call->host->fail(ctx, AMG_EINVAL, "%u input models; between "
                                "1 and %u are supported",
                                (unsigned)call->n_inputs, GTA_MAX_INPUTS);
    if (call->base == NULL)
        return call->host->fail(ctx, AMG_EINVAL, "a base model is required");
    rc = call->host->param_f64(call->params, "select_topk", topk);
    if (rc != AMG_OK)
        return call->host->fail(ctx, rc, "cannot read 'select_topk'");
    return AMG_OK;
}

/* The call's temporaries: the task vectors and scratch like out. */
typedef struct sce_tmp {
    amg_tensor *d[GTA_MAX_INPUTS];
    amg_tensor *mean, *var, *dev;      /* F32 */
    amg_tensor *mask;                  /* BOOL */
} sce_tmp;

static int32_t tmp_new(amg_ctx *ctx, const amg_merge_call *call,
                       sce_tmp *t)
{
    const amg_host_api *host = call->host;
    int32_t rc;

    memset(t, 0, sizeof(*t));
    rc = gta_deltas(ctx, call, t->d);
    if (rc == AMG_OK)
        rc = host->tensor_new_like(ctx, call->out, call->out->dl.dtype,
                                   &t->mean);
    if (rc == AMG_OK)
        rc = host->tensor_new_like(ctx, call->out, call->out->dl.dtype,
                                   &t->var);
    if (rc == AMG_OK)
        rc = host->tensor_new_like(ctx, call->out, call->out->dl.dtype,
                                   &t->dev);
    if (rc == AMG_OK)
        rc = host->tensor_new_like(ctx, call->out,
                                   amg_dl_make(AMG_DL_BOOL, 8), &t->mask);
    return rc;
}

static void tmp_release(amg_ctx *ctx, const amg_merge_call *call,
                        sce_tmp *t)
{
    const amg_host_api *host = call->host;

    /* newest first: the host finds those soonest */
    host->tensor_release(ctx, t->mask);
    host->tensor_release(ctx, t->dev);
    host->tensor_release(ctx, t->var);
    host->tensor_release(ctx, t->mean);
    gta_release_deltas(ctx, call, t->d);
}

/* t->var = the population variance of the task vectors per element. */
static int32_t variance(amg_ctx *ctx, const amg_merge_call *call,
                        sce_tmp *t)
{
    const amg_kernels *k = call->k;
    uint32_t j, n = call->n_inputs;
    float inv = 1.0f / (float)n, w[GTA_MAX_INPUTS] = { 0.0f };
    int32_t rc;

    for (j = 0; j < n; j++)
        w[j] = inv;
    rc = k->weighted_sum(ctx, t->mean, (const amg_tensor *const *)t->d, w,
                         n);
    for (j = 0; rc == AMG_OK && j < n; j++) {
        rc = k->axpby(ctx, t->dev, 1.0f, t->d[j], -1.0f, t->mean);
        if (rc == AMG_OK)
            rc = k->mul(ctx, t->dev, t->dev, t->dev);
        /* j = 0: 0 + inv * dev, which is inv * dev (dev^2 is never -0) */
        if (rc == AMG_OK)
            rc = j == 0 ? k->scale(ctx, t->var, inv, t->dev)
                        : k->axpby(ctx, t->var, 1.0f, t->var, inv, t->dev);
    }
    return rc;
}

/* End of pass 0: k = int(count_nonzero(var) * select_topk), in f32 as
 * torch multiplies an int64 count by a Python float. */
static void end_level0(gta_sce_stats *st, double topk)
{
    uint64_t numbers = 0, nonzero;
    uint32_t b;

    for (b = 0; b < GTA_HIST_BINS; b++)
        numbers += st->hist[b];
    nonzero = numbers - st->zeros[0];
    st->k = (uint64_t)((float)nonzero * (float)topk);
    /* a count above 2^24 may round up in f32; torch's topk then takes
     * zeros too, as gta_find_bin does, but never more than there are */
    if (st->k > numbers)
        st->k = numbers;
    if (st->k == 0)
        st->mode = SCE_KEEP_NONE;
    else {
        st->b0 = gta_find_bin(st->hist, st->k, &st->above);
    }
    gta_hist_clear(st->hist);
}

static void end_level1(gta_sce_stats *st)
{
    uint32_t b1;

    if (st->mode != SCE_SELECT)
        return;
    b1 = gta_find_bin(st->hist, st->k, &st->above);
    st->thr = (st->b0 << 16) | b1;
    st->n_ties = st->k - st->above;
}

/* End of pass 2: w_i = mean(TV_i^2) / sum, f64 rounded once to f32. */
static void end_energy(gta_sce_stats *st, uint32_t n, uint64_t numel)
{
    double e[GTA_MAX_INPUTS], sum = 0.0;
    uint32_t j;

    for (j = 0; j < n; j++) {
        e[j] = numel ? st->energy[j] / (double)numel : 0.0;
        sum += e[j];
    }
    for (j = 0; j < n; j++)
        st->w[j] = sum < SCE_UNIFORM_EPS ? 1.0f / (float)n
                                         : (float)(e[j] / sum);
}

/* energy += sum x^2, rows added in row order (row_dot), so the total is
 * the same however the rows were chunked. */
static int32_t add_energy(amg_ctx *ctx, const amg_merge_call *call,
                          const amg_tensor *x, double *energy)
{
    const amg_host_api *host = call->host;
    uint64_t r, rows = amg_tensor_rows(x);
    double stack[SCE_STACK_ROWS], *rs = stack;
    int32_t rc;

    if (rows == 0)
        return AMG_OK;
    if (rows > SCE_STACK_ROWS)
        rs = host->mem_alloc(ctx, rows * sizeof(double), 0);
    if (rs == NULL)
        return host->fail(ctx, AMG_ENOMEM, "out of memory for %llu row "
                          "sums", (unsigned long long)rows);
    rc = call->k->row_dot(ctx, x, x, rs);
    for (r = 0; rc == AMG_OK && r < rows; r++)
        *energy += rs[r];
    if (rs != stack)
        host->mem_free(ctx, rs);
    return rc;
}

/* The task vectors of the call as the tensor's mask leaves them; taken:
 * the tie counter of this pass. */
static int32_t masked_tvs(amg_ctx *ctx, const amg_merge_call *call,
                          gta_sce_stats *st, sce_tmp *t, uint64_t *taken)
{
    const amg_kernels *k = call->k;
    uint32_t j;
    int32_t rc = AMG_OK;

    if (st->mode == SCE_KEEP_ALL)
        return AMG_OK;
    if (st->mode == SCE_KEEP_NONE) {
        for (j = 0; rc == AMG_OK && j < call->n_inputs; j++)
            rc = k->fill(ctx, t->d[j], 0.0f);
        return rc;
    }
    rc = variance(ctx, call, t);
    if (rc == AMG_OK)
        rc = k->threshold_mask(ctx, t->mask, t->var, st->thr, st->n_ties,
                               taken);
    for (j = 0; rc == AMG_OK && j < call->n_inputs; j++)
        rc = k->mask_apply(ctx, t->d[j], t->d[j], t->mask);
    return rc;
}

static int32_t reduce_block(void *inst, amg_ctx *ctx,
                            const amg_merge_call *call, void *stats)
{
    const amg_kernels *k = call->k;
    gta_sce_stats *st = stats;
    int last = call->row_end == call->rows_total;
    double topk;
    sce_tmp t;
    uint32_t j;
    int32_t rc;

    (void)inst;
    rc = read_topk(ctx, call, &topk);
    if (rc != AMG_OK)
        return rc;
    if (call->pass == 0 && call->row_begin == 0)
        st->mode = topk >= 1.0 ? SCE_KEEP_ALL
                 : topk <= 0.0 ? SCE_KEEP_NONE : SCE_SELECT;
    /* nothing to count: no selection, or the weights of masked zeros */
    if (call->pass < 2 && st->mode != SCE_SELECT)
        return AMG_OK;
    if (call->pass == 2 && st->mode == SCE_KEEP_NONE) {
        if (last)
            end_energy(st, call->n_inputs, call->out->full_numel);
        return AMG_OK;
    }
    rc = tmp_new(ctx, call, &t);
    if (rc == AMG_OK && call->pass < 2)
        rc = variance(ctx, call, &t);
    if (rc == AMG_OK && call->pass == 0) {
        rc = k->abs_histogram(ctx, t.var, 0, 0, st->hist);
        if (rc == AMG_OK)
            rc = k->abs_histogram(ctx, t.var, 1, 0, st->zeros);
        if (rc == AMG_OK && last)
            end_level0(st, topk);
    } else if (rc == AMG_OK && call->pass == 1) {
        rc = k->abs_histogram(ctx, t.var, 1, st->b0, st->hist);
        if (rc == AMG_OK && last)
            end_level1(st);
    } else if (rc == AMG_OK) {
        rc = masked_tvs(ctx, call, st, &t, &st->taken[0]);
        for (j = 0; rc == AMG_OK && j < call->n_inputs; j++)
            rc = add_energy(ctx, call, t.d[j], &st->energy[j]);
        if (rc == AMG_OK && last)
            end_energy(st, call->n_inputs, call->out->full_numel);
    }
    tmp_release(ctx, call, &t);
    return rc;
}

/* out = sum_i w_i erase_i TV_i / max(sum_i w_i erase_i, 1e-6). The
 * numerator is the disjoint merge of the TV (a TV of 0 adds 0 whether
 * counted or not); the denominator the disjoint merge of sign(TV_i), which
 * is the elected sign times sum_i w_i erase_i (w_i > 0 keeps each sign;
 * a w_i of 0 adds 0 either way). */
static int32_t erase_merge(amg_ctx *ctx, const amg_merge_call *call,
                           const gta_sce_stats *st, sce_tmp *t)
{
    const amg_kernels *k = call->k;
    const amg_tensor *const *dc = (const amg_tensor *const *)t->d;
    amg_tensor *sign = t->mean, *den = t->var, *floor = t->dev;
    float ones[GTA_MAX_INPUTS];
    uint64_t taken = 0;
    uint32_t j, n = call->n_inputs;
    int32_t rc;

    for (j = 0; j < n; j++)
        ones[j] = 1.0f;
    rc = k->sign_elect(ctx, sign, dc, ones, n, AMG_SIGN_BY_SUM);
    if (rc == AMG_OK)
        rc = k->disjoint_merge(ctx, call->out, dc, st->w, n, sign, 0);
    for (j = 0; rc == AMG_OK && j < n; j++)
        rc = k->sign(ctx, t->d[j], t->d[j]);
    if (rc == AMG_OK)
        rc = k->disjoint_merge(ctx, den, dc, st->w, n, sign, 0);
    if (rc == AMG_OK)
        rc = k->mul(ctx, den, den, sign);
    /* D >= 1e-6 keeps D (every equal value taken), else 1e-6 */
    if (rc == AMG_OK)
        rc = k->threshold_mask(ctx, t->mask, den, value_bits(SCE_CLAMP),
                               UINT64_MAX, &taken);
    if (rc == AMG_OK)
        rc = k->fill(ctx, floor, SCE_CLAMP);
    if (rc == AMG_OK)
        rc = k->where(ctx, den, t->mask, den, floor);
    if (rc == AMG_OK)
        rc = k->div(ctx, call->out, call->out, den);
    if (rc == AMG_OK)
        rc = k->axpby(ctx, call->out, 1.0f, call->base, 1.0f, call->out);
    return rc;
}

static int32_t apply_block(void *inst, amg_ctx *ctx,
                           const amg_merge_call *call, void *stats)
{
    gta_sce_stats *st = stats;
    double topk;
    sce_tmp t;
    int32_t rc;

    (void)inst;
    memset(&t, 0, sizeof(t));
    rc = read_topk(ctx, call, &topk);
    if (rc == AMG_OK)
        rc = tmp_new(ctx, call, &t);
    if (rc == AMG_OK)
        rc = masked_tvs(ctx, call, st, &t, &st->taken[1]);
    if (rc == AMG_OK)
        rc = erase_merge(ctx, call, st, &t);
    tmp_release(ctx, call, &t);
    return rc;
}

int32_t gta_sce_reduce(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                       void *stats)
{
    return gta_blocked(inst, ctx, call, stats, reduce_block);
}

int32_t gta_sce_apply(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                      void *stats)
{
    return gta_blocked(inst, ctx, call, stats, apply_block);
}

int32_t gta_sce_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call)
{
    return gta_merge_passes(inst, ctx, call, sizeof(gta_sce_stats),
                            GTA_SCE_PASSES, gta_sce_reduce, gta_sce_apply);
}
