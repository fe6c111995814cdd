/* test_train.c - the training engine.
 *   - every backward operation against central finite differences, in double precision, on
 *     small random shapes (relative error <= 1e-6), then whole networks: one block, and
 *     two blocks with GQA, per-layer shapes, a tied head, LoRA adapters and frozen layers;
 *   - float == double, frozen-layer gradients == full gradients;
 *   - the training forward's logits == the inference forward's (src/model/forward.c);
 *   - AdamW, clipping, the schedule and accumulation against their formulas;
 *   - checkpoints: stop, save, load, go on == never stopping (bit for bit);
 *   - one step on brown-4m: the loss changes as an AdamW step computed here from
 *     finite-difference gradients of a double-precision LLaMA written here predicts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "eval/eval.h"
#include "model/forward.h"
#include "model/synth.h"
#include "train/train.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_data[512];

/* ---- helpers --------------------------------------------------------------------------- */
static uint64_t g_rng = 12345;
static double urand(void) { /* uniform [0, 1) */
    g_rng += 0x9e3779b97f4a7c15ull;
    uint64_t z = g_rng;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2 * log(urand() + 1e-300)) * cos(2 * M_PI * urand()); }
static double *drand_vec(size_t n, double scale) {
    double *v = malloc((n ? n : 1) * sizeof(double));
    for (size_t i = 0; i < n; i++) v[i] = scale * nrand();
    return v;
}
static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Largest |analytic - numeric| relative to the largest |numeric| entry. */
typedef struct { double max_abs, max_ref, worst_rel; } errstat;
static void err_add(errstat *e, double a, double f) {
    if (fabs(a - f) > e->max_abs) e->max_abs = fabs(a - f);
    if (fabs(f) > e->max_ref) e->max_ref = fabs(f);
}
static double err_rel(const errstat *e) { return e->max_ref > 0 ? e->max_abs / e->max_ref : e->max_abs; }

#define FD_H 1e-5
#define GRAD_TOL 1e-6

/* Check the gradient ga (n entries) of f against central differences, perturbing x. */
typedef double (*lossfn)(void *ctx);
static double fd_check(const char *what, double *x, const double *ga, size_t n, lossfn f, void *ctx) {
    errstat e = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + FD_H;
        double lp = f(ctx);
        x[i] = keep - FD_H;
        double lm = f(ctx);
        x[i] = keep;
        err_add(&e, ga[i], (lp - lm) / (2 * FD_H));
    }
    double rel = err_rel(&e);
    printf("  grad %-28s %6zu values  max|g| %.3e  rel err %.2e\n", what, n, e.max_ref, rel);
    assert_true(e.max_ref > 0);
    assert_true(rel <= GRAD_TOL);
    return rel;
}

/* ---- operations ----------------------------------------------------------------------- */
/* Each op test: loss = sum(C * output) for a random C, so d loss / d output = C. */
typedef struct {
    int N, in, out, r;
    double *X, *W, *A, *Bm, *C, *Y, *xa;
    tlin_d L;
} lin_ctx;
static double lin_loss(void *p) {
    lin_ctx *c = p;
    top_linear_fwd_d(&c->L, c->X, c->N, c->Y, c->xa);
    return dot(c->C, c->Y, (size_t)c->N * c->out);
}
static void grad_linear(int r) {
    lin_ctx c = {.N = 5, .in = 7, .out = 6, .r = r};
    c.X = drand_vec((size_t)c.N * c.in, 1); c.W = drand_vec((size_t)c.out * c.in, 0.5);
    c.A = drand_vec((size_t)(r ? r : 1) * c.in, 0.5); c.Bm = drand_vec((size_t)c.out * (r ? r : 1), 0.5);
    c.C = drand_vec((size_t)c.N * c.out, 1); c.Y = calloc((size_t)c.N * c.out, sizeof(double));
    c.xa = calloc((size_t)c.N * (r ? r : 1), sizeof(double));
    double *gw = calloc((size_t)c.out * c.in, sizeof(double)), *ga = calloc((size_t)(r ? r : 1) * c.in, sizeof(double));
    double *gb = calloc((size_t)c.out * (r ? r : 1), sizeof(double)), *dX = calloc((size_t)c.N * c.in, sizeof(double));
    double *tmp = calloc((size_t)c.N * (r ? r : 1), sizeof(double));
    c.L = (tlin_d){.in = c.in, .out = c.out, .w = c.W, .gw = gw, .r = r, .scale = r ? 2.0 / r : 0, .a = c.A, .b = c.Bm,
                   .ga = ga, .gb = gb};
    lin_loss(&c);
    top_linear_bwd_d(&c.L, c.X, c.xa, c.C, c.N, dX, 0, tmp);
    fd_check(r ? "linear+LoRA dX" : "linear dX", c.X, dX, (size_t)c.N * c.in, lin_loss, &c);
    fd_check(r ? "linear+LoRA dW" : "linear dW", c.W, gw, (size_t)c.out * c.in, lin_loss, &c);
    if (r) {
        fd_check("LoRA dA", c.A, ga, (size_t)r * c.in, lin_loss, &c);
        fd_check("LoRA dB", c.Bm, gb, (size_t)c.out * r, lin_loss, &c);
    }
    /* accumulate = 1 adds to dX */
    double *dX2 = malloc((size_t)c.N * c.in * sizeof(double));
    for (int i = 0; i < c.N * c.in; i++) dX2[i] = 1.0;
    top_linear_bwd_d(&c.L, c.X, c.xa, c.C, c.N, dX2, 1, tmp);
    for (int i = 0; i < c.N * c.in; i++) assert_true(fabs(dX2[i] - 1.0 - dX[i]) < 1e-12);
    free(dX2);
    free(c.X); free(c.W); free(c.A); free(c.Bm); free(c.C); free(c.Y); free(c.xa);
    free(gw); free(ga); free(gb); free(dX); free(tmp);
}
static void test_grad_linear(void **state) { (void)state; grad_linear(0); grad_linear(3); }

typedef struct { int N, E; double *x, *w, *y, *C; } rms_ctx;
static double rms_loss(void *p) {
    rms_ctx *c = p;
    top_rmsnorm_fwd_d(c->y, NULL, c->x, c->w, c->N, c->E, 1e-5);
    return dot(c->C, c->y, (size_t)c->N * c->E);
}
static void test_grad_rmsnorm(void **state) {
    (void)state;
    rms_ctx c = {.N = 4, .E = 9};
    c.x = drand_vec(36, 1); c.w = drand_vec(9, 1); c.C = drand_vec(36, 1); c.y = calloc(36, sizeof(double));
    double rstd[4], *dx = calloc(36, sizeof(double)), *gw = calloc(9, sizeof(double));
    top_rmsnorm_fwd_d(c.y, rstd, c.x, c.w, c.N, c.E, 1e-5);
    top_rmsnorm_bwd_d(dx, gw, c.C, c.x, c.w, rstd, c.N, c.E);
    fd_check("rmsnorm dx", c.x, dx, 36, rms_loss, &c);
    fd_check("rmsnorm dw", c.w, gw, 9, rms_loss, &c);
    free(c.x); free(c.w); free(c.C); free(c.y); free(dx); free(gw);
}

typedef struct { int N, T, nh, hd; double *x, *y, *C, *cs, *sn; } rope_ctx;
static double rope_loss(void *p) {
    rope_ctx *c = p;
    size_t n = (size_t)c->N * c->nh * c->hd;
    memcpy(c->y, c->x, n * sizeof(double));
    top_rope_d(c->y, c->N, c->T, c->nh, c->hd, c->cs, c->sn, 0);
    return dot(c->C, c->y, n);
}
static void test_grad_rope(void **state) {
    (void)state;
    rope_ctx c = {.N = 6, .T = 3, .nh = 2, .hd = 8};
    size_t n = 6 * 2 * 8;
    float freq[4];
    pare_model m = {0};
    m.head_dim = 8; m.rope_base = 10000;
    rope_freqs(&m, freq);
    freq[0] = 0.7f; /* larger angles than position 0..2 would give */
    c.cs = calloc(3 * 4, sizeof(double)); c.sn = calloc(3 * 4, sizeof(double));
    top_rope_tables_d(c.cs, c.sn, 3, 8, freq);
    c.x = drand_vec(n, 1); c.y = calloc(n, sizeof(double)); c.C = drand_vec(n, 1);
    double *dx = malloc(n * sizeof(double));
    memcpy(dx, c.C, n * sizeof(double));
    top_rope_d(dx, c.N, c.T, c.nh, c.hd, c.cs, c.sn, 1);
    fd_check("rope dx", c.x, dx, n, rope_loss, &c);
    /* rotating back undoes the rotation */
    memcpy(c.y, c.x, n * sizeof(double));
    top_rope_d(c.y, c.N, c.T, c.nh, c.hd, c.cs, c.sn, 0);
    top_rope_d(c.y, c.N, c.T, c.nh, c.hd, c.cs, c.sn, 1);
    for (size_t i = 0; i < n; i++) assert_true(fabs(c.y[i] - c.x[i]) < 1e-12);
    free(c.x); free(c.y); free(c.C); free(c.cs); free(c.sn); free(dx);
}

