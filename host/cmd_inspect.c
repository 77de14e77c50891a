/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_inspect.c - `amalgam inspect`: what a model is, from its config and
 * its safetensors headers alone (no tensor data is read).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "commands.h"
#include "dtype.h"
#include "model.h"
#include "util.h"

static const char usage_text[] =
    "usage: amalgam inspect [--json] [--no-tensors] <path>\n"
    "\n"
    "Show a model's architecture, parameter count, dtypes, shards and\n"
    "tensors. <path> is a model folder (model.safetensors or\n"
    "model.safetensors.index.json, with config.json), a .safetensors file\n"
    "or an index .json file. Only headers are read.\n"
    "\n"
    "    --json         print one JSON object instead of text\n"
    "    --no-tensors   leave out the list of tensors\n"
    "    -h, --help     show this help\n";

typedef struct tally {
    uint64_t tensors, params, bytes;
} tally;

/* Totals over the whole model, per dtype and per shard. */
typedef struct summary {
    tally all;
    tally dtype[AMG_DT_COUNT];
    tally *shard;                       /* n_shards entries */
} summary;

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static uint64_t tensor_bytes(const amg_st_tensor *t)
{
    return t->end - t->begin;
}

static int summarize(const amg_model *m, summary *s)
{
    size_t i;

    memset(s, 0, sizeof(*s));
    s->shard = calloc(m->n_shards ? m->n_shards : 1, sizeof(*s->shard));
    if (!s->shard)
        return -1;
    for (i = 0; i < m->n_tensors; i++) {
        const amg_model_tensor *mt = &m->tensors[i];
        tally *parts[3] = { &s->all, &s->dtype[mt->t->dtype],
                            &s->shard[mt->shard] };
        int k;

        for (k = 0; k < 3; k++) {
            parts[k]->tensors++;
            parts[k]->params += mt->t->numel;
            parts[k]->bytes += tensor_bytes(mt->t);
        }
    }
    return 0;
}

