/* The inference driver: a scorer at every grid point of every map -> posteriors and summaries,
 * and the summary.json of a run. */
#include "cglow.h"
#include "science/sci_json.h"
#include "util/progress.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cglow_infer(const cglow_infer_options *o, cglow_scorer_fn fn, void *ctx, size_t nmaps, double *post,
                cglow_post_summary *summ)
{
    const cglow_grid *g = &o->grid;
    int npts = g->G * g->G;
    double *theta = malloc((size_t)npts * 2 * sizeof *theta), *ll = malloc((size_t)npts * sizeof *ll);
    if (!theta || !ll) { free(theta); free(ll); return cglow_set_error(CGLOW_ENOMEM, "infer: out of memory"); }
    cglow_grid_points(g, theta);
    progress_t pr;
    if (o->progress) progress_start(&pr, (long)nmaps, "maps");
    int rc = 0;
    if (o->parallel_maps) {
        /* Thread-safe scorer: maps in parallel, one buffer per thread; the first error wins. */
        char msg[1024] = "";
        long done = 0;
#pragma omp parallel num_threads(cglow_get_threads())
        {
            double *myll = malloc((size_t)npts * sizeof *myll);
#pragma omp for schedule(dynamic, 1)
            for (size_t m = 0; m < nmaps; m++) {
                int bad;
#pragma omp atomic read
                bad = rc;
                if (bad) continue;
                int r = myll ? fn(ctx, m, theta, npts, myll) : cglow_set_error(CGLOW_ENOMEM, "infer: out of memory");
                if (!r) r = cglow_posterior_normalise(myll, npts, post + m * npts);
                if (!r) r = cglow_posterior_summarise(g, post + m * npts, o->truth ? o->truth + 2 * m : NULL, &summ[m], NULL, NULL);
                if (r) {
#pragma omp critical(cglow_infer_err)
                    if (!rc) { rc = r; snprintf(msg, sizeof msg, "map %zu: %s", m, cglow_last_error()); }
                }
#pragma omp critical(cglow_infer_progress)
                {
                    done++;
                    if (o->progress) progress_update(&pr, done, 0, NULL);
                }
            }
            free(myll);
        }
        if (rc) cglow_set_error(rc, "%s", msg);
    }
    for (size_t m = 0; m < nmaps && !rc && !o->parallel_maps; m++) {
        rc = fn(ctx, m, theta, npts, ll);
        if (!rc) rc = cglow_posterior_normalise(ll, npts, post + m * npts);
        if (rc) {
            /* Name the map: the scorer's message alone may not. */
            char msg[900];
            snprintf(msg, sizeof msg, "%s", cglow_last_error());
            cglow_set_error(rc, "map %zu: %s", m, msg);
        }
        if (!rc) rc = cglow_posterior_summarise(g, post + m * npts, o->truth ? o->truth + 2 * m : NULL, &summ[m], NULL, NULL);
        if (o->progress) progress_update(&pr, (long)(m + 1), 0, NULL);
    }
    if (o->progress) progress_end(&pr);
    free(theta);
    free(ll);
    return rc;
}

static cJSON *summary_json(const cglow_post_summary *s)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "mean", sci_json_darray(s->mean, 2));
    cJSON_AddItemToObject(j, "std", sci_json_darray(s->std, 2));
    cJSON_AddItemToObject(j, "map", sci_json_darray(s->map, 2));
    cJSON_AddItemToObject(j, "hpd_threshold", sci_json_darray(s->hpd_threshold, CGLOW_NLEVELS));
    cJSON_AddItemToObject(j, "hpd_mass", sci_json_darray(s->hpd_mass, CGLOW_NLEVELS));
    double cells[CGLOW_NLEVELS];
    for (int l = 0; l < CGLOW_NLEVELS; l++) cells[l] = s->hpd_cells[l];
    cJSON_AddItemToObject(j, "hpd_cells", sci_json_darray(cells, CGLOW_NLEVELS));
    cJSON_AddItemToObject(j, "max_cell_mass", sci_json_num(s->max_cell));
    if (s->has_truth) {
        cJSON_AddItemToObject(j, "truth", sci_json_darray(s->truth, 2));
        cJSON_AddBoolToObject(j, "in_hpd68", s->in_hpd[0]);
        cJSON_AddBoolToObject(j, "in_hpd95", s->in_hpd[1]);
        cJSON_AddItemToObject(j, "truth_level", sci_json_num(s->truth_level));
        cJSON_AddItemToObject(j, "bias", sci_json_darray(s->bias, 2));
    }
    return j;
}

