/* Conditional affine coupling (model.md 2.2): xa = x[:C/2] passes; a CNN of concat(xa, condition
 * map) gives log_s, t for xb: s = (1-clamp) sigmoid(log_s + 2) + clamp, yb = (xb + t) s.
 * Works on G maps at once, tensors (G, C, H, W); c is (G, P). */
#include "model/model.h"
#include <string.h>

typedef struct { real *in1, *col, *h1, *h2, *o, *dout, *dh2, *dh1, *din1, *wx, *dwx, *T; } cp_ws;

static size_t conv_scratch(const cglow_model *m, const block_info *b, int G)
{
    const int Hd = m->cfg.hidden, cin = b->C / 2 + m->cfg.cond_features, HW = b->H * b->W;
    size_t a = k_conv3x3_scratch(cin, Hd, b->H, b->W, G), z = k_conv3x3_scratch(Hd, b->C, b->H, b->W, G);
    size_t o = k_conv1x1_scratch(Hd, Hd, HW, G), mx = a > z ? a : z;
    return mx > o ? mx : o;
}

size_t coupling_scratch_size(const cglow_model *m, const block_info *b, int G)
{
    const size_t HW = (size_t)b->H * b->W, Hd = m->cfg.hidden, P = m->cfg.cond_features, C = b->C;
    const size_t cin = C / 2 + P;
    /* in1, h1, h2, o; backward: dout, dh2, dh1, din1 (per map); the convolutions' scratch; the
     * data part of conv1's weight and its gradient; the condition tables */
    return G * HW * (cin + Hd + Hd + C + C + Hd + Hd + cin) + conv_scratch(m, b, G) + 2 * Hd * (C / 2) * 9 +
           (size_t)G * Hd * 16 + 16;
}

static cp_ws carve(const cglow_model *m, const block_info *b, int G, real *ws)
{
    const size_t HW = (size_t)b->H * b->W * G, Hd = m->cfg.hidden, P = m->cfg.cond_features, C = b->C;
    const size_t cin = C / 2 + P;
    cp_ws w;
    w.in1 = ws; ws += HW * cin;
    w.col = ws; ws += conv_scratch(m, b, G);
    w.h1 = ws; ws += HW * Hd;
    w.h2 = ws; ws += HW * Hd;
    w.o = ws; ws += HW * C;
    w.dout = ws; ws += HW * C;
    w.dh2 = ws; ws += HW * Hd;
    w.dh1 = ws; ws += HW * Hd;
    w.din1 = ws; ws += HW * cin;
    w.wx = ws; ws += Hd * (C / 2) * 9;
    w.dwx = ws; ws += Hd * (C / 2) * 9;
    w.T = ws;
    return w;
}

/* conv1 reads concat(xa, condition map). The condition channels are constant over the map, so
 * their zero-padded 3x3 convolution depends only on which taps fall inside it: a table per map,
 * output channel and (row, column) border flags. conv1 then runs on xa alone (C/2 channels
 * instead of C/2 + P: half the work in the first block) and the table is added. */
static inline int edge_flags(int i, int n) { return (i == 0) | ((i == n - 1) << 1); }
static inline int tap_inside(int k, int f) { return k == 1 || (k == 0 && !(f & 1)) || (k == 2 && !(f & 2)); }

/* in1 (G, C/2, HW) = xa of each map; wx (Hd, C/2, 9) = conv1's weights on xa */
static void build_input(real *in1, real *wx, const real *x, const real *w1, const cglow_model *m, const block_info *b,
                        int G)
{
    const int C = b->C, HW = b->H * b->W, Cx = C / 2, cin = Cx + m->cfg.cond_features, Hd = m->cfg.hidden;
    for (int g = 0; g < G; g++) memcpy(in1 + (size_t)g * Cx * HW, x + (size_t)g * C * HW, sizeof(real) * Cx * HW);
    for (int o = 0; o < Hd; o++) memcpy(wx + (size_t)o * Cx * 9, w1 + (size_t)o * cin * 9, sizeof(real) * Cx * 9);
}

/* T[(g*Hd + o)*16 + rf*4 + cf] = sum_j c_gj * sum of w1[o, Cx + j, taps inside for flags rf, cf] */
static void cond_table(real *T, const real *w1, const real *c, const cglow_model *m, const block_info *b, int G)
{
    const int Cx = b->C / 2, P = m->cfg.cond_features, cin = Cx + P, Hd = m->cfg.hidden;
    for (int o = 0; o < Hd; o++)
        for (int f = 0; f < 16; f++) {
            const int rf = f >> 2, cf = f & 3;
            real wsum[CGLOW_MAX_COND];
            for (int j = 0; j < P; j++) {
                const real *k = w1 + ((size_t)o * cin + Cx + j) * 9;
                real acc = 0;
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++)
                        if (tap_inside(ky, rf) && tap_inside(kx, cf)) acc += k[ky * 3 + kx];
                wsum[j] = acc;
            }
            for (int g = 0; g < G; g++) {
                real v = 0;
                for (int j = 0; j < P; j++) v += c[g * P + j] * wsum[j];
                T[((size_t)g * Hd + o) * 16 + f] = v;
            }
        }
}

