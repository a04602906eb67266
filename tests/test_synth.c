/* The synthetic universe (model.md section 7): the spectrum of generated fields, their variance,
 * the exact log-likelihood against a dense-covariance evaluation, and the exact posterior. */
#include "cglow.h"
#include "test.h"
#include <fftw3.h>
#include <stdint.h>

void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);

static const double LBOX = 25.0;

static int kbin(int iy, int ix, int n)
{
    int fy = iy <= n / 2 ? iy : iy - n, fx = ix <= n / 2 ? ix : ix - n;
    return (int)lround(sqrt((double)fy * fy + (double)fx * fx));
}

static void test_amplitude_and_transfer(void)
{
    cglow_synth_opts o;
    cglow_synth_opts_default(&o, 16);
    double *pk = malloc(256 * sizeof *pk), s = 0;
    CHECK(cglow_synth_spectrum(&o, 0.3, 0.8, pk) == 0, "spectrum");
    for (int i = 1; i < 256; i++) s += pk[i];
    CHECK_CLOSE(s / (LBOX * LBOX), 1.25 * 0.8 * 1.25 * 0.8, 1e-12);
    double kf = 2 * M_PI / LBOX, a = cglow_synth_amplitude(&o, 0.3, 0.8);
    CHECK_CLOSE(pk[0], cglow_synth_power(kf, 0.3, a), 1e-12);
    CHECK_CLOSE(pk[1], pk[16], 1e-15);
    /* BBKS: T -> 1 as q -> 0, and one value by hand (q = 1). */
    CHECK_CLOSE(cglow_synth_transfer(1e-9), 1.0, 1e-6);
    double want = log(3.34) / 2.34 * pow(1 + 3.89 + 16.1 * 16.1 + pow(5.46, 3) + pow(6.71, 4), -0.25);
    CHECK_CLOSE(cglow_synth_transfer(1.0), want, 1e-14);
    CHECK_CLOSE(cglow_synth_power(0.5, 0.3, 2.0), 2.0 * 0.5 * pow(cglow_synth_transfer(0.5 / (0.67 * 0.3)), 2), 1e-14);
    CHECK_CLOSE(cglow_synth_mu(0.5), 5.3, 1e-14);
    free(pk);
}

/* Mean measured P(k) of many fields against P_g(k) in every |k| bin (all n^2 modes, DC included),
 * within 4 standard errors of the mean, and the pixel variance of g. */
static void test_power_spectrum_and_variance(void)
{
    enum { N = 32, MAPS = 300 };
    const double om = 0.27, s8 = 0.85;
    cglow_synth_opts o;
    cglow_synth_opts_default(&o, N);
    int nb = kbin(N / 2, N / 2, N) + 1;
    double *pk = malloc(N * N * sizeof *pk), *g = fftw_malloc(N * N * sizeof *g);
    fftw_complex *F = fftw_malloc(N * (N / 2 + 1) * sizeof *F);
    fftw_plan plan = fftw_plan_dft_r2c_2d(N, N, g, F, FFTW_ESTIMATE);
    double *want = calloc(nb, sizeof *want), *sum = calloc(nb, sizeof *sum), *sum2 = calloc(nb, sizeof *sum2);
    double *per = calloc(nb, sizeof *per);
    int *cnt = calloc(nb, sizeof *cnt);
    cglow_synth_spectrum(&o, om, s8, pk);
    for (int iy = 0; iy < N; iy++)
        for (int ix = 0; ix < N; ix++) { want[kbin(iy, ix, N)] += pk[iy * N + ix]; cnt[kbin(iy, ix, N)]++; }
    double var_sum = 0, var_sum2 = 0;
    for (int m = 0; m < MAPS; m++) {
        CHECK(cglow_synth_field(&o, om, s8, 99, (uint64_t)m, g) == 0, "field");
        double v = 0;
        for (int i = 0; i < N * N; i++) v += g[i] * g[i];
        v /= N * N;
        var_sum += v;
        var_sum2 += v * v;
        fftw_execute(plan);
        memset(per, 0, nb * sizeof *per);
        for (int iy = 0; iy < N; iy++)
            for (int ix = 0; ix < N; ix++) {   /* full grid from the half grid by Hermitian symmetry */
                int jx = ix <= N / 2 ? ix : N - ix, jy = ix <= N / 2 ? iy : (N - iy) % N;
                double re = F[jy * (N / 2 + 1) + jx][0], im = F[jy * (N / 2 + 1) + jx][1];
                per[kbin(iy, ix, N)] += (re * re + im * im) * LBOX * LBOX / pow(N, 4);
            }
        for (int b = 0; b < nb; b++) {
            double p = per[b] / cnt[b];
            sum[b] += p;
            sum2[b] += p * p;
        }
    }
    int bad = 0;
    for (int b = 0; b < nb; b++) {
        double mean = sum[b] / MAPS, sd = sqrt(fmax(sum2[b] / MAPS - mean * mean, 0)), se = sd / sqrt(MAPS);
        double w = want[b] / cnt[b];
        if (fabs(mean - w) > 4 * se) {
            bad++;
            printf("  bin %d (%d modes): measured %.6g +- %.3g, P_g %.6g\n", b, cnt[b], mean, se, w);
        }
    }
    CHECK(bad == 0, "%d of %d |k| bins off by more than 4 sigma", bad, nb);
    double c0 = 1.25 * s8 * 1.25 * s8 + pk[0] / (LBOX * LBOX);
    double vm = var_sum / MAPS, vse = sqrt(fmax(var_sum2 / MAPS - vm * vm, 0) / MAPS);
    CHECK(fabs(vm - c0) < 4 * vse, "pixel variance %.6g +- %.3g, spec %.6g", vm, vse, c0);
    CHECK(pk[0] / (LBOX * LBOX) > 0.01 * c0, "P_g(kF) / Lbox^2 is a visible part of the variance");
    /* Deterministic per seed and stream. */
    double *g2 = malloc(N * N * sizeof *g2);
    cglow_synth_field(&o, om, s8, 99, 7, g2);
    cglow_synth_field(&o, om, s8, 99, 7, g);
    CHECK(!memcmp(g, g2, N * N * sizeof *g), "same seed, same field");
    free(g2);
    fftw_destroy_plan(plan);
    fftw_free(g);
    fftw_free(F);
    free(pk); free(want); free(sum); free(sum2); free(per); free(cnt);
}

