/* tune.c - Edge-LLM adaptive layer tuning on the float training network (tune.h). */
#include "tune.h"

#include "eval/eval.h"
#include "kernels/nm.h"
#include "kernels/r8.h"
#include "model/forward.h"
#include "prune/prune.h"

#include <cblas.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void tune_opts_default(tune_opts *o) {
    memset(o, 0, sizeof *o);
    o->schedule = TUNE_SEQUENTIAL;
    o->steps = 200; o->B = 8; o->T = 0; o->accum = 1;
    o->lora_rank = 8; o->lora_alpha = 16;
    o->lr = 4e-4f; o->warmup_frac = 0.03f; o->grad_clip = 0.3f; o->weight_decay = 0;
}

pare_status tune_resolve(const pare_model *m, tune_opts *o, int *first, int *last) {
    int L = m->n_layer;
    if (L < 1) return pare_fail(PARE_ERR_ARG, "tuning: the model has no blocks");
    if (m->n_exit) return pare_fail(PARE_ERR_ARG, "tuning: the model already has early exits (merge it first)");
    if (o->full) {
        o->n_exit = 1; o->exits[0] = L - 1; o->window = L;
    }
    if (o->n_exit == 0) { /* Edge-LLM: exits after every quarter (7, 15, 23, 31 for 32 blocks) */
        int q = L >= 4 ? 4 : L;
        for (int k = 0; k < q; k++) o->exits[o->n_exit++] = (int)((int64_t)L * (k + 1) / q) - 1;
    }
    if (o->window == 0) o->window = L / 4 > 0 ? L / 4 : 1;
    if (o->n_exit < 1 || o->n_exit > TUNE_MAX_EXITS) return pare_fail(PARE_ERR_ARG, "tuning: %d exits", o->n_exit);
    if (o->window < 1 || o->window > L)
        return pare_fail(PARE_ERR_ARG, "tuning: window of %d blocks (the model has %d)", o->window, L);
    for (int k = 0; k < o->n_exit; k++) {
        if (o->exits[k] < 0 || o->exits[k] >= L || (k && o->exits[k] <= o->exits[k - 1]))
            return pare_fail(PARE_ERR_ARG, "tuning: exit %d is not a block 0..%d in increasing order", o->exits[k], L - 1);
        last[k] = o->exits[k];
        first[k] = last[k] - o->window + 1 > 0 ? last[k] - o->window + 1 : 0;
    }
    if (o->steps < 1 || o->B < 1 || o->T < 1 || o->accum < 1 || o->lora_rank < 1 || !(o->lora_alpha > 0) ||
        !(o->lr > 0) || !(o->warmup_frac >= 0 && o->warmup_frac < 1) || o->grad_clip < 0 || o->weight_decay < 0)
        return pare_fail(PARE_ERR_ARG, "tuning: bad settings (steps %d, batch %d x %d, accum %d, rank %d, lr %g)", o->steps,
                         o->B, o->T, o->accum, o->lora_rank, (double)o->lr);
    if (o->steps < o->n_exit && o->schedule == TUNE_SEQUENTIAL)
        return pare_fail(PARE_ERR_ARG, "tuning: %d steps for %d exits", o->steps, o->n_exit);
    return PARE_OK;
}

/* ---- the tuning state ----------------------------------------------------------------- */
typedef struct tparam_t {      /* one trained tensor */
    float *w, *g, *m, *v;
    size_t n;
    int64_t t;                 /* its AdamW steps */
    int block;                 /* LoRA: its block; head: -1 */
    tlin_f *lin;
} tparam_t;

struct tune_state {
    pare_model *m;
    tune_opts o;
    int first[TUNE_MAX_EXITS], last[TUNE_MAX_EXITS];
    tnet_f *net;
    tparam_t *lora;            /* the LoRA slots of the net in order (A then B of each) */
    int n_lora;
    tparam_t head[TUNE_MAX_EXITS];
    int cur;                   /* exit of the current phase */
    int counting;              /* plan only: no memory attached */
    float **copy;              /* per net slot: a float copy of a non-F32 block tensor, made
                                  while its block is in the window */
    pare_ctx *ctx;             /* the engine, for the frozen blocks below the window */
    int ctx_T;
};
typedef struct tune_state tstate;

