/* SPDX-License-Identifier: Apache-2.0 */
/*
 * exec_device.c - the executor's device path (see executor.h): which
 * tensors go to the device and with what chunk, the staging buffers,
 * each worker's stream, and the pass over the chunks there. The pool, the
 * node graph and the CPU path are in executor.c; what both share is in
 * exec_internal.h.
 *
 * On a device each worker has its own stream, so with -j N the copies of
 * one tensor overlap another's kernels. Within a tensor the CPU decodes
 * chunk c + 1 into one set of staging buffers, and rounds and writes chunk
 * c - 1 from another, while the device works on chunk c: one stream
 * orders the device's side, and the one synchronisation per chunk is what
 * makes a staging buffer free for reuse.
 */
#include "config.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_internal.h"
#include "util.h"

/* Device memory a tensor needs is reckoned as one chunk per node plus
 * this many chunks of temporaries a strategy may ask for. */
#define DEV_TEMP_CHUNKS 8u

/* ---- failures and staging ---- */

/* A device failure: what failed, on which tensor, and the backend's
 * reason. */
static int dev_fail(const exec_run *run, int rc, const char *what,
                    const char *name, amg_err *err)
{
    const char *why = run->be->error_string();

    return amg_err_set(err, rc ? rc : AMG_EDEVICE, "%s for '%s' on cuda:%d: "
                       "%s", what, name, (int)amg_device_ordinal(run->o->dev),
                       why && *why ? why : amg_status_str(rc));
}

/* Everything queued on the worker's stream has run. */
static int dev_sync(worker *wk, const char *name, amg_err *err)
{
    int rc = wk->run->be->stream_sync(wk->stream);

    return rc ? dev_fail(wk->run, rc, "device work failed", name, err)
              : AMG_OK;
}

static void stage_release(const exec_run *run, staging *sg)
{
    if (sg->pinned)
        run->be->host_free(sg->p);
    else
        free(sg->p);
    memset(sg, 0, sizeof(*sg));
}

/* Staging buffer i with room for bytes; kept for the next tensors. */
static void *stage_get(worker *wk, size_t i, size_t bytes, const char *name,
                       amg_err *err)
{
    staging *sg = &wk->stage[i];

    if (sg->cap >= bytes)
        return sg->p;
    stage_release(wk->run, sg);
    sg->p = wk->run->be->host_alloc(bytes ? bytes : 1);
    sg->pinned = sg->p != NULL;
    if (!sg->p)
        sg->p = malloc(bytes ? bytes : 1);
    if (!sg->p) {
        amg_err_set(err, AMG_ENOMEM, "cannot allocate %zu bytes of staging "
                    "memory for '%s'", bytes, name);
        return NULL;
    }
    sg->cap = bytes;
    return sg->p;
}

/* A whole tensor larger than a chunk needed larger staging: give it back
 * rather than hold it for the rest of the run. */
void amg__exec_stage_trim(worker *wk)
{
    size_t i;

    for (i = 0; i < wk->n_stage; i++)
        if (wk->stage[i].cap > wk->run->dev_chunk)
            stage_release(wk->run, &wk->stage[i]);
}

/* ---- chunks on the device ---- */

/* Staging buffers: two per position in order (by chunk parity), then two
 * for the root's rows coming back. */
static size_t stage_load(size_t k, int b)
{
    return 2 * k + (size_t)b;
}

static size_t stage_out(const worker *wk, int b)
{
    return 2 * wk->run->plan->n_nodes + (size_t)b;
}

/* Decode rows [r0, r0 + rows) of every LOAD node into staging set b. */
static int dev_stage(worker *wk, const tshape *ts, uint64_t r0, uint64_t rows,
                     int b, amg_err *err)
{
    const amg_plan *plan = wk->run->plan;
    size_t k, bytes = (size_t)(ts->chunk_rows * ts->row_numel) *
                      sizeof(float);
    int rc = AMG_OK;

    for (k = 0; rc == AMG_OK && k < wk->n_order; k++) {
        const amg_plan_node *nd = &plan->nodes[wk->order[k]];
        float *dst;

        if (nd->kind != AMG_NODE_LOAD)
            continue;
        if (atomic_load(&wk->run->stop))
            return AMG_EABORTED;
        dst = stage_get(wk, stage_load(k, b), bytes, nd->name, err);
        rc = dst ? amg__exec_decode_node(wk, nd, ts, r0, rows, dst, err)
                 : AMG_ENOMEM;
    }
    return rc;
}

/* Queue chunk [r0, r0 + rows) on the worker's stream: staging set b to
 * the device, every strategy call, and (unless reducing) the root's rows
 * back into the root's staging buffer b. */
