/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_pipeline.c - YAML documents and pipelines: mergekit's example
 * configs and amalgam's chained steps parse to the structure written in
 * them; every shape error names file:line:col and says what is wrong; the
 * YAML 1.2 core schema decides what is a number.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pipeline.h"
#include "testutil.h"
#include "yaml_doc.h"

/* --- helpers */

static char *fixture(const char *name)
{
    const char *top = getenv("top_srcdir");
    char *p = malloc(4096);

    ck_assert_ptr_nonnull(p);
    snprintf(p, 4096, "%s/tests/pipelines/%s", top && *top ? top : ".", name);
    return p;
}

static void load_fixture(amg_pipeline *p, const char *name)
{
    char *path = fixture(name);
    amg_err err;
    int rc;

    amg_err_clear(&err);
    rc = amg_pipeline_load(p, path, &err);
    ck_assert_msg(rc == AMG_OK, "%s: %s", name, err.msg);
    free(path);
}

static int parse_text(amg_pipeline *p, const char *text, amg_err *err)
{
    amg_err_clear(err);
    return amg_pipeline_parse(p, "p.yaml", "", text, strlen(text), err);
}

/* Parse text that must fail with exactly this message and status. */
static void expect_error(const char *text, int status, const char *msg)
{
    amg_pipeline p;
    amg_err err;
    int rc = parse_text(&p, text, &err);

    ck_assert_msg(rc == status, "status %d, want %d (%s) for:\n%s", rc,
                  status, err.msg, text);
    ck_assert_str_eq(err.msg, msg);
    ck_assert_ptr_null(p.steps);
}

static void expect_num(const amg_pval *v, double want)
{
    ck_assert_int_eq(v->kind, AMG_PV_NUMBER);
    ck_assert_msg(v->num == want, "%g != %g", v->num, want);
}

static void expect_gradient(const amg_pval *v, const double *want, size_t n)
{
    size_t i;

    ck_assert_int_eq(v->kind, AMG_PV_GRADIENT);
    ck_assert_uint_eq(v->n_elems, n);
    for (i = 0; i < n; i++)
        expect_num(&v->elems[i], want[i]);
}

static const amg_pval *param(const amg_pset *s, const char *name)
{
    const amg_pentry *e = amg_pset_get(s, name);

    ck_assert_msg(e != NULL, "no parameter '%s'", name);
    return &e->value;
}

/* --- mergekit's examples */

START_TEST(test_gradient_slerp)
{
    static const double attn[] = { 0, 0.5, 0.3, 0.7, 1 };
    static const double mlp[] = { 1, 0.5, 0.7, 0.3, 0 };
    amg_pipeline p;
    const amg_step *st;
    const amg_slice *sl;
    const amg_pval *t;

    load_fixture(&p, "gradient-slerp.yml");
    ck_assert_uint_eq(p.n_steps, 1);
    ck_assert_uint_eq(p.output, 0);
    st = &p.steps[0];
    ck_assert_str_eq(st->name, "merge");
    ck_assert_str_eq(st->method, "slerp");
    ck_assert_int_eq(st->method_pos.line, 8);
    ck_assert_int_eq(st->method_pos.col, 15);
    ck_assert_int_eq(st->uses_slices, 1);
    ck_assert_uint_eq(st->n_models, 0);
    ck_assert_uint_eq(st->n_slices, 1);
    sl = &st->slices[0];
    ck_assert_uint_eq(sl->n_sources, 2);
    ck_assert_str_eq(sl->sources[0].model, "psmathur/orca_mini_v3_13b");
    ck_assert_int_eq(sl->sources[0].ref, AMG_REF_HUB);
    ck_assert_int_eq(sl->sources[0].pos.line, 4);
    ck_assert_int_eq(sl->sources[0].pos.col, 16);
    ck_assert_str_eq(sl->sources[1].model, "garage-bAInd/Platypus2-13B");
    ck_assert_int_eq(sl->sources[1].has_range, 1);
    ck_assert_int_eq(sl->sources[1].range[0], 0);
    ck_assert_int_eq(sl->sources[1].range[1], 40);
    ck_assert_ptr_null(sl->base_model);
    ck_assert_ptr_nonnull(st->base);
    ck_assert_str_eq(st->base->model, "psmathur/orca_mini_v3_13b");
    ck_assert_int_eq(st->base->ref, AMG_REF_HUB);

    ck_assert_uint_eq(st->params.n, 1);
    ck_assert_int_eq(st->params.entries[0].pos.line, 11);
    ck_assert_int_eq(st->params.entries[0].pos.col, 3);
    t = param(&st->params, "t");
    ck_assert_int_eq(t->kind, AMG_PV_FILTERS);
    ck_assert_uint_eq(t->n_filters, 3);
    ck_assert_str_eq(t->filters[0].filter, "self_attn");
    expect_gradient(&t->filters[0].value, attn, 5);
    ck_assert_int_eq(t->filters[0].value.elems[2].pos.line, 13);
    ck_assert_int_eq(t->filters[0].value.elems[2].pos.col, 23);
    ck_assert_str_eq(t->filters[1].filter, "mlp");
    expect_gradient(&t->filters[1].value, mlp, 5);
    ck_assert_ptr_null(t->filters[2].filter);
    expect_num(&t->filters[2].value, 0.5);
    ck_assert_int_eq(t->filters[2].pos.line, 16);
    ck_assert_int_eq(t->filters[2].pos.col, 7);

    ck_assert_int_eq(st->has_dtype, 1);
    ck_assert_int_eq(st->dtype, AMG_DT_F16);
    ck_assert_int_eq(st->has_out_dtype, 0);
    ck_assert_ptr_null(st->tokenizer_source);
    ck_assert_ptr_null(p.plugin);
    ck_assert_uint_eq(p.seed, 0);
    amg_pipeline_free(&p);
}
END_TEST

