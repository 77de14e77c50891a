/* SPDX-License-Identifier: Apache-2.0 */
/*
 * progress.c - the merge progress report (see progress.h).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "progress.h"

#define BAR_WIDTH 24
#define REDRAW_SECONDS 0.1

double amg_progress_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Decimal unit for a byte count, chosen from the largest value shown so
 * "1.2/2.5 GB" reads in one unit. */
static void unit_of(uint64_t n, double *div, const char **name)
{
    if (n >= 1000000000ULL) {
        *div = 1e9;
        *name = "GB";
    } else if (n >= 1000000ULL) {
        *div = 1e6;
        *name = "MB";
    } else if (n >= 1000ULL) {
        *div = 1e3;
        *name = "kB";
    } else {
        *div = 1.0;
        *name = "B";
    }
}

static void format_eta(double s, char *buf, size_t cap)
{
    unsigned long t = s < 0 ? 0 : (unsigned long)(s + 0.5);

    if (t >= 3600)
        snprintf(buf, cap, "%luh%02lum", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, cap, "%lum%02lus", t / 60, t % 60);
    else
        snprintf(buf, cap, "%lus", t);
}

/* The text after "merging": counts, sizes, rate and (unfinished) ETA. */
static void format_status(const amg_progress *p, double now, char *buf,
                          size_t cap)
{
    double elapsed = now - p->start, rate, div, rdiv;
    const char *unit, *runit;
    char eta[32] = "";

    rate = elapsed > 0 ? (double)p->bytes / elapsed : 0.0;
    unit_of(p->total_bytes, &div, &unit);
    unit_of((uint64_t)rate, &rdiv, &runit);
    if (p->bytes < p->total_bytes && rate > 0) {
        memcpy(eta, ", ETA ", 7);
        format_eta((double)(p->total_bytes - p->bytes) / rate, eta + 6,
                   sizeof(eta) - 6);
    }
    snprintf(buf, cap, "%llu/%llu tensors, %.1f/%.1f %s, %.0f %s/s%s",
             (unsigned long long)p->tensors,
             (unsigned long long)p->total_tensors, (double)p->bytes / div,
             (double)p->total_bytes / div, unit, rate / rdiv, runit, eta);
}

static void draw_bar(amg_progress *p, double now)
{
    char status[160], bar[BAR_WIDTH + 1];
    int fill, i;

    fill = p->total_tensors
        ? (int)(p->tensors * BAR_WIDTH / p->total_tensors) : BAR_WIDTH;
    for (i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[BAR_WIDTH] = '\0';
    format_status(p, now, status, sizeof(status));
    /* \r then erase to end of line: the new text may be shorter */
    fprintf(p->out, "\rmerging [%s] %s\033[K", bar, status);
    fflush(p->out);
    p->drawn = 1;
    p->last_draw = now;
}

static void maybe_line(amg_progress *p, double now)
{
    char status[160];
    int tenth = p->total_tensors
        ? (int)(p->tensors * 10 / p->total_tensors) : 10;

    if (tenth <= p->last_tenth)
        return;
    p->last_tenth = tenth;
    format_status(p, now, status, sizeof(status));
    fprintf(p->out, "merging: %d%%, %s\n", tenth * 10, status);
    fflush(p->out);
}

void amg_progress_init(amg_progress *p, FILE *out, int mode,
                       uint64_t total_tensors, uint64_t total_bytes)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    p->out = out;
    p->mode = mode;
    p->total_tensors = total_tensors;
    p->total_bytes = total_bytes;
    p->start = amg_progress_now();
    if (mode == AMG_PROGRESS_BAR)
        draw_bar(p, p->start);
}

void amg_progress_add(amg_progress *p, uint64_t tensors, uint64_t bytes)
{
    double now;

    pthread_mutex_lock(&p->lock);
    p->tensors += tensors;
    p->bytes += bytes;
    if (p->mode != AMG_PROGRESS_QUIET) {
        now = amg_progress_now();
        if (p->mode == AMG_PROGRESS_LINES)
            maybe_line(p, now);
        else if (now - p->last_draw >= REDRAW_SECONDS)
            draw_bar(p, now);
    }
    pthread_mutex_unlock(&p->lock);
}

void amg_progress_end(amg_progress *p, int ok)
{
    pthread_mutex_lock(&p->lock);
    if (p->mode == AMG_PROGRESS_BAR && p->drawn) {
        if (ok) {
            draw_bar(p, amg_progress_now());
            fputc('\n', p->out);
        } else {
            /* leave the error message on a clean line */
            fputs("\r\033[K", p->out);
        }
        fflush(p->out);
    }
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_destroy(&p->lock);
}
