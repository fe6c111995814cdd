/* forward.c - the LLaMA forward pass: batched prefill (BLAS sgemm) and incremental decode
 * (matrix-vector kernels) over a KV cache; F32 activations.
 *
 *   x = embed(tokens)
 *   for each block:  x += Wo . attn(rope(Wq . rms(x)), rope(Wk . rms(x)), Wv . rms(x))
 *                    x += Wdown . (silu(Wgate . rms(x)) * (Wup . rms(x)))
 *   logits = Wout . rms(x)
 * q/k rows are in GGUF order, so RoPE rotates adjacent pairs (2i, 2i+1) by pos * freq_i. */
#include "forward.h"

#include "kernels/kernels.h"
#include "kernels/nm.h"
#include "kernels/r8.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct pare_ctx {
    const pare_model *m;
    int n_ctx;
    float **kcache, **vcache;   /* per layer: n_ctx x (n_head_kv * hd) */
    float *freq;                /* hd/2 rotary frequencies, scaling applied */
    /* scratch, sized for cap tokens */
    int cap;
    float *x, *xb, *q, *k, *v, *att, *g, *u;
    float *xs, *lg, *lr;        /* early exits: the adapted stream, an exit's logits, LoRA x A^T */
    int max_q, max_kv, max_ff, max_r;
    int n_cache;                /* layers with a KV cache: the blocks, then the adapted copies */
    fwd_hook hook;              /* calibration: sees the input of every linear layer */
    void *hook_user;
    int stop_after;             /* calibration: block_forward returns after this point's hook (-1: never) */
};

void ctx_set_hook(pare_ctx *c, fwd_hook hook, void *user) { c->hook = hook; c->hook_user = user; }
void ctx_set_stop(pare_ctx *c, int point) { c->stop_after = point; }
/* The hook sees the input of a linear layer; a pass that wants nothing past it stops there
 * (x is then left half-updated: only for passes that discard it). */
#define HOOK(point, buf, width) \
    do { \
        if (c->hook) c->hook(c->hook_user, l, (point), (buf), n, (width)); \
        if (c->stop_after == (point)) return PARE_OK; \
    } while (0)

static void ctx_free_scratch(pare_ctx *c) {
    free(c->x); free(c->xb); free(c->q); free(c->k); free(c->v); free(c->att); free(c->g); free(c->u);
    free(c->xs); free(c->lg); free(c->lr);
    c->x = c->xb = c->q = c->k = c->v = c->att = c->g = c->u = c->xs = c->lg = c->lr = NULL;
    c->cap = 0;
}

static pare_status ctx_reserve(pare_ctx *c, int n) {
    if (n <= c->cap) return PARE_OK;
    ctx_free_scratch(c);
    size_t N = (size_t)n, E = (size_t)c->m->n_embd;
    c->x = pare_calloc(N * E, sizeof(float));
    c->xb = pare_calloc(N * E, sizeof(float));
    c->q = pare_calloc(N * (size_t)(c->max_q ? c->max_q : 1), sizeof(float));
    c->k = pare_calloc(N * (size_t)(c->max_kv ? c->max_kv : 1), sizeof(float));
    c->v = pare_calloc(N * (size_t)(c->max_kv ? c->max_kv : 1), sizeof(float));
    c->att = pare_calloc(N * (size_t)(c->max_q ? c->max_q : 1), sizeof(float));
    c->g = pare_calloc(N * (size_t)(c->max_ff ? c->max_ff : 1), sizeof(float));
    c->u = pare_calloc(N * (size_t)(c->max_ff ? c->max_ff : 1), sizeof(float));
    if (c->m->n_exit) {
        c->xs = pare_calloc(N * E, sizeof(float));
        c->lg = pare_calloc(N * (size_t)c->m->n_vocab, sizeof(float));
        c->lr = pare_calloc(N * (size_t)(c->max_r ? c->max_r : 1), sizeof(float));
        if (!c->xs || !c->lg || !c->lr) {
            ctx_free_scratch(c);
            return pare_fail(PARE_ERR_NOMEM, "out of memory for activations of %d tokens", n);
        }
    }
    if (!c->x || !c->xb || !c->q || !c->k || !c->v || !c->att || !c->g || !c->u) {
        ctx_free_scratch(c);
        return pare_fail(PARE_ERR_NOMEM, "out of memory for activations of %d tokens", n);
    }
    c->cap = n;
    return PARE_OK;
}

