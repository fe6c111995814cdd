/* kernels_bench.c - how close k_matvec comes to the memory bandwidth, per type and ISA.
 *
 * Build and run (from the repository root; not part of `make`):
 *   make build/libpare.a
 *   gcc -O3 -march=native -std=c11 -D_GNU_SOURCE -fopenmp -Iinclude -Isrc bench/kernels_bench.c \
 *       build/libpare.a -lopenblas -lcjson -lpcre2-8 -lm -o build/kernels_bench
 *   ./build/kernels_bench            (OMP_NUM_THREADS sets the threads; default: all cores)
 *   ./build/kernels_bench q4_0 q8_0  (only these types; skips the matmul part)
 *
 * A VM may share its memory bus and its cores with others: the bandwidth moves by 2x from one
 * minute to the next. So each matvec trial is paired with a bandwidth measurement taken
 * right before it, the medians over the trials are printed, and the CPU time other
 * processes took during the run is reported. If it is not near 0 the numbers are not
 * meaningful (with OpenMP's default spinning, a parallel region then waits for a time slice
 * of the scheduler: matvec falls to 1-2 GB/s).
 *
 * bandwidth: a STREAM-like read (sum of 64-bit words) of 256 MiB, all threads, best of 3.
 * k_matvec on a 4096 x 4096 matrix of each type and ISA: the weight bytes over the time.
 *   "cold": calls rotate over copies totalling >= 512 MiB, so the weights come from DRAM as
 *   in decoding a real model (each layer's weights read once per token); "hot": the same
 *   matrix again and again (Q8_0 and Q4_0 then sit in a 32 MiB L3: it shows the compute
 *   limit). "ratio": median over trials of cold / the paired bandwidth.
 * k_matmul 4096 x 4096 with 128 rows of X (prefill): GFLOP/s. */
#include "kernels/k_impl.h"
#include "kernels/kernels.h"

#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds all processes have used (from /proc/stat), and this process's */
static double cpu_all(void) {
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    if (!f) return 0;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
               &v[7]) != 8) v[0] = v[1] = v[2] = v[5] = v[6] = v[7] = 0;
    fclose(f);
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / sysconf(_SC_CLK_TCK); /* all but idle, iowait */
}
static double cpu_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* the STREAM-like read over a (n words), best of reps, GB/s */
static double read_bandwidth(const uint64_t *a, size_t n, int reps) {
    double best = 1e30;
    volatile uint64_t sink = 0;
    for (int rep = 0; rep < reps; rep++) {
        double t = now();
        uint64_t s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s)
        for (size_t i = 0; i < n; i++) s += a[i];
        t = now() - t;
        sink += s;
        if (t < best) best = t;
    }
    (void)sink;
    return n * sizeof(uint64_t) / best / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* GB/s of k_matvec over `copies` matrices, each called in turn, for about `secs` seconds */
static double matvec_gbs(int type, void **W, int copies, int64_t rows, int64_t cols, const float *x, float *y,
                         double secs) {
    const double bytes = (double)pare_row_bytes(type, cols) * rows;
    k_matvec(type, W[0], rows, cols, x, y); /* warm up */
    int calls = 0;
    double t0 = now(), t;
    do {
        k_matvec(type, W[calls % copies], rows, cols, x, y);
        calls++;
        t = now() - t0;
    } while (t < secs || calls < copies);
    return bytes * calls / t / 1e9;
}

#define TRIALS 5

