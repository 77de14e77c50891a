/* SPDX-License-Identifier: Apache-2.0 */
/*
 * progress.h - the merge progress report on stderr: one redrawn bar on a
 * terminal, a plain line every 10% otherwise, nothing when quiet.
 *
 * Workers call amg_progress_add concurrently; the line is redrawn at most
 * about ten times a second so that printing never slows the merge.
 */
#ifndef AMG_PROGRESS_H
#define AMG_PROGRESS_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

/* Modes, as amg_exec_opts.progress holds them. */
#define AMG_PROGRESS_QUIET 0
#define AMG_PROGRESS_LINES 1
#define AMG_PROGRESS_BAR 2

typedef struct amg_progress {
    pthread_mutex_t lock;
    FILE *out;                         /* stderr, or a test's stream */
    int mode;                          /* AMG_PROGRESS_* */
    uint64_t total_tensors, total_bytes;
    uint64_t tensors, bytes;           /* done so far */
    double start, last_draw;           /* monotonic seconds */
    int last_tenth;                    /* LINES: last 10% step printed */
    int drawn;                         /* BAR: a line is on screen */
} amg_progress;

/* Start reporting on out for a run of total_tensors tensors holding
 * total_bytes output bytes. */
void amg_progress_init(amg_progress *p, FILE *out, int mode,
                       uint64_t total_tensors, uint64_t total_bytes);

/* Count tensors and bytes finished (thread-safe). */
void amg_progress_add(amg_progress *p, uint64_t tensors, uint64_t bytes);

/* Draw the final state (ok) or clear the bar (failure), then release. */
void amg_progress_end(amg_progress *p, int ok);

/* Monotonic clock in seconds (also used for the run's wall time). */
double amg_progress_now(void);

#endif
