/* cglow: conditional Glow normalizing flows for cosmological fields.
 *
 * This header is the library's whole public API. Conventions:
 *  - Functions that can fail return 0 on success and a negative CGLOW_E* code on failure; the
 *    message (one line, naming the file and the problem) is then in cglow_last_error().
 *  - Maps are float32, NCHW, C order. Per-map log-likelihoods are double, in nats.
 *  - "Model space" maps are maps after the preprocessing of model.md section 1.2; "scaled"
 *    conditions are in [-1, 1] (section 1.3). The cglow_data_* functions convert.
 */
#ifndef CGLOW_H
#define CGLOW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */
enum {
    CGLOW_OK = 0,
    CGLOW_EIO = -1,      /* file missing, unreadable, unwritable */
    CGLOW_EFORMAT = -2,  /* corrupt, truncated, wrong magic, unknown version */
    CGLOW_ESHAPE = -3,   /* wrong shape, dtype or config mismatch */
    CGLOW_EVALUE = -4,   /* NaN/Inf or out-of-range values */
    CGLOW_EARG = -5,     /* bad argument or flag */
    CGLOW_ENOMEM = -6,
    CGLOW_ENOTSUP = -7,  /* not supported by this build (e.g. CUDA) */
};
const char *cglow_last_error(void);
/* Sets the message returned by cglow_last_error() (printf-style) and returns code. */
int cglow_set_error(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Number of OpenMP threads used by the library (0 = OpenMP default). */
void cglow_set_threads(int n);
int cglow_get_threads(void);

/* ---------------------------------------------------------------- model config */
typedef enum { CGLOW_PRIOR_CONDITIONAL = 0, CGLOW_PRIOR_LEARNED = 1 } cglow_prior_kind;
typedef enum { CGLOW_SQUASH_SIGMOID = 0, CGLOW_SQUASH_STANDARD = 1 } cglow_squash;

#define CGLOW_MAX_COND 8
#define CGLOW_FORMAT_VERSION 1

typedef struct {
    int in_channels;      /* C0, 1 */
    int height, width;    /* 64 x 64 */
    int levels;           /* L, split blocks (a final block follows) */
    int steps;            /* K, flow steps per block */
    int hidden;           /* Hd, width of the injector and coupling CNNs */
    int cond_features;    /* P */
    int prior_hidden;     /* Hc, width of the conditional prior MLPs */
    float coupling_clamp; /* floor of the coupling's sigmoid scale */
    cglow_prior_kind prior;
} cglow_config;

/* Preprocessing stored in a checkpoint (model.md 1.2-1.3). */
typedef struct {
    int downsample;       /* block-mean factor, 1 = none */
    double floor;         /* log10 floor, 1e-8 */
    double mu, sigma;     /* standardisation of log10 maps */
    cglow_squash squash;
    int n_cond;           /* P */
    char cond_names[CGLOW_MAX_COND][32];
    double cond_lo[CGLOW_MAX_COND], cond_hi[CGLOW_MAX_COND];
} cglow_data_config;

/* Fills the config of a named preset ("higlow" = model.md defaults). Returns CGLOW_EARG if unknown. */
int cglow_config_preset(cglow_config *cfg, const char *name);
/* Checks that the hyperparameters make a model (H, W divisible by 2^L, ...). */
int cglow_config_validate(const cglow_config *cfg);
/* Defaults of section 1: mu 0, sigma 1, floor 1e-8, sigmoid squash, CAMELS LH box. */
void cglow_data_config_default(cglow_data_config *d, int n_cond);

/* ---------------------------------------------------------------- model */
typedef struct cglow_model cglow_model;

/* A fresh model with the initialisation of model.md section 2 from seed. */
int cglow_model_create(const cglow_config *cfg, uint64_t seed, cglow_model **out);
void cglow_model_free(cglow_model *m);
const cglow_config *cglow_model_config(const cglow_model *m);
cglow_data_config *cglow_model_data(cglow_model *m);
size_t cglow_model_num_params(const cglow_model *m);   /* trainable parameters */
/* FLOPs (multiply-add = 2) of a forward pass of one map, as computed by cglow (the injector's
 * border-class shortcut included) and as a naive per-pixel implementation would. */
double cglow_model_flops_forward(const cglow_model *m, double *naive);
/* FLOPs of one map's share of a training step (forward, backward, recomputation). */
double cglow_model_flops_train(const cglow_model *m);
/* Dimensions of the input (C0*H*W) and of all latents together (equal). */
size_t cglow_model_dim(const cglow_model *m);

/* Checkpoints (safetensors, model.md section 4). Writes are atomic. A model is not safe to use from
 * two threads at once (it keeps its work area); the library parallelises inside each call. */
int cglow_model_save(const cglow_model *m, const char *path);
int cglow_model_load(const char *path, cglow_model **out);
/* The training-state JSON of the checkpoint ("train" metadata), or NULL; owned by the model. */
const char *cglow_model_train_state(const cglow_model *m);
int cglow_model_set_train_state(cglow_model *m, const char *json);

/* Compute device of a model: "cpu" (the default) or "cuda" (the first CUDA device). The choice is
 * not part of the model: checkpoints are the same whichever device wrote them, and a loaded model
 * starts on the CPU. On "cuda" the parameters live on the device (a trainer's gradients and Adam
 * moments too) and the host copy is refreshed when it is read (save, get_tensor, sampling).
 * CGLOW_ENOTSUP (one-line message) when this build has no CUDA backend or no usable device;
 * CGLOW_EARG for an unknown name or while a trainer of the model exists. */
int cglow_model_set_device(cglow_model *m, const char *device);
const char *cglow_model_device(const cglow_model *m);   /* "cpu" or "cuda" */
/* 1 if "cuda" can be chosen here; else 0 and (reason != NULL) why not, one line. */
int cglow_cuda_available(const char **reason);

/* Forward (data -> latent). x: n maps in model space; c: n x P scaled conditions.
 * logp (n, may be NULL): log p(x|c) in nats, model space. z (n x dim, may be NULL): all latents,
 * block order, C order within a block. */
int cglow_forward(cglow_model *m, const float *x, const float *c, int n, double *logp, float *z);
int cglow_log_prob(cglow_model *m, const float *x, const float *c, int n, double *logp);
/* Inverse (latent -> data). */
int cglow_inverse(cglow_model *m, const float *z, const float *c, int n, float *x);
/* Samples n maps (model space) at temperature T from the prior of each condition. */
int cglow_sample(cglow_model *m, const float *c, int n, float temperature, uint64_t seed, float *x);

/* ---------------------------------------------------------------- training */
typedef struct {
    double lr, beta1, beta2, eps;
    double clip_norm;        /* <= 0: no clipping */
    int warmup_steps;        /* linear lr warm-up */
    int plateau_patience;    /* reduce-on-plateau of the epoch-mean loss */
    double plateau_factor, min_lr;
} cglow_optim_config;
void cglow_optim_config_default(cglow_optim_config *o);

typedef struct cglow_trainer cglow_trainer;
typedef struct {
    double loss;       /* nats per pixel, model space */
    double grad_norm;  /* before clipping */
    int skipped;       /* 1 if the step was not applied (non-finite loss or gradient) */
    double lr;
} cglow_step_result;

/* A trainer for at most max_batch maps per step (all buffers allocated here, none per step). */
int cglow_trainer_create(cglow_model *m, const cglow_optim_config *o, int max_batch, cglow_trainer **out);
void cglow_trainer_free(cglow_trainer *t);
/* One step: loss, backward, clip, Adam. x model space, c scaled. */
int cglow_train_step(cglow_trainer *t, const float *x, const float *c, int n, cglow_step_result *r);
/* Loss and gradient only (no update); read the gradient with cglow_trainer_get_grad(). */
int cglow_loss_grad(cglow_trainer *t, const float *x, const float *c, int n, double *loss);
/* Called at the end of each epoch with the epoch-mean loss (reduce-on-plateau). */
void cglow_trainer_end_epoch(cglow_trainer *t, double epoch_loss);
long cglow_trainer_steps(const cglow_trainer *t);
long cglow_trainer_skipped(const cglow_trainer *t);
double cglow_trainer_lr(const cglow_trainer *t);
/* Optimiser state beside a checkpoint (<name>.optim.safetensors). */
int cglow_trainer_save(const cglow_trainer *t, const char *path);
int cglow_trainer_load(cglow_trainer *t, const char *path);

/* ---------------------------------------------------------------- tensors (for tools, tests) */
typedef struct {
    const char *name;
    int ndim;
    int shape[4];
    size_t size;     /* elements */
    int trainable;   /* perm and sign are fixed */
} cglow_tensor_info;
int cglow_model_num_tensors(const cglow_model *m);
const cglow_tensor_info *cglow_model_tensor(const cglow_model *m, int i);
/* Copies tensor i's values (float32) out / in. */
int cglow_model_get_tensor(const cglow_model *m, int i, float *out);
int cglow_model_set_tensor(cglow_model *m, int i, const float *in);
/* The last cglow_loss_grad gradient of tensor i, as double. */
int cglow_trainer_get_grad(const cglow_trainer *t, int i, double *out);

/* ================================================================================ data */
/* cglow data API (model.md sections 1 and 7): .npy files, parameter tables, preprocessing,
 * splits, augmentation, the batch loader and the synthetic universe.
 * */

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

/* ================================================================================ science */
/* cglow science API (model.md sections 5-6): power spectra, posterior grids, calibration,
 * pictures and the report.
 * Conventions as in cglow.h: 0 or a negative CGLOW_E* code with a one-line message. */

/* ================================================================ power spectrum (section 5) */
typedef enum { CGLOW_BIN_PYLIANS = 0, CGLOW_BIN_HIGLOW = 1 } cglow_pk_binning;
/* The field whose spectrum is taken: log10 of the map (default, HIGlow), the overdensity
 * map/mean - 1 (CAMELS), or "raw": the values of the array exactly as given (for tests and for
 * comparing with other tools on arbitrary fields). */
typedef enum { CGLOW_FIELD_LOG10 = 0, CGLOW_FIELD_OVERDENSITY = 1, CGLOW_FIELD_RAW = 2 } cglow_pk_field;

typedef struct {
    double box;                 /* Lbox in Mpc/h, 25 */
    cglow_pk_binning binning;   /* pylians */
    cglow_pk_field field;       /* log10 */
    int input_log10;            /* 1: the maps are given in log10 units (u), 0: linear (default) */
    double floor;               /* linear floor before log10 (as preprocessing), 1e-8 */
    int downsample;             /* block-mean factor on the linear maps before the spectrum (1); used by
                                 * cglow_pk_set_from_npy (e.g. 4: CAMELS 256 -> the model's 64) */
} cglow_pk_options;
void cglow_pk_options_default(cglow_pk_options *o);
/* "pylians"/"higlow", "log10"/"overdensity"/"raw" -> enum; CGLOW_EARG if unknown. */
int cglow_pk_parse_binning(const char *s, cglow_pk_binning *b);
int cglow_pk_parse_field(const char *s, cglow_pk_field *f);
const char *cglow_pk_binning_name(cglow_pk_binning b);
const char *cglow_pk_field_name(cglow_pk_field f);

/* A power-spectrum plan for n x n maps: the FFTW plan and the mode -> bin table. */
typedef struct cglow_pk cglow_pk;
int cglow_pk_create(int n, const cglow_pk_options *o, cglow_pk **out);
void cglow_pk_free(cglow_pk *p);
int cglow_pk_nbins(const cglow_pk *p);        /* non-empty bins */
const double *cglow_pk_k(const cglow_pk *p);   /* k of each bin, h/Mpc */
const double *cglow_pk_counts(const cglow_pk *p); /* modes per bin */
const int *cglow_pk_bin_index(const cglow_pk *p); /* integer bin (floor or round of |k|/kF) */
/* P(k) of n maps (n x side x side floats, units per options) -> pk (nmaps x nbins), in
 * (Mpc/h)^2. Threads over maps. first_index names maps in errors (non-finite pixels). */
int cglow_pk_compute(cglow_pk *p, const float *maps, size_t nmaps, double *pk, const char *what,
                     size_t first_index);

/* The spectra of a set of maps with their statistics (mean, std ddof 0 over maps). */
typedef struct {
    cglow_pk_options opt;
    int side;         /* n */
    int nbins;
    size_t nmaps;
    int *bin;         /* nbins */
    double *k, *counts, *mean, *std; /* nbins each */
    double *pk;       /* nmaps x nbins, per map */
} cglow_pk_set;
/* From maps in memory (nmaps, side, side). */
int cglow_pk_set_from_maps(const float *maps, size_t nmaps, int side, const cglow_pk_options *o,
                           cglow_pk_set *s, const char *what);
/* From a .npy (N, n, n) or (N, 1, n, n), read in chunks; maps first .. first+count-1
 * (count 0 = to the end); or the listed indices (idx != NULL, nidx of them). */
int cglow_pk_set_from_npy(const char *path, const cglow_pk_options *o, size_t first, size_t count,
                          const size_t *idx, size_t nidx, cglow_pk_set *s);
void cglow_pk_set_free(cglow_pk_set *s);
/* JSON {"k","mean","std","counts","bin", options, "n_maps"[, "pk" per map]}; atomic write. */
int cglow_pk_set_save_json(const cglow_pk_set *s, const char *path, int per_map);

/* Generated against real (same grid and options). */
typedef struct {
    int nbins;
    double *k, *ratio_mean, *ratio_std;       /* gen / real per bin */
    double mean_abs_log10_ratio_mean, mean_abs_log10_ratio_std;
    double r2_log10, r2_linear;              /* R^2 of the mean spectrum (section 5) */
} cglow_pk_comparison;
int cglow_pk_compare(const cglow_pk_set *real, const cglow_pk_set *gen, cglow_pk_comparison *c);
void cglow_pk_comparison_free(cglow_pk_comparison *c);
/* R^2 = 1 - sum (g - r)^2 / sum (r - mean(r))^2 over n bins; log10 = 1 compares log10 values.
 * NaN if undefined (n < 2, constant r, non-positive values under log10). */
double cglow_r2(const double *real, const double *gen, int n, int log10);

/* ================================================================ posterior (section 6) */
/* A G x G grid over the prior box of (Omega_m, sigma_8): axis 0 is parameter 0, axis 1 is
 * parameter 1. Cell centres lo + (i + 0.5) (hi - lo) / G by default; edges = 1 gives
 * linspace(lo, hi, G) (HIGlow). */
typedef struct {
    int G;
    int edges;
    double lo[2], hi[2];
} cglow_grid;
int cglow_grid_init(cglow_grid *g, int G, const double lo[2], const double hi[2], int edges);
double cglow_grid_value(const cglow_grid *g, int axis, int i);
/* The G*G points (theta0, theta1), row-major: point i*G + j = (value(0, i), value(1, j)). */
void cglow_grid_points(const cglow_grid *g, double *theta);

#define CGLOW_NLEVELS 2
extern const double cglow_hpd_levels[CGLOW_NLEVELS]; /* 0.68, 0.95 */

typedef struct {
    double mean[2], std[2], map[2];
    double hpd_threshold[CGLOW_NLEVELS]; /* cell mass at the edge of each HPD region */
    double hpd_mass[CGLOW_NLEVELS];      /* mass actually enclosed (>= level) */
    int hpd_cells[CGLOW_NLEVELS];
    double max_cell;                     /* the largest cell mass (resolution warning if large) */
    int has_truth;
    double truth[2];
    int in_hpd[CGLOW_NLEVELS];           /* the truth's cell is inside the 68% / 95% region */
    double truth_level;  /* mid-rank of the truth's cell (the grid point nearest the truth): mass
                          * of denser cells + half the mass tied with it; U(0,1) if calibrated */
    double bias[2];      /* (mean - truth) / std */
} cglow_post_summary;

/* log-likelihoods (G*G, any additive constant) -> posterior cell masses summing to 1
 * (logsumexp). Non-finite values other than -inf are an error; all -inf is an error. */
int cglow_posterior_normalise(const double *loglike, int npts, double *post);
/* Density threshold of the smallest set of cells with mass >= level (cells sorted by mass). */
double cglow_hpd_threshold(const double *post, int npts, double level, double *mass, int *cells);
/* Mean, std, MAP, HPD regions and, with truth (may be NULL), coverage and rank.
 * marg0, marg1 (G each, may be NULL): the 1-D marginals (cell masses). */
int cglow_posterior_summarise(const cglow_grid *g, const double *post, const double *truth,
                              cglow_post_summary *s, double *marg0, double *marg1);
/* An HPD mask (G*G, 1 inside) for level index l. */
void cglow_hpd_mask(const double *post, int npts, double threshold, unsigned char *mask);

/* Calibration over many maps with known truth. */
#define CGLOW_RANK_BINS 10
typedef struct {
    int n;
    double coverage[CGLOW_NLEVELS];   /* fraction of truths inside */
    double cov_err[CGLOW_NLEVELS];    /* binomial error sqrt(f (1 - f) / n) of the observed f */
    double cov_z[CGLOW_NLEVELS];      /* (f - level) / sqrt(level (1 - level) / n) */
    double mean_hpd_mass[CGLOW_NLEVELS]; /* mass the regions actually enclose (>= level on a
                                          * coarse grid: the coverage to expect) */
    int rank_hist[CGLOW_RANK_BINS];   /* histogram of truth_level over [0, 1] */
    double bias_mean[2], bias_std[2]; /* of (mean - truth) / std over maps */
    double mean_std[2];               /* average posterior std */
} cglow_calibration;
int cglow_calibrate(const cglow_post_summary *s, int n, cglow_calibration *c);

/* Two posteriors on the same grid: q against the reference p (e.g. flow against exact). */
typedef struct {
    double shift[2];        /* (mean_q - mean_p) / std_p */
    double width_ratio[2];  /* std_q / std_p */
    double kl;              /* KL(p || q) = sum p log(p / q), nats; inf if q = 0 where p > 0 */
} cglow_post_comparison;
int cglow_posterior_compare(const cglow_grid *g, const double *p, const double *q, cglow_post_comparison *c);

/* ---------------------------------------------------------------- inference driver */
/* A scorer: log p(map | theta) for one map (index map_index of the set) at npts raw parameter
 * points theta (npts x 2), any per-map constant allowed. */
typedef int (*cglow_scorer_fn)(void *ctx, size_t map_index, const double *theta, int npts, double *loglike);

/* Scorer over a flow model: maps raw linear (n, h, w) are preprocessed with the model's data
 * config; all G*G conditions of one map go to one cglow_log_prob call. */
typedef struct {
    cglow_model *model;
    const float *maps;  /* raw linear (nmaps, h, w) */
    size_t nmaps;
    int h, w;
    const char *what;   /* file name for errors */
    /* internal buffers */
    float *x1, *xrep, *cond;
    int cap;
} cglow_model_scorer;
int cglow_model_scorer_fn(void *ctx, size_t map_index, const double *theta, int npts, double *loglike);
void cglow_model_scorer_free(cglow_model_scorer *s);

/* Scorer with the exact synthetic likelihood of model.md section 7 (cglow_synth_loglike_grid when
 * the points are exactly `grid`'s, else cglow_synth_loglike per point). Thread-safe. */
typedef struct {
    cglow_synth_opts opt;   /* n must be the map side */
    const float *maps;      /* raw linear (nmaps, n, n) */
    size_t nmaps;
    const char *what;
    const cglow_grid *grid; /* may be NULL */
} cglow_exact_scorer;
int cglow_exact_scorer_fn(void *ctx, size_t map_index, const double *theta, int npts, double *loglike);

typedef struct {
    cglow_grid grid;
    const double *truth;   /* nmaps x 2 raw parameters or NULL */
    int progress;          /* 1: a progress line on stderr */
    int parallel_maps;     /* 1: maps in parallel (only for thread-safe scorers that do not thread) */
} cglow_infer_options;
/* Posterior of nmaps maps: post (nmaps x G x G) and summaries (nmaps). */
int cglow_infer(const cglow_infer_options *o, cglow_scorer_fn fn, void *ctx, size_t nmaps, double *post,
                cglow_post_summary *summ);
/* summary.json of an inference run (per-map summaries with the 1-D marginals when post (n x G x G)
 * is given, calibration when truths are known). */
int cglow_infer_save_json(const char *path, const cglow_grid *g, const cglow_post_summary *s, const double *post,
                          size_t n, const cglow_calibration *cal, const char *scorer);


/* ---------------------------------------------------------------- whole jobs (CLI and demo) */
/* cglow infer / cglow calibrate on files. Outputs in out_dir (created by the caller):
 *   infer:     posterior.npy (maps, G, G) float64, axis 1 Omega_m, axis 2 sigma_8, cell masses;
 *              summary.json; posterior_NNN.png for the first n_png maps; calibration.png (truths).
 *   calibrate: for each scorer S in {flow, exact} used: posterior_S.npy, summary_S.json,
 *              calibration_S.png; calibration.json with both and, when both ran, the flow-vs-exact
 *              comparison (per map and averaged: mean shift in exact-std units, width ratio, KL). */
typedef struct {
    const char *maps_path;    /* raw linear maps (N, n, n) or (N, 1, n, n) */
    const char *truth_path;   /* table (rows per map or per simulation) or NULL */
    const char *model_path;   /* flow checkpoint or NULL */
    int exact;                /* 1: the exact synthetic likelihood (section 7) */
    double beta, synth_box;   /* of the exact likelihood: 0.3, 25 */
    int G, edges;             /* 30, cell centres */
    int box_set;              /* 0: the model's condition box, or CAMELS LH for --exact */
    double lo[2], hi[2];
    size_t first, count;      /* maps first .. first+count-1 (count 0 = all) */
    int n_png;                /* posterior pictures (4) */
    const char *out_dir;
    int progress;
    const char *device;       /* the flow scorer's device: NULL or "cpu", "cuda" */
} cglow_infer_run;
void cglow_infer_run_default(cglow_infer_run *r);
int cglow_run_infer(const cglow_infer_run *r);
int cglow_run_calibrate(const cglow_infer_run *r);

/* cglow eval: spectra of real and generated maps, numbers and plots.
 * Outputs out_dir/<tag>.json (real, gen, comparison), <tag>.png (spectra with ratio panel) and
 * <tag>_maps.png (first real maps over the first generated ones, log10). */
typedef struct {
    const char *real_path;    /* maps */
    int real_log10;           /* units of real maps (0 linear) */
    const char *gen_path;     /* generated maps, or NULL to generate with model_path */
    int gen_log10;            /* units of gen maps */
    const char *params_path;  /* parameter table of the real maps (for --sim and for generation) */
    long sim;                 /* >= 0: conditional on this simulation (its maps vs maps at its params) */
    const char *model_path;   /* to generate when gen_path is NULL */
    long n_gen;               /* maps to generate (marginal: at random real rows; default = real count) */
    double temperature;
    uint64_t seed;
    cglow_pk_options opt;     /* binning, field, box, floor (input_log10 is set per set) */
    const char *out_dir, *tag;
} cglow_eval_run;
void cglow_eval_run_default(cglow_eval_run *r);
/* cmp (may be NULL) receives the comparison numbers (free with cglow_pk_comparison_free). */
int cglow_run_eval(const cglow_eval_run *r, cglow_pk_comparison *cmp);

/* cglow sample: rows of raw parameters theta (rows x P, P = the model's) -> rows*K maps in rows
 * order, log10 (linear = 0) or linear units. *n_bad receives the number of maps with a non-finite
 * pixel (reported, kept). out (rows*K*H*W) is the caller's. */
int cglow_sample_maps(cglow_model *m, const double *theta, int rows, int per_cond, float temperature, uint64_t seed,
                      int linear, float *out, size_t *n_bad);

/* ================================================================ pictures */
/* Colour maps for map pictures. */
typedef enum { CGLOW_CMAP_VIRIDIS = 0, CGLOW_CMAP_MAGMA = 1, CGLOW_CMAP_GREY = 2 } cglow_cmap;
/* A PNG of nmaps maps (side x side each, values as given, e.g. log10) in a grid of `cols`
 * columns, each pixel scale x scale, with a colour bar from vmin to vmax (vmin >= vmax: from the
 * data, 1st-99th percentile). Atomic write. */
int cglow_image_maps(const char *path, const float *maps, size_t nmaps, int h, int w, int cols, int scale,
                     double vmin, double vmax, cglow_cmap cmap);

/* gnuplot plots (pngcairo), atomic writes. */
/* Spectra: log-log mean with 1-sigma bands for real (and gen, may be NULL), ratio panel. */
int cglow_plot_pk(const char *path, const cglow_pk_set *real, const cglow_pk_set *gen, const char *title);
/* Filled 68/95% HPD contours of one posterior, truth (may be NULL) as a red x, mean as a black +. */
int cglow_plot_posterior(const char *path, const cglow_grid *g, const double *post, const cglow_post_summary *s,
                         const char *title);
/* Two posteriors of one map side by side (e.g. exact and flow). */
int cglow_plot_posterior_pair(const char *path, const cglow_grid *g, const double *p1, const cglow_post_summary *s1,
                              const char *t1, const double *p2, const cglow_post_summary *s2, const char *t2);
/* Coverage bars and the rank histogram. */
int cglow_plot_calibration(const char *path, const cglow_calibration *c, const char *title);
/* Train and test loss per epoch from a loss.csv written by cglow train. */
int cglow_plot_loss(const char *path, const char *csv_path);
/* 1 if gnuplot can be run (plots are skipped with a warning otherwise). */
int cglow_plot_available(void);

/* ================================================================ report */
/* Builds dir/index.html from what is in dir (layout in src/science/report.c and cglow report
 * --help): pictures, JSON numbers as tables, the commands in dir/commands.txt. */
int cglow_report_build(const char *dir, const char *title);
/* Appends one command line to dir/commands.txt (for the report). */
int cglow_report_log_command(const char *dir, int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
