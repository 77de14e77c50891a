/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_plan.c - pipelines resolved against real (synthesized) models and
 * real plugins: parameter values per tensor (gradients, filters, mergekit's
 * precedence), slices renumbering layers, chained steps sharing nodes, the
 * embedding submatrix and tied lm_head rules, output dtypes, and every
 * validation error with its file:line:col. Expected values are worked out
 * by hand in the comments next to them.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <amalgam/rng.h>

#include "param_eval.h"
#include "plan.h"
#include "synth.h"
#include "testutil.h"

/* Models every test reads, made once: 3 layers, hidden 16, intermediate
 * 32, vocab 32 unless named otherwise. */
static char *g_dir;
static char g_good[4096], g_linear[4096];

static void synth(const char *name, int expert, int layers, int hidden,
                  int vocab, int tie)
{
    amg_synth_opts o;
    amg_err err;
    char path[4200];

    amg_synth_opts_init(&o);
    o.layers = layers;
    o.hidden = hidden;
    o.intermediate = 32;
    o.vocab = vocab;
    o.heads = 2;
    o.kv_heads = 1;
    o.expert = expert;
    o.tie_embeddings = tie;
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    amg_err_clear(&err);
    /* before the suite runs: check's asserts cannot report yet */
    if (amg_synth_write(&o, path, 0, &err) != AMG_OK) {
        fprintf(stderr, "cannot make test model '%s': %s\n", name, err.msg);
        exit(EXIT_FAILURE);
    }
}

static void make_models(void)
{
    const char *base = getenv("TMPDIR");

    g_dir = malloc(4096);
    if (!g_dir)
        exit(EXIT_FAILURE);
    snprintf(g_dir, 4096, "%s/amgplan-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        exit(EXIT_FAILURE);
    }
    synth("base", 0, 3, 16, 32, 0);
    synth("e1", 1, 3, 16, 32, 0);
    synth("e2", 2, 3, 16, 32, 0);
    synth("short", 3, 2, 16, 32, 0);   /* one layer fewer */
    synth("wide", 3, 3, 32, 32, 0);    /* hidden 32 */
    synth("bigvocab", 3, 3, 16, 40, 0);
    synth("tied", 4, 3, 16, 32, 1);    /* no lm_head.weight */
}

/* ---- building plans */

typedef struct fixture {
    amg_pipeline pipe;
    amg_plan plan;
    amg_err err;
    char path[4200];
    int piped;
} fixture;

static int build_opts(fixture *f, const char *yaml, const amg_plan_opts *o)
{
    char *p;

    memset(f, 0, sizeof(*f));
    p = tu_write(g_dir, "pipe.yaml", yaml, strlen(yaml));
    snprintf(f->path, sizeof(f->path), "%s", p);
    free(p);
    amg_err_clear(&f->err);
    if (amg_pipeline_load(&f->pipe, f->path, &f->err) != AMG_OK)
        ck_abort_msg("pipeline does not load: %s", f->err.msg);
    f->piped = 1;
    return amg_plan_build(&f->plan, &f->pipe, o, &f->err);
}

static amg_plan_opts test_opts(void)
{
    static const char *files[2];
    amg_plan_opts o;

    memset(&o, 0, sizeof(o));
    files[0] = g_good;
    files[1] = g_linear;
    o.plugins.files = files;
    o.plugins.n_files = 2;
    return o;
}

static void build_ok(fixture *f, const char *yaml)
{
    amg_plan_opts o = test_opts();
    int rc = build_opts(f, yaml, &o);

    ck_assert_msg(rc == AMG_OK, "plan failed: %s", f->err.msg);
}

static void done(fixture *f)
{
    amg_plan_free(&f->plan);
    if (f->piped)
        amg_pipeline_free(&f->pipe);
}

/* The plan must fail with status and "<pipeline>:<where>" as message. */
static void expect_error(const char *yaml, int status, const char *where)
{
    amg_plan_opts o = test_opts();
    fixture f;
    char want[AMG_ERR_MSG_MAX + 4300];
    int rc = build_opts(&f, yaml, &o);

    snprintf(want, sizeof(want), "%s:%s", f.path, where);
    ck_assert_msg(rc == status, "status %d, want %d (%s)", rc, status,
                  f.err.msg);
    ck_assert_str_eq(f.err.msg, want);
    ck_assert_ptr_null(f.plan.nodes);
    ck_assert_uint_eq(f.plan.n_models, 0);
    done(&f);
}

/* ---- reading plans */

static const amg_plan_tensor *out_named(const amg_plan *pl, const char *name)
{
    size_t i;

    for (i = 0; i < pl->n_outs; i++)
        if (strcmp(pl->outs[i].name, name) == 0)
            return &pl->outs[i];
    ck_abort_msg("no output tensor '%s'", name);
    return NULL;
}

static const amg_plan_node *root(const amg_plan *pl, const char *name)
{
    return &pl->nodes[out_named(pl, name)->node];
}

