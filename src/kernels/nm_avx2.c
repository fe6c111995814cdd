/* nm_avx2.c - N:M rows with AVX2+FMA.
 *
 * Matvec, 2:4 and 4:8 (every row holds exactly N kept columns per group: nm.h): x is
 * gathered to the kept values instead of spreading the values to the columns. 32 columns a
 * step, 16 kept values; their position in the row is 16 per step, so no load waits for a
 * popcount and no mask is checked.
 *   2:4: vpermilps works within 128-bit lanes, and each group of four columns is one lane,
 *        so each group's two x values come from its own lane (control vector from a table by
 *        mask byte) and a shufps pairs them up, groups in the order 0 2 | 1 3; the values
 *        are loaded in that order (ld24_*: 32-bit pairs 0 2 1 3, one in-lane shuffle).
 *   4:8: each byte keeps four columns: two vpermps (index: the byte's kept positions, from a
 *        table) and a blend take x to the values' order.
 * Other patterns, and a row's last partial step: AVX2 has no expand instruction, so eight
 * columns per step, their mask byte selects a vpermps index vector from a 256-entry table
 * (lane j takes kept value number popcount(mask below j)); the index's sign bit marks the kept
 * lanes and a blend zeroes the others; the values' position advances by popcount(mask).
 * Measured on Zen 3 (2 threads, TinyLlama-1.1B shape, F16 values), 2:4 decode ran at 0.83x
 * dense F16 with only the general step, 1.3-1.7x with the gather (docs/PERFORMANCE.md).
 * The engine interleaves 2:4 (F16 and 8-bit values) and 4:8 F16 eight rows at a time
 * (k_nm_interleave), for the faster rows at the end of this file; these row-layout rows then
 * serve the other patterns and types. */
#include "k_impl.h"

#include <immintrin.h>
#include <string.h>

static int32_t g_lut[256][8] __attribute__((aligned(32)));
/* for a byte with four bits set (every byte of 2:4 and 4:8), their positions 0-7 in
 * ascending order (else unused): as int32 (vpermps indices, 4:8) and packed in the bytes of
 * a uint32 (vpshufb controls, the int8 2:4 rows); the int32 form loads straight into a lane
 * (unpacking the bytes there measured 0.96x on 4:8) */
static int32_t g_pos4[256][4] __attribute__((aligned(16)));
static uint32_t g_pos4b[256];
/* for a byte with two bits set in each nibble, the positions of the low nibble's within it
 * in lanes 0-1 and of the high nibble's in lanes 4-5 (vpermilps controls; else unused) */
static int32_t g_ctl24[256][8] __attribute__((aligned(32)));

static void lut_init(void) {
    for (int m = 0; m < 256; m++) {
        int k = 0;
        for (int j = 0; j < 8; j++) g_lut[m][j] = (m >> j) & 1 ? (int32_t)(0x80000000u | (uint32_t)k++) : 0;
        k = 0;
        g_pos4b[m] = 0;
        for (int j = 0; j < 8; j++)
            if ((m >> j) & 1 && k < 4) {
                g_pos4[m][k] = j;
                g_pos4b[m] |= (uint32_t)j << (8 * k++);
            }
        for (int h = 0; h < 2; h++) {
            k = 0;
            for (int j = 0; j < 4; j++)
                if ((m >> (4 * h + j)) & 1 && k < 2) g_ctl24[m][4 * h + k++] = j;
        }
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

/* x of the 8 kept columns among the 16 at x (mask word m, low 16 bits) in the order of the
 * values, as described at the top */
static inline __m256 gather24(const float *x, uint32_t m) {
    const __m256 t0 = _mm256_permutevar_ps(_mm256_loadu_ps(x), _mm256_load_si256((const __m256i *)g_ctl24[m & 0xff]));
    const __m256 t1 = _mm256_permutevar_ps(_mm256_loadu_ps(x + 8), _mm256_load_si256((const __m256i *)g_ctl24[(m >> 8) & 0xff]));
    return _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0));
}
static inline __m256 gather48(const float *x, uint32_t m) {
    const __m256i idx = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_load_si128((const __m128i *)g_pos4[m & 0xff])),
                                                _mm_load_si128((const __m128i *)g_pos4[(m >> 8) & 0xff]), 1);
    return _mm256_blend_ps(_mm256_permutevar8x32_ps(_mm256_loadu_ps(x), idx),
                           _mm256_permutevar8x32_ps(_mm256_loadu_ps(x + 8), idx), 0xf0);
}
/* 8 values from value k in the 2:4 gather's order */
static inline __m256 ld24_f32(const uint8_t *v, size_t k) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_loadu_pd((const double *)((const float *)v + k)), _MM_SHUFFLE(3, 1, 2, 0)));
}
static inline __m256 ld24_f16(const uint8_t *v, size_t k) {
    return _mm256_cvtph_ps(_mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)v + k)), _MM_SHUFFLE(3, 1, 2, 0)));
}
static inline __m256 ld24_bf16(const uint8_t *v, size_t k) {
    const __m128i h = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)v + k)), _MM_SHUFFLE(3, 1, 2, 0));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* the general step over mask bytes b0 <= b < nb of a row, values from k: into acc */
