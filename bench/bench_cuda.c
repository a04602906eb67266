/* Throughput of the CUDA primitives at the shapes of the default model (64x64 maps, L = 6,
 * Hd = 16, P = 2) for a group of G maps (default 64, a training batch; `bench_cuda G`), against
 * the CPU kernels on one thread for scale. Prints one line per primitive: ms per call, GFLOP/s
 * (2 per multiply-add) and the GB/s its compulsory traffic implies. Without a CUDA device it prints
 * "SKIP bench_cuda (no CUDA device)" and exits 0.
 *
 * Timing: kcu_sync() around `reps` calls after 3 warm-ups, wall clock (CLOCK_MONOTONIC), so
 * launch overhead is included: exactly what the flow pays per call without CUDA graphs. */
#include "cglow.h"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static float *dev_rand(size_t n)
{
    float *h = malloc(sizeof(float) * n), *d = kcu_malloc(sizeof(float) * n);
    if (!h || !d) { fprintf(stderr, "bench_cuda: %s\n", cglow_last_error()); exit(1); }
    for (size_t i = 0; i < n; i++) h[i] = (float)rand() / RAND_MAX - 0.5f;
    kcu_memcpy_h2d(d, h, sizeof(float) * n);
    free(h);
    return d;
}

typedef struct { int Cin, Cout, H, W; float pad; const char *what; } shape;

static void report(const char *name, const shape *s, int G, double sec, double flops, double bytes)
{
    printf("%-14s %-26s %2dx%-2d Cin %2d Cout %2d G %3d: %9.4f ms  %8.1f GFLOP/s  %7.1f GB/s\n", name, s->what, s->H,
           s->W, s->Cin, s->Cout, G, 1e3 * sec, flops / sec * 1e-9, bytes / sec * 1e-9);
}

