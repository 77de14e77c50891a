/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_mem.c - jansson allocator that remembers a failure (json_mem.h).
 */
#include "config.h"
#include "json_mem.h"

#include <pthread.h>
#include <stdlib.h>

#include <jansson.h>

static _Thread_local int oom;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void *watch_malloc(size_t n)
{
    void *p = malloc(n);

    if (!p)
        oom = 1;
    return p;
}

static void install(void)
{
    json_set_alloc_funcs(watch_malloc, free);
}

void amg_json_oom_clear(void)
{
    pthread_once(&once, install);
    oom = 0;
}

int amg_json_oom(void)
{
    return oom;
}