void rope_freqs(const pare_model *m, float *freq) {
    int hd = m->head_dim;
    for (int i = 0; i < hd / 2; i++) {
        float f = 1.0f / powf(m->rope_base, (float)(2 * i) / (float)hd);
        if (m->rope_scaling == PARE_ROPE_SCALING_LLAMA3 && m->rope_factor > 0) {
            float lo = m->rope_low_freq, hi = m->rope_high_freq, oc = (float)m->rope_orig_ctx;
            float wavelen = 2.0f * (float)M_PI / f;
            float lo_wl = oc / lo, hi_wl = oc / hi;
            if (wavelen < hi_wl) {
                /* high frequency: unchanged */
            } else if (wavelen > lo_wl) {
                f = f / m->rope_factor;
            } else {
                float smooth = (oc / wavelen - lo) / (hi - lo);
                f = (1.0f - smooth) * f / m->rope_factor + smooth * f;
            }
        } else if (m->rope_scaling == PARE_ROPE_SCALING_LINEAR && m->rope_factor > 0) {
            f = f / m->rope_factor;
        }
        freq[i] = f;
    }
}

void rope_apply(float *v, int n_heads, int hd, int pos, const float *freq) {
    for (int i = 0; i < hd / 2; i++) {
        float th = (float)pos * freq[i], c = cosf(th), s = sinf(th);
        for (int h = 0; h < n_heads; h++) {
            float *p = v + (size_t)h * hd + 2 * i;
            float a = p[0], b = p[1];
            p[0] = a * c - b * s;
            p[1] = a * s + b * c;
        }
    }
}

void rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    double ss = 0; /* double: the sum of 4096 squares loses digits in float */
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) out[i] = x[i] * r * w[i];
}

void linear(const pare_tensor *W, const float *X, int n, float *Y) {
    if (W->nm) {
        if (n == 1) k_nm_matvec(W->nm, X, Y);
        else k_nm_matmul(W->nm, X, n, Y);
        return;
    }
    if (W->r8) {
        if (n == 1) k_r8_matvec(W->r8, X, Y);
        else k_r8_matmul(W->r8, X, n, Y);
        return;
    }
    if (n == 1) k_matvec(W->type, W->data, W->ne[1], W->ne[0], X, Y);
    else k_matmul(W->type, W->data, W->ne[1], W->ne[0], X, n, Y);
}

pare_status pare_ctx_new(const pare_model *m, int n_ctx, pare_ctx **out) {
    *out = NULL;
    if (n_ctx <= 0) return pare_fail(PARE_ERR_ARG, "context size must be positive (got %d)", n_ctx);
    k_init();
    pare_ctx *c = pare_calloc(1, sizeof *c);
    if (!c) return PARE_ERR_NOMEM;
    c->m = m; c->n_ctx = n_ctx; c->stop_after = -1;
    c->n_cache = m->n_layer + m->n_xlayer;
    c->kcache = pare_calloc((size_t)(c->n_cache ? c->n_cache : 1), sizeof(float *));
    c->vcache = pare_calloc((size_t)(c->n_cache ? c->n_cache : 1), sizeof(float *));
    c->freq = pare_calloc((size_t)m->head_dim / 2 + 1, sizeof(float));
    if (!c->kcache || !c->vcache || !c->freq) { pare_ctx_free(c); return PARE_ERR_NOMEM; }
    rope_freqs(m, c->freq);
    for (int l = 0; l < c->n_cache; l++) {
        const pare_layer *L = &m->layers[l];
        int q = L->n_head * m->head_dim, kv = L->n_head_kv * m->head_dim;
        for (int i = 0; i < PARE_N_LIN; i++)
            if (L->lora_a[i] && L->lora_a[i]->ne[1] > c->max_r) c->max_r = (int)L->lora_a[i]->ne[1];
        if (q > c->max_q) c->max_q = q;
        if (kv > c->max_kv) c->max_kv = kv;
        if (L->n_ff > c->max_ff) c->max_ff = L->n_ff;
        if (kv > 0) {
            c->kcache[l] = pare_calloc((size_t)n_ctx * kv, sizeof(float));
            c->vcache[l] = pare_calloc((size_t)n_ctx * kv, sizeof(float));
            if (!c->kcache[l] || !c->vcache[l]) { pare_ctx_free(c); return pare_fail(PARE_ERR_NOMEM, "out of memory for a KV cache of %d positions", n_ctx); }
        }
    }
    *out = c;
    return PARE_OK;
}

