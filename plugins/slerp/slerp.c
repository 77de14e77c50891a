/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slerp.c - the `slerp` strategy (mergekit's merge_methods/slerp.py) and the
 * helpers the family shares.
 *
 * v0 is the base model, v1 the other model; both are seen as one flat
 * vector per tensor, so each tensor has one angle:
 *
 *   n_k  = ||v_k||, and d_k = n_k if n_k > 1e-8 else 1   (mergekit leaves a
 *          vector of norm <= 1e-8 unnormalised)
 *   dot  = (v0 . v1) / (d0 * d1)
 *   |dot| > 0.9995:  out = lerp = v0 + t * (v1 - v0)
 *   otherwise:       theta = acos(dot), s0 = sin(theta - t*theta)/sin(theta),
 *                    s1 = sin(t*theta)/sin(theta), out = s0*v0 + s1*v1
 *   t == 0: out = v0, t == 1: out = v1, exactly.
 *
 * Two passes: reduce sums v0.v0, v1.v1 and v0.v1 in f64 over every row
 * chunk (amg__slerp_dot_rows, so the sums do not depend on the chunking);
 * apply computes s0 and s1 in double from them and combines each chunk in
 * f32 with one axpby.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "slerp.h"

/* mergekit's constants (slerp.py): vectors closer than this to colinear
 * (or antiparallel) are interpolated linearly. */
#define SLERP_DOT_THRESHOLD 0.9995
#define SLERP_NORM_EPS 1e-8

/* ---- helpers shared by the family ---- */

int32_t amg__slerp_dot_rows(amg_ctx *ctx, const amg_merge_call *call,
                            const amg_tensor *x, const amg_tensor *y,
                            double *acc)
{
    const amg_host_api *host = call->host;
    uint64_t rows = amg_tensor_rows(x), r;
    double *per_row;
    int32_t rc;

    if (rows == 0 || amg_tensor_numel(x) == 0)
        return AMG_OK;
    per_row = host->mem_alloc(ctx, rows * sizeof(double), 0);
    if (per_row == NULL)
        return host->fail(ctx, AMG_ENOMEM, "out of memory for %llu row sums",
                          (unsigned long long)rows);
    rc = call->k->row_dot(ctx, x, y, per_row);
    for (r = 0; rc == AMG_OK && r < rows; r++)
        *acc += per_row[r];
    host->mem_free(ctx, per_row);
    return rc;
}

int32_t amg__slerp_listed_base(const amg_merge_call *call)
{
    uint32_t i;

    if (call->base == NULL)
        return -1;
    for (i = 0; i < call->n_inputs; i++)
        if (call->inputs[i] == call->base ||
            amg_tensor_data(call->inputs[i]) == amg_tensor_data(call->base))
            return (int32_t)i;
    return -1;
}

int32_t amg__slerp_finite(amg_ctx *ctx, const amg_merge_call *call,
                          double v, const char *what)
{
    if (isfinite(v))
        return AMG_OK;
    return call->host->fail(ctx, AMG_ERANGE, "%s is %g: the models hold inf "
                            "or nan values", what, v);
}

/* ---- slerp ---- */

typedef struct slerp_stats {
    double ss0, ss1, s01;              /* v0.v0, v1.v1, v0.v1 */
} slerp_stats;

static const amg_param_spec slerp_params[] = {
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_F64,
      .scope = AMG_SCOPE_GLOBAL,
      .flags = AMG_PARAM_REQUIRED | AMG_PARAM_GRADIENT,
      .name = "t",
      .help = "interpolation factor: 0 gives the base model, 1 the other "
              "(not range-checked, as in mergekit)" },
};

static int32_t slerp_check(amg_ctx *ctx, const amg_merge_call *call)
{
    if (call->base == NULL || call->n_inputs != 1)
        return call->host->fail(ctx, AMG_EINVAL, "slerp merges the base "
                                "model with exactly one other model; got "
                                "%u besides the base", (unsigned)call->n_inputs);
    return AMG_OK;
}

static int32_t slerp_reduce(void *inst, amg_ctx *ctx,
                            const amg_merge_call *call, void *stats)
{
    slerp_stats *st = stats;
    const amg_tensor *v0 = call->base, *v1;
    int32_t rc;

    (void)inst;
    rc = slerp_check(ctx, call);
    if (rc != AMG_OK)
        return rc;
    v1 = call->inputs[0];
    rc = amg__slerp_dot_rows(ctx, call, v0, v0, &st->ss0);
    if (rc == AMG_OK)
        rc = amg__slerp_dot_rows(ctx, call, v1, v1, &st->ss1);
    if (rc == AMG_OK)
        rc = amg__slerp_dot_rows(ctx, call, v0, v1, &st->s01);
    return rc;
}

/* s0 and s1 of out = s0*v0 + s1*v1, or *lerp set for the linear
 * fallback. Everything in double; rounded to float once by the caller. */
