/* SPDX-License-Identifier: Apache-2.0 */
/*
 * amalgam/tensor.h - tensor handles passed between the host and strategies.
 *
 * The handle embeds a DLPack-compatible view (amg_dltensor has DLTensor's
 * exact layout and codes), so data can be exchanged with PyTorch, CuPy or any
 * DLPack consumer without copies. Handles describe memory on the CPU or on a
 * CUDA device; a strategy never assumes which unless it checks.
 *
 * Ownership: input tensors are read-only and borrowed for one call; output
 * tensors are allocated by the host; temporaries come from
 * amg_host_api.tensor_new and belong to the call's context.
 */
#ifndef AMALGAM_TENSOR_H
#define AMALGAM_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- devices (DLPack DLDeviceType codes) ---- */
#define AMG_DEVICE_CPU 1           /* host memory */
#define AMG_DEVICE_CUDA 2          /* CUDA device memory */
#define AMG_DEVICE_CUDA_HOST 3     /* pinned host memory, CUDA-accessible */

typedef struct amg_device {
    int32_t type;                  /* AMG_DEVICE_* */
    int32_t id;                    /* device ordinal; 0 for the CPU */
} amg_device;

/* ---- element types (DLPack DLDataTypeCode codes) ---- */
#define AMG_DL_INT 0
#define AMG_DL_UINT 1
#define AMG_DL_FLOAT 2
#define AMG_DL_BFLOAT 4
#define AMG_DL_BOOL 6
#define AMG_DL_FLOAT8_E4M3FN 10
#define AMG_DL_FLOAT8_E5M2 12

typedef struct amg_dl_dtype {
    uint8_t code;                  /* AMG_DL_* */
    uint8_t bits;                  /* bits per element: 8, 16, 32, 64 */
    uint16_t lanes;                /* always 1 in amalgam */
} amg_dl_dtype;

/* The DLPack view: byte for byte DLTensor (dlpack.h, v1.x). */
typedef struct amg_dltensor {
    void *data;                    /* base pointer (device memory for CUDA) */
    amg_device device;
    int32_t ndim;                  /* 0 for a scalar */
    amg_dl_dtype dtype;
    int64_t *shape;                /* ndim extents */
    int64_t *strides;              /* in elements; NULL = compact row-major */
    uint64_t byte_offset;          /* first element at data + byte_offset */
} amg_dltensor;

/* Flags in amg_tensor.flags. */
#define AMG_TENSOR_READ_ONLY 1u    /* a borrowed input: never write to it */
#define AMG_TENSOR_CONTIGUOUS 2u   /* compact row-major (strides NULL) */

typedef struct amg_tensor {
    uint32_t struct_size;          /* sizeof(amg_tensor) as the host built it */
    uint32_t flags;                /* AMG_TENSOR_* */
    amg_dltensor dl;               /* the data; &t->dl is a valid DLTensor* */
    const char *name;              /* model tensor name, e.g.
                                      "model.layers.3.mlp.up_proj.weight";
                                      NULL for temporaries */
    uint64_t elem_offset;          /* index, in the whole model tensor, of
                                      this handle's first element: non-zero
                                      when the host hands a row chunk. RNG
                                      kernels key on elem_offset + i so a
                                      chunk draws what the whole would. */
    uint64_t full_numel;           /* elements of the whole model tensor
                                      (equals this handle's numel when not
                                      chunked) */
    void *host_private;            /* host bookkeeping: do not touch */
    void *reserved[4];             /* NULL; for future minor versions */
} amg_tensor;

/* ---- helpers (header-only, thread-safe) ---- */

static inline amg_dl_dtype amg_dl_make(uint8_t code, uint8_t bits)
{
    amg_dl_dtype t;
    t.code = code;
    t.bits = bits;
    t.lanes = 1;
    return t;
}

static inline int amg_dl_eq(amg_dl_dtype a, amg_dl_dtype b)
{
    return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

/* Bytes per element. */
static inline size_t amg_dl_size(amg_dl_dtype t)
{
    return (size_t)((t.bits * (unsigned)t.lanes + 7u) / 8u);
}

/* Number of elements (1 for a scalar). */
static inline uint64_t amg_tensor_numel(const amg_tensor *t)
{
    uint64_t n = 1;
    int32_t i;

    for (i = 0; i < t->dl.ndim; i++)
        n *= (uint64_t)t->dl.shape[i];
    return n;
}

/* Rows (extent of dimension 0; 1 for a scalar) and elements per row. */
static inline uint64_t amg_tensor_rows(const amg_tensor *t)
{
    return t->dl.ndim > 0 ? (uint64_t)t->dl.shape[0] : 1;
}

static inline uint64_t amg_tensor_row_numel(const amg_tensor *t)
{
    uint64_t r = amg_tensor_rows(t);
    return r ? amg_tensor_numel(t) / r : 0;
}

/* Pointer to the first element (device pointer for CUDA tensors). */
static inline void *amg_tensor_data(const amg_tensor *t)
{
    return (char *)t->dl.data + t->dl.byte_offset;
}

static inline int amg_tensor_is_f32(const amg_tensor *t)
{
    return t->dl.dtype.code == AMG_DL_FLOAT && t->dl.dtype.bits == 32 &&
           t->dl.dtype.lanes == 1;
}

/* 1 when the elements lie compact in row-major order, so a tensor is one
 * byte range: strides NULL, or strides that spell compact row-major
 * (extents of 1 may carry any stride). */
static inline int amg_tensor_is_compact(const amg_tensor *t)
{
    int64_t expect = 1;
    int32_t i;

    if (!t->dl.strides)
        return 1;
    for (i = t->dl.ndim; i-- > 0;) {
        if (t->dl.shape[i] != 1 && t->dl.strides[i] != expect)
            return 0;
        expect *= t->dl.shape[i];
    }
    return 1;
}

#ifdef __cplusplus
}
#endif
#endif /* AMALGAM_TENSOR_H */
