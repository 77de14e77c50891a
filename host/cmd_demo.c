/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_demo.c - `amalgam demo`: the main job on an embedded default.
 *
 * Generates a small Llama-shaped base and three experts, runs the bundled
 * pipeline through the same code as `amalgam merge` (parse, plan,
 * execute), and reports how much of each expert's task vector survives in
 * the merge.
 *
 * Decisions:
 *   - The demo folder is kept after a successful run, with or without
 *     --keep: the point of the demo is a model the user can inspect and
 *     the pipeline they can edit and rerun. Its path and the command to
 *     remove it are printed. On any failure or interrupt the whole folder
 *     is removed, because this run created all of it.
 *   - The pipeline is also written as DIR/pipeline.yaml with paths relative
 *     to DIR, so `amalgam merge DIR/pipeline.yaml OUT` reruns it as is.
 *   - The survival figures are exact sums in f64 over every float tensor,
 *     read back from the written files (so they include the output's
 *     rounding), streamed in small chunks: memory stays bounded whatever
 *     the model size.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "crash_guard.h"
#include "dtype.h"
#include "executor.h"
#include "model.h"
#include "model_writer.h"
#include "pipeline.h"
#include "plan.h"
#include "progress.h"
#include "synth.h"
#include "util.h"

/* The bundled pipeline: a plain mergekit config, so it reads the same in
 * mergekit. Paths are relative to the demo folder. The strategies issue
 * upgrades it to TIES over the experts, then SLERP. */
static const char demo_pipeline_yaml[] =
    "# amalgam demo: the bundled pipeline, two chained steps fused per\n"
    "# tensor in memory. Model paths are relative to this file's folder;\n"
    "# rerun it with\n"
    "#   amalgam merge pipeline.yaml OUT\n"
    "steps:\n"
    "  # TIES over the experts: keep the half of each task vector with the\n"
    "  # largest magnitudes, elect a sign per weight, average what agrees\n"
    "  - name: experts\n"
    "    merge_method: ties\n"
    "    base_model: ./base\n"
    "    models:\n"
    "      - model: ./expert-1\n"
    "      - model: ./expert-2\n"
    "      - model: ./expert-3\n"
    "    parameters:\n"
    "      weight: 1.0\n"
    "      density: 0.5\n"
    "  # SLERP from the base towards the TIES result, further in the deeper\n"
    "  # layers (t interpolated over the layers, 0 for the embeddings)\n"
    "  - name: smooth\n"
    "    merge_method: slerp\n"
    "    base_model: ./base\n"
    "    models:\n"
    "      - model: experts\n"
    "    parameters:\n"
    "      t: [0.6, 0.9]\n"
    "    dtype: bfloat16\n";

#define DEMO_EXPERTS 3
#define DEMO_MERGED "merged"
#define DEMO_PIPELINE "pipeline.yaml"
#define DEMO_MAX_JOBS 1024
/* f32 bytes per input chunk: `amalgam merge`'s default. */
#define DEMO_CHUNK_BYTES AMG_EXEC_CPU_CHUNK
/* Elements per read-back chunk when measuring survival. */
#define MEASURE_CHUNK 65536

static const char usage_text[] =
    "usage: amalgam demo [--keep DIR] [-j N] [--device DEV] [-q]\n"
    "\n"
    "Generate a small Llama-shaped base model and three experts (task\n"
    "vectors with a part all experts share and a part of their own), merge\n"
    "them with the bundled pipeline through the same code as 'amalgam\n"
    "merge', and report how much of each expert's task vector survives in\n"
    "the merged model: the cosine between merged - base and expert - base,\n"
    "and the share of the expert's changed weights whose change keeps its\n"
    "sign.\n"
    "\n"
    "Everything goes in a new folder under $TMPDIR (or /tmp), which is kept\n"
    "so you can inspect the result and rerun DIR/pipeline.yaml; its path is\n"
    "printed. A failed or interrupted run removes it.\n"
    "\n"
    "   --keep DIR          use DIR (which must not exist) instead\n"
    "   -j, --jobs N        worker threads (default: online CPUs)\n"
    "   --device DEV        merge on cpu (default), cuda or cuda:N\n"
    "   -q, --quiet         no progress; print only the report\n"
    "   -h, --help          show this help\n";

