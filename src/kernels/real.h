/* The engine's scalar type. The library is built twice: float32 for use, and float64
 * (-DCGLOW_DOUBLE) so that the tests can check gradients by finite differences. */
#ifndef CGLOW_REAL_H
#define CGLOW_REAL_H
#include <cblas.h>
#include <math.h>

#ifdef CGLOW_DOUBLE
typedef double real;
#define cblas_xgemm cblas_dgemm
#define cblas_xgemv cblas_dgemv
#define REAL_NAME "float64"
#else
typedef float real;
#define cblas_xgemm cblas_sgemm
#define cblas_xgemv cblas_sgemv
#define REAL_NAME "float32"
#endif

static inline real sigmoid_r(real x) { return (real)1 / ((real)1 + (real)exp(-(double)x)); }
static inline real clamp_r(real x, real lo, real hi) { return x < lo ? lo : x > hi ? hi : x; }
#endif
