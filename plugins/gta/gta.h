/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gta.h - shared pieces of the generalized task arithmetic plugin: the
 * strategies' options as read for one call, task vectors, the sign
 * consensus and disjoint merge, exact magnitude selection across row
 * chunks, and the per-tensor statistics of the two-pass strategies.
 *
 * Every strategy computes, per tensor, as mergekit's GTATask does:
 *
 *   d_i   = x_i - base                        (f32)
 *   d_i   = sparsify(d_i)                     (method's sparsifier)
 *   mixed = consensus ? disjoint merge of w_i d_i : sum_i w_i d_i
 *   mixed = mixed / divisor                   (when normalize)
 *   out   = base + lambda * mixed
 */
#ifndef AMG_PLUGIN_GTA_H
#define AMG_PLUGIN_GTA_H

#include <stdint.h>

#include <amalgam/amalgam.h>

/* Models one merge takes: the per-tensor statistics are a fixed-size block
 * the host allocates for every tensor (two 64 Ki-bin histograms a model). */
#define GTA_MAX_INPUTS 32u
#define GTA_HIST_BINS 65536u

/* Sparsifiers (mergekit's sparsify.py) */
enum gta_sparsify {
    GTA_SPARSE_NONE,
    GTA_SPARSE_MAGNITUDE,              /* ties: keep the top-k |d| */
    GTA_SPARSE_RANDOM,                 /* dare: Bernoulli(density) */
    GTA_SPARSE_OUTLIERS,               /* breadcrumbs: drop top and bottom */
    GTA_SPARSE_DELLA                   /* della: Bernoulli by |d| rank */
};

/* What distinguishes the strategies; the instance create hands back. */
typedef struct gta_method {
    int32_t sparsify;                  /* enum gta_sparsify */
    int32_t consensus;                 /* sign election + disjoint merge */
} gta_method;

/* Options of one call: globals and per-model values for this tensor. */
typedef struct gta_opts {
    const gta_method *m;
    uint32_t n;                        /* input models */
    int32_t normalize;
    int32_t rescale;                   /* rescale requested */
    int32_t inverse;                   /* dare rescale_mode: inverse */
    int32_t rule;                      /* AMG_SIGN_BY_SUM / _COUNT */
    float lambda;
    uint64_t numel;                    /* elements of the whole tensor */
    float w[GTA_MAX_INPUTS];
    double density[GTA_MAX_INPUTS];
    double gamma[GTA_MAX_INPUTS];
} gta_opts;

/* One exact selection: the k largest |d| of a whole tensor, ties to the
 * lower index. Found by two histogram passes over the chunks. */
typedef struct gta_sel {
    uint64_t k;
    uint64_t above;                    /* elements strictly above the bin */
    uint64_t n_ties;                   /* elements equal to thr to take */
    uint64_t taken;                    /* ties taken so far by apply */
    double l1;                         /* sum of the selected |d| */
    double l1_above;                   /* pass 1: |d| above the level-0 bin */
    uint32_t b0;                       /* level-0 bin of the k-th largest */
    uint32_t thr;                      /* bits of the k-th largest |d| */
    int32_t resolved;                  /* thr and n_ties are final */
    int32_t reserved0;
} gta_sel;

/* Per model: the selections (one for ties, two for breadcrumbs: the
 * elements kept are those of sel[0] not in sel[1]) and L1 sums. */
typedef struct gta_model {
    uint64_t hist[2][GTA_HIST_BINS];
    gta_sel sel[2];
    double l1_all;                     /* sum |d| over the tensor */
    double l1_kept;                    /* sum |d| of the kept elements */
    int32_t trim;                      /* this model is sparsified */
    uint32_t n_sel;                    /* selections in use */
} gta_model;

typedef struct gta_stats {
    uint64_t numel;
    gta_model model[GTA_MAX_INPUTS];
} gta_stats;

/* A reduce or apply pass over rows call->row_begin .. row_end. */
typedef int32_t (*gta_pass_fn)(void *inst, amg_ctx *ctx,
                               const amg_merge_call *call, void *stats);

/* ---- gta.c ---- */

/* The instance of a strategy is its (static) method descriptor. */
void *gta_instance(const gta_method *m);
/* Read the options of a call (fails on unreadable parameters). */
int32_t gta_read_opts(amg_ctx *ctx, const amg_merge_call *call,
                      const gta_method *m, gta_opts *o);
/* *d = inputs[i] - base, a temporary of the call. */
int32_t gta_delta(amg_ctx *ctx, const amg_merge_call *call, uint32_t i,
                  amg_tensor **d);
/* d = inputs[i] - base into d, a tensor like call->out (reused model
 * after model by the reduce passes). */
int32_t gta_delta_to(amg_ctx *ctx, const amg_merge_call *call, uint32_t i,
                     amg_tensor *d);
/* d[i] = inputs[i] - base for every input. */
int32_t gta_deltas(amg_ctx *ctx, const amg_merge_call *call, amg_tensor **d);
/* Release what gta_deltas made (NULL entries are skipped). */
void gta_release_deltas(amg_ctx *ctx, const amg_merge_call *call,
                        amg_tensor **d);
/* out = base + lambda * (consensus or plain) mix of the weighted d. */
int32_t gta_combine(amg_ctx *ctx, const amg_merge_call *call,
                    const gta_opts *o, amg_tensor *const *d);
/* *all += sum |x| and *kept += sum |x| where mask is set (either may be
 * NULL; mask NULL keeps nothing), one read of x. Row by row in row order,
 * index order within a row, so the totals do not depend on how the rows
 * were chunked (the row_abs_sum kernel, so on any device). */
int32_t gta_l1_rows(amg_ctx *ctx, const amg_merge_call *call,
                    const amg_tensor *x, const amg_tensor *mask, double *all,
                    double *kept);
/* The f32 factor restoring the L1 norm, or 1 when mergekit skips it. */
float gta_l1_factor(double all, double kept);
/* A whole-tensor merge done as the reduce passes then apply, on a zeroed
 * statistics block of bytes. */
int32_t gta_merge_passes(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                         size_t bytes, uint32_t passes, gta_pass_fn reduce,
                         gta_pass_fn apply);
/* gta_merge_passes on a gta_stats of the call's models. */
int32_t gta_merge_two_pass(void *inst, amg_ctx *ctx,
                           const amg_merge_call *call, uint32_t passes,
                           gta_pass_fn reduce, gta_pass_fn apply);
int32_t gta_task_arithmetic_merge(void *inst, amg_ctx *ctx,
                                  const amg_merge_call *call);

/* ---- block.c ---- */

/* fn over the call's rows in cache-sized blocks of whole rows, in row
 * order, each as a call of its own (host memory, 2-D and up; otherwise
 * fn(call) once). fn must release its temporaries before it returns. */
int32_t gta_blocked(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                    void *stats, gta_pass_fn fn);

/* ---- topk.c: ties (magnitude) and breadcrumbs (outliers) ---- */

int32_t gta_topk_reduce(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                        void *stats);
int32_t gta_topk_apply(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                       void *stats);
int32_t gta_topk_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call);
/* The highest bin b with *above + sum(hist[b..]) >= k; *above becomes the
 * count strictly above b. Needs k <= *above + sum(hist). */
