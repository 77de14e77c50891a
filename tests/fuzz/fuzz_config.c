/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_config.c - libFuzzer target for config.json: the jansson-backed
 * reader and the byte-preserving key rewrite.
 *
 * For every accepted config (without duplicate keys, where "the value of
 * a key" is well defined), rewriting a key must give JSON whose key holds
 * the new value and whose other keys are unchanged.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keys amalgam rewrites, one that is rarely present (insert path), and
 * values of each JSON kind. */
static const char *const keys[] = { "torch_dtype", "dtype", "zz" };
static const char *const values[] = { "\"bfloat16\"", "[1, {\"a\": null}]",
                                      "-0.5e3" };

static void check_rewrite(const amg_config *c, const char *key,
                          const char *value)
{
    json_t *orig, *got, *want;
    json_error_t je;
    const char *k;
    json_t *v;
    char *out = NULL;
    amg_err err;

    orig = json_loads(c->text, JSON_REJECT_DUPLICATES, &je);
    if (!orig)
        return; /* duplicate keys: which one a reader sees is undefined */
    amg_err_clear(&err);
    if (amg_config_set_key(c->text, key, value, &out, &err) != AMG_OK) {
        if (err.status == AMG_OK)
            abort();
        json_decref(orig);
        return;
    }
    got = json_loads(out, JSON_REJECT_DUPLICATES, &je);
    want = json_loads(value, JSON_DECODE_ANY, &je);
    if (!got || !want || !json_is_object(got) ||
        !json_equal(json_object_get(got, key), want))
        abort();
    json_object_foreach(orig, k, v) {
        if (strcmp(k, key) != 0 && !json_equal(json_object_get(got, k), v))
            abort();
    }
    if (json_object_size(got) !=
        json_object_size(orig) + !json_object_get(orig, key))
        abort();
    json_decref(want);
    json_decref(got);
    json_decref(orig);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    amg_config c;
    amg_err err;
    char *text;
    size_t i;

    text = malloc(size ? size : 1);
    if (!text)
        return 0;
    if (size)
        memcpy(text, data, size);
    amg_err_clear(&err);
    if (amg_config_parse(&c, "fuzz.json", text, size, &err) != AMG_OK) {
        if (err.status == AMG_OK || !strstr(err.msg, "fuzz.json"))
            abort();
        free(text);
        return 0;
    }
    if (!c.present || c.len != size || c.text[size] != '\0' ||
        (unsigned)c.arch >= AMG_ARCH_COUNT)
        abort();
    /* the rewrite takes NUL-terminated text; a NUL inside is not JSON */
    if (memchr(c.text, '\0', c.len) == NULL)
        for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            check_rewrite(&c, keys[i], values[i]);
    amg_config_free(&c);
    free(text);
    return 0;
}
