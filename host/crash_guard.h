/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crash_guard.h - turn a fatal signal during a merge into one clear line.
 *
 * Two things can kill a merge that the host cannot check for in advance: a
 * strategy plugin that dereferences a bad pointer (SIGSEGV, SIGBUS, SIGILL,
 * SIGFPE), and an input shard that shrinks after it was mapped (SIGBUS on
 * the first page past the new end). The handler names the cause (the
 * strategy running on the faulting thread, or the mapped file the fault
 * address lies in), says the partial output was not renamed, and exits 1.
 * The partial folder is left behind (a handler cannot safely remove a
 * tree); the next run into the same OUT removes it before writing.
 */
#ifndef AMG_CRASH_GUARD_H
#define AMG_CRASH_GUARD_H

#include <stddef.h>

/* Install the handlers. out names the output folder (its staging folder,
 * OUT.amalgam-partial, is what the message mentions), or NULL. */
void amg_crash_guard_install(const char *out);

/* Restore the previous handlers. */
void amg_crash_guard_remove(void);

/* The calling thread now runs strategy id (a string that outlives the
 * call), or host code again when id is NULL. */
void amg_crash_guard_strategy(const char *id);

/* Remember / forget a read-only mapping of path (the string must outlive
 * the mapping). Never fails: past the table's size a mapping is simply not
 * named in messages. */
void amg_crash_guard_map(const void *base, size_t len, const char *path);
void amg_crash_guard_unmap(const void *base);

#endif
