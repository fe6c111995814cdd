/* sleb.c - choosing whole blocks to remove: SLEB (iterative, calibration loss with each
 * candidate switched off), SLEB one-shot and ShortGPT's block influence (METHODS.md 7, 13);
 * and the reference code's calibration (rows shuffled, joined, tokenized once).
 *
 * Cost. A SLEB step over A alive blocks evaluates every candidate c (alive positions lo..hi)
 * on every window: the inputs of c (blocks below it, switched on) and then the blocks above
 * it and the head. Nothing below the first candidate is ever recomputed: block 0 is never a
 * candidate under the barrier, so the runner is advanced through it once and its outputs
 * (the inputs of the first candidate) are the base of every step. Within a step, the inputs
 * of candidate j+1 are those of candidate j through one more block, so the per-candidate
 * prefixes are built incrementally (A - 3 blocks per window) and cached; each candidate
 * then costs only the blocks above it: (A-2)(A-1)/2 blocks per window instead of (A-2)(A-1).
 *
 * Threads. The (window, candidate) evaluations are independent: they are spread over the
 * OpenMP threads (each with its own context and buffers, the kernels inside single
 * threaded), largest first. Each evaluation computes the same numbers whatever thread runs
 * it and the per-token losses are summed afterwards in a fixed order (that of
 * runner_loss_from), so the losses, hence the choice, do not depend on the thread count. */
#include "prune.h"
#include "eval/eval.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void blockrm_opts_default(blockrm_opts *o, int method) {
    memset(o, 0, sizeof *o);
    o->method = method;
    o->n_remove = 1;
    o->barrier = -1;
    o->bi_final_norm = 1;
    o->step_losses = 1;
    o->cache_bytes = 0;
}

const char *blockrm_method_name(int method) {
    switch (method) {
    case BR_SLEB: return "sleb";
    case BR_SLEB_ONESHOT: return "sleb-oneshot";
    case BR_SHORTGPT: return "shortgpt";
    default: return "?";
    }
}

int blockrm_count_from_ratio(double r, int n_layer) {
    double v = ceil(r * (double)n_layer - 1e-9);
    if (!(v >= 1)) return 1;
    if (v > n_layer) return n_layer;
    return (int)v;
}

void blockrm_report_free(blockrm_report *r) {
    if (!r) return;
    free(r->removed); free(r->loss); free(r->score);
    memset(r, 0, sizeof *r);
}

/* ---- the reference code's calibration ------------------------------------------------------ */
static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