static const amg_plan_node *input(const amg_plan *pl, const amg_plan_node *n,
                                  size_t j)
{
    ck_assert_uint_lt(j, n->n_inputs);
    return &pl->nodes[n->inputs[j]];
}

static const amg_param_value *pm(const amg_plan_node *n, size_t j,
                                 const char *param)
{
    int i = amg_params_index(&n->per_model[j], param);

    ck_assert_int_ge(i, 0);
    ck_assert(n->per_model[j].values[i].is_set);
    return &n->per_model[j].values[i];
}

static const amg_param_value *gv(const amg_plan_node *n, const char *param)
{
    int i = amg_params_index(&n->global, param);

    ck_assert_int_ge(i, 0);
    ck_assert(n->global.values[i].is_set);
    return &n->global.values[i];
}

/* Weight j of the merge producing output name. */
static double weight(const amg_plan *pl, const char *name, size_t j)
{
    const amg_plan_node *n = root(pl, name);

    ck_assert_int_eq(n->kind, AMG_NODE_MERGE);
    return pm(n, j, "weight")->f;
}

/* "model:tensor" of a LOAD node. */
static void expect_load(const amg_plan *pl, const amg_plan_node *n,
                        const char *model, const char *tensor)
{
    ck_assert_int_eq(n->kind, AMG_NODE_LOAD);
    ck_assert_str_eq(pl->model_refs[n->model], model);
    ck_assert_str_eq(n->src->name, tensor);
}

#define UP(l) "model.layers." #l ".mlp.up_proj.weight"
#define Q(l) "model.layers." #l ".self_attn.q_proj.weight"
#define NORM(l) "model.layers." #l ".input_layernorm.weight"
#define EMBED "model.embed_tokens.weight"
#define HEAD "lm_head.weight"
#define FINAL "model.norm.weight"
#define EPS 1e-12

/* ---- parameter values */

START_TEST(gradient_over_layers)
{
    fixture f;

    build_ok(&f, "merge_method: linear\n"
                 "models:\n"
                 "  - model: e1\n"
                 "    parameters:\n"
                 "      weight: [0, 1]\n"
                 "  - model: e2\n"
                 "    parameters:\n"
                 "      weight: [1, 2, 4, 8]\n");
    /* 3 layers: t = 0, 0.5, 1. [0, 1] -> 0, 0.5, 1; [1, 2, 4, 8] at
     * t = 0.5: x = 1.5 -> 0.5*2 + 0.5*4 = 3 */
    ck_assert_double_eq_tol(weight(&f.plan, UP(0), 0), 0.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, UP(1), 0), 0.5, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, UP(2), 0), 1.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, UP(0), 1), 1.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, UP(1), 1), 3.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, UP(2), 1), 8.0, EPS);
    /* outside the stack: t = 0, the first anchor */
    ck_assert_double_eq_tol(weight(&f.plan, EMBED, 0), 0.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, EMBED, 1), 1.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, FINAL, 1), 1.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, HEAD, 1), 1.0, EPS);
    ck_assert_int_eq(root(&f.plan, UP(2))->layer_index, 2);
    ck_assert_int_eq(root(&f.plan, EMBED)->layer_index, -1);
    /* linear's default */
    ck_assert_int_eq(gv(root(&f.plan, UP(1)), "normalize")->i, 1);
    /* llama: embed, final norm, lm_head + 9 per layer */
    ck_assert_uint_eq(f.plan.n_outs, 3 + 9 * 3);
    ck_assert_int_eq(f.plan.out_layers, 3);
    ck_assert_int_eq(out_named(&f.plan, UP(1))->dtype, AMG_DT_BF16);
    ck_assert_int_eq(out_named(&f.plan, UP(1))->ndim, 2);
    ck_assert_uint_eq(out_named(&f.plan, UP(1))->shape[0], 32);
    ck_assert_uint_eq(out_named(&f.plan, UP(1))->shape[1], 16);
    /* outputs in name order */
    ck_assert_str_eq(f.plan.outs[0].name, HEAD);
    ck_assert_str_eq(f.plan.outs[1].name, EMBED);
    done(&f);
}
END_TEST

START_TEST(filters_first_match)
{
    fixture f;

    build_ok(&f, "merge_method: linear\n"
                 "models:\n"
                 "  - model: e1\n"
                 "    parameters:\n"
                 "      weight:\n"
                 "        - filter: mlp\n"
                 "          value: 2\n"
                 "        - filter: mlp.up\n"
                 "          value: 3\n"
                 "        - filter: self_attn\n"
                 "          value: [0, 1]\n"
                 "        - value: 1\n"
                 "  - model: e2\n"
                 "    parameters:\n"
                 "      weight: 1\n"
                 "parameters:\n"
                 "  normalize:\n"
                 "    - filter: lm_head\n"
                 "      value: false\n"
                 "    - filter: '*'\n"
                 "      value: true\n");
    /* "mlp" comes first, so mlp.up_proj never reaches the "mlp.up" entry */
    ck_assert_double_eq_tol(weight(&f.plan, UP(1), 0), 2.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, Q(0), 0), 0.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, Q(1), 0), 0.5, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, Q(2), 0), 1.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, NORM(1), 0), 1.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, UP(1), 1), 1.0, EPS);
    ck_assert_int_eq(gv(root(&f.plan, HEAD), "normalize")->i, 0);
    ck_assert_int_eq(gv(root(&f.plan, EMBED), "normalize")->i, 1);
    done(&f);
}
END_TEST

