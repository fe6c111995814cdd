/* test_prune.c - one-shot unstructured and N:M pruning (METHODS.md 0.4, 1, 2, 3, 6) against
 * independent computations written here straight from METHODS.md:
 *   masks: mask_nm keeps exactly N of every M (ties: the lower column is pruned first),
 *     mask_rows / mask_matrix equal a brute force (ties included);
 *   magnitude and Wanda equal brute-force masks (per-matrix threshold t = sorted|W|[floor(s n)]
 *     with |W| <= t zeroed; per-row floor(s d_in) lowest |W| sqrt(a); per N:M group), Wanda's
 *     toy example of 2(e), X scaled by c > 0 leaves the mask unchanged, equal column norms give
 *     per-row magnitude pruning;
 *   SparseGPT equals the slow reference of 3(e) (K = (H_FF)^-1 recomputed for every column,
 *     same damping, masks chosen lazily on the current weights with W^2 / [(H_FF)^-1]_jj, the
 *     diagonal U_jj^2 of the Cholesky version), its calibration error is below that of the same
 *     mask without updates, H = I gives no updates;
 *   E-Sparse: histogram entropy (0 for a constant channel, ln K for an even spread, the
 *     runner's bins equal a brute-force binning), the scores |W|(nu + beta H) / |W| nu H, the
 *     global naive shuffle's round-robin, LBS stays in its blocks, never lowers the kept score R
 *     and ends in a local optimum, exactly N per permuted group, perm a bijection, without the
 *     entropy and shuffles bit-identical to Wanda, invariant to scaling;
 *   model level: folding a channel permutation into gate/up rows and down columns (what the
 *     driver does with E-Sparse's down-input permutation) leaves the dense logits unchanged,
 *     a recorded perm_attn / perm_o is metadata the dense engine ignores; prune_model with each
 *     method equals a pipeline rebuilt here from the library's pieces (METHODS.md 0.2) bit for
 *     bit, every pruned tensor is exactly 2:4 (E-Sparse: in its permuted order), the report's
 *     zero counts are the tensors'. Synthetic models only; no data files needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "model/synth.h"
#include "prune/prune.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- small helpers ----------------------------------------------------------------------- */
static uint64_t g_rng = 0x9a3e5eedull;
static double urand(void) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}
static double nrand(void) {
    double u = urand() + 1e-300, v = urand();
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}
static void fill_normal(float *w, int64_t n, double scale) {
    for (int64_t i = 0; i < n; i++) {
        double v;
        do v = nrand() * scale; while (v == 0);
        w[i] = (float)v;
    }
}
static void random_perm(int32_t *p, int64_t n) {
    for (int64_t i = 0; i < n; i++) p[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(urand() * (double)(i + 1));
        int32_t t = p[i]; p[i] = p[j]; p[j] = t;
    }
}
static int is_bijection(const int32_t *p, int64_t n) {
    uint8_t *seen = calloc((size_t)n, 1);
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        if (p[i] < 0 || p[i] >= n || seen[p[i]]) ok = 0;
        else seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}
static int is_identity(const int32_t *p, int64_t n) {
    for (int64_t i = 0; i < n; i++) if (p[i] != i) return 0;
    return 1;
}
static int64_t count_zeros(const float *w, int64_t n) {
    int64_t z = 0;
    for (int64_t i = 0; i < n; i++) z += w[i] == 0;
    return z;
}

/* ---- brute-force masks (1 = keep), straight from METHODS.md -------------------------------- */
/* idx[0..n) in the order of (S ascending, index ascending): a stable insertion sort */
static void stable_order(const double *S, int64_t *idx, int64_t n) {
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    for (int64_t i = 1; i < n; i++) {
        int64_t v = idx[i], j = i;
        while (j > 0 && S[idx[j - 1]] > S[v]) { idx[j] = idx[j - 1]; j--; }
        idx[j] = v;
    }
}
/* N:M (0.4): per row, per group of m columns from column 0, zero the m - n lowest; ties: the
 * lower column first */
static void ref_nm(const double *S, int64_t rows, int64_t cols, int n, int m, uint8_t *keep) {
    double s[16];
    int64_t idx[16];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < cols; g += m) {
            for (int k = 0; k < m; k++) s[k] = S[r * cols + g + k];
            stable_order(s, idx, m);
            for (int k = 0; k < m; k++) keep[r * cols + g + idx[k]] = k >= m - n;
        }
}
/* Wanda (2 a.3): per row, stable ascending, zero the first floor(cols s) */
static void ref_rows(const double *S, int64_t rows, int64_t cols, float s, uint8_t *keep) {
    int64_t nz = (int64_t)floor((double)cols * (double)s);
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)cols);
    for (int64_t r = 0; r < rows; r++) {
        stable_order(S + r * cols, idx, cols);
        for (int64_t k = 0; k < cols; k++) keep[r * cols + idx[k]] = k >= nz;
    }
    free(idx);
}
static int dcmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
/* magnitude (1 a): t = sorted(S)[floor(s n)], zero every S <= t */
static void ref_matrix(const double *S, int64_t n, double s, uint8_t *keep) {
    double *c = malloc(sizeof(double) * (size_t)n);
    memcpy(c, S, sizeof(double) * (size_t)n);
    qsort(c, (size_t)n, sizeof(double), dcmp);
    int64_t k = (int64_t)floor((double)n * s);
    double t = c[k < n ? k : n - 1];
    for (int64_t i = 0; i < n; i++) keep[i] = !(S[i] <= t);
    free(c);
}
/* W with the mask applied, as floats */
static void apply_ref(const float *W, const uint8_t *keep, int64_t n, float *out) {
    for (int64_t i = 0; i < n; i++) out[i] = keep[i] ? W[i] : 0.0f;
}
static int same_zeros(const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) if ((a[i] == 0) != (b[i] == 0)) return 0;
    return 1;
}
/* groups (taken in the order perm, NULL: natural) of a row that do not hold exactly n nonzeros */
static int64_t nm_violations(const float *W, int64_t rows, int64_t cols, int n, int m, const int32_t *perm) {
    int64_t bad = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < cols; g += m) {
            int nz = 0;
            for (int k = 0; k < m; k++) nz += W[r * cols + (perm ? perm[g + k] : g + k)] != 0;
            bad += nz != n;
        }
    return bad;
}

/* ---- 1. mask_nm, mask_rows, mask_matrix ---------------------------------------------------- */
static void test_mask_nm(void **state) {
    (void)state;
    static const int pat[][2] = {{2, 4}, {4, 8}, {3, 16}, {1, 4}, {3, 4}, {1, 16}, {15, 16}, {5, 8}};
    enum { ROWS = 5, MAXC = 16 * 6 };
    float S[ROWS * MAXC];
    double Sd[ROWS * MAXC];
    uint8_t keep[ROWS * MAXC], ref[ROWS * MAXC];
    for (size_t p = 0; p < sizeof pat / sizeof pat[0]; p++) {
        int n = pat[p][0], m = pat[p][1];
        int64_t cols = (int64_t)m * 6, tot = ROWS * cols;
        for (int trial = 0; trial < 3; trial++) {
            /* 0: continuous; 1: three values (many ties); 2: all equal */
            for (int64_t i = 0; i < tot; i++)
                S[i] = trial == 0 ? (float)urand() : trial == 1 ? (float)(int)(urand() * 3) : 0.5f;
            for (int64_t i = 0; i < tot; i++) Sd[i] = S[i];
            memset(keep, 7, sizeof keep);
            mask_nm(S, ROWS, cols, n, m, keep);
            ref_nm(Sd, ROWS, cols, n, m, ref);
            assert_memory_equal(keep, ref, (size_t)tot);
            for (int64_t r = 0; r < ROWS; r++)
                for (int64_t g = 0; g < cols; g += m) {
                    int kept = 0;
                    float lo_kept = INFINITY, hi_pruned = -INFINITY;
                    for (int k = 0; k < m; k++) {
                        int64_t i = r * cols + g + k;
                        assert_true(keep[i] == 0 || keep[i] == 1);
                        kept += keep[i];
                        if (keep[i] && S[i] < lo_kept) lo_kept = S[i];
                        if (!keep[i] && S[i] > hi_pruned) hi_pruned = S[i];
                    }
                    assert_int_equal(kept, n);
                    assert_true(lo_kept >= hi_pruned);
                    /* documented tie rule: with all scores equal the last n columns are kept */
                    if (trial == 2)
                        for (int k = 0; k < m; k++) assert_int_equal(keep[r * cols + g + k], k >= m - n);
                }
        }
    }
    /* mask_rows: stable (lower column pruned first on ties) */
    static const float sp[] = {0.5f, 0.25f, 0.3f, 0.75f, 0.9f};
    for (size_t q = 0; q < sizeof sp / sizeof sp[0]; q++)
        for (int trial = 0; trial < 3; trial++) {
            int64_t cols = 40, tot = ROWS * cols;
            for (int64_t i = 0; i < tot; i++)
                S[i] = trial == 0 ? (float)urand() : trial == 1 ? (float)(int)(urand() * 4) : 2.0f;
            for (int64_t i = 0; i < tot; i++) Sd[i] = S[i];
            mask_rows(S, ROWS, cols, sp[q], keep);
            ref_rows(Sd, ROWS, cols, sp[q], ref);
            assert_memory_equal(keep, ref, (size_t)tot);
            int64_t nz = (int64_t)floor(40.0 * sp[q]);
            for (int64_t r = 0; r < ROWS; r++) {
                int64_t z = 0;
                for (int64_t j = 0; j < cols; j++) z += !keep[r * cols + j];
                assert_int_equal(z, nz);
                if (trial == 2)
                    for (int64_t j = 0; j < cols; j++) assert_int_equal(keep[r * cols + j], j >= nz);
            }
        }
    /* mask_matrix: S <= t prunes every tie of the threshold */
    for (size_t q = 0; q < sizeof sp / sizeof sp[0]; q++)
        for (int trial = 0; trial < 3; trial++) {
            int64_t cols = 24, tot = ROWS * cols;
            for (int64_t i = 0; i < tot; i++)
                S[i] = trial == 0 ? (float)urand() : trial == 1 ? (float)(int)(urand() * 5) : 1.0f;
            for (int64_t i = 0; i < tot; i++) Sd[i] = S[i];
            mask_matrix(S, ROWS, cols, sp[q], keep);
            ref_matrix(Sd, tot, sp[q], ref);
            assert_memory_equal(keep, ref, (size_t)tot);
            int64_t z = 0;
            for (int64_t i = 0; i < tot; i++) z += !keep[i];
            assert_true(z >= (int64_t)floor((double)tot * sp[q]));
            if (trial == 0) assert_int_equal(z, (int64_t)floor((double)tot * sp[q]) + 1); /* no ties: k + 1 */
            if (trial == 2) assert_int_equal(z, tot);                                    /* all tie t */
        }
}

