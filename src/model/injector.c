/* Affine injector (conditional actnorm, model.md 2.2): a CNN of the broadcast condition gives a
 * per-position bias and log-scale; y = x * exp(log_scale) + bias.
 *
 * The CNN reads a constant map, so its output at a pixel depends only on the condition and on
 * the pixel's distance to the border (two padded 3x3 convolutions: within two pixels). For
 * H > 5 every row is one of 5 classes (0, 1, interior, H-2, H-1), likewise columns; the CNN run
 * on a 5x5 map gives exactly those 25 values. We run it on min(H,5) x min(W,5) and map each
 * pixel to its class: exact, and it removes the injectors' per-pixel convolution cost.
 * G maps (each with its own condition) go through the small CNN together. */
#include "model/model.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define INJ_LS_MIN (-6.907755278982137) /* log(1e-3) */
#define INJ_LS_MAX 5.0

static inline int red_size(int n) { return n < 5 ? n : 5; }
/* The reduced index (border class) of row/column i of n. */
static inline int red_index(int i, int n)
{
    if (n <= 5) return i;
    return i < 2 ? i : i >= n - 2 ? 5 - (n - i) : 2;
}
static inline int red_count(int r, int n)
{
    if (n <= 5) return 1;
    return r == 2 ? n - 4 : 1;
}

/* The net's forward state: the planes of its input and hidden layers and its output per map;
 * then its work area (the output's planes, the backward's buffers, the kernels' scratch). */
size_t injector_net_state_size(const cglow_model *m, const block_info *b, int G)
{
    const size_t rh = red_size(b->H), rw = red_size(b->W), R = rh * rw, Hd = m->cfg.hidden, P = m->cfg.cond_features;
    const size_t C = b->C, PL = k_plane_size((int)rh, (int)rw, G);
    const size_t n = PL * (P + Hd + Hd) + G * R * (2 * C + C);   /* cmap, a1, a2; o, e */
    return (n + 15) & ~(size_t)15;
}

static size_t net_work_size(const cglow_model *m, const block_info *b, int G)
{
    const int rh = red_size(b->H), rw = red_size(b->W), Hd = m->cfg.hidden, P = m->cfg.cond_features, C = b->C;
    const int m2 = 2 * C > Hd ? 2 * C : Hd, mx = m2 > P ? m2 : P;
    const size_t PL = k_plane_size(rh, rw, G), R = (size_t)rh * rw;
    /* oP, doutP, da2, da1; dout; each map's log-det */
    const size_t n = PL * (2 * (size_t)C + 2 * (size_t)C + 2 * (size_t)Hd) + G * R * 2 * C + 2 * (size_t)G + 2;
    return ((n + 15) & ~(size_t)15) + k_conv_planes_scratch(mx, mx, rh, rw, G) + 16;
}

size_t injector_net_size(const cglow_model *m, const block_info *b, int G)
{
    return injector_net_state_size(m, b, G) + net_work_size(m, b, G);
}

