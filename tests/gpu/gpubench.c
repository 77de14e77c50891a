/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gpubench.c - kernel and transfer figures for tests/gpu/device-check.sh.
 *
 *   gpubench [--mib N] [--reps R] [--device cuda[:K]]
 *
 * Opens the device backend through host/device.c, exactly as
 * `amalgam merge --device cuda` does (AMALGAM_BACKEND_PATH selects another,
 * the loopback for instance), and prints, for the kernels the built-in
 * strategies spend their time in, the mean time per call over operands of
 * N MiB of f32 each (default 512) and the bandwidth that implies: bytes
 * read plus bytes written per call, over the time. Each kernel's figure is
 * set against the device-to-device copy bandwidth measured in the same run
 * (a copy reads and writes each byte once: the most an elementwise kernel
 * can reach), and transfers against pinned host-to-device bandwidth.
 *
 * Prints figures only and asserts nothing about them; exits 1 when a call
 * fails, 77 with one line when there is no device to measure.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "device.h"
#include "plugin_loader.h"
#include "util.h"

#define COLS 4096 /* row length: a Llama-8B hidden size */

typedef struct bench {
    const amg_host_api *h;
    const amg_kernels *k;
    const amg_backend *be;
    void *stream;
    amg_ctx ctx;
    uint64_t n;                   /* elements per operand */
    int reps;
    amg_tensor *x[4], *out, *sign, *mask, *bf16;
    uint64_t *hist;
    double *rows;
    double copy_gbs;              /* the d2d reference, once measured */
} bench;

enum op {
    OP_COPY_D2D, OP_H2D, OP_D2H, OP_AXPBY, OP_WSUM, OP_TIES, OP_BERNOULLI,
    OP_HIST, OP_THRESHOLD, OP_ROW_DOT, OP_CONVERT
};

static const struct {
    enum op op;
    const char *name;
    double bytes_per_elem;        /* read + written per element */
} ops[] = {
    { OP_COPY_D2D, "d2d copy (reference)", 8 },
    { OP_H2D, "h2d pinned", 4 },
    { OP_D2H, "d2h pinned", 4 },
    { OP_AXPBY, "axpby", 12 },
    { OP_WSUM, "weighted_sum n=3", 16 },
    /* sign_elect reads 3 and writes 1, disjoint_merge reads 3 + sign and
     * writes 1: 9 f32 per element */
    { OP_TIES, "sign_elect+disjoint_merge n=3", 36 },
    { OP_BERNOULLI, "rng_bernoulli", 1 },
    { OP_HIST, "abs_histogram", 4 },
    { OP_THRESHOLD, "threshold_mask", 5 },
    { OP_ROW_DOT, "row_dot", 8 },
    { OP_CONVERT, "convert f32->bf16", 6 },
};

static void *pinned;              /* host_alloc'd transfer buffer */
static int pinned_is_pinned;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail_with(bench *b, const char *what, int rc)
{
    fprintf(stderr, "gpubench: %s failed: %s\n", what,
            b->ctx.err.msg[0] ? b->ctx.err.msg : b->be->error_string());
    return rc ? rc : 1;
}

