/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_synth.c - `amalgam synth`: write a small deterministic Llama-shaped
 * model (or a base plus experts) for tests, demos and benchmarks.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "synth.h"
#include "util.h"

static const char usage_text[] =
    "usage: amalgam synth OUT [options]\n"
    "   or: amalgam synth --family DIR --experts K [options]\n"
    "\n"
    "Write a deterministic Llama-shaped model (LlamaForCausalLM tensor\n"
    "names, config.json, generation_config.json) whose values depend only\n"
    "on the seed, the tensor name and the element index. An expert is the\n"
    "base model plus a task vector: a part shared by all experts and a\n"
    "part of its own.\n"
    "\n"
    "shape:\n"
    "   --layers N          decoder layers (default 2)\n"
    "   --hidden N          hidden size (default 64)\n"
    "   --intermediate N    MLP intermediate size (default 176)\n"
    "   --vocab N           vocabulary size (default 256)\n"
    "   --heads N           attention heads, dividing --hidden (default 4)\n"
    "   --kv-heads N        key/value heads, dividing --heads (default 2)\n"
    "   --tie               tie lm_head to the embeddings (none written)\n"
    "\n"
    "storage:\n"
    "   --dtype T           bf16, f16, f32 or f64 (default bf16)\n"
    "   --shard-size SIZE   largest shard: 5GB, 500MB, 64KiB (default 5GB)\n"
    "\n"
    "values:\n"
    "   --seed N            seed of the base weights (default 0)\n"
    "   --expert K          write expert K (>= 1) instead of the base (0)\n"
    "   --delta-scale X     task-vector size relative to the base weights\n"
    "                       (default 0.05)\n"
    "   --agree X           share of the task vector common to all experts,\n"
    "                       0 to 1 (default 0.5)\n"
    "\n"
    "family:\n"
    "   --family DIR        write DIR/base and DIR/expert-1 .. DIR/expert-K\n"
    "   --experts K         number of experts for --family (1 or more)\n"
    "\n"
    "   --force             replace OUT (or DIR's models) if it exists\n"
    "   -h, --help          show this help\n";

#define MAX_EXPERTS 1000

typedef struct synth_args {
    amg_synth_opts o;
    const char *out;
    const char *family;
    long experts;                      /* -1 when not given */
    int expert_given;
    int force;
} synth_args;

#define usage_error(...) amg_cli_usage_error("synth", __VA_ARGS__)

static int parse_u64(const char *opt, const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        goto bad;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end)
        goto bad;
    *out = (uint64_t)v;
    return 0;
bad:
    usage_error("invalid value '%s' for %s: expected a whole number from 0 "
                "to 18446744073709551615", s, opt);
    return -1;
}

/* A finite decimal from lo to hi. Parsed as a double and then narrowed, as
 * Python's float32(float(s)) does, so test scripts get the same float. */
static int parse_float(const char *opt, const char *s, double lo, double hi,
                       float *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < lo || v > hi) {
        usage_error("invalid value '%s' for %s: expected a number from %g "
                    "to %g", s, opt, lo, hi);
        return -1;
    }
    *out = (float)v;
    return 0;
}

/* Parse one option at argv[*i]. Returns 0 when handled, 1 when argv[*i] is
 * not an option of synth, -1 after printing a usage error. */
