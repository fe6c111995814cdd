/* structured.c - structured pruning: which heads and FFN channels go (global ranking or the
 * same share per layer), their physical removal from the model, and the pipeline
 * (METHODS.md 8, 10, 11; the taylor-struct scores come from taylor.c).
 *
 * Costs in weights: a query head 2 E hd (its q rows and o columns), a KV head 2 E hd more
 * (k and v rows, removed with the last query head of its group), an FFN channel 3 E.
 * pare and llama.cpp map query head h to KV head h / (n_head / n_head_kv), so every kept KV
 * head must keep the same number of query heads: head counts are rounded to the nearest such
 * layout (ties keep more) and FFN channels make up the difference to the target [O]. */
#include "prune.h"

#include "eval/eval.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sprune_opts_default(sprune_opts *o) {
    memset(o, 0, sizeof *o);
    o->method = SP_NUMERICAL;
    o->target = SP_TARGET_PARAMS;
    o->ratio = 0.2;
    o->structure = SP_STRUCT_DEFAULT;
    o->min_heads = 1;
    o->min_ffn = 1;
    o->compensate = 1;
    o->np_lambda = 1.0;
    o->np_iters = 1;
    o->np_normalize = 1;
    o->np_damp = 1e-6;
    o->np_gamma = 0.01;
    o->np_sequential = 1;
}

const char *sprune_method_name(int method) {
    switch (method) {
    case SP_NUMERICAL: return "numerical";
    case SP_FLAP_NOBIAS: return "flap-nobias";
    case SP_FLAP: return "flap";
    case SP_MAGNITUDE: return "mag-struct";
    case SP_WANDA: return "wanda-struct";
    case SP_TAYLOR: return "taylor-struct";
    default: return "?";
    }
}

/* ---- plans ----------------------------------------------------------------------------- */
pare_status sprune_plan_new(const pare_model *m, sprune_plan *p) {
    memset(p, 0, sizeof *p);
    p->n_layer = m->n_layer; p->n_embd = m->n_embd; p->head_dim = m->head_dim;
    p->l = pare_calloc((size_t)(m->n_layer > 0 ? m->n_layer : 1), sizeof *p->l);
    if (!p->l) return PARE_ERR_NOMEM;
    for (int l = 0; l < m->n_layer; l++) {
        const pare_layer *L = &m->layers[l];
        sprune_layer *s = &p->l[l];
        s->n_head = L->n_head; s->n_head_kv = L->n_head_kv; s->n_ff = L->n_ff;
        s->head_score = pare_calloc((size_t)L->n_head + 1, sizeof(double));
        s->ff_score = pare_calloc((size_t)L->n_ff + 1, sizeof(double));
        s->keep_head = pare_malloc((size_t)L->n_head + 1);
        s->keep_ff = pare_malloc((size_t)L->n_ff + 1);
        if (!s->head_score || !s->ff_score || !s->keep_head || !s->keep_ff) { sprune_plan_free(p); return PARE_ERR_NOMEM; }
        memset(s->keep_head, 1, (size_t)L->n_head + 1);
        memset(s->keep_ff, 1, (size_t)L->n_ff + 1);
    }
    return PARE_OK;
}

void sprune_plan_free(sprune_plan *p) {
    for (int l = 0; p->l && l < p->n_layer; l++) {
        free(p->l[l].head_score); free(p->l[l].ff_score); free(p->l[l].keep_head); free(p->l[l].keep_ff);
        free(p->l[l].mean_o); free(p->l[l].mean_ff);
    }
    free(p->l);
    memset(p, 0, sizeof *p);
}

static int group_size(const sprune_layer *s) { return s->n_head_kv > 0 ? s->n_head / s->n_head_kv : 1; }

static void layer_counts(const sprune_layer *s, int kept, int *h, int *kv, int *f) {
    if (!kept) { *h = s->n_head; *kv = s->n_head_kv; *f = s->n_ff; return; }
    int g = group_size(s);
    *h = *kv = *f = 0;
    for (int k = 0; k < s->n_head_kv; k++) {
        int any = 0;
        for (int i = 0; i < g; i++) if (s->keep_head[k * g + i]) { (*h)++; any = 1; }
        *kv += any;
    }
    for (int j = 0; j < s->n_ff; j++) *f += s->keep_ff[j];
}

static int64_t layer_params(const sprune_plan *p, const sprune_layer *s, int kept) {
    int h, kv, f;
    layer_counts(s, kept, &h, &kv, &f);
    int64_t E = p->n_embd, hd = p->head_dim;
    return (int64_t)(h + kv) * 2 * E * hd + (int64_t)f * 3 * E;
}

int64_t sprune_plan_params(const sprune_plan *p, int kept) {
    int64_t n = 0;
    for (int l = 0; l < p->n_layer; l++) n += layer_params(p, &p->l[l], kept);
    return n;
}

