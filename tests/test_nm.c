/* test_nm.c - N:M-compressed matrices: the packed rows decode to exactly the dense rows
 * (every value type, with and without a channel order, by every ISA's decoder); every ISA's rows equal the double
 * reference within the float summation bound (2e-6 * sum |w x|, as test_kernels) on shapes
 * with ragged tails and patterns 1:4 .. 15:16, M = 3 and 5 included (AVX2's 2:4 rows of
 * 8-bit values, on x rounded to int8, equal their int8 sums and stay within the rounding
 * bound of the exact result); matmul equals matvec;
 * the detector finds the pattern a matrix has and none in a dense or unstructured one;
 * over-full groups are refused with the row named; and a whole model's logits with its
 * block matrices compressed equal the dense model's to 1e-5 (on AVX2 also with 2:4 8-bit
 * values interleaved, against the dense Q8_0 rows, which round x to int8 alike). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "engine_util.h"

#include "kernels/k_impl.h"
#include "kernels/nm.h"
#include "model/forward.h"
#include "model/sparse.h"
#include "model/synth.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* rows x cols floats, each group of m keeping n (at random positions), some groups with
 * fewer (zeros that are not pruned), values with a spread of magnitudes */
static float *nm_dense(int64_t rows, int64_t cols, int n, int m) {
    float *w = calloc((size_t)(rows * cols), sizeof(float));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < cols; g += m) {
            int keep = (tu_rnd_u32() % 7 == 0) ? (int)(tu_rnd_u32() % (unsigned)(n + 1)) : n;
            for (int k = 0; k < keep; k++) {
                int j;
                do j = (int)(tu_rnd_u32() % (unsigned)m); while (w[r * cols + g + j] != 0.0f);
                float v = tu_rnd_normal();
                w[r * cols + g + j] = (v == 0.0f ? 0.5f : v) * ldexpf(1.0f, (int)(tu_rnd_u32() % 9) - 4);
            }
        }
    return w;
}

/* the dense float matrix in type (rows quantized by the reference) */
static void *to_type(int type, const float *w, int64_t rows, int64_t cols) {
    const size_t rb = pare_row_bytes(type, cols);
    uint8_t *d = malloc(rb * (size_t)rows);
    for (int64_t r = 0; r < rows; r++) k_quant_row(type, w + r * cols, d + (size_t)r * rb, cols);
    return d;
}

static int32_t *random_perm(int64_t n) {
    int32_t *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) { int64_t j = tu_rnd_u32() % (uint64_t)(i + 1); int32_t t = p[i]; p[i] = p[j]; p[j] = t; }
    return p;
}

/* W with its columns put in natural order from layout order perm: natural[perm[c]] = lay[c] */
static float *unpermute(const float *lay, int64_t rows, int64_t cols, const int32_t *perm) {
    float *w = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) w[r * cols + perm[c]] = lay[r * cols + c];
    return w;
}

typedef struct { int n, m; int64_t rows, cols; } pat;
static const pat PATS[] = {{2, 4, 37, 4}, {2, 4, 19, 100}, {2, 4, 16, 256}, {2, 4, 5, 96}, {4, 8, 21, 264}, {1, 4, 9, 132},
                           {3, 8, 5, 40}, {5, 16, 7, 48}, {15, 16, 3, 304}, {2, 3, 11, 51}, {3, 5, 6, 95},
                           {7, 16, 33, 1024}, {4, 8, 9, 160}, {2, 4, 27, 320}};
static const int VTYPES[] = {PARE_TYPE_F32, PARE_TYPE_F16, PARE_TYPE_BF16, PARE_TYPE_Q8_0};

