/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_loader.c - the plugin loader against real shared objects: the good
 * test plugin loaded and its strategies run through the real host api and
 * CPU kernels, every deliberately broken plugin refused with its own
 * message and nothing registered, file-level failures (not a shared object,
 * missing, insecure), duplicates; descriptor validation on hand-made
 * descriptors; and the host services table itself.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctx.h"
#include "kernels_cpu.h"
#include "params.h"
#include "plugin_loader.h"
#include "tensor_mem.h"
#include "testutil.h"
#include "util.h"

static char path_buf[4096];

/* $TEST_PLUGIN_DIR/name (make check sets it to the built .libs). */
static const char *test_plugin(const char *name)
{
    const char *dir = getenv("TEST_PLUGIN_DIR");

    ck_assert_msg(dir && *dir,
                  "TEST_PLUGIN_DIR is not set: run via make check");
    snprintf(path_buf, sizeof(path_buf), "%s/%s", dir, name);
    return path_buf;
}

static void assert_has(const char *msg, const char *want)
{
    ck_assert_msg(strstr(msg, want) != NULL, "message '%s' lacks '%s'", msg,
                  want);
}

static void assert_empty(const amg_plugins *ps)
{
    ck_assert_uint_eq(ps->n_modules, 0);
    ck_assert_uint_eq(ps->n_strategies, 0);
}

/* ---- the good plugin, run for real ---- */

static amg_tensor *f32(const float *v, int64_t rows, int64_t cols)
{
    int64_t shape[2] = { rows, cols };
    amg_tensor *t = NULL;
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_tensor_alloc(&t, amg_dl_make(AMG_DL_FLOAT, 32), 2,
                                      shape, NULL, &err),
                     AMG_OK);
    if (v)
        memcpy(amg_tensor_data(t), v, (size_t)(rows * cols) * sizeof(float));
    return t;
}

static void assert_out(const amg_tensor *t, const float *want, size_t n)
{
    const float *got = amg_tensor_data(t);
    size_t i;

    for (i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "element %zu: got %g, want %g", i,
                      (double)got[i], (double)want[i]);
}

typedef struct merge_fixture {
    amg_tensor *x[2], *out;
    amg_params global, per_model[2];
    const amg_params *views[2];
    amg_merge_call call;
    amg_ctx ctx;
} merge_fixture;

static void fixture_init(merge_fixture *f, const amg_strategy *s)
{
    static const float x0[4] = { 1, 2, 3, 4 }, x1[4] = { 3, 6, 9, 12 };
    const amg_host_api *h = amg_host_api_get();
    amg_device cpu = { AMG_DEVICE_CPU, 0 };
    amg_err err;
    int j;

    memset(f, 0, sizeof(*f));
    amg_err_clear(&err);
    f->x[0] = f32(x0, 2, 2);
    f->x[1] = f32(x1, 2, 2);
    f->out = f32(NULL, 2, 2);
    ck_assert_int_eq(amg_params_init(&f->global, s, AMG_SCOPE_GLOBAL, &err),
                     AMG_OK);
    for (j = 0; j < 2; j++) {
        ck_assert_int_eq(amg_params_init(&f->per_model[j], s,
                                         AMG_SCOPE_PER_MODEL, &err),
                         AMG_OK);
        f->views[j] = &f->per_model[j];
    }
    amg_ctx_init(&f->ctx, s->id, "model.layers.0.mlp.up_proj.weight", NULL);
    f->call.struct_size = (uint32_t)sizeof(f->call);
    f->call.n_inputs = 2;
    f->call.host = h;
    f->call.k = h->kernels(&f->ctx, cpu);
    f->call.tensor_name = "model.layers.0.mlp.up_proj.weight";
    f->call.layer_index = 0;
    f->call.n_layers = 1;
    f->call.inputs = (const amg_tensor *const *)f->x;
    f->call.input_params = f->views;
    f->call.params = &f->global;
    f->call.out = f->out;
    f->call.row_end = f->call.rows_total = 2;
}

static void fixture_free(merge_fixture *f)
{
    int j;

    amg_ctx_release(&f->ctx);
    amg_params_free(&f->global);
    for (j = 0; j < 2; j++) {
        amg_params_free(&f->per_model[j]);
        amg_tensor_free(f->x[j]);
    }
    amg_tensor_free(f->out);
}

