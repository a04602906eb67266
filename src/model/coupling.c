/* Conditional affine coupling (model.md 2.2): xa = x[:C/2] passes; a CNN of concat(xa, condition
 * map) gives log_s, t for xb: s = (1-clamp) sigmoid(log_s + 2) + clamp, yb = (xb + t) s.
 * Works on G maps at once, tensors (G, C, H, W); c is (G, P). */
#include "model/model.h"
#include <string.h>

typedef struct { real *in1, *col, *h1, *h2, *o, *dout, *dh2, *dh1, *din1; } cp_ws;

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
    /* in1, h1, h2, o; backward: dout, dh2, dh1, din1 (per map); and the convolutions' scratch */
    return G * HW * (cin + Hd + Hd + C + C + Hd + Hd + cin) + conv_scratch(m, b, G);
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
    w.din1 = ws;
    return w;
}

/* in1 (G, C/2 + P, HW) = concat(xa, condition map) */
static void build_input(real *in1, const real *x, const real *c, const cglow_model *m, const block_info *b, int G)
{
    const int C = b->C, HW = b->H * b->W, P = m->cfg.cond_features, cin = C / 2 + P;
    for (int g = 0; g < G; g++) {
        real *dst = in1 + (size_t)g * cin * HW;
        memcpy(dst, x + (size_t)g * C * HW, sizeof(real) * (size_t)(C / 2) * HW);
        for (int j = 0; j < P; j++) {
            real *d = dst + (size_t)(C / 2 + j) * HW;
            for (int i = 0; i < HW; i++) d[i] = c[g * P + j];
        }
    }
}

/* The CNN: o (G, C, HW) from xa and c. h1, h2, o may point into a tape. */
static void net_forward(real *h1, real *h2, real *o, const real *x, const real *c, const real *params,
                        const step_offsets *s, const cglow_model *m, const block_info *b, int G, cp_ws *w)
{
    const int C = b->C, H = b->H, W = b->W, HW = H * W, P = m->cfg.cond_features, Hd = m->cfg.hidden;
    const int cin = C / 2 + P;
    build_input(w->in1, x, c, m, b, G);
    k_conv3x3_fwd(h1, w->in1, params + s->cp_w1, params + s->cp_b1, cin, Hd, H, W, G, 0, w->col);
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
    build_input(w.in1, x, c, m, b, G);
    k_conv3x3_bwd(w.din1, grads + s->cp_w1, grads + s->cp_b1, w.dh1, w.in1, params + s->cp_w1, cin, Hd, H, W, G, 0,
                  w.col);
    for (int g = 0; g < G; g++) {
        const real *d1 = w.din1 + (size_t)g * cin * HW, *dyg = dy + (size_t)g * C * HW;
        real *dxg = dx + (size_t)g * C * HW;
        for (size_t i = 0; i < half; i++) dxg[i] = dyg[i] + d1[i];
    }
}
