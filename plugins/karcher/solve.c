/* SPDX-License-Identifier: Apache-2.0 */
/*
 * solve.c - mergekit's Karcher mean (merge_methods/karcher.py,
 * karcher_merge_tensors) run on coefficients instead of vectors.
 *
 * Every point the iteration visits is a combination of the models' unit
 * vectors u_p = t_p / n_p, so it is held as coefficients c over them and
 * every inner product comes from the cosine matrix C_pq = <u_p, u_q>:
 * <x, y> = x' C y. The tensors themselves are read once, for the Gram
 * matrix, and once more for the final weighted sum.
 */
#include <math.h>
#include <string.h>

#include "karcher.h"

#define KA_PI 3.14159265358979323846

/* x' C y over k coefficients; C is k x k, row-major. */
static double ka_inner(const double *c, uint32_t k, const double *x,
                       const double *y)
{
    double acc = 0.0, row;
    uint32_t p, q;

    for (p = 0; p < k; p++) {
        row = 0.0;
        for (q = 0; q < k; q++)
            row += c[p * k + q] * y[q];
        acc += x[p] * row;
    }
    return acc;
}

/* |x| from x' C x, which rounding can push just below zero. */
static double ka_norm(const double *c, uint32_t k, const double *x)
{
    double q = ka_inner(c, k, x, x);

    return q > 0.0 ? sqrt(q) : 0.0;
}

/* The kept models' cosines. sqrt(G_pp G_qq) rather than n_p n_q makes
 * equal models exactly parallel. */
static void ka_cosines(const double *gram, const ka_solution *s, double *c)
{
    uint32_t k = s->n_kept, p, q, i, j;

    for (p = 0; p < k; p++)
        for (q = 0; q < k; q++) {
            i = s->kept[p < q ? p : q];
            j = s->kept[p < q ? q : p];
            c[p * k + q] = p == q ? 1.0
                : gram[ka_tri(i, j)] /
                      sqrt(gram[ka_tri(i, i)] * gram[ka_tri(j, j)]);
        }
}

/* The Riemannian gradient step's tangent T at u (coefficients m), summed
 * over the models not within tol of u. -1 when one is within tol of -u. */
static int ka_tangent(const double *c, uint32_t k, const double *m,
                      double alpha, double tol, double *t, ka_solution *s)
{
    double cosv, theta, w;
    uint32_t p, q;

    memset(t, 0, k * sizeof(*t));
    for (p = 0; p < k; p++) {
        cosv = 0.0;                    /* <u, u_p> = sum_q m_q C_qp */
        for (q = 0; q < k; q++)
            cosv += m[q] * c[q * k + p];
        if (cosv > 1.0)
            cosv = 1.0;
        if (cosv < -1.0)
            cosv = -1.0;
        theta = acos(cosv);
        if (theta < tol)
            continue;
        if (KA_PI - theta < tol) {
            s->opposed = s->kept[p];
            s->angle = theta;
            return -1;
        }
        w = alpha * theta / sin(theta);
        t[p] += w;                     /* w (u_p - cos u) */
        for (q = 0; q < k; q++)
            t[q] -= w * cosv * m[q];
    }
    return 0;
}

int ka_solve(const double *gram, uint32_t n, int64_t max_iter, double tol,
             ka_solution *s)
{
    double norms[KA_MAX_MODELS], c[KA_MAX_MODELS * KA_MAX_MODELS];
    double m[KA_MAX_MODELS], t[KA_MAX_MODELS];
    double alpha, len, tn, scale = 0.0;
    uint32_t i, k = 0, p;
    int64_t it;

    memset(s, 0, sizeof(*s));
    for (i = 0; i < n; i++) {
        norms[i] = sqrt(gram[ka_tri(i, i)]);
        if (!isfinite(norms[i])) {     /* mergekit's result is all NaN */
            s->kind = KA_NAN;
            return 0;
        }
        if (norms[i] > tol)
            s->kept[k++] = i;
        scale += norms[i] * (1.0 / (double)n); /* zero and tiny too */
    }
    s->n_kept = k;
    if (k == 0) {
        s->kind = KA_ZERO;
        return 0;
    }
    ka_cosines(gram, s, c);
    alpha = 1.0 / (double)k;
    for (p = 0; p < k; p++)
        m[p] = alpha;
    len = ka_norm(c, k, m);
    for (p = 0; p < k; p++)            /* the start: normalised mean */
        m[p] = len < tol ? (p == 0 ? 1.0 : 0.0) : m[p] / len;
    for (it = 0; it < max_iter; it++) {
        if (ka_tangent(c, k, m, alpha, tol, t, s) != 0)
            return -1;
        tn = ka_norm(c, k, t);
        s->last_step = tn;
        if (tn < tol)
            break;
        for (p = 0; p < k; p++)        /* the exponential map */
            m[p] = cos(tn) * m[p] + sin(tn) * (t[p] / tn);
        len = ka_norm(c, k, m);
        if (len > tol)
            for (p = 0; p < k; p++)
                m[p] /= len;
        s->iters++;
    }
    for (p = 0; p < k; p++)
        s->beta[p] = scale * m[p] / norms[s->kept[p]];
    s->kind = KA_SUM;
    return 0;
}
