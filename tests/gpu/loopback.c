/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loopback.c - a test device backend (host/backend.h) that behaves like
 * the CUDA one without a GPU: "device" memory is host memory, copies are
 * memcpy, streams are tokens, and the kernel table is kernels/cpu/ compiled
 * a second time for AMG_DEVICE_CUDA (-DAMG_KCPU_DEVICE). Selected with
 * AMALGAM_BACKEND_PATH=<build>/tests/gpu/.libs/loopback.so, it lets CI run
 * every device code path of the host: budgets, temporaries, transfers,
 * kernels refusing host tensors, and results that must equal the CPU's.
 *
 * Its allocations are registered, so a copy or free that names memory the
 * backend never handed out fails as a real device would (a CPU pointer
 * passed as device memory is the bug this catches).
 *
 * Knobs for tests (environment, read at open):
 *   AMALGAM_LOOPBACK_FREE   free "device" bytes mem_info reports (default
 *                           1 GiB; total is twice that)
 *   AMALGAM_LOOPBACK_FAIL   "open": open() fails as a machine without a
 *                           GPU does; "alloc": every dev_alloc fails as a
 *                           full device does
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amalgam/status.h>

#include "backend.h"
#include "kernels_cpu.h"

#define EXPORT __attribute__((visibility("default")))
#define DEV_ALIGN 256u
#define DEFAULT_FREE (1ull << 30)

static _Thread_local char last_error[256];
static uint64_t free_bytes = DEFAULT_FREE;
static int fail_alloc;
static int is_open;

/* ---- the allocation registry: every live dev_alloc block, by address ---- */

typedef struct block {
    uintptr_t p;
    size_t bytes;
} block;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static block *reg;
static size_t reg_n, reg_cap;

