/* calib.c - calibration windows, the block-by-block runner, per-input statistics. */
#include "calib.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- windows ------------------------------------------------------------------------- */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

pare_status calib_from_text(const pare_vocab *v, const char *path, int nsamples, int seqlen, uint64_t seed, int order,
                            calib_data *out) {
    memset(out, 0, sizeof *out);
    if (nsamples <= 0) return pare_fail(PARE_ERR_ARG, "--nsamples must be positive (got %d)", nsamples);
    if (seqlen < 2) return pare_fail(PARE_ERR_ARG, "--seqlen must be at least 2 (got %d)", seqlen);
    char *buf; size_t len;
    pare_status st = pare_read_file(path, &buf, &len);
    if (st) return st;
    int32_t *ids; size_t n;
    st = pare_tokenize(v, buf, len, 1, &ids, &n);
    free(buf);
    if (st) return st;
    if (n < (size_t)seqlen) {
        free(ids);
        return pare_fail(PARE_ERR_ARG, "%s: calibration text has %zu tokens, fewer than one window of %d", path, n, seqlen);
    }
    if (order == CALIB_FIRST && n / (size_t)seqlen < (size_t)nsamples) {
        free(ids);
        return pare_fail(PARE_ERR_ARG, "%s: %zu tokens hold only %zu windows of %d, %d asked (--calib-order first)", path, n,
                         n / (size_t)seqlen, seqlen, nsamples);
    }
    out->ids = pare_calloc((size_t)nsamples * seqlen, sizeof(int32_t));
    if (!out->ids) { free(ids); return PARE_ERR_NOMEM; }
    out->n = nsamples; out->T = seqlen; out->n_text_tokens = (int64_t)n;
    uint64_t s = mix64(seed ^ 0x5eedca11b7a7e5ull);
    for (int i = 0; i < nsamples; i++) {
        size_t start;
        if (order == CALIB_FIRST) start = (size_t)i * seqlen;
        else { s += 0x9e3779b97f4a7c15ull; start = (size_t)(mix64(s) % (uint64_t)(n - (size_t)seqlen + 1)); }
        memcpy(out->ids + (size_t)i * seqlen, ids + start, (size_t)seqlen * sizeof(int32_t));
    }
    free(ids);
    return PARE_OK;
}

void calib_free(calib_data *cd) { free(cd->ids); memset(cd, 0, sizeof *cd); }

void calib_stats_free(calib_stats *s) {
    free(s->sumsq); free(s->sum); free(s->min); free(s->max); free(s->hist); free(s->gram);
    memset(s, 0, sizeof *s);
}

double hist_entropy(const uint32_t *h, int K) {
    double n = 0, e = 0;
    for (int k = 0; k < K; k++) n += h[k];
    if (n == 0) return 0;
    for (int k = 0; k < K; k++)
        if (h[k]) { double p = h[k] / n; e -= p * log(p); }
    return e;
}

/* ---- runner ------------------------------------------------------------------------- */
pare_status runner_new(const pare_model *m, const calib_data *cd, calib_runner **out) {
    *out = NULL;
    calib_runner *r = pare_calloc(1, sizeof *r);
    if (!r) return PARE_ERR_NOMEM;
    r->m = m; r->cd = cd;
    size_t per = (size_t)cd->T * m->n_embd, tot;
    if (!pare_mul_ok(per, (size_t)cd->n, &tot) || !(r->x = pare_calloc(tot, sizeof(float))) ||
        !(r->y = pare_calloc(per, sizeof(float)))) {
        runner_free(r);
        return pare_fail(PARE_ERR_NOMEM, "out of memory for %d x %d calibration activations of width %d", cd->n, cd->T, m->n_embd);
    }
    pare_status st = pare_ctx_new(m, cd->T, &r->ctx);
    for (int w = 0; w < cd->n && !st; w++) st = forward_embed(r->ctx, cd->ids + (size_t)w * cd->T, cd->T, r->x + (size_t)w * per);
    if (st) { runner_free(r); return st; }
    *out = r;
    return PARE_OK;
}

size_t calib_plan_bytes(const pare_model *m, int n, int T, int gram) {
    size_t E = (size_t)m->n_embd, q = 1, kv = 1, F = 1;
    for (int l = 0; l < m->n_layer; l++) {
        const pare_layer *L = &m->layers[l];
        size_t lq = (size_t)L->n_head * m->head_dim, lk = (size_t)L->n_head_kv * m->head_dim;
        if (lq > q) q = lq;
        if (lk > kv) kv = lk;
        if ((size_t)L->n_ff > F) F = (size_t)L->n_ff;
    }
    size_t t = (size_t)T, b = 0;
    b += ((size_t)n + 1) * t * E * sizeof(float);                          /* x, y */
    b += (size_t)m->n_layer * t * kv * 2 * sizeof(float);                  /* KV caches */
    b += t * (2 * E + 2 * q + 2 * kv + 2 * F) * sizeof(float);             /* engine scratch */
    b += t * (size_t)m->n_vocab * sizeof(float);                           /* logits of one window */
    size_t wmax = F * E > q * E ? F * E : q * E;
    b += 2 * wmax * sizeof(float);                                         /* float copies */
    if (gram) {
        size_t wide = F > q ? F : q;
        wide = wide > E ? wide : E;
        b += (2 * E * E + q * q + F * F) * sizeof(double);                 /* one block's Grams */
        b += 2 * wide * wide * sizeof(double);                             /* H and its factor */
    }
    return b;
}

