/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fisher.c - the `fisher` strategy: Fisher-weighted averaging (Matena and
 * Raffel, arXiv 2111.09832), with each model's diagonal Fisher read from
 * its `fisher:` file as the merge call's auxiliary tensors.
 *
 *   out = sum_i c_i * F'_i * x_i / sum_i c_i * F'_i        (per element)
 *   F'_i = F_i + epsilon  (epsilon_mode add, MergeLM/FusionBench)
 *        = max(F_i, epsilon)  (floor, the original code's fisher_floor)
 *
 * Numerator and denominator are summed in double, in input order, and the
 * quotient rounded once to f32: the Fisher entries span many decades
 * (squared gradients near 1e-12 next to 1e-2), where an f32 running sum
 * would drop the small terms. An input whose file lacks the tensor (or
 * that has no file) counts as F = 0, so it weighs epsilon. When no input
 * has the tensor, `fallback` decides: average (mergekit's linear with
 * these weights, bit for bit) or base (the base model's value).
 *
 * normalize_fishers divides c_i by ||F_i||, the L2 norm over every entry
 * of model i's file, as the original code does (mmatena/model_merging,
 * merging.py): the scale of a Fisher depends on the data and loss it was
 * estimated with, so raw Fishers from different tasks are not comparable.
 * A strategy sees only row chunks, so the norm cannot be computed here:
 * the host computes it once per file while planning and hands it over as
 * the per-model parameter fisher_norm. That keeps the ABI as it is (aux
 * stays the Fisher as stored) and the arithmetic in double, here; the
 * default 0 means "not computed", which a normalising merge refuses
 * rather than silently skip the normalisation under another host.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <amalgam/amalgam.h>

static const char *const EPS_MODES[] = { "add", "floor", NULL };
static const char *const FALLBACKS[] = { "average", "base", NULL };

/* Host-filled parameter: the plan sets it from the file, never the user. */
#define FISHER_NORM "fisher_norm"

static const amg_param_spec fisher_params[] = {
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_F64,
      .scope = AMG_SCOPE_PER_MODEL, .flags = AMG_PARAM_GRADIENT,
      .name = "weight", .def = 1.0,
      .help = "merging coefficient c_i of this model" },
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_F64,
      .scope = AMG_SCOPE_GLOBAL, .flags = AMG_PARAM_HAS_MIN,
      .name = "epsilon", .def = 1e-6, .min = 0.0,
      .help = "added to (or flooring) every Fisher entry" },
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_STR,
      .scope = AMG_SCOPE_GLOBAL, .name = "epsilon_mode", .def_str = "add",
      .choices = EPS_MODES,
      .help = "add: F + epsilon; floor: max(F, epsilon)" },
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_STR,
      .scope = AMG_SCOPE_GLOBAL, .name = "fallback", .def_str = "average",
      .choices = FALLBACKS,
      .help = "tensors no model has a Fisher for: average (weighted, as "
              "linear) or base (the base model's value)" },
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_BOOL,
      .scope = AMG_SCOPE_GLOBAL, .name = "normalize_fishers", .def = 0.0,
      .help = "divide each model's weight by the L2 norm of its whole "
              "Fisher file (one value per step)" },
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_F64,
      .scope = AMG_SCOPE_PER_MODEL, .flags = AMG_PARAM_HAS_MIN,
      .name = FISHER_NORM, .def = 0.0, .min = 0.0,
      .help = "set by amalgam under normalize_fishers: the L2 norm of the "
              "model's Fisher file; not for pipelines" },
};

typedef struct fisher_opts {
    double eps;
    int floor;                         /* epsilon_mode floor */
    int base;                          /* fallback base */
    int32_t normalize;                 /* normalize_fishers */
} fisher_opts;

static int32_t read_opts(amg_ctx *ctx, const amg_merge_call *call,
                         fisher_opts *o)
{
    const amg_host_api *host = call->host;
    const char *mode = NULL, *fb = NULL;

    if (host->param_f64(call->params, "epsilon", &o->eps) != AMG_OK ||
        host->param_str(call->params, "epsilon_mode", &mode) != AMG_OK ||
        host->param_str(call->params, "fallback", &fb) != AMG_OK ||
        host->param_bool(call->params, "normalize_fishers", &o->normalize) !=
            AMG_OK)
        return host->fail(ctx, AMG_EINVAL, "cannot read the parameters of "
                          "fisher for tensor '%s'", call->tensor_name);
    o->floor = strcmp(mode, "floor") == 0;
    o->base = strcmp(fb, "base") == 0;
    return AMG_OK;
}

