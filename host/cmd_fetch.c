/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_fetch.c - `amalgam fetch`: a model from the Hugging Face Hub into the
 * shared cache (the one transformers uses), printing its snapshot folder.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "hub_fetch.h"
#include "model_ref.h"

static const char usage_text[] =
    "usage: amalgam fetch REF [--include GLOB]... [--revision REV] [-q]\n"
    "\n"
    "Download a model from the Hugging Face Hub into the shared cache\n"
    "(HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub) and\n"
    "print its snapshot folder. REF is org/name, org/name@revision or\n"
    "hf://org/name[@revision]. Only what a merge needs is fetched:\n"
    "*.safetensors, the shard index, config.json, generation_config.json\n"
    "and tokenizer files.\n"
    "\n"
    "   --include GLOB        fetch files matching GLOB too (repeatable;\n"
    "                         '*' fetches everything)\n"
    "   --revision REV        branch, tag or commit (default: main)\n"
    "   --ca-bundle FILE      trust the CA certificates in FILE\n"
    "                         (or AMALGAM_CA_BUNDLE)\n"
    "   -j, --jobs N          parallel downloads (default 4)\n"
    "   -q, --quiet           print nothing but errors and the folder\n"
    "   -v, --verbose         print each HTTP request and its status\n"
    "   -h, --help            show this help\n";

typedef struct fetch_args {
    const char *ref, *revision;
    const char **include;
    size_t n_include;
    amg_fetch_opts o;
} fetch_args;

#define usage_error(...) amg_cli_usage_error("fetch", __VA_ARGS__)

static int push(fetch_args *a, const char *glob)
{
    const char **grown = realloc(a->include,
                                 (a->n_include + 1) * sizeof(*grown));

    if (!grown)
        return -1;
    a->include = grown;
    a->include[a->n_include++] = glob;
    return 0;
}

static int parse_jobs(const char *v, int *jobs)
{
    char *end;
    long n = strtol(v, &end, 10);

    if (*end || n < 1 || n > 16)
        return -1;
    *jobs = (int)n;
    return 0;
}

/* Returns -1 when parsed, or the exit status (help, usage error). */
static int parse_args(fetch_args *a, int argc, char **argv)
{
    int i;

    for (i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(usage_text, stdout);
            return AMG_EXIT_OK;
        } else if (!strcmp(s, "-q") || !strcmp(s, "--quiet")) {
            a->o.quiet = 1;
        } else if (!strcmp(s, "-v") || !strcmp(s, "--verbose")) {
            a->o.verbose = 1;
        } else if (!strcmp(s, "--include") || !strcmp(s, "--revision") ||
                   !strcmp(s, "--ca-bundle") || !strcmp(s, "-j") ||
                   !strcmp(s, "--jobs")) {
            if (!v)
                return usage_error("option %s needs a value", s);
            i++;
            if (!strcmp(s, "--include") && push(a, v))
                return usage_error("out of memory at %s", s);
            if (!strcmp(s, "--revision"))
                a->revision = v;
            if (!strcmp(s, "--ca-bundle"))
                a->o.ca_bundle = v;
            if (s[1] == 'j' || !strcmp(s, "--jobs"))
                if (parse_jobs(v, &a->o.jobs))
                    return usage_error("invalid value '%s' for --jobs: "
                                       "expected 1 to 16", v);
        } else if (s[0] == '-' && s[1]) {
            return usage_error("unknown option '%s'", s);
        } else if (!a->ref) {
            a->ref = s;
        } else {
            return usage_error("unexpected argument '%s'", s);
        }
    }
    if (!a->ref)
        return usage_error("%s", "expected a model reference (org/name)");
    if (a->o.quiet && a->o.verbose)
        return usage_error("%s", "-q and -v contradict each other");
    a->o.include = a->include;
    a->o.n_include = a->n_include;
    return -1;
}

int amg_cmd_fetch(int argc, char **argv)
{
    fetch_args a;
    amg_model_ref ref;
    amg_err err;
    char *snap = NULL, msg[AMG_ERR_MSG_MAX + 64];
    int rc;

    memset(&a, 0, sizeof(a));
    amg_err_clear(&err);
    if ((rc = parse_args(&a, argc, argv)) >= 0)
        goto out;
    if (amg_model_ref_parse(a.ref, &ref, &err) != AMG_OK) {
        rc = usage_error("%s", err.msg);
        goto out;
    }
    if (ref.kind != AMG_MREF_HUB) {
        amg_model_ref_free(&ref);
        rc = usage_error("'%s' is a local path, not a Hub model id "
                         "(org/name)", a.ref);
        goto out;
    }
    if (a.revision && strchr(a.ref, '@')) {
        amg_model_ref_free(&ref);
        rc = usage_error("'%s' names a revision and --revision gives "
                         "another", a.ref);
        goto out;
    }
    if (a.revision && !amg_hub_revision_valid(a.revision)) {
        amg_model_ref_free(&ref);
        rc = usage_error("invalid revision '%s'", a.revision);
        goto out;
    }
    rc = amg_hub_fetch(ref.repo_id, a.revision ? a.revision : ref.revision,
                       &a.o, &snap, &err);
    amg_model_ref_free(&ref);
    if (rc != AMG_OK) {
        snprintf(msg, sizeof(msg), "%s", err.msg);
        amg_die_msg(msg);
        rc = AMG_EXIT_FAIL;
        goto out;
    }
    printf("%s\n", snap);
    rc = fflush(stdout) == 0 ? AMG_EXIT_OK : AMG_EXIT_FAIL;
out:
    free(snap);
    free(a.include);
    return rc;
}