int64_t sprune_plan_units(const sprune_plan *p, int kept) {
    int64_t n = 0;
    for (int l = 0; l < p->n_layer; l++) {
        int h, kv, f;
        layer_counts(&p->l[l], kept, &h, &kv, &f);
        n += h + f;
    }
    return n;
}

/* ---- selection ------------------------------------------------------------------------- */
typedef struct unit { double s; int l, kind, i; } unit; /* kind 0: head, 1: channel */

static int unit_cmp(const void *a, const void *b) {
    const unit *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? -1 : 1;
    if (x->l != y->l) return x->l - y->l;
    if (x->kind != y->kind) return x->kind - y->kind;
    return x->i - y->i;
}

typedef struct { double s; int i; } scored;
static int scored_desc(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->i - y->i;
}

/* Keep the GQA-uniform set of heads nearest to want_keep heads (ties: more heads), at least
 * min_keep, with the largest total score. */
static pare_status choose_heads(sprune_layer *s, int want_keep, int min_keep) {
    int H = s->n_head, KV = s->n_head_kv, g = group_size(s);
    if (H <= 0) return PARE_OK;
    if (min_keep > H) min_keep = H;
    if (want_keep < min_keep) want_keep = min_keep;
    if (want_keep > H) want_keep = H;
    int best_c = -1;
    for (int G = 0; G <= KV; G++)
        for (int gk = G ? 1 : 0; gk <= (G ? g : 0); gk++) {
            int c = G * gk;
            if (c < min_keep) continue;
            if (best_c < 0 || abs(c - want_keep) < abs(best_c - want_keep) ||
                (abs(c - want_keep) == abs(best_c - want_keep) && c > best_c))
                best_c = c;
        }
    memset(s->keep_head, 0, (size_t)H);
    if (best_c <= 0) return PARE_OK;
    scored *hs = pare_malloc((size_t)H * sizeof(scored)), *gs = pare_malloc((size_t)KV * sizeof(scored));
    if (!hs || !gs) { free(hs); free(gs); return PARE_ERR_NOMEM; }
    /* heads of each group sorted by score, best first */
    for (int k = 0; k < KV; k++) {
        for (int i = 0; i < g; i++) { hs[k * g + i].s = s->head_score[k * g + i]; hs[k * g + i].i = k * g + i; }
        qsort(hs + k * g, (size_t)g, sizeof(scored), scored_desc);
    }
    double best_v = -INFINITY;
    int best_G = 0, best_g = 0;
    for (int G = 1; G <= KV; G++) {
        if (best_c % G || best_c / G > g) continue;
        int gk = best_c / G;
        for (int k = 0; k < KV; k++) {
            double v = 0;
            for (int i = 0; i < gk; i++) v += hs[k * g + i].s;
            gs[k].s = v; gs[k].i = k;
        }
        qsort(gs, (size_t)KV, sizeof(scored), scored_desc);
        double v = 0;
        for (int k = 0; k < G; k++) v += gs[k].s;
        if (v > best_v) { best_v = v; best_G = G; best_g = gk; }
    }
    for (int k = 0; k < KV; k++) {
        double v = 0;
        for (int i = 0; i < best_g; i++) v += hs[k * g + i].s;
        gs[k].s = v; gs[k].i = k;
    }
    qsort(gs, (size_t)KV, sizeof(scored), scored_desc);
    for (int a = 0; a < best_G; a++) {
        int k = gs[a].i;
        for (int i = 0; i < best_g; i++) s->keep_head[hs[k * g + i].i] = 1;
    }
    free(hs); free(gs);
    return PARE_OK;
}

/* Remove the lowest-scoring channels of the listed units until the budget is met (units:
 * count; params: weights), honouring min_ffn per layer. */
static void walk_channels(sprune_plan *p, const unit *u, int n, int min_ffn, int by_params, double budget) {
    int64_t E = p->n_embd;
    double done = 0;
    int *left = calloc((size_t)(p->n_layer ? p->n_layer : 1), sizeof(int));
    if (!left) return;
    for (int l = 0; l < p->n_layer; l++) left[l] = p->l[l].n_ff - (min_ffn < p->l[l].n_ff ? min_ffn : p->l[l].n_ff);
    for (int k = 0; k < n && done < budget - 1e-9; k++) {
        if (u[k].kind != 1 || left[u[k].l] <= 0) continue;
        p->l[u[k].l].keep_ff[u[k].i] = 0;
        left[u[k].l]--;
        done += by_params ? 3.0 * E : 1.0;
    }
    free(left);
}

