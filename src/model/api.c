/* The public model API over flow.c: float32 in and out whatever the engine's `real` is. */
#include "model/backend.h"
#include "util/rng.h"
#include <stdlib.h>
#include <string.h>

void model_free_work(cglow_model *m)
{
    flow_work_free(m->work);
    m->work = NULL;
}

/* A real copy of a float array (or the array itself when real is float). */
static real *as_real(const float *x, size_t n, int *owned)
{
#ifdef CGLOW_DOUBLE
    real *r = malloc(sizeof(real) * (n ? n : 1));
    if (r) for (size_t i = 0; i < n; i++) r[i] = x[i];
    *owned = 1;
    return r;
#else
    *owned = 0;
    return (real *)x;
#endif
}

static void to_float(float *out, const real *x, size_t n)
{
    if ((const void *)out != (const void *)x)
        for (size_t i = 0; i < n; i++) out[i] = (float)x[i];
}

static int check_cond(const cglow_model *m, const float *c, int n)
{
    const int P = m->cfg.cond_features;
    for (size_t i = 0; i < (size_t)n * P; i++)
        if (!isfinite(c[i])) return cglow_set_error(CGLOW_EVALUE, "condition %zu of map %zu is not finite", i % P, i / P);
    return 0;
}

int cglow_forward(cglow_model *m, const float *x, const float *c, int n, double *logp, float *z)
{
    if (n <= 0) return 0;
    int rc = check_cond(m, c, n);
    if (rc) return rc;
    const size_t D = m->dim, P = m->cfg.cond_features;
    int ox, oc, oz = 0;
    real *xr = as_real(x, n * D, &ox), *cr = as_real(c, n * P, &oc), *zr = NULL;
    if (z) {
#ifdef CGLOW_DOUBLE
        zr = malloc(sizeof(real) * n * D);
        oz = 1;
#else
        zr = (real *)z;
#endif
    }
    if (!xr || !cr || (z && !zr)) rc = cglow_set_error(CGLOW_ENOMEM, "out of memory");
    else {
        rc = model_backend(m)->forward(m, xr, cr, n, logp, zr);
        if (z) to_float(z, zr, n * D);
    }
    if (ox) free(xr);
    if (oc) free(cr);
    if (oz) free(zr);
    return rc;
}

int cglow_log_prob(cglow_model *m, const float *x, const float *c, int n, double *logp)
{
    return cglow_forward(m, x, c, n, logp, NULL);
}

int cglow_inverse(cglow_model *m, const float *z, const float *c, int n, float *x)
{
    if (n <= 0) return 0;
    int rc = check_cond(m, c, n);
    if (rc) return rc;
    const size_t D = m->dim, P = m->cfg.cond_features;
    int oz, oc, ox = 0;
    real *zr = as_real(z, n * D, &oz), *cr = as_real(c, n * P, &oc), *xr;
#ifdef CGLOW_DOUBLE
    xr = malloc(sizeof(real) * n * D);
    ox = 1;
#else
    xr = x;
#endif
    if (!zr || !cr || !xr) rc = cglow_set_error(CGLOW_ENOMEM, "out of memory");
    else {
        rc = model_backend(m)->inverse(m, zr, cr, n, xr);
        to_float(x, xr, n * D);
    }
    if (oz) free(zr);
    if (oc) free(cr);
    if (ox) free(xr);
    return rc;
}

