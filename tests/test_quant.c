/* test_quant.c - weight quantization (src/quant, the Q4_1/Q5_0/Q5_1 kernels, METHODS.md 4, 5):
 *   fixed blocks: one hand-made 32-value block per GGUF type whose bytes are written out here
 *     from llama.cpp's reference formulas (d, m, nibbles, qh), including Q4_0's signed-max rule
 *     with a tie and Q8_0's half-away rounding; k_quant_row and the grid path (quant_fit /
 *     quant_code / quant_pack_row) both give those bytes;
 *   random data: the grid path equals k_quant_row byte for byte and the dequantizers value for
 *     value; |x - x^| <= d/2 (+ the f16 rounding of d) for every element on the grid's range
 *     (Q4_0/Q5_0's clamped end: <= d), x^ on the grid; generic sym/asym grids likewise, and
 *     METHODS.md 4's example; int8-g32 is Q8_0's grid; spec names and bits per weight;
 *   kernels: pare_tensor_row_f32, k_dequant_row, k_dot, k_matvec, k_matmul agree on Q4_1, Q5_0,
 *     Q5_1 under every ISA the CPU has;
 *   GPTQ: on a small layer with correlated inputs its output error ||X W^T - X Q^T|| is well
 *     below RTN's at 4 and 3 bits (GGUF and generic grids, act-order too); with X of
 *     orthogonal, equally scaled columns (H = c I) it is RTN exactly (values and bytes);
 *   model: quant_model with q8_0 keeps logits close to the F32 model's, leaves embeddings and
 *     head alone, survives a GGUF save/load; RTN to q4_1 / q5_0 / q5_1 matches k_quant_row
 *     per tensor; GPTQ through the calibration pipeline beats RTN on the calibration tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kernels/kernels.h"
#include "model/synth.h"
#include "quant/quant.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t g_rng = 0x5eed0fa11ull;
static double urand(void) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}
static double nrand(void) {
    double u = urand() + 1e-300, v = urand();
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static quant_spec spec_of(const char *s) {
    quant_spec q;
    assert_int_equal(quant_spec_parse(s, &q), PARE_OK);
    return q;
}

/* bytes of one block from k_quant_row and from the grid path */
static void both_paths(const quant_spec *q, const float *x, int64_t n, uint8_t *a, uint8_t *b) {
    k_quant_row(q->type, x, a, n);
    quant_group g[64];
    int16_t codes[64 * 32];
    for (int64_t k = 0; k < n / 32; k++) {
        quant_fit(q, x + 32 * k, 32, &g[k]);
        for (int j = 0; j < 32; j++) codes[32 * k + j] = (int16_t)quant_code(q, &g[k], x[32 * k + j]);
    }
    quant_pack_row(q, g, codes, n, b);
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/* ---- (a) fixed blocks ------------------------------------------------------------------- */
static void test_fixed_q8_0(void **state) {
    (void)state;
    /* x_j = c_j / 16 with c_j = 8j - 127: amax = 127/16, d = amax/127 = 1/16 exactly (f16
     * 0x2C00), id = 16, code = c_j; then x_1 = 1/32 (code 0.5 -> 1: half away from zero) and
     * x_2 = -3/32 (-1.5 -> -2). */
    float x[32];
    int8_t c[32];
    for (int j = 0; j < 32; j++) { c[j] = (int8_t)(8 * j - 127); x[j] = (float)c[j] / 16; }
    x[1] = 1.0f / 32; c[1] = 1;
    x[2] = -3.0f / 32; c[2] = -2;
    uint8_t want[34], a[34], b[34];
    put16(want, 0x2C00);
    memcpy(want + 2, c, 32);
    const quant_spec q = spec_of("q8_0");
    both_paths(&q, x, 32, a, b);
    assert_memory_equal(a, want, 34);
    assert_memory_equal(b, want, 34);
    assert_int_equal(want[2], 0x81); /* -127 */
    assert_int_equal(want[3], 0x01);
    assert_int_equal(want[4], 0xFE); /* -2 */
}

static void test_fixed_q4_0(void **state) {
    (void)state;
    /* x_j = (j - 8)/2 for j < 16 and (7 - (j - 16))/2 for j >= 16: the first value of largest
     * magnitude is x_0 = -4, so d = -4/-8 = 0.5 (f16 0x3800), id = 2, code = x/d + 8.5
     * truncated = x/d + 8: element j < 16 -> j, element 16 + i -> 15 - i. */
    float x[32];
    uint8_t want[18], a[18], b[18];
    for (int j = 0; j < 16; j++) { x[j] = (float)(j - 8) / 2; x[16 + j] = (float)(7 - j) / 2; }
    put16(want, 0x3800);
    for (int j = 0; j < 16; j++) want[2 + j] = (uint8_t)(j | (15 - j) << 4);
    const quant_spec q = spec_of("q4_0");
    both_paths(&q, x, 32, a, b);
    assert_memory_equal(a, want, 18);
    assert_memory_equal(b, want, 18);
    assert_int_equal(want[2], 0xF0);
    assert_int_equal(want[17], 0x0F);

    /* a tie: +4 at j = 3 comes before -4 at j = 20, so the signed max is +4: d = 4/-8 = -0.5
     * (f16 0xB800), id = -2; code = -2x + 8.5 truncated: x = +4 -> 0, x = -4 -> 16.5 -> 15
     * (clamped: -4 is stored as -3.5, Q4_0's lossy end); the rest are 0. */
    memset(x, 0, sizeof x);
    x[3] = 4; x[20] = -4; x[7] = 1.25f; /* -2.5 + 8.5 = 6 */
    put16(want, 0xB800);
    for (int j = 0; j < 16; j++) want[2 + j] = 0x88;
    want[2 + 3] = 0x80;          /* element 3: 0, element 19: 8 */
    want[2 + 4] = 0xF8;          /* element 4: 8, element 20: 15 */
    want[2 + 7] = 0x86;          /* element 7: 6 */
    both_paths(&q, x, 32, a, b);
    assert_memory_equal(a, want, 18);
    assert_memory_equal(b, want, 18);
    float y[32];
    k_dequant_row(PARE_TYPE_Q4_0, a, y, 32);
    assert_true(y[3] == 4.0f && y[20] == -3.5f && y[7] == 1.0f && y[0] == 0.0f);
}

static void test_fixed_q4_1(void **state) {
    (void)state;
    /* x_j = 1 + c_j/2, c_j = j (j < 16), c_{16+i} = (5 i + 3) mod 16: min 1, max 8.5, d = 7.5/15
     * = 0.5 (f16 0x3800), m = 1 (0x3C00), id = 2, code = (x - 1) 2 + 0.5 truncated = c_j. */
    float x[32];
    int c[32];
    uint8_t want[20], a[20], b[20];
    for (int i = 0; i < 16; i++) { c[i] = i; c[16 + i] = (5 * i + 3) % 16; }
    for (int j = 0; j < 32; j++) x[j] = 1.0f + (float)c[j] / 2;
    put16(want, 0x3800);
    put16(want + 2, 0x3C00);
    for (int j = 0; j < 16; j++) want[4 + j] = (uint8_t)(c[j] | c[16 + j] << 4);
    const quant_spec q = spec_of("q4_1");
    both_paths(&q, x, 32, a, b);
    assert_memory_equal(a, want, 20);
    assert_memory_equal(b, want, 20);
    assert_int_equal(want[4], 0x30);  /* c_0 = 0, c_16 = 3 */
    assert_int_equal(want[5], 0x81);  /* c_1 = 1, c_17 = 8 */
    float y[32];
    k_dequant_row(PARE_TYPE_Q4_1, a, y, 32);
    for (int j = 0; j < 32; j++) assert_true(y[j] == x[j]);
}

static void test_fixed_q5_0(void **state) {
    (void)state;
    /* x_j = (j - 16)/4: the largest magnitude is x_0 = -4, d = -4/-16 = 0.25 (f16 0x3400),
     * id = 4, code = 4x + 16.5 truncated = j. Nibbles: byte j = j | j << 4 (element 16 + j has
     * code 16 + j, low nibble j); qh: the fifth bit is set exactly for elements 16..31 ->
     * qh = 0xFFFF0000, bytes 00 00 FF FF. Then element 5 moved to 3/8 (code 1.5 + 16.5 = 18:
     * low nibble 2, fifth bit 1 -> qh bit 5). */
    float x[32];
    uint8_t want[22], a[22], b[22];
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16) / 4;
    put16(want, 0x3400);
    want[2] = 0x00; want[3] = 0x00; want[4] = 0xFF; want[5] = 0xFF;
    for (int j = 0; j < 16; j++) want[6 + j] = (uint8_t)(j * 17);
    const quant_spec q = spec_of("q5_0");
    both_paths(&q, x, 32, a, b);
    assert_memory_equal(a, want, 22);
    assert_memory_equal(b, want, 22);
    x[5] = 0.375f;
    want[2] = 0x20;                                   /* qh bit 5 */
    want[6 + 5] = (uint8_t)(0x02 | (5 << 4));         /* element 5: 18 & 15 = 2; element 21: 21 & 15 = 5 */
    both_paths(&q, x, 32, a, b);
    assert_memory_equal(a, want, 22);
    assert_memory_equal(b, want, 22);
    float y[32];
    k_dequant_row(PARE_TYPE_Q5_0, a, y, 32);
    assert_true(y[5] == 0.5f && y[0] == -4.0f && y[31] == 3.75f);
}