int main(int argc, char **argv)
{
    const int G = argc > 1 ? atoi(argv[1]) : 64;
    if (!kcu_available()) {
        printf("# cuda: %s\nSKIP bench_cuda (no CUDA device)\n", kcu_unavailable_reason());
        return 0;
    }
    if (kcu_init(0)) { fprintf(stderr, "bench_cuda: %s\n", cglow_last_error()); return 1; }
    printf("# device: %s, G = %d maps per call\n", kcu_device_name(), G);
    /* the convolutions of one flow step at each level (C = channels inside the block) */
    static const shape shapes[] = {
        {4, 16, 32, 32, 0, "coupling conv1 L0 (C=4)"},  {16, 4, 32, 32, 1, "coupling zeroconv L0"},
        {16, 16, 32, 32, 0, "conv2 1x1 L0"},            {6, 16, 16, 16, 0, "coupling conv1 L1 (C=8)"},
        {16, 8, 16, 16, 1, "coupling zeroconv L1"},     {10, 16, 8, 8, 0, "coupling conv1 L2 (C=16)"},
        {34, 16, 2, 2, 0, "coupling conv1 L5 (C=64)"},  {16, 64, 1, 1, 1, "coupling zeroconv L6"},
        {2, 16, 5, 5, 0, "injector conv1 (5x5 red.)"},  {16, 128, 5, 5, 1, "injector zeroconv L5"},
    };
    const int reps = 50;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const shape *s = &shapes[k];
        const int HW = s->H * s->W;
        const int is1x1 = !strncmp(s->what, "conv2", 5);
        const size_t nin = (size_t)G * s->Cin * HW, nout = (size_t)G * s->Cout * HW;
        const size_t nw = (size_t)s->Cout * s->Cin * (is1x1 ? 1 : 9);
        float *in = dev_rand(nin), *out = dev_rand(nout), *w = dev_rand(nw), *b = dev_rand(s->Cout);
        float *dw = dev_rand(nw), *db = dev_rand(s->Cout), *din = dev_rand(nin);
        size_t ns = is1x1 ? kcu_conv1x1_scratch(s->Cin, s->Cout, HW, G) : kcu_conv3x3_scratch(s->Cin, s->Cout, s->H, s->W, G);
        float *scr = kcu_malloc(sizeof(float) * ns);
        if (!scr) { fprintf(stderr, "bench_cuda: %s\n", cglow_last_error()); return 1; }
        const double mac = (double)G * HW * s->Cout * s->Cin * (is1x1 ? 1 : 9);
        const double bytes = 4.0 * (nin + nout + nw);
        for (int pass = 0; pass < 2; pass++) {
            int rc = 0;
            for (int r = 0; r < 3; r++)
                rc |= pass == 0 ? (is1x1 ? kcu_conv1x1_fwd(out, in, w, b, s->Cin, s->Cout, HW, G, scr)
                                         : kcu_conv3x3_fwd(out, in, w, b, s->Cin, s->Cout, s->H, s->W, G, s->pad, scr))
                                : (is1x1 ? kcu_conv1x1_bwd(din, dw, db, out, in, w, s->Cin, s->Cout, HW, G, scr)
                                         : kcu_conv3x3_bwd(din, dw, db, out, in, w, s->Cin, s->Cout, s->H, s->W, G,
                                                           s->pad, scr));
            rc |= kcu_sync();
            const double t0 = now();
            for (int r = 0; r < reps; r++)
                rc |= pass == 0 ? (is1x1 ? kcu_conv1x1_fwd(out, in, w, b, s->Cin, s->Cout, HW, G, scr)
                                         : kcu_conv3x3_fwd(out, in, w, b, s->Cin, s->Cout, s->H, s->W, G, s->pad, scr))
                                : (is1x1 ? kcu_conv1x1_bwd(din, dw, db, out, in, w, s->Cin, s->Cout, HW, G, scr)
                                         : kcu_conv3x3_bwd(din, dw, db, out, in, w, s->Cin, s->Cout, s->H, s->W, G,
                                                           s->pad, scr));
            rc |= kcu_sync();
            const double sec = (now() - t0) / reps;
            if (rc) { fprintf(stderr, "bench_cuda: %s\n", cglow_last_error()); return 1; }
            report(pass == 0 ? "fwd" : "bwd", s, G, sec, (pass == 0 ? 2 : 4) * mac, (pass == 0 ? 1 : 2) * bytes);
        }
        kcu_free(in); kcu_free(out); kcu_free(w); kcu_free(b); kcu_free(dw); kcu_free(db); kcu_free(din);
        kcu_free(scr);
    }
    /* memory-bound fused parts at the largest block: C = 4, 32x32 */
    {
        const int C = 4, HW = 32 * 32;
        const size_t n = (size_t)G * C * HW;
        float *x = dev_rand(n), *y = dev_rand(n), *o = dev_rand(n), *dy = dev_rand(n), *dx = dev_rand(n);
        float *dout = dev_rand(n);
        double *ld = kcu_malloc(sizeof(double) * G);
        shape s = {C, C, 32, 32, 0, "fused"};
        int rc = 0;
        double t0 = now();
        for (int r = 0; r < reps; r++) rc |= kcu_coupling_fwd(y, x, o, C, HW, G, 0.5f, ld);
        rc |= kcu_sync();
        report("coupling_fwd", &s, G, (now() - t0) / reps, 0, 4.0 * 3 * n);
        t0 = now();
        for (int r = 0; r < reps; r++) rc |= kcu_coupling_bwd(dx, dout, dy, x, o, -1e-3f, C, HW, G, 0.5f);
        rc |= kcu_sync();
        report("coupling_bwd", &s, G, (now() - t0) / reps, 0, 4.0 * 5 * n);
        if (rc) { fprintf(stderr, "bench_cuda: %s\n", cglow_last_error()); return 1; }
        kcu_free(x); kcu_free(y); kcu_free(o); kcu_free(dy); kcu_free(dx); kcu_free(dout); kcu_free(ld);
    }
    {
        const size_t n = 1u << 20;   /* about the flow's parameter count, rounded up */
        float *p = dev_rand(n), *g = dev_rand(n), *m = dev_rand(n), *v = dev_rand(n);
        kcu_memset0(v, sizeof(float) * n);
        double *out = kcu_malloc(sizeof(double));
        shape s = {0, 0, 0, 0, 0, "1M params"};
        int rc = 0;
        double t0 = now();
        for (int r = 0; r < reps; r++) rc |= kcu_adam(p, g, m, v, n, 1.0, 0.9, 0.999, 1e-8, 3e-4, 1.0);
        rc |= kcu_sync();
        report("adam", &s, 1, (now() - t0) / reps, 0, 4.0 * 7 * n);
        t0 = now();
        for (int r = 0; r < reps; r++) rc |= kcu_sumsq(out, g, n);
        rc |= kcu_sync();
        report("sumsq", &s, 1, (now() - t0) / reps, 0, 4.0 * n);
        if (rc) { fprintf(stderr, "bench_cuda: %s\n", cglow_last_error()); return 1; }
        kcu_free(p); kcu_free(g); kcu_free(m); kcu_free(v); kcu_free(out);
    }
    kcu_shutdown();
    return 0;
}