START_TEST(test_ties)
{
    static const double density0[] = { 1, 0.7, 0.1 };
    static const double weight1[] = { 0, 0.3, 0.7, 1 };
    amg_pipeline p;
    const amg_step *st;
    const amg_pval *w;

    load_fixture(&p, "ties.yml");
    st = &p.steps[0];
    ck_assert_str_eq(st->method, "ties");
    ck_assert_int_eq(st->uses_slices, 0);
    ck_assert_uint_eq(st->n_models, 3);
    ck_assert_str_eq(st->models[2].model, "WizardLM/WizardMath-13B-V1.0");
    ck_assert_int_eq(st->models[2].ref, AMG_REF_HUB);
    ck_assert_int_eq(st->models[0].has_range, 0);
    expect_gradient(param(&st->models[0].params, "density"), density0, 3);
    expect_num(param(&st->models[0].params, "weight"), 1.0);
    expect_num(param(&st->models[1].params, "density"), 0.5);
    expect_gradient(param(&st->models[1].params, "weight"), weight1, 4);
    expect_num(param(&st->models[2].params, "density"), 0.33);
    w = param(&st->models[2].params, "weight");
    ck_assert_int_eq(w->kind, AMG_PV_FILTERS);
    ck_assert_uint_eq(w->n_filters, 2);
    ck_assert_str_eq(w->filters[0].filter, "mlp");
    expect_num(&w->filters[0].value, 0.5);
    ck_assert_ptr_null(w->filters[1].filter);
    expect_num(&w->filters[1].value, 0);
    /* file order is kept */
    ck_assert_str_eq(st->models[0].params.entries[0].name, "density");
    ck_assert_str_eq(st->models[0].params.entries[1].name, "weight");

    ck_assert_str_eq(st->base->model, "TheBloke/Llama-2-13B-fp16");
    ck_assert_int_eq(param(&st->params, "normalize")->kind, AMG_PV_BOOL);
    ck_assert(param(&st->params, "normalize")->num == 1.0);
    ck_assert(param(&st->params, "int8_mask")->num == 1.0);
    ck_assert_ptr_null(amg_pset_get(&st->params, "weight"));
    ck_assert_int_eq(st->dtype, AMG_DT_F16);
    amg_pipeline_free(&p);
}
END_TEST

START_TEST(test_passthrough_slices)
{
    amg_pipeline p;
    const amg_step *st;

    load_fixture(&p, "orcamini-platy-44layer.yml");
    st = &p.steps[0];
    ck_assert_str_eq(st->method, "passthrough");
    ck_assert_ptr_null(st->base);
    ck_assert_uint_eq(st->n_slices, 2);
    ck_assert_uint_eq(st->slices[0].n_sources, 1);
    ck_assert_uint_eq(st->slices[1].n_sources, 1);
    ck_assert_str_eq(st->slices[0].sources[0].model,
                     "psmathur/orca_mini_v3_13b");
    ck_assert_int_eq(st->slices[0].sources[0].range[0], 0);
    ck_assert_int_eq(st->slices[0].sources[0].range[1], 24);
    ck_assert_str_eq(st->slices[1].sources[0].model,
                     "garage-bAInd/Platypus2-13B");
    ck_assert_int_eq(st->slices[1].sources[0].range[0], 20);
    ck_assert_int_eq(st->slices[1].sources[0].range[1], 40);
    ck_assert_int_eq(st->slices[1].pos.line, 6);
    ck_assert_int_eq(st->slices[1].pos.col, 5);
    amg_pipeline_free(&p);
}
END_TEST

START_TEST(test_linear_local)
{
    amg_pipeline p;
    const amg_step *st;
    char *dir = fixture("");
    char want[4200];

    dir[strlen(dir) - 1] = '\0';           /* drop the trailing '/' */
    load_fixture(&p, "linear.yaml");
    ck_assert_str_eq(p.dir, dir);
    st = &p.steps[0];
    ck_assert_uint_eq(st->n_models, 3);
    snprintf(want, sizeof(want), "%s/./experts/math", dir);
    ck_assert_str_eq(st->models[0].model, want);
    ck_assert_int_eq(st->models[0].ref, AMG_REF_PATH);
    expect_num(param(&st->models[0].params, "weight"), 0.6);
    expect_num(param(&st->models[1].params, "weight"), 0.4);
    /* the string shorthand, an absolute path kept as is */
    ck_assert_str_eq(st->models[2].model, "/abs/path/to/chat");
    ck_assert_int_eq(st->models[2].ref, AMG_REF_PATH);
    ck_assert_uint_eq(st->models[2].params.n, 0);
    ck_assert_int_eq(st->models[2].pos.line, 10);
    ck_assert_int_eq(st->models[2].pos.col, 5);
    snprintf(want, sizeof(want), "%s/./base", dir);
    ck_assert_str_eq(st->base->model, want);
    ck_assert_int_eq(st->has_dtype, 0);
    ck_assert_int_eq(st->has_out_dtype, 1);
    ck_assert_int_eq(st->out_dtype, AMG_DT_BF16);
    ck_assert_str_eq(st->tokenizer_source, "base");
    ck_assert_ptr_null(st->tokenizer);
    ck_assert_int_eq(st->tokenizer_pos.line, 14);
    ck_assert_uint_eq(p.seed, 42);
    amg_pipeline_free(&p);
    free(dir);
}
END_TEST

