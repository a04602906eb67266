/* The padded-plane convolution kernels (kernels.h) against direct formulas, in float64: forward
 * (with and without ReLU, pad 0 and 1), the weight, bias and input gradients, on the three paths
 * the kernels take (planes with a border, compact im2col columns for maps of at most 4x4 pixels,
 * the centre tap for 1x1 maps), square and non-square maps, one map and several. The inputs are
 * multiples of 2^-15, so that every sum is exact in double: any error is a wrong index or tap. */
#include "kernels/kernels.h"
#include "test.h"

static double urand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xffff) / 32768.0 - 1.0;
}

static void fill(real *a, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) a[i] = urand(&seed);
}

/* the value of input channel ci of map g at (y, x), or pad outside the map */
static double at(const real *in, int g, int ci, int y, int x, int Cin, int H, int W, double pad)
{
    if (y < 0 || y >= H || x < 0 || x >= W) return pad;
    return in[(((size_t)g * Cin + ci) * H + y) * W + x];
}

/* interior of planes -> compact (G, C, H, W) */
static void from_planes(real *out, const real *planes, int C, int H, int W, int G)
{
    const size_t PL = k_plane_size(H, W, G), org = k_plane_origin(H, W), MP = k_plane_map(H, W);
    const int Wr = k_plane_row(H, W);
    for (int g = 0; g < G; g++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    out[(((size_t)g * C + c) * H + y) * W + x] = planes[c * PL + org + g * MP + (size_t)y * Wr + x];
}

static double max_rel(const real *a, const double *b, size_t n)
{
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs(a[i] - b[i]));
        s = fmax(s, fabs(b[i]));
    }
    return e / fmax(s, 1e-30);
}

static void check_shape(int H, int W, int G, int Cin, int Cout, double pad, int relu)
{
    const size_t HW = (size_t)H * W, nin = (size_t)G * Cin * HW, nout = (size_t)G * Cout * HW;
    const size_t PL = k_plane_size(H, W, G);
    real *in = malloc(sizeof(real) * nin), *w = malloc(sizeof(real) * Cout * Cin * 9), *b = malloc(sizeof(real) * Cout);
    real *dout = malloc(sizeof(real) * nout), *w1 = malloc(sizeof(real) * Cout * Cin);
    real *inP = malloc(sizeof(real) * PL * Cin), *outP = malloc(sizeof(real) * PL * Cout);
    real *doutP = malloc(sizeof(real) * PL * Cout), *dinP = malloc(sizeof(real) * PL * Cin);
    real *out = malloc(sizeof(real) * nout), *din = malloc(sizeof(real) * nin);
    real *dw = calloc((size_t)Cout * Cin * 9, sizeof(real)), *db = calloc(Cout, sizeof(real));
    real *scr = malloc(sizeof(real) * k_conv_planes_scratch(Cin, Cout, H, W, G) * 2);
    double *ref = malloc(sizeof(double) * (nout + nin + (size_t)Cout * Cin * 9 + Cout));
    fill(in, nin, 1 + H * 7 + W);
    fill(w, (size_t)Cout * Cin * 9, 2 + G);
    fill(b, Cout, 3);
    fill(dout, nout, 4 + Cin);
    fill(w1, (size_t)Cout * Cin, 5);

    /* 3x3 forward */
    k_to_planes(inP, in, Cin, H, W, G, (size_t)Cin * HW, (real)pad);
    k_conv3x3_planes(outP, inP, w, b, Cin, Cout, H, W, G, (real)pad, relu, scr);
    from_planes(out, outP, Cout, H, W, G);
    for (int g = 0; g < G; g++)
        for (int o = 0; o < Cout; o++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    double s = b[o];
                    for (int ci = 0; ci < Cin; ci++)
                        for (int t = 0; t < 9; t++)
                            s += w[((size_t)o * Cin + ci) * 9 + t] * at(in, g, ci, y + t / 3 - 1, x + t % 3 - 1, Cin, H, W, pad);
                    ref[(((size_t)g * Cout + o) * H + y) * W + x] = relu && s < 0 ? 0 : s;
                }
    const double e_fwd = max_rel(out, ref, nout);

    /* 3x3 backward (dout with a zero border; in's border = pad, as in the forward) */
    k_to_planes(doutP, dout, Cout, H, W, G, (size_t)Cout * HW, 0);
    k_conv3x3_planes_bwd(dinP, dw, db, doutP, inP, w, Cin, Cout, H, W, G, (real)pad, scr);
    from_planes(din, dinP, Cin, H, W, G);
    double *rdin = ref, *rdw = ref + nin, *rdb = rdw + (size_t)Cout * Cin * 9;
    for (size_t i = 0; i < nin + (size_t)Cout * Cin * 9 + Cout; i++) ref[i] = 0;
    for (int g = 0; g < G; g++)
        for (int o = 0; o < Cout; o++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    const double d = dout[(((size_t)g * Cout + o) * H + y) * W + x];
                    rdb[o] += d;
                    for (int ci = 0; ci < Cin; ci++)
                        for (int t = 0; t < 9; t++) {
                            const int yy = y + t / 3 - 1, xx = x + t % 3 - 1;
                            rdw[((size_t)o * Cin + ci) * 9 + t] += d * at(in, g, ci, yy, xx, Cin, H, W, pad);
                            if (yy >= 0 && yy < H && xx >= 0 && xx < W)
                                rdin[(((size_t)g * Cin + ci) * H + yy) * W + xx] += d * w[((size_t)o * Cin + ci) * 9 + t];
                        }
                }
    const double e_din = max_rel(din, rdin, nin), e_dw = max_rel(dw, rdw, (size_t)Cout * Cin * 9);
    const double e_db = max_rel(db, rdb, Cout);

    /* 1x1 forward and backward */
    k_conv1x1_planes(outP, inP, w1, b, Cin, Cout, H, W, G, relu);
    from_planes(out, outP, Cout, H, W, G);
    for (int g = 0; g < G; g++)
        for (int o = 0; o < Cout; o++)
            for (size_t p = 0; p < HW; p++) {
                double s = b[o];
                for (int ci = 0; ci < Cin; ci++) s += w1[o * Cin + ci] * in[((size_t)g * Cin + ci) * HW + p];
                ref[((size_t)g * Cout + o) * HW + p] = relu && s < 0 ? 0 : s;
            }
    const double e_fwd1 = max_rel(out, ref, nout);
    memset(dw, 0, sizeof(real) * Cout * Cin);
    memset(db, 0, sizeof(real) * Cout);
    k_conv1x1_planes_bwd(dinP, dw, db, doutP, inP, w1, Cin, Cout, H, W, G, scr);
    from_planes(din, dinP, Cin, H, W, G);
    for (size_t i = 0; i < nin + (size_t)Cout * Cin + Cout; i++) ref[i] = 0;
    rdw = ref + nin;
    rdb = rdw + (size_t)Cout * Cin;
    for (int g = 0; g < G; g++)
        for (int o = 0; o < Cout; o++)
            for (size_t p = 0; p < HW; p++) {
                const double d = dout[((size_t)g * Cout + o) * HW + p];
                rdb[o] += d;
                for (int ci = 0; ci < Cin; ci++) {
                    rdw[o * Cin + ci] += d * in[((size_t)g * Cin + ci) * HW + p];
                    rdin[((size_t)g * Cin + ci) * HW + p] += d * w1[o * Cin + ci];
                }
            }
    const double e1_din = max_rel(din, rdin, nin), e1_dw = max_rel(dw, rdw, (size_t)Cout * Cin);
    const double e1_db = max_rel(db, rdb, Cout);

    printf("  %dx%d G=%d %d->%d pad %g relu %d: 3x3 fwd %.1e din %.1e dw %.1e db %.1e | 1x1 fwd %.1e din %.1e dw "
           "%.1e db %.1e\n",
           H, W, G, Cin, Cout, pad, relu, e_fwd, e_din, e_dw, e_db, e_fwd1, e1_din, e1_dw, e1_db);
    const double tol = 1e-12;
    CHECK(e_fwd < tol && e_din < tol && e_dw < tol && e_db < tol, "3x3 kernels disagree with the direct formulas");
    CHECK(e_fwd1 < tol && e1_din < tol && e1_dw < tol && e1_db < tol, "1x1 kernels disagree with the direct formulas");
    free(in); free(w); free(b); free(dout); free(w1); free(inP); free(outP); free(doutP); free(dinP);
    free(out); free(din); free(dw); free(db); free(scr); free(ref);
}

