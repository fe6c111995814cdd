/* magnitude.c - magnitude pruning (METHODS.md 1): score |W|; unstructured per matrix with
 * the threshold t = sorted(|W|)[floor(s numel)] and |W| <= t zeroed (as the reference code,
 * ties included); N:M per row and group. */
#include "prune.h"

#include <math.h>
#include <stdlib.h>

void prune_magnitude(float *W, int64_t rows, int64_t cols, const prune_opts *o) {
    int64_t n = rows * cols;
    float *S = malloc((size_t)n * sizeof(float));
    uint8_t *keep = malloc((size_t)n);
    if (!S || !keep) { free(S); free(keep); return; }
    for (int64_t i = 0; i < n; i++) S[i] = fabsf(W[i]);
    if (o->nm_m) mask_nm(S, rows, cols, o->nm_n, o->nm_m, keep);
    else mask_matrix(S, rows, cols, o->sparsity, keep);
    mask_apply(W, keep, n);
    free(S); free(keep);
}
