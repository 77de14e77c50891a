/* SPDX-License-Identifier: Apache-2.0 */
/*
 * multislerp.c - the `multislerp` strategy (mergekit's
 * merge_methods/multislerp.py): barycentric interpolation of n models on
 * the hypersphere, each tensor flattened to one vector per model.
 *
 * mergekit, with X_i = model_i - base (or model_i), w the weights divided
 * by their sum when normalize_weights:
 *
 *   n_i = |X_i|, U_i = X_i / (n_i + eps), m = sum_i w_i U_i
 *   |m| < eps: out = w_0 X_0 + w_1 X_1 with two models, else an error
 *   M = m / |m|, V_i = U_i - (U_i . M) M, T = sum_i w_i V_i
 *   tn = |T| + eps, r = (cos(tn) M + sin(tn)/tn T) * sum_i w_i n_i
 *   out = r (+ base)
 *
 * Every vector above is a linear combination of the X_i, so r = sum_i c_i
 * X_i with coefficients that depend only on the weights and the Gram
 * matrix G_ij = X_i . X_j:
 *
 *   a_i   = w_i / (n_i + eps), n_i = sqrt(G_ii)      (m = sum a_i X_i)
 *   |m|^2 = a' G a
 *   mu_i  = a_i / |m|                                (M = sum mu_i X_i)
 *   d_i   = (G mu)_i / (n_i + eps)                   (U_i . M)
 *   tau_i = a_i - (sum_j w_j d_j) mu_i               (T = sum tau_i X_i)
 *   |T|^2 = tau' G tau
 *   c_i   = (sum_j w_j n_j) (cos(tn) mu_i + sin(tn)/tn tau_i)
 *
 * (Algebraically sum_j w_j d_j = m . M = |m|, so T = 0 and r is M scaled
 * to the weighted mean norm; the formulas are kept as mergekit's steps so
 * rounding behaves alike, and tests compare against the explicit steps.)
 *
 * So: one reduce pass sums G in f64 over the row chunks (amg__slerp_
 * dot_rows: the same bits for any chunking); apply solves for c in double
 * and writes out = sum_i c_i model_i + (1 - sum_i c_i) base in one f32
 * weighted sum.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "slerp.h"

#define MS_MAX AMG__MULTISLERP_MAX

typedef struct ms_stats {
    double gram[MS_MAX * MS_MAX];      /* upper triangle, row-major */
} ms_stats;

/* The models of one call, the base dropped when listed among them. */
typedef struct ms_in {
    const amg_tensor *x[MS_MAX + 1];   /* models, then the base if any */
    const amg_params *p[MS_MAX];
    uint32_t n;                        /* models */
    const amg_tensor *base;            /* or NULL */
} ms_in;

static const amg_param_spec ms_params[] = {
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_F64,
      .scope = AMG_SCOPE_PER_MODEL,
      .flags = AMG_PARAM_REQUIRED | AMG_PARAM_GRADIENT,
      .name = "weight",
      .help = "weight of this model in the spherical mean" },
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_BOOL,
      .scope = AMG_SCOPE_GLOBAL, .flags = AMG_PARAM_GRADIENT,
      .name = "normalize_weights", .def = 1.0,
      .help = "divide the weights by their sum" },
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_F64,
      .scope = AMG_SCOPE_GLOBAL,
      .flags = AMG_PARAM_GRADIENT | AMG_PARAM_HAS_MIN,
      .name = "eps", .def = 1e-8, .min = 0.0,
      .help = "small constant added to norms for stability" },
};

static int32_t ms_inputs(amg_ctx *ctx, const amg_merge_call *call,
                         ms_in *in)
{
    int32_t skip = amg__slerp_listed_base(call);
    uint32_t i;

    in->n = 0;
    in->base = call->base;
    for (i = 0; i < call->n_inputs; i++) {
        if ((int32_t)i == skip)
            continue;
        if (in->n == MS_MAX)
            return call->host->fail(ctx, AMG_EINVAL, "multislerp takes at "
                                    "most %d models", MS_MAX);
        in->x[in->n] = call->inputs[i];
        in->p[in->n++] = call->input_params[i];
    }
    if (in->n == 0)
        return call->host->fail(ctx, AMG_EINVAL, "multislerp needs at least "
                                "one model besides the base");
    return AMG_OK;
}

