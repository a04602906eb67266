/* CPU convolutions on a group of maps, built on the two register-tiled kernels of rowgemm.c.
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

/* GCC mistakes the variable-length tap-pointer arrays below for uninitialised reads. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

/* G maps side by side: the padded planes of one channel for all G maps are contiguous, so one
 * shifted view covers every map, and the "wide" output rows run across map boundaries (the two
 * extra columns per row and two extra rows per map are discarded). */
/* Rows are rounded up to whole kernel tiles (ROUND elements), computing a few discarded values
 * instead of running a slow remainder path; planes carry the slack that lets the shifted views
 * read that far. */
#define ROUND 16   /* one vector: the kernels have 4, 2 and 1-vector tiles */
static inline size_t round_up(size_t n) { return (n + ROUND - 1) / ROUND * ROUND; }
static inline size_t map_plane(int H, int W) { return (size_t)(H + 2) * (W + 2); }
static inline size_t wide_size(int H, int W, int G)
{
    return round_up((size_t)(G - 1) * map_plane(H, W) + (size_t)H * (W + 2));
}
static inline size_t plane_size(int H, int W, int G)
{
    size_t need = wide_size(H, W, G) + 2 * (size_t)(W + 2) + 2, have = (size_t)G * map_plane(H, W);
    return need > have ? need : have;
}

size_t k_conv3x3_scratch(int Cin, int Cout, int H, int W, int G)
{
    const size_t PL = plane_size(H, W, G), n = wide_size(H, W, G);
    size_t general = (size_t)Cin * PL + (size_t)Cout * n + (size_t)Cout * PL + (size_t)Cin * n + (size_t)Cin * Cout * 9 + 16;
    size_t centre = 2 * (size_t)Cin * Cout + Cout + k_conv1x1_scratch(Cin, Cout, 1, G) + 16;
    return general > centre ? general : centre;
}

/* planes (C, PL): for each channel, G padded maps of (H+2) x (W+2), border = pad; in is (G, C, H, W) */
static void pad_planes(real *planes, const real *in, int C, int H, int W, int G, real pad)
{
    const int Wp = W + 2;
    const size_t PL = plane_size(H, W, G), MP = map_plane(H, W);
    for (int c = 0; c < C; c++) {
        real *pc = planes + (size_t)c * PL;
        for (int g = 0; g < G; g++) {
            real *p = pc + (size_t)g * MP;
            const real *s = in + ((size_t)g * C + c) * H * W;
            for (int x = 0; x < Wp; x++) p[x] = pad;
            for (int y = 0; y < H; y++) {
                real *r = p + (size_t)(y + 1) * Wp;
                r[0] = pad;
                memcpy(r + 1, s + (size_t)y * W, sizeof(real) * W);
                r[W + 1] = pad;
            }
            real *last = p + (size_t)(H + 1) * Wp;
            for (int x = 0; x < Wp; x++) last[x] = pad;
        }
        for (size_t i = (size_t)G * MP; i < PL; i++) pc[i] = pad;
    }
}

static void tap_views(const real **src, const real *planes, int C, int H, int W, int G)
{
    const size_t PL = plane_size(H, W, G);
    const int Wp = W + 2;
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) src[c * 9 + ky * 3 + kx] = planes + (size_t)c * PL + ky * Wp + kx;
}

