/* Seeded, reproducible random numbers: xoshiro256** seeded by splitmix64. */
#ifndef CGLOW_RNG_H
#define CGLOW_RNG_H
#include <stdint.h>

typedef struct { uint64_t s[4]; int has_spare; double spare; } rng_t;

void rng_seed(rng_t *r, uint64_t seed);
/* An independent stream for (seed, stream), e.g. one per map or per thread. */
void rng_seed2(rng_t *r, uint64_t seed, uint64_t stream);
uint64_t rng_u64(rng_t *r);
double rng_uniform(rng_t *r);          /* [0, 1) */
double rng_normal(rng_t *r);           /* N(0, 1) */
uint64_t rng_below(rng_t *r, uint64_t n); /* [0, n) */
#endif