#define NM_TAIL(LOAD, b0, acc)                                                                    \
    for (int64_t t_ = b0; t_ < nb; t_++) {                                                        \
        acc = _mm256_fmadd_ps(spread(LOAD(v, k), mk[t_]), x8(x, 8 * t_, w->cols), acc);           \
        k += (size_t)__builtin_popcount(mk[t_]);                                                  \
    }

/* rows of any N:M, the general step throughout */
#define NM_ROWS_ANY(NAME, LOAD, ES)                                                               \
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
            NM_TAIL(LOAD, b, a0)                                                                  \
            y[r] = hsum8(_mm256_add_ps(a0, a1));                                                  \
        }                                                                                         \
    }

/* rows of 2:4 (GATHER gather24, LOAD8 ld24_*) or 4:8 (gather48, ld_*): 16 values per 32
 * columns */
#define NM_ROWS_FIXED(NAME, LOAD, LOAD8, GATHER, ES)                                              \
    static void NAME(const pare_nm *w, int64_t r0, int64_t r1, const float *x, float *y) {       \
        const int64_t nb = (w->cols + 7) / 8, n32 = w->cols / 32;                                 \
        for (int64_t r = r0; r < r1; r++) {                                                       \
            const uint8_t *mk = w->mask + (size_t)r * w->mstride;                                 \
            const uint8_t *v = w->vals + (size_t)r * w->vstride;                                  \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0;                                             \
            for (int64_t s = 0; s < n32; s++) {                                                   \
                if ((16 * ES * s) % 64 == 0) _mm_prefetch((const char *)v + K_PF + 16 * ES * s, _MM_HINT_T0); \
                uint32_t m;                                                                       \
                memcpy(&m, mk + 4 * s, 4);                                                        \
                a0 = _mm256_fmadd_ps(LOAD8(v, 16 * (size_t)s), GATHER(x + 32 * s, m), a0);       \
                a1 = _mm256_fmadd_ps(LOAD8(v, 16 * (size_t)s + 8), GATHER(x + 32 * s + 16, m >> 16), a1); \
            }                                                                                     \
            size_t k = 16 * (size_t)n32;                                                          \
            NM_TAIL(LOAD, 4 * n32, a0)                                                            \
            y[r] = hsum8(_mm256_add_ps(a0, a1));                                                  \
        }                                                                                         \
    }

