/* SPDX-License-Identifier: Apache-2.0 */
/*
 * faultinj.c - an LD_PRELOAD shim for the fault tests (tests/cli/faults.sh).
 * It changes nothing unless one of these is set:
 *
 *   AMG_FAULT_WRITE_LIMIT=N   write/pwrite to files (fd > 2) fail with
 *                             ENOSPC once N bytes have gone through: the
 *                             disk is full
 *   AMG_FAULT_ALLOC_FAIL=N    the Nth malloc/calloc/realloc/aligned_alloc/
 *                             posix_memalign call returns NULL (ENOMEM)
 *   AMG_FAULT_TRUNCATE=PATH   after AMG_FAULT_TRUNCATE_AFTER bytes (default
 *                             1) have been written to files, truncate PATH
 *                             to AMG_FAULT_TRUNCATE_SIZE bytes (default 8):
 *                             an input shrinking mid-merge, deterministic
 *
 * Allocation goes to glibc's __libc_* entry points, not dlsym (which
 * itself allocates); writes go to the system call directly.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_ullong n_allocs, n_written;
static atomic_int truncated;

/* getenv is safe this early (no allocation) */
static unsigned long long env_num(const char *name, unsigned long long def)
{
    const char *s = getenv(name);
    char *end;
    unsigned long long v;

    if (!s || !*s)
        return def;
    v = strtoull(s, &end, 10);
    return *end ? def : v;
}

static int alloc_fails(void)
{
    unsigned long long n = env_num("AMG_FAULT_ALLOC_FAIL", 0);

    return n && atomic_fetch_add(&n_allocs, 1) + 1 == n;
}

void *malloc(size_t size)
{
    if (alloc_fails()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    if (alloc_fails()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    if (alloc_fails()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_realloc(p, size);
}

void *aligned_alloc(size_t align, size_t size)
{
    if (alloc_fails()) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_memalign(align, size);
}

int posix_memalign(void **out, size_t align, size_t size)
{
    void *p;

    if (alloc_fails())
        return ENOMEM;
    p = __libc_memalign(align, size);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

static void maybe_truncate(void)
{
    const char *path = getenv("AMG_FAULT_TRUNCATE");

    if (!path || !*path ||
        atomic_load(&n_written) < env_num("AMG_FAULT_TRUNCATE_AFTER", 1) ||
        atomic_exchange(&truncated, 1))
        return;
    (void)truncate(path, (off_t)env_num("AMG_FAULT_TRUNCATE_SIZE", 8));
}

/* 0 to let len bytes through, else -1 with errno = ENOSPC. */
static int account(int fd, size_t len)
{
    unsigned long long lim = env_num("AMG_FAULT_WRITE_LIMIT", 0);

    if (fd <= 2)
        return 0;
    if (getenv("AMG_FAULT_WRITE_LIMIT") &&
        atomic_load(&n_written) + len > lim) {
        errno = ENOSPC;
        return -1;
    }
    atomic_fetch_add(&n_written, len);
    return 0;
}

ssize_t write(int fd, const void *buf, size_t len)
{
    ssize_t n;

    if (account(fd, len))
        return -1;
    n = (ssize_t)syscall(SYS_write, fd, buf, len);
    if (fd > 2)
        maybe_truncate();
    return n;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
    ssize_t n;

    if (account(fd, len))
        return -1;
    n = (ssize_t)syscall(SYS_pwrite64, fd, buf, len, off);
    if (fd > 2)
        maybe_truncate();
    return n;
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
    return pwrite(fd, buf, len, off);
}
