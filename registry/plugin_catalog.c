/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_catalog.c - the strategies every discovered plugin offers, and the
 * scan cache that spares dlopen for files already seen.
 *
 * Cache layout (JSON, written atomically):
 *   { "format": "amalgam-plugin-cache", "version": 1,
 *     "abi": [major, minor],
 *     "plugins": { "/abs/file.so": { "mtime_ns", "ctime_ns", "size", "ino",
 *                   "module": { "name", "version", "license" },
 *                   "strategies": [ { "id", "summary", "help", "caps",
 *                     "min_inputs", "max_inputs", "params": [ { "name",
 *                     "help", "type", "scope", "flags", "default",
 *                     "default_str", "min", "max", "choices" } ] } ] } } }
 * A record is used only when the file's mtime, ctime, size and inode all
 * match: ctime and inode catch a file replaced by one with a preserved
 * mtime (cp -p, install -p). A cache from another ABI, another format or
 * that does not parse is dropped whole; a record that does not read back
 * is treated as a miss. Records of files that no longer exist are dropped,
 * those of files outside this scan kept (another command line may list
 * them).
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "params.h"
#include "plugin_catalog.h"
#include "plugin_loader.h"
#include "util.h"

#define CACHE_FORMAT "amalgam-plugin-cache"
#define CACHE_VERSION 1
#define CACHE_MAX_BYTES (64u << 20)

/* ---- freeing ---- */

