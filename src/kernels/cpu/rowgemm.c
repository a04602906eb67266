#include "kernels/cpu/rowgemm.h"
#include <stdlib.h>
#include <string.h>

#define VBYTES 64
typedef real vr __attribute__((vector_size(VBYTES), aligned(sizeof(real)), may_alias));
#define VL ((int)(VBYTES / sizeof(real)))
#define OB 4   /* output rows per tile */

static inline vr vload(const real *p) { return *(const vr *)p; }
static inline void vstore(real *p, vr v) { *(vr *)p = v; }
static inline vr vsplat(real x) { return (vr){0} + x; }
#ifdef CGLOW_DOUBLE
typedef long long vmask __attribute__((vector_size(VBYTES)));
#else
typedef int vmask __attribute__((vector_size(VBYTES)));
#endif
/* max(v, 0) in registers (NaN -> 0, as the scalar ReLU): the comparison's mask ANDed with the bits */
static inline vr vrelu(vr v) { return (vr)((vmask)v & (vmask)(v > 0)); }
/* the store of a tile: with relu = 1 (a constant where the tile is inlined) through vrelu */
static inline void vstore_act(real *p, vr v, int relu) { vstore(p, relu ? vrelu(v) : v); }

/* One tile: OB output rows x 4 vectors at column soff of src. Per tap: 4 vector loads and 4
 * weight broadcasts feed 16 FMAs (the loads, not the FMAs, bound these small convolutions). */
static inline void combine_tile4x4(real *out, size_t ldo, const real *w0, size_t ldw, const real *b,
                                   const real *const *src, size_t soff, int K, int relu)
{
    const real *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
    vr a00 = vsplat(b[0]), a01 = a00, a02 = a00, a03 = a00, a10 = vsplat(b[1]), a11 = a10, a12 = a10, a13 = a10;
    vr a20 = vsplat(b[2]), a21 = a20, a22 = a20, a23 = a20, a30 = vsplat(b[3]), a31 = a30, a32 = a30, a33 = a30;
    for (int t = 0; t < K; t++) {
        const real *s = src[t] + soff;
        const vr s0 = vload(s), s1 = vload(s + VL), s2 = vload(s + 2 * VL), s3 = vload(s + 3 * VL);
        const real c0 = w0[t], c1 = w1[t], c2 = w2[t], c3 = w3[t];
        a00 += c0 * s0; a01 += c0 * s1; a02 += c0 * s2; a03 += c0 * s3;
        a10 += c1 * s0; a11 += c1 * s1; a12 += c1 * s2; a13 += c1 * s3;
        a20 += c2 * s0; a21 += c2 * s1; a22 += c2 * s2; a23 += c2 * s3;
        a30 += c3 * s0; a31 += c3 * s1; a32 += c3 * s2; a33 += c3 * s3;
    }
    vstore_act(out, a00, relu); vstore_act(out + VL, a01, relu);
    vstore_act(out + 2 * VL, a02, relu); vstore_act(out + 3 * VL, a03, relu);
    out += ldo;
    vstore_act(out, a10, relu); vstore_act(out + VL, a11, relu);
    vstore_act(out + 2 * VL, a12, relu); vstore_act(out + 3 * VL, a13, relu);
    out += ldo;
    vstore_act(out, a20, relu); vstore_act(out + VL, a21, relu);
    vstore_act(out + 2 * VL, a22, relu); vstore_act(out + 3 * VL, a23, relu);
    out += ldo;
    vstore_act(out, a30, relu); vstore_act(out + VL, a31, relu);
    vstore_act(out + 2 * VL, a32, relu); vstore_act(out + 3 * VL, a33, relu);
}

/* 6 rows x 4 vectors: 24 accumulators, and per tap 4 loads and 6 broadcasts for 24 FMAs (the 4x4
 * tile: 4 and 4 for 16); the loads bound these convolutions. The 6 rows' weights come packed tap by
 * tap (wp[t*6 + j]): one pointer instead of six, which did not fit in the registers. */
