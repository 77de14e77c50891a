/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crash.c - test strategies that go wrong on purpose, for the fault tests
 * (tests/cli/faults.sh):
 *   crash_null  copies its first input, but on the first tensor whose name
 *               contains the parameter `at` ("" matches every tensor)
 *               writes through a NULL pointer (SIGSEGV).
 *   crash_fail  the same, but returns an error with a message instead.
 * Every other tensor is copied, so part of the output is written before
 * the failure.
 */
#include <string.h>

#include <amalgam/amalgam.h>

static const amg_param_spec crash_params[] = {
    {
        .struct_size = (uint32_t)sizeof(amg_param_spec),
        .type = AMG_PARAM_STR,
        .scope = AMG_SCOPE_GLOBAL,
        .name = "at",
        .help = "fail on the first tensor whose name contains this",
        .def_str = "",
    },
};

/* 1 when this call is the one to fail. */
static int hit(amg_ctx *ctx, const amg_merge_call *call, int32_t *rc)
{
    const char *at = "";

    *rc = call->host->param_str(call->params, "at", &at);
    if (*rc) {
        *rc = call->host->fail(ctx, *rc, "cannot read parameter 'at'");
        return 0;
    }
    return strstr(call->tensor_name, at) != NULL;
}

/* UBSan would stop at the NULL store itself: the test wants the signal */
#if defined(__GNUC__)
__attribute__((no_sanitize("undefined")))
#endif
static int32_t null_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call)
{
    int32_t rc;

    (void)inst;
    if (hit(ctx, call, &rc)) {
        /* volatile twice: else the compiler drops a store it proves is UB */
        volatile float *volatile p = NULL;
        *p = 1.0f;
    }
    if (rc)
        return rc;
    return call->k->scale(ctx, call->out, 1.0f, call->inputs[0]);
}

static int32_t fail_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call)
{
    int32_t rc;

    (void)inst;
    if (hit(ctx, call, &rc))
        return call->host->fail(ctx, AMG_EINVAL,
                                "refusing '%s' on purpose (test plugin)",
                                call->tensor_name);
    if (rc)
        return rc;
    return call->k->scale(ctx, call->out, 1.0f, call->inputs[0]);
}

static const amg_strategy crash_null = {
    .struct_size = (uint32_t)sizeof(amg_strategy),
    .id = "crash_null",
    .summary = "crashes (NULL write) on a chosen tensor (test plugin)",
    .caps = AMG_CAP_CPU,
    .min_inputs = 1,
    .n_params = 1,
    .params = crash_params,
    .merge = null_merge,
};

static const amg_strategy crash_fail = {
    .struct_size = (uint32_t)sizeof(amg_strategy),
    .id = "crash_fail",
    .summary = "returns an error on a chosen tensor (test plugin)",
    .caps = AMG_CAP_CPU,
    .min_inputs = 1,
    .n_params = 1,
    .params = crash_params,
    .merge = fail_merge,
};

static const amg_strategy *const crash_strategies[] = { &crash_null,
                                                        &crash_fail };

static const amg_module crash_module = {
    AMG_MODULE_HEAD,
    .name = "crash",
    .version = "1.0.0",
    .license = "Apache-2.0",
    .description = "strategies that fail on purpose, for the fault tests",
    .n_strategies = sizeof(crash_strategies) / sizeof(crash_strategies[0]),
    .strategies = crash_strategies,
};

AMG_PLUGIN_DEFINE(crash_module)