START_TEST(test_chained)
{
    static const double t0[] = { 0, 0.5, 1 };
    amg_pipeline p;
    const amg_step *a, *b;
    const amg_pval *t;

    load_fixture(&p, "chained.yaml");
    ck_assert_uint_eq(p.n_steps, 2);
    ck_assert_uint_eq(p.output, 1);
    ck_assert_uint_eq(p.seed, 7);
    a = &p.steps[0];
    b = &p.steps[1];
    ck_assert_str_eq(a->name, "experts");
    ck_assert_int_eq(a->pos.line, 5);
    ck_assert_int_eq(a->pos.col, 5);
    ck_assert_str_eq(a->method, "ties");
    ck_assert_uint_eq(a->n_models, 3);
    ck_assert_str_eq(a->models[0].model, "org/math-expert");
    ck_assert_int_eq(a->models[0].ref, AMG_REF_HUB);
    ck_assert_str_eq(a->models[1].model, "org/code-expert@v2");
    ck_assert_int_eq(a->models[1].ref, AMG_REF_HUB);
    ck_assert_str_eq(a->models[2].model, "org/chat-expert@refs/pr/1");
    ck_assert_int_eq(a->models[2].ref, AMG_REF_HUB);
    expect_num(param(&a->models[2].params, "density"), 0.3);
    expect_num(param(&a->models[2].params, "weight"), 0.5);

    ck_assert_str_eq(b->name, "final");
    ck_assert_str_eq(b->method, "slerp");
    ck_assert_uint_eq(b->n_models, 2);
    ck_assert_str_eq(b->models[0].model, "meta-llama/Llama-3.1-8B");
    ck_assert_int_eq(b->models[0].ref, AMG_REF_HUB);
    ck_assert_str_eq(b->models[1].model, "experts");
    ck_assert_int_eq(b->models[1].ref, AMG_REF_STEP);
    ck_assert_uint_eq(b->models[1].step, 0);
    ck_assert_int_eq(b->models[1].pos.line, 22);
    ck_assert_int_eq(b->models[1].pos.col, 9);
    t = param(&b->params, "t");
    ck_assert_int_eq(t->kind, AMG_PV_FILTERS);
    ck_assert_str_eq(t->filters[0].filter, "self_attn");
    expect_gradient(&t->filters[0].value, t0, 3);
    expect_num(&t->filters[1].value, 0.4);
    ck_assert_str_eq(b->tokenizer_source, "experts");
    ck_assert_ptr_nonnull(b->tokenizer);
    ck_assert_int_eq(b->tokenizer->ref, AMG_REF_STEP);
    ck_assert_int_eq(b->out_dtype, AMG_DT_BF16);
    amg_pipeline_free(&p);
}
END_TEST

/* output: picks a step other than the last; the default is the last */
START_TEST(test_output_choice)
{
    amg_pipeline p;
    amg_err err;

    ck_assert_int_eq(parse_text(&p,
                                "steps:\n"
                                "  - {name: a, merge_method: linear, "
                                "models: [x, y]}\n"
                                "  - {name: b, merge_method: linear, "
                                "models: [a, z]}\n"
                                "output: a\n", &err), AMG_OK);
    ck_assert_uint_eq(p.output, 0);
    ck_assert_int_eq(p.steps[1].models[0].ref, AMG_REF_STEP);
    ck_assert_int_eq(p.steps[1].models[1].ref, AMG_REF_PATH);
    ck_assert_str_eq(p.steps[1].models[1].model, "z");
    amg_pipeline_free(&p);

    ck_assert_int_eq(parse_text(&p,
                                "steps:\n"
                                "  - {name: a, merge_method: linear, "
                                "models: [x]}\n"
                                "  - {name: b, merge_method: linear, "
                                "models: [a]}\n", &err), AMG_OK);
    ck_assert_uint_eq(p.output, 1);
    amg_pipeline_free(&p);
}
END_TEST

/* What reads as a Hub id: org/name[@revision], nothing looser. */
START_TEST(test_ref_kinds)
{
    static const struct {
        const char *ref, *model;
        amg_ref_kind kind;
    } cases[] = {
        { "org/name", "org/name", AMG_REF_HUB },
        { "org/name@main", "org/name@main", AMG_REF_HUB },
        { "Org.x/Na_me-2@refs/pr/1", "Org.x/Na_me-2@refs/pr/1", AMG_REF_HUB },
        { "hf://org/name", "org/name", AMG_REF_HUB },
        { "hf://org/name@v1", "org/name@v1", AMG_REF_HUB },
        { "name", "name", AMG_REF_PATH },
        { "org/", "org/", AMG_REF_PATH },
        { "org/name@", "org/name@", AMG_REF_PATH },
        { "a/b/c", "a/b/c", AMG_REF_PATH },
        { "./org/name", "./org/name", AMG_REF_PATH },
        { "../org/name", "../org/name", AMG_REF_PATH },
        { ".org/name", ".org/name", AMG_REF_PATH },
        { "/org/name", "/org/name", AMG_REF_PATH },
        { "org/-name", "org/-name", AMG_REF_PATH },
        { "'org/na me'", "org/na me", AMG_REF_PATH },
    };
    char text[256];
    amg_pipeline p;
    amg_err err;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), "merge_method: x\nmodels: [%s]\n",
                 cases[i].ref);
        ck_assert_msg(parse_text(&p, text, &err) == AMG_OK, "%s", err.msg);
        ck_assert_str_eq(p.steps[0].models[0].model, cases[i].model);
        ck_assert_msg(p.steps[0].models[0].ref == cases[i].kind, "%s: %d",
                      cases[i].ref, (int)p.steps[0].models[0].ref);
        amg_pipeline_free(&p);
    }
}
END_TEST

/* Parameter value forms: a single {filter, value} mapping, gradients of
 * strings and booleans, strings, quoted numbers. */
