/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
#include "ctx.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "tensor_mem.h"

/* A plain list: a call holds a handful of temporaries, and tensor_release
 * in a loop finds the newest one first. */
struct amg_ctx_temp {
    amg_tensor *t;
    amg_ctx_free_fn free_fn;           /* NULL: amg_tensor_free */
    struct amg_ctx_temp *next;
};

static void temp_free(amg_ctx *ctx, amg_tensor *t, amg_ctx_free_fn free_fn)
{
    if (free_fn)
        free_fn(ctx, t);
    else
        amg_tensor_free(t);
}

void amg_ctx_init(amg_ctx *ctx, const char *who, const char *tensor,
                  const volatile sig_atomic_t *abort_flag)
{
    amg_err_clear(&ctx->err);
    ctx->who = who;
    ctx->tensor = tensor;
    ctx->abort_flag = abort_flag;
    ctx->stop = NULL;
    ctx->temps = NULL;
    ctx->cuda_stream = NULL;
    ctx->dev = NULL;
}

void amg_ctx_release(amg_ctx *ctx)
{
    struct amg_ctx_temp *n, *next;

    if (!ctx)
        return;
    for (n = ctx->temps; n; n = next) {
        next = n->next;
        temp_free(ctx, n->t, n->free_fn);
        free(n);
    }
    ctx->temps = NULL;
}

int amg_ctx_fail(amg_ctx *ctx, int status, const char *fmt, ...)
{
    va_list ap;

    if (!ctx)
        return status;
    ctx->err.status = status;
    va_start(ap, fmt);
    vsnprintf(ctx->err.msg, sizeof(ctx->err.msg), fmt, ap);
    va_end(ap);
    return status;
}

int amg_ctx_track(amg_ctx *ctx, amg_tensor *t)
{
    return amg_ctx_track_fn(ctx, t, NULL);
}

int amg_ctx_track_fn(amg_ctx *ctx, amg_tensor *t, amg_ctx_free_fn free_fn)
{
    struct amg_ctx_temp *n = malloc(sizeof(*n));

    if (!n) {
        temp_free(ctx, t, free_fn);
        return amg_ctx_fail(ctx, AMG_ENOMEM,
                            "cannot track a temporary tensor: out of memory");
    }
    n->t = t;
    n->free_fn = free_fn;
    n->next = ctx->temps;
    ctx->temps = n;
    return AMG_OK;
}

void amg_ctx_untrack_free(amg_ctx *ctx, amg_tensor *t)
{
    struct amg_ctx_temp **pp, *n;

    if (!ctx || !t)
        return;
    for (pp = &ctx->temps; (n = *pp) != NULL; pp = &n->next) {
        if (n->t == t) {
            *pp = n->next;
            temp_free(ctx, t, n->free_fn);
            free(n);
            return;
        }
    }
}