static void test_fixed_q5_1(void **state) {
    (void)state;
    /* x_j = -2 + c_j/8, c_j = (7 j + 3) mod 32 (a permutation of 0..31): min -2, max 1.875,
     * d = 3.875/31 = 0.125 (f16 0x3000), m = -2 (0xC000), id = 8, code = c_j; qh bit j = c_j >> 4. */
    float x[32];
    int c[32];
    uint8_t want[24], a[24], b[24];
    uint32_t qh = 0;
    for (int j = 0; j < 32; j++) { c[j] = (7 * j + 3) % 32; x[j] = -2.0f + (float)c[j] / 8; qh |= (uint32_t)(c[j] >> 4) << j; }
    put16(want, 0x3000);
    put16(want + 2, 0xC000);
    for (int k = 0; k < 4; k++) want[4 + k] = (uint8_t)(qh >> (8 * k));
    for (int j = 0; j < 16; j++) want[8 + j] = (uint8_t)((c[j] & 15) | (c[16 + j] & 15) << 4);
    /* c = 3 10 17 24 31 6 13 20 27 2 9 16 23 30 5 12 | 19 26 1 8 15 22 29 4 11 18 25 0 7 14 21 28 */
    assert_int_equal(qh, 0xC663399Cu);
    const quant_spec q = spec_of("q5_1");
    both_paths(&q, x, 32, a, b);
    assert_memory_equal(a, want, 24);
    assert_memory_equal(b, want, 24);
    assert_int_equal(a[4], 0x9C); /* qh bits 0..7: codes 3 10 17 24 31 6 13 20 -> 0 0 1 1 1 0 0 1 */
    assert_int_equal(a[8], 0x33); /* c_0 = 3, c_16 = 19 & 15 = 3 */
    float y[32];
    k_dequant_row(PARE_TYPE_Q5_1, a, y, 32);
    for (int j = 0; j < 32; j++) assert_true(y[j] == x[j]);
}

