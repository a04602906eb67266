/* cglow pk: the 2-D power spectrum of a set of maps (model.md section 5). */
#include "cli/sci_cli.h"
#include <stdlib.h>
#include <string.h>

int cmd_pk(int argc, char **argv)
{
    const char *maps = NULL, *out = NULL, *units = "linear", *binning = "pylians", *field = "log10", *png = NULL;
    double box = 25.0, floor_ = 1e-8;
    long first = 0, count = 0, threads = 0, ds = 1;
    int per_map = 0, help = 0;
    cli_flag fl[] = {
        {"maps", FLAG_STR, &maps, ".npy of maps (N, n, n) or (N, 1, n, n), square", 1, 0},
        {"out", FLAG_STR, &out, "JSON output: arrays k, mean, std, counts, bin", 1, 0},
        {"units", FLAG_STR, &units, "units of the maps: linear (default) or log10", 0, 0},
        {"binning", FLAG_STR, &binning, "pylians (default: Pylians3 Pk_plane) or higlow", 0, 0},
        {"field", FLAG_STR, &field, "log10 (default), overdensity (map/mean - 1) or raw (the values as given)", 0, 0},
        {"box", FLAG_DOUBLE, &box, "box side in Mpc/h (default 25)", 0, 0},
        {"floor", FLAG_DOUBLE, &floor_, "floor of linear maps before log10 (default 1e-8)", 0, 0},
        {"downsample", FLAG_INT, &ds, "block-mean factor on the linear maps first (1; 4: CAMELS 256 -> 64)", 0, 0},
        {"first", FLAG_INT, &first, "first map (default 0)", 0, 0},
        {"count", FLAG_INT, &count, "number of maps (default: all from --first)", 0, 0},
        {"per-map", FLAG_BOOL, &per_map, "also write every map's spectrum (array pk)", 0, 0},
        {"png", FLAG_STR, &png, "also plot the mean spectrum with its 1-sigma band to this PNG", 0, 0},
        {"threads", FLAG_INT, &threads, "threads (default: all)", 0, 0},
    };
    int rc = cli_parse("pk", "2-D power spectrum of a set of maps: P(k) per map, mean and std (ddof 0) per bin.\n"
                       "k in h/Mpc with kF = 2 pi / box; P = box^2 / n^4 |F_k|^2 in (Mpc/h)^2.\n"
                       "--field raw takes the array values as the field (for comparing with other tools).",
                       fl, (int)(sizeof fl / sizeof fl[0]), argc, argv, &help);
    if (rc) return help ? 0 : 2;
    cli_apply_threads(threads);
    cglow_pk_options o;
    cglow_pk_options_default(&o);
    int u = sci_parse_units(units);
    if (u < 0) return cli_fail("--units: expected linear or log10, got '%s'", units);
    o.input_log10 = u;
    if (cglow_pk_parse_binning(binning, &o.binning) || cglow_pk_parse_field(field, &o.field)) return cli_fail_lib();
    o.box = box;
    o.floor = floor_;
    if (ds < 1 || ds > 4096) return cli_fail("--downsample: expected 1 .. 4096, got %ld", ds);
    o.downsample = (int)ds;
    if (first < 0 || count < 0) return cli_fail("--first and --count must be >= 0");
    cglow_pk_set s;
    if (cglow_pk_set_from_npy(maps, &o, (size_t)first, (size_t)count, NULL, 0, &s)) return cli_fail_lib();
    rc = cglow_pk_set_save_json(&s, out, per_map);
    if (!rc && png) {
        if (cglow_plot_pk(png, &s, NULL, maps)) fprintf(stderr, "cglow pk: warning: %s\n", cglow_last_error());
    }
    if (!rc) fprintf(stderr, "cglow pk: %zu maps of %dx%d, %d bins (%s binning, %s field) -> %s\n", s.nmaps, s.side, s.side,
                     s.nbins, binning, field, out);
    cglow_pk_set_free(&s);
    return rc ? cli_fail_lib() : 0;
}
