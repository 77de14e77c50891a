/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fpconv.h - per-element conversions between f32 and the narrow float
 * formats, bit-exact with PyTorch for every non-NaN input.
 *
 * These are static inline and free of libc calls so the same code can be
 * compiled for the host and (later) for CUDA devices, and the CPU tests cover
 * the GPU's arithmetic. AMG_HD marks them __host__ __device__ under nvcc.
 *
 * NaN rules (the one place where PyTorch's own paths disagree):
 *   bf16: any NaN -> 0x7FC0 (PyTorch's scalar path)
 *   f16:  NaN -> sign | 0x7E00
 *   f8_e4m3fn: NaN -> sign | 0x7F;  f8_e5m2: NaN -> sign | 0x7F
 */
#ifndef AMG_FPCONV_H
#define AMG_FPCONV_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define AMG_HD __host__ __device__
#else
#define AMG_HD
#endif

/* Implementations below are filled in by the dtype work. */

#endif
