/* generate.c - sampling (greedy, temperature, top-p) and the generation loop. */
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rand_unit(uint64_t *s) { return (double)(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0); }

pare_status sampler_init(pare_sampler *s, int n_vocab, float temp, float top_p, uint64_t seed) {
    memset(s, 0, sizeof *s);
    if (temp < 0) return pare_fail(PARE_ERR_ARG, "--temp must be >= 0 (got %g)", (double)temp);
    if (!(top_p > 0 && top_p <= 1)) return pare_fail(PARE_ERR_ARG, "--top-p must be in (0, 1] (got %g)", (double)top_p);
    s->temp = temp; s->top_p = top_p; s->rng = seed; s->n_vocab = n_vocab;
    s->probs = pare_calloc((size_t)n_vocab, sizeof(float));
    s->idx = pare_calloc((size_t)n_vocab, sizeof(int));
    if (!s->probs || !s->idx) { sampler_free(s); return PARE_ERR_NOMEM; }
    return PARE_OK;
}
void sampler_free(pare_sampler *s) { free(s->probs); free(s->idx); s->probs = NULL; s->idx = NULL; }

static const float *g_sort_p;
static int by_prob_desc(const void *a, const void *b) {
    float pa = g_sort_p[*(const int *)a], pb = g_sort_p[*(const int *)b];
    if (pa != pb) return pa < pb ? 1 : -1;
    return *(const int *)a - *(const int *)b; /* ties by id: deterministic */
}

int32_t sampler_next(pare_sampler *s, const float *lg) {
    int V = s->n_vocab;
    if (s->temp == 0) { /* greedy; ties go to the lowest id */
        int best = 0;
        for (int i = 1; i < V; i++) if (lg[i] > lg[best]) best = i;
        return best;
    }
    float mx = lg[0];
    for (int i = 1; i < V; i++) if (lg[i] > mx) mx = lg[i];
    double sum = 0;
    for (int i = 0; i < V; i++) { s->probs[i] = expf((lg[i] - mx) / s->temp); sum += s->probs[i]; }
    for (int i = 0; i < V; i++) s->probs[i] = (float)(s->probs[i] / sum);
    double r = rand_unit(&s->rng);
    if (s->top_p >= 1) {
        double cdf = 0;
        for (int i = 0; i < V; i++) { cdf += s->probs[i]; if (r < cdf) return i; }
        return V - 1;
    }
    int n = 0;
    for (int i = 0; i < V; i++) s->idx[n++] = i;
    g_sort_p = s->probs;
    qsort(s->idx, (size_t)n, sizeof(int), by_prob_desc);
    double cum = 0;
    int last = n - 1;
    for (int i = 0; i < n; i++) { cum += s->probs[s->idx[i]]; if (cum >= s->top_p) { last = i; break; } }
    double target = r * cum, c = 0;
    for (int i = 0; i <= last; i++) { c += s->probs[s->idx[i]]; if (target < c) return s->idx[i]; }
    return s->idx[last];
}

pare_status eval_generate(const pare_model *m, const int32_t *prompt, int n_prompt, int n_new, float temp,
                          float top_p, uint64_t seed, int ignore_eos, pare_token_cb on_token, void *user,
                          int32_t **out_ids, int *n_out, double *prompt_s, double *gen_s) {
    *out_ids = NULL; *n_out = 0;
    if (n_prompt <= 0) return pare_fail(PARE_ERR_ARG, "empty prompt");
    if (n_new < 0) return pare_fail(PARE_ERR_ARG, "-n must be >= 0");
    int n_ctx = n_prompt + n_new;
    pare_ctx *c;
    pare_status st = pare_ctx_new(m, n_ctx, &c);
    if (st) return st;
    pare_sampler smp;
    if ((st = sampler_init(&smp, m->n_vocab, temp, top_p, seed))) { pare_ctx_free(c); return st; }
    int32_t *ids = pare_calloc((size_t)n_ctx, sizeof(int32_t));
    float *lg = pare_calloc((size_t)n_prompt * m->n_vocab, sizeof(float));
    if (!ids || !lg) { st = PARE_ERR_NOMEM; goto done; }
    memcpy(ids, prompt, (size_t)n_prompt * sizeof(int32_t));
    double t0 = pare_now();
    if ((st = pare_forward(c, ids, n_prompt, 0, lg))) goto done;
    double t1 = pare_now();
    const float *last = lg + (size_t)(n_prompt - 1) * m->n_vocab;
    int n = n_prompt;
    int32_t eos = m->vocab ? m->vocab->eos : -1;
    while (n < n_ctx) {
        int32_t next = sampler_next(&smp, last);
        ids[n++] = next;
        if (on_token) on_token(next, user);
        if (!ignore_eos && next == eos) break;
        if (n == n_ctx) break;
        if ((st = pare_forward(c, &ids[n - 1], 1, n - 1, lg))) goto done;
        last = lg;
    }
    if (prompt_s) *prompt_s = t1 - t0;
    if (gen_s) *gen_s = pare_now() - t1;
    *out_ids = ids; *n_out = n; ids = NULL;
done:
    free(ids); free(lg); sampler_free(&smp); pare_ctx_free(c);
    return st;
}