START_TEST(test_param_forms)
{
    amg_pipeline p;
    amg_err err;
    const amg_pset *ps;
    const amg_pval *v;

    ck_assert_int_eq(parse_text(&p,
                                "merge_method: x\n"
                                "models: [m]\n"
                                "parameters:\n"
                                "  one: {filter: mlp, value: [0, 1]}\n"
                                "  picks: [sum, count, sum]\n"
                                "  flags: [true, False]\n"
                                "  method: sum\n"
                                "  quoted: '0.5'\n"
                                "  star: [{filter: '*', value: 2}]\n"
                                "  neg: -.inf\n", &err), AMG_OK);
    ps = &p.steps[0].params;
    ck_assert_uint_eq(ps->n, 7);
    v = param(ps, "one");
    ck_assert_int_eq(v->kind, AMG_PV_FILTERS);
    ck_assert_uint_eq(v->n_filters, 1);
    ck_assert_str_eq(v->filters[0].filter, "mlp");
    ck_assert_int_eq(v->filters[0].value.kind, AMG_PV_GRADIENT);
    v = param(ps, "picks");
    ck_assert_int_eq(v->kind, AMG_PV_GRADIENT);
    ck_assert_uint_eq(v->n_elems, 3);
    ck_assert_int_eq(v->elems[1].kind, AMG_PV_STRING);
    ck_assert_str_eq(v->elems[1].str, "count");
    v = param(ps, "flags");
    ck_assert_int_eq(v->elems[0].kind, AMG_PV_BOOL);
    ck_assert(v->elems[0].num == 1.0 && v->elems[1].num == 0.0);
    v = param(ps, "method");
    ck_assert_int_eq(v->kind, AMG_PV_STRING);
    ck_assert_str_eq(v->str, "sum");
    v = param(ps, "quoted");
    ck_assert_int_eq(v->kind, AMG_PV_STRING);
    ck_assert_str_eq(v->str, "0.5");
    v = param(ps, "star");
    ck_assert_str_eq(v->filters[0].filter, "*");
    expect_num(&v->filters[0].value, 2);
    v = param(ps, "neg");
    ck_assert_int_eq(v->kind, AMG_PV_NUMBER);
    ck_assert(isinf(v->num) && v->num < 0);
    ck_assert_ptr_null(amg_pset_get(ps, "missing"));
    amg_pipeline_free(&p);
}
END_TEST

/* --- shape errors, each with its location */

START_TEST(test_err_keys)
{
    expect_error("merge_methd: linear\nmodels: [a]\n", AMG_EFORMAT,
                 "p.yaml:1:1: unknown key 'merge_methd' in step 'merge' "
                 "(did you mean 'merge_method'?)");
    expect_error("merge_method: linear\nmodels: [a]\nwibble: 1\n",
                 AMG_EFORMAT,
                 "p.yaml:3:1: unknown key 'wibble' in step 'merge' (expected "
                 "one of: merge_method, base_model, models, slices, "
                 "parameters, dtype, out_dtype, tokenizer_source, tokenizer, "
                 "chat_template, seed, plugin)");
    expect_error("merge_method: linear\nmodels:\n  - model: a\n"
                 "    paramters: {weight: 1}\n", AMG_EFORMAT,
                 "p.yaml:4:5: unknown key 'paramters' in a model of step "
                 "'merge' (did you mean 'parameters'?)");
    expect_error("merge_method: linear\nslices:\n  - sources:\n"
                 "      - model: a\n        layer_rang: [0, 2]\n",
                 AMG_EFORMAT,
                 "p.yaml:5:9: unknown key 'layer_rang' in a slice source of "
                 "step 'merge' (did you mean 'layer_range'?)");
    expect_error("merge_method: linear\nslices:\n  - source: []\n",
                 AMG_EFORMAT,
                 "p.yaml:3:5: unknown key 'source' in a slice of step "
                 "'merge' (did you mean 'sources'?)");
    expect_error("merge_method: linear\nmodels: [a]\nparameters:\n"
                 "  weight: [{filtre: mlp, value: 1}]\n", AMG_EFORMAT,
                 "p.yaml:4:13: unknown key 'filtre' in a filter of parameter "
                 "'weight' (did you mean 'filter'?)");
    expect_error("merge_method: linear\nmodels:\n  - model: a\n"
                 "    layer_range: [0, 4]\n", AMG_EFORMAT,
                 "p.yaml:4:5: 'layer_range' belongs to 'slices' sources; "
                 "'models' entries take whole models");
    expect_error("merge_method: x\nmodules: {}\n", AMG_EUNSUPPORTED,
                 "p.yaml:2:1: 'modules' (multi-module models) is not "
                 "supported yet: use 'models' or 'slices'");
    expect_error("merge_method: x\nmodels: [a]\noutput: merge\n", AMG_EFORMAT,
                 "p.yaml:3:1: 'output' names the step to write and needs "
                 "'steps'");
    expect_error("merge_method: x\nmodels: [a]\nname: m\n", AMG_EFORMAT,
                 "p.yaml:3:1: 'name' is for entries of 'steps'; a plain "
                 "config is one step called 'merge'");
}
END_TEST

START_TEST(test_err_required)
{
    expect_error("models: [a]\n", AMG_EFORMAT,
                 "p.yaml:1:1: step 'merge' has no 'merge_method'");
    expect_error("merge_method: linear\nbase_model: a\n", AMG_EFORMAT,
                 "p.yaml:1:1: step 'merge' needs 'models' or 'slices'");
    expect_error("merge_method: linear\nmodels: [a]\nslices:\n"
                 "  - sources: [{model: a, layer_range: [0, 1]}]\n",
                 AMG_EFORMAT,
                 "p.yaml:3:1: step 'merge' has both 'models' and 'slices'; "
                 "use one");
    expect_error("merge_method: linear\nmodels: []\n", AMG_EFORMAT,
                 "p.yaml:2:9: 'models' is empty");
    expect_error("merge_method: linear\nmodels: a\n", AMG_EFORMAT,
                 "p.yaml:2:9: 'models' must be a list of models; got a "
                 "string");
    expect_error("merge_method: 3\nmodels: [a]\n", AMG_EFORMAT,
                 "p.yaml:1:15: 'merge_method' must be a string; got a "
                 "number");
    expect_error("merge_method: x\nmodels:\n  - parameters: {weight: 1}\n",
                 AMG_EFORMAT,
                 "p.yaml:3:5: model entry in step 'merge' has no 'model'");
    expect_error("merge_method: x\nslices:\n  - sources:\n      - model: a\n",
                 AMG_EFORMAT,
                 "p.yaml:4:9: slice source in step 'merge' has no "
                 "'layer_range'");
    expect_error("merge_method: x\nslices:\n  - base_model: a\n",
                 AMG_EFORMAT,
                 "p.yaml:3:5: slice in step 'merge' has no 'sources'");
}
END_TEST

