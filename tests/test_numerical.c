/* test_numerical.c - Numerical Pruning and structured pruning (METHODS.md 8 e):
 * the Newton step reaches a zero gradient from any start; compensation satisfies its normal
 * equations, zeroes the removed columns, never increases the calibration error, reaches
 * Remark 4's optimum and equals the paper's closed form (fp64, 1e-8); removing units
 * physically equals masking them (also after a GGUF round trip, GQA groups included); 0%
 * is the identity; a unit whose output projection is zero scores lowest of its kind; the paper's unit
 * count floor(rho (L H + L d_ff)); the parameter target is met within one unit. LLM-Pruner's
 * Taylor score (METHODS.md 10): a channel's and a head's score is the sum of |w dL/dw| over
 * their weights with dL/dw by central differences / the fp64 network; a channel with all
 * weights zero scores 0 and goes first; 0% is the identity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kernels/kernels.h"
#include "model/synth.h"
#include "prune/linalg.h"
#include "prune/prune.h"
#include "train/tnet.h"

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

/* logits of a fixed 40-token probe, to compare two models' functions */
enum { PROBE_N = 40 };
static float *probe_logits(const pare_model *m) {
    int32_t tok[PROBE_N];
    for (int i = 0; i < PROBE_N; i++) tok[i] = 3 + (i * 37) % 290;
    return logits_of(m, tok, PROBE_N);
}

/* m saved as GGUF in a fresh folder (path: 128 bytes) and loaded back; round_trip_clean
 * removes the file and folder once nothing runs on the loaded model any more (pare checks
 * that its inputs stay in place) */
static pare_model *gguf_round_trip(const pare_model *m, char *path) {
    char dir[] = "/tmp/pare-test-np-XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(path, 128, "%s/pruned.gguf", dir);
    assert_int_equal(pare_model_save(m, path, "gguf"), PARE_OK);
    pare_model *c;
    assert_int_equal(pare_model_load(path, NULL, &c), PARE_OK);
    return c;
}