#define NM_ROWS_FLOAT(NAME, LOAD, LOAD24, ES)                                                     \
    NM_ROWS_ANY(NAME##_any, LOAD, ES)                                                             \
    NM_ROWS_FIXED(NAME##_24, LOAD, LOAD24, gather24, ES)                                          \
    NM_ROWS_FIXED(NAME##_48, LOAD, LOAD, gather48, ES)                                            \
    static void NAME(const pare_nm *w, int64_t r0, int64_t r1, const float *x, float *y) {       \
        if (w->n == 2 && w->m == 4) NAME##_24(w, r0, r1, x, y);                                   \
        else if (w->n == 4 && w->m == 8) NAME##_48(w, r0, r1, x, y);                              \
        else NAME##_any(w, r0, r1, x, y);                                                         \
    }
NM_ROWS_FLOAT(rows_f32, ld_f32, ld24_f32, 4)
NM_ROWS_FLOAT(rows_f16, ld_f16, ld24_f16, 2)
NM_ROWS_FLOAT(rows_bf16, ld_bf16, ld24_bf16, 2)

/* 8-bit values: per block of 32 columns (one Q8 scale), the 4:8 step above or four general
 * ones */
static void rows_q8_48(const pare_nm *w, int64_t r0, int64_t r1, const float *x, float *y) {
    const int64_t nb = w->cols / 32;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *mk = w->mask + (size_t)r * w->mstride;
        const uint8_t *v = w->vals + (size_t)r * w->vstride;
        const uint16_t *sc = w->scale + (size_t)r * (size_t)nb;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (int64_t b = 0; b < nb; b++) {
            if (b % 4 == 0) _mm_prefetch((const char *)v + K_PF + 16 * b, _MM_HINT_T0);
            uint32_t m;
            memcpy(&m, mk + 4 * b, 4);
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(sc[b]));
            const __m256 p = _mm256_fmadd_ps(ld_i8(v, 16 * (size_t)b + 8), gather48(x + 32 * b + 16, m >> 16),
                                             _mm256_mul_ps(ld_i8(v, 16 * (size_t)b), gather48(x + 32 * b, m)));
            if (b % 2) a1 = _mm256_fmadd_ps(d, p, a1);
            else a0 = _mm256_fmadd_ps(d, p, a0);
        }
        y[r] = hsum8(_mm256_add_ps(a0, a1));
    }
}

static void rows_q8(const pare_nm *w, int64_t r0, int64_t r1, const float *x, float *y) {
    /* (2:4 takes rows_q8_xq; here only when there is no memory to round x into) */
    if (w->n == 4 && w->m == 8) { rows_q8_48(w, r0, r1, x, y); return; }
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

/* 2:4 8-bit values against int8 x, integer dots as the dense Q8_0 rows: per block of 32
 * columns, vpshufb picks the 16 kept columns' x bytes (eight per 128-bit half, positions
 * from g_pos4b by mask byte), and maddubs/madd sum their products with the values (w's sign
 * moved onto x, as in dot_i8x32 of k_avx2.c) into four int32; one FMA per block scales them
 * by the two block scales. Other patterns take the exact rows. */
static void rows_q8_xq(const pare_nm *w, int64_t r0, int64_t r1, const k_xvec *xv, float *y) {
    if (!(w->n == 2 && w->m == 4)) { rows_q8(w, r0, r1, xv->x, y); return; }
    const int64_t nb = w->cols / 32;
    const __m128i ones = _mm_set1_epi16(1);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *mk = w->mask + (size_t)r * w->mstride;
        const uint8_t *v = w->vals + (size_t)r * w->vstride;
        const uint16_t *sc = w->scale + (size_t)r * (size_t)nb;
        /* the masks and scales of the row 8 on: streams too thin for the prefetchers */
        if (r + 8 < w->rows) {
            for (size_t o = 0; o < w->mstride; o += 64) _mm_prefetch((const char *)(mk + 8 * w->mstride) + o, _MM_HINT_T0);
            for (size_t o = 0; o < 2 * (size_t)nb; o += 64) _mm_prefetch((const char *)(sc + 8 * nb) + o, _MM_HINT_T0);
        }
        __m128 a0 = _mm_setzero_ps(), a1 = a0;
        for (int64_t b = 0; b < nb; b++) {
            if (b % 4 == 0) _mm_prefetch((const char *)v + K_PF + 16 * b, _MM_HINT_T0);
            const uint8_t *m = mk + 4 * b;
            const int8_t *xq = xv->q + 32 * b;
            const uint64_t c0 = g_pos4b[m[0]] | (uint64_t)(g_pos4b[m[1]] + 0x08080808u) << 32;
            const uint64_t c1 = g_pos4b[m[2]] | (uint64_t)(g_pos4b[m[3]] + 0x08080808u) << 32;
            const __m128i g0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)xq), _mm_cvtsi64_si128((long long)c0));
            const __m128i g1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(xq + 16)), _mm_cvtsi64_si128((long long)c1));
            const __m128i gx = _mm_unpacklo_epi64(g0, g1);
            const __m128i q = _mm_loadu_si128((const __m128i *)(v + 16 * b));
            const __m128i p = _mm_madd_epi16(_mm_maddubs_epi16(_mm_sign_epi8(q, q), _mm_sign_epi8(gx, q)), ones);
            const __m128 d = _mm_set1_ps(_cvtsh_ss(sc[b]) * xv->d[b]);
            if (b % 2) a1 = _mm_fmadd_ps(d, _mm_cvtepi32_ps(p), a1);
            else a0 = _mm_fmadd_ps(d, _mm_cvtepi32_ps(p), a0);
        }
        __m128 s4 = _mm_add_ps(a0, a1);
        s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        y[r] = _mm_cvtss_f32(_mm_add_ss(s4, _mm_movehdup_ps(s4)));
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