cJSON *sci_calibration_json(const cglow_calibration *c)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "n_maps", c->n);
    cJSON_AddItemToObject(j, "levels", sci_json_darray(cglow_hpd_levels, CGLOW_NLEVELS));
    cJSON_AddItemToObject(j, "coverage", sci_json_darray(c->coverage, CGLOW_NLEVELS));
    cJSON_AddItemToObject(j, "coverage_err", sci_json_darray(c->cov_err, CGLOW_NLEVELS));
    cJSON_AddItemToObject(j, "coverage_z", sci_json_darray(c->cov_z, CGLOW_NLEVELS));
    cJSON_AddItemToObject(j, "mean_hpd_mass", sci_json_darray(c->mean_hpd_mass, CGLOW_NLEVELS));
    double h[CGLOW_RANK_BINS];
    for (int b = 0; b < CGLOW_RANK_BINS; b++) h[b] = c->rank_hist[b];
    cJSON_AddItemToObject(j, "rank_hist", sci_json_darray(h, CGLOW_RANK_BINS));
    cJSON_AddItemToObject(j, "bias_mean", sci_json_darray(c->bias_mean, 2));
    cJSON_AddItemToObject(j, "bias_std", sci_json_darray(c->bias_std, 2));
    cJSON_AddItemToObject(j, "mean_posterior_std", sci_json_darray(c->mean_std, 2));
    return j;
}

cJSON *sci_grid_json(const cglow_grid *g)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "G", g->G);
    cJSON_AddStringToObject(j, "points", g->edges ? "edges (linspace lo..hi)" : "cell centres");
    cJSON_AddItemToObject(j, "lo", sci_json_darray(g->lo, 2));
    cJSON_AddItemToObject(j, "hi", sci_json_darray(g->hi, 2));
    cJSON *names = cJSON_CreateArray();
    cJSON_AddItemToArray(names, cJSON_CreateString("Omega_m"));
    cJSON_AddItemToArray(names, cJSON_CreateString("sigma_8"));
    cJSON_AddItemToObject(j, "axes", names);
    return j;
}

int cglow_infer_save_json(const char *path, const cglow_grid *g, const cglow_post_summary *s, const double *post,
                          size_t n, const cglow_calibration *cal, const char *scorer)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path);
    cJSON_AddStringToObject(root, "scorer", scorer ? scorer : "unknown");
    cJSON_AddItemToObject(root, "grid", sci_grid_json(g));
    cJSON_AddNumberToObject(root, "n_maps", (double)n);
    cJSON_AddStringToObject(root, "posterior_npy", "posterior.npy: (maps, G, G) cell masses, axis 1 Omega_m, axis 2 sigma_8");
    if (cal) cJSON_AddItemToObject(root, "calibration", sci_calibration_json(cal));
    int G = g->G;
    double *axis = malloc(2 * (size_t)G * sizeof *axis), *m0 = malloc((size_t)G * sizeof *m0), *m1 = malloc((size_t)G * sizeof *m1);
    if (!axis || !m0 || !m1) { free(axis); free(m0); free(m1); cJSON_Delete(root); return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path); }
    for (int i = 0; i < G; i++) { axis[i] = cglow_grid_value(g, 0, i); axis[G + i] = cglow_grid_value(g, 1, i); }
    cJSON_AddItemToObject(root, "omega_m_axis", sci_json_darray(axis, (size_t)G));
    cJSON_AddItemToObject(root, "sigma_8_axis", sci_json_darray(axis + G, (size_t)G));
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = summary_json(&s[i]);
        if (post) {
            /* 1-D marginals (cell masses along each axis). */
            cglow_post_summary tmp;
            if (cglow_posterior_summarise(g, post + i * (size_t)G * G, NULL, &tmp, m0, m1) == 0) {
                cJSON_AddItemToObject(o, "marginal_omega_m", sci_json_darray(m0, (size_t)G));
                cJSON_AddItemToObject(o, "marginal_sigma_8", sci_json_darray(m1, (size_t)G));
            }
        }
        cJSON_AddItemToArray(arr, o);
    }
    free(axis); free(m0); free(m1);
    cJSON_AddItemToObject(root, "maps", arr);
    int rc = sci_json_save(root, path);
    cJSON_Delete(root);
    return rc;
}
