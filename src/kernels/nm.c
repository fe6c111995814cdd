/* nm.c - N:M-sparse matrices: detection, compression, the C reference rows and the drivers
 * (matvec over OpenMP threads, matmul by dense panels). The SIMD rows are in nm_avx2.c and
 * nm_avx512.c; every ISA reads the same layout (nm.h). */
#include "k_impl.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int nm_slot(int vtype) {
    switch (vtype) {
    case PARE_TYPE_F32: return K_NM_F32;
    case PARE_TYPE_F16: return K_NM_F16;
    case PARE_TYPE_BF16: return K_NM_BF16;
    case PARE_TYPE_Q8_0: return K_NM_Q8;
    default: return -1;
    }
}

static inline size_t vbytes(int vtype) { return vtype == PARE_TYPE_F32 ? 4 : vtype == PARE_TYPE_Q8_0 ? 1 : 2; }

static inline int kept(const pare_nm *w, int64_t r, int64_t c) {
    return (w->mask[(size_t)r * w->mstride + (size_t)(c >> 3)] >> (c & 7)) & 1;
}

/* kept value k of row r as a float (Q8: times the scale of column c's block) */
static inline float value(const pare_nm *w, int64_t r, int64_t k, int64_t c) {
    const uint8_t *v = w->vals + (size_t)r * w->vstride;
    uint16_t h;
    switch (w->vtype) {
    case PARE_TYPE_F32: { float f; memcpy(&f, v + 4 * k, 4); return f; }
    case PARE_TYPE_F16: memcpy(&h, v + 2 * k, 2); return pare_f16_to_f32(h);
    case PARE_TYPE_BF16: memcpy(&h, v + 2 * k, 2); return pare_bf16_to_f32(h);
    default: return pare_f16_to_f32(w->scale[(size_t)r * (size_t)(w->cols / 32) + (size_t)(c / 32)]) * (float)(int8_t)v[k];
    }
}

/* ---- detection and compression ---------------------------------------------------------- */
static const int g_ms[] = {4, 8, 16};
enum { NMS = sizeof g_ms / sizeof g_ms[0] };

/* row r of W as floats in layout order */
static void layout_row(int type, const void *W, size_t rb, int64_t r, int64_t cols, const int32_t *perm, float *tmp,
                       float *out) {
    const uint8_t *row = (const uint8_t *)W + (size_t)r * rb;
    if (!perm) { k_dequant_row(type, row, out, cols); return; }
    k_dequant_row(type, row, tmp, cols);
    for (int64_t c = 0; c < cols; c++) out[c] = tmp[perm[c]];
}

/* bit c of bits (words of 64) set iff row[c] != 0 (NaN counts as nonzero) */
static void nz_bits(const float *row, int64_t cols, uint64_t *bits) {
    for (int64_t w = 0; w < (cols + 63) / 64; w++) {
        uint64_t b = 0;
        const int64_t e = cols - 64 * w < 64 ? cols - 64 * w : 64;
        for (int64_t j = 0; j < e; j++) b |= (uint64_t)(row[64 * w + j] != 0.0f) << j;
        bits[w] = b;
    }
}

/* bits set in x < 2^16 (without -mpopcnt __builtin_popcount is a library call) */
static inline int pop16(uint32_t x) {
    x = x - ((x >> 1) & 0x5555u);
    x = (x & 0x3333u) + ((x >> 2) & 0x3333u);
    x = (x + (x >> 4)) & 0x0f0fu;
    return (int)((x + (x >> 8)) & 0x1fu);
}

/* the m (<= 16) bits of bits from bit c on */
static inline uint32_t group_bits(const uint64_t *bits, int64_t c, int m) {
    const int sh = (int)(c & 63);
    uint64_t b = bits[c >> 6] >> sh;
    if (sh + m > 64) b |= bits[(c >> 6) + 1] << (64 - sh);
    return (uint32_t)b & ((1u << m) - 1);
}

