/* test_kernels.c - the numeric kernels: every fast path (each ISA this CPU has, AVX-512 with
 * and without VNNI) against the reference on odd sizes; Q8_0/Q4_0 blocks written byte by
 * byte by hand; ggml's quantizer rounding rules; quant/dequant round-trip error per type;
 * f16/bf16 special values; matvec bitwise independent of the thread count; matmul against a
 * naive triple loop; NaN propagation; unknown types.
 *
 * Tolerances. The reference accumulates in double. A float SIMD dot differs from it by
 * summation order only: |err| <= 2e-6 * sum|w x| (n <= 4131; the worst seen is a tenth of
 * that). The Q8_0/Q4_0 matvec fast paths multiply by x rounded to int8 per block of 32
 * (scale d_b = amax_b / 127), so each x_j is off by at most d_b / 2 and
 * |y - y_ref| <= sum_b d_b / 2 * sum_{j in b} |w_j| plus the float slack (a quarter of it is
 * used); they are also checked tightly (1e-6) against the same int8 sums done here in
 * double. matmul (sgemm, float) vs a double triple loop: 5e-6 * sum|x w|. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kernels/k_impl.h"
#include "kernels/kernels.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------------------- */
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd_u32(void) {
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}
static float rnd_unif(void) { return (float)(rnd_u32() & 0xffffff) / 16777216.0f; } /* [0, 1) */
static float rnd_normal(void) { return rnd_unif() + rnd_unif() + rnd_unif() + rnd_unif() - 2.0f; }

static const int TYPES[] = {PARE_TYPE_F32, PARE_TYPE_F16, PARE_TYPE_BF16, PARE_TYPE_Q8_0, PARE_TYPE_Q4_0};
#define N_TYPES (int)(sizeof TYPES / sizeof TYPES[0])
static int is_quant(int type) { return type == PARE_TYPE_Q8_0 || type == PARE_TYPE_Q4_0; }

/* The fast configurations: an ISA and whether AVX-512 may use VNNI. */
typedef struct { pare_isa isa; int vnni; const char *name; } config;
static const config CONFIGS[] = {
    {PARE_ISA_AVX2, 0, "avx2"}, {PARE_ISA_AVX512, 0, "avx512"}, {PARE_ISA_AVX512, 1, "avx512+vnni"}};
#define N_CONFIGS (int)(sizeof CONFIGS / sizeof CONFIGS[0])

/* Switch to c; 0 if this CPU lacks it. */
static int use_config(const config *c) {
    if (k_set_isa(c->isa) != c->isa) return 0;
    return k_set_vnni(c->vnni) == c->vnni;
}
static void use_ref(void) { k_set_vnni(1); k_set_isa(PARE_ISA_REF); }
static void restore_default(void) { k_set_vnni(1); k_set_isa(PARE_ISA_AVX512); }

/* rows x cols weights of type: float types from random values (with a spread of
 * magnitudes), Q8_0/Q4_0 as random bytes (every int8 / nibble, -128 included) under random
 * positive and negative f16 scales. */
static void *make_weights(int type, int64_t rows, int64_t cols) {
    const size_t rb = pare_row_bytes(type, cols);
    uint8_t *W = malloc(rb * (size_t)rows);
    assert_non_null(W);
    if (is_quant(type)) {
        const size_t bb = pare_type_block_bytes(type);
        for (size_t i = 0; i < rb * (size_t)rows; i++) W[i] = (uint8_t)rnd_u32();
        for (size_t b = 0; b < rb * (size_t)rows / bb; b++) {
            uint16_t d = pare_f32_to_f16((rnd_unif() * 0.02f + 0.001f) * (rnd_u32() & 1 ? 1.0f : -1.0f));
            memcpy(W + b * bb, &d, 2);
        }
    } else {
        float *row = malloc((size_t)cols * sizeof *row);
        assert_non_null(row);
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t j = 0; j < cols; j++) row[j] = rnd_normal() * (j % 7 == 0 ? 10.0f : 0.1f);
            k_quant_row(type, row, W + (size_t)r * rb, cols);
        }
        free(row);
    }
    return W;
}

static float *make_x(int64_t n) {
    float *x = malloc((size_t)n * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < n; i++) x[i] = rnd_normal() * (i % 5 == 0 ? 3.0f : 1.0f);
    return x;
}

/* W dequantized with the reference */
static float *ref_dequant(int type, const void *W, int64_t rows, int64_t cols) {
    const size_t rb = pare_row_bytes(type, cols);
    float *D = malloc((size_t)rows * (size_t)cols * sizeof *D);
    assert_non_null(D);
    pare_isa was = k_isa();
    k_set_isa(PARE_ISA_REF);
    for (int64_t r = 0; r < rows; r++) k_dequant_row(type, (const uint8_t *)W + r * rb, D + r * cols, cols);
    k_set_isa(was);
    return D;
}

