/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_descriptor.c - libFuzzer target for plugin descriptor checks
 * (amg_module_validate), in-process: no plugin is loaded.
 *
 * The input is XORed over a valid template module, strategy table and
 * parameter schema, so the empty input is a valid module and every byte
 * flips something. Pointer members are never random: a selector byte
 * picks the template's pointer, NULL, or one of a pool of strings
 * (valid and invalid ids, an over-long one, two taken from the front of
 * the input).
 * Counts are honoured exactly: an array of n entries is allocated for a
 * count n the validator may walk, so ASan flags any walk past it.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <amalgam/plugin.h>

#include "plugin_loader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_STRAT 3                 /* distinct strategy structs */
#define N_SPEC 4                  /* distinct parameter entries */
#define MAX_WALK 1024             /* the validator's limits */
#define MAX_STRIDE 1024          /* MAX_SPEC_SIZE in plugin_loader.c */

typedef struct reader {
    const uint8_t *p;
    size_t n, i;
} reader;

static uint8_t next(reader *r)
{
    return r->i < r->n ? r->p[r->i++] : 0;
}

static void xor_over(reader *r, void *obj, size_t len)
{
    uint8_t *b = obj;
    size_t i;

    for (i = 0; i < len; i++)
        b[i] ^= next(r);
}

static int32_t dummy_merge(void *inst, amg_ctx *ctx,
                           const amg_merge_call *call)
{
    (void)inst, (void)ctx, (void)call;
    return AMG_OK;
}

static int32_t dummy_pass(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                          void *stats)
{
    (void)inst, (void)ctx, (void)call, (void)stats;
    return AMG_OK;
}

static char long_id[80];
static const char *fz1 = "", *fz2 = "";
static const char *const pool[] = {
    "weight", "density", "linear", "ties", "", "A", "a-b", "9a", "sum",
    long_id,
};
#define N_POOL (sizeof(pool) / sizeof(pool[0]))

/* 0 keeps the template's pointer; otherwise NULL, a pool string or one of
 * the two strings from the input. */
static const char *pick(reader *r, const char *def)
{
    uint8_t s = next(r);

    if (s == 0)
        return def;
    s = (uint8_t)(s % (N_POOL + 3));
    if (s == 0)
        return NULL;
    if (s <= N_POOL)
        return pool[s - 1];
    return s == N_POOL + 1 ? fz1 : fz2;
}

static const char *const ch_ok[] = { "sum", "mean", NULL };
static const char *const ch_empty[] = { NULL };
static const char *ch_unterminated[MAX_WALK];
static const char *ch_fuzz[3];

static const char *const *pick_choices(reader *r, const char *const *def)
{
    switch (next(r) % 6) {
    case 1: return NULL;
    case 2: return ch_empty;
    case 3: return ch_unterminated;
    case 4: return ch_fuzz;
    case 5: return ch_ok;
    default: return def;
    }
}

static const amg_param_spec spec_template[N_SPEC] = {
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_F64,
      .scope = AMG_SCOPE_PER_MODEL,
      .flags = AMG_PARAM_HAS_MIN | AMG_PARAM_HAS_MAX | AMG_PARAM_GRADIENT,
      .name = "weight", .help = "w", .def = 1.0, .min = 0.0, .max = 2.0 },
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_STR,
      .scope = AMG_SCOPE_GLOBAL, .name = "mode", .help = "m",
      .def_str = "sum", .choices = ch_ok },
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_I64,
      .scope = AMG_SCOPE_GLOBAL, .flags = AMG_PARAM_REQUIRED,
      .name = "k", .help = "k" },
    { .struct_size = sizeof(amg_param_spec), .type = AMG_PARAM_BOOL,
      .scope = AMG_SCOPE_GLOBAL, .name = "normalize", .help = "n",
      .def = 1.0 },
};

/* One parameter entry: template XOR input, pointers picked. */
static void fill_spec(reader *r, amg_param_spec *sp, const amg_param_spec *t)
{
    *sp = *t;
    xor_over(r, sp, sizeof(*sp));
    sp->name = pick(r, t->name);
    sp->help = pick(r, t->help);
    sp->def_str = pick(r, t->def_str);
    sp->choices = pick_choices(r, t->choices);
    sp->reserved[0] = sp->reserved[1] = NULL;
}

/* The schema array as the validator walks it: entry i at i * stride, where
 * stride is entry 0's struct_size. NULL when n is 0. */
static char *make_params(reader *r, uint32_t n, size_t *bytes)
{
    uint32_t stride = (uint32_t)sizeof(amg_param_spec);
    amg_param_spec tmp[N_SPEC];
    size_t walk, len, i;
    char *buf;

    xor_over(r, &stride, sizeof(stride));
    for (i = 0; i < N_SPEC; i++)
        fill_spec(r, &tmp[i], &spec_template[i]);
    /* a count or stride past the limits must be refused before any walk:
     * one entry is all such a schema gets */
    walk = (n == 0 || n > MAX_WALK || stride > MAX_STRIDE ||
            stride % _Alignof(amg_param_spec) ||
            stride < offsetof(amg_param_spec, reserved))
               ? 1
               : n;
    len = (walk - 1) * (size_t)stride + sizeof(amg_param_spec);
    buf = calloc(1, len);
    if (!buf)
        abort();
    for (i = walk; i-- > 0;) /* backwards: entry i's tail may hold i+1 */
        memcpy(buf + i * stride, &tmp[i % N_SPEC],
               i + 1 == walk ? sizeof(amg_param_spec)
               : stride < sizeof(amg_param_spec) ? stride
                                                : sizeof(amg_param_spec));
    memcpy(buf, &stride, sizeof(stride));
    *bytes = len;
    return buf;
}