START_TEST(good_loads_and_merges)
{
    const amg_plugin_entry *mean, *first;
    amg_plugins ps = { 0 };
    merge_fixture f;
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_plugins_load(&ps, test_plugin("good.so"), 0, &err),
                     AMG_OK);
    ck_assert_uint_eq(ps.n_modules, 1);
    ck_assert_uint_eq(ps.n_strategies, 2);
    ck_assert_str_eq(ps.modules[0].mod->name, "good");
    ck_assert_str_eq(ps.modules[0].path, test_plugin("good.so"));
    mean = amg_plugins_find(&ps, "good_mean");
    first = amg_plugins_find(&ps, "good_first");
    ck_assert_ptr_nonnull(mean);
    ck_assert_ptr_nonnull(first);
    ck_assert_uint_eq(mean->module, 0);
    ck_assert_ptr_null(amg_plugins_find(&ps, "good"));

    /* defaults (weight 1, mode plain): the mean, (x0 + x1) / 2 */
    fixture_init(&f, mean->s);
    ck_assert_int_eq(mean->s->merge(NULL, &f.ctx, &f.call), AMG_OK);
    assert_out(f.out, (const float[]){ 2, 4, 6, 8 }, 4);

    /* weights 1 and 3, plain: 0.5 x0 + 1.5 x1 */
    ck_assert_int_eq(amg_params_set_f64(&f.per_model[1], "weight", 3.0, &err),
                     AMG_OK);
    ck_assert_int_eq(mean->s->merge(NULL, &f.ctx, &f.call), AMG_OK);
    assert_out(f.out, (const float[]){ 5, 10, 15, 20 }, 4);

    /* scaled: 0.25 x0 + 0.75 x1 */
    ck_assert_int_eq(amg_params_set_str(&f.global, "mode", "scaled", &err),
                     AMG_OK);
    ck_assert_int_eq(mean->s->merge(NULL, &f.ctx, &f.call), AMG_OK);
    assert_out(f.out, (const float[]){ 2.5f, 5, 7.5f, 10 }, 4);

    /* a view without the per-model value: the plugin's failure, recorded */
    f.views[1] = &f.global;
    ck_assert_int_eq(mean->s->merge(NULL, &f.ctx, &f.call), AMG_ENOTFOUND);
    ck_assert_str_eq(f.ctx.err.msg, "cannot read 'weight' of model 1");
    fixture_free(&f);

    fixture_init(&f, first->s);
    ck_assert_int_eq(first->s->merge(NULL, &f.ctx, &f.call), AMG_OK);
    assert_out(f.out, (const float[]){ 1, 2, 3, 4 }, 4);
    fixture_free(&f);
    amg_plugins_release(&ps);
    assert_empty(&ps);
}
END_TEST

/* ---- each broken plugin, refused for its own reason ---- */

static const struct {
    const char *file, *want;
} broken[] = {
    { "bad_magic.so", "has bad module magic 0xdeadbeef (expected 0x31474d41)" },
    { "abi_major.so", "plugin ABI 1.x, this amalgam speaks 0.x: rebuild the "
                      "plugin against this SDK" },
    { "abi_minor_new.so", "built for ABI 0.2, newer than this amalgam's 0.1: "
                          "upgrade amalgam" },
    { "struct_small.so", "module descriptor is too small" },
    { "build_mismatch.so", NULL }, /* depends on the pointer size: below */
    { "init_fail.so", "init failed: needs a frobnicator, and none is "
                      "attached" },
    { "no_entry.so", "is not an amalgam plugin: no amg_plugin_entry symbol" },
    { "missing_merge.so", "strategy 'broken_one' has no merge function" },
    { "bad_id.so", "strategy id 'Bad-Id' is invalid" },
    { "bad_param.so", "strategy 'broken_one': bad default for parameter "
                      "'density': 'density' must be in [0, 1], got 1.5" },
    { "unresolved.so", "undefined symbol: amg_broken_no_such_function" },
};

START_TEST(broken_refused)
{
    const char *path = test_plugin(broken[_i].file);
    char want[256];
    amg_plugins ps = { 0 };
    amg_err err;
    int rc;

    if (broken[_i].want) {
        snprintf(want, sizeof(want), "%s", broken[_i].want);
    } else {
        unsigned host = (unsigned)sizeof(void *);
        snprintf(want, sizeof(want),
                 "build configuration differs in ptr_bytes (plugin %u, host "
                 "%u)",
                 host == 8 ? 4u : 8u, host);
    }
    amg_err_clear(&err);
    rc = amg_plugins_load(&ps, path, 0, &err);
    ck_assert_int_ne(rc, AMG_OK);
    ck_assert_int_eq(rc, err.status);
    assert_has(err.msg, want);
    assert_has(err.msg, path); /* every message names the file */
    assert_empty(&ps);
    amg_plugins_release(&ps);
}
END_TEST

