/* k_avx512.c - AVX-512 (F/BW/VL/DQ) versions of the kernels; see k_avx2.c for the scheme.
 * 16-wide float accumulators with masked tails. The int8 rows hold two Q8_0 blocks (eight
 * int32 lanes each) or four Q4_0 blocks (four lanes each) per 512-bit register, with the
 * f16 scales gathered by vpermw. Where the CPU has AVX512-VNNI, the int8 dot is vpdpbusd
 * (functions built with a target attribute and bound only when CPUID reports it).
 *
 * BF16 weights are widened exactly (a 16-bit shift) rather than fed to vdpbf16ps, which
 * would also round x to bfloat16; the matvec is bound by memory, not by the FMAs. */
#include "k_impl.h"

#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline float f16_1(uint16_t h) { return _cvtsh_ss(h); }

static inline uint16_t load_u16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

static inline __mmask16 tail_mask(int64_t left) { return (__mmask16)((1u << left) - 1u); }

static inline __m512 cvt16_f16(__m256i h) { return _mm512_cvtph_ps(h); }
static inline __m512 cvt16_bf16(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
static inline __m512 cvt16_i8(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)); }

/* ---- dot (exact x) ---------------------------------------------------------------------- */
static float dot_f32(const void *row, const float *x, int64_t n) {
    const float *w = row;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(x + i), a0);
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + i), _mm512_maskz_loadu_ps(m, x + i), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* F16 and BF16 differ only in the widening */
#define DOT_HALF(NAME, CVT)                                                                       \
    static float NAME(const void *row, const float *x, int64_t n) {                               \
        const uint16_t *w = row;                                                                  \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                               \
        int64_t i = 0;                                                                            \
        for (; i + 64 <= n; i += 64) {                                                            \
            _mm_prefetch((const char *)(w + i) + K_PF, _MM_HINT_T0);                              \
            _mm_prefetch((const char *)(w + i) + K_PF + 64, _MM_HINT_T0);                         \
            a0 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(w + i))),               \
                                 _mm512_loadu_ps(x + i), a0);                                     \
            a1 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(w + i + 16))),          \
                                 _mm512_loadu_ps(x + i + 16), a1);                                \
            a2 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(w + i + 32))),          \
                                 _mm512_loadu_ps(x + i + 32), a2);                                \
            a3 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(w + i + 48))),          \
                                 _mm512_loadu_ps(x + i + 48), a3);                                \
        }                                                                                         \
        for (; i + 16 <= n; i += 16)                                                              \
            a0 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(w + i))),               \
                                 _mm512_loadu_ps(x + i), a0);                                     \
        if (i < n) {                                                                              \
            const __mmask16 m = tail_mask(n - i);                                                 \
            a1 = _mm512_fmadd_ps(CVT(_mm256_maskz_loadu_epi16(m, w + i)),                         \
                                 _mm512_maskz_loadu_ps(m, x + i), a1);                            \
        }                                                                                         \
        return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))); \
    }
DOT_HALF(dot_f16, cvt16_f16)
DOT_HALF(dot_bf16, cvt16_bf16)

/* matvec rows of half floats, four rows at a time: four weight streams per thread keep more
 * cache misses in flight than one (a single stream stops short of the DRAM bandwidth), and
 * each x load serves four rows. Sums in the same order as dot_* per row, so the result is
 * the same as four calls of it... up to the association of the partial sums (checked
 * against the reference like every kernel). */
