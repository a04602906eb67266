/* The float32 engine: invertibility on the default preset, sampling then scoring, checkpoint
 * round trips and bad checkpoints, resume, and that training lowers a held-out loss. */
#include "test.h"
#include "model/model.h"
#include "io/safetensors.h"
#include "util/rng.h"
#include <unistd.h>

static rng_t R;

/* Adds noise to the trainable tensors whose name contains `only` (all if NULL). */
static void perturb_some(cglow_model *m, double s, const char *only)
{
    for (int i = 0; i < m->ntensors; i++) {
        tensor_entry *t = &m->tensors[i];
        if (t->info.trainable && (!only || strstr(t->info.name, only)))
            for (size_t k = 0; k < t->info.size; k++) m->params[t->off + k] += (real)(s * rng_normal(&R));
    }
    model_params_changed(m);
}
static void perturb(cglow_model *m, double s) { perturb_some(m, s, NULL); }

static cglow_model *small_model(cglow_prior_kind prior)
{
    cglow_config c;
    cglow_config_preset(&c, "higlow");
    c.height = c.width = 8;
    c.levels = 2;
    c.steps = 2;
    c.hidden = 4;
    c.prior = prior;
    cglow_model *m = NULL;
    cglow_model_create(&c, 11, &m);
    return m;
}

static void test_invertibility_preset(void)
{
    cglow_config c;
    cglow_config_preset(&c, "higlow");
    cglow_model *m;
    CHECK(cglow_model_create(&c, 1, &m) == 0, "create: %s", cglow_last_error());
    /* Random init (orthogonal invconvs, random CNNs and priors) plus non-zero zeroconvs
     * N(0, 0.005^2), so that nothing is an identity. The round trip's float32 error grows with
     * the flow's conditioning: the latents themselves are rounded to float32 and the inverse
     * amplifies that by 1/sigma_min of the Jacobian. At N(0, 0.01^2) it is ~1e-4, and with the
     * fixture's fully random LU factors ~2e-2 (in float64 it is 1e-10: test_flow64). */
    perturb_some(m, 0.005, ".zero.");
    const int n = 2;
    const size_t D = cglow_model_dim(m);
    float *x = malloc(sizeof(float) * n * D), *z = malloc(sizeof(float) * n * D), *back = malloc(sizeof(float) * n * D);
    float cond[4] = {-0.5f, 0.3f, 0.8f, -0.9f};
    for (size_t i = 0; i < n * D; i++) x[i] = (float)tanh(rng_normal(&R) / 2);
    double lp[2];
    CHECK(cglow_forward(m, x, cond, n, lp, z) == 0, "forward");
    CHECK(cglow_inverse(m, z, cond, n, back) == 0, "inverse");
    double worst = 0, zs = 0;
    for (size_t i = 0; i < n * D; i++) { worst = fmax(worst, fabs(back[i] - x[i])); zs += fabs(z[i] - x[i]); }
    printf("  max |x - f^-1(f(x))| = %.3e (mean |z - x| %.3f), log p %.2f %.2f\n", worst, zs / (n * D), lp[0], lp[1]);
    CHECK(worst < 1e-4, "invertibility error %g", worst);
    CHECK(zs / (n * D) > 0.05, "the flow is (nearly) the identity: not a test");
    /* sampling then scoring: finite, and the latents of a sample are what was drawn */
    float *s = malloc(sizeof(float) * 4 * D), c4[8] = {0, 0, 0.5f, 0.5f, -1, 1, 1, -1};
    CHECK(cglow_sample(m, c4, 4, 0.8f, 42, s) == 0, "sample: %s", cglow_last_error());
    double lps[4];
    CHECK(cglow_log_prob(m, s, c4, 4, lps) == 0, "score samples");
    int finite = 1;
    for (size_t i = 0; i < 4 * D; i++) finite &= isfinite(s[i]);
    for (int i = 0; i < 4; i++) finite &= isfinite(lps[i]);
    CHECK(finite, "samples or their log p are not finite");
    printf("  log p of samples at T=0.8: %.1f %.1f %.1f %.1f\n", lps[0], lps[1], lps[2], lps[3]);
    /* same seed, same samples; another seed, other samples */
    float *s2 = malloc(sizeof(float) * 4 * D);
    cglow_sample(m, c4, 4, 0.8f, 42, s2);
    CHECK(!memcmp(s, s2, sizeof(float) * 4 * D), "sampling is not reproducible for a seed");
    cglow_sample(m, c4, 4, 0.8f, 43, s2);
    CHECK(memcmp(s, s2, sizeof(float) * 4 * D) != 0, "another seed gave the same samples");
    free(x); free(z); free(back); free(s); free(s2);
    cglow_model_free(m);
}

