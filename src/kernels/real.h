/* The engine's scalar type. The library is built twice: float32 for use, and float64
 * (-DCGLOW_DOUBLE) so that the tests can check gradients by finite differences. */
#ifndef CGLOW_REAL_H
#define CGLOW_REAL_H
#include <cblas.h>
#include <math.h>
#include <string.h>

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
static inline real exp_r(real x) { return exp(x); }
#else
/* expf without a library call, so that loops over it vectorise (libm's expf is a call per
 * element): Cephes' range reduction x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial, and 2^n
 * put into the exponent bits. Within 2 ulp of expf on [-87, 88]; clamped outside (no inf/0
 * surprises: exp(-87) ~ 1.6e-38 is the smallest normal). */
static inline float exp_r(float x)
{
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   /* round to nearest */
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* 2^n: n + 127 in the exponent field; n in [-126, 128) after the clamp, but 2^127 * p can
     * exceed the float range only above x = 88.7 */
    const int e = ((int)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}
#endif
static inline real sigmoid_r(real x) { return 1 / (1 + exp_r(-x)); }
static inline real clamp_r(real x, real lo, real hi) { return x < lo ? lo : x > hi ? hi : x; }

/* The statements after W with WC a compile-time constant equal to W for the narrow widths of the
 * deep blocks' rows (1, 2, 4, 5 (the injector's border classes), 8): loops over a row's few pixels
 * then compile to straight moves instead of a counted loop. Any other W runs them as they are. */
#define WIDTH_SWITCH(W, ...)                                                                         \
    switch (W) {                                                                                     \
    case 1: { enum { WC = 1 }; __VA_ARGS__; } break;                                                \
    case 2: { enum { WC = 2 }; __VA_ARGS__; } break;                                                \
    case 4: { enum { WC = 4 }; __VA_ARGS__; } break;                                                \
    case 5: { enum { WC = 5 }; __VA_ARGS__; } break;                                                \
    case 8: { enum { WC = 8 }; __VA_ARGS__; } break;                                                \
    default: { const int WC = (W); __VA_ARGS__; } break;                                             \
    }
#endif