START_TEST(test_err_values)
{
    expect_error("merge_method: x\nmodels: [a]\nparameters:\n"
                 "  weight: [{filter: mlp, value: {a: 1}}]\n", AMG_EFORMAT,
                 "p.yaml:4:33: 'weight' must be a number, a list of numbers "
                 "or a list of {filter, value}; got a mapping");
    expect_error("merge_method: x\nmodels: [a]\nparameters:\n"
                 "  weight: [0.5, {a: 1}]\n", AMG_EFORMAT,
                 "p.yaml:4:17: 'weight' must be a number, a list of numbers "
                 "or a list of {filter, value}; got a mapping");
    /* an empty value sits just after its colon */
    expect_error("merge_method: x\nmodels: [a]\nparameters:\n  weight:\n",
                 AMG_EFORMAT,
                 "p.yaml:4:10: 'weight' must be a number, a list of numbers "
                 "or a list of {filter, value}; got null");
    expect_error("merge_method: x\nmodels: [a]\nparameters:\n"
                 "  weight: [0, sum]\n", AMG_EFORMAT,
                 "p.yaml:4:15: 'weight' mixes numbers and strings in one "
                 "list; a gradient holds one kind");
    expect_error("merge_method: x\nmodels: [a]\nparameters:\n  w: []\n",
                 AMG_EFORMAT, "p.yaml:4:6: 'w' is an empty list");
    expect_error("merge_method: x\nmodels: [a]\nparameters:\n"
                 "  w: [{filter: mlp}]\n", AMG_EFORMAT,
                 "p.yaml:4:7: filter for 'w' has no 'value'");
    expect_error("merge_method: x\nmodels: [a]\nparameters:\n"
                 "  w: [{filter: mlp, value: 1}, 2]\n", AMG_EFORMAT,
                 "p.yaml:4:32: each entry of the filter list for 'w' must be "
                 "a {filter, value} mapping; got a number");
    expect_error("merge_method: x\nmodels: [a]\nparameters: [w]\n",
                 AMG_EFORMAT,
                 "p.yaml:3:13: 'parameters' must be a mapping of name: value; "
                 "got a sequence");
    expect_error("merge_method: x\nmodels: [a]\ndtype: float17\n",
                 AMG_EFORMAT,
                 "p.yaml:3:8: unknown type 'float17' for 'dtype' (expected "
                 "float32, bfloat16, float16 or float64)");
    expect_error("merge_method: x\nmodels: [a]\nout_dtype: int8\n",
                 AMG_EFORMAT,
                 "p.yaml:3:12: 'out_dtype' must be a floating-point type; "
                 "got 'int8'");
    expect_error("merge_method: x\nmodels: [a]\nseed: -1\n", AMG_EFORMAT,
                 "p.yaml:3:7: 'seed' must be a non-negative integer; got "
                 "'-1'");
    expect_error("merge_method: x\nmodels: [a]\nseed: 1.5\n", AMG_EFORMAT,
                 "p.yaml:3:7: 'seed' must be a non-negative integer; got "
                 "'1.5'");
    expect_error("merge_method: x\nmodels: [a]\nchat_template: [a]\n",
                 AMG_EFORMAT,
                 "p.yaml:3:16: 'chat_template' must be a string; got a "
                 "sequence");
}
END_TEST

START_TEST(test_err_layer_range)
{
    static const char head[] = "merge_method: x\nslices:\n  - sources:\n"
                               "      - model: a\n        layer_range: ";
    static const struct {
        const char *range, *msg;
    } cases[] = {
        { "[3, 3]", "p.yaml:5:22: 'layer_range' [3, 3] is empty: begin must "
                    "be less than end (the end is excluded)" },
        { "[5, 2]", "p.yaml:5:22: 'layer_range' [5, 2] is empty: begin must "
                    "be less than end (the end is excluded)" },
        { "[0]", "p.yaml:5:22: 'layer_range' must be [begin, end], two layer "
                 "numbers; got a list of 1" },
        { "[0, 1, 2]", "p.yaml:5:22: 'layer_range' must be [begin, end], two "
                       "layer numbers; got a list of 3 or more" },
        { "8", "p.yaml:5:22: 'layer_range' must be [begin, end], two layer "
               "numbers; got a number" },
        { "[-1, 4]", "p.yaml:5:23: 'layer_range' bounds must be layer numbers "
                     "(integers from 0); got '-1'" },
        { "[0, 2.5]", "p.yaml:5:26: 'layer_range' bounds must be layer "
                      "numbers (integers from 0); got '2.5'" },
        { "[0, '4']", "p.yaml:5:26: 'layer_range' bounds must be layer "
                      "numbers (integers from 0); got '4'" },
    };
    char text[512];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), "%s%s\n", head, cases[i].range);
        expect_error(text, AMG_EFORMAT, cases[i].msg);
    }
}
END_TEST

/* mergekit's model+lora: the model and the adapter, each classified */
START_TEST(test_lora_refs)
{
    amg_pipeline p;
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(parse_text(&p, "merge_method: x\nmodels:\n"
                                "  - org/a+org/lora\n"
                                "base_model: base+adapter\n", &err), AMG_OK);
    ck_assert_str_eq(p.steps[0].models[0].model, "org/a");
    ck_assert_int_eq(p.steps[0].models[0].ref, AMG_REF_HUB);
    ck_assert_str_eq(p.steps[0].models[0].lora, "org/lora");
    ck_assert_int_eq(p.steps[0].models[0].lora_ref, AMG_REF_HUB);
    ck_assert_str_eq(p.steps[0].base->model, "base");
    ck_assert_int_eq(p.steps[0].base->ref, AMG_REF_PATH);
    ck_assert_str_eq(p.steps[0].base->lora, "adapter");
    ck_assert_int_eq(p.steps[0].base->lora_ref, AMG_REF_PATH);
    amg_pipeline_free(&p);
    expect_error("steps:\n  - name: s1\n    merge_method: x\n"
                 "    models: [a]\n  - name: s2\n    merge_method: x\n"
                 "    models: [s1+adapter]\n", AMG_EINVAL,
                 "p.yaml:7:14: 's1+adapter': a LoRA adapter folds into a "
                 "model, not into step 's1'");
}
END_TEST

