/* SPDX-License-Identifier: Apache-2.0 */
/*
 * block.c - a call's rows in blocks small enough for the CPU's cache.
 *
 * The sparsifiers chain many kernels (delta, mask, apply, rescale, the
 * mix), each a full pass over its operands. Over a whole host chunk (MiBs
 * a tensor) every pass goes to memory and every temporary is a fresh
 * large allocation the kernel must fault in; over a block of whole rows
 * the chain stays in cache. A block is handed to the pass function as a
 * call of its own: views of the call's tensors at those rows, row_begin
 * and row_end narrowed, elem_offset moved along. Row chunks in row order
 * are already what the passes must answer the same for (the executor may
 * chunk any way), so the results do not change, bit for bit.
 *
 * Views only move dl.byte_offset, so they are valid on any device; only
 * host memory is blocked, since a GPU wants the whole chunk per launch.
 */
#include <stdint.h>
#include <string.h>

#include "gta.h"

/* Elements a block aims at: with base, three inputs, their deltas, masks
 * and the output at this size, the working set is about 600 KiB (L2). */
#define GTA_BLOCK_ELEMS 16384u
/* Dimensions a view can hold; more are passed through unblocked. */
#define GTA_VIEW_DIMS 8

typedef struct gta_view {
    amg_tensor t;
    int64_t shape[GTA_VIEW_DIMS];
} gta_view;

/* v = rows [r0, r0 + rows) of x (ndim >= 1, compact). */
static void view_rows(gta_view *v, const amg_tensor *x, uint64_t r0,
                      uint64_t rows)
{
    uint64_t per = amg_tensor_row_numel(x);

    v->t = *x;
    memcpy(v->shape, x->dl.shape, (size_t)x->dl.ndim * sizeof(int64_t));
    v->shape[0] = (int64_t)rows;
    v->t.dl.shape = v->shape;
    v->t.dl.byte_offset += r0 * per * amg_dl_size(x->dl.dtype);
    v->t.elem_offset += r0 * per;
}

static int on_host(const amg_tensor *t)
{
    return t->dl.device.type == AMG_DEVICE_CPU ||
           t->dl.device.type == AMG_DEVICE_CUDA_HOST;
}

/* Rows per block, or 0 when the call is passed through whole: not in host
 * memory, a 1-D tensor (ranks need its one row), or already small. */
static uint64_t block_rows(const amg_merge_call *call)
{
    const amg_tensor *out = call->out;
    uint64_t rows, per, br;
    uint32_t i;

    if (out->dl.ndim < 2 || out->dl.ndim > GTA_VIEW_DIMS || !on_host(out) ||
        call->base == NULL || call->n_inputs > GTA_MAX_INPUTS ||
        call->aux != NULL)
        return 0;
    if (out->dl.strides != NULL || call->base->dl.strides != NULL ||
        call->base->dl.ndim != out->dl.ndim)
        return 0;
    for (i = 0; i < call->n_inputs; i++)
        if (call->inputs[i]->dl.strides != NULL ||
            call->inputs[i]->dl.ndim != out->dl.ndim)
            return 0;
    rows = amg_tensor_rows(out);
    per = amg_tensor_row_numel(out);
    if (per == 0)
        return 0;
    br = GTA_BLOCK_ELEMS / per;
    if (br == 0)
        br = 1;
    return br < rows ? br : 0;
}

int32_t gta_blocked(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                    void *stats, gta_pass_fn fn)
{
    const amg_tensor *in[GTA_MAX_INPUTS];
    gta_view vin[GTA_MAX_INPUTS], vbase, vout;
    amg_merge_call c = *call;
    uint64_t r0, rows, br = block_rows(call), total;
    uint32_t i;
    int32_t rc = AMG_OK;

    if (br == 0)
        return fn(inst, ctx, call, stats);
    total = amg_tensor_rows(call->out);
    c.base = &vbase.t;
    c.out = &vout.t;
    c.inputs = in;
    for (r0 = 0; rc == AMG_OK && r0 < total; r0 += rows) {
        rows = total - r0 < br ? total - r0 : br;
        view_rows(&vbase, call->base, r0, rows);
        view_rows(&vout, call->out, r0, rows);
        for (i = 0; i < call->n_inputs; i++) {
            /* an input that is the base stays the same handle */
            if (call->inputs[i] == call->base) {
                in[i] = &vbase.t;
                continue;
            }
            view_rows(&vin[i], call->inputs[i], r0, rows);
            in[i] = &vin[i].t;
        }
        c.row_begin = call->row_begin + r0;
        c.row_end = c.row_begin + rows;
        rc = fn(inst, ctx, &c, stats);
    }
    return rc;
}
