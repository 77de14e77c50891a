/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli.h - what every subcommand's argument parsing and output share:
 * usage errors, option values, whole numbers, the final flush of stdout.
 * Messages are part of the interface (tests and scripts match them), so
 * they are composed here once.
 */
#ifndef AMG_CLI_H
#define AMG_CLI_H

#include <stdint.h>

#include "device.h"
#include "error.h"

/* Print "error: <fmt...>" and "see 'amalgam <cmd> --help'" to stderr;
 * returns AMG_EXIT_USAGE. */
int amg_cli_usage_error(const char *cmd, const char *fmt, ...)
    AMG_PRINTF(2, 3);

/* Print "error: <msg>", a blank line and the whole usage text to stderr
 * (for commands whose help is short); returns AMG_EXIT_USAGE. */
int amg_cli_usage_help(const char *usage_text, const char *msg);

/*
 * The value of the option at argv[*i] when it is name ("--opt VALUE" or
 * "--opt=VALUE") or, with alias, the short form ("-j VALUE" or "-jVALUE").
 * *matched says whether argv[*i] is this option at all; *missing that it
 * is but no value follows. *i moves past a separate value. NULL when not
 * matched or missing.
 */
const char *amg_cli_opt_value(int argc, char **argv, int *i,
                              const char *name, const char *alias,
                              int *matched, int *missing);

/* A whole number from lo to hi for option opt, decimal digits only
 * (strtol alone would take blanks, a sign or a "0x" prefix). Returns 0, or
 * -1 after a usage error of cmd naming opt and the range. */
int amg_cli_parse_long(const char *cmd, const char *opt, const char *s,
                       long lo, long hi, long *out);

/* The value of --device for cmd: cpu, cuda or cuda:N. Returns 0, or -1
 * after a usage error of cmd. */
int amg_cli_parse_device(const char *cmd, const char *s, int32_t *type,
                         int32_t *ordinal);

/* Open the device a command asked for, with budget bytes of its memory
 * (0: the default), and unless quiet say on stderr which device it is.
 * *rt stays NULL for AMG_DEVICE_CPU: nothing to open. Done before any
 * output exists, so a missing GPU leaves nothing behind. */
int amg_cli_device_open(int32_t type, int32_t ordinal, uint64_t budget,
                        int quiet, amg_device_rt **rt, amg_err *err);

struct json_t;

/* Print root to stdout as the commands' --json output is laid out (indent
 * 2, keys in insertion order, a final newline) and release it. Returns -1
 * when root is NULL (an allocation failed while building it) or the output
 * failed, else 0. */
int amg_cli_print_json(struct json_t *root);

/* Flush stdout at the end of a command, reporting a failure as git does:
 * a reader that went away (EPIPE) is not worth a message, anything else is.
 * Returns the exit status. */
int amg_cli_finish_output(void);

#endif
