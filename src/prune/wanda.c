/* wanda.c - Wanda (METHODS.md 2): S_ij = |W_ij| sqrt(sum_t x_tj^2); per output row (or per
 * N:M group) the lowest scores are zeroed; no weight update. */
#include "prune.h"

#include <math.h>
#include <stdlib.h>

void prune_wanda(float *W, int64_t rows, int64_t cols, const double *sumsq, const prune_opts *o) {
    int64_t n = rows * cols;
    float *S = malloc((size_t)n * sizeof(float)), *nu = malloc((size_t)cols * sizeof(float));
    uint8_t *keep = malloc((size_t)n);
    if (!S || !keep || !nu) { free(S); free(keep); free(nu); return; }
    for (int64_t j = 0; j < cols; j++) nu[j] = (float)sqrt(sumsq[j]);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) S[r * cols + j] = fabsf(W[r * cols + j]) * nu[j];
    if (o->nm_m) mask_nm(S, rows, cols, o->nm_n, o->nm_m, keep);
    else mask_rows(S, rows, cols, o->sparsity, keep);
    mask_apply(W, keep, n);
    free(S); free(keep); free(nu);
}
