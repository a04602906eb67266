/* The CUDA backend against the CPU (the pattern of ggml's test-backend-ops): for every primitive
 * of src/kernels/kernels.h and every fused layer part, random inputs, the CPU kernel (the float32
 * library) or a loop that copies the CPU layer's arithmetic, the CUDA kernel, and a comparison of
 * norms with a float32 tolerance. Without a usable CUDA device every test prints
 * "SKIP name (no CUDA device)" and the binary exits 0; test_no_device then checks that the
 * backend fails cleanly (error codes and messages, no crash).
 *
 * The same file also builds against the CPU emulation of CUDA (src/kernels/cuda/emul.h) as
 * build/tests/test_cuda_emul: there the tests run for real (named "emul.test_*"), checking the
 * kernels' indexing, the GEMM layouts and (under ASan) their bounds on any machine.
 *
 * The CPU reference section below calls the CPU kernels once per map (the committed kernels.h
 * works on one map); when kernels.h takes a group of G maps, those few adapters become direct
 * calls. */
#include "test.h"
#include "cglow.h"
#include "kernels/cuda/kernels_cuda.h"
#include "kernels/kernels.h"
#include <stdint.h>

#define TOL 1e-4   /* on ||gpu - cpu|| / ||cpu|| */

/* ---------------------------------------------------------------- helpers */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float urand(void)   /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0) - 1.0);
}
static float *hrand(size_t n, float scale)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    if (!p) abort();
    for (size_t i = 0; i < n; i++) p[i] = scale * urand();
    return p;
}
static float *hdup(const float *a, size_t n)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    if (!p) abort();
    memcpy(p, a, sizeof(float) * n);
    return p;
}
static float *hzero(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) abort();
    return p;
}

/* device copies; every test frees what it made */
static void *dalloc(size_t bytes)
{
    void *p = kcu_malloc(bytes);
    if (!p) { printf("  kcu_malloc: %s\n", cglow_last_error()); abort(); }
    return p;
}
static float *dup_dev(const float *h, size_t n)
{
    float *d = dalloc(sizeof(float) * (n ? n : 1));
    if (n && kcu_memcpy_h2d(d, h, sizeof(float) * n)) { printf("  h2d: %s\n", cglow_last_error()); abort(); }
    return d;
}
static float *dzero(size_t n)
{
    float *d = dalloc(sizeof(float) * (n ? n : 1));
    kcu_memset0(d, sizeof(float) * (n ? n : 1));
    return d;
}
static double *dzero_d(size_t n)
{
    double *d = dalloc(sizeof(double) * (n ? n : 1));
    kcu_memset0(d, sizeof(double) * (n ? n : 1));
    return d;
}
/* host copy of a device buffer (after kcu_sync) */
static float *to_host(const float *d, size_t n)
{
    float *h = hzero(n);
    if (n && kcu_memcpy_d2h(h, d, sizeof(float) * n)) { printf("  d2h: %s\n", cglow_last_error()); abort(); }
    return h;
}
static double *to_host_d(const double *d, size_t n)
{
    double *h = malloc(sizeof(double) * (n ? n : 1));
    if (!h) abort();
    if (n && kcu_memcpy_d2h(h, d, sizeof(double) * n)) { printf("  d2h: %s\n", cglow_last_error()); abort(); }
    return h;
}

static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
        if (a[i] != a[i]) return INFINITY;
    }
    return sqrt(num) / (den > 0 ? sqrt(den) : 1.0);
}

/* check a device buffer against a host reference */
#define CHECK_DEV(dptr, href, n, what)                                                              \
    do {                                                                                           \
        float *h_ = to_host((dptr), (n));                                                          \
        const double e_ = rel_err(h_, (href), (n));                                                \
        CHECK(e_ <= TOL, "%s: relative error %.3g (n %zu)", (what), e_, (size_t)(n));              \
        free(h_);                                                                                  \
    } while (0)
#define CHECK_OK(call)                                                                             \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        CHECK(rc_ == 0, "%s returned %d: %s", #call, rc_, cglow_last_error());                     \
    } while (0)
#define SYNC() CHECK_OK(kcu_sync())

/* ---------------------------------------------------------------- CPU reference (G maps) */
static void cpu_conv3x3_fwd(float *out, const float *in, const float *w, const float *b, int Cin, int Cout, int H,
                            int W, int G, float pad)
{
    real *sc = malloc(sizeof(real) * k_conv3x3_scratch(Cin, Cout, H, W, G));
    k_conv3x3_fwd(out, in, w, b, Cin, Cout, H, W, G, pad, sc);
    free(sc);
}
static void cpu_conv3x3_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                            int Cin, int Cout, int H, int W, int G, float pad)
{
    real *sc = malloc(sizeof(real) * k_conv3x3_scratch(Cin, Cout, H, W, G));
    k_conv3x3_bwd(din, dw, db, dout, in, w, Cin, Cout, H, W, G, pad, sc);
    free(sc);
}
static void cpu_conv1x1_fwd(float *out, const float *in, const float *w, const float *b, int Cin, int Cout, int HW,
                            int G)
{
    real *sc = malloc(sizeof(real) * k_conv1x1_scratch(Cin, Cout, HW, G));
    k_conv1x1_fwd(out, in, w, b, Cin, Cout, HW, G, sc);
    free(sc);
}
static void cpu_conv1x1_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                            int Cin, int Cout, int HW, int G)
{
    real *sc = malloc(sizeof(real) * k_conv1x1_scratch(Cin, Cout, HW, G));
    k_conv1x1_bwd(din, dw, db, dout, in, w, Cin, Cout, HW, G, sc);
    free(sc);
}
static void cpu_linear_fwd(float *out, const float *in, const float *W, const float *b, int M, int K, int G)
{
    for (int g = 0; g < G; g++) k_linear_fwd(out + (size_t)g * M, in + (size_t)g * K, W, b, M, K);
}
static void cpu_linear_bwd(float *din, float *dW, float *db, const float *dout, const float *in, const float *W,
                           int M, int K, int G)
{
    for (int g = 0; g < G; g++)
        k_linear_bwd(din ? din + (size_t)g * K : NULL, dW, db, dout + (size_t)g * M, in + (size_t)g * K, W, M, K);
}

/* ---------------------------------------------------------------- no device: clean failures */
static void test_no_device(void)
{
    CHECK(kcu_available() == 0, "expected no device");
    CHECK(strlen(kcu_unavailable_reason()) > 0, "a reason");
    const int rc = kcu_init(0);
    CHECK(rc == CGLOW_ENOTSUP, "kcu_init: %d", rc);
    CHECK(strstr(cglow_last_error(), "cuda") != NULL, "message: %s", cglow_last_error());
    CHECK(strchr(cglow_last_error(), '\n') == NULL, "one line");
    CHECK(kcu_malloc(16) == NULL, "kcu_malloc without a device");
    CHECK(kcu_relu(NULL, 10) == CGLOW_ENOTSUP, "a kernel without a device");
    CHECK(kcu_sync() == CGLOW_ENOTSUP, "sync without a device");
    CHECK(strcmp(kcu_device_name(), "none") == 0, "name %s", kcu_device_name());
    kcu_free(NULL);
    kcu_shutdown();
}

/* ---------------------------------------------------------------- context */
static void test_context(void)
{
    CHECK(kcu_init(0) == 0, "second init is a no-op: %s", cglow_last_error());
    CHECK(kcu_stream() != NULL, "stream");
    const size_t n = 1000;
    float *h = hrand(n, 1), *d = dup_dev(h, n), *d2 = dzero(n);
    CHECK_OK(kcu_memcpy_d2d(d2, d, sizeof(float) * n));
    SYNC();
    float *back = to_host(d2, n);
    CHECK(memcmp(back, h, sizeof(float) * n) == 0, "round trip");
    /* an impossible allocation fails with a message, not a crash */
    void *huge = kcu_malloc((size_t)1 << 50);
    CHECK(huge == NULL, "1 PiB allocation succeeded?");
    CHECK(strstr(cglow_last_error(), "cudaMalloc") != NULL, "message: %s", cglow_last_error());
    CHECK_OK(kcu_sync());   /* the failed allocation left no sticky error */
    kcu_free(d);
    kcu_free(d2);
    free(h);
    free(back);
}

/* ---------------------------------------------------------------- conv3x3 */
typedef struct { int Cin, Cout, H, W, G; float pad; int bias; } conv_case;
static const conv_case conv_cases[] = {
    {3, 5, 7, 6, 2, 0, 1},  {4, 16, 8, 8, 3, 0, 1},  {16, 8, 5, 5, 2, 1, 1},   {2, 3, 1, 1, 4, 1, 0},
    {1, 2, 2, 3, 1, 1, 1},  {16, 16, 32, 32, 2, 0, 1}, {16, 4, 64, 64, 1, 1, 1}, {18, 16, 16, 16, 5, 0, 1},
    {16, 32, 2, 2, 7, 1, 1}, {34, 16, 1, 1, 3, 0, 1},
};
#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

static void test_conv3x3_fwd(void)
{
    for (size_t k = 0; k < NCASES(conv_cases); k++) {
        const conv_case c = conv_cases[k];
        const size_t HW = (size_t)c.H * c.W, nin = (size_t)c.G * c.Cin * HW, nout = (size_t)c.G * c.Cout * HW;
        const size_t nw = (size_t)c.Cout * c.Cin * 9;
        float *in = hrand(nin, 1), *w = hrand(nw, 0.3f), *b = hrand(c.Cout, 1), *out = hzero(nout);
        cpu_conv3x3_fwd(out, in, w, c.bias ? b : NULL, c.Cin, c.Cout, c.H, c.W, c.G, c.pad);
        float *din = dup_dev(in, nin), *dw = dup_dev(w, nw), *db = dup_dev(b, c.Cout), *dout = dzero(nout);
        float *scr = dzero(kcu_conv3x3_scratch(c.Cin, c.Cout, c.H, c.W, c.G));
        CHECK_OK(kcu_conv3x3_fwd(dout, din, dw, c.bias ? db : NULL, c.Cin, c.Cout, c.H, c.W, c.G, c.pad, scr));
        SYNC();
        char what[96];
        snprintf(what, sizeof what, "case %zu (Cin %d Cout %d %dx%d G %d pad %g)", k, c.Cin, c.Cout, c.H, c.W, c.G,
                 c.pad);
        CHECK_DEV(dout, out, nout, what);
        kcu_free(din); kcu_free(dw); kcu_free(db); kcu_free(dout); kcu_free(scr);
        free(in); free(w); free(b); free(out);
    }
}

