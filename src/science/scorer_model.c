/* The flow as an inference scorer: log p(x | c(theta)) at every grid point of one map in a single
 * cglow_log_prob call (the map replicated), so the engine's threads over maps all have work.
 * Log-likelihoods stay in model space: the preprocessing Jacobian is the same for every theta of
 * a map and cancels in the posterior. */
#include "cglow.h"
#include <stdlib.h>
#include <string.h>

void cglow_model_scorer_free(cglow_model_scorer *s)
{
    free(s->x1); free(s->xrep); free(s->cond);
    s->x1 = s->xrep = s->cond = NULL;
    s->cap = 0;
}

int cglow_model_scorer_fn(void *ctx, size_t map_index, const double *theta, int npts, double *ll)
{
    cglow_model_scorer *s = ctx;
    if (map_index >= s->nmaps) return cglow_set_error(CGLOW_EARG, "model scorer: map %zu out of range", map_index);
    cglow_data_config *d = cglow_model_data(s->model);
    const cglow_config *cfg = cglow_model_config(s->model);
    int ds = d->downsample > 0 ? d->downsample : 1;
    if (s->h % ds || s->w % ds || s->h / ds != cfg->height || s->w / ds != cfg->width || cfg->in_channels != 1)
        return cglow_set_error(CGLOW_ESHAPE, "%s: maps of %dx%d (downsample %d) do not fit the model's %dx%d input",
                               s->what ? s->what : "maps", s->h, s->w, ds, cfg->height, cfg->width);
    if (cfg->cond_features != 2 || d->n_cond != 2)
        return cglow_set_error(CGLOW_ESHAPE, "model: inference needs a model of 2 conditions (Omega_m, sigma_8), it has %d", cfg->cond_features);
    size_t np = (size_t)cfg->height * cfg->width;
    /* At most SCORER_BATCH conditions per cglow_log_prob call: a 100x100 grid would otherwise
     * replicate the map 10^4 times (164 MB at 64x64); 1024 keep every thread busy. */
    enum { SCORER_BATCH = 1024 };
    int batch = npts < SCORER_BATCH ? npts : SCORER_BATCH;
    if (s->cap < batch) {
        cglow_model_scorer_free(s);
        s->x1 = malloc(np * sizeof *s->x1);
        s->xrep = malloc((size_t)batch * np * sizeof *s->xrep);
        s->cond = malloc((size_t)batch * 2 * sizeof *s->cond);
        if (!s->x1 || !s->xrep || !s->cond) { cglow_model_scorer_free(s); return cglow_set_error(CGLOW_ENOMEM, "model scorer: out of memory"); }
        s->cap = batch;
    }
    int rc = cglow_data_maps_to_model(d, s->maps + map_index * (size_t)s->h * s->w, 1, s->h, s->w, s->x1,
                                      s->what ? s->what : "maps", map_index);
    if (rc) return rc;
    for (int k = 0; k < batch; k++) memcpy(s->xrep + (size_t)k * np, s->x1, np * sizeof *s->x1);
    for (int k0 = 0; k0 < npts; k0 += batch) {
        int nb = npts - k0 < batch ? npts - k0 : batch;
        cglow_data_scale_cond(d, theta + 2 * (size_t)k0, (size_t)nb, 2, NULL, s->cond);
        if ((rc = cglow_log_prob(s->model, s->xrep, s->cond, nb, ll + k0))) return rc;
    }
    return 0;
}