START_TEST(dup_id_names_both_files)
{
    char good[4096], want[9000];
    amg_plugins ps = { 0 };
    amg_err err;

    amg_err_clear(&err);
    snprintf(good, sizeof(good), "%s", test_plugin("good.so"));
    ck_assert_int_eq(amg_plugins_load(&ps, good, 0, &err), AMG_OK);
    ck_assert_int_eq(amg_plugins_load(&ps, test_plugin("dup_id.so"), 0, &err),
                     AMG_EEXIST);
    snprintf(want, sizeof(want),
             "strategy 'good_mean' in '%s' is already provided by '%s'",
             test_plugin("dup_id.so"), good);
    ck_assert_str_eq(err.msg, want);
    /* the refused file added nothing; good.so is untouched */
    ck_assert_uint_eq(ps.n_modules, 1);
    ck_assert_uint_eq(ps.n_strategies, 2);
    ck_assert_uint_eq(amg_plugins_find(&ps, "good_mean")->module, 0);
    amg_plugins_release(&ps);

    /* on its own, the same file is a valid plugin */
    ck_assert_int_eq(amg_plugins_load(&ps, test_plugin("dup_id.so"), 0, &err),
                     AMG_OK);
    ck_assert_uint_eq(ps.n_strategies, 1);
    amg_plugins_release(&ps);
}
END_TEST

/* ---- file-level failures ---- */

START_TEST(not_a_shared_object)
{
    char *dir = tu_mkdtemp();
    char *text = tu_write(dir, "x.so", "hello, world\n", 13);
    char *empty = tu_write(dir, "empty.so", "", 0);
    amg_plugins ps = { 0 };
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_plugins_load(&ps, text, 0, &err), AMG_EPLUGIN);
    assert_has(err.msg, "cannot load '");
    assert_has(err.msg, "x.so': not a shared object");
    ck_assert_int_eq(amg_plugins_load(&ps, empty, 0, &err), AMG_EPLUGIN);
    assert_has(err.msg, "empty.so': not a shared object");
    /* a directory is not a plugin either */
    ck_assert_int_eq(amg_plugins_load(&ps, dir, 0, &err), AMG_EPLUGIN);
    assert_has(err.msg, "not a regular file");
    assert_empty(&ps);
    free(text);
    free(empty);
    tu_rmtree(dir);
}
END_TEST

START_TEST(missing_file)
{
    amg_plugins ps = { 0 };
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_plugins_load(&ps, "/nonexistent-amg/none.so", 0,
                                      &err),
                     AMG_ENOTFOUND);
    ck_assert_str_eq(err.msg, "cannot load '/nonexistent-amg/none.so': No "
                              "such file or directory");
    assert_empty(&ps);
}
END_TEST

static char *copy_good(const char *dir)
{
    char *data = NULL, *dst;
    size_t len = 0;
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_read_file(test_plugin("good.so"), 64u << 20, &data,
                                   &len, &err),
                     AMG_OK);
    dst = tu_write(dir, "good-copy.so", data, len);
    free(data);
    return dst;
}

START_TEST(insecure_refused_unless_allowed)
{
    char *dir = tu_mkdtemp();
    char *so = copy_good(dir);
    amg_plugins ps = { 0 };
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(chmod(so, 0664), 0);
    ck_assert_int_eq(amg_plugins_load(&ps, so, 0, &err), AMG_EPLUGIN);
    assert_has(err.msg, so);
    assert_has(err.msg, "writable by others");
    assert_empty(&ps);
    ck_assert_int_eq(amg_plugins_load(&ps, so, AMG_LOAD_ALLOW_INSECURE, &err),
                     AMG_OK);
    ck_assert_uint_eq(ps.n_strategies, 2);
    amg_plugins_release(&ps);

    /* a safe file in a directory anyone can write to is no safer */
    ck_assert_int_eq(chmod(so, 0644), 0);
    ck_assert_int_eq(chmod(dir, 0777), 0);
    ck_assert_int_eq(amg_plugins_load(&ps, so, 0, &err), AMG_EPLUGIN);
    assert_has(err.msg, "writable by others");
    assert_empty(&ps);
    ck_assert_int_eq(amg_plugins_load(&ps, so, AMG_LOAD_ALLOW_INSECURE, &err),
                     AMG_OK);
    amg_plugins_release(&ps);
    ck_assert_int_eq(chmod(dir, 0700), 0);
    free(so);
    tu_rmtree(dir);
}
END_TEST

