/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_plugins.c - `amalgam plugins`: the strategies plugins offer, or one
 * strategy's parameters in full, from the plugin catalog (served from the
 * scan cache, so listing does not dlopen every plugin).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "commands.h"
#include "plugin_catalog.h"
#include "plugin_loader.h"
#include "util.h"

static const char usage_text[] =
    "usage: amalgam plugins [--json] [--plugin FILE]... [--plugin-path DIR]...\n"
    "                       [--allow-insecure-plugins] [NAME]\n"
    "\n"
    "List the merge strategies that plugins offer, or show strategy NAME in\n"
    "full: its help, inputs, capabilities and parameters. Plugins are\n"
    "searched for in the --plugin files, the --plugin-path directories,\n"
    "$AMALGAM_PLUGIN_PATH, $XDG_DATA_HOME/amalgam/plugins and the installed\n"
    "plugin directory; see amalgam(1).\n"
    "\n"
    "    --json                    print JSON instead of text\n"
    "    --plugin FILE             use this plugin file (repeatable)\n"
    "    --plugin-path DIR         search DIR too (repeatable; a relative\n"
    "                              DIR is taken from the current directory)\n"
    "    --allow-insecure-plugins  accept plugins writable by group or others\n"
    "    -h, --help                show this help\n";

typedef struct options {
    const char **files, **dirs;
    size_t n_files, n_dirs;
    unsigned flags;
    int json;
    const char *name;
} options;

/* ---- words ---- */

static const struct {
    uint64_t bit;
    const char *word;
} cap_words[] = {
    { AMG_CAP_ELEMENTWISE, "elementwise" },
    { AMG_CAP_NEEDS_BASE, "needs-base" },
    { AMG_CAP_USES_RNG, "rng" },
    { AMG_CAP_REENTRANT, "reentrant" },
    { AMG_CAP_TWO_PASS, "two-pass" },
};
#define N_CAP_WORDS (sizeof(cap_words) / sizeof(cap_words[0]))

/* "cpu", "cpu,cuda", ... joined by sep; "-" when none */
static void fmt_devices(uint64_t caps, const char *sep, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s", caps & AMG_CAP_CPU ? "cpu" : "",
             (caps & AMG_CAP_CPU) && (caps & AMG_CAP_CUDA) ? sep : "",
             caps & AMG_CAP_CUDA ? "cuda" : "");
    if (!buf[0])
        snprintf(buf, cap, "-");
}

static void fmt_caps(uint64_t caps, const char *sep, char *buf, size_t cap)
{
    size_t i, o = 0;

    buf[0] = '\0';
    for (i = 0; i < N_CAP_WORDS && o < cap; i++)
        if (caps & cap_words[i].bit)
            o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? sep : "",
                                  cap_words[i].word);
    if (!buf[0])
        snprintf(buf, cap, "-");
}

static const char *type_word(int32_t type)
{
    switch (type) {
    case AMG_PARAM_F64: return "number";
    case AMG_PARAM_I64: return "integer";
    case AMG_PARAM_BOOL: return "boolean";
    case AMG_PARAM_STR: return "string";
    default: return "unknown";
    }
}

static const char *scope_word(int32_t scope)
{
    return scope == AMG_SCOPE_PER_MODEL ? "per-model" : "global";
}

/* The shortest form that reads back as the same double (0.1, not
 * 0.10000000000000001). */
static void fmt_num(double v, char *buf, size_t cap)
{
    int prec;

    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
    snprintf(buf, cap, "%.17g", v);
}

static void fmt_default(const amg_param_info *p, char *buf, size_t cap)
{
    switch (p->type) {
    case AMG_PARAM_I64: snprintf(buf, cap, "%.0f", p->def); break;
    case AMG_PARAM_BOOL: snprintf(buf, cap, p->def != 0 ? "true" : "false"); break;
    case AMG_PARAM_STR:
        snprintf(buf, cap, "'%s'", p->def_str ? p->def_str : "");
        break;
    default: fmt_num(p->def, buf, cap); break;
    }
}

/* "[0, 1]", "(0, 1]", ">= 0", "< 5"; "" when unbounded */
static void fmt_range(const amg_param_info *p, char *buf, size_t cap)
{
    int lo = !!(p->flags & AMG_PARAM_HAS_MIN);
    int hi = !!(p->flags & AMG_PARAM_HAS_MAX);
    int lox = !!(p->flags & AMG_PARAM_MIN_EXCLUSIVE);
    int hix = !!(p->flags & AMG_PARAM_MAX_EXCLUSIVE);
    char a[40], b[40];

    fmt_num(p->min, a, sizeof(a));
    fmt_num(p->max, b, sizeof(b));
    if (lo && hi)
        snprintf(buf, cap, "%c%s, %s%c", lox ? '(' : '[', a, b,
                 hix ? ')' : ']');
    else if (lo)
        snprintf(buf, cap, "%s %s", lox ? ">" : ">=", a);
    else if (hi)
        snprintf(buf, cap, "%s %s", hix ? "<" : "<=", b);
    else
        buf[0] = '\0';
}

