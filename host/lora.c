/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lora.c - PEFT LoRA adapters: config, factors, and the fold (see lora.h).
 *
 * Everything a merge needs is checked when the adapter is opened, before
 * any base tensor is read: what the file holds (only LoRA factors, in
 * pairs), the factor shapes, and the rank each module was trained with
 * against the config's r after rank_pattern (PEFT would refuse to load
 * such an adapter too). Whether the updated modules exist in the base is
 * the plan's check: it knows the base.
 */
#include "config.h"
#include "lora.h"

#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dtype.h"
#include "util.h"

#define CONFIG_NAME "adapter_config.json"
#define WEIGHTS_NAME "adapter_model.safetensors"
#define KEY_PREFIX "base_model.model."
#define CONFIG_MAX_BYTES (16u * 1024 * 1024)

/* The four factor suffixes PEFT saves (embedding factors are Parameters,
 * hence no ".weight"). */
static const struct {
    const char *suffix;
    int embedding, is_b;
} factor_kinds[] = {
    { ".lora_A.weight", 0, 0 },
    { ".lora_B.weight", 0, 1 },
    { ".lora_embedding_A", 1, 0 },
    { ".lora_embedding_B", 1, 1 },
};

/* Settings read from adapter_config.json. */
typedef struct lora_cfg {
    double r, alpha;
    const char **rank_keys, **alpha_keys;  /* into the json tree */
    double *rank_vals, *alpha_vals;
    size_t n_rank, n_alpha;
} lora_cfg;

static void cfg_free(lora_cfg *c)
{
    free(c->rank_keys);
    free(c->alpha_keys);
    free(c->rank_vals);
    free(c->alpha_vals);
}

int amg_lora_is_adapter(const char *dir)
{
    char *cfg = amg_path_join(dir, CONFIG_NAME);
    char *st = amg_path_join(dir, "model.safetensors");
    char *idx = amg_path_join(dir, "model.safetensors.index.json");
    int yes = cfg && st && idx && amg_is_dir(dir) && amg_is_file(cfg) &&
              !amg_is_file(st) && !amg_is_file(idx);

    free(cfg);
    free(st);
    free(idx);
    return yes;
}

static int load_json(const char *dir, json_t **root, char **label,
                     amg_err *err)
{
    json_error_t je;
    char *text = NULL;
    size_t len;
    int rc;

    *root = NULL;
    *label = amg_path_join(dir, CONFIG_NAME);
    if (!*label)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    rc = amg_read_file(*label, CONFIG_MAX_BYTES, &text, &len, err);
    if (rc != AMG_OK)
        return rc;
    *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!*root)
        return amg_err_set(err, AMG_EFORMAT, "cannot parse '%s': line %d: %s",
                           *label, je.line, je.text);
    if (!json_is_object(*root))
        return amg_err_set(err, AMG_EFORMAT, "'%s' is not a JSON object",
                           *label);
    return AMG_OK;
}

static int get_base(json_t *root, const char *label, char **base,
                    amg_err *err)
{
    json_t *v = json_object_get(root, "base_model_name_or_path");

    *base = NULL;
    if (!v || json_is_null(v) ||
        (json_is_string(v) && !json_string_value(v)[0]))
        return AMG_OK;
    if (!json_is_string(v))
        return amg_err_set(err, AMG_EFORMAT, "'%s': "
                           "'base_model_name_or_path' is not a string",
                           label);
    *base = amg_strdup(json_string_value(v));
    return *base ? AMG_OK : amg_err_set(err, AMG_ENOMEM, "out of memory");
}

int amg_lora_read_base(const char *dir, char **base, amg_err *err)
{
    json_t *root;
    char *label;
    int rc = load_json(dir, &root, &label, err);

    *base = NULL;
    if (rc == AMG_OK)
        rc = get_base(root, label, base, err);
    json_decref(root);
    free(label);
    return rc;
}

/* ---- the config */