/* ---- 2. magnitude and Wanda ---------------------------------------------------------------- */
static void test_magnitude_brute(void **state) {
    (void)state;
    enum { R = 9, C = 32, NN = R * C };
    float W[NN], V[NN], E[NN];
    double S[NN];
    uint8_t keep[NN];
    static const float sp[] = {0.5f, 0.25f, 0.7f, 0.9f};
    static const int pat[][2] = {{2, 4}, {4, 8}, {3, 16}, {1, 4}};
    for (int trial = 0; trial < 3; trial++) {
        fill_normal(W, NN, 1);
        if (trial == 1) /* multiples of 1/8: many equal magnitudes, some exact zeros */
            for (int i = 0; i < NN; i++) W[i] = roundf(W[i] * 8) / 8;
        for (int i = 0; i < NN; i++) S[i] = fabs((double)W[i]);
        prune_opts o;
        prune_opts_default(&o);
        o.method = PRUNE_MAGNITUDE;
        for (size_t q = 0; q < sizeof sp / sizeof sp[0]; q++) {
            o.sparsity = sp[q]; o.nm_m = 0;
            memcpy(V, W, sizeof W);
            prune_magnitude(V, R, C, &o);
            ref_matrix(S, NN, sp[q], keep);
            apply_ref(W, keep, NN, E);
            assert_memory_equal(V, E, sizeof V);
            int64_t z = count_zeros(V, NN), k = (int64_t)floor((double)NN * sp[q]);
            assert_true(z > k); /* [s, s + ties / numel]: the threshold itself is zeroed too */
            if (trial == 0) assert_int_equal(z, k + 1);
        }
        for (size_t q = 0; q < sizeof pat / sizeof pat[0]; q++) {
            o.nm_n = pat[q][0]; o.nm_m = pat[q][1];
            memcpy(V, W, sizeof W);
            prune_magnitude(V, R, C, &o);
            ref_nm(S, R, C, o.nm_n, o.nm_m, keep);
            apply_ref(W, keep, NN, E);
            assert_memory_equal(V, E, sizeof V);
            if (trial != 1) assert_int_equal(nm_violations(V, R, C, o.nm_n, o.nm_m, NULL), 0);
        }
    }
}

/* METHODS.md 2(e): W = [[1,-2,3,0.5],[4,1,-1,2]], ||X_j|| = [1,1,0.1,4], s = 0.5 */
static void test_wanda_toy(void **state) {
    (void)state;
    const float W0[8] = {1, -2, 3, 0.5f, 4, 1, -1, 2};
    const float want[8] = {0, -2, 0, 0.5f, 4, 0, 0, 2}; /* row 0 zeros {2, 0}, row 1 zeros {2, 1} */
    const double sumsq[4] = {1, 1, 0.01, 16};
    float W[8];
    prune_opts o;
    prune_opts_default(&o);
    o.method = PRUNE_WANDA; o.sparsity = 0.5f;
    memcpy(W, W0, sizeof W);
    prune_wanda(W, 2, 4, sumsq, &o);
    assert_memory_equal(W, want, sizeof W);
    /* the same as 2:4 (one group per row), and as E-Sparse without entropy and shuffles */
    o.nm_n = 2; o.nm_m = 4;
    memcpy(W, W0, sizeof W);
    prune_wanda(W, 2, 4, sumsq, &o);
    assert_memory_equal(W, want, sizeof W);
    calib_stats st;
    memset(&st, 0, sizeof st);
    st.width = 4; st.sumsq = (double *)sumsq;
    o.method = PRUNE_ESPARSE; o.es_entropy = 0; o.es_gns = 0; o.es_lbs = 0;
    memcpy(W, W0, sizeof W);
    float *wp = W;
    int64_t rows = 2;
    int32_t perm[4];
    assert_int_equal(esparse_prune_input(&wp, &rows, 1, 4, &st, &o, perm), PARE_OK);
    assert_memory_equal(W, want, sizeof W);
    assert_true(is_identity(perm, 4));
    /* X scaled by c > 0 */
    double s2[4];
    o.method = PRUNE_WANDA; o.nm_m = 0;
    for (int k = 0; k < 4; k++) s2[k] = sumsq[k] * 49;
    memcpy(W, W0, sizeof W);
    prune_wanda(W, 2, 4, s2, &o);
    assert_memory_equal(W, want, sizeof W);
}

static void test_wanda_brute(void **state) {
    (void)state;
    enum { R = 6, C = 48, NN = R * C };
    float W[NN], V[NN], E[NN], base[NN];
    double S[NN], sumsq[C], s2[C];
    uint8_t keep[NN];
    static const float sp[] = {0.5f, 0.3f, 0.75f, 0.1f};
    static const int pat[][2] = {{2, 4}, {4, 8}, {3, 16}, {1, 4}, {5, 16}};
    static const double scales[] = {3, 0.01, 1024, 0.7};
    prune_opts o;
    prune_opts_default(&o);
    o.method = PRUNE_WANDA;
    for (int trial = 0; trial < 3; trial++) {
        fill_normal(W, NN, 0.05);
        for (int j = 0; j < C; j++) { /* channels of very different norms, a few outliers */
            double a = 0.1 + 3 * urand();
            if (j % 11 == 3) a *= 40;
            sumsq[j] = a * a * 256;
        }
        for (int r = 0; r < R; r++)
            for (int j = 0; j < C; j++) S[r * C + j] = fabs((double)W[r * C + j]) * sqrt(sumsq[j]);
        for (int pi = -1; pi < (int)(sizeof pat / sizeof pat[0]); pi++) {
            /* pi < 0: the unstructured sparsities; else an N:M pattern */
            int nsp = pi < 0 ? (int)(sizeof sp / sizeof sp[0]) : 1;
            for (int q = 0; q < nsp; q++) {
                if (pi < 0) { o.nm_m = 0; o.sparsity = sp[q]; }
                else { o.nm_n = pat[pi][0]; o.nm_m = pat[pi][1]; }
                memcpy(V, W, sizeof W);
                prune_wanda(V, R, C, sumsq, &o);
                if (pi < 0) ref_rows(S, R, C, sp[q], keep);
                else ref_nm(S, R, C, o.nm_n, o.nm_m, keep);
                apply_ref(W, keep, NN, E);
                assert_memory_equal(V, E, sizeof V);
                if (pi < 0) {
                    for (int r = 0; r < R; r++)
                        assert_int_equal(count_zeros(V + r * C, C), (int64_t)floor(C * (double)sp[q]));
                } else {
                    assert_int_equal(nm_violations(V, R, C, o.nm_n, o.nm_m, NULL), 0);
                }
                /* X scaled by c > 0 (sumsq by c^2): the same mask */
                memcpy(base, V, sizeof V);
                for (size_t c = 0; c < sizeof scales / sizeof scales[0]; c++) {
                    for (int j = 0; j < C; j++) s2[j] = sumsq[j] * scales[c] * scales[c];
                    memcpy(V, W, sizeof W);
                    prune_wanda(V, R, C, s2, &o);
                    assert_memory_equal(V, base, sizeof V);
                }
                /* equal column norms: per-row magnitude pruning */
                for (int j = 0; j < C; j++) s2[j] = 7.3;
                double A[NN];
                for (int i = 0; i < NN; i++) A[i] = fabs((double)W[i]);
                if (pi < 0) ref_rows(A, R, C, sp[q], keep);
                else ref_nm(A, R, C, o.nm_n, o.nm_m, keep);
                apply_ref(W, keep, NN, E);
                memcpy(V, W, sizeof W);
                prune_wanda(V, R, C, s2, &o);
                assert_memory_equal(V, E, sizeof V);
            }
        }
    }
}

