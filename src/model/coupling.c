/* Conditional affine coupling (model.md 2.2): xa = x[:C/2] passes; a CNN of concat(xa, condition
 * map) gives log_s, t for xb: s = (1-clamp) sigmoid(log_s + 2) + clamp, yb = (xb + t) s. */
#include "model/model.h"
#include <string.h>

typedef struct { real *in1, *col, *h1, *h2, *o, *dout, *dh2, *dh1, *din1; } cp_ws;

static size_t col_size(const cglow_model *m, const block_info *b)
{
    const int Hd = m->cfg.hidden, cin = b->C / 2 + m->cfg.cond_features;
    size_t a = k_conv3x3_col_size(cin, Hd, b->H, b->W), z = k_conv3x3_col_size(Hd, b->C, b->H, b->W);
    return a > z ? a : z;
}

size_t coupling_scratch_size(const cglow_model *m, const block_info *b)
{
    const size_t HW = (size_t)b->H * b->W, Hd = m->cfg.hidden, P = m->cfg.cond_features, C = b->C;
    const size_t cin = C / 2 + P;
    /* in1, h1, h2, o; backward: dout, dh2, dh1, din1; and the convolutions' scratch */
    return HW * (cin + Hd + Hd + C + C + Hd + Hd + cin) + col_size(m, b);
}

static cp_ws carve(const cglow_model *m, const block_info *b, real *ws)
{
    const size_t HW = (size_t)b->H * b->W, Hd = m->cfg.hidden, P = m->cfg.cond_features, C = b->C;
    const size_t cin = C / 2 + P;
    cp_ws w;
    w.in1 = ws; ws += HW * cin;
    w.col = ws; ws += col_size(m, b);
    w.h1 = ws; ws += HW * Hd;
    w.h2 = ws; ws += HW * Hd;
    w.o = ws; ws += HW * C;
    w.dout = ws; ws += HW * C;
    w.dh2 = ws; ws += HW * Hd;
    w.dh1 = ws; ws += HW * Hd;
    w.din1 = ws;
    return w;
}

/* The CNN: o (C, HW) from xa (C/2, HW) and c. h1, h2, o may point into a tape. */
static void net_forward(real *h1, real *h2, real *o, const real *xa, const real *c, const real *params,
                        const step_offsets *s, const cglow_model *m, const block_info *b, cp_ws *w)
{
    const int C = b->C, H = b->H, W = b->W, HW = H * W, P = m->cfg.cond_features, Hd = m->cfg.hidden;
    const int cin = C / 2 + P;
    memcpy(w->in1, xa, sizeof(real) * (size_t)(C / 2) * HW);
    for (int j = 0; j < P; j++) {
        real *d = w->in1 + (size_t)(C / 2 + j) * HW;
        for (int i = 0; i < HW; i++) d[i] = c[j];
    }
    k_conv3x3_fwd(h1, w->in1, params + s->cp_w1, params + s->cp_b1, cin, Hd, H, W, 0, w->col);
    k_relu(h1, (size_t)Hd * HW);
    k_conv1x1_fwd(h2, h1, params + s->cp_w2, params + s->cp_b2, Hd, Hd, HW);
    k_relu(h2, (size_t)Hd * HW);
    k_conv3x3_fwd(o, h2, params + s->cp_zw, params + s->cp_zb, Hd, C, H, W, 1, w->col);
    const real *zs = params + s->cp_zs;
    for (int ch = 0; ch < C; ch++) {
        real f = (real)exp(3.0 * zs[ch]);
        real *oc = o + (size_t)ch * HW;
        for (int i = 0; i < HW; i++) oc[i] *= f;
    }
}

double coupling_fwd(real *y, const real *x, const real *c, const real *params, const step_offsets *s,
                    const cglow_model *m, const block_info *b, real *tape, real *ws)
{
    cp_ws w = carve(m, b, ws);
    const int C = b->C, HW = b->H * b->W, Hd = m->cfg.hidden;
    real *h1 = tape ? tape : w.h1, *h2 = tape ? tape + (size_t)Hd * HW : w.h2;
    real *o = tape ? tape + (size_t)2 * Hd * HW : w.o;
    net_forward(h1, h2, o, x, c, params, s, m, b, &w);
    const size_t half = (size_t)(C / 2) * HW;
    const real clamp = m->cfg.coupling_clamp;
    if (y != x) memcpy(y, x, sizeof(real) * half);
    double logdet = 0;
    for (size_t i = 0; i < half; i++) {
        const real sc = (1 - clamp) * sigmoid_r(o[i] + 2) + clamp;
        y[half + i] = (x[half + i] + o[half + i]) * sc;
        logdet += log((double)sc);
    }
    return logdet;
}