START_TEST(precedence_source_slice_top)
{
    fixture f;

    build_ok(&f, "merge_method: linear\n"
                 "slices:\n"
                 "  - sources:\n"
                 "      - model: e1\n"
                 "        layer_range: [0, 3]\n"
                 "        parameters:\n"
                 "          weight:\n"
                 "            - filter: mlp\n"
                 "              value: 7\n"
                 "      - model: e2\n"
                 "        layer_range: [0, 3]\n"
                 "    parameters:\n"
                 "      weight: 5\n"
                 "      normalize: false\n"
                 "parameters:\n"
                 "  weight: 1\n"
                 "  normalize: true\n");
    /* source > slice > top; a filter list without a match falls through */
    ck_assert_double_eq_tol(weight(&f.plan, UP(1), 0), 7.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, Q(1), 0), 5.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, UP(1), 1), 5.0, EPS);
    ck_assert_int_eq(gv(root(&f.plan, UP(1)), "normalize")->i, 0);
    done(&f);

    /* a per-model parameter at the top level is every model's default */
    build_ok(&f, "merge_method: linear\n"
                 "models:\n"
                 "  - model: e1\n"
                 "  - model: e2\n"
                 "    parameters:\n"
                 "      weight: 3\n"
                 "parameters:\n"
                 "  weight: 1\n");
    ck_assert_double_eq_tol(weight(&f.plan, UP(0), 0), 1.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, UP(0), 1), 3.0, EPS);
    done(&f);
}
END_TEST

START_TEST(strings_and_defaults)
{
    fixture f;

    build_ok(&f, "merge_method: good_mean\n"
                 "models:\n"
                 "  - model: e1\n"
                 "  - model: e2\n"
                 "    parameters:\n"
                 "      weight: 2\n");
    ck_assert_str_eq(gv(root(&f.plan, UP(0)), "mode")->s, "plain");
    ck_assert_double_eq_tol(weight(&f.plan, UP(0), 0), 1.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, UP(0), 1), 2.0, EPS);
    done(&f);

    build_ok(&f, "merge_method: good_mean\n"
                 "models:\n"
                 "  - model: e1\n"
                 "  - model: e2\n"
                 "parameters:\n"
                 "  mode: scaled\n");
    ck_assert_str_eq(gv(root(&f.plan, EMBED), "mode")->s, "scaled");
    done(&f);
}
END_TEST

/* ---- layers and slices */

START_TEST(slices_renumber_layers)
{
    const amg_plan_node *n;
    fixture f;

    build_ok(&f, "merge_method: linear\n"
                 "slices:\n"
                 "  - sources:\n"
                 "      - model: e1\n"
                 "        layer_range: [0, 2]\n"
                 "      - model: e2\n"
                 "        layer_range: [0, 2]\n"
                 "  - sources:\n"
                 "      - model: e2\n"
                 "        layer_range: [1, 3]\n"
                 "      - model: e1\n"
                 "        layer_range: [1, 3]\n"
                 "parameters:\n"
                 "  weight: [0, 1]\n");
    ck_assert_int_eq(f.plan.out_layers, 4);
    ck_assert_uint_eq(f.plan.n_outs, 3 + 9 * 4);
    /* output layer 3 is the second slice's second layer: source layer 2 */
    n = root(&f.plan, UP(3));
    ck_assert_int_eq(n->layer_index, 3);
    expect_load(&f.plan, input(&f.plan, n, 0), "e2", UP(2));
    expect_load(&f.plan, input(&f.plan, n, 1), "e1", UP(2));
    n = root(&f.plan, UP(2));
    expect_load(&f.plan, input(&f.plan, n, 0), "e2", UP(1));
    n = root(&f.plan, UP(1));
    expect_load(&f.plan, input(&f.plan, n, 0), "e1", UP(1));
    /* t restarts in each slice of two layers: 0, 1 | 0, 1 */
    ck_assert_double_eq_tol(weight(&f.plan, UP(0), 0), 0.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, UP(1), 0), 1.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, UP(2), 0), 0.0, EPS);
    ck_assert_double_eq_tol(weight(&f.plan, UP(3), 0), 1.0, EPS);
    /* embeddings from the first slice, the rest from the last, t = 0 */
    n = root(&f.plan, EMBED);
    expect_load(&f.plan, input(&f.plan, n, 0), "e1", EMBED);
    n = root(&f.plan, FINAL);
    expect_load(&f.plan, input(&f.plan, n, 0), "e2", FINAL);
    n = root(&f.plan, HEAD);
    expect_load(&f.plan, input(&f.plan, n, 0), "e2", HEAD);
    ck_assert_double_eq_tol(weight(&f.plan, HEAD, 0), 0.0, EPS);
    done(&f);
}
END_TEST

