/* Grid posterior (model.md section 6): known answers on Gaussian log-likelihoods, calibration
 * bookkeeping, comparisons and (with the exact synthetic likelihood) coverage. */
#include "cglow.h"
#include "test.h"
#include "util/rng.h"

static const double LO[2] = {0.1, 0.6}, HI[2] = {0.5, 1.0};

/* A 2-D Gaussian log-likelihood (correlation rho) at the grid points. */
static void gauss_ll(const cglow_grid *g, const double mu[2], const double sd[2], double rho, double *ll)
{
    for (int i = 0; i < g->G; i++)
        for (int j = 0; j < g->G; j++) {
            double x = (cglow_grid_value(g, 0, i) - mu[0]) / sd[0], y = (cglow_grid_value(g, 1, j) - mu[1]) / sd[1];
            ll[i * g->G + j] = -0.5 * (x * x - 2 * rho * x * y + y * y) / (1 - rho * rho) + 123.0;  /* any constant */
        }
}

static void test_grid_points(void)
{
    cglow_grid g;
    CHECK(cglow_grid_init(&g, 4, LO, HI, 0) == 0, "%s", cglow_last_error());
    CHECK_CLOSE(cglow_grid_value(&g, 0, 0), 0.15, 1e-15);
    CHECK_CLOSE(cglow_grid_value(&g, 1, 3), 0.95, 1e-15);
    CHECK(cglow_grid_init(&g, 5, LO, HI, 1) == 0, "%s", cglow_last_error());
    CHECK_CLOSE(cglow_grid_value(&g, 0, 0), 0.1, 1e-15);
    CHECK_CLOSE(cglow_grid_value(&g, 0, 4), 0.5, 1e-15);
    CHECK_CLOSE(cglow_grid_value(&g, 1, 2), 0.8, 1e-15);
    double th[50];
    cglow_grid_points(&g, th);
    /* Row-major: point i*G + j = (Omega_m_i, sigma_8_j). */
    CHECK_CLOSE(th[2 * (1 * 5 + 3)], 0.2, 1e-15);
    CHECK_CLOSE(th[2 * (1 * 5 + 3) + 1], 0.9, 1e-15);
    double bad_hi[2] = {0.1, 1.0};
    CHECK(cglow_grid_init(&g, 5, LO, bad_hi, 0) == CGLOW_EARG, "empty box");
    CHECK(cglow_grid_init(&g, 1, LO, HI, 0) == CGLOW_EARG, "G = 1");
}