START_TEST(same_file_twice)
{
    char other[4096];
    amg_plugins ps = { 0 };
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_plugins_load(&ps, test_plugin("good.so"), 0, &err),
                     AMG_OK);
    ck_assert_int_eq(amg_plugins_load(&ps, test_plugin("good.so"), 0, &err),
                     AMG_OK);
    /* another spelling of the same file: same device and inode */
    snprintf(other, sizeof(other), "%s/./good.so", getenv("TEST_PLUGIN_DIR"));
    ck_assert_int_eq(amg_plugins_load(&ps, other, 0, &err), AMG_OK);
    ck_assert_uint_eq(ps.n_modules, 1);
    ck_assert_uint_eq(ps.n_strategies, 2);
    amg_plugins_release(&ps);
}
END_TEST

/* A bare file name means that file in the current directory, never a
 * search of the library path. */
START_TEST(bare_name_is_the_file)
{
    amg_plugins ps = { 0 };
    amg_err err;
    int cwd = open(".", O_RDONLY | O_DIRECTORY);

    ck_assert_int_ge(cwd, 0);
    ck_assert_int_eq(chdir(getenv("TEST_PLUGIN_DIR")), 0);
    amg_err_clear(&err);
    ck_assert_int_eq(amg_plugins_load(&ps, "good.so", 0, &err), AMG_OK);
    ck_assert_uint_eq(ps.n_strategies, 2);
    amg_plugins_release(&ps);
    ck_assert_int_eq(fchdir(cwd), 0);
    close(cwd);
}
END_TEST

START_TEST(example_plugin_loads)
{
    const char *dir = getenv("EXAMPLE_PLUGIN_DIR");
    const amg_plugin_entry *med;
    char path[4096];
    amg_plugins ps = { 0 };
    merge_fixture f;
    amg_tensor *x2, *base;
    const amg_tensor *ins[3];
    const amg_params *views[3];
    amg_params pm2;
    amg_err err;

    ck_assert_msg(dir && *dir, "EXAMPLE_PLUGIN_DIR is not set");
    snprintf(path, sizeof(path), "%s/median.so", dir);
    amg_err_clear(&err);
    ck_assert_int_eq(amg_plugins_load(&ps, path, 0, &err), AMG_OK);
    ck_assert_uint_eq(ps.n_modules, 1);
    med = amg_plugins_find(&ps, "median");
    ck_assert_ptr_nonnull(med);
    ck_assert_int_eq(amg_module_validate(ps.modules[0].mod, path, &err),
                     AMG_OK);

    /* three inputs: the middle value per element, worked by hand:
     * x0 = {1,2,3,4}, x1 = {3,6,9,12}, x2 = {2,-1,10,4} -> {2,2,9,4} */
    fixture_init(&f, med->s);
    x2 = f32((const float[]){ 2, -1, 10, 4 }, 2, 2);
    ck_assert_int_eq(amg_params_init(&pm2, med->s, AMG_SCOPE_PER_MODEL, &err),
                     AMG_OK);
    ins[0] = f.x[0];
    ins[1] = f.x[1];
    ins[2] = x2;
    views[0] = f.views[0];
    views[1] = f.views[1];
    views[2] = &pm2;
    f.call.n_inputs = 3;
    f.call.inputs = ins;
    f.call.input_params = views;
    ck_assert_int_eq(med->s->merge(NULL, &f.ctx, &f.call), AMG_OK);
    assert_out(f.out, (const float[]){ 2, 2, 9, 4 }, 4);

    /* two inputs: the mean of the two middle values, (x0 + x1) / 2 */
    f.call.n_inputs = 2;
    ck_assert_int_eq(med->s->merge(NULL, &f.ctx, &f.call), AMG_OK);
    assert_out(f.out, (const float[]){ 2, 4, 6, 8 }, 4);

    /* include_base adds the base as a voter: median of x0, x1, base */
    base = f32((const float[]){ 0, 100, 5, 4 }, 2, 2);
    f.call.base = base;
    ck_assert_int_eq(amg_params_set_bool(&f.global, "include_base", 1, &err),
                     AMG_OK);
    ck_assert_int_eq(med->s->merge(NULL, &f.ctx, &f.call), AMG_OK);
    assert_out(f.out, (const float[]){ 1, 6, 5, 4 }, 4);

    /* ... and without a base that is an error, not a guess */
    f.call.base = NULL;
    ck_assert_int_eq(med->s->merge(NULL, &f.ctx, &f.call), AMG_EINVAL);
    ck_assert_ptr_nonnull(strstr(f.ctx.err.msg, "include_base"));

    amg_params_free(&pm2);
    amg_tensor_free(x2);
    amg_tensor_free(base);
    fixture_free(&f);
    amg_plugins_release(&ps);
}
END_TEST

