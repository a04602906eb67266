/* cglow info: a checkpoint's config, data preprocessing, parameter count and FLOPs per map. */
#include "cli/cli.h"
#include <string.h>

int cmd_info(int argc, char **argv)
{
    const char *model = NULL;
    int tensors = 0;
    cli_flag flags[] = {
        {"model", FLAG_STR, &model, "checkpoint (.safetensors)", 1, 0},
        {"tensors", FLAG_BOOL, &tensors, "also list every tensor with its shape", 0, 0},
    };
    int help, rc = cli_parse("info", "Config, parameter count and FLOPs of a model.", flags, 2, argc, argv, &help);
    if (rc) return help ? 0 : rc;
    cglow_model *m;
    if (cglow_model_load(model, &m)) return cli_fail_lib();
    const cglow_config *c = cglow_model_config(m);
    const cglow_data_config *d = cglow_model_data(m);
    double naive, flops = cglow_model_flops_forward(m, &naive);
    printf("model        %s\n", model);
    printf("config       in_channels %d, %dx%d, levels %d, steps %d, hidden %d, cond_features %d, prior %s, "
           "prior_hidden %d, coupling_clamp %g\n", c->in_channels, c->height, c->width, c->levels, c->steps, c->hidden,
           c->cond_features, c->prior == CGLOW_PRIOR_LEARNED ? "learned" : "conditional", c->prior_hidden,
           c->coupling_clamp);
    printf("data         downsample %d, floor %g, mu %.6g, sigma %.6g, squash %s\n", d->downsample, d->floor, d->mu,
           d->sigma, d->squash == CGLOW_SQUASH_STANDARD ? "standard" : "sigmoid");
    for (int j = 0; j < d->n_cond; j++)
        printf("condition    %-10s [%g, %g]\n", d->cond_names[j], d->cond_lo[j], d->cond_hi[j]);
    printf("parameters   %zu trainable, %d tensors\n", cglow_model_num_params(m), cglow_model_num_tensors(m));
    printf("flops/map    forward %.1f MFLOP as computed (%.1f MFLOP as written); training %.1f MFLOP per map\n",
           flops / 1e6, naive / 1e6, cglow_model_flops_train(m) / 1e6);
    const char *ts = cglow_model_train_state(m);
    printf("train state  %s\n", ts ? ts : "(never trained)");
    if (tensors)
        for (int i = 0; i < cglow_model_num_tensors(m); i++) {
            const cglow_tensor_info *t = cglow_model_tensor(m, i);
            printf("  %-50s [", t->name);
            for (int k = 0; k < t->ndim; k++) printf("%s%d", k ? ", " : "", t->shape[k]);
            printf("]%s\n", t->trainable ? "" : " fixed");
        }
    cglow_model_free(m);
    return 0;
}
