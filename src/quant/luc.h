/* luc.h - Edge-LLM's layer-wise unified compression (LUC, METHODS.md 9 A and B): per-block
 * sensitivity profiles, the LUC sparsity and bit-width policies, a size-budgeted search of
 * our own [O], and the compression pipeline every policy shares.
 *
 * Profile. For block l, on the calibration inputs entering it in the dense model, the
 * relative output MSE  err = sum (y - y_dense)^2 / sum y_dense^2  of the block's output
 * hidden state (residual included) when only its seven matrices are pruned (unstructured,
 * SparseGPT or Wanda, at each ratio), and when only they are rounded to nearest on the
 * generic symmetric grid intB-gG (each bit-width; 16: F16). The pruned / rounded matrices
 * are put in the block in the type compress would store them in, so ratio 0 and F16 on an
 * F16 model give exactly 0. e_l = the mean of the pruning errors over the ratios (9 A.2).
 *
 * Sizes. "dense" nominal bits of a block (the definition): b bits per weight + one
 * 16-bit scale per group, whatever the zeros (16 bits: F16, no scales). "sparse" (bitmap)
 * size: kept weights at b bits + a 1-bit mask per weight + the scales, or the dense size
 * when smaller. Only the sparse size depends on sparsity, so the budget search and the
 * Pareto comparison use it. Every other tensor counts at its stored size. */
#ifndef PARE_LUC_H
#define PARE_LUC_H

#include "prune/prune.h"
#include "quant/quant.h"

enum { LUC_MAX_RATIOS = 16, LUC_MAX_BITS = 8 };

typedef struct luc_profile_opts {
    int method;                          /* PRUNE_SPARSEGPT (default) or PRUNE_WANDA */
    int n_ratio;
    double ratio[LUC_MAX_RATIOS];        /* increasing, in [0, 1): 0.05 0.1 0.2 0.3 0.5 0.7 0.9 */
    int n_bits;
    int bits[LUC_MAX_BITS];              /* 2..8 or 16: 8 4 3 */
    int group;                           /* quantization group (128) */
    float percdamp;                      /* SparseGPT: 0.01 */
    int blocksize;                       /* SparseGPT: 128 */
    int loss;                            /* also the model-level loss change (see below) */
} luc_profile_opts;
void luc_profile_opts_default(luc_profile_opts *o);

typedef struct luc_profile {
    int n_layer, method, group;
    int n_ratio, n_bits;
    double ratio[LUC_MAX_RATIOS];
    int bits[LUC_MAX_BITS];
    double *prune_err;                   /* n_layer x n_ratio */
    double *quant_err;                   /* n_layer x n_bits */
    double *e;                           /* n_layer: mean of prune_err over the ratios */
    int has_loss;
    double *prune_loss, *quant_loss;     /* like prune_err / quant_err: the calibration loss
                                            change, mean NLL per token (NULL without has_loss) */
    double base_loss;                    /* the dense model's mean NLL on the calibration */
    double seconds;
} luc_profile;

/* Loss profile (opts.loss, [O]): for block l and each setting, the change in the mean
 * calibration NLL per token of the whole model when only block l is pruned or rounded (every
 * other block dense): the block's quantity on the model's own scale, where the relative
 * output error weighs a block by the size of its output. Costs (L + 1) / 2 times the block
 * passes of the error profile. */

/* Allocate p's arrays for n_layer blocks (the settings and has_loss already set). */
pare_status luc_profile_alloc(luc_profile *p, int n_layer);
void luc_profile_free(luc_profile *p);
/* Measure the profile (m is left as it was). */
pare_status luc_profile_model(pare_model *m, const calib_data *cd, const luc_profile_opts *o, int show_progress,
                              luc_profile *p);
/* Block l's pruning error at sparsity s: piecewise linear through (0, 0) and the measured
 * ratios, the last segment extended (never below the last value). */
double luc_prune_err(const luc_profile *p, int l, double s);
/* Block l's rounding error at b bits: the measured value, 0 for b >= 16 when 16 was not
 * measured, NAN when b was not profiled. */
double luc_quant_err(const luc_profile *p, int l, int b);
/* The same two for the loss profile (p->has_loss). */
double luc_prune_loss(const luc_profile *p, int l, double s);
double luc_quant_loss(const luc_profile *p, int l, int b);

/* ---- policies -------------------------------------------------------------------------- */
/* METHODS.md 9 A.3: s^_l = 1 - (e_l - min e)/(max e - min e) (all 1 when every e is equal),
 * s_l = c s^_l with c = target L / sum s^; then (water filling) blocks above cap are set to
 * cap and c is recomputed on the others until none is above, so the mean stays the target;
 * when only blocks with s^ = 0 are left they share the rest equally. Non-increasing in e_l.
 * target must be in [0, cap], cap in (0, 1). */
