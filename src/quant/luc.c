/* luc.c - Edge-LLM's layer-wise unified compression (METHODS.md 9 A, B): the per-block
 * sensitivity profile, the LUC policies, the budgeted search [O] and the compression
 * pipeline (prune_model at per-block sparsity, then quant_model at per-block grids). */
#include "luc.h"

#include "eval/eval.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_MATS = 7 };
static const int mat_point[N_MATS] = {FWD_ATTN_IN, FWD_ATTN_IN, FWD_ATTN_IN, FWD_O_IN, FWD_FFN_IN, FWD_FFN_IN, FWD_DOWN_IN};

static pare_tensor *layer_mat(const pare_layer *L, int k) {
    pare_tensor *t[N_MATS] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
    return t[k];
}

static float *to_f32(const pare_tensor *t) {
    float *w = pare_malloc((size_t)pare_tensor_nelem(t) * sizeof(float));
    if (!w) return NULL;
    for (int64_t r = 0; r < t->ne[1]; r++) pare_tensor_row_f32(t, r, w + r * t->ne[0]);
    return w;
}

static quant_spec grid_of(int bits, int group) {
    quant_spec q = {.type = -1, .bits = bits, .group = bits >= 16 ? 0 : group, .asym = 0};
    return q;
}

/* ---- profile ---------------------------------------------------------------------------- */
void luc_profile_opts_default(luc_profile_opts *o) {
    static const double r[] = {0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9};
    memset(o, 0, sizeof *o);
    o->method = PRUNE_SPARSEGPT;
    o->n_ratio = 7;
    memcpy(o->ratio, r, sizeof r);
    o->n_bits = 3;
    o->bits[0] = 8; o->bits[1] = 4; o->bits[2] = 3;
    o->group = 128;
    o->percdamp = 0.01f;
    o->blocksize = 128;
}

pare_status luc_profile_alloc(luc_profile *p, int n_layer) {
    p->n_layer = n_layer;
    p->prune_err = pare_calloc((size_t)n_layer * (p->n_ratio ? p->n_ratio : 1), sizeof(double));
    p->quant_err = pare_calloc((size_t)n_layer * (p->n_bits ? p->n_bits : 1), sizeof(double));
    p->e = pare_calloc((size_t)(n_layer ? n_layer : 1), sizeof(double));
    if (p->has_loss) {
        p->prune_loss = pare_calloc((size_t)n_layer * (p->n_ratio ? p->n_ratio : 1), sizeof(double));
        p->quant_loss = pare_calloc((size_t)n_layer * (p->n_bits ? p->n_bits : 1), sizeof(double));
    }
    if (!p->prune_err || !p->quant_err || !p->e || (p->has_loss && (!p->prune_loss || !p->quant_loss))) {
        luc_profile_free(p);
        return PARE_ERR_NOMEM;
    }
    return PARE_OK;
}

void luc_profile_free(luc_profile *p) {
    free(p->prune_err); free(p->quant_err); free(p->e); free(p->prune_loss); free(p->quant_loss);
    p->prune_err = p->quant_err = p->e = p->prune_loss = p->quant_loss = NULL;
}

/* A block matrix temporarily replaced by other values (in type `type`). */
typedef struct swap { pare_tensor *t; void *data; size_t nbytes; int type, owned; struct pare_nm *nm; } swap;

static pare_status swap_in(pare_tensor *t, int type, const float *W, swap *sv) {
    const int64_t rows = t->ne[1], cols = t->ne[0];
    const size_t rb = pare_row_bytes(type, cols), nb = rb * (size_t)rows;
    uint8_t *d = pare_malloc(nb);
    if (!d) return PARE_ERR_NOMEM;
    for (int64_t r = 0; r < rows; r++) k_quant_row(type, W + r * cols, d + r * rb, cols);
    *sv = (swap){t, t->data, t->nbytes, t->type, t->owned, t->nm};
    t->data = d; t->nbytes = nb; t->type = type; t->owned = 1; t->nm = NULL;
    return PARE_OK;
}

static void swap_out(swap *sv) {
    pare_tensor *t = sv->t;
    if (!t) return;
    free(t->data);
    t->data = sv->data; t->nbytes = sv->nbytes; t->type = sv->type; t->owned = sv->owned; t->nm = sv->nm;
    sv->t = NULL;
}