START_TEST(test_err_refs)
{
    expect_error("merge_method: x\nmodels:\n"
                 "  - model: {model: a, lora: b}\n", AMG_EUNSUPPORTED,
                 "p.yaml:3:12: 'model' written as a mapping ({model, lora, "
                 "...}) is not supported yet; write the model as a string");
    expect_error("merge_method: x\nmodels: [hf://just-a-name]\n",
                 AMG_EFORMAT,
                 "p.yaml:2:10: 'hf://just-a-name' is not a Hub model id "
                 "(expected hf://org/name or hf://org/name@revision)");
    expect_error("merge_method: x\nmodels: [a]\ntokenizer: {source: base}\n",
                 AMG_EUNSUPPORTED,
                 "p.yaml:3:1: 'tokenizer' is not supported yet: use "
                 "tokenizer_source");
    expect_error("merge_method: x\nmodels: [a]\ntokenizer_source: union\n",
                 AMG_EUNSUPPORTED,
                 "p.yaml:3:19: tokenizer_source 'union' is not supported "
                 "yet; use 'base' or a model");
    expect_error("merge_method: x\nmodels: [7]\n", AMG_EFORMAT,
                 "p.yaml:2:10: 'model' must be a model (a path, org/name or "
                 "a step name); got a number");
}
END_TEST

START_TEST(test_err_steps)
{
    expect_error("merge_method: x\nsteps:\n"
                 "  - {name: a, merge_method: x, models: [m]}\n",
                 AMG_EFORMAT,
                 "p.yaml:1:1: 'merge_method' belongs inside a step when "
                 "'steps' is used");
    expect_error("steps:\n  - name: a\n    merge_method: x\n"
                 "    models: [m]\n    seed: 3\n", AMG_EFORMAT,
                 "p.yaml:5:5: 'seed' belongs at the top level, not inside "
                 "step 'a'");
    expect_error("steps:\n  - {name: a, merge_method: x, models: [b]}\n"
                 "  - {name: b, merge_method: x, models: [m]}\n",
                 AMG_EFORMAT,
                 "p.yaml:2:41: step 'a' refers to step 'b', which is defined "
                 "later");
    expect_error("steps:\n  - {name: a, merge_method: x, models: [m], "
                 "base_model: a}\n", AMG_EFORMAT,
                 "p.yaml:2:57: step 'a' refers to itself");
    expect_error("steps:\n  - {name: a, merge_method: x, models: [m]}\n"
                 "  - {name: a, merge_method: x, models: [a]}\n",
                 AMG_EFORMAT,
                 "p.yaml:3:12: step name 'a' is used twice (first at line "
                 "2)");
    expect_error("steps:\n  - {merge_method: x, models: [m]}\n",
                 AMG_EFORMAT, "p.yaml:2:5: step 1 has no 'name'");
    expect_error("steps:\n  - {name: a/b, merge_method: x, models: [m]}\n",
                 AMG_EFORMAT,
                 "p.yaml:2:12: step name 'a/b' must be letters, digits, '_', "
                 "'-' or '.' (not starting with '.')");
    expect_error("steps:\n  - {name: a, merge_method: x, models: [m]}\n"
                 "output: z\n", AMG_EFORMAT,
                 "p.yaml:3:9: 'output' names no step: 'z' (steps: a)");
    expect_error("steps: []\n", AMG_EFORMAT, "p.yaml:1:8: 'steps' is empty");
    expect_error("steps:\n  - {name: a, merge_method: x, models: [m]}\n"
                 "outptu: a\n", AMG_EFORMAT,
                 "p.yaml:3:1: unknown key 'outptu' at the top level (did you "
                 "mean 'output'?)");
    expect_error("steps:\n  - {name: a, merge_method: x, modles: [m]}\n",
                 AMG_EFORMAT,
                 "p.yaml:2:32: unknown key 'modles' in step 'a' (did you "
                 "mean 'models'?)");
}
END_TEST

START_TEST(test_err_document)
{
    expect_error("", AMG_EFORMAT, "p.yaml: empty pipeline");
    expect_error("# only a comment\n\n", AMG_EFORMAT,
                 "p.yaml: empty pipeline");
    expect_error("~\n", AMG_EFORMAT, "p.yaml: empty pipeline");
    expect_error("- a\n- b\n", AMG_EFORMAT,
                 "p.yaml:1:1: a pipeline must be a mapping (merge_method: "
                 "..., models: ...); got a sequence");
    expect_error("merge_method: x\nmodels: [a]\nmerge_method: y\n",
                 AMG_EFORMAT,
                 "p.yaml:3:1: duplicate key 'merge_method' (first at line 1)");
}
END_TEST

/* A hub-shaped name that is a folder next to the pipeline is a path; one
 * that is not is a Hub id. Relative paths resolve against the pipeline's
 * folder, not the working directory. */
