/* esparse.c - E-Sparse (METHODS.md 6): N:M pruning scored by input-channel entropy plus
 * weight and activation amplitude, with a global naive shuffle and a local block shuffle of
 * the input channels; the kept weights are not changed.
 *
 *   H_c  = -sum_k p_k ln p_k over a K-bin histogram of channel c on [min_c, max_c]
 *   nu_c = ||X_c||_2
 *   S_ic = |W_ic| (nu_c + beta H_c)   (add, default; beta = rel * mean(nu)/mean(H) per input)
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

/* The local block shuffle works on one block of nb channels at a time, stored column-major
 * (channel k of the block, all rows: A + k * rows). For each channel k and row r it keeps
 *   ref = the (N+1)-th largest of k's group in row r if k is among the group's N kept, else
 *         the N-th largest;   sub = the kept value itself if kept, else that N-th largest,
 * so that putting a value v in k's place changes the group's kept sum by max(v, ref) - sub
 * (a kept value leaves and the best of v and the first dropped one takes its place; a
 * dropped value is replaced and v enters only if it beats the smallest kept one). The gain
 * of swapping i and j in a row is then max(a_j, ref_i) - sub_i + max(a_i, ref_j) - sub_j:
 * O(1) per row and pair instead of two top-N selections. */
typedef struct { int64_t rows, nb; int M, N; float *A, *ref, *sub; } lbs_block;

/* ref and sub of every channel of group g (all rows) */
static void lbs_group(lbs_block *b, int64_t g) {
    int M = b->M, N = b->N;
    for (int64_t r = 0; r < b->rows; r++) {
        float v[16];
        int idx[16], top[16] = {0};
        for (int k = 0; k < M; k++) { v[k] = b->A[(g * M + k) * b->rows + r]; idx[k] = k; }
        for (int k = 0; k <= N && k < M; k++) { /* partial selection sort, stable on ties */
            int best = k;
            for (int q = k + 1; q < M; q++) if (v[idx[q]] > v[idx[best]]) best = q;
            int t = idx[k]; idx[k] = idx[best]; idx[best] = t;
        }
        for (int k = 0; k < N; k++) top[idx[k]] = 1;
        float tn = v[idx[N - 1]], tn1 = v[idx[N]];
        for (int k = 0; k < M; k++) {
            int64_t at = (g * M + k) * b->rows + r;
            b->ref[at] = top[k] ? tn1 : tn;
            b->sub[at] = top[k] ? v[k] : tn;
        }
    }
}

/* gain in kept score of swapping block channels i and j (different groups); a sum over rows
 * in a fixed order, so independent of threads and of when it was computed */
static double lbs_pair_gain(const lbs_block *b, int64_t i, int64_t j) {
    const float *ai = b->A + i * b->rows, *aj = b->A + j * b->rows;
    const float *ri = b->ref + i * b->rows, *rj = b->ref + j * b->rows;
    const float *si = b->sub + i * b->rows, *sj = b->sub + j * b->rows;
    double acc[8] = {0};
    int64_t r = 0, n = b->rows;
    for (; r + 8 <= n; r += 8)
        for (int l = 0; l < 8; l++) {
            float x = ai[r + l], y = aj[r + l];
            float d = ((y > ri[r + l] ? y : ri[r + l]) - si[r + l]) + ((x > rj[r + l] ? x : rj[r + l]) - sj[r + l]);
            acc[l] += d;
        }
    for (; r < n; r++) {
        float x = ai[r], y = aj[r];
        acc[0] += ((y > ri[r] ? y : ri[r]) - si[r]) + ((x > rj[r] ? x : rj[r]) - sj[r]);
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* gains of the pairs (i < j, different groups) with a channel in group ga or gb (ga < 0: all) */
static void lbs_gains(const lbs_block *b, int64_t ga, int64_t gb, double *gain) {
    int64_t nb = b->nb;
    int M = b->M;
    #pragma omp parallel for schedule(dynamic, 1) if (b->rows * nb * (ga < 0 ? nb : 4 * M) >= 200000)
    for (int64_t i = 0; i < nb; i++) {
        int64_t g1 = i / M;
        for (int64_t j = i + 1; j < nb; j++) {
            int64_t g2 = j / M;
            if (g1 == g2) continue;
            if (ga >= 0 && g1 != ga && g1 != gb && g2 != ga && g2 != gb) continue;
            gain[i * nb + j] = lbs_pair_gain(b, i, j);
        }
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
    lbs_block b = {rows, 0, M, N, NULL, NULL, NULL};
    double *gain = pare_malloc((size_t)B * B * sizeof(double));
    b.A = pare_malloc((size_t)B * rows * sizeof(float));
    b.ref = pare_malloc((size_t)B * rows * sizeof(float));
    b.sub = pare_malloc((size_t)B * rows * sizeof(float));
    if (!gain || !b.A || !b.ref || !b.sub) goto out; /* no shuffle: the GNS order stands */
    for (int64_t b0 = 0; b0 < cols; b0 += B) {
        int64_t b1 = b0 + B < cols ? b0 + B : cols, nb = b1 - b0, ng = nb / M;
        if (ng < 2) continue;
        b.nb = nb;
        #pragma omp parallel for schedule(static) if (rows * nb >= 65536)
        for (int64_t k = 0; k < nb; k++)
            for (int64_t r = 0; r < rows; r++) b.A[k * rows + r] = P[r * cols + b0 + k];
        #pragma omp parallel for schedule(static) if (rows * nb >= 65536)
        for (int64_t g = 0; g < ng; g++) lbs_group(&b, g);
        lbs_gains(&b, -1, -1, gain);
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
            for (int64_t r = 0; r < rows; r++) {
                float v = P[r * cols + ci]; P[r * cols + ci] = P[r * cols + cj]; P[r * cols + cj] = v;
                v = b.A[bi * rows + r]; b.A[bi * rows + r] = b.A[bj * rows + r]; b.A[bj * rows + r] = v;
            }
            if (it + 1 == o->es_lbs_iters) break;
            lbs_group(&b, bi / M);
            lbs_group(&b, bj / M);
            lbs_gains(&b, bi / M, bj / M, gain);
        }
    }
out:
    free(gain); free(b.A); free(b.ref); free(b.sub);
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
        float beta = o->es_beta >= 0 ? o->es_beta : (mh > 0 ? (float)(o->es_beta_rel * mnu / mh) : 0);
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
