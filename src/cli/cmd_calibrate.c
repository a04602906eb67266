/* cglow calibrate: coverage of the posterior's HPD regions over many maps with known parameters. */
#include "cli/sci_cli.h"

int cmd_calibrate(int argc, char **argv)
{
    cglow_infer_run r;
    int rc = sci_infer_flags("calibrate",
                             "Calibration of the grid posterior over held-out maps with known parameters: coverage of the\n"
                             "68% and 95% HPD regions (binomial errors), the rank of the truth (HPD level at which it\n"
                             "enters: uniform if calibrated) and the bias of the mean in posterior-std units.\n"
                             "--model (flow), --exact (exact synthetic likelihood) or both; with both, the flow's\n"
                             "posterior is compared with the exact one (mean shift in std units, width ratio, KL).\n"
                             "Writes OUT/calibration.json and, per scorer S (flow, exact): posterior_S.npy,\n"
                             "summary_S.json, calibration_S.png, posterior_S_NNN.png.",
                             argc, argv, &r, 1);
    if (rc >= 0) return rc;
    if (cglow_run_calibrate(&r)) return cli_fail_lib();
    sci_log_command(r.out_dir, argc, argv);
    return 0;
}
