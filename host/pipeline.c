/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pipeline.c - a YAML tree checked against mergekit's config schema (plus
 * amalgam's `steps:`) and turned into amg_pipeline.
 *
 * Only the shape is checked here: which keys exist, the type of each value,
 * references between steps and what a model reference is. Whether a
 * strategy exists, what parameters it takes and whether models fit together
 * is the plan's job, once models and plugins are at hand.
 *
 * Choices where mergekit leaves room (documented in amalgam(1)):
 * - a single {filter, value} mapping is a one-entry filter list, as
 *   mergekit's ParameterSetting accepts one condition or a list;
 * - a gradient holds all numbers, all booleans or all strings;
 * - a name that is an earlier step wins over a folder of the same name, and
 *   naming the current or a later step is an error, never a path;
 * - slices' residual_weight is accepted and ignored, as mergekit does.
 */
#include "config.h"

#include "pipeline.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"
#include "util.h"

#define PV_TYPES "must be a number, a list of numbers or a list of " \
                 "{filter, value}"

typedef struct pctx {
    const char *label;
    const char *dir;
    amg_err *err;
    amg_pipeline *p;
    int multi;                         /* `steps:` is used */
    const amg_ynode **names;           /* steps' name nodes, in order */
    size_t n_names;
    size_t cur;                        /* step being read */
    const char *step;                  /* its name, for messages */
} pctx;

static const char *const STEP_KEYS[] = {
    "name", "merge_method", "base_model", "models", "slices", "parameters",
    "dtype", "out_dtype", "tokenizer_source", "tokenizer", "chat_template",
    NULL
};
/* A plain mergekit config: the step keys without a name, plus the keys
 * that are set once per pipeline. */
static const char *const PLAIN_KEYS[] = {
    "merge_method", "base_model", "models", "slices", "parameters", "dtype",
    "out_dtype", "tokenizer_source", "tokenizer", "chat_template", "seed",
    "plugin", NULL
};
static const char *const TOP_KEYS[] = {
    "steps", "output", "seed", "plugin", NULL
};
static const char *const MODEL_KEYS[] = {
    "model", "parameters", "fisher", NULL
};
static const char *const SLICE_KEYS[] = {
    "sources", "base_model", "parameters", "residual_weight", NULL
};
static const char *const SOURCE_KEYS[] = {
    "model", "layer_range", "parameters", "fisher", NULL
};
static const char *const FILTER_KEYS[] = { "filter", "value", NULL };

static int perr(pctx *c, int status, const amg_ynode *at, const char *fmt,
                ...) AMG_PRINTF(4, 5);

/* "file:line:col: message" */
static int perr(pctx *c, int status, const amg_ynode *at, const char *fmt,
                ...)
{
    char msg[AMG_ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return amg_err_set(c->err, status, "%s:%d:%d: %s", c->label, at->line,
                       at->col, msg);
}

static int oom(pctx *c)
{
    return amg_err_set(c->err, AMG_ENOMEM, "out of memory reading '%s'",
                       c->label);
}

static amg_pos pos_of(const amg_ynode *n)
{
    amg_pos p;

    p.line = n->line;
    p.col = n->col;
    return p;
}

static int in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

/* --- "did you mean" */

static const char *nearest(const char *key, const char *const *known)
{
    const char *best = NULL;
    size_t best_d = 3, d;

    for (; *known; known++) {
        d = amg_edit_distance(key, *known);
        if (d < best_d) {
            best_d = d;
            best = *known;
        }
    }
    return best;
}

static int unknown_key(pctx *c, const amg_ynode *key, const char *where,
                       const char *const *known)
{
    const char *near = nearest(key->str, known);
    char list[512];
    size_t used = 0;
    const char *const *k;

    if (near)
        return perr(c, AMG_EFORMAT, key, "unknown key '%s' %s (did you mean "
                    "'%s'?)", key->str, where, near);
    list[0] = '\0';
    for (k = known; *k && used < sizeof(list); k++) {
        int w = snprintf(list + used, sizeof(list) - used, "%s%s",
                         k == known ? "" : ", ", *k);

        if (w < 0)
            break;
        used += (size_t)w;
    }
    return perr(c, AMG_EFORMAT, key, "unknown key '%s' %s (expected one of: "
                "%s)", key->str, where, list);
}

/* --- scalars */

/* A scalar that reads as text: not a mapping, list, null, bool or number. */
static int is_text(const amg_ynode *n)
{
    return n->kind == AMG_Y_SCALAR && strcmp(amg_ynode_kind_name(n),
                                             "a string") == 0;
}

static int get_text(pctx *c, const amg_ynode *n, const char *key,
                    char **out)
{
    if (!is_text(n))
        return perr(c, AMG_EFORMAT, n, "'%s' must be a string; got %s", key,
                    amg_ynode_kind_name(n));
    if (!n->str[0])
        return perr(c, AMG_EFORMAT, n, "'%s' is empty", key);
    *out = amg_strdup(n->str);
    return *out ? AMG_OK : oom(c);
}

/* --- freeing */

static void pval_free(amg_pval *v)
{
    size_t i;

    free(v->str);
    for (i = 0; i < v->n_elems; i++)
        pval_free(&v->elems[i]);
    free(v->elems);
    for (i = 0; i < v->n_filters; i++) {
        free(v->filters[i].filter);
        pval_free(&v->filters[i].value);
    }
    free(v->filters);
    memset(v, 0, sizeof(*v));
}

static void pset_free(amg_pset *s)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        free(s->entries[i].name);
        pval_free(&s->entries[i].value);
    }
    free(s->entries);
    s->entries = NULL;
    s->n = 0;
}

