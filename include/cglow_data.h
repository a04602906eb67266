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
/* Any version (1, 2 or 3) and item size (4 = '<f4', 8 = '<f8'); data holds items of that size. */
int cglow_npy_save_ex(const char *path, const void *data, int itemsize, int ndim, const size_t *shape, int version);
/* The header bytes (magic .. '\n', padded to 64) that cglow writes; -1 if cap is too small. */
int cglow_npy_header(int version, int itemsize, int ndim, const size_t *shape, unsigned char *buf, size_t cap,
                     size_t *len);
const char *cglow_npy_path(const cglow_npy *f);
size_t cglow_npy_row_items(const cglow_npy *f);      /* items per index of axis 0 */

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
/* The same from the log10 map u (downsampled, floored), in double: accurate also where y rounds to
 * +-1 in float32. */
double cglow_data_log_jacobian_log10(const cglow_data_config *d, const float *u, size_t npix);
/* Raw parameters theta (n x P, row stride `stride`, first P columns used after `cols` selection:
 * cols = NULL means 0..P-1) -> scaled conditions c (n x P) in [-1, 1]. */
void cglow_data_scale_cond(const cglow_data_config *d, const double *theta, size_t n, int stride,
                           const int *cols, float *c);
void cglow_data_unscale_cond(const cglow_data_config *d, const float *c, size_t n, double *theta);
/* Sets d->cond_lo/hi to the min/max of the table columns. */
void cglow_data_fit_cond(cglow_data_config *d, const cglow_table *t, const int *cols);
/* Raw maps (n, h, w) -> downsampled log10 maps u (n, h/ds, w/ds), the floor applied; errors as
 * cglow_data_maps_to_model. */
int cglow_data_maps_to_log10(const cglow_data_config *d, const float *raw, size_t n, int h, int w,
                             float *u, const char *what, size_t first_index);

/* ---------------------------------------------------------------- data set: maps + parameters */
/* A maps .npy ((N, H, W) or (N, 1, H, W), memory-mapped) and its parameter table. Map i belongs to
 * table row i / maps_per_sim, maps_per_sim = N / rows (1 when the table has a row per map). */
typedef struct {
    cglow_npy *maps;
    size_t n_maps;
    int height, width;            /* raw map size */
    cglow_table params;
    int maps_per_sim;
    int n_cond;                   /* P, the condition columns */
    int cols[CGLOW_MAX_COND];
    char maps_path[1024], params_path[1024];
} cglow_dataset;
/* cols = NULL: the first min(2, table columns) columns. Errors (file named): unreadable files,
 * maps that are not 3-D/4-D with one channel, N not divisible by the rows, a column out of range. */
int cglow_dataset_open(const char *maps_path, const char *params_path, const int *cols, int n_cols,
                       cglow_dataset *ds);
void cglow_dataset_close(cglow_dataset *ds);
/* The table row (all columns) of map i. */
const double *cglow_dataset_theta(const cglow_dataset *ds, size_t map);
/* Raw linear maps first..first+count-1 (count x height x width floats). */
int cglow_dataset_read_maps(const cglow_dataset *ds, size_t first, size_t count, float *out);
/* Training statistics into d: mu, sigma (ddof 1) of the preprocessed maps listed in idx (streamed,
 * never all in memory at once; d->downsample and d->floor as set) and the condition box (min/max of
 * the table's condition columns); also sets d->n_cond and keeps d->cond_names. */
int cglow_dataset_fit(const cglow_dataset *ds, const size_t *idx, size_t n, cglow_data_config *d);

/* ---------------------------------------------------------------- split (model.md 1.4) */
typedef enum {
    CGLOW_SPLIT_WITHIN_SIM = 0,   /* HIGlow: per simulation of 15 maps, positions 12, 13 are test */
    CGLOW_SPLIT_HOLDOUT_SIMS = 1  /* whole simulations held out: round(fraction * rows), by seed */
} cglow_split_kind;
/* Fills train / test (each with room for n_maps) with map indices in increasing order.
 * WITHIN_SIM generalised to any maps_per_sim m: t = round(2 m / 15) test maps per simulation, at
 * positions m-1-t .. m-2 (for m = 15: 12 and 13, as HIGlow); m <= 3 gives no test maps (use the
 * hold-out). HOLDOUT_SIMS: at least one simulation is held out when fraction > 0 and rows > 1.
 * n_maps must be a multiple of maps_per_sim. */