static int get_bool(json_t *root, const char *key, const char *label,
                    int *out, amg_err *err)
{
    json_t *v = json_object_get(root, key);

    *out = 0;
    if (!v || json_is_null(v))
        return AMG_OK;
    if (!json_is_boolean(v))
        return amg_err_set(err, AMG_EFORMAT, "'%s': '%s' must be true or "
                           "false", label, key);
    *out = json_is_true(v);
    return AMG_OK;
}

/* A positive number (integer when want_int); absent or null keeps *out. */
static int get_positive(json_t *v, const char *key, const char *label,
                        int want_int, double *out, amg_err *err)
{
    double x;

    if (!v || json_is_null(v))
        return AMG_OK;
    if (want_int ? !json_is_integer(v) : !json_is_number(v))
        return amg_err_set(err, AMG_EFORMAT, "'%s': '%s' must be a positive "
                           "%s", label, key, want_int ? "integer" : "number");
    x = json_number_value(v);
    if (!(x > 0.0) || !isfinite(x))
        return amg_err_set(err, AMG_EFORMAT, "'%s': '%s' must be a positive "
                           "%s; got %g", label, key,
                           want_int ? "integer" : "number", x);
    *out = x;
    return AMG_OK;
}

/* rank_pattern / alpha_pattern: {regex: value}, in file order. */
static int get_pattern(json_t *root, const char *key, const char *label,
                       int want_int, const char ***keys, double **vals,
                       size_t *n, amg_err *err)
{
    json_t *obj = json_object_get(root, key), *v;
    const char *k;
    size_t i = 0;
    int rc;

    *n = 0;
    if (!obj || json_is_null(obj) || !json_object_size(obj))
        return AMG_OK;
    if (!json_is_object(obj))
        return amg_err_set(err, AMG_EFORMAT, "'%s': '%s' must be a mapping "
                           "of module patterns to %s", label, key,
                           want_int ? "ranks" : "alphas");
    *keys = calloc(json_object_size(obj), sizeof(**keys));
    *vals = calloc(json_object_size(obj), sizeof(**vals));
    if (!*keys || !*vals)
        return amg_err_set(err, AMG_ENOMEM, "out of memory");
    json_object_foreach(obj, k, v) {
        char what[300];

        snprintf(what, sizeof(what), "%s['%s']", key, k);
        (*vals)[i] = 0.0;
        rc = get_positive(v, what, label, want_int, &(*vals)[i], err);
        if (rc == AMG_OK && (*vals)[i] == 0.0)
            rc = amg_err_set(err, AMG_EFORMAT, "'%s': '%s' must be a "
                             "positive %s", label, what,
                             want_int ? "integer" : "number");
        if (rc != AMG_OK)
            return rc;
        (*keys)[i++] = k;
    }
    *n = i;
    return AMG_OK;
}

/* Settings amalgam cannot fold are refused by name, not ignored. */
static int refuse_unsupported(json_t *root, const char *label, amg_err *err)
{
    json_t *v = json_object_get(root, "peft_type");
    int flag, rc;

    if (v && !json_is_null(v) &&
        (!json_is_string(v) || strcmp(json_string_value(v), "LORA") != 0))
        return amg_err_set(err, AMG_EUNSUPPORTED, "'%s': peft_type is not "
                           "LORA (only LoRA adapters can be folded)", label);
    if ((rc = get_bool(root, "use_dora", label, &flag, err)))
        return rc;
    if (flag)
        return amg_err_set(err, AMG_EUNSUPPORTED, "'%s': DoRA adapters "
                           "(use_dora) are not supported", label);
    if ((rc = get_bool(root, "lora_bias", label, &flag, err)))
        return rc;
    if (flag)
        return amg_err_set(err, AMG_EUNSUPPORTED, "'%s': LoRA biases "
                           "(lora_bias) are not supported", label);
    v = json_object_get(root, "bias");
    if (v && !json_is_null(v) &&
        (!json_is_string(v) || strcmp(json_string_value(v), "none") != 0))
        return amg_err_set(err, AMG_EUNSUPPORTED, "'%s': trained biases "
                           "(bias other than \"none\") are not supported",
                           label);
    v = json_object_get(root, "modules_to_save");
    if (v && !json_is_null(v) &&
        (!json_is_array(v) || json_array_size(v) > 0))
        return amg_err_set(err, AMG_EUNSUPPORTED, "'%s': modules_to_save "
                           "(whole modules stored in the adapter) are not "
                           "supported", label);
    v = json_object_get(root, "target_modules");
    if (v && !json_is_null(v) && !json_is_string(v) && !json_is_array(v))
        return amg_err_set(err, AMG_EFORMAT, "'%s': 'target_modules' must "
                           "be a list of names or a regular expression",
                           label);
    return AMG_OK;
}