/* ---- 2:4 F16, eight rows interleaved (nm.h) -------------------------------------------- */
/* Per column group: x's four columns broadcast to both halves, the position word shifted so
 * that each row's lane holds its position in bits 0-1 (vpermilps reads only those), one
 * vpermilps per value slot. Two column groups a step, four accumulators (two were bound by
 * the FMA latency). Measured in a test binary on one Zen 3 core: 40.7 GB/s against 15.7 for
 * the row layout's gather. */
#ifndef NM8_PF
#define NM8_PF 32768
#endif
static inline void ilv_store(const pare_nm *w, int64_t G, __m256 acc, float *y) {
    if (8 * G + 8 <= w->rows) { _mm256_storeu_ps(y + 8 * G, acc); return; }
    float t[8];
    _mm256_storeu_ps(t, acc);
    for (int64_t j = 0; 8 * G + j < w->rows; j++) y[8 * G + j] = t[j];
}

/* one column group g of a row group's stream b: both value slots into a0, a1 */
#define ILV_STEP(b, xg, a0, a1)                                                                       \
    do {                                                                                              \
        uint32_t pw_;                                                                                 \
        memcpy(&pw_, (b) + 32, 4);                                                                    \
        const __m256i c_ = _mm256_set1_epi32((int)pw_);                                               \
        a0 = _mm256_fmadd_ps(ld_f16((b), 0), _mm256_permutevar_ps(xg, _mm256_srlv_epi32(c_, s0)), a0); \
        a1 = _mm256_fmadd_ps(ld_f16((b), 8), _mm256_permutevar_ps(xg, _mm256_srlv_epi32(c_, s1)), a1); \
    } while (0)

static void ilv24_rows(const pare_nm *w, int64_t g0, int64_t g1, const float *x, float *y) {
    const int64_t ng = w->cols / 4;
    const __m256i s0 = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28), s1 = _mm256_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30);
    int64_t G = g0;
    for (; G + 2 <= g1; G += 2) { /* two row groups: two weight streams, x broadcast once */
        const uint8_t *b = w->ilv + (size_t)G * (size_t)ng * K_NM_ILV_BLOCK, *c = b + (size_t)ng * K_NM_ILV_BLOCK;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, d0 = a0, d1 = a0;
        for (int64_t g = 0; g < ng; g++, b += K_NM_ILV_BLOCK, c += K_NM_ILV_BLOCK) {
            if (g % 2 == 0) {
                _mm_prefetch((const char *)b + NM8_PF, _MM_HINT_T0);
                _mm_prefetch((const char *)b + NM8_PF + 64, _MM_HINT_T0);
                _mm_prefetch((const char *)c + NM8_PF, _MM_HINT_T0);
                _mm_prefetch((const char *)c + NM8_PF + 64, _MM_HINT_T0);
            }
            const __m256 xg = _mm256_broadcast_ps((const __m128 *)(x + 4 * g));
            ILV_STEP(b, xg, a0, a1);
            ILV_STEP(c, xg, d0, d1);
        }
        ilv_store(w, G, _mm256_add_ps(a0, a1), y);
        ilv_store(w, G + 1, _mm256_add_ps(d0, d1), y);
    }
    for (; G < g1; G++) { /* one row group: two column groups a step, four accumulators */
        const uint8_t *b = w->ilv + (size_t)G * (size_t)ng * K_NM_ILV_BLOCK;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t g = 0;
        for (; g + 2 <= ng; g += 2, b += 2 * K_NM_ILV_BLOCK) {
            _mm_prefetch((const char *)b + NM8_PF, _MM_HINT_T0);
            _mm_prefetch((const char *)b + NM8_PF + 64, _MM_HINT_T0);
            const __m256 xa = _mm256_broadcast_ps((const __m128 *)(x + 4 * g)), xb = _mm256_broadcast_ps((const __m128 *)(x + 4 * g + 4));
            ILV_STEP(b, xa, a0, a1);
            ILV_STEP(b + K_NM_ILV_BLOCK, xb, a2, a3);
        }
        if (g < ng) {
            const __m256 xa = _mm256_broadcast_ps((const __m128 *)(x + 4 * g));
            ILV_STEP(b, xa, a0, a1);
        }
        ilv_store(w, G, _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3)), y);
    }
}

