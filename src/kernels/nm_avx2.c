/* nm_avx2.c - N:M rows with AVX2+FMA. AVX2 has no expand instruction, so eight columns per
 * step: their mask byte selects a vpermps index vector from a 256-entry table (lane j takes
 * kept value number popcount(mask below j)); the index's sign bit marks the kept lanes and a
 * blend zeroes the others. The values' position advances by popcount(mask). */
#include "k_impl.h"

#include <immintrin.h>

static int32_t g_lut[256][8] __attribute__((aligned(32)));

static void lut_init(void) {
    for (int m = 0; m < 256; m++) {
        int k = 0;
        for (int j = 0; j < 8; j++) g_lut[m][j] = (m >> j) & 1 ? (int32_t)(0x80000000u | (uint32_t)k++) : 0;
    }
}

static inline __m256 spread(__m256 packed, unsigned m) {
    const __m256i idx = _mm256_load_si256((const __m256i *)g_lut[m]);
    return _mm256_blendv_ps(_mm256_setzero_ps(), _mm256_permutevar8x32_ps(packed, idx), _mm256_castsi256_ps(idx));
}

static inline __m256 ld_f32(const uint8_t *v, size_t k) { return _mm256_loadu_ps((const float *)v + k); }
static inline __m256 ld_f16(const uint8_t *v, size_t k) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)v + k)));
}
static inline __m256 ld_bf16(const uint8_t *v, size_t k) {
    const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)v + k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
static inline __m256 ld_i8(const uint8_t *v, size_t k) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(v + k))));
}

static inline __m256 x8(const float *x, int64_t c, int64_t cols) {
    if (c + 8 <= cols) return _mm256_loadu_ps(x + c);
    const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(cols - c)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_maskload_ps(x + c, lanes);
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define NM_ROWS_FLOAT(NAME, LOAD, ES)                                                             \
    static void NAME(const pare_nm *w, int64_t r0, int64_t r1, const float *x, float *y) {       \
        const int64_t nb = (w->cols + 7) / 8;                                                     \
        for (int64_t r = r0; r < r1; r++) {                                                       \
            const uint8_t *mk = w->mask + (size_t)r * w->mstride;                                 \
            const uint8_t *v = w->vals + (size_t)r * w->vstride;                                  \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0;                                             \
            size_t k = 0;                                                                         \
            int64_t b = 0;                                                                        \
            for (; b + 2 <= nb; b += 2) {                                                         \
                _mm_prefetch((const char *)v + K_PF + ES * k, _MM_HINT_T0);                      \
                const unsigned m0 = mk[b], m1 = mk[b + 1];                                        \
                const __m256 w0 = spread(LOAD(v, k), m0);                                         \
                k += (size_t)__builtin_popcount(m0);                                              \
                const __m256 w1 = spread(LOAD(v, k), m1);                                         \
                k += (size_t)__builtin_popcount(m1);                                              \
                a0 = _mm256_fmadd_ps(w0, x8(x, 8 * b, w->cols), a0);                              \
                a1 = _mm256_fmadd_ps(w1, x8(x, 8 * b + 8, w->cols), a1);                          \
            }                                                                                     \
            if (b < nb) a0 = _mm256_fmadd_ps(spread(LOAD(v, k), mk[b]), x8(x, 8 * b, w->cols), a0); \
            y[r] = hsum8(_mm256_add_ps(a0, a1));                                                  \
        }                                                                                         \
    }
NM_ROWS_FLOAT(rows_f32, ld_f32, 4)
NM_ROWS_FLOAT(rows_f16, ld_f16, 2)
NM_ROWS_FLOAT(rows_bf16, ld_bf16, 2)

/* 8-bit values: four steps per block of 32 columns, scaled once per block. */
static void rows_q8(const pare_nm *w, int64_t r0, int64_t r1, const float *x, float *y) {
    const int64_t nb = w->cols / 32;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *mk = w->mask + (size_t)r * w->mstride;
        const uint8_t *v = w->vals + (size_t)r * w->vstride;
        const uint16_t *sc = w->scale + (size_t)r * (size_t)nb;
        __m256 acc = _mm256_setzero_ps();
        size_t k = 0;
        for (int64_t b = 0; b < nb; b++) {
            _mm_prefetch((const char *)v + K_PF + k, _MM_HINT_T0);
            const float *xb = x + 32 * b;
            __m256 s = _mm256_setzero_ps();
            for (int j = 0; j < 4; j++) {
                const unsigned m = mk[4 * b + j];
                s = _mm256_fmadd_ps(spread(ld_i8(v, k), m), _mm256_loadu_ps(xb + 8 * j), s);
                k += (size_t)__builtin_popcount(m);
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(sc[b])), s, acc);
        }
        y[r] = hsum8(acc);
    }
}

/* ---- rows as dense floats (prefill panels) ----------------------------------------------- */
#define NM_DEQ(NAME, LOAD, SCALE)                                                                 \
    static void NAME(const pare_nm *w, int64_t r, float *dst) {                                  \
        const uint8_t *mk = w->mask + (size_t)r * w->mstride;                                     \
        const uint8_t *v = w->vals + (size_t)r * w->vstride;                                      \
        const uint16_t *sc = w->scale ? w->scale + (size_t)r * (size_t)(w->cols / 32) : NULL;     \
        size_t k = 0;                                                                             \
        int64_t b = 0;                                                                            \
        for (; 8 * b + 8 <= w->cols; b++) {                                                       \
            __m256 e = spread(LOAD(v, k), mk[b]);                                                 \
            if (SCALE) e = _mm256_mul_ps(e, _mm256_set1_ps(_cvtsh_ss(sc[b / 4])));               \
            _mm256_storeu_ps(dst + 8 * b, e);                                                     \
            k += (size_t)__builtin_popcount(mk[b]);                                               \
        }                                                                                         \
        if (8 * b < w->cols) {                                                                    \
            float t8[8];                                                                          \
            _mm256_storeu_ps(t8, spread(LOAD(v, k), mk[b]));                                      \
            for (int64_t c = 8 * b; c < w->cols; c++) dst[c] = t8[c - 8 * b];                     \
        }                                                                                         \
    }
NM_DEQ(deq_f32, ld_f32, 0)
NM_DEQ(deq_f16, ld_f16, 0)
NM_DEQ(deq_bf16, ld_bf16, 0)
NM_DEQ(deq_q8, ld_i8, 1)

void k_nm_ops_avx2(k_nm_ops *t) {
    lut_init();
    t->rows[K_NM_F32] = rows_f32;
    t->rows[K_NM_F16] = rows_f16;
    t->rows[K_NM_BF16] = rows_bf16;
    t->rows[K_NM_Q8] = rows_q8;
    t->deq[K_NM_F32] = deq_f32;
    t->deq[K_NM_F16] = deq_f16;
    t->deq[K_NM_BF16] = deq_bf16;
    t->deq[K_NM_Q8] = deq_q8;
}