/* ---- 3. SparseGPT -------------------------------------------------------------------------- */
/* inverse of the SPD matrix A (n x n) by Gauss-Jordan with partial pivoting, in double */
static void inv_gj(const double *A, int n, double *X) {
    double *a = malloc(sizeof(double) * (size_t)n * n);
    memcpy(a, A, sizeof(double) * (size_t)n * n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) X[i * n + j] = i == j;
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++) if (fabs(a[r * n + c]) > fabs(a[p * n + c])) p = r;
        if (p != c)
            for (int j = 0; j < n; j++) {
                double t = a[c * n + j]; a[c * n + j] = a[p * n + j]; a[p * n + j] = t;
                t = X[c * n + j]; X[c * n + j] = X[p * n + j]; X[p * n + j] = t;
            }
        double d = a[c * n + c];
        for (int j = 0; j < n; j++) { a[c * n + j] /= d; X[c * n + j] /= d; }
        for (int r = 0; r < n; r++) {
            if (r == c) continue;
            double f = a[r * n + c];
            if (f == 0) continue;
            for (int j = 0; j < n; j++) { a[r * n + j] -= f * a[c * n + j]; X[r * n + j] -= f * X[c * n + j]; }
        }
    }
    free(a);
}
/* K = (H_FF)^-1 for F = {p, ..., n-1} (m = n - p) */
static void inv_trailing(const double *H, int n, int p, double *K) {
    int m = n - p;
    double *h = malloc(sizeof(double) * (size_t)m * m);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) h[i * m + j] = H[(size_t)(p + i) * n + p + j];
    inv_gj(h, m, K);
    free(h);
}

/* The slow reference of METHODS.md 3(e) with the implementation's H (2/N G, dead inputs,
 * damping percdamp mean diag) and mask rule: for every column p in order K = (H_FF)^-1 over the
 * not-yet-processed columns F = {p..}, err = (w_p - q_p)/K_pp, W_F -= err K_{p,F}. Masks are
 * chosen on the current weights with W_ij^2 / d_j, d_j = [(H_{F_j F_j})^-1]_jj = U_jj^2 (the
 * Cholesky version's diagonal): unstructured per column block of width B at its first column
 * (threshold sorted(r_block)[floor(s rows B)], r <= thr pruned), N:M per group at its first
 * column. Wr gets the result (double), prune the mask (1 = pruned). */
static void ref_sparsegpt(const float *W0, int rows, int n, const double *G, int64_t ntok, const prune_opts *o,
                          double *Wr, uint8_t *prune) {
    double *H = malloc(sizeof(double) * (size_t)n * n), *K = malloc(sizeof(double) * (size_t)n * n);
    double *d = malloc(sizeof(double) * (size_t)n), *r = malloc(sizeof(double) * (size_t)rows * n);
    uint8_t *kp = malloc((size_t)rows * n);
    for (int i = 0; i < rows * n; i++) Wr[i] = W0[i];
    double mean = 0;
    for (int i = 0; i < n * n; i++) H[i] = G[i] * 2.0 / (double)ntok;
    for (int j = 0; j < n; j++) {
        if (H[j * n + j] == 0) {
            H[j * n + j] = 1;
            for (int i = 0; i < rows; i++) Wr[i * n + j] = 0;
        }
        mean += H[j * n + j];
    }
    mean /= n;
    for (int j = 0; j < n; j++) H[j * n + j] += (double)o->percdamp * mean;
    for (int j = 0; j < n; j++) { inv_trailing(H, n, j, K); d[j] = K[0]; }
    int M = o->nm_m, B = o->blocksize;
    if (M) B = B / M * M > 0 ? B / M * M : M;
    memset(prune, 0, (size_t)rows * n);
    for (int p = 0; p < n; p++) {
        if (!M && p % B == 0) {
            int cnt = p + B < n ? B : n - p;
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cnt; j++) r[i * cnt + j] = Wr[i * n + p + j] * Wr[i * n + p + j] / d[p + j];
            ref_matrix(r, (int64_t)rows * cnt, o->sparsity, kp);
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cnt; j++) prune[i * n + p + j] = !kp[i * cnt + j];
        }
        if (M && p % M == 0) {
            for (int i = 0; i < rows; i++)
                for (int k = 0; k < M; k++) r[i * M + k] = Wr[i * n + p + k] * Wr[i * n + p + k] / d[p + k];
            ref_nm(r, rows, M, o->nm_n, M, kp);
            for (int i = 0; i < rows; i++)
                for (int k = 0; k < M; k++) prune[i * n + p + k] = !kp[i * M + k];
        }
        inv_trailing(H, n, p, K);
        int m = n - p;
        for (int i = 0; i < rows; i++) {
            double w = Wr[i * n + p], q = prune[i * n + p] ? 0 : w, err = (w - q) / K[0];
            for (int f = 0; f < m; f++) Wr[i * n + p + f] -= err * K[f];
            Wr[i * n + p] = q;
        }
    }
    free(H); free(K); free(d); free(r); free(kp);
}

/* X (T x D): columns of different scales, each correlated with its left neighbour */
static void random_inputs(int T, int D, double *X, double *G, int dead) {
    for (int t = 0; t < T; t++)
        for (int j = 0; j < D; j++) {
            double v = nrand() * (1 + j % 3);
            if (j % 4) v += 0.8 * X[(size_t)t * D + j - 1];
            X[(size_t)t * D + j] = j == dead ? 0 : v;
        }
    for (int a = 0; a < D; a++)
        for (int b = 0; b < D; b++) {
            double s = 0;
            for (int t = 0; t < T; t++) s += X[(size_t)t * D + a] * X[(size_t)t * D + b];
            G[(size_t)a * D + b] = s;
        }
}

/* sum over rows of (W - V) G (W - V)^T = ||W X^T - V X^T||^2 */
static double calib_err(const float *W, const double *V, int rows, int D, const double *G) {
    double s = 0;
    for (int i = 0; i < rows; i++)
        for (int a = 0; a < D; a++) {
            double da = W[i * D + a] - V[i * D + a];
            if (da == 0) continue;
            for (int b = 0; b < D; b++) s += da * G[(size_t)a * D + b] * (W[i * D + b] - V[i * D + b]);
        }
    return s;
}

static void test_sparsegpt_slow_reference(void **state) {
    (void)state;
    enum { R = 8, D = 32, T = 256 };
    static double X[T * D], G[D * D];
    float W[R * D], Wi[R * D];
    double Wr[R * D], Wm[R * D];
    uint8_t pr[R * D];
    struct { int n, m, B, dead; float s, damp; } cf[] = {
        {0, 0, 8, -1, 0.5f, 0.01f}, {2, 4, 8, -1, 0, 0.01f}, {4, 8, 8, -1, 0, 0.01f}, {1, 4, 8, -1, 0, 0.01f},
        {0, 0, 12, -1, 0.5f, 0.01f}, {0, 0, 8, -1, 0.25f, 0.05f}, {0, 0, 8, 5, 0.5f, 0.01f}, {2, 4, 8, 6, 0, 0.01f},
        {3, 16, 8, -1, 0, 0.01f}, {2, 4, 128, -1, 0, 0.01f},
    };
    for (size_t c = 0; c < sizeof cf / sizeof cf[0]; c++) {
        random_inputs(T, D, X, G, cf[c].dead);
        fill_normal(W, R * D, 1);
        prune_opts o;
        prune_opts_default(&o);
        o.method = PRUNE_SPARSEGPT; o.sparsity = cf[c].s; o.nm_n = cf[c].n; o.nm_m = cf[c].m;
        o.blocksize = cf[c].B; o.percdamp = cf[c].damp;
        memcpy(Wi, W, sizeof W);
        assert_int_equal(prune_sparsegpt(Wi, R, D, G, T, &o), PARE_OK);
        ref_sparsegpt(W, R, D, G, T, &o, Wr, pr);
        double num = 0, den = 0, upd = 0;
        for (int i = 0; i < R * D; i++) {
            /* the same entries are zero: the masks agree */
            assert_int_equal(Wi[i] == 0, Wr[i] == 0);
            assert_int_equal(pr[i] || (cf[c].dead >= 0 && i % D == cf[c].dead), Wr[i] == 0);
            num += (Wi[i] - Wr[i]) * (Wi[i] - Wr[i]);
            den += Wr[i] * Wr[i];
            double wm = Wr[i] == 0 ? 0 : W[i];
            upd += (Wr[i] - wm) * (Wr[i] - wm);
        }
        double rel = sqrt(num / den), urel = sqrt(upd / den);
        print_message("sparsegpt %d:%d s=%.2f B=%d dead=%d: rel diff to slow reference %.2e (updates move W by %.2f)\n",
                      cf[c].n, cf[c].m, (double)cf[c].s, cf[c].B, cf[c].dead, rel, urel);
        assert_true(rel < 1e-4);
        assert_true(urel > 0.05); /* the updates are large: the comparison has power */
        if (cf[c].m) assert_int_equal(nm_violations(Wi, R, D, cf[c].n, cf[c].m, NULL), 0);
        else {
            int64_t z = count_zeros(Wi, R * D);
            assert_true(z >= (int64_t)floor(R * D * (double)cf[c].s));
        }
        /* calibration error below the same mask without updates */
        for (int i = 0; i < R * D; i++) Wm[i] = Wi[i] == 0 ? 0 : W[i];
        double Wd[R * D];
        for (int i = 0; i < R * D; i++) Wd[i] = Wi[i];
        double e_s = calib_err(W, Wd, R, D, G), e_m = calib_err(W, Wm, R, D, G);
        print_message("  calibration error %.4g vs %.4g for the mask alone (ratio %.3f)\n", e_s, e_m, e_s / e_m);
        assert_true(e_s <= e_m);
    }
}

