/* The whole flow (model.md 2.1): blocks of squeeze -> K x (invconv, injector, coupling) -> split,
 * a final block without squeeze or split, and the priors.
 *
 * Each thread takes groups of up to GROUP_MAX maps (OpenMP, static schedule, so sums are reproducible
 * for a thread count). Blocks with large maps run one map at a time (their rows are long and
 * their working set stays in cache); the deep blocks, whose maps are 8x8 .. 1x1, run the group
 * together so that the kernels see long rows.
 *
 * Training needs no batch-sized activation store: the loss is a mean of per-map terms with a
 * fixed weight, so each thread runs one group's forward (saving its activations on the thread's
 * tape) and at once its backward, accumulating gradients in the thread's own buffer. */
#include "model/model.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define GROUP_MAX 32         /* maps per group at most */
#define TAPE_BUDGET (384.0 * 1024 * 1024)   /* bytes of a thread's training tape that set its group */
#define BIG_MAP 256   /* pixels from which a block runs map by map */

struct flow_work {
    int nthreads;
    int cap;               /* maps per group at most: GROUP_MAX, fewer where a map's tape is large */
    size_t per_thread;     /* elements of one thread's region */
    size_t acc_size;       /* nparams + wsize, when with_tape */
    size_t ws_size;        /* layer scratch */
    size_t inj_size;       /* the injector nets of a group */
    size_t inj_tape;       /* with_tape: every step's injector net state, kept for the backward */
    real *mem;
};

/* One thread's region: h, t, dh, dt (cap * dim each), conditions, layer scratch, the group's
 * tape (activations, and the injector nets' states), gradient accumulator (params layout) and
 * dW accumulator. */
typedef struct { real *h, *t, *dh, *dt, *c, *ws, *inj, *tape, *injt, *acc, *accw; int cap; } thread_bufs;

static inline int block_group(const block_info *b, int G) { return b->H * b->W >= BIG_MAP ? 1 : G; }

/* The injector net's state of step k of block bi in the injector tape: recomputing the small
 * net in the backward cost as much as its backward in the deep blocks (maps of 1-4 pixels). */
static size_t inj_offset(const cglow_model *m, int cap, int bi, int k)
{
    size_t off = 0;
    for (int j = 0; j < bi; j++) off += (size_t)m->cfg.steps * injector_net_state_size(m, &m->blocks[j], cap);
    return k ? off + (size_t)k * injector_net_state_size(m, &m->blocks[bi], cap) : off;
}
static real *inj_slot(const cglow_model *m, const thread_bufs *tb, int bi, int k)
{
    return tb->injt + inj_offset(m, tb->cap, bi, k);
}

static size_t layer_scratch(const cglow_model *m, int cap)
{
    size_t mx = 0;
    for (int bi = 0; bi < m->nblocks; bi++) {
        const block_info *b = &m->blocks[bi];
        const int G = block_group(b, cap), HW = b->H * b->W;
        size_t s[3] = {coupling_scratch_size(m, b, G), prior_group_scratch_size(m, b, cap),
                       k_conv1x1_scratch(b->C, b->C, HW, G)};
        for (int i = 0; i < 3; i++) if (s[i] > mx) mx = s[i];
    }
    return mx;
}

static thread_bufs bufs_of(const cglow_model *m, flow_work *w, int tid);

