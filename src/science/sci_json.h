/* Small cJSON helpers shared by the science outputs (arrays of doubles, atomic saves). */
#ifndef CGLOW_SCI_JSON_H
#define CGLOW_SCI_JSON_H
#include <cjson/cJSON.h>
#include <stddef.h>

/* An array of n doubles; non-finite values become null (JSON has no NaN). */
cJSON *sci_json_darray(const double *v, size_t n);
/* A number, or null when not finite. */
cJSON *sci_json_num(double v);
/* Prints (formatted) and writes atomically; frees nothing. */
int sci_json_save(const cJSON *root, const char *path);
/* Loads a JSON file; NULL with an error set when missing or invalid. */
cJSON *sci_json_load(const char *path);
/* Shared JSON pieces of the inference outputs (infer.c). */
#include "cglow.h"
cJSON *sci_calibration_json(const cglow_calibration *c);
cJSON *sci_grid_json(const cglow_grid *g);
#endif
