#include "cli/model_data.h"

int cli_data_fits(cglow_model *m, const cglow_dataset *ds)
{
    const cglow_config *c = cglow_model_config(m);
    const cglow_data_config *d = cglow_model_data(m);
    const int f = d->downsample;
    if (ds->height % f || ds->width % f || ds->height / f != c->height || ds->width / f != c->width || c->in_channels != 1)
        return cglow_set_error(CGLOW_ESHAPE, "%s: maps are %dx%d; the model takes %dx%d after downsampling by %d",
                               ds->maps_path, ds->height, ds->width, c->height, c->width, f);
    if (ds->n_cond != c->cond_features)
        return cglow_set_error(CGLOW_ESHAPE, "%s: %d condition columns, the model takes %d", ds->params_path,
                               ds->n_cond, c->cond_features);
    return 0;
}

int cli_data_batch(cglow_model *m, const cglow_dataset *ds, size_t first, size_t count, float *raw, float *x, float *c)
{
    const cglow_data_config *d = cglow_model_data(m);
    int rc = cglow_dataset_read_maps(ds, first, count, raw);
    if (!rc) rc = cglow_data_maps_to_model(d, raw, count, ds->height, ds->width, x, ds->maps_path, first);
    if (rc) return rc;
    const int P = ds->n_cond;
    for (size_t i = 0; i < count; i++) {
        const double *th = cglow_dataset_theta(ds, first + i);
        for (int j = 0; j < P; j++)
            if (!isfinite(th[ds->cols[j]]))
                return cglow_set_error(CGLOW_EVALUE, "%s: parameter %d of map %zu is not finite", ds->params_path, j, first + i);
        cglow_data_scale_cond(d, th, 1, ds->params.cols, ds->cols, c + i * P);
    }
    return 0;
}

int cli_open_model_data(const char *model, const char *maps, const char *cond, cglow_model **m, cglow_dataset *ds)
{
    if (cglow_model_load(model, m)) return cli_fail_lib();
    if (cglow_dataset_open(maps, cond, NULL, cglow_model_config(*m)->cond_features, ds)) {
        cglow_model_free(*m);
        return cli_fail_lib();
    }
    if (cli_data_fits(*m, ds)) {
        int rc = cli_fail_lib();
        cglow_dataset_close(ds);
        cglow_model_free(*m);
        return rc;
    }
    return 0;
}
