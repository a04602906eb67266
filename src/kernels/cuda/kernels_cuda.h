/* The CUDA backend of the kernel interface (src/kernels/kernels.h), float32, on DEVICE pointers.
 *
 * Same semantics as the CPU kernels, on a group of G maps laid out (G, C, H, W) row-major:
 * conv3x3 ("same", border padded with the constant `pad`), conv1x1 (also the invertible 1x1
 * convolution with b = NULL), relu, dense layers batched over G rows; plus the fused elementwise
 * parts of the layers (coupling affine, injector affine, prior, squeeze, Adam, reductions).
 *
 * Conventions:
 *  - Every kcu_* that launches work returns 0 or a negative CGLOW_E* code, with a one-line
 *    message in cglow_last_error() (cglow_set_error). Launches are asynchronous on the backend's
 *    one stream (kcu_stream()); kcu_sync() waits and reports an error raised by a kernel.
 *  - Backward passes: dw, db (weights, biases) ACCUMULATE (+=, summed over the G maps); din is
 *    overwritten and may be NULL. Per-map log-determinants and log-probabilities ACCUMULATE (+=)
 *    into a device array of G doubles, so that a flow sums its layers without extra launches.
 *  - `scratch` is device memory of at least the size the matching *_scratch() function gives
 *    (in floats); one scratch buffer serves forward and backward.
 *  - This header is plain C and names no CUDA type: the host code needs no CUDA headers.
 *
 * Nothing here needs a GPU to compile or link; kcu_available() is 0 without a device or driver
 * and every other call then fails cleanly (CGLOW_ENOTSUP). */
#ifndef CGLOW_KERNELS_CUDA_H
#define CGLOW_KERNELS_CUDA_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- device context */
/* 1 when a CUDA device and a driver that can run this build are present (never crashes, never
 * prints; the reason it is 0 is in kcu_unavailable_reason()). */
int kcu_available(void);
const char *kcu_unavailable_reason(void);
/* Selects the device, creates the stream and the cuBLAS handle. Idempotent. */
int kcu_init(int device);
void kcu_shutdown(void);
/* "NVIDIA H200 (sm_90, 132 SMs, 139.8 GiB)" after kcu_init, else "none". */
const char *kcu_device_name(void);
void *kcu_stream(void);          /* the cudaStream_t every kcu_* call runs on */
int kcu_sync(void);              /* waits for the stream; reports a kernel's error */

/* CUDA graphs on the backend's stream: every kcu_* call between kcu_graph_begin() and
 * kcu_graph_end() is recorded (not run); kcu_graph_launch() replays it with the same pointers and
 * scalars. No kcu_sync / synchronous copies inside a capture. CGLOW_ENOTSUP in the emulation. */
typedef struct kcu_graph kcu_graph;
int kcu_graph_begin(void);
int kcu_graph_end(kcu_graph **out);
int kcu_graph_launch(kcu_graph *g);
void kcu_graph_free(kcu_graph *g);

void *kcu_malloc(size_t bytes);  /* cudaMalloc (never managed memory); NULL + message on failure */
void kcu_free(void *p);
int kcu_memcpy_h2d(void *dst, const void *src, size_t bytes);   /* synchronous */
int kcu_memcpy_d2h(void *dst, const void *src, size_t bytes);   /* synchronous */
int kcu_memcpy_d2d(void *dst, const void *src, size_t bytes);   /* async on the stream */
int kcu_memset0(void *dst, size_t bytes);                        /* async on the stream */

/* ---------------------------------------------------------------- primitives (kernels.h) */
/* conv3x3: out (G, Cout, H, W) = conv(in (G, Cin, H, W); w (Cout, Cin, 3, 3), pad) + b.
 * im2col into scratch, then one cuBLAS strided-batched GEMM over the G maps. */
size_t kcu_conv3x3_scratch(int Cin, int Cout, int H, int W, int G);
int kcu_conv3x3_fwd(float *out, const float *in, const float *w, const float *b, int Cin, int Cout, int H, int W,
                    int G, float pad, float *scratch);
/* dw += sum_g, db += sum_g (db may be NULL); din (G, Cin, H, W) overwritten, may be NULL. */
int kcu_conv3x3_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w, int Cin,
                    int Cout, int H, int W, int G, float pad, float *scratch);

/* conv1x1: out (G, Cout, HW) = w (Cout, Cin) in (G, Cin, HW) + b (b may be NULL). */
size_t kcu_conv1x1_scratch(int Cin, int Cout, int HW, int G);
int kcu_conv1x1_fwd(float *out, const float *in, const float *w, const float *b, int Cin, int Cout, int HW, int G,
                    float *scratch);
int kcu_conv1x1_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w, int Cin,
                    int Cout, int HW, int G, float *scratch);

