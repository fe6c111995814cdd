/* linalg.h - the few LAPACK routines pare uses (OpenBLAS provides them). */
#ifndef PARE_LINALG_H
#define PARE_LINALG_H

/* Fortran LAPACK, column-major. A symmetric matrix is its own transpose, so row-major
 * callers pass 'L' for the upper triangle of their row-major array and vice versa. */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda, double *b, const int *ldb,
             int *info);

#endif
