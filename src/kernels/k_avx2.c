/* k_avx2.c - AVX2 + FMA + F16C versions of the kernels (built with -mavx2 -mfma -mf16c; only
 * called when CPUID says the CPU has them). Each function mirrors the one of the same name in
 * ref.c. Float dots use 8-wide FMA accumulators, so they differ from the reference only by
 * summation order; dequantization is bit-identical; the Q8_0/Q4_0 matvec rows use x
 * quantized to int8 (k_xvec) and integer dot products, as llama.cpp does. */
#include "k_impl.h"

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float f16_1(uint16_t h) { return _cvtsh_ss(h); }

static inline uint16_t load_u16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

/* 8 halves / 8 bfloat16 / 8 int8 at p -> 8 floats */
static inline __m256 load8_f16(const void *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline __m256 load8_bf16(const void *p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
static inline __m256 cvt8_i8(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); }

/* the 32 weights of a Q4_0 block as int8 in [-8, 7], element order */
static inline void q4_unpack(const uint8_t *qs, __m128i *lo, __m128i *hi) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs), m4 = _mm_set1_epi8(0x0f), e8 = _mm_set1_epi8(8);
    *lo = _mm_sub_epi8(_mm_and_si128(raw, m4), e8);
    *hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), e8);
}

/* ---- dot (exact x) ---------------------------------------------------------------------- */
static float dot_f32(const void *row, const float *x, int64_t n) {
    const float *w = row;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) s += w[i] * x[i];
    return s;
}

static float dot_f16(const void *row, const float *x, int64_t n) {
    const uint8_t *w = row;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        _mm_prefetch((const char *)(w + 2 * i) + K_PF, _MM_HINT_T0);
        a0 = _mm256_fmadd_ps(load8_f16(w + 2 * i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(load8_f16(w + 2 * i + 16), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(load8_f16(w + 2 * i + 32), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(load8_f16(w + 2 * i + 48), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load8_f16(w + 2 * i), _mm256_loadu_ps(x + i), a0);
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) s += f16_1(load_u16(w + 2 * i)) * x[i];
    return s;
}

static float dot_bf16(const void *row, const float *x, int64_t n) {
    const uint8_t *w = row;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        _mm_prefetch((const char *)(w + 2 * i) + K_PF, _MM_HINT_T0);
        a0 = _mm256_fmadd_ps(load8_bf16(w + 2 * i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(load8_bf16(w + 2 * i + 16), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(load8_bf16(w + 2 * i + 32), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(load8_bf16(w + 2 * i + 48), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load8_bf16(w + 2 * i), _mm256_loadu_ps(x + i), a0);
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) s += pare_bf16_to_f32(load_u16(w + 2 * i)) * x[i];
    return s;
}

static float dot_q8_0(const void *row, const float *x, int64_t n) {
    const block_q8_0 *b = row;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        const __m128i q0 = _mm_loadu_si128((const __m128i *)b[i].qs);
        const __m128i q1 = _mm_loadu_si128((const __m128i *)(b[i].qs + 16));
        __m256 s = _mm256_mul_ps(cvt8_i8(q0), _mm256_loadu_ps(x));
        s = _mm256_fmadd_ps(cvt8_i8(_mm_srli_si128(q0, 8)), _mm256_loadu_ps(x + 8), s);
        s = _mm256_fmadd_ps(cvt8_i8(q1), _mm256_loadu_ps(x + 16), s);
        s = _mm256_fmadd_ps(cvt8_i8(_mm_srli_si128(q1, 8)), _mm256_loadu_ps(x + 24), s);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_1(b[i].d)), s, acc);
    }
    return hsum8(acc);
}

static float dot_q4_0(const void *row, const float *x, int64_t n) {
    const block_q4_0 *b = row;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
        __m128i lo, hi;
        q4_unpack(b[i].qs, &lo, &hi);
        __m256 s = _mm256_mul_ps(cvt8_i8(lo), _mm256_loadu_ps(x));
        s = _mm256_fmadd_ps(cvt8_i8(_mm_srli_si128(lo, 8)), _mm256_loadu_ps(x + 8), s);
        s = _mm256_fmadd_ps(cvt8_i8(hi), _mm256_loadu_ps(x + 16), s);
        s = _mm256_fmadd_ps(cvt8_i8(_mm_srli_si128(hi, 8)), _mm256_loadu_ps(x + 24), s);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_1(b[i].d)), s, acc);
    }
    return hsum8(acc);
}

