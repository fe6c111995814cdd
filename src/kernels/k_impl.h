/* k_impl.h - internal to src/kernels: the per-type operation table that dispatch.c binds to
 * one ISA, and the helpers the ISA files share. Not part of the library's interface. */
#ifndef PARE_K_IMPL_H
#define PARE_K_IMPL_H

#include "kernels.h"
#include "nm.h"
#include "r8.h"

/* The weight types the kernels handle, as table slots. */
enum { K_F32, K_F16, K_BF16, K_Q8_0, K_Q4_0, K_Q4_1, K_Q5_0, K_Q5_1, K_NTYPES };
int k_slot(int type); /* -1 for a type the kernels do not handle */

/* x prepared once per k_matvec call. x is always the exact activation. For the int8 paths
 * (ops with wants_xq) x is also quantized in blocks of 32 (K_QX): q[i] = round(x[i] / d[b]),
 * d[b] = amax_b / 127 (a float, not f16), |q| <= 127, and s8[b] = 8 * sum_b(q), the offset
 * term of Q4_0 (its nibbles are stored +8). Rounding error per element is at most d[b] / 2.
 * A block holding inf or NaN gets d[b] = NaN, so the dot is NaN as with the exact x.
 * For kernels that give each block four int32 lanes (Q4_0 in AVX2 and AVX-512) the same
 * numbers are also laid out per group of four blocks g (blocks 4g..4g+3, full groups only):
 *   q4[128 g + 16 k + j] = q of element j of block 4g+k, q4[128 g + 64 + 16 k + j] = element
 *   16 + j (j < 16); d4[4 b + l] = d[b] and o4[4 b + l] = -s8[b] / 4, for l < 4. */
#define K_QX 32
typedef struct {
    const float *x;
    const float *d;
    const int32_t *s8;
    const int8_t *q;
    const int8_t *q4;
    const float *d4;
    const int32_t *o4;
} k_xvec;

/* quantize x for the int8 rows (k_quantize_x) */
typedef void (*k_xprep_fn)(const float *x, int64_t n, void *buf, k_xvec *v);
/* dot of one row with the exact x (n a multiple of the type's block) */
typedef float (*k_dot_fn)(const void *row, const float *x, int64_t n);
/* y[r] for rows r0 <= r < r1 of W (rows of row_bytes bytes, n elements). */
typedef void (*k_rows_fn)(const void *W, size_t row_bytes, int64_t r0, int64_t r1, int64_t n,
                          const k_xvec *x, float *y);
typedef void (*k_dequant_fn)(const void *src, float *dst, int64_t n);

typedef struct {
    k_dot_fn dot;         /* exact x */
    k_rows_fn rows;       /* matvec; NULL: dispatch loops over dot */
    k_dequant_fn dequant;
    int wants_xq;         /* rows reads the quantized x */
    k_xprep_fn xprep;     /* quantizes x for rows; NULL: k_quantize_x */
} k_ops;

/* Each ISA file fills the slots it accelerates and leaves the others as they are, so a
 * table is built as ref, then avx2 over it, then avx512 over that. vnni: use AVX512-VNNI
 * (the caller has checked CPUID). */
void k_ops_ref(k_ops ops[K_NTYPES]);
void k_ops_avx2(k_ops ops[K_NTYPES]);
void k_ops_avx512(k_ops ops[K_NTYPES], int vnni);

/* Tests and benchmarks: allow (1, the default where the CPU has it) or forbid (0) the
 * AVX512-VNNI int8 rows, and rebuild the table. Returns whether VNNI is now in use. */
int k_set_vnni(int on);

/* Quantize x (n a multiple of K_QX) as described at k_xvec into buf (k_xvec_bytes(n) bytes,
 * 64-byte aligned) and point v's fields into it. q is x / d rounded to nearest, ties to even
 * (the current rounding mode, as SIMD conversions do), so every ISA's version (k_ops.xprep)
 * gives the same bytes. */
size_t k_xvec_bytes(int64_t n);
void k_quantize_x(const float *x, int64_t n, void *buf, k_xvec *v);
/* the same through the bound ISA's version (k_ops.xprep of Q8_0) */
void k_prep_x(const float *x, int64_t n, void *buf, k_xvec *v);
/* where the arrays of k_xvec lie in buf, writable */
typedef struct { float *d; int32_t *s8; int8_t *q; int8_t *q4; float *d4; int32_t *o4; } k_xbuf;
k_xbuf k_xvec_layout(void *buf, int64_t n);
/* the block scale for amax, as k_quantize_x computes it, and 1 / it (0 for 0) */
static inline float k_xscale(float amax, float *inv) {
    const float d = amax >= 1e-30f ? amax / 127.0f : 0.0f; /* tiny: zero (1/d would overflow) */
    *inv = d != 0.0f ? 1.0f / d : 0.0f;
    return d;
}

