/* cglow infer: the grid posterior over (Omega_m, sigma_8) of each map (model.md sections 6, 8). */
#include "cli/sci_cli.h"

int cmd_infer(int argc, char **argv)
{
    cglow_infer_run r;
    int rc = sci_infer_flags("infer",
                             "Posterior over (Omega_m, sigma_8) of each map on a G x G grid (uniform prior on the box).\n"
                             "Scorer: a flow (--model; all G*G conditions of a map in one batch) or the exact synthetic\n"
                             "likelihood (--exact). Writes OUT/posterior.npy (maps, G, G) float64 cell masses (axis 1\n"
                             "Omega_m, axis 2 sigma_8), OUT/summary.json (mean, std, MAP, 68/95% HPD, truth coverage),\n"
                             "OUT/posterior_NNN.png and, with --truth, OUT/calibration.png.",
                             argc, argv, &r, 0);
    if (rc >= 0) return rc;
    if (cglow_run_infer(&r)) return cli_fail_lib();
    sci_log_command(r.out_dir, argc, argv);
    return 0;
}