/* ---- matvec rows with int8 x ------------------------------------------------------------ */
/* sum over 4-byte groups of w[j] * x[j], w and x signed int8 (|x| <= 127): 8 int32.
 * maddubs wants an unsigned operand, so move w's sign onto x (llama.cpp's trick). */
static inline __m256i dot_i8x32(__m256i w, __m256i x) {
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}
/* same with w unsigned (Q4_0 nibbles, 0..15) */
static inline __m256i dot_u4x32(__m256i w, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
}

static void rows_q8_0(const void *W, size_t rb, int64_t r0, int64_t r1, int64_t n, const k_xvec *xv,
                      float *y) {
    const int64_t nb = n / QK8_0;
    for (int64_t r = r0; r < r1; r++) {
        const block_q8_0 *b = (const block_q8_0 *)((const uint8_t *)W + (size_t)r * rb);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t i = 0;
        for (; i + 4 <= nb; i += 4) {
            _mm_prefetch((const char *)(b + i) + K_PF, _MM_HINT_T0);
            _mm_prefetch((const char *)(b + i) + K_PF + 64, _MM_HINT_T0);
            const __m256i p0 = dot_i8x32(_mm256_loadu_si256((const __m256i *)b[i].qs),
                                         _mm256_loadu_si256((const __m256i *)(xv->q + i * 32)));
            const __m256i p1 = dot_i8x32(_mm256_loadu_si256((const __m256i *)b[i + 1].qs),
                                         _mm256_loadu_si256((const __m256i *)(xv->q + i * 32 + 32)));
            const __m256i p2 = dot_i8x32(_mm256_loadu_si256((const __m256i *)b[i + 2].qs),
                                         _mm256_loadu_si256((const __m256i *)(xv->q + i * 32 + 64)));
            const __m256i p3 = dot_i8x32(_mm256_loadu_si256((const __m256i *)b[i + 3].qs),
                                         _mm256_loadu_si256((const __m256i *)(xv->q + i * 32 + 96)));
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_1(b[i].d) * xv->d[i]), _mm256_cvtepi32_ps(p0), a0);
            a1 = _mm256_fmadd_ps(_mm256_set1_ps(f16_1(b[i + 1].d) * xv->d[i + 1]), _mm256_cvtepi32_ps(p1), a1);
            a2 = _mm256_fmadd_ps(_mm256_set1_ps(f16_1(b[i + 2].d) * xv->d[i + 2]), _mm256_cvtepi32_ps(p2), a2);
            a3 = _mm256_fmadd_ps(_mm256_set1_ps(f16_1(b[i + 3].d) * xv->d[i + 3]), _mm256_cvtepi32_ps(p3), a3);
        }
        a0 = _mm256_add_ps(a0, a2);
        a1 = _mm256_add_ps(a1, a3);
        for (; i + 2 <= nb; i += 2) {
            _mm_prefetch((const char *)(b + i) + K_PF, _MM_HINT_T0);
            const __m256i p0 = dot_i8x32(_mm256_loadu_si256((const __m256i *)b[i].qs),
                                         _mm256_loadu_si256((const __m256i *)(xv->q + i * 32)));
            const __m256i p1 = dot_i8x32(_mm256_loadu_si256((const __m256i *)b[i + 1].qs),
                                         _mm256_loadu_si256((const __m256i *)(xv->q + i * 32 + 32)));
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_1(b[i].d) * xv->d[i]), _mm256_cvtepi32_ps(p0), a0);
            a1 = _mm256_fmadd_ps(_mm256_set1_ps(f16_1(b[i + 1].d) * xv->d[i + 1]), _mm256_cvtepi32_ps(p1), a1);
        }
        if (i < nb) {
            const __m256i p0 = dot_i8x32(_mm256_loadu_si256((const __m256i *)b[i].qs),
                                         _mm256_loadu_si256((const __m256i *)(xv->q + i * 32)));
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_1(b[i].d) * xv->d[i]), _mm256_cvtepi32_ps(p0), a0);
        }
        y[r] = hsum8(_mm256_add_ps(a0, a1));
    }
}