void injector_net_carve_split(inj_net *w, const cglow_model *m, const block_info *b, int G, real *state, real *work)
{
    const int Hd = m->cfg.hidden, P = m->cfg.cond_features, C = b->C;
    w->rh = red_size(b->H); w->rw = red_size(b->W); w->R = w->rh * w->rw; w->G = G;
    const size_t R = (size_t)w->R * G, PL = k_plane_size(w->rh, w->rw, G);
    w->PL = PL; w->org = k_plane_origin(w->rh, w->rw); w->MP = k_plane_map(w->rh, w->rw);
    w->Wr = k_plane_row(w->rh, w->rw);
    w->cmap = state; state += PL * P;
    w->a1 = state; state += PL * Hd;
    w->a2 = state; state += PL * Hd;
    w->o = state; state += R * 2 * C;
    w->e = state;
    w->oP = work; work += PL * 2 * C;
    w->doutP = work; work += PL * 2 * C;
    w->da2 = work; work += PL * Hd;
    w->da1 = work; work += PL * Hd;
    w->dout = work; work += R * 2 * C;
    w->ld = (double *)(((uintptr_t)work + 7) & ~(uintptr_t)7);   /* doubles in the reals' area */
    work = (real *)(w->ld + G);
    w->kscr = (real *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
}

void injector_net_carve(inj_net *w, const cglow_model *m, const block_info *b, int G, real *mem)
{
    injector_net_carve_split(w, m, b, G, mem, mem + injector_net_state_size(m, b, G));
}

void injector_net_zero_grad(inj_net *w, const block_info *b)
{
    memset(w->dout, 0, sizeof(real) * (size_t)w->G * w->R * 2 * b->C);
}

/* Pixel (y, x) of map g, channel ch of the reduced maps' planes. */
static inline size_t plane_at(const inj_net *w, int ch, int g, int y, int x)
{
    return (size_t)ch * w->PL + w->org + (size_t)g * w->MP + (size_t)y * w->Wr + x;
}

void injector_prepare(cglow_model *m, const block_info *b, const step_offsets *s)
{
    const real *P = m->params;
    const int C = b->C, Hd = m->cfg.hidden, rh = red_size(b->H), rw = red_size(b->W);
    real *scale = malloc(sizeof(real) * 2 * C);
    if (!scale) abort();
    k_conv3x3_prepare(m->prep + s->pi_w1, P + s->inj_w1, P + s->inj_b1, NULL, m->cfg.cond_features, Hd, rh, rw, 0);
    for (int ch = 0; ch < 2 * C; ch++) scale[ch] = (real)exp(3.0 * P[s->inj_zs + ch]);
    k_conv3x3_prepare(m->prep + s->pi_zw, P + s->inj_zw, P + s->inj_zb, scale, Hd, 2 * C, rh, rw, 1);
    free(scale);
}

/* Each map's log-det: the sum of its clamped log-scales over the full map, each border class
 * counted for its pixels; one vectorised dot product per map with the counts laid out per channel. */
static void net_logdets(inj_net *w, const block_info *b)
{
    const int C = b->C, R = w->R;
    real cnt[(size_t)C * R];
    for (int ri = 0; ri < w->rh; ri++)
        for (int rj = 0; rj < w->rw; rj++) cnt[ri * w->rw + rj] = (real)(red_count(ri, b->H) * red_count(rj, b->W));
    for (int ch = 1; ch < C; ch++) memcpy(cnt + (size_t)ch * R, cnt, sizeof(real) * R);
    for (int g = 0; g < w->G; g++) {
        const real *ls = w->o + ((size_t)g * 2 * C + C) * R;
        double acc = 0;   /* up to 128 x 25 terms: summed in double */
#pragma omp simd reduction(+ : acc)
        for (int i = 0; i < C * R; i++) acc += (double)(clamp_r(ls[i], (real)INJ_LS_MIN, (real)INJ_LS_MAX) * cnt[i]);
        w->ld[g] = acc;
    }
}

/* The CNN on the G reduced maps: o (G, 2C, R) raw (unclamped); e = exp(clamped log-scale) (G, C, R). */
void injector_net_fwd(inj_net *w, const real *c, const real *params, const step_offsets *s, const cglow_model *m,
                      const block_info *b)
{
    const int P = m->cfg.cond_features, Hd = m->cfg.hidden, C = b->C, R = w->R, G = w->G, rh = w->rh, rw = w->rw;
    for (int j = 0; j < P; j++)
        for (int g = 0; g < G; g++)
            for (int y = 0; y < rh; y++) {
                real *dst = w->cmap + plane_at(w, j, g, y, 0);
                for (int x = 0; x < rw; x++) dst[x] = c[g * P + j];
            }
    k_plane_border(w->cmap, P, rh, rw, G, 0);
    const real *pp = m->prep;
    k_conv3x3_planes_prepared(w->a1, w->cmap, pp + s->pi_w1, P, Hd, rh, rw, G, 1, w->kscr);
    k_conv1x1_planes(w->a2, w->a1, params + s->inj_w2, params + s->inj_b2, Hd, Hd, rh, rw, G, 1);
    k_plane_border(w->a2, Hd, rh, rw, G, 1);
    /* o = (conv(a2; pad 1) + zb) * exp(3 zs), the factor in the prepared weights */
    k_conv3x3_planes_prepared(w->oP, w->a2, pp + s->pi_zw, Hd, 2 * C, rh, rw, G, 0, w->kscr);
    if (R == 1)   /* 1x1 maps: channel ch of the G maps is one run of its plane */
        for (int ch = 0; ch < 2 * C; ch++) {
            const real *src = w->oP + plane_at(w, ch, 0, 0, 0);
            for (int g = 0; g < G; g++) w->o[(size_t)g * 2 * C + ch] = src[(size_t)g * w->MP];
        }
    else {
        /* rows of a compile-time width for the usual sizes (5 for the border classes) */
        WIDTH_SWITCH(rw, for (int g = 0; g < G; g++)
                             for (int ch = 0; ch < 2 * C; ch++) {
                                 const real *src = w->oP + plane_at(w, ch, g, 0, 0);
                                 real *dst = w->o + ((size_t)g * 2 * C + ch) * R;
                                 for (int y = 0; y < rh; y++)
                                     for (int x = 0; x < WC; x++) dst[y * WC + x] = src[(size_t)y * w->Wr + x];
                             })
    }
    for (int g = 0; g < G; g++) {
        const real *ls = w->o + ((size_t)g * 2 * C + C) * R;
        real *e = w->e + (size_t)g * C * R;
#pragma omp simd
        for (int i = 0; i < C * R; i++) e[i] = exp_r(clamp_r(ls[i], (real)INJ_LS_MIN, (real)INJ_LS_MAX));
    }
    net_logdets(w, b);
    memset(w->dout, 0, sizeof(real) * (size_t)G * 2 * C * R);
}

/* y = x * e + bias on one row of W pixels whose row class is given by e, bias (rw values each):
 * the interior columns share one value, so that loop vectorises. */
static inline void apply_row(real *y, const real *x, const real *e, const real *bias, int W)
{
    if (W <= 5) {
        for (int j = 0; j < W; j++) y[j] = x[j] * e[j] + bias[j];
        return;
    }
    y[0] = x[0] * e[0] + bias[0];
    y[1] = x[1] * e[1] + bias[1];
    const real ei = e[2], bi = bias[2];
#pragma omp simd
    for (int j = 2; j < W - 2; j++) y[j] = x[j] * ei + bi;
    y[W - 2] = x[W - 2] * e[3] + bias[3];
    y[W - 1] = x[W - 1] * e[4] + bias[4];
}

void injector_apply_fwd(real *y, const real *x, const inj_net *w, const block_info *b, int g0, int gb, double *logdet)
{
    const int C = b->C, H = b->H, W = b->W, R = w->R;
    for (int gi = 0; gi < gb; gi++) {
        const int g = g0 + gi;
        if (R == H * W) {   /* maps of at most 5x5: every pixel is its own class, e and bias are maps */
            const real *e = w->e + (size_t)g * C * R, *bias = w->o + (size_t)g * 2 * C * R;
            const real *xg = x + (size_t)gi * C * R;
            real *yg = y + (size_t)gi * C * R;
#pragma omp simd
            for (int i = 0; i < C * R; i++) yg[i] = xg[i] * e[i] + bias[i];
            logdet[gi] += w->ld[g];
            continue;
        }
        if (H > 5 && W > 5) {
            /* rows 2 .. H-3 share one value in their interior: one pass over that span, then
             * their first and last two columns, then the two first and two last rows */
            for (int ch = 0; ch < C; ch++) {
                const real *e = w->e + ((size_t)g * C + ch) * R, *bias = w->o + ((size_t)g * 2 * C + ch) * R;
                const real *xc = x + ((size_t)gi * C + ch) * H * W;
                real *yc = y + ((size_t)gi * C + ch) * H * W;
                const real ei = e[12], bi = bias[12];
#pragma omp simd
                for (size_t i = 2 * (size_t)W; i < (size_t)(H - 2) * W; i++) yc[i] = xc[i] * ei + bi;
                static const int cls[4] = {0, 1, 3, 4};
                for (int r = 2; r < H - 2; r++)
                    for (int k = 0; k < 4; k++) {
                        const size_t j = (size_t)r * W + (k < 2 ? k : W - 4 + k);
                        yc[j] = xc[j] * e[10 + cls[k]] + bias[10 + cls[k]];
                    }
                static const int edge_rows[4] = {0, 1, -2, -1};
                for (int k = 0; k < 4; k++) {
                    const int r = edge_rows[k] < 0 ? H + edge_rows[k] : edge_rows[k], ri = red_index(r, H);
                    apply_row(yc + (size_t)r * W, xc + (size_t)r * W, e + ri * 5, bias + ri * 5, W);
                }
            }
            logdet[gi] += w->ld[g];
            continue;
        }
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < H; i++) {
                const int ri = red_index(i, H);
                const size_t row = (((size_t)gi * C + ch) * H + i) * W;
                apply_row(y + row, x + row, w->e + ((size_t)g * C + ch) * R + ri * w->rw,
                          w->o + ((size_t)g * 2 * C + ch) * R + ri * w->rw, W);
            }
        logdet[gi] += w->ld[g];
    }
}