static int32_t slerp_coeffs(amg_ctx *ctx, const amg_merge_call *call,
                            const slerp_stats *st, double t, double *s0,
                            double *s1, int *lerp)
{
    double n0 = sqrt(st->ss0), n1 = sqrt(st->ss1), dot, theta, sin_theta;
    int32_t rc;

    n0 = n0 > SLERP_NORM_EPS ? n0 : 1.0;
    n1 = n1 > SLERP_NORM_EPS ? n1 : 1.0;
    dot = st->s01 / (n0 * n1);
    rc = amg__slerp_finite(ctx, call, dot, "the cosine of the angle");
    if (rc != AMG_OK)
        return rc;
    *lerp = fabs(dot) > SLERP_DOT_THRESHOLD;
    if (*lerp)
        return AMG_OK;
    theta = acos(dot);
    sin_theta = sin(theta);
    *s0 = sin(theta - t * theta) / sin_theta;
    *s1 = sin(t * theta) / sin_theta;
    return AMG_OK;
}

static int32_t slerp_apply(void *inst, amg_ctx *ctx,
                           const amg_merge_call *call, void *stats)
{
    const amg_host_api *host = call->host;
    const amg_tensor *v0 = call->base, *v1;
    double t, s0 = 0.0, s1 = 0.0;
    int lerp = 0;
    int32_t rc;

    (void)inst;
    rc = slerp_check(ctx, call);
    if (rc != AMG_OK)
        return rc;
    v1 = call->inputs[0];
    rc = host->param_f64(call->params, "t", &t);
    if (rc != AMG_OK)
        return host->fail(ctx, rc, "cannot read 't'");
    if (!isfinite(t))
        return host->fail(ctx, AMG_ERANGE, "t is %g: it must be a finite "
                          "number", t);
    /* the endpoints bit for bit, whatever the angle (and -0.0, inf, NaN
     * in the inputs pass through as they are) */
    if (t == 0.0)
        return host->tensor_copy(ctx, call->out, v0);
    if (t == 1.0)
        return host->tensor_copy(ctx, call->out, v1);
    rc = slerp_coeffs(ctx, call, stats, t, &s0, &s1, &lerp);
    if (rc != AMG_OK)
        return rc;
    if (!lerp)
        return call->k->axpby(ctx, call->out, (float)s0, v0, (float)s1, v1);
    /* v0 + t*(v1 - v0) rather than mergekit's (1-t)*v0 + t*v1: the same
     * value up to rounding, but identical inputs come back unchanged */
    rc = call->k->axpby(ctx, call->out, 1.0f, v1, -1.0f, v0);
    if (rc == AMG_OK)
        rc = call->k->axpby(ctx, call->out, (float)t, call->out, 1.0f, v0);
    return rc;
}

/* The whole tensor at once (the host does this when it does not chunk,
 * e.g. inside a chained step): the same passes, so the same bits. */
static int32_t slerp_merge(void *inst, amg_ctx *ctx,
                           const amg_merge_call *call)
{
    slerp_stats st = { 0.0, 0.0, 0.0 };
    int32_t rc = slerp_reduce(inst, ctx, call, &st);

    if (rc == AMG_OK)
        rc = slerp_apply(inst, ctx, call, &st);
    return rc;
}

const amg_strategy amg__slerp_strategy = {
    .struct_size = sizeof(amg_strategy),
    .reduce_passes = 1,
    .id = "slerp",
    .summary = "spherical interpolation of two models, one angle per tensor "
               "(mergekit's slerp)",
    .help =
        "v0 = the base model, v1 = the other model (exactly one besides the\n"
        "base; listing the base among the models as mergekit configs do is\n"
        "fine). Each tensor is one flat vector, so it has one angle:\n"
        "\n"
        "  dot   = (v0 . v1) / (|v0| |v1|)   (a norm <= 1e-8 counts as 1)\n"
        "  |dot| > 0.9995:  out = v0 + t (v1 - v0)          (linear)\n"
        "  else:  theta = acos(dot)\n"
        "         out = sin((1-t) theta)/sin(theta) v0\n"
        "             + sin(t theta)/sin(theta) v1\n"
        "\n"
        "Parameter t (required, global; a gradient over the layers or a\n"
        "filter list as in mergekit's gradient-slerp example): 0 gives the\n"
        "base model, 1 the other, both bit for bit. t is not range-checked\n"
        "(mergekit does not either); values outside [0, 1] extrapolate.\n"
        "\n"
        "Differences from mergekit: norms and the dot product are summed in\n"
        "f64 (mergekit uses f32 numpy sums), the coefficients are computed\n"
        "in double and applied in f32, and the linear fallback is written\n"
        "v0 + t (v1 - v0), which returns identical inputs unchanged. A\n"
        "tensor holding inf or NaN fails instead of giving NaN.\n"
        "\n"
        "References: K. Shoemake, Animating rotation with quaternion curves,\n"
        "SIGGRAPH 1985; mergekit merge_methods/slerp.py.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_NEEDS_BASE |
            AMG_CAP_TWO_PASS | AMG_CAP_REENTRANT,
    .min_inputs = 1,
    .max_inputs = 1,
    .n_params = sizeof(slerp_params) / sizeof(slerp_params[0]),
    .params = slerp_params,
    .merge = slerp_merge,
    .stats_bytes = sizeof(slerp_stats),
    .reduce = slerp_reduce,
    .apply = slerp_apply,
};
