/* Helpers shared by the science subcommands (pk, eval, infer, calibrate, sample, report). */
#ifndef CGLOW_SCI_CLI_H
#define CGLOW_SCI_CLI_H
#include "cli/cli.h"

/* Maps of a .npy (N, H, W) or (N, 1, H, W) into a malloc'd float array. Returns 0 or sets the
 * library error (naming the file). */
int sci_load_maps(const char *path, float **maps, size_t *n, int *h, int *w);
/* Per-map parameters (n x 2: columns col0, col0+1) from a table (.npy (rows, P) or CAMELS text)
 * with one row per map or one row per simulation (n divisible by rows). */
int sci_load_theta(const char *path, size_t nmaps, double **theta);
/* "linear" -> 0, "log10" -> 1, else -1. */
int sci_parse_units(const char *s);
/* "dir/name" into buf. */
const char *sci_join(char *buf, size_t n, const char *dir, const char *name);
/* "a,b" -> two finite numbers; 0 or -1. */
int sci_parse_pair(const char *s, double v[2]);
/* The flags shared by infer and calibrate, parsed into r. Returns an exit code or -1 to go on. */
int sci_infer_flags(const char *cmd, const char *summary, int argc, char **argv, cglow_infer_run *r, int calibrate);
/* Appends "cglow <argv...>" to dir/commands.txt (what cglow report shows); a failure is a warning. */
void sci_log_command(const char *dir, int argc, char **argv);
#endif
