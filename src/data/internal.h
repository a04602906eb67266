/* Internals shared by the data files (not part of the public API). */
#ifndef CGLOW_DATA_INTERNAL_H
#define CGLOW_DATA_INTERNAL_H
#include <stddef.h>
/* acc = {count, mean, M2}: adds one map's pixels (pairwise merge, stable over 10^8 pixels). */
void cglow_data_moments_add(double acc[3], const float *u, size_t npix);
#endif
