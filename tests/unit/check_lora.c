/* SPDX-License-Identifier: Apache-2.0 */
/* check_lora.c - PEFT adapter reading and the fold, on factors small
 * enough to fold by hand:
 *
 *   A = [[1, 2, 3],        B = [[1,  0],       B @ A = [[1, 2, 3],
 *        [4, 5, 6]]             [0,  1],                [4, 5, 6],
 *                               [1,  1],                [5, 7, 9],
 *                               [2, -1]]                [-2, -1, 0]]
 *
 * with r = 2, lora_alpha = 4: scale 2 (4 / sqrt(2) with use_rslora).
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "lora.h"
#include "testutil.h"
#include "util.h"

static const float fa[6] = { 1, 2, 3, 4, 5, 6 };
static const float fb[8] = { 1, 0, 0, 1, 1, 1, 2, -1 };
static const float delta2[4][3] = {       /* 2 * (B @ A) */
    { 2, 4, 6 }, { 8, 10, 12 }, { 10, 14, 18 }, { -4, -2, 0 }
};

#define CFG_R1 "{\"r\": 1, \"lora_alpha\": 3}"
#define CFG_PLAIN "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, " \
                  "\"base_model_name_or_path\": \"org/base\"}"

/* Write dir/adapter_config.json and dir/adapter_model.safetensors holding
 * module m's factors A and B (suffixes as PEFT saves them). */
static void write_adapter(const char *dir, const char *cfg, int embedding)
{
    char hdr[512];
    unsigned char data[56];
    const char *sa = embedding ? "lora_embedding_A" : "lora_A.weight";
    const char *sb = embedding ? "lora_embedding_B" : "lora_B.weight";

    snprintf(hdr, sizeof(hdr),
             "{\"base_model.model.m.%s\":{\"dtype\":\"F32\",\"shape\":[2,3],"
             "\"data_offsets\":[0,24]},"
             "\"base_model.model.m.%s\":{\"dtype\":\"F32\",\"shape\":[4,2],"
             "\"data_offsets\":[24,56]}}", sa, sb);
    memcpy(data, fa, 24);
    memcpy(data + 24, fb, 32);
    free(tu_write_st(dir, "adapter_model.safetensors", hdr, data, 56));
    free(tu_write(dir, "adapter_config.json", cfg, strlen(cfg)));
}

START_TEST(plain_fold_by_hand)
{
    char *d = tu_mkdtemp();
    const amg_lora_module *m;
    float out[6];
    amg_lora l;
    amg_err e;
    int i, j;

    amg_err_clear(&e);
    write_adapter(d, CFG_PLAIN, 0);
    ck_assert_int_eq(amg_lora_is_adapter(d), 1);
    ck_assert_int_eq(amg_lora_open(&l, d, &e), AMG_OK);
    ck_assert_str_eq(l.base, "org/base");
    ck_assert_uint_eq(l.n_mods, 1);
    ck_assert_ptr_null(amg_lora_find(&l, "m"));
    m = amg_lora_find(&l, "m.weight");
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->module, "m");
    ck_assert_uint_eq(m->rank, 2);
    ck_assert(m->scale == 2.0f);
    ck_assert_uint_eq(m->rows, 4);
    ck_assert_uint_eq(m->cols, 3);
    /* rows 1 and 2 of the update, added to what is there */
    for (i = 0; i < 6; i++)
        out[i] = 0.5f;
    ck_assert_int_eq(amg_lora_fold_rows(&l, m, 1, 2, 3, out, &e), AMG_OK);
    for (i = 0; i < 2; i++)
        for (j = 0; j < 3; j++)
            ck_assert(out[i * 3 + j] == 0.5f + delta2[1 + i][j]);
    /* a cropped read: the first two columns of the last row */
    out[0] = out[1] = 0.0f;
    ck_assert_int_eq(amg_lora_fold_rows(&l, m, 3, 1, 2, out, &e), AMG_OK);
    ck_assert(out[0] == -4.0f && out[1] == -2.0f);
    /* past the end is refused */
    ck_assert_int_eq(amg_lora_fold_rows(&l, m, 3, 2, 3, out, &e),
                     AMG_EINVAL);
    amg_lora_close(&l);
    tu_rmtree(d);
}
END_TEST

