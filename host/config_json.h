/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config_json.h - a model's config.json: what amalgam needs from it
 * (architecture family, layer count, dtype key) and a rewrite that changes
 * only the keys asked for, leaving every other byte as it was.
 */
#ifndef AMG_CONFIG_JSON_H
#define AMG_CONFIG_JSON_H

#include <stddef.h>

#include "error.h"

typedef enum amg_arch {
    AMG_ARCH_UNKNOWN = 0,
    AMG_ARCH_LLAMA,
    AMG_ARCH_MISTRAL,
    AMG_ARCH_MIXTRAL,
    AMG_ARCH_GEMMA,
    AMG_ARCH_GEMMA2,
    AMG_ARCH_QWEN2,
    AMG_ARCH_PHI3,
    AMG_ARCH_T5,
    AMG_ARCH_COUNT
} amg_arch;

typedef struct amg_config {
    int present;                       /* 0 when there was no config.json */
    char *text;                        /* the file's bytes, NUL-terminated */
    size_t len;
    amg_arch arch;
    char *model_type;                  /* "llama", ... or NULL */
    char *architecture;                /* architectures[0] or NULL */
    int n_layers;                      /* decoder layers (T5: encoder
                                          num_layers); -1 when unknown */
    int n_decoder_layers;              /* T5 num_decoder_layers, else -1 */
    long long hidden_size;             /* hidden_size / d_model, -1 unknown */
    long long vocab_size;              /* -1 unknown */
    int tie_word_embeddings;           /* -1 unknown, else 0/1 */
    char *dtype_key;                   /* "torch_dtype", "dtype" or NULL */
    char *dtype;                       /* its value, or NULL */
} amg_config;

/* Family name ("llama", "t5", ...); "unknown" for AMG_ARCH_UNKNOWN. */
const char *amg_arch_name(amg_arch a);

/* Read dir/config.json. A missing file is not an error (present = 0); a
 * malformed one is, naming the file, line and column. */
int amg_config_load(amg_config *c, const char *dir, amg_err *err);

/* Parse from a buffer (label names it in messages). */
int amg_config_parse(amg_config *c, const char *label, const char *text,
                     size_t len, amg_err *err);

void amg_config_free(amg_config *c);

/*
 * Return a copy of text with top-level key set to json_value (raw JSON text,
 * e.g. "\"bfloat16\""): replaced in place when present, inserted after the
 * opening brace otherwise. All other bytes are kept verbatim.
 */
int amg_config_set_key(const char *text, const char *key,
                       const char *json_value, char **out, amg_err *err);

/* Side files a merged model carries over from a source folder (tokenizer,
 * generation config, chat template), NULL-terminated. */
extern const char *const amg_side_files[];

#endif
