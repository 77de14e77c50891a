/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for registry/plugin_path.c and registry/plugin_catalog.c:
 * search order and filtering, environment isolation, the permission check,
 * what a scan reports for the test and example plugins, and the scan cache
 * (hits, invalidation, corrupt caches, duplicate ids).
 *
 * Every test works in its own scratch folder with its own cache file, and
 * copies the plugins it loads there (0755 in a 0700 folder), so the result
 * does not depend on the build tree's umask. check forks each test, so the
 * setenv calls stay inside it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "plugin_catalog.h"
#include "plugin_loader.h"
#include "plugin_path.h"
#include "testutil.h"
#include "util.h"

/* ---- fixtures ---- */

static char *scratch;           /* this test's folder */

static void setup(void)
{
    char *cache;

    scratch = tu_mkdtemp();
    cache = amg_path_join(scratch, "cache/plugin-cache.json");
    ck_assert_ptr_nonnull(cache);
    /* only what a test names explicitly may be found */
    ck_assert_int_eq(setenv("AMALGAM_PLUGIN_SYSTEM_PATH", "", 1), 0);
    ck_assert_int_eq(setenv("AMALGAM_PLUGIN_CACHE", cache, 1), 0);
    unsetenv("AMALGAM_PLUGIN_PATH");
    free(cache);
}

static void teardown(void)
{
    tu_rmtree(scratch);
}

static const char *env_dir(const char *var)
{
    const char *d = getenv(var);

    ck_assert_msg(d && *d, "%s is not set (run under make check)", var);
    return d;
}

/* Copy src to dir/name with mode 0755; returns the malloc'd path. */
static char *copy_plugin(const char *src, const char *dir, const char *name)
{
    char *data, *p;
    size_t len;
    amg_err e;

    amg_err_clear(&e);
    ck_assert_msg(amg_read_file(src, 64u << 20, &data, &len, &e) == AMG_OK,
                  "%s", e.msg);
    p = tu_write(dir, name, data, len);
    ck_assert_int_eq(chmod(p, 0755), 0);
    free(data);
    return p;
}

static char *test_plugin(const char *dir, const char *file, const char *as)
{
    char src[PATH_MAX];

    snprintf(src, sizeof(src), "%s/%s", env_dir("TEST_PLUGIN_DIR"), file);
    return copy_plugin(src, dir, as);
}

static char *example_plugin(const char *dir, const char *as)
{
    char src[PATH_MAX];

    snprintf(src, sizeof(src), "%s/median.so", env_dir("EXAMPLE_PLUGIN_DIR"));
    return copy_plugin(src, dir, as);
}

static char *subdir(const char *name, mode_t mode)
{
    char *d = amg_path_join(scratch, name);

    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(mkdir(d, mode), 0);
    ck_assert_int_eq(chmod(d, mode), 0);
    return d;
}

static char *real(const char *p)
{
    char *r = realpath(p, NULL);

    ck_assert_msg(r != NULL, "realpath '%s': %s", p, strerror(errno));
    return r;
}

static amg_plugin_search search_of(const char *const *files, size_t nf,
                                   const char *const *dirs, size_t nd)
{
    amg_plugin_search s = { files, nf, dirs, nd, 0 };
    return s;
}

static void scan_ok(amg_catalog *c, const amg_plugin_search *s)
{
    amg_err e;

    amg_err_clear(&e);
    ck_assert_msg(amg_catalog_scan(c, s, &e) == AMG_OK, "scan: %s", e.msg);
}

/* ---- discovery ---- */