static void source_free(amg_source *s)
{
    if (!s)
        return;
    free(s->model);
    free(s->lora);
    free(s->fisher);
    pset_free(&s->params);
}

static void source_destroy(amg_source *s)
{
    source_free(s);
    free(s);
}

static void slice_free(amg_slice *sl)
{
    size_t i;

    for (i = 0; i < sl->n_sources; i++)
        source_free(&sl->sources[i]);
    free(sl->sources);
    free(sl->base_model);
    source_destroy(sl->base);
    pset_free(&sl->params);
}

static void step_free(amg_step *st)
{
    size_t i;

    free(st->name);
    free(st->method);
    source_destroy(st->base);
    for (i = 0; i < st->n_models; i++)
        source_free(&st->models[i]);
    free(st->models);
    for (i = 0; i < st->n_slices; i++)
        slice_free(&st->slices[i]);
    free(st->slices);
    pset_free(&st->params);
    free(st->tokenizer_source);
    source_destroy(st->tokenizer);
    free(st->chat_template);
}

void amg_pipeline_free(amg_pipeline *p)
{
    size_t i;

    if (!p)
        return;
    for (i = 0; i < p->n_steps; i++)
        step_free(&p->steps[i]);
    free(p->steps);
    free(p->path);
    free(p->dir);
    free(p->plugin);
    memset(p, 0, sizeof(*p));
}

const amg_pentry *amg_pset_get(const amg_pset *s, const char *name)
{
    size_t i;

    for (i = 0; s && i < s->n; i++)
        if (strcmp(s->entries[i].name, name) == 0)
            return &s->entries[i];
    return NULL;
}

/* --- parameter values */

static int pv_scalar(pctx *c, const char *name, const amg_ynode *n,
                     amg_pval *v)
{
    int b;

    v->pos = pos_of(n);
    if (n->kind != AMG_Y_SCALAR || amg_ynode_is_null(n))
        return perr(c, AMG_EFORMAT, n, "'%s' " PV_TYPES "; got %s", name,
                    amg_ynode_kind_name(n));
    if (amg_ynode_as_bool(n, &b) == 0) {
        v->kind = AMG_PV_BOOL;
        v->num = b;
    } else if (amg_ynode_as_double(n, &v->num) == 0) {
        v->kind = AMG_PV_NUMBER;
    } else {
        v->kind = AMG_PV_STRING;
        v->str = amg_strdup(n->str);
        if (!v->str)
            return oom(c);
    }
    return AMG_OK;
}

static const char *pv_kind_name(amg_pval_kind k)
{
    return k == AMG_PV_NUMBER ? "numbers" : k == AMG_PV_BOOL ? "true/false"
                                                             : "strings";
}

static int pv_gradient(pctx *c, const char *name, const amg_ynode *n,
                       amg_pval *v)
{
    size_t i;
    int rc;

    v->kind = AMG_PV_GRADIENT;
    v->pos = pos_of(n);
    if (n->n_items == 0)
        return perr(c, AMG_EFORMAT, n, "'%s' is an empty list", name);
    v->elems = calloc(n->n_items, sizeof(*v->elems));
    if (!v->elems)
        return oom(c);
    v->n_elems = n->n_items;
    for (i = 0; i < n->n_items; i++) {
        rc = pv_scalar(c, name, n->items[i], &v->elems[i]);
        if (rc != AMG_OK)
            return rc;
        if (v->elems[i].kind != v->elems[0].kind)
            return perr(c, AMG_EFORMAT, n->items[i], "'%s' mixes %s and %s in "
                        "one list; a gradient holds one kind", name,
                        pv_kind_name(v->elems[0].kind),
                        pv_kind_name(v->elems[i].kind));
    }
    return AMG_OK;
}

static int pv_value(pctx *c, const char *name, const amg_ynode *n,
                    amg_pval *v, int allow_filters);

static int pv_filter(pctx *c, const char *name, const amg_ynode *n,
                     amg_pfilter *f)
{
    const amg_ynode *fv, *vv;
    char where[160];
    size_t i;

    f->pos = pos_of(n);
    if (n->kind != AMG_Y_MAP)
        return perr(c, AMG_EFORMAT, n, "each entry of the filter list for "
                    "'%s' must be a {filter, value} mapping; got %s", name,
                    amg_ynode_kind_name(n));
    snprintf(where, sizeof(where), "in a filter of parameter '%s'", name);
    for (i = 0; i < n->n_pairs; i++)
        if (!in_list(n->pairs[i].key->str, FILTER_KEYS))
            return unknown_key(c, n->pairs[i].key, where, FILTER_KEYS);
    vv = amg_ynode_get(n, "value");
    if (!vv)
        return perr(c, AMG_EFORMAT, n, "filter for '%s' has no 'value'",
                    name);
    fv = amg_ynode_get(n, "filter");
    if (fv && !amg_ynode_is_null(fv)) {
        if (fv->kind != AMG_Y_SCALAR)
            return perr(c, AMG_EFORMAT, fv, "'filter' must be a string (part "
                        "of a tensor name); got %s", amg_ynode_kind_name(fv));
        f->filter = amg_strdup(fv->str);
        if (!f->filter)
            return oom(c);
    }
    return pv_value(c, name, vv, &f->value, 0);
}

