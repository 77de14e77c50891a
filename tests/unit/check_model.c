/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_model.c - config.json parsing and rewriting, and opening model
 * folders (single file, sharded index, and the ways an index can lie).
 *
 * Config texts are modeled on the published config.json of each family
 * (trimmed); safetensors shards are written from literal headers so these
 * tests do not depend on amalgam's own writer.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "config_json.h"
#include "model.h"
#include "testutil.h"

static void write_text(const char *dir, const char *name, const char *text)
{
    free(tu_write(dir, name, text, strlen(text)));
}

/* ---- config.json: one family at a time ---- */

static void parse_ok(amg_config *c, const char *text)
{
    amg_err err;

    amg_err_clear(&err);
    ck_assert_msg(amg_config_parse(c, "config.json", text, strlen(text),
                                   &err) == AMG_OK, "%s", err.msg);
    ck_assert_int_eq(c->present, 1);
}

START_TEST(config_llama)
{
    /* meta-llama/Llama-2-7b-hf, trimmed */
    static const char text[] =
        "{\n"
        "  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n"
        "  \"bos_token_id\": 1,\n"
        "  \"hidden_size\": 4096,\n"
        "  \"intermediate_size\": 11008,\n"
        "  \"model_type\": \"llama\",\n"
        "  \"num_attention_heads\": 32,\n"
        "  \"num_hidden_layers\": 32,\n"
        "  \"rms_norm_eps\": 1e-05,\n"
        "  \"tie_word_embeddings\": false,\n"
        "  \"torch_dtype\": \"float16\",\n"
        "  \"vocab_size\": 32000\n"
        "}\n";
    amg_config c;

    parse_ok(&c, text);
    ck_assert_int_eq(c.arch, AMG_ARCH_LLAMA);
    ck_assert_str_eq(amg_arch_name(c.arch), "llama");
    ck_assert_str_eq(c.architecture, "LlamaForCausalLM");
    ck_assert_str_eq(c.model_type, "llama");
    ck_assert_int_eq(c.n_layers, 32);
    ck_assert_int_eq(c.n_decoder_layers, -1);
    ck_assert_int_eq(c.hidden_size, 4096);
    ck_assert_int_eq(c.vocab_size, 32000);
    ck_assert_int_eq(c.tie_word_embeddings, 0);
    ck_assert_str_eq(c.dtype_key, "torch_dtype");
    ck_assert_str_eq(c.dtype, "float16");
    ck_assert_uint_eq(c.len, strlen(text));
    ck_assert_str_eq(c.text, text);
    amg_config_free(&c);
}
END_TEST

START_TEST(config_mistral_v5_dtype)
{
    /* mistralai/Mistral-7B-v0.1 as transformers v5 saves it: "dtype", and
     * no tie_word_embeddings (MistralConfig defaults it to False) */
    static const char text[] =
        "{\"architectures\": [\"MistralForCausalLM\"], \"hidden_size\": 4096,"
        " \"model_type\": \"mistral\", \"num_hidden_layers\": 32,"
        " \"num_key_value_heads\": 8, \"sliding_window\": 4096,"
        " \"dtype\": \"bfloat16\", \"vocab_size\": 32000}";
    amg_config c;

    parse_ok(&c, text);
    ck_assert_int_eq(c.arch, AMG_ARCH_MISTRAL);
    ck_assert_int_eq(c.n_layers, 32);
    ck_assert_int_eq(c.hidden_size, 4096);
    ck_assert_int_eq(c.vocab_size, 32000);
    ck_assert_int_eq(c.tie_word_embeddings, 0);
    ck_assert_str_eq(c.dtype_key, "dtype");
    ck_assert_str_eq(c.dtype, "bfloat16");
    amg_config_free(&c);
}
END_TEST