static float g_mark[1];        /* "trained" marker while planning */

static int in_any_window(const tstate *s, int l) {
    for (int k = 0; k < s->o.n_exit; k++)
        if (l >= s->first[k] && l <= s->last[k]) return 1;
    return 0;
}

static void ts_free(tstate *s) {
    if (!s) return;
    if (s->copy)
        for (int i = 0; s->net && i < s->net->n_params; i++) free(s->copy[i]);
    free(s->copy);
    pare_ctx_free(s->ctx);
    tnet_free_f(s->net);
    if (!s->counting) {
        for (int i = 0; i < s->n_lora; i++) { free(s->lora[i].g); free(s->lora[i].m); free(s->lora[i].v); }
        for (int k = 0; k < s->o.n_exit; k++) {
            free(s->head[k].w); free(s->head[k].g); free(s->head[k].m); free(s->head[k].v);
        }
    }
    free(s->lora);
}


/* Exit k's head weights (a copy of the output head) and, with state, its gradient and moments. */
static pare_status head_ensure(tstate *s, int k, int state) {
    tparam_t *h = &s->head[k];
    const pare_model *m = s->m;
    if (!h->w) {
        if (!(h->w = pare_malloc(h->n * sizeof(float)))) return PARE_ERR_NOMEM;
        for (int64_t r = 0; r < m->n_vocab; r++) pare_tensor_row_f32(m->output, r, h->w + (size_t)r * m->n_embd);
    }
    if (state && !h->g) {
        h->g = pare_calloc(h->n, sizeof(float)); h->m = pare_calloc(h->n, sizeof(float));
        h->v = pare_calloc(h->n, sizeof(float));
        if (!h->g || !h->m || !h->v) return PARE_ERR_NOMEM;
    }
    return PARE_OK;
}

static void head_drop_state(tparam_t *h) {
    free(h->g); free(h->m); free(h->v);
    h->g = h->m = h->v = NULL;
}

/* The blocks below the window: the inference engine on the model's own (compressed) weights,
 * one sequence at a time. */
static pare_status frozen_fwd(void *user, int l, float *x, int B, int T) {
    tstate *s = user;
    if (!s->ctx || s->ctx_T < T) {
        pare_ctx_free(s->ctx);
        s->ctx = NULL;
        pare_status st = pare_ctx_new(s->m, T, &s->ctx);
        if (st) return st;
        s->ctx_T = T;
    }
    size_t per = (size_t)T * s->m->n_embd;
    for (int b = 0; b < B; b++) {
        pare_status st = block_forward(s->ctx, l, x + b * per, T, 0);
        if (st) return st;
    }
    return PARE_OK;
}

/* Build the net with adapters on every linear layer of every block some window covers.
 * counting: shapes only; *state_bytes gets what the state would hold. */
