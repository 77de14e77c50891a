/* SPDX-License-Identifier: Apache-2.0 */
/*
 * error.h - the error record every fallible host function fills.
 *
 * Functions return an amg_status and, on failure, leave the reason in an
 * amg_err the caller owns. Messages follow git's style: lower-case, no final
 * full stop, what failed first and then on what
 * ("cannot open 'x/model.safetensors': No such file or directory").
 */
#ifndef AMG_ERROR_H
#define AMG_ERROR_H

#include <amalgam/status.h>

#define AMG_ERR_MSG_MAX 1024

typedef struct amg_err {
    int status;                 /* AMG_OK until a failure is recorded */
    char msg[AMG_ERR_MSG_MAX];  /* NUL-terminated message, "" when none */
} amg_err;

#if defined(__GNUC__)
#define AMG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define AMG_PRINTF(f, a)
#endif

/* Reset to no error. */
void amg_err_clear(amg_err *e);

/* Record status and a formatted message; returns status so callers can
 * write `return amg_err_set(err, AMG_EIO, "...")`. A NULL e is allowed. */
int amg_err_set(amg_err *e, int status, const char *fmt, ...) AMG_PRINTF(3, 4);

/* Like amg_err_set with ": strerror(errnum)" appended. */
int amg_err_errno(amg_err *e, int status, int errnum, const char *fmt, ...)
    AMG_PRINTF(4, 5);

/* Prepend context ("reading 'x': " + old message); keeps the status.
 * Returns the status. */
int amg_err_prefix(amg_err *e, const char *fmt, ...) AMG_PRINTF(2, 3);

#endif
