/* mask.c - N:M, per-row and per-matrix masks from scores. */
#include "prune.h"

#include <stdlib.h>
#include <string.h>

void prune_opts_default(prune_opts *o) {
    memset(o, 0, sizeof *o);
    o->method = PRUNE_WANDA;
    o->sparsity = 0.5f;
    o->percdamp = 0.01f;
    o->blocksize = 128;
    o->es_entropy = 1; o->es_beta = -1; o->es_beta_rel = 1; o->es_combine = 0; o->es_bins = 128;
    o->es_gns = 1; o->es_lbs = 1; o->es_lbs_block = 64; o->es_lbs_iters = 100; o->es_skip_bos = 0;
}

void mask_nm(const float *S, int64_t rows, int64_t cols, int n, int m, uint8_t *keep) {
    #pragma omp parallel for schedule(static) if (rows * cols >= 65536)
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t g = 0; g < cols; g += m) {
            const float *s = S + r * cols + g;
            uint8_t *k = keep + r * cols + g;
            /* rank each entry: how many entries of the group it loses to. An entry is pruned
             * when m - n or more entries... keep the n with the fewest "better" entries. */
            for (int i = 0; i < m; i++) {
                int better = 0;
                for (int j = 0; j < m; j++)
                    if (s[j] > s[i] || (s[j] == s[i] && j > i)) better++;
                k[i] = better < n;
            }
        }
    }
}

typedef struct { float s; int64_t i; } si;
static int si_cmp(const void *a, const void *b) {
    const si *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

void mask_rows(const float *S, int64_t rows, int64_t cols, float s, uint8_t *keep) {
    int64_t nz = (int64_t)((double)cols * s);
    #pragma omp parallel if (rows * cols >= 65536)
    {
        si *buf = malloc((size_t)cols * sizeof(si));
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!buf) continue;
            for (int64_t j = 0; j < cols; j++) { buf[j].s = S[r * cols + j]; buf[j].i = j; }
            qsort(buf, (size_t)cols, sizeof(si), si_cmp);
            for (int64_t j = 0; j < cols; j++) keep[r * cols + buf[j].i] = j >= nz;
        }
        free(buf);
    }
}

static int f_cmp(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void mask_matrix(const float *S, int64_t rows, int64_t cols, float s, uint8_t *keep) {
    int64_t n = rows * cols, k = (int64_t)((double)n * s);
    if (k <= 0) { memset(keep, 1, (size_t)n); return; }
    float *c = malloc((size_t)n * sizeof(float));
    if (!c) { memset(keep, 1, (size_t)n); return; }
    memcpy(c, S, (size_t)n * sizeof(float));
    qsort(c, (size_t)n, sizeof(float), f_cmp);
    float t = c[k < n ? k : n - 1];
    free(c);
    for (int64_t i = 0; i < n; i++) keep[i] = !(S[i] <= t);
}

int64_t mask_apply(float *W, const uint8_t *keep, int64_t n) {
    int64_t z = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!keep[i]) W[i] = 0;
        z += W[i] == 0;
    }
    return z;
}
