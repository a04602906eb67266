/* Conditional affine coupling (model.md 2.2): xa = x[:C/2] passes; a CNN of concat(xa, condition
 * map) gives log_s, t for xb: s = (1-clamp) sigmoid(log_s + 2) + clamp, yb = (xb + t) s.
 * Works on G maps at once, tensors (G, C, H, W); c is (G, P). */
#include "model/model.h"
#include <stdlib.h>
#include <string.h>

/* The CNN's activations live in padded planes (kernels.h): conv1 reads xa's planes, writes h1's,
 * the 1x1 convolution reads those in place and writes h2's, whose border is set to 1 for the
 * zeroconv; nothing is copied between the convolutions. */
typedef struct {
    real *xa, *h1, *h2, *o, *dout, *dh2, *dh1, *din, *dwx, *T, *f, *sc, *gls, *gt, *gp, *kscr;
    size_t PL, org, MP;
    int Wr;
} cp_ws;

/* Maps of at most 4x4 pixels (their 3x3 convolutions go through compact columns) take the
 * condition channels as real input channels of conv1: a few more taps per output, and no table
 * pass over h1, whose rows are too short there for that pass to be cheap. Larger maps use the
 * per-border-class table (it halves conv1 in the first block). */
int coupling_cond_in_conv(const block_info *b) { return b->H * b->W <= 16; }

static size_t kscr_size(const cglow_model *m, const block_info *b, int G)
{
    const int Hd = m->cfg.hidden, cin = b->C / 2 + m->cfg.cond_features, m1 = b->C > Hd ? b->C : Hd;
    const int mx = m1 > cin ? m1 : cin;
    return k_conv_planes_scratch(mx, mx, b->H, b->W, G);
}

size_t coupling_tape_size(const cglow_model *m, const block_info *b, int G)
{
    return (2 * (size_t)m->cfg.hidden + b->C) * k_plane_size(b->H, b->W, G);
}

size_t coupling_scratch_size(const cglow_model *m, const block_info *b, int G)
{
    const size_t PL = k_plane_size(b->H, b->W, G), Hd = m->cfg.hidden, C = b->C, Cx = C / 2;
    /* xa, h1, h2, o; backward: dout, dh2, dh1, din; conv1's weights on xa and their gradient;
     * the condition tables; one map's scales; the kernels' scratch */
    const size_t cin = Cx + m->cfg.cond_features;
    return PL * (cin + Hd + Hd + C + C + Hd + Hd + cin) + Hd * Cx * 9 + (size_t)G * Hd * 16 + C +
           4 * Cx * (size_t)b->H * b->W + kscr_size(m, b, G) + 16;
}

static cp_ws carve(const cglow_model *m, const block_info *b, int G, real *ws)
{
    const size_t PL = k_plane_size(b->H, b->W, G), Hd = m->cfg.hidden, C = b->C, Cx = C / 2;
    const size_t cin = Cx + m->cfg.cond_features;
    cp_ws w;
    w.PL = PL; w.org = k_plane_origin(b->H, b->W); w.MP = k_plane_map(b->H, b->W); w.Wr = k_plane_row(b->H, b->W);
    w.xa = ws; ws += PL * cin;   /* xa, then (small maps) the condition channels */
    w.h1 = ws; ws += PL * Hd;
    w.h2 = ws; ws += PL * Hd;
    w.o = ws; ws += PL * C;
    w.dout = ws; ws += PL * C;
    w.dh2 = ws; ws += PL * Hd;
    w.dh1 = ws; ws += PL * Hd;
    w.din = ws; ws += PL * cin;
    w.dwx = ws; ws += Hd * Cx * 9;
    w.T = ws; ws += (size_t)G * Hd * 16;
    w.f = ws; ws += C;
    w.sc = ws; ws += Cx * (size_t)b->H * b->W;
    w.gls = ws; ws += Cx * (size_t)b->H * b->W;
    w.gt = ws; ws += Cx * (size_t)b->H * b->W;
    w.gp = ws; ws += Cx * (size_t)b->H * b->W;
    w.kscr = ws;
    return w;
}

