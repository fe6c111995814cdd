/* numerical.c - Numerical Pruning (METHODS.md 8): the Newton-method score of the input
 * channels of an output projection and the least-squares compensation of the kept columns.
 *
 *   A = (P^T P) o G                      P: E x D output projection, G = X^T X (D x D)
 *   f(z) = 1/2 (z-1)^T (A + eps I)(z-1) + lambda/2 (1^T z - r)^2,   r = (1 - rho) D
 *   g = (A + eps I)(z - 1) + lambda (1^T z - r) 1,   H = A + eps I + lambda 1 1^T
 *   z <- z - H^-1 g(z)                   (Algorithm 1; exact after one step)
 *   compensation: P[:, S] += P[:, Pr] G[Pr, S] (G_SS + gamma I)^-1,  P[:, Pr] = 0
 *
 * eps (a tiny ridge, [O]) keeps H positive definite when a channel is dead (zero column of
 * P or zero activation): such a channel gets z = 1 - lambda (1^T z - r) / eps, the lowest. */
#include "prune.h"

#include "linalg.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

pare_status np_build_A(const float *P, int64_t E, int D, const double *G, int normalize, double *A) {
    double *Pd = pare_malloc((size_t)E * D * sizeof(double));
    if (!Pd) return PARE_ERR_NOMEM;
    for (size_t i = 0; i < (size_t)E * D; i++) Pd[i] = P[i];
    /* upper triangle of P^T P (D x D) */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, D, (int)E, 1.0, Pd, D, 0.0, A, D);
    free(Pd);
    double scale = 1;
    if (normalize) {
        double tr = 0;
        for (int j = 0; j < D; j++) tr += G[(size_t)j * D + j];
        if (tr > 0) scale = 1 / tr;
    }
    for (int i = 0; i < D; i++)
        for (int j = i; j < D; j++) {
            double v = A[(size_t)i * D + j] * G[(size_t)i * D + j] * scale;
            A[(size_t)i * D + j] = v;
            A[(size_t)j * D + i] = v;
        }
    return PARE_OK;
}

void np_gradient(const double *A, int D, double lambda, double r, double eps, const double *z, double *g) {
    double s = -r;
    for (int j = 0; j < D; j++) s += z[j];
    #pragma omp parallel for schedule(static) if (D >= 512)
    for (int i = 0; i < D; i++) {
        const double *a = A + (size_t)i * D;
        double v = eps * (z[i] - 1);
        for (int j = 0; j < D; j++) v += a[j] * (z[j] - 1);
        g[i] = v + lambda * s;
    }
}

double np_objective(const double *A, int D, double lambda, double r, double eps, const double *z) {
    double q = 0, s = -r;
    for (int i = 0; i < D; i++) {
        const double *a = A + (size_t)i * D;
        double v = eps * (z[i] - 1);
        for (int j = 0; j < D; j++) v += a[j] * (z[j] - 1);
        q += (z[i] - 1) * v;
        s += z[i];
    }
    return 0.5 * q + 0.5 * lambda * s * s;
}

pare_status np_newton(const double *A, int D, double lambda, double r, double eps, const double *z0, int iters,
                      double *z) {
    if (D <= 0) return PARE_OK;
    if (iters < 1) iters = 1;
    size_t DD = (size_t)D * D;
    double *H = pare_malloc(DD * sizeof(double)), *g = pare_malloc((size_t)D * sizeof(double));
    if (!H || !g) { free(H); free(g); return PARE_ERR_NOMEM; }
    for (size_t i = 0; i < DD; i++) H[i] = A[i] + lambda;
    for (int j = 0; j < D; j++) H[(size_t)j * D + j] += eps;
    int info, one = 1;
    dpotrf_("L", &D, H, &D, &info);
    if (info) {
        free(H); free(g);
        return pare_fail(PARE_ERR_ARG, "numerical pruning: the Newton Hessian (%d channels) is not positive definite "
                         "(LAPACK info %d); raise --np-damp", D, info);
    }
    for (int j = 0; j < D; j++) z[j] = z0 ? z0[j] : 1.0;
    for (int t = 0; t < iters; t++) {
        np_gradient(A, D, lambda, r, eps, z, g);
        dpotrs_("L", &D, &one, H, &D, g, &D, &info);
        for (int j = 0; j < D; j++) z[j] -= g[j];
    }
    free(H); free(g);
    return PARE_OK;
}