/* ---- pack/unpack is exact --------------------------------------------------------------- */
static void test_pack_roundtrip(void **state) {
    (void)state;
    for (size_t p = 0; p < sizeof PATS / sizeof PATS[0]; p++)
        for (int usep = 0; usep < 2; usep++)
            for (size_t v = 0; v < 4; v++) {
                const pat P = PATS[p];
                const int vt = VTYPES[v];
                if (vt == PARE_TYPE_Q8_0 && P.cols % 32) continue;
                float *lay = nm_dense(P.rows, P.cols, P.n, P.m);
                int32_t *perm = usep ? random_perm(P.cols) : NULL;
                float *nat = perm ? unpermute(lay, P.rows, P.cols, perm) : lay;
                /* the source in vt, so the values are exactly representable */
                void *src = to_type(vt, nat, P.rows, P.cols);
                pare_nm *w;
                assert_int_equal(k_nm_pack(vt, src, P.rows, P.cols, perm, P.n, P.m, vt, &w), PARE_OK);
                assert_int_equal(w->nkeep, P.cols / P.m * P.n);
                float *a = malloc((size_t)P.cols * sizeof(float)), *b = malloc((size_t)P.cols * sizeof(float));
                const size_t rb = pare_row_bytes(vt, P.cols);
                for (int64_t ri = 0; ri < 3 * P.rows; ri++) { /* every ISA's decoder */
                    const int64_t r = ri % P.rows;
                    const pare_isa isa = ri < P.rows ? PARE_ISA_REF : ri < 2 * P.rows ? PARE_ISA_AVX2 : PARE_ISA_AVX512;
                    if (k_set_isa(isa) != isa) continue;
                    k_nm_dequant_row(w, r, a);
                    k_dequant_row(vt, (uint8_t *)src + (size_t)r * rb, b, P.cols);
                    /* 8-bit values in a new column order are quantized again, in the new blocks */
                    if (vt == PARE_TYPE_Q8_0 && perm) {
                        float amax = 0;
                        for (int64_t c = 0; c < P.cols; c++) amax = fmaxf(amax, fabsf(b[c]));
                        for (int64_t c = 0; c < P.cols; c++)
                            if (fabsf(a[c] - b[c]) > amax / 127.0f)
                                fail_msg("2:4 q8_0 perm: row %lld col %lld %g vs %g", (long long)r, (long long)c, a[c], b[c]);
                    } else if (memcmp(a, b, (size_t)P.cols * sizeof(float)))
                        fail_msg("%d:%d %s perm %d: row %lld does not decode to the dense row", P.n, P.m,
                                 pare_type_name(vt), usep, (long long)r);
                    /* exactly n bits per group */
                    for (int64_t g = 0; g < P.cols; g += P.m) {
                        int bits = 0;
                        for (int j = 0; j < P.m; j++) bits += (w->mask[(size_t)r * w->mstride + (size_t)((g + j) >> 3)] >> ((g + j) & 7)) & 1;
                        assert_int_equal(bits, P.n);
                    }
                }
                k_set_isa(PARE_ISA_AVX512);
                free(a); free(b); free(src); k_nm_free(w);
                if (perm) { free(nat); free(perm); }
                free(lay);
            }
}

/* ---- every ISA equals the reference ----------------------------------------------------- */
/* Row r of 8-bit values against x rounded to int8 as the int8 rows see it (xv: k_xvec of x in
 * layout order): the int8 sums per block, scaled, in double; *mag the magnitudes of the
 * terms; *qb the bound on its distance from the exact-x result (half a step of x per
 * element). */
static double emulate_q8xq(const pare_nm *w, int64_t r, const k_xvec *xv, double *mag, double *qb) {
    const uint8_t *mk = w->mask + (size_t)r * w->mstride;
    const int8_t *v = (const int8_t *)(w->vals + (size_t)r * w->vstride);
    double s = 0;
    *mag = *qb = 0;
    int64_t k = 0;
    for (int64_t b = 0; b < w->cols / 32; b++) {
        const double d = (double)pare_f16_to_f32(w->scale[(size_t)r * (size_t)(w->cols / 32) + (size_t)b]) * xv->d[b];
        int64_t acc = 0, aabs = 0, wabs = 0;
        for (int64_t c = 32 * b; c < 32 * b + 32; c++)
            if ((mk[c >> 3] >> (c & 7)) & 1) {
                acc += (int64_t)v[k] * xv->q[c];
                aabs += llabs((int64_t)v[k] * xv->q[c]);
                wabs += llabs((int64_t)v[k]);
                k++;
            }
        s += d * (double)acc;
        *mag += fabs(d) * (double)aabs;
        *qb += fabs((double)pare_f16_to_f32(w->scale[(size_t)r * (size_t)(w->cols / 32) + (size_t)b])) * xv->d[b] * 0.5 *
               (double)wabs;
    }
    return s;
}

