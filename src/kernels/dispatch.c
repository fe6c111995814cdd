/* dispatch.c - the public kernels: choose the ISA once from CPUID (capped by env PARE_ISA),
 * bind one operation table, and drive it: k_matvec splits rows over OpenMP threads, k_matmul
 * splits weight panels over them, each dequantized into a per-thread scratch and multiplied
 * by sgemm. */
#include "k_impl.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static k_ops g_ops[K_NTYPES];
static pare_isa g_isa = PARE_ISA_REF, g_cpu_isa = PARE_ISA_REF;
static int g_cpu_vnni, g_vnni;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_scratch_key;
static int g_scratch_ok;

int k_slot(int type) {
    switch (type) {
    case PARE_TYPE_F32: return K_F32;
    case PARE_TYPE_F16: return K_F16;
    case PARE_TYPE_BF16: return K_BF16;
    case PARE_TYPE_Q8_0: return K_Q8_0;
    case PARE_TYPE_Q4_0: return K_Q4_0;
    case PARE_TYPE_Q4_1: return K_Q4_1;
    case PARE_TYPE_Q5_0: return K_Q5_0;
    case PARE_TYPE_Q5_1: return K_Q5_1;
    default: return -1;
    }
}

/* ---- ISA choice ------------------------------------------------------------------------- */
static void cpu_detect(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    /* F16C from CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports does not know it) */
    unsigned a, b, c, d;
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1);
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    g_cpu_isa = avx512 ? PARE_ISA_AVX512 : avx2 ? PARE_ISA_AVX2 : PARE_ISA_REF;
    g_cpu_vnni = avx512 && __builtin_cpu_supports("avx512vnni");
#endif
}

static void bind(pare_isa isa) {
    k_ops t[K_NTYPES];
    k_ops_ref(t);
    if (isa >= PARE_ISA_AVX2) k_ops_avx2(t);
    if (isa >= PARE_ISA_AVX512) k_ops_avx512(t, g_vnni);
    memcpy(g_ops, t, sizeof t);
    g_isa = isa;
}

static void scratch_destroy(void *p);

static void init_once(void) {
    cpu_detect();
    g_vnni = g_cpu_vnni;
    pare_isa isa = g_cpu_isa;
    const char *cap = getenv("PARE_ISA");
    if (cap) {
        if (!strcmp(cap, "ref")) isa = PARE_ISA_REF;
        else if (!strcmp(cap, "avx2") && isa > PARE_ISA_AVX2) isa = PARE_ISA_AVX2;
        /* "avx512" or anything else: no cap */
    }
    g_scratch_ok = pthread_key_create(&g_scratch_key, scratch_destroy) == 0;
    bind(isa);
}

void k_init(void) { pthread_once(&g_once, init_once); }

pare_isa k_isa(void) {
    k_init();
    return g_isa;
}

const char *k_isa_name(pare_isa isa) {
    switch (isa) {
    case PARE_ISA_REF: return "ref";
    case PARE_ISA_AVX2: return "avx2";
    case PARE_ISA_AVX512: return "avx512";
    }
    return "?";
}

pare_isa k_set_isa(pare_isa isa) {
    k_init();
    bind(isa > g_cpu_isa ? g_cpu_isa : isa < PARE_ISA_REF ? PARE_ISA_REF : isa);
    return g_isa;
}

int k_set_vnni(int on) {
    k_init();
    g_vnni = on && g_cpu_vnni;
    bind(g_isa);
    return g_vnni;
}

/* ---- per-thread scratch ----------------------------------------------------------------- */
typedef struct { void *p[K_SCRATCH_N]; size_t cap[K_SCRATCH_N]; } scratch;

static void scratch_destroy(void *p) {
    scratch *s = p;
    for (int i = 0; i < K_SCRATCH_N; i++) free(s->p[i]);
    free(s);
}

static _Atomic int g_scratch_denied;
void k_scratch_deny(int on) { g_scratch_denied = on; }

