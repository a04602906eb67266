/* The flow's internals: the tensor table, one contiguous parameter buffer, and the per-block
 * layout. Layers address their tensors by offsets into that buffer, so the same offsets index
 * the parameters, the gradients and the Adam moments (as in llm.c). */
#ifndef CGLOW_MODEL_H
#define CGLOW_MODEL_H
#include "cglow.h"
#include "kernels/kernels.h"

typedef struct {
    size_t off;                 /* into params */
    cglow_tensor_info info;     /* info.name is owned */
} tensor_entry;

/* Offsets of one flow step's tensors, and of its C x C weight in the invconv caches. */
typedef struct {
    size_t perm, lower, upper, log_s, sign;
    size_t inj_w1, inj_b1, inj_w2, inj_b2, inj_zw, inj_zb, inj_zs;
    size_t cp_w1, cp_b1, cp_w2, cp_b2, cp_zw, cp_zb, cp_zs;
    size_t wc;
    /* into the prepared-weights cache (model_update_prep): the coupling's conv1 on xa and its
     * zeroconv times exp(3 zs), the condition tap sums, the injector's conv1 and zeroconv;
     * each as k_conv3x3_prepare leaves it (reduced to the centre tap for 1x1 maps) */
    size_t pc_w1, pc_zw, pc_cond, pi_w1, pi_zw;
} step_offsets;

/* fc1.weight, fc1.bias, fc2.weight, fc2.bias, fc3.weight, fc3.bias */
typedef struct { size_t w1, b1, w2, b2, w3, b3; } mlp_offsets;

typedef struct {
    int C, H, W;          /* inside the block, after the squeeze */
    int final;            /* the last block: no squeeze, no split */
    size_t zdim;          /* elements of this block's latent */
    size_t zoff;          /* where it starts in the concatenated latent vector */
    step_offsets *steps;
    mlp_offsets prior_mean, prior_logvar;   /* conditional prior */
    size_t learned_mean, learned_logvar;     /* learned prior */
    size_t prep_w3t[2];   /* conditional prior: the mean's and logvar's fc3 weights transposed (Hc x D), in prep */
    size_t tape_off;      /* this block's start in a map's tape */
} block_info;

struct cglow_model {
    cglow_config cfg;
    cglow_data_config data;
    int ntensors;
    tensor_entry *tensors;
    size_t nparams;       /* elements of the buffer, fixed tensors included */
    real *params;
    int nblocks;          /* levels + 1 */
    block_info *blocks;
    size_t dim;           /* C0 * H * W */
    /* Invertible 1x1 convolution weights W and W^-1 of every step (sum of C^2), rebuilt when
     * the parameters change (version counter). */
    size_t wsize;
    real *wfwd, *winv;
    long params_version, wfwd_version, winv_version;
    /* Per-step weights derived from the parameters (step_offsets.pc_*, pi_*), rebuilt likewise. */
    size_t prep_size;
    real *prep;
    long prep_version;
    /* Sizes of the per-map scratch and tape. */
    size_t scratch_size;  /* elements of one thread's scratch */
    size_t tape_size;     /* elements of one map's saved activations */
    char *train_state;
    struct flow_work *work;   /* forward/inverse scratch, made on first use */
    int work_threads;
    /* Where the passes run (src/model/backend.h): NULL or the CPU table = flow.c; state is the
     * backend's (device copies of the parameters); trainers counts the live trainers. */
    const struct flow_backend *be;
    void *be_state;
    int trainers;
};

/* Tape of one step, per map: x0 (invconv input), x1 (injector input), x2 (coupling input) each
 * C*HW, h1, h2 each Hd*HW, o C*HW; then, per block, its output. A group of G maps stores G
 * times that, each of the six arrays for the whole (sub)group together. */
size_t step_tape_size(const cglow_model *m, const block_info *b);

/* Builds the table, buffer and layout for cfg (parameters zero). */
int model_alloc(const cglow_config *cfg, cglow_model **out);
void model_init_params(cglow_model *m, uint64_t seed);
int model_find_tensor(const cglow_model *m, const char *name);
void model_params_changed(cglow_model *m);
/* Makes the invconv weight caches current. */
void model_update_wfwd(cglow_model *m);
void model_update_winv(cglow_model *m);
/* Makes the prepared weights current (before any layer runs; not thread-safe). */
void model_update_prep(cglow_model *m);

