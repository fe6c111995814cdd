/* nm_avx512.c - N:M rows with AVX-512F. Sixteen columns per step: their 16-bit mask word
 * picks the lanes, the next popcount(mask) kept values are loaded (always 16 of them: the
 * value arrays carry 64 bytes of padding), widened to floats and spread over the kept lanes
 * with vexpandps, then multiplied with x. The position in the values advances by the
 * popcount, so any N:M (and any mask) works; the dependency between steps is one add. */
#include "k_impl.h"

#include <immintrin.h>
#include <string.h>

/* Mask words go straight from memory into mask registers (a kmov from a general register
 * would take port 5, which vexpandps and vcvtph2ps already keep busy). */
static inline __mmask16 kmask(const uint8_t *mk, int64_t b) { return ((const __mmask16 *)(const void *)mk)[b]; }

/* Kept values in mask word b. Where M divides 16 every word holds exactly 16 N / M (step),
 * so the position needs no popcount. Otherwise a 64-bit popcount of the word with bit 40
 * set, minus one: compilers shrink a popcount of a 16-bit value to a 16-bit popcnt, which
 * merges into its destination register and so chains every step to the one before. */
static inline size_t kept16(const uint8_t *mk, int64_t b, size_t step) {
    if (step) return step;
    uint16_t m;
    memcpy(&m, mk + 2 * b, 2);
    return (size_t)__builtin_popcountll((uint64_t)m | (1ull << 40)) - 1;
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

static inline __m512 x_tail(const float *x, int64_t c, int64_t cols) {
    return _mm512_maskz_loadu_ps((__mmask16)((1u << (cols - c)) - 1u), x + c);
}

/* Float values: two accumulators over pairs of whole 16-column steps, then the tail. */
#define NM_ROWS_FLOAT(NAME, LOAD, ES)                                                             \
    static void NAME(const pare_nm *w, int64_t r0, int64_t r1, const float *x, float *y) {       \
        const int64_t full = w->cols / 16;                                                        \
        const size_t step = 16 % w->m ? 0 : (size_t)(16 / w->m * w->n);                           \
        for (int64_t r = r0; r < r1; r++) {                                                       \
            const uint8_t *mk = w->mask + (size_t)r * w->mstride;                                 \
            const uint8_t *v = w->vals + (size_t)r * w->vstride;                                  \
            __m512 a0 = _mm512_setzero_ps(), a1 = a0;                                             \
            size_t k = 0;                                                                         \
            int64_t b = 0;                                                                        \
            for (; b + 2 <= full; b += 2) {                                                       \
                _mm_prefetch((const char *)v + K_PF + ES * k, _MM_HINT_T0);                      \
                const __m512 w0 = _mm512_maskz_expand_ps(kmask(mk, b), LOAD(v, k));              \
                k += kept16(mk, b, step);                                                         \
                const __m512 w1 = _mm512_maskz_expand_ps(kmask(mk, b + 1), LOAD(v, k));          \
                k += kept16(mk, b + 1, step);                                                     \
                a0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + 16 * b), a0);                        \
                a1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + 16 * b + 16), a1);                   \
            }                                                                                     \
            if (b < full) {                                                                       \
                a0 = _mm512_fmadd_ps(_mm512_maskz_expand_ps(kmask(mk, b), LOAD(v, k)),            \
                                     _mm512_loadu_ps(x + 16 * b), a0);                            \
                k += kept16(mk, b, step);                                                         \
                b++;                                                                              \
            }                                                                                     \
            if (16 * b < w->cols) /* the tail's mask bits past cols are 0 */                      \
                a1 = _mm512_fmadd_ps(_mm512_maskz_expand_ps(kmask(mk, b), LOAD(v, k)),            \
                                     x_tail(x, 16 * b, w->cols), a1);                             \
            y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));                                   \
        }                                                                                         \
    }
NM_ROWS_FLOAT(gen_f32, ld_f32, 4)
NM_ROWS_FLOAT(gen_f16, ld_f16, 2)
NM_ROWS_FLOAT(gen_bf16, ld_bf16, 2)

/* 2:4, 32 columns (16 kept values) per step, without vexpandps (two port-5 uops, the
 * bottleneck above): the x values are gathered to the kept values instead. The mask word
 * of the step is broadcast; lane k (group k / 2) takes its group's nibble, a table gives
 * the position of the nibble's first (even k) or second (odd k) set bit, and vpermt2ps
 * picks x[4 (k / 2) + position] from the step's 32 x values. 1.4x less work per column
 * than the expand path (measured in L1), which leaves decode bound by memory. */