flow_work *flow_work_create(const cglow_model *m, int max_batch, int with_tape)
{
    (void)max_batch;
    flow_work *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->nthreads = cglow_get_threads();
    /* Larger groups give the deep blocks (maps of 1-8 pixels) longer rows: 32 maps measured 2-5%
     * faster than 16 on the default preset. Training keeps a group's activations, so where a map's
     * tape is large (256x256 maps: ~140 MB) the group shrinks to stay within TAPE_BUDGET. */
    w->cap = GROUP_MAX;
    if (with_tape) {
        const double per_map = sizeof(real) * ((double)m->tape_size + (double)inj_offset(m, 1, m->nblocks, 0));
        const double fit = TAPE_BUDGET / per_map;
        w->cap = fit >= GROUP_MAX ? GROUP_MAX : fit >= 1 ? (int)fit : 1;
    }
    const int cap = w->cap;
    w->acc_size = with_tape ? m->nparams + m->wsize : 0;
    w->ws_size = layer_scratch(m, cap);
    for (int bi = 0; bi < m->nblocks; bi++) {
        size_t s = injector_net_size(m, &m->blocks[bi], cap);
        if (s > w->inj_size) w->inj_size = s;
    }
    w->inj_tape = with_tape ? inj_offset(m, cap, m->nblocks, 0) : 0;
    w->per_thread = 4 * (size_t)cap * m->dim + (size_t)cap * CGLOW_MAX_COND + w->ws_size + w->inj_size +
                    (with_tape ? (size_t)cap * m->tape_size + w->inj_tape : 0) + w->acc_size;
    w->per_thread = (w->per_thread + 15) & ~(size_t)15;   /* 64-byte aligned regions */
    w->mem = aligned_alloc(64, sizeof(real) * w->per_thread * w->nthreads);
    if (!w->mem) { free(w); return NULL; }
    if (with_tape)   /* the accumulators start at zero; flow_loss_grad leaves them so */
        for (int t = 0; t < w->nthreads; t++) memset(bufs_of(m, w, t).acc, 0, sizeof(real) * w->acc_size);
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
    const size_t D = (size_t)w->cap * m->dim;
    b.cap = w->cap;
    b.h = p; p += D;
    b.t = p; p += D;
    b.dh = p; p += D;
    b.dt = p; p += D;
    b.c = p; p += (size_t)w->cap * CGLOW_MAX_COND;
    b.ws = p; p += w->ws_size;
    b.inj = p; p += w->inj_size;
    b.tape = w->acc_size ? p : NULL; p += w->acc_size ? (size_t)w->cap * m->tape_size : 0;
    b.injt = w->acc_size ? p : NULL; p += w->inj_tape;
    b.acc = w->acc_size ? p : NULL;
    b.accw = w->acc_size ? p + m->nparams : NULL;
    return b;
}

/* The invertible 1x1 convolutions' W (or W^-1) of every step, rebuilt when the parameters
 * changed since the cache was made. */
static void update_weights(cglow_model *m, real *cache, long *version, int inverse)
{
    if (*version == m->params_version) return;
    /* the steps are independent (double-precision LU products, C up to 128): one per thread */
    const int K = m->cfg.steps, n = m->nblocks * K;
#pragma omp parallel for schedule(dynamic) num_threads(cglow_get_threads())
    for (int i = 0; i < n; i++) {
        const int bi = i / K;
        const step_offsets *s = &m->blocks[bi].steps[i % K];
        if (inverse) invconv_weight_inverse(cache + s->wc, m->params, s, m->blocks[bi].C);
        else invconv_weight(cache + s->wc, m->params, s, m->blocks[bi].C);
    }
    *version = m->params_version;
}

void model_update_wfwd(cglow_model *m) { update_weights(m, m->wfwd, &m->wfwd_version, 0); }

void model_update_prep(cglow_model *m)
{
    if (m->prep_version == m->params_version) return;
    const int K = m->cfg.steps, n = m->nblocks * K;
#pragma omp parallel for schedule(dynamic) num_threads(cglow_get_threads())
    for (int i = 0; i < n; i++) {   /* each step writes its own part of the cache */
        const block_info *b = &m->blocks[i / K];
        coupling_prepare(m, b, &b->steps[i % K]);
        injector_prepare(m, b, &b->steps[i % K]);
    }
    for (int bi = 0; bi < m->nblocks; bi++) prior_prepare(m, &m->blocks[bi]);
    m->prep_version = m->params_version;
}
void model_update_winv(cglow_model *m) { update_weights(m, m->winv, &m->winv_version, 1); }

#define SWAP(a, b) do { real *t_ = (a); (a) = (b); (b) = t_; } while (0)

