/* nm_avx512.c - N:M rows with AVX-512F. Sixteen columns per step: their 16-bit mask word
 * picks the lanes, the next popcount(mask) kept values are loaded (always 16 of them: the
 * value arrays carry 64 bytes of padding), widened to floats and spread over the kept lanes
 * with vexpandps, then multiplied with x. The position in the values advances by the
 * popcount, so any N:M (and any mask) works; the dependency between steps is one add. */
#include "k_impl.h"

#include <immintrin.h>
#include <string.h>

static inline __mmask16 mask16(const uint8_t *mk, int64_t b) {
    uint16_t m;
    memcpy(&m, mk + 2 * b, 2);
    return (__mmask16)m;
}

static inline __m512 ld_f32(const uint8_t *v, size_t k) { return _mm512_loadu_ps((const float *)v + k); }
static inline __m512 ld_f16(const uint8_t *v, size_t k) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)v + k)));
}
static inline __m512 ld_bf16(const uint8_t *v, size_t k) {
    const __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)v + k));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
static inline __m512 ld_i8(const uint8_t *v, size_t k) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(v + k))));
}

static inline __m512 x16(const float *x, int64_t c, int64_t cols) {
    if (c + 16 <= cols) return _mm512_loadu_ps(x + c);
    return _mm512_maskz_loadu_ps((__mmask16)((1u << (cols - c)) - 1u), x + c);
}

/* Float values: two independent accumulators over pairs of 16-column steps. */
#define NM_ROWS_FLOAT(NAME, LOAD, ES)                                                               \
    static void NAME(const pare_nm *w, int64_t r0, int64_t r1, const float *x, float *y) {       \
        const int64_t nb = (w->cols + 15) / 16;                                                   \
        for (int64_t r = r0; r < r1; r++) {                                                       \
            const uint8_t *mk = w->mask + (size_t)r * w->mstride;                                 \
            const uint8_t *v = w->vals + (size_t)r * w->vstride;                                  \
            __m512 a0 = _mm512_setzero_ps(), a1 = a0;                                             \
            size_t k = 0;                                                                         \
            int64_t b = 0;                                                                        \
            for (; b + 2 <= nb; b += 2) {                                                         \
                _mm_prefetch((const char *)v + K_PF + ES * k, _MM_HINT_T0);                      \
                const __mmask16 m0 = mask16(mk, b), m1 = mask16(mk, b + 1);                       \
                const __m512 w0 = _mm512_maskz_expand_ps(m0, LOAD(v, k));                         \
                k += (size_t)__builtin_popcount(m0);                                              \
                const __m512 w1 = _mm512_maskz_expand_ps(m1, LOAD(v, k));                         \
                k += (size_t)__builtin_popcount(m1);                                              \
                a0 = _mm512_fmadd_ps(w0, x16(x, 16 * b, w->cols), a0);                            \
                a1 = _mm512_fmadd_ps(w1, x16(x, 16 * b + 16, w->cols), a1);                       \
            }                                                                                     \
            if (b < nb) {                                                                         \
                const __mmask16 m0 = mask16(mk, b);                                               \
                a0 = _mm512_fmadd_ps(_mm512_maskz_expand_ps(m0, LOAD(v, k)), x16(x, 16 * b, w->cols), a0); \
            }                                                                                     \
            y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));                                   \
        }                                                                                         \
    }
NM_ROWS_FLOAT(rows_f32, ld_f32, 4)
NM_ROWS_FLOAT(rows_f16, ld_f16, 2)
NM_ROWS_FLOAT(rows_bf16, ld_bf16, 2)

/* 8-bit values: per block of 32 columns (two steps) the int8 products are summed in floats
 * and scaled once; cols is a multiple of 32. */
static void rows_q8(const pare_nm *w, int64_t r0, int64_t r1, const float *x, float *y) {
    const int64_t nb = w->cols / 32;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *mk = w->mask + (size_t)r * w->mstride;
        const uint8_t *v = w->vals + (size_t)r * w->vstride;
        const uint16_t *sc = w->scale + (size_t)r * (size_t)nb;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        size_t k = 0;
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2) {
            _mm_prefetch((const char *)v + K_PF + k, _MM_HINT_T0);
            const __mmask16 m0 = mask16(mk, 2 * b), m1 = mask16(mk, 2 * b + 1);
            const __mmask16 m2 = mask16(mk, 2 * b + 2), m3 = mask16(mk, 2 * b + 3);
            const __m512 w0 = _mm512_maskz_expand_ps(m0, ld_i8(v, k));
            k += (size_t)__builtin_popcount(m0);
            const __m512 w1 = _mm512_maskz_expand_ps(m1, ld_i8(v, k));
            k += (size_t)__builtin_popcount(m1);
            const __m512 w2 = _mm512_maskz_expand_ps(m2, ld_i8(v, k));
            k += (size_t)__builtin_popcount(m2);
            const __m512 w3 = _mm512_maskz_expand_ps(m3, ld_i8(v, k));
            k += (size_t)__builtin_popcount(m3);
            const float *xb = x + 32 * b;
            const __m512 s0 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xb + 16), _mm512_mul_ps(w0, _mm512_loadu_ps(xb)));
            const __m512 s1 = _mm512_fmadd_ps(w3, _mm512_loadu_ps(xb + 48), _mm512_mul_ps(w2, _mm512_loadu_ps(xb + 32)));
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(sc[b])), s0, a0);
            a1 = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(sc[b + 1])), s1, a1);
        }
        if (b < nb) {
            const __mmask16 m0 = mask16(mk, 2 * b), m1 = mask16(mk, 2 * b + 1);
            const __m512 w0 = _mm512_maskz_expand_ps(m0, ld_i8(v, k));
            k += (size_t)__builtin_popcount(m0);
            const __m512 w1 = _mm512_maskz_expand_ps(m1, ld_i8(v, k));
            const float *xb = x + 32 * b;
            const __m512 s0 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xb + 16), _mm512_mul_ps(w0, _mm512_loadu_ps(xb)));
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(sc[b])), s0, a0);
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
}

void k_nm_ops_avx512(k_nm_rows_fn t[K_NM_NTYPES]) {
    t[K_NM_F32] = rows_f32;
    t[K_NM_F16] = rows_f16;
    t[K_NM_BF16] = rows_bf16;
    t[K_NM_Q8] = rows_q8;
}
