/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - the amalgam program: global options and subcommand dispatch.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <amalgam/version.h>

#include "commands.h"
#include "simd.h"

static const struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    { "merge", amg_cmd_merge,
      "merge models as a YAML pipeline describes (mergekit configs work)" },
    { "demo", amg_cmd_demo,
      "generate a base and experts, merge them, report what survived" },
    { "inspect", amg_cmd_inspect,
      "show a model's architecture, parameter count, shards and tensors" },
    { "plugins", amg_cmd_plugins,
      "list strategy plugins, or show one strategy's parameters" },
    { "fetch", amg_cmd_fetch,
      "download a model from the Hugging Face Hub into the shared cache" },
    { "cache", amg_cmd_cache,
      "list the models in the Hugging Face cache, or remove one" },
    { "synth", amg_cmd_synth,
      "generate a small Llama-shaped model (base or expert) for tests" },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    size_t i;

    fputs("usage: amalgam [--version] [--help] <command> [<args>]\n\n"
          "commands:\n", out);
    for (i = 0; i < N_COMMANDS; i++)
        fprintf(out, "   %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\nrun 'amalgam <command> --help' for a command's options; "
          "see amalgam(1)\n", out);
}

int main(int argc, char **argv)
{
    size_t i;

    if (argc < 2) {
        usage(stderr);
        return AMG_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return AMG_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("amalgam %s (plugin ABI %d.%d; cpu kernels: %s)\n",
               AMG_VERSION_STRING, AMG_ABI_MAJOR, AMG_ABI_MINOR,
               amg_simd_name(amg_simd_active));
        return AMG_EXIT_OK;
    }
    for (i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "error: '%s' is not an amalgam command; "
                    "see 'amalgam --help'\n", argv[1]);
    return AMG_EXIT_USAGE;
}
