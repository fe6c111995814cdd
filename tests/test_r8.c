/* test_r8.c - Q8_0 and Q4_0 matrices with eight rows interleaved (kernels/r8.h):
 * - packing keeps every byte: each row dequantizes to exactly what its GGUF row gives, on
 *   row counts that fill the last group of eight or leave it ragged;
 * - the AVX2 rows give the same bits as the C reference rows, and the same bits on 1 and 2
 *   threads;
 * - both equal an independent double evaluation of the documented sum (x rounded to int8
 *   per block, integer dots, scale products) within float rounding (1e-6 of sum |terms|),
 *   and the exact-x dot of the GGUF row within the documented int8 rounding bound;
 * - matmul equals k_matmul on the GGUF matrix;
 * - a whole model's logits with its Q8_0/Q4_0 matrices interleaved equal the GGUF layout's
 *   (AVX2, where the engine uses the layout) to 1e-5, and an F16 model's, whose matrices
 *   model_pack_engine copies, are the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "engine_util.h"

#include "pare.h"
#include "kernels/k_impl.h"
#include "kernels/r8.h"
#include "model/forward.h"
#include "model/sparse.h"
#include "model/synth.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* a rows x cols matrix of type, quantized by the reference from floats with a spread of
 * magnitudes per row; some blocks all zero */