static pare_status select_global(sprune_plan *p, const sprune_opts *o) {
    int64_t E = p->n_embd, hd = p->head_dim, nu = 0;
    for (int l = 0; l < p->n_layer; l++) nu += p->l[l].n_head + p->l[l].n_ff;
    unit *u = pare_malloc((size_t)(nu ? nu : 1) * sizeof(unit));
    int *hleft = pare_calloc((size_t)(p->n_layer ? p->n_layer : 1), sizeof(int));
    int *grp = pare_calloc((size_t)(nu ? nu : 1), sizeof(int));
    if (!u || !hleft || !grp) { free(u); free(hleft); free(grp); return PARE_ERR_NOMEM; }
    int n = 0;
    int64_t tot_h = 0, tot_f = 0;
    for (int l = 0; l < p->n_layer; l++) {
        sprune_layer *s = &p->l[l];
        for (int h = 0; h < s->n_head; h++) u[n++] = (unit){s->head_score[h], l, 0, h};
        for (int j = 0; j < s->n_ff; j++) u[n++] = (unit){s->ff_score[j], l, 1, j};
        hleft[l] = s->n_head - (o->min_heads < s->n_head ? o->min_heads : s->n_head);
        tot_h += s->n_head; tot_f += s->n_ff;
    }
    qsort(u, (size_t)n, sizeof(unit), unit_cmp);
    int by_params = o->target == SP_TARGET_PARAMS;
    double budget;
    if (by_params) budget = o->ratio * (double)sprune_plan_params(p, 0);
    else if (o->target == SP_TARGET_UNITS) budget = floor(o->ratio * (double)(tot_h + tot_f) + 1e-9);
    else budget = floor(o->head_ratio * (double)tot_h + 1e-9);
    /* phase A: heads and channels in one ranking (TYPES: heads only) decide each layer's
     * number of heads; removing a group's last query head also frees its KV head */
    int *rm = pare_calloc((size_t)(p->n_layer ? p->n_layer : 1), sizeof(int));
    if (!rm) { free(u); free(hleft); free(grp); return PARE_ERR_NOMEM; }
    double done = 0;
    int *gcount = grp; /* per (layer, group) removed heads, indexed by layer offset */
    int *goff = pare_calloc((size_t)p->n_layer + 1, sizeof(int));
    if (!goff) { free(u); free(hleft); free(grp); free(rm); return PARE_ERR_NOMEM; }
    for (int l = 0; l < p->n_layer; l++) goff[l + 1] = goff[l] + p->l[l].n_head_kv;
    int *cleft = pare_calloc((size_t)(p->n_layer ? p->n_layer : 1), sizeof(int));
    if (!cleft) { free(u); free(hleft); free(grp); free(rm); free(goff); return PARE_ERR_NOMEM; }
    for (int l = 0; l < p->n_layer; l++) cleft[l] = p->l[l].n_ff - (o->min_ffn < p->l[l].n_ff ? o->min_ffn : p->l[l].n_ff);
    for (int k = 0; k < n && done < budget - 1e-9; k++) {
        const unit *x = &u[k];
        sprune_layer *s = &p->l[x->l];
        if (x->kind == 0) {
            if (hleft[x->l] <= 0) continue;
            hleft[x->l]--; rm[x->l]++;
            int g = group_size(s), gi = goff[x->l] + x->i / g;
            gcount[gi]++;
            done += by_params ? (double)(2 * E * hd) * (gcount[gi] == g ? 2 : 1) : 1.0;
        } else {
            if (o->target == SP_TARGET_TYPES || cleft[x->l] <= 0) continue;
            cleft[x->l]--;
            done += by_params ? 3.0 * E : 1.0;
        }
    }
    free(hleft); free(grp); free(goff); free(cleft);
    /* phase B: GQA-uniform head layouts */
    pare_status st = PARE_OK;
    for (int l = 0; l < p->n_layer && !st; l++) st = choose_heads(&p->l[l], p->l[l].n_head - rm[l], o->min_heads);
    free(rm);
    /* phase C: channels fill the rest of the budget */
    if (!st) {
        for (int l = 0; l < p->n_layer; l++) memset(p->l[l].keep_ff, 1, (size_t)p->l[l].n_ff);
        double rest;
        if (by_params) rest = budget - (double)(sprune_plan_params(p, 0) - sprune_plan_params(p, 1));
        else if (o->target == SP_TARGET_UNITS) rest = budget - (double)(tot_h - (sprune_plan_units(p, 1) - tot_f));
        else rest = floor(o->ffn_ratio * (double)tot_f + 1e-9);
        if (rest > 0) walk_channels(p, u, n, o->min_ffn, by_params, rest);
    }
    free(u);
    return st;
}