/* Block l on every calibration window entering it (r->x) into y; the relative squared
 * error against yd (sum yd^2 = den). */
static pare_status block_err(calib_runner *r, int l, float *y, const float *yd, double den, double *err) {
    const size_t per = (size_t)r->cd->T * r->m->n_embd, total = per * (size_t)r->cd->n;
    pare_status st = PARE_OK;
    for (int w = 0; w < r->cd->n && !st; w++) {
        memcpy(y + w * per, r->x + w * per, per * sizeof(float));
        st = block_forward(r->ctx, l, y + w * per, r->cd->T, 0);
    }
    if (st) return st;
    double s = 0;
    for (size_t i = 0; i < total; i++) { double d = (double)y[i] - yd[i]; s += d * d; }
    *err = den > 0 ? s / den : 0.0;
    return PARE_OK;
}

/* The model's mean NLL per token with block l as it is now (the rest as they are), from the
 * inputs of block l in r->x, less the dense model's. */
static pare_status setting_loss(calib_runner *r, int l, double base, double ntok, double *dl) {
    double nll;
    pare_status st = runner_loss_from(r, l, NULL, &nll);
    if (!st) *dl = nll / ntok - base;
    return st;
}

pare_status luc_profile_model(pare_model *m, const calib_data *cd, const luc_profile_opts *o, int show_progress,
                              luc_profile *p) {
    memset(p, 0, sizeof *p);
    if (o->method != PRUNE_SPARSEGPT && o->method != PRUNE_WANDA)
        return pare_fail(PARE_ERR_ARG, "%s", "profile: the pruning method must be sparsegpt or wanda");
    if (o->n_ratio < 1 || o->n_ratio > LUC_MAX_RATIOS || o->n_bits < 0 || o->n_bits > LUC_MAX_BITS)
        return pare_fail(PARE_ERR_ARG, "profile: 1..%d ratios and 0..%d bit-widths", LUC_MAX_RATIOS, LUC_MAX_BITS);
    for (int i = 0; i < o->n_ratio; i++)
        if (!(o->ratio[i] >= 0 && o->ratio[i] < 1) || (i && !(o->ratio[i] > o->ratio[i - 1])))
            return pare_fail(PARE_ERR_ARG, "%s", "profile: ratios must increase, in [0, 1)");
    for (int i = 0; i < o->n_bits; i++)
        if (!((o->bits[i] >= 2 && o->bits[i] <= 8) || o->bits[i] == 16))
            return pare_fail(PARE_ERR_ARG, "profile: %d bits (2..8, or 16: F16)", o->bits[i]);
    if (o->group < 0) return pare_fail(PARE_ERR_ARG, "%s", "profile: the group must be >= 0");
    if (!cd || cd->n <= 0) return pare_fail(PARE_ERR_ARG, "%s", "profile: needs calibration data");
    p->method = o->method; p->group = o->group;
    p->n_ratio = o->n_ratio; memcpy(p->ratio, o->ratio, sizeof p->ratio);
    p->n_bits = o->n_bits; memcpy(p->bits, o->bits, sizeof p->bits);
    p->has_loss = o->loss != 0;
    pare_status st = luc_profile_alloc(p, m->n_layer);
    if (st) return st;
    k_init();
    double t0 = pare_now();
    calib_runner *r = NULL;
    if ((st = runner_new(m, cd, &r))) { luc_profile_free(p); return st; }
    const size_t total = (size_t)cd->n * cd->T * m->n_embd;
    float *yd = pare_malloc(total * sizeof(float)), *y = pare_malloc(total * sizeof(float));
    if (!yd || !y) st = PARE_ERR_NOMEM;
    prune_opts po;
    prune_opts_default(&po);
    po.method = o->method; po.percdamp = o->percdamp; po.blocksize = o->blocksize;
    /* the loss runs: per block, each setting through the rest of the model (L - l blocks) */
    const double ntok = (double)cd->n * (cd->T - 1);
    int64_t units = m->n_layer, done_units = 0;
    if (p->has_loss) {
        units = m->n_layer;
        for (int l = 0; l < m->n_layer; l++) units += (int64_t)(p->n_ratio + p->n_bits) * (m->n_layer - l);
        if (!st && !(st = runner_loss_from(r, 0, NULL, &p->base_loss))) p->base_loss /= ntok;
        done_units = m->n_layer;
    }
    pare_progress pb;
    progress_start(&pb, "profile", units);
    if (!show_progress) pb.enabled = 0;
    progress_update(&pb, done_units);
    for (int l = 0; l < m->n_layer && !st; l++) {
        const pare_layer *L = &m->layers[l];
        float *W0[N_MATS] = {0}, *W[N_MATS] = {0};
        swap sv[N_MATS];
        memset(sv, 0, sizeof sv);
        calib_stats stats[FWD_N_POINTS];
        memset(stats, 0, sizeof stats);
        unsigned want[FWD_N_POINTS] = {0};
        for (int q = 0; q < FWD_N_POINTS; q++) want[q] = o->method == PRUNE_WANDA ? STAT_SUMSQ : STAT_GRAM;
        if (L->n_head == 0) want[FWD_ATTN_IN] = want[FWD_O_IN] = 0;
        if (L->n_ff == 0) want[FWD_FFN_IN] = want[FWD_DOWN_IN] = 0;
        st = runner_collect(r, want, 0, stats);
        for (int k = 0; k < N_MATS && !st; k++)
            if (layer_mat(L, k) && (!(W0[k] = to_f32(layer_mat(L, k))) ||
                                    !(W[k] = pare_malloc((size_t)pare_tensor_nelem(layer_mat(L, k)) * sizeof(float)))))
                st = PARE_ERR_NOMEM;
        /* the dense block's outputs */
        double den = 0;
        for (int w = 0; w < cd->n && !st; w++) {
            const size_t per = (size_t)cd->T * m->n_embd;
            memcpy(yd + w * per, r->x + w * per, per * sizeof(float));
            st = block_forward(r->ctx, l, yd + w * per, cd->T, 0);
        }
        for (size_t i = 0; i < total && !st; i++) den += (double)yd[i] * yd[i];
        for (int i = 0; i < p->n_ratio && !st; i++) {
            double *err = &p->prune_err[(size_t)l * p->n_ratio + i];
            if (o->ratio[i] == 0) { *err = 0; if (p->has_loss) done_units += m->n_layer - l; continue; }
            po.sparsity = (float)o->ratio[i];
            for (int k = 0; k < N_MATS && !st; k++) {
                pare_tensor *t = layer_mat(L, k);
                if (!t) continue;
                const calib_stats *s = &stats[mat_point[k]];
                memcpy(W[k], W0[k], (size_t)pare_tensor_nelem(t) * sizeof(float));
                if (o->method == PRUNE_WANDA) prune_wanda(W[k], t->ne[1], t->ne[0], s->sumsq, &po);
                else st = prune_sparsegpt(W[k], t->ne[1], t->ne[0], s->gram, s->ntok, &po);
                if (!st) st = swap_in(t, t->type, W[k], &sv[k]); /* stored as pare prune stores it */
            }
            if (!st) st = block_err(r, l, y, yd, den, err);
            if (!st && p->has_loss) st = setting_loss(r, l, p->base_loss, ntok, &p->prune_loss[(size_t)l * p->n_ratio + i]);
            for (int k = 0; k < N_MATS; k++) swap_out(&sv[k]);
            if (p->has_loss) progress_update(&pb, done_units += m->n_layer - l);
        }
        for (int i = 0; i < p->n_bits && !st; i++) {
            const quant_spec q = grid_of(o->bits[i], o->group);
            for (int k = 0; k < N_MATS && !st; k++) {
                pare_tensor *t = layer_mat(L, k);
                if (!t) continue;
                const int64_t rows = t->ne[1], cols = t->ne[0];
                memcpy(W[k], W0[k], (size_t)(rows * cols) * sizeof(float));
                if (q.bits < 16)
                    for (int64_t rr = 0; rr < rows; rr++) quant_rtn_row(&q, W[k] + rr * cols, cols, NULL);
                /* as quant_model stores a generic grid: F32 stays F32, else F16; 16 bits: F16 */
                const int type = q.bits >= 16 || t->type != PARE_TYPE_F32 ? PARE_TYPE_F16 : PARE_TYPE_F32;
                st = swap_in(t, type, W[k], &sv[k]);
            }
            if (!st) st = block_err(r, l, y, yd, den, &p->quant_err[(size_t)l * p->n_bits + i]);
            if (!st && p->has_loss) st = setting_loss(r, l, p->base_loss, ntok, &p->quant_loss[(size_t)l * p->n_bits + i]);
            for (int k = 0; k < N_MATS; k++) swap_out(&sv[k]);
            if (p->has_loss) progress_update(&pb, done_units += m->n_layer - l);
        }
        double e = 0;
        for (int i = 0; i < p->n_ratio; i++) e += p->prune_err[(size_t)l * p->n_ratio + i];
        p->e[l] = e / p->n_ratio;
        for (int k = 0; k < N_MATS; k++) { free(W0[k]); free(W[k]); }
        for (int q = 0; q < FWD_N_POINTS; q++) calib_stats_free(&stats[q]);
        if (!st) st = runner_advance(r); /* the dense block: every block sees dense inputs */
        if (!p->has_loss) done_units = l + 1;
        progress_update(&pb, done_units);
    }
    progress_end(&pb);
    free(yd); free(y);
    runner_free(r);
    p->seconds = pare_now() - t0;
    if (st) luc_profile_free(p);
    return st;
}

