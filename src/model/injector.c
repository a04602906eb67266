/* Affine injector (conditional actnorm, model.md 2.2): a CNN of the broadcast condition gives a
 * per-position bias and log-scale; y = x * exp(log_scale) + bias.
 *
 * The CNN reads a constant map, so its output at a pixel depends only on the condition and on
 * the pixel's distance to the border (two padded 3x3 convolutions: within two pixels). For
 * H > 5 every row is one of 5 classes (0, 1, interior, H-2, H-1), likewise columns; the CNN run
 * on a 5x5 map gives exactly those 25 values. We run it on min(H,5) x min(W,5) and map each
 * pixel to its class: exact, and it removes the injectors' per-pixel convolution cost. */
#include "model/model.h"
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

size_t injector_scratch_size(const cglow_model *m, const block_info *b)
{
    const size_t R = (size_t)red_size(b->H) * red_size(b->W), Hd = m->cfg.hidden, P = m->cfg.cond_features;
    const int rh = red_size(b->H), rw = red_size(b->W);
    size_t c1 = k_conv3x3_col_size((int)P, (int)Hd, rh, rw), c2 = k_conv3x3_col_size((int)Hd, 2 * b->C, rh, rw);
    /* cmap, a1, a2, o, e(ls) + backward: do, da2, da1; and the convolutions' scratch */
    return R * (P + Hd + Hd + 2 * b->C + b->C + 2 * b->C + Hd + Hd) + (c1 > c2 ? c1 : c2);
}

typedef struct { real *cmap, *col, *a1, *a2, *o, *e, *dout, *da2, *da1; int rh, rw, R; } inj_ws;

static inj_ws carve(const cglow_model *m, const block_info *b, real *ws)
{
    inj_ws w;
    const int Hd = m->cfg.hidden, P = m->cfg.cond_features;
    w.rh = red_size(b->H); w.rw = red_size(b->W); w.R = w.rh * w.rw;
    const int R = w.R;
    size_t c1 = k_conv3x3_col_size(P, Hd, w.rh, w.rw), c2 = k_conv3x3_col_size(Hd, 2 * b->C, w.rh, w.rw);
    w.cmap = ws; ws += R * P;
    w.col = ws; ws += c1 > c2 ? c1 : c2;
    w.a1 = ws; ws += R * Hd;
    w.a2 = ws; ws += R * Hd;
    w.o = ws; ws += R * 2 * b->C;
    w.e = ws; ws += R * b->C;
    w.dout = ws; ws += R * 2 * b->C;
    w.da2 = ws; ws += R * Hd;
    w.da1 = ws;
    return w;
}

/* The CNN on the reduced map: o (2C, R) raw (unclamped); e = exp(clamped log-scale) (C, R). */
static void net_forward(inj_ws *w, const real *c, const real *params, const step_offsets *s, const cglow_model *m,
                        const block_info *b)
{
    const int P = m->cfg.cond_features, Hd = m->cfg.hidden, C = b->C, R = w->R;
    for (int j = 0; j < P; j++)
        for (int i = 0; i < R; i++) w->cmap[j * R + i] = c[j];
    k_conv3x3_fwd(w->a1, w->cmap, params + s->inj_w1, params + s->inj_b1, P, Hd, w->rh, w->rw, 0, w->col);
    k_relu(w->a1, (size_t)Hd * R);
    k_conv1x1_fwd(w->a2, w->a1, params + s->inj_w2, params + s->inj_b2, Hd, Hd, R);
    k_relu(w->a2, (size_t)Hd * R);
    k_conv3x3_fwd(w->o, w->a2, params + s->inj_zw, params + s->inj_zb, Hd, 2 * C, w->rh, w->rw, 1, w->col);
    const real *zs = params + s->inj_zs;
    for (int ch = 0; ch < 2 * C; ch++) {
        real f = (real)exp(3.0 * zs[ch]);
        for (int i = 0; i < R; i++) w->o[ch * R + i] *= f;
    }
    for (int i = 0; i < C * R; i++) w->e[i] = (real)exp((double)clamp_r(w->o[C * R + i], INJ_LS_MIN, INJ_LS_MAX));
}

/* Sum of the clamped log-scales over the full map. */
static double net_logdet(const inj_ws *w, const block_info *b)
{
    double sum = 0;
    for (int ch = 0; ch < b->C; ch++)
        for (int ri = 0; ri < w->rh; ri++)
            for (int rj = 0; rj < w->rw; rj++) {
                real ls = clamp_r(w->o[(b->C + ch) * w->R + ri * w->rw + rj], INJ_LS_MIN, INJ_LS_MAX);
                sum += (double)ls * red_count(ri, b->H) * red_count(rj, b->W);
            }
    return sum;
}

