/* r8.c - Q8_0 and Q4_0 matrices with eight rows interleaved (r8.h): packing, the C reference
 * rows and the drivers. The AVX2 rows are in r8_avx2.c. */
#include "k_impl.h"
#include "r8.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static inline int64_t r8_words(int type) { return type == PARE_TYPE_Q8_0 ? 8 : 4; }
static inline size_t r8_block(int type) { return type == PARE_TYPE_Q8_0 ? sizeof(block_q8_0) : sizeof(block_q4_0); }

int k_r8_wanted(int type, int64_t cols) {
    const char *e = getenv("PARE_R8");
    if (e && !strcmp(e, "0")) return 0;
    return k_isa() == PARE_ISA_AVX2 && (type == PARE_TYPE_Q8_0 || type == PARE_TYPE_Q4_0) && cols > 0 && cols % 32 == 0;
}

pare_status k_r8_pack(int type, const void *W, int64_t rows, int64_t cols, pare_r8 **out) {
    *out = NULL;
    if (type != PARE_TYPE_Q8_0 && type != PARE_TYPE_Q4_0)
        return pare_fail(PARE_ERR_ARG, "r8: type %s is not Q8_0 or Q4_0", pare_type_name(type));
    if (rows <= 0 || cols <= 0 || cols % 32)
        return pare_fail(PARE_ERR_ARG, "r8: %lld x %lld is not rows x whole blocks of 32", (long long)rows, (long long)cols);
    const int64_t nb = cols / 32, nw = r8_words(type), groups = (rows + 7) / 8;
    const size_t bs = r8_block(type), gbytes = 16 + 32 * (size_t)nw;
    size_t bytes;
    if (!pare_mul_ok((size_t)groups * (size_t)nb, gbytes, &bytes)) return pare_fail(PARE_ERR_NOMEM, "r8: matrix too large");
    pare_r8 *w = pare_calloc(1, sizeof *w);
    if (!w) return PARE_ERR_NOMEM;
    w->type = type; w->rows = rows; w->cols = cols; w->groups = groups; w->gbytes = gbytes;
    w->data = k_alloc_weights(bytes, &w->bytes);
    if (!w->data) { free(w); return pare_fail(PARE_ERR_NOMEM, "r8: out of memory (%zu bytes)", bytes); }
    const uint8_t *src = W;
#pragma omp parallel for schedule(static)
    for (int64_t g = 0; g < groups; g++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *p = w->data + ((size_t)g * (size_t)nb + (size_t)b) * gbytes;
            memset(p, 0, gbytes); /* padding rows: scale 0, quants 0 */
            for (int64_t r = 0; r < 8 && 8 * g + r < rows; r++) {
                const uint8_t *blk = src + ((size_t)(8 * g + r) * (size_t)nb + (size_t)b) * bs;
                memcpy(p + 2 * r, blk, 2);
                for (int64_t k = 0; k < nw; k++) memcpy(p + 16 + 32 * k + 4 * r, blk + 2 + 4 * k, 4);
            }
        }
    memset(w->data + bytes, 0, w->bytes - bytes);
    *out = w;
    return PARE_OK;
}

void k_r8_free(pare_r8 *w) {
    if (!w) return;
    free(w->data);
    free(w);
}

/* block b of row r in its GGUF layout, into dst */
static void gguf_block(const pare_r8 *w, int64_t r, int64_t b, uint8_t *dst) {
    const uint8_t *p = w->data + ((size_t)(r / 8) * (size_t)(w->cols / 32) + (size_t)b) * w->gbytes;
    const int64_t nw = r8_words(w->type), j = r % 8;
    memcpy(dst, p + 2 * j, 2);
    for (int64_t k = 0; k < nw; k++) memcpy(dst + 2 + 4 * k, p + 16 + 32 * k + 4 * j, 4);
}

void k_r8_dequant_row(const pare_r8 *w, int64_t r, float *dst) {
    const int64_t nb = w->cols / 32;
    const size_t bs = r8_block(w->type);
    uint8_t *row = k_scratch(K_SCRATCH_R8, (size_t)nb * bs);
    if (row) {
        for (int64_t b = 0; b < nb; b++) gguf_block(w, r, b, row + (size_t)b * bs);
        k_dequant_row(w->type, row, dst, w->cols);
        return;
    }
    uint8_t blk[sizeof(block_q8_0)]; /* no scratch: block by block */
    for (int64_t b = 0; b < nb; b++) {
        gguf_block(w, r, b, blk);
        k_dequant_row(w->type, blk, dst + 32 * b, 32);
    }
}

