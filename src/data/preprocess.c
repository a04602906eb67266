/* Map and condition preprocessing of model.md 1.2-1.3 and their inverses:
 * raw linear map -> block-mean downsample -> log10(max(., floor)) -> standardise -> squash. */
#include "cglow.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "data/internal.h"
#include <string.h>

#define SQUASH_CLAMP 0.999   /* |y| bound of the inverse squash (model.md 1.2) */

void cglow_data_config_default(cglow_data_config *d, int n_cond)
{
    memset(d, 0, sizeof *d);
    d->downsample = 1;
    d->floor = 1e-8;
    d->mu = 0;
    d->sigma = 1;
    d->squash = CGLOW_SQUASH_SIGMOID;
    if (n_cond < 0) n_cond = 0;
    if (n_cond > CGLOW_MAX_COND) n_cond = CGLOW_MAX_COND;
    d->n_cond = n_cond;
    /* CAMELS LH box for Omega_m, sigma_8; the astrophysical columns have no box of their own here
     * (the A_SN/A_AGN ranges are log-uniform, better fit from the table): [0, 1] until fitted. */
    for (int j = 0; j < n_cond; j++) {
        if (j == 0) { strcpy(d->cond_names[j], "Omega_m"); d->cond_lo[j] = 0.1; d->cond_hi[j] = 0.5; }
        else if (j == 1) { strcpy(d->cond_names[j], "sigma_8"); d->cond_lo[j] = 0.6; d->cond_hi[j] = 1.0; }
        else { snprintf(d->cond_names[j], sizeof d->cond_names[j], "param%d", j + 1); d->cond_lo[j] = 0; d->cond_hi[j] = 1; }
    }
}

/* ---------------------------------------------------------------- maps */
/* Map index -> the failure to report; -1 when none. Filled by parallel loops, reported after. */
typedef struct {
    long long bad;    /* smallest failing map index, or -1 */
    int why;          /* 1: non-finite, 2: non-positive without floor */
} map_error;

static void note_error(map_error *e, long long i, int why)
{
#pragma omp critical(cglow_map_error)
    if (e->bad < 0 || i < e->bad) { e->bad = i; e->why = why; }
}

static int report(const map_error *e, const char *what, size_t first_index)
{
    const char *w = what ? what : "maps";
    if (e->why == 1)
        return cglow_set_error(CGLOW_EVALUE, "%s: map %lld has a NaN or infinite pixel", w, (long long)first_index + e->bad);
    return cglow_set_error(CGLOW_EVALUE, "%s: map %lld has a non-positive pixel and no floor is set", w,
                           (long long)first_index + e->bad);
}

static int check_dims(const cglow_data_config *d, int h, int w, const char *what)
{
    int ds = d->downsample;
    if (ds < 1 || h < 1 || w < 1 || h % ds || w % ds)
        return cglow_set_error(CGLOW_ESHAPE, "%s: map size %dx%d is not divisible by the downsampling factor %d",
                               what ? what : "maps", h, w, ds);
    return 0;
}

/* One map: block means, floor, log10 -> u (h/ds x w/ds). Returns 0, 1 (non-finite), 2 (non-positive). */
static int one_map_log10(const cglow_data_config *d, const float *raw, int h, int w, float *u)
{
    int ds = d->downsample, hd = h / ds, wd = w / ds;
    double inv = 1.0 / ((double)ds * ds);
    for (int i = 0; i < hd; i++)
        for (int j = 0; j < wd; j++) {
            double s = 0;
            for (int a = 0; a < ds; a++) {
                const float *row = raw + (size_t)(i * ds + a) * w + (size_t)j * ds;
                for (int b = 0; b < ds; b++) s += row[b];
            }
            s *= inv;
            if (!isfinite(s)) return 1;   /* NaN and Inf survive the mean, so this sees them all */
            if (d->floor > 0) { if (s < d->floor) s = d->floor; }
            else if (s <= 0) return 2;
            /* float in, float out; glibc's logf is several times faster than its log10f */
            u[(size_t)i * wd + j] = logf((float)s) * 0.4342944819f;
        }
    return 0;
}

