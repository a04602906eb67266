/* Spectra of maps in a .npy file, read in chunks (the CAMELS file is 3.75 GB). */
#include "cglow.h"
#include "science/pk_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PK_CHUNK 256

/* Block means of ds x ds pixels, on linear values (10^u when the maps are log10), written back in
 * the input's units: the downsampling of model.md 1.2. */
void sci_block_mean(const float *in, size_t nmaps, int h, int w, int ds, int is_log10, float *out)
{
    int hd = h / ds, wd = w / ds;
    for (size_t m = 0; m < nmaps; m++)
        for (int i = 0; i < hd; i++)
            for (int j = 0; j < wd; j++) {
                double acc = 0;
                for (int a = 0; a < ds; a++)
                    for (int b = 0; b < ds; b++) {
                        double v = in[(m * h + (size_t)i * ds + a) * w + (size_t)j * ds + b];
                        acc += is_log10 ? pow(10.0, v) : v;
                    }
                acc /= (double)ds * ds;
                out[(m * hd + i) * wd + j] = (float)(is_log10 ? log10(acc) : acc);
            }
}

int cglow_pk_set_from_npy(const char *path, const cglow_pk_options *o, size_t first, size_t count,
                          const size_t *idx, size_t nidx, cglow_pk_set *s)
{
    memset(s, 0, sizeof *s);
    cglow_npy *f;
    int rc = cglow_npy_open(path, &f);
    if (rc) return rc;
    int nd = cglow_npy_ndim(f);
    const size_t *sh = cglow_npy_shape(f);
    size_t N = sh[0], h = nd >= 2 ? sh[nd - 2] : 0, w = nd >= 2 ? sh[nd - 1] : 0;
    if (!((nd == 3) || (nd == 4 && sh[1] == 1)) || h != w || h < 2) {
        cglow_npy_close(f);
        return cglow_set_error(CGLOW_ESHAPE, "%s: expected maps of shape (N, n, n) or (N, 1, n, n) with square maps", path);
    }
    size_t n_use;
    if (idx) {
        n_use = nidx;
        for (size_t i = 0; i < nidx; i++)
            if (idx[i] >= N) { cglow_npy_close(f); return cglow_set_error(CGLOW_EARG, "%s: map index %zu out of range (%zu maps)", path, idx[i], N); }
    } else {
        if (first >= N) { cglow_npy_close(f); return cglow_set_error(CGLOW_EARG, "%s: first map %zu out of range (%zu maps)", path, first, N); }
        n_use = count ? count : N - first;
        if (n_use > N - first) { cglow_npy_close(f); return cglow_set_error(CGLOW_EARG, "%s: maps %zu..%zu out of range (%zu maps)", path, first, first + n_use - 1, N); }
    }
    if (n_use == 0) { cglow_npy_close(f); return cglow_set_error(CGLOW_ESHAPE, "%s: no maps selected", path); }
    int ds = o->downsample > 1 ? o->downsample : 1;
    if (h % (size_t)ds || h / ds < 2) {
        cglow_npy_close(f);
        return cglow_set_error(CGLOW_ESHAPE, "%s: maps of %zux%zu cannot be downsampled by %d", path, h, w, ds);
    }
    int side = (int)(h / ds);
    cglow_pk *p;
    rc = cglow_pk_create(side, o, &p);
    if (rc) { cglow_npy_close(f); return rc; }
    rc = sci_pk_set_alloc(s, p, side, n_use, o);
    float *buf = rc ? NULL : malloc(PK_CHUNK * h * w * sizeof *buf);
    float *small = ds > 1 && buf ? malloc(PK_CHUNK * (size_t)side * side * sizeof *small) : NULL;
    if (!rc && (!buf || (ds > 1 && !small))) rc = cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path);
    int nb = cglow_pk_nbins(p);
    for (size_t done = 0; !rc && done < n_use;) {
        size_t c = n_use - done < PK_CHUNK ? n_use - done : PK_CHUNK;
        size_t name0 = first + done;
        if (idx) {
            /* Listed maps: one read each, gathered into a chunk. */
            for (size_t j = 0; !rc && j < c; j++) rc = cglow_npy_read_f32(f, idx[done + j], 1, buf + j * h * w);
        } else {
            rc = cglow_npy_read_f32(f, first + done, c, buf);
        }
        /* For listed maps an error names the position in the list (indices are not contiguous). */
        if (!rc && ds > 1) sci_block_mean(buf, c, (int)h, (int)w, ds, o->input_log10, small);
        if (!rc) rc = cglow_pk_compute(p, ds > 1 ? small : buf, c, s->pk + done * nb, path, idx ? done : name0);
        done += c;
    }
    free(buf);
    free(small);
    cglow_pk_free(p);
    cglow_npy_close(f);
    if (rc) { cglow_pk_set_free(s); return rc; }
    sci_pk_set_stats(s);
    return 0;
}