static void test_checkpoint_roundtrip(void)
{
    cglow_model *m = small_model(CGLOW_PRIOR_CONDITIONAL), *m2 = NULL;
    perturb(m, 0.1);
    m->data.mu = 4.75;
    m->data.sigma = 1.125;
    cglow_model_set_train_state(m, "{\"epoch\": 3}");
    const char *p = tmp_path("rt.safetensors");
    CHECK(cglow_model_save(m, p) == 0, "save: %s", cglow_last_error());
    CHECK(cglow_model_load(p, &m2) == 0, "load: %s", cglow_last_error());
    if (!m2) { cglow_model_free(m); return; }
    CHECK(!memcmp(m->params, m2->params, sizeof(real) * m->nparams), "parameters differ after a round trip");
    CHECK(m2->data.mu == 4.75 && m2->data.sigma == 1.125, "data config lost");
    CHECK(m2->train_state && strstr(m2->train_state, "epoch"), "train state lost");
    float x[2 * 64], c[4] = {0.1f, 0.2f, -0.3f, 0.4f};
    for (int i = 0; i < 128; i++) x[i] = (float)tanh(rng_normal(&R));
    double a[2], b[2];
    cglow_log_prob(m, x, c, 2, a);
    cglow_log_prob(m2, x, c, 2, b);
    CHECK(a[0] == b[0] && a[1] == b[1], "log p differs after a round trip: %.17g vs %.17g", a[0], b[0]);
    cglow_model_free(m);
    cglow_model_free(m2);
}

/* Rewrites the checkpoint's header through a callback, keeping its data. */
static void expect_load_error(const char *file, const char *needle, const char *what)
{
    cglow_model *m = NULL;
    int rc = cglow_model_load(file, &m);
    CHECK(rc != 0 && m == NULL, "%s: loaded", what);
    const char *msg = cglow_last_error();
    CHECK(strstr(msg, file) && strstr(msg, needle), "%s: message '%s' lacks the file or '%s'", what, msg, needle);
    CHECK(!strchr(msg, '\n'), "%s: message is not one line", what);
    cglow_model_free(m);
}

static void write_variant(const char *src, const char *dst, const char *from, const char *to)
{
    st_file f;
    st_read(src, &f);
    /* copy metadata and tensors, applying one substitution to a metadata value or a tensor name */
    const char **keys = malloc(sizeof(char *) * f.nmeta), **vals = malloc(sizeof(char *) * f.nmeta);
    char **own = calloc(f.nmeta, sizeof(char *));
    for (int i = 0; i < f.nmeta; i++) {
        keys[i] = f.meta_keys[i];
        vals[i] = f.meta_vals[i];
        if (from && !strcmp(f.meta_keys[i], from)) vals[i] = to;
    }
    st_tensor *ts = malloc(sizeof(st_tensor) * f.n);
    int n = 0;
    for (int i = 0; i < f.n; i++) {
        ts[n] = f.t[i];
        if (from && !strcmp(f.t[i].name, from)) {
            if (!to) continue;                 /* drop it */
            if (!strcmp(to, "SHAPE")) { ts[n].shape[0] = 1; ts[n].numel /= f.t[i].shape[0]; }
            else ts[n].name = to;              /* rename: an extra tensor and a missing one */
        }
        n++;
    }
    st_write(dst, n, ts, f.nmeta, keys, vals);
    free(keys); free(vals); free(own); free(ts);
    st_free(&f);
}

