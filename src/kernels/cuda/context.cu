/* Device context: availability probe, one stream, one cuBLAS handle, allocation wrappers. */
#include "kernels/cuda/common.cuh"
#include <stdio.h>
#include <stdlib.h>

kcu_ctx kcu_g;
static int probed = 0, avail = 0;
static char reason[256] = "not probed";
static char name[256] = "none";

int kcu_cuda_error(cudaError_t e, const char *what)
{
    const int code = e == cudaErrorMemoryAllocation ? CGLOW_ENOMEM
                     : (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) ? CGLOW_ENOTSUP
                                                                                     : CGLOW_EVALUE;
    return cglow_set_error(code, "cuda: %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

int kcu_blas_error(cublasStatus_t s, const char *what)
{
    return cglow_set_error(s == CUBLAS_STATUS_ALLOC_FAILED ? CGLOW_ENOMEM : CGLOW_EVALUE, "cublas: %s: %s (%d)",
                           what, cublasGetStatusString(s), (int)s);
}

int kcu_launched(const char *what)
{
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? 0 : kcu_cuda_error(e, what);
}

extern "C" int kcu_available(void)
{
    if (probed) return avail;
    probed = 1;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(reason, sizeof reason, "%s", cudaGetErrorName(e));
        (void)cudaGetLastError();   /* clear the sticky-free error */
        return avail = 0;
    }
    if (n < 1) {
        snprintf(reason, sizeof reason, "no CUDA device");
        return avail = 0;
    }
    /* The build carries sm_90 code and compute_90 PTX: older devices cannot run it. */
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
        snprintf(reason, sizeof reason, "cudaGetDeviceProperties failed");
        (void)cudaGetLastError();
        return avail = 0;
    }
    if (p.major < 9) {
        snprintf(reason, sizeof reason, "device %.100s is sm_%d%d; this build needs sm_90+", p.name, p.major, p.minor);
        return avail = 0;
    }
    snprintf(reason, sizeof reason, "available");
    return avail = 1;
}

extern "C" const char *kcu_unavailable_reason(void) { kcu_available(); return reason; }

extern "C" int kcu_init(int device)
{
    if (kcu_g.ready) return 0;
    if (!kcu_available()) return cglow_set_error(CGLOW_ENOTSUP, "cuda: no usable device (%s)", reason);
    cudaError_t e = cudaSetDevice(device);
    if (e != cudaSuccess) return kcu_cuda_error(e, "cudaSetDevice");
    cudaDeviceProp p;
    if ((e = cudaGetDeviceProperties(&p, device)) != cudaSuccess) return kcu_cuda_error(e, "cudaGetDeviceProperties");
    if ((e = cudaStreamCreateWithFlags(&kcu_g.stream, cudaStreamNonBlocking)) != cudaSuccess)
        return kcu_cuda_error(e, "cudaStreamCreate");
    cublasStatus_t s = cublasCreate(&kcu_g.blas);
    if (s != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(kcu_g.stream);
        return kcu_blas_error(s, "cublasCreate");
    }
    cublasSetStream(kcu_g.blas, kcu_g.stream);
    /* a fixed cuBLAS workspace, so that GEMMs allocate nothing while a graph is captured */
    kcu_g.ws_bytes = (size_t)32 << 20;
    if ((e = cudaMalloc(&kcu_g.ws, kcu_g.ws_bytes)) != cudaSuccess) {
        cublasDestroy(kcu_g.blas);
        cudaStreamDestroy(kcu_g.stream);
        return kcu_cuda_error(e, "cudaMalloc of the cuBLAS workspace");
    }
    cublasSetWorkspace(kcu_g.blas, kcu_g.ws, kcu_g.ws_bytes);
    /* Plain float32 GEMMs (no TF32): the tests compare with the CPU at float32 tolerance. */
    cublasSetMathMode(kcu_g.blas, CUBLAS_DEFAULT_MATH);
    kcu_g.device = device;
    kcu_g.sms = p.multiProcessorCount;
    snprintf(name, sizeof name, "%.100s (sm_%d%d, %d SMs, %.1f GiB)", p.name, p.major, p.minor, p.multiProcessorCount,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    kcu_g.ready = 1;
    return 0;
}

extern "C" void kcu_shutdown(void)
{
    if (!kcu_g.ready) return;
    cudaStreamSynchronize(kcu_g.stream);
    cublasDestroy(kcu_g.blas);
    cudaFree(kcu_g.ws);
    cudaStreamDestroy(kcu_g.stream);
    kcu_g.ready = 0;
    snprintf(name, sizeof name, "none");
}

extern "C" const char *kcu_device_name(void) { return name; }
extern "C" void *kcu_stream(void) { return kcu_g.ready ? (void *)kcu_g.stream : NULL; }

extern "C" int kcu_sync(void)
{
    KCU_NEED();
    cudaError_t e = cudaStreamSynchronize(kcu_g.stream);
    if (e == cudaSuccess) e = cudaGetLastError();
    return e == cudaSuccess ? 0 : kcu_cuda_error(e, "kernel");
}

extern "C" void *kcu_malloc(size_t bytes)
{
    if (!kcu_g.ready) { cglow_set_error(CGLOW_ENOTSUP, "cuda: backend not initialised (kcu_init)"); return NULL; }
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        char what[64];
        snprintf(what, sizeof what, "cudaMalloc of %zu bytes", bytes);
        kcu_cuda_error(e, what);
        return NULL;
    }
    return p;
}