uint32_t gta_find_bin(const uint64_t *hist, uint64_t k, uint64_t *above);
/* Zero a histogram of GTA_HIST_BINS, writing only the bins in use: the
 * statistics block is fresh zeroed memory from the host, and a write to
 * an untouched page of it costs a page fault (and, in a threaded process,
 * a TLB flush on every CPU) for nothing. */
void gta_hist_clear(uint64_t *hist);

/* ---- breadcrumbs.c ---- */

/* The selections of model i for the outliers rule: sel[0] the top
 * target + n_top, sel[1] the top n_top (both counts of the whole tensor). */
int32_t gta_outliers_counts(amg_ctx *ctx, const amg_merge_call *call,
                            const gta_opts *o, uint32_t i, uint64_t *k_keep,
                            uint64_t *k_drop);

/* ---- maskbits.c: keep masks cached between reduce and apply ---- */

/* Bits of keep mask the statistics block caches between reduce and apply
 * (models times elements of a tensor): 32 MiB, enough for three models of
 * a 32000 x 2048 embedding. The host callocs the block per tensor, and a
 * C library maps one this large fresh (glibc: above 32 MiB, always), so
 * only the pages a tensor's masks fill are ever touched. */
#define GTA_MASK_BITS (1ull << 28)

/* The statistics of the random sparsifiers (dare, della): the L1 sums of
 * mergekit's rescale, and the masks their reduce pass drew, so that apply
 * reads them back instead of drawing (and, for della, ranking) again. */
