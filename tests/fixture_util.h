/* Shared by the tests that compare with ../shared/fixtures: load a fixture folder and put its
 * maps and conditions into model space with the checkpoint's stored preprocessing. */
#ifndef CGLOW_FIXTURE_UTIL_H
#define CGLOW_FIXTURE_UTIL_H
#include "cglow.h"
#include "test.h"

typedef struct {
    cglow_model *m;
    int n;               /* maps */
    size_t dim;          /* C*H*W */
    float *x;            /* model space, n x dim */
    float *c;            /* scaled conditions, n x P */
    double *lp_model, *lp_log10, *latents, loss;
} fixture;

static int fixture_load(fixture *f, const char *name)
{
    memset(f, 0, sizeof *f);
    char path[1024];
    snprintf(path, sizeof path, "fixtures/%s/model.safetensors", name);
    if (cglow_model_load(shared_path(path), &f->m)) { printf("  %s\n", cglow_last_error()); return -1; }
    const cglow_data_config *d = cglow_model_data(f->m);
    f->dim = cglow_model_dim(f->m);
    float *maps; double *cond, *v;
    int nd; size_t sh[4];
    snprintf(path, sizeof path, "fixtures/%s/maps.npy", name);
    if (cglow_npy_load_f32(shared_path(path), &maps, &nd, sh)) return -1;
    f->n = (int)sh[0];
    snprintf(path, sizeof path, "fixtures/%s/cond.npy", name);
    if (cglow_npy_load_f64(shared_path(path), &cond, &nd, sh)) return -1;
    const int P = cglow_model_config(f->m)->cond_features;
    f->x = malloc(sizeof(float) * f->n * f->dim);
    f->c = malloc(sizeof(float) * f->n * P);
    /* model.md 1.2-1.3, written out here independently of the library's preprocessing */
    for (size_t i = 0; i < f->n * f->dim; i++) {
        double u = log10(fmax(maps[i], d->floor)), dd = (u - d->mu) / d->sigma;
        f->x[i] = (float)(d->squash == CGLOW_SQUASH_SIGMOID ? tanh(dd / 2) : dd);
    }
    for (int i = 0; i < f->n; i++)
        for (int j = 0; j < P; j++)
            f->c[i * P + j] = (float)(2 * (cond[i * P + j] - d->cond_lo[j]) / (d->cond_hi[j] - d->cond_lo[j]) - 1);
    free(maps);
    free(cond);
    snprintf(path, sizeof path, "fixtures/%s/logprob_model.npy", name);
    if (cglow_npy_load_f64(shared_path(path), &f->lp_model, &nd, sh)) return -1;
    snprintf(path, sizeof path, "fixtures/%s/logprob_log10.npy", name);
    if (cglow_npy_load_f64(shared_path(path), &f->lp_log10, &nd, sh)) return -1;
    snprintf(path, sizeof path, "fixtures/%s/latents.npy", name);
    if (cglow_npy_load_f64(shared_path(path), &f->latents, &nd, sh)) return -1;
    snprintf(path, sizeof path, "fixtures/%s/loss.npy", name);
    if (cglow_npy_load_f64(shared_path(path), &v, &nd, sh)) return -1;
    f->loss = v[0];
    free(v);
    return 0;
}

static void fixture_free(fixture *f)
{
    cglow_model_free(f->m);
    free(f->x); free(f->c); free(f->lp_model); free(f->lp_log10); free(f->latents);
}

/* The log10-space correction of model.md 1.2 for one map, written out independently. */
static double fixture_log_jacobian(const cglow_data_config *d, const float *y, size_t npix)
{
    double s = 0;
    for (size_t i = 0; i < npix; i++)
        s += (d->squash == CGLOW_SQUASH_SIGMOID ? log(1 - (double)y[i] * y[i]) - log(2.0) : 0) - log(d->sigma);
    return s;
}
#endif