static int parse_option(synth_args *a, int argc, char **argv, int *i)
{
    static const struct {
        const char *name;
        long lo, hi;
        size_t off;
    } ints[] = {
        { "--layers", 1, 4096, offsetof(amg_synth_opts, layers) },
        { "--hidden", 1, 16777216, offsetof(amg_synth_opts, hidden) },
        { "--intermediate", 1, 16777216,
          offsetof(amg_synth_opts, intermediate) },
        { "--vocab", 1, 16777216, offsetof(amg_synth_opts, vocab) },
        { "--heads", 1, 16777216, offsetof(amg_synth_opts, heads) },
        { "--kv-heads", 1, 16777216, offsetof(amg_synth_opts, kv_heads) },
        { "--expert", 0, 1000000, offsetof(amg_synth_opts, expert) },
    };
    const char *v;
    int matched, missing = 0;
    size_t k;
    long n;
    amg_err err;

    for (k = 0; k < sizeof(ints) / sizeof(ints[0]); k++) {
        v = amg_cli_opt_value(argc, argv, i, ints[k].name, NULL, &matched,
                              &missing);
        if (!matched)
            continue;
        if (!v)
            break;
        if (amg_cli_parse_long("synth", ints[k].name, v, ints[k].lo,
                               ints[k].hi, &n))
            return -1;
        *(int *)((char *)&a->o + ints[k].off) = (int)n;
        if (!strcmp(ints[k].name, "--expert"))
            a->expert_given = 1;
        return 0;
    }
    if (!missing && (v = amg_cli_opt_value(argc, argv, i, "--dtype",
                                           NULL, &matched, &missing))) {
        if (amg_dtype_parse_user(v, &a->o.dtype))
            return usage_error("unknown dtype '%s' (use bf16, f16, f32 or "
                               "f64)", v), -1;
        return 0;
    }
    if (!missing && (v = amg_cli_opt_value(argc, argv, i, "--shard-size",
                                           NULL, &matched, &missing))) {
        amg_err_clear(&err);
        if (amg_parse_size(v, &a->o.shard_size, &err))
            return usage_error("%s", err.msg), -1;
        if (a->o.shard_size == 0)
            return usage_error("invalid size '%s': must be positive", v),
                   -1;
        return 0;
    }
    if (!missing && (v = amg_cli_opt_value(argc, argv, i, "--seed",
                                           NULL, &matched, &missing)))
        return parse_u64("--seed", v, &a->o.seed);
    if (!missing && (v = amg_cli_opt_value(argc, argv, i, "--delta-scale",
                                           NULL, &matched, &missing)))
        return parse_float("--delta-scale", v, 0.0, 1e6, &a->o.delta_scale);
    if (!missing && (v = amg_cli_opt_value(argc, argv, i, "--agree",
                                           NULL, &matched, &missing)))
        return parse_float("--agree", v, 0.0, 1.0, &a->o.agree);
    if (!missing && (v = amg_cli_opt_value(argc, argv, i, "--family",
                                           NULL, &matched, &missing))) {
        if (!*v)
            return usage_error("--family needs a folder"), -1;
        a->family = v;
        return 0;
    }
    if (!missing && (v = amg_cli_opt_value(argc, argv, i, "--experts",
                                           NULL, &matched, &missing)))
        return amg_cli_parse_long("synth", "--experts", v, 1, MAX_EXPERTS,
                                  &a->experts);
    if (missing)
        return usage_error("option '%s' needs a value", argv[*i]), -1;
    if (!strcmp(argv[*i], "--tie")) {
        a->o.tie_embeddings = 1;
        return 0;
    }
    if (!strcmp(argv[*i], "--force")) {
        a->force = 1;
        return 0;
    }
    return 1;
}

static int parse_args(synth_args *a, int argc, char **argv)
{
    int i, rc, options_done = 0;

    for (i = 1; i < argc; i++) {
        const char *s = argv[i];

        if (!options_done && !strcmp(s, "--")) {
            options_done = 1;
            continue;
        }
        if (!options_done && s[0] == '-' && s[1]) {
            rc = parse_option(a, argc, argv, &i);
            if (rc < 0)
                return -1;
            if (rc > 0)
                return usage_error("unknown option '%s'", s), -1;
            continue;
        }
        if (a->out)
            return usage_error("unexpected argument '%s' (OUT is '%s')", s,
                               a->out), -1;
        if (!*s)
            return usage_error("OUT must not be empty"), -1;
        a->out = s;
    }
    if (a->family && a->out)
        return usage_error("give either OUT or --family DIR, not both"), -1;
    if (a->family && a->experts < 0)
        return usage_error("--family needs --experts K"), -1;
    if (!a->family && a->experts >= 0)
        return usage_error("--experts needs --family DIR"), -1;
    if (a->family && a->expert_given)
        return usage_error("--expert cannot be combined with --family"), -1;
    if (!a->family && !a->out)
        return usage_error("missing OUT (the folder to write)"), -1;
    return 0;
}

/* "950", "12.3K", "1.2M", "6.74B": parameter counts as model cards give
 * them. */