static int32_t ms_reduce(void *inst, amg_ctx *ctx,
                         const amg_merge_call *call, void *stats)
{
    const amg_host_api *host = call->host;
    double *g = ((ms_stats *)stats)->gram;
    const amg_tensor *v[MS_MAX];
    amg_tensor *d;
    ms_in in;
    uint32_t i, j;
    int32_t rc;

    (void)inst;
    rc = ms_inputs(ctx, call, &in);
    if (rc != AMG_OK || in.n < 2)
        return rc;                     /* one model is returned as is */
    for (i = 0; i < in.n; i++) {
        if (in.base == NULL) {
            v[i] = in.x[i];
            continue;
        }
        rc = host->tensor_new_like(ctx, in.x[i], in.x[i]->dl.dtype, &d);
        if (rc == AMG_OK)
            rc = call->k->axpby(ctx, d, 1.0f, in.x[i], -1.0f, in.base);
        if (rc != AMG_OK)
            return rc;
        v[i] = d;
    }
    for (i = 0; rc == AMG_OK && i < in.n; i++)
        for (j = i; rc == AMG_OK && j < in.n; j++)
            rc = amg__slerp_dot_rows(ctx, call, v[i], v[j],
                                     &g[i * MS_MAX + j]);
    return rc;
}

/* The weights, divided by their sum when normalize_weights. */
static int32_t ms_weights(amg_ctx *ctx, const amg_merge_call *call,
                          const ms_in *in, double *w)
{
    const amg_host_api *host = call->host;
    int32_t normalize = 1, rc;
    double sum = 0.0;
    uint32_t i;

    for (i = 0; i < in->n; i++) {
        rc = host->param_f64(in->p[i], "weight", &w[i]);
        if (rc != AMG_OK)
            return host->fail(ctx, rc, "cannot read 'weight' of model %u",
                              (unsigned)i + 1);
        sum += w[i];
    }
    rc = host->param_bool(call->params, "normalize_weights", &normalize);
    if (rc != AMG_OK)
        return host->fail(ctx, rc, "cannot read 'normalize_weights'");
    if (!normalize)
        return AMG_OK;
    if (sum == 0.0)
        return host->fail(ctx, AMG_EINVAL, "weights sum to 0; set "
                          "normalize_weights: false or change the weights");
    for (i = 0; i < in->n; i++)
        w[i] /= sum;
    return AMG_OK;
}

/* x' G y over the symmetric Gram matrix stored as an upper triangle. */
static double ms_quad(const double *g, uint32_t n, const double *x,
                      const double *y)
{
    double acc = 0.0;
    uint32_t i, j;

    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++)
            acc += x[i] * g[i <= j ? i * MS_MAX + j : j * MS_MAX + i] * y[j];
    return acc;
}

/* c of r = sum_i c_i X_i, following the steps in the header comment. */
static int32_t ms_coeffs(amg_ctx *ctx, const amg_merge_call *call,
                         const double *g, uint32_t n, const double *w,
                         double eps, double *c)
{
    double nrm[MS_MAX], a[MS_MAX], mu[MS_MAX], tau[MS_MAX], e[MS_MAX];
    double mnorm, wd = 0.0, avg = 0.0, tn, sinc;
    uint32_t i, j;
    int32_t rc;

    for (i = 0; i < n; i++) {
        nrm[i] = sqrt(fmax(g[i * MS_MAX + i], 0.0));
        a[i] = w[i] / (nrm[i] + eps);
        avg += w[i] * nrm[i];
    }
    mnorm = sqrt(fmax(ms_quad(g, n, a, a), 0.0));
    rc = amg__slerp_finite(ctx, call, mnorm + avg, "a norm or dot product");
    if (rc != AMG_OK)
        return rc;
    if (mnorm < eps) {
        if (n != 2)
            return call->host->fail(ctx, AMG_ERANGE, "the weighted mean of "
                                    "the models' directions is 0 (antipodal "
                                    "models whose weights balance out); "
                                    "change the weights");
        c[0] = w[0];                   /* mergekit's linear fallback */
        c[1] = w[1];
        return AMG_OK;
    }
    for (i = 0; i < n; i++)
        mu[i] = a[i] / mnorm;
    for (i = 0; i < n; i++) {
        memset(e, 0, sizeof(e));
        e[i] = 1.0;
        wd += w[i] * ms_quad(g, n, e, mu) / (nrm[i] + eps);
    }
    for (i = 0; i < n; i++)
        tau[i] = a[i] - wd * mu[i];
    tn = sqrt(fmax(ms_quad(g, n, tau, tau), 0.0)) + eps;
    sinc = tn > 0.0 ? sin(tn) / tn : 1.0;
    for (j = 0; j < n; j++)
        c[j] = avg * (cos(tn) * mu[j] + sinc * tau[j]);
    return AMG_OK;
}