static void check_close(double got, double want, double tol, const char *what, const char *cfg, int type,
                        int64_t n, int64_t r) {
    if (!(fabs(got - want) <= tol))
        fail_msg("%s [%s %s n=%lld row %lld]: got %.9g, want %.9g, |diff| %.3g > tol %.3g", what, cfg,
                 pare_type_name(type), (long long)n, (long long)r, got, want, fabs(got - want), tol);
}

/* ---- the ISA switch (must run first: PARE_ISA is read once, at the first kernel call) -- */
static void test_isa_env_cap(void **state) {
    (void)state;
    setenv("PARE_ISA", "avx2", 1);
    k_init();
    pare_isa capped = k_isa();
    pare_isa cpu = k_set_isa(PARE_ISA_AVX512);
    assert_int_equal(capped, cpu < PARE_ISA_AVX2 ? cpu : PARE_ISA_AVX2);
    assert_int_equal(k_set_isa(PARE_ISA_REF), PARE_ISA_REF);
    assert_string_equal(k_isa_name(PARE_ISA_REF), "ref");
    assert_string_equal(k_isa_name(PARE_ISA_AVX2), "avx2");
    assert_string_equal(k_isa_name(PARE_ISA_AVX512), "avx512");
    unsetenv("PARE_ISA");
    for (int c = 0; c < N_CONFIGS; c++)
        print_message("   %-12s %s\n", CONFIGS[c].name, use_config(&CONFIGS[c]) ? "tested" : "not on this CPU");
    restore_default();
}

/* ---- hand-written blocks ---------------------------------------------------------------- */
static void test_q8_0_block_by_hand(void **state) {
    (void)state;
    /* d = 0x3800 = 0.5 (little-endian bytes 00 38), qs[j] = j - 16 */
    uint8_t blk[34] = {0x00, 0x38};
    for (int j = 0; j < 32; j++) blk[2 + j] = (uint8_t)(int8_t)(j - 16);
    float ones[32], out[32];
    for (int j = 0; j < 32; j++) ones[j] = 1.0f;
    for (int c = -1; c < N_CONFIGS; c++) {
        if (c < 0) use_ref();
        else if (!use_config(&CONFIGS[c])) continue;
        k_dequant_row(PARE_TYPE_Q8_0, blk, out, 32);
        assert_true(out[0] == -8.0f && out[1] == -7.5f && out[16] == 0.0f && out[17] == 0.5f && out[31] == 7.5f);
        /* sum (j - 16) = 496 - 512 = -16, times 0.5 */
        assert_true(k_dot(PARE_TYPE_Q8_0, blk, ones, 32) == -8.0f);
        float y;
        k_matvec(PARE_TYPE_Q8_0, blk, 1, 32, ones, &y); /* x = 1 quantizes exactly (127 * 1/127) */
        assert_float_equal(y, -8.0f, 1e-5);
    }
    restore_default();

    /* ggml's quantize_row_q8_0_ref: d = amax / 127, q = roundf(x / d) (halves away from 0) */
    float x[64] = {0};
    x[0] = 127.0f; x[1] = 2.5f; x[2] = -2.5f; x[3] = 0.49f; x[4] = -126.5f; x[5] = 1.5f; x[6] = -0.5f;
    x[32] = -254.0f; x[33] = 3.0f; x[34] = -1.0f; x[35] = 5.0f; x[36] = 254.0f;
    uint8_t want[68] = {0};
    const uint8_t b0[] = {0x00, 0x3c, /* d = 1.0 */ 0x7f, 0x03, 0xfd, 0x00, 0x81, 0x02, 0xff};
    const uint8_t b1[] = {0x00, 0x40, /* d = 2.0 */ 0x81, 0x02, 0xff, 0x03, 0x7f};
    memcpy(want, b0, sizeof b0);
    memcpy(want + 34, b1, sizeof b1);
    uint8_t got[68];
    k_quant_row(PARE_TYPE_Q8_0, x, got, 64);
    assert_memory_equal(got, want, sizeof want);
}