START_TEST(discover_order_and_filtering)
{
    /* created out of order; byte order is A _x a b m z */
    static const char *names[] = { "m.so", "b.so", "z.so", "A.so", "a.so",
                                   "_x.so" };
    static const char *sorted[] = { "A.so", "_x.so", "a.so", "b.so", "m.so",
                                    "z.so" };
    char *d1 = subdir("d1", 0755), *d2 = subdir("d2", 0755);
    char *ex = subdir("ex", 0755);
    char *missing = amg_path_join(scratch, "missing");
    char *c2 = tu_write(d2, "c.so", "c", 1);
    char *z = tu_write(ex, "z.so", "z", 1), *outside;
    char *want[8];
    const char *files[] = { z };
    const char *dirs[] = { d2, missing, d1 };
    amg_plugin_search s = search_of(files, 1, dirs, 3);
    char **got, lp[PATH_MAX];
    size_t n, i;
    amg_err e;

    for (i = 0; i < 6; i++)
        free(tu_write(d1, names[i], "p", 1));
    /* none of these may be listed: wrong suffix, hidden, a symlink, a
     * directory, a hard link to a file already listed */
    free(tu_write(d1, "notes.txt", "x", 1));
    free(tu_write(d1, "c.so.1", "x", 1));
    free(tu_write(d1, ".hidden.so", "x", 1));
    outside = tu_write(ex, "outside.so", "o", 1);
    snprintf(lp, sizeof(lp), "%s/link.so", d1);
    ck_assert_int_eq(symlink(outside, lp), 0);
    snprintf(lp, sizeof(lp), "%s/dir.so", d1);
    ck_assert_int_eq(mkdir(lp, 0755), 0);
    snprintf(lp, sizeof(lp), "%s/hard.so", d1);
    ck_assert_int_eq(link(c2, lp), 0);

    want[0] = real(z);          /* explicit files first */
    want[1] = amg_strdup(c2);   /* then directories in the order given */
    for (i = 0; i < 6; i++)     /* names in byte order within one */
        want[2 + i] = amg_path_join(d1, sorted[i]);
    amg_err_clear(&e);
    ck_assert_msg(amg_plugin_discover(&s, &got, &n, &e) == AMG_OK, "%s",
                  e.msg);
    for (i = 0; i < n; i++)
        ck_assert_msg(i < 8, "unexpected extra file '%s'", got[i]);
    ck_assert_uint_eq(n, 8);
    for (i = 0; i < 8; i++)
        ck_assert_str_eq(got[i], want[i]);
    amg_plugin_files_free(got, n);
    for (i = 0; i < 8; i++)
        free(want[i]);
    free(d1); free(d2); free(ex); free(missing);
    free(c2); free(z); free(outside);
}
END_TEST