/* x = (y - bias) / e on one row, classes as in apply_row */
static inline void unapply_row(real *x, const real *y, const real *e, const real *bias, int W)
{
    if (W <= 5) {
        for (int j = 0; j < W; j++) x[j] = (y[j] - bias[j]) / e[j];
        return;
    }
    x[0] = (y[0] - bias[0]) / e[0];
    x[1] = (y[1] - bias[1]) / e[1];
    const real ei = e[2], bi = bias[2];
#pragma omp simd
    for (int j = 2; j < W - 2; j++) x[j] = (y[j] - bi) / ei;
    x[W - 2] = (y[W - 2] - bias[3]) / e[3];
    x[W - 1] = (y[W - 1] - bias[4]) / e[4];
}

void injector_apply_inv(real *x, const real *y, const inj_net *w, const block_info *b, int g0, int gb)
{
    const int C = b->C, H = b->H, W = b->W, R = w->R;
    for (int gi = 0; gi < gb; gi++) {
        const int g = g0 + gi;
        if (R == H * W) {
            const real *e = w->e + (size_t)g * C * R, *bias = w->o + (size_t)g * 2 * C * R;
            const real *yg = y + (size_t)gi * C * R;
            real *xg = x + (size_t)gi * C * R;
#pragma omp simd
            for (int i = 0; i < C * R; i++) xg[i] = (yg[i] - bias[i]) / e[i];
            continue;
        }
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < H; i++) {
                const int ri = red_index(i, H);
                const size_t row = (((size_t)gi * C + ch) * H + i) * W;
                unapply_row(x + row, y + row, w->e + ((size_t)g * C + ch) * R + ri * w->rw,
                            w->o + ((size_t)g * 2 * C + ch) * R + ri * w->rw, W);
            }
    }
}