int cglow_split(size_t n_maps, int maps_per_sim, cglow_split_kind kind, double holdout_fraction, uint64_t seed,
                size_t *train, size_t *n_train, size_t *test, size_t *n_test);

/* ---------------------------------------------------------------- augmentation (model.md 1.4) */
/* One map's random symmetry: out = rot90^rot(flip(roll(in))). Maps are periodic and isotropic. */
typedef struct {
    int roll_y, roll_x;   /* periodic shift, in pixels */
    int flip_y, flip_x;   /* 0/1 */
    int rot;              /* quarter turns 0..3 (0 or 2 only when h != w) */
} cglow_augment_op;
/* The op of map `stream` under seed (uniform over all rolls, flips and rotations). */
void cglow_augment_draw(uint64_t seed, uint64_t stream, int h, int w, cglow_augment_op *op);
/* out = op(in), one channel h x w; in and out must not overlap. inverse = 1 applies op^-1. */
void cglow_augment_apply(const cglow_augment_op *op, const float *in, float *out, int h, int w, int inverse);

/* ---------------------------------------------------------------- batch loader */
/* Shuffled batches of model-space maps (n, 1, h/ds, w/ds) and scaled conditions (n, P) over a
 * list of map indices of a data set. Per-epoch order and augmentation depend only on (seed,
 * epoch), so a resumed run sees the same batches (cglow_loader_seek). Preprocessed maps are cached
 * in memory when they fit in max_cache_bytes (all of CAMELS at 64 x 64 is 245 MB), else each batch
 * is read from the memory-mapped file and preprocessed on the fly (OpenMP over the batch).
 * Typical use in `cglow train`:
 *     cglow_loader_opts o; cglow_loader_opts_default(&o); o.batch = B; o.seed = S; o.augment = 1;
 *     cglow_loader *L; if (cglow_loader_create(&ds, dcfg, train_idx, n_train, &o, &L)) fail;
 *     float *x = malloc(B * cglow_loader_map_pixels(L) * 4), *c = malloc(B * P * 4);
 *     for (epoch...) { int n, rc;
 *         while ((rc = cglow_loader_next_batch(L, x, c, &n)) > 0) cglow_train_step(t, x, c, n, &r);
 *         if (rc < 0) fail; }   // rc == 0: epoch done; the next call starts the next epoch */
typedef struct {
    int batch;                /* maps per batch (default 16) */
    uint64_t seed;            /* shuffle and augmentation seed (default 0) */
    int shuffle;              /* 1 (default): a new permutation per epoch; 0: index order */
    int augment;              /* 1: per-map random roll, flips, rotation (default 0) */
    int drop_last;            /* 1: skip the last, smaller batch of an epoch (default 0) */
    size_t max_cache_bytes;   /* default 4 GiB; 0 = never cache */
} cglow_loader_opts;
typedef struct cglow_loader cglow_loader;
void cglow_loader_opts_default(cglow_loader_opts *o);
/* Preprocesses (and caches) all listed maps now; errors (NaN, non-positive pixels, bad shape) name
 * the file and the map index. ds and the index list are copied or referenced only during create
 * when caching; without the cache ds must outlive the loader. d is copied. */
int cglow_loader_create(const cglow_dataset *ds, const cglow_data_config *d, const size_t *idx, size_t n,
                        const cglow_loader_opts *o, cglow_loader **out);
void cglow_loader_free(cglow_loader *L);
/* Fills x (n x 1 x h' x w') and c (n x P): returns 1 with *n maps, 0 at the end of an epoch (*n = 0;
 * the epoch counter advances and the next call starts the new epoch), negative on error. idx_out
 * (may be NULL, room for batch) receives the data-set map indices of the batch. */
