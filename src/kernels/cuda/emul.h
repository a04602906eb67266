/* A CPU emulation of the little of CUDA and cuBLAS the backend uses, so that the .cu files
 * compile as plain C++20 (g++ -x c++ -DKCU_EMULATE) and test_cuda runs for real on a machine
 * without a GPU: every kernel runs block after block, each block as blockDim.x std::threads with
 * a std::barrier for __syncthreads() (static variables stand in for __shared__ memory, which is
 * right because blocks run one at a time). cuBLAS GEMMs are naive loops. cudaMalloc is malloc
 * filled with NaN bytes (uninitialised reads show), so the emulated build under ASan also checks
 * bounds. Not a performance model; no streams, no asynchrony. */
#ifndef CGLOW_KCU_EMUL_H
#define CGLOW_KCU_EMUL_H
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <unordered_map>
#include <vector>

/* ---- qualifiers and built-ins */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __restrict__ __restrict
struct kcu_dim3 { unsigned x = 0, y = 0, z = 0; };
inline thread_local kcu_dim3 threadIdx, blockIdx;
inline kcu_dim3 blockDim, gridDim;
inline thread_local std::barrier<> *kcu_emul_barrier = nullptr;
/* Kernels are first run with a thread per CUDA thread; one that never reached __syncthreads is
 * from then on run in the launching thread, its threads one after another (no OS threads, no
 * barriers: most kernels are elementwise, and this makes the emulation several times faster). A
 * barrier reached in that mode would mean a kernel that synchronises only sometimes: abort. */
inline thread_local bool kcu_emul_serial = false;
inline std::atomic<bool> kcu_emul_synced{false};
inline void __syncthreads()
{
    if (kcu_emul_serial) {
        fprintf(stderr, "emul.h: __syncthreads() in a kernel that did not synchronise at its first launch\n");
        abort();
    }
    kcu_emul_synced.store(true, std::memory_order_relaxed);
    kcu_emul_barrier->arrive_and_wait();
}

/* ---- runtime */
typedef enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidConfiguration = 9,
} cudaError_t;
typedef void *cudaStream_t;
typedef enum { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice } cudaMemcpyKind;
#define cudaStreamNonBlocking 1
struct cudaDeviceProp {
    char name[256];
    int major, minor, multiProcessorCount;
    size_t totalGlobalMem;
};
inline cudaError_t kcu_emul_last = cudaSuccess;
inline const char *cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
inline const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    default: return "cudaErrorUnknown";
    }
}
inline cudaError_t cudaGetLastError() { cudaError_t e = kcu_emul_last; kcu_emul_last = cudaSuccess; return e; }
inline cudaError_t cudaGetDeviceCount(int *n)
{
    if (getenv("KCU_EMUL_NODEVICE")) { *n = 0; return cudaErrorNoDevice; }
    *n = 1;
    return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int)
{
    memset(p, 0, sizeof *p);
    strcpy(p->name, "CPU emulation");
    p->major = 9; p->minor = 0; p->multiProcessorCount = 1; p->totalGlobalMem = (size_t)1 << 34;
    return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, int) { *s = (void *)&kcu_emul_last; return cudaSuccess; }
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaMalloc(void **p, size_t bytes)
{
    if (bytes > ((size_t)1 << 36)) { *p = nullptr; return cudaErrorMemoryAllocation; }
    *p = malloc(bytes);
    if (!*p) return cudaErrorMemoryAllocation;
    memset(*p, 0xff, bytes);   /* NaN floats and doubles */
    return cudaSuccess;
}
inline cudaError_t cudaFree(void *p) { free(p); return cudaSuccess; }
inline cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t)
{
    memmove(d, s, n);
    return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) { memset(d, v, n); return cudaSuccess; }

/* ---- launches: KCU_LAUNCH(kernel, grid, block)(args...). A persistent pool of blockDim.x
 * threads runs one block at a time (two barrier phases per block, no thread starts). */
