/* SPDX-License-Identifier: Apache-2.0 */
/*
 * median.c - an amalgam strategy plugin: the elementwise median of the
 * input models.
 *
 * The median is the merge that a single outlier cannot drag: with three
 * fine-tunes of one base, an element that one of them moved far keeps the
 * value the other two agree on, where an average would move a third of the
 * way. It is also a complete example of the SDK: a module descriptor, a
 * parameter schema, capability bits, errors through host->fail, scratch
 * memory from the host and an abort check, built with nothing but
 * `pkg-config --cflags amalgam-plugin`.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <amalgam/amalgam.h>

/* Elements between two abort polls: rare enough to cost nothing, often
 * enough that Ctrl-C on a 500M-element embedding answers at once. Counted
 * in elements, not rows, because a 1-D tensor has one element per row. */
#define MEDIAN_POLL_ELEMS 65536u

/* Median of v[0..n-1], n >= 1; v is reordered. An insertion sort, because
 * n is the number of models (a handful) and it needs no recursion or
 * library call. Any NaN makes the result NaN, as numpy.median and
 * torch.median do: a NaN weight is a broken model, and hiding it in the
 * middle of the order would make the merge look fine. An even count takes
 * the mean of the two middle values in double, rounded once to float, so
 * the result equals a float64 reference cast to float32. */