/* ---- text ---- */

static void print_table(const amg_catalog *c)
{
    int w[5] = { 2, 6, 7, 7, 12 }, l;
    char dev[16], caps[128];
    size_t i;

    for (i = 0; i < c->n; i++) {
        const amg_strategy_info *s = &c->s[i];
        fmt_devices(s->caps, ",", dev, sizeof(dev));
        fmt_caps(s->caps, ",", caps, sizeof(caps));
        if ((l = (int)strlen(s->id)) > w[0]) w[0] = l;
        if (s->module && (l = (int)strlen(s->module)) > w[1]) w[1] = l;
        if (s->module_version &&
            (l = (int)strlen(s->module_version)) > w[2]) w[2] = l;
        if ((l = (int)strlen(dev)) > w[3]) w[3] = l;
        if ((l = (int)strlen(caps)) > w[4]) w[4] = l;
    }
    printf("%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], "ID", w[1], "MODULE",
           w[2], "VERSION", w[3], "DEVICES", w[4], "CAPABILITIES", "SUMMARY");
    for (i = 0; i < c->n && !ferror(stdout); i++) {
        const amg_strategy_info *s = &c->s[i];
        fmt_devices(s->caps, ",", dev, sizeof(dev));
        fmt_caps(s->caps, ",", caps, sizeof(caps));
        printf("%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], s->id, w[1],
               s->module ? s->module : "-", w[2],
               s->module_version ? s->module_version : "-", w[3], dev, w[4],
               caps, s->summary ? s->summary : "");
    }
}

static void print_indented(const char *text, const char *indent)
{
    const char *p = text;

    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);

        if (len)
            printf("%s%.*s\n", indent, (int)len, p);
        else
            putchar('\n');
        p += len + (nl != NULL);
    }
}

static void print_param(const amg_param_info *p, int width)
{
    char def[160], range[96];
    size_t i;

    printf("  %-*s  %s, %s", width, p->name, type_word(p->type),
           scope_word(p->scope));
    if (p->flags & AMG_PARAM_REQUIRED) {
        printf(", required");
    } else {
        fmt_default(p, def, sizeof(def));
        printf(", default %s", def);
    }
    fmt_range(p, range, sizeof(range));
    if (range[0])
        printf(", range %s", range);
    if (p->choices) {
        printf(", choices ");
        for (i = 0; p->choices[i]; i++)
            printf("%s%s", i ? "|" : "", p->choices[i]);
    }
    if (p->flags & AMG_PARAM_GRADIENT)
        printf(", gradient allowed");
    putchar('\n');
    if (p->help && p->help[0])
        printf("  %-*s  %s\n", width, "", p->help);
}

static void print_detail(const amg_strategy_info *s)
{
    char buf[128];
    int width = 4, l;
    size_t i;

    printf("%-14s%s\n", "strategy:", s->id);
    printf("%-14s%s\n", "summary:", s->summary ? s->summary : "");
    printf("%-14s%s %s (%s)\n", "module:", s->module ? s->module : "-",
           s->module_version ? s->module_version : "-",
           s->license ? s->license : "no license given");
    printf("%-14s%s\n", "path:", s->path);
    if (!s->max_inputs)
        printf("%-14s%u..any\n", "inputs:", s->min_inputs);
    else
        printf("%-14s%u..%u\n", "inputs:", s->min_inputs, s->max_inputs);
    fmt_devices(s->caps, ", ", buf, sizeof(buf));
    printf("%-14s%s\n", "devices:", buf);
    fmt_caps(s->caps, ", ", buf, sizeof(buf));
    printf("%-14s%s\n", "capabilities:", buf);
    if (s->help && s->help[0]) {
        putchar('\n');
        print_indented(s->help, "  ");
    }
    if (!s->n_params) {
        printf("\nparameters: none\n");
        return;
    }
    for (i = 0; i < s->n_params; i++)
        if ((l = (int)strlen(s->params[i].name)) > width)
            width = l;
    printf("\nparameters:\n");
    for (i = 0; i < s->n_params && !ferror(stdout); i++)
        print_param(&s->params[i], width);
}

