/* driver.c - the sequential layer-wise pipeline (METHODS.md 0.2) shared by the one-shot
 * unstructured and N:M methods: inputs of block 0 captured once; per block the statistics
 * each method needs are collected at the four capture points (each shared input once),
 * the seven matrices are pruned in F32 working copies, written back in their type, and the
 * pruned block is re-run to produce the inputs of the next block. */
#include "prune.h"

#include "eval/eval.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MQ, MK, MV, MO, MG, MU, MD, N_MATS };
static const int mat_point[N_MATS] = {FWD_ATTN_IN, FWD_ATTN_IN, FWD_ATTN_IN, FWD_O_IN, FWD_FFN_IN, FWD_FFN_IN, FWD_DOWN_IN};

static pare_tensor **layer_mat(pare_layer *L, int k) {
    switch (k) {
    case MQ: return &L->wq; case MK: return &L->wk; case MV: return &L->wv; case MO: return &L->wo;
    case MG: return &L->w_gate; case MU: return &L->w_up; default: return &L->w_down;
    }
}

static float *to_f32(const pare_tensor *t) {
    float *w = pare_malloc((size_t)pare_tensor_nelem(t) * sizeof(float));
    if (!w) return NULL;
    for (int64_t r = 0; r < t->ne[1]; r++) pare_tensor_row_f32(t, r, w + r * t->ne[0]);
    return w;
}

/* Replace t's data by W converted to t's type, kept in the model's spill file (not in
 * memory: a pruned model as large as the original never has to fit in RAM). */
static pare_status store(pare_model *m, pare_tensor *t, const float *W) {
    size_t rb = pare_row_bytes(t->type, t->ne[0]), nb = rb * (size_t)t->ne[1];
    void *d = pare_malloc(nb);
    if (!d) return PARE_ERR_NOMEM;
    for (int64_t r = 0; r < t->ne[1]; r++) k_quant_row(t->type, W + r * t->ne[0], (char *)d + r * rb, t->ne[0]);
    pare_status st = model_spill_tensor(m, t, d, nb);
    free(d);
    return st;
}

/* Reorder the FFN channels by perm: rows of gate/up and columns of down. The block computes
 * the same function (SwiGLU is elementwise per channel). */
static void fold_ffn_perm(float *G, float *U, float *D, int64_t F, int64_t E, const int32_t *perm) {
    float *tmp = malloc((size_t)F * E * sizeof(float));
    if (!tmp) return;
    float *mats[2] = {G, U};
    for (int k = 0; k < 2; k++) {
        for (int64_t i = 0; i < F; i++) memcpy(tmp + i * E, mats[k] + (int64_t)perm[i] * E, (size_t)E * sizeof(float));
        memcpy(mats[k], tmp, (size_t)F * E * sizeof(float));
    }
    for (int64_t r = 0; r < E; r++) {
        for (int64_t i = 0; i < F; i++) tmp[i] = D[r * F + perm[i]];
        memcpy(D + r * F, tmp, (size_t)F * sizeof(float));
    }
    free(tmp);
}

void prune_report_free(prune_report *r) { free(r->t); memset(r, 0, sizeof *r); }

