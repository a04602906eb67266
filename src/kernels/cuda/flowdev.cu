/* Device kernels that the whole-model driver (src/model/flow_cuda.c) needs beyond the layers:
 * the invertible 1x1 convolutions' W from their LU parameters and the chain rule back to those
 * parameters (in double, one block per flow step, the arithmetic of src/model/invconv.c), the
 * invconv's log-determinant read from the device parameters, and deterministic reductions of the
 * loss and of the gradient norm. With these a training step never needs the host between the
 * upload of the batch and the read-back of (loss, |g|^2), so it can be one CUDA graph. */
#include "kernels/cuda/common.cuh"

#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* ---------------------------------------------------------------- W = P (L + I) (U + diag) */
/* The factors of src/model/invconv.c: A = L*mask_l + I, B = U*mask_u + diag(sign*exp(log_s)). */
__device__ __forceinline__ double lu_A(const float *lo, int C, int i, int j)
{
    return i > j ? (double)lo[(size_t)i * C + j] : i == j ? 1.0 : 0.0;
}
__device__ __forceinline__ double lu_B(const float *up, const float *ls, const float *sg, int C, int i, int j)
{
    return i < j ? (double)up[(size_t)i * C + j] : i == j ? (double)sg[i] * exp((double)ls[i]) : 0.0;
}

/* one block per step: T = A B (double, in work), then W = P T rounded to float */
__global__ void lu_weights_kernel(float *w, const float *p, const kcu_lu_step *steps, double *work)
{
    const kcu_lu_step s = steps[blockIdx.x];
    const int C = s.C;
    const float *lo = p + s.lower, *up = p + s.upper, *ls = p + s.log_s, *sg = p + s.sign, *P = p + s.perm;
    double *T = work + s.wc;
    for (int idx = threadIdx.x; idx < C * C; idx += blockDim.x) {
        const int i = idx / C, j = idx % C, lm = i < j ? i : j;
        double acc = 0;
        for (int l = 0; l <= lm; l++) acc += lu_A(lo, C, i, l) * lu_B(up, ls, sg, C, l, j);
        T[idx] = acc;
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < C * C; idx += blockDim.x) {
        const int i = idx / C, j = idx % C;
        double acc = 0;
        for (int k = 0; k < C; k++) {   /* a permutation: exactly the row copy of invconv.c */
            const float pv = P[(size_t)i * C + k];
            if (pv != 0) acc += (double)pv * T[(size_t)k * C + j];
        }
        w[s.wc + idx] = (float)acc;
    }
}

extern "C" int kcu_lu_weights(float *w, const float *params, const kcu_lu_step *steps, int nsteps, double *work)
{
    KCU_NEED();
    if (nsteps <= 0) return 0;
    KCU_LAUNCH(lu_weights_kernel, nsteps, KCU_THREADS)(w, params, steps, work);
    return kcu_launched("lu_weights");
}

/* One block per step, G = dL/dW (float, at dw + wc): PG = P^T G (double, in work); then
 * d lower = (PG B^T) strictly lower, d upper = (A^T PG) strictly upper, d log_s = (A^T PG)_ii B_ii,
 * each added (+=) to grads in float as invconv_weight_grad does. */
