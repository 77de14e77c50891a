/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_device.c - host/device.c (parsing, finding and checking a backend,
 * the memory budget) and the host services on a device (CUDA temporaries,
 * tensor_copy between host and device, the device's kernel table), all
 * through the loopback backend (tests/gpu/loopback.c): "device" memory is
 * host memory there, so every value can be read back and checked.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "device.h"
#include "plugin_loader.h"
#include "tensor_mem.h"
#include "testutil.h"

static const amg_device cpu = { AMG_DEVICE_CPU, 0 };
static const amg_device cuda0 = { AMG_DEVICE_CUDA, 0 };

/* Select the loopback (make check names it in LOOPBACK_BACKEND). */
static void use_loopback(void)
{
    const char *lb = getenv("LOOPBACK_BACKEND");

    ck_assert_msg(lb && lb[0] == '/',
                  "LOOPBACK_BACKEND must name tests/gpu/.libs/loopback.so "
                  "(make check sets it)");
    ck_assert_int_eq(setenv("AMALGAM_BACKEND_PATH", lb, 1), 0);
    unsetenv("AMALGAM_LOOPBACK_FREE");
    unsetenv("AMALGAM_LOOPBACK_FAIL");
}

static amg_device_rt *open_loopback(uint64_t budget)
{
    amg_device_rt *rt = NULL;
    amg_err err;

    amg_err_clear(&err);
    use_loopback();
    ck_assert_msg(amg_device_open(AMG_DEVICE_CUDA, 0, budget, &rt, &err) ==
                      AMG_OK,
                  "%s", err.msg);
    ck_assert_ptr_nonnull(rt);
    return rt;
}

START_TEST(parse_specs)
{
    int32_t type = -1, ord = -1;
    amg_err err;
    static const char *const bad[] = {
        "", "CUDA", "gpu", "cuda:", "cuda:-1", "cuda:+1", "cuda:x",
        "cuda:1 ", " cuda", "cuda0", "cuda:4096", "cuda:99999999999999999999",
        "cpu:0",
    };
    size_t i;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_device_parse("cpu", &type, &ord, &err), AMG_OK);
    ck_assert_int_eq(type, AMG_DEVICE_CPU);
    ck_assert_int_eq(ord, 0);
    ck_assert_int_eq(amg_device_parse("cuda", &type, &ord, &err), AMG_OK);
    ck_assert_int_eq(type, AMG_DEVICE_CUDA);
    ck_assert_int_eq(ord, 0);
    ck_assert_int_eq(amg_device_parse("cuda:3", &type, &ord, &err), AMG_OK);
    ck_assert_int_eq(ord, 3);
    ck_assert_int_eq(amg_device_parse("cuda:4095", &type, &ord, &err),
                     AMG_OK);
    ck_assert_int_eq(ord, 4095);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(amg_device_parse(bad[i], &type, &ord, &err) ==
                          AMG_EUSAGE,
                      "'%s' accepted", bad[i]);
    }
    ck_assert_str_eq(err.msg, "invalid device 'cpu:0': expected cpu, cuda "
                              "or cuda:N (N from 0 to 4095)");
}
END_TEST