static inline void combine_tile6x4(real *out, size_t ldo, const real *wp, const real *b, const real *const *src,
                                   size_t soff, int K, int relu)
{
    vr a00 = vsplat(b[0]), a01 = a00, a02 = a00, a03 = a00, a10 = vsplat(b[1]), a11 = a10, a12 = a10, a13 = a10;
    vr a20 = vsplat(b[2]), a21 = a20, a22 = a20, a23 = a20, a30 = vsplat(b[3]), a31 = a30, a32 = a30, a33 = a30;
    vr a40 = vsplat(b[4]), a41 = a40, a42 = a40, a43 = a40, a50 = vsplat(b[5]), a51 = a50, a52 = a50, a53 = a50;
    for (int t = 0; t < K; t++, wp += 6) {
        const real *s = src[t] + soff;
        const vr s0 = vload(s), s1 = vload(s + VL), s2 = vload(s + 2 * VL), s3 = vload(s + 3 * VL);
        real c = wp[0];
        a00 += c * s0; a01 += c * s1; a02 += c * s2; a03 += c * s3;
        c = wp[1];
        a10 += c * s0; a11 += c * s1; a12 += c * s2; a13 += c * s3;
        c = wp[2];
        a20 += c * s0; a21 += c * s1; a22 += c * s2; a23 += c * s3;
        c = wp[3];
        a30 += c * s0; a31 += c * s1; a32 += c * s2; a33 += c * s3;
        c = wp[4];
        a40 += c * s0; a41 += c * s1; a42 += c * s2; a43 += c * s3;
        c = wp[5];
        a50 += c * s0; a51 += c * s1; a52 += c * s2; a53 += c * s3;
    }
#define ROW(r, v0, v1, v2, v3)                                                                   \
    vstore_act(out + (r) * ldo, v0, relu); vstore_act(out + (r) * ldo + VL, v1, relu);           \
    vstore_act(out + (r) * ldo + 2 * VL, v2, relu); vstore_act(out + (r) * ldo + 3 * VL, v3, relu);
    ROW(0, a00, a01, a02, a03) ROW(1, a10, a11, a12, a13) ROW(2, a20, a21, a22, a23)
    ROW(3, a30, a31, a32, a33) ROW(4, a40, a41, a42, a43) ROW(5, a50, a51, a52, a53)
#undef ROW
}

/* 6 rows x 2 vectors and 6 rows x 1 vector: the columns left of a row after its 4-vector tiles,
 * with the 6-row blocks' packed weights (one row at a time reloaded the columns 6 times). */
static inline void combine_tile6x2(real *out, size_t ldo, const real *wp, const real *b, const real *const *src,
                                   size_t soff, int K, int relu)
{
    vr a00 = vsplat(b[0]), a01 = a00, a10 = vsplat(b[1]), a11 = a10, a20 = vsplat(b[2]), a21 = a20;
    vr a30 = vsplat(b[3]), a31 = a30, a40 = vsplat(b[4]), a41 = a40, a50 = vsplat(b[5]), a51 = a50;
    for (int t = 0; t < K; t++, wp += 6) {
        const real *s = src[t] + soff;
        const vr s0 = vload(s), s1 = vload(s + VL);
        a00 += wp[0] * s0; a01 += wp[0] * s1;
        a10 += wp[1] * s0; a11 += wp[1] * s1;
        a20 += wp[2] * s0; a21 += wp[2] * s1;
        a30 += wp[3] * s0; a31 += wp[3] * s1;
        a40 += wp[4] * s0; a41 += wp[4] * s1;
        a50 += wp[5] * s0; a51 += wp[5] * s1;
    }
    vstore_act(out, a00, relu); vstore_act(out + VL, a01, relu);
    vstore_act(out + ldo, a10, relu); vstore_act(out + ldo + VL, a11, relu);
    vstore_act(out + 2 * ldo, a20, relu); vstore_act(out + 2 * ldo + VL, a21, relu);
    vstore_act(out + 3 * ldo, a30, relu); vstore_act(out + 3 * ldo + VL, a31, relu);
    vstore_act(out + 4 * ldo, a40, relu); vstore_act(out + 4 * ldo + VL, a41, relu);
    vstore_act(out + 5 * ldo, a50, relu); vstore_act(out + 5 * ldo + VL, a51, relu);
}