static int pv_filters(pctx *c, const char *name, const amg_ynode *n,
                      amg_pval *v)
{
    size_t i, count = n->kind == AMG_Y_SEQ ? n->n_items : 1;
    int rc;

    v->kind = AMG_PV_FILTERS;
    v->pos = pos_of(n);
    v->filters = calloc(count, sizeof(*v->filters));
    if (!v->filters)
        return oom(c);
    v->n_filters = count;
    for (i = 0; i < count; i++) {
        rc = pv_filter(c, name, n->kind == AMG_Y_SEQ ? n->items[i] : n,
                       &v->filters[i]);
        if (rc != AMG_OK)
            return rc;
    }
    return AMG_OK;
}

/* A list whose first entry is a mapping is a filter list; any other list
 * is a gradient. Filter values may not nest further filters. */
static int pv_value(pctx *c, const char *name, const amg_ynode *n,
                    amg_pval *v, int allow_filters)
{
    if (n->kind == AMG_Y_SCALAR)
        return pv_scalar(c, name, n, v);
    if (allow_filters && (n->kind == AMG_Y_MAP ||
                          (n->n_items && n->items[0]->kind == AMG_Y_MAP)))
        return pv_filters(c, name, n, v);
    if (n->kind == AMG_Y_SEQ)
        return pv_gradient(c, name, n, v);
    v->pos = pos_of(n);
    return perr(c, AMG_EFORMAT, n, "'%s' " PV_TYPES "; got %s", name,
                amg_ynode_kind_name(n));
}

static int parse_pset(pctx *c, const amg_ynode *n, amg_pset *s)
{
    size_t i;
    int rc;

    if (amg_ynode_is_null(n))
        return AMG_OK;
    if (n->kind != AMG_Y_MAP)
        return perr(c, AMG_EFORMAT, n, "'parameters' must be a mapping of "
                    "name: value; got %s", amg_ynode_kind_name(n));
    if (!n->n_pairs)
        return AMG_OK;
    s->entries = calloc(n->n_pairs, sizeof(*s->entries));
    if (!s->entries)
        return oom(c);
    s->n = n->n_pairs;
    for (i = 0; i < n->n_pairs; i++) {
        amg_pentry *e = &s->entries[i];
        const amg_ynode *key = n->pairs[i].key;

        e->pos = pos_of(key);
        if (!key->str[0])
            return perr(c, AMG_EFORMAT, key, "empty parameter name");
        e->name = amg_strdup(key->str);
        if (!e->name)
            return oom(c);
        rc = pv_value(c, key->str, n->pairs[i].value, &e->value, 1);
        if (rc != AMG_OK)
            return rc;
    }
    return AMG_OK;
}

/* --- model references */

/* [A-Za-z0-9][A-Za-z0-9._-]* followed by stop (or by the end when
 * end_ok); returns its length, 0 if none. */
static size_t hub_part(const char *s, char stop, int end_ok)
{
    static const char ok[] = "abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    size_t n = strspn(s, ok);

    if (n == 0 || s[0] == '.' || s[0] == '-')
        return 0;
    return s[n] == stop || (end_ok && s[n] == '\0') ? n : 0;
}

/* org/name or org/name@revision (a revision may hold '/': refs/pr/1). */
static int is_hub_id(const char *s)
{
    size_t n = hub_part(s, '/', 0);

    if (!n)
        return 0;
    s += n + 1;
    n = hub_part(s, '@', 1);
    if (!n)
        return 0;
    s += n;
    if (*s == '\0')
        return 1;
    s++;
    return *s && !strpbrk(s, " \t\r\n");
}

static int exists(const char *path)
{
    return amg_is_dir(path) || amg_is_file(path);
}

static int ref_step(pctx *c, const amg_ynode *n, amg_source *s, int *found)
{
    size_t i;

    *found = 0;
    for (i = 0; c->multi && i < c->n_names; i++) {
        if (strcmp(n->str, c->names[i]->str) != 0)
            continue;
        if (i == c->cur)
            return perr(c, AMG_EFORMAT, n, "step '%s' refers to itself",
                        c->step);
        if (i > c->cur)
            return perr(c, AMG_EFORMAT, n, "step '%s' refers to step '%s', "
                        "which is defined later", c->step, n->str);
        s->ref = AMG_REF_STEP;
        s->step = i;
        s->model = amg_strdup(n->str);
        *found = 1;
        return s->model ? AMG_OK : oom(c);
    }
    return AMG_OK;
}

/* text as a Hub id or a local path resolved against dir. */
static int path_or_hub(pctx *c, const amg_ynode *n, const char *t,
                       const char *dir, amg_ref_kind *kind, char **out)
{
    char *resolved;

    if (strncmp(t, "hf://", 5) == 0) {
        if (!is_hub_id(t + 5))
            return perr(c, AMG_EFORMAT, n, "'%s' is not a Hub model id "
                        "(expected hf://org/name or hf://org/name@revision)",
                        t);
        *kind = AMG_REF_HUB;
        *out = amg_strdup(t + 5);
        return *out ? AMG_OK : oom(c);
    }
    resolved = t[0] == '/' || !dir[0] ? amg_strdup(t) : amg_path_join(dir, t);
    if (!resolved)
        return oom(c);
    if (is_hub_id(t) && !exists(resolved)) {
        free(resolved);
        *kind = AMG_REF_HUB;
        *out = amg_strdup(t);
        return *out ? AMG_OK : oom(c);
    }
    *kind = AMG_REF_PATH;
    *out = resolved;
    return AMG_OK;
}

