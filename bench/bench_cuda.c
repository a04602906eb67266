/* Throughput of the CUDA primitives at the shapes of the default model (64x64 maps, L = 6,
 * Hd = 16, P = 2) for a group of G maps (default 64, a training batch; `bench_cuda G`), against
 * Prints one line per primitive: ms per call, GFLOP/s
 * (2 per multiply-add) and the GB/s its compulsory traffic implies. Without a CUDA device it prints
 * "SKIP bench_cuda (no CUDA device)" and exits 0.
 *
 * Timing: kcu_sync() around `reps` calls after 3 warm-ups, wall clock (CLOCK_MONOTONIC), so
 * launch overhead is included: exactly what the flow pays per call without CUDA graphs.
 * Then one whole flow step per block (invconv + injector + coupling layers), forward, backward and
 * forward replayed as a CUDA graph, and the resulting estimate for a whole pass of the flow. */
#include "cglow.h"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/kernels.h"
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

/* One flow step (invconv + injector layer + coupling layer) at each block of the default model,
 * forward and backward, direct launches and forward as a replayed CUDA graph; and the estimate
 * of a whole pass (K = 20 steps per block, 7 blocks; priors and squeezes left out). */
static void bench_steps(int G)
{
    static const int blocks[][2] = {{4, 32}, {8, 16}, {16, 8}, {32, 4}, {64, 2}, {128, 1}, {64, 1}};   /* C, H */
    const int P = 2, Hd = 16, K = 20, reps = 20;
    double tot_f = 0, tot_b = 0, tot_g = 0;
    for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++) {
        const int C = blocks[k][0], H = blocks[k][1], W = H, HW = H * W;
        const size_t n = (size_t)G * C * HW;
        kcu_net cn, in_;
        kcu_net_grad cg, ig;
        float **cnp[7] = {(float **)&cn.w1, (float **)&cn.b1, (float **)&cn.w2, (float **)&cn.b2, (float **)&cn.zw,
                          (float **)&cn.zb, (float **)&cn.zs};
        float **inp[7] = {(float **)&in_.w1, (float **)&in_.b1, (float **)&in_.w2, (float **)&in_.b2, (float **)&in_.zw,
                          (float **)&in_.zb, (float **)&in_.zs};
        float **cgp[7] = {&cg.w1, &cg.b1, &cg.w2, &cg.b2, &cg.zw, &cg.zb, &cg.zs};
        float **igp[7] = {&ig.w1, &ig.b1, &ig.w2, &ig.b2, &ig.zw, &ig.zb, &ig.zs};
        const size_t csz[7] = {(size_t)Hd * (C / 2 + P) * 9, Hd, (size_t)Hd * Hd, Hd, (size_t)C * Hd * 9, C, C};
        const size_t isz[7] = {(size_t)Hd * P * 9, Hd, (size_t)Hd * Hd, Hd, (size_t)2 * C * Hd * 9, 2 * C, 2 * C};
        for (int i = 0; i < 7; i++) {
            *cnp[i] = dev_rand(csz[i]); *inp[i] = dev_rand(isz[i]);
            *cgp[i] = dev_rand(csz[i]); *igp[i] = dev_rand(isz[i]);
        }
        float *w = dev_rand((size_t)C * C), *dw = dev_rand((size_t)C * C), *x = dev_rand(n), *c = dev_rand((size_t)G * P);
        float *t1 = dev_rand(n), *t2 = dev_rand(n), *y = dev_rand(n), *dy = dev_rand(n), *d1 = dev_rand(n), *d2 = dev_rand(n);
        float *tape = dev_rand((size_t)G * (2 * Hd + C) * HW);
        size_t s1 = kcu_coupling_scratch(C, P, Hd, H, W, G), s2 = kcu_injector_scratch(C, P, Hd, H, W, G);
        float *scr = dev_rand(s1 > s2 ? s1 : s2), *s11 = dev_rand(kcu_conv1x1_scratch(C, C, HW, G));
        double *ld = kcu_malloc(sizeof(double) * G);
        int rc = 0;
#define FWD()                                                                                          \
    do {                                                                                               \
        rc |= kcu_invconv_fwd(t1, ld, 0.1, x, w, C, HW, G, s11);                                      \
        rc |= kcu_injector_layer_fwd(t2, ld, t1, c, &in_, C, P, Hd, H, W, G, scr);                    \
        rc |= kcu_coupling_layer_fwd(y, ld, t2, c, &cn, C, P, Hd, H, W, G, 0.5f, tape, scr);           \
    } while (0)
#define BWD()                                                                                          \
    do {                                                                                               \
        rc |= kcu_coupling_layer_bwd(d1, &cg, dy, t2, -1e-4f, c, &cn, C, P, Hd, H, W, G, 0.5f, tape, scr); \
        rc |= kcu_injector_layer_bwd(d2, &ig, d1, t1, -1e-4f, c, &in_, C, P, Hd, H, W, G, scr);       \
        rc |= kcu_invconv_bwd(d1, dw, d2, x, w, C, HW, G, s11);                                       \
    } while (0)
        FWD(); BWD(); rc |= kcu_sync();
        double t0 = now();
        for (int r = 0; r < reps; r++) FWD();
        rc |= kcu_sync();
        const double tf = (now() - t0) / reps;
        t0 = now();
        for (int r = 0; r < reps; r++) BWD();
        rc |= kcu_sync();
        const double tb = (now() - t0) / reps;
        double tg = NAN;
        kcu_graph *g = NULL;
        if (kcu_graph_begin() == 0) {
            FWD();
            if (kcu_graph_end(&g) == 0) {
                rc |= kcu_graph_launch(g);
                rc |= kcu_sync();
                t0 = now();
                for (int r = 0; r < reps; r++) rc |= kcu_graph_launch(g);
                rc |= kcu_sync();
                tg = (now() - t0) / reps;
            }
            kcu_graph_free(g);
        }
        if (rc) { fprintf(stderr, "bench_cuda: step C %d %dx%d: %s\n", C, H, W, cglow_last_error()); exit(1); }
        if (tg != tg) printf("# graph capture failed: %s\n", cglow_last_error());
        printf("step C %3d %2dx%-2d G %3d: fwd %8.4f ms  bwd %8.4f ms  fwd as graph %8.4f ms\n", C, H, W, G, 1e3 * tf,
               1e3 * tb, 1e3 * tg);
        tot_f += K * tf; tot_b += K * tb; tot_g += K * tg;
#undef FWD
#undef BWD
        for (int i = 0; i < 7; i++) { kcu_free(*cnp[i]); kcu_free(*inp[i]); kcu_free(*cgp[i]); kcu_free(*igp[i]); }
        float *fr[] = {w, dw, x, c, t1, t2, y, dy, d1, d2, tape, scr, s11};
        for (size_t i = 0; i < sizeof fr / sizeof fr[0]; i++) kcu_free(fr[i]);
        kcu_free(ld);
    }
    printf("whole flow (140 steps, no priors) G %d: fwd %.2f ms (%.0f maps/s), fwd+bwd %.2f ms (%.0f maps/s), "
           "fwd as graphs %.2f ms (%.0f maps/s)\n", G, 1e3 * tot_f, G / tot_f, 1e3 * (tot_f + tot_b),
           G / (tot_f + tot_b), 1e3 * tot_g, G / tot_g);
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
    bench_steps(G);
    kcu_shutdown();
    return 0;
}
