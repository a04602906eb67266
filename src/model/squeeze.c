/* 2x2 space-to-depth: out[c*4 + dy*2 + dx, i, j] = in[c, 2i + dy, 2j + dx].
 * Its backward is its inverse (a permutation). */
#include "model/model.h"

void squeeze_fwd(real *out, const real *in, int C, int H, int W)
{
    const int h = H / 2, w = W / 2;
    for (int c = 0; c < C; c++)
        for (int dy = 0; dy < 2; dy++)
            for (int dx = 0; dx < 2; dx++) {
                real *o = out + (size_t)(c * 4 + dy * 2 + dx) * h * w;
                for (int i = 0; i < h; i++) {
                    const real *src = in + ((size_t)c * H + 2 * i + dy) * W + dx;
                    for (int j = 0; j < w; j++) o[i * w + j] = src[2 * j];
                }
            }
}

void squeeze_inv(real *out, const real *in, int C, int H, int W)
{
    const int h = H / 2, w = W / 2;
    for (int c = 0; c < C; c++)
        for (int dy = 0; dy < 2; dy++)
            for (int dx = 0; dx < 2; dx++) {
                const real *s = in + (size_t)(c * 4 + dy * 2 + dx) * h * w;
                for (int i = 0; i < h; i++) {
                    real *dst = out + ((size_t)c * H + 2 * i + dy) * W + dx;
                    for (int j = 0; j < w; j++) dst[2 * j] = s[i * w + j];
                }
            }
}
