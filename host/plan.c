/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plan.c - resolve a pipeline against its models and strategies: one small
 * node graph per output tensor, every parameter evaluated, every shape
 * checked, before any tensor data is read.
 *
 * The rules, mergekit's unless said otherwise (research/mergekit.md §1.2,
 * §2.2, §3.2):
 *
 * Models. Every distinct local model (by real path) is opened once, fully
 * mapped. Hub references resolve to their snapshot folder in the shared
 * cache (registry/hub_fetch.h), fetched when missing. A step named as
 * a model stands for that step's value of the same tensor, evaluated in
 * memory.
 *
 * Layers. A tensor named "<prefix>(layers|h|block|blocks).<N>.<rest>" (the
 * first such segment) belongs to layer N; others (embeddings, final norm,
 * lm_head) are outside the layer stack and get t = 0.
 *   models:  one slice over all L layers of the reference (config
 *            num_hidden_layers, else the highest N + 1): t = N / (L - 1),
 *            t = 1 when L == 1.
 *   slices:  output layers are numbered consecutively over the slices.
 *            Slice k with sources [a, b) (all of one length) makes output
 *            layers off .. off + (b - a) - 1, layer off + i read from each
 *            source's layer a + i (renamed); t = i / (len - 1) (1 for a
 *            one-layer slice). Tensors outside the stack come from the
 *            first slice when their name holds "embed", else from the last.
 *
 * Reference. A step's reference is its base_model if any, else its first
 * model (slices: the slice's base if any, else its first source). Its
 * tensor names, in name order, are the step's outputs; its stored dtype is
 * the output dtype unless the pipeline or --out-dtype says otherwise; its
 * config.json is the output's template. Tensors the reference stores as
 * integers are copied from it, not merged.
 *
 * Base. Strategies that need a base get the base_model's value apart from
 * the inputs, and the base is dropped from the inputs when it is also
 * listed among them (mergekit's task-arithmetic family). Other strategies
 * keep a listed base as an ordinary input (linear averages it). Within a
 * slice the base must be one of the slice's sources: its layer_range says
 * which of its layers to read.
 *
 * Parameters. Per-model values: the source's own parameters, then the
 * slice's, then the top level; evaluated against the input tensor name.
 * Global values: the slice's, then the top level; evaluated against the
 * output tensor name. A filter list that matches nothing leaves the
 * setting to the next level. Names must exist in the strategy's schema; a
 * global parameter cannot be set per model; lists and filters only where
 * the schema allows gradients.
 *
 * Shapes. Inputs must agree. For embed_tokens / lm_head matrices of
 * different sizes the common submatrix [:min_rows, :min_cols] of each is
 * used. A model that stores no lm_head.weight and ties its embeddings
 * (config, or the architecture's default when the config is silent) gives
 * its model.embed_tokens.weight instead (mergekit's tied_names).
 */
#include "config.h"
#include "plan.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <amalgam/rng.h>

#include "hub_fetch.h"
#include "model_ref.h"
#include "param_eval.h"
#include "plugin_catalog.h"
#include "util.h"

#define EMBED_NAME "model.embed_tokens.weight"
#define LM_HEAD_NAME "lm_head.weight"

/* A local model reference and the model it opened. */
typedef struct ref_map {
    const amg_source *src;
    size_t model;
} ref_map;

/* A source with a `fisher:` file and the file it opened. */
typedef struct aux_map {
    const amg_source *src;
    size_t file;
} aux_map;

/* A source with a LoRA adapter and the adapter it opened. */
typedef struct lora_map {
    const amg_source *src;
    size_t lora;
} lora_map;

typedef struct step_info {
    const amg_plugin_entry *strategy;
    char **names;                      /* outputs, sorted by strcmp */
    size_t n_names;
    int layers;                        /* layers of the step's output */
    int *slice_off;                    /* per slice: its first output layer */
    int *slice_len;                    /* per slice: its layer count */
    const amg_source **slice_base;     /* per slice: the base among its
                                          sources, or NULL */
} step_info;

typedef struct bctx {
    amg_plan *plan;
    const amg_pipeline *pipe;
    amg_err *err;
    ref_map *refs;
    size_t n_refs;
    amg_pos *model_pos;                /* first reference of each model */
    step_info *steps;
    size_t tensor_first;               /* first node of the current tensor */
    size_t node_cap;
    lora_map *loras;                   /* sources with a LoRA adapter */
    size_t n_loras;
    aux_map *auxs;                     /* sources with a `fisher:` file */
    size_t n_auxs;
    double *aux_norm;                  /* per aux file: its L2 norm, 0
                                          until normalize_fishers asks */
} bctx;

/* Where one tensor of one step comes from. */
typedef struct route {
    const amg_source *srcs;
    size_t n_srcs;
    const amg_slice *slice;            /* slices: the slice used, else NULL */
    int in_offset;                     /* slice layers: i, else -1 */
    int32_t layer;                     /* output layer, or -1 */
    double t;
    const amg_source *base;            /* or NULL */
    const amg_source *ref;             /* the reference source */
} route;

/* ---- messages */

static int at(const bctx *c, amg_pos pos, int status, const char *fmt, ...)
    AMG_PRINTF(4, 5);

static int at(const bctx *c, amg_pos pos, int status, const char *fmt, ...)
{
    char msg[AMG_ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (pos.line > 0)
        return amg_err_set(c->err, status, "%s:%d:%d: %s", c->pipe->path,
                           pos.line, pos.col, msg);
    return amg_err_set(c->err, status, "%s: %s", c->pipe->path, msg);
}

/* Put the position in front of a message a callee recorded. */
static int prefix_at(const bctx *c, amg_pos pos)
{
    if (pos.line > 0)
        return amg_err_prefix(c->err, "%s:%d:%d: ", c->pipe->path, pos.line,
                              pos.col);
    return amg_err_prefix(c->err, "%s: ", c->pipe->path);
}

static int oom(const bctx *c)
{
    return amg_err_set(c->err, AMG_ENOMEM, "%s: out of memory planning the "
                       "merge", c->pipe->path);
}

/* A local path as the user wrote it: relative to the pipeline's folder
 * when it lies inside it. */
static const char *display_path(const char *dir, const char *path)
{
    size_t n = dir ? strlen(dir) : 0;

    if (n && strncmp(path, dir, n) == 0 && path[n] == '/' && path[n + 1])
        return path + n + 1;
    return path;
}

static const char *ref_name(const bctx *c, const amg_source *s)
{
    return s->ref == AMG_REF_PATH ? display_path(c->pipe->dir, s->model)
                                  : s->model;
}

static void fmt_shape(char *buf, size_t cap, int ndim, const uint64_t *shape)
{
    size_t used = 0;
    int i, w;

    buf[0] = '\0';
    w = snprintf(buf, cap, "[");
    used = w > 0 ? (size_t)w : 0;
    for (i = 0; i < ndim && used < cap; i++) {
        w = snprintf(buf + used, cap - used, "%s%llu", i ? ", " : "",
                     (unsigned long long)shape[i]);
        if (w < 0)
            return;
        used += (size_t)w;
    }
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
}

/* The near miss worth suggesting: at most a third of the word wrong. */
static int is_near(const char *typed, const char *known, size_t *best)
{
    size_t d = amg_edit_distance(typed, known);

    if (d == SIZE_MAX || d > (strlen(typed) + 2) / 3 || d >= *best)
        return 0;
    *best = d;
    return 1;
}

/* ---- layers */

/* Layer of a tensor name, or -1; *num and *num_len locate the digits. */
static int layer_of(const char *name, size_t *num, size_t *num_len)
{
    static const char *const words[] = { "layers.", "h.", "block.",
                                         "blocks.", NULL };
    size_t p, w, k, len;

    for (p = 0; name[p]; p++) {
        if (p && name[p - 1] != '.')
            continue;
        for (w = 0; words[w]; w++) {
            len = strlen(words[w]);
            if (strncmp(name + p, words[w], len) != 0)
                continue;
            for (k = p + len; name[k] >= '0' && name[k] <= '9'; k++)
                ;
            /* nine digits keep the number inside an int */
            if (k == p + len || name[k] != '.' || k - (p + len) > 9)
                continue;
            *num = p + len;
            *num_len = k - (p + len);
            return (int)strtol(name + p + len, NULL, 10);
        }
    }
    return -1;
}

static int layer_index(const char *name)
{
    size_t num, len;

    return layer_of(name, &num, &len);
}

/* name with its layer number replaced by layer (malloc'd). */
static char *renamed(const char *name, int layer)
{
    size_t num, len, n = strlen(name) + 16;
    char *out;

    if (layer_of(name, &num, &len) < 0)
        return amg_strdup(name);
    out = malloc(n);
    if (out)
        snprintf(out, n, "%.*s%d%s", (int)num, name, layer, name + num + len);
    return out;
}

static int model_layers(const amg_model *m)
{
    size_t i;
    int top = -1, l;

    if (m->config.n_layers > 0)
        return m->config.n_layers;
    for (i = 0; i < m->n_tensors; i++)
        if ((l = layer_index(m->tensors[i].name)) > top)
            top = l;
    return top + 1;
}

/* ---- models */

static size_t model_of(const bctx *c, const amg_source *s)
{
    size_t i;

    for (i = 0; i < c->n_refs; i++)
        if (c->refs[i].src == s)
            return c->refs[i].model;
    return AMG_NO_NODE;
}

static const lora_map *lora_of(const bctx *c, const amg_source *s)
{
    size_t i;

    for (i = 0; s->lora && i < c->n_loras; i++)
        if (c->loras[i].src == s)
            return &c->loras[i];
    return NULL;
}

/* Both without an adapter, or both with the same one. */
static int same_lora(const bctx *c, const amg_source *a, const amg_source *b)
{
    const lora_map *x = lora_of(c, a), *y = lora_of(c, b);

    if (!a->lora || !b->lora)
        return !a->lora && !b->lora;
    if (x && y)
        return x->lora == y->lora;
    return strcmp(a->lora, b->lora) == 0;
}

static int same_ref(const bctx *c, const amg_source *a, const amg_source *b)
{
    if (a->ref != b->ref || !same_lora(c, a, b))
        return 0;
    if (a->ref == AMG_REF_STEP)
        return a->step == b->step;
    if (a->ref == AMG_REF_PATH)
        return model_of(c, a) == model_of(c, b);
    return strcmp(a->model, b->model) == 0;
}

/* A Hub reference -> its snapshot folder in the shared cache: the cache
 * first, a fetch when online and missing, only the cache when offline.
 * text is the model (or, with adapter set, the LoRA adapter) it names. */
static int hub_resolve_text(const bctx *c, const amg_source *s,
                            const char *text, int adapter, char **dir)
{
    char hf[AMG_ERR_MSG_MAX];
    amg_fetch_opts o;
    amg_model_ref ref;
    amg_err e;
    int rc;

    memset(&o, 0, sizeof(o));
    o.adapter = adapter;
    amg_err_clear(&e);
    *dir = NULL;
    /* the pipeline classified it: a folder of that name does not count */
    snprintf(hf, sizeof(hf), "hf://%s", text);
    rc = amg_model_ref_parse(hf, &ref, &e);
    if (rc == AMG_OK && ref.kind != AMG_MREF_HUB)
        rc = amg_err_set(&e, AMG_EFORMAT, "'%s' is not a Hub model id",
                         text);
    if (rc == AMG_OK)
        rc = amg_hub_resolve(ref.repo_id, ref.revision, &o, dir, &e);
    amg_model_ref_free(&ref);
    return rc == AMG_OK ? AMG_OK : at(c, s->pos, rc, "%s", e.msg);
}

static int hub_resolve(const bctx *c, const amg_source *s, char **dir)
{
    return hub_resolve_text(c, s, s->model, 0, dir);
}

/* Record a reference; *key receives the identity of its model. */
static int add_ref(bctx *c, const amg_source *s, char ***keys, size_t *n_keys)
{
    char *key, **grown;
    ref_map *r;
    size_t i;

    if (!s || s->ref == AMG_REF_STEP)
        return AMG_OK;
    if (s->ref == AMG_REF_HUB) {
        int rc = hub_resolve(c, s, &key);

        if (rc != AMG_OK)
            return rc;
    } else {
        /* the real path, so two spellings of one folder open it once; a
         * path that does not resolve is kept as written and fails in the
         * open */
        key = realpath(s->model, NULL);
        if (!key && !(key = amg_strdup(s->model)))
            return oom(c);
    }
    for (i = 0; i < *n_keys && strcmp((*keys)[i], key) != 0; i++)
        ;
    if (i == *n_keys) {
        grown = realloc(*keys, (*n_keys + 1) * sizeof(*grown));
        if (!grown) {
            free(key);
            return oom(c);
        }
        *keys = grown;
        (*keys)[(*n_keys)++] = key;
        key = NULL;
    }
    free(key);
    r = realloc(c->refs, (c->n_refs + 1) * sizeof(*r));
    if (!r)
        return oom(c);
    c->refs = r;
    c->refs[c->n_refs].src = s;
    c->refs[c->n_refs++].model = i;
    return AMG_OK;
}

static int collect_refs(bctx *c, char ***keys, size_t *n_keys)
{
    const amg_pipeline *p = c->pipe;
    size_t s, i, j;
    int rc = AMG_OK;

    for (s = 0; s < p->n_steps && rc == AMG_OK; s++) {
        const amg_step *st = &p->steps[s];

        rc = add_ref(c, st->base, keys, n_keys);
        for (i = 0; i < st->n_models && rc == AMG_OK; i++)
            rc = add_ref(c, &st->models[i], keys, n_keys);
        for (i = 0; i < st->n_slices && rc == AMG_OK; i++) {
            rc = add_ref(c, st->slices[i].base, keys, n_keys);
            for (j = 0; j < st->slices[i].n_sources && rc == AMG_OK; j++)
                rc = add_ref(c, &st->slices[i].sources[j], keys, n_keys);
        }
        if (rc == AMG_OK && s == p->output)
            rc = add_ref(c, st->tokenizer, keys, n_keys);
    }
    return rc;
}

/* Open every model once, in order of first reference. The array is
 * allocated at its final size: nodes keep pointers into the models. */
static int open_models(bctx *c)
{
    amg_plan *pl = c->plan;
    char **keys = NULL;
    size_t n = 0, i, r;
    int rc = collect_refs(c, &keys, &n);

    if (rc == AMG_OK && n) {
        pl->models = calloc(n, sizeof(*pl->models));
        pl->model_paths = calloc(n, sizeof(*pl->model_paths));
        pl->model_refs = calloc(n, sizeof(*pl->model_refs));
        c->model_pos = calloc(n, sizeof(*c->model_pos));
        if (!pl->models || !pl->model_paths || !pl->model_refs ||
            !c->model_pos)
            rc = oom(c);
    }
    for (r = 0; rc == AMG_OK && r < c->n_refs; r++) {
        i = c->refs[r].model;
        if (pl->model_refs[i])
            continue;
        pl->model_refs[i] = ref_name(c, c->refs[r].src);
        c->model_pos[i] = c->refs[r].src->pos;
    }
    for (i = 0; rc == AMG_OK && i < n; i++) {
        rc = amg_model_open(&pl->models[i], keys[i], 0, c->err);
        if (rc != AMG_OK) {
            prefix_at(c, c->model_pos[i]);
            break;
        }
        pl->model_paths[i] = keys[i];
        keys[i] = NULL;
        pl->n_models = i + 1;
    }
    for (i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    return rc;
}

/* ---- LoRA adapters */

/* Every module the adapter updates must be a floating-point matrix of the
 * base with the update's shape: checked here, before any data is read. */
static int check_adapter(bctx *c, const amg_source *s, size_t li,
                         size_t model)
{
    const amg_lora *l = &c->plan->loras[li];
    const amg_model *m = &c->plan->models[model];
    const char *lname = c->plan->lora_refs[li];
    char want[64], have[128];
    size_t i;

    for (i = 0; i < l->n_mods; i++) {
        const amg_lora_module *mod = &l->mods[i];
        const amg_model_tensor *t = amg_model_find(m, mod->target);
        uint64_t shape[2];

        if (!t)
            return at(c, s->pos, AMG_ENOTFOUND, "LoRA adapter '%s' updates "
                      "module '%s', which model '%s' does not have (no "
                      "tensor '%s')", lname, mod->module, ref_name(c, s),
                      mod->target);
        shape[0] = mod->rows;
        shape[1] = mod->cols;
        if (t->t->ndim != 2 || t->t->shape[0] != mod->rows ||
            t->t->shape[1] != mod->cols || !amg_dtype_is_float(t->t->dtype)) {
            fmt_shape(want, sizeof(want), 2, shape);
            fmt_shape(have, sizeof(have), t->t->ndim, t->t->shape);
            return at(c, s->pos, AMG_EINVAL, "LoRA adapter '%s' gives module "
                      "'%s' a %s update, but model '%s' stores '%s' as %s "
                      "%s", lname, mod->module, want, ref_name(c, s),
                      mod->target, amg_dtype_name(t->t->dtype), have);
        }
    }
    return AMG_OK;
}

/* The adapter s names, opened once per real path; *li its index. */
static int adapter_index(bctx *c, const amg_source *s, char ***keys,
                         size_t *li)
{
    amg_plan *pl = c->plan;
    amg_lora *grown;
    const char **refs;
    char **gk, *key, *hub_dir = NULL;
    const char *path = s->lora;
    int rc;

    if (s->lora_ref == AMG_REF_HUB) {
        rc = hub_resolve_text(c, s, s->lora, 1, &hub_dir);
        if (rc != AMG_OK)
            return rc;
        path = hub_dir;
    } else if (s->lora_ref != AMG_REF_PATH) {
        return at(c, s->pos, AMG_EINVAL, "LoRA adapter '%s' is not a folder "
                  "or a Hub id", s->lora);
    }
    key = realpath(path, NULL);
    if (!key && !(key = amg_strdup(path))) {
        free(hub_dir);
        return oom(c);
    }
    for (*li = 0; *li < pl->n_loras && strcmp((*keys)[*li], key); ++*li)
        ;
    if (*li < pl->n_loras) {
        rc = AMG_OK;
        goto out;
    }
    grown = realloc(pl->loras, (pl->n_loras + 1) * sizeof(*grown));
    if (grown)
        pl->loras = grown;
    refs = grown ? realloc(pl->lora_refs, (pl->n_loras + 1) * sizeof(*refs))
                 : NULL;
    if (refs)
        pl->lora_refs = refs;
    gk = refs ? realloc(*keys, (pl->n_loras + 1) * sizeof(*gk)) : NULL;
    if (!gk) {
        rc = oom(c);
        goto out;
    }
    *keys = gk;
    rc = amg_lora_open(&pl->loras[pl->n_loras], path, c->err);
    if (rc != AMG_OK) {
        rc = prefix_at(c, s->pos);
        goto out;
    }
    gk[pl->n_loras] = key;
    key = NULL;
    pl->lora_refs[pl->n_loras] = display_path(c->pipe->dir, s->lora);
    *li = pl->n_loras++;
out:
    free(key);
    free(hub_dir);
    return rc;
}

static int open_adapters(bctx *c)
{
    char **keys = NULL;
    lora_map *grown;
    size_t r, li = 0, n_keys;
    int rc = AMG_OK;

    for (r = 0; rc == AMG_OK && r < c->n_refs; r++) {
        const amg_source *s = c->refs[r].src;

        if (!s->lora)
            continue;
        rc = adapter_index(c, s, &keys, &li);
        if (rc == AMG_OK)
            rc = check_adapter(c, s, li, c->refs[r].model);
        if (rc != AMG_OK)
            break;
        grown = realloc(c->loras, (c->n_loras + 1) * sizeof(*grown));
        if (!grown) {
            rc = oom(c);
            break;
        }
        c->loras = grown;
        c->loras[c->n_loras].src = s;
        c->loras[c->n_loras++].lora = li;
    }
    n_keys = c->plan->n_loras;
    for (r = 0; r < n_keys; r++)
        free(keys[r]);
    free(keys);
    return rc;
}

/* A model's tensor, or its tied embedding for a missing lm_head. */
static const amg_model_tensor *find_tensor(const amg_model *m,
                                           const char *name)
{
    const amg_model_tensor *t = amg_model_find(m, name);

    if (!t && strcmp(name, LM_HEAD_NAME) == 0 &&
        m->config.tie_word_embeddings != 0)
        t = amg_model_find(m, EMBED_NAME);
    return t;
}

/* ---- strategies */

static int unknown_method(bctx *c, const amg_step *st, const amg_catalog *cat)
{
    char avail[600], hint[160];
    size_t i, used = 0, best = SIZE_MAX;
    const char *near = NULL;
    int w;

    avail[0] = hint[0] = '\0';
    for (i = 0; i < cat->n; i++) {
        if (is_near(st->method, cat->s[i].id, &best))
            near = cat->s[i].id;
        if (used >= sizeof(avail))
            continue;
        w = snprintf(avail + used, sizeof(avail) - used, "%s%s",
                     i ? ", " : "", cat->s[i].id);
        if (w > 0)
            used += (size_t)w;
    }
    if (near)
        snprintf(hint, sizeof(hint), "did you mean '%s'?; ", near);
    if (!cat->n)
        return at(c, st->method_pos, AMG_ENOTFOUND, "unknown merge_method "
                  "'%s' (no strategy plugins were found; see `amalgam "
                  "plugins`)", st->method);
    return at(c, st->method_pos, AMG_ENOTFOUND, "unknown merge_method '%s' "
              "(%savailable: %s)", st->method, hint, avail);
}

/* The search the options give plus the pipeline's own `plugin:` file. */
static int search_with_pipeline(const bctx *c, const amg_plan_opts *o,
                                amg_plugin_search *s, const char ***files)
{
    size_t n;

    if (o)
        *s = o->plugins;
    else
        memset(s, 0, sizeof(*s));
    *files = NULL;
    if (!c->pipe->plugin)
        return AMG_OK;
    n = s->n_files;
    *files = malloc((n + 1) * sizeof(**files));
    if (!*files)
        return oom(c);
    if (n)
        memcpy(*files, s->files, n * sizeof(**files));
    (*files)[n] = c->pipe->plugin;
    s->files = *files;
    s->n_files = n + 1;
    return AMG_OK;
}

/* Load, from the file the catalog names, each strategy a step uses. The
 * entries are looked up only after every load: the registry array moves
 * while modules are added. */
static int load_strategies(bctx *c, const amg_plan_opts *o)
{
    const amg_pipeline *p = c->pipe;
    const amg_strategy_info *info;
    amg_catalog cat;
    amg_plugin_search search;
    const char **files = NULL;
    size_t s;
    int rc;

    memset(&cat, 0, sizeof(cat));
    rc = search_with_pipeline(c, o, &search, &files);
    if (rc == AMG_OK && (rc = amg_catalog_scan(&cat, &search, c->err)))
        prefix_at(c, p->plugin ? p->plugin_pos : p->steps[p->output].pos);
    for (s = 0; rc == AMG_OK && s < p->n_steps; s++) {
        const amg_step *st = &p->steps[s];

        if (amg_plugins_find(&c->plan->plugins, st->method))
            continue;
        info = amg_catalog_find(&cat, st->method);
        if (!info) {
            rc = unknown_method(c, st, &cat);
            break;
        }
        rc = amg_plugins_load(&c->plan->plugins, info->path, search.flags,
                              c->err);
        if (rc != AMG_OK)
            prefix_at(c, st->method_pos);
    }
    for (s = 0; rc == AMG_OK && s < p->n_steps; s++) {
        c->steps[s].strategy = amg_plugins_find(&c->plan->plugins,
                                                p->steps[s].method);
        if (!c->steps[s].strategy)
            rc = at(c, p->steps[s].method_pos, AMG_EPLUGIN, "plugin '%s' "
                    "no longer offers merge_method '%s' (the plugin cache is "
                    "stale; run `amalgam plugins` to rescan)",
                    (info = amg_catalog_find(&cat, p->steps[s].method))
                        ? info->path : "?", p->steps[s].method);
    }
    amg_catalog_free(&cat);
    free(files);
    return rc;
}

/* ---- auxiliary files */

/* The strategy's aux_role, read only when its descriptor has the member. */
static const char *aux_role_of(const amg_strategy *s)
{
    if (s->struct_size < offsetof(amg_strategy, aux_role) +
                             sizeof(s->aux_role))
        return NULL;
    return s->aux_role;
}

static int aux_file_index(bctx *c, const amg_source *src, size_t *fi)
{
    amg_plan *pl = c->plan;
    amg_model *files;
    const char **refs;
    int rc;

    for (*fi = 0; *fi < pl->n_aux_files; ++*fi)
        if (strcmp(pl->aux_files[*fi].path, src->fisher) == 0)
            return AMG_OK;
    /* no nodes exist yet, so the array may move */
    files = realloc(pl->aux_files, (pl->n_aux_files + 1) * sizeof(*files));
    if (files)
        pl->aux_files = files;
    refs = files ? realloc(pl->aux_refs, (pl->n_aux_files + 1) *
                                             sizeof(*refs))
                 : NULL;
    if (!refs)
        return oom(c);
    pl->aux_refs = refs;
    rc = amg_model_open(&files[pl->n_aux_files], src->fisher, 0, c->err);
    if (rc != AMG_OK)
        return prefix_at(c, src->fisher_pos);
    refs[pl->n_aux_files] = display_path(c->pipe->dir, src->fisher);
    *fi = pl->n_aux_files++;
    return AMG_OK;
}

static int open_aux(bctx *c, size_t s, const amg_source *src)
{
    const amg_strategy *st = c->steps[s].strategy->s;
    const char *role = aux_role_of(st);
    aux_map *grown;
    size_t fi;
    int rc;

    if (!src->fisher)
        return AMG_OK;
    if (!role)
        return at(c, src->fisher_pos, AMG_EINVAL, "'fisher' is given for "
                  "model '%s' but strategy '%s' takes no auxiliary tensors",
                  ref_name(c, src), st->id);
    if (strcmp(role, "fisher") != 0)
        return at(c, src->fisher_pos, AMG_EINVAL, "'fisher' is given for "
                  "model '%s' but strategy '%s' takes '%s' auxiliary "
                  "tensors", ref_name(c, src), st->id, role);
    if ((rc = aux_file_index(c, src, &fi)))
        return rc;
    grown = realloc(c->auxs, (c->n_auxs + 1) * sizeof(*grown));
    if (!grown)
        return oom(c);
    c->auxs = grown;
    c->auxs[c->n_auxs].src = src;
    c->auxs[c->n_auxs++].file = fi;
    return AMG_OK;
}

/* Every `fisher:` file, once each, after the strategies are known. */
static int open_aux_files(bctx *c)
{
    const amg_pipeline *p = c->pipe;
    size_t s, i, k;
    int rc = AMG_OK;

    for (s = 0; rc == AMG_OK && s < p->n_steps; s++) {
        const amg_step *st = &p->steps[s];

        for (i = 0; rc == AMG_OK && i < st->n_models; i++)
            rc = open_aux(c, s, &st->models[i]);
        for (i = 0; rc == AMG_OK && i < st->n_slices; i++)
            for (k = 0; rc == AMG_OK && k < st->slices[i].n_sources; k++)
                rc = open_aux(c, s, &st->slices[i].sources[k]);
    }
    return rc;
}

/* The `fisher` aux role's normalisation contract: a strategy whose
 * schema has the global BOOL normalize_fishers and the per-model F64
 * fisher_norm gets, when the first is true, each model's L2 norm over its
 * whole Fisher file in the second. Plugins see only row chunks, so only
 * the host can make this pass over every tensor. */
#define FISHER_NORMALIZE "normalize_fishers"
#define FISHER_NORM "fisher_norm"

static const amg_param_spec *spec_named(const amg_strategy *s,
                                        const char *name);

static int fills_fisher_norm(const amg_strategy *s)
{
    const char *role = aux_role_of(s);
    const amg_param_spec *on = spec_named(s, FISHER_NORMALIZE);
    const amg_param_spec *norm = spec_named(s, FISHER_NORM);

    return role && strcmp(role, "fisher") == 0 && on &&
           on->type == AMG_PARAM_BOOL && on->scope == AMG_SCOPE_GLOBAL &&
           norm && norm->type == AMG_PARAM_F64 &&
           norm->scope == AMG_SCOPE_PER_MODEL;
}

/* ---- parameter names, checked once per step */

static const amg_param_spec *spec_named(const amg_strategy *s,
                                        const char *name)
{
    uint32_t i;

    for (i = 0; i < s->n_params; i++)
        if (strcmp(amg_param_spec_at(s, i)->name, name) == 0)
            return amg_param_spec_at(s, i);
    return NULL;
}

static int unknown_param(bctx *c, const amg_strategy *s, const amg_pentry *e)
{
    char list[400];
    size_t used = 0, best = SIZE_MAX;
    const char *near = NULL;
    uint32_t i;
    int w;

    list[0] = '\0';
    for (i = 0; i < s->n_params; i++) {
        const char *n = amg_param_spec_at(s, i)->name;

        if (is_near(e->name, n, &best))
            near = n;
        if (used < sizeof(list) &&
            (w = snprintf(list + used, sizeof(list) - used, "%s%s",
                          i ? ", " : "", n)) > 0)
            used += (size_t)w;
    }
    if (near)
        return at(c, e->pos, AMG_EINVAL, "unknown parameter '%s' for "
                  "strategy '%s' (did you mean '%s'?)", e->name, s->id, near);
    if (!s->n_params)
        return at(c, e->pos, AMG_EINVAL, "unknown parameter '%s': strategy "
                  "'%s' takes no parameters", e->name, s->id);
    return at(c, e->pos, AMG_EINVAL, "unknown parameter '%s' for strategy "
              "'%s' (it takes: %s)", e->name, s->id, list);
}

static int check_pset(bctx *c, const amg_strategy *s, const amg_pset *ps,
                      int per_model)
{
    const amg_param_spec *sp;
    const amg_pentry *e;
    size_t i;

    for (i = 0; i < ps->n; i++) {
        e = &ps->entries[i];
        if (!(sp = spec_named(s, e->name)))
            return unknown_param(c, s, e);
        if (per_model && sp->scope == AMG_SCOPE_GLOBAL)
            return at(c, e->pos, AMG_EINVAL, "'%s' is a global parameter of "
                      "'%s': set it under the top-level parameters",
                      e->name, s->id);
        if (strcmp(e->name, FISHER_NORM) == 0 && fills_fisher_norm(s))
            return at(c, e->pos, AMG_EINVAL, "'%s' of '%s' is set by "
                      "amalgam (the L2 norm of the model's Fisher file, "
                      "under %s: true) and cannot be given in a pipeline",
                      e->name, s->id, FISHER_NORMALIZE);
        if ((e->value.kind == AMG_PV_GRADIENT ||
             e->value.kind == AMG_PV_FILTERS) &&
            !(sp->flags & AMG_PARAM_GRADIENT))
            return at(c, e->pos, AMG_EINVAL, "'%s' of '%s' takes one value, "
                      "not a list or filters (it cannot vary by layer or "
                      "tensor)", e->name, s->id);
    }
    return AMG_OK;
}

static int check_step_params(bctx *c, size_t s)
{
    const amg_step *st = &c->pipe->steps[s];
    const amg_strategy *strat = c->steps[s].strategy->s;
    const amg_pentry *e;
    size_t i, j;
    int rc = check_pset(c, strat, &st->params, 0);

    for (i = 0; rc == AMG_OK && i < st->n_models; i++)
        rc = check_pset(c, strat, &st->models[i].params, 1);
    for (i = 0; rc == AMG_OK && i < st->n_slices; i++) {
        rc = check_pset(c, strat, &st->slices[i].params, 0);
        if (rc == AMG_OK && fills_fisher_norm(strat) &&
            (e = amg_pset_get(&st->slices[i].params, FISHER_NORMALIZE)))
            return at(c, e->pos, AMG_EINVAL, "'%s' of '%s' applies to the "
                      "whole step: set it under the step's top-level "
                      "parameters, not a slice's", e->name, strat->id);
        for (j = 0; rc == AMG_OK && j < st->slices[i].n_sources; j++)
            rc = check_pset(c, strat, &st->slices[i].sources[j].params, 1);
    }
    return rc;
}

/* ---- step geometry: layers, slices, output names */

static int src_layers(const bctx *c, const amg_source *s)
{
    if (s->ref == AMG_REF_STEP)
        return c->steps[s->step].layers;
    return model_layers(&c->plan->models[model_of(c, s)]);
}

static const amg_source *models_ref(const amg_step *st)
{
    return st->base ? st->base : &st->models[0];
}

/* The names a source offers, one at a time. */
static size_t src_n_names(const bctx *c, const amg_source *s)
{
    if (s->ref == AMG_REF_STEP)
        return c->steps[s->step].n_names;
    return c->plan->models[model_of(c, s)].n_tensors;
}

static const char *src_name_at(const bctx *c, const amg_source *s, size_t i)
{
    if (s->ref == AMG_REF_STEP)
        return c->steps[s->step].names[i];
    return c->plan->models[model_of(c, s)].tensors[i].name;
}

static int push_name(bctx *c, step_info *si, char *name, size_t *cap)
{
    char **grown;

    if (!name)
        return oom(c);
    if (si->n_names == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        grown = realloc(si->names, *cap * sizeof(*grown));
        if (!grown) {
            free(name);
            return oom(c);
        }
        si->names = grown;
    }
    si->names[si->n_names++] = name;
    return AMG_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

#define NAMES_ALL (-2)                 /* take_names: every name */

/* Names of src: all (want_embed NAMES_ALL), those outside the stack whose
 * "embed"-ness is want_embed (0 or 1), or (layer >= 0) those of source
 * layer `layer` renamed to output layer `out`. */
static int take_names(bctx *c, step_info *si, size_t *cap,
                      const amg_source *src, int want_embed, int layer,
                      int out)
{
    size_t i, n = src_n_names(c, src);
    int rc = AMG_OK;

    for (i = 0; i < n && rc == AMG_OK; i++) {
        const char *nm = src_name_at(c, src, i);
        int l = layer_index(nm);

        if (layer >= 0 && l == layer)
            rc = push_name(c, si, renamed(nm, out), cap);
        else if (layer < 0 &&
                 (want_embed == NAMES_ALL ||
                  (l < 0 && (strstr(nm, "embed") != NULL) == want_embed)))
            rc = push_name(c, si, amg_strdup(nm), cap);
    }
    return rc;
}

/* The slice's base among its sources, which gives the base's layers. */
static int slice_base(bctx *c, const amg_step *st, const amg_slice *sl,
                      const amg_source **out)
{
    const amg_source *want = sl->base ? sl->base : st->base;
    size_t j;

    *out = NULL;
    if (!want)
        return AMG_OK;
    for (j = 0; j < sl->n_sources; j++)
        if (same_ref(c, &sl->sources[j], want)) {
            *out = &sl->sources[j];
            return AMG_OK;
        }
    return at(c, sl->base ? sl->base->pos : sl->pos, AMG_EINVAL,
              "base_model '%s' is not among the sources of this slice (list "
              "it there with a layer_range, which says which of its layers "
              "are the base)", ref_name(c, want));
}

static int plan_slices(bctx *c, size_t s)
{
    const amg_step *st = &c->pipe->steps[s];
    step_info *si = &c->steps[s];
    int off = 0;
    size_t k, j;
    int rc = AMG_OK;

    si->slice_off = calloc(st->n_slices, sizeof(int));
    si->slice_len = calloc(st->n_slices, sizeof(int));
    si->slice_base = calloc(st->n_slices, sizeof(*si->slice_base));
    if (!si->slice_off || !si->slice_len || !si->slice_base)
        return oom(c);
    for (k = 0; k < st->n_slices && rc == AMG_OK; k++) {
        const amg_slice *sl = &st->slices[k];
        int len = -1;

        for (j = 0; j < sl->n_sources && rc == AMG_OK; j++) {
            const amg_source *src = &sl->sources[j];
            int have = src_layers(c, src);
            int a = src->has_range ? src->range[0] : 0;
            int b = src->has_range ? src->range[1] : have;

            if (b > have || a < 0 || a >= b)
                rc = at(c, src->pos, AMG_ERANGE, "layer_range [%d, %d] is "
                        "out of bounds: '%s' has %d layers (0 to %d)", a, b,
                        ref_name(c, src), have, have - 1);
            else if (len >= 0 && b - a != len)
                rc = at(c, sl->pos, AMG_EINVAL, "the sources of this slice "
                        "span different numbers of layers (%d and %d); every "
                        "layer_range of a slice must have the same length",
                        len, b - a);
            len = b - a;
        }
        if (rc == AMG_OK && off > INT_MAX - len)
            rc = at(c, sl->pos, AMG_ERANGE, "too many layers");
        if (rc == AMG_OK)
            rc = slice_base(c, st, sl, &si->slice_base[k]);
        si->slice_off[k] = off;
        si->slice_len[k] = len;
        off += len;
    }
    si->layers = off;
    return rc;
}

static const amg_source *slice_ref(const bctx *c, size_t s, size_t k)
{
    const amg_source *b = c->steps[s].slice_base[k];

    return b ? b : &c->pipe->steps[s].slices[k].sources[0];
}

static int step_names(bctx *c, size_t s)
{
    const amg_step *st = &c->pipe->steps[s];
    step_info *si = &c->steps[s];
    size_t cap = 0, k;
    int i, rc;

    if (!st->uses_slices) {
        rc = take_names(c, si, &cap, models_ref(st), NAMES_ALL, -1, 0);
    } else {
        rc = take_names(c, si, &cap, slice_ref(c, s, 0), 1, -1, 0);
        if (rc == AMG_OK)
            rc = take_names(c, si, &cap, slice_ref(c, s, st->n_slices - 1),
                            0, -1, 0);
        for (k = 0; k < st->n_slices && rc == AMG_OK; k++) {
            const amg_source *r = slice_ref(c, s, k);
            int a = r->has_range ? r->range[0] : 0;

            for (i = 0; i < si->slice_len[k] && rc == AMG_OK; i++)
                rc = take_names(c, si, &cap, r, 0, a + i,
                                si->slice_off[k] + i);
        }
    }
    if (rc == AMG_OK && si->n_names)
        qsort(si->names, si->n_names, sizeof(*si->names), cmp_names);
    return rc;
}

static int plan_step(bctx *c, size_t s)
{
    const amg_step *st = &c->pipe->steps[s];
    int rc = check_step_params(c, s);

    if (rc != AMG_OK)
        return rc;
    if (st->uses_slices)
        rc = plan_slices(c, s);
    else
        c->steps[s].layers = src_layers(c, models_ref(st));
    return rc == AMG_OK ? step_names(c, s) : rc;
}

/* The model holding a step's reference (its config, its tokenizer). */
static size_t ref_model(const bctx *c, size_t s)
{
    const amg_step *st = &c->pipe->steps[s];
    const amg_source *r = st->base ? st->base
                          : st->uses_slices ? &st->slices[0].sources[0]
                                            : &st->models[0];

    return r->ref == AMG_REF_STEP ? ref_model(c, r->step) : model_of(c, r);
}

static int step_has(const bctx *c, size_t s, const char *name)
{
    const step_info *si = &c->steps[s];

    return si->n_names && bsearch(&name, si->names, si->n_names,
                                  sizeof(*si->names), cmp_names) != NULL;
}

/* ---- routing one tensor through one step */

static int route_for(const bctx *c, size_t s, const char *name, route *r)
{
    const amg_step *st = &c->pipe->steps[s];
    const step_info *si = &c->steps[s];
    int layer = layer_index(name), len;
    size_t k;

    memset(r, 0, sizeof(*r));
    r->layer = layer;
    r->in_offset = -1;
    if (!st->uses_slices) {
        r->srcs = st->models;
        r->n_srcs = st->n_models;
        r->base = st->base;
        r->ref = models_ref(st);
        r->t = layer < 0 ? 0.0
               : si->layers <= 1 ? 1.0
                                 : (double)layer / (double)(si->layers - 1);
        return AMG_OK;
    }
    if (layer < 0) {
        k = strstr(name, "embed") ? 0 : st->n_slices - 1;
    } else {
        for (k = 0; k < st->n_slices; k++)
            if (layer >= si->slice_off[k] &&
                layer < si->slice_off[k] + si->slice_len[k])
                break;
        if (k == st->n_slices)
            return at(c, st->pos, AMG_ENOTFOUND, "step '%s' has no layer %d "
                      "(tensor '%s')", st->name, layer, name);
        r->in_offset = layer - si->slice_off[k];
        len = si->slice_len[k];
        r->t = len <= 1 ? 1.0 : (double)r->in_offset / (double)(len - 1);
    }
    r->slice = &st->slices[k];
    r->srcs = r->slice->sources;
    r->n_srcs = r->slice->n_sources;
    r->base = si->slice_base[k];
    r->ref = slice_ref(c, s, k);
    return AMG_OK;
}

/* The name src is read under (a slice renumbers layers). */
static char *in_name(const route *r, const amg_source *src, const char *name)
{
    if (r->in_offset < 0)
        return amg_strdup(name);
    return renamed(name, (src->has_range ? src->range[0] : 0) +
                             r->in_offset);
}

/* ---- nodes */

static int new_node(bctx *c, size_t *out)
{
    amg_plan *pl = c->plan;
    amg_plan_node *grown;

    if (pl->n_nodes == c->node_cap) {
        size_t cap = c->node_cap ? c->node_cap * 2 : 256;

        grown = realloc(pl->nodes, cap * sizeof(*grown));
        if (!grown)
            return oom(c);
        pl->nodes = grown;
        c->node_cap = cap;
    }
    memset(&pl->nodes[pl->n_nodes], 0, sizeof(*grown));
    pl->nodes[pl->n_nodes].base = AMG_NO_NODE;
    pl->nodes[pl->n_nodes].layer_index = -1;
    *out = pl->n_nodes++;
    return AMG_OK;
}

static int load_node_in(bctx *c, int from_aux, size_t model,
                        const amg_model_tensor *t, int ndim,
                        const uint64_t *shape, int cropped,
                        const lora_map *lm, size_t *out)
{
    const amg_lora_module *mod = lm ? amg_lora_find(&c->plan->loras[lm->lora],
                                                    t->name)
                                    : NULL;
    amg_plan *pl = c->plan;
    amg_plan_node *n;
    size_t i;
    int rc;

    /* once per output tensor: chained steps reading one input share it */
    for (i = c->tensor_first; i < pl->n_nodes; i++) {
        n = &pl->nodes[i];
        if (n->kind == AMG_NODE_LOAD && n->from_aux == from_aux &&
            n->model == model && n->src == t &&
            n->cropped == cropped && n->lora_mod == mod &&
            (!mod || n->lora == lm->lora) && n->ndim == ndim &&
            memcmp(n->shape, shape, (size_t)ndim * sizeof(*shape)) == 0) {
            *out = i;
            return AMG_OK;
        }
    }
    if ((rc = new_node(c, out)))
        return rc;
    n = &pl->nodes[*out];
    n->kind = AMG_NODE_LOAD;
    n->from_aux = from_aux;
    n->model = model;
    n->src = t;
    n->cropped = cropped;
    n->lora_mod = mod;
    n->lora = mod ? lm->lora : 0;
    n->ndim = ndim;
    memcpy(n->shape, shape, (size_t)ndim * sizeof(*shape));
    return AMG_OK;
}

static int load_node(bctx *c, size_t model, const amg_model_tensor *t,
                     int ndim, const uint64_t *shape, int cropped,
                     const lora_map *lm, size_t *out)
{
    return load_node_in(c, 0, model, t, ndim, shape, cropped, lm, out);
}

static int build(bctx *c, size_t s, const char *name, size_t *out);

/* The node for src's value of tensor name. */
static int input_node(bctx *c, const amg_source *src, const char *name,
                      size_t *out)
{
    const amg_model_tensor *t;
    size_t m;

    if (src->ref == AMG_REF_STEP) {
        if (step_has(c, src->step, name))
            return build(c, src->step, name, out);
        if (strcmp(name, LM_HEAD_NAME) == 0 &&
            step_has(c, src->step, EMBED_NAME) &&
            c->plan->models[ref_model(c, src->step)]
                    .config.tie_word_embeddings != 0)
            return build(c, src->step, EMBED_NAME, out);
        return at(c, src->pos, AMG_ENOTFOUND, "tensor '%s' is not an output "
                  "of step '%s'", name, src->model);
    }
    m = model_of(c, src);
    t = find_tensor(&c->plan->models[m], name);
    if (!t)
        return at(c, src->pos, AMG_ENOTFOUND, "tensor '%s' is missing from "
                  "model '%s'", name, ref_name(c, src));
    return load_node(c, m, t, t->t->ndim, t->t->shape, 0, lora_of(c, src),
                     out);
}

static int source_node(bctx *c, const route *r, const amg_source *src,
                       const char *name, size_t *out)
{
    char *in = in_name(r, src, name);
    int rc;

    if (!in)
        return oom(c);
    rc = input_node(c, src, in, out);
    free(in);
    return rc;
}

/* The inputs (and base) of one merge, as gathered. */
typedef struct gather {
    size_t *nodes;                     /* inputs, then the base if any */
    const amg_source **who;
    char **names;                      /* input tensor names */
    size_t n;                          /* inputs */
    size_t base;                       /* AMG_NO_NODE or nodes[n] */
} gather;

static void gather_free(gather *g)
{
    size_t i;

    for (i = 0; g->names && i <= g->n; i++)
        free(g->names[i]);
    free(g->nodes);
    free(g->who);
    free(g->names);
}

static int is_float_node(const bctx *c, size_t i)
{
    const amg_plan_node *n = &c->plan->nodes[i];

    return n->kind != AMG_NODE_LOAD || amg_dtype_is_float(n->src->t->dtype);
}

static int gather_inputs(bctx *c, size_t s, const route *r, const char *name,
                         gather *g)
{
    const amg_strategy *strat = c->steps[s].strategy->s;
    int needs_base = (strat->caps & AMG_CAP_NEEDS_BASE) != 0;
    size_t j, k = 0;
    int rc = AMG_OK;

    memset(g, 0, sizeof(*g));
    g->base = AMG_NO_NODE;
    g->nodes = calloc(r->n_srcs + 1, sizeof(*g->nodes));
    g->who = calloc(r->n_srcs + 1, sizeof(*g->who));
    g->names = calloc(r->n_srcs + 1, sizeof(*g->names));
    if (!g->nodes || !g->who || !g->names)
        return oom(c);
    for (j = 0; j < r->n_srcs && rc == AMG_OK; j++) {
        const amg_source *src = &r->srcs[j];

        if (needs_base && r->base &&
            (src == r->base || (!r->slice && same_ref(c, src, r->base))))
            continue;
        if (!(g->names[k] = in_name(r, src, name)))
            return oom(c);
        g->who[k] = src;
        rc = input_node(c, src, g->names[k], &g->nodes[k]);
        k++;
        g->n = k;
    }
    if (rc == AMG_OK && r->base) {
        g->who[k] = r->base;
        if (!(g->names[k] = in_name(r, r->base, name)))
            return oom(c);
        rc = input_node(c, r->base, g->names[k], &g->nodes[k]);
        g->base = g->nodes[k];
    }
    for (j = 0; rc == AMG_OK && j < k + (r->base != NULL); j++)
        if (!is_float_node(c, g->nodes[j]))
            rc = at(c, g->who[j]->pos, AMG_EINVAL, "tensor '%s' of model "
                    "'%s' is %s: only floating-point tensors can be merged",
                    g->names[j], ref_name(c, g->who[j]),
                    amg_dtype_name(c->plan->nodes[g->nodes[j]].src->t->dtype));
    return rc;
}

static int check_counts(bctx *c, size_t s, const route *r, const gather *g)
{
    const amg_step *st = &c->pipe->steps[s];
    const amg_strategy *strat = c->steps[s].strategy->s;

    if ((strat->caps & AMG_CAP_NEEDS_BASE) && !r->base)
        return at(c, st->method_pos, AMG_EINVAL, "merge_method '%s' needs a "
                  "base model: set base_model in step '%s'", strat->id,
                  st->name);
    if (g->n < strat->min_inputs ||
        (strat->max_inputs && g->n > strat->max_inputs)) {
        if (strat->max_inputs == strat->min_inputs)
            return at(c, st->method_pos, AMG_EINVAL, "merge_method '%s' "
                      "takes %u input model%s; step '%s' gives %zu%s",
                      strat->id, strat->min_inputs,
                      strat->min_inputs == 1 ? "" : "s", st->name, g->n,
                      r->base ? " (the base not counted)" : "");
        if (!strat->max_inputs)
            return at(c, st->method_pos, AMG_EINVAL, "merge_method '%s' "
                      "takes at least %u input model%s; step '%s' gives "
                      "%zu%s", strat->id, strat->min_inputs,
                      strat->min_inputs == 1 ? "" : "s", st->name, g->n,
                      r->base ? " (the base not counted)" : "");
        return at(c, st->method_pos, AMG_EINVAL, "merge_method '%s' takes "
                  "%u to %u input models; step '%s' gives %zu%s", strat->id,
                  strat->min_inputs, strat->max_inputs, st->name, g->n,
                  r->base ? " (the base not counted)" : "");
    }
    return AMG_OK;
}

static int same_shape(const amg_plan_node *a, const amg_plan_node *b)
{
    return a->ndim == b->ndim &&
           memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof(a->shape[0]))
               == 0;
}

/* Make every gathered value one shape: equal already, or cropped to the
 * common submatrix for embedding matrices. */
static int reconcile(bctx *c, const char *name, gather *g, int *ndim,
                     uint64_t *shape)
{
    size_t total = g->n + (g->base != AMG_NO_NODE), j;
    const amg_plan_node *n0;
    uint64_t crop[2];
    int embed = strstr(name, "embed_tokens") || strstr(name, "lm_head");
    int all2 = 1, rc;

    *ndim = 0;
    if (!total)
        return amg_err_set(c->err, AMG_EINVAL, "%s: no input model is left "
                           "for tensor '%s'", c->pipe->path, name);
    n0 = &c->plan->nodes[g->nodes[0]];
    for (j = 1; j < total; j++)
        if (!same_shape(n0, &c->plan->nodes[g->nodes[j]]))
            break;
    if (j < total) {
        for (j = 0; j < total; j++)
            all2 &= c->plan->nodes[g->nodes[j]].ndim == 2;
        if (!embed || !all2) {
            char a[128], b[128];

            for (j = 1; j < total; j++)
                if (!same_shape(n0, &c->plan->nodes[g->nodes[j]]))
                    break;
            fmt_shape(a, sizeof(a), n0->ndim, n0->shape);
            fmt_shape(b, sizeof(b), c->plan->nodes[g->nodes[j]].ndim,
                      c->plan->nodes[g->nodes[j]].shape);
            return at(c, g->who[j]->pos, AMG_EINVAL, "tensor '%s' has shape "
                      "%s in model '%s' but %s in model '%s'", name, a,
                      ref_name(c, g->who[0]), b, ref_name(c, g->who[j]));
        }
        crop[0] = crop[1] = UINT64_MAX;
        for (j = 0; j < total; j++) {
            const amg_plan_node *n = &c->plan->nodes[g->nodes[j]];

            crop[0] = n->shape[0] < crop[0] ? n->shape[0] : crop[0];
            crop[1] = n->shape[1] < crop[1] ? n->shape[1] : crop[1];
        }
        for (j = 0; j < total; j++) {
            const amg_plan_node *n = &c->plan->nodes[g->nodes[j]];

            if (n->shape[0] == crop[0] && n->shape[1] == crop[1])
                continue;
            if (n->kind != AMG_NODE_LOAD)
                return at(c, g->who[j]->pos, AMG_EUNSUPPORTED, "tensor '%s' "
                          "of step '%s' is larger than the other inputs' and "
                          "a step's result cannot be cropped to the common "
                          "submatrix", name, g->who[j]->model);
            rc = load_node(c, n->model, n->src, 2, crop, 1,
                           lora_of(c, g->who[j]), &g->nodes[j]);
            if (rc != AMG_OK)
                return rc;
        }
        if (g->base != AMG_NO_NODE)
            g->base = g->nodes[g->n];
    }
    n0 = &c->plan->nodes[g->nodes[0]];
    *ndim = n0->ndim;
    memcpy(shape, n0->shape, sizeof(n0->shape));
    return AMG_OK;
}

/* ---- parameter values for one tensor */

/* The first level that sets name for this tensor: source, slice, top. */
static const amg_pentry *find_setting(const amg_pset *const *levels,
                                      size_t n_levels, const char *name,
                                      const char *tensor, double t,
                                      amg_pscalar *out)
{
    const amg_pentry *e;
    size_t i;

    for (i = 0; i < n_levels; i++)
        if (levels[i] && (e = amg_pset_get(levels[i], name)) &&
            amg_pval_eval(&e->value, tensor, t, out))
            return e;
    return NULL;
}

static int set_value(bctx *c, amg_params *view, const amg_pentry *e,
                     const amg_pscalar *v)
{
    int rc;

    switch (v->kind) {
    case AMG_PV_BOOL:
        rc = amg_params_set_bool(view, e->name, v->num != 0.0, c->err);
        break;
    case AMG_PV_STRING:
        rc = amg_params_set_str(view, e->name, v->str, c->err);
        break;
    default:
        rc = amg_params_set_f64(view, e->name, v->num, c->err);
        break;
    }
    if (rc != AMG_OK)
        prefix_at(c, e->value.pos.line ? e->value.pos : e->pos);
    return rc;
}

/* Fill a view of scope from the levels; missing required values are
 * reported by the caller, which knows whom to name. */
static int fill_view(bctx *c, const amg_strategy *s, int32_t scope,
                     const amg_pset *const *levels, size_t n_levels,
                     const char *tensor, double t, amg_params *view,
                     const char **missing)
{
    const amg_param_spec *sp;
    const amg_pentry *e;
    amg_pscalar v;
    uint32_t i;
    int rc = amg_params_init(view, s, scope, c->err);

    *missing = NULL;
    for (i = 0; rc == AMG_OK && i < s->n_params; i++) {
        sp = amg_param_spec_at(s, i);
        if (sp->scope != scope)
            continue;
        e = find_setting(levels, n_levels, sp->name, tensor, t, &v);
        if (e)
            rc = set_value(c, view, e, &v);
        else if ((sp->flags & AMG_PARAM_REQUIRED) && !*missing)
            *missing = sp->name;
    }
    return rc;
}

static int fill_params(bctx *c, size_t s, const route *r, const char *name,
                       const gather *g, amg_plan_node *n)
{
    const amg_step *st = &c->pipe->steps[s];
    const amg_strategy *strat = c->steps[s].strategy->s;
    const amg_pset *levels[3];
    const char *missing;
    size_t j;
    int rc;

    levels[0] = r->slice ? &r->slice->params : NULL;
    levels[1] = &st->params;
    rc = fill_view(c, strat, AMG_SCOPE_GLOBAL, levels, 2, name, r->t,
                   &n->global, &missing);
    if (rc == AMG_OK && missing)
        return at(c, st->method_pos, AMG_EINVAL, "strategy '%s' requires "
                  "'%s' (not set for tensor '%s')", strat->id, missing,
                  name);
    if (rc != AMG_OK)
        return rc;
    n->per_model = calloc(g->n ? g->n : 1, sizeof(*n->per_model));
    if (!n->per_model)
        return oom(c);
    for (j = 0; j < g->n; j++) {
        levels[0] = &g->who[j]->params;
        levels[1] = r->slice ? &r->slice->params : NULL;
        levels[2] = &st->params;
        rc = fill_view(c, strat, AMG_SCOPE_PER_MODEL, levels, 3,
                       g->names[j], r->t, &n->per_model[j], &missing);
        n->n_inputs = j + 1;           /* views to free from here on */
        if (rc != AMG_OK)
            return rc;
        /* the base listed among the models needs no per-model values,
         * as in mergekit: strategies that use it as an input read what
         * they need and fail clearly when a value is absent */
        if (missing && g->base != AMG_NO_NODE && g->nodes[j] == g->base)
            missing = NULL;
        if (missing)
            return at(c, g->who[j]->pos, AMG_EINVAL, "model '%s' has no '%s' "
                      "for tensor '%s' (strategy '%s' requires it)",
                      ref_name(c, g->who[j]), missing, g->names[j],
                      strat->id);
    }
    return AMG_OK;
}

/* ---- one step's value of one tensor */

static int find_merge(const bctx *c, size_t s, const char *name, size_t *out)
{
    const amg_plan *pl = c->plan;
    size_t i;

    for (i = c->tensor_first; i < pl->n_nodes; i++)
        if (pl->nodes[i].kind == AMG_NODE_MERGE && pl->nodes[i].step == s &&
            strcmp(pl->nodes[i].name, name) == 0) {
            *out = i;
            return 1;
        }
    return 0;
}

/* ---- auxiliary tensors (`fisher:` files) */

static const aux_map *aux_of(const bctx *c, const amg_source *s)
{
    size_t i;

    for (i = 0; s->fisher && i < c->n_auxs; i++)
        if (c->auxs[i].src == s)
            return &c->auxs[i];
    return NULL;
}

/* Input j's auxiliary value: the same-named tensor of its file, read with
 * the input's crop; AMG_NO_NODE when the file lacks it, so the strategy's
 * fallback rule decides. */
static int aux_node(bctx *c, const gather *g, size_t j, size_t *out)
{
    const aux_map *am = aux_of(c, g->who[j]);
    const amg_plan_node *in = &c->plan->nodes[g->nodes[j]];
    const amg_model_tensor *t;
    const char *file;
    int ndim;
    const uint64_t *want;
    char a[128], b[128];

    *out = AMG_NO_NODE;
    if (!am)
        return AMG_OK;
    file = c->plan->aux_refs[am->file];
    t = amg_model_find(&c->plan->aux_files[am->file], g->names[j]);
    if (!t)
        return AMG_OK;
    if (!amg_dtype_is_float(t->t->dtype))
        return at(c, g->who[j]->fisher_pos, AMG_EINVAL, "tensor '%s' of "
                  "Fisher file '%s' is %s: auxiliary tensors must be "
                  "floating-point", t->name, file,
                  amg_dtype_name(t->t->dtype));
    /* a cropped input compares with its uncropped source */
    ndim = in->kind == AMG_NODE_LOAD && in->cropped ? in->src->t->ndim
                                                    : in->ndim;
    want = in->kind == AMG_NODE_LOAD && in->cropped ? in->src->t->shape
                                                    : in->shape;
    if (t->t->ndim != ndim ||
        memcmp(t->t->shape, want, (size_t)ndim * sizeof(*want)) != 0) {
        fmt_shape(a, sizeof(a), t->t->ndim, t->t->shape);
        fmt_shape(b, sizeof(b), ndim, want);
        return at(c, g->who[j]->fisher_pos, AMG_EINVAL, "tensor '%s' has "
                  "shape %s in Fisher file '%s' but %s in model '%s'",
                  t->name, a, file, b, ref_name(c, g->who[j]));
    }
    return load_node_in(c, 1, am->file, t, in->ndim, in->shape,
                        in->kind == AMG_NODE_LOAD && in->cropped, NULL, out);
}

/* Made before the merge node, as every node's inputs precede it. */
static int aux_nodes(bctx *c, const gather *g, size_t **out)
{
    size_t j;
    int rc = AMG_OK;

    *out = malloc((g->n ? g->n : 1) * sizeof(**out));
    if (!*out)
        return oom(c);
    for (j = 0; rc == AMG_OK && j < g->n; j++)
        rc = aux_node(c, g, j, &(*out)[j]);
    return rc;
}

/* sqrt of the sum of squares of every float entry of m as the strategy
 * would see it (converted to f32), in name order then element order,
 * summed in double. */
static double file_l2(const amg_model *m)
{
    float buf[4096];
    double sum = 0.0;
    uint64_t e, n, k;
    size_t i;

    for (i = 0; i < m->n_tensors; i++) {
        const amg_st_tensor *t = m->tensors[i].t;
        const unsigned char *p = amg_st_data(amg_model_shard(m,
                                                             &m->tensors[i]),
                                             t);
        size_t es = amg_dtype_size(t->dtype);

        if (!p || !amg_dtype_is_float(t->dtype))
            continue;
        for (e = 0; e < t->numel; e += n) {
            n = t->numel - e < 4096 ? t->numel - e : 4096;
            amg_to_f32(t->dtype, p + e * es, buf, (size_t)n);
            for (k = 0; k < n; k++)
                sum += (double)buf[k] * (double)buf[k];
        }
    }
    return sqrt(sum);
}

/* The norm of an aux file, computed on first use. */
static int aux_norm(bctx *c, const amg_source *src, size_t file, double *out)
{
    const char *name = c->plan->aux_refs[file];

    if (!c->aux_norm &&
        !(c->aux_norm = calloc(c->plan->n_aux_files, sizeof(double))))
        return oom(c);
    if (c->aux_norm[file] == 0.0) {
        *out = file_l2(&c->plan->aux_files[file]);
        if (*out == 0.0)
            return at(c, src->fisher_pos, AMG_EINVAL, "Fisher file '%s' has "
                      "L2 norm 0 (no float tensor, or all entries zero), so "
                      "%s cannot divide by it", name, FISHER_NORMALIZE);
        if (!isfinite(*out))
            return at(c, src->fisher_pos, AMG_EINVAL, "Fisher file '%s' has "
                      "a non-finite L2 norm (it holds inf or NaN), so %s "
                      "cannot divide by it", name, FISHER_NORMALIZE);
        c->aux_norm[file] = *out;
    }
    *out = c->aux_norm[file];
    return AMG_OK;
}

/* normalize_fishers: each input's fisher_norm from its file. The setting
 * is the same for every tensor of a step (no lists, filters or slice
 * values), so reading it per node reads the step's value. */
static int fisher_norms(bctx *c, size_t s, const gather *g, amg_plan_node *n)
{
    const amg_strategy *st = c->steps[s].strategy->s;
    const aux_map *am;
    double v = 0.0;
    size_t j;
    int on, rc = AMG_OK;

    if (!fills_fisher_norm(st))
        return AMG_OK;
    on = amg_params_index(&n->global, FISHER_NORMALIZE);
    if (on < 0 || !n->global.values[on].i)
        return AMG_OK;
    for (j = 0; rc == AMG_OK && j < g->n; j++) {
        if (!(am = aux_of(c, g->who[j])))
            return at(c, g->who[j]->pos, AMG_EINVAL, "model '%s' has no "
                      "'fisher' file, but %s is true for strategy '%s' "
                      "(every model's weight is divided by the L2 norm of "
                      "its file)", ref_name(c, g->who[j]), FISHER_NORMALIZE,
                      st->id);
        rc = aux_norm(c, g->who[j], am->file, &v);
        if (rc == AMG_OK &&
            (rc = amg_params_set_f64(&n->per_model[j], FISHER_NORM, v,
                                     c->err)))
            prefix_at(c, g->who[j]->fisher_pos);
    }
    return rc;
}

static int make_merge(bctx *c, size_t s, const route *r, const char *name,
                      gather *g, size_t *out)
{
    amg_plan_node *n;
    uint64_t shape[AMG_ST_MAX_DIMS];
    size_t idx, *aux = NULL;
    int ndim, rc;

    /* crops first: a node's inputs always precede it */
    rc = reconcile(c, name, g, &ndim, shape);
    if (rc == AMG_OK && aux_role_of(c->steps[s].strategy->s))
        rc = aux_nodes(c, g, &aux);
    if (rc == AMG_OK)
        rc = new_node(c, &idx);
    if (rc != AMG_OK) {
        free(aux);
        return rc;
    }
    n = &c->plan->nodes[idx];
    n->aux = aux;
    n->kind = AMG_NODE_MERGE;
    n->step = s;
    n->strategy = c->steps[s].strategy;
    n->layer_index = r->layer;
    n->base = g->base;
    n->ndim = ndim;
    memcpy(n->shape, shape, sizeof(shape));
    n->seed = amg_rng_tensor_seed(c->pipe->seed, name);
    if (!(n->name = amg_strdup(name)))
        return oom(c);
    n->inputs = malloc((g->n ? g->n : 1) * sizeof(*n->inputs));
    if (!n->inputs)
        return oom(c);
    memcpy(n->inputs, g->nodes, g->n * sizeof(*n->inputs));
    rc = fill_params(c, s, r, name, g, n);
    if (rc == AMG_OK)
        rc = fisher_norms(c, s, g, n);
    if (rc == AMG_OK)
        *out = idx;
    return rc;
}

static int build(bctx *c, size_t s, const char *name, size_t *out)
{
    gather g;
    route r;
    size_t ref;
    int rc;

    if (find_merge(c, s, name, out))
        return AMG_OK;
    if ((rc = route_for(c, s, name, &r)))
        return rc;
    /* the reference decides whether the tensor is merged at all: integer
     * buffers are copied from it */
    if ((rc = source_node(c, &r, r.ref, name, &ref)))
        return rc;
    if (!is_float_node(c, ref)) {
        *out = ref;
        return AMG_OK;
    }
    rc = gather_inputs(c, s, &r, name, &g);
    if (rc == AMG_OK)
        rc = check_counts(c, s, &r, &g);
    if (rc == AMG_OK)
        rc = make_merge(c, s, &r, name, &g, out);
    gather_free(&g);
    return rc;
}

/* ---- output tensors */

static void node_free(amg_plan_node *n)
{
    size_t j;

    if (n->kind != AMG_NODE_MERGE)
        return;
    for (j = 0; n->per_model && j < n->n_inputs; j++)
        amg_params_free(&n->per_model[j]);
    free(n->per_model);
    free(n->inputs);
    free(n->aux);
    amg_params_free(&n->global);
    free((char *)n->name);
}

/* Drop nodes of this tensor its root does not reach (a full-size read
 * replaced by a cropped one): the executor evaluates what the plan holds. */
static void prune(bctx *c, size_t first, size_t *root)
{
    amg_plan *pl = c->plan;
    size_t n = pl->n_nodes - first, i, j, w = first;
    unsigned char *keep = calloc(n ? n : 1, 1);
    size_t *map = malloc((n ? n : 1) * sizeof(*map));

    if (!keep || !map)
        goto out;                      /* harmless: a read not used */
    keep[*root - first] = 1;
    /* inputs precede their consumers, so one backward sweep suffices */
    for (i = n; i-- > 0;) {
        amg_plan_node *nd = &pl->nodes[first + i];

        if (!keep[i] || nd->kind != AMG_NODE_MERGE)
            continue;
        for (j = 0; j < nd->n_inputs; j++)
            keep[nd->inputs[j] - first] = 1;
        for (j = 0; nd->aux && j < nd->n_inputs; j++)
            if (nd->aux[j] != AMG_NO_NODE)
                keep[nd->aux[j] - first] = 1;
        if (nd->base != AMG_NO_NODE)
            keep[nd->base - first] = 1;
    }
    for (i = 0; i < n; i++) {
        amg_plan_node *nd = &pl->nodes[first + i];

        if (!keep[i]) {
            node_free(nd);
            continue;
        }
        map[i] = w;
        for (j = 0; nd->kind == AMG_NODE_MERGE && j < nd->n_inputs; j++)
            nd->inputs[j] = map[nd->inputs[j] - first];
        for (j = 0; nd->aux && j < nd->n_inputs; j++)
            if (nd->aux[j] != AMG_NO_NODE)
                nd->aux[j] = map[nd->aux[j] - first];
        if (nd->base != AMG_NO_NODE)
            nd->base = map[nd->base - first];
        pl->nodes[w++] = *nd;
    }
    pl->n_nodes = w;
    *root = map[*root - first];
out:
    free(keep);
    free(map);
}

/* The stored tensor the output's reference reads, through chained steps. */
static const amg_model_tensor *ref_tensor(const bctx *c, size_t s,
                                          const char *name)
{
    const amg_model_tensor *t = NULL;
    route r;
    char *in;

    if (route_for(c, s, name, &r) != AMG_OK ||
        !(in = in_name(&r, r.ref, name)))
        return NULL;
    if (r.ref->ref == AMG_REF_STEP)
        t = step_has(c, r.ref->step, in) ? ref_tensor(c, r.ref->step, in)
                                         : ref_tensor(c, r.ref->step,
                                                      EMBED_NAME);
    else
        t = find_tensor(&c->plan->models[model_of(c, r.ref)], in);
    free(in);
    return t;
}

static amg_dtype out_dtype(const bctx *c, const amg_plan_opts *o,
                           const amg_plan_node *root, const char *name)
{
    const amg_step *st = &c->pipe->steps[c->pipe->output];
    const amg_model_tensor *t;

    if (root->kind == AMG_NODE_LOAD && !amg_dtype_is_float(root->src->t->dtype))
        return root->src->t->dtype;
    if (o && o->has_out_dtype)
        return o->out_dtype;
    if (st->has_out_dtype)
        return st->out_dtype;
    if (st->has_dtype)
        return st->dtype;
    t = ref_tensor(c, c->pipe->output, name);
    return t ? t->t->dtype : root->src ? root->src->t->dtype : AMG_DT_F32;
}

static int plan_outputs(bctx *c, const amg_plan_opts *o)
{
    amg_plan *pl = c->plan;
    const step_info *si = &c->steps[c->pipe->output];
    size_t i, root;
    int rc = AMG_OK;

    pl->outs = calloc(si->n_names ? si->n_names : 1, sizeof(*pl->outs));
    if (!pl->outs)
        return oom(c);
    for (i = 0; i < si->n_names && rc == AMG_OK; i++) {
        amg_plan_tensor *ot = &pl->outs[i];
        const amg_plan_node *n;

        c->tensor_first = pl->n_nodes;
        rc = build(c, c->pipe->output, si->names[i], &root);
        if (rc != AMG_OK)
            break;
        prune(c, c->tensor_first, &root);
        n = &pl->nodes[root];
        if (!(ot->name = amg_strdup(si->names[i])))
            return oom(c);
        pl->n_outs = i + 1;
        ot->node = root;
        ot->dtype = out_dtype(c, o, n, si->names[i]);
        ot->ndim = n->ndim;
        memcpy(ot->shape, n->shape, sizeof(ot->shape));
    }
    return rc;
}

/* ---- config and tokenizer donors */

static int pick_meta(bctx *c)
{
    const amg_step *st = &c->pipe->steps[c->pipe->output];
    amg_plan *pl = c->plan;
    const amg_source *tok = NULL;

    pl->config_model = ref_model(c, c->pipe->output);
    pl->out_layers = c->steps[c->pipe->output].layers;
    if (st->tokenizer_source && strcmp(st->tokenizer_source, "base") == 0) {
        tok = st->base;
        if (!tok)
            return at(c, st->tokenizer_pos, AMG_EINVAL, "tokenizer_source "
                      "'base' needs a base_model in step '%s'", st->name);
    } else if (st->tokenizer) {
        tok = st->tokenizer;
    }
    if (!tok)
        pl->tokenizer_model = pl->config_model;
    else if (tok->ref == AMG_REF_STEP)
        pl->tokenizer_model = ref_model(c, tok->step);
    else
        pl->tokenizer_model = model_of(c, tok);
    return AMG_OK;
}

/* ---- entry points */

static void steps_free(bctx *c)
{
    size_t s, i;

    for (s = 0; c->steps && s < c->pipe->n_steps; s++) {
        for (i = 0; i < c->steps[s].n_names; i++)
            free(c->steps[s].names[i]);
        free(c->steps[s].names);
        free(c->steps[s].slice_off);
        free(c->steps[s].slice_len);
        free(c->steps[s].slice_base);
    }
    free(c->steps);
}

int amg_plan_build(amg_plan *plan, const amg_pipeline *p,
                   const amg_plan_opts *o, amg_err *err)
{
    bctx c;
    size_t s;
    int rc;

    memset(plan, 0, sizeof(*plan));
    memset(&c, 0, sizeof(c));
    plan->pipe = p;
    plan->config_model = plan->tokenizer_model = AMG_NO_NODE;
    c.plan = plan;
    c.pipe = p;
    c.err = err;
    if (!p->n_steps || p->output >= p->n_steps)
        return amg_err_set(err, AMG_EINVAL, "%s: the pipeline has no step to "
                           "write", p->path);
    if (!(c.steps = calloc(p->n_steps, sizeof(*c.steps)))) {
        rc = oom(&c);
        goto out;
    }
    rc = open_models(&c);
    if (rc == AMG_OK)
        rc = open_adapters(&c);
    if (rc == AMG_OK)
        rc = load_strategies(&c, o);
    if (rc == AMG_OK)
        rc = open_aux_files(&c);
    for (s = 0; rc == AMG_OK && s < p->n_steps; s++)
        rc = plan_step(&c, s);
    if (rc == AMG_OK)
        rc = plan_outputs(&c, o);
    if (rc == AMG_OK)
        rc = pick_meta(&c);
out:
    steps_free(&c);
    free(c.refs);
    free(c.model_pos);
    free(c.loras);
    free(c.auxs);
    free(c.aux_norm);
    if (rc != AMG_OK)
        amg_plan_free(plan);
    return rc;
}

void amg_plan_free(amg_plan *plan)
{
    size_t i;

    if (!plan)
        return;
    for (i = 0; i < plan->n_nodes; i++)
        node_free(&plan->nodes[i]);
    free(plan->nodes);
    for (i = 0; i < plan->n_outs; i++)
        free(plan->outs[i].name);
    free(plan->outs);
    for (i = 0; i < plan->n_models; i++)
        amg_model_close(&plan->models[i]);
    for (i = 0; plan->model_paths && i < plan->n_models; i++)
        free(plan->model_paths[i]);
    free(plan->models);
    free(plan->model_paths);
    free(plan->model_refs);
    for (i = 0; i < plan->n_loras; i++)
        amg_lora_close(&plan->loras[i]);
    free(plan->loras);
    free(plan->lora_refs);
    for (i = 0; i < plan->n_aux_files; i++)
        amg_model_close(&plan->aux_files[i]);
    free(plan->aux_files);
    free(plan->aux_refs);
    amg_plugins_release(&plan->plugins);
    memset(plan, 0, sizeof(*plan));
}

/* ---- the dry-run listing */

static void print_value(FILE *f, const amg_param_value *v)
{
    if (!v->is_set) {
        fputs("none", f);
        return;
    }
    switch (v->type) {
    case AMG_PARAM_F64:
        fprintf(f, "%g", v->f);
        break;
    case AMG_PARAM_I64:
        fprintf(f, "%lld", (long long)v->i);
        break;
    case AMG_PARAM_BOOL:
        fputs(v->i ? "true" : "false", f);
        break;
    default:
        fprintf(f, "'%s'", v->s ? v->s : "");
        break;
    }
}

/* "linear(weight=[0.5, 0.5], normalize=true)", parameters in schema order. */
static void print_call(const amg_plan_node *n, FILE *f)
{
    const amg_strategy *s = n->strategy->s;
    const char *sep = "";
    uint32_t i;
    size_t j;

    fprintf(f, "%s(", s->id);
    for (i = 0; i < s->n_params; i++) {
        const amg_param_spec *sp = amg_param_spec_at(s, i);

        fprintf(f, "%s%s=", sep, sp->name);
        sep = ", ";
        if (sp->scope == AMG_SCOPE_GLOBAL) {
            print_value(f, &n->global.values[i]);
            continue;
        }
        fputc('[', f);
        for (j = 0; j < n->n_inputs; j++) {
            fputs(j ? ", " : "", f);
            print_value(f, &n->per_model[j].values[i]);
        }
        fputc(']', f);
    }
    fputc(')', f);
    if (s->caps & AMG_CAP_USES_RNG)
        fprintf(f, " seed=0x%016llx", (unsigned long long)n->seed);
}

static void print_node(const amg_plan *pl, size_t i, int depth,
                       const char *role, FILE *f)
{
    const amg_plan_node *n = &pl->nodes[i];
    size_t j;

    fprintf(f, "%*s%s", depth * 2, "", role);
    if (n->kind == AMG_NODE_LOAD) {
        fprintf(f, "load %s:%s", n->from_aux ? pl->aux_refs[n->model]
                                             : pl->model_refs[n->model],
                n->src->name);
        if (n->lora_mod)
            fprintf(f, " + lora %s (scale %g)", pl->lora_refs[n->lora],
                    (double)n->lora_mod->scale);
        if (n->cropped)
            fprintf(f, "[:%llu, :%llu]", (unsigned long long)n->shape[0],
                    (unsigned long long)n->shape[1]);
        fputc('\n', f);
        return;
    }
    fprintf(f, "%s: ", pl->pipe->steps[n->step].name);
    print_call(n, f);
    fputc('\n', f);
    if (n->base != AMG_NO_NODE)
        print_node(pl, n->base, depth + 1, "base: ", f);
    for (j = 0; j < n->n_inputs; j++) {
        print_node(pl, n->inputs[j], depth + 1, "", f);
        if (n->aux && n->aux[j] != AMG_NO_NODE)
            print_node(pl, n->aux[j], depth + 2, "fisher: ", f);
        else if (n->aux)
            fprintf(f, "%*sfisher: none\n", (depth + 2) * 2, "");
    }
}

void amg_plan_print(const amg_plan *plan, FILE *out)
{
    char shape[160];
    size_t i;

    for (i = 0; i < plan->n_outs; i++) {
        const amg_plan_tensor *t = &plan->outs[i];

        fmt_shape(shape, sizeof(shape), t->ndim, t->shape);
        fprintf(out, "%s %s %s\n", t->name, amg_dtype_name(t->dtype), shape);
        print_node(plan, t->node, 1, "", out);
    }
}
