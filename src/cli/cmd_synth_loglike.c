/* cglow synth-loglike: exact log p(u | theta) of synthetic maps (model.md section 7), and on
 * request the exact posterior on a grid over (Omega_m, sigma_8). */
#include "cli/cli.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 256   /* maps in memory at once */

static int usage_error(const char *msg)
{
    fprintf(stderr, "cglow synth-loglike: error: %s (see --help)\n", msg);
    return 2;
}

/* ll (G*G) -> normalised posterior in place; -1 if the likelihood is 0 everywhere. */
static int normalise(double *p, size_t m)
{
    double mx = -INFINITY, s = 0;
    for (size_t i = 0; i < m; i++) if (p[i] > mx) mx = p[i];
    if (!isfinite(mx)) return -1;
    for (size_t i = 0; i < m; i++) s += (p[i] = exp(p[i] - mx));
    for (size_t i = 0; i < m; i++) p[i] /= s;
    return 0;
}

int cmd_synth_loglike(int argc, char **argv)
{
    const char *maps_path = NULL, *params_path = NULL, *out = NULL, *out_post = NULL;
    long grid = 0, threads = 0;
    int edges = 0;
    double box = 25, beta = 0.3, om_lo = 0.1, om_hi = 0.5, s8_lo = 0.6, s8_hi = 1.0;
    cli_flag flags[] = {
        {"maps", FLAG_STR, &maps_path, "linear maps .npy (N, n, n) or (N, 1, n, n)", 1, 0},
        {"params", FLAG_STR, &params_path, "parameters: .npy (N, P) or a CAMELS table (map i -> row i / maps_per_sim)", 1, 0},
        {"out", FLAG_STR, &out, "log-likelihoods, float64 (N,), nats, log10 space", 1, 0},
        {"grid", FLAG_INT, &grid, "also the exact posterior on a G x G grid", 0, 0},
        {"out-posterior", FLAG_STR, &out_post, "posterior (N, G, G), axis 1 Omega_m, axis 2 sigma_8", 0, 0},
        {"grid-edges", FLAG_BOOL, &edges, "grid includes the box edges (default: cell centres)", 0, 0},
        {"om-lo", FLAG_DOUBLE, &om_lo, "grid box: Omega_m low (0.1)", 0, 0},
        {"om-hi", FLAG_DOUBLE, &om_hi, "grid box: Omega_m high (0.5)", 0, 0},
        {"s8-lo", FLAG_DOUBLE, &s8_lo, "grid box: sigma_8 low (0.6)", 0, 0},
        {"s8-hi", FLAG_DOUBLE, &s8_hi, "grid box: sigma_8 high (1.0)", 0, 0},
        {"box", FLAG_DOUBLE, &box, "box side in Mpc/h (25)", 0, 0},
        {"beta", FLAG_DOUBLE, &beta, "beta of the transform (0.3)", 0, 0},
        {"threads", FLAG_INT, &threads, "threads (0 = OpenMP default)", 0, 0},
    };
    int help;
    int rc = cli_parse("synth-loglike", "Exact log-likelihood of synthetic maps at given parameters (model.md section 7).",
                       flags, (int)(sizeof flags / sizeof flags[0]), argc, argv, &help);
    if (rc) return help ? 0 : rc;
    if ((grid > 0) != (out_post != NULL)) return usage_error("--grid and --out-posterior go together");
    if (grid < 0 || grid > 4096) return usage_error("--grid must be in 1..4096");
    if (!(box > 0) || !(beta >= 0)) return usage_error("--box must be > 0 and --beta >= 0");
    if (!(om_lo > 0 && om_hi > om_lo && s8_lo > 0 && s8_hi > s8_lo)) return usage_error("bad grid box");
    if (threads < 0) return usage_error("--threads must be >= 0");
    cli_apply_threads(threads);

    cglow_dataset ds;
    if (cglow_dataset_open(maps_path, params_path, NULL, 0, &ds)) return cli_fail_lib();
    if (ds.height != ds.width) {
        cglow_dataset_close(&ds);
        return cli_fail("%s: maps are %dx%d, synthetic maps are square", maps_path, ds.height, ds.width);
    }
    if (ds.n_cond < 2) {
        cglow_dataset_close(&ds);
        return cli_fail("%s: needs 2 columns (Omega_m, sigma_8)", params_path);
    }
    size_t n = ds.n_maps, npix = (size_t)ds.height * ds.width, G = (size_t)grid;
    cglow_synth_opts o = {ds.height, box, beta};
    float *maps = malloc(CHUNK * npix * sizeof *maps);
    double *theta = malloc(CHUNK * 2 * sizeof *theta), *ll = malloc(n * sizeof *ll);
    double *post = G ? malloc(n * G * G * sizeof *post) : NULL;
    double *om = G ? malloc(G * sizeof *om) : NULL, *s8 = G ? malloc(G * sizeof *s8) : NULL;
    if (!maps || !theta || !ll || (G && (!post || !om || !s8))) {
        rc = cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", maps_path);
        goto done;
    }
    if (G) { cglow_grid_axis(om_lo, om_hi, (int)G, edges, om); cglow_grid_axis(s8_lo, s8_hi, (int)G, edges, s8); }
    for (size_t first = 0; first < n && !rc; first += CHUNK) {
        size_t m = n - first < CHUNK ? n - first : CHUNK;
        rc = cglow_dataset_read_maps(&ds, first, m, maps);
        if (rc) break;
        for (size_t i = 0; i < m; i++) {
            const double *th = cglow_dataset_theta(&ds, first + i);
            theta[2 * i] = th[ds.cols[0]];
            theta[2 * i + 1] = th[ds.cols[1]];
        }
        rc = cglow_synth_loglike(&o, maps, m, theta, 2, ll + first, maps_path, first);
        if (rc) break;
        if (G) {
            int err = 0;
            char msg[1024] = "";
#pragma omp parallel for schedule(dynamic, 1) num_threads(cglow_get_threads())
            for (long long i = 0; i < (long long)m; i++) {
                double *p = post + (first + (size_t)i) * G * G;
                int e = cglow_synth_loglike_grid(&o, maps + (size_t)i * npix, om, (int)G, s8, (int)G, p, maps_path,
                                                 first + (size_t)i);
                if (!e && normalise(p, G * G))
                    e = cglow_set_error(CGLOW_EVALUE, "%s: map %zu has zero likelihood everywhere on the grid", maps_path,
                                        first + (size_t)i);
                if (e) {
#pragma omp critical(synth_loglike_err)
                    if (!err) { err = e; snprintf(msg, sizeof msg, "%s", cglow_last_error()); }
                }
            }
            if (err) rc = cglow_set_error(err, "%s", msg);
        }
    }
    if (!rc) {
        size_t sh[1] = {n};
        rc = cglow_npy_save_f64(out, ll, 1, sh);
    }
    if (!rc && G) {
        size_t sh[3] = {n, G, G};
        rc = cglow_npy_save_f64(out_post, post, 3, sh);
    }
done:
    free(maps); free(theta); free(ll); free(post); free(om); free(s8);
    cglow_dataset_close(&ds);
    return rc ? cli_fail_lib() : 0;
}
