/* Whole layers of a flow step on the device, composed of the kcu_* primitives: the conditioner
 * CNN, the coupling layer and the injector layer, forward / inverse / backward, in the same
 * order of operations as src/model/coupling.c and injector.c. Host code only (no kernels here):
 * this is what a device flow (flow_cuda.c) calls per step, with the step's parameter pointers. */
#include "kernels/cuda/common.cuh"

#define TRY(call)                   \
    do {                            \
        int rc_ = (call);           \
        if (rc_) return rc_;        \
    } while (0)

static size_t max3(size_t a, size_t b, size_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

/* ---------------------------------------------------------------- the conditioner CNN */
static size_t conv_scratch(int Cin, int Hd, int Co, int H, int W, int G)
{
    return max3(kcu_conv3x3_scratch(Cin, Hd, H, W, G), kcu_conv3x3_scratch(Hd, Co, H, W, G),
                kcu_conv1x1_scratch(Hd, Hd, H * W, G));
}

extern "C" size_t kcu_net_scratch(int Cin, int Hd, int Co, int H, int W, int G)
{
    return conv_scratch(Cin, Hd, Co, H, W, G) + 2 * (size_t)G * Hd * H * W;
}

extern "C" int kcu_net_fwd(float *h1, float *h2, float *o, const float *in, const kcu_net *p, int Cin, int Hd, int Co,
                           int H, int W, int G, float *scratch)
{
    const int HW = H * W;
    const size_t nh = (size_t)G * Hd * HW;
    TRY(kcu_conv3x3_fwd(h1, in, p->w1, p->b1, Cin, Hd, H, W, G, 0.0f, scratch));
    TRY(kcu_relu(h1, nh));
    TRY(kcu_conv1x1_fwd(h2, h1, p->w2, p->b2, Hd, Hd, HW, G, scratch));
    TRY(kcu_relu(h2, nh));
    TRY(kcu_conv3x3_fwd(o, h2, p->zw, p->zb, Hd, Co, H, W, G, 1.0f, scratch));
    return kcu_channel_scale_fwd(o, p->zs, Co, HW, G);
}

extern "C" int kcu_net_bwd(float *din, const kcu_net_grad *gr, float *dout, const float *in, const float *h1,
                           const float *h2, const float *o, const kcu_net *p, int Cin, int Hd, int Co, int H, int W,
                           int G, float *scratch)
{
    const int HW = H * W;
    const size_t nh = (size_t)G * Hd * HW;
    float *cs = scratch, *dh2 = scratch + conv_scratch(Cin, Hd, Co, H, W, G), *dh1 = dh2 + nh;
    TRY(kcu_channel_scale_bwd(dout, gr->zs, o, p->zs, Co, HW, G));
    TRY(kcu_conv3x3_bwd(dh2, gr->zw, gr->zb, dout, h2, p->zw, Hd, Co, H, W, G, 1.0f, cs));
    TRY(kcu_relu_bwd(dh2, h2, nh));
    TRY(kcu_conv1x1_bwd(dh1, gr->w2, gr->b2, dh2, h1, p->w2, Hd, Hd, HW, G, cs));
    TRY(kcu_relu_bwd(dh1, h1, nh));
    return kcu_conv3x3_bwd(din, gr->w1, gr->b1, dh1, in, p->w1, Cin, Hd, H, W, G, 0.0f, cs);
}

/* ---------------------------------------------------------------- coupling */
/* scratch: in1 (G, cin, HW) | tape (G, 2Hd + C, HW) | dout (G, C, HW) | din1 (G, cin, HW) | net */
typedef struct { float *in1, *tape, *dout, *din1, *net; } cp_ws;
static cp_ws cp_carve(float *s, int C, int P, int Hd, int HW, int G)
{
    const size_t cin = C / 2 + P;
    cp_ws w;
    w.in1 = s; s += (size_t)G * cin * HW;
    w.tape = s; s += (size_t)G * (2 * Hd + C) * HW;
    w.dout = s; s += (size_t)G * C * HW;
    w.din1 = s; s += (size_t)G * cin * HW;
    w.net = s;
    return w;
}

extern "C" size_t kcu_coupling_scratch(int C, int P, int Hd, int H, int W, int G)
{
    const size_t HW = (size_t)H * W, cin = C / 2 + P;
    return (size_t)G * HW * (2 * cin + 2 * Hd + 2 * C) + kcu_net_scratch((int)cin, Hd, C, H, W, G);
}

extern "C" int kcu_coupling_layer_fwd(float *y, double *logdet, const float *x, const float *c, const kcu_net *p,
                                      int C, int P, int Hd, int H, int W, int G, float clamp, float *tape,
                                      float *scratch)
{
    const int HW = H * W, cin = C / 2 + P;
    cp_ws w = cp_carve(scratch, C, P, Hd, HW, G);
    float *h1 = tape ? tape : w.tape, *h2 = h1 + (size_t)G * Hd * HW, *o = h2 + (size_t)G * Hd * HW;
    TRY(kcu_concat_cond(w.in1, x, C, C / 2, c, P, HW, G));
    TRY(kcu_net_fwd(h1, h2, o, w.in1, p, cin, Hd, C, H, W, G, w.net));
    return kcu_coupling_fwd(y, x, o, C, HW, G, clamp, logdet);
}

extern "C" int kcu_coupling_layer_inv(float *x, const float *y, const float *c, const kcu_net *p, int C, int P, int Hd,
                                      int H, int W, int G, float clamp, float *scratch)
{
    const int HW = H * W, cin = C / 2 + P;
    cp_ws w = cp_carve(scratch, C, P, Hd, HW, G);
    float *h1 = w.tape, *h2 = h1 + (size_t)G * Hd * HW, *o = h2 + (size_t)G * Hd * HW;
    TRY(kcu_concat_cond(w.in1, y, C, C / 2, c, P, HW, G));   /* xa = ya */
    TRY(kcu_net_fwd(h1, h2, o, w.in1, p, cin, Hd, C, H, W, G, w.net));
    return kcu_coupling_inv(x, y, o, C, HW, G, clamp);
}

extern "C" int kcu_coupling_layer_bwd(float *dx, const kcu_net_grad *gr, const float *dy, const float *x, float g,
                                      const float *c, const kcu_net *p, int C, int P, int Hd, int H, int W, int G,
                                      float clamp, const float *tape, float *scratch)
{
    const int HW = H * W, cin = C / 2 + P;
    cp_ws w = cp_carve(scratch, C, P, Hd, HW, G);
    const float *h1 = tape, *h2 = h1 + (size_t)G * Hd * HW, *o = h2 + (size_t)G * Hd * HW;
    TRY(kcu_coupling_bwd(dx, w.dout, dy, x, o, g, C, HW, G, clamp));
    TRY(kcu_concat_cond(w.in1, x, C, C / 2, c, P, HW, G));
    TRY(kcu_net_bwd(w.din1, gr, w.dout, w.in1, h1, h2, o, p, cin, Hd, C, H, W, G, w.net));
    return kcu_add_channels(dx, C, 0, w.din1, cin, 0, C / 2, HW, G);
}

/* ---------------------------------------------------------------- injector */
/* scratch: cmap (G, P, R) | a1, a2 (G, Hd, R) | o, dout (G, 2C, R) | net; R = min(H,5) min(W,5) */
typedef struct { float *cmap, *a1, *a2, *o, *dout, *net; int rh, rw, R; } inj_ws;
static inj_ws inj_carve(float *s, int C, int P, int Hd, int H, int W, int G)
{
    inj_ws w;
    w.rh = H < 5 ? H : 5; w.rw = W < 5 ? W : 5; w.R = w.rh * w.rw;
    const size_t R = w.R;
    w.cmap = s; s += (size_t)G * P * R;
    w.a1 = s; s += (size_t)G * Hd * R;
    w.a2 = s; s += (size_t)G * Hd * R;
    w.o = s; s += (size_t)G * 2 * C * R;
    w.dout = s; s += (size_t)G * 2 * C * R;
    w.net = s;
    return w;
}

extern "C" size_t kcu_injector_scratch(int C, int P, int Hd, int H, int W, int G)
{
    const int rh = H < 5 ? H : 5, rw = W < 5 ? W : 5;
    const size_t R = (size_t)rh * rw;
    return (size_t)G * R * (P + 2 * Hd + 4 * C) + kcu_net_scratch(P, Hd, 2 * C, rh, rw, G);
}

static int inj_net(inj_ws *w, const float *c, const kcu_net *p, int C, int P, int Hd, int G)
{
    TRY(kcu_concat_cond(w->cmap, NULL, 0, 0, c, P, w->R, G));
    return kcu_net_fwd(w->a1, w->a2, w->o, w->cmap, p, P, Hd, 2 * C, w->rh, w->rw, G, w->net);
}

extern "C" int kcu_injector_layer_fwd(float *y, double *logdet, const float *x, const float *c, const kcu_net *p,
                                      int C, int P, int Hd, int H, int W, int G, float *scratch)
{
    inj_ws w = inj_carve(scratch, C, P, Hd, H, W, G);
    TRY(inj_net(&w, c, p, C, P, Hd, G));
    return kcu_injector_fwd(y, x, w.o, C, H, W, G, logdet);
}

extern "C" int kcu_injector_layer_inv(float *x, const float *y, const float *c, const kcu_net *p, int C, int P, int Hd,
                                      int H, int W, int G, float *scratch)
{
    inj_ws w = inj_carve(scratch, C, P, Hd, H, W, G);
    TRY(inj_net(&w, c, p, C, P, Hd, G));
    return kcu_injector_inv(x, y, w.o, C, H, W, G);
}

extern "C" int kcu_injector_layer_bwd(float *dx, const kcu_net_grad *gr, const float *dy, const float *x, float g,
                                      const float *c, const kcu_net *p, int C, int P, int Hd, int H, int W, int G,
                                      float *scratch)
{
    inj_ws w = inj_carve(scratch, C, P, Hd, H, W, G);
    TRY(inj_net(&w, c, p, C, P, Hd, G));
    TRY(kcu_injector_bwd(dx, w.dout, dy, x, w.o, g, C, H, W, G));
    return kcu_net_bwd(NULL, gr, w.dout, w.cmap, w.a1, w.a2, w.o, p, P, Hd, 2 * C, w.rh, w.rw, G, w.net);
}

/* ---------------------------------------------------------------- invertible 1x1 convolution */
extern "C" int kcu_invconv_fwd(float *y, double *logdet, double ld, const float *x, const float *w, int C, int HW,
                               int G, float *scratch)
{
    TRY(kcu_conv1x1_fwd(y, x, w, NULL, C, C, HW, G, scratch));
    return logdet ? kcu_add_scalar_d(logdet, ld, G) : 0;
}

extern "C" int kcu_invconv_inv(float *x, const float *y, const float *winv, int C, int HW, int G, float *scratch)
{
    return kcu_conv1x1_fwd(x, y, winv, NULL, C, C, HW, G, scratch);
}

extern "C" int kcu_invconv_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w, int C, int HW,
                               int G, float *scratch)
{
    return kcu_conv1x1_bwd(dx, dw, NULL, dy, x, w, C, C, HW, G, scratch);
}