/* the 32 nibbles of a Q4_0 block as unsigned bytes, element order */
static inline __m256i q4_bytes(const uint8_t *qs) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
}

/* sum (nib - 8) * x = sum nib * x - 8 * sum x: the second term (s8) comes with x and is taken
 * off lane 0 in integers, so the float work is the same as for Q8_0. */
static inline __m256i q4_block(const block_q4_0 *b, const k_xvec *xv, int64_t i) {
    const __m256i p = dot_u4x32(q4_bytes(b->qs), _mm256_loadu_si256((const __m256i *)(xv->q + i * 32)));
    return _mm256_sub_epi32(p, _mm256_castsi128_si256(_mm_cvtsi32_si128(xv->s8[i])));
}

/* Four blocks per step, two per register: the bytes of blocks A and B side by side, low
 * nibbles = elements 0-15 of each, high nibbles = elements 16-31, x in the matching order
 * (k_xvec q4: per four blocks [A0-15 B0-15 C0-15 D0-15 | A16-31 B16-31 ...]). Each block
 * owns four int32 lanes; the offsets o4 and scales d4 come spread the same way. */
static inline __m256i q4_pair(const block_q4_0 *b) {
    return _mm256_set_m128i(_mm_loadu_si128((const __m128i *)b[1].qs), _mm_loadu_si128((const __m128i *)b[0].qs));
}
/* scales of blocks b[0] (bytes 0-1) and b[1] (bytes 18-19) of one 32-byte load, four lanes
 * each, times d4 */
static inline __m256 q4_scales2(const block_q4_0 *b, const float *d4) {
    const __m256i pick = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
                                          2, 3, 2, 3, 2, 3, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i w = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)b), pick);
    const __m128i h = _mm256_castsi256_si128(_mm256_permute4x64_epi64(w, _MM_SHUFFLE(3, 1, 2, 0)));
    return _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_loadu_ps(d4));
}
static inline __m256i q4_dot2(__m256i v, const int8_t *xlo, const int8_t *xhi, const int32_t *o4) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i p16 = _mm256_add_epi16(
        _mm256_maddubs_epi16(_mm256_and_si256(v, m4), _mm256_loadu_si256((const __m256i *)xlo)),
        _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), _mm256_loadu_si256((const __m256i *)xhi)));
    return _mm256_add_epi32(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)), _mm256_loadu_si256((const __m256i *)o4));
}

static void rows_q4_0(const void *W, size_t rb, int64_t r0, int64_t r1, int64_t n, const k_xvec *xv,
                      float *y) {
    const int64_t nb = n / QK4_0;
    for (int64_t r = r0; r < r1; r++) {
        const block_q4_0 *b = (const block_q4_0 *)((const uint8_t *)W + (size_t)r * rb);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        int64_t i = 0;
        for (; i + 4 <= nb; i += 4) {
            _mm_prefetch((const char *)(b + i) + K_PF, _MM_HINT_T0);
            const int8_t *xq = xv->q4 + i * 32;
            const __m256i pab = q4_dot2(q4_pair(b + i), xq, xq + 64, xv->o4 + i * 4);
            const __m256i pcd = q4_dot2(q4_pair(b + i + 2), xq + 32, xq + 96, xv->o4 + i * 4 + 8);
            a0 = _mm256_fmadd_ps(q4_scales2(b + i, xv->d4 + i * 4), _mm256_cvtepi32_ps(pab), a0);
            a1 = _mm256_fmadd_ps(q4_scales2(b + i + 2, xv->d4 + i * 4 + 8), _mm256_cvtepi32_ps(pcd), a1);
        }
        for (; i < nb; i++) {
            const __m256i p0 = q4_block(&b[i], xv, i);
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(f16_1(b[i].d) * xv->d[i]), _mm256_cvtepi32_ps(p0), a0);
        }
        y[r] = hsum8(_mm256_add_ps(a0, a1));
    }
}

/* ---- matvec rows of floats: four rows at a time ---------------------------------------- */
/* Each load of x serves four rows, and four weight streams are in flight at once; software
 * prefetch one group of rows ahead. One row at a time (dot_*), F16 decode on Zen 3 was 0.75
 * of the roofline; four rows made it 1.12-1.21x faster (docs/PERFORMANCE.md). */
