/* SPDX-License-Identifier: Apache-2.0 */
/*
 * device.h - a device backend opened for one run (`--device cuda[:N]`):
 * finding and loading the backend's shared object (backend.h), the device
 * memory budget (`--gpu-mem`), and device memory for the executor and for
 * the temporaries strategies ask for.
 *
 * Nothing here is touched by a CPU run: without --device the backend is
 * never looked for, so a CUDA-enabled install runs as the CPU build does.
 */
#ifndef AMG_DEVICE_H
#define AMG_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include <amalgam/tensor.h>

#include "backend.h"
#include "error.h"

typedef struct amg_device_rt amg_device_rt;

/* Parse a --device value: "cpu", "cuda" or "cuda:N". Sets *type
 * (AMG_DEVICE_CPU or AMG_DEVICE_CUDA) and *ordinal (0 unless given). */
int amg_device_parse(const char *spec, int32_t *type, int32_t *ordinal,
                     amg_err *err);

/* Load the backend for type and open device ordinal, with budget bytes of
 * device memory for this run (0: 90% of what is free at open). The
 * backend file is looked for in $AMALGAM_BACKEND_PATH (a file), then the
 * build tree when running uninstalled, then $(pkglibdir)/backends. Fails
 * with one message saying what is missing (no backend built, no GPU, driver
 * too old) and what to do. */
int amg_device_open(int32_t type, int32_t ordinal, uint64_t budget,
                    amg_device_rt **out, amg_err *err);
void amg_device_close(amg_device_rt *rt);

const amg_backend *amg_device_backend(const amg_device_rt *rt);
int32_t amg_device_ordinal(const amg_device_rt *rt);
uint64_t amg_device_budget(const amg_device_rt *rt);
/* Device memory now held through amg_device_alloc. */
uint64_t amg_device_in_use(const amg_device_rt *rt);

/* bytes of device memory ordered on stream, counted against the budget:
 * AMG_ENOMEM with a message naming the budget when it would be exceeded.
 * Thread-safe. */
int amg_device_alloc(amg_device_rt *rt, size_t bytes, void *stream,
                     void **out, amg_err *err);
/* Release amg_device_alloc memory of bytes (the same count). */
void amg_device_free(amg_device_rt *rt, void *p, size_t bytes, void *stream);

#endif