struct kcu_emul_pool {
    unsigned n = 0;
    std::vector<std::thread> th;
    std::barrier<> *start = nullptr, *done = nullptr, *sync = nullptr;
    std::function<void(unsigned)> task;
    bool quit = false;
    void stop()
    {
        if (!n) return;
        quit = true;
        start->arrive_and_wait();
        for (auto &x : th) x.join();
        th.clear();
        delete start; delete done; delete sync;
        n = 0;
        quit = false;
    }
    void resize(unsigned m)
    {
        if (m == n) return;
        stop();
        n = m;
        start = new std::barrier<>((std::ptrdiff_t)m + 1);
        done = new std::barrier<>((std::ptrdiff_t)m + 1);
        sync = new std::barrier<>((std::ptrdiff_t)m);
        for (unsigned t = 0; t < m; t++)
            th.emplace_back([this, t] {
                kcu_emul_barrier = sync;
                for (;;) {
                    start->arrive_and_wait();
                    if (quit) return;
                    threadIdx.x = t;
                    task(t);
                    done->arrive_and_wait();
                }
            });
    }
    void run_block() { start->arrive_and_wait(); done->arrive_and_wait(); }
    ~kcu_emul_pool() { stop(); }
};
inline kcu_emul_pool kcu_emul_threads;

/* per kernel: 1 once it reached __syncthreads, 0 if its first launch never did */
inline std::unordered_map<const void *, int> kcu_emul_syncs;

template <typename K> struct kcu_emul_launcher {
    K *k;
    unsigned grid, block;
    template <typename... A> void operator()(A... args) const
    {
        if (grid == 0 || block == 0 || block > 1024) { kcu_emul_last = cudaErrorInvalidConfiguration; return; }
        gridDim.x = grid; blockDim.x = block;
        const auto known = kcu_emul_syncs.find((const void *)k);
        if (known != kcu_emul_syncs.end() && known->second == 0) {   /* barrier-free: serial */
            kcu_emul_serial = true;
            for (unsigned b = 0; b < grid; b++) {
                blockIdx.x = b;
                for (unsigned t = 0; t < block; t++) { threadIdx.x = t; k(args...); }
            }
            kcu_emul_serial = false;
            return;
        }
        kcu_emul_synced.store(false);
        kcu_emul_threads.resize(block);
        for (unsigned b = 0; b < grid; b++) {
            kcu_emul_threads.task = [&, b](unsigned) { blockIdx.x = b; k(args...); };
            kcu_emul_threads.run_block();
        }
        kcu_emul_syncs[(const void *)k] = kcu_emul_synced.load() ? 1 : 0;
    }
};
template <typename K> kcu_emul_launcher<K> kcu_emul_launch(K *k, size_t grid, size_t block)
{
    return kcu_emul_launcher<K>{k, (unsigned)grid, (unsigned)block};
}
#define KCU_LAUNCH(kernel, grid, block) kcu_emul_launch(kernel, (grid), (block))

/* ---- cuBLAS (column-major, as the real one) */
typedef void *cublasHandle_t;
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_ALLOC_FAILED = 3, CUBLAS_STATUS_INVALID_VALUE = 7 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUBLAS_DEFAULT_MATH = 0 } cublasMath_t;
inline cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = (void *)1; return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasDestroy(cublasHandle_t) { return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetWorkspace(cublasHandle_t, void *, size_t) { return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
inline const char *cublasGetStatusString(cublasStatus_t s) { return s ? "emulated cublas error" : "success"; }
inline cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                int n, int k, const float *alpha, const float *A, int lda,
                                                long long sA, const float *B, int ldb, long long sB,
                                                const float *beta, float *C, int ldc, long long sC, int batch)
{
    /* the real cuBLAS's argument checks */
    if (m < 0 || n < 0 || k < 0 || batch < 0 || ldc < (m > 1 ? m : 1) || lda < ((ta ? k : m) > 1 ? (ta ? k : m) : 1) ||
        ldb < ((tb ? n : k) > 1 ? (tb ? n : k) : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    for (int g = 0; g < batch; g++) {
        const float *a = A + g * sA, *b = B + g * sB;
        float *c = C + g * sC;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                double acc = 0;
                for (int l = 0; l < k; l++) {
                    const float av = ta ? a[l + (size_t)i * lda] : a[i + (size_t)l * lda];
                    const float bv = tb ? b[j + (size_t)l * ldb] : b[l + (size_t)j * ldb];
                    acc += (double)av * bv;
                }
                float *cv = c + i + (size_t)j * ldc;
                *cv = (float)(*alpha * acc + (*beta != 0 ? *beta * *cv : 0.0f));   /* beta 0: C not read */
            }
    }
    return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                  const float *alpha, const float *A, int lda, const float *B, int ldb,
                                  const float *beta, float *C, int ldc)
{
    return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}
#endif
