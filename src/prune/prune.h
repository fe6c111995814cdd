/* prune.h - one-shot pruning: masks and the methods that choose them.
 *
 * All methods share one shape: statistics from calibration (runner) -> scores -> mask
 * (and, for E-Sparse, a channel permutation) -> optional weight update. Matrices are
 * F32, row-major, rows x cols = d_out x d_in (a row per output unit). */
#ifndef PARE_PRUNE_H
#define PARE_PRUNE_H

#include "calib/calib.h"

enum { PRUNE_MAGNITUDE = 0, PRUNE_WANDA = 1, PRUNE_SPARSEGPT = 2, PRUNE_ESPARSE = 3 };

typedef struct prune_opts {
    int method;
    float sparsity;          /* unstructured fraction zeroed (when nm_m == 0) */
    int nm_n, nm_m;          /* keep N of every M consecutive inputs (nm_m == 0: unstructured) */
    /* SparseGPT */
    float percdamp;          /* 0.01 */
    int blocksize;           /* 128 */
    /* E-Sparse (METHODS.md 6); every [O] choice is a flag */
    int es_entropy;          /* use the entropy term (0: the metric is Wanda's) */
    float es_beta;           /* < 0: per layer es_beta_rel * mean(nu)/mean(H) */
    float es_beta_rel;       /* scale of that per layer beta (1) */
    int es_combine;          /* 0 add: |W|(nu + beta H); 1 mul: |W| nu H */
    int es_bins;             /* histogram bins K (128) */
    int es_gns;              /* global naive shuffle */
    int es_lbs;              /* local block shuffle */
    int es_lbs_block;        /* channels per LBS block (64) */
    int es_lbs_iters;        /* swaps per block at most (100) */
    int es_skip_bos;         /* drop position 0 from the statistics */
    /* per block unstructured sparsity (n_layer entries, each in [0, 1); a block at 0 is left
     * as it is) instead of `sparsity`, or NULL; not with N:M (LUC, src/quant/luc.c) */
    const float *layer_sparsity;
} prune_opts;

void prune_opts_default(prune_opts *o);

/* ---- masks (keep[i] = 1 keeps W[i]) ------------------------------------------------ */
/* Per row, per group of m consecutive columns starting at column 0, keep the n largest
 * scores; ties: the lower column index is pruned first (stable). cols % m == 0. */
void mask_nm(const float *S, int64_t rows, int64_t cols, int n, int m, uint8_t *keep);
/* Per row: zero the floor(cols * s) lowest scores (stable). */
void mask_rows(const float *S, int64_t rows, int64_t cols, float s, uint8_t *keep);
/* Per matrix: t = sorted(|S|)[floor(s * numel)], zero every entry with S <= t. */
void mask_matrix(const float *S, int64_t rows, int64_t cols, float s, uint8_t *keep);
/* W[i] = 0 where !keep[i]; returns the number of zeros in W afterwards. */
int64_t mask_apply(float *W, const uint8_t *keep, int64_t n);

/* ---- methods on one matrix ---------------------------------------------------------- */
/* Magnitude / Wanda: choose the mask by the pattern in o and zero W. sumsq: per-column
 * sum of x_j^2 (Wanda), ignored by magnitude. */
void prune_magnitude(float *W, int64_t rows, int64_t cols, const prune_opts *o);
void prune_wanda(float *W, int64_t rows, int64_t cols, const double *sumsq, const prune_opts *o);
/* SparseGPT on W given the Gram matrix G = sum x x^T (cols x cols, double); ntok tokens. */
pare_status prune_sparsegpt(float *W, int64_t rows, int64_t cols, const double *G, int64_t ntok, const prune_opts *o);
/* The Hessian steps SparseGPT and GPTQ share (METHODS.md 3 (a) 1-4). hessian_from_gram:
 * H = 2/ntok G (cols x cols, a new buffer; NULL when out of memory), dead inputs (H_jj = 0)
 * get H_jj = 1 and W[:, j] = 0. hessian_inverse_factor: H += percdamp mean(diag H) I, then
 * U (n x n F32, row-major) = the upper Cholesky factor of H^-1; H is destroyed; errors are
 * prefixed with who. */
