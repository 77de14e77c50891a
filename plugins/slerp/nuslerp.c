/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nuslerp.c - the `nuslerp` strategy (mergekit's merge_methods/nuslerp.py):
 * SLERP of two models by weights, of their task vectors when a base is
 * given, over whole tensors or per row.
 *
 *   t = w2 / (w1 + w2), or 0.5 when |w1 + w2| < 1e-6
 *   v_k = model_k - base (with a base) or model_k
 *   per vector (the flattened tensor, or each row along the last axis):
 *     cos = (v0 / max(|v0|, 1e-7)) . (v1 / max(|v1|, 1e-7)), clamped to
 *           [-1, 1]; theta = acos(cos)
 *     |sin theta| < 1e-8:  r = (1-t) v0 + t v1
 *     otherwise:           r = (sin((1-t) theta) v0 + sin(t theta) v1)
 *                              / sin theta
 *   out = base + r (with a base) or r
 *
 * Flattened (nuslerp_flatten: true, the default, and any tensor of fewer
 * than two dimensions, whose last axis is the whole tensor): two passes,
 * |v0|^2, |v1|^2 and v0.v1 summed in f64 over the row chunks, then
 * out = a*m0 + b*m1 + (1 - a - b)*base in one f32 weighted sum, a and b
 * computed in double. Per row (nuslerp_flatten: false): each chunk holds
 * whole last-axis rows, so apply does the rows of its chunk alone (row_dot
 * for the sums, then row_axpby, which scales each row by its own a, b).
 *
 * nuslerp_row_wise (mergekit: rows along dimension 0, i.e. per column of a
 * [out, in] matrix) needs whole-tensor statistics per column; it is refused
 * with a clear message when it matters (flatten false) until that is built.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "slerp.h"

#define NUSLERP_NORM_MIN 1e-7          /* _normalize's clamp */
#define NUSLERP_COLINEAR 1e-8          /* |sin theta| below: lerp */
#define NUSLERP_WEIGHT_SUM_MIN 1e-6    /* |w1 + w2| below: t = 0.5 */

typedef struct nuslerp_stats {
    double ss0, ss1, s01;              /* v0.v0, v1.v1, v0.v1 */
} nuslerp_stats;

/* The two models and the base of one call, the base dropped from the
 * models when it is listed among them. */
typedef struct nuslerp_in {
    const amg_tensor *m[2];
    const amg_params *p[2];
    const amg_tensor *base;            /* or NULL */
    double t;
    int flatten;                       /* one angle for the whole tensor */
} nuslerp_in;

static const amg_param_spec nuslerp_params[] = {
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_F64,
      .scope = AMG_SCOPE_PER_MODEL,
      .flags = AMG_PARAM_REQUIRED | AMG_PARAM_GRADIENT,
      .name = "weight",
      .help = "weight of this model: t = w2 / (w1 + w2)" },
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_BOOL,
      .scope = AMG_SCOPE_GLOBAL, .flags = AMG_PARAM_GRADIENT,
      .name = "nuslerp_flatten", .def = 1.0,
      .help = "one angle per tensor (true) or one per row along the last "
              "axis (false)" },
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_BOOL,
      .scope = AMG_SCOPE_GLOBAL, .flags = AMG_PARAM_GRADIENT,
      .name = "nuslerp_row_wise", .def = 0.0,
      .help = "with nuslerp_flatten false: rows along dimension 0 "
              "(not supported yet)" },
};

static int32_t row_wise_refused(amg_ctx *ctx, const amg_host_api *host)
{
    return host->fail(ctx, AMG_EUNSUPPORTED, "nuslerp_row_wise: true with "
                      "nuslerp_flatten: false is not supported yet (it "
                      "needs per-column statistics); set nuslerp_flatten: "
                      "true or nuslerp_row_wise: false");
}

/* Refuse an unsupported combination before any tensor is read. */
static int32_t nuslerp_create(amg_ctx *ctx, const amg_host_api *host,
                              const amg_params *global, void **inst)
{
    int32_t flatten = 1, row_wise = 0, rc;

    *inst = NULL;
    rc = host->param_bool(global, "nuslerp_flatten", &flatten);
    if (rc == AMG_OK)
        rc = host->param_bool(global, "nuslerp_row_wise", &row_wise);
    if (rc != AMG_OK)
        return host->fail(ctx, rc, "cannot read nuslerp's options");
    if (row_wise && !flatten)
        return row_wise_refused(ctx, host);
    return AMG_OK;
}