static void test_q4_0_block_by_hand(void **state) {
    (void)state;
    /* d = 0x4000 = 2.0; qs[j] = j | (15 - j) << 4: element j = 2 (j - 8), element 16 + j =
     * 2 (7 - j) */
    uint8_t blk[18] = {0x00, 0x40};
    for (int j = 0; j < 16; j++) blk[2 + j] = (uint8_t)(j | (15 - j) << 4);
    float ones[32], out[32];
    for (int j = 0; j < 32; j++) ones[j] = 1.0f;
    for (int c = -1; c < N_CONFIGS; c++) {
        if (c < 0) use_ref();
        else if (!use_config(&CONFIGS[c])) continue;
        k_dequant_row(PARE_TYPE_Q4_0, blk, out, 32);
        assert_true(out[0] == -16.0f && out[7] == -2.0f && out[8] == 0.0f && out[15] == 14.0f);
        assert_true(out[16] == 14.0f && out[23] == 0.0f && out[31] == -16.0f);
        /* sum = 2 ((120 - 128) + (112 - 120)) = -32 */
        assert_true(k_dot(PARE_TYPE_Q4_0, blk, ones, 32) == -32.0f);
        float y;
        k_matvec(PARE_TYPE_Q4_0, blk, 1, 32, ones, &y);
        assert_float_equal(y, -32.0f, 1e-4);
    }
    restore_default();

    /* ggml's quantize_row_q4_0_ref: d = (signed value of largest magnitude, first on a tie)
     * / -8, nibble = min(15, (int)(x / d + 8.5)). Block 0: -8 comes before +8, so d = 1. */
    float x[64] = {0};
    for (int j = 0; j < 16; j++) x[j] = (float)(j - 8); /* nibbles 0..15 */
    x[16] = 8.0f; x[17] = 7.4f; x[18] = -7.6f; x[19] = 0.5f; x[20] = -0.5f; /* 16->15, 15, 0, 9, 8 */
    /* block 1: the largest is +4, so d = -0.5 and +4 -> nibble 0, -4 -> 16 -> 15, 1 -> 6 */
    x[32] = 4.0f; x[33] = -4.0f; x[34] = 1.0f; x[48] = -1.0f;
    uint8_t want[36] = {0x00, 0x3c, 0xf0, 0xf1, 0x02, 0x93, 0x84, 0x85, 0x86, 0x87,
                        0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f,
                        0x00, 0xb8, 0xa0, 0x8f, 0x86};
    for (int j = 23; j < 36; j++) want[j] = 0x88;
    uint8_t got[36];
    k_quant_row(PARE_TYPE_Q4_0, x, got, 64);
    assert_memory_equal(got, want, sizeof want);
}