typedef struct demo_args {
    const char *keep;
    long jobs;                         /* 0: online CPUs */
    int quiet;
    int32_t dev_type, dev_ordinal;
} demo_args;

static volatile sig_atomic_t demo_abort;

static void on_signal(int sig)
{
    (void)sig;
    demo_abort = 1;
}

#define usage_error(...) amg_cli_usage_error("demo", __VA_ARGS__)

static int parse_args(demo_args *a, int argc, char **argv)
{
    int i, matched, missing = 0;
    const char *v;

    for (i = 1; i < argc; i++) {
        const char *s = argv[i];

        if (!strcmp(s, "-q") || !strcmp(s, "--quiet")) {
            a->quiet = 1;
        } else if ((v = amg_cli_opt_value(argc, argv, &i, "--jobs", "-j",
                                          &matched, &missing)) || matched) {
            if (missing)
                break;
            if (amg_cli_parse_long("demo", "-j", v, 1, DEMO_MAX_JOBS,
                                   &a->jobs))
                return -1;
        } else if ((v = amg_cli_opt_value(argc, argv, &i, "--keep", NULL,
                                          &matched, &missing)) || matched) {
            if (missing)
                break;
            if (!*v)
                return usage_error("--keep needs a folder"), -1;
            a->keep = v;
        } else if ((v = amg_cli_opt_value(argc, argv, &i, "--device", NULL,
                                          &matched, &missing)) || matched) {
            if (missing)
                break;
            if (amg_cli_parse_device("demo", v, &a->dev_type,
                                     &a->dev_ordinal))
                return -1;
        } else if (s[0] == '-') {
            return usage_error("unknown option '%s'", s), -1;
        } else {
            return usage_error("unexpected argument '%s'", s), -1;
        }
    }
    if (missing)
        return usage_error("option '%s' needs a value", argv[i]), -1;
    return 0;
}

/* ---- the demo folder ---- */

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

/* Remove a folder this run created, with everything in it; symlinks are
 * removed, never followed. */
static void remove_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Create the demo folder: --keep DIR (must not exist), or a fresh
 * mkdtemp folder. Returns a malloc'd path or NULL after a message. */
static char *make_demo_dir(const char *keep)
{
    const char *tmp = getenv("TMPDIR");
    char *path;

    if (keep) {
        if (access(keep, F_OK) == 0) {
            fprintf(stderr, "error: '%s' already exists (--keep needs a new "
                            "folder)\n", keep);
            return NULL;
        }
        if (mkdir(keep, 0777) < 0) {
            fprintf(stderr, "error: cannot create '%s': %s\n", keep,
                    strerror(errno));
            return NULL;
        }
        if (!(path = amg_strdup(keep))) {
            rmdir(keep);
            amg_die_msg("out of memory");
        }
        return path;
    }
    if (!tmp || !*tmp)
        tmp = "/tmp";
    if (!(path = amg_path_join(tmp, "amalgam-demo-XXXXXX"))) {
        amg_die_msg("out of memory");
        return NULL;
    }
    if (!mkdtemp(path)) {
        fprintf(stderr, "error: cannot create a folder in '%s': %s\n", tmp,
                strerror(errno));
        free(path);
        return NULL;
    }
    return path;
}

/* ---- generating the models ---- */

static void demo_synth_opts(amg_synth_opts *o, int expert)
{
    amg_synth_opts_init(o);
    o->layers = 4;
    o->hidden = 256;
    o->intermediate = 688;
    o->vocab = 1024;
    o->heads = 4;
    o->kv_heads = 2;
    o->dtype = AMG_DT_BF16;
    o->expert = expert;
    o->agree = 0.5f;
}

/* DIR/base and DIR/expert-1..3, then DIR/pipeline.yaml. */
static int write_inputs(const char *dir, int quiet, amg_err *err)
{
    amg_synth_opts o;
    char *path;
    int k, rc = AMG_OK;

    if (!quiet)
        fprintf(stderr, "generating a base model and %d experts in '%s'\n",
                DEMO_EXPERTS, dir);
    for (k = 0; k <= DEMO_EXPERTS && !rc; k++) {
        if (demo_abort)
            return amg_err_set(err, AMG_EABORTED, "interrupted");
        if (!(path = amg_synth_family_path(dir, k)))
            return amg_err_set(err, AMG_ENOMEM, "out of memory");
        demo_synth_opts(&o, k);
        rc = amg_synth_write(&o, path, 0, err);
        free(path);
    }
    if (rc)
        return rc;
    if (!(path = amg_path_join(dir, DEMO_PIPELINE)))
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    rc = amg_write_file_atomic(path, demo_pipeline_yaml,
                               sizeof(demo_pipeline_yaml) - 1, err);
    free(path);
    return rc;
}