static void format_count(uint64_t n, char *buf, size_t cap)
{
    if (n < 1000)
        snprintf(buf, cap, "%llu", (unsigned long long)n);
    else if (n < 1000000)
        snprintf(buf, cap, "%.1fK", (double)n / 1e3);
    else if (n < 1000000000)
        snprintf(buf, cap, "%.1fM", (double)n / 1e6);
    else
        snprintf(buf, cap, "%.2fB", (double)n / 1e9);
}

static void print_summary(const char *out, const amg_synth_opts *o,
                          const amg_synth_stats *st)
{
    char count[32], expert[32] = "";

    format_count(st->n_params, count, sizeof(count));
    if (o->expert > 0)
        snprintf(expert, sizeof(expert), " (expert %d)", o->expert);
    printf("wrote '%s'%s: %d layer%s, %s parameters, %s, %llu shard%s\n",
           out, expert, o->layers, o->layers == 1 ? "" : "s", count,
           amg_dtype_name(o->dtype), (unsigned long long)st->n_shards,
           st->n_shards == 1 ? "" : "s");
}

static int write_one(const amg_synth_opts *o, const char *out, int force)
{
    amg_synth_stats st;
    amg_err err;

    amg_err_clear(&err);
    if (amg_synth_write_stats(o, out, force, &st, &err)) {
        if (err.status == AMG_EEXIST)
            fprintf(stderr, "error: %s (use --force to replace it)\n",
                    err.msg);
        else
            amg_die_msg(err.msg);
        return -1;
    }
    print_summary(out, o, &st);
    return 0;
}

/* Remove a model folder this command wrote (files only, no subfolders). */
static void remove_model_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d))) {
        char *p;

        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if ((p = amg_path_join(dir, e->d_name))) {
            unlink(p);
            free(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

/* DIR/base and DIR/expert-1..K. Without --force DIR must not exist; on a
 * failure the models written so far (and DIR, when this run made it) are
 * removed again. */
static int write_family(synth_args *a)
{
    char **dirs;
    long k, done = 0;
    int made = 0, rc = AMG_EXIT_FAIL;
    amg_synth_opts o = a->o;

    if (access(a->family, F_OK) == 0 && !a->force) {
        fprintf(stderr, "error: '%s' already exists (use --force to replace "
                        "its models)\n", a->family);
        return AMG_EXIT_FAIL;
    }
    if (!amg_is_dir(a->family)) {
        if (mkdir(a->family, 0777) < 0) {
            fprintf(stderr, "error: cannot create '%s': %s\n", a->family,
                    strerror(errno));
            return AMG_EXIT_FAIL;
        }
        made = 1;
    }
    dirs = calloc((size_t)a->experts + 1, sizeof(*dirs));
    if (!dirs) {
        amg_die_msg("out of memory");
        goto out;
    }
    for (k = 0; k <= a->experts; k++) {
        if (!(dirs[k] = amg_synth_family_path(a->family, k))) {
            amg_die_msg("out of memory");
            goto out;
        }
        o.expert = (int)k;
        if (write_one(&o, dirs[k], a->force))
            goto out;
        done = k + 1;
    }
    rc = AMG_EXIT_OK;
out:
    if (rc && dirs)
        for (k = 0; k < done; k++)
            if (made)
                remove_model_dir(dirs[k]);
    if (rc && made)
        rmdir(a->family);
    if (dirs)
        for (k = 0; k <= a->experts; k++)
            free(dirs[k]);
    free(dirs);
    return rc;
}

int amg_cmd_synth(int argc, char **argv)
{
    synth_args a;
    amg_err err;
    int i;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return AMG_EXIT_OK;
        }
    }
    memset(&a, 0, sizeof(a));
    amg_synth_opts_init(&a.o);
    a.experts = -1;
    if (parse_args(&a, argc, argv))
        return AMG_EXIT_USAGE;
    amg_err_clear(&err);
    if (amg_synth_check(&a.o, &err))
        return usage_error("%s", err.msg);
    if (a.family)
        return write_family(&a);
    return write_one(&a.o, a.out, a.force) ? AMG_EXIT_FAIL : AMG_EXIT_OK;
}
