/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
#include "dtype.h"

#include <string.h>
#include <strings.h>

#include "fpconv.h"

static const struct {
    const char *name;       /* safetensors */
    const char *torch;      /* torch dtype name, as config.json writes it */
    size_t size;
    int is_float;
} table[AMG_DT_COUNT] = {
    [AMG_DT_F64]     = { "F64",     "float64",       8, 1 },
    [AMG_DT_F32]     = { "F32",     "float32",       4, 1 },
    [AMG_DT_F16]     = { "F16",     "float16",       2, 1 },
    [AMG_DT_BF16]    = { "BF16",    "bfloat16",      2, 1 },
    [AMG_DT_I64]     = { "I64",     "int64",         8, 0 },
    [AMG_DT_I32]     = { "I32",     "int32",         4, 0 },
    [AMG_DT_I16]     = { "I16",     "int16",         2, 0 },
    [AMG_DT_I8]      = { "I8",      "int8",          1, 0 },
    [AMG_DT_U8]      = { "U8",      "uint8",         1, 0 },
    [AMG_DT_BOOL]    = { "BOOL",    "bool",          1, 0 },
    [AMG_DT_F8_E4M3] = { "F8_E4M3", "float8_e4m3fn", 1, 1 },
    [AMG_DT_F8_E5M2] = { "F8_E5M2", "float8_e5m2",   1, 1 },
};

/* Valid safetensors dtypes amalgam does not handle (yet). */
static const char *const unsupported[] = {
    "F4", "F6_E2M3", "F6_E3M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
    "U16", "U32", "U64", "C64", NULL
};

static const struct { const char *alias; amg_dtype t; } aliases[] = {
    { "float64", AMG_DT_F64 },  { "double", AMG_DT_F64 },
    { "fp64", AMG_DT_F64 },     { "float32", AMG_DT_F32 },
    { "float", AMG_DT_F32 },    { "fp32", AMG_DT_F32 },
    { "float16", AMG_DT_F16 },  { "half", AMG_DT_F16 },
    { "fp16", AMG_DT_F16 },     { "bfloat16", AMG_DT_BF16 },
    { "bf16", AMG_DT_BF16 },    { "int64", AMG_DT_I64 },
    { "long", AMG_DT_I64 },     { "int32", AMG_DT_I32 },
    { "int", AMG_DT_I32 },      { "int16", AMG_DT_I16 },
    { "short", AMG_DT_I16 },    { "int8", AMG_DT_I8 },
    { "uint8", AMG_DT_U8 },     { "bool", AMG_DT_BOOL },
    { "float8_e4m3fn", AMG_DT_F8_E4M3 }, { "fp8_e4m3", AMG_DT_F8_E4M3 },
    { "float8_e5m2", AMG_DT_F8_E5M2 },   { "fp8_e5m2", AMG_DT_F8_E5M2 },
};

const char *amg_dtype_name(amg_dtype t)
{
    return (unsigned)t < AMG_DT_COUNT ? table[t].name : "?";
}

const char *amg_dtype_torch_name(amg_dtype t)
{
    return (unsigned)t < AMG_DT_COUNT ? table[t].torch : "?";
}

size_t amg_dtype_size(amg_dtype t)
{
    return (unsigned)t < AMG_DT_COUNT ? table[t].size : 0;
}

int amg_dtype_is_float(amg_dtype t)
{
    return (unsigned)t < AMG_DT_COUNT && table[t].is_float;
}

int amg_dtype_parse(const char *name, amg_dtype *out)
{
    int i;

    for (i = 0; i < AMG_DT_COUNT; i++) {
        if (!strcmp(name, table[i].name)) {
            *out = (amg_dtype)i;
            return 0;
        }
    }
    return -1;
}

int amg_dtype_known_unsupported(const char *name)
{
    int i;

    for (i = 0; unsupported[i]; i++)
        if (!strcmp(name, unsupported[i]))
            return 1;
    return 0;
}

int amg_dtype_parse_user(const char *name, amg_dtype *out)
{
    size_t i;

    for (i = 0; i < AMG_DT_COUNT; i++) {
        if (!strcasecmp(name, table[i].name)) {
            *out = (amg_dtype)i;
            return 0;
        }
    }
    if (!strncmp(name, "torch.", 6))
        name += 6;
    for (i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
        if (!strcasecmp(name, aliases[i].alias)) {
            *out = aliases[i].t;
            return 0;
        }
    }
    return -1;
}

/* ---- bulk conversion (per-element rules live in fpconv.h) ---- */
/* AMG-DTYPE-CONVERSIONS: amg_to_f32 / amg_from_f32 go here. */