void k_nm_detect(int type, const void *W, int64_t rows, int64_t cols, const int32_t *perm, int *n, int *m) {
    *n = *m = 0;
    const size_t rb = pare_row_bytes(type, cols);
    if (!rb || rows <= 0 || k_slot(type) < 0 || nm_slot(type) < 0) return;
    int maxnz[NMS], live = 0;
    for (int i = 0; i < NMS; i++) { maxnz[i] = cols % g_ms[i] ? g_ms[i] + 1 : 0; live += !(cols % g_ms[i]); }
    if (!live) return;
    /* the first 64 rows, then the rest: a dense matrix fails every pattern in the first */
    int nomem = 0;
    for (int64_t r0 = 0, r1; r0 < rows && !nomem; r0 = r1) {
        r1 = r0 == 0 && rows > 64 ? 64 : rows;
        int lmax[NMS] = {0};
#pragma omp parallel if ((r1 - r0) * (double)rb > (1 << 18))
        {
            float *row = malloc((size_t)cols * 2 * sizeof(float));
            uint64_t *bits = malloc((size_t)(cols + 63) / 64 * sizeof(uint64_t));
            int mine[NMS] = {0};
            if (!row || !bits) {
#pragma omp atomic write
                nomem = 1;
            }
#pragma omp for schedule(static)
            for (int64_t r = r0; r < r1; r++) {
                if (!row || !bits) continue;
                layout_row(type, W, rb, r, cols, perm, row + cols, row);
                nz_bits(row, cols, bits);
                for (int i = 0; i < NMS; i++) {
                    if (cols % g_ms[i]) continue;
                    for (int64_t g = 0; g < cols; g += g_ms[i]) {
                        const int nz = pop16(group_bits(bits, g, g_ms[i]));
                        if (nz > mine[i]) mine[i] = nz;
                    }
                }
            }
#pragma omp critical
            for (int i = 0; i < NMS; i++) if (mine[i] > lmax[i]) lmax[i] = mine[i];
            free(row); free(bits);
        }
        int useful = 0;
        for (int i = 0; i < NMS; i++) {
            if (lmax[i] > maxnz[i]) maxnz[i] = lmax[i];
            useful |= maxnz[i] * 4 <= 3 * g_ms[i];
        }
        if (!useful) return;
    }
    if (nomem) return;
    double best = 0.75;
    for (int i = 0; i < NMS; i++) {
        const double ratio = (double)(maxnz[i] > 0 ? maxnz[i] : 1) / g_ms[i];
        if (ratio <= best && (*m == 0 || ratio < best)) { best = ratio; *n = maxnz[i] > 0 ? maxnz[i] : 1; *m = g_ms[i]; }
    }
}

void k_nm_free(pare_nm *w) {
    if (!w) return;
    free(w->vals); free(w->mask); free(w->scale); free(w->perm); free(w->ilv);
    free(w);
}

/* ---- eight rows interleaved (2:4 F16 and 8-bit, 4:8 F16) ------------------------------ */

int k_nm_ilv_wanted(const pare_nm *w) {
    const char *e = getenv("PARE_NM8");
    if (e && !strcmp(e, "0")) return 0;
    return k_isa() == PARE_ISA_AVX2 && !w->ilv &&
           ((w->n == 2 && w->m == 4 && (w->vtype == PARE_TYPE_F16 || w->vtype == PARE_TYPE_Q8_0)) ||
            (w->n == 4 && w->m == 8 && w->vtype == PARE_TYPE_F16));
}

/* the N kept positions (0 .. M-1, ascending) of row r in the group of columns from c0 of
 * the row layout, which keeps exactly N (nm.h) */
static inline void kept_pos(const pare_nm *w, int64_t r, int64_t c0, int p[4]) {
    /* M = 4 or 8 and c0 a multiple of M: the group lies in one mask byte */
    unsigned b = (unsigned)(w->mask[(size_t)r * w->mstride + (size_t)(c0 >> 3)] >> (c0 & 7)) & ((1u << w->m) - 1);
    for (int k = 0; b; k++, b &= b - 1) p[k] = __builtin_ctz(b);
}

/* 2:4 F16: row group G, column group g */
static void ilv_fill16(const pare_nm *w, uint8_t *b, int64_t G, int64_t g) {
    uint32_t pos = 0;
    memset(b, 0, 32);
    for (int j = 0; j < 8; j++) {
        const int64_t r = 8 * G + j;
        int p[4] = {0, 1};
        if (r < w->rows) {
            kept_pos(w, r, 4 * g, p);
            memcpy(b + 2 * j, w->vals + (size_t)r * w->vstride + 2 * (size_t)(2 * g), 2);
            memcpy(b + 16 + 2 * j, w->vals + (size_t)r * w->vstride + 2 * (size_t)(2 * g + 1), 2);
        }
        pos |= (uint32_t)(p[0] | p[1] << 2) << (4 * j);
    }
    memcpy(b + 32, &pos, 4);
}

