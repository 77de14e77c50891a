/* SPDX-License-Identifier: Apache-2.0 */
/*
 * param_eval.c - the value one parameter setting takes for one tensor,
 * exactly as mergekit's evaluate_setting computes it (see param_eval.h).
 */
#include "config.h"
#include "param_eval.h"

#include <math.h>
#include <string.h>

static void scalar_of(const amg_pval *v, amg_pscalar *out)
{
    out->kind = v->kind;
    out->num = v->num;
    out->str = v->str;
}

/* mergekit truncates x with int(); x is never negative here, so floor is
 * the same, and the clamps keep a t slightly past 1 (or below 0) from
 * indexing outside the list. */
static size_t lower_anchor(double x, size_t n)
{
    if (!(x > 0.0))
        return 0;
    if (x >= (double)(n - 1))
        return n - 1;
    return (size_t)floor(x);
}

static int eval_gradient(const amg_pval *v, double t, amg_pscalar *out)
{
    size_t n = v->n_elems, i0, i1;
    double x, frac;

    if (n == 0)
        return 0;
    x = t * (double)(n - 1);
    i0 = lower_anchor(x, n);
    /* only numbers interpolate; bools and strings are picked */
    if (v->elems[i0].kind != AMG_PV_NUMBER) {
        scalar_of(&v->elems[i0], out);
        return 1;
    }
    i1 = i0 + 1 < n ? i0 + 1 : n - 1;
    frac = x - (double)i0;
    if (frac < 0.0)
        frac = 0.0;
    out->kind = AMG_PV_NUMBER;
    out->str = NULL;
    /* the same expression as mergekit, so values agree to the last bit */
    out->num = (1.0 - frac) * v->elems[i0].num + frac * v->elems[i1].num;
    return 1;
}

static int filter_matches(const amg_pfilter *f, const char *tensor)
{
    return !f->filter || strcmp(f->filter, "*") == 0 ||
           strstr(tensor, f->filter) != NULL;
}

int amg_pval_eval(const amg_pval *v, const char *tensor, double t,
                  amg_pscalar *out)
{
    size_t i;

    switch (v->kind) {
    case AMG_PV_NUMBER:
    case AMG_PV_BOOL:
    case AMG_PV_STRING:
        scalar_of(v, out);
        return 1;
    case AMG_PV_GRADIENT:
        return eval_gradient(v, t, out);
    case AMG_PV_FILTERS:
        for (i = 0; i < v->n_filters; i++)
            if (filter_matches(&v->filters[i], tensor))
                return amg_pval_eval(&v->filters[i].value, tensor, t, out);
        return 0;
    }
    return 0;
}
