/* The fused elementwise parts of the flow's layers, over G maps (G, C, HW), matching the CPU
 * layers in src/model/ (coupling.c, injector.c, prior.c, squeeze.c) and the trainer's Adam.
 * Per-map sums (log-determinants, log-probabilities) use one block per map and double
 * accumulation in a fixed order, so results are deterministic run to run. */
#include "kernels/cuda/common.cuh"
#include <math.h>

#define INJ_LS_MIN (-6.907755278982137f) /* log(1e-3) */
#define INJ_LS_MAX 5.0f
#define LOG_2PI 1.8378770664093453

#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

/* ---------------------------------------------------------------- zeroconv scale */
__global__ void channel_scale_kernel(float *o, const float *zs, int C, size_t HW, size_t n)
{
    GRID_STRIDE(i, n) o[i] *= (float)exp(3.0 * (double)zs[(i / HW) % C]);
}

/* one block per channel */
__global__ void channel_scale_bwd_kernel(float *dout, float *gzs, const float *o, const float *zs, int C, size_t HW,
                                         int G)
{
    const int c = blockIdx.x;
    const float f = (float)exp(3.0 * (double)zs[c]);
    double acc = 0;
    for (size_t i = threadIdx.x; i < (size_t)G * HW; i += blockDim.x) {
        const size_t k = ((i / HW) * C + c) * HW + i % HW;
        acc += (double)dout[k] * o[k];
        dout[k] *= f;
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) gzs[c] += (float)(3.0 * acc);
}

