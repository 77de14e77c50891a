/* SPDX-License-Identifier: Apache-2.0 */
/*
 * executor.c - run a plan with a pool of workers (see executor.h).
 *
 * Workers take output tensors by index from an atomic counter. For each
 * tensor a worker lists the nodes its value depends on (each once, inputs
 * before users), gives every node one f32 buffer of a row chunk, and walks
 * the chunks in row order: LOAD nodes convert their rows from the stored
 * dtype, MERGE nodes call their strategy, and the root's rows are rounded
 * to the output dtype and written at their offset. The main thread only
 * watches: it turns the caller's abort flag into the workers' stop flag.
 *
 * This file holds the pool, the node graph, the CPU path and
 * amg_execute; a tensor that runs on a device takes the path in
 * exec_device.c. The types both share are in exec_internal.h.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crash_guard.h"
#include "ctx.h"
#include "exec_internal.h"
#include "kernels_cpu.h"
#include "output_meta.h"
#include "tensor_mem.h"
#include "util.h"

/* How often the main thread looks at the abort flag while workers run. */
#define WATCH_NSEC 20000000L

/* Bytewise copies and conversions move this many bytes at a time when the
 * configured chunk is larger. */
#define COPY_BYTES_MIN 4096u

/* One strategy instance per pipeline step. */
struct exec_inst {
    const amg_plugin_entry *e;         /* NULL: step has no MERGE node */
    void *inst;
    int created;                       /* create ran (destroy is due) */
    int serial;                        /* not REENTRANT: calls take lock */
    pthread_mutex_t lock;
};