static void free_strv(char **v)
{
    size_t i;

    for (i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static void param_info_free(amg_param_info *p)
{
    free(p->name);
    free(p->help);
    free(p->def_str);
    free_strv(p->choices);
}

static void strategy_info_free(amg_strategy_info *s)
{
    size_t i;

    for (i = 0; i < s->n_params; i++)
        param_info_free(&s->params[i]);
    free(s->params);
    free(s->id);
    free(s->summary);
    free(s->help);
    free(s->module);
    free(s->module_version);
    free(s->license);
    free(s->path);
    memset(s, 0, sizeof(*s));
}

void amg_catalog_free(amg_catalog *c)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        strategy_info_free(&c->s[i]);
    free(c->s);
    memset(c, 0, sizeof(*c));
}

/* ---- a growing list of infos ---- */

typedef struct infovec {
    amg_strategy_info *v;
    size_t n, cap;
} infovec;

/* A zeroed slot at the end, or NULL when out of memory. */
static amg_strategy_info *iv_add(infovec *iv)
{
    if (iv->n == iv->cap) {
        size_t cap = iv->cap ? iv->cap * 2 : 8;
        amg_strategy_info *v = realloc(iv->v, cap * sizeof(*v));

        if (!v)
            return NULL;
        iv->v = v;
        iv->cap = cap;
    }
    memset(&iv->v[iv->n], 0, sizeof(*iv->v));
    return &iv->v[iv->n++];
}

static void iv_truncate(infovec *iv, size_t n)
{
    while (iv->n > n)
        strategy_info_free(&iv->v[--iv->n]);
}

/* NULL stays NULL; returns -1 only when a copy was needed and failed. */
static int dup_opt(const char *s, char **out)
{
    *out = s ? amg_strdup(s) : NULL;
    return s && !*out ? -1 : 0;
}

/* ---- infos from a loaded module ---- */

static int choices_from_spec(const char *const *src, char ***out)
{
    size_t n = 0, i;

    *out = NULL;
    if (!src)
        return 0;
    while (src[n])
        n++;
    if (!(*out = calloc(n + 1, sizeof(**out))))
        return -1;
    for (i = 0; i < n; i++)
        if (!((*out)[i] = amg_strdup(src[i])))
            return -1;
    return 0;
}

static int param_from_spec(amg_param_info *p, const amg_param_spec *ps)
{
    p->type = ps->type;
    p->scope = ps->scope;
    p->flags = ps->flags;
    p->def = ps->def;
    p->min = ps->min;
    p->max = ps->max;
    if (dup_opt(ps->name, &p->name) || dup_opt(ps->help, &p->help) ||
        dup_opt(ps->def_str, &p->def_str))
        return -1;
    return choices_from_spec(ps->choices, &p->choices);
}

static int info_from_strategy(amg_strategy_info *o, const amg_strategy *st,
                              const amg_module *m, const char *path)
{
    size_t i;

    o->caps = st->caps;
    o->min_inputs = st->min_inputs;
    o->max_inputs = st->max_inputs;
    if (dup_opt(st->id, &o->id) || dup_opt(st->summary, &o->summary) ||
        dup_opt(st->help, &o->help) || dup_opt(m->name, &o->module) ||
        dup_opt(m->version, &o->module_version) ||
        dup_opt(m->license, &o->license) || dup_opt(path, &o->path))
        return -1;
    if (st->n_params &&
        !(o->params = calloc(st->n_params, sizeof(*o->params))))
        return -1;
    for (i = 0; i < st->n_params; i++) {
        o->n_params++;
        if (param_from_spec(&o->params[i], amg_param_spec_at(st, i)))
            return -1;
    }
    return 0;
}

/* ---- infos <-> cache records ---- */

/* JSON has no infinities or NaN; a range bound may be one. */
static json_t *num_to_json(double v)
{
    if (isnan(v))
        return json_string("nan");
    if (isinf(v))
        return json_string(v > 0 ? "inf" : "-inf");
    return json_real(v);
}

static int num_from_json(const json_t *j, double *v)
{
    const char *s;

    if (json_is_number(j)) {
        *v = json_number_value(j);
        return 0;
    }
    if (!(s = json_string_value(j)))
        return -1;
    if (!strcmp(s, "nan"))
        *v = NAN;
    else if (!strcmp(s, "inf"))
        *v = INFINITY;
    else if (!strcmp(s, "-inf"))
        *v = -INFINITY;
    else
        return -1;
    return 0;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *param_to_json(const amg_param_info *p)
{
    json_t *o = json_object(), *ch = json_null();
    size_t i;

    if (p->choices) {
        ch = json_array();
        for (i = 0; p->choices[i]; i++)
            json_array_append_new(ch, json_string(p->choices[i]));
    }
    json_object_set_new(o, "name", str_or_null(p->name));
    json_object_set_new(o, "help", str_or_null(p->help));
    json_object_set_new(o, "type", json_integer(p->type));
    json_object_set_new(o, "scope", json_integer(p->scope));
    json_object_set_new(o, "flags", json_integer(p->flags));
    json_object_set_new(o, "default", num_to_json(p->def));
    json_object_set_new(o, "default_str", str_or_null(p->def_str));
    json_object_set_new(o, "min", num_to_json(p->min));
    json_object_set_new(o, "max", num_to_json(p->max));
    json_object_set_new(o, "choices", ch);
    return o;
}

static json_t *strategy_to_json(const amg_strategy_info *s)
{
    json_t *o = json_object(), *ps = json_array();
    size_t i;

    for (i = 0; i < s->n_params; i++)
        json_array_append_new(ps, param_to_json(&s->params[i]));
    json_object_set_new(o, "id", str_or_null(s->id));
    json_object_set_new(o, "summary", str_or_null(s->summary));
    json_object_set_new(o, "help", str_or_null(s->help));
    json_object_set_new(o, "caps", json_integer((json_int_t)s->caps));
    json_object_set_new(o, "min_inputs", json_integer(s->min_inputs));
    json_object_set_new(o, "max_inputs", json_integer(s->max_inputs));
    json_object_set_new(o, "params", ps);
    return o;
}

static int64_t ts_ns(const struct timespec *t)
{
    return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* The record of a file whose strategies are infos (all of one module).
 * NULL when out of memory; jansson ignores NULL children, so one check at
 * the end covers every allocation via the dump that follows. */
static json_t *record_new(const struct stat *st, const amg_module *m,
                          const amg_strategy_info *infos, size_t n)
{
    json_t *r = json_object(), *mod = json_object(), *ss = json_array();
    size_t i;

    json_object_set_new(mod, "name", str_or_null(m->name));
    json_object_set_new(mod, "version", str_or_null(m->version));
    json_object_set_new(mod, "license", str_or_null(m->license));
    for (i = 0; i < n; i++)
        json_array_append_new(ss, strategy_to_json(&infos[i]));
    json_object_set_new(r, "mtime_ns", json_integer(ts_ns(&st->st_mtim)));
    json_object_set_new(r, "ctime_ns", json_integer(ts_ns(&st->st_ctim)));
    json_object_set_new(r, "size", json_integer((json_int_t)st->st_size));
    json_object_set_new(r, "ino", json_integer((json_int_t)st->st_ino));
    json_object_set_new(r, "module", mod);
    json_object_set_new(r, "strategies", ss);
    return r;
}

static int int_eq(const json_t *o, const char *key, json_int_t v)
{
    const json_t *j = json_object_get(o, key);

    return json_is_integer(j) && json_integer_value(j) == v;
}

static int record_matches(const json_t *r, const struct stat *st)
{
    return int_eq(r, "mtime_ns", ts_ns(&st->st_mtim)) &&
           int_eq(r, "ctime_ns", ts_ns(&st->st_ctim)) &&
           int_eq(r, "size", (json_int_t)st->st_size) &&
           int_eq(r, "ino", (json_int_t)st->st_ino);
}

/* A string member (NULL allowed when nullable) copied to *out. */
static int get_str(const json_t *o, const char *key, int nullable, char **out)
{
    const json_t *j = json_object_get(o, key);

    *out = NULL;
    if (json_is_null(j) && nullable)
        return 0;
    if (!json_is_string(j))
        return -1;
    return (*out = amg_strdup(json_string_value(j))) ? 0 : -1;
}

static int get_int(const json_t *o, const char *key, json_int_t lo,
                   json_int_t hi, json_int_t *out)
{
    const json_t *j = json_object_get(o, key);

    if (!json_is_integer(j))
        return -1;
    *out = json_integer_value(j);
    return *out < lo || *out > hi ? -1 : 0;
}

/* Ids are printed and matched as the loader accepted them; a cache that
 * says otherwise was not written by us. */
static int id_ok(const char *id)
{
    size_t i;

    if (!id || id[0] < 'a' || id[0] > 'z')
        return 0;
    for (i = 1; id[i]; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') ||
              (id[i] >= '0' && id[i] <= '9') || id[i] == '_'))
            return 0;
    return 1;
}

static int choices_from_json(const json_t *j, char ***out)
{
    size_t i, n;

    *out = NULL;
    if (json_is_null(j))
        return 0;
    if (!json_is_array(j))
        return -1;
    n = json_array_size(j);
    if (!(*out = calloc(n + 1, sizeof(**out))))
        return -1;
    for (i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(j, i));
        if (!s || !((*out)[i] = amg_strdup(s)))
            return -1;
    }
    return 0;
}

static int param_from_json(amg_param_info *p, const json_t *o)
{
    json_int_t type, scope, flags;

    if (!json_is_object(o) || get_str(o, "name", 0, &p->name) ||
        get_str(o, "help", 1, &p->help) ||
        get_str(o, "default_str", 1, &p->def_str) ||
        get_int(o, "type", AMG_PARAM_F64, AMG_PARAM_STR, &type) ||
        get_int(o, "scope", AMG_SCOPE_GLOBAL, AMG_SCOPE_PER_MODEL, &scope) ||
        get_int(o, "flags", 0, UINT32_MAX, &flags) ||
        num_from_json(json_object_get(o, "default"), &p->def) ||
        num_from_json(json_object_get(o, "min"), &p->min) ||
        num_from_json(json_object_get(o, "max"), &p->max))
        return -1;
    p->type = (int32_t)type;
    p->scope = (int32_t)scope;
    p->flags = (uint32_t)flags;
    return choices_from_json(json_object_get(o, "choices"), &p->choices);
}

static int info_from_json(amg_strategy_info *s, const json_t *o,
                          const json_t *mod, const char *path)
{
    const json_t *ps = json_object_get(o, "params");
    json_int_t caps, lo, hi;
    size_t i;

    if (!json_is_object(o) || !json_is_array(ps) ||
        get_str(o, "id", 0, &s->id) || !id_ok(s->id) ||
        get_str(o, "summary", 0, &s->summary) ||
        get_str(o, "help", 1, &s->help) ||
        get_int(o, "caps", INT64_MIN, INT64_MAX, &caps) ||
        get_int(o, "min_inputs", 0, UINT32_MAX, &lo) ||
        get_int(o, "max_inputs", 0, UINT32_MAX, &hi) ||
        get_str(mod, "name", 1, &s->module) ||
        get_str(mod, "version", 1, &s->module_version) ||
        get_str(mod, "license", 1, &s->license) || dup_opt(path, &s->path))
        return -1;
    s->caps = (uint64_t)caps;
    s->min_inputs = (uint32_t)lo;
    s->max_inputs = (uint32_t)hi;
    if (json_array_size(ps) &&
        !(s->params = calloc(json_array_size(ps), sizeof(*s->params))))
        return -1;
    for (i = 0; i < json_array_size(ps); i++) {
        s->n_params++;
        if (param_from_json(&s->params[i], json_array_get(ps, i)))
            return -1;
    }
    return 0;
}

/* Appends the record's strategies; on any doubt appends nothing. */
static int infos_from_record(infovec *iv, const json_t *r, const char *path)
{
    const json_t *mod = json_object_get(r, "module");
    const json_t *ss = json_object_get(r, "strategies");
    size_t start = iv->n, i;

    if (!json_is_object(mod) || !json_is_array(ss))
        return -1;
    for (i = 0; i < json_array_size(ss); i++) {
        amg_strategy_info *s = iv_add(iv);
        if (!s || info_from_json(s, json_array_get(ss, i), mod, path)) {
            iv_truncate(iv, start);
            return -1;
        }
    }
    return 0;
}

/* ---- the cache file ---- */

char *amg_catalog_cache_path(void)
{
    const char *e = getenv("AMALGAM_PLUGIN_CACHE");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");

    /* set but empty: no cache at all */
    if (e)
        return *e ? amg_strdup(e) : NULL;
    if (xdg && xdg[0] == '/')
        return amg_path_join(xdg, "amalgam/plugin-cache.json");
    if (home && home[0] == '/')
        return amg_path_join(home, ".cache/amalgam/plugin-cache.json");
    return NULL;
}

static json_t *cache_new(void)
{
    json_t *root = json_object();

    json_object_set_new(root, "format", json_string(CACHE_FORMAT));
    json_object_set_new(root, "version", json_integer(CACHE_VERSION));
    json_object_set_new(root, "abi", json_pack("[ii]", AMG_ABI_MAJOR,
                                               AMG_ABI_MINOR));
    json_object_set_new(root, "plugins", json_object());
    return root;
}

static int cache_valid(const json_t *root)
{
    const json_t *fmt = json_object_get(root, "format");
    const json_t *abi = json_object_get(root, "abi");

    return json_is_object(root) && json_is_string(fmt) &&
           !strcmp(json_string_value(fmt), CACHE_FORMAT) &&
           int_eq(root, "version", CACHE_VERSION) && json_is_array(abi) &&
           json_array_size(abi) == 2 &&
           json_integer_value(json_array_get(abi, 0)) == AMG_ABI_MAJOR &&
           json_integer_value(json_array_get(abi, 1)) == AMG_ABI_MINOR &&
           json_is_object(json_object_get(root, "plugins"));
}

/* The cache at path, or a new empty one (*fresh = 1) when there is none or
 * it cannot be trusted. NULL only when out of memory. */
static json_t *cache_load(const char *path, int *fresh)
{
    char *data = NULL;
    size_t len = 0;
    json_t *root = NULL;

    if (path && !amg_read_file(path, CACHE_MAX_BYTES, &data, &len, NULL))
        root = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    free(data);
    *fresh = !cache_valid(root);
    if (*fresh) {
        json_decref(root);
        root = cache_new();
    }
    return root;
}

/* mkdir -p of path's parent. */
static int make_parent(const char *path)
{
    char *p = amg_strdup(path);
    char *s;
    int rc = 0;

    if (!p)
        return -1;
    for (s = p + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
            rc = -1;
            break;
        }
        *s = '/';
    }
    free(p);
    return rc;
}