void runner_free(calib_runner *r) {
    if (!r) return;
    pare_ctx_free(r->ctx);
    free(r->x); free(r->y); free(r);
}

static pare_status stats_prepare(calib_stats *s, unsigned want, int width, int K) {
    if (s->width && s->width != width) return pare_fail(PARE_ERR_ARG, "statistics width changed (%d to %d)", s->width, width);
    s->width = width;
    s->want = want;
    if ((want & STAT_SUMSQ) && !s->sumsq && !(s->sumsq = pare_calloc((size_t)width, sizeof(double)))) return PARE_ERR_NOMEM;
    if ((want & STAT_SUM) && !s->sum && !(s->sum = pare_calloc((size_t)width, sizeof(double)))) return PARE_ERR_NOMEM;
    if ((want & STAT_MINMAX) && !s->min) {
        s->min = pare_calloc((size_t)width, sizeof(float));
        s->max = pare_calloc((size_t)width, sizeof(float));
        if (!s->min || !s->max) return PARE_ERR_NOMEM;
        for (int j = 0; j < width; j++) { s->min[j] = INFINITY; s->max[j] = -INFINITY; }
    }
    if (want & STAT_HIST) {
        if (!s->min) return pare_fail(PARE_ERR_ARG, "a histogram pass needs a min/max pass first");
        if (!s->hist) {
            s->K = K;
            if (!(s->hist = pare_calloc((size_t)width * K, sizeof(uint32_t)))) return PARE_ERR_NOMEM;
        }
    }
    if ((want & STAT_GRAM) && !s->gram && !(s->gram = pare_calloc((size_t)width * width, sizeof(double)))) return PARE_ERR_NOMEM;
    return PARE_OK;
}

typedef struct hook_state { calib_runner *r; const unsigned *want; float *gtmp; size_t gcap; int failed; } hook_state;

static void collect_hook(void *user, int layer, int point, const float *x, int n, int w) {
    (void)layer;
    hook_state *hs = user;
    calib_stats *s = &hs->r->st[point];
    unsigned want = hs->want[point];
    if (!want) return;
    int t0 = hs->r->skip_first_token ? 1 : 0;
    const float *X = x + (size_t)t0 * w;
    int T = n - t0;
    if (T <= 0) return;
    if (want != STAT_HIST) s->ntok += T; /* a histogram-only pass re-reads tokens already counted */
    #pragma omp parallel for schedule(static) if ((size_t)T * w >= 16384)
    for (int j = 0; j < w; j++) {
        double ss = 0, sm = 0;
        float mn = s->min ? s->min[j] : 0, mx = s->max ? s->max[j] : 0;
        for (int t = 0; t < T; t++) {
            float v = X[(size_t)t * w + j];
            ss += (double)v * v; sm += v;
            if (v < mn) mn = v;
            if (v > mx) mx = v;
        }
        if (want & STAT_SUMSQ) s->sumsq[j] += ss;
        if (want & STAT_SUM) s->sum[j] += sm;
        if (want & STAT_MINMAX) { s->min[j] = mn; s->max[j] = mx; }
        if (want & STAT_HIST) {
            uint32_t *h = s->hist + (size_t)j * s->K;
            float lo = s->min[j], span = s->max[j] - s->min[j];
            for (int t = 0; t < T; t++) {
                int b = 0;
                if (span > 0) {
                    b = (int)((X[(size_t)t * w + j] - lo) / span * (float)s->K);
                    if (b >= s->K) b = s->K - 1;
                    if (b < 0) b = 0;
                }
                h[b]++;
            }
        }
    }
    if (want & STAT_GRAM) {
        size_t need = (size_t)w * w;
        if (hs->gcap < need) {
            free(hs->gtmp);
            hs->gtmp = malloc(need * sizeof(float));
            hs->gcap = hs->gtmp ? need : 0;
            if (!hs->gtmp) { hs->failed = 1; return; }
        }
        /* upper triangle of X^T X in float, accumulated in double (row by row: the lower
         * triangle is filled once, when the pass ends) */
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, w, T, 1.0f, X, w, 0.0f, hs->gtmp, w);
        #pragma omp parallel for schedule(dynamic, 16)
        for (int i = 0; i < w; i++) {
            double *g = s->gram + (size_t)i * w;
            const float *f = hs->gtmp + (size_t)i * w;
            for (int j = i; j < w; j++) g[j] += f[j];
        }
    }
}