/* ---- half floats -------------------------------------------------------------------------- */
static void test_half_special_values(void **state) {
    (void)state;
    const uint16_t h[] = {0x0000, 0x8000, 0x7c00, 0xfc00, 0x0001, 0x03ff, 0x0400, 0x7bff, 0x3c00, 0xc000, 0x3555, 0x7e00};
    const float hf[] = {0.0f, -0.0f, INFINITY, -INFINITY, 0x1p-24f, 0x3ffp-24f, 0x1p-14f, 65504.0f, 1.0f, -2.0f,
                        0.333251953125f, NAN};
    const uint16_t b[] = {0x0000, 0x8000, 0x7f80, 0xff80, 0x0001, 0x3f80, 0xc040, 0x7f7f, 0x7fc0};
    const float bf[] = {0.0f, -0.0f, INFINITY, -INFINITY, 0x1p-133f, 1.0f, -3.0f, 0x1.fep127f, NAN};
    const int nh = (int)(sizeof h / sizeof h[0]), nbf = (int)(sizeof b / sizeof b[0]);
    /* 19 values: long enough for the 8/16-wide paths and their scalar tails */
    uint16_t hrow[19], brow[19];
    float out[19];
    for (int i = 0; i < 19; i++) { hrow[i] = h[i % nh]; brow[i] = b[i % nbf]; }
    for (int c = -1; c < N_CONFIGS; c++) {
        if (c < 0) use_ref();
        else if (!use_config(&CONFIGS[c])) continue;
        k_dequant_row(PARE_TYPE_F16, hrow, out, 19);
        for (int i = 0; i < 19; i++) {
            const float want = hf[i % nh];
            if (isnan(want)) assert_true(isnan(out[i]));
            else assert_true(out[i] == want && signbit(out[i]) == signbit(want));
        }
        k_dequant_row(PARE_TYPE_BF16, brow, out, 19);
        for (int i = 0; i < 19; i++) {
            const float want = bf[i % nbf];
            if (isnan(want)) assert_true(isnan(out[i]));
            else assert_true(out[i] == want && signbit(out[i]) == signbit(want));
        }
    }
    /* every f16 bit pattern: the SIMD widening equals the scalar conversion */
    uint16_t *all = malloc(65536 * 2);
    float *got = malloc(65536 * 4);
    assert_true(all && got);
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    for (int c = 0; c < N_CONFIGS; c++) {
        if (!use_config(&CONFIGS[c])) continue;
        k_dequant_row(PARE_TYPE_F16, all, got, 65536);
        for (int i = 0; i < 65536; i++) {
            const float want = pare_f16_to_f32((uint16_t)i);
            if (isnan(want)) assert_true(isnan(got[i]));
            else if (memcmp(&got[i], &want, 4)) fail_msg("f16 0x%04x: got %g want %g", i, got[i], want);
        }
    }
    free(all);
    free(got);
    restore_default();

    /* f32 -> f16 / bf16 (k_quant_row): round to nearest, ties to even; overflow to inf */
    const float fx[] = {65504.0f, 65519.0f, 65520.0f, 0x1p-25f, 0x1.0001p-25f, 0x3p-25f, -0.0f, 1.0f + 0x1p-11f,
                        1.0f + 0x3p-11f, INFINITY, -1e9f, 0x1p-14f};
    const uint16_t fh[] = {0x7bff, 0x7bff, 0x7c00, 0x0000, 0x0001, 0x0002, 0x8000, 0x3c00,
                           0x3c02, 0x7c00, 0xfc00, 0x0400};
    uint16_t q[12];
    k_quant_row(PARE_TYPE_F16, fx, q, 12);
    for (int i = 0; i < 12; i++)
        if (q[i] != fh[i]) fail_msg("f32 %a -> f16 0x%04x, want 0x%04x", (double)fx[i], q[i], fh[i]);
    const float bx[] = {1.0f, 1.0f + 0x1p-8f, 1.0f + 0x3p-8f, FLT_MAX, -0.0f, 0x1p-133f, -INFINITY};
    const uint16_t bh[] = {0x3f80, 0x3f80, 0x3f82, 0x7f80, 0x8000, 0x0001, 0xff80};
    k_quant_row(PARE_TYPE_BF16, bx, q, 7);
    for (int i = 0; i < 7; i++)
        if (q[i] != bh[i]) fail_msg("f32 %a -> bf16 0x%04x, want 0x%04x", (double)bx[i], q[i], bh[i]);
    const float nan1 = NAN;
    k_quant_row(PARE_TYPE_F16, &nan1, q, 1);
    assert_true((q[0] & 0x7c00) == 0x7c00 && (q[0] & 0x3ff));
    k_quant_row(PARE_TYPE_BF16, &nan1, q, 1);
    assert_true((q[0] & 0x7f80) == 0x7f80 && (q[0] & 0x7f));
}

/* ---- quantize -> dequantize round trip ---------------------------------------------------- */
static void test_roundtrip_rmse(void **state) {
    (void)state;
    const int64_t n = 4096;
    float *x = make_x(n), *back = malloc(n * sizeof *back);
    void *q = malloc(n * 4);
    assert_true(back && q);
    /* bound on RMSE / RMS(x): f16 keeps 11 bits, bf16 8; Q8_0 steps amax/127, Q4_0 amax/8 */
    const double bound[N_TYPES] = {0.0, 3e-4, 3e-3, 0.012, 0.2};
    for (int t = 0; t < N_TYPES; t++) {
        k_quant_row(TYPES[t], x, q, n);
        for (int c = -1; c < N_CONFIGS; c++) {
            if (c < 0) use_ref();
            else if (!use_config(&CONFIGS[c])) continue;
            k_dequant_row(TYPES[t], q, back, n);
            double se = 0, ss = 0;
            for (int64_t i = 0; i < n; i++) {
                se += ((double)back[i] - x[i]) * ((double)back[i] - x[i]);
                ss += (double)x[i] * x[i];
            }
            const double rel = sqrt(se / ss);
            if (rel > bound[t]) fail_msg("%s: relative RMSE %.3g > %.3g", pare_type_name(TYPES[t]), rel, bound[t]);
            if (c < 0) print_message("   %-5s relative RMSE %.3g\n", pare_type_name(TYPES[t]), rel);
        }
        /* every element: Q8_0 within half a step (amax/127) of its block, Q4_0 within one step
         * (amax/8: the side opposite the largest value clips at +7), plus the f16 rounding
         * of the scale (2^-11 relative, times at most 127 or 8 steps) */
        if (is_quant(TYPES[t])) {
            const double err = TYPES[t] == PARE_TYPE_Q8_0 ? 0.5 / 127 + 1.0 / 1024 : 1.0 / 8 + 1.0 / 256;
            for (int64_t b = 0; b < n / 32; b++) {
                double amax = 0;
                for (int j = 0; j < 32; j++) amax = fmax(amax, fabs(x[b * 32 + j]));
                for (int j = 0; j < 32; j++) assert_true(fabs(back[b * 32 + j] - x[b * 32 + j]) <= amax * err);
            }
        }
    }
    restore_default();
    free(x);
    free(back);
    free(q);
}