START_TEST(one_layer_slice_is_t1)
{
    fixture f;

    build_ok(&f, "merge_method: linear\n"
                 "slices:\n"
                 "  - sources:\n"
                 "      - model: e1\n"
                 "        layer_range: [2, 3]\n"
                 "parameters:\n"
                 "  weight: [2, 4]\n");
    ck_assert_int_eq(f.plan.out_layers, 1);
    ck_assert_double_eq_tol(weight(&f.plan, UP(0), 0), 4.0, EPS);
    expect_load(&f.plan, input(&f.plan, root(&f.plan, UP(0)), 0), "e1",
                UP(2));
    done(&f);
}
END_TEST

/* ---- chained steps, base models */

START_TEST(chained_steps_share_nodes)
{
    const amg_plan_node *c, *a, *b;
    size_t i;
    fixture f;

    build_ok(&f, "steps:\n"
                 "  - name: a\n"
                 "    merge_method: good_mean\n"
                 "    models:\n"
                 "      - model: e1\n"
                 "      - model: e2\n"
                 "  - name: b\n"
                 "    merge_method: good_mean\n"
                 "    models:\n"
                 "      - model: a\n"
                 "      - model: e1\n"
                 "  - name: c\n"
                 "    merge_method: good_first\n"
                 "    models:\n"
                 "      - model: b\n"
                 "      - model: a\n"
                 "output: c\n");
    c = root(&f.plan, UP(1));
    ck_assert_str_eq(f.pipe.steps[c->step].name, "c");
    b = input(&f.plan, c, 0);
    a = input(&f.plan, c, 1);
    ck_assert_str_eq(f.pipe.steps[b->step].name, "b");
    ck_assert_str_eq(f.pipe.steps[a->step].name, "a");
    ck_assert_str_eq(a->name, UP(1));
    /* one node for a, one read of e1, whoever asks */
    ck_assert_uint_eq(b->inputs[0], c->inputs[1]);
    ck_assert_uint_eq(b->inputs[1], a->inputs[0]);
    expect_load(&f.plan, input(&f.plan, a, 0), "e1", UP(1));
    /* per tensor: read e1, read e2, a, b, c */
    ck_assert_uint_eq(f.plan.n_nodes, 5 * f.plan.n_outs);
    /* inputs precede their consumers */
    for (i = 0; i < f.plan.n_nodes; i++) {
        size_t j;

        for (j = 0; f.plan.nodes[i].kind == AMG_NODE_MERGE &&
                    j < f.plan.nodes[i].n_inputs; j++)
            ck_assert_uint_lt(f.plan.nodes[i].inputs[j], i);
    }
    /* c's reference is b's, which is a's: e1 */
    ck_assert_str_eq(f.plan.model_refs[f.plan.config_model], "e1");
    ck_assert_uint_eq(f.plan.n_models, 2);
    done(&f);
}
END_TEST

START_TEST(base_model_rules)
{
    const amg_plan_node *n;
    fixture f;

    /* a base not listed is the base, not an input; it is the reference */
    build_ok(&f, "merge_method: good_mean\n"
                 "base_model: base\n"
                 "models:\n"
                 "  - model: e1\n"
                 "  - model: e2\n"
                 "tokenizer_source: base\n"
                 "seed: 42\n");
    n = root(&f.plan, Q(0));
    ck_assert_uint_eq(n->n_inputs, 2);
    ck_assert_uint_ne(n->base, AMG_NO_NODE);
    expect_load(&f.plan, &f.plan.nodes[n->base], "base", Q(0));
    ck_assert_str_eq(f.plan.model_refs[f.plan.config_model], "base");
    ck_assert_str_eq(f.plan.model_refs[f.plan.tokenizer_model], "base");
    ck_assert_uint_eq(n->seed, amg_rng_tensor_seed(42, Q(0)));
    ck_assert_uint_ne(n->seed, root(&f.plan, Q(1))->seed);
    done(&f);

    /* listed among the models, a strategy without NEEDS_BASE averages it */
    build_ok(&f, "merge_method: linear\n"
                 "base_model: base\n"
                 "models:\n"
                 "  - model: e1\n"
                 "  - model: base\n"
                 "parameters:\n"
                 "  weight: 1\n"
                 "tokenizer_source: e2\n");
    n = root(&f.plan, Q(0));
    ck_assert_uint_eq(n->n_inputs, 2);
    expect_load(&f.plan, input(&f.plan, n, 1), "base", Q(0));
    ck_assert_uint_eq(n->base, n->inputs[1]);
    ck_assert_str_eq(f.plan.model_refs[f.plan.tokenizer_model], "e2");
    done(&f);
}
END_TEST

