/* cglow sample: new maps for given parameters at a temperature (model.md 2.4, 8). */
#include "cli/sci_cli.h"
#include "cli/model_flags.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int cmd_sample(int argc, char **argv)
{
    const char *model = NULL, *cond = NULL, *out = NULL, *units = "log10", *png = NULL, *device = NULL;
    long per = 1, seed = 0, threads = 0, png_max = 16;
    double T = 1.0;
    int help = 0;
    cli_flag fl[] = {
        {"model", FLAG_STR, &model, "flow checkpoint (.safetensors)", 1, 0},
        {"cond", FLAG_STR, &cond, "raw parameters: .npy (rows, >= P) or CAMELS text table; the first P columns", 1, 0},
        {"out", FLAG_STR, &out, "output .npy (rows * K, H, W) float32, rows of --cond in order", 1, 0},
        {"n-per-cond", FLAG_INT, &per, "maps per condition row K (1)", 0, 0},
        {"temperature", FLAG_DOUBLE, &T, "prior temperature T (1)", 0, 0},
        {"seed", FLAG_INT, &seed, "random seed (0)", 0, 0},
        {"units", FLAG_STR, &units, "log10 (default) or linear", 0, 0},
        {"png", FLAG_STR, &png, "also a PNG grid of the maps (log10) with a colour bar", 0, 0},
        {"png-max", FLAG_INT, &png_max, "at most this many maps in the PNG (16)", 0, 0},
        {"threads", FLAG_INT, &threads, "threads (default: all)", 0, 0},
        DEVICE_FLAG(&device),
    };
    int rc = cli_parse("sample", "Samples maps from the flow at the given parameters: z = mean(c) + T exp(logvar(c)/2) eps.\n"
                       "Non-finite samples are counted and reported (kept in the output).",
                       fl, (int)(sizeof fl / sizeof fl[0]), argc, argv, &help);
    if (rc) return help ? 0 : 2;
    if (cli_check_device(device)) return 1;
    cli_apply_threads(threads);
    int u = sci_parse_units(units);   /* 1 = log10, 0 = linear */
    if (u < 0) return cli_fail("--units: expected log10 or linear, got '%s'", units);
    int lin = u == 0;
    if (per < 1 || per > 1000000) return cli_fail("--n-per-cond: expected 1 .. 1000000, got %ld", per);
    if (!(T >= 0)) return cli_fail("--temperature must be >= 0");
    if (seed < 0) return cli_fail("--seed must be >= 0");
    cglow_model *m;
    if (cglow_model_load(model, &m)) return cli_fail_lib();
    if (cli_apply_device(m, device)) { cglow_model_free(m); return 1; }
    const cglow_config *cfg = cglow_model_config(m);
    int P = cfg->cond_features;
    cglow_table t;
    if (cglow_table_load(cond, &t)) { cglow_model_free(m); return cli_fail_lib(); }
    if (t.cols < P || t.rows < 1) {
        int r = cli_fail("%s: %d x %d table, the model needs >= %d parameter columns", cond, t.rows, t.cols, P);
        cglow_table_free(&t); cglow_model_free(m);
        return r;
    }
    double *theta = malloc((size_t)t.rows * P * sizeof *theta);
    size_t n = (size_t)t.rows * (size_t)per, np = (size_t)cfg->height * cfg->width;
    float *x = theta ? malloc(n * np * sizeof *x) : NULL;
    if (!theta || !x) { free(theta); cglow_table_free(&t); cglow_model_free(m); return cli_fail("out of memory for %zu maps", n); }
    for (int r = 0; r < t.rows; r++)
        for (int j = 0; j < P; j++) theta[(size_t)r * P + j] = t.v[(size_t)r * t.cols + j];
    size_t bad = 0;
    rc = cglow_sample_maps(m, theta, t.rows, (int)per, (float)T, (uint64_t)seed, lin, x, &bad);
    size_t shape[3] = {n, (size_t)cfg->height, (size_t)cfg->width};
    if (!rc) rc = cglow_npy_save_f32(out, x, 3, shape);
    if (!rc) {
        fprintf(stderr, "cglow sample: %zu maps (%d conditions x %ld) at T = %g -> %s (%s units)\n", n, t.rows, per, T, out, units);
        if (bad) fprintf(stderr, "cglow sample: warning: %zu of %zu maps have non-finite pixels (kept in the output)\n", bad, n);
    }
    if (!rc && png) {
        size_t k = n < (size_t)png_max ? n : (size_t)(png_max > 0 ? png_max : 1);
        if (lin) for (size_t i = 0; i < k * np; i++) x[i] = log10f(x[i]);   /* pictures are log10 */
        int cols = k >= 4 ? 4 : (int)k;
        if (cglow_image_maps(png, x, k, cfg->height, cfg->width, cols, 4, 0, 0, CGLOW_CMAP_VIRIDIS))
            fprintf(stderr, "cglow sample: warning: %s\n", cglow_last_error());
        else
            fprintf(stderr, "cglow sample: %s: %zu maps (log10, viridis; colour bar: the 1st to 99th percentile, in the PNG's vmin/vmax text)\n", png, k);
    }
    free(theta); free(x);
    cglow_table_free(&t);
    cglow_model_free(m);
    return rc ? cli_fail_lib() : 0;
}
