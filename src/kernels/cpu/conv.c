/* CPU convolutions on one map, built on the two register-tiled kernels of rowgemm.c.
 *
 * 3x3 "same" convolution: the input is copied once into padded planes of (H+2) x (W+2) (border =
 * the pad value), and the output is computed on "wide" rows of W+2 pixels, so that each of the 9
 * taps of each input channel is a contiguous shifted view of a plane: out = sum of scaled views,
 * one long vectorised loop (the two extra columns per row are discarded). The backward pass is
 * the same kernel with flipped, transposed weights for the input gradient, and a correlation of
 * the output gradient with the shifted views for the weight gradient. */
#include "kernels/kernels.h"
#include "kernels/cpu/rowgemm.h"
#include <string.h>

static inline size_t plane_size(int H, int W) { return (size_t)(H + 2) * (W + 2) + 2; }
static inline size_t wide_size(int H, int W) { return (size_t)H * (W + 2); }

size_t k_conv3x3_col_size(int Cin, int Cout, int H, int W)
{
    const size_t PL = plane_size(H, W), n = wide_size(H, W);
    return (size_t)Cin * PL + (size_t)Cout * n + (size_t)Cout * PL + (size_t)Cin * n + (size_t)Cin * Cout * 9 + 16;
}

/* planes (C, PL): border = pad, interior = in (C, H, W) */
static void pad_planes(real *planes, const real *in, int C, int H, int W, real pad)
{
    const int Wp = W + 2;
    const size_t PL = plane_size(H, W);
    for (int c = 0; c < C; c++) {
        real *p = planes + (size_t)c * PL;
        const real *s = in + (size_t)c * H * W;
        for (int x = 0; x < Wp; x++) p[x] = pad;
        for (int y = 0; y < H; y++) {
            real *r = p + (size_t)(y + 1) * Wp;
            r[0] = pad;
            memcpy(r + 1, s + (size_t)y * W, sizeof(real) * W);
            r[W + 1] = pad;
        }
        real *last = p + (size_t)(H + 1) * Wp;
        for (int x = 0; x < Wp + 2; x++) last[x] = pad;
    }
}

static void tap_views(const real **src, const real *planes, int C, int H, int W)
{
    const size_t PL = plane_size(H, W);
    const int Wp = W + 2;
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) src[c * 9 + ky * 3 + kx] = planes + (size_t)c * PL + ky * Wp + kx;
}

/* wide (C, n) -> compact (C, H, W) */
static void unwide(real *out, const real *wide, int C, int H, int W)
{
    const size_t n = wide_size(H, W);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            memcpy(out + ((size_t)c * H + y) * W, wide + c * n + (size_t)y * (W + 2), sizeof(real) * W);
}

void k_conv3x3_fwd(real *out, const real *in, const real *w, const real *b, int Cin, int Cout, int H, int W,
                   real pad, real *col)
{
    const size_t PL = plane_size(H, W), n = wide_size(H, W);
    real *planes = col, *wide = col + (size_t)Cin * PL;
    const real *src[Cin * 9];
    pad_planes(planes, in, Cin, H, W, pad);
    tap_views(src, planes, Cin, H, W);
    rows_combine(wide, n, Cout, w, (size_t)Cin * 9, b, src, Cin * 9, n);
    unwide(out, wide, Cout, H, W);
}

void k_conv3x3_bwd(real *din, real *dw, real *db, const real *dout, const real *in, const real *w, int Cin,
                   int Cout, int H, int W, real pad, real *col)
{
    const size_t PL = plane_size(H, W), n = wide_size(H, W);
    const int Wp = W + 2;
    real *planes = col, *dwide = planes + (size_t)Cin * PL, *dplanes = dwide + (size_t)Cout * n;
    real *dinwide = dplanes + (size_t)Cout * PL, *wflip = dinwide + (size_t)Cin * n;
    const real *src[(Cin > Cout ? Cin : Cout) * 9];
    /* weight gradient: correlate the output gradient (wide, zero in the extra columns) with
     * the 9 shifted views of each padded input plane */
    pad_planes(planes, in, Cin, H, W, pad);
    tap_views(src, planes, Cin, H, W);
    for (int c = 0; c < Cout; c++) {
        real *d = dwide + c * n;
        const real *s = dout + (size_t)c * H * W;
        for (int y = 0; y < H; y++) {
            memcpy(d + (size_t)y * Wp, s + (size_t)y * W, sizeof(real) * W);
            d[(size_t)y * Wp + W] = d[(size_t)y * Wp + W + 1] = 0;
        }
    }
    rows_correlate(dw, (size_t)Cin * 9, Cout, dwide, n, src, Cin * 9, n);
    if (db)
        for (int c = 0; c < Cout; c++) {
            const real *s = dout + (size_t)c * H * W;
            real acc = 0;
            for (int i = 0; i < H * W; i++) acc += s[i];
            db[c] += acc;
        }
    if (!din) return;
    /* input gradient: a "same" convolution of the zero-padded output gradient with the weights
     * transposed (in <-> out) and flipped (tap k -> 8 - k) */
    for (int ci = 0; ci < Cin; ci++)
        for (int co = 0; co < Cout; co++)
            for (int k = 0; k < 9; k++) wflip[((size_t)ci * Cout + co) * 9 + k] = w[((size_t)co * Cin + ci) * 9 + 8 - k];
    pad_planes(dplanes, dout, Cout, H, W, 0);
    tap_views(src, dplanes, Cout, H, W);
    rows_combine(dinwide, n, Cin, wflip, (size_t)Cout * 9, NULL, src, Cout * 9, n);
    unwide(din, dinwide, Cin, H, W);
}

void k_conv1x1_fwd(real *out, const real *in, const real *w, const real *b, int Cin, int Cout, int HW)
{
    const real *src[Cin];
    for (int c = 0; c < Cin; c++) src[c] = in + (size_t)c * HW;
    rows_combine(out, HW, Cout, w, Cin, b, src, Cin, HW);
}

void k_conv1x1_bwd(real *din, real *dw, real *db, const real *dout, const real *in, const real *w, int Cin,
                   int Cout, int HW)
{
    const real *src[Cin > Cout ? Cin : Cout];
    for (int c = 0; c < Cin; c++) src[c] = in + (size_t)c * HW;
    rows_correlate(dw, Cin, Cout, dout, HW, src, Cin, HW);
    if (db)
        for (int co = 0; co < Cout; co++) {
            const real *d = dout + (size_t)co * HW;
            real s = 0;
            for (int i = 0; i < HW; i++) s += d[i];
            db[co] += s;
        }
    if (din) {
        real wt[Cin * Cout];
        for (int i = 0; i < Cin; i++)
            for (int o = 0; o < Cout; o++) wt[i * Cout + o] = w[o * Cin + i];
        for (int o = 0; o < Cout; o++) src[o] = dout + (size_t)o * HW;
        rows_combine(din, HW, Cin, wt, Cout, NULL, src, Cout, HW);
    }
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