static int is_step_name(const pctx *c, const char *t, size_t len)
{
    size_t i;

    for (i = 0; c->multi && i < c->n_names; i++)
        if (strlen(c->names[i]->str) == len &&
            strncmp(c->names[i]->str, t, len) == 0)
            return 1;
    return 0;
}

/* mergekit's model+lora, unless a file or folder has the whole name. */
static int split_lora(pctx *c, const amg_ynode *n, const char *plus,
                      amg_source *s)
{
    const char *t = n->str;
    size_t len = (size_t)(plus - t);
    char *base;
    int rc;

    if (is_step_name(c, t, len))
        return perr(c, AMG_EINVAL, n, "'%s': a LoRA adapter folds into a "
                    "model, not into step '%.*s'", t, (int)len, t);
    if (!(base = malloc(len + 1)))
        return oom(c);
    memcpy(base, t, len);
    base[len] = '\0';
    rc = path_or_hub(c, n, base, c->dir, &s->ref, &s->model);
    free(base);
    if (rc == AMG_OK)
        rc = path_or_hub(c, n, plus + 1, c->dir, &s->lora_ref, &s->lora);
    return rc;
}

/* An adapter folder alone stands for its base with the adapter folded in:
 * the base is the adapter's base_model_name_or_path, a path relative to
 * the adapter's folder or a Hub id, by the same rules as the pipeline's
 * references. */
static int adapter_alone(pctx *c, const amg_ynode *n, amg_source *s)
{
    char *base = NULL;
    int rc = amg_lora_read_base(s->model, &base, c->err);

    if (rc != AMG_OK)
        return amg_err_prefix(c->err, "%s:%d:%d: ", c->label, n->line,
                              n->col);
    if (!base)
        return perr(c, AMG_EINVAL, n, "'%s' is a LoRA adapter whose "
                    "adapter_config.json names no base model "
                    "(base_model_name_or_path); write it as base+adapter",
                    n->str);
    s->lora = s->model;
    s->lora_ref = AMG_REF_PATH;
    s->model = NULL;
    rc = path_or_hub(c, n, base, s->lora, &s->ref, &s->model);
    free(base);
    return rc;
}

static int classify(pctx *c, const amg_ynode *n, const char *key,
                    amg_source *s)
{
    const char *t = n->str, *plus;
    char *whole;
    int rc, found, split;

    s->pos = pos_of(n);
    if (!is_text(n))
        return perr(c, AMG_EFORMAT, n, "'%s' must be a model (a path, "
                    "org/name or a step name); got %s", key,
                    amg_ynode_kind_name(n));
    if (!t[0])
        return perr(c, AMG_EFORMAT, n, "'%s' is empty", key);
    rc = ref_step(c, n, s, &found);
    if (rc != AMG_OK || found)
        return rc;
    plus = strchr(t, '+');
    if (plus && plus != t && plus[1]) {
        whole = t[0] == '/' || !c->dir[0] ? amg_strdup(t)
                                           : amg_path_join(c->dir, t);
        if (!whole)
            return oom(c);
        split = !exists(whole);
        free(whole);
        if (split)
            return split_lora(c, n, plus, s);
    }
    rc = path_or_hub(c, n, t, c->dir, &s->ref, &s->model);
    if (rc == AMG_OK && s->ref == AMG_REF_PATH &&
        amg_lora_is_adapter(s->model))
        rc = adapter_alone(c, n, s);
    return rc;
}

static int model_node(pctx *c, const amg_ynode *n, const char *key,
                      amg_source *s)
{
    if (n->kind == AMG_Y_MAP)
        return perr(c, AMG_EUNSUPPORTED, n, "'%s' written as a mapping "
                    "({model, lora, ...}) is not supported yet; write the "
                    "model as a string", key);
    return classify(c, n, key, s);
}

static int new_source(pctx *c, const amg_ynode *n, const char *key,
                      amg_source **out)
{
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return oom(c);
    return model_node(c, n, key, *out);
}

/* --- models: and slices: */

static int nonempty_list(pctx *c, const amg_ynode *n, const char *key,
                         const char *what)
{
    if (n->kind != AMG_Y_SEQ)
        return perr(c, AMG_EFORMAT, n, "'%s' must be a list of %s; got %s",
                    key, what, amg_ynode_kind_name(n));
    if (!n->n_items)
        return perr(c, AMG_EFORMAT, n, "'%s' is empty", key);
    return AMG_OK;
}

/* `fisher: PATH` on a model entry or slice source: a local path only (a
 * Hub reference would need a fetch rule of its own). Whether the strategy
 * takes auxiliary tensors is the plan's check: it knows the strategy. */
static int parse_fisher(pctx *c, const amg_ynode *n, amg_source *s)
{
    const amg_ynode *v = amg_ynode_get(n, "fisher");

    if (!v)
        return AMG_OK;
    s->fisher_pos = pos_of(v);
    if (!is_text(v) || !v->str[0])
        return perr(c, AMG_EFORMAT, v, "'fisher' must be the path of a "
                    "safetensors file or of a folder holding one; got %s",
                    is_text(v) ? "an empty string" : amg_ynode_kind_name(v));
    s->fisher = v->str[0] == '/' || !c->dir[0]
                    ? amg_strdup(v->str)
                    : amg_path_join(c->dir, v->str);
    return s->fisher ? AMG_OK : oom(c);
}

