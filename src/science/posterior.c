/* Grid posterior over (Omega_m, sigma_8) (model.md section 6): normalisation, moments, MAP,
 * HPD regions, marginals, the truth's coverage and rank, calibration and comparisons.
 * A posterior here is a vector of G*G cell masses summing to 1 (point i*G + j is
 * (value(0, i), value(1, j))); with a uniform prior on a regular grid, mass and density are
 * proportional, so HPD regions are thresholds on the cell masses. */
#include "cglow.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

const double cglow_hpd_levels[CGLOW_NLEVELS] = {0.68, 0.95};

int cglow_grid_init(cglow_grid *g, int G, const double lo[2], const double hi[2], int edges)
{
    memset(g, 0, sizeof *g);
    if (G < 2 || G > 4096) return cglow_set_error(CGLOW_EARG, "grid: size %d out of range (2 .. 4096)", G);
    for (int a = 0; a < 2; a++)
        if (!isfinite(lo[a]) || !isfinite(hi[a]) || !(hi[a] > lo[a]))
            return cglow_set_error(CGLOW_EARG, "grid: prior box of parameter %d is [%g, %g]: need lo < hi", a, lo[a], hi[a]);
    g->G = G;
    g->edges = edges ? 1 : 0;
    memcpy(g->lo, lo, sizeof g->lo);
    memcpy(g->hi, hi, sizeof g->hi);
    return 0;
}

double cglow_grid_value(const cglow_grid *g, int axis, int i)
{
    double lo = g->lo[axis], hi = g->hi[axis];
    return g->edges ? lo + (hi - lo) * i / (g->G - 1) : lo + (hi - lo) * (i + 0.5) / g->G;
}

void cglow_grid_points(const cglow_grid *g, double *theta)
{
    for (int i = 0; i < g->G; i++)
        for (int j = 0; j < g->G; j++) {
            theta[2 * ((size_t)i * g->G + j)] = cglow_grid_value(g, 0, i);
            theta[2 * ((size_t)i * g->G + j) + 1] = cglow_grid_value(g, 1, j);
        }
}

int cglow_posterior_normalise(const double *ll, int npts, double *post)
{
    double mx = -INFINITY;
    for (int i = 0; i < npts; i++) {
        if (isnan(ll[i]) || ll[i] == INFINITY)
            return cglow_set_error(CGLOW_EVALUE, "posterior: log-likelihood at grid point %d is %g", i, ll[i]);
        if (ll[i] > mx) mx = ll[i];
    }
    if (mx == -INFINITY) return cglow_set_error(CGLOW_EVALUE, "posterior: every log-likelihood is -inf");
    double s = 0;
    for (int i = 0; i < npts; i++) s += exp(ll[i] - mx);
    for (int i = 0; i < npts; i++) post[i] = exp(ll[i] - mx) / s;
    return 0;
}

typedef struct { double v; int i; } cell;
static int by_mass_desc(const void *a, const void *b)
{
    const cell *x = a, *y = b;
    if (x->v > y->v) return -1;
    if (x->v < y->v) return 1;
    return x->i - y->i;   /* deterministic order among ties */
}

/* Thresholds of all levels at once from one sort. */
static int hpd_thresholds(const double *post, int npts, const double *levels, int nl, double *thr, double *mass, int *cells)
{
    cell *c = malloc((size_t)npts * sizeof *c);
    if (!c) return cglow_set_error(CGLOW_ENOMEM, "posterior: out of memory");
    for (int i = 0; i < npts; i++) { c[i].v = post[i]; c[i].i = i; }
    qsort(c, (size_t)npts, sizeof *c, by_mass_desc);
    for (int l = 0; l < nl; l++) {
        double cum = 0;
        int k = 0;
        while (k < npts) {
            cum += c[k].v;
            k++;
            /* Stop at the first cell that brings the mass to the level (1e-12: rounding). */
            if (cum >= levels[l] - 1e-12) break;
        }
        /* Cells tied with the last one are inside too (the region is a threshold set). */
        while (k < npts && c[k].v == c[k - 1].v) { cum += c[k].v; k++; }
        thr[l] = c[k - 1].v;
        if (mass) mass[l] = cum;
        if (cells) cells[l] = k;
    }
    free(c);
    return 0;
}

double cglow_hpd_threshold(const double *post, int npts, double level, double *mass, int *cells)
{
    double t = NAN;
    if (hpd_thresholds(post, npts, &level, 1, &t, mass, cells)) return NAN;
    return t;
}

void cglow_hpd_mask(const double *post, int npts, double threshold, unsigned char *mask)
{
    for (int i = 0; i < npts; i++) mask[i] = post[i] >= threshold;
}

/* The grid point nearest to a continuous point: with cell centres, the cell that contains it
 * (clamped to the box). */
static size_t nearest_point(const cglow_grid *g, const double *theta)
{
    int idx[2];
    for (int a = 0; a < 2; a++) {
        double x = g->edges ? (theta[a] - g->lo[a]) / (g->hi[a] - g->lo[a]) * (g->G - 1)
                            : (theta[a] - g->lo[a]) / (g->hi[a] - g->lo[a]) * g->G - 0.5;
        long i = lround(x);
        idx[a] = i < 0 ? 0 : i > g->G - 1 ? g->G - 1 : (int)i;
    }
    return (size_t)idx[0] * g->G + idx[1];
}

