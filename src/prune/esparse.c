/* esparse.c - E-Sparse (METHODS.md 6): N:M pruning scored by input-channel entropy plus
 * weight and activation amplitude, with a global naive shuffle and a local block shuffle of
 * the input channels; the kept weights are not changed.
 *
 *   H_c  = -sum_k p_k ln p_k over a K-bin histogram of channel c on [min_c, max_c]
 *   nu_c = ||X_c||_2
 *   S_ic = |W_ic| (nu_c + beta H_c)   (add, default; beta = mean(nu)/mean(H) per input)
 *        = |W_ic| nu_c H_c            (mul)
 *   GNS: channels sorted by sum_i S_ic (over every matrix reading the input), dealt
 *        round-robin over the d_in/M groups: rank r -> group r mod G, slot r / G
 *   LBS: in blocks of B channels, greedily apply the best swap of two channels in different
 *        groups while it raises R = sum over rows and groups of the N largest S kept
 *   mask: in permuted order, per row and M-group keep the N largest S.
 * With the entropy term off and no shuffle this is exactly Wanda. */
#include "prune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* sum of the n largest of v[0..m) */
static float top_n_sum(const float *v, int m, int n) {
    float a[16];
    memcpy(a, v, (size_t)m * sizeof(float));
    float s = 0;
    for (int k = 0; k < n; k++) {
        int b = k;
        for (int i = k + 1; i < m; i++) if (a[i] > a[b]) b = i;
        float t = a[k]; a[k] = a[b]; a[b] = t;
        s += a[k];
    }
    return s;
}

typedef struct { double s; int32_t c; } chan;
static int chan_desc(const void *a, const void *b) {
    const chan *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? 1 : -1;
    return x->c - y->c;
}

/* Scores of all rows (stacked over the matrices) in permuted column order:
 * P[r * cols + k] = S[r][perm[k]]. */
static void gather_cols(const float *S, int64_t rows, int64_t cols, const int32_t *perm, float *P) {
    #pragma omp parallel for schedule(static) if (rows * cols >= 65536)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < cols; k++) P[r * cols + k] = S[r * cols + perm[k]];
}

/* Gains of swapping channels i < j (block-relative, different groups) for the pairs whose
 * groups are not both outside {ga, gb} (ga = gb = -1: every pair), from the groups' top-N
 * sums in base. Each gain is a sum over the rows in row order, so it does not depend on the
 * thread count, and a pair's gain is the same whether it was recomputed or kept. */
static void lbs_gains(const float *P, int64_t rows, int64_t cols, int64_t b0, int64_t nb, int M, int N,
                      const float *base, int64_t ga, int64_t gb, double *gain) {
    int64_t ng = nb / M;
    #pragma omp parallel for schedule(dynamic, 1) if (rows * nb * (ga < 0 ? nb : 4 * M) >= 200000)
    for (int64_t i = 0; i < nb; i++) {
        int64_t g1 = i / M;
        for (int64_t j = i + 1; j < nb; j++) {
            int64_t g2 = j / M;
            if (g1 == g2) continue;
            if (ga >= 0 && g1 != ga && g1 != gb && g2 != ga && g2 != gb) continue;
            double gsum = 0;
            for (int64_t r = 0; r < rows; r++) {
                float a[16], bb[16];
                const float *row = P + r * cols + b0;
                memcpy(a, row + g1 * M, (size_t)M * sizeof(float));
                memcpy(bb, row + g2 * M, (size_t)M * sizeof(float));
                float t = a[i - g1 * M]; a[i - g1 * M] = bb[j - g2 * M]; bb[j - g2 * M] = t;
                float before = base[r * ng + g1] + base[r * ng + g2];
                gsum += (double)(top_n_sum(a, M, N) + top_n_sum(bb, M, N) - before);
            }
            gain[i * nb + j] = gsum;
        }
    }
}

static void lbs_base(const float *P, int64_t rows, int64_t cols, int64_t b0, int64_t ng, int M, int N, int64_t g,
                     float *base) {
    for (int64_t r = 0; r < rows; r++) {
        float a[16];
        memcpy(a, P + r * cols + b0 + g * M, (size_t)M * sizeof(float));
        base[r * ng + g] = top_n_sum(a, M, N);
    }
}

/* Local block shuffle on P (rows x cols, permuted order), updating perm and P. Each greedy
 * step takes, among all pairs (i, j) of channels of the block in different groups, the first
 * in (i, j) order whose gain in kept score R beats the best so far by a relative 1e-12, and
 * swaps it; it stops when no swap gains or after es_lbs_iters swaps. A swap changes only the
 * gains of pairs that touch its two groups, so only those are recomputed. */
