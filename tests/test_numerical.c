/* test_numerical.c - Numerical Pruning and structured pruning (METHODS.md 8 e):
 * the Newton step reaches a zero gradient from any start; compensation satisfies its normal
 * equations, zeroes the removed columns, never increases the calibration error, reaches
 * Remark 4's optimum and equals the paper's closed form (fp64, 1e-8); removing units
 * physically equals masking them (also after a GGUF round trip, GQA groups included); 0%
 * is the identity; a unit whose output projection is zero scores lowest of its kind; the paper's unit
 * count floor(rho (L H + L d_ff)); the parameter target is met within one unit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kernels/kernels.h"
#include "model/synth.h"
#include "prune/linalg.h"
#include "prune/prune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- small helpers ------------------------------------------------------------------- */
static uint64_t g_rng = 0x1234567ull;
static double urand(void) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}
static double nrand(void) {
    double u = urand() + 1e-300, v = urand();
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* G = X^T X for a random T x D X (columns with different scales, some correlated) */
static void random_gram(int T, int D, double *X, double *G) {
    for (int t = 0; t < T; t++)
        for (int j = 0; j < D; j++) {
            double v = nrand() * (1 + j % 3);
            if (j > 0 && j % 4 == 0) v += 0.7 * X[(size_t)t * D + j - 1];
            X[(size_t)t * D + j] = v;
        }
    for (int a = 0; a < D; a++)
        for (int b = 0; b < D; b++) {
            double s = 0;
            for (int t = 0; t < T; t++) s += X[(size_t)t * D + a] * X[(size_t)t * D + b];
            G[(size_t)a * D + b] = s;
        }
}

/* ||X P^T - X Q^T||_F^2 = tr((P-Q) G (P-Q)^T) */
static double recon_err(const double *P, const double *Q, int E, int D, const double *G) {
    double s = 0;
    for (int e = 0; e < E; e++)
        for (int a = 0; a < D; a++)
            for (int b = 0; b < D; b++)
                s += (P[e * D + a] - Q[e * D + a]) * G[(size_t)a * D + b] * (P[e * D + b] - Q[e * D + b]);
    return s;
}

/* inverse of an SPD matrix (n x n, in place) */
static void spd_inverse(double *A, int n) {
    int info;
    dpotrf_("L", &n, A, &n, &info);
    assert_int_equal(info, 0);
    dpotri_("L", &n, A, &n, &info);
    assert_int_equal(info, 0);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) A[(size_t)i * n + j] = A[(size_t)j * n + i];
}

/* ---- Newton ------------------------------------------------------------------------- */
static void test_newton_zero_gradient(void **state) {
    (void)state;
    enum { T = 60, D = 24, E = 10 };
    double *X = malloc(sizeof(double) * T * D), *G = malloc(sizeof(double) * D * D), *A = malloc(sizeof(double) * D * D);
    float P[E * D];
    random_gram(T, D, X, G);
    for (int i = 0; i < E * D; i++) P[i] = (float)nrand();
    assert_int_equal(np_build_A(P, E, D, G, 1, A), PARE_OK);
    double md = 0;
    for (int j = 0; j < D; j++) md += A[j * D + j] / D;
    double eps = 1e-6 * md, lambda = 1.0, r = 0.7 * D;
    double z1[D], z2[D], z3[D], z0[D], g[D];
    assert_int_equal(np_newton(A, D, lambda, r, eps, NULL, 1, z1), PARE_OK);
    for (int j = 0; j < D; j++) z0[j] = 4 * urand() - 2;
    assert_int_equal(np_newton(A, D, lambda, r, eps, z0, 1, z2), PARE_OK);
    assert_int_equal(np_newton(A, D, lambda, r, eps, z0, 50, z3), PARE_OK);
    /* the gradient at the result vanishes (relative to the gradient at z = 1) */
    double g1 = lambda * (D - r) * sqrt((double)D), gn = 0;
    np_gradient(A, D, lambda, r, eps, z1, g);
    for (int j = 0; j < D; j++) gn += g[j] * g[j];
    assert_true(sqrt(gn) <= 1e-10 * g1);
    for (int j = 0; j < D; j++) {
        assert_true(fabs(z1[j] - z2[j]) <= 1e-9 * (1 + fabs(z1[j])));
        assert_true(fabs(z1[j] - z3[j]) <= 1e-9 * (1 + fabs(z1[j])));
    }
    /* a minimum: perturbing any coordinate increases the objective */
    double f = np_objective(A, D, lambda, r, eps, z1);
    for (int j = 0; j < D; j++) {
        double zz[D];
        memcpy(zz, z1, sizeof zz);
        zz[j] += 1e-3;
        assert_true(np_objective(A, D, lambda, r, eps, zz) > f);
    }
    free(X); free(G); free(A);
}

