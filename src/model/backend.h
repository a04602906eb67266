/* Compute backends of the flow. A model runs its passes on the backend chosen with
 * cglow_model_set_device(): the CPU table (backend.c) wraps flow.c and the trainer's Adam loop as
 * they are; the CUDA table (flow_cuda.c, linked only into builds made with nvcc) keeps the
 * parameters, gradients and Adam moments on the device. Host arrays in, host arrays out: the API,
 * the CLI and the science code do not change with the device. */
#ifndef CGLOW_MODEL_BACKEND_H
#define CGLOW_MODEL_BACKEND_H
#include "model/model.h"

typedef struct flow_backend {
    const char *name;   /* "cpu", "cuda" */
    /* 1 if usable here; else 0 and a one-line reason */
    int (*available)(const char **reason);
    /* the backend's state for model m (device buffers); closed with close */
    int (*open)(cglow_model *m, void **state);
    void (*close)(cglow_model *m, void *state);
    /* flow_forward / flow_inverse on n maps: x, c, z host arrays (logp, z may be NULL) */
    int (*forward)(cglow_model *m, const real *x, const real *c, int n, double *logp, real *z);
    int (*inverse)(cglow_model *m, const real *z, const real *c, int n, real *x);
    /* copies parameters the backend changed (training) back into m->params; NULL: nothing to do */
    int (*sync_host)(cglow_model *m);
    /* Training state of one trainer (gradients and Adam moments, zero at first). */
    int (*train_create)(cglow_model *m, int max_batch, void **st);
    void (*train_free)(cglow_model *m, void *st);
    /* loss (model.md section 3) and its gradient on n maps; sumsq = |gradient|^2 */
    int (*loss_grad)(cglow_model *m, void *st, const real *x, const real *c, int n, double *loss, double *sumsq);
    /* the trainer's Adam update with the gradient scaled by `scale` (clipping) */
    int (*adam)(cglow_model *m, void *st, double scale, double b1, double b2, double eps, double step_size,
                double sbc2);
    /* copies of the last gradient and of the moments (params layout; any may be NULL) */
    int (*get_state)(cglow_model *m, void *st, real *grads, real *adam_m, real *adam_v);
    int (*set_state)(cglow_model *m, void *st, const real *adam_m, const real *adam_v);
} flow_backend;

extern const flow_backend flow_backend_cpu;
/* The CUDA table (flow_cuda.c). Declared weak in backend.c: without flow_cuda.o linked in it is
 * NULL and "cuda" is refused with CGLOW_ENOTSUP. */
const flow_backend *flow_backend_cuda(void);

static inline const flow_backend *model_backend(const cglow_model *m) { return m->be ? m->be : &flow_backend_cpu; }
/* Makes m->params current (after training on a device); call before reading them on the host. */
int model_sync_host(const cglow_model *m);
/* Closes the backend state (cglow_model_free). */
void model_backend_close(cglow_model *m);
#endif