/* Row y of map g of plane channel c. */
static inline real *prow(real *planes, const cp_ws *w, int c, int g, int y)
{
    return planes + (size_t)c * w->PL + w->org + (size_t)g * w->MP + (size_t)y * w->Wr;
}

/* sum of log v[i] (v > 0) as logs of products, one log per 64 elements: 8 running products in
 * double (vectorised), each of at most 71 factors >= clamp, which cannot underflow unless the
 * clamp is below ~5e-5 (then one log per element). */
static double sum_log(const real *v, size_t n, real clamp)
{
    double ld = 0;
    if (clamp < 1e-3) {
        for (size_t i = 0; i < n; i++) ld += log(v[i]);
        return ld;
    }
    for (size_t i0 = 0; i0 < n; i0 += 512) {
        const size_t m = n - i0 < 512 ? n - i0 : 512;
        double p[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        size_t i = 0;
        for (; i + 8 <= m; i += 8)
            for (int l = 0; l < 8; l++) p[l] *= v[i0 + i + l];
        for (; i < m; i++) p[0] *= v[i0 + i];
        for (int l = 0; l < 8; l++) ld += log(p[l]);
    }
    return ld;
}

/* conv1 reads concat(xa, condition map). The condition channels are constant over the map, so
 * their zero-padded 3x3 convolution depends only on which taps fall inside it: a table per map,
 * output channel and (row, column) border flags. conv1 then runs on xa alone (C/2 channels
 * instead of C/2 + P: half the work in the first block) and the table is added. */
static inline int edge_flags(int i, int n) { return (i == 0) | ((i == n - 1) << 1); }
static inline int tap_inside(int k, int f) { return k == 1 || (k == 0 && !(f & 1)) || (k == 2 && !(f & 2)); }

/* wx (Hd, C/2, 9) = conv1's weights on xa */
static void xa_weights(real *wx, const real *w1, const cglow_model *m, const block_info *b)
{
    const int Cx = b->C / 2, cin = Cx + m->cfg.cond_features, Hd = m->cfg.hidden;
    for (int o = 0; o < Hd; o++) memcpy(wx + (size_t)o * Cx * 9, w1 + (size_t)o * cin * 9, sizeof(real) * Cx * 9);
}

/* T[(g*Hd + o)*16 + rf*4 + cf] = sum_j c_gj * sum of w1[o, Cx + j, taps inside for flags rf, cf] */
/* wsum (Hd, P, 16): for each output channel and condition feature, the sum of its conv1 taps
 * that fall inside the map, for each (row, column) border flags. Part of the prepared weights. */
static void cond_tap_sums(real *wsum, const real *w1, const cglow_model *m, const block_info *b)
{
    /* inside[f][k]: whether tap row (or column) k is inside the map for border flags f */
    static const real inside[4][3] = {{1, 1, 1}, {0, 1, 1}, {1, 1, 0}, {0, 1, 0}};
    const int Cx = b->C / 2, P = m->cfg.cond_features, cin = Cx + P, Hd = m->cfg.hidden;
    for (int o = 0; o < Hd; o++)
        for (int j = 0; j < P; j++) {
            const real *k = w1 + ((size_t)o * cin + Cx + j) * 9;
            real *ws = wsum + ((size_t)o * P + j) * 16;
            real rows[3][4];   /* rows[ky][cf]: row ky's taps inside for column flags cf */
            for (int ky = 0; ky < 3; ky++)
                for (int cf = 0; cf < 4; cf++)
                    rows[ky][cf] = inside[cf][0] * k[ky * 3] + inside[cf][1] * k[ky * 3 + 1] + inside[cf][2] * k[ky * 3 + 2];
            for (int rf = 0; rf < 4; rf++)
                for (int cf = 0; cf < 4; cf++)
                    ws[rf * 4 + cf] = inside[rf][0] * rows[0][cf] + inside[rf][1] * rows[1][cf] + inside[rf][2] * rows[2][cf];
        }
}

/* T[(g*Hd + o)*16 + f] = sum_j c_gj wsum[o][j][f] */
static void cond_table(real *T, const real *wsum, const real *c, const cglow_model *m, int G)
{
    const int P = m->cfg.cond_features, Hd = m->cfg.hidden;
    for (int g = 0; g < G; g++)
        for (int o = 0; o < Hd; o++) {
            real *t = T + ((size_t)g * Hd + o) * 16;
            for (int f = 0; f < 16; f++) t[f] = 0;
            for (int j = 0; j < P; j++)
                for (int f = 0; f < 16; f++) t[f] += c[g * P + j] * wsum[((size_t)o * P + j) * 16 + f];
        }
}

void coupling_prepare(cglow_model *m, const block_info *b, const step_offsets *s)
{
    const real *P = m->params;
    real *pp = m->prep;
    const int C = b->C, Cx = C / 2, H = b->H, W = b->W, Hd = m->cfg.hidden;
    real *wx = malloc(sizeof(real) * ((size_t)Hd * Cx * 9 + C));
    if (!wx) abort();
    real *scale = wx + (size_t)Hd * Cx * 9;
    if (coupling_cond_in_conv(b))   /* the whole conv1, condition channels included */
        k_conv3x3_prepare(pp + s->pc_w1, P + s->cp_w1, P + s->cp_b1, NULL, Cx + m->cfg.cond_features, Hd, H, W, 0);
    else {   /* conv1 on xa, and the condition channels' tap sums for the table */
        xa_weights(wx, P + s->cp_w1, m, b);
        k_conv3x3_prepare(pp + s->pc_w1, wx, P + s->cp_b1, NULL, Cx, Hd, H, W, 0);
        cond_tap_sums(pp + s->pc_cond, P + s->cp_w1, m, b);
    }
    for (int ch = 0; ch < C; ch++) scale[ch] = (real)exp(3.0 * P[s->cp_zs + ch]);
    k_conv3x3_prepare(pp + s->pc_zw, P + s->cp_zw, P + s->cp_zb, scale, Hd, C, H, W, 1);
    free(wx);
}

static inline real relu1(real v) { return v > 0 ? v : 0; }

/* h1 = max(h1 + the condition channels' contribution, 0) at every pixel. The contribution is
 * one value (T[0]) inside the map and differs on its first and last rows and columns: those get
 * their difference to T[0] first, then one long vectorised pass over the map's rows (the border
 * positions between them included; they are never read as pixels) adds T[0] and clamps. */
static void add_cond_relu(real *h1, const real *T, const block_info *b, int Hd, int G, const cp_ws *w)
{
    const int H = b->H, W = b->W;
    const size_t span = (size_t)(H - 1) * w->Wr + W;
    for (int o = 0; o < Hd; o++)
        for (int g = 0; g < G; g++) {
            const real *t = T + ((size_t)g * Hd + o) * 16;
            const real mid = t[0];
            if (H >= 3 && W >= 3) {
                /* the rows between the first and the last differ from mid only in their first
                 * and last pixels (row flags 0); then the first (flags 1) and last (2) rows */
                const real dl = t[1] - mid, dr = t[2] - mid;
                real *r = prow(h1, w, o, g, 1);
                for (int y = 1; y < H - 1; y++, r += w->Wr) { r[0] += dl; r[W - 1] += dr; }
                for (int k = 0; k < 2; k++) {
                    const real *tr = t + (k ? 2 : 1) * 4;
                    real *e = prow(h1, w, o, g, k ? H - 1 : 0);
                    const real dm = tr[0] - mid;
                    e[0] += tr[1] - mid;
                    e[W - 1] += tr[2] - mid;
#pragma omp simd
                    for (int x2 = 1; x2 < W - 1; x2++) e[x2] += dm;
                }
            } else
                for (int y = 0; y < H; y++) {
                    const int rf = edge_flags(y, H);
                    const real *tr = t + rf * 4;
                    real *r = prow(h1, w, o, g, y);
                    if (W == 1) { r[0] += tr[3] - mid; continue; }
                    r[0] += tr[1] - mid;
                    r[W - 1] += tr[2] - mid;
                    if (rf)
                        for (int x2 = 1; x2 < W - 1; x2++) r[x2] += tr[0] - mid;
                }
            real *r = prow(h1, w, o, g, 0);
            #pragma omp simd
            for (size_t i = 0; i < span; i++) r[i] = relu1(r[i] + mid);
        }
}

/* The condition channels' weight gradient: d w1[o, Cx + j, tap] += sum_g c_gj * (sum of dh1 over
 * the pixels where the tap is inside), from the sums of dh1 per (row, column) border flags. */
static void cond_weight_grad(real *gw1, real *dh1, const real *c, const cglow_model *m, const block_info *b, int G,
                             const cp_ws *w)
{
    const int H = b->H, W = b->W, Cx = b->C / 2, P = m->cfg.cond_features, cin = Cx + P, Hd = m->cfg.hidden;
    real rows[4 * W];   /* dh1's rows summed by row flags (vectorised whole rows), then split by columns */
    for (int o = 0; o < Hd; o++) {
        double S[CGLOW_MAX_COND][16];
        memset(S, 0, sizeof S);
        for (int g = 0; g < G; g++) {
            memset(rows, 0, sizeof rows);
            for (int y = 0; y < H; y++) {
                const real *r = prow(dh1, w, o, g, y);
                real *acc = rows + edge_flags(y, H) * W;
#pragma omp simd
                for (int x2 = 0; x2 < W; x2++) acc[x2] += r[x2];
            }
            double sg[16] = {0};
            for (int rf = 0; rf < 4; rf++) {
                const real *r = rows + rf * W;
                if (W == 1) { sg[rf * 4 + 3] += r[0]; continue; }
                real mid = 0;
#pragma omp simd reduction(+ : mid)
                for (int x2 = 1; x2 < W - 1; x2++) mid += r[x2];
                sg[rf * 4 + 1] += r[0];
                sg[rf * 4 + 0] += mid;
                sg[rf * 4 + 2] += r[W - 1];
            }
            for (int j = 0; j < P; j++)
                for (int f = 0; f < 16; f++) S[j][f] += c[g * P + j] * sg[f];
        }
        for (int j = 0; j < P; j++) {
            real *k = gw1 + ((size_t)o * cin + Cx + j) * 9;
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++) {
                    double acc = 0;
                    for (int f = 0; f < 16; f++)
                        if (tap_inside(ky, f >> 2) && tap_inside(kx, f & 3)) acc += S[j][f];
                    k[ky * 3 + kx] += (real)acc;
                }
        }
    }
}