pare_status calib_sleb_code(const pare_vocab *v, const char *path, int nsamples, int seqlen, uint64_t seed,
                            calib_data *out) {
    memset(out, 0, sizeof *out);
    if (nsamples <= 0) return pare_fail(PARE_ERR_ARG, "--nsamples must be positive (got %d)", nsamples);
    if (seqlen < 2) return pare_fail(PARE_ERR_ARG, "--seqlen must be at least 2 (got %d)", seqlen);
    char *buf; size_t len;
    pare_status st = pare_read_file(path, &buf, &len);
    if (st) return st;
    /* rows: lines, each with its '\n' (the last may have none) */
    size_t nrows = 0;
    for (size_t i = 0; i < len; i++) if (buf[i] == '\n') nrows++;
    if (len && buf[len - 1] != '\n') nrows++;
    if (!nrows) { free(buf); return pare_fail(PARE_ERR_ARG, "%s: calibration text is empty", path); }
    size_t *start = pare_malloc((nrows + 1) * sizeof(size_t)), *order = pare_malloc(nrows * sizeof(size_t));
    if (!start || !order) { free(start); free(order); free(buf); return PARE_ERR_NOMEM; }
    size_t r = 0;
    start[r++] = 0;
    for (size_t i = 0; i < len; i++) if (buf[i] == '\n' && i + 1 < len) start[r++] = i + 1;
    start[nrows] = len;
    /* Fisher-Yates with a seeded generator (reproducible; not Python's or datasets' order) */
    uint64_t s = seed ^ 0x51eb5eedc0de1234ull;
    for (size_t i = 0; i < nrows; i++) order[i] = i;
    for (size_t i = nrows - 1; i > 0; i--) {
        size_t j = (size_t)(splitmix(&s) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j]; order[j] = t;
    }
    size_t take = (size_t)nsamples < nrows ? (size_t)nsamples : nrows, tot = 0;
    for (size_t i = 0; i < take; i++) tot += start[order[i] + 1] - start[order[i]] + 2;
    char *text = pare_malloc(tot + 1);
    if (!text) { free(start); free(order); free(buf); return PARE_ERR_NOMEM; }
    size_t n = 0;
    for (size_t i = 0; i < take; i++) {
        if (i) { text[n++] = '\n'; text[n++] = '\n'; }
        size_t a = start[order[i]], b = start[order[i] + 1];
        memcpy(text + n, buf + a, b - a);
        n += b - a;
    }
    text[n] = 0;
    free(start); free(order); free(buf);
    int32_t *ids; size_t nids;
    st = pare_tokenize(v, text, n, 1, &ids, &nids);
    free(text);
    if (st) return st;
    size_t nw = nids / (size_t)seqlen;
    if (nw == 0) {
        free(ids);
        return pare_fail(PARE_ERR_ARG, "%s: %zu rows give %zu tokens, fewer than one window of %d (--calib-mode sleb-code)",
                         path, take, nids, seqlen);
    }
    if (nw > (size_t)(1 << 30) / (size_t)seqlen) nw = (size_t)(1 << 30) / (size_t)seqlen;
    out->ids = ids; /* the windows are the first nw * seqlen tokens, in place */
    out->n = (int)nw; out->T = seqlen; out->n_text_tokens = (int64_t)nids;
    return PARE_OK;
}

/* ---- shared machinery ------------------------------------------------------------------------ */
typedef struct br_worker {
    pare_ctx *ctx;
    float *y, *z;        /* T x E */
    float *lg;           /* T x V */
} br_worker;

typedef struct br_state {
    const pare_model *m;
    const calib_data *cd;
    int T, E, V, L, nth, lo;
    size_t per;          /* T * E floats: one window's hidden states */
    br_worker *wk;
    calib_runner *r;     /* r->x: inputs of alive position lo for every window (the base) */
    double *tok;         /* per-token NLL of the current pass: slots x n x (T - 1) */
    size_t tok_slots;
    /* errors raised inside worker threads: status and message, re-raised on the caller's */
    pare_status err;
    char errmsg[512];
    /* progress in block-equivalents x 1000 */
    pare_progress prog;
    int show;
    int64_t done, unit_block, unit_head;
} br_state;

static void br_error(br_state *b, pare_status st) {
    #pragma omp critical(br_err)
    {
        if (!b->err) {
            b->err = st;
            snprintf(b->errmsg, sizeof b->errmsg, "%s", pare_last_error());
        }
    }
}

static int br_failed(br_state *b) {
    pare_status e;
    #pragma omp atomic read
    e = b->err;
    return e != PARE_OK;
}

static void br_tick(br_state *b, int64_t units) {
    #pragma omp atomic
    b->done += units;
    if (b->show && omp_get_thread_num() == 0) {
        int64_t d;
        #pragma omp atomic read
        d = b->done;
        progress_update(&b->prog, d);
    }
}

static int64_t block_macs(const pare_model *m, int l) {
    const pare_layer *L = &m->layers[l];
    int64_t E = m->n_embd, hd = m->head_dim;
    return E * (2 * L->n_head * hd + 2 * L->n_head_kv * hd) + 3 * E * L->n_ff;
}

static void br_free(br_state *b) {
    if (b->wk)
        for (int t = 0; t < b->nth; t++) {
            pare_ctx_free(b->wk[t].ctx);
            free(b->wk[t].y); free(b->wk[t].z); free(b->wk[t].lg);
        }
    free(b->wk);
    free(b->tok);
    runner_free(b->r);
    memset(b, 0, sizeof *b);
}

