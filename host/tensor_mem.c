/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
#include "tensor_mem.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Data is aligned for the widest vector loads (AVX-512) and cache lines. */
#define AMG_TENSOR_ALIGN 64u
/* DLPack sets no limit; this one only keeps size arithmetic far from
 * overflow and catches garbage ranks early. */
#define AMG_TENSOR_MAX_NDIM 64

static const struct {
    amg_dtype t;
    uint8_t code, bits;
} dl_map[] = {
    { AMG_DT_F64, AMG_DL_FLOAT, 64 },
    { AMG_DT_F32, AMG_DL_FLOAT, 32 },
    { AMG_DT_F16, AMG_DL_FLOAT, 16 },
    { AMG_DT_BF16, AMG_DL_BFLOAT, 16 },
    { AMG_DT_I64, AMG_DL_INT, 64 },
    { AMG_DT_I32, AMG_DL_INT, 32 },
    { AMG_DT_I16, AMG_DL_INT, 16 },
    { AMG_DT_I8, AMG_DL_INT, 8 },
    { AMG_DT_U8, AMG_DL_UINT, 8 },
    { AMG_DT_BOOL, AMG_DL_BOOL, 8 },
    { AMG_DT_F8_E4M3, AMG_DL_FLOAT8_E4M3FN, 8 },
    { AMG_DT_F8_E5M2, AMG_DL_FLOAT8_E5M2, 8 },
};
#define DL_MAP_N (sizeof(dl_map) / sizeof(dl_map[0]))

amg_dl_dtype amg_dtype_to_dl(amg_dtype t)
{
    size_t i;

    for (i = 0; i < DL_MAP_N; i++)
        if (dl_map[i].t == t)
            return amg_dl_make(dl_map[i].code, dl_map[i].bits);
    /* no DLPack type has bits 0, so an invalid amg_dtype cannot alias one */
    return amg_dl_make(0, 0);
}

int amg_dtype_from_dl(amg_dl_dtype dl, amg_dtype *out)
{
    size_t i;

    if (dl.lanes != 1)
        return -1;
    for (i = 0; i < DL_MAP_N; i++) {
        if (dl_map[i].code == dl.code && dl_map[i].bits == dl.bits) {
            *out = dl_map[i].t;
            return 0;
        }
    }
    return -1;
}

static size_t round_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

/* Check the rank and extents and compute the element count. */
static int shape_numel(int32_t ndim, const int64_t *shape, uint64_t *numel,
                       amg_err *err)
{
    uint64_t n = 1;
    int32_t i;

    if (ndim < 0 || ndim > AMG_TENSOR_MAX_NDIM)
        return amg_err_set(err, AMG_EINVAL,
                           "cannot create tensor: rank %d outside 0..%d",
                           (int)ndim, AMG_TENSOR_MAX_NDIM);
    if (ndim > 0 && !shape)
        return amg_err_set(err, AMG_EINVAL,
                           "cannot create tensor: rank %d without a shape",
                           (int)ndim);
    for (i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return amg_err_set(err, AMG_EINVAL,
                               "cannot create tensor: extent %lld of "
                               "dimension %d is negative",
                               (long long)shape[i], (int)i);
        if (amg_mul_u64(n, (uint64_t)shape[i], &n) < 0)
            return amg_err_set(err, AMG_ERANGE,
                               "cannot create tensor: element count "
                               "overflows");
    }
    *numel = n;
    return AMG_OK;
}

/* The handle, then the shape array, then the name; returns the header size
 * (unaligned) or 0 on overflow. */
static size_t header_size(int32_t ndim, const char *name)
{
    size_t n = sizeof(amg_tensor) + (size_t)ndim * sizeof(int64_t);

    if (name) {
        size_t len = strlen(name);
        if (len > SIZE_MAX - n - 1)
            return 0;
        n += len + 1;
    }
    return n;
}

/* Fill in everything but the data pointer inside a fresh block whose first
 * bytes are the handle. */