int main(int argc, char **argv) {
    const int64_t R = 4096, C = 4096;
    const int types[] = {PARE_TYPE_F32, PARE_TYPE_F16, PARE_TYPE_BF16, PARE_TYPE_Q8_0, PARE_TYPE_Q4_0};
    k_init();
    const pare_isa top = k_set_isa(PARE_ISA_AVX512);
    printf("threads %d, best ISA %s\n", omp_get_max_threads(), k_isa_name(top));

    const size_t nbw = (size_t)1 << 25; /* 256 MiB */
    uint64_t *bwbuf = aligned_alloc(64, nbw * sizeof *bwbuf);
    float *src = malloc(R * C * sizeof *src), *x = malloc(C * sizeof *x), *y = malloc(R * sizeof *y);
    if (!bwbuf || !src || !x || !y) return 1;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nbw; i++) bwbuf[i] = i;
    srand(1);
    for (int64_t i = 0; i < R * C; i++) src[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int64_t i = 0; i < C; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;

    double bw_all[64];
    int nbw_all = 0;
    const double all0 = cpu_all(), self0 = cpu_self(), wall0 = now();
    printf("\nk_matvec %lldx%lld, medians of %d trials\n", (long long)R, (long long)C, TRIALS);
    printf("  type  isa            MiB  bandwidth  cold GB/s  hot GB/s   ratio\n");
    for (int t = 0; t < 5; t++) {
        const int type = types[t];
        int wanted = argc < 2;
        for (int a = 1; a < argc; a++) wanted |= !strcmp(argv[a], pare_type_name(type));
        if (!wanted) continue;
        const size_t bytes = pare_row_bytes(type, C) * R;
        int copies = (int)((512u << 20) / bytes) + 1;
        void **W = malloc(copies * sizeof *W);
        if (!W) return 1;
        for (int c = 0; c < copies; c++) {
            W[c] = aligned_alloc(64, (bytes + 63) / 64 * 64);
            if (!W[c]) return 1;
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < R; r++)
                k_quant_row(type, src + r * C, (char *)W[c] + r * pare_row_bytes(type, C), C);
        }
        for (int isa = PARE_ISA_REF; isa <= (int)top; isa++) {
            const int quant = type == PARE_TYPE_Q8_0 || type == PARE_TYPE_Q4_0;
            for (int vnni = 0; vnni <= (isa == PARE_ISA_AVX512 && quant); vnni++) {
                k_set_isa((pare_isa)isa);
                if (isa == PARE_ISA_AVX512 && k_set_vnni(vnni) != vnni) continue;
                const double secs = isa == PARE_ISA_REF ? 0.2 : 0.3;
                double bw[TRIALS], cold[TRIALS], hot[TRIALS], ratio[TRIALS];
                for (int k = 0; k < TRIALS; k++) {
                    bw[k] = read_bandwidth(bwbuf, nbw, 3);
                    cold[k] = matvec_gbs(type, W, copies, R, C, x, y, secs);
                    hot[k] = matvec_gbs(type, W, 1, R, C, x, y, secs / 3);
                    ratio[k] = cold[k] / bw[k];
                    if (nbw_all < 64) bw_all[nbw_all++] = bw[k];
                }
                printf("  %-5s %-12s %6.1f   %8.1f   %8.1f  %8.1f   %5.2f\n", pare_type_name(type),
                       isa == PARE_ISA_AVX512 ? (vnni ? "avx512+vnni" : "avx512") : k_isa_name((pare_isa)isa),
                       bytes / 1048576.0, median(bw, TRIALS), median(cold, TRIALS), median(hot, TRIALS),
                       median(ratio, TRIALS));
                fflush(stdout);
            }
            k_set_vnni(1);
        }
        for (int c = 0; c < copies; c++) free(W[c]);
        free(W);
    }
    if (nbw_all) {
        double mx = 0;
        for (int i = 0; i < nbw_all; i++) mx = bw_all[i] > mx ? bw_all[i] : mx;
        const double md = median(bw_all, nbw_all);
        printf("read bandwidth over all trials: median %.1f GB/s, max %.1f GB/s\n", md, mx);
    }
    /* other processes on the machine skew everything: say how busy they kept it */
    const double other = (cpu_all() - all0) - (cpu_self() - self0);
    printf("other processes used %.2f CPUs on average during the matvec runs (of %ld)\n",
           other / (now() - wall0), sysconf(_SC_NPROCESSORS_ONLN));
    if (argc >= 2) return 0;
    /* prefill: k_matmul with 128 rows of X, best ISA */
    k_set_isa(top);
    const int64_t n = 128;
    float *X = malloc(n * C * sizeof *X), *Y = malloc(n * R * sizeof *Y);
    if (!X || !Y) return 1;
    for (int64_t i = 0; i < n * C; i++) X[i] = (float)rand() / RAND_MAX - 0.5f;
    printf("\nk_matmul %lldx%lld, X %lld rows (%s)   GFLOP/s\n", (long long)R, (long long)C, (long long)n,
           k_isa_name(top));
    for (int t = 0; t < 5; t++) {
        const int type = types[t];
        const size_t rb = pare_row_bytes(type, C);
        void *W = malloc(rb * R);
        if (!W) return 1;
        for (int64_t r = 0; r < R; r++) k_quant_row(type, src + r * C, (char *)W + r * rb, C);
        k_matmul(type, W, R, C, X, n, Y);
        int calls = 0;
        double t0 = now(), el;
        do { k_matmul(type, W, R, C, X, n, Y); calls++; el = now() - t0; } while (el < 1.0);
        printf("  %-5s %8.1f\n", pare_type_name(type), 2.0 * n * R * C * calls / el / 1e9);
        free(W);
    }
    free(X); free(Y); free(src); free(x); free(y); free(bwbuf);
    return 0;
}