int cglow_data_maps_to_log10(const cglow_data_config *d, const float *raw, size_t n, int h, int w, float *u,
                             const char *what, size_t first_index)
{
    int rc = check_dims(d, h, w, what);
    if (rc) return rc;
    size_t npix = (size_t)h * w, nd = npix / ((size_t)d->downsample * d->downsample);
    map_error e = {-1, 0};
#pragma omp parallel for schedule(dynamic, 16)
    for (long long i = 0; i < (long long)n; i++) {
        int why = one_map_log10(d, raw + (size_t)i * npix, h, w, u + (size_t)i * nd);
        if (why) note_error(&e, i, why);
    }
    return e.bad >= 0 ? report(&e, what, first_index) : 0;
}

static inline float squash(const cglow_data_config *d, double uval)
{
    float dd = (float)((uval - d->mu) / d->sigma);
    if (d->squash != CGLOW_SQUASH_SIGMOID) return dd;
    /* tanh(d/2) = (1 - e^-|d|) / (1 + e^-|d|), signed: glibc's tanhf goes through a slow expm1f.
     * Absolute error ~1e-7, like tanhf's near |y| ~ 1. */
    float t = expf(-fabsf(dd)), y = (1.0f - t) / (1.0f + t);
    return dd < 0 ? -y : y;
}

int cglow_data_log10_to_model(const cglow_data_config *d, const float *u, size_t n, size_t npix, float *out)
{
    if (!(d->sigma > 0) || !isfinite(d->mu))
        return cglow_set_error(CGLOW_EARG, "data config: sigma %g / mu %g invalid", d->sigma, d->mu);
    size_t total = n * npix;
#pragma omp parallel for schedule(static)
    for (long long i = 0; i < (long long)total; i++) out[i] = squash(d, u[i]);
    return 0;
}

int cglow_data_maps_to_model(const cglow_data_config *d, const float *raw, size_t n, int h, int w, float *out,
                             const char *what, size_t first_index)
{
    if (!(d->sigma > 0) || !isfinite(d->mu))
        return cglow_set_error(CGLOW_EARG, "%s: data config has sigma %g, mu %g", what ? what : "maps", d->sigma, d->mu);
    int rc = cglow_data_maps_to_log10(d, raw, n, h, w, out, what, first_index);
    if (rc) return rc;
    size_t nd = (size_t)(h / d->downsample) * (size_t)(w / d->downsample);
    return cglow_data_log10_to_model(d, out, n, nd, out);
}

void cglow_data_model_to_maps(const cglow_data_config *d, const float *y, size_t n, size_t npix, int linear,
                              float *out)
{
    size_t total = n * npix;
#pragma omp parallel for schedule(static)
    for (long long i = 0; i < (long long)total; i++) {
        double v = y[i], dd;
        if (d->squash == CGLOW_SQUASH_SIGMOID) {
            if (v > SQUASH_CLAMP) v = SQUASH_CLAMP;
            if (v < -SQUASH_CLAMP) v = -SQUASH_CLAMP;
            dd = 2 * atanh(v);
        } else
            dd = v;
        double uval = d->mu + d->sigma * dd;
        out[i] = (float)(linear ? pow(10.0, uval) : uval);
    }
}

double cglow_data_log_jacobian(const cglow_data_config *d, const float *y, size_t npix)
{
    double ls = log(d->sigma);
    if (d->squash != CGLOW_SQUASH_SIGMOID) return -(double)npix * ls;
    /* dy/du = (1 - y^2) / (2 sigma). A float y that rounded to +-1 (|d| > ~17) would give -inf;
     * such pixels use the inverse's clamp, the same |y| the map is decoded with. */
    double s = 0;
    for (size_t i = 0; i < npix; i++) {
        double v = y[i], one = 1 - v * v;
        if (!(one > 0)) one = 1 - SQUASH_CLAMP * SQUASH_CLAMP;
        s += log(one);
    }
    return s - (double)npix * (log(2.0) + ls);
}