/* ---- merging: the same calls as `amalgam merge` ---- */

static int run_pipeline(const char *dir, const demo_args *a,
                        amg_device_rt *dev, amg_exec_stats *st, amg_err *err)
{
    amg_pipeline p;
    amg_plan plan;
    amg_plan_opts po;
    amg_exec_opts eo;
    char *label = NULL, *out = NULL;
    int have_pipe = 0, have_plan = 0, rc;

    memset(&p, 0, sizeof(p));
    memset(&plan, 0, sizeof(plan));
    memset(&po, 0, sizeof(po));
    memset(&eo, 0, sizeof(eo));
    label = amg_path_join(dir, DEMO_PIPELINE);
    out = amg_path_join(dir, DEMO_MERGED);
    if (!label || !out) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    rc = amg_pipeline_parse(&p, label, dir, demo_pipeline_yaml,
                            sizeof(demo_pipeline_yaml) - 1, err);
    if (rc)
        goto out;
    have_pipe = 1;
    if ((rc = amg_plan_build(&plan, &p, &po, err)))
        goto out;
    have_plan = 1;
    eo.jobs = (int)a->jobs;
    eo.chunk_bytes = DEMO_CHUNK_BYTES;
    eo.dev = dev;
    eo.quiet = a->quiet;
    eo.max_shard_size = AMG_DEFAULT_SHARD_SIZE;
    /* A bar on a terminal; no per-tensor lines otherwise, so the report
     * stays readable in logs. */
    eo.progress = !a->quiet && isatty(STDERR_FILENO) ? AMG_PROGRESS_BAR
                                                     : AMG_PROGRESS_QUIET;
    eo.abort_flag = &demo_abort;
    if (!a->quiet)
        fprintf(stderr, "merging with the bundled pipeline (%d worker%s%s)\n",
                eo.jobs, eo.jobs == 1 ? "" : "s", dev ? ", on the gpu" : "");
    amg_crash_guard_install(out);
    rc = amg_execute(&plan, out, &eo, st, err);
    amg_crash_guard_remove();
out:
    if (have_plan)
        amg_plan_free(&plan);
    if (have_pipe)
        amg_pipeline_free(&p);
    free(label);
    free(out);
    return rc;
}

/* ---- measuring what survives ---- */

/* Sums over every element of every float tensor, d_m = merged - base and
 * d_e = expert - base, in f64. */
typedef struct survival {
    double dot;                        /* sum d_m * d_e */
    double mm, ee;                     /* sum d_m^2, sum d_e^2 */
    uint64_t changed;                  /* elements with d_e != 0 */
    uint64_t kept;                     /* ... where sign(d_m) == sign(d_e) */
} survival;

typedef struct measure_bufs {
    float *m, *b, *e[DEMO_EXPERTS];
} measure_bufs;

/* The tensor of name in m, checked to match want's element count. */
static const amg_st_tensor *matching(const amg_model *m, const char *name,
                                     const amg_st_tensor *want,
                                     const void **data, amg_err *err)
{
    const amg_model_tensor *t = amg_model_find(m, name);

    if (!t)
        return amg_err_set(err, AMG_ENOTFOUND, "tensor '%s' is missing "
                           "from '%s'", name, m->path), NULL;
    if (t->t->numel != want->numel || !amg_dtype_is_float(t->t->dtype))
        return amg_err_set(err, AMG_EFORMAT, "tensor '%s' in '%s' does not "
                           "match the merged one (%llu float elements)",
                           name, m->path,
                           (unsigned long long)want->numel), NULL;
    if (!(*data = amg_st_data(amg_model_shard(m, t), t->t)))
        return amg_err_set(err, AMG_EIO, "tensor '%s' in '%s' is not "
                           "mapped", name, m->path), NULL;
    return t->t;
}