static void test_conv3x3_bwd(void)
{
    for (size_t k = 0; k < NCASES(conv_cases); k++) {
        const conv_case c = conv_cases[k];
        const size_t HW = (size_t)c.H * c.W, nin = (size_t)c.G * c.Cin * HW, nout = (size_t)c.G * c.Cout * HW;
        const size_t nw = (size_t)c.Cout * c.Cin * 9;
        float *in = hrand(nin, 1), *w = hrand(nw, 0.3f), *go = hrand(nout, 1);
        /* dw, db start non-zero: the backward pass must accumulate */
        float *gw = hrand(nw, 1), *gb = hrand(c.Cout, 1), *gi = hzero(nin);
        float *gw0 = hdup(gw, nw), *gb0 = hdup(gb, c.Cout);
        const int with_db = c.bias, with_din = (k % 3) != 2;
        cpu_conv3x3_bwd(with_din ? gi : NULL, gw, with_db ? gb : NULL, go, in, w, c.Cin, c.Cout, c.H, c.W, c.G, c.pad);
        float *d_in = dup_dev(in, nin), *d_w = dup_dev(w, nw), *d_go = dup_dev(go, nout);
        float *d_gw = dup_dev(gw0, nw), *d_gb = dup_dev(gb0, c.Cout), *d_gi = dzero(nin);
        float *scr = dzero(kcu_conv3x3_scratch(c.Cin, c.Cout, c.H, c.W, c.G));
        CHECK_OK(kcu_conv3x3_bwd(with_din ? d_gi : NULL, d_gw, with_db ? d_gb : NULL, d_go, d_in, d_w, c.Cin, c.Cout,
                                 c.H, c.W, c.G, c.pad, scr));
        SYNC();
        char what[96];
        snprintf(what, sizeof what, "case %zu (Cin %d Cout %d %dx%d G %d pad %g) dw", k, c.Cin, c.Cout, c.H, c.W,
                 c.G, c.pad);
        CHECK_DEV(d_gw, gw, nw, what);
        /* the accumulated part alone (dw - dw0), so that a small gradient is not hidden by dw0 */
        float *hgw = to_host(d_gw, nw);
        for (size_t i = 0; i < nw; i++) { hgw[i] -= gw0[i]; gw[i] -= gw0[i]; }
        const double e = rel_err(hgw, gw, nw);
        CHECK(e <= TOL, "%s increment: relative error %.3g", what, e);
        free(hgw);
        if (with_db) CHECK_DEV(d_gb, gb, (size_t)c.Cout, "db");
        if (with_din) CHECK_DEV(d_gi, gi, nin, "din");
        kcu_free(d_in); kcu_free(d_w); kcu_free(d_go); kcu_free(d_gw); kcu_free(d_gb); kcu_free(d_gi); kcu_free(scr);
        free(in); free(w); free(go); free(gw); free(gb); free(gi); free(gw0); free(gb0);
    }
}

/* ---------------------------------------------------------------- conv1x1 (also the invconv) */
typedef struct { int Cin, Cout, HW, G, bias; } c1_case;
static const c1_case c1_cases[] = {
    {16, 16, 64, 3, 1}, {4, 4, 1, 5, 0}, {8, 3, 25, 2, 1}, {16, 16, 4096, 2, 1}, {64, 64, 1, 9, 0}, {2, 32, 16, 4, 1},
};

static void test_conv1x1_fwd(void)
{
    for (size_t k = 0; k < NCASES(c1_cases); k++) {
        const c1_case c = c1_cases[k];
        const size_t nin = (size_t)c.G * c.Cin * c.HW, nout = (size_t)c.G * c.Cout * c.HW, nw = (size_t)c.Cout * c.Cin;
        float *in = hrand(nin, 1), *w = hrand(nw, 0.5f), *b = hrand(c.Cout, 1), *out = hzero(nout);
        cpu_conv1x1_fwd(out, in, w, c.bias ? b : NULL, c.Cin, c.Cout, c.HW, c.G);
        float *d_in = dup_dev(in, nin), *d_w = dup_dev(w, nw), *d_b = dup_dev(b, c.Cout), *d_out = dzero(nout);
        float *scr = dzero(kcu_conv1x1_scratch(c.Cin, c.Cout, c.HW, c.G));
        CHECK_OK(kcu_conv1x1_fwd(d_out, d_in, d_w, c.bias ? d_b : NULL, c.Cin, c.Cout, c.HW, c.G, scr));
        SYNC();
        CHECK_DEV(d_out, out, nout, "conv1x1 out");
        kcu_free(d_in); kcu_free(d_w); kcu_free(d_b); kcu_free(d_out); kcu_free(scr);
        free(in); free(w); free(b); free(out);
    }
}

static void test_conv1x1_bwd(void)
{
    for (size_t k = 0; k < NCASES(c1_cases); k++) {
        const c1_case c = c1_cases[k];
        const size_t nin = (size_t)c.G * c.Cin * c.HW, nout = (size_t)c.G * c.Cout * c.HW, nw = (size_t)c.Cout * c.Cin;
        float *in = hrand(nin, 1), *w = hrand(nw, 0.5f), *go = hrand(nout, 1);
        float *gw = hrand(nw, 1), *gb = hrand(c.Cout, 1), *gi = hzero(nin), *gw0 = hdup(gw, nw), *gb0 = hdup(gb, c.Cout);
        const int with_din = k != 1;
        cpu_conv1x1_bwd(with_din ? gi : NULL, gw, c.bias ? gb : NULL, go, in, w, c.Cin, c.Cout, c.HW, c.G);
        float *d_in = dup_dev(in, nin), *d_w = dup_dev(w, nw), *d_go = dup_dev(go, nout), *d_gw = dup_dev(gw0, nw);
        float *d_gb = dup_dev(gb0, c.Cout), *d_gi = dzero(nin), *scr = dzero(kcu_conv1x1_scratch(c.Cin, c.Cout, c.HW, c.G));
        CHECK_OK(kcu_conv1x1_bwd(with_din ? d_gi : NULL, d_gw, c.bias ? d_gb : NULL, d_go, d_in, d_w, c.Cin, c.Cout,
                                 c.HW, c.G, scr));
        SYNC();
        CHECK_DEV(d_gw, gw, nw, "conv1x1 dw");
        if (c.bias) CHECK_DEV(d_gb, gb, (size_t)c.Cout, "conv1x1 db");
        if (with_din) CHECK_DEV(d_gi, gi, nin, "conv1x1 din");
        kcu_free(d_in); kcu_free(d_w); kcu_free(d_go); kcu_free(d_gw); kcu_free(d_gb); kcu_free(d_gi); kcu_free(scr);
        free(in); free(w); free(go); free(gw); free(gb); free(gi); free(gw0); free(gb0);
    }
}

/* ---------------------------------------------------------------- relu */
static void test_relu(void)
{
    const size_t n = 100003;
    float *y = hrand(n, 1), *dy = hrand(n, 1);
    for (size_t i = 0; i < n; i += 97) y[i] = 0;   /* exact zeros: dy must be zeroed there */
    y[5] = NAN;                                     /* !(NaN > 0): relu gives 0 */
    float *d_y = dup_dev(y, n), *d_dy = dup_dev(dy, n);
    k_relu(y, n);
    CHECK_OK(kcu_relu(d_y, n));
    k_relu_bwd(dy, y, n);
    CHECK_OK(kcu_relu_bwd(d_dy, d_y, n));
    SYNC();
    float *hy = to_host(d_y, n), *hdy = to_host(d_dy, n);
    CHECK(memcmp(hy, y, sizeof(float) * n) == 0, "relu differs from the CPU");
    CHECK(memcmp(hdy, dy, sizeof(float) * n) == 0, "relu_bwd differs from the CPU");
    kcu_free(d_y); kcu_free(d_dy);
    free(y); free(dy); free(hy); free(hdy);
}

/* ---------------------------------------------------------------- linear */
static void test_linear(void)
{
    static const int cases[][3] = {{8, 2, 5}, {8, 8, 1}, {64, 8, 3}, {4096, 8, 2}, {3, 17, 33}};
    for (size_t k = 0; k < NCASES(cases); k++) {
        const int M = cases[k][0], K = cases[k][1], G = cases[k][2];
        const size_t nW = (size_t)M * K;
        float *in = hrand((size_t)G * K, 1), *W = hrand(nW, 0.5f), *b = hrand(M, 1), *out = hzero((size_t)G * M);
        float *go = hrand((size_t)G * M, 1), *gW = hrand(nW, 1), *gb = hrand(M, 1), *gi = hzero((size_t)G * K);
        float *d_in = dup_dev(in, (size_t)G * K), *d_W = dup_dev(W, nW), *d_b = dup_dev(b, M);
        float *d_out = dzero((size_t)G * M), *d_go = dup_dev(go, (size_t)G * M), *d_gW = dup_dev(gW, nW);
        float *d_gb = dup_dev(gb, M), *d_gi = dzero((size_t)G * K);
        const float *bias = k == 1 ? NULL : b;
        cpu_linear_fwd(out, in, W, bias, M, K, G);
        cpu_linear_bwd(gi, gW, gb, go, in, W, M, K, G);
        CHECK_OK(kcu_linear_fwd(d_out, d_in, d_W, k == 1 ? NULL : d_b, M, K, G));
        CHECK_OK(kcu_linear_bwd(d_gi, d_gW, d_gb, d_go, d_in, d_W, M, K, G));
        SYNC();
        CHECK_DEV(d_out, out, (size_t)G * M, "linear out");
        CHECK_DEV(d_gW, gW, nW, "linear dW");
        CHECK_DEV(d_gb, gb, (size_t)M, "linear db");
        CHECK_DEV(d_gi, gi, (size_t)G * K, "linear din");
        kcu_free(d_in); kcu_free(d_W); kcu_free(d_b); kcu_free(d_out); kcu_free(d_go); kcu_free(d_gW);
        kcu_free(d_gb); kcu_free(d_gi);
        free(in); free(W); free(b); free(out); free(go); free(gW); free(gb); free(gi);
    }
}