START_TEST(discover_explicit_file_listed_once)
{
    char *d = subdir("d", 0755);
    char *a = tu_write(d, "a.so", "a", 1);
    const char *files[] = { a, a };
    const char *dirs[] = { d };
    amg_plugin_search s = search_of(files, 2, dirs, 1);
    char **got, *ra = real(a);
    size_t n;
    amg_err e;

    amg_err_clear(&e);
    ck_assert_int_eq(amg_plugin_discover(&s, &got, &n, &e), AMG_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(got[0], ra);
    amg_plugin_files_free(got, n);
    free(ra); free(a); free(d);
}
END_TEST

START_TEST(discover_explicit_must_exist)
{
    char *p = amg_path_join(scratch, "nope.so");
    const char *files[] = { p };
    amg_plugin_search s = search_of(files, 1, NULL, 0);
    char **got, want[PATH_MAX + 64];
    size_t n;
    amg_err e;

    amg_err_clear(&e);
    ck_assert_int_eq(amg_plugin_discover(&s, &got, &n, &e), AMG_ENOTFOUND);
    snprintf(want, sizeof(want),
             "cannot open plugin '%s': No such file or directory", p);
    ck_assert_str_eq(e.msg, want);
    free(p);
}
END_TEST

START_TEST(relative_env_dirs_refused)
{
    amg_plugin_search s = search_of(NULL, 0, NULL, 0);
    char **got;
    size_t n;
    amg_err e;

    ck_assert_int_eq(setenv("AMALGAM_PLUGIN_PATH", "/abs::rel/dir", 1), 0);
    amg_err_clear(&e);
    ck_assert_int_eq(amg_plugin_discover(&s, &got, &n, &e), AMG_EINVAL);
    ck_assert_str_eq(e.msg, "plugin directory 'rel/dir' in "
                     "AMALGAM_PLUGIN_PATH is relative: give an absolute path");

    unsetenv("AMALGAM_PLUGIN_PATH");
    ck_assert_int_eq(setenv("AMALGAM_PLUGIN_SYSTEM_PATH", "plugins", 1), 0);
    amg_err_clear(&e);
    ck_assert_int_eq(amg_plugin_search_dirs(&s, &got, &n, &e), AMG_EINVAL);
    ck_assert_str_eq(e.msg, "plugin directory 'plugins' in "
                     "AMALGAM_PLUGIN_SYSTEM_PATH is relative: give an "
                     "absolute path");
}
END_TEST

/* dirs must equal want[0..nw-1] */
static void expect_dirs(const amg_plugin_search *s, const char *const *want,
                        size_t nw)
{
    char **got;
    size_t n, i;
    amg_err e;

    amg_err_clear(&e);
    ck_assert_msg(amg_plugin_search_dirs(s, &got, &n, &e) == AMG_OK, "%s",
                  e.msg);
    for (i = 0; i < n && i < nw; i++)
        ck_assert_str_eq(got[i], want[i]);
    ck_assert_uint_eq(n, nw);
    amg_plugin_files_free(got, n);
}

START_TEST(search_order_and_isolation)
{
    const char *dirs[] = { "/opt/one", "rel" };
    amg_plugin_search s = search_of(NULL, 0, dirs, 2);
    char cwd[PATH_MAX], rel[PATH_MAX + 8];

    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    snprintf(rel, sizeof(rel), "%s/rel", cwd);
    ck_assert_int_eq(setenv("AMALGAM_PLUGIN_PATH", "/env/a:/env/b", 1), 0);
    ck_assert_int_eq(setenv("XDG_DATA_HOME", "/xdg", 1), 0);
    ck_assert_int_eq(setenv("HOME", "/home/u", 1), 0);

    /* set, even empty, the system variable replaces XDG and pkglibdir */
    ck_assert_int_eq(setenv("AMALGAM_PLUGIN_SYSTEM_PATH", "/sys1:/sys2", 1),
                     0);
    {
        const char *want[] = { "/opt/one", rel, "/env/a", "/env/b", "/sys1",
                               "/sys2" };
        expect_dirs(&s, want, 6);
    }
    ck_assert_int_eq(setenv("AMALGAM_PLUGIN_SYSTEM_PATH", "", 1), 0);
    {
        const char *want[] = { "/opt/one", rel, "/env/a", "/env/b" };
        expect_dirs(&s, want, 4);
    }
    unsetenv("AMALGAM_PLUGIN_SYSTEM_PATH");
    {
        const char *want[] = { "/opt/one", rel, "/env/a", "/env/b",
                               "/xdg/amalgam/plugins", AMG_PLUGINDIR };
        expect_dirs(&s, want, 6);
    }
    /* a relative XDG_DATA_HOME is invalid per the XDG spec: HOME's default */
    ck_assert_int_eq(setenv("XDG_DATA_HOME", "xdg", 1), 0);
    {
        const char *want[] = { "/opt/one", rel, "/env/a", "/env/b",
                               "/home/u/.local/share/amalgam/plugins",
                               AMG_PLUGINDIR };
        expect_dirs(&s, want, 6);
    }
}
END_TEST

/* ---- permissions ---- */

START_TEST(perms_refuse_writable_file_and_dir)
{
    char *d = subdir("d", 0755);
    char *p = tu_write(d, "a.so", "a", 1);
    char want[2 * PATH_MAX + 128];
    amg_err e;

    ck_assert_int_eq(chmod(p, 0644), 0);
    amg_err_clear(&e);
    ck_assert_msg(amg_plugin_check_perms(p, &e) == AMG_OK, "%s", e.msg);

    ck_assert_int_eq(chmod(p, 0664), 0);
    amg_err_clear(&e);
    ck_assert_int_eq(amg_plugin_check_perms(p, &e), AMG_EPLUGIN);
    snprintf(want, sizeof(want), "'%s' is writable by others: fix with chmod "
             "go-w '%s', or pass --allow-insecure-plugins", p, p);
    ck_assert_str_eq(e.msg, want);

    ck_assert_int_eq(chmod(p, 0646), 0);
    amg_err_clear(&e);
    ck_assert_int_eq(amg_plugin_check_perms(p, &e), AMG_EPLUGIN);
    ck_assert_str_eq(e.msg, want);

    ck_assert_int_eq(chmod(p, 0755), 0);
    ck_assert_int_eq(chmod(d, 0777), 0);
    amg_err_clear(&e);
    ck_assert_int_eq(amg_plugin_check_perms(p, &e), AMG_EPLUGIN);
    snprintf(want, sizeof(want), "'%s' is writable by others: fix with chmod "
             "go-w '%s', or pass --allow-insecure-plugins", d, d);
    ck_assert_str_eq(e.msg, want);
    ck_assert_int_eq(chmod(d, 0755), 0);
    free(p);
    free(d);
}
END_TEST

START_TEST(scan_refuses_insecure_even_when_cached)
{
    char *d = subdir("d", 0755);
    char *p = example_plugin(d, "median.so");
    const char *files[] = { p };
    amg_plugin_search s = search_of(files, 1, NULL, 0);
    amg_catalog c;
    amg_err e;

    scan_ok(&c, &s);                    /* now cached */
    amg_catalog_free(&c);
    ck_assert_int_eq(chmod(d, 0775), 0);
    amg_err_clear(&e);
    ck_assert_int_eq(amg_catalog_scan(&c, &s, &e), AMG_EPLUGIN);
    ck_assert_ptr_nonnull(strstr(e.msg, "is writable by others"));
    ck_assert_uint_eq(c.n, 0);

    s.flags = AMG_LOAD_ALLOW_INSECURE;
    scan_ok(&c, &s);
    ck_assert_uint_eq(c.n, 1);
    amg_catalog_free(&c);
    ck_assert_int_eq(chmod(d, 0755), 0);
    free(p);
    free(d);
}
END_TEST

/* ---- what a scan reports ---- */

static void expect_median(const amg_strategy_info *m, const char *path)
{
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->id, "median");
    ck_assert_str_eq(m->summary, "elementwise median of the input models");
    ck_assert_ptr_nonnull(m->help);
    ck_assert_str_eq(m->module, "median");
    ck_assert_str_eq(m->module_version, "1.0.0");
    ck_assert_str_eq(m->license, "Apache-2.0");
    ck_assert_str_eq(m->path, path);
    ck_assert_uint_eq(m->caps,
                      AMG_CAP_CPU | AMG_CAP_ELEMENTWISE | AMG_CAP_REENTRANT);
    ck_assert_uint_eq(m->min_inputs, 2);
    ck_assert_uint_eq(m->max_inputs, 0);
    ck_assert_uint_eq(m->n_params, 1);
    ck_assert_str_eq(m->params[0].name, "include_base");
    ck_assert_int_eq(m->params[0].type, AMG_PARAM_BOOL);
    ck_assert_int_eq(m->params[0].scope, AMG_SCOPE_GLOBAL);
    ck_assert_uint_eq(m->params[0].flags, 0);
    ck_assert(m->params[0].def == 0.0);
    ck_assert_ptr_null(m->params[0].def_str);
    ck_assert_ptr_null(m->params[0].choices);
}