static uint8_t *random_matrix(int type, int64_t rows, int64_t cols) {
    const size_t rb = pare_row_bytes(type, cols);
    uint8_t *d = malloc(rb * (size_t)rows);
    float *row = malloc((size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        const float s = ldexpf(1.0f, (int)(tu_rnd_u32() % 9) - 4);
        for (int64_t c = 0; c < cols; c++) row[c] = s * tu_rnd_normal();
        if (tu_rnd_u32() % 5 == 0) memset(row + 32 * (tu_rnd_u32() % (uint32_t)(cols / 32)), 0, 32 * sizeof(float));
        k_quant_row(type, row, d + (size_t)r * rb, cols);
    }
    free(row);
    return d;
}

static float *random_x(int64_t cols) {
    float *x = malloc((size_t)cols * sizeof(float));
    for (int64_t c = 0; c < cols; c++) x[c] = tu_rnd_normal() * ldexpf(1.0f, (int)(c / 32 % 5) - 2);
    if (cols >= 64) memset(x + 32, 0, 32 * sizeof(float)); /* an all-zero block of x */
    return x;
}

static const int TYPES[] = {PARE_TYPE_Q8_0, PARE_TYPE_Q4_0};
static const int64_t SHAPES[][2] = {{1, 32}, {7, 64}, {8, 96}, {9, 128}, {16, 32}, {17, 256}, {37, 160}, {64, 1024}, {3, 2048}};
#define NSHAPES (int)(sizeof SHAPES / sizeof *SHAPES)

static void test_pack_roundtrip(void **state) {
    (void)state;
    const pare_isa isas[] = {PARE_ISA_REF, PARE_ISA_AVX2};
    for (int t = 0; t < 2; t++)
        for (int s = 0; s < NSHAPES; s++) {
            const int64_t rows = SHAPES[s][0], cols = SHAPES[s][1];
            const size_t rb = pare_row_bytes(TYPES[t], cols);
            uint8_t *W = random_matrix(TYPES[t], rows, cols);
            pare_r8 *w;
            assert_int_equal(k_r8_pack(TYPES[t], W, rows, cols, &w), PARE_OK);
            assert_int_equal(w->groups, (rows + 7) / 8);
            assert_true(w->bytes >= (size_t)w->groups * 8 * rb && w->bytes < (size_t)w->groups * 8 * rb + 64);
            float *a = malloc((size_t)cols * sizeof(float)), *b = malloc((size_t)cols * sizeof(float));
            for (int i = 0; i < 2; i++) {
                if (k_set_isa(isas[i]) != isas[i]) continue;
                for (int64_t r = 0; r < rows; r++) {
                    k_dequant_row(TYPES[t], W + (size_t)r * rb, a, cols);
                    k_r8_dequant_row(w, r, b);
                    assert_memory_equal(a, b, (size_t)cols * sizeof(float));
                }
            }
            k_set_isa(PARE_ISA_AVX512);
            free(a); free(b); free(W);
            k_r8_free(w);
        }
    pare_r8 *w;
    uint8_t z[64] = {0};
    assert_int_equal(k_r8_pack(PARE_TYPE_F16, z, 1, 32, &w), PARE_ERR_ARG);
    assert_int_equal(k_r8_pack(PARE_TYPE_Q8_0, z, 1, 48, &w), PARE_ERR_ARG);
    assert_null(w);
}

/* Row r by the documented operations, in double: x rounded per block (xv), the integer dot
 * of each block, times f16(d_w) * d_x. *mag = sum of |terms|; *exact = the GGUF row against
 * the exact x; *bound = the int8 rounding bound sum_b amax_b / 254 * sum_b |w|. */
static double emulate(int type, const uint8_t *row, int64_t cols, const float *x, const k_xvec *xv, double *mag,
                      double *exact, double *bound) {
    double s = 0;
    *mag = *exact = *bound = 0;
    float wf[32];
    for (int64_t b = 0; b < cols / 32; b++) {
        const uint8_t *blk = row + (size_t)b * pare_row_bytes(type, 32);
        uint16_t h;
        memcpy(&h, blk, 2);
        const double dw = pare_f16_to_f32(h);
        long dot = 0;
        for (int j = 0; j < 32; j++) {
            int q;
            if (type == PARE_TYPE_Q8_0) q = (int8_t)blk[2 + j];
            else q = (j < 16 ? (blk[2 + j] & 15) : (blk[2 + j - 16] >> 4)) - 8;
            dot += (long)q * xv->q[32 * b + j];
        }
        const double term = dw * (double)xv->d[b] * (double)dot;
        s += term;
        *mag += fabs(term);
        k_dequant_row(type, blk, wf, 32);
        double amax = 0, wsum = 0;
        for (int j = 0; j < 32; j++) {
            *exact += (double)wf[j] * x[32 * b + j];
            amax = fmax(amax, fabs((double)x[32 * b + j]));
            wsum += fabs((double)wf[j]);
        }
        *bound += amax / 254.0 * wsum;
    }
    return s;
}

static void test_rows(void **state) {
    (void)state;
    const int nthr = omp_get_max_threads();
    for (int t = 0; t < 2; t++)
        for (int s = 0; s < NSHAPES; s++) {
            const int64_t rows = SHAPES[s][0], cols = SHAPES[s][1];
            const size_t rb = pare_row_bytes(TYPES[t], cols);
            uint8_t *W = random_matrix(TYPES[t], rows, cols);
            float *x = random_x(cols);
            pare_r8 *w;
            assert_int_equal(k_r8_pack(TYPES[t], W, rows, cols, &w), PARE_OK);
            float *yr = malloc((size_t)rows * sizeof(float)), *ya = malloc((size_t)rows * sizeof(float));
            k_set_isa(PARE_ISA_REF);
            k_r8_matvec(w, x, yr);
            void *buf = malloc(k_xvec_bytes(cols) + 64);
            k_xvec xv;
            k_quantize_x(x, cols, (void *)(((uintptr_t)buf + 63) & ~(uintptr_t)63), &xv);
            for (int64_t r = 0; r < rows; r++) {
                double mag, exact, bound;
                const double e = emulate(TYPES[t], W + (size_t)r * rb, cols, x, &xv, &mag, &exact, &bound);
                assert_true(fabs(yr[r] - e) <= 1e-6 * mag + 1e-30);
                assert_true(fabs(yr[r] - exact) <= bound * 1.0001 + 1e-6 * mag + 1e-30);
            }
            if (k_set_isa(PARE_ISA_AVX2) == PARE_ISA_AVX2) {
                for (int th = 1; th <= 2; th++) {
                    omp_set_num_threads(th);
                    memset(ya, 0xff, (size_t)rows * sizeof(float));
                    k_r8_matvec(w, x, ya);
                    assert_memory_equal(yr, ya, (size_t)rows * sizeof(float)); /* the same bits */
                }
                omp_set_num_threads(nthr);
            }
            k_set_isa(PARE_ISA_AVX512);
            free(buf); free(yr); free(ya); free(x); free(W);
            k_r8_free(w);
        }
}

static void test_matmul(void **state) {
    (void)state;
    for (int t = 0; t < 2; t++) {
        const int64_t rows = 37, cols = 256, n = 19;
        uint8_t *W = random_matrix(TYPES[t], rows, cols);
        float *X = malloc((size_t)(n * cols) * sizeof(float));
        for (int64_t i = 0; i < n * cols; i++) X[i] = tu_rnd_normal();
        pare_r8 *w;
        assert_int_equal(k_r8_pack(TYPES[t], W, rows, cols, &w), PARE_OK);
        float *a = malloc((size_t)(n * rows) * sizeof(float)), *b = malloc((size_t)(n * rows) * sizeof(float));
        k_matmul(TYPES[t], W, rows, cols, X, n, a);
        k_r8_matmul(w, X, n, b);
        for (int64_t i = 0; i < n * rows; i++) assert_true(fabsf(a[i] - b[i]) <= 1e-5f * (1.0f + fabsf(a[i])));
        free(a); free(b); free(X); free(W);
        k_r8_free(w);
    }
}

static void test_model_logits(void **state) {
    (void)state;
    if (k_set_isa(PARE_ISA_AVX2) != PARE_ISA_AVX2) { k_set_isa(PARE_ISA_AVX512); skip(); }
    const synth_shape *sh = synth_find_shape("tiny");
    const int types[] = {PARE_TYPE_Q8_0, PARE_TYPE_Q4_0, PARE_TYPE_F16};
    for (int t = 0; t < 3; t++) {
        /* through a GGUF file: the engine interleaves mapped tensors */
        pare_model *syn, *mdl;
        assert_int_equal(synth_model(sh, types[t], 11, &syn), PARE_OK);
        char dir[] = "/tmp/pare-test-r8-XXXXXX", path[64];
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/m.gguf", dir);
        assert_int_equal(pare_model_save(syn, path, "gguf"), PARE_OK);
        pare_model_free(syn);
        assert_int_equal(pare_model_load(path, NULL, &mdl), PARE_OK);
        const int T = 9;
        const size_t nl = (size_t)T * (size_t)mdl->n_vocab;
        float *a = malloc(nl * sizeof(float)), *b = malloc(nl * sizeof(float));
        tu_logits_of(mdl, a, T);
        pare_engine_summary es;
        assert_int_equal(model_pack_engine(mdl, &es), PARE_OK);
        const int packed = es.interleaved;
        const int all = 7 * mdl->n_layer + 1, untied = mdl->output != mdl->tok_embd;
        if (types[t] == PARE_TYPE_F16) { /* copied as they are: the same bytes, the same logits */
            assert_int_equal(packed, 0);
            assert_int_equal(es.copied, all);
        } else {
            assert_int_equal(packed, all - 1 + untied);
            assert_int_equal(es.copied, !untied);
        }
        tu_logits_of(mdl, b, T);
        double maxd = 0, maxa = 0;
        for (size_t i = 0; i < nl; i++) {
            maxd = fmax(maxd, fabs((double)a[i] - b[i]));
            maxa = fmax(maxa, fabs((double)a[i]));
        }
        print_message("   %-5s %d matrices interleaved, %d copied, max |logit diff| %.3g (max |logit| %.3g)\n",
                      pare_type_name(types[t]), packed, es.copied, maxd, maxa);
        assert_true(maxd <= (types[t] == PARE_TYPE_F16 ? 0 : 1e-5 * maxa));
        free(a); free(b);
        pare_model_free(mdl);
        remove(path);
        remove(dir);
    }
    k_set_isa(PARE_ISA_AVX512);
}

int main(void) {
    tu_rng = 0x9e3779b97f4a7c15ull;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_roundtrip),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_model_logits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