/* ---- x for the int8 paths ----------------------------------------------------------------- */
static void test_quantize_x(void **state) {
    (void)state;
    const int64_t n = 4096 + 96, nb = n / 32; /* 131 blocks: 32 groups of four and three more */
    float *x = make_x(n);
    void *buf = aligned_alloc(64, k_xvec_bytes(n));
    assert_non_null(buf);
    for (int j = 0; j < 32; j++) x[j] = 0.0f;      /* an all-zero block */
    x[32] = 1e-35f;                                /* a block too small to scale: zero */
    for (int j = 33; j < 64; j++) x[j] = 0.0f;
    k_xvec v;
    k_quantize_x(x, n, buf, &v);
    assert_true(v.x == x);
    for (int64_t b = 0; b < nb; b++) {
        float amax = 0;
        int sum = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        assert_true(v.d[b] == (b < 2 ? 0.0f : amax / 127.0f));
        for (int j = 0; j < 32; j++) {
            const int qj = v.q[b * 32 + j];
            sum += qj;
            assert_true(qj >= -127 && qj <= 127);
            /* rounded to nearest: off by at most half a step */
            if (b >= 2) assert_true(fabs((double)x[b * 32 + j] - (double)v.d[b] * qj) <= v.d[b] * (0.5 + 1e-5));
            /* the four-block layout */
            if (b < nb / 4 * 4) assert_int_equal(v.q4[128 * (b / 4) + (j / 16) * 64 + 16 * (b % 4) + j % 16], qj);
        }
        assert_int_equal(v.s8[b], 8 * sum);
        for (int l = 0; l < 4; l++) {
            assert_true(v.d4[4 * b + l] == v.d[b]);
            assert_int_equal(v.o4[4 * b + l], -2 * sum);
        }
    }
    /* ties go to even: amax 127 gives d = 1 exactly */
    x[64] = 127.0f; x[65] = 2.5f; x[66] = -0.5f; x[67] = 1.5f; x[68] = -3.5f;
    for (int j = 69; j < 96; j++) x[j] = 0.25f;
    x[100] = NAN;
    x[130] = INFINITY;
    k_quantize_x(x, n, buf, &v);
    assert_true(v.d[2] == 1.0f);
    assert_true(v.q[64] == 127 && v.q[65] == 2 && v.q[66] == 0 && v.q[67] == 2 && v.q[68] == -4 && v.q[69] == 0);
    assert_true(isnan(v.d[3]) && isnan(v.d[4]) && !isnan(v.d[2]) && !isnan(v.d[5]));
    assert_true(v.s8[3] == 0 && v.q[100] == 0);

    /* every ISA's own quantizer writes the same bytes */
    const size_t bytes = k_xvec_bytes(n);
    void *fast = aligned_alloc(64, bytes);
    assert_non_null(fast);
    for (int isa = PARE_ISA_AVX2; isa <= PARE_ISA_AVX512; isa++) {
        if ((int)k_set_isa((pare_isa)isa) != isa) continue;
        k_ops t[K_NTYPES];
        k_ops_ref(t);
        if (isa == PARE_ISA_AVX2) k_ops_avx2(t);
        else k_ops_avx512(t, 0);
        assert_non_null(t[K_Q4_0].xprep);
        memset(fast, 0x55, bytes);
        k_xvec f;
        t[K_Q4_0].xprep(x, n, fast, &f);
        assert_memory_equal(f.d, v.d, nb * 4);
        assert_memory_equal(f.s8, v.s8, nb * 4);
        assert_memory_equal(f.q, v.q, n);
        assert_memory_equal(f.q4, v.q4, nb / 4 * 128);
        assert_memory_equal(f.d4, v.d4, nb * 16);
        assert_memory_equal(f.o4, v.o4, nb * 16);
    }
    restore_default();
    free(fast);
    free(x);
    free(buf);
}

/* ---- fast paths against the reference ----------------------------------------------------- */
/* y for row r computed here from the same int8 x the fast matvec uses, in double; also the
 * sum of the magnitudes of its terms (for the tolerance). */
