/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctx.h - the per-call context behind the SDK's opaque amg_ctx: the error
 * a plugin or kernel records, the temporaries it allocates, who it is (for
 * log lines), and the abort flag it polls.
 *
 * One ctx per call, never shared between threads.
 */
#ifndef AMG_CTX_H
#define AMG_CTX_H

#include <signal.h>
#include <stdatomic.h>

#include <amalgam/host.h>

#include "error.h"

struct amg_ctx_temp;
struct amg_device_rt;

struct amg_ctx {
    amg_err err;                       /* what fail() recorded */
    const char *who;                   /* strategy or module id, or NULL */
    const char *tensor;                /* tensor being merged, or NULL */
    const volatile sig_atomic_t *abort_flag; /* non-zero: stop; may be NULL */
    const atomic_int *stop;            /* the executor's "another worker
                                          failed" flag; may be NULL */
    struct amg_ctx_temp *temps;        /* temporaries, released with ctx */
    void *cuda_stream;                 /* NULL on the CPU */
    struct amg_device_rt *dev;         /* the device run (device.h) whose
                                          memory CUDA temporaries come
                                          from; NULL on the CPU */
};

/* Set up a ctx (no allocation). */
void amg_ctx_init(amg_ctx *ctx, const char *who, const char *tensor,
                  const volatile sig_atomic_t *abort_flag);

/* Release the temporaries still held; the recorded error stays readable. */
void amg_ctx_release(amg_ctx *ctx);

/* Record a formatted failure and return status (the SDK's host->fail). */
int amg_ctx_fail(amg_ctx *ctx, int status, const char *fmt, ...)
    AMG_PRINTF(3, 4);

/* Track a temporary tensor so amg_ctx_release frees it; tensor_release
 * frees one early. Return AMG_ENOMEM when tracking fails (t is freed). */
int amg_ctx_track(amg_ctx *ctx, amg_tensor *t);
void amg_ctx_untrack_free(amg_ctx *ctx, amg_tensor *t);

/* How a tracked temporary is freed when amg_ctx_track's amg_tensor_free is
 * not enough (device memory): it must free the handle too. */
typedef void (*amg_ctx_free_fn)(amg_ctx *ctx, amg_tensor *t);

/* amg_ctx_track with free_fn (NULL: amg_tensor_free). On failure free_fn
 * runs on t before AMG_ENOMEM is returned. */
int amg_ctx_track_fn(amg_ctx *ctx, amg_tensor *t, amg_ctx_free_fn free_fn);

#endif
