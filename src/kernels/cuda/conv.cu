/* The primitives of kernels.h on the GPU: 3x3 convolutions through im2col + one cuBLAS
 * strided-batched GEMM over the G maps, 1x1 convolutions and dense layers as plain GEMMs.
 *
 * Row-major (C, HW) matrices are column-major (HW, C) to cuBLAS, so every product below is
 * written with the output's pixel index as cuBLAS's m. Weight gradients: one GEMM per map into
 * scratch (batched), then a deterministic sum over the maps (kcu_sum_rows) added into dw. */
#include "kernels/cuda/common.cuh"

static const float ONE = 1.0f, ZERO = 0.0f;

/* col[g][k][p], k = ci*9 + ky*3 + kx: the input pixel under tap (ky, kx) of output pixel p. */
__global__ void im2col3_kernel(float *__restrict__ col, const float *__restrict__ in, int Cin, int H, int W,
                               int G, float pad)
{
    const size_t HW = (size_t)H * W, K = (size_t)Cin * 9, total = (size_t)G * K * HW;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        const size_t p = idx % HW, t = idx / HW;
        const int k = (int)(t % K), g = (int)(t / K);
        const int ci = k / 9, r = k % 9, ky = r / 3, kx = r % 3;
        const int iy = (int)(p / W) + ky - 1, ix = (int)(p % W) + kx - 1;
        col[idx] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? in[((size_t)g * Cin + ci) * HW + (size_t)iy * W + ix]
                                                            : pad;
    }
}

/* din[g][ci][y][x] = sum over taps of dcol[g][ci*9 + tap][output pixel that read (y, x)]. */
__global__ void col2im3_kernel(float *__restrict__ din, const float *__restrict__ dcol, int Cin, int H, int W,
                               int G)
{
    const size_t HW = (size_t)H * W, total = (size_t)G * Cin * HW;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        const size_t p = idx % HW, gc = idx / HW;   /* gc = g*Cin + ci */
        const int y = (int)(p / W), x = (int)(p % W);
        const float *d = dcol + gc * 9 * HW;
        float acc = 0;
#pragma unroll
        for (int ky = 0; ky < 3; ky++) {
            const int oy = y - ky + 1;
            if (oy < 0 || oy >= H) continue;
#pragma unroll
            for (int kx = 0; kx < 3; kx++) {
                const int ox = x - kx + 1;
                if (ox < 0 || ox >= W) continue;
                acc += d[(size_t)(ky * 3 + kx) * HW + (size_t)oy * W + ox];
            }
        }
        din[idx] = acc;
    }
}

/* out[g][c][p] = b[c] over (G, C, HW) (then the GEMM adds with beta = 1). */
__global__ void fill_bias_kernel(float *__restrict__ out, const float *__restrict__ b, int C, size_t HW, int G)
{
    const size_t total = (size_t)G * C * HW;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x)
        out[idx] = b[(idx / HW) % C];
}

/* db[c] += sum_{g,p} dout[g][c][p]: one block per channel, double accumulation. */
__global__ void bias_grad_kernel(float *__restrict__ db, const float *__restrict__ dout, int C, size_t HW, int G)
{
    __shared__ double sh[KCU_THREADS];
    const int c = blockIdx.x;
    double acc = 0;
    for (size_t i = threadIdx.x; i < (size_t)G * HW; i += blockDim.x) {
        const size_t g = i / HW, p = i % HW;
        acc += dout[(g * C + c) * HW + p];
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) db[c] += (float)sh[0];
}

__global__ void sum_rows_kernel(float *__restrict__ acc, const float *__restrict__ x, size_t n, int G)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float s = 0;
        for (int g = 0; g < G; g++) s += x[(size_t)g * n + i];
        acc[i] += s;
    }
}