#define ROWS_HALF(NAME, CVT, DOT)                                                                 \
    static void NAME(const void *W, size_t rb, int64_t r0, int64_t r1, int64_t n, const k_xvec *xv, float *y) { \
        const float *x = xv->x;                                                                   \
        int64_t r = r0;                                                                           \
        for (; r + 4 <= r1; r += 4) {                                                             \
            const uint16_t *w0 = (const uint16_t *)((const uint8_t *)W + (size_t)r * rb);         \
            const uint16_t *w1 = (const uint16_t *)((const uint8_t *)w0 + rb);                    \
            const uint16_t *w2 = (const uint16_t *)((const uint8_t *)w1 + rb);                    \
            const uint16_t *w3 = (const uint16_t *)((const uint8_t *)w2 + rb);                    \
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                           \
            int64_t i = 0;                                                                        \
            for (; i + 32 <= n; i += 32) {                                                        \
                _mm_prefetch((const char *)(w0 + i) + K_PF, _MM_HINT_T0);                         \
                _mm_prefetch((const char *)(w1 + i) + K_PF, _MM_HINT_T0);                         \
                _mm_prefetch((const char *)(w2 + i) + K_PF, _MM_HINT_T0);                         \
                _mm_prefetch((const char *)(w3 + i) + K_PF, _MM_HINT_T0);                         \
                const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);       \
                a0 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(w0 + i))), x0, a0); \
                a1 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(w1 + i))), x0, a1); \
                a2 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(w2 + i))), x0, a2); \
                a3 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(w3 + i))), x0, a3); \
                a0 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(w0 + i + 16))), x1, a0); \
                a1 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(w1 + i + 16))), x1, a1); \
                a2 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(w2 + i + 16))), x1, a2); \
                a3 = _mm512_fmadd_ps(CVT(_mm256_loadu_si256((const __m256i *)(w3 + i + 16))), x1, a3); \
            }                                                                                     \
            for (; i < n; i += 16) {                                                              \
                const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);           \
                const __m512 x0 = _mm512_maskz_loadu_ps(m, x + i);                                \
                a0 = _mm512_fmadd_ps(CVT(_mm256_maskz_loadu_epi16(m, w0 + i)), x0, a0);           \
                a1 = _mm512_fmadd_ps(CVT(_mm256_maskz_loadu_epi16(m, w1 + i)), x0, a1);           \
                a2 = _mm512_fmadd_ps(CVT(_mm256_maskz_loadu_epi16(m, w2 + i)), x0, a2);           \
                a3 = _mm512_fmadd_ps(CVT(_mm256_maskz_loadu_epi16(m, w3 + i)), x0, a3);           \
            }                                                                                     \
            y[r] = _mm512_reduce_add_ps(a0); y[r + 1] = _mm512_reduce_add_ps(a1);                 \
            y[r + 2] = _mm512_reduce_add_ps(a2); y[r + 3] = _mm512_reduce_add_ps(a3);             \
        }                                                                                         \
        for (; r < r1; r++) y[r] = DOT((const uint8_t *)W + (size_t)r * rb, x, n);                \
    }
ROWS_HALF(rows_f16, cvt16_f16, dot_f16)
ROWS_HALF(rows_bf16, cvt16_bf16, dot_bf16)

static float dot_q8_0(const void *row, const float *x, int64_t n) {
    const block_q8_0 *b = row;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        __m512 s = _mm512_mul_ps(cvt16_i8(_mm_loadu_si128((const __m128i *)b[i].qs)), _mm512_loadu_ps(x));
        s = _mm512_fmadd_ps(cvt16_i8(_mm_loadu_si128((const __m128i *)(b[i].qs + 16))), _mm512_loadu_ps(x + 16), s);
        acc = _mm512_fmadd_ps(_mm512_set1_ps(f16_1(b[i].d)), s, acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* the 32 weights of a Q4_0 block as int8 in [-8, 7]: elements 0-15 and 16-31 */
static inline void q4_unpack(const uint8_t *qs, __m128i *lo, __m128i *hi) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)qs), m4 = _mm_set1_epi8(0x0f), e8 = _mm_set1_epi8(8);
    *lo = _mm_sub_epi8(_mm_and_si128(raw, m4), e8);
    *hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), m4), e8);
}

