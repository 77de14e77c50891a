/* SPDX-License-Identifier: Apache-2.0 */
/*
 * module.c - the gta module: mergekit's generalized task arithmetic family
 * (merge_methods/generalized_task_arithmetic.py, sparsify.py) with its
 * parameter names and per-method defaults.
 */
#include <stddef.h>
#include <stdint.h>

#include "gta.h"

#define SPEC .struct_size = sizeof(amg_param_spec)

#define P_WEIGHT                                                              \
    { SPEC, .type = AMG_PARAM_F64, .scope = AMG_SCOPE_PER_MODEL,              \
      .flags = AMG_PARAM_REQUIRED | AMG_PARAM_GRADIENT, .name = "weight",     \
      .help = "weight of this model's task vector (may be negative)" }
#define P_DENSITY(h)                                                          \
    { SPEC, .type = AMG_PARAM_F64, .scope = AMG_SCOPE_PER_MODEL,              \
      .flags = AMG_PARAM_GRADIENT | AMG_PARAM_HAS_MIN | AMG_PARAM_HAS_MAX,    \
      .name = "density", .def = 1.0, .min = 0.0, .max = 1.0, .help = h }
#define P_GAMMA                                                               \
    { SPEC, .type = AMG_PARAM_F64, .scope = AMG_SCOPE_PER_MODEL,              \
      .flags = AMG_PARAM_GRADIENT | AMG_PARAM_HAS_MIN | AMG_PARAM_HAS_MAX,    \
      .name = "gamma", .def = 0.01, .min = 0.0, .max = 1.0,                   \
      .help = "share of the largest |delta| dropped as outliers" }
#define P_LAMBDA                                                              \
    { SPEC, .type = AMG_PARAM_F64, .scope = AMG_SCOPE_GLOBAL,                 \
      .flags = AMG_PARAM_GRADIENT, .name = "lambda", .def = 1.0,              \
      .help = "scale of the merged task vector" }
#define P_NORMALIZE(d)                                                        \
    { SPEC, .type = AMG_PARAM_BOOL, .scope = AMG_SCOPE_GLOBAL,                \
      .flags = AMG_PARAM_GRADIENT, .name = "normalize", .def = d,             \
      .help = "divide by the sum of the (agreeing) weights" }
#define P_RESCALE(d)                                                          \
    { SPEC, .type = AMG_PARAM_BOOL, .scope = AMG_SCOPE_GLOBAL,                \
      .flags = AMG_PARAM_GRADIENT, .name = "rescale", .def = d,               \
      .help = "restore each sparsified task vector's L1 norm" }
#define P_INT8                                                                \
    { SPEC, .type = AMG_PARAM_BOOL, .scope = AMG_SCOPE_GLOBAL,                \
      .name = "int8_mask", .def = 0.0,                                        \
      .help = "accepted for mergekit configs; no effect here" }
#define P_CONSENSUS                                                           \
    { SPEC, .type = AMG_PARAM_STR, .scope = AMG_SCOPE_GLOBAL,                 \
      .name = "consensus", .def_str = "sum", .choices = consensus_choices,    \
      .help = "sign election: sum of weighted deltas, or count of signs" }
#define P_RESCALE_MODE                                                        \
    { SPEC, .type = AMG_PARAM_STR, .scope = AMG_SCOPE_GLOBAL,                 \
      .name = "rescale_mode", .def_str = "l1", .choices = rescale_choices,    \
      .help = "l1: restore the L1 norm per tensor; inverse: 1/density" }

#define DENSITY_IGNORED "accepted as mergekit does; no effect here"
#define DENSITY_TOPK "share of largest |delta| kept per tensor"
#define DENSITY_RANDOM "probability of keeping each delta element"
#define DENSITY_OUTLIERS "share of the tensor kept after dropping outliers"
#define DENSITY_DELLA "mean probability of keeping each delta element"
#define P_RESCALE_MODE_P                                                      \
    { SPEC, .type = AMG_PARAM_STR, .scope = AMG_SCOPE_GLOBAL,                 \
      .name = "rescale_mode", .def_str = "l1", .choices = rescale_choices,    \
      .help = "l1: restore the L1 norm per tensor; inverse: 1/p per element" }

#define P_EPSILON                                                             \
    { SPEC, .type = AMG_PARAM_F64, .scope = AMG_SCOPE_PER_MODEL,              \
      .flags = AMG_PARAM_GRADIENT | AMG_PARAM_HAS_MIN, .name = "epsilon",     \
      .def = 0.15, .min = 0.0,                                                \
      .help = "keep probabilities span density +/- epsilon by |delta| rank" }

