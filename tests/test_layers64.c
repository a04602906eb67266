/* Every layer's backward against central finite differences, in double precision, with all
 * weights random (zeroconvs non-zero, so nothing is an identity). Objective per layer:
 * J = <r, y> + a * logdet (or a * log p for the priors). */
#include "test.h"
#include "model/model.h"
#include "util/rng.h"
#include "model_util.h"

static rng_t R;

/* zeroconvs smaller, so that no log-scale reaches its clamp: there the straight-through gradient
 * differs from the finite difference by design (tested apart below) */
static cglow_model *random_model(int H, int levels, int steps, int hidden, cglow_prior_kind prior)
{
    return random_test_model(&R, H, levels, steps, hidden, 3, prior, 7, 0.2, 0.05);
}

static void fill(real *x, size_t n, double s)
{
    for (size_t i = 0; i < n; i++) x[i] = s * rng_normal(&R);
}

static double dot(const real *a, const real *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Compares analytic gradient ga of variable array v (n entries) with central differences of J. */
typedef double (*objective)(void *ctx);
static double fd_check(const char *what, real *v, const real *ga, size_t n, objective J, void *ctx, size_t max_checks)
{
    const double h = 1e-6;
    double worst = 0, wfd = 0;
    size_t wi = 0;
    size_t stride = n > max_checks ? n / max_checks : 1;
    for (size_t i = 0; i < n; i += stride) {
        real old = v[i];
        v[i] = old + h;
        double jp = J(ctx);
        v[i] = old - h;
        double jm = J(ctx);
        v[i] = old;
        double fd = (jp - jm) / (2 * h);
        double err = fabs(fd - ga[i]) / fmax(1e-3, fabs(fd) + fabs(ga[i]));
        if (err > worst) { worst = err; wi = i; wfd = fd; }
    }
    CHECK(worst < 1e-4, "%s: worst relative error %.3e at %zu of %zu (finite difference %.6g, backward %.6g)", what, worst,
          wi, n, wfd, (double)ga[wi]);
    return worst;
}

/* ---- one step's layers on block 0 (C=4, 8x8 > 5 so the injector's border classes matter) */
#define NG 3   /* maps per group: the layers run groups of maps with their own conditions */

typedef struct {
    cglow_model *m;
    const block_info *b;
    const step_offsets *s;
    real *x, *y, *r, *c, *ws, *tape, *w, *dw;
    double a;
    int layer;   /* 0 invconv, 1 injector, 2 coupling, 3 prior */
} layer_ctx;

static double layer_J(void *p)
{
    layer_ctx *L = p;
    cglow_model *m = L->m;
    const int C = L->b->C, HW = L->b->H * L->b->W;
    double ld[NG] = {0}, sum = 0;
    model_params_changed(m);   /* fd_check moved a parameter: rebuild the derived weights */
    model_update_prep(m);
    switch (L->layer) {
    case 0:
        invconv_weight(L->w, m->params, L->s, C);
        ld[0] = NG * invconv_fwd(L->y, L->x, L->w, m->params, L->s, C, HW, NG, L->ws);
        break;
    case 1: injector_fwd(L->y, L->x, L->c, m->params, L->s, m, L->b, NG, L->ws, ld); break;
    case 2: coupling_fwd(L->y, L->x, L->c, m->params, L->s, m, L->b, NG, L->tape, L->ws, ld); break;
    case 3: return L->a * prior_logp(L->x, L->c, m->params, m, L->b, L->ws);
    }
    for (int g = 0; g < NG; g++) sum += ld[g];
    return dot(L->r, L->y, (size_t)C * HW * NG) + L->a * sum;
}

static void check_layer(cglow_model *m, int bi, int layer, const char *name)
{
    layer_ctx L = {.m = m, .b = &m->blocks[bi], .layer = layer, .a = 0.7};
    L.s = &L.b->steps[0];
    const size_t chw = (size_t)L.b->C * L.b->H * L.b->W * NG;
    real *grads = calloc(m->nparams, sizeof(real));
    L.x = malloc(sizeof(real) * chw); L.y = malloc(sizeof(real) * chw); L.r = malloc(sizeof(real) * chw);
    real *dx = malloc(sizeof(real) * chw);
    L.c = malloc(sizeof(real) * 8 * NG);
    size_t wsn = injector_scratch_size(m, L.b, NG) + coupling_scratch_size(m, L.b, NG) + prior_scratch_size(m, L.b) +
                 k_conv1x1_scratch(L.b->C, L.b->C, L.b->H * L.b->W, NG);
    L.ws = malloc(sizeof(real) * wsn);
    L.tape = malloc(sizeof(real) * step_tape_size(m, L.b) * NG);
    L.w = malloc(sizeof(real) * L.b->C * L.b->C);
    L.dw = calloc(L.b->C * L.b->C, sizeof(real));
    fill(L.x, chw, 0.8);
    fill(L.r, chw, 1.0);
    fill(L.c, m->cfg.cond_features * NG, 0.5);
    layer_J(&L);   /* forward: fills the tape */
    size_t first = 0, last = 0;   /* the layer's tensors */
    switch (layer) {
    case 0:
        invconv_bwd(dx, L.dw, L.r, L.x, L.w, L.b->C, L.b->H * L.b->W, NG, L.ws);
        invconv_weight_grad(grads, m->params, L.s, L.dw, L.b->C);
        for (int i = 0; i < L.b->C; i++) grads[L.s->log_s + i] += L.a * L.b->H * L.b->W * NG;
        first = L.s->perm; last = L.s->inj_w1;
        break;
    case 1:
        injector_bwd(dx, grads, L.r, L.x, L.a, L.c, m->params, L.s, m, L.b, NG, L.ws);
        first = L.s->inj_w1; last = L.s->cp_w1;
        break;
    case 2:
        coupling_bwd(dx, grads, L.r, L.x, L.a, L.c, m->params, L.s, m, L.b, NG, L.tape, L.ws);
        first = L.s->cp_w1; last = L.s->cp_zs + L.b->C;
        break;
    case 3:
        prior_bwd(dx, grads, L.x, L.a, L.c, m->params, m, L.b, L.ws);
        if (m->cfg.prior == CGLOW_PRIOR_CONDITIONAL) { first = L.b->prior_mean.w1; last = L.b->prior_logvar.b3 + L.b->zdim; }
        else { first = L.b->learned_mean; last = L.b->learned_logvar + L.b->zdim; }
        break;
    }
    char what[128];
    snprintf(what, sizeof what, "%s d/dx", name);
    fd_check(what, L.x, dx, layer == 3 ? L.b->zdim : chw, layer_J, &L, 300);
    /* every trainable tensor of the layer */
    for (int i = 0; i < m->ntensors; i++) {
        tensor_entry *t = &m->tensors[i];
        if (t->off < first || t->off >= last || !t->info.trainable) continue;
        snprintf(what, sizeof what, "%s d/d %s", name, t->info.name);
        fd_check(what, m->params + t->off, grads + t->off, t->info.size, layer_J, &L, 60);
    }
    free(grads); free(L.x); free(L.y); free(L.r); free(dx); free(L.c); free(L.ws); free(L.tape); free(L.w); free(L.dw);
}

static void test_invconv_grad(void)
{
    cglow_model *m = random_model(16, 1, 1, 3, CGLOW_PRIOR_CONDITIONAL);
    check_layer(m, 0, 0, "invconv");
    cglow_model_free(m);
}

static void test_injector_grad(void)
{
    /* 8x8 inside block 0 (border classes), and 1x1... via a deeper model's last blocks */
    cglow_model *m = random_model(16, 1, 1, 3, CGLOW_PRIOR_CONDITIONAL);
    check_layer(m, 0, 1, "injector 8x8");
    check_layer(m, 1, 1, "injector final 8x8");
    cglow_model_free(m);
    m = random_model(8, 3, 1, 3, CGLOW_PRIOR_CONDITIONAL);
    check_layer(m, 1, 1, "injector 2x2");
    check_layer(m, 2, 1, "injector 1x1");
    cglow_model_free(m);
}

static void test_coupling_grad(void)
{
    cglow_model *m = random_model(16, 1, 1, 3, CGLOW_PRIOR_CONDITIONAL);
    check_layer(m, 0, 2, "coupling 8x8");
    cglow_model_free(m);
    m = random_model(8, 3, 1, 3, CGLOW_PRIOR_CONDITIONAL);
    check_layer(m, 2, 2, "coupling 1x1");
    cglow_model_free(m);
}

static void test_prior_grad(void)
{
    cglow_model *m = random_model(16, 1, 1, 3, CGLOW_PRIOR_CONDITIONAL);
    check_layer(m, 0, 3, "conditional prior");
    check_layer(m, 1, 3, "conditional prior final");
    cglow_model_free(m);
    m = random_model(16, 1, 1, 3, CGLOW_PRIOR_LEARNED);
    check_layer(m, 0, 3, "learned prior");
    cglow_model_free(m);
}

/* The clamps are straight-through: with logvar pushed past its clamp, the gradient still
 * flows (d/d fc3.bias is not zero), unlike a true clamp. */
static void test_straight_through(void)
{
    cglow_model *m = random_model(16, 1, 1, 3, CGLOW_PRIOR_CONDITIONAL);
    block_info *b = &m->blocks[0];
    for (size_t k = 0; k < b->zdim; k++) m->params[b->prior_logvar.b3 + k] = 9;   /* > 5 */
    real *z = malloc(sizeof(real) * b->zdim), *dz = malloc(sizeof(real) * b->zdim), *c = malloc(sizeof(real) * 8);
    real *ws = malloc(sizeof(real) * prior_scratch_size(m, b)), *g = calloc(m->nparams, sizeof(real));
    fill(z, b->zdim, 1); fill(c, 2, 0.3);
    prior_bwd(dz, g, z, 1.0, c, m->params, m, b, ws);
    double s = 0;
    for (size_t k = 0; k < b->zdim; k++) s += fabs(g[b->prior_logvar.b3 + k]);
    CHECK(s > 0, "no gradient through the clamped logvar");
    free(z); free(dz); free(c); free(ws); free(g);
    cglow_model_free(m);
}

static void test_squeeze(void)
{
    real in[2 * 4 * 6], out[2 * 4 * 6], back[2 * 4 * 6];
    for (int i = 0; i < 48; i++) in[i] = i;
    squeeze_fwd(out, in, 2, 4, 6);
    int ok = 1;
    for (int c = 0; c < 2; c++)
        for (int dy = 0; dy < 2; dy++)
            for (int dx = 0; dx < 2; dx++)
                for (int i = 0; i < 2; i++)
                    for (int j = 0; j < 3; j++)
                        ok &= out[((c * 4 + dy * 2 + dx) * 2 + i) * 3 + j] == in[(c * 4 + 2 * i + dy) * 6 + 2 * j + dx];
    CHECK(ok, "squeeze index formula");
    squeeze_inv(back, out, 2, 4, 6);
    CHECK(!memcmp(back, in, sizeof in), "unsqueeze(squeeze(x)) != x");
}

int main(void)
{
    rng_seed(&R, 1234);
    cglow_set_threads(1);
    RUN(test_squeeze);
    RUN(test_invconv_grad);
    RUN(test_injector_grad);
    RUN(test_coupling_grad);
    RUN(test_prior_grad);
    RUN(test_straight_through);
    TEST_MAIN_END();
}