/* Failures are ignored: the catalog works without a cache. */
static void cache_save(const char *path, const json_t *root)
{
    char *text;

    if (!path || make_parent(path))
        return;
    text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
    if (text)
        amg_write_file_atomic(path, text, strlen(text), NULL);
    free(text);
}

/* Drops records of files that are gone; 1 if any was dropped. */
static int cache_prune(json_t *plugins)
{
    const char *key;
    json_t *val, *tmp;
    struct stat st;
    int dropped = 0;

    json_object_foreach_safe(plugins, tmp, key, val) {
        (void)val;
        if (stat(key, &st) < 0) {
            json_object_del(plugins, key);
            dropped = 1;
        }
    }
    return dropped;
}

/* ---- the scan ---- */

/* Load path and append its strategies; *rec gets its cache record. */
static int scan_load(amg_plugins *ps, infovec *iv, const char *path,
                     const struct stat *st, unsigned flags, json_t **rec,
                     amg_err *err)
{
    size_t before = ps->n_modules, start = iv->n, i;
    const amg_module *m;
    int rc;

    *rec = NULL;
    if ((rc = amg_plugins_load(ps, path, flags, err)))
        return rc;
    if (ps->n_modules == before)        /* same file under another name */
        return AMG_OK;
    m = ps->modules[before].mod;
    for (i = 0; i < ps->n_strategies; i++) {
        amg_strategy_info *s;

        if (ps->strategies[i].module != before)
            continue;
        if (!(s = iv_add(iv)) ||
            info_from_strategy(s, ps->strategies[i].s, m, path))
            goto oom;
    }
    if (!(*rec = record_new(st, m, iv->v + start, iv->n - start)))
        goto oom;
    return AMG_OK;
oom:
    iv_truncate(iv, start);
    return amg_err_set(err, AMG_ENOMEM, "out of memory reading plugin '%s'",
                       path);
}

