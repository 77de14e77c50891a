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
 */
#ifndef AMG_EXECUTOR_H
#define AMG_EXECUTOR_H

#include <signal.h>
#include <stdint.h>

#include "error.h"
#include "plan.h"

typedef struct amg_exec_opts {
    int jobs;                          /* worker threads (>= 1) */
    uint64_t chunk_bytes;              /* f32 bytes per input chunk */
    uint64_t max_shard_size;           /* output shard limit (bytes) */
    int overwrite;                     /* --force */
    int progress;                      /* 0 none, 1 plain lines, 2 bar */
    const volatile sig_atomic_t *abort_flag; /* set by SIGINT/SIGTERM */
} amg_exec_opts;

typedef struct amg_exec_stats {
    uint64_t tensors;                  /* output tensors written */
    uint64_t bytes_in;                 /* input bytes read */
    uint64_t bytes_out;                /* tensor bytes written */
    double seconds;                    /* wall time of the run */
} amg_exec_stats;

/* Run plan into out_dir (written in a staging folder, renamed when done;
 * on any failure or abort the staging folder is removed). */
int amg_execute(const amg_plan *plan, const char *out_dir,
                const amg_exec_opts *o, amg_exec_stats *st, amg_err *err);

#endif