START_TEST(open_failures)
{
    amg_device_rt *rt = (amg_device_rt *)&rt;
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(setenv("AMALGAM_BACKEND_PATH", "/nonexistent/cuda.so",
                            1),
                     0);
    ck_assert_int_eq(amg_device_open(AMG_DEVICE_CUDA, 0, 0, &rt, &err),
                     AMG_ENOTFOUND);
    ck_assert_ptr_null(rt);
    ck_assert_str_eq(err.msg, "cannot load the cuda backend "
                              "'/nonexistent/cuda.so' (from "
                              "AMALGAM_BACKEND_PATH): No such file or "
                              "directory");
    ck_assert_int_eq(setenv("AMALGAM_BACKEND_PATH", "lib/cuda.so", 1), 0);
    ck_assert_int_eq(amg_device_open(AMG_DEVICE_CUDA, 0, 0, &rt, &err),
                     AMG_EINVAL);
    ck_assert_str_eq(err.msg, "AMALGAM_BACKEND_PATH 'lib/cuda.so' is not an "
                              "absolute path");
    /* a shared object that is no backend: the loader's test plugin */
    {
        char path[4096];
        const char *dir = getenv("TEST_PLUGIN_DIR");

        ck_assert_ptr_nonnull(dir);
        snprintf(path, sizeof(path), "%s/good.so", dir);
        ck_assert_int_eq(setenv("AMALGAM_BACKEND_PATH", path, 1), 0);
        ck_assert_int_eq(amg_device_open(AMG_DEVICE_CUDA, 0, 0, &rt, &err),
                         AMG_EPLUGIN);
        ck_assert_ptr_nonnull(strstr(err.msg, "is not an amalgam device "
                                              "backend: no amg_backend_entry "
                                              "symbol"));
    }
    ck_assert_int_eq(amg_device_open(AMG_DEVICE_CPU, 0, 0, &rt, &err),
                     AMG_EINVAL);
    ck_assert_str_eq(err.msg, "device type 1 has no backend (only cuda "
                              "does)");
}
END_TEST

/* Without AMALGAM_BACKEND_PATH the installed backend is looked for (this
 * test program is not the build tree's amalgam). */
START_TEST(open_without_backend)
{
    amg_device_rt *rt = NULL;
    amg_err err;
    int rc;

    amg_err_clear(&err);
    unsetenv("AMALGAM_BACKEND_PATH");
    rc = amg_device_open(AMG_DEVICE_CUDA, 0, 0, &rt, &err);
#ifdef HAVE_CUDA
    /* an installed CUDA amalgam on this machine would be found, and used
     * when there is a GPU: check the message of the other outcomes */
    if (rc == AMG_OK)
        amg_device_close(rt);
    else
        ck_assert_msg(strncmp(err.msg, "cannot find the cuda backend '",
                              30) == 0 ||
                          strncmp(err.msg, "cannot use cuda:0: ", 19) == 0,
                      "unexpected: %s", err.msg);
#else
    ck_assert_int_eq(rc, AMG_EUNSUPPORTED);
    ck_assert_str_eq(err.msg, "this amalgam was built without CUDA; rebuild "
                              "with ./configure --with-cuda");
#endif
}
END_TEST

START_TEST(open_loopback_and_budget)
{
    amg_device_rt *rt, *rt2 = NULL;
    amg_err err;

    amg_err_clear(&err);
    /* 0: 90% of the 1 GiB the loopback reports free */
    rt = open_loopback(0);
    ck_assert_uint_eq(amg_device_budget(rt), 966367641u);
    ck_assert_int_eq(amg_device_ordinal(rt), 0);
    ck_assert_int_eq(amg_device_backend(rt)->device_type, AMG_DEVICE_CUDA);
    ck_assert_uint_eq(amg_device_in_use(rt), 0);
    /* one device run at a time */
    ck_assert_int_eq(amg_device_open(AMG_DEVICE_CUDA, 0, 0, &rt2, &err),
                     AMG_EINVAL);
    ck_assert_str_eq(err.msg, "cannot open cuda:0: a device is already open "
                              "in this process");
    amg_device_close(rt);

    ck_assert_int_eq(setenv("AMALGAM_LOOPBACK_FREE", "1000", 1), 0);
    ck_assert_int_eq(amg_device_open(AMG_DEVICE_CUDA, 0, 0, &rt, &err),
                     AMG_OK);
    ck_assert_uint_eq(amg_device_budget(rt), 900);
    amg_device_close(rt);
    /* an explicit budget is taken as given */
    ck_assert_int_eq(amg_device_open(AMG_DEVICE_CUDA, 0, 5000, &rt, &err),
                     AMG_OK);
    ck_assert_uint_eq(amg_device_budget(rt), 5000);
    amg_device_close(rt);
}
END_TEST

