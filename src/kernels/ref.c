/* ref.c - the portable C reference of every kernel: the truth the SIMD paths are tested
 * against, and the path used when the CPU has neither AVX2 nor AVX-512 (or PARE_ISA=ref).
 * Dots accumulate in double; dequantization is exact float arithmetic (d * q), which every
 * SIMD version reproduces bit for bit; the quantizers are ggml's reference quantizers
 * (quantize_row_{q8_0,q4_0,q4_1,q5_0,q5_1}_ref), so the bytes match llama.cpp's. Q4_1, Q5_0
 * and Q5_1 have only these reference kernels (no SIMD rows): matvec loops over dot, matmul
 * dequantizes panels for sgemm. */
#include "k_impl.h"

#include <float.h>
#include <math.h>
#include <string.h>

static inline uint16_t load_u16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

/* ---- dot (exact x) ---------------------------------------------------------------------- */
static float dot_f32(const void *row, const float *x, int64_t n) {
    const float *w = row;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)w[i] * x[i];
    return (float)s;
}

static float dot_f16(const void *row, const float *x, int64_t n) {
    const uint8_t *w = row;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)pare_f16_to_f32(load_u16(w + 2 * i)) * x[i];
    return (float)s;
}

static float dot_bf16(const void *row, const float *x, int64_t n) {
    const uint8_t *w = row;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)pare_bf16_to_f32(load_u16(w + 2 * i)) * x[i];
    return (float)s;
}

static float dot_q8_0(const void *row, const float *x, int64_t n) {
    const block_q8_0 *b = row;
    double s = 0;
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        double bs = 0;
        for (int j = 0; j < QK8_0; j++) bs += (double)b[i].qs[j] * x[j];
        s += (double)pare_f16_to_f32(b[i].d) * bs;
    }
    return (float)s;
}

static float dot_q4_0(const void *row, const float *x, int64_t n) {
    const block_q4_0 *b = row;
    double s = 0;
    for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
        double bs = 0;
        for (int j = 0; j < QK4_0 / 2; j++) {
            bs += (double)((b[i].qs[j] & 0x0f) - 8) * x[j];
            bs += (double)((b[i].qs[j] >> 4) - 8) * x[j + QK4_0 / 2];
        }
        s += (double)pare_f16_to_f32(b[i].d) * bs;
    }
    return (float)s;
}

/* The 32 codes of a Q4_1 / Q5_0 / Q5_1 block (nibbles as Q4_0; the fifth bit from qh). */
static inline void codes4(const uint8_t *qs, int *c) {
    for (int j = 0; j < 16; j++) { c[j] = qs[j] & 0x0f; c[j + 16] = qs[j] >> 4; }
}
static inline void codes5(const uint8_t *qh, const uint8_t *qs, int *c) {
    const uint32_t h = qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    codes4(qs, c);
    for (int j = 0; j < 32; j++) c[j] |= (int)((h >> j) & 1) << 4;
}

/* sum over a block of (d c + m) x = d sum c x + m sum x */
static float dot_q4_1(const void *row, const float *x, int64_t n) {
    const block_q4_1 *b = row;
    double s = 0;
    int c[32];
    for (int64_t i = 0; i < n / QK4_1; i++, x += QK4_1) {
        double cx = 0, sx = 0;
        codes4(b[i].qs, c);
        for (int j = 0; j < QK4_1; j++) { cx += (double)c[j] * x[j]; sx += x[j]; }
        s += (double)pare_f16_to_f32(b[i].d) * cx + (double)pare_f16_to_f32(b[i].m) * sx;
    }
    return (float)s;
}

static float dot_q5_0(const void *row, const float *x, int64_t n) {
    const block_q5_0 *b = row;
    double s = 0;
    int c[32];
    for (int64_t i = 0; i < n / QK5_0; i++, x += QK5_0) {
        double cx = 0;
        codes5(b[i].qh, b[i].qs, c);
        for (int j = 0; j < QK5_0; j++) cx += (double)(c[j] - 16) * x[j];
        s += (double)pare_f16_to_f32(b[i].d) * cx;
    }
    return (float)s;
}