static inline void combine_tile6x1(real *out, size_t ldo, const real *wp, const real *b, const real *const *src,
                                   size_t soff, int K, int relu)
{
    vr a0 = vsplat(b[0]), a1 = vsplat(b[1]), a2 = vsplat(b[2]), a3 = vsplat(b[3]), a4 = vsplat(b[4]), a5 = vsplat(b[5]);
    for (int t = 0; t < K; t++, wp += 6) {
        const vr s0 = vload(src[t] + soff);
        a0 += wp[0] * s0; a1 += wp[1] * s0; a2 += wp[2] * s0;
        a3 += wp[3] * s0; a4 += wp[4] * s0; a5 += wp[5] * s0;
    }
    vstore_act(out, a0, relu); vstore_act(out + ldo, a1, relu); vstore_act(out + 2 * ldo, a2, relu);
    vstore_act(out + 3 * ldo, a3, relu); vstore_act(out + 4 * ldo, a4, relu); vstore_act(out + 5 * ldo, a5, relu);
}

/* The same with 2 vectors (the remainder of a row). */
static inline void combine_tile4(real *out, size_t ldo, const real *w0, size_t ldw, const real *b, const real *const *src,
                                 size_t soff, int K)
{
    const real *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
    vr a00 = vsplat(b[0]), a01 = a00, a10 = vsplat(b[1]), a11 = a10;
    vr a20 = vsplat(b[2]), a21 = a20, a30 = vsplat(b[3]), a31 = a30;
    for (int t = 0; t < K; t++) {
        const real *s = src[t] + soff;
        const vr s0 = vload(s), s1 = vload(s + VL);
        a00 += w0[t] * s0; a01 += w0[t] * s1;
        a10 += w1[t] * s0; a11 += w1[t] * s1;
        a20 += w2[t] * s0; a21 += w2[t] * s1;
        a30 += w3[t] * s0; a31 += w3[t] * s1;
    }
    vstore(out, a00); vstore(out + VL, a01);
    vstore(out + ldo, a10); vstore(out + ldo + VL, a11);
    vstore(out + 2 * ldo, a20); vstore(out + 2 * ldo + VL, a21);
    vstore(out + 3 * ldo, a30); vstore(out + 3 * ldo + VL, a31);
}

/* 4 rows x 1 vector (rows of a few maps of 1x1 pixels). */
static inline void combine_tile4x1(real *out, size_t ldo, const real *w0, size_t ldw, const real *b,
                                   const real *const *src, size_t soff, int K)
{
    const real *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
    vr a0 = vsplat(b[0]), a1 = vsplat(b[1]), a2 = vsplat(b[2]), a3 = vsplat(b[3]);
    for (int t = 0; t < K; t++) {
        const vr s0 = vload(src[t] + soff);
        a0 += w0[t] * s0; a1 += w1[t] * s0; a2 += w2[t] * s0; a3 += w3[t] * s0;
    }
    vstore(out, a0); vstore(out + ldo, a1); vstore(out + 2 * ldo, a2); vstore(out + 3 * ldo, a3);
}

static inline void combine_tile1x1(real *out, const real *w0, real b, const real *const *src, size_t soff, int K)
{
    vr a0 = vsplat(b);
    for (int t = 0; t < K; t++) a0 += w0[t] * vload(src[t] + soff);
    vstore(out, a0);
}

/* 2 rows x 4 vectors: the remainder rows of an odd output count (the first block's input gradient
 * has 2 output channels), 4 loads and 2 broadcasts per 8 FMAs instead of 2 and 1 per 2. */