static const char *const consensus_choices[] = { "sum", "count", NULL };
static const char *const rescale_choices[] = { "l1", "inverse", NULL };

#define N_OF(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))

static const amg_param_spec ta_params[] = {
    P_WEIGHT, P_DENSITY(DENSITY_IGNORED), P_LAMBDA, P_NORMALIZE(0.0),
    P_RESCALE(0.0), P_INT8,
};
static const amg_param_spec ties_params[] = {
    P_WEIGHT, P_DENSITY(DENSITY_TOPK), P_LAMBDA, P_NORMALIZE(1.0),
    P_RESCALE(0.0), P_INT8, P_CONSENSUS,
};
static const amg_param_spec dare_ties_params[] = {
    P_WEIGHT, P_DENSITY(DENSITY_RANDOM), P_LAMBDA, P_NORMALIZE(0.0),
    P_RESCALE(1.0), P_INT8, P_CONSENSUS, P_RESCALE_MODE,
};
static const amg_param_spec dare_linear_params[] = {
    P_WEIGHT, P_DENSITY(DENSITY_RANDOM), P_LAMBDA, P_NORMALIZE(0.0),
    P_RESCALE(1.0), P_INT8, P_RESCALE_MODE,
};
static const amg_param_spec breadcrumbs_params[] = {
    P_WEIGHT, P_DENSITY(DENSITY_OUTLIERS), P_GAMMA, P_LAMBDA,
    P_NORMALIZE(0.0), P_RESCALE(0.0), P_INT8,
};
static const amg_param_spec breadcrumbs_ties_params[] = {
    P_WEIGHT, P_DENSITY(DENSITY_OUTLIERS), P_GAMMA, P_LAMBDA,
    P_NORMALIZE(0.0), P_RESCALE(0.0), P_INT8, P_CONSENSUS,
};
static const amg_param_spec della_params[] = {
    P_WEIGHT, P_DENSITY(DENSITY_DELLA), P_EPSILON, P_LAMBDA,
    P_NORMALIZE(1.0), P_RESCALE(1.0), P_INT8, P_CONSENSUS, P_RESCALE_MODE_P,
};
static const amg_param_spec della_linear_params[] = {
    P_WEIGHT, P_DENSITY(DENSITY_DELLA), P_EPSILON, P_LAMBDA,
    P_NORMALIZE(0.0), P_RESCALE(1.0), P_INT8, P_RESCALE_MODE_P,
};

static const amg_param_spec sce_params[] = {
    { SPEC, .type = AMG_PARAM_F64, .scope = AMG_SCOPE_GLOBAL,
      .flags = AMG_PARAM_GRADIENT | AMG_PARAM_HAS_MIN | AMG_PARAM_HAS_MAX,
      .name = "select_topk", .def = 1.0, .min = 0.0, .max = 1.0,
      .help = "share of the elements of largest variance across the task "
              "vectors kept" },
    P_INT8,
};

static const gta_method ta_method = { GTA_SPARSE_NONE, 0 };
static const gta_method ties_method = { GTA_SPARSE_MAGNITUDE, 1 };
static const gta_method dare_ties_method = { GTA_SPARSE_RANDOM, 1 };
static const gta_method dare_linear_method = { GTA_SPARSE_RANDOM, 0 };
static const gta_method breadcrumbs_method = { GTA_SPARSE_OUTLIERS, 0 };
static const gta_method breadcrumbs_ties_method = { GTA_SPARSE_OUTLIERS, 1 };
static const gta_method della_method = { GTA_SPARSE_DELLA, 1 };
static const gta_method della_linear_method = { GTA_SPARSE_DELLA, 0 };

#define CREATE(fn, method)                                                    \
    static int32_t fn(amg_ctx *ctx, const amg_host_api *host,                 \
                      const amg_params *global, void **inst)                  \
    {                                                                         \
        (void)ctx;                                                            \
        (void)host;                                                           \
        (void)global;                                                         \
        *inst = gta_instance(&(method));                                      \
        return AMG_OK;                                                        \
    }

CREATE(ta_create, ta_method)
CREATE(ties_create, ties_method)
CREATE(dare_ties_create, dare_ties_method)
CREATE(dare_linear_create, dare_linear_method)
CREATE(breadcrumbs_create, breadcrumbs_method)
CREATE(breadcrumbs_ties_create, breadcrumbs_ties_method)
CREATE(della_create, della_method)
CREATE(della_linear_create, della_linear_method)