/* fan_in_fan_out and embeddings: the update is (B @ A)^T, [3, 4]. */
static void check_transposed(const char *cfg, int embedding)
{
    char *d = tu_mkdtemp();
    const amg_lora_module *m;
    float out[12];
    amg_lora l;
    amg_err e;
    int i, j;

    amg_err_clear(&e);
    write_adapter(d, cfg, embedding);
    ck_assert_int_eq(amg_lora_open(&l, d, &e), AMG_OK);
    m = amg_lora_find(&l, "m.weight");
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->transposed, 1);
    ck_assert_int_eq(m->embedding, embedding);
    ck_assert_uint_eq(m->rows, 3);
    ck_assert_uint_eq(m->cols, 4);
    memset(out, 0, sizeof(out));
    /* one row at a time and all at once agree with the transpose */
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(amg_lora_fold_rows(&l, m, (uint64_t)i, 1, 4,
                                            out + 4 * i, &e), AMG_OK);
    for (i = 0; i < 3; i++)
        for (j = 0; j < 4; j++)
            ck_assert(out[i * 4 + j] == delta2[j][i]);
    memset(out, 0, sizeof(out));
    ck_assert_int_eq(amg_lora_fold_rows(&l, m, 0, 3, 4, out, &e), AMG_OK);
    for (i = 0; i < 3; i++)
        for (j = 0; j < 4; j++)
            ck_assert(out[i * 4 + j] == delta2[j][i]);
    amg_lora_close(&l);
    tu_rmtree(d);
}

START_TEST(fan_in_fan_out_transposes)
{
    check_transposed("{\"r\": 2, \"lora_alpha\": 4, \"fan_in_fan_out\": "
                     "true}", 0);
}
END_TEST

START_TEST(embedding_transposes)
{
    check_transposed("{\"r\": 2, \"lora_alpha\": 4}", 1);
}
END_TEST

START_TEST(rslora_and_patterns)
{
    char *d = tu_mkdtemp();
    const amg_lora_module *m;
    amg_lora l;
    amg_err e;

    amg_err_clear(&e);
    write_adapter(d, "{\"r\": 8, \"lora_alpha\": 4, \"use_rslora\": true}",
                  0);
    /* r 8 in the config, 2 in the factors: refused */
    ck_assert_int_eq(amg_lora_open(&l, d, &e), AMG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "module 'm' has rank 2 but "
                                        "adapter_config.json gives it r = 8"));
    /* rank_pattern says 2 for m; alpha_pattern 6: scale 6 / sqrt(2) */
    write_adapter(d, "{\"r\": 8, \"lora_alpha\": 4, \"use_rslora\": true, "
                     "\"rank_pattern\": {\"x\": 3, \"m\": 2}, "
                     "\"alpha_pattern\": {\"xm\": 1, \"m\": 6}}", 0);
    amg_err_clear(&e);
    ck_assert_int_eq(amg_lora_open(&l, d, &e), AMG_OK);
    m = amg_lora_find(&l, "m.weight");
    ck_assert(m->r == 2.0 && m->alpha == 6.0);
    ck_assert(m->scale == (float)(6.0 / sqrt(2.0)));
    amg_lora_close(&l);
    tu_rmtree(d);
}
END_TEST

START_TEST(pattern_keys_as_peft)
{
    const char *keys[] = { "v_proj", "layers.1.self_attn.q_proj", "proj" };
    const char *bad[] = { "(" };
    long i;
    amg_err e;

    amg_err_clear(&e);
    /* the first key that matches the whole name after a dot wins */
    ck_assert_int_eq(amg_lora_pattern_key(keys, 3, "model.layers.0."
                                          "self_attn.v_proj", &i, &e), 0);
    ck_assert_int_eq(i, 0);
    amg_lora_pattern_key(keys, 3, "model.layers.1.self_attn.q_proj", &i, &e);
    ck_assert_int_eq(i, 1);
    /* layers.11 is not layers.1, and "proj" must follow a dot */
    amg_lora_pattern_key(keys, 3, "model.layers.11.self_attn.q_proj", &i,
                         &e);
    ck_assert_int_eq(i, -1);
    amg_lora_pattern_key(keys, 3, "proj", &i, &e);
    ck_assert_int_eq(i, 2);
    amg_lora_pattern_key(keys, 2, "model.layers.0.self_attn.xv_proj", &i,
                         &e);
    ck_assert_int_eq(i, -1);
    ck_assert_int_eq(amg_lora_pattern_key(bad, 1, "m", &i, &e),
                     AMG_EFORMAT);
    ck_assert_str_eq(e.msg, "pattern '(' is not a regular expression "
                            "amalgam can read (POSIX extended)");
}
END_TEST

/* The update is rounded to lora_B's dtype before it is added, as PEFT's
 * cpu merge casts it back: 3 * (1 + 2^-7) = 3.0234375 lies halfway
 * between the bf16 neighbours 3.015625 and 3.03125 and goes to the even
 * one. */