static double interp(const luc_profile *p, const double *e, double s) {
    if (s <= 0) return 0.0;
    double x0 = 0, y0 = 0;
    for (int i = 0; i < p->n_ratio; i++) {
        const double x1 = p->ratio[i], y1 = e[i];
        if (s <= x1) return x1 > x0 ? y0 + (y1 - y0) * (s - x0) / (x1 - x0) : y1;
        x0 = x1; y0 = y1;
    }
    if (p->n_ratio >= 2) { /* beyond the last ratio: the last segment extended */
        const double xa = p->ratio[p->n_ratio - 2], ya = e[p->n_ratio - 2];
        const double v = y0 + (y0 - ya) * (s - x0) / (x0 - xa);
        return v > y0 ? v : y0;
    }
    return x0 > 0 ? y0 * s / x0 : y0;
}

double luc_prune_err(const luc_profile *p, int l, double s) { return interp(p, p->prune_err + (size_t)l * p->n_ratio, s); }

double luc_prune_loss(const luc_profile *p, int l, double s) {
    return p->has_loss ? interp(p, p->prune_loss + (size_t)l * p->n_ratio, s) : NAN;
}

static double bits_at(const luc_profile *p, const double *q, int l, int b) {
    if (!q) return NAN;
    for (int i = 0; i < p->n_bits; i++)
        if (p->bits[i] == b) return q[(size_t)l * p->n_bits + i];
    return b >= 16 ? 0.0 : NAN;
}

