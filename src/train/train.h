/* train.h - training LLaMA-family models on the CPU: AdamW with decoupled weight decay,
 * global-norm gradient clipping, a cosine schedule with linear warm-up, gradient
 * accumulation, freezing per tensor and per block, LoRA adapters, and checkpoints that
 * resume bit for bit. The numbers come from the float training network (tnet.h).
 *
 * The model is trained in place: the trained tensors of the pare_model become owned F32
 * arrays that every step updates, so pare_model_save writes the trained model (call
 * train_merge_lora first when adapters are attached). */
#ifndef PARE_TRAIN_H
#define PARE_TRAIN_H

#include "model/model.h"
#include "tnet.h"

typedef struct train_opts {
    /* optimizer and schedule */
    float lr;             /* peak learning rate (1e-3) */
    float min_lr_ratio;   /* the cosine ends at lr * min_lr_ratio (0.1) */
    int warmup;           /* steps of linear warm-up from lr/warmup (0) */
    int total_steps;      /* length of the schedule (1000) */
    float beta1, beta2, eps;  /* AdamW (0.9, 0.95, 1e-8) */
    float weight_decay;   /* decoupled: w -= lr * wd * w (0.1), 2-D tensors only ... */
    int decay_1d;         /* ... unless set: then norms too (0) */
    float grad_clip;      /* clip the global gradient norm to this; 0 = off (1.0) */
    int accum;            /* micro-batches per optimizer step (1) */
    /* what is trained */
    int layer_first, layer_last; /* blocks outside [first, last] are frozen (-1, -1: all) */
    const char *freeze;   /* comma-separated fnmatch patterns of tensor names kept fixed */
    const char *lora;     /* patterns of linear weights that get a LoRA adapter; the weight
                             itself is then frozen */
    int lora_rank;        /* (8) */
    float lora_alpha;     /* (16) */
    uint64_t seed;        /* LoRA initialization (0) */
} train_opts;

void train_opts_default(train_opts *o);

typedef struct train_state train_state;

typedef struct train_info {
    double loss;          /* mean -log p over the step's tokens, before the update */
    double grad_norm;     /* global norm before clipping */
    double lr;            /* learning rate used */
    int64_t tokens;       /* scored tokens in the step */
} train_info;

/* Prepare to train m with micro-batches of B sequences of T tokens. m must outlive the
 * state; its trained tensors are converted to owned F32 now. */
pare_status train_new(pare_model *m, const train_opts *o, int B, int T, train_state **out);
void train_free(train_state *ts);

/* One optimizer step. tokens: accum micro-batches, each B rows of T+1 tokens (inputs are
 * a row's first T tokens, targets its last T). */
pare_status train_step(train_state *ts, const int32_t *tokens, train_info *info);
/* The update of one trained tensor of n values by AdamW as train_step does it (PyTorch
 * semantics, decoupled weight decay when decay != 0): g scaled by coef (clipping), step
 * counts from 1. */
void train_adamw(const train_opts *o, double lr, int64_t step, float coef, int decay, float *w, const float *g, float *m,
                 float *v, size_t n);
/* Sum of squares of g in chunks of 65536 summed in order (partial: room for the chunks), so
 * the result does not depend on the thread count. */
double train_sumsq(const float *g, size_t n, double *partial);
#define TRAIN_SUMSQ_CHUNKS(n) (((n) + 65535) / 65536)
/* Mean -log p of a batch (B rows of T+1 tokens) without touching gradients. */
pare_status train_eval(train_state *ts, const int32_t *tokens, int B, double *loss);

int64_t train_step_count(const train_state *ts);
const train_opts *train_get_opts(const train_state *ts);
int64_t train_n_trained(const train_state *ts);   /* trained parameters (elements) */
double train_lr_at(const train_opts *o, int64_t step); /* schedule; step counts from 0 */
tnet_f *train_net(train_state *ts);

/* A LoRA A matrix of n values for a layer with `in` inputs: uniform in +-1/sqrt(in) (PyTorch's
 * default), deterministic from seed and the net slot's index. */
void train_lora_init(float *a, int64_t in, size_t n, uint64_t seed, int slot);
/* Make a model tensor an owned F32 array (dequantized or copied when it is not already). */
pare_status train_own_f32(pare_tensor *t);

/* Fold every LoRA adapter into its weight (W += alpha/r B A, the weight becomes an owned
 * F32 tensor of the model) and zero B, so the model alone computes what the net does. */
pare_status train_merge_lora(train_state *ts);

/* Checkpoints: trained parameters, AdamW moments, step, schedule and optimizer settings,
 * plus the caller's bytes (data position, RNG state). Resuming from one and going on gives
 * the same numbers as never stopping. Loading needs a state built over the same model
 * shape with the same parameters trained; the saved settings replace the state's. */
pare_status train_save(const train_state *ts, const char *path, const void *extra, size_t extra_len);
pare_status train_load(train_state *ts, const char *path, void *extra, size_t extra_len);

/* ---- data: a tokenized text and random windows of it ---------------------------------- */
typedef struct train_data {
    int32_t *ids;
    size_t n;
    uint64_t rng;         /* state of the window sampler */
} train_data;

/* Tokenize a whole text file once, with BOS in front. */
pare_status train_data_load(const pare_vocab *v, const char *path, train_data *d, uint64_t seed);
void train_data_free(train_data *d);
/* B windows of T+1 consecutive tokens at random offsets (uniform). */
pare_status train_data_batch(train_data *d, int B, int T, int32_t *out);

/* ---- a fresh model from a shape file --------------------------------------------------- */
/* SHAPE.json: {"dim", "n_layers", "n_heads", "n_kv_heads", "ffn", "ctx"} (as pare synth),
 * optional "vocab" (must equal the tokenizer's), "tied" (bool), "rope_theta", "norm_eps",
 * "name". Weights ~ N(0, 0.02^2), output projections / sqrt(2 n_layers), norms 1 (as pare
 * synth, deterministic from seed); the vocabulary is taken over (owned by the model after
 * success). */
pare_status train_model_from_config(const char *path, pare_vocab *vocab, uint64_t seed, pare_model **out);

#endif