START_TEST(open_backend_refuses)
{
    amg_device_rt *rt = NULL;
    amg_err err;

    amg_err_clear(&err);
    use_loopback();
    ck_assert_int_eq(amg_device_open(AMG_DEVICE_CUDA, 1, 0, &rt, &err),
                     AMG_ENOTFOUND);
    ck_assert_str_eq(err.msg, "cannot use cuda:1: device 1 does not exist "
                              "(loopback: 1 device)");
    ck_assert_int_eq(setenv("AMALGAM_LOOPBACK_FAIL", "open", 1), 0);
    ck_assert_int_eq(amg_device_open(AMG_DEVICE_CUDA, 0, 0, &rt, &err),
                     AMG_ENOTFOUND);
    ck_assert_str_eq(err.msg, "cannot use cuda:0: no CUDA-capable device is "
                              "detected (loopback: "
                              "AMALGAM_LOOPBACK_FAIL=open)");
    ck_assert_ptr_null(rt);
    /* a failed open leaves no device open behind */
    unsetenv("AMALGAM_LOOPBACK_FAIL");
    ck_assert_int_eq(amg_device_open(AMG_DEVICE_CUDA, 0, 0, &rt, &err),
                     AMG_OK);
    amg_device_close(rt);
}
END_TEST

START_TEST(alloc_accounting)
{
    amg_device_rt *rt = open_loopback(1000);
    void *a = NULL, *b = NULL, *c = NULL;
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_device_alloc(rt, 600, NULL, &a, &err), AMG_OK);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq((uintptr_t)a % 256, 0);
    ck_assert_uint_eq(amg_device_in_use(rt), 600);
    ck_assert_int_eq(amg_device_alloc(rt, 500, NULL, &b, &err), AMG_ENOMEM);
    ck_assert_ptr_null(b);
    ck_assert_str_eq(err.msg, "gpu memory budget of 1.00 kB exceeded: 600 B "
                              "in use, 500 B more asked for; raise --gpu-mem "
                              "or lower -j/--chunk-size");
    ck_assert_uint_eq(amg_device_in_use(rt), 600);
    ck_assert_int_eq(amg_device_alloc(rt, 400, NULL, &b, &err), AMG_OK);
    ck_assert_uint_eq(amg_device_in_use(rt), 1000);
    /* nothing asked, nothing counted */
    ck_assert_int_eq(amg_device_alloc(rt, 0, NULL, &c, &err), AMG_OK);
    ck_assert_ptr_null(c);
    amg_device_free(rt, c, 0, NULL);
    amg_device_free(rt, a, 600, NULL);
    ck_assert_uint_eq(amg_device_in_use(rt), 400);
    amg_device_free(rt, b, 400, NULL);
    ck_assert_uint_eq(amg_device_in_use(rt), 0);
    amg_device_close(rt);

    /* the device itself is full: its message, the count given back */
    ck_assert_int_eq(setenv("AMALGAM_LOOPBACK_FAIL", "alloc", 1), 0);
    ck_assert_int_eq(amg_device_open(AMG_DEVICE_CUDA, 0, 1000, &rt, &err),
                     AMG_OK);
    ck_assert_int_eq(amg_device_alloc(rt, 64, NULL, &a, &err), AMG_ENOMEM);
    ck_assert_str_eq(err.msg, "cannot allocate 64 B on cuda:0: out of memory "
                              "(loopback: AMALGAM_LOOPBACK_FAIL=alloc, 64 "
                              "bytes)");
    ck_assert_uint_eq(amg_device_in_use(rt), 0);
    amg_device_close(rt);
}
END_TEST

/* Workers allocating at once never hold more than the budget together. */
#define RACE_THREADS 4
#define RACE_ROUNDS 2000
#define RACE_BLOCK 256

static amg_device_rt *race_rt;
static atomic_int race_over;

