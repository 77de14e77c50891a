/* SPDX-License-Identifier: Apache-2.0 */
/*
 * maskbits.c - the keep masks of the random sparsifiers (dare, della),
 * cached between the reduce pass that draws them for the L1 sums and the
 * apply pass that uses them, as one bit an element in the tensor's
 * statistics block: apply then unpacks bits instead of drawing every
 * element again (and, for della, ranking every row again). The masks are
 * the same either way; a tensor whose masks do not fit draws them twice.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gta.h"

int gta_mask_cached(const amg_merge_call *call, int l1_rescale,
                    const gta_mask_stats *st)
{
    const amg_tensor *t = call->out;

    return l1_rescale && !st->no_cache &&
           t->dl.device.type == AMG_DEVICE_CPU &&
           (uint64_t)call->n_inputs * t->full_numel <= GTA_MASK_BITS;
}

static uint64_t mask_at(const amg_merge_call *call, uint32_t i)
{
    return (uint64_t)i * call->out->full_numel + call->out->elem_offset;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define MASK_LE 1
#else
#define MASK_LE 0
#endif

void gta_mask_store(gta_mask_stats *st, const amg_merge_call *call,
                    uint32_t i, const amg_tensor *mask)
{
    const uint8_t *m = amg_tensor_data(mask);
    uint8_t *b = (uint8_t *)st->mask_bits;
    uint64_t at = mask_at(call, i), n = amg_tensor_numel(mask), j = 0, v;

    /* eight bytes to one: byte k's bit 0 lands on bit 56 + k, no two
     * partial products on one bit, so nothing carries */
    if (MASK_LE && at % 8 == 0)
        for (; j + 8 <= n; j += 8) {
            memcpy(&v, m + j, 8);
            b[(at + j) / 8] = (uint8_t)((v * 0x0102040810204080ull) >> 56);
        }
    for (; j < n; j++)
        b[(at + j) / 8] |= (uint8_t)(m[j] << ((at + j) % 8));
}

void gta_mask_load(const gta_mask_stats *st, const amg_merge_call *call,
                   uint32_t i, amg_tensor *mask)
{
    uint8_t *m = amg_tensor_data(mask);
    const uint8_t *b = (const uint8_t *)st->mask_bits;
    uint64_t at = mask_at(call, i), n = amg_tensor_numel(mask), j = 0, v;

    /* bit k to byte k: nibbles, pairs, then single bits apart */
    if (MASK_LE && at % 8 == 0)
        for (; j + 8 <= n; j += 8) {
            v = b[(at + j) / 8];
            v = (v | v << 28) & 0x0000000F0000000Full;
            v = (v | v << 14) & 0x0003000300030003ull;
            v = (v | v << 7) & 0x0101010101010101ull;
            memcpy(m + j, &v, 8);
        }
    for (; j < n; j++)
        m[j] = (uint8_t)(b[(at + j) / 8] >> ((at + j) % 8) & 1u);
}

int32_t gta_mask_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                       gta_pass_fn reduce, gta_pass_fn apply)
{
    const amg_host_api *host = call->host;
    /* one call does both passes: no mask room, nothing to cache */
    size_t bytes = offsetof(gta_mask_stats, mask_bits);
    amg_merge_call c = *call;
    gta_mask_stats *st;
    int32_t rc;

    st = host->mem_alloc(ctx, bytes, 0);
    if (st == NULL)
        return host->fail(ctx, AMG_ENOMEM, "out of memory for %zu bytes of "
                          "statistics", bytes);
    memset(st, 0, bytes);
    st->no_cache = 1;
    c.row_begin = 0;
    c.row_end = call->rows_total;
    c.pass = 0;
    rc = reduce(inst, ctx, &c, st);
    if (rc == AMG_OK)
        rc = apply(inst, ctx, &c, st);
    host->mem_free(ctx, st);
    return rc;
}