/* One row's backward: dx = dy e; d bias and d log_scale (of x e) summed per column class. */
static inline void apply_row_bwd(real *dx, const real *dy, const real *x, const real *e, real *db, real *dl, int W)
{
    if (W <= 5) {
        for (int j = 0; j < W; j++) {
            const real t = dy[j] * e[j];
            dx[j] = t;
            db[j] += dy[j];
            dl[j] += t * x[j];
        }
        return;
    }
    static const int edge[4] = {0, 1, -2, -1}, cls[4] = {0, 1, 3, 4};
    for (int k = 0; k < 4; k++) {
        const int j = edge[k] < 0 ? W + edge[k] : edge[k], r = cls[k];
        const real t = dy[j] * e[r];
        dx[j] = t;
        db[r] += dy[j];
        dl[r] += t * x[j];
    }
    const real ei = e[2];
    real sb = 0, sl = 0;
#pragma omp simd reduction(+ : sb, sl)
    for (int j = 2; j < W - 2; j++) {
        const real t = dy[j] * ei;
        dx[j] = t;
        sb += dy[j];
        sl += t * x[j];
    }
    db[2] += sb;
    dl[2] += sl;
}

/* Backward of one map's C channels, both sides over 5: dx = dy e; the bias and log-scale gradients
 * summed per border class. Rows are summed into their row class first (whole rows, vectorised),
 * then each class row is split into the column classes; d log_scale = e * sum(dy x) per class. */
