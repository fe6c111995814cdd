/* taylor.c - LLM-Pruner's first-order Taylor importance as a structured score (METHODS.md
 * 10 a; LLM-Pruner's hf_prune.py with TaylorImportance, taylor = param_first):
 *
 *   L        the mean next-token cross-entropy over the calibration windows (every token but
 *            each window's first is a target: what `loss = model(x, labels=x).loss` is);
 *   g = dL/dW of every attention and MLP matrix, one backward pass of the whole model on the
 *            F32 training network (src/train/tnet.h), the windows in micro-batches whose
 *            gradients add up to the one of the full batch;
 *   unit     sum of |w g| over all its weights (LLM-Pruner sums the element importances of
 *            every coupled slice of a group): a query head its hd rows of q and hd columns of
 *            o, plus 1/group of its KV head's hd rows of k and v [O] (with grouped-query
 *            attention a KV head is shared by its group and goes only with all of it, as
 *            mag-struct counts it); an FFN channel its row of gate and up and column of down.
 *
 * Larger = more important; structured.c then selects (by default the same share per layer,
 * LLM-Pruner's local ranking) and removes the units. Only the gradients of the block
 * matrices are kept (F32, as many values as the matrices), with the activations of one
 * micro-batch; the whole net is freed once the scores are taken. */
#include "prune.h"

#include "eval/eval.h"
#include "train/tnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAYLOR_ACT_BYTES ((size_t)256 << 20) /* activations of one micro-batch, at most */

static float g_mark[1]; /* a non-NULL gradient while the plan is only counted */

/* A block matrix (q, k, v, o, gate, up, down): a linear layer of block l. */
static int block_matrix(const tparam_f *p) {
    int l;
    return p->lin && !p->lora && sscanf(p->name, "blk.%d.", &l) == 1;
}

/* The net over m's shapes. counting: gradients marked only (for tnet_plan_bytes), nothing
 * copied; else weights bound (F32 tensors read in place, others converted into the net) and
 * zeroed gradients for every block matrix. *copy_bytes: the bytes of converted copies and
 * gradients. */
static pare_status build_net(const pare_model *m, int counting, tnet_f **out, size_t *copy_bytes) {
    *out = NULL;
    *copy_bytes = 0;
    tnet_f *n;
    pare_status st = tnet_new_f(m, &n);
    if (st) return st;
    for (int i = 0; i < n->n_params && !st; i++) {
        tparam_f *p = &n->params[i];
        size_t cnt = (size_t)(p->rows * p->cols);
        const pare_tensor *t = model_find_tensor(m, p->name);
        if (!t || t->ne[0] != p->cols || pare_tensor_nelem(t) != (int64_t)cnt) {
            st = pare_fail(PARE_ERR_ARG, "taylor: model tensor '%s' missing or of another shape", p->name);
            break;
        }
        if (t->type != PARE_TYPE_F32) *copy_bytes += cnt * sizeof(float);
        if (block_matrix(p)) *copy_bytes += cnt * sizeof(float);
        if (counting) {
            if (block_matrix(p)) *p->gw = g_mark;
            continue;
        }
        if (t->type == PARE_TYPE_F32) {
            *p->w = t->data; /* the net only reads its weights */
        } else {
            float *w = tnet_alloc_f(n, cnt);
            if (!w) { st = PARE_ERR_NOMEM; break; }
            for (int64_t r = 0; r < p->rows; r++) pare_tensor_row_f32(t, r, w + r * p->cols);
            *p->w = w;
        }
        if (block_matrix(p) && !(*p->gw = tnet_alloc_f(n, cnt))) st = PARE_ERR_NOMEM;
    }
    if (st) { tnet_free_f(n); return st; }
    *out = n;
    return PARE_OK;
}

/* Windows per micro-batch: as many as fit TAYLOR_ACT_BYTES by the per-window growth of the
 * activation plan (which does not depend on the thread count), 1..n. */
static int micro_batch(tnet_f *n, int nwin, int T) {
    size_t b1 = tnet_plan_bytes_f(n, 1, T), b2 = nwin > 1 ? tnet_plan_bytes_f(n, 2, T) : b1;
    size_t per = b2 > b1 ? b2 - b1 : b1;
    int64_t B = per ? (int64_t)(TAYLOR_ACT_BYTES / per) : nwin;
    if (B < 1) B = 1;
    if (B > nwin) B = nwin;
    return (int)B;
}