/* ---------------------------------------------------------------- zeroconv scale, copies */
static void test_channel_scale(void)
{
    const int C = 6, HW = 37, G = 3;
    const size_t n = (size_t)G * C * HW;
    float *o = hrand(n, 1), *zs = hrand(C, 0.3f), *dout = hrand(n, 1), *gzs = hrand(C, 1);
    float *d_o = dup_dev(o, n), *d_zs = dup_dev(zs, C), *d_dout = dup_dev(dout, n), *d_gzs = dup_dev(gzs, C);
    CHECK_OK(kcu_channel_scale_fwd(d_o, d_zs, C, HW, G));
    for (int g = 0; g < G; g++)
        for (int c = 0; c < C; c++) {
            const float f = (float)exp(3.0 * zs[c]);
            for (int i = 0; i < HW; i++) o[((size_t)g * C + c) * HW + i] *= f;
        }
    CHECK_OK(kcu_channel_scale_bwd(d_dout, d_gzs, d_o, d_zs, C, HW, G));
    for (int c = 0; c < C; c++) {
        const float f = (float)exp(3.0 * zs[c]);
        double acc = 0;
        for (int g = 0; g < G; g++)
            for (int i = 0; i < HW; i++) {
                const size_t k = ((size_t)g * C + c) * HW + i;
                acc += (double)dout[k] * o[k];
                dout[k] *= f;
            }
        gzs[c] += (float)(3 * acc);
    }
    SYNC();
    CHECK_DEV(d_o, o, n, "scaled o");
    CHECK_DEV(d_dout, dout, n, "dout");
    CHECK_DEV(d_gzs, gzs, (size_t)C, "gzs");
    kcu_free(d_o); kcu_free(d_zs); kcu_free(d_dout); kcu_free(d_gzs);
    free(o); free(zs); free(dout); free(gzs);
}

static void test_copies(void)
{
    const int C = 8, Ca = 4, P = 2, HW = 19, G = 3;
    float *x = hrand((size_t)G * C * HW, 1), *c = hrand((size_t)G * P, 1);
    float *d_x = dup_dev(x, (size_t)G * C * HW), *d_c = dup_dev(c, (size_t)G * P);
    /* concat(x[:, :Ca], c) and the condition map alone */
    float *d_cat = dzero((size_t)G * (Ca + P) * HW), *d_cm = dzero((size_t)G * P * HW);
    CHECK_OK(kcu_concat_cond(d_cat, d_x, C, Ca, d_c, P, HW, G));
    CHECK_OK(kcu_concat_cond(d_cm, NULL, 0, 0, d_c, P, HW, G));
    float *cat = hzero((size_t)G * (Ca + P) * HW), *cm = hzero((size_t)G * P * HW);
    for (int g = 0; g < G; g++) {
        memcpy(cat + (size_t)g * (Ca + P) * HW, x + (size_t)g * C * HW, sizeof(float) * Ca * HW);
        for (int j = 0; j < P; j++)
            for (int i = 0; i < HW; i++) {
                cat[((size_t)g * (Ca + P) + Ca + j) * HW + i] = c[g * P + j];
                cm[((size_t)g * P + j) * HW + i] = c[g * P + j];
            }
    }
    /* y[:, 1:4] = x[:, 5:8]; then y[:, 1:4] += x[:, 0:3]; axpy */
    const int yC = 5;
    float *y = hrand((size_t)G * yC * HW, 1), *d_y = dup_dev(y, (size_t)G * yC * HW);
    CHECK_OK(kcu_copy_channels(d_y, yC, 1, d_x, C, 5, 3, HW, G));
    CHECK_OK(kcu_add_channels(d_y, yC, 1, d_x, C, 0, 3, HW, G));
    CHECK_OK(kcu_axpy(d_y, 0.5f, d_y, (size_t)G * yC * HW));
    for (int g = 0; g < G; g++)
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < HW; i++)
                y[((size_t)g * yC + 1 + k) * HW + i] =
                    x[((size_t)g * C + 5 + k) * HW + i] + x[((size_t)g * C + k) * HW + i];
    for (size_t i = 0; i < (size_t)G * yC * HW; i++) y[i] += 0.5f * y[i];
    SYNC();
    CHECK_DEV(d_cat, cat, (size_t)G * (Ca + P) * HW, "concat");
    CHECK_DEV(d_cm, cm, (size_t)G * P * HW, "condition map");
    CHECK_DEV(d_y, y, (size_t)G * yC * HW, "copy/add channels");
    kcu_free(d_x); kcu_free(d_c); kcu_free(d_cat); kcu_free(d_cm); kcu_free(d_y);
    free(x); free(c); free(cat); free(cm); free(y);
}

/* ---------------------------------------------------------------- coupling (src/model/coupling.c) */
static void test_coupling(void)
{
    static const int cases[][3] = {{4, 32, 3}, {2, 1, 5}, {8, 16, 2}, {64, 1, 7}};   /* C, HW, G */
    const float clamp = 0.5f, gl = -0.37f;
    for (size_t k = 0; k < NCASES(cases); k++) {
        const int C = cases[k][0], HW = cases[k][1], G = cases[k][2];
        const size_t n = (size_t)G * C * HW, half = (size_t)(C / 2) * HW;
        float *x = hrand(n, 2), *o = hrand(n, 3), *dy = hrand(n, 1), *y = hzero(n), *dx = hzero(n), *dout = hzero(n);
        double *ld = calloc(G, sizeof(double));
        for (int g = 0; g < G; g++) {
            const float *xg = x + (size_t)g * C * HW, *og = o + (size_t)g * C * HW, *dyg = dy + (size_t)g * C * HW;
            float *yg = y + (size_t)g * C * HW, *dxg = dx + (size_t)g * C * HW, *dog = dout + (size_t)g * C * HW;
            memcpy(yg, xg, sizeof(float) * half);
            for (size_t i = 0; i < half; i++) {
                const float sg = sigmoid_r(og[i] + 2), sc = (1 - clamp) * sg + clamp;
                yg[half + i] = (xg[half + i] + og[half + i]) * sc;
                ld[g] += log((double)sc);
                const float gy = dyg[half + i];
                dxg[half + i] = gy * sc;
                dxg[i] = dyg[i];
                dog[half + i] = gy * sc;
                const float ds = gy * (xg[half + i] + og[half + i]) + gl / sc;
                dog[i] = ds * (1 - clamp) * sg * (1 - sg);
            }
        }
        float *d_x = dup_dev(x, n), *d_o = dup_dev(o, n), *d_dy = dup_dev(dy, n), *d_y = dzero(n), *d_x2 = dzero(n);
        float *d_dx = dzero(n), *d_dout = dzero(n);
        double *d_ld = dzero_d(G);
        CHECK_OK(kcu_coupling_fwd(d_y, d_x, d_o, C, HW, G, clamp, d_ld));
        CHECK_OK(kcu_coupling_inv(d_x2, d_y, d_o, C, HW, G, clamp));
        CHECK_OK(kcu_coupling_bwd(d_dx, d_dout, d_dy, d_x, d_o, gl, C, HW, G, clamp));
        SYNC();
        CHECK_DEV(d_y, y, n, "coupling y");
        CHECK_DEV(d_x2, x, n, "coupling inverse(forward(x))");
        CHECK_DEV(d_dx, dx, n, "coupling dx");
        CHECK_DEV(d_dout, dout, n, "coupling d o");
        double *hld = to_host_d(d_ld, G);
        for (int g = 0; g < G; g++) CHECK_CLOSE(hld[g], ld[g], 1e-5);
        /* in place (y == x) */
        CHECK_OK(kcu_coupling_fwd(d_x, d_x, d_o, C, HW, G, clamp, NULL));
        SYNC();
        CHECK_DEV(d_x, y, n, "coupling in place");
        kcu_free(d_x); kcu_free(d_o); kcu_free(d_dy); kcu_free(d_y); kcu_free(d_x2); kcu_free(d_dx);
        kcu_free(d_dout); kcu_free(d_ld);
        free(x); free(o); free(dy); free(y); free(dx); free(dout); free(ld); free(hld);
    }
}

/* ---------------------------------------------------------------- injector (src/model/injector.c) */
static int red_size(int n) { return n < 5 ? n : 5; }
static int red_index(int i, int n) { return n <= 5 ? i : i < 2 ? i : i >= n - 2 ? 5 - (n - i) : 2; }
static int red_count(int r, int n) { return n <= 5 ? 1 : r == 2 ? n - 4 : 1; }
#define LS_MIN (-6.907755278982137)

