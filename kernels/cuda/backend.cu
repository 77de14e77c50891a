/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CUDA backend (host/backend.h): device selection, memory, streams
 * and copies for the host, and the kernel table. The shared object
 * exports amg_backend_entry alone (it is built with hidden visibility).
 *
 * Failures leave their message in the calling thread's buffer, read by
 * error_string(); CUDA's own error is cleared so it does not resurface in
 * a later, unrelated call of the same thread.
 */
#include "kernels_cuda.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"

static thread_local char err_buf[512];

static int32_t set_error(int32_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int32_t set_error(int32_t status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof(err_buf), fmt, ap);
    va_end(ap);
    return status;
}

/* "<what>: <CUDA's message>", AMG_ENOMEM for allocation failures */
static int32_t cuda_error(const char *what, cudaError_t e)
{
    (void)cudaGetLastError();
    return set_error(e == cudaErrorMemoryAllocation ? AMG_ENOMEM
                                                    : AMG_EDEVICE,
                     "%s: %s", what, cudaGetErrorString(e));
}

static int32_t bind(const char *what)
{
    cudaError_t e = amg__kcu_bind();

    return e == cudaSuccess ? AMG_OK : cuda_error(what, e);
}

/* Never launched: open() asks whether its code loads on the device. */
static __global__ void k_probe(int *p)
{
    *p = 1;
}

static const char *b_error_string(void)
{
    return err_buf;
}

static int32_t b_open(int32_t ordinal, const amg_host_api *host)
{
    int driver = 0, count = 0, sms = 0;
    cudaMemPool_t pool;
    cudaDeviceProp prop;
    cudaFuncAttributes attr;
    uint64_t keep = UINT64_MAX;
    cudaError_t e;

    if (!host)
        return set_error(AMG_EINVAL, "cannot open the CUDA backend: no host "
                         "services table");
    e = cudaDriverGetVersion(&driver);
    if (e != cudaSuccess || driver == 0) {
        (void)cudaGetLastError();
        return set_error(AMG_ENOTFOUND, "no CUDA driver found (is the NVIDIA "
                         "driver installed?)");
    }
    /* a driver runs any runtime of its major version (CUDA's minor
     * version compatibility), not one of a later major */
    if (driver / 1000 < CUDART_VERSION / 1000)
        return set_error(AMG_EUNSUPPORTED, "the NVIDIA driver supports CUDA "
                         "%d.%d, older than the CUDA %d.x this build needs; "
                         "update the driver", driver / 1000,
                         driver % 1000 / 10, CUDART_VERSION / 1000);
    e = cudaGetDeviceCount(&count);
    if (e == cudaErrorNoDevice || (e == cudaSuccess && count == 0)) {
        (void)cudaGetLastError();
        return set_error(AMG_ENOTFOUND, "no CUDA device found");
    }
    if (e == cudaErrorInsufficientDriver) {
        (void)cudaGetLastError();
        return set_error(AMG_EUNSUPPORTED, "the NVIDIA driver is too old for "
                         "the CUDA %d.%d this build needs; update the driver",
                         CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
    }
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return set_error(AMG_ENOTFOUND, "cannot list CUDA devices: %s",
                         cudaGetErrorString(e));
    }
    if (ordinal < 0 || ordinal >= count)
        return set_error(AMG_ENOTFOUND, "CUDA device %d does not exist "
                         "(%d device%s found, numbered from 0)", (int)ordinal,
                         count, count == 1 ? "" : "s");
    e = cudaGetDeviceProperties(&prop, ordinal);
    if (e != cudaSuccess)
        return cuda_error("cannot query the CUDA device", e);
    /* the shared object carries sm_80 and sm_90 code and compute_90 PTX:
     * compute capability 8.x and newer run it */
    if (prop.major < 8)
        return set_error(AMG_EUNSUPPORTED, "CUDA device %d (%s) has compute "
                         "capability %d.%d; amalgam's kernels need 8.0 or "
                         "newer", (int)ordinal, prop.name, prop.major,
                         prop.minor);
    e = cudaSetDevice(ordinal);
    if (e != cudaSuccess)
        return cuda_error("cannot select the CUDA device", e);
    e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, ordinal);
    if (e != cudaSuccess)
        return cuda_error("cannot query the CUDA device", e);
    /* fails when no code in this build runs on the device (a newer PTX
     * than the driver can compile, say) */
    e = cudaFuncGetAttributes(&attr, k_probe);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return set_error(AMG_EUNSUPPORTED, "the CUDA kernels cannot run on "
                         "device %d (%s, compute capability %d.%d): %s",
                         (int)ordinal, prop.name, prop.major, prop.minor,
                         cudaGetErrorString(e));
    }
    /* freed scratch and buffers stay in the pool for the next allocation
     * instead of going back to the driver at every synchronisation */
    e = cudaDeviceGetDefaultMemPool(&pool, ordinal);
    if (e == cudaSuccess)
        e = cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold,
                                    &keep);
    if (e != cudaSuccess)
        return cuda_error("cannot set up the device memory pool", e);
    amg__kcu_host = host;
    amg__kcu_ordinal = ordinal;
    amg__kcu_sm_count = sms > 0 ? sms : 1;
    err_buf[0] = '\0';
    return AMG_OK;
}

