/* The batch loader: shuffled, optionally augmented batches of model-space maps and scaled
 * conditions. Everything an epoch does is a function of (seed, epoch), so resuming is a seek. */
#include "cglow.h"
#include "util/rng.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_SHUFFLE 0x5348554646ULL   /* "SHUFF" */
#define STREAM_AUGMENT 0x4155474dULL     /* "AUGM" */

struct cglow_loader {
    const cglow_dataset *ds;   /* used only when not cached */
    cglow_data_config d;
    cglow_loader_opts o;
    size_t n, *idx, *perm;
    int hd, wd;
    size_t npix;               /* hd * wd */
    float *cache;              /* n x npix model-space maps, in idx order, or NULL */
    float *cond;               /* n x P scaled conditions, in idx order */
    float *tmp;                /* per-thread scratch when augmenting or reading raw maps */
    size_t tmp_per_thread;
    int threads;
    int epoch;
    size_t pos;                /* next position in perm */
};

void cglow_loader_opts_default(cglow_loader_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 16;
    o->shuffle = 1;
    o->max_cache_bytes = (size_t)4 << 30;
}

static void make_perm(cglow_loader *L)
{
    for (size_t i = 0; i < L->n; i++) L->perm[i] = i;
    if (!L->o.shuffle) return;
    rng_t r;
    rng_seed2(&r, L->o.seed ^ STREAM_SHUFFLE, (uint64_t)L->epoch);
    for (size_t i = L->n; i > 1; i--) {
        size_t j = (size_t)rng_below(&r, i), t = L->perm[i - 1];
        L->perm[i - 1] = L->perm[j];
        L->perm[j] = t;
    }
}

/* Reads and preprocesses map idx[k] of the data set into out (npix); raw is scratch (h x w). */
static int load_one(const cglow_loader *L, size_t k, float *raw, float *out)
{
    const cglow_dataset *ds = L->ds;
    int rc = cglow_dataset_read_maps(ds, L->idx[k], 1, raw);
    if (!rc) rc = cglow_data_maps_to_model(&L->d, raw, 1, ds->height, ds->width, out, ds->maps_path, L->idx[k]);
    return rc;
}

/* Runs load_one for positions ks[0..m-1] into outs (m x npix) in parallel; reports the first error. */
static int load_many(cglow_loader *L, const size_t *ks, size_t m, float *outs)
{
    size_t raw_n = (size_t)L->ds->height * L->ds->width;
    int err = 0;
    long long bad = -1;
    char msg[1024] = "";
#pragma omp parallel num_threads(L->threads)
    {
        float *raw = malloc(raw_n * sizeof *raw);
#pragma omp for schedule(dynamic, 4)
        for (long long i = 0; i < (long long)m; i++) {
            int rc = raw ? load_one(L, ks ? ks[i] : (size_t)i, raw, outs + (size_t)i * L->npix)
                         : cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", L->ds->maps_path);
            if (rc) {
#pragma omp critical(cglow_loader_err)
                if (bad < 0 || i < bad) { bad = i; err = rc; snprintf(msg, sizeof msg, "%s", cglow_last_error()); }
            }
        }
        free(raw);
    }
    if (err) return cglow_set_error(err, "%s", msg);   /* the message was set on a worker thread */
    return 0;
}

