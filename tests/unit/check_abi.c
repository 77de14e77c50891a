/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_abi.c - the plugin ABI pinned down: every public struct's size and
 * member offsets as shipped in ABI 0.1 (LP64), the tensor view against
 * DLPack's DLTensor, the build block, status codes and constants, and the
 * header-only RNG against published test vectors. A failure here means a
 * change would break plugins already built: bump the ABI instead.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <amalgam/amalgam.h>

#include "testutil.h"

#define OFF(type, member, want) ck_assert_uint_eq(offsetof(type, member), want)

static int is_lp64(void)
{
    return sizeof(void *) == 8 && sizeof(long) == 8 && sizeof(size_t) == 8;
}

/* ---- struct layouts (LP64: x86_64, aarch64) ---- */

START_TEST(tensor_layout)
{
    ck_assert_uint_eq(sizeof(amg_device), 8);
    OFF(amg_device, type, 0);
    OFF(amg_device, id, 4);
    ck_assert_uint_eq(sizeof(amg_dl_dtype), 4);
    OFF(amg_dl_dtype, code, 0);
    OFF(amg_dl_dtype, bits, 1);
    OFF(amg_dl_dtype, lanes, 2);
    ck_assert_uint_eq(sizeof(amg_dltensor), 48);
    OFF(amg_dltensor, data, 0);
    OFF(amg_dltensor, device, 8);
    OFF(amg_dltensor, ndim, 16);
    OFF(amg_dltensor, dtype, 20);
    OFF(amg_dltensor, shape, 24);
    OFF(amg_dltensor, strides, 32);
    OFF(amg_dltensor, byte_offset, 40);
    ck_assert_uint_eq(sizeof(amg_tensor), 120);
    OFF(amg_tensor, struct_size, 0);
    OFF(amg_tensor, flags, 4);
    OFF(amg_tensor, dl, 8);
    OFF(amg_tensor, name, 56);
    OFF(amg_tensor, elem_offset, 64);
    OFF(amg_tensor, full_numel, 72);
    OFF(amg_tensor, host_private, 80);
    OFF(amg_tensor, reserved, 88);
}
END_TEST

START_TEST(kernels_layout)
{
    ck_assert_uint_eq(sizeof(amg_kernels), 320);
    OFF(amg_kernels, struct_size, 0);
    OFF(amg_kernels, device_type, 4);
    OFF(amg_kernels, convert, 8);
    OFF(amg_kernels, fill, 16);
    OFF(amg_kernels, scale, 24);
    OFF(amg_kernels, axpby, 32);
    OFF(amg_kernels, mul, 40);
    OFF(amg_kernels, div, 48);
    OFF(amg_kernels, abs, 56);
    OFF(amg_kernels, sign, 64);
    OFF(amg_kernels, weighted_sum, 72);
    OFF(amg_kernels, mask_apply, 80);
    OFF(amg_kernels, where, 88);
    OFF(amg_kernels, topk_mask, 96);
    OFF(amg_kernels, abs_histogram, 104);
    OFF(amg_kernels, threshold_mask, 112);
    OFF(amg_kernels, sign_elect, 120);
    OFF(amg_kernels, disjoint_merge, 128);
    OFF(amg_kernels, sum, 136);
    OFF(amg_kernels, dot, 144);
    OFF(amg_kernels, norm_l2, 152);
    OFF(amg_kernels, norm_l1, 160);
    OFF(amg_kernels, row_dot, 168);
    OFF(amg_kernels, rng_uniform, 176);
    OFF(amg_kernels, rng_bernoulli, 184);
    OFF(amg_kernels, row_abs_rank, 192);
    OFF(amg_kernels, row_abs_sum, 200);
    OFF(amg_kernels, row_axpby, 208);
    OFF(amg_kernels, weighted_quotient, 216);
    OFF(amg_kernels, reserved, 224);
    ck_assert_uint_eq(sizeof(((amg_kernels *)0)->reserved), 12 * 8);
}
END_TEST

