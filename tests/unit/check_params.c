/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_params.c - parameter views: defaults from the schema, typed setters
 * with their range, integer, boolean and choice rules, required entries,
 * and the host api's getters reading the values back.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "params.h"
#include "plugin_loader.h"
#include "testutil.h"

static const char *const method_choices[] = { "sum", "count", NULL };

#define SPEC .struct_size = (uint32_t)sizeof(amg_param_spec)
static const amg_param_spec schema[] = {
    { SPEC, .type = AMG_PARAM_F64, .scope = AMG_SCOPE_GLOBAL,
      .flags = AMG_PARAM_HAS_MIN | AMG_PARAM_HAS_MAX, .name = "density",
      .def = 0.5, .min = 0.0, .max = 1.0 },
    { SPEC, .type = AMG_PARAM_F64, .scope = AMG_SCOPE_GLOBAL,
      .flags = AMG_PARAM_HAS_MIN | AMG_PARAM_HAS_MAX |
               AMG_PARAM_MIN_EXCLUSIVE | AMG_PARAM_MAX_EXCLUSIVE,
      .name = "epsilon", .def = 0.25, .min = 0.0, .max = 1.0 },
    { SPEC, .type = AMG_PARAM_I64, .scope = AMG_SCOPE_GLOBAL,
      .flags = AMG_PARAM_HAS_MIN, .name = "k", .def = 3.0, .min = 1.0 },
    { SPEC, .type = AMG_PARAM_BOOL, .scope = AMG_SCOPE_GLOBAL,
      .name = "normalize", .def = 1.0 },
    { SPEC, .type = AMG_PARAM_STR, .scope = AMG_SCOPE_GLOBAL,
      .name = "method", .def_str = "sum", .choices = method_choices },
    { SPEC, .type = AMG_PARAM_STR, .scope = AMG_SCOPE_GLOBAL,
      .name = "label" },
    { SPEC, .type = AMG_PARAM_F64, .scope = AMG_SCOPE_GLOBAL,
      .flags = AMG_PARAM_REQUIRED, .name = "scale", .def = 7.0 },
    { SPEC, .type = AMG_PARAM_F64, .scope = AMG_SCOPE_PER_MODEL,
      .flags = AMG_PARAM_REQUIRED | AMG_PARAM_HAS_MIN | AMG_PARAM_HAS_MAX |
               AMG_PARAM_MAX_EXCLUSIVE,
      .name = "weight", .min = -1.0, .max = 2.0 },
};

static amg_strategy strategy(void)
{
    amg_strategy s;

    memset(&s, 0, sizeof(s));
    s.struct_size = (uint32_t)sizeof(s);
    s.id = "test";
    s.n_params = sizeof(schema) / sizeof(schema[0]);
    s.params = schema;
    return s;
}

static amg_params global_view(void)
{
    amg_strategy s = strategy();
    amg_params p;
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_params_init(&p, &s, AMG_SCOPE_GLOBAL, &err), AMG_OK);
    return p;
}

START_TEST(defaults_via_host_api)
{
    const amg_host_api *h = amg_host_api_get();
    amg_params p = global_view();
    const char *str = NULL;
    int32_t b = -1;
    int64_t i = 0;
    double f = 0;

    ck_assert_int_eq(h->param_f64(&p, "density", &f), AMG_OK);
    ck_assert(f == 0.5);
    ck_assert_int_eq(h->param_f64(&p, "epsilon", &f), AMG_OK);
    ck_assert(f == 0.25);
    ck_assert_int_eq(h->param_i64(&p, "k", &i), AMG_OK);
    ck_assert_int_eq(i, 3);
    ck_assert_int_eq(h->param_bool(&p, "normalize", &b), AMG_OK);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(h->param_str(&p, "method", &str), AMG_OK);
    ck_assert_str_eq(str, "sum");
    /* no default: no value; required: never defaulted, even with def set */
    ck_assert_int_eq(h->param_str(&p, "label", &str), AMG_ENOTFOUND);
    ck_assert_int_eq(h->param_f64(&p, "scale", &f), AMG_ENOTFOUND);
    /* a per-model entry has no value in the global view */
    ck_assert_int_eq(h->param_f64(&p, "weight", &f), AMG_ENOTFOUND);
    ck_assert_int_eq(h->param_f64(&p, "nope", &f), AMG_ENOTFOUND);
    /* wrong type: EINVAL, and out untouched */
    f = 42.0;
    i = 42;
    ck_assert_int_eq(h->param_i64(&p, "density", &i), AMG_EINVAL);
    ck_assert_int_eq(h->param_f64(&p, "k", &f), AMG_EINVAL);
    ck_assert_int_eq(h->param_bool(&p, "method", &b), AMG_EINVAL);
    ck_assert_int_eq(h->param_str(&p, "normalize", &str), AMG_EINVAL);
    ck_assert(f == 42.0);
    ck_assert_int_eq(i, 42);
    ck_assert_int_eq(h->param_f64(NULL, "density", &f), AMG_EINVAL);
    ck_assert_int_eq(h->param_f64(&p, NULL, &f), AMG_EINVAL);
    amg_params_free(&p);
}
END_TEST

