/* Training (model.md section 3): the loss in nats per pixel, gradient-norm clipping, Adam with
 * PyTorch's update, linear warm-up and reduce-on-plateau. A step whose loss or gradient is not
 * finite is not applied; it is counted. One contiguous buffer each for gradients and moments. */
#include "model/backend.h"
#include "io/safetensors.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cglow_trainer {
    cglow_model *m;
    cglow_optim_config o;
    const flow_backend *be;          /* the model's when the trainer was made */
    void *st;                        /* its training state: gradients and moments (backend.h) */
    int max_batch;
    real *grads;                     /* host copy of the last gradient, made on demand */
    int grads_current;
    real *xbuf, *cbuf;               /* float -> real copies (float64 build) */
    long step, skipped;
    double lr;                        /* current base lr (after plateau reductions) */
    double plateau_best;
    int plateau_bad;
};

void cglow_optim_config_default(cglow_optim_config *o)
{
    o->lr = 3e-4;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->clip_norm = 2.0;
    o->warmup_steps = 0;
    o->plateau_patience = 10;
    o->plateau_factor = 0.8;
    o->min_lr = 1e-5;
}

int cglow_trainer_create(cglow_model *m, const cglow_optim_config *o, int max_batch, cglow_trainer **out)
{
    if (max_batch < 1) return cglow_set_error(CGLOW_EARG, "batch size must be >= 1 (got %d)", max_batch);
    cglow_trainer *t = calloc(1, sizeof *t);
    if (!t) return cglow_set_error(CGLOW_ENOMEM, "out of memory");
    t->m = m;
    t->o = *o;
    t->max_batch = max_batch;
    t->lr = o->lr;
    t->plateau_best = INFINITY;
    t->be = model_backend(m);
#ifdef CGLOW_DOUBLE
    t->xbuf = malloc(sizeof(real) * m->dim * max_batch);
    t->cbuf = malloc(sizeof(real) * m->cfg.cond_features * max_batch);
    if (!t->xbuf || !t->cbuf) { cglow_trainer_free(t); return cglow_set_error(CGLOW_ENOMEM, "out of memory"); }
#endif
    int rc = t->be->train_create(m, max_batch, &t->st);
    if (rc) {
        cglow_trainer_free(t);
        return rc;
    }
    m->trainers++;
    *out = t;
    return 0;
}

void cglow_trainer_free(cglow_trainer *t)
{
    if (!t) return;
    if (t->st) {
        t->be->train_free(t->m, t->st);
        t->m->trainers--;
    }
    free(t->grads);
    free(t->xbuf);
    free(t->cbuf);
    free(t);
}

static int loss_grad(cglow_trainer *t, const float *x, const float *c, int n, double *loss, double *sumsq)
{
    if (n < 1 || n > t->max_batch) return cglow_set_error(CGLOW_EARG, "batch of %d maps (trainer made for 1..%d)", n, t->max_batch);
    const cglow_model *m = t->m;
    (void)m;
    const real *xr = (const real *)x, *cr = (const real *)c;
#ifdef CGLOW_DOUBLE
    for (size_t i = 0; i < (size_t)n * m->dim; i++) t->xbuf[i] = x[i];
    for (size_t i = 0; i < (size_t)n * m->cfg.cond_features; i++) t->cbuf[i] = c[i];
    xr = t->xbuf;
    cr = t->cbuf;
#endif
    t->grads_current = 0;
    return t->be->loss_grad(t->m, t->st, xr, cr, n, loss, sumsq);
}

int cglow_loss_grad(cglow_trainer *t, const float *x, const float *c, int n, double *loss)
{
    double sq;
    return loss_grad(t, x, c, n, loss, &sq);
}

int cglow_trainer_get_grad(const cglow_trainer *tc, int i, double *out)
{
    cglow_trainer *t = (cglow_trainer *)tc;   /* the host copy is a cache */
    if (i < 0 || i >= t->m->ntensors) return cglow_set_error(CGLOW_EARG, "tensor index %d out of range", i);
    if (!t->grads_current) {   /* one copy of the whole gradient per loss_grad */
        if (!t->grads && !(t->grads = malloc(sizeof(real) * (t->m->nparams ? t->m->nparams : 1))))
            return cglow_set_error(CGLOW_ENOMEM, "out of memory");
        int rc = t->be->get_state(t->m, t->st, t->grads, NULL, NULL);
        if (rc) return rc;
        t->grads_current = 1;
    }
    const tensor_entry *te = &t->m->tensors[i];
    for (size_t k = 0; k < te->info.size; k++) out[k] = t->grads[te->off + k];
    return 0;
}