static void test_zero_column_scores_lowest(void **state) {
    (void)state;
    enum { T = 50, D = 16, E = 8 };
    double *X = malloc(sizeof(double) * T * D), *G = malloc(sizeof(double) * D * D), z[D];
    float P[E * D];
    random_gram(T, D, X, G);
    for (int i = 0; i < E * D; i++) P[i] = (float)nrand();
    for (int e = 0; e < E; e++) P[e * D + 5] = 0;
    sprune_opts o;
    sprune_opts_default(&o);
    assert_int_equal(np_channel_scores(P, E, D, G, 0.3, &o, z), PARE_OK);
    for (int j = 0; j < D; j++) if (j != 5) assert_true(z[5] < z[j]);
    /* a dead input channel too */
    for (int e = 0; e < E; e++) P[e * D + 5] = 1;
    for (int a = 0; a < D; a++) { G[a * D + 9] = 0; G[9 * D + a] = 0; }
    assert_int_equal(np_channel_scores(P, E, D, G, 0.3, &o, z), PARE_OK);
    for (int j = 0; j < D; j++) if (j != 9) assert_true(z[9] < z[j]);
    free(X); free(G);
}

/* ---- compensation -------------------------------------------------------------------- */
static void test_compensation_normal_equations(void **state) {
    (void)state;
    enum { T = 80, D = 20, E = 7 };
    double *X = malloc(sizeof(double) * T * D), *G = malloc(sizeof(double) * D * D);
    double P0[E * D], P1[E * D], Pm[E * D];
    uint8_t keep[D];
    random_gram(T, D, X, G);
    for (int i = 0; i < E * D; i++) P0[i] = nrand();
    for (int j = 0; j < D; j++) keep[j] = !(j % 3 == 1 || j == 4);
    for (int gi = 0; gi < 2; gi++) {
        double gamma = gi ? 0.05 : 0.0;
        memcpy(P1, P0, sizeof P1);
        assert_int_equal(np_compensate(P1, E, D, G, keep, gamma), PARE_OK);
        memcpy(Pm, P0, sizeof Pm);
        for (int e = 0; e < E; e++)
            for (int j = 0; j < D; j++) if (!keep[j]) Pm[e * D + j] = 0;
        for (int e = 0; e < E; e++)
            for (int j = 0; j < D; j++) if (!keep[j]) assert_true(P1[e * D + j] == 0.0);
        double ec = recon_err(P0, P1, E, D, G), em = recon_err(P0, Pm, E, D, G);
        assert_true(ec <= em * (1 + 1e-12));
        assert_true(ec < 0.999 * em); /* correlated inputs: the refit recovers something */
        if (gamma == 0) {
            /* normal equations: P1[:, S] G_SS = P0 G[:, S] */
            for (int e = 0; e < E; e++)
                for (int b = 0; b < D; b++) {
                    if (!keep[b]) continue;
                    double lhs = 0, rhs = 0, scale = 0;
                    for (int a = 0; a < D; a++) {
                        if (keep[a]) lhs += P1[e * D + a] * G[a * D + b];
                        rhs += P0[e * D + a] * G[a * D + b];
                        scale += fabs(P0[e * D + a] * G[a * D + b]);
                    }
                    assert_true(fabs(lhs - rhs) <= 1e-10 * scale);
                }
            /* Remark 4: the loss equals tr(P_Pr [(G^-1)_PrPr]^-1 P_Pr^T) */
            double *Gi = malloc(sizeof(double) * D * D);
            memcpy(Gi, G, sizeof(double) * D * D);
            spd_inverse(Gi, D);
            int R[D], nr = 0;
            for (int j = 0; j < D; j++) if (!keep[j]) R[nr++] = j;
            double *B = malloc(sizeof(double) * nr * nr);
            for (int a = 0; a < nr; a++)
                for (int b = 0; b < nr; b++) B[a * nr + b] = Gi[R[a] * D + R[b]];
            spd_inverse(B, nr);
            double L = 0;
            for (int e = 0; e < E; e++)
                for (int a = 0; a < nr; a++)
                    for (int b = 0; b < nr; b++) L += P0[e * D + R[a]] * B[a * nr + b] * P0[e * D + R[b]];
            assert_true(fabs(L - ec) <= 1e-8 * L);
            free(Gi); free(B);
        } else {
            /* ridge normal equations: P1_S (G_SS + gamma' I) = P0 G[:, S] + gamma' P0_S */
            double md = 0;
            int ns = 0;
            for (int j = 0; j < D; j++) if (keep[j]) { md += G[j * D + j]; ns++; }
            double gp = gamma * md / ns;
            for (int e = 0; e < E; e++)
                for (int b = 0; b < D; b++) {
                    if (!keep[b]) continue;
                    double lhs = gp * P1[e * D + b], rhs = gp * P0[e * D + b], scale = 0;
                    for (int a = 0; a < D; a++) {
                        if (keep[a]) lhs += P1[e * D + a] * G[a * D + b];
                        rhs += P0[e * D + a] * G[a * D + b];
                        scale += fabs(P0[e * D + a] * G[a * D + b]);
                    }
                    assert_true(fabs(lhs - rhs) <= 1e-10 * scale);
                }
        }
    }
    free(X); free(G);
}

