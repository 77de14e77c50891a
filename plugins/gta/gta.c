/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gta.c - the core every GTA strategy shares: options, task vectors, the
 * final mix (plain or by sign consensus), normalisation and lambda, L1 sums
 * that do not depend on chunking, and the whole-tensor form of the
 * two-pass strategies. task_arithmetic is this core alone.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gta.h"

/* mergekit's guards: a divisor this small counts as 1, and the L1 rescale
 * is skipped when either norm is below its eps */
#define GTA_DIVISOR_EPS 1e-8f
#define GTA_RESCALE_EPS 1e-7

void *gta_instance(const gta_method *m)
{
    /* instances are read-only; the host only passes the pointer back */
    union {
        const gta_method *c;
        void *v;
    } u;

    u.c = m;
    return u.v;
}

static int32_t read_global(amg_ctx *ctx, const amg_merge_call *call,
                           gta_opts *o)
{
    const amg_host_api *host = call->host;
    const char *s;
    double lambda;
    int32_t rc;

    rc = host->param_bool(call->params, "normalize", &o->normalize);
    if (rc == AMG_OK)
        rc = host->param_bool(call->params, "rescale", &o->rescale);
    if (rc == AMG_OK)
        rc = host->param_f64(call->params, "lambda", &lambda);
    if (rc != AMG_OK)
        return host->fail(ctx, rc, "cannot read 'normalize', 'rescale' or "
                          "'lambda'");
    o->lambda = (float)lambda;
    o->rule = AMG_SIGN_BY_SUM;
    if (o->m->consensus) {
        rc = host->param_str(call->params, "consensus", &s);
        if (rc != AMG_OK)
            return host->fail(ctx, rc, "cannot read 'consensus'");
        o->rule = strcmp(s, "count") == 0 ? AMG_SIGN_BY_COUNT
                                          : AMG_SIGN_BY_SUM;
    }
    o->inverse = 0;
    if (o->m->sparsify == GTA_SPARSE_RANDOM) {
        rc = host->param_str(call->params, "rescale_mode", &s);
        if (rc != AMG_OK)
            return host->fail(ctx, rc, "cannot read 'rescale_mode'");
        o->inverse = strcmp(s, "inverse") == 0;
    }
    return AMG_OK;
}

static int32_t read_model(amg_ctx *ctx, const amg_merge_call *call,
                          gta_opts *o, uint32_t i)
{
    const amg_host_api *host = call->host;
    const amg_params *p = call->input_params[i];
    double w;
    int32_t rc;

    rc = host->param_f64(p, "weight", &w);
    if (rc != AMG_OK)
        return host->fail(ctx, rc, "cannot read 'weight' of input model %u",
                          (unsigned)i + 1);
    o->w[i] = (float)w;
    rc = host->param_f64(p, "density", &o->density[i]);
    if (rc != AMG_OK)
        return host->fail(ctx, rc, "cannot read 'density' of input model "
                          "%u", (unsigned)i + 1);
    o->gamma[i] = 0.0;
    if (o->m->sparsify == GTA_SPARSE_OUTLIERS) {
        rc = host->param_f64(p, "gamma", &o->gamma[i]);
        if (rc != AMG_OK)
            return host->fail(ctx, rc, "cannot read 'gamma' of input model "
                              "%u", (unsigned)i + 1);
    }
    return AMG_OK;
}

int32_t gta_read_opts(amg_ctx *ctx, const amg_merge_call *call,
                      const gta_method *m, gta_opts *o)
{
    uint32_t i;
    int32_t rc;

    memset(o, 0, sizeof(*o));
    o->m = m;
    o->n = call->n_inputs;
    if (o->n == 0 || o->n > GTA_MAX_INPUTS)
        return call->host->fail(ctx, AMG_EINVAL, "%u input models; between "
                                "1 and %u are supported", (unsigned)o->n,
                                GTA_MAX_INPUTS);
    if (call->base == NULL)
        return call->host->fail(ctx, AMG_EINVAL, "a base model is required");
    o->numel = call->out->full_numel;
    rc = read_global(ctx, call, o);
    for (i = 0; rc == AMG_OK && i < o->n; i++)
        rc = read_model(ctx, call, o, i);
    return rc;
}