/* ---- (b) random data -------------------------------------------------------------------- */
/* a random row of n: normal, with outliers, a constant block, a zero block, mostly-positive */
static void random_row(float *x, int64_t n, int kind) {
    const double sc = 0.01 + urand();
    for (int64_t i = 0; i < n; i++) x[i] = (float)(nrand() * sc);
    if (kind == 1) for (int k = 0; k < 4; k++) x[(int64_t)(urand() * n)] *= 20;
    if (kind == 2 && n >= 64) for (int j = 0; j < 32; j++) x[32 + j] = 0.3f;
    if (kind == 3 && n >= 64) for (int j = 0; j < 32; j++) x[j] = 0.0f;
    if (kind == 4) for (int64_t i = 0; i < n; i++) x[i] = fabsf(x[i]) + 0.5f;
}

static const char *GGUF[] = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1"};

/* |x - x^| within the grid's bound for every element of a group g (x^ from quant_value) */
static void check_group(const quant_spec *q, const quant_group *g, const float *x, const float *xq, int64_t n) {
    const float d = fabsf(g->ds), dfl = g->id != 0 ? fabsf(1.0f / g->id) : 0.0f, dd = fabsf(dfl - d);
    for (int64_t j = 0; j < n; j++) {
        const int c = quant_code(q, g, x[j]);
        assert_true(c >= g->lo && c <= g->hi);
        assert_true(xq[j] == quant_value(g, c)); /* on the grid */
        double bound = 0.5 * fmax(d, dfl) + fabs((double)(c - g->zero)) * dd + fabsf(g->base - g->ms) + 1e-6 * fabsf(x[j]) + 1e-30;
        /* Q4_0/Q5_0: values beyond 7 d (15 d) on the side opposite the signed max are clamped */
        if ((q->type == PARE_TYPE_Q4_0 || q->type == PARE_TYPE_Q5_0) && c == g->hi) bound += 0.5 * d;
        if (fabs((double)x[j] - xq[j]) > bound) {
            print_message("element %lld: x %.9g x^ %.9g code %d d %.9g bound %.3g\n", (long long)j, x[j], xq[j], c, d, bound);
            fail();
        }
    }
}

static void test_random_gguf(void **state) {
    (void)state;
    enum { N = 256 };
    float x[N], xq[N], y[N];
    uint8_t a[N * 2], b[N * 2];
    for (int t = 0; t < 5; t++) {
        const quant_spec q = spec_of(GGUF[t]);
        for (int it = 0; it < 200; it++) {
            random_row(x, N, it % 5);
            both_paths(&q, x, N, a, b);
            const size_t rb = pare_row_bytes(q.type, N);
            assert_int_equal(rb, N / 32 * pare_type_block_bytes(q.type));
            assert_memory_equal(a, b, rb); /* the grid path is ggml's quantizer */
            memcpy(xq, x, sizeof x);
            quant_rtn_row(&q, xq, N, b);
            assert_memory_equal(a, b, rb);
            k_dequant_row(q.type, a, y, N);
            assert_memory_equal(xq, y, sizeof y); /* x^ is what the reader dequantizes */
            for (int k = 0; k < N / 32; k++) {
                quant_group g;
                quant_fit(&q, x + 32 * k, 32, &g);
                check_group(&q, &g, x + 32 * k, xq + 32 * k, 32);
            }
        }
    }
}

