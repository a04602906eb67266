/* TEMPORARY minimal .npy loader/saver until the data branch lands (it owns src/io/npy.c). */
#include "cglow.h"
#include "util/fileio.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int load_any(const char *path, void **data, int want8, int *ndim, size_t shape[4])
{
    char *buf; size_t n;
    int rc = read_file_all(path, &buf, &n);
    if (rc) return rc;
    if (n < 10 || memcmp(buf, "\x93NUMPY", 6)) { free(buf); return cglow_set_error(CGLOW_EFORMAT, "%s: not .npy", path); }
    size_t hl = (unsigned char)buf[8] | ((unsigned char)buf[9] << 8), off = 10 + hl;
    char *h = strndup(buf + 10, hl);
    int is8 = strstr(h, "<f8") != NULL;
    char *p = strstr(h, "shape");
    p = strchr(p, '(') + 1;
    *ndim = 0;
    size_t total = 1;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        shape[(*ndim)++] = strtoul(p, &p, 10);
        total *= shape[*ndim - 1];
    }
    free(h);
    void *out = malloc((want8 ? 8 : 4) * (total ? total : 1));
    for (size_t i = 0; i < total; i++) {
        double v;
        if (is8) memcpy(&v, buf + off + 8 * i, 8);
        else { float f; memcpy(&f, buf + off + 4 * i, 4); v = f; }
        if (want8) ((double *)out)[i] = v; else ((float *)out)[i] = (float)v;
    }
    free(buf);
    *data = out;
    return 0;
}
int cglow_npy_load_f32(const char *path, float **data, int *ndim, size_t shape[4]) { return load_any(path, (void **)data, 0, ndim, shape); }
int cglow_npy_load_f64(const char *path, double **data, int *ndim, size_t shape[4]) { return load_any(path, (void **)data, 1, ndim, shape); }
