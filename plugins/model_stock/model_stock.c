/* SPDX-License-Identifier: Apache-2.0 */
/*
 * model_stock.c - the `model_stock` strategy (Jang et al., "Model Stock:
 * All we need is just a few fine-tuned models", arXiv 2403.19522), with
 * mergekit's meaning (merge_methods/model_stock.py).
 *
 *   off_i = w_i - w0                               task vectors, f32
 *   cos   = mean over pairs i < j of
 *           clamp(<off_i,off_j> / max(|off_i| |off_j|, 1e-6), -1, 1)
 *   t     = N cos / (1 + (N - 1) cos)              N fine-tuned models
 *   out   = t * mean_i(w_i) + (1 - t) * w0
 *
 * Without filter_wise one cos covers the whole tensor, so the dot products
 * must see every row before any output row is written: a two-pass
 * strategy whose single reduce pass accumulates the Gram matrix of the
 * offsets. Each row's dot products are summed on their own and added to
 * the Gram matrix in row order, so the result does not depend on where
 * the host cuts the chunks. With filter_wise each row (each vector along
 * the last dimension) has its own cos and t, all known within the chunk,
 * so reduce has nothing to do and apply works row by row; 1-D tensors are
 * one row, as mergekit treats them.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <amalgam/amalgam.h>

/* The Gram matrix lives in the host's zeroed stats block, whose size is
 * fixed by the strategy: this bounds the models per merge. */
#define MS_MAX_INPUTS 16u
#define MS_GRAM (MS_MAX_INPUTS * (MS_MAX_INPUTS + 1u) / 2u)

typedef struct ms_stats {
    double gram[MS_GRAM];      /* <off_i, off_j>, i <= j, at ms_tri(i, j) */
} ms_stats;

static const amg_param_spec ms_params[] = {
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_BOOL,
      .scope = AMG_SCOPE_GLOBAL, .flags = AMG_PARAM_GRADIENT,
      .name = "filter_wise", .def = 0.0,
      .help = "one interpolation factor per row instead of per tensor" },
};

static uint32_t ms_tri(uint32_t i, uint32_t j)
{
    return j * (j + 1u) / 2u + i;
}

/* A 2-D view [rows, cols] of t's elements from element first on: lets the
 * row kernels see the tensor as the rows this strategy means. */
static void ms_view(amg_tensor *v, int64_t shape[2], const amg_tensor *t,
                    uint64_t first, uint64_t rows, uint64_t cols)
{
    memset(v, 0, sizeof(*v));
    v->struct_size = (uint32_t)sizeof(*v);
    v->flags = t->flags;
    v->dl = t->dl;
    v->dl.ndim = 2;
    shape[0] = (int64_t)rows;
    shape[1] = (int64_t)cols;
    v->dl.shape = shape;
    v->dl.strides = NULL;
    v->dl.byte_offset = t->dl.byte_offset + first * sizeof(float);
    v->name = t->name;
    v->elem_offset = t->elem_offset + first;
    v->full_numel = t->full_numel;
}

/* Is the tensor handled row by row? Vectors and scalars are one row. */
static int32_t ms_rowwise(amg_ctx *ctx, const amg_merge_call *call,
                          int32_t *rowwise)
{
    int32_t fw = 0, rc;

    rc = call->host->param_bool(call->params, "filter_wise", &fw);
    if (rc != AMG_OK)
        return call->host->fail(ctx, rc, "cannot read 'filter_wise'");
    *rowwise = fw && call->out->dl.ndim >= 2;
    return AMG_OK;
}

static int32_t ms_check(amg_ctx *ctx, const amg_merge_call *call)
{
    if (call->base == NULL)
        return call->host->fail(ctx, AMG_EINVAL, "model_stock needs a base "
                                "model");
    if (call->n_inputs < 2 || call->n_inputs > MS_MAX_INPUTS)
        return call->host->fail(ctx, AMG_EINVAL, "model_stock takes 2 to %u "
                                "models besides the base, got %u",
                                MS_MAX_INPUTS, (unsigned)call->n_inputs);
    return AMG_OK;
}