static int32_t read_weights(amg_ctx *ctx, const amg_merge_call *call,
                            double *c)
{
    const amg_host_api *host = call->host;
    uint32_t i;

    for (i = 0; i < call->n_inputs; i++)
        if (host->param_f64(call->input_params[i], "weight", &c[i]) != AMG_OK)
            return host->fail(ctx, AMG_EINVAL, "cannot read 'weight' of "
                              "input model %u", (unsigned)i + 1);
    return AMG_OK;
}

/* cf_i = c_i / ||F_i|| under normalize_fishers, else c_i. */
static int32_t fisher_coeffs(amg_ctx *ctx, const amg_merge_call *call,
                             const fisher_opts *o, const double *c,
                             double *cf)
{
    const amg_host_api *host = call->host;
    double norm;
    uint32_t i;

    for (i = 0; i < call->n_inputs; i++) {
        cf[i] = c[i];
        if (!o->normalize)
            continue;
        if (host->param_f64(call->input_params[i], FISHER_NORM, &norm) !=
                AMG_OK || !(norm > 0.0))
            return host->fail(ctx, AMG_EUNSUPPORTED, "normalize_fishers "
                              "needs the host to set '" FISHER_NORM "' of "
                              "input model %u (the L2 norm of its Fisher "
                              "file), but it is not set", (unsigned)i + 1);
        cf[i] = c[i] / norm;
    }
    return AMG_OK;
}

/* The Fisher-weighted quotient over the call's rows; the kernel fails,
 * naming the element, where the weights sum to 0. */
static int32_t weigh(amg_ctx *ctx, const amg_merge_call *call,
                     const fisher_opts *o, const double *c)
{
    if (call->k->weighted_quotient == NULL)
        return call->host->fail(ctx, AMG_EUNSUPPORTED, "the host's kernel "
                                "table has no weighted_quotient (the host "
                                "is older than this plugin)");
    return call->k->weighted_quotient(ctx, call->out, call->inputs,
                                      call->aux, c, call->n_inputs, o->eps,
                                      o->floor);
}

/* No Fisher anywhere: linear's arithmetic, so the result equals a linear
 * merge with the same weights bit for bit. */
static int32_t average(amg_ctx *ctx, const amg_merge_call *call,
                       const double *c)
{
    const amg_host_api *host = call->host;
    amg_tensor *d = NULL;
    float *w = host->mem_alloc(ctx, call->n_inputs * sizeof(float), 0);
    double sum = 0.0;
    uint32_t i;
    int32_t rc;

    if (w == NULL)
        return host->fail(ctx, AMG_ENOMEM, "out of memory for %u weights",
                          (unsigned)call->n_inputs);
    for (i = 0; i < call->n_inputs; i++) {
        w[i] = (float)c[i];
        sum += c[i];
    }
    rc = sum == 0.0 ? host->fail(ctx, AMG_EINVAL, "no model has a Fisher "
                                 "for tensor '%s' and the weights sum to 0, "
                                 "so fallback average is undefined",
                                 call->tensor_name)
                    : call->k->weighted_sum(ctx, call->out, call->inputs, w,
                                            call->n_inputs);
    if (rc == AMG_OK && (float)sum != 1.0f)
        rc = host->tensor_new_like(ctx, call->out, call->out->dl.dtype, &d);
    if (rc == AMG_OK && d)
        rc = call->k->fill(ctx, d, (float)sum);
    if (rc == AMG_OK && d)
        rc = call->k->div(ctx, call->out, call->out, d);
    host->tensor_release(ctx, d);
    host->mem_free(ctx, w);
    return rc;
}

static int32_t from_base(amg_ctx *ctx, const amg_merge_call *call)
{
    if (call->base == NULL)
        return call->host->fail(ctx, AMG_EINVAL, "no model has a Fisher for "
                                "tensor '%s' and fallback is 'base', but the "
                                "step has no base_model", call->tensor_name);
    return call->host->tensor_copy(ctx, call->out, call->base);
}