typedef struct { int B, T, H, KV, hd; double *Q, *K, *V, *O, *lse, *C, *ws; } attn_ctx;
static double attn_loss(void *p) {
    attn_ctx *c = p;
    top_attn_fwd_d(c->O, c->lse, c->Q, c->K, c->V, c->B, c->T, c->H, c->KV, c->hd, c->ws, 2);
    return dot(c->C, c->O, (size_t)c->B * c->T * c->H * c->hd);
}
static void grad_attention(int H, int KV) {
    attn_ctx c = {.B = 2, .T = 5, .H = H, .KV = KV, .hd = 4};
    size_t nq = (size_t)c.B * c.T * H * c.hd, nk = (size_t)c.B * c.T * KV * c.hd;
    c.Q = drand_vec(nq, 1); c.K = drand_vec(nk, 1); c.V = drand_vec(nk, 1); c.C = drand_vec(nq, 1);
    c.O = calloc(nq, sizeof(double)); c.lse = calloc((size_t)c.B * H * c.T, sizeof(double));
    c.ws = calloc(2 * TNET_ATTN_WS(5), sizeof(double));
    double *dQ = calloc(nq, sizeof(double)), *dK = calloc(nk, sizeof(double)), *dV = calloc(nk, sizeof(double));
    attn_loss(&c);
    top_attn_bwd_d(dQ, dK, dV, c.C, c.O, c.lse, c.Q, c.K, c.V, c.B, c.T, H, KV, c.hd, c.ws, 2);
    char nm[64];
    snprintf(nm, sizeof nm, "attention dQ (H%d KV%d)", H, KV); fd_check(nm, c.Q, dQ, nq, attn_loss, &c);
    snprintf(nm, sizeof nm, "attention dK (H%d KV%d)", H, KV); fd_check(nm, c.K, dK, nk, attn_loss, &c);
    snprintf(nm, sizeof nm, "attention dV (H%d KV%d)", H, KV); fd_check(nm, c.V, dV, nk, attn_loss, &c);
    /* causal: the output at position 0 of each sequence is V at position 0 */
    for (int b = 0; b < c.B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < c.hd; i++)
                assert_true(fabs(c.O[(size_t)b * c.T * H * c.hd + h * c.hd + i] -
                                 c.V[(size_t)b * c.T * KV * c.hd + (h / (H / KV)) * c.hd + i]) < 1e-12);
    free(c.Q); free(c.K); free(c.V); free(c.C); free(c.O); free(c.lse); free(c.ws); free(dQ); free(dK); free(dV);
}
static void test_grad_attention(void **state) { (void)state; grad_attention(4, 2); grad_attention(3, 3); grad_attention(4, 1); }

typedef struct { size_t n; double *g, *u, *h, *C; } swi_ctx;
static double swi_loss(void *p) {
    swi_ctx *c = p;
    top_swiglu_fwd_d(c->h, c->g, c->u, c->n);
    return dot(c->C, c->h, c->n);
}
static void test_grad_swiglu(void **state) {
    (void)state;
    swi_ctx c = {.n = 40};
    c.g = drand_vec(40, 2); c.u = drand_vec(40, 1); c.C = drand_vec(40, 1); c.h = calloc(40, sizeof(double));
    double *dg = calloc(40, sizeof(double)), *du = calloc(40, sizeof(double));
    top_swiglu_bwd_d(dg, du, c.C, c.g, c.u, 40);
    fd_check("swiglu dg", c.g, dg, 40, swi_loss, &c);
    fd_check("swiglu du", c.u, du, 40, swi_loss, &c);
    free(c.g); free(c.u); free(c.C); free(c.h); free(dg); free(du);
}

typedef struct { int N, E; int32_t *tok; double *emb, *x, *C; } emb_ctx;
static double emb_loss(void *p) {
    emb_ctx *c = p;
    top_embed_fwd_d(c->x, c->emb, c->tok, c->N, c->E);
    return dot(c->C, c->x, (size_t)c->N * c->E);
}
static void test_grad_embedding(void **state) {
    (void)state;
    int32_t tok[7] = {3, 1, 3, 0, 4, 1, 3}; /* repeats: their gradients add up */
    emb_ctx c = {.N = 7, .E = 5, .tok = tok};
    c.emb = drand_vec(6 * 5, 1); c.x = calloc(35, sizeof(double)); c.C = drand_vec(35, 1);
    double *g = calloc(30, sizeof(double));
    top_embed_bwd_d(g, c.C, tok, 7, 5);
    fd_check("embedding", c.emb, g, 30, emb_loss, &c);
    for (int e = 0; e < 5; e++) assert_true(g[5 * 5 + e] == 0); /* token 5 unused */
    free(c.emb); free(c.x); free(c.C); free(g);
}

typedef struct { int N, V; double *lg; int32_t *tgt; double *nll; } ce_ctx;
static double ce_loss(void *p) {
    ce_ctx *c = p;
    top_ce_d(NULL, c->lg, c->tgt, c->N, c->V, 1, c->nll);
    double s = 0;
    for (int i = 0; i < c->N; i++) s += c->nll[i];
    return s;
}
static void test_grad_cross_entropy(void **state) {
    (void)state;
    int32_t tgt[5] = {2, 0, -1, 6, 2}; /* -1: not scored */
    ce_ctx c = {.N = 5, .V = 7, .tgt = tgt};
    c.lg = drand_vec(35, 3); c.nll = calloc(5, sizeof(double));
    double *d = calloc(35, sizeof(double));
    top_ce_d(d, c.lg, tgt, 5, 7, 1, c.nll);
    fd_check("cross-entropy", c.lg, d, 35, ce_loss, &c);
    for (int j = 0; j < 7; j++) assert_true(d[2 * 7 + j] == 0);
    /* by hand: row 0 */
    double s = 0;
    for (int j = 0; j < 7; j++) s += exp(c.lg[j]);
    assert_true(fabs(c.nll[0] - (log(s) - c.lg[2])) < 1e-12);
    assert_true(c.nll[2] == 0);
    free(c.lg); free(c.nll); free(d);
}

/* ---- small models -------------------------------------------------------------------- */
/* A hand-built F32 model: per-layer heads / KV heads / FFN widths (0 = sub-block absent). */
static void add_t(pare_model *m, const char *name, int64_t in, int64_t out, double scale, double mean) {
    int64_t n = in * out;
    float *d = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) d[i] = (float)(mean + scale * nrand());
    int64_t ne[2] = {in, out};
    assert_non_null(model_add_tensor(m, name, PARE_TYPE_F32, out > 1 ? 2 : 1, ne, d, (size_t)n * 4, 1));
}
static pare_model *tiny_model(int E, int hd, int V, int nl, const int *H, const int *KV, const int *F, int tied) {
    pare_model *m = model_new(nl, 3 + 9 * nl);
    assert_non_null(m);
    m->path = strdup("tiny");
    m->n_embd = E; m->n_vocab = V; m->head_dim = hd; m->n_ctx_train = 64;
    m->norm_eps = 1e-5f; m->rope_base = 100.0f;
    char nm[64];
    add_t(m, "token_embd.weight", E, V, 0.5, 0);
    for (int l = 0; l < nl; l++) {
        pare_layer *L = &m->layers[l];
        L->n_head = H[l]; L->n_head_kv = KV[l]; L->n_ff = F[l];
        if (H[l]) {
            snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l); add_t(m, nm, E, 1, 0.2, 1);
            snprintf(nm, sizeof nm, "blk.%d.attn_q.weight", l); add_t(m, nm, E, H[l] * hd, 0.6, 0);
            snprintf(nm, sizeof nm, "blk.%d.attn_k.weight", l); add_t(m, nm, E, KV[l] * hd, 0.6, 0);
            snprintf(nm, sizeof nm, "blk.%d.attn_v.weight", l); add_t(m, nm, E, KV[l] * hd, 0.4, 0);
            snprintf(nm, sizeof nm, "blk.%d.attn_output.weight", l); add_t(m, nm, H[l] * hd, E, 0.4, 0);
        }
        if (F[l]) {
            snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l); add_t(m, nm, E, 1, 0.2, 1);
            snprintf(nm, sizeof nm, "blk.%d.ffn_gate.weight", l); add_t(m, nm, E, F[l], 0.5, 0);
            snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l); add_t(m, nm, E, F[l], 0.5, 0);
            snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l); add_t(m, nm, F[l], E, 0.4, 0);
        }
    }
    add_t(m, "output_norm.weight", E, 1, 0.2, 1);
    if (!tied) add_t(m, "output.weight", E, V, 0.5, 0);
    assert_int_equal(model_bind(m), PARE_OK);
    return m;
}