static pare_status select_uniform(sprune_plan *p, const sprune_opts *o) {
    int64_t E = p->n_embd;
    for (int l = 0; l < p->n_layer; l++) {
        sprune_layer *s = &p->l[l];
        double hr = o->target == SP_TARGET_TYPES ? o->head_ratio : o->ratio;
        pare_status st = choose_heads(s, s->n_head - (int)floor(hr * s->n_head + 1e-9), o->min_heads);
        if (st) return st;
        int kf;
        if (o->target == SP_TARGET_PARAMS) {
            double want = o->ratio * (double)layer_params(p, s, 0) - (double)(layer_params(p, s, 0) - layer_params(p, s, 1));
            kf = want > 0 ? (int)floor(want / (3.0 * E) + 0.5) : 0;
        } else {
            kf = (int)floor((o->target == SP_TARGET_TYPES ? o->ffn_ratio : o->ratio) * s->n_ff + 1e-9);
        }
        int maxf = s->n_ff - (o->min_ffn < s->n_ff ? o->min_ffn : s->n_ff);
        if (kf > maxf) kf = maxf;
        memset(s->keep_ff, 1, (size_t)s->n_ff);
        if (kf <= 0) continue;
        unit *c = pare_malloc((size_t)s->n_ff * sizeof(unit));
        if (!c) return PARE_ERR_NOMEM;
        for (int j = 0; j < s->n_ff; j++) c[j] = (unit){s->ff_score[j], l, 1, j};
        qsort(c, (size_t)s->n_ff, sizeof(unit), unit_cmp); /* ascending, ties: lower index first */
        for (int k = 0; k < kf; k++) s->keep_ff[c[k].i] = 0;
        free(c);
    }
    return PARE_OK;
}

pare_status sprune_select(sprune_plan *p, const sprune_opts *o) {
    for (int l = 0; l < p->n_layer; l++) {
        memset(p->l[l].keep_head, 1, (size_t)p->l[l].n_head);
        memset(p->l[l].keep_ff, 1, (size_t)p->l[l].n_ff);
    }
    int structure = o->structure;
    if (structure == SP_STRUCT_DEFAULT)
        structure = o->method == SP_NUMERICAL || o->method == SP_FLAP_NOBIAS || o->method == SP_FLAP ? SP_STRUCT_GLOBAL : SP_STRUCT_UNIFORM;
    return structure == SP_STRUCT_GLOBAL ? select_global(p, o) : select_uniform(p, o);
}

/* ---- weights: F32 working copies, written back in the tensor's type -------------------- */
static float *tensor_f32(const pare_tensor *t) {
    float *w = pare_malloc((size_t)pare_tensor_nelem(t) * sizeof(float));
    if (!w) return NULL;
    for (int64_t r = 0; r < t->ne[1]; r++) pare_tensor_row_f32(t, r, w + r * t->ne[0]);
    return w;
}

/* Give t the data W (rows x cols F32) in type (F32 when cols is not a multiple of the
 * type's block). */
static pare_status tensor_set(pare_tensor *t, const float *W, int64_t rows, int64_t cols, int type) {
    if (!pare_row_bytes(type, cols)) type = PARE_TYPE_F32;
    size_t rb = pare_row_bytes(type, cols), nb = rb * (size_t)rows;
    void *d = pare_malloc(nb ? nb : 1);
    if (!d) return PARE_ERR_NOMEM;
    for (int64_t r = 0; r < rows; r++) k_quant_row(type, W + r * cols, (char *)d + r * rb, cols);
    if (t->owned) free(t->data);
    t->data = d; t->nbytes = nb; t->owned = 1; t->type = type;
    t->ne[0] = cols; t->ne[1] = rows;
    return PARE_OK;
}

/* Keep the listed rows (bytes copied: q/k rows stay in GGUF order within each head). */
static pare_status keep_rows(pare_tensor *t, const int64_t *rows, int64_t n) {
    size_t rb = pare_row_bytes(t->type, t->ne[0]), nb = rb * (size_t)n;
    uint8_t *d = pare_malloc(nb ? nb : 1);
    if (!d) return PARE_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) memcpy(d + (size_t)i * rb, (const uint8_t *)t->data + (size_t)rows[i] * rb, rb);
    if (t->owned) free(t->data);
    t->data = d; t->nbytes = nb; t->owned = 1; t->ne[1] = n;
    return PARE_OK;
}

static pare_status keep_cols(pare_tensor *t, const uint8_t *keep) {
    int64_t rows = t->ne[1], cols = t->ne[0], nk = 0;
    for (int64_t c = 0; c < cols; c++) nk += keep[c] != 0;
    float *row = pare_malloc((size_t)cols * sizeof(float)), *W = pare_malloc((size_t)(rows * nk + 1) * sizeof(float));
    if (!row || !W) { free(row); free(W); return PARE_ERR_NOMEM; }
    for (int64_t r = 0; r < rows; r++) {
        pare_tensor_row_f32(t, r, row);
        float *o = W + r * nk;
        for (int64_t c = 0; c < cols; c++) if (keep[c]) *o++ = row[c];
    }
    pare_status st = tensor_set(t, W, rows, nk, t->type);
    free(row); free(W);
    return st;
}

static void drop_tensor(pare_tensor **slot) {
    if (!*slot) return;
    (*slot)->type = -1; /* marked; removed from the tensor list after the pass */
    *slot = NULL;
}

static pare_status compact_and_bind(pare_model *m) {
    int w = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        pare_tensor *t = &m->tensors[i];
        if (t->type == -1) {
            free(t->name);
            if (t->owned) free(t->data);
            continue;
        }
        if (w != i) m->tensors[w] = *t;
        w++;
    }
    m->n_tensors = w;
    return model_bind(m);
}