double luc_quant_err(const luc_profile *p, int l, int b) { return bits_at(p, p->quant_err, l, b); }
double luc_quant_loss(const luc_profile *p, int l, int b) { return bits_at(p, p->has_loss ? p->quant_loss : NULL, l, b); }

/* ---- policies --------------------------------------------------------------------------- */
pare_status luc_sparsity_policy(const double *e, int L, double target, double cap, double *s) {
    if (L <= 0) return pare_fail(PARE_ERR_ARG, "%s", "LUC policy: no blocks");
    if (!(cap > 0 && cap < 1)) return pare_fail(PARE_ERR_ARG, "LUC policy: cap %g must be in (0, 1)", cap);
    if (!(target >= 0 && target <= cap))
        return pare_fail(PARE_ERR_ARG, "LUC policy: target sparsity %g must be in [0, %g]", target, cap);
    double mn = e[0], mx = e[0];
    for (int l = 0; l < L; l++) {
        if (!isfinite(e[l])) return pare_fail(PARE_ERR_ARG, "LUC policy: block %d has no finite sensitivity", l);
        if (e[l] < mn) mn = e[l];
        if (e[l] > mx) mx = e[l];
    }
    double *sh = pare_malloc((size_t)L * sizeof(double));
    unsigned char *capped = pare_calloc((size_t)L, 1);
    if (!sh || !capped) { free(sh); free(capped); return PARE_ERR_NOMEM; }
    for (int l = 0; l < L; l++) sh[l] = mx > mn ? 1.0 - (e[l] - mn) / (mx - mn) : 1.0;
    for (;;) { /* water filling: at most L rounds, each caps one block more or stops */
        int nc = 0, nfree = 0;
        double wsum = 0;
        for (int l = 0; l < L; l++) {
            if (capped[l]) nc++;
            else { nfree++; wsum += sh[l]; }
        }
        const double rest = target * L - cap * nc; /* what the uncapped blocks must hold */
        if (nfree == 0) break;
        if (wsum <= 0) { /* only the most sensitive blocks are left: equal shares */
            for (int l = 0; l < L; l++) if (!capped[l]) s[l] = rest / nfree;
            break;
        }
        const double c = rest / wsum;
        int more = 0;
        for (int l = 0; l < L; l++)
            if (!capped[l] && c * sh[l] > cap) { capped[l] = 1; more = 1; }
        if (!more) {
            for (int l = 0; l < L; l++) if (!capped[l]) s[l] = c * sh[l];
            break;
        }
    }
    for (int l = 0; l < L; l++) if (capped[l]) s[l] = cap;
    free(sh); free(capped);
    return PARE_OK;
}

