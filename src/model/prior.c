/* Gaussian priors of the latents (model.md 2.3).
 * conditional: mean and logvar are MLPs of the scaled condition (P -> Hc -> Hc -> D), logvar
 *   clamped to [-3, 5] straight-through; learned: free tensors of the latent's shape. */
#include "model/model.h"
#include <string.h>

#define LOGVAR_MIN (-3.0)
#define LOGVAR_MAX 5.0
#define LOG_2PI 1.8378770664093453

size_t prior_scratch_size(const cglow_model *m, const block_info *b)
{
    /* mean, logvar (D each), dmean, dlogvar (D each), MLP activations and their grads */
    return 4 * b->zdim + 8 * (size_t)m->cfg.prior_hidden;
}

/* a1 = relu(fc1 c), a2 = relu(fc2 a1), out = fc3 a2 */
static void mlp_fwd(real *out, real *a1, real *a2, const real *c, const real *params, const mlp_offsets *o, int P,
                    int Hc, int D)
{
    k_linear_fwd(a1, c, params + o->w1, params + o->b1, Hc, P);
    k_relu(a1, Hc);
    k_linear_fwd(a2, a1, params + o->w2, params + o->b2, Hc, Hc);
    k_relu(a2, Hc);
    k_linear_fwd(out, a2, params + o->w3, params + o->b3, D, Hc);
}

static void mlp_bwd(real *grads, const real *dout, const real *a1, const real *a2, real *da1, real *da2,
                    const real *c, const real *params, const mlp_offsets *o, int P, int Hc, int D)
{
    k_linear_bwd(da2, grads + o->w3, grads + o->b3, dout, a2, params + o->w3, D, Hc);
    k_relu_bwd(da2, a2, Hc);
    k_linear_bwd(da1, grads + o->w2, grads + o->b2, da2, a1, params + o->w2, Hc, Hc);
    k_relu_bwd(da1, a1, Hc);
    k_linear_bwd(NULL, grads + o->w1, grads + o->b1, da1, c, params + o->w1, Hc, P);
}

/* mean and logvar (logvar clamped for the conditional prior); acts: 4*Hc activations. */
static void mean_logvar(real *mean, real *logvar, real *acts, const real *c, const real *params,
                        const cglow_model *m, const block_info *b)
{
    const int D = (int)b->zdim, P = m->cfg.cond_features, Hc = m->cfg.prior_hidden;
    if (m->cfg.prior == CGLOW_PRIOR_LEARNED) {
        memcpy(mean, params + b->learned_mean, sizeof(real) * D);
        memcpy(logvar, params + b->learned_logvar, sizeof(real) * D);
        return;
    }
    mlp_fwd(mean, acts, acts + Hc, c, params, &b->prior_mean, P, Hc, D);
    mlp_fwd(logvar, acts + 2 * Hc, acts + 3 * Hc, c, params, &b->prior_logvar, P, Hc, D);
    for (int i = 0; i < D; i++) logvar[i] = clamp_r(logvar[i], LOGVAR_MIN, LOGVAR_MAX);
}

void prior_mean_logvar(real *mean, real *logvar, const real *c, const real *params, const cglow_model *m,
                       const block_info *b, real *ws)
{
    mean_logvar(mean, logvar, ws, c, params, m, b);
}

double prior_logp(const real *z, const real *c, const real *params, const cglow_model *m, const block_info *b,
                  real *ws)
{
    const size_t D = b->zdim;
    real *mean = ws, *logvar = ws + D, *acts = ws + 4 * D;
    mean_logvar(mean, logvar, acts, c, params, m, b);
    /* in the engine's precision, vectorised (exp_r), summed in double */
    double quad = 0, sumlv = 0;
#pragma omp simd reduction(+ : quad, sumlv)
    for (size_t i = 0; i < D; i++) {
        const real d = z[i] - mean[i];
        quad += (double)(d * d * exp_r(-logvar[i]));
        sumlv += (double)logvar[i];
    }
    return -0.5 * quad - 0.5 * (double)D * LOG_2PI - 0.5 * sumlv;
}

void prior_bwd(real *dz, real *grads, const real *z, real g, const real *c, const real *params,
               const cglow_model *m, const block_info *b, real *ws)
{
    const size_t D = b->zdim;
    const int P = m->cfg.cond_features, Hc = m->cfg.prior_hidden;
    real *mean = ws, *logvar = ws + D, *dmean = ws + 2 * D, *dlogvar = ws + 3 * D, *acts = ws + 4 * D;
    real *dacts = acts + 4 * Hc;
    mean_logvar(mean, logvar, acts, c, params, m, b);
#pragma omp simd
    for (size_t i = 0; i < D; i++) {
        const real iv = exp_r(-logvar[i]), d = z[i] - mean[i];
        dz[i] = -g * d * iv;
        dmean[i] = g * d * iv;
        dlogvar[i] = g * ((real)0.5 * d * d * iv - (real)0.5);   /* clamp is straight-through */
    }
    if (m->cfg.prior == CGLOW_PRIOR_LEARNED) {
        real *gm = grads + b->learned_mean, *gv = grads + b->learned_logvar;
        for (size_t i = 0; i < D; i++) { gm[i] += dmean[i]; gv[i] += dlogvar[i]; }
        return;
    }
    mlp_bwd(grads, dmean, acts, acts + Hc, dacts, dacts + Hc, c, params, &b->prior_mean, P, Hc, (int)D);
    mlp_bwd(grads, dlogvar, acts + 2 * Hc, acts + 3 * Hc, dacts, dacts + Hc, c, params, &b->prior_logvar, P, Hc,
            (int)D);
}