START_TEST(config_gemma_default_tie)
{
    /* google/gemma-2b leaves tie_word_embeddings out; GemmaConfig's default
     * is True */
    static const char text[] =
        "{\n  \"architectures\": [\"GemmaForCausalLM\"],\n"
        "  \"head_dim\": 256,\n  \"hidden_size\": 2048,\n"
        "  \"model_type\": \"gemma\",\n  \"num_hidden_layers\": 18,\n"
        "  \"torch_dtype\": \"bfloat16\",\n  \"vocab_size\": 256000\n}\n";
    amg_config c;

    parse_ok(&c, text);
    ck_assert_int_eq(c.arch, AMG_ARCH_GEMMA);
    ck_assert_int_eq(c.n_layers, 18);
    ck_assert_int_eq(c.hidden_size, 2048);
    ck_assert_int_eq(c.vocab_size, 256000);
    ck_assert_int_eq(c.tie_word_embeddings, 1);
    amg_config_free(&c);
}
END_TEST

START_TEST(config_qwen2)
{
    /* Qwen/Qwen2-0.5B: tied, explicitly */
    static const char text[] =
        "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 896,"
        " \"model_type\": \"qwen2\", \"num_hidden_layers\": 24,"
        " \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\","
        " \"vocab_size\": 151936}";
    amg_config c;

    parse_ok(&c, text);
    ck_assert_int_eq(c.arch, AMG_ARCH_QWEN2);
    ck_assert_int_eq(c.n_layers, 24);
    ck_assert_int_eq(c.hidden_size, 896);
    ck_assert_int_eq(c.vocab_size, 151936);
    ck_assert_int_eq(c.tie_word_embeddings, 1);
    amg_config_free(&c);
}
END_TEST

START_TEST(config_t5)
{
    /* google/flan-t5-base: T5 names (num_layers, d_model), untied */
    static const char flan[] =
        "{\n  \"architectures\": [\n    \"T5ForConditionalGeneration\"\n  ],\n"
        "  \"d_ff\": 2048,\n  \"d_kv\": 64,\n  \"d_model\": 768,\n"
        "  \"model_type\": \"t5\",\n  \"num_decoder_layers\": 12,\n"
        "  \"num_heads\": 12,\n  \"num_layers\": 12,\n"
        "  \"tie_word_embeddings\": false,\n  \"torch_dtype\": \"float32\",\n"
        "  \"vocab_size\": 32128\n}\n";
    /* t5-small: no num_decoder_layers (T5Config copies num_layers) and no
     * tie_word_embeddings (PretrainedConfig's default, True) */
    static const char small[] =
        "{\"architectures\": [\"T5WithLMHeadModel\"], \"d_model\": 512,"
        " \"model_type\": \"t5\", \"num_layers\": 6, \"vocab_size\": 32128}";
    amg_config c;

    parse_ok(&c, flan);
    ck_assert_int_eq(c.arch, AMG_ARCH_T5);
    ck_assert_int_eq(c.n_layers, 12);
    ck_assert_int_eq(c.n_decoder_layers, 12);
    ck_assert_int_eq(c.hidden_size, 768);
    ck_assert_int_eq(c.vocab_size, 32128);
    ck_assert_int_eq(c.tie_word_embeddings, 0);
    amg_config_free(&c);

    parse_ok(&c, small);
    ck_assert_int_eq(c.arch, AMG_ARCH_T5);
    ck_assert_int_eq(c.n_layers, 6);
    ck_assert_int_eq(c.n_decoder_layers, 6);
    ck_assert_int_eq(c.hidden_size, 512);
    ck_assert_int_eq(c.tie_word_embeddings, 1);
    ck_assert_ptr_null(c.dtype_key);
    ck_assert_ptr_null(c.dtype);
    amg_config_free(&c);

    parse_ok(&c, "{\"model_type\": \"mt5\", \"num_layers\": 8,"
                 " \"num_decoder_layers\": 4}");
    ck_assert_int_eq(c.arch, AMG_ARCH_T5);
    ck_assert_int_eq(c.n_layers, 8);
    ck_assert_int_eq(c.n_decoder_layers, 4);
    amg_config_free(&c);

    /* the attribute_map aliases, as some tools save T5 configs */
    parse_ok(&c, "{\"model_type\": \"t5\", \"num_hidden_layers\": 3,"
                 " \"hidden_size\": 32}");
    ck_assert_int_eq(c.n_layers, 3);
    ck_assert_int_eq(c.n_decoder_layers, 3);
    ck_assert_int_eq(c.hidden_size, 32);
    amg_config_free(&c);
}
END_TEST