static void test_generic_grids(void **state) {
    (void)state;
    enum { N = 320 };
    float x[N], xq[N];
    const char *specs[] = {"int2-g32", "int2-g32-asym", "int3-g128", "int3-g64-asym", "int4", "int4-g128-asym", "int5-g8",
                           "int8-g32", "int8-asym", "int6-g100-sym"};
    for (size_t s = 0; s < sizeof specs / sizeof *specs; s++) {
        const quant_spec q = spec_of(specs[s]);
        assert_int_equal(q.type, -1);
        const int64_t G = q.group ? q.group : N;
        for (int it = 0; it < 100; it++) {
            random_row(x, N, it % 5);
            memcpy(xq, x, sizeof x);
            quant_rtn_row(&q, xq, N, NULL);
            for (int64_t g0 = 0; g0 < N; g0 += G) { /* the last group may be partial (320 = 2 x 128 + 64) */
                const int64_t n = N - g0 < G ? N - g0 : G;
                quant_group g;
                quant_fit(&q, x + g0, n, &g);
                const int levels = g.hi - g.lo + 1;
                assert_int_equal(levels, q.asym ? 1 << q.bits : (1 << q.bits) - 1);
                if (q.asym) assert_true(quant_value(&g, g.zero) == 0.0f); /* 0 is on the grid */
                check_group(&q, &g, x + g0, xq + g0, n);
            }
        }
    }
    /* METHODS.md 4: [-1, 0, 0.5, 2], 4 bits asym: scale 0.2, zero 5; 0.5 -> round(2.5) = 2
     * (half to even) -> code 7 -> 2 x 0.2 (the scale as f16); 0 exact */
    const quant_spec q = spec_of("int4-asym");
    float r[4] = {-1, 0, 0.5f, 2};
    quant_group g;
    quant_fit(&q, r, 4, &g);
    assert_int_equal(g.zero, 5);
    assert_true(g.ds == pare_f16_to_f32(pare_f32_to_f16(0.2f)));
    assert_int_equal(quant_code(&q, &g, 0.5f), 7);
    quant_rtn_row(&q, r, 4, NULL);
    assert_true(r[1] == 0.0f);
    assert_true(r[2] == 2 * g.ds);
    assert_true(r[0] == -5 * g.ds && r[3] == 10 * g.ds);

    /* int8-g32 (sym) is Q8_0's grid: same values (random data has no exact .5 ties) */
    const quant_spec i8 = spec_of("int8-g32");
    uint8_t blk[N / 32 * 34];
    float y[N];
    for (int it = 0; it < 50; it++) {
        random_row(x, N, it % 5);
        k_quant_row(PARE_TYPE_Q8_0, x, blk, N);
        k_dequant_row(PARE_TYPE_Q8_0, blk, y, N);
        quant_rtn_row(&i8, x, N, NULL);
        assert_memory_equal(x, y, sizeof y);
    }
}

static void test_spec_names(void **state) {
    (void)state;
    struct { const char *in, *name; int64_t cols; double bpw; } ok[] = {
        {"q8_0", "q8_0", 64, 8.5}, {"q4_0", "q4_0", 64, 4.5}, {"q4_1", "q4_1", 64, 5.0}, {"q5_0", "q5_0", 64, 5.5},
        {"q5_1", "q5_1", 64, 6.0}, {"int3-g128", "int3-g128", 256, 3.125}, {"int4-g64-asym", "int4-g64-asym", 128, 4.5},
        {"int2-g32", "int2-g32", 64, 2.5}, {"int3-g128", "int3-g128", 192, 3 + 32.0 / 192}, {"int4", "int4", 256, 4.0625},
        {"int4-asym-g32", "int4-g32-asym", 32, 5.0}, {"int8-g32-sym", "int8-g32", 32, 8.5},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        quant_spec q;
        char name[32];
        assert_int_equal(quant_spec_parse(ok[i].in, &q), PARE_OK);
        quant_spec_name(&q, name, sizeof name);
        assert_string_equal(name, ok[i].name);
        assert_true(fabs(quant_bits_per_weight(&q, ok[i].cols) - ok[i].bpw) < 1e-12);
    }
    const char *bad[] = {"q4_2", "int1", "int9", "int4-g4", "int4-g", "int4-g64-g32", "int4-asym-sym", "int4-", "INT4", "int4g64",
                         "int4-g64x", "f16", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        quant_spec q;
        assert_int_equal(quant_spec_parse(bad[i], &q), PARE_ERR_ARG);
        assert_null(strchr(pare_last_error(), '\n'));
    }
    quant_spec q = spec_of("q4_0");
    assert_int_equal(quant_check_cols(&q, 48, "t"), PARE_ERR_ARG);
    assert_int_equal(quant_check_cols(&q, 64, "t"), PARE_OK);
}