static void round_trip_clean(char *path) {
    unlink(path);
    *strrchr(path, '/') = 0;
    rmdir(path);
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
    float *la = probe_logits(a), *lb = probe_logits(b);
    assert_true(max_diff(la, lb, (size_t)PROBE_N * a->n_vocab) <= 1e-5);
    /* a GGUF round trip keeps per-layer heads and widths and the function */
    char path[128];
    pare_model *c = gguf_round_trip(b, path);
    for (int l = 0; l < b->n_layer; l++) {
        assert_int_equal(c->layers[l].n_head, b->layers[l].n_head);
        assert_int_equal(c->layers[l].n_head_kv, b->layers[l].n_head_kv);
        assert_int_equal(c->layers[l].n_ff, b->layers[l].n_ff);
    }
    assert_int_equal(c->head_dim, b->head_dim);
    float *lc = probe_logits(c);
    assert_true(max_diff(lb, lc, (size_t)PROBE_N * a->n_vocab) == 0);
    round_trip_clean(path);
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

static void stats_equal(const calib_stats *a, const calib_stats *b) {
    assert_int_equal(a->width, b->width);
    assert_int_equal(a->ntok, b->ntok);
    size_t w = (size_t)a->width;
    if (a->sumsq) assert_memory_equal(a->sumsq, b->sumsq, w * sizeof(double));
    if (a->sum) assert_memory_equal(a->sum, b->sum, w * sizeof(double));
    if (a->min) { assert_memory_equal(a->min, b->min, w * sizeof(float)); assert_memory_equal(a->max, b->max, w * sizeof(float)); }
    assert_true(!a->gram == !b->gram);
    if (a->gram) assert_memory_equal(a->gram, b->gram, w * w * sizeof(double));
}

/* runner_collect_advance (one pass, in place) gives the statistics of runner_collect and the
 * next block's inputs of runner_advance, bit for bit; a collect that wants only an early point
 * stops there and gives that point's statistics of a whole-block collect; Grams come out
 * symmetric with the sums of squares on their diagonal. */
static void test_collect_advance(void **state) {
    (void)state;
    pare_model *m = make_model(&g_gqa, PARE_TYPE_F32);
    calib_data cd;
    random_calib(&cd, 3, 24, g_gqa.n_vocab);
    calib_runner *a, *b;
    assert_int_equal(runner_new(m, &cd, &a), PARE_OK);
    assert_int_equal(runner_new(m, &cd, &b), PARE_OK);
    const size_t nx = (size_t)cd.n * cd.T * m->n_embd;
    for (int l = 0; l < m->n_layer; l++) {
        unsigned want[FWD_N_POINTS], early[FWD_N_POINTS] = {0};
        for (int q = 0; q < FWD_N_POINTS; q++) want[q] = STAT_GRAM | STAT_SUM | STAT_SUMSQ | STAT_MINMAX;
        early[FWD_ATTN_IN] = want[FWD_ATTN_IN];
        calib_stats sa[FWD_N_POINTS], sb[FWD_N_POINTS], se[FWD_N_POINTS];
        memset(sa, 0, sizeof sa); memset(sb, 0, sizeof sb); memset(se, 0, sizeof se);
        assert_int_equal(runner_collect(a, early, 0, se), PARE_OK);
        assert_int_equal(runner_collect(a, want, 0, sa), PARE_OK);
        stats_equal(&se[FWD_ATTN_IN], &sa[FWD_ATTN_IN]);
        assert_int_equal(runner_advance(a), PARE_OK);
        assert_int_equal(runner_collect_advance(b, want, 0, sb), PARE_OK);
        assert_int_equal(a->block, b->block);
        assert_memory_equal(a->x, b->x, nx * sizeof(float));
        for (int q = 0; q < FWD_N_POINTS; q++) stats_equal(&sa[q], &sb[q]);
        /* every Gram symmetric, its diagonal the sums of squares (accumulated apart, in double) */
        for (int q = 0; q < FWD_N_POINTS; q++) {
            const double *G = sa[q].gram;
            int w = sa[q].width;
            for (int i = 0; i < w; i++) {
                for (int j = 0; j < i; j++) assert_true(G[(size_t)i * w + j] == G[(size_t)j * w + i]);
                assert_true(fabs(G[(size_t)i * w + i] - sa[q].sumsq[i]) <= 1e-5 * sa[q].sumsq[i] + 1e-12);
            }
        }
        for (int q = 0; q < FWD_N_POINTS; q++) { calib_stats_free(&sa[q]); calib_stats_free(&sb[q]); calib_stats_free(&se[q]); }
    }
    runner_free(a); runner_free(b);
    calib_free(&cd);
    pare_model_free(m);
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

/* ---- LLM-Pruner's Taylor score (taylor.c) ------------------------------------------------ */
/* The windows of cd as one batch: inputs, and targets the next tokens (a window's last
 * position has none), as taylor_scores feeds them. */
static void windows_io(const calib_data *cd, int32_t *in, int32_t *tgt) {
    for (int w = 0; w < cd->n; w++)
        for (int t = 0; t < cd->T; t++) {
            in[w * cd->T + t] = cd->ids[w * cd->T + t];
            tgt[w * cd->T + t] = t + 1 < cd->T ? cd->ids[w * cd->T + t + 1] : -1;
        }
}

/* L: the mean cross-entropy over the scored tokens, on the fp64 network */
static double loss_d(tnet_d *n, const calib_data *cd, const int32_t *in, const int32_t *tgt) {
    double s;
    int64_t c;
    assert_int_equal(tnet_forward_d(n, in, tgt, cd->n, cd->T, NULL, &s, &c), PARE_OK);
    assert_int_equal(c, (int64_t)cd->n * (cd->T - 1));
    return s / (double)c;
}

static double *slot_w(tnet_d *n, const char *name) { tparam_d *p = tnet_param_d(n, name); assert_non_null(p); return *p->w; }
static double *slot_g(tnet_d *n, const char *name) { tparam_d *p = tnet_param_d(n, name); assert_non_null(p); return *p->gw; }

/* The score of FFN channel c and of query head h (GQA: its KV head shared by 2) of block 1,
 * by hand: dL/dw of the channel's 3 E weights by central differences in double (h = 1e-5,
 * checked against the fp64 backward pass), of the head's q/k/v/o weights by the fp64
 * backward pass (spot-checked by differences); sum of |w g| over the channel's gate and up
 * rows and down column, and over the head's q rows, o columns and half its KV head's k and
 * v rows. The pipeline (F32 network) agrees to 2e-5 (it is near 1e-6). */
static void test_taylor_hand(void **state) {
    (void)state;
    pare_model *m = make_model(&g_gqa, PARE_TYPE_F32);
    calib_data cd;
    random_calib(&cd, 3, 16, g_gqa.n_vocab);
    sprune_plan p;
    assert_int_equal(sprune_plan_new(m, &p), PARE_OK);
    double L32;
    assert_int_equal(taylor_scores(m, &cd, &p, 0, &L32), PARE_OK);
    tnet_d *n;
    assert_int_equal(tnet_new_d(m, &n), PARE_OK);
    assert_int_equal(tnet_own_params_d(n, m, 1, 0), PARE_OK);
    assert_int_equal(tnet_reserve_d(n, cd.n, cd.T), PARE_OK);
    int32_t *in = malloc(sizeof(int32_t) * cd.n * cd.T), *tgt = malloc(sizeof(int32_t) * cd.n * cd.T);
    windows_io(&cd, in, tgt);
    double s;
    int64_t cnt;
    assert_int_equal(tnet_grad_d(n, in, tgt, cd.n, cd.T, 1.0 / ((double)cd.n * (cd.T - 1)), &s, &cnt), PARE_OK);
    double L = s / (double)cnt;
    assert_true(fabs(L32 - L) <= 1e-5 * L);
    const int E = g_gqa.dim, F = g_gqa.n_ff, hd = m->head_dim, H = g_gqa.n_head, g = H / g_gqa.n_head_kv;
    const int c = 17, h = 3, kv = h / g;
    /* the channel, by central differences */
    double *gate = slot_w(n, "blk.1.ffn_gate.weight"), *up = slot_w(n, "blk.1.ffn_up.weight");
    double *down = slot_w(n, "blk.1.ffn_down.weight");
    double *g_gate = slot_g(n, "blk.1.ffn_gate.weight"), *g_up = slot_g(n, "blk.1.ffn_up.weight");
    double *g_down = slot_g(n, "blk.1.ffn_down.weight");
    double *cw[3 * 64], *cg[3 * 64];
    assert_true(E <= 64);
    for (int e = 0; e < E; e++) {
        cw[e] = &gate[c * E + e]; cg[e] = &g_gate[c * E + e];
        cw[E + e] = &up[c * E + e]; cg[E + e] = &g_up[c * E + e];
        cw[2 * E + e] = &down[e * F + c]; cg[2 * E + e] = &g_down[e * F + c];
    }
    double hand = 0, gmax = 0;
    for (int i = 0; i < 3 * E; i++) if (fabs(*cg[i]) > gmax) gmax = fabs(*cg[i]);
    assert_true(gmax > 0);
    for (int i = 0; i < 3 * E; i++) {
        double w0 = *cw[i], step = 1e-5;
        *cw[i] = w0 + step;
        double lp = loss_d(n, &cd, in, tgt);
        *cw[i] = w0 - step;
        double lm = loss_d(n, &cd, in, tgt);
        *cw[i] = w0;
        double gfd = (lp - lm) / (2 * step);
        assert_true(fabs(gfd - *cg[i]) <= 1e-6 * gmax);
        hand += fabs(w0 * gfd);
    }
    assert_true(hand > 0);
    assert_true(fabs(p.l[1].ff_score[c] - hand) <= 2e-5 * hand);
    /* the head, by the fp64 backward pass */
    const char *an[4] = {"blk.1.attn_q.weight", "blk.1.attn_k.weight", "blk.1.attn_v.weight", "blk.1.attn_output.weight"};
    double *aw[4], *ag[4];
    for (int k = 0; k < 4; k++) { aw[k] = slot_w(n, an[k]); ag[k] = slot_g(n, an[k]); }
    double hq = 0, hkv = 0, ho = 0;
    for (int d = 0; d < hd; d++)
        for (int e = 0; e < E; e++) {
            size_t iq = (size_t)(h * hd + d) * E + e, ik = (size_t)(kv * hd + d) * E + e, io = (size_t)e * (H * hd) + h * hd + d;
            hq += fabs(aw[0][iq] * ag[0][iq]);
            hkv += fabs(aw[1][ik] * ag[1][ik]) + fabs(aw[2][ik] * ag[2][ik]);
            ho += fabs(aw[3][io] * ag[3][io]);
        }
    double hand_h = hq + ho + hkv / g;
    assert_true(hq > 0 && hkv > 0 && ho > 0);
    assert_true(fabs(p.l[1].head_score[h] - hand_h) <= 2e-5 * hand_h);
    /* spot checks of those gradients by differences: two weights of each of q, k, v, o */
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 2; j++) {
            int d = j ? hd - 1 : 3, e = j ? 5 : E - 2;
            size_t i = k == 3 ? (size_t)e * (H * hd) + h * hd + d : (size_t)((k ? kv : h) * hd + d) * E + e;
            double w0 = aw[k][i], step = 1e-5, gm = 0;
            size_t ne = (size_t)E * (k == 1 || k == 2 ? g_gqa.n_head_kv : H) * hd;
            for (size_t q = 0; q < ne; q++) if (fabs(ag[k][q]) > gm) gm = fabs(ag[k][q]);
            aw[k][i] = w0 + step;
            double lp = loss_d(n, &cd, in, tgt);
            aw[k][i] = w0 - step;
            double lm = loss_d(n, &cd, in, tgt);
            aw[k][i] = w0;
            assert_true(fabs((lp - lm) / (2 * step) - ag[k][i]) <= 1e-6 * gm);
        }
    /* every other unit scored too, positive */
    for (int l = 0; l < m->n_layer; l++) {
        for (int k = 0; k < H; k++) assert_true(p.l[l].head_score[k] > 0);
        for (int j = 0; j < F; j++) assert_true(p.l[l].ff_score[j] > 0);
    }
    free(in); free(tgt);
    tnet_free_d(n);
    sprune_plan_free(&p);
    calib_free(&cd);
    pare_model_free(m);
}

/* A channel whose gate and up rows and down column are zero scores exactly 0, below every
 * other unit of its layer, and is the one removed when a layer loses one channel. */
static void test_taylor_zero_channel(void **state) {
    (void)state;
    pare_model *m = make_model(&g_gqa, PARE_TYPE_F32), *ref = make_model(&g_gqa, PARE_TYPE_F32);
    const int l = 2, c = 40, E = g_gqa.dim, F = g_gqa.n_ff;
    pare_layer *L = &m->layers[l];
    memset((float *)L->w_gate->data + (size_t)c * E, 0, sizeof(float) * E);
    memset((float *)L->w_up->data + (size_t)c * E, 0, sizeof(float) * E);
    for (int e = 0; e < E; e++) ((float *)L->w_down->data)[(size_t)e * F + c] = 0;
    calib_data cd;
    random_calib(&cd, 3, 16, g_gqa.n_vocab);
    sprune_plan p;
    assert_int_equal(sprune_plan_new(m, &p), PARE_OK);
    assert_int_equal(taylor_scores(m, &cd, &p, 0, NULL), PARE_OK);
    assert_true(p.l[l].ff_score[c] == 0.0);
    for (int j = 0; j < F; j++) if (j != c) assert_true(p.l[l].ff_score[j] > 0);
    sprune_plan_free(&p);
    /* one channel per layer, no head: layer 2 loses channel 40, its other rows keep order */
    sprune_opts o;
    sprune_opts_default(&o);
    o.method = SP_TAYLOR; o.target = SP_TARGET_TYPES; o.head_ratio = 0; o.ffn_ratio = 1.0 / F;
    sprune_report rep;
    assert_int_equal(prune_structured(m, &cd, &o, 0, &rep), PARE_OK);
    assert_int_equal(rep.structure, SP_STRUCT_UNIFORM);
    assert_true(rep.calib_loss > 0);
    for (int k = 0; k < m->n_layer; k++) {
        assert_int_equal(m->layers[k].n_ff, F - 1);
        assert_int_equal(m->layers[k].n_head, g_gqa.n_head);
    }
    const float *gm = m->layers[l].w_gate->data, *gr = ref->layers[l].w_gate->data;
    for (int j = 0; j < F - 1; j++) assert_memory_equal(gm + (size_t)j * E, gr + (size_t)(j < c ? j : j + 1) * E, sizeof(float) * E);
    sprune_report_free(&rep);
    calib_free(&cd);
    pare_model_free(m); pare_model_free(ref);
}

/* ratio 0 (every target, F32 and F16 weights): the model comes back bit for bit */
static void test_taylor_zero_ratio(void **state) {
    (void)state;
    calib_data cd;
    random_calib(&cd, 2, 16, g_gqa.n_vocab);
    for (int type = 0; type < 2; type++)
        for (int tgt = 0; tgt < 3; tgt++) {
            int ty = type ? PARE_TYPE_F16 : PARE_TYPE_F32;
            pare_model *m = make_model(&g_gqa, ty), *ref = make_model(&g_gqa, ty);
            sprune_opts o;
            sprune_opts_default(&o);
            o.method = SP_TAYLOR; o.target = tgt; o.ratio = 0; o.head_ratio = 0; o.ffn_ratio = 0;
            sprune_report rep;
            assert_int_equal(prune_structured(m, &cd, &o, 0, &rep), PARE_OK);
            assert_int_equal(rep.params_after, rep.params_before);
            assert_int_equal(rep.units_after, rep.units_before);
            assert_int_equal(m->n_tensors, ref->n_tensors);
            for (int i = 0; i < m->n_tensors; i++) {
                const pare_tensor *t = &m->tensors[i], *r = model_find_tensor(ref, t->name);
                assert_non_null(r);
                assert_int_equal(t->type, r->type);
                assert_int_equal(t->nbytes, r->nbytes);
                assert_memory_equal(t->data, r->data, t->nbytes);
            }
            sprune_report_free(&rep);
            pare_model_free(m); pare_model_free(ref);
        }
    calib_free(&cd);
}

/* FLAP with its bias compensation: removed == masked (the biases in both), the biases survive
 * a GGUF round trip, and on the dense model's calibration inputs every pruned layer's mean o
 * and down output equals the dense one (METHODS.md 11 e); the training network refuses the
 * biases it does not model. */
static void test_flap_bias(void **state) {
    (void)state;
    calib_data cd;
    random_calib(&cd, 4, 24, g_gqa.n_vocab);
    pare_model *ref = make_model(&g_gqa, PARE_TYPE_F32), *a = make_model(&g_gqa, PARE_TYPE_F32),
               *b = make_model(&g_gqa, PARE_TYPE_F32);
    sprune_opts o;
    sprune_opts_default(&o);
    o.method = SP_FLAP; o.ratio = 0.3;
    sprune_report rep;
    o.mask_only = 1;
    assert_int_equal(prune_structured(a, &cd, &o, 0, &rep), PARE_OK);
    sprune_report_free(&rep);
    o.mask_only = 0;
    assert_int_equal(prune_structured(b, &cd, &o, 0, &rep), PARE_OK);
    sprune_report_free(&rep);
    int nbias = 0;
    for (int l = 0; l < b->n_layer; l++) nbias += (b->layers[l].b_o != NULL) + (b->layers[l].b_down != NULL);
    assert_true(nbias >= 2);
    float *la = probe_logits(a), *lb = probe_logits(b);
    assert_true(max_diff(la, lb, (size_t)PROBE_N * a->n_vocab) <= 1e-5);
    char path[128];
    pare_model *c = gguf_round_trip(b, path);
    float *lc = probe_logits(c);
    assert_true(max_diff(lb, lc, (size_t)PROBE_N * b->n_vocab) == 0);
    /* mean outputs on the dense inputs: P_masked mean(x) + bias == P_dense mean(x) */
    calib_runner *r;
    assert_int_equal(runner_new(ref, &cd, &r), PARE_OK);
    int checked = 0;
    for (int l = 0; l < ref->n_layer; l++) {
        unsigned want[FWD_N_POINTS] = {0};
        want[FWD_O_IN] = want[FWD_DOWN_IN] = STAT_SUM;
        calib_stats st[FWD_N_POINTS];
        memset(st, 0, sizeof st);
        assert_int_equal(runner_collect_advance(r, want, 0, st), PARE_OK);
        for (int part = 0; part < 2; part++) {
            const pare_tensor *wd = part ? ref->layers[l].w_down : ref->layers[l].wo;
            const pare_tensor *wm = part ? a->layers[l].w_down : a->layers[l].wo;
            const pare_tensor *bias = part ? a->layers[l].b_down : a->layers[l].b_o;
            const calib_stats *cs = &st[part ? FWD_DOWN_IN : FWD_O_IN];
            int D = (int)wd->ne[0];
            float *rd = malloc(sizeof(float) * D), *rm = malloc(sizeof(float) * D);
            double worst = 0, scale = 0;
            for (int64_t e = 0; e < wd->ne[1]; e++) {
                pare_tensor_row_f32(wd, e, rd);
                pare_tensor_row_f32(wm, e, rm);
                double yd = 0, ym = bias ? ((const float *)bias->data)[e] : 0;
                for (int j = 0; j < D; j++) {
                    double mean = cs->sum[j] / (double)cs->ntok;
                    yd += rd[j] * mean; ym += rm[j] * mean;
                }
                if (fabs(yd - ym) > worst) worst = fabs(yd - ym);
                if (fabs(yd) > scale) scale = fabs(yd);
            }
            assert_true(worst <= 1e-5 * (scale > 1 ? scale : 1));
            checked += bias != NULL;
            free(rd); free(rm);
        }
        for (int q = 0; q < FWD_N_POINTS; q++) calib_stats_free(&st[q]);
    }
    assert_int_equal(checked, nbias);
    runner_free(r);
    tnet_f *n = NULL;
    assert_int_equal(tnet_new_f(b, &n), PARE_ERR_UNSUPPORTED);
    assert_null(n);
    round_trip_clean(path);
    free(la); free(lb); free(lc);
    pare_model_free(ref); pare_model_free(a); pare_model_free(b); pare_model_free(c);
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
        cmocka_unit_test(test_collect_advance), /* it draws from the shared generator: before the Taylor tests */
        cmocka_unit_test(test_taylor_hand),
        cmocka_unit_test(test_taylor_zero_channel),
        cmocka_unit_test(test_taylor_zero_ratio),
        cmocka_unit_test(test_flap_bias),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