static pare_status ts_build(tstate *s, pare_model *m, const tune_opts *o, const int *first, const int *last, int counting,
                            size_t *state_bytes, size_t *mapped_bytes) {
    size_t mapped = 0;
    memset(s, 0, sizeof *s);
    s->m = m; s->o = *o; s->counting = counting; s->cur = -1;
    memcpy(s->first, first, (size_t)o->n_exit * sizeof(int));
    memcpy(s->last, last, (size_t)o->n_exit * sizeof(int));
    pare_status st = tnet_new_f(m, &s->net);
    if (st) return st;
    tnet_f *n = s->net;
    char nm[128];
    for (int l = 0; l < m->n_layer && !st; l++) {
        if (!in_any_window(s, l)) continue;
        for (int i = 0; i < PARE_N_LIN && !st; i++) {
            model_lin_name(l, i, nm, sizeof nm);
            if (tnet_param_f(n, nm)) st = tnet_add_lora_f(n, nm, o->lora_rank, o->lora_alpha);
        }
    }
    if (st) return st;
    size_t bytes = 0;
    s->lora = pare_calloc((size_t)n->n_params, sizeof *s->lora);
    s->copy = pare_calloc((size_t)n->n_params, sizeof *s->copy);
    size_t *blk_copy = pare_calloc((size_t)m->n_layer + 1, sizeof *blk_copy);
    if (!s->lora || !s->copy || !blk_copy) { free(blk_copy); return PARE_ERR_NOMEM; }
    n->frozen_fwd = frozen_fwd;
    n->frozen_user = s;
    for (int i = 0; i < n->n_params; i++) {
        tparam_f *p = &n->params[i];
        size_t cnt = (size_t)(p->rows * p->cols);
        if (p->lora) {
            tparam_t *q = &s->lora[s->n_lora++];
            q->n = cnt; q->lin = p->lin;
            sscanf(p->name, "blk.%d.", &q->block);
            bytes += 4 * cnt * sizeof(float);
            if (counting) { *p->w = g_mark; continue; }
            float *w = tnet_alloc_f(n, cnt);
            q->g = pare_calloc(cnt, sizeof(float)); q->m = pare_calloc(cnt, sizeof(float));
            q->v = pare_calloc(cnt, sizeof(float));
            if (!w || !q->g || !q->m || !q->v) return PARE_ERR_NOMEM;
            if (p->lora == 1) train_lora_init(w, p->cols, cnt, o->seed, i); /* B stays 0 */
            *p->w = q->w = w;
            continue;
        }
        pare_tensor *t = model_find_tensor(m, p->name);
        if (!t || t->ne[0] != p->cols || pare_tensor_nelem(t) != (int64_t)cnt)
            return pare_fail(PARE_ERR_ARG, "tuning: model tensor '%s' missing or of another shape", p->name);
        int blk = -1;
        if (sscanf(p->name, "blk.%d.", &blk) == 1 && blk >= 0 && blk < m->n_layer && !(t->type == PARE_TYPE_F32 && !t->nm)) {
            /* a compressed block tensor: a float copy only while its block is in the window
             * (its mapped pages released once copied); the engine reads it in place while the
             * block is below a window */
            blk_copy[blk] += cnt * sizeof(float);
            int below = 0;
            for (int k = 0; k < o->n_exit; k++) below |= blk < first[k];
            if (below && !t->owned) mapped += t->nbytes;
            *p->w = NULL;
            continue;
        }
        if (t->type == PARE_TYPE_F32 && !t->nm) {
            *p->w = counting ? g_mark : t->data;
            if (!t->owned) mapped += t->nbytes; /* read in place from the file: paged in by the first step */
        } else {
            bytes += cnt * sizeof(float);
            if (counting) { *p->w = g_mark; continue; }
            float *w = tnet_alloc_f(n, cnt);
            if (!w) return PARE_ERR_NOMEM;
            for (int64_t r = 0; r < p->rows; r++) pare_tensor_row_f32(t, r, w + r * p->cols);
            *p->w = w;
            if (!t->owned && t != m->output) pare_release_pages(t->data, t->nbytes); /* the copy serves from now on */
        }
    }
    /* the exit heads are copied from the output head when their phases start */
    if (!m->output->owned && m->output->type != PARE_TYPE_F32) mapped += m->output->nbytes;
    /* float copies of the compressed block tensors of the largest window (all windows'
     * round-robin, which keeps them) */
    size_t win_max = 0, all = 0;
    for (int l = 0; l < m->n_layer; l++) if (in_any_window(s, l)) all += blk_copy[l];
    for (int k = 0; k < o->n_exit; k++) {
        size_t w = 0;
        for (int l = first[k]; l <= last[k]; l++) w += blk_copy[l];
        if (w > win_max) win_max = w;
    }
    bytes += o->schedule == TUNE_ROUND_ROBIN ? all : win_max;
    free(blk_copy);
    /* exit heads: copies of the output head (the embedding when tied), made when the exit's
     * first phase starts; gradient and AdamW moments only while it trains (sequential: one
     * exit at a time) */
    size_t hc = (size_t)m->n_vocab * m->n_embd;
    n->tied = 0; /* each exit has its own head */
    for (int k = 0; k < o->n_exit; k++) { s->head[k].n = hc; s->head[k].block = -1; s->head[k].lin = &n->head; }
    bytes += (size_t)o->n_exit * hc * sizeof(float);
    bytes += (size_t)(o->schedule == TUNE_ROUND_ROBIN ? o->n_exit : 1) * 3 * hc * sizeof(float);
    if (!counting) {
        pare_status hs = head_ensure(s, 0, 1);
        if (hs) return hs;
    }
    n->head.w = counting ? g_mark : s->head[0].w;
    n->head.gw = NULL;
    if (state_bytes) *state_bytes = bytes;
    if (mapped_bytes) *mapped_bytes = mapped;
    return PARE_OK;
}

