/* qdriver.c - quantize a whole model: RTN matrix by matrix, or GPTQ through the sequential
 * calibration pipeline of the pruning methods (METHODS.md 0.2, src/prune/driver.c): inputs
 * of block 0 captured once; per block one Gram matrix per shared input (q/k/v, o, gate/up,
 * down), the seven matrices quantized from F32 working copies and stored in their new type,
 * then the quantized block re-run to give the inputs of the next block. */
#include "quant.h"

#include "eval/eval.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MQ, MK, MV, MO, MG, MU, MD, N_MATS };
static const int mat_point[N_MATS] = {FWD_ATTN_IN, FWD_ATTN_IN, FWD_ATTN_IN, FWD_O_IN, FWD_FFN_IN, FWD_FFN_IN, FWD_DOWN_IN};

static pare_tensor *layer_mat(pare_layer *L, int k) {
    switch (k) {
    case MQ: return L->wq; case MK: return L->wk; case MV: return L->wv; case MO: return L->wo;
    case MG: return L->w_gate; case MU: return L->w_up; default: return L->w_down;
    }
}

static float *to_f32(const pare_tensor *t) {
    float *w = pare_malloc((size_t)pare_tensor_nelem(t) * sizeof(float));
    if (!w) return NULL;
    for (int64_t r = 0; r < t->ne[1]; r++) pare_tensor_row_f32(t, r, w + r * t->ne[0]);
    return w;
}

/* The type a quantized matrix is written in: the GGUF type, or for the generic grids the
 * fake-quantized values in F32 (F32 input) or F16 (anything else). */
static int stored_type(const quant_spec *q, int src) {
    if (q->type < 0 && q->bits >= 16) return PARE_TYPE_F16; /* a per-block "16 bits": F16 */
    return q->type >= 0 ? q->type : src == PARE_TYPE_F32 ? PARE_TYPE_F32 : PARE_TYPE_F16;
}
static int is_f16_spec(const quant_spec *q) { return q->type < 0 && q->bits == 16; }
static const quant_spec *block_spec(const quant_opts *o, int l) { return o->layer_spec ? &o->layer_spec[l] : &o->spec; }

/* Quantize t (W: its F32 values, overwritten) by RTN, or by GPTQ with the Gram matrix G of
 * ntok tokens (G != NULL), and give t the result (in the model's spill file). */
static pare_status quantize_tensor(pare_model *m, pare_tensor *t, float *W, const double *G, int64_t ntok,
                                   const quant_opts *o, const quant_spec *q, quant_report *rep) {
    const int64_t rows = t->ne[1], cols = t->ne[0];
    const int type = stored_type(q, t->type);
    const size_t rb = pare_row_bytes(type, cols), nb = rb * (size_t)rows;
    uint8_t *d = pare_malloc(nb);
    if (!d) return PARE_ERR_NOMEM;
    void *packed = q->type >= 0 ? d : NULL;
    pare_status st = PARE_OK;
    if (is_f16_spec(q)) {
        /* no rounding: k_quant_row below converts to F16 */
    } else if (G) {
        st = gptq_quantize(W, rows, cols, G, ntok, q, &o->gptq, packed);
    } else {
        #pragma omp parallel for schedule(static) if (rows * cols >= 65536)
        for (int64_t r = 0; r < rows; r++) quant_rtn_row(q, W + r * cols, cols, packed ? d + r * rb : NULL);
    }
    if (!st && !packed)
        for (int64_t r = 0; r < rows; r++) k_quant_row(type, W + r * cols, d + r * rb, cols);
    if (!st) st = model_spill_tensor(m, t, d, nb);
    free(d);
    if (st) return st;
    t->type = type;
    rep->n++;
    rep->numel += rows * cols;
    rep->bits += (is_f16_spec(q) ? 16.0 : quant_bits_per_weight(q, cols)) * (double)(rows * cols);
    rep->stored_type = type;
    return PARE_OK;
}

