/* cglow: the command-line tool, a thin layer over the library. */
#include "cli/cli.h"
#include <string.h>

static const struct {
    const char *name;
    cli_cmd_fn fn;
    const char *summary;
} commands[] = {
    {"init", cmd_init, "a fresh model from a preset or flags"},
    {"info", cmd_info, "config, parameter count and FLOPs of a model"},
    {"train", cmd_train, "train on maps + parameters, with checkpoints and resume"},
    {"logprob", cmd_logprob, "per-map log p(map | parameters) in nats"},
    {"grad", cmd_grad, "training loss and its gradient for every tensor (for checks)"},
    {"sample", cmd_sample, "new maps for given parameters at a temperature"},
    {"synth", cmd_synth, "the synthetic CAMELS-like data set (exact likelihood known)"},
    {"synth-loglike", cmd_synth_loglike, "exact log-likelihood of synthetic maps"},
    {"pk", cmd_pk, "2-D power spectrum of a set of maps"},
    {"eval", cmd_eval, "generated against real maps by the power spectrum"},
    {"infer", cmd_infer, "posterior over (Omega_m, sigma_8) of maps on a grid"},
    {"calibrate", cmd_calibrate, "coverage of the posterior over many held-out maps"},
    {"report", cmd_report, "HTML report of a run folder"},
    {"demo", cmd_demo, "the whole job on the synthetic default: synth, train, sample, eval, infer, report"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: cglow <command> [flags]   (cglow <command> --help for its flags)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
}

void cglow_blas_fix_core(char **argv);   /* util/threads.c */

int main(int argc, char **argv)
{
    if (argc < 2) { usage(stderr); return 2; }
    cglow_blas_fix_core(argv);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) { printf("cglow format version %d\n", CGLOW_FORMAT_VERSION); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "cglow: error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