/* ---- amg_module_validate on hand-made descriptors ---- */

static int32_t nop_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call)
{
    (void)inst;
    (void)ctx;
    (void)call;
    return AMG_OK;
}

static int32_t nop_reduce(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                          void *stats)
{
    (void)inst;
    (void)ctx;
    (void)call;
    (void)stats;
    return AMG_OK;
}

static int32_t nop_apply(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                         void *stats)
{
    (void)inst;
    (void)ctx;
    (void)call;
    (void)stats;
    return AMG_OK;
}

typedef struct desc {
    amg_module m;
    amg_strategy s[2];
    const amg_strategy *list[2];
    amg_param_spec p[2];
} desc;

static const char *const abc[] = { "a", "b", "c", NULL };
static const char *const no_choices[] = { NULL };

/* A valid module: strategies "alpha" (with parameters "x" and "mode") and
 * "beta". Tests break one thing at a time. */
static void desc_init(desc *d)
{
    static const amg_module head = { AMG_MODULE_HEAD };
    int i;

    memset(d, 0, sizeof(*d));
    d->m = head;
    d->m.name = "hand";
    d->m.version = "1";
    for (i = 0; i < 2; i++) {
        d->s[i].struct_size = (uint32_t)sizeof(amg_strategy);
        d->s[i].caps = AMG_CAP_CPU;
        d->s[i].min_inputs = 1;
        d->s[i].merge = nop_merge;
        d->list[i] = &d->s[i];
        d->p[i].struct_size = (uint32_t)sizeof(amg_param_spec);
    }
    d->s[0].id = "alpha";
    d->s[1].id = "beta";
    d->s[0].n_params = 2;
    d->s[0].params = d->p;
    d->p[0].type = AMG_PARAM_F64;
    d->p[0].name = "x";
    d->p[0].flags = AMG_PARAM_HAS_MIN | AMG_PARAM_HAS_MAX;
    d->p[0].min = 0;
    d->p[0].max = 1;
    d->p[0].def = 1;
    d->p[1].type = AMG_PARAM_STR;
    d->p[1].scope = AMG_SCOPE_PER_MODEL;
    d->p[1].name = "mode";
    d->p[1].def_str = "b";
    d->p[1].choices = abc;
    d->m.n_strategies = 2;
    d->m.strategies = d->list;
}

static void refused(const desc *d, const char *want)
{
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_module_validate(&d->m, "hand.so", &err), AMG_EPLUGIN);
    assert_has(err.msg, "'hand.so'");
    assert_has(err.msg, want);
}

START_TEST(validate_module_head)
{
    amg_err err;
    desc d;

    desc_init(&d);
    amg_err_clear(&err);
    ck_assert_int_eq(amg_module_validate(&d.m, "hand.so", &err), AMG_OK);
    ck_assert_int_eq(amg_module_validate(NULL, "hand.so", &err), AMG_EPLUGIN);
    assert_has(err.msg, "offers no module for ABI 0");
    d.m.struct_size = 4; /* not even the magic fits */
    refused(&d, "module descriptor is too small (4 bytes");
    desc_init(&d);
    d.m.build.tensor_bytes += 8;
    refused(&d, "build configuration differs in tensor_bytes");
    desc_init(&d);
    d.m.build.little_endian ^= 1;
    refused(&d, "differs in little_endian");
    desc_init(&d);
    d.m.name = NULL;
    refused(&d, "module has no name");
    desc_init(&d);
    d.m.version = NULL;
    refused(&d, "module 'hand' has no version");
    /* a plugin built for an older minor keeps working */
    desc_init(&d);
    d.m.abi_minor = 0;
    ck_assert_int_eq(amg_module_validate(&d.m, "hand.so", &err), AMG_OK);
    d.m.abi_minor = AMG_ABI_MINOR + 1;
    refused(&d, "built for ABI 0.2, newer than this amalgam's 0.1");
    d.m.abi_minor = AMG_ABI_MINOR;
    d.m.abi_major = AMG_ABI_MAJOR + 1;
    refused(&d, "plugin ABI 1.x, this amalgam speaks 0.x");
}
END_TEST