/* ---- JSON ---- */

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *json_words(uint64_t caps, int devices)
{
    json_t *a = json_array();
    size_t i;

    if (devices) {
        if (caps & AMG_CAP_CPU)
            json_array_append_new(a, json_string("cpu"));
        if (caps & AMG_CAP_CUDA)
            json_array_append_new(a, json_string("cuda"));
        return a;
    }
    for (i = 0; i < N_CAP_WORDS; i++)
        if (caps & cap_words[i].bit)
            json_array_append_new(a, json_string(cap_words[i].word));
    return a;
}

static json_t *json_default(const amg_param_info *p)
{
    if (p->flags & AMG_PARAM_REQUIRED)
        return json_null();
    switch (p->type) {
    case AMG_PARAM_I64: return json_integer((json_int_t)p->def);
    case AMG_PARAM_BOOL: return json_boolean(p->def != 0);
    case AMG_PARAM_STR: return str_or_null(p->def_str);
    default: return num_or_null(p->def);
    }
}

static json_t *json_param(const amg_param_info *p)
{
    json_t *o = json_object(), *ch = json_null();
    size_t i;

    if (p->choices) {
        ch = json_array();
        for (i = 0; p->choices[i]; i++)
            json_array_append_new(ch, json_string(p->choices[i]));
    }
    json_object_set_new(o, "name", json_string(p->name));
    json_object_set_new(o, "type", json_string(type_word(p->type)));
    json_object_set_new(o, "scope", json_string(scope_word(p->scope)));
    json_object_set_new(o, "required",
                        json_boolean(p->flags & AMG_PARAM_REQUIRED));
    json_object_set_new(o, "default", json_default(p));
    json_object_set_new(o, "min", p->flags & AMG_PARAM_HAS_MIN ?
                        num_or_null(p->min) : json_null());
    json_object_set_new(o, "max", p->flags & AMG_PARAM_HAS_MAX ?
                        num_or_null(p->max) : json_null());
    json_object_set_new(o, "min_exclusive",
                        json_boolean(p->flags & AMG_PARAM_MIN_EXCLUSIVE));
    json_object_set_new(o, "max_exclusive",
                        json_boolean(p->flags & AMG_PARAM_MAX_EXCLUSIVE));
    json_object_set_new(o, "choices", ch);
    json_object_set_new(o, "gradient",
                        json_boolean(p->flags & AMG_PARAM_GRADIENT));
    json_object_set_new(o, "help", str_or_null(p->help));
    return o;
}

static json_t *json_strategy(const amg_strategy_info *s, int full)
{
    json_t *o = json_object();
    size_t i;

    json_object_set_new(o, "id", json_string(s->id));
    json_object_set_new(o, "summary", str_or_null(s->summary));
    json_object_set_new(o, "module", str_or_null(s->module));
    json_object_set_new(o, "version", str_or_null(s->module_version));
    json_object_set_new(o, "license", str_or_null(s->license));
    json_object_set_new(o, "path", json_string(s->path));
    json_object_set_new(o, "devices", json_words(s->caps, 1));
    json_object_set_new(o, "capabilities", json_words(s->caps, 0));
    json_object_set_new(o, "min_inputs", json_integer(s->min_inputs));
    json_object_set_new(o, "max_inputs", s->max_inputs ?
                        json_integer(s->max_inputs) : json_null());
    if (full) {
        json_t *ps = json_array();
        for (i = 0; i < s->n_params; i++)
            json_array_append_new(ps, json_param(&s->params[i]));
        json_object_set_new(o, "help", str_or_null(s->help));
        json_object_set_new(o, "params", ps);
    }
    return o;
}

/* ---- where we looked ---- */

/* The explicit files and the directories, for "searched: ...". */
static json_t *searched_list(const options *o)
{
    amg_plugin_search s = { o->files, o->n_files, o->dirs, o->n_dirs, 0 };
    json_t *a = json_array();
    char **dirs = NULL;
    size_t n = 0, i;

    for (i = 0; i < o->n_files; i++)
        json_array_append_new(a, json_string(o->files[i]));
    if (!amg_plugin_search_dirs(&s, &dirs, &n, NULL))
        for (i = 0; i < n; i++)
            json_array_append_new(a, json_string(dirs[i]));
    amg_plugin_files_free(dirs, n);
    return a;
}

static void print_none(const options *o)
{
    json_t *a = searched_list(o);
    size_t i;

    printf("no strategy plugins found (searched: ");
    for (i = 0; i < json_array_size(a); i++)
        printf("%s%s", i ? ", " : "",
               json_string_value(json_array_get(a, i)));
    printf("%s)\n", json_array_size(a) ? "" : "no directories");
    json_decref(a);
}

/* ---- near names ---- */

