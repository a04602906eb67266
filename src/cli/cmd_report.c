/* cglow report: an HTML page of a run folder's pictures, numbers and commands. */
#include "cli/sci_cli.h"

int cmd_report(int argc, char **argv)
{
    const char *dir = NULL, *title = "cglow report";
    long threads = 0;
    int help = 0;
    cli_flag fl[] = {
        {"dir", FLAG_STR, &dir, "run folder; D/index.html is written there", 1, 0},
        {"title", FLAG_STR, &title, "page title", 0, 0},
        {"threads", FLAG_INT, &threads, "accepted for uniformity (the report is single-threaded)", 0, 0},
    };
    int rc = cli_parse("report",
                       "Builds D/index.html from what is in D and its direct subfolders:\n"
                       "  *.png   pictures, grouped by name: samples* and *_maps* (maps), pk* and eval* (spectra),\n"
                       "          posterior* (posteriors), calibration* (calibration), loss* (training), others\n"
                       "  *.json  numbers, as tables (scalars and short arrays; per-map lists: first 5 entries)\n"
                       "  commands.txt  the command lines that made the folder (one per line), shown verbatim; also\n"
                       "          D/<sub>/commands.txt (infer, calibrate and eval append their command there)\n"
                       "The demo's layout: D/samples.png, D/eval/, D/infer/, D/calibrate/, D/commands.txt.",
                       fl, (int)(sizeof fl / sizeof fl[0]), argc, argv, &help);
    if (rc) return help ? 0 : 2;
    if (cglow_report_build(dir, title)) return cli_fail_lib();
    fprintf(stderr, "cglow report: %s/index.html\n", dir);
    return 0;
}