static float dot_q4_0(const void *row, const float *x, int64_t n) {
    const block_q4_0 *b = row;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
        __m128i lo, hi;
        q4_unpack(b[i].qs, &lo, &hi);
        __m512 s = _mm512_mul_ps(cvt16_i8(lo), _mm512_loadu_ps(x));
        s = _mm512_fmadd_ps(cvt16_i8(hi), _mm512_loadu_ps(x + 16), s);
        acc = _mm512_fmadd_ps(_mm512_set1_ps(f16_1(b[i].d)), s, acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* ---- matvec rows with int8 x ------------------------------------------------------------ */
/* Q8_0 takes two blocks per register (eight int32 lanes each). dot_u8_*(u, s): 16 int32
 * sums of four u8 x s8 products; plain AVX-512BW: maddubs (pairs to s16) then madd with 1;
 * VNNI: one dpbusd. For Q8_0's signed w, |w| is the unsigned operand and w's sign moves onto
 * x (|x| <= 127, |w| <= 128: no saturation). */
static inline __m512i dot_u8_bw(__m512i u, __m512i s) {
    return _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1));
}
__attribute__((target("avx512vnni"))) static inline __m512i dot_u8_vnni(__m512i u, __m512i s) {
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
}
/* acc + u1 . s1 + u2 . s2 with u < 16 (Q4_0 nibbles): the int16 pair sums of both fit
 * (<= 4 * 15 * 127) */
static inline __m512i dot2_u8_bw(__m512i acc, __m512i u1, __m512i s1, __m512i u2, __m512i s2) {
    const __m512i p16 = _mm512_add_epi16(_mm512_maddubs_epi16(u1, s1), _mm512_maddubs_epi16(u2, s2));
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p16, _mm512_set1_epi16(1)));
}
__attribute__((target("avx512vnni"))) static inline __m512i dot2_u8_vnni(__m512i acc, __m512i u1, __m512i s1,
                                                                        __m512i u2, __m512i s2) {
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc, u1, s1), u2, s2);
}
static inline __m512i sign_to_x(__m512i w, __m512i x) {
    return _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
}

/* 256-bit halves of one block each -> one register */
static inline __m512i two(__m256i a, __m256i b) { return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1); }
static inline __m512 two_scales(float a, float b) {
    return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}
/* the scales of Q8_0 blocks b[0], b[1] (f16 words 0 and 17 of one 64-byte load, by vpermw)
 * times dx[0], dx[1]: eight lanes each */
static inline __m512 q8_scales2(const block_q8_0 *b, const float *dx) {
    const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 17, 17, 17, 17, 17,
                                         17, 17, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i sel = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idx, _mm512_loadu_si512(b))));
    const __m128 d2 = _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)dx));
    return _mm512_mul_ps(dw, _mm512_permutexvar_ps(sel, _mm512_castps128_ps512(d2)));
}

/* the nibbles of blocks a and b as unsigned bytes, element order, a in the low half */
static inline __m512i q4_bytes2(const uint8_t *qa, const uint8_t *qb) {
    const __m256i v = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)qb), _mm_loadu_si128((const __m128i *)qa));
    const __m512i t = two(v, _mm256_srli_epi16(v, 4));                /* a, b, a>>4, b>>4 */
    return _mm512_and_si512(_mm512_shuffle_i64x2(t, t, _MM_SHUFFLE(3, 1, 2, 0)), _mm512_set1_epi8(0x0f));
}
/* Q4_0 offset: 8 * sum(x) of block i at lane 0, of block i+1 at lane 8 */
static inline __m512i q4_offsets(const int32_t *s8) {
    return _mm512_inserti32x4(_mm512_castsi128_si512(_mm_cvtsi32_si128(s8[0])), _mm_cvtsi32_si128(s8[1]), 2);
}
/* one block alone (odd count) in the low half, zeros above */
static inline __m512i one(__m256i a) { return _mm512_inserti64x4(_mm512_setzero_si512(), a, 0); }
static inline __m512i q4_bytes1(const uint8_t *qa) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)qa);
    return one(_mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f)));
}

/* The blocks of one row from block i on, two then one (the tail of the four-block loop). */
#define Q8_TAIL(DOT, b, i, nb, a0, a1)                                                            \
    for (; i + 2 <= nb; i += 2) {                                                                 \
        const __m512i w0 = two(_mm256_loadu_si256((const __m256i *)b[i].qs),                      \
                               _mm256_loadu_si256((const __m256i *)b[i + 1].qs));                 \
        const __m512i p0 = DOT(_mm512_abs_epi8(w0), sign_to_x(w0, _mm512_loadu_si512(xv->q + i * 32))); \
        a0 = _mm512_fmadd_ps(two_scales(f16_1(b[i].d) * xv->d[i], f16_1(b[i + 1].d) * xv->d[i + 1]), \
                             _mm512_cvtepi32_ps(p0), a0);                                         \
    }                                                                                             \
    if (i < nb) {                                                                                 \
        const __m512i w0 = one(_mm256_loadu_si256((const __m256i *)b[i].qs));                     \
        const __m512i x0 = one(_mm256_loadu_si256((const __m256i *)(xv->q + i * 32)));            \
        const __m512i p0 = DOT(_mm512_abs_epi8(w0), sign_to_x(w0, x0));                           \
        a1 = _mm512_fmadd_ps(two_scales(f16_1(b[i].d) * xv->d[i], 0.0f), _mm512_cvtepi32_ps(p0), a1); \
    }

