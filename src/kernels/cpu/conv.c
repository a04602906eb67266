/* CPU convolutions: im2col + BLAS GEMM. With the spec's widths (hidden 16) these are small
 * matrices; one map per call keeps each thread's working set in cache. */
#include "kernels/kernels.h"
#include <string.h>

size_t k_conv3x3_col_size(int Cin, int H, int W) { return (size_t)Cin * 9 * H * W; }

/* col[(ci*9 + ky*3 + kx), y*W + x] = in[ci, y+ky-1, x+kx-1], or pad outside the map. */
static void im2col3x3(real *col, const real *in, int Cin, int H, int W, real pad)
{
    const int HW = H * W;
    for (int ci = 0; ci < Cin; ci++) {
        const real *src = in + (size_t)ci * HW;
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                real *dst = col + (size_t)(ci * 9 + ky * 3 + kx) * HW;
                const int dy = ky - 1, dx = kx - 1;
                for (int y = 0; y < H; y++) {
                    const int sy = y + dy;
                    real *d = dst + (size_t)y * W;
                    if (sy < 0 || sy >= H) {
                        for (int x = 0; x < W; x++) d[x] = pad;
                        continue;
                    }
                    const real *s = src + (size_t)sy * W;
                    int x0 = dx < 0 ? 1 : 0, x1 = dx > 0 ? W - 1 : W;
                    if (x0 > 0) d[0] = pad;
                    if (x1 < W) d[W - 1] = pad;
                    if (x1 > x0) memcpy(d + x0, s + x0 + dx, sizeof(real) * (size_t)(x1 - x0));
                }
            }
    }
}

/* The adjoint of im2col3x3 on the interior (padding receives no gradient). */
static void col2im3x3(real *din, const real *col, int Cin, int H, int W)
{
    const int HW = H * W;
    memset(din, 0, sizeof(real) * (size_t)Cin * HW);
    for (int ci = 0; ci < Cin; ci++) {
        real *dst = din + (size_t)ci * HW;
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) {
                const real *src = col + (size_t)(ci * 9 + ky * 3 + kx) * HW;
                const int dy = ky - 1, dx = kx - 1;
                for (int y = 0; y < H; y++) {
                    const int sy = y + dy;
                    if (sy < 0 || sy >= H) continue;
                    const real *s = src + (size_t)y * W;
                    real *d = dst + (size_t)sy * W;
                    int x0 = dx < 0 ? 1 : 0, x1 = dx > 0 ? W - 1 : W;
                    for (int x = x0; x < x1; x++) d[x + dx] += s[x];
                }
            }
    }
}

void k_conv3x3_fwd(real *out, const real *in, const real *w, const real *b, int Cin, int Cout, int H, int W,
                   real pad, real *col)
{
    const int HW = H * W, K = Cin * 9;
    im2col3x3(col, in, Cin, H, W, pad);
    for (int co = 0; co < Cout; co++) {
        real bias = b ? b[co] : 0;
        real *o = out + (size_t)co * HW;
        for (int i = 0; i < HW; i++) o[i] = bias;
    }
    cblas_xgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Cout, HW, K, 1, w, K, col, HW, 1, out, HW);
}

void k_conv3x3_bwd(real *din, real *dw, real *db, const real *dout, const real *in, const real *w, int Cin,
                   int Cout, int H, int W, real pad, real *col)
{
    const int HW = H * W, K = Cin * 9;
    im2col3x3(col, in, Cin, H, W, pad);
    /* dw (Cout x K) += dout (Cout x HW) col^T */
    cblas_xgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Cout, K, HW, 1, dout, HW, col, HW, 1, dw, K);
    if (db)
        for (int co = 0; co < Cout; co++) {
            const real *d = dout + (size_t)co * HW;
            real s = 0;
            for (int i = 0; i < HW; i++) s += d[i];
            db[co] += s;
        }
    if (din) {
        /* dcol (K x HW) = w^T dout, reusing col */
        cblas_xgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, HW, Cout, 1, w, K, dout, HW, 0, col, HW);
        col2im3x3(din, col, Cin, H, W);
    }
}

void k_conv1x1_fwd(real *out, const real *in, const real *w, const real *b, int Cin, int Cout, int HW)
{
    for (int co = 0; co < Cout; co++) {
        real bias = b ? b[co] : 0;
        real *o = out + (size_t)co * HW;
        for (int i = 0; i < HW; i++) o[i] = bias;
    }
    cblas_xgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Cout, HW, Cin, 1, w, Cin, in, HW, 1, out, HW);
}

void k_conv1x1_bwd(real *din, real *dw, real *db, const real *dout, const real *in, const real *w, int Cin,
                   int Cout, int HW)
{
    cblas_xgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Cout, Cin, HW, 1, dout, HW, in, HW, 1, dw, Cin);
    if (db)
        for (int co = 0; co < Cout; co++) {
            const real *d = dout + (size_t)co * HW;
            real s = 0;
            for (int i = 0; i < HW; i++) s += d[i];
            db[co] += s;
        }
    if (din) cblas_xgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Cin, HW, Cout, 1, w, Cin, dout, HW, 0, din, HW);
}

void k_relu(real *y, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : 0;
}

void k_relu_bwd(real *dy, const real *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(y[i] > 0)) dy[i] = 0;
}

void k_linear_fwd(real *out, const real *in, const real *W, const real *b, int M, int K)
{
    for (int m = 0; m < M; m++) {
        const real *w = W + (size_t)m * K;
        real s = b ? b[m] : 0;
        for (int k = 0; k < K; k++) s += w[k] * in[k];
        out[m] = s;
    }
}

void k_linear_bwd(real *din, real *dW, real *db, const real *dout, const real *in, const real *W, int M, int K)
{
    if (din) for (int k = 0; k < K; k++) din[k] = 0;
    for (int m = 0; m < M; m++) {
        const real g = dout[m];
        real *dw = dW + (size_t)m * K;
        const real *w = W + (size_t)m * K;
        for (int k = 0; k < K; k++) dw[k] += g * in[k];
        if (db) db[m] += g;
        if (din) for (int k = 0; k < K; k++) din[k] += w[k] * g;
    }
}
