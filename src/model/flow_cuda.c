/* The flow on a CUDA device (cglow_model_set_device(m, "cuda")): the loops of flow.c over blocks
 * and steps, with every layer a kcu_* call on device tensors (src/kernels/cuda/kernels_cuda.h).
 * Host C only (no CUDA headers); linked into builds made with nvcc (libcglow_cuda.a).
 *
 * State on the device, per model: the parameters in ONE buffer with the CPU offsets (so the
 * step_offsets of model.h index them unchanged), the invconvs' W (built on the device from the LU
 * parameters, in double: kcu_lu_weights) and W^-1 (built on the host by invconv.c's LAPACK code,
 * uploaded when the parameters changed; only the inverse needs it). Per trainer: gradients, Adam
 * moments, the dW accumulator, the tape of a whole batch. A batch is ONE group of n maps (G = n):
 * no per-map loops, the kernels see (n, C, H, W) tensors.
 *
 * Parameters move between host and device lazily: m->params_version (bumped by every host change)
 * against the version last uploaded; after a device Adam step the host copy is stale until
 * model_sync_host() (save, get_tensor, sampling's priors) downloads it.
 *
 * CUDA graphs: the scoring forward, the inverse and the training step's forward + backward +
 * reductions are captured once per batch size (all pointers fixed: inputs are copied into fixed
 * buffers first; every scalar that changes between calls is read from device memory) and replayed.
 * Adam runs outside the graph: the skip/clip decision of trainer.c needs the loss and the gradient
 * norm on the host (one 16-byte read-back per step). CGLOW_CUDA_GRAPHS=0 runs everything directly;
 * where capture is refused (the CPU emulation), direct launches are used. */
#include "model/backend.h"
#include "kernels/cuda/kernels_cuda.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CGLOW_DOUBLE
#error "the CUDA backend works in float32: flow_cuda.c is not part of the float64 engine"
#endif

#define TRY(call)                   \
    do {                            \
        int rc_ = (call);           \
        if (rc_) return rc_;        \
    } while (0)
#define SWAPF(a, b) do { float *t_ = (a); (a) = (b); (b) = t_; } while (0)

enum { NGRAPH = 6, NPARTS = 264 };

typedef struct { int key; kcu_graph *g; } graph_slot;
typedef struct { graph_slot s[NGRAPH]; int next; } graph_cache;

/* buffers of the scoring forward and of the inverse, for up to cap maps */
typedef struct {
    int cap;
    float *x, *c, *z, *h, *t, *u, *v, *scratch;
    double *logp;
    graph_cache fwd, inv;
} pass_bufs;

typedef struct {
    float *params, *wfwd, *winv;
    size_t *tape_off;        /* per block: its start in a map's device tape */
    size_t tape_size;        /* floats of one map's device tape */
    double *lu_work;
    kcu_lu_step *lu_steps;   /* device */
    int nsteps;
    long up_version;         /* m->params_version last uploaded */
    long gen;                /* bumped when the device parameters change */
    long w_gen, winv_gen;    /* gen the device W / W^-1 were made for */
    int host_stale;          /* device parameters newer than m->params */
    int graphs;              /* try CUDA graphs */
    int chunk;               /* most maps per pass */
    pass_bufs inf;
} cuda_model;

typedef struct {
    int max_batch;
    float *grads, *adam_m, *adam_v, *dw, *tape, *x, *c, *dh, *dt, *scratch;
    double *logp, *red, *parts;
    graph_cache graphs;
} cuda_train;

/* ---------------------------------------------------------------- small things */
static void graphs_free(graph_cache *gc)
{
    for (int i = 0; i < NGRAPH; i++) {
        kcu_graph_free(gc->s[i].g);
        gc->s[i].g = NULL;
        gc->s[i].key = 0;
    }
    gc->next = 0;
}

typedef int (*pass_fn)(void *ctx);

/* Runs fn (a sequence of kcu_* launches on the stream, no synchronisation) as the graph cached
 * under key, capturing it on first use; directly when graphs are off or capture is refused. */