static void test_rows_vs_ref(void **state) {
    (void)state;
    const pare_isa isas[] = {PARE_ISA_AVX2, PARE_ISA_AVX512};
    int checked = 0;
    for (size_t p = 0; p < sizeof PATS / sizeof PATS[0]; p++)
        for (size_t v = 0; v < 4; v++)
            for (int usep = 0; usep < 2; usep++) {
                const pat P = PATS[p];
                const int vt = VTYPES[v];
                if (vt == PARE_TYPE_Q8_0 && P.cols % 32) continue;
                float *lay = nm_dense(P.rows, P.cols, P.n, P.m);
                int32_t *perm = usep ? random_perm(P.cols) : NULL;
                float *nat = perm ? unpermute(lay, P.rows, P.cols, perm) : lay;
                pare_nm *w;
                assert_int_equal(k_nm_pack(PARE_TYPE_F32, nat, P.rows, P.cols, perm, P.n, P.m, vt, &w), PARE_OK);
                float *x = malloc((size_t)P.cols * sizeof(float)), *yr = malloc((size_t)P.rows * sizeof(float));
                float *y = malloc((size_t)P.rows * sizeof(float)), *row = malloc((size_t)P.cols * sizeof(float));
                for (int64_t c = 0; c < P.cols; c++) x[c] = tu_rnd_normal();
                /* x in layout order rounded to int8, for the int8 rows of 8-bit values */
                float *xl = malloc((size_t)P.cols * sizeof(float));
                void *xbuf = vt == PARE_TYPE_Q8_0 ? aligned_alloc(64, k_xvec_bytes(P.cols) + 64) : NULL;
                k_xvec xv = {0};
                for (int64_t c = 0; c < P.cols; c++) xl[c] = x[perm ? perm[c] : c];
                if (xbuf) k_quantize_x(xl, P.cols, xbuf, &xv);
                k_set_isa(PARE_ISA_REF);
                k_nm_matvec(w, x, yr);
                /* the reference against a dense double dot of the decoded rows */
                for (int64_t r = 0; r < P.rows; r++) {
                    k_nm_dequant_row(w, r, row);
                    double s = 0, mag = 0;
                    for (int64_t c = 0; c < P.cols; c++) { s += (double)row[c] * x[c]; mag += fabs((double)row[c] * x[c]); }
                    if (!(fabs(yr[r] - s) <= 1e-7 * mag + 1e-30))
                        fail_msg("ref %d:%d %s: row %lld got %.9g want %.9g", P.n, P.m, pare_type_name(vt), (long long)r, yr[r], s);
                    for (size_t i = 0; i < 2; i++) {
                        if (k_set_isa(isas[i]) != isas[i]) continue;
                        k_nm_matvec(w, x, y);
                        /* AVX2 runs 2:4 with 8-bit values on int8 x (rows_q8xq), as dense Q8_0 */
                        if (vt == PARE_TYPE_Q8_0 && isas[i] == PARE_ISA_AVX2 && P.n == 2 && P.m == 4) {
                            double imag, qb;
                            const double emu = emulate_q8xq(w, r, &xv, &imag, &qb);
                            if (!(fabs(y[r] - emu) <= 1e-6 * imag + 1e-30))
                                fail_msg("avx2 int8 2:4 perm %d cols %lld: row %lld got %.9g, int8 sums %.9g", usep,
                                         (long long)P.cols, (long long)r, y[r], emu);
                            if (!(fabs(y[r] - yr[r]) <= qb * 1.001 + 2e-6 * mag + 1e-30))
                                fail_msg("avx2 int8 2:4 perm %d cols %lld: row %lld got %.9g, exact %.9g (bound %.3g)", usep,
                                         (long long)P.cols, (long long)r, y[r], yr[r], qb);
                            checked++;
                            k_set_isa(PARE_ISA_REF);
                            continue;
                        }
                        if (!(fabs(y[r] - yr[r]) <= 2e-6 * mag + 1e-30))
                            fail_msg("%s %d:%d %s perm %d cols %lld: row %lld got %.9g, ref %.9g", k_isa_name(isas[i]), P.n,
                                     P.m, pare_type_name(vt), usep, (long long)P.cols, (long long)r, y[r], yr[r]);
                        checked++;
                        k_set_isa(PARE_ISA_REF);
                    }
                }
                k_set_isa(PARE_ISA_AVX512);
                free(x); free(y); free(yr); free(row); free(xl); free(xbuf); k_nm_free(w);
                if (perm) { free(nat); free(perm); }
                free(lay);
            }
    print_message("   %d rows checked against the reference\n", checked);
}