/* 4:8 F16: row group G, column group g (8 columns) */
static void ilv_fill48(const pare_nm *w, uint8_t *b, int64_t G, int64_t g) {
    uint8_t pos[16] = {0}; /* row j's field at bits 12 j .. 12 j + 11 */
    memset(b, 0, K_NM_ILV48_BLOCK);
    for (int j = 0; j < 8; j++) {
        const int64_t r = 8 * G + j;
        int p[4] = {0, 1, 2, 3};
        if (r < w->rows) {
            kept_pos(w, r, 8 * g, p);
            for (int k = 0; k < 4; k++) memcpy(b + 16 * k + 2 * j, w->vals + (size_t)r * w->vstride + 2 * (size_t)(4 * g + k), 2);
        }
        const uint32_t f = (uint32_t)(p[0] | p[1] << 3 | p[2] << 6 | p[3] << 9) << (12 * j % 8);
        for (int i = 0; i < 3; i++) pos[12 * j / 8 + i] |= (uint8_t)(f >> (8 * i));
    }
    memcpy(b + 64, pos, 12);
}

/* 2:4 8-bit: row group G, block bk (padding rows: scale 0, values 0, positions 0 and 1) */
static void ilv_fill8(const pare_nm *w, uint8_t *b, int64_t G, int64_t bk) {
    const int64_t nb = w->cols / 32;
    memset(b, 0, K_NM_ILV8_BLOCK);
    for (int j = 0; j < 8; j++) {
        const int64_t r = 8 * G + j;
        if (r >= w->rows) {
            for (int t = 0; t < 4; t++) b[K_NM_ILV8_POS + 8 * t + j] = 0x44;
            continue;
        }
        memcpy(b + 2 * j, w->scale + (size_t)r * (size_t)nb + (size_t)bk, 2);
        for (int t = 0; t < 4; t++) {
            uint8_t v = 0;
            for (int h = 0; h < 2; h++) {
                const int64_t g = 8 * bk + 2 * t + h;
                int p[4];
                kept_pos(w, r, 4 * g, p);
                v |= (uint8_t)((p[0] | p[1] << 2) << (4 * h));
                memcpy(b + K_NM_ILV8_VAL + 32 * t + 4 * j + 2 * h, w->vals + (size_t)r * w->vstride + (size_t)(2 * g), 2);
            }
            b[K_NM_ILV8_POS + 8 * t + j] = v;
        }
    }
}

/* k_impl.h: byte 0 of a lane indexes p0 of the first group, byte 1 4 p1 + 3, byte 2 the
 * second group's p0 + 4, byte 3 its 4 p1 + 1 (p0 <= 2, p1 >= 1: the sets meet only where
 * they mean the same x) */
void k_nm_ilv8_xtab(const int8_t *q, int64_t cols, int8_t *xt) {
    for (int64_t p = 0; p < cols / 8; p++, q += 8, xt += 16) {
        memset(xt, 0, 16);
        xt[0] = q[0]; xt[1] = q[1]; xt[2] = q[2];
        xt[7] = q[1]; xt[11] = q[2]; xt[15] = q[3];
        xt[4] = q[4]; xt[5] = q[5]; xt[6] = q[6];
        xt[9] = q[6]; xt[13] = q[7];
    }
}