static float dot_q5_1(const void *row, const float *x, int64_t n) {
    const block_q5_1 *b = row;
    double s = 0;
    int c[32];
    for (int64_t i = 0; i < n / QK5_1; i++, x += QK5_1) {
        double cx = 0, sx = 0;
        codes5(b[i].qh, b[i].qs, c);
        for (int j = 0; j < QK5_1; j++) { cx += (double)c[j] * x[j]; sx += x[j]; }
        s += (double)pare_f16_to_f32(b[i].d) * cx + (double)pare_f16_to_f32(b[i].m) * sx;
    }
    return (float)s;
}

/* ---- dequantize ------------------------------------------------------------------------- */
static void dequant_f32(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }

static void dequant_f16(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = pare_f16_to_f32(load_u16(p + 2 * i));
}

static void dequant_bf16(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = pare_bf16_to_f32(load_u16(p + 2 * i));
}

static void dequant_q8_0(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float d = pare_f16_to_f32(b[i].d);
        for (int j = 0; j < QK8_0; j++) dst[i * QK8_0 + j] = d * (float)b[i].qs[j];
    }
}

static void dequant_q4_0(const void *src, float *dst, int64_t n) {
    const block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const float d = pare_f16_to_f32(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[i * QK4_0 + j] = d * (float)((b[i].qs[j] & 0x0f) - 8);
            dst[i * QK4_0 + j + QK4_0 / 2] = d * (float)((b[i].qs[j] >> 4) - 8);
        }
    }
}

/* ggml's dequantize_row_*: d c + m (Q4_1, Q5_1), d (c - 16) (Q5_0), in float */
static void dequant_q4_1(const void *src, float *dst, int64_t n) {
    const block_q4_1 *b = src;
    int c[32];
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const float d = pare_f16_to_f32(b[i].d), m = pare_f16_to_f32(b[i].m);
        codes4(b[i].qs, c);
        for (int j = 0; j < QK4_1; j++) dst[i * QK4_1 + j] = d * (float)c[j] + m;
    }
}

static void dequant_q5_0(const void *src, float *dst, int64_t n) {
    const block_q5_0 *b = src;
    int c[32];
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const float d = pare_f16_to_f32(b[i].d);
        codes5(b[i].qh, b[i].qs, c);
        for (int j = 0; j < QK5_0; j++) dst[i * QK5_0 + j] = d * (float)(c[j] - 16);
    }
}

static void dequant_q5_1(const void *src, float *dst, int64_t n) {
    const block_q5_1 *b = src;
    int c[32];
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const float d = pare_f16_to_f32(b[i].d), m = pare_f16_to_f32(b[i].m);
        codes5(b[i].qh, b[i].qs, c);
        for (int j = 0; j < QK5_1; j++) dst[i * QK5_1 + j] = d * (float)c[j] + m;
    }
}

/* ---- quantize --------------------------------------------------------------------------- */
/* A float already in [lo, hi] for finite input, converted without undefined behaviour for
 * NaN or out-of-range input (which ggml leaves undefined): those give 0. */
static inline int clamp_i8(float v, float lo, float hi) { return v >= lo && v <= hi ? (int)v : 0; }

/* clamp_i8(roundf(v), -128, 127) without the library calls (roundf is one unless SSE4.1 is
 * enabled): in range, truncate and step away from zero on a fraction of at least one half
 * (v - (int)v is exact) */
static inline int round_i8(float v) {
    if (!(v > -128.5f && v < 127.5f)) return 0;
    const int i = (int)v;
    const float fr = v - (float)i;
    return i + (fr >= 0.5f) - (fr <= -0.5f);
}