pare_status taylor_plan(const pare_model *m, int n, int T, int *B, size_t *bytes) {
    if (n < 1 || T < 2) return pare_fail(PARE_ERR_ARG, "taylor: %d windows of %d tokens (at least one window of 2)", n, T);
    tnet_f *net;
    size_t copies;
    pare_status st = build_net(m, 1, &net, &copies);
    if (st) return st;
    *B = micro_batch(net, n, T);
    *bytes = copies + tnet_plan_bytes_f(net, *B, T) + 2 * (size_t)*B * T * sizeof(int32_t);
    tnet_free_f(net);
    return PARE_OK;
}

static double abs_rows(const float *w, const float *g, int64_t r0, int64_t nr, int64_t cols) {
    double s = 0;
    for (int64_t i = r0 * cols; i < (r0 + nr) * cols; i++) s += fabs((double)w[i] * (double)g[i]);
    return s;
}

static double abs_cols(const float *w, const float *g, int64_t rows, int64_t cols, int64_t c0, int64_t nc) {
    double s = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = c0; c < c0 + nc; c++) s += fabs((double)w[r * cols + c] * (double)g[r * cols + c]);
    return s;
}

static void layer_scores(const tnet_f *n, int l, sprune_layer *sl) {
    const tlayer_f *L = &n->layers[l];
    int64_t E = n->n_embd, hd = n->head_dim;
    if (L->n_head > 0) {
        int H = L->n_head, g = L->n_head / L->n_head_kv;
        int64_t D = (int64_t)H * hd;
        for (int h = 0; h < H; h++) {
            int kv = h / g;
            double kvs = abs_rows(L->wk.w, L->wk.gw, kv * hd, hd, E) + abs_rows(L->wv.w, L->wv.gw, kv * hd, hd, E);
            sl->head_score[h] = abs_rows(L->wq.w, L->wq.gw, h * hd, hd, E) + abs_cols(L->wo.w, L->wo.gw, E, D, h * hd, hd) +
                                kvs / g;
        }
    }
    if (L->n_ff > 0) {
        int64_t F = L->n_ff;
        for (int64_t j = 0; j < F; j++)
            sl->ff_score[j] = abs_rows(L->gate.w, L->gate.gw, j, 1, E) + abs_rows(L->up.w, L->up.gw, j, 1, E) +
                              abs_cols(L->down.w, L->down.gw, E, F, j, 1);
    }
}

pare_status taylor_scores(const pare_model *m, const calib_data *cd, sprune_plan *p, int show_progress, double *loss) {
    if (loss) *loss = NAN;
    if (!cd || cd->n < 1 || cd->T < 2 || !cd->ids)
        return pare_fail(PARE_ERR_ARG, "taylor-struct needs calibration windows of at least 2 tokens");
    if (p->n_layer != m->n_layer) return pare_fail(PARE_ERR_ARG, "taylor: plan for %d layers, model has %d", p->n_layer, m->n_layer);
    int nw = cd->n, T = cd->T;
    tnet_f *n;
    size_t copies;
    pare_status st = build_net(m, 0, &n, &copies);
    if (st) return st;
    int B = micro_batch(n, nw, T);
    st = tnet_reserve_f(n, B, T);
    int32_t *in = pare_malloc((size_t)B * T * sizeof(int32_t)), *tgt = pare_malloc((size_t)B * T * sizeof(int32_t));
    if (!st && (!in || !tgt)) st = PARE_ERR_NOMEM;
    /* L = sum of -log p over the nw (T - 1) targets / their number */
    float dscale = (float)(1.0 / ((double)nw * (T - 1)));
    double nll = 0;
    int64_t cnt = 0;
    pare_progress pb;
    progress_start(&pb, "taylor", nw);
    if (!show_progress) pb.enabled = 0;
    for (int w0 = 0; w0 < nw && !st; w0 += B) {
        int b = nw - w0 < B ? nw - w0 : B;
        for (int k = 0; k < b; k++) {
            const int32_t *ids = cd->ids + (size_t)(w0 + k) * T;
            memcpy(in + (size_t)k * T, ids, (size_t)T * sizeof(int32_t));
            memcpy(tgt + (size_t)k * T, ids + 1, (size_t)(T - 1) * sizeof(int32_t));
            tgt[(size_t)k * T + T - 1] = -1; /* the window's last token predicts nothing in it */
        }
        double s = 0;
        int64_t c = 0;
        st = tnet_grad_f(n, in, tgt, b, T, dscale, &s, &c);
        nll += s; cnt += c;
        progress_update(&pb, w0 + b);
    }
    progress_end(&pb);
    free(in); free(tgt);
    if (!st) {
        for (int l = 0; l < m->n_layer; l++) layer_scores(n, l, &p->l[l]);
        if (loss) *loss = cnt ? nll / (double)cnt : NAN;
    }
    tnet_free_f(n);
    return st;
}