static int32_t nuslerp_inputs(amg_ctx *ctx, const amg_merge_call *call,
                              nuslerp_in *in)
{
    const amg_host_api *host = call->host;
    int32_t skip = amg__slerp_listed_base(call), flatten = 1, row_wise = 0;
    double w[2], sum;
    uint32_t i, n = 0;
    int32_t rc;

    for (i = 0; i < call->n_inputs; i++) {
        if ((int32_t)i == skip)
            continue;
        if (n == 2)
            break;
        in->m[n] = call->inputs[i];
        in->p[n++] = call->input_params[i];
    }
    if (n != 2 || call->n_inputs - (skip >= 0) != 2)
        return host->fail(ctx, AMG_EINVAL, "nuslerp merges exactly 2 models "
                          "(plus an optional base_model); got %u",
                          (unsigned)(call->n_inputs - (skip >= 0)));
    in->base = call->base;
    for (i = 0; i < 2; i++) {
        rc = host->param_f64(in->p[i], "weight", &w[i]);
        if (rc != AMG_OK)
            return host->fail(ctx, rc, "cannot read 'weight' of model %u",
                              (unsigned)i + 1);
    }
    sum = w[0] + w[1];
    in->t = fabs(sum) < NUSLERP_WEIGHT_SUM_MIN ? 0.5 : w[1] / sum;
    rc = amg__slerp_finite(ctx, call, in->t, "t = w2 / (w1 + w2)");
    if (rc != AMG_OK)
        return rc;
    rc = host->param_bool(call->params, "nuslerp_flatten", &flatten);
    if (rc == AMG_OK)
        rc = host->param_bool(call->params, "nuslerp_row_wise", &row_wise);
    if (rc != AMG_OK)
        return host->fail(ctx, rc, "cannot read nuslerp's options");
    if (row_wise && !flatten && call->out->dl.ndim >= 2)
        return row_wise_refused(ctx, host);
    in->flatten = flatten || call->out->dl.ndim < 2;
    return AMG_OK;
}

/* v_k = m_k - base into a temporary, or m_k itself without a base. */
static int32_t nuslerp_vectors(amg_ctx *ctx, const amg_merge_call *call,
                               const nuslerp_in *in, const amg_tensor **v)
{
    amg_tensor *d;
    int32_t rc, k;

    for (k = 0; k < 2; k++) {
        if (in->base == NULL) {
            v[k] = in->m[k];
            continue;
        }
        rc = call->host->tensor_new_like(ctx, in->m[k], in->m[k]->dl.dtype,
                                         &d);
        if (rc == AMG_OK)
            rc = call->k->axpby(ctx, d, 1.0f, in->m[k], -1.0f, in->base);
        if (rc != AMG_OK)
            return rc;
        v[k] = d;
    }
    return AMG_OK;
}

/* a and b of r = a v0 + b v1 from the sums of one vector, in double. */
static void nuslerp_coeffs(double t, double ss0, double ss1, double s01,
                           double *a, double *b)
{
    double n0 = fmax(sqrt(ss0), NUSLERP_NORM_MIN);
    double n1 = fmax(sqrt(ss1), NUSLERP_NORM_MIN);
    double c = s01 / (n0 * n1), theta, s;

    c = c < -1.0 ? -1.0 : c > 1.0 ? 1.0 : c;
    theta = acos(c);
    s = sin(theta);
    if (fabs(s) < NUSLERP_COLINEAR) {
        *a = 1.0 - t;
        *b = t;
        return;
    }
    *a = sin((1.0 - t) * theta) / s;
    *b = sin(t * theta) / s;
}

static int32_t nuslerp_reduce(void *inst, amg_ctx *ctx,
                              const amg_merge_call *call, void *stats)
{
    nuslerp_stats *st = stats;
    const amg_tensor *v[2];
    nuslerp_in in;
    int32_t rc;

    (void)inst;
    rc = nuslerp_inputs(ctx, call, &in);
    if (rc != AMG_OK || !in.flatten)
        return rc;                     /* per row: apply does it all */
    rc = nuslerp_vectors(ctx, call, &in, v);
    if (rc == AMG_OK)
        rc = amg__slerp_dot_rows(ctx, call, v[0], v[0], &st->ss0);
    if (rc == AMG_OK)
        rc = amg__slerp_dot_rows(ctx, call, v[1], v[1], &st->ss1);
    if (rc == AMG_OK)
        rc = amg__slerp_dot_rows(ctx, call, v[0], v[1], &st->s01);
    return rc;
}