static uint64_t numel_of(const amg_plan_tensor *t)
{
    uint64_t n = 1;
    int d;

    for (d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return n;
}

static void record_error(exec_run *run, const amg_err *e)
{
    pthread_mutex_lock(&run->lock);
    if (run->err.status == AMG_OK)
        run->err = *e;
    atomic_store(&run->stop, 1);
    pthread_mutex_unlock(&run->lock);
}

/* ---- the node graph of one output tensor ---- */

static int list_nodes(worker *wk, size_t n, amg_err *err);

static int list_inputs(worker *wk, const amg_plan_node *nd, amg_err *err)
{
    size_t i;
    int rc = AMG_OK;

    if (nd->kind != AMG_NODE_MERGE)
        return AMG_OK;
    if (nd->base != AMG_NO_NODE)
        rc = list_nodes(wk, nd->base, err);
    for (i = 0; rc == AMG_OK && i < nd->n_inputs; i++)
        rc = list_nodes(wk, nd->inputs[i], err);
    for (i = 0; rc == AMG_OK && nd->aux && i < nd->n_inputs; i++)
        if (nd->aux[i] != AMG_NO_NODE)
            rc = list_nodes(wk, nd->aux[i], err);
    return rc;
}

/* Post-order walk: a node after everything it reads, each node once, so a
 * step shared by two later steps is evaluated once per chunk. */
static int list_nodes(worker *wk, size_t n, amg_err *err)
{
    const amg_plan *plan = wk->run->plan;
    int rc;

    if (n >= plan->n_nodes)
        return amg_err_set(err, AMG_EINVAL, "plan refers to node %zu of %zu",
                           n, plan->n_nodes);
    if (wk->mark[n] == wk->stamp)
        return AMG_OK;
    wk->mark[n] = wk->stamp;
    rc = list_inputs(wk, &plan->nodes[n], err);
    if (rc)
        return rc;
    wk->slot[n] = wk->n_order;
    wk->order[wk->n_order++] = n;
    return AMG_OK;
}

static int same_shape(const amg_plan_node *nd, const amg_plan_tensor *out)
{
    int d;

    if (nd->ndim != out->ndim)
        return 0;
    for (d = 0; d < nd->ndim; d++)
        if (nd->shape[d] != out->shape[d])
            return 0;
    return 1;
}

static enum chunking chunking_of(const worker *wk)
{
    const amg_plan *plan = wk->run->plan;
    size_t i, merges = 0;
    int elementwise = 1;
    const amg_plan_node *last = NULL;

    for (i = 0; i < wk->n_order; i++) {
        const amg_plan_node *nd = &plan->nodes[wk->order[i]];

        if (nd->kind != AMG_NODE_MERGE)
            continue;
        merges++;
        last = nd;
        if (!(nd->strategy->s->caps & AMG_CAP_ELEMENTWISE))
            elementwise = 0;
    }
    if (elementwise)
        return CHUNK_ROWS;
    if (merges == 1 && (last->strategy->s->caps & AMG_CAP_TWO_PASS) &&
        last->strategy->s->reduce && last->strategy->s->apply)
        return CHUNK_TWO_PASS;
    return CHUNK_WHOLE;
}

/* Rows in a chunk of chunk_bytes f32 bytes per input: at least one, at
 * most the whole tensor. */
uint64_t amg__exec_rows_for(const tshape *ts, uint64_t chunk_bytes)
{
    uint64_t row_bytes = ts->row_numel * sizeof(float), rows;

    rows = row_bytes ? chunk_bytes / row_bytes : ts->rows;
    if (rows < 1)
        rows = 1;
    return rows > ts->rows ? ts->rows : rows;
}

/* ---- buffers ---- */

static int need_bytes(worker *wk, size_t n, amg_err *err)
{
    unsigned char *b;

    if (n <= wk->bytes_cap)
        return AMG_OK;
    b = realloc(wk->bytes, n);
    if (!b)
        return amg_err_set(err, AMG_ENOMEM, "cannot allocate %zu bytes", n);
    wk->bytes = b;
    wk->bytes_cap = n;
    return AMG_OK;
}

/* A host buffer of at least elems floats: the smallest spare that fits,
 * else a new one; *cap is how many it holds. */
static float *take_buf(worker *wk, size_t elems, size_t *cap)
{
    size_t i, best = wk->n_spare;
    float *p;

    for (i = 0; i < wk->n_spare; i++)
        if (wk->spare[i].cap >= elems &&
            (best == wk->n_spare || wk->spare[i].cap < wk->spare[best].cap))
            best = i;
    if (best == wk->n_spare) {
        *cap = elems;
        return malloc(elems * sizeof(float));
    }
    p = wk->spare[best].p;
    *cap = wk->spare[best].cap;
    wk->spare[best] = wk->spare[--wk->n_spare];
    return p;
}

/* Keep buf (of cap floats) for a later tensor when it is no larger than a
 * chunk and there is room, else free it. */
static void give_buf(worker *wk, float *buf, size_t cap)
{
    if (buf == NULL)
        return;
    if (wk->n_spare < EXEC_SPARE &&
        cap * sizeof(float) <= wk->run->o->chunk_bytes) {
        wk->spare[wk->n_spare].p = buf;
        wk->spare[wk->n_spare].cap = cap;
        wk->n_spare++;
        return;
    }
    free(buf);
}

static void free_vals(worker *wk)
{
    size_t i;

    for (i = 0; i < wk->n_order; i++) {
        give_buf(wk, wk->vals[i].buf, wk->vals[i].cap);
        if (wk->vals[i].dbuf)
            amg_device_free(wk->run->o->dev, wk->vals[i].dbuf,
                            wk->vals[i].dbytes, wk->stream);
        amg_tensor_free(wk->vals[i].t);
        free(wk->vals[i].ins);
        free(wk->vals[i].aux);
        free(wk->vals[i].ps);
    }
    memset(wk->vals, 0, wk->n_order * sizeof(*wk->vals));
}

/* A mapped f32 source read whole rows at a time can be handed to
 * strategies in place: no copy, and read-only by the handle's flag. */
static const float *mapped_f32(const amg_plan *plan, const amg_plan_node *nd)
{
    const void *p;

    if (nd->kind != AMG_NODE_LOAD || nd->cropped || nd->lora_mod ||
        nd->src->t->dtype != AMG_DT_F32)
        return NULL;
    p = amg_st_data(amg_model_shard(amg_plan_load_model(plan, nd), nd->src),
                    nd->src->t);
    return p && ((uintptr_t)p % sizeof(float)) == 0 ? p : NULL;
}

/* The node's chunk buffer: device memory on the device, else host memory
 * unless the value can point into a mapped source. */
static int alloc_val(worker *wk, const amg_plan_node *nd, node_val *v,
                     uint64_t elems, const char *name, amg_err *err)
{
    int rc;

    if (elems > SIZE_MAX / sizeof(float))
        return amg_err_set(err, AMG_ENOMEM, "chunk of '%s' too large", name);
    /* at least one element: malloc(0) may return NULL */
    if (wk->on_dev) {
        v->dbytes = (elems ? elems : 1) * sizeof(float);
        rc = amg_device_alloc(wk->run->o->dev, v->dbytes, wk->stream,
                              &v->dbuf, err);
        if (rc)
            v->dbuf = NULL;
        return rc ? amg_err_prefix(err, "cannot allocate gpu memory for "
                                   "'%s': ", name) : AMG_OK;
    }
    if (mapped_f32(wk->run->plan, nd))
        return AMG_OK;
    v->buf = take_buf(wk, elems ? elems : 1, &v->cap);
    if (!v->buf)
        return amg_err_set(err, AMG_ENOMEM, "cannot allocate a %llu-"
                           "element chunk for '%s'",
                           (unsigned long long)elems, name);
    return AMG_OK;
}

static int setup_val(worker *wk, const tshape *ts, size_t k, const char *name,
                     amg_err *err)
{
    const amg_plan *plan = wk->run->plan;
    const amg_plan_node *nd = &plan->nodes[wk->order[k]];
    node_val *v = &wk->vals[k];
    int64_t shape[AMG_ST_MAX_DIMS];
    amg_device dev;
    size_t i;
    int d, rc;

    for (d = 0; d < ts->ndim; d++)
        shape[d] = (int64_t)ts->shape[d];
    if (ts->ndim > 0)
        shape[0] = (int64_t)ts->chunk_rows;
    rc = alloc_val(wk, nd, v, ts->chunk_rows * ts->row_numel, name, err);
    if (rc)
        return rc;
    dev.type = wk->on_dev ? AMG_DEVICE_CUDA : AMG_DEVICE_CPU;
    dev.id = wk->on_dev ? amg_device_ordinal(wk->run->o->dev) : 0;
    rc = amg_tensor_wrap_device(&v->t, wk->on_dev ? v->dbuf : v->buf, dev,
                                amg_dl_make(AMG_DL_FLOAT, 32), ts->ndim,
                                shape, name, nd->kind == AMG_NODE_LOAD
                                                 ? AMG_TENSOR_READ_ONLY : 0,
                                err);
    if (rc)
        return rc;
    v->t->full_numel = ts->rows * ts->row_numel;
    if (nd->kind != AMG_NODE_MERGE)
        return AMG_OK;
    v->ins = calloc(nd->n_inputs ? nd->n_inputs : 1, sizeof(*v->ins));
    v->ps = calloc(nd->n_inputs ? nd->n_inputs : 1, sizeof(*v->ps));
    if (!v->ins || !v->ps)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    for (i = 0; i < nd->n_inputs; i++) {
        v->ins[i] = wk->vals[wk->slot[nd->inputs[i]]].t;
        v->ps[i] = (const amg_params *)&nd->per_model[i];
    }
    if (!nd->aux)
        return AMG_OK;
    v->aux = calloc(nd->n_inputs ? nd->n_inputs : 1, sizeof(*v->aux));
    if (!v->aux)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    for (i = 0; i < nd->n_inputs; i++)
        if (nd->aux[i] != AMG_NO_NODE)
            v->aux[i] = wk->vals[wk->slot[nd->aux[i]]].t;
    return AMG_OK;
}

/* Point every handle at rows [r0, r0 + rows). */
void amg__exec_set_rows(worker *wk, const tshape *ts, uint64_t r0,
                        uint64_t rows)
{
    const amg_plan *plan = wk->run->plan;
    size_t k;

    for (k = 0; k < wk->n_order; k++) {
        node_val *v = &wk->vals[k];
        const float *m = wk->on_dev
            ? NULL : mapped_f32(plan, &plan->nodes[wk->order[k]]);

        if (ts->ndim > 0)
            v->t->dl.shape[0] = (int64_t)rows;
        v->t->elem_offset = r0 * ts->row_numel;
        v->t->dl.data = m ? (void *)(m + r0 * ts->row_numel)
                          : wk->on_dev ? v->dbuf : (void *)v->buf;
    }
}

/* ---- node evaluation ---- */

/* Rows [r0, r0 + rows) of a LOAD node as f32 in dst. A cropped node takes
 * the first row_numel elements of each (longer) source row. */
static int load_rows(worker *wk, const amg_plan_node *nd, const tshape *ts,
                     uint64_t r0, uint64_t rows, float *dst, amg_err *err)
{
    const amg_plan *plan = wk->run->plan;
    const amg_st_file *f = amg_model_shard(amg_plan_load_model(plan, nd),
                                           nd->src);
    const amg_st_tensor *st = nd->src->t;
    size_t es = amg_dtype_size(st->dtype);
    uint64_t src_rows = st->ndim ? st->shape[0] : 1;
    uint64_t src_row = src_rows ? st->numel / src_rows : 0;
    uint64_t per = nd->cropped ? ts->row_numel : rows * ts->row_numel;
    uint64_t n_reads = nd->cropped ? rows : 1, r;
    const unsigned char *map = amg_st_data(f, st);
    int rc;

    if (!nd->cropped && src_row != ts->row_numel)
        return amg_err_set(err, AMG_EINVAL, "tensor '%s' of '%s' has rows of "
                           "%llu elements, the plan %llu", st->name,
                           f->path, (unsigned long long)src_row,
                           (unsigned long long)ts->row_numel);
    if (!map) {
        rc = need_bytes(wk, per * es, err);
        if (rc)
            return rc;
    }
    for (r = 0; r < n_reads; r++) {
        uint64_t off = (r0 + r) * src_row * es;
        float *out = dst + r * per;

        if (map) {
            amg_to_f32(st->dtype, map + off, out, per);
        } else {
            rc = amg_st_read(f, st, off, wk->bytes, per * es, err);
            if (rc)
                return rc;
            amg_to_f32(st->dtype, wk->bytes, out, per);
        }
    }
    atomic_fetch_add(&wk->run->bytes_in, (uint_fast64_t)(per * es * n_reads));
    return AMG_OK;
}

/* One strategy call: merge, or reduce/apply of the two-pass form. */
int amg__exec_call_strategy(worker *wk, size_t k, const tshape *ts,
                            uint64_t r0, uint64_t rows, enum call_kind kind,
                            void *stats, amg_err *err)
{
    exec_run *run = wk->run;
    const amg_plan_node *nd = &run->plan->nodes[wk->order[k]];
    const amg_strategy *s = nd->strategy->s;
    exec_inst *in = &run->insts[nd->step];
    node_val *v = &wk->vals[k];
    amg_merge_call c;
    amg_ctx ctx;
    int rc;

    memset(&c, 0, sizeof(c));
    c.struct_size = (uint32_t)sizeof(c);
    c.n_inputs = (uint32_t)nd->n_inputs;
    c.host = amg_host_api_get();
    c.k = wk->on_dev ? run->dk : amg_kernels_cpu();
    c.tensor_name = nd->name;
    c.layer_index = nd->layer_index;
    c.n_layers = run->plan->out_layers > 0 ? run->plan->out_layers : 0;
    c.base = nd->base != AMG_NO_NODE ? wk->vals[wk->slot[nd->base]].t : NULL;
    c.inputs = v->ins;
    c.aux = v->aux;
    c.input_params = v->ps;
    c.params = (const amg_params *)&nd->global;
    c.out = v->t;
    c.seed = nd->seed;
    c.row_begin = r0;
    c.row_end = r0 + rows;
    c.rows_total = ts->rows;
    c.pass = kind == CALL_REDUCE ? wk->pass : 0;
    /* plugins poll the caller's flag and the run's stop flag, so a
     * failure in another worker stops a long strategy call too */
    amg_ctx_init(&ctx, s->id, nd->name, run->o->abort_flag);
    ctx.stop = &run->stop;
    if (wk->on_dev) {
        ctx.cuda_stream = wk->stream;
        ctx.dev = run->o->dev;
    }
    if (in->serial)
        pthread_mutex_lock(&in->lock);
    amg_crash_guard_strategy(s->id);   /* a crash now names the plugin */
    if (kind == CALL_REDUCE)
        rc = s->reduce(in->inst, &ctx, &c, stats);
    else if (kind == CALL_APPLY)
        rc = s->apply(in->inst, &ctx, &c, stats);
    else
        rc = s->merge(in->inst, &ctx, &c);
    amg_crash_guard_strategy(NULL);
    if (in->serial)
        pthread_mutex_unlock(&in->lock);
    amg_ctx_release(&ctx);
    if (rc != AMG_OK)
        amg_err_set(err, rc, "merging '%s' with '%s': %s", nd->name, s->id,
                    ctx.err.msg[0] ? ctx.err.msg : amg_status_str(rc));
    return rc;
}

/* Rows [r0, r0 + rows) of a LOAD node's value as f32 in dst: decoded,
 * and the adapter's update joined before any strategy sees it. */
int amg__exec_decode_node(worker *wk, const amg_plan_node *nd,
                          const tshape *ts, uint64_t r0, uint64_t rows,
                          float *dst, amg_err *err)
{
    const amg_plan *plan = wk->run->plan;
    int rc = load_rows(wk, nd, ts, r0, rows, dst, err);

    if (rc == AMG_OK && nd->lora_mod)
        rc = amg_lora_fold_rows(&plan->loras[nd->lora], nd->lora_mod, r0,
                                rows, ts->row_numel, dst, err);
    return rc;
}

/* Evaluate every node for rows [r0, r0 + rows) on the CPU; the last node
 * listed is the root. kind applies to the root (reduce or apply in two
 * passes). */
static int eval_chunk(worker *wk, const tshape *ts, uint64_t r0,
                      uint64_t rows, enum call_kind kind, void *stats,
                      amg_err *err)
{
    const amg_plan *plan = wk->run->plan;
    size_t k;
    int rc = AMG_OK;

    amg__exec_set_rows(wk, ts, r0, rows);
    for (k = 0; rc == AMG_OK && k < wk->n_order; k++) {
        const amg_plan_node *nd = &plan->nodes[wk->order[k]];

        if (atomic_load(&wk->run->stop))
            return AMG_EABORTED;
        if (nd->kind == AMG_NODE_LOAD) {
            if (!mapped_f32(plan, nd))
                rc = amg__exec_decode_node(wk, nd, ts, r0, rows,
                                           wk->vals[k].buf, err);
            else
                atomic_fetch_add(&wk->run->bytes_in, (uint_fast64_t)(
                    rows * ts->row_numel * sizeof(float)));
        } else {
            rc = amg__exec_call_strategy(wk, k, ts, r0, rows,
                                         k + 1 == wk->n_order ? kind
                                                              : CALL_MERGE,
                                         stats, err);
        }
    }
    return rc;
}

/* Round rows of the root's value (src, f32 in host memory) to the output
 * dtype and write them. */
int amg__exec_write_rows(worker *wk, size_t ti, const tshape *ts, uint64_t r0,
                         uint64_t rows, const float *src, amg_err *err)
{
    const amg_plan_tensor *out = &wk->run->plan->outs[ti];
    size_t es = amg_dtype_size(out->dtype);
    uint64_t n = rows * ts->row_numel;
    int rc = need_bytes(wk, n * es, err);

    if (rc)
        return rc;
    amg_from_f32(out->dtype, src, wk->bytes, n);
    return amg_model_writer_write(&wk->run->w, ti, r0 * ts->row_numel * es,
                                  wk->bytes, n * es, err);
}

/* Rows in the chunk that starts at row r0: the last one may be short. */
uint64_t amg__exec_rows_at(const tshape *ts, uint64_t r0)
{
    return ts->rows - r0 < ts->chunk_rows ? ts->rows - r0 : ts->chunk_rows;
}

/* One pass over the chunks: kind CALL_MERGE or CALL_APPLY writes the
 * root's rows, CALL_REDUCE only feeds stats. */
static int run_pass(worker *wk, size_t ti, const tshape *ts,
                    enum call_kind kind, void *stats, amg_err *err)
{
    uint64_t r0, rows;
    int rc = AMG_OK;

    if (wk->on_dev)
        return amg__exec_dev_pass(wk, ti, ts, kind, stats, err);
    for (r0 = 0; rc == AMG_OK && r0 < ts->rows; r0 += rows) {
        rows = amg__exec_rows_at(ts, r0);
        rc = eval_chunk(wk, ts, r0, rows, kind, stats, err);
        if (rc == AMG_OK && kind != CALL_REDUCE)
            rc = amg__exec_write_rows(
                wk, ti, ts, r0, rows,
                amg_tensor_data(wk->vals[wk->n_order - 1].t), err);
    }
    return rc;
}

/* ---- one output tensor ---- */

/* A tensor stored as is: bytes copied without a round trip through f32. */
static int copy_tensor(worker *wk, size_t ti, const amg_plan_node *nd,
                       amg_err *err)
{
    exec_run *run = wk->run;
    const amg_st_file *f = amg_model_shard(amg_plan_load_model(run->plan, nd),
                                           nd->src);
    const amg_st_tensor *st = nd->src->t;
    uint64_t total = st->end - st->begin, off, len;
    uint64_t step = run->o->chunk_bytes > COPY_BYTES_MIN
        ? run->o->chunk_bytes : COPY_BYTES_MIN;
    const unsigned char *map = amg_st_data(f, st);
    int rc = AMG_OK;

    if (!map)
        rc = need_bytes(wk, (size_t)(total < step ? total : step), err);
    for (off = 0; rc == AMG_OK && off < total; off += len) {
        if (atomic_load(&run->stop))
            return AMG_EABORTED;
        len = total - off < step ? total - off : step;
        if (!map)
            rc = amg_st_read(f, st, off, wk->bytes, (size_t)len, err);
        if (rc == AMG_OK)
            rc = amg_model_writer_write(&run->w, ti, off,
                                        map ? map + off : wk->bytes,
                                        (size_t)len, err);
        if (rc == AMG_OK)
            atomic_fetch_add(&run->bytes_in, (uint_fast64_t)len);
    }
    return rc;
}

static int two_pass(worker *wk, size_t ti, const tshape *ts, amg_err *err)
{
    const amg_plan_node *root =
        &wk->run->plan->nodes[wk->order[wk->n_order - 1]];
    uint64_t sb = root->strategy->s->stats_bytes;
    uint32_t passes = root->strategy->s->reduce_passes, pass;
    void *stats = calloc(1, sb ? sb : 1);
    int rc = AMG_OK;

    if (passes == 0)
        passes = 1;

    if (!stats)
        return amg_err_set(err, AMG_ENOMEM, "cannot allocate %llu bytes of "
                           "statistics for '%s'", (unsigned long long)sb,
                           root->name);
    /* reduce sees the chunks one at a time in row order, as promised,
     * once per pass; the statistics stay in host memory on any device */
    for (pass = 0; rc == AMG_OK && pass < passes; pass++) {
        wk->pass = pass;
        rc = run_pass(wk, ti, ts, CALL_REDUCE, stats, err);
    }
    wk->pass = 0;
    if (rc == AMG_OK)
        rc = run_pass(wk, ti, ts, CALL_APPLY, stats, err);
    free(stats);
    return rc;
}

static int run_tensor(worker *wk, size_t ti, amg_err *err)
{
    const amg_plan *plan = wk->run->plan;
    const amg_plan_tensor *out = &plan->outs[ti];
    const amg_plan_node *root;
    uint64_t numel = 1;
    enum chunking how;
    tshape ts;
    size_t k;
    int d, rc;

    wk->n_order = 0;
    if (++wk->stamp == 0) {            /* wrapped: forget old stamps */
        memset(wk->mark, 0, plan->n_nodes * sizeof(*wk->mark));
        wk->stamp = 1;
    }
    rc = list_nodes(wk, out->node, err);
    if (rc)
        return rc;
    root = &plan->nodes[out->node];
    if (root->kind == AMG_NODE_LOAD && !root->cropped && !root->lora_mod &&
        root->src->t->dtype == out->dtype)
        return copy_tensor(wk, ti, root, err);
    for (k = 0; k < wk->n_order; k++)
        if (!same_shape(&plan->nodes[wk->order[k]], out))
            return amg_err_set(err, AMG_EINVAL, "plan for '%s' mixes shapes",
                               out->name);
    for (d = 0; d < out->ndim; d++)
        numel *= out->shape[d];
    ts.ndim = out->ndim;
    ts.shape = out->shape;
    ts.rows = out->ndim ? out->shape[0] : 1;
    ts.row_numel = ts.rows ? numel / ts.rows : 0;
    if (numel == 0)
        return AMG_OK;                 /* nothing to compute or write */
    how = chunking_of(wk);
    /* a value that is only a converted or adapted input has no strategy
     * to run on the device */
    wk->on_dev = root->kind == AMG_NODE_MERGE &&
                 amg__exec_dev_route(wk, &ts, how, out->name);
    /* a 1-D tensor (a norm, a bias) stays whole, as on the device: it is
     * small, and a strategy that ranks or normalises it as one row needs
     * it whole (plugin.h promises this) */
    if (!wk->on_dev)
        ts.chunk_rows = how == CHUNK_WHOLE || ts.ndim <= 1
            ? ts.rows : amg__exec_rows_for(&ts, wk->run->o->chunk_bytes);
    for (k = 0; rc == AMG_OK && k < wk->n_order; k++)
        rc = setup_val(wk, &ts, k, out->name, err);
    if (rc == AMG_OK)
        rc = how == CHUNK_TWO_PASS ? two_pass(wk, ti, &ts, err)
                                   : run_pass(wk, ti, &ts, CALL_MERGE, NULL,
                                              err);
    if (wk->on_dev)
        rc = amg__exec_dev_drain(wk, rc, out->name, err);
    free_vals(wk);
    if (wk->on_dev)
        amg__exec_stage_trim(wk);
    wk->on_dev = 0;
    return rc;
}

static void *worker_main(void *arg)
{
    worker *wk = arg;
    exec_run *run = wk->run;
    const amg_plan *plan = run->plan;
    amg_err err;
    size_t i;
    int rc;

    amg_err_clear(&err);
    while (!atomic_load(&run->stop)) {
        i = atomic_fetch_add(&run->next, 1);
        if (i >= plan->n_outs)
            break;
        rc = run_tensor(wk, i, &err);
        if (rc == AMG_EABORTED && atomic_load(&run->stop))
            break;                     /* someone else's failure, or ^C */
        if (rc) {
            if (err.status == AMG_OK)
                amg_err_set(&err, rc, "merging '%s': %s", plan->outs[i].name,
                            amg_status_str(rc));
            record_error(run, &err);
            break;
        }
        amg_progress_add(&run->prog, 1, amg_dtype_size(plan->outs[i].dtype) *
                                            numel_of(&plan->outs[i]));
    }
    pthread_mutex_lock(&run->lock);
    run->running--;
    pthread_cond_signal(&run->idle);
    pthread_mutex_unlock(&run->lock);
    return NULL;
}

/* ---- strategy instances ---- */

static int create_insts(exec_run *run, amg_err *err)
{
    const amg_plan *plan = run->plan;
    size_t n;

    run->n_insts = plan->pipe->n_steps;
    run->insts = calloc(run->n_insts ? run->n_insts : 1, sizeof(*run->insts));
    if (!run->insts)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    /* the first node of a step carries the parameters create sees */
    for (n = 0; n < plan->n_nodes; n++) {
        const amg_plan_node *nd = &plan->nodes[n];
        exec_inst *in;
        amg_ctx ctx;
        int rc;

        if (nd->kind != AMG_NODE_MERGE || nd->step >= run->n_insts ||
            run->insts[nd->step].e)
            continue;
        in = &run->insts[nd->step];
        in->e = nd->strategy;
        if (!(nd->strategy->s->caps & AMG_CAP_CPU))
            return amg_err_set(err, AMG_EUNSUPPORTED, "strategy '%s' of step "
                               "'%s' does not run on the cpu",
                               nd->strategy->s->id,
                               plan->pipe->steps[nd->step].name);
        in->serial = !(nd->strategy->s->caps & AMG_CAP_REENTRANT);
        if (in->serial)
            pthread_mutex_init(&in->lock, NULL);
        if (!nd->strategy->s->create)
            continue;
        amg_ctx_init(&ctx, nd->strategy->s->id, NULL, run->o->abort_flag);
        rc = nd->strategy->s->create(&ctx, amg_host_api_get(), &nd->global,
                                     &in->inst);
        amg_ctx_release(&ctx);
        if (rc != AMG_OK)
            return amg_err_set(err, rc, "cannot set up '%s' for step '%s': %s",
                               nd->strategy->s->id,
                               plan->pipe->steps[nd->step].name,
                               ctx.err.msg[0] ? ctx.err.msg
                                              : amg_status_str(rc));
        in->created = 1;
    }
    return AMG_OK;
}

static void destroy_insts(exec_run *run)
{
    size_t i;

    for (i = 0; run->insts && i < run->n_insts; i++) {
        exec_inst *in = &run->insts[i];

        if (in->created && in->e->s->destroy)
            in->e->s->destroy(in->inst);
        if (in->e && in->serial)
            pthread_mutex_destroy(&in->lock);
    }
    free(run->insts);
    run->insts = NULL;
}

/* ---- the pool ---- */

static int worker_init(worker *wk, exec_run *run, size_t i, size_t jobs,
                       amg_err *err)
{
    size_t n = run->plan->n_nodes ? run->plan->n_nodes : 1;

    memset(wk, 0, sizeof(*wk));
    wk->run = run;
    wk->order = calloc(n, sizeof(*wk->order));
    wk->mark = calloc(n, sizeof(*wk->mark));
    wk->slot = calloc(n, sizeof(*wk->slot));
    wk->vals = calloc(n, sizeof(*wk->vals));
    if (!wk->order || !wk->mark || !wk->slot || !wk->vals)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    if (!run->be)
        return AMG_OK;
    return amg__exec_dev_worker_init(wk, i, jobs, err);
}

static void worker_free(worker *wk)
{
    amg__exec_dev_worker_free(wk);
    free(wk->order);
    free(wk->mark);
    free(wk->slot);
    free(wk->vals);
    free(wk->bytes);
    while (wk->n_spare > 0)
        free(wk->spare[--wk->n_spare].p);
}

/* Wait for the workers, turning the caller's abort flag into stop. A
 * signal handler cannot wake a condition variable, hence the timed wait. */
static void watch(exec_run *run)
{
    struct timespec ts;

    pthread_mutex_lock(&run->lock);
    while (run->running > 0) {
        if (run->o->abort_flag && *run->o->abort_flag)
            atomic_store(&run->stop, 1);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WATCH_NSEC;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&run->idle, &run->lock, &ts);
    }
    pthread_mutex_unlock(&run->lock);
}