static double emulate_int8_row(int type, const uint8_t *row, int64_t n, const float *xd, const int8_t *xq,
                               double *mag) {
    double s = 0;
    *mag = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        int32_t acc = 0, aabs = 0;
        float dw;
        if (type == PARE_TYPE_Q8_0) {
            block_q8_0 blk;
            memcpy(&blk, row + b * sizeof blk, sizeof blk);
            dw = pare_f16_to_f32(blk.d);
            for (int j = 0; j < 32; j++) { acc += blk.qs[j] * xq[b * 32 + j]; aabs += abs(blk.qs[j] * xq[b * 32 + j]); }
        } else {
            block_q4_0 blk;
            memcpy(&blk, row + b * sizeof blk, sizeof blk);
            dw = pare_f16_to_f32(blk.d);
            for (int j = 0; j < 16; j++) {
                const int lo = (blk.qs[j] & 15) - 8, hi = (blk.qs[j] >> 4) - 8;
                acc += lo * xq[b * 32 + j] + hi * xq[b * 32 + 16 + j];
                aabs += abs(lo * xq[b * 32 + j]) + abs(hi * xq[b * 32 + 16 + j]);
            }
        }
        s += (double)dw * xd[b] * acc;
        *mag += fabs((double)dw * xd[b]) * aabs;
    }
    return s;
}

static void check_type_size(int type, int64_t n, int64_t rows) {
    const size_t rb = pare_row_bytes(type, n);
    uint8_t *W = make_weights(type, rows, n);
    float *x = make_x(n), *D = ref_dequant(type, W, rows, n);
    float *yref = malloc(rows * sizeof *yref), *dref = malloc(rows * sizeof *dref);
    float *y = malloc(rows * sizeof *y), *deq = malloc(n * sizeof *deq);
    double *mag = malloc(rows * sizeof *mag), *qbound = malloc(rows * sizeof *qbound);
    assert_true(yref && dref && y && deq && mag && qbound);

    /* x as the int8 paths see it, and the error bound that implies */
    const int64_t nb = n / 32;
    void *xbuf = aligned_alloc(64, k_xvec_bytes(n) + 64);
    assert_non_null(xbuf);
    k_xvec xv = {0};
    if (is_quant(type)) k_quantize_x(x, n, xbuf, &xv);
    const float *xd = xv.d;
    const int8_t *xq = xv.q;
    for (int64_t r = 0; r < rows; r++) {
        mag[r] = qbound[r] = 0;
        for (int64_t j = 0; j < n; j++) mag[r] += fabs((double)D[r * n + j] * x[j]);
        for (int64_t b = 0; is_quant(type) && b < nb; b++)
            for (int j = 0; j < 32; j++) qbound[r] += xd[b] * 0.5 * fabs(D[r * n + b * 32 + j]);
    }

    use_ref();
    k_matvec(type, W, rows, n, x, yref);
    for (int64_t r = 0; r < rows; r++) dref[r] = k_dot(type, W + r * rb, x, n);
    for (int64_t r = 0; r < rows; r++) check_close(yref[r], dref[r], 0, "ref matvec == ref dot", "ref", type, n, r);

    for (int c = 0; c < N_CONFIGS; c++) {
        if (!use_config(&CONFIGS[c])) continue;
        const char *cn = CONFIGS[c].name;
        k_matvec(type, W, rows, n, x, y);
        for (int64_t r = 0; r < rows; r++) {
            const double tol = 2e-6 * mag[r] + 1e-30;
            check_close(k_dot(type, W + r * rb, x, n), dref[r], tol, "dot", cn, type, n, r);
            if (is_quant(type)) {
                check_close(y[r], yref[r], qbound[r] * 1.001 + tol, "int8 matvec vs exact", cn, type, n, r);
                double imag;
                const double emu = emulate_int8_row(type, W + r * rb, n, xd, xq, &imag);
                check_close(y[r], emu, 1e-6 * imag + 1e-30, "int8 matvec vs int8 sums", cn, type, n, r);
            } else {
                check_close(y[r], yref[r], tol, "matvec", cn, type, n, r);
            }
            k_dequant_row(type, W + r * rb, deq, n);
            if (memcmp(deq, D + r * n, n * sizeof *deq))
                fail_msg("dequant [%s %s n=%lld row %lld] differs from the reference", cn, pare_type_name(type),
                         (long long)n, (long long)r);
        }
    }
    restore_default();
    free(W); free(x); free(D); free(yref); free(dref); free(y); free(deq); free(mag); free(qbound);
    free(xbuf);
}