/* off[i] = inputs[i] - base, as temporaries of the chunk's shape. */
static int32_t ms_offsets(amg_ctx *ctx, const amg_merge_call *call,
                          amg_tensor **off)
{
    uint32_t i;
    int32_t rc = AMG_OK;

    for (i = 0; i < call->n_inputs && rc == AMG_OK; i++) {
        rc = call->host->tensor_new_like(ctx, call->out, call->out->dl.dtype,
                                         &off[i]);
        if (rc == AMG_OK)
            rc = call->k->axpby(ctx, off[i], 1.0f, call->inputs[i], -1.0f,
                                call->base);
    }
    return rc;
}

static void ms_release(const amg_merge_call *call, amg_ctx *ctx,
                       amg_tensor **off)
{
    uint32_t i;

    for (i = 0; i < call->n_inputs; i++) {
        call->host->tensor_release(ctx, off[i]);
        off[i] = NULL;
    }
}

/* dots[r] = <x_r, y_r> over rows of cols elements. */
static int32_t ms_row_dots(amg_ctx *ctx, const amg_merge_call *call,
                           const amg_tensor *x, const amg_tensor *y,
                           uint64_t rows, uint64_t cols, double *dots)
{
    int64_t sx[2], sy[2];
    amg_tensor vx, vy;

    ms_view(&vx, sx, x, 0, rows, cols);
    ms_view(&vy, sy, y, 0, rows, cols);
    return call->k->row_dot(ctx, &vx, &vy, dots);
}

/* The clamped cosine of one pair from its dot product and squared norms.
 * sqrt(a * b) rather than sqrt(a) * sqrt(b) makes equal task vectors give
 * exactly 1; the clamps are mergekit's. */
static double ms_pair_cos(double dot, double nn_i, double nn_j)
{
    double den = sqrt(nn_i * nn_j), c;

    if (den < 1e-6)
        den = 1e-6;
    c = dot / den;
    if (c > 1.0)
        c = 1.0;
    if (c < -1.0)
        c = -1.0;
    return c;
}

/* t from the mean cosine; a pole of the formula is an error, not inf. */
static int32_t ms_t(amg_ctx *ctx, const amg_merge_call *call, double cos,
                    uint64_t row, int32_t rowwise, double *t)
{
    double n = (double)call->n_inputs, den = 1.0 + (n - 1.0) * cos;

    if (den == 0.0) {
        if (rowwise)
            return call->host->fail(ctx, AMG_ERANGE, "task vectors of row "
                                    "%llu are opposed (mean cosine "
                                    "-1/(N-1) = %g, N = %u): t is undefined",
                                    (unsigned long long)row, cos,
                                    (unsigned)call->n_inputs);
        return call->host->fail(ctx, AMG_ERANGE, "task vectors are opposed "
                                "(mean cosine -1/(N-1) = %g, N = %u): t is "
                                "undefined", cos, (unsigned)call->n_inputs);
    }
    *t = n * cos / den;
    return AMG_OK;
}

/* out = t/N * sum_i w_i + (1 - t) * w0 on out, which already holds the
 * sum, for elements [first, first + rows * cols). */
static int32_t ms_blend(amg_ctx *ctx, const amg_merge_call *call, double t,
                        uint64_t first, uint64_t rows, uint64_t cols)
{
    int64_t so[2], sb[2];
    amg_tensor vo, vb;

    ms_view(&vo, so, call->out, first, rows, cols);
    ms_view(&vb, sb, call->base, first, rows, cols);
    return call->k->axpby(ctx, &vo, (float)(t / (double)call->n_inputs), &vo,
                          (float)(1.0 - t), &vb);
}

/* out = sum_i w_i, in input order (f32). */
static int32_t ms_sum(amg_ctx *ctx, const amg_merge_call *call)
{
    static const float ones[MS_MAX_INPUTS] = {
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
    };

    return call->k->weighted_sum(ctx, call->out, call->inputs, ones,
                                 call->n_inputs);
}

/* Reduce: add this chunk's <off_i, off_j> to the Gram matrix, row by row
 * (dimension 0) in row order. */
