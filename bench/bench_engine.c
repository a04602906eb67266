/* Engine throughput on the default preset: training steps (batch B), scoring one map at G x G
 * conditions (the posterior grid), sampling. Prints maps/s, GFLOP/s and the FLOPs counted.
 * usage: bench_engine [threads=2] [batch=64] [grid=30] [train_steps=5] */
#include "cglow.h"
#include "util/progress.h"
#include "util/rng.h"
#include <stdio.h>
#include <math.h>
#include <stdlib.h>

void cglow_blas_fix_core(char **argv);   /* util/threads.c: OpenBLAS's kernels for this CPU */

int main(int argc, char **argv)
{
    cglow_blas_fix_core(argv);
    int threads = argc > 1 ? atoi(argv[1]) : 2, B = argc > 2 ? atoi(argv[2]) : 64;
    int G = argc > 3 ? atoi(argv[3]) : 30, steps = argc > 4 ? atoi(argv[4]) : 5;
    cglow_set_threads(threads);
    cglow_config cfg;
    cglow_config_preset(&cfg, "higlow");
    cglow_model *m;
    if (cglow_model_create(&cfg, 1, &m)) { fprintf(stderr, "%s\n", cglow_last_error()); return 1; }
    const size_t D = cglow_model_dim(m);
    double naive, fwd = cglow_model_flops_forward(m, &naive);
    rng_t r;
    rng_seed(&r, 5);
    float *x = malloc(sizeof(float) * D * (B > G * G ? B : G * G)), *c = malloc(sizeof(float) * 2 * (B > G * G ? B : G * G));
    for (size_t i = 0; i < D * B; i++) x[i] = (float)tanh(rng_normal(&r) / 2);
    for (int i = 0; i < 2 * B; i++) c[i] = (float)(2 * rng_uniform(&r) - 1);
    printf("cglow engine benchmark: default preset (L=6, K=20, hidden 16, 64x64), %d threads\n", threads);
    printf("forward FLOPs per map: %.1f M as computed (%.1f M as written)\n", fwd / 1e6, naive / 1e6);

    cglow_optim_config o;
    cglow_optim_config_default(&o);
    cglow_trainer *t;
    cglow_trainer_create(m, &o, B, &t);
    cglow_step_result res;
    cglow_train_step(t, x, c, B, &res);   /* warm-up */
    double t0 = now_seconds();
    for (int s = 0; s < steps; s++) cglow_train_step(t, x, c, B, &res);
    double dt = now_seconds() - t0, rate = steps * B / dt;
    const double trn = cglow_model_flops_train(m);
    printf("train   batch %d: %.1f maps/s (%.3f s/step), %.1f GFLOP/s at %.1f MFLOP per map, loss %.4f\n", B, rate,
           dt / steps, rate * trn / 1e9, trn / 1e6, res.loss);

    /* scoring: one map at G*G conditions, in one call */
    const int N = G * G;
    for (int i = 0; i < N; i++) {
        for (size_t k = 0; k < D; k++) x[(size_t)i * D + k] = x[k];
        c[2 * i] = (float)(-1 + (2 * (i / G) + 1.0) / G);
        c[2 * i + 1] = (float)(-1 + (2 * (i % G) + 1.0) / G);
    }
    double *lp = malloc(sizeof(double) * N);
    cglow_log_prob(m, x, c, N < 8 ? N : 8, lp);   /* warm-up */
    t0 = now_seconds();
    cglow_log_prob(m, x, c, N, lp);
    dt = now_seconds() - t0;
    printf("score   %dx%d grid for one map: %.3f s, %.1f evaluations/s, %.1f GFLOP/s\n", G, G, dt, N / dt, N * fwd / dt / 1e9);

    const int S = 64;
    t0 = now_seconds();
    cglow_sample(m, c, S, 1.0f, 7, x);
    dt = now_seconds() - t0;
    printf("sample  %d maps: %.3f s, %.1f maps/s\n", S, dt, S / dt);
    free(x); free(c); free(lp);
    cglow_trainer_free(t);
    cglow_model_free(m);
    return 0;
}