static int run_pass(cuda_model *cm, graph_cache *gc, int key, pass_fn fn, void *ctx)
{
    if (!cm->graphs) return fn(ctx);
    for (int i = 0; i < NGRAPH; i++)
        if (gc->s[i].g && gc->s[i].key == key) return kcu_graph_launch(gc->s[i].g);
    int rc = kcu_graph_begin();
    if (rc) {   /* the CPU emulation has no graphs (CGLOW_ENOTSUP): quietly direct */
        if (rc != CGLOW_ENOTSUP) fprintf(stderr, "cglow: warning: cuda: no graph capture (%s); direct launches\n", cglow_last_error());
        cm->graphs = 0;
        return fn(ctx);
    }
    rc = fn(ctx);
    kcu_graph *g = NULL;
    const int rc_end = kcu_graph_end(&g);
    if (rc || rc_end) {   /* not capturable after all: run it directly from now on */
        fprintf(stderr, "cglow: warning: cuda: graph capture failed (%s); direct launches\n", cglow_last_error());
        kcu_graph_free(g);
        cm->graphs = 0;
        (void)kcu_sync();
        return fn(ctx);
    }
    graph_slot *s = &gc->s[gc->next];
    gc->next = (gc->next + 1) % NGRAPH;
    kcu_graph_free(s->g);
    s->g = g;
    s->key = key;
    return kcu_graph_launch(g);
}

static void *dmalloc(size_t bytes, int *bad)
{
    void *p = *bad ? NULL : kcu_malloc(bytes ? bytes : 1);
    if (!p) *bad = 1;
    return p;
}

static size_t max2(size_t a, size_t b) { return a > b ? a : b; }

/* floats of layer scratch for a group of G maps: the largest of any block's layers */
static size_t pass_scratch(const cglow_model *m, int G)
{
    const int P = m->cfg.cond_features, Hd = m->cfg.hidden, Hc = m->cfg.prior_hidden;
    size_t mx = 0;
    for (int bi = 0; bi < m->nblocks; bi++) {
        const block_info *b = &m->blocks[bi];
        const int C = b->C, H = b->H, W = b->W;
        mx = max2(mx, kcu_coupling_scratch(C, P, Hd, H, W, G));
        mx = max2(mx, kcu_injector_scratch(C, P, Hd, H, W, G));
        mx = max2(mx, kcu_conv1x1_scratch(C, C, H * W, G));
        mx = max2(mx, m->cfg.prior == CGLOW_PRIOR_CONDITIONAL ? kcu_prior_scratch(P, Hc, (int)b->zdim, G)
                                                              : 2 * (size_t)G * b->zdim);
    }
    return mx;
}

static kcu_net coupling_net(const float *p, const step_offsets *s)
{
    kcu_net n = {p + s->cp_w1, p + s->cp_b1, p + s->cp_w2, p + s->cp_b2, p + s->cp_zw, p + s->cp_zb, p + s->cp_zs};
    return n;
}
static kcu_net_grad coupling_grad(float *g, const step_offsets *s)
{
    kcu_net_grad n = {g + s->cp_w1, g + s->cp_b1, g + s->cp_w2, g + s->cp_b2, g + s->cp_zw, g + s->cp_zb, g + s->cp_zs};
    return n;
}
static kcu_net injector_net(const float *p, const step_offsets *s)
{
    kcu_net n = {p + s->inj_w1, p + s->inj_b1, p + s->inj_w2, p + s->inj_b2, p + s->inj_zw, p + s->inj_zb,
                 p + s->inj_zs};
    return n;
}
static kcu_net_grad injector_grad(float *g, const step_offsets *s)
{
    kcu_net_grad n = {g + s->inj_w1, g + s->inj_b1, g + s->inj_w2, g + s->inj_b2, g + s->inj_zw, g + s->inj_zb,
                      g + s->inj_zs};
    return n;
}
static kcu_mlp mlp_of(const float *p, const mlp_offsets *o)
{
    kcu_mlp n = {p + o->w1, p + o->b1, p + o->w2, p + o->b2, p + o->w3, p + o->b3};
    return n;
}
static kcu_mlp_grad mlp_grad(float *g, const mlp_offsets *o)
{
    kcu_mlp_grad n = {g + o->w1, g + o->b1, g + o->w2, g + o->b2, g + o->w3, g + o->b3};
    return n;
}

/* The tape of G maps, the whole batch as one group. Step k of block b: [x0 | x1 | x2 | h1 | h2 | o]
 * (invconv, injector and coupling inputs, then the coupling net's activations, the layout of
 * kcu_coupling_layer_*'s tape), each array for all G maps; after the K steps, the block's output.
 * (Its own layout: the CPU's tape (flow.c) is laid out for the CPU kernels.) */