static amg_tensor *lay_out(void *block, amg_dl_dtype dtype, int32_t ndim,
                           const int64_t *shape, const char *name,
                           uint32_t flags, uint64_t numel)
{
    amg_tensor *t = block;
    int64_t *sh = (int64_t *)(t + 1);
    char *nm = (char *)(sh + ndim);

    memset(t, 0, sizeof(*t));
    t->struct_size = (uint32_t)sizeof(amg_tensor);
    t->flags = flags;
    t->dl.device.type = AMG_DEVICE_CPU;
    t->dl.device.id = 0;
    t->dl.ndim = ndim;
    t->dl.dtype = dtype;
    if (ndim)
        memcpy(sh, shape, (size_t)ndim * sizeof(int64_t));
    t->dl.shape = sh;
    t->dl.strides = NULL;
    t->dl.byte_offset = 0;
    if (name) {
        memcpy(nm, name, strlen(name) + 1);
        t->name = nm;
    }
    t->elem_offset = 0;
    t->full_numel = numel;
    return t;
}

int amg_tensor_alloc(amg_tensor **out, amg_dl_dtype dtype, int32_t ndim,
                     const int64_t *shape, const char *name, amg_err *err)
{
    uint64_t numel, bytes;
    size_t head, total;
    void *block;
    amg_tensor *t;
    int rc;

    *out = NULL;
    rc = shape_numel(ndim, shape, &numel, err);
    if (rc)
        return rc;
    if (dtype.bits == 0 || dtype.lanes == 0)
        return amg_err_set(err, AMG_EINVAL,
                           "cannot create tensor: dtype code %u with %u bits "
                           "and %u lanes has no size",
                           dtype.code, dtype.bits, dtype.lanes);
    head = header_size(ndim, name);
    if (!head || amg_mul_u64(numel, amg_dl_size(dtype), &bytes) < 0 ||
        bytes > SIZE_MAX - round_up(head, AMG_TENSOR_ALIGN) - AMG_TENSOR_ALIGN)
        return amg_err_set(err, AMG_ERANGE,
                           "cannot create tensor: %llu elements do not fit in "
                           "memory", (unsigned long long)numel);
    head = round_up(head, AMG_TENSOR_ALIGN);
    /* aligned_alloc wants a size that is a multiple of the alignment */
    total = round_up(head + (size_t)bytes, AMG_TENSOR_ALIGN);
    block = aligned_alloc(AMG_TENSOR_ALIGN, total ? total : AMG_TENSOR_ALIGN);
    if (!block)
        return amg_err_set(err, AMG_ENOMEM,
                           "cannot allocate a tensor of %llu bytes",
                           (unsigned long long)bytes);
    t = lay_out(block, dtype, ndim, shape, name, AMG_TENSOR_CONTIGUOUS, numel);
    t->dl.data = (char *)block + head;
    *out = t;
    return AMG_OK;
}

int amg_tensor_wrap(amg_tensor **out, void *data, amg_dl_dtype dtype,
                    int32_t ndim, const int64_t *shape, const char *name,
                    uint32_t flags, amg_err *err)
{
    uint64_t numel;
    size_t head;
    void *block;
    amg_tensor *t;
    int rc;

    *out = NULL;
    rc = shape_numel(ndim, shape, &numel, err);
    if (rc)
        return rc;
    head = header_size(ndim, name);
    if (!head)
        return amg_err_set(err, AMG_ERANGE,
                           "cannot create tensor: name too long");
    block = malloc(head);
    if (!block)
        return amg_err_set(err, AMG_ENOMEM,
                           "cannot allocate a tensor handle of %zu bytes",
                           head);
    /* wrapped memory is compact row-major by construction (strides NULL) */
    t = lay_out(block, dtype, ndim, shape, name,
                flags | AMG_TENSOR_CONTIGUOUS, numel);
    t->dl.data = data;
    *out = t;
    return AMG_OK;
}

void amg_tensor_free(amg_tensor *t)
{
    /* the handle is the start of its one block in both constructors */
    free(t);
}