static void test_fast_vs_ref(void **state) {
    (void)state;
    /* 224: 7 blocks, the 4-, 2- and 1-block steps of the AVX-512 int8 rows */
    const int64_t sizes[] = {32, 64, 96, 160, 224, 4096 + 32};
    const int64_t odd[] = {1, 7, 17, 37, 45, 4096 + 35}; /* float types take any n */
    const int64_t rows[] = {1, 3, 17};
    for (int t = 0; t < N_TYPES; t++)
        for (int s = 0; s < 6; s++)
            for (int r = 0; r < 3; r++) {
                check_type_size(TYPES[t], sizes[s], rows[r]);
                if (!is_quant(TYPES[t])) check_type_size(TYPES[t], odd[s], rows[r]);
            }
}

/* ---- threads ------------------------------------------------------------------------------ */
static void test_matvec_thread_independent(void **state) {
    (void)state;
    const int64_t rows = 257, n = 4096 + 32; /* a partial last chunk; big enough to go parallel */
    const int saved = omp_get_max_threads();
    float *x = make_x(n), *y1 = malloc(rows * 4), *y2 = malloc(rows * 4), *y3 = malloc(rows * 4);
    assert_true(y1 && y2 && y3);
    for (int t = 0; t < N_TYPES; t++) {
        void *W = make_weights(TYPES[t], rows, n);
        for (int c = -1; c < N_CONFIGS; c++) {
            if (c < 0) use_ref();
            else if (!use_config(&CONFIGS[c])) continue;
            omp_set_num_threads(1);
            k_matvec(TYPES[t], W, rows, n, x, y1);
            omp_set_num_threads(2);
            k_matvec(TYPES[t], W, rows, n, x, y2);
            omp_set_num_threads(3);
            k_matvec(TYPES[t], W, rows, n, x, y3);
            if (memcmp(y1, y2, rows * 4) || memcmp(y1, y3, rows * 4))
                fail_msg("%s %s: matvec depends on the thread count", c < 0 ? "ref" : CONFIGS[c].name,
                         pare_type_name(TYPES[t]));
        }
        free(W);
    }
    omp_set_num_threads(saved);
    restore_default();
    free(x); free(y1); free(y2); free(y3);
}

/* ---- matmul ------------------------------------------------------------------------------- */
static void test_matmul_vs_naive(void **state) {
    (void)state;
    /* (rows, cols, n); 300 x 4128 spans two dequantized panels; 72 x 1056 x 7: whole 3 x 8
     * tiles of the AVX-512 prefill kernel over three column blocks (the last one ragged) and a
     * token left over; 24 x 48 x 200: more than 64 token tiles; 150 x 1056 x 100: ten tiles
     * of 14 rows and ten single rows, four token blocks with a ragged last one; 23 x 544 x 37:
     * the AVX2 kernel's 6-row tiles, single rows (12 + 11 rows: 6 + 6, 6 + 5 singles) and a
     * ragged half block of 16 tokens */
    const int64_t shapes[][3] = {{17, 160, 1}, {17, 160, 5}, {3, 32, 33}, {300, 4096 + 32, 3}, {5, 37, 4},
                                 {72, 1056, 7}, {24, 48, 200}, {150, 1056, 100}, {23, 544, 37}};
    for (int s = 0; s < 9; s++) {
        const int64_t rows = shapes[s][0], cols = shapes[s][1], n = shapes[s][2];
        float *X = malloc(n * cols * 4), *Y = malloc(n * rows * 4);
        assert_true(X && Y);
        for (int64_t i = 0; i < n * cols; i++) X[i] = rnd_normal();
        for (int t = 0; t < N_TYPES; t++) {
            if (cols % pare_type_block(TYPES[t])) continue;
            void *W = make_weights(TYPES[t], rows, cols);
            float *D = ref_dequant(TYPES[t], W, rows, cols);
            for (int c = -1; c < N_CONFIGS; c++) {
                if (c < 0) use_ref();
                else if (!use_config(&CONFIGS[c])) continue;
                for (int64_t i = 0; i < n * rows; i++) Y[i] = NAN;
                k_matmul(TYPES[t], W, rows, cols, X, n, Y);
                for (int64_t i = 0; i < n; i++)
                    for (int64_t r = 0; r < rows; r++) {
                        double want = 0, mag = 0;
                        for (int64_t k = 0; k < cols; k++) {
                            want += (double)X[i * cols + k] * D[r * cols + k];
                            mag += fabs((double)X[i * cols + k] * D[r * cols + k]);
                        }
                        check_close(Y[i * rows + r], want, 5e-6 * mag + 1e-30, "matmul",
                                    c < 0 ? "ref" : CONFIGS[c].name, TYPES[t], cols, r);
                    }
            }
            free(W);
            free(D);
        }
        free(X);
        free(Y);
    }
    restore_default();
}