/* h1 += the condition channels' contribution */
static void add_cond(real *h1, const real *T, const block_info *b, int Hd, int G)
{
    const int H = b->H, W = b->W;
    for (int g = 0; g < G; g++)
        for (int o = 0; o < Hd; o++) {
            const real *t = T + ((size_t)g * Hd + o) * 16;
            real *h = h1 + ((size_t)g * Hd + o) * H * W;
            for (int y = 0; y < H; y++) {
                const real *tr = t + edge_flags(y, H) * 4;
                real *r = h + (size_t)y * W;
                if (W == 1) { r[0] += tr[3]; continue; }
                r[0] += tr[1];
                const real mid = tr[0];
                for (int x2 = 1; x2 < W - 1; x2++) r[x2] += mid;
                r[W - 1] += tr[2];
            }
        }
}

/* The condition channels' weight gradient: d w1[o, Cx + j, tap] += sum_g c_gj * (sum of dh1 over
 * the pixels where the tap is inside), from the sums of dh1 per (row, column) border flags. */
static void cond_weight_grad(real *gw1, const real *dh1, const real *c, const cglow_model *m, const block_info *b, int G)
{
    const int H = b->H, W = b->W, Cx = b->C / 2, P = m->cfg.cond_features, cin = Cx + P, Hd = m->cfg.hidden;
    for (int o = 0; o < Hd; o++) {
        double S[CGLOW_MAX_COND][16];
        memset(S, 0, sizeof S);
        for (int g = 0; g < G; g++) {
            double sg[16] = {0};
            const real *h = dh1 + ((size_t)g * Hd + o) * H * W;
            for (int y = 0; y < H; y++) {
                const int rf = edge_flags(y, H);
                const real *r = h + (size_t)y * W;
                if (W == 1) { sg[rf * 4 + 3] += r[0]; continue; }
                double mid = 0;
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

/* The CNN: o (G, C, HW) from xa and c. h1, h2, o may point into a tape. */
static void net_forward(real *h1, real *h2, real *o, const real *x, const real *c, const real *params,
                        const step_offsets *s, const cglow_model *m, const block_info *b, int G, cp_ws *w)
{
    const int C = b->C, H = b->H, W = b->W, HW = H * W, Hd = m->cfg.hidden;
    build_input(w->in1, w->wx, x, params + s->cp_w1, m, b, G);
    k_conv3x3_fwd(h1, w->in1, w->wx, params + s->cp_b1, C / 2, Hd, H, W, G, 0, w->col);
    cond_table(w->T, params + s->cp_w1, c, m, b, G);
    add_cond(h1, w->T, b, Hd, G);
    k_relu(h1, (size_t)G * Hd * HW);
    k_conv1x1_fwd(h2, h1, params + s->cp_w2, params + s->cp_b2, Hd, Hd, HW, G, w->col);
    k_relu(h2, (size_t)G * Hd * HW);
    k_conv3x3_fwd(o, h2, params + s->cp_zw, params + s->cp_zb, Hd, C, H, W, G, 1, w->col);
    const real *zs = params + s->cp_zs;
    for (int g = 0; g < G; g++)
        for (int ch = 0; ch < C; ch++) {
            real f = (real)exp(3.0 * zs[ch]);
            real *oc = o + ((size_t)g * C + ch) * HW;
            for (int i = 0; i < HW; i++) oc[i] *= f;
        }
}

void coupling_fwd(real *y, const real *x, const real *c, const real *params, const step_offsets *s,
                  const cglow_model *m, const block_info *b, int G, real *tape, real *ws, double *logdet)
{
    cp_ws w = carve(m, b, G, ws);
    const int C = b->C, HW = b->H * b->W, Hd = m->cfg.hidden;
    const size_t GHW = (size_t)G * HW;
    real *h1 = tape ? tape : w.h1, *h2 = tape ? tape + Hd * GHW : w.h2, *o = tape ? tape + 2 * Hd * GHW : w.o;
    net_forward(h1, h2, o, x, c, params, s, m, b, G, &w);
    const size_t half = (size_t)(C / 2) * HW;
    const real clamp = m->cfg.coupling_clamp;
    for (int g = 0; g < G; g++) {
        const real *xg = x + (size_t)g * C * HW, *og = o + (size_t)g * C * HW;
        real *yg = y + (size_t)g * C * HW;
        if (yg != xg) memcpy(yg, xg, sizeof(real) * half);
        /* sum of log s as the log of products of 256 factors (s >= clamp >= 0: no underflow in
         * double unless clamp < 0.06), one log call per 256 elements */
        double ld = 0, prod = 1;
        for (size_t i = 0; i < half; i++) {
            const real sc = (1 - clamp) * sigmoid_r(og[i] + 2) + clamp;
            yg[half + i] = (xg[half + i] + og[half + i]) * sc;
            prod *= sc;
            if ((i & 255) == 255 || prod < 1e-250) { ld += log(prod); prod = 1; }
        }
        logdet[g] += ld + log(prod);
    }
}

void coupling_inv(real *x, const real *y, const real *c, const real *params, const step_offsets *s,
                  const cglow_model *m, const block_info *b, int G, real *ws)
{
    cp_ws w = carve(m, b, G, ws);
    const int C = b->C, HW = b->H * b->W;
    net_forward(w.h1, w.h2, w.o, y, c, params, s, m, b, G, &w);
    const size_t half = (size_t)(C / 2) * HW;
    const real clamp = m->cfg.coupling_clamp;
    for (int g = 0; g < G; g++) {
        const real *yg = y + (size_t)g * C * HW, *og = w.o + (size_t)g * C * HW;
        real *xg = x + (size_t)g * C * HW;
        if (xg != yg) memcpy(xg, yg, sizeof(real) * half);
        for (size_t i = 0; i < half; i++) {
            const real sc = (1 - clamp) * sigmoid_r(og[i] + 2) + clamp;
            xg[half + i] = yg[half + i] / sc - og[half + i];
        }
    }
}

void coupling_bwd(real *dx, real *grads, const real *dy, const real *x, real gl, const real *c,
                  const real *params, const step_offsets *s, const cglow_model *m, const block_info *b, int G,
                  const real *tape, real *ws)
{
    cp_ws w = carve(m, b, G, ws);
    const int C = b->C, H = b->H, W = b->W, HW = H * W, Hd = m->cfg.hidden, P = m->cfg.cond_features;
    const int cin = C / 2 + P;
    const size_t GHW = (size_t)G * HW;
    const real *h1 = tape, *h2 = tape + Hd * GHW, *o = tape + 2 * Hd * GHW;
    const size_t half = (size_t)(C / 2) * HW;
    const real clamp = m->cfg.coupling_clamp;
    /* yb = (xb + t) s; logdet = sum log s */
    for (int g = 0; g < G; g++) {
        const size_t base = (size_t)g * C * HW;
        const real *og = o + base, *xg = x + base, *dyg = dy + base;
        real *dxg = dx + base, *dog = w.dout + base;
        for (size_t i = 0; i < half; i++) {
            const real sg = sigmoid_r(og[i] + 2), sc = (1 - clamp) * sg + clamp;
            const real gy = dyg[half + i];
            dxg[half + i] = gy * sc;
            dog[half + i] = gy * sc;                                    /* d t */
            const real ds = gy * (xg[half + i] + og[half + i]) + gl / sc;
            dog[i] = ds * (1 - clamp) * sg * (1 - sg);                  /* d log_s */
        }
    }
    /* o = (conv(h2; pad 1) + zb) * exp(3 zs) */
    const real *zs = params + s->cp_zs;
    real *gzs = grads + s->cp_zs;
    for (int ch = 0; ch < C; ch++) {
        real f = (real)exp(3.0 * zs[ch]), acc = 0;
        for (int g = 0; g < G; g++) {
            real *d = w.dout + ((size_t)g * C + ch) * HW;
            const real *oc = o + ((size_t)g * C + ch) * HW;
            for (int i = 0; i < HW; i++) { acc += d[i] * oc[i]; d[i] *= f; }
        }
        gzs[ch] += 3 * acc;
    }
    k_conv3x3_bwd(w.dh2, grads + s->cp_zw, grads + s->cp_zb, w.dout, h2, params + s->cp_zw, Hd, C, H, W, G, 1, w.col);
    k_relu_bwd(w.dh2, h2, (size_t)Hd * GHW);
    k_conv1x1_bwd(w.dh1, grads + s->cp_w2, grads + s->cp_b2, w.dh2, h1, params + s->cp_w2, Hd, Hd, HW, G, w.col);
    k_relu_bwd(w.dh1, h1, (size_t)Hd * GHW);
    build_input(w.in1, w.wx, x, params + s->cp_w1, m, b, G);
    memset(w.dwx, 0, sizeof(real) * Hd * (C / 2) * 9);
    k_conv3x3_bwd(w.din1, w.dwx, grads + s->cp_b1, w.dh1, w.in1, w.wx, C / 2, Hd, H, W, G, 0, w.col);
    for (int o = 0; o < Hd; o++) {
        real *dst = grads + s->cp_w1 + (size_t)o * cin * 9;
        const real *src = w.dwx + (size_t)o * (C / 2) * 9;
        for (int i = 0; i < (C / 2) * 9; i++) dst[i] += src[i];
    }
    cond_weight_grad(grads + s->cp_w1, w.dh1, c, m, b, G);
    for (int g = 0; g < G; g++) {
        const real *d1 = w.din1 + (size_t)g * (C / 2) * HW, *dyg = dy + (size_t)g * C * HW;
        real *dxg = dx + (size_t)g * C * HW;
        for (size_t i = 0; i < half; i++) dxg[i] = dyg[i] + d1[i];
    }
}
