/* kernels.h - the numeric kernels the engine runs on: a portable C reference for every
 * operation (the truth) and AVX2/AVX-512 versions chosen once at run time from CPUID.
 * Weight matrices are row-major, one row per output unit, rows in the GGUF block layout of
 * their type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1; the last three in the C
 * reference only). Activations are F32. */
#ifndef PARE_KERNELS_H
#define PARE_KERNELS_H

#include "../core.h"

typedef enum { PARE_ISA_REF = 0, PARE_ISA_AVX2 = 1, PARE_ISA_AVX512 = 2 } pare_isa;

/* Pick the best ISA the CPU has (env PARE_ISA=ref|avx2|avx512 caps it). Idempotent. */
void k_init(void);
pare_isa k_isa(void);
const char *k_isa_name(pare_isa isa);
/* Force an ISA (tests use this to compare fast paths with the reference); returns the ISA
 * actually set (capped by what the CPU has). */
pare_isa k_set_isa(pare_isa isa);

/* dot of one weight row (n elements, layout of type) with x (n floats). n must be a multiple
 * of the type's block size. (For every function here: a type the kernels do not handle, or
 * an n that is not whole blocks, gives NaN outputs and reads no weight byte; k_quant_row then
 * writes nothing.) */
float k_dot(int type, const void *row, const float *x, int64_t n);

/* y[r] = dot(row r of W, x) for r in [0, rows). Split over OpenMP threads by rows:
 * every row is computed by one thread, so the result does not depend on the thread count.
 * Q8_0/Q4_0 on AVX2/AVX-512 (as llama.cpp): x is rounded once per call to int8 in blocks of
 * 32 (scale amax/127) and the dots are integer, so y differs from the exact-x reference by
 * at most sum over blocks b of amax_b(x)/254 * sum_{j in b} |w_j| (plus float rounding).
 * k_dot, k_matmul and the reference ISA use x as it is. */
void k_matvec(int type, const void *W, int64_t rows, int64_t cols, const float *x, float *y);

/* Y (n x rows) = X (n x cols) * W^T, row-major. F32 through BLAS sgemm; other types are
 * dequantized in row panels and multiplied by sgemm. Panels are split over OpenMP threads,
 * each with a single-threaded sgemm (OpenBLAS's thread count is set to 1 for the call and
 * restored), so the result does not depend on the thread count either. */
void k_matmul(int type, const void *W, int64_t rows, int64_t cols, const float *X, int64_t n,
              float *Y);

/* Rows of a type <-> F32. Quantizers are the deterministic reference (GGUF-compatible). */
void k_dequant_row(int type, const void *src, float *dst, int64_t n);
void k_quant_row(int type, const float *src, void *dst, int64_t n);

/* Machine probes for benchmarks (all OpenMP threads, best of a few passes):
 * memory read bandwidth (bytes/s, summing a 512 MiB buffer, four streams per thread, best of
 * 8), STREAM triad bandwidth (a = b + s c over three 128 MiB arrays, counted as 3 x 4 bytes
 * per element as STREAM does, best of 10)
 * and the float FMA peak (flop/s, 2 per lane, widest vectors of the bound ISA). */
double k_probe_read_bw(void);
double k_probe_triad_bw(void);
double k_probe_fma_peak(void);

#endif
