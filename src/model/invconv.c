/* Invertible 1x1 convolution with an LU-parametrised weight (model.md 2.2):
 * W = P (L*mask_l + I) (U*mask_u + diag(sign * exp(log_s))), y = W x at every pixel,
 * logdet = H*W*sum(log_s). W and W^-1 are built once per parameter change (flow.c caches). */
#include "model/model.h"
#include <stdlib.h>
#include <string.h>

void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info);
void dgetri_(const int *n, double *a, const int *lda, const int *ipiv, double *work, const int *lwork, int *info);

/* The factors in double: A = L*mask_l + I, B = U*mask_u + diag(sign*exp(log_s)). */
static void factors(double *A, double *B, const real *params, const step_offsets *s, int C)
{
    const real *lo = params + s->lower, *up = params + s->upper, *ls = params + s->log_s, *sg = params + s->sign;
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            A[i * C + j] = i > j ? lo[i * C + j] : i == j ? 1 : 0;
            B[i * C + j] = i < j ? up[i * C + j] : i == j ? sg[i] * exp((double)ls[i]) : 0;
        }
}

/* col[i] = the column of the 1 in row i of P_perm, or -1 if P_perm is not a permutation matrix
 * (then the products below fall back to dense multiplication). */
static int perm_columns(int *col, const real *perm, int C)
{
    for (int i = 0; i < C; i++) {
        col[i] = -1;
        for (int k = 0; k < C; k++) {
            const real v = perm[i * C + k];
            if (v == 1 && col[i] < 0) col[i] = k;
            else if (v != 0) return -1;
        }
        if (col[i] < 0) return -1;
    }
    return 0;
}

/* out = P X (P_perm times a C x C matrix), or P^T X when transpose. */
static void perm_apply(double *out, const double *X, const real *perm, int C, int transpose)
{
    int *col = malloc(sizeof(int) * C);
    if (!col) abort();
    if (perm_columns(col, perm, C) == 0) {
        for (int i = 0; i < C; i++) {
            /* (P X)[i] = X[col(i)];  (P^T X)[col(i)] = X[i] */
            if (transpose) memcpy(out + (size_t)col[i] * C, X + (size_t)i * C, sizeof(double) * C);
            else memcpy(out + (size_t)i * C, X + (size_t)col[i] * C, sizeof(double) * C);
        }
    } else {
        double *Pd = malloc(sizeof(double) * C * C);
        if (!Pd) abort();
        for (int i = 0; i < C * C; i++) Pd[i] = perm[i];
        cblas_dgemm(CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, CblasNoTrans, C, C, C, 1, Pd, C, X, C, 0,
                    out, C);
        free(Pd);
    }
    free(col);
}

static void weight_double(double *Wd, const real *params, const step_offsets *s, int C)
{
    double *A = malloc(sizeof(double) * C * C * 3), *B = A + C * C, *AB = B + C * C;
    if (!A) abort();
    factors(A, B, params, s, C);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, C, C, 1, A, C, B, C, 0, AB, C);
    perm_apply(Wd, AB, params + s->perm, C, 0);
    free(A);
}

void invconv_weight(real *w, const real *params, const step_offsets *s, int C)
{
    double *Wd = malloc(sizeof(double) * C * C);
    if (!Wd) abort();
    weight_double(Wd, params, s, C);
    for (int i = 0; i < C * C; i++) w[i] = (real)Wd[i];
    free(Wd);
}

void invconv_weight_inverse(real *winv, const real *params, const step_offsets *s, int C)
{
    /* LAPACK works column-major: the inverse of W^T is (W^-1)^T, so inverting the row-major
     * buffer as if column-major and reading it back row-major gives W^-1. */
    double *Wd = malloc(sizeof(double) * C * C);
    int *ipiv = malloc(sizeof(int) * C), info = 0, lwork = 64 * C;
    double *work = malloc(sizeof(double) * lwork);
    if (!Wd || !ipiv || !work) abort();
    weight_double(Wd, params, s, C);
    dgetrf_(&C, &C, Wd, &C, ipiv, &info);
    dgetri_(&C, Wd, &C, ipiv, work, &lwork, &info);
    for (int i = 0; i < C * C; i++) winv[i] = (real)Wd[i];
    free(Wd); free(ipiv); free(work);
}

double invconv_fwd(real *y, const real *x, const real *w, const real *params, const step_offsets *s, int C, int HW)
{
    cblas_xgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, HW, C, 1, w, C, x, HW, 0, y, HW);
    const real *ls = params + s->log_s;
    double sum = 0;
    for (int i = 0; i < C; i++) sum += ls[i];
    return (double)HW * sum;
}

void invconv_inv(real *x, const real *y, const real *winv, int C, int HW)
{
    cblas_xgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, HW, C, 1, winv, C, y, HW, 0, x, HW);
}

void invconv_bwd(real *dx, real *dw, const real *dy, const real *x, const real *w, int C, int HW)
{
    cblas_xgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, C, HW, 1, dy, HW, x, HW, 1, dw, C);
    cblas_xgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, HW, C, 1, w, C, dy, HW, 0, dx, HW);
}

/* W = P A B with G = dL/dW:  dA = P^T G B^T (strictly lower part), dB = A^T P^T G
 * (strictly upper part -> upper, diagonal -> log_s through sign*exp(log_s)). */
void invconv_weight_grad(real *grads, const real *params, const step_offsets *s, const real *dw, int C)
{
    double *A = malloc(sizeof(double) * C * C * 5), *B = A + C * C, *G = B + C * C, *PG = G + C * C, *T = PG + C * C;
    if (!A) abort();
    factors(A, B, params, s, C);
    for (int i = 0; i < C * C; i++) G[i] = dw[i];
    perm_apply(PG, G, params + s->perm, C, 1);   /* PG = P^T G */
    real *gl = grads + s->lower, *gu = grads + s->upper, *gs = grads + s->log_s;
    /* dA = PG B^T, strictly lower part */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, C, C, 1, PG, C, B, C, 0, T, C);
    for (int i = 0; i < C; i++)
        for (int j = 0; j < i; j++) gl[i * C + j] += (real)T[i * C + j];
    /* dB = A^T PG: strictly upper part -> upper, diagonal -> log_s (d diag / d log_s = diag) */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, C, C, 1, A, C, PG, C, 0, T, C);
    for (int i = 0; i < C; i++) {
        for (int j = i + 1; j < C; j++) gu[i * C + j] += (real)T[i * C + j];
        gs[i] += (real)(T[i * C + i] * B[i * C + i]);
    }
    free(A);
}