static void test_gaussian_known_answer(void)
{
    cglow_grid g;
    int G = 80;
    CHECK(cglow_grid_init(&g, G, LO, HI, 0) == 0, "%s", cglow_last_error());
    double mu[2] = {0.27, 0.83}, sd[2] = {0.03, 0.04}, rho = 0.5;
    double *ll = malloc(G * G * sizeof *ll), *p = malloc(G * G * sizeof *p), m0[80], m1[80];
    gauss_ll(&g, mu, sd, rho, ll);
    CHECK(cglow_posterior_normalise(ll, G * G, p) == 0, "%s", cglow_last_error());
    double sum = 0;
    for (int i = 0; i < G * G; i++) sum += p[i];
    CHECK_CLOSE(sum, 1.0, 1e-12);
    cglow_post_summary s;
    double truth[2] = {0.27, 0.83};
    CHECK(cglow_posterior_summarise(&g, p, truth, &s, m0, m1) == 0, "%s", cglow_last_error());
    CHECK_CLOSE(s.mean[0], mu[0], 1e-6);
    CHECK_CLOSE(s.mean[1], mu[1], 1e-5);  /* the box edge at 4.25 sd truncates a little */
    CHECK_CLOSE(s.std[0] / sd[0], 1.0, 1e-3);
    CHECK_CLOSE(s.std[1] / sd[1], 1.0, 1e-3);
    CHECK(fabs(s.map[0] - mu[0]) <= 0.5 * (HI[0] - LO[0]) / G + 1e-12 && fabs(s.map[1] - mu[1]) <= 0.5 * (HI[1] - LO[1]) / G + 1e-12,
          "MAP (%g, %g)", s.map[0], s.map[1]);
    /* HPD of a 2-D Gaussian: mass alpha inside density = peak * (1 - alpha). */
    for (int l = 0; l < CGLOW_NLEVELS; l++) {
        CHECK(s.hpd_mass[l] >= cglow_hpd_levels[l] && s.hpd_mass[l] <= cglow_hpd_levels[l] + 2 * s.max_cell,
              "level %g: mass %g", cglow_hpd_levels[l], s.hpd_mass[l]);
        CHECK_CLOSE(s.hpd_threshold[l] / s.max_cell / (1 - cglow_hpd_levels[l]), 1.0, 0.03);
    }
    /* Marginals: sums and means. */
    double a = 0, b = 0, ma = 0;
    for (int i = 0; i < G; i++) { a += m0[i]; b += m1[i]; ma += m0[i] * cglow_grid_value(&g, 0, i); }
    CHECK_CLOSE(a, 1.0, 1e-12);
    CHECK_CLOSE(b, 1.0, 1e-12);
    CHECK_CLOSE(ma, s.mean[0], 1e-12);
    /* Truth at the mean: inside both, level ~0, no bias. */
    CHECK(s.in_hpd[0] && s.in_hpd[1] && s.truth_level < 0.01, "truth at mean: level %g", s.truth_level);
    CHECK(fabs(s.bias[0]) < 1e-4 && fabs(s.bias[1]) < 1e-4, "bias %g %g", s.bias[0], s.bias[1]);
    /* Truth at Mahalanobis radius r along the Omega_m axis (uncorrelated case): level 1 - exp(-r^2/2)
     * (of its cell's radius). */
    gauss_ll(&g, mu, sd, 0.0, ll);
    cglow_posterior_normalise(ll, G * G, p);
    const double radii[] = {1.0, 2.0, 3.0};
    for (int t = 0; t < 3; t++) {
        double r = radii[t], tr[2] = {mu[0] + r * sd[0], mu[1]};
        CHECK(cglow_posterior_summarise(&g, p, tr, &s, NULL, NULL) == 0, "%s", cglow_last_error());
        /* The truth counts by its cell: the level of the nearest grid point's Mahalanobis radius. */
        int i0 = (int)lround((tr[0] - LO[0]) / (HI[0] - LO[0]) * G - 0.5), j0 = (int)lround((tr[1] - LO[1]) / (HI[1] - LO[1]) * G - 0.5);
        double dx = (cglow_grid_value(&g, 0, i0) - mu[0]) / sd[0], dy = (cglow_grid_value(&g, 1, j0) - mu[1]) / sd[1];
        double level = 1 - exp(-(dx * dx + dy * dy) / 2);
        CHECK(fabs(s.truth_level - level) < 0.01, "r=%g: level %g, want %g", r, s.truth_level, level);
        CHECK(s.in_hpd[0] == (level < 0.68) && s.in_hpd[1] == (level < 0.95), "r=%g: in %d %d", r, s.in_hpd[0], s.in_hpd[1]);
        CHECK_CLOSE(s.bias[0], -r, 2e-3);
    }
    free(ll); free(p);
}

static void test_normalise_bad(void)
{
    double ll[4] = {0, -INFINITY, 1, 2}, p[4];
    CHECK(cglow_posterior_normalise(ll, 4, p) == 0 && p[1] == 0, "-inf is zero mass");
    ll[2] = NAN;
    CHECK(cglow_posterior_normalise(ll, 4, p) == CGLOW_EVALUE, "NaN");
    double all[3] = {-INFINITY, -INFINITY, -INFINITY};
    CHECK(cglow_posterior_normalise(all, 3, p) == CGLOW_EVALUE, "all -inf");
    /* Huge values: logsumexp must not overflow. */
    double big[3] = {1e6, 1e6 - 1, 1e6 - 2}, q[3];
    CHECK(cglow_posterior_normalise(big, 3, q) == 0, "big");
    CHECK_CLOSE(q[0], 1 / (1 + exp(-1) + exp(-2)), 1e-12);
}