void *k_scratch(int slot, size_t bytes) {
    k_init();
    if (!g_scratch_ok || g_scratch_denied) return NULL;
    scratch *s = pthread_getspecific(g_scratch_key);
    if (!s) {
        if (!(s = calloc(1, sizeof *s))) return NULL;
        if (pthread_setspecific(g_scratch_key, s)) { free(s); return NULL; }
    }
    if (s->cap[slot] < bytes) {
        free(s->p[slot]);
        size_t cap = (bytes + 4095) & ~(size_t)4095;
        s->p[slot] = aligned_alloc(64, cap);
        s->cap[slot] = s->p[slot] ? cap : 0;
    }
    return s->p[slot];
}

pare_isa k_cpu_isa(void) {
    k_init();
    return g_cpu_isa;
}

/* ---- the operations --------------------------------------------------------------------- */
/* The table entry for type, or NULL when the kernels do not handle it or n (the elements of
 * a row) is not a whole number of its blocks: then the outputs are NaN and no weight byte
 * is read (pare_row_bytes is 0 for such n, so a caller's buffer may be empty). */
static const k_ops *ops_for(int type, int64_t n) {
    k_init();
    int s = k_slot(type);
    if (s < 0 || n < 0 || n % pare_type_block(type)) return NULL;
    return &g_ops[s];
}

float k_dot(int type, const void *row, const float *x, int64_t n) {
    const k_ops *op = ops_for(type, n);
    return op ? op->dot(row, x, n) : NAN;
}

void k_dequant_row(int type, const void *src, float *dst, int64_t n) {
    const k_ops *op = ops_for(type, n);
    if (op) op->dequant(src, dst, n);
    else for (int64_t i = 0; i < n; i++) dst[i] = NAN;
}

void k_quant_row(int type, const float *src, void *dst, int64_t n) {
    if (ops_for(type, n)) k_ref_quant_row(type, src, dst, n); /* else nothing to write */
}

void *k_alloc_weights(size_t want, size_t *bytes) {
    const size_t huge = (size_t)2 << 20;
    if (want > SIZE_MAX - 64) return NULL;
    const size_t n = (want + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, n >= huge ? huge : 64, n ? n : 64)) return NULL;
#ifdef MADV_HUGEPAGE
    /* the whole 2 MiB pages only: a huge page is resident whole once touched */
    if (n >= huge) madvise(p, n / huge * huge, MADV_HUGEPAGE); /* a hint: failure leaves 4 KiB pages */
#endif
    if (bytes) *bytes = n;
    return p;
}

void k_prep_x(const float *x, int64_t n, void *buf, k_xvec *v) {
    k_init();
    (g_ops[K_Q8_0].xprep ? g_ops[K_Q8_0].xprep : k_quantize_x)(x, n, buf, v);
}

void k_matvec(int type, const void *W, int64_t rows, int64_t cols, const float *x, float *y) {
    const k_ops *op = ops_for(type, cols);
    if (!op) {
        for (int64_t r = 0; r < rows; r++) y[r] = NAN;
        return;
    }
    const size_t rb = pare_row_bytes(type, cols);
    k_xvec xv = {.x = x};
    k_rows_fn rows_fn = op->rows;
    if (op->wants_xq) {
        void *buf = cols % K_QX ? NULL : k_scratch(K_SCRATCH_X, k_xvec_bytes(cols));
        if (buf) (op->xprep ? op->xprep : k_quantize_x)(x, cols, buf, &xv);
        else rows_fn = NULL; /* no memory for the quantized x: the exact path */
    }
    const int64_t nchunk = (rows + K_ROW_CHUNK - 1) / K_ROW_CHUNK;
    const int par = (double)rows * (double)rb >= K_PAR_BYTES;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t c = 0; c < nchunk; c++) {
        const int64_t r0 = c * K_ROW_CHUNK, r1 = r0 + K_ROW_CHUNK < rows ? r0 + K_ROW_CHUNK : rows;
        if (rows_fn) {
            rows_fn(W, rb, r0, r1, cols, &xv, y);
        } else {
            for (int64_t r = r0; r < r1; r++) y[r] = op->dot((const uint8_t *)W + (size_t)r * rb, x, cols);
        }
    }
}