/* Lower triangle of a Gram matrix from its upper one, in tiles (a column walk of the whole
 * matrix would miss the cache on every element). */
static void gram_mirror(double *g, int w) {
    enum { TB = 64 };
    #pragma omp parallel for schedule(dynamic, 1)
    for (int ib = 0; ib < w; ib += TB)
        for (int jb = 0; jb <= ib; jb += TB)
            for (int i = ib; i < ib + TB && i < w; i++)
                for (int j = jb; j < jb + TB && j < i; j++) g[(size_t)i * w + j] = g[(size_t)j * w + i];
}

/* One pass of block r->block over every window with the statistics hook. in_place: on x
 * itself, whose windows then hold the block's outputs; else on a copy, stopped right after
 * the last capture point wanted. */
static pare_status collect_pass(calib_runner *r, const unsigned want[FWD_N_POINTS], int K, calib_stats *st, int in_place) {
    const pare_model *m = r->m;
    int l = r->block, E = m->n_embd, hd = m->head_dim;
    const pare_layer *L = &m->layers[l];
    int widths[FWD_N_POINTS] = {E, L->n_head * hd, E, L->n_ff};
    pare_status s;
    for (int p = 0; p < FWD_N_POINTS; p++)
        if (want[p] && (s = stats_prepare(&st[p], want[p], widths[p], K))) return s;
    r->st = st;
    hook_state hs = {r, want, NULL, 0, 0};
    ctx_set_hook(r->ctx, collect_hook, &hs);
    int last = -1;
    for (int p = 0; p < FWD_N_POINTS; p++) if (want[p]) last = p;
    if (!in_place && last >= 0) ctx_set_stop(r->ctx, last);
    size_t per = (size_t)r->cd->T * E;
    pare_status res = PARE_OK;
    for (int w = 0; w < r->cd->n && !res; w++) {
        float *x = r->x + (size_t)w * per;
        if (!in_place) x = memcpy(r->y, x, per * sizeof(float));
        res = block_forward(r->ctx, l, x, r->cd->T, 0);
    }
    ctx_set_stop(r->ctx, -1);
    ctx_set_hook(r->ctx, NULL, NULL);
    free(hs.gtmp);
    r->st = NULL;
    if (!res && hs.failed) res = pare_fail(PARE_ERR_NOMEM, "out of memory for a Gram matrix");
    for (int p = 0; p < FWD_N_POINTS && !res; p++)
        if ((want[p] & STAT_GRAM) && st[p].gram) gram_mirror(st[p].gram, st[p].width);
    return res;
}

pare_status runner_collect(calib_runner *r, const unsigned want[FWD_N_POINTS], int K, calib_stats *st) {
    return collect_pass(r, want, K, st, 0);
}

pare_status runner_collect_advance(calib_runner *r, const unsigned want[FWD_N_POINTS], int K, calib_stats *st) {
    pare_status res = collect_pass(r, want, K, st, 1);
    if (res) return res;
    r->block++;
    return pare_inputs_unchanged();
}

pare_status runner_advance(calib_runner *r) {
    size_t per = (size_t)r->cd->T * r->m->n_embd;
    for (int w = 0; w < r->cd->n; w++) {
        pare_status st = block_forward(r->ctx, r->block, r->x + (size_t)w * per, r->cd->T, 0);
        if (st) return st;
    }
    r->block++;
    return pare_inputs_unchanged(); /* a model rewritten under a long run: stop at this block */
}

pare_status runner_loss_from(calib_runner *r, int from, const unsigned char *skip, double *nll) {
    const pare_model *m = r->m;
    int T = r->cd->T, V = m->n_vocab;
    size_t per = (size_t)T * m->n_embd;
    float *lg = pare_calloc((size_t)T * V, sizeof(float));
    double *tok = pare_calloc((size_t)T, sizeof(double));
    if (!lg || !tok) { free(lg); free(tok); return PARE_ERR_NOMEM; }
    double total = 0;
    pare_status st = PARE_OK;
    for (int w = 0; w < r->cd->n && !st; w++) {
        memcpy(r->y, r->x + (size_t)w * per, per * sizeof(float));
        for (int l = from; l < m->n_layer && !st; l++)
            if (!skip || !skip[l]) st = block_forward(r->ctx, l, r->y, T, 0);
        if (!st) st = forward_head(r->ctx, r->y, T, lg);
        if (st) break;
        const int32_t *ids = r->cd->ids + (size_t)w * T;
        #pragma omp parallel for schedule(static)
        for (int i = 0; i < T - 1; i++) {
            const float *row = lg + (size_t)i * V;
            float mx = row[0];
            for (int k = 1; k < V; k++) if (row[k] > mx) mx = row[k];
            double s = 0;
            for (int k = 0; k < V; k++) s += exp((double)(row[k] - mx));
            tok[i] = log(s) + mx - row[ids[i + 1]];
        }
        for (int i = 0; i < T - 1; i++) total += tok[i];
    }
    free(lg); free(tok);
    if (!st) *nll = total;
    return st;
}