/* ---- (c) kernels on the new types --------------------------------------------------------- */
static void test_kernels_new_types(void **state) {
    (void)state;
    enum { R = 37, C = 160, NX = 5 };
    const int types[] = {PARE_TYPE_Q4_1, PARE_TYPE_Q5_0, PARE_TYPE_Q5_1};
    float *w = malloc(sizeof(float) * R * C), *x = malloc(sizeof(float) * NX * C), *deq = malloc(sizeof(float) * R * C);
    float row[C], y[R], Y[NX * R];
    for (int i = 0; i < NX * C; i++) x[i] = (float)nrand();
    for (int ti = 0; ti < 3; ti++) {
        const int type = types[ti];
        const size_t rb = pare_row_bytes(type, C);
        uint8_t *W = malloc(rb * R);
        for (int r = 0; r < R; r++) {
            random_row(w + r * C, C, r % 5);
            k_quant_row(type, w + r * C, W + r * rb, C);
        }
        pare_tensor t = {.name = "t", .type = type, .n_dims = 2, .ne = {C, R, 1, 1}, .data = W, .nbytes = rb * R};
        for (int r = 0; r < R; r++) pare_tensor_row_f32(&t, r, deq + r * C);
        for (pare_isa isa = PARE_ISA_REF; isa <= PARE_ISA_AVX512; isa++) {
            if (k_set_isa(isa) != isa) continue;
            for (int r = 0; r < R; r++) {
                k_dequant_row(type, W + r * rb, row, C);
                assert_memory_equal(row, deq + r * C, sizeof row); /* both dequantizers: exact d q + m */
            }
            k_matvec(type, W, R, C, x, y);
            k_matmul(type, W, R, C, x, NX, Y);
            for (int r = 0; r < R; r++) {
                double ref = 0, mag = 0;
                for (int k = 0; k < C; k++) { ref += (double)deq[r * C + k] * x[k]; mag += fabs((double)deq[r * C + k] * x[k]); }
                const double tol = 1e-5 * mag + 1e-6;
                assert_true(fabs(k_dot(type, W + r * rb, x, C) - ref) <= tol);
                assert_true(fabs(y[r] - ref) <= tol);
                assert_true(fabs(Y[r] - ref) <= tol); /* token 0 of the matmul */
                for (int i = 1; i < NX; i++) {
                    double ri = 0, mi = 0;
                    for (int k = 0; k < C; k++) { ri += (double)deq[r * C + k] * x[i * C + k]; mi += fabs((double)deq[r * C + k] * x[i * C + k]); }
                    assert_true(fabs(Y[i * R + r] - ri) <= 1e-5 * mi + 1e-6);
                }
            }
        }
        k_set_isa(PARE_ISA_AVX512);
        free(W);
    }
    free(w); free(x); free(deq);
}

/* ---- (d) GPTQ on one layer ------------------------------------------------------------------- */
/* sum over tokens of ||W x - Q x||^2 with X (T x cols) */
static double out_err(const float *W, const float *Q, const float *X, int64_t rows, int64_t cols, int64_t T) {
    float *D = malloc(sizeof(float) * rows * cols), *Y = malloc(sizeof(float) * T * rows);
    for (int64_t i = 0; i < rows * cols; i++) D[i] = W[i] - Q[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)rows, (int)cols, 1.0f, X, (int)cols, D, (int)cols, 0.0f, Y,
                (int)rows);
    double s = 0;
    for (int64_t i = 0; i < T * rows; i++) s += (double)Y[i] * Y[i];
    free(D); free(Y);
    return s;
}
static double *gram_of(const float *X, int64_t T, int64_t cols) {
    double *G = calloc((size_t)(cols * cols), sizeof(double));
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < cols; i++)
            for (int64_t j = 0; j < cols; j++) G[i * cols + j] += (double)X[t * cols + i] * X[t * cols + j];
    return G;
}