START_TEST(config_arch_fallback)
{
    amg_config c;

    /* no model_type: the class name decides */
    parse_ok(&c, "{\"architectures\": [\"MixtralForCausalLM\"]}");
    ck_assert_int_eq(c.arch, AMG_ARCH_MIXTRAL);
    ck_assert_ptr_null(c.model_type);
    ck_assert_int_eq(c.tie_word_embeddings, 0);
    amg_config_free(&c);

    parse_ok(&c, "{\"architectures\": [\"Gemma2ForCausalLM\"]}");
    ck_assert_int_eq(c.arch, AMG_ARCH_GEMMA2);
    ck_assert_int_eq(c.tie_word_embeddings, 1);
    amg_config_free(&c);

    parse_ok(&c, "{\"architectures\": [\"Phi3ForCausalLM\"]}");
    ck_assert_int_eq(c.arch, AMG_ARCH_PHI3);
    amg_config_free(&c);

    /* a MoE variant is not the dense family its name starts with */
    parse_ok(&c, "{\"architectures\": [\"Qwen2MoeForCausalLM\"]}");
    ck_assert_int_eq(c.arch, AMG_ARCH_UNKNOWN);
    amg_config_free(&c);

    /* unknown family: nothing guessed */
    parse_ok(&c, "{\"architectures\": [\"GPT2LMHeadModel\"],"
                 " \"model_type\": \"gpt2\", \"n_layer\": 12}");
    ck_assert_int_eq(c.arch, AMG_ARCH_UNKNOWN);
    ck_assert_str_eq(amg_arch_name(c.arch), "unknown");
    ck_assert_str_eq(c.model_type, "gpt2");
    ck_assert_int_eq(c.n_layers, -1);
    ck_assert_int_eq(c.hidden_size, -1);
    ck_assert_int_eq(c.vocab_size, -1);
    ck_assert_int_eq(c.tie_word_embeddings, -1);
    amg_config_free(&c);
}
END_TEST

static void parse_fails(const char *text, const char *want)
{
    amg_config c;
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_config_parse(&c, "m/config.json", text, strlen(text),
                                      &err), AMG_EFORMAT);
    ck_assert_msg(strstr(err.msg, want) != NULL, "'%s' lacks '%s'", err.msg,
                  want);
    ck_assert_int_eq(c.present, 0);
}

START_TEST(config_malformed)
{
    /* the missing value is found at the '}' on line 4, column 1 */
    parse_fails("{\n  \"a\": 1,\n  \"b\":\n}\n",
                "'m/config.json': invalid JSON at line 4, column 1");
    /* a trailing comma: Python's json rejects it, so must we */
    parse_fails("{\"a\": 1,}", "'m/config.json': invalid JSON at line 1");
    parse_fails("[1, 2]", "'m/config.json': not a JSON object");
    parse_fails("{\"num_hidden_layers\": \"32\"}",
                "'num_hidden_layers' is not a non-negative integer");
    parse_fails("{\"hidden_size\": -1}",
                "'hidden_size' is not a non-negative integer");
    parse_fails("{\"tie_word_embeddings\": 1}",
                "'tie_word_embeddings' is not true or false");
    parse_fails("{\"architectures\": \"LlamaForCausalLM\"}",
                "'architectures' is not a list");
}
END_TEST