static void *race_worker(void *arg)
{
    int i;

    (void)arg;
    for (i = 0; i < RACE_ROUNDS; i++) {
        void *p = NULL;
        amg_err err;

        amg_err_clear(&err);
        if (amg_device_alloc(race_rt, RACE_BLOCK, NULL, &p, &err) == AMG_OK) {
            if (amg_device_in_use(race_rt) > amg_device_budget(race_rt))
                atomic_store(&race_over, 1);
            amg_device_free(race_rt, p, RACE_BLOCK, NULL);
        } else if (strncmp(err.msg, "gpu memory budget of 512 B exceeded",
                           35) != 0) {
            atomic_store(&race_over, 2);
        }
    }
    return NULL;
}

START_TEST(alloc_concurrent)
{
    pthread_t th[RACE_THREADS];
    int i;

    race_rt = open_loopback(2 * RACE_BLOCK);
    atomic_init(&race_over, 0);
    for (i = 0; i < RACE_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, race_worker, NULL), 0);
    for (i = 0; i < RACE_THREADS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    ck_assert_int_eq(atomic_load(&race_over), 0);
    ck_assert_uint_eq(amg_device_in_use(race_rt), 0);
    amg_device_close(race_rt);
}
END_TEST

START_TEST(temporaries_on_device)
{
    const amg_host_api *h = amg_host_api_get();
    amg_device_rt *rt = open_loopback(0);
    amg_device cuda1 = { AMG_DEVICE_CUDA, 1 };
    amg_device pinned = { AMG_DEVICE_CUDA_HOST, 0 };
    int64_t shape[2] = { 2, 3 };
    amg_tensor *t = NULL, *u = NULL, *v = NULL;
    amg_ctx ctx;

    amg_ctx_init(&ctx, "test", "w", NULL);
    /* no device in this call: refused, whatever the process has open */
    ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_FLOAT, 32), 2,
                                   shape, cuda0, &t),
                     AMG_EDEVICE);
    ck_assert_ptr_null(t);
    ck_assert_str_eq(ctx.err.msg, "cuda tensors need a device run (--device "
                                  "cuda); this call runs on the cpu");
    ck_assert_ptr_null(h->kernels(&ctx, cuda0));

    ctx.dev = rt;
    ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_FLOAT, 32), 2,
                                   shape, cuda0, &t),
                     AMG_OK);
    ck_assert_int_eq(t->dl.device.type, AMG_DEVICE_CUDA);
    ck_assert_int_eq(t->dl.device.id, 0);
    ck_assert_ptr_nonnull(t->dl.data);
    ck_assert_uint_eq(amg_tensor_numel(t), 6);
    ck_assert_uint_eq(amg_device_in_use(rt), 24);
    t->elem_offset = 12;
    t->full_numel = 60;
    ck_assert_int_eq(h->tensor_new_like(&ctx, t, amg_dl_make(AMG_DL_BOOL, 8),
                                        &u),
                     AMG_OK);
    ck_assert_int_eq(u->dl.device.type, AMG_DEVICE_CUDA);
    ck_assert_uint_eq(u->elem_offset, 12);
    ck_assert_uint_eq(u->full_numel, 60);
    ck_assert_uint_eq(amg_device_in_use(rt), 30);
    h->tensor_release(&ctx, u);
    ck_assert_uint_eq(amg_device_in_use(rt), 24);
    /* host temporaries in the same call stay host memory */
    ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_FLOAT, 32), 2,
                                   shape, cpu, &v),
                     AMG_OK);
    ck_assert_int_eq(v->dl.device.type, AMG_DEVICE_CPU);
    ck_assert_uint_eq(amg_device_in_use(rt), 24);

    ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_FLOAT, 32), 2,
                                   shape, cuda1, &u),
                     AMG_EDEVICE);
    ck_assert_str_eq(ctx.err.msg, "cuda:1 is not the device of this run "
                                  "(cuda:0)");
    ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_FLOAT, 32), 2,
                                   shape, pinned, &u),
                     AMG_EDEVICE);
    ck_assert_str_eq(ctx.err.msg, "temporaries are cpu or cuda tensors, not "
                                  "pinned host (cuda_host) ones");
    amg_ctx_release(&ctx);
    ck_assert_ptr_null(ctx.temps);
    ck_assert_uint_eq(amg_device_in_use(rt), 0);
    amg_device_close(rt);
}
END_TEST