static size_t dev_step_tape(const cglow_model *m, const block_info *b)
{
    return (4 * (size_t)b->C + 2 * (size_t)m->cfg.hidden) * b->H * b->W;
}
static void tape_layout(const cglow_model *m, cuda_model *cm)
{
    size_t off = 0;
    for (int bi = 0; bi < m->nblocks; bi++) {
        const block_info *b = &m->blocks[bi];
        cm->tape_off[bi] = off;
        off += (size_t)m->cfg.steps * dev_step_tape(m, b) + (size_t)b->C * b->H * b->W;
    }
    cm->tape_size = off;
}
static float *tape_step(const cglow_model *m, const cuda_model *cm, int bi, float *tape, int G, int k)
{
    return tape + cm->tape_off[bi] * G + (size_t)k * dev_step_tape(m, &m->blocks[bi]) * G;
}
static float *tape_out(const cglow_model *m, const cuda_model *cm, int bi, float *tape, int G)
{
    return tape_step(m, cm, bi, tape, G, m->cfg.steps);
}

/* ---------------------------------------------------------------- the passes */
/* Forward of G maps (x (G, dim), c (G, P), device): logp (G) overwritten; z (G, dim) the latents
 * or NULL; tape or NULL (then h, t hold the activations). Uses the device W of cm. */
static int pass_forward(const cglow_model *m, const cuda_model *cm, const float *x, const float *c, int G,
                        double *logp, float *z, float *tape, float *h, float *t, float *scratch)
{
    const float *Pm = cm->params;
    const int P = m->cfg.cond_features, Hd = m->cfg.hidden, Hc = m->cfg.prior_hidden, K = m->cfg.steps;
    const float clamp = m->cfg.coupling_clamp;
    TRY(kcu_memset0(logp, sizeof(double) * G));
    const float *cur = x;   /* the block's input (G, Cin, Hin, Win) */
    int Cin = m->cfg.in_channels, Hin = m->cfg.height, Win = m->cfg.width;
    for (int bi = 0; bi < m->nblocks; bi++) {
        const block_info *b = &m->blocks[bi];
        const int C = b->C, H = b->H, W = b->W, HW = H * W;
        const size_t chw = (size_t)C * HW, n = chw * G;
        float *a = tape ? tape_step(m, cm, bi, tape, G, 0) : h;
        if (!b->final) TRY(kcu_squeeze_fwd(a, cur, Cin, Hin, Win, G));
        else if (cur != a) TRY(kcu_memcpy_d2d(a, cur, sizeof(float) * n));
        for (int k = 0; k < K; k++) {
            const step_offsets *s = &b->steps[k];
            const kcu_net inj = injector_net(Pm, s), cp = coupling_net(Pm, s);
            float *x1, *x2, *out, *ct;
            if (tape) {
                float *st = tape_step(m, cm, bi, tape, G, k);
                x1 = st + n;
                x2 = st + 2 * n;
                ct = st + 3 * n;
                out = tape_step(m, cm, bi, tape, G, k + 1);   /* the next step's x0, or the block output */
            } else {
                x1 = t;
                x2 = a;
                ct = NULL;
                out = a;
            }
            TRY(kcu_invconv_fwd(x1, NULL, 0, a, cm->wfwd + s->wc, C, HW, G, scratch));
            TRY(kcu_add_sum_d(logp, Pm + s->log_s, C, (double)HW, G));   /* H*W*sum(log_s) */
            TRY(kcu_injector_layer_fwd(x2, logp, x1, c, &inj, C, P, Hd, H, W, G, scratch));
            TRY(kcu_coupling_layer_fwd(out, logp, x2, c, &cp, C, P, Hd, H, W, G, clamp, ct, scratch));
            a = out;
        }
        const size_t zo = b->final ? 0 : chw / 2;
        if (m->cfg.prior == CGLOW_PRIOR_CONDITIONAL) {
            const kcu_mlp mean = mlp_of(Pm, &b->prior_mean), lv = mlp_of(Pm, &b->prior_logvar);
            TRY(kcu_prior_layer_logp(logp, a + zo, (int)chw, c, &mean, &lv, P, Hc, (int)b->zdim, G, scratch));
        } else
            TRY(kcu_prior_logp(logp, a + zo, (int)chw, Pm + b->learned_mean, Pm + b->learned_logvar, 0, (int)b->zdim, G));
        if (z) TRY(kcu_copy_channels(z, (int)m->dim, (int)b->zoff, a, (int)chw, (int)zo, (int)b->zdim, 1, G));
        if (!b->final) {   /* the continuing halves, packed (G, C/2, HW) */
            float *dst = tape ? h : t;
            TRY(kcu_copy_channels(dst, C / 2, 0, a, C, 0, C / 2, HW, G));
            cur = dst;
        }
        Cin = C / 2; Hin = H; Win = W;
    }
    return 0;
}

