/* Sampling maps at given parameters (model.md 2.4): raw parameters -> scaled conditions ->
 * cglow_sample (model space) -> log10 or linear maps. Non-finite samples are counted, never
 * dropped. */
#include "cglow.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int cglow_sample_maps(cglow_model *m, const double *theta, int rows, int per_cond, float temperature, uint64_t seed,
                      int linear, float *out, size_t *n_bad)
{
    const cglow_config *cfg = cglow_model_config(m);
    cglow_data_config *d = cglow_model_data(m);
    int P = cfg->cond_features;
    if (rows < 1 || per_cond < 1) return cglow_set_error(CGLOW_EARG, "sample: need at least one condition row and one map per row");
    size_t n = (size_t)rows * per_cond, np = (size_t)cfg->in_channels * cfg->height * cfg->width;
    if (n > (size_t)1 << 30) return cglow_set_error(CGLOW_EARG, "sample: too many maps (%zu)", n);
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < P; j++)
            if (!isfinite(theta[(size_t)r * P + j]))
                return cglow_set_error(CGLOW_EVALUE, "sample: condition row %d column %d is not finite", r, j);
    double *th = malloc(n * P * sizeof *th);
    float *c = malloc(n * P * sizeof *c), *y = malloc(n * np * sizeof *y);
    if (!th || !c || !y) { free(th); free(c); free(y); return cglow_set_error(CGLOW_ENOMEM, "sample: out of memory for %zu maps", n); }
    /* Rows in order, each repeated per_cond times. */
    for (size_t i = 0; i < n; i++) memcpy(th + i * P, theta + (i / per_cond) * P, P * sizeof *th);
    cglow_data_scale_cond(d, th, n, P, NULL, c);
    int rc = cglow_sample(m, c, (int)n, temperature, seed, y);
    if (!rc) {
        cglow_data_model_to_maps(d, y, n, np, linear, out);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            const float *x = out + i * np;
            for (size_t k = 0; k < np; k++)
                if (!isfinite(x[k])) { bad++; break; }
        }
        if (n_bad) *n_bad = bad;
    }
    free(th); free(c); free(y);
    return rc;
}