pare_status np_channel_scores(const float *P, int64_t E, int D, const double *G, double rho, const sprune_opts *o,
                              double *z) {
    double *A = pare_malloc((size_t)D * D * sizeof(double));
    if (!A) return PARE_ERR_NOMEM;
    pare_status st = np_build_A(P, E, D, G, o->np_normalize, A);
    if (!st) {
        double md = 0;
        for (int j = 0; j < D; j++) md += A[(size_t)j * D + j];
        md /= D;
        double eps = o->np_damp * md;
        if (!(eps > 0)) eps = md > 0 ? 1e-12 * md : 1.0; /* a dead layer: every channel alike */
        st = np_newton(A, D, o->np_lambda, (1.0 - rho) * D, eps, NULL, o->np_iters, z);
    }
    free(A);
    return st;
}

pare_status np_compensate(double *P, int64_t E, int D, const double *G, const uint8_t *keep, double gamma_rel) {
    int ns = 0, nr = 0;
    for (int j = 0; j < D; j++) keep[j] ? ns++ : nr++;
    if (nr == 0) return PARE_OK;
    if (ns == 0) { memset(P, 0, (size_t)E * D * sizeof(double)); return PARE_OK; }
    int *S = pare_malloc((size_t)ns * sizeof(int)), *R = pare_malloc((size_t)nr * sizeof(int));
    double *Gss = pare_malloc((size_t)ns * ns * sizeof(double)), *Grs = pare_malloc((size_t)nr * ns * sizeof(double));
    double *Pr = pare_malloc((size_t)E * nr * sizeof(double)), *B = pare_malloc((size_t)E * ns * sizeof(double));
    double *Gf = pare_malloc((size_t)ns * ns * sizeof(double));
    pare_status st = PARE_OK;
    if (!S || !R || !Gss || !Grs || !Pr || !B || !Gf) { st = PARE_ERR_NOMEM; goto done; }
    ns = nr = 0;
    for (int j = 0; j < D; j++) { if (keep[j]) S[ns++] = j; else R[nr++] = j; }
    double md = 0;
    for (int a = 0; a < ns; a++) {
        for (int b = 0; b < ns; b++) Gss[(size_t)a * ns + b] = G[(size_t)S[a] * D + S[b]];
        md += Gss[(size_t)a * ns + a];
    }
    md /= ns;
    for (int a = 0; a < nr; a++)
        for (int b = 0; b < ns; b++) Grs[(size_t)a * ns + b] = G[(size_t)R[a] * D + S[b]];
    for (int64_t e = 0; e < E; e++)
        for (int a = 0; a < nr; a++) Pr[e * nr + a] = P[e * D + R[a]];
    /* B = P[:, Pr] G[Pr, S]  (E x ns) */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)E, ns, nr, 1.0, Pr, nr, Grs, ns, 0.0, B, ns);
    /* B <- B (G_SS + gamma I)^-1: row-major E x ns is column-major ns x E, i.e. E right-hand
     * sides of the symmetric system. A failed factorization (a singular G_SS and gamma 0)
     * retries with a growing ridge. */
    double gamma = gamma_rel * md;
    int info = 1, nrhs = (int)E;
    for (int attempt = 0; attempt < 8 && info; attempt++) {
        memcpy(Gf, Gss, (size_t)ns * ns * sizeof(double));
        for (int a = 0; a < ns; a++) Gf[(size_t)a * ns + a] += gamma;
        dpotrf_("L", &ns, Gf, &ns, &info);
        if (info) gamma = gamma > 0 ? gamma * 100 : (md > 0 ? 1e-10 * md : 1e-10);
    }
    if (info) {
        st = pare_fail(PARE_ERR_ARG, "numerical pruning: the kept-channel Gram matrix (%d channels) is not positive "
                       "definite (LAPACK info %d); raise --np-gamma", ns, info);
        goto done;
    }
    dpotrs_("L", &ns, &nrhs, Gf, &ns, B, &ns, &info);
    for (int64_t e = 0; e < E; e++) {
        double *p = P + e * D;
        for (int a = 0; a < ns; a++) p[S[a]] += B[e * ns + a];
        for (int a = 0; a < nr; a++) p[R[a]] = 0;
    }
done:
    free(S); free(R); free(Gss); free(Grs); free(Pr); free(B); free(Gf);
    return st;
}