/* larger layers, several seeds: N:M counts and the calibration error bound; H = I */
static void test_sparsegpt_error_identity(void **state) {
    (void)state;
    enum { R = 16, D = 64, T = 512 };
    static double X[T * D], G[D * D], Wd[R * D], Wm[R * D], S[R * D];
    static float W[R * D], Wi[R * D], E[R * D];
    uint8_t keep[R * D], kb[R * 16];
    struct { int n, m; float s; } cf[] = {{0, 0, 0.5f}, {2, 4, 0}, {4, 8, 0}, {0, 0, 0.7f}};
    for (int seed = 0; seed < 3; seed++)
        for (size_t c = 0; c < sizeof cf / sizeof cf[0]; c++) {
            random_inputs(T, D, X, G, -1);
            fill_normal(W, R * D, 1);
            prune_opts o;
            prune_opts_default(&o);
            o.method = PRUNE_SPARSEGPT; o.sparsity = cf[c].s; o.nm_n = cf[c].n; o.nm_m = cf[c].m; o.blocksize = 16;
            memcpy(Wi, W, sizeof W);
            assert_int_equal(prune_sparsegpt(Wi, R, D, G, T, &o), PARE_OK);
            if (cf[c].m) assert_int_equal(nm_violations(Wi, R, D, cf[c].n, cf[c].m, NULL), 0);
            for (int i = 0; i < R * D; i++) { Wd[i] = Wi[i]; Wm[i] = Wi[i] == 0 ? 0 : W[i]; }
            double e_s = calib_err(W, Wd, R, D, G), e_m = calib_err(W, Wm, R, D, G);
            if (seed == 0) print_message("sparsegpt %d:%d s=%.1f 16x64: error ratio to the mask alone %.3f\n", cf[c].n, cf[c].m, (double)cf[c].s, e_s / e_m);
            assert_true(e_s <= e_m);
        }
    /* H = I (G = N/2 I): U is diagonal, no updates: the kept weights are W's bits and the mask
     * is magnitude's, per block of B columns (unstructured) or per N:M group */
    memset(G, 0, sizeof G);
    for (int j = 0; j < D; j++) G[j * D + j] = T / 2.0;
    static const float damps[] = {0.01f, 0.0f};
    for (size_t dd = 0; dd < 2; dd++)
        for (size_t c = 0; c < sizeof cf / sizeof cf[0]; c++) {
            fill_normal(W, R * D, 1);
            prune_opts o;
            prune_opts_default(&o);
            o.method = PRUNE_SPARSEGPT; o.sparsity = cf[c].s; o.nm_n = cf[c].n; o.nm_m = cf[c].m;
            o.blocksize = 16; o.percdamp = damps[dd];
            memcpy(Wi, W, sizeof W);
            assert_int_equal(prune_sparsegpt(Wi, R, D, G, T, &o), PARE_OK);
            for (int i = 0; i < R * D; i++) S[i] = fabs((double)W[i]);
            if (cf[c].m) {
                ref_nm(S, R, D, cf[c].n, cf[c].m, keep);
            } else {
                double blk[R * 16];
                for (int b0 = 0; b0 < D; b0 += 16) {
                    for (int i = 0; i < R; i++)
                        for (int j = 0; j < 16; j++) blk[i * 16 + j] = S[i * D + b0 + j];
                    ref_matrix(blk, R * 16, cf[c].s, kb);
                    for (int i = 0; i < R; i++)
                        for (int j = 0; j < 16; j++) keep[i * D + b0 + j] = kb[i * 16 + j];
                }
            }
            apply_ref(W, keep, R * D, E);
            assert_memory_equal(Wi, E, sizeof E);
        }
}

/* ---- 4. E-Sparse --------------------------------------------------------------------------- */
static void test_entropy(void **state) {
    (void)state;
    uint32_t h[128];
    memset(h, 0, sizeof h);
    assert_true(hist_entropy(h, 128) == 0);           /* empty */
    h[37] = 1000;
    assert_true(fabs(hist_entropy(h, 128)) < 1e-15);  /* constant channel */
    static const int Ks[] = {2, 7, 16, 128};
    for (size_t i = 0; i < sizeof Ks / sizeof Ks[0]; i++) {
        for (int k = 0; k < Ks[i]; k++) h[k] = 5;
        assert_true(fabs(hist_entropy(h, Ks[i]) - log((double)Ks[i])) < 1e-12);
    }
    memset(h, 0, sizeof h);
    h[0] = 3; h[5] = 1;
    assert_true(fabs(hist_entropy(h, 8) - (-(0.75 * log(0.75) + 0.25 * log(0.25)))) < 1e-12);
    /* any histogram: between 0 and ln K, and -sum p ln p */
    for (int t = 0; t < 20; t++) {
        double n = 0, e = 0;
        for (int k = 0; k < 16; k++) { h[k] = urand() < 0.3 ? 0 : (uint32_t)(urand() * 50); n += h[k]; }
        if (n == 0) continue;
        for (int k = 0; k < 16; k++) if (h[k]) e -= h[k] / n * log(h[k] / n);
        double got = hist_entropy(h, 16);
        assert_true(fabs(got - e) < 1e-12);
        assert_true(got >= 0 && got <= log(16.0) + 1e-12);
    }
}

/* calib_stats for E-Sparse (sumsq and K-bin histograms) of a synthetic input; the entropies
 * computed here go to Hc. Channels c % 8 == 0 are constant (one bin), c % 8 == 1 spread
 * evenly over the K bins, the others random; norms vary smoothly with c (neighbours similar). */
static void craft_stats(calib_stats *st, int cols, int K, double *Hc) {
    memset(st, 0, sizeof *st);
    st->width = cols; st->K = K; st->ntok = 64;
    st->sumsq = calloc((size_t)cols, sizeof(double));
    st->hist = calloc((size_t)cols * K, sizeof(uint32_t));
    for (int c = 0; c < cols; c++) {
        double a = 0.3 + 2 * (0.5 + 0.5 * sin(c * 0.35)) + 0.3 * urand();
        if (c % 13 == 5) a *= 8;
        st->sumsq[c] = a * a * 64;
        uint32_t *h = st->hist + (size_t)c * K;
        if (c % 8 == 0) h[(c / 8) % K] = 64;
        else if (c % 8 == 1) for (int k = 0; k < K; k++) h[k] = 4;
        else for (int k = 0; k < K; k++) h[k] = urand() < 0.4 ? 0 : (uint32_t)(1 + urand() * 9);
        double n = 0, e = 0;
        for (int k = 0; k < K; k++) n += h[k];
        for (int k = 0; k < K; k++) if (h[k]) e -= h[k] / n * log(h[k] / n);
        Hc[c] = n > 0 ? e : 0;
    }
}
static void free_stats(calib_stats *st) { free(st->sumsq); free(st->hist); memset(st, 0, sizeof *st); }

/* E-Sparse's element scores S_ic = |W_ic| coef_c for the stacked rows, coef per 6(a).3 */
static void es_scores(float *const *W, const int64_t *rows, int nW, int cols, const calib_stats *st, const double *Hc,
                      int combine, double beta, double *S) {
    double mnu = 0, mh = 0;
    for (int c = 0; c < cols; c++) { mnu += sqrt(st->sumsq[c]); mh += Hc[c]; }
    if (beta < 0) beta = mh > 0 ? mnu / mh : 0;
    int64_t r0 = 0;
    for (int k = 0; k < nW; k++) {
        for (int64_t r = 0; r < rows[k]; r++)
            for (int c = 0; c < cols; c++) {
                double nu = sqrt(st->sumsq[c]), coef = combine ? nu * Hc[c] : nu + beta * Hc[c];
                S[(r0 + r) * cols + c] = fabs((double)W[k][r * cols + c]) * coef;
            }
        r0 += rows[k];
    }
}
/* R = sum over rows and groups (in the order perm) of the n largest S */
static double kept_score(const double *S, int64_t rows, int cols, int n, int m, const int32_t *perm) {
    double R = 0, v[16];
    int64_t idx[16];
    for (int64_t r = 0; r < rows; r++)
        for (int g = 0; g < cols; g += m) {
            for (int k = 0; k < m; k++) v[k] = S[r * cols + perm[g + k]];
            stable_order(v, idx, m);
            for (int k = m - n; k < m; k++) R += v[idx[k]];
        }
    return R;
}
/* the reference mask of E-Sparse given perm: N:M on the permuted scores, back to natural order */
static void es_ref_mask(const double *S, int64_t rows, int cols, int n, int m, const int32_t *perm, uint8_t *keep) {
    double *P = malloc(sizeof(double) * (size_t)rows * cols);
    uint8_t *kp = malloc((size_t)rows * cols);
    for (int64_t r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) P[r * cols + k] = S[r * cols + perm[k]];
    ref_nm(P, rows, cols, n, m, kp);
    for (int64_t r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) keep[r * cols + perm[k]] = kp[r * cols + k];
    free(P); free(kp);
}

