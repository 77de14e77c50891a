/* SPDX-License-Identifier: Apache-2.0 */
/*
 * output_meta.c - the non-tensor files of a merged model (see
 * output_meta.h).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config_json.h"
#include "output_meta.h"
#include "util.h"

/* Largest pipeline file copied into the model card. */
#define MAX_PIPELINE_BYTES (16u << 20)

/* A growing text buffer; a failed append sets oom and keeps the rest. */
typedef struct text_buf {
    char *s;
    size_t len, cap;
    int oom;
} text_buf;

static void tb_printf(text_buf *b, const char *fmt, ...) AMG_PRINTF(2, 3);

static void tb_printf(text_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0,
                  fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if (!b->s || b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n + 1;
        char *s = realloc(b->s, cap);

        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
        va_start(ap, fmt);
        n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

/* A YAML double-quoted scalar: paths may hold ':' or '#'. */
static void tb_yaml_str(text_buf *b, const char *s)
{
    tb_printf(b, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            tb_printf(b, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            tb_printf(b, "\\x%02x", (unsigned)(unsigned char)*s);
        else
            tb_printf(b, "%c", *s);
    }
    tb_printf(b, "\"");
}

static const amg_step *output_step(const amg_plan *plan)
{
    return &plan->pipe->steps[plan->pipe->output];
}

/* A pipeline's chat_template is written verbatim when it is a Jinja
 * template; mergekit's named templates ("chatml", "auto") need tables
 * amalgam does not carry. */
static int is_jinja(const char *t)
{
    return strstr(t, "{{") != NULL || strstr(t, "{%") != NULL;
}

int amg_output_meta_check(const amg_plan *plan, amg_err *err)
{
    const amg_step *s = output_step(plan);

    if (s->chat_template && !is_jinja(s->chat_template))
        return amg_err_set(err, AMG_EUNSUPPORTED,
                           "%s:%d:%d: chat_template '%s' is not a Jinja "
                           "template; named templates are not supported yet "
                           "(paste the template text instead)",
                           plan->pipe->path, s->chat_template_pos.line,
                           s->chat_template_pos.col, s->chat_template);
    return AMG_OK;
}

/* The dtype of the first floating-point output tensor, which is what
 * transformers loads the model as. */
static int out_float_dtype(const amg_plan *plan, amg_dtype *dt)
{
    size_t i;

    for (i = 0; i < plan->n_outs; i++)
        if (amg_dtype_is_float(plan->outs[i].dtype)) {
            *dt = plan->outs[i].dtype;
            return 1;
        }
    return 0;
}

/*
 * Per-layer config lists must follow a change of depth: transformers 5
 * refuses a config whose layer_types is not num_hidden_layers long (Qwen2,
 * Gemma 2/3, Mistral 3 ... all carry one). Output layer j takes the entry
 * of the template's layer its slice reads. Sets *json_out to the new array
 * as JSON text, or leaves it NULL when the config has no usable list.
 */
static int layer_types_json(const amg_plan *plan, const amg_config *c,
                            char **json_out, amg_err *err)
{
    const amg_step *s = output_step(plan);
    json_t *root, *types, *out = NULL;
    size_t i, n;
    int j, rc = AMG_OK;

    *json_out = NULL;
    root = json_loads(c->text, 0, NULL);
    types = root ? json_object_get(root, "layer_types") : NULL;
    if (!json_is_array(types) || !s->uses_slices)
        goto out;
    n = json_array_size(types);
    out = json_array();
    if (!out) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < s->n_slices; i++) {
        const amg_source *src = &s->slices[i].sources[0];
        int a = src->has_range ? src->range[0] : 0;
        int b = src->has_range ? src->range[1] : (int)n;

        for (j = a; j < b; j++) {
            if (j < 0 || (size_t)j >= n)
                goto out;              /* list shorter than the model */
            json_array_append(out, json_array_get(types, (size_t)j));
        }
    }
    if (json_array_size(out) == (size_t)plan->out_layers) {
        *json_out = json_dumps(out, JSON_COMPACT);
        if (!*json_out)
            rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
    }
out:
    json_decref(out);
    json_decref(root);
    return rc;
}

static int write_config(amg_model_writer *w, const amg_plan *plan,
                        amg_err *err)
{
    const amg_config *c = &plan->models[plan->config_model].config;
    char *text = NULL, *next = NULL, *types = NULL, val[64];
    amg_dtype dt;
    int rc = AMG_OK;

    if (!c->present)
        return AMG_OK;
    text = amg_strdup(c->text);
    if (!text)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    if (out_float_dtype(plan, &dt)) {
        snprintf(val, sizeof(val), "\"%s\"", amg_dtype_torch_name(dt));
        rc = amg_config_set_key(text, c->dtype_key ? c->dtype_key
                                                   : "torch_dtype",
                                val, &next, err);
        if (rc)
            goto out;
        free(text);
        text = next;
    }
    /* slices change the depth; T5 counts its layers under other keys and
     * has no slices in mergekit */
    if (plan->out_layers > 0 && plan->out_layers != c->n_layers &&
        c->arch != AMG_ARCH_T5) {
        snprintf(val, sizeof(val), "%d", plan->out_layers);
        rc = amg_config_set_key(text, "num_hidden_layers", val, &next, err);
        if (rc)
            goto out;
        free(text);
        text = next;
        rc = layer_types_json(plan, c, &types, err);
        if (rc == AMG_OK && types)
            rc = amg_config_set_key(text, "layer_types", types, &next, err);
        if (rc)
            goto out;
        if (types) {
            free(text);
            text = next;
        }
    }
    rc = amg_model_writer_add_file(w, "config.json", text, strlen(text), err);
out:
    if (rc)
        amg_err_prefix(err, "writing config.json of '%s': ", w->out_dir);
    free(types);
    free(text);
    return rc;
}

static int copy_side_files(amg_model_writer *w, const amg_plan *plan,
                           amg_err *err)
{
    const char *dir;
    int own_template = output_step(plan)->chat_template != NULL;
    size_t i;
    int rc = AMG_OK;

    if (plan->tokenizer_model == AMG_NO_NODE)
        return AMG_OK;
    dir = plan->models[plan->tokenizer_model].dir;
    for (i = 0; rc == AMG_OK && amg_side_files[i]; i++) {
        const char *name = amg_side_files[i];
        char *src;

        if (own_template && !strcmp(name, "chat_template.jinja"))
            continue;
        src = amg_path_join(dir, name);
        if (!src)
            return amg_err_set(err, AMG_ENOMEM, "out of memory");
        if (amg_is_file(src))
            rc = amg_model_writer_copy_file(w, name, src, err);
        free(src);
    }
    return rc;
}

static void add_ref(const amg_source *x, const char **refs, size_t *n,
                    size_t cap)
{
    size_t j;

    if (x->ref == AMG_REF_STEP)
        return;
    for (j = 0; j < *n; j++)
        if (!strcmp(refs[j], x->model))
            return;
    if (*n < cap)
        refs[(*n)++] = x->model;
}

/* Every model reference the pipeline names (steps excluded), once, in
 * order of first mention. */
static size_t collect_refs(const amg_pipeline *p, const char **refs,
                           size_t cap)
{
    size_t n = 0, s, i, k;

    for (s = 0; s < p->n_steps; s++) {
        const amg_step *st = &p->steps[s];

        if (st->base)
            add_ref(st->base, refs, &n, cap);
        for (i = 0; !st->uses_slices && i < st->n_models; i++)
            add_ref(&st->models[i], refs, &n, cap);
        for (i = 0; st->uses_slices && i < st->n_slices; i++)
            for (k = 0; k < st->slices[i].n_sources; k++)
                add_ref(&st->slices[i].sources[k], refs, &n, cap);
    }
    return n;
}

static void card_step(text_buf *b, const amg_step *st)
{
    size_t i, k;

    tb_printf(b, "- `%s`: `%s` over ", st->name, st->method);
    if (!st->uses_slices)
        for (i = 0; i < st->n_models; i++)
            tb_printf(b, "%s`%s`", i ? ", " : "", st->models[i].model);
    for (i = 0; st->uses_slices && i < st->n_slices; i++)
        for (k = 0; k < st->slices[i].n_sources; k++)
            tb_printf(b, "%s`%s`", i || k ? ", " : "",
                      st->slices[i].sources[k].model);
    if (st->base)
        tb_printf(b, " (base `%s`)", st->base->model);
    tb_printf(b, "\n");
}

static int write_card(amg_model_writer *w, const amg_plan *plan,
                      const char *pipeline_text, amg_err *err)
{
    const amg_pipeline *p = plan->pipe;
    const char **refs;
    size_t cap = 0, n, i;
    text_buf b = { 0 };
    int rc;

    for (i = 0; i < p->n_steps; i++)
        cap += 1 + p->steps[i].n_models + p->steps[i].n_slices;
    for (i = 0; i < p->n_steps; i++) {
        size_t k;

        for (k = 0; k < p->steps[i].n_slices; k++)
            cap += p->steps[i].slices[k].n_sources;
    }
    refs = calloc(cap + 1, sizeof(*refs));
    if (!refs)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    n = collect_refs(p, refs, cap);
    tb_printf(&b, "---\nbase_model:\n");
    for (i = 0; i < n; i++) {
        tb_printf(&b, "- ");
        tb_yaml_str(&b, refs[i]);
        tb_printf(&b, "\n");
    }
    tb_printf(&b, "tags:\n- merge\n- amalgam\n---\n\n# merged model\n\n"
                  "This model was merged with amalgam %s.\n\n## Steps\n\n",
              AMG_VERSION_STRING);
    for (i = 0; i < p->n_steps; i++)
        card_step(&b, &p->steps[i]);
    tb_printf(&b, "\nThe output is step `%s`.\n\n## Input models\n\n",
              p->steps[p->output].name);
    for (i = 0; i < n; i++)
        tb_printf(&b, "- `%s`\n", refs[i]);
    tb_printf(&b, "\n## Pipeline\n\n```yaml\n%s%s```\n", pipeline_text,
              *pipeline_text && pipeline_text[strlen(pipeline_text) - 1] !=
                  '\n' ? "\n" : "");
    free(refs);
    if (b.oom) {
        free(b.s);
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    }
    rc = amg_model_writer_add_file(w, "README.md", b.s, b.len, err);
    free(b.s);
    return rc;
}

int amg_output_meta_write(amg_model_writer *w, const amg_plan *plan,
                          amg_err *err)
{
    const amg_step *st = output_step(plan);
    char *text = NULL;
    size_t len = 0;
    int rc;

    rc = amg_output_meta_check(plan, err);
    if (!rc)
        rc = write_config(w, plan, err);
    if (!rc)
        rc = copy_side_files(w, plan, err);
    if (!rc && st->chat_template)
        rc = amg_model_writer_add_file(w, "chat_template.jinja",
                                       st->chat_template,
                                       strlen(st->chat_template), err);
    if (!rc)
        rc = amg_read_file(plan->pipe->path, MAX_PIPELINE_BYTES, &text, &len,
                           err);
    if (!rc)
        rc = amg_model_writer_add_file(w, "amalgam-pipeline.yaml", text, len,
                                       err);
    if (!rc)
        rc = write_card(w, plan, text, err);
    free(text);
    return rc;
}