/* the paper's closed form, its layout W = P^T (D x E):
 * dW = -(2G')^-1 M (M^T (2G')^-1 M)^-1 M^T W, G' = G + gamma I on the kept diagonal only
 * is the refit's ridge; here gamma enters G' on every diagonal entry of the kept set */
static void test_closed_form_equals_refit(void **state) {
    (void)state;
    enum { T = 70, D = 18, E = 6 };
    double *X = malloc(sizeof(double) * T * D), *G = malloc(sizeof(double) * D * D), *Gi = malloc(sizeof(double) * D * D);
    double P0[E * D], P1[E * D], P2[E * D];
    uint8_t keep[D];
    random_gram(T, D, X, G);
    for (int i = 0; i < E * D; i++) P0[i] = nrand();
    for (int j = 0; j < D; j++) keep[j] = (j * 7) % 5 != 0;
    int R[D], nr = 0, ns = 0;
    double md = 0;
    for (int j = 0; j < D; j++) { if (!keep[j]) R[nr++] = j; else { md += G[j * D + j]; ns++; } }
    md /= ns;
    for (int gi = 0; gi < 2; gi++) {
        double gamma = gi ? 0.02 : 0.0;
        /* G' = G + gamma md I on the kept channels (the removed ones' ridge cancels out) */
        for (int i = 0; i < D * D; i++) Gi[i] = 2 * G[i];
        for (int j = 0; j < D; j++) if (keep[j]) Gi[j * D + j] += 2 * gamma * md;
        spd_inverse(Gi, D);
        double *K = malloc(sizeof(double) * nr * nr);
        for (int a = 0; a < nr; a++)
            for (int b = 0; b < nr; b++) K[a * nr + b] = Gi[R[a] * D + R[b]];
        spd_inverse(K, nr);
        /* dW (D x E) = -Gi[:, R] K W[R, :], W[R, e] = P0[e, R] */
        for (int e = 0; e < E; e++)
            for (int d = 0; d < D; d++) {
                double s = 0;
                for (int a = 0; a < nr; a++)
                    for (int b = 0; b < nr; b++) s += Gi[d * D + R[a]] * K[a * nr + b] * P0[e * D + R[b]];
                P2[e * D + d] = P0[e * D + d] - s;
            }
        memcpy(P1, P0, sizeof P1);
        assert_int_equal(np_compensate(P1, E, D, G, keep, gamma), PARE_OK);
        for (int i = 0; i < E * D; i++) assert_true(fabs(P1[i] - P2[i]) <= 1e-8);
        free(K);
    }
    free(X); free(G); free(Gi);
}

