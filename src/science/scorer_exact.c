/* The exact synthetic log-likelihood (model.md section 7) as an inference scorer: it checks the
 * grid/posterior/calibration code independently of any flow. */
#include "cglow.h"
#include <stdlib.h>
#include <string.h>

/* 1 if theta is exactly the point list of grid g (so the fast grid routine applies). */
static int is_grid(const cglow_grid *g, const double *theta, int npts)
{
    if (!g || npts != g->G * g->G) return 0;
    for (int i = 0; i < g->G; i++)
        for (int j = 0; j < g->G; j++)
            if (theta[2 * (i * g->G + j)] != cglow_grid_value(g, 0, i) || theta[2 * (i * g->G + j) + 1] != cglow_grid_value(g, 1, j))
                return 0;
    return 1;
}

int cglow_exact_scorer_fn(void *ctx, size_t map_index, const double *theta, int npts, double *ll)
{
    cglow_exact_scorer *s = ctx;
    if (map_index >= s->nmaps) return cglow_set_error(CGLOW_EARG, "exact scorer: map %zu out of range", map_index);
    size_t np = (size_t)s->opt.n * s->opt.n;
    const float *map = s->maps + map_index * np;
    if (is_grid(s->grid, theta, npts)) {
        int G = s->grid->G;
        double *om = malloc((size_t)G * sizeof *om), *s8 = malloc((size_t)G * sizeof *s8);
        if (!om || !s8) { free(om); free(s8); return cglow_set_error(CGLOW_ENOMEM, "exact scorer: out of memory"); }
        for (int i = 0; i < G; i++) { om[i] = cglow_grid_value(s->grid, 0, i); s8[i] = cglow_grid_value(s->grid, 1, i); }
        int rc = cglow_synth_loglike_grid(&s->opt, map, om, G, s8, G, ll, s->what, map_index);
        free(om); free(s8);
        return rc;
    }
    float *rep = malloc((size_t)npts * np * sizeof *rep);
    if (!rep) return cglow_set_error(CGLOW_ENOMEM, "exact scorer: out of memory");
    for (int k = 0; k < npts; k++) memcpy(rep + (size_t)k * np, map, np * sizeof *rep);
    int rc = cglow_synth_loglike(&s->opt, rep, (size_t)npts, theta, 2, ll, s->what, map_index);
    free(rep);
    return rc;
}