pare_status sprune_apply(pare_model *m, const sprune_plan *p) {
    if (p->n_layer != m->n_layer) return pare_fail(PARE_ERR_ARG, "structured pruning: plan for %d layers, model has %d", p->n_layer, m->n_layer);
    k_init();
    int hd = m->head_dim;
    pare_status st = PARE_OK;
    for (int l = 0; l < m->n_layer && !st; l++) {
        pare_layer *L = &m->layers[l];
        const sprune_layer *s = &p->l[l];
        if (s->n_head != L->n_head || s->n_head_kv != L->n_head_kv || s->n_ff != L->n_ff)
            return pare_fail(PARE_ERR_ARG, "structured pruning: layer %d changed shape since the plan was made", l);
        int h, kv, f;
        layer_counts(s, 1, &h, &kv, &f);
        if (h != L->n_head) {
            int g = group_size(s), gk = -1;
            for (int k = 0; k < L->n_head_kv; k++) {
                int c = 0;
                for (int i = 0; i < g; i++) c += s->keep_head[k * g + i];
                if (c && gk >= 0 && c != gk)
                    return pare_fail(PARE_ERR_ARG, "layer %d: KV heads would keep different numbers of query heads", l);
                if (c) gk = c;
            }
            if (h == 0) {
                drop_tensor(&L->attn_norm); drop_tensor(&L->wq); drop_tensor(&L->wk); drop_tensor(&L->wv); drop_tensor(&L->wo); drop_tensor(&L->b_o);
            } else {
                int64_t *qr = pare_malloc((size_t)h * hd * sizeof(int64_t)), *kr = pare_malloc((size_t)kv * hd * sizeof(int64_t));
                uint8_t *oc = pare_malloc((size_t)L->n_head * hd);
                if (!qr || !kr || !oc) { free(qr); free(kr); free(oc); return PARE_ERR_NOMEM; }
                int nq = 0, nk = 0;
                for (int k = 0; k < L->n_head_kv; k++) {
                    int any = 0;
                    for (int i = 0; i < g; i++) {
                        int hh = k * g + i;
                        memset(oc + (size_t)hh * hd, s->keep_head[hh], (size_t)hd);
                        if (!s->keep_head[hh]) continue;
                        any = 1;
                        for (int d = 0; d < hd; d++) qr[nq++] = (int64_t)hh * hd + d;
                    }
                    if (any) for (int d = 0; d < hd; d++) kr[nk++] = (int64_t)k * hd + d;
                }
                if (!st) st = keep_rows(L->wq, qr, nq);
                if (!st) st = keep_rows(L->wk, kr, nk);
                if (!st) st = keep_rows(L->wv, kr, nk);
                if (!st) st = keep_cols(L->wo, oc);
                free(qr); free(kr); free(oc);
            }
            free(L->perm_o); L->perm_o = NULL; /* an N:M order of the old o input no longer applies */
            L->n_head = h; L->n_head_kv = kv;
        }
        if (!st && f != L->n_ff) {
            if (f == 0) {
                drop_tensor(&L->ffn_norm); drop_tensor(&L->w_gate); drop_tensor(&L->w_up); drop_tensor(&L->w_down); drop_tensor(&L->b_down);
            } else {
                int64_t *fr = pare_malloc((size_t)f * sizeof(int64_t));
                if (!fr) return PARE_ERR_NOMEM;
                int nf = 0;
                for (int j = 0; j < L->n_ff; j++) if (s->keep_ff[j]) fr[nf++] = j;
                st = keep_rows(L->w_gate, fr, nf);
                if (!st) st = keep_rows(L->w_up, fr, nf);
                if (!st) st = keep_cols(L->w_down, s->keep_ff);
                free(fr);
            }
            L->n_ff = f;
        }
    }
    if (!st) st = compact_and_bind(m);
    return st;
}

pare_status sprune_mask(pare_model *m, const sprune_plan *p) {
    if (p->n_layer != m->n_layer) return pare_fail(PARE_ERR_ARG, "structured pruning: plan for %d layers, model has %d", p->n_layer, m->n_layer);
    k_init();
    int hd = m->head_dim;
    for (int l = 0; l < m->n_layer; l++) {
        pare_layer *L = &m->layers[l];
        const sprune_layer *s = &p->l[l];
        for (int part = 0; part < 2; part++) {
            int n = part ? L->n_ff : L->n_head, w = part ? 1 : hd, any = 0;
            const uint8_t *keep = part ? s->keep_ff : s->keep_head;
            for (int i = 0; i < n; i++) any |= !keep[i];
            if (!any) continue;
            pare_tensor *t = part ? L->w_down : L->wo;
            float *W = tensor_f32(t);
            if (!W) return PARE_ERR_NOMEM;
            int64_t cols = t->ne[0];
            for (int64_t r = 0; r < t->ne[1]; r++)
                for (int i = 0; i < n; i++)
                    if (!keep[i]) memset(W + r * cols + (int64_t)i * w, 0, (size_t)w * sizeof(float));
            pare_status st = tensor_set(t, W, t->ne[1], cols, t->type);
            free(W);
            if (st) return st;
        }
    }
    return PARE_OK;
}