int32_t gta_delta(amg_ctx *ctx, const amg_merge_call *call, uint32_t i,
                  amg_tensor **d)
{
    int32_t rc;

    rc = call->host->tensor_new_like(ctx, call->out, call->out->dl.dtype, d);
    /* 1*x + (-1)*base rounds once, exactly as x - base */
    if (rc == AMG_OK)
        rc = call->k->axpby(ctx, *d, 1.0f, call->inputs[i], -1.0f,
                            call->base);
    return rc;
}

int32_t gta_delta_to(amg_ctx *ctx, const amg_merge_call *call, uint32_t i,
                     amg_tensor *d)
{
    return call->k->axpby(ctx, d, 1.0f, call->inputs[i], -1.0f, call->base);
}

int32_t gta_deltas(amg_ctx *ctx, const amg_merge_call *call, amg_tensor **d)
{
    uint32_t i;
    int32_t rc = AMG_OK;

    for (i = 0; rc == AMG_OK && i < call->n_inputs; i++)
        rc = gta_delta(ctx, call, i, &d[i]);
    return rc;
}

void gta_release_deltas(amg_ctx *ctx, const amg_merge_call *call,
                        amg_tensor **d)
{
    uint32_t i = call->n_inputs < GTA_MAX_INPUTS ? call->n_inputs
                                                  : GTA_MAX_INPUTS;

    /* newest first: the host finds those soonest */
    for (; i > 0; i--)
        call->host->tensor_release(ctx, d[i - 1]);
}

/* out /= the sum of the weights (f32, in model order, as torch sums the
 * weight tensor), a divisor below 1e-8 in size counting as 1. */
static int32_t divide_by_weights(amg_ctx *ctx, const amg_merge_call *call,
                                 const gta_opts *o)
{
    amg_tensor *t = NULL;
    float div = 0.0f;
    uint32_t i;
    int32_t rc;

    for (i = 0; i < o->n; i++)
        div = div + o->w[i];
    if (fabsf(div) < GTA_DIVISOR_EPS || div == 1.0f)
        return AMG_OK;
    rc = call->host->tensor_new_like(ctx, call->out, call->out->dl.dtype, &t);
    if (rc == AMG_OK)
        rc = call->k->fill(ctx, t, div);
    if (rc == AMG_OK)
        rc = call->k->div(ctx, call->out, call->out, t);
    call->host->tensor_release(ctx, t);
    return rc;
}

static int32_t consensus_mix(amg_ctx *ctx, const amg_merge_call *call,
                             const gta_opts *o, amg_tensor *const *d)
{
    const amg_tensor *const *dc = (const amg_tensor *const *)d;
    amg_tensor *sign = NULL;
    int32_t rc;

    rc = call->host->tensor_new_like(ctx, call->out, call->out->dl.dtype,
                                     &sign);
    if (rc == AMG_OK)
        rc = call->k->sign_elect(ctx, sign, dc, o->w, o->n, o->rule);
    if (rc == AMG_OK)
        rc = call->k->disjoint_merge(ctx, call->out, dc, o->w, o->n, sign,
                                     o->normalize);
    call->host->tensor_release(ctx, sign);
    return rc;
}

int32_t gta_combine(amg_ctx *ctx, const amg_merge_call *call,
                    const gta_opts *o, amg_tensor *const *d)
{
    const amg_kernels *k = call->k;
    int32_t rc;

    if (o->m->consensus) {
        rc = consensus_mix(ctx, call, o, d);
    } else {
        rc = k->weighted_sum(ctx, call->out, (const amg_tensor *const *)d,
                             o->w, o->n);
        if (rc == AMG_OK && o->normalize)
            rc = divide_by_weights(ctx, call, o);
    }
    if (rc == AMG_OK && o->lambda != 1.0f)
        rc = k->scale(ctx, call->out, o->lambda, call->out);
    if (rc == AMG_OK)
        rc = k->axpby(ctx, call->out, 1.0f, call->base, 1.0f, call->out);
    return rc;
}

/* Rows whose sums fit on the stack: a cache-sized block (block.c) has a
 * few dozen rows at most, and is summed once per model. */
#define GTA_L1_STACK_ROWS 64u

/* Per-row sums from the kernel, then added here in row order: the order
 * the rows of a tensor arrive in, whatever the chunking, so the totals are
 * the same for any split. */