void luc_bits_policy(const double *qs, int L, int base, int high, int *bits) {
    double mean = 0;
    for (int l = 0; l < L; l++) mean += qs[l];
    mean /= L > 0 ? L : 1;
    for (int l = 0; l < L; l++) bits[l] = qs[l] > mean ? high : base;
}

/* ---- sizes and the budgeted search ---------------------------------------------------------- */
pare_status luc_sizes_of(const pare_model *m, int group, luc_sizes *z) {
    memset(z, 0, sizeof *z);
    z->n_layer = m->n_layer; z->group = group;
    z->numel = pare_calloc((size_t)(m->n_layer ? m->n_layer : 1), sizeof(int64_t));
    z->ngroups = pare_calloc((size_t)(m->n_layer ? m->n_layer : 1), sizeof(int64_t));
    if (!z->numel || !z->ngroups) { luc_sizes_free(z); return PARE_ERR_NOMEM; }
    double mats = 0, all = 0;
    for (int l = 0; l < m->n_layer; l++)
        for (int k = 0; k < N_MATS; k++) {
            const pare_tensor *t = layer_mat(&m->layers[l], k);
            if (!t) continue;
            const int64_t cols = t->ne[0], rows = t->ne[1], g = group > 0 ? group : cols;
            z->numel[l] += rows * cols;
            z->ngroups[l] += rows * ((cols + g - 1) / g);
            mats += (double)t->nbytes;
        }
    for (int i = 0; i < m->n_tensors; i++) all += (double)m->tensors[i].nbytes;
    z->fixed_bytes = all - mats;
    return PARE_OK;
}

void luc_sizes_free(luc_sizes *z) { free(z->numel); free(z->ngroups); z->numel = z->ngroups = NULL; }

double luc_block_bits(const luc_sizes *z, int l, double s, int b, int sparse) {
    const double n = (double)z->numel[l], scales = b >= 16 ? 0.0 : 16.0 * (double)z->ngroups[l];
    const double dense = n * (b >= 16 ? 16 : b) + scales;
    if (!sparse || s <= 0) return dense;
    const double bitmap = (1.0 - s) * n * (b >= 16 ? 16 : b) + n + scales;
    return bitmap < dense ? bitmap : dense;
}

void luc_budget_opts_default(luc_budget_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_s = 9;
    for (int i = 0; i < 9; i++) o->s[i] = 0.1 * i;
    o->n_b = 3;
    o->b[0] = 3; o->b[1] = 4; o->b[2] = 8;
    o->units = 4096;
}

double luc_option_cost(const luc_profile *p, const luc_budget_opts *o, int l, double s, int b) {
    if (o->objective == LUC_OBJ_LOSS) return luc_prune_loss(p, l, s) + luc_quant_loss(p, l, b);
    return luc_prune_err(p, l, s) + luc_quant_err(p, l, b);
}