pare_status prune_model(pare_model *m, const calib_data *cd, const prune_opts *o, int show_progress, prune_report *rep) {
    memset(rep, 0, sizeof *rep);
    if (o->layer_sparsity) {
        if (o->nm_m) return pare_fail(PARE_ERR_ARG, "%s", "per-block sparsity is unstructured only (no N:M)");
        for (int l = 0; l < m->n_layer; l++)
            if (!(o->layer_sparsity[l] >= 0 && o->layer_sparsity[l] < 1))
                return pare_fail(PARE_ERR_ARG, "block %d: sparsity %g must be in [0, 1)", l, (double)o->layer_sparsity[l]);
    } else if (o->nm_m) {
        if (o->nm_n <= 0 || o->nm_n >= o->nm_m || o->nm_m > 16)
            return pare_fail(PARE_ERR_ARG, "N:M pattern %d:%d: need 0 < N < M <= 16", o->nm_n, o->nm_m);
    } else if (!(o->sparsity > 0 && o->sparsity < 1)) {
        return pare_fail(PARE_ERR_ARG, "sparsity %g: must be in (0, 1)", (double)o->sparsity);
    }
    k_init();
    rep->t = pare_calloc((size_t)m->n_layer * N_MATS + 1, sizeof(prune_tensor_info));
    if (!rep->t) return PARE_ERR_NOMEM;
    double t0 = pare_now();
    calib_runner *r = NULL;
    pare_status st = PARE_OK;
    if (o->method != PRUNE_MAGNITUDE && (st = runner_new(m, cd, &r))) return st;
    if (r) r->skip_first_token = o->method == PRUNE_ESPARSE && o->es_skip_bos;
    pare_progress pb;
    progress_start(&pb, "prune", m->n_layer);
    if (!show_progress) pb.enabled = 0;
    for (int l = 0; l < m->n_layer && !st; l++) {
        pare_layer *L = &m->layers[l];
        float *W[N_MATS] = {0};
        int64_t rows[N_MATS] = {0}, cols[N_MATS] = {0};
        prune_opts lo = *o; /* this block's settings */
        if (o->layer_sparsity) lo.sparsity = o->layer_sparsity[l];
        const int skip = o->layer_sparsity && lo.sparsity == 0; /* left dense: only re-run */
        for (int k = 0; k < N_MATS && !st && !skip; k++) {
            pare_tensor *t = *layer_mat(L, k);
            if (!t) continue;
            rows[k] = t->ne[1]; cols[k] = t->ne[0];
            if (o->nm_m && cols[k] % o->nm_m) {
                st = pare_fail(PARE_ERR_ARG, "%s: %lld input columns are not a multiple of M = %d", t->name, (long long)cols[k], o->nm_m);
                break;
            }
            if (!(W[k] = to_f32(t))) st = PARE_ERR_NOMEM;
        }
        calib_stats stats[FWD_N_POINTS];
        memset(stats, 0, sizeof stats);
        if (!st && r && !skip) {
            unsigned want[FWD_N_POINTS] = {0};
            unsigned need = o->method == PRUNE_WANDA ? STAT_SUMSQ : o->method == PRUNE_SPARSEGPT ? STAT_GRAM : STAT_SUMSQ | STAT_MINMAX;
            for (int p = 0; p < FWD_N_POINTS; p++) want[p] = need;
            if (L->n_head == 0) want[FWD_ATTN_IN] = want[FWD_O_IN] = 0;
            if (L->n_ff == 0) want[FWD_FFN_IN] = want[FWD_DOWN_IN] = 0;
            st = runner_collect(r, want, o->es_bins, stats);
            if (!st && o->method == PRUNE_ESPARSE && o->es_entropy) { /* pass 2: histograms on [min, max] */
                for (int p = 0; p < FWD_N_POINTS; p++) if (want[p]) want[p] = STAT_HIST;
                st = runner_collect(r, want, o->es_bins, stats);
            }
        }
        if (!st && !skip) {
            switch (o->method) {
            case PRUNE_MAGNITUDE:
                for (int k = 0; k < N_MATS; k++) if (W[k]) prune_magnitude(W[k], rows[k], cols[k], &lo);
                break;
            case PRUNE_WANDA:
                for (int k = 0; k < N_MATS; k++) if (W[k]) prune_wanda(W[k], rows[k], cols[k], stats[mat_point[k]].sumsq, &lo);
                break;
            case PRUNE_SPARSEGPT:
                for (int k = 0; k < N_MATS && !st; k++)
                    if (W[k]) st = prune_sparsegpt(W[k], rows[k], cols[k], stats[mat_point[k]].gram, stats[mat_point[k]].ntok, &lo);
                break;
            case PRUNE_ESPARSE: {
                static const int groups[FWD_N_POINTS][3] = {{MQ, MK, MV}, {MO, -1, -1}, {MG, MU, -1}, {MD, -1, -1}};
                for (int p = 0; p < FWD_N_POINTS && !st; p++) {
                    float *gw[3]; int64_t gr[3]; int nw = 0;
                    for (int k = 0; k < 3; k++) if (groups[p][k] >= 0 && W[groups[p][k]]) { gw[nw] = W[groups[p][k]]; gr[nw++] = rows[groups[p][k]]; }
                    if (!nw) continue;
                    int64_t c = cols[groups[p][0]];
                    int32_t *perm = pare_calloc((size_t)c, sizeof(int32_t));
                    if (!perm) { st = PARE_ERR_NOMEM; break; }
                    st = esparse_prune_input(gw, gr, nw, c, &stats[p], &lo, perm);
                    int ident = 1;
                    for (int64_t i = 0; i < c; i++) if (perm[i] != i) ident = 0;
                    if (st) { free(perm); break; }
                    if (p == FWD_DOWN_IN) {
                        if (!ident) fold_ffn_perm(W[MG], W[MU], W[MD], rows[MG], cols[MG], perm);
                        free(perm);
                        continue;
                    }
                    /* record the order (or drop an older one when this run kept the natural order) */
                    int32_t **slot = p == FWD_ATTN_IN ? &L->perm_attn : p == FWD_O_IN ? &L->perm_o : &L->perm_ffn;
                    free(*slot);
                    *slot = ident ? NULL : perm;
                    if (ident) free(perm);
                }
                break;
            }
            default: st = pare_fail(PARE_ERR_ARG, "unknown pruning method %d", o->method);
            }
        }
        for (int k = 0; k < N_MATS; k++) {
            if (!W[k]) continue;
            pare_tensor *t = *layer_mat(L, k);
            if (!st) {
                prune_tensor_info *ti = &rep->t[rep->n++];
                snprintf(ti->name, sizeof ti->name, "%s", t->name);
                ti->numel = rows[k] * cols[k];
                for (int64_t i = 0; i < ti->numel; i++) ti->zeros += W[k][i] == 0;
                rep->numel += ti->numel; rep->zeros += ti->zeros;
                st = store(m, t, W[k]);
            }
            free(W[k]);
        }
        for (int p = 0; p < FWD_N_POINTS; p++) calib_stats_free(&stats[p]);
        if (!st && r) st = runner_advance(r);
        for (int k = 0; k < N_MATS && !st; k++) { /* block l is done until the output is written */
            const pare_tensor *t = *layer_mat(L, k);
            if (!t->owned) pare_release_pages(t->data, t->nbytes);
        }
        progress_update(&pb, l + 1);
    }
    progress_end(&pb);
    runner_free(r);
    rep->seconds = pare_now() - t0;
    return st;
}