pare_status luc_sparsity_policy(const double *e, int L, double target, double cap, double *s);
/* METHODS.md 9 B: bits_l = high when qs_l > mean(qs), else base. */
void luc_bits_policy(const double *qs, int L, int base, int high, int *bits);

/* Per-block storage of a model's seven matrices at a quantization group. */
typedef struct luc_sizes {
    int n_layer, group;
    int64_t *numel;                      /* weights */
    int64_t *ngroups;                    /* scales at `group` (a row's last group may be short) */
    double fixed_bytes;                  /* every other tensor as stored */
} luc_sizes;
pare_status luc_sizes_of(const pare_model *m, int group, luc_sizes *z);
void luc_sizes_free(luc_sizes *z);
/* Nominal bits of block l with a fraction s of zeros at b bits (sparse: the bitmap size). */
double luc_block_bits(const luc_sizes *z, int l, double s, int b, int sparse);

/* Budgeted search [O]: per block one (s, b) of the given sets minimising the sum over blocks
 * of luc_prune_err(s) + luc_quant_err(b) (errors taken as additive; with objective
 * LUC_OBJ_LOSS the loss changes luc_prune_loss + luc_quant_loss) with the sparse nominal
 * size of the model <= budget_bytes: a multiple-choice knapsack solved exactly by dynamic
 * programming over blocks on the budget cut into `units` steps, each option's size rounded
 * up to whole steps (so the result never exceeds the budget; it is optimal up to that
 * rounding). err/bytes (may be NULL): the total estimated error and the sparse size. */
typedef struct luc_budget_opts {
    int n_s;
    double s[LUC_MAX_RATIOS];            /* 0 0.1 .. 0.8 */
    int n_b;
    int b[LUC_MAX_BITS];                 /* 3 4 8 */
    int units;                           /* 4096 */
    int objective;                       /* LUC_OBJ_ERR (default) or LUC_OBJ_LOSS */
} luc_budget_opts;
enum { LUC_OBJ_ERR = 0, LUC_OBJ_LOSS = 1 };
void luc_budget_opts_default(luc_budget_opts *o);
/* The estimated cost of (s, b) in block l under o's objective (what the search sums). */
double luc_option_cost(const luc_profile *p, const luc_budget_opts *o, int l, double s, int b);
pare_status luc_budget_search(const luc_profile *p, const luc_sizes *z, double budget_bytes, const luc_budget_opts *o,
                              float *s, int *bits, double *err, double *bytes);

/* LUC at a size [O]: the target sparsity S in [0, cap] for which the sparse nominal size of
 * the LUC policy (luc_sparsity_policy(e, S, cap), with the given per-block bits) is the
 * largest not above budget_bytes, by bisection (the size does not increase with S). s: the
 * policy at that S; *target: S. Fails when even S = cap is above the budget. */
pare_status luc_policy_at_size(const luc_profile *p, const luc_sizes *z, const int *bits, double cap,
                               double budget_bytes, double *s, double *target);

/* Verification [O]: the candidates a budget search can check by the calibration loss of the
 * compressed model. luc_uniform_fits: for each bit-width o->b[i], the smallest sparsity of
 * o->s whose uniform allocation (every block at it) fits budget_bytes; returns how many fit,
 * their (s, b) in s_out / b_out (room for o->n_b). luc_calib_loss: m's mean NLL per token on
 * cd (a whole-model forward over the windows). */
int luc_uniform_fits(const luc_sizes *z, double budget_bytes, const luc_budget_opts *o, double *s_out, int *b_out);
pare_status luc_calib_loss(const pare_model *m, const calib_data *cd, double *loss);

/* ---- the pipeline ---------------------------------------------------------------------- */
typedef struct luc_compress_opts {
    prune_opts prune;                    /* method (SparseGPT), percdamp, blocksize */
    int group;                           /* 128 */
    int quant_method;                    /* QUANT_RTN or QUANT_GPTQ */
    gptq_opts gptq;
} luc_compress_opts;
void luc_compress_opts_default(luc_compress_opts *o);

typedef struct luc_report {
    int n_layer;
    double *sparsity;                    /* per block: min(the pruning mask's zeros, the zeros of
                                            the stored weights) per weight; RTN keeps every pruned
                                            zero, GPTQ's error feedback may refill some */
    int *bits;
    double dense_bytes, sparse_bytes;    /* the seven matrices of every block, nominal */
    double fixed_bytes;                  /* every other tensor as stored */
    double seconds;
} luc_report;
void luc_report_free(luc_report *r);

/* Block l pruned at sparsity[l] (0: left as it is) by prune_model (sequential, METHODS.md
 * 0.2), then every block quantized at bits[l] (intB-gG symmetric; 16: F16) by quant_model:
 * the same two passes `pare prune` and `pare quantize` make, per block. cd may be NULL when
 * nothing is pruned and the method is RTN. */
pare_status luc_compress(pare_model *m, const calib_data *cd, const float *sparsity, const int *bits,
                         const luc_compress_opts *o, int show_progress, luc_report *rep);

#endif
