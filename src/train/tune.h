/* tune.h - Edge-LLM adaptive layer tuning (METHODS.md 9 C, E): LoRA adapters tuned one
 * window of blocks at a time, each window ending in an early exit with its own head, so
 * the backward pass never goes below the window and the blocks below it keep no
 * activations; the blocks above the exit do not run at all. The vanilla baseline (LoRA on
 * every block, backpropagation through the whole model) is the same code with one exit
 * after the last block and a window of all blocks.
 *
 * What is trained: the LoRA A and B of the seven linear layers of the window's blocks and
 * the exit's head (a copy of the output head at the start). Frozen: every model tensor, the
 * exits' norms (copies of output_norm). [O] choices, against Edge-LLM's code (METHODS.md 9
 * (d)): an exit's head reads the output-normed state in training as at inference; the
 * blocks above an exit are skipped; one AdamW state per tensor over the whole run.
 *
 * The result is written into the model as tensors and exits (model.h, pare_exit), so
 * pare_forward runs the last exit, one exit or the vote; tune_merge folds the last exit's
 * adapters and head into a plain model. */
#ifndef PARE_TUNE_H
#define PARE_TUNE_H

#include "train.h"

enum { TUNE_SEQUENTIAL = 0, TUNE_ROUND_ROBIN = 1 };
#define TUNE_MAX_EXITS 64

typedef struct tune_opts {
    int n_exit, exits[TUNE_MAX_EXITS]; /* exit blocks, increasing (0: every L/4: L/4-1, ..., L-1) */
    int window;           /* blocks per window, ending at the exit (0: L/4, at least 1) */
    int full;             /* vanilla LoRA tuning: one exit at L-1, window L */
    int schedule;         /* TUNE_SEQUENTIAL: steps split evenly, exit by exit, remainder to
                             the last (Edge-LLM); TUNE_ROUND_ROBIN: step s uses exit s mod n */
    int steps, B, T, accum;
    int lora_rank;        /* (8) */
    float lora_alpha;     /* (16) */
    float lr;             /* constant after warm-up (4e-4) */
    float warmup_frac;    /* of the steps (0.03) */
    float grad_clip;      /* (0.3) */
    float weight_decay;   /* (0) */
    uint64_t seed;        /* LoRA A initialisation */
    double max_memory;    /* bytes; > 0: tune_fit shrinks the micro-batch, then the window,
                             until the predicted peak fits */
} tune_opts;

void tune_opts_default(tune_opts *o);

/* Windows after defaults: n exits, exit k at last[k], adapters in blocks first[k]..last[k]. */
pare_status tune_resolve(const pare_model *m, tune_opts *o, int *first, int *last);

/* The memory plan of a run: bytes held before the first step by the tuning state (adapters,
 * heads, their gradients and AdamW moments, float copies of frozen non-F32 weights) and the
 * largest activation/scratch reservation of any exit's phase. */
typedef struct tune_plan {
    size_t mapped_bytes;  /* F32 model tensors read in place from the mapped file */
    size_t state_bytes, act_bytes[TUNE_MAX_EXITS], act_max;
} tune_plan;
pare_status tune_plan_of(const pare_model *m, const tune_opts *o, tune_plan *p);

/* Resolve o and fit it to o->max_memory (when > 0): the predicted peak is base (what the
 * process holds now) + the mapped weights + state + the largest phase's activations; over budget the micro-batch
 * is halved (accumulation doubled, so a step sees as many tokens), then the window shrinks,
 * and if nothing fits, an error with the estimate. plan and *predicted: of the result. */
pare_status tune_fit(const pare_model *m, tune_opts *o, size_t base, tune_plan *plan, double *predicted);

typedef struct tune_step_info {
    int64_t step;         /* from 1 */
    int exit;             /* index of the exit trained */
    double loss, grad_norm, lr, seconds;
    size_t rss;           /* resident bytes after the step */
} tune_step_info;
typedef void (*tune_cb)(const tune_step_info *info, void *user);

typedef struct tune_result {
    double mean_sec_per_step, final_loss;  /* final: mean over the last 10% of steps */
    double steady_sec_per_step;            /* the mean over steps that did not start a phase
                                              (a phase start makes its window's float copies,
                                              its head and optimizer state) */
    double exit_loss[TUNE_MAX_EXITS];      /* mean over each exit's last 10% of its steps */
    int64_t tokens;
    int64_t trained_params;
} tune_result;

/* Tune m on windows of d and leave the adapters and exits in m (model_setup_exits). o is
 * resolved in place (defaults; call tune_fit first for max_memory). */
pare_status tune_run(pare_model *m, tune_opts *o, train_data *d, tune_cb cb, void *user, tune_result *res);

/* The tuning network itself, for tests: built over m as tune_run builds it; a phase is exit
 * k's configuration (tnet_reserve'd for B x T); commit writes the adapters and heads into m
 * as tune_run does at its end. */
typedef struct tune_state tune_state;
pare_status tune_state_new(pare_model *m, tune_opts *o, tune_state **out);
void tune_state_free(tune_state *s);
pare_status tune_state_phase(tune_state *s, int k, int B, int T);
tnet_f *tune_state_net(tune_state *s);
pare_status tune_state_commit(tune_state *s);

/* A plain model from a tuned one: the last exit's adapters folded into its blocks' weights
 * (now F32), its norm and head the model's, the blocks past it removed, the adapters and
 * exits dropped. */
pare_status tune_merge(pare_model *m);

/* Touch the BLAS workspaces of every OpenMP thread (one sgemm each), so that a resident size
 * measured afterwards as the base of a plan already holds them. */
void tune_warm_blas(void);

#endif
