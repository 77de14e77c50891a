/* SPDX-License-Identifier: Apache-2.0 */
/*
 * simd.h - the instruction set the CPU's hot loops run in, chosen once.
 *
 * The build targets baseline x86-64 (SSE2), which leaves most of a modern
 * CPU's vector width unused in the loops every merge spends its time in:
 * dtype conversion, the elementwise kernels, sign election, masks. Such a
 * loop is written once, as AMG_SIMD_FN, and compiled three times: for the
 * baseline, for AVX2 and for AVX-512; AMG_SIMD(name) picks the form in use.
 *
 * The forms give the same bits: every loop is IEEE f32 arithmetic in the
 * order the source writes it, the build is ISO C (-std=c11 and
 * -ffp-contract=off: no a*b+c contracted into an FMA), and the targets add
 * no FMA or approximate instructions; only the number of lanes differs.
 * One freedom remains, the one IEEE 754 leaves: when both operands of an
 * add or multiply are NaN, which NaN the result carries depends on the
 * instruction's operand order, which the forms do not share (as the CPU
 * and a GPU do not). tests/unit/check_simd.c holds every kernel to this.
 * AMALGAM_SIMD=base|avx2|avx512 narrows the choice (never widens it past
 * what the CPU runs), so tests compare the forms on one machine.
 */
#ifndef AMG_SIMD_H
#define AMG_SIMD_H

enum amg_simd {
    AMG_SIMD_BASE = 0,                 /* what the build targets */
    AMG_SIMD_AVX2 = 1,                 /* x86-64 AVX2 */
    AMG_SIMD_AVX512 = 2                /* x86-64 AVX-512 F, BW, DQ, VL */
};

/* The form in use: set before main (the widest this CPU runs, narrowed by
 * AMALGAM_SIMD) and only changed by amg_simd_use. */
extern int amg_simd_active;

/* "base", "avx2" or "avx512". */
const char *amg_simd_name(int level);

/* The widest form this CPU (and this build) runs. */
int amg_simd_supported(void);

/* Use level, or the widest supported form below it; returns the form now
 * in use. For tests: call while no kernel runs. */
int amg_simd_use(int level);

/* For the loops over a few rows at once (row sums): the helper inlined
 * with its row count a constant, and its loop over the rows unrolled, so
 * the rows' sums are registers. */
#if defined(__GNUC__) || defined(__clang__)
#define AMG_ALWAYS_INLINE inline __attribute__((always_inline))
#define AMG_UNROLL8 _Pragma("GCC unroll 8")
#else
#define AMG_ALWAYS_INLINE inline
#define AMG_UNROLL8
#endif

#if (defined(__x86_64__) || defined(__i386__)) && \
    (defined(__GNUC__) || defined(__clang__))
#define AMG_SIMD_X86 1
#define AMG_SIMD_TARGET_AVX2 __attribute__((target("avx2")))
#define AMG_SIMD_TARGET_AVX512 \
    __attribute__((target("avx2,avx512f,avx512bw,avx512dq,avx512vl")))

/* A static function in its three forms: name##_base, _avx2, _avx512. The
 * body is the last argument (commas in it are fine). */
#define AMG_SIMD_FN(ret, name, params, ...)                                  \
    static ret name##_base params __VA_ARGS__                                \
    AMG_SIMD_TARGET_AVX2 static ret name##_avx2 params __VA_ARGS__           \
    AMG_SIMD_TARGET_AVX512 static ret name##_avx512 params __VA_ARGS__

/* The form of name in use, to call. */
#define AMG_SIMD(name)                                                       \
    (amg_simd_active == AMG_SIMD_AVX512 ? name##_avx512                      \
     : amg_simd_active == AMG_SIMD_AVX2 ? name##_avx2 : name##_base)
#else
#define AMG_SIMD_FN(ret, name, params, ...) \
    static ret name##_base params __VA_ARGS__
#define AMG_SIMD(name) name##_base
#endif

#endif /* AMG_SIMD_H */
