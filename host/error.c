/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void amg_err_clear(amg_err *e)
{
    if (!e)
        return;
    e->status = AMG_OK;
    e->msg[0] = '\0';
}

int amg_err_set(amg_err *e, int status, const char *fmt, ...)
{
    va_list ap;

    if (!e)
        return status;
    e->status = status;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return status;
}

int amg_err_errno(amg_err *e, int status, int errnum, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    if (!e)
        return status;
    e->status = status;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    n = strlen(e->msg);
    snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", strerror(errnum));
    return status;
}

int amg_err_prefix(amg_err *e, const char *fmt, ...)
{
    char buf[AMG_ERR_MSG_MAX];
    size_t h, o;
    va_list ap;

    if (!e)
        return AMG_EINVAL;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    /* truncate the old message rather than the new context */
    h = strlen(buf);
    o = strlen(e->msg);
    if (o > sizeof(buf) - 1 - h)
        o = sizeof(buf) - 1 - h;
    memcpy(buf + h, e->msg, o);
    buf[h + o] = '\0';
    memcpy(e->msg, buf, h + o + 1);
    return e->status;
}