/* ---- 2:4 and 4:8 with eight rows interleaved ------------------------------------------- */
/* Interleaving keeps every value: each row decodes to exactly the row layout's row (both
 * ISAs' expansions, with and without a channel order); every ISA's rows equal the row
 * layout's reference within the float summation bound, on 1 and 2 threads (8-bit values:
 * every ISA gives the same bits, within the summation bound of a double evaluation on x
 * rounded to int8 as k_quantize_x rounds it); matmul equals the row layout's matmul; and only
 * 2:4 with F16 or 8-bit values and 4:8 with F16 values are accepted. */
static void test_interleave(void **state) {
    (void)state;
    const pare_isa isas[] = {PARE_ISA_REF, PARE_ISA_AVX2};
    const int vts[] = {PARE_TYPE_F16, PARE_TYPE_Q8_0};
    int checked = 0;
    for (size_t pi = 0; pi < sizeof PATS / sizeof *PATS; pi++)
        for (int vi = 0; vi < 2; vi++) {
            const pat P = PATS[pi];
            const int vt = vts[vi], q8 = vt == PARE_TYPE_Q8_0;
            const int f48 = P.n == 4 && P.m == 8 && !q8;
            if (!f48 && (P.n != 2 || P.m != 4 || (q8 && P.cols % 32))) continue;
            for (int usep = 0; usep < 2; usep++) {
                float *lay = nm_dense(P.rows, P.cols, P.n, P.m);
                int32_t *perm = usep ? random_perm(P.cols) : NULL;
                float *nat = perm ? unpermute(lay, P.rows, P.cols, perm) : lay;
                pare_nm *a, *b;
                assert_int_equal(k_nm_pack(PARE_TYPE_F32, nat, P.rows, P.cols, perm, P.n, P.m, vt, &a), PARE_OK);
                assert_int_equal(k_nm_pack(PARE_TYPE_F32, nat, P.rows, P.cols, perm, P.n, P.m, vt, &b), PARE_OK);
                assert_int_equal(k_nm_interleave(b), PARE_OK);
                assert_non_null(b->ilv);
                assert_null(b->vals);
                const int64_t R = P.rows, C = P.cols;
                float *x = malloc((size_t)C * sizeof(float)), *ya = malloc((size_t)R * sizeof(float)), *yb = malloc((size_t)R * sizeof(float));
                float *ra = malloc((size_t)C * sizeof(float)), *rb = malloc((size_t)C * sizeof(float));
                float *y0 = malloc((size_t)R * sizeof(float)), *xd = malloc((size_t)C * sizeof(float));
                for (int64_t c = 0; c < C; c++) x[c] = tu_rnd_normal();
                k_set_isa(PARE_ISA_REF);
                k_nm_matvec(a, x, ya);
                if (q8) { /* x as the int8 rows see it: in layout order, rounded per block, back in natural order */
                    float *xl = malloc((size_t)C * sizeof(float));
                    void *xbuf = aligned_alloc(64, (k_xvec_bytes(C) + 63) / 64 * 64);
                    k_xvec xv;
                    for (int64_t c = 0; c < C; c++) xl[c] = x[perm ? perm[c] : c];
                    k_quantize_x(xl, C, xbuf, &xv);
                    for (int64_t c = 0; c < C; c++) xd[perm ? perm[c] : c] = xv.d[c / 32] * (float)xv.q[c];
                    free(xl); free(xbuf);
                }
                for (size_t i = 0; i < 2; i++) {
                    if (k_set_isa(isas[i]) != isas[i]) continue;
                    for (int64_t r = R - 1; r >= 0; r--) { /* backwards: each row group is expanded anew */
                        k_nm_dequant_row(a, r, ra);
                        k_nm_dequant_row(b, r, rb);
                        assert_memory_equal(ra, rb, (size_t)C * sizeof(float));
                    }
                    for (int th = 1; th <= 2; th++) {
                        omp_set_num_threads(th);
                        k_nm_matvec(b, x, yb);
                        if (q8 && i == 0 && th == 1) memcpy(y0, yb, (size_t)R * sizeof(float));
                        if (q8) assert_memory_equal(yb, y0, (size_t)R * sizeof(float)); /* every ISA, any threads */
                        for (int64_t r = 0; r < R; r++) {
                            k_nm_dequant_row(a, r, ra);
                            double mag = 0, want = ya[r];
                            if (q8) want = 0;
                            for (int64_t c = 0; c < C; c++) {
                                const float xc = q8 ? xd[c] : x[c];
                                mag += fabs((double)ra[c] * xc);
                                if (q8) want += (double)ra[c] * xc;
                            }
                            if (!(fabs(yb[r] - want) <= 2e-6 * mag + 1e-30))
                                fail_msg("interleaved %d:%d %s %s %lld x %lld perm %d: row %lld got %.9g, ref %.9g", P.n, P.m,
                                         pare_type_name(vt), k_isa_name(isas[i]), (long long)R, (long long)C, usep, (long long)r,
                                         yb[r], want);
                            checked++;
                        }
                    }
                    omp_set_num_threads(2);
                }
                /* without scratch memory: rows decode by the reference, the F16 matvec needs none (or
                 * mallocs x's channel order), the 8-bit one gives NaN */
                memcpy(y0, yb, (size_t)R * sizeof(float));
                k_scratch_deny(1);
                for (int64_t r = 0; r < R; r++) {
                    k_nm_dequant_row(a, r, ra);
                    k_nm_dequant_row(b, r, rb);
                    assert_memory_equal(ra, rb, (size_t)C * sizeof(float));
                }
                k_nm_matvec(b, x, yb);
                for (int64_t r = 0; r < R; r++) {
                    if (q8) assert_true(isnan(yb[r]));
                    else assert_true(yb[r] == y0[r]); /* no scratch needed */
                }
                k_scratch_deny(0);
                /* prefill */
                const int64_t n = 7;
                float *X = malloc((size_t)(n * C) * sizeof(float)), *Ya = malloc((size_t)(n * R) * sizeof(float));
                float *Yb = malloc((size_t)(n * R) * sizeof(float));
                for (int64_t i = 0; i < n * C; i++) X[i] = tu_rnd_normal();
                k_nm_matmul(a, X, n, Ya);
                k_nm_matmul(b, X, n, Yb);
                assert_memory_equal(Ya, Yb, (size_t)(n * R) * sizeof(float)); /* the same dense rows, the same sgemm */
                k_set_isa(PARE_ISA_AVX512);
                free(X); free(Ya); free(Yb); free(x); free(ya); free(yb); free(ra); free(rb); free(y0); free(xd);
                k_nm_free(a); k_nm_free(b);
                if (perm) { free(nat); free(perm); }
                free(lay);
            }
        }
    /* only 2:4 with F16 or 8-bit values, 4:8 with F16 values */
    float *d = nm_dense(8, 64, 4, 8);
    pare_nm *w;
    assert_int_equal(k_nm_pack(PARE_TYPE_F32, d, 8, 64, NULL, 4, 8, PARE_TYPE_BF16, &w), PARE_OK);
    assert_int_equal(k_nm_interleave(w), PARE_ERR_ARG);
    k_nm_free(w);
    assert_int_equal(k_nm_pack(PARE_TYPE_F32, d, 8, 64, NULL, 4, 8, PARE_TYPE_Q8_0, &w), PARE_OK);
    assert_int_equal(k_nm_interleave(w), PARE_ERR_ARG);
    k_nm_free(w);
    assert_int_equal(k_nm_pack(PARE_TYPE_F32, d, 8, 64, NULL, 4, 8, PARE_TYPE_F32, &w), PARE_OK);
    assert_int_equal(k_nm_interleave(w), PARE_ERR_ARG);
    k_nm_free(w);
    free(d);
    print_message("   %d interleaved rows checked against the row layout\n", checked);
}