pare_status luc_budget_search(const luc_profile *p, const luc_sizes *z, double budget_bytes, const luc_budget_opts *o,
                              float *s, int *bits, double *err, double *bytes) {
    const int L = p->n_layer, nopt = o->n_s * o->n_b, U = o->units;
    if (L != z->n_layer) return pare_fail(PARE_ERR_ARG, "budget: the profile has %d blocks, the model %d", L, z->n_layer);
    if (nopt <= 0 || U <= 0 || U > (1 << 24)) return pare_fail(PARE_ERR_ARG, "%s", "budget: empty option sets");
    if (o->objective == LUC_OBJ_LOSS && !p->has_loss)
        return pare_fail(PARE_ERR_ARG, "%s", "budget: the loss objective needs a loss profile (pare profile --loss)");
    double cost_min = z->fixed_bytes * 8;
    for (int l = 0; l < L; l++) {
        double mn = INFINITY;
        for (int a = 0; a < o->n_s; a++)
            for (int c = 0; c < o->n_b; c++) {
                const double v = luc_block_bits(z, l, o->s[a], o->b[c], 1);
                if (v < mn) mn = v;
                if (isnan(luc_option_cost(p, o, l, o->s[a], o->b[c])))
                    return pare_fail(PARE_ERR_ARG, "budget: %d bits were not profiled", o->b[c]);
            }
        cost_min += mn;
    }
    const double block_bits = budget_bytes * 8 - z->fixed_bytes * 8;
    if (!(budget_bytes * 8 >= cost_min) || block_bits <= 0)
        return pare_fail(PARE_ERR_ARG, "budget %.4f MB is below the smallest configuration (%.4f MB)", budget_bytes / 1e6,
                         cost_min / 8e6);
    /* sizes in whole steps of a little less than block_bits / U, rounded up: any choice that
     * fits in U steps fits in the budget */
    const double unit = block_bits / U * (1 - 1e-9);
    double *dp = pare_malloc((size_t)(U + 1) * sizeof(double)), *nd = pare_malloc((size_t)(U + 1) * sizeof(double));
    int *choice = pare_malloc((size_t)L * (U + 1) * sizeof(int));
    int *cost = pare_malloc((size_t)nopt * sizeof(int));
    double *oe = pare_malloc((size_t)nopt * sizeof(double));
    pare_status st = PARE_OK;
    if (!dp || !nd || !choice || !cost || !oe) { st = PARE_ERR_NOMEM; goto done; }
    for (int j = 0; j <= U; j++) dp[j] = 0;
    for (int l = 0; l < L; l++) {
        for (int a = 0; a < o->n_s; a++)
            for (int c = 0; c < o->n_b; c++) {
                const int k = a * o->n_b + c;
                const double steps = ceil(luc_block_bits(z, l, o->s[a], o->b[c], 1) / unit);
                cost[k] = steps > U ? U + 1 : (int)steps;
                oe[k] = luc_option_cost(p, o, l, o->s[a], o->b[c]);
            }
        for (int j = 0; j <= U; j++) {
            double best = INFINITY;
            int bk = -1;
            for (int k = 0; k < nopt; k++) {
                if (cost[k] > j || !isfinite(dp[j - cost[k]])) continue;
                const double v = dp[j - cost[k]] + oe[k];
                if (v < best) { best = v; bk = k; }
            }
            nd[j] = best;
            choice[(size_t)l * (U + 1) + j] = bk;
        }
        memcpy(dp, nd, (size_t)(U + 1) * sizeof(double));
    }
    /* when the rounding leaves nothing (a budget within L steps of the smallest size), the
     * smallest configuration, which fits */
    const int fallback = !isfinite(dp[U]);
    double tot_bits = z->fixed_bytes * 8, tot_err = 0;
    for (int l = L - 1, j = U; l >= 0; l--) {
        int k = fallback ? 0 : choice[(size_t)l * (U + 1) + j];
        for (int kk = 0; fallback && kk < nopt; kk++)
            if (luc_block_bits(z, l, o->s[kk / o->n_b], o->b[kk % o->n_b], 1) <
                luc_block_bits(z, l, o->s[k / o->n_b], o->b[k % o->n_b], 1)) k = kk;
        const int a = k / o->n_b, c = k % o->n_b;
        s[l] = (float)o->s[a]; bits[l] = o->b[c];
        /* recompute this layer's step count to walk back */
        const double steps = ceil(luc_block_bits(z, l, o->s[a], o->b[c], 1) / unit);
        j -= (int)steps;
        tot_bits += luc_block_bits(z, l, o->s[a], o->b[c], 1);
        tot_err += luc_option_cost(p, o, l, o->s[a], o->b[c]);
    }
    if (err) *err = tot_err;
    if (bytes) *bytes = tot_bits / 8;
done:
    free(dp); free(nd); free(choice); free(cost); free(oe);
    return st;
}

