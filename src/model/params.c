/* The model's tensor table (model.md section 4 names), its one parameter buffer, and the
 * initialisation of section 2. */
#include "model/backend.h"
#include "util/rng.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau, double *work, const int *lwork,
             int *info);
void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda, const double *tau, double *work,
             const int *lwork, int *info);
void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info);

int cglow_config_preset(cglow_config *cfg, const char *name)
{
    if (!name || strcmp(name, "higlow") != 0)
        return cglow_set_error(CGLOW_EARG, "unknown preset '%s' (known: higlow)", name ? name : "(null)");
    cfg->in_channels = 1;
    cfg->height = cfg->width = 64;
    cfg->levels = 6;
    cfg->steps = 20;
    cfg->hidden = 16;
    cfg->cond_features = 2;
    cfg->prior_hidden = 8;
    cfg->coupling_clamp = 0.5f;
    cfg->prior = CGLOW_PRIOR_CONDITIONAL;
    return 0;
}

int cglow_config_validate(const cglow_config *c)
{
    if (c->in_channels < 1 || c->height < 1 || c->width < 1)
        return cglow_set_error(CGLOW_EARG, "config: in_channels, height and width must be positive");
    if (c->levels < 0 || c->levels > 12)
        return cglow_set_error(CGLOW_EARG, "config: levels must be in 0..12 (got %d)", c->levels);
    if (c->steps < 1 || c->hidden < 1 || c->prior_hidden < 1)
        return cglow_set_error(CGLOW_EARG, "config: steps, hidden and prior_hidden must be positive");
    if (c->cond_features < 1 || c->cond_features > CGLOW_MAX_COND)
        return cglow_set_error(CGLOW_EARG, "config: cond_features must be in 1..%d (got %d)", CGLOW_MAX_COND,
                               c->cond_features);
    if (!(c->coupling_clamp >= 0 && c->coupling_clamp < 1))
        return cglow_set_error(CGLOW_EARG, "config: coupling_clamp must be in [0, 1) (got %g)", c->coupling_clamp);
    if (c->prior != CGLOW_PRIOR_CONDITIONAL && c->prior != CGLOW_PRIOR_LEARNED)
        return cglow_set_error(CGLOW_EARG, "config: unknown prior kind");
    int f = 1 << c->levels;
    if (c->height % f || c->width % f)
        return cglow_set_error(CGLOW_EARG, "config: height %d and width %d must be divisible by 2^levels = %d",
                               c->height, c->width, f);
    int C = c->in_channels;
    for (int b = 0; b < c->levels; b++) C *= 2;   /* after squeeze 4C, after split 2C */
    if (C % 2)
        return cglow_set_error(CGLOW_EARG, "config: the final block has %d channels; the coupling needs an even "
                               "number (use levels >= 1 or an even in_channels)", C);
    return 0;
}

/* ---- the tensor table */
typedef struct {
    cglow_model *m;
    int cap;
} table_builder;

static size_t add_tensor(table_builder *tb, int trainable, int ndim, int d0, int d1, int d2, int d3,
                         const char *fmt, ...) __attribute__((format(printf, 8, 9)));

