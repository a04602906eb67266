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

/* The data (issue 3) and science (issue 4) parts of the API. */
#include "cglow_data.h"
#include "cglow_science.h"

#ifdef __cplusplus
}
#endif
#endif