/* FLAP's bias compensation (METHODS.md 11 a.5): for every layer that loses units, the o
 * (down) output gains b = P[:, pruned] mean(x[pruned]) over the dense model's calibration
 * tokens, added to the layer's blk.L.attn_output.bias (ffn_down.bias), created F32 if absent,
 * so that the mean output over the calibration tokens is the dense one. Before the columns
 * go (it reads them). */
pare_status flap_add_biases(pare_model *m, const sprune_plan *p) {
    int need = 0;
    for (int l = 0; l < m->n_layer; l++) {
        const sprune_layer *s = &p->l[l];
        for (int i = 0; i < s->n_head; i++) if (!s->keep_head[i]) { need += !m->layers[l].b_o; break; }
        for (int j = 0; j < s->n_ff; j++) if (!s->keep_ff[j]) { need += !m->layers[l].b_down; break; }
    }
    pare_status st = need ? model_reserve_tensors(m, need) : PARE_OK; /* rebinds the layers */
    int64_t E = m->n_embd;
    int hd = m->head_dim;
    for (int l = 0; l < m->n_layer && !st; l++) {
        const sprune_layer *s = &p->l[l];
        for (int part = 0; part < 2 && !st; part++) {
            pare_layer *L = &m->layers[l];
            int n = part ? s->n_ff : s->n_head, w = part ? 1 : hd, any = 0;
            const uint8_t *keep = part ? s->keep_ff : s->keep_head;
            const double *mean = part ? s->mean_ff : s->mean_o;
            for (int i = 0; i < n; i++) any |= !keep[i];
            if (!any) continue;
            if (!mean) return pare_fail(PARE_ERR_ARG, "flap: layer %d has no input means for its bias", l);
            const pare_tensor *t = part ? L->w_down : L->wo;
            int D = n * w;
            uint8_t *kc = pare_malloc((size_t)D);
            float *P = tensor_f32(t);
            double *b = pare_malloc((size_t)E * sizeof(double));
            if (!kc || !P || !b) { free(kc); free(P); free(b); return PARE_ERR_NOMEM; }
            for (int j = 0; j < D; j++) kc[j] = keep[j / w];
            flap_bias(P, E, D, mean, kc, b);
            free(kc); free(P);
            pare_tensor **slot = part ? &L->b_down : &L->b_o;
            if (!*slot) {
                char nm[96];
                snprintf(nm, sizeof nm, "blk.%d.%s.bias", l, part ? "ffn_down" : "attn_output");
                float *d = pare_calloc((size_t)E, sizeof(float));
                int64_t ne[1] = {E};
                if (!d || !(*slot = model_add_tensor(m, nm, PARE_TYPE_F32, 1, ne, d, (size_t)E * sizeof(float), 1))) {
                    free(d); free(b);
                    return PARE_ERR_NOMEM;
                }
            } else if (!(*slot)->owned) { /* a mapped bias: own a copy before changing it */
                float *d = pare_malloc((size_t)E * sizeof(float));
                if (!d) { free(b); return PARE_ERR_NOMEM; }
                memcpy(d, (*slot)->data, (size_t)E * sizeof(float));
                (*slot)->data = d; (*slot)->owned = 1;
            }
            float *bias = (*slot)->data;
            for (int64_t e = 0; e < E; e++) bias[e] = (float)((double)bias[e] + b[e]);
            free(b);
        }
    }
    return st ? st : model_bind(m);
}

/* ---- the pipeline ------------------------------------------------------------------------ */
void sprune_report_free(sprune_report *r) {
    free(r->heads_before); free(r->heads_after); free(r->kv_before); free(r->kv_after); free(r->ff_before); free(r->ff_after);
    memset(r, 0, sizeof *r);
}

/* Compensate one output projection (o: part 0, down: part 1) of layer l from the Gram
 * matrix of its input; keep is per channel. Writes the result into t or, when pending is
 * non-NULL, into a new F32 buffer stored there (applied later). */
static pare_status compensate_one(pare_tensor *t, const double *G, const uint8_t *keep, double gamma, float **pending) {
    int64_t E = t->ne[1];
    int D = (int)t->ne[0];
    float *W = tensor_f32(t);
    double *Pd = pare_malloc((size_t)E * D * sizeof(double));
    if (!W || !Pd) { free(W); free(Pd); return PARE_ERR_NOMEM; }
    for (size_t i = 0; i < (size_t)E * D; i++) Pd[i] = W[i];
    pare_status st = np_compensate(Pd, E, D, G, keep, gamma);
    if (!st) for (size_t i = 0; i < (size_t)E * D; i++) W[i] = (float)Pd[i];
    free(Pd);
    if (!st && pending) { *pending = W; return PARE_OK; }
    if (!st) st = tensor_set(t, W, E, D, t->type);
    free(W);
    return st;
}

