/* calib.h - calibration data and the block-by-block runner every method uses.
 *
 * The runner keeps the hidden states entering the current block for all calibration
 * windows (nsamples x seqlen x n_embd floats). For block l a method asks for the statistics
 * it needs at the four capture points (the inputs of q/k/v, o, gate/up, down: each shared
 * input is measured once), changes the block's weights, then runner_advance re-runs the
 * (now pruned) block to produce the inputs of block l+1. */
#ifndef PARE_CALIB_H
#define PARE_CALIB_H

#include "model/forward.h"

enum { CALIB_RANDOM = 0, CALIB_FIRST = 1 };

typedef struct calib_data {
    int n, T;          /* n windows of T tokens */
    int32_t *ids;      /* n * T */
    int64_t n_text_tokens;
} calib_data;

/* Tokenize the whole file once with one BOS in front (as `pare ppl` does), then take
 * CALIB_FIRST: the first n consecutive windows; CALIB_RANDOM: n windows whose starts are
 * drawn uniformly from [0, n_tokens - T] with a seeded generator (reproducible). */
pare_status calib_from_text(const pare_vocab *v, const char *path, int nsamples, int seqlen, uint64_t seed, int order,
                            calib_data *out);
void calib_free(calib_data *cd);

/* Statistics wanted at a capture point (bit flags). */
enum {
    STAT_SUMSQ = 1,    /* sum over tokens of x_j^2 (Wanda's ||X_j||^2) */
    STAT_MINMAX = 2,   /* per-channel min and max */
    STAT_HIST = 4,     /* per-channel histogram of K bins on [min, max] (needs min/max from a previous pass) */
    STAT_GRAM = 8,     /* X^T X (width x width), F32 accumulated in F64 blocks */
    STAT_SUM = 16      /* per-channel sum (means, FLAP's fluctuation) */
};

typedef struct calib_stats {
    int width;
    unsigned want;
    int64_t ntok;
    double *sumsq, *sum;     /* width */
    float *min, *max;        /* width */
    int K;                   /* histogram bins */
    uint32_t *hist;          /* width * K */
    double *gram;            /* width * width (row-major, symmetric) */
} calib_stats;

void calib_stats_free(calib_stats *s);

typedef struct calib_runner {
    const pare_model *m;
    const calib_data *cd;
    pare_ctx *ctx;
    float *x;                /* n * T * E: inputs of the current block */
    float *y;                /* scratch of the same size */
    int block;               /* index of the block whose inputs x holds */
    int skip_first_token;    /* exclude position 0 (BOS) from statistics */
    calib_stats *st;         /* during a collect pass: FWD_N_POINTS entries */
} calib_runner;

pare_status runner_new(const pare_model *m, const calib_data *cd, calib_runner **out);
/* An upper estimate of the heap a block-by-block pipeline over n windows of T tokens holds
 * at its peak: the activations (in and out), the engine context, with gram the layer Gram
 * matrices of one block (double) and a factorisation's copy of the widest, and float copies
 * of the two largest matrices of a block. What --max-memory checks before a run. */
size_t calib_plan_bytes(const pare_model *m, int n, int T, int gram);
void runner_free(calib_runner *r);
/* Run block l (== r->block) on all windows without changing x, accumulating the wanted
 * statistics at each capture point: want[p] for p in FWD_*; st must hold FWD_N_POINTS
 * entries (zeroed the first time; a HIST pass reuses the MINMAX of the same entries). */
pare_status runner_collect(calib_runner *r, const unsigned want[FWD_N_POINTS], int K, calib_stats *st);
/* runner_collect and runner_advance in one pass, for a method that does not change block
 * l's weights before the next block (scores only): the statistics, then x holds the inputs
 * of block l+1. Half the block passes of collect + advance. */
pare_status runner_collect_advance(calib_runner *r, const unsigned want[FWD_N_POINTS], int K, calib_stats *st);
/* Re-run block l with its current weights; its outputs become the inputs of block l+1.
 * Fails (naming the file) when an input file changed since it was mapped. */
pare_status runner_advance(calib_runner *r);
/* Total NLL (sum over windows of mean CE x (T-1)) of the current x through the remaining
 * blocks from `from` and the head, without changing x. Used by block-removal methods. */
pare_status runner_loss_from(calib_runner *r, int from, const unsigned char *skip, double *nll);

/* Entropy of a histogram of K bins holding n values: -sum p ln p (0 for an empty one). */
double hist_entropy(const uint32_t *h, int K);

#endif