#define COMMON_HELP                                                           \
    "Every model needs a base: d_i = model_i - base, in f32. weight\n"        \
    "(required) and the per-model parameters may be gradients or filter\n"    \
    "lists. int8_mask is accepted and ignored: in mergekit it only changes\n" \
    "the dtype of an intermediate sign tensor, not the result.\n"
#define TIES_HELP                                                             \
    "Consensus (mergekit's TIES rule): the sign elected per element is\n"     \
    "that of sum_i w_i d_i (a zero sum elects +); mixed = sum of the w_i d_i\n" \
    "whose sign agrees, divided by the sum of the agreeing w_i when\n"        \
    "normalize (a divisor below 1e-8 in size counts as 1; mergekit only\n"    \
    "replaces an exact 0). Option consensus: count elects the sign of\n"      \
    "sum_i sign(w_i d_i) instead (the count rule of mergekit's get_mask).\n"  \
    "The vote uses the weighted deltas as mergekit does (the TIES paper\n"    \
    "votes unweighted; a negative weight flips a model's vote here).\n"
#define PLAIN_HELP                                                            \
    "mixed = sum_i w_i d_i (f32, models in order), divided by sum_i w_i\n"    \
    "when normalize (a sum below 1e-8 in size counts as 1).\n"
#define TAIL_HELP                                                             \
    "out = base + lambda * mixed, rounded once to the output dtype.\n"
#define TOPK_HELP                                                             \
    "Selection is exact per tensor (two 64 Ki-bin histogram passes over\n"    \
    "the |d| bits, no sort): equal magnitudes go to the lower element\n"      \
    "index, where mergekit's argsort leaves the order unspecified. Top-k\n"   \
    "over the whole model (the TIES paper's global trim) is not offered.\n"
#define RESCALE_L1_HELP                                                       \
    "rescale multiplies each sparsified d_i by sum|d_i| / sum|kept d_i|\n"    \
    "(per tensor; skipped when either is below 1e-7), restoring its L1\n"     \
    "norm as mergekit does; norms are summed in f64.\n"

static const amg_strategy ta_strategy = {
    .struct_size = sizeof(amg_strategy),
    .id = "task_arithmetic",
    .summary = "base plus weighted task vectors (mergekit's task_arithmetic)",
    .help =
        "Task arithmetic (Ilharco et al., arXiv 2212.04089), as mergekit's\n"
        "task_arithmetic.\n\n" COMMON_HELP "\n" PLAIN_HELP TAIL_HELP "\n"
        "Defaults: normalize false, lambda 1. density and rescale are\n"
        "accepted and have no effect, as in mergekit.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_ELEMENTWISE |
            AMG_CAP_NEEDS_BASE | AMG_CAP_REENTRANT,
    .min_inputs = 1,
    .max_inputs = GTA_MAX_INPUTS,
    .n_params = N_OF(ta_params),
    .params = ta_params,
    .create = ta_create,
    .merge = gta_task_arithmetic_merge,
};

static const amg_strategy ties_strategy = {
    .struct_size = sizeof(amg_strategy),
    .reduce_passes = 2,
    .id = "ties",
    .summary = "trim, elect sign, disjoint merge (mergekit's ties)",
    .help =
        "TIES-merging (Yadav et al., arXiv 2306.01708), as mergekit's ties.\n"
        "\n" COMMON_HELP "\n"
        "Trim: each d_i keeps its k = int(density_i * numel) largest |d|\n"
        "elements of the tensor, the rest set to 0; density 1 keeps all.\n"
        "A k of 0 fails, naming the tensor (mergekit asserts).\n"
        TOPK_HELP "\n" TIES_HELP TAIL_HELP "\n" RESCALE_L1_HELP "\n"
        "Defaults: density 1, normalize true, rescale false, lambda 1,\n"
        "consensus sum. At most 32 models.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_NEEDS_BASE |
            AMG_CAP_REENTRANT | AMG_CAP_TWO_PASS,
    .min_inputs = 1,
    .max_inputs = GTA_MAX_INPUTS,
    .n_params = N_OF(ties_params),
    .params = ties_params,
    .create = ties_create,
    .merge = gta_topk_merge,
    .stats_bytes = sizeof(gta_stats),
    .reduce = gta_topk_reduce,
    .apply = gta_topk_apply,
};

