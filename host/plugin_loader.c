/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_loader.c - dlopen a strategy plugin and check everything it
 * declares before any strategy of it can be used.
 *
 * Order (amalgam/plugin.h): the module head (size, magic, ABI versions,
 * build block) is checked before init runs, so no code built for another
 * ABI ever runs past its entry function; the strategies are checked after
 * init, which may still be filling them in. Failures register nothing.
 */
#include "config.h"
#include "plugin_loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctx.h"
#include "params.h"
#include "plugin_path.h"
#include "util.h"

/* The members ABI 0.1 defines; reserved[] tails may be absent in a
 * descriptor only if nothing we read lies there. */
#define MODULE_MIN_SIZE offsetof(amg_module, reserved)
#define MODULE_HEAD_SIZE (offsetof(amg_module, magic) + sizeof(uint32_t))
#define STRATEGY_MIN_SIZE offsetof(amg_strategy, reserved)

/* Bounds on counts and names, so a corrupt descriptor (or the fuzz target)
 * cannot send a walk far past real data. */
#define MAX_ID_LEN 64
#define MAX_STRATEGIES 1024
#define MAX_PARAMS 1024
#define MAX_CHOICES 1024
/* The schema is walked with the plugin's own stride (params.c); a later
 * minor may grow a spec, but not past this, so a corrupt size cannot send
 * the walk gigabytes past the array. */
#define MAX_SPEC_SIZE 1024

/* ---- descriptor checks ---- */

/* [a-z][a-z0-9_]*, at most MAX_ID_LEN characters. */
static int valid_id(const char *s)
{
    size_t i;

    if (!s || !(s[0] >= 'a' && s[0] <= 'z'))
        return 0;
    for (i = 1; s[i]; i++) {
        char c = s[i];
        if (i >= MAX_ID_LEN ||
            !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

static const char *build_field_name(size_t i)
{
    static const char *const names[] = {
        "ptr_bytes", "size_t_bytes", "little_endian",
        "dltensor_bytes", "tensor_bytes", "cuda_stream_bytes",
    };
    return i < sizeof(names) / sizeof(names[0]) ? names[i] : "reserved";
}

static int check_build(const amg_build_config *b, const char *label,
                       amg_err *err)
{
    static const amg_build_config host = AMG_BUILD_CONFIG_INIT;
    uint32_t pv[sizeof(host) / sizeof(uint32_t)];
    uint32_t hv[sizeof(host) / sizeof(uint32_t)];
    size_t i;

    if (memcmp(b, &host, sizeof(host)) == 0)
        return AMG_OK;
    /* the block is all uint32_t, so it reads as an array */
    memcpy(pv, b, sizeof(pv));
    memcpy(hv, &host, sizeof(hv));
    for (i = 0; i < sizeof(pv) / sizeof(pv[0]) && pv[i] == hv[i]; i++)
        ;
    return amg_err_set(err, AMG_EPLUGIN,
                       "'%s' was built for another machine: build "
                       "configuration differs in %s (plugin %u, host %u): "
                       "rebuild the plugin with this compiler and SDK",
                       label, build_field_name(i), (unsigned)pv[i],
                       (unsigned)hv[i]);
}

static int too_small(const char *label, const char *what, uint32_t size,
                     size_t need, amg_err *err)
{
    return amg_err_set(err, AMG_EPLUGIN,
                       "'%s': %s is too small (%u bytes, ABI %d.%d needs at "
                       "least %zu)",
                       label, what, (unsigned)size, AMG_ABI_MAJOR,
                       AMG_ABI_MINOR, need);
}

/* Everything before init: identity, versions, layout, names. */
static int check_head(const amg_module *m, const char *label, amg_err *err)
{
    if (!m)
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s' offers no module for ABI %d", label,
                           AMG_ABI_MAJOR);
    if (m->struct_size < MODULE_HEAD_SIZE)
        return too_small(label, "module descriptor", m->struct_size,
                         MODULE_MIN_SIZE, err);
    if (m->magic != AMG_MODULE_MAGIC)
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s' has bad module magic 0x%08x (expected "
                           "0x%08x): not built with the amalgam SDK",
                           label, (unsigned)m->magic, AMG_MODULE_MAGIC);
    if (m->struct_size < MODULE_MIN_SIZE)
        return too_small(label, "module descriptor", m->struct_size,
                         MODULE_MIN_SIZE, err);
    if (m->abi_major != AMG_ABI_MAJOR)
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': plugin ABI %u.x, this amalgam speaks %d.x: "
                           "rebuild the plugin against this SDK",
                           label, (unsigned)m->abi_major, AMG_ABI_MAJOR);
    if (m->abi_minor > AMG_ABI_MINOR)
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': built for ABI %u.%u, newer than this "
                           "amalgam's %d.%d: upgrade amalgam",
                           label, (unsigned)m->abi_major,
                           (unsigned)m->abi_minor, AMG_ABI_MAJOR,
                           AMG_ABI_MINOR);
    if (check_build(&m->build, label, err))
        return AMG_EPLUGIN;
    if (!m->name || !m->name[0])
        return amg_err_set(err, AMG_EPLUGIN, "'%s': module has no name",
                           label);
    if (!m->version || !m->version[0])
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': module '%s' has no version", label,
                           m->name);
    return AMG_OK;
}