/* Exit k's phase: adapters active and trained in its window only, blocks past it skipped,
 * its head. The net's buffers are reserved by the caller (tnet_reserve / tnet_plan_bytes). */
static pare_status ts_phase(tstate *s, int k) {
    tnet_f *n = s->net;
    if (!s->counting) {
        /* sequential: the previous exit is done, its optimizer state goes */
        if (s->cur >= 0 && s->cur != k && s->o.schedule != TUNE_ROUND_ROBIN) head_drop_state(&s->head[s->cur]);
        pare_status st = head_ensure(s, k, 1);
        if (st) return st;
        for (int i = 0; i < n->n_params; i++) {
            tparam_f *p = &n->params[i];
            int l;
            if (p->lora || sscanf(p->name, "blk.%d.", &l) != 1) continue;
            int in = l >= s->first[k] && l <= s->last[k];
            if (in && !*p->w) {
                const pare_tensor *t = model_find_tensor(s->m, p->name);
                float *w = pare_malloc((size_t)(p->rows * p->cols) * sizeof(float));
                if (!w) return PARE_ERR_NOMEM;
                for (int64_t r = 0; r < p->rows; r++) pare_tensor_row_f32(t, r, w + r * p->cols);
                *p->w = s->copy[i] = w;
                if (!t->owned) pare_release_pages(t->data, t->nbytes); /* back from the file if needed */
            } else if (!in && s->copy[i] && s->o.schedule != TUNE_ROUND_ROBIN) {
                free(s->copy[i]);
                s->copy[i] = NULL;
                *p->w = NULL;
            }
        }
    }
    for (int i = 0; i < s->n_lora; i++) {
        tparam_t *q = &s->lora[i];
        int on = q->block >= s->first[k] && q->block <= s->last[k];
        tlin_f *L = q->lin;
        L->r = on ? s->o.lora_rank : 0;
        /* A and B of one layer are consecutive slots: set the matching gradient */
        float *g = on ? (s->counting ? g_mark : q->g) : NULL;
        if (i % 2 == 0) L->ga = g;
        else L->gb = g;
    }
    n->n_run = s->last[k] + 1;
    n->head.w = s->counting ? g_mark : s->head[k].w;
    n->head.gw = s->counting ? g_mark : s->head[k].g;
    s->cur = k;
    return PARE_OK;
}

pare_status tune_plan_of(const pare_model *m, const tune_opts *o, tune_plan *p) {
    memset(p, 0, sizeof *p);
    tune_opts oo = *o;
    int first[TUNE_MAX_EXITS], last[TUNE_MAX_EXITS];
    pare_status st = tune_resolve(m, &oo, first, last);
    if (st) return st;
    tstate s;
    st = ts_build(&s, (pare_model *)m, &oo, first, last, 1, &p->state_bytes, &p->mapped_bytes);
    for (int k = 0; k < oo.n_exit && !st; k++) {
        ts_phase(&s, k);
        p->act_bytes[k] = tnet_plan_bytes_f(s.net, oo.B, oo.T);
        if (p->act_bytes[k] > p->act_max) p->act_max = p->act_bytes[k];
    }
    ts_free(&s);
    return st;
}