/* columns c[0..3] of eight rows (lane j: row j) stored as rows: row j at dst + j * cols */
static inline void store_4x8(const __m256 c[4], float *d, int64_t cols) {
    const __m256 t0 = _mm256_unpacklo_ps(c[0], c[1]), t1 = _mm256_unpackhi_ps(c[0], c[1]);
    const __m256 t2 = _mm256_unpacklo_ps(c[2], c[3]), t3 = _mm256_unpackhi_ps(c[2], c[3]);
    const __m256 r0 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2))); /* rows 0 | 4 */
    const __m256 r1 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2))); /* rows 1 | 5 */
    const __m256 r2 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3))); /* rows 2 | 6 */
    const __m256 r3 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3))); /* rows 3 | 7 */
    _mm_storeu_ps(d, _mm256_castps256_ps128(r0));
    _mm_storeu_ps(d + cols, _mm256_castps256_ps128(r1));
    _mm_storeu_ps(d + 2 * cols, _mm256_castps256_ps128(r2));
    _mm_storeu_ps(d + 3 * cols, _mm256_castps256_ps128(r3));
    _mm_storeu_ps(d + 4 * cols, _mm256_extractf128_ps(r0, 1));
    _mm_storeu_ps(d + 5 * cols, _mm256_extractf128_ps(r1, 1));
    _mm_storeu_ps(d + 6 * cols, _mm256_extractf128_ps(r2, 1));
    _mm_storeu_ps(d + 7 * cols, _mm256_extractf128_ps(r3, 1));
}

/* one column group of eight rows, dense: column k is v0 where p0 == k, v1 where p1 == k,
 * else 0 (lane j: row j) */
static inline void group_4x8(__m256 v0, __m256 v1, __m256i p0, __m256i p1, float *d, int64_t cols) {
    __m256 c[4];
    for (int k = 0; k < 4; k++) {
        const __m256i kk = _mm256_set1_epi32(k);
        c[k] = _mm256_or_ps(_mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(p0, kk)), v0),
                            _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(p1, kk)), v1));
    }
    store_4x8(c, d, cols);
}

/* row group G as eight dense rows, column group by column group */
static void ilv24_deq(const pare_nm *w, int64_t G, float *dst) {
    const int64_t ng = w->cols / 4, cols = w->cols;
    const __m256i s0 = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28), s1 = _mm256_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30);
    const __m256i three = _mm256_set1_epi32(3);
    const uint8_t *b = w->ilv + (size_t)G * (size_t)ng * K_NM_ILV_BLOCK;
    for (int64_t g = 0; g < ng; g++, b += K_NM_ILV_BLOCK) {
        uint32_t pw;
        memcpy(&pw, b + 32, 4);
        const __m256i B = _mm256_set1_epi32((int)pw);
        group_4x8(ld_f16(b, 0), ld_f16(b, 8), _mm256_and_si256(_mm256_srlv_epi32(B, s0), three),
                  _mm256_and_si256(_mm256_srlv_epi32(B, s1), three), dst + 4 * g, cols);
    }
}