/* four blocks of row b from block i into a0, a1, with x0, x1 loaded once for both rows */
#define Q8_STEP4(DOT, b, i, x0, x1, a0, a1)                                                       \
    do {                                                                                          \
        _mm_prefetch((const char *)(b + i) + K_PF, _MM_HINT_T0);                                  \
        _mm_prefetch((const char *)(b + i) + K_PF + 64, _MM_HINT_T0);                             \
        const __m512i w0 = two(_mm256_loadu_si256((const __m256i *)b[i].qs),                      \
                               _mm256_loadu_si256((const __m256i *)b[i + 1].qs));                 \
        const __m512i w1 = two(_mm256_loadu_si256((const __m256i *)b[i + 2].qs),                  \
                               _mm256_loadu_si256((const __m256i *)b[i + 3].qs));                 \
        const __m512i p0 = DOT(_mm512_abs_epi8(w0), sign_to_x(w0, x0));                           \
        const __m512i p1 = DOT(_mm512_abs_epi8(w1), sign_to_x(w1, x1));                           \
        a0 = _mm512_fmadd_ps(q8_scales2(b + i, xv->d + i), _mm512_cvtepi32_ps(p0), a0);           \
        a1 = _mm512_fmadd_ps(q8_scales2(b + i + 2, xv->d + i + 2), _mm512_cvtepi32_ps(p1), a1);   \
    } while (0)

/* Two rows at a time: two weight streams per thread (more misses in flight than one, which
 * stops short of the DRAM bandwidth) sharing each load of x. */
#define ROWS_Q8_0(NAME, DOT, ATTR)                                                                \
    ATTR static void NAME(const void *W, size_t rb, int64_t r0, int64_t r1, int64_t n,            \
                          const k_xvec *xv, float *y) {                                          \
        const int64_t nb = n / QK8_0;                                                             \
        int64_t r = r0;                                                                           \
        for (; r + 2 <= r1; r += 2) {                                                             \
            const block_q8_0 *b = (const block_q8_0 *)((const uint8_t *)W + (size_t)r * rb);      \
            const block_q8_0 *c = (const block_q8_0 *)((const uint8_t *)b + rb);                  \
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, c0 = a0, c1 = a0;                           \
            int64_t i = 0;                                                                        \
            for (; i + 4 <= nb; i += 4) {                                                         \
                const __m512i x0 = _mm512_loadu_si512(xv->q + i * 32);                            \
                const __m512i x1 = _mm512_loadu_si512(xv->q + i * 32 + 64);                       \
                Q8_STEP4(DOT, b, i, x0, x1, a0, a1);                                              \
                Q8_STEP4(DOT, c, i, x0, x1, c0, c1);                                              \
            }                                                                                     \
            int64_t j = i;                                                                        \
            Q8_TAIL(DOT, b, i, nb, a0, a1)                                                        \
            Q8_TAIL(DOT, c, j, nb, c0, c1)                                                        \
            y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));                                   \
            y[r + 1] = _mm512_reduce_add_ps(_mm512_add_ps(c0, c1));                               \
        }                                                                                         \
        for (; r < r1; r++) {                                                                     \
            const block_q8_0 *b = (const block_q8_0 *)((const uint8_t *)W + (size_t)r * rb);      \
            __m512 a0 = _mm512_setzero_ps(), a1 = a0;                                             \
            int64_t i = 0;                                                                        \
            for (; i + 4 <= nb; i += 4) {                                                         \
                const __m512i x0 = _mm512_loadu_si512(xv->q + i * 32);                            \
                const __m512i x1 = _mm512_loadu_si512(xv->q + i * 32 + 64);                       \
                Q8_STEP4(DOT, b, i, x0, x1, a0, a1);                                              \
            }                                                                                     \
            Q8_TAIL(DOT, b, i, nb, a0, a1)                                                        \
            y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));                                   \
        }                                                                                         \
    }