/* ---- shapes, tied embeddings, dtypes */

START_TEST(embedding_submatrix)
{
    const amg_plan_node *n;
    fixture f;

    build_ok(&f, "merge_method: good_mean\n"
                 "models:\n"
                 "  - model: base\n"
                 "  - model: bigvocab\n");
    n = root(&f.plan, EMBED);
    ck_assert_uint_eq(n->shape[0], 32);
    ck_assert_uint_eq(n->shape[1], 16);
    expect_load(&f.plan, input(&f.plan, n, 1), "bigvocab", EMBED);
    ck_assert_int_eq(input(&f.plan, n, 1)->cropped, 1);
    ck_assert_uint_eq(input(&f.plan, n, 1)->shape[0], 32);
    ck_assert_uint_eq(input(&f.plan, n, 1)->src->t->shape[0], 40);
    ck_assert_int_eq(input(&f.plan, n, 0)->cropped, 0);
    ck_assert_uint_eq(out_named(&f.plan, HEAD)->shape[0], 32);
    /* the uncropped read is dropped: two reads and a merge per tensor */
    ck_assert_uint_eq(f.plan.n_nodes, 3 * f.plan.n_outs);
    done(&f);
}
END_TEST

START_TEST(tied_lm_head)
{
    fixture f;

    build_ok(&f, "merge_method: good_mean\n"
                 "models:\n"
                 "  - model: base\n"
                 "  - model: tied\n");
    expect_load(&f.plan, input(&f.plan, root(&f.plan, HEAD), 1), "tied",
                EMBED);
    done(&f);

    /* a tied reference has no lm_head, so neither has the output */
    build_ok(&f, "merge_method: good_mean\n"
                 "models:\n"
                 "  - model: tied\n"
                 "  - model: base\n");
    ck_assert_uint_eq(f.plan.n_outs, 2 + 9 * 3);
    ck_assert_str_eq(f.plan.outs[0].name, EMBED);
    done(&f);
}
END_TEST

START_TEST(output_dtypes)
{
    amg_plan_opts o = test_opts();
    fixture f;
    size_t i;

    build_ok(&f, "merge_method: good_mean\n"
                 "models:\n"
                 "  - model: e1\n"
                 "dtype: float16\n");
    ck_assert_int_eq(out_named(&f.plan, UP(0))->dtype, AMG_DT_F16);
    done(&f);
    build_ok(&f, "merge_method: good_mean\n"
                 "models:\n"
                 "  - model: e1\n"
                 "dtype: float16\n"
                 "out_dtype: float32\n");
    ck_assert_int_eq(out_named(&f.plan, UP(0))->dtype, AMG_DT_F32);
    done(&f);
    o.has_out_dtype = 1;
    o.out_dtype = AMG_DT_F64;
    ck_assert_int_eq(build_opts(&f, "merge_method: good_mean\n"
                                    "models:\n"
                                    "  - model: e1\n"
                                    "out_dtype: float32\n", &o), AMG_OK);
    for (i = 0; i < f.plan.n_outs; i++)
        ck_assert_int_eq(f.plan.outs[i].dtype, AMG_DT_F64);
    done(&f);
}
END_TEST

/* A one-tensor-pair model: embed (F32 [2, 2]) and a buffer named buf
 * stored as dtype, written by hand in folder name. */
static void tiny_model(const char *name, const char *dtype)
{
    static const char cfg[] = "{\"model_type\": \"llama\", "
                              "\"num_hidden_layers\": 1}\n";
    unsigned char data[48];
    char dir[4200], hdr[512], *p;

    memset(data, 0, sizeof(data));
    snprintf(dir, sizeof(dir), "%s/%s", g_dir, name);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(hdr, sizeof(hdr),
             "{\"model.embed_tokens.weight\":{\"dtype\":\"F32\","
             "\"shape\":[2,2],\"data_offsets\":[0,16]},"
             "\"model.position_ids\":{\"dtype\":\"%s\",\"shape\":[4],"
             "\"data_offsets\":[16,%d]}}", dtype,
             strcmp(dtype, "I64") == 0 ? 48 : 32);
    free(tu_write_st(dir, "model.safetensors", hdr, data,
                     strcmp(dtype, "I64") == 0 ? 48 : 32));
    p = tu_write(dir, "config.json", cfg, strlen(cfg));
    free(p);
}