void coupling_inv(real *x, const real *y, const real *c, const real *params, const step_offsets *s,
                  const cglow_model *m, const block_info *b, real *ws)
{
    cp_ws w = carve(m, b, ws);
    const int C = b->C, HW = b->H * b->W;
    net_forward(w.h1, w.h2, w.o, y, c, params, s, m, b, &w);
    const size_t half = (size_t)(C / 2) * HW;
    const real clamp = m->cfg.coupling_clamp;
    if (x != y) memcpy(x, y, sizeof(real) * half);
    for (size_t i = 0; i < half; i++) {
        const real sc = (1 - clamp) * sigmoid_r(w.o[i] + 2) + clamp;
        x[half + i] = y[half + i] / sc - w.o[half + i];
    }
}

void coupling_bwd(real *dx, real *grads, const real *dy, const real *x, real g, const real *c,
                  const real *params, const step_offsets *s, const cglow_model *m, const block_info *b,
                  const real *tape, real *ws)
{
    cp_ws w = carve(m, b, ws);
    const int C = b->C, H = b->H, W = b->W, HW = H * W, Hd = m->cfg.hidden, P = m->cfg.cond_features;
    const int cin = C / 2 + P;
    const real *h1 = tape, *h2 = tape + (size_t)Hd * HW, *o = tape + (size_t)2 * Hd * HW;
    const size_t half = (size_t)(C / 2) * HW;
    const real clamp = m->cfg.coupling_clamp;
    /* yb = (xb + t) s; logdet = sum log s */
    for (size_t i = 0; i < half; i++) {
        const real sg = sigmoid_r(o[i] + 2), sc = (1 - clamp) * sg + clamp;
        const real gy = dy[half + i];
        dx[half + i] = gy * sc;
        w.dout[half + i] = gy * sc;                                   /* d t */
        const real ds = gy * (x[half + i] + o[half + i]) + g / sc;
        w.dout[i] = ds * (1 - clamp) * sg * (1 - sg);                 /* d log_s */
    }
    /* o = (conv(h2; pad 1) + zb) * exp(3 zs) */
    const real *zs = params + s->cp_zs;
    real *gzs = grads + s->cp_zs;
    for (int ch = 0; ch < C; ch++) {
        real f = (real)exp(3.0 * zs[ch]), acc = 0;
        real *d = w.dout + (size_t)ch * HW;
        const real *oc = o + (size_t)ch * HW;
        for (int i = 0; i < HW; i++) { acc += d[i] * oc[i]; d[i] *= f; }
        gzs[ch] += 3 * acc;
    }
    k_conv3x3_bwd(w.dh2, grads + s->cp_zw, grads + s->cp_zb, w.dout, h2, params + s->cp_zw, Hd, C, H, W, 1, w.col);
    k_relu_bwd(w.dh2, h2, (size_t)Hd * HW);
    k_conv1x1_bwd(w.dh1, grads + s->cp_w2, grads + s->cp_b2, w.dh2, h1, params + s->cp_w2, Hd, Hd, HW);
    k_relu_bwd(w.dh1, h1, (size_t)Hd * HW);
    /* the conv's input: concat(xa, condition map) */
    memcpy(w.in1, x, sizeof(real) * half);
    for (int j = 0; j < P; j++) {
        real *d = w.in1 + (size_t)(C / 2 + j) * HW;
        for (int i = 0; i < HW; i++) d[i] = c[j];
    }
    k_conv3x3_bwd(w.din1, grads + s->cp_w1, grads + s->cp_b1, w.dh1, w.in1, params + s->cp_w1, cin, Hd, H, W, 0,
                  w.col);
    for (size_t i = 0; i < half; i++) dx[i] = dy[i] + w.din1[i];
}
