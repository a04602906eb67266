/* cglow grad: the training loss of model.md section 3 on given maps and its gradient with
 * respect to every tensor (float64 safetensors, the checkpoint's names), for checking the
 * engine against other implementations. */
#include "cli/model_data.h"
#include "io/safetensors.h"
#include <stdlib.h>
#include <string.h>

int cmd_grad(int argc, char **argv)
{
    const char *model = NULL, *maps = NULL, *cond = NULL, *out = NULL;
    long threads = 0;
    cli_flag flags[] = {
        {"model", FLAG_STR, &model, "checkpoint (.safetensors)", 1, 0},
        {"maps", FLAG_STR, &maps, "raw linear maps .npy (N, H, W)", 1, 0},
        {"cond", FLAG_STR, &cond, "raw parameters .npy (N, P) or a CAMELS table", 1, 0},
        {"out", FLAG_STR, &out, "gradients (.safetensors, F64, the checkpoint's tensor names)", 1, 0},
        {"threads", FLAG_INT, &threads, "threads (0 = OpenMP default)", 0, 0},
    };
    int help, rc = cli_parse("grad", "Loss (nats/pixel) over the maps and its gradient for every tensor.", flags, 5,
                             argc, argv, &help);
    if (rc) return help ? 0 : rc;
    cli_apply_threads(threads);
    cglow_model *m;
    cglow_dataset ds;
    if (cli_open_model_data(model, maps, cond, &m, &ds)) return 1;
    const size_t N = ds.n_maps, D = cglow_model_dim(m), P = ds.n_cond;
    const int nt = cglow_model_num_tensors(m);
    float *raw = malloc(sizeof(float) * N * ds.height * ds.width), *x = malloc(sizeof(float) * N * D);
    float *c = malloc(sizeof(float) * N * P);
    size_t total = 0;
    for (int i = 0; i < nt; i++) total += cglow_model_tensor(m, i)->size;
    double *g = malloc(sizeof(double) * (total ? total : 1));
    st_tensor *ts = calloc(nt, sizeof(st_tensor));
    cglow_trainer *t = NULL;
    cglow_optim_config o;
    cglow_optim_config_default(&o);
    double loss = 0;
    if (!raw || !x || !c || !g || !ts) rc = cglow_set_error(CGLOW_ENOMEM, "out of memory");
    if (!rc) rc = cli_data_batch(m, &ds, 0, N, raw, x, c);
    if (!rc) rc = cglow_trainer_create(m, &o, (int)N, &t);
    if (!rc) rc = cglow_loss_grad(t, x, c, (int)N, &loss);
    if (!rc) {
        size_t off = 0;
        for (int i = 0; i < nt; i++) {
            const cglow_tensor_info *ti = cglow_model_tensor(m, i);
            cglow_trainer_get_grad(t, i, g + off);
            ts[i].name = ti->name;
            ts[i].dtype = ST_F64;
            ts[i].ndim = ti->ndim;
            for (int k = 0; k < ti->ndim; k++) ts[i].shape[k] = ti->shape[k];
            ts[i].numel = ti->size;
            ts[i].data = g + off;
            off += ti->size;
        }
        char ls[64];
        snprintf(ls, sizeof ls, "%.17g", loss);
        const char *keys[2] = {"format", "loss"}, *vals[2] = {"cglow-grad", ls};
        rc = st_write(out, nt, ts, 2, keys, vals);
    }
    if (rc) rc = cli_fail_lib();
    else printf("loss %.10f nats/pixel (%.10f bits/pixel) over %zu maps; wrote %s\n", loss, loss / log(2.0), N, out);
    cglow_trainer_free(t);
    free(raw); free(x); free(c); free(g); free(ts);
    cglow_dataset_close(&ds);
    cglow_model_free(m);
    return rc;
}
