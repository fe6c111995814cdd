/* eval.h - perplexity, generation, progress reporting. */
#ifndef PARE_EVAL_H
#define PARE_EVAL_H

#include "model/model.h"

#include <stdio.h>

/* ---- progress on stderr: a one-line bar with rate and ETA on a terminal, a plain line
 * every 10 s otherwise (PARE_PROGRESS=1 bar, 2 lines, 0 none); progress_set_quiet(1) (the
 * CLI's --quiet) silences it ---- */
typedef struct pare_progress {
    const char *label;
    int64_t total, done;
    double t0, last;
    int enabled;
} pare_progress;
void progress_start(pare_progress *p, const char *label, int64_t total);
void progress_update(pare_progress *p, int64_t done);
void progress_end(pare_progress *p);
void progress_set_quiet(int quiet);
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

/* ---- zero-shot multiple choice (mc.c) -------------------------------------------------- */
/* One item: a context and its choices (continuation strings, appended to the context as they
 * are: a choice usually starts with a space), gold = the index of the right one. */
typedef struct pare_mc_item {
    char *context;
    char **choices;
    int n_choices, gold;
    char *task, *subject;   /* subject may be NULL */
    int line;               /* 1-based line in the file */
} pare_mc_item;
enum { MC_FORMAT_AUTO = 0, MC_FORMAT_MMLU = 1, MC_FORMAT_LMEVAL = 2 };
typedef struct pare_mc_set { pare_mc_item *items; int n, format; } pare_mc_set;
/* Parse JSONL (one object a line; blank lines skipped). format MC_FORMAT_AUTO: from the first
 * line's keys ("input"+"output": mmlu, "context"+"choices": lm-eval).
 *   mmlu:    subject, input, output (A-D); choices " A"," B"," C"," D"; task "mmlu"
 *   lm-eval: context (string), choices (array of strings), gold (index), optional subject,
 *            task (default: name, the file's base name without .jsonl/.json)
 * limit > 0: only the first limit items. Errors name name:line and the problem. */
pare_status mc_parse(const char *buf, size_t len, const char *name, int format, int limit, pare_mc_set *out);
pare_status mc_load(const char *path, int format, int limit, pare_mc_set *out);
void mc_set_free(pare_mc_set *s);

/* Log-likelihood of each continuation after a context, with one prefill: the context (n_ctx
 * tokens at positions 0..) is run once, then each continuation runs from the cached context
 * (positions n_ctx..), overwriting the previous continuation's cache entries.
 * ll[k] = sum_j log p(cont[k][j] | context, cont[k][<j]). c must hold n_ctx + max n_cont - 1
 * positions. */
pare_status mc_score_ids(pare_ctx *c, int n_vocab, const int32_t *ctx_ids, int n_ctx, const int32_t *const *cont,
                         const int *n_cont, int n_choices, double *ll);
/* acc_norm's length of a choice: the number of UTF-8 bytes of its continuation string as
 * given (with its leading space: " A" is 2). lm-evaluation-harness divides by len() of the
 * choice string, characters; for ASCII text the two are the same. */
double mc_choice_len(const char *choice);
/* Index of the largest ll[k] (or ll[k] / len[k] when len != NULL); the first on ties. */
int mc_argmax(const double *ll, const double *len, int n);

typedef struct pare_mc_group {
    char *name;
    int n, correct, correct_norm;
    double acc, acc_stderr, acc_norm, acc_norm_stderr; /* stderr sqrt(p(1-p)/(n-1)); NaN if n < 2 */
} pare_mc_group;
typedef struct pare_mc_result {
    pare_mc_group *tasks, *subjects, total;
    int n_tasks, n_subjects;
    int *pred, *pred_norm;   /* per item */
    double *ll;              /* per item and choice, item i's at ll + choice_off[i] */
    int *choice_off;
    int64_t tokens;          /* tokens run through the model */
    int fallbacks;           /* choices tokenized on their own (see eval_mc) */
    int truncated;           /* items whose context lost tokens on the left to fit max_len */
    double seconds;
} pare_mc_result;
/* Score every item of s: context tokenized with BOS (as ppl does) after lm-eval's move of the
 * context's trailing whitespace to the front of each choice; a choice's tokens are
 * tokens(context + choice) past tokens(context) when the latter is a prefix of the former,
 * else tokens(choice) alone (counted in fallbacks). A context longer than max_len - (longest
 * choice - 1) keeps its BOS and loses its oldest tokens (counted in truncated). */
pare_status eval_mc(const pare_model *m, const pare_mc_set *s, int max_len, int show_progress, pare_mc_result *out);
void mc_result_free(pare_mc_result *r);

/* A story-cloze task from a text, as lm-eval JSONL lines {"context":..,"choices":[4],"gold":k}
 * (malloc'ed in *out, *out_len bytes). Paragraphs are separated by blank lines (each line is
 * one when the text has none); whitespace runs inside one become a space. A sentence ends at
 * a run of . ! ? (plus closing quotes " ') followed by a space or the paragraph's end; text
 * left after the last one is a sentence too. An item uses a paragraph with at least k+1
 * sentences: context = its first k sentences, choices = its sentence k+1 and three sentences
 * of other paragraphs, each with a space in front, gold placed at random. k <= 0: 3, lowered
 * (to 1 at least) while fewer than n paragraphs qualify. Everything random comes from seed:
 * the same text, n, k and seed give the same bytes. *made: items written (fewer than n when
 * the text has too few paragraphs), *k_used: the k used. */
pare_status mc_make_cloze(const char *text, size_t len, int n, int k, uint64_t seed, char **out, size_t *out_len, int *made,
                          int *k_used);

#endif
