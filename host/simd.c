/* SPDX-License-Identifier: Apache-2.0 */
/*
 * simd.c - which form of the hot loops runs (see simd.h): the CPU's
 * widest, narrowed by AMALGAM_SIMD, decided before main so that every
 * thread reads a value that no longer changes.
 */
#include "config.h"
#include "simd.h"

#include <stdlib.h>
#include <string.h>

int amg_simd_active = AMG_SIMD_BASE;

const char *amg_simd_name(int level)
{
    switch (level) {
    case AMG_SIMD_AVX2:
        return "avx2";
    case AMG_SIMD_AVX512:
        return "avx512";
    default:
        return "base";
    }
}

int amg_simd_supported(void)
{
#ifdef AMG_SIMD_X86
    /* needed when called from a constructor, as the first call is */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx2"))
        return AMG_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2"))
        return AMG_SIMD_AVX2;
#endif
    return AMG_SIMD_BASE;
}

int amg_simd_use(int level)
{
    int max = amg_simd_supported();

    if (level < AMG_SIMD_BASE)
        level = AMG_SIMD_BASE;
    amg_simd_active = level < max ? level : max;
    return amg_simd_active;
}

/* AMALGAM_SIMD's level; an unknown value leaves the CPU's choice (the
 * version line shows the form in use). */
static int wanted_level(void)
{
    const char *e = getenv("AMALGAM_SIMD");

    if (e == NULL || strcmp(e, "avx512") == 0)
        return AMG_SIMD_AVX512;
    if (strcmp(e, "avx2") == 0)
        return AMG_SIMD_AVX2;
    if (strcmp(e, "base") == 0)
        return AMG_SIMD_BASE;
    return AMG_SIMD_AVX512;
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((constructor)) static void simd_init(void)
{
    amg_simd_use(wanted_level());
}
#endif
