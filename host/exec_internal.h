/* SPDX-License-Identifier: Apache-2.0 */
/*
 * exec_internal.h - what the executor's two files share: the run, a
 * worker and its node values, and the calls each makes into the other.
 * executor.c holds the pool, the node graph and the CPU path;
 * exec_device.c the device path. Nothing outside these two includes it.
 */
#ifndef AMG_EXEC_INTERNAL_H
#define AMG_EXEC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <amalgam/host.h>
#include <amalgam/kernels.h>
#include <amalgam/tensor.h>

#include "backend.h"
#include "error.h"
#include "executor.h"
#include "model_writer.h"
#include "plan.h"
#include "progress.h"

/* One strategy instance per pipeline step (executor.c). */
typedef struct exec_inst exec_inst;

typedef struct exec_run {
    const amg_plan *plan;
    const amg_exec_opts *o;
    amg_model_writer w;
    exec_inst *insts;                  /* per step */
    size_t n_insts;
    atomic_size_t next;                /* next output tensor to take */
    atomic_uint_fast64_t bytes_in;
    atomic_int stop;                   /* an error or an abort: stop */
    pthread_mutex_t lock;              /* err, running */
    pthread_cond_t idle;               /* a worker finished */
    int running;
    amg_err err;                       /* the first failure */
    amg_progress prog;
    /* device runs only */
    const amg_backend *be;             /* NULL: no device */
    const amg_kernels *dk;             /* the device's kernel table */
    uint64_t dev_chunk;                /* f32 bytes per device chunk */
    uint64_t dev_share;                /* budget / workers */
    atomic_uint_fast64_t dev_tensors;
    atomic_uint_fast64_t cpu_fallback;
} exec_run;

/* Host memory for copies to and from the device: page-locked when the
 * backend can give it, so copies run asynchronously. */
typedef struct staging {
    void *p;
    size_t cap;
    int pinned;                        /* from host_alloc, else malloc */
} staging;

/* A node's value for the current chunk. */
typedef struct node_val {
    float *buf;                        /* chunk_rows x row_numel, or NULL
                                          when the value points into a
                                          mapped f32 source or lives on the
                                          device */
    size_t cap;                        /* floats buf holds */
    void *dbuf;                        /* on the device: chunk_rows x
                                          row_numel floats there */
    size_t dbytes;
    amg_tensor *t;                     /* handle over the current rows */
    const amg_tensor **ins;            /* MERGE: input handles */
    const amg_tensor **aux;            /* MERGE with aux: per input, the
                                          auxiliary handle or NULL */
    const amg_params **ps;             /* MERGE: per-model views */
} node_val;

/* Host chunk buffers a worker keeps between tensors: the next tensor's
 * chunks reuse them rather than fault fresh pages in (and unmap them
 * again) for every tensor. Only buffers of at most the chunk size are
 * kept, so what a worker holds stays within one tensor's usual need. */
#define EXEC_SPARE 8
typedef struct spare_buf {
    float *p;
    size_t cap;                        /* elements */
} spare_buf;

/* A worker's state for the tensor it is on. */
typedef struct worker {
    exec_run *run;
    size_t *order;                     /* nodes, inputs before users */
    size_t n_order;
    uint32_t *mark;                    /* per plan node: stamp when listed */
    size_t *slot;                      /* per plan node: index in vals */
    uint32_t stamp;
    node_val *vals;                    /* per entry of order */
    unsigned char *bytes;              /* staging for reads and writes */
    size_t bytes_cap;
    uint32_t pass;                     /* reduce pass in progress */
    int on_dev;                        /* this tensor runs on the device */
    void *stream;                      /* the worker's device stream */
    staging *stage;                    /* per node of order and parity,
                                          then the root's pair */
    size_t n_stage;
    spare_buf spare[EXEC_SPARE];       /* host chunk buffers kept from
                                          earlier tensors */
    size_t n_spare;
} worker;

/* Shape of the tensor being produced, as the workers slice it. */
typedef struct tshape {
    int ndim;
    const uint64_t *shape;
    uint64_t rows, row_numel;
    uint64_t chunk_rows;
} tshape;

/* How a graph may be cut: in row chunks when every strategy is
 * elementwise; two passes over chunks for one TWO_PASS strategy reading
 * model tensors directly; only whole otherwise. */
enum chunking { CHUNK_ROWS, CHUNK_TWO_PASS, CHUNK_WHOLE };

/* One strategy call: merge, or reduce/apply of the two-pass form. */
enum call_kind { CALL_MERGE, CALL_REDUCE, CALL_APPLY };

/* ---- in executor.c, for the device path ---- */

/* Rows in a chunk of chunk_bytes f32 bytes per input: at least one, at
 * most the whole tensor. */
uint64_t amg__exec_rows_for(const tshape *ts, uint64_t chunk_bytes);

/* Rows in the chunk that starts at row r0. */
uint64_t amg__exec_rows_at(const tshape *ts, uint64_t r0);

/* Point every node's handle at rows [r0, r0 + rows). */
void amg__exec_set_rows(worker *wk, const tshape *ts, uint64_t r0,
                        uint64_t rows);

/* Rows [r0, r0 + rows) of a LOAD node's value as f32 in dst. */
int amg__exec_decode_node(worker *wk, const amg_plan_node *nd,
                          const tshape *ts, uint64_t r0, uint64_t rows,
                          float *dst, amg_err *err);

/* Call the strategy of node k of the worker's order on rows
 * [r0, r0 + rows). */
int amg__exec_call_strategy(worker *wk, size_t k, const tshape *ts,
                            uint64_t r0, uint64_t rows, enum call_kind kind,
                            void *stats, amg_err *err);

/* Round rows of the root's value (src, f32 in host memory) to the output
 * dtype of tensor ti and write them. */
int amg__exec_write_rows(worker *wk, size_t ti, const tshape *ts, uint64_t r0,
                         uint64_t rows, const float *src, amg_err *err);

/* ---- in exec_device.c, for the executor ---- */

/* On a device run, the backend, the chunk size and each worker's share of
 * the memory budget; notes the strategies that stay on the CPU. */
int amg__exec_dev_setup(exec_run *run, amg_err *err);

/* Staging slots and a stream for worker i of jobs, on a device run. */
int amg__exec_dev_worker_init(worker *wk, size_t i, size_t jobs,
                              amg_err *err);

/* The device side of a worker, whatever of it was set up. */
void amg__exec_dev_worker_free(worker *wk);

/* 1 when the tensor the worker listed runs on the device, with
 * ts->chunk_rows set; 0 when it runs on the CPU. */
int amg__exec_dev_route(worker *wk, tshape *ts, enum chunking how,
                        const char *name);

/* One pass over the tensor's chunks on the device. */
int amg__exec_dev_pass(worker *wk, size_t ti, const tshape *ts,
                       enum call_kind kind, void *stats, amg_err *err);

/* Wait for the worker's stream at the end of a tensor; rc, or the
 * device's failure when rc is AMG_OK. */
int amg__exec_dev_drain(worker *wk, int rc, const char *name, amg_err *err);

/* Give back staging larger than a chunk. */
void amg__exec_stage_trim(worker *wk);

#endif