pare_status k_nm_interleave(pare_nm *w) {
    static uint64_t next_id; /* atomically below: two threads may interleave at once */
    if (w->ilv) return PARE_OK;
    const int q8 = w->vtype == PARE_TYPE_Q8_0, f48 = w->n == 4 && w->m == 8 && w->vtype == PARE_TYPE_F16;
    if (!f48 && (w->n != 2 || w->m != 4 || !(w->vtype == PARE_TYPE_F16 || q8)))
        return pare_fail(PARE_ERR_ARG, "N:M: only 2:4 with F16 or 8-bit values and 4:8 with F16 values interleave (got %d:%d %s)",
                         w->n, w->m, pare_type_name(w->vtype));
    const int64_t per = q8 ? w->cols / 32 : w->cols / w->m, groups = (w->rows + 7) / 8;
    const size_t blk = q8 ? K_NM_ILV8_BLOCK : f48 ? K_NM_ILV48_BLOCK : K_NM_ILV_BLOCK;
    size_t bytes;
    if (!pare_mul_ok((size_t)groups * (size_t)per, blk, &bytes)) return pare_fail(PARE_ERR_NOMEM, "N:M: matrix too large");
    uint8_t *ilv = k_alloc_weights(bytes + 64, NULL); /* SIMD loads read ahead */
    if (!ilv) return pare_fail(PARE_ERR_NOMEM, "N:M: out of memory interleaving a %lld x %lld matrix", (long long)w->rows,
                               (long long)w->cols);
    memset(ilv + bytes, 0, 64);
#pragma omp parallel for schedule(static)
    for (int64_t G = 0; G < groups; G++)
        for (int64_t g = 0; g < per; g++) {
            uint8_t *b = ilv + ((size_t)G * (size_t)per + (size_t)g) * blk;
            if (q8) ilv_fill8(w, b, G, g);
            else if (f48) ilv_fill48(w, b, G, g);
            else ilv_fill16(w, b, G, g);
        }
    free(w->vals); free(w->mask); free(w->scale);
    w->vals = w->mask = NULL;
    w->scale = NULL;
    w->ilv = ilv;
    w->bytes = bytes + (w->perm ? (size_t)w->cols * sizeof(int32_t) : 0);
#pragma omp atomic capture
    w->id = ++next_id;
    return PARE_OK;
}

/* row j of row group G, column group g (M columns): its N values (8-bit: times the scale)
 * and their positions 0 .. M-1 */
static inline void ilv_at(const pare_nm *w, int64_t G, int64_t g, int j, float v[4], int p[4]) {
    uint16_t h;
    if (w->vtype == PARE_TYPE_Q8_0) {
        const int64_t bk = g / 8, t = g % 8 / 2, hi = g % 2;
        const uint8_t *b = w->ilv + ((size_t)G * (size_t)(w->cols / 32) + (size_t)bk) * K_NM_ILV8_BLOCK;
        memcpy(&h, b + 2 * j, 2);
        const float d = pare_f16_to_f32(h);
        const int8_t *q = (const int8_t *)b + K_NM_ILV8_VAL + 32 * t + 4 * j + 2 * hi;
        const unsigned f = b[K_NM_ILV8_POS + 8 * t + j] >> (4 * hi);
        v[0] = d * (float)q[0]; v[1] = d * (float)q[1];
        p[0] = (int)(f & 3); p[1] = (int)(f >> 2 & 3);
        return;
    }
    if (w->m == 8) {
        const uint8_t *b = w->ilv + ((size_t)G * (size_t)(w->cols / 8) + (size_t)g) * K_NM_ILV48_BLOCK;
        uint32_t f = 0;
        for (int i = 0; i < 3; i++) f |= (uint32_t)b[64 + 12 * j / 8 + i] << (8 * i);
        f >>= 12 * j % 8;
        for (int k = 0; k < 4; k++) {
            memcpy(&h, b + 16 * k + 2 * j, 2);
            v[k] = pare_f16_to_f32(h);
            p[k] = (int)(f >> (3 * k) & 7);
        }
        return;
    }
    const uint8_t *b = w->ilv + ((size_t)G * (size_t)(w->cols / 4) + (size_t)g) * K_NM_ILV_BLOCK;
    uint32_t pos;
    memcpy(&pos, b + 32, 4);
    for (int k = 0; k < 2; k++) {
        memcpy(&h, b + 16 * k + 2 * j, 2);
        v[k] = pare_f16_to_f32(h);
        p[k] = (int)(pos >> (4 * j + 2 * k) & 3);
    }
}

/* row r (padding rows included) as dense floats: column c of the layout at dst[perm[c]]
 * (perm NULL: at dst[c]) */