START_TEST(host_api_layout)
{
    ck_assert_uint_eq(sizeof(amg_host_api), 280);
    OFF(amg_host_api, struct_size, 0);
    OFF(amg_host_api, abi_major, 4);
    OFF(amg_host_api, abi_minor, 6);
    OFF(amg_host_api, host_name, 8);
    OFF(amg_host_api, host_version, 16);
    OFF(amg_host_api, mem_alloc, 24);
    OFF(amg_host_api, mem_free, 32);
    OFF(amg_host_api, tensor_new, 40);
    OFF(amg_host_api, tensor_new_like, 48);
    OFF(amg_host_api, tensor_release, 56);
    OFF(amg_host_api, tensor_copy, 64);
    OFF(amg_host_api, kernels, 72);
    OFF(amg_host_api, param_f64, 80);
    OFF(amg_host_api, param_i64, 88);
    OFF(amg_host_api, param_bool, 96);
    OFF(amg_host_api, param_str, 104);
    OFF(amg_host_api, log, 112);
    OFF(amg_host_api, fail, 120);
    OFF(amg_host_api, should_abort, 128);
    OFF(amg_host_api, cuda_stream, 136);
    OFF(amg_host_api, get_extension, 144);
    OFF(amg_host_api, reserved, 152);
}
END_TEST

START_TEST(plugin_layout)
{
    ck_assert_uint_eq(sizeof(amg_param_spec), 88);
    OFF(amg_param_spec, struct_size, 0);
    OFF(amg_param_spec, type, 4);
    OFF(amg_param_spec, scope, 8);
    OFF(amg_param_spec, flags, 12);
    OFF(amg_param_spec, name, 16);
    OFF(amg_param_spec, help, 24);
    OFF(amg_param_spec, def, 32);
    OFF(amg_param_spec, def_str, 40);
    OFF(amg_param_spec, min, 48);
    OFF(amg_param_spec, max, 56);
    OFF(amg_param_spec, choices, 64);
    OFF(amg_param_spec, reserved, 72);

    ck_assert_uint_eq(sizeof(amg_merge_call), 152);
    OFF(amg_merge_call, struct_size, 0);
    OFF(amg_merge_call, n_inputs, 4);
    OFF(amg_merge_call, host, 8);
    OFF(amg_merge_call, k, 16);
    OFF(amg_merge_call, tensor_name, 24);
    OFF(amg_merge_call, layer_index, 32);
    OFF(amg_merge_call, n_layers, 36);
    OFF(amg_merge_call, base, 40);
    OFF(amg_merge_call, inputs, 48);
    OFF(amg_merge_call, input_params, 56);
    OFF(amg_merge_call, params, 64);
    OFF(amg_merge_call, out, 72);
    OFF(amg_merge_call, seed, 80);
    OFF(amg_merge_call, row_begin, 88);
    OFF(amg_merge_call, row_end, 96);
    OFF(amg_merge_call, rows_total, 104);
    OFF(amg_merge_call, pass, 112);
    OFF(amg_merge_call, reserved0, 116);
    OFF(amg_merge_call, aux, 120);
    OFF(amg_merge_call, reserved, 128);

    ck_assert_uint_eq(sizeof(amg_strategy), 176);
    OFF(amg_strategy, struct_size, 0);
    OFF(amg_strategy, reduce_passes, 4);
    OFF(amg_strategy, id, 8);
    OFF(amg_strategy, summary, 16);
    OFF(amg_strategy, help, 24);
    OFF(amg_strategy, caps, 32);
    OFF(amg_strategy, min_inputs, 40);
    OFF(amg_strategy, max_inputs, 44);
    OFF(amg_strategy, n_params, 48);
    OFF(amg_strategy, reserved1, 52);
    OFF(amg_strategy, params, 56);
    OFF(amg_strategy, create, 64);
    OFF(amg_strategy, destroy, 72);
    OFF(amg_strategy, merge, 80);
    OFF(amg_strategy, stats_bytes, 88);
    OFF(amg_strategy, reduce, 96);
    OFF(amg_strategy, apply, 104);
    OFF(amg_strategy, aux_role, 112);
    OFF(amg_strategy, reserved, 120);

    ck_assert_uint_eq(sizeof(amg_module), 168);
    OFF(amg_module, struct_size, 0);
    OFF(amg_module, magic, 4);
    OFF(amg_module, abi_major, 8);
    OFF(amg_module, abi_minor, 10);
    OFF(amg_module, reserved0, 12);
    OFF(amg_module, build, 16);
    OFF(amg_module, name, 40);
    OFF(amg_module, version, 48);
    OFF(amg_module, license, 56);
    OFF(amg_module, description, 64);
    OFF(amg_module, init, 72);
    OFF(amg_module, fini, 80);
    OFF(amg_module, n_strategies, 88);
    OFF(amg_module, reserved1, 92);
    OFF(amg_module, strategies, 96);
    OFF(amg_module, reserved, 104);
}
END_TEST