/* Q4_0, four blocks per step. The weight register holds the four blocks' 16 bytes side by
 * side; its low nibbles are elements 0-15 of each block, its high nibbles elements 16-31,
 * and x comes in the matching order (k_xvec q4), so every block owns four int32 lanes. The
 * sums start from the offsets -8 * sum(x) spread over those lanes (o4); the four f16 scales
 * are picked from one 64-byte load by vpermw, four lanes each, and times d4. Fewer than four
 * blocks left: two, then one, as for Q8_0. */
static inline __m512i q4_bytes4(const block_q4_0 *b) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)b[0].qs));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)b[1].qs), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)b[2].qs), 2);
    return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)b[3].qs), 3);
}
/* word k * 9 is the scale of block k (18-byte blocks); 4 blocks = 72 bytes, scales in the
 * first 56 */
static inline __m512 q4_scales4(const block_q4_0 *b, const float *d4) {
    const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 27, 27, 27, 27, 18, 18,
                                         18, 18, 9, 9, 9, 9, 0, 0, 0, 0);
    const __m512i w = _mm512_permutexvar_epi16(idx, _mm512_loadu_si512(b));
    return _mm512_mul_ps(_mm512_cvtph_ps(_mm512_castsi512_si256(w)), _mm512_loadu_ps(d4));
}

#define Q4_STEP4(DOT2, b, i, xlo, xhi, o4, a0)                                                    \
    do {                                                                                          \
        _mm_prefetch((const char *)(b + i) + K_PF, _MM_HINT_T0);                                  \
        const __m512i v = q4_bytes4(b + i);                                                       \
        const __m512i p = DOT2(o4, _mm512_and_si512(v, m4), xlo, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4), xhi); \
        a0 = _mm512_fmadd_ps(q4_scales4(b + i, xv->d4 + i * 4), _mm512_cvtepi32_ps(p), a0);      \
    } while (0)

#define Q4_TAIL(DOT, b, i, nb, a1)                                                                \
    for (; i + 2 <= nb; i += 2) {                                                                 \
        __m512i p0 = DOT(q4_bytes2(b[i].qs, b[i + 1].qs), _mm512_loadu_si512(xv->q + i * 32));     \
        p0 = _mm512_sub_epi32(p0, q4_offsets(xv->s8 + i));                                        \
        a1 = _mm512_fmadd_ps(two_scales(f16_1(b[i].d) * xv->d[i], f16_1(b[i + 1].d) * xv->d[i + 1]), \
                             _mm512_cvtepi32_ps(p0), a1);                                         \
    }                                                                                             \
    if (i < nb) {                                                                                 \
        const __m512i x0 = one(_mm256_loadu_si256((const __m256i *)(xv->q + i * 32)));            \
        __m512i p0 = DOT(q4_bytes1(b[i].qs), x0);                                                 \
        p0 = _mm512_sub_epi32(p0, _mm512_castsi128_si512(_mm_cvtsi32_si128(xv->s8[i])));           \
        a1 = _mm512_fmadd_ps(two_scales(f16_1(b[i].d) * xv->d[i], 0.0f), _mm512_cvtepi32_ps(p0), a1); \
    }