START_TEST(integer_buffers_copied)
{
    const amg_plan_node *n;
    fixture f;

    tiny_model("int_a", "I64");
    tiny_model("int_b", "I64");
    tiny_model("float_b", "F32");
    build_ok(&f, "merge_method: good_mean\n"
                 "models:\n"
                 "  - model: int_a\n"
                 "  - model: int_b\n"
                 "out_dtype: float16\n");
    n = root(&f.plan, "model.position_ids");
    expect_load(&f.plan, n, "int_a", "model.position_ids");
    ck_assert_int_eq(out_named(&f.plan, "model.position_ids")->dtype,
                     AMG_DT_I64);
    ck_assert_int_eq(root(&f.plan, EMBED)->kind, AMG_NODE_MERGE);
    ck_assert_int_eq(out_named(&f.plan, EMBED)->dtype, AMG_DT_F16);
    done(&f);
    /* the reference stores floats: the other model's integers cannot be
     * merged into them */
    expect_error("merge_method: good_mean\n"
                 "models:\n"
                 "  - model: float_b\n"
                 "  - model: int_b\n",
                 AMG_EINVAL,
                 "4:12: tensor 'model.position_ids' of model 'int_b' is I64: "
                 "only floating-point tensors can be merged");
}
END_TEST

/* ---- the dry-run listing */

START_TEST(print_listing)
{
    fixture f;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem;

    build_ok(&f, "merge_method: linear\n"
                 "models:\n"
                 "  - model: base\n"
                 "    parameters:\n"
                 "      weight: 0.25\n"
                 "  - model: bigvocab\n"
                 "    parameters:\n"
                 "      weight: 0.75\n");
    mem = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(mem);
    amg_plan_print(&f.plan, mem);
    ck_assert_int_eq(fclose(mem), 0);
    ck_assert_msg(strstr(buf, "model.norm.weight BF16 [16]\n"
                              "  merge: linear(weight=[0.25, 0.75], "
                              "normalize=true)\n"
                              "    load base:model.norm.weight\n"
                              "    load bigvocab:model.norm.weight\n"),
                  "listing:\n%s", buf);
    ck_assert_msg(strstr(buf, "    load bigvocab:lm_head.weight[:32, :16]\n"),
                  "listing:\n%s", buf);
    ck_assert_msg(strncmp(buf, "lm_head.weight BF16 [32, 16]\n", 29) == 0,
                  "listing:\n%s", buf);
    free(buf);
    done(&f);
}
END_TEST

/* ---- errors, each at its place */

START_TEST(error_unknown_method)
{
    expect_error("merge_method: good_maen\n"
                 "models:\n"
                 "  - model: e1\n",
                 AMG_ENOTFOUND,
                 "1:15: unknown merge_method 'good_maen' (did you mean "
                 "'good_mean'?; available: good_first, good_mean, linear)");
}
END_TEST

START_TEST(error_unknown_param)
{
    expect_error("merge_method: linear\n"
                 "models:\n"
                 "  - model: e1\n"
                 "    parameters:\n"
                 "      wieght: 1\n",
                 AMG_EINVAL,
                 "5:7: unknown parameter 'wieght' for strategy 'linear' "
                 "(did you mean 'weight'?)");
    expect_error("merge_method: good_first\n"
                 "models:\n"
                 "  - model: e1\n"
                 "parameters:\n"
                 "  density: 1\n",
                 AMG_EINVAL,
                 "5:3: unknown parameter 'density': strategy 'good_first' "
                 "takes no parameters");
}
END_TEST

START_TEST(error_global_per_model)
{
    expect_error("merge_method: linear\n"
                 "models:\n"
                 "  - model: e1\n"
                 "    parameters:\n"
                 "      weight: 1\n"
                 "      normalize: true\n",
                 AMG_EINVAL,
                 "6:7: 'normalize' is a global parameter of 'linear': set it "
                 "under the top-level parameters");
}
END_TEST

START_TEST(error_missing_required)
{
    expect_error("merge_method: linear\n"
                 "models:\n"
                 "  - model: e1\n"
                 "    parameters:\n"
                 "      weight: 1\n"
                 "  - model: e2\n",
                 AMG_EINVAL,
                 "6:12: model 'e2' has no 'weight' for tensor "
                 "'lm_head.weight' (strategy 'linear' requires it)");
}
END_TEST

START_TEST(error_values)
{
    expect_error("merge_method: good_mean\n"
                 "models:\n"
                 "  - model: e1\n"
                 "    parameters:\n"
                 "      weight: -1\n",
                 AMG_ERANGE, "5:15: 'weight' must be >= 0, got -1");
    expect_error("merge_method: good_mean\n"
                 "models:\n"
                 "  - model: e1\n"
                 "parameters:\n"
                 "  mode: bogus\n",
                 AMG_EINVAL,
                 "5:9: 'mode' must be one of 'plain', 'scaled', got 'bogus'");
    expect_error("merge_method: good_mean\n"
                 "models:\n"
                 "  - model: e1\n"
                 "    parameters:\n"
                 "      weight: [1, 2]\n",
                 AMG_EINVAL,
                 "5:7: 'weight' of 'good_mean' takes one value, not a list "
                 "or filters (it cannot vary by layer or tensor)");
    expect_error("merge_method: linear\n"
                 "models:\n"
                 "  - model: e1\n"
                 "parameters:\n"
                 "  weight: 1\n"
                 "  normalize: 0.5\n",
                 AMG_EINVAL,
                 "6:14: 'normalize' must be true or false, got a number");
}
END_TEST

