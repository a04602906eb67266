/* Internal to the CUDA backend: the one stream and cuBLAS handle, and error plumbing. */
#ifndef CGLOW_KCU_COMMON_CUH
#define CGLOW_KCU_COMMON_CUH
#include "cglow.h"
#include "kernels/cuda/kernels_cuda.h"
#ifdef KCU_EMULATE
#include "kernels/cuda/emul.h"   /* CPU emulation: g++ -x c++ -std=c++20 -DKCU_EMULATE */
#else
#include <cublas_v2.h>
#include <cuda_runtime.h>
#define KCU_LAUNCH(kernel, grid, block) kernel<<<(grid), (block), 0, kcu_g.stream>>>
#endif

struct kcu_ctx {
    int ready;
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    int sms;
    void *ws;          /* cuBLAS workspace */
    size_t ws_bytes;
};
extern kcu_ctx kcu_g;

int kcu_cuda_error(cudaError_t e, const char *what);
int kcu_blas_error(cublasStatus_t s, const char *what);
/* After a launch: reports a launch error (bad configuration), 0 otherwise. */
int kcu_launched(const char *what);

#define KCU_NEED()                                                                         \
    do {                                                                                   \
        if (!kcu_g.ready) return cglow_set_error(CGLOW_ENOTSUP, "cuda: backend not initialised (kcu_init)"); \
    } while (0)
#define KCU_BLAS(call, what)                                                               \
    do {                                                                                   \
        cublasStatus_t s_ = (call);                                                        \
        if (s_ != CUBLAS_STATUS_SUCCESS) return kcu_blas_error(s_, what);                  \
    } while (0)

static inline unsigned kcu_blocks(size_t n, int threads)
{
    size_t b = (n + threads - 1) / threads;
    const size_t cap = (size_t)kcu_g.sms * 32;   /* grid-stride loops beyond this */
    if (b > cap) b = cap;
    return (unsigned)(b ? b : 1);
}
#ifdef KCU_EMULATE
#define KCU_THREADS 8    /* fewer emulated threads per block: same logic, far fewer thread starts */
#else
#define KCU_THREADS 256
#endif
#define RED_THREADS KCU_THREADS   /* block size of the deterministic reductions */

/* Sum of a double over the block (blockDim.x == RED_THREADS), in a fixed order; every thread gets
 * the result. Shared by the layer kernels and the flow's reductions. */
static __device__ __forceinline__ double block_sum(double v)
{
    __shared__ double sh[RED_THREADS];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = RED_THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    const double r = sh[0];
    __syncthreads();
    return r;
}
#endif