static void test_injector(void)
{
    static const int cases[][4] = {{2, 64, 64, 2}, {4, 3, 3, 3}, {8, 5, 5, 2}, {16, 6, 7, 3}, {32, 2, 2, 4}, {4, 1, 1, 2},
                                   {16, 8, 8, 1}};   /* C, H, W, G */
    const float gl = 0.41f;
    for (size_t k = 0; k < NCASES(cases); k++) {
        const int C = cases[k][0], H = cases[k][1], W = cases[k][2], G = cases[k][3];
        const int rh = red_size(H), rw = red_size(W), R = rh * rw;
        const size_t HW = (size_t)H * W, n = (size_t)G * C * HW, no = (size_t)G * 2 * C * R;
        float *x = hrand(n, 2), *o = hrand(no, 4), *dy = hrand(n, 1);
        o[C * R] = -9;   /* below the clamp */
        o[C * R + 1] = 6; /* above it */
        float *y = hzero(n), *dx = hzero(n), *dout = hzero(no);
        double *ld = calloc(G, sizeof(double));
        for (int g = 0; g < G; g++) {
            const float *og = o + (size_t)g * 2 * C * R;
            float *dg = dout + (size_t)g * 2 * C * R;
            for (int ch = 0; ch < C; ch++) {
                for (int i = 0; i < H; i++)
                    for (int j = 0; j < W; j++) {
                        const int r = red_index(i, H) * rw + red_index(j, W);
                        const float ls = clamp_r(og[(C + ch) * R + r], (float)LS_MIN, 5.0f);
                        const float e = (float)exp((double)ls), b = og[ch * R + r];
                        const size_t p = ((size_t)g * C + ch) * HW + (size_t)i * W + j;
                        y[p] = x[p] * e + b;
                        const float t = dy[p] * e;
                        dx[p] = t;
                        dg[ch * R + r] += dy[p];
                        dg[(C + ch) * R + r] += t * x[p];
                    }
                for (int ri = 0; ri < rh; ri++)
                    for (int rj = 0; rj < rw; rj++) {
                        const int r = ri * rw + rj, cnt = red_count(ri, H) * red_count(rj, W);
                        dg[(C + ch) * R + r] += gl * (float)cnt;
                        ld[g] += (double)clamp_r(og[(C + ch) * R + r], (float)LS_MIN, 5.0f) * cnt;
                    }
            }
        }
        float *d_x = dup_dev(x, n), *d_o = dup_dev(o, no), *d_dy = dup_dev(dy, n), *d_y = dzero(n), *d_x2 = dzero(n);
        float *garbage = hrand(no, 5), *d_dx = dzero(n), *d_dout = dup_dev(garbage, no);   /* must be overwritten */
        free(garbage);
        double *d_ld = dzero_d(G);
        CHECK_OK(kcu_injector_fwd(d_y, d_x, d_o, C, H, W, G, d_ld));
        CHECK_OK(kcu_injector_inv(d_x2, d_y, d_o, C, H, W, G));
        CHECK_OK(kcu_injector_bwd(d_dx, d_dout, d_dy, d_x, d_o, gl, C, H, W, G));
        SYNC();
        char what[64];
        snprintf(what, sizeof what, "injector C %d %dx%d G %d", C, H, W, G);
        CHECK_DEV(d_y, y, n, what);
        CHECK_DEV(d_x2, x, n, "injector inverse(forward(x))");
        CHECK_DEV(d_dx, dx, n, "injector dx");
        CHECK_DEV(d_dout, dout, no, "injector d o");
        double *hld = to_host_d(d_ld, G);
        for (int g = 0; g < G; g++) CHECK_CLOSE(hld[g], ld[g], 1e-5);
        kcu_free(d_x); kcu_free(d_o); kcu_free(d_dy); kcu_free(d_y); kcu_free(d_x2); kcu_free(d_dx);
        kcu_free(d_dout); kcu_free(d_ld);
        free(x); free(o); free(dy); free(y); free(dx); free(dout); free(ld); free(hld);
    }
}

/* ---------------------------------------------------------------- prior (src/model/prior.c) */
static void test_prior(void)
{
    const int D = 96, G = 4, zs = 2 * D;   /* the latent is the second half of a (G, 2D) tensor */
    const float gl = -0.25f;
    for (int learned = 0; learned < 2; learned++) {
        const int ms = learned ? 0 : D;
        const size_t nm = learned ? (size_t)D : (size_t)G * D;
        float *z = hrand((size_t)G * zs, 2), *mean = hrand(nm, 1), *lv = hrand(nm, 6);
        float *d_lv = dup_dev(lv, nm);
        if (!learned) {
            for (size_t i = 0; i < nm; i++) lv[i] = clamp_r(lv[i], -3.0f, 5.0f);
            CHECK_OK(kcu_clamp(d_lv, nm, -3.0f, 5.0f));
        }
        double *lp = calloc(G, sizeof(double));
        float *dz = hrand((size_t)G * zs, 1), *dm = hzero((size_t)G * D), *dl = hzero((size_t)G * D);
        float *d_dz = dup_dev(dz, (size_t)G * zs);
        for (int g = 0; g < G; g++) {
            double quad = 0, slv = 0;
            for (int i = 0; i < D; i++) {
                const float m = mean[g * ms + i], v = lv[g * ms + i], zz = z[(size_t)g * zs + D + i];
                const double d = (double)zz - m;
                quad += d * d * exp(-(double)v);
                slv += v;
                const float iv = (float)exp(-(double)v), df = zz - m;
                dz[(size_t)g * zs + D + i] = -gl * df * iv;
                dm[g * D + i] = gl * df * iv;
                dl[g * D + i] = gl * (0.5f * df * df * iv - 0.5f);
            }
            lp[g] = -0.5 * quad - 0.5 * D * 1.8378770664093453 - 0.5 * slv;
        }
        float *d_z = dup_dev(z, (size_t)G * zs), *d_m = dup_dev(mean, nm), *d_dm = dzero((size_t)G * D);
        float *d_dl = dzero((size_t)G * D);
        double *d_lp = dzero_d(G);
        CHECK_OK(kcu_prior_logp(d_lp, d_z + D, zs, d_m, d_lv, ms, D, G));
        CHECK_OK(kcu_prior_bwd(d_dz + D, d_dm, d_dl, d_z + D, zs, d_m, d_lv, ms, gl, D, G));
        SYNC();
        double *hlp = to_host_d(d_lp, G);
        for (int g = 0; g < G; g++) CHECK_CLOSE(hlp[g], lp[g], 1e-5);
        CHECK_DEV(d_dz, dz, (size_t)G * zs, "prior dz (and untouched first half)");
        CHECK_DEV(d_dm, dm, (size_t)G * D, "prior dmean");
        CHECK_DEV(d_dl, dl, (size_t)G * D, "prior dlogvar");
        kcu_free(d_lv); kcu_free(d_dz); kcu_free(d_z); kcu_free(d_m); kcu_free(d_dm); kcu_free(d_dl); kcu_free(d_lp);
        free(z); free(mean); free(lv); free(lp); free(dz); free(dm); free(dl); free(hlp);
    }
}

/* ---------------------------------------------------------------- squeeze (src/model/squeeze.c) */
static void test_squeeze(void)
{
    static const int cases[][4] = {{1, 64, 64, 3}, {2, 2, 2, 5}, {4, 8, 6, 2}};   /* C, H, W, G */
    for (size_t k = 0; k < NCASES(cases); k++) {
        const int C = cases[k][0], H = cases[k][1], W = cases[k][2], G = cases[k][3], h = H / 2, w = W / 2;
        const size_t n = (size_t)G * C * H * W;
        float *in = hrand(n, 1), *out = hzero(n);
        for (int g = 0; g < G; g++)
            for (int c = 0; c < C; c++)
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++)
                        for (int i = 0; i < h; i++)
                            for (int j = 0; j < w; j++)
                                out[(((size_t)g * 4 * C + c * 4 + dy * 2 + dx) * h + i) * w + j] =
                                    in[(((size_t)g * C + c) * H + 2 * i + dy) * W + 2 * j + dx];
        float *d_in = dup_dev(in, n), *d_out = dzero(n), *d_back = dzero(n);
        CHECK_OK(kcu_squeeze_fwd(d_out, d_in, C, H, W, G));
        CHECK_OK(kcu_squeeze_inv(d_back, d_out, C, H, W, G));
        SYNC();
        float *ho = to_host(d_out, n), *hb = to_host(d_back, n);
        CHECK(memcmp(ho, out, sizeof(float) * n) == 0, "squeeze differs (case %zu)", k);
        CHECK(memcmp(hb, in, sizeof(float) * n) == 0, "unsqueeze(squeeze(x)) != x (case %zu)", k);
        kcu_free(d_in); kcu_free(d_out); kcu_free(d_back);
        free(in); free(out); free(ho); free(hb);
    }
}

/* ---------------------------------------------------------------- Adam (src/train/trainer.c) */
static void test_adam(void)
{
    const size_t n = 54321;
    float *p = hrand(n, 1), *g = hrand(n, 3), *m = hrand(n, 0.1f), *v = hrand(n, 0.01f);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
    float *d_p = dup_dev(p, n), *d_g = dup_dev(g, n), *d_m = dup_dev(m, n), *d_v = dup_dev(v, n);
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8, lr = 3e-4, scale = 0.7;
    for (long step = 1; step <= 3; step++) {
        const double bc1 = 1 - pow(b1, (double)step), bc2 = 1 - pow(b2, (double)step);
        const double ss = lr / bc1, sbc2 = sqrt(bc2);
        for (size_t i = 0; i < n; i++) {
            const double gi = g[i] * scale;
            m[i] = (float)(b1 * m[i] + (1 - b1) * gi);
            v[i] = (float)(b2 * v[i] + (1 - b2) * gi * gi);
            p[i] -= (float)(ss * m[i] / (sqrt((double)v[i]) / sbc2 + eps));
        }
        CHECK_OK(kcu_adam(d_p, d_g, d_m, d_v, n, scale, b1, b2, eps, ss, sbc2));
    }
    SYNC();
    CHECK_DEV(d_p, p, n, "adam p");
    CHECK_DEV(d_m, m, n, "adam m");
    CHECK_DEV(d_v, v, n, "adam v");
    kcu_free(d_p); kcu_free(d_g); kcu_free(d_m); kcu_free(d_v);
    free(p); free(g); free(m); free(v);
}