/* two rows at a time, as Q8_0 */
#define ROWS_Q4_0(NAME, DOT, DOT2, ATTR)                                                          \
    ATTR static void NAME(const void *W, size_t rb, int64_t r0, int64_t r1, int64_t n,            \
                          const k_xvec *xv, float *y) {                                          \
        const int64_t nb = n / QK4_0;                                                             \
        const __m512i m4 = _mm512_set1_epi8(0x0f);                                                \
        int64_t r = r0;                                                                           \
        for (; r + 2 <= r1; r += 2) {                                                             \
            const block_q4_0 *b = (const block_q4_0 *)((const uint8_t *)W + (size_t)r * rb);      \
            const block_q4_0 *c = (const block_q4_0 *)((const uint8_t *)b + rb);                  \
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, c0 = a0, c1 = a0;                           \
            int64_t i = 0;                                                                        \
            for (; i + 4 <= nb; i += 4) {                                                         \
                const __m512i o4 = _mm512_loadu_si512(xv->o4 + i * 4);                            \
                const __m512i xlo = _mm512_loadu_si512(xv->q4 + i * 32);                          \
                const __m512i xhi = _mm512_loadu_si512(xv->q4 + i * 32 + 64);                     \
                Q4_STEP4(DOT2, b, i, xlo, xhi, o4, a0);                                           \
                Q4_STEP4(DOT2, c, i, xlo, xhi, o4, c0);                                           \
            }                                                                                     \
            int64_t j = i;                                                                        \
            Q4_TAIL(DOT, b, i, nb, a1)                                                            \
            Q4_TAIL(DOT, c, j, nb, c1)                                                            \
            y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));                                   \
            y[r + 1] = _mm512_reduce_add_ps(_mm512_add_ps(c0, c1));                               \
        }                                                                                         \
        for (; r < r1; r++) {                                                                     \
            const block_q4_0 *b = (const block_q4_0 *)((const uint8_t *)W + (size_t)r * rb);      \
            __m512 a0 = _mm512_setzero_ps(), a1 = a0;                                             \
            int64_t i = 0;                                                                        \
            for (; i + 4 <= nb; i += 4) {                                                         \
                const __m512i o4 = _mm512_loadu_si512(xv->o4 + i * 4);                            \
                Q4_STEP4(DOT2, b, i, _mm512_loadu_si512(xv->q4 + i * 32), _mm512_loadu_si512(xv->q4 + i * 32 + 64), o4, a0); \
            }                                                                                     \
            Q4_TAIL(DOT, b, i, nb, a1)                                                            \
            y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));                                   \
        }                                                                                         \
    }

#define NO_ATTR
ROWS_Q8_0(rows_q8_0_bw, dot_u8_bw, NO_ATTR)
ROWS_Q4_0(rows_q4_0_bw, dot_u8_bw, dot2_u8_bw, NO_ATTR)
ROWS_Q8_0(rows_q8_0_vnni, dot_u8_vnni, __attribute__((target("avx512vnni"))))
ROWS_Q4_0(rows_q4_0_vnni, dot_u8_vnni, dot2_u8_vnni, __attribute__((target("avx512vnni"))))

/* ---- dequantize (bit-identical to ref.c) ------------------------------------------------ */
#define DEQUANT_HALF(NAME, CVT, SCALAR)                                                           \
    static void NAME(const void *src, float *dst, int64_t n) {                                    \
        const uint16_t *p = src;                                                                  \
        int64_t i = 0;                                                                            \
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, CVT(_mm256_loadu_si256((const __m256i *)(p + i)))); \
        for (; i < n; i++) dst[i] = SCALAR(load_u16((const uint8_t *)(p + i)));                  \
    }
DEQUANT_HALF(dequant_f16, cvt16_f16, f16_1)
DEQUANT_HALF(dequant_bf16, cvt16_bf16, pare_bf16_to_f32)

static void dequant_q8_0(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++, dst += QK8_0) {
        const __m512 d = _mm512_set1_ps(f16_1(b[i].d));
        _mm512_storeu_ps(dst, _mm512_mul_ps(d, cvt16_i8(_mm_loadu_si128((const __m128i *)b[i].qs))));
        _mm512_storeu_ps(dst + 16, _mm512_mul_ps(d, cvt16_i8(_mm_loadu_si128((const __m128i *)(b[i].qs + 16)))));
    }
}

static void dequant_q4_0(const void *src, float *dst, int64_t n) {
    const block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++, dst += QK4_0) {
        const __m512 d = _mm512_set1_ps(f16_1(b[i].d));
        __m128i lo, hi;
        q4_unpack(b[i].qs, &lo, &hi);
        _mm512_storeu_ps(dst, _mm512_mul_ps(d, cvt16_i8(lo)));
        _mm512_storeu_ps(dst + 16, _mm512_mul_ps(d, cvt16_i8(hi)));
    }
}