static int32_t nuslerp_apply_flat(amg_ctx *ctx, const amg_merge_call *call,
                                  const nuslerp_in *in,
                                  const nuslerp_stats *st)
{
    const amg_tensor *x[3];
    double a, b;
    float w[3];
    int32_t rc;

    rc = amg__slerp_finite(ctx, call, st->ss0 + st->ss1 + st->s01,
                           "a norm or dot product");
    if (rc != AMG_OK)
        return rc;
    nuslerp_coeffs(in->t, st->ss0, st->ss1, st->s01, &a, &b);
    if (in->base == NULL)
        return call->k->axpby(ctx, call->out, (float)a, in->m[0], (float)b,
                              in->m[1]);
    /* base + a (m0 - base) + b (m1 - base) in one pass */
    x[0] = in->m[0];
    x[1] = in->m[1];
    x[2] = in->base;
    w[0] = (float)a;
    w[1] = (float)b;
    w[2] = (float)(1.0 - a - b);
    return call->k->weighted_sum(ctx, call->out, x, w, 3);
}

/* Rows along the last axis, as [rows, cols] temporaries when the chunk's
 * own rows are not those rows (3-D and up): v0, v1 then hold the vectors,
 * and *mix, where the rows are mixed, is v0's temporary (else out). */
static int32_t nuslerp_rows_view(amg_ctx *ctx, const amg_merge_call *call,
                                 const amg_tensor **v, uint64_t cols,
                                 amg_tensor **mix)
{
    const amg_host_api *host = call->host;
    int64_t shape[2];
    amg_tensor *r;
    int32_t rc, k;

    *mix = call->out;
    if (amg_tensor_row_numel(call->out) == cols)
        return AMG_OK;
    shape[0] = (int64_t)(amg_tensor_numel(call->out) / cols);
    shape[1] = (int64_t)cols;
    for (k = 0; k < 2; k++) {
        rc = host->tensor_new(ctx, amg_dl_make(AMG_DL_FLOAT, 32), 2, shape,
                              call->out->dl.device, &r);
        if (rc == AMG_OK)
            rc = host->tensor_copy(ctx, r, v[k]);
        if (rc != AMG_OK)
            return rc;
        v[k] = r;
        if (k == 0)
            *mix = r;
    }
    return AMG_OK;
}

/* mix row i = a_i v0 row i + b_i v1 row i, then + base: (p + q) + base,
 * each step rounded to f32 (1 * x is exact); a mix other than out (rows
 * of 3-D and up, see nuslerp_rows_view) is then copied into out. */
static int32_t nuslerp_combine_rows(amg_ctx *ctx, const amg_merge_call *call,
                                    const nuslerp_in *in, const amg_tensor **v,
                                    amg_tensor *dst, const float *a,
                                    const float *b)
{
    const amg_kernels *k = call->k;
    int32_t rc;

    rc = k->row_axpby(ctx, dst, a, v[0], b, v[1]);
    if (rc == AMG_OK && in->base != NULL)
        rc = k->axpby(ctx, dst, 1.0f, dst, 1.0f, in->base);
    if (rc == AMG_OK && dst != call->out)
        rc = call->host->tensor_copy(ctx, call->out, dst);
    return rc;
}

