/* SPDX-License-Identifier: Apache-2.0 */
/*
 * device.c - a device backend opened for one run (device.h).
 *
 * Decisions the header leaves open:
 *   - The backend is global state (open() selects the device), so one
 *     runtime is open at a time; a second amg_device_open while one is open
 *     is refused rather than silently sharing the device.
 *   - A backend whose open() ran is never dlclose()d: the CUDA runtime
 *     registers exit handlers inside it. Closing calls its close() only; a
 *     later open finds the same object (dlopen counts references).
 *   - The backend file passes the same permission check as plugins: code
 *     that others can replace is refused.
 */
#include "config.h"
#include "device.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin_loader.h"
#include "plugin_path.h"
#include "util.h"

#ifndef AMG_BACKENDDIR
#define AMG_BACKENDDIR "/usr/local/lib/amalgam/backends"
#endif

/* The most device ordinals "cuda:N" may name; far above any machine's
 * count, it only keeps garbage out of the backend. */
#define MAX_ORDINAL 4096

struct amg_device_rt {
    const amg_backend *be;
    int32_t type, ordinal;
    uint64_t budget;
    _Atomic uint64_t in_use;
};

static atomic_int rt_open;

int amg_device_parse(const char *spec, int32_t *type, int32_t *ordinal,
                     amg_err *err)
{
    const char *p;
    long n = 0;

    if (spec && strcmp(spec, "cpu") == 0) {
        *type = AMG_DEVICE_CPU;
        *ordinal = 0;
        return AMG_OK;
    }
    if (spec && strncmp(spec, "cuda", 4) == 0 &&
        (spec[4] == '\0' || spec[4] == ':')) {
        p = spec + 4;
        if (*p == ':') {
            /* digits only: no sign, no space, no empty ordinal */
            if (!p[1])
                goto bad;
            for (p++; *p; p++) {
                if (*p < '0' || *p > '9' || n >= MAX_ORDINAL)
                    goto bad;
                n = n * 10 + (*p - '0');
            }
            if (n >= MAX_ORDINAL)
                goto bad;
        }
        *type = AMG_DEVICE_CUDA;
        *ordinal = (int32_t)n;
        return AMG_OK;
    }
bad:
    return amg_err_set(err, AMG_EUSAGE,
                       "invalid device '%s': expected cpu, cuda or cuda:N "
                       "(N from 0 to %d)",
                       spec ? spec : "", MAX_ORDINAL - 1);
}

/* The build tree's backends when this is the build tree's amalgam, as
 * registry/plugin_path.c does for plugins: `./amalgam merge --device cuda`
 * from the build folder uses the backend built beside it. */
static const char *backend_dir(void)
{
#if defined(AMG_BUILD_BACKENDDIR)
    if (amg_is_build_exe())
        return AMG_BUILD_BACKENDDIR;
#endif
    return AMG_BACKENDDIR;
}

/* The backend file for name, malloc'd in *path. */
static int find_backend(const char *name, char **path, amg_err *err)
{
    const char *env = getenv("AMALGAM_BACKEND_PATH");
    char file[64];
    struct stat st;

    if (env && env[0]) {
        if (env[0] != '/')
            return amg_err_set(err, AMG_EINVAL,
                               "AMALGAM_BACKEND_PATH '%s' is not an absolute "
                               "path",
                               env);
        if (stat(env, &st) != 0)
            return amg_err_errno(err, AMG_ENOTFOUND, errno,
                                 "cannot load the %s backend '%s' (from "
                                 "AMALGAM_BACKEND_PATH)",
                                 name, env);
        *path = amg_strdup(env);
    } else {
        snprintf(file, sizeof(file), "%s.so", name);
        *path = amg_path_join(backend_dir(), file);
        if (*path && stat(*path, &st) != 0) {
#ifdef HAVE_CUDA
            int rc = amg_err_errno(err, AMG_ENOTFOUND, errno,
                                   "cannot find the %s backend '%s' "
                                   "(install amalgam with make install, or "
                                   "set AMALGAM_BACKEND_PATH)",
                                   name, *path);
#else
            int rc = amg_err_set(err, AMG_EUNSUPPORTED,
                                 "this amalgam was built without CUDA; "
                                 "rebuild with ./configure --with-cuda");
#endif
            free(*path);
            *path = NULL;
            return rc;
        }
    }
    if (!*path)
        return amg_err_set(err, AMG_ENOMEM,
                           "cannot load the %s backend: out of memory", name);
    if (!S_ISREG(st.st_mode)) {
        int rc = amg_err_set(err, AMG_EINVAL,
                             "cannot load the %s backend '%s': not a regular "
                             "file",
                             name, *path);
        free(*path);
        *path = NULL;
        return rc;
    }
    return AMG_OK;
}

