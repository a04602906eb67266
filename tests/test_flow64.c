/* The whole model in double precision: its loss gradient against finite differences, and its
 * log-determinant against log|det J| of the brute-force Jacobian. */
#include "test.h"
#include "model/model.h"
#include "util/rng.h"
#include "model_util.h"

void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info);

static rng_t R;

static cglow_model *random_model(int H, int levels, int steps, int hidden, cglow_prior_kind prior)
{
    return random_test_model(&R, H, levels, steps, hidden, 4, prior, 3, 0.15, 0.15);
}

static void whole_model_grad(cglow_prior_kind prior)
{
    cglow_model *m = random_model(8, 2, 2, 4, prior);
    CHECK(m != NULL, "model");
    if (!m) return;
    const int n = 3, P = 2;
    real x[3 * 64], c[3 * 2];
    for (int i = 0; i < n * 64; i++) x[i] = 0.6 * rng_normal(&R);
    for (int i = 0; i < n * P; i++) c[i] = 2 * rng_uniform(&R) - 1;
    flow_work *w = flow_work_create(m, n, 1);
    real *g = malloc(sizeof(real) * m->nparams), *g2 = malloc(sizeof(real) * m->nparams);
    double loss;
    flow_loss_grad(m, w, x, c, n, &loss, NULL, g, NULL);
    double worst = 0;
    const char *worst_name = "";
    double worst_fd = 0, worst_an = 0;
    int checked = 0;
    for (int t = 0; t < m->ntensors; t++) {
        tensor_entry *te = &m->tensors[t];
        if (!te->info.trainable) continue;
        size_t stride = te->info.size > 4 ? te->info.size / 4 : 1;
        for (size_t k = 0; k < te->info.size; k += stride) {
            real *p = m->params + te->off + k, old = *p;
            /* Two step sizes: a ReLU kink within one step spoils one of them, never both;
             * a wrong backward fails both. */
            double an = g[te->off + k], fd = 0, best = INFINITY;
            const double hs[2] = {1e-5, 1e-6};
            for (int hi = 0; hi < 2; hi++) {
                double lp, lm;
                *p = old + hs[hi]; model_params_changed(m);
                flow_loss_grad(m, w, x, c, n, &lp, NULL, g2, NULL);
                *p = old - hs[hi]; model_params_changed(m);
                flow_loss_grad(m, w, x, c, n, &lm, NULL, g2, NULL);
                double d = (lp - lm) / (2 * hs[hi]);
                if (fabs(d - an) < best) { best = fabs(d - an); fd = d; }
            }
            *p = old; model_params_changed(m);
            /* relative, with a floor: finite differences of a loss of order 1 carry ~1e-10 noise */
            double err = fabs(fd - an) / fmax(1e-5, fabs(fd) + fabs(an));
            if (err > worst) { worst = err; worst_name = te->info.name; worst_fd = fd; worst_an = an; }
            checked++;
        }
    }
    printf("  %d parameters checked, worst relative error %.2e (%s: fd %.6e, backward %.6e)\n", checked, worst,
           worst_name, worst_fd, worst_an);
    CHECK(worst < 1e-4, "whole-model gradient: %.3e at %s", worst, worst_name);
    free(g);
    free(g2);
    flow_work_free(w);
    cglow_model_free(m);
}

static void test_model_grad_conditional(void) { whole_model_grad(CGLOW_PRIOR_CONDITIONAL); }
static void test_model_grad_learned(void) { whole_model_grad(CGLOW_PRIOR_LEARNED); }

/* log p(x) - sum_b log p_b(z_b) = log|det dz/dx| on a 1x4x4 input (L=2, K=2). */
static void test_logdet_bruteforce(void)
{
    cglow_model *m = random_model(4, 2, 2, 4, CGLOW_PRIOR_CONDITIONAL);
    CHECK(m != NULL, "model");
    if (!m) return;
    const int D = 16;
    real x[16], c[2] = {0.3, -0.4}, z[16], zp[16], zm[16];
    for (int i = 0; i < D; i++) x[i] = 0.5 * rng_normal(&R);
    flow_work *w = flow_work_create(m, 1, 0);
    double logp;
    flow_forward(m, w, x, c, 1, &logp, z);
    double prior = 0;
    real *ws = malloc(sizeof(real) * 4096);
    for (int b = 0; b < m->nblocks; b++) prior += prior_logp(z + m->blocks[b].zoff, c, m->params, m, &m->blocks[b], ws);
    double J[16 * 16];   /* column-major: J[i + j*D] = dz_i/dx_j */
    const double h = 1e-6;
    for (int j = 0; j < D; j++) {
        real old = x[j];
        x[j] = old + h; flow_forward(m, w, x, c, 1, NULL, zp);
        x[j] = old - h; flow_forward(m, w, x, c, 1, NULL, zm);
        x[j] = old;
        for (int i = 0; i < D; i++) J[i + j * D] = (zp[i] - zm[i]) / (2 * h);
    }
    int ipiv[16], info, n = D;
    dgetrf_(&n, &n, J, &n, ipiv, &info);
    double logdet = 0;
    for (int i = 0; i < D; i++) logdet += log(fabs(J[i + i * D]));
    double ours = logp - prior;
    printf("  flow log-determinant %.10f, brute-force log|det J| %.10f\n", ours, logdet);
    CHECK(fabs(ours) > 0.1, "log-determinant too close to 0 to be a test (%g)", ours);
    CHECK(fabs(ours - logdet) < 1e-4, "%.10f vs %.10f", ours, logdet);
    free(ws);
    flow_work_free(w);
    cglow_model_free(m);
}

/* Inverse of forward in double: exact to rounding. */
static void test_inverse64(void)
{
    cglow_model *m = random_model(8, 2, 2, 4, CGLOW_PRIOR_CONDITIONAL);
    real x[2 * 64], z[2 * 64], back[2 * 64], c[4] = {0.1, 0.9, -0.7, 0.2};
    for (int i = 0; i < 128; i++) x[i] = 0.7 * rng_normal(&R);
    flow_work *w = flow_work_create(m, 2, 0);
    flow_forward(m, w, x, c, 2, NULL, z);
    flow_inverse(m, w, z, c, 2, back);
    double worst = 0;
    for (int i = 0; i < 128; i++) worst = fmax(worst, fabs(back[i] - x[i]));
    CHECK(worst < 1e-10, "max |x - f^-1(f(x))| = %g", worst);
    flow_work_free(w);
    cglow_model_free(m);
}

int main(void)
{
    rng_seed(&R, 99);
    cglow_set_threads(2);
    RUN(test_model_grad_conditional);
    RUN(test_model_grad_learned);
    RUN(test_logdet_bruteforce);
    RUN(test_inverse64);
    TEST_MAIN_END();
}