static int parse_model_entry(pctx *c, const amg_ynode *n, amg_source *s)
{
    const amg_ynode *m, *key;
    char where[160];
    size_t i;
    int rc;

    if (n->kind == AMG_Y_SCALAR)
        return classify(c, n, "model", s);
    if (n->kind != AMG_Y_MAP)
        return perr(c, AMG_EFORMAT, n, "each entry of 'models' must be a "
                    "model or {model, parameters}; got %s",
                    amg_ynode_kind_name(n));
    snprintf(where, sizeof(where), "in a model of step '%s'", c->step);
    for (i = 0; i < n->n_pairs; i++) {
        key = n->pairs[i].key;
        if (strcmp(key->str, "layer_range") == 0)
            return perr(c, AMG_EFORMAT, key, "'layer_range' belongs to "
                        "'slices' sources; 'models' entries take whole "
                        "models");
        if (!in_list(key->str, MODEL_KEYS))
            return unknown_key(c, key, where, MODEL_KEYS);
    }
    m = amg_ynode_get(n, "model");
    if (!m)
        return perr(c, AMG_EFORMAT, n, "model entry in step '%s' has no "
                    "'model'", c->step);
    rc = model_node(c, m, "model", s);
    if (rc == AMG_OK && (m = amg_ynode_get(n, "parameters")))
        rc = parse_pset(c, m, &s->params);
    if (rc == AMG_OK)
        rc = parse_fisher(c, n, s);
    return rc;
}

static int parse_models(pctx *c, const amg_ynode *n, amg_step *st)
{
    size_t i;
    int rc = nonempty_list(c, n, "models", "models");

    if (rc != AMG_OK)
        return rc;
    st->models = calloc(n->n_items, sizeof(*st->models));
    if (!st->models)
        return oom(c);
    st->n_models = n->n_items;
    for (i = 0; i < n->n_items && rc == AMG_OK; i++)
        rc = parse_model_entry(c, n->items[i], &st->models[i]);
    return rc;
}

static int layer_bound(pctx *c, const amg_ynode *n, int *out)
{
    long long v;

    if (amg_ynode_as_int(n, &v) != 0 || v < 0 || v > 1000000)
        return perr(c, AMG_EFORMAT, n, "'layer_range' bounds must be layer "
                    "numbers (integers from 0); got %s%s%s",
                    n->kind == AMG_Y_SCALAR ? "'" : "",
                    n->kind == AMG_Y_SCALAR ? n->str
                                            : amg_ynode_kind_name(n),
                    n->kind == AMG_Y_SCALAR ? "'" : "");
    *out = (int)v;
    return AMG_OK;
}

static int parse_range(pctx *c, const amg_ynode *n, amg_source *s)
{
    int rc;

    if (n->kind != AMG_Y_SEQ || n->n_items != 2)
        return perr(c, AMG_EFORMAT, n, "'layer_range' must be [begin, end], "
                    "two layer numbers; got %s%s", n->kind == AMG_Y_SEQ ?
                    "a list of " : amg_ynode_kind_name(n),
                    n->kind == AMG_Y_SEQ ? (n->n_items == 1 ? "1" : "3 or more")
                                         : "");
    rc = layer_bound(c, n->items[0], &s->range[0]);
    if (rc == AMG_OK)
        rc = layer_bound(c, n->items[1], &s->range[1]);
    if (rc != AMG_OK)
        return rc;
    if (s->range[0] >= s->range[1])
        return perr(c, AMG_EFORMAT, n, "'layer_range' [%d, %d] is empty: "
                    "begin must be less than end (the end is excluded)",
                    s->range[0], s->range[1]);
    s->has_range = 1;
    return AMG_OK;
}

static int parse_slice_source(pctx *c, const amg_ynode *n, amg_source *s)
{
    const amg_ynode *m, *r;
    char where[160];
    size_t i;
    int rc;

    if (n->kind != AMG_Y_MAP)
        return perr(c, AMG_EFORMAT, n, "each entry of 'sources' must be "
                    "{model, layer_range, parameters}; got %s",
                    amg_ynode_kind_name(n));
    snprintf(where, sizeof(where), "in a slice source of step '%s'", c->step);
    for (i = 0; i < n->n_pairs; i++)
        if (!in_list(n->pairs[i].key->str, SOURCE_KEYS))
            return unknown_key(c, n->pairs[i].key, where, SOURCE_KEYS);
    m = amg_ynode_get(n, "model");
    if (!m)
        return perr(c, AMG_EFORMAT, n, "slice source in step '%s' has no "
                    "'model'", c->step);
    r = amg_ynode_get(n, "layer_range");
    if (!r)
        return perr(c, AMG_EFORMAT, n, "slice source in step '%s' has no "
                    "'layer_range'", c->step);
    rc = model_node(c, m, "model", s);
    if (rc == AMG_OK)
        rc = parse_range(c, r, s);
    if (rc == AMG_OK && (m = amg_ynode_get(n, "parameters")))
        rc = parse_pset(c, m, &s->params);
    if (rc == AMG_OK)
        rc = parse_fisher(c, n, s);
    return rc;
}

