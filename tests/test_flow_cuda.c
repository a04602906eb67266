/* The whole model on the CUDA backend (cglow_model_set_device(m, "cuda"), src/model/flow_cuda.c)
 * against the CPU backend: log p and latents, the inverse and sampling, the loss gradient of every
 * tensor, Adam steps of the trainer (clipping, warm-up, a skipped non-finite step), the host copy
 * of device-trained parameters, and checkpoints that do not depend on the device.
 *
 * Built three ways: build/tests/test_flow_cuda_emul (the kernels through the CPU emulation of
 * src/kernels/cuda/emul.h, under ASan/UBSan, part of `make test`; tests named "emul.*"),
 * build/tests/test_flow_cuda (nvcc build: on a GPU the real thing; without one every device test
 * prints SKIP and test_no_device checks the clean refusal). Each comparison prints its largest
 * relative error (norms: ||dev - cpu|| / ||cpu||). */
#include "test.h"
#include "model/model.h"
#include "model_util.h"
#include "kernels/cuda/kernels_cuda.h"
#include "util/rng.h"
#include <time.h>

#define TOL 2e-4   /* float32: relative error of norms */

static int emul;
static rng_t R;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double rel_f(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] != a[i]) return INFINITY;
        const double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num) / (den > 0 ? sqrt(den) : 1.0);
}
static double rel_d(const double *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] != a[i]) return INFINITY;
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return sqrt(num) / (den > 0 ? sqrt(den) : 1.0);
}

static float *conds(int n, int P)
{
    float *c = malloc(sizeof(float) * n * P);
    for (int i = 0; i < n * P; i++) c[i] = (float)(2 * rng_uniform(&R) - 1);
    return c;
}
/* maps in model space: tanh of a smooth-ish random field, like the squashed data */
static float *maps(int n, size_t D)
{
    float *x = malloc(sizeof(float) * n * D);
    for (size_t i = 0; i < n * D; i++) x[i] = (float)tanh(rng_normal(&R) / 2);
    return x;
}

static cglow_model *small(cglow_prior_kind prior, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed);
    return random_test_model(&r, 8, 2, 2, 4, 8, prior, seed, 0.05, 0.05);
}

static int to_device(cglow_model *m)
{
    int rc = cglow_model_set_device(m, "cuda");
    if (rc) printf("  set_device(cuda): %s\n", cglow_last_error());
    return rc;
}

/* ---------------------------------------------------------------- no device: clean refusal */
static void test_no_device(void)
{
    const char *why = NULL;
    CHECK(cglow_cuda_available(&why) == 0, "expected no usable device");
    CHECK(why && *why, "a reason");
    cglow_model *m = small(CGLOW_PRIOR_CONDITIONAL, 1);
    const int rc = cglow_model_set_device(m, "cuda");
    CHECK(rc == CGLOW_ENOTSUP, "set_device: %d", rc);
    CHECK(strstr(cglow_last_error(), "cuda") != NULL, "message: %s", cglow_last_error());
    CHECK(strchr(cglow_last_error(), '\n') == NULL, "one line: %s", cglow_last_error());
    CHECK(strcmp(cglow_model_device(m), "cpu") == 0, "still on %s", cglow_model_device(m));
    CHECK(cglow_model_set_device(m, "tpu") == CGLOW_EARG, "unknown device");
    CHECK(cglow_model_set_device(m, "cpu") == 0, "cpu is always there");
    double lp;
    float *x = maps(1, m->dim), c[2] = {0.1f, -0.2f};
    CHECK(cglow_log_prob(m, x, c, 1, &lp) == 0 && isfinite(lp), "the CPU still works");
    free(x);
    cglow_model_free(m);
}

