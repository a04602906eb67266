/* Train/test splits of model.md 1.4. */
#include "cglow.h"
#include "util/rng.h"
#include <math.h>
#include <stdlib.h>

int cglow_split(size_t n_maps, int maps_per_sim, cglow_split_kind kind, double holdout_fraction, uint64_t seed,
                size_t *train, size_t *n_train, size_t *test, size_t *n_test)
{
    *n_train = *n_test = 0;
    if (maps_per_sim < 1 || n_maps % (size_t)maps_per_sim)
        return cglow_set_error(CGLOW_ESHAPE, "split: %zu maps do not divide into simulations of %d maps", n_maps, maps_per_sim);
    size_t m = (size_t)maps_per_sim, rows = n_maps / m;
    if (kind == CGLOW_SPLIT_WITHIN_SIM) {
        /* HIGlow tests positions 12 and 13 of 15 (2/15 of each simulation, not the last one);
         * other m keep that fraction and that place. */
        size_t t = (size_t)lround(2.0 * (double)m / 15.0);
        if (t + 1 > m) t = m > 1 ? m - 1 : 0;
        size_t lo = t ? m - 1 - t : m, hi = t ? m - 2 : 0;
        for (size_t i = 0; i < n_maps; i++) {
            size_t pos = i % m;
            if (t && pos >= lo && pos <= hi) test[(*n_test)++] = i;
            else train[(*n_train)++] = i;
        }
        return 0;
    }
    if (kind != CGLOW_SPLIT_HOLDOUT_SIMS)
        return cglow_set_error(CGLOW_EARG, "split: unknown kind %d", (int)kind);
    if (!(holdout_fraction >= 0 && holdout_fraction < 1))
        return cglow_set_error(CGLOW_EARG, "split: hold-out fraction %g is not in [0, 1)", holdout_fraction);
    size_t hold = (size_t)llround(holdout_fraction * (double)rows);
    if (holdout_fraction > 0 && hold == 0 && rows > 1) hold = 1;
    if (hold >= rows) hold = rows - 1;
    unsigned char *held = calloc(rows ? rows : 1, 1);
    size_t *perm = malloc((rows ? rows : 1) * sizeof *perm);
    if (!held || !perm) { free(held); free(perm); return cglow_set_error(CGLOW_ENOMEM, "split: out of memory"); }
    rng_t r;
    rng_seed2(&r, seed, 0x5b117);
    for (size_t i = 0; i < rows; i++) perm[i] = i;
    for (size_t i = rows; i > 1; i--) {   /* Fisher-Yates */
        size_t j = (size_t)rng_below(&r, i), tmp = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = tmp;
    }
    for (size_t i = 0; i < hold; i++) held[perm[i]] = 1;
    for (size_t i = 0; i < n_maps; i++) {
        if (held[i / m]) test[(*n_test)++] = i;
        else train[(*n_train)++] = i;
    }
    free(held);
    free(perm);
    return 0;
}