/* ---------------------------------------------------------------- conditional prior */
/* scratch: mean, logvar, dmean, dlogvar (G, D) | acts (4 x (G, Hc)) | dacts (2 x (G, Hc)) */
extern "C" size_t kcu_prior_scratch(int P, int Hc, int D, int G)
{
    (void)P;
    return (size_t)G * (4 * (size_t)D + 6 * (size_t)Hc);
}

static int mlp_fwd(float *out, float *a1, float *a2, const float *c, const kcu_mlp *m, int P, int Hc, int D, int G)
{
    TRY(kcu_linear_fwd(a1, c, m->w1, m->b1, Hc, P, G));
    TRY(kcu_relu(a1, (size_t)G * Hc));
    TRY(kcu_linear_fwd(a2, a1, m->w2, m->b2, Hc, Hc, G));
    TRY(kcu_relu(a2, (size_t)G * Hc));
    return kcu_linear_fwd(out, a2, m->w3, m->b3, D, Hc, G);
}

static int mlp_bwd(const kcu_mlp_grad *gr, const float *dout, const float *a1, const float *a2, float *da1, float *da2,
                   const float *c, const kcu_mlp *m, int P, int Hc, int D, int G)
{
    TRY(kcu_linear_bwd(da2, gr->w3, gr->b3, dout, a2, m->w3, D, Hc, G));
    TRY(kcu_relu_bwd(da2, a2, (size_t)G * Hc));
    TRY(kcu_linear_bwd(da1, gr->w2, gr->b2, da2, a1, m->w2, Hc, Hc, G));
    TRY(kcu_relu_bwd(da1, a1, (size_t)G * Hc));
    return kcu_linear_bwd(NULL, gr->w1, gr->b1, da1, c, m->w1, Hc, P, G);
}