static inline void combine_tile2x4(real *out, size_t ldo, const real *w0, size_t ldw, const real *b,
                                   const real *const *src, size_t soff, int K)
{
    const real *w1 = w0 + ldw;
    vr a00 = vsplat(b[0]), a01 = a00, a02 = a00, a03 = a00, a10 = vsplat(b[1]), a11 = a10, a12 = a10, a13 = a10;
    for (int t = 0; t < K; t++) {
        const real *s = src[t] + soff;
        const vr s0 = vload(s), s1 = vload(s + VL), s2 = vload(s + 2 * VL), s3 = vload(s + 3 * VL);
        const real c0 = w0[t], c1 = w1[t];
        a00 += c0 * s0; a01 += c0 * s1; a02 += c0 * s2; a03 += c0 * s3;
        a10 += c1 * s0; a11 += c1 * s1; a12 += c1 * s2; a13 += c1 * s3;
    }
    vstore(out, a00); vstore(out + VL, a01); vstore(out + 2 * VL, a02); vstore(out + 3 * VL, a03);
    out += ldo;
    vstore(out, a10); vstore(out + VL, a11); vstore(out + 2 * VL, a12); vstore(out + 3 * VL, a13);
}

static inline void combine_tile1(real *out, const real *w0, real b, const real *const *src, size_t soff, int K)
{
    vr a0 = vsplat(b), a1 = a0;
    for (int t = 0; t < K; t++) {
        a0 += w0[t] * vload(src[t] + soff);
        a1 += w0[t] * vload(src[t] + soff + VL);
    }
    vstore(out, a0);
    vstore(out + VL, a1);
}

/* The last columns [p0, n) (fewer than one tile; all of them for the small maps of the deep
 * blocks): transposed into srcT[i][t] so that each output is a dot product over the K taps,
 * contiguous and vectorised. No allocation: the tile lives on the stack. */
static void transpose_tail(real *srcT, const real *const *src, int K, size_t p0, size_t m)
{
    for (int t = 0; t < K; t++)
        for (size_t i = 0; i < m; i++) srcT[i * (size_t)K + t] = src[t][p0 + i];
}

static void combine_tail(real *out, size_t ldo, int O, const real *w, size_t ldw, const real *bias, const real *const *src,
                         int K, size_t p0, size_t n)
{
    const size_t m = n - p0;
    real srcT[m * (size_t)K];
    transpose_tail(srcT, src, K, p0, m);
    for (int o = 0; o < O; o++) {
        const real *wo = w + (size_t)o * ldw;
        for (size_t i = 0; i < m; i++) {
            const real *x = srcT + i * (size_t)K;
            real acc = 0;
#pragma omp simd reduction(+ : acc)
            for (int t = 0; t < K; t++) acc += wo[t] * x[t];
            out[(size_t)o * ldo + p0 + i] = acc + (bias ? bias[o] : 0);
        }
    }
}

static void correlate_tail(real *dw, size_t ldw, int O, const real *dout, size_t ldd, const real *const *src, int K,
                           size_t p0, size_t n)
{
    const size_t m = n - p0;
    real srcT[m * (size_t)K];
    transpose_tail(srcT, src, K, p0, m);
    for (int o = 0; o < O; o++) {
        real *d = dw + (size_t)o * ldw;
        for (size_t i = 0; i < m; i++) {
            const real g = dout[(size_t)o * ldd + p0 + i];
            if (g == 0) continue;
            const real *x = srcT + i * (size_t)K;
#pragma omp simd
            for (int t = 0; t < K; t++) d[t] += g * x[t];
        }
    }
}

/* max(v, 0) on a just-stored tile row (still in L1): the ReLU that follows a convolution, without
 * another pass over the whole output. */
static inline void relu_span(real *p, int m)
{
    for (int i = 0; i < m; i++) p[i] = p[i] > 0 ? p[i] : 0;
}

/* One output row's columns [p0, n1) (n1 a whole number of vectors) by 2- and 1-vector tiles. */
static void combine_row(real *r, const real *wrow, real b, const real *const *src, int K, size_t p0, size_t n1,
                        int relu)
{
    const size_t n2 = n1 - (n1 - p0) % (size_t)(2 * VL);
    for (size_t p = p0; p < n2; p += 2 * VL) combine_tile1(r + p, wrow, b, src, p, K);
    if (n1 > n2) combine_tile1x1(r + n2, wrow, b, src, n2, K);
    if (relu && n1 > p0) relu_span(r + p0, (int)(n1 - p0));
}

/* Column chunks of the 4-vector tiles: every row block of a chunk runs before the next chunk, so
 * that the chunk's input columns (K rows of CHUNK values; the 3x3 views of a plane overlap) are
 * read from L1 by all the row blocks instead of streaming from L2 once per block. */
