/* Maps + parameters on disk -> the model's input, with the preprocessing stored in the model. */
#ifndef CGLOW_CLI_MODEL_DATA_H
#define CGLOW_CLI_MODEL_DATA_H
#include "cli/cli.h"

/* Loads the model and opens maps + parameters (its condition count of columns), checking that they
 * fit it. Returns 0, or 1 after printing the error (nothing left open). */
int cli_open_model_data(const char *model, const char *maps, const char *cond, cglow_model **m, cglow_dataset *ds);
/* Checks that the data set's maps (after the model's downsampling) and condition columns fit the
 * model; the error names the file. */
int cli_data_fits(cglow_model *m, const cglow_dataset *ds);
/* Maps first..first+count-1 into model space x (count x dim) and their scaled conditions c
 * (count x P). raw: scratch of count * height * width floats. */
int cli_data_batch(cglow_model *m, const cglow_dataset *ds, size_t first, size_t count, float *raw, float *x, float *c);
#endif