typedef struct { tnet_d *n; const int32_t *in, *tgt; int B, T; } net_ctx;
static double net_loss(void *p) {
    net_ctx *c = p;
    double nll;
    int64_t cnt;
    assert_int_equal(tnet_forward_d(c->n, c->in, c->tgt, c->B, c->T, NULL, &nll, &cnt), PARE_OK);
    return nll;
}

/* Every trained parameter of a double net against finite differences. */
static void net_fd(const char *label, pare_model *m, const char *lora, const char *frozen_prefix) {
    printf(" %s\n", label);
    tnet_d *n;
    assert_int_equal(tnet_new_d(m, &n), PARE_OK);
    if (lora) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", lora);
        for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) assert_int_equal(tnet_add_lora_d(n, t, 2, 3.0), PARE_OK);
    }
    assert_int_equal(tnet_own_params_d(n, m, 1, 7), PARE_OK);
    for (int i = 0; i < n->n_params; i++) {
        tparam_d *p = &n->params[i];
        if (p->lora == 2) /* B random, so A gets a gradient too */
            for (int64_t j = 0; j < p->rows * p->cols; j++) (*p->w)[j] = 0.3 * nrand();
        if (frozen_prefix && !strncmp(p->name, frozen_prefix, strlen(frozen_prefix))) *p->gw = NULL;
        if (p->lin && p->lin->r && !p->lora) *p->gw = NULL; /* a LoRA'd weight is frozen */
    }
    int B = 2, T = 5, N = B * T;
    assert_int_equal(tnet_reserve_d(n, B, T), PARE_OK);
    int32_t in[10], tgt[10];
    for (int i = 0; i < N; i++) { in[i] = (int32_t)(urand() * m->n_vocab); tgt[i] = (int32_t)(urand() * m->n_vocab); }
    tgt[3] = -1;
    double nll;
    int64_t cnt;
    assert_int_equal(tnet_grad_d(n, in, tgt, B, T, 1.0, &nll, &cnt), PARE_OK);
    assert_int_equal(cnt, N - 1);
    net_ctx c = {n, in, tgt, B, T};
    assert_true(fabs(net_loss(&c) - nll) < 1e-12);
    int checked = 0;
    for (int i = 0; i < n->n_params; i++) {
        tparam_d *p = &n->params[i];
        if (!*p->gw) {
            assert_true(frozen_prefix || (p->lin && p->lin->r));
            continue;
        }
        fd_check(p->name, *p->w, *p->gw, (size_t)(p->rows * p->cols), net_loss, &c);
        checked++;
    }
    assert_true(checked > 0);
    tnet_free_d(n);
}

static void test_grad_one_block(void **state) {
    (void)state;
    int H[1] = {2}, KV[1] = {1}, F[1] = {12};
    pare_model *m = tiny_model(8, 4, 11, 1, H, KV, F, 0);
    net_fd("one block (GQA 2/1, ffn 12), untied head", m, NULL, NULL);
    pare_model_free(m);
}

static void test_grad_network(void **state) {
    (void)state;
    int H[3] = {4, 0, 2}, KV[3] = {2, 0, 2}, F[3] = {10, 6, 0};
    pare_model *m = tiny_model(8, 4, 13, 3, H, KV, F, 1);
    net_fd("three blocks (GQA, no attention in block 1, no MLP in block 2), tied head", m, NULL, NULL);
    net_fd("  with LoRA on q, down and block 0 frozen", m, "blk.2.attn_q.weight,blk.1.ffn_down.weight", "blk.0.");
    pare_model_free(m);
    int H2[2] = {2, 2}, KV2[2] = {2, 1}, F2[2] = {6, 9};
    m = tiny_model(8, 4, 9, 2, H2, KV2, F2, 0);
    net_fd("two blocks, LoRA on the head and v, embedding and block 0 frozen", m, "output.weight,blk.1.attn_v.weight",
           "token_embd");
    pare_model_free(m);
}

/* ---- float == double; frozen layers change nothing above them ---------------------------- */
static void test_float_matches_double(void **state) {
    (void)state;
    int H[2] = {4, 4}, KV[2] = {2, 2}, F[2] = {24, 24};
    pare_model *m = tiny_model(16, 4, 37, 2, H, KV, F, 0);
    tnet_d *nd;
    tnet_f *nf;
    assert_int_equal(tnet_new_d(m, &nd), PARE_OK);
    assert_int_equal(tnet_new_f(m, &nf), PARE_OK);
    assert_int_equal(tnet_own_params_d(nd, m, 1, 1), PARE_OK);
    assert_int_equal(tnet_own_params_f(nf, m, 1, 1), PARE_OK);
    int B = 3, T = 7, N = B * T;
    assert_int_equal(tnet_reserve_d(nd, B, T), PARE_OK);
    assert_int_equal(tnet_reserve_f(nf, B, T), PARE_OK);
    int32_t in[21], tgt[21];
    for (int i = 0; i < N; i++) { in[i] = (int32_t)(urand() * 37); tgt[i] = (int32_t)(urand() * 37); }
    double ld, lf;
    int64_t c;
    assert_int_equal(tnet_grad_d(nd, in, tgt, B, T, 1.0, &ld, &c), PARE_OK);
    assert_int_equal(tnet_grad_f(nf, in, tgt, B, T, 1.0f, &lf, &c), PARE_OK);
    printf("  loss double %.12f float %.12f\n", ld, lf);
    assert_true(fabs(ld - lf) < 1e-5 * fabs(ld));
    for (int i = 0; i < nd->n_params; i++) {
        errstat e = {0, 0, 0};
        size_t cnt = (size_t)(nd->params[i].rows * nd->params[i].cols);
        for (size_t j = 0; j < cnt; j++) err_add(&e, (*nf->params[i].gw)[j], (*nd->params[i].gw)[j]);
        assert_true(err_rel(&e) < 1e-4);
    }
    tnet_free_d(nd); tnet_free_f(nf);
    pare_model_free(m);
}

