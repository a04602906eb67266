/* The device choice and the CPU backend: flow.c's passes and the trainer's Adam loop, unchanged,
 * behind the flow_backend table (backend.h). */
#include "model/backend.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- CPU */
static flow_work *get_work(cglow_model *m)
{
    int nt = cglow_get_threads();
    if (m->work && m->work_threads == nt) return m->work;
    flow_work_free(m->work);
    m->work = flow_work_create(m, 0, 0);
    m->work_threads = nt;
    return m->work;
}

static int cpu_available(const char **reason)
{
    if (reason) *reason = "available";
    return 1;
}

static int cpu_open(cglow_model *m, void **state)
{
    (void)m;
    *state = NULL;
    return 0;
}

static void cpu_close(cglow_model *m, void *state) { (void)m; (void)state; }

static int cpu_forward(cglow_model *m, const real *x, const real *c, int n, double *logp, real *z)
{
    flow_work *w = get_work(m);
    if (!w) return cglow_set_error(CGLOW_ENOMEM, "out of memory for the flow's work area");
    return flow_forward(m, w, x, c, n, logp, z);
}

static int cpu_inverse(cglow_model *m, const real *z, const real *c, int n, real *x)
{
    flow_work *w = get_work(m);
    if (!w) return cglow_set_error(CGLOW_ENOMEM, "out of memory for the flow's work area");
    return flow_inverse(m, w, z, c, n, x);
}

typedef struct {
    flow_work *work;
    real *grads, *adam_m, *adam_v;   /* params layout */
} cpu_train;

static void cpu_train_free(cglow_model *m, void *st)
{
    (void)m;
    cpu_train *t = st;
    if (!t) return;
    flow_work_free(t->work);
    free(t->grads);
    free(t->adam_m);
    free(t->adam_v);
    free(t);
}

static int cpu_train_create(cglow_model *m, int max_batch, void **st)
{
    cpu_train *t = calloc(1, sizeof *t);
    if (!t) return cglow_set_error(CGLOW_ENOMEM, "out of memory");
    t->work = flow_work_create(m, max_batch, 1);
    t->grads = calloc(m->nparams, sizeof(real));
    t->adam_m = calloc(m->nparams, sizeof(real));
    t->adam_v = calloc(m->nparams, sizeof(real));
    if (!t->work || !t->grads || !t->adam_m || !t->adam_v) {
        cpu_train_free(m, t);
        return cglow_set_error(CGLOW_ENOMEM, "out of memory for training buffers (%zu parameters)", m->nparams);
    }
    *st = t;
    return 0;
}

static int cpu_loss_grad(cglow_model *m, void *st, const real *x, const real *c, int n, double *loss, double *sumsq)
{
    cpu_train *t = st;
    /* the sum of squares comes from flow_loss_grad's final pass over the gradient */
    return flow_loss_grad(m, t->work, x, c, n, loss, NULL, t->grads, sumsq);
}

static int cpu_adam(cglow_model *m, void *st, double scale, double b1, double b2, double eps, double step_size,
                    double sbc2)
{
    cpu_train *t = st;
    real *p = m->params, *g = t->grads, *mm = t->adam_m, *vv = t->adam_v;
    const size_t N = m->nparams;
#pragma omp parallel for schedule(static) num_threads(cglow_get_threads())
    for (size_t i = 0; i < N; i++) {
        const double gi = g[i] * scale;
        mm[i] = (real)(b1 * mm[i] + (1 - b1) * gi);
        vv[i] = (real)(b2 * vv[i] + (1 - b2) * gi * gi);
        p[i] -= (real)(step_size * mm[i] / (sqrt((double)vv[i]) / sbc2 + eps));
    }
    /* fixed tensors (perm, sign) have zero gradient and zero moments: untouched */
    model_params_changed(m);
    return 0;
}

static int cpu_get_state(cglow_model *m, void *st, real *grads, real *adam_m, real *adam_v)
{
    cpu_train *t = st;
    const size_t b = sizeof(real) * m->nparams;
    if (grads) memcpy(grads, t->grads, b);
    if (adam_m) memcpy(adam_m, t->adam_m, b);
    if (adam_v) memcpy(adam_v, t->adam_v, b);
    return 0;
}

static int cpu_set_state(cglow_model *m, void *st, const real *adam_m, const real *adam_v)
{
    cpu_train *t = st;
    const size_t b = sizeof(real) * m->nparams;
    if (adam_m) memcpy(t->adam_m, adam_m, b);
    if (adam_v) memcpy(t->adam_v, adam_v, b);
    return 0;
}

const flow_backend flow_backend_cpu = {
    "cpu", cpu_available, cpu_open, cpu_close, cpu_forward, cpu_inverse, NULL,
    cpu_train_create, cpu_train_free, cpu_loss_grad, cpu_adam, cpu_get_state, cpu_set_state,
};

/* ---------------------------------------------------------------- the device choice */
/* Defined by flow_cuda.c in builds with the CUDA backend; NULL (weak) otherwise. */
__attribute__((weak)) const flow_backend *flow_backend_cuda(void);

static const flow_backend *cuda_table(const char **why)
{
#ifdef CGLOW_DOUBLE
    *why = "the float64 engine has no CUDA backend";
    return NULL;
#else
    if (!flow_backend_cuda) {
        *why = "this build of cglow has no CUDA backend (build it where nvcc is installed)";
        return NULL;
    }
    return flow_backend_cuda();
#endif
}

int cglow_cuda_available(const char **reason)
{
    static _Thread_local char buf[256];
    const char *why = NULL;
    const flow_backend *be = cuda_table(&why);
    if (!be) {
        if (reason) *reason = why;
        return 0;
    }
    if (be->available(&why)) {
        if (reason) *reason = "available";
        return 1;
    }
    snprintf(buf, sizeof buf, "no usable CUDA device (%s)", why);
    if (reason) *reason = buf;
    return 0;
}

int cglow_model_set_device(cglow_model *m, const char *device)
{
    const flow_backend *nb = NULL;
    if (!device || !strcmp(device, "cpu")) nb = &flow_backend_cpu;
    else if (!strcmp(device, "cuda") || !strcmp(device, "cuda:0")) {
        const char *why = NULL;
        if (!(nb = cuda_table(&why))) return cglow_set_error(CGLOW_ENOTSUP, "device cuda: %s", why);
        if (!nb->available(&why)) return cglow_set_error(CGLOW_ENOTSUP, "device cuda: no usable CUDA device (%s)", why);
    } else
        return cglow_set_error(CGLOW_EARG, "unknown device '%s' (cpu or cuda)", device);
    const flow_backend *old = model_backend(m);
    if (nb == old) return 0;
    if (m->trainers)
        return cglow_set_error(CGLOW_EARG, "device %s: choose the device before creating a trainer (%d alive)",
                               nb->name, m->trainers);
    int rc = model_sync_host(m);
    void *st = NULL;
    if (!rc) rc = nb->open(m, &st);
    if (rc) return rc;
    old->close(m, m->be_state);
    m->be = nb;
    m->be_state = st;
    return 0;
}

const char *cglow_model_device(const cglow_model *m) { return model_backend(m)->name; }

int model_sync_host(const cglow_model *m)
{
    const flow_backend *be = model_backend(m);
    /* the host copy is logically part of the model: refreshing it is not a change */
    return be->sync_host ? be->sync_host((cglow_model *)m) : 0;
}

void model_backend_close(cglow_model *m)
{
    model_backend(m)->close(m, m->be_state);
    m->be = NULL;
    m->be_state = NULL;
}
