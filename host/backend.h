/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backend.h - the contract between the host and a device backend: a shared
 * object the host dlopen()s only when a merge asks for that device (today
 * `--device cuda`, the file $(pkglibdir)/backends/cuda.so built from
 * kernels/cuda/). Keeping the device code out of the executable means the
 * CPU build and install never need the CUDA runtime, and a CUDA-enabled
 * install still runs everything on the CPU when no GPU is present.
 *
 * Internal to amalgam (not installed, not part of the plugin ABI): host and
 * backend come from the same build, so a mismatch of AMG_BACKEND_ABI or
 * struct_size is refused rather than negotiated.
 *
 * The backend exports one symbol, amg_backend_entry (AMG_BACKEND_SYMBOL),
 * returning its table. Every function is thread-safe after open() unless
 * its comment says otherwise. Failures return an amg_status and leave a
 * lower-case message in the calling thread's error_string().
 *
 * Memory model: "device" pointers come only from dev_alloc; "pinned" host
 * memory only from host_alloc (page-locked, so copies from it overlap with
 * compute); copies name the stream they are ordered on. A stream is the
 * opaque handle that amg_host_api.cuda_stream() returns to kernels and
 * strategies; the host creates one per worker.
 */
#ifndef AMG_BACKEND_H
#define AMG_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include <amalgam/host.h>
#include <amalgam/kernels.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AMG_BACKEND_ABI 1
#define AMG_BACKEND_SYMBOL "amg_backend_entry"

typedef struct amg_backend {
    uint32_t struct_size;          /* sizeof(amg_backend) as built */
    uint32_t abi;                  /* AMG_BACKEND_ABI */
    const char *name;              /* "cuda" */
    int32_t device_type;           /* AMG_DEVICE_CUDA */
    int32_t reserved0;

    /* Select device ordinal and initialise it. host is the services table
     * kernels use to fail (host->fail) and to find their stream
     * (host->cuda_stream). AMG_ENOTFOUND when there is no such device (no
     * GPU, no driver, ordinal out of range), AMG_EUNSUPPORTED when the
     * driver is too old for this build; the message says which. Call once,
     * before anything else; not thread-safe. */
    int32_t (*open)(int32_t ordinal, const amg_host_api *host);
    /* Release everything open() set up; not thread-safe. */
    void (*close)(void);
    /* The calling thread's last failure message ("" when none). */
    const char *(*error_string)(void);

    /* Device description for logs: name, compute capability, memory. */
    int32_t (*describe)(char *buf, size_t len);
    /* Free and total device memory in bytes. */
    int32_t (*mem_info)(uint64_t *free_bytes, uint64_t *total_bytes);

    /* The kernel table for this device (valid after open). */
    const amg_kernels *(*kernels)(void);

    /* ---- streams ---- */
    int32_t (*stream_create)(void **stream);
    void (*stream_destroy)(void *stream);
    /* Wait until everything queued on stream has run; reports a failure
     * of any of that work. */
    int32_t (*stream_sync)(void *stream);

    /* ---- memory ---- */

    /* bytes of device memory, ordered on stream (NULL: the default
     * stream); 256-byte aligned. AMG_ENOMEM when the device is full. */
    int32_t (*dev_alloc)(size_t bytes, void *stream, void **out);
    /* Release dev_alloc memory once the work queued on stream is done;
     * NULL is a no-op. */
    void (*dev_free)(void *p, void *stream);
    /* Page-locked host memory, or NULL when none can be had (the caller
     * falls back to ordinary memory). */
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *p);

    /* ---- copies, ordered on stream, asynchronous where the memory
     * allows (pageable host memory may make them synchronous) ---- */
    int32_t (*copy_h2d)(void *dst, const void *src, size_t bytes,
                        void *stream);
    int32_t (*copy_d2h)(void *dst, const void *src, size_t bytes,
                        void *stream);
    int32_t (*copy_d2d)(void *dst, const void *src, size_t bytes,
                        void *stream);
    /* dst[i] = byte value for bytes bytes of device memory */
    int32_t (*memset_dev)(void *dst, int value, size_t bytes, void *stream);

    void *reserved[8];             /* NULL */
} amg_backend;

/* The one symbol a backend exports. */
typedef const amg_backend *(*amg_backend_entry_fn)(void);

#ifdef __cplusplus
}
#endif
#endif /* AMG_BACKEND_H */