static void test_calibration_bookkeeping(void)
{
    cglow_post_summary s[100];
    memset(s, 0, sizeof s);
    for (int i = 0; i < 100; i++) {
        s[i].has_truth = 1;
        s[i].in_hpd[0] = i < 70;
        s[i].in_hpd[1] = i < 94;
        s[i].truth_level = (i + 0.5) / 100;
        s[i].bias[0] = i % 2 ? 1 : -1;
        s[i].bias[1] = 0.5;
        s[i].std[0] = 0.02;
        s[i].std[1] = 0.03;
    }
    cglow_calibration c;
    CHECK(cglow_calibrate(s, 100, &c) == 0, "%s", cglow_last_error());
    CHECK(c.n == 100, "n");
    CHECK_CLOSE(c.coverage[0], 0.70, 1e-12);
    CHECK_CLOSE(c.coverage[1], 0.94, 1e-12);
    CHECK_CLOSE(c.cov_err[0], sqrt(0.7 * 0.3 / 100), 1e-12);
    CHECK_CLOSE(c.cov_z[1], (0.94 - 0.95) / sqrt(0.95 * 0.05 / 100), 1e-12);
    for (int b = 0; b < CGLOW_RANK_BINS; b++) CHECK(c.rank_hist[b] == 10, "bin %d: %d", b, c.rank_hist[b]);
    CHECK_CLOSE(c.bias_mean[0], 0, 1e-12);
    CHECK_CLOSE(c.bias_std[0], 1, 1e-12);
    CHECK_CLOSE(c.bias_mean[1], 0.5, 1e-12);
    CHECK_CLOSE(c.mean_std[1], 0.03, 1e-12);
    for (int i = 0; i < 100; i++) s[i].has_truth = 0;
    CHECK(cglow_calibrate(s, 100, &c) == CGLOW_EARG, "no truths");
}

static void test_compare_gaussians(void)
{
    cglow_grid g;
    int G = 100;
    cglow_grid_init(&g, G, LO, HI, 0);
    double *ll = malloc(G * G * sizeof *ll), *p = malloc(G * G * sizeof *p), *q = malloc(G * G * sizeof *q);
    double mp[2] = {0.3, 0.8}, sp[2] = {0.03, 0.04}, mq[2] = {0.315, 0.78}, sq[2] = {0.036, 0.04};
    gauss_ll(&g, mp, sp, 0, ll);
    cglow_posterior_normalise(ll, G * G, p);
    gauss_ll(&g, mq, sq, 0, ll);
    cglow_posterior_normalise(ll, G * G, q);
    cglow_post_comparison c;
    CHECK(cglow_posterior_compare(&g, p, q, &c) == 0, "%s", cglow_last_error());
    CHECK_CLOSE(c.shift[0], 0.5, 2e-3);
    CHECK_CLOSE(c.shift[1], -0.5, 2e-3);
    CHECK_CLOSE(c.width_ratio[0], 1.2, 2e-3);
    CHECK_CLOSE(c.width_ratio[1], 1.0, 2e-3);
    /* KL(p || q) of independent Gaussians: sum over axes log(sq/sp) + (sp^2 + dm^2) / (2 sq^2) - 1/2. */
    double kl = 0;
    for (int a = 0; a < 2; a++)
        kl += log(sq[a] / sp[a]) + (sp[a] * sp[a] + (mp[a] - mq[a]) * (mp[a] - mq[a])) / (2 * sq[a] * sq[a]) - 0.5;
    CHECK_CLOSE(c.kl, kl, 2e-3);
    CHECK(cglow_posterior_compare(&g, p, p, &c) == 0 && fabs(c.kl) < 1e-12, "KL(p||p) = %g", c.kl);
    free(ll); free(p); free(q);
}