double injector_fwd(real *y, const real *x, const real *c, const real *params, const step_offsets *s,
                    const cglow_model *m, const block_info *b, real *ws)
{
    inj_ws w = carve(m, b, ws);
    net_forward(&w, c, params, s, m, b);
    const int C = b->C, H = b->H, W = b->W, R = w.R;
    for (int ch = 0; ch < C; ch++)
        for (int i = 0; i < H; i++) {
            const int ri = red_index(i, H);
            const real *bias = w.o + ch * R + ri * w.rw, *e = w.e + ch * R + ri * w.rw;
            const real *xr = x + ((size_t)ch * H + i) * W;
            real *yr = y + ((size_t)ch * H + i) * W;
            for (int j = 0; j < W; j++) {
                const int rj = red_index(j, W);
                yr[j] = xr[j] * e[rj] + bias[rj];
            }
        }
    return net_logdet(&w, b);
}

void injector_inv(real *x, const real *y, const real *c, const real *params, const step_offsets *s,
                  const cglow_model *m, const block_info *b, real *ws)
{
    inj_ws w = carve(m, b, ws);
    net_forward(&w, c, params, s, m, b);
    const int C = b->C, H = b->H, W = b->W, R = w.R;
    for (int ch = 0; ch < C; ch++)
        for (int i = 0; i < H; i++) {
            const int ri = red_index(i, H);
            const real *bias = w.o + ch * R + ri * w.rw, *e = w.e + ch * R + ri * w.rw;
            const real *yr = y + ((size_t)ch * H + i) * W;
            real *xr = x + ((size_t)ch * H + i) * W;
            for (int j = 0; j < W; j++) {
                const int rj = red_index(j, W);
                xr[j] = (yr[j] - bias[rj]) / e[rj];
            }
        }
}

void injector_bwd(real *dx, real *grads, const real *dy, const real *x, real g, const real *c,
                  const real *params, const step_offsets *s, const cglow_model *m, const block_info *b,
                  real *ws)
{
    inj_ws w = carve(m, b, ws);
    net_forward(&w, c, params, s, m, b);
    const int C = b->C, H = b->H, W = b->W, R = w.R, P = m->cfg.cond_features, Hd = m->cfg.hidden;
    real *dbias = w.dout, *dls = w.dout + C * R;
    memset(w.dout, 0, sizeof(real) * 2 * C * R);
    for (int ch = 0; ch < C; ch++) {
        for (int i = 0; i < H; i++) {
            const int ri = red_index(i, H);
            const real *e = w.e + ch * R + ri * w.rw;
            real *db = dbias + ch * R + ri * w.rw, *dl = dls + ch * R + ri * w.rw;
            const size_t row = ((size_t)ch * H + i) * W;
            for (int j = 0; j < W; j++) {
                const int rj = red_index(j, W);
                const real gy = dy[row + j], t = gy * e[rj];
                dx[row + j] = t;
                db[rj] += gy;
                dl[rj] += t * x[row + j];   /* d/d log_scale of x*exp(log_scale) */
            }
        }
        /* logdet = sum of log_scale over all pixels; the clamp is straight-through. */
        for (int ri = 0; ri < w.rh; ri++)
            for (int rj = 0; rj < w.rw; rj++)
                dls[ch * R + ri * w.rw + rj] += g * (real)(red_count(ri, H) * red_count(rj, W));
    }
    /* Back through o = (conv(a2; pad 1) + zb) * exp(3 zs). */
    const real *zs = params + s->inj_zs;
    real *gzs = grads + s->inj_zs;
    for (int ch = 0; ch < 2 * C; ch++) {
        real f = (real)exp(3.0 * zs[ch]), acc = 0;
        for (int i = 0; i < R; i++) {
            acc += w.dout[ch * R + i] * w.o[ch * R + i];
            w.dout[ch * R + i] *= f;
        }
        gzs[ch] += 3 * acc;
    }
    k_conv3x3_bwd(w.da2, grads + s->inj_zw, grads + s->inj_zb, w.dout, w.a2, params + s->inj_zw, Hd, 2 * C, w.rh,
                  w.rw, 1, w.col);
    k_relu_bwd(w.da2, w.a2, (size_t)Hd * R);
    k_conv1x1_bwd(w.da1, grads + s->inj_w2, grads + s->inj_b2, w.da2, w.a1, params + s->inj_w2, Hd, Hd, R);
    k_relu_bwd(w.da1, w.a1, (size_t)Hd * R);
    k_conv3x3_bwd(NULL, grads + s->inj_w1, grads + s->inj_b1, w.da1, w.cmap, params + s->inj_w1, P, Hd, w.rh,
                  w.rw, 0, w.col);
}