/* planes with a border (maps larger than 4x4): one map, a group, non-square */
static void test_planes_bordered(void)
{
    check_shape(8, 8, 1, 3, 5, 0, 0);
    check_shape(8, 8, 3, 5, 4, 1, 1);
    check_shape(5, 7, 2, 2, 6, 0, 1);
    check_shape(9, 6, 3, 4, 3, 1, 0);
    check_shape(8, 8, 2, 3, 10, 0, 1);   /* 6 + 4 output rows */
    check_shape(6, 6, 2, 4, 12, 1, 0);   /* 6 + 6 */
    check_shape(16, 16, 1, 2, 16, 0, 1); /* 6 + 6 + 4, as the preset's conv1 */
}

/* compact im2col columns (at most 4x4 pixels, and 1 x n strips) */
static void test_planes_columns(void)
{
    check_shape(4, 4, 3, 5, 7, 1, 0);
    check_shape(2, 2, 5, 6, 4, 0, 1);
    check_shape(3, 5, 2, 3, 3, 1, 1);
    check_shape(1, 4, 4, 2, 5, 0, 0);
    check_shape(2, 1, 3, 3, 2, 1, 0);
    check_shape(4, 4, 8, 3, 16, 1, 1);
}

/* 1x1 maps: the centre tap plus the padding's constant */
static void test_planes_centre(void)
{
    check_shape(1, 1, 1, 4, 3, 1, 0);
    check_shape(1, 1, 7, 5, 6, 0, 1);
    check_shape(1, 1, 20, 3, 9, 1, 1);
}

int main(void)
{
    RUN(test_planes_bordered);
    RUN(test_planes_columns);
    RUN(test_planes_centre);
    return t_fail != 0;
}
