/* The synthetic universe of model.md section 7: a log-normal-like transform of a Gaussian field
 * with a BBKS spectrum, whose likelihood is known exactly. Double-precision FFTW throughout (the
 * log-likelihood needs it, and at 64 x 64 the random numbers cost more than the FFTs). */
#include "cglow.h"
#include "util/rng.h"
#include <fftw3.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cglow_synth_opts_default(cglow_synth_opts *o, int n)
{
    o->n = n;
    o->box = 25.0;
    o->beta = 0.3;
}

double cglow_synth_mu(double omega_m) { return 4.8 + 2.5 * (omega_m - 0.3); }

double cglow_synth_transfer(double q)
{
    if (q <= 0) return 1.0;
    double a = 2.34 * q, b = 16.1 * q, c = 5.46 * q, d = 6.71 * q;
    double p = 1 + 3.89 * q + b * b + c * c * c + (d * d) * (d * d);
    return log1p(a) / a / sqrt(sqrt(p));   /* p^(-1/4) without pow: the grid posterior calls this a lot */
}

double cglow_synth_power(double k, double omega_m, double amplitude)
{
    double t = cglow_synth_transfer(k / (0.67 * omega_m));
    return amplitude * k * t * t;
}

static int check_opts(const cglow_synth_opts *o)
{
    if (o->n < 2 || o->n > 16384 || !(o->box > 0) || !(o->beta >= 0) || !isfinite(o->beta))
        return cglow_set_error(CGLOW_EARG, "synth: bad options (size %d, box %g, beta %g)", o->n, o->box, o->beta);
    return 0;
}

static inline int freq(int i, int n) { return i <= n / 2 ? i : i - n; }

/* Unit-amplitude spectrum k T(k/Gamma)^2 on the r2c half grid n x (n/2+1), P(0) := P(kF), and the
 * weight of each half-grid mode in a sum over all n^2 modes (1 or 2). Returns the sum over all
 * modes k != 0, which fixes A. */
static double half_shape(const cglow_synth_opts *o, double omega_m, double *shape, double *weight)
{
    int n = o->n, nh = n / 2 + 1;
    double kf = 2 * M_PI / o->box, sum = 0;
    for (int iy = 0; iy < n; iy++)
        for (int ix = 0; ix < nh; ix++) {
            int fy = freq(iy, n);
            double k = kf * sqrt((double)fy * fy + (double)ix * ix);
            double w = (ix == 0 || (n % 2 == 0 && ix == n / 2)) ? 1 : 2;
            double s = cglow_synth_power(k, omega_m, 1.0);
            if (iy == 0 && ix == 0) s = cglow_synth_power(kf, omega_m, 1.0);
            else sum += w * s;
            shape[(size_t)iy * nh + ix] = s;
            if (weight) weight[(size_t)iy * nh + ix] = w;
        }
    return sum;
}

double cglow_synth_amplitude(const cglow_synth_opts *o, double omega_m, double sigma_8)
{
    int n = o->n;
    double kf = 2 * M_PI / o->box, sum = 0;
    for (int iy = 0; iy < n; iy++)
        for (int ix = 0; ix < n; ix++) {
            if (!iy && !ix) continue;
            int fy = freq(iy, n), fx = freq(ix, n);
            sum += cglow_synth_power(kf * sqrt((double)fy * fy + (double)fx * fx), omega_m, 1.0);
        }
    double s = 1.25 * sigma_8;
    return o->box * o->box * s * s / sum;
}

int cglow_synth_spectrum(const cglow_synth_opts *o, double omega_m, double sigma_8, double *pk)
{
    int rc = check_opts(o);
    if (rc) return rc;
    int n = o->n;
    double a = cglow_synth_amplitude(o, omega_m, sigma_8), kf = 2 * M_PI / o->box;
    for (int iy = 0; iy < n; iy++)
        for (int ix = 0; ix < n; ix++) {
            int fy = freq(iy, n), fx = freq(ix, n);
            double k = (iy || ix) ? kf * sqrt((double)fy * fy + (double)fx * fx) : kf;
            pk[(size_t)iy * n + ix] = cglow_synth_power(k, omega_m, a);
        }
    return 0;
}

/* ---------------------------------------------------------------- FFT workspace (one per thread) */
typedef struct {
    int n, nh;
    double *real;          /* n x n */
    fftw_complex *modes;   /* n x nh */
    fftw_plan fwd, inv;
    double *shape, *weight;   /* half grid */
    double shape_sum, shape_om;
} fft_ws;