/* y = max(y, 0) in place; dy = 0 where !(y > 0). */
int kcu_relu(float *y, size_t n);
int kcu_relu_bwd(float *dy, const float *y, size_t n);

/* Dense, batched over G rows: out (G, M) = in (G, K) W^T + b, W (M, K) (PyTorch Linear).
 * Backward: dW += dout^T in, db += column sums of dout, din (G, K) = dout W (may be NULL). */
int kcu_linear_fwd(float *out, const float *in, const float *W, const float *b, int M, int K, int G);
int kcu_linear_bwd(float *din, float *dW, float *db, const float *dout, const float *in, const float *W, int M,
                   int K, int G);

/* ---------------------------------------------------------------- fused layer parts */
/* zeroconv's output scale: o (G, C, HW) *= exp(3 zs[c]). Backward given the SCALED forward
 * output o: gzs[c] += 3 sum_{g,p} dout*o, then dout *= exp(3 zs[c]). */
int kcu_channel_scale_fwd(float *o, const float *zs, int C, int HW, int G);
int kcu_channel_scale_bwd(float *dout, float *gzs, const float *o, const float *zs, int C, int HW, int G);

/* dst (G, Ca + P, HW) = concat(xa (G, Ca, HW) [xa_C channels per map, first Ca used], the
 * condition c (G, P) broadcast over HW). Ca may be 0 (xa NULL): the injector's condition map. */
int kcu_concat_cond(float *dst, const float *xa, int xa_C, int Ca, const float *c, int P, int HW, int G);
/* dst[:, dc0 : dc0+nc] = src[:, sc0 : sc0+nc] over (G, *, HW) tensors of dC / sC channels. */
int kcu_copy_channels(float *dst, int dC, int dc0, const float *src, int sC, int sc0, int nc, int HW, int G);
/* The same with dst += src (e.g. dx[:, :C/2] += the coupling conditioner's input gradient). */
int kcu_add_channels(float *dst, int dC, int dc0, const float *src, int sC, int sc0, int nc, int HW, int G);
/* y += a x (n elements). */
int kcu_axpy(float *y, float a, const float *x, size_t n);

/* Coupling affine (model.md 2.2). x, y (G, C, HW); o (G, C, HW) the scaled zeroconv output:
 * log_s = o[:, :C/2], t = o[:, C/2:]; s = (1-clamp) sigmoid(log_s + 2) + clamp.
 * fwd: y[:, :C/2] = x[:, :C/2] (skipped when y == x), yb = (xb + t) s, logdet[g] += sum log s.
 * inv: x[:, :C/2] = y[:, :C/2], xb = yb / s - t.
 * bwd: given dy and the forward input x: dx[:, C/2:] = dy_b s; dx[:, :C/2] = dy_a (the caller
 *   adds the conditioner's input gradient with kcu_copy/axpy); dout (G, C, HW) = d loss / d o
 *   (before the zeroconv scale's backward), with g = d loss / d logdet (same for all maps). */
int kcu_coupling_fwd(float *y, const float *x, const float *o, int C, int HW, int G, float clamp, double *logdet);
int kcu_coupling_inv(float *x, const float *y, const float *o, int C, int HW, int G, float clamp);
int kcu_coupling_bwd(float *dx, float *dout, const float *dy, const float *x, const float *o, float g, int C, int HW,
                     int G, float clamp);

/* Injector affine on the border classes (model.md 2.2, src/model/injector.c): its CNN runs on the
 * reduced rh x rw = min(H,5) x min(W,5) map and gives o (G, 2C, R), R = rh*rw, raw (unclamped,
 * scaled): bias = o[:, :C], log_scale = clamp(o[:, C:], log(1e-3), 5).
 * fwd: y = x exp(ls) + bias at each pixel's class; logdet[g] += sum over all H*W pixels of ls.
 * inv: x = (y - bias) / exp(ls).
 * bwd: dx = dy exp(ls); dout (G, 2C, R) OVERWRITTEN with d bias (sum of dy over the class's
 *   pixels) and d log_scale (sum of dy exp(ls) x, plus g times the class's pixel count:
 *   straight-through clamp). */
int kcu_injector_fwd(float *y, const float *x, const float *o, int C, int H, int W, int G, double *logdet);
int kcu_injector_inv(float *x, const float *y, const float *o, int C, int H, int W, int G);
int kcu_injector_bwd(float *dx, float *dout, const float *dy, const float *x, const float *o, float g, int C, int H,
                     int W, int G);

/* Prior (model.md 2.3). z (G, D) with row stride zs (a latent is a channel range of the block's
 * tensor: zs = C*HW); mean, logvar (G, D) with row stride ms (0: one row shared by all maps, the
 * learned prior). logvar must already be clamped (kcu_clamp) for the conditional prior.
 * logp[g] += -0.5 sum (z-mean)^2 exp(-logvar) - 0.5 D log(2 pi) - 0.5 sum logvar.
 * bwd: dz (stride zs) overwritten with -g (z-mean) exp(-logvar); dmean, dlogvar (G, D) dense,
 * overwritten (the caller reduces them over G for the learned prior with kcu_sum_rows). */
