/* r8.h - Q8_0 and Q4_0 matrices laid out for the int8 matvec: eight rows interleaved.
 *
 * In the GGUF layout each row's blocks lie together, so an int8 dot of one block ends in
 * eight int32 lanes that must be scaled and, at the row's end, summed across: about ten
 * vector operations per 32 weights, and Q4_0's nibbles more. That is more work per byte
 * than two Zen 3 cores can do at the DRAM bandwidth (docs/PERFORMANCE.md). Here rows come
 * in groups of eight and, for each block column b, a group stores one "group block":
 *   d[8]  the eight rows' f16 scales of block b (16 bytes)
 *   q     the rows' quants in 4-byte words: word k of row r's block (its qs bytes 4k..4k+3;
 *         k < 8 for Q8_0, k < 4 for Q4_0) at bytes 32 k + 4 r .. 32 k + 4 r + 3
 * So one 32-byte load holds a word of each of the eight rows; x's matching 4 bytes are
 * broadcast and each int32 lane sums one row: no horizontal sums, one scale multiply and one
 * FMA per group block. The bytes are the GGUF bytes rearranged (272 per group block for
 * Q8_0, 144 for Q4_0); the last group is padded with zero rows when rows % 8 != 0.
 * Group g, block b lies at data + (g * cols / 32 + b) * gbytes. */
#ifndef PARE_R8_H
#define PARE_R8_H

#include "../core.h"

typedef struct pare_r8 {
    int type;          /* PARE_TYPE_Q8_0 or PARE_TYPE_Q4_0 */
    int64_t rows, cols;
    int64_t groups;    /* (rows + 7) / 8 */
    size_t gbytes;     /* bytes of a group block */
    uint8_t *data;
    size_t bytes;      /* resident bytes */
} pare_r8;

/* Whether the bound ISA computes a matrix of type (rows x cols) faster from this layout:
 * Q8_0 and Q4_0 with cols % 32 == 0 on AVX2 (AVX-512 keeps its own row kernels; the
 * environment variable PARE_R8=0 turns the layout off, for comparisons). */
int k_r8_wanted(int type, int64_t cols);
/* Re-lay W (rows x cols of type Q8_0 or Q4_0, cols % 32 == 0) into *out. */
pare_status k_r8_pack(int type, const void *W, int64_t rows, int64_t cols, pare_r8 **out);
void k_r8_free(pare_r8 *w);

/* y = W x. As k_matvec does for Q8_0 and Q4_0: x rounded to int8 per block of 32 (k_xvec),
 * integer dots per block, then per block y_r += (d_r * d_x) * dot in float, block after block.
 * Every ISA computes exactly these operations in this order, so the results are the same
 * bits on each; rows split over OpenMP threads in fixed chunks. */
void k_r8_matvec(const pare_r8 *w, const float *x, float *y);
/* Y (n x rows) = X (n x cols) * W^T, by dense F32 panels, as k_matmul. */
void k_r8_matmul(const pare_r8 *w, const float *X, int64_t n, float *Y);
/* Row r as floats, exactly k_dequant_row of the GGUF row. */
void k_r8_dequant_row(const pare_r8 *w, int64_t r, float *dst);

#endif
