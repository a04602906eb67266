#include "cli/model_flags.h"
#include <stdlib.h>
#include <string.h>

void model_flags_declare(cli_flag *f, model_flag_values *v)
{
    memset(v, 0, sizeof *v);
    v->preset = "higlow";
    v->levels = v->steps = v->hidden = v->prior_hidden = v->size = v->height = v->width = v->channels = -1;
    v->downsample = 1;
    v->clamp = -1;
    v->floor = 1e-8;
    cli_flag t[MODEL_FLAG_COUNT] = {
        {"preset", FLAG_STR, &v->preset, "model preset (higlow: L=6, K=20, hidden 16, 1x64x64)", 0, 0},
        {"levels", FLAG_INT, &v->levels, "L, split blocks", 0, 0},
        {"steps", FLAG_INT, &v->steps, "K, flow steps per block", 0, 0},
        {"hidden", FLAG_INT, &v->hidden, "hidden width of the injector and coupling CNNs", 0, 0},
        {"prior-hidden", FLAG_INT, &v->prior_hidden, "width of the conditional prior MLPs", 0, 0},
        {"prior", FLAG_STR, &v->prior, "conditional (default) or learned", 0, 0},
        {"clamp", FLAG_DOUBLE, &v->clamp, "coupling clamp (0.5)", 0, 0},
        {"size", FLAG_INT, &v->size, "input height = width (default: the preset, or the data)", 0, 0},
        {"height", FLAG_INT, &v->height, "input height", 0, 0},
        {"width", FLAG_INT, &v->width, "input width", 0, 0},
        {"channels", FLAG_INT, &v->channels, "input channels (1)", 0, 0},
        {"downsample", FLAG_INT, &v->downsample, "block-mean downsampling factor of the raw maps (1)", 0, 0},
        {"floor", FLAG_DOUBLE, &v->floor, "floor before log10 (1e-8)", 0, 0},
        {"squash", FLAG_STR, &v->squash, "sigmoid (default) or standard", 0, 0},
        {"prior-box", FLAG_STR, &v->prior_box, "condition box lo1,hi1,lo2,hi2 (default: min/max of the table)", 0, 0},
        {"cond-cols", FLAG_STR, &v->cond_cols, "parameter-table columns used as the condition (default 0,1)", 0, 0},
    };
    memcpy(f, t, sizeof t);
}

int model_flags_config(const model_flag_values *v, int data_h, int data_w, cglow_config *c)
{
    if (cglow_config_preset(c, v->preset)) return cli_fail_lib();
    if (data_h > 0) { c->height = data_h; c->width = data_w; }
    if (v->size > 0) c->height = c->width = (int)v->size;
    if (v->height > 0) c->height = (int)v->height;
    if (v->width > 0) c->width = (int)v->width;
    if (v->levels >= 0) c->levels = (int)v->levels;
    if (v->steps >= 0) c->steps = (int)v->steps;
    if (v->hidden >= 0) c->hidden = (int)v->hidden;
    if (v->prior_hidden >= 0) c->prior_hidden = (int)v->prior_hidden;
    if (v->channels >= 0) c->in_channels = (int)v->channels;
    if (v->clamp >= 0) c->coupling_clamp = (float)v->clamp;
    if (v->prior) {
        if (!strcmp(v->prior, "conditional")) c->prior = CGLOW_PRIOR_CONDITIONAL;
        else if (!strcmp(v->prior, "learned")) c->prior = CGLOW_PRIOR_LEARNED;
        else return cli_fail("--prior must be conditional or learned (got '%s')", v->prior);
    }
    if (cglow_config_validate(c)) return cli_fail_lib();
    return 0;
}

int model_flags_data(const model_flag_values *v, cglow_data_config *d)
{
    if (v->downsample < 1 || v->downsample > 64) return cli_fail("--downsample must be in 1..64");
    if (!(v->floor >= 0)) return cli_fail("--floor must be >= 0");
    d->downsample = (int)v->downsample;
    d->floor = v->floor;
    if (v->squash) {
        if (!strcmp(v->squash, "sigmoid")) d->squash = CGLOW_SQUASH_SIGMOID;
        else if (!strcmp(v->squash, "standard")) d->squash = CGLOW_SQUASH_STANDARD;
        else return cli_fail("--squash must be sigmoid or standard (got '%s')", v->squash);
    }
    if (v->prior_box) {
        double b[2 * CGLOW_MAX_COND];
        int n = 0;
        const char *p = v->prior_box;
        char *end;
        while (*p && n < 2 * CGLOW_MAX_COND) {
            b[n++] = strtod(p, &end);
            if (end == p) return cli_fail("--prior-box wants numbers lo1,hi1,lo2,hi2 (got '%s')", v->prior_box);
            p = *end == ',' ? end + 1 : end;
        }
        if (n != 2 * d->n_cond) return cli_fail("--prior-box wants %d numbers (lo,hi per condition), got %d", 2 * d->n_cond, n);
        for (int j = 0; j < d->n_cond; j++) {
            if (!(b[2 * j + 1] > b[2 * j])) return cli_fail("--prior-box: hi <= lo for condition %d", j);
            d->cond_lo[j] = b[2 * j];
            d->cond_hi[j] = b[2 * j + 1];
        }
    }
    return 0;
}

int model_flags_cols(const model_flag_values *v, int *cols)
{
    if (!v->cond_cols) return 0;
    int n = 0;
    const char *p = v->cond_cols;
    char *end;
    while (*p) {
        long c = strtol(p, &end, 10);
        if (end == p || c < 0 || n == CGLOW_MAX_COND) { cli_fail("--cond-cols wants column numbers like 0,1 (got '%s')", v->cond_cols); return -1; }
        cols[n++] = (int)c;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

int cli_check_device(const char *device)
{
    if (!device || !strcmp(device, "cpu")) return 0;
    if (strcmp(device, "cuda") && strcmp(device, "cuda:0")) return cli_fail("--device must be cpu or cuda (got '%s')", device);
    const char *why = NULL;
    if (!cglow_cuda_available(&why)) return cli_fail("--device cuda: %s", why);
    return 0;
}

int cli_apply_device(cglow_model *m, const char *device)
{
    if (!device || !strcmp(device, "cpu")) return 0;
    return cglow_model_set_device(m, device) ? cli_fail_lib() : 0;
}