START_TEST(temporaries_over_budget)
{
    const amg_host_api *h = amg_host_api_get();
    amg_device_rt *rt = open_loopback(64);
    int64_t shape[1] = { 100 };
    amg_tensor *t = NULL;
    amg_ctx ctx;

    amg_ctx_init(&ctx, "test", "w", NULL);
    ctx.dev = rt;
    ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_FLOAT, 32), 1,
                                   shape, cuda0, &t),
                     AMG_ENOMEM);
    ck_assert_ptr_null(t);
    ck_assert_str_eq(ctx.err.msg, "gpu memory budget of 64 B exceeded: 0 B in "
                                  "use, 400 B more asked for; raise --gpu-mem "
                                  "or lower -j/--chunk-size");
    ck_assert_uint_eq(amg_device_in_use(rt), 0);
    amg_ctx_release(&ctx);
    amg_device_close(rt);
}
END_TEST

/* Host -> device -> device (converted) -> host, every value checked; no
 * temporary outlives its copy. */
START_TEST(copy_between_devices)
{
    const amg_host_api *h = amg_host_api_get();
    amg_device_rt *rt = open_loopback(0);
    static const float vals[4] = { -1.5f, -0.5f, 0.5f, 9.5f };
    float back[4] = { 0 };
    uint16_t bits[4] = { 0 };
    int64_t shape[2] = { 2, 2 };
    amg_tensor *hsrc, *hdst, *hbits, *d32, *d16, *d32b;
    amg_ctx ctx;
    int i;

    amg_ctx_init(&ctx, "test", "w", NULL);
    ctx.dev = rt;
    ck_assert_int_eq(amg_tensor_wrap(&hsrc, (void *)vals,
                                     amg_dl_make(AMG_DL_FLOAT, 32), 2, shape,
                                     NULL, AMG_TENSOR_READ_ONLY, &ctx.err),
                     AMG_OK);
    ck_assert_int_eq(amg_tensor_wrap(&hdst, back,
                                     amg_dl_make(AMG_DL_FLOAT, 32), 2, shape,
                                     NULL, 0, &ctx.err),
                     AMG_OK);
    ck_assert_int_eq(amg_tensor_wrap(&hbits, bits,
                                     amg_dl_make(AMG_DL_BFLOAT, 16), 2, shape,
                                     NULL, 0, &ctx.err),
                     AMG_OK);
    ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_FLOAT, 32), 2,
                                   shape, cuda0, &d32),
                     AMG_OK);
    ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_BFLOAT, 16), 2,
                                   shape, cuda0, &d16),
                     AMG_OK);
    ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_FLOAT, 32), 2,
                                   shape, cuda0, &d32b),
                     AMG_OK);
    ck_assert_uint_eq(amg_device_in_use(rt), 16 + 8 + 16);

    /* h2d raw, then d2d converting with the device's table: f32 -> bf16
     * is -1.5 0xBFC0, -0.5 0xBF00, 0.5 0x3F00, 9.5 0x4118 */
    ck_assert_int_eq(h->tensor_copy(&ctx, d32, hsrc), AMG_OK);
    ck_assert_int_eq(memcmp(d32->dl.data, vals, sizeof(vals)), 0);
    ck_assert_int_eq(h->tensor_copy(&ctx, d16, d32), AMG_OK);
    /* d2h raw */
    ck_assert_int_eq(h->tensor_copy(&ctx, hbits, d16), AMG_OK);
    ck_assert_uint_eq(bits[0], 0xBFC0);
    ck_assert_uint_eq(bits[1], 0xBF00);
    ck_assert_uint_eq(bits[2], 0x3F00);
    ck_assert_uint_eq(bits[3], 0x4118);
    /* d2h converting on the device (bf16 -> f32, exact here) */
    ck_assert_int_eq(h->tensor_copy(&ctx, hdst, d16), AMG_OK);
    for (i = 0; i < 4; i++)
        ck_assert_float_eq(back[i], vals[i]);
    /* h2d converting on the host (bf16 -> f32), d2d raw, d2h raw */
    ck_assert_int_eq(h->tensor_copy(&ctx, d32b, hbits), AMG_OK);
    ck_assert_int_eq(h->tensor_copy(&ctx, d32, d32b), AMG_OK);
    memset(back, 0, sizeof(back));
    ck_assert_int_eq(h->tensor_copy(&ctx, hdst, d32), AMG_OK);
    for (i = 0; i < 4; i++)
        ck_assert_float_eq(back[i], vals[i]);
    /* f32 host -> bf16 device rounds on the host: 1 + 2^-8 is a tie that
     * goes to even (1.0, 0x3F80); 1 + 3 * 2^-8 goes up (0x3F82) */
    {
        float odd[4] = { 1.0f + 1.0f / 256, 1.0f + 3.0f / 256, -0.0f, 2.0f };

        hsrc->dl.data = odd;
        ck_assert_int_eq(h->tensor_copy(&ctx, d16, hsrc), AMG_OK);
        ck_assert_int_eq(h->tensor_copy(&ctx, hbits, d16), AMG_OK);
        ck_assert_uint_eq(bits[0], 0x3F80);
        ck_assert_uint_eq(bits[1], 0x3F82);
        ck_assert_uint_eq(bits[2], 0x8000);
        ck_assert_uint_eq(bits[3], 0x4000);
        hsrc->dl.data = (void *)vals;
    }
    ck_assert_uint_eq(amg_device_in_use(rt), 16 + 8 + 16);

    /* element counts must match */
    {
        int64_t three[1] = { 3 };
        amg_tensor *d3;

        ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_FLOAT, 32), 1,
                                       three, cuda0, &d3),
                         AMG_OK);
        ck_assert_int_eq(h->tensor_copy(&ctx, d3, hsrc), AMG_EINVAL);
        ck_assert_str_eq(ctx.err.msg, "tensor_copy: dst has 3 elements, src "
                                      "has 4");
    }
    amg_tensor_free(hsrc);
    amg_tensor_free(hdst);
    amg_tensor_free(hbits);
    amg_ctx_release(&ctx);
    ck_assert_uint_eq(amg_device_in_use(rt), 0);
    amg_device_close(rt);
}
END_TEST

