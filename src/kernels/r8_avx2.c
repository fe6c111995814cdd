/* r8_avx2.c - AVX2 rows of the eight-row interleaved Q8_0 and Q4_0 layout (r8.h). Each int32
 * lane sums one row; the operations and their order are those of the C reference in r8.c,
 * so the results are the same bits. Two groups at a time: two weight streams in flight,
 * each prefetched K_PF bytes ahead (one stream per core stops short of the DRAM bandwidth). */
#include "k_impl.h"

#include <immintrin.h>
#include <string.h>

static inline __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* sum over 4-byte groups of w * x, both signed int8 (|x| <= 127): maddubs wants an unsigned
 * operand, so w's sign moves onto x */
static inline __m256i dot_i8(__m256i w, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)), _mm256_set1_epi16(1));
}

/* the eight rows' integer dots of one Q8_0 group block against x's block (32 int8) */
static inline __m256i q8_group(const uint8_t *q, const int8_t *x) {
    __m256i s0 = dot_i8(_mm256_loadu_si256((const __m256i *)q), bcast4(x));
    __m256i s1 = dot_i8(_mm256_loadu_si256((const __m256i *)(q + 32)), bcast4(x + 4));
    for (int k = 2; k < 8; k += 2) {
        s0 = _mm256_add_epi32(s0, dot_i8(_mm256_loadu_si256((const __m256i *)(q + 32 * k)), bcast4(x + 4 * k)));
        s1 = _mm256_add_epi32(s1, dot_i8(_mm256_loadu_si256((const __m256i *)(q + 32 * k + 32)), bcast4(x + 4 * k + 4)));
    }
    return _mm256_add_epi32(s0, s1);
}

/* the same for Q4_0: nibbles (0..15) times x summed in int16 (8 products of at most
 * 2 * 15 * 127 each: no overflow), less 8 * sum(x) (s8) */
static inline __m256i q4_group(const uint8_t *q, const int8_t *x, int32_t s8) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256i p = _mm256_setzero_si256();
    for (int k = 0; k < 4; k++) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(q + 32 * k));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(v, m4), bcast4(x + 4 * k)));
        p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), bcast4(x + 16 + 4 * k)));
    }
    return _mm256_sub_epi32(_mm256_madd_epi16(p, _mm256_set1_epi16(1)), _mm256_set1_epi32(s8));
}

#ifndef R8_PF
#define R8_PF 32768
#endif
#ifndef R8_HINT
#define R8_HINT _MM_HINT_T0
#endif
static inline void prefetch_block(const uint8_t *p, size_t gbytes) {
    for (size_t o = 0; o < gbytes; o += 64) _mm_prefetch((const char *)p + R8_PF + o, R8_HINT);
}

static inline __m256 scales(const uint8_t *p, const float *dx) {
    return _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)), _mm256_broadcast_ss(dx));
}

static inline void store_group(const pare_r8 *w, int64_t g, __m256 acc, float *y) {
    if (8 * g + 8 <= w->rows) { _mm256_storeu_ps(y + 8 * g, acc); return; }
    float t[8];
    _mm256_storeu_ps(t, acc);
    for (int64_t r = 0; 8 * g + r < w->rows; r++) y[8 * g + r] = t[r];
}

#define R8_ROWS(NAME, GROUP)                                                                                     \
    static void NAME(const pare_r8 *w, int64_t g0, int64_t g1, const k_xvec *xv, float *y) {                   \
        const int64_t nb = w->cols / 32;                                                                        \
        const size_t gb = w->gbytes;                                                                            \
        int64_t g = g0;                                                                                         \
        for (; g + 2 <= g1; g += 2) {                                                                           \
            const uint8_t *p = w->data + (size_t)g * (size_t)nb * gb, *p2 = p + (size_t)nb * gb;                \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0;                                                           \
            for (int64_t b = 0; b < nb; b++, p += gb, p2 += gb) {                                               \
                prefetch_block(p, gb);                                                                          \
                prefetch_block(p2, gb);                                                                         \
                const int8_t *x = xv->q + 32 * b;                                                               \
                a0 = _mm256_fmadd_ps(scales(p, xv->d + b), _mm256_cvtepi32_ps(GROUP), a0);                       \
                a1 = _mm256_fmadd_ps(scales(p2, xv->d + b), _mm256_cvtepi32_ps(GROUP##2), a1);                   \
            }                                                                                                   \
            store_group(w, g, a0, y);                                                                           \
            store_group(w, g + 1, a1, y);                                                                       \
        }                                                                                                       \
        for (; g < g1; g++) {                                                                                   \
            const uint8_t *p = w->data + (size_t)g * (size_t)nb * gb;                                            \
            __m256 a0 = _mm256_setzero_ps();                                                                    \
            for (int64_t b = 0; b < nb; b++, p += gb) {                                                         \
                prefetch_block(p, gb);                                                                          \
                const int8_t *x = xv->q + 32 * b;                                                               \
                a0 = _mm256_fmadd_ps(scales(p, xv->d + b), _mm256_cvtepi32_ps(GROUP), a0);                       \
            }                                                                                                   \
            store_group(w, g, a0, y);                                                                           \
        }                                                                                                       \
    }

#define Q8G q8_group(p + 16, x)
#define Q8G2 q8_group(p2 + 16, x)
#define Q4G q4_group(p + 16, x, xv->s8[b])
#define Q4G2 q4_group(p2 + 16, x, xv->s8[b])
R8_ROWS(rows_q8, Q8G)
R8_ROWS(rows_q4, Q4G)

static void rows_avx2(const pare_r8 *w, int64_t g0, int64_t g1, const k_xvec *xv, float *y) {
    if (w->type == PARE_TYPE_Q8_0) rows_q8(w, g0, g1, xv, y);
    else rows_q4(w, g0, g1, xv, y);
}

void k_r8_ops_avx2(k_r8_ops *t) { t->rows = rows_avx2; }