static void test_matmul_thread_independent(void **state) {
    (void)state;
    const int64_t rows = 300, cols = 4096 + 32, n = 7; /* four panels */
    const int saved = omp_get_max_threads(), blas = openblas_get_num_threads();
    float *X = malloc(n * cols * 4), *Y1 = malloc(n * rows * 4), *Y2 = malloc(n * rows * 4);
    assert_true(X && Y1 && Y2);
    for (int64_t i = 0; i < n * cols; i++) X[i] = rnd_normal();
    for (int t = 0; t < N_TYPES; t++) {
        void *W = make_weights(TYPES[t], rows, cols);
        omp_set_num_threads(1);
        k_matmul(TYPES[t], W, rows, cols, X, n, Y1);
        omp_set_num_threads(2);
        k_matmul(TYPES[t], W, rows, cols, X, n, Y2);
        if (memcmp(Y1, Y2, n * rows * 4)) fail_msg("%s: matmul depends on the thread count", pare_type_name(TYPES[t]));
        free(W);
    }
    omp_set_num_threads(saved);
    assert_int_equal(openblas_get_num_threads(), blas); /* k_matmul gives OpenBLAS its threads back */
    free(X); free(Y1); free(Y2);
}

/* ---- non-finite input and unknown types ------------------------------------------------- */
static void test_nan_propagates(void **state) {
    (void)state;
    const int64_t rows = 5, n = 96;
    float *x = make_x(n), y[5];
    x[40] = NAN;
    for (int t = 0; t < N_TYPES; t++) {
        void *W = make_weights(TYPES[t], rows, n);
        for (int c = -1; c < N_CONFIGS; c++) {
            if (c < 0) use_ref();
            else if (!use_config(&CONFIGS[c])) continue;
            k_matvec(TYPES[t], W, rows, n, x, y);
            for (int r = 0; r < rows; r++) assert_true(isnan(y[r]));
            x[40] = INFINITY;
            k_matvec(TYPES[t], W, rows, n, x, y);
            for (int r = 0; r < rows; r++) assert_false(isfinite(y[r]));
            x[40] = NAN;
        }
        free(W);
    }
    restore_default();
    free(x);
}

static void test_unknown_type(void **state) {
    (void)state;
    uint8_t w[64] = {0};
    float x[48] = {0}, y[2] = {0}, d[48] = {0};
    enum { Q4_K = 12, Q5_K = 13 }; /* ggml types pare does not read */
    assert_true(isnan(k_dot(Q4_K, w, x, 32)));
    k_matvec(Q4_K, w, 2, 32, x, y);
    assert_true(isnan(y[0]) && isnan(y[1]));
    k_dequant_row(99, w, d, 32);
    assert_true(isnan(d[0]) && isnan(d[31]));
    k_matmul(Q5_K, w, 1, 32, x, 1, y);
    assert_true(isnan(y[0]));

    /* a row length that is not whole blocks: NaN out, nothing read or written (a caller
     * sizing its buffer with pare_row_bytes gets 0 bytes) */
    uint8_t *none = malloc(1);
    assert_non_null(none);
    none[0] = 0xab;
    assert_int_equal(pare_row_bytes(PARE_TYPE_Q8_0, 48), 0);
    k_quant_row(PARE_TYPE_Q8_0, d, none, 48);
    assert_int_equal(none[0], 0xab);
    assert_true(isnan(k_dot(PARE_TYPE_Q4_0, none, x, 48)));
    k_matvec(PARE_TYPE_Q8_0, none, 2, 48, d, y);
    assert_true(isnan(y[0]) && isnan(y[1]));
    k_dequant_row(PARE_TYPE_Q4_0, none, d, 48);
    assert_true(isnan(d[0]) && isnan(d[47]));
    k_matmul(PARE_TYPE_Q8_0, none, 1, 48, d, 1, y);
    assert_true(isnan(y[0]));
    free(none);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_isa_env_cap), /* first: it sets PARE_ISA before k_init */
        cmocka_unit_test(test_q8_0_block_by_hand),
        cmocka_unit_test(test_q4_0_block_by_hand),
        cmocka_unit_test(test_half_special_values),
        cmocka_unit_test(test_roundtrip_rmse),
        cmocka_unit_test(test_quantize_x),
        cmocka_unit_test(test_fast_vs_ref),
        cmocka_unit_test(test_matvec_thread_independent),
        cmocka_unit_test(test_matmul_vs_naive),
        cmocka_unit_test(test_matmul_thread_independent),
        cmocka_unit_test(test_nan_propagates),
        cmocka_unit_test(test_unknown_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
