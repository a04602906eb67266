/* cglow synth: the synthetic CAMELS-like data set of model.md section 7 (linear maps .npy and a
 * CAMELS-layout parameter table). */
#include "cli/cli.h"
#include "util/progress.h"
#include <stdlib.h>
#include <string.h>

static int usage_error(const char *msg)
{
    fprintf(stderr, "cglow synth: error: %s (see --help)\n", msg);
    return 2;
}

int cmd_synth(int argc, char **argv)
{
    long sims = 0, mps = 15, size = 64, seed = 0, threads = 0;
    double box = 25, beta = 0.3;
    const char *table = NULL, *out_maps = NULL, *out_params = NULL;
    cli_flag flags[] = {
        {"sims", FLAG_INT, &sims, "simulations (parameter rows); default: all rows of --params-table", 0, 0},
        {"maps-per-sim", FLAG_INT, &mps, "maps per simulation (15)", 0, 0},
        {"size", FLAG_INT, &size, "grid size n of the n x n maps (64)", 0, 0},
        {"seed", FLAG_INT, &seed, "random seed (0); the data set is a function of it", 0, 0},
        {"params-table", FLAG_STR, &table, "use these parameters (CAMELS table or .npy) instead of a Latin hypercube", 0, 0},
        {"out-maps", FLAG_STR, &out_maps, "linear maps 10^u, float32 (N, n, n)", 1, 0},
        {"out-params", FLAG_STR, &out_params, "CAMELS-layout parameter table", 1, 0},
        {"box", FLAG_DOUBLE, &box, "box side in Mpc/h (25)", 0, 0},
        {"beta", FLAG_DOUBLE, &beta, "skewness of u = mu + (exp(beta g) - 1) / beta (0.3)", 0, 0},
        {"threads", FLAG_INT, &threads, "threads (0 = OpenMP default)", 0, 0},
    };
    int help;
    int rc = cli_parse("synth", "Generates the synthetic CAMELS-like data set (exact likelihood known, model.md section 7).",
                       flags, (int)(sizeof flags / sizeof flags[0]), argc, argv, &help);
    if (rc) return help ? 0 : rc;
    if (!table && !flags[0].seen) return usage_error("--sims is required without --params-table");
    if (flags[0].seen && (sims < 1 || sims > 100000000)) return usage_error("--sims must be >= 1");
    if (mps < 1 || mps > 1000000) return usage_error("--maps-per-sim must be >= 1");
    if (size < 2 || size > 8192) return usage_error("--size must be in 2..8192");
    if (!(box > 0)) return usage_error("--box must be > 0");
    if (!(beta >= 0)) return usage_error("--beta must be >= 0");
    if (threads < 0) return usage_error("--threads must be >= 0");
    cli_apply_threads(threads);

    cglow_table t = {0, 0, NULL};
    if (table) {
        if (cglow_table_load(table, &t)) return cli_fail_lib();
        if (t.cols < 2) { cglow_table_free(&t); return cli_fail("%s: needs at least 2 columns (Omega_m, sigma_8)", table); }
        if (flags[0].seen) {
            if (sims > t.rows) {
                int rows = t.rows;
                cglow_table_free(&t);
                return cli_fail("%s: --sims %ld but the table has only %d rows", table, sims, rows);
            }
            t.rows = (int)sims;
        }
    } else {
        t.rows = (int)sims;
        t.cols = 6;
        t.v = malloc((size_t)sims * 6 * sizeof *t.v);
        if (!t.v) return cli_fail("out of memory for %ld parameter rows", sims);
        if (cglow_synth_params_lhs((size_t)sims, (uint64_t)seed, NULL, NULL, t.v)) { cglow_table_free(&t); return cli_fail_lib(); }
    }
    size_t n_maps = (size_t)t.rows * (size_t)mps, npix = (size_t)size * (size_t)size;
    float *maps = malloc(n_maps * npix * sizeof *maps);
    if (!maps) { cglow_table_free(&t); return cli_fail("%s: out of memory for %zu maps of %ldx%ld", out_maps, n_maps, size, size); }
    cglow_synth_opts o = {(int)size, box, beta};
    double t0 = now_seconds();
    rc = cglow_synth_maps(&o, t.v, t.cols, (size_t)t.rows, (int)mps, (uint64_t)seed, maps);
    double dt = now_seconds() - t0;
    if (!rc) {
        size_t shape[3] = {n_maps, (size_t)size, (size_t)size};
        rc = cglow_npy_save_f32(out_maps, maps, 3, shape);
    }
    if (!rc)
        rc = cglow_table_save_camels(out_params, &t, t.cols == 6 ? "Om sigma8 SN1 AGN1 SN2 AGN2" : "parameters");
    free(maps);
    cglow_table_free(&t);
    if (rc) return cli_fail_lib();
    fprintf(stderr, "synth: %zu maps of %ldx%ld (%d threads) in %.2f s: %s, %s\n", n_maps, size, size,
            cglow_get_threads(), dt, out_maps, out_params);
    return 0;
}
