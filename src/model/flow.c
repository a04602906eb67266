/* The whole flow (model.md 2.1): blocks of squeeze -> K x (invconv, injector, coupling) -> split,
 * a final block without squeeze or split, and the priors. One map at a time per thread; OpenMP
 * over the maps of a batch (static schedule, so sums are reproducible for a thread count).
 *
 * Training needs no batch-sized activation store: the loss is a mean of per-map terms with a
 * fixed weight, so each thread runs one map's forward (saving that map's activations on its tape)
 * and immediately its backward, accumulating gradients in its own buffer. */
#include "model/model.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>

struct flow_work {
    int nthreads;
    size_t per_thread;     /* elements of one thread's region */
    size_t acc_size;       /* nparams + wsize, when with_tape */
    real *mem;
};

/* One thread's region: h, t, dh, dt (dim each), input copy (dim + P), layer scratch,
 * one map's tape, gradient accumulator (params layout) and dW accumulator. */
typedef struct { real *h, *t, *dh, *dt, *xin, *cin, *ws, *tape, *acc, *accw; } thread_bufs;

static size_t layer_scratch(const cglow_model *m)
{
    size_t mx = 0;
    for (int bi = 0; bi < m->nblocks; bi++) {
        const block_info *b = &m->blocks[bi];
        size_t a = injector_scratch_size(m, b), c = coupling_scratch_size(m, b), p = prior_scratch_size(m, b);
        if (a > mx) mx = a;
        if (c > mx) mx = c;
        if (p > mx) mx = p;
    }
    return mx;
}

flow_work *flow_work_create(const cglow_model *m, int max_batch, int with_tape)
{
    (void)max_batch;
    flow_work *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->nthreads = cglow_get_threads();
    w->acc_size = with_tape ? m->nparams + m->wsize : 0;
    w->per_thread = 5 * m->dim + CGLOW_MAX_COND + layer_scratch(m) + (with_tape ? m->tape_size : 0) + w->acc_size;
    w->per_thread = (w->per_thread + 15) & ~(size_t)15;   /* 64-byte aligned regions */
    w->mem = aligned_alloc(64, sizeof(real) * w->per_thread * w->nthreads);
    if (!w->mem) { free(w); return NULL; }
    return w;
}

void flow_work_free(flow_work *w)
{
    if (!w) return;
    free(w->mem);
    free(w);
}

static thread_bufs bufs_of(const cglow_model *m, flow_work *w, int tid)
{
    thread_bufs b;
    real *p = w->mem + (size_t)tid * w->per_thread;
    b.h = p; p += m->dim;
    b.t = p; p += m->dim;
    b.dh = p; p += m->dim;
    b.dt = p; p += m->dim;
    b.xin = p; p += m->dim;
    b.cin = p; p += CGLOW_MAX_COND;
    b.ws = p; p += layer_scratch(m);
    b.tape = w->acc_size ? p : NULL; p += w->acc_size ? m->tape_size : 0;
    b.acc = w->acc_size ? p : NULL;
    b.accw = w->acc_size ? p + m->nparams : NULL;
    return b;
}

void model_update_wfwd(cglow_model *m)
{
    if (m->wfwd_version == m->params_version) return;
    for (int bi = 0; bi < m->nblocks; bi++)
        for (int k = 0; k < m->cfg.steps; k++) {
            const step_offsets *s = &m->blocks[bi].steps[k];
            invconv_weight(m->wfwd + s->wc, m->params, s, m->blocks[bi].C);
        }
    m->wfwd_version = m->params_version;
}

void model_update_winv(cglow_model *m)
{
    if (m->winv_version == m->params_version) return;
    for (int bi = 0; bi < m->nblocks; bi++)
        for (int k = 0; k < m->cfg.steps; k++) {
            const step_offsets *s = &m->blocks[bi].steps[k];
            invconv_weight_inverse(m->winv + s->wc, m->params, s, m->blocks[bi].C);
        }
    m->winv_version = m->params_version;
}

#define SWAP(a, b) do { real *t_ = (a); (a) = (b); (b) = t_; } while (0)

/* log p(x|c) of one map; z (may be NULL) receives the latents; tape (may be NULL) the
 * activations backward needs. */