static int dev_queue(worker *wk, const tshape *ts, uint64_t r0, uint64_t rows,
                     int b, enum call_kind kind, void *stats, amg_err *err)
{
    const exec_run *run = wk->run;
    const amg_plan *plan = run->plan;
    size_t k, bytes = (size_t)(rows * ts->row_numel) * sizeof(float);
    const node_val *root = &wk->vals[wk->n_order - 1];
    const char *name = wk->vals[0].t->name;
    void *back;
    int rc = AMG_OK;

    amg__exec_set_rows(wk, ts, r0, rows);
    for (k = 0; rc == AMG_OK && k < wk->n_order; k++) {
        const amg_plan_node *nd = &plan->nodes[wk->order[k]];

        if (atomic_load(&run->stop))
            return AMG_EABORTED;
        if (nd->kind != AMG_NODE_LOAD) {
            rc = amg__exec_call_strategy(wk, k, ts, r0, rows,
                                         k + 1 == wk->n_order ? kind
                                                              : CALL_MERGE,
                                         stats, err);
            continue;
        }
        rc = run->be->copy_h2d(wk->vals[k].dbuf,
                               wk->stage[stage_load(k, b)].p, bytes,
                               wk->stream);
        if (rc)
            return dev_fail(run, rc, "cannot copy rows to the device", name,
                            err);
    }
    if (rc || kind == CALL_REDUCE)
        return rc;
    back = stage_get(wk, stage_out(wk, b),
                     (size_t)(ts->chunk_rows * ts->row_numel) * sizeof(float),
                     name, err);
    if (!back)
        return AMG_ENOMEM;
    rc = run->be->copy_d2h(back, root->dbuf, bytes, wk->stream);
    return rc ? dev_fail(run, rc, "cannot copy rows from the device", name,
                         err) : AMG_OK;
}

/* One pass over the chunks on the device. While the device works on
 * chunk c, the CPU writes chunk c - 1 and decodes chunk c + 1: the
 * synchronisation at the end of each step is what frees the staging
 * buffers of parity b for step c + 2. */
int amg__exec_dev_pass(worker *wk, size_t ti, const tshape *ts,
                       enum call_kind kind, void *stats, amg_err *err)
{
    const char *name = wk->run->plan->outs[ti].name;
    uint64_t r0 = 0, prev_r0 = 0, prev_rows = 0, next;
    int b = 0, pending = 0, rc;

    rc = dev_stage(wk, ts, 0, amg__exec_rows_at(ts, 0), 0, err);
    while (rc == AMG_OK && r0 < ts->rows) {
        rc = dev_queue(wk, ts, r0, amg__exec_rows_at(ts, r0), b, kind, stats,
                       err);
        if (rc == AMG_OK && pending)
            rc = amg__exec_write_rows(wk, ti, ts, prev_r0, prev_rows,
                                      wk->stage[stage_out(wk, !b)].p, err);
        next = r0 + amg__exec_rows_at(ts, r0);
        if (rc == AMG_OK && next < ts->rows)
            rc = dev_stage(wk, ts, next, amg__exec_rows_at(ts, next), !b,
                           err);
        if (rc == AMG_OK)
            rc = dev_sync(wk, name, err);
        pending = kind != CALL_REDUCE;
        prev_r0 = r0;
        prev_rows = amg__exec_rows_at(ts, r0);
        r0 = next;
        b = !b;
    }
    if (rc == AMG_OK && pending)
        rc = amg__exec_write_rows(wk, ti, ts, prev_r0, prev_rows,
                                  wk->stage[stage_out(wk, !b)].p, err);
    return rc;
}

/* ---- routing ---- */

/* Whether a tensor of a device run is merged on the device, and if so
 * with how many rows a chunk (ts->chunk_rows): every strategy must have
 * AMG_CAP_CUDA, and a chunk for each node plus DEV_TEMP_CHUNKS of
 * temporaries must fit this worker's share of the budget, so that every
 * worker can hold its share at once. Chunks shrink to fit; a tensor that
 * must be whole and does not fit is merged on the CPU. */
int amg__exec_dev_route(worker *wk, tshape *ts, enum chunking how,
                        const char *name)
{
    exec_run *run = wk->run;
    const amg_plan *plan = run->plan;
    uint64_t per_row, fit, rows, need;
    char need_s[32], share_s[32];
    size_t k;

    if (!run->be)
        return 0;
    for (k = 0; k < wk->n_order; k++) {
        const amg_plan_node *nd = &plan->nodes[wk->order[k]];

        if (nd->kind == AMG_NODE_MERGE &&
            !(nd->strategy->s->caps & AMG_CAP_CUDA))
            goto cpu;                  /* said once at the start */
    }
    per_row = (uint64_t)(wk->n_order + DEV_TEMP_CHUNKS) * ts->row_numel *
              sizeof(float);
    fit = per_row ? run->dev_share / per_row : ts->rows;
    /* a 1-D tensor stays in one piece, as on the CPU (plugin.h promises
     * strategies that it is never split) */
    if (ts->ndim <= 1)
        how = CHUNK_WHOLE;
    rows = how == CHUNK_WHOLE ? ts->rows
                              : amg__exec_rows_for(ts, run->dev_chunk);
    if (rows > fit) {
        if (how == CHUNK_WHOLE || fit == 0) {
            if (run->o->verbose) {
                if (amg_mul_u64(per_row, rows, &need) < 0)
                    need = UINT64_MAX;
                amg_format_bytes(need, need_s, sizeof(need_s));
                amg_format_bytes(run->dev_share, share_s, sizeof(share_s));
                fprintf(stderr, "note: '%s' is merged on the cpu: %s it "
                        "needs %s of gpu memory, over the %s each worker "
                        "may use (--gpu-mem, -j)\n", name,
                        how == CHUNK_WHOLE ? "whole" : "even one row at a "
                        "time", need_s, share_s);
            }
            goto cpu;
        }
        rows = fit;
    }
    ts->chunk_rows = rows;
    atomic_fetch_add(&run->dev_tensors, 1);
    return 1;
cpu:
    atomic_fetch_add(&run->cpu_fallback, 1);
    return 0;
}