pare_status quant_model(pare_model *m, const calib_data *cd, const quant_opts *o, int show_progress, quant_report *rep) {
    memset(rep, 0, sizeof *rep);
    const quant_spec *q = &o->spec;
    const int gptq = o->method == QUANT_GPTQ;
    if (o->method != QUANT_RTN && !gptq) return pare_fail(PARE_ERR_ARG, "unknown quantization method %d", o->method);
    if (!o->layer_spec && q->type < 0 && (q->bits < 2 || q->bits > 8)) return pare_fail(PARE_ERR_ARG, "%d-bit grids: bits must be 2..8", q->bits);
    for (int l = 0; o->layer_spec && l < m->n_layer; l++) {
        const quant_spec *ql = &o->layer_spec[l];
        if (ql->type < 0 && !is_f16_spec(ql) && (ql->bits < 2 || ql->bits > 8))
            return pare_fail(PARE_ERR_ARG, "block %d: %d-bit grids: bits must be 2..8 (or 16: F16)", l, ql->bits);
    }
    if (gptq && (!cd || cd->n <= 0)) return pare_fail(PARE_ERR_ARG, "GPTQ needs calibration data");
    if (gptq && !(o->gptq.percdamp >= 0)) return pare_fail(PARE_ERR_ARG, "GPTQ: percdamp must be >= 0");
    pare_status st = PARE_OK;
    for (int l = 0; l < m->n_layer && !st; l++) /* every width first: fail before any work */
        for (int k = 0; k < N_MATS && !st; k++) {
            const pare_tensor *t = layer_mat(&m->layers[l], k);
            if (t) st = quant_check_cols(block_spec(o, l), t->ne[0], t->name);
        }
    pare_tensor *head = o->head && !m->tied ? m->output : NULL; /* tied: it is the embedding */
    if (!st && head) st = quant_check_cols(q, head->ne[0], head->name);
    if (st) return st;
    k_init();
    double t0 = pare_now();
    calib_runner *r = NULL;
    if (gptq && (st = runner_new(m, cd, &r))) return st;
    pare_progress pb;
    progress_start(&pb, "quantize", m->n_layer);
    if (!show_progress) pb.enabled = 0;
    for (int l = 0; l < m->n_layer && !st; l++) {
        pare_layer *L = &m->layers[l];
        float *W[N_MATS] = {0};
        for (int k = 0; k < N_MATS && !st; k++)
            if (layer_mat(L, k) && !(W[k] = to_f32(layer_mat(L, k)))) st = PARE_ERR_NOMEM;
        calib_stats stats[FWD_N_POINTS];
        memset(stats, 0, sizeof stats);
        if (!st && r) { /* one Gram matrix per shared input, on the inputs of the quantized blocks below */
            unsigned want[FWD_N_POINTS] = {STAT_GRAM, STAT_GRAM, STAT_GRAM, STAT_GRAM};
            if (L->n_head == 0) want[FWD_ATTN_IN] = want[FWD_O_IN] = 0;
            if (L->n_ff == 0) want[FWD_FFN_IN] = want[FWD_DOWN_IN] = 0;
            st = runner_collect(r, want, 0, stats);
        }
        for (int k = 0; k < N_MATS; k++) {
            if (!W[k]) continue;
            const calib_stats *s = &stats[mat_point[k]];
            if (!st) st = quantize_tensor(m, layer_mat(L, k), W[k], r ? s->gram : NULL, s->ntok, o, block_spec(o, l), rep);
            free(W[k]);
        }
        for (int p = 0; p < FWD_N_POINTS; p++) calib_stats_free(&stats[p]);
        if (!st) st = r ? runner_advance(r) : pare_inputs_unchanged(); /* (the runner checks the inputs too) */
        for (int k = 0; k < N_MATS && !st; k++) { /* block l is done until the output is written */
            const pare_tensor *t = layer_mat(L, k);
            if (t && !t->owned) pare_release_pages(t->data, t->nbytes);
        }
        progress_update(&pb, l + 1);
    }
    progress_end(&pb);
    runner_free(r);
    if (!st && head) { /* round to nearest (its inputs are not captured) */
        float *W = to_f32(head);
        st = W ? quantize_tensor(m, head, W, NULL, 0, o, q, rep) : PARE_ERR_NOMEM;
        rep->head = !st;
        free(W);
    }
    if (!st) {
        for (int i = 0; i < m->n_tensors; i++) rep->bytes_other += (int64_t)m->tensors[i].nbytes;
        int64_t qbytes = 0; /* subtract the quantized tensors as stored */
        for (int l = 0; l < m->n_layer; l++)
            for (int k = 0; k < N_MATS; k++)
                if (layer_mat(&m->layers[l], k)) qbytes += (int64_t)layer_mat(&m->layers[l], k)->nbytes;
        if (head) qbytes += (int64_t)head->nbytes;
        rep->bytes_other -= qbytes;
    }
    rep->seconds = pare_now() - t0;
    return st;
}