START_TEST(config_load_folder)
{
    char *dir = tu_mkdtemp(), want[4200];
    amg_config c;
    amg_err err;

    /* no config.json is not an error */
    amg_err_clear(&err);
    ck_assert_int_eq(amg_config_load(&c, dir, &err), AMG_OK);
    ck_assert_int_eq(c.present, 0);
    ck_assert_int_eq(c.n_layers, -1);
    amg_config_free(&c);

    write_text(dir, "config.json", "{\"model_type\": \"llama\"\n  x}");
    ck_assert_int_eq(amg_config_load(&c, dir, &err), AMG_EFORMAT);
    snprintf(want, sizeof(want),
             "'%s/config.json': invalid JSON at line 2, column 3", dir);
    ck_assert_msg(strstr(err.msg, want) != NULL, "%s", err.msg);

    write_text(dir, "config.json", "{\"model_type\": \"qwen2\"}");
    amg_err_clear(&err);
    ck_assert_int_eq(amg_config_load(&c, dir, &err), AMG_OK);
    ck_assert_int_eq(c.present, 1);
    ck_assert_int_eq(c.arch, AMG_ARCH_QWEN2);
    amg_config_free(&c);
    tu_rmtree(dir);
}
END_TEST

/* ---- amg_config_set_key keeps every other byte ---- */

static void set_key_is(const char *text, const char *key, const char *value,
                       const char *want)
{
    amg_err err;
    char *out = NULL;

    amg_err_clear(&err);
    ck_assert_msg(amg_config_set_key(text, key, value, &out, &err) == AMG_OK,
                  "%s", err.msg);
    ck_assert_str_eq(out, want);
    free(out);
}

START_TEST(set_key_replace)
{
    /* transformers' layout: indent 2, sorted keys; 1e-05 must stay as
     * written (a JSON round trip would not keep it) */
    set_key_is("{\n  \"rms_norm_eps\": 1e-05,\n  \"torch_dtype\": \"float32\","
               "\n  \"vocab_size\": 32000\n}\n",
               "torch_dtype", "\"bfloat16\"",
               "{\n  \"rms_norm_eps\": 1e-05,\n  \"torch_dtype\": "
               "\"bfloat16\",\n  \"vocab_size\": 32000\n}\n");
    /* the same key inside a nested object, braces and escaped quotes in
     * strings, and an object value are all skipped over */
    set_key_is("{\"text_config\": {\"dtype\": \"float16\", \"s\": \"}{\\\"\"},"
               " \"note\": \"\\\"dtype\\\": 1\", \"dtype\":{\"a\":[1,{}]} ,"
               "\"z\":null}",
               "dtype", "\"bfloat16\"",
               "{\"text_config\": {\"dtype\": \"float16\", \"s\": \"}{\\\"\"},"
               " \"note\": \"\\\"dtype\\\": 1\", \"dtype\":\"bfloat16\" ,"
               "\"z\":null}");
    /* last key, no trailing newline, value a number replaced by an array */
    set_key_is("{\"a\": true, \"n\": -1.5e3}", "n", "[1, 2]",
               "{\"a\": true, \"n\": [1, 2]}");
    /* a key spelled with an escape is the same key */
    set_key_is("{\"\\u0064type\": \"float32\"}", "dtype", "\"float16\"",
               "{\"\\u0064type\": \"float16\"}");
    /* duplicates: every occurrence, since a reader takes the last */
    set_key_is("{\"a\": 1, \"a\": 2}", "a", "3", "{\"a\": 3, \"a\": 3}");
}
END_TEST

