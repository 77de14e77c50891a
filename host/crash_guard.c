/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crash_guard.c - fatal-signal handler for merges (see crash_guard.h).
 *
 * Everything the handler touches is async-signal-safe: a thread-local
 * pointer, a fixed table published with atomics, a static buffer, write(2)
 * and _exit(2). No stdio, no malloc, no locks.
 */
#include "config.h"
#include "crash_guard.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define MAX_MAPS 4096
#define MSG_MAX 2048
#define OUT_MAX 1024

typedef struct guard_map {
    _Atomic(uintptr_t) base;           /* 0: free slot */
    size_t len;
    const char *path;
} guard_map;

static guard_map maps[MAX_MAPS];
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local const char *cur_strategy;
static char out_name[OUT_MAX];         /* "" when no output folder */
static const int guarded[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE };
#define N_GUARDED (sizeof(guarded) / sizeof(guarded[0]))
static struct sigaction saved[N_GUARDED];
static int installed;

void amg_crash_guard_strategy(const char *id)
{
    cur_strategy = id;
}

void amg_crash_guard_map(const void *base, size_t len, const char *path)
{
    size_t i;

    pthread_mutex_lock(&maps_lock);
    for (i = 0; i < MAX_MAPS; i++)
        if (atomic_load(&maps[i].base) == 0) {
            maps[i].len = len;
            maps[i].path = path;
            /* published last: the handler sees len and path first */
            atomic_store(&maps[i].base, (uintptr_t)base);
            break;
        }
    pthread_mutex_unlock(&maps_lock);
}

void amg_crash_guard_unmap(const void *base)
{
    size_t i;

    pthread_mutex_lock(&maps_lock);
    for (i = 0; i < MAX_MAPS; i++)
        if (atomic_load(&maps[i].base) == (uintptr_t)base) {
            atomic_store(&maps[i].base, 0);
            break;
        }
    pthread_mutex_unlock(&maps_lock);
}

static const char *map_of(const void *addr)
{
    uintptr_t a = (uintptr_t)addr;
    size_t i;

    for (i = 0; i < MAX_MAPS; i++) {
        uintptr_t b = atomic_load(&maps[i].base);
        if (b && a >= b && a - b < maps[i].len)
            return maps[i].path;
    }
    return NULL;
}

typedef struct sbuf {
    char s[MSG_MAX];
    size_t n;
} sbuf;

static void put(sbuf *b, const char *s)
{
    while (*s && b->n + 1 < sizeof(b->s))
        b->s[b->n++] = *s++;
}

static const char *sig_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    default: return "a fatal signal";
    }
}

static void on_fatal(int sig, siginfo_t *si, void *uc)
{
    const char *file = sig == SIGBUS && si ? map_of(si->si_addr) : NULL;
    const char *strat = cur_strategy;
    static sbuf b;

    (void)uc;
    b.n = 0;
    put(&b, "error: ");
    if (file) {
        put(&b, "cannot read '");
        put(&b, file);
        put(&b, "': the file shrank while it was being merged (");
    } else if (strat) {
        put(&b, "strategy plugin '");
        put(&b, strat);
        put(&b, "' crashed (");
    } else {
        put(&b, "amalgam crashed (");
    }
    put(&b, sig_name(sig));
    put(&b, strat && !file ? ") while merging" : ")");
    if (out_name[0]) {
        put(&b, "; the partial output '");
        put(&b, out_name);
        put(&b, ".amalgam-partial' was not renamed (the next run into '");
        put(&b, out_name);
        put(&b, "' removes it)");
    }
    put(&b, "\n");
    (void)!write(STDERR_FILENO, b.s, b.n);
    if (!file && !strat) {
        /* our own bug: let the default action leave a core to debug */
        signal(sig, SIG_DFL);
        raise(sig);
    }
    _exit(1);
}

void amg_crash_guard_install(const char *out)
{
    struct sigaction sa;
    size_t i, n = out ? strlen(out) : 0;

    if (n >= sizeof(out_name))
        n = sizeof(out_name) - 1;
    memcpy(out_name, out ? out : "", n);
    out_name[n] = '\0';
    if (installed)
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fatal;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < N_GUARDED; i++)
        sigaction(guarded[i], &sa, &saved[i]);
    installed = 1;
}

void amg_crash_guard_remove(void)
{
    size_t i;

    if (!installed)
        return;
    for (i = 0; i < N_GUARDED; i++)
        sigaction(guarded[i], &saved[i], NULL);
    installed = 0;
}