/* Everything the host calls must be there: a NULL member would crash in
 * the middle of a merge instead of failing here. */
static const char *missing_member(const amg_backend *be)
{
#define NEED(m)                                                               \
    if (!be->m)                                                               \
        return #m;
    NEED(name)
    NEED(open)
    NEED(close)
    NEED(error_string)
    NEED(describe)
    NEED(mem_info)
    NEED(kernels)
    NEED(stream_create)
    NEED(stream_destroy)
    NEED(stream_sync)
    NEED(dev_alloc)
    NEED(dev_free)
    NEED(host_alloc)
    NEED(host_free)
    NEED(copy_h2d)
    NEED(copy_d2h)
    NEED(copy_d2d)
    NEED(memset_dev)
#undef NEED
    return NULL;
}

static int check_backend(const amg_backend *be, int32_t type,
                         const char *path, amg_err *err)
{
    const char *m;

    if (!be)
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s': %s returned no backend", path,
                           AMG_BACKEND_SYMBOL);
    if (be->struct_size != sizeof(amg_backend) || be->abi != AMG_BACKEND_ABI)
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s' is backend ABI %u (table of %u bytes); this "
                           "amalgam needs ABI %d (%zu bytes): rebuild both "
                           "from the same source",
                           path, (unsigned)be->abi,
                           (unsigned)be->struct_size, AMG_BACKEND_ABI,
                           sizeof(amg_backend));
    if (be->device_type != type)
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s' is a backend for device type %d, not %d",
                           path, (int)be->device_type, (int)type);
    if ((m = missing_member(be)))
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s' is an incomplete backend: %s is NULL", path,
                           m);
    return AMG_OK;
}

static int load_backend(const char *path, int32_t type,
                        const amg_backend **out, amg_err *err)
{
    amg_backend_entry_fn entry;
    const char *e;
    void *dl, *sym;
    int rc;

    dlerror();
    dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        e = dlerror();
        return amg_err_set(err, AMG_EPLUGIN, "cannot load '%s': %s", path,
                           e ? e : "unknown dlopen error");
    }
    sym = dlsym(dl, AMG_BACKEND_SYMBOL);
    if (!sym) {
        dlclose(dl);
        return amg_err_set(err, AMG_EPLUGIN,
                           "'%s' is not an amalgam device backend: no %s "
                           "symbol",
                           path, AMG_BACKEND_SYMBOL);
    }
    /* a data pointer from dlsym converts to a function pointer (POSIX) */
    memcpy(&entry, &sym, sizeof(entry));
    *out = entry();
    if ((rc = check_backend(*out, type, path, err))) {
        dlclose(dl);
        return rc;
    }
    return AMG_OK;
}

/* 90% of what is free: the rest is for the CUDA context's own growth and
 * for other processes' small allocations. */
static uint64_t default_budget(uint64_t free_bytes)
{
    return free_bytes / 10 * 9 + free_bytes % 10 * 9 / 10;
}