START_TEST(set_key_insert)
{
    set_key_is("{\n  \"model_type\": \"llama\",\n  \"vocab_size\": 8\n}\n",
               "torch_dtype", "\"bfloat16\"",
               "{\n  \"torch_dtype\": \"bfloat16\",\n  \"model_type\": "
               "\"llama\",\n  \"vocab_size\": 8\n}\n");
    /* tabs and CRLF are the file's, so the new line uses them */
    set_key_is("{\r\n\t\"a\": 1\r\n}", "b", "2",
               "{\r\n\t\"b\": 2,\r\n\t\"a\": 1\r\n}");
    set_key_is("{\"a\":1}", "dtype", "\"float16\"",
               "{\"dtype\": \"float16\",\"a\":1}");
    set_key_is("  {}  ", "x", "null", "  {\"x\": null}  ");
    /* the nested key does not count as present at the top level */
    set_key_is("{\"sub\": {\"x\": 1}}", "x", "2",
               "{\"x\": 2,\"sub\": {\"x\": 1}}");
    /* a key that needs escaping is written escaped */
    set_key_is("{}", "a\"b", "1", "{\"a\\\"b\": 1}");
}
END_TEST

START_TEST(set_key_errors)
{
    amg_err err;
    char *out = (char *)1;

    ck_assert_int_eq(amg_config_set_key("[1]", "a", "1", &out, &err),
                     AMG_EFORMAT);
    ck_assert_ptr_null(out);
    ck_assert_ptr_nonnull(strstr(err.msg, "not a JSON object"));
    ck_assert_int_eq(amg_config_set_key("{\"a\": ", "a", "1", &out, &err),
                     AMG_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "invalid JSON at line 1"));
    ck_assert_int_eq(amg_config_set_key("", "a", "1", &out, &err),
                     AMG_EFORMAT);
    ck_assert_int_eq(amg_config_set_key("{}", "a", "bfloat16", &out, &err),
                     AMG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "'bfloat16' is not JSON"));
}
END_TEST

START_TEST(side_files)
{
    size_t i, n = 0;
    int tok = 0, spiece = 0, chat = 0;

    for (i = 0; amg_side_files[i]; i++) {
        n++;
        tok |= !strcmp(amg_side_files[i], "tokenizer.json");
        spiece |= !strcmp(amg_side_files[i], "spiece.model");
        chat |= !strcmp(amg_side_files[i], "chat_template.jinja");
        ck_assert_ptr_null(strchr(amg_side_files[i], '/'));
    }
    ck_assert_uint_eq(n, 10);
    ck_assert(tok && spiece && chat);
}
END_TEST

/* ---- model folders ---- */

/* Little-endian F32 bytes of 1.0, 2.0, 3.0, 4.0. */
static const unsigned char f32_1234[16] = {
    0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40
};

#define HDR2(a, b) \
    "{\"" a "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}," \
    "\"" b "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}"
#define HDR1(a) \
    "{\"" a "\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}"

static void write_shard2(const char *dir, const char *file, const char *hdr)
{
    free(tu_write_st(dir, file, hdr, f32_1234, 16));
}

static void write_index(const char *dir, const char *weight_map)
{
    char buf[2048];
    int n = snprintf(buf, sizeof(buf),
                     "{\n  \"metadata\": {\n    \"total_size\": 48\n  },\n"
                     "  \"weight_map\": {\n%s\n  }\n}\n", weight_map);

    free(tu_write(dir, "model.safetensors.index.json", buf, (size_t)n));
}

/* Three shards, six tensors; the index order is not the name order. */
static void write_sharded(const char *dir)
{
    write_shard2(dir, "model-00001-of-00003.safetensors",
                 HDR2("model.embed_tokens.weight", "model.norm.weight"));
    write_shard2(dir, "model-00002-of-00003.safetensors",
                 HDR2("model.layers.0.mlp.up_proj.weight",
                      "model.layers.0.self_attn.q_proj.weight"));
    write_shard2(dir, "model-00003-of-00003.safetensors",
                 HDR2("lm_head.weight", "model.layers.1.mlp.up_proj.weight"));
    write_text(dir, "config.json",
               "{\"model_type\": \"llama\", \"num_hidden_layers\": 2}");
}