static pare_status br_init(br_state *b, const pare_model *m, const calib_data *cd, int barrier, size_t tok_slots) {
    memset(b, 0, sizeof *b);
    b->m = m; b->cd = cd;
    b->T = cd->T; b->E = m->n_embd; b->V = m->n_vocab; b->L = m->n_layer;
    b->per = (size_t)cd->T * m->n_embd;
    b->nth = omp_get_max_threads();
    if (b->nth < 1) b->nth = 1;
    b->lo = barrier ? 1 : 0;
    b->tok_slots = tok_slots;
    pare_status st;
    if (!(b->wk = pare_calloc((size_t)b->nth, sizeof *b->wk))) return PARE_ERR_NOMEM;
    size_t ntok = (size_t)cd->n * (size_t)(cd->T - 1);
    size_t lgn = (size_t)cd->T * (size_t)(m->n_vocab > m->n_embd ? m->n_vocab : m->n_embd);
    if (!(b->tok = pare_calloc(tok_slots * ntok, sizeof(double)))) { br_free(b); return PARE_ERR_NOMEM; }
    for (int t = 0; t < b->nth; t++) {
        br_worker *w = &b->wk[t];
        if ((st = pare_ctx_new(m, cd->T, &w->ctx))) { br_free(b); return st; }
        if (!(w->y = pare_malloc(b->per * sizeof(float))) || !(w->z = pare_malloc(b->per * sizeof(float))) ||
            !(w->lg = pare_malloc(lgn * sizeof(float)))) {
            br_free(b);
            return pare_fail(PARE_ERR_NOMEM, "out of memory for the buffers of %d threads", b->nth);
        }
    }
    int64_t avg = 0;
    for (int l = 0; l < m->n_layer; l++) avg += block_macs(m, l);
    avg = m->n_layer ? avg / m->n_layer : 1;
    if (avg < 1) avg = 1;
    b->unit_block = 1000;
    b->unit_head = (int64_t)(1000.0 * (double)m->n_embd * (double)m->n_vocab / (double)avg) + 1;
    /* the base: embeddings, and through block 0 under the barrier (block 0 is never removed) */
    if ((st = runner_new(m, cd, &b->r))) { br_free(b); return st; }
    if (barrier && (st = runner_advance(b->r))) { br_free(b); return st; }
    return PARE_OK;
}

/* Run blocks[0..nb-1] on x (one window, in place), the head, and write the NLL of each of
 * the T-1 predictions into tok, computed as runner_loss_from does. */
static pare_status run_tail(br_state *b, br_worker *w, int win, float *x, const int *blocks, int nb, double *tok) {
    int T = b->T, V = b->V;
    pare_status st;
    for (int i = 0; i < nb; i++) {
        if ((st = block_forward(w->ctx, blocks[i], x, T, 0))) return st;
        br_tick(b, b->unit_block);
    }
    if ((st = forward_head(w->ctx, x, T, w->lg))) return st;
    const int32_t *ids = b->cd->ids + (size_t)win * T;
    const float *lg = w->lg;
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < T - 1; i++) {
        const float *row = lg + (size_t)i * V;
        float mx = row[0];
        for (int k = 1; k < V; k++) if (row[k] > mx) mx = row[k];
        double s = 0;
        for (int k = 0; k < V; k++) s += exp((double)(row[k] - mx));
        tok[i] = log(s) + mx - row[ids[i + 1]];
    }
    br_tick(b, b->unit_head);
    return PARE_OK;
}

/* Total of slot's per-token NLLs, summed window by window, token by token (as
 * runner_loss_from), so a loss here equals runner_loss_from's bit for bit. */
