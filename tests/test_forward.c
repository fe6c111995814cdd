/* test_forward.c - the forward pass against independent computations: RoPE by hand,
 * a naive double-precision LLaMA written here with Hugging Face's rotate-half convention
 * (so the GGUF q/k row order is checked too), prefill == token-by-token decode, and
 * per-layer head counts / FFN widths / removed blocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "model/forward.h"
#include "kernels/kernels.h"
#include "model/synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_rope_by_hand(void **state) {
    (void)state;
    /* head_dim 4: pairs (0,1) and (2,3), freq_i = base^(-2i/4) with base 100: 1 and 0.1 */
    float freq[2] = {1.0f, 0.1f};
    float v[4] = {1, 0, 0, 2};
    rope_apply(v, 1, 4, 3, freq);
    assert_float_equal(v[0], cosf(3), 1e-6);
    assert_float_equal(v[1], sinf(3), 1e-6);
    assert_float_equal(v[2], -2 * sinf(0.3f), 1e-6);
    assert_float_equal(v[3], 2 * cosf(0.3f), 1e-6);
    pare_model m = {0};
    m.head_dim = 4; m.rope_base = 100;
    float f[2];
    rope_freqs(&m, f);
    assert_float_equal(f[0], 1.0f, 1e-7);
    assert_float_equal(f[1], 0.1f, 1e-7);
}

static void test_rope_llama3_scaling(void **state) {
    (void)state;
    /* Llama-3.1 parameters: factor 8, low 1, high 4, original context 8192 */
    pare_model m = {0};
    m.head_dim = 128; m.rope_base = 500000; m.rope_scaling = PARE_ROPE_SCALING_LLAMA3;
    m.rope_factor = 8; m.rope_low_freq = 1; m.rope_high_freq = 4; m.rope_orig_ctx = 8192;
    float f[64];
    rope_freqs(&m, f);
    for (int i = 0; i < 64; i++) {
        double base = 1.0 / pow(500000.0, 2.0 * i / 128.0), wl = 2 * M_PI / base, want;
        if (wl < 8192.0 / 4) want = base;
        else if (wl > 8192.0 / 1) want = base / 8;
        else { double sm = (8192.0 / wl - 1) / (4 - 1); want = (1 - sm) * base / 8 + sm * base; }
        assert_true(fabs(f[i] - want) <= 1e-5 * want);
    }
    assert_true(f[0] == 1.0f);         /* highest frequency untouched */
    assert_true(f[63] < 1.0 / pow(500000.0, 126.0 / 128.0) / 7.9); /* lowest divided by 8 */
}

static void test_rmsnorm_by_hand(void **state) {
    (void)state;
    float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 2, 0.5f}, y[4];
    rmsnorm(y, x, w, 4, 0);
    float r = 1 / sqrtf(30.0f / 4);
    assert_float_equal(y[0], 1 * r, 1e-6);
    assert_float_equal(y[2], 6 * r, 1e-6);
    assert_float_equal(y[3], 2 * r, 1e-6);
}

/* ---- naive reference -------------------------------------------------------------------- */
static double *to_f64(const pare_tensor *t) {
    int64_t n = pare_tensor_nelem(t), rows = n / t->ne[0];
    double *d = malloc((size_t)n * sizeof(double));
    float *row = malloc((size_t)t->ne[0] * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        pare_tensor_row_f32(t, r, row);
        for (int64_t i = 0; i < t->ne[0]; i++) d[r * t->ne[0] + i] = row[i];
    }
    free(row);
    return d;
}
/* y[o] = sum_i W[o][i] x[i] */
static void mv(const double *W, const double *x, int in, int out, double *y) {
    for (int o = 0; o < out; o++) { double s = 0; for (int i = 0; i < in; i++) s += W[(size_t)o * in + i] * x[i]; y[o] = s; }
}
static void rms(const double *x, const double *w, int n, double eps, double *y) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    double r = 1 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * r * w[i];
}
/* HF rotate_half on rows in HF order: pairs (i, i + hd/2) */
static void rope_hf(double *v, int nh, int hd, int pos, double base) {
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < hd / 2; i++) {
            double th = pos * pow(base, -2.0 * i / hd), c = cos(th), s = sin(th);
            double *a = v + h * hd + i, *b = v + h * hd + i + hd / 2, x = *a, y = *b;
            *a = x * c - y * s; *b = y * c + x * s;
        }
}