/* ---- layers: each works on one map; forward, inverse, backward side by side.
 * Gradients accumulate (+=) into `grads`, laid out like params. */

/* squeeze.c */
void squeeze_fwd(real *out, const real *in, int C, int H, int W);     /* (C,H,W) -> (4C,H/2,W/2) */
void squeeze_inv(real *out, const real *in, int C, int H, int W);     /* (4C,H/2,W/2) -> (C,H,W) */

/* Layers work on a group of G maps, tensors (G, C, H, W), conditions (G, P); logdet[g] (+=) per map;
 * g_logdet is d loss / d logdet (the same for every map of a batch). */

/* invconv.c: w is the step's C x C weight from the cache; dw accumulates dy x^T.
 * scratch: k_conv1x1_scratch(C, C, HW, G). Returns the per-map logdet. */
double invconv_fwd(real *y, const real *x, const real *w, const real *params, const step_offsets *s, int C, int HW,
                   int G, real *scratch);
/* tmp: 2 * C * HW * G elements */
void invconv_inv(real *x, const real *y, const real *w, const real *winv, int C, int HW, int G, real *scratch, real *tmp);
void invconv_bwd(real *dx, real *dw, const real *dy, const real *x, const real *w, int C, int HW, int G, real *scratch);
/* Once per batch: d lower/upper/log_s from the accumulated dW (chain rule through P L U). */
void invconv_weight_grad(real *grads, const real *params, const step_offsets *s, const real *dw, int C);
/* W and W^-1 from the LU parameters. */
void invconv_weight(real *w, const real *params, const step_offsets *s, int C);
void invconv_weight_inverse(real *winv, const real *params, const step_offsets *s, int C);

/* injector.c (conditional actnorm). The small CNN of the conditions (inj_net) runs once per
 * step for a whole group; its output is applied map by map (g0 .. g0+gb-1 of the group, whose
 * tensors x, y, dx, dy hold just those gb maps). Backward accumulates d(net output) over the
 * maps, then runs the net's backward once. */
typedef struct {
    real *cmap, *a1, *a2, *oP, *doutP, *da2, *da1;   /* padded planes (kernels.h) of the G reduced maps */
    real *o, *e, *dout;                              /* (G, 2C, R), (G, C, R), (G, 2C, R) */
    double *ld;                                      /* (G): each map's log-det, from the forward */
    real *kscr;
    int rh, rw, R, G;
    size_t PL, org, MP, Wr;                          /* the planes' geometry */
} inj_net;
size_t injector_net_size(const cglow_model *m, const block_info *b, int G);
void injector_prepare(cglow_model *m, const block_info *b, const step_offsets *s);
void injector_net_carve(inj_net *w, const cglow_model *m, const block_info *b, int G, real *mem);
/* The forward state (injector_net_state_size) apart from the work area (the rest of
 * injector_net_size): training keeps each step's state from the forward for the backward, which
 * then zeroes the output gradient (injector_net_zero_grad; injector_net_fwd does it too). */
size_t injector_net_state_size(const cglow_model *m, const block_info *b, int G);
void injector_net_carve_split(inj_net *w, const cglow_model *m, const block_info *b, int G, real *state, real *work);
void injector_net_zero_grad(inj_net *w, const block_info *b);
void injector_net_fwd(inj_net *w, const real *c, const real *params, const step_offsets *s, const cglow_model *m,
                      const block_info *b);
void injector_apply_fwd(real *y, const real *x, const inj_net *w, const block_info *b, int g0, int gb, double *logdet);
void injector_apply_inv(real *x, const real *y, const inj_net *w, const block_info *b, int g0, int gb);
void injector_apply_bwd(real *dx, const real *dy, const real *x, real g_logdet, inj_net *w, const block_info *b, int g0,
                        int gb);
void injector_net_bwd(real *grads, inj_net *w, const real *params, const step_offsets *s, const cglow_model *m,
                      const block_info *b);