/* ---------------------------------------------------------------- forward, inverse, sampling */
/* log p, z and the inverse of n maps on the CPU, then on the device; max relative errors out. */
static void compare_passes(cglow_model *m, int n, double tol, const char *what)
{
    const size_t D = m->dim;
    const int P = m->cfg.cond_features;
    float *x = maps(n, D), *c = conds(n, P);
    float *zc = malloc(sizeof(float) * n * D), *zd = malloc(sizeof(float) * n * D);
    float *xc = malloc(sizeof(float) * n * D), *xd = malloc(sizeof(float) * n * D);
    double *lc = malloc(sizeof(double) * n), *ld = malloc(sizeof(double) * n);
    CHECK(cglow_model_set_device(m, "cpu") == 0, "cpu");
    double t0 = now();
    CHECK(cglow_forward(m, x, c, n, lc, zc) == 0, "cpu forward");
    CHECK(cglow_inverse(m, zc, c, n, xc) == 0, "cpu inverse");
    const double tcpu = now() - t0;
    if (to_device(m)) { t_failed_now = 1; goto done; }
    t0 = now();
    CHECK(cglow_forward(m, x, c, n, ld, zd) == 0, "device forward: %s", cglow_last_error());
    CHECK(cglow_inverse(m, zc, c, n, xd) == 0, "device inverse: %s", cglow_last_error());
    const double tdev = now() - t0;
    double elp = 0;
    for (int i = 0; i < n; i++) elp = fmax(elp, fabs(ld[i] - lc[i]) / fmax(1.0, fabs(lc[i])));
    const double ez = rel_f(zd, zc, n * D), ex = rel_f(xd, xc, n * D), ex0 = rel_f(xd, x, n * D);
    printf("  %s, %d maps: log p %.2e (%.6g vs %.6g), z %.2e, inverse %.2e (round trip %.2e; cpu's %.2e); "
           "%.2f s cpu, %.2f s device\n", what, n, elp, ld[0], lc[0], ez, ex, ex0, rel_f(xc, x, n * D), tcpu, tdev);
    CHECK(elp <= tol, "%s: log p relative error %.3g", what, elp);
    CHECK(ez <= tol, "%s: latents relative error %.3g", what, ez);
    CHECK(ex <= tol, "%s: inverse relative error %.3g", what, ex);
    /* the chunked path (several passes per call) and a repeat (graph replay on a GPU) agree */
    double *ld2 = malloc(sizeof(double) * n);
    CHECK(cglow_log_prob(m, x, c, n, ld2) == 0, "again");
    for (int i = 0; i < n; i++) CHECK(ld2[i] == ld[i], "%s: a repeat differs: %.17g vs %.17g", what, ld2[i], ld[i]);
    free(ld2);
done:
    CHECK(cglow_model_set_device(m, "cpu") == 0, "back to cpu");
    free(x); free(c); free(zc); free(zd); free(xc); free(xd); free(lc); free(ld);
}

static void test_passes_small(void)
{
    for (int k = 0; k < 2; k++) {
        cglow_model *m = small(k ? CGLOW_PRIOR_LEARNED : CGLOW_PRIOR_CONDITIONAL, 3 + k);
        compare_passes(m, 5, TOL, k ? "L2 K2 hidden 4 8x8 learned prior" : "L2 K2 hidden 4 8x8 conditional prior");
        cglow_model_free(m);
    }
    /* levels 0 (one final block, no squeeze), 2 input channels */
    cglow_config c;
    cglow_config_preset(&c, "higlow");
    c.in_channels = 2;
    c.height = c.width = 4;
    c.levels = 0;
    c.steps = 3;
    c.hidden = 4;
    cglow_model *m;
    CHECK(cglow_model_create(&c, 9, &m) == 0, "create: %s", cglow_last_error());
    for (int i = 0; i < m->ntensors; i++) {
        tensor_entry *t = &m->tensors[i];
        if (t->info.trainable)
            for (size_t k = 0; k < t->info.size; k++) m->params[t->off + k] += (real)(0.05 * rng_normal(&R));
    }
    model_params_changed(m);
    compare_passes(m, 3, TOL, "L0 K3 2x4x4");
    cglow_model_free(m);
}