/* ---------------------------------------------------------------- reductions */
static void test_reductions(void)
{
    const size_t n = 300007, rn = 777;
    const int G = 9;
    float *x = hrand(n, 1), *acc = hrand(rn, 1), *rows = hrand(rn * G, 1);
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++) { s += x[i]; ss += (double)x[i] * x[i]; }
    float *d_x = dup_dev(x, n), *d_acc = dup_dev(acc, rn), *d_rows = dup_dev(rows, rn * G);
    double *d_out = dzero_d(2);
    CHECK_OK(kcu_sum(d_out, d_x, n));
    CHECK_OK(kcu_sumsq(d_out + 1, d_x, n));
    CHECK_OK(kcu_sum_rows(d_acc, d_rows, rn, G));
    for (size_t i = 0; i < rn; i++) {
        float t = 0;
        for (int g = 0; g < G; g++) t += rows[(size_t)g * rn + i];
        acc[i] += t;
    }
    SYNC();
    double *h = to_host_d(d_out, 2);
    CHECK(fabs(h[0] - s) <= 1e-9 * ss, "sum %.12g vs %.12g", h[0], s);
    CHECK_CLOSE(h[1], ss, 1e-12);
    CHECK_DEV(d_acc, acc, rn, "sum_rows");
    /* deterministic: the same bits twice */
    CHECK_OK(kcu_sumsq(d_out, d_x, n));
    SYNC();
    double *h2 = to_host_d(d_out, 1);
    CHECK(h2[0] == h[1], "sumsq not deterministic");
    kcu_free(d_x); kcu_free(d_acc); kcu_free(d_rows); kcu_free(d_out);
    free(x); free(acc); free(rows); free(h); free(h2);
}

/* ---------------------------------------------------------------- a coupling network end to end */
/* The coupling layer as a GPU flow will run it (src/model/coupling.c's net_forward + affine):
 * concat -> conv3x3 -> relu -> conv1x1 -> relu -> zeroconv (pad 1) -> scale -> affine, and the
 * backward chain, against the same chain of CPU kernels. Catches layout slips between steps. */
static void test_coupling_chain(void)
{
    const int C = 4, P = 2, Hd = 16, H = 16, W = 16, G = 3, HW = H * W, cin = C / 2 + P;
    const float clamp = 0.5f, gl = -1.0f / (G * C * HW);
    const size_t n = (size_t)G * C * HW;
    float *x = hrand(n, 1), *c = hrand((size_t)G * P, 1), *dy = hrand(n, 1);
    float *w1 = hrand((size_t)Hd * cin * 9, 0.2f), *b1 = hrand(Hd, 0.1f), *w2 = hrand((size_t)Hd * Hd, 0.2f);
    float *b2 = hrand(Hd, 0.1f), *zw = hrand((size_t)C * Hd * 9, 0.05f), *zb = hrand(C, 0.1f), *zsc = hrand(C, 0.2f);
    /* CPU */
    float *in1 = hzero((size_t)G * cin * HW), *h1 = hzero((size_t)G * Hd * HW), *h2 = hzero((size_t)G * Hd * HW);
    float *o = hzero(n), *y = hzero(n), *dx = hzero(n), *dout = hzero(n), *dh2 = hzero((size_t)G * Hd * HW);
    float *dh1 = hzero((size_t)G * Hd * HW), *din1 = hzero((size_t)G * cin * HW);
    float *gw1 = hzero((size_t)Hd * cin * 9), *gb1 = hzero(Hd), *gw2 = hzero((size_t)Hd * Hd), *gb2 = hzero(Hd);
    float *gzw = hzero((size_t)C * Hd * 9), *gzb = hzero(C), *gzs = hzero(C);
    double ld = 0;
    for (int g = 0; g < G; g++) {
        memcpy(in1 + (size_t)g * cin * HW, x + (size_t)g * C * HW, sizeof(float) * (C / 2) * HW);
        for (int j = 0; j < P; j++)
            for (int i = 0; i < HW; i++) in1[((size_t)g * cin + C / 2 + j) * HW + i] = c[g * P + j];
    }
    cpu_conv3x3_fwd(h1, in1, w1, b1, cin, Hd, H, W, G, 0);
    k_relu(h1, (size_t)G * Hd * HW);
    cpu_conv1x1_fwd(h2, h1, w2, b2, Hd, Hd, HW, G);
    k_relu(h2, (size_t)G * Hd * HW);
    cpu_conv3x3_fwd(o, h2, zw, zb, Hd, C, H, W, G, 1);
    for (int g = 0; g < G; g++)
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < HW; i++) o[((size_t)g * C + ch) * HW + i] *= (float)exp(3.0 * zsc[ch]);
    const size_t half = (size_t)(C / 2) * HW;
    for (int g = 0; g < G; g++) {
        const size_t base = (size_t)g * C * HW;
        for (size_t i = 0; i < half; i++) {
            const float sg = sigmoid_r(o[base + i] + 2), sc = (1 - clamp) * sg + clamp;
            y[base + i] = x[base + i];
            y[base + half + i] = (x[base + half + i] + o[base + half + i]) * sc;
            ld += log((double)sc);
            const float gy = dy[base + half + i];
            dx[base + half + i] = gy * sc;
            dout[base + half + i] = gy * sc;
            dout[base + i] = (gy * (x[base + half + i] + o[base + half + i]) + gl / sc) * (1 - clamp) * sg * (1 - sg);
        }
    }
    for (int ch = 0; ch < C; ch++) {
        const float f = (float)exp(3.0 * zsc[ch]);
        double acc = 0;
        for (int g = 0; g < G; g++)
            for (int i = 0; i < HW; i++) {
                const size_t k = ((size_t)g * C + ch) * HW + i;
                acc += (double)dout[k] * o[k];
                dout[k] *= f;
            }
        gzs[ch] += (float)(3 * acc);
    }
    cpu_conv3x3_bwd(dh2, gzw, gzb, dout, h2, zw, Hd, C, H, W, G, 1);
    k_relu_bwd(dh2, h2, (size_t)G * Hd * HW);
    cpu_conv1x1_bwd(dh1, gw2, gb2, dh2, h1, w2, Hd, Hd, HW, G);
    k_relu_bwd(dh1, h1, (size_t)G * Hd * HW);
    cpu_conv3x3_bwd(din1, gw1, gb1, dh1, in1, w1, cin, Hd, H, W, G, 0);
    for (int g = 0; g < G; g++)
        for (size_t i = 0; i < half; i++)
            dx[(size_t)g * C * HW + i] = dy[(size_t)g * C * HW + i] + din1[(size_t)g * cin * HW + i];

    /* GPU */
    size_t s1 = kcu_conv3x3_scratch(cin, Hd, H, W, G), s2 = kcu_conv3x3_scratch(Hd, C, H, W, G);
    size_t s3 = kcu_conv1x1_scratch(Hd, Hd, HW, G), ss = s1 > s2 ? s1 : s2;
    if (s3 > ss) ss = s3;
    float *scr = dzero(ss);
    float *d_x = dup_dev(x, n), *d_c = dup_dev(c, (size_t)G * P), *d_dy = dup_dev(dy, n);
    float *d_w1 = dup_dev(w1, (size_t)Hd * cin * 9), *d_b1 = dup_dev(b1, Hd), *d_w2 = dup_dev(w2, (size_t)Hd * Hd);
    float *d_b2 = dup_dev(b2, Hd), *d_zw = dup_dev(zw, (size_t)C * Hd * 9), *d_zb = dup_dev(zb, C);
    float *d_zs = dup_dev(zsc, C);
    float *d_in1 = dzero((size_t)G * cin * HW), *d_h1 = dzero((size_t)G * Hd * HW), *d_h2 = dzero((size_t)G * Hd * HW);
    float *d_o = dzero(n), *d_y = dzero(n), *d_dx = dzero(n), *d_dout = dzero(n);
    float *d_dh2 = dzero((size_t)G * Hd * HW), *d_dh1 = dzero((size_t)G * Hd * HW), *d_din1 = dzero((size_t)G * cin * HW);
    float *d_gw1 = dzero((size_t)Hd * cin * 9), *d_gb1 = dzero(Hd), *d_gw2 = dzero((size_t)Hd * Hd), *d_gb2 = dzero(Hd);
    float *d_gzw = dzero((size_t)C * Hd * 9), *d_gzb = dzero(C), *d_gzs = dzero(C);
    double *d_ld = dzero_d(G);
    CHECK_OK(kcu_concat_cond(d_in1, d_x, C, C / 2, d_c, P, HW, G));
    CHECK_OK(kcu_conv3x3_fwd(d_h1, d_in1, d_w1, d_b1, cin, Hd, H, W, G, 0, scr));
    CHECK_OK(kcu_relu(d_h1, (size_t)G * Hd * HW));
    CHECK_OK(kcu_conv1x1_fwd(d_h2, d_h1, d_w2, d_b2, Hd, Hd, HW, G, scr));
    CHECK_OK(kcu_relu(d_h2, (size_t)G * Hd * HW));
    CHECK_OK(kcu_conv3x3_fwd(d_o, d_h2, d_zw, d_zb, Hd, C, H, W, G, 1, scr));
    CHECK_OK(kcu_channel_scale_fwd(d_o, d_zs, C, HW, G));
    CHECK_OK(kcu_coupling_fwd(d_y, d_x, d_o, C, HW, G, clamp, d_ld));
    CHECK_OK(kcu_coupling_bwd(d_dx, d_dout, d_dy, d_x, d_o, gl, C, HW, G, clamp));
    CHECK_OK(kcu_channel_scale_bwd(d_dout, d_gzs, d_o, d_zs, C, HW, G));
    CHECK_OK(kcu_conv3x3_bwd(d_dh2, d_gzw, d_gzb, d_dout, d_h2, d_zw, Hd, C, H, W, G, 1, scr));
    CHECK_OK(kcu_relu_bwd(d_dh2, d_h2, (size_t)G * Hd * HW));
    CHECK_OK(kcu_conv1x1_bwd(d_dh1, d_gw2, d_gb2, d_dh2, d_h1, d_w2, Hd, Hd, HW, G, scr));
    CHECK_OK(kcu_relu_bwd(d_dh1, d_h1, (size_t)G * Hd * HW));
    CHECK_OK(kcu_conv3x3_bwd(d_din1, d_gw1, d_gb1, d_dh1, d_in1, d_w1, cin, Hd, H, W, G, 0, scr));
    CHECK_OK(kcu_add_channels(d_dx, C, 0, d_din1, cin, 0, C / 2, HW, G));
    SYNC();
    CHECK_DEV(d_y, y, n, "chain y");
    CHECK_DEV(d_dx, dx, n, "chain dx");
    CHECK_DEV(d_gw1, gw1, (size_t)Hd * cin * 9, "chain d conv1.weight");
    CHECK_DEV(d_gb1, gb1, (size_t)Hd, "chain d conv1.bias");
    CHECK_DEV(d_gw2, gw2, (size_t)Hd * Hd, "chain d conv2.weight");
    CHECK_DEV(d_gb2, gb2, (size_t)Hd, "chain d conv2.bias");
    CHECK_DEV(d_gzw, gzw, (size_t)C * Hd * 9, "chain d zero.weight");
    CHECK_DEV(d_gzb, gzb, (size_t)C, "chain d zero.bias");
    CHECK_DEV(d_gzs, gzs, (size_t)C, "chain d zero.scale");
    double *hld = to_host_d(d_ld, G), tot = 0;
    for (int g = 0; g < G; g++) tot += hld[g];
    CHECK_CLOSE(tot, ld, 1e-5);

    /* the same layer through kcu_coupling_layer_* (flowlayers.cu), fresh gradients, and its inverse */
    {
        const kcu_net net = {d_w1, d_b1, d_w2, d_b2, d_zw, d_zb, d_zs};
        const size_t ng[7] = {(size_t)Hd * cin * 9, (size_t)Hd, (size_t)Hd * Hd, (size_t)Hd, (size_t)C * Hd * 9,
                              (size_t)C, (size_t)C};
        float *gp[7];
        for (int i = 0; i < 7; i++) gp[i] = dzero(ng[i]);
        const kcu_net_grad gr = {gp[0], gp[1], gp[2], gp[3], gp[4], gp[5], gp[6]};
        float *lscr = dzero(kcu_coupling_scratch(C, P, Hd, H, W, G)), *tape = dzero((size_t)G * (2 * Hd + C) * HW);
        float *l_y = dzero(n), *l_dx = dzero(n), *l_x = dzero(n);
        double *l_ld = dzero_d(G);
        CHECK_OK(kcu_coupling_layer_fwd(l_y, l_ld, d_x, d_c, &net, C, P, Hd, H, W, G, clamp, tape, lscr));
        CHECK_OK(kcu_coupling_layer_bwd(l_dx, &gr, d_dy, d_x, gl, d_c, &net, C, P, Hd, H, W, G, clamp, tape, lscr));
        CHECK_OK(kcu_coupling_layer_inv(l_x, l_y, d_c, &net, C, P, Hd, H, W, G, clamp, lscr));
        SYNC();
        CHECK_DEV(l_y, y, n, "layer y");
        CHECK_DEV(l_dx, dx, n, "layer dx");
        CHECK_DEV(l_x, x, n, "layer inverse(forward(x))");
        const float *want[7] = {gw1, gb1, gw2, gb2, gzw, gzb, gzs};
        for (int i = 0; i < 7; i++) CHECK_DEV(gp[i], want[i], ng[i], "layer gradient");
        double *lld = to_host_d(l_ld, G), lt = 0;
        for (int g = 0; g < G; g++) lt += lld[g];
        CHECK_CLOSE(lt, ld, 1e-5);
        for (int i = 0; i < 7; i++) kcu_free(gp[i]);
        kcu_free(lscr); kcu_free(tape); kcu_free(l_y); kcu_free(l_dx); kcu_free(l_x); kcu_free(l_ld);
        free(lld);
    }
    float *dev[] = {scr, d_x, d_c, d_dy, d_w1, d_b1, d_w2, d_b2, d_zw, d_zb, d_zs, d_in1, d_h1, d_h2, d_o, d_y,
                    d_dx, d_dout, d_dh2, d_dh1, d_din1, d_gw1, d_gb1, d_gw2, d_gb2, d_gzw, d_gzb, d_gzs};
    for (size_t i = 0; i < NCASES(dev); i++) kcu_free(dev[i]);
    kcu_free(d_ld);
    float *host[] = {x, c, dy, w1, b1, w2, b2, zw, zb, zsc, in1, h1, h2, o, y, dx, dout, dh2, dh1, din1,
                     gw1, gb1, gw2, gb2, gzw, gzb, gzs};
    for (size_t i = 0; i < NCASES(host); i++) free(host[i]);
    free(hld);
}

