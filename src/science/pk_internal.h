/* Shared between the spectrum files (not public). */
#ifndef CGLOW_PK_INTERNAL_H
#define CGLOW_PK_INTERNAL_H
#include "cglow.h"
int sci_pk_set_alloc(cglow_pk_set *s, const cglow_pk *p, int side, size_t nmaps, const cglow_pk_options *o);
void sci_pk_set_stats(cglow_pk_set *s);
#endif