/* k_matmul splits W into panels of rows; each OpenMP thread takes whole panels, dequantizes
 * its panel into its own scratch (F32 W is used in place) and multiplies it with a
 * single-threaded sgemm. So OpenBLAS's own threads never run beside OpenMP's (after a
 * parallel region OpenMP's idle threads spin for a while, and the two pools then fight for
 * the cores: measured 3-4x slower on 2 cores), and the panel bounds, hence the result, do
 * not depend on the thread count. Panels: at most K_PANEL_FLOATS floats (4 MiB), at least
 * K_ROW_CHUNK rows, and at most a quarter of the rows, so that two or four threads share
 * the work. */
#define K_PANEL_FLOATS (1 << 20)

static int64_t panel_rows(int64_t rows, int64_t cols) {
    int64_t p = K_PANEL_FLOATS / cols;
    const int64_t quarter = (rows + 3) / 4;
    if (p > quarter) p = quarter;
    p = (p + K_ROW_CHUNK - 1) / K_ROW_CHUNK * K_ROW_CHUNK;
    return p < K_ROW_CHUNK ? K_ROW_CHUNK : p;
}

void k_matmul_panels(const k_panel_src *src, int64_t rows, int64_t cols, const float *X, int64_t n, float *Y) {
    if (n <= 0 || rows <= 0) return;
    const int blas_ok = n <= INT_MAX && rows <= INT_MAX && cols <= INT_MAX;
    const int64_t P = panel_rows(rows, cols), npanel = (rows + P - 1) / P;
    /* AVX-512 and AVX2: pare's own kernels on X transposed in blocks of 32 (AVX2: 16) tokens,
     * zero padded; PARE_GEMM_BLAS=1 keeps OpenBLAS sgemm on AVX2 (for comparisons) */
    const int own = g_isa == PARE_ISA_AVX512 || (g_isa == PARE_ISA_AVX2 && !getenv("PARE_GEMM_BLAS"));
    const int64_t TB = g_isa == PARE_ISA_AVX512 ? K_GEMM_TOKENS : K_GEMM2_TOKENS, nblk = (n + TB - 1) / TB;
    float *Xt = NULL;
    const int64_t tile = g_isa == PARE_ISA_AVX512 ? K_GEMM_ROWS : K_GEMM2_TILE;
    /* F32 weights stay in place for sgemm (on Zen 3, 2 threads, TinyLlama-1.1B shape: 0.63 of
     * the FMA peak in place, 0.56 copied tile by tile into the AVX2 kernel) */
    if (own && n >= 8 && blas_ok && !src->dense && (Xt = aligned_alloc(64, (size_t)(nblk * TB * cols) * sizeof(float)))) {
#pragma omp parallel for schedule(static) if ((double)n * cols >= 1 << 16)
        for (int64_t k = 0; k < cols; k++)
            for (int64_t b = 0; b < nblk; b++) {
                float *o = Xt + (b * cols + k) * TB;
                for (int64_t j = 0; j < TB; j++) o[j] = b * TB + j < n ? X[(b * TB + j) * cols + k] : 0.0f;
            }
    }
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
#pragma omp parallel for schedule(dynamic, 1) if (npanel > 1 && (double)n * rows * cols >= 1e6)
    for (int64_t pi = 0; pi < npanel; pi++) {
        const int64_t r0 = pi * P, p = rows - r0 < P ? rows - r0 : P;
        const float *panel = NULL;
        int64_t ldp = cols;
        if (Xt) {
            /* tile by tile: a tile of rows (14 on AVX-512, 12 on AVX2) dequantized into an
             * L2-sized buffer (a padded stride: a multiple of 4 KiB would put the rows' lines
             * in one L1 set), then multiplied with every token block while they are there */
            const int64_t ld = cols + 16;
            float *buf = k_scratch(K_SCRATCH_PANEL, (size_t)tile * (size_t)ld * sizeof(float));
            if (buf) {
                for (int64_t t0 = 0; t0 < p; t0 += tile) {
                    const int64_t pt = p - t0 < tile ? p - t0 : tile;
                    src->rows_f32(src->ctx, r0 + t0, pt, cols, ld, buf);
                    if (g_isa == PARE_ISA_AVX512) k_gemm_avx512(Xt, TB, n, buf, ld, pt, cols, Y + r0 + t0, rows);
                    else k_gemm_avx2(Xt, TB, n, buf, ld, pt, cols, Y + r0 + t0, rows);
                }
                continue;
            }
        }
        if (blas_ok && src->dense) {
            panel = src->dense + r0 * cols;
        } else if (blas_ok) {
            float *buf = k_scratch(K_SCRATCH_PANEL, (size_t)p * (size_t)ldp * sizeof(float));
            if (buf) src->rows_f32(src->ctx, r0, p, cols, ldp, buf);
            panel = buf;
        }
        if (panel)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)p, (int)cols, 1.0f, X, (int)cols,
                        panel, (int)ldp, 0.0f, Y + r0, (int)rows);
        else /* no memory for the panel (or sizes beyond BLAS ints) */
            src->slow(src->ctx, r0, p, cols, X, n, Y, rows);
    }
    openblas_set_num_threads(blas_threads);
    free(Xt);
}