/* 1234567 -> "1,234,567" */
static void fmt_count(uint64_t n, char *buf, size_t cap)
{
    char digits[32];
    size_t len, i, o = 0;

    snprintf(digits, sizeof(digits), "%" PRIu64, n);
    len = strlen(digits);
    for (i = 0; i < len && o + 2 < cap; i++) {
        if (i && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

/* A parameter count as people say it: 1240000000 -> "1.24B", 3400000 ->
 * "3.4M"; three significant digits, trailing zeros dropped. */
static void fmt_params_human(uint64_t n, char *buf, size_t cap)
{
    static const char units[] = "KMBT";
    double v = (double)n;
    int u = -1;
    size_t len;

    if (n < 1000) {
        snprintf(buf, cap, "%" PRIu64, n);
        return;
    }
    while (v >= 999.5 && u < 3) {
        v /= 1000.0;
        u++;
    }
    snprintf(buf, cap, v >= 99.95 ? "%.0f" : v >= 9.995 ? "%.1f" : "%.2f", v);
    if (strchr(buf, '.')) {
        len = strlen(buf);
        while (len && buf[len - 1] == '0')
            buf[--len] = '\0';
        if (len && buf[len - 1] == '.')
            buf[--len] = '\0';
    }
    len = strlen(buf);
    if (len + 1 < cap) {
        buf[len] = units[u];
        buf[len + 1] = '\0';
    }
}

static void fmt_shape(const amg_st_tensor *t, char *buf, size_t cap)
{
    size_t o = 0;
    int d;

    o += (size_t)snprintf(buf, cap, "[");
    for (d = 0; d < t->ndim && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRIu64, d ? ", " : "",
                              t->shape[d]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

/* ---- text ---- */

static const char *or_dash(const char *s)
{
    return s ? s : "-";
}

static void print_ll(const char *label, long long v)
{
    if (v < 0)
        printf("%-17s-\n", label);
    else
        printf("%-17s%lld\n", label, v);
}

static void print_config(const amg_model *m)
{
    const amg_config *c = &m->config;

    if (!c->present) {
        printf("%-17s%s\n", "architecture:", "unknown (no config.json)");
        return;
    }
    printf("%-17s%s (class %s, model_type %s)\n", "architecture:",
           amg_arch_name(c->arch), or_dash(c->architecture),
           or_dash(c->model_type));
    if (c->n_decoder_layers >= 0)
        printf("%-17s%d encoder, %d decoder\n", "layers:", c->n_layers,
               c->n_decoder_layers);
    else
        print_ll("layers:", c->n_layers);
    print_ll("hidden size:", c->hidden_size);
    print_ll("vocab size:", c->vocab_size);
    printf("%-17s%s\n", "tied embeddings:",
           c->tie_word_embeddings < 0 ? "-" :
           c->tie_word_embeddings ? "yes" : "no");
    if (c->dtype_key)
        printf("%-17s%s (%s)\n", "config dtype:", or_dash(c->dtype),
               c->dtype_key);
    else
        printf("%-17s-\n", "config dtype:");
}

static void print_totals(const amg_model *m, const summary *s)
{
    char a[32], b[32], c[32];
    int i, w[3] = { 7, 10, 5 };         /* TENSORS PARAMETERS BYTES */

    fmt_count(s->all.params, a, sizeof(a));
    fmt_params_human(s->all.params, b, sizeof(b));
    printf("%-17s%s (%s)\n", "parameters:", a, b);
    fmt_count(s->all.bytes, a, sizeof(a));
    amg_format_bytes(s->all.bytes, b, sizeof(b));
    printf("%-17s%s (%s)\n", "tensor bytes:", a, b);
    printf("%-17s%zu\n", "tensors:", m->n_tensors);

    for (i = 0; i < AMG_DT_COUNT; i++) {
        int l;
        if (!s->dtype[i].tensors)
            continue;
        fmt_count(s->dtype[i].tensors, a, sizeof(a));
        if ((l = (int)strlen(a)) > w[0]) w[0] = l;
        fmt_count(s->dtype[i].params, a, sizeof(a));
        if ((l = (int)strlen(a)) > w[1]) w[1] = l;
        fmt_count(s->dtype[i].bytes, a, sizeof(a));
        if ((l = (int)strlen(a)) > w[2]) w[2] = l;
    }
    printf("\ndtypes:\n  %-8s %*s  %*s  %*s\n", "DTYPE", w[0], "TENSORS",
           w[1], "PARAMETERS", w[2], "BYTES");
    for (i = 0; i < AMG_DT_COUNT; i++) {
        if (!s->dtype[i].tensors)
            continue;
        fmt_count(s->dtype[i].tensors, a, sizeof(a));
        fmt_count(s->dtype[i].params, b, sizeof(b));
        fmt_count(s->dtype[i].bytes, c, sizeof(c));
        printf("  %-8s %*s  %*s  %*s\n", amg_dtype_name((amg_dtype)i), w[0],
               a, w[1], b, w[2], c);
    }
}

static void print_shards(const amg_model *m, const summary *s)
{
    int wf = 4, wt = 7, wb = 5, l;
    char a[32], b[32];
    size_t i;

    for (i = 0; i < m->n_shards; i++) {
        if ((l = (int)strlen(base_of(m->shards[i].path))) > wf) wf = l;
        fmt_count(s->shard[i].tensors, a, sizeof(a));
        if ((l = (int)strlen(a)) > wt) wt = l;
        fmt_count(s->shard[i].bytes, a, sizeof(a));
        if ((l = (int)strlen(a)) > wb) wb = l;
    }
    printf("\nshards:\n  %-*s  %*s  %*s\n", wf, "FILE", wt, "TENSORS", wb,
           "BYTES");
    for (i = 0; i < m->n_shards && !ferror(stdout); i++) {
        fmt_count(s->shard[i].tensors, a, sizeof(a));
        fmt_count(s->shard[i].bytes, b, sizeof(b));
        printf("  %-*s  %*s  %*s\n", wf, base_of(m->shards[i].path), wt, a,
               wb, b);
    }
}

static void print_tensors(const amg_model *m)
{
    char shape[AMG_ST_MAX_DIMS * 22 + 4];
    int wn = 4, ws = 5, l;
    size_t i;

    for (i = 0; i < m->n_tensors; i++) {
        if ((l = (int)strlen(m->tensors[i].name)) > wn) wn = l;
        fmt_shape(m->tensors[i].t, shape, sizeof(shape));
        if ((l = (int)strlen(shape)) > ws) ws = l;
    }
    printf("\ntensor list:\n  %-*s  %-8s %-*s  %s\n", wn, "NAME", "DTYPE", ws,
           "SHAPE", "SHARD");
    /* stop early when the reader has gone away (inspect ... | head) */
    for (i = 0; i < m->n_tensors && !ferror(stdout); i++) {
        const amg_model_tensor *t = &m->tensors[i];
        fmt_shape(t->t, shape, sizeof(shape));
        printf("  %-*s  %-8s %-*s  %s\n", wn, t->name,
               amg_dtype_name(t->t->dtype), ws, shape,
               base_of(m->shards[t->shard].path));
    }
}

static void print_text(const amg_model *m, const summary *s, int tensors)
{
    printf("%-17s%s\n", "path:", m->path);
    print_config(m);
    print_totals(m, s);
    print_shards(m, s);
    if (tensors)
        print_tensors(m);
}

/* ---- JSON ---- */

/* jansson's setters take ownership and ignore NULL; a failed allocation
 * shows up as a NULL somewhere, which json_dumpf then reports. */
static json_t *json_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *json_count_or_null(long long v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *json_arch(const amg_config *c)
{
    json_t *o = json_object();

    json_object_set_new(o, "family", c->present ?
                        json_string(amg_arch_name(c->arch)) : json_null());
    json_object_set_new(o, "class", json_str_or_null(c->architecture));
    json_object_set_new(o, "model_type", json_str_or_null(c->model_type));
    json_object_set_new(o, "layers", json_count_or_null(c->n_layers));
    if (c->n_decoder_layers >= 0)
        json_object_set_new(o, "decoder_layers",
                            json_integer(c->n_decoder_layers));
    json_object_set_new(o, "hidden_size", json_count_or_null(c->hidden_size));
    json_object_set_new(o, "vocab_size", json_count_or_null(c->vocab_size));
    json_object_set_new(o, "tie_word_embeddings",
                        c->tie_word_embeddings < 0 ? json_null() :
                        json_boolean(c->tie_word_embeddings));
    json_object_set_new(o, "dtype", json_str_or_null(c->dtype));
    return o;
}

/* Adds to o (which may already hold other keys, so order is kept). */
static json_t *json_tally(json_t *o, const tally *t, int with_params)
{
    json_object_set_new(o, "tensors", json_integer((json_int_t)t->tensors));
    if (with_params)
        json_object_set_new(o, "parameters",
                            json_integer((json_int_t)t->params));
    json_object_set_new(o, "bytes", json_integer((json_int_t)t->bytes));
    return o;
}

static json_t *json_tensor(const amg_model *m, const amg_model_tensor *t)
{
    json_t *o = json_object(), *shape = json_array();
    int d;

    for (d = 0; d < t->t->ndim; d++)
        json_array_append_new(shape, json_integer((json_int_t)t->t->shape[d]));
    json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "dtype", json_string(amg_dtype_name(t->t->dtype)));
    json_object_set_new(o, "shape", shape);
    json_object_set_new(o, "shard",
                        json_string(base_of(m->shards[t->shard].path)));
    return o;
}

static json_t *build_json(const amg_model *m, const summary *s, int tensors)
{
    json_t *root = json_object(), *dts = json_object(), *shards = json_array();
    size_t i;
    int d;

    json_object_set_new(root, "path", json_string(m->path));
    json_object_set_new(root, "architecture", json_arch(&m->config));
    json_object_set_new(root, "parameters",
                        json_integer((json_int_t)s->all.params));
    json_object_set_new(root, "bytes", json_integer((json_int_t)s->all.bytes));
    for (d = 0; d < AMG_DT_COUNT; d++)
        if (s->dtype[d].tensors)
            json_object_set_new(dts, amg_dtype_name((amg_dtype)d),
                                json_tally(json_object(), &s->dtype[d], 1));
    json_object_set_new(root, "dtypes", dts);
    for (i = 0; i < m->n_shards; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "file",
                            json_string(base_of(m->shards[i].path)));
        json_tally(o, &s->shard[i], 0);
        json_array_append_new(shards, o);
    }
    json_object_set_new(root, "shards", shards);
    if (tensors) {
        json_t *arr = json_array();
        for (i = 0; i < m->n_tensors; i++)
            json_array_append_new(arr, json_tensor(m, &m->tensors[i]));
        json_object_set_new(root, "tensors", arr);
    }
    return root;
}

/* ---- command ---- */

#define usage_error(msg) amg_cli_usage_help(usage_text, msg)

int amg_cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    char msg[512];
    int json = 0, tensors = 1, rc, i, opts = 1;
    amg_model m;
    summary s;
    amg_err err;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (opts && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            fputs(usage_text, stdout);
            return amg_cli_finish_output();
        } else if (opts && !strcmp(a, "--json")) {
            json = 1;
        } else if (opts && !strcmp(a, "--no-tensors")) {
            tensors = 0;
        } else if (opts && !strcmp(a, "--")) {
            opts = 0;
        } else if (opts && a[0] == '-' && a[1]) {
            snprintf(msg, sizeof(msg), "unknown option '%s'", a);
            return usage_error(msg);
        } else if (path) {
            snprintf(msg, sizeof(msg),
                     "unexpected argument '%s' (inspect takes one path)", a);
            return usage_error(msg);
        } else {
            path = a;
        }
    }
    if (!path)
        return usage_error("no model path given");

    amg_err_clear(&err);
    if (amg_model_open(&m, path, AMG_MODEL_HEADER_ONLY, &err)) {
        amg_die_msg(err.msg);
        return AMG_EXIT_FAIL;
    }
    if (summarize(&m, &s)) {
        amg_model_close(&m);
        amg_die_msg("out of memory");
        return AMG_EXIT_FAIL;
    }
    if (json) {
        if (amg_cli_print_json(build_json(&m, &s, tensors)) &&
            !ferror(stdout)) {
            amg_die_msg("out of memory formatting JSON");
            rc = AMG_EXIT_FAIL;
            goto out;
        }
    } else {
        print_text(&m, &s, tensors);
    }
    rc = amg_cli_finish_output();
out:
    free(s.shard);
    amg_model_close(&m);
    return rc;
}