/* The build block is the same on every ABI: six uint32_t, no padding, so
 * memcmp compares exactly the six values. */
START_TEST(build_config_layout)
{
    static const amg_build_config b = AMG_BUILD_CONFIG_INIT;

    ck_assert_uint_eq(sizeof(amg_build_config), 6 * 4);
    OFF(amg_build_config, ptr_bytes, 0);
    OFF(amg_build_config, size_t_bytes, 4);
    OFF(amg_build_config, little_endian, 8);
    OFF(amg_build_config, dltensor_bytes, 12);
    OFF(amg_build_config, tensor_bytes, 16);
    OFF(amg_build_config, cuda_stream_bytes, 20);
    ck_assert_uint_eq(b.ptr_bytes, sizeof(void *));
    ck_assert_uint_eq(b.size_t_bytes, sizeof(size_t));
    ck_assert_uint_eq(b.dltensor_bytes, sizeof(amg_dltensor));
    ck_assert_uint_eq(b.tensor_bytes, sizeof(amg_tensor));
    ck_assert_uint_eq(b.cuda_stream_bytes, sizeof(void *));
    {
        const uint16_t probe = 1;
        unsigned char first;
        memcpy(&first, &probe, 1);
        ck_assert_uint_eq(b.little_endian, first == 1);
    }
}
END_TEST

/* ---- DLPack: DLTensor as dlpack.h (v1.x) defines it, written out here
 * from the specification so the comparison does not need dlpack.h ---- */

typedef enum { kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3 } DLDeviceType;

typedef struct {
    DLDeviceType device_type;
    int32_t device_id;
} DLDevice;

typedef enum {
    kDLInt = 0,
    kDLUInt = 1,
    kDLFloat = 2,
    kDLBfloat = 4,
    kDLBool = 6,
    kDLFloat8_e4m3fn = 10,
    kDLFloat8_e5m2 = 12
} DLDataTypeCode;

typedef struct {
    uint8_t code;
    uint8_t bits;
    uint16_t lanes;
} DLDataType;

typedef struct {
    void *data;
    DLDevice device;
    int32_t ndim;
    DLDataType dtype;
    int64_t *shape;
    int64_t *strides;
    uint64_t byte_offset;
} DLTensor;

#define SAME(a, am, b, bm)                                                    \
    do {                                                                      \
        ck_assert_uint_eq(offsetof(a, am), offsetof(b, bm));                  \
        ck_assert_uint_eq(sizeof(((a *)0)->am), sizeof(((b *)0)->bm));        \
    } while (0)

START_TEST(dltensor_is_dlpack)
{
    ck_assert_uint_eq(sizeof(amg_dltensor), sizeof(DLTensor));
    ck_assert_uint_eq(_Alignof(amg_dltensor), _Alignof(DLTensor));
    SAME(amg_dltensor, data, DLTensor, data);
    SAME(amg_dltensor, device, DLTensor, device);
    SAME(amg_dltensor, ndim, DLTensor, ndim);
    SAME(amg_dltensor, dtype, DLTensor, dtype);
    SAME(amg_dltensor, shape, DLTensor, shape);
    SAME(amg_dltensor, strides, DLTensor, strides);
    SAME(amg_dltensor, byte_offset, DLTensor, byte_offset);
    ck_assert_uint_eq(sizeof(amg_device), sizeof(DLDevice));
    SAME(amg_device, type, DLDevice, device_type);
    SAME(amg_device, id, DLDevice, device_id);
    ck_assert_uint_eq(sizeof(amg_dl_dtype), sizeof(DLDataType));
    SAME(amg_dl_dtype, code, DLDataType, code);
    SAME(amg_dl_dtype, bits, DLDataType, bits);
    SAME(amg_dl_dtype, lanes, DLDataType, lanes);
    /* and the embedded view is a DLTensor* consumers can take as is */
    ck_assert_uint_eq(offsetof(amg_tensor, dl) % _Alignof(DLTensor), 0);
}
END_TEST