static int cmp_info(const void *a, const void *b)
{
    const amg_strategy_info *x = a, *y = b;
    int c = strcmp(x->id, y->id);

    /* ties by path keep the duplicate message stable */
    return c ? c : strcmp(x->path, y->path);
}

static int check_unique(const infovec *iv, amg_err *err)
{
    size_t i;

    for (i = 1; i < iv->n; i++)
        if (!strcmp(iv->v[i - 1].id, iv->v[i].id))
            return amg_err_set(err, AMG_EEXIST,
                               "duplicate strategy id '%s': offered by both "
                               "'%s' and '%s'", iv->v[i].id,
                               iv->v[i - 1].path, iv->v[i].path);
    return AMG_OK;
}

static int scan_file(amg_catalog *c, infovec *iv, amg_plugins *ps,
                     json_t *plugins, const char *path, unsigned flags,
                     int *dirty, amg_err *err)
{
    const json_t *rec = json_object_get(plugins, path);
    json_t *fresh;
    struct stat st;
    int rc;

    /* a cached record must not hide a file the loader would refuse */
    if (!(flags & AMG_LOAD_ALLOW_INSECURE) &&
        (rc = amg_plugin_check_perms(path, err)))
        return rc;
    if (stat(path, &st) < 0)
        return amg_err_errno(err, AMG_ENOTFOUND, errno,
                             "cannot open plugin '%s'", path);
    if (rec && record_matches(rec, &st) && !infos_from_record(iv, rec, path)) {
        c->cache_hits++;
        return AMG_OK;
    }
    c->cache_misses++;
    if ((rc = scan_load(ps, iv, path, &st, flags, &fresh, err)))
        return rc;
    if (fresh) {
        json_object_set_new(plugins, path, fresh);
        *dirty = 1;
    }
    return AMG_OK;
}

