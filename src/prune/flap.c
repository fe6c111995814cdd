/* flap.c - unit scores of the structured methods (low = removed first):
 *
 *   numerical     alpha * mean_{head} z, z per channel (numerical.c); alpha = 4 hd / 3
 *   flap          FLAP (METHODS.md 11): WIFV_j = Var(x_j) ||P[:, j]||^2 on the o and down
 *                 inputs; attention WIFV^2 standardized per layer, mean per head; MLP WIFV
 *                 standardized per layer; then the bias compensation b = P[:, pruned] mean(x)
 *                 on o / down (structured.c: flap_add_biases)
 *   flap-nobias   the same units without the bias
 *   mag-struct    mean w^2 over every weight of the unit (q rows, o columns, the KV head's
 *                 k/v rows shared by its group; gate/up rows and the down column)
 *   wanda-struct  Wanda-sp: mean_i |P_ij| sqrt(mean x_j^2) on o/down, mean per head */
#include "prune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *tensor_f32(const pare_tensor *t) {
    float *w = pare_malloc((size_t)pare_tensor_nelem(t) * sizeof(float));
    if (!w) return NULL;
    for (int64_t r = 0; r < t->ne[1]; r++) pare_tensor_row_f32(t, r, w + r * t->ne[0]);
    return w;
}

void flap_wifv(const float *P, int64_t E, int D, const calib_stats *st, double *wifv) {
    double n = (double)st->ntok;
    for (int j = 0; j < D; j++) wifv[j] = 0;
    for (int64_t e = 0; e < E; e++)
        for (int j = 0; j < D; j++) wifv[j] += (double)P[e * D + j] * P[e * D + j];
    for (int j = 0; j < D; j++) {
        double mean = n > 0 ? st->sum[j] / n : 0;
        double var = n > 1 ? (st->sumsq[j] - n * mean * mean) / (n - 1) : 0;
        if (var < 0) var = 0;
        wifv[j] *= var;
    }
}

void sp_standardize(double *x, int n) {
    if (n <= 0) return;
    double m = 0, v = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m /= n;
    for (int i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    double sd = n > 1 ? sqrt(v / (n - 1)) : 0;
    for (int i = 0; i < n; i++) x[i] = sd > 0 ? (x[i] - m) / sd : x[i] - m;
}

void flap_bias(const float *P, int64_t E, int D, const double *mean, const uint8_t *keep, double *b) {
    for (int64_t e = 0; e < E; e++) {
        double s = 0;
        for (int j = 0; j < D; j++)
            if (!keep[j]) s += (double)P[e * D + j] * mean[j];
        b[e] = s;
    }
}

void wanda_struct_scores(const float *P, int64_t E, int D, const calib_stats *st, double *s) {
    double n = st->ntok > 0 ? (double)st->ntok : 1;
    for (int j = 0; j < D; j++) s[j] = 0;
    for (int64_t e = 0; e < E; e++)
        for (int j = 0; j < D; j++) s[j] += fabs((double)P[e * D + j]);
    for (int j = 0; j < D; j++) s[j] = s[j] / (double)E * sqrt(st->sumsq[j] / n);
}

static void head_means(const double *ch, int H, int hd, double alpha, double *out) {
    for (int h = 0; h < H; h++) {
        double s = 0;
        for (int d = 0; d < hd; d++) s += ch[h * hd + d];
        out[h] = alpha * s / hd;
    }
}

static double sumsq_rows(const float *W, int64_t r0, int64_t nr, int64_t cols) {
    double s = 0;
    for (int64_t i = r0 * cols; i < (r0 + nr) * cols; i++) s += (double)W[i] * W[i];
    return s;
}

static double sumsq_cols(const float *W, int64_t rows, int64_t cols, int64_t c0, int64_t nc) {
    double s = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = c0; c < c0 + nc; c++) s += (double)W[r * cols + c] * W[r * cols + c];
    return s;
}

