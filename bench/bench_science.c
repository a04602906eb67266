/* Science throughput: power spectra, posterior math, the exact scorer and (optional) a 30x30 flow
 * posterior of one 64x64 map with the default preset.
 * usage: build/bench/bench_science [flow [G]]   (flow: only the flow posterior; threads: OMP_NUM_THREADS or cglow's default) */
#include "cglow.h"
#include "util/progress.h"
#include "util/rng.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *synth_maps(int n, size_t N)
{
    double *theta = malloc(2 * N * sizeof *theta);
    for (size_t i = 0; i < N; i++) { theta[2 * i] = 0.1 + 0.4 * (i % 7) / 7.0; theta[2 * i + 1] = 0.6 + 0.4 * (i % 5) / 5.0; }
    cglow_synth_opts o;
    cglow_synth_opts_default(&o, n);
    float *m = malloc(N * (size_t)n * n * sizeof *m);
    if (cglow_synth_maps(&o, theta, 2, N, 1, 1, m)) { fprintf(stderr, "%s\n", cglow_last_error()); exit(1); }
    free(theta);
    return m;
}

static void bench_pk(int n, size_t N)
{
    float *m = synth_maps(n, N);
    cglow_pk_options o;
    cglow_pk_options_default(&o);
    cglow_pk *p;
    cglow_pk_create(n, &o, &p);
    double *pk = malloc(N * cglow_pk_nbins(p) * sizeof *pk);
    cglow_pk_compute(p, m, N > 8 ? 8 : N, pk, "warm", 0);
    double t0 = now_seconds();
    if (cglow_pk_compute(p, m, N, pk, "bench", 0)) fprintf(stderr, "%s\n", cglow_last_error());
    double dt = now_seconds() - t0;
    printf("pk (pylians, log10 field) %4dx%-4d: %6zu maps in %.3f s = %8.0f maps/s (%d threads)\n", n, n, N, dt, N / dt, cglow_get_threads());
    cglow_pk_free(p);
    free(pk);
    free(m);
}

static void bench_posterior(int G, int reps)
{
    cglow_grid g;
    double lo[2] = {0.1, 0.6}, hi[2] = {0.5, 1.0};
    cglow_grid_init(&g, G, lo, hi, 0);
    double *ll = malloc((size_t)G * G * sizeof *ll), *p = malloc((size_t)G * G * sizeof *p);
    rng_t r;
    rng_seed(&r, 1);
    for (int i = 0; i < G * G; i++) ll[i] = -0.5 * (double)((i / G - G / 2) * (i / G - G / 2) + (i % G - G / 3) * (i % G - G / 3)) / 9 + 0.01 * rng_normal(&r);
    double truth[2] = {0.3, 0.8};
    cglow_post_summary s;
    double t0 = now_seconds();
    for (int k = 0; k < reps; k++) {
        cglow_posterior_normalise(ll, G * G, p);
        cglow_posterior_summarise(&g, p, truth, &s, NULL, NULL);
    }
    double dt = now_seconds() - t0;
    printf("posterior math (normalise + mean/std/MAP/HPD/truth) %dx%d: %.1f us per map\n", G, G, dt / reps * 1e6);
    free(ll);
    free(p);
}

static void bench_exact(int n, int G, size_t N)
{
    float *m = synth_maps(n, N);
    cglow_grid g;
    double lo[2] = {0.1, 0.6}, hi[2] = {0.5, 1.0};
    cglow_grid_init(&g, G, lo, hi, 0);
    cglow_synth_opts so;
    cglow_synth_opts_default(&so, n);
    cglow_exact_scorer es = {so, m, N, "bench", &g};
    cglow_infer_options io;
    memset(&io, 0, sizeof io);
    io.grid = g;
    io.parallel_maps = 1;
    double *post = malloc(N * (size_t)G * G * sizeof *post);
    cglow_post_summary *s = malloc(N * sizeof *s);
    double t0 = now_seconds();
    if (cglow_infer(&io, cglow_exact_scorer_fn, &es, N, post, s)) fprintf(stderr, "%s\n", cglow_last_error());
    double dt = now_seconds() - t0;
    printf("exact-likelihood posterior %dx%d grid, %dx%d maps: %zu maps in %.3f s = %.2f ms per map (%d threads)\n", G, G, n, n, N, dt,
           dt / N * 1e3, cglow_get_threads());
    free(post); free(s); free(m);
}

static void bench_flow(int G)
{
    cglow_config c;
    cglow_config_preset(&c, "higlow");
    cglow_model *mod;
    if (cglow_model_create(&c, 1, &mod)) { fprintf(stderr, "%s\n", cglow_last_error()); return; }
    cglow_data_config *d = cglow_model_data(mod);
    d->mu = 4.8;
    d->sigma = 1.3;
    float *m = synth_maps(64, 1);
    /* CGLOW_BENCH_SAVE=DIR: the model and the map for the PyTorch timing (bench/torch_posterior.py). */
    const char *save = getenv("CGLOW_BENCH_SAVE");
    if (save) {
        char path[4096];
        size_t shape[3] = {1, 64, 64};
        snprintf(path, sizeof path, "%s/model.safetensors", save);
        if (cglow_model_save(mod, path)) fprintf(stderr, "%s\n", cglow_last_error());
        snprintf(path, sizeof path, "%s/map.npy", save);
        if (cglow_npy_save_f32(path, m, 3, shape)) fprintf(stderr, "%s\n", cglow_last_error());
    }
    cglow_grid g;
    cglow_grid_init(&g, G, d->cond_lo, d->cond_hi, 0);
    cglow_model_scorer ms;
    memset(&ms, 0, sizeof ms);
    ms.model = mod; ms.maps = m; ms.nmaps = 1; ms.h = 64; ms.w = 64; ms.what = "bench";
    cglow_infer_options io;
    memset(&io, 0, sizeof io);
    io.grid = g;
    double *post = malloc((size_t)G * G * sizeof *post);
    cglow_post_summary s;
    double t0 = now_seconds();
    if (cglow_infer(&io, cglow_model_scorer_fn, &ms, 1, post, &s)) fprintf(stderr, "%s\n", cglow_last_error());
    double dt = now_seconds() - t0;
    printf("flow posterior (higlow preset L6 K20 Hd16, %zu parameters) %dx%d grid, one 64x64 map: %.2f s (%d threads)\n",
           cglow_model_num_params(mod), G, G, dt, cglow_get_threads());
    cglow_model_scorer_free(&ms);
    cglow_model_free(mod);
    free(post); free(m);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "flow")) {
        bench_flow(argc > 2 ? atoi(argv[2]) : 30);
        return 0;
    }
    bench_pk(64, 15000);
    bench_pk(256, 300);
    bench_posterior(30, 20000);
    bench_posterior(100, 2000);
    bench_exact(64, 30, 200);
    return 0;
}