/* conv1's input planes: xa of each map; for small maps also the P condition channels (the
 * condition inside the map, 0 on the border). Returns the number of channels. */
static int conv1_input(cp_ws *w, const real *x, const real *c, const cglow_model *m, const block_info *b, int G)
{
    const int C = b->C, H = b->H, W = b->W, Cx = C / 2, P = m->cfg.cond_features;
    k_to_planes(w->xa, x, Cx, H, W, G, (size_t)C * H * W, 0);
    if (!coupling_cond_in_conv(b)) return Cx;
    for (int j = 0; j < P; j++)
        for (int g = 0; g < G; g++)
            for (int y = 0; y < H; y++) {
                real *r = prow(w->xa, w, Cx + j, g, y);
                for (int i = 0; i < W; i++) r[i] = c[g * P + j];
            }
    k_plane_border(w->xa + (size_t)Cx * w->PL, P, H, W, G, 0);
    return Cx + P;
}

/* The CNN: o (C planes) from xa (the first C/2 channels of x, (G, C, H, W)) and c. h1, h2, o
 * may point into a tape. */
static void net_forward(real *h1, real *h2, real *o, const real *x, const real *c, const real *params,
                        const step_offsets *s, const cglow_model *m, const block_info *b, int G, cp_ws *w)
{
    const int C = b->C, H = b->H, W = b->W, Hd = m->cfg.hidden;
    const real *pp = m->prep;
    const int cin = conv1_input(w, x, c, m, b, G);
    if (cin > C / 2)   /* the condition channels are in the input: ReLU in the kernel */
        k_conv3x3_planes_prepared(h1, w->xa, pp + s->pc_w1, cin, Hd, H, W, G, 1, w->kscr);
    else {
        k_conv3x3_planes_prepared(h1, w->xa, pp + s->pc_w1, cin, Hd, H, W, G, 0, w->kscr);
        cond_table(w->T, pp + s->pc_cond, c, m, G);
        add_cond_relu(h1, w->T, b, Hd, G, w);
    }
    k_conv1x1_planes(h2, h1, params + s->cp_w2, params + s->cp_b2, Hd, Hd, H, W, G, 1);
    k_plane_border(h2, Hd, H, W, G, 1);
    /* o = (conv(h2) + zb) * exp(3 zs), the factor in the prepared weights */
    k_conv3x3_planes_prepared(o, h2, pp + s->pc_zw, Hd, C, H, W, G, 0, w->kscr);
}