START_TEST(validate_strategies)
{
    desc d;

    desc_init(&d);
    d.m.strategies = NULL;
    refused(&d, "lists 2 strategies but no strategy table");
    desc_init(&d);
    d.list[1] = NULL;
    refused(&d, "strategy 1 is NULL");
    desc_init(&d);
    d.s[1].struct_size = 16;
    refused(&d, "strategy descriptor is too small (16 bytes");
    desc_init(&d);
    d.s[1].id = "alpha";
    refused(&d, "strategy 'alpha' is listed twice");
    desc_init(&d);
    d.s[1].id = "9lives";
    refused(&d, "strategy id '9lives' is invalid");
    desc_init(&d);
    d.s[1].id = NULL;
    refused(&d, "strategy id '(null)' is invalid");
    desc_init(&d);
    /* 64 characters is the longest id; 65 is refused */
    d.s[1].id = "a123456789b123456789c123456789d123456789e123456789f123456789"
                "g123";
    ck_assert_int_eq(amg_module_validate(&d.m, "hand.so", NULL), AMG_OK);
    d.s[1].id = "a123456789b123456789c123456789d123456789e123456789f123456789"
                "g1234";
    refused(&d, "is invalid");
    desc_init(&d);
    d.s[1].caps = AMG_CAP_ELEMENTWISE;
    refused(&d, "strategy 'beta' runs on no device");
    desc_init(&d);
    d.s[1].caps = AMG_CAP_CUDA; /* CUDA alone is a device */
    ck_assert_int_eq(amg_module_validate(&d.m, "hand.so", NULL), AMG_OK);
    d.s[1].caps |= AMG_CAP_TWO_PASS;
    refused(&d, "'beta' is AMG_CAP_TWO_PASS but lacks reduce");
    d.s[1].reduce = nop_reduce;
    refused(&d, "lacks apply");
    d.s[1].apply = nop_apply;
    refused(&d, "lacks stats_bytes");
    d.s[1].stats_bytes = 8;
    ck_assert_int_eq(amg_module_validate(&d.m, "hand.so", NULL), AMG_OK);
    desc_init(&d);
    d.s[1].min_inputs = 3;
    d.s[1].max_inputs = 2;
    refused(&d, "'beta' takes at least 3 inputs but at most 2");
    d.s[1].max_inputs = 0; /* no limit */
    ck_assert_int_eq(amg_module_validate(&d.m, "hand.so", NULL), AMG_OK);
}
END_TEST

START_TEST(validate_params)
{
    desc d;

    desc_init(&d);
    d.s[0].params = NULL;
    refused(&d, "'alpha' lists 2 parameters but no schema");
    desc_init(&d);
    d.p[0].struct_size = 32;
    refused(&d, "parameter spec is too small (32 bytes");
    desc_init(&d);
    d.p[1].name = "Mode";
    refused(&d, "parameter 1 has invalid name 'Mode'");
    desc_init(&d);
    d.p[1].name = "x";
    refused(&d, "parameter 'x' is listed twice");
    desc_init(&d);
    d.p[0].type = 9;
    refused(&d, "parameter 'x' has unknown type 9");
    desc_init(&d);
    d.p[0].scope = 2;
    refused(&d, "parameter 'x' has unknown scope 2");
    desc_init(&d);
    d.p[0].min = 2;
    refused(&d, "parameter 'x' has an empty range (min 2, max 1)");
    desc_init(&d);
    d.p[0].min = 1;
    d.p[0].flags |= AMG_PARAM_MAX_EXCLUSIVE;
    refused(&d, "has an empty range (min 1, max 1)");
    desc_init(&d);
    d.p[0].def = 1.25;
    refused(&d, "bad default for parameter 'x': 'x' must be in [0, 1], "
                "got 1.25");
    /* a required parameter has no default to check */
    d.p[0].flags |= AMG_PARAM_REQUIRED;
    ck_assert_int_eq(amg_module_validate(&d.m, "hand.so", NULL), AMG_OK);
    desc_init(&d);
    d.p[0].type = AMG_PARAM_I64;
    d.p[0].def = 0.5;
    refused(&d, "'x' must be an integer, got 0.5");
    desc_init(&d);
    d.p[0].type = AMG_PARAM_BOOL;
    d.p[0].flags = 0;
    d.p[0].def = 2;
    refused(&d, "'x' must be true or false (0 or 1), got 2");
    desc_init(&d);
    d.p[1].def_str = "z";
    refused(&d, "bad default for parameter 'mode': 'mode' must be one of "
                "'a', 'b', 'c', got 'z'");
    desc_init(&d);
    d.p[1].choices = no_choices;
    refused(&d, "parameter 'mode' has an empty choices list");
    desc_init(&d);
    d.p[1].def_str = NULL; /* no default is fine */
    ck_assert_int_eq(amg_module_validate(&d.m, "hand.so", NULL), AMG_OK);
}
END_TEST

/* ---- the host services table ---- */

