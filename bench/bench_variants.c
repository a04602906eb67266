/* In-process A/B of code paths: this VM's speed drifts by up to 1.5x within minutes, so two
 * binaries run one after the other (bench/ab.sh) only resolve large differences. Here the
 * variants alternate step by step inside one process and share every drift.
 *
 * To compare code paths, put a temporary switch in the library at the place under test:
 *     extern int cglow_variant;
 *     if (cglow_variant == 1) { old path } else { new path }
 * build with `make build/bench/bench_variants` (only this program defines cglow_variant: the
 * tool does not link while the switch is there, so it cannot land by mistake) and run
 *     build/bench/bench_variants [threads=2] [rounds=8] [variants=2] [score=0]
 * score=1 times log p of 300 maps (the posterior's kind of call) instead of training steps.
 * Each variant's mean and best rate are printed; the means are the figure to compare. */
#include "cglow.h"
#include "util/progress.h"
#include "util/rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int cglow_variant;
void cglow_blas_fix_core(char **argv);   /* util/threads.c: OpenBLAS's kernels for this CPU */

int main(int argc, char **argv)
{
    cglow_blas_fix_core(argv);
    const int threads = argc > 1 ? atoi(argv[1]) : 2, rounds = argc > 2 ? atoi(argv[2]) : 8;
    const int nv = argc > 3 ? atoi(argv[3]) : 2, score = argc > 4 ? atoi(argv[4]) : 0, B = 64;
    if (threads < 1 || rounds < 1 || nv < 1 || nv > 8) {
        fprintf(stderr, "usage: bench_variants [threads>=1] [rounds>=1] [variants 1..8] [score 0|1]\n");
        return 2;
    }
    cglow_set_threads(threads);
    cglow_config cfg;
    cglow_config_preset(&cfg, "higlow");
    cglow_model *m;
    if (cglow_model_create(&cfg, 1, &m)) { fprintf(stderr, "%s\n", cglow_last_error()); return 1; }
    const size_t D = cglow_model_dim(m);
    const int N = score ? 300 : B;
    float *x = malloc(sizeof(float) * D * N), *c = malloc(sizeof(float) * 2 * N);
    double *lp = malloc(sizeof(double) * N);
    rng_t r;
    rng_seed(&r, 5);
    for (size_t i = 0; i < D * N; i++) x[i] = (float)tanh(rng_normal(&r) / 2);
    for (int i = 0; i < 2 * N; i++) c[i] = (float)(2 * rng_uniform(&r) - 1);
    cglow_optim_config o;
    cglow_optim_config_default(&o);
    o.lr = 0;   /* the same parameters for every step: only the code path changes */
    cglow_trainer *t;
    if (cglow_trainer_create(m, &o, B, &t)) { fprintf(stderr, "%s\n", cglow_last_error()); return 1; }
    cglow_step_result res;
    double total[8] = {0}, best[8];
    for (int v = 0; v < nv; v++) {   /* warm-up, and the best times' start */
        cglow_variant = v;
        if (score) cglow_log_prob(m, x, c, N, lp);
        else cglow_train_step(t, x, c, B, &res);
        best[v] = 1e30;
    }
    for (int i = 0; i < rounds; i++)
        for (int v = 0; v < nv; v++) {
            cglow_variant = v;
            const double t0 = now_seconds();
            if (score) cglow_log_prob(m, x, c, N, lp);
            else cglow_train_step(t, x, c, B, &res);
            const double dt = now_seconds() - t0;
            total[v] += dt;
            if (dt < best[v]) best[v] = dt;
        }
    for (int v = 0; v < nv; v++)
        printf("variant %d: mean %.1f best %.1f %s/s\n", v, N * rounds / total[v], N / best[v], score ? "evaluations" : "maps");
    cglow_trainer_free(t);
    cglow_model_free(m);
    free(x); free(c); free(lp);
    return 0;
}
