/* SPDX-License-Identifier: Apache-2.0 */
/*
 * karcher.c - the `karcher` strategy: mergekit's Karcher mean
 * (merge_methods/karcher.py), the Riemannian centre of mass of the models'
 * directions on the unit sphere, scaled by their mean norm.
 *
 * The iterate always lies in the span of the models, so the whole
 * iteration runs on the host on their Gram matrix (solve.c) and the output
 * is one weighted sum of the models. A two-pass strategy: the reduce pass
 * accumulates the Gram matrix, row by row and in row order, so totals do
 * not depend on chunking; apply solves once per tensor and writes
 * sum_p beta_p t_p chunk by chunk. Only kernels touch tensor memory, so it
 * runs on any device with bounded memory.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <amalgam/amalgam.h>

#include "karcher.h"

typedef struct ka_stats {
    double gram[KA_GRAM];              /* <t_i, t_j>, i <= j, at ka_tri */
    ka_solution sol;                   /* set by the first apply call */
    uint32_t solved;
} ka_stats;

static const amg_param_spec ka_params[] = {
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_I64,
      .scope = AMG_SCOPE_GLOBAL, .flags = AMG_PARAM_HAS_MIN,
      .name = "max_iter", .def = 10.0, .min = 1.0,
      .help = "most tangent steps of the iteration" },
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_F64,
      .scope = AMG_SCOPE_GLOBAL,
      .flags = AMG_PARAM_HAS_MIN | AMG_PARAM_MIN_EXCLUSIVE,
      .name = "tol", .def = 1e-5, .min = 0.0,
      .help = "smallest norm, angle and step that count" },
};

/* The models to average: the base first, where mergekit puts it, then the
 * inputs. A tensor met twice (the base also listed among the models, one
 * model listed twice) counts once, as mergekit keys models by reference.
 * who[i] is 0 for the base, else the input's number from 1. */
static int32_t ka_models(amg_ctx *ctx, const amg_merge_call *call,
                         const amg_tensor **m, uint32_t *who, uint32_t *n)
{
    uint32_t j, i, k = 0;

    if (call->base != NULL) {
        who[k] = 0;
        m[k++] = call->base;
    }
    for (j = 0; j < call->n_inputs; j++) {
        for (i = 0; i < k && m[i] != call->inputs[j]; i++)
            ;
        if (i < k)
            continue;
        if (k == KA_MAX_MODELS)
            return call->host->fail(ctx, AMG_EINVAL, "karcher takes at most "
                                    "%u models, the base included",
                                    KA_MAX_MODELS);
        who[k] = j + 1u;
        m[k++] = call->inputs[j];
    }
    if (k == 0)
        return call->host->fail(ctx, AMG_EINVAL, "karcher needs at least "
                                "one model");
    *n = k;
    return AMG_OK;
}

/* Reduce: add this chunk's <t_i, t_j> to the Gram matrix, each row's sum
 * on its own and the rows in order. */
static int32_t ka_reduce(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                         void *stats)
{
    const amg_host_api *host = call->host;
    const amg_tensor *m[KA_MAX_MODELS];
    uint32_t who[KA_MAX_MODELS], n = 0, i, j;
    uint64_t rows = amg_tensor_rows(call->out), r;
    ka_stats *st = stats;
    double *dots;
    int32_t rc;

    (void)inst;
    rc = ka_models(ctx, call, m, who, &n);
    if (rc != AMG_OK || n < 2 || rows == 0 || amg_tensor_numel(call->out) == 0)
        return rc;                     /* one model is copied as it is */
    dots = host->mem_alloc(ctx, rows * sizeof(double), 0);
    if (dots == NULL)
        return host->fail(ctx, AMG_ENOMEM, "out of memory for %llu row sums",
                          (unsigned long long)rows);
    for (j = 0; j < n && rc == AMG_OK; j++)
        for (i = 0; i <= j && rc == AMG_OK; i++) {
            rc = call->k->row_dot(ctx, m[i], m[j], dots);
            for (r = 0; r < rows && rc == AMG_OK; r++)
                st->gram[ka_tri(i, j)] += dots[r];
        }
    host->mem_free(ctx, dots);
    return rc;
}

/* Solve once per tensor: every apply call of the tensor sees the same
 * Gram matrix, so the first one's answer serves the rest. */
static int32_t ka_solved(amg_ctx *ctx, const amg_merge_call *call,
                         const uint32_t *who, uint32_t n, ka_stats *st)
{
    const amg_host_api *host = call->host;
    const ka_solution *s = &st->sol;
    int64_t max_iter = 0;
    double tol = 0.0;
    int32_t rc;

    if (st->solved)
        return AMG_OK;
    rc = host->param_i64(call->params, "max_iter", &max_iter);
    if (rc != AMG_OK)
        return host->fail(ctx, rc, "cannot read 'max_iter'");
    rc = host->param_f64(call->params, "tol", &tol);
    if (rc != AMG_OK)
        return host->fail(ctx, rc, "cannot read 'tol'");
    if (ka_solve(st->gram, n, max_iter, tol, &st->sol) != 0) {
        if (who[s->opposed] == 0)
            return host->fail(ctx, AMG_ERANGE, "the base model is opposed to "
                              "the running mean (angle %.17g, within tol of "
                              "pi): the Karcher mean is undefined", s->angle);
        return host->fail(ctx, AMG_ERANGE, "model %u is opposed to the "
                          "running mean (angle %.17g, within tol of pi): the "
                          "Karcher mean is undefined",
                          (unsigned)who[s->opposed], s->angle);
    }
    host->log(ctx, AMG_LOG_DEBUG, "%u models, %u above tol, %u steps, last "
              "step %.3g", (unsigned)n, (unsigned)s->n_kept,
              (unsigned)s->iters, s->last_step);
    st->solved = 1;
    return AMG_OK;
}

