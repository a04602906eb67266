/* cglow eval: generated against real maps by the 2-D power spectrum (model.md section 5). */
#include "cli/sci_cli.h"
#include <stdlib.h>
#include <string.h>

int cmd_eval(int argc, char **argv)
{
    cglow_eval_run r;
    cglow_eval_run_default(&r);
    const char *units = "linear", *gen_units = NULL, *binning = "pylians", *field = "log10";
    long threads = 0, seed = 0, ds = 0;
    int help = 0;
    cli_flag fl[] = {
        {"real", FLAG_STR, &r.real_path, "real maps (N, n, n) or (N, 1, n, n)", 1, 0},
        {"out", FLAG_STR, &r.out_dir, "output folder (created)", 1, 0},
        {"gen", FLAG_STR, &r.gen_path, "generated maps (else generate them with --model)", 0, 0},
        {"units", FLAG_STR, &units, "units of the real maps: linear (default) or log10", 0, 0},
        {"gen-units", FLAG_STR, &gen_units, "units of --gen maps (default: as --units; cglow sample writes log10)", 0, 0},
        {"params", FLAG_STR, &r.params_path, "parameter table of the real maps (row per map or per simulation)", 0, 0},
        {"real-params", FLAG_STR, &r.params_path, "same as --params", 0, 0},
        {"sim", FLAG_INT, &r.sim, "conditional: only simulation I's real maps, against maps generated at its parameters", 0, 0},
        {"model", FLAG_STR, &r.model_path, "flow that generates the maps when --gen is not given", 0, 0},
        {"n-gen", FLAG_INT, &r.n_gen, "maps to generate (default: as many as real maps)", 0, 0},
        {"temperature", FLAG_DOUBLE, &r.temperature, "sampling temperature (1)", 0, 0},
        {"seed", FLAG_INT, &seed, "sampling seed (0)", 0, 0},
        {"binning", FLAG_STR, &binning, "pylians (default) or higlow", 0, 0},
        {"field", FLAG_STR, &field, "log10 (default), overdensity or raw", 0, 0},
        {"box", FLAG_DOUBLE, &r.opt.box, "box side in Mpc/h (25)", 0, 0},
        {"downsample", FLAG_INT, &ds, "block-mean factor of the real maps (default: real side / generated side when that is an integer > 1)", 0, 0},
        {"tag", FLAG_STR, &r.tag, "output name prefix (eval)", 0, 0},
        {"threads", FLAG_INT, &threads, "threads (default: all)", 0, 0},
    };
    int rc = cli_parse("eval",
                       "Power spectra of real and generated maps: mean and std per bin, ratios, R^2 of the mean spectrum\n"
                       "(log10 and linear), mean |log10 ratio| of mean and std. Writes OUT/<tag>.json, OUT/<tag>.png\n"
                       "(log-log spectra with 1-sigma bands and a ratio panel) and OUT/<tag>_maps.png (4 real over 4\n"
                       "generated maps, log10).\n"
                       "Marginal: --real R --gen G (all maps), or --real R --params P --model M: generated at the\n"
                       "parameters of randomly drawn real maps. Conditional: --sim I --params P with --model M\n"
                       "(maps generated at simulation I's parameters, written to OUT/<tag>_gen.npy) or with --gen G\n"
                       "(maps you generated at those parameters) against simulation I's real maps.",
                       fl, (int)(sizeof fl / sizeof fl[0]), argc, argv, &help);
    if (rc) return help ? 0 : 2;
    cli_apply_threads(threads);
    r.real_log10 = sci_parse_units(units);
    r.gen_log10 = gen_units ? sci_parse_units(gen_units) : r.real_log10;
    if (r.real_log10 < 0 || r.gen_log10 < 0) return cli_fail("--units/--gen-units: expected linear or log10");
    if (cglow_pk_parse_binning(binning, &r.opt.binning) || cglow_pk_parse_field(field, &r.opt.field)) return cli_fail_lib();
    if (seed < 0) return cli_fail("--seed must be >= 0");
    if (r.n_gen < 0) return cli_fail("--n-gen must be >= 0");
    if (fl[7].seen && r.sim < 0) return cli_fail("--sim must be >= 0, got %ld", r.sim);
    r.seed = (uint64_t)seed;
    if (ds < 0 || ds > 4096) return cli_fail("--downsample: expected 1 .. 4096, got %ld", ds);
    r.opt.downsample = ds > 0 ? (int)ds : 1;
    if (strchr(r.tag, '/')) return cli_fail("--tag: a name, not a path");
    if (cli_mkdirs(r.out_dir)) return 1;
    if (cglow_run_eval(&r, NULL)) return cli_fail_lib();
    sci_log_command(r.out_dir, argc, argv);
    return 0;
}