static size_t add_tensor(table_builder *tb, int trainable, int ndim, int d0, int d1, int d2, int d3,
                         const char *fmt, ...)
{
    cglow_model *m = tb->m;
    if (m->ntensors == tb->cap) {
        tb->cap = tb->cap ? 2 * tb->cap : 256;
        m->tensors = realloc(m->tensors, sizeof(tensor_entry) * tb->cap);
        if (!m->tensors) abort();
    }
    char name[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    tensor_entry *t = &m->tensors[m->ntensors++];
    memset(t, 0, sizeof *t);
    t->info.name = strdup(name);
    t->info.ndim = ndim;
    int d[4] = {d0, d1, d2, d3};
    size_t size = 1;
    for (int i = 0; i < ndim; i++) { t->info.shape[i] = d[i]; size *= (size_t)d[i]; }
    t->info.size = size;
    t->info.trainable = trainable;
    t->off = m->nparams;
    m->nparams += size;
    return t->off;
}

static void add_mlp(table_builder *tb, mlp_offsets *o, int b, const char *which, int P, int Hc, int D)
{
    o->w1 = add_tensor(tb, 1, 2, Hc, P, 0, 0, "blocks.%d.prior.%s.fc1.weight", b, which);
    o->b1 = add_tensor(tb, 1, 1, Hc, 0, 0, 0, "blocks.%d.prior.%s.fc1.bias", b, which);
    o->w2 = add_tensor(tb, 1, 2, Hc, Hc, 0, 0, "blocks.%d.prior.%s.fc2.weight", b, which);
    o->b2 = add_tensor(tb, 1, 1, Hc, 0, 0, 0, "blocks.%d.prior.%s.fc2.bias", b, which);
    o->w3 = add_tensor(tb, 1, 2, D, Hc, 0, 0, "blocks.%d.prior.%s.fc3.weight", b, which);
    o->b3 = add_tensor(tb, 1, 1, D, 0, 0, 0, "blocks.%d.prior.%s.fc3.bias", b, which);
}

size_t step_tape_size(const cglow_model *m, const block_info *b)
{
    /* x0, x1, x2 (C each), then the coupling's h1, h2, o in padded planes */
    size_t hw = (size_t)b->H * b->W;
    return 3 * (size_t)b->C * hw + (2 * (size_t)m->cfg.hidden + b->C) * k_plane_map_bound(b->H, b->W);
}

void cglow_blas_single_threaded(void);

int model_alloc(const cglow_config *cfg, cglow_model **out)
{
    int rc = cglow_config_validate(cfg);
    if (rc) return rc;
    cglow_blas_single_threaded();
    cglow_model *m = calloc(1, sizeof *m);
    if (!m) return cglow_set_error(CGLOW_ENOMEM, "out of memory");
    m->cfg = *cfg;
    cglow_data_config_default(&m->data, cfg->cond_features);
    m->nblocks = cfg->levels + 1;
    m->blocks = calloc(m->nblocks, sizeof(block_info));
    if (!m->blocks) { free(m); return cglow_set_error(CGLOW_ENOMEM, "out of memory"); }
    table_builder tb = {m, 0};
    const int P = cfg->cond_features, Hd = cfg->hidden, Hc = cfg->prior_hidden;
    int C = cfg->in_channels, H = cfg->height, W = cfg->width;
    size_t zoff = 0, tape = 0;
    m->dim = (size_t)C * H * W;
    for (int bi = 0; bi < m->nblocks; bi++) {
        block_info *b = &m->blocks[bi];
        b->final = bi == cfg->levels;
        if (!b->final) { C *= 4; H /= 2; W /= 2; }
        b->C = C; b->H = H; b->W = W;
        b->zdim = (size_t)(b->final ? C : C / 2) * H * W;
        b->zoff = zoff;
        zoff += b->zdim;
        b->steps = calloc(cfg->steps, sizeof(step_offsets));
        if (!b->steps) abort();
        b->tape_off = tape;
        tape += (size_t)cfg->steps * step_tape_size(m, b) + (size_t)C * H * W;
        for (int k = 0; k < cfg->steps; k++) {
            step_offsets *s = &b->steps[k];
#define T(tr, nd, a0, a1, a2, a3, nm) add_tensor(&tb, tr, nd, a0, a1, a2, a3, "blocks.%d.steps.%d." nm, bi, k)
            s->perm = T(0, 2, C, C, 0, 0, "invconv.perm");
            s->lower = T(1, 2, C, C, 0, 0, "invconv.lower");
            s->upper = T(1, 2, C, C, 0, 0, "invconv.upper");
            s->log_s = T(1, 1, C, 0, 0, 0, "invconv.log_s");
            s->sign = T(0, 1, C, 0, 0, 0, "invconv.sign");
            s->inj_w1 = T(1, 4, Hd, P, 3, 3, "injector.conv1.weight");
            s->inj_b1 = T(1, 1, Hd, 0, 0, 0, "injector.conv1.bias");
            s->inj_w2 = T(1, 4, Hd, Hd, 1, 1, "injector.conv2.weight");
            s->inj_b2 = T(1, 1, Hd, 0, 0, 0, "injector.conv2.bias");
            s->inj_zw = T(1, 4, 2 * C, Hd, 3, 3, "injector.zero.weight");
            s->inj_zb = T(1, 1, 2 * C, 0, 0, 0, "injector.zero.bias");
            s->inj_zs = T(1, 1, 2 * C, 0, 0, 0, "injector.zero.scale");
            s->cp_w1 = T(1, 4, Hd, C / 2 + P, 3, 3, "coupling.conv1.weight");
            s->cp_b1 = T(1, 1, Hd, 0, 0, 0, "coupling.conv1.bias");
            s->cp_w2 = T(1, 4, Hd, Hd, 1, 1, "coupling.conv2.weight");
            s->cp_b2 = T(1, 1, Hd, 0, 0, 0, "coupling.conv2.bias");
            s->cp_zw = T(1, 4, C, Hd, 3, 3, "coupling.zero.weight");
            s->cp_zb = T(1, 1, C, 0, 0, 0, "coupling.zero.bias");
            s->cp_zs = T(1, 1, C, 0, 0, 0, "coupling.zero.scale");
#undef T
            s->wc = m->wsize;
            m->wsize += (size_t)C * C;
            const int rh = H < 5 ? H : 5, rw = W < 5 ? W : 5;
            s->pc_w1 = m->prep_size;
            m->prep_size += k_conv3x3_prepared_size(coupling_cond_in_conv(b) ? C / 2 + P : C / 2, Hd, H, W);
            s->pc_zw = m->prep_size; m->prep_size += k_conv3x3_prepared_size(Hd, C, H, W);
            s->pc_cond = m->prep_size;
            if (!coupling_cond_in_conv(b)) m->prep_size += (size_t)Hd * P * 16;
            s->pi_w1 = m->prep_size; m->prep_size += k_conv3x3_prepared_size(P, Hd, rh, rw);
            s->pi_zw = m->prep_size; m->prep_size += k_conv3x3_prepared_size(Hd, 2 * C, rh, rw);
        }
        if (cfg->prior == CGLOW_PRIOR_CONDITIONAL) {
            add_mlp(&tb, &b->prior_mean, bi, "mean", P, Hc, (int)b->zdim);
            add_mlp(&tb, &b->prior_logvar, bi, "logvar", P, Hc, (int)b->zdim);
            for (int k = 0; k < 2; k++) { b->prep_w3t[k] = m->prep_size; m->prep_size += (size_t)Hc * b->zdim; }
        } else {
            int zc = b->final ? C : C / 2;
            b->learned_mean = add_tensor(&tb, 1, 3, zc, H, W, 0, "blocks.%d.prior.mean", bi);
            b->learned_logvar = add_tensor(&tb, 1, 3, zc, H, W, 0, "blocks.%d.prior.logvar", bi);
        }
        if (!b->final) C /= 2;
    }
    m->tape_size = tape;
    m->params = calloc(m->nparams, sizeof(real));
    m->wfwd = calloc(m->wsize, sizeof(real));
    m->winv = calloc(m->wsize, sizeof(real));
    m->prep = calloc(m->prep_size, sizeof(real));
    if (!m->params || !m->wfwd || !m->winv || !m->prep) {
        cglow_model_free(m);
        return cglow_set_error(CGLOW_ENOMEM, "out of memory for %zu parameters", m->nparams);
    }
    m->params_version = 1;
    *out = m;
    return 0;
}

void cglow_model_free(cglow_model *m)
{
    if (!m) return;
    model_backend_close(m);
    for (int i = 0; i < m->ntensors; i++) free((char *)m->tensors[i].info.name);
    free(m->tensors);
    if (m->blocks)
        for (int b = 0; b < m->nblocks; b++) free(m->blocks[b].steps);
    free(m->blocks);
    free(m->params);
    free(m->wfwd);
    free(m->winv);
    free(m->prep);
    free(m->train_state);
    flow_work_free(m->work);
    free(m);
}

int model_find_tensor(const cglow_model *m, const char *name)
{
    for (int i = 0; i < m->ntensors; i++)
        if (!strcmp(m->tensors[i].info.name, name)) return i;
    return -1;
}

void model_params_changed(cglow_model *m) { m->params_version++; }

/* ---- initialisation */

/* Invertible 1x1 conv: QR of a Gaussian matrix, then W = P L U of that orthogonal matrix. */
static void init_invconv(cglow_model *m, const step_offsets *s, int C, rng_t *r)
{
    double *a = malloc(sizeof(double) * C * C), *tau = malloc(sizeof(double) * C);
    int lwork = 64 * C, info = 0, *ipiv = malloc(sizeof(int) * C), *p = malloc(sizeof(int) * C);
    double *work = malloc(sizeof(double) * lwork);
    if (!a || !tau || !work || !ipiv || !p) abort();
    for (int i = 0; i < C * C; i++) a[i] = rng_normal(r);
    dgeqrf_(&C, &C, a, &C, tau, work, &lwork, &info);
    dorgqr_(&C, &C, &C, a, &C, tau, work, &lwork, &info);
    /* a now holds Q column-major; LU-factorise it (still column-major): Q = P L U. */
    dgetrf_(&C, &C, a, &C, ipiv, &info);
    for (int i = 0; i < C; i++) p[i] = i;
    for (int i = 0; i < C; i++) { int t = p[i]; p[i] = p[ipiv[i] - 1]; p[ipiv[i] - 1] = t; }
    real *perm = m->params + s->perm, *lower = m->params + s->lower, *upper = m->params + s->upper;
    real *log_s = m->params + s->log_s, *sign = m->params + s->sign;
    /* The row swaps give P^T Q = L U: row i of P^T Q is row p[i] of Q, so P[p[i]][i] = 1. */
    for (int i = 0; i < C * C; i++) perm[i] = 0;
    for (int i = 0; i < C; i++) perm[p[i] * C + i] = 1;
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            double v = a[i + j * C];   /* element (i, j) */
            lower[i * C + j] = i > j ? (real)v : 0;
            upper[i * C + j] = i < j ? (real)v : 0;
        }
    for (int i = 0; i < C; i++) {
        double d = a[i + i * C];
        sign[i] = d < 0 ? -1 : 1;
        log_s[i] = (real)log(fabs(d));
    }
    free(a); free(tau); free(work); free(ipiv); free(p);
}