typedef struct { void (*deq)(const void *ctx, int64_t r, float *dst); const void *ctx; } row_src;

static void row_src_f32(const void *c, int64_t r0, int64_t p, int64_t cols, int64_t ld, float *dst) {
    const row_src *s = c;
    (void)cols;
    for (int64_t r = 0; r < p; r++) s->deq(s->ctx, r0 + r, dst + r * ld);
}

/* no scratch for a panel: row by row through a malloc'ed buffer, dots in double (NaN without
 * memory) */
static void row_src_slow(const void *c, int64_t r0, int64_t p, int64_t cols, const float *X, int64_t n, float *Y,
                         int64_t ldy) {
    const row_src *s = c;
    float *row = malloc((size_t)cols * sizeof(float));
    for (int64_t r = r0; r < r0 + p; r++) {
        if (row) s->deq(s->ctx, r, row);
        for (int64_t i = 0; i < n; i++) {
            double d = 0;
            for (int64_t k = 0; row && k < cols; k++) d += (double)row[k] * X[i * cols + k];
            Y[i * ldy + r] = row ? (float)d : NAN;
        }
    }
    free(row);
}

void k_matmul_rows(void (*deq)(const void *ctx, int64_t r, float *dst), const void *ctx, int64_t rows, int64_t cols,
                   const float *X, int64_t n, float *Y) {
    const row_src s = {deq, ctx};
    const k_panel_src src = {NULL, row_src_f32, row_src_slow, &s};
    k_matmul_panels(&src, rows, cols, X, n, Y);
}

typedef struct { const k_ops *op; const uint8_t *W; size_t rb; } dense_src;

static void dense_rows_f32(const void *ctx, int64_t r0, int64_t p, int64_t cols, int64_t ld, float *dst) {
    const dense_src *d = ctx;
    for (int64_t r = 0; r < p; r++) d->op->dequant(d->W + (size_t)(r0 + r) * d->rb, dst + r * ld, cols);
}

static void dense_slow(const void *ctx, int64_t r0, int64_t p, int64_t cols, const float *X, int64_t n, float *Y,
                       int64_t ldy) {
    const dense_src *d = ctx;
    for (int64_t r = r0; r < r0 + p; r++)
        for (int64_t i = 0; i < n; i++) Y[i * ldy + r] = d->op->dot(d->W + (size_t)r * d->rb, X + i * cols, cols);
}

void k_matmul(int type, const void *W, int64_t rows, int64_t cols, const float *X, int64_t n,
              float *Y) {
    const k_ops *op = ops_for(type, cols);
    if (n <= 0 || rows <= 0) return;
    if (!op || cols <= 0) {
        for (int64_t i = 0; i < n * rows; i++) Y[i] = op ? 0.0f : NAN;
        return;
    }
    const dense_src d = {op, W, pare_row_bytes(type, cols)};
    const k_panel_src src = {type == PARE_TYPE_F32 ? (const float *)W : NULL, dense_rows_f32, dense_slow, &d};
    k_matmul_panels(&src, rows, cols, X, n, Y);
}