START_TEST(dlpack_codes)
{
    ck_assert_int_eq(AMG_DEVICE_CPU, kDLCPU);
    ck_assert_int_eq(AMG_DEVICE_CUDA, kDLCUDA);
    ck_assert_int_eq(AMG_DEVICE_CUDA_HOST, kDLCUDAHost);
    ck_assert_int_eq(AMG_DL_INT, kDLInt);
    ck_assert_int_eq(AMG_DL_UINT, kDLUInt);
    ck_assert_int_eq(AMG_DL_FLOAT, kDLFloat);
    ck_assert_int_eq(AMG_DL_BFLOAT, kDLBfloat);
    ck_assert_int_eq(AMG_DL_BOOL, kDLBool);
    ck_assert_int_eq(AMG_DL_FLOAT8_E4M3FN, kDLFloat8_e4m3fn);
    ck_assert_int_eq(AMG_DL_FLOAT8_E5M2, kDLFloat8_e5m2);
}
END_TEST

/* ---- status codes: values are ABI, only ever appended ---- */

START_TEST(status_table)
{
    ck_assert_int_eq(AMG_OK, 0);
    ck_assert_int_eq(AMG_EINVAL, 1);
    ck_assert_int_eq(AMG_ENOMEM, 2);
    ck_assert_int_eq(AMG_EIO, 3);
    ck_assert_int_eq(AMG_EFORMAT, 4);
    ck_assert_int_eq(AMG_ENOTFOUND, 5);
    ck_assert_int_eq(AMG_EUNSUPPORTED, 6);
    ck_assert_int_eq(AMG_ERANGE, 7);
    ck_assert_int_eq(AMG_EABORTED, 8);
    ck_assert_int_eq(AMG_EDEVICE, 9);
    ck_assert_int_eq(AMG_EPLUGIN, 10);
    ck_assert_int_eq(AMG_EUSAGE, 11);
    ck_assert_int_eq(AMG_EEXIST, 12);
    ck_assert_int_eq(AMG_STATUS_COUNT_, 13);
    ck_assert_str_eq(amg_status_str(AMG_OK), "success");
    ck_assert_str_eq(amg_status_str(AMG_EFORMAT), "malformed file");
    ck_assert_str_eq(amg_status_str(AMG_EPLUGIN), "plugin error");
    ck_assert_str_eq(amg_status_str(AMG_EEXIST), "already exists");
    ck_assert_str_eq(amg_status_str(AMG_STATUS_COUNT_), "unknown status");
    ck_assert_str_eq(amg_status_str(-1), "unknown status");
}
END_TEST

