/* Shared between the spectrum files (not public). */
#ifndef CGLOW_PK_INTERNAL_H
#define CGLOW_PK_INTERNAL_H
#include "cglow.h"
int sci_pk_set_alloc(cglow_pk_set *s, const cglow_pk *p, int side, size_t nmaps, const cglow_pk_options *o);
void sci_pk_set_stats(cglow_pk_set *s);
/* Block means of ds x ds pixels on linear values (10^u if is_log10), output in the input's units. */
void sci_block_mean(const float *in, size_t nmaps, int h, int w, int ds, int is_log10, float *out);
#endif