static int32_t ms_reduce(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                         void *stats)
{
    const amg_host_api *host = call->host;
    ms_stats *st = stats;
    amg_tensor *off[MS_MAX_INPUTS] = { NULL };
    uint64_t rows = amg_tensor_rows(call->out), r;
    uint64_t cols = amg_tensor_row_numel(call->out);
    double *dots = NULL;
    uint32_t i, j;
    int32_t rowwise = 0, rc;

    (void)inst;
    rc = ms_check(ctx, call);
    if (rc == AMG_OK)
        rc = ms_rowwise(ctx, call, &rowwise);
    if (rc != AMG_OK || rowwise || rows == 0 || cols == 0)
        return rc;
    dots = host->mem_alloc(ctx, rows * sizeof(double), 0);
    if (dots == NULL)
        return host->fail(ctx, AMG_ENOMEM, "out of memory for %llu row sums",
                          (unsigned long long)rows);
    rc = ms_offsets(ctx, call, off);
    for (j = 0; j < call->n_inputs && rc == AMG_OK; j++)
        for (i = 0; i <= j && rc == AMG_OK; i++) {
            rc = ms_row_dots(ctx, call, off[i], off[j], rows, cols, dots);
            for (r = 0; r < rows && rc == AMG_OK; r++)
                st->gram[ms_tri(i, j)] += dots[r];
        }
    ms_release(call, ctx, off);
    host->mem_free(ctx, dots);
    return rc;
}

/* The mean pairwise cosine of the whole tensor from the Gram matrix. */
static double ms_gram_cos(const ms_stats *st, uint32_t n)
{
    double acc = 0.0;
    uint32_t i, j;

    for (i = 0; i < n; i++)
        for (j = i + 1; j < n; j++)
            acc += ms_pair_cos(st->gram[ms_tri(i, j)], st->gram[ms_tri(i, i)],
                               st->gram[ms_tri(j, j)]);
    return acc / (double)(n * (n - 1u) / 2u);
}

/* Per-row cosines: cos[r] = mean pairwise cosine of row r; nn is scratch
 * of n * rows doubles, dots of rows. */
static int32_t ms_rows_cos(amg_ctx *ctx, const amg_merge_call *call,
                           amg_tensor **off, uint64_t rows, uint64_t cols,
                           double *nn, double *dots, double *cos)
{
    uint32_t n = call->n_inputs, i, j;
    uint64_t r;
    int32_t rc = AMG_OK;

    for (i = 0; i < n && rc == AMG_OK; i++)
        rc = ms_row_dots(ctx, call, off[i], off[i], rows, cols,
                         nn + (uint64_t)i * rows);
    for (r = 0; r < rows; r++)
        cos[r] = 0.0;
    for (i = 0; i < n && rc == AMG_OK; i++)
        for (j = i + 1; j < n && rc == AMG_OK; j++) {
            rc = ms_row_dots(ctx, call, off[i], off[j], rows, cols, dots);
            for (r = 0; r < rows && rc == AMG_OK; r++)
                cos[r] += ms_pair_cos(dots[r], nn[(uint64_t)i * rows + r],
                                      nn[(uint64_t)j * rows + r]);
        }
    for (r = 0; r < rows; r++)
        cos[r] /= (double)(n * (n - 1u) / 2u);
    return rc;
}

/* filter_wise: one t per vector along the last dimension of the chunk. */
static int32_t ms_apply_rows(amg_ctx *ctx, const amg_merge_call *call)
{
    const amg_host_api *host = call->host;
    amg_tensor *off[MS_MAX_INPUTS] = { NULL };
    const amg_tensor *o = call->out;
    uint64_t cols = (uint64_t)o->dl.shape[o->dl.ndim - 1];
    uint64_t rows = cols ? amg_tensor_numel(o) / cols : 0, r;
    uint64_t row0 = cols ? o->elem_offset / cols : 0;
    double *buf, t = 0.0;
    int32_t rc;

    if (rows == 0)
        return AMG_OK;
    buf = host->mem_alloc(ctx, (call->n_inputs + 2u) * rows *
                          sizeof(double), 0);
    if (buf == NULL)
        return host->fail(ctx, AMG_ENOMEM, "out of memory for %llu row "
                          "norms", (unsigned long long)rows);
    rc = ms_offsets(ctx, call, off);
    if (rc == AMG_OK)
        rc = ms_rows_cos(ctx, call, off, rows, cols, buf + 2u * rows, buf,
                         buf + rows);
    ms_release(call, ctx, off);
    if (rc == AMG_OK)
        rc = ms_sum(ctx, call);
    for (r = 0; r < rows && rc == AMG_OK; r++) {
        rc = ms_t(ctx, call, buf[rows + r], row0 + r, 1, &t);
        if (rc == AMG_OK)
            rc = ms_blend(ctx, call, t, r * cols, 1, cols);
        if (rc == AMG_OK && host->should_abort(ctx))
            rc = host->fail(ctx, AMG_EABORTED, "interrupted");
    }
    host->mem_free(ctx, buf);
    return rc;
}

