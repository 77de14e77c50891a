/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_merge.c - `amalgam merge PIPELINE OUT_DIR`: load a pipeline, resolve
 * it into a plan, and run it (or print it with --dry-run).
 *
 * Ctrl-C and SIGTERM stop the workers, remove the staging folder and exit
 * with status 1 and "interrupted; nothing was written": the same status as
 * any other failure, because to a script the outcome is the same (no
 * model), and the message says why.
 */
#include "config.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "crash_guard.h"
#include "executor.h"
#include "model_writer.h"
#include "pipeline.h"
#include "plan.h"
#include "progress.h"
#include "util.h"

static const char usage_text[] =
    "usage: amalgam merge PIPELINE OUT_DIR [options]\n"
    "\n"
    "Merge models as the YAML pipeline PIPELINE describes (a mergekit config\n"
    "or an amalgam `steps:` pipeline) and write a Hugging Face model folder\n"
    "OUT_DIR. The folder is written under OUT_DIR.amalgam-partial and renamed\n"
    "when complete; on any error or interruption nothing is left behind.\n"
    "\n"
    "   -j, --jobs N          worker threads (default: online CPUs)\n"
    "   --chunk-size SIZE     f32 bytes per input chunk: 64MiB, 4KiB\n"
    "                         (default 512KiB, 64MiB on a gpu)\n"
    "   --device DEV          cpu (default), cuda or cuda:N: merge on that\n"
    "                         gpu; tensors whose strategy has no gpu code,\n"
    "                         or too large for --gpu-mem, stay on the cpu\n"
    "                         (same bytes either way)\n"
    "   --gpu-mem SIZE        gpu memory to use at most: 20GiB (default 90%\n"
    "                         of what is free)\n"
    "   --shard-size SIZE     largest output shard: 5GB, 500MB (default 5GB)\n"
    "   --out-dtype T         output dtype, overriding the pipeline: bf16,\n"
    "                         f16, f32, ...\n"
    "   --force               replace OUT_DIR if it exists\n"
    "   --dry-run             print the plan (per tensor: sources, strategy,\n"
    "                         parameters) and read no tensor data\n"
    "   -q, --quiet           print nothing but errors\n"
    "   -v, --verbose         say what runs how; show strategies' info logs\n"
    "   --plugin FILE         load a strategy plugin file (repeatable)\n"
    "   --plugin-path DIR     look for plugins in DIR too (repeatable)\n"
    "   --allow-insecure-plugins\n"
    "                         load plugins writable by group or others\n"
    "   -h, --help            show this help\n";


typedef struct merge_args {
    const char *pipeline, *out;
    long jobs;
    uint64_t chunk, shard, gpu_mem;
    int chunk_set, gpu_mem_set;
    int32_t dev_type, dev_ordinal;
    int has_dtype;
    amg_dtype dtype;
    int force, dry_run, quiet, verbose;
    const char **files, **dirs;
    size_t n_files, n_dirs;
    unsigned load_flags;
} merge_args;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

#define usage_error(...) amg_cli_usage_error("merge", __VA_ARGS__)

static int push(const char ***list, size_t *n, const char *v)
{
    const char **l = realloc(*list, (*n + 1) * sizeof(*l));

    if (!l)
        return -1;
    l[(*n)++] = v;
    *list = l;
    return 0;
}

static int parse_size_opt(const char *opt, const char *s, uint64_t *out)
{
    amg_err err;

    if (amg_parse_size(s, out, &err) || *out == 0)
        return usage_error("invalid value '%s' for %s: expected a size such "
                           "as 64MiB or 5GB", s, opt);
    return 0;
}

/* One option taking a value. Returns 0 handled, 1 not this kind, or the
 * usage exit status. */
static int parse_valued(merge_args *a, int argc, char **argv, int *i)
{
    static const struct {
        const char *name, *alias;
    } opts[] = {
        { "--jobs", "-j" }, { "--chunk-size", NULL }, { "--shard-size", NULL },
        { "--out-dtype", NULL }, { "--plugin", NULL },
        { "--plugin-path", NULL }, { "--device", NULL }, { "--gpu-mem", NULL },
    };
    const char *v = NULL;
    int matched = 0, missing = 0;
    size_t k;

    for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
        v = amg_cli_opt_value(argc, argv, i, opts[k].name, opts[k].alias,
                              &matched, &missing);
        if (matched)
            break;
    }
    if (!matched)
        return 1;
    if (missing)
        return usage_error("option %s needs a value", opts[k].name);
    switch (k) {
    case 0:
        return amg_cli_parse_long("merge", "--jobs", v, 1, 4096, &a->jobs)
                   ? AMG_EXIT_USAGE : 0;
    case 1:
        a->chunk_set = 1;
        return parse_size_opt("--chunk-size", v, &a->chunk) ? AMG_EXIT_USAGE
                                                            : 0;
    case 2:
        return parse_size_opt("--shard-size", v, &a->shard) ? AMG_EXIT_USAGE
                                                            : 0;
    case 3:
        if (amg_dtype_parse_user(v, &a->dtype))
            return usage_error("invalid value '%s' for --out-dtype: expected "
                               "bf16, f16, f32, f64 or another safetensors "
                               "dtype", v);
        a->has_dtype = 1;
        return 0;
    case 4:
        return push(&a->files, &a->n_files, v) ? AMG_EXIT_FAIL : 0;
    case 5:
        return push(&a->dirs, &a->n_dirs, v) ? AMG_EXIT_FAIL : 0;
    case 6:
        return amg_cli_parse_device("merge", v, &a->dev_type,
                                    &a->dev_ordinal) ? AMG_EXIT_USAGE : 0;
    default:
        /* 0 is the default: 90% of what is free */
        a->gpu_mem_set = 1;
        if (amg_parse_size(v, &a->gpu_mem, NULL))
            return usage_error("invalid value '%s' for --gpu-mem: expected "
                               "a size such as 20GiB", v);
        return 0;
    }
}