START_TEST(per_model_view)
{
    const amg_host_api *h = amg_host_api_get();
    amg_strategy s = strategy();
    amg_params p;
    amg_err err;
    double f;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_params_init(&p, &s, AMG_SCOPE_PER_MODEL, &err),
                     AMG_OK);
    ck_assert_uint_eq(p.n, 8);
    ck_assert_int_eq(h->param_f64(&p, "density", &f), AMG_ENOTFOUND);
    ck_assert_int_eq(amg_params_check_required(&p, &err), AMG_EINVAL);
    ck_assert_str_eq(err.msg, "missing required per-model parameter 'weight'");
    ck_assert_int_eq(amg_params_set_f64(&p, "weight", -1.0, &err), AMG_OK);
    ck_assert_int_eq(amg_params_check_required(&p, &err), AMG_OK);
    ck_assert_int_eq(h->param_f64(&p, "weight", &f), AMG_OK);
    ck_assert(f == -1.0);
    /* [-1, 2): 2 itself is out */
    ck_assert_int_eq(amg_params_set_f64(&p, "weight", 2.0, &err), AMG_ERANGE);
    ck_assert_str_eq(err.msg, "'weight' must be in [-1, 2), got 2");
    amg_params_free(&p);
}
END_TEST

START_TEST(inclusive_range)
{
    const amg_host_api *h = amg_host_api_get();
    amg_params p = global_view();
    amg_err err;
    double f;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_params_set_f64(&p, "density", 0.0, &err), AMG_OK);
    ck_assert_int_eq(amg_params_set_f64(&p, "density", 1.0, &err), AMG_OK);
    ck_assert_int_eq(amg_params_set_f64(&p, "density", 1.5, &err), AMG_ERANGE);
    ck_assert_str_eq(err.msg, "'density' must be in [0, 1], got 1.5");
    ck_assert_int_eq(amg_params_set_f64(&p, "density", -0.25, &err),
                     AMG_ERANGE);
    ck_assert_str_eq(err.msg, "'density' must be in [0, 1], got -0.25");
    ck_assert_int_eq(amg_params_set_f64(&p, "density", NAN, &err), AMG_ERANGE);
    /* a refused value leaves the last good one */
    ck_assert_int_eq(h->param_f64(&p, "density", &f), AMG_OK);
    ck_assert(f == 1.0);
    /* an integer literal for a number parameter is that number */
    ck_assert_int_eq(amg_params_set_i64(&p, "density", 0, &err), AMG_OK);
    ck_assert_int_eq(h->param_f64(&p, "density", &f), AMG_OK);
    ck_assert(f == 0.0);
    ck_assert_int_eq(amg_params_set_i64(&p, "density", 2, &err), AMG_ERANGE);
    amg_params_free(&p);
}
END_TEST

START_TEST(exclusive_range)
{
    amg_params p = global_view();
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_params_set_f64(&p, "epsilon", 0.0, &err), AMG_ERANGE);
    ck_assert_str_eq(err.msg, "'epsilon' must be in (0, 1), got 0");
    ck_assert_int_eq(amg_params_set_f64(&p, "epsilon", 1.0, &err), AMG_ERANGE);
    ck_assert_int_eq(amg_params_set_f64(&p, "epsilon", 1e-9, &err), AMG_OK);
    ck_assert_int_eq(amg_params_set_f64(&p, "epsilon", 0.999, &err), AMG_OK);
    amg_params_free(&p);
}
END_TEST