static void test_bad_checkpoints(void)
{
    cglow_model *m = small_model(CGLOW_PRIOR_CONDITIONAL);
    const char *good = tmp_path("good.safetensors");
    cglow_model_save(m, good);
    cglow_model_free(m);
    const char *bad = tmp_path("bad.safetensors");
    write_variant(good, bad, "format_version", "2");
    expect_load_error(bad, "version 2", "newer format version");
    write_variant(good, bad, "format", "other");
    expect_load_error(bad, "not a cglow checkpoint", "foreign file");
    write_variant(good, bad, "blocks.0.steps.1.coupling.zero.bias", NULL);
    expect_load_error(bad, "blocks.0.steps.1.coupling.zero.bias' is missing", "missing tensor");
    write_variant(good, bad, "blocks.1.steps.0.invconv.lower", "SHAPE");
    expect_load_error(bad, "has shape [1,", "wrong shape");
    write_variant(good, bad, "config", "{\"in_channels\": 1}");
    expect_load_error(bad, "config lacks", "incomplete config");
    /* truncated: cut the file in half, and to 5 bytes */
    char *buf; size_t n;
    FILE *fp = fopen(good, "rb");
    fseek(fp, 0, SEEK_END); n = (size_t)ftell(fp); rewind(fp);
    buf = malloc(n);
    CHECK(fread(buf, 1, n, fp) == n, "read");
    fclose(fp);
    fp = fopen(bad, "wb"); fwrite(buf, 1, n / 2, fp); fclose(fp);
    expect_load_error(bad, "outside", "truncated body");
    fp = fopen(bad, "wb"); fwrite(buf, 1, 5, fp); fclose(fp);
    expect_load_error(bad, "truncated", "truncated header");
    memcpy(buf + 8, "garbage!", 8);
    fp = fopen(bad, "wb"); fwrite(buf, 1, n, fp); fclose(fp);
    expect_load_error(bad, "JSON", "corrupt header");
    free(buf);
    expect_load_error(tmp_path("does-not-exist.safetensors"), "cannot open", "missing file");
}

/* Training on a small fixed data set lowers a held-out loss; a resumed run matches an
 * uninterrupted one. */
static void make_data(float *x, float *c, int n, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        c[2 * i] = (float)(2 * rng_uniform(&r) - 1);
        c[2 * i + 1] = (float)(2 * rng_uniform(&r) - 1);
        /* smooth-ish maps whose amplitude depends on the condition */
        for (int p = 0; p < 64; p++) {
            double v = 0.4 * sin(0.7 * (p % 8) + c[2 * i]) + 0.3 * c[2 * i + 1] + 0.1 * rng_normal(&r);
            x[i * 64 + p] = (float)tanh(v);
        }
    }
}

static void train_steps(cglow_model *m, cglow_trainer *t, const float *x, const float *c, int from, int to)
{
    cglow_step_result r;
    for (int s = from; s < to; s++) cglow_train_step(t, x + (s % 4) * 8 * 64, c + (s % 4) * 8 * 2, 8, &r);
    (void)m;
}

static void test_training_lowers_loss(void)
{
    cglow_model *m = small_model(CGLOW_PRIOR_CONDITIONAL);
    float x[32 * 64], c[32 * 2], xt[16 * 64], ct[16 * 2];
    make_data(x, c, 32, 1);
    make_data(xt, ct, 16, 2);
    cglow_optim_config o;
    cglow_optim_config_default(&o);
    o.lr = 3e-3;
    cglow_trainer *t;
    cglow_trainer_create(m, &o, 16, &t);
    double before, after;
    cglow_loss_grad(t, xt, ct, 16, &before);
    train_steps(m, t, x, c, 0, 60);
    cglow_loss_grad(t, xt, ct, 16, &after);
    printf("  held-out loss %.4f -> %.4f nats/pixel after 60 steps\n", before, after);
    CHECK(after < before - 0.1, "held-out loss did not drop: %.4f -> %.4f", before, after);
    CHECK(cglow_trainer_skipped(t) == 0, "skipped steps");
    cglow_trainer_free(t);
    cglow_model_free(m);
}