void tune_warm_blas(void) {
    int ob = openblas_get_num_threads();
    openblas_set_num_threads(1);
    #pragma omp parallel
    {
        int n = 512;
        float *a = calloc((size_t)n * n, sizeof(float)), *c = calloc((size_t)n * n, sizeof(float));
        if (a && c) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, a, n, 0.0f, c, n);
        free(a); free(c);
    }
    openblas_set_num_threads(ob);
}

/* which exit step s (from 0) trains */
static int exit_of_step(const tune_opts *o, int s) {
    if (o->schedule == TUNE_ROUND_ROBIN) return s % o->n_exit;
    int per = o->steps / o->n_exit, k = per > 0 ? s / per : o->n_exit - 1;
    return k < o->n_exit ? k : o->n_exit - 1;
}

pare_status tune_fit(const pare_model *m, tune_opts *o, size_t base, tune_plan *plan, double *predicted) {
    int first[TUNE_MAX_EXITS], last[TUNE_MAX_EXITS];
    for (;;) {
        pare_status st = tune_resolve(m, o, first, last);
        if (!st) st = tune_plan_of(m, o, plan);
        if (st) return st;
        double need = (double)base + (double)plan->mapped_bytes + (double)plan->state_bytes + (double)plan->act_max;
        *predicted = need;
        if (!(o->max_memory > 0) || need <= o->max_memory) return PARE_OK;
        /* halve the micro-batch (more accumulation), then shrink the window */
        if (o->B > 1) { o->accum *= 2; o->B = (o->B + 1) / 2; continue; }
        if (o->window > 1 && !o->full) { o->window--; continue; }
        return pare_fail(PARE_ERR_NOMEM, "tuning needs %.1f MB (process %.1f, weights %.1f, state %.1f, activations %.1f) at "
                         "micro-batch 1 and window %d, over --max-memory %.1f MB", need / 1048576, (double)base / 1048576,
                         (double)plan->mapped_bytes / 1048576,
                         (double)plan->state_bytes / 1048576, (double)plan->act_max / 1048576, o->window,
                         o->max_memory / 1048576);
    }
}

static pare_status write_back(tstate *s) {
    pare_model *m = s->m;
    tnet_f *n = s->net;
    int K = s->o.n_exit;
    pare_status st = model_reserve_tensors(m, s->n_lora + 2 * K);
    if (st) return st;
    for (int i = 0; i < n->n_params && !st; i++) {
        tparam_f *p = &n->params[i];
        if (!p->lora) continue;
        size_t nb = (size_t)(p->rows * p->cols) * sizeof(float);
        float *d = pare_malloc(nb);
        if (!d) return PARE_ERR_NOMEM;
        memcpy(d, *p->w, nb);
        int64_t ne[2] = {p->cols, p->rows}; /* A: [in, r]; B: [r, out] */
        if (!model_add_tensor(m, p->name, PARE_TYPE_F32, 2, ne, d, nb, 1)) { free(d); return PARE_ERR_NOMEM; }
    }
    int64_t E = m->n_embd, V = m->n_vocab;
    char nm[64];
    for (int k = 0; k < K; k++) {
        if ((st = head_ensure(s, k, 0))) return st;
        float *nd = pare_malloc((size_t)E * sizeof(float)), *hd = s->head[k].w; /* the head moves to the model */
        if (!nd) return PARE_ERR_NOMEM;
        s->head[k].w = NULL;
        if (s->cur == k) s->net->head.w = NULL;
        memcpy(nd, m->out_norm->data, (size_t)E * sizeof(float));
        int64_t ne1[1] = {E}, ne2[2] = {E, V};
        snprintf(nm, sizeof nm, "exit.%d.norm.weight", k);
        if (!model_add_tensor(m, nm, PARE_TYPE_F32, 1, ne1, nd, (size_t)E * sizeof(float), 1)) { free(nd); free(hd); return PARE_ERR_NOMEM; }
        snprintf(nm, sizeof nm, "exit.%d.output.weight", k);
        if (!model_add_tensor(m, nm, PARE_TYPE_F32, 2, ne2, hd, (size_t)(E * V) * sizeof(float), 1)) { free(hd); return PARE_ERR_NOMEM; }
    }
    return model_setup_exits(m, K, s->first, s->last, (float)(s->o.lora_alpha / s->o.lora_rank));
}