/* ---- the C reference rows --------------------------------------------------------------- */
static void ref_rows(const pare_r8 *w, int64_t g0, int64_t g1, const k_xvec *xv, float *y) {
    const int64_t nb = w->cols / 32;
    const int q4 = w->type == PARE_TYPE_Q4_0;
    for (int64_t g = g0; g < g1; g++) {
        float acc[8] = {0};
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *p = w->data + ((size_t)g * (size_t)nb + (size_t)b) * w->gbytes, *q = p + 16;
            const int8_t *x = xv->q + 32 * b;
            for (int r = 0; r < 8; r++) {
                int32_t s = 0;
                if (q4) {
                    for (int k = 0; k < 4; k++)
                        for (int i = 0; i < 4; i++) {
                            const uint8_t v = q[32 * k + 4 * r + i];
                            s += (v & 15) * x[4 * k + i] + (v >> 4) * x[16 + 4 * k + i];
                        }
                    s -= xv->s8[b];
                } else {
                    for (int k = 0; k < 8; k++)
                        for (int i = 0; i < 4; i++) s += (int8_t)q[32 * k + 4 * r + i] * x[4 * k + i];
                }
                uint16_t h;
                memcpy(&h, p + 2 * r, 2);
                const float sc = pare_f16_to_f32(h) * xv->d[b];
                acc[r] = fmaf(sc, (float)s, acc[r]);
            }
        }
        for (int r = 0; r < 8 && 8 * g + r < w->rows; r++) y[8 * g + r] = acc[r];
    }
}

void k_r8_ops_ref(k_r8_ops *t) { t->rows = ref_rows; }

/* ---- drivers ---------------------------------------------------------------------------- */
static k_r8_ops g_tab[3];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void bind_all(void) {
    const pare_isa cpu = k_cpu_isa();
    k_r8_ops_ref(&g_tab[PARE_ISA_REF]);
    g_tab[PARE_ISA_AVX2] = g_tab[PARE_ISA_REF];
    if (cpu >= PARE_ISA_AVX2) k_r8_ops_avx2(&g_tab[PARE_ISA_AVX2]);
    g_tab[PARE_ISA_AVX512] = g_tab[PARE_ISA_AVX2];
}

/* Groups per work item: the 16 rows of K_ROW_CHUNK */
#define R8_CHUNK (K_ROW_CHUNK / 8)

void k_r8_matvec(const pare_r8 *w, const float *x, float *y) {
    pthread_once(&g_once, bind_all);
    const k_r8_rows_fn fn = g_tab[k_isa()].rows;
    k_xvec xv = {.x = x};
    void *xbuf = k_scratch(K_SCRATCH_X, k_xvec_bytes(w->cols));
    if (!xbuf) { /* no memory for the rounded x: the exact x, block by block */
        uint8_t blk[sizeof(block_q8_0)];
        for (int64_t r = 0; r < w->rows; r++) {
            float s = 0;
            for (int64_t b = 0; b < w->cols / 32; b++) {
                gguf_block(w, r, b, blk);
                s += k_dot(w->type, blk, x + 32 * b, 32);
            }
            y[r] = s;
        }
        return;
    }
    k_prep_x(x, w->cols, xbuf, &xv);
    const int64_t nchunk = (w->groups + R8_CHUNK - 1) / R8_CHUNK;
    const int par = (double)w->bytes >= K_PAR_BYTES;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t c = 0; c < nchunk; c++) {
        const int64_t g0 = c * R8_CHUNK, g1 = g0 + R8_CHUNK < w->groups ? g0 + R8_CHUNK : w->groups;
        fn(w, g0, g1, &xv, y);
    }
}

static void r8_row(const void *ctx, int64_t r, float *dst) { k_r8_dequant_row(ctx, r, dst); }

void k_r8_matmul(const pare_r8 *w, const float *X, int64_t n, float *Y) {
    k_matmul_rows(r8_row, w, w->rows, w->cols, X, n, Y);
}