static int run_pool(exec_run *run, amg_err *err)
{
    size_t jobs = run->o->jobs > 0 ? (size_t)run->o->jobs : 1, i, started = 0;
    pthread_t *tids;
    worker *wks;
    int rc = AMG_OK;

    if (jobs > run->plan->n_outs)
        jobs = run->plan->n_outs ? run->plan->n_outs : 1;
    tids = calloc(jobs, sizeof(*tids));
    wks = calloc(jobs, sizeof(*wks));
    if (!tids || !wks) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < jobs; i++) {
        rc = worker_init(&wks[i], run, i, jobs, err);
        if (rc)
            break;
        pthread_mutex_lock(&run->lock);
        run->running++;
        pthread_mutex_unlock(&run->lock);
        errno = pthread_create(&tids[i], NULL, worker_main, &wks[i]);
        if (errno) {
            rc = amg_err_errno(err, AMG_ENOMEM, errno, "cannot start worker "
                               "%zu of %zu", i + 1, jobs);
            pthread_mutex_lock(&run->lock);
            run->running--;
            pthread_mutex_unlock(&run->lock);
            break;
        }
        started++;
    }
    if (rc)
        atomic_store(&run->stop, 1);
    watch(run);
    for (i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
out:
    for (i = 0; wks && i < jobs; i++)
        if (wks[i].run)
            worker_free(&wks[i]);
    free(wks);
    free(tids);
    return rc;
}