static pare_status compensation_pass(pare_model *m, const calib_data *cd, const sprune_opts *o, const sprune_plan *p,
                                     int show_progress) {
    int hd = m->head_dim, nl = m->n_layer;
    calib_runner *r = NULL;
    pare_status st = runner_new(m, cd, &r);
    if (st) return st;
    float **pend = o->np_sequential ? NULL : pare_calloc((size_t)nl * 2 + 1, sizeof(float *));
    if (!o->np_sequential && !pend) { runner_free(r); return PARE_ERR_NOMEM; }
    pare_progress pb;
    progress_start(&pb, "compensate", nl);
    if (!show_progress) pb.enabled = 0;
    for (int l = 0; l < nl && !st; l++) {
        pare_layer *L = &m->layers[l];
        const sprune_layer *s = &p->l[l];
        for (int part = 0; part < 2 && !st; part++) {
            int n = part ? L->n_ff : L->n_head, any = 0;
            const uint8_t *keep = part ? s->keep_ff : s->keep_head;
            for (int i = 0; i < n; i++) any |= !keep[i];
            if (!any) continue;
            int point = part ? FWD_DOWN_IN : FWD_O_IN, D = part ? n : n * hd;
            unsigned want[FWD_N_POINTS] = {0};
            want[point] = STAT_GRAM;
            calib_stats stats[FWD_N_POINTS];
            memset(stats, 0, sizeof stats);
            st = runner_collect(r, want, 0, stats);
            uint8_t *kc = pare_malloc((size_t)D);
            if (!st && !kc) st = PARE_ERR_NOMEM;
            if (!st) {
                for (int i = 0; i < D; i++) kc[i] = part ? keep[i] : keep[i / hd];
                st = compensate_one(part ? L->w_down : L->wo, stats[point].gram, kc, o->np_gamma, pend ? &pend[2 * l + part] : NULL);
            }
            free(kc);
            for (int q = 0; q < FWD_N_POINTS; q++) calib_stats_free(&stats[q]);
        }
        if (!st && l + 1 < nl) st = runner_advance(r);
        progress_update(&pb, l + 1);
    }
    progress_end(&pb);
    runner_free(r);
    if (pend) {
        for (int l = 0; l < nl; l++)
            for (int part = 0; part < 2; part++) {
                float *W = pend[2 * l + part];
                if (!W) continue;
                pare_tensor *t = part ? m->layers[l].w_down : m->layers[l].wo;
                if (!st) st = tensor_set(t, W, t->ne[1], t->ne[0], t->type);
                free(W);
            }
        free(pend);
    }
    return st;
}

static pare_status score_pass(pare_model *m, const calib_data *cd, const sprune_opts *o, sprune_plan *p, int show_progress) {
    int nl = m->n_layer;
    if (o->method == SP_MAGNITUDE) {
        for (int l = 0; l < nl; l++) {
            pare_status st = sprune_layer_scores(m, l, o, NULL, NULL, p);
            if (st) return st;
        }
        return PARE_OK;
    }
    unsigned need = o->method == SP_NUMERICAL ? STAT_GRAM : o->method == SP_FLAP_NOBIAS || o->method == SP_FLAP ? STAT_SUM | STAT_SUMSQ : STAT_SUMSQ;
    calib_runner *r = NULL;
    pare_status st = runner_new(m, cd, &r);
    if (st) return st;
    pare_progress pb;
    progress_start(&pb, "scores", nl);
    if (!show_progress) pb.enabled = 0;
    for (int l = 0; l < nl && !st; l++) {
        const pare_layer *L = &m->layers[l];
        unsigned want[FWD_N_POINTS] = {0};
        if (L->n_head > 0) want[FWD_O_IN] = need;
        if (L->n_ff > 0) want[FWD_DOWN_IN] = need;
        calib_stats stats[FWD_N_POINTS];
        memset(stats, 0, sizeof stats);
        /* scores change no weight: the statistics and the next block's inputs in one pass */
        if (want[FWD_O_IN] || want[FWD_DOWN_IN]) st = l + 1 < nl ? runner_collect_advance(r, want, 0, stats) : runner_collect(r, want, 0, stats);
        else if (l + 1 < nl) st = runner_advance(r);
        if (!st) st = sprune_layer_scores(m, l, o, &stats[FWD_O_IN], &stats[FWD_DOWN_IN], p);
        for (int q = 0; q < FWD_N_POINTS; q++) calib_stats_free(&stats[q]);
        progress_update(&pb, l + 1);
    }
    progress_end(&pb);
    runner_free(r);
    return st;
}