static double map_forward(const cglow_model *m, const real *x, const real *c, real *z, real *tape, thread_bufs *tb)
{
    const real *P = m->params;
    real *h = tb->h, *t = tb->t;
    int Cin = m->cfg.in_channels, Hin = m->cfg.height, Win = m->cfg.width;
    memcpy(h, x, sizeof(real) * m->dim);
    double logp = 0;
    for (int bi = 0; bi < m->nblocks; bi++) {
        const block_info *b = &m->blocks[bi];
        const int C = b->C, HW = b->H * b->W;
        const size_t chw = (size_t)C * HW, sts = step_tape_size(m, b);
        if (!b->final) { squeeze_fwd(t, h, Cin, Hin, Win); SWAP(h, t); }
        for (int k = 0; k < m->cfg.steps; k++) {
            const step_offsets *s = &b->steps[k];
            real *st = tape ? tape + b->tape_off + k * sts : NULL;
            if (st) memcpy(st, h, sizeof(real) * chw);
            logp += invconv_fwd(t, h, m->wfwd + s->wc, P, s, C, HW);
            SWAP(h, t);
            if (st) memcpy(st + chw, h, sizeof(real) * chw);
            logp += injector_fwd(t, h, c, P, s, m, b, tb->ws);
            SWAP(h, t);
            if (st) memcpy(st + 2 * chw, h, sizeof(real) * chw);
            logp += coupling_fwd(t, h, c, P, s, m, b, st ? st + 3 * chw : NULL, tb->ws);
            SWAP(h, t);
        }
        if (tape) memcpy(tape + b->tape_off + m->cfg.steps * sts, h, sizeof(real) * chw);
        const real *zb = b->final ? h : h + chw / 2;
        logp += prior_logp(zb, c, P, m, b, tb->ws);
        if (z) memcpy(z + b->zoff, zb, sizeof(real) * b->zdim);
        Cin = C / 2; Hin = b->H; Win = b->W;
    }
    return logp;
}

/* Backward of one map from its tape; g = d loss / d log p(x|c). Accumulates into acc (params
 * layout) and accw (invconv dW). */
static void map_backward(const cglow_model *m, const real *c, const real *tape, real g, thread_bufs *tb)
{
    const real *P = m->params;
    real *dh = tb->dh, *dt = tb->dt;
    for (int bi = m->nblocks - 1; bi >= 0; bi--) {
        const block_info *b = &m->blocks[bi];
        const int C = b->C, HW = b->H * b->W;
        const size_t chw = (size_t)C * HW, sts = step_tape_size(m, b);
        const real *out = tape + b->tape_off + m->cfg.steps * sts;
        if (b->final) prior_bwd(dh, tb->acc, out, g, c, P, m, b, tb->ws);
        else prior_bwd(dh + chw / 2, tb->acc, out + chw / 2, g, c, P, m, b, tb->ws);
        for (int k = m->cfg.steps - 1; k >= 0; k--) {
            const step_offsets *s = &b->steps[k];
            const real *st = tape + b->tape_off + k * sts;
            coupling_bwd(dt, tb->acc, dh, st + 2 * chw, g, c, P, s, m, b, st + 3 * chw, tb->ws);
            SWAP(dh, dt);
            injector_bwd(dt, tb->acc, dh, st + chw, g, c, P, s, m, b, tb->ws);
            SWAP(dh, dt);
            invconv_bwd(dt, tb->accw + s->wc, dh, st, m->wfwd + s->wc, C, HW);
            SWAP(dh, dt);
            real *gls = tb->acc + s->log_s;   /* logdet = HW * sum(log_s) */
            for (int i = 0; i < C; i++) gls[i] += g * (real)HW;
        }
        if (!b->final) {
            /* gradient of the block input = the previous block's continuing half */
            squeeze_inv(dt, dh, C / 4, b->H * 2, b->W * 2);
            SWAP(dh, dt);
        }
    }
    /* keep the buffers' roles stable for the caller */
    tb->dh = dh; tb->dt = dt;
}

