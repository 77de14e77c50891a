/* SPDX-License-Identifier: Apache-2.0 */
/*
 * executor.h - run a plan: stream tensors through the strategies with a
 * worker pool and write the output model.
 *
 * Per output tensor: read inputs in their stored dtype and convert to f32
 * in row chunks (or whole, for strategies that are neither ELEMENTWISE nor
 * TWO_PASS), call the strategies node by node (reduce pass then apply pass
 * for TWO_PASS), round once to the output dtype and pwrite at the tensor's
 * offset in its shard. Workers take whole tensors; memory is bounded by
 * chunk bytes x inputs x workers. The bytes written never depend on -j or
 * on the chunk size.
 *
 * With a device (--device cuda), LOAD nodes still decode on the CPU into
 * staging buffers that are copied to the device; strategies run there on
 * the worker's stream and the root's rows come back for the same rounding
 * and write, so the bytes do not depend on the device either. A tensor
 * whose strategies lack AMG_CAP_CUDA, or that does not fit the device
 * memory budget, runs on the CPU path instead.
 */
#ifndef AMG_EXECUTOR_H
#define AMG_EXECUTOR_H

#include <signal.h>
#include <stdint.h>

#include "device.h"
#include "error.h"
#include "plan.h"

typedef struct amg_exec_opts {
    int jobs;                          /* worker threads (>= 1) */
    uint64_t chunk_bytes;              /* f32 bytes per input chunk */
    uint64_t max_shard_size;           /* output shard limit (bytes) */
    int overwrite;                     /* --force */
    int progress;                      /* 0 none, 1 plain lines, 2 bar */
    const volatile sig_atomic_t *abort_flag; /* set by SIGINT/SIGTERM */
    amg_device_rt *dev;                /* NULL: everything on the CPU */
    uint64_t dev_chunk_bytes;          /* f32 bytes per input chunk on the
                                          device; 0: AMG_EXEC_DEV_CHUNK */
    int quiet;                         /* no notes (device fallbacks) */
    int verbose;                       /* notes per tensor too */
} amg_exec_opts;

/* f32 bytes per input chunk on the CPU. A chunk's converted inputs, its
 * output and a strategy's temporaries then fit the per-core L2 and L3
 * share of a CPU with two workers, so a strategy's passes over a chunk
 * read cache rather than memory (ties at -j2 on a 1.1B model: 20% less
 * CPU than with 4 MiB chunks, 15% less than with 1 MiB, 256 KiB no
 * better); malloc reuses the buffers, and memory stays low at high -j. */
#define AMG_EXEC_CPU_CHUNK (512ULL << 10)

/* Chunks on the device are larger than on the CPU: a kernel launch and a
 * copy cost microseconds each, so small chunks would leave the device
 * idle. */
#define AMG_EXEC_DEV_CHUNK (64ULL << 20)

typedef struct amg_exec_stats {
    uint64_t tensors;                  /* output tensors written */
    uint64_t bytes_in;                 /* input bytes read */
    uint64_t bytes_out;                /* tensor bytes written */
    uint64_t dev_tensors;              /* tensors merged on the device */
    uint64_t cpu_fallback;             /* tensors a device run merged on the
                                          CPU (no AMG_CAP_CUDA, too large) */
    double seconds;                    /* wall time of the run */
} amg_exec_stats;

/* Run plan into out_dir (written in a staging folder, renamed when done;
 * on any failure or abort the staging folder is removed). */
int amg_execute(const amg_plan *plan, const char *out_dir,
                const amg_exec_opts *o, amg_exec_stats *st, amg_err *err);

#endif