static float median_of(float *v, uint32_t n)
{
    uint32_t i, j;

    for (i = 0; i < n; i++)
        if (isnan(v[i]))
            return v[i];
    for (i = 1; i < n; i++) {
        float x = v[i];

        for (j = i; j > 0 && v[j - 1] > x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
    if (n % 2)
        return v[n / 2];
    return (float)(((double)v[n / 2 - 1] + (double)v[n / 2]) * 0.5);
}

/* Non-zero when t can be read as a flat float array in this process. The
 * host converts every input to f32 before a merge, but a plugin must not
 * assume the device: under a CUDA backend dl.data would be a device
 * pointer and reading it here would crash. */
static int median_readable(const amg_tensor *t)
{
    return amg_tensor_is_f32(t) && t->dl.device.type == AMG_DEVICE_CPU &&
           (t->dl.strides == NULL || (t->flags & AMG_TENSOR_CONTIGUOUS));
}

/* One operand: readable here and as long as the output. label and index
 * name it in the message ("input model 2", counted from 1 as the models
 * are listed in the pipeline; "the base"). */
static int32_t median_check_one(amg_ctx *ctx, const amg_host_api *host,
                                const amg_tensor *t, const char *label,
                                int index, uint64_t numel)
{
    char name[32];

    if (index >= 0)
        snprintf(name, sizeof(name), "%s %d", label, index);
    else
        snprintf(name, sizeof(name), "%s", label);
    if (!median_readable(t))
        return host->fail(ctx, AMG_EUNSUPPORTED,
                          "median runs on f32 cpu tensors only: %s is on "
                          "device type %d with dtype code %u, %u bits",
                          name, (int)t->dl.device.type,
                          (unsigned)t->dl.dtype.code,
                          (unsigned)t->dl.dtype.bits);
    if (amg_tensor_numel(t) != numel)
        return host->fail(ctx, AMG_EINVAL,
                          "%s has %llu elements, the output %llu", name,
                          (unsigned long long)amg_tensor_numel(t),
                          (unsigned long long)numel);
    return AMG_OK;
}

/* Check every tensor of the call before touching any data, so a failure
 * leaves out untouched and names the culprit. */
static int32_t median_check(amg_ctx *ctx, const amg_merge_call *call,
                            const amg_tensor *base, uint64_t numel)
{
    int32_t rc;
    uint32_t i;

    rc = median_check_one(ctx, call->host, call->out, "the output", -1,
                          numel);
    for (i = 0; rc == AMG_OK && i < call->n_inputs; i++)
        rc = median_check_one(ctx, call->host, call->inputs[i],
                              "input model", (int)i + 1, numel);
    if (rc == AMG_OK && base != NULL)
        rc = median_check_one(ctx, call->host, base, "the base", -1, numel);
    return rc;
}

static int32_t median_merge(void *inst, amg_ctx *ctx,
                            const amg_merge_call *call)
{
    const amg_host_api *host = call->host;
    const amg_tensor *base = NULL;
    const float **src = NULL;
    float *vals = NULL, *out;
    int32_t include_base = 0, rc;
    uint64_t numel, i;
    uint32_t n, j;

    (void)inst;
    rc = host->param_bool(call->params, "include_base", &include_base);
    if (rc != AMG_OK)
        return host->fail(ctx, rc, "cannot read parameter 'include_base': %s",
                          amg_status_str(rc));
    if (include_base) {
        if (call->base == NULL)
            return host->fail(ctx, AMG_EINVAL,
                              "include_base is set but the step has no "
                              "base model: set base_model or drop "
                              "include_base");
        base = call->base;
    }
    /* The host enforces min_inputs; this keeps a direct caller (a test
     * harness) from reading past the inputs array. */
    if (call->n_inputs < 2)
        return host->fail(ctx, AMG_EINVAL,
                          "median needs at least 2 input models, got %u",
                          (unsigned)call->n_inputs);
    n = call->n_inputs + (base != NULL);
    numel = amg_tensor_numel(call->out);
    rc = median_check(ctx, call, base, numel);
    if (rc != AMG_OK)
        return rc;

    /* Heap, not a stack array: the count of models has no bound. The
     * host's allocator, as the SDK asks, so the host may pool or account
     * for plugin memory without plugins changing. */
    src = (const float **)host->mem_alloc(ctx, n * sizeof(*src), 0);
    vals = (float *)host->mem_alloc(ctx, n * sizeof(*vals), 0);
    if (src == NULL || vals == NULL) {
        rc = host->fail(ctx, AMG_ENOMEM,
                        "cannot allocate scratch for %u models", (unsigned)n);
        goto done;
    }
    for (j = 0; j < call->n_inputs; j++)
        src[j] = (const float *)amg_tensor_data(call->inputs[j]);
    if (base != NULL)
        src[n - 1] = (const float *)amg_tensor_data(base);
    out = (float *)amg_tensor_data(call->out);

    for (i = 0; i < numel; i++) {
        if (i % MEDIAN_POLL_ELEMS == 0 && host->should_abort(ctx)) {
            rc = host->fail(ctx, AMG_EABORTED, "stopped on request");
            goto done;
        }
        for (j = 0; j < n; j++)
            vals[j] = src[j][i];
        /* Every input value is read before out[i] is written, so an out
         * that aliases an input is still right. */
        out[i] = median_of(vals, n);
    }
    rc = AMG_OK;
done:
    host->mem_free(ctx, vals);
    host->mem_free(ctx, (void *)src);
    return rc;
}

static const amg_param_spec median_params[] = {
    {
        .struct_size = (uint32_t)sizeof(amg_param_spec),
        .type = AMG_PARAM_BOOL,
        .scope = AMG_SCOPE_GLOBAL,
        .name = "include_base",
        .help = "count the base model as one more voter (needs a base "
                "model)",
        .def = 0,
    },
};

static const amg_strategy median_strategy = {
    .struct_size = (uint32_t)sizeof(amg_strategy),
    .id = "median",
    .summary = "elementwise median of the input models",
    .help = "out[i] = median(x_1[i], ..., x_n[i]) over the n input models, "
            "plus the base model when include_base is set. For an even "
            "count, the mean of the two middle values. Any NaN among the "
            "values gives NaN. Robust to one outlying model where an "
            "average is not; with two models it equals their average.",
    .caps = AMG_CAP_CPU | AMG_CAP_ELEMENTWISE | AMG_CAP_REENTRANT,
    .min_inputs = 2,
    .max_inputs = 0,
    .n_params = sizeof(median_params) / sizeof(median_params[0]),
    .params = median_params,
    .merge = median_merge,
};

static const amg_strategy *const median_strategies[] = {&median_strategy};

static const amg_module median_module = {
    AMG_MODULE_HEAD,
    .name = "median",
    .version = "1.0.0",
    .license = "Apache-2.0",
    .description = "SDK example: elementwise median of models",
    .n_strategies = 1,
    .strategies = median_strategies,
};

AMG_PLUGIN_DEFINE(median_module)