static int read_cfg(amg_lora *l, json_t *root, const char *label,
                    lora_cfg *c, amg_err *err)
{
    int rc = refuse_unsupported(root, label, err);

    c->r = 8.0;                        /* LoraConfig's defaults */
    c->alpha = 8.0;
    if (rc == AMG_OK)
        rc = get_positive(json_object_get(root, "r"), "r", label, 1, &c->r,
                          err);
    if (rc == AMG_OK)
        rc = get_positive(json_object_get(root, "lora_alpha"), "lora_alpha",
                          label, 0, &c->alpha, err);
    if (rc == AMG_OK)
        rc = get_bool(root, "use_rslora", label, &l->use_rslora, err);
    if (rc == AMG_OK)
        rc = get_bool(root, "fan_in_fan_out", label, &l->fan_in_fan_out,
                      err);
    if (rc == AMG_OK)
        rc = get_pattern(root, "rank_pattern", label, 1, &c->rank_keys,
                         &c->rank_vals, &c->n_rank, err);
    if (rc == AMG_OK)
        rc = get_pattern(root, "alpha_pattern", label, 0, &c->alpha_keys,
                         &c->alpha_vals, &c->n_alpha, err);
    if (rc == AMG_OK)
        rc = get_base(root, label, &l->base, err);
    return rc;
}

/* ---- pattern keys */

int amg_lora_pattern_key(const char *const *keys, size_t n_keys,
                         const char *module, long *index, amg_err *err)
{
    size_t i, n;
    regex_t re;
    char *expr;
    int rc;

    *index = -1;
    for (i = 0; i < n_keys; i++) {
        n = strlen(keys[i]) + 16;
        if (!(expr = malloc(n)))
            return amg_err_set(err, AMG_ENOMEM, "out of memory");
        /* re.match(rf"(.*\.)?({key})$", name): anchored at both ends */
        snprintf(expr, n, "^(.*\\.)?(%s)$", keys[i]);
        rc = regcomp(&re, expr, REG_EXTENDED | REG_NOSUB);
        free(expr);
        if (rc != 0)
            return amg_err_set(err, AMG_EFORMAT, "pattern '%s' is not a "
                               "regular expression amalgam can read (POSIX "
                               "extended)", keys[i]);
        rc = regexec(&re, module, 0, NULL, 0);
        regfree(&re);
        if (rc == 0) {
            *index = (long)i;
            return AMG_OK;
        }
    }
    return AMG_OK;
}

/* ---- the factors */

static int cmp_target(const void *a, const void *b)
{
    return strcmp(((const amg_lora_module *)a)->target,
                  ((const amg_lora_module *)b)->target);
}

/* The module a tensor name belongs to and which factor it is; -1 when the
 * name is no LoRA factor. */
static int factor_of(const char *name, size_t *mod_len)
{
    size_t n = strlen(name), p = strlen(KEY_PREFIX), k, s;

    if (strncmp(name, KEY_PREFIX, p) != 0)
        return -1;
    for (k = 0; k < sizeof(factor_kinds) / sizeof(factor_kinds[0]); k++) {
        s = strlen(factor_kinds[k].suffix);
        if (n > p + s && strcmp(name + n - s, factor_kinds[k].suffix) == 0) {
            *mod_len = n - s - p;
            return (int)k;
        }
    }
    return -1;
}

