/* Helpers shared by the science subcommands. */
#include "cli/sci_cli.h"
#include <stdlib.h>
#include <string.h>

int sci_load_maps(const char *path, float **maps, size_t *n, int *h, int *w)
{
    int nd;
    size_t sh[4] = {0};
    *maps = NULL;
    int rc = cglow_npy_load_f32(path, maps, &nd, sh);
    if (rc) return rc;
    if (!(nd == 3 || (nd == 4 && sh[1] == 1)) || sh[0] == 0 || sh[nd - 1] < 2 || sh[nd - 2] < 2) {
        free(*maps);
        *maps = NULL;
        return cglow_set_error(CGLOW_ESHAPE, "%s: expected maps of shape (N, H, W) or (N, 1, H, W), got %d dimensions", path, nd);
    }
    *n = sh[0];
    *h = (int)sh[nd - 2];
    *w = (int)sh[nd - 1];
    return 0;
}

int sci_load_theta(const char *path, size_t nmaps, double **theta)
{
    cglow_table t;
    *theta = NULL;
    int rc = cglow_table_load(path, &t);
    if (rc) return rc;
    if (t.cols < 2 || t.rows < 1 || nmaps % (size_t)t.rows != 0) {
        rc = cglow_set_error(CGLOW_ESHAPE, "%s: need a table of (rows, >= 2) parameters with one row per map or per simulation (%zu maps, table %d x %d)",
                             path, nmaps, t.rows, t.cols);
        cglow_table_free(&t);
        return rc;
    }
    size_t per = nmaps / (size_t)t.rows;
    *theta = malloc(2 * nmaps * sizeof **theta);
    if (!*theta) { cglow_table_free(&t); return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path); }
    for (size_t i = 0; i < nmaps; i++)
        for (int a = 0; a < 2; a++) (*theta)[2 * i + a] = t.v[(i / per) * t.cols + a];
    cglow_table_free(&t);
    return 0;
}

int sci_parse_units(const char *s)
{
    if (!strcmp(s, "linear")) return 0;
    if (!strcmp(s, "log10")) return 1;
    return -1;
}

const char *sci_join(char *buf, size_t n, const char *dir, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}
