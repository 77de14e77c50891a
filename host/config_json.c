/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config_json.c - what amalgam reads from config.json, and the byte-exact
 * rewrite of one top-level key.
 *
 * Parsing uses jansson. The rewrite does not: jansson would reorder keys,
 * reformat numbers (1e-06 becomes 9.9999999999999995e-07) and change
 * indentation, and a merged model's config should differ from its source
 * only where amalgam means it to.
 */
#include "config.h"
#include "config_json.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "json_mem.h"
#include "util.h"

/* Larger than any real config.json by orders of magnitude. */
#define CONFIG_MAX_BYTES (64u * 1024 * 1024)

const char *const amg_side_files[] = {
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "spiece.model",
    "vocab.json",
    "merges.txt",
    "generation_config.json",
    "chat_template.jinja",
    NULL
};

static const char *const arch_names[AMG_ARCH_COUNT] = {
    [AMG_ARCH_UNKNOWN] = "unknown",
    [AMG_ARCH_LLAMA] = "llama",
    [AMG_ARCH_MISTRAL] = "mistral",
    [AMG_ARCH_MIXTRAL] = "mixtral",
    [AMG_ARCH_GEMMA] = "gemma",
    [AMG_ARCH_GEMMA2] = "gemma2",
    [AMG_ARCH_QWEN2] = "qwen2",
    [AMG_ARCH_PHI3] = "phi3",
    [AMG_ARCH_T5] = "t5",
};

/*
 * tie_word_embeddings when config.json leaves it out: the default of each
 * transformers config class (LlamaConfig, MistralConfig, MixtralConfig,
 * Qwen2Config, Phi3Config: False; GemmaConfig, Gemma2Config: True; T5Config
 * inherits PretrainedConfig's True).
 */
static const int tie_default[AMG_ARCH_COUNT] = {
    [AMG_ARCH_UNKNOWN] = -1,
    [AMG_ARCH_LLAMA] = 0,
    [AMG_ARCH_MISTRAL] = 0,
    [AMG_ARCH_MIXTRAL] = 0,
    [AMG_ARCH_GEMMA] = 1,
    [AMG_ARCH_GEMMA2] = 1,
    [AMG_ARCH_QWEN2] = 0,
    [AMG_ARCH_PHI3] = 0,
    [AMG_ARCH_T5] = 1,
};

static const struct {
    const char *model_type;
    amg_arch arch;
} model_types[] = {
    { "llama", AMG_ARCH_LLAMA },     { "mistral", AMG_ARCH_MISTRAL },
    { "mixtral", AMG_ARCH_MIXTRAL }, { "gemma", AMG_ARCH_GEMMA },
    { "gemma2", AMG_ARCH_GEMMA2 },   { "qwen2", AMG_ARCH_QWEN2 },
    { "phi3", AMG_ARCH_PHI3 },       { "t5", AMG_ARCH_T5 },
    { "mt5", AMG_ARCH_T5 },
};

/* Class-name prefixes; "Gemma2" before "Gemma" so the longer one wins. The
 * prefix must be followed by "For..." or "Model"/"EncoderModel", which keeps
 * Qwen2MoeForCausalLM out of qwen2. */
static const struct {
    const char *prefix;
    amg_arch arch;
} class_prefixes[] = {
    { "Llama", AMG_ARCH_LLAMA },     { "LLaMA", AMG_ARCH_LLAMA },
    { "Mistral", AMG_ARCH_MISTRAL }, { "Mixtral", AMG_ARCH_MIXTRAL },
    { "Gemma2", AMG_ARCH_GEMMA2 },   { "Gemma", AMG_ARCH_GEMMA },
    { "Qwen2", AMG_ARCH_QWEN2 },     { "Phi3", AMG_ARCH_PHI3 },
    { "MT5", AMG_ARCH_T5 },          { "T5", AMG_ARCH_T5 },
};

const char *amg_arch_name(amg_arch a)
{
    return (unsigned)a < AMG_ARCH_COUNT ? arch_names[a] : "unknown";
}