int cglow_posterior_summarise(const cglow_grid *g, const double *post, const double *truth, cglow_post_summary *s,
                              double *marg0, double *marg1)
{
    memset(s, 0, sizeof *s);
    int G = g->G, npts = G * G;
    double m[2] = {0, 0}, v[2] = {0, 0}, best = -1;
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++) {
            double p = post[(size_t)i * G + j], t0 = cglow_grid_value(g, 0, i), t1 = cglow_grid_value(g, 1, j);
            m[0] += p * t0;
            m[1] += p * t1;
            if (p > best) { best = p; s->map[0] = t0; s->map[1] = t1; }
        }
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++) {
            double p = post[(size_t)i * G + j], d0 = cglow_grid_value(g, 0, i) - m[0], d1 = cglow_grid_value(g, 1, j) - m[1];
            v[0] += p * d0 * d0;
            v[1] += p * d1 * d1;
        }
    for (int a = 0; a < 2; a++) { s->mean[a] = m[a]; s->std[a] = sqrt(v[a]); }
    s->max_cell = best;
    if (marg0 || marg1) {
        for (int i = 0; i < G; i++) {
            if (marg0) marg0[i] = 0;
            if (marg1) marg1[i] = 0;
        }
        for (int i = 0; i < G; i++)
            for (int j = 0; j < G; j++) {
                if (marg0) marg0[i] += post[(size_t)i * G + j];
                if (marg1) marg1[j] += post[(size_t)i * G + j];
            }
    }
    int rc = hpd_thresholds(post, npts, cglow_hpd_levels, CGLOW_NLEVELS, s->hpd_threshold, s->hpd_mass, s->hpd_cells);
    if (rc) return rc;
    if (truth) {
        if (!isfinite(truth[0]) || !isfinite(truth[1]))
            return cglow_set_error(CGLOW_EVALUE, "posterior: the truth (%g, %g) is not finite", truth[0], truth[1]);
        s->has_truth = 1;
        s->truth[0] = truth[0];
        s->truth[1] = truth[1];
        /* The HPD regions are sets of cells: the truth is inside when its cell is. Its rank is
         * the mid-rank of its cell: the mass of denser cells plus half the mass tied with it, so
         * that it is uniform when the truth is drawn from the grid posterior. */
        double pt = post[nearest_point(g, truth)], above = 0, tied = 0;
        for (int i = 0; i < npts; i++) {
            if (post[i] > pt) above += post[i];
            else if (post[i] == pt) tied += post[i];
        }
        double level = above + 0.5 * tied;
        s->truth_level = level > 1 ? 1 : level;
        for (int l = 0; l < CGLOW_NLEVELS; l++) s->in_hpd[l] = pt >= s->hpd_threshold[l];
        for (int a = 0; a < 2; a++) s->bias[a] = s->std[a] > 0 ? (s->mean[a] - truth[a]) / s->std[a] : NAN;
    }
    return 0;
}

int cglow_calibrate(const cglow_post_summary *s, int n, cglow_calibration *c)
{
    memset(c, 0, sizeof *c);
    int used = 0, in[CGLOW_NLEVELS] = {0};
    double bs[2] = {0, 0}, bss[2] = {0, 0}, ms[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        if (!s[i].has_truth) continue;
        used++;
        for (int l = 0; l < CGLOW_NLEVELS; l++) { in[l] += s[i].in_hpd[l]; c->mean_hpd_mass[l] += s[i].hpd_mass[l]; }
        int b = (int)(s[i].truth_level * CGLOW_RANK_BINS);
        if (b >= CGLOW_RANK_BINS) b = CGLOW_RANK_BINS - 1;
        if (b < 0) b = 0;
        c->rank_hist[b]++;
        for (int a = 0; a < 2; a++) { bs[a] += s[i].bias[a]; bss[a] += s[i].bias[a] * s[i].bias[a]; ms[a] += s[i].std[a]; }
    }
    if (!used) return cglow_set_error(CGLOW_EARG, "calibration: no map has a known truth");
    c->n = used;
    for (int l = 0; l < CGLOW_NLEVELS; l++) {
        double f = (double)in[l] / used, a = cglow_hpd_levels[l];
        c->coverage[l] = f;
        c->mean_hpd_mass[l] /= used;
        c->cov_err[l] = sqrt(f * (1 - f) / used);
        c->cov_z[l] = (f - a) / sqrt(a * (1 - a) / used);
    }
    for (int a = 0; a < 2; a++) {
        c->bias_mean[a] = bs[a] / used;
        double var = bss[a] / used - c->bias_mean[a] * c->bias_mean[a];
        c->bias_std[a] = sqrt(var > 0 ? var : 0);
        c->mean_std[a] = ms[a] / used;
    }
    return 0;
}

int cglow_posterior_compare(const cglow_grid *g, const double *p, const double *q, cglow_post_comparison *c)
{
    memset(c, 0, sizeof *c);
    cglow_post_summary sp, sq;
    int rc = cglow_posterior_summarise(g, p, NULL, &sp, NULL, NULL);
    if (!rc) rc = cglow_posterior_summarise(g, q, NULL, &sq, NULL, NULL);
    if (rc) return rc;
    for (int a = 0; a < 2; a++) {
        c->shift[a] = sp.std[a] > 0 ? (sq.mean[a] - sp.mean[a]) / sp.std[a] : NAN;
        c->width_ratio[a] = sp.std[a] > 0 ? sq.std[a] / sp.std[a] : NAN;
    }
    double kl = 0;
    for (int i = 0; i < g->G * g->G; i++) {
        if (p[i] <= 0) continue;
        if (q[i] <= 0) { kl = INFINITY; break; }
        kl += p[i] * log(p[i] / q[i]);
    }
    c->kl = kl;
    return 0;
}
