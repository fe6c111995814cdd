/* gptq.c - GPTQ (METHODS.md 5): SparseGPT's column sweep (same Hessian, damping and
 * Cholesky factor, src/prune/sparsegpt.c) with quantization in place of masking.
 *
 *   H = 2/N sum x x^T; dead inputs H_jj = 1, W[:,j] = 0; [act-order: columns by descending
 *   diag H]; H += percdamp mean(diag H) I; U = upper Cholesky factor of H^-1
 *   for column blocks [i1,i2) of width B:
 *     for j in block: at a group's first column fit its grid on the current weights;
 *       q = quant(w_j); err = (w_j - q)/U_jj; W[:, j+1:i2] -= err U[j, j+1:i2]
 *     W[:, i2:] -= Err U[i1:i2, i2:]
 * Rows are independent inside a block (each row's grid is its own), so a block's sweep runs
 * row by row, the rows split over threads. */
#include "quant.h"

#include "prune/prune.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

void gptq_opts_default(gptq_opts *o) {
    memset(o, 0, sizeof *o);
    o->percdamp = 0.01f;
    o->blocksize = 128;
}

static const double *g_diag; /* qsort context (set and used under the caller's single thread) */
static int by_diag_desc(const void *a, const void *b) {
    const int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (g_diag[i] != g_diag[j]) return g_diag[i] > g_diag[j] ? -1 : 1;
    return i < j ? -1 : i > j; /* stable: the lower column first */
}

pare_status gptq_quantize(float *W, int64_t rows, int64_t cols, const double *G, int64_t ntok, const quant_spec *q,
                          const gptq_opts *o, void *packed) {
    pare_status st = quant_check_cols(q, cols, "GPTQ");
    if (st) return st;
    if (q->type < 0) packed = NULL;
    const int n = (int)cols;
    const size_t nn = (size_t)n * n;
    const int64_t gs = q->group ? q->group : cols, ngr = (cols + gs - 1) / gs;
    const int fixed = o->static_groups || o->act_order || !q->group; /* grids fitted once, up front */
    int B = o->blocksize > 0 ? o->blocksize : 128;
    if (!fixed) B = B / gs * gs > 0 ? (int)(B / gs * gs) : (int)gs; /* a group never straddles two blocks */
    if (B > n) B = n;

    double *H = hessian_from_gram(G, ntok, W, rows, cols);
    float *U = pare_malloc(nn * sizeof(float));
    quant_group *grp = pare_calloc((size_t)(rows * ngr), sizeof(quant_group));
    int16_t *codes = packed ? pare_malloc((size_t)(rows * cols) * sizeof(int16_t)) : NULL;
    int32_t *perm = o->act_order ? pare_malloc((size_t)n * sizeof(int32_t)) : NULL;
    float *W1 = pare_malloc((size_t)rows * B * sizeof(float)), *Err = pare_malloc((size_t)rows * B * sizeof(float));
    float *tmp = o->act_order ? pare_malloc((size_t)n * sizeof(double)) : NULL; /* diag H, then a row */
    if (!H || !U || !grp || (packed && !codes) || (o->act_order && (!perm || !tmp)) || !W1 || !Err) {
        st = PARE_ERR_NOMEM;
        goto done;
    }
    if (fixed) /* from the original weights (dead columns already zero), in column order */
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < ngr; k++)
                quant_fit(q, W + r * cols + k * gs, cols - k * gs < gs ? cols - k * gs : gs, &grp[r * ngr + k]);
    if (perm) { /* permute W's columns and H's rows and columns */
        double *diag = (double *)tmp;
        for (int j = 0; j < n; j++) { perm[j] = j; diag[j] = H[(size_t)j * n + j]; }
        g_diag = diag;
        qsort(perm, (size_t)n, sizeof *perm, by_diag_desc);
        for (int64_t r = 0; r < rows; r++) {
            float *w = W + r * cols, *t = tmp;
            for (int j = 0; j < n; j++) t[j] = w[perm[j]];
            memcpy(w, t, (size_t)n * sizeof(float));
        }
        double *Hp = pare_malloc(nn * sizeof(double));
        if (!Hp) { st = PARE_ERR_NOMEM; goto done; }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) Hp[(size_t)i * n + j] = H[(size_t)perm[i] * n + perm[j]];
        free(H);
        H = Hp;
    }
    if ((st = hessian_inverse_factor(H, n, o->percdamp, U, "GPTQ"))) goto done;

    for (int i1 = 0; i1 < n; i1 += B) {
        const int i2 = i1 + B < n ? i1 + B : n, cnt = i2 - i1;
        for (int64_t r = 0; r < rows; r++) memcpy(W1 + r * cnt, W + r * cols + i1, (size_t)cnt * sizeof(float));
        #pragma omp parallel for schedule(static) if (rows * cnt * cnt >= (1 << 18))
        for (int64_t r = 0; r < rows; r++) {
            float *w = W1 + r * cnt, *e = Err + r * cnt;
            for (int j = 0; j < cnt; j++) {
                const int col = i1 + j, oc = perm ? perm[col] : col;
                quant_group *g = &grp[r * ngr + oc / gs];
                if (!fixed && oc % gs == 0) quant_fit(q, w + j, cols - oc < gs ? cols - oc : gs, g); /* current weights */
                const int c = quant_code(q, g, w[j]);
                const float v = quant_value(g, c);
                if (codes) codes[r * cols + oc] = (int16_t)c;
                const float err = (w[j] - v) / U[(size_t)col * n + col];
                const float *Ur = U + (size_t)col * n + i1;
                for (int k = j + 1; k < cnt; k++) w[k] -= err * Ur[k];
                w[j] = v;
                e[j] = err;
            }
        }
        for (int64_t r = 0; r < rows; r++) memcpy(W + r * cols + i1, W1 + r * cnt, (size_t)cnt * sizeof(float));
        if (i2 < n) /* W[:, i2:] -= Err (rows x cnt) . U[i1:i2, i2:] (cnt x (n - i2)) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, n - i2, cnt, -1.0f, Err, cnt,
                        U + (size_t)i1 * n + i2, n, 1.0f, W + i2, (int)cols);
    }
    if (perm) /* back to the original column order */
        for (int64_t r = 0; r < rows; r++) {
            float *w = W + r * cols, *t = tmp;
            for (int j = 0; j < n; j++) t[perm[j]] = w[j];
            memcpy(w, t, (size_t)n * sizeof(float));
        }
    if (packed) {
        const size_t rb = pare_row_bytes(q->type, cols);
        for (int64_t r = 0; r < rows; r++) quant_pack_row(q, grp + r * ngr, codes + r * cols, cols, (uint8_t *)packed + r * rb);
    }
done:
    free(H); free(U); free(grp); free(codes); free(perm); free(W1); free(Err); free(tmp);
    return st;
}