START_TEST(scan_example_plugin)
{
    char *d = subdir("d", 0755);
    char *p = example_plugin(d, "median.so");
    const char *dirs[] = { d };
    amg_plugin_search s = search_of(NULL, 0, dirs, 1);
    amg_catalog c;

    scan_ok(&c, &s);
    ck_assert_uint_eq(c.n, 1);
    expect_median(amg_catalog_find(&c, "median"), p);
    ck_assert_ptr_null(amg_catalog_find(&c, "medians"));
    ck_assert_ptr_null(amg_catalog_find(&c, ""));
    ck_assert_uint_eq(c.cache_misses, 1);
    ck_assert_uint_eq(c.cache_hits, 0);
    amg_catalog_free(&c);
    free(p);
    free(d);
}
END_TEST

/* tests/plugins/good.c, as its source reads */
static void expect_good(const amg_catalog *c, const char *path)
{
    const amg_strategy_info *m = amg_catalog_find(c, "good_mean");
    const amg_strategy_info *f = amg_catalog_find(c, "good_first");
    const uint64_t caps = AMG_CAP_CPU | AMG_CAP_ELEMENTWISE |
                          AMG_CAP_REENTRANT;
    const amg_param_info *w, *mode;

    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(m->module, "good");
    ck_assert_str_eq(m->module_version, "1.0.0");
    ck_assert_str_eq(m->license, "Apache-2.0");
    ck_assert_str_eq(m->path, path);
    ck_assert_str_eq(f->path, path);
    ck_assert_str_eq(m->summary, "weighted mean of the inputs (test plugin)");
    ck_assert_str_eq(f->summary, "the first input, unchanged (test plugin)");
    ck_assert_ptr_null(m->help);
    ck_assert_uint_eq(m->caps, caps);
    ck_assert_uint_eq(f->caps, caps);
    ck_assert_uint_eq(m->min_inputs, 1);
    ck_assert_uint_eq(m->max_inputs, 0);
    ck_assert_uint_eq(f->n_params, 0);
    ck_assert_ptr_null(f->params);
    ck_assert_uint_eq(m->n_params, 2);
    w = &m->params[0];
    mode = &m->params[1];
    ck_assert_str_eq(w->name, "weight");
    ck_assert_str_eq(w->help, "weight of the model (0 or more)");
    ck_assert_int_eq(w->type, AMG_PARAM_F64);
    ck_assert_int_eq(w->scope, AMG_SCOPE_PER_MODEL);
    ck_assert_uint_eq(w->flags, AMG_PARAM_HAS_MIN);
    ck_assert(w->def == 1.0 && w->min == 0.0);
    ck_assert_ptr_null(w->def_str);
    ck_assert_ptr_null(w->choices);
    ck_assert_str_eq(mode->name, "mode");
    ck_assert_int_eq(mode->type, AMG_PARAM_STR);
    ck_assert_int_eq(mode->scope, AMG_SCOPE_GLOBAL);
    ck_assert_uint_eq(mode->flags, 0);
    ck_assert_str_eq(mode->def_str, "plain");
    ck_assert_ptr_nonnull(mode->choices);
    ck_assert_str_eq(mode->choices[0], "plain");
    ck_assert_str_eq(mode->choices[1], "scaled");
    ck_assert_ptr_null(mode->choices[2]);
}