typedef struct { __m512i sh, odd, lo, hi, base; } nm24_consts;
static inline nm24_consts nm24_init(void) {
    nm24_consts c;
    c.sh = _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
    c.base = c.sh;
    c.odd = _mm512_setr_epi32(0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16);
    /* first / second set bit of each nibble with two bits set (other nibbles never occur) */
    c.lo = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 2, 0, 0, 0);
    c.hi = _mm512_setr_epi32(0, 0, 0, 1, 0, 2, 2, 0, 0, 3, 3, 0, 3, 0, 0, 0);
    return c;
}
static inline __m512 nm24_xv(const nm24_consts *c, uint32_t m, __m512 x0, __m512 x1) {
    const __m512i sel = _mm512_ternarylogic_epi32(_mm512_srlv_epi32(_mm512_set1_epi32((int)m), c->sh),
                                                  _mm512_set1_epi32(15), c->odd, 0xEA);
    const __m512i idx = _mm512_add_epi32(_mm512_permutex2var_epi32(c->lo, sel, c->hi), c->base);
    return _mm512_permutex2var_ps(x0, idx, x1);
}
static inline __m512 nm24_x(const nm24_consts *c, uint32_t m, const float *x) {
    const __m512i sel = _mm512_ternarylogic_epi32(_mm512_srlv_epi32(_mm512_set1_epi32((int)m), c->sh),
                                                  _mm512_set1_epi32(15), c->odd, 0xEA); /* (a & b) | c */
    const __m512i idx = _mm512_add_epi32(_mm512_permutex2var_epi32(c->lo, sel, c->hi), c->base);
    return _mm512_permutex2var_ps(_mm512_loadu_ps(x), idx, _mm512_loadu_ps(x + 16));
}
static inline uint32_t mask32(const uint8_t *mk, int64_t s) {
    uint32_t m;
    memcpy(&m, mk + 4 * s, 4);
    return m;
}

/* Two rows at a time (two weight streams in flight per thread, each x load shared), then a
 * last row alone. */
#define NM_ROWS_24(NAME, GEN, LOAD, ES)                                                           \
    static void NAME(const pare_nm *w, int64_t r0, int64_t r1, const float *x, float *y) {       \
        if (w->n != 2 || w->m != 4 || w->cols % 32) { GEN(w, r0, r1, x, y); return; }            \
        const nm24_consts c = nm24_init();                                                        \
        const int64_t ns = w->cols / 32;                                                          \
        int64_t r = r0;                                                                           \
        for (; r + 2 <= r1; r += 2) {                                                             \
            const uint8_t *mk = w->mask + (size_t)r * w->mstride, *mk2 = mk + w->mstride;         \
            const uint8_t *v = w->vals + (size_t)r * w->vstride, *v2 = v + w->vstride;            \
            __m512 a0 = _mm512_setzero_ps(), b0 = a0;                                             \
            for (int64_t s = 0; s < ns; s++) {                                                    \
                _mm_prefetch((const char *)v + K_PF + ES * 16 * s, _MM_HINT_T0);                 \
                _mm_prefetch((const char *)v2 + K_PF + ES * 16 * s, _MM_HINT_T0);                \
                const __m512 x0 = _mm512_loadu_ps(x + 32 * s), x1 = _mm512_loadu_ps(x + 32 * s + 16); \
                a0 = _mm512_fmadd_ps(LOAD(v, 16 * (size_t)s), nm24_xv(&c, mask32(mk, s), x0, x1), a0); \
                b0 = _mm512_fmadd_ps(LOAD(v2, 16 * (size_t)s), nm24_xv(&c, mask32(mk2, s), x0, x1), b0); \
            }                                                                                     \
            y[r] = _mm512_reduce_add_ps(a0);                                                      \
            y[r + 1] = _mm512_reduce_add_ps(b0);                                                  \
        }                                                                                         \
        for (; r < r1; r++) {                                                                     \
            const uint8_t *mk = w->mask + (size_t)r * w->mstride;                                 \
            const uint8_t *v = w->vals + (size_t)r * w->vstride;                                  \
            __m512 a0 = _mm512_setzero_ps();                                                      \
            for (int64_t s = 0; s < ns; s++)                                                      \
                a0 = _mm512_fmadd_ps(LOAD(v, 16 * (size_t)s), nm24_x(&c, mask32(mk, s), x + 32 * s), a0); \
            y[r] = _mm512_reduce_add_ps(a0);                                                      \
        }                                                                                         \
    }