double *hessian_from_gram(const double *G, int64_t ntok, float *W, int64_t rows, int64_t cols);
pare_status hessian_inverse_factor(double *H, int n, float percdamp, float *U, const char *who);

#endif

/* ---- E-Sparse (esparse.c) -------------------------------------------------------------- */
/* Prune the nW matrices that read one shared input (width cols) with E-Sparse, given the
 * input's statistics (SUMSQ, MINMAX and HIST). Writes the channel order used (perm[k] =
 * original channel at permuted position k; identity when no shuffle) and zeroes W in the
 * original column order: in permuted order every row holds exactly N of each M. */
pare_status esparse_prune_input(float **W, const int64_t *rows, int nW, int64_t cols, const calib_stats *st,
                                const prune_opts *o, int32_t *perm);

/* ---- the sequential pipeline (driver.c) ------------------------------------------------- */
typedef struct prune_tensor_info { char name[64]; int64_t numel, zeros; } prune_tensor_info;
typedef struct prune_report {
    int n;                       /* tensors pruned */
    prune_tensor_info *t;
    int64_t numel, zeros;
    double seconds;
} prune_report;
/* Prune every block of m in place (block by block, METHODS.md 0.2). Pruned matrices become
 * owned buffers of their original type. E-Sparse permutations of the q/k/v and o inputs
 * are stored in m->layers[l].perm (the weights stay in the original column order); the
 * permutation of down's input is folded into gate/up rows and down columns. */
pare_status prune_model(pare_model *m, const calib_data *cd, const prune_opts *o, int show_progress, prune_report *rep);
void prune_report_free(prune_report *r);

/* ==== Structured pruning: Numerical Pruning and structured baselines (issue 7) ===========
 * numerical.c (Newton score, compensation), flap.c (FLAP / magnitude / Wanda unit scores),
 * taylor.c (LLM-Pruner's first-order Taylor score, from one backward pass of the whole
 * model), structured.c (unit selection, physical removal, the pipeline). METHODS.md 8, 10, 11.
 * Units: a query head (hd rows of q + hd columns of o; a KV head goes with the last query
 * head of its group) and an FFN channel (a row of gate and up + a column of down). */
#ifndef PARE_PRUNE_STRUCTURED_H
#define PARE_PRUNE_STRUCTURED_H

enum { SP_NUMERICAL = 0, SP_FLAP_NOBIAS = 1, SP_MAGNITUDE = 2, SP_WANDA = 3, SP_TAYLOR = 4, SP_FLAP = 5 };
enum { SP_TARGET_PARAMS = 0, SP_TARGET_UNITS = 1, SP_TARGET_TYPES = 2 };
enum { SP_STRUCT_DEFAULT = -1, SP_STRUCT_GLOBAL = 0, SP_STRUCT_UNIFORM = 1 };

typedef struct sprune_opts {
    int method;              /* SP_* */
    int target;              /* SP_TARGET_PARAMS: ratio = fraction of the attention + MLP weights
                                removed; SP_TARGET_UNITS: ratio = rho, floor(rho (sum H + sum d_ff))
                                units removed (the paper's rule); SP_TARGET_TYPES: head_ratio of the
                                heads and ffn_ratio of the FFN channels */
    double ratio, head_ratio, ffn_ratio;
    int structure;           /* SP_STRUCT_*: global ranking over all layers, or the same share in
                                every layer; DEFAULT: global for numerical/flap, uniform otherwise */
    int min_heads, min_ffn;  /* every layer keeps at least this many (1, 1: llama.cpp's llama
                                architecture has no attention-free or FFN-free layer) */
    int mask_only;           /* zero the pruned units' o/down columns instead of removing them */
    /* Numerical Pruning ([O] choices of METHODS.md 8, each a flag) */
    int compensate;          /* least-squares refit of the kept o/down columns (1) */
    double np_lambda;        /* lambda of the relaxed objective (1) */
    int np_iters;            /* Newton steps (1: exact for the quadratic objective) */
    int np_normalize;        /* X <- X / ||X||_F per layer before the score (1) */
    double np_damp;          /* Hessian ridge eps = np_damp * mean diag A (1e-6) */
    double np_gamma;         /* compensation ridge gamma = np_gamma * mean diag G_SS (0.01) */
    int np_sequential;       /* compensation on the inputs of the already-pruned blocks (1) */
} sprune_opts;