static double slot_total(const br_state *b, size_t slot) {
    size_t ntok = (size_t)b->cd->n * (size_t)(b->T - 1);
    const double *t = b->tok + slot * ntok;
    double total = 0;
    for (size_t i = 0; i < ntok; i++) total += t[i];
    return total;
}

static double *tok_at(br_state *b, size_t slot, int win) {
    return b->tok + (slot * (size_t)b->cd->n + (size_t)win) * (size_t)(b->T - 1);
}

/* Calibration loss of the model made of the blocks alive[0..A-1] (alive[0] == 0 under the
 * barrier): every window from the base through alive[lo..A-1] and the head. */
static pare_status eval_alive(br_state *b, const int *alive, int A, double *loss) {
    int n = b->cd->n;
    b->err = PARE_OK;
    #pragma omp parallel for schedule(dynamic, 1) num_threads(b->nth) if (n >= b->nth && b->nth > 1)
    for (int win = 0; win < n; win++) {
        if (br_failed(b)) continue;
        br_worker *w = &b->wk[omp_get_thread_num()];
        memcpy(w->y, b->r->x + (size_t)win * b->per, b->per * sizeof(float));
        pare_status st = run_tail(b, w, win, w->y, alive + b->lo, A - b->lo, tok_at(b, 0, win));
        if (st) br_error(b, st);
    }
    if (b->err) return pare_fail(b->err, "%s", b->errmsg);
    *loss = slot_total(b, 0);
    return PARE_OK;
}

/* Cached inputs of the candidates: for window c of a chunk, S + c * stride holds the inputs
 * of alive positions lo+1, lo+2, ... (those of lo are the base). When every window fits
 * (C == n), the cache is kept from one SLEB step to the next: removing the block at
 * position q leaves the inputs of positions <= q unchanged, so only the entries above are
 * recomputed. */
typedef struct br_cache {
    float *S;
    size_t stride;       /* floats per window: (first step's candidates - 1) x T x E */
    int C;               /* windows per chunk */
    int valid;           /* leading entries per window still valid (only when C == n) */
} br_cache;

static pare_status cache_init(br_state *b, int ncand, size_t cache_bytes, br_cache *k) {
    memset(k, 0, sizeof *k);
    int n = b->cd->n;
    k->stride = (size_t)(ncand > 1 ? ncand - 1 : 0) * b->per;
    size_t per_win = k->stride * sizeof(float);
    k->C = n;
    if (per_win > 0 && cache_bytes / per_win < (size_t)n) k->C = (int)(cache_bytes / per_win);
    if (k->C < 1) k->C = 1;
    if (per_win && !(k->S = pare_malloc((size_t)k->C * per_win)))
        return pare_fail(PARE_ERR_NOMEM, "out of memory for the cached inputs of %d candidates (--cache-mb)", ncand);
    return PARE_OK;
}

/* One SLEB pass over the model alive[0..A-1]: loss[j] = calibration loss with the block
 * alive[lo + j] switched off, j < ncand. */