static int32_t fisher_merge(void *inst, amg_ctx *ctx,
                            const amg_merge_call *call)
{
    const amg_host_api *host = call->host;
    fisher_opts o;
    double *c;
    uint32_t i, have = 0;
    int32_t rc;

    (void)inst;
    if (call->n_inputs == 0)
        return host->fail(ctx, AMG_EINVAL, "fisher needs at least one model");
    if (call->struct_size < offsetof(amg_merge_call, aux) + sizeof(call->aux))
        return host->fail(ctx, AMG_EUNSUPPORTED, "fisher needs a host that "
                          "passes auxiliary tensors (amg_merge_call.aux)");
    rc = read_opts(ctx, call, &o);
    if (rc != AMG_OK)
        return rc;
    /* c: the weights as given; after them, the Fisher coefficients */
    c = host->mem_alloc(ctx, 2 * call->n_inputs * sizeof(double), 0);
    if (c == NULL)
        return host->fail(ctx, AMG_ENOMEM, "out of memory for %u weights",
                          (unsigned)call->n_inputs);
    rc = read_weights(ctx, call, c);
    for (i = 0; call->aux && i < call->n_inputs; i++)
        have += call->aux[i] != NULL;
    if (rc == AMG_OK && have)
        rc = fisher_coeffs(ctx, call, &o, c, c + call->n_inputs);
    if (rc == AMG_OK && have)
        rc = weigh(ctx, call, &o, c + call->n_inputs);
    else if (rc == AMG_OK && o.base)
        rc = from_base(ctx, call);
    else if (rc == AMG_OK)
        rc = average(ctx, call, c);
    host->mem_free(ctx, c);
    return rc;
}

static const amg_strategy fisher_strategy = {
    .struct_size = sizeof(amg_strategy),
    .id = "fisher",
    .summary = "Fisher-weighted average of the models (Matena & Raffel)",
    .help =
        "out = sum_i c_i F'_i model_i / sum_i c_i F'_i per element, c_i the\n"
        "model's weight (default 1), F_i its diagonal Fisher from the file\n"
        "given as `fisher: PATH` on the model entry (tensors named like the\n"
        "model's, same shapes, float; see contrib/fisher/). F' = F + epsilon\n"
        "(epsilon_mode add, default) or max(F, epsilon) (floor); epsilon\n"
        "defaults to 1e-6. Sums run in double in model order; the quotient\n"
        "is rounded once to f32.\n"
        "\n"
        "A model without the tensor in its file (or without a file) counts\n"
        "as F = 0. When no model has it, fallback decides: average (the\n"
        "weighted average, identical to linear) or base (the base model's\n"
        "value; needs base_model).\n"
        "\n"
        "normalize_fishers: true (default false) divides each c_i by the\n"
        "L2 norm of the model's whole Fisher file (every float tensor in\n"
        "it, used or not), as the original code does: c_i / ||F_i|| times\n"
        "F'_i, so epsilon applies to the stored F. amalgam computes the\n"
        "norms while planning (a pass over each file, in double) and passes\n"
        "them as fisher_norm, which pipelines cannot set. It is one value\n"
        "per step (not a list, filter or slice setting); every model then\n"
        "needs a file, and a file whose norm is 0 is refused. The fallback\n"
        "average uses the weights as given.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_ELEMENTWISE |
            AMG_CAP_REENTRANT,
    .min_inputs = 1,
    .max_inputs = 0,
    .n_params = sizeof(fisher_params) / sizeof(fisher_params[0]),
    .params = fisher_params,
    .merge = fisher_merge,
    .aux_role = "fisher",
};

static const amg_strategy *const fisher_strategies[] = { &fisher_strategy };

static const amg_module fisher_module = {
    AMG_MODULE_HEAD,
    .name = "fisher",
    .version = AMG_VERSION_STRING,
    .license = "Apache-2.0",
    .description = "Fisher-weighted averaging with per-model Fisher files",
    .n_strategies = 1,
    .strategies = fisher_strategies,
};

AMG_PLUGIN_DEFINE(fisher_module)