static amg_arch arch_from_model_type(const char *mt)
{
    size_t i;

    for (i = 0; i < sizeof(model_types) / sizeof(model_types[0]); i++)
        if (!strcmp(mt, model_types[i].model_type))
            return model_types[i].arch;
    return AMG_ARCH_UNKNOWN;
}

static amg_arch arch_from_class(const char *cls)
{
    size_t i, n;

    for (i = 0; i < sizeof(class_prefixes) / sizeof(class_prefixes[0]); i++) {
        n = strlen(class_prefixes[i].prefix);
        if (strncmp(cls, class_prefixes[i].prefix, n))
            continue;
        if (!strncmp(cls + n, "For", 3) || !strcmp(cls + n, "Model") ||
            !strcmp(cls + n, "EncoderModel"))
            return class_prefixes[i].arch;
    }
    return AMG_ARCH_UNKNOWN;
}

static void config_reset(amg_config *c)
{
    memset(c, 0, sizeof(*c));
    c->n_layers = -1;
    c->n_decoder_layers = -1;
    c->hidden_size = -1;
    c->vocab_size = -1;
    c->tie_word_embeddings = -1;
}

void amg_config_free(amg_config *c)
{
    if (!c)
        return;
    free(c->text);
    free(c->model_type);
    free(c->architecture);
    free(c->dtype_key);
    free(c->dtype);
    config_reset(c);
}

/* A string field: absent or null leaves *out NULL; another type is an
 * error. */
static int get_string(json_t *root, const char *key, const char *label,
                      char **out, amg_err *err)
{
    json_t *v = json_object_get(root, key);

    if (!v || json_is_null(v))
        return AMG_OK;
    if (!json_is_string(v))
        return amg_err_set(err, AMG_EFORMAT, "'%s': '%s' is not a string",
                           label, key);
    *out = amg_strdup(json_string_value(v));
    if (!*out)
        return amg_err_set(err, AMG_ENOMEM, "out of memory reading '%s'",
                           label);
    return AMG_OK;
}

/* A count field: absent or null leaves *out alone (the caller's default);
 * a negative, fractional or non-numeric value is an error. */
static int get_count(json_t *root, const char *key, const char *label,
                     long long max, long long *out, amg_err *err)
{
    json_t *v = json_object_get(root, key);

    if (!v || json_is_null(v))
        return AMG_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > max)
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': '%s' is not a non-negative integer%s",
                           label, key, json_is_integer(v) ? " in range" : "");
    *out = json_integer_value(v);
    return AMG_OK;
}

static int get_int(json_t *root, const char *key, const char *label, int *out,
                   amg_err *err)
{
    long long v = *out;
    int rc = get_count(root, key, label, INT_MAX, &v, err);

    if (!rc)
        *out = (int)v;
    return rc;
}

static int read_arch(amg_config *c, json_t *root, const char *label,
                     amg_err *err)
{
    json_t *archs = json_object_get(root, "architectures");
    int rc;

    rc = get_string(root, "model_type", label, &c->model_type, err);
    if (rc)
        return rc;
    if (archs && !json_is_null(archs)) {
        json_t *first = json_array_get(archs, 0);
        if (!json_is_array(archs) || (first && !json_is_string(first)))
            return amg_err_set(err, AMG_EFORMAT,
                               "'%s': 'architectures' is not a list of "
                               "class names", label);
        if (first) {
            c->architecture = amg_strdup(json_string_value(first));
            if (!c->architecture)
                return amg_err_set(err, AMG_ENOMEM,
                                   "out of memory reading '%s'", label);
        }
    }
    if (c->model_type)
        c->arch = arch_from_model_type(c->model_type);
    if (c->arch == AMG_ARCH_UNKNOWN && c->architecture)
        c->arch = arch_from_class(c->architecture);
    return AMG_OK;
}