/* The whole layer on G maps. ws: injector_scratch_size(G). */
size_t injector_scratch_size(const cglow_model *m, const block_info *b, int G);
void injector_fwd(real *y, const real *x, const real *c, const real *params, const step_offsets *s,
                  const cglow_model *m, const block_info *b, int G, real *ws, double *logdet);
void injector_inv(real *x, const real *y, const real *c, const real *params, const step_offsets *s,
                  const cglow_model *m, const block_info *b, int G, real *ws);
/* dx overwritten; x is the forward input. */
void injector_bwd(real *dx, real *grads, const real *dy, const real *x, real g_logdet, const real *c,
                  const real *params, const step_offsets *s, const cglow_model *m, const block_info *b, int G,
                  real *ws);

/* coupling.c. ws: coupling_scratch_size(G); tape (may be NULL in fwd): h1, h2, o of the G maps. */
size_t coupling_scratch_size(const cglow_model *m, const block_info *b, int G);
/* Whether conv1 takes the condition channels as inputs (small maps) or adds a table. */
int coupling_cond_in_conv(const block_info *b);
/* Its prepared weights (model_update_prep). */
void prior_prepare(cglow_model *m, const block_info *b);
void coupling_prepare(cglow_model *m, const block_info *b, const step_offsets *s);
/* The tape of G maps: h1, h2, o in padded planes (at most G * (2 hidden + C) * k_plane_map_bound). */
size_t coupling_tape_size(const cglow_model *m, const block_info *b, int G);
void coupling_fwd(real *y, const real *x, const real *c, const real *params, const step_offsets *s,
                  const cglow_model *m, const block_info *b, int G, real *tape, real *ws, double *logdet);
void coupling_inv(real *x, const real *y, const real *c, const real *params, const step_offsets *s,
                  const cglow_model *m, const block_info *b, int G, real *ws);
void coupling_bwd(real *dx, real *grads, const real *dy, const real *x, real g_logdet, const real *c,
                  const real *params, const step_offsets *s, const cglow_model *m, const block_info *b, int G,
                  const real *tape, real *ws);

/* prior.c (one map): log p(z | c) of block b's latent; mean/logvar for sampling; backward gives dz
 * and accumulates parameter gradients, g = d loss / d logp. ws: prior_scratch_size(). */
size_t prior_scratch_size(const cglow_model *m, const block_info *b);
double prior_logp(const real *z, const real *c, const real *params, const cglow_model *m, const block_info *b,
                  real *ws);
void prior_mean_logvar(real *mean, real *logvar, const real *c, const real *params, const cglow_model *m,
                       const block_info *b, real *ws);
void prior_bwd(real *dz, real *grads, const real *z, real g, const real *c, const real *params,
               const cglow_model *m, const block_info *b, real *ws);
/* The same for G maps (latent g at z + g * zs, its gradient at dz + g * dzs; conditions (G, P)):
 * logp[g] += log p(z_g | c_g). ws: prior_group_scratch_size(G). */
size_t prior_group_scratch_size(const cglow_model *m, const block_info *b, int G);
void prior_logp_group(double *logp, const real *z, size_t zs, const real *c, int G, const real *params,
                      const cglow_model *m, const block_info *b, real *ws);
void prior_bwd_group(real *dz, size_t dzs, real *grads, const real *z, size_t zs, real g, const real *c, int G,
                     const real *params, const cglow_model *m, const block_info *b, real *ws);

/* flow.c: batches (OpenMP over maps). */
typedef struct flow_work flow_work;
flow_work *flow_work_create(const cglow_model *m, int max_batch, int with_tape);
void flow_work_free(flow_work *w);
/* x, c already in `real`; logp (n), z (n x dim) may be NULL. */
int flow_forward(cglow_model *m, flow_work *w, const real *x, const real *c, int n, double *logp, real *z);
int flow_inverse(cglow_model *m, flow_work *w, const real *z, const real *c, int n, real *x);
/* Loss of section 3 and its gradient into grads (nparams, overwritten). */
int flow_loss_grad(cglow_model *m, flow_work *w, const real *x, const real *c, int n, double *loss,
                   double *logp, real *grads, double *sumsq);
#endif