/* ---- whole models -------------------------------------------------------------------- */
static const synth_shape g_gqa = {"t-gqa", 64, 4, 4, 2, 96, 300, 64};
static const synth_shape g_mha = {"t-mha", 64, 3, 4, 4, 80, 300, 64};

static pare_model *make_model(const synth_shape *s, int type) {
    pare_model *m;
    assert_int_equal(synth_model(s, type, 7, &m), PARE_OK);
    /* weights of std 0.2 rather than 0.02, so pruning moves the logits visibly */
    if (type == PARE_TYPE_F32)
        for (int i = 0; i < m->n_tensors; i++) {
            pare_tensor *t = &m->tensors[i];
            if (t->n_dims < 2) continue;
            float *w = t->data;
            for (int64_t k = 0; k < pare_tensor_nelem(t); k++) w[k] *= 10;
        }
    return m;
}

static void random_calib(calib_data *cd, int n, int T, int vocab) {
    cd->n = n; cd->T = T; cd->n_text_tokens = (int64_t)n * T;
    cd->ids = malloc(sizeof(int32_t) * n * T);
    for (int i = 0; i < n * T; i++) cd->ids[i] = 3 + (int32_t)(urand() * (vocab - 3));
}

static float *logits_of(const pare_model *m, const int32_t *tok, int n) {
    pare_ctx *c;
    assert_int_equal(pare_ctx_new(m, n, &c), PARE_OK);
    float *lg = malloc(sizeof(float) * n * m->n_vocab);
    assert_int_equal(pare_forward(c, tok, n, 0, lg), PARE_OK);
    pare_ctx_free(c);
    return lg;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
    return d;
}

/* A hand-made plan touching every case: a whole KV group, one head per group, all heads,
 * all channels, scattered channels. */
static void hand_plan(sprune_plan *p) {
    sprune_layer *l0 = &p->l[0], *l1 = &p->l[1], *l2 = &p->l[2], *l3 = &p->l[3];
    l0->keep_head[0] = l0->keep_head[1] = 0;          /* KV head 0 with its group */
    l1->keep_head[1] = l1->keep_head[2] = 0;          /* one query head of each group */
    memset(l2->keep_head, 0, (size_t)l2->n_head);     /* attention-free layer */
    memset(l3->keep_ff, 0, (size_t)l3->n_ff);         /* FFN-free layer */
    for (int j = 0; j < l0->n_ff; j += 3) l0->keep_ff[j] = 0;
    for (int j = 5; j < 40; j++) l1->keep_ff[j] = 0;
    l2->keep_ff[l2->n_ff - 1] = 0;
}