extern "C" void kcu_free(void *p)
{
    if (p && kcu_g.ready) cudaFree(p);
}

static int copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind k, int async, const char *what)
{
    KCU_NEED();
    if (!bytes) return 0;
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, k, kcu_g.stream);
    if (e == cudaSuccess && !async) e = cudaStreamSynchronize(kcu_g.stream);
    return e == cudaSuccess ? 0 : kcu_cuda_error(e, what);
}

extern "C" int kcu_memcpy_h2d(void *dst, const void *src, size_t bytes)
{
    return copy(dst, src, bytes, cudaMemcpyHostToDevice, 0, "copy to device");
}
extern "C" int kcu_memcpy_d2h(void *dst, const void *src, size_t bytes)
{
    return copy(dst, src, bytes, cudaMemcpyDeviceToHost, 0, "copy to host");
}
extern "C" int kcu_memcpy_d2d(void *dst, const void *src, size_t bytes)
{
    return copy(dst, src, bytes, cudaMemcpyDeviceToDevice, 1, "copy on device");
}
extern "C" int kcu_memset0(void *dst, size_t bytes)
{
    KCU_NEED();
    if (!bytes) return 0;
    cudaError_t e = cudaMemsetAsync(dst, 0, bytes, kcu_g.stream);
    return e == cudaSuccess ? 0 : kcu_cuda_error(e, "memset");
}

/* ---------------------------------------------------------------- CUDA graphs */
#ifdef KCU_EMULATE
extern "C" int kcu_graph_begin(void) { return cglow_set_error(CGLOW_ENOTSUP, "cuda: graphs are not emulated"); }
extern "C" int kcu_graph_end(kcu_graph **out) { *out = NULL; return kcu_graph_begin(); }
extern "C" int kcu_graph_launch(kcu_graph *g) { (void)g; return kcu_graph_begin(); }
extern "C" void kcu_graph_free(kcu_graph *g) { (void)g; }
#else
struct kcu_graph {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
};

extern "C" int kcu_graph_begin(void)
{
    KCU_NEED();
    cudaError_t e = cudaStreamBeginCapture(kcu_g.stream, cudaStreamCaptureModeThreadLocal);
    return e == cudaSuccess ? 0 : kcu_cuda_error(e, "cudaStreamBeginCapture");
}

extern "C" int kcu_graph_end(kcu_graph **out)
{
    KCU_NEED();
    *out = NULL;
    kcu_graph *g = (kcu_graph *)calloc(1, sizeof *g);
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(kcu_g.stream, &graph);
    if (e != cudaSuccess || !g) {
        free(g);
        if (graph) cudaGraphDestroy(graph);
        return e != cudaSuccess ? kcu_cuda_error(e, "cudaStreamEndCapture") : cglow_set_error(CGLOW_ENOMEM, "cuda: graph: out of memory");
    }
    g->graph = graph;
    if ((e = cudaGraphInstantiate(&g->exec, graph, 0)) != cudaSuccess) {
        cudaGraphDestroy(graph);
        free(g);
        return kcu_cuda_error(e, "cudaGraphInstantiate");
    }
    *out = g;
    return 0;
}

extern "C" int kcu_graph_launch(kcu_graph *g)
{
    KCU_NEED();
    cudaError_t e = cudaGraphLaunch(g->exec, kcu_g.stream);
    return e == cudaSuccess ? 0 : kcu_cuda_error(e, "cudaGraphLaunch");
}

extern "C" void kcu_graph_free(kcu_graph *g)
{
    if (!g) return;
    cudaGraphExecDestroy(g->exec);
    cudaGraphDestroy(g->graph);
    free(g);
}
#endif