/* quantize_row_q8_0_ref (fmaxf(amax, |x|) ignores NaN, as the comparison below does) */
static void quant_q8_0(const float *x, block_q8_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) {
            const float a = fabsf(x[j]);
            if (a > amax) amax = a;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = pare_f32_to_f16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)round_i8(x[j] * id);
    }
}

/* quantize_row_q4_0_ref: the scale is the signed value of largest magnitude (first one on a
 * tie) over -8, so that value maps to nibble 0 exactly. */
static void quant_q4_0(const float *x, block_q4_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK4_0; i++, x += QK4_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK4_0; j++)
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = pare_f32_to_f16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            int q0 = clamp_i8(x[j] * id + 8.5f, -128, 127);
            int q1 = clamp_i8(x[j + QK4_0 / 2] * id + 8.5f, -128, 127);
            q0 = q0 < 15 ? q0 : 15;
            q1 = q1 < 15 ? q1 : 15;
            y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Pack 32 codes (0..15 or 0..31) as nibbles (+ the fifth bits into qh, little-endian). */
static void pack4(const int *c, uint8_t *qs) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((c[j] & 0x0f) | (c[j + 16] & 0x0f) << 4);
}
static void pack5(const int *c, uint8_t *qh, uint8_t *qs) {
    uint32_t h = 0;
    for (int j = 0; j < 32; j++) h |= (uint32_t)((c[j] >> 4) & 1) << j;
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
    pack4(c, qs);
}

/* min and max of a block, as ggml starts them (+-FLT_MAX, so a NaN is skipped) */
static void block_minmax(const float *x, float *mn, float *mx) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo; *mx = hi;
}

/* quantize_row_q4_1_ref / q5_1_ref: d = (max - min) / (2^bits - 1), m = min; code =
 * (x - min) / d + 0.5 truncated (at most 15 for Q4_1; Q5_1 is not capped in ggml, and the
 * code of x <= max cannot pass 31). */
static void quant_affine(const float *x, void *y, int64_t n, int five) {
    const int top = five ? 31 : 15;
    int c[32];
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float mn, mx;
        block_minmax(x, &mn, &mx);
        const float d = (mx - mn) / (float)top;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; j++) {
            const int q = clamp_i8((x[j] - mn) * id + 0.5f, -128, 127);
            c[j] = q < top ? q : top;
        }
        if (five) {
            block_q5_1 *b = (block_q5_1 *)y + i;
            b->d = pare_f32_to_f16(d); b->m = pare_f32_to_f16(mn);
            pack5(c, b->qh, b->qs);
        } else {
            block_q4_1 *b = (block_q4_1 *)y + i;
            b->d = pare_f32_to_f16(d); b->m = pare_f32_to_f16(mn);
            pack4(c, b->qs);
        }
    }
}

/* quantize_row_q5_0_ref: Q4_0's rule with 5 bits: d = (signed value of largest magnitude) /
 * -16, code = x / d + 16.5 truncated, at most 31. */
static void quant_q5_0(const float *x, block_q5_0 *y, int64_t n) {
    int c[32];
    for (int64_t i = 0; i < n / QK5_0; i++, x += QK5_0) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK5_0; j++)
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        const float d = max / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = pare_f32_to_f16(d);
        for (int j = 0; j < QK5_0; j++) {
            const int q = clamp_i8(x[j] * id + 16.5f, -128, 127);
            c[j] = q < 31 ? q : 31;
        }
        pack5(c, y[i].qh, y[i].qs);
    }
}

void k_ref_quant_row(int type, const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    switch (type) {
    case PARE_TYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case PARE_TYPE_F16:
        for (int64_t i = 0; i < n; i++) { uint16_t h = pare_f32_to_f16(src[i]); memcpy(p + 2 * i, &h, 2); }
        break;
    case PARE_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) { uint16_t h = pare_f32_to_bf16(src[i]); memcpy(p + 2 * i, &h, 2); }
        break;
    case PARE_TYPE_Q8_0: quant_q8_0(src, dst, n); break;
    case PARE_TYPE_Q4_0: quant_q4_0(src, dst, n); break;
    case PARE_TYPE_Q4_1: quant_affine(src, dst, n, 0); break;
    case PARE_TYPE_Q5_0: quant_q5_0(src, dst, n); break;
    case PARE_TYPE_Q5_1: quant_affine(src, dst, n, 1); break;
    default: break;
    }
}