static int32_t nuslerp_apply_rows(amg_ctx *ctx, const amg_merge_call *call,
                                  const nuslerp_in *in)
{
    const amg_host_api *host = call->host;
    const amg_tensor *v[2];
    amg_tensor *mix = NULL;
    uint64_t cols = (uint64_t)call->out->dl.shape[call->out->dl.ndim - 1];
    uint64_t rows = cols ? amg_tensor_numel(call->out) / cols : 0, r;
    double *sums = NULL;
    float *ab = NULL;
    int32_t rc;

    if (rows == 0)
        return AMG_OK;
    if (call->k->row_axpby == NULL)
        return host->fail(ctx, AMG_EUNSUPPORTED, "the host's kernel table "
                          "has no row_axpby (the host is older than this "
                          "plugin); nuslerp_flatten: false needs it");
    rc = nuslerp_vectors(ctx, call, in, v);
    if (rc == AMG_OK)
        rc = nuslerp_rows_view(ctx, call, v, cols, &mix);
    if (rc != AMG_OK)
        return rc;
    sums = host->mem_alloc(ctx, 3 * rows * sizeof(double), 0);
    ab = host->mem_alloc(ctx, 2 * rows * sizeof(float), 0);
    if (sums == NULL || ab == NULL) {
        rc = host->fail(ctx, AMG_ENOMEM, "out of memory for %llu row sums",
                        (unsigned long long)rows);
        goto done;
    }
    rc = call->k->row_dot(ctx, v[0], v[0], sums);
    if (rc == AMG_OK)
        rc = call->k->row_dot(ctx, v[1], v[1], sums + rows);
    if (rc == AMG_OK)
        rc = call->k->row_dot(ctx, v[0], v[1], sums + 2 * rows);
    for (r = 0; rc == AMG_OK && r < rows; r++) {
        double a, b;

        rc = amg__slerp_finite(ctx, call, sums[r] + sums[rows + r] +
                               sums[2 * rows + r], "a row's norm or dot "
                               "product");
        nuslerp_coeffs(in->t, sums[r], sums[rows + r], sums[2 * rows + r],
                       &a, &b);
        ab[r] = (float)a;
        ab[rows + r] = (float)b;
    }
    if (rc == AMG_OK)
        rc = nuslerp_combine_rows(ctx, call, in, v, mix, ab, ab + rows);
done:
    host->mem_free(ctx, sums);
    host->mem_free(ctx, ab);
    return rc;
}

static int32_t nuslerp_apply(void *inst, amg_ctx *ctx,
                             const amg_merge_call *call, void *stats)
{
    nuslerp_in in;
    int32_t rc;

    (void)inst;
    rc = nuslerp_inputs(ctx, call, &in);
    if (rc != AMG_OK)
        return rc;
    if (in.flatten)
        return nuslerp_apply_flat(ctx, call, &in, stats);
    return nuslerp_apply_rows(ctx, call, &in);
}

static int32_t nuslerp_merge(void *inst, amg_ctx *ctx,
                             const amg_merge_call *call)
{
    nuslerp_stats st = { 0.0, 0.0, 0.0 };
    int32_t rc = nuslerp_reduce(inst, ctx, call, &st);

    if (rc == AMG_OK)
        rc = nuslerp_apply(inst, ctx, call, &st);
    return rc;
}

const amg_strategy amg__nuslerp_strategy = {
    .struct_size = sizeof(amg_strategy),
    .reduce_passes = 1,
    .id = "nuslerp",
    .summary = "SLERP of two models by weights, of task vectors with a base "
               "(mergekit's nuslerp)",
    .help =
        "Exactly two models, each with a weight, and an optional base_model\n"
        "(listed among the models or not). t = w2 / (w1 + w2), 0.5 when\n"
        "|w1 + w2| < 1e-6. With a base the task vectors v_k = model_k - base\n"
        "are interpolated and the base added back; without one, the models.\n"
        "\n"
        "  cos = <v0/max(|v0|,1e-7), v1/max(|v1|,1e-7)>, clamped to [-1,1]\n"
        "  theta = acos(cos)\n"
        "  |sin theta| < 1e-8:  r = (1-t) v0 + t v1\n"
        "  else:  r = (sin((1-t) theta) v0 + sin(t theta) v1) / sin theta\n"
        "\n"
        "Parameters: weight (required, per model); nuslerp_flatten (default\n"
        "true): one angle per tensor, or with false one per row along the\n"
        "last axis (a 1-D tensor is one row either way); nuslerp_row_wise\n"
        "(default false): mergekit's rows along dimension 0 (per column),\n"
        "not supported yet with nuslerp_flatten false (refused at load).\n"
        "\n"
        "Differences from mergekit: computed in f32 with f64 sums and\n"
        "double coefficients (mergekit works in the merge dtype, bf16 for\n"
        "bf16 merges); with a base the result is formed in one pass as\n"
        "a m0 + b m1 + (1-a-b) base. A tensor holding inf or NaN fails.\n"
        "\n"
        "References: mergekit merge_methods/nuslerp.py; K. Shoemake,\n"
        "SIGGRAPH 1985.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_TWO_PASS | AMG_CAP_REENTRANT,
    .min_inputs = 2,
    .max_inputs = 3,
    .n_params = sizeof(nuslerp_params) / sizeof(nuslerp_params[0]),
    .params = nuslerp_params,
    .create = nuslerp_create,
    .merge = nuslerp_merge,
    .stats_bytes = sizeof(nuslerp_stats),
    .reduce = nuslerp_reduce,
    .apply = nuslerp_apply,
};