static double policy_bytes(const luc_sizes *z, const double *s, const int *bits) {
    double b = z->fixed_bytes * 8;
    for (int l = 0; l < z->n_layer; l++) b += luc_block_bits(z, l, s[l], bits[l], 1);
    return b / 8;
}

pare_status luc_policy_at_size(const luc_profile *p, const luc_sizes *z, const int *bits, double cap,
                               double budget_bytes, double *s, double *target) {
    const int L = z->n_layer;
    if (L != p->n_layer) return pare_fail(PARE_ERR_ARG, "LUC: the profile has %d blocks, the model %d", p->n_layer, L);
    pare_status st = luc_sparsity_policy(p->e, L, 0.0, cap, s);
    if (st) return st;
    if (policy_bytes(z, s, bits) <= budget_bytes) { *target = 0; return PARE_OK; }
    if ((st = luc_sparsity_policy(p->e, L, cap, cap, s))) return st;
    const double smallest = policy_bytes(z, s, bits);
    if (smallest > budget_bytes)
        return pare_fail(PARE_ERR_ARG, "budget %.4f MB is below LUC's smallest size at these bits (%.4f MB at sparsity %g)",
                         budget_bytes / 1e6, smallest / 1e6, cap);
    double lo = 0, hi = cap; /* size(lo) > budget >= size(hi) */
    for (int it = 0; it < 60 && hi - lo > 1e-9; it++) {
        const double mid = 0.5 * (lo + hi);
        if ((st = luc_sparsity_policy(p->e, L, mid, cap, s))) return st;
        if (policy_bytes(z, s, bits) <= budget_bytes) hi = mid; else lo = mid;
    }
    *target = hi;
    return luc_sparsity_policy(p->e, L, hi, cap, s);
}

int luc_uniform_fits(const luc_sizes *z, double budget_bytes, const luc_budget_opts *o, double *s_out, int *b_out) {
    int n = 0;
    for (int c = 0; c < o->n_b; c++) {
        int best = -1;
        for (int a = 0; a < o->n_s; a++) {
            double bits = z->fixed_bytes * 8;
            for (int l = 0; l < z->n_layer; l++) bits += luc_block_bits(z, l, o->s[a], o->b[c], 1);
            if (bits / 8 <= budget_bytes && (best < 0 || o->s[a] < o->s[best])) best = a;
        }
        if (best >= 0) { s_out[n] = o->s[best]; b_out[n] = o->b[c]; n++; }
    }
    return n;
}

pare_status luc_calib_loss(const pare_model *m, const calib_data *cd, double *loss) {
    if (!cd || cd->n <= 0 || cd->T < 2) return pare_fail(PARE_ERR_ARG, "%s", "calibration loss: needs calibration data");
    calib_runner *r = NULL;
    pare_status st = runner_new(m, cd, &r);
    double nll = 0;
    if (!st) st = runner_loss_from(r, 0, NULL, &nll);
    runner_free(r);
    if (!st) *loss = nll / ((double)cd->n * (cd->T - 1));
    return st;
}

/* ---- the pipeline ----------------------------------------------------------------------- */
void luc_compress_opts_default(luc_compress_opts *o) {
    memset(o, 0, sizeof *o);
    prune_opts_default(&o->prune);
    o->prune.method = PRUNE_SPARSEGPT;
    o->group = 128;
    o->quant_method = QUANT_RTN;
    gptq_opts_default(&o->gptq);
}