#define ROWS4(NAME, ES, LOAD8, DOT)                                                                              \
    static void NAME(const void *W, size_t rb, int64_t r0, int64_t r1, int64_t n, const k_xvec *xv, float *y) { \
        const float *x = xv->x;                                                                             \
        const size_t pf = 4 * rb;                                                                           \
        const int64_t e4 = n % 16 ? r0 : r1; /* n not a multiple of 16: all rows singly, below */        \
        int64_t r = r0;                                                                                     \
        for (; r + 4 <= e4; r += 4) {                                                                       \
            const uint8_t *w0 = (const uint8_t *)W + (size_t)r * rb, *w1 = w0 + rb, *w2 = w1 + rb, *w3 = w2 + rb; \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;     \
            for (int64_t i = 0; i < n; i += 16) {                                                           \
                if (i % (64 / ES) == 0) { /* once per 64-byte line */                                  \
                    _mm_prefetch((const char *)(w0 + ES * i) + pf, _MM_HINT_T0);                           \
                    _mm_prefetch((const char *)(w1 + ES * i) + pf, _MM_HINT_T0);                           \
                    _mm_prefetch((const char *)(w2 + ES * i) + pf, _MM_HINT_T0);                           \
                    _mm_prefetch((const char *)(w3 + ES * i) + pf, _MM_HINT_T0);                           \
                }                                                                                           \
                const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);                 \
                a0 = _mm256_fmadd_ps(LOAD8(w0 + ES * i), x0, a0);                                            \
                a1 = _mm256_fmadd_ps(LOAD8(w1 + ES * i), x0, a1);                                            \
                a2 = _mm256_fmadd_ps(LOAD8(w2 + ES * i), x0, a2);                                            \
                a3 = _mm256_fmadd_ps(LOAD8(w3 + ES * i), x0, a3);                                            \
                b0 = _mm256_fmadd_ps(LOAD8(w0 + ES * (i + 8)), x1, b0);                                       \
                b1 = _mm256_fmadd_ps(LOAD8(w1 + ES * (i + 8)), x1, b1);                                       \
                b2 = _mm256_fmadd_ps(LOAD8(w2 + ES * (i + 8)), x1, b2);                                       \
                b3 = _mm256_fmadd_ps(LOAD8(w3 + ES * (i + 8)), x1, b3);                                       \
            }                                                                                               \
            y[r] = hsum8(_mm256_add_ps(a0, b0));                                                            \
            y[r + 1] = hsum8(_mm256_add_ps(a1, b1));                                                        \
            y[r + 2] = hsum8(_mm256_add_ps(a2, b2));                                                        \
            y[r + 3] = hsum8(_mm256_add_ps(a3, b3));                                                        \
        }                                                                                                   \
        for (; r < r1; r++) y[r] = DOT((const uint8_t *)W + (size_t)r * rb, x, n);                          \
    }
static inline __m256 load8_f32(const void *p) { return _mm256_loadu_ps((const float *)p); }
ROWS4(rows_f32, 4, load8_f32, dot_f32)
ROWS4(rows_f16, 2, load8_f16, dot_f16)
ROWS4(rows_bf16, 2, load8_bf16, dot_bf16)

/* ---- dequantize (bit-identical to ref.c) ------------------------------------------------ */
static void dequant_f16(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8_f16(p + 2 * i));
    for (; i < n; i++) dst[i] = f16_1(load_u16(p + 2 * i));
}

static void dequant_bf16(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8_bf16(p + 2 * i));
    for (; i < n; i++) dst[i] = pare_bf16_to_f32(load_u16(p + 2 * i));
}

static void dequant_q8_0(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        const __m256 d = _mm256_set1_ps(f16_1(b[i].d));
        const __m128i q0 = _mm_loadu_si128((const __m128i *)b[i].qs);
        const __m128i q1 = _mm_loadu_si128((const __m128i *)(b[i].qs + 16));
        _mm256_storeu_ps(dst, _mm256_mul_ps(d, cvt8_i8(q0)));
        _mm256_storeu_ps(dst + 8, _mm256_mul_ps(d, cvt8_i8(_mm_srli_si128(q0, 8))));
        _mm256_storeu_ps(dst + 16, _mm256_mul_ps(d, cvt8_i8(q1)));
        _mm256_storeu_ps(dst + 24, _mm256_mul_ps(d, cvt8_i8(_mm_srli_si128(q1, 8))));
    }
}