typedef struct gta_mask_stats {
    double l1_all[GTA_MAX_INPUTS];     /* sum |d_i| over the tensor */
    double l1_kept[GTA_MAX_INPUTS];    /* sum |kept d_i| */
    int32_t no_cache;                  /* set by merge: no mask room */
    int32_t reserved0;
    /* model i's keep mask at bit i * full_numel + element, when cached */
    uint64_t mask_bits[GTA_MASK_BITS / 64];
} gta_mask_stats;

/* Whether the masks of this call are kept in st: only when reduce runs
 * (l1_rescale: mergekit's L1 rescale), in host memory, and all the
 * models' masks of the tensor fit. */
int gta_mask_cached(const amg_merge_call *call, int l1_rescale,
                    const gta_mask_stats *st);
/* Store the mask bytes m (each 0 or 1) of model i for the call's
 * elements; every bit is stored once a tensor, into zeroed bits. */
void gta_mask_store(gta_mask_stats *st, const amg_merge_call *call,
                    uint32_t i, const amg_tensor *m);
/* The mask bytes of model i for the call's elements, into m. */
void gta_mask_load(const gta_mask_stats *st, const amg_merge_call *call,
                   uint32_t i, amg_tensor *m);
/* A whole-tensor merge done as reduce then apply, with no room for masks
 * (the host gives merge no statistics block). */
int32_t gta_mask_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                       gta_pass_fn reduce, gta_pass_fn apply);

/* ---- dare.c, della.c ---- */

int32_t gta_dare_reduce(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                        void *stats);
int32_t gta_dare_apply(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                       void *stats);
int32_t gta_dare_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call);

int32_t gta_della_reduce(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                         void *stats);
int32_t gta_della_apply(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                        void *stats);
int32_t gta_della_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call);

/* ---- sce.c ---- */

/* Reduce passes of sce: two histogram levels of the variance, then the
 * weights' sums of squares under the selection it gives. */
#define GTA_SCE_PASSES 3u

/* One tensor's statistics, zeroed by the host. */
typedef struct gta_sce_stats {
    uint64_t hist[GTA_HIST_BINS];      /* var bits: level 0, then level 1 */
    uint64_t zeros[GTA_HIST_BINS];     /* level 1 in bin 0: [0] exact 0 */
    uint64_t k;                        /* elements selected */
    uint64_t above;                    /* of them, strictly above the bin */
    uint64_t n_ties;                   /* elements equal to thr to take */
    uint64_t taken[2];                 /* ties taken by pass 2, by apply */
    double energy[GTA_MAX_INPUTS];     /* sum (masked TV_i)^2 */
    float w[GTA_MAX_INPUTS];           /* normalised weights */
    uint32_t b0;                       /* level-0 bin of the k-th var */
    uint32_t thr;                      /* bits of the k-th largest var */
    int32_t mode;                      /* sce.c's enum sce_mode */
    int32_t reserved0;
} gta_sce_stats;

int32_t gta_sce_reduce(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                       void *stats);
int32_t gta_sce_apply(void *inst, amg_ctx *ctx, const amg_merge_call *call,
                      void *stats);
int32_t gta_sce_merge(void *inst, amg_ctx *ctx, const amg_merge_call *call);

#endif /* AMG_PLUGIN_GTA_H */