static int check_range_flags(const amg_param_spec *sp, const char *label,
                             const char *sid, amg_err *err)
{
    int has_min = (sp->flags & AMG_PARAM_HAS_MIN) != 0;
    int has_max = (sp->flags & AMG_PARAM_HAS_MAX) != 0;

    if ((has_min && isnan(sp->min)) || (has_max && isnan(sp->max)))
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': strategy '%s': parameter '%s' has a NaN "
                           "bound",
                           label, sid, sp->name);
    if (has_min && has_max &&
        (sp->min > sp->max ||
         (sp->min == sp->max &&
          (sp->flags & (AMG_PARAM_MIN_EXCLUSIVE | AMG_PARAM_MAX_EXCLUSIVE)))))
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': strategy '%s': parameter '%s' has an empty "
                           "range (min %g, max %g)",
                           label, sid, sp->name, sp->min, sp->max);
    return AMG_OK;
}

static int check_choices(const amg_param_spec *sp, const char *label,
                         const char *sid, amg_err *err)
{
    size_t i;

    if (sp->type != AMG_PARAM_STR || !sp->choices)
        return AMG_OK;
    for (i = 0; i < MAX_CHOICES && sp->choices[i]; i++)
        ;
    if (i == 0 || i == MAX_CHOICES)
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': strategy '%s': parameter '%s' has %s "
                           "choices list",
                           label, sid, sp->name,
                           i ? "an unterminated" : "an empty");
    return AMG_OK;
}

static int check_default(const amg_param_spec *sp, const char *label,
                         const char *sid, amg_err *err)
{
    amg_err why;
    int rc = AMG_OK;

    amg_err_clear(&why);
    if (sp->flags & AMG_PARAM_REQUIRED)
        return AMG_OK; /* no default to check */
    if (sp->type == AMG_PARAM_STR) {
        if (sp->def_str)
            rc = amg_param_check_choice(sp, sp->def_str, &why);
    } else {
        rc = amg_param_check_number(sp, sp->def, &why);
    }
    if (rc)
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': strategy '%s': bad default for parameter "
                           "'%s': %s",
                           label, sid, sp->name, why.msg);
    return AMG_OK;
}