/* Backward of G maps from the tape, gl = d loss / d log p of each map: accumulates into grads
 * (params layout) and dw (the invconvs' dL/dW, W cache layout). dh, dt: (G, dim) each. */
static int pass_backward(const cglow_model *m, const cuda_model *cm, cuda_train *tr, const float *c, int G, float gl,
                         float *dh, float *dt)
{
    const float *Pm = cm->params;
    float *Gr = tr->grads, *tape = tr->tape, *scratch = tr->scratch;
    const int P = m->cfg.cond_features, Hd = m->cfg.hidden, Hc = m->cfg.prior_hidden, K = m->cfg.steps;
    const float clamp = m->cfg.coupling_clamp;
    for (int bi = m->nblocks - 1; bi >= 0; bi--) {
        const block_info *b = &m->blocks[bi];
        const int C = b->C, H = b->H, W = b->W, HW = H * W, D = (int)b->zdim;
        const size_t chw = (size_t)C * HW, n = chw * G, zo = b->final ? 0 : chw / 2;
        const float *out = tape_out(m, cm, bi, tape, G);
        if (!b->final) {   /* the continuing halves' gradient, (G, C/2, HW) -> first halves of (G, C, HW) */
            TRY(kcu_copy_channels(dt, C, 0, dh, C / 2, 0, C / 2, HW, G));
            SWAPF(dh, dt);
        }
        if (m->cfg.prior == CGLOW_PRIOR_CONDITIONAL) {
            const kcu_mlp mean = mlp_of(Pm, &b->prior_mean), lv = mlp_of(Pm, &b->prior_logvar);
            const kcu_mlp_grad gm = mlp_grad(Gr, &b->prior_mean), gv = mlp_grad(Gr, &b->prior_logvar);
            TRY(kcu_prior_layer_bwd(dh + zo, &gm, &gv, out + zo, (int)chw, gl, c, &mean, &lv, P, Hc, D, G, scratch));
        } else {
            float *dm = scratch, *dl = scratch + (size_t)G * D;
            TRY(kcu_prior_bwd(dh + zo, dm, dl, out + zo, (int)chw, Pm + b->learned_mean, Pm + b->learned_logvar, 0, gl,
                              D, G));
            TRY(kcu_sum_rows(Gr + b->learned_mean, dm, (size_t)D, G));
            TRY(kcu_sum_rows(Gr + b->learned_logvar, dl, (size_t)D, G));
        }
        for (int k = K - 1; k >= 0; k--) {
            const step_offsets *s = &b->steps[k];
            const kcu_net inj = injector_net(Pm, s), cp = coupling_net(Pm, s);
            const kcu_net_grad ig = injector_grad(Gr, s), cg = coupling_grad(Gr, s);
            const float *st = tape_step(m, cm, bi, tape, G, k);
            TRY(kcu_coupling_layer_bwd(dt, &cg, dh, st + 2 * n, gl, c, &cp, C, P, Hd, H, W, G, clamp, st + 3 * n,
                                       scratch));
            TRY(kcu_injector_layer_bwd(dh, &ig, dt, st + n, gl, c, &inj, C, P, Hd, H, W, G, scratch));
            TRY(kcu_invconv_bwd(dt, tr->dw + s->wc, dh, st, cm->wfwd + s->wc, C, HW, G, scratch));
            SWAPF(dh, dt);
            TRY(kcu_add_const(Gr + s->log_s, gl * (float)HW * (float)G, (size_t)C));   /* logdet = HW sum(log_s) */
        }
        if (!b->final) {   /* gradient of the block input = the previous block's continuing half */
            TRY(kcu_squeeze_inv(dt, dh, C / 4, H * 2, W * 2, G));
            SWAPF(dh, dt);
        }
    }
    return 0;
}