int cglow_loader_next_batch(cglow_loader *L, float *x, float *c, int *n);
int cglow_loader_next_batch_idx(cglow_loader *L, float *x, float *c, int *n, size_t *idx_out);
int cglow_loader_epoch(const cglow_loader *L);           /* 0-based, epochs completed */
/* Jump to batch `batch` of epoch `epoch` (resume). */
void cglow_loader_seek(cglow_loader *L, int epoch, size_t batch);
size_t cglow_loader_size(const cglow_loader *L);         /* maps per epoch */
size_t cglow_loader_batches_per_epoch(const cglow_loader *L);
size_t cglow_loader_map_pixels(const cglow_loader *L);   /* h' * w' */
void cglow_loader_map_size(const cglow_loader *L, int *h, int *w);
int cglow_loader_cached(const cglow_loader *L);

/* ---------------------------------------------------------------- synthetic universe (model.md 7) */
typedef struct {
    int n;          /* grid n x n */
    double box;     /* Lbox, Mpc/h (25) */
    double beta;    /* 0.3; 0 = Gaussian u */
} cglow_synth_opts;
void cglow_synth_opts_default(cglow_synth_opts *o, int n);
/* Latin hypercube of `rows` CAMELS-layout parameter rows (6 columns: Omega_m, sigma_8 uniform in
 * the box lo/hi (NULL = [0.1,0.5] x [0.6,1.0]); A_SN1, A_AGN1 log-uniform in [0.25, 4], A_SN2,
 * A_AGN2 log-uniform in [0.5, 2], as CAMELS; they do not affect the maps). Values are rounded to 5
 * decimals, as CAMELS' table, so that the written table is exactly what generated the maps.
 * theta: rows x 6. */
int cglow_synth_params_lhs(size_t rows, uint64_t seed, const double lo[2], const double hi[2], double *theta);
/* BBKS transfer function T(q) and P_g(k) = A k T(k / (0.67 Omega_m))^2. */
double cglow_synth_transfer(double q);
double cglow_synth_power(double k, double omega_m, double amplitude);
/* The amplitude A of section 7 for a grid: sum over k != 0 of P_g = Lbox^2 (1.25 sigma_8)^2. */
double cglow_synth_amplitude(const cglow_synth_opts *o, double omega_m, double sigma_8);
/* P_g at every mode of the n x n grid (C order, FFT index order), P_g(0) := P_g(kF). */
int cglow_synth_spectrum(const cglow_synth_opts *o, double omega_m, double sigma_8, double *pk);
/* mu(Omega_m) = 4.8 + 2.5 (Omega_m - 0.3). */
double cglow_synth_mu(double omega_m);
/* One Gaussian field g (n x n) of map `stream` under seed. */
int cglow_synth_field(const cglow_synth_opts *o, double omega_m, double sigma_8, uint64_t seed, uint64_t stream,
                      double *g);
/* rows * maps_per_sim linear maps (10^u, float32, n x n each) for theta rows (stride doubles,
 * columns 0, 1 = Omega_m, sigma_8). Map i uses stream i: the same for any thread count. */
int cglow_synth_maps(const cglow_synth_opts *o, const double *theta, int stride, size_t rows, int maps_per_sim,
                     uint64_t seed, float *maps);
/* Exact log p(u | theta) (nats, log10 space, u = log10 map) of n linear maps; theta n x stride.
 * -inf where some pixel has 1 + beta (u - mu) <= 0. Non-finite or non-positive pixels: error
 * naming `what` and the map index (first_index + i). */
int cglow_synth_loglike(const cglow_synth_opts *o, const float *maps, size_t n, const double *theta, int stride,
                        double *ll, const char *what, size_t first_index);
/* Same for one map on a G x G grid: ll[i * G + j] at Omega_m = om[i], sigma_8 = s8[j]. Cost: one FFT
 * per Omega_m row (sigma_8 only rescales the spectrum). */
int cglow_synth_loglike_grid(const cglow_synth_opts *o, const float *map, const double *om, int g_om,
                             const double *s8, int g_s8, double *ll, const char *what, size_t index);
/* Cell centres (edges = 0) or linspace including the ends (edges = 1) of [lo, hi] in G points. */
void cglow_grid_axis(double lo, double hi, int g, int edges, double *axis);
#endif