static void b_close(void)
{
    cudaMemPool_t pool;

    if (amg__kcu_ordinal < 0 || amg__kcu_bind() != cudaSuccess)
        return;
    (void)cudaDeviceSynchronize();
    if (cudaDeviceGetDefaultMemPool(&pool, amg__kcu_ordinal) == cudaSuccess)
        (void)cudaMemPoolTrimTo(pool, 0);
    (void)cudaGetLastError();
    amg__kcu_ordinal = -1;
    amg__kcu_host = NULL;
}

static int32_t b_describe(char *buf, size_t len)
{
    cudaDeviceProp prop;
    cudaError_t e;
    int32_t rc = bind("cannot describe the CUDA device");

    if (rc)
        return rc;
    if (!buf || len == 0)
        return set_error(AMG_EINVAL, "cannot describe the CUDA device: no "
                         "buffer");
    e = cudaGetDeviceProperties(&prop, amg__kcu_ordinal);
    if (e != cudaSuccess)
        return cuda_error("cannot describe the CUDA device", e);
    snprintf(buf, len, "cuda:%d %s (compute capability %d.%d, %.1f GiB)",
             amg__kcu_ordinal, prop.name, prop.major, prop.minor,
             (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return AMG_OK;
}

static int32_t b_mem_info(uint64_t *free_bytes, uint64_t *total_bytes)
{
    size_t f = 0, t = 0;
    cudaError_t e;
    int32_t rc = bind("cannot query device memory");

    if (rc)
        return rc;
    e = cudaMemGetInfo(&f, &t);
    if (e != cudaSuccess)
        return cuda_error("cannot query device memory", e);
    if (free_bytes)
        *free_bytes = f;
    if (total_bytes)
        *total_bytes = t;
    return AMG_OK;
}

static const amg_kernels *b_kernels(void)
{
    return amg__kcu_table();
}

static int32_t b_stream_create(void **stream)
{
    cudaStream_t s;
    cudaError_t e;
    int32_t rc = bind("cannot create a CUDA stream");

    if (rc)
        return rc;
    /* non-blocking: no implicit synchronisation with the legacy default
     * stream, so workers' streams overlap */
    e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (e != cudaSuccess)
        return cuda_error("cannot create a CUDA stream", e);
    *stream = (void *)s;
    return AMG_OK;
}

static void b_stream_destroy(void *stream)
{
    if (stream && amg__kcu_bind() == cudaSuccess)
        (void)cudaStreamDestroy((cudaStream_t)stream);
}

static int32_t b_stream_sync(void *stream)
{
    cudaError_t e;
    int32_t rc = bind("device work failed");

    if (rc)
        return rc;
    e = cudaStreamSynchronize((cudaStream_t)stream);
    if (e != cudaSuccess)
        return cuda_error("device work failed", e);
    return AMG_OK;
}

static int32_t b_dev_alloc(size_t bytes, void *stream, void **out)
{
    cudaError_t e;
    int32_t rc = bind("cannot allocate device memory");

    if (rc)
        return rc;
    /* a zero-byte request still gets a distinct, freeable pointer */
    e = cudaMallocAsync(out, bytes ? bytes : 1, (cudaStream_t)stream);
    if (e != cudaSuccess) {
        *out = NULL;
        (void)cudaGetLastError();
        if (e == cudaErrorMemoryAllocation)
            return set_error(AMG_ENOMEM, "cannot allocate %llu bytes of "
                             "device memory: the device is full",
                             (unsigned long long)bytes);
        return cuda_error("cannot allocate device memory", e);
    }
    return AMG_OK;
}

static void b_dev_free(void *p, void *stream)
{
    if (p && amg__kcu_bind() == cudaSuccess)
        (void)cudaFreeAsync(p, (cudaStream_t)stream);
}

static void *b_host_alloc(size_t bytes)
{
    void *p = NULL;

    if (amg__kcu_bind() != cudaSuccess)
        return NULL;
    if (cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocPortable) !=
        cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    return p;
}

static void b_host_free(void *p)
{
    if (p && amg__kcu_bind() == cudaSuccess)
        (void)cudaFreeHost(p);
}

static int32_t copy(void *dst, const void *src, size_t bytes, void *stream,
                    cudaMemcpyKind kind, const char *what)
{
    cudaError_t e;
    int32_t rc;

    if (bytes == 0)
        return AMG_OK;
    rc = bind(what);
    if (rc)
        return rc;
    e = cudaMemcpyAsync(dst, src, bytes, kind, (cudaStream_t)stream);
    return e == cudaSuccess ? AMG_OK : cuda_error(what, e);
}

static int32_t b_copy_h2d(void *dst, const void *src, size_t bytes,
                          void *stream)
{
    return copy(dst, src, bytes, stream, cudaMemcpyHostToDevice,
                "copy to the device failed");
}

static int32_t b_copy_d2h(void *dst, const void *src, size_t bytes,
                          void *stream)
{
    return copy(dst, src, bytes, stream, cudaMemcpyDeviceToHost,
                "copy from the device failed");
}

static int32_t b_copy_d2d(void *dst, const void *src, size_t bytes,
                          void *stream)
{
    return copy(dst, src, bytes, stream, cudaMemcpyDeviceToDevice,
                "device copy failed");
}

static int32_t b_memset_dev(void *dst, int value, size_t bytes, void *stream)
{
    cudaError_t e;
    int32_t rc;

    if (bytes == 0)
        return AMG_OK;
    rc = bind("device memset failed");
    if (rc)
        return rc;
    e = cudaMemsetAsync(dst, value, bytes, (cudaStream_t)stream);
    return e == cudaSuccess ? AMG_OK : cuda_error("device memset failed", e);
}

static amg_backend make_backend(void)
{
    amg_backend b;

    memset(&b, 0, sizeof(b));
    b.struct_size = (uint32_t)sizeof(amg_backend);
    b.abi = AMG_BACKEND_ABI;
    b.name = "cuda";
    b.device_type = AMG_DEVICE_CUDA;
    b.open = b_open;
    b.close = b_close;
    b.error_string = b_error_string;
    b.describe = b_describe;
    b.mem_info = b_mem_info;
    b.kernels = b_kernels;
    b.stream_create = b_stream_create;
    b.stream_destroy = b_stream_destroy;
    b.stream_sync = b_stream_sync;
    b.dev_alloc = b_dev_alloc;
    b.dev_free = b_dev_free;
    b.host_alloc = b_host_alloc;
    b.host_free = b_host_free;
    b.copy_h2d = b_copy_h2d;
    b.copy_d2h = b_copy_d2h;
    b.copy_d2d = b_copy_d2d;
    b.memset_dev = b_memset_dev;
    return b;
}

static const amg_backend backend = make_backend();

extern "C" __attribute__((visibility("default"))) const amg_backend *
amg_backend_entry(void)
{
    return &backend;
}