/* Returns -1 when parsed, or the exit status (help, usage error). */
static int parse_args(merge_args *a, int argc, char **argv)
{
    int i, rc, pos = 0;

    for (i = 1; i < argc; i++) {
        const char *s = argv[i];

        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(usage_text, stdout);
            return AMG_EXIT_OK;
        }
        rc = parse_valued(a, argc, argv, &i);
        if (rc == 0)
            continue;
        if (rc != 1)
            return rc;
        if (!strcmp(s, "--force"))
            a->force = 1;
        else if (!strcmp(s, "--dry-run"))
            a->dry_run = 1;
        else if (!strcmp(s, "-q") || !strcmp(s, "--quiet"))
            a->quiet = 1;
        else if (!strcmp(s, "-v") || !strcmp(s, "--verbose"))
            a->verbose = 1;
        else if (!strcmp(s, "--allow-insecure-plugins"))
            a->load_flags |= AMG_LOAD_ALLOW_INSECURE;
        else if (s[0] == '-' && s[1])
            return usage_error("unknown option '%s'", s);
        else if (pos == 0 && ++pos)
            a->pipeline = s;
        else if (pos == 1 && ++pos)
            a->out = s;
        else
            return usage_error("unexpected argument '%s'", s);
    }
    if (!a->pipeline || (!a->out && !a->dry_run))
        return usage_error("expected PIPELINE and OUT_DIR");
    if (a->quiet && a->verbose)
        return usage_error("-q and -v contradict each other");
    if (a->gpu_mem_set && a->dev_type != AMG_DEVICE_CUDA)
        return usage_error("--gpu-mem needs --device cuda");
    return -1;
}

/* out resolved without requiring it to exist: its parent's realpath plus
 * its last component. NULL when the parent does not exist (then out cannot
 * be inside anything). */
static char *resolve_out(const char *out)
{
    char *copy = amg_strdup(out), *slash, *res = NULL;
    const char *parent;
    char buf[PATH_MAX];
    size_t n;

    if (!copy)
        return NULL;
    n = strlen(copy);
    while (n > 1 && copy[n - 1] == '/')
        copy[--n] = '\0';
    slash = strrchr(copy, '/');
    if (slash) {
        *slash = '\0';
        parent = slash == copy ? "/" : copy;
        if (realpath(parent, buf))
            res = amg_path_join(buf, slash + 1);
    } else if (realpath(".", buf)) {
        res = amg_path_join(buf, copy);
    }
    free(copy);
    return res;
}

/* Writing the output into (or over) an input model would destroy what is
 * still being read. */
static int check_out_dir(const amg_plan *plan, const char *out, amg_err *err)
{
    char *res = resolve_out(out), buf[PATH_MAX];
    size_t i, n;
    int rc = AMG_OK;

    for (i = 0; res && rc == AMG_OK && i < plan->n_models; i++) {
        if (!realpath(plan->models[i].dir, buf))
            continue;
        n = strlen(buf);
        if (!strcmp(res, buf) ||
            (!strncmp(res, buf, n) && (res[n] == '/' || !strcmp(buf, "/"))))
            rc = amg_err_set(err, AMG_EINVAL, "refusing to write '%s' inside "
                             "input model folder '%s'", out,
                             plan->models[i].dir);
    }
    free(res);
    return rc;
}

static void install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;                   /* no SA_RESTART: waits wake up */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* past a file size limit, a write should fail with EFBIG and be
     * reported naming the file, not kill the process silently */
    signal(SIGXFSZ, SIG_IGN);
}

