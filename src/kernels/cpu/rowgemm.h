/* Two register-tiled kernels that every convolution of the engine reduces to (one map at a time):
 *
 *   rows_combine: out[o][p] = bias[o] + sum_t w[o*ldw + t] * src[t][p]      (p < n)
 *   rows_correlate: dw[o*ldw + t] += sum_p dout[o][p] * src[t][p]          (p < n)
 *
 * src is a list of K row pointers: for a 1x1 convolution the input channels, for a 3x3
 * convolution the 9 shifted views of each padded input plane (no im2col copy). The tiles are
 * written with GCC vector extensions so that the compiler emits full-width FMAs (AVX-512 or AVX2
 * with -march=native) whatever BLAS the machine has; with hidden width 16 the matrices are too
 * small for BLAS to pay. */
#ifndef CGLOW_ROWGEMM_H
#define CGLOW_ROWGEMM_H
#include "kernels/real.h"
#include <stddef.h>

void rows_combine(real *out, size_t ldo, int O, const real *w, size_t ldw, const real *bias, const real *const *src,
                  int K, size_t n);
/* rows_combine followed by max(out, 0) */
void rows_combine_relu(real *out, size_t ldo, int O, const real *w, size_t ldw, const real *bias,
                       const real *const *src, int K, size_t n);
void rows_correlate(real *dw, size_t ldw, int O, const real *dout, size_t ldd, const real *const *src, int K, size_t n);
/* rows_correlate on rows at a constant stride (x row t at x + t*ldx): through BLAS's GEMM for
 * short rows (n <= 128 positions: the deep blocks' maps), where the register tiles' horizontal
 * sums dominate (7-22 flop/cycle there against 36-51 for OpenBLAS's sgemm on one core). */
void mat_correlate(real *dw, size_t ldw, int O, const real *dout, size_t ldd, const real *x, size_t ldx, int K, size_t n);
#endif
