/* The few primitives the flow's layers use. Each works on ONE map (the engine parallelises
 * over maps), row-major, channels first. A backend (cpu/, cuda/) implements this interface.
 *
 * conv3x3: "same" 3x3 convolution, stride 1, with the border padded by the constant `pad`
 * (0 for ordinary zero padding, 1 for the spec's zeroconv). w is (Cout, Cin, 3, 3).
 * col is scratch of k_conv3x3_col_size(Cin, Cout, H, W) elements (forward or backward). */
#ifndef CGLOW_KERNELS_H
#define CGLOW_KERNELS_H
#include "kernels/real.h"
#include <stddef.h>

size_t k_conv3x3_col_size(int Cin, int Cout, int H, int W);
void k_conv3x3_fwd(real *out, const real *in, const real *w, const real *b, int Cin, int Cout, int H, int W,
                   real pad, real *col);
/* Accumulates dw (+=), db (+=, may be NULL); din (may be NULL) is overwritten. in is the forward
 * input; dout is (Cout, H, W). */
void k_conv3x3_bwd(real *din, real *dw, real *db, const real *dout, const real *in, const real *w, int Cin,
                   int Cout, int H, int W, real pad, real *col);

/* conv1x1: out (Cout, HW) = w (Cout, Cin) in (Cin, HW) + b. */
void k_conv1x1_fwd(real *out, const real *in, const real *w, const real *b, int Cin, int Cout, int HW);
void k_conv1x1_bwd(real *din, real *dw, real *db, const real *dout, const real *in, const real *w, int Cin,
                   int Cout, int HW);

/* y = max(y, 0) in place; dy *= (y > 0) given the forward output y. */
void k_relu(real *y, size_t n);
void k_relu_bwd(real *dy, const real *y, size_t n);

/* Dense: out (M) = W (M x K) in (K) + b; backward accumulates dW += dout in^T, db += dout, and
 * overwrites din = W^T dout (din may be NULL). */
void k_linear_fwd(real *out, const real *in, const real *W, const real *b, int M, int K);
void k_linear_bwd(real *din, real *dW, real *db, const real *dout, const real *in, const real *W, int M, int K);
#endif
