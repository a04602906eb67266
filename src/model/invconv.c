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

/* Scratch for the C x C products: grown once per thread and kept, so that a training step
 * allocates nothing (these run once per batch, outside the parallel regions). */
static _Thread_local double *work_buf;
static _Thread_local size_t work_len;

static double *dwork(size_t n)
{
    if (n > work_len) {
        free(work_buf);
        work_buf = malloc(sizeof(double) * n);
        if (!work_buf) abort();
        work_len = n;
    }
    return work_buf;
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
static void perm_apply(double *out, const double *X, const real *perm, int C, int transpose, double *Pd)
{
    int col[C];
    if (perm_columns(col, perm, C) == 0) {
        for (int i = 0; i < C; i++) {
            /* (P X)[i] = X[col(i)];  (P^T X)[col(i)] = X[i] */
            if (transpose) memcpy(out + (size_t)col[i] * C, X + (size_t)i * C, sizeof(double) * C);
            else memcpy(out + (size_t)i * C, X + (size_t)col[i] * C, sizeof(double) * C);
        }
    } else {
        for (int i = 0; i < C * C; i++) Pd[i] = perm[i];
        cblas_dgemm(CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, CblasNoTrans, C, C, C, 1, Pd, C, X, C, 0,
                    out, C);
    }
}

/* Wd: C*C; uses 4 C*C of work after Wd. */
static void weight_double(double *Wd, const real *params, const step_offsets *s, int C, double *work)
{
    double *A = work, *B = A + C * C, *AB = B + C * C, *Pd = AB + C * C;
    factors(A, B, params, s, C);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, C, C, 1, A, C, B, C, 0, AB, C);
    perm_apply(Wd, AB, params + s->perm, C, 0, Pd);
}

void invconv_weight(real *w, const real *params, const step_offsets *s, int C)
{
    double *Wd = dwork((size_t)5 * C * C);
    weight_double(Wd, params, s, C, Wd + C * C);
    for (int i = 0; i < C * C; i++) w[i] = (real)Wd[i];
}

void invconv_weight_inverse(real *winv, const real *params, const step_offsets *s, int C)
{
    /* LAPACK works column-major: the inverse of W^T is (W^-1)^T, so inverting the row-major
     * buffer as if column-major and reading it back row-major gives W^-1. */
    int ipiv[C], info = 0, lwork = 64 * C;
    double *Wd = dwork((size_t)5 * C * C + (size_t)lwork), *work = Wd + 5 * C * C;
    weight_double(Wd, params, s, C, Wd + C * C);
    dgetrf_(&C, &C, Wd, &C, ipiv, &info);
    dgetri_(&C, Wd, &C, ipiv, work, &lwork, &info);
    for (int i = 0; i < C * C; i++) winv[i] = (real)Wd[i];
}

double invconv_fwd(real *y, const real *x, const real *w, const real *params, const step_offsets *s, int C, int HW,
                   int G, real *scratch)
{
    k_conv1x1_fwd(y, x, w, NULL, C, C, HW, G, scratch);
    const real *ls = params + s->log_s;
    double sum = 0;
    for (int i = 0; i < C; i++) sum += ls[i];
    return (double)HW * sum;   /* per map */
}

void invconv_inv(real *x, const real *y, const real *w, const real *winv, int C, int HW, int G, real *scratch, real *tmp)
{
    /* x = W^-1 y, then one step of iterative refinement, x += W^-1 (y - W x): the rounded W^-1 is
     * not the exact inverse of the rounded W, and 140 steps would accumulate that mismatch. */
    const size_t n = (size_t)C * HW * G;
    k_conv1x1_fwd(x, y, winv, NULL, C, C, HW, G, scratch);
    k_conv1x1_fwd(tmp, x, w, NULL, C, C, HW, G, scratch);
    for (size_t i = 0; i < n; i++) tmp[i] = y[i] - tmp[i];
    k_conv1x1_fwd(tmp + n, tmp, winv, NULL, C, C, HW, G, scratch);
    for (size_t i = 0; i < n; i++) x[i] += tmp[n + i];
}

void invconv_bwd(real *dx, real *dw, const real *dy, const real *x, const real *w, int C, int HW, int G, real *scratch)
{
    k_conv1x1_bwd(dx, dw, NULL, dy, x, w, C, C, HW, G, scratch);
}

/* W = P A B with G = dL/dW:  dA = P^T G B^T (strictly lower part), dB = A^T P^T G
 * (strictly upper part -> upper, diagonal -> log_s through sign*exp(log_s)). */
void invconv_weight_grad(real *grads, const real *params, const step_offsets *s, const real *dw, int C)
{
    double *A = dwork((size_t)6 * C * C), *B = A + C * C, *G = B + C * C, *PG = G + C * C, *T = PG + C * C;
    factors(A, B, params, s, C);
    for (int i = 0; i < C * C; i++) G[i] = dw[i];
    perm_apply(PG, G, params + s->perm, C, 1, T + C * C);   /* PG = P^T G */
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
}