extern "C" int kcu_channel_scale_fwd(float *o, const float *zs, int C, int HW, int G)
{
    KCU_NEED();
    const size_t n = (size_t)G * C * HW;
    if (!n) return 0;
    KCU_LAUNCH(channel_scale_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(o, zs, C, HW, n);
    return kcu_launched("channel_scale");
}

extern "C" int kcu_channel_scale_bwd(float *dout, float *gzs, const float *o, const float *zs, int C, int HW, int G)
{
    KCU_NEED();
    if (C <= 0 || G <= 0 || HW <= 0) return 0;
    KCU_LAUNCH(channel_scale_bwd_kernel, C, RED_THREADS)(dout, gzs, o, zs, C, HW, G);
    return kcu_launched("channel_scale_bwd");
}

/* ---------------------------------------------------------------- copies */
__global__ void concat_cond_kernel(float *dst, const float *xa, int xa_C, int Ca, const float *c, int P, size_t HW,
                                   size_t n)
{
    const int Ct = Ca + P;
    GRID_STRIDE(i, n) {
        const size_t p = i % HW, t = i / HW;
        const int ch = (int)(t % Ct);
        const size_t g = t / Ct;
        dst[i] = ch < Ca ? xa[(g * xa_C + ch) * HW + p] : c[g * P + (ch - Ca)];
    }
}

extern "C" int kcu_concat_cond(float *dst, const float *xa, int xa_C, int Ca, const float *c, int P, int HW, int G)
{
    KCU_NEED();
    const size_t n = (size_t)G * (Ca + P) * HW;
    if (!n) return 0;
    KCU_LAUNCH(concat_cond_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(dst, xa, xa_C, Ca, c, P, HW, n);
    return kcu_launched("concat_cond");
}

__global__ void copy_channels_kernel(float *dst, int dC, int dc0, const float *src, int sC, int sc0, int nc,
                                     size_t HW, size_t n, int add)
{
    GRID_STRIDE(i, n) {
        const size_t p = i % HW, t = i / HW;
        const int ch = (int)(t % nc);
        const size_t g = t / nc;
        const float v = src[(g * sC + sc0 + ch) * HW + p];
        float *d = dst + (g * dC + dc0 + ch) * HW + p;
        *d = add ? *d + v : v;
    }
}

static int copy_channels(float *dst, int dC, int dc0, const float *src, int sC, int sc0, int nc, int HW, int G,
                         int add)
{
    KCU_NEED();
    const size_t n = (size_t)G * nc * HW;
    if (!n) return 0;
    KCU_LAUNCH(copy_channels_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(dst, dC, dc0, src, sC, sc0, nc,
                                                                                       HW, n, add);
    return kcu_launched("copy_channels");
}

extern "C" int kcu_copy_channels(float *dst, int dC, int dc0, const float *src, int sC, int sc0, int nc, int HW, int G)
{
    return copy_channels(dst, dC, dc0, src, sC, sc0, nc, HW, G, 0);
}

extern "C" int kcu_add_channels(float *dst, int dC, int dc0, const float *src, int sC, int sc0, int nc, int HW, int G)
{
    return copy_channels(dst, dC, dc0, src, sC, sc0, nc, HW, G, 1);
}

__global__ void axpy_kernel(float *y, float a, const float *x, size_t n)
{
    GRID_STRIDE(i, n) y[i] += a * x[i];
}

extern "C" int kcu_axpy(float *y, float a, const float *x, size_t n)
{
    KCU_NEED();
    if (!n) return 0;
    KCU_LAUNCH(axpy_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(y, a, x, n);
    return kcu_launched("axpy");
}

__global__ void clamp_kernel(float *x, size_t n, float lo, float hi)
{
    GRID_STRIDE(i, n) x[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
}

extern "C" int kcu_clamp(float *x, size_t n, float lo, float hi)
{
    KCU_NEED();
    if (!n) return 0;
    KCU_LAUNCH(clamp_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(x, n, lo, hi);
    return kcu_launched("clamp");
}

/* ---------------------------------------------------------------- coupling */
/* one block per map */
__global__ void coupling_fwd_kernel(float *y, const float *x, const float *o, int C, size_t HW, float clamp,
                                    double *logdet)
{
    const size_t base = (size_t)blockIdx.x * C * HW, half = (size_t)(C / 2) * HW;
    double acc = 0;
    for (size_t i = threadIdx.x; i < half; i += blockDim.x) {
        const float sc = (1 - clamp) * sigmoidf_(o[base + i] + 2) + clamp;
        const float xb = x[base + half + i], t = o[base + half + i];
        if (y != x) y[base + i] = x[base + i];
        y[base + half + i] = (xb + t) * sc;
        acc += log((double)sc);
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0 && logdet) logdet[blockIdx.x] += acc;
}

__global__ void coupling_inv_kernel(float *x, const float *y, const float *o, int C, size_t HW, float clamp,
                                    size_t n)
{
    const size_t half = (size_t)(C / 2) * HW;
    GRID_STRIDE(i, n) {   /* n = G * half */
        const size_t g = i / half, j = i % half, base = g * C * HW;
        const float sc = (1 - clamp) * sigmoidf_(o[base + j] + 2) + clamp;
        if (x != y) x[base + j] = y[base + j];
        x[base + half + j] = y[base + half + j] / sc - o[base + half + j];
    }
}

__global__ void coupling_bwd_kernel(float *dx, float *dout, const float *dy, const float *x, const float *o, float g,
                                    int C, size_t HW, float clamp, size_t n)
{
    const size_t half = (size_t)(C / 2) * HW;
    GRID_STRIDE(i, n) {
        const size_t m = i / half, j = i % half, base = m * C * HW;
        const float sg = sigmoidf_(o[base + j] + 2), sc = (1 - clamp) * sg + clamp;
        const float gy = dy[base + half + j];
        dx[base + half + j] = gy * sc;
        dx[base + j] = dy[base + j];
        dout[base + half + j] = gy * sc;   /* d t */
        const float ds = gy * (x[base + half + j] + o[base + half + j]) + g / sc;
        dout[base + j] = ds * (1 - clamp) * sg * (1 - sg);   /* d log_s */
    }
}

extern "C" int kcu_coupling_fwd(float *y, const float *x, const float *o, int C, int HW, int G, float clamp,
                                double *logdet)
{
    KCU_NEED();
    if (G <= 0 || C < 2 || HW <= 0) return 0;
    KCU_LAUNCH(coupling_fwd_kernel, G, RED_THREADS)(y, x, o, C, HW, clamp, logdet);
    return kcu_launched("coupling_fwd");
}

extern "C" int kcu_coupling_inv(float *x, const float *y, const float *o, int C, int HW, int G, float clamp)
{
    KCU_NEED();
    const size_t n = (size_t)G * (C / 2) * HW;
    if (!n) return 0;
    KCU_LAUNCH(coupling_inv_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(x, y, o, C, HW, clamp, n);
    return kcu_launched("coupling_inv");
}

extern "C" int kcu_coupling_bwd(float *dx, float *dout, const float *dy, const float *x, const float *o, float g,
                                int C, int HW, int G, float clamp)
{
    KCU_NEED();
    const size_t n = (size_t)G * (C / 2) * HW;
    if (!n) return 0;
    KCU_LAUNCH(coupling_bwd_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(dx, dout, dy, x, o, g, C, HW,
                                                                                      clamp, n);
    return kcu_launched("coupling_bwd");
}

/* ---------------------------------------------------------------- injector */
/* Border classes (src/model/injector.c): for n > 5, rows 0, 1, interior, n-2, n-1. */
__device__ __forceinline__ int red_size(int n) { return n < 5 ? n : 5; }
__device__ __forceinline__ int red_index(int i, int n)
{
    if (n <= 5) return i;
    return i < 2 ? i : i >= n - 2 ? 5 - (n - i) : 2;
}
__device__ __forceinline__ int red_count(int r, int n) { return n <= 5 ? 1 : r == 2 ? n - 4 : 1; }
/* the rows [lo, hi) of class r */
__device__ __forceinline__ void red_range(int r, int n, int *lo, int *hi)
{
    if (n <= 5 || r < 2) { *lo = r; *hi = r + 1; }
    else if (r == 2) { *lo = 2; *hi = n - 2; }
    else { *lo = n - (5 - r); *hi = *lo + 1; }
}
__device__ __forceinline__ float clamp_ls(float v) { return v < INJ_LS_MIN ? INJ_LS_MIN : v > INJ_LS_MAX ? INJ_LS_MAX : v; }

__global__ void injector_apply_kernel(float *out, const float *in, const float *o, int C, int H, int W, size_t n,
                                      int inverse)
{
    const int rh = red_size(H), rw = red_size(W), R = rh * rw;
    const size_t HW = (size_t)H * W;
    GRID_STRIDE(i, n) {
        const size_t p = i % HW, gc = i / HW;   /* g*C + ch */
        const int ch = (int)(gc % C);
        const size_t g = gc / C;
        const int r = red_index((int)(p / W), H) * rw + red_index((int)(p % W), W);
        const float *og = o + g * 2 * C * R;
        const float bias = og[ch * R + r], e = expf(clamp_ls(og[(C + ch) * R + r]));
        out[i] = inverse ? (in[i] - bias) / e : in[i] * e + bias;
    }
}

/* one block per map: logdet[g] += sum_{ch, class} clamp(ls) * count */
__global__ void injector_logdet_kernel(double *logdet, const float *o, int C, int H, int W)
{
    const int rh = red_size(H), rw = red_size(W), R = rh * rw;
    const float *og = o + (size_t)blockIdx.x * 2 * C * R;
    double acc = 0;
    for (int i = threadIdx.x; i < C * R; i += blockDim.x) {
        const int r = i % R;
        acc += (double)clamp_ls(og[C * R + i]) * red_count(r / rw, H) * red_count(r % rw, W);
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) logdet[blockIdx.x] += acc;
}

/* one block per (g, ch, class): dx on the class's pixels, and the class's two sums */
__global__ void injector_bwd_kernel(float *dx, float *dout, const float *dy, const float *x, const float *o, float gl,
                                    int C, int H, int W)
{
    const int rh = red_size(H), rw = red_size(W), R = rh * rw;
    const int r = blockIdx.x % R, ch = (blockIdx.x / R) % C;
    const size_t g = blockIdx.x / ((size_t)R * C), HW = (size_t)H * W;
    const float *og = o + g * 2 * C * R;
    float *dg = dout + g * 2 * C * R;
    const float e = expf(clamp_ls(og[(C + ch) * R + r]));
    int y0, y1, x0, x1;
    red_range(r / rw, H, &y0, &y1);
    red_range(r % rw, W, &x0, &x1);
    const int cw = x1 - x0, npix = (y1 - y0) * cw;
    const size_t plane = (g * C + ch) * HW;
    double sb = 0, sl = 0;
    for (int k = threadIdx.x; k < npix; k += blockDim.x) {
        const size_t p = plane + (size_t)(y0 + k / cw) * W + x0 + k % cw;
        const float gy = dy[p], t = gy * e;
        dx[p] = t;
        sb += gy;
        sl += (double)t * x[p];
    }
    sb = block_sum(sb);
    sl = block_sum(sl);
    if (threadIdx.x == 0) {
        dg[ch * R + r] = (float)sb;
        dg[(C + ch) * R + r] = (float)(sl + (double)gl * red_count(r / rw, H) * red_count(r % rw, W));
    }
}

extern "C" int kcu_injector_fwd(float *y, const float *x, const float *o, int C, int H, int W, int G, double *logdet)
{
    KCU_NEED();
    const size_t n = (size_t)G * C * H * W;
    if (!n) return 0;
    KCU_LAUNCH(injector_apply_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(y, x, o, C, H, W, n, 0);
    int rc = kcu_launched("injector_fwd");
    if (rc || !logdet) return rc;
    KCU_LAUNCH(injector_logdet_kernel, G, RED_THREADS)(logdet, o, C, H, W);
    return kcu_launched("injector_logdet");
}

extern "C" int kcu_injector_inv(float *x, const float *y, const float *o, int C, int H, int W, int G)
{
    KCU_NEED();
    const size_t n = (size_t)G * C * H * W;
    if (!n) return 0;
    KCU_LAUNCH(injector_apply_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(x, y, o, C, H, W, n, 1);
    return kcu_launched("injector_inv");
}

extern "C" int kcu_injector_bwd(float *dx, float *dout, const float *dy, const float *x, const float *o, float g,
                                int C, int H, int W, int G)
{
    KCU_NEED();
    if (G <= 0 || C <= 0 || H <= 0 || W <= 0) return 0;
    const int R = (H < 5 ? H : 5) * (W < 5 ? W : 5);
    const size_t blocks = (size_t)G * C * R;
    KCU_LAUNCH(injector_bwd_kernel, (unsigned)blocks, RED_THREADS)(dx, dout, dy, x, o, g, C, H, W);
    return kcu_launched("injector_bwd");
}

/* ---------------------------------------------------------------- prior */
__global__ void prior_logp_kernel(double *logp, const float *z, int zs, const float *mean, const float *logvar,
                                  int ms, int D)
{
    const size_t g = blockIdx.x;
    const float *zg = z + g * zs, *mg = mean + g * ms, *lg = logvar + g * ms;
    double quad = 0, slv = 0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        const double d = (double)zg[i] - mg[i];
        quad += d * d * exp(-(double)lg[i]);
        slv += lg[i];
    }
    quad = block_sum(quad);
    slv = block_sum(slv);
    if (threadIdx.x == 0) logp[g] += -0.5 * quad - 0.5 * (double)D * LOG_2PI - 0.5 * slv;
}

__global__ void prior_bwd_kernel(float *dz, float *dmean, float *dlogvar, const float *z, int zs, const float *mean,
                                 const float *logvar, int ms, float gl, int D, size_t n)
{
    GRID_STRIDE(i, n) {
        const size_t g = i / D, j = i % D;
        const float iv = (float)exp(-(double)logvar[g * ms + j]), d = z[g * zs + j] - mean[g * ms + j];
        dz[g * zs + j] = -gl * d * iv;
        dmean[i] = gl * d * iv;
        dlogvar[i] = gl * (0.5f * d * d * iv - 0.5f);
    }
}

extern "C" int kcu_prior_logp(double *logp, const float *z, int zs, const float *mean, const float *logvar, int ms,
                              int D, int G)
{
    KCU_NEED();
    if (G <= 0 || D <= 0) return 0;
    KCU_LAUNCH(prior_logp_kernel, G, RED_THREADS)(logp, z, zs, mean, logvar, ms, D);
    return kcu_launched("prior_logp");
}

extern "C" int kcu_prior_bwd(float *dz, float *dmean, float *dlogvar, const float *z, int zs, const float *mean,
                             const float *logvar, int ms, float g, int D, int G)
{
    KCU_NEED();
    const size_t n = (size_t)G * D;
    if (!n) return 0;
    KCU_LAUNCH(prior_bwd_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(dz, dmean, dlogvar, z, zs, mean,
                                                                                   logvar, ms, g, D, n);
    return kcu_launched("prior_bwd");
}

/* ---------------------------------------------------------------- squeeze */
/* out[g][c*4 + dy*2 + dx][i][j] = in[g][c][2i + dy][2j + dx]; one thread per output element. */
__global__ void squeeze_kernel(float *out, const float *in, int C, int H, int W, size_t n, int inverse)
{
    const int h = H / 2, w = W / 2;
    const size_t hw = (size_t)h * w;
    GRID_STRIDE(k, n) {
        const size_t q = k % hw, t = k / hw;   /* t = g*4C + c4 */
        const int c4 = (int)(t % (4 * C));
        const size_t g = t / (4 * C);
        const int c = c4 / 4, dy = (c4 / 2) % 2, dx = c4 % 2;
        const int i = (int)(q / w), j = (int)(q % w);
        const size_t src = ((g * C + c) * H + 2 * i + dy) * W + 2 * j + dx;
        if (inverse) out[src] = in[k];
        else out[k] = in[src];
    }
}

extern "C" int kcu_squeeze_fwd(float *out, const float *in, int C, int H, int W, int G)
{
    KCU_NEED();
    const size_t n = (size_t)G * C * H * W;
    if (!n) return 0;
    KCU_LAUNCH(squeeze_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(out, in, C, H, W, n, 0);
    return kcu_launched("squeeze_fwd");
}

extern "C" int kcu_squeeze_inv(float *out, const float *in, int C, int H, int W, int G)
{
    KCU_NEED();
    const size_t n = (size_t)G * C * H * W;
    if (!n) return 0;
    KCU_LAUNCH(squeeze_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(out, in, C, H, W, n, 1);
    return kcu_launched("squeeze_inv");
}

/* ---------------------------------------------------------------- Adam, reductions */
__global__ void adam_kernel(float *p, const float *g, float *m, float *v, size_t n, double scale, double b1,
                            double b2, double eps, double step_size, double sbc2)
{
    GRID_STRIDE(i, n) {
        const double gi = (double)g[i] * scale;
        const float mi = (float)(b1 * m[i] + (1 - b1) * gi);
        const float vi = (float)(b2 * v[i] + (1 - b2) * gi * gi);
        m[i] = mi;
        v[i] = vi;
        p[i] -= (float)(step_size * mi / (sqrt((double)vi) / sbc2 + eps));
    }
}

extern "C" int kcu_adam(float *p, const float *g, float *m, float *v, size_t n, double scale, double b1, double b2,
                        double eps, double step_size, double sbc2)
{
    KCU_NEED();
    if (!n) return 0;
    KCU_LAUNCH(adam_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(p, g, m, v, n, scale, b1, b2, eps,
                                                                              step_size, sbc2);
    return kcu_launched("adam");
}

/* One block: deterministic. Enough for the flow's ~1e5..1e6 parameters (see README). */
__global__ void sum_kernel(double *out, const float *x, size_t n, int squares)
{
    double acc = 0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) acc += squares ? (double)x[i] * x[i] : (double)x[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) *out = acc;
}

extern "C" int kcu_sumsq(double *out, const float *x, size_t n)
{
    KCU_NEED();
    KCU_LAUNCH(sum_kernel, 1, RED_THREADS)(out, x, n, 1);
    return kcu_launched("sumsq");
}

extern "C" int kcu_sum(double *out, const float *x, size_t n)
{
    KCU_NEED();
    KCU_LAUNCH(sum_kernel, 1, RED_THREADS)(out, x, n, 0);
    return kcu_launched("sum");
}

__global__ void add_scalar_d_kernel(double *v, double a, int G)
{
    GRID_STRIDE(i, (size_t)G) v[i] += a;
}

extern "C" int kcu_add_scalar_d(double *v, double a, int G)
{
    KCU_NEED();
    if (G <= 0) return 0;
    KCU_LAUNCH(add_scalar_d_kernel, kcu_blocks((size_t)G, KCU_THREADS), KCU_THREADS)(v, a, G);
    return kcu_launched("add_scalar_d");
}
