/* SPDX-License-Identifier: Apache-2.0 */
/*
 * module.c - the `slerp` plugin's descriptor: the SLERP family of
 * strategies (slerp, nuslerp, multislerp), each in its own file.
 */
#include <amalgam/amalgam.h>

#include "slerp.h"

static const amg_strategy *const slerp_strategies[] = {
    &amg__slerp_strategy,
    &amg__nuslerp_strategy,
    &amg__multislerp_strategy,
};

static const amg_module slerp_module = {
    AMG_MODULE_HEAD,
    .name = "slerp",
    .version = AMG_VERSION_STRING,
    .license = "Apache-2.0",
    .description = "spherical interpolation: slerp, nuslerp, multislerp "
                   "(mergekit's)",
    .n_strategies = sizeof(slerp_strategies) / sizeof(slerp_strategies[0]),
    .strategies = slerp_strategies,
};

AMG_PLUGIN_DEFINE(slerp_module)