START_TEST(scan_test_plugin_then_cache)
{
    char *d = subdir("d", 0755);
    char *g = test_plugin(d, "good.so", "good.so");
    char *m = example_plugin(d, "median.so");
    const char *dirs[] = { d };
    amg_plugin_search s = search_of(NULL, 0, dirs, 1);
    amg_catalog c;
    int k;

    /* the same catalog loaded, then read back from the cache */
    for (k = 0; k < 2; k++) {
        scan_ok(&c, &s);
        ck_assert_uint_eq(c.cache_misses, k ? 0 : 2);
        ck_assert_uint_eq(c.cache_hits, k ? 2 : 0);
        ck_assert_uint_eq(c.n, 3);
        ck_assert_str_eq(c.s[0].id, "good_first");   /* sorted by id */
        ck_assert_str_eq(c.s[1].id, "good_mean");
        ck_assert_str_eq(c.s[2].id, "median");
        expect_good(&c, g);
        expect_median(amg_catalog_find(&c, "median"), m);
        amg_catalog_free(&c);
    }
    free(g);
    free(m);
    free(d);
}
END_TEST

START_TEST(scan_nothing_found)
{
    amg_plugin_search s = search_of(NULL, 0, NULL, 0);
    amg_catalog c;

    scan_ok(&c, &s);
    ck_assert_uint_eq(c.n, 0);
    ck_assert_ptr_null(amg_catalog_find(&c, "median"));
    amg_catalog_free(&c);
}
END_TEST

START_TEST(scan_broken_plugin_fails_with_its_message)
{
    char *d = subdir("d", 0755);
    char *p = test_plugin(d, "bad_magic.so", "bad_magic.so");
    const char *files[] = { p };
    amg_plugin_search s = search_of(files, 1, NULL, 0);
    amg_catalog c;
    amg_err e;

    amg_err_clear(&e);
    ck_assert_int_eq(amg_catalog_scan(&c, &s, &e), AMG_EPLUGIN);
    ck_assert_msg(strstr(e.msg, p) && strstr(e.msg, "magic"), "%s", e.msg);
    ck_assert_uint_eq(c.n, 0);
    free(p);
    free(d);
}
END_TEST