static amg_lora_module *module_for(amg_lora *l, const char *mod, size_t len,
                                   int embedding, amg_err *err)
{
    amg_lora_module *m;
    size_t i;

    for (i = 0; i < l->n_mods; i++)
        if (strlen(l->mods[i].module) == len &&
            strncmp(l->mods[i].module, mod, len) == 0)
            return &l->mods[i];
    m = realloc(l->mods, (l->n_mods + 1) * sizeof(*m));
    if (!m) {
        amg_err_set(err, AMG_ENOMEM, "out of memory");
        return NULL;
    }
    l->mods = m;
    m = &l->mods[l->n_mods];
    memset(m, 0, sizeof(*m));
    m->embedding = embedding;
    m->module = malloc(len + 1);
    m->target = malloc(len + sizeof(".weight"));
    if (!m->module || !m->target) {
        free(m->module);
        free(m->target);
        amg_err_set(err, AMG_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(m->module, mod, len);
    m->module[len] = '\0';
    snprintf(m->target, len + sizeof(".weight"), "%s.weight", m->module);
    l->n_mods++;
    return m;
}

static int collect_factors(amg_lora *l, amg_err *err)
{
    const char *path = l->file.path;
    size_t i, len;
    int k;

    for (i = 0; i < l->file.n_tensors; i++) {
        const amg_st_tensor *t = &l->file.tensors[i];
        amg_lora_module *m;

        k = factor_of(t->name, &len);
        if (k < 0)
            return amg_err_set(err, AMG_EUNSUPPORTED, "'%s': tensor '%s' is "
                               "not a LoRA factor (expected "
                               KEY_PREFIX "<module>.lora_A.weight / "
                               ".lora_B.weight; DoRA, biases and "
                               "modules_to_save are not supported)", path,
                               t->name);
        if (t->ndim != 2 || !amg_dtype_is_float(t->dtype))
            return amg_err_set(err, AMG_EFORMAT, "'%s': LoRA factor '%s' "
                               "must be a 2-d floating-point matrix", path,
                               t->name);
        m = module_for(l, t->name + strlen(KEY_PREFIX), len,
                       factor_kinds[k].embedding, err);
        if (!m)
            return AMG_ENOMEM;
        if (m->embedding != factor_kinds[k].embedding)
            return amg_err_set(err, AMG_EFORMAT, "'%s': module '%s' has both "
                               "linear and embedding LoRA factors", path,
                               m->module);
        if (factor_kinds[k].is_b)
            m->b = t;
        else
            m->a = t;
    }
    return AMG_OK;
}

/* Shapes, rank and scaling of one module. */
static int finish_module(amg_lora *l, amg_lora_module *m, const lora_cfg *c,
                         amg_err *err)
{
    const char *path = l->file.path;
    long ri, ai;
    int rc;

    if (!m->a || !m->b)
        return amg_err_set(err, AMG_EFORMAT, "'%s': module '%s' has lora_%s "
                           "but no lora_%s", path, m->module,
                           m->a ? "A" : "B", m->a ? "B" : "A");
    m->rank = m->a->shape[0];
    if (m->b->shape[1] != m->rank || m->rank == 0)
        return amg_err_set(err, AMG_EFORMAT, "'%s': module '%s': lora_A is "
                           "[%llu, %llu] and lora_B [%llu, %llu]; the rank "
                           "(A's rows, B's columns) must agree", path,
                           m->module, (unsigned long long)m->a->shape[0],
                           (unsigned long long)m->a->shape[1],
                           (unsigned long long)m->b->shape[0],
                           (unsigned long long)m->b->shape[1]);
    rc = amg_lora_pattern_key(c->rank_keys, c->n_rank, m->module, &ri, err);
    if (rc == AMG_OK)
        rc = amg_lora_pattern_key(c->alpha_keys, c->n_alpha, m->module, &ai,
                                  err);
    if (rc != AMG_OK)
        return amg_err_prefix(err, "'%s/" CONFIG_NAME "': ", l->dir);
    m->r = ri >= 0 ? c->rank_vals[ri] : c->r;
    m->alpha = ai >= 0 ? c->alpha_vals[ai] : c->alpha;
    if (m->r != (double)m->rank)
        return amg_err_set(err, AMG_EFORMAT, "'%s': module '%s' has rank "
                           "%llu but adapter_config.json gives it r = %g%s",
                           path, m->module, (unsigned long long)m->rank,
                           m->r, ri >= 0 ? " (rank_pattern)" : "");
    m->scale = (float)(l->use_rslora ? m->alpha / sqrt(m->r)
                                     : m->alpha / m->r);
    m->transposed = m->embedding || l->fan_in_fan_out;
    m->rows = m->transposed ? m->a->shape[1] : m->b->shape[0];
    m->cols = m->transposed ? m->b->shape[0] : m->a->shape[1];
    return AMG_OK;
}

int amg_lora_open(amg_lora *l, const char *dir, amg_err *err)
{
    lora_cfg cfg;
    json_t *root = NULL;
    char *label = NULL, *st = NULL;
    size_t i;
    int rc;

    memset(l, 0, sizeof(*l));
    memset(&cfg, 0, sizeof(cfg));
    if (!(l->dir = amg_strdup(dir))) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    rc = load_json(dir, &root, &label, err);
    if (rc == AMG_OK)
        rc = read_cfg(l, root, label, &cfg, err);
    if (rc != AMG_OK)
        goto out;
    if (!(st = amg_path_join(dir, WEIGHTS_NAME))) {
        rc = amg_err_set(err, AMG_ENOMEM, "out of memory");
        goto out;
    }
    if (!amg_is_file(st)) {
        rc = amg_err_set(err, AMG_ENOTFOUND, "adapter '%s' has no "
                         WEIGHTS_NAME " (an adapter_model.bin must be "
                         "converted to safetensors first)", dir);
        goto out;
    }
    rc = amg_st_open(&l->file, st, 0, err);
    if (rc == AMG_OK)
        rc = collect_factors(l, err);
    for (i = 0; rc == AMG_OK && i < l->n_mods; i++)
        rc = finish_module(l, &l->mods[i], &cfg, err);
    if (rc == AMG_OK && !l->n_mods)
        rc = amg_err_set(err, AMG_EFORMAT, "'%s' holds no LoRA factors", st);
    if (rc == AMG_OK)
        qsort(l->mods, l->n_mods, sizeof(*l->mods), cmp_target);
out:
    cfg_free(&cfg);
    json_decref(root);
    free(label);
    free(st);
    if (rc != AMG_OK)
        amg_lora_close(l);
    return rc;
}

void amg_lora_close(amg_lora *l)
{
    size_t i;

    if (!l)
        return;
    for (i = 0; i < l->n_mods; i++) {
        free(l->mods[i].module);
        free(l->mods[i].target);
    }
    free(l->mods);
    amg_st_close(&l->file);
    free(l->dir);
    free(l->base);
    memset(l, 0, sizeof(*l));
}

const amg_lora_module *amg_lora_find(const amg_lora *l, const char *target)
{
    amg_lora_module key;

    if (!l->n_mods)
        return NULL;
    key.target = (char *)target;
    return bsearch(&key, l->mods, l->n_mods, sizeof(*l->mods), cmp_target);
}

/* ---- the fold */

/* count elements of t starting at element first, as f32. */
static int factor_f32(const amg_lora *l, const amg_st_tensor *t,
                      uint64_t first, uint64_t count, float *out,
                      amg_err *err)
{
    const unsigned char *p = amg_st_data(&l->file, t);
    size_t es = amg_dtype_size(t->dtype);

    if (!p)
        return amg_err_set(err, AMG_EIO, "'%s' is not mapped",
                           l->file.path);
    amg_to_f32(t->dtype, p + first * es, out, (size_t)count);
    return AMG_OK;
}

/* PEFT casts the f32 update back to the adapter's dtype before adding. */
static void round_to_adapter(amg_dtype dt, float *row, uint64_t n,
                             unsigned char *tmp)
{
    if (dt != AMG_DT_BF16 && dt != AMG_DT_F16)
        return;
    amg_from_f32(dt, row, tmp, (size_t)n);
    amg_to_f32(dt, tmp, row, (size_t)n);
}

/* acc[j] = sum_k x[k] * y[k * stride + j], k in order: the same sum for an
 * element whatever rows are computed with it. */
static void row_product(const float *x, uint64_t rank, const float *y,
                        uint64_t stride, uint64_t cols, float *acc)
{
    uint64_t k, j;

    for (j = 0; j < cols; j++)
        acc[j] = 0.0f;
    for (k = 0; k < rank; k++) {
        const float xk = x[k], *yk = y + k * stride;

        for (j = 0; j < cols; j++)
            acc[j] = acc[j] + xk * yk[j];
    }
}

int amg_lora_fold_rows(const amg_lora *l, const amg_lora_module *m,
                       uint64_t r0, uint64_t rows, uint64_t cols, float *dst,
                       amg_err *err)
{
    const uint64_t rank = m->rank;
    const uint64_t a_in = m->a->shape[1];
    float *fa = NULL, *fb = NULL, *x = NULL, *acc = NULL;
    unsigned char *tmp = NULL;
    uint64_t i, j, k, n_fa, n_fb;
    int rc = AMG_OK;

    if (r0 + rows > m->rows || cols > m->cols)
        return amg_err_set(err, AMG_EINVAL, "LoRA update of '%s' is [%llu, "
                           "%llu]; rows %llu..%llu x %llu columns asked",
                           m->module, (unsigned long long)m->rows,
                           (unsigned long long)m->cols,
                           (unsigned long long)r0,
                           (unsigned long long)(r0 + rows),
                           (unsigned long long)cols);
    /* plain: row i is B[i, :] against all of A; transposed: row i is
     * column i of A against B^T, so B is transposed once per call */
    n_fa = m->transposed ? rank * rows : rank * a_in;
    n_fb = m->transposed ? rank * cols : rows * rank;
    fa = malloc((n_fa ? n_fa : 1) * sizeof(*fa));
    fb = malloc((n_fb ? n_fb : 1) * sizeof(*fb));
    x = malloc(rank * sizeof(*x));
    acc = malloc((cols ? cols : 1) * sizeof(*acc));
    tmp = malloc((cols ? cols : 1) * sizeof(float));
    if (!fa || !fb || !x || !acc || !tmp) {
        rc = amg_err_set(err, AMG_ENOMEM, "cannot allocate the LoRA update "
                         "of '%s'", m->module);
        goto out;
    }
    if (!m->transposed) {
        rc = factor_f32(l, m->a, 0, n_fa, fa, err);
        if (rc == AMG_OK)
            rc = factor_f32(l, m->b, r0 * rank, n_fb, fb, err);
    } else {
        for (k = 0; rc == AMG_OK && k < rank; k++)
            rc = factor_f32(l, m->a, k * a_in + r0, rows, fa + k * rows,
                            err);
        for (j = 0; rc == AMG_OK && j < cols; j++) {
            rc = factor_f32(l, m->b, j * rank, rank, x, err);
            for (k = 0; k < rank; k++)
                fb[k * cols + j] = x[k];
        }
    }
    for (i = 0; rc == AMG_OK && i < rows; i++) {
        if (!m->transposed) {
            row_product(fb + i * rank, rank, fa, a_in, cols, acc);
        } else {
            for (k = 0; k < rank; k++)
                x[k] = fa[k * rows + i];
            row_product(x, rank, fb, cols, cols, acc);
        }
        for (j = 0; j < cols; j++)
            acc[j] = acc[j] * m->scale;
        round_to_adapter(m->b->dtype, acc, cols, tmp);
        for (j = 0; j < cols; j++)
            dst[i * cols + j] += acc[j];
    }
out:
    free(fa);
    free(fb);
    free(x);
    free(acc);
    free(tmp);
    return rc;
}