static void dequant_q4_0(const void *src, float *dst, int64_t n) {
    const block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        const __m256 d = _mm256_set1_ps(f16_1(b[i].d));
        __m128i lo, hi;
        q4_unpack(b[i].qs, &lo, &hi);
        _mm256_storeu_ps(dst, _mm256_mul_ps(d, cvt8_i8(lo)));
        _mm256_storeu_ps(dst + 8, _mm256_mul_ps(d, cvt8_i8(_mm_srli_si128(lo, 8))));
        _mm256_storeu_ps(dst + 16, _mm256_mul_ps(d, cvt8_i8(hi)));
        _mm256_storeu_ps(dst + 24, _mm256_mul_ps(d, cvt8_i8(_mm_srli_si128(hi, 8))));
    }
}

/* ---- x for the int8 rows: k_quantize_x, 8 lanes at a time (the same bytes) ------------- */
static inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}
static inline int hsum8_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static void quantize_x(const float *x, int64_t n, void *buf, k_xvec *v) {
    const int64_t nb = n / K_QX, full = nb / 4 * 4;
    const k_xbuf o = k_xvec_layout(buf, n);
    *v = (k_xvec){x, o.d, o.s8, o.q, o.q4, o.d4, o.o4};
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), big = _mm256_set1_ps(FLT_MAX);
    for (int64_t b = 0; b < nb; b++) {
        __m256 vv[4], a[4];
        int fin = 0xff;
        for (int k = 0; k < 4; k++) {
            vv[k] = _mm256_loadu_ps(x + b * K_QX + 8 * k);
            a[k] = _mm256_and_ps(vv[k], absmask);
            fin &= _mm256_movemask_ps(_mm256_cmp_ps(a[k], big, _CMP_LE_OQ));
        }
        __m256i q = _mm256_setzero_si256();
        float d = NAN;
        int sum = 0;
        if (fin == 0xff) {
            float id;
            d = k_xscale(hmax8(_mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]))), &id);
            const __m256 vid = _mm256_set1_ps(id);
            __m256i i[4];
            for (int k = 0; k < 4; k++) i[k] = _mm256_cvtps_epi32(_mm256_mul_ps(vv[k], vid));
            sum = hsum8_i32(_mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3])));
            /* packs work within 128-bit lanes: put the 32-bit groups back in order */
            q = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
            q = _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        }
        _mm256_storeu_si256((__m256i *)(o.q + b * K_QX), q);
        if (b < full) {
            int8_t *g = o.q4 + 128 * (b / 4) + 16 * (b % 4);
            _mm_storeu_si128((__m128i *)g, _mm256_castsi256_si128(q));
            _mm_storeu_si128((__m128i *)(g + 64), _mm256_extracti128_si256(q, 1));
        }
        o.d[b] = d;
        o.s8[b] = 8 * sum;
        _mm_storeu_ps(o.d4 + 4 * b, _mm_set1_ps(d));
        _mm_storeu_si128((__m128i *)(o.o4 + 4 * b), _mm_set1_epi32(-2 * sum));
    }
}

void k_ops_avx2(k_ops ops[K_NTYPES]) {
    ops[K_F32].dot = dot_f32;
    ops[K_F32].rows = rows_f32;
    ops[K_F16] = (k_ops){dot_f16, rows_f16, dequant_f16, 0, NULL};
    ops[K_BF16] = (k_ops){dot_bf16, rows_bf16, dequant_bf16, 0, NULL};
    ops[K_Q8_0] = (k_ops){dot_q8_0, rows_q8_0, dequant_q8_0, 1, quantize_x};
    ops[K_Q4_0] = (k_ops){dot_q4_0, rows_q4_0, dequant_q4_0, 1, quantize_x};
}

/* ---- machine probe: FMA throughput ------------------------------------------------------ */
/* iters rounds of 12 independent 8-wide FMAs (enough to cover latency x ports); returns a
 * value that depends on every FMA so none is optimized away. */