static int run_op(bench *b, enum op op)
{
    static const float w3[3] = { 0.5f, 0.3f, 0.2f };
    const amg_tensor *d3[3] = { b->x[0], b->x[1], b->x[2] };
    size_t bytes = (size_t)(b->n * 4);
    uint64_t taken = 0;

    switch (op) {
    case OP_COPY_D2D:
        return b->be->copy_d2d(b->x[3]->dl.data, b->x[0]->dl.data, bytes,
                               b->stream);
    case OP_H2D:
        return b->be->copy_h2d(b->x[3]->dl.data, pinned, bytes, b->stream);
    case OP_D2H:
        return b->be->copy_d2h(pinned, b->x[3]->dl.data, bytes, b->stream);
    case OP_AXPBY:
        return b->k->axpby(&b->ctx, b->out, 0.7f, b->x[0], 0.3f, b->x[1]);
    case OP_WSUM:
        return b->k->weighted_sum(&b->ctx, b->out, d3, w3, 3);
    case OP_TIES: {
        int rc = b->k->sign_elect(&b->ctx, b->sign, d3, w3, 3,
                                  AMG_SIGN_BY_SUM);
        return rc ? rc : b->k->disjoint_merge(&b->ctx, b->out, d3, w3, 3,
                                              b->sign, 1);
    }
    case OP_BERNOULLI:
        return b->k->rng_bernoulli(&b->ctx, b->mask, 0.5, 42, 7);
    case OP_HIST:
        return b->k->abs_histogram(&b->ctx, b->x[0], 0, 0, b->hist);
    case OP_THRESHOLD:
        /* 0x3E800000 is 0.25f: about half of the uniform(-0.5, 0.5) values
         * lie above it */
        return b->k->threshold_mask(&b->ctx, b->mask, b->x[0], 0x3E800000u,
                                    0, &taken);
    case OP_ROW_DOT:
        return b->k->row_dot(&b->ctx, b->x[0], b->x[1], b->rows);
    case OP_CONVERT:
        return b->k->convert(&b->ctx, b->bf16, b->x[0]);
    }
    return AMG_EINVAL;
}

/* Mean seconds per call over b->reps calls, after one warm-up call. */
static int time_op(bench *b, enum op op, double *secs)
{
    double t0;
    int i, rc;

    if ((rc = run_op(b, op)) || (rc = b->be->stream_sync(b->stream)))
        return rc;
    t0 = now();
    for (i = 0; i < b->reps; i++)
        if ((rc = run_op(b, op)))
            return rc;
    if ((rc = b->be->stream_sync(b->stream)))
        return rc;
    *secs = (now() - t0) / b->reps;
    return AMG_OK;
}

static int setup(bench *b)
{
    int64_t shape[2] = { (int64_t)(b->n / COLS), COLS };
    amg_dl_dtype f32 = amg_dl_make(AMG_DL_FLOAT, 32);
    amg_device dev = { AMG_DEVICE_CUDA, amg_device_ordinal(b->ctx.dev) };
    amg_tensor *ones;
    int i, rc;

    for (i = 0; i < 4; i++)
        if ((rc = b->h->tensor_new(&b->ctx, f32, 2, shape, dev, &b->x[i])))
            return fail_with(b, "allocating an operand", rc);
    if ((rc = b->h->tensor_new(&b->ctx, f32, 2, shape, dev, &b->out)) ||
        (rc = b->h->tensor_new(&b->ctx, f32, 2, shape, dev, &b->sign)) ||
        (rc = b->h->tensor_new(&b->ctx, amg_dl_make(AMG_DL_BOOL, 8), 2, shape,
                               dev, &b->mask)) ||
        (rc = b->h->tensor_new(&b->ctx, amg_dl_make(AMG_DL_BFLOAT, 16), 2,
                               shape, dev, &b->bf16)))
        return fail_with(b, "allocating an operand", rc);
    /* uniform(-0.5, 0.5) operands: mixed signs for the TIES kernels; out
     * stands in for the ones tensor until the first kernel overwrites it */
    ones = b->out;
    if ((rc = b->k->fill(&b->ctx, ones, 1.0f)))
        return fail_with(b, "fill", rc);
    for (i = 0; i < 4; i++)
        if ((rc = b->k->rng_uniform(&b->ctx, b->x[i], 1234, (uint64_t)i)) ||
            (rc = b->k->axpby(&b->ctx, b->x[i], 1.0f, b->x[i], -0.5f, ones)))
            return fail_with(b, "initialising the operands", rc);
    b->hist = calloc(65536, sizeof(*b->hist));
    b->rows = calloc((size_t)shape[0], sizeof(*b->rows));
    pinned = b->be->host_alloc((size_t)(b->n * 4));
    pinned_is_pinned = pinned != NULL;
    if (!pinned)
        pinned = malloc((size_t)(b->n * 4));
    if (!b->hist || !b->rows || !pinned) {
        fprintf(stderr, "gpubench: out of host memory\n");
        return 1;
    }
    memset(pinned, 0, (size_t)(b->n * 4));
    if ((rc = b->be->stream_sync(b->stream)))
        return fail_with(b, "initialising the operands", rc);
    return 0;
}

