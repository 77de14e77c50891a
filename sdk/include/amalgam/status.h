/* SPDX-License-Identifier: Apache-2.0 */
/*
 * amalgam/status.h - status codes shared by the host and plugins.
 *
 * Every amalgam function that can fail returns one of these (0 on success)
 * and reports the human-readable reason separately. The numeric values are
 * part of the ABI: new codes are only ever appended.
 */
#ifndef AMALGAM_STATUS_H
#define AMALGAM_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, short description) */
#define AMG_STATUS_MAP(X)                                                     \
    X(OK,          0, "success")                                              \
    X(EINVAL,      1, "invalid argument")                                     \
    X(ENOMEM,      2, "out of memory")                                        \
    X(EIO,         3, "input/output error")                                   \
    X(EFORMAT,     4, "malformed file")                                       \
    X(ENOTFOUND,   5, "not found")                                            \
    X(EUNSUPPORTED,6, "not supported")                                        \
    X(ERANGE,      7, "value out of range")                                   \
    X(EABORTED,    8, "aborted")                                              \
    X(EDEVICE,     9, "device error")                                         \
    X(EPLUGIN,    10, "plugin error")                                         \
    X(EUSAGE,     11, "usage error")                                          \
    X(EEXIST,     12, "already exists")

/* Status codes; AMG_OK is 0, every failure is positive. */
typedef enum amg_status {
#define AMG_STATUS_ENUM_(name, value, text) AMG_##name = value,
    AMG_STATUS_MAP(AMG_STATUS_ENUM_)
#undef AMG_STATUS_ENUM_
    AMG_STATUS_COUNT_
} amg_status;

/*
 * The short description of a status ("malformed file"), or "unknown status"
 * for a value outside the table. Thread-safe; the string is static.
 */
static inline const char *amg_status_str(int status)
{
    switch (status) {
#define AMG_STATUS_CASE_(name, value, text) case value: return text;
    AMG_STATUS_MAP(AMG_STATUS_CASE_)
#undef AMG_STATUS_CASE_
    default: return "unknown status";
    }
}

#ifdef __cplusplus
}
#endif
#endif /* AMALGAM_STATUS_H */