pare_status tune_run(pare_model *m, tune_opts *o, train_data *d, tune_cb cb, void *user, tune_result *res) {
    memset(res, 0, sizeof *res);
    int first[TUNE_MAX_EXITS], last[TUNE_MAX_EXITS];
    pare_status st = tune_resolve(m, o, first, last);
    if (st) return st;
    /* Each phase frees its activations and allocates the next one's: keep large blocks in
     * their own mappings (no dynamic threshold), so what is freed leaves the process and the
     * resident set follows the plan. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    if (d->n < (size_t)o->T + 1) return pare_fail(PARE_ERR_ARG, "tuning data: %zu tokens, fewer than a window of %d", d->n, o->T + 1);
    tstate s;
    st = ts_build(&s, m, o, first, last, 0, NULL, NULL);
    int B = o->B, T = o->T, N = B * T;
    int32_t *rows = pare_malloc((size_t)B * (T + 1) * sizeof(int32_t));
    int32_t *in = pare_malloc((size_t)N * sizeof(int32_t)), *tgt = pare_malloc((size_t)N * sizeof(int32_t));
    double *partial = NULL;
    size_t maxn = 0;
    for (int i = 0; !st && i < s.n_lora; i++) if (s.lora[i].n > maxn) maxn = s.lora[i].n;
    if (!st && s.head[0].n > maxn) maxn = s.head[0].n;
    partial = pare_calloc(TRAIN_SUMSQ_CHUNKS(maxn) + 1, sizeof(double));
    tparam_t **act = pare_calloc((size_t)s.n_lora + 1, sizeof *act);
    if (!st && (!rows || !in || !tgt || !partial || !act)) st = PARE_ERR_NOMEM;
    train_opts ad;
    train_opts_default(&ad);
    ad.beta1 = 0.9f; ad.beta2 = 0.999f; ad.eps = 1e-8f; ad.weight_decay = o->weight_decay;
    int warm = (int)(o->warmup_frac * o->steps);
    int per_exit[TUNE_MAX_EXITS] = {0}, seen[TUNE_MAX_EXITS] = {0};
    double exit_sum[TUNE_MAX_EXITS] = {0}, total_sec = 0, fin_sum = 0, steady_sec = 0;
    int steady_n = 0;
    int fin_n = 0, fin_from = o->steps - (o->steps + 9) / 10;
    for (int i = 0; i < o->steps; i++) per_exit[exit_of_step(o, i)]++;
    float dscale = (float)(1.0 / ((double)o->accum * N));
    for (int step = 0; step < o->steps && !st; step++) {
        double t0 = pare_now();
        int k = exit_of_step(o, step), starts = k != s.cur;
        if (k != s.cur) {
            if ((st = ts_phase(&s, k)) || (st = tnet_reserve_f(s.net, B, T))) break;
        }
        /* the trained tensors of this phase */
        int na = 0;
        for (int i = 0; i < s.n_lora; i++)
            if (s.lora[i].block >= first[k] && s.lora[i].block <= last[k]) act[na++] = &s.lora[i];
        act[na++] = &s.head[k];
        for (int i = 0; i < na; i++) memset(act[i]->g, 0, act[i]->n * sizeof(float));
        double nll = 0;
        int64_t cnt = 0;
        for (int a = 0; a < o->accum && !st; a++) {
            if ((st = train_data_batch(d, B, T, rows))) break;
            for (int b = 0; b < B; b++) {
                memcpy(in + (size_t)b * T, rows + (size_t)b * (T + 1), (size_t)T * sizeof(int32_t));
                memcpy(tgt + (size_t)b * T, rows + (size_t)b * (T + 1) + 1, (size_t)T * sizeof(int32_t));
            }
            double sn;
            int64_t c;
            st = tnet_grad_f(s.net, in, tgt, B, T, dscale, &sn, &c);
            nll += sn; cnt += c;
        }
        if (st) break;
        double ss = 0;
        for (int i = 0; i < na; i++) ss += train_sumsq(act[i]->g, act[i]->n, partial);
        double norm = sqrt(ss);
        float coef = o->grad_clip > 0 && norm > o->grad_clip ? (float)(o->grad_clip / (norm + 1e-6)) : 1.0f;
        double lr = step < warm ? (double)o->lr * (step + 1) / warm : (double)o->lr;
        for (int i = 0; i < na; i++) {
            tparam_t *q = act[i];
            q->t++;
            train_adamw(&ad, lr, q->t, coef, 0, q->w, q->g, q->m, q->v, q->n);
        }
        double sec = pare_now() - t0, loss = cnt ? nll / (double)cnt : 0;
        total_sec += sec;
        if (!starts) { steady_sec += sec; steady_n++; }
        res->tokens += cnt;
        seen[k]++;
        if (seen[k] > per_exit[k] - (per_exit[k] + 9) / 10) exit_sum[k] += loss;
        if (step >= fin_from) { fin_sum += loss; fin_n++; }
        if (cb) {
            tune_step_info info = {step + 1, k, loss, norm, lr, sec, pare_rss_bytes()};
            cb(&info, user);
        }
    }
    if (!st) {
        res->mean_sec_per_step = total_sec / o->steps;
        res->steady_sec_per_step = steady_n ? steady_sec / steady_n : res->mean_sec_per_step;
        res->final_loss = fin_n ? fin_sum / fin_n : 0;
        for (int k = 0; k < o->n_exit; k++) {
            int nlast = (per_exit[k] + 9) / 10;
            res->exit_loss[k] = nlast ? exit_sum[k] / nlast : 0;
        }
        for (int i = 0; i < s.n_lora; i++) res->trained_params += (int64_t)s.lora[i].n;
        res->trained_params += (int64_t)o->n_exit * (int64_t)s.head[0].n;
        st = write_back(&s);
    }
    free(rows); free(in); free(tgt); free(partial); free(act);
    ts_free(&s);
    return st;
}