void sprune_opts_default(sprune_opts *o);
const char *sprune_method_name(int method);

/* Per-layer scores (low = removed first) and keep masks. Head scores are comparable with
 * channel scores under the method's global ranking (numerical: alpha * mean z). */
typedef struct sprune_layer {
    int n_head, n_head_kv, n_ff;     /* before pruning */
    double *head_score, *ff_score;   /* n_head, n_ff */
    double *mean_o, *mean_ff;        /* flap: mean o / down input per channel (dense model), else NULL */
    uint8_t *keep_head, *keep_ff;    /* 1 = kept */
} sprune_layer;
typedef struct sprune_plan { int n_layer, n_embd, head_dim; sprune_layer *l; } sprune_plan;

pare_status sprune_plan_new(const pare_model *m, sprune_plan *p); /* all kept, scores 0 */
void sprune_plan_free(sprune_plan *p);
/* Choose the units to remove from the scores in p (sets keep_*). Head counts are rounded so
 * that every kept KV head keeps the same number of query heads; FFN channels then make up
 * the difference to the target. */
pare_status sprune_select(sprune_plan *p, const sprune_opts *o);
/* Weights (attention + MLP matrices) of the plan before (kept == 0) or after (kept == 1). */
int64_t sprune_plan_params(const sprune_plan *p, int kept);
int64_t sprune_plan_units(const sprune_plan *p, int kept);
/* Physically remove the units p does not keep: rows of q/k/v/gate/up, columns of o/down,
 * n_head/n_head_kv/n_ff updated, q/k rows stay in GGUF order per head; a layer left with no
 * head (no channel) loses its attention (FFN) tensors. Untouched layers keep their bytes.
 * Columns removed from a block-quantized matrix whose new width is not a multiple of the
 * block are stored F32. Re-binds the model. */
pare_status sprune_apply(pare_model *m, const sprune_plan *p);
/* Zero the o columns of the removed heads and the down columns of the removed channels
 * (the same function as sprune_apply; shapes unchanged). */
pare_status sprune_mask(pare_model *m, const sprune_plan *p);

/* ---- Numerical Pruning (numerical.c) ---------------------------------------------------- */
/* A = (P^T P) o G (D x D, row-major) for the output projection P (E x D, row-major) and the
 * Gram matrix G = X^T X of its input (D x D); normalize: G / tr(G) (X <- X / ||X||_F). */
pare_status np_build_A(const float *P, int64_t E, int D, const double *G, int normalize, double *A);
/* The relaxed objective f(z) = 1/2 (z-1)^T (A + eps I)(z-1) + lambda/2 (1^T z - r)^2 and
 * its gradient g = (A + eps I)(z - 1) + lambda (1^T z - r) 1. */
double np_objective(const double *A, int D, double lambda, double r, double eps, const double *z);
void np_gradient(const double *A, int D, double lambda, double r, double eps, const double *z, double *g);
/* Algorithm 1: z <- z - H^-1 g(z), H = A + eps I + lambda 1 1^T (one Cholesky), iters steps
 * from z0 (NULL: all ones). The objective is quadratic: one step lands on the minimum. */
pare_status np_newton(const double *A, int D, double lambda, double r, double eps, const double *z0, int iters,
                      double *z);
/* Channel scores z (D) of one output projection: A, eps = o->np_damp mean diag A,
 * r = (1 - rho) D, Newton. */
pare_status np_channel_scores(const float *P, int64_t E, int D, const double *G, double rho, const sprune_opts *o,
                              double *z);
/* Compensation (METHODS.md 8 a.6): with S the kept and Pr the removed columns of P (E x D,
 * double), P[:, S] += P[:, Pr] G[Pr, S] (G_SS + gamma I)^-1 and P[:, Pr] = 0, gamma =
 * gamma_rel * mean diag G_SS: the ridge least-squares refit of the kept columns to the
 * calibration outputs X P^T; it never increases ||X P^T - X P'^T||. */