__global__ void lu_grad_kernel(float *g, const float *p, const float *dw, const kcu_lu_step *steps, double *work)
{
    const kcu_lu_step s = steps[blockIdx.x];
    const int C = s.C;
    const float *lo = p + s.lower, *up = p + s.upper, *ls = p + s.log_s, *sg = p + s.sign, *P = p + s.perm;
    const float *G = dw + s.wc;
    double *PG = work + s.wc;
    for (int idx = threadIdx.x; idx < C * C; idx += blockDim.x) {
        const int k = idx / C, j = idx % C;
        double acc = 0;
        for (int i = 0; i < C; i++) {   /* (P^T G)[k][j] = sum_i P[i][k] G[i][j] */
            const float pv = P[(size_t)i * C + k];
            if (pv != 0) acc += (double)pv * G[(size_t)i * C + j];
        }
        PG[idx] = acc;
    }
    __syncthreads();
    float *gl = g + s.lower, *gu = g + s.upper, *gs = g + s.log_s;
    for (int idx = threadIdx.x; idx < C * C; idx += blockDim.x) {
        const int i = idx / C, j = idx % C;
        if (i > j) {   /* dA[i][j] = sum_l PG[i][l] B[j][l], B[j][l] = 0 for l < j */
            double acc = 0;
            for (int l = j; l < C; l++) acc += PG[(size_t)i * C + l] * lu_B(up, ls, sg, C, j, l);
            gl[idx] += (float)acc;
        } else {       /* dB[i][j] = sum_k A[k][i] PG[k][j], A[k][i] = 0 for k < i */
            double acc = 0;
            for (int k = i; k < C; k++) acc += lu_A(lo, C, k, i) * PG[(size_t)k * C + j];
            if (i < j) gu[idx] += (float)acc;
            else gs[i] += (float)(acc * lu_B(up, ls, sg, C, i, i));
        }
    }
}

extern "C" int kcu_lu_weight_grad(float *grads, const float *params, const float *dw, const kcu_lu_step *steps,
                                  int nsteps, double *work)
{
    KCU_NEED();
    if (nsteps <= 0) return 0;
    KCU_LAUNCH(lu_grad_kernel, nsteps, KCU_THREADS)(grads, params, dw, steps, work);
    return kcu_launched("lu_weight_grad");
}

/* ---------------------------------------------------------------- small helpers */
/* v[g] += scale * (sum of x[0..n), in order, in double): the invconv's H*W*sum(log_s) */
__global__ void add_sum_d_kernel(double *v, const float *x, int n, double scale, int G)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    GRID_STRIDE(g, (size_t)G) v[g] += scale * s;
}

extern "C" int kcu_add_sum_d(double *v, const float *x, int n, double scale, int G)
{
    KCU_NEED();
    if (G <= 0) return 0;
    KCU_LAUNCH(add_sum_d_kernel, kcu_blocks((size_t)G, KCU_THREADS), KCU_THREADS)(v, x, n, scale, G);
    return kcu_launched("add_sum_d");
}

__global__ void add_const_kernel(float *x, float a, size_t n)
{
    GRID_STRIDE(i, n) x[i] += a;
}

extern "C" int kcu_add_const(float *x, float a, size_t n)
{
    KCU_NEED();
    if (!n) return 0;
    KCU_LAUNCH(add_const_kernel, kcu_blocks(n, KCU_THREADS), KCU_THREADS)(x, a, n);
    return kcu_launched("add_const");
}

/* ---------------------------------------------------------------- deterministic reductions */

/* one block: *out = sum x[0..n) (doubles) */
__global__ void sum_d_kernel(double *out, const double *x, int n)
{
    double acc = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += x[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) *out = acc;
}

extern "C" int kcu_sum_d(double *out, const double *x, int n)
{
    KCU_NEED();
    KCU_LAUNCH(sum_d_kernel, 1, RED_THREADS)(out, x, n);
    return kcu_launched("sum_d");
}

/* block b sums the squares of its fixed chunk of x into part[b] */
__global__ void sumsq_part_kernel(double *part, const float *x, size_t n, size_t chunk)
{
    const size_t lo = blockIdx.x * chunk, hi = lo + chunk < n ? lo + chunk : n;
    double acc = 0;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) acc += (double)x[i] * x[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

extern "C" int kcu_sumsq_parts(double *out, double *parts, int nparts, const float *x, size_t n)
{
    KCU_NEED();
    if (nparts < 1) nparts = 1;
    const size_t chunk = (n + nparts - 1) / nparts ? (n + nparts - 1) / nparts : 1;
    KCU_LAUNCH(sumsq_part_kernel, nparts, RED_THREADS)(parts, x, n, chunk);
    int rc = kcu_launched("sumsq_parts");
    return rc ? rc : kcu_sum_d(out, parts, nparts);
}
