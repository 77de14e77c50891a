/* SPDX-License-Identifier: Apache-2.0 */
/*
 * slerp.h - the SLERP family plugin (slerp, nuslerp, multislerp): its
 * strategies and the helpers they share.
 */
#ifndef AMALGAM_PLUGIN_SLERP_H
#define AMALGAM_PLUGIN_SLERP_H

#include <stdint.h>

#include <amalgam/amalgam.h>

/* The most models multislerp takes (its Gram matrix lives in the
 * fixed-size statistics block). */
#define AMG__MULTISLERP_MAX 16

extern const amg_strategy amg__slerp_strategy;
extern const amg_strategy amg__nuslerp_strategy;
extern const amg_strategy amg__multislerp_strategy;

/* *acc += sum_i x[i] * y[i] over the rows of this call, in row order: each
 * row summed in f64 by the row_dot kernel, the row sums added one by one.
 * Rows are never split between chunks, so the total is the same bits for
 * any chunk size (a dot per chunk would not be). */
int32_t amg__slerp_dot_rows(amg_ctx *ctx, const amg_merge_call *call,
                            const amg_tensor *x, const amg_tensor *y,
                            double *acc);

/* The index of the input that is the base model listed among the models
 * (the host passes the same handle twice), or -1. Strategies with an
 * optional base drop it from the inputs, as mergekit does. */
int32_t amg__slerp_listed_base(const amg_merge_call *call);

/* Fail unless v is finite, naming what it is (norms and dot products of
 * tensors holding inf or NaN). */
int32_t amg__slerp_finite(amg_ctx *ctx, const amg_merge_call *call,
                          double v, const char *what);

#endif /* AMALGAM_PLUGIN_SLERP_H */
