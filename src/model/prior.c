/* Gaussian priors of the latents (model.md 2.3).
 * conditional: mean and logvar are MLPs of the scaled condition (P -> Hc -> Hc -> D), logvar
 *   clamped to [-3, 5] straight-through; learned: free tensors of the latent's shape.
 * A group of G maps goes through at once. The MLPs' last layers (Hc -> D, D up to the latent's
 * 2,048 values) run from prepared transposed weights, vectorised over D, and their backward is
 * one GEMM each for the group, not G matrix-vector products of width Hc = 8. */
#include "model/model.h"
#include <string.h>

#define LOGVAR_MIN (-3.0)
#define LOGVAR_MAX 5.0
#define LOG_2PI 1.8378770664093453

/* mean, logvar, dmean, dlogvar (G x D each); each MLP's two hidden layers and their gradients */
size_t prior_group_scratch_size(const cglow_model *m, const block_info *b, int G)
{
    return (size_t)G * (4 * b->zdim + 16 * (size_t)m->cfg.prior_hidden);
}
size_t prior_scratch_size(const cglow_model *m, const block_info *b) { return prior_group_scratch_size(m, b, 1); }

typedef struct { real *mean, *logvar, *dmean, *dlogvar, *a, *da; } prior_ws;

/* a: per MLP (mean, logvar) and map, a1 then a2 (Hc each): a[((k * G + g) * 2 + l) * Hc] */
static prior_ws carve(const cglow_model *m, const block_info *b, int G, real *ws)
{
    const size_t D = b->zdim, Hc = m->cfg.prior_hidden;
    prior_ws w;
    w.mean = ws; ws += G * D;
    w.logvar = ws; ws += G * D;
    w.dmean = ws; ws += G * D;
    w.dlogvar = ws; ws += G * D;
    w.a = ws; ws += 4 * G * Hc;
    w.da = ws;
    return w;
}
static inline real *act(const prior_ws *w, int Hc, int G, int k, int g, int l)
{
    return w->a + ((size_t)((k * G + g) * 2 + l)) * Hc;
}
static inline real *dact(const prior_ws *w, int Hc, int G, int k, int g, int l)
{
    return w->da + ((size_t)((k * G + g) * 2 + l)) * Hc;
}

void prior_prepare(cglow_model *m, const block_info *b)
{
    if (m->cfg.prior != CGLOW_PRIOR_CONDITIONAL) return;
    const int Hc = m->cfg.prior_hidden;
    const size_t D = b->zdim;
    const mlp_offsets *o[2] = {&b->prior_mean, &b->prior_logvar};
    for (int k = 0; k < 2; k++) {
        const real *w3 = m->params + o[k]->w3;
        real *t = m->prep + b->prep_w3t[k];
        for (size_t d = 0; d < D; d++)
            for (int j = 0; j < Hc; j++) t[(size_t)j * D + d] = w3[d * Hc + j];
    }
}

/* out (G x D) = the MLP of each map's condition: a1 = relu(fc1 c), a2 = relu(fc2 a1), then fc3
 * from its transposed weights (prepared): out = b3 + sum_j a2_j w3t_j, vectorised over the D
 * outputs. Each map's sums run in the same order whatever the group: a map's log p does not
 * depend on the maps it is batched with. */
static void mlp_fwd(real *out, const prior_ws *w, int k, const real *c, const real *params, const mlp_offsets *o,
                    const real *w3t, int P, int Hc, int D, int G)
{
    const real *b3 = params + o->b3;
    for (int g = 0; g < G; g++) {
        real *a1 = act(w, Hc, G, k, g, 0), *a2 = act(w, Hc, G, k, g, 1);
        k_linear_fwd(a1, c + (size_t)g * P, params + o->w1, params + o->b1, Hc, P);
        k_relu(a1, Hc);
        k_linear_fwd(a2, a1, params + o->w2, params + o->b2, Hc, Hc);
        k_relu(a2, Hc);
        real *r = out + (size_t)g * D;
        memcpy(r, b3, sizeof(real) * D);
        for (int j = 0; j < Hc; j++) {
            const real a = a2[j], *t = w3t + (size_t)j * D;
#pragma omp simd
            for (int i = 0; i < D; i++) r[i] += a * t[i];
        }
    }
}

/* Back through mlp_fwd: dout (G x D) -> parameter gradients (fc3 as GEMMs over the group). */
static void mlp_bwd(real *grads, const real *dout, const prior_ws *w, int k, const real *c, const real *params,
                    const mlp_offsets *o, int P, int Hc, int D, int G)
{
    /* d fc3 (D x Hc) += dout^T A2; d b3 += column sums of dout; dA2 = dout fc3 */
    cblas_xgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, Hc, G, 1, dout, D, act(w, Hc, G, k, 0, 1), 2 * Hc, 1,
                grads + o->w3, Hc);
    real *db3 = grads + o->b3;
    for (int g = 0; g < G; g++) {
        const real *r = dout + (size_t)g * D;
#pragma omp simd
        for (int i = 0; i < D; i++) db3[i] += r[i];
    }
    cblas_xgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, G, Hc, D, 1, dout, D, params + o->w3, Hc, 0,
                dact(w, Hc, G, k, 0, 1), 2 * Hc);
    for (int g = 0; g < G; g++) {
        real *a1 = act(w, Hc, G, k, g, 0), *a2 = act(w, Hc, G, k, g, 1);
        real *da1 = dact(w, Hc, G, k, g, 0), *da2 = dact(w, Hc, G, k, g, 1);
        k_relu_bwd(da2, a2, Hc);
        k_linear_bwd(da1, grads + o->w2, grads + o->b2, da2, a1, params + o->w2, Hc, Hc);
        k_relu_bwd(da1, a1, Hc);
        k_linear_bwd(NULL, grads + o->w1, grads + o->b1, da1, c + (size_t)g * P, params + o->w1, Hc, P);
    }
}