static void check_remove_equals_mask(int type) {
    pare_model *a = make_model(&g_gqa, type), *b = make_model(&g_gqa, type);
    sprune_plan p;
    assert_int_equal(sprune_plan_new(a, &p), PARE_OK);
    hand_plan(&p);
    assert_int_equal(sprune_mask(a, &p), PARE_OK);
    assert_int_equal(sprune_apply(b, &p), PARE_OK);
    /* shapes */
    assert_int_equal(b->layers[0].n_head, 2); assert_int_equal(b->layers[0].n_head_kv, 1);
    assert_int_equal(b->layers[1].n_head, 2); assert_int_equal(b->layers[1].n_head_kv, 2);
    assert_int_equal(b->layers[2].n_head, 0); assert_int_equal(b->layers[2].n_head_kv, 0);
    assert_int_equal(b->layers[3].n_ff, 0);
    assert_int_equal(b->layers[1].n_ff, g_gqa.n_ff - 35);
    assert_null(model_find_tensor(b, "blk.2.attn_q.weight"));
    assert_null(model_find_tensor(b, "blk.3.ffn_down.weight"));
    assert_int_equal(b->layers[1].wo->ne[0], 2 * b->head_dim);
    int64_t removed = sprune_plan_params(&p, 0) - sprune_plan_params(&p, 1) + 2 * g_gqa.dim; /* + 2 norms */
    assert_int_equal(model_n_params(a) - model_n_params(b), removed);
    int32_t tok[40];
    for (int i = 0; i < 40; i++) tok[i] = 3 + (i * 37) % 290;
    float *la = logits_of(a, tok, 40), *lb = logits_of(b, tok, 40);
    assert_true(max_diff(la, lb, (size_t)40 * a->n_vocab) <= 1e-5);
    /* a GGUF round trip keeps per-layer heads and widths and the function */
    char dir[] = "/tmp/pare-test-np-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/pruned.gguf", dir);
    assert_int_equal(pare_model_save(b, path, "gguf"), PARE_OK);
    pare_model *c;
    assert_int_equal(pare_model_load(path, NULL, &c), PARE_OK);
    for (int l = 0; l < b->n_layer; l++) {
        assert_int_equal(c->layers[l].n_head, b->layers[l].n_head);
        assert_int_equal(c->layers[l].n_head_kv, b->layers[l].n_head_kv);
        assert_int_equal(c->layers[l].n_ff, b->layers[l].n_ff);
    }
    assert_int_equal(c->head_dim, b->head_dim);
    float *lc = logits_of(c, tok, 40);
    assert_true(max_diff(lb, lc, (size_t)40 * a->n_vocab) == 0);
    unlink(path); rmdir(dir);
    free(la); free(lb); free(lc);
    sprune_plan_free(&p);
    pare_model_free(a); pare_model_free(b); pare_model_free(c);
}

static void test_remove_equals_mask(void **state) {
    (void)state;
    check_remove_equals_mask(PARE_TYPE_F32);
    check_remove_equals_mask(PARE_TYPE_F16);
}

static void test_zero_ratio_identity(void **state) {
    (void)state;
    static const int methods[] = {SP_NUMERICAL, SP_FLAP_NOBIAS, SP_MAGNITUDE, SP_WANDA};
    calib_data cd;
    random_calib(&cd, 4, 24, g_gqa.n_vocab);
    int32_t tok[30];
    for (int i = 0; i < 30; i++) tok[i] = 3 + (i * 53) % 290;
    pare_model *ref = make_model(&g_gqa, PARE_TYPE_F32);
    float *l0 = logits_of(ref, tok, 30);
    for (int k = 0; k < 4; k++)
        for (int tgt = 0; tgt < 3; tgt++) {
            pare_model *m = make_model(&g_gqa, PARE_TYPE_F32);
            sprune_opts o;
            sprune_opts_default(&o);
            o.method = methods[k]; o.target = tgt; o.ratio = 0; o.head_ratio = 0; o.ffn_ratio = 0;
            sprune_report rep;
            assert_int_equal(prune_structured(m, &cd, &o, 0, &rep), PARE_OK);
            assert_int_equal(rep.params_after, rep.params_before);
            assert_int_equal(rep.units_after, rep.units_before);
            for (int i = 0; i < m->n_tensors; i++) {
                const pare_tensor *t = &m->tensors[i], *r = model_find_tensor(ref, t->name);
                assert_non_null(r);
                assert_int_equal(t->nbytes, r->nbytes);
                assert_memory_equal(t->data, r->data, t->nbytes);
            }
            float *l1 = logits_of(m, tok, 30);
            assert_memory_equal(l0, l1, sizeof(float) * 30 * m->n_vocab);
            free(l1);
            sprune_report_free(&rep);
            pare_model_free(m);
        }
    free(l0);
    pare_model_free(ref);
    calib_free(&cd);
}