/* ---- x for the int8 rows: k_quantize_x, 16 lanes at a time (the same bytes) ------------ */
static void quantize_x(const float *x, int64_t n, void *buf, k_xvec *v) {
    const int64_t nb = n / K_QX, full = nb / 4 * 4;
    const k_xbuf o = k_xvec_layout(buf, n);
    *v = (k_xvec){x, o.d, o.s8, o.q, o.q4, o.d4, o.o4};
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff)), big = _mm512_set1_ps(FLT_MAX);
    for (int64_t b = 0; b < nb; b++) {
        const __m512 v0 = _mm512_loadu_ps(x + b * K_QX), v1 = _mm512_loadu_ps(x + b * K_QX + 16);
        const __m512 a0 = _mm512_and_ps(v0, absmask), a1 = _mm512_and_ps(v1, absmask);
        const int finite = (_mm512_cmp_ps_mask(a0, big, _CMP_LE_OQ) & _mm512_cmp_ps_mask(a1, big, _CMP_LE_OQ)) == 0xffff;
        __m128i q0 = _mm_setzero_si128(), q1 = q0;
        float d = NAN;
        int sum = 0;
        if (finite) {
            float id;
            d = k_xscale(_mm512_reduce_max_ps(_mm512_max_ps(a0, a1)), &id);
            const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, _mm512_set1_ps(id)));
            const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, _mm512_set1_ps(id)));
            sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
            q0 = _mm512_cvtsepi32_epi8(i0);
            q1 = _mm512_cvtsepi32_epi8(i1);
        }
        _mm_storeu_si128((__m128i *)(o.q + b * K_QX), q0);
        _mm_storeu_si128((__m128i *)(o.q + b * K_QX + 16), q1);
        if (b < full) {
            int8_t *g = o.q4 + 128 * (b / 4) + 16 * (b % 4);
            _mm_storeu_si128((__m128i *)g, q0);
            _mm_storeu_si128((__m128i *)(g + 64), q1);
        }
        o.d[b] = d;
        o.s8[b] = 8 * sum;
        _mm_storeu_ps(o.d4 + 4 * b, _mm_set1_ps(d));
        _mm_storeu_si128((__m128i *)(o.o4 + 4 * b), _mm_set1_epi32(-2 * sum));
    }
}

void k_ops_avx512(k_ops ops[K_NTYPES], int vnni) {
    ops[K_F32].dot = dot_f32;
    ops[K_F16] = (k_ops){dot_f16, rows_f16, dequant_f16, 0, NULL};
    ops[K_BF16] = (k_ops){dot_bf16, rows_bf16, dequant_bf16, 0, NULL};
    ops[K_Q8_0] = (k_ops){dot_q8_0, vnni ? rows_q8_0_vnni : rows_q8_0_bw, dequant_q8_0, 1, quantize_x};
    ops[K_Q4_0] = (k_ops){dot_q4_0, vnni ? rows_q4_0_vnni : rows_q4_0_bw, dequant_q4_0, 1, quantize_x};
}

/* ---- machine probe: FMA throughput (see k_avx2.c) ---------------------------------------- */
float k_fma_burst_avx512(int64_t iters) {
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2), a3 = _mm512_set1_ps(3), a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5);
    __m512 a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7), a8 = _mm512_set1_ps(8), a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
    for (int64_t t = 0; t < iters; t++) {
        a0 = _mm512_fmadd_ps(a0, m, c); a1 = _mm512_fmadd_ps(a1, m, c); a2 = _mm512_fmadd_ps(a2, m, c); a3 = _mm512_fmadd_ps(a3, m, c);
        a4 = _mm512_fmadd_ps(a4, m, c); a5 = _mm512_fmadd_ps(a5, m, c); a6 = _mm512_fmadd_ps(a6, m, c); a7 = _mm512_fmadd_ps(a7, m, c);
        a8 = _mm512_fmadd_ps(a8, m, c); a9 = _mm512_fmadd_ps(a9, m, c); a10 = _mm512_fmadd_ps(a10, m, c); a11 = _mm512_fmadd_ps(a11, m, c);
    }
    const __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)), _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7))), _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}