static inline real coupling_scale(real a, real clamp) { return (1 - clamp) * sigmoid_r(a + 2) + clamp; }

void coupling_fwd(real *y, const real *x, const real *c, const real *params, const step_offsets *s,
                  const cglow_model *m, const block_info *b, int G, real *tape, real *ws, double *logdet)
{
    cp_ws w = carve(m, b, G, ws);
    const int C = b->C, Cx = C / 2, H = b->H, W = b->W, HW = H * W, Hd = m->cfg.hidden;
    real *h1 = tape ? tape : w.h1, *h2 = tape ? tape + Hd * w.PL : w.h2, *o = tape ? tape + 2 * Hd * w.PL : w.o;
    net_forward(h1, h2, o, x, c, params, s, m, b, G, &w);
    const size_t half = (size_t)Cx * HW;
    const real clamp = m->cfg.coupling_clamp;
    for (int g = 0; g < G; g++) {
        const real *xg = x + (size_t)g * C * HW;
        real *yg = y + (size_t)g * C * HW;
        if (yg != xg) memcpy(yg, xg, sizeof(real) * half);
        if (W < 16) {   /* rows shorter than a vector: gather log_s and t, then one loop */
            for (int ch = 0; ch < Cx; ch++)
                for (int r = 0; r < H; r++) {
                    const real *ls = prow(o, &w, ch, g, r), *t = prow(o, &w, Cx + ch, g, r);
                    real *dl = w.gls + ((size_t)ch * H + r) * W, *dt = w.gt + ((size_t)ch * H + r) * W;
                    WIDTH_SWITCH(W, for (int i = 0; i < WC; i++) { dl[i] = ls[i]; dt[i] = t[i]; })
                }
            const real *xb = xg + half;
            real *yb = yg + half;
#pragma omp simd
            for (size_t i = 0; i < half; i++) {
                const real sc = coupling_scale(w.gls[i], clamp);
                w.sc[i] = sc;
                yb[i] = (xb[i] + w.gt[i]) * sc;
            }
        } else
            for (int ch = 0; ch < Cx; ch++)
                for (int r = 0; r < H; r++) {
                    const real *ls = prow(o, &w, ch, g, r), *t = prow(o, &w, Cx + ch, g, r);
                    const real *xr = xg + half + ((size_t)ch * H + r) * W;
                    real *yr = yg + half + ((size_t)ch * H + r) * W, *sr = w.sc + ((size_t)ch * H + r) * W;
#pragma omp simd
                    for (int i = 0; i < W; i++) {
                        const real sc = coupling_scale(ls[i], clamp);
                        sr[i] = sc;
                        yr[i] = (xr[i] + t[i]) * sc;
                    }
                }
        logdet[g] += sum_log(w.sc, half, clamp);
    }
}