static void map_inverse(const cglow_model *m, const real *z, const real *c, real *x, thread_bufs *tb)
{
    const real *P = m->params;
    real *h = tb->h, *t = tb->t;
    for (int bi = m->nblocks - 1; bi >= 0; bi--) {
        const block_info *b = &m->blocks[bi];
        const int C = b->C, HW = b->H * b->W;
        const size_t chw = (size_t)C * HW;
        memcpy(b->final ? h : h + chw / 2, z + b->zoff, sizeof(real) * b->zdim);
        for (int k = m->cfg.steps - 1; k >= 0; k--) {
            const step_offsets *s = &b->steps[k];
            coupling_inv(t, h, c, P, s, m, b, tb->ws);
            SWAP(h, t);
            injector_inv(t, h, c, P, s, m, b, tb->ws);
            SWAP(h, t);
            invconv_inv(t, h, m->winv + s->wc, C, HW);
            SWAP(h, t);
        }
        if (!b->final) { squeeze_inv(t, h, C / 4, b->H * 2, b->W * 2); SWAP(h, t); }
    }
    memcpy(x, h, sizeof(real) * m->dim);
}

int flow_forward(cglow_model *m, flow_work *w, const real *x, const real *c, int n, double *logp, real *z)
{
    model_update_wfwd(m);
    const int P = m->cfg.cond_features;
#pragma omp parallel num_threads(w->nthreads)
    {
        thread_bufs tb = bufs_of(m, w, omp_get_thread_num());
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            double lp = map_forward(m, x + (size_t)i * m->dim, c + (size_t)i * P, z ? z + (size_t)i * m->dim : NULL,
                                    NULL, &tb);
            if (logp) logp[i] = lp;
        }
    }
    return 0;
}

int flow_inverse(cglow_model *m, flow_work *w, const real *z, const real *c, int n, real *x)
{
    model_update_winv(m);
    const int P = m->cfg.cond_features;
#pragma omp parallel num_threads(w->nthreads)
    {
        thread_bufs tb = bufs_of(m, w, omp_get_thread_num());
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++)
            map_inverse(m, z + (size_t)i * m->dim, c + (size_t)i * P, x + (size_t)i * m->dim, &tb);
    }
    return 0;
}

int flow_loss_grad(cglow_model *m, flow_work *w, const real *x, const real *c, int n, double *loss,
                   double *logp, real *grads)
{
    if (!w->acc_size) return cglow_set_error(CGLOW_EARG, "flow_loss_grad: work area has no tape");
    model_update_wfwd(m);
    const int P = m->cfg.cond_features;
    const real g = (real)(-1.0 / ((double)n * (double)m->dim));
    double sum = 0;
    const int nt = w->nthreads;
#pragma omp parallel num_threads(nt) reduction(+ : sum)
    {
        thread_bufs tb = bufs_of(m, w, omp_get_thread_num());
        memset(tb.acc, 0, sizeof(real) * w->acc_size);
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            const real *ci = c + (size_t)i * P;
            double lp = map_forward(m, x + (size_t)i * m->dim, ci, NULL, tb.tape, &tb);
            if (logp) logp[i] = lp;
            sum += lp;
            map_backward(m, ci, tb.tape, g, &tb);
        }
    }
    /* Sum the threads' accumulators in a fixed order (reproducible for a thread count). */
    real *total = bufs_of(m, w, 0).acc;
    const size_t A = w->acc_size;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < A; i++) {
        real s = total[i];
        for (int t = 1; t < nt; t++) s += w->mem[(size_t)t * w->per_thread + (total - w->mem) + i];
        total[i] = s;
    }
    memcpy(grads, total, sizeof(real) * m->nparams);
    for (int bi = 0; bi < m->nblocks; bi++)
        for (int k = 0; k < m->cfg.steps; k++) {
            const step_offsets *s = &m->blocks[bi].steps[k];
            invconv_weight_grad(grads, m->params, s, total + m->nparams + s->wc, m->blocks[bi].C);
        }
    /* perm and sign are fixed */
    for (int i = 0; i < m->ntensors; i++)
        if (!m->tensors[i].info.trainable) memset(grads + m->tensors[i].off, 0, sizeof(real) * m->tensors[i].info.size);
    *loss = -sum / ((double)n * (double)m->dim);
    return 0;
}