static void test_passes_preset(void)
{
    cglow_config c;
    cglow_config_preset(&c, "higlow");
    cglow_model *m;
    CHECK(cglow_model_create(&c, 1, &m) == 0, "create: %s", cglow_last_error());
    /* non-zero zeroconvs, as test_model's invertibility test: nothing is an identity */
    for (int i = 0; i < m->ntensors; i++) {
        tensor_entry *t = &m->tensors[i];
        if (t->info.trainable && strstr(t->info.name, ".zero."))
            for (size_t k = 0; k < t->info.size; k++) m->params[t->off + k] += (real)(0.005 * rng_normal(&R));
    }
    model_params_changed(m);
    compare_passes(m, emul ? 2 : 16, TOL, "default preset (L6 K20 hidden 16 64x64)");
    cglow_model_free(m);
}

static void test_sample(void)
{
    cglow_model *m = small(CGLOW_PRIOR_CONDITIONAL, 5);
    const int n = 4;
    float *c = conds(n, 2), *xc = malloc(sizeof(float) * n * m->dim), *xd = malloc(sizeof(float) * n * m->dim);
    CHECK(cglow_sample(m, c, n, 0.8f, 77, xc) == 0, "cpu sample");
    if (!to_device(m)) {
        CHECK(cglow_sample(m, c, n, 0.8f, 77, xd) == 0, "device sample: %s", cglow_last_error());
        const double e = rel_f(xd, xc, n * m->dim);
        printf("  samples: %.2e\n", e);
        CHECK(e <= TOL, "samples relative error %.3g", e);
    } else t_failed_now = 1;
    free(c); free(xc); free(xd);
    cglow_model_free(m);
}

/* ---------------------------------------------------------------- gradient */
static double *all_grads(cglow_trainer *t, const cglow_model *m)
{
    double *g = calloc(m->nparams, sizeof(double));
    for (int i = 0; i < m->ntensors; i++) CHECK(cglow_trainer_get_grad(t, i, g + m->tensors[i].off) == 0, "get_grad");
    return g;
}

static void compare_grads(cglow_model *m, int n, const char *what)
{
    const size_t D = m->dim;
    float *x = maps(n, D), *c = conds(n, m->cfg.cond_features);
    cglow_optim_config o;
    cglow_optim_config_default(&o);
    cglow_trainer *t;
    double lc = 0, ld = 0;
    CHECK(cglow_trainer_create(m, &o, n, &t) == 0, "cpu trainer");
    CHECK(cglow_loss_grad(t, x, c, n, &lc) == 0, "cpu loss_grad");
    double *gc = all_grads(t, m);
    cglow_trainer_free(t);
    double *gd = NULL;
    if (to_device(m)) { t_failed_now = 1; goto done; }
    CHECK(cglow_trainer_create(m, &o, n, &t) == 0, "device trainer: %s", cglow_last_error());
    const double t0 = now();
    CHECK(cglow_loss_grad(t, x, c, n, &ld) == 0, "device loss_grad: %s", cglow_last_error());
    const double tdev = now() - t0;
    gd = all_grads(t, m);
    cglow_trainer_free(t);
    const double eall = rel_d(gd, gc, m->nparams), el = fabs(ld - lc) / fmax(1e-3, fabs(lc));
    double gnorm = 0;
    for (size_t i = 0; i < m->nparams; i++) gnorm += gc[i] * gc[i];
    gnorm = sqrt(gnorm);
    /* per tensor: relative to its own norm, with a floor of 1e-6 of the whole gradient (tensors
     * whose gradient is nearly zero carry only rounding) */
    double worst = 0;
    const char *wname = "";
    for (int i = 0; i < m->ntensors; i++) {
        const tensor_entry *te = &m->tensors[i];
        double num = 0, den = 0;
        for (size_t k = 0; k < te->info.size; k++) {
            const double a = gd[te->off + k], b = gc[te->off + k];
            num += (a - b) * (a - b);
            den += b * b;
        }
        const double e = sqrt(num) / fmax(sqrt(den), 1e-6 * gnorm + 1e-30);
        if (!(e <= worst)) { worst = e; wname = te->info.name; }
        if (!te->info.trainable) CHECK(num == 0 && den == 0, "%s: fixed tensor with a gradient", te->info.name);
    }
    printf("  %s, %d maps: loss %.8f vs %.8f (%.2e), gradient %.2e (|g| %.4g), worst tensor %.2e (%s); %.2f s device\n",
           what, n, ld, lc, el, eall, gnorm, worst, wname, tdev);
    CHECK(el <= 1e-5, "%s: loss relative error %.3g", what, el);
    CHECK(eall <= TOL, "%s: gradient relative error %.3g", what, eall);
    CHECK(worst <= 5e-3, "%s: tensor %s gradient relative error %.3g", what, wname, worst);
done:
    CHECK(cglow_model_set_device(m, "cpu") == 0, "back to cpu");
    free(x); free(c); free(gc); free(gd);
}