/* scores from crafted statistics: add (fixed and default beta) and mul, no shuffle */
static void test_esparse_scores(void **state) {
    (void)state;
    enum { C = 32, K = 16, R0 = 5, R1 = 7, RR = R0 + R1 };
    calib_stats st;
    double Hc[C], S[RR * C];
    float W0[RR * C], W[RR * C], E[RR * C];
    uint8_t keep[RR * C];
    int32_t perm[C];
    craft_stats(&st, C, K, Hc);
    for (int c = 0; c < C; c++) {
        if (c % 8 == 0) assert_true(Hc[c] == 0);
        if (c % 8 == 1) assert_true(fabs(Hc[c] - log((double)K)) < 1e-12);
    }
    fill_normal(W0, RR * C, 0.05);
    float *Wp[2] = {W, W + R0 * C};
    int64_t rows[2] = {R0, R1};
    struct { int combine; float beta; int n, m; } cf[] = {
        {0, 0.7f, 2, 4}, {0, -1, 2, 4}, {1, -1, 2, 4}, {0, -1, 4, 8}, {1, -1, 4, 8}, {0, 3.0f, 1, 4}, {0, 0, 2, 4},
    };
    for (size_t q = 0; q < sizeof cf / sizeof cf[0]; q++) {
        prune_opts o;
        prune_opts_default(&o);
        o.method = PRUNE_ESPARSE; o.nm_n = cf[q].n; o.nm_m = cf[q].m; o.es_bins = K;
        o.es_combine = cf[q].combine; o.es_beta = cf[q].beta; o.es_gns = 0; o.es_lbs = 0;
        memcpy(W, W0, sizeof W);
        assert_int_equal(esparse_prune_input(Wp, rows, 2, C, &st, &o, perm), PARE_OK);
        assert_true(is_identity(perm, C));
        float *W0p[2] = {W0, W0 + R0 * C};
        es_scores(W0p, rows, 2, C, &st, Hc, cf[q].combine, cf[q].beta, S);
        ref_nm(S, RR, C, cf[q].n, cf[q].m, keep);
        apply_ref(W0, keep, RR * C, E);
        assert_memory_equal(W, E, sizeof W);
        assert_int_equal(nm_violations(W, RR, C, cf[q].n, cf[q].m, NULL), 0);
        if (cf[q].combine) /* mul: a constant channel (H = 0) scores 0 and is always pruned */
            for (int r = 0; r < RR; r++)
                for (int c = 0; c < C; c += 8) assert_true(W[r * C + c] == 0);
    }
    /* the entropy term changes the mask (so the checks above test it) */
    {
        prune_opts o;
        prune_opts_default(&o);
        o.method = PRUNE_ESPARSE; o.nm_n = 2; o.nm_m = 4; o.es_bins = K; o.es_gns = 0; o.es_lbs = 0;
        o.es_combine = 1;
        memcpy(W, W0, sizeof W);
        assert_int_equal(esparse_prune_input(Wp, rows, 2, C, &st, &o, perm), PARE_OK);
        memcpy(E, W0, sizeof E);
        o.es_entropy = 0;
        float *Ep[2] = {E, E + R0 * C};
        assert_int_equal(esparse_prune_input(Ep, rows, 2, C, &st, &o, perm), PARE_OK);
        assert_false(same_zeros(W, E, RR * C));
    }
    /* the entropy term needs histograms */
    {
        prune_opts o;
        prune_opts_default(&o);
        o.method = PRUNE_ESPARSE; o.nm_n = 2; o.nm_m = 4;
        uint32_t *h = st.hist;
        st.hist = NULL;
        memcpy(W, W0, sizeof W);
        assert_int_equal(esparse_prune_input(Wp, rows, 2, C, &st, &o, perm), PARE_ERR_ARG);
        st.hist = h;
    }
    free_stats(&st);
}

typedef struct { double s; int32_t c; } chan_s;
static int chan_s_desc(const void *a, const void *b) {
    const chan_s *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? 1 : -1;
    return x->c - y->c;
}

/* GNS, LBS, N per permuted group, bijection, scaling */
static void test_esparse_shuffles(void **state) {
    (void)state;
    enum { C = 64, K = 16, R0 = 6, R1 = 10, RR = R0 + R1 };
    static const int pat[][2] = {{2, 4}, {4, 8}, {1, 4}};
    calib_stats st;
    double Hc[C];
    static double S[RR * C];
    static float W0[RR * C], W[RR * C], E[RR * C];
    uint8_t keep[RR * C];
    int32_t pg[C], pl[C], pn[C], ps[C];
    for (size_t pi = 0; pi < sizeof pat / sizeof pat[0]; pi++) {
        int n = pat[pi][0], m = pat[pi][1], Gn = C / m;
        craft_stats(&st, C, K, Hc);
        fill_normal(W0, RR * C, 0.05);
        float *Wp[2] = {W, W + R0 * C};
        int64_t rows[2] = {R0, R1};
        prune_opts o;
        prune_opts_default(&o);
        o.method = PRUNE_ESPARSE; o.nm_n = n; o.nm_m = m; o.es_bins = K;
        o.es_lbs_block = 16; o.es_lbs_iters = 1000;
        float *W0p[2] = {W0, W0 + R0 * C};
        es_scores(W0p, rows, 2, C, &st, Hc, 0, -1, S);
        /* GNS alone: the round-robin of 6(a).4 on s_c = sum_i S_ic */
        o.es_gns = 1; o.es_lbs = 0;
        memcpy(W, W0, sizeof W);
        assert_int_equal(esparse_prune_input(Wp, rows, 2, C, &st, &o, pg), PARE_OK);
        assert_true(is_bijection(pg, C));
        chan_s ch[C];
        for (int c = 0; c < C; c++) {
            ch[c].c = c; ch[c].s = 0;
            for (int r = 0; r < RR; r++) ch[c].s += S[r * C + c];
        }
        qsort(ch, C, sizeof ch[0], chan_s_desc);
        int32_t rr[C];
        for (int rk = 0; rk < C; rk++) rr[(rk % Gn) * m + rk / Gn] = ch[rk].c;
        assert_memory_equal(pg, rr, sizeof rr);
        assert_int_equal(nm_violations(W, RR, C, n, m, pg), 0);
        es_ref_mask(S, RR, C, n, m, pg, keep);
        apply_ref(W0, keep, RR * C, E);
        assert_memory_equal(W, E, sizeof W);
        /* GNS + LBS */
        o.es_lbs = 1;
        memcpy(W, W0, sizeof W);
        assert_int_equal(esparse_prune_input(Wp, rows, 2, C, &st, &o, pl), PARE_OK);
        assert_true(is_bijection(pl, C));
        assert_int_equal(nm_violations(W, RR, C, n, m, pl), 0);
        es_ref_mask(S, RR, C, n, m, pl, keep);
        apply_ref(W0, keep, RR * C, E);
        assert_memory_equal(W, E, sizeof W);
        /* blocks of B = 16 channels (GNS order) keep their channel sets */
        for (int b0 = 0; b0 < C; b0 += 16)
            for (int i = b0; i < b0 + 16; i++) {
                int found = 0;
                for (int j = b0; j < b0 + 16; j++) found |= pl[i] == pg[j];
                assert_true(found);
            }
        double Rg = kept_score(S, RR, C, n, m, pg), Rl = kept_score(S, RR, C, n, m, pl);
        double Ri;
        int32_t id[C];
        for (int c = 0; c < C; c++) id[c] = c;
        Ri = kept_score(S, RR, C, n, m, id);
        print_message("esparse %d:%d: kept score R identity %.4f, GNS %.4f, GNS+LBS %.4f\n", n, m, Ri, Rg, Rl);
        assert_true(Rl >= Rg * (1 - 1e-7));
        assert_true(Rl > Rg); /* the greedy found at least one gain here */
        /* the kept score of the mask is R */
        double kept = 0;
        for (int i = 0; i < RR * C; i++) if (W[i] != 0) kept += S[i];
        assert_true(fabs(kept - Rl) <= 1e-9 * Rl);
        /* LBS ended in a local optimum: no swap of two channels of different groups of a block gains */
        for (int b0 = 0; b0 < C; b0 += 16)
            for (int i = b0; i < b0 + 16; i++)
                for (int j = i + 1; j < b0 + 16; j++) {
                    if (i / m == j / m) continue;
                    int32_t t[C];
                    memcpy(t, pl, sizeof t);
                    t[i] = pl[j]; t[j] = pl[i];
                    assert_true(kept_score(S, RR, C, n, m, t) <= Rl * (1 + 1e-6));
                }
        /* LBS alone (no GNS) never lowers R from the identity order */
        o.es_gns = 0;
        memcpy(W, W0, sizeof W);
        assert_int_equal(esparse_prune_input(Wp, rows, 2, C, &st, &o, pn), PARE_OK);
        assert_true(is_bijection(pn, C));
        assert_int_equal(nm_violations(W, RR, C, n, m, pn), 0);
        assert_true(kept_score(S, RR, C, n, m, pn) >= Ri * (1 - 1e-7));
        assert_true(kept_score(S, RR, C, n, m, pn) > Ri);
        /* scaling all scores by c > 0: W by c, X by c (sumsq by c^2): the same perm and mask */
        o.es_gns = 1;
        static const double wsc[] = {2, 3, 0.125, 1, 1.0 / 1048576};
        static const double xsc[] = {1, 1, 1, 0.5, 1};
        double *sq = st.sumsq, sq2[C];
        for (size_t s = 0; s < sizeof wsc / sizeof wsc[0]; s++) {
            for (int i = 0; i < RR * C; i++) W[i] = (float)(W0[i] * wsc[s]);
            for (int c = 0; c < C; c++) sq2[c] = sq[c] * xsc[s] * xsc[s];
            st.sumsq = sq2;
            assert_int_equal(esparse_prune_input(Wp, rows, 2, C, &st, &o, ps), PARE_OK);
            st.sumsq = sq;
            assert_memory_equal(ps, pl, sizeof ps);
            for (int i = 0; i < RR * C; i++) E[i] = (float)(W0[i] * wsc[s]);
            es_ref_mask(S, RR, C, n, m, pl, keep);
            for (int i = 0; i < RR * C; i++) if (!keep[i]) E[i] = 0;
            assert_memory_equal(W, E, sizeof W);
        }
        free_stats(&st);
    }
}

