/* Per-map symmetries of periodic, isotropic maps (model.md 1.4): roll, flips, quarter turns.
 * An op is a bijection of pixel positions, so the inverse is the same map read the other way. */
#include "cglow.h"
#include "util/rng.h"

void cglow_augment_draw(uint64_t seed, uint64_t stream, int h, int w, cglow_augment_op *op)
{
    rng_t r;
    rng_seed2(&r, seed, stream);
    op->roll_y = (int)rng_below(&r, (uint64_t)h);
    op->roll_x = (int)rng_below(&r, (uint64_t)w);
    op->flip_y = (int)rng_below(&r, 2);
    op->flip_x = (int)rng_below(&r, 2);
    op->rot = (int)rng_below(&r, 4);
    if (h != w) op->rot &= 2;   /* a quarter turn of a non-square map changes its shape */
}

/* Source position in `in` of output pixel (i, j): out = rot(flip(roll(in))). */
static inline size_t source(const cglow_augment_op *op, int i, int j, int h, int w)
{
    int a = i, b = j, t;
    switch (op->rot & 3) {   /* np.rot90 counter-clockwise: out[i][j] = in[j][n-1-i] */
    case 1: t = a; a = b; b = w - 1 - t; break;
    case 2: a = h - 1 - a; b = w - 1 - b; break;
    case 3: t = a; a = h - 1 - b; b = t; break;
    default: break;
    }
    if (op->flip_y) a = h - 1 - a;
    if (op->flip_x) b = w - 1 - b;
    a = (a - op->roll_y % h + h) % h;
    b = (b - op->roll_x % w + w) % w;
    return (size_t)a * w + b;
}

void cglow_augment_apply(const cglow_augment_op *op, const float *in, float *out, int h, int w, int inverse)
{
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            size_t s = source(op, i, j, h, w), d = (size_t)i * w + j;
            if (inverse) out[s] = in[d];
            else out[d] = in[s];
        }
}