/* log p(u | theta) by a dense n^2 x n^2 covariance, Cholesky (LAPACK), plus the Jacobian. */
static double dense_loglike(const float *map, int n, double om, double s8, double beta)
{
    cglow_synth_opts o = {n, LBOX, beta};
    int N = n * n, info = 0;
    double *pk = malloc(N * sizeof *pk), *cov = malloc((size_t)N * N * sizeof *cov), *g = malloc(N * sizeof *g);
    double *c = malloc(N * sizeof *c);
    cglow_synth_spectrum(&o, om, s8, pk);
    /* C(dy, dx) = (1/n^2) sum_k lambda_k cos(2 pi k.d / n), lambda = n^2 P / Lbox^2 */
    for (int dy = 0; dy < n; dy++)
        for (int dx = 0; dx < n; dx++) {
            double s = 0;
            for (int ky = 0; ky < n; ky++)
                for (int kx = 0; kx < n; kx++)
                    s += pk[ky * n + kx] / (LBOX * LBOX) * cos(2 * M_PI * (double)(ky * dy + kx * dx) / n);
            c[dy * n + dx] = s;
        }
    for (int a = 0; a < N; a++)
        for (int b = 0; b < N; b++) {
            int dy = ((a / n - b / n) % n + n) % n, dx = ((a % n - b % n) % n + n) % n;
            cov[(size_t)a * N + b] = c[dy * n + dx];
        }
    double mu = cglow_synth_mu(om), sum_g = 0;
    for (int i = 0; i < N; i++) {
        double u = log10((double)map[i]);
        g[i] = beta > 0 ? log(1 + beta * (u - mu)) / beta : u - mu;
        sum_g += g[i];
    }
    dpotrf_("L", &N, cov, &N, &info);   /* column-major 'L' = our row-major upper; symmetric anyway */
    double logdet = 0, quad = 0;
    if (info != 0) { printf("  dpotrf info %d\n", info); return NAN; }
    /* Column-major lower factor L: L[i][j] (i >= j) at cov[j * N + i]. Forward solve L y = g. */
    double *y = malloc(N * sizeof *y);
    for (int i = 0; i < N; i++) {
        double s = g[i];
        for (int j = 0; j < i; j++) s -= cov[(size_t)j * N + i] * y[j];
        y[i] = s / cov[(size_t)i * N + i];
        quad += y[i] * y[i];
        logdet += 2 * log(cov[(size_t)i * N + i]);
    }
    free(pk); free(cov); free(g); free(c); free(y);
    return -0.5 * quad - 0.5 * logdet - 0.5 * N * log(2 * M_PI) - beta * sum_g;
}