/* es_entropy = 0, no GNS, no LBS: bit-identical to Wanda (N:M and unstructured) */
static void test_esparse_is_wanda(void **state) {
    (void)state;
    enum { C = 48, R0 = 7, R1 = 5, RR = R0 + R1 };
    static const int pat[][2] = {{2, 4}, {4, 8}, {3, 16}, {1, 4}, {0, 0}};
    float W0[RR * C], W[RR * C], V[RR * C];
    double sumsq[C];
    for (int trial = 0; trial < 3; trial++) {
        fill_normal(W0, RR * C, 0.05);
        if (trial == 2) for (int i = 0; i < RR * C; i++) W0[i] = roundf(W0[i] * 64) / 64; /* ties */
        for (int c = 0; c < C; c++) { double a = 0.2 + 3 * urand(); sumsq[c] = a * a * 100; }
        for (size_t p = 0; p < sizeof pat / sizeof pat[0]; p++) {
            prune_opts o;
            prune_opts_default(&o);
            o.nm_n = pat[p][0]; o.nm_m = pat[p][1]; o.sparsity = 0.5f;
            o.method = PRUNE_WANDA;
            memcpy(V, W0, sizeof V);
            prune_wanda(V, R0, C, sumsq, &o);
            prune_wanda(V + R0 * C, R1, C, sumsq, &o);
            calib_stats st;
            memset(&st, 0, sizeof st);
            st.width = C; st.sumsq = sumsq;
            o.method = PRUNE_ESPARSE; o.es_entropy = 0; o.es_gns = 0; o.es_lbs = 0;
            memcpy(W, W0, sizeof W);
            float *Wp[2] = {W, W + R0 * C};
            int64_t rows[2] = {R0, R1};
            int32_t perm[C];
            assert_int_equal(esparse_prune_input(Wp, rows, 2, C, &st, &o, perm), PARE_OK);
            assert_true(is_identity(perm, C));
            assert_memory_equal(W, V, sizeof W);
        }
    }
}

/* ---- synthetic models ------------------------------------------------------------------------ */
static const synth_shape g_shape = {"t-prune", 64, 2, 4, 2, 128, 300, 64};

static pare_model *make_model(uint64_t seed) {
    pare_model *m;
    assert_int_equal(synth_model(&g_shape, PARE_TYPE_F32, seed, &m), PARE_OK);
    for (int i = 0; i < m->n_tensors; i++) { /* std 0.2: every block moves the logits visibly */
        pare_tensor *t = &m->tensors[i];
        if (t->n_dims < 2) continue;
        float *w = t->data;
        for (int64_t k = 0; k < pare_tensor_nelem(t); k++) w[k] *= 10;
    }
    return m;
}
static void random_calib(calib_data *cd, int n, int T, int vocab) {
    cd->n = n; cd->T = T; cd->n_text_tokens = (int64_t)n * T;
    cd->ids = malloc(sizeof(int32_t) * (size_t)n * T);
    for (int i = 0; i < n * T; i++) cd->ids[i] = 3 + (int32_t)(urand() * (vocab - 3));
}
static float *logits_of(const pare_model *m, const int32_t *tok, int n) {
    pare_ctx *c;
    assert_int_equal(pare_ctx_new(m, n, &c), PARE_OK);
    float *lg = malloc(sizeof(float) * (size_t)n * m->n_vocab);
    assert_int_equal(pare_forward(c, tok, n, 0, lg), PARE_OK);
    pare_ctx_free(c);
    return lg;
}
/* max |a - b| / max |a| */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
        if (fabs((double)a[i]) > s) s = fabs((double)a[i]);
    }
    return d / s;
}

enum { MQ, MK, MV, MO, MG, MU, MD, NMAT };
static const int g_point[NMAT] = {FWD_ATTN_IN, FWD_ATTN_IN, FWD_ATTN_IN, FWD_O_IN, FWD_FFN_IN, FWD_FFN_IN, FWD_DOWN_IN};
static pare_tensor *layer_mat(pare_layer *L, int k) {
    pare_tensor *t[NMAT] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
    return t[k];
}

/* Reorder FFN channels by perm (new channel i = old perm[i]): rows of gate and up, columns of
 * down (F channels, E = n_embd). */
static void fold_ffn(float *G, float *U, float *D, int64_t F, int64_t E, const int32_t *perm) {
    float *tmp = malloc(sizeof(float) * (size_t)F * E);
    float *mats[2] = {G, U};
    for (int k = 0; k < 2; k++) {
        for (int64_t i = 0; i < F; i++) memcpy(tmp + i * E, mats[k] + (int64_t)perm[i] * E, sizeof(float) * (size_t)E);
        memcpy(mats[k], tmp, sizeof(float) * (size_t)F * E);
    }
    for (int64_t r = 0; r < E; r++) {
        for (int64_t i = 0; i < F; i++) tmp[i] = D[r * F + perm[i]];
        memcpy(D + r * F, tmp, sizeof(float) * (size_t)F);
    }
    free(tmp);
}

/* The sequential pipeline of METHODS.md 0.2 rebuilt from the library's pieces (runner, the
 * per-matrix methods, esparse_prune_input per shared input, the down-input permutation folded
 * into gate/up rows and down columns). perms (n_layer x FWD_N_POINTS, esparse only) receive
 * the permutation chosen for every input, including gate/up's. F32 models only. */
static void ref_pipeline(pare_model *m, const calib_data *cd, const prune_opts *o, int32_t **perms) {
    calib_runner *r = NULL;
    if (o->method != PRUNE_MAGNITUDE) assert_int_equal(runner_new(m, cd, &r), PARE_OK);
    for (int l = 0; l < m->n_layer; l++) {
        pare_layer *L = &m->layers[l];
        float *W[NMAT];
        int64_t rows[NMAT], cols[NMAT];
        for (int k = 0; k < NMAT; k++) {
            pare_tensor *t = layer_mat(L, k);
            assert_int_equal(t->type, PARE_TYPE_F32);
            rows[k] = t->ne[1]; cols[k] = t->ne[0];
            W[k] = malloc(t->nbytes);
            memcpy(W[k], t->data, t->nbytes);
        }
        calib_stats st[FWD_N_POINTS];
        memset(st, 0, sizeof st);
        if (r) {
            unsigned want[FWD_N_POINTS];
            unsigned need = o->method == PRUNE_WANDA ? STAT_SUMSQ : o->method == PRUNE_SPARSEGPT ? STAT_GRAM : STAT_SUMSQ | STAT_MINMAX;
            for (int p = 0; p < FWD_N_POINTS; p++) want[p] = need;
            assert_int_equal(runner_collect(r, want, o->es_bins, st), PARE_OK);
            if (o->method == PRUNE_ESPARSE && o->es_entropy) {
                for (int p = 0; p < FWD_N_POINTS; p++) want[p] = STAT_HIST;
                assert_int_equal(runner_collect(r, want, o->es_bins, st), PARE_OK);
            }
        }
        if (o->method == PRUNE_ESPARSE) {
            static const int groups[FWD_N_POINTS][3] = {{MQ, MK, MV}, {MO, -1, -1}, {MG, MU, -1}, {MD, -1, -1}};
            for (int p = 0; p < FWD_N_POINTS; p++) {
                float *gw[3];
                int64_t gr[3];
                int nw = 0;
                for (int k = 0; k < 3; k++) if (groups[p][k] >= 0) { gw[nw] = W[groups[p][k]]; gr[nw++] = rows[groups[p][k]]; }
                int64_t c = cols[groups[p][0]];
                int32_t *perm = malloc(sizeof(int32_t) * (size_t)c);
                assert_int_equal(esparse_prune_input(gw, gr, nw, c, &st[p], o, perm), PARE_OK);
                if (p == FWD_DOWN_IN) fold_ffn(W[MG], W[MU], W[MD], rows[MG], cols[MG], perm);
                perms[l * FWD_N_POINTS + p] = perm;
            }
        } else {
            for (int k = 0; k < NMAT; k++) {
                const calib_stats *s = &st[g_point[k]];
                if (o->method == PRUNE_MAGNITUDE) prune_magnitude(W[k], rows[k], cols[k], o);
                else if (o->method == PRUNE_WANDA) prune_wanda(W[k], rows[k], cols[k], s->sumsq, o);
                else assert_int_equal(prune_sparsegpt(W[k], rows[k], cols[k], s->gram, s->ntok, o), PARE_OK);
            }
        }
        for (int k = 0; k < NMAT; k++) {
            pare_tensor *t = layer_mat(L, k);
            memcpy(t->data, W[k], t->nbytes);
            free(W[k]);
        }
        for (int p = 0; p < FWD_N_POINTS; p++) calib_stats_free(&st[p]);
        if (r) assert_int_equal(runner_advance(r), PARE_OK);
    }
    runner_free(r);
}

/* ---- 4b. the runner's histograms equal a brute-force binning of the captured inputs -------- */
typedef struct { float *buf[FWD_N_POINTS]; int64_t n[FWD_N_POINTS]; int width[FWD_N_POINTS]; } capture;
static void capture_hook(void *user, int layer, int point, const float *x, int n, int width) {
    (void)layer;
    capture *c = user;
    c->buf[point] = realloc(c->buf[point], sizeof(float) * (size_t)(c->n[point] + n) * width);
    memcpy(c->buf[point] + c->n[point] * width, x, sizeof(float) * (size_t)n * width);
    c->n[point] += n;
    c->width[point] = width;
}