static void bwd_classes(real *dx, const real *dy, const real *x, const real *e, real *db, real *dl, int C, int H,
                        int W, real gl)
{
    real sb[5 * W], sx[5 * W];
    for (int ch = 0; ch < C; ch++) {
        const real *ec = e + (size_t)ch * 25;
        real *dbc = db + (size_t)ch * 25, *dlc = dl + (size_t)ch * 25;
        memset(sb, 0, sizeof sb);
        memset(sx, 0, sizeof sx);
        for (int r = 0; r < H; r++) {
            const int rc = red_index(r, H);
            const size_t row = ((size_t)ch * H + r) * W;
            const real *dyr = dy + row, *xr = x + row, *er = ec + rc * 5;
            real *dxr = dx + row, *b = sb + rc * W, *l = sx + rc * W;
            const real ei = er[2];
#pragma omp simd
            for (int j = 0; j < W; j++) {
                dxr[j] = dyr[j] * ei;
                b[j] += dyr[j];
                l[j] += dyr[j] * xr[j];
            }
            dxr[0] = dyr[0] * er[0];
            dxr[1] = dyr[1] * er[1];
            dxr[W - 2] = dyr[W - 2] * er[3];
            dxr[W - 1] = dyr[W - 1] * er[4];
        }
        for (int rc = 0; rc < 5; rc++) {
            const real *b = sb + rc * W, *l = sx + rc * W;
            real bm = 0, lm = 0;
#pragma omp simd reduction(+ : bm, lm)
            for (int j = 2; j < W - 2; j++) { bm += b[j]; lm += l[j]; }
            const real bs[5] = {b[0], b[1], bm, b[W - 2], b[W - 1]}, ls[5] = {l[0], l[1], lm, l[W - 2], l[W - 1]};
            for (int cc = 0; cc < 5; cc++) {
                dbc[rc * 5 + cc] += bs[cc];
                dlc[rc * 5 + cc] += ec[rc * 5 + cc] * ls[cc];
            }
        }
        /* logdet = sum of log_scale over all pixels; the clamp is straight-through */
        for (int ri = 0; ri < 5; ri++)
            for (int rj = 0; rj < 5; rj++) dlc[ri * 5 + rj] += gl * (real)(red_count(ri, H) * red_count(rj, W));
    }
}

void injector_apply_bwd(real *dx, const real *dy, const real *x, real gl, inj_net *w, const block_info *b, int g0, int gb)
{
    const int C = b->C, H = b->H, W = b->W, R = w->R;
    for (int gi = 0; gi < gb; gi++) {
        const int g = g0 + gi;
        real *dbias = w->dout + (size_t)g * 2 * C * R, *dls = dbias + (size_t)C * R;
        if (H > 5 && W > 5) {
            bwd_classes(dx + (size_t)gi * C * H * W, dy + (size_t)gi * C * H * W, x + (size_t)gi * C * H * W,
                        w->e + (size_t)g * C * R, dbias, dls, C, H, W, gl);
            continue;
        }
        for (int ch = 0; ch < C; ch++) {
            for (int i = 0; i < H; i++) {
                const int ri = red_index(i, H);
                const size_t row = (((size_t)gi * C + ch) * H + i) * W;
                apply_row_bwd(dx + row, dy + row, x + row, w->e + ((size_t)g * C + ch) * R + ri * w->rw,
                              dbias + ch * R + ri * w->rw, dls + ch * R + ri * w->rw, W);
            }
            /* logdet = sum of log_scale over all pixels; the clamp is straight-through. */
            for (int ri = 0; ri < w->rh; ri++)
                for (int rj = 0; rj < w->rw; rj++)
                    dls[ch * R + ri * w->rw + rj] += gl * (real)(red_count(ri, H) * red_count(rj, W));
        }
    }
}