static int check_param(const amg_strategy *s, size_t i, const char *label,
                       amg_err *err)
{
    const amg_param_spec *sp = amg_param_spec_at(s, i);
    size_t j;
    int rc;

    if (!valid_id(sp->name))
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': strategy '%s': parameter %zu has invalid "
                           "name '%s': names are [a-z][a-z0-9_]*, at most "
                           "%d characters",
                           label, s->id, i, sp->name ? sp->name : "(null)",
                           MAX_ID_LEN);
    for (j = 0; j < i; j++)
        if (strcmp(amg_param_spec_at(s, j)->name, sp->name) == 0)
            return amg_err_set(err, AMG_EPLUGIN,
                               "'%s': strategy '%s': parameter '%s' is "
                               "listed twice",
                               label, s->id, sp->name);
    if (sp->type < AMG_PARAM_F64 || sp->type > AMG_PARAM_STR)
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': strategy '%s': parameter '%s' has unknown "
                           "type %d",
                           label, s->id, sp->name, (int)sp->type);
    if (sp->scope != AMG_SCOPE_GLOBAL && sp->scope != AMG_SCOPE_PER_MODEL)
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': strategy '%s': parameter '%s' has unknown "
                           "scope %d",
                           label, s->id, sp->name, (int)sp->scope);
    if ((rc = check_range_flags(sp, label, s->id, err)) ||
        (rc = check_choices(sp, label, s->id, err)))
        return rc;
    return check_default(sp, label, s->id, err);
}

static int check_inputs_caps(const amg_strategy *s, const char *label,
                             amg_err *err)
{
    if (!s->merge)
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': strategy '%s' has no merge function", label,
                           s->id);
    if (!(s->caps & (AMG_CAP_CPU | AMG_CAP_CUDA)))
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': strategy '%s' runs on no device: caps "
                           "needs AMG_CAP_CPU or AMG_CAP_CUDA",
                           label, s->id);
    if ((s->caps & AMG_CAP_TWO_PASS) &&
        (!s->reduce || !s->apply || s->stats_bytes == 0))
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': strategy '%s' is AMG_CAP_TWO_PASS but lacks "
                           "%s",
                           label, s->id,
                           !s->reduce  ? "reduce"
                           : !s->apply ? "apply"
                                       : "stats_bytes");
    if (s->max_inputs && s->min_inputs > s->max_inputs)
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': strategy '%s' takes at least %u inputs but "
                           "at most %u",
                           label, s->id, (unsigned)s->min_inputs,
                           (unsigned)s->max_inputs);
    return AMG_OK;
}

static int check_strategy(const amg_strategy *s, size_t idx,
                          const char *label, amg_err *err)
{
    size_t i;
    int rc;

    if (!s)
        return amg_err_set(err, AMG_EPLUGIN, "'%s': strategy %zu is NULL",
                           label, idx);
    if (s->struct_size < STRATEGY_MIN_SIZE)
        return too_small(label, "strategy descriptor", s->struct_size,
                         STRATEGY_MIN_SIZE, err);
    if (!valid_id(s->id))
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': strategy id '%s' is invalid: ids are "
                           "[a-z][a-z0-9_]*, at most %d characters",
                           label, s->id ? s->id : "(null)", MAX_ID_LEN);
    if ((rc = check_inputs_caps(s, label, err)))
        return rc;
    if (s->n_params == 0)
        return AMG_OK;
    if (s->n_params > MAX_PARAMS || !s->params)
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': strategy '%s' lists %u parameters but %s",
                           label, s->id, (unsigned)s->n_params,
                           s->params ? "the limit is 1024" : "no schema");
    if (s->params[0].struct_size < AMG_PARAM_SPEC_MIN_SIZE)
        return too_small(label, "parameter spec", s->params[0].struct_size,
                         AMG_PARAM_SPEC_MIN_SIZE, err);
    /* an array's stride is always a multiple of its alignment */
    if (s->params[0].struct_size > MAX_SPEC_SIZE ||
        s->params[0].struct_size % _Alignof(amg_param_spec))
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': strategy '%s': parameter spec claims %u "
                           "bytes, not a multiple of %zu up to %d as an ABI "
                           "%d.x spec is: corrupt descriptor",
                           label, s->id, (unsigned)s->params[0].struct_size,
                           _Alignof(amg_param_spec), MAX_SPEC_SIZE,
                           AMG_ABI_MAJOR);
    for (i = 0; i < s->n_params; i++)
        if ((rc = check_param(s, i, label, err)))
            return rc;
    return AMG_OK;
}