/* mean and logvar of the G maps (G x D each; logvar clamped for the conditional prior) */
static void mean_logvar(const prior_ws *w, const real *c, const real *params, const cglow_model *m,
                        const block_info *b, int G)
{
    const int D = (int)b->zdim, P = m->cfg.cond_features, Hc = m->cfg.prior_hidden;
    if (m->cfg.prior == CGLOW_PRIOR_LEARNED) {
        for (int g = 0; g < G; g++) {
            memcpy(w->mean + (size_t)g * D, params + b->learned_mean, sizeof(real) * D);
            memcpy(w->logvar + (size_t)g * D, params + b->learned_logvar, sizeof(real) * D);
        }
        return;
    }
    mlp_fwd(w->mean, w, 0, c, params, &b->prior_mean, m->prep + b->prep_w3t[0], P, Hc, D, G);
    mlp_fwd(w->logvar, w, 1, c, params, &b->prior_logvar, m->prep + b->prep_w3t[1], P, Hc, D, G);
    for (size_t i = 0; i < (size_t)G * D; i++) w->logvar[i] = clamp_r(w->logvar[i], LOGVAR_MIN, LOGVAR_MAX);
}

void prior_mean_logvar(real *mean, real *logvar, const real *c, const real *params, const cglow_model *m,
                       const block_info *b, real *ws)
{
    prior_ws w = carve(m, b, 1, ws);
    mean_logvar(&w, c, params, m, b, 1);
    memcpy(mean, w.mean, sizeof(real) * b->zdim);
    memcpy(logvar, w.logvar, sizeof(real) * b->zdim);
}

void prior_logp_group(double *logp, const real *z, size_t zs, const real *c, int G, const real *params,
                      const cglow_model *m, const block_info *b, real *ws)
{
    const size_t D = b->zdim;
    prior_ws w = carve(m, b, G, ws);
    mean_logvar(&w, c, params, m, b, G);
    for (int g = 0; g < G; g++) {
        const real *zg = z + (size_t)g * zs, *mean = w.mean + (size_t)g * D, *logvar = w.logvar + (size_t)g * D;
        /* in the engine's precision, vectorised (exp_r), summed in double */
        double quad = 0, sumlv = 0;
#pragma omp simd reduction(+ : quad, sumlv)
        for (size_t i = 0; i < D; i++) {
            const real d = zg[i] - mean[i];
            quad += (double)(d * d * exp_r(-logvar[i]));
            sumlv += (double)logvar[i];
        }
        logp[g] += -0.5 * quad - 0.5 * (double)D * LOG_2PI - 0.5 * sumlv;
    }
}

double prior_logp(const real *z, const real *c, const real *params, const cglow_model *m, const block_info *b,
                  real *ws)
{
    double lp = 0;
    prior_logp_group(&lp, z, 0, c, 1, params, m, b, ws);
    return lp;
}

void prior_bwd_group(real *dz, size_t dzs, real *grads, const real *z, size_t zs, real g, const real *c, int G,
                     const real *params, const cglow_model *m, const block_info *b, real *ws)
{
    const size_t D = b->zdim;
    const int P = m->cfg.cond_features, Hc = m->cfg.prior_hidden;
    prior_ws w = carve(m, b, G, ws);
    mean_logvar(&w, c, params, m, b, G);
    for (int k = 0; k < G; k++) {
        const real *zk = z + (size_t)k * zs, *mean = w.mean + (size_t)k * D, *logvar = w.logvar + (size_t)k * D;
        real *dzk = dz + (size_t)k * dzs, *dmean = w.dmean + (size_t)k * D, *dlogvar = w.dlogvar + (size_t)k * D;
#pragma omp simd
        for (size_t i = 0; i < D; i++) {
            const real iv = exp_r(-logvar[i]), d = zk[i] - mean[i];
            dzk[i] = -g * d * iv;
            dmean[i] = g * d * iv;
            dlogvar[i] = g * ((real)0.5 * d * d * iv - (real)0.5);   /* clamp is straight-through */
        }
    }
    if (m->cfg.prior == CGLOW_PRIOR_LEARNED) {
        real *gm = grads + b->learned_mean, *gv = grads + b->learned_logvar;
        for (int k = 0; k < G; k++)
            for (size_t i = 0; i < D; i++) {
                gm[i] += w.dmean[(size_t)k * D + i];
                gv[i] += w.dlogvar[(size_t)k * D + i];
            }
        return;
    }
    mlp_bwd(grads, w.dmean, &w, 0, c, params, &b->prior_mean, P, Hc, (int)D, G);
    mlp_bwd(grads, w.dlogvar, &w, 1, c, params, &b->prior_logvar, P, Hc, (int)D, G);
}

void prior_bwd(real *dz, real *grads, const real *z, real g, const real *c, const real *params,
               const cglow_model *m, const block_info *b, real *ws)
{
    prior_bwd_group(dz, 0, grads, z, 0, g, c, 1, params, m, b, ws);
}