#define S1 "model-00001-of-00003.safetensors"
#define S2 "model-00002-of-00003.safetensors"
#define S3 "model-00003-of-00003.safetensors"

#define SHARDED_MAP \
    "    \"lm_head.weight\": \"" S3 "\",\n" \
    "    \"model.embed_tokens.weight\": \"" S1 "\",\n" \
    "    \"model.layers.0.mlp.up_proj.weight\": \"" S2 "\",\n" \
    "    \"model.layers.0.self_attn.q_proj.weight\": \"" S2 "\",\n" \
    "    \"model.layers.1.mlp.up_proj.weight\": \"" S3 "\",\n" \
    "    \"model.norm.weight\": \"" S1 "\""

static void open_fails(const char *path, int status, const char *want1,
                       const char *want2)
{
    amg_model m;
    amg_err err;

    amg_err_clear(&err);
    ck_assert_int_eq(amg_model_open(&m, path, AMG_MODEL_HEADER_ONLY, &err),
                     status);
    ck_assert_msg(strstr(err.msg, want1) != NULL, "'%s' lacks '%s'", err.msg,
                  want1);
    ck_assert_msg(!want2 || strstr(err.msg, want2) != NULL, "'%s' lacks '%s'",
                  err.msg, want2);
    ck_assert_ptr_null(m.shards);
    ck_assert_ptr_null(m.tensors);
}

START_TEST(model_single)
{
    char *dir = tu_mkdtemp(), *file;
    const amg_model_tensor *t;
    amg_model m;
    amg_err err;
    float v[2];

    write_shard2(dir, "model.safetensors", HDR2("b.weight", "a.weight"));
    amg_err_clear(&err);
    ck_assert_msg(amg_model_open(&m, dir, 0, &err) == AMG_OK, "%s", err.msg);
    ck_assert_str_eq(m.path, dir);
    ck_assert_str_eq(m.dir, dir);
    ck_assert_ptr_null(m.index_path);
    ck_assert_uint_eq(m.n_shards, 1);
    ck_assert_uint_eq(m.n_tensors, 2);
    ck_assert_str_eq(m.tensors[0].name, "a.weight");
    ck_assert_str_eq(m.tensors[1].name, "b.weight");
    ck_assert_int_eq(m.config.present, 0);
    ck_assert_int_eq(m.config.n_layers, -1);
    t = amg_model_find(&m, "a.weight");
    ck_assert_ptr_eq(t, &m.tensors[0]);
    ck_assert_ptr_null(amg_model_find(&m, "c.weight"));
    /* b comes first in the data: a's bytes are 3.0, 4.0 */
    ck_assert_int_eq(amg_st_read(amg_model_shard(&m, t), t->t, 0, v, 8, &err),
                     AMG_OK);
    ck_assert(v[0] == 3.0f && v[1] == 4.0f);
    amg_model_close(&m);

    /* the file itself, by path */
    file = malloc(4200);
    snprintf(file, 4200, "%s/model.safetensors", dir);
    ck_assert_msg(amg_model_open(&m, file, AMG_MODEL_HEADER_ONLY, &err)
                  == AMG_OK, "%s", err.msg);
    ck_assert_str_eq(m.dir, dir);
    ck_assert_uint_eq(m.n_tensors, 2);
    ck_assert_ptr_null(amg_st_data(&m.shards[0], m.tensors[0].t));
    amg_model_close(&m);
    free(file);
    tu_rmtree(dir);
}
END_TEST