/* scores of every unit of every layer on the dense model */
static void dense_scores(pare_model *m, const calib_data *cd, const sprune_opts *o, sprune_plan *p) {
    assert_int_equal(sprune_plan_new(m, p), PARE_OK);
    calib_runner *r;
    assert_int_equal(runner_new(m, cd, &r), PARE_OK);
    for (int l = 0; l < m->n_layer; l++) {
        unsigned want[FWD_N_POINTS] = {0};
        want[FWD_O_IN] = want[FWD_DOWN_IN] = STAT_GRAM | STAT_SUM | STAT_SUMSQ;
        calib_stats st[FWD_N_POINTS];
        memset(st, 0, sizeof st);
        assert_int_equal(runner_collect(r, want, 0, st), PARE_OK);
        assert_int_equal(sprune_layer_scores(m, l, o, &st[FWD_O_IN], &st[FWD_DOWN_IN], p), PARE_OK);
        for (int q = 0; q < FWD_N_POINTS; q++) calib_stats_free(&st[q]);
        assert_int_equal(runner_advance(r), PARE_OK);
    }
    runner_free(r);
}

/* A head (channel) whose o (down) columns are zero scores lowest among the heads (channels):
 * of all layers for numerical, of its layer for FLAP and Wanda (per-layer scales). Not
 * necessarily below every channel under alpha = 4 hd / 3: dead channels absorb the layer's
 * budget r in the relaxed objective (16 dead channels of 64 at rho 0.2 get z = 1 - 0.8 = 0.2,
 * i.e. 4.3 after alpha), while live FFN channels score near 1 - rho. */
static void test_zero_output_unit_scores_lowest(void **state) {
    (void)state;
    pare_model *m = make_model(&g_gqa, PARE_TYPE_F32);
    /* head 2 of layer 1: its o columns zero; channel 7 of layer 2: its down column zero */
    pare_tensor *wo = m->layers[1].wo, *wd = m->layers[2].w_down;
    int hd = m->head_dim;
    for (int64_t r = 0; r < wo->ne[1]; r++) memset((float *)wo->data + r * wo->ne[0] + 2 * hd, 0, sizeof(float) * hd);
    for (int64_t r = 0; r < wd->ne[1]; r++) ((float *)wd->data)[r * wd->ne[0] + 7] = 0;
    calib_data cd;
    random_calib(&cd, 4, 32, g_gqa.n_vocab);
    static const int methods[] = {SP_NUMERICAL, SP_FLAP_NOBIAS, SP_WANDA};
    for (int k = 0; k < 3; k++) {
        sprune_opts o;
        sprune_opts_default(&o);
        o.method = methods[k];
        sprune_plan p;
        dense_scores(m, &cd, &o, &p);
        double zh = p.l[1].head_score[2], zc = p.l[2].ff_score[7];
        for (int l = 0; l < m->n_layer; l++) {
            for (int h = 0; h < p.l[l].n_head; h++)
                if (!(l == 1 && h == 2) && (l == 1 || methods[k] == SP_NUMERICAL)) assert_true(zh < p.l[l].head_score[h]);
            for (int j = 0; j < p.l[l].n_ff; j++)
                if (!(l == 2 && j == 7) && (l == 2 || methods[k] == SP_NUMERICAL)) assert_true(zc < p.l[l].ff_score[j]);
        }
        sprune_plan_free(&p);
    }
    calib_free(&cd);
    pare_model_free(m);
}

