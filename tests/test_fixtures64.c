/* The engine (float64 build) against the reference fixtures of an independent implementation:
 * log p in model and log10 space, every latent, the loss and every gradient. */
#include "test.h"
#include "fixture_util.h"
#include "io/safetensors.h"

static void check_fixture(const char *name, int with_grads, double tol_lp, double tol_grad)
{
    fixture f;
    CHECK(fixture_load(&f, name) == 0, "load %s: %s", name, cglow_last_error());
    if (!f.m) return;
    double *lp = malloc(sizeof(double) * f.n);
    float *z = malloc(sizeof(float) * f.n * f.dim);
    CHECK(cglow_forward(f.m, f.x, f.c, f.n, lp, z) == 0, "forward: %s", cglow_last_error());
    double worst_lp = 0, worst_lp10 = 0, worst_z = 0;
    for (int i = 0; i < f.n; i++) {
        worst_lp = fmax(worst_lp, fabs(lp[i] - f.lp_model[i]) / fabs(f.lp_model[i]));
        double l10 = lp[i] + fixture_log_jacobian(cglow_model_data(f.m), f.x + i * f.dim, f.dim);
        worst_lp10 = fmax(worst_lp10, fabs(l10 - f.lp_log10[i]) / fabs(f.lp_log10[i]));
    }
    for (size_t i = 0; i < f.n * f.dim; i++) worst_z = fmax(worst_z, fabs(z[i] - f.latents[i]));
    printf("  %s: max rel err log p %.2e (log10 space %.2e), max abs err latent %.2e\n", name, worst_lp, worst_lp10, worst_z);
    CHECK(worst_lp < tol_lp, "log p rel err %g", worst_lp);
    CHECK(worst_lp10 < tol_lp, "log10 log p rel err %g", worst_lp10);
    CHECK(worst_z < 1e-4, "latent err %g", worst_z);
    cglow_optim_config o;
    cglow_optim_config_default(&o);
    cglow_trainer *t;
    CHECK(cglow_trainer_create(f.m, &o, f.n, &t) == 0, "trainer");
    double loss;
    CHECK(cglow_loss_grad(t, f.x, f.c, f.n, &loss) == 0, "loss_grad: %s", cglow_last_error());
    printf("  %s: loss %.10f reference %.10f\n", name, loss, f.loss);
    CHECK_CLOSE(loss, f.loss, tol_lp);
    if (with_grads) {
        char path[512];
        snprintf(path, sizeof path, "fixtures/%s/grads.safetensors", name);
        st_file g;
        CHECK(st_read(shared_path(path), &g) == 0, "grads: %s", cglow_last_error());
        double worst = 0;
        const char *worst_name = "";
        for (int i = 0; i < cglow_model_num_tensors(f.m); i++) {
            const cglow_tensor_info *ti = cglow_model_tensor(f.m, i);
            const st_tensor *ref = st_find(&g, ti->name);
            CHECK(ref && ref->numel == ti->size, "reference gradient of %s", ti->name);
            if (!ref) continue;
            double *a = malloc(sizeof(double) * ti->size), *b = malloc(sizeof(double) * ti->size);
            cglow_trainer_get_grad(t, i, a);
            st_get_f64(ref, b);
            double num = 0, den = 0;
            for (size_t k = 0; k < ti->size; k++) { num += (a[k] - b[k]) * (a[k] - b[k]); den += b[k] * b[k]; }
            double rel = sqrt(num) / fmax(sqrt(den), 1e-12);
            if (den == 0) rel = sqrt(num);
            if (rel > worst) { worst = rel; worst_name = ti->name; }
            free(a); free(b);
        }
        printf("  %s: worst gradient relative error %.2e (%s)\n", name, worst, worst_name);
        CHECK(worst < tol_grad, "gradient of %s: rel err %g", worst_name, worst);
        st_free(&g);
    }
    cglow_trainer_free(t);
    free(lp);
    free(z);
    fixture_free(&f);
}

static void test_tiny_conditional(void) { check_fixture("tiny-conditional", 1, 1e-6, 1e-5); }
static void test_tiny_learned(void) { check_fixture("tiny-learned", 1, 1e-6, 1e-5); }
static void test_higlow_preset(void) { check_fixture("higlow-preset", 0, 1e-6, 0); }

int main(void)
{
    cglow_set_threads(2);
    RUN(test_tiny_conditional);
    RUN(test_tiny_learned);
    RUN(test_higlow_preset);
    TEST_MAIN_END();
}