NM_ROWS_24(rows_f32, gen_f32, ld_f32, 4)
NM_ROWS_24(rows_f16, gen_f16, ld_f16, 2)
NM_ROWS_24(rows_bf16, gen_bf16, ld_bf16, 2)

/* 8-bit values: per block of 32 columns (two steps) the int8 products are summed in floats
 * and scaled once; cols is a multiple of 32. */
static void gen_q8(const pare_nm *w, int64_t r0, int64_t r1, const float *x, float *y) {
    const int64_t nb = w->cols / 32;
    const size_t step = 16 % w->m ? 0 : (size_t)(16 / w->m * w->n);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *mk = w->mask + (size_t)r * w->mstride;
        const uint8_t *v = w->vals + (size_t)r * w->vstride;
        const uint16_t *sc = w->scale + (size_t)r * (size_t)nb;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        size_t k = 0;
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2) {
            _mm_prefetch((const char *)v + K_PF + k, _MM_HINT_T0);
            const __m512 w0 = _mm512_maskz_expand_ps(kmask(mk, 2 * b), ld_i8(v, k));
            k += kept16(mk, 2 * b, step);
            const __m512 w1 = _mm512_maskz_expand_ps(kmask(mk, 2 * b + 1), ld_i8(v, k));
            k += kept16(mk, 2 * b + 1, step);
            const __m512 w2 = _mm512_maskz_expand_ps(kmask(mk, 2 * b + 2), ld_i8(v, k));
            k += kept16(mk, 2 * b + 2, step);
            const __m512 w3 = _mm512_maskz_expand_ps(kmask(mk, 2 * b + 3), ld_i8(v, k));
            k += kept16(mk, 2 * b + 3, step);
            const float *xb = x + 32 * b;
            const __m512 s0 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xb + 16), _mm512_mul_ps(w0, _mm512_loadu_ps(xb)));
            const __m512 s1 = _mm512_fmadd_ps(w3, _mm512_loadu_ps(xb + 48), _mm512_mul_ps(w2, _mm512_loadu_ps(xb + 32)));
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(sc[b])), s0, a0);
            a1 = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(sc[b + 1])), s1, a1);
        }
        if (b < nb) {
            const __m512 w0 = _mm512_maskz_expand_ps(kmask(mk, 2 * b), ld_i8(v, k));
            k += kept16(mk, 2 * b, step);
            const __m512 w1 = _mm512_maskz_expand_ps(kmask(mk, 2 * b + 1), ld_i8(v, k));
            const float *xb = x + 32 * b;
            const __m512 s0 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xb + 16), _mm512_mul_ps(w0, _mm512_loadu_ps(xb)));
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(sc[b])), s0, a0);
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
}

/* A row's f16 scales as floats (16 per conversion), so that each step broadcasts its scale
 * from memory instead of converting it on port 5. ns <= NM_MAXS. */
#define NM_MAXS 1024
static inline void scales_f32(const uint16_t *sc, int64_t ns, float *d) {
    int64_t s = 0;
    for (; s + 16 <= ns; s += 16) _mm512_storeu_ps(d + s, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(sc + s))));
    for (; s < ns; s++) d[s] = _cvtsh_ss(sc[s]);
}