#define CHUNK (4 * 4 * VL)
#define PACKED_MAX 12288   /* floats of packed 6-row weights kept for a call (48 KB on the stack) */

static void combine(real *out, size_t ldo, int O, const real *w, size_t ldw, const real *bias, const real *const *src,
                    int K, size_t n, int relu)
{
    const size_t n4 = n - n % (size_t)(4 * VL), n2 = n - n % (size_t)(2 * VL), n1 = n - n % (size_t)VL;
    /* row blocks: of 6 while at least 4 rows remain after them (16 = 6 + 6 + 4), then of 4, of 2,
     * then single rows */
    int n6 = 0;
    while (6 * (n6 + 1) <= O && (O - 6 * (n6 + 1) == 0 || O - 6 * (n6 + 1) >= 4)) n6++;
    if (n4 == 0 || K > 4096 || (size_t)n6 * 6 * K > PACKED_MAX) n6 = 0;
    const int e6 = 6 * n6, e4 = e6 + (O - e6) / OB * OB, e2 = e4 + (O - e4) / 2 * 2;
    real wp[n6 ? (size_t)n6 * 6 * K : 1], bb[O];
    for (int o = 0; o < O; o++) bb[o] = bias ? bias[o] : 0;
    for (int j = 0; j < n6; j++)   /* each block's 6 rows packed tap by tap */
        for (int t = 0; t < K; t++)
            for (int r = 0; r < 6; r++) wp[((size_t)j * K + t) * 6 + r] = w[(size_t)(6 * j + r) * ldw + t];
    for (size_t c0 = 0; c0 < n4; c0 += CHUNK) {
        const size_t c1 = c0 + CHUNK < n4 ? c0 + CHUNK : n4;
        for (int j = 0; j < n6; j++) {
            real *orow = out + (size_t)6 * j * ldo;
            const real *pw = wp + (size_t)j * K * 6;
            if (relu)
                for (size_t p = c0; p < c1; p += 4 * VL) combine_tile6x4(orow + p, ldo, pw, bb + 6 * j, src, p, K, 1);
            else
                for (size_t p = c0; p < c1; p += 4 * VL) combine_tile6x4(orow + p, ldo, pw, bb + 6 * j, src, p, K, 0);
        }
        for (int o0 = e6; o0 < e4; o0 += OB) {
            real *orow = out + (size_t)o0 * ldo;
            const real *wrow = w + (size_t)o0 * ldw;
            if (relu)   /* two instances of the inlined tile: ReLU in registers, or none */
                for (size_t p = c0; p < c1; p += 4 * VL) combine_tile4x4(orow + p, ldo, wrow, ldw, bb + o0, src, p, K, 1);
            else
                for (size_t p = c0; p < c1; p += 4 * VL) combine_tile4x4(orow + p, ldo, wrow, ldw, bb + o0, src, p, K, 0);
        }
        for (int o0 = e4; o0 < e2; o0 += 2) {
            real *orow = out + (size_t)o0 * ldo;
            for (size_t p = c0; p < c1; p += 4 * VL) {
                combine_tile2x4(orow + p, ldo, w + (size_t)o0 * ldw, ldw, bb + o0, src, p, K);
                if (relu) for (int j = 0; j < 2; j++) relu_span(orow + j * ldo + p, 4 * VL);
            }
        }
        for (int o = e2; o < O; o++) combine_row(out + (size_t)o * ldo, w + (size_t)o * ldw, bb[o], src, K, c0, c1, relu);
    }
    /* the columns [n4, n1): fewer than 4 vectors */
    if (n1 > n4) {
        for (int j = 0; j < n6; j++) {
            real *orow = out + (size_t)6 * j * ldo;
            const real *pw = wp + (size_t)j * K * 6;
            if (n2 > n4) {
                if (relu) combine_tile6x2(orow + n4, ldo, pw, bb + 6 * j, src, n4, K, 1);
                else combine_tile6x2(orow + n4, ldo, pw, bb + 6 * j, src, n4, K, 0);
            }
            if (n1 > n2) {
                if (relu) combine_tile6x1(orow + n2, ldo, pw, bb + 6 * j, src, n2, K, 1);
                else combine_tile6x1(orow + n2, ldo, pw, bb + 6 * j, src, n2, K, 0);
            }
        }
        for (int o0 = e6; o0 < e4; o0 += OB) {
            real *orow = out + (size_t)o0 * ldo;
            const real *wrow = w + (size_t)o0 * ldw;
            if (n2 > n4) combine_tile4(orow + n4, ldo, wrow, ldw, bb + o0, src, n4, K);
            if (n1 > n2) combine_tile4x1(orow + n2, ldo, wrow, ldw, bb + o0, src, n2, K);
            if (relu)
                for (int j = 0; j < OB; j++) relu_span(orow + j * ldo + n4, (int)(n1 - n4));
        }
        for (int o = e4; o < O; o++) combine_row(out + (size_t)o * ldo, w + (size_t)o * ldw, bb[o], src, K, n4, n1, relu);
    }
    if (n1 < n) {
        combine_tail(out, ldo, O, w, ldw, bias, src, K, n1, n);
        if (relu) for (int o = 0; o < O; o++) relu_span(out + (size_t)o * ldo + n1, (int)(n - n1));
    }
}

