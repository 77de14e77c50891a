/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_mem.h - tell a jansson parse that ran out of memory from one that
 * met bad JSON. jansson reports both as a syntax error (or with line -1
 * and no text), which would blame a good file for a full memory.
 */
#ifndef AMG_JSON_MEM_H
#define AMG_JSON_MEM_H

/* Start watching jansson's allocations on this thread (installs the
 * watching allocator on first use). */
void amg_json_oom_clear(void);

/* 1 when one of them failed since the last clear on this thread. */
int amg_json_oom(void);

#endif