static void test_unit_count_and_param_target(void **state) {
    (void)state;
    calib_data cd;
    random_calib(&cd, 4, 32, 300);
    const synth_shape *shapes[2] = {&g_mha, &g_gqa};
    static const double rhos[] = {0.1, 0.3, 0.55};
    static const int methods[] = {SP_NUMERICAL, SP_FLAP_NOBIAS, SP_MAGNITUDE, SP_WANDA};
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 4; k++)
            for (int i = 0; i < 3; i++) {
                int64_t N = 0;
                for (int l = 0; l < shapes[s]->n_layer; l++) N += shapes[s]->n_head + shapes[s]->n_ff;
                /* the paper's rule: floor(rho (L H + L d_ff)) units, global ranking */
                pare_model *m = make_model(shapes[s], PARE_TYPE_F32);
                int64_t p0 = model_n_params(m);
                sprune_opts o;
                sprune_opts_default(&o);
                o.method = methods[k]; o.target = SP_TARGET_UNITS; o.ratio = rhos[i];
                o.structure = SP_STRUCT_GLOBAL; o.min_heads = 0; o.min_ffn = 0; o.compensate = 0;
                sprune_report rep;
                assert_int_equal(prune_structured(m, &cd, &o, 0, &rep), PARE_OK);
                assert_int_equal(rep.units_before, N);
                assert_int_equal(rep.units_before - rep.units_after, (int64_t)floor(rhos[i] * N + 1e-9));
                assert_int_equal(rep.params_before, p0);
                assert_int_equal(rep.params_after, model_n_params(m));
                sprune_report_free(&rep);
                pare_model_free(m);
                /* the parameter target: met within one unit, for both structures */
                for (int u = 0; u < 2; u++) {
                    m = make_model(shapes[s], PARE_TYPE_F32);
                    o.target = SP_TARGET_PARAMS; o.structure = u ? SP_STRUCT_UNIFORM : SP_STRUCT_GLOBAL;
                    o.min_heads = 1; o.min_ffn = 1; o.compensate = 1;
                    assert_int_equal(prune_structured(m, &cd, &o, 0, &rep), PARE_OK);
                    double got = 1.0 - (double)rep.block_after / (double)rep.block_before;
                    double unit = (double)(4 * shapes[s]->dim * (shapes[s]->dim / shapes[s]->n_head)) / (double)rep.block_before;
                    if (u == 0) assert_true(got >= rhos[i] - 1e-12 && got <= rhos[i] + unit + 1e-12);
                    else assert_true(fabs(got - rhos[i]) <= unit * shapes[s]->n_layer);
                    for (int l = 0; l < m->n_layer; l++) {
                        assert_true(m->layers[l].n_head >= 1 && m->layers[l].n_ff >= 1);
                        assert_int_equal(m->layers[l].n_head % m->layers[l].n_head_kv, 0);
                    }
                    sprune_report_free(&rep);
                    pare_model_free(m);
                }
            }
    calib_free(&cd);
}

/* numerical pruning with compensation lowers the calibration loss against no compensation
 * on the same units (a smoke test of the whole pipeline; not a theorem) */
static void test_compensation_helps(void **state) {
    (void)state;
    calib_data cd;
    random_calib(&cd, 6, 32, 300);
    double nll[2];
    for (int c = 0; c < 2; c++) {
        pare_model *m = make_model(&g_mha, PARE_TYPE_F32);
        sprune_opts o;
        sprune_opts_default(&o);
        o.ratio = 0.3; o.compensate = c;
        sprune_report rep;
        assert_int_equal(prune_structured(m, &cd, &o, 0, &rep), PARE_OK);
        calib_runner *r;
        assert_int_equal(runner_new(m, &cd, &r), PARE_OK);
        assert_int_equal(runner_loss_from(r, 0, NULL, &nll[c]), PARE_OK);
        runner_free(r);
        sprune_report_free(&rep);
        pare_model_free(m);
    }
    assert_true(nll[1] < nll[0]);
    calib_free(&cd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newton_zero_gradient),
        cmocka_unit_test(test_zero_column_scores_lowest),
        cmocka_unit_test(test_compensation_normal_equations),
        cmocka_unit_test(test_closed_form_equals_refit),
        cmocka_unit_test(test_remove_equals_mask),
        cmocka_unit_test(test_zero_ratio_identity),
        cmocka_unit_test(test_zero_output_unit_scores_lowest),
        cmocka_unit_test(test_unit_count_and_param_target),
        cmocka_unit_test(test_compensation_helps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
