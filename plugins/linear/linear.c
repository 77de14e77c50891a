/* SPDX-License-Identifier: Apache-2.0 */
/*
 * linear.c - the `linear` strategy: a weighted average of the input models,
 * with mergekit's meaning (merge_methods/linear.py).
 *
 *   out = sum_i w_i * x_i                  (f32, inputs in pipeline order)
 *   out = out / s,  s = sum_i w_i          (when normalize, the default)
 *
 * s is summed in double from the weights as written, rounded once to float,
 * and every element is divided by it in f32 (a true division, as torch's
 * `res / weights.sum()` is, not a multiplication by 1/s, which rounds
 * differently). The base model takes no part unless it is also listed among
 * the models, as in mergekit where it is just another input.
 */
#include <stddef.h>
#include <stdint.h>

#include <amalgam/amalgam.h>

static const amg_param_spec linear_params[] = {
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_F64,
      .scope = AMG_SCOPE_PER_MODEL,
      .flags = AMG_PARAM_REQUIRED | AMG_PARAM_GRADIENT,
      .name = "weight",
      .help = "weight of this model in the sum (may be negative)" },
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_BOOL,
      .scope = AMG_SCOPE_GLOBAL, .flags = AMG_PARAM_GRADIENT,
      .name = "normalize", .def = 1.0,
      .help = "divide by the sum of the weights" },
};

/* Weights of the call as floats (the kernel takes float weights, as
 * mergekit casts them to the tensors' dtype) and their exact sum. */
static int32_t linear_weights(amg_ctx *ctx, const amg_merge_call *call,
                              float *w, double *sum)
{
    const amg_host_api *host = call->host;
    uint32_t i;
    double v;
    int32_t rc;

    *sum = 0.0;
    for (i = 0; i < call->n_inputs; i++) {
        rc = host->param_f64(call->input_params[i], "weight", &v);
        if (rc != AMG_OK)
            return host->fail(ctx, rc, "input model %u has no 'weight'%s",
                              (unsigned)i + 1,
                              call->inputs[i] == call->base
                                  ? " (it is the base model: linear averages "
                                    "it like any listed model, so give it a "
                                    "weight)"
                                  : "");
        w[i] = (float)v;
        *sum += v;
    }
    return AMG_OK;
}

/* out /= s elementwise. A divisor of exactly 1 changes nothing, so the
 * common normalised case skips the pass and its temporary. */
static int32_t linear_divide(amg_ctx *ctx, const amg_merge_call *call,
                             float s)
{
    const amg_host_api *host = call->host;
    amg_tensor *d = NULL;
    int32_t rc;

    if (s == 1.0f)
        return AMG_OK;
    rc = host->tensor_new_like(ctx, call->out, call->out->dl.dtype, &d);
    if (rc == AMG_OK)
        rc = call->k->fill(ctx, d, s);
    if (rc == AMG_OK)
        rc = call->k->div(ctx, call->out, call->out, d);
    host->tensor_release(ctx, d);
    return rc;
}

static int32_t linear_merge(void *inst, amg_ctx *ctx,
                            const amg_merge_call *call)
{
    const amg_host_api *host = call->host;
    int32_t normalize = 1, rc;
    float *w;
    double sum;

    (void)inst;
    if (call->n_inputs == 0)
        return host->fail(ctx, AMG_EINVAL, "linear needs at least one model");
    rc = host->param_bool(call->params, "normalize", &normalize);
    if (rc != AMG_OK)
        return host->fail(ctx, rc, "cannot read 'normalize'");
    w = host->mem_alloc(ctx, call->n_inputs * sizeof(float), 0);
    if (w == NULL)
        return host->fail(ctx, AMG_ENOMEM, "out of memory for %u weights",
                          (unsigned)call->n_inputs);
    rc = linear_weights(ctx, call, w, &sum);
    if (rc == AMG_OK && normalize && sum == 0.0)
        rc = host->fail(ctx, AMG_EINVAL, "weights sum to 0 for tensor '%s'; "
                        "set normalize: false or change the weights",
                        call->tensor_name);
    if (rc == AMG_OK)
        rc = call->k->weighted_sum(ctx, call->out, call->inputs, w,
                                   call->n_inputs);
    if (rc == AMG_OK && normalize)
        rc = linear_divide(ctx, call, (float)sum);
    host->mem_free(ctx, w);
    return rc;
}

static const amg_strategy linear_strategy = {
    .struct_size = sizeof(amg_strategy),
    .id = "linear",
    .summary = "weighted average of the models (mergekit's linear)",
    .help =
        "out = sum_i weight_i * model_i, divided by sum_i weight_i when\n"
        "normalize is true (the default). Sums run in f32 in the order the\n"
        "models are listed; the weight total is summed in double and the\n"
        "division is a true f32 division per element. A total of 0 with\n"
        "normalize is an error rather than inf/NaN.\n"
        "\n"
        "Same meaning as mergekit's `linear`: weight is required for every\n"
        "model and may be a gradient or a filter list; the base model is\n"
        "ignored unless it is listed among the models.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_ELEMENTWISE |
            AMG_CAP_REENTRANT,
    .min_inputs = 1,
    .max_inputs = 0,
    .n_params = sizeof(linear_params) / sizeof(linear_params[0]),
    .params = linear_params,
    .merge = linear_merge,
};

static const amg_strategy *const linear_strategies[] = { &linear_strategy };

static const amg_module linear_module = {
    AMG_MODULE_HEAD,
    .name = "linear",
    .version = AMG_VERSION_STRING,
    .license = "Apache-2.0",
    .description = "weighted average of models (mergekit's linear)",
    .n_strategies = 1,
    .strategies = linear_strategies,
};

AMG_PLUGIN_DEFINE(linear_module)