START_TEST(test_relative_resolution)
{
    static const char text[] =
        "merge_method: linear\n"
        "models:\n"
        "  - models/a\n"
        "  - models/b\n"
        "  - ../up\n"
        "plugin: plugins/my.so\n";
    char *dir = tu_mkdtemp();
    char sub[3000], want[4200];
    char *path;
    amg_pipeline p;
    amg_err err;

    snprintf(sub, sizeof(sub), "%s/conf", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(sub, sizeof(sub), "%s/conf/models", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(sub, sizeof(sub), "%s/conf/models/a", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(sub, sizeof(sub), "%s/conf", dir);
    path = tu_write(sub, "p.yaml", text, strlen(text));
    amg_err_clear(&err);
    ck_assert_msg(amg_pipeline_load(&p, path, &err) == AMG_OK, "%s",
                  err.msg);
    ck_assert_str_eq(p.path, path);
    ck_assert_str_eq(p.dir, sub);
    snprintf(want, sizeof(want), "%s/conf/models/a", dir);
    ck_assert_str_eq(p.steps[0].models[0].model, want);
    ck_assert_int_eq(p.steps[0].models[0].ref, AMG_REF_PATH);
    ck_assert_str_eq(p.steps[0].models[1].model, "models/b");
    ck_assert_int_eq(p.steps[0].models[1].ref, AMG_REF_HUB);
    snprintf(want, sizeof(want), "%s/conf/../up", dir);
    ck_assert_str_eq(p.steps[0].models[2].model, want);
    ck_assert_int_eq(p.steps[0].models[2].ref, AMG_REF_PATH);
    snprintf(want, sizeof(want), "%s/conf/plugins/my.so", dir);
    ck_assert_str_eq(p.plugin, want);
    ck_assert_int_eq(p.plugin_pos.line, 6);
    amg_pipeline_free(&p);

    /* a missing file: the loader's message, not a YAML one */
    snprintf(want, sizeof(want), "%s/none.yaml", dir);
    ck_assert_int_eq(amg_pipeline_load(&p, want, &err), AMG_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "none.yaml"));
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* --- YAML documents */

static void ydoc_ok(amg_ydoc *d, const char *text)
{
    amg_err err;

    amg_err_clear(&err);
    ck_assert_msg(amg_ydoc_parse(d, "y.yaml", text, strlen(text), &err) ==
                  AMG_OK, "%s", err.msg);
}

static void ydoc_bad(const char *text, int status, const char *msg)
{
    amg_ydoc d;
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_ydoc_parse(&d, "y.yaml", text, strlen(text), &err),
                     status);
    ck_assert_str_eq(err.msg, msg);
    ck_assert_ptr_null(d.root);
}

START_TEST(test_yaml_scalars)
{
    static const struct {
        const char *text;
        const char *kind;
        double num;
    } cases[] = {
        { "1", "a number", 1 },          { "'1'", "a string", 0 },
        { "\"1\"", "a string", 0 },      { "1e-3", "a number", 1e-3 },
        { "1.5", "a number", 1.5 },      { ".5", "a number", 0.5 },
        { "5.", "a number", 5 },         { "+3", "a number", 3 },
        { "-2E2", "a number", -200 },    { "0x1F", "a number", 31 },
        { "0o17", "a number", 15 },      { "017", "a number", 17 },
        { "1_000", "a string", 0 },      { "0b11", "a string", 0 },
        { "1e", "a string", 0 },         { "e3", "a string", 0 },
        { ".", "a string", 0 },          { "yes", "a string", 0 },
        { "on", "a string", 0 },         { "true", "true/false", 0 },
        { "False", "true/false", 0 },    { "TRUE", "true/false", 0 },
        { "tRue", "a string", 0 },       { "~", "null", 0 },
        { "null", "null", 0 },           { "NULL", "null", 0 },
        { "'null'", "a string", 0 },     { "|\n  0.5\n", "a string", 0 },
        { "inf", "a string", 0 },        { "nan", "a string", 0 },
    };
    char text[64];
    size_t i;
    amg_ydoc d;
    double v;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), "k: %s\n", cases[i].text);
        ydoc_ok(&d, text);
        ck_assert_msg(strcmp(amg_ynode_kind_name(amg_ynode_get(d.root, "k")),
                             cases[i].kind) == 0, "%s: %s, want %s",
                      cases[i].text,
                      amg_ynode_kind_name(amg_ynode_get(d.root, "k")),
                      cases[i].kind);
        if (strcmp(cases[i].kind, "a number") == 0) {
            ck_assert_int_eq(amg_ynode_as_double(amg_ynode_get(d.root, "k"),
                                                 &v), 0);
            ck_assert_msg(v == cases[i].num, "%s: %g", cases[i].text, v);
        }
        amg_ydoc_free(&d);
    }
}
END_TEST

START_TEST(test_yaml_ints_and_specials)
{
    amg_ydoc d;
    long long i;
    double v;
    int b;

    ydoc_ok(&d, "a: 9223372036854775807\nb: 9223372036854775808\n"
                "c: 1.0\nd: .inf\ne: -.Inf\nf: .NaN\ng: ''\nh:\n"
                "i: 'true'\n");
    ck_assert_int_eq(amg_ynode_as_int(amg_ynode_get(d.root, "a"), &i), 0);
    ck_assert(i == 9223372036854775807LL);
    /* out of range for an integer, still a number */
    ck_assert_int_ne(amg_ynode_as_int(amg_ynode_get(d.root, "b"), &i), 0);
    ck_assert_int_eq(amg_ynode_as_double(amg_ynode_get(d.root, "b"), &v), 0);
    ck_assert(v == 9223372036854775808.0);
    ck_assert_int_ne(amg_ynode_as_int(amg_ynode_get(d.root, "c"), &i), 0);
    ck_assert_int_eq(amg_ynode_as_double(amg_ynode_get(d.root, "d"), &v), 0);
    ck_assert(isinf(v) && v > 0);
    ck_assert_int_eq(amg_ynode_as_double(amg_ynode_get(d.root, "e"), &v), 0);
    ck_assert(isinf(v) && v < 0);
    ck_assert_int_eq(amg_ynode_as_double(amg_ynode_get(d.root, "f"), &v), 0);
    ck_assert(isnan(v));
    /* '' is an empty string, a bare key is null */
    ck_assert_int_eq(amg_ynode_is_null(amg_ynode_get(d.root, "g")), 0);
    ck_assert_int_eq(amg_ynode_is_null(amg_ynode_get(d.root, "h")), 1);
    ck_assert_int_ne(amg_ynode_as_bool(amg_ynode_get(d.root, "i"), &b), 0);
    ck_assert_int_eq(amg_ynode_get(d.root, "i")->quoted, 1);
    ck_assert_ptr_null(amg_ynode_get(d.root, "zz"));
    amg_ydoc_free(&d);
}
END_TEST