static int parse_slice(pctx *c, const amg_ynode *n, amg_slice *sl)
{
    const amg_ynode *v;
    char where[160];
    double ignored;
    size_t i;
    int rc;

    sl->pos = pos_of(n);
    if (n->kind != AMG_Y_MAP)
        return perr(c, AMG_EFORMAT, n, "each entry of 'slices' must be "
                    "{sources, base_model, parameters}; got %s",
                    amg_ynode_kind_name(n));
    snprintf(where, sizeof(where), "in a slice of step '%s'", c->step);
    for (i = 0; i < n->n_pairs; i++)
        if (!in_list(n->pairs[i].key->str, SLICE_KEYS))
            return unknown_key(c, n->pairs[i].key, where, SLICE_KEYS);
    v = amg_ynode_get(n, "sources");
    if (!v)
        return perr(c, AMG_EFORMAT, n, "slice in step '%s' has no 'sources'",
                    c->step);
    rc = nonempty_list(c, v, "sources", "{model, layer_range} sources");
    if (rc != AMG_OK)
        return rc;
    sl->sources = calloc(v->n_items, sizeof(*sl->sources));
    if (!sl->sources)
        return oom(c);
    sl->n_sources = v->n_items;
    for (i = 0; i < v->n_items && rc == AMG_OK; i++)
        rc = parse_slice_source(c, v->items[i], &sl->sources[i]);
    if (rc == AMG_OK && (v = amg_ynode_get(n, "base_model"))) {
        rc = new_source(c, v, "base_model", &sl->base);
        if (rc == AMG_OK && !(sl->base_model = amg_strdup(sl->base->model)))
            rc = oom(c);
    }
    if (rc == AMG_OK && (v = amg_ynode_get(n, "parameters")))
        rc = parse_pset(c, v, &sl->params);
    /* mergekit parses residual_weight and never uses it: keep configs that
     * carry it loading, but still insist on a number. */
    if (rc == AMG_OK && (v = amg_ynode_get(n, "residual_weight")) &&
        amg_ynode_as_double(v, &ignored) != 0)
        rc = perr(c, AMG_EFORMAT, v, "'residual_weight' must be a number; "
                  "got %s", amg_ynode_kind_name(v));
    return rc;
}

static int parse_slices(pctx *c, const amg_ynode *n, amg_step *st)
{
    size_t i;
    int rc = nonempty_list(c, n, "slices", "slices");

    if (rc != AMG_OK)
        return rc;
    st->slices = calloc(n->n_items, sizeof(*st->slices));
    if (!st->slices)
        return oom(c);
    st->n_slices = n->n_items;
    st->uses_slices = 1;
    for (i = 0; i < n->n_items && rc == AMG_OK; i++)
        rc = parse_slice(c, n->items[i], &st->slices[i]);
    return rc;
}

/* --- step keys */

static int parse_dtype(pctx *c, const amg_ynode *n, const char *key,
                       amg_dtype *out)
{
    if (!is_text(n))
        return perr(c, AMG_EFORMAT, n, "'%s' must be a type name such as "
                    "bfloat16; got %s", key, amg_ynode_kind_name(n));
    if (amg_dtype_parse_user(n->str, out) != 0)
        return perr(c, AMG_EFORMAT, n, "unknown type '%s' for '%s' (expected "
                    "float32, bfloat16, float16 or float64)", n->str, key);
    if (!amg_dtype_is_float(*out))
        return perr(c, AMG_EFORMAT, n, "'%s' must be a floating-point type; "
                    "got '%s'", key, n->str);
    return AMG_OK;
}

static int parse_tokenizer(pctx *c, const amg_ynode *n, amg_step *st)
{
    int rc;

    st->tokenizer_pos = pos_of(n);
    if (is_text(n) && strcmp(n->str, "union") == 0)
        return perr(c, AMG_EUNSUPPORTED, n, "tokenizer_source 'union' is not "
                    "supported yet; use 'base' or a model");
    if (is_text(n) && strcmp(n->str, "base") == 0) {
        st->tokenizer_source = amg_strdup("base");
        return st->tokenizer_source ? AMG_OK : oom(c);
    }
    rc = new_source(c, n, "tokenizer_source", &st->tokenizer);
    if (rc == AMG_OK && !(st->tokenizer_source =
                              amg_strdup(st->tokenizer->model)))
        rc = oom(c);
    return rc;
}

static int top_key(pctx *c, const amg_ynode *key, const amg_ynode *v)
{
    long long seed;

    if (strcmp(key->str, "seed") == 0) {
        if (amg_ynode_as_int(v, &seed) != 0 || seed < 0)
            return perr(c, AMG_EFORMAT, v, "'seed' must be a non-negative "
                        "integer; got %s%s%s",
                        v->kind == AMG_Y_SCALAR ? "'" : "",
                        v->kind == AMG_Y_SCALAR ? v->str
                                                : amg_ynode_kind_name(v),
                        v->kind == AMG_Y_SCALAR ? "'" : "");
        c->p->seed = (uint64_t)seed;
        return AMG_OK;
    }
    /* plugin: a file next to the pipeline, like model paths */
    c->p->plugin_pos = pos_of(v);
    if (!is_text(v))
        return perr(c, AMG_EFORMAT, v, "'plugin' must be a plugin file; got "
                    "%s", amg_ynode_kind_name(v));
    c->p->plugin = v->str[0] == '/' || !c->dir[0] ? amg_strdup(v->str)
                                                 : amg_path_join(c->dir,
                                                                 v->str);
    return c->p->plugin ? AMG_OK : oom(c);
}