pare_status np_compensate(double *P, int64_t E, int D, const double *G, const uint8_t *keep, double gamma_rel);

/* ---- FLAP / magnitude / Wanda unit scores (flap.c) -------------------------------------- */
/* FLAP's WIFV_j = Var(x_j) ||P[:, j]||^2 from an input's SUM and SUMSQ statistics. */
void flap_wifv(const float *P, int64_t E, int D, const calib_stats *st, double *wifv);
/* (x - mean) / std over n values (sample std; std 0: x - mean). */
void sp_standardize(double *x, int n);
/* FLAP's bias compensation b = P[:, removed] mean(x)[removed] (E values; `flap` adds it to the
 * o/down bias, `flap-nobias` leaves it out). */
void flap_bias(const float *P, int64_t E, int D, const double *mean, const uint8_t *keep, double *b);
/* FLAP's bias compensation for the units p removes, from the means its scores kept (before
 * sprune_apply / sprune_mask, which drop or zero the columns). */
pare_status flap_add_biases(pare_model *m, const sprune_plan *p);
/* Wanda-structured channel score: mean_i |P_ij| sqrt(sumsq_j / ntok). */
void wanda_struct_scores(const float *P, int64_t E, int D, const calib_stats *st, double *s);
/* Scores of every unit of layer l of m into p by method (magnitude needs no statistics;
 * o_st / down_st: the statistics of the o and down inputs). */
pare_status sprune_layer_scores(const pare_model *m, int l, const sprune_opts *o, const calib_stats *o_st,
                                const calib_stats *down_st, sprune_plan *p);

/* ---- LLM-Pruner's Taylor score (taylor.c; METHODS.md 10 a) ------------------------------- */
/* L = the mean next-token cross-entropy over every scored token of the calibration windows
 * (each window's first token is not scored), dL/dW of every attention and MLP matrix from
 * one backward pass of the whole model (the F32 training network, src/train/tnet.h;
 * windows in micro-batches, gradients accumulated), then per unit the sum of |w dL/dw| over
 * all its weights: a query head's q rows and o columns plus 1/group of its KV head's k and
 * v rows (a KV head is shared by its group, and goes only with the whole group [O]); an FFN
 * channel's gate and up rows and down column. Fills p->l[*].head_score / ff_score (larger =
 * more important); *loss (may be NULL) gets L. The gradients are freed before it returns. */
pare_status taylor_scores(const pare_model *m, const calib_data *cd, sprune_plan *p, int show_progress, double *loss);
/* The windows per backward pass (*B) and the heap (*bytes) taylor_scores takes for n windows
 * of T tokens: F32 copies of the non-F32 tensors, F32 gradients of every attention and MLP
 * matrix, the network's activations for B windows (micro-batches hold at most 256 MiB of
 * activations, at least one window). The mapped weights themselves are not counted. */
pare_status taylor_plan(const pare_model *m, int n, int T, int *B, size_t *bytes);

/* ---- the pipeline (structured.c) -------------------------------------------------------- */
typedef struct sprune_report {
    int n_layer;
    int64_t params_before, params_after;    /* whole model */
    int64_t block_before, block_after;      /* attention + MLP matrices */
    int64_t units_before, units_after;      /* query heads + FFN channels */
    int *heads_before, *heads_after, *kv_before, *kv_after, *ff_before, *ff_after;
    int structure;
    double calib_loss;                      /* taylor-struct: the calibration loss L; NAN otherwise */
    double seconds;
} sprune_report;
/* Dense pass for the scores (every block on the unpruned model; taylor: one forward and
 * backward pass of the whole model), selection, then for
 * numerical with compensation a sequential pass (METHODS.md 0.2; attention first, then the
 * MLP of the same block on the compensated attention) refitting o/down, then removal. */
pare_status prune_structured(pare_model *m, const calib_data *cd, const sprune_opts *o, int show_progress,
                             sprune_report *rep);