void coupling_inv(real *x, const real *y, const real *c, const real *params, const step_offsets *s,
                  const cglow_model *m, const block_info *b, int G, real *ws)
{
    cp_ws w = carve(m, b, G, ws);
    const int C = b->C, Cx = C / 2, H = b->H, W = b->W, HW = H * W;
    net_forward(w.h1, w.h2, w.o, y, c, params, s, m, b, G, &w);
    const size_t half = (size_t)Cx * HW;
    const real clamp = m->cfg.coupling_clamp;
    for (int g = 0; g < G; g++) {
        const real *yg = y + (size_t)g * C * HW;
        real *xg = x + (size_t)g * C * HW;
        if (xg != yg) memcpy(xg, yg, sizeof(real) * half);
        for (int ch = 0; ch < Cx; ch++)
            for (int r = 0; r < H; r++) {
                const real *ls = prow(w.o, &w, ch, g, r), *t = prow(w.o, &w, Cx + ch, g, r);
                const real *yr = yg + half + ((size_t)ch * H + r) * W;
                real *xr = xg + half + ((size_t)ch * H + r) * W;
                #pragma omp simd
                for (int i = 0; i < W; i++) xr[i] = yr[i] / coupling_scale(ls[i], clamp) - t[i];
            }
    }
}

/* The affine part's backward for maps narrower than a vector: log_s and t gathered map by map into
 * contiguous rows (as in the forward), one vectorised pass over the map's C/2 * H * W values,
 * then the scaled d log_s and d t scattered into dout's planes. */