/* ---------------------------------------------------------------- the injector layer */
/* kcu_injector_layer_* (flowlayers.cu) against the CPU kernels run as src/model/injector.c does:
 * the CNN on the reduced map of the broadcast condition, then the per-class affine. */
static void test_injector_layer(void)
{
    static const int cases[][4] = {{4, 16, 16, 3}, {16, 4, 4, 2}, {2, 64, 64, 1}};   /* C, H, W, G */
    const int P = 2, Hd = 16;
    const float gl = -0.013f;
    for (size_t k = 0; k < NCASES(cases); k++) {
        const int C = cases[k][0], H = cases[k][1], W = cases[k][2], G = cases[k][3];
        const int rh = red_size(H), rw = red_size(W), R = rh * rw, HW = H * W;
        const size_t n = (size_t)G * C * HW, nw1 = (size_t)Hd * P * 9, nw2 = (size_t)Hd * Hd, nzw = (size_t)2 * C * Hd * 9;
        float *x = hrand(n, 1), *c = hrand((size_t)G * P, 1), *dy = hrand(n, 1);
        float *w1 = hrand(nw1, 0.3f), *b1 = hrand(Hd, 0.1f), *w2 = hrand(nw2, 0.3f), *b2 = hrand(Hd, 0.1f);
        float *zw = hrand(nzw, 0.1f), *zb = hrand(2 * C, 0.3f), *zsc = hrand(2 * C, 0.3f);
        /* CPU: forward of the CNN on the reduced map */
        float *cmap = hzero((size_t)G * P * R), *a1 = hzero((size_t)G * Hd * R), *a2 = hzero((size_t)G * Hd * R);
        float *o = hzero((size_t)G * 2 * C * R), *dout = hzero((size_t)G * 2 * C * R), *y = hzero(n), *dx = hzero(n);
        float *gw1 = hzero(nw1), *gb1 = hzero(Hd), *gw2 = hzero(nw2), *gb2 = hzero(Hd), *gzw = hzero(nzw);
        float *gzb = hzero(2 * C), *gzs = hzero(2 * C), *da1 = hzero((size_t)G * Hd * R), *da2 = hzero((size_t)G * Hd * R);
        double *ld = calloc(G, sizeof(double));
        for (int g = 0; g < G; g++)
            for (int j = 0; j < P; j++)
                for (int i = 0; i < R; i++) cmap[((size_t)g * P + j) * R + i] = c[g * P + j];
        cpu_conv3x3_fwd(a1, cmap, w1, b1, P, Hd, rh, rw, G, 0);
        k_relu(a1, (size_t)G * Hd * R);
        cpu_conv1x1_fwd(a2, a1, w2, b2, Hd, Hd, R, G);
        k_relu(a2, (size_t)G * Hd * R);
        cpu_conv3x3_fwd(o, a2, zw, zb, Hd, 2 * C, rh, rw, G, 1);
        for (int g = 0; g < G; g++)
            for (int ch = 0; ch < 2 * C; ch++)
                for (int i = 0; i < R; i++) o[((size_t)g * 2 * C + ch) * R + i] *= (float)exp(3.0 * zsc[ch]);
        /* the affine, its logdet and its backward (as test_injector) */
        for (int g = 0; g < G; g++) {
            const float *og = o + (size_t)g * 2 * C * R;
            float *dg = dout + (size_t)g * 2 * C * R;
            for (int ch = 0; ch < C; ch++) {
                for (int i = 0; i < H; i++)
                    for (int j = 0; j < W; j++) {
                        const int r = red_index(i, H) * rw + red_index(j, W);
                        const float e = (float)exp((double)clamp_r(og[(C + ch) * R + r], (float)LS_MIN, 5.0f));
                        const size_t p = ((size_t)g * C + ch) * HW + (size_t)i * W + j;
                        y[p] = x[p] * e + og[ch * R + r];
                        dx[p] = dy[p] * e;
                        dg[ch * R + r] += dy[p];
                        dg[(C + ch) * R + r] += dy[p] * e * x[p];
                    }
                for (int ri = 0; ri < rh; ri++)
                    for (int rj = 0; rj < rw; rj++) {
                        const int r = ri * rw + rj, cnt = red_count(ri, H) * red_count(rj, W);
                        dg[(C + ch) * R + r] += gl * (float)cnt;
                        ld[g] += (double)clamp_r(og[(C + ch) * R + r], (float)LS_MIN, 5.0f) * cnt;
                    }
            }
        }
        /* backward of the CNN */
        for (int ch = 0; ch < 2 * C; ch++) {
            const float f = (float)exp(3.0 * zsc[ch]);
            double acc = 0;
            for (int g = 0; g < G; g++)
                for (int i = 0; i < R; i++) {
                    const size_t q = ((size_t)g * 2 * C + ch) * R + i;
                    acc += (double)dout[q] * o[q];
                    dout[q] *= f;
                }
            gzs[ch] += (float)(3 * acc);
        }
        cpu_conv3x3_bwd(da2, gzw, gzb, dout, a2, zw, Hd, 2 * C, rh, rw, G, 1);
        k_relu_bwd(da2, a2, (size_t)G * Hd * R);
        cpu_conv1x1_bwd(da1, gw2, gb2, da2, a1, w2, Hd, Hd, R, G);
        k_relu_bwd(da1, a1, (size_t)G * Hd * R);
        cpu_conv3x3_bwd(NULL, gw1, gb1, da1, cmap, w1, P, Hd, rh, rw, G, 0);
        /* GPU */
        float *d_x = dup_dev(x, n), *d_c = dup_dev(c, (size_t)G * P), *d_dy = dup_dev(dy, n);
        float *dp[7] = {dup_dev(w1, nw1), dup_dev(b1, Hd), dup_dev(w2, nw2), dup_dev(b2, Hd), dup_dev(zw, nzw),
                        dup_dev(zb, 2 * C), dup_dev(zsc, 2 * C)};
        const size_t ng[7] = {nw1, (size_t)Hd, nw2, (size_t)Hd, nzw, (size_t)2 * C, (size_t)2 * C};
        float *gp[7];
        for (int i = 0; i < 7; i++) gp[i] = dzero(ng[i]);
        const kcu_net net = {dp[0], dp[1], dp[2], dp[3], dp[4], dp[5], dp[6]};
        const kcu_net_grad gr = {gp[0], gp[1], gp[2], gp[3], gp[4], gp[5], gp[6]};
        float *scr = dzero(kcu_injector_scratch(C, P, Hd, H, W, G)), *d_y = dzero(n), *d_dx = dzero(n), *d_x2 = dzero(n);
        double *d_ld = dzero_d(G);
        CHECK_OK(kcu_injector_layer_fwd(d_y, d_ld, d_x, d_c, &net, C, P, Hd, H, W, G, scr));
        CHECK_OK(kcu_injector_layer_inv(d_x2, d_y, d_c, &net, C, P, Hd, H, W, G, scr));
        CHECK_OK(kcu_injector_layer_bwd(d_dx, &gr, d_dy, d_x, gl, d_c, &net, C, P, Hd, H, W, G, scr));
        SYNC();
        char what[64];
        snprintf(what, sizeof what, "injector layer C %d %dx%d G %d", C, H, W, G);
        CHECK_DEV(d_y, y, n, what);
        CHECK_DEV(d_x2, x, n, "injector layer inverse(forward(x))");
        CHECK_DEV(d_dx, dx, n, "injector layer dx");
        const float *want[7] = {gw1, gb1, gw2, gb2, gzw, gzb, gzs};
        for (int i = 0; i < 7; i++) CHECK_DEV(gp[i], want[i], ng[i], "injector layer gradient");
        double *hld = to_host_d(d_ld, G);
        for (int g = 0; g < G; g++) CHECK_CLOSE(hld[g], ld[g], 1e-5);
        for (int i = 0; i < 7; i++) { kcu_free(dp[i]); kcu_free(gp[i]); }
        kcu_free(d_x); kcu_free(d_c); kcu_free(d_dy); kcu_free(scr); kcu_free(d_y); kcu_free(d_dx); kcu_free(d_x2);
        kcu_free(d_ld);
        float *host[] = {x, c, dy, w1, b1, w2, b2, zw, zb, zsc, cmap, a1, a2, o, dout, y, dx, gw1, gb1, gw2, gb2,
                         gzw, gzb, gzs, da1, da2};
        for (size_t i = 0; i < NCASES(host); i++) free(host[i]);
        free(ld); free(hld);
    }
}