/* Keys refused for a reason better than "unknown". */
static int misplaced_key(pctx *c, const amg_ynode *key)
{
    const char *k = key->str;

    if (strcmp(k, "tokenizer") == 0)
        return perr(c, AMG_EUNSUPPORTED, key, "'tokenizer' is not supported "
                    "yet: use tokenizer_source");
    if (strcmp(k, "modules") == 0)
        return perr(c, AMG_EUNSUPPORTED, key, "'modules' (multi-module "
                    "models) is not supported yet: use 'models' or 'slices'");
    if (c->multi && in_list(k, TOP_KEYS))
        return perr(c, AMG_EFORMAT, key, "'%s' belongs at the top level, not "
                    "inside step '%s'", k, c->step);
    if (!c->multi && strcmp(k, "output") == 0)
        return perr(c, AMG_EFORMAT, key, "'output' names the step to write "
                    "and needs 'steps'");
    if (!c->multi && strcmp(k, "name") == 0)
        return perr(c, AMG_EFORMAT, key, "'name' is for entries of 'steps'; "
                    "a plain config is one step called 'merge'");
    return AMG_OK;
}

static int step_key(pctx *c, const amg_ynode *key, const amg_ynode *v,
                    amg_step *st)
{
    const char *k = key->str;
    char where[160];
    int rc;

    if (strcmp(k, "merge_method") == 0) {
        st->method_pos = pos_of(v);
        return get_text(c, v, k, &st->method);
    }
    if (strcmp(k, "base_model") == 0)
        return new_source(c, v, k, &st->base);
    if (strcmp(k, "models") == 0 || strcmp(k, "slices") == 0) {
        if (st->n_models || st->n_slices)
            return perr(c, AMG_EFORMAT, key, "step '%s' has both 'models' and "
                        "'slices'; use one", c->step);
        return k[0] == 'm' ? parse_models(c, v, st) : parse_slices(c, v, st);
    }
    if (strcmp(k, "parameters") == 0)
        return parse_pset(c, v, &st->params);
    if (strcmp(k, "dtype") == 0) {
        st->has_dtype = 1;
        return parse_dtype(c, v, k, &st->dtype);
    }
    if (strcmp(k, "out_dtype") == 0) {
        st->has_out_dtype = 1;
        return parse_dtype(c, v, k, &st->out_dtype);
    }
    if (strcmp(k, "tokenizer_source") == 0)
        return parse_tokenizer(c, v, st);
    if (strcmp(k, "chat_template") == 0) {
        st->chat_template_pos = pos_of(v);
        return get_text(c, v, k, &st->chat_template);
    }
    rc = misplaced_key(c, key);
    if (rc != AMG_OK)
        return rc;
    if (!c->multi && in_list(k, TOP_KEYS))
        return top_key(c, key, v);
    if (c->multi && strcmp(k, "name") == 0)
        return AMG_OK;                 /* read before the step */
    snprintf(where, sizeof(where), "in step '%s'", c->step);
    return unknown_key(c, key, where, c->multi ? STEP_KEYS : PLAIN_KEYS);
}

static int parse_step(pctx *c, const amg_ynode *map, amg_step *st)
{
    size_t i;
    int rc = AMG_OK;

    st->pos = pos_of(map);
    st->name = amg_strdup(c->step);
    if (!st->name)
        return oom(c);
    for (i = 0; i < map->n_pairs && rc == AMG_OK; i++)
        rc = step_key(c, map->pairs[i].key, map->pairs[i].value, st);
    if (rc != AMG_OK)
        return rc;
    if (!st->method)
        return perr(c, AMG_EFORMAT, map, "step '%s' has no 'merge_method'",
                    c->step);
    if (!st->n_models && !st->n_slices)
        return perr(c, AMG_EFORMAT, map, "step '%s' needs 'models' or "
                    "'slices'", c->step);
    return AMG_OK;
}

/* --- steps: */

static int valid_step_name(const char *s)
{
    static const char ok[] = "abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";

    return s[0] && s[0] != '.' && !s[strspn(s, ok)];
}

/* Names first, so that a reference to a later step can be told apart from
 * a path that happens to look like one. */
static int collect_names(pctx *c, const amg_ynode *steps)
{
    const amg_ynode *n, *name;
    size_t i, j;

    c->names = calloc(steps->n_items, sizeof(*c->names));
    if (!c->names)
        return oom(c);
    for (i = 0; i < steps->n_items; i++) {
        n = steps->items[i];
        if (n->kind != AMG_Y_MAP)
            return perr(c, AMG_EFORMAT, n, "each entry of 'steps' must be a "
                        "mapping with 'name' and 'merge_method'; got %s",
                        amg_ynode_kind_name(n));
        name = amg_ynode_get(n, "name");
        if (!name)
            return perr(c, AMG_EFORMAT, n, "step %zu has no 'name'", i + 1);
        if (!is_text(name) || !valid_step_name(name->str))
            return perr(c, AMG_EFORMAT, name, "step name '%s' must be letters, "
                        "digits, '_', '-' or '.' (not starting with '.')",
                        name->str ? name->str : "");
        for (j = 0; j < i; j++)
            if (strcmp(c->names[j]->str, name->str) == 0)
                return perr(c, AMG_EFORMAT, name, "step name '%s' is used "
                            "twice (first at line %d)", name->str,
                            c->names[j]->line);
        c->names[i] = name;
        c->n_names = i + 1;
    }
    return AMG_OK;
}