/* 2:4 with 8-bit values: one step is one scale block; two rows at a time as above */
static void rows_q8(const pare_nm *w, int64_t r0, int64_t r1, const float *x, float *y) {
    const int64_t ns = w->cols / 32;
    if (w->n != 2 || w->m != 4 || ns > NM_MAXS) { gen_q8(w, r0, r1, x, y); return; }
    const nm24_consts c = nm24_init();
    float d[NM_MAXS], d2[NM_MAXS];
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) {
        const uint8_t *mk = w->mask + (size_t)r * w->mstride, *mk2 = mk + w->mstride;
        const uint8_t *v = w->vals + (size_t)r * w->vstride, *v2 = v + w->vstride;
        scales_f32(w->scale + (size_t)r * (size_t)ns, ns, d);
        scales_f32(w->scale + (size_t)(r + 1) * (size_t)ns, ns, d2);
        __m512 a0 = _mm512_setzero_ps(), b0 = a0;
        for (int64_t s = 0; s < ns; s++) {
            _mm_prefetch((const char *)v + K_PF + 16 * s, _MM_HINT_T0);
            _mm_prefetch((const char *)v2 + K_PF + 16 * s, _MM_HINT_T0);
            const __m512 x0 = _mm512_loadu_ps(x + 32 * s), x1 = _mm512_loadu_ps(x + 32 * s + 16);
            const __m512 p0 = _mm512_mul_ps(ld_i8(v, 16 * (size_t)s), nm24_xv(&c, mask32(mk, s), x0, x1));
            const __m512 p1 = _mm512_mul_ps(ld_i8(v2, 16 * (size_t)s), nm24_xv(&c, mask32(mk2, s), x0, x1));
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(d[s]), p0, a0);
            b0 = _mm512_fmadd_ps(_mm512_set1_ps(d2[s]), p1, b0);
        }
        y[r] = _mm512_reduce_add_ps(a0);
        y[r + 1] = _mm512_reduce_add_ps(b0);
    }
    for (; r < r1; r++) {
        const uint8_t *mk = w->mask + (size_t)r * w->mstride;
        const uint8_t *v = w->vals + (size_t)r * w->vstride;
        scales_f32(w->scale + (size_t)r * (size_t)ns, ns, d);
        __m512 a0 = _mm512_setzero_ps();
        for (int64_t s = 0; s < ns; s++) {
            const __m512 p0 = _mm512_mul_ps(ld_i8(v, 16 * (size_t)s), nm24_x(&c, mask32(mk, s), x + 32 * s));
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(d[s]), p0, a0);
        }
        y[r] = _mm512_reduce_add_ps(a0);
    }
}

/* ---- rows as dense floats (prefill panels): one expand per 16 columns -------------------- */
#define NM_DEQ(NAME, LOAD, SCALE)                                                                 \
    static void NAME(const pare_nm *w, int64_t r, float *dst) {                                  \
        const uint8_t *mk = w->mask + (size_t)r * w->mstride;                                     \
        const uint8_t *v = w->vals + (size_t)r * w->vstride;                                      \
        const uint16_t *sc = w->scale ? w->scale + (size_t)r * (size_t)(w->cols / 32) : NULL;     \
        const size_t step = 16 % w->m ? 0 : (size_t)(16 / w->m * w->n);                           \
        size_t k = 0;                                                                             \
        int64_t b = 0;                                                                            \
        for (; 16 * b + 16 <= w->cols; b++) {                                                     \
            __m512 e = _mm512_maskz_expand_ps(kmask(mk, b), LOAD(v, k));                          \
            if (SCALE) e = _mm512_mul_ps(e, _mm512_set1_ps(_cvtsh_ss(sc[b / 2])));               \
            _mm512_storeu_ps(dst + 16 * b, e);                                                    \
            k += kept16(mk, b, step);                                                             \
        }                                                                                         \
        if (16 * b < w->cols) {                                                                   \
            const __m512 e = _mm512_maskz_expand_ps(kmask(mk, b), LOAD(v, k));                    \
            _mm512_mask_storeu_ps(dst + 16 * b, (__mmask16)((1u << (w->cols - 16 * b)) - 1u), e); \
        }                                                                                         \
    }
NM_DEQ(deq_f32, ld_f32, 0)
NM_DEQ(deq_f16, ld_f16, 0)
NM_DEQ(deq_bf16, ld_bf16, 0)
NM_DEQ(deq_q8, ld_i8, 1)

void k_nm_ops_avx512(k_nm_ops *t) {
    t->rows[K_NM_F32] = rows_f32;
    t->rows[K_NM_F16] = rows_f16;
    t->rows[K_NM_BF16] = rows_bf16;
    t->rows[K_NM_Q8] = rows_q8;
    t->deq[K_NM_F32] = deq_f32;
    t->deq[K_NM_F16] = deq_f16;
    t->deq[K_NM_BF16] = deq_bf16;
    t->deq[K_NM_Q8] = deq_q8;
    t->rows_q8xq = NULL; /* the exact 8-bit rows above, not AVX2's int8 ones */
}
