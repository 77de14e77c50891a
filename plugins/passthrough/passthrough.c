/* SPDX-License-Identifier: Apache-2.0 */
/*
 * passthrough.c - the `passthrough` strategy: one model's tensor, as is or
 * scaled, with mergekit's meaning (merge_methods/passthrough.py).
 *
 *   out = scale * x        (scale per model, default 1)
 *
 * It does no merging of its own: frankenmerges get their layer stacking
 * and renumbering from the pipeline's slices (host/plan.c), and this
 * strategy copies each output tensor from the one source that provides it.
 * With scale 1 the tensor is copied, not multiplied, so the values come
 * through bit for bit (NaN payloads and signed zeros included).
 */
#include <stddef.h>
#include <stdint.h>

#include <amalgam/amalgam.h>

static const amg_param_spec passthrough_params[] = {
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_F64,
      .scope = AMG_SCOPE_PER_MODEL, .flags = AMG_PARAM_GRADIENT,
      .name = "scale", .def = 1.0,
      .help = "multiply the tensor by this (1: copy it unchanged)" },
};

static int32_t passthrough_merge(void *inst, amg_ctx *ctx,
                                 const amg_merge_call *call)
{
    const amg_host_api *host = call->host;
    double scale = 1.0;
    int32_t rc;

    (void)inst;
    if (call->n_inputs != 1)
        return host->fail(ctx, AMG_EINVAL, "passthrough takes exactly one "
                          "model, got %u", (unsigned)call->n_inputs);
    rc = host->param_f64(call->input_params[0], "scale", &scale);
    if (rc != AMG_OK)
        return host->fail(ctx, rc, "cannot read 'scale' of the input model");
    if (scale == 1.0)
        return host->tensor_copy(ctx, call->out, call->inputs[0]);
    return call->k->scale(ctx, call->out, (float)scale, call->inputs[0]);
}

static const amg_strategy passthrough_strategy = {
    .struct_size = sizeof(amg_strategy),
    .id = "passthrough",
    .summary = "copy one model's tensors, optionally scaled (mergekit's "
               "passthrough)",
    .help =
        "out = scale * model, for exactly one input model per tensor.\n"
        "scale (per model, default 1) may be a gradient or a filter list,\n"
        "e.g. `scale: [{filter: o_proj, value: 0}, {value: 1}]` to zero the\n"
        "attention output projections. A scale of exactly 1 copies the\n"
        "tensor bit for bit; other values multiply in f32 and round once\n"
        "to the output dtype.\n"
        "\n"
        "Use it with `slices` to stack layer ranges of different models\n"
        "(frankenmerges): output layers are renumbered consecutively over\n"
        "the slices, embeddings come from the first slice, the final norm\n"
        "and lm_head from the last, and config.json's num_hidden_layers is\n"
        "set to the new layer count.\n"
        "\n"
        "Same meaning as mergekit's `passthrough`, whose `scale` is also a\n"
        "per-model tensor parameter; mergekit leaves the tensor untouched\n"
        "when scale is unset, which here is the default 1.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_ELEMENTWISE |
            AMG_CAP_REENTRANT,
    .min_inputs = 1,
    .max_inputs = 1,
    .n_params = sizeof(passthrough_params) / sizeof(passthrough_params[0]),
    .params = passthrough_params,
    .merge = passthrough_merge,
};

static const amg_strategy *const passthrough_strategies[] = {
    &passthrough_strategy
};

static const amg_module passthrough_module = {
    AMG_MODULE_HEAD,
    .name = "passthrough",
    .version = AMG_VERSION_STRING,
    .license = "Apache-2.0",
    .description = "one model's tensors, optionally scaled (mergekit's "
                   "passthrough)",
    .n_strategies = 1,
    .strategies = passthrough_strategies,
};

AMG_PLUGIN_DEFINE(passthrough_module)