/* The tape of step k of block b for the subgroup starting at map g0 of size gb (G maps in all). */
static real *step_tape(const cglow_model *m, const block_info *b, real *tape, int G, int k, int g0)
{
    return tape + b->tape_off * G + (size_t)k * step_tape_size(m, b) * G + (size_t)g0 * step_tape_size(m, b);
}

/* One flow step forward on maps g0..g0+gb-1 of the group (h, t: (G, C, HW)); net: the step's
 * injector net, already run for the whole group. */
static void step_forward(const cglow_model *m, const block_info *b, int k, real *h, real *t, const real *c,
                         int g0, int gb, int G, real *tape, real *ws, const inj_net *net, double *ld)
{
    const real *P = m->params;
    const step_offsets *s = &b->steps[k];
    const int C = b->C, HW = b->H * b->W, Pc = m->cfg.cond_features;
    const size_t chw = (size_t)C * HW * gb, off = (size_t)g0 * C * HW;
    real *x = h + off, *y = t + off;
    const real *cg = c + (size_t)g0 * Pc;
    if (tape) {
        /* each layer writes its output into the tape: the step's input (put there by the previous
         * step's coupling; copied for the first step), after the invertible conv, after the
         * injector; the coupling writes the next step's input (the block's output into h) */
        real *st = step_tape(m, b, tape, G, k, g0);
        if (k == 0) memcpy(st, x, sizeof(real) * chw);
        const double lc = invconv_fwd(st + chw, st, m->wfwd + s->wc, P, s, C, HW, gb, ws);
        for (int g = 0; g < gb; g++) ld[g0 + g] += lc;
        injector_apply_fwd(st + 2 * chw, st + chw, net, b, g0, gb, ld + g0);
        real *next = k + 1 < m->cfg.steps ? step_tape(m, b, tape, G, k + 1, g0) : x;
        coupling_fwd(next, st + 2 * chw, cg, P, s, m, b, gb, st + 3 * chw, ws, ld + g0);
        return;
    }
    const double lc = invconv_fwd(y, x, m->wfwd + s->wc, P, s, C, HW, gb, ws);
    for (int g = 0; g < gb; g++) ld[g0 + g] += lc;
    injector_apply_fwd(x, y, net, b, g0, gb, ld + g0);
    coupling_fwd(x, x, cg, P, s, m, b, gb, NULL, ws, ld + g0);   /* in place */
}

/* log p(x|c) of G maps (x: (G, dim)); z (may be NULL) receives the latents (G, dim); tape (may
 * be NULL) the activations backward needs. */
static void group_forward(const cglow_model *m, const real *x, const real *c, int G, real *z, real *tape,
                          thread_bufs *tb, double *logp)
{
    real *h = tb->h, *t = tb->t;
    int Cin = m->cfg.in_channels, Hin = m->cfg.height, Win = m->cfg.width;
    memcpy(h, x, sizeof(real) * m->dim * G);
    double ld[GROUP_MAX] = {0};
    for (int bi = 0; bi < m->nblocks; bi++) {
        const block_info *b = &m->blocks[bi];
        const int C = b->C, HW = b->H * b->W, gb = block_group(b, G);
        const size_t chw = (size_t)C * HW;
        if (!b->final) {
            for (int g = 0; g < G; g++) squeeze_fwd(t + g * chw, h + g * chw, Cin, Hin, Win);
            SWAP(h, t);
        }
        inj_net net;
        injector_net_carve(&net, m, b, G, tb->inj);
        for (int k = 0; k < m->cfg.steps; k++) {
            if (tape) injector_net_carve_split(&net, m, b, G, inj_slot(m, tb, bi, k), tb->inj);
            injector_net_fwd(&net, c, m->params, &b->steps[k], m, b);
            for (int g0 = 0; g0 < G; g0 += gb) step_forward(m, b, k, h, t, c, g0, gb, G, tape, tb->ws, &net, ld);
        }
        if (tape) memcpy(tape + b->tape_off * G + (size_t)m->cfg.steps * step_tape_size(m, b) * G, h, sizeof(real) * chw * G);
        const size_t zo = b->final ? 0 : chw / 2;
        prior_logp_group(ld, h + zo, chw, c, G, m->params, m, b, tb->ws);
        if (z)
            for (int g = 0; g < G; g++) memcpy(z + (size_t)g * m->dim + b->zoff, h + g * chw + zo, sizeof(real) * b->zdim);
        if (!b->final)   /* keep the continuing halves, packed (G, C/2, HW) */
            for (int g = 1; g < G; g++) memmove(h + g * chw / 2, h + g * chw, sizeof(real) * chw / 2);
        Cin = C / 2; Hin = b->H; Win = b->W;
    }
    for (int g = 0; g < G; g++) logp[g] = ld[g];
}