void injector_net_bwd(real *grads, inj_net *w, const real *params, const step_offsets *s, const cglow_model *m,
                      const block_info *b)
{
    const int C = b->C, R = w->R, P = m->cfg.cond_features, Hd = m->cfg.hidden, G = w->G, rh = w->rh, rw = w->rw;
    /* Back through o = (conv(a2; pad 1) + zb) * exp(3 zs). */
    const real *zs = params + s->inj_zs;
    real *gzs = grads + s->inj_zs, f[2 * C], acc[2 * C];
    for (int ch = 0; ch < 2 * C; ch++) { f[ch] = (real)exp(3.0 * zs[ch]); acc[ch] = 0; }
    for (int g = 0; g < G; g++) {   /* maps outside, channels inside: long loops for 1x1 maps too */
        const real *d = w->dout + (size_t)g * 2 * C * R, *o = w->o + (size_t)g * 2 * C * R;
        if (R == 1) {
            real *dst = w->doutP + plane_at(w, 0, g, 0, 0);
#pragma omp simd
            for (int ch = 0; ch < 2 * C; ch++) {
                acc[ch] += d[ch] * o[ch];
                dst[(size_t)ch * w->PL] = d[ch] * f[ch];
            }
            continue;
        }
        for (int ch = 0; ch < 2 * C; ch++) {
            const real *dc = d + (size_t)ch * R, *oc = o + (size_t)ch * R;
            real a = 0;
            for (int i = 0; i < R; i++) a += dc[i] * oc[i];
            acc[ch] += a;
            for (int y = 0; y < rh; y++) {
                real *dst = w->doutP + plane_at(w, ch, g, y, 0);
                for (int x = 0; x < rw; x++) dst[x] = dc[y * rw + x] * f[ch];
            }
        }
    }
    for (int ch = 0; ch < 2 * C; ch++) gzs[ch] += 3 * acc[ch];
    k_plane_border(w->doutP, 2 * C, rh, rw, G, 0);
    k_conv3x3_planes_bwd(w->da2, grads + s->inj_zw, grads + s->inj_zb, w->doutP, w->a2, params + s->inj_zw, Hd, 2 * C,
                         rh, rw, G, 1, w->kscr);
    k_relu_bwd_planes(w->da2, w->a2, Hd, rh, rw, G);
    k_conv1x1_planes_bwd(w->da1, grads + s->inj_w2, grads + s->inj_b2, w->da2, w->a1, params + s->inj_w2, Hd, Hd, rh,
                         rw, G, w->kscr);
    k_relu_bwd_planes(w->da1, w->a1, Hd, rh, rw, G);
    k_conv3x3_planes_bwd(NULL, grads + s->inj_w1, grads + s->inj_b1, w->da1, w->cmap, params + s->inj_w1, P, Hd, rh,
                         rw, G, 0, w->kscr);
}

/* ---- whole-layer forms (the net and the map together), used by the layer tests */
size_t injector_scratch_size(const cglow_model *m, const block_info *b, int G) { return injector_net_size(m, b, G); }

void injector_fwd(real *y, const real *x, const real *c, const real *params, const step_offsets *s,
                  const cglow_model *m, const block_info *b, int G, real *ws, double *logdet)
{
    inj_net w;
    injector_net_carve(&w, m, b, G, ws);
    injector_net_fwd(&w, c, params, s, m, b);
    injector_apply_fwd(y, x, &w, b, 0, G, logdet);
}

void injector_inv(real *x, const real *y, const real *c, const real *params, const step_offsets *s,
                  const cglow_model *m, const block_info *b, int G, real *ws)
{
    inj_net w;
    injector_net_carve(&w, m, b, G, ws);
    injector_net_fwd(&w, c, params, s, m, b);
    injector_apply_inv(x, y, &w, b, 0, G);
}

void injector_bwd(real *dx, real *grads, const real *dy, const real *x, real gl, const real *c,
                  const real *params, const step_offsets *s, const cglow_model *m, const block_info *b, int G,
                  real *ws)
{
    inj_net w;
    injector_net_carve(&w, m, b, G, ws);
    injector_net_fwd(&w, c, params, s, m, b);
    injector_apply_bwd(dx, dy, x, gl, &w, b, 0, G);
    injector_net_bwd(grads, &w, params, s, m, b);
}