/* ---- the state, for the tests ------------------------------------------------------------ */
pare_status tune_state_new(pare_model *m, tune_opts *o, tune_state **out) {
    *out = NULL;
    int first[TUNE_MAX_EXITS], last[TUNE_MAX_EXITS];
    pare_status st = tune_resolve(m, o, first, last);
    if (st) return st;
    tstate *s = pare_calloc(1, sizeof *s);
    if (!s) return PARE_ERR_NOMEM;
    if ((st = ts_build(s, m, o, first, last, 0, NULL, NULL))) { ts_free(s); free(s); return st; }
    *out = s;
    return PARE_OK;
}
void tune_state_free(tune_state *s) { if (s) { ts_free(s); free(s); } }
pare_status tune_state_phase(tune_state *s, int k, int B, int T) {
    if (k < 0 || k >= s->o.n_exit) return pare_fail(PARE_ERR_ARG, "tuning: no exit %d", k);
    pare_status st = ts_phase(s, k);
    return st ? st : tnet_reserve_f(s->net, B, T);
}
tnet_f *tune_state_net(tune_state *s) { return s->net; }
pare_status tune_state_commit(tune_state *s) { return write_back(s); }

/* ---- merge ------------------------------------------------------------------------------ */
static int is_tune_tensor(const char *name) {
    size_t n = strlen(name);
    return !strncmp(name, "exit.", 5) || (n > 7 && (!strcmp(name + n - 7, ".lora_a") || !strcmp(name + n - 7, ".lora_b")));
}