/* ---- 4:8 F16, eight rows interleaved (nm.h) --------------------------------------------- */
/* Per column group (8 columns): x's eight columns in one register; each lane's 12-bit
 * position field is picked out of the 12 position bytes (vpshufb: two bytes per lane; odd
 * rows' fields start at bit 4, vpsrlvd) and vpermps reads bits 0-2 of the lane, so value
 * slot k takes the field shifted right by 3 k. Two row groups a step. Measured in a test
 * binary on one Zen 3 core, L3-resident: 24.2 G weights/s (28.7 GB/s); with 16-bit fields
 * (10 bits per weight) 25.4. */
#define ILV48_POS(b, P)                                                                                              \
    const __m256i P = _mm256_srlv_epi32(                                                                            \
        _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)((b) + 64))), spr), sh)
#define ILV48_STEP(b, xg, a0, a1)                                                                                    \
    do {                                                                                                            \
        ILV48_POS(b, P_);                                                                                           \
        a0 = _mm256_fmadd_ps(ld_f16((b), 0), _mm256_permutevar8x32_ps(xg, P_), a0);                                 \
        a1 = _mm256_fmadd_ps(ld_f16((b), 8), _mm256_permutevar8x32_ps(xg, _mm256_srli_epi32(P_, 3)), a1);           \
        a0 = _mm256_fmadd_ps(ld_f16((b), 16), _mm256_permutevar8x32_ps(xg, _mm256_srli_epi32(P_, 6)), a0);          \
        a1 = _mm256_fmadd_ps(ld_f16((b), 24), _mm256_permutevar8x32_ps(xg, _mm256_srli_epi32(P_, 9)), a1);          \
    } while (0)
#define ILV48_CONSTS                                                                                                 \
    const __m256i spr = _mm256_setr_epi8(0, 1, -1, -1, 1, 2, -1, -1, 3, 4, -1, -1, 4, 5, -1, -1, 6, 7, -1, -1, 7, 8, -1, \
                                         -1, 9, 10, -1, -1, 10, 11, -1, -1);                                        \
    const __m256i sh = _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4)

static void ilv48_rows(const pare_nm *w, int64_t g0, int64_t g1, const float *x, float *y) {
    const int64_t ng = w->cols / 8;
    ILV48_CONSTS;
    int64_t G = g0;
    for (; G + 2 <= g1; G += 2) {
        const uint8_t *b = w->ilv + (size_t)G * (size_t)ng * K_NM_ILV48_BLOCK, *c = b + (size_t)ng * K_NM_ILV48_BLOCK;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, d0 = a0, d1 = a0;
        for (int64_t g = 0; g < ng; g++, b += K_NM_ILV48_BLOCK, c += K_NM_ILV48_BLOCK) {
            _mm_prefetch((const char *)b + NM8_PF, _MM_HINT_T0);
            _mm_prefetch((const char *)b + NM8_PF + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)c + NM8_PF, _MM_HINT_T0);
            _mm_prefetch((const char *)c + NM8_PF + 64, _MM_HINT_T0);
            const __m256 xg = _mm256_loadu_ps(x + 8 * g);
            ILV48_STEP(b, xg, a0, a1);
            ILV48_STEP(c, xg, d0, d1);
        }
        ilv_store(w, G, _mm256_add_ps(a0, a1), y);
        ilv_store(w, G + 1, _mm256_add_ps(d0, d1), y);
    }
    for (; G < g1; G++) {
        const uint8_t *b = w->ilv + (size_t)G * (size_t)ng * K_NM_ILV48_BLOCK;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (int64_t g = 0; g < ng; g++, b += K_NM_ILV48_BLOCK) {
            _mm_prefetch((const char *)b + NM8_PF, _MM_HINT_T0);
            _mm_prefetch((const char *)b + NM8_PF + 64, _MM_HINT_T0);
            ILV48_STEP(b, _mm256_loadu_ps(x + 8 * g), a0, a1);
        }
        ilv_store(w, G, _mm256_add_ps(a0, a1), y);
    }
}

/* row group G as eight dense rows: column c of each column group is the value whose
 * position is c, else 0 (a blend per slot that can hold c); two 4 x 8 transposes */