/* Inverse of G maps: z (G, dim) -> x (G, dim); h, t, u, v (G, dim) each. */
static int pass_inverse(const cglow_model *m, const cuda_model *cm, const float *z, const float *c, int G, float *x,
                        float *h, float *t, float *u, float *v, float *scratch)
{
    const float *Pm = cm->params;
    const int P = m->cfg.cond_features, Hd = m->cfg.hidden, K = m->cfg.steps;
    const float clamp = m->cfg.coupling_clamp;
    for (int bi = m->nblocks - 1; bi >= 0; bi--) {
        const block_info *b = &m->blocks[bi];
        const int C = b->C, H = b->H, W = b->W, HW = H * W;
        const size_t chw = (size_t)C * HW, n = chw * G, zo = b->final ? 0 : chw / 2;
        if (!b->final) {   /* (G, C/2, HW) continuing halves -> (G, C, HW), latent in the second half */
            TRY(kcu_copy_channels(t, C, 0, h, C / 2, 0, C / 2, HW, G));
            SWAPF(h, t);
        }
        TRY(kcu_copy_channels(h, (int)chw, (int)zo, z, (int)m->dim, (int)b->zoff, (int)b->zdim, 1, G));
        for (int k = K - 1; k >= 0; k--) {
            const step_offsets *s = &b->steps[k];
            const kcu_net inj = injector_net(Pm, s), cp = coupling_net(Pm, s);
            TRY(kcu_coupling_layer_inv(t, h, c, &cp, C, P, Hd, H, W, G, clamp, scratch));
            TRY(kcu_injector_layer_inv(h, t, c, &inj, C, P, Hd, H, W, G, scratch));
            /* x = W^-1 y, then one step of refinement x += W^-1 (y - W x), as invconv_inv */
            TRY(kcu_invconv_inv(t, h, cm->winv + s->wc, C, HW, G, scratch));
            TRY(kcu_conv1x1_fwd(u, t, cm->wfwd + s->wc, NULL, C, C, HW, G, scratch));
            TRY(kcu_axpy(u, -1.0f, h, n));   /* u = W x - y */
            TRY(kcu_conv1x1_fwd(v, u, cm->winv + s->wc, NULL, C, C, HW, G, scratch));
            TRY(kcu_axpy(t, -1.0f, v, n));
            SWAPF(h, t);
        }
        if (!b->final) {
            TRY(kcu_squeeze_inv(t, h, C / 4, H * 2, W * 2, G));
            SWAPF(h, t);
        }
    }
    return kcu_memcpy_d2d(x, h, sizeof(float) * m->dim * G);
}

/* ---------------------------------------------------------------- parameters and weights */
static int sync_params(cglow_model *m, cuda_model *cm)
{
    if (cm->up_version == m->params_version) return 0;
    TRY(kcu_memcpy_h2d(cm->params, m->params, sizeof(float) * m->nparams));
    cm->up_version = m->params_version;
    cm->host_stale = 0;
    cm->gen++;
    return 0;
}

static int cuda_sync_host(cglow_model *m)
{
    cuda_model *cm = m->be_state;
    if (!cm || !cm->host_stale) return 0;
    TRY(kcu_memcpy_d2h(m->params, cm->params, sizeof(float) * m->nparams));
    cm->host_stale = 0;
    model_params_changed(m);   /* the host W caches follow */
    cm->up_version = m->params_version;
    return 0;
}

static int ensure_wfwd(cuda_model *cm)
{
    if (cm->w_gen == cm->gen) return 0;
    TRY(kcu_lu_weights(cm->wfwd, cm->params, cm->lu_steps, cm->nsteps, cm->lu_work));
    cm->w_gen = cm->gen;
    return 0;
}

/* W^-1 by invconv.c on the host (LU inversion in double), uploaded */
static int ensure_winv(cglow_model *m, cuda_model *cm)
{
    if (cm->winv_gen == cm->gen) return 0;
    TRY(cuda_sync_host(m));
    model_update_winv(m);
    TRY(kcu_memcpy_h2d(cm->winv, m->winv, sizeof(float) * m->wsize));
    cm->winv_gen = cm->gen;
    return 0;
}

/* ---------------------------------------------------------------- open / close */
static void bufs_free(pass_bufs *b)
{
    graphs_free(&b->fwd);
    graphs_free(&b->inv);
    float *f[] = {b->x, b->c, b->z, b->h, b->t, b->u, b->v, b->scratch};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) kcu_free(f[i]);
    kcu_free(b->logp);
    memset(b, 0, sizeof *b);
}

static int bufs_ensure(const cglow_model *m, pass_bufs *b, int n)
{
    if (n <= b->cap) return 0;
    bufs_free(b);
    const size_t D = m->dim * (size_t)n, f = sizeof(float);
    int bad = 0;
    b->x = dmalloc(f * D, &bad);
    b->z = dmalloc(f * D, &bad);
    b->h = dmalloc(f * D, &bad);
    b->t = dmalloc(f * D, &bad);
    b->u = dmalloc(f * D, &bad);
    b->v = dmalloc(f * D, &bad);
    b->c = dmalloc(f * m->cfg.cond_features * (size_t)n, &bad);
    b->scratch = dmalloc(f * pass_scratch(m, n), &bad);
    b->logp = dmalloc(sizeof(double) * n, &bad);
    if (bad) {
        bufs_free(b);
        return cglow_last_error()[0] ? CGLOW_ENOMEM : cglow_set_error(CGLOW_ENOMEM, "cuda: out of device memory");
    }
    b->cap = n;
    return 0;
}