static int32_t ms_apply(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                        void *stats)
{
    const amg_host_api *host = call->host;
    const double *g = ((const ms_stats *)stats)->gram;
    double w[MS_MAX], c[MS_MAX], eps, rest = 1.0;
    float cf[MS_MAX + 1];
    ms_in in;
    uint32_t i;
    int32_t rc;

    (void)inst;
    rc = ms_inputs(ctx, call, &in);
    if (rc != AMG_OK)
        return rc;
    if (in.n == 1)                     /* mergekit returns it untouched */
        return host->tensor_copy(ctx, call->out, in.x[0]);
    rc = host->param_f64(call->params, "eps", &eps);
    if (rc != AMG_OK)
        return host->fail(ctx, rc, "cannot read 'eps'");
    rc = ms_weights(ctx, call, &in, w);
    if (rc == AMG_OK)
        rc = ms_coeffs(ctx, call, g, in.n, w, eps, c);
    if (rc != AMG_OK)
        return rc;
    for (i = 0; i < in.n; i++) {
        cf[i] = (float)c[i];
        rest -= c[i];
    }
    if (in.base == NULL)
        return call->k->weighted_sum(ctx, call->out, in.x, cf, in.n);
    /* sum c_i (x_i - base) + base in one pass */
    in.x[in.n] = in.base;
    cf[in.n] = (float)rest;
    return call->k->weighted_sum(ctx, call->out, in.x, cf, in.n + 1);
}

static int32_t ms_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call)
{
    static const ms_stats zero;
    ms_stats *st;
    int32_t rc;

    /* 2 KiB of statistics: off the worker's stack */
    st = call->host->mem_alloc(ctx, sizeof(*st), 0);
    if (st == NULL)
        return call->host->fail(ctx, AMG_ENOMEM, "out of memory");
    *st = zero;
    rc = ms_reduce(inst, ctx, call, st);
    if (rc == AMG_OK)
        rc = ms_apply(inst, ctx, call, st);
    call->host->mem_free(ctx, st);
    return rc;
}

const amg_strategy amg__multislerp_strategy = {
    .struct_size = sizeof(amg_strategy),
    .reduce_passes = 1,
    .id = "multislerp",
    .summary = "spherical weighted mean of several models (mergekit's "
               "multislerp)",
    .help =
        "Barycentric interpolation on the hypersphere, one vector per\n"
        "tensor and model. X_i = model_i - base (with an optional\n"
        "base_model, listed among the models or not) or model_i; w = the\n"
        "weights, divided by their sum when normalize_weights:\n"
        "\n"
        "  U_i = X_i / (|X_i| + eps), m = sum_i w_i U_i, M = m / |m|\n"
        "  T = sum_i w_i (U_i - (U_i . M) M), tn = |T| + eps\n"
        "  out = (cos(tn) M + sin(tn)/tn T) * sum_i w_i |X_i|  (+ base)\n"
        "\n"
        "When |m| < eps: with two models out = w_0 X_0 + w_1 X_1 (+ base),\n"
        "with more an error. One model is returned unchanged.\n"
        "\n"
        "Parameters: weight (required, per model); normalize_weights\n"
        "(default true); eps (default 1e-8, >= 0). At most 16 models.\n"
        "\n"
        "Computed from the models' Gram matrix (f64 sums over the tensor)\n"
        "as coefficients c with out = sum_i c_i model_i + (1 - sum c_i)\n"
        "base, applied in one f32 pass. Differences from mergekit: f32 with\n"
        "f64 sums instead of the merge dtype; weights summing to 0 with\n"
        "normalize_weights fail instead of giving inf/NaN; a tensor holding\n"
        "inf or NaN fails.\n"
        "\n"
        "References: C. Goddard, https://goddard.blog/posts/multislerp-wow-"
        "what-a-cool-idea;\nmergekit merge_methods/multislerp.py.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_TWO_PASS | AMG_CAP_REENTRANT,
    .min_inputs = 1,
    .max_inputs = MS_MAX,
    .n_params = sizeof(ms_params) / sizeof(ms_params[0]),
    .params = ms_params,
    .merge = ms_merge,
    .stats_bytes = sizeof(ms_stats),
    .reduce = ms_reduce,
    .apply = ms_apply,
};
