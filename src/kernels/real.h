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

#ifdef CGLOW_DOUBLE
static inline real sigmoid_r(real x) { return 1 / (1 + exp(-x)); }
#else
static inline real sigmoid_r(real x) { return 1.0f / (1.0f + expf(-x)); }
#endif
static inline real clamp_r(real x, real lo, real hi) { return x < lo ? lo : x > hi ? hi : x; }
#endif