static void local_block_shuffle(float *P, int64_t rows, int64_t cols, int32_t *perm, const prune_opts *o) {
    int M = o->nm_m, N = o->nm_n;
    int B = o->es_lbs_block / M * M;
    if (B < 2 * M) B = 2 * M;
    double *gain = pare_malloc((size_t)B * B * sizeof(double));
    float *base = pare_malloc((size_t)rows * (B / M + 1) * sizeof(float));
    if (!gain || !base) { free(gain); free(base); return; } /* no shuffle: the GNS order stands */
    for (int64_t b0 = 0; b0 < cols; b0 += B) {
        int64_t b1 = b0 + B < cols ? b0 + B : cols, nb = b1 - b0, ng = nb / M;
        for (int64_t g = 0; g < ng; g++) lbs_base(P, rows, cols, b0, ng, M, N, g, base);
        lbs_gains(P, rows, cols, b0, nb, M, N, base, -1, -1, gain);
        for (int it = 0; it < o->es_lbs_iters; it++) {
            double best = 0;
            int64_t bi = -1, bj = -1;
            for (int64_t i = 0; i < nb; i++)
                for (int64_t j = i + 1; j < nb; j++) {
                    if (i / M == j / M) continue;
                    double g = gain[i * nb + j];
                    if (g > best + 1e-12 * (best > 0 ? best : 1)) { best = g; bi = i; bj = j; }
                }
            if (bi < 0) break; /* no swap gains: local optimum */
            int64_t ci = b0 + bi, cj = b0 + bj;
            int32_t t = perm[ci]; perm[ci] = perm[cj]; perm[cj] = t;
            for (int64_t r = 0; r < rows; r++) { float v = P[r * cols + ci]; P[r * cols + ci] = P[r * cols + cj]; P[r * cols + cj] = v; }
            if (it + 1 == o->es_lbs_iters) break;
            lbs_base(P, rows, cols, b0, ng, M, N, bi / M, base);
            lbs_base(P, rows, cols, b0, ng, M, N, bj / M, base);
            lbs_gains(P, rows, cols, b0, nb, M, N, base, bi / M, bj / M, gain);
        }
    }
    free(gain); free(base);
}

pare_status esparse_prune_input(float **W, const int64_t *rows, int nW, int64_t cols, const calib_stats *st,
                                const prune_opts *o, int32_t *perm) {
    for (int64_t c = 0; c < cols; c++) perm[c] = (int32_t)c;
    int64_t R = 0;
    for (int k = 0; k < nW; k++) R += rows[k];
    float *S = pare_malloc((size_t)R * cols * sizeof(float)), *nu = pare_malloc((size_t)cols * sizeof(float));
    float *coef = pare_malloc((size_t)cols * sizeof(float));
    uint8_t *keep = pare_malloc((size_t)R * cols);
    float *P = NULL;
    pare_status res = PARE_OK;
    if (!S || !nu || !coef || !keep) { res = PARE_ERR_NOMEM; goto done; }
    for (int64_t c = 0; c < cols; c++) nu[c] = (float)sqrt(st->sumsq[c]);
    if (o->es_entropy) {
        if (!st->hist) { res = pare_fail(PARE_ERR_ARG, "E-Sparse: entropy histograms missing"); goto done; }
        double mnu = 0, mh = 0;
        float *H = coef;
        for (int64_t c = 0; c < cols; c++) { H[c] = (float)hist_entropy(st->hist + c * st->K, st->K); mnu += nu[c]; mh += H[c]; }
        float beta = o->es_beta >= 0 ? o->es_beta : (mh > 0 ? (float)(mnu / mh) : 0);
        for (int64_t c = 0; c < cols; c++) coef[c] = o->es_combine ? nu[c] * H[c] : nu[c] + beta * H[c];
    } else {
        memcpy(coef, nu, (size_t)cols * sizeof(float)); /* Wanda's metric */
    }
    /* S stacked over matrices, natural column order */
    int64_t r0 = 0;
    for (int k = 0; k < nW; k++) {
        for (int64_t r = 0; r < rows[k]; r++)
            for (int64_t c = 0; c < cols; c++) S[(r0 + r) * cols + c] = fabsf(W[k][r * cols + c]) * coef[c];
        r0 += rows[k];
    }
    int M = o->nm_m, N = o->nm_n;
    if (!M) { /* unstructured: per row, no shuffle applies */
        mask_rows(S, R, cols, o->sparsity, keep);
    } else {
        if (o->es_gns) {
            chan *ch = pare_malloc((size_t)cols * sizeof(chan));
            if (!ch) { res = PARE_ERR_NOMEM; goto done; }
            for (int64_t c = 0; c < cols; c++) { ch[c].s = 0; ch[c].c = (int32_t)c; }
            for (int64_t r = 0; r < R; r++)
                for (int64_t c = 0; c < cols; c++) ch[c].s += S[r * cols + c];
            qsort(ch, (size_t)cols, sizeof(chan), chan_desc);
            int64_t G = cols / M;
            for (int64_t rk = 0; rk < cols; rk++) perm[(rk % G) * M + rk / G] = ch[rk].c;
            free(ch);
        }
        if (!(P = pare_malloc((size_t)R * cols * sizeof(float)))) { res = PARE_ERR_NOMEM; goto done; }
        gather_cols(S, R, cols, perm, P);
        if (o->es_lbs) local_block_shuffle(P, R, cols, perm, o);
        uint8_t *kp = pare_malloc((size_t)R * cols);
        if (!kp) { res = PARE_ERR_NOMEM; goto done; }
        mask_nm(P, R, cols, N, M, kp);
        /* back to natural column order */
        #pragma omp parallel for schedule(static) if (R * cols >= 65536)
        for (int64_t r = 0; r < R; r++)
            for (int64_t k = 0; k < cols; k++) keep[r * cols + perm[k]] = kp[r * cols + k];
        free(kp);
    }
    r0 = 0;
    for (int k = 0; k < nW; k++) {
        mask_apply(W[k], keep + r0 * cols, rows[k] * cols);
        r0 += rows[k];
    }
done:
    free(S); free(nu); free(coef); free(keep); free(P);
    return res;
}