/* wide (C, n) -> (G, C, H, W) */
static void unwide(real *out, const real *wide, int C, int H, int W, int G)
{
    const size_t n = wide_size(H, W, G), MP = map_plane(H, W);
    for (int g = 0; g < G; g++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                memcpy(out + (((size_t)g * C + c) * H + y) * W, wide + c * n + g * MP + (size_t)y * (W + 2),
                       sizeof(real) * W);
}

/* (G, C, H, W) -> wide (C, n) with zeros in the discarded positions */
static void to_wide(real *wide, const real *in, int C, int H, int W, int G)
{
    const size_t n = wide_size(H, W, G), MP = map_plane(H, W);
    memset(wide, 0, sizeof(real) * C * n);
    for (int g = 0; g < G; g++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                memcpy(wide + c * n + g * MP + (size_t)y * (W + 2), in + (((size_t)g * C + c) * H + y) * W,
                       sizeof(real) * W);
}

/* 1x1 maps (the deepest blocks): of the 9 taps only the centre sees the map, the other 8 see the
 * padding, so the convolution is a 1x1 convolution plus a constant: out = b + pad * (sum of the
 * off-centre weights) + w_centre in. 9x less work than the padded-plane form. */
static void centre_weights(real *wc, real *bc, const real *w, const real *b, int Cin, int Cout, real pad)
{
    for (int o = 0; o < Cout; o++) {
        real off = 0;
        for (int ci = 0; ci < Cin; ci++) {
            const real *k = w + ((size_t)o * Cin + ci) * 9;
            wc[(size_t)o * Cin + ci] = k[4];
            for (int t = 0; t < 9; t++) if (t != 4) off += k[t];
        }
        bc[o] = (b ? b[o] : 0) + pad * off;
    }
}

void k_conv3x3_fwd(real *out, const real *in, const real *w, const real *b, int Cin, int Cout, int H, int W, int G,
                   real pad, real *scratch)
{
    if (H == 1 && W == 1) {
        real *wc = scratch, *bc = wc + (size_t)Cin * Cout;
        centre_weights(wc, bc, w, b, Cin, Cout, pad);
        k_conv1x1_fwd(out, in, wc, bc, Cin, Cout, 1, G, bc + Cout);
        return;
    }
    const size_t PL = plane_size(H, W, G), n = wide_size(H, W, G);
    real *planes = scratch, *wide = scratch + (size_t)Cin * PL;
    const real *src[Cin * 9];
    pad_planes(planes, in, Cin, H, W, G, pad);
    tap_views(src, planes, Cin, H, W, G);
    rows_combine(wide, n, Cout, w, (size_t)Cin * 9, b, src, Cin * 9, n);
    unwide(out, wide, Cout, H, W, G);
}

void k_conv3x3_bwd(real *din, real *dw, real *db, const real *dout, const real *in, const real *w, int Cin,
                   int Cout, int H, int W, int G, real pad, real *scratch)
{
    const size_t PL = plane_size(H, W, G), n = wide_size(H, W, G);
    real *planes = scratch, *dwide = planes + (size_t)Cin * PL, *dplanes = dwide + (size_t)Cout * n;
    real *dinwide = dplanes + (size_t)Cout * PL, *wflip = dinwide + (size_t)Cin * n;
    const real *src[(Cin > Cout ? Cin : Cout) * 9];
    /* weight gradient: correlate the output gradient (wide, zero in the discarded positions)
     * with the 9 shifted views of each padded input plane */
    pad_planes(planes, in, Cin, H, W, G, pad);
    tap_views(src, planes, Cin, H, W, G);
    to_wide(dwide, dout, Cout, H, W, G);
    rows_correlate(dw, (size_t)Cin * 9, Cout, dwide, n, src, Cin * 9, n);
    if (db)
        for (int c = 0; c < Cout; c++) {
            const real *s = dwide + c * n;
            real acc = 0;
            #pragma omp simd reduction(+ : acc)
            for (size_t i = 0; i < n; i++) acc += s[i];
            db[c] += acc;
        }
    if (!din) return;
    /* input gradient: a "same" convolution of the zero-padded output gradient with the weights
     * transposed (in <-> out) and flipped (tap k -> 8 - k) */
    for (int ci = 0; ci < Cin; ci++)
        for (int co = 0; co < Cout; co++)
            for (int k = 0; k < 9; k++) wflip[((size_t)ci * Cout + co) * 9 + k] = w[((size_t)co * Cin + ci) * 9 + 8 - k];
    pad_planes(dplanes, dout, Cout, H, W, G, 0);
    tap_views(src, dplanes, Cout, H, W, G);
    rows_combine(dinwide, n, Cin, wflip, (size_t)Cout * 9, NULL, src, Cout * 9, n);
    unwide(din, dinwide, Cin, H, W, G);
}

/* 1x1: with G > 1 the channels are gathered channel-major, (C, G*HW), so that each row is long. */
size_t k_conv1x1_scratch(int Cin, int Cout, int HW, int G)
{
    return G > 1 ? (size_t)(2 * Cin + 2 * Cout) * round_up((size_t)HW * G) + (size_t)Cin * Cout : (size_t)Cin * Cout;
}

/* (G, C, HW) -> channel-major rows of stride ld (>= G*HW; the rest zero) */
static void gather(real *cm, size_t ld, const real *in, int C, int HW, int G)
{
    for (int c = 0; c < C; c++) {
        for (int g = 0; g < G; g++)
            memcpy(cm + c * ld + (size_t)g * HW, in + ((size_t)g * C + c) * HW, sizeof(real) * HW);
        memset(cm + c * ld + (size_t)G * HW, 0, sizeof(real) * (ld - (size_t)G * HW));
    }
}

static void scatter(real *out, const real *cm, size_t ld, int C, int HW, int G)
{
    for (int g = 0; g < G; g++)
        for (int c = 0; c < C; c++)
            memcpy(out + ((size_t)g * C + c) * HW, cm + c * ld + (size_t)g * HW, sizeof(real) * HW);
}

void k_conv1x1_fwd(real *out, const real *in, const real *w, const real *b, int Cin, int Cout, int HW, int G,
                   real *scratch)
{
    const size_t n = (size_t)HW * G;
    const real *src[Cin];
    if (G == 1) {
        for (int c = 0; c < Cin; c++) src[c] = in + (size_t)c * HW;
        rows_combine(out, HW, Cout, w, Cin, b, src, Cin, HW);
        return;
    }
    const size_t ld = round_up(n);
    real *cin = scratch, *cout = scratch + (size_t)Cin * ld;
    gather(cin, ld, in, Cin, HW, G);
    for (int c = 0; c < Cin; c++) src[c] = cin + c * ld;
    rows_combine(cout, ld, Cout, w, Cin, b, src, Cin, ld);
    scatter(out, cout, ld, Cout, HW, G);
}

void k_conv1x1_bwd(real *din, real *dw, real *db, const real *dout, const real *in, const real *w, int Cin,
                   int Cout, int HW, int G, real *scratch)
{
    size_t n = (size_t)HW * G;
    const size_t ldr = round_up(n);
    const real *src[Cin > Cout ? Cin : Cout];
    real *cin = scratch, *cd = cin + (size_t)Cin * ldr, *cdin = cd + (size_t)Cout * ldr;
    real *wt = G > 1 ? cdin + (size_t)Cin * ldr : scratch;
    const real *xin = in, *d = dout;
    size_t ld = HW;
    if (G > 1) {
        gather(cin, ldr, in, Cin, HW, G);
        gather(cd, ldr, dout, Cout, HW, G);
        xin = cin;
        d = cd;
        ld = n = ldr;
    }
    mat_correlate(dw, Cin, Cout, d, ld, xin, ld, Cin, n);
    if (db)
        for (int co = 0; co < Cout; co++) {
            const real *dd = d + co * ld;
            real s = 0;
            #pragma omp simd reduction(+ : s)
            for (size_t i = 0; i < n; i++) s += dd[i];
            db[co] += s;
        }
    if (din) {
        for (int i = 0; i < Cin; i++)
            for (int o = 0; o < Cout; o++) wt[i * Cout + o] = w[o * Cin + i];
        for (int o = 0; o < Cout; o++) src[o] = d + o * ld;
        if (G > 1) {
            rows_combine(cdin, ld, Cin, wt, Cout, NULL, src, Cout, ld);
            scatter(din, cdin, ld, Cin, HW, G);
        } else
            rows_combine(din, HW, Cin, wt, Cout, NULL, src, Cout, n);
    }
}

void k_relu(real *y, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : 0;
}

void k_relu_bwd(real *dy, const real *y, size_t n)
{
    /* a select, not a conditional store: GCC vectorises this form (masked moves) */
#pragma omp simd
    for (size_t i = 0; i < n; i++) dy[i] = y[i] > 0 ? dy[i] : 0;
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

/* ---- padded planes (kernels.h) */
/* lead: the elements before map 0's top-left border corner, so that the origin (its first pixel)
 * is a whole number of vectors into the plane: the kernels' output stores and the gradient rows
 * they read are then aligned (a 64-byte access at a 4-byte offset touches two cache lines). The
 * plane size is rounded to whole vectors so that every plane of a run starts aligned. */
typedef struct { int bw, Wp; size_t lead, MP, n, PL, org; } plane_geom;

static plane_geom geom(int H, int W, int G)
{
    plane_geom g;
    g.bw = !(H == 1 && W == 1);
    g.Wp = W + 2 * g.bw;
    g.MP = (size_t)(H + 2 * g.bw) * g.Wp;
    const size_t corner = (size_t)g.bw * (g.Wp + 1);   /* the origin's offset from the corner */
    g.lead = (ROUND - corner % ROUND) % ROUND;
    g.org = g.lead + corner;
    g.n = round_up((size_t)(G - 1) * g.MP + (size_t)H * g.Wp);
    /* the views of the last computed position reach lead + n - 1 + 2 * corner */
    const size_t need = g.lead + g.n + 2 * corner, have = g.lead + (size_t)G * g.MP;
    g.PL = round_up(need > have ? need : have);
    return g;
}

size_t k_plane_size(int H, int W, int G) { return geom(H, W, G).PL; }
size_t k_plane_origin(int H, int W) { return geom(H, W, 1).org; }
size_t k_plane_map(int H, int W) { return geom(H, W, 1).MP; }
int k_plane_row(int H, int W) { return geom(H, W, 1).Wp; }
size_t k_plane_map_bound(int H, int W) { return round_up(geom(H, W, 1).MP + 2 * (size_t)(W + 3) + 3 * ROUND); }
/* Maps of at most 4x4 pixels: the border would be most of the computed positions (36 of them for
 * 16 pixels at 4x4, 16 for 4 at 2x2), so the 3x3 convolutions gather their taps into compact
 * columns (im2col: 9 Cin rows of G*H*W pixels) and scatter the result into the output's planes. */
static inline int use_cols(const plane_geom *q, int H, int W) { return q->bw && H * W <= 16; }
static inline size_t cols_n(int H, int W, int G) { return round_up((size_t)G * H * W); }

size_t k_conv_planes_scratch(int Cin, int Cout, int H, int W, int G)
{
    size_t s = 10 * (size_t)Cin * Cout + Cout + 16;
    const plane_geom q = geom(H, W, G);
    if (use_cols(&q, H, W)) s += (size_t)(10 * Cin + 10 * Cout) * cols_n(H, W, G);
    return s;
}

/* cols (C*taps, nc): tap t of channel c at pixel (y, x) of map g, read from the planes (border
 * included); taps = 9, or 1 for the centre tap alone (the interior). Columns past G*H*W are 0. */
static void planes_to_cols(real *cols, size_t nc, const real *planes, int C, int taps, int H, int W, int G,
                           const plane_geom *q)
{
    const size_t np = (size_t)G * H * W;
    for (int c = 0; c < C; c++)
        for (int t = 0; t < taps; t++) {
            const int ky = taps == 9 ? t / 3 : 1, kx = taps == 9 ? t % 3 : 1;
            real *r = cols + ((size_t)c * taps + t) * nc;
            const real *p = planes + (size_t)c * q->PL + q->lead + (size_t)ky * q->Wp + kx;
            /* rows of a compile-time width for the usual sizes, so that each is a single move */
            WIDTH_SWITCH(W, for (int g = 0; g < G; g++)
                                for (int y = 0; y < H; y++)
                                    for (int x = 0; x < WC; x++)
                                        r[((size_t)g * H + y) * WC + x] = p[(size_t)g * q->MP + (size_t)y * q->Wp + x])
            for (size_t i = np; i < nc; i++) r[i] = 0;
        }
}

/* the interiors of planes (C) from compact rows (C, nc) */
static void cols_to_planes(real *planes, const real *res, size_t nc, int C, int H, int W, int G, const plane_geom *q)
{
    for (int c = 0; c < C; c++) {
        real *p = planes + (size_t)c * q->PL + q->org;
        const real *r = res + (size_t)c * nc;
        WIDTH_SWITCH(W, for (int g = 0; g < G; g++)   /* rows of a compile-time width */
                            for (int y = 0; y < H; y++)
                                for (int x = 0; x < WC; x++)
                                    p[(size_t)g * q->MP + (size_t)y * q->Wp + x] = r[((size_t)g * H + y) * WC + x])
    }
}

/* keep[i] = 1 at the pixels of the planes' geometry, 0 on the border and the slack */
static void pixel_mask(real *keep, const plane_geom *q, int H, int W, int G)
{
    memset(keep, 0, sizeof(real) * q->PL);
    for (int g = 0; g < G; g++)
        for (int r = 0; r < H; r++)
            for (int x = 0; x < W; x++) keep[q->org + (size_t)g * q->MP + (size_t)r * q->Wp + x] = 1;
}

void k_plane_border(real *planes, int C, int H, int W, int G, real pad)
{
    const plane_geom q = geom(H, W, G);
    if (q.bw && H * W <= 64 && C >= 4 && q.PL <= 16384) {
        /* small maps, mostly border (20 of 36 positions at 4x4): one vectorised select per
         * channel over the whole plane instead of many scattered stores */
        real keep[q.PL];
        pixel_mask(keep, &q, H, W, G);
        for (int c = 0; c < C; c++) {
            real *pc = planes + (size_t)c * q.PL;
#pragma omp simd
            for (size_t i = 0; i < q.PL; i++) pc[i] = keep[i] != 0 ? pc[i] : pad;
        }
        return;
    }
    for (int c = 0; c < C; c++) {
        real *pc = planes + (size_t)c * q.PL;
        if (q.bw)
            for (int g = 0; g < G; g++) {
                real *p = pc + q.lead + (size_t)g * q.MP;
                for (int x = 0; x < q.Wp; x++) p[x] = pad;
                for (int y = 1; y <= H; y++) { p[(size_t)y * q.Wp] = pad; p[(size_t)y * q.Wp + W + 1] = pad; }
                real *last = p + (size_t)(H + 1) * q.Wp;
                for (int x = 0; x < q.Wp; x++) last[x] = pad;
            }
        for (size_t i = 0; i < q.lead; i++) pc[i] = pad;
        for (size_t i = q.lead + (size_t)G * q.MP; i < q.PL; i++) pc[i] = pad;
    }
}

void k_relu_bwd_planes(real *dy, const real *y, int C, int H, int W, int G)
{
    const plane_geom q = geom(H, W, G);
    if (q.PL > 16384) {   /* (a mask too large for the stack) two passes */
        k_relu_bwd(dy, y, (size_t)C * q.PL);
        k_plane_border(dy, C, H, W, G, 0);
        return;
    }
    real keep[q.PL];   /* 1 at the pixels, 0 on the border and the slack */
    pixel_mask(keep, &q, H, W, G);
    for (int c = 0; c < C; c++) {
        real *d = dy + (size_t)c * q.PL;
        const real *v = y + (size_t)c * q.PL;
#pragma omp simd
        for (size_t i = 0; i < q.PL; i++) d[i] = v[i] > 0 && keep[i] != 0 ? d[i] : 0;
    }
}

void k_to_planes(real *planes, const real *in, int C, int H, int W, int G, size_t map_stride, real pad)
{
    const plane_geom q = geom(H, W, G);
    for (int c = 0; c < C; c++) {
        real *pc = planes + (size_t)c * q.PL + q.org;
        /* rows of a few pixels: a loop, not a memcpy call each; of a compile-time width for the
         * deep blocks' sizes */
        WIDTH_SWITCH(W, for (int g = 0; g < G; g++) {
            const real *s = in + (size_t)g * map_stride + (size_t)c * H * W;
            real *p = pc + (size_t)g * q.MP;
            for (int y = 0; y < H; y++)
                for (int x = 0; x < WC; x++) p[(size_t)y * q.Wp + x] = s[(size_t)y * WC + x];
        })
    }
    k_plane_border(planes, C, H, W, G, pad);
}

/* dcols (M, nc) = w^T (M x Cout, w stored Cout x M) times rows (Cout, nc): one GEMM */
static void cols_gemm_t(real *dcols, size_t nc, const real *w, const real *rows, int M, int Cout)
{
    cblas_xgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, (int)nc, Cout, 1, w, M, rows, (int)nc, 0, dcols,
                (int)nc);
}

/* col2im: the planes (C) = the sum over the 9 taps of each tap's compact row, added at the pixel
 * the tap reads; taps that read outside the map land on the border, which is reset to 0 after. */
static void cols_to_planes_add(real *planes, const real *dcols, size_t nc, int C, int H, int W, int G,
                               const plane_geom *q)
{
    for (int c = 0; c < C; c++) {
        real *pc = planes + (size_t)c * q->PL + q->lead;
        memset(pc, 0, sizeof(real) * (size_t)G * q->MP);
        for (int t = 0; t < 9; t++) {
            const real *r = dcols + ((size_t)c * 9 + t) * nc;
            real *p = pc + (size_t)(t / 3) * q->Wp + t % 3;   /* where tap t of output pixel (0, 0) reads */
            WIDTH_SWITCH(W, for (int g = 0; g < G; g++)
                                for (int y = 0; y < H; y++)
                                    for (int x = 0; x < WC; x++)
                                        p[(size_t)g * q->MP + (size_t)y * q->Wp + x] += r[((size_t)g * H + y) * WC + x])
        }
    }
    k_plane_border(planes, C, H, W, G, 0);
}

/* The 9 views of each plane, relative to output position 0. */
static void plane_views(const real **src, const real *planes, int C, const plane_geom *q)
{
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++) src[c * 9 + ky * 3 + kx] = planes + (size_t)c * q->PL + q->lead + ky * q->Wp + kx;
}

static void plane_rows(const real **src, const real *planes, int C, const plane_geom *q)
{
    for (int c = 0; c < C; c++) src[c] = planes + (size_t)c * q->PL + q->org;
}

size_t k_conv3x3_prepared_size(int Cin, int Cout, int H, int W)
{
    return (size_t)Cout * Cin * (geom(H, W, 1).bw ? 9 : 1) + Cout;
}

void k_conv3x3_prepare(real *wp, const real *w, const real *b, const real *scale, int Cin, int Cout, int H, int W,
                       real pad)
{
    const int taps = geom(H, W, 1).bw ? 9 : 1;
    real *bp = wp + (size_t)Cout * Cin * taps;
    if (taps == 1) centre_weights(wp, bp, w, b, Cin, Cout, pad);
    else {
        memcpy(wp, w, sizeof(real) * Cout * Cin * 9);
        for (int o = 0; o < Cout; o++) bp[o] = b ? b[o] : 0;
    }
    if (scale)
        for (int o = 0; o < Cout; o++) {
            for (int i = 0; i < Cin * taps; i++) wp[(size_t)o * Cin * taps + i] *= scale[o];
            bp[o] *= scale[o];
        }
}

void k_conv3x3_planes_prepared(real *out, const real *in, const real *wp, int Cin, int Cout, int H, int W, int G,
                               int relu, real *scratch)
{
    const plane_geom q = geom(H, W, G);
    void (*run)(real *, size_t, int, const real *, size_t, const real *, const real *const *, int, size_t) =
        relu ? rows_combine_relu : rows_combine;
    const int K = Cin * (q.bw ? 9 : 1);
    const real *src[K];
    if (use_cols(&q, H, W)) {
        const size_t nc = cols_n(H, W, G);
        real *cols = scratch, *res = cols + (size_t)K * nc;
        planes_to_cols(cols, nc, in, Cin, 9, H, W, G, &q);
        for (int t = 0; t < K; t++) src[t] = cols + (size_t)t * nc;
        run(res, nc, Cout, wp, K, wp + (size_t)Cout * K, src, K, nc);
        cols_to_planes(out, res, nc, Cout, H, W, G, &q);
        return;
    }
    if (q.bw) plane_views(src, in, Cin, &q);
    else plane_rows(src, in, Cin, &q);   /* 1x1 maps: the centre tap */
    run(out + q.org, q.PL, Cout, wp, K, wp + (size_t)Cout * K, src, K, q.n);
}

void k_conv3x3_planes(real *out, const real *in, const real *w, const real *b, int Cin, int Cout, int H, int W, int G,
                      real pad, int relu, real *scratch)
{
    k_conv3x3_prepare(scratch, w, b, NULL, Cin, Cout, H, W, pad);
    k_conv3x3_planes_prepared(out, in, scratch, Cin, Cout, H, W, G, relu,
                              scratch + k_conv3x3_prepared_size(Cin, Cout, H, W));
}

void k_conv1x1_planes(real *out, const real *in, const real *w, const real *b, int Cin, int Cout, int H, int W, int G,
                      int relu)
{
    const plane_geom q = geom(H, W, G);
    const real *src[Cin];
    plane_rows(src, in, Cin, &q);
    (relu ? rows_combine_relu : rows_combine)(out + q.org, q.PL, Cout, w, Cin, b, src, Cin, q.n);
}

static void plane_bias_grad(real *db, const real *dout, int Cout, const plane_geom *q)
{
    for (int c = 0; c < Cout; c++) {
        const real *s = dout + (size_t)c * q->PL + q->org;
        real acc = 0;
        #pragma omp simd reduction(+ : acc)
        for (size_t i = 0; i < q->n; i++) acc += s[i];
        db[c] += acc;
    }
}

void k_conv3x3_planes_bwd(real *din, real *dw, real *db, const real *dout, const real *in, const real *w, int Cin,
                          int Cout, int H, int W, int G, real pad, real *scratch)
{
    const plane_geom q = geom(H, W, G);
    const int Cm = Cin > Cout ? Cin : Cout;
    if (db) plane_bias_grad(db, dout, Cout, &q);
    if (!q.bw) {
        /* centre tap: a 1x1 correlation; the other 8 taps see the constant pad */
        real *gc = scratch, *wt = gc + (size_t)Cin * Cout;
        const real *src[Cm];
        memset(gc, 0, sizeof(real) * Cin * Cout);
        mat_correlate(gc, Cin, Cout, dout, q.PL, in, q.PL, Cin, q.n);
        for (int o = 0; o < Cout; o++) {
            real sd = 0;
            if (pad != 0)
#pragma omp simd reduction(+ : sd)
                for (size_t i = 0; i < q.n; i++) sd += dout[(size_t)o * q.PL + i];
            /* the 8 outer taps of every input channel see the pad: pad * sd each (one contiguous
             * pass over the row's Cin * 9 taps); the centre tap sees the pixel */
            real *k = dw + (size_t)o * Cin * 9;
            const real ps = pad * sd;
            if (ps != 0)
#pragma omp simd
                for (int i = 0; i < Cin * 9; i++) k[i] += ps;
            for (int ci = 0; ci < Cin; ci++) k[ci * 9 + 4] += gc[(size_t)o * Cin + ci] - ps;
        }
        if (!din) return;
        for (int ci = 0; ci < Cin; ci++)
            for (int o = 0; o < Cout; o++) wt[(size_t)ci * Cout + o] = w[((size_t)o * Cin + ci) * 9 + 4];
        plane_rows(src, dout, Cout, &q);
        rows_combine(din, q.PL, Cin, wt, Cout, NULL, src, Cout, q.n);
        return;
    }
    const real *src[Cm * 9];
    const int cols = use_cols(&q, H, W);
    const size_t nc = cols ? cols_n(H, W, G) : 0;
    real *wflip = scratch, *cbuf = scratch + (size_t)Cin * Cout * 9, *cres = cbuf + (size_t)Cm * 9 * nc;
    if (cols) {   /* compact: the input's taps against the output gradient's interior */
        planes_to_cols(cbuf, nc, in, Cin, 9, H, W, G, &q);
        planes_to_cols(cres, nc, dout, Cout, 1, H, W, G, &q);
        mat_correlate(dw, (size_t)Cin * 9, Cout, cres, nc, cbuf, nc, Cin * 9, nc);
    } else {
        plane_views(src, in, Cin, &q);
        rows_correlate(dw, (size_t)Cin * 9, Cout, dout + q.org, q.PL, src, Cin * 9, q.n);
    }
    if (!din) return;
    if (cols && Cin < Cout) {
        /* fewer input than output channels: each input tap's gradient from the output gradient's
         * compact rows (already in cres) as one GEMM, W^T dout, then added into place (col2im),
         * instead of gathering the output gradient's 9 taps of Cout channels */
        cols_gemm_t(cbuf, nc, w, cres, Cin * 9, Cout);
        cols_to_planes_add(din, cbuf, nc, Cin, H, W, G, &q);
        return;
    }
    /* input gradient: the zero-bordered output gradient convolved with the weights transposed
     * (in <-> out) and flipped (tap k -> 8 - k) */
    for (int ci = 0; ci < Cin; ci++)
        for (int co = 0; co < Cout; co++)
            for (int k = 0; k < 9; k++) wflip[((size_t)ci * Cout + co) * 9 + k] = w[((size_t)co * Cin + ci) * 9 + 8 - k];
    if (cols) {
        planes_to_cols(cbuf, nc, dout, Cout, 9, H, W, G, &q);
        for (int t = 0; t < Cout * 9; t++) src[t] = cbuf + (size_t)t * nc;
        rows_combine(cres, nc, Cin, wflip, (size_t)Cout * 9, NULL, src, Cout * 9, nc);
        cols_to_planes(din, cres, nc, Cin, H, W, G, &q);
        return;
    }
    plane_views(src, dout, Cout, &q);
    rows_combine(din + q.org, q.PL, Cin, wflip, (size_t)Cout * 9, NULL, src, Cout * 9, q.n);
}

void k_conv1x1_planes_bwd(real *din, real *dw, real *db, const real *dout, const real *in, const real *w, int Cin,
                          int Cout, int H, int W, int G, real *scratch)
{
    const plane_geom q = geom(H, W, G);
    const real *src[Cin > Cout ? Cin : Cout];
    if (db) plane_bias_grad(db, dout, Cout, &q);
    mat_correlate(dw, Cin, Cout, dout + q.org, q.PL, in + q.org, q.PL, Cin, q.n);
    if (!din) return;
    real *wt = scratch;
    for (int i = 0; i < Cin; i++)
        for (int o = 0; o < Cout; o++) wt[i * Cout + o] = w[o * Cin + i];
    plane_rows(src, dout, Cout, &q);
    rows_combine(din + q.org, q.PL, Cin, wt, Cout, NULL, src, Cout, q.n);
}