static int32_t set_error(int32_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int32_t set_error(int32_t status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return status;
}

static int reg_add(void *p, size_t bytes)
{
    int ok = 1;

    pthread_mutex_lock(&reg_lock);
    if (reg_n == reg_cap) {
        size_t cap = reg_cap ? reg_cap * 2 : 64;
        block *r = realloc(reg, cap * sizeof(*r));

        if (r) {
            reg = r;
            reg_cap = cap;
        } else {
            ok = 0;
        }
    }
    if (ok)
        reg[reg_n++] = (block){ (uintptr_t)p, bytes };
    pthread_mutex_unlock(&reg_lock);
    return ok;
}

/* Non-zero when [p, p + bytes) lies inside one live block. */
static int reg_covers(const void *p, size_t bytes)
{
    uintptr_t a = (uintptr_t)p;
    size_t i;
    int ok = 0;

    pthread_mutex_lock(&reg_lock);
    for (i = 0; i < reg_n && !ok; i++)
        ok = a >= reg[i].p && a - reg[i].p <= reg[i].bytes &&
             bytes <= reg[i].bytes - (a - reg[i].p);
    pthread_mutex_unlock(&reg_lock);
    return ok;
}

/* Remove the block starting at p; 0 when there is none. */
static int reg_remove(void *p)
{
    size_t i;
    int found = 0;

    pthread_mutex_lock(&reg_lock);
    for (i = 0; i < reg_n; i++) {
        if (reg[i].p == (uintptr_t)p) {
            reg[i] = reg[--reg_n];
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return found;
}

/* ---- the table ---- */

static int32_t lb_open(int32_t ordinal, const amg_host_api *host)
{
    const char *f = getenv("AMALGAM_LOOPBACK_FREE");
    const char *fail = getenv("AMALGAM_LOOPBACK_FAIL");
    char *end;

    (void)host; /* the CPU kernels fail through ctx directly */
    if (fail && strcmp(fail, "open") == 0)
        return set_error(AMG_ENOTFOUND,
                         "no CUDA-capable device is detected (loopback: "
                         "AMALGAM_LOOPBACK_FAIL=open)");
    if (ordinal != 0)
        return set_error(AMG_ENOTFOUND,
                         "device %d does not exist (loopback: 1 device)",
                         (int)ordinal);
    free_bytes = DEFAULT_FREE;
    if (f && f[0]) {
        errno = 0;
        free_bytes = strtoull(f, &end, 10);
        if (errno || *end)
            return set_error(AMG_EINVAL,
                             "loopback: AMALGAM_LOOPBACK_FREE '%s' is not a "
                             "byte count",
                             f);
    }
    fail_alloc = fail && strcmp(fail, "alloc") == 0;
    is_open = 1;
    last_error[0] = '\0';
    return AMG_OK;
}

static void lb_close(void)
{
    is_open = 0;
}

static const char *lb_error_string(void)
{
    return last_error;
}

static int32_t lb_describe(char *buf, size_t len)
{
    snprintf(buf, len, "loopback (host memory, CPU kernels; no GPU)");
    return AMG_OK;
}

static int32_t lb_mem_info(uint64_t *free_out, uint64_t *total)
{
    *free_out = free_bytes;
    *total = free_bytes * 2;
    return AMG_OK;
}

static const amg_kernels *lb_kernels(void)
{
    return amg_kernels_cpu();
}

/* A stream is a token whose address is unique; nothing is queued, since
 * every "asynchronous" operation here completes before it returns. */
static int32_t lb_stream_create(void **stream)
{
    *stream = malloc(1);
    if (!*stream)
        return set_error(AMG_ENOMEM,
                         "out of memory creating a stream (loopback)");
    return AMG_OK;
}

static void lb_stream_destroy(void *stream)
{
    free(stream);
}

static int32_t lb_stream_sync(void *stream)
{
    (void)stream;
    return AMG_OK;
}

static int32_t lb_dev_alloc(size_t bytes, void *stream, void **out)
{
    size_t size = (bytes + DEV_ALIGN - 1) / DEV_ALIGN * DEV_ALIGN;

    (void)stream;
    *out = NULL;
    if (!is_open)
        return set_error(AMG_EDEVICE, "dev_alloc before open (loopback)");
    if (fail_alloc)
        return set_error(AMG_ENOMEM,
                         "out of memory (loopback: AMALGAM_LOOPBACK_FAIL="
                         "alloc, %zu bytes)",
                         bytes);
    if (bytes > SIZE_MAX - DEV_ALIGN ||
        !(*out = aligned_alloc(DEV_ALIGN, size ? size : DEV_ALIGN)))
        return set_error(AMG_ENOMEM, "out of memory (loopback: %zu bytes)",
                         bytes);
    if (!reg_add(*out, bytes)) {
        free(*out);
        *out = NULL;
        return set_error(AMG_ENOMEM,
                         "out of memory (loopback: registering %zu bytes)",
                         bytes);
    }
    return AMG_OK;
}

static void lb_dev_free(void *p, void *stream)
{
    (void)stream;
    if (!p)
        return;
    /* freeing what dev_alloc never gave is a host bug: fail loudly */
    if (!reg_remove(p)) {
        fprintf(stderr, "loopback: dev_free of %p, which is not device "
                        "memory\n", p);
        abort();
    }
    free(p);
}

static void *lb_host_alloc(size_t bytes)
{
    size_t size = (bytes + DEV_ALIGN - 1) / DEV_ALIGN * DEV_ALIGN;

    if (bytes > SIZE_MAX - DEV_ALIGN)
        return NULL;
    return aligned_alloc(DEV_ALIGN, size ? size : DEV_ALIGN);
}

static void lb_host_free(void *p)
{
    free(p);
}

static int32_t bad_range(const char *what, int want_device, size_t bytes)
{
    return set_error(AMG_EDEVICE,
                     "invalid argument (loopback: the %s of %zu bytes %s "
                     "device memory)",
                     what, bytes, want_device ? "is not" : "is");
}

static int32_t lb_copy_h2d(void *dst, const void *src, size_t bytes,
                           void *stream)
{
    (void)stream;
    if (!reg_covers(dst, bytes))
        return bad_range("destination", 1, bytes);
    if (reg_covers(src, bytes))
        return bad_range("source", 0, bytes);
    memcpy(dst, src, bytes);
    return AMG_OK;
}

static int32_t lb_copy_d2h(void *dst, const void *src, size_t bytes,
                           void *stream)
{
    (void)stream;
    if (!reg_covers(src, bytes))
        return bad_range("source", 1, bytes);
    if (reg_covers(dst, bytes))
        return bad_range("destination", 0, bytes);
    memcpy(dst, src, bytes);
    return AMG_OK;
}

static int32_t lb_copy_d2d(void *dst, const void *src, size_t bytes,
                           void *stream)
{
    (void)stream;
    if (!reg_covers(src, bytes))
        return bad_range("source", 1, bytes);
    if (!reg_covers(dst, bytes))
        return bad_range("destination", 1, bytes);
    memmove(dst, src, bytes);
    return AMG_OK;
}

static int32_t lb_memset_dev(void *dst, int value, size_t bytes,
                             void *stream)
{
    (void)stream;
    if (!reg_covers(dst, bytes))
        return bad_range("destination", 1, bytes);
    memset(dst, value, bytes);
    return AMG_OK;
}

static const amg_backend loopback = {
    .struct_size = (uint32_t)sizeof(amg_backend),
    .abi = AMG_BACKEND_ABI,
    .name = "cuda",
    .device_type = AMG_DEVICE_CUDA,
    .open = lb_open,
    .close = lb_close,
    .error_string = lb_error_string,
    .describe = lb_describe,
    .mem_info = lb_mem_info,
    .kernels = lb_kernels,
    .stream_create = lb_stream_create,
    .stream_destroy = lb_stream_destroy,
    .stream_sync = lb_stream_sync,
    .dev_alloc = lb_dev_alloc,
    .dev_free = lb_dev_free,
    .host_alloc = lb_host_alloc,
    .host_free = lb_host_free,
    .copy_h2d = lb_copy_h2d,
    .copy_d2h = lb_copy_d2h,
    .copy_d2d = lb_copy_d2d,
    .memset_dev = lb_memset_dev,
};

EXPORT const amg_backend *amg_backend_entry(void);

EXPORT const amg_backend *amg_backend_entry(void)
{
    return &loopback;
}