START_TEST(constants)
{
    static const char magic[4] = { 'A', 'M', 'G', '1' };
    uint32_t m = AMG_MODULE_MAGIC;
    const uint16_t probe = 1;
    unsigned char le;

    /* "AMG1" when the word is stored little-endian */
    memcpy(&le, &probe, 1);
    if (le)
        ck_assert_int_eq(memcmp(&m, magic, 4), 0);
    ck_assert_int_eq(AMG_ABI_MAJOR, 0);
    ck_assert_int_eq(AMG_ABI_MINOR, 1);
    ck_assert_str_eq(AMG_PLUGIN_ENTRY_NAME, "amg_plugin_entry");

    ck_assert_int_eq(AMG_PARAM_F64, 1);
    ck_assert_int_eq(AMG_PARAM_I64, 2);
    ck_assert_int_eq(AMG_PARAM_BOOL, 3);
    ck_assert_int_eq(AMG_PARAM_STR, 4);
    ck_assert_int_eq(AMG_SCOPE_GLOBAL, 0);
    ck_assert_int_eq(AMG_SCOPE_PER_MODEL, 1);
    ck_assert_uint_eq(AMG_PARAM_REQUIRED, 1);
    ck_assert_uint_eq(AMG_PARAM_GRADIENT, 2);
    ck_assert_uint_eq(AMG_PARAM_HAS_MIN, 4);
    ck_assert_uint_eq(AMG_PARAM_HAS_MAX, 8);
    ck_assert_uint_eq(AMG_PARAM_MIN_EXCLUSIVE, 16);
    ck_assert_uint_eq(AMG_PARAM_MAX_EXCLUSIVE, 32);

    ck_assert_uint_eq(AMG_CAP_CPU, 1);
    ck_assert_uint_eq(AMG_CAP_CUDA, 2);
    ck_assert_uint_eq(AMG_CAP_ELEMENTWISE, 4);
    ck_assert_uint_eq(AMG_CAP_NEEDS_BASE, 8);
    ck_assert_uint_eq(AMG_CAP_USES_RNG, 16);
    ck_assert_uint_eq(AMG_CAP_REENTRANT, 32);
    ck_assert_uint_eq(AMG_CAP_TWO_PASS, 64);

    ck_assert_uint_eq(AMG_TENSOR_READ_ONLY, 1);
    ck_assert_uint_eq(AMG_TENSOR_CONTIGUOUS, 2);
    ck_assert_int_eq(AMG_LOG_ERROR, 0);
    ck_assert_int_eq(AMG_LOG_WARN, 1);
    ck_assert_int_eq(AMG_LOG_INFO, 2);
    ck_assert_int_eq(AMG_LOG_DEBUG, 3);
    ck_assert_int_eq(AMG_SIGN_BY_SUM, 0);
    ck_assert_int_eq(AMG_SIGN_BY_COUNT, 1);
}
END_TEST

/* AMG_HOST_HAS: a member counts only inside struct_size and when set. */
static int32_t dummy_fail(amg_ctx *ctx, int32_t status, const char *fmt, ...)
{
    (void)ctx;
    (void)fmt;
    return status;
}

START_TEST(host_has)
{
    amg_host_api api;

    memset(&api, 0, sizeof(api));
    api.struct_size = (uint32_t)sizeof(api);
    ck_assert(!AMG_HOST_HAS(&api, fail));
    api.fail = dummy_fail;
    ck_assert(AMG_HOST_HAS(&api, fail));
    /* a host built before fail existed: the slot is past its struct_size */
    api.struct_size = (uint32_t)offsetof(amg_host_api, fail);
    ck_assert(!AMG_HOST_HAS(&api, fail));
    api.struct_size = (uint32_t)(offsetof(amg_host_api, fail) +
                                 sizeof(api.fail));
    ck_assert(AMG_HOST_HAS(&api, fail));
}
END_TEST

START_TEST(tensor_helpers)
{
    int64_t shape[3] = { 4, 3, 5 };
    amg_tensor t;

    memset(&t, 0, sizeof(t));
    ck_assert_uint_eq(amg_dl_size(amg_dl_make(AMG_DL_BFLOAT, 16)), 2);
    ck_assert_uint_eq(amg_dl_size(amg_dl_make(AMG_DL_BOOL, 8)), 1);
    ck_assert_uint_eq(amg_dl_size(amg_dl_make(AMG_DL_FLOAT, 64)), 8);
    ck_assert(amg_dl_eq(amg_dl_make(AMG_DL_FLOAT, 32),
                        amg_dl_make(AMG_DL_FLOAT, 32)));
    ck_assert(!amg_dl_eq(amg_dl_make(AMG_DL_FLOAT, 16),
                         amg_dl_make(AMG_DL_BFLOAT, 16)));
    /* a scalar: one element, one row */
    ck_assert_uint_eq(amg_tensor_numel(&t), 1);
    ck_assert_uint_eq(amg_tensor_rows(&t), 1);
    ck_assert_uint_eq(amg_tensor_row_numel(&t), 1);
    t.dl.ndim = 3;
    t.dl.shape = shape;
    t.dl.dtype = amg_dl_make(AMG_DL_FLOAT, 32);
    ck_assert_uint_eq(amg_tensor_numel(&t), 60);
    ck_assert_uint_eq(amg_tensor_rows(&t), 4);
    ck_assert_uint_eq(amg_tensor_row_numel(&t), 15);
    ck_assert(amg_tensor_is_f32(&t));
    {
        float buf[4];
        t.dl.data = buf;
        t.dl.byte_offset = 8;
        ck_assert_ptr_eq(amg_tensor_data(&t), &buf[2]);
    }
}
END_TEST