int32_t gta_l1_rows(amg_ctx *ctx, const amg_merge_call *call,
                    const amg_tensor *x, const amg_tensor *mask, double *all,
                    double *kept)
{
    const amg_host_api *host = call->host;
    uint64_t r, rows = amg_tensor_rows(x);
    double stack[2 * GTA_L1_STACK_ROWS], *ra = stack, *rk;
    int32_t rc;

    if (call->k->row_abs_sum == NULL)
        return host->fail(ctx, AMG_EUNSUPPORTED, "the host's kernel table "
                          "has no row_abs_sum (the host is older than this "
                          "plugin)");
    /* no mask keeps nothing: the kept sum stays as it is */
    if (mask == NULL)
        kept = NULL;
    if (rows == 0 || (all == NULL && kept == NULL))
        return AMG_OK;
    if (rows > GTA_L1_STACK_ROWS)
        ra = host->mem_alloc(ctx, 2 * rows * sizeof(double), 0);
    if (ra == NULL)
        return host->fail(ctx, AMG_ENOMEM, "out of memory for %llu row "
                          "sums", (unsigned long long)rows);
    rk = ra + rows;
    rc = call->k->row_abs_sum(ctx, x, kept != NULL ? mask : NULL,
                              all != NULL ? ra : NULL,
                              kept != NULL ? rk : NULL);
    for (r = 0; rc == AMG_OK && r < rows; r++) {
        if (all != NULL)
            *all += ra[r];
        if (kept != NULL)
            *kept += rk[r];
    }
    if (ra != stack)
        host->mem_free(ctx, ra);
    return rc;
}

float gta_l1_factor(double all, double kept)
{
    if (all < GTA_RESCALE_EPS || kept < GTA_RESCALE_EPS)
        return 1.0f;
    return (float)(all / kept);
}

int32_t gta_merge_passes(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                         size_t bytes, uint32_t passes, gta_pass_fn reduce,
                         gta_pass_fn apply)
{
    const amg_host_api *host = call->host;
    amg_merge_call c = *call;
    void *st;
    int32_t rc = AMG_OK;

    st = host->mem_alloc(ctx, bytes, 0);
    if (st == NULL)
        return host->fail(ctx, AMG_ENOMEM, "out of memory for %zu bytes of "
                          "statistics", bytes);
    memset(st, 0, bytes);
    c.row_begin = 0;
    c.row_end = call->rows_total;
    for (c.pass = 0; rc == AMG_OK && c.pass < passes; c.pass++)
        rc = reduce(inst, ctx, &c, st);
    c.pass = 0;
    if (rc == AMG_OK)
        rc = apply(inst, ctx, &c, st);
    host->mem_free(ctx, st);
    return rc;
}

int32_t gta_merge_two_pass(void *inst, amg_ctx *ctx,
                           const amg_merge_call *call, uint32_t passes,
                           gta_pass_fn reduce, gta_pass_fn apply)
{
    if (call->n_inputs > GTA_MAX_INPUTS)
        return call->host->fail(ctx, AMG_EINVAL, "%u input models; at most "
                                "%u are supported", (unsigned)call->n_inputs,
                                GTA_MAX_INPUTS);
    /* only the models in use: the rest of the block is never touched */
    return gta_merge_passes(inst, ctx, call,
                            offsetof(gta_stats, model) +
                                (size_t)call->n_inputs * sizeof(gta_model),
                            passes, reduce, apply);
}

/* One block of task_arithmetic: its deltas live only as long as the
 * block, so they stay in cache and their memory is reused block after
 * block instead of being faulted in fresh for every chunk. */
static int32_t task_arithmetic_block(void *inst, amg_ctx *ctx,
                                     const amg_merge_call *call, void *stats)
{
    amg_tensor *d[GTA_MAX_INPUTS] = { NULL };
    gta_opts o;
    int32_t rc;

    (void)stats;
    rc = gta_read_opts(ctx, call, inst, &o);
    if (rc == AMG_OK)
        rc = gta_deltas(ctx, call, d);
    if (rc == AMG_OK)
        rc = gta_combine(ctx, call, &o, d);
    gta_release_deltas(ctx, call, d);
    return rc;
}

int32_t gta_task_arithmetic_merge(void *inst, amg_ctx *ctx,
                                  const amg_merge_call *call)
{
    return gta_blocked(inst, ctx, call, NULL, task_arithmetic_block);
}