static int read_sizes(amg_config *c, json_t *root, const char *label,
                      amg_err *err)
{
    int rc;

    if ((rc = get_int(root, "num_hidden_layers", label, &c->n_layers, err)) ||
        (rc = get_count(root, "hidden_size", label, LLONG_MAX,
                        &c->hidden_size, err)) ||
        (rc = get_count(root, "vocab_size", label, LLONG_MAX, &c->vocab_size,
                        err)))
        return rc;
    /* T5Config's own names; its attribute_map makes num_hidden_layers and
     * hidden_size aliases of them, so either spelling may be saved */
    if (c->n_layers < 0 &&
        (rc = get_int(root, "num_layers", label, &c->n_layers, err)))
        return rc;
    if (c->hidden_size < 0 &&
        (rc = get_count(root, "d_model", label, LLONG_MAX, &c->hidden_size,
                        err)))
        return rc;
    if (c->arch == AMG_ARCH_T5) {
        rc = get_int(root, "num_decoder_layers", label, &c->n_decoder_layers,
                     err);
        if (rc)
            return rc;
        /* T5Config: "default = symmetry" */
        if (c->n_decoder_layers < 0)
            c->n_decoder_layers = c->n_layers;
    }
    return AMG_OK;
}

static int read_tie_and_dtype(amg_config *c, json_t *root, const char *label,
                              amg_err *err)
{
    json_t *tie = json_object_get(root, "tie_word_embeddings");
    const char *key = NULL;
    json_t *dt;

    if (tie && !json_is_null(tie)) {
        if (!json_is_boolean(tie))
            return amg_err_set(err, AMG_EFORMAT,
                               "'%s': 'tie_word_embeddings' is not true or "
                               "false", label);
        c->tie_word_embeddings = json_is_true(tie);
    } else {
        c->tie_word_embeddings = tie_default[c->arch];
    }

    /* transformers v4 writes torch_dtype, v5 writes dtype (and reads
     * torch_dtype for compatibility); the older key is the more common. */
    if (json_object_get(root, "torch_dtype"))
        key = "torch_dtype";
    else if (json_object_get(root, "dtype"))
        key = "dtype";
    if (!key)
        return AMG_OK;
    c->dtype_key = amg_strdup(key);
    if (!c->dtype_key)
        return amg_err_set(err, AMG_ENOMEM, "out of memory reading '%s'",
                           label);
    dt = json_object_get(root, key);
    if (json_is_string(dt)) {
        c->dtype = amg_strdup(json_string_value(dt));
        if (!c->dtype)
            return amg_err_set(err, AMG_ENOMEM, "out of memory reading '%s'",
                               label);
    }
    return AMG_OK;
}

int amg_config_parse(amg_config *c, const char *label, const char *text,
                     size_t len, amg_err *err)
{
    json_error_t je;
    json_t *root;
    int rc;

    config_reset(c);
    amg_json_oom_clear();
    root = json_loadb(text, len, 0, &je);
    if (!root && amg_json_oom())
        return amg_err_set(err, AMG_ENOMEM, "'%s': out of memory parsing it",
                           label);
    if (!root)
        return amg_err_set(err, AMG_EFORMAT,
                           "'%s': invalid JSON at line %d, column %d: %s",
                           label, je.line, je.column, je.text);
    if (!json_is_object(root)) {
        rc = amg_err_set(err, AMG_EFORMAT, "'%s': not a JSON object", label);
        goto out;
    }
    c->present = 1;
    c->text = malloc(len + 1);
    if (!c->text) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory reading '%s'", label);
        goto out;
    }
    memcpy(c->text, text, len);
    c->text[len] = '\0';
    c->len = len;
    if ((rc = read_arch(c, root, label, err)) ||
        (rc = read_sizes(c, root, label, err)) ||
        (rc = read_tie_and_dtype(c, root, label, err)))
        goto out;
out:
    json_decref(root);
    if (rc)
        amg_config_free(c);
    return rc;
}

int amg_config_load(amg_config *c, const char *dir, amg_err *err)
{
    char *path = amg_path_join(dir, "config.json");
    char *text = NULL;
    size_t len = 0;
    int rc;

    config_reset(c);
    if (!path)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    rc = amg_read_file(path, CONFIG_MAX_BYTES, &text, &len, err);
    if (rc == AMG_ENOTFOUND) {
        amg_err_clear(err);
        rc = AMG_OK;
        goto out;
    }
    if (rc)
        goto out;
    rc = amg_config_parse(c, path, text, len, err);
out:
    free(text);
    free(path);
    return rc;
}

