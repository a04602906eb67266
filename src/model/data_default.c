/* TEMPORARY until the data branch lands (it owns cglow_data_config_default). */
#include "cglow.h"
#include <stdio.h>
#include <string.h>
void cglow_data_config_default(cglow_data_config *d, int n_cond)
{
    memset(d, 0, sizeof *d);
    d->downsample = 1;
    d->floor = 1e-8;
    d->mu = 0;
    d->sigma = 1;
    d->squash = CGLOW_SQUASH_SIGMOID;
    d->n_cond = n_cond;
    for (int j = 0; j < n_cond && j < CGLOW_MAX_COND; j++) {
        snprintf(d->cond_names[j], sizeof d->cond_names[j], "%s", j == 0 ? "Omega_m" : j == 1 ? "sigma_8" : "param");
        d->cond_lo[j] = j == 0 ? 0.1 : j == 1 ? 0.6 : 0;
        d->cond_hi[j] = j == 0 ? 0.5 : j == 1 ? 1.0 : 1;
    }
}