int cglow_train_step(cglow_trainer *t, const float *x, const float *c, int n, cglow_step_result *r)
{
    double loss = 0, sq = 0;
    int rc = loss_grad(t, x, c, n, &loss, &sq);
    if (rc) return rc;
    const double norm = sqrt(sq);
    memset(r, 0, sizeof *r);
    r->loss = loss;
    r->grad_norm = norm;
    double lr = t->lr;
    if (t->o.warmup_steps > 0 && t->step < t->o.warmup_steps) lr *= (double)(t->step + 1) / t->o.warmup_steps;
    r->lr = lr;
    if (!isfinite(loss) || !isfinite(norm)) {
        t->skipped++;
        r->skipped = 1;
        return 0;
    }
    /* clip_grad_norm_ (PyTorch): scale by max_norm / (norm + 1e-6) when that is below 1 */
    double scale = 1;
    if (t->o.clip_norm > 0 && norm > t->o.clip_norm) scale = t->o.clip_norm / (norm + 1e-6);
    t->step++;
    const double b1 = t->o.beta1, b2 = t->o.beta2, eps = t->o.eps;
    const double bc1 = 1 - pow(b1, (double)t->step), bc2 = 1 - pow(b2, (double)t->step);
    const double step_size = lr / bc1, sbc2 = sqrt(bc2);
    /* the update itself: the backend's (the CPU loop of backend.c, or kcu_adam on the device) */
    return t->be->adam(t->m, t->st, scale, b1, b2, eps, step_size, sbc2);
}

void cglow_trainer_end_epoch(cglow_trainer *t, double epoch_loss)
{
    /* ReduceLROnPlateau(mode min, threshold 1e-4 relative, cooldown 0), as PyTorch */
    if (!isfinite(epoch_loss)) return;
    if (epoch_loss < t->plateau_best * (1 - 1e-4) || !isfinite(t->plateau_best)) {
        t->plateau_best = epoch_loss;
        t->plateau_bad = 0;
    } else if (++t->plateau_bad > t->o.plateau_patience) {
        double nl = t->lr * t->o.plateau_factor;
        t->lr = nl > t->o.min_lr ? nl : t->o.min_lr;
        t->plateau_bad = 0;
    }
}

long cglow_trainer_steps(const cglow_trainer *t) { return t->step; }
long cglow_trainer_skipped(const cglow_trainer *t) { return t->skipped; }
double cglow_trainer_lr(const cglow_trainer *t) { return t->lr; }

/* Optimiser state: adam.m.<name>, adam.v.<name> for each trainable tensor; metadata step, lr,
 * plateau state, skipped. */
