/* quant.c - the round-to-nearest grids of quant.h: spec names, bits per weight, fitting a
 * group's grid, codes, values, GGUF packing, and RTN of a row. */
#include "quant.h"

#include "kernels/kernels.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_gguf(int type) {
    return type == PARE_TYPE_Q8_0 || type == PARE_TYPE_Q4_0 || type == PARE_TYPE_Q4_1 || type == PARE_TYPE_Q5_0 ||
           type == PARE_TYPE_Q5_1;
}

/* ---- specs ------------------------------------------------------------------------------ */
pare_status quant_spec_parse(const char *s, quant_spec *out) {
    static const struct { const char *name; int type, bits, asym; } gguf[] = {
        {"q8_0", PARE_TYPE_Q8_0, 8, 0}, {"q4_0", PARE_TYPE_Q4_0, 4, 0}, {"q4_1", PARE_TYPE_Q4_1, 4, 1},
        {"q5_0", PARE_TYPE_Q5_0, 5, 0}, {"q5_1", PARE_TYPE_Q5_1, 5, 1},
    };
    const char *want = "q8_0, q4_0, q4_1, q5_0, q5_1 or intB[-gG][-asym] with B in 2..8, G in 8..4096 (e.g. int3-g128)";
    for (size_t i = 0; i < sizeof gguf / sizeof *gguf; i++)
        if (!strcmp(s, gguf[i].name)) {
            *out = (quant_spec){gguf[i].type, gguf[i].bits, 32, gguf[i].asym};
            return PARE_OK;
        }
    quant_spec q = {-1, 0, 0, 0};
    if (strncmp(s, "int", 3) || s[3] < '2' || s[3] > '8') return pare_fail(PARE_ERR_ARG, "type '%s': expected %s", s, want);
    q.bits = s[3] - '0';
    const char *p = s + 4;
    int have_g = 0, have_sym = 0;
    while (*p) {
        if (*p != '-') return pare_fail(PARE_ERR_ARG, "type '%s': expected %s", s, want);
        p++;
        if (p[0] == 'g' && p[1] >= '0' && p[1] <= '9' && !have_g) {
            char *e;
            long g = strtol(p + 1, &e, 10);
            if (g < 8 || g > 4096) return pare_fail(PARE_ERR_ARG, "type '%s': the group size must be in 8..4096", s);
            q.group = (int)g; have_g = 1; p = e;
        } else if (!strncmp(p, "asym", 4) && (p[4] == '-' || !p[4]) && !have_sym) {
            q.asym = 1; have_sym = 1; p += 4;
        } else if (!strncmp(p, "sym", 3) && (p[3] == '-' || !p[3]) && !have_sym) {
            q.asym = 0; have_sym = 1; p += 3;
        } else {
            return pare_fail(PARE_ERR_ARG, "type '%s': expected %s", s, want);
        }
    }
    *out = q;
    return PARE_OK;
}

void quant_spec_name(const quant_spec *q, char *buf, size_t n) {
    if (q->type >= 0) { snprintf(buf, n, "%s", pare_type_name(q->type)); return; }
    char g[16] = "";
    if (q->group) snprintf(g, sizeof g, "-g%d", q->group);
    snprintf(buf, n, "int%d%s%s", q->bits, g, q->asym ? "-asym" : "");
}

double quant_bits_per_weight(const quant_spec *q, int64_t cols) {
    if (cols <= 0) return 0;
    if (q->type >= 0) return 8.0 * (double)pare_type_block_bytes(q->type) / (double)pare_type_block(q->type);
    const int64_t G = q->group ? q->group : cols, ngroups = (cols + G - 1) / G;
    return q->bits + 16.0 * (double)ngroups * (q->asym ? 2 : 1) / (double)cols;
}

pare_status quant_check_cols(const quant_spec *q, int64_t cols, const char *name) {
    if (q->type >= 0 && cols % 32)
        return pare_fail(PARE_ERR_ARG, "%s: %lld input columns are not whole blocks of 32 (%s)", name, (long long)cols,
                         pare_type_name(q->type));
    if (cols <= 0 || cols > (1 << 30)) return pare_fail(PARE_ERR_ARG, "%s: bad width %lld", name, (long long)cols);
    return PARE_OK;
}

/* ---- one group -------------------------------------------------------------------------- */
static void set_scale(quant_group *g, float d) {
    g->id = d != 0.0f ? 1.0f / d : 0.0f;
    g->d16 = pare_f32_to_f16(d);
    g->ds = pare_f16_to_f32(g->d16);
}