/* ---- matmul = matvec per token, and = the dense matmul ----------------------------------- */
static void test_matmul(void **state) {
    (void)state;
    const int64_t rows = 70, cols = 96, n = 5;
    int32_t *perm = random_perm(cols);
    float *lay = nm_dense(rows, cols, 2, 4), *nat = unpermute(lay, rows, cols, perm);
    pare_nm *w;
    assert_int_equal(k_nm_pack(PARE_TYPE_F32, nat, rows, cols, perm, 2, 4, PARE_TYPE_F32, &w), PARE_OK);
    float *X = malloc((size_t)(n * cols) * sizeof(float)), *Y = malloc((size_t)(n * rows) * sizeof(float));
    float *Yd = malloc((size_t)(n * rows) * sizeof(float)), *y = malloc((size_t)rows * sizeof(float));
    for (int64_t i = 0; i < n * cols; i++) X[i] = tu_rnd_normal();
    k_nm_matmul(w, X, n, Y);
    k_matmul(PARE_TYPE_F32, nat, rows, cols, X, n, Yd);
    for (int64_t i = 0; i < n; i++) {
        k_nm_matvec(w, X + i * cols, y);
        for (int64_t r = 0; r < rows; r++) {
            assert_true(fabsf(Y[i * rows + r] - y[r]) <= 1e-5f * (1 + fabsf(y[r])));
            assert_true(Y[i * rows + r] == Yd[i * rows + r]); /* the same dense panel, the same sgemm */
        }
    }
    free(X); free(Y); free(Yd); free(y); free(nat); free(lay); free(perm); k_nm_free(w);
}