/* The reference quantizers (ggml's quantize_row_*_ref, byte for byte). */
void k_ref_quant_row(int type, const float *src, void *dst, int64_t n);

/* Software prefetch distance (bytes ahead in a weight row) of the SIMD matvec loops. The
 * hardware prefetcher alone leaves the int8 and half-float loops (more work per byte than
 * F32) about 15% short of the DRAM bandwidth on Zen 5; 4-32 KiB ahead all measured alike. */
#ifndef K_PF
#define K_PF 8192
#endif

/* Rows per work item of k_matvec's parallel loop: fixed, so the split is the same for any
 * thread count. */
#define K_ROW_CHUNK 16
/* Work below this many weight bytes runs on the calling thread: a parallel region costs a
 * few microseconds. */
#define K_PAR_BYTES (1 << 18)

/* Memory for weights the kernels re-lay (N:M, r8): want rounded up to whole 64 bytes (*bytes
 * gets that size), 64-byte aligned, and from 2 MiB on 2 MiB aligned with its whole 2 MiB
 * pages asked to be huge pages (Linux's transparent huge pages in "madvise" mode): a matvec
 * streams through the weights, and on 4 KiB pages each page costs a TLB miss and stops the
 * hardware prefetcher. Freed with free(). */
void *k_alloc_weights(size_t want, size_t *bytes);

/* The CPU's best ISA, whatever k_set_isa or PARE_ISA chose. */
pare_isa k_cpu_isa(void);

/* Growing per-thread scratch buffers, freed when the thread exits; NULL if out of memory
 * (callers then take a path that needs none). 64-byte aligned. */
enum { K_SCRATCH_X, K_SCRATCH_PANEL, K_SCRATCH_NM, K_SCRATCH_R8, K_SCRATCH_NM8, K_SCRATCH_XT, K_SCRATCH_N };
void *k_scratch(int slot, size_t bytes);
/* Tests: make every k_scratch call fail (1) or not (0), to reach the paths that need none. */
void k_scratch_deny(int on);

/* The panel driver behind k_matmul and k_nm_matmul (see k_matmul for the scheme): W's rows
 * as F32 come from dense (F32 weights used in place) or from rows_f32 (p rows from r0 into
 * dst, cols floats each); slow computes one panel's outputs Y[i * ldy + r] without scratch. */
typedef struct k_panel_src {
    const float *dense;
    void (*rows_f32)(const void *ctx, int64_t r0, int64_t p, int64_t cols, int64_t ld, float *dst); /* row stride ld */
    void (*slow)(const void *ctx, int64_t r0, int64_t p, int64_t cols, const float *X, int64_t n, float *Y, int64_t ldy);
    const void *ctx;
} k_panel_src;
void k_matmul_panels(const k_panel_src *src, int64_t rows, int64_t cols, const float *X, int64_t n, float *Y);
/* k_matmul_panels for a layout that gives one dense F32 row at a time: deq(ctx, r, dst)
 * writes row r (cols floats, natural column order). */
void k_matmul_rows(void (*deq)(const void *ctx, int64_t r, float *dst), const void *ctx, int64_t rows, int64_t cols,
                   const float *X, int64_t n, float *Y);

/* Y[i * ldy + r] = dot(X row i, W row r) for i < n, r < p, with X given transposed in blocks
 * of 32 tokens: token 32 b + j, column k at Xt[b K 32 + 32 k + j] (ldt = 32; the padding
 * past n zero), and W (p rows of stride ldw) F32
 * (k_avx512.c; k_matmul_panels uses it in place of sgemm on AVX-512) */
#ifndef K_GEMM_ROWS
#define K_GEMM_ROWS 14   /* the kernel's register tile: weight rows ... */
#endif
#ifndef K_GEMM_TOKENS
#define K_GEMM_TOKENS 32 /* ... x tokens (a multiple of 16): the block of Xt */
#endif
void k_gemm_avx512(const float *Xt, int64_t ldt, int64_t n, const float *W, int64_t ldw, int64_t p, int64_t K, float *Y,
                   int64_t ldy);
/* The same on AVX2 (k_avx2.c), with a register tile of 16 tokens x K_GEMM2_ROWS rows, on Xt
 * in blocks of 16 tokens (ldt = 16); the driver dequantizes K_GEMM2_TILE rows (a multiple of
 * the tile) at a time. */