START_TEST(integers)
{
    const amg_host_api *h = amg_host_api_get();
    amg_params p = global_view();
    amg_err err;
    int64_t i;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_params_set_i64(&p, "k", 0, &err), AMG_ERANGE);
    ck_assert_str_eq(err.msg, "'k' must be >= 1, got 0");
    ck_assert_int_eq(amg_params_set_i64(&p, "k", INT64_MAX, &err), AMG_OK);
    ck_assert_int_eq(h->param_i64(&p, "k", &i), AMG_OK);
    ck_assert(i == INT64_MAX); /* stored exactly, not through a double */
    ck_assert_int_eq(amg_params_set_f64(&p, "k", 2.5, &err), AMG_ERANGE);
    ck_assert_str_eq(err.msg, "'k' must be an integer, got 2.5");
    ck_assert_int_eq(amg_params_set_f64(&p, "k", 4.0, &err), AMG_OK);
    ck_assert_int_eq(h->param_i64(&p, "k", &i), AMG_OK);
    ck_assert_int_eq(i, 4);
    ck_assert_int_eq(amg_params_set_f64(&p, "k", 1e300, &err), AMG_ERANGE);
    amg_params_free(&p);
}
END_TEST

START_TEST(booleans)
{
    const amg_host_api *h = amg_host_api_get();
    amg_params p = global_view();
    amg_err err;
    int32_t b;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_params_set_bool(&p, "normalize", 0, &err), AMG_OK);
    ck_assert_int_eq(h->param_bool(&p, "normalize", &b), AMG_OK);
    ck_assert_int_eq(b, 0);
    ck_assert_int_eq(amg_params_set_bool(&p, "normalize", 2, &err),
                     AMG_ERANGE);
    ck_assert_str_eq(err.msg,
                     "'normalize' must be true or false (0 or 1), got 2");
    ck_assert_int_eq(amg_params_set_f64(&p, "normalize", 1.0, &err),
                     AMG_EINVAL);
    ck_assert_str_eq(err.msg,
                     "'normalize' must be true or false, got a number");
    ck_assert_int_eq(amg_params_set_bool(&p, "density", 1, &err), AMG_EINVAL);
    ck_assert_str_eq(err.msg, "'density' must be a number, got true or false");
    amg_params_free(&p);
}
END_TEST

START_TEST(strings_and_choices)
{
    const amg_host_api *h = amg_host_api_get();
    amg_params p = global_view();
    const char *str;
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_params_set_str(&p, "method", "count", &err), AMG_OK);
    ck_assert_int_eq(h->param_str(&p, "method", &str), AMG_OK);
    ck_assert_str_eq(str, "count");
    ck_assert_int_eq(amg_params_set_str(&p, "method", "median", &err),
                     AMG_EINVAL);
    ck_assert_str_eq(err.msg,
                     "'method' must be one of 'sum', 'count', got 'median'");
    ck_assert_int_eq(h->param_str(&p, "method", &str), AMG_OK);
    ck_assert_str_eq(str, "count");
    /* no choices: any string */
    ck_assert_int_eq(amg_params_set_str(&p, "label", "x y z", &err), AMG_OK);
    ck_assert_int_eq(h->param_str(&p, "label", &str), AMG_OK);
    ck_assert_str_eq(str, "x y z");
    ck_assert_int_eq(amg_params_set_str(&p, "density", "0.5", &err),
                     AMG_EINVAL);
    ck_assert_str_eq(err.msg, "'density' must be a number, got a string");
    ck_assert_int_eq(amg_params_set_str(&p, "label", NULL, &err), AMG_EINVAL);
    amg_params_free(&p);
}
END_TEST

START_TEST(unknown_and_required)
{
    const amg_host_api *h = amg_host_api_get();
    amg_params p = global_view();
    amg_err err;
    double f;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_params_set_f64(&p, "nope", 1.0, &err), AMG_ENOTFOUND);
    ck_assert_str_eq(err.msg, "unknown parameter 'nope'");
    ck_assert_int_eq(amg_params_index(&p, "nope"), -1);
    ck_assert_int_eq(amg_params_index(&p, "density"), 0);
    ck_assert_int_eq(amg_params_index(&p, "weight"), 7);
    ck_assert_int_eq(amg_params_check_required(&p, &err), AMG_EINVAL);
    ck_assert_str_eq(err.msg, "missing required parameter 'scale'");
    ck_assert_int_eq(amg_params_set_f64(&p, "scale", 3.0, &err), AMG_OK);
    ck_assert_int_eq(amg_params_check_required(&p, &err), AMG_OK);
    ck_assert_int_eq(h->param_f64(&p, "scale", &f), AMG_OK);
    ck_assert(f == 3.0);
    amg_params_free(&p);
    amg_params_free(&p); /* freed views are empty, freeing twice is safe */
}
END_TEST