static void test_frozen_below_not_kept(void **state) {
    (void)state;
    int H[4] = {2, 2, 2, 2}, KV[4] = {1, 1, 1, 1}, F[4] = {12, 12, 12, 12};
    pare_model *m = tiny_model(8, 4, 17, 4, H, KV, F, 0);
    tnet_f *full, *win;
    assert_int_equal(tnet_new_f(m, &full), PARE_OK);
    assert_int_equal(tnet_new_f(m, &win), PARE_OK);
    assert_int_equal(tnet_own_params_f(full, m, 1, 1), PARE_OK);
    assert_int_equal(tnet_own_params_f(win, m, 1, 1), PARE_OK);
    for (int i = 0; i < win->n_params; i++) /* train the MLP of block 2 and everything in block 3 */
        if (strncmp(win->params[i].name, "blk.3.", 6) && strncmp(win->params[i].name, "blk.2.ffn", 9)) *win->params[i].gw = NULL;
    int B = 2, T = 6;
    assert_int_equal(tnet_reserve_f(full, B, T), PARE_OK);
    assert_int_equal(tnet_reserve_f(win, B, T), PARE_OK);
    assert_int_equal(win->lowest, 2 * 2 + 1);
    for (int l = 0; l < 4; l++) {
        assert_int_equal(win->layers[l].saved, l >= 2);
        assert_true(full->layers[l].saved);
    }
    /* blocks 0 and 1 share one scratch set: nothing of theirs is kept */
    assert_true(win->layers[0].q == win->layers[1].q && win->layers[0].x_in == NULL);
    int32_t in[12], tgt[12];
    for (int i = 0; i < 12; i++) { in[i] = (int32_t)(urand() * 17); tgt[i] = (int32_t)(urand() * 17); }
    double l1, l2;
    int64_t c;
    assert_int_equal(tnet_grad_f(full, in, tgt, B, T, 0.1f, &l1, &c), PARE_OK);
    assert_int_equal(tnet_grad_f(win, in, tgt, B, T, 0.1f, &l2, &c), PARE_OK);
    assert_true(l1 == l2);
    for (int i = 0; i < win->n_params; i++) {
        if (!*win->params[i].gw) continue;
        size_t cnt = (size_t)(win->params[i].rows * win->params[i].cols);
        assert_memory_equal(*win->params[i].gw, *full->params[i].gw, cnt * sizeof(float));
    }
    tnet_free_f(full); tnet_free_f(win);
    pare_model_free(m);
}

/* ---- training forward == inference forward ------------------------------------------------ */
static void logits_vs_inference(pare_model *m, int B, int T, double tol) {
    tnet_f *n;
    assert_int_equal(tnet_new_f(m, &n), PARE_OK);
    assert_int_equal(tnet_own_params_f(n, m, 0, 0), PARE_OK);
    assert_int_equal(tnet_reserve_f(n, B, T), PARE_OK);
    int N = B * T, V = m->n_vocab;
    int32_t *in = malloc((size_t)N * sizeof(int32_t));
    for (int i = 0; i < N; i++) in[i] = (int32_t)(urand() * V);
    float *lt = malloc((size_t)N * V * sizeof(float)), *li = malloc((size_t)T * V * sizeof(float));
    double nll;
    int64_t cnt;
    assert_int_equal(tnet_forward_f(n, in, NULL, B, T, lt, &nll, &cnt), PARE_OK);
    pare_ctx *c;
    assert_int_equal(pare_ctx_new(m, T, &c), PARE_OK);
    double maxd = 0, maxl = 0;
    for (int b = 0; b < B; b++) {
        assert_int_equal(pare_forward(c, in + (size_t)b * T, T, 0, li), PARE_OK);
        for (size_t i = 0; i < (size_t)T * V; i++) {
            double d = fabs((double)lt[(size_t)b * T * V + i] - li[i]);
            if (d > maxd) maxd = d;
            if (fabs(li[i]) > maxl) maxl = fabs(li[i]);
        }
    }
    printf("  %s: %d x %d tokens, max |logit| %.3f, max |training - inference| %.3e\n", m->name ? m->name : m->path, B, T,
           maxl, maxd);
    assert_true(maxl > 0.1);
    assert_true(maxd <= tol * maxl);
    pare_ctx_free(c);
    free(in); free(lt); free(li);
    tnet_free_f(n);
}

static void test_logits_match_inference(void **state) {
    (void)state;
    const synth_shape *s = synth_find_shape("tiny");
    pare_model *m;
    assert_int_equal(synth_model(s, PARE_TYPE_F32, 3, &m), PARE_OK);
    logits_vs_inference(m, 2, 40, 1e-5);
    pare_model_free(m);
    int H[2] = {4, 0}, KV[2] = {1, 0}, F[2] = {0, 20};
    m = tiny_model(16, 4, 50, 2, H, KV, F, 1);
    logits_vs_inference(m, 3, 9, 1e-5);
    pare_model_free(m);
    assert_int_equal(synth_model(s, PARE_TYPE_Q8_0, 3, &m), PARE_OK); /* frozen quantized weights */
    logits_vs_inference(m, 1, 33, 1e-5);
    pare_model_free(m);
}

static void test_logits_match_inference_brown(void **state) {
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/bench/brown-4m/model.gguf", g_data);
    struct stat sb;
    if (stat(path, &sb)) { printf("  skipped: %s not found\n", path); skip(); }
    pare_model *m;
    assert_int_equal(pare_model_load(path, NULL, &m), PARE_OK);
    logits_vs_inference(m, 2, 256, 1e-5);
    pare_model_free(m);
}

/* ---- optimizer, schedule, accumulation --------------------------------------------------- */
static pare_model *synth_tiny(uint64_t seed) {
    pare_model *m;
    assert_int_equal(synth_model(synth_find_shape("tiny"), PARE_TYPE_F32, seed, &m), PARE_OK);
    return m;
}
static void random_rows(int32_t *rows, size_t n, int V) {
    for (size_t i = 0; i < n; i++) rows[i] = (int32_t)(urand() * V);
}

static void test_schedule(void **state) {
    (void)state;
    train_opts o;
    train_opts_default(&o);
    o.lr = 1e-3f; o.warmup = 10; o.total_steps = 110; o.min_lr_ratio = 0.1f;
    const double lr = o.lr, mr = o.min_lr_ratio, tol = 1e-12 * lr;
    assert_true(fabs(train_lr_at(&o, 0) - lr / 10) < tol);
    assert_true(fabs(train_lr_at(&o, 4) - lr / 2) < tol);
    assert_true(fabs(train_lr_at(&o, 9) - lr) < tol);
    assert_true(fabs(train_lr_at(&o, 10) - lr) < tol);
    assert_true(fabs(train_lr_at(&o, 60) - lr * (mr + (1 - mr) * 0.5)) < tol);
    assert_true(fabs(train_lr_at(&o, 110) - lr * mr) < tol);
    assert_true(fabs(train_lr_at(&o, 500) - lr * mr) < tol);
    for (int s = 11; s < 110; s++) assert_true(train_lr_at(&o, s) < train_lr_at(&o, s - 1));
}

/* AdamW with clipping, decay of matrices only, warm-up then cosine: the formulas, in double,
 * from the gradients the engine leaves in its buffers. */
static void test_adamw_formula(void **state) {
    (void)state;
    int H[2] = {2, 2}, KV[2] = {1, 1}, F[2] = {12, 12};
    pare_model *m = tiny_model(8, 4, 19, 2, H, KV, F, 0);
    train_opts o;
    train_opts_default(&o);
    o.lr = 0.02f; o.warmup = 2; o.total_steps = 5; o.weight_decay = 0.3f; o.grad_clip = 0.05f;
    o.beta1 = 0.8f; o.beta2 = 0.9f; o.eps = 1e-6f;
    int B = 2, T = 5;
    train_state *ts;
    assert_int_equal(train_new(m, &o, B, T, &ts), PARE_OK);
    tnet_f *n = train_net(ts);
    size_t total = 0;
    for (int i = 0; i < n->n_params; i++) total += (size_t)(n->params[i].rows * n->params[i].cols);
    double *mm = calloc(total, sizeof(double)), *vv = calloc(total, sizeof(double)), *w0 = malloc(total * sizeof(double));
    int32_t rows[2 * 6];
    int clipped = 0;
    for (int step = 0; step < 4; step++) {
        random_rows(rows, 12, 19);
        size_t k = 0;
        for (int i = 0; i < n->n_params; i++)
            for (int64_t j = 0; j < n->params[i].rows * n->params[i].cols; j++) w0[k++] = (*n->params[i].w)[j];
        train_info info;
        assert_int_equal(train_step(ts, rows, &info), PARE_OK);
        double ss = 0;
        for (int i = 0; i < n->n_params; i++)
            for (int64_t j = 0; j < n->params[i].rows * n->params[i].cols; j++) ss += pow((*n->params[i].gw)[j], 2);
        double norm = sqrt(ss), coef = norm > o.grad_clip ? o.grad_clip / (norm + 1e-6) : 1;
        clipped += coef < 1;
        assert_true(fabs(info.grad_norm - norm) <= 1e-9 * norm);
        const double lr0 = o.lr, mr = o.min_lr_ratio, b1 = o.beta1, b2 = o.beta2, eps = o.eps, wd = o.weight_decay;
        double lr = step < 2 ? lr0 * (step + 1) / 2 : lr0 * (mr + (1 - mr) * 0.5 * (1 + cos(M_PI * (step - 2) / 3.0)));
        assert_true(fabs(info.lr - lr) < 1e-12 * lr);
        double bc1 = 1 - pow(b1, step + 1), bc2 = 1 - pow(b2, step + 1);
        k = 0;
        double maxerr = 0;
        for (int i = 0; i < n->n_params; i++) {
            int decay = n->params[i].rows > 1;
            for (int64_t j = 0; j < n->params[i].rows * n->params[i].cols; j++, k++) {
                double g = (*n->params[i].gw)[j] * coef;
                mm[k] = b1 * mm[k] + (1 - b1) * g;
                vv[k] = b2 * vv[k] + (1 - b2) * g * g;
                double want = w0[k] * (decay ? 1 - lr * wd : 1) - lr * (mm[k] / bc1) / (sqrt(vv[k] / bc2) + eps);
                double err = fabs((*n->params[i].w)[j] - want);
                if (err > maxerr) maxerr = err;
            }
        }
        printf("  step %d: lr %.4g, grad norm %.4g (clip x%.3f), max |w - formula| %.2e\n", step, lr, norm, coef, maxerr);
        assert_true(maxerr < 1e-6);
    }
    assert_true(clipped > 0);
    free(mm); free(vv); free(w0);
    train_free(ts);
    pare_model_free(m);
}