static void ws_free(fft_ws *w)
{
    /* The planner is not thread-safe, and destroying a plan touches it too. */
#pragma omp critical(cglow_fftw_planner)
    {
        if (w->fwd) fftw_destroy_plan(w->fwd);
        if (w->inv) fftw_destroy_plan(w->inv);
    }
    fftw_free(w->real);
    fftw_free(w->modes);
    free(w->shape);
    free(w->weight);
    memset(w, 0, sizeof *w);
}

static int ws_init(fft_ws *w, int n)
{
    memset(w, 0, sizeof *w);
    w->n = n;
    w->nh = n / 2 + 1;
    w->shape_om = NAN;
    size_t nr = (size_t)n * n, nc = (size_t)n * w->nh;
    w->real = fftw_malloc(nr * sizeof *w->real);
    w->modes = fftw_malloc(nc * sizeof *w->modes);
    w->shape = malloc(nc * sizeof *w->shape);
    w->weight = malloc(nc * sizeof *w->weight);
    if (!w->real || !w->modes || !w->shape || !w->weight) { ws_free(w); return -1; }
#pragma omp critical(cglow_fftw_planner)
    {
        w->fwd = fftw_plan_dft_r2c_2d(n, n, w->real, w->modes, FFTW_ESTIMATE);
        w->inv = fftw_plan_dft_c2r_2d(n, n, w->modes, w->real, FFTW_ESTIMATE);
    }
    if (!w->fwd || !w->inv) { ws_free(w); return -1; }
    return 0;
}

static void ws_shape(fft_ws *w, const cglow_synth_opts *o, double omega_m)
{
    if (w->shape_om == omega_m) return;   /* maps of one simulation share it */
    w->shape_sum = half_shape(o, omega_m, w->shape, w->weight);
    w->shape_om = omega_m;
}

/* g of one map into w->real: (1/n^2) c2r(sqrt(lambda) r2c(white noise)), lambda = n^2 P / Lbox^2.
 * r2c of white noise is Hermitian with E|W_k|^2 = n^2, so F = sqrt(lambda) W has exactly the
 * spec's E|F_k|^2 = n^4 P_g(k) / Lbox^2 and real self-conjugate modes. */
static void ws_field(fft_ws *w, const cglow_synth_opts *o, double omega_m, double sigma_8, uint64_t seed,
                     uint64_t stream)
{
    int n = w->n;
    size_t nr = (size_t)n * n, nc = (size_t)n * w->nh;
    rng_t r;
    rng_seed2(&r, seed, stream);
    for (size_t i = 0; i < nr; i++) w->real[i] = rng_normal(&r);
    fftw_execute(w->fwd);
    ws_shape(w, o, omega_m);
    double s = 1.25 * sigma_8, amp = o->box * o->box * s * s / w->shape_sum;
    double scale = (double)n * n * amp / (o->box * o->box);   /* lambda = scale * shape */
    for (size_t i = 0; i < nc; i++) {
        double f = sqrt(scale * w->shape[i]) / (double)nr;
        w->modes[i][0] *= f;
        w->modes[i][1] *= f;
    }
    fftw_execute(w->inv);
}

int cglow_synth_field(const cglow_synth_opts *o, double omega_m, double sigma_8, uint64_t seed, uint64_t stream,
                      double *g)
{
    int rc = check_opts(o);
    if (rc) return rc;
    fft_ws w;
    if (ws_init(&w, o->n)) return cglow_set_error(CGLOW_ENOMEM, "synth: out of memory");
    ws_field(&w, o, omega_m, sigma_8, seed, stream);
    memcpy(g, w.real, (size_t)o->n * o->n * sizeof *g);
    ws_free(&w);
    return 0;
}

static int check_theta(double om, double s8, size_t row)
{
    if (!(om > 0) || !(s8 > 0) || !isfinite(om) || !isfinite(s8))
        return cglow_set_error(CGLOW_EVALUE, "synth: parameter row %zu has Omega_m %g, sigma_8 %g (need finite, > 0)", row, om, s8);
    return 0;
}