static void test_hist_runner(void **state) {
    (void)state;
    pare_model *m = make_model(7);
    calib_data cd;
    random_calib(&cd, 3, 20, m->n_vocab);
    enum { K = 16 };
    calib_runner *r;
    assert_int_equal(runner_new(m, &cd, &r), PARE_OK);
    calib_stats st[FWD_N_POINTS];
    memset(st, 0, sizeof st);
    unsigned want[FWD_N_POINTS] = {STAT_SUMSQ | STAT_MINMAX, STAT_SUMSQ | STAT_MINMAX, STAT_SUMSQ | STAT_MINMAX, STAT_SUMSQ | STAT_MINMAX};
    assert_int_equal(runner_collect(r, want, K, st), PARE_OK);
    int64_t ntok1[FWD_N_POINTS];
    for (int p = 0; p < FWD_N_POINTS; p++) ntok1[p] = st[p].ntok;
    for (int p = 0; p < FWD_N_POINTS; p++) want[p] = STAT_HIST;
    assert_int_equal(runner_collect(r, want, K, st), PARE_OK);
    runner_free(r);
    /* note: the histogram pass adds its tokens to ntok a second time (calib.c collect_hook
     * counts every pass); E-Sparse does not read ntok */
    print_message("ntok after the min/max pass %lld, after the histogram pass %lld\n", (long long)ntok1[0], (long long)st[0].ntok);
    /* block 0's inputs captured independently */
    capture cap;
    memset(&cap, 0, sizeof cap);
    pare_ctx *c;
    assert_int_equal(pare_ctx_new(m, cd.T, &c), PARE_OK);
    ctx_set_hook(c, capture_hook, &cap);
    float *x = malloc(sizeof(float) * (size_t)cd.T * m->n_embd);
    for (int w = 0; w < cd.n; w++) {
        assert_int_equal(forward_embed(c, cd.ids + (size_t)w * cd.T, cd.T, x), PARE_OK);
        assert_int_equal(block_forward(c, 0, x, cd.T, 0), PARE_OK);
    }
    pare_ctx_free(c);
    free(x);
    int positive = 0;
    for (int p = 0; p < FWD_N_POINTS; p++) {
        int wd = cap.width[p];
        int64_t n = cap.n[p];
        assert_int_equal(n, (int64_t)cd.n * cd.T);
        assert_int_equal(ntok1[p], n);
        assert_int_equal(st[p].width, wd);
        assert_int_equal(st[p].K, K);
        for (int j = 0; j < wd; j++) {
            float lo = INFINITY, hi = -INFINITY;
            double ss = 0;
            for (int64_t t = 0; t < n; t++) {
                float v = cap.buf[p][t * wd + j];
                if (v < lo) lo = v;
                if (v > hi) hi = v;
                ss += (double)v * v;
            }
            assert_true(st[p].min[j] == lo && st[p].max[j] == hi);
            assert_true(fabs(st[p].sumsq[j] - ss) <= 1e-9 * ss);
            uint32_t h[K] = {0};
            for (int64_t t = 0; t < n; t++) { /* K equal-width bins on [min, max], max in the last */
                float v = cap.buf[p][t * wd + j];
                int b = hi > lo ? (int)((v - lo) / (hi - lo) * (float)K) : 0;
                h[b < K ? b : K - 1]++;
            }
            assert_memory_equal(h, st[p].hist + (size_t)j * K, sizeof h);
            double e = hist_entropy(h, K);
            assert_true(e >= 0 && e <= log((double)K) + 1e-12);
            positive += e > 0.5;
        }
        free(cap.buf[p]);
        calib_stats_free(&st[p]);
    }
    assert_true(positive > 100);
    calib_free(&cd);
    pare_model_free(m);
}

/* ---- 5. model level ------------------------------------------------------------------------ */
/* A channel permutation alone: E-Sparse's down-input permutation (and random ones) folded into
 * gate/up rows and down columns of the dense model leaves the logits unchanged; folding the
 * inverse restores the weights bit for bit; a wrong fold does change them (the check has
 * power); perm_attn / perm_o are metadata the dense forward pass does not read. */
static void test_model_perm_invariance(void **state) {
    (void)state;
    pare_model *a = make_model(5), *b = make_model(5);
    enum { NT = 24 };
    int32_t tok[NT];
    for (int i = 0; i < NT; i++) tok[i] = 3 + (int32_t)(urand() * (a->n_vocab - 3));
    float *la = logits_of(a, tok, NT);
    int F = g_shape.n_ff, E = g_shape.dim;
    /* E-Sparse's permutation of block 0's down input, from its calibration statistics */
    calib_data cd;
    random_calib(&cd, 4, 32, a->n_vocab);
    calib_runner *r;
    assert_int_equal(runner_new(a, &cd, &r), PARE_OK);
    calib_stats st[FWD_N_POINTS];
    memset(st, 0, sizeof st);
    unsigned want[FWD_N_POINTS] = {0, 0, 0, STAT_SUMSQ | STAT_MINMAX};
    assert_int_equal(runner_collect(r, want, 128, st), PARE_OK);
    want[FWD_DOWN_IN] = STAT_HIST;
    assert_int_equal(runner_collect(r, want, 128, st), PARE_OK);
    runner_free(r);
    prune_opts o;
    prune_opts_default(&o);
    o.method = PRUNE_ESPARSE; o.nm_n = 2; o.nm_m = 4; o.es_lbs_block = 16; o.es_lbs_iters = 20;
    float *dcopy = malloc(sizeof(float) * (size_t)F * E);
    memcpy(dcopy, a->layers[0].w_down->data, sizeof(float) * (size_t)F * E);
    int64_t drows = E;
    int32_t **perm = malloc(sizeof(int32_t *) * (size_t)a->n_layer);
    perm[0] = malloc(sizeof(int32_t) * (size_t)F);
    assert_int_equal(esparse_prune_input(&dcopy, &drows, 1, F, &st[FWD_DOWN_IN], &o, perm[0]), PARE_OK);
    assert_true(is_bijection(perm[0], F));
    assert_false(is_identity(perm[0], F));
    free(dcopy);
    calib_stats_free(&st[FWD_DOWN_IN]);
    for (int l = 1; l < a->n_layer; l++) {
        perm[l] = malloc(sizeof(int32_t) * (size_t)F);
        random_perm(perm[l], F);
    }
    for (int l = 0; l < b->n_layer; l++)
        fold_ffn(b->layers[l].w_gate->data, b->layers[l].w_up->data, b->layers[l].w_down->data, F, E, perm[l]);
    float *lb = logits_of(b, tok, NT);
    double d = rel_diff(la, lb, (size_t)NT * a->n_vocab);
    print_message("FFN channel permutation folded into gate/up/down: logits rel diff %.2e\n", d);
    assert_true(d <= 1e-5);
    free(lb);
    /* pi then pi^-1 restores the weights */
    for (int l = 0; l < b->n_layer; l++) {
        int32_t *inv = malloc(sizeof(int32_t) * (size_t)F);
        for (int i = 0; i < F; i++) inv[perm[l][i]] = i;
        fold_ffn(b->layers[l].w_gate->data, b->layers[l].w_up->data, b->layers[l].w_down->data, F, E, inv);
        free(inv);
        for (int k = 0; k < NMAT; k++)
            assert_memory_equal(layer_mat(&b->layers[l], k)->data, layer_mat(&a->layers[l], k)->data, layer_mat(&a->layers[l], k)->nbytes);
    }
    /* a wrong fold (down's columns only) changes the logits */
    {
        float *D = b->layers[0].w_down->data, *tmp = malloc(sizeof(float) * (size_t)F);
        for (int rr = 0; rr < E; rr++) {
            for (int i = 0; i < F; i++) tmp[i] = D[rr * F + perm[0][i]];
            memcpy(D + rr * F, tmp, sizeof(float) * (size_t)F);
        }
        free(tmp);
        lb = logits_of(b, tok, NT);
        double dw = rel_diff(la, lb, (size_t)NT * a->n_vocab);
        print_message("  a wrong fold (down only): rel diff %.2e\n", dw);
        assert_true(dw > 1e-3);
        free(lb);
    }
    /* recorded perm_attn / perm_o: the dense engine does not apply them (the weights stay in
     * their natural column order), so the logits are bit-identical */
    for (int l = 0; l < a->n_layer; l++) {
        a->layers[l].perm_attn = malloc(sizeof(int32_t) * (size_t)E);
        a->layers[l].perm_o = malloc(sizeof(int32_t) * (size_t)E);
        random_perm(a->layers[l].perm_attn, E);
        random_perm(a->layers[l].perm_o, E);
    }
    lb = logits_of(a, tok, NT);
    assert_memory_equal(la, lb, sizeof(float) * (size_t)NT * a->n_vocab);
    free(lb);
    for (int l = 0; l < a->n_layer; l++) free(perm[l]);
    free(perm);
    free(la);
    calib_free(&cd);
    pare_model_free(a);
    pare_model_free(b);
}

/* prune_model with each method: equals ref_pipeline bit for bit; every pruned tensor exactly
 * 2:4 (E-Sparse: q/k/v in perm_attn order, o in perm_o order, down in its natural (folded)
 * order, gate/up in the order the reference pipeline chose); the report's counts. */