/* Backward of a group from its tape; gl = d loss / d log p(x|c) for each map. Accumulates into
 * acc (params layout) and accw (invconv dW). */
static void group_backward(const cglow_model *m, const real *c, const real *tape, int G, real gl, thread_bufs *tb)
{
    const real *P = m->params;
    const int Pc = m->cfg.cond_features;
    real *dh = tb->dh, *dt = tb->dt;
    for (int bi = m->nblocks - 1; bi >= 0; bi--) {
        const block_info *b = &m->blocks[bi];
        const int C = b->C, HW = b->H * b->W, gb = block_group(b, G);
        const size_t chw = (size_t)C * HW, sts = step_tape_size(m, b);
        const real *out = tape + b->tape_off * G + (size_t)m->cfg.steps * sts * G;
        if (!b->final)   /* unpack the continuing halves' gradients, (G, C/2, HW) -> (G, C, HW) */
            for (int g = G - 1; g >= 1; g--) memmove(dh + g * chw, dh + g * chw / 2, sizeof(real) * chw / 2);
        const size_t zo = b->final ? 0 : chw / 2;
        prior_bwd_group(dh + zo, chw, tb->acc, out + zo, chw, gl, c, G, P, m, b, tb->ws);
        inj_net net;
        for (int k = m->cfg.steps - 1; k >= 0; k--) {
            const step_offsets *s = &b->steps[k];
            injector_net_carve_split(&net, m, b, G, inj_slot(m, tb, bi, k), tb->inj);   /* the forward's */
            injector_net_zero_grad(&net, b);
            for (int g0 = 0; g0 < G; g0 += gb) {
                const real *st = step_tape(m, b, (real *)tape, G, k, g0);
                const size_t n = chw * gb, off = (size_t)g0 * chw;
                const real *cg = c + (size_t)g0 * Pc;
                coupling_bwd(dt + off, tb->acc, dh + off, st + 2 * n, gl, cg, P, s, m, b, gb, st + 3 * n, tb->ws);
                injector_apply_bwd(dh + off, dt + off, st + n, gl, &net, b, g0, gb);
                invconv_bwd(dt + off, tb->accw + s->wc, dh + off, st, m->wfwd + s->wc, C, HW, gb, tb->ws);
            }
            SWAP(dh, dt);   /* the step's input gradient, of every subgroup, is now in dt */
            injector_net_bwd(tb->acc, &net, P, s, m, b);
            real *gls = tb->acc + s->log_s;   /* logdet = HW * sum(log_s) per map */
            for (int i = 0; i < C; i++) gls[i] += gl * (real)HW * G;
        }
        if (!b->final) {
            /* gradient of the block input = the previous block's continuing half */
            for (int g = 0; g < G; g++) squeeze_inv(dt + g * chw, dh + g * chw, C / 4, b->H * 2, b->W * 2);
            SWAP(dh, dt);
        }
    }
}