/* Philox4x32-10 known-answer vectors from Random123 (kat_vectors), mapped
 * through rng.h's counter = (index, stream), key = seed. */
START_TEST(rng_philox_kat)
{
    uint32_t w[4];

    amg_rng_philox(0, 0, 0, w);
    ck_assert_uint_eq(w[0], 0x6627e8d5u);
    ck_assert_uint_eq(w[1], 0xe169c58du);
    ck_assert_uint_eq(w[2], 0xbc57ac4cu);
    ck_assert_uint_eq(w[3], 0x9b00dbd8u);
    amg_rng_philox(UINT64_MAX, UINT64_MAX, UINT64_MAX, w);
    ck_assert_uint_eq(w[0], 0x408f276du);
    ck_assert_uint_eq(w[1], 0x41c83b0eu);
    ck_assert_uint_eq(w[2], 0xa20bc7c6u);
    ck_assert_uint_eq(w[3], 0x6d5451fdu);
    /* counter (243f6a88 85a308d3 13198a2e 03707344), key (a4093822
     * 299f31d0): the digits of pi */
    amg_rng_philox(0x299f31d0a4093822ull, 0x0370734413198a2eull,
                   0x85a308d3243f6a88ull, w);
    ck_assert_uint_eq(w[0], 0xd16cfe09u);
    ck_assert_uint_eq(w[1], 0x94fdccebu);
    ck_assert_uint_eq(w[2], 0x5001e420u);
    ck_assert_uint_eq(w[3], 0x24126ea1u);
    /* uniform keeps the top 24 bits of word 0: 0x6627e8 / 2^24 */
    ck_assert(amg_rng_uniform(0, 0, 0) == 6694888.0f / 16777216.0f);
    ck_assert_int_eq(amg_rng_bernoulli(0, 0, 0, 0.4), 1); /* 0.399 < 0.4 */
    ck_assert_int_eq(amg_rng_bernoulli(0, 0, 0, 0.39), 0);
}
END_TEST

/* splitmix64's first output for seed 0 and FNV-1a-64("a"), both published
 * test values. */
START_TEST(rng_seed_mix)
{
    ck_assert_uint_eq(amg_rng_mix64(0), 0xe220a8397b1dcdafull);
    /* tensor_seed(s, "a") = mix(s ^ fnv1a64("a")) */
    ck_assert_uint_eq(amg_rng_tensor_seed(0, "a"),
                      amg_rng_mix64(0xaf63dc4c8601ec8cull));
    ck_assert_uint_eq(amg_rng_tensor_seed(0, ""),
                      amg_rng_mix64(0xcbf29ce484222325ull));
    ck_assert_uint_ne(amg_rng_tensor_seed(1, "a"),
                      amg_rng_tensor_seed(0, "a"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("abi");
    TCase *tc = tcase_create("abi");

    if (is_lp64()) {
        tcase_add_test(tc, tensor_layout);
        tcase_add_test(tc, kernels_layout);
        tcase_add_test(tc, host_api_layout);
        tcase_add_test(tc, plugin_layout);
    } else {
        printf("check_abi: not an LP64 target (pointer %zu bytes, long %zu): "
               "the pinned 0.1 offsets are LP64 values, so those checks are "
               "skipped\n",
               sizeof(void *), sizeof(long));
    }
    tcase_add_test(tc, build_config_layout);
    tcase_add_test(tc, dltensor_is_dlpack);
    tcase_add_test(tc, dlpack_codes);
    tcase_add_test(tc, status_table);
    tcase_add_test(tc, constants);
    tcase_add_test(tc, host_has);
    tcase_add_test(tc, tensor_helpers);
    tcase_add_test(tc, rng_philox_kat);
    tcase_add_test(tc, rng_seed_mix);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