/* ---- x for the int8 paths ------------------------------------------------------------- */
static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t k_xvec_bytes(int64_t n) {
    const size_t nb = (size_t)n / K_QX;
    return 2 * align64(nb * 4) + 2 * align64((size_t)n) + 2 * align64(nb * 16);
}

k_xbuf k_xvec_layout(void *buf, int64_t n) {
    const size_t nb = (size_t)n / K_QX;
    uint8_t *p = buf;
    k_xbuf b;
    b.d = (float *)p;    p += align64(nb * 4);
    b.s8 = (int32_t *)p; p += align64(nb * 4);
    b.q = (int8_t *)p;   p += align64((size_t)n);
    b.q4 = (int8_t *)p;  p += align64((size_t)n);
    b.d4 = (float *)p;   p += align64(nb * 16);
    b.o4 = (int32_t *)p;
    return b;
}

void k_quantize_x(const float *x, int64_t n, void *buf, k_xvec *v) {
    const int64_t nb = n / K_QX;
    const k_xbuf o = k_xvec_layout(buf, n);
    *v = (k_xvec){x, o.d, o.s8, o.q, o.q4, o.d4, o.o4};
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * K_QX;
        int8_t *qb = o.q + b * K_QX;
        float amax = 0.0f;
        int finite = 1;
        for (int j = 0; j < K_QX; j++) {
            const float a = fabsf(xb[j]);
            if (!(a <= FLT_MAX)) finite = 0; /* inf or NaN */
            amax = a > amax ? a : amax;
        }
        int sum = 0;
        if (!finite) { /* the result must be NaN, as with the exact x */
            memset(qb, 0, K_QX);
            o.d[b] = NAN;
        } else {
            float id;
            o.d[b] = k_xscale(amax, &id);
            for (int j = 0; j < K_QX; j++) {
                qb[j] = (int8_t)clamp_i8(nearbyintf(xb[j] * id), -127, 127);
                sum += qb[j];
            }
        }
        o.s8[b] = 8 * sum;
        for (int l = 0; l < 4; l++) { o.d4[4 * b + l] = o.d[b]; o.o4[4 * b + l] = -2 * sum; }
    }
    for (int64_t g = 0; g < nb / 4; g++)
        for (int k = 0; k < 4; k++) {
            memcpy(o.q4 + 128 * g + 16 * k, o.q + (4 * g + k) * K_QX, 16);
            memcpy(o.q4 + 128 * g + 64 + 16 * k, o.q + (4 * g + k) * K_QX + 16, 16);
        }
}

void k_ops_ref(k_ops ops[K_NTYPES]) {
    ops[K_F32] = (k_ops){dot_f32, NULL, dequant_f32, 0, NULL};
    ops[K_F16] = (k_ops){dot_f16, NULL, dequant_f16, 0, NULL};
    ops[K_BF16] = (k_ops){dot_bf16, NULL, dequant_bf16, 0, NULL};
    ops[K_Q8_0] = (k_ops){dot_q8_0, NULL, dequant_q8_0, 0, NULL};
    ops[K_Q4_0] = (k_ops){dot_q4_0, NULL, dequant_q4_0, 0, NULL};
    ops[K_Q4_1] = (k_ops){dot_q4_1, NULL, dequant_q4_1, 0, NULL};
    ops[K_Q5_0] = (k_ops){dot_q5_0, NULL, dequant_q5_0, 0, NULL};
    ops[K_Q5_1] = (k_ops){dot_q5_1, NULL, dequant_q5_1, 0, NULL};
}
