/* sparsegpt.c - SparseGPT (METHODS.md 3): OBS column sweep with lazy block updates.
 *
 *   H = 2/N sum x x^T; dead inputs H_jj = 1, W[:,j] = 0; H += percdamp mean(diag H) I
 *   U = upper Cholesky factor of H^-1
 *   for column blocks [i1,i2) of width B:
 *     unstructured: mask the block's entries with W^2/U_jj^2 <= the floor(s rows B)-th smallest
 *     for j in block: N:M groups chosen at their first column on the current weights;
 *       q = masked w; err = (w - q)/U_jj; W[:, j+1:i2] -= err U[j, j+1:i2]
 *     W[:, i2:] -= Err U[i1:i2, i2:]                                                      */
#include "prune.h"

#include "linalg.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Upper Cholesky factor U (row-major, U^T U = H^-1) of the inverse of H (n x n, row-major).
 * H is overwritten. */
static pare_status chol_inverse_upper(double *H, int n, float *U, const char *who) {
    int info;
    /* row-major upper == column-major lower */
    dpotrf_("L", &n, H, &n, &info);
    if (info) return pare_fail(PARE_ERR_ARG, "%s: Hessian is not positive definite (LAPACK info %d); raise --percdamp", who, info);
    dpotri_("L", &n, H, &n, &info);
    if (info) return pare_fail(PARE_ERR_ARG, "%s: Hessian inverse failed (LAPACK info %d)", who, info);
    /* H now holds H^-1 in its row-major upper triangle: mirror, then factor again */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) H[(size_t)i * n + j] = H[(size_t)j * n + i];
    dpotrf_("L", &n, H, &n, &info);
    if (info) return pare_fail(PARE_ERR_ARG, "%s: H^-1 is not positive definite (LAPACK info %d)", who, info);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) U[(size_t)i * n + j] = j >= i ? (float)H[(size_t)i * n + j] : 0.0f;
    return PARE_OK;
}

double *hessian_from_gram(const double *G, int64_t ntok, float *W, int64_t rows, int64_t cols) {
    const int n = (int)cols;
    const size_t nn = (size_t)n * n;
    double *H = pare_malloc(nn * sizeof(double));
    if (!H) return NULL;
    double sc = ntok > 0 ? 2.0 / (double)ntok : 1.0;
    for (size_t i = 0; i < nn; i++) H[i] = G[i] * sc;
    for (int j = 0; j < n; j++)
        if (H[(size_t)j * n + j] == 0) {
            H[(size_t)j * n + j] = 1;
            for (int64_t r = 0; r < rows; r++) W[r * cols + j] = 0;
        }
    return H;
}

pare_status hessian_inverse_factor(double *H, int n, float percdamp, float *U, const char *who) {
    double mean = 0;
    for (int j = 0; j < n; j++) mean += H[(size_t)j * n + j];
    mean /= n;
    for (int j = 0; j < n; j++) H[(size_t)j * n + j] += percdamp * mean;
    return chol_inverse_upper(H, n, U, who);
}

pare_status prune_sparsegpt(float *W, int64_t rows, int64_t cols, const double *G, int64_t ntok, const prune_opts *o) {
    int n = (int)cols;
    size_t nn = (size_t)n * n;
    double *H = hessian_from_gram(G, ntok, W, rows, cols);
    float *U = pare_malloc(nn * sizeof(float));
    if (!H || !U) { free(H); free(U); return PARE_ERR_NOMEM; }
    pare_status st = hessian_inverse_factor(H, n, o->percdamp, U, "SparseGPT");
    free(H);
    if (st) { free(U); return st; }

    int M = o->nm_m, B = o->blocksize > 0 ? o->blocksize : 128;
    if (M) B = B / M * M > 0 ? B / M * M : M;
    float *W1 = pare_malloc((size_t)rows * B * sizeof(float)), *Err = pare_malloc((size_t)rows * B * sizeof(float));
    uint8_t *mask = pare_malloc((size_t)rows * B); /* 1 = prune */
    float *tmp = pare_malloc((size_t)rows * B * sizeof(float));
    uint8_t *keep = pare_malloc(16);
    if (!W1 || !Err || !mask || !tmp || !keep) { st = PARE_ERR_NOMEM; goto done; }
    for (int i1 = 0; i1 < n; i1 += B) {
        int i2 = i1 + B < n ? i1 + B : n, cnt = i2 - i1;
        for (int64_t r = 0; r < rows; r++) memcpy(W1 + r * cnt, W + r * cols + i1, (size_t)cnt * sizeof(float));
        memset(mask, 0, (size_t)rows * cnt);
        if (!M) {
            int64_t tot = rows * cnt;
            for (int64_t r = 0; r < rows; r++)
                for (int j = 0; j < cnt; j++) {
                    float d = U[(size_t)(i1 + j) * n + i1 + j], w = W1[r * cnt + j];
                    tmp[r * cnt + j] = w * w / (d * d);
                }
            uint8_t *kp = pare_malloc((size_t)tot);
            if (!kp) { st = PARE_ERR_NOMEM; goto done; }
            mask_matrix(tmp, rows, cnt, o->sparsity, kp); /* keep = !(tmp <= thr) */
            for (int64_t i = 0; i < tot; i++) mask[i] = !kp[i];
            free(kp);
        }
        for (int j = 0; j < cnt; j++) {
            int col = i1 + j;
            float d = U[(size_t)col * n + col];
            if (M && col % M == 0) {
                for (int64_t r = 0; r < rows; r++) {
                    float s[16];
                    for (int k = 0; k < M; k++) {
                        float dk = U[(size_t)(col + k) * n + col + k], w = W1[r * cnt + j + k];
                        s[k] = w * w / (dk * dk);
                    }
                    mask_nm(s, 1, M, o->nm_n, M, keep);
                    for (int k = 0; k < M; k++) mask[r * cnt + j + k] = !keep[k];
                }
            }
            const float *Ur = U + (size_t)col * n + col; /* U[col, col:] */
            #pragma omp parallel for schedule(static) if (rows * (cnt - j) >= 32768)
            for (int64_t r = 0; r < rows; r++) {
                float *w = W1 + r * cnt;
                float q = mask[r * cnt + j] ? 0.0f : w[j];
                float err = (w[j] - q) / d;
                for (int k = j + 1; k < cnt; k++) w[k] -= err * Ur[k - j];
                w[j] = q;
                Err[r * cnt + j] = err;
            }
        }
        for (int64_t r = 0; r < rows; r++) memcpy(W + r * cols + i1, W1 + r * cnt, (size_t)cnt * sizeof(float));
        if (i2 < n) /* W[:, i2:] -= Err (rows x cnt) . U[i1:i2, i2:] (cnt x (n - i2)) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, n - i2, cnt, -1.0f, Err, cnt,
                        U + (size_t)i1 * n + i2, n, 1.0f, W + i2, (int)cols);
    }
done:
    free(U); free(W1); free(Err); free(mask); free(tmp); free(keep);
    return st;
}