int kcu_prior_logp(double *logp, const float *z, int zs, const float *mean, const float *logvar, int ms, int D,
                   int G);
int kcu_prior_bwd(float *dz, float *dmean, float *dlogvar, const float *z, int zs, const float *mean,
                  const float *logvar, int ms, float g, int D, int G);
int kcu_clamp(float *x, size_t n, float lo, float hi);

/* 2x2 space-to-depth over G maps: (G, C, H, W) <-> (G, 4C, H/2, W/2) (src/model/squeeze.c). */
int kcu_squeeze_fwd(float *out, const float *in, int C, int H, int W, int G);
int kcu_squeeze_inv(float *out, const float *in, int C, int H, int W, int G);

/* Adam over a flat buffer, exactly the CPU trainer's update (double arithmetic per element):
 * gi = g*scale; m = b1 m + (1-b1) gi; v = b2 v + (1-b2) gi^2; p -= step_size m / (sqrt(v)/sbc2 + eps). */
int kcu_adam(float *p, const float *g, float *m, float *v, size_t n, double scale, double b1, double b2, double eps,
             double step_size, double sbc2);

/* Reductions (deterministic: fixed block order). out is a DEVICE double. */
int kcu_sumsq(double *out, const float *x, size_t n);
int kcu_sum(double *out, const float *x, size_t n);
/* acc[i] += sum_g x[g*n + i] (reduce per-map gradients over the group). */
int kcu_sum_rows(float *acc, const float *x, size_t n, int G);

/* ---------------------------------------------------------------- whole layers (flowlayers.cu) */
/* The conditioner CNN of the coupling and the injector (model.md 2.2), on device tensors:
 * h1 = relu(conv3x3(in; w1, b1, pad 0)), h2 = relu(conv1x1(h1; w2, b2)),
 * o = (conv3x3(h2; zw, zb, pad 1)) * exp(3 zs). Shapes: in (G, Cin, H, W), h1/h2 (G, Hd, H, W),
 * o (G, Co, H, W); w1 (Hd, Cin, 3, 3), w2 (Hd, Hd), zw (Co, Hd, 3, 3), zb and zs (Co). The
 * pointers of a step's tensors are those of the CPU params layout at the step's offsets. */
typedef struct { const float *w1, *b1, *w2, *b2, *zw, *zb, *zs; } kcu_net;
typedef struct { float *w1, *b1, *w2, *b2, *zw, *zb, *zs; } kcu_net_grad;   /* accumulated (+=) */
size_t kcu_net_scratch(int Cin, int Hd, int Co, int H, int W, int G);
int kcu_net_fwd(float *h1, float *h2, float *o, const float *in, const kcu_net *p, int Cin, int Hd, int Co, int H,
                int W, int G, float *scratch);
/* dout (G, Co, H, W) = d loss / d o, used as scratch (overwritten); din may be NULL. */
int kcu_net_bwd(float *din, const kcu_net_grad *gr, float *dout, const float *in, const float *h1, const float *h2,
                const float *o, const kcu_net *p, int Cin, int Hd, int Co, int H, int W, int G, float *scratch);

/* Coupling layer (src/model/coupling.c) on G maps: x, y (G, C, H, W), c (G, P) the scaled
 * conditions. tape: h1, h2, o of the forward pass, (2 Hd + C) * H * W floats per map, laid out
 * [h1 (G, Hd, HW) | h2 (G, Hd, HW) | o (G, C, HW)]; NULL in fwd = not kept (uses scratch).
 * logdet (G doubles) accumulates; y may equal x. bwd: dx overwritten, g = d loss / d logdet. */
size_t kcu_coupling_scratch(int C, int P, int Hd, int H, int W, int G);
int kcu_coupling_layer_fwd(float *y, double *logdet, const float *x, const float *c, const kcu_net *p, int C, int P,
                           int Hd, int H, int W, int G, float clamp, float *tape, float *scratch);
int kcu_coupling_layer_inv(float *x, const float *y, const float *c, const kcu_net *p, int C, int P, int Hd, int H,
                           int W, int G, float clamp, float *scratch);
int kcu_coupling_layer_bwd(float *dx, const kcu_net_grad *gr, const float *dy, const float *x, float g,
                           const float *c, const kcu_net *p, int C, int P, int Hd, int H, int W, int G, float clamp,
                           const float *tape, float *scratch);

