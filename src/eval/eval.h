/* eval.h - perplexity, generation, progress reporting. */
#ifndef PARE_EVAL_H
#define PARE_EVAL_H

#include "model/model.h"

#include <stdio.h>

/* ---- progress: a bar with ETA on stderr when it is a terminal (or PARE_PROGRESS=1) ---- */
typedef struct pare_progress {
    const char *label;
    int64_t total, done;
    double t0, last;
    int enabled;
} pare_progress;
void progress_start(pare_progress *p, const char *label, int64_t total);
void progress_update(pare_progress *p, int64_t done);
void progress_end(pare_progress *p);
double pare_now(void); /* monotonic seconds */

/* ---- perplexity ---------------------------------------------------------------------- */
enum { PPL_PROTOCOL_PAPERS = 0, PPL_PROTOCOL_LLAMACPP = 1 };
typedef struct pare_ppl {
    double ppl, nll;         /* exp(mean NLL), mean NLL */
    int64_t tokens, windows, scored;
    int ctx, protocol;
    double seconds;
} pare_ppl;
/* ids: the whole text tokenized once with one BOS in front. max_windows <= 0: all.
 * papers: non-overlapping windows of ctx tokens, tail dropped, every token but a window's
 * first scored. llamacpp: same windows, first token replaced by BOS, second half scored. */
pare_status eval_ppl(const pare_model *m, const int32_t *ids, size_t n_ids, int ctx, int max_windows,
                     int protocol, int show_progress, pare_ppl *out);
/* mean NLL of targets given logits rows: nll[i] = -log softmax(logits[i])[target[i]] */
double nll_of(const float *logits, int n_vocab, int32_t target);

/* ---- sampling and generation --------------------------------------------------------- */
typedef struct pare_sampler { float temp, top_p; uint64_t rng; float *probs; int *idx; int n_vocab; } pare_sampler;
pare_status sampler_init(pare_sampler *s, int n_vocab, float temp, float top_p, uint64_t seed);
void sampler_free(pare_sampler *s);
int32_t sampler_next(pare_sampler *s, const float *logits);

/* Generate up to n_new tokens after prompt (which should start with BOS). Stops at EOS
 * unless ignore_eos. out_ids receives prompt + new ids (malloc'ed). on_token, if set, is
 * called with each new token as it is produced. */
typedef void (*pare_token_cb)(int32_t id, void *user);
pare_status eval_generate(const pare_model *m, const int32_t *prompt, int n_prompt, int n_new, float temp,
                          float top_p, uint64_t seed, int ignore_eos, pare_token_cb on_token, void *user,
                          int32_t **out_ids, int *n_out, double *prompt_s, double *gen_s);

#endif