static int parse_output(pctx *c, const amg_ynode *v)
{
    char list[512];
    size_t i, used = 0;

    for (i = 0; is_text(v) && i < c->n_names; i++)
        if (strcmp(v->str, c->names[i]->str) == 0) {
            c->p->output = i;
            return AMG_OK;
        }
    list[0] = '\0';
    for (i = 0; i < c->n_names && used < sizeof(list); i++) {
        int w = snprintf(list + used, sizeof(list) - used, "%s%s",
                         i ? ", " : "", c->names[i]->str);

        if (w < 0)
            break;
        used += (size_t)w;
    }
    if (!is_text(v))
        return perr(c, AMG_EFORMAT, v, "'output' must be a step name; got %s",
                    amg_ynode_kind_name(v));
    return perr(c, AMG_EFORMAT, v, "'output' names no step: '%s' (steps: %s)",
                v->str, list);
}

static int parse_steps(pctx *c, const amg_ynode *root, const amg_ynode *steps)
{
    const amg_ynode *out = NULL;
    size_t i;
    int rc;

    for (i = 0; i < root->n_pairs; i++) {
        const amg_ynode *key = root->pairs[i].key;

        if (in_list(key->str, STEP_KEYS) || strcmp(key->str, "modules") == 0)
            return perr(c, AMG_EFORMAT, key, "'%s' belongs inside a step when "
                        "'steps' is used", key->str);
        if (!in_list(key->str, TOP_KEYS))
            return unknown_key(c, key, "at the top level", TOP_KEYS);
    }
    rc = nonempty_list(c, steps, "steps", "steps");
    if (rc == AMG_OK)
        rc = collect_names(c, steps);
    if (rc != AMG_OK)
        return rc;
    c->p->steps = calloc(steps->n_items, sizeof(*c->p->steps));
    if (!c->p->steps)
        return oom(c);
    c->p->n_steps = steps->n_items;
    for (i = 0; i < steps->n_items && rc == AMG_OK; i++) {
        c->cur = i;
        c->step = c->names[i]->str;
        rc = parse_step(c, steps->items[i], &c->p->steps[i]);
    }
    c->p->output = c->p->n_steps - 1;
    for (i = 0; i < root->n_pairs && rc == AMG_OK; i++) {
        const amg_ynode *key = root->pairs[i].key;

        if (strcmp(key->str, "output") == 0)
            out = root->pairs[i].value;
        else if (strcmp(key->str, "steps") != 0)
            rc = top_key(c, key, root->pairs[i].value);
    }
    if (rc == AMG_OK && out)
        rc = parse_output(c, out);
    return rc;
}

static int build(amg_pipeline *p, const amg_ydoc *doc, amg_err *err)
{
    const amg_ynode *root = doc->root, *steps;
    pctx c;
    int rc;

    memset(&c, 0, sizeof(c));
    c.label = p->path;
    c.dir = p->dir;
    c.err = err;
    c.p = p;
    if (!root || amg_ynode_is_null(root))
        return amg_err_set(err, AMG_EFORMAT, "%s: empty pipeline", p->path);
    if (root->kind != AMG_Y_MAP)
        return perr(&c, AMG_EFORMAT, root, "a pipeline must be a mapping "
                    "(merge_method: ..., models: ...); got %s",
                    amg_ynode_kind_name(root));
    steps = amg_ynode_get(root, "steps");
    if (steps) {
        c.multi = 1;
        rc = parse_steps(&c, root, steps);
        free(c.names);
        return rc;
    }
    p->steps = calloc(1, sizeof(*p->steps));
    if (!p->steps)
        return oom(&c);
    p->n_steps = 1;
    c.step = "merge";
    return parse_step(&c, root, &p->steps[0]);
}

static int pipeline_init(amg_pipeline *p, const char *label, const char *dir,
                         amg_err *err)
{
    memset(p, 0, sizeof(*p));
    p->path = amg_strdup(label);
    p->dir = amg_strdup(dir ? dir : "");
    if (!p->path || !p->dir) {
        amg_pipeline_free(p);
        return amg_err_set(err, AMG_ENOMEM, "out of memory reading '%s'",
                           label);
    }
    return AMG_OK;
}

static int finish(amg_pipeline *p, amg_ydoc *doc, int rc, amg_err *err)
{
    if (rc == AMG_OK)
        rc = build(p, doc, err);
    amg_ydoc_free(doc);
    if (rc != AMG_OK)
        amg_pipeline_free(p);
    return rc;
}

int amg_pipeline_parse(amg_pipeline *p, const char *label, const char *dir,
                       const char *text, size_t len, amg_err *err)
{
    amg_ydoc doc;
    int rc = pipeline_init(p, label, dir, err);

    if (rc != AMG_OK)
        return rc;
    return finish(p, &doc, amg_ydoc_parse(&doc, label, text, len, err), err);
}

/* The folder part of path: "." for a bare name, "/" for "/x". */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n;
    char *d;

    if (!slash)
        return amg_strdup(".");
    n = slash == path ? 1 : (size_t)(slash - path);
    d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

int amg_pipeline_load(amg_pipeline *p, const char *path, amg_err *err)
{
    amg_ydoc doc;
    char *dir = dir_of(path);
    int rc;

    memset(p, 0, sizeof(*p));
    if (!dir)
        return amg_err_set(err, AMG_ENOMEM, "out of memory reading '%s'",
                           path);
    rc = pipeline_init(p, path, dir, err);
    free(dir);
    if (rc != AMG_OK)
        return rc;
    return finish(p, &doc, amg_ydoc_load(&doc, path, err), err);
}