static int measure(bench *b)
{
    double secs, gbs;
    size_t i;
    int rc;

    printf("%-32s %10s %10s %s\n", "operation", "ms/call", "GB/s",
           "vs d2d copy");
    for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if ((rc = time_op(b, ops[i].op, &secs)))
            return fail_with(b, ops[i].name, rc);
        gbs = ops[i].bytes_per_elem * (double)b->n / secs / 1e9;
        if (ops[i].op == OP_COPY_D2D)
            b->copy_gbs = gbs;
        if (ops[i].op == OP_H2D || ops[i].op == OP_D2H)
            printf("%-32s %10.3f %10.1f %s\n", ops[i].name, secs * 1e3, gbs,
                   pinned_is_pinned ? "(transfer)"
                                    : "(transfer; pageable: no pinned "
                                      "memory)");
        else
            printf("%-32s %10.3f %10.1f %10.2f\n", ops[i].name, secs * 1e3,
                   gbs, gbs / b->copy_gbs);
        fflush(stdout);
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: gpubench [--mib N] [--reps R] [--device cuda[:K]]\n");
}

int main(int argc, char **argv)
{
    const char *spec = "cuda";
    long mib = 512, reps = 5;
    int32_t type, ordinal;
    amg_device_rt *rt = NULL;
    char desc[256], sz[32];
    bench b;
    amg_err err;
    int i, rc;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc)
            mib = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            spec = argv[++i];
        else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (mib < 1 || mib > 65536 || reps < 1 || reps > 1000) {
        fprintf(stderr, "gpubench: --mib must be 1..65536 and --reps "
                        "1..1000\n");
        return 2;
    }
    amg_err_clear(&err);
    if (amg_device_parse(spec, &type, &ordinal, &err) ||
        type != AMG_DEVICE_CUDA) {
        fprintf(stderr, "gpubench: %s\n",
                err.msg[0] ? err.msg : "only cuda devices have kernels to "
                                       "measure");
        return 2;
    }
    rc = amg_device_open(type, ordinal, 0, &rt, &err);
    if (rc == AMG_ENOTFOUND || rc == AMG_EUNSUPPORTED) {
        printf("SKIP: gpubench: %s\n", err.msg);
        return 77;
    }
    if (rc) {
        fprintf(stderr, "gpubench: %s\n", err.msg);
        return 1;
    }
    memset(&b, 0, sizeof(b));
    b.h = amg_host_api_get();
    b.be = amg_device_backend(rt);
    b.k = b.be->kernels();
    b.n = (uint64_t)mib * 1048576 / 4;
    b.reps = (int)reps;
    amg_ctx_init(&b.ctx, "gpubench", NULL, NULL);
    b.ctx.dev = rt;
    if (b.be->describe(desc, sizeof(desc)))
        snprintf(desc, sizeof(desc), "(no description)");
    if ((rc = b.be->stream_create(&b.stream))) {
        fprintf(stderr, "gpubench: cannot create a stream: %s\n",
                b.be->error_string());
        amg_device_close(rt);
        return 1;
    }
    b.ctx.cuda_stream = b.stream;
    amg_format_bytes(b.n * 4, sz, sizeof(sz));
    printf("device: %s\n", desc);
    printf("operands: %llu f32 elements (%s) each, rows of %d; mean of %d "
           "calls after one warm-up\n",
           (unsigned long long)b.n, sz, COLS, b.reps);
    printf("GB/s counts bytes read + written per call; the d2d copy reads "
           "and writes each byte once\n");
    rc = setup(&b);
    if (!rc)
        rc = measure(&b);
    amg_ctx_release(&b.ctx);
    b.be->stream_destroy(b.stream);
    if (pinned_is_pinned)
        b.be->host_free(pinned);
    else
        free(pinned);
    free(b.hist);
    free(b.rows);
    amg_device_close(rt);
    return rc ? 1 : 0;
}