static void coupling_bwd_narrow(real *dx, real *gzs, const real *dy, const real *x, real gl, const real *f,
                                const real *o, const block_info *b, int G, cp_ws *w, real clamp)
{
    const int C = b->C, Cx = C / 2, H = b->H, W = b->W, HW = H * W;
    const size_t half = (size_t)Cx * HW;
    /* per map: log_s -> d log_s in gls, t -> d t in gt; the products d log_s log_s, d t t in sc, gp */
    real *gls = w->gls, *gt = w->gt, *pl = w->sc, *pt = w->gp;
    for (int g = 0; g < G; g++) {
        for (int ch = 0; ch < Cx; ch++)
            for (int r = 0; r < H; r++) {
                const real *ls = prow((real *)o, w, ch, g, r), *t = prow((real *)o, w, Cx + ch, g, r);
                real *dl = gls + ((size_t)ch * H + r) * W, *dt = gt + ((size_t)ch * H + r) * W;
                WIDTH_SWITCH(W, for (int i = 0; i < WC; i++) { dl[i] = ls[i]; dt[i] = t[i]; })
            }
        const size_t base = (size_t)g * C * HW + half;
        const real *xb = x + base, *gy = dy + base;
        real *dxb = dx + base;
#pragma omp simd
        for (size_t i = 0; i < half; i++) {
            const real ls = gls[i], t = gt[i];
            const real sg = sigmoid_r(ls + 2), sc = (1 - clamp) * sg + clamp, d = gy[i] * sc;
            const real ds = gy[i] * (xb[i] + t) + gl / sc, dl = ds * (1 - clamp) * sg * (1 - sg);
            dxb[i] = d;
            pl[i] = dl * ls;
            pt[i] = d * t;
            gls[i] = dl;
            gt[i] = d;
        }
        for (int ch = 0; ch < Cx; ch++) {
            real al = 0, at = 0;
            for (int i = 0; i < HW; i++) { al += pl[(size_t)ch * HW + i]; at += pt[(size_t)ch * HW + i]; }
            gzs[ch] += 3 * al;
            gzs[Cx + ch] += 3 * at;
            const real fl = f[ch], ft = f[Cx + ch];
            for (int r = 0; r < H; r++) {
                real *dls = prow(w->dout, w, ch, g, r), *dtp = prow(w->dout, w, Cx + ch, g, r);
                const real *sl = gls + ((size_t)ch * H + r) * W, *st = gt + ((size_t)ch * H + r) * W;
                WIDTH_SWITCH(W, for (int i = 0; i < WC; i++) { dls[i] = sl[i] * fl; dtp[i] = st[i] * ft; })
            }
        }
    }
}