void luc_report_free(luc_report *r) { free(r->sparsity); free(r->bits); r->sparsity = NULL; r->bits = NULL; }

/* the fraction of zeros in block l's seven matrices */
static pare_status block_zeros(const pare_model *m, int l, double *frac) {
    int64_t zeros = 0, n = 0;
    for (int k = 0; k < N_MATS; k++) {
        const pare_tensor *t = layer_mat(&m->layers[l], k);
        if (!t) continue;
        float *w = to_f32(t);
        if (!w) return PARE_ERR_NOMEM;
        const int64_t ne = pare_tensor_nelem(t);
        for (int64_t i = 0; i < ne; i++) zeros += w[i] == 0;
        n += ne;
        free(w);
    }
    *frac = n ? (double)zeros / (double)n : 0.0;
    return PARE_OK;
}

pare_status luc_compress(pare_model *m, const calib_data *cd, const float *sparsity, const int *bits,
                         const luc_compress_opts *o, int show_progress, luc_report *rep) {
    memset(rep, 0, sizeof *rep);
    const int L = m->n_layer;
    double t0 = pare_now();
    int any = 0;
    for (int l = 0; l < L; l++) {
        if (!(sparsity[l] >= 0 && sparsity[l] < 1)) return pare_fail(PARE_ERR_ARG, "block %d: sparsity %g must be in [0, 1)", l, (double)sparsity[l]);
        if (!((bits[l] >= 2 && bits[l] <= 8) || bits[l] == 16)) return pare_fail(PARE_ERR_ARG, "block %d: %d bits (2..8 or 16)", l, bits[l]);
        any |= sparsity[l] > 0;
    }
    rep->n_layer = L;
    rep->sparsity = pare_calloc((size_t)(L ? L : 1), sizeof(double));
    rep->bits = pare_calloc((size_t)(L ? L : 1), sizeof(int));
    quant_spec *specs = pare_calloc((size_t)(L ? L : 1), sizeof(quant_spec));
    luc_sizes z = {0};
    pare_status st = !rep->sparsity || !rep->bits || !specs ? PARE_ERR_NOMEM : PARE_OK;
    if (!st && any) { /* pass 1: SparseGPT (or the chosen method), block by block */
        prune_opts po = o->prune;
        po.layer_sparsity = sparsity;
        po.nm_m = 0;
        prune_report pr;
        st = prune_model(m, cd, &po, show_progress, &pr);
        prune_report_free(&pr);
    }
    for (int l = 0; l < L && !st; l++) { /* the pruning mask's zeros */
        st = block_zeros(m, l, &rep->sparsity[l]);
        rep->bits[l] = bits[l];
        specs[l] = grid_of(bits[l], o->group);
    }
    if (!st) st = luc_sizes_of(m, o->group, &z);
    if (!st) { /* pass 2: every block at its grid */
        quant_opts qo;
        memset(&qo, 0, sizeof qo);
        qo.spec = specs[0];
        qo.layer_spec = specs;
        qo.method = o->quant_method;
        qo.gptq = o->gptq;
        quant_report qr;
        st = quant_model(m, o->quant_method == QUANT_GPTQ ? cd : NULL, &qo, show_progress, &qr);
    }
    for (int l = 0; l < L && !st; l++) {
        /* zeros left after rounding: RTN keeps every pruned zero (and may add some: they are not
         * counted), GPTQ's error feedback refills pruned positions: then fewer are left */
        double left;
        st = block_zeros(m, l, &left);
        if (!st && left < rep->sparsity[l]) rep->sparsity[l] = left;
    }
    if (!st) {
        for (int l = 0; l < L; l++) {
            rep->dense_bytes += luc_block_bits(&z, l, 0, bits[l], 0) / 8;
            rep->sparse_bytes += luc_block_bits(&z, l, rep->sparsity[l], bits[l], 1) / 8;
        }
        rep->fixed_bytes = z.fixed_bytes;
    }
    luc_sizes_free(&z);
    free(specs);
    if (st) luc_report_free(rep);
    rep->seconds = pare_now() - t0;
    return st;
}