/* Everything after init: the strategies and their schemas. */
static int check_body(const amg_module *m, const char *label, amg_err *err)
{
    size_t i, j;
    int rc;

    if (m->n_strategies > MAX_STRATEGIES ||
        (m->n_strategies && !m->strategies))
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': module '%s' lists %u strategies but %s",
                           label, m->name, (unsigned)m->n_strategies,
                           m->strategies ? "the limit is 1024"
                                         : "no strategy table");
    for (i = 0; i < m->n_strategies; i++) {
        if ((rc = check_strategy(m->strategies[i], i, label, err)))
            return rc;
        for (j = 0; j < i; j++)
            if (strcmp(m->strategies[j]->id, m->strategies[i]->id) == 0)
                return amg_err_set(err, AMG_EPLUGIN,
                                   "'%s': strategy '%s' is listed twice",
                                   label, m->strategies[i]->id);
    }
    return AMG_OK;
}

int amg_module_validate(const amg_module *m, const char *label, amg_err *err)
{
    int rc = check_head(m, label, err);

    return rc ? rc : check_body(m, label, err);
}

/* ---- loading ---- */

static int dl_failure(const char *path, const char *dlpath, amg_err *err)
{
    const char *e = dlerror();
    size_t n = strlen(dlpath);

    if (!e)
        e = "unknown dlopen error";
    /* glibc prefixes the file name, which our message already gives */
    if (strncmp(e, dlpath, n) == 0 && e[n] == ':' && e[n + 1] == ' ')
        e += n + 2;
    if (strstr(e, "invalid ELF header") || strstr(e, "file too short"))
        return amg_err_set(err, AMG_EPLUGIN,
                           "cannot load '%s': not a shared object (%s)", path,
                           e);
    return amg_err_set(err, AMG_EPLUGIN, "cannot load '%s': %s", path, e);
}

static int check_unique(const amg_plugins *ps, const amg_module *m,
                        const char *label, amg_err *err)
{
    size_t i;

    for (i = 0; i < m->n_strategies; i++) {
        const char *id = m->strategies[i]->id;
        const amg_plugin_entry *e = amg_plugins_find(ps, id);

        if (e)
            return amg_err_set(err, AMG_EEXIST,
                               "strategy '%s' in '%s' is already provided by "
                               "'%s'",
                               id, label, ps->modules[e->module].path);
    }
    return AMG_OK;
}

/* Grow both tables first, then commit: a failure leaves ps as it was. */
static int add_module(amg_plugins *ps, const char *path, void *dl,
                      const amg_module *m, const struct stat *st,
                      amg_err *err)
{
    size_t n = ps->n_strategies + m->n_strategies, i;
    amg_plugin_module *mods;
    char *p = amg_strdup(path);

    if (!p)
        goto oom;
    mods = realloc(ps->modules, (ps->n_modules + 1) * sizeof(*mods));
    if (!mods)
        goto oom;
    ps->modules = mods;
    if (n > ps->n_strategies) {
        amg_plugin_entry *ents = realloc(ps->strategies, n * sizeof(*ents));
        if (!ents)
            goto oom;
        ps->strategies = ents;
    }
    for (i = 0; i < m->n_strategies; i++) {
        ps->strategies[ps->n_strategies + i].s = m->strategies[i];
        ps->strategies[ps->n_strategies + i].module = ps->n_modules;
    }
    ps->n_strategies = n;
    mods[ps->n_modules].path = p;
    mods[ps->n_modules].dl = dl;
    mods[ps->n_modules].mod = m;
    mods[ps->n_modules].dev = st->st_dev;
    mods[ps->n_modules].ino = st->st_ino;
    ps->n_modules++;
    return AMG_OK;
oom:
    free(p);
    return amg_err_set(err, AMG_ENOMEM, "cannot register '%s': out of memory",
                       path);
}