START_TEST(host_api_identity_and_memory)
{
    const amg_host_api *h = amg_host_api_get();
    amg_ctx ctx;
    void *p;

    ck_assert_uint_eq(h->struct_size, sizeof(amg_host_api));
    ck_assert_int_eq(h->abi_major, AMG_ABI_MAJOR);
    ck_assert_int_eq(h->abi_minor, AMG_ABI_MINOR);
    ck_assert_str_eq(h->host_name, "amalgam");
    ck_assert_str_eq(h->host_version, AMG_VERSION_STRING);
    amg_ctx_init(&ctx, "t", NULL, NULL);
    p = h->mem_alloc(&ctx, 10, 64);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 64, 0);
    memset(p, 0xab, 10);
    h->mem_free(&ctx, p);
    p = h->mem_alloc(&ctx, 3, 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 16, 0);
    h->mem_free(&ctx, p);
    p = h->mem_alloc(&ctx, 0, 0); /* still a real pointer */
    ck_assert_ptr_nonnull(p);
    h->mem_free(&ctx, p);
    ck_assert_ptr_null(h->mem_alloc(&ctx, 8, 24)); /* not a power of two */
    ck_assert_ptr_null(h->mem_alloc(&ctx, SIZE_MAX, 64));
    h->mem_free(&ctx, NULL);
    ck_assert_ptr_null(h->cuda_stream(&ctx));
    ck_assert_ptr_null(h->get_extension(&ctx, "amalgam.none/1"));
}
END_TEST

START_TEST(host_api_tensors)
{
    const amg_host_api *h = amg_host_api_get();
    amg_device cpu = { AMG_DEVICE_CPU, 0 }, cuda = { AMG_DEVICE_CUDA, 0 };
    int64_t shape[2] = { 3, 4 };
    amg_tensor *t = NULL, *u = NULL, *b = NULL;
    const uint16_t *bits;
    float *v;
    amg_ctx ctx;
    int i;

    amg_ctx_init(&ctx, "t", NULL, NULL);
    ck_assert_ptr_eq(h->kernels(&ctx, cpu), amg_kernels_cpu());
    ck_assert_int_eq(h->kernels(&ctx, cpu)->device_type, AMG_DEVICE_CPU);
    ck_assert_ptr_null(h->kernels(&ctx, cuda));

    ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_FLOAT, 32), 2,
                                   shape, cpu, &t),
                     AMG_OK);
    ck_assert_uint_eq(amg_tensor_numel(t), 12);
    ck_assert_int_eq(t->dl.device.type, AMG_DEVICE_CPU);
    ck_assert_ptr_null(t->name);
    v = amg_tensor_data(t);
    for (i = 0; i < 12; i++)
        v[i] = (float)i - 1.5f;
    t->elem_offset = 24;
    ck_assert_int_eq(h->tensor_new_like(&ctx, t, amg_dl_make(AMG_DL_BFLOAT,
                                                             16),
                                        &u),
                     AMG_OK);
    ck_assert_int_eq(u->dl.ndim, 2);
    ck_assert_int_eq(u->dl.shape[0], 3);
    ck_assert_int_eq(u->dl.shape[1], 4);
    ck_assert_uint_eq(u->elem_offset, 24);
    ck_assert_int_eq(u->dl.dtype.code, AMG_DL_BFLOAT);
    /* f32 -> bf16: -1.5 is 0xBFC0, -0.5 is 0xBF00, 0.5 is 0x3F00, 9.5 is
     * 0x4118 (all exact in bf16) */
    ck_assert_int_eq(h->tensor_copy(&ctx, u, t), AMG_OK);
    bits = amg_tensor_data(u);
    ck_assert_uint_eq(bits[0], 0xBFC0);
    ck_assert_uint_eq(bits[1], 0xBF00);
    ck_assert_uint_eq(bits[2], 0x3F00);
    ck_assert_uint_eq(bits[11], 0x4118);

    /* released early, released with the ctx, or never ours: all fine */
    h->tensor_release(&ctx, u);
    ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_BOOL, 8), 0, NULL,
                                   cpu, &b),
                     AMG_OK);
    ck_assert_uint_eq(amg_tensor_numel(b), 1);
    {
        amg_tensor stack_tensor;
        memset(&stack_tensor, 0, sizeof(stack_tensor));
        h->tensor_release(&ctx, &stack_tensor);
    }

    ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_FLOAT, 32), 2,
                                   shape, cuda, &u),
                     AMG_EDEVICE);
    ck_assert_ptr_null(u);
    ck_assert_str_eq(ctx.err.msg, "cuda tensors need a device run (--device "
                                  "cuda); this call runs on the cpu");
    ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_FLOAT, 32), -1,
                                   shape, cpu, &u),
                     AMG_EINVAL);
    amg_ctx_release(&ctx);
    ck_assert_ptr_null(ctx.temps);
}
END_TEST