static void group_inverse(const cglow_model *m, const real *z, const real *c, int G, real *x, thread_bufs *tb)
{
    const real *P = m->params;
    const int Pc = m->cfg.cond_features;
    real *h = tb->h, *t = tb->t;
    for (int bi = m->nblocks - 1; bi >= 0; bi--) {
        const block_info *b = &m->blocks[bi];
        const int C = b->C, HW = b->H * b->W, gb = block_group(b, G);
        const size_t chw = (size_t)C * HW;
        if (!b->final)   /* (G, C/2, HW) continuing halves -> (G, C, HW), latent in the second half */
            for (int g = G - 1; g >= 1; g--) memmove(h + g * chw, h + g * chw / 2, sizeof(real) * chw / 2);
        for (int g = 0; g < G; g++)
            memcpy(h + g * chw + (b->final ? 0 : chw / 2), z + (size_t)g * m->dim + b->zoff, sizeof(real) * b->zdim);
        inj_net net;
        injector_net_carve(&net, m, b, G, tb->inj);
        for (int k = m->cfg.steps - 1; k >= 0; k--) {
            const step_offsets *s = &b->steps[k];
            injector_net_fwd(&net, c, P, s, m, b);
            for (int g0 = 0; g0 < G; g0 += gb) {
                const size_t off = (size_t)g0 * chw;
                const real *cg = c + (size_t)g0 * Pc;
                coupling_inv(h + off, h + off, cg, P, s, m, b, gb, tb->ws);   /* in place */
                injector_apply_inv(t + off, h + off, &net, b, g0, gb);
                invconv_inv(h + off, t + off, m->wfwd + s->wc, m->winv + s->wc, C, HW, gb, tb->ws, tb->dh);
            }
        }
        if (!b->final) {
            for (int g = 0; g < G; g++) squeeze_inv(t + g * chw, h + g * chw, C / 4, b->H * 2, b->W * 2);
            SWAP(h, t);
        }
    }
    memcpy(x, h, sizeof(real) * m->dim * G);
}

/* The group size of a call: at most the cap, with a number of groups that is a multiple of the
 * thread count (900 maps on 2 threads: 30 groups of 30, not 28 of 32 and one of 4). */
static int group_size(const flow_work *w, int n)
{
    const int nt = w->nthreads;
    int ng = (n + w->cap - 1) / w->cap;
    ng = (ng + nt - 1) / nt * nt;
    const int gs = (n + ng - 1) / ng;
    return gs < 1 ? 1 : gs;
}

int flow_forward(cglow_model *m, flow_work *w, const real *x, const real *c, int n, double *logp, real *z)
{
    model_update_wfwd(m);
    model_update_prep(m);
    const int P = m->cfg.cond_features, GS = group_size(w, n), NG = (n + GS - 1) / GS;
#pragma omp parallel num_threads(w->nthreads)
    {
        thread_bufs tb = bufs_of(m, w, omp_get_thread_num());
        double lp[GROUP_MAX];
#pragma omp for schedule(static)
        for (int gi = 0; gi < NG; gi++) {
            const int i0 = gi * GS, G = n - i0 < GS ? n - i0 : GS;
            group_forward(m, x + (size_t)i0 * m->dim, c + (size_t)i0 * P, G, z ? z + (size_t)i0 * m->dim : NULL, NULL,
                          &tb, lp);
            if (logp) for (int g = 0; g < G; g++) logp[i0 + g] = lp[g];
        }
    }
    return 0;
}

int flow_inverse(cglow_model *m, flow_work *w, const real *z, const real *c, int n, real *x)
{
    model_update_wfwd(m);
    model_update_prep(m);
    model_update_winv(m);
    const int P = m->cfg.cond_features, GS = group_size(w, n), NG = (n + GS - 1) / GS;
#pragma omp parallel num_threads(w->nthreads)
    {
        thread_bufs tb = bufs_of(m, w, omp_get_thread_num());
#pragma omp for schedule(static)
        for (int gi = 0; gi < NG; gi++) {
            const int i0 = gi * GS, G = n - i0 < GS ? n - i0 : GS;
            group_inverse(m, z + (size_t)i0 * m->dim, c + (size_t)i0 * P, G, x + (size_t)i0 * m->dim, &tb);
        }
    }
    return 0;
}