extern "C" int kcu_sum_rows(float *acc, const float *x, size_t n, int G)
{
    KCU_NEED();
    if (!n || G <= 0) return 0;
    KCU_LAUNCH(sum_rows_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(acc, x, n, G);
    return kcu_launched("sum_rows");
}

static int bias_grad(float *db, const float *dout, int C, size_t HW, int G)
{
    KCU_LAUNCH(bias_grad_kernel, C, KCU_THREADS)(db, dout, C, HW, G);
    return kcu_launched("bias_grad");
}

static int fill_bias(float *out, const float *b, int C, size_t HW, int G)
{
    KCU_LAUNCH(fill_bias_kernel, kcu_blocks((size_t)G * C * HW, KCU_THREADS), KCU_THREADS)(out, b, C, HW, G);
    return kcu_launched("fill_bias");
}

/* ---------------------------------------------------------------- conv3x3 */
extern "C" size_t kcu_conv3x3_scratch(int Cin, int Cout, int H, int W, int G)
{
    const size_t K = (size_t)Cin * 9, HW = (size_t)H * W;
    return (size_t)G * K * HW + (size_t)G * Cout * K + 64;
}

extern "C" int kcu_conv3x3_fwd(float *out, const float *in, const float *w, const float *b, int Cin, int Cout, int H,
                               int W, int G, float pad, float *scratch)
{
    KCU_NEED();
    const int HW = H * W, K = Cin * 9;
    if (G <= 0 || HW <= 0 || Cout <= 0) return 0;
    float *col = scratch;
    const size_t total = (size_t)G * K * HW;
    KCU_LAUNCH(im2col3_kernel, kcu_blocks(total, KCU_THREADS), KCU_THREADS)(col, in, Cin, H, W, G, pad);
    int rc = kcu_launched("im2col3");
    if (rc) return rc;
    if (b && (rc = fill_bias(out, b, Cout, HW, G))) return rc;
    KCU_BLAS(cublasSgemmStridedBatched(kcu_g.blas, CUBLAS_OP_N, CUBLAS_OP_N, HW, Cout, K, &ONE, col, HW,
                                       (long long)K * HW, w, K, 0, b ? &ONE : &ZERO, out, HW, (long long)Cout * HW, G),
             "conv3x3 forward gemm");
    return 0;
}

extern "C" int kcu_conv3x3_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                               int Cin, int Cout, int H, int W, int G, float pad, float *scratch)
{
    KCU_NEED();
    const int HW = H * W, K = Cin * 9;
    if (G <= 0 || HW <= 0 || Cout <= 0) return 0;
    float *col = scratch, *part = scratch + (size_t)G * K * HW;
    const size_t total = (size_t)G * K * HW;
    int rc;
    if (dw) {
        KCU_LAUNCH(im2col3_kernel, kcu_blocks(total, KCU_THREADS), KCU_THREADS)(col, in, Cin, H, W, G, pad);
        if ((rc = kcu_launched("im2col3"))) return rc;
        /* part[g] (Cout, K) = dout[g] (Cout, HW) col[g]^T */
        KCU_BLAS(cublasSgemmStridedBatched(kcu_g.blas, CUBLAS_OP_T, CUBLAS_OP_N, K, Cout, HW, &ONE, col, HW,
                                           (long long)K * HW, dout, HW, (long long)Cout * HW, &ZERO, part, K,
                                           (long long)Cout * K, G),
                 "conv3x3 weight-gradient gemm");
        if ((rc = kcu_sum_rows(dw, part, (size_t)Cout * K, G))) return rc;
    }
    if (db && (rc = bias_grad(db, dout, Cout, HW, G))) return rc;
    if (!din) return 0;
    /* dcol[g] (K, HW) = w^T (K, Cout) dout[g] (Cout, HW); col's memory is free again (stream order) */
    float *dcol = col;
    KCU_BLAS(cublasSgemmStridedBatched(kcu_g.blas, CUBLAS_OP_N, CUBLAS_OP_T, HW, K, Cout, &ONE, dout, HW,
                                       (long long)Cout * HW, w, K, 0, &ZERO, dcol, HW, (long long)K * HW, G),
             "conv3x3 input-gradient gemm");
    const size_t nin = (size_t)G * Cin * HW;
    KCU_LAUNCH(col2im3_kernel, kcu_blocks(nin, KCU_THREADS), KCU_THREADS)(din, dcol, Cin, H, W, G);
    return kcu_launched("col2im3");
}

/* ---------------------------------------------------------------- conv1x1 */
extern "C" size_t kcu_conv1x1_scratch(int Cin, int Cout, int HW, int G)
{
    (void)HW;
    return (size_t)G * Cin * Cout + 64;
}