START_TEST(model_sharded)
{
    static const char *const names[6] = {
        "lm_head.weight", "model.embed_tokens.weight",
        "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.1.mlp.up_proj.weight", "model.norm.weight",
    };
    static const char *const shard_of[6] = { "3", "1", "2", "2", "3", "1" };
    char *dir = tu_mkdtemp(), idx[4200], suffix[64];
    amg_model m;
    amg_err err;
    size_t i;

    write_sharded(dir);
    /* a stray single file must lose to the index */
    write_shard2(dir, "model.safetensors", HDR2("x", "y"));
    write_index(dir, SHARDED_MAP);
    amg_err_clear(&err);
    ck_assert_msg(amg_model_open(&m, dir, AMG_MODEL_HEADER_ONLY, &err)
                  == AMG_OK, "%s", err.msg);
    snprintf(idx, sizeof(idx), "%s/model.safetensors.index.json", dir);
    ck_assert_str_eq(m.index_path, idx);
    ck_assert_uint_eq(m.n_shards, 3);
    ck_assert_uint_eq(m.n_tensors, 6);
    for (i = 0; i < 6; i++) {
        const amg_model_tensor *t = &m.tensors[i];
        ck_assert_str_eq(t->name, names[i]);
        snprintf(suffix, sizeof(suffix), "/model-0000%s-of-00003.safetensors",
                 shard_of[i]);
        ck_assert_msg(strstr(amg_model_shard(&m, t)->path, suffix) != NULL,
                      "%s in %s", t->name, amg_model_shard(&m, t)->path);
        ck_assert_ptr_eq(amg_model_find(&m, names[i]), t);
        ck_assert_uint_eq(t->t->numel, 2);
    }
    ck_assert_int_eq(m.config.present, 1);
    ck_assert_int_eq(m.config.n_layers, 2);
    amg_model_close(&m);

    /* the index file given directly */
    ck_assert_msg(amg_model_open(&m, idx, AMG_MODEL_HEADER_ONLY, &err)
                  == AMG_OK, "%s", err.msg);
    ck_assert_str_eq(m.dir, dir);
    ck_assert_uint_eq(m.n_tensors, 6);
    amg_model_close(&m);
    tu_rmtree(dir);
}
END_TEST

START_TEST(model_index_lies)
{
    char *dir = tu_mkdtemp();

    write_sharded(dir);
    /* listed in shard 1, but shard 1 does not have it */
    write_index(dir, SHARDED_MAP ",\n    \"model.extra\": "
                "\"" S1 "\"");
    open_fails(dir, AMG_EFORMAT, "tensor 'model.extra' is listed in shard "
               "'model-00001-of-00003.safetensors' but that file does not "
               "have it", "model.safetensors.index.json");

    /* listed in the wrong shard */
    write_index(dir,
        "    \"lm_head.weight\": \"" S1 "\",\n"
        "    \"model.embed_tokens.weight\": \"" S1 "\",\n"
        "    \"model.layers.0.mlp.up_proj.weight\": \"" S2 "\",\n"
        "    \"model.layers.0.self_attn.q_proj.weight\": \"" S2 "\",\n"
        "    \"model.layers.1.mlp.up_proj.weight\": \"" S3 "\",\n"
        "    \"model.norm.weight\": \"" S1 "\"");
    open_fails(dir, AMG_EFORMAT, "tensor 'lm_head.weight' is listed in shard "
               "'model-00001-of-00003.safetensors' but is in "
               "'model-00003-of-00003.safetensors'", NULL);

    /* a shard tensor the index does not name */
    write_index(dir,
        "    \"lm_head.weight\": \"" S3 "\",\n"
        "    \"model.embed_tokens.weight\": \"" S1 "\",\n"
        "    \"model.layers.0.mlp.up_proj.weight\": \"" S2 "\",\n"
        "    \"model.layers.0.self_attn.q_proj.weight\": \"" S2 "\",\n"
        "    \"model.layers.1.mlp.up_proj.weight\": \"" S3 "\"");
    open_fails(dir, AMG_EFORMAT, "tensor 'model.norm.weight' in shard "
               "'model-00001-of-00003.safetensors' is not in the index", NULL);
    tu_rmtree(dir);
}
END_TEST

