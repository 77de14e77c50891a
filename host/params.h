/* SPDX-License-Identifier: Apache-2.0 */
/*
 * params.h - resolved parameter values behind the SDK's opaque amg_params:
 * one value per schema entry, defaults filled in, every value checked
 * against the schema's type, range and choices when it is set.
 */
#ifndef AMG_PARAMS_H
#define AMG_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include <amalgam/plugin.h>

#include "error.h"

typedef struct amg_param_value {
    int32_t type;                      /* AMG_PARAM_* of the schema entry */
    int is_set;                        /* 1 once set or defaulted */
    double f;                          /* F64 */
    int64_t i;                         /* I64, BOOL (0/1) */
    char *s;                           /* STR (owned) */
} amg_param_value;

struct amg_params {
    const amg_param_spec *specs;       /* the strategy's schema */
    size_t n;                          /* entries in specs and values */
    size_t stride;                     /* bytes between schema entries */
    int32_t scope;                     /* AMG_SCOPE_* this view serves */
    amg_param_value *values;           /* one per schema entry */
};

/* The schema entry i of a strategy (walks with the plugin's stride). */
const amg_param_spec *amg_param_spec_at(const amg_strategy *s, size_t i);

/* A view over s's schema entries of scope, defaults applied. Entries of
 * the other scope are present but unset. */
int amg_params_init(amg_params *p, const amg_strategy *s, int32_t scope,
                    amg_err *err);
void amg_params_free(amg_params *p);

/* Index of name in the schema, or -1. */
int amg_params_index(const amg_params *p, const char *name);

/* Set a value, checking type, range and choices; err names the parameter
 * and the rule ("'density' must be in [0, 1], got 1.5"). */
int amg_params_set_f64(amg_params *p, const char *name, double v,
                       amg_err *err);
int amg_params_set_i64(amg_params *p, const char *name, int64_t v,
                       amg_err *err);
int amg_params_set_bool(amg_params *p, const char *name, int v, amg_err *err);
int amg_params_set_str(amg_params *p, const char *name, const char *v,
                       amg_err *err);

/* AMG_OK when every REQUIRED entry of the view's scope is set; otherwise
 * AMG_EINVAL naming the first missing one. */
int amg_params_check_required(const amg_params *p, amg_err *err);

/* Smallest schema entry the host reads: the members ABI 0.1 defines
 * (reserved[] excluded). Schemas walked with a smaller stride are refused. */
#define AMG_PARAM_SPEC_MIN_SIZE offsetof(amg_param_spec, reserved)

/* Check a numeric value against sp: a number (not NaN) within the range
 * flags, an integer for I64, 0 or 1 for BOOL. The loader uses these on
 * defaults, the setters on values, so both report the same rule
 * ("'density' must be in [0, 1], got 1.5"). */
int amg_param_check_number(const amg_param_spec *sp, double v, amg_err *err);

/* Check a string against sp's choices (any string when choices is NULL). */
int amg_param_check_choice(const amg_param_spec *sp, const char *v,
                           amg_err *err);

#endif