pare_status prune_structured(pare_model *m, const calib_data *cd, const sprune_opts *o, int show_progress,
                             sprune_report *rep) {
    memset(rep, 0, sizeof *rep);
    if (o->method < SP_NUMERICAL || o->method > SP_FLAP) return pare_fail(PARE_ERR_ARG, "unknown structured method %d", o->method);
    if (o->target == SP_TARGET_TYPES) {
        if (!(o->head_ratio >= 0 && o->head_ratio <= 1) || !(o->ffn_ratio >= 0 && o->ffn_ratio <= 1))
            return pare_fail(PARE_ERR_ARG, "head and FFN ratios must be in [0, 1] (got %g, %g)", o->head_ratio, o->ffn_ratio);
    } else if (!(o->ratio >= 0 && o->ratio < 1)) {
        return pare_fail(PARE_ERR_ARG, "ratio %g: must be in [0, 1)", o->ratio);
    }
    if (o->min_heads < 0 || o->min_ffn < 0) return pare_fail(PARE_ERR_ARG, "minimum heads/channels per layer must be >= 0");
    if (o->method == SP_NUMERICAL && (!(o->np_lambda >= 0) || !(o->np_damp >= 0) || !(o->np_gamma >= 0) || o->np_iters < 1))
        return pare_fail(PARE_ERR_ARG, "numerical pruning: lambda, damping and gamma must be >= 0 and iterations >= 1");
    if (o->method != SP_MAGNITUDE && (!cd || cd->n <= 0 || !cd->ids))
        return pare_fail(PARE_ERR_ARG, "%s needs calibration data", sprune_method_name(o->method));
    for (int l = 0; l < m->n_layer; l++) {
        const pare_layer *L = &m->layers[l];
        if (L->n_head > 0 && (!L->wq || !L->wk || !L->wv || !L->wo)) return pare_fail(PARE_ERR_ARG, "layer %d: attention tensors missing", l);
        if (L->n_ff > 0 && (!L->w_gate || !L->w_up || !L->w_down)) return pare_fail(PARE_ERR_ARG, "layer %d: FFN tensors missing", l);
    }
    k_init();
    double t0 = pare_now();
    int nl = m->n_layer;
    rep->n_layer = nl;
    rep->calib_loss = NAN;
    rep->structure = o->structure == SP_STRUCT_DEFAULT
                         ? (o->method == SP_NUMERICAL || o->method == SP_FLAP_NOBIAS || o->method == SP_FLAP ? SP_STRUCT_GLOBAL : SP_STRUCT_UNIFORM)
                         : o->structure;
    size_t nn = (size_t)(nl ? nl : 1);
    rep->heads_before = pare_calloc(nn, sizeof(int)); rep->heads_after = pare_calloc(nn, sizeof(int));
    rep->kv_before = pare_calloc(nn, sizeof(int)); rep->kv_after = pare_calloc(nn, sizeof(int));
    rep->ff_before = pare_calloc(nn, sizeof(int)); rep->ff_after = pare_calloc(nn, sizeof(int));
    if (!rep->heads_before || !rep->heads_after || !rep->kv_before || !rep->kv_after || !rep->ff_before || !rep->ff_after) {
        sprune_report_free(rep);
        return PARE_ERR_NOMEM;
    }
    rep->params_before = model_n_params(m);
    sprune_plan p;
    pare_status st = sprune_plan_new(m, &p);
    if (st) { sprune_report_free(rep); return st; }
    st = o->method == SP_TAYLOR ? taylor_scores(m, cd, &p, show_progress, &rep->calib_loss) : score_pass(m, cd, o, &p, show_progress);
    if (!st) st = sprune_select(&p, o);
    if (!st) {
        rep->block_before = sprune_plan_params(&p, 0); rep->block_after = sprune_plan_params(&p, 1);
        rep->units_before = sprune_plan_units(&p, 0); rep->units_after = sprune_plan_units(&p, 1);
        for (int l = 0; l < nl; l++) {
            int h, kv, f;
            layer_counts(&p.l[l], 0, &h, &kv, &f);
            rep->heads_before[l] = h; rep->kv_before[l] = kv; rep->ff_before[l] = f;
            layer_counts(&p.l[l], 1, &h, &kv, &f);
            rep->heads_after[l] = h; rep->kv_after[l] = kv; rep->ff_after[l] = f;
        }
    }
    if (!st && o->method == SP_NUMERICAL && o->compensate && rep->units_after < rep->units_before)
        st = compensation_pass(m, cd, o, &p, show_progress);
    if (!st && o->method == SP_FLAP) st = flap_add_biases(m, &p);
    if (!st) st = o->mask_only ? sprune_mask(m, &p) : sprune_apply(m, &p);
    if (!st) rep->params_after = o->mask_only ? rep->params_before - (rep->block_before - rep->block_after) : model_n_params(m);
    sprune_plan_free(&p);
    rep->seconds = pare_now() - t0;
    if (st) sprune_report_free(rep);
    return st;
}