static int cuda_available(const char **reason)
{
    const int ok = kcu_available();
    if (reason) *reason = kcu_unavailable_reason();
    return ok;
}

static void cuda_close(cglow_model *m, void *state)
{
    (void)m;
    cuda_model *cm = state;
    if (!cm) return;
    bufs_free(&cm->inf);
    kcu_free(cm->params);
    kcu_free(cm->wfwd);
    kcu_free(cm->winv);
    kcu_free(cm->lu_work);
    kcu_free(cm->lu_steps);
    free(cm->tape_off);
    free(cm);
}

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static int cuda_open(cglow_model *m, void **state)
{
    if (!kcu_available())
        return cglow_set_error(CGLOW_ENOTSUP, "device cuda: no usable CUDA device (%s)", kcu_unavailable_reason());
    TRY(kcu_init(0));
    cuda_model *cm = calloc(1, sizeof *cm);
    if (!cm) return cglow_set_error(CGLOW_ENOMEM, "out of memory");
    cm->nsteps = m->nblocks * m->cfg.steps;
    kcu_lu_step *hs = calloc((size_t)cm->nsteps, sizeof *hs);
    cm->tape_off = calloc((size_t)m->nblocks, sizeof *cm->tape_off);
    int bad = !hs || !cm->tape_off;
    if (!bad) tape_layout(m, cm);
    cm->params = dmalloc(sizeof(float) * m->nparams, &bad);
    cm->wfwd = dmalloc(sizeof(float) * m->wsize, &bad);
    cm->winv = dmalloc(sizeof(float) * m->wsize, &bad);
    cm->lu_work = dmalloc(sizeof(double) * m->wsize, &bad);
    cm->lu_steps = dmalloc(sizeof(kcu_lu_step) * (size_t)cm->nsteps, &bad);
    if (!bad) {
        for (int bi = 0, i = 0; bi < m->nblocks; bi++)
            for (int k = 0; k < m->cfg.steps; k++, i++) {
                const step_offsets *s = &m->blocks[bi].steps[k];
                kcu_lu_step d = {(long long)s->perm, (long long)s->lower, (long long)s->upper, (long long)s->log_s,
                                 (long long)s->sign, (long long)s->wc, m->blocks[bi].C, 0};
                hs[i] = d;
            }
        bad = kcu_memcpy_h2d(cm->lu_steps, hs, sizeof(kcu_lu_step) * (size_t)cm->nsteps) != 0;
    }
    free(hs);
    if (bad) {
        cuda_close(m, cm);
        return cglow_last_error()[0] ? CGLOW_ENOMEM : cglow_set_error(CGLOW_ENOMEM, "out of memory");
    }
    cm->up_version = -1;   /* uploaded at first use */
    cm->w_gen = cm->winv_gen = -1;
    cm->graphs = env_int("CGLOW_CUDA_GRAPHS", 1) != 0;
    cm->chunk = env_int("CGLOW_CUDA_CHUNK", 1024);
    if (cm->chunk < 1) cm->chunk = 1024;
    *state = cm;
    return 0;
}

/* ---------------------------------------------------------------- forward, inverse */
typedef struct {
    const cglow_model *m;
    cuda_model *cm;
    int G;
} pass_ctx;

static int fwd_fn(void *p)
{
    pass_ctx *x = p;
    pass_bufs *b = &x->cm->inf;
    return pass_forward(x->m, x->cm, b->x, b->c, x->G, b->logp, b->z, NULL, b->h, b->t, b->scratch);
}

static int inv_fn(void *p)
{
    pass_ctx *x = p;
    pass_bufs *b = &x->cm->inf;
    return pass_inverse(x->m, x->cm, b->z, b->c, x->G, b->x, b->h, b->t, b->u, b->v, b->scratch);
}