/* ---- the end of a tensor ---- */

/* The end of a tensor on the device: after a failure copies may still be
 * queued, and none may touch a buffer once it is freed or reused. */
int amg__exec_dev_drain(worker *wk, int rc, const char *name, amg_err *err)
{
    int sync_rc = wk->run->be->stream_sync(wk->stream);

    if (rc == AMG_OK && sync_rc)
        rc = dev_fail(wk->run, sync_rc, "device work failed", name, err);
    return rc;
}

/* ---- workers ---- */

/* The device side of worker i of jobs: staging slots and a stream. */
int amg__exec_dev_worker_init(worker *wk, size_t i, size_t jobs,
                              amg_err *err)
{
    const exec_run *run = wk->run;
    int rc;

    wk->n_stage = 2 * (run->plan->n_nodes + 1);
    wk->stage = calloc(wk->n_stage, sizeof(*wk->stage));
    if (!wk->stage)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    rc = run->be->stream_create(&wk->stream);
    if (rc) {
        wk->stream = NULL;
        return amg_err_set(err, rc, "cannot create a stream for worker %zu "
                           "of %zu on cuda:%d: %s", i + 1, jobs,
                           (int)amg_device_ordinal(run->o->dev),
                           run->be->error_string());
    }
    return AMG_OK;
}

/* Also after a partial amg__exec_dev_worker_init, and on a CPU run (no
 * stream, no staging). */
void amg__exec_dev_worker_free(worker *wk)
{
    size_t i;

    if (wk->stream)
        wk->run->be->stream_sync(wk->stream);
    for (i = 0; wk->stage && i < wk->n_stage; i++)
        stage_release(wk->run, &wk->stage[i]);
    if (wk->stream)
        wk->run->be->stream_destroy(wk->stream);
    free(wk->stage);
}

/* ---- the run ---- */

/* Say once which strategies keep their tensors on the CPU. */
static void note_no_cuda(const exec_run *run)
{
    const amg_plan *plan = run->plan;
    char line[AMG_ERR_MSG_MAX];
    size_t n, m, len = 0;
    int any = 0;

    for (n = 0; n < plan->n_nodes; n++) {
        const amg_strategy *s = plan->nodes[n].strategy
                                    ? plan->nodes[n].strategy->s : NULL;

        if (plan->nodes[n].kind != AMG_NODE_MERGE ||
            (s->caps & AMG_CAP_CUDA))
            continue;
        for (m = 0; m < n; m++)        /* each strategy once */
            if (plan->nodes[m].kind == AMG_NODE_MERGE &&
                plan->nodes[m].strategy->s == s)
                break;
        if (m < n)
            continue;
        if (len < sizeof(line))
            len += (size_t)snprintf(line + len, sizeof(line) - len, "%s'%s'",
                                    any ? ", " : "", s->id);
        any = 1;
    }
    if (any)
        fprintf(stderr, "note: no gpu support in %s; their tensors are "
                "merged on the cpu\n", line);
}

/* A device run: the backend, chunk size and each worker's share of the
 * device memory budget. */
int amg__exec_dev_setup(exec_run *run, amg_err *err)
{
    const amg_exec_opts *o = run->o;
    size_t jobs = o->jobs > 0 ? (size_t)o->jobs : 1;

    if (!o->dev)
        return AMG_OK;
    if (jobs > run->plan->n_outs && run->plan->n_outs)
        jobs = run->plan->n_outs;
    run->be = amg_device_backend(o->dev);
    run->dk = run->be->kernels();
    if (!run->dk)
        return amg_err_set(err, AMG_EDEVICE, "the %s backend has no kernel "
                           "table for cuda:%d", run->be->name,
                           (int)amg_device_ordinal(o->dev));
    run->dev_chunk = o->dev_chunk_bytes ? o->dev_chunk_bytes
                                        : AMG_EXEC_DEV_CHUNK;
    run->dev_share = amg_device_budget(o->dev) / jobs;
    if (!o->quiet)
        note_no_cuda(run);
    return AMG_OK;
}