static pare_status magnitude_scores(const pare_model *m, int l, sprune_plan *p) {
    const pare_layer *L = &m->layers[l];
    sprune_layer *sl = &p->l[l];
    int64_t E = m->n_embd, hd = m->head_dim;
    pare_status st = PARE_OK;
    if (L->n_head > 0) {
        float *q = tensor_f32(L->wq), *k = tensor_f32(L->wk), *v = tensor_f32(L->wv), *o = tensor_f32(L->wo);
        if (!q || !k || !v || !o) st = PARE_ERR_NOMEM;
        int H = L->n_head, g = L->n_head / L->n_head_kv, D = H * (int)hd;
        for (int h = 0; h < H && !st; h++) {
            int kv = h / g;
            double s = sumsq_rows(q, h * hd, hd, E) + sumsq_cols(o, E, D, h * hd, hd) +
                       (sumsq_rows(k, kv * hd, hd, E) + sumsq_rows(v, kv * hd, hd, E)) / g;
            double n = (double)(2 * hd * E) + (double)(2 * hd * E) / g;
            sl->head_score[h] = s / n;
        }
        free(q); free(k); free(v); free(o);
    }
    if (!st && L->n_ff > 0) {
        float *ga = tensor_f32(L->w_gate), *up = tensor_f32(L->w_up), *dn = tensor_f32(L->w_down);
        if (!ga || !up || !dn) st = PARE_ERR_NOMEM;
        int F = L->n_ff;
        for (int j = 0; j < F && !st; j++)
            sl->ff_score[j] = (sumsq_rows(ga, j, 1, E) + sumsq_rows(up, j, 1, E) + sumsq_cols(dn, E, F, j, 1)) / (3.0 * E);
        free(ga); free(up); free(dn);
    }
    return st;
}

/* The attention / MLP ratio that enters the numerical objective's r = (1 - rho) D. */
static double np_rho(const sprune_opts *o, int attn) {
    if (o->target == SP_TARGET_TYPES) return attn ? o->head_ratio : o->ffn_ratio;
    return o->ratio;
}

pare_status sprune_layer_scores(const pare_model *m, int l, const sprune_opts *o, const calib_stats *o_st,
                                const calib_stats *down_st, sprune_plan *p) {
    const pare_layer *L = &m->layers[l];
    sprune_layer *sl = &p->l[l];
    if (o->method == SP_MAGNITUDE) return magnitude_scores(m, l, p);
    int64_t E = m->n_embd;
    int hd = m->head_dim;
    pare_status st = PARE_OK;
    for (int part = 0; part < 2 && !st; part++) {
        int attn = part == 0;
        if (attn ? L->n_head <= 0 : L->n_ff <= 0) continue;
        const pare_tensor *t = attn ? L->wo : L->w_down;
        const calib_stats *cs = attn ? o_st : down_st;
        int D = attn ? L->n_head * hd : L->n_ff;
        if (!cs || cs->width != D) return pare_fail(PARE_ERR_ARG, "layer %d: missing statistics for %s", l, t->name);
        float *P = tensor_f32(t);
        double *ch = pare_malloc((size_t)D * sizeof(double));
        if (!P || !ch) { free(P); free(ch); return PARE_ERR_NOMEM; }
        switch (o->method) {
        case SP_NUMERICAL:
            if (!cs->gram) { st = pare_fail(PARE_ERR_ARG, "layer %d: numerical pruning needs a Gram matrix", l); break; }
            st = np_channel_scores(P, E, D, cs->gram, np_rho(o, attn), o, ch);
            break;
        case SP_FLAP:
        case SP_FLAP_NOBIAS:
            if (!cs->sum || !cs->sumsq) { st = pare_fail(PARE_ERR_ARG, "layer %d: FLAP needs means and variances", l); break; }
            flap_wifv(P, E, D, cs, ch);
            if (o->method == SP_FLAP) { /* the means the bias compensation needs */
                double **mean = attn ? &sl->mean_o : &sl->mean_ff;
                free(*mean);
                if (!(*mean = pare_malloc((size_t)D * sizeof(double)))) { st = PARE_ERR_NOMEM; break; }
                for (int j = 0; j < D; j++) (*mean)[j] = cs->ntok > 0 ? cs->sum[j] / (double)cs->ntok : 0;
            }
            if (attn) for (int j = 0; j < D; j++) ch[j] *= ch[j];
            sp_standardize(ch, D);
            break;
        case SP_WANDA:
            if (!cs->sumsq) { st = pare_fail(PARE_ERR_ARG, "layer %d: wanda-struct needs input norms", l); break; }
            wanda_struct_scores(P, E, D, cs, ch);
            break;
        default: st = pare_fail(PARE_ERR_ARG, "unknown structured method %d", o->method);
        }
        if (!st) {
            if (attn) head_means(ch, L->n_head, hd, o->method == SP_NUMERICAL ? 4.0 * hd / 3.0 : 1.0, sl->head_score);
            else memcpy(sl->ff_score, ch, (size_t)D * sizeof(double));
        }
        free(P); free(ch);
    }
    return st;
}