/* ---------------------------------------------------------------- invconv, prior layer */
static void test_invconv(void)
{
    static const int cases[][3] = {{4, 1024, 3}, {64, 1, 9}, {16, 16, 2}};   /* C, HW, G */
    for (size_t k = 0; k < NCASES(cases); k++) {
        const int C = cases[k][0], HW = cases[k][1], G = cases[k][2];
        const size_t n = (size_t)G * C * HW, nw = (size_t)C * C;
        float *x = hrand(n, 1), *w = hrand(nw, 0.5f), *wi = hrand(nw, 0.5f), *dy = hrand(n, 1), *dw = hrand(nw, 1);
        float *dw0 = hdup(dw, nw), *y = hzero(n), *xi = hzero(n), *dx = hzero(n);
        cpu_conv1x1_fwd(y, x, w, NULL, C, C, HW, G);
        cpu_conv1x1_fwd(xi, y, wi, NULL, C, C, HW, G);
        cpu_conv1x1_bwd(dx, dw, NULL, dy, x, w, C, C, HW, G);
        float *d_x = dup_dev(x, n), *d_w = dup_dev(w, nw), *d_wi = dup_dev(wi, nw), *d_dy = dup_dev(dy, n);
        float *d_dw = dup_dev(dw0, nw), *d_y = dzero(n), *d_xi = dzero(n), *d_dx = dzero(n);
        float *scr = dzero(kcu_conv1x1_scratch(C, C, HW, G));
        double *d_ld = dzero_d(G);
        CHECK_OK(kcu_invconv_fwd(d_y, d_ld, 0.625, d_x, d_w, C, HW, G, scr));
        CHECK_OK(kcu_invconv_fwd(d_y, d_ld, 0.25, d_x, d_w, C, HW, G, scr));
        CHECK_OK(kcu_invconv_inv(d_xi, d_y, d_wi, C, HW, G, scr));
        CHECK_OK(kcu_invconv_bwd(d_dx, d_dw, d_dy, d_x, d_w, C, HW, G, scr));
        SYNC();
        CHECK_DEV(d_y, y, n, "invconv y");
        CHECK_DEV(d_xi, xi, n, "invconv inverse");
        CHECK_DEV(d_dx, dx, n, "invconv dx");
        CHECK_DEV(d_dw, dw, nw, "invconv dW");
        double *ld = to_host_d(d_ld, G);
        for (int g = 0; g < G; g++) CHECK(ld[g] == 0.875, "logdet[%d] = %g", g, ld[g]);
        kcu_free(d_x); kcu_free(d_w); kcu_free(d_wi); kcu_free(d_dy); kcu_free(d_dw); kcu_free(d_y); kcu_free(d_xi);
        kcu_free(d_dx); kcu_free(scr); kcu_free(d_ld);
        free(x); free(w); free(wi); free(dy); free(dw); free(dw0); free(y); free(xi); free(dx); free(ld);
    }
}

static void test_prior_layer(void)
{
    static const int cases[][2] = {{64, 3}, {2048, 2}, {4, 5}};   /* D, G */
    const int P = 2, Hc = 8;
    const float gl = -0.2f;
    for (size_t k = 0; k < NCASES(cases); k++) {
        const int D = cases[k][0], G = cases[k][1], zs = 2 * D;
        const size_t sz[6] = {(size_t)Hc * P, (size_t)Hc, (size_t)Hc * Hc, (size_t)Hc, (size_t)D * Hc, (size_t)D};
        float *pm[6], *pv[6], *gm[6], *gv[6];
        for (int i = 0; i < 6; i++) {
            pm[i] = hrand(sz[i], 0.7f); pv[i] = hrand(sz[i], 1.5f); gm[i] = hzero(sz[i]); gv[i] = hzero(sz[i]);
        }
        float *c = hrand((size_t)G * P, 1), *z = hrand((size_t)G * zs, 2), *dz = hrand((size_t)G * zs, 1);
        float *mean = hzero((size_t)G * D), *lv = hzero((size_t)G * D), *dm = hzero((size_t)G * D), *dl = hzero((size_t)G * D);
        float *a[4], *da1 = hzero((size_t)G * Hc), *da2 = hzero((size_t)G * Hc);
        for (int i = 0; i < 4; i++) a[i] = hzero((size_t)G * Hc);
        double *lp = calloc(G, sizeof(double));
        /* CPU: the MLPs of prior.c, batched by the adapters */
        float **pp[2] = {pm, pv}, **gg[2] = {gm, gv}, *outs[2] = {mean, lv}, *douts[2] = {dm, dl};
        for (int j = 0; j < 2; j++) {
            cpu_linear_fwd(a[2 * j], c, pp[j][0], pp[j][1], Hc, P, G);
            k_relu(a[2 * j], (size_t)G * Hc);
            cpu_linear_fwd(a[2 * j + 1], a[2 * j], pp[j][2], pp[j][3], Hc, Hc, G);
            k_relu(a[2 * j + 1], (size_t)G * Hc);
            cpu_linear_fwd(outs[j], a[2 * j + 1], pp[j][4], pp[j][5], D, Hc, G);
        }
        for (size_t i = 0; i < (size_t)G * D; i++) lv[i] = clamp_r(lv[i], -3.0f, 5.0f);
        for (int g = 0; g < G; g++) {
            double quad = 0, slv = 0;
            for (int i = 0; i < D; i++) {
                const float m = mean[g * D + i], v = lv[g * D + i], zz = z[(size_t)g * zs + D + i];
                const double d = (double)zz - m;
                quad += d * d * exp(-(double)v);
                slv += v;
                const float iv = (float)exp(-(double)v), df = zz - m;
                dz[(size_t)g * zs + D + i] = -gl * df * iv;
                dm[g * D + i] = gl * df * iv;
                dl[g * D + i] = gl * (0.5f * df * df * iv - 0.5f);
            }
            lp[g] = -0.5 * quad - 0.5 * D * 1.8378770664093453 - 0.5 * slv;
        }
        for (int j = 0; j < 2; j++) {
            cpu_linear_bwd(da2, gg[j][4], gg[j][5], douts[j], a[2 * j + 1], pp[j][4], D, Hc, G);
            k_relu_bwd(da2, a[2 * j + 1], (size_t)G * Hc);
            cpu_linear_bwd(da1, gg[j][2], gg[j][3], da2, a[2 * j], pp[j][2], Hc, Hc, G);
            k_relu_bwd(da1, a[2 * j], (size_t)G * Hc);
            cpu_linear_bwd(NULL, gg[j][0], gg[j][1], da1, c, pp[j][0], Hc, P, G);
        }
        /* GPU */
        float *dpm[6], *dpv[6], *dgm[6], *dgv[6];
        for (int i = 0; i < 6; i++) {
            dpm[i] = dup_dev(pm[i], sz[i]); dpv[i] = dup_dev(pv[i], sz[i]); dgm[i] = dzero(sz[i]); dgv[i] = dzero(sz[i]);
        }
        const kcu_mlp mm = {dpm[0], dpm[1], dpm[2], dpm[3], dpm[4], dpm[5]}, mv = {dpv[0], dpv[1], dpv[2], dpv[3], dpv[4], dpv[5]};
        const kcu_mlp_grad gmm = {dgm[0], dgm[1], dgm[2], dgm[3], dgm[4], dgm[5]};
        const kcu_mlp_grad gmv = {dgv[0], dgv[1], dgv[2], dgv[3], dgv[4], dgv[5]};
        float *d_c = dup_dev(c, (size_t)G * P), *d_z = dup_dev(z, (size_t)G * zs), *d_dz = dzero((size_t)G * zs);
        float *scr = dzero(kcu_prior_scratch(P, Hc, D, G));
        double *d_lp = dzero_d(G);
        CHECK_OK(kcu_memcpy_h2d(d_dz, dz, sizeof(float) * D));   /* map 0's first half: must stay */
        CHECK_OK(kcu_prior_layer_logp(d_lp, d_z + D, zs, d_c, &mm, &mv, P, Hc, D, G, scr));
        CHECK_OK(kcu_prior_layer_bwd(d_dz + D, &gmm, &gmv, d_z + D, zs, gl, d_c, &mm, &mv, P, Hc, D, G, scr));
        SYNC();
        double *hlp = to_host_d(d_lp, G);
        for (int g = 0; g < G; g++) CHECK_CLOSE(hlp[g], lp[g], 1e-5);
        float *hdz = to_host(d_dz, (size_t)G * zs);
        for (int g = 0; g < G; g++) {
            const double e = rel_err(hdz + (size_t)g * zs + D, dz + (size_t)g * zs + D, D);
            CHECK(e <= TOL, "prior layer dz map %d: %.3g", g, e);
        }
        CHECK(memcmp(hdz, dz, sizeof(float) * D) == 0, "prior layer wrote outside the latent");
        for (int i = 0; i < 6; i++) {
            CHECK_DEV(dgm[i], gm[i], sz[i], "prior layer mean-MLP gradient");
            CHECK_DEV(dgv[i], gv[i], sz[i], "prior layer logvar-MLP gradient");
        }
        for (int i = 0; i < 6; i++) {
            kcu_free(dpm[i]); kcu_free(dpv[i]); kcu_free(dgm[i]); kcu_free(dgv[i]);
            free(pm[i]); free(pv[i]); free(gm[i]); free(gv[i]);
        }
        for (int i = 0; i < 4; i++) free(a[i]);
        kcu_free(d_c); kcu_free(d_z); kcu_free(d_dz); kcu_free(scr); kcu_free(d_lp);
        free(c); free(z); free(dz); free(mean); free(lv); free(dm); free(dl); free(da1); free(da2); free(lp);
        free(hlp); free(hdz);
    }
}