int cglow_sample(cglow_model *m, const float *c, int n, float temperature, uint64_t seed, float *x)
{
    if (n <= 0) return 0;
    if (!(temperature >= 0) || !isfinite(temperature))
        return cglow_set_error(CGLOW_EARG, "temperature must be a finite number >= 0 (got %g)", temperature);
    int rc = check_cond(m, c, n);
    if (!rc) rc = model_sync_host(m);   /* the priors below run on the host */
    if (rc) return rc;
    model_update_prep(m);   /* the priors read prepared weights */
    const size_t D = m->dim, P = m->cfg.cond_features;
    float *z = malloc(sizeof(float) * n * D);
    size_t ws_size = 0;
    for (int bi = 0; bi < m->nblocks; bi++) {
        size_t s = prior_scratch_size(m, &m->blocks[bi]);
        if (s > ws_size) ws_size = s;
    }
    if (!z) return cglow_set_error(CGLOW_ENOMEM, "out of memory");
    int bad = 0;
#pragma omp parallel num_threads(cglow_get_threads())
    {
        real *ws = malloc(sizeof(real) * (ws_size + 2 * D + P));
        if (!ws) {
#pragma omp atomic write
            bad = 1;
        }
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            if (!ws) continue;
            real *mean = ws + ws_size, *logvar = mean + D, *ci = logvar + D;
            for (size_t j = 0; j < P; j++) ci[j] = c[i * P + j];
            rng_t r;
            rng_seed2(&r, seed, (uint64_t)i);   /* per map: independent of the thread count */
            for (int bi = 0; bi < m->nblocks; bi++) {
                const block_info *b = &m->blocks[bi];
                prior_mean_logvar(mean, logvar, ci, m->params, m, b, ws);
                float *zb = z + (size_t)i * D + b->zoff;
                for (size_t k = 0; k < b->zdim; k++)
                    zb[k] = (float)(mean[k] + temperature * exp(0.5 * logvar[k]) * rng_normal(&r));
            }
        }
        free(ws);
    }
    if (bad) rc = cglow_set_error(CGLOW_ENOMEM, "out of memory");
    else rc = cglow_inverse(m, z, c, n, x);
    free(z);
    return rc;
}

double cglow_model_flops_forward(const cglow_model *m, double *naive)
{
    /* multiply-add = 2 FLOPs; convolutions and 1x1 matrices only (elementwise work ignored) */
    const double P = m->cfg.cond_features, Hd = m->cfg.hidden, Hc = m->cfg.prior_hidden;
    double ours = 0, full = 0;
    for (int bi = 0; bi < m->nblocks; bi++) {
        const block_info *b = &m->blocks[bi];
        const double C = b->C, HW = (double)b->H * b->W;
        const double R = (double)(b->H < 5 ? b->H : 5) * (b->W < 5 ? b->W : 5);
        const double invconv = 2 * C * C * HW;
        const double inj_px = 2 * (Hd * P * 9 + Hd * Hd + 2 * C * Hd * 9);
        const double coup = 2 * HW * (Hd * (C / 2 + P) * 9 + Hd * Hd + C * Hd * 9);
        /* cglow's conv1 runs on xa alone, the condition channels being a per-border-class table,
         * except on maps of at most 4x4 pixels (coupling_cond_in_conv) */
        const double cin1 = coupling_cond_in_conv(b) ? C / 2 + P : C / 2;
        const double coup_ours = 2 * HW * (Hd * cin1 * 9 + Hd * Hd + C * Hd * 9);
        const double K = m->cfg.steps;
        ours += K * (invconv + inj_px * R + coup_ours);
        full += K * (invconv + inj_px * HW + coup);
        if (m->cfg.prior == CGLOW_PRIOR_CONDITIONAL) {
            const double prior = 2 * 2 * (P * Hc + Hc * Hc + Hc * (double)b->zdim);
            ours += prior;
            full += prior;
        }
    }
    if (naive) *naive = full;
    return ours;
}

double cglow_model_flops_train(const cglow_model *m)
{
    /* every convolution's forward, input-gradient and weight-gradient pass (3x the forward), plus
     * the injector nets run again in the backward (their outputs are not kept) */
    const double P = m->cfg.cond_features, Hd = m->cfg.hidden;
    double recompute = 0;
    for (int bi = 0; bi < m->nblocks; bi++) {
        const block_info *b = &m->blocks[bi];
        const double R = (double)(b->H < 5 ? b->H : 5) * (b->W < 5 ? b->W : 5);
        recompute += m->cfg.steps * R * 2 * (Hd * P * 9 + Hd * Hd + 2 * b->C * Hd * 9);
    }
    return 3 * cglow_model_flops_forward(m, NULL) + recompute;
}
