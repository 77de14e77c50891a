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

static int dtype_sized(amg_dl_dtype dtype, amg_err *err)
{
    if (dtype.bits == 0 || dtype.lanes == 0)
        return amg_err_set(err, AMG_EINVAL,
                           "cannot create tensor: dtype code %u with %u bits "
                           "and %u lanes has no size",
                           dtype.code, dtype.bits, dtype.lanes);
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
    if (!rc)
        rc = dtype_sized(dtype, err);
    if (rc)
        return rc;
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

int amg_tensor_wrap_device(amg_tensor **out, void *data, amg_device device,
                           amg_dl_dtype dtype, int32_t ndim,
                           const int64_t *shape, const char *name,
                           uint32_t flags, amg_err *err)
{
    int rc = amg_tensor_wrap(out, data, dtype, ndim, shape, name, flags, err);

    if (rc == AMG_OK)
        (*out)->dl.device = device;
    return rc;
}

int amg_tensor_bytes(amg_dl_dtype dtype, int32_t ndim, const int64_t *shape,
                     uint64_t *bytes, amg_err *err)
{
    uint64_t numel;
    int rc = shape_numel(ndim, shape, &numel, err);

    if (!rc)
        rc = dtype_sized(dtype, err);
    if (rc)
        return rc;
    if (amg_mul_u64(numel, amg_dl_size(dtype), bytes) < 0 ||
        (uint64_t)(size_t)*bytes != *bytes)
        return amg_err_set(err, AMG_ERANGE,
                           "cannot create tensor: %llu elements do not fit in "
                           "memory", (unsigned long long)numel);
    return AMG_OK;
}

void amg_tensor_free(amg_tensor *t)
{
    /* the handle is the start of its one block in both constructors */
    free(t);
}
