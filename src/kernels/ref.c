/* ref.c - the portable C reference of every kernel: the truth the SIMD paths are tested
 * against, and the path used when the CPU has neither AVX2 nor AVX-512 (or PARE_ISA=ref).
 * Dots accumulate in double; dequantization is exact float arithmetic (d * q), which every
 * SIMD version reproduces bit for bit; the quantizers are ggml's reference quantizers
 * (quantize_row_q8_0_ref, quantize_row_q4_0_ref), so the bytes match llama.cpp's. */
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

/* ---- quantize --------------------------------------------------------------------------- */
/* A float already in [lo, hi] for finite input, converted without undefined behaviour for
 * NaN or out-of-range input (which ggml leaves undefined): those give 0. */
static inline int clamp_i8(float v, float lo, float hi) { return v >= lo && v <= hi ? (int)v : 0; }

/* quantize_row_q8_0_ref */
static void quant_q8_0(const float *x, block_q8_0 *y, int64_t n) {
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = pare_f32_to_f16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)clamp_i8(roundf(x[j] * id), -128, 127);
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
}