/* A plugin built against a later minor has larger schema entries: the view
 * must walk with the plugin's stride and still find every name. */
struct wide_spec {
    amg_param_spec s;
    double added_in_a_later_minor[3];
};

START_TEST(wider_stride)
{
    const amg_host_api *h = amg_host_api_get();
    struct wide_spec w[2];
    amg_strategy s = strategy();
    amg_params p;
    amg_err err;
    int64_t i;
    double f;

    memset(w, 0, sizeof(w));
    w[0].s = schema[0];
    w[1].s = schema[2];
    w[0].s.struct_size = w[1].s.struct_size = (uint32_t)sizeof(w[0]);
    w[0].added_in_a_later_minor[0] = 99.0;
    s.params = &w[0].s;
    s.n_params = 2;
    amg_err_clear(&err);
    ck_assert_int_eq(amg_params_init(&p, &s, AMG_SCOPE_GLOBAL, &err), AMG_OK);
    ck_assert_uint_eq(p.stride, sizeof(w[0]));
    ck_assert_ptr_eq(amg_param_spec_at(&s, 1), &w[1].s);
    ck_assert_int_eq(h->param_f64(&p, "density", &f), AMG_OK);
    ck_assert(f == 0.5);
    ck_assert_int_eq(h->param_i64(&p, "k", &i), AMG_OK);
    ck_assert_int_eq(i, 3);
    amg_params_free(&p);

    /* smaller than ABI 0.1's entries: refused, not walked */
    w[0].s.struct_size = (uint32_t)offsetof(amg_param_spec, choices);
    ck_assert_int_eq(amg_params_init(&p, &s, AMG_SCOPE_GLOBAL, &err),
                     AMG_EPLUGIN);
    ck_assert_ptr_nonnull(strstr(err.msg, "smaller than ABI 0.1"));
    ck_assert_ptr_null(p.values);
}
END_TEST

START_TEST(no_params)
{
    const amg_host_api *h = amg_host_api_get();
    amg_strategy s = strategy();
    amg_params p;
    amg_err err;
    double f;

    s.n_params = 0;
    s.params = NULL;
    amg_err_clear(&err);
    ck_assert_int_eq(amg_params_init(&p, &s, AMG_SCOPE_GLOBAL, &err), AMG_OK);
    ck_assert_int_eq(amg_params_check_required(&p, &err), AMG_OK);
    ck_assert_int_eq(h->param_f64(&p, "density", &f), AMG_ENOTFOUND);
    amg_params_free(&p);
}
END_TEST

START_TEST(check_value_helpers)
{
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_param_check_number(&schema[0], 0.75, &err), AMG_OK);
    ck_assert_int_eq(amg_param_check_number(&schema[0], 2.0, &err),
                     AMG_ERANGE);
    ck_assert_int_eq(amg_param_check_number(&schema[3], 1.0, &err), AMG_OK);
    ck_assert_int_eq(amg_param_check_number(&schema[3], 0.5, &err),
                     AMG_ERANGE);
    ck_assert_int_eq(amg_param_check_choice(&schema[4], "sum", &err), AMG_OK);
    ck_assert_int_eq(amg_param_check_choice(&schema[4], "Sum", &err),
                     AMG_EINVAL);
    ck_assert_int_eq(amg_param_check_choice(&schema[5], "", &err), AMG_OK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("params");
    TCase *tc = tcase_create("params");

    tcase_add_test(tc, defaults_via_host_api);
    tcase_add_test(tc, per_model_view);
    tcase_add_test(tc, inclusive_range);
    tcase_add_test(tc, exclusive_range);
    tcase_add_test(tc, integers);
    tcase_add_test(tc, booleans);
    tcase_add_test(tc, strings_and_choices);
    tcase_add_test(tc, unknown_and_required);
    tcase_add_test(tc, wider_stride);
    tcase_add_test(tc, no_params);
    tcase_add_test(tc, check_value_helpers);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