void coupling_bwd(real *dx, real *grads, const real *dy, const real *x, real gl, const real *c,
                  const real *params, const step_offsets *s, const cglow_model *m, const block_info *b, int G,
                  const real *tape, real *ws)
{
    cp_ws w = carve(m, b, G, ws);
    const int C = b->C, Cx = C / 2, H = b->H, W = b->W, HW = H * W, Hd = m->cfg.hidden;
    const real *h1 = tape, *h2 = tape + Hd * w.PL, *o = tape + 2 * Hd * w.PL;
    const size_t half = (size_t)Cx * HW;
    const real clamp = m->cfg.coupling_clamp;
    /* yb = (xb + t) s, logdet = sum log s: d t and d log_s into dout's planes. Back through
     * o = (conv(h2; pad 1) + zb) * exp(3 zs) at once: d zs = 3 sum(d o), and dout is scaled. */
    const real *zs = params + s->cp_zs;
    real *gzs = grads + s->cp_zs, *f = w.f;   /* exp(3 zs) per channel */
    for (int ch = 0; ch < C; ch++) f[ch] = (real)exp(3.0 * zs[ch]);
    if (W < 16)
        coupling_bwd_narrow(dx, gzs, dy, x, gl, f, o, b, G, &w, clamp);
    else
        for (int g = 0; g < G; g++) {
            const size_t base = (size_t)g * C * HW;
            for (int ch = 0; ch < Cx; ch++) {
                real al = 0, at = 0;
                for (int r = 0; r < H; r++) {
                    const size_t at0 = base + half + ((size_t)ch * H + r) * W;
                    const real *ls = prow((real *)o, &w, ch, g, r), *t = prow((real *)o, &w, Cx + ch, g, r);
                    const real *xr = x + at0, *gy = dy + at0;
                    real *dxr = dx + at0, *dls = prow(w.dout, &w, ch, g, r), *dt = prow(w.dout, &w, Cx + ch, g, r);
                    const real fl = f[ch], ft = f[Cx + ch];
#pragma omp simd reduction(+ : al, at)
                    for (int i = 0; i < W; i++) {
                        const real sg = sigmoid_r(ls[i] + 2), sc = (1 - clamp) * sg + clamp, d = gy[i] * sc;
                        const real ds = gy[i] * (xr[i] + t[i]) + gl / sc, dl = ds * (1 - clamp) * sg * (1 - sg);
                        dxr[i] = d;
                        al += dl * ls[i];
                        at += d * t[i];
                        dls[i] = dl * fl;
                        dt[i] = d * ft;
                    }
                }
                gzs[ch] += 3 * al;
                gzs[Cx + ch] += 3 * at;
            }
        }
    k_plane_border(w.dout, C, H, W, G, 0);
    k_conv3x3_planes_bwd(w.dh2, grads + s->cp_zw, grads + s->cp_zb, w.dout, h2, params + s->cp_zw, Hd, C, H, W, G, 1,
                         w.kscr);
    k_relu_bwd_planes(w.dh2, h2, Hd, H, W, G);
    k_conv1x1_planes_bwd(w.dh1, grads + s->cp_w2, grads + s->cp_b2, w.dh2, h1, params + s->cp_w2, Hd, Hd, H, W, G,
                         w.kscr);
    k_relu_bwd_planes(w.dh1, h1, Hd, H, W, G);
    const int cin = conv1_input(&w, x, c, m, b, G);
    if (cin > Cx)   /* the condition channels are inputs: conv1's whole weight at once */
        k_conv3x3_planes_bwd(w.din, grads + s->cp_w1, grads + s->cp_b1, w.dh1, w.xa, params + s->cp_w1, cin, Hd, H, W,
                             G, 0, w.kscr);
    else {
        const int cin_all = Cx + m->cfg.cond_features;
        /* conv1's weights on xa: the prepared ones (k_conv3x3_prepare copies them as they are) */
        memset(w.dwx, 0, sizeof(real) * Hd * Cx * 9);
        k_conv3x3_planes_bwd(w.din, w.dwx, grads + s->cp_b1, w.dh1, w.xa, m->prep + s->pc_w1, Cx, Hd, H, W, G, 0,
                             w.kscr);
        for (int oc = 0; oc < Hd; oc++) {
            real *dst = grads + s->cp_w1 + (size_t)oc * cin_all * 9;
            const real *src = w.dwx + (size_t)oc * Cx * 9;
            for (int i = 0; i < Cx * 9; i++) dst[i] += src[i];
        }
        cond_weight_grad(grads + s->cp_w1, w.dh1, c, m, b, G, &w);
    }
    for (int g = 0; g < G; g++)
        for (int ch = 0; ch < Cx; ch++)
            for (int r = 0; r < H; r++) {
                const size_t at = (size_t)g * C * HW + ((size_t)ch * H + r) * W;
                const real *d1 = prow(w.din, &w, ch, g, r);
                WIDTH_SWITCH(W, for (int i = 0; i < WC; i++) dx[at + i] = dy[at + i] + d1[i])
            }
}