float k_fma_burst_avx2(int64_t iters) {
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3), a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5);
    __m256 a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7), a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
    for (int64_t t = 0; t < iters; t++) {
        a0 = _mm256_fmadd_ps(a0, m, c); a1 = _mm256_fmadd_ps(a1, m, c); a2 = _mm256_fmadd_ps(a2, m, c); a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c); a5 = _mm256_fmadd_ps(a5, m, c); a6 = _mm256_fmadd_ps(a6, m, c); a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c); a9 = _mm256_fmadd_ps(a9, m, c); a10 = _mm256_fmadd_ps(a10, m, c); a11 = _mm256_fmadd_ps(a11, m, c);
    }
    const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)), _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7))), _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    return hsum8(s);
}

/* ---- prefill: Y = X W^T on an F32 panel --------------------------------------------------- */
/* The AVX2 counterpart of k_gemm_avx512, on Xt in blocks of 16 tokens (column k of a block
 * at + 16 k, so each column is one cache line, read in order): a register tile of 16 tokens x 6 weight rows, 12 accumulators, two Xt
 * vectors and six broadcast weights per column, i.e. 12 FMAs for 8 loads, with the 16
 * registers of AVX2 (the 12 accumulators, two of x, one broadcast). A tile's 16 x 6 outputs
 * go through a small buffer to Y's columns. Rows beyond a multiple of 6 take a one-row tile
 * (four accumulators over k mod 2, so the FMA latency does not set its pace). Each output
 * is summed over k in the same order whatever the thread count. */
#define G2_NR K_GEMM2_ROWS

void k_gemm_avx2(const float *Xt, int64_t ldt, int64_t n, const float *W, int64_t ldw, int64_t p, int64_t K, float *Y,
                 int64_t ldy) {
    float tmp[16 * G2_NR];
    for (int64_t t = 0; t < n; t += 16) {
        const int64_t nt = n - t < 16 ? n - t : 16;
        const float *xb = Xt + (t / ldt) * K * ldt + t % ldt; /* ldt 16: the block's start */
        int64_t r = 0;
        for (; r + G2_NR <= p; r += G2_NR) {
            __m256 a[G2_NR][2];
#pragma GCC unroll 6
            for (int j = 0; j < G2_NR; j++) a[j][0] = a[j][1] = _mm256_setzero_ps();
            const float *w = W + r * ldw, *x = xb;
            for (int64_t k = 0; k < K; k++, x += ldt) {
                const __m256 x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 8);
#pragma GCC unroll 6
                for (int j = 0; j < G2_NR; j++) {
                    const __m256 bb = _mm256_broadcast_ss(w + j * ldw + k);
                    a[j][0] = _mm256_fmadd_ps(x0, bb, a[j][0]);
                    a[j][1] = _mm256_fmadd_ps(x1, bb, a[j][1]);
                }
            }
#pragma GCC unroll 6
            for (int j = 0; j < G2_NR; j++) {
                _mm256_storeu_ps(tmp + 16 * j, a[j][0]);
                _mm256_storeu_ps(tmp + 16 * j + 8, a[j][1]);
            }
            for (int64_t i = 0; i < nt; i++)
                for (int j = 0; j < G2_NR; j++) Y[(t + i) * ldy + r + j] = tmp[16 * j + i];
        }
        for (; r < p; r++) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
            const float *w = W + r * ldw, *x = xb;
            int64_t k = 0;
            for (; k + 2 <= K; k += 2, x += 2 * ldt) {
                const __m256 w0 = _mm256_broadcast_ss(w + k), w1 = _mm256_broadcast_ss(w + k + 1);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x), w0, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8), w0, a1);
                b0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + ldt), w1, b0);
                b1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + ldt + 8), w1, b1);
            }
            if (k < K) {
                const __m256 w0 = _mm256_broadcast_ss(w + k);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x), w0, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8), w0, a1);
            }
            _mm256_storeu_ps(tmp, _mm256_add_ps(a0, b0));
            _mm256_storeu_ps(tmp + 8, _mm256_add_ps(a1, b1));
            for (int64_t i = 0; i < nt; i++) Y[(t + i) * ldy + r] = tmp[i];
        }
    }
}
