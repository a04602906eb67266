/* Helpers shared by the science subcommands. */
#include "cli/sci_cli.h"
#include "cli/model_flags.h"
#include <stdlib.h>
#include <math.h>
#include <string.h>

int sci_load_maps(const char *path, float **maps, size_t *n, int *h, int *w)
{
    int nd;
    size_t sh[4] = {0};
    *maps = NULL;
    int rc = cglow_npy_load_f32(path, maps, &nd, sh);
    if (rc) return rc;
    if (!(nd == 3 || (nd == 4 && sh[1] == 1)) || sh[0] == 0 || sh[nd - 1] < 2 || sh[nd - 2] < 2) {
        free(*maps);
        *maps = NULL;
        return cglow_set_error(CGLOW_ESHAPE, "%s: expected maps of shape (N, H, W) or (N, 1, H, W), got %d dimensions", path, nd);
    }
    *n = sh[0];
    *h = (int)sh[nd - 2];
    *w = (int)sh[nd - 1];
    return 0;
}

int sci_load_theta(const char *path, size_t nmaps, double **theta)
{
    cglow_table t;
    *theta = NULL;
    int rc = cglow_table_load(path, &t);
    if (rc) return rc;
    if (t.cols < 2 || t.rows < 1 || nmaps % (size_t)t.rows != 0) {
        rc = cglow_set_error(CGLOW_ESHAPE, "%s: need a table of (rows, >= 2) parameters with one row per map or per simulation (%zu maps, table %d x %d)",
                             path, nmaps, t.rows, t.cols);
        cglow_table_free(&t);
        return rc;
    }
    size_t per = nmaps / (size_t)t.rows;
    *theta = malloc(2 * nmaps * sizeof **theta);
    if (!*theta) { cglow_table_free(&t); return cglow_set_error(CGLOW_ENOMEM, "%s: out of memory", path); }
    for (size_t i = 0; i < nmaps; i++)
        for (int a = 0; a < 2; a++) (*theta)[2 * i + a] = t.v[(i / per) * t.cols + a];
    cglow_table_free(&t);
    return 0;
}

int sci_parse_units(const char *s)
{
    if (!strcmp(s, "linear")) return 0;
    if (!strcmp(s, "log10")) return 1;
    return -1;
}

const char *sci_join(char *buf, size_t n, const char *dir, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

int sci_parse_pair(const char *s, double v[2])
{
    char *end;
    v[0] = strtod(s, &end);
    if (end == s || *end != ',') return -1;
    const char *b = end + 1;
    v[1] = strtod(b, &end);
    if (end == b || *end) return -1;
    return isfinite(v[0]) && isfinite(v[1]) ? 0 : -1;
}

int sci_infer_flags(const char *cmd, const char *summary, int argc, char **argv, cglow_infer_run *r, int calibrate)
{
    const char *lo = NULL, *hi = NULL;
    long G = 30, first = 0, count = 0, png = 4, threads = 0;
    int quiet = 0, help = 0;
    cglow_infer_run_default(r);
    cli_flag fl[] = {
        {"maps", FLAG_STR, &r->maps_path, "raw linear maps (N, n, n) or (N, 1, n, n)", 1, 0},
        {"out", FLAG_STR, &r->out_dir, "output folder (created)", 1, 0},
        {"model", FLAG_STR, &r->model_path, calibrate ? "flow checkpoint (with --exact too: flow against exact)" : "flow checkpoint (scorer: cglow_log_prob)", 0, 0},
        {"exact", FLAG_BOOL, &r->exact, "scorer: the exact likelihood of the synthetic data (model.md 7)", 0, 0},
        {"truth", FLAG_STR, &r->truth_path, calibrate ? "true parameters: table with a row per map or per simulation (.npy or CAMELS text)"
                                                      : "true parameters (optional): table with a row per map or per simulation", calibrate, 0},
        {"grid", FLAG_INT, &G, "grid points per axis (30)", 0, 0},
        {"grid-edges", FLAG_BOOL, &r->edges, "grid = linspace including the box edges (HIGlow) instead of cell centres", 0, 0},
        {"lo", FLAG_STR, &lo, "prior box low corner 'Om,s8' (default: the model's box; --exact: 0.1,0.6)", 0, 0},
        {"hi", FLAG_STR, &hi, "prior box high corner 'Om,s8' (default: the model's box; --exact: 0.5,1.0)", 0, 0},
        {"first", FLAG_INT, &first, "first map (0)", 0, 0},
        {"count", FLAG_INT, &count, "number of maps (default: all from --first)", 0, 0},
        {"png", FLAG_INT, &png, "posterior pictures of the first N maps (4)", 0, 0},
        {"beta", FLAG_DOUBLE, &r->beta, "--exact: beta of the synthetic data (0.3)", 0, 0},
        {"box", FLAG_DOUBLE, &r->synth_box, "--exact: box side of the synthetic data in Mpc/h (25)", 0, 0},
        {"quiet", FLAG_BOOL, &quiet, "no progress line", 0, 0},
        {"threads", FLAG_INT, &threads, "threads (default: all)", 0, 0},
        DEVICE_FLAG(&r->device),
    };
    int rc = cli_parse(cmd, summary, fl, (int)(sizeof fl / sizeof fl[0]), argc, argv, &help);
    if (rc) return help ? 0 : 2;
    if (cli_check_device(r->device)) return 1;
    cli_apply_threads(threads);
    if (G < 2 || G > 1000) return cli_fail("--grid: expected 2 .. 1000 points, got %ld", G);
    if (first < 0 || count < 0 || png < 0) return cli_fail("--first, --count and --png must be >= 0");
    if ((lo && !hi) || (hi && !lo)) return cli_fail("--lo and --hi go together");
    if (lo) {
        if (sci_parse_pair(lo, r->lo) || sci_parse_pair(hi, r->hi)) return cli_fail("--lo/--hi: expected two numbers 'a,b'");
        r->box_set = 1;
    }
    r->G = (int)G;
    r->first = (size_t)first;
    r->count = (size_t)count;
    r->n_png = (int)png;
    r->progress = !quiet;
    if (cli_mkdirs(r->out_dir)) return 1;
    return -1;
}

void sci_log_command(const char *dir, int argc, char **argv)
{
    char **v = malloc(((size_t)argc + 1) * sizeof *v);
    if (!v) return;
    v[0] = (char *)"cglow";
    for (int i = 0; i < argc; i++) v[i + 1] = argv[i];
    if (cglow_report_log_command(dir, argc + 1, v)) fprintf(stderr, "cglow: warning: %s\n", cglow_last_error());
    free(v);
}