static void test_accumulation(void **state) {
    (void)state;
    pare_model *m1 = synth_tiny(5), *m2 = synth_tiny(5);
    train_opts o;
    train_opts_default(&o);
    int T = 12;
    int32_t rows[4 * 13];
    random_rows(rows, sizeof rows / sizeof rows[0], 512);
    train_state *a, *b;
    o.accum = 1;
    assert_int_equal(train_new(m1, &o, 4, T, &a), PARE_OK);
    o.accum = 2;
    assert_int_equal(train_new(m2, &o, 2, T, &b), PARE_OK);
    train_info ia, ib;
    assert_int_equal(train_step(a, rows, &ia), PARE_OK);
    assert_int_equal(train_step(b, rows, &ib), PARE_OK);
    printf("  one batch of 4: loss %.9f |g| %.9f; two of 2: loss %.9f |g| %.9f\n", ia.loss, ia.grad_norm, ib.loss,
           ib.grad_norm);
    assert_true(fabs(ia.loss - ib.loss) < 1e-6 * ia.loss);
    assert_true(fabs(ia.grad_norm - ib.grad_norm) < 1e-5 * ia.grad_norm);
    tnet_f *na = train_net(a), *nb = train_net(b);
    for (int i = 0; i < na->n_params; i++) {
        errstat e = {0, 0, 0};
        for (int64_t j = 0; j < na->params[i].rows * na->params[i].cols; j++)
            err_add(&e, (*nb->params[i].gw)[j], (*na->params[i].gw)[j]);
        assert_true(err_rel(&e) < 1e-4);
    }
    train_free(a); train_free(b);
    pare_model_free(m1); pare_model_free(m2);
}

/* ---- checkpoints: stop + resume == never stopping --------------------------------------- */
static void tmp_path(char *buf, size_t n, const char *name) { snprintf(buf, n, "/tmp/pare_test_train_%d_%s", (int)getpid(), name); }

static void run_steps(train_state *ts, train_data *d, int B, int T, int accum, int steps, double *losses) {
    int32_t *rows = malloc((size_t)accum * B * (T + 1) * sizeof(int32_t));
    for (int s = 0; s < steps; s++) {
        for (int a = 0; a < accum; a++) assert_int_equal(train_data_batch(d, B, T, rows + (size_t)a * B * (T + 1)), PARE_OK);
        train_info info;
        assert_int_equal(train_step(ts, rows, &info), PARE_OK);
        losses[s] = info.loss;
    }
    free(rows);
}

static void resume_case(const train_opts *o, const char *label) {
    int B = 2, T = 16, steps = 6, stop = 3;
    train_data d0 = {0};
    d0.n = 3000;
    d0.ids = malloc(d0.n * sizeof(int32_t));
    int32_t period[23]; /* a text that repeats: the loss goes down */
    random_rows(period, 23, 512);
    for (size_t i = 0; i < d0.n; i++) d0.ids[i] = period[i % 23];
    uint64_t rng0 = 99;
    /* straight through */
    pare_model *ma = synth_tiny(11);
    train_state *a;
    assert_int_equal(train_new(ma, o, B, T, &a), PARE_OK);
    d0.rng = rng0;
    double la[6], lb[6];
    run_steps(a, &d0, B, T, o->accum, steps, la);
    assert_int_equal(train_merge_lora(a), PARE_OK);
    /* stop after 3, save, start over from a fresh model, load, go on */
    pare_model *mb = synth_tiny(11);
    train_state *b;
    assert_int_equal(train_new(mb, o, B, T, &b), PARE_OK);
    d0.rng = rng0;
    run_steps(b, &d0, B, T, o->accum, stop, lb);
    char path[256];
    tmp_path(path, sizeof path, "ckpt");
    assert_int_equal(train_save(b, path, &d0.rng, sizeof d0.rng), PARE_OK);
    train_free(b);
    pare_model_free(mb);
    d0.rng = 0;
    mb = synth_tiny(11);
    train_opts o2 = *o;
    o2.lr *= 3; o2.total_steps = 7; /* replaced by the checkpoint's */
    assert_int_equal(train_new(mb, &o2, B, T, &b), PARE_OK);
    assert_int_equal(train_load(b, path, &d0.rng, sizeof d0.rng), PARE_OK);
    assert_int_equal(train_step_count(b), stop);
    assert_true(train_get_opts(b)->lr == o->lr);
    run_steps(b, &d0, B, T, o->accum, steps - stop, lb + stop);
    assert_int_equal(train_merge_lora(b), PARE_OK);
    printf("  %s: losses", label);
    for (int s = 0; s < steps; s++) printf(" %.6f", la[s]);
    printf("\n");
    for (int s = 0; s < steps; s++) assert_true(la[s] == lb[s]);
    assert_true(la[steps - 1] < la[0]);
    assert_int_equal(ma->n_tensors, mb->n_tensors);
    for (int i = 0; i < ma->n_tensors; i++) {
        assert_int_equal(ma->tensors[i].type, mb->tensors[i].type);
        assert_int_equal(ma->tensors[i].nbytes, mb->tensors[i].nbytes);
        assert_memory_equal(ma->tensors[i].data, mb->tensors[i].data, ma->tensors[i].nbytes);
    }
    /* a checkpoint of another set of trained tensors is refused */
    train_opts o3 = *o;
    o3.freeze = "output.weight";
    pare_model *mc = synth_tiny(11);
    train_state *c;
    assert_int_equal(train_new(mc, &o3, B, T, &c), PARE_OK);
    assert_int_not_equal(train_load(c, path, &d0.rng, sizeof d0.rng), PARE_OK);
    printf("  refused: %s\n", pare_last_error());
    train_free(c);
    pare_model_free(mc);
    /* a truncated one too */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fclose(f);
    assert_int_equal(truncate(path, len - 9), 0);
    assert_int_not_equal(train_load(b, path, &d0.rng, sizeof d0.rng), PARE_OK);
    printf("  refused: %s\n", pare_last_error());
    remove(path);
    train_free(a); train_free(b);
    pare_model_free(ma); pare_model_free(mb);
    free(d0.ids);
}

static void test_resume_equals_no_stop(void **state) {
    (void)state;
    train_opts o;
    train_opts_default(&o);
    o.lr = 3e-3f; o.warmup = 2; o.total_steps = 6; o.accum = 2;
    resume_case(&o, "all parameters, accumulation 2");
    train_opts_default(&o);
    o.lr = 1e-2f; o.warmup = 1; o.total_steps = 6;
    o.layer_first = 2; o.layer_last = 3; o.freeze = "blk.3.ffn_norm.weight"; o.lora = "blk.*.attn_q.weight,blk.*.ffn_down.weight";
    o.lora_rank = 4; o.lora_alpha = 8; o.seed = 3;
    resume_case(&o, "blocks 2-3, LoRA on q and down");
}

