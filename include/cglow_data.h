/* cglow data API (model.md sections 1 and 7): .npy files, parameter tables, preprocessing,
 * splits, augmentation, the batch loader and the synthetic universe.
 * Included by cglow.h; do not include directly. */
#ifndef CGLOW_DATA_H
#define CGLOW_DATA_H

/* ---------------------------------------------------------------- .npy files */
/* An open .npy file (memory-mapped): dtype <f4 or <f8, C order, 1-4 dims, versions 1.0-3.0. */
typedef struct cglow_npy cglow_npy;
int cglow_npy_open(const char *path, cglow_npy **out);
void cglow_npy_close(cglow_npy *f);
int cglow_npy_ndim(const cglow_npy *f);
const size_t *cglow_npy_shape(const cglow_npy *f);
int cglow_npy_itemsize(const cglow_npy *f);          /* 4 or 8 */
/* Items first .. first+count-1 along axis 0, converted to float32 / float64. Reads only those
 * bytes of the file. */
int cglow_npy_read_f32(cglow_npy *f, size_t first, size_t count, float *out);
int cglow_npy_read_f64(cglow_npy *f, size_t first, size_t count, double *out);
/* Whole-file conveniences: *data malloc'd (caller frees); shape has room for 4. */
int cglow_npy_load_f32(const char *path, float **data, int *ndim, size_t shape[4]);
int cglow_npy_load_f64(const char *path, double **data, int *ndim, size_t shape[4]);
/* Atomic writes, format 1.0 (2.0 when the header needs it). */
int cglow_npy_save_f32(const char *path, const float *data, int ndim, const size_t *shape);
int cglow_npy_save_f64(const char *path, const double *data, int ndim, const size_t *shape);

/* ---------------------------------------------------------------- parameter tables */
typedef struct {
    int rows, cols;
    double *v;   /* rows x cols, row-major */
} cglow_table;
/* A CAMELS text table ('#' header optional, whitespace separated) or a .npy (rows, cols). */
int cglow_table_load(const char *path, cglow_table *t);
int cglow_table_save_camels(const char *path, const cglow_table *t, const char *header);
void cglow_table_free(cglow_table *t);

/* ---------------------------------------------------------------- preprocessing */
/* Sets d->mu, d->sigma (ddof 1) from n raw maps of h x w (after d->downsample, log10, floor). */
int cglow_data_fit_maps(cglow_data_config *d, const float *raw, size_t n, int h, int w);
/* Raw linear maps (n, h, w) -> model space (n, h/ds, w/ds). Non-finite or (without floor)
 * non-positive pixels are an error naming `what` (a file name) and the map index (first_index + i). */
int cglow_data_maps_to_model(const cglow_data_config *d, const float *raw, size_t n, int h, int w,
                             float *out, const char *what, size_t first_index);
/* log10 maps (n, h, w), already downsampled, -> model space. */
int cglow_data_log10_to_model(const cglow_data_config *d, const float *u, size_t n, size_t npix, float *out);
/* Model space -> log10 units (linear = 0) or linear units (linear = 1). */
void cglow_data_model_to_maps(const cglow_data_config *d, const float *y, size_t n, size_t npix, int linear,
                              float *out);
/* Per map: sum over pixels of log|dy/du|, to turn model-space log p into log10-space log p. */
double cglow_data_log_jacobian(const cglow_data_config *d, const float *y, size_t npix);
/* Raw parameters theta (n x P, row stride `stride`, first P columns used after `cols` selection:
 * cols = NULL means 0..P-1) -> scaled conditions c (n x P) in [-1, 1]. */
void cglow_data_scale_cond(const cglow_data_config *d, const double *theta, size_t n, int stride,
                           const int *cols, float *c);
void cglow_data_unscale_cond(const cglow_data_config *d, const float *c, size_t n, double *theta);
/* Sets d->cond_lo/hi to the min/max of the table columns. */
void cglow_data_fit_cond(cglow_data_config *d, const cglow_table *t, const int *cols);
#endif