static void ilv48_deq(const pare_nm *w, int64_t G, float *dst) {
    const int64_t ng = w->cols / 8, cols = w->cols;
    ILV48_CONSTS;
    const __m256i seven = _mm256_set1_epi32(7);
    const uint8_t *b = w->ilv + (size_t)G * (size_t)ng * K_NM_ILV48_BLOCK;
    for (int64_t g = 0; g < ng; g++, b += K_NM_ILV48_BLOCK) {
        ILV48_POS(b, P);
        __m256 v[4];
        __m256i p[4];
        for (int k = 0; k < 4; k++) {
            v[k] = ld_f16(b, 8 * (size_t)k);
            p[k] = _mm256_and_si256(_mm256_srlv_epi32(P, _mm256_set1_epi32(3 * k)), seven);
        }
        for (int h = 0; h < 2; h++) {
            __m256 c[4];
            for (int i = 0; i < 4; i++) {
                const __m256i cc = _mm256_set1_epi32(4 * h + i);
                __m256 e = _mm256_setzero_ps();
                /* p0 < p1 < p2 < p3: slot k lies in columns k .. k + 4 */
                for (int k = 4 * h + i > 4 ? 4 * h + i - 4 : 0; k <= 3 && k <= 4 * h + i; k++)
                    e = _mm256_blendv_ps(e, v[k], _mm256_castsi256_ps(_mm256_cmpeq_epi32(p[k], cc)));
                c[i] = e;
            }
            store_4x8(c, dst + 8 * g + 4 * h, cols);
        }
    }
}

static void ilv_rows(const pare_nm *w, int64_t g0, int64_t g1, const float *x, float *y) {
    if (w->m == 8) ilv48_rows(w, g0, g1, x, y);
    else ilv24_rows(w, g0, g1, x, y);
}

/* ---- 2:4 8-bit, eight rows interleaved (nm.h) ------------------------------------------- */
/* Per pair of column groups, one 32-byte load holds the eight rows' four values; the rows'
 * position bytes, spread to their lanes (each lane: the byte twice, then shifted right by 4
 * twice) and masked, index x's 16-byte table of the pair (k_nm_ilv8_xtab), and maddubs/madd
 * sum the products of each lane (w's sign moved onto x). Four pairs make a block: one
 * integer vector, scaled by the rows' scales times x's, one FMA. Two row groups a step share
 * x's tables. */
static inline __m256i ilv8_dot(const uint8_t *b, int t, __m256i xt) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7);
    uint64_t pv;
    memcpy(&pv, b + K_NM_ILV8_POS + 8 * t, 8);
    const __m256i u = _mm256_shuffle_epi8(_mm256_set1_epi64x((long long)pv), spread);
    const __m256i lo = _mm256_blend_epi16(u, _mm256_srli_epi16(u, 4), 0xaa); /* low nibbles: v v v>>4 v>>4 */
    const __m256i idx = _mm256_or_si256(_mm256_and_si256(lo, _mm256_set1_epi32(0x0c030c03)), _mm256_set1_epi32(0x01040300));
    const __m256i xg = _mm256_shuffle_epi8(xt, idx);
    const __m256i q = _mm256_loadu_si256((const __m256i *)(b + K_NM_ILV8_VAL + 32 * t));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(xg, q)), _mm256_set1_epi16(1));
}

static inline __m256i ilv8_block(const uint8_t *b, const __m256i xt[4]) {
    return _mm256_add_epi32(_mm256_add_epi32(ilv8_dot(b, 0, xt[0]), ilv8_dot(b, 1, xt[1])),
                            _mm256_add_epi32(ilv8_dot(b, 2, xt[2]), ilv8_dot(b, 3, xt[3])));
}

static inline __m256 ilv8_scales(const uint8_t *b, const float *dx) {
    return _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b)), _mm256_broadcast_ss(dx));
}

static inline void ilv8_prefetch(const uint8_t *b) {
    _mm_prefetch((const char *)b + NM8_PF, _MM_HINT_T0);
    _mm_prefetch((const char *)b + NM8_PF + 64, _MM_HINT_T0);
    _mm_prefetch((const char *)b + NM8_PF + 128, _MM_HINT_T0);
}

