/* Flags shared by `init` and `train`: the model's hyperparameters (model.md section 2) and the
 * data preprocessing (section 1.2-1.3). */
#ifndef CGLOW_CLI_MODEL_FLAGS_H
#define CGLOW_CLI_MODEL_FLAGS_H
#include "cli/cli.h"

typedef struct {
    const char *preset, *prior, *squash, *cond_cols, *prior_box;
    long levels, steps, hidden, prior_hidden, size, height, width, channels, downsample;
    double clamp, floor;
} model_flag_values;

#define MODEL_FLAG_COUNT 16
/* Fills flags[0..MODEL_FLAG_COUNT) (pointing into v, which gets the "unset" defaults). */
void model_flags_declare(cli_flag *flags, model_flag_values *v);
/* The config from the preset and any flag given; data-dependent sizes from (h, w) when > 0. */
int model_flags_config(const model_flag_values *v, int data_h, int data_w, cglow_config *cfg);
/* Downsample, floor, squash and the prior box into d (after d's defaults / fit). */
int model_flags_data(const model_flag_values *v, cglow_data_config *d);
/* Parses --cond-cols "0,1" into cols; returns the count (0 when unset), -1 on error (printed). */
int model_flags_cols(const model_flag_values *v, int *cols);

/* --device cpu|cuda, shared by train, logprob, sample, infer and calibrate. */
#define DEVICE_FLAG(dst) {"device", FLAG_STR, (dst), "compute device: cpu (default) or cuda", 0, 0}
/* Right after parsing: 0 if the device can be used here, else prints one line and returns 1. */
int cli_check_device(const char *device);
/* Moves a loaded model to the device (NULL or "cpu": stays); prints the error and returns 1. */
int cli_apply_device(cglow_model *m, const char *device);
#endif