static void test_loglike_against_dense_covariance(void)
{
    enum { n = 8 };
    const double th[2][6] = {{0.25, 0.85, 1, 1, 1, 1}, {0.41, 0.63, 1, 1, 1, 1}};
    for (int bi = 0; bi < 2; bi++) {
        double beta = bi ? 0.0 : 0.3;
        cglow_synth_opts o = {n, LBOX, beta};
        float maps[2 * n * n];
        CHECK(cglow_synth_maps(&o, &th[0][0], 6, 2, 1, 5, maps) == 0, "maps");
        double ll[2], theta[4] = {0.25, 0.85, 0.41, 0.63};
        CHECK(cglow_synth_loglike(&o, maps, 2, theta, 2, ll, "maps", 0) == 0, "loglike: %s", cglow_last_error());
        for (int m = 0; m < 2; m++) {
            double dense = dense_loglike(maps + m * n * n, n, theta[2 * m], theta[2 * m + 1], beta);
            CHECK(fabs(ll[m] - dense) <= 1e-6 * fabs(dense), "beta %g map %d: FFT %.12g, dense %.12g", beta, m, ll[m], dense);
            /* At other parameters too (the likelihood is a function of theta, not of the truth). */
            double t2[2] = {0.33, 0.71}, l2;
            cglow_synth_loglike(&o, maps + m * n * n, 1, t2, 2, &l2, "maps", 0);
            dense = dense_loglike(maps + m * n * n, n, 0.33, 0.71, beta);
            CHECK(fabs(l2 - dense) <= 1e-6 * fabs(dense), "other theta: FFT %.12g, dense %.12g", l2, dense);
        }
        /* The grid version equals point evaluations. */
        double om[3] = {0.2, 0.25, 0.4}, s8[2] = {0.85, 0.7}, grid[6];
        CHECK(cglow_synth_loglike_grid(&o, maps, om, 3, s8, 2, grid, "maps", 0) == 0, "grid");
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 2; j++) {
                double t[2] = {om[i], s8[j]}, l;
                cglow_synth_loglike(&o, maps, 1, t, 2, &l, "maps", 0);
                CHECK_CLOSE(grid[i * 2 + j], l, 1e-10);
            }
    }
    /* Outside the support (1 + beta (u - mu) <= 0) the likelihood is 0; bad pixels are errors. */
    cglow_synth_opts o = {n, LBOX, 0.3};
    float map[n * n];
    double t[2] = {0.3, 0.8}, l;
    for (int i = 0; i < n * n; i++) map[i] = 1e5f;
    map[3] = 1e-3f;
    CHECK(cglow_synth_loglike(&o, map, 1, t, 2, &l, "m", 0) == 0 && isinf(l) && l < 0, "outside the support: %g", l);
    map[3] = NAN;
    CHECK(cglow_synth_loglike(&o, map, 1, t, 2, &l, "m.npy", 40) == CGLOW_EVALUE &&
          strstr(cglow_last_error(), "m.npy: map 40 has a NaN"), "NaN: %s", cglow_last_error());
    map[3] = 0;
    CHECK(cglow_synth_loglike_grid(&o, map, t, 1, t + 1, 1, &l, "m.npy", 3) == CGLOW_EVALUE &&
          strstr(cglow_last_error(), "map 3 has a non-positive"), "zero: %s", cglow_last_error());
}

/* Posterior mean and std of each axis of a G x G grid posterior. */
static void moments(const double *ll, const double *om, const double *s8, int G, double m[2], double sd[2])
{
    double mx = -INFINITY, z = 0, a[2] = {0, 0}, b[2] = {0, 0};
    for (int i = 0; i < G * G; i++) mx = fmax(mx, ll[i]);
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++) {
            double p = exp(ll[i * G + j] - mx);
            z += p;
            a[0] += p * om[i]; b[0] += p * om[i] * om[i];
            a[1] += p * s8[j]; b[1] += p * s8[j] * s8[j];
        }
    for (int k = 0; k < 2; k++) {
        m[k] = a[k] / z;
        sd[k] = sqrt(fmax(b[k] / z - m[k] * m[k], 0));
    }
}