START_TEST(error_shapes_and_tensors)
{
    /* lm_head and embed_tokens are cropped; the first other tensor in
     * name order that differs is the layer-0 input norm */
    expect_error("merge_method: good_mean\n"
                 "models:\n"
                 "  - model: base\n"
                 "  - model: wide\n",
                 AMG_EINVAL,
                 "4:12: tensor 'model.layers.0.input_layernorm.weight' has "
                 "shape [16] in model 'base' but [32] in model 'wide'");
    expect_error("merge_method: good_mean\n"
                 "models:\n"
                 "  - model: base\n"
                 "  - model: short\n",
                 AMG_ENOTFOUND,
                 "4:12: tensor 'model.layers.2.input_layernorm.weight' is "
                 "missing from model 'short'");
    expect_error("steps:\n"
                 "  - name: a\n"
                 "    merge_method: good_mean\n"
                 "    models:\n"
                 "      - model: short\n"
                 "  - name: b\n"
                 "    merge_method: good_mean\n"
                 "    models:\n"
                 "      - model: base\n"
                 "      - model: a\n",
                 AMG_ENOTFOUND,
                 "10:16: tensor 'model.layers.2.input_layernorm.weight' is "
                 "not an output of step 'a'");
}
END_TEST

START_TEST(error_layer_ranges)
{
    expect_error("merge_method: good_mean\n"
                 "slices:\n"
                 "  - sources:\n"
                 "      - model: e1\n"
                 "        layer_range: [0, 4]\n",
                 AMG_ERANGE,
                 "4:16: layer_range [0, 4] is out of bounds: 'e1' has 3 "
                 "layers (0 to 2)");
    expect_error("merge_method: good_mean\n"
                 "slices:\n"
                 "  - sources:\n"
                 "      - model: e1\n"
                 "        layer_range: [0, 2]\n"
                 "      - model: e2\n"
                 "        layer_range: [0, 3]\n",
                 AMG_EINVAL,
                 "3:5: the sources of this slice span different numbers of "
                 "layers (2 and 3); every layer_range of a slice must have "
                 "the same length");
    expect_error("merge_method: good_mean\n"
                 "slices:\n"
                 "  - sources:\n"
                 "      - model: e1\n"
                 "        layer_range: [0, 2]\n"
                 "    base_model: e2\n",
                 AMG_EINVAL,
                 "6:17: base_model 'e2' is not among the sources of this "
                 "slice (list it there with a layer_range, which says which "
                 "of its layers are the base)");
}
END_TEST

START_TEST(error_hub_reference)
{
    char *cache = tu_mkdtemp();

    /* offline and an empty cache: resolved without any network */
    setenv("HF_HUB_OFFLINE", "1", 1);
    setenv("HF_HUB_CACHE", cache, 1);
    expect_error("merge_method: good_mean\n"
                 "models:\n"
                 "  - model: e1\n"
                 "  - model: org/name\n",
                 AMG_ENOTFOUND,
                 "4:12: 'org/name@main' is not in the local cache and "
                 "HF_HUB_OFFLINE is set: fetch it while online ('amalgam "
                 "fetch org/name@main')");
    unsetenv("HF_HUB_OFFLINE");
    unsetenv("HF_HUB_CACHE");
    tu_rmtree(cache);
}
END_TEST

START_TEST(error_missing_model)
{
    amg_plan_opts o = test_opts();
    fixture f;

    ck_assert_int_ne(build_opts(&f, "merge_method: good_mean\n"
                                    "models:\n"
                                    "  - model: ./nowhere\n", &o), AMG_OK);
    ck_assert_msg(strstr(f.err.msg, "pipe.yaml:3:12: ") != NULL, "%s",
                  f.err.msg);
    ck_assert_msg(strstr(f.err.msg, "nowhere") != NULL, "%s", f.err.msg);
    done(&f);
}
END_TEST

/* ---- param_eval alone: mergekit's evaluate_setting */