START_TEST(test_yaml_positions)
{
    amg_ydoc d;
    const amg_ynode *b, *seq;

    ydoc_ok(&d, "# comment\na:\n  b: [1, 'x']\n  c: {d: é, e: 2}\n");
    ck_assert_str_eq(d.path, "y.yaml");
    ck_assert_int_eq(d.root->kind, AMG_Y_MAP);
    ck_assert_int_eq(d.root->line, 2);
    ck_assert_int_eq(d.root->col, 1);
    b = amg_ynode_get(d.root, "a");
    ck_assert_int_eq(b->line, 3);
    ck_assert_int_eq(b->col, 3);
    ck_assert_int_eq(b->pairs[0].key->line, 3);
    ck_assert_int_eq(b->pairs[0].key->col, 3);
    seq = amg_ynode_get(b, "b");
    ck_assert_int_eq(seq->kind, AMG_Y_SEQ);
    ck_assert_uint_eq(seq->n_items, 2);
    ck_assert_int_eq(seq->col, 6);
    ck_assert_int_eq(seq->items[1]->col, 10);
    ck_assert_int_eq(seq->items[1]->quoted, 1);
    ck_assert_str_eq(seq->items[1]->str, "x");
    /* columns count characters, not bytes: é is two bytes */
    ck_assert_int_eq(amg_ynode_get(amg_ynode_get(b, "c"), "e")->col, 16);
    amg_ydoc_free(&d);
}
END_TEST

START_TEST(test_yaml_aliases)
{
    amg_ydoc d;
    const amg_ynode *y;
    double v;

    ydoc_ok(&d, "x: &w 0.5\ny: *w\nz: &q 'q'\nq: *q\n");
    y = amg_ynode_get(d.root, "y");
    ck_assert_int_eq(y->kind, AMG_Y_SCALAR);
    ck_assert_int_eq(amg_ynode_as_double(y, &v), 0);
    ck_assert(v == 0.5);
    /* a copy placed where the alias is, so errors point there */
    ck_assert_int_eq(y->line, 2);
    ck_assert_int_eq(y->col, 4);
    ck_assert_ptr_ne(y, amg_ynode_get(d.root, "x"));
    ck_assert_int_eq(amg_ynode_get(d.root, "q")->quoted, 1);
    amg_ydoc_free(&d);

    /* one explicit document is still one document */
    ydoc_ok(&d, "---\na: 1\n...\n");
    ck_assert_int_eq(d.root->line, 2);
    amg_ydoc_free(&d);

    ydoc_bad("a: &m {b: 1}\nc: *m\n", AMG_EUNSUPPORTED,
             "y.yaml:2:4: alias '*m' refers to a mapping; only aliases to "
             "scalars are supported (repeat the block instead)");
    ydoc_bad("a: &l [1]\nc: [*l]\n", AMG_EUNSUPPORTED,
             "y.yaml:2:5: alias '*l' refers to a sequence; only aliases to "
             "scalars are supported (repeat the block instead)");
}
END_TEST

START_TEST(test_yaml_errors)
{
    ydoc_bad("a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n", AMG_EFORMAT,
             "y.yaml:5:3: duplicate key 'c' (first at line 3)");
    ydoc_bad("a: 1\n---\nb: 2\n", AMG_EFORMAT,
             "y.yaml:2:1: a second YAML document; a pipeline is one document "
             "(remove the '---' line)");
    ydoc_bad("? [a]\n: 1\n", AMG_EFORMAT,
             "y.yaml:1:3: mapping keys must be scalars; got a sequence");
    ydoc_bad("a:\n\tb: 1\n", AMG_EFORMAT,
             "y.yaml:2:1: found character that cannot start any token "
             "(while scanning for the next token); indent with spaces, YAML "
             "does not allow tabs there");
    ydoc_bad("a: [1, 2\nb: 3\n", AMG_EFORMAT,
             "y.yaml:2:2: did not find expected ',' or ']' (while parsing a "
             "flow sequence)");
    ydoc_bad("a: 1\n b: 2\n", AMG_EFORMAT,
             "y.yaml:2:3: mapping values are not allowed in this context");
    ydoc_bad("a: \"\\xff\xff\"\n", AMG_EFORMAT,
             "y.yaml:1:9: invalid leading UTF-8 octet");
    ydoc_bad("a: *nope\n", AMG_EFORMAT, "y.yaml:1:4: unknown alias '*nope'");
}
END_TEST

/* Nesting is bounded so hostile input cannot exhaust the stack. */
START_TEST(test_yaml_depth)
{
    char text[400];
    amg_ydoc d;
    amg_err err;
    size_t i;

    for (i = 0; i < 100; i++)
        text[i] = '[';
    for (i = 100; i < 200; i++)
        text[i] = ']';
    text[200] = '\0';
    amg_err_clear(&err);
    ck_assert_int_eq(amg_ydoc_parse(&d, "y.yaml", text, 200, &err),
                     AMG_EFORMAT);
    ck_assert_str_eq(err.msg, "y.yaml:1:66: nesting deeper than 64 levels");
    ydoc_ok(&d, "[[[[[[[[[[1]]]]]]]]]]");
    amg_ydoc_free(&d);
}
END_TEST

static Suite *pipeline_suite(void)
{
    Suite *s = suite_create("pipeline");
    TCase *tc = tcase_create("fixtures");

    tcase_add_test(tc, test_gradient_slerp);
    tcase_add_test(tc, test_ties);
    tcase_add_test(tc, test_passthrough_slices);
    tcase_add_test(tc, test_linear_local);
    tcase_add_test(tc, test_chained);
    tcase_add_test(tc, test_output_choice);
    tcase_add_test(tc, test_ref_kinds);
    tcase_add_test(tc, test_param_forms);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, test_err_keys);
    tcase_add_test(tc, test_err_required);
    tcase_add_test(tc, test_err_values);
    tcase_add_test(tc, test_err_layer_range);
    tcase_add_test(tc, test_lora_refs);
    tcase_add_test(tc, test_err_refs);
    tcase_add_test(tc, test_err_steps);
    tcase_add_test(tc, test_err_document);
    tcase_add_test(tc, test_relative_resolution);
    suite_add_tcase(s, tc);
    tc = tcase_create("yaml");
    tcase_add_test(tc, test_yaml_scalars);
    tcase_add_test(tc, test_yaml_ints_and_specials);
    tcase_add_test(tc, test_yaml_positions);
    tcase_add_test(tc, test_yaml_aliases);
    tcase_add_test(tc, test_yaml_errors);
    tcase_add_test(tc, test_yaml_depth);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(pipeline_suite());
}