int flow_loss_grad(cglow_model *m, flow_work *w, const real *x, const real *c, int n, double *loss,
                   double *logp, real *grads, double *sumsq)
{
    if (!w->acc_size) return cglow_set_error(CGLOW_EARG, "flow_loss_grad: work area has no tape");
    model_update_wfwd(m);
    model_update_prep(m);
    const int P = m->cfg.cond_features, GS = group_size(w, n), NG = (n + GS - 1) / GS;
    const real gl = (real)(-1.0 / ((double)n * (double)m->dim));
    double sum = 0;
    const int nt = w->nthreads;
#pragma omp parallel num_threads(nt) reduction(+ : sum)
    {
        thread_bufs tb = bufs_of(m, w, omp_get_thread_num());   /* its accumulators are zero */
        double lp[GROUP_MAX];
#pragma omp for schedule(static)
        for (int gi = 0; gi < NG; gi++) {
            const int i0 = gi * GS, G = n - i0 < GS ? n - i0 : GS;
            const real *cg = c + (size_t)i0 * P;
            group_forward(m, x + (size_t)i0 * m->dim, cg, G, NULL, tb.tape, &tb, lp);
            for (int g = 0; g < G; g++) {
                if (logp) logp[i0 + g] = lp[g];
                sum += lp[g];
            }
            group_backward(m, cg, tb.tape, G, gl, &tb);
        }
    }
    /* Sum the threads' accumulators in a fixed order (reproducible for a thread count), in one
     * pass that also zeroes them for the next step and sums the squares of the gradient: the
     * parameters' part straight into grads, the dW part into thread 0's accumulator. */
    real *total = bufs_of(m, w, 0).acc;
    const size_t A = w->acc_size, NP = m->nparams, at = (size_t)(total - w->mem);
    double part[nt];
#pragma omp parallel num_threads(nt)
    {
        double sq = 0;
#pragma omp for schedule(static)
        for (size_t i = 0; i < A; i++) {
            real s = total[i];
            for (int t = 1; t < nt; t++) {
                real *a = w->mem + (size_t)t * w->per_thread + at + i;
                s += *a;
                *a = 0;
            }
            if (i < NP) {
                grads[i] = s;
                total[i] = 0;
                sq += (double)s * s;
            } else
                total[i] = s;
        }
        part[omp_get_thread_num()] = sq;
    }
    double sumsq_all = 0;
    for (int t = 0; t < nt; t++) sumsq_all += part[t];
    const int K = m->cfg.steps, nsteps = m->nblocks * K;
    double delta[nsteps];   /* each step's change to the sum of squares (its invertible conv's tensors) */
#pragma omp parallel for schedule(dynamic) num_threads(nt)
    for (int i = 0; i < nsteps; i++) {   /* each step writes only its own tensors */
        const int bi = i / K, C = m->blocks[bi].C;
        const step_offsets *s = &m->blocks[bi].steps[i % K];
        const size_t off[3] = {s->lower, s->upper, s->log_s}, len[3] = {(size_t)C * C, (size_t)C * C, (size_t)C};
        double before = 0, after = 0;
        for (int j = 0; j < 3; j++)
            for (size_t e = 0; e < len[j]; e++) before += (double)grads[off[j] + e] * grads[off[j] + e];
        invconv_weight_grad(grads, m->params, s, total + NP + s->wc, C);
        for (int j = 0; j < 3; j++)
            for (size_t e = 0; e < len[j]; e++) after += (double)grads[off[j] + e] * grads[off[j] + e];
        delta[i] = after - before;
    }
    for (int i = 0; i < nsteps; i++) sumsq_all += delta[i];
    memset(total + NP, 0, sizeof(real) * (A - NP));
    if (sumsq) *sumsq = sumsq_all;
    /* perm and sign are fixed */
    for (int i = 0; i < m->ntensors; i++)
        if (!m->tensors[i].info.trainable) memset(grads + m->tensors[i].off, 0, sizeof(real) * m->tensors[i].info.size);
    *loss = -sum / ((double)n * (double)m->dim);
    return 0;
}