static int open_writer(exec_run *run, const char *out_dir, amg_err *err)
{
    const amg_plan *plan = run->plan;
    amg_st_spec *specs = calloc(plan->n_outs ? plan->n_outs : 1,
                                sizeof(*specs));
    size_t i;
    int rc;

    if (!specs)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    for (i = 0; i < plan->n_outs; i++) {
        specs[i].name = plan->outs[i].name;
        specs[i].dtype = plan->outs[i].dtype;
        specs[i].ndim = plan->outs[i].ndim;
        memcpy(specs[i].shape, plan->outs[i].shape, sizeof(specs[i].shape));
    }
    rc = amg_model_writer_open(&run->w, out_dir, specs, plan->n_outs,
                               run->o->max_shard_size
                                   ? run->o->max_shard_size
                                   : AMG_DEFAULT_SHARD_SIZE,
                               run->o->overwrite, err);
    free(specs);
    return rc;
}

static int aborted(const exec_run *run)
{
    return run->o->abort_flag && *run->o->abort_flag;
}

int amg_execute(const amg_plan *plan, const char *out_dir,
                const amg_exec_opts *o, amg_exec_stats *st, amg_err *err)
{
    exec_run run;
    double t0 = amg_progress_now();
    int rc, writer_open = 0, prog = 0;

    memset(&run, 0, sizeof(run));
    memset(st, 0, sizeof(*st));
    run.plan = plan;
    run.o = o;
    atomic_init(&run.next, 0);
    atomic_init(&run.bytes_in, 0);
    atomic_init(&run.stop, 0);
    atomic_init(&run.dev_tensors, 0);
    atomic_init(&run.cpu_fallback, 0);
    amg_err_clear(&run.err);
    pthread_mutex_init(&run.lock, NULL);
    pthread_cond_init(&run.idle, NULL);
    rc = amg_output_meta_check(plan, err);
    if (!rc)
        rc = create_insts(&run, err);
    if (!rc)
        rc = amg__exec_dev_setup(&run, err);
    if (!rc) {
        rc = open_writer(&run, out_dir, err);
        writer_open = rc == AMG_OK;
    }
    if (!rc) {
        amg_progress_init(&run.prog, stderr, o->progress, plan->n_outs,
                          run.w.total_size);
        prog = 1;
        rc = run_pool(&run, err);
    }
    if (!rc && run.err.status != AMG_OK) {
        *err = run.err;
        rc = run.err.status;
    }
    if (aborted(&run)) {
        rc = amg_err_set(err, AMG_EABORTED, "interrupted");
    }
    if (!rc)
        rc = amg_output_meta_write(&run.w, plan, err);
    if (!rc && aborted(&run))
        rc = amg_err_set(err, AMG_EABORTED, "interrupted");
    if (prog)
        amg_progress_end(&run.prog, rc == AMG_OK);
    st->tensors = rc == AMG_OK ? plan->n_outs : 0;
    st->bytes_out = writer_open ? run.w.total_size : 0;
    if (writer_open) {
        if (rc)
            amg_model_writer_abort(&run.w);
        else
            rc = amg_model_writer_commit(&run.w, err);
    }
    destroy_insts(&run);
    st->bytes_in = atomic_load(&run.bytes_in);
    st->dev_tensors = atomic_load(&run.dev_tensors);
    st->cpu_fallback = atomic_load(&run.cpu_fallback);
    st->seconds = amg_progress_now() - t0;
    pthread_cond_destroy(&run.idle);
    pthread_mutex_destroy(&run.lock);
    return rc;
}