static int run_init(const amg_module *m, const char *path, amg_err *err)
{
    amg_ctx ctx;
    int rc;

    amg_ctx_init(&ctx, m->name, NULL, NULL);
    rc = m->init(amg_host_api_get(), &ctx);
    amg_ctx_release(&ctx);
    if (rc == AMG_OK)
        return AMG_OK;
    return amg_err_set(err, AMG_EPLUGIN, "'%s': init failed: %s", path,
                       ctx.err.msg[0] ? ctx.err.msg : amg_status_str(rc));
}

static int find_entry(void *dl, const char *path, amg_plugin_entry_fn *entry,
                      amg_err *err)
{
    void *sym = dlsym(dl, AMG_PLUGIN_ENTRY_NAME);

    if (!sym)
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s' is not an amalgam plugin: no %s symbol",
                           path, AMG_PLUGIN_ENTRY_NAME);
    /* POSIX guarantees a data pointer from dlsym converts to a function
     * pointer; memcpy says so without a cast ISO C frowns on */
    memcpy(entry, &sym, sizeof(*entry));
    return AMG_OK;
}

int amg_plugins_load(amg_plugins *ps, const char *path, unsigned flags,
                     amg_err *err)
{
    const amg_module *m = NULL;
    amg_plugin_entry_fn entry = NULL;
    char *dlpath = NULL;
    void *dl = NULL;
    int inited = 0, rc;
    struct stat st;
    size_t i;

    if (stat(path, &st) != 0)
        return amg_err_errno(err, errno == ENOENT ? AMG_ENOTFOUND : AMG_EIO,
                             errno, "cannot load '%s'", path);
    if (!S_ISREG(st.st_mode))
        return amg_err_set(err, AMG_EPLUGIN,
                           "cannot load '%s': not a regular file", path);
    for (i = 0; i < ps->n_modules; i++)
        if (ps->modules[i].dev == st.st_dev && ps->modules[i].ino == st.st_ino)
            return AMG_OK;
    if (!(flags & AMG_LOAD_ALLOW_INSECURE) &&
        (rc = amg_plugin_check_perms(path, err)))
        return rc;
    /* without a slash dlopen would search the library path, not the file
     * the user named */
    dlpath = strchr(path, '/') ? amg_strdup(path) : amg_path_join(".", path);
    if (!dlpath)
        return amg_err_set(err, AMG_ENOMEM, "cannot load '%s': out of memory",
                           path);
    dlerror();
    dl = dlopen(dlpath, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        rc = dl_failure(path, dlpath, err);
        goto fail;
    }
    if ((rc = find_entry(dl, path, &entry, err)))
        goto fail;
    m = entry(AMG_ABI_MAJOR);
    if ((rc = check_head(m, path, err)))
        goto fail;
    if (m->init) {
        inited = 1;
        if ((rc = run_init(m, path, err)))
            goto fail;
    }
    if ((rc = check_body(m, path, err)) ||
        (rc = check_unique(ps, m, path, err)) ||
        (rc = add_module(ps, path, dl, m, &st, err)))
        goto fail;
    free(dlpath);
    return AMG_OK;
fail:
    /* once init ran, plugin code may have handed out pointers into the
     * object (atexit, threads): tear down with fini but keep it mapped */
    if (inited) {
        if (m->fini)
            m->fini();
    } else if (dl) {
        dlclose(dl);
    }
    free(dlpath);
    return rc;
}

const amg_plugin_entry *amg_plugins_find(const amg_plugins *ps,
                                         const char *id)
{
    size_t i;

    if (!ps || !id)
        return NULL;
    for (i = 0; i < ps->n_strategies; i++)
        if (strcmp(ps->strategies[i].s->id, id) == 0)
            return &ps->strategies[i];
    return NULL;
}

void amg_plugins_release(amg_plugins *ps)
{
    size_t i;

    if (!ps)
        return;
    /* last loaded, first finished, as with constructors and destructors */
    for (i = ps->n_modules; i-- > 0;) {
        if (ps->modules[i].mod->fini)
            ps->modules[i].mod->fini();
        free(ps->modules[i].path);
    }
    free(ps->modules);
    free(ps->strategies);
    memset(ps, 0, sizeof(*ps));
}