void pare_ctx_free(pare_ctx *c) {
    if (!c) return;
    for (int l = 0; c->kcache && l < c->n_cache; l++) { free(c->kcache[l]); free(c->vcache[l]); }
    free(c->kcache); free(c->vcache); free(c->freq);
    ctx_free_scratch(c);
    free(c);
}

void pare_ctx_reset(pare_ctx *c) { (void)c; /* positions are overwritten as they are filled */ }

/* Causal grouped-query attention for n new tokens at pos0..pos0+n-1 of one layer.
 * One OpenMP task per query head (and, for long prompts, per slice of query rows): scores
 * S = Q_h K_g^T through a single-threaded sgemm, a causal softmax per row (max, exp, sum in
 * a fixed order), then O_h = P V_g through sgemm. Each output element is computed by exactly
 * one task, so the result does not depend on the thread count. */
#define ATT_ROWS 64
static void attention(pare_ctx *c, int l, int n, int pos0) {
    const pare_model *m = c->m;
    const pare_layer *L = &m->layers[l];
    int hd = m->head_dim, H = L->n_head, KV = L->n_head_kv, grp = H / KV;
    int kvdim = KV * hd, qdim = H * hd;
    float scale = 1.0f / sqrtf((float)hd);
    const float *K = c->kcache[l], *Vc = c->vcache[l];
    int nslice = (n + ATT_ROWS - 1) / ATT_ROWS;
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    #pragma omp parallel
    {
        float *S = NULL;
        #pragma omp for collapse(2) schedule(dynamic, 1)
        for (int h = 0; h < H; h++) {
            for (int sl = 0; sl < nslice; sl++) {
                int t0 = sl * ATT_ROWS, nt = n - t0 < ATT_ROWS ? n - t0 : ATT_ROWS;
                int np = pos0 + t0 + nt; /* keys visible to the last row of the slice */
                if (!S) S = malloc((size_t)ATT_ROWS * (size_t)(pos0 + n) * sizeof(float));
                if (!S) continue; /* cannot happen in practice; leaves the rows at their old values */
                int kvh = h / grp;
                const float *q = c->q + (size_t)t0 * qdim + (size_t)h * hd;
                float *o = c->att + (size_t)t0 * qdim + (size_t)h * hd;
                if (nt == 1) {
                    for (int p = 0; p < np; p++) {
                        const float *kp = K + (size_t)p * kvdim + (size_t)kvh * hd;
                        float dot = 0;
                        #pragma omp simd reduction(+ : dot)
                        for (int d = 0; d < hd; d++) dot += q[d] * kp[d];
                        S[p] = dot * scale;
                    }
                } else {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nt, np, hd, scale, q, qdim,
                                K + (size_t)kvh * hd, kvdim, 0.0f, S, np);
                }
                for (int t = 0; t < nt; t++) {
                    float *srow = S + (size_t)t * np;
                    int vis = pos0 + t0 + t + 1;
                    float mx = srow[0];
                    for (int p = 1; p < vis; p++) mx = srow[p] > mx ? srow[p] : mx;
                    float den = 0;
                    for (int p = 0; p < vis; p++) { srow[p] = expf(srow[p] - mx); den += srow[p]; }
                    float inv = 1.0f / den;
                    for (int p = 0; p < vis; p++) srow[p] *= inv;
                    for (int p = vis; p < np; p++) srow[p] = 0.0f;
                }
                if (nt == 1) {
                    for (int d = 0; d < hd; d++) o[d] = 0;
                    for (int p = 0; p < np; p++) {
                        const float *vp = Vc + (size_t)p * kvdim + (size_t)kvh * hd;
                        float e = S[p];
                        #pragma omp simd
                        for (int d = 0; d < hd; d++) o[d] += e * vp[d];
                    }
                } else {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nt, hd, np, 1.0f, S, np,
                                Vc + (size_t)kvh * hd, kvdim, 0.0f, o, qdim);
                }
            }
        }
        free(S);
    }
    openblas_set_num_threads(blas_threads);
}

/* Y (n x out) += scale (X A^T) B^T: the LoRA adapter of linear layer i of L, when it has one */
static void lora_add(pare_ctx *c, const pare_layer *L, int i, const float *X, int n, float *Y) {
    const pare_tensor *A = L->lora_a[i], *B = L->lora_b[i];
    if (!A) return;
    int in = (int)A->ne[0], r = (int)A->ne[1], out = (int)B->ne[1];
    /* rank-r products are small: OpenBLAS's threads would cost more than they save */
    int bt = openblas_get_num_threads();
    if (bt != 1) openblas_set_num_threads(1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, in, 1.0f, X, in, A->data, in, 0.0f, c->lr, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, r, L->lora_scale, c->lr, r, B->data, r, 1.0f, Y, out);
    if (bt != 1) openblas_set_num_threads(bt);
}