static void ilv_row_ref(const pare_nm *w, int64_t r, const int32_t *perm, float *dst) {
    memset(dst, 0, (size_t)w->cols * sizeof(float));
    for (int64_t g = 0; g < w->cols / w->m; g++) {
        float v[4];
        int p[4];
        ilv_at(w, r / 8, g, (int)(r % 8), v, p);
        for (int k = 0; k < w->n; k++) {
            const int64_t c = w->m * g + p[k];
            dst[perm ? perm[c] : c] = v[k];
        }
    }
}

/* the reference: row by row, values in layout order, sums in float */
static void ilv_rows_ref(const pare_nm *w, int64_t g0, int64_t g1, const float *x, float *y) {
    for (int64_t G = g0; G < g1; G++)
        for (int j = 0; j < 8 && 8 * G + j < w->rows; j++) {
            float s = 0;
            for (int64_t g = 0; g < w->cols / w->m; g++) {
                float v[4];
                int p[4];
                ilv_at(w, G, g, j, v, p);
                for (int k = 0; k < w->n; k++) s += v[k] * x[w->m * g + p[k]];
            }
            y[8 * G + j] = s;
        }
}

/* every interleaved form */
static void ilv_deq_ref(const pare_nm *w, int64_t G, float *dst) {
    for (int j = 0; j < 8; j++) ilv_row_ref(w, 8 * G + j, NULL, dst + (size_t)j * (size_t)w->cols);
}

/* 8-bit: the integer dot per block, then fmaf in block order, as nm_avx2.c's rows */
static void ilv8_rows_ref(const pare_nm *w, int64_t g0, int64_t g1, const k_xvec *xv, const int8_t *xt, float *y) {
    (void)xt;
    const int64_t nb = w->cols / 32;
    for (int64_t G = g0; G < g1; G++) {
        float acc[8] = {0};
        for (int64_t bk = 0; bk < nb; bk++) {
            const uint8_t *b = w->ilv + ((size_t)G * (size_t)nb + (size_t)bk) * K_NM_ILV8_BLOCK;
            const int8_t *x = xv->q + 32 * bk;
            for (int j = 0; j < 8; j++) {
                int32_t s = 0;
                for (int t = 0; t < 4; t++)
                    for (int hi = 0; hi < 2; hi++) {
                        const unsigned v = b[K_NM_ILV8_POS + 8 * t + j] >> (4 * hi);
                        const int8_t *q = (const int8_t *)b + K_NM_ILV8_VAL + 32 * t + 4 * j + 2 * hi;
                        s += q[0] * x[8 * t + 4 * hi + (v & 3)] + q[1] * x[8 * t + 4 * hi + (v >> 2 & 3)];
                    }
                uint16_t h;
                memcpy(&h, b + 2 * j, 2);
                acc[j] = fmaf(pare_f16_to_f32(h) * xv->d[bk], (float)s, acc[j]);
            }
        }
        for (int j = 0; j < 8 && 8 * G + j < w->rows; j++) y[8 * G + j] = acc[j];
    }
}

