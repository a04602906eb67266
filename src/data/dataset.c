/* A data set as a cosmologist brings it: a maps .npy (memory-mapped) and a parameter table,
 * with map i belonging to table row i / maps_per_sim. */
#include "cglow.h"
#include "data/internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cglow_dataset_open(const char *maps_path, const char *params_path, const int *cols, int n_cols,
                       cglow_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    snprintf(ds->maps_path, sizeof ds->maps_path, "%s", maps_path);
    snprintf(ds->params_path, sizeof ds->params_path, "%s", params_path);
    int rc = cglow_npy_open(maps_path, &ds->maps);
    if (rc) return rc;
    int nd = cglow_npy_ndim(ds->maps);
    const size_t *sh = cglow_npy_shape(ds->maps);
    if (!(nd == 3 || (nd == 4 && sh[1] == 1)) || sh[nd - 1] > 65536 || sh[nd - 2] > 65536 || sh[0] == 0) {
        cglow_dataset_close(ds);
        return cglow_set_error(CGLOW_ESHAPE, "%s: maps must have shape (N, H, W) or (N, 1, H, W) with N > 0", maps_path);
    }
    ds->n_maps = sh[0];
    ds->height = (int)sh[nd - 2];
    ds->width = (int)sh[nd - 1];
    rc = cglow_table_load(params_path, &ds->params);
    if (rc) { cglow_dataset_close(ds); return rc; }
    size_t rows = (size_t)ds->params.rows;
    if (ds->n_maps % rows) {
        cglow_dataset_close(ds);   /* ds->n_maps survives the close */
        return cglow_set_error(CGLOW_ESHAPE, "%s: %zu maps in %s do not divide evenly among its %zu rows (maps_per_sim = maps / rows)",
                               params_path, ds->n_maps, maps_path, rows);
    }
    ds->maps_per_sim = (int)(ds->n_maps / rows);
    if (!cols) {
        ds->n_cond = ds->params.cols < 2 ? ds->params.cols : 2;
        for (int j = 0; j < ds->n_cond; j++) ds->cols[j] = j;
    } else {
        if (n_cols < 1 || n_cols > CGLOW_MAX_COND) {
            cglow_dataset_close(ds);
            return cglow_set_error(CGLOW_EARG, "%s: %d condition columns (1 to %d)", params_path, n_cols, CGLOW_MAX_COND);
        }
        ds->n_cond = n_cols;
        for (int j = 0; j < n_cols; j++) {
            if (cols[j] < 0 || cols[j] >= ds->params.cols) {
                int c = cols[j];
                cglow_dataset_close(ds);
                return cglow_set_error(CGLOW_EARG, "%s: condition column %d out of range (table has %d columns)",
                                       params_path, c, ds->params.cols);
            }
            ds->cols[j] = cols[j];
        }
    }
    return 0;
}

void cglow_dataset_close(cglow_dataset *ds)
{
    cglow_npy_close(ds->maps);
    ds->maps = NULL;
    cglow_table_free(&ds->params);
}

const double *cglow_dataset_theta(const cglow_dataset *ds, size_t map)
{
    return ds->params.v + (map / (size_t)ds->maps_per_sim) * (size_t)ds->params.cols;
}

int cglow_dataset_read_maps(const cglow_dataset *ds, size_t first, size_t count, float *out)
{
    return cglow_npy_read_f32(ds->maps, first, count, out);
}

int cglow_dataset_fit(const cglow_dataset *ds, const size_t *idx, size_t n, cglow_data_config *d)
{
    int h = ds->height, w = ds->width, ds_ = d->downsample;
    if (ds_ < 1 || h % ds_ || w % ds_)
        return cglow_set_error(CGLOW_ESHAPE, "%s: map size %dx%d is not divisible by the downsampling factor %d",
                               ds->maps_path, h, w, ds_);
    size_t npix = (size_t)h * w, nd = npix / ((size_t)ds_ * ds_);
    float *raw = malloc(npix * sizeof *raw), *u = malloc(nd * sizeof *u);
    if (!raw || !u) { free(raw); free(u); return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", ds->maps_path); }
    double acc[3] = {0, 0, 0};
    int rc = 0;
    for (size_t k = 0; k < n && !rc; k++) {
        rc = cglow_dataset_read_maps(ds, idx[k], 1, raw);
        if (!rc) rc = cglow_data_maps_to_log10(d, raw, 1, h, w, u, ds->maps_path, idx[k]);
        if (!rc) cglow_data_moments_add(acc, u, nd);
    }
    free(raw);
    free(u);
    if (rc) return rc;
    if (acc[0] < 2 || !(acc[2] > 0))
        return cglow_set_error(CGLOW_EVALUE, "%s: cannot fit mu and sigma (fewer than 2 distinct pixels)", ds->maps_path);
    d->mu = acc[1];
    d->sigma = sqrt(acc[2] / (acc[0] - 1));
    /* Keep the names already set for the first columns; default the rest. */
    cglow_data_config names;
    cglow_data_config_default(&names, ds->n_cond);
    for (int j = d->n_cond; j < ds->n_cond; j++) strcpy(d->cond_names[j], names.cond_names[j]);
    d->n_cond = ds->n_cond;
    cglow_data_fit_cond(d, &ds->params, ds->cols);
    return 0;
}