/* t gets an owned F32 copy of src's values (same shape) */
static pare_status take_values(pare_tensor *t, const pare_tensor *src) {
    size_t nb = (size_t)pare_tensor_nelem(src) * sizeof(float);
    float *d = pare_malloc(nb);
    if (!d) return PARE_ERR_NOMEM;
    memcpy(d, src->data, nb);
    if (t->owned) free(t->data);
    k_nm_free(t->nm);
    k_r8_free(t->r8);
    t->nm = NULL;
    t->r8 = NULL;
    t->data = d; t->type = PARE_TYPE_F32; t->nbytes = nb; t->owned = 1;
    return PARE_OK;
}

pare_status tune_merge(pare_model *m) {
    if (!m->n_exit) return pare_fail(PARE_ERR_ARG, "%s: no early exits to merge", m->path ? m->path : "model");
    pare_status st = PARE_OK;
    if (m->tied && !model_find_tensor(m, "output.weight")) {
        if ((st = model_reserve_tensors(m, 1))) return st;
        const pare_tensor *te = m->tok_embd;
        if (!model_add_tensor(m, "output.weight", te->type, 2, te->ne, te->data, te->nbytes, 0)) return PARE_ERR_NOMEM;
        /* the array did not move (room was reserved), so the exits still point right */
        if ((st = model_bind(m))) return st;
    }
    if (m->tied || m->output == m->tok_embd) return pare_fail(PARE_ERR_ARG, "merge: could not untie the output head");
    const pare_exit e = m->exits[m->n_exit - 1];
    for (int l = e.first; l <= e.last && !st; l++) {
        const pare_layer *A = &m->layers[e.adapted + l - e.first];
        pare_layer *Lb = &m->layers[l];
        pare_tensor *W[PARE_N_LIN] = {Lb->wq, Lb->wk, Lb->wv, Lb->wo, Lb->w_gate, Lb->w_up, Lb->w_down};
        for (int i = 0; i < PARE_N_LIN && !st; i++) {
            if (!A->lora_a[i] || !W[i]) continue;
            if ((st = train_own_f32(W[i]))) break;
            k_nm_free(W[i]->nm);
            k_r8_free(W[i]->r8);
            W[i]->nm = NULL;
            W[i]->r8 = NULL;
            int in = (int)W[i]->ne[0], out = (int)W[i]->ne[1], r = (int)A->lora_a[i]->ne[1];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, out, in, r, A->lora_scale, A->lora_b[i]->data, r,
                        A->lora_a[i]->data, in, 1.0f, W[i]->data, in);
        }
    }
    if (!st) st = take_values(m->out_norm, e.norm);
    if (!st) st = take_values(m->output, e.head);
    if (st) return st;
    /* drop the adapters and exits */
    int w = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        pare_tensor *t = &m->tensors[i];
        if (is_tune_tensor(t->name)) {
            free(t->name);
            if (t->owned) free(t->data);
            k_nm_free(t->nm);
            k_r8_free(t->r8);
            continue;
        }
        if (w != i) m->tensors[w] = *t;
        w++;
    }
    m->n_tensors = w;
    free(m->exits);
    m->exits = NULL; m->n_exit = 0; m->n_xlayer = 0; m->exit_mode = PARE_EXIT_LAST;
    if ((st = model_bind(m))) return st;
    if (e.last < m->n_layer - 1) {
        int k = m->n_layer - 1 - e.last, *rm = pare_malloc((size_t)k * sizeof(int));
        if (!rm) return PARE_ERR_NOMEM;
        for (int j = 0; j < k; j++) rm[j] = e.last + 1 + j;
        st = model_remove_blocks(m, rm, k);
        free(rm);
    }
    return st;
}