double cglow_data_log_jacobian_log10(const cglow_data_config *d, const float *u, size_t npix)
{
    double ls = log(d->sigma);
    if (d->squash != CGLOW_SQUASH_SIGMOID) return -(double)npix * ls;
    /* log(1 - tanh(x)^2) = -2 log cosh(x), x = d/2, in double from the log10 map itself: exact
     * where a float y would have rounded to +-1 (a floored pixel is far in the tail) */
    double s = 0;
    for (size_t i = 0; i < npix; i++) {
        double x = fabs(((double)u[i] - d->mu) / d->sigma / 2);
        s += -2 * (x + log1p(exp(-2 * x)) - log(2.0));
    }
    return s - (double)npix * (log(2.0) + ls);
}

/* Streaming mean / variance (Chan et al. pairwise merge), for fitting over many maps. */
typedef struct { double n, mean, m2; } moments;
static void moments_merge(moments *a, const moments *b)
{
    if (b->n == 0) return;
    double n = a->n + b->n, delta = b->mean - a->mean;
    a->m2 += b->m2 + delta * delta * a->n * b->n / n;
    a->mean += delta * b->n / n;
    a->n = n;
}
static void moments_of(const float *u, size_t npix, moments *m)
{
    double s = 0;
    for (size_t i = 0; i < npix; i++) s += u[i];
    double mean = s / (double)npix, m2 = 0;
    for (size_t i = 0; i < npix; i++) m2 += (u[i] - mean) * (u[i] - mean);
    m->n = (double)npix; m->mean = mean; m->m2 = m2;
}

/* Adds one map's moments to the running total; used by the data set fit too. */
void cglow_data_moments_add(double acc[3], const float *u, size_t npix)
{
    moments a = {acc[0], acc[1], acc[2]}, b;
    moments_of(u, npix, &b);
    moments_merge(&a, &b);
    acc[0] = a.n; acc[1] = a.mean; acc[2] = a.m2;
}

int cglow_data_fit_maps(cglow_data_config *d, const float *raw, size_t n, int h, int w)
{
    int rc = check_dims(d, h, w, "maps");
    if (rc) return rc;
    size_t npix = (size_t)h * w, nd = npix / ((size_t)d->downsample * d->downsample);
    float *u = malloc(nd * sizeof *u);
    if (!u) return cglow_set_error(CGLOW_ENOMEM, "maps: out of memory");
    double acc[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        int why = one_map_log10(d, raw + i * npix, h, w, u);
        if (why) {
            free(u);
            map_error e = {(long long)i, why};
            return report(&e, "maps", 0);
        }
        cglow_data_moments_add(acc, u, nd);
    }
    free(u);
    if (acc[0] < 2) return cglow_set_error(CGLOW_EARG, "maps: need at least 2 pixels to fit mu and sigma");
    double sd = sqrt(acc[2] / (acc[0] - 1));
    if (!(sd > 0)) return cglow_set_error(CGLOW_EVALUE, "maps: all pixels equal, sigma is 0");
    d->mu = acc[1];
    d->sigma = sd;
    return 0;
}

/* ---------------------------------------------------------------- conditions */
void cglow_data_scale_cond(const cglow_data_config *d, const double *theta, size_t n, int stride, const int *cols,
                           float *c)
{
    int P = d->n_cond;
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < P; j++) {
            double t = theta[i * (size_t)stride + (size_t)(cols ? cols[j] : j)];
            c[i * (size_t)P + j] = (float)(2 * (t - d->cond_lo[j]) / (d->cond_hi[j] - d->cond_lo[j]) - 1);
        }
}

void cglow_data_unscale_cond(const cglow_data_config *d, const float *c, size_t n, double *theta)
{
    int P = d->n_cond;
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < P; j++)
            theta[i * (size_t)P + j] = d->cond_lo[j] + 0.5 * ((double)c[i * (size_t)P + j] + 1) * (d->cond_hi[j] - d->cond_lo[j]);
}

void cglow_data_fit_cond(cglow_data_config *d, const cglow_table *t, const int *cols)
{
    for (int j = 0; j < d->n_cond; j++) {
        int col = cols ? cols[j] : j;
        if (col < 0 || col >= t->cols || t->rows < 1) continue;
        double lo = INFINITY, hi = -INFINITY;
        for (int r = 0; r < t->rows; r++) {
            double v = t->v[(size_t)r * t->cols + col];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        if (hi > lo) { d->cond_lo[j] = lo; d->cond_hi[j] = hi; }
    }
}