/* A "device" tensor over memory the backend never gave out: the copy
 * fails as cudaMemcpyAsync would, with the backend's message. */
START_TEST(copy_refuses_host_memory_as_device)
{
    const amg_host_api *h = amg_host_api_get();
    amg_device_rt *rt = open_loopback(0);
    float host_mem[2] = { 0 }, src_mem[2] = { 1, 2 };
    int64_t shape[1] = { 2 };
    amg_tensor *fake, *src;
    amg_ctx ctx;

    amg_ctx_init(&ctx, "test", "w", NULL);
    ctx.dev = rt;
    ck_assert_int_eq(amg_tensor_wrap_device(&fake, host_mem, cuda0,
                                            amg_dl_make(AMG_DL_FLOAT, 32), 1,
                                            shape, NULL, 0, &ctx.err),
                     AMG_OK);
    ck_assert_int_eq(fake->dl.device.type, AMG_DEVICE_CUDA);
    ck_assert_int_eq(amg_tensor_wrap(&src, src_mem,
                                     amg_dl_make(AMG_DL_FLOAT, 32), 1, shape,
                                     NULL, 0, &ctx.err),
                     AMG_OK);
    ck_assert_int_eq(h->tensor_copy(&ctx, fake, src), AMG_EDEVICE);
    ck_assert_str_eq(ctx.err.msg, "tensor_copy: copying 8 bytes host to "
                                  "device failed: invalid argument "
                                  "(loopback: the destination of 8 bytes is "
                                  "not device memory)");
    ck_assert_float_eq(host_mem[0], 0.0f);
    amg_tensor_free(fake);
    amg_tensor_free(src);
    amg_ctx_release(&ctx);
    amg_device_close(rt);
}
END_TEST