int cglow_synth_maps(const cglow_synth_opts *o, const double *theta, int stride, size_t rows, int maps_per_sim,
                     uint64_t seed, float *maps)
{
    int rc = check_opts(o);
    if (rc) return rc;
    if (maps_per_sim < 1 || stride < 2) return cglow_set_error(CGLOW_EARG, "synth: maps_per_sim %d, stride %d", maps_per_sim, stride);
    for (size_t r = 0; r < rows; r++)
        if ((rc = check_theta(theta[r * stride], theta[r * stride + 1], r))) return rc;
    size_t total = rows * (size_t)maps_per_sim, nr = (size_t)o->n * o->n;
    int failed = 0;
#pragma omp parallel num_threads(cglow_get_threads())
    {
        fft_ws w;
        int ok = ws_init(&w, o->n) == 0;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (long long i = 0; i < (long long)total; i++) {
            if (!ok) continue;
            const double *th = theta + (size_t)(i / maps_per_sim) * stride;
            ws_field(&w, o, th[0], th[1], seed, (uint64_t)i);
            double mu = cglow_synth_mu(th[0]), b = o->beta;
            float *out = maps + (size_t)i * nr;
            /* Single-precision expf (glibc's is fast; its expm1f and exp10f are not): the map is
             * stored as float32 anyway, and its exact likelihood is evaluated on the stored values,
             * not on g. expf(x) - 1 loses relative accuracy only where u - mu is tiny, where the
             * absolute error (~1e-7) is below the float resolution of u itself. */
            float fb = (float)b, fmu = (float)mu;
            for (size_t p = 0; p < nr; p++) {
                float g = (float)w.real[p], u = fmu + (b > 0 ? (expf(fb * g) - 1.0f) / fb : g);
                out[p] = expf(u * 2.302585093f);   /* 10^u */
            }
        }
        if (ok) ws_free(&w);
    }
    return failed ? cglow_set_error(CGLOW_ENOMEM, "synth: out of memory") : 0;
}

/* ---------------------------------------------------------------- exact log-likelihood */
/* Loads g = ln(1 + beta (u - mu)) / beta of one map into w->real; returns the sum of g, or NAN when
 * some pixel is outside the support (1 + beta (u - mu) <= 0). u is given (log10 of the map). */
static double ws_load_g(fft_ws *w, const double *u, double mu, double beta)
{
    size_t nr = (size_t)w->n * w->n;
    double sum = 0;
    for (size_t p = 0; p < nr; p++) {
        double x = u[p] - mu, g;
        if (beta > 0) {
            double a = 1 + beta * x;
            if (!(a > 0)) return NAN;
            g = log1p(beta * x) / beta;
        } else
            g = x;
        w->real[p] = g;
        sum += g;
    }
    return sum;
}

/* sum_k |F_k|^2 / (n^2 shape_k) and sum_k log(2 pi shape_k) over all n^2 modes, for the workspace's
 * shape (unit lambda scale); w->real holds g. */
static void ws_quad(fft_ws *w, double scale, double *quad, double *logdet)
{
    fftw_execute(w->fwd);
    size_t nc = (size_t)w->n * w->nh;
    double n2 = (double)w->n * w->n, q = 0, l = 0;
    for (size_t i = 0; i < nc; i++) {
        double lam = scale * w->shape[i], re = w->modes[i][0], im = w->modes[i][1];
        q += w->weight[i] * (re * re + im * im) / (n2 * lam);
        l += w->weight[i] * log(2 * M_PI * lam);
    }
    *quad = q;
    *logdet = l;
}

/* log10 of one float map into u; 0, or 1 + the first bad pixel kind. */
static int map_log10(const float *map, size_t nr, double *u)
{
    for (size_t p = 0; p < nr; p++) {
        double v = map[p];
        if (!isfinite(v)) return 1;
        if (!(v > 0)) return 2;
        u[p] = log10(v);
    }
    return 0;
}

static int bad_map(const char *what, size_t index, int why)
{
    return cglow_set_error(CGLOW_EVALUE, "%s: map %zu has a %s pixel", what ? what : "maps", index,
                           why == 1 ? "NaN or infinite" : "non-positive");
}

int cglow_synth_loglike(const cglow_synth_opts *o, const float *maps, size_t n, const double *theta, int stride,
                        double *ll, const char *what, size_t first_index)
{
    int rc = check_opts(o);
    if (rc) return rc;
    size_t nr = (size_t)o->n * o->n;
    for (size_t i = 0; i < n; i++)
        if ((rc = check_theta(theta[i * stride], theta[i * stride + 1], first_index + i))) return rc;
    long long bad = -1;
    int why_bad = 0, failed = 0;
#pragma omp parallel num_threads(cglow_get_threads())
    {
        fft_ws w;
        double *u = malloc(nr * sizeof *u);
        int ok = u && ws_init(&w, o->n) == 0;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 4)
        for (long long i = 0; i < (long long)n; i++) {
            if (!ok) continue;
            int why = map_log10(maps + (size_t)i * nr, nr, u);
            if (why) {
#pragma omp critical(cglow_synth_bad)
                if (bad < 0 || i < bad) { bad = i; why_bad = why; }
                ll[i] = NAN;
                continue;
            }
            const double *th = theta + (size_t)i * stride;
            double sum_g = ws_load_g(&w, u, cglow_synth_mu(th[0]), o->beta);
            if (isnan(sum_g)) { ll[i] = -INFINITY; continue; }
            ws_shape(&w, o, th[0]);
            double s = 1.25 * th[1], amp = o->box * o->box * s * s / w.shape_sum;
            double q, l;
            ws_quad(&w, (double)nr * amp / (o->box * o->box), &q, &l);
            ll[i] = -0.5 * q - 0.5 * l - o->beta * sum_g;
        }
        if (ok) ws_free(&w);
        free(u);
    }
    if (failed) return cglow_set_error(CGLOW_ENOMEM, "synth: out of memory");
    if (bad >= 0) return bad_map(what, first_index + (size_t)bad, why_bad);
    return 0;
}