static void test_grad_small(void)
{
    for (int k = 0; k < 2; k++) {
        cglow_model *m = small(k ? CGLOW_PRIOR_LEARNED : CGLOW_PRIOR_CONDITIONAL, 13 + k);
        compare_grads(m, 6, k ? "L2 K2 hidden 4 8x8 learned prior" : "L2 K2 hidden 4 8x8 conditional prior");
        cglow_model_free(m);
    }
}

static void test_grad_preset(void)
{
    cglow_config c;
    cglow_config_preset(&c, "higlow");
    rng_t r;
    rng_seed(&r, 21);
    cglow_model *m = random_test_model(&r, c.height, c.levels, c.steps, c.hidden, c.prior_hidden,
                                       CGLOW_PRIOR_CONDITIONAL, 21, 0.01, 0.005);
    if (!m) { t_failed_now = 1; return; }
    compare_grads(m, emul ? 1 : 8, "default preset (L6 K20 hidden 16 64x64)");
    cglow_model_free(m);
}

/* ---------------------------------------------------------------- Adam steps, checkpoints */
static float *params_of(const cglow_model *m)
{
    float *p = malloc(sizeof(float) * m->nparams);
    for (int i = 0; i < m->ntensors; i++) cglow_model_get_tensor(m, i, p + m->tensors[i].off);
    return p;
}

