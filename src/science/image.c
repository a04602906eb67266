/* Map pictures with libpng: a grid of maps through a colour map, with a colour bar on the right.
 * The bar has no numbers (no font rasteriser here); its range is stored in the PNG's text chunks
 * ("vmin", "vmax", "units") and printed by the callers and the report. */
#include "cglow.h"
#include "util/fileio.h"
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

/* Colour maps as a few control points (evenly spaced), linearly interpolated. Viridis and magma
 * points are matplotlib's at t = 0, 1/8, ..., 1. */
static const unsigned char VIRIDIS[9][3] = {{68, 1, 84}, {71, 44, 122}, {59, 81, 139}, {44, 113, 142}, {33, 144, 141},
                                            {39, 173, 129}, {92, 200, 99}, {170, 220, 50}, {253, 231, 37}};
static const unsigned char MAGMA[9][3] = {{0, 0, 4}, {28, 16, 68}, {79, 18, 123}, {129, 37, 129}, {181, 54, 122},
                                          {229, 80, 100}, {251, 135, 97}, {254, 194, 135}, {252, 253, 191}};

static void colour(cglow_cmap cm, double t, unsigned char rgb[3])
{
    if (!(t >= 0)) t = 0;   /* NaN -> low end */
    if (t > 1) t = 1;
    if (cm == CGLOW_CMAP_GREY) {
        rgb[0] = rgb[1] = rgb[2] = (unsigned char)lround(255 * t);
        return;
    }
    const unsigned char (*lut)[3] = cm == CGLOW_CMAP_MAGMA ? MAGMA : VIRIDIS;
    double x = t * 8;
    int i = (int)x;
    if (i > 7) i = 7;
    double f = x - i;
    for (int c = 0; c < 3; c++) rgb[c] = (unsigned char)lround(lut[i][c] * (1 - f) + lut[i + 1][c] * f);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* 1st and 99th percentiles of the finite values (a subsample for big inputs). */
static void percentiles(const float *v, size_t n, double *lo, double *hi)
{
    size_t step = n > 200000 ? n / 200000 : 1, m = 0;
    float *s = malloc((n / step + 1) * sizeof *s);
    if (!s) { *lo = 0; *hi = 1; return; }
    for (size_t i = 0; i < n; i += step)
        if (isfinite(v[i])) s[m++] = v[i];
    if (!m) { free(s); *lo = 0; *hi = 1; return; }
    qsort(s, m, sizeof *s, cmp_float);
    *lo = s[(size_t)(0.01 * (m - 1))];
    *hi = s[(size_t)(0.99 * (m - 1))];
    if (!(*hi > *lo)) { *lo = s[0]; *hi = s[m - 1]; }
    if (!(*hi > *lo)) *hi = *lo + 1;
    free(s);
}

static void png_error_fn(png_structp p, png_const_charp msg)
{
    (void)msg;
    png_longjmp(p, 1);
}

/* Writes an RGB image with text chunks, atomically. Kept apart so that nothing live across the
 * libpng setjmp is modified. */
static int write_rgb_png(const char *path, unsigned char *img, size_t W, size_t H, char *s_lo, char *s_hi, char *s_n)
{
    atomic_file af;
    int rc = atomic_open(&af, path);
    if (rc) return rc;
    png_bytep *rowp = malloc(H * sizeof *rowp);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_error_fn, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || !rowp) {
        png_destroy_write_struct(&png, &info);
        free(rowp);
        atomic_abort(&af);
        return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path);
    }
    for (size_t y = 0; y < H; y++) rowp[y] = img + y * W * 3;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rowp);
        atomic_abort(&af);
        return cglow_set_error(CGLOW_EIO, "%s: PNG encoding failed", path);
    }
    png_init_io(png, af.f);
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_text txt[3];
    memset(txt, 0, sizeof txt);
    txt[0].compression = txt[1].compression = txt[2].compression = PNG_TEXT_COMPRESSION_NONE;
    txt[0].key = (png_charp) "vmin"; txt[0].text = s_lo;
    txt[1].key = (png_charp) "vmax"; txt[1].text = s_hi;
    txt[2].key = (png_charp) "Description"; txt[2].text = s_n;
    png_set_text(png, info, txt, 3);
    png_write_info(png, info);
    png_write_image(png, rowp);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rowp);
    return atomic_commit(&af);
}

int cglow_image_maps(const char *path, const float *maps, size_t nmaps, int h, int w, int cols, int scale, double vmin,
                     double vmax, cglow_cmap cmap)
{
    if (nmaps == 0 || h < 1 || w < 1) return cglow_set_error(CGLOW_ESHAPE, "%s: no maps to draw", path);
    if (cols < 1) cols = 1;
    if ((size_t)cols > nmaps) cols = (int)nmaps;
    if (scale < 1) scale = 1;
    if (scale > 16) scale = 16;
    int rows = (int)((nmaps + cols - 1) / cols), gap = 4, bar = 16;
    size_t W = (size_t)cols * (w * scale + gap) + gap + bar + 2 * gap, H = (size_t)rows * (h * scale + gap) + gap;
    if (W > 30000 || H > 30000) return cglow_set_error(CGLOW_EARG, "%s: picture too large (%zux%zu): fewer maps or a smaller scale", path, W, H);
    if (!(vmax > vmin)) percentiles(maps, nmaps * (size_t)h * w, &vmin, &vmax);
    unsigned char *img = malloc(W * H * 3);
    if (!img) return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path);
    memset(img, 255, W * H * 3);
    for (size_t m = 0; m < nmaps; m++) {
        size_t ox = gap + (m % cols) * (size_t)(w * scale + gap), oy = gap + (m / cols) * (size_t)(h * scale + gap);
        for (int y = 0; y < h * scale; y++)
            for (int x = 0; x < w * scale; x++) {
                double v = maps[m * (size_t)h * w + (size_t)(y / scale) * w + x / scale];
                colour(cmap, (v - vmin) / (vmax - vmin), img + ((oy + y) * W + ox + x) * 3);
            }
    }
    /* Colour bar: top = vmax, bottom = vmin, with a thin black frame. */
    size_t bx = W - bar - gap, by = gap, bh = H - 2 * gap;
    for (size_t y = 0; y < bh; y++)
        for (size_t x = 0; x < (size_t)bar; x++) {
            unsigned char *px = img + ((by + y) * W + bx + x) * 3;
            if (x == 0 || x == (size_t)bar - 1 || y == 0 || y == bh - 1) { px[0] = px[1] = px[2] = 0; continue; }
            colour(cmap, 1.0 - (double)y / (bh - 1), px);
        }

    char s_lo[64], s_hi[64], s_n[96];
    snprintf(s_lo, sizeof s_lo, "%.6g", vmin);
    snprintf(s_hi, sizeof s_hi, "%.6g", vmax);
    snprintf(s_n, sizeof s_n, "%zu maps of %dx%d, colour bar bottom vmin, top vmax", nmaps, h, w);
    int rc = write_rgb_png(path, img, W, H, s_lo, s_hi, s_n);
    free(img);
    return rc;
}