typedef struct { float *mean, *logvar, *dmean, *dlogvar, *a1m, *a2m, *a1v, *a2v, *da1, *da2; } pr_ws;
static pr_ws pr_carve(float *s, int Hc, int D, int G)
{
    pr_ws w;
    const size_t nd = (size_t)G * D, nh = (size_t)G * Hc;
    w.mean = s; w.logvar = s + nd; w.dmean = s + 2 * nd; w.dlogvar = s + 3 * nd;
    s += 4 * nd;
    w.a1m = s; w.a2m = s + nh; w.a1v = s + 2 * nh; w.a2v = s + 3 * nh; w.da1 = s + 4 * nh; w.da2 = s + 5 * nh;
    return w;
}

static int mean_logvar(pr_ws *w, const float *c, const kcu_mlp *mean, const kcu_mlp *logvar, int P, int Hc, int D,
                       int G)
{
    TRY(mlp_fwd(w->mean, w->a1m, w->a2m, c, mean, P, Hc, D, G));
    TRY(mlp_fwd(w->logvar, w->a1v, w->a2v, c, logvar, P, Hc, D, G));
    return kcu_clamp(w->logvar, (size_t)G * D, -3.0f, 5.0f);
}

extern "C" int kcu_prior_layer_logp(double *logp, const float *z, int zs, const float *c, const kcu_mlp *mean,
                                    const kcu_mlp *logvar, int P, int Hc, int D, int G, float *scratch)
{
    pr_ws w = pr_carve(scratch, Hc, D, G);
    TRY(mean_logvar(&w, c, mean, logvar, P, Hc, D, G));
    return kcu_prior_logp(logp, z, zs, w.mean, w.logvar, D, D, G);
}

extern "C" int kcu_prior_layer_bwd(float *dz, const kcu_mlp_grad *gmean, const kcu_mlp_grad *glogvar, const float *z,
                                   int zs, float g, const float *c, const kcu_mlp *mean, const kcu_mlp *logvar, int P,
                                   int Hc, int D, int G, float *scratch)
{
    pr_ws w = pr_carve(scratch, Hc, D, G);
    TRY(mean_logvar(&w, c, mean, logvar, P, Hc, D, G));
    TRY(kcu_prior_bwd(dz, w.dmean, w.dlogvar, z, zs, w.mean, w.logvar, D, g, D, G));
    TRY(mlp_bwd(gmean, w.dmean, w.a1m, w.a2m, w.da1, w.da2, c, mean, P, Hc, D, G));
    return mlp_bwd(glogvar, w.dlogvar, w.a1v, w.a2v, w.da1, w.da2, c, logvar, P, Hc, D, G);
}