int amg_device_open(int32_t type, int32_t ordinal, uint64_t budget,
                    amg_device_rt **out, amg_err *err)
{
    const char *name = "cuda";
    const amg_backend *be = NULL;
    uint64_t free_bytes = 0, total = 0;
    amg_device_rt *rt;
    char *path = NULL;
    int rc, expect = 0;

    *out = NULL;
    if (type != AMG_DEVICE_CUDA)
        return amg_err_set(err, AMG_EINVAL,
                           "device type %d has no backend (only cuda does)",
                           (int)type);
    if (!atomic_compare_exchange_strong(&rt_open, &expect, 1))
        return amg_err_set(err, AMG_EINVAL,
                           "cannot open %s:%d: a device is already open in "
                           "this process",
                           name, (int)ordinal);
    if ((rc = find_backend(name, &path, err)) ||
        (rc = amg_plugin_check_perms(path, err)) ||
        (rc = load_backend(path, type, &be, err)))
        goto fail;
    rc = be->open(ordinal, amg_host_api_get());
    if (rc) {
        const char *why = be->error_string();

        amg_err_set(err, rc, "cannot use %s:%d: %s", name, (int)ordinal,
                    why && why[0] ? why : amg_status_str(rc));
        goto fail;
    }
    if (budget == 0) {
        rc = be->mem_info(&free_bytes, &total);
        if (rc) {
            amg_err_set(err, rc, "cannot read the free memory of %s:%d: %s",
                        name, (int)ordinal, be->error_string());
            be->close();
            goto fail;
        }
        budget = default_budget(free_bytes);
    }
    rt = calloc(1, sizeof(*rt));
    if (!rt) {
        be->close();
        rc = amg_err_set(err, AMG_ENOMEM, "cannot open %s:%d: out of memory",
                         name, (int)ordinal);
        goto fail;
    }
    rt->be = be;
    rt->type = type;
    rt->ordinal = ordinal;
    rt->budget = budget;
    atomic_init(&rt->in_use, 0);
    free(path);
    *out = rt;
    return AMG_OK;
fail:
    free(path);
    atomic_store(&rt_open, 0);
    return rc;
}

void amg_device_close(amg_device_rt *rt)
{
    if (!rt)
        return;
    rt->be->close();
    free(rt);
    atomic_store(&rt_open, 0);
}

const amg_backend *amg_device_backend(const amg_device_rt *rt)
{
    return rt->be;
}

int32_t amg_device_ordinal(const amg_device_rt *rt)
{
    return rt->ordinal;
}

uint64_t amg_device_budget(const amg_device_rt *rt)
{
    return rt->budget;
}

uint64_t amg_device_in_use(const amg_device_rt *rt)
{
    return atomic_load(&rt->in_use);
}

int amg_device_alloc(amg_device_rt *rt, size_t bytes, void *stream,
                     void **out, amg_err *err)
{
    uint64_t cur = atomic_load(&rt->in_use);
    char b[32], u[32], a[32];
    int rc;

    *out = NULL;
    if (bytes == 0)
        return AMG_OK;
    /* reserve first, so concurrent workers can never overshoot together */
    do {
        if ((uint64_t)bytes > rt->budget - cur) {
            amg_format_bytes(rt->budget, b, sizeof(b));
            amg_format_bytes(cur, u, sizeof(u));
            amg_format_bytes(bytes, a, sizeof(a));
            return amg_err_set(err, AMG_ENOMEM,
                               "gpu memory budget of %s exceeded: %s in use, "
                               "%s more asked for; raise --gpu-mem or lower "
                               "-j/--chunk-size",
                               b, u, a);
        }
    } while (!atomic_compare_exchange_weak(&rt->in_use, &cur, cur + bytes));
    rc = rt->be->dev_alloc(bytes, stream, out);
    if (rc) {
        const char *why = rt->be->error_string();

        atomic_fetch_sub(&rt->in_use, bytes);
        *out = NULL;
        amg_format_bytes(bytes, a, sizeof(a));
        return amg_err_set(err, rc, "cannot allocate %s on cuda:%d: %s", a,
                           (int)rt->ordinal,
                           why && why[0] ? why : amg_status_str(rc));
    }
    return AMG_OK;
}

void amg_device_free(amg_device_rt *rt, void *p, size_t bytes, void *stream)
{
    if (!p)
        return;
    rt->be->dev_free(p, stream);
    atomic_fetch_sub(&rt->in_use, bytes);
}