static void fill_normal(real *x, size_t n, double std, rng_t *r)
{
    for (size_t i = 0; i < n; i++) x[i] = (real)(std * rng_normal(r));
}

static void fill_uniform(real *x, size_t n, double bound, rng_t *r)
{
    for (size_t i = 0; i < n; i++) x[i] = (real)(bound * (2 * rng_uniform(r) - 1));
}

static void init_mlp(cglow_model *m, const mlp_offsets *o, int P, int Hc, size_t D, rng_t *r)
{
    /* PyTorch's default Linear init: U(-1/sqrt(in), 1/sqrt(in)); fc2, fc3 biases zero. */
    fill_uniform(m->params + o->w1, (size_t)Hc * P, 1 / sqrt(P), r);
    fill_uniform(m->params + o->b1, Hc, 1 / sqrt(P), r);
    fill_uniform(m->params + o->w2, (size_t)Hc * Hc, 1 / sqrt(Hc), r);
    fill_uniform(m->params + o->w3, D * Hc, 1 / sqrt(Hc), r);
}

void model_init_params(cglow_model *m, uint64_t seed)
{
    memset(m->params, 0, sizeof(real) * m->nparams);
    const int P = m->cfg.cond_features, Hd = m->cfg.hidden, Hc = m->cfg.prior_hidden;
    rng_t r;
    rng_seed(&r, seed);
    for (int bi = 0; bi < m->nblocks; bi++) {
        block_info *b = &m->blocks[bi];
        const int C = b->C;
        for (int k = 0; k < m->cfg.steps; k++) {
            const step_offsets *s = &b->steps[k];
            init_invconv(m, s, C, &r);
            fill_normal(m->params + s->inj_w1, (size_t)Hd * P * 9, 0.05, &r);
            fill_normal(m->params + s->inj_w2, (size_t)Hd * Hd, 0.05, &r);
            fill_normal(m->params + s->cp_w1, (size_t)Hd * (C / 2 + P) * 9, 0.05, &r);
            fill_normal(m->params + s->cp_w2, (size_t)Hd * Hd, 0.05, &r);
        }
        if (m->cfg.prior == CGLOW_PRIOR_CONDITIONAL) {
            init_mlp(m, &b->prior_mean, P, Hc, b->zdim, &r);
            init_mlp(m, &b->prior_logvar, P, Hc, b->zdim, &r);
        }
    }
    model_params_changed(m);
}

