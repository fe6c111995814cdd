/* ppl.c - perplexity over non-overlapping windows (papers' and llama.cpp's protocols). */
#include "eval.h"

#include "model/forward.h"

#include <math.h>
#include <stdlib.h>

double nll_of(const float *lg, int V, int32_t target) {
    float mx = lg[0];
    for (int i = 1; i < V; i++) if (lg[i] > mx) mx = lg[i];
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)(lg[i] - mx));
    return log(s) + (double)mx - (double)lg[target];
}

pare_status eval_ppl(const pare_model *m, const int32_t *ids, size_t n_ids, int ctx, int max_windows,
                     int protocol, int show_progress, pare_ppl *out) {
    if (ctx < 2) return pare_fail(PARE_ERR_ARG, "--ctx must be at least 2 (got %d)", ctx);
    int64_t nw = (int64_t)(n_ids / (size_t)ctx);
    if (nw == 0) return pare_fail(PARE_ERR_ARG, "text has %zu tokens, fewer than one window of %d", n_ids, ctx);
    if (max_windows > 0 && nw > max_windows) nw = max_windows;
    pare_ctx *c;
    pare_status st = pare_ctx_new(m, ctx, &c);
    if (st) return st;
    int V = m->n_vocab;
    float *logits = pare_calloc((size_t)ctx * V, sizeof(float));
    int32_t *win = pare_calloc((size_t)ctx, sizeof(int32_t));
    double *tok_nll = pare_calloc((size_t)ctx, sizeof(double));
    if (!logits || !win || !tok_nll) { free(logits); free(win); free(tok_nll); pare_ctx_free(c); return PARE_ERR_NOMEM; }
    int first = protocol == PPL_PROTOCOL_LLAMACPP ? ctx / 2 : 0;
    double sum = 0;
    int64_t scored = 0;
    pare_progress pb;
    progress_start(&pb, "ppl", nw);
    if (!show_progress) pb.enabled = 0;
    double t0 = pare_now();
    for (int64_t w = 0; w < nw && !st; w++) {
        for (int i = 0; i < ctx; i++) win[i] = ids[(size_t)w * ctx + i];
        if (protocol == PPL_PROTOCOL_LLAMACPP && m->vocab && m->vocab->bos >= 0) win[0] = m->vocab->bos;
        st = pare_forward(c, win, ctx, 0, logits);
        if (st) break;
        /* per-token NLLs in parallel, summed in order: the same bits for any thread count */
        #pragma omp parallel for schedule(static)
        for (int i = first; i < ctx - 1; i++) tok_nll[i] = nll_of(logits + (size_t)i * V, V, win[i + 1]);
        double ws = 0;
        for (int i = first; i < ctx - 1; i++) ws += tok_nll[i];
        sum += ws;
        scored += ctx - 1 - first;
        progress_update(&pb, w + 1);
    }
    progress_end(&pb);
    free(logits); free(win); free(tok_nll); pare_ctx_free(c);
    if (st) return st;
    out->nll = sum / (double)scored;
    out->ppl = exp(out->nll);
    out->tokens = (int64_t)n_ids; out->windows = nw; out->scored = scored;
    out->ctx = ctx; out->protocol = protocol;
    out->seconds = pare_now() - t0;
    return PARE_OK;
}