static void test_gptq_beats_rtn(void **state) {
    (void)state;
    enum { R = 48, C = 128, T = 512, K = 24 };
    float *W = malloc(sizeof(float) * R * C), *Q = malloc(sizeof(float) * R * C), *X = malloc(sizeof(float) * T * C);
    /* correlated inputs: X = Z A (rank-K factors) + noise, per-channel scales over 2 decades */
    float *A = malloc(sizeof(float) * K * C), sc[C];
    for (int i = 0; i < K * C; i++) A[i] = (float)nrand();
    for (int j = 0; j < C; j++) sc[j] = (float)pow(10.0, 2 * urand() - 1);
    for (int t = 0; t < T; t++) {
        float z[K];
        for (int k = 0; k < K; k++) z[k] = (float)nrand();
        for (int j = 0; j < C; j++) {
            double v = 0.3 * nrand();
            for (int k = 0; k < K; k++) v += z[k] * A[k * C + j];
            X[t * C + j] = (float)(v * sc[j] / sqrt(K));
        }
    }
    for (int i = 0; i < R * C; i++) W[i] = (float)(nrand() * 0.05);
    double *G = gram_of(X, T, C);
    const char *specs[] = {"q4_0", "q4_1", "q5_0", "q8_0", "int4-g128", "int4-g32-asym", "int3-g64", "int3-g128-asym", "int3"};
    for (int ao = 0; ao <= 1; ao++)
        for (size_t s = 0; s < sizeof specs / sizeof *specs; s++) {
            const quant_spec q = spec_of(specs[s]);
            memcpy(Q, W, sizeof(float) * R * C);
            for (int r = 0; r < R; r++) quant_rtn_row(&q, Q + r * C, C, NULL);
            const double e_rtn = out_err(W, Q, X, R, C, T);
            memcpy(Q, W, sizeof(float) * R * C);
            gptq_opts o;
            gptq_opts_default(&o);
            o.act_order = ao;
            uint8_t *packed = q.type >= 0 ? malloc(pare_row_bytes(q.type, C) * R) : NULL;
            assert_int_equal(gptq_quantize(Q, R, C, G, T, &q, &o, packed), PARE_OK);
            const double e_gptq = out_err(W, Q, X, R, C, T);
            print_message("%-15s act-order %d: output error GPTQ %.4g, RTN %.4g (ratio %.3f)\n", specs[s], ao, e_gptq, e_rtn, e_gptq / e_rtn);
            assert_true(e_gptq < 0.8 * e_rtn);
            if (packed) { /* the blocks hold exactly GPTQ's values */
                float y[C];
                const size_t rb = pare_row_bytes(q.type, C);
                for (int r = 0; r < R; r++) {
                    k_dequant_row(q.type, packed + r * rb, y, C);
                    assert_memory_equal(y, Q + r * C, sizeof y);
                }
                free(packed);
            }
        }
    free(G); free(W); free(Q); free(X); free(A);
}

static void test_gptq_identity_is_rtn(void **state) {
    (void)state;
    enum { R = 20, C = 256 };
    /* X = [I; I; I] scaled by 0.7: orthogonal columns of equal norm, G = 3 (0.49) I */
    const int64_t T = 3 * C;
    float *X = calloc((size_t)(T * C), sizeof(float));
    for (int64_t t = 0; t < T; t++) X[t * C + t % C] = 0.7f;
    double *G = gram_of(X, T, C);
    float *W = malloc(sizeof(float) * R * C), *Q = malloc(sizeof(float) * R * C), *P = malloc(sizeof(float) * R * C);
    for (int r = 0; r < R; r++) random_row(W + r * C, C, r % 5);
    const char *specs[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "int3-g128", "int4-g64-asym", "int2-g32", "int3"};
    for (size_t s = 0; s < sizeof specs / sizeof *specs; s++)
        for (int mode = 0; mode < 3; mode++) { /* natural, act-order, static groups */
            const quant_spec q = spec_of(specs[s]);
            const size_t rb = q.type >= 0 ? pare_row_bytes(q.type, C) : 0;
            uint8_t *pa = rb ? malloc(rb * R) : NULL, *pb = rb ? malloc(rb * R) : NULL;
            memcpy(Q, W, sizeof(float) * R * C);
            memcpy(P, W, sizeof(float) * R * C);
            for (int r = 0; r < R; r++) quant_rtn_row(&q, Q + r * C, C, pa ? pa + r * rb : NULL);
            gptq_opts o;
            gptq_opts_default(&o);
            o.act_order = mode == 1;
            o.static_groups = mode == 2;
            assert_int_equal(gptq_quantize(P, R, C, G, T, &q, &o, pb), PARE_OK);
            assert_memory_equal(P, Q, sizeof(float) * R * C);
            if (rb) assert_memory_equal(pa, pb, rb * R);
            free(pa); free(pb);
        }
    free(X); free(G); free(W); free(Q); free(P);
}

/* ---- (e) models --------------------------------------------------------------------------- */
static const synth_shape g_shape = {"t-quant", 64, 2, 4, 2, 128, 300, 64};