/* x += y (+ bias, an optional F32 [E] tensor), n rows of E */
static void add_residual(float *x, const float *y, const pare_tensor *bias, int n, int E) {
    if (!bias) {
        for (size_t i = 0; i < (size_t)n * E; i++) x[i] += y[i];
        return;
    }
    const float *b = bias->data;
    for (int t = 0; t < n; t++)
        for (int e = 0; e < E; e++) x[(size_t)t * E + e] += y[(size_t)t * E + e] + b[e];
}

pare_status block_forward(pare_ctx *c, int l, float *x, int n, int pos0) {
    const pare_model *m = c->m;
    const pare_layer *L = &m->layers[l];
    int E = m->n_embd, hd = m->head_dim;
    pare_status st = ctx_reserve(c, n);
    if (st) return st;
    if (L->n_head > 0) {
        int qdim = L->n_head * hd, kvdim = L->n_head_kv * hd;
        for (int t = 0; t < n; t++) rmsnorm(c->xb + (size_t)t * E, x + (size_t)t * E, L->attn_norm->data, E, m->norm_eps);
        HOOK(FWD_ATTN_IN, c->xb, E);
        linear(L->wq, c->xb, n, c->q);
        lora_add(c, L, PARE_LIN_Q, c->xb, n, c->q);
        linear(L->wk, c->xb, n, c->k);
        lora_add(c, L, PARE_LIN_K, c->xb, n, c->k);
        linear(L->wv, c->xb, n, c->v);
        lora_add(c, L, PARE_LIN_V, c->xb, n, c->v);
        for (int t = 0; t < n; t++) {
            rope_apply(c->q + (size_t)t * qdim, L->n_head, hd, pos0 + t, c->freq);
            rope_apply(c->k + (size_t)t * kvdim, L->n_head_kv, hd, pos0 + t, c->freq);
        }
        memcpy(c->kcache[l] + (size_t)pos0 * kvdim, c->k, (size_t)n * kvdim * sizeof(float));
        memcpy(c->vcache[l] + (size_t)pos0 * kvdim, c->v, (size_t)n * kvdim * sizeof(float));
        attention(c, l, n, pos0);
        HOOK(FWD_O_IN, c->att, qdim);
        linear(L->wo, c->att, n, c->xb);
        lora_add(c, L, PARE_LIN_O, c->att, n, c->xb);
        add_residual(x, c->xb, L->b_o, n, E);
    }
    if (L->n_ff > 0) {
        int F = L->n_ff;
        for (int t = 0; t < n; t++) rmsnorm(c->xb + (size_t)t * E, x + (size_t)t * E, L->ffn_norm->data, E, m->norm_eps);
        HOOK(FWD_FFN_IN, c->xb, E);
        linear(L->w_gate, c->xb, n, c->g);
        lora_add(c, L, PARE_LIN_GATE, c->xb, n, c->g);
        linear(L->w_up, c->xb, n, c->u);
        lora_add(c, L, PARE_LIN_UP, c->xb, n, c->u);
        for (size_t i = 0; i < (size_t)n * F; i++) {
            float g = c->g[i];
            c->g[i] = g / (1.0f + expf(-g)) * c->u[i];
        }
        HOOK(FWD_DOWN_IN, c->g, F);
        linear(L->w_down, c->g, n, c->xb);
        lora_add(c, L, PARE_LIN_DOWN, c->g, n, c->xb);
        add_residual(x, c->xb, L->b_down, n, E);
    }
    return PARE_OK;
}

pare_status forward_embed(pare_ctx *c, const int32_t *tokens, int n, float *x) {
    const pare_model *m = c->m;
    for (int t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= m->n_vocab)
            return pare_fail(PARE_ERR_ARG, "token id %d out of range (vocabulary has %d)", tokens[t], m->n_vocab);
        pare_tensor_row_f32(m->tok_embd, tokens[t], x + (size_t)t * m->n_embd);
    }
    return PARE_OK;
}