pare_status k_nm_pack(int type, const void *W, int64_t rows, int64_t cols, const int32_t *perm, int n, int m,
                      int vtype, pare_nm **out) {
    *out = NULL;
    const size_t rb = pare_row_bytes(type, cols);
    if (k_slot(type) < 0 || !rb) return pare_fail(PARE_ERR_UNSUPPORTED, "N:M: cannot read %s rows of %lld columns", pare_type_name(type), (long long)cols);
    if (nm_slot(vtype) < 0) return pare_fail(PARE_ERR_UNSUPPORTED, "N:M: values of type %s are not supported (f32, f16, bf16, q8_0)", pare_type_name(vtype));
    if (!(n >= 1 && n < m && m <= 16)) return pare_fail(PARE_ERR_ARG, "N:M: %d:%d is not a pattern with 1 <= N < M <= 16", n, m);
    if (cols % m) return pare_fail(PARE_ERR_ARG, "N:M: %lld columns are not whole groups of %d", (long long)cols, m);
    if (vtype == PARE_TYPE_Q8_0 && cols % 32) return pare_fail(PARE_ERR_ARG, "N:M: 8-bit values need columns in whole blocks of 32 (got %lld)", (long long)cols);
    pare_nm *w = pare_calloc(1, sizeof *w);
    if (!w) return PARE_ERR_NOMEM;
    w->n = n; w->m = m; w->vtype = vtype; w->rows = rows; w->cols = cols;
    w->nkeep = cols / m * n;
    w->vstride = (size_t)w->nkeep * vbytes(vtype);
    w->mstride = (size_t)(cols + 15) / 16 * 2;
    w->vals = k_alloc_weights((size_t)rows * w->vstride + 64, NULL); /* SIMD loads read ahead */
    w->mask = k_alloc_weights((size_t)rows * w->mstride, NULL);
    if (vtype == PARE_TYPE_Q8_0) w->scale = malloc((size_t)rows * (size_t)(cols / 32) * 2 + 2);
    if (perm && (w->perm = malloc((size_t)cols * sizeof(int32_t)))) memcpy(w->perm, perm, (size_t)cols * sizeof(int32_t));
    if (!w->vals || !w->mask || (vtype == PARE_TYPE_Q8_0 && !w->scale) || (perm && !w->perm)) {
        k_nm_free(w);
        return pare_fail(PARE_ERR_NOMEM, "N:M: out of memory for a %lld x %lld matrix", (long long)rows, (long long)cols);
    }
    memset(w->vals + (size_t)rows * w->vstride, 0, 64);
    w->bytes = (size_t)rows * (w->vstride + w->mstride) + (w->scale ? (size_t)rows * (size_t)(cols / 32) * 2 : 0) +
               (w->perm ? (size_t)cols * sizeof(int32_t) : 0);
    int64_t bad_r = -1, bad_g = 0;
    int bad_nz = 0, nomem = 0;
    /* float values of the source's own type are copied as they are stored */
    const size_t raw = vtype == type && vtype != PARE_TYPE_Q8_0 ? vbytes(vtype) : 0;
#pragma omp parallel if (rows * (double)rb > (1 << 22))
    {
        float *row = malloc((size_t)cols * 2 * sizeof(float));
        uint64_t *bits = malloc((size_t)(cols + 63) / 64 * sizeof(uint64_t));
        block_q8_0 *qb = vtype == PARE_TYPE_Q8_0 ? malloc((size_t)(cols / 32) * sizeof(block_q8_0)) : NULL;
        const int ok = row && bits && (vtype != PARE_TYPE_Q8_0 || qb);
        if (!ok) {
#pragma omp atomic write
            nomem = 1;
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!ok) continue;
            layout_row(type, W, rb, r, cols, perm, row + cols, row);
            nz_bits(row, cols, bits);
            uint8_t *mk = w->mask + (size_t)r * w->mstride, *v = w->vals + (size_t)r * w->vstride;
            memset(mk, 0, w->mstride);
            if (qb) { /* Q8_0 in natural order: its own blocks, else quantized as llama.cpp does */
                if (type == PARE_TYPE_Q8_0 && !perm) memcpy(qb, (const uint8_t *)W + (size_t)r * rb, rb);
                else k_ref_quant_row(PARE_TYPE_Q8_0, row, qb, cols);
                for (int64_t b = 0; b < cols / 32; b++) w->scale[(size_t)r * (size_t)(cols / 32) + (size_t)b] = qb[b].d;
            }
            int64_t k = 0;
            for (int64_t g = 0; g < cols; g += m) {
                uint32_t keep = group_bits(bits, g, m); /* the nonzero columns, then the kept ones */
                const int nz = pop16(keep);
                if (nz > n) {
#pragma omp critical
                    if (bad_r < 0 || r < bad_r) { bad_r = r; bad_g = g / m; bad_nz = nz; }
                    break;
                }
                for (int f = nz; f < n; f++) keep |= ~keep & (keep + 1); /* zeros kept to make n: the first */
                for (; keep; keep &= keep - 1) { /* bit by bit, no branch on the values */
                    const int64_t c = g + __builtin_ctz(keep);
                    mk[c >> 3] |= (uint8_t)(1u << (c & 7));
                    if (raw) { /* the stored value itself, no round trip through float */
                        const int64_t sc = perm ? perm[c] : c;
                        memcpy(v + raw * (size_t)k, (const uint8_t *)W + (size_t)r * rb + raw * (size_t)sc, raw);
                        k++;
                        continue;
                    }
                    switch (vtype) {
                    case PARE_TYPE_F32: memcpy(v + 4 * k, &row[c], 4); break;
                    case PARE_TYPE_F16: { uint16_t h = pare_f32_to_f16(row[c]); memcpy(v + 2 * k, &h, 2); break; }
                    case PARE_TYPE_BF16: { uint16_t h = pare_f32_to_bf16(row[c]); memcpy(v + 2 * k, &h, 2); break; }
                    default: v[k] = (uint8_t)qb[c / 32].qs[c % 32]; break;
                    }
                    k++;
                }
            }
        }
        free(row); free(bits); free(qb);
    }
    if (nomem) { k_nm_free(w); return pare_fail(PARE_ERR_NOMEM, "N:M: out of memory"); }
    if (bad_r >= 0) {
        k_nm_free(w);
        return pare_fail(PARE_ERR_ARG, "N:M: row %lld, group %lld holds %d nonzeros, more than %d of %d", (long long)bad_r,
                         (long long)bad_g, bad_nz, n, m);
    }
    *out = w;
    return PARE_OK;
}