void rows_combine(real *out, size_t ldo, int O, const real *w, size_t ldw, const real *bias, const real *const *src,
                  int K, size_t n)
{
    combine(out, ldo, O, w, ldw, bias, src, K, n, 0);
}

void rows_combine_relu(real *out, size_t ldo, int O, const real *w, size_t ldw, const real *bias,
                       const real *const *src, int K, size_t n)
{
    combine(out, ldo, O, w, ldw, bias, src, K, n, 1);
}

/* Horizontal sum by halving with lane shuffles (log2(VL) shuffle+add pairs). Not memcpy of
 * halves: taking a vector's address made GCC keep every accumulator of a tile on the stack. */
#ifdef CGLOW_DOUBLE
typedef long long vidx __attribute__((vector_size(VBYTES)));
#else
typedef int vidx __attribute__((vector_size(VBYTES)));
#endif
static inline real hsum(vr v)
{
    vidx m;
    for (int h = VL / 2; h >= 1; h /= 2) {
        for (int i = 0; i < VL; i++) m[i] = (i + h) % VL;
        v += __builtin_shuffle(v, m);
    }
    return v[0];
}

/* dw[j][i] += sum_p d_j[p] x_i[p] for 4 output rows j and 4 taps i. Named accumulators: with an
 * array of vectors GCC kept part of the tile on the stack and the loop ran at a quarter speed. */