static void accumulate(const measure_bufs *bf, size_t n, survival *sv)
{
    size_t j;
    int k;

    for (j = 0; j < n; j++) {
        double dm = (double)bf->m[j] - (double)bf->b[j];

        for (k = 0; k < DEMO_EXPERTS; k++) {
            double de = (double)bf->e[k][j] - (double)bf->b[j];

            sv[k].dot += dm * de;
            sv[k].mm += dm * dm;
            sv[k].ee += de * de;
            if (de != 0) {
                sv[k].changed++;
                if ((dm > 0 && de > 0) || (dm < 0 && de < 0))
                    sv[k].kept++;
            }
        }
    }
}

/* One tensor of the merged model against the base and the experts, chunk
 * by chunk. */
static int measure_tensor(const amg_model *merged,
                          const amg_model_tensor *mt, const amg_model *in,
                          measure_bufs *bf, survival *sv, amg_err *err)
{
    const amg_st_tensor *ts[DEMO_EXPERTS + 2];
    const void *data[DEMO_EXPERTS + 2];
    float *dst[DEMO_EXPERTS + 2];
    uint64_t off;
    int k;

    ts[0] = mt->t;
    if (!(data[0] = amg_st_data(amg_model_shard(merged, mt), mt->t)))
        return amg_err_set(err, AMG_EIO, "tensor '%s' in '%s' is not "
                           "mapped", mt->name, merged->path);
    for (k = 0; k <= DEMO_EXPERTS; k++)
        if (!(ts[k + 1] = matching(&in[k], mt->name, mt->t, &data[k + 1],
                                   err)))
            return err->status;
    dst[0] = bf->m;
    dst[1] = bf->b;
    for (k = 0; k < DEMO_EXPERTS; k++)
        dst[k + 2] = bf->e[k];
    for (off = 0; off < mt->t->numel; off += MEASURE_CHUNK) {
        size_t n = mt->t->numel - off < MEASURE_CHUNK
                       ? (size_t)(mt->t->numel - off) : MEASURE_CHUNK;

        for (k = 0; k < DEMO_EXPERTS + 2; k++)
            amg_to_f32(ts[k]->dtype, (const char *)data[k] +
                       off * amg_dtype_size(ts[k]->dtype), dst[k], n);
        accumulate(bf, n, sv);
    }
    return AMG_OK;
}

/* in[0] is the base, in[1..3] the experts. */
static int measure(const amg_model *merged, const amg_model *in,
                   survival *sv, amg_err *err)
{
    measure_bufs bf;
    float *all;
    size_t i;
    int k, rc = AMG_OK;

    all = malloc((size_t)(DEMO_EXPERTS + 2) * MEASURE_CHUNK * sizeof(*all));
    if (!all)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    bf.m = all;
    bf.b = all + MEASURE_CHUNK;
    for (k = 0; k < DEMO_EXPERTS; k++)
        bf.e[k] = all + (size_t)(k + 2) * MEASURE_CHUNK;
    memset(sv, 0, DEMO_EXPERTS * sizeof(*sv));
    for (i = 0; i < merged->n_tensors && !rc; i++) {
        const amg_model_tensor *mt = &merged->tensors[i];

        if (demo_abort)
            rc = amg_err_set(err, AMG_EABORTED, "interrupted");
        else if (amg_dtype_is_float(mt->t->dtype))
            rc = measure_tensor(merged, mt, in, &bf, sv, err);
    }
    free(all);
    return rc;
}

/* Open DIR/merged, DIR/base and DIR/expert-k, and measure. */
static int measure_dir(const char *dir, survival *sv, uint64_t *n_params,
                       amg_err *err)
{
    amg_model merged, in[DEMO_EXPERTS + 1];
    char *path;
    int k, opened = 0, rc;
    size_t i;

    memset(&merged, 0, sizeof(merged));
    memset(in, 0, sizeof(in));
    if (!(path = amg_path_join(dir, DEMO_MERGED)))
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    rc = amg_model_open(&merged, path, 0, err);
    free(path);
    if (rc)
        return rc;
    for (k = 0; k <= DEMO_EXPERTS && !rc; k++) {
        if (!(path = amg_synth_family_path(dir, k))) {
            rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
            break;
        }
        rc = amg_model_open(&in[k], path, 0, err);
        free(path);
        if (!rc)
            opened = k + 1;
    }
    if (!rc)
        rc = measure(&merged, in, sv, err);
    *n_params = 0;
    for (i = 0; i < merged.n_tensors; i++)
        *n_params += merged.tensors[i].t->numel;
    for (k = 0; k < opened; k++)
        amg_model_close(&in[k]);
    amg_model_close(&merged);
    return rc;
}