static void test_adam_steps(void)
{
    for (int k = 0; k < 2; k++) {
        const cglow_prior_kind pk = k ? CGLOW_PRIOR_LEARNED : CGLOW_PRIOR_CONDITIONAL;
        cglow_model *a = small(pk, 31 + k), *b = small(pk, 31 + k);
        const int n = 4, steps = 3;
        const size_t D = a->dim;
        float *x = maps(n * steps, D), *c = conds(n * steps, 2), *p0 = params_of(a);
        cglow_optim_config o;
        cglow_optim_config_default(&o);
        o.lr = 1e-3;
        o.clip_norm = 0.05;   /* the clipping scale is in play */
        o.warmup_steps = 2;
        cglow_trainer *ta = NULL, *tb = NULL;
        CHECK(cglow_trainer_create(a, &o, n, &ta) == 0, "cpu trainer");
        if (to_device(b)) { t_failed_now = 1; goto done; }
        CHECK(cglow_trainer_create(b, &o, n, &tb) == 0, "device trainer: %s", cglow_last_error());
        CHECK(cglow_model_set_device(b, "cpu") == CGLOW_EARG, "device changed under a trainer");
        double worst_loss = 0, worst_norm = 0;
        for (int s = 0; s < steps; s++) {
            cglow_step_result ra, rb;
            CHECK(cglow_train_step(ta, x + (size_t)s * n * D, c + s * n * 2, n, &ra) == 0, "cpu step");
            CHECK(cglow_train_step(tb, x + (size_t)s * n * D, c + s * n * 2, n, &rb) == 0, "device step: %s",
                  cglow_last_error());
            worst_loss = fmax(worst_loss, fabs(ra.loss - rb.loss) / fabs(ra.loss));
            worst_norm = fmax(worst_norm, fabs(ra.grad_norm - rb.grad_norm) / ra.grad_norm);
            CHECK(ra.skipped == 0 && rb.skipped == 0 && ra.lr == rb.lr, "step %d: skipped %d %d lr %g %g", s,
                  ra.skipped, rb.skipped, ra.lr, rb.lr);
            CHECK(ra.grad_norm > o.clip_norm, "step %d: |g| %g does not clip", s, ra.grad_norm);
        }
        /* a non-finite batch is skipped, and changes nothing */
        float *pb = params_of(b);
        x[5] = NAN;
        cglow_step_result ra, rb;
        CHECK(cglow_train_step(ta, x, c, n, &ra) == 0 && cglow_train_step(tb, x, c, n, &rb) == 0, "NaN step");
        CHECK(ra.skipped == 1 && rb.skipped == 1, "skipped: cpu %d device %d", ra.skipped, rb.skipped);
        CHECK(cglow_trainer_skipped(tb) == 1 && cglow_trainer_steps(tb) == steps, "counters %ld %ld",
              cglow_trainer_skipped(tb), cglow_trainer_steps(tb));
        float *pb2 = params_of(b), *pa = params_of(a);
        CHECK(memcmp(pb, pb2, sizeof(float) * b->nparams) == 0, "a skipped step changed the device parameters");
        /* the updates (p - p0) agree */
        for (size_t i = 0; i < a->nparams; i++) { pa[i] -= p0[i]; pb2[i] -= p0[i]; }
        const double eu = rel_f(pb2, pa, a->nparams);
        /* the moments agree (optimiser state files) */
        CHECK(cglow_trainer_save(ta, tmp_path("fc_a.optim")) == 0 && cglow_trainer_save(tb, tmp_path("fc_b.optim")) == 0,
              "save optim: %s", cglow_last_error());
        printf("  %s prior, %d Adam steps: loss %.2e, |g| %.2e, update %.2e\n", k ? "learned" : "conditional", steps,
               worst_loss, worst_norm, eu);
        CHECK(worst_loss <= 1e-5 && worst_norm <= TOL, "loss %.3g, norm %.3g", worst_loss, worst_norm);
        CHECK(eu <= 1e-3, "update relative error %.3g", eu);
        /* a device trainer's moments load into a CPU trainer and back */
        CHECK(cglow_trainer_load(tb, tmp_path("fc_a.optim")) == 0, "load optim on device: %s", cglow_last_error());
        free(pb); free(pb2); free(pa);
    done:
        cglow_trainer_free(ta);
        cglow_trainer_free(tb);
        cglow_model_free(a);
        cglow_model_free(b);
        free(x); free(c); free(p0);
    }
}