/* Injector layer (src/model/injector.c): its CNN runs on the reduced min(H,5) x min(W,5) map of
 * the broadcast condition (exact: see injector.c), then y = x exp(ls) + bias per border class.
 * bwd recomputes the CNN (as the CPU does). */
size_t kcu_injector_scratch(int C, int P, int Hd, int H, int W, int G);
int kcu_injector_layer_fwd(float *y, double *logdet, const float *x, const float *c, const kcu_net *p, int C, int P,
                           int Hd, int H, int W, int G, float *scratch);
int kcu_injector_layer_inv(float *x, const float *y, const float *c, const kcu_net *p, int C, int P, int Hd, int H,
                           int W, int G, float *scratch);
int kcu_injector_layer_bwd(float *dx, const kcu_net_grad *gr, const float *dy, const float *x, float g,
                           const float *c, const kcu_net *p, int C, int P, int Hd, int H, int W, int G,
                           float *scratch);

/* Invertible 1x1 convolution (src/model/invconv.c): y = W x at every pixel (W, W^-1 (C, C) built
 * on the host from the LU parameters and uploaded), logdet[g] += ld (= H*W*sum(log_s), computed on
 * the host). bwd: dW += sum_g dy x^T (feeds invconv_weight_grad), dx = W^T dy. y must not alias x. */
int kcu_invconv_fwd(float *y, double *logdet, double ld, const float *x, const float *w, int C, int HW, int G,
                    float *scratch);
int kcu_invconv_inv(float *x, const float *y, const float *winv, int C, int HW, int G, float *scratch);
int kcu_invconv_bwd(float *dx, float *dw, const float *dy, const float *x, const float *w, int C, int HW, int G,
                    float *scratch);
/* v[g] += a for g < G (device doubles). */
int kcu_add_scalar_d(double *v, double a, int G);

/* Conditional prior (src/model/prior.c): mean and logvar are MLPs of c (G, P):
 * fc3(relu(fc2(relu(fc1 c)))), fc1 (Hc, P), fc2 (Hc, Hc), fc3 (D, Hc); logvar clamped to [-3, 5]
 * straight-through. logp[g] += log N(z_g; mean, exp(logvar)); z has row stride zs. bwd: dz
 * overwritten (stride zs), gradients accumulate. (Learned prior: kcu_prior_logp/bwd with ms = 0
 * and kcu_sum_rows for the gradients.) */
typedef struct { const float *w1, *b1, *w2, *b2, *w3, *b3; } kcu_mlp;
typedef struct { float *w1, *b1, *w2, *b2, *w3, *b3; } kcu_mlp_grad;
size_t kcu_prior_scratch(int P, int Hc, int D, int G);
int kcu_prior_layer_logp(double *logp, const float *z, int zs, const float *c, const kcu_mlp *mean,
                         const kcu_mlp *logvar, int P, int Hc, int D, int G, float *scratch);
int kcu_prior_layer_bwd(float *dz, const kcu_mlp_grad *gmean, const kcu_mlp_grad *glogvar, const float *z, int zs,
                        float g, const float *c, const kcu_mlp *mean, const kcu_mlp *logvar, int P, int Hc, int D,
                        int G, float *scratch);

/* ---------------------------------------------------------------- whole-model helpers (flowdev.cu) */
/* One flow step's invertible 1x1 convolution: offsets (in floats) of its LU tensors in the
 * parameter buffer, and of its C x C weight in the W cache (src/model/model.h's step_offsets). */
typedef struct { long long perm, lower, upper, log_s, sign, wc; int C, pad_; } kcu_lu_step;
/* W = P (L + I) (U + diag(sign exp(log_s))) of every step, in double, rounded to float (the
 * arithmetic of invconv_weight). steps: a DEVICE array; work: DEVICE doubles, as many as W has. */
int kcu_lu_weights(float *w, const float *params, const kcu_lu_step *steps, int nsteps, double *work);
/* grads (lower, upper, log_s) += the chain rule of dw = dL/dW of every step (invconv_weight_grad). */
int kcu_lu_weight_grad(float *grads, const float *params, const float *dw, const kcu_lu_step *steps, int nsteps,
                       double *work);
/* v[g] += scale * sum(x[0..n)) for g < G (the invconv's log-determinant H*W*sum(log_s)). */
int kcu_add_sum_d(double *v, const float *x, int n, double scale, int G);
/* x[i] += a */
int kcu_add_const(float *x, float a, size_t n);
/* *out = sum of n device doubles (one block, fixed order). */
int kcu_sum_d(double *out, const double *x, int n);
/* *out = sum of squares of x, over nparts blocks (partial sums in parts, nparts doubles), then
 * summed in a fixed order: deterministic, and not limited to one block like kcu_sumsq. */
int kcu_sumsq_parts(double *out, double *parts, int nparts, const float *x, size_t n);

#ifdef __cplusplus
}
#endif
#endif