/* ---- a model from a shape file ---------------------------------------------------------- */
static void test_model_from_config(void **state) {
    (void)state;
    pare_model *s = synth_tiny(1);
    pare_vocab *v = s->vocab;
    s->vocab = NULL;
    pare_model_free(s);
    char path[256];
    tmp_path(path, sizeof path, "shape.json");
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"dim\": 64, \"n_layers\": 3, \"n_heads\": 4, \"n_kv_heads\": 2, \"ffn\": 96, \"ctx\": 128, \"tied\": true,"
               " \"rope_theta\": 500.0, \"name\": \"test-shape\"}\n");
    fclose(f);
    pare_model *m;
    assert_int_equal(train_model_from_config(path, v, 1, &m), PARE_OK);
    assert_true(m->tied);
    assert_int_equal(m->n_embd, 64);
    assert_int_equal(m->n_layer, 3);
    assert_int_equal(m->layers[2].n_head_kv, 2);
    assert_int_equal(m->n_vocab, 512);
    assert_int_equal(m->n_ctx_train, 128);
    assert_true(m->rope_base == 500.0f);
    assert_string_equal(m->name, "test-shape");
    assert_null(model_find_tensor(m, "output.weight"));
    assert_true(m->vocab == v);
    /* trains */
    train_opts o;
    train_opts_default(&o);
    o.lr = 1e-2f;
    train_state *ts;
    assert_int_equal(train_new(m, &o, 2, 8, &ts), PARE_OK);
    int32_t rows[18];
    for (int i = 0; i < 18; i++) rows[i] = (int32_t)(i % 5 + 10);
    train_info i0, i1;
    for (int k = 0; k < 5; k++) assert_int_equal(train_step(ts, rows, k ? &i1 : &i0), PARE_OK);
    assert_true(i1.loss < i0.loss);
    train_free(ts);
    pare_vocab *v2 = m->vocab;
    m->vocab = NULL;
    pare_model_free(m);
    /* errors */
    f = fopen(path, "w");
    fprintf(f, "{\"dim\": 64, \"n_layers\": 3, \"n_heads\": 5, \"ffn\": 96}\n");
    fclose(f);
    assert_int_equal(train_model_from_config(path, v2, 1, &m), PARE_ERR_FORMAT);
    f = fopen(path, "w");
    fprintf(f, "{\"dim\": 64, \"n_layers\": 3, \"n_heads\": 4, \"ffn\": 96, \"vocab\": 1000}\n");
    fclose(f);
    assert_int_equal(train_model_from_config(path, v2, 1, &m), PARE_ERR_ARG);
    printf("  refused: %s\n", pare_last_error());
    f = fopen(path, "w");
    fprintf(f, "{\"dim\": 64, \"n_layers\": 3}");
    fclose(f);
    assert_int_equal(train_model_from_config(path, v2, 1, &m), PARE_ERR_FORMAT);
    remove(path);
    vocab_free(v2);
}

/* ---- brown-4m: one AdamW step against a double-precision LLaMA written here ---------------- */
/* The reference: plain double arithmetic and dgemm, written from the architecture's
 * definition (RMSNorm, RoPE on pairs (2i, 2i+1) at pos * base^(-2i/hd), causal GQA softmax
 * attention, SwiGLU, cross-entropy), sharing no code with pare. */