static int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int x = fgetc(fa), y = fgetc(fb);
        if (x != y) same = 0;
        if (x == EOF || y == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void test_checkpoints(void)
{
    cglow_model *m = small(CGLOW_PRIOR_CONDITIONAL, 41);
    const char *f0 = tmp_path("fc_cpu.safetensors"), *f1 = tmp_path("fc_dev.safetensors");
    const char *f2 = tmp_path("fc_trained.safetensors");
    CHECK(cglow_model_save(m, f0) == 0, "save");
    if (to_device(m)) { t_failed_now = 1; cglow_model_free(m); return; }
    const int n = 4;
    float *x = maps(n, m->dim), *c = conds(n, 2);
    double lp[4], lq[4];
    CHECK(cglow_log_prob(m, x, c, n, lp) == 0, "device log p");
    CHECK(cglow_model_save(m, f1) == 0, "save from the device: %s", cglow_last_error());
    CHECK(same_file(f0, f1), "a checkpoint saved on the device differs from the CPU's");
    /* train on the device; the checkpoint holds the trained parameters and scores the same on a CPU */
    cglow_optim_config o;
    cglow_optim_config_default(&o);
    o.lr = 1e-2;
    cglow_trainer *t;
    CHECK(cglow_trainer_create(m, &o, n, &t) == 0, "trainer");
    cglow_step_result r;
    for (int s = 0; s < 3; s++) CHECK(cglow_train_step(t, x, c, n, &r) == 0, "step");
    CHECK(cglow_log_prob(m, x, c, n, lp) == 0, "device log p after training");
    CHECK(cglow_model_save(m, f2) == 0, "save");
    cglow_trainer_free(t);
    cglow_model *back;
    CHECK(cglow_model_load(f2, &back) == 0, "load: %s", cglow_last_error());
    CHECK(strcmp(cglow_model_device(back), "cpu") == 0, "a loaded model starts on the CPU");
    CHECK(cglow_log_prob(back, x, c, n, lq) == 0, "cpu log p");
    double e = 0;
    for (int i = 0; i < n; i++) e = fmax(e, fabs(lp[i] - lq[i]) / fabs(lq[i]));
    printf("  device-trained checkpoint: log p device vs cpu %.2e\n", e);
    CHECK(e <= TOL, "log p of the saved model %.3g", e);
    CHECK(!same_file(f0, f2), "training changed nothing");
    /* set_tensor on a device model with stale host params: the other tensors keep their trained values */
    float *pd = params_of(m);
    int i0 = model_find_tensor(m, "blocks.0.steps.0.coupling.conv2.bias");
    CHECK(i0 >= 0 && cglow_model_set_tensor(m, i0, pd + m->tensors[i0].off) == 0, "set_tensor");
    CHECK(cglow_log_prob(m, x, c, n, lq) == 0, "log p");
    for (int i = 0; i < n; i++) CHECK(fabs(lq[i] - lp[i]) <= 1e-6 * fabs(lp[i]), "after set_tensor: %g vs %g", lq[i], lp[i]);
    free(pd); free(x); free(c);
    cglow_model_free(back);
    cglow_model_free(m);
}

/* ---------------------------------------------------------------- main */
typedef struct { const char *name; void (*fn)(void); } test_entry;
#define T(fn) {#fn, fn}
static const test_entry tests[] = {
    T(test_passes_small), T(test_sample), T(test_grad_small), T(test_adam_steps), T(test_checkpoints),
    T(test_passes_preset), T(test_grad_preset),
};
#define NT (sizeof tests / sizeof tests[0])

int main(void)
{
    rng_seed(&R, 2024);
    const char *why = NULL;
    if (!cglow_cuda_available(&why)) {
        printf("# cuda: %s\n", why);
        RUN(test_no_device);
        for (size_t i = 0; i < NT; i++) skip_test(tests[i].name, "no CUDA device");
        TEST_MAIN_END();
    }
    cglow_model *probe = small(CGLOW_PRIOR_CONDITIONAL, 1);
    if (cglow_model_set_device(probe, "cuda")) {
        printf("FAIL set_device (%s)\n", cglow_last_error());
        return 1;
    }
    cglow_model_free(probe);
    printf("# device: %s\n", kcu_device_name());
    emul = strstr(kcu_device_name(), "emulation") != NULL;
    skip_test(emul ? "emul.test_no_device" : "test_no_device", "a device is present");
    for (size_t i = 0; i < NT; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s%s", emul ? "emul.flow." : "flow.", tests[i].name);
        const double t0 = now();
        run_test(name, tests[i].fn);
        printf("   (%.1f s)\n", now() - t0);
    }
    TEST_MAIN_END();
}