START_TEST(eval_rules)
{
    amg_pval g[4], pick[3], fl, v;
    amg_pfilter f[2];
    amg_pscalar out;

    memset(g, 0, sizeof(g));
    memset(pick, 0, sizeof(pick));
    memset(f, 0, sizeof(f));
    g[0].kind = g[1].kind = g[2].kind = AMG_PV_NUMBER;
    g[0].num = 1;
    g[1].num = 2;
    g[2].num = 4;
    memset(&v, 0, sizeof(v));
    v.kind = AMG_PV_GRADIENT;
    v.elems = g;
    v.n_elems = 3;
    /* x = 0.25 * 2 = 0.5: 0.5*1 + 0.5*2 */
    ck_assert_int_eq(amg_pval_eval(&v, "x", 0.25, &out), 1);
    ck_assert_double_eq_tol(out.num, 1.5, EPS);
    /* x = 0.9 * 2 = 1.8: 0.2*2 + 0.8*4 */
    amg_pval_eval(&v, "x", 0.9, &out);
    ck_assert_double_eq_tol(out.num, 3.6, 1e-12);
    amg_pval_eval(&v, "x", 1.0, &out);
    ck_assert_double_eq_tol(out.num, 4.0, EPS);
    /* one element: constant */
    v.n_elems = 1;
    amg_pval_eval(&v, "x", 0.7, &out);
    ck_assert_double_eq_tol(out.num, 1.0, EPS);
    /* strings are picked at floor(x), never interpolated */
    pick[0].kind = pick[1].kind = pick[2].kind = AMG_PV_STRING;
    pick[0].str = "a";
    pick[1].str = "b";
    pick[2].str = "c";
    v.elems = pick;
    v.n_elems = 3;
    amg_pval_eval(&v, "x", 0.99, &out);
    ck_assert_int_eq(out.kind, AMG_PV_STRING);
    ck_assert_str_eq(out.str, "b");
    amg_pval_eval(&v, "x", 1.0, &out);
    ck_assert_str_eq(out.str, "c");
    /* filters: substring, first match, no match = not set */
    memset(&fl, 0, sizeof(fl));
    fl.kind = AMG_PV_FILTERS;
    fl.filters = f;
    fl.n_filters = 2;
    f[0].filter = "attn";
    f[0].value.kind = AMG_PV_NUMBER;
    f[0].value.num = 3;
    f[1].filter = "self";
    f[1].value.kind = AMG_PV_BOOL;
    f[1].value.num = 1;
    ck_assert_int_eq(amg_pval_eval(&fl, "a.self_attn.q", 0, &out), 1);
    ck_assert_double_eq_tol(out.num, 3.0, EPS);
    ck_assert_int_eq(amg_pval_eval(&fl, "a.self_x", 0, &out), 1);
    ck_assert_int_eq(out.kind, AMG_PV_BOOL);
    ck_assert_int_eq(amg_pval_eval(&fl, "mlp", 0, &out), 0);
    f[1].filter = "*";
    ck_assert_int_eq(amg_pval_eval(&fl, "mlp", 0, &out), 1);
}
END_TEST

static Suite *plan_suite(void)
{
    Suite *s = suite_create("plan");
    TCase *t = tcase_create("plan");

    tcase_set_timeout(t, 60);
    tcase_add_test(t, eval_rules);
    tcase_add_test(t, gradient_over_layers);
    tcase_add_test(t, filters_first_match);
    tcase_add_test(t, precedence_source_slice_top);
    tcase_add_test(t, strings_and_defaults);
    tcase_add_test(t, slices_renumber_layers);
    tcase_add_test(t, one_layer_slice_is_t1);
    tcase_add_test(t, chained_steps_share_nodes);
    tcase_add_test(t, base_model_rules);
    tcase_add_test(t, embedding_submatrix);
    tcase_add_test(t, tied_lm_head);
    tcase_add_test(t, output_dtypes);
    tcase_add_test(t, integer_buffers_copied);
    tcase_add_test(t, print_listing);
    tcase_add_test(t, error_unknown_method);
    tcase_add_test(t, error_unknown_param);
    tcase_add_test(t, error_global_per_model);
    tcase_add_test(t, error_missing_required);
    tcase_add_test(t, error_values);
    tcase_add_test(t, error_shapes_and_tensors);
    tcase_add_test(t, error_layer_ranges);
    tcase_add_test(t, error_hub_reference);
    tcase_add_test(t, error_missing_model);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    const char *tp = getenv("TEST_PLUGIN_DIR");
    const char *bp = getenv("BUILTIN_PLUGIN_DIR");
    int rc;

    if (!tp || !*tp || !bp || !*bp) {
        fprintf(stderr, "TEST_PLUGIN_DIR and BUILTIN_PLUGIN_DIR are not set "
                "(run through make check)\n");
        return 77;
    }
    snprintf(g_good, sizeof(g_good), "%s/good.so", tp);
    snprintf(g_linear, sizeof(g_linear), "%s/linear.so", bp);
    /* only the plugins named here, whatever the caller's environment */
    unsetenv("AMALGAM_PLUGIN_PATH");
    setenv("AMALGAM_PLUGIN_SYSTEM_PATH", "", 1);
    make_models();
    rc = tu_run(plan_suite());
    snprintf(g_good, sizeof(g_good), "rm -rf '%s'", g_dir);
    if (system(g_good) != 0)
        fprintf(stderr, "cannot remove '%s'\n", g_dir);
    free(g_dir);
    return rc;
}