/* ---------------------------------------------------------------- CUDA graphs (GPU only) */
/* A flow step's forward (invconv, injector layer, coupling layer) captured once, replayed on new
 * input copied into the same buffer: the replay must equal direct execution. */
static void test_graph(void)
{
    const int C = 8, P = 2, Hd = 16, H = 16, W = 16, G = 4, HW = H * W;
    const size_t n = (size_t)G * C * HW;
    const size_t nsz[7] = {(size_t)Hd * (C / 2 + P) * 9, (size_t)Hd, (size_t)Hd * Hd, (size_t)Hd,
                           (size_t)C * Hd * 9, (size_t)C, (size_t)C};
    const size_t isz[7] = {(size_t)Hd * P * 9, (size_t)Hd, (size_t)Hd * Hd, (size_t)Hd, (size_t)2 * C * Hd * 9,
                           (size_t)2 * C, (size_t)2 * C};
    float *cp[7], *ip[7];
    for (int i = 0; i < 7; i++) {
        float *h = hrand(nsz[i], 0.2f); cp[i] = dup_dev(h, nsz[i]); free(h);
        h = hrand(isz[i], 0.2f); ip[i] = dup_dev(h, isz[i]); free(h);
    }
    const kcu_net cn = {cp[0], cp[1], cp[2], cp[3], cp[4], cp[5], cp[6]}, in_ = {ip[0], ip[1], ip[2], ip[3], ip[4], ip[5], ip[6]};
    float *hw = hrand((size_t)C * C, 0.5f), *d_w = dup_dev(hw, (size_t)C * C);
    float *hx = hrand(n, 1), *hc = hrand((size_t)G * P, 1);
    float *d_x = dup_dev(hx, n), *d_c = dup_dev(hc, (size_t)G * P), *d_t1 = dzero(n), *d_t2 = dzero(n), *d_y = dzero(n);
    size_t s1 = kcu_coupling_scratch(C, P, Hd, H, W, G), s2 = kcu_injector_scratch(C, P, Hd, H, W, G);
    float *scr = dzero(s1 > s2 ? s1 : s2), *s1x1 = dzero(kcu_conv1x1_scratch(C, C, HW, G));
    double *d_ld = dzero_d(G);
#define STEP()                                                                                   \
    do {                                                                                         \
        CHECK_OK(kcu_memset0(d_ld, sizeof(double) * G));                                          \
        CHECK_OK(kcu_invconv_fwd(d_t1, d_ld, 0.5, d_x, d_w, C, HW, G, s1x1));                     \
        CHECK_OK(kcu_injector_layer_fwd(d_t2, d_ld, d_t1, d_c, &in_, C, P, Hd, H, W, G, scr));    \
        CHECK_OK(kcu_coupling_layer_fwd(d_y, d_ld, d_t2, d_c, &cn, C, P, Hd, H, W, G, 0.5f, NULL, scr)); \
    } while (0)
    kcu_graph *graph = NULL;
    CHECK_OK(kcu_graph_begin());
    STEP();
    CHECK_OK(kcu_graph_end(&graph));
    for (int round = 0; round < 2; round++) {
        float *nx = hrand(n, 1.5f), *nc = hrand((size_t)G * P, 1);
        CHECK_OK(kcu_memcpy_h2d(d_x, nx, sizeof(float) * n));
        CHECK_OK(kcu_memcpy_h2d(d_c, nc, sizeof(float) * G * P));
        STEP();
        SYNC();
        float *direct = to_host(d_y, n);
        double *dld = to_host_d(d_ld, G);
        CHECK_OK(kcu_memset0(d_y, sizeof(float) * n));
        if (graph) CHECK_OK(kcu_graph_launch(graph));
        SYNC();
        float *replay = to_host(d_y, n);
        double *rld = to_host_d(d_ld, G);
        CHECK(memcmp(direct, replay, sizeof(float) * n) == 0, "graph replay differs from direct execution (round %d)", round);
        for (int g = 0; g < G; g++) CHECK(dld[g] == rld[g], "logdet[%d]: %.17g vs %.17g", g, dld[g], rld[g]);
        free(nx); free(nc); free(direct); free(replay); free(dld); free(rld);
    }
#undef STEP
    kcu_graph_free(graph);
    for (int i = 0; i < 7; i++) { kcu_free(cp[i]); kcu_free(ip[i]); }
    kcu_free(d_w); kcu_free(d_x); kcu_free(d_c); kcu_free(d_t1); kcu_free(d_t2); kcu_free(d_y); kcu_free(scr);
    kcu_free(s1x1); kcu_free(d_ld);
    free(hw); free(hx); free(hc);
}

/* ---------------------------------------------------------------- main */
typedef struct { const char *name; void (*fn)(void); int gpu_only; } test_entry;
#define T(fn) {#fn, fn, 0}
static const test_entry tests[] = {
    T(test_context),   T(test_conv3x3_fwd), T(test_conv3x3_bwd), T(test_conv1x1_fwd), T(test_conv1x1_bwd),
    T(test_relu),      T(test_linear),      T(test_channel_scale), T(test_copies),    T(test_coupling),
    T(test_injector),  T(test_prior),       T(test_squeeze),     T(test_adam),        T(test_reductions),
    T(test_coupling_chain), T(test_injector_layer), T(test_invconv), T(test_prior_layer),
    {"test_graph", test_graph, 1},   /* not in the CPU emulation */
};

int main(void)
{
    if (!kcu_available()) {
        printf("# cuda: %s\n", kcu_unavailable_reason());
        RUN(test_no_device);
        for (size_t i = 0; i < NCASES(tests); i++) skip_test(tests[i].name, "no CUDA device");
        TEST_MAIN_END();
    }
    if (kcu_init(0)) {
        printf("FAIL kcu_init (%s)\n", cglow_last_error());
        return 1;
    }
    printf("# device: %s\n", kcu_device_name());
    /* the CPU emulation (build/tests/test_cuda_emul) names its tests apart from a GPU's; its
     * no-device path runs with KCU_EMUL_NODEVICE=1 */
    const int emul = strstr(kcu_device_name(), "emulation") != NULL;
    skip_test(emul ? "emul.test_no_device" : "test_no_device", "a device is present");
    for (size_t i = 0; i < NCASES(tests); i++) {
        char name[64];
        snprintf(name, sizeof name, "%s%s", emul ? "emul." : "", tests[i].name);
        if (emul && tests[i].gpu_only) skip_test(name, "needs a GPU: not emulated");
        else run_test(name, tests[i].fn);
    }
    kcu_shutdown();
    TEST_MAIN_END();
}