static const char *near_name(const amg_catalog *c, const char *name)
{
    const char *best = NULL;
    size_t best_d = 3, i, d;

    for (i = 0; i < c->n; i++)
        if ((d = amg_edit_distance(name, c->s[i].id)) < best_d) {
            best_d = d;
            best = c->s[i].id;
        }
    return best;
}

/* ---- command ---- */

#define usage_error(msg) amg_cli_usage_help(usage_text, msg)

/* 0 to go on, else the exit status (help printed or usage error). */
static int parse_args(options *o, int argc, char **argv)
{
    char msg[512];
    const char *v;
    int i, opts = 1, matched, missing;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (opts && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            fputs(usage_text, stdout);
            return amg_cli_finish_output() == AMG_EXIT_OK ? -1
                                                          : AMG_EXIT_FAIL;
        } else if (opts && !strcmp(a, "--json")) {
            o->json = 1;
        } else if (opts && !strcmp(a, "--allow-insecure-plugins")) {
            o->flags |= AMG_LOAD_ALLOW_INSECURE;
        } else if (opts && ((v = amg_cli_opt_value(argc, argv, &i,
                                                   "--plugin", NULL, &matched,
                                                   &missing)) || matched)) {
            if (missing)
                return usage_error("option '--plugin' needs a file");
            o->files[o->n_files++] = v;
        } else if (opts && ((v = amg_cli_opt_value(argc, argv, &i,
                                                   "--plugin-path", NULL,
                                                   &matched, &missing)) ||
                            matched)) {
            if (missing)
                return usage_error("option '--plugin-path' needs a directory");
            o->dirs[o->n_dirs++] = v;
        } else if (opts && !strcmp(a, "--")) {
            opts = 0;
        } else if (opts && a[0] == '-' && a[1]) {
            snprintf(msg, sizeof(msg), "unknown option '%s'", a);
            return usage_error(msg);
        } else if (o->name) {
            snprintf(msg, sizeof(msg),
                     "unexpected argument '%s' (plugins takes one name)", a);
            return usage_error(msg);
        } else {
            o->name = a;
        }
    }
    return 0;
}

static int show(const options *o, const amg_catalog *c)
{
    const amg_strategy_info *s;
    const char *near;
    json_t *root;
    size_t i;

    if (o->name) {
        if (!(s = amg_catalog_find(c, o->name))) {
            if ((near = near_name(c, o->name)))
                fprintf(stderr, "error: no strategy '%s'; did you mean "
                        "'%s'?\n", o->name, near);
            else
                fprintf(stderr, "error: no strategy '%s' (run 'amalgam "
                        "plugins' for the list)\n", o->name);
            return AMG_EXIT_FAIL;
        }
        if (!o->json) {
            print_detail(s);
            return amg_cli_finish_output();
        }
        root = json_strategy(s, 1);
    } else if (!o->json) {
        if (c->n)
            print_table(c);
        else
            print_none(o);
        return amg_cli_finish_output();
    } else {
        json_t *a = json_array();
        root = json_object();
        for (i = 0; i < c->n; i++)
            json_array_append_new(a, json_strategy(&c->s[i], 0));
        json_object_set_new(root, "strategies", a);
        json_object_set_new(root, "searched", searched_list(o));
    }
    if (amg_cli_print_json(root) && !ferror(stdout)) {
        amg_die_msg("out of memory formatting JSON");
        return AMG_EXIT_FAIL;
    }
    return amg_cli_finish_output();
}

int amg_cmd_plugins(int argc, char **argv)
{
    options o;
    amg_plugin_search s;
    amg_catalog c;
    amg_err err;
    int rc;

    memset(&o, 0, sizeof(o));
    /* argc bounds how many --plugin / --plugin-path there can be */
    o.files = calloc((size_t)argc, sizeof(*o.files));
    o.dirs = calloc((size_t)argc, sizeof(*o.dirs));
    if (!o.files || !o.dirs) {
        amg_die_msg("out of memory");
        rc = AMG_EXIT_FAIL;
        goto out;
    }
    if ((rc = parse_args(&o, argc, argv))) {
        if (rc < 0)
            rc = AMG_EXIT_OK;
        goto out;
    }
    s.files = o.files;
    s.n_files = o.n_files;
    s.dirs = o.dirs;
    s.n_dirs = o.n_dirs;
    s.flags = o.flags;
    amg_err_clear(&err);
    if (amg_catalog_scan(&c, &s, &err)) {
        amg_die_msg(err.msg);
        rc = AMG_EXIT_FAIL;
        goto out;
    }
    rc = show(&o, &c);
    amg_catalog_free(&c);
out:
    free(o.files);
    free(o.dirs);
    return rc;
}