int cglow_model_create(const cglow_config *cfg, uint64_t seed, cglow_model **out)
{
    int rc = model_alloc(cfg, out);
    if (rc) return rc;
    model_init_params(*out, seed);
    return 0;
}

/* ---- accessors */
const cglow_config *cglow_model_config(const cglow_model *m) { return &m->cfg; }
cglow_data_config *cglow_model_data(cglow_model *m) { return &m->data; }
size_t cglow_model_dim(const cglow_model *m) { return m->dim; }
int cglow_model_num_tensors(const cglow_model *m) { return m->ntensors; }
const cglow_tensor_info *cglow_model_tensor(const cglow_model *m, int i)
{
    return i >= 0 && i < m->ntensors ? &m->tensors[i].info : NULL;
}

size_t cglow_model_num_params(const cglow_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->ntensors; i++)
        if (m->tensors[i].info.trainable) n += m->tensors[i].info.size;
    return n;
}

int cglow_model_get_tensor(const cglow_model *m, int i, float *out)
{
    if (i < 0 || i >= m->ntensors) return cglow_set_error(CGLOW_EARG, "tensor index %d out of range", i);
    int rc = model_sync_host(m);
    if (rc) return rc;
    const real *p = m->params + m->tensors[i].off;
    for (size_t k = 0; k < m->tensors[i].info.size; k++) out[k] = (float)p[k];
    return 0;
}

int cglow_model_set_tensor(cglow_model *m, int i, const float *in)
{
    if (i < 0 || i >= m->ntensors) return cglow_set_error(CGLOW_EARG, "tensor index %d out of range", i);
    int rc = model_sync_host(m);   /* the other tensors must be current before the version moves */
    if (rc) return rc;
    real *p = m->params + m->tensors[i].off;
    for (size_t k = 0; k < m->tensors[i].info.size; k++) p[k] = in[k];
    model_params_changed(m);
    return 0;
}

const char *cglow_model_train_state(const cglow_model *m) { return m->train_state; }
int cglow_model_set_train_state(cglow_model *m, const char *json)
{
    free(m->train_state);
    m->train_state = json ? strdup(json) : NULL;
    return 0;
}
