/* The few primitives the flow's layers use. Each works on a group of G maps held by one thread
 * (the engine parallelises over groups), tensors laid out (G, C, H, W), row-major. A backend
 * (cpu/, cuda/) implements this interface.
 *
 * Grouping maps matters for the deep blocks: at 4x4 .. 1x1 pixels a single map gives the
 * kernels rows of a few elements; G maps side by side give them rows long enough to vectorise.
 *
 * conv3x3: "same" 3x3 convolution, stride 1, with the border padded by the constant `pad`
 * (0 for ordinary zero padding, 1 for the spec's zeroconv). w is (Cout, Cin, 3, 3).
 * scratch: k_conv3x3_scratch(...) elements (enough for forward or backward). */
#ifndef CGLOW_KERNELS_H
#define CGLOW_KERNELS_H
#include "kernels/real.h"
#include <stddef.h>

size_t k_conv3x3_scratch(int Cin, int Cout, int H, int W, int G);
void k_conv3x3_fwd(real *out, const real *in, const real *w, const real *b, int Cin, int Cout, int H, int W, int G,
                   real pad, real *scratch);
/* Accumulates dw (+=), db (+=, may be NULL); din (may be NULL) is overwritten. in is the forward
 * input; dout is (G, Cout, H, W). */
void k_conv3x3_bwd(real *din, real *dw, real *db, const real *dout, const real *in, const real *w, int Cin,
                   int Cout, int H, int W, int G, real pad, real *scratch);

/* conv1x1 (also the invertible 1x1 convolution, b = NULL): out (G, Cout, HW) = w (Cout, Cin) in + b. */
size_t k_conv1x1_scratch(int Cin, int Cout, int HW, int G);
void k_conv1x1_fwd(real *out, const real *in, const real *w, const real *b, int Cin, int Cout, int HW, int G,
                   real *scratch);
void k_conv1x1_bwd(real *din, real *dw, real *db, const real *dout, const real *in, const real *w, int Cin,
                   int Cout, int HW, int G, real *scratch);

/* y = max(y, 0) in place; dy *= (y > 0) given the forward output y. */
void k_relu(real *y, size_t n);
void k_relu_bwd(real *dy, const real *y, size_t n);

/* Dense: out (M) = W (M x K) in (K) + b; backward accumulates dW += dout in^T, db += dout, and
 * overwrites din = W^T dout (din may be NULL). */
void k_linear_fwd(real *out, const real *in, const real *W, const real *b, int M, int K);
void k_linear_bwd(real *din, real *dW, real *db, const real *dout, const real *in, const real *W, int M, int K);
#endif