static int32_t ms_apply(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                        void *stats)
{
    uint64_t numel = amg_tensor_numel(call->out);
    int32_t rowwise = 0, rc;
    double t = 0.0;

    (void)inst;
    rc = ms_check(ctx, call);
    if (rc == AMG_OK)
        rc = ms_rowwise(ctx, call, &rowwise);
    if (rc != AMG_OK || numel == 0)
        return rc;
    if (rowwise)
        return ms_apply_rows(ctx, call);
    rc = ms_t(ctx, call, ms_gram_cos(stats, call->n_inputs), 0, 0, &t);
    if (rc == AMG_OK)
        rc = ms_sum(ctx, call);
    if (rc == AMG_OK)
        rc = ms_blend(ctx, call, t, 0, 1, numel);
    return rc;
}

/* The whole tensor at once (no chunking, or a chained step). */
static int32_t ms_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call)
{
    ms_stats st;
    int32_t rc;

    memset(&st, 0, sizeof(st));
    rc = ms_reduce(inst, ctx, call, &st);
    if (rc == AMG_OK)
        rc = ms_apply(inst, ctx, call, &st);
    return rc;
}

static const amg_strategy ms_strategy = {
    .struct_size = sizeof(amg_strategy),
    .reduce_passes = 1,
    .id = "model_stock",
    .summary = "Model Stock: blend the base and the models' average by "
               "their task vectors' angle",
    .help =
        "With task vectors off_i = model_i - base for the N models:\n"
        "  cos = mean over pairs i < j of\n"
        "        clamp(<off_i,off_j> / max(|off_i| |off_j|, 1e-6), -1, 1)\n"
        "  t   = N cos / (1 + (N - 1) cos)\n"
        "  out = t * mean_i(model_i) + (1 - t) * base\n"
        "Needs base_model and 2 to 16 other models; they take no weights.\n"
        "\n"
        "filter_wise (default false): false computes one cos per tensor\n"
        "(all elements flattened); true computes one per row, i.e. per\n"
        "vector along the last dimension, with 1-D tensors as one row.\n"
        "\n"
        "Same meaning as mergekit's `model_stock`, which averages pairwise\n"
        "cosines where the paper (Jang et al., arXiv 2403.19522) only\n"
        "defines the angle of two models. Like mergekit, t is not clamped:\n"
        "a negative cos gives t < 0, and a mean cos of exactly -1/(N-1)\n"
        "(e.g. two exactly opposed task vectors) has no t and fails the\n"
        "merge instead of writing inf or NaN. Dot products accumulate in\n"
        "f64 (per row, then over rows in order, so any chunking gives the\n"
        "same bytes); cos and t are f64; the blend t/N * sum + (1 - t) *\n"
        "base runs in f32.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_NEEDS_BASE |
            AMG_CAP_TWO_PASS | AMG_CAP_REENTRANT,
    .min_inputs = 2,
    .max_inputs = MS_MAX_INPUTS,
    .n_params = sizeof(ms_params) / sizeof(ms_params[0]),
    .params = ms_params,
    .merge = ms_merge,
    .stats_bytes = sizeof(ms_stats),
    .reduce = ms_reduce,
    .apply = ms_apply,
};

static const amg_strategy *const ms_strategies[] = { &ms_strategy };

static const amg_module ms_module = {
    AMG_MODULE_HEAD,
    .name = "model_stock",
    .version = AMG_VERSION_STRING,
    .license = "Apache-2.0",
    .description = "Model Stock merging (mergekit's model_stock)",
    .n_strategies = 1,
    .strategies = ms_strategies,
};

AMG_PLUGIN_DEFINE(ms_module)
