/* The whole flow on the CUDA backend, default preset (1 x 64 x 64, L = 6, K = 20, hidden 16):
 *   score   one map at the 900 conditions of a 30 x 30 posterior grid (one cglow_log_prob call),
 *           ms per posterior, with CUDA graphs and with direct launches (CGLOW_CUDA_GRAPHS=0);
 *   train   cglow_train_step at batch 64 and 512 (forward, backward, clip, Adam), maps/s, and the
 *           extrapolation to the paper's 13,000 maps x 1,000 epochs;
 *   sample  cglow_sample of N maps (one condition each), maps/s.
 * Usage: bench_flow_cuda [--quick] [--json FILE]. Without a usable device: "SKIP bench_flow_cuda"
 * and exit 0. Timing: wall clock after warm-up calls (the first call of a batch size captures
 * its CUDA graph), each timed call complete on return (results on the host). */
#include "cglow.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static uint64_t rs = 88172645463325252ull;
static double urand(void)
{
    rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
    return (rs >> 11) * (1.0 / 9007199254740992.0);
}
static double nrand(void)
{
    double u = urand() + 1e-300, v = urand();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static void die(const char *what)
{
    fprintf(stderr, "bench_flow_cuda: %s: %s\n", what, cglow_last_error());
    exit(1);
}

/* default preset, non-zero zeroconvs (nothing is an identity), on the device */
static cglow_model *model(int graphs)
{
    setenv("CGLOW_CUDA_GRAPHS", graphs ? "1" : "0", 1);
    cglow_config c;
    cglow_config_preset(&c, "higlow");
    cglow_model *m;
    if (cglow_model_create(&c, 1, &m)) die("create");
    for (int i = 0; i < cglow_model_num_tensors(m); i++) {
        const cglow_tensor_info *t = cglow_model_tensor(m, i);
        if (!t->trainable || !strstr(t->name, ".zero.")) continue;
        float *v = malloc(sizeof(float) * t->size);
        cglow_model_get_tensor(m, i, v);
        for (size_t k = 0; k < t->size; k++) v[k] += (float)(0.01 * nrand());
        cglow_model_set_tensor(m, i, v);
        free(v);
    }
    if (cglow_model_set_device(m, "cuda")) die("set_device");
    return m;
}

static float *maps(int n, size_t D)
{
    float *x = malloc(sizeof(float) * n * D);
    for (size_t i = 0; i < (size_t)n * D; i++) x[i] = (float)tanh(nrand() / 2);
    return x;
}

/* ms per posterior of one map at G*G conditions */
static double bench_score(cglow_model *m, int G, int reps)
{
    const int n = G * G;
    const size_t D = cglow_model_dim(m);
    float *x1 = maps(1, D), *x = malloc(sizeof(float) * n * D), *c = malloc(sizeof(float) * n * 2);
    double *lp = malloc(sizeof(double) * n);
    for (int i = 0; i < n; i++) {
        memcpy(x + (size_t)i * D, x1, sizeof(float) * D);
        c[2 * i] = (float)(-1 + (2.0 * (i / G) + 1) / G);
        c[2 * i + 1] = (float)(-1 + (2.0 * (i % G) + 1) / G);
    }
    for (int w = 0; w < 2; w++)
        if (cglow_log_prob(m, x, c, n, lp)) die("log_prob");
    const double t0 = now();
    for (int r = 0; r < reps; r++)
        if (cglow_log_prob(m, x, c, n, lp)) die("log_prob");
    const double t = (now() - t0) / reps;
    for (int i = 0; i < n; i++)
        if (!isfinite(lp[i])) { fprintf(stderr, "bench_flow_cuda: log p[%d] = %g\n", i, lp[i]); exit(1); }
    free(x1); free(x); free(c); free(lp);
    return 1e3 * t;
}

/* maps/s of training steps at batch B */
static double bench_train(cglow_model *m, int B, int steps, double *loss0, double *loss1)
{
    const size_t D = cglow_model_dim(m);
    float *x = maps(B, D), *c = malloc(sizeof(float) * B * 2);
    for (int i = 0; i < 2 * B; i++) c[i] = (float)(2 * urand() - 1);
    cglow_optim_config o;
    cglow_optim_config_default(&o);
    cglow_trainer *t;
    if (cglow_trainer_create(m, &o, B, &t)) die("trainer");
    cglow_step_result r;
    for (int w = 0; w < 2; w++)
        if (cglow_train_step(t, x, c, B, &r)) die("train_step");
    *loss0 = r.loss;
    const double t0 = now();
    for (int s = 0; s < steps; s++)
        if (cglow_train_step(t, x, c, B, &r)) die("train_step");
    const double el = now() - t0;
    *loss1 = r.loss;
    cglow_trainer_free(t);
    free(x); free(c);
    return B * steps / el;
}

static double bench_sample(cglow_model *m, int n, int reps)
{
    const size_t D = cglow_model_dim(m);
    float *c = malloc(sizeof(float) * n * 2), *x = malloc(sizeof(float) * n * D);
    for (int i = 0; i < n; i++) { c[2 * i] = -0.2f; c[2 * i + 1] = 0.3f; }
    if (cglow_sample(m, c, n, 1.0f, 1, x)) die("sample");
    const double t0 = now();
    for (int r = 0; r < reps; r++)
        if (cglow_sample(m, c, n, 1.0f, 2 + r, x)) die("sample");
    const double t = (now() - t0) / reps;
    free(c); free(x);
    return n / t;
}

int main(int argc, char **argv)
{
    int quick = 0;
    const char *json = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else { fprintf(stderr, "usage: bench_flow_cuda [--quick] [--json FILE]\n"); return 2; }
    }
    const char *why;
    if (!cglow_cuda_available(&why)) {
        printf("SKIP bench_flow_cuda (no CUDA device: %s)\n", why);
        return 0;
    }
    cglow_model *m = model(1), *md = model(0);
    printf("default preset (1x64x64, L6 K20 hidden 16), %zu trainable parameters, float32, device cuda\n",
           cglow_model_num_params(m));
    const int reps = quick ? 3 : 10;
    const double sg = bench_score(m, 30, reps), sd = bench_score(md, 30, quick ? 2 : 5);
    printf("score   30x30 posterior of one map (900 conditions, one call): %8.2f ms with CUDA graphs, %8.2f ms "
           "direct launches  (target < 20 ms: %s)\n", sg, sd, sg < 20 ? "met" : "NOT met");
    double l0, l1, l0d, l1d;
    const double t64 = bench_train(m, 64, quick ? 5 : 20, &l0, &l1);
    printf("train   batch  64: %8.1f maps/s  (%.2f ms/step; loss %.4f -> %.4f)\n", t64, 64e3 / t64, l0, l1);
    const double t64d = bench_train(md, 64, quick ? 3 : 10, &l0d, &l1d);
    printf("train   batch  64: %8.1f maps/s with direct launches (no graph)\n", t64d);
    const double t512 = bench_train(m, 512, quick ? 2 : 6, &l0, &l1);
    printf("train   batch 512: %8.1f maps/s  (%.2f ms/step; loss %.4f -> %.4f)\n", t512, 512e3 / t512, l0, l1);
    const double maps_total = 13000.0 * 1000.0;
    printf("paper   13,000 maps x 1,000 epochs = 1.3e7 maps: %.2f h at batch 64, %.2f h at batch 512  "
           "(target < 1 h: %s)\n", maps_total / t64 / 3600, maps_total / t512 / 3600,
           fmin(maps_total / t64, maps_total / t512) < 3600 ? "met" : "NOT met");
    const double s64 = bench_sample(m, 64, quick ? 2 : 5), s512 = bench_sample(m, 512, quick ? 1 : 3);
    printf("sample  %8.1f maps/s (64 per call), %8.1f maps/s (512 per call)\n", s64, s512);
    if (json) {
        FILE *f = fopen(json, "w");
        if (f) {
            fprintf(f, "{\"score_ms_graph\": %.4f, \"score_ms_direct\": %.4f, \"train_maps_per_s_64\": %.2f, "
                       "\"train_maps_per_s_64_direct\": %.2f, \"train_maps_per_s_512\": %.2f, "
                       "\"sample_maps_per_s_64\": %.2f, \"sample_maps_per_s_512\": %.2f, \"paper_hours_64\": %.4f, "
                       "\"paper_hours_512\": %.4f}\n", sg, sd, t64, t64d, t512, s64, s512, maps_total / t64 / 3600,
                    maps_total / t512 / 3600);
            fclose(f);
        }
    }
    cglow_model_free(m);
    cglow_model_free(md);
    return 0;
}