/* The device's table from kernels(): it runs on device tensors and
 * refuses host ones, as the CUDA table does. */
START_TEST(device_kernels)
{
    const amg_host_api *h = amg_host_api_get();
    amg_device_rt *rt = open_loopback(0);
    const amg_kernels *k;
    float host_mem[3] = { 0 }, back[3] = { 0 };
    int64_t shape[1] = { 3 };
    amg_tensor *x, *y, *hx, *hb;
    amg_ctx ctx;

    amg_ctx_init(&ctx, "test", "w", NULL);
    ctx.dev = rt;
    k = h->kernels(&ctx, cuda0);
    ck_assert_ptr_nonnull(k);
    ck_assert_int_eq(k->device_type, AMG_DEVICE_CUDA);
    ck_assert_ptr_eq(k, amg_device_backend(rt)->kernels());
    ck_assert_ptr_nonnull(h->kernels(&ctx, cpu));
    ck_assert_int_eq(h->kernels(&ctx, cpu)->device_type, AMG_DEVICE_CPU);
    {
        amg_device cuda1 = { AMG_DEVICE_CUDA, 1 };
        ck_assert_ptr_null(h->kernels(&ctx, cuda1));
    }

    ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_FLOAT, 32), 1,
                                   shape, cuda0, &x),
                     AMG_OK);
    ck_assert_int_eq(h->tensor_new(&ctx, amg_dl_make(AMG_DL_FLOAT, 32), 1,
                                   shape, cuda0, &y),
                     AMG_OK);
    /* y = 0.5 * 2 + 3 * 0.25 = 1.75 */
    ck_assert_int_eq(k->fill(&ctx, x, 2.0f), AMG_OK);
    ck_assert_int_eq(k->fill(&ctx, y, 0.25f), AMG_OK);
    ck_assert_int_eq(k->axpby(&ctx, y, 0.5f, x, 3.0f, y), AMG_OK);
    ck_assert_int_eq(amg_tensor_wrap(&hb, back, amg_dl_make(AMG_DL_FLOAT, 32),
                                     1, shape, NULL, 0, &ctx.err),
                     AMG_OK);
    ck_assert_int_eq(h->tensor_copy(&ctx, hb, y), AMG_OK);
    ck_assert_float_eq(back[0], 1.75f);
    ck_assert_float_eq(back[2], 1.75f);

    ck_assert_int_eq(amg_tensor_wrap(&hx, host_mem,
                                     amg_dl_make(AMG_DL_FLOAT, 32), 1, shape,
                                     NULL, 0, &ctx.err),
                     AMG_OK);
    ck_assert_int_eq(k->fill(&ctx, hx, 1.0f), AMG_EINVAL);
    ck_assert_str_eq(ctx.err.msg, "fill: out is on device type 1, not in "
                                  "device memory");
    ck_assert_float_eq(host_mem[0], 0.0f);
    amg_tensor_free(hx);
    amg_tensor_free(hb);
    amg_ctx_release(&ctx);
    amg_device_close(rt);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("device");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, parse_specs);
    tcase_add_test(tc, open_failures);
    tcase_add_test(tc, open_without_backend);
    tcase_add_test(tc, open_loopback_and_budget);
    tcase_add_test(tc, open_backend_refuses);
    tcase_add_test(tc, alloc_accounting);
    tcase_add_test(tc, alloc_concurrent);
    tcase_add_test(tc, temporaries_on_device);
    tcase_add_test(tc, temporaries_over_budget);
    tcase_add_test(tc, copy_between_devices);
    tcase_add_test(tc, copy_refuses_host_memory_as_device);
    tcase_add_test(tc, device_kernels);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