void quant_fit(const quant_spec *q, const float *x, int64_t n, quant_group *g) {
    memset(g, 0, sizeof *g);
    switch (q->type) {
    case PARE_TYPE_Q8_0: { /* quantize_row_q8_0_ref */
        float amax = 0.0f;
        for (int64_t j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
        set_scale(g, amax / 127.0f);
        g->lo = -128; g->hi = 127; /* RTN never gives -128; the format holds it (GPTQ may) */
        return;
    }
    case PARE_TYPE_Q4_0:
    case PARE_TYPE_Q5_0: { /* quantize_row_q4_0_ref / q5_0: the first largest |x| keeps its sign */
        const int half = q->type == PARE_TYPE_Q4_0 ? 8 : 16;
        float amax = 0.0f, max = 0.0f;
        for (int64_t j = 0; j < n; j++)
            if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
        set_scale(g, max / (float)-half);
        g->zero = half; g->lo = 0; g->hi = 2 * half - 1;
        return;
    }
    case PARE_TYPE_Q4_1:
    case PARE_TYPE_Q5_1: { /* quantize_row_q4_1_ref / q5_1: min and max start at +-FLT_MAX */
        const int top = q->type == PARE_TYPE_Q4_1 ? 15 : 31;
        float mn = FLT_MAX, mx = -FLT_MAX;
        for (int64_t j = 0; j < n; j++) {
            if (x[j] < mn) mn = x[j];
            if (x[j] > mx) mx = x[j];
        }
        set_scale(g, (mx - mn) / (float)top);
        g->base = mn;
        g->m16 = pare_f32_to_f16(mn);
        g->ms = pare_f16_to_f32(g->m16);
        g->lo = 0; g->hi = top; g->affine = 1;
        return;
    }
    default: break;
    }
    if (!q->asym) {
        const int qmax = (1 << (q->bits - 1)) - 1;
        float amax = 0.0f;
        for (int64_t j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
        set_scale(g, amax / (float)qmax);
        g->lo = -qmax; g->hi = qmax;
    } else { /* GPTQ's Quantizer.find_params, asymmetric */
        const int maxq = (1 << q->bits) - 1;
        float lo = 0.0f, hi = 0.0f;
        for (int64_t j = 0; j < n; j++) {
            if (x[j] < lo) lo = x[j];
            if (x[j] > hi) hi = x[j];
        }
        if (lo == 0.0f && hi == 0.0f) { lo = -1.0f; hi = 1.0f; }
        set_scale(g, (hi - lo) / (float)maxq);
        float z = nearbyintf(-lo * g->id);
        g->zero = z < 0 ? 0 : z > maxq ? maxq : (int)z;
        g->lo = 0; g->hi = maxq;
    }
}

/* v truncated toward zero and clamped to [lo, hi]; NaN gives the code nearest 0 */
static inline int clamp_code(float v, int lo, int hi) {
    if (v != v) return lo > 0 ? lo : hi < 0 ? hi : 0;
    if (v <= (float)lo) return lo;
    if (v >= (float)hi) return hi;
    return (int)v;
}

int quant_code(const quant_spec *q, const quant_group *g, float x) {
    switch (q->type) {
    case PARE_TYPE_Q8_0: return clamp_code(roundf(x * g->id), g->lo, g->hi);
    case PARE_TYPE_Q4_0: return clamp_code(x * g->id + 8.5f, g->lo, g->hi);
    case PARE_TYPE_Q5_0: return clamp_code(x * g->id + 16.5f, g->lo, g->hi);
    case PARE_TYPE_Q4_1:
    case PARE_TYPE_Q5_1: return clamp_code((x - g->base) * g->id + 0.5f, g->lo, g->hi);
    default: return clamp_code(nearbyintf(x * g->id) + (float)g->zero, g->lo, g->hi);
    }
}

/* ---- GGUF packing ----------------------------------------------------------------------- */
static void pack4(const int16_t *c, uint8_t *qs) {
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((c[j] & 0x0f) | (c[j + 16] & 0x0f) << 4);
}
static void pack5(const int16_t *c, uint8_t *qh, uint8_t *qs) {
    uint32_t h = 0;
    for (int j = 0; j < 32; j++) h |= (uint32_t)((c[j] >> 4) & 1) << j;
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
    pack4(c, qs);
}

void quant_pack_row(const quant_spec *q, const quant_group *g, const int16_t *codes, int64_t cols, void *dst) {
    for (int64_t b = 0; b < cols / 32; b++) {
        const int16_t *c = codes + b * 32;
        switch (q->type) {
        case PARE_TYPE_Q8_0: {
            block_q8_0 *y = (block_q8_0 *)dst + b;
            y->d = g[b].d16;
            for (int j = 0; j < 32; j++) y->qs[j] = (int8_t)c[j];
            break;
        }
        case PARE_TYPE_Q4_0: { block_q4_0 *y = (block_q4_0 *)dst + b; y->d = g[b].d16; pack4(c, y->qs); break; }
        case PARE_TYPE_Q4_1: { block_q4_1 *y = (block_q4_1 *)dst + b; y->d = g[b].d16; y->m = g[b].m16; pack4(c, y->qs); break; }
        case PARE_TYPE_Q5_0: { block_q5_0 *y = (block_q5_0 *)dst + b; y->d = g[b].d16; pack5(c, y->qh, y->qs); break; }
        case PARE_TYPE_Q5_1: {
            block_q5_1 *y = (block_q5_1 *)dst + b;
            y->d = g[b].d16; y->m = g[b].m16;
            pack5(c, y->qh, y->qs);
            break;
        }
        default: return;
        }
    }
}

/* ---- RTN of a row ----------------------------------------------------------------------- */
void quant_rtn_row(const quant_spec *q, float *x, int64_t cols, void *packed) {
    if (packed && is_gguf(q->type)) k_quant_row(q->type, x, packed, cols); /* the reference quantizer */
    const int64_t G = q->group ? q->group : cols;
    for (int64_t g0 = 0; g0 < cols; g0 += G) {
        const int64_t n = cols - g0 < G ? cols - g0 : G;
        quant_group g;
        quant_fit(q, x + g0, n, &g);
        for (int64_t j = g0; j < g0 + n; j++) x[j] = quant_value(&g, quant_code(q, &g, x[j]));
    }
}