/* ---- byte-exact rewrite of one top-level key ---- */

/* The scanner runs only on text jansson has accepted as an object, so it
 * can skip values without re-validating them; bounds are still checked. */
typedef struct scan {
    const char *s;
    size_t n, i;
} scan;

static int is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static void skip_ws(scan *sc)
{
    while (sc->i < sc->n && is_ws(sc->s[sc->i]))
        sc->i++;
}

/* Past a string starting at its opening quote. */
static void skip_string(scan *sc)
{
    sc->i++;
    while (sc->i < sc->n && sc->s[sc->i] != '"')
        sc->i += sc->s[sc->i] == '\\' ? 2 : 1;
    sc->i++;
}

/* Past one value of any kind; nesting is counted, strings skipped whole so
 * brackets inside them do not count. */
static void skip_value(scan *sc)
{
    size_t depth = 0;

    while (sc->i < sc->n) {
        char ch = sc->s[sc->i];

        if (ch == '"') {
            skip_string(sc);
            if (!depth)
                return;
        } else if (ch == '{' || ch == '[') {
            depth++;
            sc->i++;
        } else if (ch == '}' || ch == ']') {
            if (!depth)
                return;                 /* end of the enclosing object */
            sc->i++;
            if (!--depth)
                return;
        } else if (!depth && (ch == ',' || is_ws(ch))) {
            return;
        } else {
            sc->i++;
        }
    }
}

/* Does the JSON string at sc->i (opening quote) decode to key? Escapes are
 * decoded so "\u0064type" matches "dtype". */
