/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli.c - the subcommands' shared argument and output helpers (cli.h).
 */
#include "config.h"
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "commands.h"
#include "util.h"

/* Here rather than in main.c so that the library's users link without the
 * program. */
void amg_die_msg(const char *msg)
{
    fprintf(stderr, "error: %s\n", msg);
}

int amg_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fputs("error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nsee 'amalgam %s --help'\n", cmd);
    return AMG_EXIT_USAGE;
}

int amg_cli_usage_help(const char *usage_text, const char *msg)
{
    fprintf(stderr, "error: %s\n\n%s", msg, usage_text);
    return AMG_EXIT_USAGE;
}

const char *amg_cli_opt_value(int argc, char **argv, int *i,
                              const char *name, const char *alias,
                              int *matched, int *missing)
{
    size_t n = strlen(name);
    const char *a = argv[*i];

    *matched = 0;
    *missing = 0;
    if (alias && !strcmp(a, alias))
        goto next;
    if (alias && !strncmp(a, alias, strlen(alias))) {   /* -j4 */
        *matched = 1;
        return a + strlen(alias);
    }
    if (strncmp(a, name, n))
        return NULL;
    if (a[n] == '=') {
        *matched = 1;
        return a + n + 1;
    }
    if (a[n])
        return NULL;
next:
    *matched = 1;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

int amg_cli_parse_long(const char *cmd, const char *opt, const char *s,
                       long lo, long hi, long *out)
{
    char *end;
    long v;

    if (*s < '0' || *s > '9')
        goto bad;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        goto bad;
    *out = v;
    return 0;
bad:
    amg_cli_usage_error(cmd, "invalid value '%s' for %s: expected a whole "
                        "number from %ld to %ld", s, opt, lo, hi);
    return -1;
}

int amg_cli_parse_device(const char *cmd, const char *s, int32_t *type,
                         int32_t *ordinal)
{
    amg_err err;

    amg_err_clear(&err);
    if (amg_device_parse(s, type, ordinal, &err) == AMG_OK)
        return 0;
    amg_cli_usage_error(cmd, "%s", err.msg);
    return -1;
}

int amg_cli_device_open(int32_t type, int32_t ordinal, uint64_t budget,
                        int quiet, amg_device_rt **rt, amg_err *err)
{
    char desc[256], mem[32];
    int rc;

    *rt = NULL;
    if (type == AMG_DEVICE_CPU)
        return AMG_OK;
    rc = amg_device_open(type, ordinal, budget, rt, err);
    if (rc || quiet)
        return rc;
    if (amg_device_backend(*rt)->describe(desc, sizeof(desc)) != AMG_OK)
        snprintf(desc, sizeof(desc), "no description");
    amg_format_bytes(amg_device_budget(*rt), mem, sizeof(mem));
    fprintf(stderr, "device cuda:%d: %s; using up to %s of its memory\n",
            (int)ordinal, desc, mem);
    return AMG_OK;
}

int amg_cli_print_json(json_t *root)
{
    int rc = 0;

    if (!root || json_dumpf(root, stdout,
                            JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
        rc = -1;
    else
        putchar('\n');
    json_decref(root);
    return rc;
}

int amg_cli_finish_output(void)
{
    int failed = fflush(stdout) != 0 || ferror(stdout);
    int e = errno;
    char msg[256];

    if (!failed)
        return AMG_EXIT_OK;
    if (e != EPIPE) {
        snprintf(msg, sizeof(msg), "cannot write to standard output: %s",
                 strerror(e));
        amg_die_msg(msg);
    }
    return AMG_EXIT_FAIL;
}