static pare_status sleb_pass(br_state *b, const int *alive, int A, int ncand, br_cache *k, double *loss) {
    int n = b->cd->n, lo = b->lo, C = k->C;
    if (C < n) k->valid = 0;
    if (k->valid > ncand - 1) k->valid = ncand - 1;
    int v0 = k->valid;
    if (v0) br_tick(b, (int64_t)n * v0 * b->unit_block); /* planned, not needed */
    b->err = PARE_OK;
    for (int w0 = 0; w0 < n && !b->err; w0 += C) {
        int nc = n - w0 < C ? n - w0 : C;
        /* phase 1: inputs of candidates v0+1..ncand-1 (candidate 0's are the base) */
        if (ncand - 1 > v0) {
            #pragma omp parallel for schedule(dynamic, 1) num_threads(b->nth) if (nc >= b->nth && b->nth > 1)
            for (int c = 0; c < nc; c++) {
                if (br_failed(b)) continue;
                br_worker *w = &b->wk[omp_get_thread_num()];
                float *Sc = k->S + (size_t)c * k->stride;
                const float *prev = v0 ? Sc + (size_t)(v0 - 1) * b->per : b->r->x + (size_t)(w0 + c) * b->per;
                for (int j = v0 + 1; j < ncand; j++) {
                    float *cur = Sc + (size_t)(j - 1) * b->per;
                    memcpy(cur, prev, b->per * sizeof(float));
                    pare_status st = block_forward(w->ctx, alive[lo + j - 1], cur, b->T, 0);
                    if (st) { br_error(b, st); break; }
                    br_tick(b, b->unit_block);
                    prev = cur;
                }
            }
        }
        if (b->err) break;
        /* phase 2: every (candidate, window), the costliest (lowest candidates) first */
        int ntask = nc * ncand;
        #pragma omp parallel for schedule(dynamic, 1) num_threads(b->nth) if (ntask >= b->nth && b->nth > 1)
        for (int t = 0; t < ntask; t++) {
            if (br_failed(b)) continue;
            int j = t / nc, c = t % nc, win = w0 + c;
            br_worker *w = &b->wk[omp_get_thread_num()];
            const float *src = j == 0 ? b->r->x + (size_t)win * b->per : k->S + (size_t)c * k->stride + (size_t)(j - 1) * b->per;
            memcpy(w->y, src, b->per * sizeof(float));
            int p = lo + j; /* alive position switched off */
            pare_status st = run_tail(b, w, win, w->y, alive + p + 1, A - p - 1, tok_at(b, (size_t)j, win));
            if (st) br_error(b, st);
        }
    }
    k->valid = 0;
    if (b->err) return pare_fail(b->err, "%s", b->errmsg);
    for (int j = 0; j < ncand; j++) loss[j] = slot_total(b, (size_t)j);
    return PARE_OK;
}

/* ShortGPT's block influence of every block at alive position >= lo of the dense model:
 * bi[l] = sum over tokens of 1 - cos(input, output) (the last block's output after the final
 * norm when final_norm). Per-window sums are added in window order. */
static pare_status bi_pass(br_state *b, int final_norm, double *bi) {
    int n = b->cd->n, L = b->L, T = b->T, E = b->E;
    double *acc = pare_calloc((size_t)n * L, sizeof(double));
    if (!acc) return PARE_ERR_NOMEM;
    b->err = PARE_OK;
    #pragma omp parallel for schedule(dynamic, 1) num_threads(b->nth) if (n >= b->nth && b->nth > 1)
    for (int win = 0; win < n; win++) {
        if (br_failed(b)) continue;
        br_worker *w = &b->wk[omp_get_thread_num()];
        float *x = w->y, *y = w->z;
        memcpy(x, b->r->x + (size_t)win * b->per, b->per * sizeof(float));
        for (int l = b->lo; l < L; l++) {
            memcpy(y, x, b->per * sizeof(float));
            pare_status st = block_forward(w->ctx, l, y, T, 0);
            if (st) { br_error(b, st); break; }
            br_tick(b, b->unit_block);
            const float *out = y;
            if (l == L - 1 && final_norm) { /* HF hidden_states[-1] is after the final norm */
                float *nb = w->lg; /* T x max(V, E) floats: free here */
                for (int t = 0; t < T; t++)
                    rmsnorm(nb + (size_t)t * E, y + (size_t)t * E, b->m->out_norm->data, E, b->m->norm_eps);
                out = nb;
            }
            double s = 0;
            for (int t = 0; t < T; t++) {
                const float *a = x + (size_t)t * E, *c = out + (size_t)t * E;
                double dot = 0, na = 0, nc = 0;
                for (int i = 0; i < E; i++) { dot += (double)a[i] * c[i]; na += (double)a[i] * a[i]; nc += (double)c[i] * c[i]; }
                double den = sqrt(na * nc); /* sqrt(x * x) == x: an identity block gives exactly 0 */
                s += 1.0 - (den > 0 ? dot / den : 0.0);
            }
            acc[(size_t)win * L + l] = s;
            float *t = x; x = y; y = t;
        }
    }
    if (b->err) { free(acc); return pare_fail(b->err, "%s", b->errmsg); }
    for (int l = 0; l < L; l++) {
        double s = 0;
        for (int win = 0; win < n; win++) s += acc[(size_t)win * L + l];
        bi[l] = s;
    }
    free(acc);
    return PARE_OK;
}