static void test_resume_matches(void)
{
    float x[32 * 64], c[32 * 2];
    make_data(x, c, 32, 5);
    cglow_optim_config o;
    cglow_optim_config_default(&o);
    o.lr = 1e-3;
    o.warmup_steps = 3;
    /* uninterrupted: 6 steps */
    cglow_model *a = small_model(CGLOW_PRIOR_LEARNED);
    cglow_trainer *ta;
    cglow_trainer_create(a, &o, 8, &ta);
    train_steps(a, ta, x, c, 0, 6);
    /* interrupted after 3: save both files, load into fresh objects, 3 more */
    cglow_model *b = small_model(CGLOW_PRIOR_LEARNED), *b2 = NULL;
    cglow_trainer *tb, *tb2;
    cglow_trainer_create(b, &o, 8, &tb);
    train_steps(b, tb, x, c, 0, 3);
    const char *mp = tmp_path("resume.safetensors"), *op = tmp_path("resume.optim.safetensors");
    CHECK(cglow_model_save(b, mp) == 0 && cglow_trainer_save(tb, op) == 0, "save: %s", cglow_last_error());
    CHECK(cglow_model_load(mp, &b2) == 0, "load");
    cglow_trainer_create(b2, &o, 8, &tb2);
    CHECK(cglow_trainer_load(tb2, op) == 0, "load optimiser: %s", cglow_last_error());
    train_steps(b2, tb2, x, c, 3, 6);
    double worst = 0;
    for (size_t i = 0; i < a->nparams; i++) worst = fmax(worst, fabs(a->params[i] - b2->params[i]));
    printf("  resumed vs uninterrupted: max parameter difference %.3e, steps %ld vs %ld\n", worst,
           cglow_trainer_steps(ta), cglow_trainer_steps(tb2));
    CHECK(worst == 0, "resumed run differs by %g", worst);
    CHECK(cglow_trainer_steps(tb2) == 6, "step count %ld", cglow_trainer_steps(tb2));
    cglow_trainer_free(ta); cglow_trainer_free(tb); cglow_trainer_free(tb2);
    cglow_model_free(a); cglow_model_free(b); cglow_model_free(b2);
}

static void test_nonfinite_step_skipped(void)
{
    cglow_model *m = small_model(CGLOW_PRIOR_CONDITIONAL);
    float x[4 * 64], c[8] = {0};
    for (int i = 0; i < 256; i++) x[i] = 0.1f;
    x[17] = NAN;
    cglow_optim_config o;
    cglow_optim_config_default(&o);
    cglow_trainer *t;
    cglow_trainer_create(m, &o, 4, &t);
    real *before = malloc(sizeof(real) * m->nparams);
    memcpy(before, m->params, sizeof(real) * m->nparams);
    cglow_step_result r;
    cglow_train_step(t, x, c, 4, &r);
    CHECK(r.skipped == 1 && cglow_trainer_skipped(t) == 1, "non-finite step not skipped");
    CHECK(!memcmp(before, m->params, sizeof(real) * m->nparams), "parameters changed by a skipped step");
    free(before);
    cglow_trainer_free(t);
    cglow_model_free(m);
}

static void test_config_errors(void)
{
    cglow_config c;
    cglow_config_preset(&c, "higlow");
    c.height = 48;   /* not divisible by 2^6 */
    cglow_model *m = NULL;
    CHECK(cglow_model_create(&c, 1, &m) == CGLOW_EARG && !m, "bad size accepted");
    CHECK(strstr(cglow_last_error(), "divisible"), "message: %s", cglow_last_error());
    CHECK(cglow_config_preset(&c, "nope") == CGLOW_EARG, "unknown preset accepted");
}

int main(void)
{
    rng_seed(&R, 2024);
    cglow_set_threads(2);
    RUN(test_config_errors);
    RUN(test_invertibility_preset);
    RUN(test_checkpoint_roundtrip);
    RUN(test_bad_checkpoints);
    RUN(test_training_lowers_loss);
    RUN(test_resume_matches);
    RUN(test_nonfinite_step_skipped);
    TEST_MAIN_END();
}
