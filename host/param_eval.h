/* SPDX-License-Identifier: Apache-2.0 */
/*
 * param_eval.h - mergekit's parameter semantics: the value a setting takes
 * for one tensor.
 *
 *   scalar     -> itself
 *   gradient   -> numbers: x = t*(n-1), i0 = floor(x), i1 = min(n-1, i0+1),
 *                 (1-frac)*s[i0] + frac*s[i1]; bools/strings: s[floor(x)]
 *   filters    -> the first entry whose filter is NULL, "*", or a substring
 *                 of the tensor name; its value evaluated as above; no match
 *                 means "not set here"
 * t = layer / (layers - 1) within the output slice (1 for a one-layer
 * slice); tensors outside the layer stack (embeddings, final norm, lm_head)
 * use t = 0.
 */
#ifndef AMG_PARAM_EVAL_H
#define AMG_PARAM_EVAL_H

#include "error.h"
#include "pipeline.h"

typedef struct amg_pscalar {
    amg_pval_kind kind;                /* NUMBER, BOOL or STRING */
    double num;                        /* NUMBER, BOOL (0/1) */
    const char *str;                   /* STRING: points into the pipeline */
} amg_pscalar;

/* Evaluate v for tensor name at t. Returns 1 and fills out when the
 * setting applies to this tensor, 0 when a filter list has no match. */
int amg_pval_eval(const amg_pval *v, const char *tensor, double t,
                  amg_pscalar *out);

#endif