/* ---- detection ----------------------------------------------------------------------------- */
static void test_detect(void **state) {
    (void)state;
    int n, m;
    const int64_t rows = 300, cols = 256;
    float *a = nm_dense(rows, cols, 2, 4);
    k_nm_detect(PARE_TYPE_F32, a, rows, cols, NULL, &n, &m);
    assert_int_equal(n, 2); assert_int_equal(m, 4);
    void *h = to_type(PARE_TYPE_F16, a, rows, cols);
    k_nm_detect(PARE_TYPE_F16, h, rows, cols, NULL, &n, &m);
    assert_int_equal(n, 2); assert_int_equal(m, 4);
    free(h);
    /* the same matrix, columns shuffled: only the recorded order shows the pattern */
    int32_t *perm = random_perm(cols);
    float *nat = unpermute(a, rows, cols, perm);
    k_nm_detect(PARE_TYPE_F32, nat, rows, cols, NULL, &n, &m);
    assert_int_equal(n, 0);
    k_nm_detect(PARE_TYPE_F32, nat, rows, cols, perm, &n, &m);
    assert_int_equal(n, 2); assert_int_equal(m, 4);
    free(nat); free(perm); free(a);
    float *b = nm_dense(rows, cols, 4, 8); /* 4:8, not 2:4 */
    k_nm_detect(PARE_TYPE_F32, b, rows, cols, NULL, &n, &m);
    assert_int_equal(n, 4); assert_int_equal(m, 8);
    /* 12 of 16 in one group of the last row: 12:16 is still within 3/4 ... */
    for (int j = 0; j < 16; j++) b[(rows - 1) * cols + j] = j < 12 ? 1.0f : 0.0f;
    k_nm_detect(PARE_TYPE_F32, b, rows, cols, NULL, &n, &m);
    assert_int_equal(n, 12); assert_int_equal(m, 16);
    /* ... a whole group of 16 is not */
    for (int j = 0; j < 16; j++) b[(rows - 1) * cols + j] = 1.0f;
    k_nm_detect(PARE_TYPE_F32, b, rows, cols, NULL, &n, &m);
    assert_int_equal(n, 0);
    free(b);
    float *d = malloc((size_t)(rows * cols) * sizeof(float)); /* dense, and 50% unstructured */
    for (int64_t i = 0; i < rows * cols; i++) d[i] = tu_rnd_normal() + 3.0f;
    k_nm_detect(PARE_TYPE_F32, d, rows, cols, NULL, &n, &m);
    assert_int_equal(n, 0);
    for (int64_t i = 0; i < rows * cols; i++) if (tu_rnd_u32() & 1) d[i] = 0;
    k_nm_detect(PARE_TYPE_F32, d, rows, cols, NULL, &n, &m);
    assert_int_equal(n, 0);
    free(d);
}

