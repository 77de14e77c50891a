/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tensor_mem.h - host-side creation of SDK tensor handles (amg_tensor) and
 * the mapping between safetensors dtypes (host/dtype.h) and DLPack codes.
 */
#ifndef AMG_TENSOR_MEM_H
#define AMG_TENSOR_MEM_H

#include <stdint.h>

#include <amalgam/tensor.h>

#include "dtype.h"
#include "error.h"

/* DLPack dtype of a safetensors dtype (BOOL -> code 6, 8 bits; F8_E4M3 ->
 * float8_e4m3fn code 10; F8_E5M2 -> code 12). */
amg_dl_dtype amg_dtype_to_dl(amg_dtype t);

/* The reverse; -1 when the DLPack type has no safetensors equivalent. */
int amg_dtype_from_dl(amg_dl_dtype dl, amg_dtype *out);

/* A contiguous CPU tensor of dtype and shape in one allocation (handle,
 * shape array and 64-byte aligned data). name may be NULL (copied
 * otherwise). Free with amg_tensor_free. */
int amg_tensor_alloc(amg_tensor **out, amg_dl_dtype dtype, int32_t ndim,
                     const int64_t *shape, const char *name, amg_err *err);

/* A handle over existing CPU memory (not owned); shape is copied. */
int amg_tensor_wrap(amg_tensor **out, void *data, amg_dl_dtype dtype,
                    int32_t ndim, const int64_t *shape, const char *name,
                    uint32_t flags, amg_err *err);

/* Free a handle from amg_tensor_alloc or amg_tensor_wrap; NULL is a no-op. */
void amg_tensor_free(amg_tensor *t);

#endif