/* ---- selection ------------------------------------------------------------------------------ */
/* Indices 0..n-1 ordered by increasing key, ties by index (stable). */
static void rank_by(const double *key, int n, int *idx) {
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int i = 1; i < n; i++) { /* insertion sort: n is the number of blocks */
        int v = idx[i], j = i - 1;
        while (j >= 0 && key[idx[j]] > key[v]) { idx[j + 1] = idx[j]; j--; }
        idx[j + 1] = v;
    }
}

/* Remove position p from alive[0..A-1]. */
static void drop_pos(int *alive, int A, int p) { memmove(alive + p, alive + p + 1, (size_t)(A - p - 1) * sizeof(int)); }

pare_status blockrm_select(const pare_model *m, const calib_data *cd, const blockrm_opts *o, int show_progress,
                           blockrm_report *rep) {
    memset(rep, 0, sizeof *rep);
    if (!m || !cd || !o) return pare_fail(PARE_ERR_ARG, "blockrm_select: missing model, calibration or options");
    if (o->method < BR_SLEB || o->method > BR_SHORTGPT) return pare_fail(PARE_ERR_ARG, "unknown block-removal method %d", o->method);
    int L = m->n_layer, K = o->n_remove;
    int barrier = o->barrier >= 0 ? !!o->barrier : o->method != BR_SHORTGPT;
    if (cd->n <= 0 || cd->T < 2 || !cd->ids) return pare_fail(PARE_ERR_ARG, "block removal needs calibration windows of at least 2 tokens");
    int kmax = barrier ? L - 2 : L - 1;
    if (K < 1 || K > kmax)
        return pare_fail(PARE_ERR_ARG, "cannot remove %d of %d blocks (1 to %d%s)", K, L, kmax > 0 ? kmax : 0,
                         barrier ? ": the first and last blocks are never removed" : "");
    double t0 = pare_now();
    rep->method = o->method; rep->barrier = barrier; rep->n_layer = L; rep->k = K;
    rep->windows = cd->n; rep->tokens = (int64_t)cd->n * (cd->T - 1);
    rep->removed = pare_malloc((size_t)K * sizeof(int));
    rep->loss = pare_malloc((size_t)K * sizeof(double));
    rep->score = pare_malloc((size_t)L * sizeof(double));
    int *alive = pare_malloc((size_t)L * sizeof(int)), *idx = pare_malloc((size_t)L * sizeof(int));
    double *loss = pare_malloc((size_t)L * sizeof(double));
    if (!rep->removed || !rep->loss || !rep->score || !alive || !idx || !loss) {
        free(alive); free(idx); free(loss); blockrm_report_free(rep);
        return PARE_ERR_NOMEM;
    }
    for (int l = 0; l < L; l++) { alive[l] = l; rep->score[l] = NAN; }
    for (int i = 0; i < K; i++) rep->loss[i] = NAN;
    int lo = barrier ? 1 : 0;
    int slots = o->method == BR_SHORTGPT ? 1 : L - lo - barrier;
    if (slots < 1) slots = 1;
    size_t cache = o->cache_bytes ? o->cache_bytes : (size_t)2 << 30;

    /* planned work (progress units), mirroring the passes below */
    int64_t n = cd->n, ub = 1000, total = 0;
    br_state b;
    br_cache kc = {0};
    /* Our threads each run whole windows: the kernels inside run single-threaded (one active
     * parallel level), and sgemm single-threaded (as k_matmul sets it; done once here so that
     * our threads never change OpenBLAS's setting concurrently). */
    int blas_threads = openblas_get_num_threads(), levels = omp_get_max_active_levels();
    openblas_set_num_threads(1);
    omp_set_max_active_levels(1);
    pare_status st = br_init(&b, m, cd, barrier, (size_t)slots);
    if (st) goto done;
    b.show = show_progress;
    int64_t uh = b.unit_head;
    total += n * ((L - lo) * ub + uh); /* dense loss */
    if (o->method == BR_SHORTGPT) {
        total += n * (L - lo) * ub;
        if (o->step_losses) for (int t = 1; t <= K; t++) total += n * ((L - t - lo) * ub + uh);
    } else {
        int steps = o->method == BR_SLEB ? K : 1;
        for (int t = 0; t < steps; t++) {
            int A = L - t, nc = A - lo - barrier;
            total += n * ((nc - 1) * ub + nc * uh);
            for (int j = 0; j < nc; j++) total += n * (A - 1 - (lo + j)) * ub;
        }
        if (o->method == BR_SLEB_ONESHOT && o->step_losses)
            for (int t = 2; t <= K; t++) total += n * ((L - t - lo) * ub + uh);
    }
    progress_start(&b.prog, blockrm_method_name(o->method), total);
    if (!show_progress) b.prog.enabled = 0;
    rep->threads = b.nth;

    if ((st = eval_alive(&b, alive, L, &rep->dense_loss))) goto done;
    if (o->method == BR_SLEB) {
        int A = L;
        if ((st = cache_init(&b, A - lo - barrier, cache, &kc))) goto done;
        for (int t = 0; t < K; t++, A--) {
            int nc = A - lo - barrier;
            if ((st = sleb_pass(&b, alive, A, nc, &kc, loss))) goto done;
            int best = 0;
            for (int j = 1; j < nc; j++) if (loss[j] < loss[best]) best = j; /* first on ties */
            if (t == 0) for (int j = 0; j < nc; j++) rep->score[alive[lo + j]] = loss[j];
            rep->removed[t] = alive[lo + best];
            rep->loss[t] = loss[best];
            drop_pos(alive, A, lo + best);
            kc.valid = best; /* the inputs of positions <= lo + best are unchanged */
        }
    } else {
        int nc = L - lo - barrier;
        if (o->method == BR_SLEB_ONESHOT) {
            if ((st = cache_init(&b, nc, cache, &kc)) || (st = sleb_pass(&b, alive, L, nc, &kc, loss))) goto done;
        } else {
            if ((st = bi_pass(&b, o->bi_final_norm, rep->score))) goto done;
            for (int j = 0; j < nc; j++) loss[j] = rep->score[lo + j];
            for (int l = 0; l < L; l++) if (l < lo || l >= lo + nc) rep->score[l] = NAN;
        }
        if (o->method == BR_SLEB_ONESHOT) for (int j = 0; j < nc; j++) rep->score[lo + j] = loss[j];
        rank_by(loss, nc, idx);
        for (int t = 0; t < K; t++) rep->removed[t] = lo + idx[t];
        if (o->method == BR_SLEB_ONESHOT) rep->loss[0] = loss[idx[0]];
        if (o->step_losses) {
            int A = L;
            for (int t = 0; t < K; t++) {
                for (int p = 0; p < A; p++) if (alive[p] == rep->removed[t]) { drop_pos(alive, A, p); break; }
                A--;
                if (t == 0 && o->method == BR_SLEB_ONESHOT) continue; /* the pass's own number */
                if ((st = eval_alive(&b, alive, A, &rep->loss[t]))) goto done;
            }
        }
    }
done:
    progress_end(&b.prog);
    free(kc.S);
    br_free(&b);
    openblas_set_num_threads(blas_threads);
    omp_set_max_active_levels(levels);
    free(alive); free(idx); free(loss);
    if (st) { blockrm_report_free(rep); return st; }
    rep->seconds = pare_now() - t0;
    return PARE_OK;
}
