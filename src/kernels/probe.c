/* probe.c - what this machine can do, measured: memory bandwidth (read-only and STREAM
 * triad) and the float FMA peak, the denominators of pare bench's roofline ratios. */
#include "k_impl.h"

#include <omp.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Each thread sums its share as four streams at once (one stream per core stops short of
 * the DRAM bandwidth: too few misses in flight), as the matvec kernels read four rows. */
double k_probe_read_bw(void) {
    const size_t n = ((size_t)512 << 20) / sizeof(uint64_t);
    uint64_t *a = malloc(n * sizeof *a);
    if (!a) return 0;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = i;
    double best = 0;
    uint64_t sink = 0;
    for (int rep = 0; rep < 8; rep++) {
        const double t0 = now();
        uint64_t s = 0;
#pragma omp parallel reduction(+ : s)
        {
            const size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
            const size_t lo = n * t / nt, q = (n * (t + 1) / nt - lo) / 4;
            const uint64_t *p0 = a + lo, *p1 = p0 + q, *p2 = p1 + q, *p3 = p2 + q;
            uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
            for (size_t i = 0; i < q; i++) { s0 += p0[i]; s1 += p1[i]; s2 += p2[i]; s3 += p3[i]; }
            s += s0 + s1 + s2 + s3;
        }
        const double dt = now() - t0;
        sink += s;
        if (dt > 0 && (double)(n / 4 * 4 * sizeof *a) / dt > best) best = (double)(n / 4 * 4 * sizeof *a) / dt;
    }
    free(a);
    return sink == 1 ? 0 : best;
}

double k_probe_triad_bw(void) {
    const size_t n = ((size_t)128 << 20) / sizeof(float);
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    double best = 0;
    if (a && b && c) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) { a[i] = 0; b[i] = 1; c[i] = 2; }
        for (int rep = 0; rep < 10; rep++) {
            const float s = 0.5f + (float)rep;
            const double t0 = now();
#pragma omp parallel for simd schedule(static)
            for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
            const double dt = now() - t0;
            if (dt > 0 && 3.0 * (double)(n * sizeof(float)) / dt > best) best = 3.0 * (double)(n * sizeof(float)) / dt;
        }
        if (a[n / 2] == -1) best = 0; /* keep the stores */
    }
    free(a); free(b); free(c);
    return best;
}

double k_probe_fma_peak(void) {
    const pare_isa isa = k_isa();
    if (isa == PARE_ISA_REF) return 0;
    const int lanes = isa == PARE_ISA_AVX512 ? 16 : 8;
    const int64_t iters = 20000000;
    double best = 0;
    float sink = 0;
    for (int rep = 0; rep < 3; rep++) {
        int nt = 1;
        const double t0 = now();
#pragma omp parallel reduction(+ : sink)
        {
#pragma omp single
            nt = omp_get_num_threads();
            sink += isa == PARE_ISA_AVX512 ? k_fma_burst_avx512(iters) : k_fma_burst_avx2(iters);
        }
        const double dt = now() - t0, flops = 2.0 * 12.0 * lanes * (double)iters * nt;
        if (dt > 0 && flops / dt > best) best = flops / dt;
    }
    return sink == -1 ? 0 : best;
}
