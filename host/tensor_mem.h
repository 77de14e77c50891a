/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tensor_mem.h - host-side creation of SDK tensor handles (amg_tensor).
 * The mapping between safetensors dtypes and DLPack codes is in dtype.h.
 */
#ifndef AMG_TENSOR_MEM_H
#define AMG_TENSOR_MEM_H

#include <stdint.h>

#include <amalgam/tensor.h>

#include "dtype.h"
#include "error.h"

/* A contiguous CPU tensor of dtype and shape in one allocation (handle,
 * shape array and 64-byte aligned data). name may be NULL (copied
 * otherwise). Free with amg_tensor_free. */
int amg_tensor_alloc(amg_tensor **out, amg_dl_dtype dtype, int32_t ndim,
                     const int64_t *shape, const char *name, amg_err *err);

/* A handle over existing CPU memory (not owned); shape is copied. */
int amg_tensor_wrap(amg_tensor **out, void *data, amg_dl_dtype dtype,
                    int32_t ndim, const int64_t *shape, const char *name,
                    uint32_t flags, amg_err *err);

/* amg_tensor_wrap for memory on device (device memory from
 * amg_device_alloc, say): the handle is host memory, the data is not
 * touched. */
int amg_tensor_wrap_device(amg_tensor **out, void *data, amg_device device,
                           amg_dl_dtype dtype, int32_t ndim,
                           const int64_t *shape, const char *name,
                           uint32_t flags, amg_err *err);

/* Bytes of a compact tensor of dtype and shape in *bytes; AMG_ERANGE (or
 * AMG_EINVAL for a bad shape or dtype) with a message otherwise. */
int amg_tensor_bytes(amg_dl_dtype dtype, int32_t ndim, const int64_t *shape,
                     uint64_t *bytes, amg_err *err);

/* Free a handle from amg_tensor_alloc or amg_tensor_wrap; NULL is a no-op. */
void amg_tensor_free(amg_tensor *t);

#endif