START_TEST(bf16_update_rounds_like_peft)
{
    char *d = tu_mkdtemp();
    unsigned char data[4] = { 0x80, 0x3f, 0x81, 0x3f }; /* 1, 1 + 2^-7 */
    const amg_lora_module *m;
    amg_lora l;
    amg_err e;
    float out = 0.0f;

    amg_err_clear(&e);
    free(tu_write_st(d, "adapter_model.safetensors",
                     "{\"base_model.model.m.lora_A.weight\":{\"dtype\":"
                     "\"BF16\",\"shape\":[1,1],\"data_offsets\":[0,2]},"
                     "\"base_model.model.m.lora_B.weight\":{\"dtype\":"
                     "\"BF16\",\"shape\":[1,1],\"data_offsets\":[2,4]}}",
                     data, 4));
    free(tu_write(d, "adapter_config.json", CFG_R1,
                  strlen(CFG_R1)));
    ck_assert_int_eq(amg_lora_open(&l, d, &e), AMG_OK);
    m = amg_lora_find(&l, "m.weight");
    ck_assert_int_eq(amg_lora_fold_rows(&l, m, 0, 1, 1, &out, &e), AMG_OK);
    ck_assert(out == 3.03125f);
    amg_lora_close(&l);
    tu_rmtree(d);
}
END_TEST

static void expect_open_error(const char *cfg, int status, const char *msg)
{
    char *d = tu_mkdtemp();
    amg_lora l;
    amg_err e;

    amg_err_clear(&e);
    write_adapter(d, cfg, 0);
    ck_assert_int_eq(amg_lora_open(&l, d, &e), status);
    if (!strstr(e.msg, msg))
        ck_abort_msg("message '%s' lacks '%s'", e.msg, msg);
    tu_rmtree(d);
}

START_TEST(config_errors)
{
    expect_open_error("[1]", AMG_EFORMAT, "adapter_config.json' is not a "
                      "JSON object");
    expect_open_error("{\"r\": 2.5}", AMG_EFORMAT, "'r' must be a positive "
                      "integer");
    expect_open_error("{\"r\": 0}", AMG_EFORMAT, "'r' must be a positive "
                      "integer; got 0");
    expect_open_error("{\"r\": 2, \"lora_alpha\": \"x\"}", AMG_EFORMAT,
                      "'lora_alpha' must be a positive number");
    expect_open_error("{\"r\": 2, \"use_rslora\": 1}", AMG_EFORMAT,
                      "'use_rslora' must be true or false");
    expect_open_error("{\"r\": 2, \"rank_pattern\": {\"m\": \"2\"}}",
                      AMG_EFORMAT, "'rank_pattern['m']' must be a positive "
                      "integer");
    expect_open_error("{\"r\": 2, \"peft_type\": \"IA3\"}", AMG_EUNSUPPORTED,
                      "peft_type is not LORA");
    expect_open_error("{\"r\": 2, \"use_dora\": true}", AMG_EUNSUPPORTED,
                      "DoRA adapters (use_dora) are not supported");
    expect_open_error("{\"r\": 2, \"modules_to_save\": [\"score\"]}",
                      AMG_EUNSUPPORTED, "modules_to_save (whole modules "
                      "stored in the adapter) are not supported");
    expect_open_error("{\"r\": 2, \"bias\": \"all\"}", AMG_EUNSUPPORTED,
                      "trained biases");
}
END_TEST

START_TEST(file_errors)
{
    char *d = tu_mkdtemp();
    float z[2] = { 0, 0 };
    amg_lora l;
    amg_err e;

    amg_err_clear(&e);
    free(tu_write(d, "adapter_config.json", "{}", 2));
    ck_assert_int_eq(amg_lora_open(&l, d, &e), AMG_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, "has no adapter_model.safetensors"));
    free(tu_write_st(d, "adapter_model.safetensors",
                     "{\"base_model.model.m.lora_A.weight\":{\"dtype\":"
                     "\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]}}",
                     z, 8));
    ck_assert_int_eq(amg_lora_open(&l, d, &e), AMG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "module 'm' has lora_A but no "
                                        "lora_B"));
    free(tu_write_st(d, "adapter_model.safetensors",
                     "{\"base_model.model.score.modules_to_save.weight\":"
                     "{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":"
                     "[0,8]}}", z, 8));
    ck_assert_int_eq(amg_lora_open(&l, d, &e), AMG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e.msg, "tensor 'base_model.model.score."
                                        "modules_to_save.weight' is not a "
                                        "LoRA factor"));
    /* a model folder with an adapter_config.json is still a model */
    ck_assert_int_eq(amg_lora_is_adapter(d), 1);
    free(tu_write(d, "model.safetensors", "x", 1));
    ck_assert_int_eq(amg_lora_is_adapter(d), 0);
    tu_rmtree(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lora");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, plain_fold_by_hand);
    tcase_add_test(tc, fan_in_fan_out_transposes);
    tcase_add_test(tc, embedding_transposes);
    tcase_add_test(tc, rslora_and_patterns);
    tcase_add_test(tc, pattern_keys_as_peft);
    tcase_add_test(tc, bf16_update_rounds_like_peft);
    tcase_add_test(tc, config_errors);
    tcase_add_test(tc, file_errors);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