/* ---- the reference ---------------------------------------------------------------------- */
/* Dots in double over the kept values, in column order. */
static void ref_rows(const pare_nm *w, int64_t r0, int64_t r1, const float *x, float *y) {
    for (int64_t r = r0; r < r1; r++) {
        double s = 0;
        int64_t k = 0;
        for (int64_t c = 0; c < w->cols; c++)
            if (kept(w, r, c)) s += (double)value(w, r, k++, c) * x[c];
        y[r] = (float)s;
    }
}

static void ref_deq(const pare_nm *w, int64_t r, float *dst) {
    int64_t k = 0;
    for (int64_t c = 0; c < w->cols; c++) dst[c] = kept(w, r, c) ? value(w, r, k++, c) : 0.0f;
}

void k_nm_ops_ref(k_nm_ops *t) {
    for (int i = 0; i < K_NM_NTYPES; i++) { t->rows[i] = ref_rows; t->deq[i] = ref_deq; }
    t->rows_q8xq = NULL;
    t->ilv_rows = ilv_rows_ref;
    t->ilv_deq = ilv_deq_ref;
    t->ilv8_rows = ilv8_rows_ref;
}

/* ---- drivers ---------------------------------------------------------------------------- */
static k_nm_ops g_tab[3];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void bind_all(void) {
    const pare_isa cpu = k_cpu_isa();
    k_nm_ops_ref(&g_tab[PARE_ISA_REF]);
    g_tab[PARE_ISA_AVX2] = g_tab[PARE_ISA_REF];
    if (cpu >= PARE_ISA_AVX2) k_nm_ops_avx2(&g_tab[PARE_ISA_AVX2]);
    g_tab[PARE_ISA_AVX512] = g_tab[PARE_ISA_AVX2];
    if (cpu >= PARE_ISA_AVX512) k_nm_ops_avx512(&g_tab[PARE_ISA_AVX512]);
}

/* row r of an interleaved matrix in layout order: its row group expanded once into a
 * per-thread cache (prefill asks for the rows in runs), without one, the reference */
typedef struct { uint64_t id; int64_t G; const float *cache; } ilv_key;
static _Thread_local ilv_key g_ilv_key;

static void ilv_row(const pare_nm *w, int64_t r, float *dst) {
    const int64_t G = r / 8, cols = w->cols;
    float *cache = k_scratch(K_SCRATCH_NM8, 8 * (size_t)cols * sizeof(float));
    if (!cache) { ilv_row_ref(w, r, NULL, dst); return; }
    if (g_ilv_key.id != w->id || g_ilv_key.G != G || g_ilv_key.cache != cache) {
        g_tab[k_isa()].ilv_deq(w, G, cache);
        g_ilv_key = (ilv_key){w->id, G, cache};
    }
    memcpy(dst, cache + (size_t)(r % 8) * (size_t)cols, (size_t)cols * sizeof(float));
}

