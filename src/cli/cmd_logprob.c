/* cglow logprob: per-map log p(map | parameters) in nats, from raw maps and raw parameters,
 * with the preprocessing stored in the checkpoint. */
#include "cli/model_data.h"
#include "cli/model_flags.h"
#include <stdlib.h>
#include <string.h>

int cmd_logprob(int argc, char **argv)
{
    const char *model = NULL, *maps = NULL, *cond = NULL, *out = NULL, *space = "model", *device = NULL;
    long threads = 0, batch = 64;
    cli_flag flags[] = {
        {"model", FLAG_STR, &model, "checkpoint (.safetensors)", 1, 0},
        {"maps", FLAG_STR, &maps, "raw linear maps .npy (N, H, W) or (N, 1, H, W)", 1, 0},
        {"cond", FLAG_STR, &cond, "raw parameters: .npy (N, P) or a CAMELS table", 1, 0},
        {"out", FLAG_STR, &out, "log p, float64 (N,), nats", 1, 0},
        {"space", FLAG_STR, &space, "model (nats in model space, default) or log10 (of the log10 map)", 0, 0},
        {"batch", FLAG_INT, &batch, "maps per call (64)", 0, 0},
        {"threads", FLAG_INT, &threads, "threads (0 = OpenMP default)", 0, 0},
        DEVICE_FLAG(&device),
    };
    int help, rc = cli_parse("logprob", "Per-map log p(map | parameters) in nats.", flags, 8, argc, argv, &help);
    if (rc) return help ? 0 : rc;
    if (cli_check_device(device)) return 1;
    if (strcmp(space, "model") && strcmp(space, "log10")) return cli_fail("--space must be model or log10 (got '%s')", space);
    if (batch < 1) return cli_fail("--batch must be >= 1");
    cli_apply_threads(threads);
    cglow_model *m;
    cglow_dataset ds;
    if (cli_open_model_data(model, maps, cond, &m, &ds)) return 1;
    if (cli_apply_device(m, device)) {
        cglow_dataset_close(&ds);
        cglow_model_free(m);
        return 1;
    }
    const size_t N = ds.n_maps, D = cglow_model_dim(m), P = ds.n_cond, B = (size_t)batch;
    float *raw = malloc(sizeof(float) * B * ds.height * ds.width), *x = malloc(sizeof(float) * B * D);
    float *c = malloc(sizeof(float) * B * P), *u = malloc(sizeof(float) * B * D);
    double *lp = malloc(sizeof(double) * N);
    if (!raw || !x || !c || !u || !lp) rc = cglow_set_error(CGLOW_ENOMEM, "out of memory");
    for (size_t first = 0; first < N && !rc; first += B) {
        size_t n = N - first < B ? N - first : B;
        rc = cli_data_batch(m, &ds, first, n, raw, x, c);
        if (!rc) rc = cglow_log_prob(m, x, c, (int)n, lp + first);
        if (!rc && !strcmp(space, "log10")) {
            /* raw still holds the maps: their log10 gives the Jacobian in double */
            rc = cglow_data_maps_to_log10(cglow_model_data(m), raw, n, ds.height, ds.width, u, ds.maps_path, first);
            for (size_t i = 0; !rc && i < n; i++)
                lp[first + i] += cglow_data_log_jacobian_log10(cglow_model_data(m), u + i * D, D);
        }
    }
    size_t bad = 0;
    for (size_t i = 0; !rc && i < N; i++) bad += !isfinite(lp[i]);
    if (!rc) {
        size_t sh[1] = {N};
        rc = cglow_npy_save_f64(out, lp, 1, sh);
    }
    if (rc) rc = cli_fail_lib();
    else {
        double s = 0;
        for (size_t i = 0; i < N; i++) s += lp[i];
        printf("wrote %s: %zu maps, mean log p %.4f nats (%s space), %.6f nats/pixel%s\n", out, N, s / N, space,
               -s / N / D, bad ? "" : "");
        if (bad) fprintf(stderr, "cglow: warning: %zu maps have a non-finite log p\n", bad);
    }
    free(raw); free(x); free(c); free(u); free(lp);
    cglow_dataset_close(&ds);
    cglow_model_free(m);
    return rc;
}