#define DARE_HELP                                                             \
    "Drop: each element of d_i is kept with probability density_i and\n"      \
    "zeroed otherwise (density 1 keeps all). Masks come from amalgam's\n"     \
    "counter-based RNG (Philox4x32-10) keyed by the pipeline seed, the\n"     \
    "tensor name, the model's index (stream) and the element index, so\n"     \
    "they are the same on any -j, chunking or device; mergekit draws from\n"  \
    "torch's global RNG, so its masks differ.\n\n"                            \
    "rescale (default true), rescale_mode l1 (default): "                     \
    "sum|d_i| / sum|kept d_i|\nper tensor (skipped when either is below "    \
    "1e-7), as mergekit does.\nrescale_mode inverse: kept elements times "    \
    "1/density_i, the DARE\npaper's rule (Yu et al., arXiv 2311.03099).\n"

static const amg_strategy dare_ties_strategy = {
    .struct_size = sizeof(amg_strategy),
    .reduce_passes = 1,
    .id = "dare_ties",
    .summary = "random drop and rescale, then TIES consensus (mergekit's "
               "dare_ties)",
    .help =
        "DARE with TIES sign consensus, as mergekit's dare_ties (no second\n"
        "trim).\n\n" COMMON_HELP "\n" DARE_HELP "\n" TIES_HELP TAIL_HELP "\n"
        "Defaults: density 1, normalize false, rescale true, rescale_mode\n"
        "l1, lambda 1, consensus sum. At most 32 models.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_NEEDS_BASE |
            AMG_CAP_REENTRANT | AMG_CAP_TWO_PASS | AMG_CAP_USES_RNG,
    .min_inputs = 1,
    .max_inputs = GTA_MAX_INPUTS,
    .n_params = N_OF(dare_ties_params),
    .params = dare_ties_params,
    .create = dare_ties_create,
    .merge = gta_dare_merge,
    .stats_bytes = sizeof(gta_mask_stats),
    .reduce = gta_dare_reduce,
    .apply = gta_dare_apply,
};

static const amg_strategy dare_linear_strategy = {
    .struct_size = sizeof(amg_strategy),
    .reduce_passes = 1,
    .id = "dare_linear",
    .summary = "random drop and rescale, then a weighted sum (mergekit's "
               "dare_linear)",
    .help =
        "DARE (Yu et al., arXiv 2311.03099), as mergekit's dare_linear.\n\n"
        COMMON_HELP "\n" DARE_HELP "\n" PLAIN_HELP TAIL_HELP "\n"
        "Defaults: density 1, normalize false, rescale true, rescale_mode\n"
        "l1, lambda 1. At most 32 models.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_NEEDS_BASE |
            AMG_CAP_REENTRANT | AMG_CAP_TWO_PASS | AMG_CAP_USES_RNG,
    .min_inputs = 1,
    .max_inputs = GTA_MAX_INPUTS,
    .n_params = N_OF(dare_linear_params),
    .params = dare_linear_params,
    .create = dare_linear_create,
    .merge = gta_dare_merge,
    .stats_bytes = sizeof(gta_mask_stats),
    .reduce = gta_dare_reduce,
    .apply = gta_dare_apply,
};

#define BREADCRUMBS_HELP                                                      \
    "Drop outliers and small values (mergekit's magnitude_outliers): with\n"  \
    "N = numel, target = int(density_i * N), n_top = int(gamma_i * N),\n"     \
    "n_bot = N - target - n_top (if negative, n_top += n_bot, n_bot = 0),\n"  \
    "d_i keeps the elements ranked n_top .. N - n_bot - 1 by |d|, largest\n"  \
    "first; density 1 keeps all. n_top = 0 (gamma * N < 1, e.g. small\n"   \
    "norm vectors) drops nothing from the top, as mergekit 0.1.5 does\n"     \
    "(older mergekit releases zeroed the whole task vector there). mergekit\n" \
    "drops per tensor; the paper (arXiv 2312.06795) per row.\n"

static const amg_strategy breadcrumbs_strategy = {
    .struct_size = sizeof(amg_strategy),
    .reduce_passes = 2,
    .id = "breadcrumbs",
    .summary = "drop largest and smallest deltas, then sum (mergekit's "
               "breadcrumbs)",
    .help =
        "Model Breadcrumbs, as mergekit's breadcrumbs.\n\n" COMMON_HELP "\n"
        BREADCRUMBS_HELP TOPK_HELP "\n" PLAIN_HELP TAIL_HELP "\n"
        RESCALE_L1_HELP "\n"
        "Defaults: density 1, gamma 0.01, normalize false, rescale false,\n"
        "lambda 1. At most 32 models.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_NEEDS_BASE |
            AMG_CAP_REENTRANT | AMG_CAP_TWO_PASS,
    .min_inputs = 1,
    .max_inputs = GTA_MAX_INPUTS,
    .n_params = N_OF(breadcrumbs_params),
    .params = breadcrumbs_params,
    .create = breadcrumbs_create,
    .merge = gta_topk_merge,
    .stats_bytes = sizeof(gta_stats),
    .reduce = gta_topk_reduce,
    .apply = gta_topk_apply,
};