static pare_model *make_model_scaled(uint64_t seed, float scale) {
    pare_model *m;
    assert_int_equal(synth_model(&g_shape, PARE_TYPE_F32, seed, &m), PARE_OK);
    for (int i = 0; i < m->n_tensors; i++) {
        pare_tensor *t = &m->tensors[i];
        if (t->n_dims < 2) continue;
        float *w = t->data;
        for (int64_t k = 0; k < pare_tensor_nelem(t); k++) w[k] *= scale;
    }
    return m;
}
/* std 0.2: every block moves the logits visibly */
static pare_model *make_model(uint64_t seed) { return make_model_scaled(seed, 10); }
static float *logits_of(const pare_model *m, const int32_t *tok, int n) {
    pare_ctx *c;
    assert_int_equal(pare_ctx_new(m, n, &c), PARE_OK);
    float *lg = malloc(sizeof(float) * (size_t)n * m->n_vocab);
    assert_int_equal(pare_forward(c, tok, n, 0, lg), PARE_OK);
    pare_ctx_free(c);
    return lg;
}
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(a[i] - b[i]) > d) d = fabs(a[i] - b[i]);
        if (fabs(a[i]) > mx) mx = fabs(a[i]);
    }
    return d / mx;
}
static double mse(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s / (double)n;
}
/* m saved as GGUF and loaded back (the file removed again): the loaded model */
static pare_model *gguf_roundtrip(const pare_model *m) {
    char path[] = "/tmp/pare-test-quant-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(pare_model_save(m, path, "gguf"), PARE_OK);
    pare_model *c;
    assert_int_equal(pare_model_load(path, NULL, &c), PARE_OK);
    unlink(path);
    return c;
}
static pare_tensor *layer_mat(pare_layer *L, int k) {
    pare_tensor *t[7] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
    return t[k];
}

static void test_model_q8_0(void **state) {
    (void)state;
    enum { N = 24 };
    int32_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = 3 + (int32_t)(urand() * 290);
    /* std 0.06: at std 0.2 this 2-block model amplifies weight noise ~27x more than F16
     * rounding does (q8_0: 4% of the largest logit, F16: 0.14%); here q8_0 moves ~1.2% */
    pare_model *a = make_model_scaled(5, 3), *b = make_model_scaled(5, 3);
    float *la = logits_of(a, tok, N);
    quant_opts o = {.method = QUANT_RTN};
    o.spec = spec_of("q8_0");
    gptq_opts_default(&o.gptq);
    quant_report rep;
    assert_int_equal(quant_model(b, NULL, &o, 0, &rep), PARE_OK);
    assert_int_equal(rep.n, 7 * g_shape.n_layer);
    assert_true(fabs(rep.bits / (double)rep.numel - 8.5) < 1e-12);
    for (int l = 0; l < b->n_layer; l++)
        for (int k = 0; k < 7; k++) {
            pare_tensor *t = layer_mat(&b->layers[l], k), *s = layer_mat(&a->layers[l], k);
            assert_int_equal(t->type, PARE_TYPE_Q8_0);
            uint8_t *want = malloc(t->nbytes);
            for (int64_t r = 0; r < t->ne[1]; r++)
                k_quant_row(PARE_TYPE_Q8_0, (float *)s->data + r * s->ne[0], want + r * pare_row_bytes(PARE_TYPE_Q8_0, s->ne[0]), s->ne[0]);
            assert_memory_equal(t->data, want, t->nbytes);
            free(want);
        }
    assert_int_equal(b->tok_embd->type, PARE_TYPE_F32);
    assert_int_equal(b->output->type, PARE_TYPE_F32);
    assert_memory_equal(b->output->data, a->output->data, a->output->nbytes);
    float *lb = logits_of(b, tok, N);
    const double d = rel_diff(la, lb, (size_t)N * a->n_vocab);
    print_message("q8_0 model: max |logit diff| / max |logit| = %.3g\n", d);
    assert_true(d < 0.03);
    /* through a GGUF file and back: the same logits */
    pare_model *c = gguf_roundtrip(b);
    assert_int_equal(c->layers[0].wq->type, PARE_TYPE_Q8_0);
    float *lc = logits_of(c, tok, N);
    assert_memory_equal(lb, lc, sizeof(float) * N * a->n_vocab);
    pare_model_free(c);
    free(la); free(lb); free(lc);
    pare_model_free(a); pare_model_free(b);
}

