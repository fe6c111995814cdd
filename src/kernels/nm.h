/* nm.h - N:M-sparse weight matrices in compressed form, and their kernels.
 *
 * A matrix is N:M sparse when every row holds at most N nonzeros in each group of M
 * consecutive input columns (in the column order perm, when E-Sparse chose one). Compressed,
 * a row keeps exactly N values per group (padded with zeros where a group holds fewer) and a
 * bitmask with one bit per column saying which columns they are. With F16 values that is
 * 16 N/M + 1 bits per weight: 9 of 16 for 2:4 and 4:8, the 56.25% of the E-Sparse paper.
 * Kept values are F32, F16, BF16 or Q8_0-style int8 (one f16 scale per 32 columns, the
 * Q8_0 block of the dense row, so a Q8_0 matrix compresses losslessly).
 *
 * Layout of row r (all arrays row-major, rows back to back):
 *   vals  + r * vstride : the kept values in column order (cols / M * N of them)
 *   mask  + r * mstride : bit (c % 8) of byte c / 8 set iff column c is kept; mstride is a
 *                         whole number of 16-bit words, the bits past cols are 0
 *   scale + r * cols/32 : Q8 only, the f16 scale of columns 32 b .. 32 b + 31
 * Column c of the layout is input channel perm[c] (perm NULL: c itself). */
#ifndef PARE_NM_H
#define PARE_NM_H

#include "../core.h"

typedef struct pare_nm {
    int n, m;          /* N of every M */
    int vtype;         /* PARE_TYPE_F32, F16, BF16 or Q8_0 */
    int64_t rows, cols;
    int64_t nkeep;     /* kept values per row: cols / m * n */
    size_t vstride, mstride;
    uint8_t *vals, *mask;
    uint16_t *scale;   /* Q8_0 only */
    int32_t *perm;     /* owned copy or NULL */
    size_t bytes;      /* resident bytes of vals, mask, scale and perm (or ilv and perm) */
    uint8_t *ilv;      /* eight rows interleaved (k_nm_interleave), or NULL */
    uint64_t id;       /* set by k_nm_interleave: tells matrices apart in per-thread caches */
} pare_nm;

/* The most compact N:M pattern that W (rows x cols of type, columns read in the order perm
 * or natural) satisfies, over M in {4, 8, 16} (M dividing cols), with N = the largest number
 * of nonzeros any group holds. *n = *m = 0 when no pattern keeps at most 3/4 of the weights
 * (the scan stops as soon as that is certain, so a dense matrix costs a few rows). */
void k_nm_detect(int type, const void *W, int64_t rows, int64_t cols, const int32_t *perm, int *n, int *m);

/* Compress W (type F32, F16, BF16 or Q8_0; perm may be NULL and is copied) into N:M with
 * values of vtype (F32, F16, BF16 or Q8_0; Q8_0 needs cols % 32 == 0). Fails, naming the
 * row and group, if a group holds more than n nonzeros; n < m <= 16, cols % m == 0. */
pare_status k_nm_pack(int type, const void *W, int64_t rows, int64_t cols, const int32_t *perm, int n, int m,
                      int vtype, pare_nm **out);
void k_nm_free(pare_nm *w);

/* 2:4 with F16 values, eight rows interleaved, for the AVX2 matvec: each 32-bit lane of a
 * vector is one row, so the x gather needs no tables and no horizontal sums (the row layout
 * above gathers x with a table lookup per eight values, and that, not the bytes, bounded its
 * speed on Zen 3). Row group G (rows 8G..8G+7, the last padded with zero rows) and column
 * group g (layout columns 4g..4g+3) hold, at ilv + (G * cols / 4 + g) * 36:
 *   v0[8]  F16: the first kept value of each of the eight rows
 *   v1[8]  F16: the second
 *   pos    uint32: row j's two kept positions p0 < p1 (0-3) at bits 4j..4j+1 and 4j+2..4j+3
 * 36 bytes per 32 weights: the same 9 bits per weight.
 * 2:4 with 8-bit values interleaves too, for int8 dots against x rounded to int8 (as the
 * dense Q8_0 rows): per row group G and block b of 32 columns, at ilv + (G * cols / 32 + b)
 * * 176, the eight rows' f16 scales (16 bytes); 32 position bytes, one per row and pair of
 * column groups t (columns 32 b + 8 t .. + 7), at 16 + 8 t + j: p0 | p1 << 2 of the first
 * group, the same << 4 of the second; and 128 bytes of values, pair t, row j, at
 * 48 + 32 t + 4 j: the first group's two kept values, then the second's. So each 32-bit
 * lane of a 32-byte load holds one row's four values of a pair, and one byte shuffle of a
 * 16-byte table of x (k_nm_ilv8_xtab) per load gives each its x: 5.5 bits per weight.
 * 4:8 with F16 values interleaves per column group g of 8 (layout columns 8g..8g+7), at
 * ilv + (G * cols / 8 + g) * 76: v0[8] .. v3[8] F16 (the four kept values of each row), then
 * 12 bytes of position fields, row j's p0 | p1 << 3 | p2 << 6 | p3 << 9 at bits 12 j .. 12 j
 * + 11 (little-endian): 9.5 bits per weight, against the row layout's 9, for a matvec that
 * needs no tables (one vpermps per value slot).
 * vals, mask and scale are freed; the drivers below (matvec, dequant_row, matmul) handle
 * these forms, the per-ISA row kernels never see them.
 * k_nm_ilv_wanted: the bound ISA is AVX2, the matrix 2:4 with F16 or 8-bit values or 4:8
 * with F16 values (environment PARE_NM8=0 turns it off, for comparisons). */
int k_nm_ilv_wanted(const pare_nm *w);
pare_status k_nm_interleave(pare_nm *w);

/* y = W x (x in natural input order). Rows split over OpenMP threads in fixed chunks, so the
 * result does not depend on the thread count. Float values are used exactly with the exact
 * x; 8-bit values too, except on AVX2 for 2:4, where x (in the layout's order) is rounded to
 * int8 per block of 32 and the dots are integer, as the dense Q8_0 rows do. */
void k_nm_matvec(const pare_nm *w, const float *x, float *y);
/* Y (n x rows) = X (n x cols) * W^T, by dense F32 panels and sgemm, as k_matmul. */
void k_nm_matmul(const pare_nm *w, const float *X, int64_t n, float *Y);
/* Row r as dense floats in natural column order (zeros where pruned). */
void k_nm_dequant_row(const pare_nm *w, int64_t r, float *dst);

#endif