static int string_equals(const scan *sc, const char *key)
{
    size_t i = sc->i + 1, k = 0, klen = strlen(key);

    while (i < sc->n && sc->s[i] != '"') {
        unsigned char buf[4];
        size_t blen = 1;

        if (sc->s[i] != '\\') {
            buf[0] = (unsigned char)sc->s[i++];
        } else {
            char e = i + 1 < sc->n ? sc->s[i + 1] : 0;
            unsigned long cp;

            i += 2;
            switch (e) {
            case 'b': buf[0] = '\b'; break;
            case 'f': buf[0] = '\f'; break;
            case 'n': buf[0] = '\n'; break;
            case 'r': buf[0] = '\r'; break;
            case 't': buf[0] = '\t'; break;
            case 'u':
                if (i + 4 > sc->n)
                    return 0;
                {
                    char hex[5];
                    memcpy(hex, sc->s + i, 4);
                    hex[4] = '\0';
                    cp = strtoul(hex, NULL, 16);
                }
                i += 4;
                /* a surrogate pair cannot match an ASCII config key, and
                 * keys outside the BMP are not something we look up */
                if (cp >= 0xD800 && cp <= 0xDFFF)
                    return 0;
                if (cp < 0x80) {
                    buf[0] = (unsigned char)cp;
                } else if (cp < 0x800) {
                    buf[0] = (unsigned char)(0xC0 | (cp >> 6));
                    buf[1] = (unsigned char)(0x80 | (cp & 0x3F));
                    blen = 2;
                } else {
                    buf[0] = (unsigned char)(0xE0 | (cp >> 12));
                    buf[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                    buf[2] = (unsigned char)(0x80 | (cp & 0x3F));
                    blen = 3;
                }
                break;
            default: buf[0] = (unsigned char)e; break;     /* " \ / */
            }
        }
        if (k + blen > klen || memcmp(key + k, buf, blen))
            return 0;
        k += blen;
    }
    return k == klen;
}

/* Append n bytes to a growing output buffer. */
typedef struct obuf {
    char *p;
    size_t len, cap;
    int oom;
} obuf;

static void out_add(obuf *o, const char *s, size_t n)
{
    if (o->oom)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        char *p;

        while (cap < o->len + n + 1)
            cap *= 2;
        p = realloc(o->p, cap);
        if (!p) {
            o->oom = 1;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void out_str(obuf *o, const char *s)
{
    out_add(o, s, strlen(s));
}

/* Insert "key": value right after the opening brace at position brace. When
 * the next member sits on its own indented line, the new one gets a line of
 * its own with the same indentation. */
static void insert_key(obuf *o, const char *text, size_t len, size_t brace,
                       const char *qkey, const char *value)
{
    scan sc = { text, len, brace + 1 };
    size_t nl, ind_end;
    int empty;

    skip_ws(&sc);
    empty = sc.i < len && text[sc.i] == '}';
    out_add(o, text, brace + 1);
    nl = brace + 1;
    while (nl < len && (text[nl] == ' ' || text[nl] == '\t' ||
                        text[nl] == '\r'))
        nl++;
    if (!empty && nl < len && text[nl] == '\n') {
        ind_end = nl + 1;
        while (ind_end < len && (text[ind_end] == ' ' ||
                                 text[ind_end] == '\t'))
            ind_end++;
        /* the file's own line ending, so CRLF files stay CRLF */
        out_add(o, text + brace + 1, ind_end - (brace + 1));
        out_str(o, qkey);
        out_str(o, ": ");
        out_str(o, value);
        out_str(o, ",");
        out_add(o, text + brace + 1, len - (brace + 1));
        return;
    }
    out_str(o, qkey);
    out_str(o, ": ");
    out_str(o, value);
    if (!empty)
        out_str(o, ",");
    out_add(o, text + brace + 1, len - (brace + 1));
}

int amg_config_set_key(const char *text, const char *key,
                       const char *json_value, char **out, amg_err *err)
{
    size_t len = strlen(text), brace, copied = 0;
    scan sc = { text, len, 0 };
    json_error_t je;
    json_t *root, *kstr;
    char *qkey = NULL;
    obuf o = { 0 };
    int found = 0, rc = AMG_OK;

    *out = NULL;
    root = json_loadb(text, len, 0, &je);
    if (!root)
        return amg_err_set(err, AMG_EFORMAT,
                           "cannot set '%s' in config: invalid JSON at line "
                           "%d, column %d: %s", key, je.line, je.column,
                           je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return amg_err_set(err, AMG_EFORMAT,
                           "cannot set '%s' in config: not a JSON object",
                           key);
    }
    json_decref(root);
    root = json_loadb(json_value, strlen(json_value), JSON_DECODE_ANY, &je);
    if (!root)
        return amg_err_set(err, AMG_EINVAL,
                           "cannot set '%s' in config: value '%s' is not "
                           "JSON: %s", key, json_value, je.text);
    json_decref(root);

    skip_ws(&sc);
    brace = sc.i;
    sc.i++;
    /* Replace every top-level occurrence: with duplicate keys a reader
     * takes the last, and none of them may keep the old value. */
    for (;;) {
        skip_ws(&sc);
        if (sc.i >= len || text[sc.i] == '}')
            break;
        if (text[sc.i] == ',') {
            sc.i++;
            continue;
        }
        {
            int match = string_equals(&sc, key);
            size_t vstart;

            skip_string(&sc);
            skip_ws(&sc);
            sc.i++;                                      /* ':' */
            skip_ws(&sc);
            vstart = sc.i;
            skip_value(&sc);
            if (match) {
                out_add(&o, text + copied, vstart - copied);
                out_str(&o, json_value);
                copied = sc.i;
                found = 1;
            }
        }
    }
    if (found) {
        out_add(&o, text + copied, len - copied);
    } else {
        kstr = json_string(key);
        qkey = kstr ? json_dumps(kstr, JSON_ENCODE_ANY) : NULL;
        json_decref(kstr);
        if (!qkey) {
            rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
            goto out;
        }
        insert_key(&o, text, len, brace, qkey, json_value);
    }
    if (o.oom || !o.p) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    *out = o.p;
    o.p = NULL;
out:
    free(o.p);
    free(qkey);
    return rc;
}