static void report(const merge_args *a, const amg_exec_stats *st)
{
    char size[32];
    double rate = st->seconds > 0 ? (double)st->bytes_out / 1e6 / st->seconds
                                  : 0.0;

    amg_format_bytes(st->bytes_out, size, sizeof(size));
    printf("wrote '%s': %llu tensors, %s in %.1fs (%.0f MB/s)\n", a->out,
           (unsigned long long)st->tensors, size, st->seconds, rate);
    if (a->dev_type == AMG_DEVICE_CUDA)
        printf("cuda:%d merged %llu tensors, the cpu %llu\n",
               (int)a->dev_ordinal, (unsigned long long)st->dev_tensors,
               (unsigned long long)st->cpu_fallback);
}

static int run(const merge_args *a, amg_err *err)
{
    amg_pipeline pipe;
    amg_plan plan;
    amg_plan_opts po;
    amg_exec_opts eo;
    amg_exec_stats st;
    amg_device_rt *dev = NULL;
    int rc, have_pipe = 0, have_plan = 0;

    memset(&pipe, 0, sizeof(pipe));
    memset(&plan, 0, sizeof(plan));
    memset(&po, 0, sizeof(po));
    if (!a->dry_run && !a->force && a->out &&
        access(a->out, F_OK) == 0) {
        rc = amg_err_set(err, AMG_EEXIST, "'%s' already exists; use --force "
                         "to replace it", a->out);
        goto out;
    }
    /* before the pipeline's models are fetched or opened: a missing GPU
     * is found out at once */
    if (!a->dry_run) {
        rc = amg_cli_device_open(a->dev_type, a->dev_ordinal, a->gpu_mem,
                                 a->quiet, &dev, err);
        if (rc)
            goto out;
    }
    rc = amg_pipeline_load(&pipe, a->pipeline, err);
    if (rc)
        goto out;
    have_pipe = 1;
    po.plugins.files = a->files;
    po.plugins.n_files = a->n_files;
    po.plugins.dirs = a->dirs;
    po.plugins.n_dirs = a->n_dirs;
    po.plugins.flags = a->load_flags;
    po.has_out_dtype = a->has_dtype;
    po.out_dtype = a->dtype;
    rc = amg_plan_build(&plan, &pipe, &po, err);
    if (rc)
        goto out;
    have_plan = 1;
    if (a->out)
        rc = check_out_dir(&plan, a->out, err);
    if (rc)
        goto out;
    if (a->dry_run) {
        amg_plan_print(&plan, stdout);
        goto out;
    }
    memset(&eo, 0, sizeof(eo));
    eo.jobs = (int)a->jobs;
    eo.chunk_bytes = a->chunk;
    eo.max_shard_size = a->shard;
    eo.overwrite = a->force;
    eo.progress = a->quiet ? AMG_PROGRESS_QUIET
                           : isatty(STDERR_FILENO) ? AMG_PROGRESS_BAR
                                                   : AMG_PROGRESS_LINES;
    eo.abort_flag = &stop_flag;
    eo.dev = dev;
    eo.dev_chunk_bytes = a->chunk_set ? a->chunk : AMG_EXEC_DEV_CHUNK;
    eo.quiet = a->quiet;
    eo.verbose = a->verbose;
    if (a->verbose)
        fprintf(stderr, "merging %zu tensors from %zu models with %d "
                "workers, chunks of %llu bytes%s\n", plan.n_outs,
                plan.n_models, eo.jobs, (unsigned long long)(
                    dev ? eo.dev_chunk_bytes : eo.chunk_bytes),
                dev ? " on the gpu (at most)" : "");
    install_signals();
    amg_crash_guard_install(a->out);
    rc = amg_execute(&plan, a->out, &eo, &st, err);
    amg_crash_guard_remove();
    if (rc == AMG_EABORTED)
        amg_err_set(err, AMG_EABORTED, "interrupted; nothing was written");
    if (!rc && !a->quiet)
        report(a, &st);
out:
    if (have_plan)
        amg_plan_free(&plan);
    if (have_pipe)
        amg_pipeline_free(&pipe);
    amg_device_close(dev);
    return rc;
}

int amg_cmd_merge(int argc, char **argv)
{
    merge_args a;
    amg_err err;
    long cpus;
    int rc;

    memset(&a, 0, sizeof(a));
    cpus = sysconf(_SC_NPROCESSORS_ONLN);
    a.jobs = cpus > 0 ? cpus : 1;
    a.chunk = AMG_EXEC_CPU_CHUNK;
    a.dev_type = AMG_DEVICE_CPU;
    a.shard = AMG_DEFAULT_SHARD_SIZE;
    rc = parse_args(&a, argc, argv);
    if (rc < 0) {
        if (a.verbose)
            setenv("AMALGAM_LOG", "info", 0);
        amg_err_clear(&err);
        rc = run(&a, &err) ? AMG_EXIT_FAIL : AMG_EXIT_OK;
        if (rc)
            amg_die_msg(err.msg);
    }
    free(a.files);
    free(a.dirs);
    return rc;
}