#ifndef K_GEMM2_ROWS
#define K_GEMM2_ROWS 6
#endif
#define K_GEMM2_TILE (2 * K_GEMM2_ROWS)
#define K_GEMM2_TOKENS 16 /* its Xt blocks (ldt) */
void k_gemm_avx2(const float *Xt, int64_t ldt, int64_t n, const float *W, int64_t ldw, int64_t p, int64_t K, float *Y,
                 int64_t ldy);

/* FMA throughput probes (probe.c): iters x 12 vector FMAs */
float k_fma_burst_avx2(int64_t iters);
float k_fma_burst_avx512(int64_t iters);

/* ---- N:M rows (nm.c, nm_avx2.c, nm_avx512.c) -------------------------------------------- */
enum { K_NM_F32, K_NM_F16, K_NM_BF16, K_NM_Q8, K_NM_NTYPES };
/* y[r] for r0 <= r < r1, x already in the layout's column order */
typedef void (*k_nm_rows_fn)(const pare_nm *w, int64_t r0, int64_t r1, const float *x, float *y);
/* row r as dense floats in the layout's column order (zeros where pruned); exact */
typedef void (*k_nm_deq_fn)(const pare_nm *w, int64_t r, float *dst);
/* y[r] for r0 <= r < r1 of 8-bit values against x quantized to int8 (k_xvec of x in the
 * layout's column order; its blocks of 32 are the values' scale blocks), as the dense Q8_0
 * rows do; NULL: the exact rows */
typedef void (*k_nm_rows_xq_fn)(const pare_nm *w, int64_t r0, int64_t r1, const k_xvec *x, float *y);
/* bytes of one block of an interleaved 2:4 F16 matrix: v0[8], v1[8] (F16), the position word;
 * of 4:8 F16: v0[8] .. v3[8], the rows' 12-bit position fields */
#define K_NM_ILV_BLOCK 36
#define K_NM_ILV48_BLOCK 76
/* rows of an interleaved 2:4 or 4:8 F16 matrix (nm.h, k_nm_interleave) for row groups g0 <= G < g1,
 * x in the layout's order; and row group G of any interleaved matrix (8-bit values too)
 * expanded to 8 dense rows (stride cols floats) */
typedef void (*k_nm_ilv_rows_fn)(const pare_nm *w, int64_t g0, int64_t g1, const float *x, float *y);
typedef void (*k_nm_ilv_deq_fn)(const pare_nm *w, int64_t G, float *dst);
/* The same for 2:4 with 8-bit values (nm.h): K_NM_ILV8_BLOCK bytes per row group and block
 * of 32 columns, at these offsets: the eight rows' f16 scales, their position bytes (column
 * pair t, row j at K_NM_ILV8_POS + 8 t + j) and their values (pair t, row j, kept value k at
 * K_NM_ILV8_VAL + 32 t + 4 j + k). */
#define K_NM_ILV8_BLOCK 176
#define K_NM_ILV8_POS 16
#define K_NM_ILV8_VAL 48
/* Their rows take x quantized (k_xvec, in the layout's order) and xt: per pair of column
 * groups (8 columns, 8 p .. 8 p + 7), 16 bytes of x's int8 values placed where the position
 * bytes index them (k_nm_ilv8_xtab); the reference ignores xt. Per block, the integer dot
 * of each row, then y_r += (d_r * d_x) * dot in float, block after block, on every ISA. */
typedef void (*k_nm_ilv8_rows_fn)(const pare_nm *w, int64_t g0, int64_t g1, const k_xvec *x, const int8_t *xt, float *y);
void k_nm_ilv8_xtab(const int8_t *q, int64_t cols, int8_t *xt);
typedef struct {
    k_nm_rows_fn rows[K_NM_NTYPES];
    k_nm_deq_fn deq[K_NM_NTYPES];
    k_nm_rows_xq_fn rows_q8xq;
    k_nm_ilv_rows_fn ilv_rows;
    k_nm_ilv_deq_fn ilv_deq;
    k_nm_ilv8_rows_fn ilv8_rows;
} k_nm_ops;
void k_nm_ops_ref(k_nm_ops *t);
void k_nm_ops_avx2(k_nm_ops *t);
void k_nm_ops_avx512(k_nm_ops *t);

/* ---- eight-row interleaved Q8_0 / Q4_0 rows (r8.c, r8_avx2.c) ---------------------------- */
/* y[r] for the rows of groups g0 <= g < g1 (r < w->rows), x quantized (k_xvec) */
typedef void (*k_r8_rows_fn)(const pare_r8 *w, int64_t g0, int64_t g1, const k_xvec *x, float *y);
typedef struct { k_r8_rows_fn rows; } k_r8_ops;
void k_r8_ops_ref(k_r8_ops *t);
void k_r8_ops_avx2(k_r8_ops *t);

#endif