static const amg_strategy breadcrumbs_ties_strategy = {
    .struct_size = sizeof(amg_strategy),
    .reduce_passes = 2,
    .id = "breadcrumbs_ties",
    .summary = "breadcrumbs with TIES sign consensus (mergekit's "
               "breadcrumbs_ties)",
    .help =
        "Model Breadcrumbs with TIES consensus, as mergekit's\n"
        "breadcrumbs_ties.\n\n" COMMON_HELP "\n" BREADCRUMBS_HELP TOPK_HELP
        "\n" TIES_HELP TAIL_HELP "\n" RESCALE_L1_HELP "\n"
        "Defaults: density 1, gamma 0.01, normalize false, rescale false,\n"
        "lambda 1, consensus sum. At most 32 models.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_NEEDS_BASE |
            AMG_CAP_REENTRANT | AMG_CAP_TWO_PASS,
    .min_inputs = 1,
    .max_inputs = GTA_MAX_INPUTS,
    .n_params = N_OF(breadcrumbs_ties_params),
    .params = breadcrumbs_ties_params,
    .create = breadcrumbs_ties_create,
    .merge = gta_topk_merge,
    .stats_bytes = sizeof(gta_stats),
    .reduce = gta_topk_reduce,
    .apply = gta_topk_apply,
};

#define DELLA_HELP                                                            \
    "MagPrune (mergekit's della_magprune): in each row of d_i (a 1-D\n"       \
    "tensor is one row), the element of magnitude rank r (1..n, smallest\n"   \
    "first) is kept with probability p = density_i - epsilon_i +\n"          \
    "2 epsilon_i (r - 1) / (n - 1), in f32 as mergekit computes it, and\n"    \
    "zeroed otherwise. Equal magnitudes rank by lower index (mergekit's\n"    \
    "argsort leaves that open); a row of one element has p = density -\n"    \
    "epsilon (mergekit divides 0 by 0). Tensors of 3 or more dimensions\n"    \
    "rank over each dim-0 slice; mergekit ranks along dim 1 only.\n"         \
    "density 1 keeps all, density 0 zeroes d_i; otherwise density +/-\n"     \
    "epsilon must lie inside (0, 1) or the merge fails, as in mergekit.\n"   \
    "Draws are DARE's: counter-based Philox keyed by the pipeline seed,\n"    \
    "the tensor name, the model's index and the element index, the same\n"    \
    "on any -j, chunking or device; mergekit's torch RNG differs.\n\n"        \
    "rescale (default true), rescale_mode l1 (default): "                     \
    "sum|d_i| / sum|kept d_i|\nper tensor (skipped when either is below "    \
    "1e-7), as mergekit does.\nrescale_mode inverse: kept elements times "    \
    "1/p, the DELLA paper's\nrule (Deep et al., arXiv 2406.11617).\n"

static const amg_strategy della_strategy = {
    .struct_size = sizeof(amg_strategy),
    .reduce_passes = 1,
    .id = "della",
    .summary = "drop by magnitude rank, rescale, then TIES consensus "
               "(mergekit's della)",
    .help =
        "DELLA-merging, as mergekit's della.\n\n" COMMON_HELP "\n"
        DELLA_HELP "\n" TIES_HELP TAIL_HELP "\n"
        "Defaults: density 1, epsilon 0.15, normalize true, rescale true,\n"
        "rescale_mode l1, lambda 1, consensus sum. At most 32 models.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_NEEDS_BASE |
            AMG_CAP_REENTRANT | AMG_CAP_TWO_PASS | AMG_CAP_USES_RNG,
    .min_inputs = 1,
    .max_inputs = GTA_MAX_INPUTS,
    .n_params = N_OF(della_params),
    .params = della_params,
    .create = della_create,
    .merge = gta_della_merge,
    .stats_bytes = sizeof(gta_mask_stats),
    .reduce = gta_della_reduce,
    .apply = gta_della_apply,
};

