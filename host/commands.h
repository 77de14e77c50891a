/* SPDX-License-Identifier: Apache-2.0 */
/*
 * commands.h - the subcommands of the amalgam program.
 *
 * Each takes the arguments after its own name (argv[0] is the command name)
 * and returns the process exit status: 0 success, 1 failure, 2 usage error.
 */
#ifndef AMG_COMMANDS_H
#define AMG_COMMANDS_H

#define AMG_EXIT_OK 0
#define AMG_EXIT_FAIL 1
#define AMG_EXIT_USAGE 2

int amg_cmd_inspect(int argc, char **argv);
int amg_cmd_synth(int argc, char **argv);
int amg_cmd_plugins(int argc, char **argv);
int amg_cmd_merge(int argc, char **argv);
int amg_cmd_demo(int argc, char **argv);
int amg_cmd_fetch(int argc, char **argv);
int amg_cmd_cache(int argc, char **argv);

/* Print "amalgam: <msg>" to stderr, git-style ("error: ..." prefix). */
void amg_die_msg(const char *msg);

#endif