static void run_model_case(int method, int nm_n, int nm_m, float sparsity) {
    static const char *names[] = {"magnitude", "wanda", "sparsegpt", "esparse"};
    pare_model *a = make_model(21), *b = make_model(21);
    calib_data cd;
    random_calib(&cd, 4, 32, a->n_vocab);
    prune_opts o;
    prune_opts_default(&o);
    o.method = method; o.nm_n = nm_n; o.nm_m = nm_m; o.sparsity = sparsity;
    o.es_lbs_block = 16; o.es_lbs_iters = 20;
    /* the unpruned weights, for magnitude's brute force */
    float *orig[2 * NMAT];
    for (int l = 0; l < a->n_layer; l++)
        for (int k = 0; k < NMAT; k++) {
            pare_tensor *t = layer_mat(&a->layers[l], k);
            orig[l * NMAT + k] = malloc(t->nbytes);
            memcpy(orig[l * NMAT + k], t->data, t->nbytes);
        }
    prune_report rep;
    if (prune_model(a, &cd, &o, 0, &rep) != PARE_OK) fail_msg("%s", pare_last_error());
    int32_t *perms[2 * FWD_N_POINTS] = {0};
    ref_pipeline(b, &cd, &o, perms);
    assert_int_equal(rep.n, a->n_layer * NMAT);
    int64_t numel = 0, zeros = 0, ffn_natural_bad = 0;
    for (int l = 0; l < a->n_layer; l++) {
        pare_layer *L = &a->layers[l];
        for (int k = 0; k < NMAT; k++) {
            pare_tensor *t = layer_mat(L, k), *tb = layer_mat(&b->layers[l], k);
            const float *w = t->data;
            int64_t rows = t->ne[1], cols = t->ne[0], n = rows * cols;
            assert_int_equal(t->type, PARE_TYPE_F32);
            assert_memory_equal(t->data, tb->data, t->nbytes);
            /* the report */
            const prune_tensor_info *ti = &rep.t[l * NMAT + k];
            assert_string_equal(ti->name, t->name);
            assert_int_equal(ti->numel, n);
            assert_int_equal(ti->zeros, count_zeros(w, n));
            numel += n; zeros += ti->zeros;
            if (nm_m) {
                const int32_t *perm = NULL;
                if (method == PRUNE_ESPARSE && g_point[k] != FWD_DOWN_IN) perm = perms[l * FWD_N_POINTS + g_point[k]];
                assert_int_equal(nm_violations(w, rows, cols, nm_n, nm_m, perm), 0);
                if (method == PRUNE_ESPARSE && (k == MG || k == MU))
                    ffn_natural_bad += nm_violations(w, rows, cols, nm_n, nm_m, NULL);
            } else if (method == PRUNE_MAGNITUDE) {
                double *S = malloc(sizeof(double) * (size_t)n);
                uint8_t *keep = malloc((size_t)n);
                float *e = malloc(sizeof(float) * (size_t)n);
                for (int64_t i = 0; i < n; i++) S[i] = fabs((double)orig[l * NMAT + k][i]);
                ref_matrix(S, n, sparsity, keep);
                apply_ref(orig[l * NMAT + k], keep, n, e);
                assert_memory_equal(w, e, sizeof(float) * (size_t)n);
                free(S); free(keep); free(e);
            } else if (method == PRUNE_WANDA) {
                for (int64_t r = 0; r < rows; r++)
                    assert_int_equal(count_zeros(w + r * cols, cols), (int64_t)floor(cols * (double)sparsity));
            } else {
                assert_true(ti->zeros >= (int64_t)floor(n * (double)sparsity));
            }
        }
        /* recorded permutations: E-Sparse's q/k/v, o and gate/up orders (NULL when identity) */
        int32_t *want_attn = method == PRUNE_ESPARSE && nm_m ? perms[l * FWD_N_POINTS + FWD_ATTN_IN] : NULL;
        int32_t *want_o = method == PRUNE_ESPARSE && nm_m ? perms[l * FWD_N_POINTS + FWD_O_IN] : NULL;
        int32_t *want_ffn = method == PRUNE_ESPARSE && nm_m ? perms[l * FWD_N_POINTS + FWD_FFN_IN] : NULL;
        if (want_attn && is_identity(want_attn, a->n_embd)) want_attn = NULL;
        if (want_o && is_identity(want_o, L->n_head * a->head_dim)) want_o = NULL;
        if (want_ffn && is_identity(want_ffn, a->n_embd)) want_ffn = NULL;
        assert_int_equal(L->perm_attn != NULL, want_attn != NULL);
        assert_int_equal(L->perm_o != NULL, want_o != NULL);
        assert_int_equal(L->perm_ffn != NULL, want_ffn != NULL);
        if (want_attn) assert_memory_equal(L->perm_attn, want_attn, sizeof(int32_t) * (size_t)a->n_embd);
        if (want_o) assert_memory_equal(L->perm_o, want_o, sizeof(int32_t) * (size_t)(L->n_head * a->head_dim));
        if (want_ffn) assert_memory_equal(L->perm_ffn, want_ffn, sizeof(int32_t) * (size_t)a->n_embd);
    }
    assert_int_equal(rep.numel, numel);
    assert_int_equal(rep.zeros, zeros);
    print_message("prune_model %s %d:%d s=%.2f: %.4f zeros overall\n", names[method], nm_n, nm_m, (double)sparsity,
                  (double)zeros / numel);
    if (method == PRUNE_ESPARSE && nm_m) {
        /* gate/up are N:M in the recorded perm_ffn order, not in their natural order */
        print_message("  gate/up: %lld row groups are not %d:%d in natural order, 0 in the recorded order\n",
                      (long long)ffn_natural_bad, nm_n, nm_m);
        /* the recorded orders survive a GGUF round trip */
        char path[] = "/tmp/pare-test-perm-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        char gp[64];
        snprintf(gp, sizeof gp, "%s.gguf", path);
        if (model_save_gguf(a, gp) != PARE_OK) fail_msg("%s", pare_last_error());
        pare_model *c;
        if (pare_model_load(gp, NULL, &c) != PARE_OK) fail_msg("%s", pare_last_error());
        int recorded = 0;
        for (int l = 0; l < a->n_layer; l++) {
            const pare_layer *x = &a->layers[l], *y = &c->layers[l];
            const int32_t *px[3] = {x->perm_attn, x->perm_o, x->perm_ffn}, *py[3] = {y->perm_attn, y->perm_o, y->perm_ffn};
            const int64_t wd[3] = {a->n_embd, (int64_t)x->n_head * a->head_dim, a->n_embd};
            for (int k = 0; k < 3; k++) {
                assert_int_equal(px[k] != NULL, py[k] != NULL);
                if (px[k]) { assert_memory_equal(px[k], py[k], sizeof(int32_t) * (size_t)wd[k]); recorded++; }
            }
        }
        assert_true(recorded > 0);
        pare_model_free(c);
        unlink(gp); unlink(path);
    }
    for (int i = 0; i < 2 * FWD_N_POINTS; i++) free(perms[i]);
    for (int i = 0; i < a->n_layer * NMAT; i++) free(orig[i]);
    prune_report_free(&rep);
    calib_free(&cd);
    pare_model_free(a);
    pare_model_free(b);
}

static void test_prune_model_nm(void **state) {
    (void)state;
    assert_int_equal(g_shape.n_layer, 2);
    for (int method = PRUNE_MAGNITUDE; method <= PRUNE_ESPARSE; method++) run_model_case(method, 2, 4, 0);
    run_model_case(PRUNE_ESPARSE, 4, 8, 0);
}
static void test_prune_model_unstructured(void **state) {
    (void)state;
    for (int method = PRUNE_MAGNITUDE; method <= PRUNE_SPARSEGPT; method++) run_model_case(method, 0, 0, 0.5f);
}

/* prune_model refuses bad patterns and sparsities without touching the model */
static void test_prune_model_args(void **state) {
    (void)state;
    pare_model *a = make_model(3), *b = make_model(3);
    calib_data cd;
    random_calib(&cd, 2, 16, a->n_vocab);
    struct { int n, m; float s; } bad[] = {{4, 4, 0}, {5, 4, 0}, {0, 4, 0}, {2, 32, 0}, {0, 0, 0}, {0, 0, 1}, {0, 0, 1.5f}, {0, 0, -0.1f}, {2, 3, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        prune_opts o;
        prune_opts_default(&o);
        o.method = PRUNE_WANDA; o.nm_n = bad[i].n; o.nm_m = bad[i].m; o.sparsity = bad[i].s;
        prune_report rep;
        assert_int_equal(prune_model(a, &cd, &o, 0, &rep), PARE_ERR_ARG);
        assert_non_null(pare_last_error());
        assert_null(strchr(pare_last_error(), '\n'));
        prune_report_free(&rep);
        for (int l = 0; l < a->n_layer; l++)
            for (int k = 0; k < NMAT; k++)
                assert_memory_equal(layer_mat(&a->layers[l], k)->data, layer_mat(&b->layers[l], k)->data, layer_mat(&a->layers[l], k)->nbytes);
    }
    calib_free(&cd);
    pare_model_free(a);
    pare_model_free(b);
}

int main(void) {
    /* One thread unless OMP_NUM_THREADS says otherwise: the library opens an OpenMP region per
     * small call (per LBS candidate swap, per mask), which on a shared, busy machine makes the
     * tiny layers here many times slower with two threads than with one. */
    if (!getenv("OMP_NUM_THREADS")) { omp_set_num_threads(1); openblas_set_num_threads(1); }
    const char *filter = getenv("PARE_TEST_FILTER"); /* e.g. PARE_TEST_FILTER='test_esparse*' */
    if (filter) cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_nm),
        cmocka_unit_test(test_magnitude_brute),
        cmocka_unit_test(test_wanda_toy),
        cmocka_unit_test(test_wanda_brute),
        cmocka_unit_test(test_sparsegpt_slow_reference),
        cmocka_unit_test(test_sparsegpt_error_identity),
        cmocka_unit_test(test_entropy),
        cmocka_unit_test(test_esparse_scores),
        cmocka_unit_test(test_esparse_shuffles),
        cmocka_unit_test(test_esparse_is_wanda),
        cmocka_unit_test(test_hist_runner),
        cmocka_unit_test(test_model_perm_invariance),
        cmocka_unit_test(test_prune_model_nm),
        cmocka_unit_test(test_prune_model_unstructured),
        cmocka_unit_test(test_prune_model_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