void k_nm_dequant_row(const pare_nm *w, int64_t r, float *dst) {
    pthread_once(&g_once, bind_all);
    const k_nm_deq_fn fn = w->ilv ? ilv_row : g_tab[k_isa()].deq[nm_slot(w->vtype)];
    if (!w->perm) { fn(w, r, dst); return; }
    float *tmp = k_scratch(K_SCRATCH_NM, (size_t)w->cols * sizeof(float));
    if (tmp) {
        fn(w, r, tmp);
        for (int64_t c = 0; c < w->cols; c++) dst[w->perm[c]] = tmp[c];
    } else if (w->ilv) { /* no scratch: the reference, straight into place */
        ilv_row_ref(w, r, w->perm, dst);
    } else {
        int64_t k = 0;
        for (int64_t c = 0; c < w->cols; c++) dst[w->perm[c]] = kept(w, r, c) ? value(w, r, k++, c) : 0.0f;
    }
}

void k_nm_matvec(const pare_nm *w, const float *x, float *y) {
    pthread_once(&g_once, bind_all);
    const int s = nm_slot(w->vtype);
    const float *xp = x;
    float *own = NULL;
    if (w->perm) {
        float *buf = k_scratch(K_SCRATCH_NM, (size_t)w->cols * sizeof(float));
        if (!buf) buf = own = malloc((size_t)w->cols * sizeof(float));
        if (!buf) { for (int64_t r = 0; r < w->rows; r++) y[r] = NAN; return; }
        for (int64_t c = 0; c < w->cols; c++) buf[c] = x[w->perm[c]];
        xp = buf;
    }
    const k_nm_ops *t = &g_tab[k_isa()];
    if (w->ilv) { /* chunks of K_ROW_CHUNK rows: two row groups */
        const int64_t groups = (w->rows + 7) / 8, nchunk = (groups + 1) / 2;
        const int par = (double)w->bytes >= K_PAR_BYTES;
        if (w->vtype == PARE_TYPE_Q8_0) { /* x rounded to int8, and its table (no memory: NaN) */
            void *xbuf = k_scratch(K_SCRATCH_X, k_xvec_bytes(w->cols));
            int8_t *xt = k_scratch(K_SCRATCH_XT, 2 * (size_t)w->cols);
            if (!xbuf || !xt) {
                for (int64_t r = 0; r < w->rows; r++) y[r] = NAN;
                free(own);
                return;
            }
            k_xvec xv;
            k_prep_x(xp, w->cols, xbuf, &xv);
            k_nm_ilv8_xtab(xv.q, w->cols, xt);
#pragma omp parallel for schedule(static) if (par)
            for (int64_t c = 0; c < nchunk; c++) t->ilv8_rows(w, 2 * c, 2 * c + 2 < groups ? 2 * c + 2 : groups, &xv, xt, y);
        } else {
#pragma omp parallel for schedule(static) if (par)
            for (int64_t c = 0; c < nchunk; c++) t->ilv_rows(w, 2 * c, 2 * c + 2 < groups ? 2 * c + 2 : groups, xp, y);
        }
        free(own);
        return;
    }
    const k_nm_rows_fn fn = t->rows[s];
    /* 8-bit values where the ISA has int8 rows: x rounded to int8 per block of 32 (no memory
     * for it: the exact rows) */
    k_xvec xv;
    const k_nm_rows_xq_fn fq = s == K_NM_Q8 && t->rows_q8xq && w->cols % K_QX == 0 ? t->rows_q8xq : NULL;
    void *xbuf = fq ? k_scratch(K_SCRATCH_X, k_xvec_bytes(w->cols)) : NULL;
    if (xbuf) k_quantize_x(xp, w->cols, xbuf, &xv);
    const int64_t nchunk = (w->rows + K_ROW_CHUNK - 1) / K_ROW_CHUNK;
    const int par = (double)w->rows * (double)(w->vstride + w->mstride) >= K_PAR_BYTES;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t c = 0; c < nchunk; c++) {
        const int64_t r0 = c * K_ROW_CHUNK, r1 = r0 + K_ROW_CHUNK < w->rows ? r0 + K_ROW_CHUNK : w->rows;
        if (xbuf) fq(w, r0, r1, &xv, y);
        else fn(w, r0, r1, xp, y);
    }
    free(own);
}

static void nm_row(const void *ctx, int64_t r, float *dst) { k_nm_dequant_row(ctx, r, dst); }

void k_nm_matmul(const pare_nm *w, const float *X, int64_t n, float *Y) {
    k_matmul_rows(nm_row, w, w->rows, w->cols, X, n, Y);
}