static void test_pack_refuses(void **state) {
    (void)state;
    float *a = nm_dense(8, 64, 2, 4);
    a[5 * 64 + 12] = a[5 * 64 + 13] = a[5 * 64 + 14] = 1.0f; /* row 5, group 3: three nonzeros */
    pare_nm *w = (pare_nm *)1;
    assert_int_equal(k_nm_pack(PARE_TYPE_F32, a, 8, 64, NULL, 2, 4, PARE_TYPE_F16, &w), PARE_ERR_ARG);
    assert_null(w);
    assert_non_null(strstr(pare_last_error(), "row 5, group 3"));
    assert_int_equal(k_nm_pack(PARE_TYPE_F32, a, 8, 64, NULL, 4, 4, PARE_TYPE_F16, &w), PARE_ERR_ARG); /* N >= M */
    assert_int_equal(k_nm_pack(PARE_TYPE_F32, a, 8, 64, NULL, 2, 17, PARE_TYPE_F16, &w), PARE_ERR_ARG);
    assert_int_equal(k_nm_pack(PARE_TYPE_F32, a, 8, 64, NULL, 2, 3, PARE_TYPE_F16, &w), PARE_ERR_ARG); /* 64 % 3 */
    assert_int_equal(k_nm_pack(PARE_TYPE_F32, a, 2, 48, NULL, 3, 4, PARE_TYPE_Q8_0, &w), PARE_ERR_ARG); /* 48 % 32 */
    assert_int_equal(k_nm_pack(PARE_TYPE_F32, a, 8, 64, NULL, 3, 4, PARE_TYPE_Q4_0, &w), PARE_ERR_UNSUPPORTED);
    free(a);
}

/* ---- a whole model --------------------------------------------------------------------- */
/* zero all but the n largest of every m in each block matrix, in its own type */
static void prune_model(pare_model *mdl, int n, int m) {
    for (int l = 0; l < mdl->n_layer; l++) {
        pare_layer *L = &mdl->layers[l];
        pare_tensor *ts[7] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (int i = 0; i < 7; i++) {
            pare_tensor *t = ts[i];
            const int64_t cols = t->ne[0];
            const size_t rb = pare_row_bytes(t->type, cols);
            float *row = malloc((size_t)cols * sizeof(float));
            for (int64_t r = 0; r < t->ne[1]; r++) {
                k_dequant_row(t->type, (uint8_t *)t->data + (size_t)r * rb, row, cols);
                for (int64_t g = 0; g < cols; g += m)
                    for (int drop = 0; drop < m - n; drop++) {
                        int jm = -1;
                        for (int j = 0; j < m; j++)
                            if (row[g + j] != 0.0f && (jm < 0 || fabsf(row[g + j]) < fabsf(row[g + jm]))) jm = j;
                        if (jm >= 0) row[g + jm] = 0.0f;
                    }
                k_quant_row(t->type, row, (uint8_t *)t->data + (size_t)r * rb, cols);
            }
            free(row);
        }
    }
}