static const amg_strategy della_linear_strategy = {
    .struct_size = sizeof(amg_strategy),
    .reduce_passes = 1,
    .id = "della_linear",
    .summary = "drop by magnitude rank, rescale, then a weighted sum "
               "(mergekit's della_linear)",
    .help =
        "DELLA without sign consensus, as mergekit's della_linear.\n\n"
        COMMON_HELP "\n" DELLA_HELP "\n" PLAIN_HELP TAIL_HELP "\n"
        "Defaults: density 1, epsilon 0.15, normalize false, rescale true,\n"
        "rescale_mode l1, lambda 1. At most 32 models.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_NEEDS_BASE |
            AMG_CAP_REENTRANT | AMG_CAP_TWO_PASS | AMG_CAP_USES_RNG,
    .min_inputs = 1,
    .max_inputs = GTA_MAX_INPUTS,
    .n_params = N_OF(della_linear_params),
    .params = della_linear_params,
    .create = della_linear_create,
    .merge = gta_della_merge,
    .stats_bytes = sizeof(gta_mask_stats),
    .reduce = gta_della_reduce,
    .apply = gta_della_apply,
};

static const amg_strategy sce_strategy = {
    .struct_size = sizeof(amg_strategy),
    .reduce_passes = GTA_SCE_PASSES,
    .id = "sce",
    .summary = "select by variance, weight by energy, erase by sign "
               "(mergekit's sce)",
    .help =
        "SCE (select, calculate, erase; FuseChat, Wan et al., arXiv\n"
        "2408.07990), as mergekit's sce. Needs a base; models take no\n"
        "weight or density. TV_i = model_i - base (f32).\n\n"
        "Select (select_topk < 1): var = the population variance over the\n"
        "models of TV at each element; k = int(count_nonzero(var) *\n"
        "select_topk) (in f32, as torch computes it); every TV_i keeps the k\n"
        "elements of largest var and is zeroed elsewhere; k = 0 or\n"
        "select_topk 0 zeroes all. Equal variances go to the lower element\n"
        "index (exact, two 64 Ki-bin histogram passes; torch.topk leaves the\n"
        "order open). var is f32: mean = sum_i (1/N) TV_i, var = sum_i (1/N)\n"
        "(TV_i - mean)^2, i in order: it may differ from torch.var in the\n"
        "last bits, so variances within a rounding of the k-th largest may\n"
        "be picked differently.\n\n"
        "Calculate: w_i = mean(TV_i^2) over the tensor (after selection),\n"
        "divided by sum_j of them; 1/N each when that sum is below 1e-6.\n"
        "Sums in f64, rows in order, each w_i rounded once to f32.\n\n"
        "Erase: the sign elected per element is that of sum_i TV_i (a zero\n"
        "sum elects +); erase_i = TV_i nonzero and of that sign.\n\n"
        "out = base + sum_i w_i erase_i TV_i / max(sum_i w_i erase_i, 1e-6),\n"
        "in f32, rounded once to the output dtype. NaN variances are never\n"
        "selected (torch counts and ranks them first).\n\n"
        "Default: select_topk 1 (no selection). int8_mask is accepted and\n"
        "ignored. At most 32 models.",
    .caps = AMG_CAP_CPU | AMG_CAP_CUDA | AMG_CAP_NEEDS_BASE |
            AMG_CAP_REENTRANT | AMG_CAP_TWO_PASS,
    .min_inputs = 1,
    .max_inputs = GTA_MAX_INPUTS,
    .n_params = N_OF(sce_params),
    .params = sce_params,
    .merge = gta_sce_merge,
    .stats_bytes = sizeof(gta_sce_stats),
    .reduce = gta_sce_reduce,
    .apply = gta_sce_apply,
};

static const amg_strategy *const gta_strategies[] = {
    &ta_strategy, &ties_strategy, &dare_ties_strategy, &dare_linear_strategy,
    &breadcrumbs_strategy, &breadcrumbs_ties_strategy, &della_strategy,
    &della_linear_strategy, &sce_strategy,
};

static const amg_module gta_module = {
    AMG_MODULE_HEAD,
    .name = "gta",
    .version = AMG_VERSION_STRING,
    .license = "Apache-2.0",
    .description = "generalized task arithmetic: task_arithmetic, ties, "
                   "dare, breadcrumbs, della, sce (mergekit's GTA family)",
    .n_strategies = N_OF(gta_strategies),
    .strategies = gta_strategies,
};

AMG_PLUGIN_DEFINE(gta_module)