int cglow_loader_create(const cglow_dataset *ds, const cglow_data_config *d, const size_t *idx, size_t n,
                        const cglow_loader_opts *o, cglow_loader **out)
{
    *out = NULL;
    if (o->batch < 1) return cglow_set_error(CGLOW_EARG, "loader: batch %d < 1", o->batch);
    if (n == 0) return cglow_set_error(CGLOW_EARG, "%s: the loader got no maps", ds->maps_path);
    if (d->n_cond != ds->n_cond)
        return cglow_set_error(CGLOW_ESHAPE, "%s: data config has %d conditions, the data set %d", ds->params_path,
                               d->n_cond, ds->n_cond);
    int f = d->downsample;
    if (f < 1 || ds->height % f || ds->width % f)
        return cglow_set_error(CGLOW_ESHAPE, "%s: map size %dx%d is not divisible by the downsampling factor %d",
                               ds->maps_path, ds->height, ds->width, f);
    for (size_t i = 0; i < n; i++)
        if (idx[i] >= ds->n_maps)
            return cglow_set_error(CGLOW_EARG, "%s: map index %zu out of range (%zu maps)", ds->maps_path, idx[i], ds->n_maps);
    cglow_loader *L = calloc(1, sizeof *L);
    if (!L) return cglow_set_error(CGLOW_ENOMEM, "loader: out of memory");
    L->ds = ds;
    L->d = *d;
    L->o = *o;
    L->n = n;
    L->hd = ds->height / f;
    L->wd = ds->width / f;
    L->npix = (size_t)L->hd * L->wd;
    L->threads = cglow_get_threads();
    L->idx = malloc(n * sizeof *L->idx);
    L->perm = malloc(n * sizeof *L->perm);
    L->cond = malloc(n * (size_t)(d->n_cond > 0 ? d->n_cond : 1) * sizeof *L->cond);
    L->tmp_per_thread = L->npix;
    L->tmp = malloc((size_t)L->threads * L->tmp_per_thread * sizeof *L->tmp);
    if (!L->idx || !L->perm || !L->cond || !L->tmp) {
        cglow_loader_free(L);
        return cglow_set_error(CGLOW_ENOMEM, "loader: out of memory");
    }
    memcpy(L->idx, idx, n * sizeof *idx);
    for (size_t i = 0; i < n; i++)
        cglow_data_scale_cond(d, cglow_dataset_theta(ds, idx[i]), 1, ds->params.cols, ds->cols,
                              L->cond + i * (size_t)d->n_cond);
    if (o->max_cache_bytes && n * L->npix * sizeof(float) <= o->max_cache_bytes) {
        L->cache = malloc(n * L->npix * sizeof *L->cache);
        if (L->cache) {   /* no memory for the cache: fall back to on-the-fly reads */
            int rc = load_many(L, NULL, n, L->cache);
            if (rc) { cglow_loader_free(L); return rc; }
        }
    }
    make_perm(L);
    *out = L;
    return 0;
}

void cglow_loader_free(cglow_loader *L)
{
    if (!L) return;
    free(L->idx);
    free(L->perm);
    free(L->cond);
    free(L->cache);
    free(L->tmp);
    free(L);
}

int cglow_loader_next_batch_idx(cglow_loader *L, float *x, float *c, int *n, size_t *idx_out)
{
    *n = 0;
    size_t left = L->n - L->pos;
    if (left == 0 || (L->o.drop_last && left < (size_t)L->o.batch)) {
        L->epoch++;
        L->pos = 0;
        make_perm(L);
        return 0;
    }
    size_t m = left < (size_t)L->o.batch ? left : (size_t)L->o.batch;
    const size_t *ks = L->perm + L->pos;
    if (!L->cache) {
        int rc = load_many(L, ks, m, x);
        if (rc) return rc;
    }
    int P = L->d.n_cond;
    size_t base = (size_t)L->epoch * L->n + L->pos;
#pragma omp parallel for num_threads(L->threads) schedule(static)
    for (long long i = 0; i < (long long)m; i++) {
        float *dst = x + (size_t)i * L->npix;
        const float *src = L->cache ? L->cache + ks[i] * L->npix : dst;
        if (L->o.augment) {
            /* Augmentation reads src into a scratch copy when src is dst (on-the-fly batches). */
            cglow_augment_op op;
            cglow_augment_draw(L->o.seed ^ STREAM_AUGMENT, base + (size_t)i, L->hd, L->wd, &op);
            float *scratch = L->tmp + (size_t)omp_get_thread_num() * L->tmp_per_thread;
            memcpy(scratch, src, L->npix * sizeof *scratch);
            cglow_augment_apply(&op, scratch, dst, L->hd, L->wd, 0);
        } else if (src != dst)
            memcpy(dst, src, L->npix * sizeof *dst);
        memcpy(c + (size_t)i * P, L->cond + ks[i] * (size_t)P, (size_t)P * sizeof *c);
        if (idx_out) idx_out[i] = L->idx[ks[i]];
    }
    L->pos += m;
    *n = (int)m;
    return 1;
}

int cglow_loader_next_batch(cglow_loader *L, float *x, float *c, int *n)
{
    return cglow_loader_next_batch_idx(L, x, c, n, NULL);
}

int cglow_loader_epoch(const cglow_loader *L) { return L->epoch; }

void cglow_loader_seek(cglow_loader *L, int epoch, size_t batch)
{
    L->epoch = epoch < 0 ? 0 : epoch;
    make_perm(L);
    size_t p = batch * (size_t)L->o.batch;
    L->pos = p < L->n ? p : L->n;
}

size_t cglow_loader_size(const cglow_loader *L) { return L->n; }
size_t cglow_loader_batches_per_epoch(const cglow_loader *L)
{
    size_t b = (size_t)L->o.batch;
    return L->o.drop_last ? L->n / b : (L->n + b - 1) / b;
}
size_t cglow_loader_map_pixels(const cglow_loader *L) { return L->npix; }
void cglow_loader_map_size(const cglow_loader *L, int *h, int *w) { *h = L->hd; *w = L->wd; }
int cglow_loader_cached(const cglow_loader *L) { return L->cache != NULL; }