static int32_t ka_apply(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                        void *stats)
{
    const amg_tensor *m[KA_MAX_MODELS], *kept[KA_MAX_MODELS];
    uint32_t who[KA_MAX_MODELS], n = 0, p;
    float beta[KA_MAX_MODELS];
    ka_stats *st = stats;
    const ka_solution *s = &st->sol;
    int32_t rc;

    (void)inst;
    rc = ka_models(ctx, call, m, who, &n);
    if (rc != AMG_OK || amg_tensor_numel(call->out) == 0)
        return rc;
    if (n == 1)                        /* mergekit returns it untouched */
        return call->host->tensor_copy(ctx, call->out, m[0]);
    rc = ka_solved(ctx, call, who, n, st);
    if (rc != AMG_OK)
        return rc;
    if (s->kind == KA_ZERO)
        return call->k->fill(ctx, call->out, 0.0f);
    if (s->kind == KA_NAN)
        return call->k->fill(ctx, call->out, NAN);
    for (p = 0; p < s->n_kept; p++) {
        kept[p] = m[s->kept[p]];
        beta[p] = (float)s->beta[p];
    }
    return call->k->weighted_sum(ctx, call->out, kept, beta, s->n_kept);
}

/* The whole tensor at once (no chunking, or a chained step). */
static int32_t ka_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call)
{
    ka_stats st;
    int32_t rc;

    memset(&st, 0, sizeof(st));
    rc = ka_reduce(inst, ctx, call, &st);
    if (rc == AMG_OK)
        rc = ka_apply(inst, ctx, call, &st);
    return rc;
}

static const amg_strategy ka_strategy = {
    .struct_size = sizeof(amg_strategy),
    .reduce_passes = 1,
    .id = "karcher",
    .summary = "Karcher mean: the models' mean direction on the sphere, "
               "scaled by their mean norm",
    .help =
        "For the N models t_i of a tensor (each flattened; the base, when\n"
        "given, is one of them, as in mergekit):\n"
        "  n_i = |t_i|, u_i = t_i / n_i; only models with n_i > tol take\n"
        "      part, each with weight a = 1/K (K of them)\n"
        "  u   = normalize(sum_i a u_i), or the first u_i when that sum's\n"
        "      norm is below tol\n"
        "  up to max_iter times:\n"
        "    theta_i = acos(clamp(<u,u_i>, -1, 1)), skipped when < tol\n"
        "    T = sum_i a (theta_i / sin theta_i) (u_i - cos theta_i u)\n"
        "    stop when |T| < tol; else u = cos|T| u + sin|T| T/|T|,\n"
        "    normalized\n"
        "  out = (sum_i n_i / N) u      (all N models in the mean norm)\n"
        "One model is returned as it is; none with a norm above tol gives\n"
        "zeros; a NaN or infinity in any model gives NaN, as in mergekit.\n"
        "Models take no parameters (no weight); a model listed twice\n"
        "counts once. 1 to 31 models plus base_model, 32 in all.\n"
        "\n"
        "Same meaning as mergekit's `karcher` (the Karcher or Frechet mean,\n"
        "https://en.wikipedia.org/wiki/Karcher_mean). mergekit iterates on\n"
        "the f32/bf16 vectors themselves; here u is kept as coefficients\n"
        "over the u_i, and every inner product comes from the Gram matrix\n"
        "<t_i,t_j>, summed in f64 per row and over rows in order (any\n"
        "chunking gives the same bytes). The iteration runs in f64 and the\n"
        "output is one f32 weighted sum of the models, so results agree\n"
        "with mergekit within its own rounding, not bit for bit. A model\n"
        "within tol of the antipode of u (e.g. two exactly opposed\n"
        "models) has no defined mean: the merge fails instead of writing\n"
        "what mergekit's division by sin(pi) gives.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_TWO_PASS | AMG_CAP_REENTRANT,
    .min_inputs = 1,
    .max_inputs = KA_MAX_MODELS - 1u,
    .n_params = sizeof(ka_params) / sizeof(ka_params[0]),
    .params = ka_params,
    .merge = ka_merge,
    .stats_bytes = sizeof(ka_stats),
    .reduce = ka_reduce,
    .apply = ka_apply,
};

static const amg_strategy *const ka_strategies[] = { &ka_strategy };

static const amg_module ka_module = {
    AMG_MODULE_HEAD,
    .name = "karcher",
    .version = AMG_VERSION_STRING,
    .license = "Apache-2.0",
    .description = "Karcher mean merging (mergekit's karcher)",
    .n_strategies = 1,
    .strategies = ka_strategies,
};

AMG_PLUGIN_DEFINE(ka_module)