/* Coverage with the exact synthetic likelihood (model.md 7) as the scorer: truths drawn uniformly
 * from the grid points (so the grid posterior is the exact Bayesian posterior of that discrete
 * prior), one 16x16 map each; the 68% / 95% HPD regions must cover the truth in 68% / 95% of maps
 * within 3 binomial sigmas, and the truth's HPD level must average 1/2. */
static void test_exact_coverage(void)
{
    const int N = 400, G = 24, n = 16;
    cglow_grid g;
    CHECK(cglow_grid_init(&g, G, LO, HI, 0) == 0, "%s", cglow_last_error());
    double *theta = malloc(2 * N * sizeof *theta);
    rng_t r;
    rng_seed(&r, 20261129);
    for (int m = 0; m < N; m++) {
        theta[2 * m] = cglow_grid_value(&g, 0, (int)rng_below(&r, G));
        theta[2 * m + 1] = cglow_grid_value(&g, 1, (int)rng_below(&r, G));
    }
    cglow_synth_opts so;
    cglow_synth_opts_default(&so, n);
    float *maps = malloc((size_t)N * n * n * sizeof *maps);
    CHECK(cglow_synth_maps(&so, theta, 2, N, 1, 77, maps) == 0, "%s", cglow_last_error());
    cglow_exact_scorer es = {so, maps, (size_t)N, "synthetic", &g};
    cglow_infer_options io = {g, theta, 0, 1};
    double *post = malloc((size_t)N * G * G * sizeof *post);
    cglow_post_summary *s = malloc(N * sizeof *s);
    CHECK(cglow_infer(&io, cglow_exact_scorer_fn, &es, N, post, s) == 0, "%s", cglow_last_error());
    cglow_calibration c;
    CHECK(cglow_calibrate(s, N, &c) == 0, "%s", cglow_last_error());
    double lev_mean = 0, wsd0 = 0;
    for (int m = 0; m < N; m++) { lev_mean += s[m].truth_level / N; wsd0 += s[m].std[0] / N; }
    printf("  exact coverage over %d maps: 68%% -> %.3f (z %.2f), 95%% -> %.3f (z %.2f), mean level %.3f, mean std Om %.4f\n",
           N, c.coverage[0], c.cov_z[0], c.coverage[1], c.cov_z[1], lev_mean, wsd0);
    for (int l = 0; l < CGLOW_NLEVELS; l++) CHECK(fabs(c.cov_z[l]) < 3, "level %g: coverage %g", cglow_hpd_levels[l], c.coverage[l]);
    CHECK(fabs(lev_mean - 0.5) < 3 * sqrt(1.0 / 12 / N), "mean truth level %g", lev_mean);
    CHECK(fabs(c.bias_mean[0]) < 3 / sqrt((double)N) * fmax(1, c.bias_std[0]), "bias Om %g", c.bias_mean[0]);
    /* The fast grid path and the per-point path of the scorer agree. */
    double th2[2 * 6], ll_pts[6], *ll_grid = malloc((size_t)G * G * sizeof *ll_grid), *pts = malloc(2 * (size_t)G * G * sizeof *pts);
    cglow_grid_points(&g, pts);
    CHECK(cglow_exact_scorer_fn(&es, 3, pts, G * G, ll_grid) == 0, "%s", cglow_last_error());
    for (int k = 0; k < 6; k++) { th2[2 * k] = pts[2 * (k * 97)]; th2[2 * k + 1] = pts[2 * (k * 97) + 1]; }
    CHECK(cglow_exact_scorer_fn(&es, 3, th2, 6, ll_pts) == 0, "%s", cglow_last_error());
    for (int k = 0; k < 6; k++) CHECK_CLOSE(ll_pts[k], ll_grid[k * 97], 1e-9);
    free(ll_grid); free(pts);
    free(theta); free(maps); free(post); free(s);
}

