/* SPDX-License-Identifier: Apache-2.0 */
/*
 * karcher.h - the `karcher` plugin's parts: the two passes over tensor
 * rows (karcher.c) and the Karcher iteration on the models' Gram matrix
 * (solve.c), which needs no tensor at all.
 */
#ifndef AMALGAM_PLUGIN_KARCHER_H
#define AMALGAM_PLUGIN_KARCHER_H

#include <stdint.h>

/* The Gram matrix lives in the host's zeroed stats block, whose size is
 * fixed by the strategy: this bounds the models of one merge, the base
 * included. */
#define KA_MAX_MODELS 32u
#define KA_GRAM (KA_MAX_MODELS * (KA_MAX_MODELS + 1u) / 2u)

/* Index of <t_i, t_j>, i <= j, in a packed upper triangle. */
static inline uint32_t ka_tri(uint32_t i, uint32_t j)
{
    return j * (j + 1u) / 2u + i;
}

/* What the output is, once the Gram matrix is known. */
enum {
    KA_SUM = 0,        /* sum over kept models of beta * model */
    KA_ZERO = 1,       /* no model has a norm above tol: zeros */
    KA_NAN = 2         /* a norm is NaN or infinite: NaN everywhere */
};

typedef struct ka_solution {
    int32_t kind;
    uint32_t n_kept;                   /* models with norm > tol */
    uint32_t kept[KA_MAX_MODELS];      /* their indices, in model order */
    double beta[KA_MAX_MODELS];        /* out = sum_p beta[p] t_kept[p] */
    uint32_t iters;                    /* tangent steps taken */
    double last_step;                  /* |T| when the loop ended */
    uint32_t opposed;                  /* on failure: the model at pi */
    double angle;                      /* and its angle to the mean */
} ka_solution;

/* Run mergekit's karcher_merge_tensors on n >= 2 models known only by
 * their Gram matrix gram (packed by ka_tri), in f64. Returns 0, or -1 when
 * a model lies within tol of the antipode of the running mean, where the
 * mean is undefined (s->opposed and s->angle say which). */
int ka_solve(const double *gram, uint32_t n, int64_t max_iter, double tol,
             ka_solution *s);

#endif /* AMALGAM_PLUGIN_KARCHER_H */
