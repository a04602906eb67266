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

/* ---- Padded planes: the layout in which a chain of convolutions passes activations without
 * copies. A tensor of C channels for G maps is, per channel, a plane of k_plane_size(H, W, G)
 * elements: the G maps side by side, each (H+2) x (W+2) with a one-pixel border, then slack.
 * Pixel (y, x) of map g, channel c sits at
 *     c * PL + k_plane_origin(H, W) + g * (H+2)(W+2) + y * (W+2) + x.
 * A 3x3 convolution reads the 9 shifted views of each input plane and writes every position of
 * its output plane's interior span, so that the next convolution can read it in place; only the
 * border has to be reset (k_plane_border) to the padding value the next convolution expects
 * (0, or 1 for a zeroconv), or to 0 in a gradient plane before a weight gradient.
 * Maps of 1x1 pixels have no border (of the 9 taps only the centre sees the map): origin 0, one
 * element per map, and the 3x3 convolutions use the centre tap plus the padding's constant. */
size_t k_plane_size(int H, int W, int G);
size_t k_plane_origin(int H, int W);
/* Map g's offset from the origin, and the stride between rows. */
size_t k_plane_map(int H, int W);
int k_plane_row(int H, int W);
/* An upper bound of k_plane_size(H, W, G) / G for every G >= 1 (for per-map tape budgets). */
size_t k_plane_map_bound(int H, int W);
/* planes (C, PL) from in: map g's channel c at in + g * map_stride + c * H * W; border = pad. */
void k_to_planes(real *planes, const real *in, int C, int H, int W, int G, size_t map_stride, real pad);
void k_plane_border(real *planes, int C, int H, int W, int G, real pad);
/* dy = dy where y > 0, else 0, on planes, and 0 on their border (ReLU's backward and the border
 * reset of a gradient plane in one pass). */
void k_relu_bwd_planes(real *dy, const real *y, int C, int H, int W, int G);
/* Scratch of the plane convolutions (weights flipped or reduced to the centre tap). */
size_t k_conv_planes_scratch(int Cin, int Cout, int H, int W, int G);
/* out planes (Cout) = conv3x3(in planes (Cin), border as set) + b, then max(., 0) when relu;
 * pad is the border's value, needed only for 1x1 maps. out's border is left undefined. */
void k_conv3x3_planes(real *out, const real *in, const real *w, const real *b, int Cin, int Cout, int H, int W, int G,
                      real pad, int relu, real *scratch);
void k_conv1x1_planes(real *out, const real *in, const real *w, const real *b, int Cin, int Cout, int H, int W, int G,
                      int relu);
/* The same in two halves, so that the weights' preparation (once per parameter change) leaves
 * the maps' loop: wp (k_conv3x3_prepared_size) = w * scale[out channel] (scale may be NULL),
 * reduced to the centre tap for 1x1 maps, then the bias likewise (with the padding's constant). */
size_t k_conv3x3_prepared_size(int Cin, int Cout, int H, int W);
void k_conv3x3_prepare(real *wp, const real *w, const real *b, const real *scale, int Cin, int Cout, int H, int W,
                       real pad);
void k_conv3x3_planes_prepared(real *out, const real *in, const real *wp, int Cin, int Cout, int H, int W, int G,
                               int relu, real *scratch);
/* Backward: dout planes with a zero border; in as in the forward (its border = pad). dw, db
 * accumulate; din (may be NULL) receives planes with an undefined border. */
void k_conv3x3_planes_bwd(real *din, real *dw, real *db, const real *dout, const real *in, const real *w, int Cin,
                          int Cout, int H, int W, int G, real pad, real *scratch);
void k_conv1x1_planes_bwd(real *din, real *dw, real *db, const real *dout, const real *in, const real *w, int Cin,
                          int Cout, int H, int W, int G, real *scratch);

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