int cglow_trainer_save(const cglow_trainer *t, const char *path)
{
    const cglow_model *m = t->m;
    int n = 0;
    for (int i = 0; i < m->ntensors; i++) n += 2 * (m->tensors[i].info.trainable != 0);
    st_tensor *ts = calloc(n ? n : 1, sizeof(st_tensor));
    float *buf = malloc(sizeof(float) * 2 * m->nparams);
    char **names = calloc(n ? n : 1, sizeof(char *));
    int rc = 0;
    if (!ts || !buf || !names) { rc = cglow_set_error(CGLOW_ENOMEM, "out of memory"); goto done; }
    real *mm = malloc(sizeof(real) * (2 * m->nparams + 1)), *vv = mm ? mm + m->nparams : NULL;
    if (!mm) { rc = cglow_set_error(CGLOW_ENOMEM, "out of memory"); goto done; }
    if ((rc = t->be->get_state(t->m, t->st, NULL, mm, vv))) { free(mm); goto done; }
    for (size_t i = 0; i < m->nparams; i++) { buf[i] = (float)mm[i]; buf[m->nparams + i] = (float)vv[i]; }
    free(mm);
    int k = 0;
    for (int i = 0; i < m->ntensors; i++) {
        const tensor_entry *te = &m->tensors[i];
        if (!te->info.trainable) continue;
        for (int which = 0; which < 2; which++, k++) {
            size_t len = strlen(te->info.name) + 8;
            names[k] = malloc(len);
            snprintf(names[k], len, "adam.%c.%s", which ? 'v' : 'm', te->info.name);
            ts[k].name = names[k];
            ts[k].dtype = ST_F32;
            ts[k].ndim = te->info.ndim;
            for (int d = 0; d < te->info.ndim; d++) ts[k].shape[d] = te->info.shape[d];
            ts[k].numel = te->info.size;
            ts[k].data = buf + (which ? m->nparams : 0) + te->off;
        }
    }
    char step[32], lr[64], best[64], bad[32], skipped[32];
    snprintf(step, sizeof step, "%ld", t->step);
    snprintf(lr, sizeof lr, "%.17g", t->lr);
    snprintf(best, sizeof best, "%.17g", t->plateau_best);
    snprintf(bad, sizeof bad, "%d", t->plateau_bad);
    snprintf(skipped, sizeof skipped, "%ld", t->skipped);
    const char *keys[6] = {"format", "step", "lr", "plateau_best", "plateau_bad", "skipped"};
    const char *vals[6] = {"cglow-optim", step, lr, best, bad, skipped};
    rc = st_write(path, n, ts, 6, keys, vals);
done:
    if (names) for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(ts);
    free(buf);
    return rc;
}

int cglow_trainer_load(cglow_trainer *t, const char *path)
{
    st_file f;
    int rc = st_read(path, &f);
    if (rc) return rc;
    const cglow_model *m = t->m;
    const char *fmt = st_meta(&f, "format"), *step = st_meta(&f, "step");
    if (!fmt || strcmp(fmt, "cglow-optim") || !step) {
        st_free(&f);
        return cglow_set_error(CGLOW_EFORMAT, "%s: not a cglow optimiser state", path);
    }
    /* the backend's moments, overwritten here and handed back whole (fixed tensors keep theirs) */
    real *mm = malloc(sizeof(real) * (2 * m->nparams + 1)), *vv = mm ? mm + m->nparams : NULL;
    if (!mm) rc = cglow_set_error(CGLOW_ENOMEM, "out of memory");
    else rc = t->be->get_state(t->m, t->st, NULL, mm, vv);
    for (int i = 0; i < m->ntensors && !rc; i++) {
        const tensor_entry *te = &m->tensors[i];
        if (!te->info.trainable) continue;
        for (int which = 0; which < 2 && !rc; which++) {
            char name[256];
            snprintf(name, sizeof name, "adam.%c.%s", which ? 'v' : 'm', te->info.name);
            const st_tensor *s = st_find(&f, name);
            if (!s || s->numel != te->info.size) {
                rc = cglow_set_error(CGLOW_ESHAPE, "%s: tensor '%s' is missing or has the wrong size", path, name);
                break;
            }
            real *dst = (which ? vv : mm) + te->off;
            for (size_t k = 0; k < s->numel; k++) {
                double v;
                if (s->dtype == ST_F32) { float fv; memcpy(&fv, (const char *)s->data + 4 * k, 4); v = fv; }
                else memcpy(&v, (const char *)s->data + 8 * k, 8);
                dst[k] = (real)v;
            }
        }
    }
    if (!rc) rc = t->be->set_state(t->m, t->st, mm, vv);
    free(mm);
    if (!rc) {
        t->step = strtol(step, NULL, 10);
        const char *v;
        if ((v = st_meta(&f, "lr"))) t->lr = strtod(v, NULL);
        if ((v = st_meta(&f, "plateau_best"))) t->plateau_best = strtod(v, NULL);
        if ((v = st_meta(&f, "plateau_bad"))) t->plateau_bad = (int)strtol(v, NULL, 10);
        if ((v = st_meta(&f, "skipped"))) t->skipped = strtol(v, NULL, 10);
    }
    st_free(&f);
    return rc;
}