/* ---- the cache ---- */

static json_t *read_cache(void)
{
    json_error_t je;
    json_t *j = json_load_file(getenv("AMALGAM_PLUGIN_CACHE"), 0, &je);

    ck_assert_msg(j != NULL, "cache does not parse: %s", je.text);
    return j;
}

static void write_cache(const json_t *j)
{
    ck_assert_int_eq(json_dump_file(j, getenv("AMALGAM_PLUGIN_CACHE"), 0),
                     0);
}

static void write_cache_bytes(const char *text)
{
    char dir[PATH_MAX];
    FILE *f;

    snprintf(dir, sizeof(dir), "%s/cache", scratch);
    ck_assert(mkdir(dir, 0700) == 0 || errno == EEXIST);
    f = fopen(getenv("AMALGAM_PLUGIN_CACHE"), "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(cache_hit_then_invalidated_by_mtime)
{
    char *d = subdir("d", 0755);
    char *p = example_plugin(d, "median.so");
    const char *files[] = { p };
    amg_plugin_search s = search_of(files, 1, NULL, 0);
    struct timespec ts[2] = { { 0, UTIME_OMIT }, { 1000000000, 123456789 } };
    json_t *j, *rec, *st0;
    amg_catalog c;

    scan_ok(&c, &s);
    ck_assert_uint_eq(c.cache_misses, 1);
    ck_assert_uint_eq(c.cache_hits, 0);
    amg_catalog_free(&c);

    /* the record is keyed by the absolute path, with the file's identity */
    j = read_cache();
    ck_assert_int_eq(json_integer_value(json_object_get(j, "version")), 1);
    rec = json_object_get(json_object_get(j, "plugins"), p);
    ck_assert_msg(rec != NULL, "no record for '%s'", p);
    ck_assert(json_is_integer(json_object_get(rec, "mtime_ns")));
    ck_assert(json_is_integer(json_object_get(rec, "size")));

    /* Mark the cached summary: if the next scan shows the mark, it read
     * the cache and did not load the file. */
    st0 = json_array_get(json_object_get(rec, "strategies"), 0);
    json_object_set_new(st0, "summary", json_string("from the cache"));
    write_cache(j);
    json_decref(j);

    scan_ok(&c, &s);
    ck_assert_uint_eq(c.cache_hits, 1);
    ck_assert_uint_eq(c.cache_misses, 0);
    ck_assert_uint_eq(c.n, 1);
    ck_assert_str_eq(c.s[0].summary, "from the cache");
    ck_assert_uint_eq(c.s[0].params[0].type, AMG_PARAM_BOOL);
    amg_catalog_free(&c);

    /* a new mtime (same size) makes the record stale */
    ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
    scan_ok(&c, &s);
    ck_assert_uint_eq(c.cache_hits, 0);
    ck_assert_uint_eq(c.cache_misses, 1);
    expect_median(&c.s[0], p);
    amg_catalog_free(&c);

    /* and the refreshed record serves the next scan */
    scan_ok(&c, &s);
    ck_assert_uint_eq(c.cache_hits, 1);
    ck_assert_uint_eq(c.cache_misses, 0);
    expect_median(&c.s[0], p);
    amg_catalog_free(&c);
    free(p);
    free(d);
}
END_TEST

START_TEST(cache_corrupt_or_foreign_is_rebuilt)
{
    static const char *bad[] = {
        "\x01\x02garbage\xff",
        ("{\"format\": \"amalgam-plugin-cache\", \"version\": 999, "
         "\"abi\": [0, 1], \"plugins\": {}}"),
        "[1, 2, 3]",
        "",
    };
    char *d = subdir("d", 0755);
    char *p = example_plugin(d, "median.so");
    const char *files[] = { p };
    amg_plugin_search s = search_of(files, 1, NULL, 0);
    amg_catalog c;
    json_t *j;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_cache_bytes(bad[i]);
        scan_ok(&c, &s);
        ck_assert_msg(c.cache_misses == 1 && c.cache_hits == 0,
                      "cache %zu trusted", i);
        expect_median(&c.s[0], p);
        amg_catalog_free(&c);
        /* rewritten as a cache that serves the next scan */
        scan_ok(&c, &s);
        ck_assert_uint_eq(c.cache_hits, 1);
        amg_catalog_free(&c);
    }

    /* a well-formed cache from another format version or ABI is not
     * trusted either: the marked summary must not come back */
    for (i = 0; i < 2; i++) {
        j = read_cache();
        json_object_set_new(json_array_get(json_object_get(json_object_get(
            json_object_get(j, "plugins"), p), "strategies"), 0), "summary",
            json_string("from the cache"));
        if (i == 0)
            json_object_set_new(j, "version", json_integer(2));
        else
            json_object_set_new(j, "abi", json_pack("[ii]", AMG_ABI_MAJOR + 1,
                                                    AMG_ABI_MINOR));
        write_cache(j);
        json_decref(j);
        scan_ok(&c, &s);
        ck_assert_uint_eq(c.cache_misses, 1);
        expect_median(&c.s[0], p);
        amg_catalog_free(&c);
    }

    /* a record that does not read back is a miss, not an error */
    j = read_cache();
    json_object_set_new(json_array_get(json_object_get(json_object_get(
        json_object_get(j, "plugins"), p), "strategies"), 0), "caps",
        json_string("lots"));
    write_cache(j);
    json_decref(j);
    scan_ok(&c, &s);
    ck_assert_uint_eq(c.cache_misses, 1);
    expect_median(&c.s[0], p);
    amg_catalog_free(&c);

    /* a record whose id the loader would never accept is not trusted */
    j = read_cache();
    json_object_set_new(json_array_get(json_object_get(json_object_get(
        json_object_get(j, "plugins"), p), "strategies"), 0), "id",
        json_string("Bad Id"));
    write_cache(j);
    json_decref(j);
    scan_ok(&c, &s);
    ck_assert_uint_eq(c.cache_misses, 1);
    ck_assert_str_eq(c.s[0].id, "median");
    amg_catalog_free(&c);
    free(p);
    free(d);
}
END_TEST

START_TEST(cache_unwritable_or_disabled)
{
    char *d = subdir("d", 0755);
    char *p = example_plugin(d, "median.so");
    char *blocker = tu_write(scratch, "file", "x", 1);
    char cache[PATH_MAX + 32];
    const char *files[] = { p };
    amg_plugin_search s = search_of(files, 1, NULL, 0);
    amg_catalog c;
    int k;

    /* the cache's folder cannot be made: the scan still works */
    snprintf(cache, sizeof(cache), "%s/sub/cache.json", blocker);
    ck_assert_int_eq(setenv("AMALGAM_PLUGIN_CACHE", cache, 1), 0);
    for (k = 0; k < 2; k++) {
        scan_ok(&c, &s);
        ck_assert_uint_eq(c.cache_misses, 1);
        expect_median(&c.s[0], p);
        amg_catalog_free(&c);
    }
    /* set but empty: no cache at all */
    ck_assert_int_eq(setenv("AMALGAM_PLUGIN_CACHE", "", 1), 0);
    ck_assert_ptr_null(amg_catalog_cache_path());
    for (k = 0; k < 2; k++) {
        scan_ok(&c, &s);
        ck_assert_uint_eq(c.cache_misses, 1);
        amg_catalog_free(&c);
    }
    free(blocker);
    free(p);
    free(d);
}
END_TEST

START_TEST(cache_path_rules)
{
    char *path;

    ck_assert_int_eq(setenv("AMALGAM_PLUGIN_CACHE", "/c/x.json", 1), 0);
    ck_assert_int_eq(setenv("XDG_CACHE_HOME", "/xdg", 1), 0);
    ck_assert_int_eq(setenv("HOME", "/home/u", 1), 0);
    path = amg_catalog_cache_path();
    ck_assert_str_eq(path, "/c/x.json");
    free(path);
    unsetenv("AMALGAM_PLUGIN_CACHE");
    path = amg_catalog_cache_path();
    ck_assert_str_eq(path, "/xdg/amalgam/plugin-cache.json");
    free(path);
    ck_assert_int_eq(setenv("XDG_CACHE_HOME", "rel", 1), 0);
    path = amg_catalog_cache_path();
    ck_assert_str_eq(path, "/home/u/.cache/amalgam/plugin-cache.json");
    free(path);
}
END_TEST

START_TEST(cache_drops_records_of_vanished_files)
{
    char *d = subdir("d", 0755);
    char *p = example_plugin(d, "median.so");
    char *q = example_plugin(d, "other.so");
    const char *files[] = { p };
    const char *both[] = { p, q };
    amg_plugin_search s = search_of(both, 1, NULL, 0);
    amg_catalog c;
    json_t *j;

    /* two copies of one plugin conflict, so cache them one at a time */
    scan_ok(&c, &s);
    amg_catalog_free(&c);
    s = search_of(both + 1, 1, NULL, 0);
    scan_ok(&c, &s);
    amg_catalog_free(&c);
    j = read_cache();
    ck_assert_uint_eq(json_object_size(json_object_get(j, "plugins")), 2);
    json_decref(j);

    /* a record of a file outside this scan stays; one of a deleted file
     * goes */
    s = search_of(files, 1, NULL, 0);
    scan_ok(&c, &s);
    ck_assert_uint_eq(c.cache_hits, 1);
    amg_catalog_free(&c);
    j = read_cache();
    ck_assert_uint_eq(json_object_size(json_object_get(j, "plugins")), 2);
    json_decref(j);
    ck_assert_int_eq(unlink(q), 0);
    scan_ok(&c, &s);
    ck_assert_uint_eq(c.cache_hits, 1);
    amg_catalog_free(&c);
    j = read_cache();
    ck_assert_uint_eq(json_object_size(json_object_get(j, "plugins")), 1);
    ck_assert_ptr_nonnull(json_object_get(json_object_get(j, "plugins"), p));
    json_decref(j);
    free(p);
    free(q);
    free(d);
}
END_TEST

START_TEST(duplicate_id_across_files)
{
    char *d = subdir("d", 0755);
    char *a = example_plugin(d, "a.so"), *b = example_plugin(d, "b.so");
    const char *dirs[] = { d };
    amg_plugin_search s = search_of(NULL, 0, dirs, 1);
    amg_catalog c;
    amg_err e;
    int k;

    /* first both are loaded (the loader sees the clash), then a comes from
     * the cache and b is loaded (the catalog sees it): either way the
     * message names both files */
    for (k = 0; k < 2; k++) {
        amg_err_clear(&e);
        ck_assert_int_ne(amg_catalog_scan(&c, &s, &e), AMG_OK);
        ck_assert_msg(strstr(e.msg, "'median'") && strstr(e.msg, a) &&
                      strstr(e.msg, b), "scan %d: %s", k, e.msg);
        ck_assert_uint_eq(c.n, 0);
        ck_assert_uint_eq(c.cache_hits, (size_t)k);
    }
    free(a);
    free(b);
    free(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("catalog");
    TCase *path = tcase_create("path"), *cat = tcase_create("catalog");

    tcase_add_checked_fixture(path, setup, teardown);
    tcase_add_checked_fixture(cat, setup, teardown);
    tcase_add_test(path, discover_order_and_filtering);
    tcase_add_test(path, discover_explicit_file_listed_once);
    tcase_add_test(path, discover_explicit_must_exist);
    tcase_add_test(path, relative_env_dirs_refused);
    tcase_add_test(path, search_order_and_isolation);
    tcase_add_test(path, perms_refuse_writable_file_and_dir);
    tcase_add_test(cat, scan_refuses_insecure_even_when_cached);
    tcase_add_test(cat, scan_example_plugin);
    tcase_add_test(cat, scan_test_plugin_then_cache);
    tcase_add_test(cat, scan_nothing_found);
    tcase_add_test(cat, scan_broken_plugin_fails_with_its_message);
    tcase_add_test(cat, cache_hit_then_invalidated_by_mtime);
    tcase_add_test(cat, cache_corrupt_or_foreign_is_rebuilt);
    tcase_add_test(cat, cache_unwritable_or_disabled);
    tcase_add_test(cat, cache_path_rules);
    tcase_add_test(cat, cache_drops_records_of_vanished_files);
    tcase_add_test(cat, duplicate_id_across_files);
    suite_add_tcase(s, path);
    suite_add_tcase(s, cat);
    return tu_run(s);
}