static void fill_strategy(reader *r, amg_strategy *s, int idx, char **params)
{
    static const char *const ids[N_STRAT] = { "lin", "topk", "stock" };
    size_t bytes = 0;
    uint8_t fn;

    memset(s, 0, sizeof(*s));
    s->struct_size = sizeof(*s);
    s->caps = AMG_CAP_CPU | AMG_CAP_ELEMENTWISE;
    s->min_inputs = 1;
    s->n_params = idx == 0 ? 2 : idx == 1 ? 4 : 0;
    if (idx == 1) {
        s->caps = AMG_CAP_CPU | AMG_CAP_TWO_PASS | AMG_CAP_USES_RNG;
        s->reduce_passes = 2;
        s->stats_bytes = 64;
    }
    xor_over(r, s, sizeof(*s));
    s->id = pick(r, ids[idx]);
    s->summary = pick(r, "a strategy");
    s->help = pick(r, NULL);
    fn = next(r);
    s->create = NULL;
    s->destroy = NULL;
    s->merge = (fn & 1) ? NULL : dummy_merge;
    s->reduce = (fn & 2) == (idx == 1 ? 0 : 2) ? dummy_pass : NULL;
    s->apply = (fn & 4) == (idx == 1 ? 0 : 4) ? dummy_pass : NULL;
    *params = make_params(r, s->n_params, &bytes);
    s->params = (next(r) == 0xff || s->n_params == 0)
                    ? NULL
                    : (const amg_param_spec *)*params;
    memset(s->reserved, 0, sizeof(s->reserved));
}

/* A string from the input: a length byte, then that many bytes (a NUL
 * among them ends it early). */
static char *take_string(reader *r)
{
    size_t want = next(r), n = r->n - r->i, i;
    char *s;

    if (want < n)
        n = want;
    s = calloc(1, n + 1);
    if (!s)
        abort();
    for (i = 0; i < n; i++)
        s[i] = (char)next(r);
    return s;
}

static void check_accepted(const amg_module *m)
{
    uint32_t i;

    for (i = 0; i < m->n_strategies; i++) {
        const amg_strategy *s = m->strategies[i];
        if (!s || !s->id || !s->merge || !(s->caps & (AMG_CAP_CPU |
                                                      AMG_CAP_CUDA)))
            abort();
        if (s->n_params && !s->params)
            abort();
    }
    if (!m->name || !m->version || m->magic != AMG_MODULE_MAGIC)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = { data, size, 0 };
    amg_strategy strat[N_STRAT];
    char *params[N_STRAT] = { NULL };
    const amg_strategy **table = NULL;
    char *s1 = NULL, *s2 = NULL;
    amg_module m;
    amg_err err;
    size_t walk, i;
    int rc;

    s1 = take_string(&r);
    s2 = take_string(&r);
    fz1 = s1;
    fz2 = s2;
    ch_fuzz[0] = s1;
    ch_fuzz[1] = s2;
    ch_fuzz[2] = NULL;
    memset(long_id, 'a', sizeof(long_id) - 1);
    for (i = 0; i < MAX_WALK; i++)
        ch_unterminated[i] = "sum";
    memset(&m, 0, sizeof(m));
    m.struct_size = sizeof(m);
    m.magic = AMG_MODULE_MAGIC;
    m.abi_major = AMG_ABI_MAJOR;
    m.abi_minor = AMG_ABI_MINOR;
    {
        static const amg_build_config host = AMG_BUILD_CONFIG_INIT;
        m.build = host;
    }
    m.n_strategies = N_STRAT;
    xor_over(&r, &m, sizeof(m));
    m.name = pick(&r, "fuzz");
    m.version = pick(&r, "1.0");
    m.license = pick(&r, "Apache-2.0");
    m.description = pick(&r, "fuzzed");
    m.init = NULL;
    m.fini = NULL;
    memset(m.reserved, 0, sizeof(m.reserved));
    for (i = 0; i < N_STRAT; i++)
        fill_strategy(&r, &strat[i], (int)i, &params[i]);

    walk = m.n_strategies > MAX_WALK ? 1 : m.n_strategies;
    table = calloc(walk ? walk : 1, sizeof(*table));
    if (!table)
        abort();
    for (i = 0; i < walk; i++) {
        uint8_t s = next(&r);
        /* 0 keeps strategy i (mod N_STRAT); 0xff is a NULL entry */
        table[i] = s == 0xff ? NULL : &strat[(i + s) % N_STRAT];
    }
    m.strategies = next(&r) == 0xff ? NULL : table;

    amg_err_clear(&err);
    rc = amg_module_validate(&m, "fuzz.so", &err);
    if (rc != AMG_OK) {
        if (err.status == AMG_OK || !strstr(err.msg, "fuzz.so"))
            abort();
    } else {
        check_accepted(&m);
    }
    fz1 = fz2 = "";
    ch_fuzz[0] = ch_fuzz[1] = NULL;
    free(s1);
    free(s2);
    free(table);
    for (i = 0; i < N_STRAT; i++)
        free(params[i]);
    return 0;
}