START_TEST(model_tensor_in_two_shards)
{
    char *dir = tu_mkdtemp();

    write_shard2(dir, "a.safetensors", HDR2("x.weight", "y.weight"));
    write_shard2(dir, "b.safetensors", HDR2("y.weight", "z.weight"));
    write_index(dir, "    \"x.weight\": \"a.safetensors\",\n"
                     "    \"y.weight\": \"a.safetensors\",\n"
                     "    \"z.weight\": \"b.safetensors\"");
    open_fails(dir, AMG_EFORMAT, "tensor 'y.weight' is in two shards: "
               "'a.safetensors' and 'b.safetensors'", NULL);
    tu_rmtree(dir);
}
END_TEST

START_TEST(model_shard_missing)
{
    char *dir = tu_mkdtemp(), want[4300];

    write_shard2(dir, "a.safetensors", HDR2("x.weight", "y.weight"));
    free(tu_write_st(dir, "c.safetensors", HDR1("w"), f32_1234, 16));
    write_index(dir, "    \"x.weight\": \"a.safetensors\",\n"
                     "    \"y.weight\": \"a.safetensors\",\n"
                     "    \"z.weight\": \"b.safetensors\",\n"
                     "    \"w\": \"c.safetensors\"");
    snprintf(want, sizeof(want), "shard '%s/b.safetensors' named in '%s/"
             "model.safetensors.index.json' does not exist", dir, dir);
    open_fails(dir, AMG_ENOTFOUND, want, NULL);
    tu_rmtree(dir);
}
END_TEST

START_TEST(model_not_a_model)
{
    char *dir = tu_mkdtemp(), missing[4200];

    /* an empty folder */
    open_fails(dir, AMG_ENOTFOUND, "is not a model folder: no "
               "model.safetensors or model.safetensors.index.json", dir);
    /* only a PyTorch pickle */
    write_text(dir, "pytorch_model.bin", "PK");
    write_text(dir, "config.json", "{}");
    open_fails(dir, AMG_EUNSUPPORTED, "pytorch_model.bin is not supported; "
               "convert it to safetensors", dir);
    /* a path that does not exist */
    snprintf(missing, sizeof(missing), "%s/nowhere", dir);
    open_fails(missing, AMG_ENOTFOUND, "cannot open '", "/nowhere': No such "
               "file or directory");
    tu_rmtree(dir);
}
END_TEST

START_TEST(model_bad_config)
{
    char *dir = tu_mkdtemp();

    write_shard2(dir, "model.safetensors", HDR2("a", "b"));
    write_text(dir, "config.json", "{\"a\": }");
    open_fails(dir, AMG_EFORMAT, "config.json': invalid JSON at line 1, "
               "column", NULL);
    tu_rmtree(dir);
}
END_TEST

static Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("config");

    tcase_add_test(tc, config_llama);
    tcase_add_test(tc, config_mistral_v5_dtype);
    tcase_add_test(tc, config_gemma_default_tie);
    tcase_add_test(tc, config_qwen2);
    tcase_add_test(tc, config_t5);
    tcase_add_test(tc, config_arch_fallback);
    tcase_add_test(tc, config_malformed);
    tcase_add_test(tc, config_load_folder);
    tcase_add_test(tc, set_key_replace);
    tcase_add_test(tc, set_key_insert);
    tcase_add_test(tc, set_key_errors);
    tcase_add_test(tc, side_files);
    suite_add_tcase(s, tc);

    tc = tcase_create("folder");
    tcase_add_test(tc, model_single);
    tcase_add_test(tc, model_sharded);
    tcase_add_test(tc, model_index_lies);
    tcase_add_test(tc, model_tensor_in_two_shards);
    tcase_add_test(tc, model_shard_missing);
    tcase_add_test(tc, model_not_a_model);
    tcase_add_test(tc, model_bad_config);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(model_suite());
}