static void correlate_tile4x4(real *dw, size_t ldw, const real *d0, size_t ldd, const real *const *src, size_t nv)
{
    const real *d1 = d0 + ldd, *d2 = d1 + ldd, *d3 = d2 + ldd;
    const real *s0 = src[0], *s1 = src[1], *s2 = src[2], *s3 = src[3];
    vr a00 = vsplat(0), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    vr a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    for (size_t p = 0; p < nv; p += VL) {
        const vr x0 = vload(s0 + p), x1 = vload(s1 + p), x2 = vload(s2 + p), x3 = vload(s3 + p);
        vr y = vload(d0 + p);
        a00 += y * x0; a01 += y * x1; a02 += y * x2; a03 += y * x3;
        y = vload(d1 + p);
        a10 += y * x0; a11 += y * x1; a12 += y * x2; a13 += y * x3;
        y = vload(d2 + p);
        a20 += y * x0; a21 += y * x1; a22 += y * x2; a23 += y * x3;
        y = vload(d3 + p);
        a30 += y * x0; a31 += y * x1; a32 += y * x2; a33 += y * x3;
    }
#if VBYTES == 64 && !defined(CGLOW_DOUBLE)
    {   /* the 16 sums at once: halving pairs of vectors (two-source shuffles) leaves lane k of
         * one vector with the sum of accumulator k; 45 operations instead of 16 horizontal sums'
         * 128, and the same additions in the same order (lanes k and k+8 first): the same bits */
    const vidx lo8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
    const vidx hi8 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
    const vidx lo4 = {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27};
    const vidx hi4 = {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31};
    const vidx lo2 = {0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29};
    const vidx hi2 = {2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31};
    const vidx lo1 = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    const vidx hi1 = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
#define HALVE(x, y, l, h) (__builtin_shuffle(x, y, l) + __builtin_shuffle(x, y, h))
    const vr b0 = HALVE(a00, a01, lo8, hi8), b1 = HALVE(a02, a03, lo8, hi8), b2 = HALVE(a10, a11, lo8, hi8);
    const vr b3 = HALVE(a12, a13, lo8, hi8), b4 = HALVE(a20, a21, lo8, hi8), b5 = HALVE(a22, a23, lo8, hi8);
    const vr b6 = HALVE(a30, a31, lo8, hi8), b7 = HALVE(a32, a33, lo8, hi8);
    const vr c0 = HALVE(b0, b1, lo4, hi4), c1 = HALVE(b2, b3, lo4, hi4), c2 = HALVE(b4, b5, lo4, hi4);
    const vr c3 = HALVE(b6, b7, lo4, hi4);
    const vr d0 = HALVE(c0, c1, lo2, hi2), d1 = HALVE(c2, c3, lo2, hi2);
    const vr e = HALVE(d0, d1, lo1, hi1);   /* lane 4 j + i: row j, tap i */
#undef HALVE
    for (int j = 0; j < 4; j++, dw += ldw)
        for (int i = 0; i < 4; i++) dw[i] += e[4 * j + i];
    return;
    }
#endif
    dw[0] += hsum(a00); dw[1] += hsum(a01); dw[2] += hsum(a02); dw[3] += hsum(a03);
    dw += ldw;
    dw[0] += hsum(a10); dw[1] += hsum(a11); dw[2] += hsum(a12); dw[3] += hsum(a13);
    dw += ldw;
    dw[0] += hsum(a20); dw[1] += hsum(a21); dw[2] += hsum(a22); dw[3] += hsum(a23);
    dw += ldw;
    dw[0] += hsum(a30); dw[1] += hsum(a31); dw[2] += hsum(a32); dw[3] += hsum(a33);
}

void rows_correlate(real *dw, size_t ldw, int O, const real *dout, size_t ldd, const real *const *src, int K, size_t n)
{
    const size_t nv = n - n % (size_t)VL;
    if (nv > 0) {
        int o0 = 0;
        for (; o0 + OB <= O; o0 += OB) {
            const real *d0 = dout + (size_t)o0 * ldd;
            int t0 = 0;
            for (; t0 + 4 <= K; t0 += 4) correlate_tile4x4(dw + (size_t)o0 * ldw + t0, ldw, d0, ldd, src + t0, nv);
            for (; t0 < K; t0++)
                for (int j = 0; j < OB; j++) {
                    const real *d = dout + (size_t)(o0 + j) * ldd, *x = src[t0];
                    vr a = {0};
                    for (size_t p = 0; p < nv; p += VL) a += vload(d + p) * vload(x + p);
                    dw[(size_t)(o0 + j) * ldw + t0] += hsum(a);
                }
        }
        for (; o0 < O; o0++)
            for (int t = 0; t < K; t++) {
                const real *d = dout + (size_t)o0 * ldd, *x = src[t];
                vr a = {0};
                for (size_t p = 0; p < nv; p += VL) a += vload(d + p) * vload(x + p);
                dw[(size_t)o0 * ldw + t] += hsum(a);
            }
    }
    if (nv < n) correlate_tail(dw, ldw, O, dout, ldd, src, K, nv, n);
}

void mat_correlate(real *dw, size_t ldw, int O, const real *dout, size_t ldd, const real *x, size_t ldx, int K, size_t n)
{
    if (n <= 128) {
        cblas_xgemm(CblasRowMajor, CblasNoTrans, CblasTrans, O, K, (int)n, 1, dout, (int)ldd, x, (int)ldx, 1, dw,
                    (int)ldw);
        return;
    }
    const real *src[K];
    for (int t = 0; t < K; t++) src[t] = x + (size_t)t * ldx;
    rows_correlate(dw, ldw, O, dout, ldd, src, K, n);
}