/* ---- prefill: Y = X W^T on an F32 panel --------------------------------------------------- */
/* Outer products with the tokens along the vector lanes: X comes transposed (Xt, K x ldt,
 * tokens padded with zeros to a multiple of 32), and a register tile of 32 tokens x 14 weight
 * rows takes, per column k, two Xt vectors and fourteen broadcast weights W[r][k] into 28
 * FMAs, so the FMA ports set the pace and W is read in its own row-major layout (no packing;
 * a row stride that is a multiple of 4 KiB puts the fourteen rows' lines into one L1 set, so
 * callers pad it). Xt holds each block of 32 tokens contiguously: block b at Xt + b K 32,
 * column k of the block at + 32 k.
 * The 16 tokens of an accumulator go to Y's column r with a masked scatter, once per tile.
 * Rows beyond a multiple of 14 take a one-row tile. The token blocks (32) are the outer loop
 * so that their 32 columns of Xt stay in L2 while the panel's rows pass. Each output is one
 * accumulator summed over k in order, so the result depends on the shapes alone. */
#define GEMM_NR K_GEMM_ROWS
#define GEMM_TB K_GEMM_TOKENS

static inline __mmask16 lanes(int64_t left) { return left >= 16 ? (__mmask16)0xffff : tail_mask(left); }

void k_gemm_avx512(const float *Xt, int64_t ldt, int64_t n, const float *W, int64_t ldw, int64_t p, int64_t K, float *Y,
                   int64_t ldy) {
    const __m512i col = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)ldy));
    for (int64_t t = 0; t < n; t += GEMM_TB) {
        __mmask16 m[GEMM_TB / 16];
        for (int q = 0; q < GEMM_TB / 16; q++) m[q] = n - t > 16 * q ? lanes(n - t - 16 * q) : 0;
        const float *xb = Xt + (t / GEMM_TB) * K * ldt;
        int64_t r = 0;
        for (; r + GEMM_NR <= p; r += GEMM_NR) {
            __m512 a[GEMM_NR][GEMM_TB / 16];
#pragma GCC unroll 14
            for (int j = 0; j < GEMM_NR; j++)
#pragma GCC unroll 4
                for (int q = 0; q < GEMM_TB / 16; q++) a[j][q] = _mm512_setzero_ps();
            const float *w = W + r * ldw, *x = xb;
            for (int64_t k = 0; k < K; k++, x += ldt) {
                __m512 xv[GEMM_TB / 16];
#pragma GCC unroll 4
                for (int q = 0; q < GEMM_TB / 16; q++) xv[q] = _mm512_loadu_ps(x + 16 * q);
#pragma GCC unroll 14
                for (int j = 0; j < GEMM_NR; j++) {
                    const __m512 bb = _mm512_set1_ps(w[j * ldw + k]);
#pragma GCC unroll 4
                    for (int q = 0; q < GEMM_TB / 16; q++) a[j][q] = _mm512_fmadd_ps(xv[q], bb, a[j][q]);
                }
            }
#pragma GCC unroll 14
            for (int j = 0; j < GEMM_NR; j++)
#pragma GCC unroll 4
                for (int q = 0; q < GEMM_TB / 16; q++)
                    if (m[q]) _mm512_mask_i32scatter_ps(Y + (t + 16 * q) * ldy + r + j, m[q], col, a[j][q], 4);
        }
        for (; r < p; r++) {
            __m512 a[GEMM_TB / 16];
            for (int q = 0; q < GEMM_TB / 16; q++) a[q] = _mm512_setzero_ps();
            const float *w = W + r * ldw, *x = xb;
            for (int64_t k = 0; k < K; k++, x += ldt) {
                const __m512 bb = _mm512_set1_ps(w[k]);
#pragma GCC unroll 4
                for (int q = 0; q < GEMM_TB / 16; q++) a[q] = _mm512_fmadd_ps(_mm512_loadu_ps(x + 16 * q), bb, a[q]);
            }
            for (int q = 0; q < GEMM_TB / 16; q++)
                if (m[q]) _mm512_mask_i32scatter_ps(Y + (t + 16 * q) * ldy + r, m[q], col, a[q], 4);
        }
    }
}