/* logits (n x V) of the model on tokens, computed naively in double */
static void naive_forward(const pare_model *m, const int32_t *tok, int n, double *logits) {
    int E = m->n_embd, V = m->n_vocab, hd = m->head_dim;
    double *x = calloc((size_t)n * E, sizeof(double)), *xb = calloc((size_t)E, sizeof(double));
    double *emb = to_f64(m->tok_embd);
    for (int t = 0; t < n; t++) memcpy(x + (size_t)t * E, emb + (size_t)tok[t] * E, (size_t)E * sizeof(double));
    free(emb);
    for (int l = 0; l < m->n_layer; l++) {
        const pare_layer *L = &m->layers[l];
        int H = L->n_head, KV = L->n_head_kv, F = L->n_ff;
        if (H > 0) {
            /* q/k weights back to HF order, so the rotary convention differs from pare's */
            double *wq = to_f64(L->wq), *wk = to_f64(L->wk), *wv = to_f64(L->wv), *wo = to_f64(L->wo), *an = to_f64(L->attn_norm);
            double *wq_hf = malloc((size_t)H * hd * E * sizeof(double)), *wk_hf = malloc((size_t)KV * hd * E * sizeof(double));
            qk_permute_from_gguf(wq_hf, wq, H, hd, (size_t)E * sizeof(double));
            qk_permute_from_gguf(wk_hf, wk, KV, hd, (size_t)E * sizeof(double));
            double *Q = calloc((size_t)n * H * hd, sizeof(double)), *K = calloc((size_t)n * KV * hd, sizeof(double));
            double *Vv = calloc((size_t)n * KV * hd, sizeof(double)), *A = calloc((size_t)H * hd, sizeof(double));
            double *o = calloc((size_t)E, sizeof(double)), *sc = calloc((size_t)n, sizeof(double));
            for (int t = 0; t < n; t++) {
                rms(x + (size_t)t * E, an, E, m->norm_eps, xb);
                mv(wq_hf, xb, E, H * hd, Q + (size_t)t * H * hd);
                mv(wk_hf, xb, E, KV * hd, K + (size_t)t * KV * hd);
                mv(wv, xb, E, KV * hd, Vv + (size_t)t * KV * hd);
                rope_hf(Q + (size_t)t * H * hd, H, hd, t, m->rope_base);
                rope_hf(K + (size_t)t * KV * hd, KV, hd, t, m->rope_base);
            }
            double *newx = calloc((size_t)n * E, sizeof(double));
            for (int t = 0; t < n; t++) {
                for (int h = 0; h < H; h++) {
                    int kh = h / (H / KV);
                    double mx = -1e300, den = 0;
                    for (int p = 0; p <= t; p++) {
                        double d = 0;
                        for (int i = 0; i < hd; i++) d += Q[(size_t)t * H * hd + h * hd + i] * K[(size_t)p * KV * hd + kh * hd + i];
                        sc[p] = d / sqrt(hd);
                        if (sc[p] > mx) mx = sc[p];
                    }
                    for (int p = 0; p <= t; p++) { sc[p] = exp(sc[p] - mx); den += sc[p]; }
                    for (int i = 0; i < hd; i++) {
                        double s = 0;
                        for (int p = 0; p <= t; p++) s += sc[p] * Vv[(size_t)p * KV * hd + kh * hd + i];
                        A[h * hd + i] = s / den;
                    }
                }
                mv(wo, A, H * hd, E, o);
                for (int i = 0; i < E; i++) newx[(size_t)t * E + i] = x[(size_t)t * E + i] + o[i];
            }
            memcpy(x, newx, (size_t)n * E * sizeof(double));
            free(newx); free(wq); free(wk); free(wv); free(wo); free(an); free(wq_hf); free(wk_hf);
            free(Q); free(K); free(Vv); free(A); free(o); free(sc);
        }
        if (F > 0) {
            double *wg = to_f64(L->w_gate), *wu = to_f64(L->w_up), *wd = to_f64(L->w_down), *fn = to_f64(L->ffn_norm);
            double *g = calloc((size_t)F, sizeof(double)), *u = calloc((size_t)F, sizeof(double)), *o = calloc((size_t)E, sizeof(double));
            for (int t = 0; t < n; t++) {
                rms(x + (size_t)t * E, fn, E, m->norm_eps, xb);
                mv(wg, xb, E, F, g); mv(wu, xb, E, F, u);
                for (int i = 0; i < F; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
                mv(wd, g, F, E, o);
                for (int i = 0; i < E; i++) x[(size_t)t * E + i] += o[i];
            }
            free(wg); free(wu); free(wd); free(fn); free(g); free(u); free(o);
        }
    }
    double *on = to_f64(m->out_norm), *wout = to_f64(m->output);
    for (int t = 0; t < n; t++) {
        rms(x + (size_t)t * E, on, E, m->norm_eps, xb);
        mv(wout, xb, E, V, logits + (size_t)t * V);
    }
    free(on); free(wout); free(x); free(xb);
}

/* A small GQA model with weights large enough that attention is far from uniform. */
static pare_model *small_model(int type) {
    synth_shape s = {"test", 32, 3, 4, 2, 64, 300, 64}; /* widths are whole Q8_0 blocks */
    pare_model *m;
    assert_int_equal(synth_model(&s, PARE_TYPE_F32, 7, &m), PARE_OK);
    for (int i = 0; i < m->n_tensors; i++) {
        pare_tensor *t = &m->tensors[i];
        float *d = t->data;
        int64_t n = pare_tensor_nelem(t);
        float sc = t->n_dims == 2 ? 12.0f : 1.0f;
        for (int64_t k = 0; k < n; k++) d[k] = t->n_dims == 2 ? d[k] * sc : 1.0f + 0.3f * sinf((float)k);
    }
    if (type != PARE_TYPE_F32) { /* requantize matrices */
        for (int i = 0; i < m->n_tensors; i++) {
            pare_tensor *t = &m->tensors[i];
            if (t->n_dims != 2) continue;
            size_t rb = pare_row_bytes(type, t->ne[0]);
            void *q = malloc(rb * (size_t)t->ne[1]);
            for (int64_t r = 0; r < t->ne[1]; r++) k_quant_row(type, (float *)t->data + r * t->ne[0], (char *)q + r * rb, t->ne[0]);
            free(t->data);
            t->data = q; t->nbytes = rb * (size_t)t->ne[1]; t->type = type;
        }
    }
    return m;
}

static void compare_with_naive(pare_model *m, double tol) {
    enum { N = 12 };
    int32_t tok[N] = {1, 5, 77, 290, 3, 3, 150, 42, 8, 299, 0, 100};
    int V = m->n_vocab;
    float *lg = malloc((size_t)N * V * sizeof(float));
    double *ref = malloc((size_t)N * V * sizeof(double));
    pare_ctx *c;
    assert_int_equal(pare_ctx_new(m, 32, &c), PARE_OK);
    assert_int_equal(pare_forward(c, tok, N, 0, lg), PARE_OK);
    naive_forward(m, tok, N, ref);
    double maxd = 0, maxv = 0;
    for (int i = 0; i < N * V; i++) {
        double d = fabs(lg[i] - ref[i]);
        if (d > maxd) maxd = d;
        if (fabs(ref[i]) > maxv) maxv = fabs(ref[i]);
    }
    print_message("max |logit - naive| = %.3g (max |logit| %.3g)\n", maxd, maxv);
    assert_true(maxv > 0.5);          /* the test model is not trivially flat */
    assert_true(maxd <= tol * maxv);
    pare_ctx_free(c);
    free(lg); free(ref);
}

static void test_forward_vs_naive(void **state) {
    (void)state;
    pare_model *m = small_model(PARE_TYPE_F32);
    compare_with_naive(m, 1e-5);
    pare_model_free(m);
}

static void test_forward_vs_naive_q8(void **state) {
    (void)state;
    /* the naive reference dequantizes the same weights, so only kernel error remains */
    pare_model *m = small_model(PARE_TYPE_Q8_0);
    compare_with_naive(m, 2e-2);
    pare_model_free(m);
}

static void test_per_layer_shapes_vs_naive(void **state) {
    (void)state;
    /* layer 0: 2 of 4 heads (1 KV group), layer 1: no attention and FFN 16, layer 2: no FFN */
    pare_model *m = small_model(PARE_TYPE_F32);
    int hd = m->head_dim;
    pare_layer *L0 = &m->layers[0], *L1 = &m->layers[1], *L2 = &m->layers[2];
    L0->n_head = 2; L0->n_head_kv = 1;
    L0->wq->ne[1] = 2 * hd; L0->wk->ne[1] = hd; L0->wv->ne[1] = hd;
    /* wo: keep the first 2*hd input columns of each row */
    float *wo = L0->wo->data;
    int64_t in_old = L0->wo->ne[0];
    for (int64_t r = 0; r < L0->wo->ne[1]; r++) memmove(wo + r * 2 * hd, wo + r * in_old, (size_t)2 * hd * sizeof(float));
    L0->wo->ne[0] = 2 * hd;
    L1->n_head = 0; L1->n_head_kv = 0;
    L1->n_ff = 16; L1->w_gate->ne[1] = 16; L1->w_up->ne[1] = 16;
    float *wd = L1->w_down->data;
    int64_t F_old = L1->w_down->ne[0];
    for (int64_t r = 0; r < L1->w_down->ne[1]; r++) memmove(wd + r * 16, wd + r * F_old, 16 * sizeof(float));
    L1->w_down->ne[0] = 16;
    L2->n_ff = 0;
    compare_with_naive(m, 1e-5);
    pare_model_free(m);
}

static void test_prefill_equals_decode(void **state) {
    (void)state;
    pare_model *m = small_model(PARE_TYPE_F32);
    enum { N = 10 };
    int32_t tok[N] = {1, 9, 8, 7, 100, 200, 250, 3, 4, 5};
    int V = m->n_vocab;
    float *a = malloc((size_t)N * V * sizeof(float)), *b = malloc((size_t)V * sizeof(float));
    pare_ctx *c1, *c2;
    assert_int_equal(pare_ctx_new(m, N, &c1), PARE_OK);
    assert_int_equal(pare_ctx_new(m, N, &c2), PARE_OK);
    assert_int_equal(pare_forward(c1, tok, N, 0, a), PARE_OK);
    double maxd = 0;
    for (int t = 0; t < N; t++) {
        assert_int_equal(pare_forward(c2, tok + t, 1, t, b), PARE_OK);
        for (int i = 0; i < V; i++) { double d = fabs(a[(size_t)t * V + i] - b[i]); if (d > maxd) maxd = d; }
    }
    print_message("prefill vs decode max diff %.3g\n", maxd);
    assert_true(maxd < 1e-4);
    /* a position past the context is an error, not a crash */
    assert_int_not_equal(pare_forward(c2, tok, 1, N, b), PARE_OK);
    int32_t bad = 5000;
    assert_int_not_equal(pare_forward(c2, &bad, 1, 0, b), PARE_OK);
    pare_ctx_free(c1); pare_ctx_free(c2);
    free(a); free(b);
    pare_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope_by_hand),
        cmocka_unit_test(test_rope_llama3_scaling),
        cmocka_unit_test(test_rmsnorm_by_hand),
        cmocka_unit_test(test_forward_vs_naive),
        cmocka_unit_test(test_forward_vs_naive_q8),
        cmocka_unit_test(test_per_layer_shapes_vs_naive),
        cmocka_unit_test(test_prefill_equals_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
