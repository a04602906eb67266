/* A small model with every trainable weight randomised (zeroconvs too, so nothing is an identity),
 * shared by the float64 gradient and log-determinant tests. */
#ifndef CGLOW_TEST_MODEL_UTIL_H
#define CGLOW_TEST_MODEL_UTIL_H
#include "model/model.h"
#include "util/rng.h"
#include <stdio.h>
#include <string.h>

/* noise: std of the normal added to each weight; zero_noise: to the zeroconvs' */
static cglow_model *random_test_model(rng_t *r, int H, int levels, int steps, int hidden, int prior_hidden,
                                      cglow_prior_kind prior, uint64_t seed, double noise, double zero_noise)
{
    cglow_config c;
    cglow_config_preset(&c, "higlow");
    c.height = c.width = H;
    c.levels = levels;
    c.steps = steps;
    c.hidden = hidden;
    c.prior_hidden = prior_hidden;
    c.prior = prior;
    cglow_model *m;
    if (cglow_model_create(&c, seed, &m)) { printf("  %s\n", cglow_last_error()); return NULL; }
    for (int i = 0; i < m->ntensors; i++) {
        tensor_entry *t = &m->tensors[i];
        if (!t->info.trainable) continue;
        const double s = strstr(t->info.name, ".zero.") ? zero_noise : noise;
        for (size_t k = 0; k < t->info.size; k++) m->params[t->off + k] += s * rng_normal(r);
    }
    model_params_changed(m);
    return m;
}
#endif
