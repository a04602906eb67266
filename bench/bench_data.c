/* Data throughput: generate the synthetic CAMELS-sized data set (15,000 maps of 64 x 64), fit and
 * preprocess it, write it as .npy, build the loader from the file (mmap + preprocess + cache), run
 * an epoch of batches, and evaluate exact log-likelihoods.
 *   build/bench/bench_data [maps=15000] [size=64] [threads=0 (OpenMP default)] */
#include "cglow.h"
#include "util/progress.h"
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    size_t maps = argc > 1 ? (size_t)atol(argv[1]) : 15000;
    int n = argc > 2 ? atoi(argv[2]) : 64, mps = 15;
    if (argc > 3) cglow_set_threads(atoi(argv[3]));
    else cglow_set_threads(0);
    size_t rows = (maps + mps - 1) / mps;
    maps = rows * mps;
    size_t npix = (size_t)n * n;
    double *theta = malloc(rows * 6 * sizeof *theta);
    float *raw = malloc(maps * npix * sizeof *raw), *y = malloc(maps * npix * sizeof *y);
    if (!theta || !raw || !y) { fprintf(stderr, "out of memory\n"); return 1; }
    printf("bench_data: %zu maps of %dx%d, %d threads\n", maps, n, n, cglow_get_threads());

    double t0 = now_seconds();
    cglow_synth_params_lhs(rows, 1, NULL, NULL, theta);
    cglow_synth_opts o;
    cglow_synth_opts_default(&o, n);
    if (cglow_synth_maps(&o, theta, 6, rows, mps, 1, raw)) { fprintf(stderr, "%s\n", cglow_last_error()); return 1; }
    double t_gen = now_seconds() - t0;
    printf("  generate        %8.3f s  %10.0f maps/s\n", t_gen, maps / t_gen);

    cglow_data_config d;
    cglow_data_config_default(&d, 2);
    t0 = now_seconds();
    if (cglow_data_fit_maps(&d, raw, maps, n, n)) { fprintf(stderr, "%s\n", cglow_last_error()); return 1; }
    double t_fit = now_seconds() - t0;
    printf("  fit mu, sigma   %8.3f s  %10.0f maps/s  (mu %.4f, sigma %.4f)\n", t_fit, maps / t_fit, d.mu, d.sigma);
    t0 = now_seconds();
    if (cglow_data_maps_to_model(&d, raw, maps, n, n, y, "bench", 0)) { fprintf(stderr, "%s\n", cglow_last_error()); return 1; }
    double t_pre = now_seconds() - t0;
    printf("  preprocess      %8.3f s  %10.0f maps/s\n", t_pre, maps / t_pre);
    t_pre += t_fit;
    printf("  generate+preprocess: %.3f s\n", t_gen + t_pre);

    const char *mp = "/tmp/cglow-bench-maps.npy", *pp = "/tmp/cglow-bench-params.txt";
    size_t shape[3] = {maps, (size_t)n, (size_t)n};
    cglow_table t = {(int)rows, 6, theta};
    t0 = now_seconds();
    if (cglow_npy_save_f32(mp, raw, 3, shape) || cglow_table_save_camels(pp, &t, "Om sigma8 SN1 AGN1 SN2 AGN2")) {
        fprintf(stderr, "%s\n", cglow_last_error());
        return 1;
    }
    printf("  write .npy      %8.3f s  (%.0f MB, atomic + fsync)\n", now_seconds() - t0, maps * npix * 4 / 1e6);

    cglow_dataset ds;
    size_t *tr = malloc(maps * sizeof *tr), *te = malloc(maps * sizeof *te), ntr, nte;
    t0 = now_seconds();
    if (cglow_dataset_open(mp, pp, NULL, 0, &ds) || cglow_split(maps, mps, CGLOW_SPLIT_WITHIN_SIM, 0, 0, tr, &ntr, te, &nte)) {
        fprintf(stderr, "%s\n", cglow_last_error());
        return 1;
    }
    cglow_loader_opts lo;
    cglow_loader_opts_default(&lo);
    lo.batch = 64;
    lo.augment = 1;
    cglow_loader *L;
    if (cglow_loader_create(&ds, &d, tr, ntr, &lo, &L)) { fprintf(stderr, "%s\n", cglow_last_error()); return 1; }
    double t_load = now_seconds() - t0;
    printf("  loader create   %8.3f s  %10.0f maps/s  (%zu train maps, mmap + preprocess + cache)\n", t_load, ntr / t_load, ntr);
    float *x = malloc(64 * npix * sizeof *x), *c = malloc(64 * 2 * sizeof *c);
    int nb, rc;
    size_t seen = 0;
    t0 = now_seconds();
    while ((rc = cglow_loader_next_batch(L, x, c, &nb)) > 0) seen += (size_t)nb;
    double t_ep = now_seconds() - t0;
    printf("  epoch (augment) %8.3f s  %10.0f maps/s  (batch 64)\n", t_ep, seen / t_ep);
    cglow_loader_free(L);
    cglow_dataset_close(&ds);

    size_t nll = maps < 1500 ? maps : 1500;
    double *ll = malloc(nll * sizeof *ll), *th2 = malloc(nll * 2 * sizeof *th2);
    for (size_t i = 0; i < nll; i++) { th2[2 * i] = theta[(i / mps) * 6]; th2[2 * i + 1] = theta[(i / mps) * 6 + 1]; }
    t0 = now_seconds();
    cglow_synth_loglike(&o, raw, nll, th2, 2, ll, "bench", 0);
    double t_ll = now_seconds() - t0;
    printf("  exact loglike   %8.3f s  %10.0f maps/s  (%zu maps)\n", t_ll, nll / t_ll, nll);
    enum { G = 30 };
    double om[G], s8[G], grid[G * G];
    cglow_grid_axis(0.1, 0.5, G, 0, om);
    cglow_grid_axis(0.6, 1.0, G, 0, s8);
    t0 = now_seconds();
    for (int i = 0; i < 20; i++) cglow_synth_loglike_grid(&o, raw + (size_t)i * npix, om, G, s8, G, grid, "bench", 0);
    printf("  exact posterior %8.3f ms per map (30 x 30 grid)\n", (now_seconds() - t0) / 20 * 1e3);
    remove(mp);
    remove(pp);
    free(theta); free(raw); free(y); free(tr); free(te); free(x); free(c); free(ll); free(th2);
    return 0;
}