static int cuda_forward(cglow_model *m, const real *x, const real *c, int n, double *logp, real *z)
{
    cuda_model *cm = m->be_state;
    const size_t D = m->dim, P = m->cfg.cond_features;
    TRY(sync_params(m, cm));
    for (int i0 = 0; i0 < n; i0 += cm->chunk) {
        const int G = n - i0 < cm->chunk ? n - i0 : cm->chunk;
        TRY(bufs_ensure(m, &cm->inf, G));
        pass_bufs *b = &cm->inf;
        TRY(kcu_memcpy_h2d(b->x, x + (size_t)i0 * D, sizeof(float) * D * G));
        TRY(kcu_memcpy_h2d(b->c, c + (size_t)i0 * P, sizeof(float) * P * G));
        TRY(ensure_wfwd(cm));
        pass_ctx ctx = {m, cm, G};
        TRY(run_pass(cm, &b->fwd, G, fwd_fn, &ctx));
        if (logp) TRY(kcu_memcpy_d2h(logp + i0, b->logp, sizeof(double) * G));
        if (z) TRY(kcu_memcpy_d2h(z + (size_t)i0 * D, b->z, sizeof(float) * D * G));
        TRY(kcu_sync());
    }
    return 0;
}

static int cuda_inverse(cglow_model *m, const real *z, const real *c, int n, real *x)
{
    cuda_model *cm = m->be_state;
    const size_t D = m->dim, P = m->cfg.cond_features;
    TRY(sync_params(m, cm));
    for (int i0 = 0; i0 < n; i0 += cm->chunk) {
        const int G = n - i0 < cm->chunk ? n - i0 : cm->chunk;
        TRY(bufs_ensure(m, &cm->inf, G));
        pass_bufs *b = &cm->inf;
        TRY(kcu_memcpy_h2d(b->z, z + (size_t)i0 * D, sizeof(float) * D * G));
        TRY(kcu_memcpy_h2d(b->c, c + (size_t)i0 * P, sizeof(float) * P * G));
        TRY(ensure_wfwd(cm));
        TRY(ensure_winv(m, cm));
        pass_ctx ctx = {m, cm, G};
        TRY(run_pass(cm, &b->inv, G, inv_fn, &ctx));
        TRY(kcu_memcpy_d2h(x + (size_t)i0 * D, b->x, sizeof(float) * D * G));
        TRY(kcu_sync());
    }
    return 0;
}

/* ---------------------------------------------------------------- training */
static void cuda_train_free(cglow_model *m, void *st)
{
    (void)m;
    cuda_train *tr = st;
    if (!tr) return;
    graphs_free(&tr->graphs);
    float *f[] = {tr->grads, tr->adam_m, tr->adam_v, tr->dw, tr->tape, tr->x, tr->c, tr->dh, tr->dt, tr->scratch};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) kcu_free(f[i]);
    kcu_free(tr->logp);
    kcu_free(tr->red);
    kcu_free(tr->parts);
    free(tr);
}

static int cuda_train_create(cglow_model *m, int max_batch, void **st)
{
    const cuda_model *cm = m->be_state;
    cuda_train *tr = calloc(1, sizeof *tr);
    if (!tr) return cglow_set_error(CGLOW_ENOMEM, "out of memory");
    const size_t N = m->nparams, B = (size_t)max_batch, f = sizeof(float);
    int bad = 0;
    tr->max_batch = max_batch;
    tr->grads = dmalloc(f * N, &bad);
    tr->adam_m = dmalloc(f * N, &bad);
    tr->adam_v = dmalloc(f * N, &bad);
    tr->dw = dmalloc(f * m->wsize, &bad);
    tr->tape = dmalloc(f * B * cm->tape_size, &bad);
    tr->x = dmalloc(f * B * m->dim, &bad);
    tr->dh = dmalloc(f * B * m->dim, &bad);
    tr->dt = dmalloc(f * B * m->dim, &bad);
    tr->c = dmalloc(f * B * m->cfg.cond_features, &bad);
    tr->scratch = dmalloc(f * pass_scratch(m, max_batch), &bad);
    tr->logp = dmalloc(sizeof(double) * B, &bad);
    tr->red = dmalloc(sizeof(double) * 2, &bad);
    tr->parts = dmalloc(sizeof(double) * NPARTS, &bad);
    if (!bad) bad = kcu_memset0(tr->grads, f * N) || kcu_memset0(tr->adam_m, f * N) || kcu_memset0(tr->adam_v, f * N) ||
                    kcu_sync();
    if (bad) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", cglow_last_error());
        cuda_train_free(m, tr);
        return cglow_set_error(CGLOW_ENOMEM, "cuda: training buffers for batch %d (%.2f GB of tape): %s", max_batch,
                               (double)(f * B * cm->tape_size) * 1e-9, msg);
    }
    *st = tr;
    return 0;
}