static void test_model_logits(void **state) {
    (void)state;
    const synth_shape *sh = synth_find_shape("tiny");
    const int types[] = {PARE_TYPE_F32, PARE_TYPE_F16, PARE_TYPE_BF16, PARE_TYPE_Q8_0};
    const int pats[][2] = {{2, 4}, {4, 8}};
    for (int ti = 0; ti < 4; ti++)
        for (int pi = 0; pi < 2; pi++) {
            pare_model *mdl;
            assert_int_equal(synth_model(sh, types[ti], 7, &mdl), PARE_OK);
            prune_model(mdl, pats[pi][0], pats[pi][1]);
            const int T = 9;
            const size_t nl = (size_t)T * (size_t)mdl->n_vocab;
            float *dense = malloc(nl * sizeof(float)), *sparse = malloc(nl * sizeof(float));
            /* Q8_0's dense fast path (here the output head too) rounds x to int8: compare on
             * the exact-x reference ISA (the compressed rows are checked against it above) */
            if (types[ti] == PARE_TYPE_Q8_0) k_set_isa(PARE_ISA_REF);
            tu_logits_of(mdl, dense, T);
            pare_nm_summary s;
            assert_int_equal(model_pack_nm(mdl, 0, &s), PARE_OK);
            assert_int_equal(s.packed, 7 * mdl->n_layer);
            assert_int_equal(s.n, pats[pi][0]);
            assert_int_equal(s.m, pats[pi][1]);
            tu_logits_of(mdl, sparse, T);
            k_set_isa(PARE_ISA_AVX512);
            double maxd = 0, maxa = 0;
            for (size_t i = 0; i < nl; i++) {
                maxd = fmax(maxd, fabs((double)dense[i] - sparse[i]));
                maxa = fmax(maxa, fabs((double)dense[i]));
            }
            print_message("   %-5s %d:%d  %d matrices, %.1f%% of the dense bytes, max |logit diff| %.3g (max |logit| %.3g)\n",
                          pare_type_name(types[ti]), s.n, s.m, s.packed, 100.0 * (double)s.packed_bytes / (double)s.dense_bytes,
                          maxd, maxa);
            assert_true(maxd <= 1e-5 * maxa);
            /* 9 of 16 bits per weight; on AVX2 4:8 is interleaved with 12-bit position fields, 9.5 */
            if (types[ti] == PARE_TYPE_F16) assert_true(s.packed_bytes * 100 <= s.dense_bytes * (pats[pi][1] == 4 ? 57 : 60));
            free(dense); free(sparse);
            pare_model_free(mdl);
        }
    /* AVX2: 2:4 8-bit values interleaved, x rounded to int8 as by the dense Q8_0 rows */
    if (k_set_isa(PARE_ISA_AVX2) == PARE_ISA_AVX2) {
        for (int ti = 0; ti < 2; ti++) {
            const int type = ti ? PARE_TYPE_Q8_0 : PARE_TYPE_F16;
            pare_model *mdl;
            assert_int_equal(synth_model(sh, type, 7, &mdl), PARE_OK);
            prune_model(mdl, 2, 4);
            const int T = 9;
            const size_t nl = (size_t)T * (size_t)mdl->n_vocab;
            float *dense = malloc(nl * sizeof(float)), *sparse = malloc(nl * sizeof(float));
            tu_logits_of(mdl, dense, T);
            pare_nm_summary s;
            assert_int_equal(model_pack_nm(mdl, PARE_TYPE_Q8_0, &s), PARE_OK);
            assert_int_equal(s.packed, 7 * mdl->n_layer);
            for (int l = 0; l < mdl->n_layer; l++) assert_non_null(mdl->layers[l].w_up->nm->ilv);
            tu_logits_of(mdl, sparse, T);
            double maxd = 0, maxa = 0;
            for (size_t i = 0; i < nl; i++) {
                maxd = fmax(maxd, fabs((double)dense[i] - sparse[i]));
                maxa = fmax(maxa, fabs((double)dense[i]));
            }
            print_message("   %-5s 2:4 with 8-bit values interleaved (avx2): %.1f%% of the dense bytes, max |logit diff| %.3g "
                          "(max |logit| %.3g)\n", pare_type_name(type), 100.0 * (double)s.packed_bytes / (double)s.dense_bytes,
                          maxd, maxa);
            /* Q8_0: the same int8 values and x; F16: values rounded to 8 bits */
            if (type == PARE_TYPE_Q8_0) assert_true(maxd <= 1e-5 * maxa);
            else assert_true(maxd <= 2e-2 * maxa);
            free(dense); free(sparse);
            pare_model_free(mdl);
        }
    }
    k_set_isa(PARE_ISA_AVX512);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_roundtrip), cmocka_unit_test(test_rows_vs_ref), cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_detect),         cmocka_unit_test(test_pack_refuses), cmocka_unit_test(test_interleave),
        cmocka_unit_test(test_model_logits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
