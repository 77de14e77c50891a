/* SPDX-License-Identifier: Apache-2.0 */
/*
 * broken.c - one source for every deliberately broken test plugin. Each
 * build defines exactly one BROKEN_* macro (Makefile.am) and is otherwise a
 * valid module with one strategy, so the loader's refusal can only come
 * from that one defect:
 *   BROKEN_BAD_MAGIC       magic is not "AMG1"
 *   BROKEN_ABI_MAJOR       built for ABI major + 1
 *   BROKEN_ABI_MINOR_NEW   built for ABI minor + 1 (newer than the host)
 *   BROKEN_STRUCT_SMALL    module struct_size short of the 0.1 members
 *   BROKEN_BUILD_MISMATCH  build block claims another pointer size
 *   BROKEN_INIT_FAIL       init fails with a message
 *   BROKEN_NO_ENTRY        exports no amg_plugin_entry
 *   BROKEN_MISSING_MERGE   the strategy has no merge function
 *   BROKEN_BAD_ID          the strategy id is "Bad-Id"
 *   BROKEN_BAD_PARAM       a parameter default lies outside its range
 *   BROKEN_DUP_ID          the strategy id is "good_mean", as in good.so
 *   BROKEN_UNRESOLVED      references a function nothing defines
 */
#include <stddef.h>

#include <amalgam/amalgam.h>

#ifdef BROKEN_UNRESOLVED
/* defined nowhere: dlopen(RTLD_NOW) must refuse the object */
extern int32_t amg_broken_no_such_function(void);
#endif

#ifndef BROKEN_MISSING_MERGE
static int32_t one_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call)
{
    (void)inst;
#ifdef BROKEN_UNRESOLVED
    if (amg_broken_no_such_function())
        return call->host->fail(ctx, AMG_EINVAL, "unreachable");
#endif
    return call->k->scale(ctx, call->out, 1.0f, call->inputs[0]);
}
#endif

#ifdef BROKEN_BAD_PARAM
static const amg_param_spec one_params[] = {
    {
        .struct_size = (uint32_t)sizeof(amg_param_spec),
        .type = AMG_PARAM_F64,
        .scope = AMG_SCOPE_GLOBAL,
        .flags = AMG_PARAM_HAS_MIN | AMG_PARAM_HAS_MAX,
        .name = "density",
        .help = "fraction kept",
        .def = 1.5,
        .min = 0.0,
        .max = 1.0,
    },
};
#define ONE_N_PARAMS 1u
#define ONE_PARAMS one_params
#else
#define ONE_N_PARAMS 0u
#define ONE_PARAMS NULL
#endif

#if defined(BROKEN_BAD_ID)
#define ONE_ID "Bad-Id"
#elif defined(BROKEN_DUP_ID)
#define ONE_ID "good_mean"
#else
#define ONE_ID "broken_one"
#endif

#ifdef BROKEN_MISSING_MERGE
#define ONE_MERGE NULL
#else
#define ONE_MERGE one_merge
#endif

static const amg_strategy one = {
    .struct_size = (uint32_t)sizeof(amg_strategy),
    .id = ONE_ID,
    .summary = "copy of the first input (broken test plugin)",
    .caps = AMG_CAP_ELEMENTWISE | AMG_CAP_CPU,
    .min_inputs = 1,
    .n_params = ONE_N_PARAMS,
    .params = ONE_PARAMS,
    .merge = ONE_MERGE,
};

static const amg_strategy *const strategies[] = { &one };

#ifdef BROKEN_INIT_FAIL
static int32_t broken_init(const amg_host_api *host, amg_ctx *ctx)
{
    return host->fail(ctx, AMG_EUNSUPPORTED,
                      "needs a frobnicator, and none is attached");
}
#define BROKEN_INIT broken_init
#else
#define BROKEN_INIT NULL
#endif

#ifdef BROKEN_STRUCT_SMALL
/* as if built against a layout that ended before the strategy table */
#define BROKEN_SIZE ((uint32_t)offsetof(amg_module, n_strategies))
#else
#define BROKEN_SIZE ((uint32_t)sizeof(amg_module))
#endif

#ifdef BROKEN_BAD_MAGIC
#define BROKEN_MAGIC 0xDEADBEEFu
#else
#define BROKEN_MAGIC AMG_MODULE_MAGIC
#endif

#ifdef BROKEN_ABI_MAJOR
#define BROKEN_MAJOR (AMG_ABI_MAJOR + 1)
#else
#define BROKEN_MAJOR AMG_ABI_MAJOR
#endif

#ifdef BROKEN_ABI_MINOR_NEW
#define BROKEN_MINOR (AMG_ABI_MINOR + 1)
#else
#define BROKEN_MINOR AMG_ABI_MINOR
#endif

#ifdef BROKEN_BUILD_MISMATCH
/* AMG_BUILD_CONFIG_INIT but for the other common pointer size */
#define BROKEN_BUILD                                                          \
    { sizeof(void *) == 8 ? 4u : 8u, (uint32_t)sizeof(size_t),                \
      (uint32_t)(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__),                  \
      (uint32_t)sizeof(amg_dltensor), (uint32_t)sizeof(amg_tensor),           \
      (uint32_t)sizeof(void *) }
#else
#define BROKEN_BUILD AMG_BUILD_CONFIG_INIT
#endif

static const amg_module broken_module = {
    .struct_size = BROKEN_SIZE,
    .magic = BROKEN_MAGIC,
    .abi_major = BROKEN_MAJOR,
    .abi_minor = BROKEN_MINOR,
    .build = BROKEN_BUILD,
    .name = "broken",
    .version = "0.0.1",
    .license = "Apache-2.0",
    .description = "refused by the loader, on purpose",
    .init = BROKEN_INIT,
    .n_strategies = 1,
    .strategies = strategies,
};

#ifdef BROKEN_NO_ENTRY
/* the right function under the wrong name: dlsym finds nothing */
AMG_PLUGIN_EXPORT const amg_module *amg_plugin_start(uint32_t host_abi_major);
AMG_PLUGIN_EXPORT const amg_module *amg_plugin_start(uint32_t host_abi_major)
{
    (void)host_abi_major;
    return &broken_module;
}
#else
AMG_PLUGIN_DEFINE(broken_module)
#endif