void sprune_report_free(sprune_report *r);

#endif /* PARE_PRUNE_STRUCTURED_H */

/* ==== Block removal: SLEB, SLEB one-shot, ShortGPT (issue 6; METHODS.md 7, 13) ==========
 * sleb.c (selection, calibration in the reference code's mode), src/model/blocks.c
 * (physical removal). Blocks are scored on calibration windows; the chosen blocks are then
 * deleted and the rest renumbered, so the output is a standard model with fewer blocks. */
#ifndef PARE_PRUNE_BLOCKS_H
#define PARE_PRUNE_BLOCKS_H

enum { BR_SLEB = 0, BR_SLEB_ONESHOT = 1, BR_SHORTGPT = 2 };

typedef struct blockrm_opts {
    int method;              /* BR_* */
    int n_remove;            /* K blocks to remove */
    int barrier;             /* the first and last alive blocks are never candidates (SLEB's
                                code: early_barrier = latter_barrier = 1); -1: the method's
                                default (1 for sleb and sleb-oneshot, 0 for shortgpt) */
    int bi_final_norm;       /* shortgpt: the last block's output is taken after the final
                                RMSNorm, as HF hidden_states[-1] (ShortGPT's code; 1) */
    int step_losses;         /* sleb-oneshot / shortgpt: also evaluate the calibration loss
                                after each of the K removals (1) */
    size_t cache_bytes;      /* sleb: memory for cached block inputs (0: 2 GiB) */
} blockrm_opts;

void blockrm_opts_default(blockrm_opts *o, int method);
const char *blockrm_method_name(int method);
/* K for a fraction r of n_layer blocks: ceil(r * n_layer) (SLEB's latency.py), at least 1. */
int blockrm_count_from_ratio(double r, int n_layer);

typedef struct blockrm_report {
    int method, barrier;
    int n_layer, k;          /* blocks before; blocks removed */
    int *removed;            /* k original block indices, in the order chosen (sleb: step by
                                step; one-shot methods: by increasing score) */
    double *loss;            /* k: total calibration NLL (sum over windows of mean CE x (T-1))
                                after the first 1..k removals; NAN when not evaluated */
    double dense_loss;       /* the same for the unpruned model */
    double *score;           /* n_layer: first-pass score per original block (sleb and
                                sleb-oneshot: loss without the block; shortgpt: BI); NAN for
                                blocks that are not candidates */
    int64_t windows, tokens; /* calibration windows; tokens scored by the losses */
    int threads;
    double seconds;
} blockrm_report;

/* Choose the blocks to remove (m is not changed). SLEB (METHODS.md 7 a): K times, for every
 * candidate alive block, the total NLL of the current model with it switched off; the argmin
 * (first on ties) is removed. sleb-oneshot: the K lowest of those losses on the dense model.
 * shortgpt (METHODS.md 13): BI_l = sum over tokens of 1 - cos(input, output) of block l on
 * the dense model, the K lowest. Windows are split over OpenMP threads; the result does not
 * depend on their number. */
pare_status blockrm_select(const pare_model *m, const calib_data *cd, const blockrm_opts *o, int show_progress,
                           blockrm_report *rep);
void blockrm_report_free(blockrm_report *r);

/* Calibration as SLEB's code builds it (utils/data_utils.py get_wikitext2_trainenc; METHODS.md
 * 7 d): the rows (lines, each with its '\n') of the file shuffled with the seed, the first
 * nsamples rows joined with "\n\n", tokenized once with one BOS, then floor(n_tokens / seqlen)
 * consecutive windows (tail dropped). */
pare_status calib_sleb_code(const pare_vocab *v, const char *path, int nsamples, int seqlen, uint64_t seed,
                            calib_data *out);

/* Delete blocks remove[0..k-1] (original indices, distinct) from m: their tensors are freed,
 * the remaining blk.N.* tensors renamed to consecutive N, the layers compacted, the model
 * re-bound. At least one block must remain. (src/model/blocks.c) */
pare_status model_remove_blocks(pare_model *m, const int *remove, int k);

#endif /* PARE_PRUNE_BLOCKS_H */