typedef struct {
    const cglow_model *m;
    cuda_model *cm;
    cuda_train *tr;
    int G;
} train_ctx;

/* W from the parameters, forward with the tape, sum of log p, backward, the LU chain rule, |g|^2 */
static int train_fn(void *p)
{
    train_ctx *x = p;
    const cglow_model *m = x->m;
    cuda_model *cm = x->cm;
    cuda_train *tr = x->tr;
    const int G = x->G;
    const float gl = (float)(-1.0 / ((double)G * (double)m->dim));
    TRY(kcu_lu_weights(cm->wfwd, cm->params, cm->lu_steps, cm->nsteps, cm->lu_work));
    TRY(kcu_memset0(tr->grads, sizeof(float) * m->nparams));
    TRY(kcu_memset0(tr->dw, sizeof(float) * m->wsize));
    TRY(pass_forward(m, cm, tr->x, tr->c, G, tr->logp, NULL, tr->tape, tr->dh, tr->dt, tr->scratch));
    TRY(kcu_sum_d(tr->red, tr->logp, G));
    TRY(pass_backward(m, cm, tr, tr->c, G, gl, tr->dh, tr->dt));
    TRY(kcu_lu_weight_grad(tr->grads, cm->params, tr->dw, cm->lu_steps, cm->nsteps, cm->lu_work));
    return kcu_sumsq_parts(tr->red + 1, tr->parts, NPARTS, tr->grads, m->nparams);
}

static int cuda_loss_grad(cglow_model *m, void *st, const real *x, const real *c, int n, double *loss, double *sumsq)
{
    cuda_model *cm = m->be_state;
    cuda_train *tr = st;
    if (n < 1 || n > tr->max_batch) return cglow_set_error(CGLOW_EARG, "cuda: batch of %d maps (made for 1..%d)", n, tr->max_batch);
    TRY(sync_params(m, cm));
    TRY(kcu_memcpy_h2d(tr->x, x, sizeof(float) * m->dim * n));
    TRY(kcu_memcpy_h2d(tr->c, c, sizeof(float) * m->cfg.cond_features * n));
    train_ctx ctx = {m, cm, tr, n};
    TRY(run_pass(cm, &tr->graphs, n, train_fn, &ctx));
    cm->w_gen = cm->gen;   /* the pass built W from the current parameters */
    double red[2];
    TRY(kcu_memcpy_d2h(red, tr->red, sizeof red));   /* waits for the step; reports a kernel's error */
    *loss = -red[0] / ((double)n * (double)m->dim);
    *sumsq = red[1];
    return 0;
}

static int cuda_adam(cglow_model *m, void *st, double scale, double b1, double b2, double eps, double step_size,
                     double sbc2)
{
    cuda_model *cm = m->be_state;
    cuda_train *tr = st;
    TRY(sync_params(m, cm));
    TRY(kcu_adam(cm->params, tr->grads, tr->adam_m, tr->adam_v, m->nparams, scale, b1, b2, eps, step_size, sbc2));
    cm->gen++;
    cm->host_stale = 1;
    return 0;
}

static int cuda_get_state(cglow_model *m, void *st, real *grads, real *adam_m, real *adam_v)
{
    cuda_train *tr = st;
    const size_t b = sizeof(float) * m->nparams;
    if (grads) TRY(kcu_memcpy_d2h(grads, tr->grads, b));
    if (adam_m) TRY(kcu_memcpy_d2h(adam_m, tr->adam_m, b));
    if (adam_v) TRY(kcu_memcpy_d2h(adam_v, tr->adam_v, b));
    return 0;
}

static int cuda_set_state(cglow_model *m, void *st, const real *adam_m, const real *adam_v)
{
    cuda_train *tr = st;
    const size_t b = sizeof(float) * m->nparams;
    if (adam_m) TRY(kcu_memcpy_h2d(tr->adam_m, adam_m, b));
    if (adam_v) TRY(kcu_memcpy_h2d(tr->adam_v, adam_v, b));
    return 0;
}

static const flow_backend cuda_table = {
    "cuda", cuda_available, cuda_open, cuda_close, cuda_forward, cuda_inverse, cuda_sync_host,
    cuda_train_create, cuda_train_free, cuda_loss_grad, cuda_adam, cuda_get_state, cuda_set_state,
};

const flow_backend *flow_backend_cuda(void) { return &cuda_table; }