/* ---- the report ---- */

static void print_report(const char *dir, const amg_exec_stats *st,
                         uint64_t n_params, const survival *sv, int kept_dir)
{
    int k;

    printf("merged %d experts into '%s/%s' (%.2fM parameters, %llu "
           "tensors) in %.2f s\n", DEMO_EXPERTS, dir, DEMO_MERGED,
           (double)n_params / 1e6, (unsigned long long)st->tensors,
           st->seconds);
    printf("pipeline: %s/%s (ties over the experts, then slerp with the "
           "base)\n", dir, DEMO_PIPELINE);
    printf("what survives of each expert's task vector (merged - base "
           "against expert - base, all float tensors):\n");
    for (k = 0; k < DEMO_EXPERTS; k++) {
        double den = sqrt(sv[k].mm) * sqrt(sv[k].ee);
        double frac = sv[k].changed
                          ? (double)sv[k].kept / (double)sv[k].changed : 0;

        if (den > 0)
            printf("   expert-%d  cosine %.4f  sign agreement %.4f\n", k + 1,
                   sv[k].dot / den, frac);
        else
            printf("   expert-%d  cosine undefined (a zero task vector)  "
                   "sign agreement %.4f\n", k + 1, frac);
    }
    printf("inspect it with: amalgam inspect %s/%s\n", dir, DEMO_MERGED);
    if (!kept_dir)
        printf("the demo folder stays for you to look at; remove it with: "
               "rm -r %s\n", dir);
}

static void set_handlers(struct sigaction *old_int, struct sigaction *old_term)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, old_int);
    sigaction(SIGTERM, &sa, old_term);
}

static int run_demo(const demo_args *a)
{
    struct sigaction old_int, old_term;
    survival sv[DEMO_EXPERTS];
    amg_exec_stats st;
    amg_device_rt *dev = NULL;
    uint64_t n_params = 0;
    amg_err err;
    char *dir;
    int rc;

    amg_err_clear(&err);
    /* before the folder exists: a missing GPU leaves nothing behind */
    if (amg_cli_device_open(a->dev_type, a->dev_ordinal, 0, a->quiet, &dev,
                            &err)) {
        amg_die_msg(err.msg);
        return AMG_EXIT_FAIL;
    }
    if (!(dir = make_demo_dir(a->keep))) {
        amg_device_close(dev);
        return AMG_EXIT_FAIL;
    }
    memset(&st, 0, sizeof(st));
    set_handlers(&old_int, &old_term);
    rc = write_inputs(dir, a->quiet, &err);
    if (!rc)
        rc = run_pipeline(dir, a, dev, &st, &err);
    if (!rc)
        rc = measure_dir(dir, sv, &n_params, &err);
    if (!rc && demo_abort)
        rc = amg_err_set(&err, AMG_EABORTED, "interrupted");
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    amg_device_close(dev);
    if (rc) {
        if (rc == AMG_EABORTED && demo_abort)
            fprintf(stderr, "error: demo interrupted; removed '%s'\n", dir);
        else
            fprintf(stderr, "error: %s\nnote: removed the demo folder "
                            "'%s'\n", err.msg, dir);
        remove_tree(dir);
        free(dir);
        return AMG_EXIT_FAIL;
    }
    print_report(dir, &st, n_params, sv, a->keep != NULL);
    free(dir);
    return AMG_EXIT_OK;
}

int amg_cmd_demo(int argc, char **argv)
{
    demo_args a;
    long n;
    int i;

    for (i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return AMG_EXIT_OK;
        }
    memset(&a, 0, sizeof(a));
    a.dev_type = AMG_DEVICE_CPU;
    if (parse_args(&a, argc, argv))
        return AMG_EXIT_USAGE;
    if (a.jobs == 0) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        a.jobs = n < 1 ? 1 : n > DEMO_MAX_JOBS ? DEMO_MAX_JOBS : n;
    }
    return run_demo(&a);
}
