/* SPDX-License-Identifier: Apache-2.0 */
/*
 * good.c - a valid test module, "good", whose results a reader can work out
 * by hand:
 *   good_mean   out = sum_j c_j * x_j with per-model weights w_j:
 *               mode "plain" (default): c_j = w_j / n, so with the default
 *               w_j = 1 the plain mean; mode "scaled": c_j = w_j / sum w.
 *   good_first  out = x_0.
 * Built against the SDK headers alone, as a third-party plugin would be.
 */
#include <string.h>

#include <amalgam/amalgam.h>

static const char *const mode_choices[] = { "plain", "scaled", NULL };

static const amg_param_spec mean_params[] = {
    {
        .struct_size = (uint32_t)sizeof(amg_param_spec),
        .type = AMG_PARAM_F64,
        .scope = AMG_SCOPE_PER_MODEL,
        .flags = AMG_PARAM_HAS_MIN,
        .name = "weight",
        .help = "weight of the model (0 or more)",
        .def = 1.0,
        .min = 0.0,
    },
    {
        .struct_size = (uint32_t)sizeof(amg_param_spec),
        .type = AMG_PARAM_STR,
        .scope = AMG_SCOPE_GLOBAL,
        .name = "mode",
        .help = "plain: weight / n; scaled: weight / sum of weights",
        .def_str = "plain",
        .choices = mode_choices,
    },
};

static int32_t mean_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call)
{
    const amg_host_api *host = call->host;
    uint32_t n = call->n_inputs, j;
    const char *mode;
    double sum = 0.0;
    float *c;
    int32_t rc;

    (void)inst;
    if ((rc = host->param_str(call->params, "mode", &mode)))
        return host->fail(ctx, rc, "cannot read parameter 'mode'");
    c = host->mem_alloc(ctx, n * sizeof(float), 0);
    if (!c)
        return host->fail(ctx, AMG_ENOMEM, "out of memory");
    for (j = 0; j < n; j++) {
        double w;
        if ((rc = host->param_f64(call->input_params[j], "weight", &w))) {
            host->mem_free(ctx, c);
            return host->fail(ctx, rc, "cannot read 'weight' of model %u",
                              (unsigned)j);
        }
        c[j] = (float)w;
        sum += w;
    }
    if (strcmp(mode, "scaled") != 0)
        sum = (double)n;
    if (sum == 0.0) {
        host->mem_free(ctx, c);
        return host->fail(ctx, AMG_EINVAL, "weights sum to 0");
    }
    for (j = 0; j < n; j++)
        c[j] = (float)(c[j] / sum);
    rc = call->k->weighted_sum(ctx, call->out, call->inputs, c, n);
    host->mem_free(ctx, c);
    return rc;
}

static int32_t first_merge(void *inst, amg_ctx *ctx,
                           const amg_merge_call *call)
{
    (void)inst;
    return call->k->scale(ctx, call->out, 1.0f, call->inputs[0]);
}

static const amg_strategy good_mean = {
    .struct_size = (uint32_t)sizeof(amg_strategy),
    .id = "good_mean",
    .summary = "weighted mean of the inputs (test plugin)",
    .caps = AMG_CAP_ELEMENTWISE | AMG_CAP_CPU | AMG_CAP_REENTRANT,
    .min_inputs = 1,
    .n_params = sizeof(mean_params) / sizeof(mean_params[0]),
    .params = mean_params,
    .merge = mean_merge,
};

static const amg_strategy good_first = {
    .struct_size = (uint32_t)sizeof(amg_strategy),
    .id = "good_first",
    .summary = "the first input, unchanged (test plugin)",
    .caps = AMG_CAP_ELEMENTWISE | AMG_CAP_CPU | AMG_CAP_REENTRANT,
    .min_inputs = 1,
    .merge = first_merge,
};

static const amg_strategy *const good_strategies[] = { &good_mean,
                                                       &good_first };

/* Refuse a host table that lacks what merge calls: the check a careful
 * third-party plugin makes. */
static int32_t good_init(const amg_host_api *host, amg_ctx *ctx)
{
    if (host->abi_major != AMG_ABI_MAJOR || !AMG_HOST_HAS(host, fail) ||
        !AMG_HOST_HAS(host, param_str))
        return host->fail(ctx, AMG_EUNSUPPORTED, "host table too old");
    return AMG_OK;
}

static const amg_module good_module = {
    AMG_MODULE_HEAD,
    .name = "good",
    .version = "1.0.0",
    .license = "Apache-2.0",
    .description = "valid strategies for the loader tests",
    .init = good_init,
    .n_strategies = sizeof(good_strategies) / sizeof(good_strategies[0]),
    .strategies = good_strategies,
};

AMG_PLUGIN_DEFINE(good_module)