START_TEST(host_api_fail_and_abort)
{
    const amg_host_api *h = amg_host_api_get();
    volatile sig_atomic_t flag = 0;
    amg_ctx ctx;

    amg_ctx_init(&ctx, "good_mean", "t", &flag);
    /* (h->fail): check.h defines a fail() macro */
    ck_assert_int_eq((h->fail)(&ctx, AMG_EUNSUPPORTED, "rank %d", 3),
                     AMG_EUNSUPPORTED);
    ck_assert_int_eq(ctx.err.status, AMG_EUNSUPPORTED);
    ck_assert_str_eq(ctx.err.msg, "rank 3");
    ck_assert_int_eq(h->should_abort(&ctx), 0);
    flag = 1;
    ck_assert_int_ne(h->should_abort(&ctx), 0);
    amg_ctx_init(&ctx, "x", NULL, NULL);
    ck_assert_int_eq(h->should_abort(&ctx), 0);
}
END_TEST

/* Lines go to stderr; capture it in a file for the test's duration. */
static char *capture_log(int with_env, const char *level_env)
{
    const amg_host_api *h = amg_host_api_get();
    char *dir = tu_mkdtemp(), *path, *out = NULL;
    int fd, saved;
    amg_ctx ctx;
    amg_err err;

    path = amg_path_join(dir, "stderr");
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    saved = dup(2);
    ck_assert_int_eq(dup2(fd, 2), 2);
    if (with_env)
        setenv("AMALGAM_LOG", level_env, 1);
    else
        unsetenv("AMALGAM_LOG");
    amg_ctx_init(&ctx, "good_mean", NULL, NULL);
    h->log(&ctx, AMG_LOG_ERROR, "e %d", 1);
    h->log(&ctx, AMG_LOG_WARN, "w %s", "2");
    h->log(&ctx, AMG_LOG_INFO, "i");
    h->log(&ctx, AMG_LOG_DEBUG, "d");
    h->log(NULL, AMG_LOG_WARN, "anonymous");
    fflush(stderr);
    ck_assert_int_eq(dup2(saved, 2), 2);
    close(saved);
    close(fd);
    amg_err_clear(&err);
    ck_assert_int_eq(amg_read_file(path, 4096, &out, NULL, &err), AMG_OK);
    free(path);
    tu_rmtree(dir);
    return out;
}

START_TEST(host_api_log)
{
    char *s = capture_log(0, NULL);

    ck_assert_str_eq(s, "amalgam: good_mean: e 1\namalgam: good_mean: w 2\n"
                        "amalgam: plugin: anonymous\n");
    free(s);
    s = capture_log(1, "info");
    ck_assert_str_eq(s, "amalgam: good_mean: e 1\namalgam: good_mean: w 2\n"
                        "amalgam: good_mean: i\namalgam: plugin: anonymous\n");
    free(s);
    s = capture_log(1, "debug");
    ck_assert_str_eq(s, "amalgam: good_mean: e 1\namalgam: good_mean: w 2\n"
                        "amalgam: good_mean: i\namalgam: good_mean: d\n"
                        "amalgam: plugin: anonymous\n");
    free(s);
    unsetenv("AMALGAM_LOG");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loader");
    TCase *load = tcase_create("load");
    TCase *validate = tcase_create("validate");
    TCase *host = tcase_create("host_api");

    tcase_add_test(load, good_loads_and_merges);
    tcase_add_loop_test(load, broken_refused, 0,
                        (int)(sizeof(broken) / sizeof(broken[0])));
    tcase_add_test(load, dup_id_names_both_files);
    tcase_add_test(load, not_a_shared_object);
    tcase_add_test(load, missing_file);
    tcase_add_test(load, insecure_refused_unless_allowed);
    tcase_add_test(load, same_file_twice);
    tcase_add_test(load, bare_name_is_the_file);
    tcase_add_test(load, example_plugin_loads);
    tcase_add_test(validate, validate_module_head);
    tcase_add_test(validate, validate_strategies);
    tcase_add_test(validate, validate_params);
    tcase_add_test(host, host_api_identity_and_memory);
    tcase_add_test(host, host_api_tensors);
    tcase_add_test(host, host_api_fail_and_abort);
    tcase_add_test(host, host_api_log);
    suite_add_tcase(s, load);
    suite_add_tcase(s, validate);
    suite_add_tcase(s, host);
    return tu_run(s);
}