typedef struct {
    int H, KV, F;
    double *an, *wq, *wk, *wv, *wo, *fn, *wg, *wu, *wd;
} ref_layer;
typedef struct {
    int E, V, hd, nl;
    double eps, base;
    double *emb, *on, *out;
    ref_layer *ly;
} ref_model;

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
static void ref_from(ref_model *R, const pare_model *m) {
    R->E = m->n_embd; R->V = m->n_vocab; R->hd = m->head_dim; R->nl = m->n_layer;
    R->eps = m->norm_eps; R->base = m->rope_base;
    R->emb = to_f64(m->tok_embd); R->on = to_f64(m->out_norm); R->out = to_f64(m->output);
    R->ly = calloc((size_t)m->n_layer, sizeof *R->ly);
    for (int l = 0; l < m->n_layer; l++) {
        const pare_layer *L = &m->layers[l];
        ref_layer *y = &R->ly[l];
        y->H = L->n_head; y->KV = L->n_head_kv; y->F = L->n_ff;
        y->an = to_f64(L->attn_norm); y->wq = to_f64(L->wq); y->wk = to_f64(L->wk); y->wv = to_f64(L->wv); y->wo = to_f64(L->wo);
        y->fn = to_f64(L->ffn_norm); y->wg = to_f64(L->w_gate); y->wu = to_f64(L->w_up); y->wd = to_f64(L->w_down);
    }
}
static void ref_free(ref_model *R) {
    for (int l = 0; l < R->nl; l++) {
        ref_layer *y = &R->ly[l];
        free(y->an); free(y->wq); free(y->wk); free(y->wv); free(y->wo); free(y->fn); free(y->wg); free(y->wu); free(y->wd);
    }
    free(R->ly); free(R->emb); free(R->on); free(R->out);
}
/* Y [N x out] = X [N x in] W^T */
static void ref_lin(const double *X, const double *W, int N, int in, int out, double *Y) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, in, 1, X, in, W, in, 0, Y, out);
}
static void ref_rms(const double *x, const double *w, int N, int E, double eps, double *y) {
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int i = 0; i < E; i++) ss += x[n * E + i] * x[n * E + i];
        double r = 1 / sqrt(ss / E + eps);
        for (int i = 0; i < E; i++) y[n * E + i] = x[n * E + i] * r * w[i];
    }
}
static void ref_attn(const ref_model *R, int l, double *x, int B, int T) {
    const ref_layer *y = &R->ly[l];
    int E = R->E, hd = R->hd, N = B * T, qd = y->H * hd, kd = y->KV * hd;
    double *xn = malloc((size_t)N * E * sizeof(double)), *q = malloc((size_t)N * qd * sizeof(double));
    double *k = malloc((size_t)N * kd * sizeof(double)), *v = malloc((size_t)N * kd * sizeof(double));
    double *a = calloc((size_t)N * qd, sizeof(double)), *o = malloc((size_t)N * E * sizeof(double)), *s = malloc((size_t)T * sizeof(double));
    ref_rms(x, y->an, N, E, R->eps, xn);
    ref_lin(xn, y->wq, N, E, qd, q); ref_lin(xn, y->wk, N, E, kd, k); ref_lin(xn, y->wv, N, E, kd, v);
    for (int n = 0; n < N; n++) {
        int pos = n % T;
        for (int i = 0; i < hd / 2; i++) {
            double th = pos * pow(R->base, -2.0 * i / hd), c = cos(th), sn = sin(th);
            for (int h = 0; h < y->H + y->KV; h++) {
                double *p = h < y->H ? q + (size_t)n * qd + h * hd + 2 * i : k + (size_t)n * kd + (h - y->H) * hd + 2 * i;
                double p0 = p[0], p1 = p[1];
                p[0] = p0 * c - p1 * sn; p[1] = p0 * sn + p1 * c;
            }
        }
    }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < y->H; h++) {
                int kh = h / (y->H / y->KV);
                const double *qq = q + (size_t)(b * T + t) * qd + h * hd;
                double mx = -1e300, den = 0;
                for (int p = 0; p <= t; p++) {
                    double d = 0;
                    for (int i = 0; i < hd; i++) d += qq[i] * k[(size_t)(b * T + p) * kd + kh * hd + i];
                    s[p] = d / sqrt((double)hd);
                    if (s[p] > mx) mx = s[p];
                }
                for (int p = 0; p <= t; p++) { s[p] = exp(s[p] - mx); den += s[p]; }
                double *aa = a + (size_t)(b * T + t) * qd + h * hd;
                for (int p = 0; p <= t; p++)
                    for (int i = 0; i < hd; i++) aa[i] += s[p] / den * v[(size_t)(b * T + p) * kd + kh * hd + i];
            }
    ref_lin(a, y->wo, N, qd, E, o);
    for (size_t i = 0; i < (size_t)N * E; i++) x[i] += o[i];
    free(xn); free(q); free(k); free(v); free(a); free(o); free(s);
}
static void ref_ffn(const ref_model *R, int l, double *x, int N) {
    const ref_layer *y = &R->ly[l];
    int E = R->E, F = y->F;
    double *xn = malloc((size_t)N * E * sizeof(double)), *g = malloc((size_t)N * F * sizeof(double));
    double *u = malloc((size_t)N * F * sizeof(double)), *o = malloc((size_t)N * E * sizeof(double));
    ref_rms(x, y->fn, N, E, R->eps, xn);
    ref_lin(xn, y->wg, N, E, F, g); ref_lin(xn, y->wu, N, E, F, u);
    for (size_t i = 0; i < (size_t)N * F; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
    ref_lin(g, y->wd, N, F, E, o);
    for (size_t i = 0; i < (size_t)N * E; i++) x[i] += o[i];
    free(xn); free(g); free(u); free(o);
}
/* mean -log p(tgt) */
static double ref_head(const ref_model *R, const double *x, const int32_t *tgt, int N) {
    int E = R->E, V = R->V;
    double *xn = malloc((size_t)N * E * sizeof(double)), *lg = malloc((size_t)N * V * sizeof(double)), s = 0;
    ref_rms(x, R->on, N, E, R->eps, xn);
    ref_lin(xn, R->out, N, E, V, lg);
    for (int n = 0; n < N; n++) {
        double mx = -1e300, z = 0;
        for (int j = 0; j < V; j++) if (lg[(size_t)n * V + j] > mx) mx = lg[(size_t)n * V + j];
        for (int j = 0; j < V; j++) z += exp(lg[(size_t)n * V + j] - mx);
        s += mx + log(z) - lg[(size_t)n * V + tgt[n]];
    }
    free(xn); free(lg);
    return s / N;
}
static void ref_embed(const ref_model *R, const int32_t *in, int N, double *x) {
    for (int n = 0; n < N; n++) memcpy(x + (size_t)n * R->E, R->emb + (size_t)in[n] * R->E, (size_t)R->E * sizeof(double));
}
static double ref_loss(const ref_model *R, const int32_t *in, const int32_t *tgt, int B, int T) {
    int N = B * T;
    double *x = malloc((size_t)N * R->E * sizeof(double));
    ref_embed(R, in, N, x);
    for (int l = 0; l < R->nl; l++) { ref_attn(R, l, x, B, T); ref_ffn(R, l, x, N); }
    double L = ref_head(R, x, tgt, N);
    free(x);
    return L;
}

/* The loss as a function of the three trained vectors of the top block, from the cached
 * input of that block (blocks below are frozen). stage: 0 from the attention, 1 from the
 * MLP (xmid cached), 2 the head only (xtop cached). */
typedef struct {
    ref_model *R;
    const int32_t *tgt;
    int B, T, top;
    double *x_in, *x_mid, *x_top, *work;
} top_ctx;
static double top_loss(top_ctx *c, int stage) {
    int N = c->B * c->T;
    size_t NE = (size_t)N * c->R->E * sizeof(double);
    if (stage == 0) { memcpy(c->work, c->x_in, NE); ref_attn(c->R, c->top, c->work, c->B, c->T); }
    if (stage == 1) memcpy(c->work, c->x_mid, NE);
    if (stage <= 1) ref_ffn(c->R, c->top, c->work, N);
    if (stage == 2) memcpy(c->work, c->x_top, NE);
    return ref_head(c->R, c->work, c->tgt, N);
}
static void top_cache(top_ctx *c) {
    int N = c->B * c->T;
    size_t NE = (size_t)N * c->R->E * sizeof(double);
    memcpy(c->x_mid, c->x_in, NE);
    ref_attn(c->R, c->top, c->x_mid, c->B, c->T);
    memcpy(c->x_top, c->x_mid, NE);
    ref_ffn(c->R, c->top, c->x_top, N);
}
/* central-difference gradient of the three vectors (E each), in this order: attn_norm,
 * ffn_norm, output_norm */
static void top_fd(top_ctx *c, double *g) {
    int E = c->R->E;
    double *vec[3] = {c->R->ly[c->top].an, c->R->ly[c->top].fn, c->R->on}, h = 1e-4;
    top_cache(c);
    for (int v = 0; v < 3; v++)
        for (int i = 0; i < E; i++) {
            double keep = vec[v][i];
            vec[v][i] = keep + h;
            double lp = top_loss(c, v);
            vec[v][i] = keep - h;
            double lm = top_loss(c, v);
            vec[v][i] = keep;
            g[v * E + i] = (lp - lm) / (2 * h);
        }
}

static void test_brown_adamw_step(void **state) {
    (void)state;
    char path[600], text[600];
    snprintf(path, sizeof path, "%s/bench/brown-4m/model.gguf", g_data);
    snprintf(text, sizeof text, "%s/bench/brown-train.txt", g_data);
    struct stat sb;
    if (stat(path, &sb) || stat(text, &sb)) { printf("  skipped: %s or %s not found\n", path, text); skip(); }
    pare_model *m;
    assert_int_equal(pare_model_load(path, NULL, &m), PARE_OK);
    assert_non_null(m->vocab);
    /* the batch: 2 windows of 33 tokens from the first 20 kB of the training text */
    char *buf;
    size_t len;
    assert_int_equal(pare_read_file(text, &buf, &len), PARE_OK);
    int32_t *ids;
    size_t n_ids;
    assert_int_equal(pare_tokenize(m->vocab, buf, len < 20000 ? len : 20000, 1, &ids, &n_ids), PARE_OK);
    free(buf);
    const int B = 2, T = 32, N = B * T, E = m->n_embd, top = m->n_layer - 1, S = 3 * E;
    assert_true(n_ids > 2000);
    int32_t rows[2 * 33], in[64], tgt[64];
    memcpy(rows, ids + 100, 33 * sizeof(int32_t));
    memcpy(rows + 33, ids + 1500, 33 * sizeof(int32_t));
    free(ids);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) { in[b * T + t] = rows[b * 33 + t]; tgt[b * T + t] = rows[b * 33 + t + 1]; }

    ref_model R;
    ref_from(&R, m);
    /* all parameters: pare's float gradient along a random direction vs a central
     * difference of the reference loss along it */
    {
        tnet_f *n;
        assert_int_equal(tnet_new_f(m, &n), PARE_OK);
        assert_int_equal(tnet_own_params_f(n, m, 1, 0), PARE_OK);
        assert_int_equal(tnet_reserve_f(n, B, T), PARE_OK);
        double nll;
        int64_t cnt;
        assert_int_equal(tnet_grad_f(n, in, tgt, B, T, 1.0f / N, &nll, &cnt), PARE_OK);
        double L0 = ref_loss(&R, in, tgt, B, T);
        printf("  loss: pare (float) %.8f, reference (double) %.8f\n", nll / N, L0);
        assert_true(fabs(nll / N - L0) < 2e-5 * L0);
        /* direction: N(0, 1) per entry, scaled by the tensor's rms; applied to R's copies */
        double gd = 0, h = 1e-4;
        double **dirs = calloc((size_t)n->n_params, sizeof *dirs), **refw = calloc((size_t)n->n_params, sizeof *refw);
        for (int i = 0; i < n->n_params; i++) {
            tparam_f *p = &n->params[i];
            const char *nm = p->name;
            int l = -1;
            char rest[64] = "";
            if (sscanf(nm, "blk.%d.%63s", &l, rest) == 2) {
                ref_layer *y = &R.ly[l];
                refw[i] = !strcmp(rest, "attn_norm.weight") ? y->an : !strcmp(rest, "attn_q.weight") ? y->wq
                        : !strcmp(rest, "attn_k.weight") ? y->wk : !strcmp(rest, "attn_v.weight") ? y->wv
                        : !strcmp(rest, "attn_output.weight") ? y->wo : !strcmp(rest, "ffn_norm.weight") ? y->fn
                        : !strcmp(rest, "ffn_gate.weight") ? y->wg : !strcmp(rest, "ffn_up.weight") ? y->wu : y->wd;
            } else refw[i] = !strcmp(nm, "token_embd.weight") ? R.emb : !strcmp(nm, "output_norm.weight") ? R.on : R.out;
            size_t cnt2 = (size_t)(p->rows * p->cols);
            double ss = 0;
            for (size_t j = 0; j < cnt2; j++) ss += refw[i][j] * refw[i][j];
            double rms = sqrt(ss / cnt2);
            dirs[i] = malloc(cnt2 * sizeof(double));
            for (size_t j = 0; j < cnt2; j++) { dirs[i][j] = rms * nrand(); gd += (*p->gw)[j] * dirs[i][j]; }
        }
        double Lpm[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            for (int i = 0; i < n->n_params; i++)
                for (int64_t j = 0; j < n->params[i].rows * n->params[i].cols; j++) refw[i][j] += (sgn ? -2 : 1) * h * dirs[i][j];
            Lpm[sgn] = ref_loss(&R, in, tgt, B, T);
        }
        for (int i = 0; i < n->n_params; i++)
            for (int64_t j = 0; j < n->params[i].rows * n->params[i].cols; j++) refw[i][j] += h * dirs[i][j];
        double fd = (Lpm[0] - Lpm[1]) / (2 * h);
        printf("  all %lld parameters, random direction: pare g.d %.8f, reference central difference %.8f (rel %.2e)\n",
               (long long)model_n_params(m), gd, fd, fabs(gd - fd) / fabs(fd));
        assert_true(fabs(gd - fd) <= 1e-3 * fabs(fd));
        for (int i = 0; i < n->n_params; i++) free(dirs[i]);
        free(dirs); free(refw);
        tnet_free_f(n);
    }

    /* trained: the three norm vectors of the top block's path; everything else frozen */
    top_ctx c = {.R = &R, .tgt = tgt, .B = B, .T = T, .top = top};
    size_t NE = (size_t)N * E;
    c.x_in = malloc(NE * sizeof(double)); c.x_mid = malloc(NE * sizeof(double));
    c.x_top = malloc(NE * sizeof(double)); c.work = malloc(NE * sizeof(double));
    ref_embed(&R, in, N, c.x_in);
    for (int l = 0; l < top; l++) { ref_attn(&R, l, c.x_in, B, T); ref_ffn(&R, l, c.x_in, N); }
    double *vec[3] = {R.ly[top].an, R.ly[top].fn, R.on};
    double *w0 = malloc(S * sizeof(double)), *g = malloc(S * sizeof(double)), *mm = calloc(S, sizeof(double));
    double *vv = calloc(S, sizeof(double)), *wexp[3];
    for (int v = 0; v < 3; v++) memcpy(w0 + v * E, vec[v], E * sizeof(double));
    /* settings: lr with a cosine over 1000 steps (no warm-up), decay on these 1-D tensors,
     * clipping at half the first gradient's norm */
    const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    top_cache(&c);
    double L0 = top_loss(&c, 2);
    top_fd(&c, g);
    double g1norm = sqrt(dot(g, g, S)), clip = 0.5 * g1norm;
    double Lexp[3] = {L0, 0, 0}, lin1 = 0;
    for (int step = 0; step < 2; step++) {
        if (step) top_fd(&c, g);
        double norm = sqrt(dot(g, g, S)), coef = norm > clip ? clip / (norm + 1e-6) : 1;
        double lrt = lr * (0.1 + 0.9 * 0.5 * (1 + cos(M_PI * step / 1000.0))); /* min ratio 0.1 */
        double bc1 = 1 - pow(b1, step + 1), bc2 = 1 - pow(b2, step + 1);
        for (int v = 0; v < 3; v++)
            for (int i = 0; i < E; i++) {
                int k = v * E + i;
                double gk = g[k] * coef, before = vec[v][i];
                mm[k] = b1 * mm[k] + (1 - b1) * gk;
                vv[k] = b2 * vv[k] + (1 - b2) * gk * gk;
                vec[v][i] = before * (1 - lrt * wd) - lrt * (mm[k] / bc1) / (sqrt(vv[k] / bc2) + eps);
                if (step == 0) lin1 += g[k] * (vec[v][i] - before);
            }
        top_cache(&c);
        Lexp[step + 1] = top_loss(&c, 2);
    }
    for (int v = 0; v < 3; v++) { wexp[v] = malloc(E * sizeof(double)); memcpy(wexp[v], vec[v], E * sizeof(double)); }
    printf("  expected (finite differences + AdamW here): loss %.8f -> %.8f -> %.8f (first order: %.8f)\n", Lexp[0],
           Lexp[1], Lexp[2], L0 + lin1);
    assert_true(Lexp[2] < Lexp[1] && Lexp[1] < Lexp[0]);

    /* pare: the same two steps */
    train_opts o;
    train_opts_default(&o);
    o.lr = (float)lr; o.min_lr_ratio = 0.1f; o.warmup = 0; o.total_steps = 1000; o.beta1 = (float)b1;
    o.beta2 = (float)b2; o.eps = (float)eps; o.weight_decay = (float)wd; o.decay_1d = 1; o.grad_clip = (float)clip;
    char fr[512];
    snprintf(fr, sizeof fr, "token_embd.weight,output.weight,blk.[0-%d].*,blk.%d.attn_[qkvo]*,blk.%d.ffn_[gud]*", top - 1, top,
             top);
    o.freeze = fr;
    train_state *ts;
    assert_int_equal(train_new(m, &o, B, T, &ts), PARE_OK);
    assert_int_equal(train_n_trained(ts), S);
    assert_int_equal(train_net(ts)->lowest, 2 * top);
    train_info info[2];
    double Lpare[3];
    for (int step = 0; step < 2; step++) {
        assert_int_equal(train_step(ts, rows, &info[step]), PARE_OK);
        /* pare's new weights, evaluated by the reference */
        const pare_tensor *tv[3] = {m->layers[top].attn_norm, m->layers[top].ffn_norm, m->out_norm};
        for (int v = 0; v < 3; v++)
            for (int i = 0; i < E; i++) vec[v][i] = ((const float *)tv[v]->data)[i];
        top_cache(&c);
        Lpare[step + 1] = top_loss(&c, 2);
    }
    Lpare[0] = info[0].loss;
    double maxdw = 0;
    for (int v = 0; v < 3; v++)
        for (int i = 0; i < E; i++) if (fabs(vec[v][i] - wexp[v][i]) > maxdw) maxdw = fabs(vec[v][i] - wexp[v][i]);
    printf("  pare:                                      loss %.8f -> %.8f -> %.8f (grad norm %.6f, reference %.6f)\n",
           Lpare[0], Lpare[1], Lpare[2], info[0].grad_norm, g1norm);
    printf("  loss change: expected %.8f, pare %.8f (rel %.2e); max |w pare - w expected| %.2e (lr %.0e)\n",
           Lexp[2] - Lexp[0], Lpare[2] - L0, fabs((Lpare[2] - L0) - (Lexp[2] - Lexp[0])) / fabs(Lexp[2] - Lexp[0]), maxdw, lr);
    assert_true(fabs(Lpare[0] - L0) < 2e-5 * L0);
    assert_true(fabs(info[0].grad_norm - g1norm) < 1e-4 * g1norm);
    assert_true(fabs((Lpare[1] - L0) - (Lexp[1] - L0)) <= 1e-3 * fabs(Lexp[1] - L0));
    assert_true(fabs((Lpare[2] - L0) - (Lexp[2] - L0)) <= 1e-3 * fabs(Lexp[2] - L0));
    assert_true(maxdw < 1e-3 * lr);
    /* pare's own forward after the steps agrees with the reference */
    double lnow;
    assert_int_equal(train_eval(ts, rows, B, &lnow), PARE_OK);
    assert_true(fabs(lnow - Lpare[2]) < 2e-5 * lnow);
    train_free(ts);
    for (int v = 0; v < 3; v++) free(wexp[v]);
    free(w0); free(g); free(mm); free(vv);
    free(c.x_in); free(c.x_mid); free(c.x_top); free(c.work);
    ref_free(&R);
    pare_model_free(m);
}

int main(void) {
    const char *d = getenv("PARE_DATA");
    snprintf(g_data, sizeof g_data, "%s", d ? d : "../shared/data");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_linear),
        cmocka_unit_test(test_grad_rmsnorm),
        cmocka_unit_test(test_grad_rope),
        cmocka_unit_test(test_grad_attention),
        cmocka_unit_test(test_grad_swiglu),
        cmocka_unit_test(test_grad_embedding),
        cmocka_unit_test(test_grad_cross_entropy),
        cmocka_unit_test(test_grad_one_block),
        cmocka_unit_test(test_grad_network),
        cmocka_unit_test(test_float_matches_double),
        cmocka_unit_test(test_frozen_below_not_kept),
        cmocka_unit_test(test_logits_match_inference),
        cmocka_unit_test(test_logits_match_inference_brown),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_adamw_formula),
        cmocka_unit_test(test_accumulation),
        cmocka_unit_test(test_resume_equals_no_stop),
        cmocka_unit_test(test_model_from_config),
        cmocka_unit_test(test_brown_adamw_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