static void ilv8_rows(const pare_nm *w, int64_t g0, int64_t g1, const k_xvec *xv, const int8_t *xtab, float *y) {
    const int64_t nb = w->cols / 32;
    const size_t gs = (size_t)nb * K_NM_ILV8_BLOCK;
    int64_t G = g0;
    for (; G + 2 <= g1; G += 2) {
        const uint8_t *b = w->ilv + (size_t)G * gs, *c = b + gs;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (int64_t bk = 0; bk < nb; bk++, b += K_NM_ILV8_BLOCK, c += K_NM_ILV8_BLOCK) {
            ilv8_prefetch(b);
            ilv8_prefetch(c);
            __m256i xt[4];
            for (int t = 0; t < 4; t++) xt[t] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(xtab + 64 * bk + 16 * t)));
            a0 = _mm256_fmadd_ps(ilv8_scales(b, xv->d + bk), _mm256_cvtepi32_ps(ilv8_block(b, xt)), a0);
            a1 = _mm256_fmadd_ps(ilv8_scales(c, xv->d + bk), _mm256_cvtepi32_ps(ilv8_block(c, xt)), a1);
        }
        ilv_store(w, G, a0, y);
        ilv_store(w, G + 1, a1, y);
    }
    for (; G < g1; G++) {
        const uint8_t *b = w->ilv + (size_t)G * gs;
        __m256 a0 = _mm256_setzero_ps();
        for (int64_t bk = 0; bk < nb; bk++, b += K_NM_ILV8_BLOCK) {
            ilv8_prefetch(b);
            __m256i xt[4];
            for (int t = 0; t < 4; t++) xt[t] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(xtab + 64 * bk + 16 * t)));
            a0 = _mm256_fmadd_ps(ilv8_scales(b, xv->d + bk), _mm256_cvtepi32_ps(ilv8_block(b, xt)), a0);
        }
        ilv_store(w, G, a0, y);
    }
}

/* row group G as eight dense rows: per pair of column groups, each lane's four value bytes
 * and position byte taken apart by shifts, the values times the row's scale, then as F16 */
static void ilv8_deq(const pare_nm *w, int64_t G, float *dst) {
    const int64_t nb = w->cols / 32, cols = w->cols;
    const __m256i three = _mm256_set1_epi32(3);
    const uint8_t *b = w->ilv + (size_t)G * (size_t)nb * K_NM_ILV8_BLOCK;
    for (int64_t bk = 0; bk < nb; bk++, b += K_NM_ILV8_BLOCK) {
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b));
        for (int t = 0; t < 4; t++) {
            const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + K_NM_ILV8_POS + 8 * t)));
            const __m256i q = _mm256_loadu_si256((const __m256i *)(b + K_NM_ILV8_VAL + 32 * t));
#define QV(k) _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(q, 24 - 8 * (k)), 24)))
            float *o = dst + 32 * bk + 8 * t;
            group_4x8(QV(0), QV(1), _mm256_and_si256(v, three), _mm256_and_si256(_mm256_srli_epi32(v, 2), three), o, cols);
            group_4x8(QV(2), QV(3), _mm256_and_si256(_mm256_srli_epi32(v, 4), three), _mm256_srli_epi32(v, 6), o + 4, cols);
#undef QV
        }
    }
}

static void ilv_deq(const pare_nm *w, int64_t G, float *dst) {
    if (w->vtype == PARE_TYPE_Q8_0) ilv8_deq(w, G, dst);
    else if (w->m == 8) ilv48_deq(w, G, dst);
    else ilv24_deq(w, G, dst);
}

void k_nm_ops_avx2(k_nm_ops *t) {
    t->ilv_rows = ilv_rows;
    t->ilv8_rows = ilv8_rows;
    t->ilv_deq = ilv_deq;
    lut_init();
    t->rows[K_NM_F32] = rows_f32;
    t->rows[K_NM_F16] = rows_f16;
    t->rows[K_NM_BF16] = rows_bf16;
    t->rows[K_NM_Q8] = rows_q8;
    t->deq[K_NM_F32] = deq_f32;
    t->deq[K_NM_F16] = deq_f16;
    t->deq[K_NM_BF16] = deq_bf16;
    t->deq[K_NM_Q8] = deq_q8;
    t->rows_q8xq = rows_q8_xq;
}