static void test_model_new_types_roundtrip(void **state) {
    (void)state;
    const char *types[] = {"q4_1", "q5_0", "q5_1", "int3-g32-asym"};
    enum { N = 16 };
    int32_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = 3 + (int32_t)(urand() * 290);
    for (int ti = 0; ti < 4; ti++) {
        pare_model *a = make_model(9), *b = make_model(9);
        quant_opts o = {.method = QUANT_RTN, .head = 1};
        o.spec = spec_of(types[ti]);
        gptq_opts_default(&o.gptq);
        quant_report rep;
        assert_int_equal(quant_model(b, NULL, &o, 0, &rep), PARE_OK);
        assert_int_equal(rep.n, 7 * g_shape.n_layer + 1); /* + the head */
        assert_true(rep.head);
        const int want_type = o.spec.type >= 0 ? o.spec.type : PARE_TYPE_F32;
        assert_int_equal(b->output->type, want_type);
        assert_int_equal(b->tok_embd->type, PARE_TYPE_F32);
        for (int l = 0; l < b->n_layer; l++)
            for (int k = 0; k < 7; k++) {
                pare_tensor *t = layer_mat(&b->layers[l], k), *s = layer_mat(&a->layers[l], k);
                assert_int_equal(t->type, want_type);
                const int64_t C = s->ne[0];
                float *x = malloc(sizeof(float) * C), *y = malloc(sizeof(float) * C);
                for (int64_t r = 0; r < s->ne[1]; r++) {
                    memcpy(x, (float *)s->data + r * C, sizeof(float) * C);
                    quant_rtn_row(&o.spec, x, C, NULL);
                    pare_tensor_row_f32(t, r, y);
                    assert_memory_equal(x, y, sizeof(float) * C);
                }
                free(x); free(y);
            }
        float *lb = logits_of(b, tok, N);
        pare_model *c = gguf_roundtrip(b);
        assert_int_equal(c->layers[1].w_down->type, want_type);
        float *lc = logits_of(c, tok, N);
        assert_memory_equal(lb, lc, sizeof(float) * N * a->n_vocab);
        free(lb); free(lc);
        pare_model_free(a); pare_model_free(b); pare_model_free(c);
    }
}

/* GPTQ through the calibration pipeline: closer to the F32 model than RTN on the calibration
 * tokens themselves */
static void test_model_gptq(void **state) {
    (void)state;
    calib_data cd = {.n = 8, .T = 32};
    cd.n_text_tokens = cd.n * cd.T;
    cd.ids = malloc(sizeof(int32_t) * (size_t)(cd.n * cd.T));
    for (int i = 0; i < cd.n * cd.T; i++) cd.ids[i] = 3 + (int32_t)(urand() * 290);
    const char *types[] = {"q4_0", "int3-g64-asym"};
    for (int ti = 0; ti < 2; ti++) {
        pare_model *a = make_model(11), *r = make_model(11), *g = make_model(11);
        quant_opts o = {.method = QUANT_RTN};
        o.spec = spec_of(types[ti]);
        gptq_opts_default(&o.gptq);
        quant_report rep;
        assert_int_equal(quant_model(r, NULL, &o, 0, &rep), PARE_OK);
        o.method = QUANT_GPTQ;
        assert_int_equal(quant_model(g, &cd, &o, 0, &rep), PARE_OK);
        assert_int_equal(rep.n, 7 * g_shape.n_layer);
        double er = 0, eg = 0;
        for (int w = 0; w < cd.n; w++) {
            float *la = logits_of(a, cd.ids + w * cd.T, cd.T), *lr = logits_of(r, cd.ids + w * cd.T, cd.T),
                  *lg = logits_of(g, cd.ids + w * cd.T, cd.T);
            er += mse(la, lr, (size_t)cd.T * a->n_vocab);
            eg += mse(la, lg, (size_t)cd.T * a->n_vocab);
            free(la); free(lr); free(lg);
        }
        print_message("%s model: logit MSE on the calibration windows GPTQ %.4g, RTN %.4g\n", types[ti], eg, er);
        assert_true(eg < er);
        pare_model_free(a); pare_model_free(r); pare_model_free(g);
    }
    /* no calibration data: refused */
    pare_model *m = make_model(1);
    quant_opts o = {.method = QUANT_GPTQ};
    o.spec = spec_of("q4_0");
    gptq_opts_default(&o.gptq);
    quant_report rep;
    assert_int_equal(quant_model(m, NULL, &o, 0, &rep), PARE_ERR_ARG);
    pare_model_free(m);
    calib_free(&cd);
}

int main(void) {
    if (!getenv("OMP_NUM_THREADS")) { omp_set_num_threads(1); openblas_set_num_threads(1); }
    const char *filter = getenv("PARE_TEST_FILTER");
    if (filter) cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_q8_0),
        cmocka_unit_test(test_fixed_q4_0),
        cmocka_unit_test(test_fixed_q4_1),
        cmocka_unit_test(test_fixed_q5_0),
        cmocka_unit_test(test_fixed_q5_1),
        cmocka_unit_test(test_random_gguf),
        cmocka_unit_test(test_generic_grids),
        cmocka_unit_test(test_spec_names),
        cmocka_unit_test(test_kernels_new_types),
        cmocka_unit_test(test_gptq_beats_rtn),
        cmocka_unit_test(test_gptq_identity_is_rtn),
        cmocka_unit_test(test_model_q8_0),
        cmocka_unit_test(test_model_new_types_roundtrip),
        cmocka_unit_test(test_model_gptq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