static void test_posterior_concentrates(void)
{
    enum { G = 30 };
    const double truth[6] = {0.3, 0.8, 1, 1, 1, 1};
    double sd_by_size[2][2];
    for (int si = 0; si < 2; si++) {
        int n = si ? 64 : 32;
        cglow_synth_opts o;
        cglow_synth_opts_default(&o, n);
        float *map = malloc((size_t)n * n * sizeof *map);
        double om[G], s8[G], ll[G * G], m[2], sd[2], m2[2], sd2[2];
        CHECK(cglow_synth_maps(&o, truth, 6, 1, 1, 2026, map) == 0, "map");
        cglow_grid_axis(0.1, 0.5, G, 0, om);
        cglow_grid_axis(0.6, 1.0, G, 0, s8);
        CHECK(cglow_synth_loglike_grid(&o, map, om, G, s8, G, ll, "map", 0) == 0, "grid");
        moments(ll, om, s8, G, m, sd);
        /* Refine: a G x G grid over mean +- 6 std. */
        double lo0 = fmax(0.1, m[0] - 6 * sd[0]), hi0 = fmin(0.5, m[0] + 6 * sd[0]);
        double lo1 = fmax(0.6, m[1] - 6 * sd[1]), hi1 = fmin(1.0, m[1] + 6 * sd[1]);
        cglow_grid_axis(lo0, hi0, G, 0, om);
        cglow_grid_axis(lo1, hi1, G, 0, s8);
        cglow_synth_loglike_grid(&o, map, om, G, s8, G, ll, "map", 0);
        moments(ll, om, s8, G, m2, sd2);
        printf("  %dx%d map: box grid mean (%.4f, %.4f) std (%.4f, %.4f); refined mean (%.4f, %.4f) std (%.4f, %.4f)\n",
               n, n, m[0], m[1], sd[0], sd[1], m2[0], m2[1], sd2[0], sd2[1]);
        for (int k = 0; k < 2; k++) {
            CHECK(fabs(m2[k] - truth[k]) < 4 * sd2[k], "%dx%d: parameter %d: posterior mean %.4f +- %.4f, truth %.2f", n, n, k,
                  m2[k], sd2[k], truth[k]);
            CHECK(fabs(m2[k] - m[k]) < 0.5 * sd[k] + 0.4 / G, "refined mean %.4f vs coarse %.4f", m2[k], m[k]);
            CHECK(sd2[k] < 0.1, "posterior std %.4f is informative", sd2[k]);
            sd_by_size[si][k] = sd2[k];
        }
        free(map);
    }
    for (int k = 0; k < 2; k++)
        CHECK(sd_by_size[1][k] < sd_by_size[0][k], "parameter %d: std shrinks with map size (%.4f -> %.4f)", k,
              sd_by_size[0][k], sd_by_size[1][k]);
}

static void test_maps_deterministic_and_lhs(void)
{
    cglow_synth_opts o;
    cglow_synth_opts_default(&o, 16);
    double th[4 * 6];
    CHECK(cglow_synth_params_lhs(4, 3, NULL, NULL, th) == 0, "lhs");
    /* One row per stratum of each column. */
    int strata[2][4] = {{0}};
    for (int r = 0; r < 4; r++) {
        CHECK(th[r * 6] >= 0.1 && th[r * 6] <= 0.5 && th[r * 6 + 1] >= 0.6 && th[r * 6 + 1] <= 1.0, "box");
        CHECK(th[r * 6 + 2] >= 0.25 && th[r * 6 + 2] <= 4 && th[r * 6 + 4] >= 0.5 && th[r * 6 + 4] <= 2, "astro box");
        strata[0][(int)((th[r * 6] - 0.1) / 0.1)]++;
        strata[1][(int)((th[r * 6 + 1] - 0.6) / 0.1)]++;
        char b[32];
        snprintf(b, sizeof b, "%.5f", th[r * 6]);
        CHECK(strtod(b, NULL) == th[r * 6], "rounded to 5 decimals");
    }
    for (int k = 0; k < 4; k++) CHECK(strata[0][k] == 1 && strata[1][k] == 1, "Latin hypercube strata");
    float *a = malloc(4 * 3 * 256 * sizeof *a), *b = malloc(4 * 3 * 256 * sizeof *b);
    cglow_set_threads(1);
    CHECK(cglow_synth_maps(&o, th, 6, 4, 3, 8, a) == 0, "1 thread");
    cglow_set_threads(2);
    CHECK(cglow_synth_maps(&o, th, 6, 4, 3, 8, b) == 0, "2 threads");
    CHECK(!memcmp(a, b, 4 * 3 * 256 * sizeof *a), "independent of the thread count");
    CHECK(memcmp(a, a + 256, 256 * sizeof *a), "maps of one simulation differ");
    cglow_synth_maps(&o, th, 6, 4, 3, 9, b);
    CHECK(memcmp(a, b, 256 * sizeof *a), "another seed, other maps");
    double s = 0, s2 = 0;
    for (int i = 0; i < 4 * 3 * 256; i++) { double u = log10(a[i]); s += u; s2 += u * u; }
    double mean = s / (4 * 3 * 256);
    CHECK(mean > 3.5 && mean < 6 && s2 / (4 * 3 * 256) - mean * mean > 0.2, "log10 maps look like CAMELS: mean %.3g", mean);
    free(a);
    free(b);
}

int main(void)
{
    (void)tmp_path;
    (void)shared_path;
    RUN(test_amplitude_and_transfer);
    RUN(test_power_spectrum_and_variance);
    RUN(test_loglike_against_dense_covariance);
    RUN(test_posterior_concentrates);
    RUN(test_maps_deterministic_and_lhs);
    TEST_MAIN_END();
}