int cglow_synth_loglike_grid(const cglow_synth_opts *o, const float *map, const double *om, int g_om,
                             const double *s8, int g_s8, double *ll, const char *what, size_t index)
{
    int rc = check_opts(o);
    if (rc) return rc;
    for (int i = 0; i < g_om; i++)
        if ((rc = check_theta(om[i], 1, (size_t)i))) return rc;
    for (int j = 0; j < g_s8; j++)
        if ((rc = check_theta(1, s8[j], (size_t)j))) return rc;
    size_t nr = (size_t)o->n * o->n;
    double *u = malloc(nr * sizeof *u);
    fft_ws w;
    if (!u || ws_init(&w, o->n)) { free(u); return cglow_set_error(CGLOW_ENOMEM, "synth: out of memory"); }
    int why = map_log10(map, nr, u);
    if (why) { free(u); ws_free(&w); return bad_map(what, index, why); }
    /* lambda(Om, s8) = s8^2 lambda(Om, 1): one FFT per Omega_m, then O(1) per sigma_8. */
    for (int i = 0; i < g_om; i++) {
        double sum_g = ws_load_g(&w, u, cglow_synth_mu(om[i]), o->beta);
        if (isnan(sum_g)) {
            for (int j = 0; j < g_s8; j++) ll[(size_t)i * g_s8 + j] = -INFINITY;
            continue;
        }
        ws_shape(&w, o, om[i]);
        double amp1 = o->box * o->box * 1.25 * 1.25 / w.shape_sum, q, l;
        ws_quad(&w, (double)nr * amp1 / (o->box * o->box), &q, &l);
        for (int j = 0; j < g_s8; j++) {
            double s2 = s8[j] * s8[j];
            ll[(size_t)i * g_s8 + j] = -0.5 * q / s2 - 0.5 * (l + (double)nr * log(s2)) - o->beta * sum_g;
        }
    }
    free(u);
    ws_free(&w);
    return 0;
}

void cglow_grid_axis(double lo, double hi, int g, int edges, double *axis)
{
    for (int i = 0; i < g; i++)
        axis[i] = edges ? (g > 1 ? lo + (hi - lo) * i / (g - 1) : 0.5 * (lo + hi)) : lo + (hi - lo) * (i + 0.5) / g;
}

/* ---------------------------------------------------------------- parameters */
static double round5(double x)
{
    char b[64];
    snprintf(b, sizeof b, "%.5f", x);
    return strtod(b, NULL);
}

int cglow_synth_params_lhs(size_t rows, uint64_t seed, const double lo[2], const double hi[2], double *theta)
{
    static const double box_lo[6] = {0.1, 0.6, 0.25, 0.25, 0.5, 0.5}, box_hi[6] = {0.5, 1.0, 4.0, 4.0, 2.0, 2.0};
    size_t *perm = malloc((rows ? rows : 1) * sizeof *perm);
    if (!perm) return cglow_set_error(CGLOW_ENOMEM, "synth: out of memory");
    rng_t r;
    rng_seed2(&r, seed, 0x4c4853);   /* "LHS" */
    for (int c = 0; c < 6; c++) {
        double a = box_lo[c], b = box_hi[c];
        if (c < 2 && lo && hi) { a = lo[c]; b = hi[c]; }
        int logu = c >= 2;   /* CAMELS' feedback parameters are log-uniform */
        for (size_t i = 0; i < rows; i++) perm[i] = i;
        for (size_t i = rows; i > 1; i--) {   /* one stratum per row, in random order */
            size_t j = (size_t)rng_below(&r, i), t = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = t;
        }
        for (size_t i = 0; i < rows; i++) {
            double s = ((double)perm[i] + rng_uniform(&r)) / (double)rows;
            theta[i * 6 + c] = round5(logu ? a * pow(b / a, s) : a + (b - a) * s);
        }
    }
    free(perm);
    return 0;
}