pare_status forward_head(pare_ctx *c, float *x, int n, float *logits) {
    const pare_model *m = c->m;
    int E = m->n_embd;
    pare_status st = ctx_reserve(c, n);
    if (st) return st;
    for (int t = 0; t < n; t++) rmsnorm(c->xb + (size_t)t * E, x + (size_t)t * E, m->out_norm->data, E, m->norm_eps);
    linear(m->output, c->xb, n, logits);
    return PARE_OK;
}

/* Early exits (METHODS.md 9 D): the backbone runs the blocks without adapters; exit k's
 * stream starts from the backbone's state at the input of block first_k and runs the adapted
 * copies of blocks first_k..last_k, then the exit's norm and head. */
static void exit_head(pare_ctx *c, const pare_exit *e, const float *xs, int n, float *out) {
    const pare_model *m = c->m;
    int E = m->n_embd;
    for (int t = 0; t < n; t++) rmsnorm(c->xb + (size_t)t * E, xs + (size_t)t * E, e->norm->data, E, m->norm_eps);
    linear(e->head, c->xb, n, out);
}

static pare_status forward_exits(pare_ctx *c, float *x, int n, int pos0, float *logits) {
    const pare_model *m = c->m;
    int mode = m->exit_mode, lo, hi, E = m->n_embd, V = m->n_vocab;
    if (mode == PARE_EXIT_VOTE) { lo = 0; hi = m->n_exit - 1; }
    else if (mode >= 0 && mode < m->n_exit) lo = hi = mode;
    else if (mode == PARE_EXIT_LAST) lo = hi = m->n_exit - 1;
    else return pare_fail(PARE_ERR_ARG, "exit %d: the model has exits 0..%d", mode, m->n_exit - 1);
    int start = 0; /* the backbone runs up to the latest window start */
    for (int k = lo; k <= hi; k++) if (m->exits[k].first > start) start = m->exits[k].first;
    pare_status st = PARE_OK;
    int seen = 0;
    for (int l = 0; l <= start && !st; l++) {
        for (int k = lo; k <= hi && !st; k++) {
            const pare_exit *e = &m->exits[k];
            if (e->first != l) continue;
            memcpy(c->xs, x, (size_t)n * E * sizeof(float));
            for (int j = 0; j <= e->last - e->first && !st; j++) st = block_forward(c, e->adapted + j, c->xs, n, pos0);
            if (st || !logits) continue;
            if (lo == hi) { exit_head(c, e, c->xs, n, logits); continue; }
            /* voting: logits holds max_k p_k(v) until the end */
            exit_head(c, e, c->xs, n, c->lg);
            for (int t = 0; t < n; t++) {
                float *lg = c->lg + (size_t)t * V, *p = logits + (size_t)t * V, mx = lg[0];
                for (int v = 1; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
                double den = 0;
                for (int v = 0; v < V; v++) den += exp((double)(lg[v] - mx));
                float inv = (float)(1.0 / den);
                for (int v = 0; v < V; v++) {
                    float pv = expf(lg[v] - mx) * inv;
                    p[v] = !seen || pv > p[v] ? pv : p[v];
                }
            }
            seen = 1;
        }
        if (l < start && !st) st = block_forward(c, l, x, n, pos0);
    }
    if (st || !logits || lo == hi) return st;
    for (int t = 0; t < n; t++) { /* renormalise, return log p */
        float *p = logits + (size_t)t * V;
        double s = 0;
        for (int v = 0; v < V; v++) s += p[v];
        for (int v = 0; v < V; v++) p[v] = logf(fmaxf((float)(p[v] / s), FLT_MIN));
    }
    return PARE_OK;
}

pare_status pare_forward(pare_ctx *c, const int32_t *tokens, int n, int pos0, float *logits) {
    if (n <= 0 || pos0 < 0 || pos0 + n > c->n_ctx)
        return pare_fail(PARE_ERR_ARG, "positions %d..%d do not fit a context of %d", pos0, pos0 + n - 1, c->n_ctx);
    pare_status st = ctx_reserve(c, n);
    if (st) return st;
    float *x = c->x;
    if ((st = forward_embed(c, tokens, n, x))) return st;
    if (c->m->n_exit) return forward_exits(c, x, n, pos0, logits);
    for (int l = 0; l < c->m->n_layer; l++)
        if ((st = block_forward(c, l, x, n, pos0))) return st;
    if (logits) return forward_head(c, x, n, logits);
    return PARE_OK;
}

int ctx_n_ctx(const pare_ctx *c) { return c->n_ctx; }