extern "C" int kcu_conv1x1_fwd(float *out, const float *in, const float *w, const float *b, int Cin, int Cout, int HW,
                               int G, float *scratch)
{
    KCU_NEED();
    (void)scratch;
    if (G <= 0 || HW <= 0 || Cout <= 0) return 0;
    int rc;
    if (b && (rc = fill_bias(out, b, Cout, HW, G))) return rc;
    KCU_BLAS(cublasSgemmStridedBatched(kcu_g.blas, CUBLAS_OP_N, CUBLAS_OP_N, HW, Cout, Cin, &ONE, in, HW,
                                       (long long)Cin * HW, w, Cin, 0, b ? &ONE : &ZERO, out, HW,
                                       (long long)Cout * HW, G),
             "conv1x1 forward gemm");
    return 0;
}

extern "C" int kcu_conv1x1_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                               int Cin, int Cout, int HW, int G, float *scratch)
{
    KCU_NEED();
    if (G <= 0 || HW <= 0 || Cout <= 0) return 0;
    int rc;
    if (dw) {
        float *part = scratch;
        KCU_BLAS(cublasSgemmStridedBatched(kcu_g.blas, CUBLAS_OP_T, CUBLAS_OP_N, Cin, Cout, HW, &ONE, in, HW,
                                           (long long)Cin * HW, dout, HW, (long long)Cout * HW, &ZERO, part, Cin,
                                           (long long)Cout * Cin, G),
                 "conv1x1 weight-gradient gemm");
        if ((rc = kcu_sum_rows(dw, part, (size_t)Cout * Cin, G))) return rc;
    }
    if (db && (rc = bias_grad(db, dout, Cout, HW, G))) return rc;
    if (!din) return 0;
    KCU_BLAS(cublasSgemmStridedBatched(kcu_g.blas, CUBLAS_OP_N, CUBLAS_OP_T, HW, Cin, Cout, &ONE, dout, HW,
                                       (long long)Cout * HW, w, Cin, 0, &ZERO, din, HW, (long long)Cin * HW, G),
             "conv1x1 input-gradient gemm");
    return 0;
}

/* ---------------------------------------------------------------- relu */
__global__ void relu_kernel(float *y, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = y[i] > 0 ? y[i] : 0.0f;
}
__global__ void relu_bwd_kernel(float *dy, const float *y, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        if (!(y[i] > 0)) dy[i] = 0.0f;
}

extern "C" int kcu_relu(float *y, size_t n)
{
    KCU_NEED();
    if (!n) return 0;
    KCU_LAUNCH(relu_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(y, n);
    return kcu_launched("relu");
}

extern "C" int kcu_relu_bwd(float *dy, const float *y, size_t n)
{
    KCU_NEED();
    if (!n) return 0;
    KCU_LAUNCH(relu_bwd_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(dy, y, n);
    return kcu_launched("relu_bwd");
}

/* ---------------------------------------------------------------- linear */
extern "C" int kcu_linear_fwd(float *out, const float *in, const float *W, const float *b, int M, int K, int G)
{
    KCU_NEED();
    if (G <= 0 || M <= 0) return 0;
    int rc;
    if (b && (rc = fill_bias(out, b, M, 1, G))) return rc;
    KCU_BLAS(cublasSgemm(kcu_g.blas, CUBLAS_OP_T, CUBLAS_OP_N, M, G, K, &ONE, W, K, in, K, b ? &ONE : &ZERO, out, M),
             "linear forward gemm");
    return 0;
}

extern "C" int kcu_linear_bwd(float *din, float *dW, float *db, const float *dout, const float *in, const float *W,
                              int M, int K, int G)
{
    KCU_NEED();
    if (G <= 0 || M <= 0) return 0;
    int rc;
    KCU_BLAS(cublasSgemm(kcu_g.blas, CUBLAS_OP_N, CUBLAS_OP_T, K, M, G, &ONE, in, K, dout, M, &ONE, dW, K),
             "linear weight-gradient gemm");
    if (db && (rc = kcu_sum_rows(db, dout, (size_t)M, G))) return rc;
    if (din)
        KCU_BLAS(cublasSgemm(kcu_g.blas, CUBLAS_OP_N, CUBLAS_OP_N, K, G, M, &ONE, W, K, dout, M, &ZERO, din, K),
                 "linear input-gradient gemm");
    return 0;
}
