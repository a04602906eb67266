/* cglow init: a fresh, seeded model from a preset or flags; --maps/--params set the data
 * statistics (mu, sigma of the training maps' log10, the condition box) from data. */
#include "cli/cli.h"
#include "cli/model_flags.h"
#include <stdlib.h>

int cmd_init(int argc, char **argv)
{
    const char *out = NULL, *maps = NULL, *params = NULL;
    long seed = 0, threads = 0;
    model_flag_values mv;
    cli_flag flags[MODEL_FLAG_COUNT + 5];
    model_flags_declare(flags, &mv);
    cli_flag extra[5] = {
        {"out", FLAG_STR, &out, "the checkpoint to write (.safetensors)", 1, 0},
        {"seed", FLAG_INT, &seed, "initialisation seed (0)", 0, 0},
        {"maps", FLAG_STR, &maps, "maps .npy to set the data statistics from (with --params)", 0, 0},
        {"params", FLAG_STR, &params, "parameter table or .npy of those maps", 0, 0},
        {"threads", FLAG_INT, &threads, "threads (0 = OpenMP default)", 0, 0},
    };
    for (int i = 0; i < 5; i++) flags[MODEL_FLAG_COUNT + i] = extra[i];
    int help, rc = cli_parse("init", "A fresh model (model.md section 2 initialisation) from a preset or flags.", flags,
                             MODEL_FLAG_COUNT + 5, argc, argv, &help);
    if (rc) return help ? 0 : rc;
    if (!maps != !params) return cli_fail("--maps and --params go together");
    cli_apply_threads(threads);
    int cols[CGLOW_MAX_COND], ncols = model_flags_cols(&mv, cols);
    if (ncols < 0) return 2;
    cglow_dataset ds;
    int have_data = maps != NULL;
    if (have_data && cglow_dataset_open(maps, params, ncols ? cols : NULL, ncols, &ds)) return cli_fail_lib();
    cglow_config cfg;
    int h = 0, w = 0;
    if (have_data) { h = ds.height / (int)(mv.downsample > 0 ? mv.downsample : 1); w = ds.width / (int)(mv.downsample > 0 ? mv.downsample : 1); }
    if (model_flags_config(&mv, h, w, &cfg)) { if (have_data) cglow_dataset_close(&ds); return 1; }
    if (have_data) cfg.cond_features = ds.n_cond;
    cglow_model *m;
    if (cglow_model_create(&cfg, (uint64_t)seed, &m)) { if (have_data) cglow_dataset_close(&ds); return cli_fail_lib(); }
    cglow_data_config *d = cglow_model_data(m);
    if (model_flags_data(&mv, d)) rc = 1;
    if (!rc && have_data) {
        size_t *idx = malloc(sizeof(size_t) * ds.n_maps), *test = malloc(sizeof(size_t) * ds.n_maps), ntr, nte;
        rc = !idx || !test;
        if (!rc) rc = cglow_split(ds.n_maps, ds.maps_per_sim, CGLOW_SPLIT_WITHIN_SIM, 0, 0, idx, &ntr, test, &nte);
        if (!rc) rc = cglow_dataset_fit(&ds, idx, ntr, d);
        if (!rc && mv.prior_box) rc = model_flags_data(&mv, d) ? 1 : 0;
        free(idx);
        free(test);
        if (rc) rc = cli_fail_lib();
    }
    if (!rc && cglow_model_save(m, out)) rc = cli_fail_lib();
    if (!rc)
        printf("wrote %s: %zu trainable parameters, L=%d K=%d hidden %d, %dx%dx%d, prior %s, mu %.4f sigma %.4f\n", out,
               cglow_model_num_params(m), cfg.levels, cfg.steps, cfg.hidden, cfg.in_channels, cfg.height, cfg.width,
               cfg.prior == CGLOW_PRIOR_LEARNED ? "learned" : "conditional", d->mu, d->sigma);
    if (have_data) cglow_dataset_close(&ds);
    cglow_model_free(m);
    return rc;
}