/* The flow scorer: preprocessing and condition scaling as the spec says (c = 2 (theta - lo) /
 * (hi - lo) - 1), every point equal to a direct cglow_log_prob, also past the 1024-point batch. */
static void test_model_scorer(void)
{
    cglow_config cfg;
    CHECK(cglow_config_preset(&cfg, "higlow") == 0, "%s", cglow_last_error());
    cfg.height = cfg.width = 8;
    cfg.levels = 2; cfg.steps = 1; cfg.hidden = 4;
    cglow_model *m;
    CHECK(cglow_model_create(&cfg, 3, &m) == 0, "%s", cglow_last_error());
    if (!m) return;
    cglow_data_config *d = cglow_model_data(m);
    d->mu = 4.8; d->sigma = 1.2;
    d->cond_lo[0] = 0.12; d->cond_hi[0] = 0.48; d->cond_lo[1] = 0.62; d->cond_hi[1] = 0.98;
    double th1[2] = {0.3, 0.8};
    cglow_synth_opts so;
    cglow_synth_opts_default(&so, 8);
    float map[64], x[64], c[2];
    CHECK(cglow_synth_maps(&so, th1, 2, 1, 1, 5, map) == 0, "%s", cglow_last_error());
    cglow_model_scorer ms;
    memset(&ms, 0, sizeof ms);
    ms.model = m; ms.maps = map; ms.nmaps = 1; ms.h = 8; ms.w = 8; ms.what = "t";
    const int G = 33;   /* 1089 points: two cglow_log_prob batches */
    cglow_grid g;
    cglow_grid_init(&g, G, d->cond_lo, d->cond_hi, 1);
    double *pts = malloc(2 * (size_t)G * G * sizeof *pts), *ll = malloc((size_t)G * G * sizeof *ll);
    cglow_grid_points(&g, pts);
    CHECK(cglow_model_scorer_fn(&ms, 0, pts, G * G, ll) == 0, "%s", cglow_last_error());
    CHECK(cglow_data_maps_to_model(d, map, 1, 8, 8, x, "t", 0) == 0, "%s", cglow_last_error());
    const int probe[] = {0, 17, 1023, 1024, 1088};
    for (int t = 0; t < 5; t++) {
        int k = probe[t];
        for (int a = 0; a < 2; a++) c[a] = (float)(2 * (pts[2 * k + a] - d->cond_lo[a]) / (d->cond_hi[a] - d->cond_lo[a]) - 1);
        double ref;
        CHECK(cglow_log_prob(m, x, c, 1, &ref) == 0, "%s", cglow_last_error());
        CHECK_CLOSE(ll[k], ref, 1e-9);
    }
    /* Box corners with edges = 1 are the conditions -1 and +1. */
    CHECK(fabs(pts[0] - d->cond_lo[0]) < 1e-15 && fabs(pts[2 * (G * G - 1) + 1] - d->cond_hi[1]) < 1e-15, "grid edges");
    /* Maps of the wrong size are refused with the file named. */
    ms.h = ms.w = 4;
    CHECK(cglow_model_scorer_fn(&ms, 0, pts, 4, ll) == CGLOW_ESHAPE && strstr(cglow_last_error(), "t:"), "%s", cglow_last_error());
    cglow_model_scorer_free(&ms);
    cglow_model_free(m);
    free(pts); free(ll);
}

int main(void)
{
    (void)tmp_path; (void)shared_path;  /* test.h helpers this test does not need */
    RUN(test_grid_points);
    RUN(test_gaussian_known_answer);
    RUN(test_normalise_bad);
    RUN(test_calibration_bookkeeping);
    RUN(test_compare_gaussians);
    RUN(test_exact_coverage);
    RUN(test_model_scorer);
    TEST_MAIN_END();
}