int amg_catalog_scan(amg_catalog *c, const amg_plugin_search *s,
                     amg_err *err)
{
    char **files = NULL, *cache_path = amg_catalog_cache_path();
    size_t n_files = 0, i;
    infovec iv = { 0 };
    amg_plugins ps;
    json_t *root, *plugins = NULL;
    int dirty = 0, rc;

    memset(c, 0, sizeof(*c));
    memset(&ps, 0, sizeof(ps));
    if (!(root = cache_load(cache_path, &dirty))) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory reading plugins");
        goto out;
    }
    plugins = json_object_get(root, "plugins");
    if ((rc = amg_plugin_discover(s, &files, &n_files, err)))
        goto out;
    for (i = 0; i < n_files; i++)
        if ((rc = scan_file(c, &iv, &ps, plugins, files[i], s->flags, &dirty,
                            err)))
            goto out;
    if (iv.n > 1)
        qsort(iv.v, iv.n, sizeof(*iv.v), cmp_info);
    rc = check_unique(&iv, err);
out:
    if (root) {
        if (cache_prune(plugins))
            dirty = 1;
        if (dirty)
            cache_save(cache_path, root);
    }
    json_decref(root);
    amg_plugins_release(&ps);
    amg_plugin_files_free(files, n_files);
    free(cache_path);
    c->s = iv.v;
    c->n = iv.n;
    if (rc) {
        size_t hits = c->cache_hits, misses = c->cache_misses;
        amg_catalog_free(c);
        c->cache_hits = hits;
        c->cache_misses = misses;
    }
    return rc;
}

static int cmp_id_key(const void *key, const void *elem)
{
    return strcmp(key, ((const amg_strategy_info *)elem)->id);
}

const amg_strategy_info *amg_catalog_find(const amg_catalog *c,
                                          const char *id)
{
    if (!c->n)
        return NULL;
    return bsearch(id, c->s, c->n, sizeof(*c->s), cmp_id_key);
}
